/*  tests/test_faults.c - suite `faults`: every constructor under injected
    allocation failure (SQLite's do_malloc_test, CZMQ's selftests). For each
    constructor, allocation N = 1, 2, ... of the calling thread fails
    (tests/alloc_count.c) until the constructor gets through without
    reaching N: each failure must return NULL with a negative code and a
    message, and leave no byte allocated (net bytes allocated minus freed on
    the thread is zero); each success is destroyed and must leave none
    either. One warm-up call first, so one-time global set-up (FFTW's
    wisdom, libsndfile's tables) is not mistaken for a leak.

    Needs the malloc interposer: skipped, visibly, under ASan and valgrind.
    Constructors that create ZeroMQ sockets or contexts are not swept:
    libzmq aborts on allocation failure by design (alloc_assert), and so do
    the stage actor, the pipeline and the authenticator built on it; nor is
    st_frontend_new, whose FFTW plan aborts likewise (fftw's alloc.c
    asserts), nor st_audio_reader_open: libsndfile 1.2 crashes inside
    sf_open_fd when one of its own allocations fails (its bug, not ours),
    nor st_echo_new: speexdsp's echo canceller does not check its
    allocations either (a crash in speex_echo_state_init_mc), nor the NIR
    importer: libhdf5 does not recover from a failed allocation (every later
    call fails, and it loops at exit).
    Reads seeds under fuzz/corpus/ and models/ (run from the repository
    root, as make test does).
*/
#include "testutil.h"

#include "audio/audio.h"
#include "pipeline/pipeline.h"
#include "snn/asr.h"
#include "snn/lm.h"
#include "snn/lm_train.h"
#include "snn/snn.h"
#include "snn/vad.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void *(*make_fn)(int *err);
typedef void (*drop_fn)(void *obj);

#define MAX_N 20000

/* Runs the sweep; returns the number of allocations the constructor makes
   when nothing fails (0 when the sweep could not finish). */
static unsigned long sweep(const char *name, make_fn make, drop_fn drop)
{
    int err = 0;
    void *warm = make(&err);
    if (!warm)
        fprintf(stderr, "\nfaults: %s fails without injection: %s\n", name, st_errmsg());
    CU_ASSERT_PTR_NOT_NULL_FATAL(warm);
    drop(warm);
    int bad_code = 0, leaks = 0, leaked_at = 0;
    long long leaked = 0;
    for (unsigned long n = 1; n <= MAX_N; n++) {
        err = 0;
        st_test_alloc_fail_at(n);
        void *obj = make(&err);
        if (obj)
            drop(obj);
        long long net;
        unsigned long seen = st_test_alloc_disarm(&net);
        if (!obj && (err >= 0 || !st_errmsg()[0]))
            bad_code++;
        if (net != 0) {
            if (!leaks++)
                leaked_at = (int)n, leaked = net;
        }
        if (obj && seen < n) { /* nothing failed: done */
            if (bad_code || leaks)
                fprintf(stderr, "\nfaults: %s: %d failures without an error code, %d leaks "
                        "(first at allocation %d: %lld bytes)\n", name, bad_code, leaks,
                        leaked_at, leaked);
            CU_ASSERT_EQUAL(bad_code, 0);
            CU_ASSERT_EQUAL(leaks, 0);
            if (getenv("ST_VERBOSE"))
                fprintf(stderr, "\nfaults: %s: %lu allocations, each failed once\n", name,
                        seen);
            return seen;
        }
    }
    fprintf(stderr, "\nfaults: %s: more than %d allocations\n", name, MAX_N);
    CU_FAIL("constructor makes too many allocations to sweep");
    return 0;
}

/* ---- the constructors, each with its destructor ---------------------------------- */

#define DROP(T, fn)                                                                           \
    static void drop_##fn(void *o)                                                            \
    {                                                                                         \
        T *p = o;                                                                             \
        fn(&p);                                                                               \
    }

