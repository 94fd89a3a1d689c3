/*  tests/test_asr_beam.c - the CTC beam search with a word bigram
    (snn/asr_beam.c, snn/asr.h "st_asr_beam") on hand-made posteriors: a
    word whose posterior stays under the blank is found when the bigram
    expects it and not when it does not; silence gives no word; one long
    word that peaks twice is one word, the same word said twice is two; a
    word is emitted before the end once it is certain, with its times;
    finish commits the rest, in order, and a word still rising when it
    comes is heard at its peak after it; the model file keeps the bigram and
    its settings, and refuses a broken one (naming the tensor); settings
    out of range are refused. The classes are the 5 of a toy vocabulary:
    _silence_ (the blank), _unknown_, one, two, plus.
*/
#include "testutil.h"

#include "base/base.h"
#include "snn/asr.h"
#include "snn/snn.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define C 5
enum { BLANK, UNK, ONE, TWO, PLUS };

/* frames x C posteriors: the blank everywhere, then `k` at p over [from, to) */
static void fill_blank(float *post, int n)
{
    for (int t = 0; t < n; t++)
        for (int k = 0; k < C; k++)
            post[t * C + k] = k == BLANK ? 1.0f - 1e-4f * (C - 1) : 1e-4f;
}

static void word(float *post, int from, int to, int k, float p)
{
    for (int t = from; t < to; t++) {
        for (int j = 0; j < C; j++)
            post[t * C + j] = 1e-4f;
        post[t * C + k] = p;
        post[t * C + BLANK] = 1.0f - p - 1e-4f * (C - 2);
    }
}

/* A bigram where "one" is nearly always followed by "plus", "plus" by "two". */
static void bigram(float *logp, bool expect_plus)
{
    for (int a = 0; a < C; a++)
        for (int b = 0; b < C; b++)
            logp[a * C + b] = logf(0.02f);
    logp[0 * C + ONE] = logf(0.9f);
    logp[ONE * C + PLUS] = logf(expect_plus ? 0.9f : 0.001f);
    logp[PLUS * C + TWO] = logf(0.9f);
    logp[TWO * C + 0] = logf(0.9f);
    logp[ONE * C + TWO] = logf(expect_plus ? 0.02f : 0.9f);
}

