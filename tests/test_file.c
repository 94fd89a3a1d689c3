/*  tests/test_file.c - suite `file`: reading and writing audio files
    (audio/file.c): round trips, the mix-down, FLAC and Ogg, and the errors a
    user meets (missing, not audio, truncated, unwritable). Fixtures are
    written here with libsndfile into the runner's temporary folder. */
#include "testutil.h"

#include "audio/audio.h"

#include <math.h>
#include <signal.h>
#include <sndfile.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

/* Writes interleaved float frames with libsndfile directly (the fixture is
   not written by the code under test). */
static int write_with_sndfile(const char *path, int format, int rate_hz, int channels,
                              const float *interleaved, sf_count_t frames)
{
    SF_INFO info = {.samplerate = rate_hz, .channels = channels, .format = format};
    SNDFILE *sf = sf_open(path, SFM_WRITE, &info);
    if (!sf)
        return -1;
    sf_count_t put = sf_writef_float(sf, interleaved, frames);
    int rc = sf_close(sf);
    return put == frames && rc == 0 ? 0 : -1;
}

/* st_test_noise peaks near 1.8: halved, it stays inside full scale, which
   integer formats need (libFLAC even refuses samples beyond it). */
static void quiet_noise(float *x, size_t n, unsigned seed, int rate_hz, double cutoff_hz)
{
    st_test_noise(x, n, seed, rate_hz, cutoff_hz);
    for (size_t i = 0; i < n; i++)
        x[i] *= 0.5f;
}

static long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

