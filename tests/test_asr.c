/*  tests/test_asr.c - the recognizer (snn/asr.h): the decision rule on
    synthetic read-outs, the model file round trip and a bad model refused,
    an out-of-vocabulary case that must come out as "_unknown_", the smoke
    recipe (tools/asr_tool.c: a few steps lower the loss), and the last line
    of `spiketalk eval`; the held-out requests the recipe writes (each word
    with its end inside the audio) and `spiketalk eval requests` over them
    (its counts agree with an alignment: correct + substituted + deleted =
    the reference words, correct + substituted + inserted = the emitted).
    The CTC model (pool "ctc"): the trainer's CTC loss of an empty label
    sequence (all blank) against its hand value, clip classification from
    per-frame posteriors, the stream stepping once a frame (its
    probabilities are the net's own, step by step), a word emitted once with
    its times, the state restarted after a second of blank (the frames after
    it give what a fresh net run over the last frames gives), a word that
    starts as the restart falls still heard (the shipped model), and the CTC
    smoke recipe.

    The hand-made models are an input of 4 features, a dense node and an LI
    read-out of 4 classes (_silence_, _unknown_, yes, no): tiny, built in
    microseconds; the decision rule a model stores survives the round trip.
    The smoke recipe synthesizes ~50 espeak-ng words (a second
    or two).
*/
#include "testutil.h"

#include "audio/audio.h"
#include "base/base.h"
#include "snn/asr.h"
#include "snn/train.h"
#include "tts/tts.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *WORDS4[4] = {"_silence_", "_unknown_", "yes", "no"};

/* input(4) -> dense (identity x gain) -> LI(4) -> output: class k's read-out
   follows feature k. */
static st_asr *hand_model(void)
{
    int err = 0;
    st_snn_net *net = st_snn_net_new(&err);
    float w[16] = {0};
    for (int k = 0; k < 4; k++)
        w[k * 4 + k] = 5.0f;
    st_snn_neuron_params li = st_snn_neuron_default_params(ST_SNN_LI);
    li.dt = 0.01;
    li.tau_mem_inv = 20;
    li.tau_syn_inv = 50;
    int in = st_snn_net_add_input(net, "input", 4);
    int d = st_snn_net_add_dense(net, "readout.w", 4, 4, w, NULL);
    int p = st_snn_net_add_neurons(net, "readout", &li, 4);
    int o = st_snn_net_add_output(net, "output", 4);
    CU_ASSERT_FATAL(in >= 0 && d >= 0 && p >= 0 && o >= 0);
    CU_ASSERT_FATAL(st_snn_net_connect(net, in, d) == ST_OK);
    CU_ASSERT_FATAL(st_snn_net_connect(net, d, p) == ST_OK);
    CU_ASSERT_FATAL(st_snn_net_connect(net, p, o) == ST_OK);
    CU_ASSERT_FATAL(st_snn_net_finish(net) == ST_OK);
    float mean[4] = {0}, std[4] = {1, 1, 1, 1};
    st_asr *a = st_asr_new(&net, WORDS4, 4, mean, std, 4, NULL, &err);
    CU_ASSERT_PTR_NULL(net);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    return a;
}

static void test_decider(void)
{
    st_asr_decider_params p = st_asr_decider_default_params();
    st_asr_decider d;
    st_asr_decider_init(&d, &p, 4);
    st_asr_event ev;
    int emitted = 0;
    /* silence 10 frames, "yes" 8 frames at 0.9, silence again */
    for (int t = 0; t < 30; t++) {
        float prob[4] = {0.9f, 0.04f, 0.03f, 0.03f};
        if (t >= 10 && t < 18) {
            prob[0] = 0.05f;
            prob[2] = 0.9f;
        }
        if (st_asr_decider_step(&d, prob, (uint64_t)t * 160 + 159, &ev)) {
            emitted++;
            CU_ASSERT_EQUAL(ev.word, 2);
            CU_ASSERT_EQUAL(ev.start_stamp, 10 * 160 + 159);
            CU_ASSERT_EQUAL(ev.end_stamp, 17 * 160 + 159);
            CU_ASSERT_EQUAL(ev.decided_stamp, 18 * 160 + 159); /* the frame it fell */
            CU_ASSERT(fabsf(ev.score - 0.9f) < 1e-6f);
        }
    }
    CU_ASSERT_EQUAL(emitted, 1);
    /* a blip shorter than min_frames is not a word */
    st_asr_decider_init(&d, &p, 4);
    emitted = 0;
    for (int t = 0; t < 20; t++) {
        float prob[4] = {0.9f, 0.04f, 0.03f, 0.03f};
        if (t == 5) {
            prob[0] = 0.05f;
            prob[3] = 0.9f;
        }
        emitted += st_asr_decider_step(&d, prob, (uint64_t)t, &ev);
    }
    CU_ASSERT_EQUAL(emitted, 0);
    /* silence alone never opens a candidate; an open one is flushed at the end */
    st_asr_decider_init(&d, &p, 4);
    float hold[4] = {0.02f, 0.02f, 0.06f, 0.9f};
    for (int t = 0; t < 5; t++)
        CU_ASSERT_EQUAL(st_asr_decider_step(&d, hold, (uint64_t)t, &ev), 0);
    CU_ASSERT_EQUAL(st_asr_decider_flush(&d, &ev), 1);
    CU_ASSERT_EQUAL(ev.word, 3);
    /* emit_early: one event, on the min_frames-th frame, none when it falls or at the end */
    p.emit_early = true;
    p.min_frames = 2;
    st_asr_decider_init(&d, &p, 4);
    emitted = 0;
    for (int t = 0; t < 10; t++) {
        float *pr = t >= 2 && t < 7 ? hold : (float[4]){0.9f, 0.04f, 0.03f, 0.03f};
        if (st_asr_decider_step(&d, pr, (uint64_t)t, &ev)) {
            emitted++;
            CU_ASSERT_EQUAL(ev.word, 3);
            CU_ASSERT_EQUAL(ev.decided_stamp, 3);
        }
    }
    CU_ASSERT_EQUAL(st_asr_decider_flush(&d, &ev), 0);
    CU_ASSERT_EQUAL(emitted, 1);
    /* emit_early with min_frames 1: the frame that opens the candidate decides it */
    p.min_frames = 1;
    st_asr_decider_init(&d, &p, 4);
    emitted = 0;
    for (int t = 0; t < 10; t++) {
        float *pr = t >= 2 && t < 7 ? hold : (float[4]){0.9f, 0.04f, 0.03f, 0.03f};
        if (st_asr_decider_step(&d, pr, (uint64_t)t, &ev)) {
            emitted++;
            CU_ASSERT_EQUAL(ev.word, 3);
            CU_ASSERT_EQUAL(ev.decided_stamp, 2);
        }
    }
    CU_ASSERT_EQUAL(st_asr_decider_flush(&d, &ev), 0);
    CU_ASSERT_EQUAL(emitted, 1);
    /* ... and the next word, taking over while the first is still above off, is
       decided on the frame it takes over; the first is not emitted again */
    p.off_threshold = 0.2f;
    p.refractory_frames = 0;
    st_asr_decider_init(&d, &p, 4);
    int seq[2] = {0}, ns = 0;
    for (int t = 0; t < 10; t++) {
        float *pr = t >= 2 && t < 5   ? hold
                    : t >= 5 && t < 8 ? (float[4]){0.01f, 0.02f, 0.72f, 0.25f}
                                      : (float[4]){0.9f, 0.04f, 0.03f, 0.03f};
        if (st_asr_decider_step(&d, pr, (uint64_t)t, &ev) && ns < 2) {
            seq[ns++] = ev.word;
            CU_ASSERT_EQUAL(ev.decided_stamp, ns == 1 ? 2 : 5);
        }
    }
    CU_ASSERT_EQUAL(ns, 2);
    CU_ASSERT_EQUAL(seq[0], 3);
    CU_ASSERT_EQUAL(seq[1], 2);
}

