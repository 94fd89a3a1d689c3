/*  cli/bench_echo.c - `spiketalk bench echo`: the echo canceller (audio/echo.c)
    on the agent's synthesized voice played through simulated rooms, with a
    user talking over it for two seconds: echo return loss enhancement after
    convergence, how well the user's speech survives, and the cost per
    10 ms frame. The peer, in the same run, is speex's linear adaptive filter
    alone (no residual suppression): what the preprocessor's non-linear
    stage adds, and what it costs.

    Workload: 16 kHz, 10 ms frames, a 200 ms filter, ~20 s of speech per room.
    May touch: the synthesizer engines (once, before timing) and stdout.
*/
#include "cli.h"

#include "audio/audio.h"
#include "tts/tts.h"

#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define CMD "bench echo"
#define RATE ST_PIPELINE_RATE_HZ
#define FRAME 160
#define DEVICE_DELAY 480 /* 30 ms of device buffering, given to the canceller */
#define CONVERGE_S 3.0
#define NOISE_RMS 3e-4

static const char *AGENT_TEXT =
    "Once upon a time there was a little robot who counted the stars every night. "
    "One, two, three, four, five. It never stopped, and it never got tired. "
    "Then one evening the clouds came, and the robot had nothing to count, "
    "so it told a joke to the moon instead.";
static const char *USER_TEXT = "stop, what time is it";

static const struct {
    double delay_ms, rt60_ms;
} rooms[] = {{5, 150}, {20, 250}, {40, 400}};

static float *synth(const char *engine, const char *voice, const char *text, size_t *n)
{
    st_tts_params p = st_tts_default_params();
    p.engine = engine;
    p.voice = voice;
    p.sample_rate_hz = RATE;
    int err;
    st_tts *t = st_tts_new(&p, &err);
    if (!t) {
        cli_fail_lib(CMD, err, "starting the synthesizer");
        return NULL;
    }
    st_tts_result r;
    float *out = NULL;
    if ((err = st_tts_synthesize(t, text, &r)) == ST_OK) {
        out = r.samples;
        *n = r.frames;
        r.samples = NULL;
        st_tts_result_free(&r);
    } else {
        cli_fail_lib(CMD, err, "synthesizing");
    }
    st_tts_destroy(&t);
    return out;
}

typedef struct {
    double erle_db, user_corr, seconds;
} outcome;

/*  One pass of the canceller over the scene; times st_echo_process only. */
static int run_once(const st_echo_params *ep, const float *agent, const float *mic,
                    const float *echo_only, const float *user, size_t n_user, size_t user_at,
                    size_t n, float *out, outcome *o)
{
    int err;
    st_echo *ec = st_echo_new(ep, &err);
    if (!ec)
        return cli_fail_lib(CMD, err, "creating the echo canceller");
    double t0 = st_now_s();
    for (size_t f = 0; f + FRAME <= n; f += FRAME)
        st_echo_process(ec, mic + f, agent + f, out + f);
    o->seconds = st_now_s() - t0;
    st_echo_destroy(&ec);
    double em = 0, eo = 0;
    for (size_t f = (size_t)(CONVERGE_S * RATE); f + FRAME <= n; f += FRAME) {
        if (f + FRAME > user_at && f < user_at + n_user + RATE / 2)
            continue;
        double fe = 0, fo = 0;
        for (size_t i = f; i < f + FRAME; i++) {
            fe += (double)echo_only[i] * echo_only[i];
            fo += (double)out[i] * out[i];
        }
        if (fe / FRAME < 100 * NOISE_RMS * NOISE_RMS)
            continue;
        em += fe;
        eo += fo;
    }
    o->erle_db = eo > 0 ? 10 * log10(em / eo) : 99;
    o->user_corr = 0;
    for (int lag = -320; lag <= 320; lag++) {
        double so = 0, oo = 0, uu = 0;
        for (size_t i = 0; i < n_user; i++) {
            long j = (long)(user_at + i) + lag;
            if (j < 0 || (size_t)j >= n)
                continue;
            so += (double)out[j] * user[i];
            oo += (double)out[j] * out[j];
            uu += (double)user[i] * user[i];
        }
        double c = so / sqrt(oo * uu + 1e-30);
        if (c > o->user_corr)
            o->user_corr = c;
    }
    return 0;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: spiketalk bench echo [--repeat N] [--filter-ms MS] [--json]\n"
            "\n"
            "The agent's voice (espeak-ng en-us, a story read twice, ~20 s) is played through\n"
            "three simulated rooms (direct path 5/20/40 ms, RT60 150/250/400 ms; st_room) after a\n"
            "30 ms device delay that the canceller is told, with white noise at -70 dBFS; from\n"
            "5 s a user (flite kal16, \"stop, what time is it\") talks over it at the same level.\n"
            "Each room runs through spiketalk's canceller (speexdsp's adaptive filter plus its\n"
            "residual echo suppressor) and through the peer, the adaptive filter alone, N times\n"
            "each (default 5); the cost is the median.\n"
            "\n"
            "options:\n"
            "  --repeat N      runs of each, 1 .. 100 (default 5)\n"
            "  --filter-ms MS  the adaptive filter's length, 10 .. 1000 (default 200)\n"
            "  --json          one JSON object instead of the table\n"
            "  -h, --help      this help\n"
            "\n"
            "columns (and JSON fields):\n"
            "  room            direct-path delay / RT60, ms\n"
            "  canceller       \"filter+residual\" (spiketalk's default) or \"filter\" (the peer)\n"
            "  erle_db         echo return loss enhancement after 3 s of convergence, over\n"
            "                  the frames with echo and no user: 10 log10(echo in / echo out)\n"
            "  user_corr       normalized correlation of the output with the clean user\n"
            "                  speech over the user's turn (1 = untouched; the raw mic ~0.37)\n"
            "  us_per_frame    processing time of one 10 ms frame, microseconds (median run)\n"
            "  rtf             processing time / signal time\n");
}

