/*  cli/bench_resample.c - `spiketalk bench resample`: the streaming resampler
    (st_resampler_process in 10 ms blocks, then flush) against libsamplerate's
    one-shot src_simple() on the same signal, in the same run: what the
    streaming wrapper costs over the library it wraps. Both do the same
    sinc conversion and must produce the same samples; the run checks it.

    The default signal is 8 s, not a minute: libsamplerate's best converter
    runs at about 0.03 of real time, so 60 s x 5 runs x 2 ways x 6 cases takes
    close to a minute, while 8 s keeps the whole bench under 10 s and each
    timed pass above 30 ms, long enough for a stable median. */
#include "cli.h"

#include "audio/audio.h"

#include <getopt.h>
#include <math.h>
#include <samplerate.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CMD "bench resample"

typedef struct {
    int in_rate_hz, out_rate_hz;
} conversion;

static const conversion conversions[] = {{48000, 16000}, {16000, 48000}};

static const struct {
    st_resample_quality quality;
    int src_type;
    const char *name;
} qualities[] = {
    {ST_RESAMPLE_FASTEST, SRC_SINC_FASTEST, "fastest"},
    {ST_RESAMPLE_MEDIUM, SRC_SINC_MEDIUM_QUALITY, "medium"},
    {ST_RESAMPLE_BEST, SRC_SINC_BEST_QUALITY, "best"},
};

/*  Deterministic noise low-passed to a quarter of the rate (xorshift through
    four one-pole filters): a signal with energy across the band, so the
    filters do real work, and the same every run. */
static void make_noise(float *x, size_t n)
{
    uint32_t s = 0x2545f491u;
    double a = exp(-2.0 * M_PI * 0.25), y1 = 0, y2 = 0, y3 = 0, y4 = 0;
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13;
        s ^= s >> 17;
        s ^= s << 5;
        double w = (double)s / 4294967296.0 * 2.0 - 1.0;
        y1 = (1 - a) * w + a * y1;
        y2 = (1 - a) * y1 + a * y2;
        y3 = (1 - a) * y2 + a * y3;
        y4 = (1 - a) * y3 + a * y4;
        x[i] = (float)(y4 * 1.5);
    }
}

/*  One streaming pass: reset, 10 ms blocks with the room max_output()
    promises, flush. Returns the seconds it took, or -1 on an error. */
static double run_wrapper(st_resampler *r, const float *in, size_t n, size_t block, float *out,
                          size_t cap, size_t *made_total)
{
    st_resampler_reset(r);
    size_t made_sum = 0;
    double t0 = st_now_s();
    for (size_t at = 0; at < n;) {
        size_t len = n - at < block ? n - at : block;
        size_t used, made;
        size_t room = st_resampler_max_output(r, len);
        if (made_sum + room > cap ||
            st_resampler_process(r, in + at, len, out + made_sum, room, &used, &made) != ST_OK ||
            used != len)
            return -1;
        at += used;
        made_sum += made;
    }
    for (;;) {
        size_t made;
        if (st_resampler_flush(r, out + made_sum, cap - made_sum, &made) != ST_OK)
            return -1;
        if (!made)
            break;
        made_sum += made;
    }
    double dt = st_now_s() - t0;
    *made_total = made_sum;
    return dt;
}

static double run_src_simple(int src_type, double ratio, const float *in, size_t n, float *out,
                             size_t cap, size_t *made_total)
{
    SRC_DATA d = {
        .data_in = in,
        .data_out = out,
        .input_frames = (long)n,
        .output_frames = (long)cap,
        .src_ratio = ratio,
    };
    double t0 = st_now_s();
    int e = src_simple(&d, src_type, 1);
    double dt = st_now_s() - t0;
    *made_total = (size_t)d.output_frames_gen;
    return e ? -1 : dt;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: spiketalk bench resample [--seconds S] [--repeat N] [--json]\n"
            "\n"
            "Converts S seconds (default 8) of band-limited noise 48000 -> 16000 Hz and\n"
            "16000 -> 48000 Hz at each quality (fastest, medium, best) two ways, in the same\n"
            "run on the same data: spiketalk's streaming resampler fed 10 ms blocks\n"
            "(st_resampler_process, then st_resampler_flush), and libsamplerate's one-shot\n"
            "src_simple() on the whole signal. Each is repeated N times (default 5), taking\n"
            "turns; the table shows medians. Both must make the same samples (checked).\n"
            "\n"
            "options:\n"
            "  --seconds S   length of the signal, 0.1 .. 3600 (default 8; the whole bench\n"
            "                takes about 0.9 x S seconds on one AMD EPYC core)\n"
            "  --repeat N    runs of each, 1 .. 100 (default 5); the median is reported\n"
            "  --json        one JSON object instead of the table\n"
            "  -h, --help    this help\n"
            "\n"
            "columns (and JSON fields):\n"
            "  conversion                    input rate -> output rate, Hz\n"
            "  quality                       fastest | medium | best (SRC_SINC_*)\n"
            "  rtf                           real-time factor of the streaming resampler:\n"
            "                                processing time / signal duration (lower is faster)\n"
            "  x_realtime                    1 / rtf: seconds of signal converted per second\n"
            "  ns_per_out_sample             streaming resampler, ns per output sample\n"
            "  src_simple_ns_per_out_sample  the peer, ns per output sample\n"
            "  vs_src_simple                 streaming time / src_simple time (1 = no overhead)\n"
            "  latency_ms                    the delay the streaming resampler adds to a live\n"
            "                                stream (st_resampler_latency_s); src_simple, given\n"
            "                                the whole signal at once, has no such notion\n");
}