static void test_unknown_is_never_a_word(void)
{
    /* the decider: an unknown read-out gives class 1, whatever the runner-up */
    st_asr_decider_params p = st_asr_decider_default_params();
    st_asr_decider d;
    st_asr_decider_init(&d, &p, 4);
    st_asr_event ev;
    int emitted = 0;
    for (int t = 0; t < 30; t++) {
        float prob[4] = {0.9f, 0.04f, 0.03f, 0.03f};
        if (t >= 5 && t < 15) {
            prob[0] = 0.02f;
            prob[1] = 0.75f;
            prob[2] = 0.23f;
        }
        if (st_asr_decider_step(&d, prob, (uint64_t)t, &ev)) {
            emitted++;
            CU_ASSERT_EQUAL(ev.word, ST_ASR_UNKNOWN);
        }
    }
    CU_ASSERT_EQUAL(emitted, 1);
    /* the model: frames that drive the unknown unit classify as unknown, and
       the best speech class is unknown too, not "yes" or "no" */
    st_asr *a = hand_model();
    float frames[50 * 4] = {0}, scores[4];
    for (int t = 10; t < 40; t++) {
        frames[t * 4 + 1] = 1.0f;
        frames[t * 4 + 2] = 0.5f;
    }
    CU_ASSERT_EQUAL(st_asr_classify(a, frames, 50, ST_ASR_POOL_MAX, scores), ST_ASR_UNKNOWN);
    CU_ASSERT_EQUAL(st_asr_best_speech(a, scores), ST_ASR_UNKNOWN);
    int err = 0;
    st_asr_stream *s = st_asr_stream_new(a, NULL, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    for (int t = 0; t < 50; t++)
        if (st_asr_stream_push(s, frames + t * 4, (uint64_t)t, &ev, NULL))
            CU_ASSERT(ev.word < 2);
    /* a word the model knows is emitted once by the windowed stream */
    st_asr_stream_reset(s);
    float yes[120 * 4] = {0};
    for (int t = 20; t < 60; t++)
        yes[t * 4 + 2] = 4.0f;
    int got = 0;
    for (int t = 0; t < 120; t++)
        if (st_asr_stream_push(s, yes + t * 4, (uint64_t)t * 160, &ev, NULL)) {
            got++;
            CU_ASSERT_EQUAL(ev.word, 2);
            CU_ASSERT(ev.start_stamp <= ev.end_stamp && ev.end_stamp == ev.decided_stamp);
        }
    CU_ASSERT_EQUAL(got, 1);
    st_asr_stream_destroy(&s);
    st_asr_destroy(&a);
}

static void test_file_round_trip(void)
{
    st_asr *a = hand_model();
    char path[512], bad[512];
    CU_ASSERT_EQUAL(st_asr_default_pool(a), ST_ASR_POOL_MAX);
    st_asr_set_pool(a, ST_ASR_POOL_MEAN);
    /* no stored decision rule: the stream defaults, whole windows */
    size_t tail = 99;
    st_asr_decider_params r0 = st_asr_stream_params(a, &tail), rd = st_asr_stream_default_params();
    CU_ASSERT_EQUAL(tail, 0);
    CU_ASSERT(r0.on_threshold == rd.on_threshold && r0.min_frames == rd.min_frames);
    st_asr_decider_params rule = {.on_threshold = 0.85f, .off_threshold = 0.25f, .min_frames = 1,
                                  .max_frames = 300, .refractory_frames = 2, .emit_early = true};
    st_asr_set_stream(a, &rule, 40);
    st_test_tmpfile(path, sizeof path, "asr.stm");
    CU_ASSERT_EQUAL_FATAL(st_asr_save(a, path), ST_OK);
    int err = 0;
    st_asr *b = st_asr_load(path, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    CU_ASSERT_EQUAL(st_asr_classes(b), 4);
    CU_ASSERT_EQUAL(st_asr_default_pool(b), ST_ASR_POOL_MEAN);
    st_asr_decider_params rb = st_asr_stream_params(b, &tail);
    CU_ASSERT_EQUAL(tail, 40);
    CU_ASSERT(fabsf(rb.on_threshold - 0.85f) < 1e-6f && fabsf(rb.off_threshold - 0.25f) < 1e-6f);
    CU_ASSERT(rb.min_frames == 1 && rb.max_frames == 300 && rb.refractory_frames == 2 &&
              rb.emit_early);
    CU_ASSERT_STRING_EQUAL(st_asr_word(b, 2), "yes");
    CU_ASSERT_EQUAL(st_asr_find(b, "no"), 3);
    CU_ASSERT_EQUAL(st_asr_find(b, "maybe"), -1);
    float frames[30 * 4] = {0}, sa[4], sb[4];
    for (int t = 5; t < 20; t++)
        frames[t * 4 + 3] = 1.0f;
    CU_ASSERT_EQUAL(st_asr_classify(a, frames, 30, ST_ASR_POOL_MEAN, sa), 3);
    CU_ASSERT_EQUAL(st_asr_classify(b, frames, 30, ST_ASR_POOL_MEAN, sb), 3);
    CU_ASSERT_EQUAL(memcmp(sa, sb, sizeof sa), 0);
    st_asr_destroy(&b);
    /* a file of another kind is refused by name */
    st_test_tmpfile(bad, sizeof bad, "net.stm");
    CU_ASSERT_EQUAL(st_snn_net_save(st_asr_net(a), bad), ST_OK);
    b = st_asr_load(bad, &err);
    CU_ASSERT_PTR_NULL(b);
    CU_ASSERT_EQUAL(err, ST_ERR_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(st_errmsg(), "asr"));
    /* a truncated file is refused */
    FILE *f = fopen(path, "rb");
    char buf[65536];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    f = fopen(bad, "wb");
    fwrite(buf, 1, n / 2, f);
    fclose(f);
    b = st_asr_load(bad, &err);
    CU_ASSERT_PTR_NULL(b);
    CU_ASSERT(err == ST_ERR_FORMAT || err == ST_ERR_IO);
    /* class names that do not match the net's outputs */
    int e2 = 0;
    st_snn_net *net = st_snn_net_load(bad, &e2); /* NULL: truncated */
    CU_ASSERT_PTR_NULL(net);
    st_asr_destroy(&a);
    CU_ASSERT_PTR_NULL(a);
}

/* The file at `path` written again to `out` with the text tensor `name` = value. */
static void rewrite_text(const char *path, const char *out, const char *name, const char *value)
{
    int err = 0;
    st_tensor_file *f = st_tensor_file_load(path, &err), *g = st_tensor_file_new("asr", &err);
    CU_ASSERT_FATAL(f && g);
    for (size_t k = 0; k < st_tensor_file_count(f); k++) {
        st_tensor t;
        CU_ASSERT_EQUAL(st_tensor_file_at(f, k, &t), ST_OK);
        if (strcmp(t.name, name) != 0)
            CU_ASSERT_EQUAL(st_tensor_file_add(g, t.name, t.dtype, t.ndim, t.dims, t.data), ST_OK);
    }
    CU_ASSERT_EQUAL(st_tensor_file_add_string(g, name, value), ST_OK);
    CU_ASSERT_EQUAL(st_tensor_file_save(g, out), ST_OK);
    st_tensor_file_destroy(&f);
    st_tensor_file_destroy(&g);
}

/* The windowed stream of a (4 classes) over the n frames f (n = the
   window): its last probabilities are the softmax of `scores`, what
   st_asr_classify pooled over the same clip. */
static void stream_as_clip(const st_asr *a, const float *f, int n, const float *scores)
{
    int err = 0;
    st_asr_stream *s = st_asr_stream_new(a, NULL, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    float prob[4], m = scores[0], sum = 0;
    st_asr_event ev;
    for (int t = 0; t < n; t++)
        st_asr_stream_push(s, f + t * 4, (uint64_t)t, &ev, prob);
    for (int k = 1; k < 4; k++)
        m = scores[k] > m ? scores[k] : m;
    for (int k = 0; k < 4; k++)
        sum += expf(scores[k] - m);
    for (int k = 0; k < 4; k++)
        CU_ASSERT_DOUBLE_EQUAL(prob[k], expf(scores[k] - m) / sum, 1e-6);
    st_asr_stream_destroy(&s);
}

/* cmn: a model that subtracts each clip's mean classifies a clip and the
   same clip with a constant added per channel (another microphone, another
   gain) alike; normalise_clip leaves every channel's mean at 0; the
   windowed stream gives what st_asr_classify gives on the same second; the
   setting survives the file; an ensemble of members with and without it
   reads two views (the mean of their scores, stream = clip, the file keeps
   them); ctc, a bad value or view list in a file are refused by name. */
static void test_cmn(void)
{
    st_asr *a = hand_model();
    st_asr_set_pool(a, ST_ASR_POOL_MEAN);
    CU_ASSERT_FALSE(st_asr_cmn(a));
    enum { N = ST_ASR_WINDOW };
    static float f[N * 4], g[N * 4], x[N * 4];
    const float shift[4] = {2.0f, -1.5f, 0.25f, 3.0f};
    for (int t = 0; t < N; t++)
        for (int i = 0; i < 4; i++) {
            f[t * 4 + i] = (t >= 30 && t < 60 && i == 2 ? 1.5f : 0.0f) +
                           0.01f * (float)((t * 7 + i * 3) % 11);
            g[t * 4 + i] = f[t * 4 + i] + shift[i];
        }
    float sf[4], sg[4];
    /* without cmn the shift moves the scores (channel 3 wins) */
    CU_ASSERT_EQUAL(st_asr_classify(a, f, N, ST_ASR_POOL_MEAN, sf), 2);
    CU_ASSERT_EQUAL(st_asr_classify(a, g, N, ST_ASR_POOL_MEAN, sg), 3);
    CU_ASSERT_EQUAL(st_asr_set_cmn(a, true), ST_OK);
    CU_ASSERT_TRUE(st_asr_cmn(a));
    CU_ASSERT_EQUAL(st_asr_classify(a, f, N, ST_ASR_POOL_MEAN, sf), 2);
    CU_ASSERT_EQUAL(st_asr_classify(a, g, N, ST_ASR_POOL_MEAN, sg), 2);
    for (int k = 0; k < 4; k++)
        CU_ASSERT_DOUBLE_EQUAL(sf[k], sg[k], 1e-5);
    st_asr_normalise_clip(a, g, N, x);
    for (int i = 0; i < 4; i++) {
        double m = 0;
        for (int t = 0; t < N; t++)
            m += x[t * 4 + i];
        CU_ASSERT(fabs(m / N) < 1e-6);
    }
    /* the stream's window of N frames, pooled as classify pools the clip */
    int err = 0;
    stream_as_clip(a, g, N, sg);
    /* the file keeps it; a value other than "clip" is refused by name */
    char path[512], bad[512];
    st_test_tmpfile(path, sizeof path, "cmn.stm");
    CU_ASSERT_EQUAL_FATAL(st_asr_save(a, path), ST_OK);
    st_asr *b = st_asr_load(path, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    CU_ASSERT_TRUE(st_asr_cmn(b));
    float sb[4];
    CU_ASSERT_EQUAL(st_asr_classify(b, g, N, ST_ASR_POOL_MEAN, sb), 2);
    CU_ASSERT_EQUAL(memcmp(sb, sg, sizeof sb), 0);
    st_test_tmpfile(bad, sizeof bad, "cmn_bad.stm");
    rewrite_text(path, bad, "cmn", "window");
    st_asr *c = st_asr_load(bad, &err);
    CU_ASSERT_PTR_NULL(c);
    CU_ASSERT_EQUAL(err, ST_ERR_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(st_errmsg(), "'cmn'") && strstr(st_errmsg(), "window"));
    /* an ensemble of a member with it and one without: two views of one
       input, each member reading its own; the mean of their scores */
    st_asr *plain = hand_model();
    st_asr_set_pool(plain, ST_ASR_POOL_MEAN);
    st_asr *e = st_asr_ensemble((const st_asr *[]){b, plain}, 2, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    bool views[ST_ASR_MAX_VIEWS];
    CU_ASSERT_EQUAL(st_asr_views(e, views), 2);
    CU_ASSERT_TRUE(views[0] && !views[1]); /* in the order of their first members */
    CU_ASSERT_EQUAL(st_asr_input_len(e), 8);
    CU_ASSERT_TRUE(st_asr_cmn(e));
    float sp[4], se[4];
    st_asr_classify(plain, g, N, ST_ASR_POOL_MEAN, sp);
    CU_ASSERT_EQUAL(st_asr_classify(e, g, N, ST_ASR_POOL_MEAN, se), 3); /* plain's 3 wins */
    for (int k = 0; k < 4; k++)
        CU_ASSERT_DOUBLE_EQUAL(se[k], 0.5f * (sb[k] + sp[k]), 1e-5);
    st_asr_normalise_clip(e, g, 2, x); /* view 1 is the plain normalisation */
    float xn[4];
    st_asr_normalise(e, g + 4, xn);
    CU_ASSERT_EQUAL(memcmp(x + 8 + 4, xn, sizeof xn), 0);
    stream_as_clip(e, g, N, se); /* its stream's window classifies as the clip does */
    /* the file keeps the views ("clip,none"); a list that does not fit the
       net's inputs is refused by name; an ensemble of it is refused */
    char two[512];
    st_test_tmpfile(two, sizeof two, "cmn_two.stm");
    CU_ASSERT_EQUAL_FATAL(st_asr_save(e, two), ST_OK);
    st_asr *e2 = st_asr_load(two, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e2);
    CU_ASSERT_EQUAL(st_asr_views(e2, views), 2);
    CU_ASSERT_TRUE(views[0] && !views[1]);
    float se2[4];
    st_asr_classify(e2, g, N, ST_ASR_POOL_MEAN, se2);
    CU_ASSERT_EQUAL(memcmp(se2, se, sizeof se), 0);
    const char *bad_lists[] = {"none", "clip,none,none", "clip,wind", "clip,",
                               "clip,none,none,none,none,none,none,none,none,none,none,none"};
    for (size_t i = 0; i < 5; i++) {
        rewrite_text(two, bad, "cmn", bad_lists[i]);
        CU_ASSERT_PTR_NULL(st_asr_load(bad, &err));
        CU_ASSERT_EQUAL(err, ST_ERR_FORMAT);
        CU_ASSERT_PTR_NOT_NULL(strstr(st_errmsg(), "'cmn'"));
    }
    /* the other settings are refused by name too, never read as absent */
    const char *bad_settings[][2] = {
        {"pool", "avg"},
        {"stream", "on 0.5 off 0.5 min 1 max 2 refractory 0 early 0 tail 0 and much more "
                   "than a rule holds: on 0.5 off 0.5 min 1 max 2 refractory 0 early 0 tail 0 "
                   "on 0.5 off 0.5 min 1 max 2"},
    };
    for (size_t i = 0; i < 2; i++) {
        rewrite_text(path, bad, bad_settings[i][0], bad_settings[i][1]);
        CU_ASSERT_PTR_NULL(st_asr_load(bad, &err));
        CU_ASSERT_EQUAL(err, ST_ERR_FORMAT);
        char want[32];
        snprintf(want, sizeof want, "'%s'", bad_settings[i][0]);
        CU_ASSERT_PTR_NOT_NULL(strstr(st_errmsg(), want));
    }
    st_asr *ee = st_asr_ensemble((const st_asr *[]){plain, e2}, 2, &err);
    CU_ASSERT_PTR_NULL(ee);
    CU_ASSERT_PTR_NOT_NULL(strstr(st_errmsg(), "member 1") &&
                           strstr(st_errmsg(), "more than one input"));
    /* ctc takes one view: refused on classify */
    st_asr_set_pool(e2, ST_ASR_POOL_CTC);
    CU_ASSERT_EQUAL(st_asr_classify(e2, g, N, ST_ASR_POOL_CTC, se2), ST_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(st_errmsg(), "ctc"));
    CU_ASSERT_PTR_NULL(st_asr_stream_new(e2, NULL, &err));
    CU_ASSERT_EQUAL(err, ST_ERR_INVALID);
    st_asr_destroy(&e2);
    st_asr_destroy(&e);
    e = st_asr_ensemble((const st_asr *[]){b, a}, 2, &err);
    CU_ASSERT_PTR_NOT_NULL(e);
    CU_ASSERT_TRUE(e && st_asr_cmn(e) && st_asr_views(e, NULL) == 1);
    st_asr_destroy(&e);
    /* ctc steps frame by frame: no clip mean to subtract */
    st_asr_set_pool(plain, ST_ASR_POOL_CTC);
    CU_ASSERT_EQUAL(st_asr_set_cmn(plain, true), ST_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(st_errmsg(), "ctc"));
    CU_ASSERT_FALSE(st_asr_cmn(plain));
    st_asr_destroy(&plain);
    st_asr_destroy(&b);
    st_asr_destroy(&a);
}

/* st_asr_ensemble: two copies of one recognizer classify as it does, to the
   bit, keeping its pooling; members with another normalisation are refused
   by name. */
static void test_ensemble(void)
{
    st_asr *a = hand_model(), *b = hand_model();
    st_asr_set_pool(a, ST_ASR_POOL_MEAN);
    st_asr_set_pool(b, ST_ASR_POOL_MEAN);
    int err = 0;
    st_asr *e = st_asr_ensemble((const st_asr *[]){a, b}, 2, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_EQUAL(st_asr_default_pool(e), ST_ASR_POOL_MEAN);
    CU_ASSERT_EQUAL(st_asr_param_count(e), 2 * st_asr_param_count(a) + 2 * 4); /* + the 1/2s */
    float frames[30 * 4] = {0}, sa[4], se[4];
    for (int t = 5; t < 20; t++)
        frames[t * 4 + 2] = 1.0f;
    CU_ASSERT_EQUAL(st_asr_classify(a, frames, 30, ST_ASR_POOL_MEAN, sa), 2);
    CU_ASSERT_EQUAL(st_asr_classify(e, frames, 30, ST_ASR_POOL_MEAN, se), 2);
    CU_ASSERT_EQUAL(memcmp(sa, se, sizeof sa), 0);
    st_asr_destroy(&e);
    /* another normalisation: refused, naming the member */
    int err2 = 0;
    void *buf = NULL;
    size_t len = 0;
    CU_ASSERT_EQUAL_FATAL(st_snn_net_save_mem(st_asr_net(b), &buf, &len), ST_OK);
    st_snn_net *net = st_snn_net_load_mem(buf, len, &err2);
    free(buf);
    float mean[4] = {0, 0, 0.5f, 0}, std[4] = {1, 1, 1, 1};
    st_asr *c = st_asr_new(&net, WORDS4, 4, mean, std, 4, NULL, &err2);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    st_asr_set_pool(c, ST_ASR_POOL_MEAN);
    CU_ASSERT_PTR_NULL(st_asr_ensemble((const st_asr *[]){a, c}, 2, &err));
    CU_ASSERT_EQUAL(err, ST_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(st_errmsg(), "member 1 has another normalisation"));
    st_asr_destroy(&a);
    st_asr_destroy(&b);
    st_asr_destroy(&c);
}

static char *run(const char *cmd, int *status)
{
    FILE *p = popen(cmd, "r");
    if (!p)
        return NULL;
    size_t cap = 1 << 16, n = 0;
    char *out = calloc(cap, 1);
    size_t got;
    while ((got = fread(out + n, 1, cap - 1 - n, p)) > 0)
        n += got;
    *status = pclose(p);
    return out;
}

/* Writes text as the whole of the file at path, then runs cmd. */
static char *run_on(const char *path, const char *text, const char *cmd, int *status)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return NULL;
    fputs(text, f);
    fclose(f);
    return run(cmd, status);
}

static const char *last_line(char *out)
{
    size_t n = strlen(out);
    while (n && out[n - 1] == '\n')
        out[--n] = 0;
    char *nl = strrchr(out, '\n');
    return nl ? nl + 1 : out;
}

/* The recipe on a few synthetic words into dir: asr-tool `data` (plus
   data_flags) and 8 training steps (plus train_flags), the smoke's loss
   falling. The CLI to go on with, or NULL (the test skipped, said) when
   asr-tool or the CLI is not built. */
static const char *smoke_recipe(const char *test, const char *dir, const char *data_flags,
                                const char *train_flags)
{
    const char *build = getenv("ST_BUILD") ? getenv("ST_BUILD") : "build";
    const char *cli = st_test_cli();
    char tool[512], cmd[4096];
    snprintf(tool, sizeof tool, "%s/asr-tool", build);
    if (access(tool, X_OK) != 0 || access(cli, X_OK) != 0) {
        st_test_skip(test, "build/asr-tool or the CLI not built (make test builds them)");
        return NULL;
    }
    int status = 0;
    snprintf(cmd, sizeof cmd,
             "mkdir -p %s && %s data%s --data-dir /nonexistent --out %s --configs 1 --aug 1 "
             "--festival 1 --requests 1 --per-config 2 2>%s/data.log && "
             "%s train --dir %s --out %s/asr.stm%s --max-steps 8 --hidden 32 --threads 1 2>&1",
             dir, tool, data_flags, dir, dir, tool, dir, dir, train_flags);
    char *out = run(cmd, &status);
    CU_ASSERT_PTR_NOT_NULL_FATAL(out);
    CU_ASSERT_EQUAL(status, 0);
    double l0 = 0, l1 = 0;
    const char *s = strstr(out, "smoke: loss ");
    CU_ASSERT_PTR_NOT_NULL(s);
    if (s) {
        CU_ASSERT_EQUAL(sscanf(s, "smoke: loss %lf -> %lf", &l0, &l1), 2);
        CU_ASSERT(l1 < l0);
    }
    free(out);
    return cli;
}

static void test_smoke_recipe_and_eval(void)
{
    const char *dir = st_test_tmpdir();
    /* (--synth-seeds and --trim: the recipe's seeded syntheses and short
       copies run too) */
    const char *cli =
        smoke_recipe("asr:smoke_recipe_and_eval", dir, " --synth-seeds --trim 0.5", "");
    if (!cli)
        return;
    char cmd[2048], *out;
    int status = 0;
    /* festival's voice spoke every vocabulary word and 12 others (--festival 1) */
    snprintf(cmd, sizeof cmd, "cat %s/data.log", dir);
    out = run(cmd, &status);
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "asr-tool: 49 festival words"));
    free(out);
    /* the model it wrote loads, and eval prints its last line */
    char model[512], wav[512], man[512];
    snprintf(model, sizeof model, "%s/asr.stm", dir);
    int err = 0;
    st_asr *a = st_asr_load(model, &err);
    CU_ASSERT_PTR_NOT_NULL(a);
    CU_ASSERT(a && st_asr_classes(a) > 30);
    st_asr_destroy(&a);
    st_test_tmpfile(wav, sizeof wav, "clip.wav");
    static float x[16000];
    st_test_noise(x, 16000, 3, 16000, 2000);
    CU_ASSERT_EQUAL(st_audio_write_wav(wav, x, 16000, 16000, ST_WAV_PCM16), ST_OK);
    st_test_tmpfile(man, sizeof man, "words.tsv");
    FILE *f = fopen(man, "w");
    fprintf(f, "path\ttext\tspeaker\nclip.wav\tyes\ts1\nclip.wav\tbanana two\ts1\n");
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s eval words --manifest %s --model %s 2>&1", cli, man, model);
    out = run(cmd, &status);
    CU_ASSERT_EQUAL(status, 0);
    double w = -1;
    int nn = 0;
    CU_ASSERT_EQUAL(sscanf(last_line(out), "wer %lf (n=%d)", &w, &nn), 2);
    CU_ASSERT_EQUAL(nn, 2);
    CU_ASSERT(w >= 0);
    free(out);
    st_test_tmpfile(man, sizeof man, "sc12.tsv");
    f = fopen(man, "w");
    fprintf(f, "path\tlabel12\tword\tspeaker\nclip.wav\t_silence_\t\t\nclip.wav\tyes\tyes\ts1\n");
    fclose(f);
    char clips[512];
    st_test_tmpfile(clips, sizeof clips, "clips.tsv");
    snprintf(cmd, sizeof cmd, "%s eval sc12 --manifest %s --model %s --clips %s 2>&1", cli, man,
             model, clips);
    out = run(cmd, &status);
    CU_ASSERT_EQUAL(status, 0);
    double acc = -1;
    CU_ASSERT_EQUAL(sscanf(last_line(out), "accuracy %lf (n=%d)", &acc, &nn), 2);
    CU_ASSERT_EQUAL(nn, 2);
    CU_ASSERT(acc >= 0 && acc <= 1);
    free(out);
    /* --clips: a line per clip, its truth, and as many right as the accuracy */
    f = fopen(clips, "r");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    char cl[1024], truth[64], rec[64];
    int lines = 0, right = 0, r1 = 0;
    while (fgets(cl, sizeof cl, f))
        if (lines++ > 0 && sscanf(strchr(cl, '\t') ? strchr(cl, '\t') : cl, "%63s %63s %d", truth,
                                  rec, &r1) == 3) {
            CU_ASSERT(!strcmp(truth, lines == 2 ? "_silence_" : "yes"));
            CU_ASSERT_EQUAL(r1, !strcmp(truth, rec));
            right += r1;
        }
    fclose(f);
    CU_ASSERT_EQUAL(lines, 3);
    CU_ASSERT_EQUAL(right, (int)lround(acc * 2));
    /* --by-speaker: a row per speaker (the silence clip has none), the
       spread over the named ones, and the same last line */
    st_test_tmpfile(man, sizeof man, "sc12_spk.tsv");
    f = fopen(man, "w");
    fprintf(f, "path\tlabel12\tword\tspeaker\nclip.wav\t_silence_\t\t\nclip.wav\tyes\tyes\ts1\n"
               "clip.wav\tno\tno\ts2\nclip.wav\tup\tup\ts2\n");
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s eval sc12 --manifest %s --model %s --by-speaker 2>&1", cli, man,
             model);
    out = run(cmd, &status);
    CU_ASSERT_EQUAL(status, 0);
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "by speaker (worst first)"));
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "\n(none)                1 "));
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "\ns2                    2 "));
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "2 speakers: the median speaker"));
    CU_ASSERT(out && sscanf(last_line(out), "accuracy %lf (n=%d)", &acc, &nn) == 2 && nn == 4);
    /* the speaker bootstrap: two speakers drawn twice each time; the figure
       of the two as they are lies between the extremes of the draws */
    const char *boot =
        out ? strstr(out, "other speakers like these (2000 draws of 2 speakers") : NULL;
    double blo = -1, bhi = -1;
    CU_ASSERT_PTR_NOT_NULL(boot);
    CU_ASSERT(boot && sscanf(strstr(boot, "figures "), "figures %lf-%lf%%", &blo, &bhi) == 2);
    CU_ASSERT(blo <= 100 * acc + 1e-9 && 100 * acc <= bhi + 1e-9 && blo >= 0 && bhi <= 100);
    free(out);
    /* a clip shorter than the window is counted and said to be padded */
    char shortwav[512];
    st_test_tmpfile(shortwav, sizeof shortwav, "short.wav");
    CU_ASSERT_EQUAL(st_audio_write_wav(shortwav, x, 8000, 16000, ST_WAV_PCM16), ST_OK);
    snprintf(cmd, sizeof cmd, "%s eval sc12 --manifest %s --model %s 2>&1", cli, man, model);
    out = run_on(man,
                 "path\tlabel12\tword\tspeaker\nshort.wav\tyes\tyes\ts1\nclip.wav\tno\tno\ts1\n",
                 cmd, &status);
    CU_ASSERT_EQUAL(status, 0);
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "\n1 clips shorter than the 1-s window, each centred"));
    CU_ASSERT(out && sscanf(last_line(out), "accuracy %lf (n=%d)", &acc, &nn) == 2 && nn == 2);
    free(out);
    /* a row whose label is empty is refused by its line, not read as another field */
    out = run_on(man, "path\tlabel12\tword\tspeaker\nclip.wav\t\tyes\ts1\nclip.wav\tyes\tyes\ts1\n",
                 cmd, &status);
    CU_ASSERT_EQUAL(status, 0);
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "sc12_spk.tsv:2: expected path, label12"));
    CU_ASSERT(out && sscanf(last_line(out), "accuracy %lf (n=%d)", &acc, &nn) == 2 && nn == 1);
    free(out);
    st_test_tmpfile(man, sizeof man, "sc12.tsv");
    snprintf(cmd, sizeof cmd, "%s eval sc12 --manifest %s --model %s --clips /nonexistent/c.tsv 2>&1",
             cli, man, model);
    out = run(cmd, &status);
    CU_ASSERT_NOT_EQUAL(status, 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "/nonexistent/c.tsv"));
    free(out);
    /* a decision-rule or beam option out of its range or not a number is
       refused by name, before any clip (it was read with atof: "--on 2" ran) */
    static const char *const bad_opts[][2] = {{"--on 2", "--on: 2 is out of range"},
                                              {"--off x", "--off: 'x' is not a number"},
                                              {"--min 0", "--min: 0 is out of range"},
                                              {"--beam 99", "--beam: 99 is out of range"}};
    for (size_t k = 0; k < sizeof bad_opts / sizeof bad_opts[0]; k++) {
        snprintf(cmd, sizeof cmd, "%s eval sc12 --manifest %s --model %s %s 2>&1", cli, man,
                 model, bad_opts[k][0]);
        out = run(cmd, &status);
        CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 2);
        CU_ASSERT_PTR_NOT_NULL(out && strstr(out, bad_opts[k][1]));
        free(out);
    }
    /* asr-tool data into a folder it cannot write: refused by name */
    {
        const char *build = getenv("ST_BUILD") ? getenv("ST_BUILD") : "build";
        snprintf(cmd, sizeof cmd, "%s/asr-tool data --data-dir /nonexistent --out %s/no/such --configs 1 2>&1",
                 build, dir);
        out = run(cmd, &status);
        CU_ASSERT_NOT_EQUAL(status, 0);
        CU_ASSERT_PTR_NOT_NULL(strstr(out, "cannot write the test manifests in"));
        CU_ASSERT_PTR_NOT_NULL(strstr(out, "/no/such"));
        free(out);
    }
    /* bench asr: a missing clip and a row outside the 12 classes are named
       and counted, the rest run; a manifest that leaves no clip is refused
       (not a table of 0 %) */
    snprintf(cmd, sizeof cmd, "%s bench asr --manifest %s --model %s 2>&1", cli, man, model);
    out = run_on(man,
                 "path\tlabel12\tword\tspeaker\nclip.wav\tyes\tyes\ts1\ngone.wav\tno\tno\ts1\n"
                 "clip.wav\tbanana\tbanana\ts1\n",
                 cmd, &status);
    CU_ASSERT_PTR_NOT_NULL_FATAL(out);
    CU_ASSERT_EQUAL(status, 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "gone.wav"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "sc12.tsv:4: expected path, label12"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "1 rows not in the manifest's layout, 1 clips unreadable"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "spiketalk snn          1"));
    free(out);
    out = run_on(man, "path\tlabel12\tword\tspeaker\ngone.wav\tno\tno\ts1\n", cmd, &status);
    CU_ASSERT_PTR_NOT_NULL_FATAL(out);
    CU_ASSERT_NOT_EQUAL(status, 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "gives no clip to run (0 rows not in its layout, 1 clips unreadable)"));
    CU_ASSERT_PTR_NULL(strstr(out, "accuracy"));
    free(out);
    /* eval on a list with no row is refused by name (it exited 1 in silence) */
    snprintf(cmd, sizeof cmd, "%s eval sc12 --manifest %s --model %s 2>&1", cli, man, model);
    out = run_on(man, "path\tlabel12\tword\tspeaker\n", cmd, &status);
    CU_ASSERT_PTR_NOT_NULL_FATAL(out);
    CU_ASSERT_NOT_EQUAL(status, 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "sc12.tsv' lists no clips"));
    free(out);
    /* rows that all fail give no figure of nothing: "accuracy 0 (n=0)" exited 0 */
    out = run_on(man, "path\tlabel12\tword\tspeaker\ngone.wav\tno\tno\ts1\n", cmd, &status);
    CU_ASSERT_PTR_NOT_NULL_FATAL(out);
    CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "no clip of the manifest could be evaluated"));
    free(out);
    /* a request's end time that is not a number is refused by its line (atof read 0) */
    snprintf(cmd, sizeof cmd, "%s eval requests --manifest %s --model %s 2>&1", cli, man, model);
    out = run_on(man, "path\ttext\tspeaker\tends\ngone.wav\tyes no\ts1\t0.5 soon\n", cmd,
                 &status);
    CU_ASSERT_PTR_NOT_NULL_FATAL(out);
    CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) != 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "sc12.tsv:2: ends: 'soon' is not a time in seconds"));
    free(out);
    /* the held-out requests: every word has an end, in order, inside its audio */
    snprintf(man, sizeof man, "%s/test_requests.tsv", dir);
    f = fopen(man, "r");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    char line[2048];
    int rows = 0;
    while (fgets(line, sizeof line, f)) {
        if (!strncmp(line, "path\t", 5))
            continue;
        char *save = NULL;
        char *path = strtok_r(line, "\t", &save), *text = strtok_r(NULL, "\t", &save);
        char *spk = strtok_r(NULL, "\t", &save), *ends = strtok_r(NULL, "\t\n", &save);
        CU_ASSERT_PTR_NOT_NULL_FATAL(ends);
        CU_ASSERT(spk && strstr(spk, "/"));
        int n_text = 1, n_ends = 0;
        for (const char *c = text; *c; c++)
            n_text += *c == ' ';
        double prev = 0, e = 0;
        for (char *v = strtok_r(ends, " ", &save); v; v = strtok_r(NULL, " ", &save)) {
            e = atof(v);
            CU_ASSERT(e > prev);
            prev = e;
            n_ends++;
        }
        CU_ASSERT_EQUAL(n_text, n_ends);
        char full[1024];
        snprintf(full, sizeof full, "%s/%s", dir, path);
        st_audio au = {0};
        CU_ASSERT_EQUAL_FATAL(st_audio_read(full, &au), ST_OK);
        CU_ASSERT(e < (double)au.frames / au.sample_rate_hz);
        st_audio_free(&au);
        rows++;
    }
    fclose(f);
    CU_ASSERT_EQUAL(rows, 5);
    snprintf(cmd, sizeof cmd, "%s eval requests --manifest %s --model %s 2>&1", cli, man, model);
    out = run(cmd, &status);
    CU_ASSERT_EQUAL(status, 0);
    unsigned long nr = 0, V = 0, E = 0, C = 0, S = 0, D = 0, I = 0;
    const char *s = strstr(out, "requests ");
    CU_ASSERT_EQUAL(s ? sscanf(s, "requests %lu, vocabulary words %lu, emitted %lu: correct %lu, "
                               "substituted %lu, deleted %lu, inserted %lu",
                               &nr, &V, &E, &C, &S, &D, &I) : 0, 7);
    CU_ASSERT_EQUAL(nr, 5);
    CU_ASSERT(V > 0);
    CU_ASSERT_EQUAL(C + S + D, V);
    CU_ASSERT_EQUAL(C + S + I, E);
    /* the per-word table adds up to the same counts */
    unsigned long tn = 0, tc = 0, td = 0, ts = 0;
    const char *row = strstr(out, "correct%\n");
    CU_ASSERT_PTR_NOT_NULL(row);
    for (row = row ? strchr(row, '\n') + 1 : NULL; row && *row && row < s;) {
        char word[64];
        unsigned long n1, c1, d1, s1;
        if (sscanf(row, "%63s %lu %lu %lu %lu", word, &n1, &c1, &d1, &s1) != 5)
            break;
        CU_ASSERT_EQUAL(c1 + d1 + s1, n1);
        tn += n1, tc += c1, td += d1, ts += s1;
        row = strchr(row, '\n');
        row = row ? row + 1 : NULL;
    }
    CU_ASSERT_EQUAL(tn, V);
    CU_ASSERT_EQUAL(tc, C);
    CU_ASSERT_EQUAL(td, D);
    CU_ASSERT_EQUAL(ts, S);
    CU_ASSERT_EQUAL(sscanf(last_line(out), "wer %lf (n=%d)", &w, &nn), 2);
    CU_ASSERT_EQUAL(nn, 5);
    CU_ASSERT(fabs(w - (double)(S + D + I) / (double)V) < 1e-3);
    free(out);
    /* the classifier's recipe: a second member (another seed, with masks),
       a third trained on clips less their mean (--cmn), and the three
       merged into one file of two views that evaluates */
    const char *build = getenv("ST_BUILD") ? getenv("ST_BUILD") : "build";
    snprintf(man, sizeof man, "%s/sc12.tsv", dir);
    f = fopen(man, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fprintf(f, "path\tlabel12\tword\tspeaker\n%s\t_silence_\t\t\n%s\tyes\tyes\ts1\n", wav, wav);
    fclose(f);
    snprintf(cmd, sizeof cmd,
             "%s/asr-tool train --dir %s --out %s/member1.stm --seed 1 --mask-freq 2:6 "
             "--mask-time 2:10 --max-steps 4 --hidden 32 --threads 1 >/dev/null 2>&1 && "
             "%s/asr-tool train --dir %s --out %s/cmn0.stm --cmn --max-steps 4 --hidden 32 "
             "--threads 1 >/dev/null 2>&1 && "
             "%s/asr-tool merge --out %s/ens.stm %s %s/member1.stm %s/cmn0.stm 2>&1 && "
             "%s eval sc12 --manifest %s --model %s/ens.stm 2>&1",
             build, dir, dir, build, dir, dir, build, dir, model, dir, dir, cli, man, dir);
    out = run(cmd, &status);
    CU_ASSERT_EQUAL(status, 0);
    if (status)
        fprintf(stderr, "\n  asr:smoke_recipe_and_eval: member and merge: %s\n", out ? out : "");
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "3 recognizers as one"));
    CU_ASSERT_EQUAL(out ? sscanf(last_line(out), "accuracy %lf (n=%d)", &acc, &nn) : 0, 2);
    CU_ASSERT_EQUAL(nn, 2);
    free(out);
    snprintf(model, sizeof model, "%s/ens.stm", dir);
    a = st_asr_load(model, &err);
    bool views[ST_ASR_MAX_VIEWS];
    CU_ASSERT_TRUE(a && st_asr_views(a, views) == 2 && !views[0] && views[1]);
    st_asr_destroy(&a);
    /* a bad mask is refused with what it wants */
    snprintf(cmd, sizeof cmd, "%s/asr-tool train --dir %s --out %s/x.stm --mask-time 2 2>&1",
             build, dir, dir);
    out = run(cmd, &status);
    CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 2);
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "--mask-time wants N:W"));
    free(out);
}

