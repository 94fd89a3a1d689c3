/*  tests/test_vad.c - suite `vad`: the spiking voice-activity detector
    (snn/vad.c) fed by the front end (audio/frontend.c), as the pipeline
    feeds it.

    A synthetic voiced burst in noise is found with its onset and offset in
    time; steady and changing noise alone makes no onset, nor do clacks (a
    rise above the voicing band); the agent's own
    voice, given as the echo estimate, does not start speech while the
    user's voice over it does; the same input gives the same events; the
    parameters are checked; process never allocates; and, when the shared
    data is there, real speech mixtures are detected. The learned read-out
    (params.model_path, models/vad.stm): its rule, its features, its bad
    files, the shipped one on real mixtures, and `bench vad --write-train`,
    the data it is trained on. */
#include "testutil.h"

#include "audio/audio.h"
#include "snn/train.h"
#include "snn/vad.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RATE 16000

typedef struct {
    st_frontend *fe;
    st_vad_model *model;
    st_vad *vad;
    double centre[40];
} rig;

static void rig_init(rig *r, const st_vad_params *override)
{
    st_frontend_params fp = st_frontend_default_params();
    int err = -1;
    r->fe = st_frontend_new(&fp, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r->fe);
    st_vad_params vp = override ? *override : st_vad_default_params();
    for (int c = 0; c < 40; c++)
        r->centre[c] = st_frontend_mel_centre_hz(r->fe, c);
    vp.channel_hz = r->centre;
    vp.frontend_delay_samples = st_frontend_delay_samples(r->fe);
    r->model = st_vad_model_new(&vp, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r->model);
    CU_ASSERT_EQUAL(err, ST_OK);
    r->vad = st_vad_new(r->model, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r->vad);
}

static void rig_free(rig *r)
{
    st_vad_destroy(&r->vad);
    CU_ASSERT_PTR_NULL(r->vad);
    st_vad_model_destroy(&r->model);
    st_frontend_destroy(&r->fe);
}

/* Runs x (and, when given, the echo estimate's samples) through front end
   and detector in 10 ms blocks; returns the number of events in ev. */
static size_t rig_run(rig *r, const float *x, const float *echo, size_t n, st_vad_event *ev,
                      size_t cap)
{
    st_frontend *fe_echo = NULL;
    if (echo) {
        st_frontend_params fp = st_frontend_default_params();
        fe_echo = st_frontend_new(&fp, NULL);
        CU_ASSERT_PTR_NOT_NULL_FATAL(fe_echo);
    }
    st_frontend_reset(r->fe, 0);
    st_vad_reset(r->vad);
    size_t nev = 0;
    float feat[40 * 2], efeat[40 * 2];
    uint64_t st[2], est[2];
    for (size_t at = 0; at < n; at += 160) {
        size_t len = n - at < 160 ? n - at : 160, used, made, emade = 0;
        st_frontend_process(r->fe, x + at, len, feat, st, 2, &used, &made);
        if (echo)
            st_frontend_process(fe_echo, echo + at, len, efeat, est, 2, &used, &emade);
        if (!made)
            continue;
        CU_ASSERT_FATAL(nev + made <= cap);
        size_t m;
        CU_ASSERT_EQUAL(st_vad_process(r->vad, feat, st, echo ? efeat : NULL, made, ev + nev,
                                       cap - nev, &m),
                        ST_OK);
        nev += m;
    }
    st_frontend_destroy(&fe_echo);
    return nev;
}

/* A voiced, speech-like burst: a 140 Hz harmonic complex to 4 kHz with two
   formant-like peaks, a 10 ms attack, 3 Hz syllable modulation and a 20 ms
   release, of RMS `rms`, added to x[start, start + len). */
static void add_burst(float *x, size_t start, size_t len, double rms, double f0)
{
    double *tmp = calloc(len, sizeof *tmp), e = 0;
    for (size_t i = 0; i < len; i++) {
        double t = (double)i / RATE, v = 0;
        for (int h = 1; h * f0 < 4000; h++) {
            double f = h * f0;
            double amp = 1.0 / (1 + pow((f - 600) / 200, 2)) + 0.5 / (1 + pow((f - 1700) / 300, 2)) +
                         0.05;
            v += amp * sin(2 * M_PI * f * t + h * 0.7);
        }
        double env = 1 - 0.4 * pow(sin(M_PI * 3 * t), 2);
        if (i < RATE / 100)
            env *= 0.5 - 0.5 * cos(M_PI * i / (RATE / 100.0));
        if (len - i < RATE / 50)
            env *= 0.5 - 0.5 * cos(M_PI * (len - i) / (RATE / 50.0));
        tmp[i] = v * env;
        e += tmp[i] * tmp[i];
    }
    double g = rms / sqrt(e / len);
    for (size_t i = 0; i < len; i++)
        x[start + i] += (float)(g * tmp[i]);
    free(tmp);
}

