/*  tests/test_resample.c - suite `resample`: the streaming resampler
    (audio/resample.c). Quality (round-trip SNR, a sine's frequency and
    amplitude), streaming (any block size gives the same samples, a small
    output buffer is handled, flush delivers the tail), the delay it reports
    against the one it has, and that process never allocates. */
#include "testutil.h"

#include "audio/audio.h"

#include <math.h>
#include <samplerate.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const st_resample_quality qualities[] = {ST_RESAMPLE_FASTEST, ST_RESAMPLE_MEDIUM,
                                                ST_RESAMPLE_BEST};
static const char *const quality_names[] = {"fastest", "medium", "best"};

/*  Streams `in` through `r` in blocks cycling through `blocks` (each given
    the output room max_output() promises), then flushes; returns the frames
    made. Asserts that every block is consumed whole. */
static size_t stream(st_resampler *r, const float *in, size_t n, const size_t *blocks, int nblocks,
                     float *out, size_t cap)
{
    size_t made_total = 0, at = 0;
    for (int b = 0; at < n; b++) {
        size_t len = blocks[b % nblocks];
        if (len > n - at)
            len = n - at;
        size_t room = st_resampler_max_output(r, len);
        CU_ASSERT_FATAL(made_total + room <= cap);
        size_t used = 0, made = 0;
        CU_ASSERT_EQUAL_FATAL(
            st_resampler_process(r, in + at, len, out + made_total, room, &used, &made), ST_OK);
        CU_ASSERT_EQUAL_FATAL(used, len);
        CU_ASSERT_FATAL(made <= room);
        at += used;
        made_total += made;
    }
    for (;;) {
        size_t made = 0;
        CU_ASSERT_FATAL(made_total + 64 <= cap);
        CU_ASSERT_EQUAL_FATAL(st_resampler_flush(r, out + made_total, 64, &made), ST_OK);
        if (!made)
            break;
        made_total += made;
    }
    return made_total;
}

