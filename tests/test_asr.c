/*  tests/test_asr.c - the recognizer (snn/asr.h): the decision rule on
    synthetic read-outs, the model file round trip and a bad model refused,
    an out-of-vocabulary case that must come out as "_unknown_", the smoke
    recipe (tools/asr_tool.c: a few steps lower the loss), and the last line
    of `spiketalk eval`; the held-out requests the recipe writes (each word
    with its end inside the audio) and `spiketalk eval requests` over them
    (its counts agree with an alignment: correct + substituted + deleted =
    the reference words, correct + substituted + inserted = the emitted).

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

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

static const char *last_line(char *out)
{
    size_t n = strlen(out);
    while (n && out[n - 1] == '\n')
        out[--n] = 0;
    char *nl = strrchr(out, '\n');
    return nl ? nl + 1 : out;
}

static void test_smoke_recipe_and_eval(void)
{
    const char *build = getenv("ST_BUILD") ? getenv("ST_BUILD") : "build";
    const char *cli = getenv("ST_CLI") ? getenv("ST_CLI") : "build/spiketalk";
    char tool[512], cmd[2048];
    snprintf(tool, sizeof tool, "%s/asr-tool", build);
    if (access(tool, X_OK) != 0 || access(cli, X_OK) != 0) {
        st_test_skip("asr:smoke_recipe_and_eval", "build/asr-tool or the CLI not built (make test builds them)");
        return;
    }
    const char *dir = st_test_tmpdir();
    int status = 0;
    snprintf(cmd, sizeof cmd,
             "%s data --data-dir /nonexistent --out %s --configs 1 --aug 1 --requests 1 "
             "--per-config 2 2>/dev/null && "
             "%s train --dir %s --out %s/asr.stm --max-steps 8 --hidden 32 --threads 1 2>&1",
             tool, dir, tool, dir, dir);
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
    snprintf(cmd, sizeof cmd, "%s eval sc12 --manifest %s --model %s 2>&1", cli, man, model);
    out = run(cmd, &status);
    CU_ASSERT_EQUAL(status, 0);
    double acc = -1;
    CU_ASSERT_EQUAL(sscanf(last_line(out), "accuracy %lf (n=%d)", &acc, &nn), 2);
    CU_ASSERT_EQUAL(nn, 2);
    CU_ASSERT(acc >= 0 && acc <= 1);
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
    s = strstr(out, "requests ");
    CU_ASSERT_EQUAL(s ? sscanf(s, "requests %lu, vocabulary words %lu, emitted %lu: correct %lu, "
                               "substituted %lu, deleted %lu, inserted %lu",
                               &nr, &V, &E, &C, &S, &D, &I) : 0, 7);
    CU_ASSERT_EQUAL(nr, 5);
    CU_ASSERT(V > 0);
    CU_ASSERT_EQUAL(C + S + D, V);
    CU_ASSERT_EQUAL(C + S + I, E);
    CU_ASSERT_EQUAL(sscanf(last_line(out), "wer %lf (n=%d)", &w, &nn), 2);
    CU_ASSERT_EQUAL(nn, 5);
    CU_ASSERT(fabs(w - (double)(S + D + I) / (double)V) < 1e-3);
    free(out);
}

CU_TestInfo st_tests_asr[] = {
    {"decider", test_decider},
    {"unknown_is_never_a_word", test_unknown_is_never_a_word},
    {"file_round_trip", test_file_round_trip},
    {"smoke_recipe_and_eval", test_smoke_recipe_and_eval},
    CU_TEST_INFO_NULL,
};