static void make_noise(float *x, size_t n, unsigned seed, double rms)
{
    st_test_noise(x, n, seed, RATE, 6000);
    for (size_t i = 0; i < n; i++)
        x[i] *= (float)(rms / 0.1);
}

static void test_burst_in_noise(void)
{
    rig r;
    rig_init(&r, NULL);
    enum { N = 4 * RATE };
    float *x = malloc(N * sizeof *x);
    st_vad_event ev[64];
    /* at 5 dB this burst (a few formant channels rising 10-15 dB) stays
       under the onset threshold: the detector trades it for fewer false
       onsets in noise (docs/BENCH.md, bench vad) */
    static const double snr_db[] = {20, 10};
    for (size_t k = 0; k < sizeof snr_db / sizeof *snr_db; k++) {
        make_noise(x, N, 3 + (unsigned)k, 0.003);
        const size_t on = 2 * RATE, len = (size_t)(0.6 * RATE);
        add_burst(x, on, len, 0.003 * pow(10, snr_db[k] / 20), 140);
        size_t n = rig_run(&r, x, NULL, N, ev, 64);
        if (n != 2)
            printf("\n  %.0f dB: %zu events\n", snr_db[k], n);
        CU_ASSERT_EQUAL_FATAL(n, 2);
        CU_ASSERT_EQUAL(ev[0].kind, ST_VAD_ONSET);
        CU_ASSERT_EQUAL(ev[1].kind, ST_VAD_OFFSET);
        double lat_on = ((double)ev[0].decided_index - (double)on) / RATE;
        double lat_off = ((double)ev[1].decided_index - (double)(on + len)) / RATE;
        double pos_on = ((double)ev[0].sample_index - (double)on) / RATE;
        double pos_off = ((double)ev[1].sample_index - (double)(on + len)) / RATE;
        if (lat_on < 0 || lat_on > 0.060 || lat_off < 0 || lat_off > 0.150)
            printf("\n  %.0f dB: onset +%.1f ms, offset +%.1f ms\n", snr_db[k], 1e3 * lat_on,
                   1e3 * lat_off);
        CU_ASSERT(lat_on >= 0 && lat_on <= 0.060);
        CU_ASSERT(lat_off >= 0 && lat_off <= 0.150);
        /* the positions the detector reports are closer still */
        CU_ASSERT(fabs(pos_on) <= 0.030);
        CU_ASSERT(fabs(pos_off) <= 0.040);
        CU_ASSERT(ev[0].sample_index <= ev[0].decided_index);
        CU_ASSERT(!st_vad_active(r.vad));
    }
    /* the same input gives the same events after a reset */
    make_noise(x, N, 3, 0.003);
    add_burst(x, 2 * RATE, (size_t)(0.6 * RATE), 0.03, 140);
    st_vad_event again[64];
    size_t n1 = rig_run(&r, x, NULL, N, ev, 64), n2 = rig_run(&r, x, NULL, N, again, 64);
    CU_ASSERT_EQUAL_FATAL(n1, n2);
    for (size_t i = 0; i < n1; i++)
        CU_ASSERT(ev[i].kind == again[i].kind && ev[i].sample_index == again[i].sample_index &&
                  ev[i].decided_index == again[i].decided_index);
    free(x);
    rig_free(&r);
}

/* No onset on a minute of noise: steady noise at three levels, and the
   generated backgrounds of the mixture builder (white, pink, brown and
   band-limited noise whose type and level change every 8..20 s through a
   1 s crossfade). */