int st_bench_resample(int argc, char **argv)
{
    static const struct option opts[] = {{"seconds", required_argument, 0, 's'},
                                         {"repeat", required_argument, 0, 'n'},
                                         {"json", no_argument, 0, 'J'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    double seconds = 8;
    long repeat = 5;
    bool json = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 's':
            if (!cli_parse_double(CMD, "--seconds", optarg, 0.1, 3600, &seconds))
                return 2;
            break;
        case 'n':
            if (!cli_parse_int(CMD, "--repeat", optarg, 1, 100, &repeat))
                return 2;
            break;
        case 'J': json = true; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc)
        return cli_fail(CMD, "unexpected argument '%s' (see --help)", argv[optind]) + 1;

    report rep;
    report_init(&rep, "resample",
                "streaming resampler (10 ms blocks) vs libsamplerate src_simple (one shot)", argc,
                argv);
    report_col_text(&rep, "conversion");
    report_col_text(&rep, "quality");
    report_col_num(&rep, "rtf", "");
    report_col_num(&rep, "x_realtime", "x");
    report_col_num(&rep, "ns_per_out_sample", "ns");
    report_col_num(&rep, "src_simple_ns_per_out_sample", "ns");
    report_col_num(&rep, "vs_src_simple", "x");
    report_col_num(&rep, "latency_ms", "ms");

    int status = 0;
    bool same = true;
    for (size_t ci = 0; ci < sizeof conversions / sizeof conversions[0]; ci++) {
        const conversion *cv = &conversions[ci];
        double ratio = (double)cv->out_rate_hz / cv->in_rate_hz;
        size_t n = (size_t)llround(seconds * cv->in_rate_hz);
        size_t block = (size_t)cv->in_rate_hz / 100;
        size_t cap = (size_t)ceil(n * ratio) + 2 * (size_t)ceil(block * ratio) + 64;
        float *in = malloc(n * sizeof *in);
        float *out = malloc(cap * sizeof *out), *peer = malloc(cap * sizeof *peer);
        if (!in || !out || !peer) {
            free(in);
            free(out);
            free(peer);
            return cli_fail(CMD, "out of memory for %.0f s of audio", seconds);
        }
        make_noise(in, n);
        for (size_t qi = 0; qi < sizeof qualities / sizeof qualities[0]; qi++) {
            int err;
            st_resampler *r = st_resampler_new(cv->in_rate_hz, cv->out_rate_hz,
                                               qualities[qi].quality, &err);
            if (!r) {
                status = cli_fail_lib(CMD, err, "creating the resampler");
                break;
            }
            double t_wrap[100], t_peer[100];
            size_t made_wrap = 0, made_peer = 0;
            for (long k = 0; k < repeat; k++) {
                t_wrap[k] = run_wrapper(r, in, n, block, out, cap, &made_wrap);
                t_peer[k] = run_src_simple(qualities[qi].src_type, ratio, in, n, peer, cap,
                                           &made_peer);
                if (t_wrap[k] < 0 || t_peer[k] < 0) {
                    status = cli_fail(CMD, "%d -> %d Hz %s: conversion failed", cv->in_rate_hz,
                                      cv->out_rate_hz, qualities[qi].name);
                    break;
                }
            }
            if (status) {
                st_resampler_destroy(&r);
                break;
            }
            if (made_wrap != made_peer || memcmp(out, peer, made_wrap * sizeof *out))
                same = false;
            double tw = cli_median(t_wrap, (int)repeat), tp = cli_median(t_peer, (int)repeat);
            char name[32];
            snprintf(name, sizeof name, "%d->%d", cv->in_rate_hz, cv->out_rate_hz);
            int row = report_row(&rep);
            report_set_text(&rep, row, "conversion", name);
            report_set_text(&rep, row, "quality", qualities[qi].name);
            report_set_num(&rep, row, "rtf", tw / seconds);
            report_set_num(&rep, row, "x_realtime", seconds / tw);
            report_set_num(&rep, row, "ns_per_out_sample", 1e9 * tw / (double)made_wrap);
            report_set_num(&rep, row, "src_simple_ns_per_out_sample", 1e9 * tp / (double)made_peer);
            report_set_num(&rep, row, "vs_src_simple", tw / tp);
            report_set_num(&rep, row, "latency_ms", 1e3 * st_resampler_latency_s(r));
            st_resampler_destroy(&r);
        }
        free(in);
        free(out);
        free(peer);
        if (status)
            return status;
    }
    report_note(&rep, "median of %ld runs of %.3g s of noise each, taking turns; rtf = processing "
                      "time / signal time",
                repeat, seconds);
    report_note(&rep, "streaming and src_simple outputs %s",
                same ? "identical, sample for sample" : "DIFFER");
    report_print(&rep, json, stdout);
    return same ? 0 : 1;
}