DROP(st_tensor_file, st_tensor_file_destroy)
DROP(st_snn_net, st_snn_net_destroy)
DROP(st_snn_state, st_snn_state_destroy)
DROP(st_snn_neurons, st_snn_neurons_destroy)
DROP(st_lm_model, st_lm_model_destroy)
DROP(st_lm_state, st_lm_state_destroy)
DROP(st_lm_tokenizer, st_lm_tokenizer_destroy)
DROP(st_lm_sampler, st_lm_sampler_destroy)
DROP(st_asr, st_asr_destroy)
DROP(st_vad_model, st_vad_model_destroy)
DROP(st_vad, st_vad_destroy)
DROP(st_resampler, st_resampler_destroy)
DROP(st_encoder, st_encoder_destroy)
DROP(st_pipe_config, st_pipe_config_destroy)
DROP(st_wire_rx, st_wire_rx_destroy)
DROP(st_rec_reader, st_rec_close)
DROP(st_room, st_room_destroy)
DROP(st_asr_stream, st_asr_stream_destroy)
DROP(st_lm_trainer, st_lm_trainer_destroy)

static const char *const NET = "fuzz/corpus/model/dense_lif.stm";
static const char *const LM = "fuzz/corpus/model/lm_tiny.stnn";

static void *mk_tensor_file_new(int *err)
{
    st_tensor_file *f = st_tensor_file_new("faults", err);
    if (f && st_tensor_file_add_string(f, "text", "abc")) {
        *err = ST_ERR_NOMEM;
        st_tensor_file_destroy(&f);
    }
    return f;
}
static void *mk_tensor_file_load(int *err) { return st_tensor_file_load(NET, err); }
static void *mk_snn_net_load(int *err) { return st_snn_net_load(NET, err); }
static void *mk_snn_net_new(int *err) { return st_snn_net_new(err); }

static st_snn_net *shared_net;
static void *mk_snn_state(int *err) { return st_snn_state_new(shared_net, err); }

static void *mk_neurons(int *err)
{
    st_snn_neuron_params p = st_snn_neuron_default_params(ST_SNN_LIF);
    return st_snn_neurons_new(&p, 64, err);
}

static void *mk_lm_new(int *err)
{
    st_lm_config cfg = st_lm_default_config();
    cfg.n_layer = 1, cfg.n_embd = 8, cfg.vocab = 16, cfg.n_ffn = 16;
    return st_lm_model_new(&cfg, err);
}
static void *mk_lm_load(int *err) { return st_lm_model_load(LM, err); }

static st_lm_model *shared_lm;
static void *mk_lm_state(int *err) { return st_lm_state_new(shared_lm, err); }
static void *mk_lm_sampler(int *err)
{
    st_lm_sample_params p = st_lm_sample_default_params();
    return st_lm_sampler_new(16, &p, err);
}
static void *mk_tok_chars(int *err) { return st_lm_tokenizer_new_chars("abcdefgh ij", err); }
static void *mk_tok_corpus(int *err)
{
    static const char text[] = "the quick brown fox jumps over the lazy dog";
    return st_lm_tokenizer_from_corpus(text, sizeof text - 1, 64, err);
}
static void *mk_asr_load(int *err) { return st_asr_load("models/asr.stm", err); }
static void *mk_vad_model(int *err)
{
    st_vad_params p = st_vad_default_params();
    return st_vad_model_new(&p, err);
}
static st_vad_model *shared_vad;
static void *mk_vad(int *err) { return st_vad_new(shared_vad, err); }
static void *mk_resampler(int *err) { return st_resampler_new(48000, 16000, ST_RESAMPLE_FASTEST, err); }
static void *mk_encoder(int *err)
{
    st_encoder_params p = st_encoder_default_params(ST_ENCODER_LIF);
    return st_encoder_new(&p, err);
}
static void *mk_config(int *err)
{
    return st_pipe_config_parse(st_pipe_config_default_text(), "default", err);
}
static void *mk_wire_rx(int *err) { return st_wire_rx_new("faults", err); }
static void *mk_rec(int *err) { return st_rec_open("fuzz/corpus/recording/three", err); }

static void *mk_room(int *err)
{
    st_room_params p = st_room_default_params();
    return st_room_new(&p, err);
}
static st_asr *shared_asr;
static void *mk_asr_stream(int *err) { return st_asr_stream_new(shared_asr, NULL, err); }
static void *mk_lm_trainer(int *err)
{
    st_lm_train_params p = st_lm_train_default_params();
    p.threads = 1; /* the workers' own allocations are on their threads */
    p.seq_len = 8, p.batch = 2;
    return st_lm_trainer_new(shared_lm, &p, err);
}
typedef struct {
    const char *name;
    make_fn make;
    drop_fn drop;
} ctor;