static void test_no_onset_on_noise(void)
{
    rig r;
    rig_init(&r, NULL);
    enum { N = 20 * RATE };
    float *x = malloc(N * sizeof *x);
    st_vad_event ev[256];
    static const double levels[] = {0.0003, 0.003, 0.1};
    for (size_t k = 0; k < 3; k++) {
        make_noise(x, N, 11 + (unsigned)k, levels[k]);
        size_t n = rig_run(&r, x, NULL, N, ev, 256);
        if (n)
            printf("\n  steady noise at RMS %g: %zu events, the first at %.2f s\n", levels[k], n,
                   (double)ev[0].decided_index / RATE);
        CU_ASSERT_EQUAL(n, 0);
    }
    free(x);
    st_mix_params mp = st_mix_default_params();
    mp.data_dir = NULL; /* the generated noise */
    st_mixture m;
    CU_ASSERT_EQUAL_FATAL(st_mix_noise(&mp, 60, &m), ST_OK);
    CU_ASSERT(m.synthetic_noise);
    CU_ASSERT(m.n_stretches >= 3);
    size_t n = rig_run(&r, m.samples, NULL, m.frames, ev, 256);
    if (n)
        printf("\n  generated noise: %zu events, the first at %.2f s\n", n,
               (double)ev[0].decided_index / RATE);
    CU_ASSERT_EQUAL(n, 0);
    st_mixture_free(&m);
    rig_free(&r);
}

/* Clacks: a clank every 0.45 s (a burst decaying in 20 ms, its energy
   mostly above 1.5 kHz as a dish's or a machine's is, 20 dB over the
   background)
   starts no speech, because a rise above the voicing band counts against
   it (high_band_weight < 0); with that band counting for speech, as it did
   before, the same clacks start speech. A voiced word among them still
   does. */
static void add_clacks(float *x, size_t n, double rms)
{
    uint32_t s = 12345;
    double prev = 0;
    for (size_t at = RATE / 2; at + RATE / 10 < n; at += (size_t)(0.45 * RATE)) {
        for (size_t i = 0; i < RATE / 10; i++) {
            s = s * 1664525u + 1013904223u;
            double u = (double)(s >> 8) / 16777216.0 - 0.5;
            double hp = u - prev; /* first difference: energy rising with frequency */
            prev = u;
            x[at + i] += (float)(rms * 4 * (hp + 0.25 * u) * exp(-(double)i / (0.02 * RATE)));
        }
    }
}

static void test_clacks_do_not_start_speech(void)
{
    enum { N = 10 * RATE };
    float *x = malloc(N * sizeof *x);
    st_vad_event ev[256];
    make_noise(x, N, 31, 0.003);
    add_clacks(x, N, 0.03);
    rig r;
    rig_init(&r, NULL);
    size_t n = rig_run(&r, x, NULL, N, ev, 256);
    if (n)
        printf("\n  clacks: %zu events, the first at %.2f s\n", n,
               (double)ev[0].decided_index / RATE);
    CU_ASSERT_EQUAL(n, 0);
    /* a voiced word among them is found */
    add_burst(x, 5 * RATE, (size_t)(0.5 * RATE), 0.003 * pow(10, 15 / 20.0), 140);
    n = rig_run(&r, x, NULL, N, ev, 256);
    CU_ASSERT_FATAL(n >= 1);
    CU_ASSERT_EQUAL(ev[0].kind, ST_VAD_ONSET);
    double lat = ((double)ev[0].decided_index - 5.0 * RATE) / RATE;
    CU_ASSERT(lat >= 0 && lat <= 0.060);
    rig_free(&r);
    /* the band above speech_hi_hz counting for speech: the clacks start it */
    st_vad_params p = st_vad_default_params();
    p.high_band_weight = p.out_band_weight;
    rig_init(&r, &p);
    make_noise(x, N, 31, 0.003);
    add_clacks(x, N, 0.03);
    n = rig_run(&r, x, NULL, N, ev, 256);
    CU_ASSERT(n >= 2);
    rig_free(&r);
    free(x);
}

/* The agent's own voice after echo cancellation: a residual at the
   microphone, with the canceller's estimate of it as `echo`, starts no
   speech; the user talking over it does. */
static void test_echo_does_not_start_speech(void)
{
    rig r;
    rig_init(&r, NULL);
    enum { N = 4 * RATE };
    float *x = malloc(N * sizeof *x), *echo = calloc(N, sizeof *echo);
    st_vad_event ev[64];
    make_noise(x, N, 21, 0.003);
    add_burst(echo, RATE, 2 * RATE, 0.03, 190); /* the agent, 20 dB over the noise */
    for (size_t i = 0; i < N; i++)
        x[i] += echo[i];
    size_t n = rig_run(&r, x, NULL, N, ev, 64);
    CU_ASSERT(n >= 1); /* without the estimate it is speech, */
    n = rig_run(&r, x, echo, N, ev, 64);
    CU_ASSERT_EQUAL(n, 0); /* with it, not */
    /* the user starts 10 dB over the residual, at another pitch */
    const size_t on = 2 * RATE;
    add_burst(x, on, RATE / 2, 0.1, 120);
    n = rig_run(&r, x, echo, N, ev, 64);
    CU_ASSERT_FATAL(n >= 1);
    CU_ASSERT_EQUAL(ev[0].kind, ST_VAD_ONSET);
    double lat = ((double)ev[0].decided_index - (double)on) / RATE;
    CU_ASSERT(lat >= 0 && lat <= 0.080);
    free(x);
    free(echo);
    rig_free(&r);
}

