/*  tests/test_frontend.c - suite `frontend`: the streaming log-mel front end
    and the spike encoders (audio/frontend.c, audio/encoder.c).

    A pure tone peaks in the mel channel around its frequency; any block
    size gives the same frames as one block; the stated algorithmic delay is
    the one an impulse and a step onset show; the stamps follow the one
    clock; the encoders do what their contracts say (send-on-delta on a
    step, LIF drive, rate coding's mean rate and determinism); and process
    and encode never allocate. */
#include "testutil.h"

#include "audio/audio.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RATE 16000

static st_frontend *new_fe(const st_frontend_params *p)
{
    int err = -1;
    st_frontend *fe = st_frontend_new(p, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(fe);
    CU_ASSERT_EQUAL(err, ST_OK);
    return fe;
}

/* Runs x through fe in blocks cycling through `blocks`; returns frames. */
static size_t run_blocks(st_frontend *fe, const float *x, size_t n, const size_t *blocks,
                         int nb, float *feat, uint64_t *stamp, size_t cap)
{
    size_t nf = 0, at = 0;
    const size_t nm = (size_t)st_frontend_n_mels(fe);
    for (int b = 0; at < n; b++) {
        size_t len = blocks[b % nb];
        if (len > n - at)
            len = n - at;
        size_t used = 0, made = 0;
        CU_ASSERT_FATAL(nf + st_frontend_max_frames(fe, len) <= cap);
        CU_ASSERT_EQUAL(st_frontend_process(fe, x + at, len, feat + nf * nm, stamp + nf,
                                            cap - nf, &used, &made),
                        ST_OK);
        CU_ASSERT_EQUAL(used, len);
        at += used;
        nf += made;
    }
    return nf;
}

static int argmax(const float *v, int n)
{
    int k = 0;
    for (int i = 1; i < n; i++)
        if (v[i] > v[k])
            k = i;
    return k;
}

static void test_tone_peaks_in_its_band(void)
{
    st_frontend_params p = st_frontend_default_params();
    st_frontend *fe = new_fe(&p);
    const int nm = st_frontend_n_mels(fe);
    CU_ASSERT_EQUAL(nm, 40);
    CU_ASSERT_EQUAL(st_frontend_fft_size(fe), 512);
    static const double tones[] = {250, 1000, 3000, 6000};
    enum { N = RATE / 4 };
    float *x = malloc(N * sizeof *x), feat[40 * 40];
    uint64_t stamp[40];
    for (size_t t = 0; t < sizeof tones / sizeof *tones; t++) {
        for (int i = 0; i < N; i++)
            x[i] = 0.5f * (float)sin(2 * M_PI * tones[t] * i / RATE);
        st_frontend_reset(fe, 0);
        size_t blk = N;
        size_t nf = run_blocks(fe, x, N, &blk, 1, feat, stamp, 40);
        CU_ASSERT_EQUAL_FATAL(nf, 25);
        /* the channel whose centre is nearest the tone (in mel) */
        int want = 0;
        for (int c = 1; c < nm; c++)
            if (fabs(log(st_frontend_mel_centre_hz(fe, c) / tones[t])) <
                fabs(log(st_frontend_mel_centre_hz(fe, want) / tones[t])))
                want = c;
        int got = argmax(feat + 20 * (size_t)nm, nm);
        if (got != want)
            printf("\n  %.0f Hz peaks in channel %d (%.0f Hz), want %d (%.0f Hz)\n", tones[t],
                   got, st_frontend_mel_centre_hz(fe, got), want,
                   st_frontend_mel_centre_hz(fe, want));
        CU_ASSERT_EQUAL(got, want);
        /* scale: bins hold |X|^2 / sum(w^2), so a sine of amplitude A puts
           nfft A^2 / 4 = 32 into the positive bins (Parseval); the peak
           channel's triangle (peak 1) takes most of it */
        float peak = feat[20 * (size_t)nm + (size_t)got];
        CU_ASSERT(peak > logf(32.0f / 4) && peak < logf(32.0f) + 0.05f);
        /* and far away channels hold little (Hann sidelobes) */
        CU_ASSERT(feat[20 * (size_t)nm + (size_t)(got > 20 ? 0 : nm - 1)] < peak - 6.0f);
    }
    free(x);
    st_frontend_destroy(&fe);
    CU_ASSERT_PTR_NULL(fe);
    st_frontend_destroy(&fe); /* idempotent */
}

static void test_block_size_invariant(void)
{
    enum { N = RATE };
    float *x = malloc(N * sizeof *x);
    st_test_noise(x, N, 5, RATE, 4000);
    st_frontend_params p = st_frontend_default_params();
    p.normalize = true; /* the running mean must stream too */
    const size_t cap = 200;
    float *a = malloc(cap * 40 * sizeof *a), *b = malloc(cap * 40 * sizeof *b);
    uint64_t sa[200], sb[200];
    st_frontend *fe = new_fe(&p);
    size_t whole = N;
    size_t na = run_blocks(fe, x, N, &whole, 1, a, sa, cap);
    CU_ASSERT_EQUAL(na, N / 160);
    static const size_t odd[][3] = {{1, 1, 1}, {7, 13, 1}, {160, 160, 160}, {333, 17, 999},
                                    {159, 161, 2}};
    for (size_t k = 0; k < sizeof odd / sizeof *odd; k++) {
        st_frontend_reset(fe, 0);
        size_t nb = run_blocks(fe, x, N, odd[k], 3, b, sb, cap);
        CU_ASSERT_EQUAL(nb, na);
        CU_ASSERT(!memcmp(a, b, na * 40 * sizeof *a));
        CU_ASSERT(!memcmp(sa, sb, na * sizeof *sa));
    }
    /* stamps: frame k ends at sample (k + 1) hop - 1; reset moves the origin */
    for (size_t k = 0; k < na; k++)
        CU_ASSERT_EQUAL(sa[k], (k + 1) * 160 - 1);
    st_frontend_reset(fe, 1000000);
    size_t used, made;
    st_frontend_process(fe, x, 480, b, sb, cap, &used, &made);
    CU_ASSERT_EQUAL(made, 3);
    CU_ASSERT_EQUAL(sb[0], 1000000 + 159);
    CU_ASSERT_EQUAL(sb[2], 1000000 + 479);
    free(x);
    free(a);
    free(b);
    st_frontend_destroy(&fe);
}

/* With no room, process stops before the sample that would complete a
   frame, and picks up from there. */
static void test_room_and_reporting(void)
{
    st_frontend_params p = st_frontend_default_params();
    st_frontend *fe = new_fe(&p);
    float x[1000] = {0}, feat[40 * 8];
    uint64_t st[8];
    size_t used = 99, made = 99;
    CU_ASSERT_EQUAL(st_frontend_max_frames(fe, 1000), 6);
    CU_ASSERT_EQUAL(st_frontend_process(fe, x, 1000, feat, st, 0, &used, &made), ST_OK);
    CU_ASSERT_EQUAL(used, 159);
    CU_ASSERT_EQUAL(made, 0);
    CU_ASSERT_EQUAL(st_frontend_max_frames(fe, 1), 1);
    CU_ASSERT_EQUAL(st_frontend_process(fe, x + 159, 841, feat, st, 2, &used, &made), ST_OK);
    CU_ASSERT_EQUAL(made, 2);
    CU_ASSERT_EQUAL(used, 1 + 160 + 159);
    CU_ASSERT_EQUAL(st[0], 159);
    CU_ASSERT_EQUAL(st[1], 319);
    st_frontend_destroy(&fe);
}

/* The stated delay is the real one: an impulse at s weighs most in the
   frame stamped nearest s + delay; a step onset reaches half its final
   power there; the first frame to carry the impulse (within 60 dB of its
   peak) ends within a hop (and the Hann edge's 4 samples) of it. */
static void test_delay_is_real(void)
{
    st_frontend_params p = st_frontend_default_params();
    for (int hop_ms = 5; hop_ms <= 10; hop_ms += 5) {
        p.hop_ms = hop_ms;
        st_frontend *fe = new_fe(&p);
        const size_t hop = st_frontend_hop_samples(fe);
        const double d = st_frontend_delay_samples(fe);
        CU_ASSERT_DOUBLE_EQUAL(d, 199.5, 1e-9);
        CU_ASSERT_DOUBLE_EQUAL(st_frontend_delay_s(fe), 199.5 / RATE, 1e-12);
        enum { N = RATE / 2 };
        float *x = calloc(N, sizeof *x), *feat = malloc(200 * 40 * sizeof *feat);
        uint64_t st[200];
        for (size_t s = 3001; s < 3200; s += 37) {
            memset(x, 0, N * sizeof *x);
            x[s] = 1;
            st_frontend_reset(fe, 0);
            size_t blk = 100;
            size_t nf = run_blocks(fe, x, N, &blk, 1, feat, st, 200);
            double best = -1e30;
            size_t kbest = 0, kfirst = nf;
            for (size_t k = 0; k < nf; k++) {
                double e = 0;
                for (int c = 0; c < 40; c++)
                    e += exp(feat[k * 40 + (size_t)c]);
                if (e > best) {
                    best = e;
                    kbest = k;
                }
            }
            for (size_t k = 0; k < nf && kfirst == nf; k++) {
                double e = 0;
                for (int c = 0; c < 40; c++)
                    e += exp(feat[k * 40 + (size_t)c]);
                if (e > 1e-6 * best) /* -60 dB: the Hann edge, 4 samples in */
                    kfirst = k;
            }
            CU_ASSERT(fabs((double)st[kbest] - ((double)s + d)) <= hop / 2.0 + 0.5);
            CU_ASSERT(st[kfirst] >= s && st[kfirst] < s + hop + 4);
        }
        /* a step of noise at s: half the final power at about s + delay */
        st_test_noise(x, N, 9, RATE, 7000);
        const size_t s = 4000 + hop / 3;
        memset(x, 0, s * sizeof *x);
        st_frontend_reset(fe, 0);
        size_t blk = 333;
        size_t nf = run_blocks(fe, x, N, &blk, 1, feat, st, 200);
        double fin = 0;
        for (size_t k = nf - 10; k < nf; k++)
            for (int c = 0; c < 40; c++)
                fin += exp(feat[k * 40 + (size_t)c]) / 10;
        double half_at = -1;
        for (size_t k = 1; k < nf && half_at < 0; k++) {
            double e0 = 0, e1 = 0;
            for (int c = 0; c < 40; c++) {
                e0 += exp(feat[(k - 1) * 40 + (size_t)c]);
                e1 += exp(feat[k * 40 + (size_t)c]);
            }
            if (e1 >= fin / 2) /* interpolate between the two stamps */
                half_at = (double)st[k - 1] + (fin / 2 - e0) / (e1 - e0) * (double)hop;
        }
        if (fabs(half_at - (s + d)) > 20)
            printf("\n  hop %zu: step at %zu reaches half power at %.1f, stated %.1f\n", hop, s,
                   half_at, s + d);
        CU_ASSERT(fabs(half_at - ((double)s + d)) <= 20); /* 1.25 ms: noise, not bias */
        free(x);
        free(feat);
        st_frontend_destroy(&fe);
    }
}

static void test_normalize_and_errors(void)
{
    st_frontend_params p = st_frontend_default_params();
    p.normalize = true;
    p.norm_tau_s = 0.5;
    st_frontend *fe = new_fe(&p);
    enum { N = 3 * RATE };
    float *x = malloc(N * sizeof *x), *feat = malloc(400 * 40 * sizeof *feat);
    uint64_t st[400];
    st_test_noise(x, N, 3, RATE, 6000);
    size_t blk = 1024;
    size_t nf = run_blocks(fe, x, N, &blk, 1, feat, st, 400);
    double mean = 0;
    for (size_t k = nf - 100; k < nf; k++)
        for (int c = 0; c < 40; c++)
            mean += feat[k * 40 + (size_t)c] / (100.0 * 40);
    CU_ASSERT(fabs(mean) < 0.3); /* steady noise normalises to about 0 */
    free(x);
    free(feat);
    st_frontend_destroy(&fe);

    int err = 0;
    p = st_frontend_default_params();
    p.hop_ms = 30;
    CU_ASSERT_PTR_NULL(st_frontend_new(&p, &err));
    CU_ASSERT_EQUAL(err, ST_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(st_errmsg(), "hop_ms"));
    p = st_frontend_default_params();
    p.n_mels = 200; /* narrower than an FFT bin at the bottom */
    CU_ASSERT_PTR_NULL(st_frontend_new(&p, &err));
    CU_ASSERT_EQUAL(err, ST_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(st_errmsg(), "holds no FFT bin"));
    p = st_frontend_default_params();
    p.f_max_hz = 9000;
    CU_ASSERT_PTR_NULL(st_frontend_new(&p, &err));
    CU_ASSERT_EQUAL(err, ST_ERR_INVALID);
}

/* ---- encoders ---------------------------------------------------------------- */

static st_encoder *new_enc(const st_encoder_params *p)
{
    int err = -1;
    st_encoder *e = st_encoder_new(p, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_EQUAL(err, ST_OK);
    return e;
}

static void test_sod_on_a_step(void)
{
    st_encoder_params p = st_encoder_default_params(ST_ENCODER_SOD);
    p.n_channels = 8;
    st_encoder *e = new_enc(&p);
    CU_ASSERT_EQUAL(st_encoder_n_addresses(e), 16);
    CU_ASSERT_EQUAL(st_encoder_max_events(e), 32);
    float f[8] = {0};
    st_aer_event ev[32];
    size_t made = 99;
    /* the first frame sets the references; steady input sends nothing */
    for (int k = 0; k < 3; k++) {
        CU_ASSERT_EQUAL(st_encoder_encode(e, f, 159 + 160 * (uint64_t)k, ev, 32, &made), ST_OK);
        CU_ASSERT_EQUAL(made, 0);
    }
    /* a step of +1.2 on channel 3: two ON events (the reference moves 0.5 a
       time and stops short of the last 0.2) */
    f[3] = 1.2f;
    st_encoder_encode(e, f, 639, ev, 32, &made);
    CU_ASSERT_EQUAL_FATAL(made, 2);
    CU_ASSERT_EQUAL(ev[0].address, 6);
    CU_ASSERT_EQUAL(ev[1].address, 6);
    CU_ASSERT_EQUAL(ev[0].sample_index, 639);
    CU_ASSERT_EQUAL(ev[0].frame, 3);
    /* 0.3 more reaches the next level: one ON */
    f[3] = 1.5f;
    st_encoder_encode(e, f, 799, ev, 32, &made);
    CU_ASSERT_EQUAL(made, 1);
    /* back down to 0: three OFF events (address 7); a big step is capped */
    f[3] = 0;
    f[5] = 10;
    st_encoder_encode(e, f, 959, ev, 32, &made);
    CU_ASSERT_EQUAL_FATAL(made, 3 + 4);
    CU_ASSERT_EQUAL(ev[0].address, 7);
    CU_ASSERT_EQUAL(ev[3].address, 10);
    CU_ASSERT_EQUAL(st_encoder_encode(e, f, 1119, ev, 31, &made), ST_ERR_INVALID);
    st_encoder_destroy(&e);

    /* refractory: a ramp sends at most one event every 1 + R frames */
    p.sod_refractory_frames = 2;
    p.sod_max_events = 1;
    e = new_enc(&p);
    int n_ev = 0;
    for (int k = 0; k < 30; k++) {
        for (int c = 0; c < 8; c++)
            f[c] = 0.6f * (float)k;
        st_encoder_encode(e, f, (uint64_t)k * 160 + 159, ev, 32, &made);
        n_ev += (int)made;
    }
    CU_ASSERT_EQUAL(n_ev, 8 * 10); /* frames 1, 4, 7, ..., 28 */
    st_encoder_destroy(&e);
}

static void test_lif_drive(void)
{
    st_encoder_params p = st_encoder_default_params(ST_ENCODER_LIF);
    p.n_channels = 3;
    p.in_lo = 0;
    p.in_hi = 1;
    p.lif_gain = 4;
    p.lif_bias = 0.5f;
    st_encoder *e = new_enc(&p);
    float f[3] = {-1, 0.25f, 1}, cur[3];
    st_encoder_currents(e, f, cur);
    CU_ASSERT_DOUBLE_EQUAL(cur[0], 0.5, 1e-6); /* clamped to in_lo: the bias alone */
    CU_ASSERT_DOUBLE_EQUAL(cur[1], 1.5, 1e-6);
    CU_ASSERT_DOUBLE_EQUAL(cur[2], 4.5, 1e-6);
    st_aer_event ev[64];
    int count[3] = {0};
    uint64_t last = 0;
    for (int k = 0; k < 100; k++) {
        size_t made;
        uint64_t stamp = (uint64_t)k * 160 + 159;
        st_encoder_encode(e, f, stamp, ev, 64, &made);
        for (size_t i = 0; i < made; i++) {
            count[ev[i].address]++;
            CU_ASSERT(ev[i].sample_index <= stamp && ev[i].sample_index + 160 > stamp);
            CU_ASSERT(ev[i].sample_index >= last); /* in time order */
            last = ev[i].sample_index;
        }
    }
    /* a current of 0.5 never lifts v over 1; more current fires more */
    CU_ASSERT_EQUAL(count[0], 0);
    CU_ASSERT(count[1] > 10);
    CU_ASSERT(count[2] > 2 * count[1]);
    /* the analytic LIF rate 1 / (tau ln(I / (I - 1))), within Euler's error */
    double r2 = 1.0 / (0.02 * log(4.5 / 3.5));
    CU_ASSERT(fabs(count[2] / 1.0 - r2) < 0.25 * r2);
    st_encoder_destroy(&e);
}

static void test_rate_coding(void)
{
    st_encoder_params p = st_encoder_default_params(ST_ENCODER_RATE);
    p.n_channels = 4;
    p.in_lo = 0;
    p.in_hi = 1;
    p.rate_max_hz = 100;
    p.seed = 42;
    st_encoder *a = new_enc(&p), *b = new_enc(&p);
    p.seed = 43;
    st_encoder *c = new_enc(&p);
    float f[4] = {0, 0.25f, 0.5f, 1};
    st_aer_event ea[40], eb[40], ec[40];
    int count[4] = {0};
    bool differs = false;
    const int frames = 3000; /* 30 s */
    for (int k = 0; k < frames; k++) {
        size_t ma, mb, mc;
        uint64_t s = (uint64_t)k * 160 + 159;
        st_encoder_encode(a, f, s, ea, 40, &ma);
        st_encoder_encode(b, f, s, eb, 40, &mb);
        st_encoder_encode(c, f, s, ec, 40, &mc);
        CU_ASSERT_EQUAL_FATAL(ma, mb);
        CU_ASSERT(!memcmp(ea, eb, ma * sizeof *ea)); /* deterministic */
        differs = differs || ma != mc || memcmp(ea, ec, ma * sizeof *ea);
        for (size_t i = 0; i < ma; i++)
            count[ea[i].address]++;
    }
    CU_ASSERT(differs); /* another seed, another train */
    CU_ASSERT_EQUAL(count[0], 0);
    for (int ch = 1; ch < 4; ch++) {
        double want = 100.0 * f[ch] * frames * 0.01, sd = sqrt(want);
        CU_ASSERT(fabs(count[ch] - want) < 4 * sd);
    }
    st_encoder_reset(a);
    size_t m1, m2;
    st_encoder_encode(a, f, 159, ea, 40, &m1);
    st_encoder_reset(b);
    st_encoder_encode(b, f, 159, eb, 40, &m2);
    CU_ASSERT(m1 == m2 && !memcmp(ea, eb, m1 * sizeof *ea));
    st_encoder_destroy(&a);
    st_encoder_destroy(&b);
    st_encoder_destroy(&c);
    st_encoder_kind k;
    CU_ASSERT_EQUAL(st_encoder_kind_from_name("lif", &k), ST_OK);
    CU_ASSERT_EQUAL(k, ST_ENCODER_LIF);
    CU_ASSERT_EQUAL(st_encoder_kind_from_name("morse", &k), ST_ERR_NOT_FOUND);
    CU_ASSERT_STRING_EQUAL(st_encoder_kind_name(ST_ENCODER_RATE), "rate");
}

static void test_no_allocation(void)
{
    if (!st_test_alloc_live()) {
        st_test_skip("frontend:no_allocation",
                     "allocation counting needs glibc's malloc (not under a sanitizer or valgrind)");
        return;
    }
    st_frontend_params p = st_frontend_default_params();
    p.normalize = true;
    st_frontend *fe = new_fe(&p);
    st_encoder *enc[3];
    for (int k = 0; k < 3; k++) {
        st_encoder_params ep = st_encoder_default_params((st_encoder_kind)k);
        enc[k] = new_enc(&ep);
    }
    enum { N = RATE };
    float *x = malloc(N * sizeof *x), *feat = malloc(120 * 40 * sizeof *feat);
    uint64_t st[120];
    st_aer_event *ev = malloc(400 * sizeof *ev);
    st_test_noise(x, N, 1, RATE, 5000);
    unsigned long before = st_test_rt_allocs();
    st_rt_enter();
    size_t used, made, total = 0;
    for (size_t at = 0; at < N; at += 256) {
        size_t len = N - at < 256 ? N - at : 256;
        st_frontend_process(fe, x + at, len, feat, st, 120, &used, &made);
        for (size_t f = 0; f < made; f++)
            for (int k = 0; k < 3; k++) {
                size_t m;
                st_encoder_encode(enc[k], feat + f * 40, st[f], ev, 400, &m);
                total += m;
            }
    }
    st_rt_leave();
    CU_ASSERT_EQUAL(st_test_rt_allocs(), before);
    CU_ASSERT(total > 0);
    free(x);
    free(feat);
    free(ev);
    for (int k = 0; k < 3; k++)
        st_encoder_destroy(&enc[k]);
    st_frontend_destroy(&fe);
}

CU_TestInfo st_tests_frontend[] = {
    {"tone_peaks_in_its_band", test_tone_peaks_in_its_band},
    {"block_size_invariant", test_block_size_invariant},
    {"room_and_reporting", test_room_and_reporting},
    {"delay_is_real", test_delay_is_real},
    {"normalize_and_errors", test_normalize_and_errors},
    {"sod_on_a_step", test_sod_on_a_step},
    {"lif_drive", test_lif_drive},
    {"rate_coding", test_rate_coding},
    {"no_allocation", test_no_allocation},
    CU_TEST_INFO_NULL,
};