static size_t convert_all(int in_rate, int out_rate, st_resample_quality q, const float *in,
                          size_t n, const size_t *blocks, int nblocks, float *out, size_t cap)
{
    int err = -1;
    st_resampler *r = st_resampler_new(in_rate, out_rate, q, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    CU_ASSERT_EQUAL(err, ST_OK);
    size_t made = stream(r, in, n, blocks, nblocks, out, cap);
    st_resampler_destroy(&r);
    CU_ASSERT_PTR_NULL(r);
    return made;
}

static size_t out_cap_for(size_t n, double ratio)
{
    return (size_t)(n * ratio) + 4096;
}

/* 16 kHz -> 48 kHz -> 16 kHz gives back the original: no lag (the converters
   are signal aligned) and little error inside the pass band. */
static void test_round_trip_snr(void)
{
    enum { N = 16000 };
    /* measured 52, 55 and 59 dB: the band edge of each converter decides */
    static const double min_snr_db[] = {30, 40, 40};
    float *x = malloc(N * sizeof *x);
    st_test_noise(x, N, 11, 16000, 1000);
    size_t cap_up = out_cap_for(N, 3), cap_back = out_cap_for(N, 1);
    float *up = malloc(cap_up * sizeof *up), *back = malloc(cap_back * sizeof *back);
    for (int qi = 0; qi < 3; qi++) {
        size_t b160 = 160, b480 = 480;
        size_t n_up = convert_all(16000, 48000, qualities[qi], x, N, &b160, 1, up, cap_up);
        CU_ASSERT_EQUAL(n_up, 3 * N);
        size_t n_back = convert_all(48000, 16000, qualities[qi], up, n_up, &b480, 1, back, cap_back);
        CU_ASSERT_EQUAL_FATAL(n_back, N);
        /* best lag by cross-correlation over the middle */
        int best_lag = 0;
        double best = -1e300;
        for (int lag = -40; lag <= 40; lag++) {
            double c = 0;
            for (size_t i = 1000; i < N - 1000; i++)
                c += (double)x[i] * back[(size_t)((long)i + lag)];
            if (c > best) {
                best = c;
                best_lag = lag;
            }
        }
        CU_ASSERT_EQUAL(best_lag, 0);
        double sig = 0, noise = 0;
        for (size_t i = 1000; i < N - 1000; i++) {
            double d = (double)back[i] - x[i];
            sig += (double)x[i] * x[i];
            noise += d * d;
        }
        double snr = 10 * log10(sig / noise);
        if (snr <= min_snr_db[qi])
            printf("\n  %s: round-trip SNR %.1f dB\n", quality_names[qi], snr);
        CU_ASSERT_TRUE(snr > min_snr_db[qi]);
    }
    free(x);
    free(up);
    free(back);
}

/* The same samples whatever the block size, and the same as libsamplerate's
   one-shot src_simple(). */
static void test_block_size_invariant(void)
{
    static const int rates[][2] = {{16000, 48000}, {44100, 16000}};
    static const size_t sizes[] = {1, 7, 160, 1000};
    for (int ri = 0; ri < 2; ri++) {
        int in_rate = rates[ri][0], out_rate = rates[ri][1];
        double ratio = (double)out_rate / in_rate;
        size_t n = (size_t)in_rate / 8 + 123;
        float *x = malloc(n * sizeof *x);
        st_test_noise(x, n, 12, in_rate, 0.3 * in_rate);
        size_t cap = out_cap_for(n, ratio);
        float *one = malloc(cap * sizeof *one), *blk = malloc(cap * sizeof *blk);
        float *peer = calloc(cap, sizeof *peer);
        for (int qi = 0; qi < 3; qi++) {
            size_t all = n;
            size_t n_one = convert_all(in_rate, out_rate, qualities[qi], x, n, &all, 1, one, cap);
            CU_ASSERT_TRUE(fabs((double)n_one - n * ratio) <= 1.0);
            for (int si = 0; si <= 4; si++) {
                /* each size alone, then all four in turn */
                const size_t *bs = si < 4 ? &sizes[si] : sizes;
                size_t n_blk = convert_all(in_rate, out_rate, qualities[qi], x, n, bs,
                                           si < 4 ? 1 : 4, blk, cap);
                CU_ASSERT_EQUAL(n_blk, n_one);
                CU_ASSERT_EQUAL(memcmp(blk, one, n_one * sizeof *one), 0);
            }
            static const int types[] = {SRC_SINC_FASTEST, SRC_SINC_MEDIUM_QUALITY,
                                        SRC_SINC_BEST_QUALITY};
            SRC_DATA d = {.data_in = x, .data_out = peer, .input_frames = (long)n,
                          .output_frames = (long)cap, .src_ratio = ratio};
            CU_ASSERT_EQUAL_FATAL(src_simple(&d, types[qi], 1), 0);
            CU_ASSERT_EQUAL(d.output_frames_gen, (long)n_one);
            CU_ASSERT_EQUAL(memcmp(peer, one, n_one * sizeof *one), 0);
        }
        free(x);
        free(one);
        free(blk);
        free(peer);
    }
}

/* A 1 kHz sine at 44.1 kHz comes out at 16 kHz as a 1 kHz sine of the same
   amplitude: frequency from the zero crossings (interpolated), amplitude
   from the RMS. */
static void test_sine_44k1_to_16k(void)
{
    enum { N = 44100 };
    float *x = malloc(N * sizeof *x);
    for (int i = 0; i < N; i++)
        x[i] = (float)(0.5 * sin(2 * M_PI * 1000.0 * i / 44100));
    size_t cap = out_cap_for(N, 16000.0 / 44100), block = 441;
    float *y = malloc(cap * sizeof *y);
    for (int qi = 0; qi < 3; qi++) {
        size_t n = convert_all(44100, 16000, qualities[qi], x, N, &block, 1, y, cap);
        /* 44100 * (16000.0 / 44100) is a hair under 16000 in doubles */
        CU_ASSERT_FATAL(n == 16000 || n == 15999);
        double first = -1, last = -1, e = 0;
        int crossings = 0;
        for (size_t i = 500; i < 15500; i++) {
            e += (double)y[i] * y[i];
            if ((y[i] < 0) != (y[i + 1] < 0)) {
                double t = i + y[i] / (y[i] - y[i + 1]);
                if (first < 0)
                    first = t;
                last = t;
                crossings++;
            }
        }
        double freq = (crossings - 1) / 2.0 / ((last - first) / 16000);
        double amp = sqrt(e / 15000) * sqrt(2.0);
        CU_ASSERT_DOUBLE_EQUAL(freq, 1000.0, 0.5);
        CU_ASSERT_DOUBLE_EQUAL(amp, 0.5, 0.005);
        /* aligned: y[k] is x at time k / 16000 */
        double worst = 0;
        for (size_t k = 500; k < 15500; k++)
            worst = fmax(worst, fabs(y[k] - 0.5 * sin(2 * M_PI * 1000.0 * k / 16000)));
        CU_ASSERT_TRUE(worst < 0.01);
    }
    free(x);
    free(y);
}

/* The delay it reports is the delay it has: fed 160-frame blocks, after N
   input frames it has made N * ratio - latency frames (within 2), from the
   moment output flows; and an impulse comes out where alignment says. */
static void test_latency_consistent(void)
{
    static const int rates[][2] = {{16000, 48000}, {48000, 16000}, {44100, 16000}, {16000, 44100}};
    double prev[4] = {0};
    for (int qi = 0; qi < 3; qi++) {
        for (int ri = 0; ri < 4; ri++) {
            int in_rate = rates[ri][0], out_rate = rates[ri][1];
            st_resampler *r = st_resampler_new(in_rate, out_rate, qualities[qi], NULL);
            CU_ASSERT_PTR_NOT_NULL_FATAL(r);
            double ratio = st_resampler_ratio(r), lat = st_resampler_latency_frames(r);
            CU_ASSERT_DOUBLE_EQUAL(ratio, (double)out_rate / in_rate, 1e-12);
            CU_ASSERT_DOUBLE_EQUAL(st_resampler_latency_s(r), lat / out_rate, 1e-12);
            CU_ASSERT_TRUE(lat > 5 && lat < 1000);
            CU_ASSERT_TRUE(lat > prev[ri]); /* fastest < medium < best */
            prev[ri] = lat;

            enum { BLOCK = 160, TOTAL = 8000 };
            float in[BLOCK], out[1024];
            size_t in_total = 0, out_total = 0;
            int off = 0;
            for (int b = 0; in_total < TOTAL; b++) {
                st_test_noise(in, BLOCK, (unsigned)b + 1, in_rate, in_rate / 8.0);
                size_t used, made;
                CU_ASSERT_EQUAL_FATAL(
                    st_resampler_process(r, in, BLOCK, out, sizeof out / sizeof *out, &used, &made),
                    ST_OK);
                in_total += used;
                out_total += made;
                if (out_total > 0 && fabs(in_total * ratio - lat - (double)out_total) > 2.0)
                    off++;
            }
            CU_ASSERT_EQUAL(off, 0);
            if (off)
                printf("\n  %s %d->%d: latency %.2f, owed %.2f\n", quality_names[qi], in_rate,
                       out_rate, lat, in_total * ratio - (double)out_total);

            /* an impulse at 0.1 s of input comes out at 0.1 s of output */
            st_resampler_reset(r);
            size_t n = (size_t)in_rate / 10 + 2000, at = (size_t)in_rate / 10;
            float *x = calloc(n, sizeof *x);
            x[at] = 1.0f;
            size_t cap = out_cap_for(n, ratio);
            float *y = malloc(cap * sizeof *y);
            size_t blk = BLOCK;
            size_t m = stream(r, x, n, &blk, 1, y, cap);
            size_t peak = 0;
            for (size_t k = 1; k < m; k++)
                if (fabsf(y[k]) > fabsf(y[peak]))
                    peak = k;
            CU_ASSERT_EQUAL(peak, (size_t)(out_rate / 10));
            free(x);
            free(y);
            st_resampler_destroy(&r);
        }
    }
}

static void test_equal_rates_copy(void)
{
    int err = -1;
    st_resampler *r = st_resampler_new(16000, 16000, ST_RESAMPLE_BEST, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    CU_ASSERT_EQUAL(err, ST_OK);
    CU_ASSERT_EQUAL(st_resampler_latency_frames(r), 0.0);
    CU_ASSERT_EQUAL(st_resampler_latency_s(r), 0.0);
    CU_ASSERT_EQUAL(st_resampler_ratio(r), 1.0);
    CU_ASSERT_EQUAL(st_resampler_max_output(r, 160), 160);
    float x[500], y[500];
    st_test_noise(x, 500, 13, 16000, 4000);
    size_t used, made;
    CU_ASSERT_EQUAL(st_resampler_process(r, x, 500, y, 500, &used, &made), ST_OK);
    CU_ASSERT_EQUAL(used, 500);
    CU_ASSERT_EQUAL(made, 500);
    CU_ASSERT_EQUAL(memcmp(x, y, sizeof x), 0);
    CU_ASSERT_EQUAL(st_resampler_process(r, x, 500, y, 100, &used, &made), ST_OK);
    CU_ASSERT_EQUAL(used, 100);
    CU_ASSERT_EQUAL(made, 100);
    CU_ASSERT_EQUAL(st_resampler_flush(r, y, 500, &made), ST_OK);
    CU_ASSERT_EQUAL(made, 0);
    st_resampler_destroy(&r);
    st_resampler_destroy(&r); /* idempotent */
}

static void test_bad_rates(void)
{
    static const int bad[][2] = {
        {0, 16000}, {16000, 0}, {-16000, 16000}, {16000, -1}, {16, 16000}, {16000, 16000000},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int err = 0;
        st_error_clear();
        CU_ASSERT_PTR_NULL(st_resampler_new(bad[i][0], bad[i][1], ST_RESAMPLE_FASTEST, &err));
        CU_ASSERT_EQUAL(err, ST_ERR_INVALID);
        char rate[32];
        snprintf(rate, sizeof rate, "%d Hz", bad[i][1]);
        CU_ASSERT_PTR_NOT_NULL(strstr(st_errmsg(), rate));
    }
    CU_ASSERT_PTR_NOT_NULL(strstr(st_errmsg(), "1/256 .. 256"));
    int err = 0;
    CU_ASSERT_PTR_NULL(st_resampler_new(16000, 48000, (st_resample_quality)7, &err));
    CU_ASSERT_EQUAL(err, ST_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(st_errmsg(), "quality"));
    CU_ASSERT_PTR_NULL(st_resampler_new(0, 0, ST_RESAMPLE_FASTEST, NULL)); /* err may be NULL */
    /* the limits themselves are valid */
    st_resampler *r = st_resampler_new(1000, 256000, ST_RESAMPLE_FASTEST, &err);
    CU_ASSERT_PTR_NOT_NULL(r);
    st_resampler_destroy(&r);
    r = st_resampler_new(256000, 1000, ST_RESAMPLE_FASTEST, &err);
    CU_ASSERT_PTR_NOT_NULL(r);
    st_resampler_destroy(&r);
}

/* An output buffer smaller than the input needs: it consumes only what fits
   (no silent backlog inside libsamplerate), never writes past out_cap, keeps
   making progress however small the buffer, and the samples are those of
   one big block. */
static void small_out_cap_case(int in_rate, int out_rate, st_resample_quality q, const size_t *caps,
                               int ncaps)
{
    double ratio = (double)out_rate / in_rate;
    size_t n = (size_t)in_rate / 4;
    float *x = malloc(n * sizeof *x);
    st_test_noise(x, n, 14, in_rate, in_rate / 8.0);
    size_t cap = out_cap_for(n, ratio);
    float *ref = malloc(cap * sizeof *ref), *y = malloc((cap + 16) * sizeof *y);
    size_t all = n;
    size_t n_ref = convert_all(in_rate, out_rate, q, x, n, &all, 1, ref, cap);

    st_resampler *r = st_resampler_new(in_rate, out_rate, q, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    double lat = st_resampler_latency_frames(r);
    size_t at = 0, made_total = 0;
    long calls = 0;
    int overflows = 0, stalls = 0, backlogs = 0, short_full = 0;
    while (at < n && calls < 10 * (long)n) {
        size_t room = caps[calls % ncaps];
        int full = room == 0; /* 0 stands for "what max_output promises" */
        size_t want = n - at < 1000 ? n - at : 1000;
        if (full)
            room = st_resampler_max_output(r, want);
        for (int g = 0; g < 16; g++)
            y[made_total + room + (size_t)g] = 1234.5f; /* guard */
        size_t used = 0, made = 0;
        CU_ASSERT_EQUAL_FATAL(
            st_resampler_process(r, x + at, want, y + made_total, room, &used, &made), ST_OK);
        for (int g = 0; g < 16; g++)
            overflows += y[made_total + room + (size_t)g] != 1234.5f;
        overflows += made > room;
        stalls += used == 0 && made == 0;
        short_full += full && used != want;
        at += used;
        made_total += made;
        /* what it took but has not made, beyond the filter's fixed delay */
        backlogs += (double)at * ratio - (double)made_total - lat > ceil(ratio) + 2;
        calls++;
    }
    CU_ASSERT_EQUAL(at, n);
    CU_ASSERT_EQUAL(overflows, 0);
    CU_ASSERT_EQUAL(stalls, 0);
    CU_ASSERT_EQUAL(backlogs, 0);
    CU_ASSERT_EQUAL(short_full, 0);
    for (;;) {
        size_t made = 0;
        size_t room = caps[calls++ % ncaps];
        if (!room)
            room = 64;
        CU_ASSERT_FATAL(made_total + room <= cap);
        CU_ASSERT_EQUAL_FATAL(st_resampler_flush(r, y + made_total, room, &made), ST_OK);
        if (!made)
            break;
        made_total += made;
    }
    CU_ASSERT_EQUAL(made_total, n_ref);
    CU_ASSERT_EQUAL(memcmp(y, ref, n_ref * sizeof *y), 0);
    st_resampler_destroy(&r);
    free(x);
    free(ref);
    free(y);
}

static void test_small_out_cap(void)
{
    /* one big block into 100 frames: partial consumption */
    st_resampler *r = st_resampler_new(16000, 48000, ST_RESAMPLE_FASTEST, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    enum { N = 48000 };
    float *x = malloc(N * sizeof *x), out[116];
    st_test_noise(x, N, 15, 16000, 2000);
    for (int g = 100; g < 116; g++)
        out[g] = -7.0f;
    size_t used = 0, made = 0;
    CU_ASSERT_EQUAL(st_resampler_process(r, x, N, out, 100, &used, &made), ST_OK);
    CU_ASSERT_TRUE(made <= 100);
    CU_ASSERT_TRUE(used > 0 && used < 100);
    for (int g = 100; g < 116; g++)
        CU_ASSERT_EQUAL(out[g], -7.0f);
    st_resampler_destroy(&r);
    free(x);

    static const size_t mixed[] = {100, 1, 0, 37, 2, 0, 0, 5};
    static const size_t tiny[] = {1};
    for (int qi = 0; qi < 3; qi++) {
        small_out_cap_case(16000, 48000, qualities[qi], mixed, 8);
        small_out_cap_case(48000, 16000, qualities[qi], mixed, 8);
        small_out_cap_case(44100, 16000, qualities[qi], tiny, 1);
    }
    small_out_cap_case(16000, 48000, ST_RESAMPLE_FASTEST, tiny, 1);
}

/* Flush delivers the held-back tail: in all, in * ratio frames. After the end
   of input only reset() helps, and a reset resampler is as good as new. */
static void test_flush_and_reset(void)
{
    static const int rates[][2] = {{16000, 48000}, {48000, 16000}, {44100, 16000}};
    enum { N = 8000 };
    float *x = malloc(N * sizeof *x);
    st_test_noise(x, N, 16, 16000, 3000);
    for (int qi = 0; qi < 3; qi++) {
        for (int ri = 0; ri < 3; ri++) {
            st_resampler *r = st_resampler_new(rates[ri][0], rates[ri][1], qualities[qi], NULL);
            CU_ASSERT_PTR_NOT_NULL_FATAL(r);
            double ratio = st_resampler_ratio(r);
            size_t cap = out_cap_for(N, ratio);
            float *y = malloc(cap * sizeof *y), *y2 = malloc(cap * sizeof *y2);
            size_t blk = 160, before = 0, used, made;
            for (size_t at = 0; at < N; at += blk) {
                CU_ASSERT_EQUAL(st_resampler_process(r, x + at, blk, y + before,
                                                     st_resampler_max_output(r, blk), &used, &made),
                                ST_OK);
                before += made;
            }
            CU_ASSERT_TRUE(before < N * ratio - 5); /* some is held back */
            size_t total = before;
            int calls = 0;
            do {
                CU_ASSERT_EQUAL_FATAL(st_resampler_flush(r, y + total, 7, &made), ST_OK);
                CU_ASSERT_TRUE(made <= 7);
                total += made;
            } while (made && ++calls < 10000);
            CU_ASSERT_TRUE(fabs((double)total - N * ratio) <= 1.0);
            CU_ASSERT_DOUBLE_EQUAL((double)(total - before), st_resampler_latency_frames(r), 2.0);

            CU_ASSERT_EQUAL(st_resampler_process(r, x, blk, y2, cap, &used, &made), ST_ERR_STATE);
            CU_ASSERT_EQUAL(used, 0);
            CU_ASSERT_EQUAL(made, 0);
            CU_ASSERT_PTR_NOT_NULL(strstr(st_errmsg(), "reset"));

            st_resampler_reset(r);
            size_t total2 = stream(r, x, N, &blk, 1, y2, cap);
            CU_ASSERT_EQUAL(total2, total);
            CU_ASSERT_EQUAL(memcmp(y, y2, total * sizeof *y), 0);
            st_resampler_destroy(&r);
            free(y);
            free(y2);
        }
    }
    free(x);
}

/* process and flush run on the audio thread: no allocation, ever. */
static void test_process_allocates_nothing(void)
{
    if (!st_test_alloc_live()) {
        st_test_skip("resample:process_allocates_nothing",
                     "allocation counting is off under a sanitizer or valgrind");
        return;
    }
    st_resampler *r = st_resampler_new(48000, 16000, ST_RESAMPLE_MEDIUM, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    float in[480], out[200];
    st_test_noise(in, 480, 17, 48000, 4000);
    unsigned long before = st_test_rt_allocs();
    st_rt_enter();
    for (int b = 0; b < 200; b++) {
        size_t used, made;
        st_resampler_process(r, in, 480, out, b % 3 ? 200 : 50, &used, &made);
    }
    size_t made;
    st_resampler_flush(r, out, 200, &made);
    st_resampler_reset(r);
    st_rt_leave();
    CU_ASSERT_EQUAL(st_test_rt_allocs(), before);
    st_resampler_destroy(&r);
}

CU_TestInfo st_tests_resample[] = {
    {"round_trip_snr", test_round_trip_snr},
    {"block_size_invariant", test_block_size_invariant},
    {"sine_44k1_to_16k", test_sine_44k1_to_16k},
    {"latency_consistent", test_latency_consistent},
    {"equal_rates_copy", test_equal_rates_copy},
    {"bad_rates", test_bad_rates},
    {"small_out_cap", test_small_out_cap},
    {"flush_and_reset", test_flush_and_reset},
    {"process_allocates_nothing", test_process_allocates_nothing},
    CU_TEST_INFO_NULL,
};