int st_bench_echo(int argc, char **argv)
{
    static const struct option opts[] = {{"repeat", required_argument, 0, 'n'},
                                         {"filter-ms", required_argument, 0, 'f'},
                                         {"json", no_argument, 0, 'J'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    long repeat = 5;
    double filter_ms = 200;
    bool json = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'n':
            if (!cli_parse_int(CMD, "--repeat", optarg, 1, 100, &repeat))
                return 2;
            break;
        case 'f':
            if (!cli_parse_double(CMD, "--filter-ms", optarg, 10, 1000, &filter_ms))
                return 2;
            break;
        case 'J': json = true; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc)
        return cli_fail(CMD, "unexpected argument '%s' (see --help)", argv[optind]) + 1;

    size_t n1 = 0, nu = 0;
    float *once = synth("espeak", "en-us", AGENT_TEXT, &n1);
    float *user = once ? synth("flite", "kal16", USER_TEXT, &nu) : NULL;
    if (!once || !user) {
        free(once);
        return 1;
    }
    size_t n = (2 * n1 / FRAME) * FRAME;
    size_t user_at = 5 * RATE;
    float *agent = calloc(n, sizeof *agent), *delayed = calloc(n, sizeof *delayed);
    float *mic = calloc(n, sizeof *mic), *echo_only = calloc(n, sizeof *echo_only);
    float *out = calloc(n, sizeof *out);
    int status = 0;
    if (!agent || !delayed || !mic || !echo_only || !out) {
        status = cli_fail(CMD, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < n; i++)
        agent[i] = once[i % n1];
    for (size_t i = DEVICE_DELAY; i < n; i++)
        delayed[i] = agent[i - DEVICE_DELAY];

    report rep;
    report_init(&rep, "echo", "echo canceller (speexdsp filter + residual suppression) vs the filter alone",
                argc, argv);
    report_col_text(&rep, "room");
    report_col_text(&rep, "canceller");
    report_col_num(&rep, "erle_db", "dB");
    report_col_num(&rep, "user_corr", "");
    report_col_num(&rep, "us_per_frame", "us");
    report_col_num(&rep, "rtf", "");
    for (size_t k = 0; k < sizeof rooms / sizeof rooms[0] && !status; k++) {
        st_room_params rp = st_room_default_params();
        rp.delay_ms = rooms[k].delay_ms;
        rp.rt60_ms = rooms[k].rt60_ms;
        rp.seed = (uint32_t)(7 + k);
        int err;
        st_room *room = st_room_new(&rp, &err);
        if (!room) {
            status = cli_fail_lib(CMD, err, "building the room");
            break;
        }
        memset(echo_only, 0, n * sizeof *echo_only);
        st_room_process(room, delayed, echo_only, n);
        st_room_destroy(&room);
        uint32_t s = 12345;
        for (size_t i = 0; i < n; i++) {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            echo_only[i] += (float)(NOISE_RMS * sqrt(3.0) * ((double)s / 4294967296.0 * 2 - 1));
            mic[i] = echo_only[i];
        }
        for (size_t i = 0; i < nu && user_at + i < n; i++)
            mic[user_at + i] += user[i];
        for (int residual = 1; residual >= 0 && !status; residual--) {
            st_echo_params ep = st_echo_default_params();
            ep.filter_ms = filter_ms;
            ep.delay_samples = DEVICE_DELAY;
            ep.suppress_residual = residual;
            double secs[100];
            outcome o = {0};
            for (long r = 0; r < repeat && !status; r++) {
                status = run_once(&ep, agent, mic, echo_only, user, nu, user_at, n, out, &o);
                secs[r] = o.seconds;
            }
            if (status)
                break;
            double t = cli_median(secs, (int)repeat);
            char name[32];
            snprintf(name, sizeof name, "%g/%g", rp.delay_ms, rp.rt60_ms);
            int row = report_row(&rep);
            report_set_text(&rep, row, "room", name);
            report_set_text(&rep, row, "canceller", residual ? "filter+residual" : "filter");
            report_set_num(&rep, row, "erle_db", o.erle_db);
            report_set_num(&rep, row, "user_corr", o.user_corr);
            report_set_num(&rep, row, "us_per_frame", 1e6 * t / (double)(n / FRAME));
            report_set_num(&rep, row, "rtf", t / ((double)n / RATE));
        }
    }
    if (!status) {
        report_note(&rep, "%.1f s of speech a room, 10 ms frames, %g ms filter, 30 ms device delay "
                          "given; median of %ld runs",
                    (double)n / RATE, filter_ms, repeat);
        report_print(&rep, json, stdout);
    }
done:
    free(once);
    free(user);
    free(agent);
    free(delayed);
    free(mic);
    free(echo_only);
    free(out);
    return status;
}