/* ---- CTC ---- */

static void test_ctc_empty_labels(void)
{
    /* a read-out of 3 LI units with every weight and bias 0: the read-out is
       0 at each step, each output has probability 1/3, and the CTC loss of
       an empty sequence is -sum_t log p_t(blank) = T log 3 */
    int err = 0;
    st_train_layer_params L = st_train_layer_default_params(ST_TRAIN_DENSE);
    L.neurons = 3;
    L.neuron = st_snn_neuron_default_params(ST_SNN_LI);
    L.neuron.dt = 0.01;
    st_train_model *m = st_train_model_new(2, &L, 1, 1, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    for (size_t k = 0; k < st_train_model_param_count(m); k++) {
        st_train_tensor t;
        CU_ASSERT_EQUAL_FATAL(st_train_model_param(m, k, &t), ST_OK);
        memset(t.data, 0, t.count * sizeof *t.data);
    }
    st_train_model_changed(m);
    st_train_params p = st_train_default_params();
    p.loss = ST_TRAIN_LOSS_CTC;
    p.ctc_blank = 0;
    p.threads = 1;
    st_train *tr = st_train_new(m, &p, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(tr);
    st_train_data *d = st_train_data_new(2, 7, 2, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    float x[7 * 2];
    for (int i = 0; i < 14; i++)
        x[i] = (float)(i % 3);
    int32_t one = 1;
    CU_ASSERT_EQUAL(st_train_data_set_seq(d, 0, x, 5, NULL, 0), ST_OK);
    CU_ASSERT_EQUAL(st_train_data_set_seq(d, 1, x, 7, NULL, 0), ST_OK);
    size_t n = 99;
    st_train_data_labels(d, 0, &n);
    CU_ASSERT_EQUAL(n, 0);
    CU_ASSERT_EQUAL(st_train_check_data(tr, d, "test"), ST_OK);
    st_train_stats st;
    CU_ASSERT_EQUAL_FATAL(st_train_evaluate(tr, d, &st), ST_OK);
    CU_ASSERT_DOUBLE_EQUAL(st.loss, (5 * log(3.0) + 7 * log(3.0)) / 2, 1e-5);
    CU_ASSERT_EQUAL(st.correct, 2); /* nothing decoded: an empty sequence, right */
    /* its gradient is finite, and a step lowers the loss (the blank's bias rises) */
    size_t idx[2] = {0, 1};
    CU_ASSERT_EQUAL(st_train_step(tr, d, idx, 2, &st), ST_OK);
    CU_ASSERT(st.grad_norm > 0 && isfinite(st.grad_norm));
    st_train_stats st2;
    CU_ASSERT_EQUAL(st_train_evaluate(tr, d, &st2), ST_OK);
    CU_ASSERT(st2.loss < (5 * log(3.0) + 7 * log(3.0)) / 2);
    /* the hand value on a trained read-out: -sum_t log softmax(y_t)[0] */
    float y[7 * 3];
    CU_ASSERT_EQUAL_FATAL(st_train_forward(tr, x, 7, y), ST_OK);
    double hand = 0;
    for (int t = 0; t < 7; t++) {
        double se = 0;
        for (int k = 0; k < 3; k++)
            se += exp((double)y[t * 3 + k]);
        hand -= (double)y[t * 3] - log(se);
    }
    st_train_data *d7 = st_train_data_new(1, 7, 2, &err);
    CU_ASSERT_EQUAL(st_train_data_set_seq(d7, 0, x, 7, NULL, 0), ST_OK);
    CU_ASSERT_EQUAL(st_train_evaluate(tr, d7, &st2), ST_OK);
    CU_ASSERT_DOUBLE_EQUAL(st2.loss, hand, 1e-4 * hand);
    /* a set that mixes empty and non-empty sequences survives its file */
    CU_ASSERT_EQUAL(st_train_data_set_seq(d, 1, x, 7, &one, 1), ST_OK);
    char path[512];
    st_test_tmpfile(path, sizeof path, "ctc.std");
    CU_ASSERT_EQUAL_FATAL(st_train_data_save(d, path), ST_OK);
    st_train_data *back = st_train_data_load(path, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(back);
    st_train_data_labels(back, 0, &n);
    CU_ASSERT_EQUAL(n, 0);
    const int32_t *l1 = st_train_data_labels(back, 1, &n);
    CU_ASSERT(n == 1 && l1 && l1[0] == 1);
    st_train_data_destroy(&back);
    st_train_data_destroy(&d7);
    st_train_data_destroy(&d);
    st_train_destroy(&tr);
    st_train_model_destroy(&m);
}

/* frames of the hand model: 4 features, feature k drives class k */
static void put(float *frames, int from, int to, int k, float v)
{
    for (int t = from; t < to; t++) {
        memset(frames + t * 4, 0, 4 * sizeof *frames);
        frames[t * 4 + k] = v;
    }
}

/* Steps the hand-made 4-class net's state `ref` by one frame and says
   whether the softmax of its read-out is `prob` (to 1e-6). */
static bool ref_matches(const st_asr *a, st_snn_state *ref, int out, const float *frame,
                        const float *prob)
{
    st_snn_step(st_asr_net(a), ref, frame);
    const float *o = st_snn_state_output(ref, out, NULL);
    float m = o[0], se = 0;
    bool same = true;
    for (int k = 1; k < 4; k++)
        m = o[k] > m ? o[k] : m;
    for (int k = 0; k < 4; k++)
        se += expf(o[k] - m);
    for (int k = 0; k < 4; k++)
        same &= fabsf(prob[k] - expf(o[k] - m) / se) < 1e-6f;
    return same;
}

static void test_ctc_clip_and_stream(void)
{
    st_asr *a = hand_model();
    st_asr_set_pool(a, ST_ASR_POOL_CTC);
    /* the pool and the CTC default rule survive the file */
    char path[512];
    st_test_tmpfile(path, sizeof path, "ctc.stm");
    CU_ASSERT_EQUAL_FATAL(st_asr_save(a, path), ST_OK);
    int err = 0;
    st_asr *b = st_asr_load(path, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    CU_ASSERT_EQUAL(st_asr_default_pool(b), ST_ASR_POOL_CTC);
    st_asr_decider_params dp = st_asr_stream_params(b, NULL), dc = st_asr_stream_ctc_params();
    CU_ASSERT(dp.on_threshold == dc.on_threshold && dp.min_frames == 1 && dp.emit_early);
    st_asr_destroy(&b);

    /* clip: blank, then "no" for a while: "no"; blank only: silence; a weak
       "no" that never reaches ST_ASR_CTC_SPEECH_P in any frame: silence, but
       "no" is still the best speech class */
    static float frames[400 * 4];
    float scores[4];
    put(frames, 0, 60, 0, 4.0f);
    put(frames, 20, 35, 3, 4.0f);
    CU_ASSERT_EQUAL(st_asr_classify(a, frames, 60, ST_ASR_POOL_CTC, scores), 3);
    CU_ASSERT(scores[3] > scores[2] && scores[3] > scores[1]);
    CU_ASSERT(fabsf(scores[0] + scores[1] + scores[2] + scores[3] - 1.0f) < 1e-4f);
    put(frames, 0, 60, 0, 4.0f);
    CU_ASSERT_EQUAL(st_asr_classify(a, frames, 60, ST_ASR_POOL_CTC, scores), ST_ASR_SILENCE);
    put(frames, 0, 60, 0, 4.0f);
    for (int t = 20; t < 35; t++)
        frames[t * 4 + 3] = 2.0f;
    CU_ASSERT_EQUAL(st_asr_classify(a, frames, 60, ST_ASR_POOL_CTC, scores), ST_ASR_SILENCE);
    CU_ASSERT_EQUAL(st_asr_best_speech(a, scores), 3);

    /* stream: one net step a frame - its probabilities are the softmax of the
       net stepped by hand over the same normalised frames (mean 0, std 1) */
    put(frames, 0, 400, 0, 4.0f);
    put(frames, 30, 45, 2, 4.0f);   /* yes */
    put(frames, 45, 60, 0, 4.0f);
    put(frames, 60, 75, 2, 4.0f);   /* yes again, after a blank */
    put(frames, 250, 270, 3, 4.0f); /* no, after more than a second of blank */
    st_asr_stream *s = st_asr_stream_new(a, NULL, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    st_snn_state *ref = st_snn_state_new(st_asr_net(a), &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ref);
    int out = st_snn_net_find(st_asr_net(a), "output");
    int words[8], n_words = 0, reset_at = -1;
    static float seen[250][4];
    bool same = true;
    for (int t = 0; t < 250; t++) {
        st_asr_event ev;
        float prob[4];
        int got = st_asr_stream_push(s, frames + t * 4, (uint64_t)t * 160 + 159, &ev, prob);
        memcpy(seen[t], prob, sizeof prob);
        if (got) {
            CU_ASSERT(ev.start_stamp <= ev.end_stamp && ev.end_stamp == ev.decided_stamp);
            CU_ASSERT(ev.decided_stamp == (uint64_t)t * 160 + 159);
            CU_ASSERT(ev.start_stamp >= 30 * 160);
            if (n_words < 8)
                words[n_words++] = ev.word;
        }
        if (reset_at < 0) /* (ref never restarts) */
            same &= ref_matches(a, ref, out, frames + t * 4, prob);
        if (reset_at < 0 && st_asr_stream_state_resets(s) == 1)
            reset_at = t;
    }
    CU_ASSERT(same);
    CU_ASSERT_EQUAL(n_words, 2);
    CU_ASSERT(words[0] == 2 && words[1] == 2);
    /* a second of blank after the last word restarted the net ... */
    CU_ASSERT(reset_at >= 75 + ST_ASR_CTC_RESET_FRAMES - 1 && reset_at < 75 + ST_ASR_CTC_RESET_FRAMES + 30);
    /* ... so from there on it gives what a fresh net run over the last
       ST_ASR_CTC_REPLAY_FRAMES frames gives, bit for bit (until its next
       restart: the blank after "no") */
    st_snn_state_reset(ref);
    for (int t = reset_at + 1 - ST_ASR_CTC_REPLAY_FRAMES; t <= reset_at; t++)
        st_snn_step(st_asr_net(a), ref, frames + t * 4);
    bool fresh = true;
    int later = 0;
    for (int t = reset_at + 1; t < 400; t++) {
        st_asr_event ev;
        float p1[4];
        int g1 = t < 250 ? 0 : st_asr_stream_push(s, frames + t * 4, (uint64_t)t, &ev, p1);
        if (t < 250)
            memcpy(p1, seen[t], sizeof p1); /* what s took after its restart */
        bool match = ref_matches(a, ref, out, frames + t * 4, p1);
        if (st_asr_stream_state_resets(s) == 1)
            fresh &= match;
        if (g1) {
            later++;
            CU_ASSERT_EQUAL(ev.word, 3);
        }
    }
    CU_ASSERT(fresh);
    CU_ASSERT_EQUAL(later, 1);
    CU_ASSERT(st_asr_stream_state_resets(s) >= 2);
    /* a reset of the stream starts it over */
    st_asr_stream_reset(s);
    CU_ASSERT_EQUAL(st_asr_stream_state_resets(s), 0);
    st_snn_state_destroy(&ref);
    st_asr_stream_destroy(&s);
    st_asr_destroy(&a);
}

static void test_ctc_smoke_recipe(void)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/ctc", st_test_tmpdir());
    /* (--pauses: the recipe's pauses inside requests run too) */
    const char *cli =
        smoke_recipe("asr:ctc_smoke_recipe", dir, " --ctc --pauses 0.5", " --loss ctc");
    if (!cli)
        return;
    char cmd[4096], *out;
    int status = 0;
    /* the sets hold label sequences; the model is a ctc one */
    char path[1024];
    int err = 0;
    snprintf(path, sizeof path, "%s/train.std", dir);
    st_train_data *d = st_train_data_load(path, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    CU_ASSERT(st_train_data_is_seq(d));
    size_t longest = 0, most = 0;
    for (size_t k = 0; k < st_train_data_count(d); k++) {
        size_t steps, n;
        st_train_data_input(d, k, &steps);
        st_train_data_labels(d, k, &n);
        longest = steps > longest ? steps : longest;
        most = n > most ? n : most;
    }
    CU_ASSERT(longest > 130 && longest <= 350); /* whole requests, under 3.5 s */
    CU_ASSERT(most >= 2);
    st_train_data_destroy(&d);
    snprintf(path, sizeof path, "%s/asr.stm", dir);
    st_asr *a = st_asr_load(path, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT_EQUAL(st_asr_default_pool(a), ST_ASR_POOL_CTC);
    st_asr_destroy(&a);
    snprintf(cmd, sizeof cmd, "%s eval requests --manifest %s/test_requests.tsv --model %s 2>&1",
             cli, dir, path);
    out = run(cmd, &status);
    CU_ASSERT_EQUAL(status, 0);
    double w = -1;
    int nn = 0;
    CU_ASSERT_EQUAL(sscanf(last_line(out), "wer %lf (n=%d)", &w, &nn), 2);
    CU_ASSERT_EQUAL(nn, 5);
    free(out);
    /* a share of requests with a pause outside 0..1 is refused, by name */
    const char *build = getenv("ST_BUILD") ? getenv("ST_BUILD") : "build";
    snprintf(cmd, sizeof cmd, "%s/asr-tool data --ctc --pauses 1.5 --out %s/bad 2>&1", build, dir);
    out = run(cmd, &status);
    CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "--pauses takes a share 0..1, not '1.5'"));
    free(out);
}

/* The shipped streaming model on "hello." (espeak-ng en-gb-scotland, the
   demo's user voice) after 0.75-1.20 s of quiet noise: the net restarts
   after a second of blank, and for leads near a second that restart fell
   on the word's first frames, before the net had named it (or just before
   them, leaving a fresh net no lead-in); without the replay of the frames
   before the restart the word was lost (found in `spiketalk demo`, whose
   first "hello." came after 0.8 s of quiet: the 300-voice model missed it
   at 0.80-0.90 s, the 600-voice one at 0.90-1.00 and 1.15-1.20 s). Shorter
   leads never restart the net: what the model hears there is its own
   accuracy, not this mechanism's. The 900-voice model misses one lead with
   the replay (1.15 s: the restart falls 0.15 s before the word, and its
   "hello" peaks at 0.2 under the blank) and one without it (0.95 s), so one
   miss is allowed; the replay itself is checked bit for bit on the hand
   model (ctc_clip_and_stream). */
static void test_ctc_word_at_restart(void)
{
    const char *test = "asr:ctc_word_at_restart";
    FILE *model = fopen("models/asr_stream.stm", "rb");
    if (!model) {
        st_test_skip(test, "no models/asr_stream.stm here (run from the repository root)");
        return;
    }
    fclose(model);
    st_tts_params p = st_tts_default_params();
    p.voice = "en-gb-scotland";
    p.sample_rate_hz = 16000;
    p.lead_silence_ms = 0;
    int err;
    st_tts *t = st_tts_new(&p, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    st_tts_result r;
    CU_ASSERT_EQUAL_FATAL(st_tts_synthesize(t, "hello.", &r), ST_OK);
    st_tts_destroy(&t);
    size_t tail = 8000, max_lead = 19200;
    float *x = calloc(max_lead + r.frames + tail, sizeof *x);
    CU_ASSERT_PTR_NOT_NULL_FATAL(x);
    int heard = 0, tried = 0;
    for (size_t lead = 12000; lead <= max_lead; lead += 800) {
        size_t n = lead + r.frames + tail;
        st_test_noise(x, n, 5 + (unsigned)lead, 16000, 7000);
        for (size_t i = 0; i < n; i++)
            x[i] *= 0.006f; /* RMS 0.0006, ~-65 dBFS: the demo's room */
        for (size_t i = 0; i < r.frames; i++)
            x[lead + i] += r.samples[i];
        char wav[512], args[1024], *out = NULL;
        st_test_tmpfile(wav, sizeof wav, "hello_lead.wav");
        CU_ASSERT_EQUAL_FATAL(st_audio_write_wav(wav, x, n, 16000, ST_WAV_PCM16), ST_OK);
        snprintf(args, sizeof args, "listen %s", wav);
        CU_ASSERT_EQUAL(st_test_run_cli(args, &out), 0);
        tried++;
        if (out && strstr(out, "hello"))
            heard++;
        else
            fprintf(stderr, "\n  %s: no \"hello\" after %.2f s of quiet:\n%s", test,
                    lead / 16000.0, out ? out : "(no output)");
        free(out);
        remove(wav);
    }
    CU_ASSERT_EQUAL(tried, 10);
    CU_ASSERT(heard >= tried - 1);
    free(x);
    st_tts_result_free(&r);
}

/* asr-tool align (tools/asr_align.c): espeak-ng speaks two "AN4"
   utterances whose word times it knows; pocketsphinx's forced alignment
   must put every word within 150 ms of them. An utterance with a word
   outside the dictionary is left out and said; a folder with no manifest is
   an error naming it. */
static void test_an4_align(void)
{
    const char *test = "asr:an4_align";
    const char *build = getenv("ST_BUILD") ? getenv("ST_BUILD") : "build";
    char tool[512], dir[512], cmd[2048], path[1024];
    snprintf(tool, sizeof tool, "%s/asr-tool", build);
    if (access(tool, X_OK) != 0) {
        st_test_skip(test, "build/asr-tool not built (make test builds it)");
        return;
    }
    CU_ASSERT_EQUAL_FATAL(access("/usr/bin/pocketsphinx_batch", X_OK), 0); /* tools/deps */
    snprintf(dir, sizeof dir, "%s/an4", st_test_tmpdir());
    snprintf(cmd, sizeof cmd, "mkdir -p %s/spk", dir);
    CU_ASSERT_EQUAL_FATAL(system(cmd), 0);
    const char *texts[] = {"yes", "one two seven", "zzqx one"};
    st_tts_params p = st_tts_default_params();
    p.voice = "en-us";
    p.sample_rate_hz = 16000;
    int err;
    st_tts *t = st_tts_new(&p, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    st_tts_result r[2];
    snprintf(path, sizeof path, "%s/manifest.tsv", dir);
    FILE *man = fopen(path, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(man);
    fprintf(man, "path\ttext\tspeaker\n");
    for (int u = 0; u < 3; u++) {
        fprintf(man, "spk/u%d.wav\t%s\tspk\n", u, texts[u]);
        if (u == 2)
            break; /* never read: its word "zzqx" is not in the dictionary */
        CU_ASSERT_EQUAL_FATAL(st_tts_synthesize(t, texts[u], &r[u]), ST_OK);
        snprintf(path, sizeof path, "%s/spk/u%d.wav", dir, u);
        CU_ASSERT_EQUAL_FATAL(st_audio_write_wav(path, r[u].samples, r[u].frames, 16000,
                                                 ST_WAV_PCM16), ST_OK);
    }
    fclose(man);
    st_tts_destroy(&t);
    int status = 0;
    snprintf(cmd, sizeof cmd, "%s align %s %s/align.tsv 2>&1", tool, dir, dir);
    char *out = run(cmd, &status);
    CU_ASSERT_EQUAL(status, 0);
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "2 AN4 utterances aligned (4 words)"));
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "not in pocketsphinx's dictionary: 1"));
    free(out);
    snprintf(path, sizeof path, "%s/align.tsv", dir);
    FILE *f = fopen(path, "r");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    char line[512], rel[256], word[64], spk[64];
    double s0, s1;
    int rows = 0, u_prev = -1, k = 0;
    CU_ASSERT_PTR_NOT_NULL(fgets(line, sizeof line, f)); /* header */
    while (fgets(line, sizeof line, f)) {
        int u = -1;
        CU_ASSERT_EQUAL_FATAL(sscanf(line, "%255s %63s %lf %lf %63s", rel, word, &s0, &s1, spk), 5);
        CU_ASSERT_EQUAL_FATAL(sscanf(rel, "spk/u%d.wav", &u), 1);
        CU_ASSERT_FATAL(u == 0 || u == 1);
        k = u == u_prev ? k + 1 : 0;
        u_prev = u;
        CU_ASSERT_FATAL((size_t)k < r[u].n_words);
        const st_tts_word *w = &r[u].words[k];
        CU_ASSERT_STRING_EQUAL(word, w->text);
        CU_ASSERT(fabs(s0 - (double)w->start / 16000) < 0.15);
        CU_ASSERT(fabs(s1 - (double)w->end / 16000) < 0.15);
        if (fabs(s0 - (double)w->start / 16000) >= 0.15 ||
            fabs(s1 - (double)w->end / 16000) >= 0.15)
            fprintf(stderr, "\n  %s: %s aligned at %.2f-%.2f s, spoken at %.2f-%.2f s\n", test,
                    word, s0, s1, (double)w->start / 16000, (double)w->end / 16000);
        rows++;
    }
    fclose(f);
    CU_ASSERT_EQUAL(rows, 4);
    st_tts_result_free(&r[0]);
    st_tts_result_free(&r[1]);
    /* no manifest: an error that names it */
    snprintf(cmd, sizeof cmd, "%s align %s/spk %s/none.tsv 2>&1", tool, dir, dir);
    out = run(cmd, &status);
    CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 1);
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "spk/manifest.tsv"));
    free(out);
    /* asr-tool data: an alignment file that is not there, a share of letters
       outside 0..1: refused by name */
    snprintf(cmd, sizeof cmd, "%s data --data-dir /nonexistent --out %s/d --configs 1 "
             "--an4 %s/none.tsv 2>&1", tool, dir, dir);
    out = run(cmd, &status);
    CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 1);
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "none.tsv: cannot open it"));
    free(out);
    snprintf(cmd, sizeof cmd, "%s data --an4-letters 1.5 --out %s/d 2>&1", tool, dir);
    out = run(cmd, &status);
    CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 2);
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "--an4-letters takes a share 0..1, not '1.5'"));
    free(out);
}

