/*  tests/test_loopback.c - suite `loopback`: a 16 kHz file through the
    virtual devices at 48 kHz, down to 16 kHz and back, comes out delayed by
    exactly the round trip the loopback reports (cross-correlation), the run
    is deterministic, and the audio path allocates nothing. */
#include "testutil.h"

#include "audio/audio.h"

#include <math.h>
#include <samplerate.h>
#include <stdlib.h>
#include <string.h>

#define IN_RATE 16000
#define DEV_RATE 48000

/* Writes 1 s of band-limited noise at 16 kHz; returns its path. */
static const char *make_input(char *path, size_t cap, float **signal, size_t *n)
{
    *n = IN_RATE;
    *signal = malloc(*n * sizeof(float));
    st_test_noise(*signal, *n, 42, IN_RATE, 2500);
    st_test_tmpfile(path, cap, "loop-in.wav");
    CU_ASSERT_EQUAL_FATAL(st_audio_write_wav(path, *signal, *n, IN_RATE, ST_WAV_FLOAT), ST_OK);
    return path;
}

static int run_loop(const char *in, const char *out, bool realtime, st_loopback_report *rep)
{
    st_device_params dp = st_device_default_params();
    dp.sample_rate_hz = DEV_RATE;
    st_virtual_params vp = {.input_path = in, .output_path = out, .realtime = realtime};
    int rc;
    st_device *d = st_device_open_virtual(&dp, &vp, &rc);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    st_loopback_params lp = st_loopback_default_params();
    rc = st_loopback_run(d, &lp, rep);
    st_device_destroy(&d);
    CU_ASSERT_PTR_NULL(d);
    return rc;
}

/* Lag in [0, max_lag) maximising sum x[i] * y[i + lag]; *norm gets the
   normalised correlation at that lag. */
static long best_lag(const float *x, size_t nx, const float *y, size_t ny, long max_lag,
                     double *norm)
{
    long best = -1;
    double best_c = -1e300, ex = 0;
    for (size_t i = 0; i < nx; i++)
        ex += (double)x[i] * x[i];
    for (long lag = 0; lag < max_lag; lag++) {
        double c = 0;
        size_t end = nx;
        if ((size_t)lag + end > ny)
            end = ny - (size_t)lag;
        for (size_t i = 0; i < end; i++)
            c += (double)x[i] * y[i + (size_t)lag];
        if (c > best_c) {
            best_c = c;
            best = lag;
        }
    }
    double ey = 0;
    for (size_t i = 0; i < nx && (size_t)best + i < ny; i++)
        ey += (double)y[(size_t)best + i] * y[(size_t)best + i];
    *norm = best_c / sqrt(ex * ey + 1e-30);
    return best;
}

static void test_delay_is_exactly_reported(void)
{
    char in_path[512], out_path[512];
    float *x;
    size_t n;
    make_input(in_path, sizeof in_path, &x, &n);
    st_test_tmpfile(out_path, sizeof out_path, "loop-out.wav");
    st_loopback_report rep;
    CU_ASSERT_EQUAL_FATAL(run_loop(in_path, out_path, false, &rep), ST_OK);
    CU_ASSERT_EQUAL(rep.sample_rate_hz, DEV_RATE);
    /* Deterministic virtual clock: one round trip for every block. */
    CU_ASSERT_EQUAL(rep.round_trip_min_frames, rep.round_trip_max_frames);
    CU_ASSERT_TRUE(rep.round_trip_frames >= rep.resampler_latency_frames);
    CU_ASSERT_EQUAL(rep.device.playback_underrun_frames, 0);
    CU_ASSERT_EQUAL(rep.device.capture_overrun_frames, 0);

    /* The reference: the input at the device rate (libsamplerate keeps the
       signal aligned, so this adds no delay of its own). */
    size_t nref = n * 3;
    float *ref = calloc(nref, sizeof(float));
    SRC_DATA sd = {.data_in = x, .input_frames = (long)n, .data_out = ref,
                   .output_frames = (long)nref, .src_ratio = 3.0};
    CU_ASSERT_EQUAL_FATAL(src_simple(&sd, SRC_SINC_BEST_QUALITY, 1), 0);
    st_audio y;
    CU_ASSERT_EQUAL_FATAL(st_audio_read(out_path, &y), ST_OK);
    CU_ASSERT_EQUAL(y.sample_rate_hz, DEV_RATE);
    CU_ASSERT_TRUE(y.frames >= nref);
    double norm;
    long lag = best_lag(ref + 2000, (size_t)sd.output_frames_gen - 4000, y.samples + 2000,
                        y.frames - 2000, 3000, &norm);
    CU_ASSERT_EQUAL(lag, (long)rep.round_trip_frames);
    CU_ASSERT_TRUE(norm > 0.98);
    if (lag != (long)rep.round_trip_frames || norm <= 0.98)
        fprintf(stderr, "\n  cross-correlation peak at %ld (norm %.4f), reported %.0f\n", lag,
                norm, rep.round_trip_frames);
    st_audio_free(&y);
    free(ref);
    free(x);
}