/* Runs the posteriors through a beam, finishes, and collects the words. */
static int decode(const float *logp, const st_asr_lm_params *p, const float *post, int n,
                  int *out, st_asr_event *evs, int cap)
{
    int err = 0;
    st_asr_beam *b = st_asr_beam_new(C, logp, p, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    int got = 0;
    st_asr_event ev;
    for (int t = 0; t < n; t++) {
        st_asr_beam_step(b, post + t * C, (uint64_t)t * 160, NULL);
        while (st_asr_beam_next(b, &ev))
            if (got < cap) {
                evs[got] = ev;
                out[got++] = ev.word;
            }
    }
    st_asr_beam_finish(b, true);
    while (st_asr_beam_next(b, &ev))
        if (got < cap) {
            evs[got] = ev;
            out[got++] = ev.word;
        }
    CU_ASSERT_EQUAL(st_asr_beam_dropped(b), 0);
    st_asr_beam_destroy(&b);
    CU_ASSERT_PTR_NULL(b);
    return got;
}

static void test_weak_word_needs_the_bigram(void)
{
    static float post[200 * C];
    float logp[C * C];
    int w[8];
    st_asr_event ev[8];
    st_asr_lm_params p = st_asr_lm_default_params();
    /* "one [plus, weak: 0.15 under a blank of 0.85 for 2 frames, a CTC
       probability of 0.28 against 0.72 for no word] two" */
    fill_blank(post, 200);
    word(post, 20, 30, ONE, 0.95f);
    word(post, 60, 62, PLUS, 0.15f);
    word(post, 100, 110, TWO, 0.95f);
    bigram(logp, true);
    int n = decode(logp, &p, post, 200, w, ev, 8);
    CU_ASSERT_EQUAL(n, 3);
    if (n == 3)
        CU_ASSERT(w[0] == ONE && w[1] == PLUS && w[2] == TWO);
    /* a bigram that does not expect "plus" there: the blank wins */
    bigram(logp, false);
    n = decode(logp, &p, post, 200, w, ev, 8);
    CU_ASSERT_EQUAL(n, 2);
    if (n == 2)
        CU_ASSERT(w[0] == ONE && w[1] == TWO);
    /* no bigram and no bonus: the more probable "one two" */
    st_asr_lm_params q = p;
    q.alpha = 0;
    q.beta = 0;
    n = decode(NULL, &q, post, 200, w, ev, 8);
    CU_ASSERT_EQUAL(n, 2);
    /* a posterior that never reaches ST_ASR_BEAM_MIN_PEAK is never said */
    word(post, 60, 62, PLUS, 0.05f);
    bigram(logp, true);
    n = decode(logp, &p, post, 200, w, ev, 8);
    for (int i = 0; i < n; i++)
        CU_ASSERT_NOT_EQUAL(w[i], PLUS);
    /* silence: nothing */
    fill_blank(post, 200);
    CU_ASSERT_EQUAL(decode(logp, &p, post, 200, w, ev, 8), 0);
}

static void test_repeats(void)
{
    static float post[300 * C];
    float logp[C * C];
    int w[8];
    st_asr_event ev[8];
    st_asr_lm_params p = st_asr_lm_default_params();
    for (int a = 0; a < C * C; a++)
        logp[a] = logf(1.0f / C);
    /* one word whose posterior dips to the blank for 3 frames: one word */
    fill_blank(post, 300);
    word(post, 20, 28, TWO, 0.9f);
    word(post, 31, 38, TWO, 0.9f);
    CU_ASSERT_EQUAL(decode(logp, &p, post, 300, w, ev, 8), 1);
    /* the same word again 0.6 s later: two */
    fill_blank(post, 300);
    word(post, 20, 28, TWO, 0.9f);
    word(post, 80, 88, TWO, 0.9f);
    CU_ASSERT_EQUAL(decode(logp, &p, post, 300, w, ev, 8), 2);
}

static void test_emitted_before_the_end(void)
{
    static float post[400 * C];
    float logp[C * C];
    st_asr_lm_params p = st_asr_lm_default_params();
    bigram(logp, true);
    fill_blank(post, 400);
    word(post, 20, 30, ONE, 0.95f);
    word(post, 60, 70, PLUS, 0.95f);
    word(post, 100, 110, TWO, 0.95f);
    int err = 0;
    st_asr_beam *b = st_asr_beam_new(C, logp, &p, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    st_asr_event ev;
    int got = 0, when[3] = {-1, -1, -1};
    for (int t = 0; t < 400; t++) {
        st_asr_beam_step(b, post + t * C, (uint64_t)t * 160, NULL);
        while (st_asr_beam_next(b, &ev)) {
            if (got < 3) {
                when[got] = t;
                /* its peak is where the word is, decided after it */
                CU_ASSERT(ev.end_stamp >= 20 * 160 && ev.end_stamp <= ev.decided_stamp);
                CU_ASSERT(ev.score > 0.9f);
            }
            got++;
        }
    }
    /* clear words are committed within a few frames of their peak, not at the end */
    CU_ASSERT_EQUAL(got, 3);
    CU_ASSERT(when[0] >= 20 && when[0] < 20 + ST_ASR_BEAM_STABLE_FRAMES + 2);
    CU_ASSERT(when[2] >= 100 && when[2] < 100 + ST_ASR_BEAM_STABLE_FRAMES + 2);
    st_asr_beam_finish(b, false);
    CU_ASSERT_EQUAL(st_asr_beam_next(b, &ev), 0);
    st_asr_beam_destroy(&b);
}

/* The speech ends (finish) while a word's posterior is still rising: it is
   not said then, and its peak after the finish is the word. */
static void test_finish_while_rising(void)
{
    static float post[200 * C];
    float logp[C * C];
    bigram(logp, true);
    st_asr_lm_params p = st_asr_lm_default_params();
    fill_blank(post, 200);
    word(post, 20, 30, ONE, 0.95f);
    word(post, 60, 64, PLUS, 0.95f);
    word(post, 90, 95, TWO, 0.04f); /* rising ... */
    word(post, 95, 100, TWO, 0.9f); /* ... its peak */
    int err = 0;
    st_asr_beam *b = st_asr_beam_new(C, logp, &p, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    st_asr_event ev;
    int w[8], got = 0;
    for (int t = 0; t < 200; t++) {
        if (t == 93)
            st_asr_beam_finish(b, true);
        st_asr_beam_step(b, post + t * C, (uint64_t)t * 160, NULL);
        while (st_asr_beam_next(b, &ev))
            if (got < 8)
                w[got++] = ev.word;
    }
    st_asr_beam_finish(b, true);
    while (st_asr_beam_next(b, &ev))
        if (got < 8)
            w[got++] = ev.word;
    CU_ASSERT_EQUAL(got, 3);
    if (got == 3)
        CU_ASSERT(w[0] == ONE && w[1] == PLUS && w[2] == TWO);
    st_asr_beam_destroy(&b);
}

/* The largest beam over the most classes: every candidate fits (each frame
   tries every label), and the words come out. */
static void test_largest(void)
{
    enum { K = ST_ASR_MAX_CLASSES, T = 300 };
    static float post[K];
    st_asr_lm_params p = st_asr_lm_default_params();
    p.beam = ST_ASR_BEAM_MAX;
    int err = 0;
    st_asr_beam *b = st_asr_beam_new(K, NULL, &p, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    uint32_t s = 1;
    int got = 0;
    st_asr_event ev;
    for (int t = 0; t < T; t++) {
        float sum = 0;
        for (int k = 0; k < K; k++) {
            s = s * 1664525u + 1013904223u;
            post[k] = 0.01f + (float)(s >> 8) / 16777216.0f;
            sum += post[k];
        }
        int w = 2 + (t / 20) % (K - 2); /* a word every 20 frames, 8 frames long */
        if (t % 20 < 8)
            post[w] += 3 * sum;
        else
            post[0] += 3 * sum;
        sum = 0;
        for (int k = 0; k < K; k++)
            sum += post[k];
        for (int k = 0; k < K; k++)
            post[k] /= sum;
        st_asr_beam_step(b, post, (uint64_t)t * 160, NULL);
        while (st_asr_beam_next(b, &ev))
            got++;
    }
    st_asr_beam_finish(b, false);
    while (st_asr_beam_next(b, &ev))
        got++;
    CU_ASSERT(got >= T / 20 - 1 && got <= 2 * T / 20);
    st_asr_beam_destroy(&b);
}

static void test_bad_settings(void)
{
    float logp[C * C];
    bigram(logp, true);
    st_asr_lm_params p = st_asr_lm_default_params();
    int err = 0;
    p.beam = 0;
    CU_ASSERT_PTR_NULL(st_asr_beam_new(C, logp, &p, &err));
    CU_ASSERT_EQUAL(err, ST_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(st_errmsg(), "beam 0"));
    p = st_asr_lm_default_params();
    logp[7] = 0.5f; /* a probability above 1 */
    CU_ASSERT_PTR_NULL(st_asr_beam_new(C, logp, &p, &err));
    CU_ASSERT_EQUAL(err, ST_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(st_errmsg(), "[1][2]"));
}

/* A 5-class ctc recognizer over 5 features (identity weights). */
static st_asr *toy_model(void)
{
    static const char *names[C] = {"_silence_", "_unknown_", "one", "two", "plus"};
    int err = 0;
    st_snn_net *net = st_snn_net_new(&err);
    float w[C * C] = {0};
    for (int k = 0; k < C; k++)
        w[k * C + k] = 5.0f;
    st_snn_neuron_params li = st_snn_neuron_default_params(ST_SNN_LI);
    li.dt = 0.01;
    int in = st_snn_net_add_input(net, "input", C);
    int d = st_snn_net_add_dense(net, "readout.w", C, C, w, NULL);
    int n = st_snn_net_add_neurons(net, "readout", &li, C);
    int o = st_snn_net_add_output(net, "output", C);
    CU_ASSERT_FATAL(in >= 0 && d >= 0 && n >= 0 && o >= 0);
    CU_ASSERT_FATAL(st_snn_net_connect(net, in, d) == ST_OK);
    CU_ASSERT_FATAL(st_snn_net_connect(net, d, n) == ST_OK);
    CU_ASSERT_FATAL(st_snn_net_connect(net, n, o) == ST_OK);
    CU_ASSERT_FATAL(st_snn_net_finish(net) == ST_OK);
    float mean[C] = {0}, std[C] = {1, 1, 1, 1, 1};
    st_asr *a = st_asr_new(&net, names, C, mean, std, C, NULL, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    return a;
}

static void test_model_file(void)
{
    st_asr *a = toy_model();
    float logp[C * C];
    bigram(logp, true);
    st_asr_lm_params p = {.alpha = 0.25f, .beta = 1.5f, .margin = 0.75f, .beam = 6};
    /* only a ctc model takes a bigram */
    CU_ASSERT_EQUAL(st_asr_set_lm(a, logp, &p), ST_ERR_INVALID);
    st_asr_set_pool(a, ST_ASR_POOL_CTC);
    CU_ASSERT_EQUAL_FATAL(st_asr_set_lm(a, logp, &p), ST_OK);
    char path[512];
    st_test_tmpfile(path, sizeof path, "lm.stm");
    CU_ASSERT_EQUAL_FATAL(st_asr_save(a, path), ST_OK);
    int err = 0;
    st_asr *b = st_asr_load(path, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    st_asr_lm_params q;
    const float *m = st_asr_lm(b, &q);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    CU_ASSERT(memcmp(m, logp, sizeof logp) == 0);
    CU_ASSERT(q.alpha == p.alpha && q.beta == p.beta && q.margin == p.margin && q.beam == 6);
    /* its streams decode with the beam; --lm off takes the decision rule */
    st_asr_stream *s = st_asr_stream_new(b, NULL, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT(st_asr_stream_uses_lm(s));
    CU_ASSERT_EQUAL(st_asr_stream_set_lm(s, NULL), ST_OK);
    CU_ASSERT(!st_asr_stream_uses_lm(s));
    st_asr_stream_destroy(&s);
    st_asr_destroy(&b);

    /* a file whose lm_rule is not a rule, or an lm without its rule: refused,
       naming the tensor */
    st_tensor_file *f = st_tensor_file_load(path, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    st_tensor_file *g = st_tensor_file_new("asr", &err);
    for (size_t k = 0; k < st_tensor_file_count(f); k++) {
        st_tensor t;
        CU_ASSERT_EQUAL(st_tensor_file_at(f, k, &t), ST_OK);
        if (!strcmp(t.name, "lm_rule"))
            st_tensor_file_add_string(g, "lm_rule", "alpha x");
        else
            st_tensor_file_add(g, t.name, t.dtype, t.ndim, t.dims, t.data);
    }
    CU_ASSERT_EQUAL(st_tensor_file_save(g, path), ST_OK);
    st_tensor_file_destroy(&g);
    CU_ASSERT_PTR_NULL(st_asr_load(path, &err));
    CU_ASSERT_EQUAL(err, ST_ERR_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(st_errmsg(), "lm_rule"));
    g = st_tensor_file_new("asr", &err);
    for (size_t k = 0; k < st_tensor_file_count(f); k++) {
        st_tensor t;
        CU_ASSERT_EQUAL(st_tensor_file_at(f, k, &t), ST_OK);
        if (strcmp(t.name, "lm_rule"))
            st_tensor_file_add(g, t.name, t.dtype, t.ndim, t.dims, t.data);
    }
    CU_ASSERT_EQUAL(st_tensor_file_save(g, path), ST_OK);
    st_tensor_file_destroy(&g);
    CU_ASSERT_PTR_NULL(st_asr_load(path, &err));
    CU_ASSERT_EQUAL(err, ST_ERR_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(st_errmsg(), "'lm' without 'lm_rule'"));
    st_tensor_file_destroy(&f);
    st_asr_destroy(&a);
    remove(path);
}

CU_TestInfo st_tests_asr_beam[] = {
    {"weak_word_needs_the_bigram", test_weak_word_needs_the_bigram},
    {"repeats", test_repeats},
    {"emitted_before_the_end", test_emitted_before_the_end},
    {"finish_while_rising", test_finish_while_rising},
    {"largest", test_largest},
    {"bad_settings", test_bad_settings},
    {"model_file", test_model_file},
    CU_TEST_INFO_NULL,
};