static void test_round_trip_pcm16(void)
{
    char path[4096];
    st_test_tmpfile(path, sizeof path, "pcm16.wav");
    enum { N = 16000 };
    float *x = malloc(N * sizeof *x);
    quiet_noise(x, N, 1, 16000, 3000);
    x[0] = 1.0f;    /* full scale both ways, and beyond: clipped, not wrapped */
    x[1] = -1.0f;
    x[2] = 1.5f;
    x[3] = -2.0f;
    x[4] = 0.5f;
    CU_ASSERT_EQUAL_FATAL(st_audio_write_wav(path, x, N, 16000, ST_WAV_PCM16), ST_OK);
    CU_ASSERT_EQUAL(file_size(path), 44 + 2 * N); /* a plain 16-bit WAV */

    st_audio a;
    CU_ASSERT_EQUAL_FATAL(st_audio_read(path, &a), ST_OK);
    CU_ASSERT_EQUAL(a.frames, N);
    CU_ASSERT_EQUAL(a.sample_rate_hz, 16000);
    CU_ASSERT_EQUAL(a.channels_in_file, 1);
    double worst = 0;
    for (size_t i = 4; i < a.frames; i++) {
        double d = fabs(a.samples[i] - x[i]);
        if (d > worst)
            worst = d;
    }
    CU_ASSERT_TRUE(worst <= 1.0 / 32768);
    CU_ASSERT_EQUAL(a.samples[4], 0.5f);
    CU_ASSERT_DOUBLE_EQUAL(a.samples[0], 32767.0 / 32768, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(a.samples[1], -1.0, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(a.samples[2], 32767.0 / 32768, 1e-9);
    CU_ASSERT_DOUBLE_EQUAL(a.samples[3], -1.0, 1e-9);
    st_audio_free(&a);
    CU_ASSERT_PTR_NULL(a.samples);
    CU_ASSERT_EQUAL(a.frames, 0);
    st_audio_free(&a); /* twice is fine */
    free(x);
}

static void test_round_trip_float(void)
{
    char path[4096];
    st_test_tmpfile(path, sizeof path, "float.wav");
    enum { N = 44100 };
    float *x = malloc(N * sizeof *x);
    st_test_noise(x, N, 2, 44100, 5000);
    x[0] = 1.75f; /* float keeps what PCM16 would clip */
    x[1] = 1e-30f;
    CU_ASSERT_EQUAL_FATAL(st_audio_write_wav(path, x, N, 44100, ST_WAV_FLOAT), ST_OK);
    st_audio a;
    CU_ASSERT_EQUAL_FATAL(st_audio_read(path, &a), ST_OK);
    CU_ASSERT_EQUAL(a.sample_rate_hz, 44100);
    CU_ASSERT_EQUAL_FATAL(a.frames, N);
    CU_ASSERT_EQUAL(memcmp(a.samples, x, N * sizeof *x), 0); /* bit exact */
    st_audio_free(&a);
    /* no PEAK chunk: libsndfile stamps it with the time, and the same
       samples written a second later would make another file */
    unsigned char head[256];
    FILE *f = fopen(path, "rb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    size_t got = fread(head, 1, sizeof head, f);
    fclose(f);
    CU_ASSERT_TRUE(got == sizeof head);
    CU_ASSERT_PTR_NULL(memmem(head, got, "PEAK", 4));
    free(x);
}

static void test_empty_file(void)
{
    char path[4096];
    st_test_tmpfile(path, sizeof path, "empty.wav");
    CU_ASSERT_EQUAL_FATAL(st_audio_write_wav(path, NULL, 0, 16000, ST_WAV_PCM16), ST_OK);
    st_audio a;
    CU_ASSERT_EQUAL(st_audio_read(path, &a), ST_OK);
    CU_ASSERT_EQUAL(a.frames, 0);
    CU_ASSERT_EQUAL(a.sample_rate_hz, 16000);
    st_audio_free(&a);
}

static void test_stereo_mixes_down(void)
{
    char path[4096];
    st_test_tmpfile(path, sizeof path, "stereo.wav");
    enum { N = 1000 };
    float lr[2 * N];
    for (int i = 0; i < N; i++) {
        lr[2 * i] = 0.5f;
        lr[2 * i + 1] = -0.1f;
    }
    CU_ASSERT_EQUAL_FATAL(
        write_with_sndfile(path, SF_FORMAT_WAV | SF_FORMAT_FLOAT, 48000, 2, lr, N), 0);
    st_audio a;
    CU_ASSERT_EQUAL_FATAL(st_audio_read(path, &a), ST_OK);
    CU_ASSERT_EQUAL(a.channels_in_file, 2);
    CU_ASSERT_EQUAL(a.sample_rate_hz, 48000);
    CU_ASSERT_EQUAL_FATAL(a.frames, N);
    int wrong = 0;
    for (int i = 0; i < N; i++)
        wrong += fabsf(a.samples[i] - 0.2f) > 1e-6f;
    CU_ASSERT_EQUAL(wrong, 0);
    st_audio_free(&a);
}

/* Six channels and more frames than the mix-down buffer holds at once, so
   the average crosses chunk boundaries. */
static void test_many_channels_mix_down(void)
{
    char path[4096];
    st_test_tmpfile(path, sizeof path, "six.wav");
    enum { N = 20011, C = 6 };
    float *x = malloc((size_t)N * C * sizeof *x);
    for (int i = 0; i < N; i++)
        for (int c = 0; c < C; c++)
            x[i * C + c] = (float)((c + 1) * 0.05 * ((i % 2) ? 1 : -1) + (i % 100) * 0.001);
    CU_ASSERT_EQUAL_FATAL(write_with_sndfile(path, SF_FORMAT_WAV | SF_FORMAT_FLOAT, 8000, C, x, N), 0);
    st_audio a;
    CU_ASSERT_EQUAL_FATAL(st_audio_read(path, &a), ST_OK);
    CU_ASSERT_EQUAL(a.channels_in_file, C);
    CU_ASSERT_EQUAL_FATAL(a.frames, N);
    int wrong = 0;
    for (int i = 0; i < N; i++) {
        double want = 0;
        for (int c = 0; c < C; c++)
            want += x[i * C + c];
        wrong += fabs(a.samples[i] - want / C) > 1e-6;
    }
    CU_ASSERT_EQUAL(wrong, 0);
    st_audio_free(&a);
    free(x);
}

static void test_flac_and_ogg(void)
{
    char flac[4096], ogg[4096];
    st_test_tmpfile(flac, sizeof flac, "noise.flac");
    st_test_tmpfile(ogg, sizeof ogg, "sine.ogg");

    enum { NF = 22050 };
    float *x = malloc(NF * sizeof *x);
    quiet_noise(x, NF, 3, 22050, 4000);
    CU_ASSERT_EQUAL_FATAL(write_with_sndfile(flac, SF_FORMAT_FLAC | SF_FORMAT_PCM_16, 22050, 1, x, NF), 0);
    st_audio a;
    CU_ASSERT_EQUAL_FATAL(st_audio_read(flac, &a), ST_OK);
    CU_ASSERT_EQUAL(a.sample_rate_hz, 22050);
    CU_ASSERT_EQUAL_FATAL(a.frames, NF);
    double worst = 0;
    for (int i = 0; i < NF; i++)
        worst = fmax(worst, fabs(a.samples[i] - x[i]));
    /* libsndfile's own 16-bit write scales by 32767, its read by 1/32768 */
    CU_ASSERT_TRUE(worst <= 2.0 / 32768);
    st_audio_free(&a);
    free(x);

    enum { NO = 44100 };
    float *s = malloc(NO * sizeof *s);
    for (int i = 0; i < NO; i++)
        s[i] = (float)(0.5 * sin(2 * M_PI * 440.0 * i / 44100));
    CU_ASSERT_EQUAL_FATAL(write_with_sndfile(ogg, SF_FORMAT_OGG | SF_FORMAT_VORBIS, 44100, 1, s, NO), 0);
    CU_ASSERT_EQUAL_FATAL(st_audio_read(ogg, &a), ST_OK);
    CU_ASSERT_EQUAL(a.sample_rate_hz, 44100);
    CU_ASSERT_EQUAL(a.channels_in_file, 1);
    CU_ASSERT_TRUE(a.frames > NO - 2048 && a.frames < NO + 2048);
    double e = 0;
    size_t n = 0;
    for (size_t i = 4410; i + 4410 < a.frames; i++, n++)
        e += (double)a.samples[i] * a.samples[i];
    double rms = n ? sqrt(e / n) : 0;
    CU_ASSERT_DOUBLE_EQUAL(rms, 0.5 / sqrt(2.0), 0.02); /* lossy, but the same tone */
    st_audio_free(&a);
    free(s);
}

static void test_missing_file(void)
{
    char path[4096];
    st_test_tmpfile(path, sizeof path, "does-not-exist.wav");
    st_audio a = {.frames = 7};
    CU_ASSERT_EQUAL(st_audio_read(path, &a), ST_ERR_NOT_FOUND);
    CU_ASSERT_PTR_NULL(a.samples);
    CU_ASSERT_EQUAL(a.frames, 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(st_errmsg(), path));
    CU_ASSERT_PTR_NOT_NULL(strstr(st_errmsg(), "no such file"));
    int err = 0;
    CU_ASSERT_PTR_NULL(st_audio_reader_open(path, &err));
    CU_ASSERT_EQUAL(err, ST_ERR_NOT_FOUND);
}

static void test_not_audio(void)
{
    char path[4096];
    st_test_tmpfile(path, sizeof path, "notes.txt");
    FILE *f = fopen(path, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs("these are words, not samples\n", f);
    fclose(f);
    st_audio a;
    CU_ASSERT_EQUAL(st_audio_read(path, &a), ST_ERR_FORMAT);
    CU_ASSERT_PTR_NULL(a.samples);
    CU_ASSERT_PTR_NOT_NULL(strstr(st_errmsg(), path));
    CU_ASSERT_PTR_NOT_NULL(strstr(st_errmsg(), "not a readable audio file"));

    /* a folder is not audio either */
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", st_test_tmpdir());
    CU_ASSERT_EQUAL(st_audio_read(dir, &a), ST_ERR_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(st_errmsg(), dir));
}

static void test_truncated(void)
{
    char wav[4096], flac[4096];
    st_test_tmpfile(wav, sizeof wav, "cut.wav");
    st_test_tmpfile(flac, sizeof flac, "cut.flac");
    enum { N = 32000 };
    float *x = malloc(N * sizeof *x);
    quiet_noise(x, N, 4, 16000, 4000);

    CU_ASSERT_EQUAL_FATAL(st_audio_write_wav(wav, x, N, 16000, ST_WAV_PCM16), ST_OK);
    CU_ASSERT_EQUAL_FATAL(truncate(wav, file_size(wav) / 2), 0);
    st_audio a;
    CU_ASSERT_EQUAL(st_audio_read(wav, &a), ST_ERR_FORMAT);
    CU_ASSERT_PTR_NULL(a.samples);
    CU_ASSERT_PTR_NOT_NULL(strstr(st_errmsg(), wav));
    CU_ASSERT_PTR_NOT_NULL(strstr(st_errmsg(), "truncated: header declares 32000 frames, only"));
    int err = 0;
    CU_ASSERT_PTR_NULL(st_audio_reader_open(wav, &err));
    CU_ASSERT_EQUAL(err, ST_ERR_FORMAT);

    /* FLAC declares its length in STREAMINFO: caught when the reads stop short */
    CU_ASSERT_EQUAL_FATAL(write_with_sndfile(flac, SF_FORMAT_FLAC | SF_FORMAT_PCM_16, 16000, 1, x, N), 0);
    CU_ASSERT_EQUAL_FATAL(truncate(flac, file_size(flac) / 2), 0);
    CU_ASSERT_EQUAL(st_audio_read(flac, &a), ST_ERR_FORMAT);
    CU_ASSERT_PTR_NULL(a.samples);
    CU_ASSERT_PTR_NOT_NULL(strstr(st_errmsg(), flac));
    CU_ASSERT_PTR_NOT_NULL(strstr(st_errmsg(), "truncated: header declares 32000 frames"));
    free(x);
}

static void test_bad_arguments(void)
{
    st_audio a;
    int err = 0;
    float x[4] = {0};
    CU_ASSERT_EQUAL(st_audio_read(NULL, &a), ST_ERR_INVALID);
    CU_ASSERT_EQUAL(st_audio_read("", &a), ST_ERR_INVALID);
    CU_ASSERT_PTR_NULL(st_audio_reader_open("", &err));
    CU_ASSERT_EQUAL(err, ST_ERR_INVALID);
    CU_ASSERT_EQUAL(st_audio_write_wav(NULL, x, 4, 16000, ST_WAV_PCM16), ST_ERR_INVALID);
    CU_ASSERT_EQUAL(st_audio_write_wav("", x, 4, 16000, ST_WAV_PCM16), ST_ERR_INVALID);
    char path[4096];
    st_test_tmpfile(path, sizeof path, "bad-args.wav");
    CU_ASSERT_EQUAL(st_audio_write_wav(path, x, 4, 0, ST_WAV_PCM16), ST_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(st_errmsg(), "0 Hz"));
    CU_ASSERT_EQUAL(st_audio_write_wav(path, x, 4, 16000, (st_wav_format)9), ST_ERR_INVALID);
    CU_ASSERT_PTR_NULL(st_audio_writer_open(path, -8000, ST_WAV_FLOAT, &err));
    CU_ASSERT_EQUAL(err, ST_ERR_INVALID);
    st_audio_reader *r = NULL;
    st_audio_reader_close(&r); /* NULL is fine */
    st_audio_writer *w = NULL;
    CU_ASSERT_EQUAL(st_audio_writer_close(&w), ST_OK);
}

static void test_write_to_missing_folder(void)
{
    char path[4096];
    st_test_tmpfile(path, sizeof path, "no-such-folder/out.wav");
    float x[16] = {0};
    CU_ASSERT_EQUAL(st_audio_write_wav(path, x, 16, 16000, ST_WAV_PCM16), ST_ERR_IO);
    CU_ASSERT_PTR_NOT_NULL(strstr(st_errmsg(), path));
    int err = 0;
    CU_ASSERT_PTR_NULL(st_audio_writer_open(path, 16000, ST_WAV_FLOAT, &err));
    CU_ASSERT_EQUAL(err, ST_ERR_IO);
}

/* A disk that fills while writing: the file-size limit makes write() fail
   with EFBIG past 20000 bytes, as ENOSPC would. The failure must surface,
   at the latest from st_audio_writer_close(), and keep surfacing. */
static void test_writer_reports_full_disk(void)
{
    char path[4096];
    st_test_tmpfile(path, sizeof path, "full.wav");
    struct rlimit old;
    CU_ASSERT_EQUAL_FATAL(getrlimit(RLIMIT_FSIZE, &old), 0);
    void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
    struct rlimit small = {.rlim_cur = 20000, .rlim_max = old.rlim_max};
    CU_ASSERT_EQUAL_FATAL(setrlimit(RLIMIT_FSIZE, &small), 0);

    int err = -1;
    st_audio_writer *w = st_audio_writer_open(path, 16000, ST_WAV_PCM16, &err);
    int write_rc = ST_OK, close_rc = ST_OK;
    float block[1600];
    st_test_noise(block, 1600, 5, 16000, 2000);
    if (w) {
        for (int i = 0; i < 20 && write_rc == ST_OK; i++) /* 64000 bytes */
            write_rc = st_audio_writer_write(w, block, 1600);
        if (write_rc == ST_OK) /* a later write must report it too */
            write_rc = st_audio_writer_write(w, block, 1600);
        close_rc = st_audio_writer_close(&w);
    }
    setrlimit(RLIMIT_FSIZE, &old);
    signal(SIGXFSZ, old_handler);

    CU_ASSERT_PTR_NULL(w);
    CU_ASSERT_EQUAL(err, ST_OK);
    CU_ASSERT_EQUAL(write_rc, ST_ERR_IO);
    CU_ASSERT_EQUAL(close_rc, ST_ERR_IO);
    CU_ASSERT_PTR_NOT_NULL(strstr(st_errmsg(), path));

    /* /dev/full refuses even the header */
    if (access("/dev/full", W_OK) == 0) {
        float x[16] = {0};
        CU_ASSERT_EQUAL(st_audio_write_wav("/dev/full", x, 16, 16000, ST_WAV_PCM16), ST_ERR_IO);
        CU_ASSERT_PTR_NOT_NULL(strstr(st_errmsg(), "/dev/full"));
    }
}

static int open_descriptors(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    int n = 0;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

/* Every failed open gives back its descriptors (libsndfile closes the one
   it was handed even when told not to: the code must neither leak nor
   close one twice), and a sentinel opened before stays open. */
static void test_failed_opens_keep_descriptors(void)
{
    int before = open_descriptors();
    if (before < 0) {
        st_test_skip("file:failed_opens_keep_descriptors", "no /proc/self/fd to count descriptors");
        return;
    }
    char text[4096], cut[4096], missing[4096];
    st_test_tmpfile(text, sizeof text, "fd-text.txt");
    st_test_tmpfile(cut, sizeof cut, "fd-cut.wav");
    st_test_tmpfile(missing, sizeof missing, "no-such-folder/fd.wav");
    FILE *f = fopen(text, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs("plain text", f);
    fclose(f);
    float x[4000] = {0};
    CU_ASSERT_EQUAL_FATAL(st_audio_write_wav(cut, x, 4000, 16000, ST_WAV_PCM16), ST_OK);
    CU_ASSERT_EQUAL_FATAL(truncate(cut, 2000), 0);
    int sentinel = open(text, O_RDONLY);
    CU_ASSERT_FATAL(sentinel >= 0);
    before = open_descriptors();
    st_audio a;
    for (int i = 0; i < 3; i++) {
        CU_ASSERT_EQUAL(st_audio_read(text, &a), ST_ERR_FORMAT);
        CU_ASSERT_EQUAL(st_audio_read(cut, &a), ST_ERR_FORMAT);
        CU_ASSERT_EQUAL(st_audio_write_wav(missing, x, 10, 16000, ST_WAV_PCM16), ST_ERR_IO);
        if (access("/dev/full", W_OK) == 0)
            CU_ASSERT_EQUAL(st_audio_write_wav("/dev/full", x, 10, 16000, ST_WAV_PCM16), ST_ERR_IO);
    }
    CU_ASSERT_EQUAL(open_descriptors(), before);
    char c;
    CU_ASSERT_EQUAL(read(sentinel, &c, 1), 1); /* still ours */
    close(sentinel);
}

static void test_streaming_writer_and_reader(void)
{
    char path[4096];
    st_test_tmpfile(path, sizeof path, "stream.wav");
    enum { N = 3 * 48000 + 17 };
    float *x = malloc((size_t)2 * N * sizeof *x);
    quiet_noise(x, 2 * N, 6, 48000, 8000);
    CU_ASSERT_EQUAL_FATAL(write_with_sndfile(path, SF_FORMAT_WAV | SF_FORMAT_PCM_24, 48000, 2, x, N), 0);

    st_audio whole;
    CU_ASSERT_EQUAL_FATAL(st_audio_read(path, &whole), ST_OK);
    CU_ASSERT_EQUAL_FATAL(whole.frames, N);

    int err = -1;
    st_audio_reader *r = st_audio_reader_open(path, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    CU_ASSERT_EQUAL(err, ST_OK);
    CU_ASSERT_EQUAL(st_audio_reader_rate_hz(r), 48000);
    CU_ASSERT_EQUAL(st_audio_reader_frames(r), N);
    float *got = malloc(N * sizeof *got);
    static const size_t blocks[] = {1, 480, 10000, 7};
    size_t n = 0;
    for (int i = 0; n < N; i++) {
        size_t want = blocks[i % 4];
        if (want > N - n)
            want = N - n;
        long m = st_audio_reader_read(r, got + n, want);
        CU_ASSERT_EQUAL_FATAL(m, (long)want);
        n += (size_t)m;
    }
    float spare[8];
    CU_ASSERT_EQUAL(st_audio_reader_read(r, spare, 8), 0);
    CU_ASSERT_EQUAL(st_audio_reader_read(r, spare, 8), 0);
    CU_ASSERT_EQUAL(memcmp(got, whole.samples, N * sizeof *got), 0);
    st_audio_reader_close(&r);
    CU_ASSERT_PTR_NULL(r);

    /* the streaming writer: blocks in, one file out, same as the one-shot */
    char path2[4096];
    st_test_tmpfile(path2, sizeof path2, "stream-out.wav");
    st_audio_writer *w = st_audio_writer_open(path2, 48000, ST_WAV_FLOAT, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(w);
    for (size_t at = 0; at < N; at += 480) {
        size_t m = N - at < 480 ? N - at : 480;
        CU_ASSERT_EQUAL(st_audio_writer_write(w, got + at, m), ST_OK);
    }
    CU_ASSERT_EQUAL(st_audio_writer_close(&w), ST_OK);
    CU_ASSERT_PTR_NULL(w);
    st_audio back;
    CU_ASSERT_EQUAL_FATAL(st_audio_read(path2, &back), ST_OK);
    CU_ASSERT_EQUAL_FATAL(back.frames, N);
    CU_ASSERT_EQUAL(memcmp(back.samples, got, N * sizeof *got), 0);
    st_audio_free(&back);
    st_audio_free(&whole);
    free(got);
    free(x);
}

static void test_shared_jfk(void)
{
    const char *data = st_test_shared_data();
    if (!data) {
        st_test_skip("file:shared_jfk",
                     "../shared/data is absent (set ST_SHARED_DATA to run it on jfk.flac)");
        return;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/speech/clips/jfk.flac", data);
    st_audio a;
    CU_ASSERT_EQUAL_FATAL(st_audio_read(path, &a), ST_OK);
    CU_ASSERT_EQUAL(a.sample_rate_hz, 16000);
    CU_ASSERT_EQUAL(a.channels_in_file, 1);
    double seconds = (double)a.frames / a.sample_rate_hz;
    CU_ASSERT_TRUE(seconds > 10.5 && seconds < 11.5); /* "...ask what you can do for your country" */
    double e = 0, peak = 0;
    for (size_t i = 0; i < a.frames; i++) {
        e += (double)a.samples[i] * a.samples[i];
        peak = fmax(peak, fabs(a.samples[i]));
    }
    double rms = sqrt(e / (double)a.frames);
    CU_ASSERT_TRUE(rms > 0.01 && rms < 0.5);
    CU_ASSERT_TRUE(peak > 0.1 && peak <= 1.0);
    st_audio_free(&a);
}

CU_TestInfo st_tests_file[] = {
    {"round_trip_pcm16", test_round_trip_pcm16},
    {"round_trip_float", test_round_trip_float},
    {"empty_file", test_empty_file},
    {"stereo_mixes_down", test_stereo_mixes_down},
    {"many_channels_mix_down", test_many_channels_mix_down},
    {"flac_and_ogg", test_flac_and_ogg},
    {"missing_file", test_missing_file},
    {"not_audio", test_not_audio},
    {"truncated", test_truncated},
    {"bad_arguments", test_bad_arguments},
    {"write_to_missing_folder", test_write_to_missing_folder},
    {"writer_reports_full_disk", test_writer_reports_full_disk},
    {"failed_opens_keep_descriptors", test_failed_opens_keep_descriptors},
    {"streaming_writer_and_reader", test_streaming_writer_and_reader},
    {"shared_jfk", test_shared_jfk},
    CU_TEST_INFO_NULL,
};