static void test_params_and_network(void)
{
    st_vad_params p = st_vad_default_params();
    CU_ASSERT_EQUAL(st_vad_set_param(&p, "onset_threshold", "0.3"), ST_OK);
    CU_ASSERT_DOUBLE_EQUAL(p.onset_threshold, 0.3, 1e-6);
    CU_ASSERT_EQUAL(st_vad_set_param(&p, "onset_frames", "2.5"), ST_ERR_INVALID);
    CU_ASSERT_EQUAL(st_vad_set_param(&p, "onset_frames", "x"), ST_ERR_INVALID);
    CU_ASSERT_EQUAL(st_vad_set_param(&p, "bogus", "1"), ST_ERR_NOT_FOUND);
    CU_ASSERT_PTR_NOT_NULL(strstr(st_errmsg(), "hangover_s"));
    char buf[2048];
    st_vad_params_print(&p, buf, sizeof buf);
    CU_ASSERT_PTR_NOT_NULL(strstr(buf, "onset_threshold=0.3\n"));

    int err = 0;
    p = st_vad_default_params();
    p.offset_threshold = 0.5f; /* above the onset threshold */
    CU_ASSERT_PTR_NULL(st_vad_model_new(&p, &err));
    CU_ASSERT_EQUAL(err, ST_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(st_errmsg(), "offset_threshold"));
    p = st_vad_default_params();
    p.high_band_weight = -2; /* inhibits more than a channel can excite */
    CU_ASSERT_PTR_NULL(st_vad_model_new(&p, &err));
    CU_ASSERT_EQUAL(err, ST_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(st_errmsg(), "high_band_weight"));
    CU_ASSERT_EQUAL(st_vad_set_param(&p, "high_band_weight", "-0.5"), ST_OK);
    CU_ASSERT_DOUBLE_EQUAL(p.high_band_weight, -0.5, 1e-6);
    p = st_vad_default_params();
    p.hop_s = 0.005;
    p.readout_tau_s = 0.001;
    CU_ASSERT_PTR_NULL(st_vad_model_new(&p, &err));
    CU_ASSERT_EQUAL(err, ST_ERR_INVALID);

    /* the network is the engine's: populations of its neuron models */
    p = st_vad_default_params();
    st_vad_model *m = st_vad_model_new(&p, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    const st_snn_net *net = st_vad_model_net(m);
    int e = st_snn_net_find(net, "E"), fl = st_snn_net_find(net, "floor"),
        rd = st_snn_net_find(net, "R");
    CU_ASSERT_FATAL(e >= 0 && fl >= 0 && rd >= 0);
    CU_ASSERT_EQUAL(st_snn_neurons_model(st_snn_net_neurons(net, e)), ST_SNN_LIFBOX);
    CU_ASSERT_EQUAL(st_snn_neurons_count(st_snn_net_neurons(net, e)), 40 * 8);
    CU_ASSERT_EQUAL(st_snn_neurons_model(st_snn_net_neurons(net, fl)), ST_SNN_INTEGRATOR);
    CU_ASSERT_EQUAL(st_snn_neurons_model(st_snn_net_neurons(net, rd)), ST_SNN_LIBOX);
    st_vad *v = st_vad_new(m, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(v);
    st_vad_event ev[4];
    size_t made = 9;
    float f[40] = {0};
    uint64_t s = 159;
    CU_ASSERT_EQUAL(st_vad_process(v, f, &s, NULL, 1, ev, 0, &made), ST_ERR_INVALID);
    CU_ASSERT_EQUAL(made, 0);
    st_snn_counters c;
    CU_ASSERT_EQUAL(st_vad_counters(v, &c), ST_OK);
    st_vad_destroy(&v);
    st_vad_destroy(&v); /* idempotent */
    st_vad_model_destroy(&m);
    CU_ASSERT_PTR_NULL(m);
}

/* The front end's frames of x (at most 4 s) through the stream in pieces of
   7 frames, allocation counted while the stream runs (st_rt_enter): asserts
   none; returns the events made. */
static size_t run_counting_allocs(rig *r, const float *x, size_t n)
{
    enum { MAX_FRAMES = 400 };
    float *feat = malloc(MAX_FRAMES * 40 * sizeof *feat);
    uint64_t st[MAX_FRAMES];
    size_t used, nf, made = 0;
    CU_ASSERT_FATAL(n <= 4 * RATE);
    st_frontend_process(r->fe, x, n, feat, st, MAX_FRAMES, &used, &nf);
    st_vad_event ev[MAX_FRAMES];
    unsigned long before = st_test_rt_allocs();
    st_rt_enter();
    for (size_t f = 0; f < nf; f += 7) {
        size_t m, len = nf - f < 7 ? nf - f : 7;
        st_vad_process(r->vad, feat + f * 40, st + f, NULL, len, ev + made, MAX_FRAMES - made, &m);
        made += m;
    }
    st_rt_leave();
    CU_ASSERT_EQUAL(st_test_rt_allocs(), before);
    free(feat);
    return made;
}

/* The first onset decided for truth segment s: from 200 ms before its onset
   to its end; *k, the search start, moves on past events too early for it
   (segments in time order). NULL when there is none. */
static const st_vad_event *onset_for(const st_vad_event *ev, size_t n, size_t *k,
                                     const st_mix_segment *s)
{
    while (*k < n && ev[*k].decided_index + RATE / 5 < s->onset)
        (*k)++;
    for (size_t j = *k; j < n && ev[j].decided_index <= s->offset; j++)
        if (ev[j].kind == ST_VAD_ONSET)
            return &ev[j];
    return NULL;
}

static void test_no_allocation(void)
{
    if (!st_test_alloc_live()) {
        st_test_skip("vad:no_allocation",
                     "allocation counting needs glibc's malloc (not under a sanitizer or valgrind)");
        return;
    }
    rig r;
    rig_init(&r, NULL);
    enum { N = 3 * RATE };
    float *x = malloc(N * sizeof *x);
    make_noise(x, N, 5, 0.003);
    add_burst(x, RATE, RATE, 0.03, 140);
    CU_ASSERT(run_counting_allocs(&r, x, N) >= 2);
    free(x);
    rig_free(&r);
}

/* Real speech from the shared data, in `_silence_` noise, held-out
   speakers: loose bounds (the benchmark measures the figures). */
static void test_real_mixtures(void)
{
    const char *data = st_test_shared_data();
    if (!data) {
        st_test_skip("vad:real_mixtures",
                     "no shared data folder (../shared/data or $ST_SHARED_DATA): the synthetic "
                     "checks above still ran");
        return;
    }
    st_mix_params mp = st_mix_default_params();
    mp.data_dir = data;
    mp.n_utterances = 30;
    mp.seed = 7;
    mp.snr_min_db = 10;
    st_mixture m;
    int rc = st_mix_speech(&mp, &m);
    if (rc == ST_ERR_NOT_FOUND) {
        st_test_skip("vad:real_mixtures", "the shared data holds no usable speech manifest");
        return;
    }
    CU_ASSERT_EQUAL_FATAL(rc, ST_OK);
    CU_ASSERT_EQUAL(m.n_segs, 30);
    CU_ASSERT(!m.synthetic_speech);
    rig r;
    rig_init(&r, NULL);
    st_vad_event *ev = malloc(4096 * sizeof *ev);
    size_t n = rig_run(&r, m.samples, NULL, m.frames, ev, 4096);
    int found = 0;
    double lat[30];
    size_t k = 0;
    int audible = 0, soon = 0;
    for (size_t i = 0; i < m.n_segs; i++) {
        const st_mix_segment *s = &m.segs[i];
        const st_vad_event *on = onset_for(ev, n, &k, s);
        if (on)
            lat[found++] = ((double)on->decided_index - (double)s->onset) / RATE;
        /* the oracle's bounds: within the utterance, and at 10 dB or more
           over the noise, heard within 30 ms of the truth's onset nearly
           always (the truth starts 20 dB under the clip's peak) */
        if (s->audible != UINT64_MAX) {
            CU_ASSERT(s->audible > s->onset && s->audible <= s->offset);
            CU_ASSERT(s->audible_end >= s->audible && s->audible_end <= s->offset);
            audible++;
            soon += s->audible <= s->onset + 3 * RATE / 100;
        }
    }
    if (audible < 30 || soon < 27)
        printf("\n  real mixtures: %d of 30 audible, %d within 30 ms\n", audible, soon);
    CU_ASSERT(audible == 30);
    CU_ASSERT(soon >= 27);
    /* median latency */
    for (int a = 0; a < found; a++)
        for (int b = a + 1; b < found; b++)
            if (lat[b] < lat[a]) {
                double t = lat[a];
                lat[a] = lat[b];
                lat[b] = t;
            }
    double med = found ? lat[found / 2] : 1;
    if (found < 25 || med > 0.1)
        printf("\n  real mixtures: %d of 30 found, median onset latency %.0f ms\n", found,
               1e3 * med);
    CU_ASSERT(found >= 25);
    CU_ASSERT(med <= 0.100);
    free(ev);
    st_mixture_free(&m);
    rig_free(&r);
}

/* ---- the learned read-out (params.model_path) --------------------------------- */

/* A net of the learned read-out's shape whose p(speech) is known:
   output = [0, sum of the features - 8] (n_in inputs), saved to `path`. */
static void save_sum_net(const char *path, size_t n_in, const char *out_name, size_t n_out)
{
    int err;
    st_snn_net *net = st_snn_net_new(&err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(net);
    float *w = calloc(n_out * n_in, sizeof *w), b[2] = {0, -8};
    for (size_t i = 0; i < n_in; i++)
        w[(n_out - 1) * n_in + i] = 1;
    int in = st_snn_net_add_input(net, "features", n_in);
    int d = st_snn_net_add_dense(net, out_name, n_out, n_in, w, n_out == 2 ? b : NULL);
    CU_ASSERT_FATAL(in >= 0 && d >= 0);
    CU_ASSERT_EQUAL_FATAL(st_snn_net_connect(net, in, d), ST_OK);
    CU_ASSERT_EQUAL_FATAL(st_snn_net_finish(net), ST_OK);
    CU_ASSERT_EQUAL_FATAL(st_snn_net_save(net, path), ST_OK);
    free(w);
    st_snn_net_destroy(&net);
}

/* The rule on p(speech): an onset learned_frames frames into the rise, an
   offset learned_hangover_s after p falls; the features are the rise over
   the floor; the stream never allocates. */
static void test_learned_rule(void)
{
    char path[4096];
    st_test_tmpfile(path, sizeof path, "vad_sum.stm");
    save_sum_net(path, 40, "output", 2);
    enum { N = 4 * RATE };
    float *x = malloc(N * sizeof *x);
    make_noise(x, N, 3, 0.003);
    const size_t on = 2 * RATE, len = (size_t)(0.6 * RATE);
    add_burst(x, on, len, 0.03, 140);
    uint64_t decided[2][2];
    for (int v = 0; v < 2; v++) {
        st_vad_params p = st_vad_default_params();
        p.model_path = path;
        p.learned_frames = v ? 4 : 1;
        p.learned_hangover_s = v ? 0.2 : 0.05;
        rig r;
        rig_init(&r, &p);
        CU_ASSERT(st_vad_model_learned(r.model));
        st_vad_event ev[16];
        size_t n = rig_run(&r, x, NULL, N, ev, 16);
        if (n != 2)
            for (size_t i = 0; i < n; i++)
                printf("\n  %s at %.3f s", ev[i].kind == ST_VAD_ONSET ? "onset" : "offset",
                       (double)ev[i].decided_index / RATE);
        CU_ASSERT_EQUAL_FATAL(n, 2);
        CU_ASSERT(ev[0].kind == ST_VAD_ONSET && ev[1].kind == ST_VAD_OFFSET);
        decided[v][0] = ev[0].decided_index;
        decided[v][1] = ev[1].decided_index;
        CU_ASSERT(ev[0].decided_index >= on && ev[0].decided_index < on + RATE / 10);
        CU_ASSERT(ev[1].decided_index >= on + len && ev[1].decided_index < on + len + RATE / 2);
        /* the features: quiet before the burst, a rise of more than 10 dB in it */
        rig_run(&r, x, NULL, on, ev, 16);
        float sum = 0;
        for (int c = 0; c < 40; c++)
            sum += st_vad_features(r.vad)[c];
        CU_ASSERT(fabsf(sum) < 6);
        CU_ASSERT(st_vad_score(r.vad) < 0.2f);
        rig_run(&r, x, NULL, on + len / 2, ev, 16);
        sum = 0;
        for (int c = 0; c < 40; c++)
            sum += st_vad_features(r.vad)[c];
        CU_ASSERT(sum > 8);
        CU_ASSERT(st_vad_score(r.vad) > 0.5f);
        rig_free(&r);
    }
    /* three more frames over learned_on; 150 ms more hangover */
    CU_ASSERT_EQUAL(decided[1][0] - decided[0][0], 3 * 160);
    CU_ASSERT_EQUAL(decided[1][1] - decided[0][1], 15 * 160);
    if (st_test_alloc_live()) {
        st_vad_params p = st_vad_default_params();
        p.model_path = path;
        rig r;
        rig_init(&r, &p);
        CU_ASSERT(run_counting_allocs(&r, x, N) == 2);
        rig_free(&r);
    }
    free(x);
}

/* A read-out file that is not one: missing, of the wrong shape, or another
   kind of file; each refused with its name and what is wrong. */
static void test_learned_bad_files(void)
{
    char path[4096];
    st_vad_params p = st_vad_default_params();
    int err;
    p.model_path = "/nonexistent/vad.stm";
    CU_ASSERT_PTR_NULL(st_vad_model_new(&p, &err));
    CU_ASSERT(err != ST_OK);
    CU_ASSERT_PTR_NOT_NULL(strstr(st_errmsg(), "/nonexistent/vad.stm"));
    st_test_tmpfile(path, sizeof path, "vad_30.stm");
    save_sum_net(path, 30, "output", 2);
    p.model_path = path;
    CU_ASSERT_PTR_NULL(st_vad_model_new(&p, &err));
    CU_ASSERT_EQUAL(err, ST_ERR_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(st_errmsg(), "takes 30 inputs"));
    st_test_tmpfile(path, sizeof path, "vad_3out.stm");
    save_sum_net(path, 40, "output", 3);
    CU_ASSERT_PTR_NULL(st_vad_model_new(&p, &err));
    CU_ASSERT_PTR_NOT_NULL(strstr(st_errmsg(), "no node 'output' of 2 units"));
    st_test_tmpfile(path, sizeof path, "vad_noout.stm");
    save_sum_net(path, 40, "speech", 2);
    CU_ASSERT_PTR_NULL(st_vad_model_new(&p, &err));
    CU_ASSERT_PTR_NOT_NULL(strstr(st_errmsg(), "no node 'output'"));
    st_test_tmpfile(path, sizeof path, "vad_text.stm");
    FILE *f = fopen(path, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs("not a model\n", f);
    fclose(f);
    CU_ASSERT_PTR_NULL(st_vad_model_new(&p, &err));
    CU_ASSERT_PTR_NOT_NULL(strstr(st_errmsg(), "vad_text.stm"));
    p = st_vad_default_params();
    p.learned_off = p.learned_on + 0.01f; /* over learned_on */
    CU_ASSERT_PTR_NULL(st_vad_model_new(&p, &err));
    CU_ASSERT_PTR_NOT_NULL(strstr(st_errmsg(), "learned_off"));
}

/* The shipped read-out (models/vad.stm) on real speech mixtures of held-out
   speakers: loose bounds, as above (bench vad measures the figures). */
static void test_learned_real_mixtures(void)
{
    const char *data = st_test_shared_data();
    if (!data) {
        st_test_skip("vad:learned_real_mixtures",
                     "no shared data folder (../shared/data or $ST_SHARED_DATA)");
        return;
    }
    const char *model = "models/vad.stm"; /* shipped; the tests run from the repository root */
    st_mix_params mp = st_mix_default_params();
    mp.data_dir = data;
    mp.n_utterances = 30;
    mp.seed = 7;
    st_mixture m;
    CU_ASSERT_EQUAL_FATAL(st_mix_speech(&mp, &m), ST_OK);
    st_vad_params p = st_vad_default_params();
    p.model_path = model;
    rig r;
    rig_init(&r, &p);
    st_vad_event *ev = malloc(4096 * sizeof *ev);
    size_t n = rig_run(&r, m.samples, NULL, m.frames, ev, 4096);
    int found = 0, ended = 0;
    size_t k = 0;
    for (size_t i = 0; i < m.n_segs; i++) {
        const st_mix_segment *s = &m.segs[i];
        const st_vad_event *on = onset_for(ev, n, &k, s);
        found += on && on->decided_index <= s->onset + 3 * RATE / 20;
        /* an offset decided from 0.3 s before the end (a weak last sound
           after a pause) to 0.5 s after it */
        for (size_t j = k; j < n; j++)
            if (ev[j].kind == ST_VAD_OFFSET && ev[j].decided_index + 3 * RATE / 10 >= s->offset &&
                ev[j].decided_index <= s->offset + RATE / 2) {
                ended++;
                break;
            }
    }
    if (found < 25 || ended < 25)
        printf("\n  learned: %d of 30 found within 150 ms, %d ended within -300..500 ms\n", found,
               ended);
    CU_ASSERT(found >= 25);
    CU_ASSERT(ended >= 25);
    free(ev);
    st_mixture_free(&m);
    rig_free(&r);
}

/* `bench vad --write-train`: the learned read-out's training data (frames
   labelled speech or not, in pieces), its row beside the hand-designed
   detector, and a bad option refused. espeak-ng words in generated noise
   (no shared data), so it runs everywhere. */
static void test_cli_write_train(void)
{
    char path[4096], args[8704], svg[4096], plot[4200];
    st_test_tmpfile(path, sizeof path, "vad_train.std");
    st_test_tmpfile(svg, sizeof svg, "vad_plot");
    snprintf(args, sizeof args,
             "bench vad --data /nonexistent --utterances 6 --noise-minutes 0.2 --chunk-frames 200 "
             "--write-train %s --model models/vad.stm --json --svg %s",
             path, svg);
    char *out = NULL;
    int rc = st_test_run_cli(args, &out);
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(out);
    if (rc != 0)
        printf("\n  spiketalk %s: exit %d:\n%s\n", args, rc, out);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"snn-learned\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "pieces of 200 frames"));
    free(out);
    /* --svg: each detector's latencies as a cumulative plot, with the target */
    static const char *const plots[][2] = {{"onset", "target p95 60"},
                                           {"offset", "target p95 150"}};
    for (size_t k = 0; k < 2; k++) {
        snprintf(plot, sizeof plot, "%s_%s.svg", svg, plots[k][0]);
        char *text = st_test_read_file(plot);
        CU_ASSERT_PTR_NOT_NULL(text);
        CU_ASSERT(text && !strncmp(text, "<svg ", 5) && strstr(text, plots[k][1]) &&
                  strstr(text, "snn-learned (n ") && strstr(text, "</svg>"));
        free(text);
        remove(plot);
    }
    /* a plot that cannot be written is an error naming it */
    CU_ASSERT_NOT_EQUAL(st_test_run_cli("bench vad --data /nonexistent --utterances 2 "
                                        "--noise-minutes 0.1 --svg /nonexistent/plot",
                                        &out),
                        0);
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "/nonexistent/plot_onset.svg"));
    free(out);
    int err;
    st_train_data *d = st_train_data_load(path, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    CU_ASSERT(st_train_data_is_seq(d));
    CU_ASSERT_EQUAL(st_train_data_channels(d), 40);
    CU_ASSERT_EQUAL(st_train_data_max_steps(d), 200);
    CU_ASSERT(st_train_data_count(d) >= 10);
    size_t speech = 0, frames = 0;
    bool ok = true;
    for (size_t k = 0; k < st_train_data_count(d); k++) {
        size_t steps, n;
        st_train_data_input(d, k, &steps);
        const int32_t *lab = st_train_data_labels(d, k, &n);
        ok = ok && n == steps && steps >= 100;
        for (size_t t = 0; t < n; t++) {
            ok = ok && (lab[t] == 0 || lab[t] == 1);
            speech += lab[t] == 1;
        }
        frames += n;
    }
    CU_ASSERT(ok);
    /* 6 words in 0.2 min of noise and their mixture: some speech, mostly not */
    CU_ASSERT(speech > 50 && speech < frames / 2);
    st_train_data_destroy(&d);
    CU_ASSERT_EQUAL(st_test_run_cli("bench vad --chunk-frames 5", &out), 2);
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "--chunk-frames"));
    free(out);
    CU_ASSERT_NOT_EQUAL(st_test_run_cli("bench vad --data /nonexistent --utterances 2 "
                                        "--noise-minutes 0.1 --model /nonexistent/vad.stm",
                                        &out),
                        0);
    CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "/nonexistent/vad.stm"));
    free(out);
}

CU_TestInfo st_tests_vad[] = {
    {"cli_write_train", test_cli_write_train},
    {"learned_rule", test_learned_rule},
    {"learned_bad_files", test_learned_bad_files},
    {"learned_real_mixtures", test_learned_real_mixtures},
    {"burst_in_noise", test_burst_in_noise},
    {"no_onset_on_noise", test_no_onset_on_noise},
    {"echo_does_not_start_speech", test_echo_does_not_start_speech},
    {"clacks_do_not_start_speech", test_clacks_do_not_start_speech},
    {"params_and_network", test_params_and_network},
    {"no_allocation", test_no_allocation},
    {"real_mixtures", test_real_mixtures},
    CU_TEST_INFO_NULL,
};