/* asr-tool data's options that change the mix refuse bad values by name,
   before any work */
static void test_data_options(void)
{
    const char *dir = st_test_tmpdir(); /* removed at exit */
    char cmd[1024];
    const char *build = getenv("ST_BUILD") ? getenv("ST_BUILD") : "build";
    char tool[512];
    snprintf(tool, sizeof tool, "%s/asr-tool", build);
    if (access(tool, X_OK) != 0) {
        st_test_skip("asr:data_options", "build/asr-tool not built (make test builds it)");
        return;
    }
    int status;
    snprintf(cmd, sizeof cmd, "%s data --sc-aug lots --out %s/d 2>&1", tool, dir);
    char *out = run(cmd, &status);
    CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 2);
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "--sc-aug takes a count 0..16, not 'lots'"));
    free(out);
    snprintf(cmd, sizeof cmd, "%s data --data-dir /nonexistent --out %s/d --norm %s/none.stf 2>&1",
             tool, dir, dir);
    out = run(cmd, &status);
    CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 1);
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "--norm") && strstr(out, "none.stf"));
    free(out);
    /* every number an option takes is checked, by name, before any work */
    const char *bad[][2] = {
        {"train --seed x", "--seed takes a number 0..1000000, not 'x'"},
        {"train --epochs 0", "--epochs takes a count 1..100000, not '0'"},
        {"train --lr 1e3", "--lr takes a rate"},
        {"data --configs many", "--configs takes a count"},
        {"data --snr-min -30", "--snr-min takes a level in dB -20..25, not '-30'"},
        {"data --trim 2", "--trim takes a share 0..1, not '2'"},
        {"rule --on 1.5", "--on takes a probability 0..1, not '1.5'"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        snprintf(cmd, sizeof cmd, "%s %s --out %s/d 2>&1", tool, bad[k][0], dir);
        out = run(cmd, &status);
        CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 2);
        CU_ASSERT_PTR_NOT_NULL(out && strstr(out, bad[k][1]));
        if (!out || !strstr(out, bad[k][1]))
            fprintf(stderr, "\n  asr-tool %s: wanted '%s' in: %s\n", bad[k][0], bad[k][1],
                    out ? out : "(nothing)");
        free(out);
    }
    /* --help teaches: every command, or one with its options; exit 0 */
    const char *helps[][2] = {{"--help", "asr-tool merge --out MODEL"},
                              {"data --help", "--festival F"},
                              {"merge --help", "must share"},
                              {"train -h", "--mask-freq N:W"}};
    for (size_t k = 0; k < sizeof helps / sizeof helps[0]; k++) {
        snprintf(cmd, sizeof cmd, "%s %s 2>&1", tool, helps[k][0]);
        out = run(cmd, &status);
        CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        CU_ASSERT_PTR_NOT_NULL(out && strstr(out, helps[k][1]));
        free(out);
    }
    snprintf(cmd, sizeof cmd, "%s bogus 2>&1", tool);
    out = run(cmd, &status);
    CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 2);
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "unknown command 'bogus'"));
    free(out);
    /* --festival without festival: named, with what to install */
    snprintf(cmd, sizeof cmd,
             "PATH=/nonexistent %s data --data-dir /nonexistent --out %s/f --configs 0 --festival 1 "
             "2>&1", tool, dir);
    out = run(cmd, &status);
    CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 1);
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "festival is not installed") &&
                           strstr(out, "tools/deps"));
    free(out);
    snprintf(cmd, sizeof cmd, "rm -rf %s/f", dir);
    CU_ASSERT_EQUAL(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "test ! -e %s/d", dir); /* nothing was written */
    CU_ASSERT_EQUAL(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CU_ASSERT_EQUAL(system(cmd), 0);
}

CU_TestInfo st_tests_asr[] = {
    {"decider", test_decider},
    {"unknown_is_never_a_word", test_unknown_is_never_a_word},
    {"file_round_trip", test_file_round_trip},
    {"ensemble", test_ensemble},
    {"cmn", test_cmn},
    {"data_options", test_data_options},
    {"smoke_recipe_and_eval", test_smoke_recipe_and_eval},
    {"ctc_empty_labels", test_ctc_empty_labels},
    {"ctc_clip_and_stream", test_ctc_clip_and_stream},
    {"ctc_word_at_restart", test_ctc_word_at_restart},
    {"ctc_smoke_recipe", test_ctc_smoke_recipe},
    {"an4_align", test_an4_align},
    CU_TEST_INFO_NULL,
};