static void test_deterministic(void)
{
    char in_path[512], out1[512], out2[512];
    float *x;
    size_t n;
    make_input(in_path, sizeof in_path, &x, &n);
    st_test_tmpfile(out1, sizeof out1, "det-1.wav");
    st_test_tmpfile(out2, sizeof out2, "det-2.wav");
    st_loopback_report a, b;
    CU_ASSERT_EQUAL_FATAL(run_loop(in_path, out1, false, &a), ST_OK);
    CU_ASSERT_EQUAL_FATAL(run_loop(in_path, out2, false, &b), ST_OK);
    CU_ASSERT_EQUAL(a.round_trip_frames, b.round_trip_frames);
    CU_ASSERT_EQUAL(a.frames_in, b.frames_in);
    CU_ASSERT_EQUAL(a.frames_out, b.frames_out);
    st_audio ya, yb;
    CU_ASSERT_EQUAL_FATAL(st_audio_read(out1, &ya), ST_OK);
    CU_ASSERT_EQUAL_FATAL(st_audio_read(out2, &yb), ST_OK);
    CU_ASSERT_EQUAL(ya.frames, yb.frames);
    CU_ASSERT_EQUAL(memcmp(ya.samples, yb.samples, ya.frames * sizeof(float)), 0);
    st_audio_free(&ya);
    st_audio_free(&yb);
    free(x);
}

static void test_audio_path_allocates_nothing(void)
{
    if (!st_test_alloc_live()) {
        st_test_skip("loopback:audio_path_allocates_nothing",
                     "allocations cannot be counted under valgrind (its malloc replaces ours)");
        return;
    }
    char in_path[512];
    float *x;
    size_t n;
    make_input(in_path, sizeof in_path, &x, &n);
    unsigned long before = st_test_rt_allocs();
    st_loopback_report rep;
    CU_ASSERT_EQUAL(run_loop(in_path, NULL, false, &rep), ST_OK);
    CU_ASSERT_TRUE(rep.device.blocks > 50); /* the audio path did run */
    CU_ASSERT_EQUAL(st_test_rt_allocs(), before);
    free(x);
}

static void test_realtime_pacing(void)
{
    char in_path[512];
    float *x;
    size_t n;
    make_input(in_path, sizeof in_path, &x, &n);
    st_loopback_report rep;
    double t0 = st_now_s();
    CU_ASSERT_EQUAL(run_loop(in_path, NULL, true, &rep), ST_OK);
    double wall = st_now_s() - t0;
    /* 1 s of audio paced by the wall clock takes about 1 s. */
    CU_ASSERT_TRUE(wall > 0.9);
    CU_ASSERT_TRUE(rep.frames_in >= (uint64_t)DEV_RATE);
    CU_ASSERT_TRUE(rep.round_trip_frames >= rep.resampler_latency_frames);
    free(x);
}

static void test_bad_input_file(void)
{
    st_device_params dp = st_device_default_params();
    st_virtual_params vp = {.input_path = "/nonexistent/speech.wav"};
    int rc = 0;
    st_device *d = st_device_open_virtual(&dp, &vp, &rc);
    CU_ASSERT_PTR_NULL(d);
    CU_ASSERT_EQUAL(rc, ST_ERR_NOT_FOUND);
    CU_ASSERT_PTR_NOT_NULL(strstr(st_errmsg(), "/nonexistent/speech.wav"));

    char in_path[512];
    float *x;
    size_t n;
    make_input(in_path, sizeof in_path, &x, &n);
    vp.input_path = in_path;
    vp.output_path = "/nonexistent/out.wav";
    d = st_device_open_virtual(&dp, &vp, &rc);
    CU_ASSERT_PTR_NULL(d);
    CU_ASSERT_EQUAL(rc, ST_ERR_IO);
    CU_ASSERT_PTR_NOT_NULL(strstr(st_errmsg(), "/nonexistent/out.wav"));
    free(x);
}

CU_TestInfo st_tests_loopback[] = {
    {"delay_is_exactly_reported", test_delay_is_exactly_reported},
    {"deterministic", test_deterministic},
    {"audio_path_allocates_nothing", test_audio_path_allocates_nothing},
    {"realtime_pacing", test_realtime_pacing},
    {"bad_input_file", test_bad_input_file},
    CU_TEST_INFO_NULL,
};