static const ctor CTORS[] = {
    {"st_tensor_file_new", mk_tensor_file_new, drop_st_tensor_file_destroy},
    {"st_tensor_file_load", mk_tensor_file_load, drop_st_tensor_file_destroy},
    {"st_snn_net_new", mk_snn_net_new, drop_st_snn_net_destroy},
    {"st_snn_net_load", mk_snn_net_load, drop_st_snn_net_destroy},
    {"st_snn_state_new", mk_snn_state, drop_st_snn_state_destroy},
    {"st_snn_neurons_new", mk_neurons, drop_st_snn_neurons_destroy},
    {"st_lm_model_new", mk_lm_new, drop_st_lm_model_destroy},
    {"st_lm_model_load", mk_lm_load, drop_st_lm_model_destroy},
    {"st_lm_state_new", mk_lm_state, drop_st_lm_state_destroy},
    {"st_lm_sampler_new", mk_lm_sampler, drop_st_lm_sampler_destroy},
    {"st_lm_tokenizer_new_chars", mk_tok_chars, drop_st_lm_tokenizer_destroy},
    {"st_lm_tokenizer_from_corpus", mk_tok_corpus, drop_st_lm_tokenizer_destroy},
    {"st_asr_load", mk_asr_load, drop_st_asr_destroy},
    {"st_vad_model_new", mk_vad_model, drop_st_vad_model_destroy},
    {"st_vad_new", mk_vad, drop_st_vad_destroy},
    {"st_resampler_new", mk_resampler, drop_st_resampler_destroy},
    {"st_encoder_new", mk_encoder, drop_st_encoder_destroy},
    {"st_pipe_config_parse", mk_config, drop_st_pipe_config_destroy},
    {"st_wire_rx_new", mk_wire_rx, drop_st_wire_rx_destroy},
    {"st_rec_open", mk_rec, drop_st_rec_close},
    {"st_room_new", mk_room, drop_st_room_destroy},
    {"st_asr_stream_new", mk_asr_stream, drop_st_asr_stream_destroy},
    {"st_lm_trainer_new", mk_lm_trainer, drop_st_lm_trainer_destroy},
};

static bool live(const char *test)
{
    if (!st_test_alloc_faults_live()) {
        st_test_skip(test, "allocation failure cannot be injected here (ASan or valgrind "
                     "bring their own malloc)");
        return false;
    }
    return true;
}

static void test_every_constructor(void)
{
    if (!live("faults:every_constructor"))
        return;
    int err;
    shared_net = st_snn_net_load(NET, &err);
    shared_lm = mk_lm_new(&err);
    shared_vad = mk_vad_model(&err);
    shared_asr = st_asr_load("models/asr.stm", &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(shared_asr);
    CU_ASSERT_PTR_NOT_NULL_FATAL(shared_net);
    CU_ASSERT_PTR_NOT_NULL_FATAL(shared_lm);
    CU_ASSERT_PTR_NOT_NULL_FATAL(shared_vad);
    for (size_t i = 0; i < sizeof CTORS / sizeof *CTORS; i++)
        CU_ASSERT(sweep(CTORS[i].name, CTORS[i].make, CTORS[i].drop) > 0);
    st_snn_net_destroy(&shared_net);
    st_lm_model_destroy(&shared_lm);
    st_vad_model_destroy(&shared_vad);
    st_asr_destroy(&shared_asr);
}

/* The hook itself: the n-th allocation fails, the count balances. */
static void test_injection_works(void)
{
    if (!live("faults:injection_works"))
        return;
    st_test_alloc_fail_at(2);
    void *a = malloc(8), *b = malloc(8), *c = malloc(8);
    long long net;
    unsigned long seen = st_test_alloc_disarm(&net);
    CU_ASSERT_PTR_NOT_NULL(a);
    CU_ASSERT_PTR_NULL(b);
    CU_ASSERT_PTR_NOT_NULL(c);
    CU_ASSERT_EQUAL(seen, 3);
    CU_ASSERT(net > 0);
    st_test_alloc_fail_at(0);
    free(a);
    free(c);
    st_test_alloc_disarm(&net);
    CU_ASSERT(net < 0);
}

CU_TestInfo st_tests_faults[] = {
    {"injection_works", test_injection_works},
    {"every_constructor", test_every_constructor},
    CU_TEST_INFO_NULL,
};
