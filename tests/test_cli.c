/*  tests/test_cli.c - suite `cli`: the spiketalk tool as a user meets it:
    help for every command, clear errors on bad arguments and files, the
    bench JSON, the demo. Runs the built binary ($ST_CLI, default
    build/spiketalk) from the repository root. */
#include "testutil.h"

#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "audio/audio.h"

static void test_help_lists_every_command(void)
{
    char *out;
    CU_ASSERT_EQUAL(st_test_run_cli("--help", &out), 0);
    const char *cmds[] = {"demo", "devices", "loopback", "bench", "version"};
    for (size_t i = 0; i < sizeof cmds / sizeof *cmds; i++) {
        CU_ASSERT_PTR_NOT_NULL(strstr(out, cmds[i]));
        char args[64], *sub;
        snprintf(args, sizeof args, "%s --help", cmds[i]);
        CU_ASSERT_EQUAL(st_test_run_cli(args, &sub), 0);
        CU_ASSERT_PTR_NOT_NULL(strstr(sub, "usage: spiketalk"));
        free(sub);
    }
    free(out);
}

static void test_unknown_command_and_option(void)
{
    char *out;
    CU_ASSERT_EQUAL(st_test_run_cli("frobnicate", &out), 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "unknown command 'frobnicate'"));
    free(out);
    CU_ASSERT_EQUAL(st_test_run_cli("loopback --rate fast --input x.wav", &out), 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "--rate: 'fast' is not a whole number"));
    free(out);
    CU_ASSERT_EQUAL(st_test_run_cli("loopback --input x.wav --quality superb", &out), 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "superb"));
    free(out);
    CU_ASSERT_EQUAL(st_test_run_cli("bench nosuch", &out), 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "no benchmark 'nosuch'"));
    free(out);
}

static void test_loopback_missing_file(void)
{
    char *out;
    CU_ASSERT_EQUAL(st_test_run_cli("loopback --input /nonexistent/voice.flac", &out), 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "/nonexistent/voice.flac"));
    free(out);
}

static void test_devices_without_sound_card(void)
{
    char *out;
    CU_ASSERT_EQUAL(st_test_run_cli("devices", &out), 0); /* a list, or "no audio devices found" */
    CU_ASSERT_TRUE(strstr(out, "no audio devices") || strstr(out, "host API"));
    free(out);
}

static void test_loopback_virtual_report(void)
{
    char in[512], args[1200], *out;
    float x[8000];
    st_test_noise(x, 8000, 3, 16000, 3000);
    st_test_tmpfile(in, sizeof in, "cli-in.wav");
    CU_ASSERT_EQUAL_FATAL(st_audio_write_wav(in, x, 8000, 16000, ST_WAV_PCM16), ST_OK);
    snprintf(args, sizeof args, "loopback --input %s --json", in);
    CU_ASSERT_EQUAL(st_test_run_cli(args, &out), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"round_trip_frames\": "));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"sample_rate_hz\": 48000"));
    free(out);
}

static void test_bench_json(void)
{
    char *out;
    CU_ASSERT_EQUAL(st_test_run_cli("bench ring --frames 200000 --repeat 1 --json", &out), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "{\"bench\": \"ring\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"speedup\": "));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"machine\": {"));
    free(out);
}

static void test_demo_runs(void)
{
    char *out;
    CU_ASSERT_EQUAL(st_test_run_cli("demo", &out), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "round trip"));
    /* the script's interruption lands on the story and is committed (virtual
       time: the same every run), and nothing of the old answer plays on */
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "interruptions 1,"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "stale samples after a flush 0"));
    free(out);
}

/*  `spiketalk soak` on one scenario for a few virtual minutes: its JSON
    adds up (every answerable turn in exactly one column of the ledger,
    answers started = played + interrupted + open), the exit status is the
    verdict it wrote, and the drift limit is 10 % or one 10 ms block,
    whichever is larger (voice-to-voice ~700 ms: 10 %; a barge-in: a block),
    and a compared centre comes with its shift and p-value. */
static void test_soak_short(void)
{
    char json_path[512], args[1024], *out, *js;
    st_test_tmpfile(json_path, sizeof json_path, "soak.json");
    snprintf(args, sizeof args, "soak --minutes 3 --scenario scenarios/commands.ini --json %s",
             json_path);
    int rc = st_test_run_cli(args, &out);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "ledger"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "within 10 % or one 10 ms block"));
    free(out);
    FILE *f = fopen(json_path, "r");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    js = calloc(1, 1 << 20);
    CU_ASSERT_PTR_NOT_NULL_FATAL(js);
    size_t n = fread(js, 1, (1 << 20) - 1, f);
    fclose(f);
    CU_ASSERT(n > 100);
    bool passed = strstr(js, "\"passed\": true") != NULL;
    CU_ASSERT(passed || strstr(js, "\"passed\": false"));
    CU_ASSERT_EQUAL(rc, passed ? 0 : 1);
    double answerable = st_test_json_number(js, "answerable");
    double cols = 0;
    const char *col[] = {"answered", "dropped",  "merged",  "superseded",
                         "stopped",  "echo",     "resumed", "unaccounted"};
    for (size_t i = 0; i < sizeof col / sizeof col[0]; i++) {
        double v = st_test_json_number(js, col[i]);
        CU_ASSERT(v >= 0);
        cols += v;
    }
    CU_ASSERT(answerable > 0);
    CU_ASSERT_DOUBLE_EQUAL(cols, answerable, 0);
    CU_ASSERT_DOUBLE_EQUAL(st_test_json_number(js, "started"),
                           st_test_json_number(js, "done") + st_test_json_number(js, "interrupted") +
                               st_test_json_number(js, "open"),
                           0);
    const char *v2v = strstr(js, "\"voice_to_voice_ms\"");
    const char *barge = strstr(js, "\"barge_in_ms\"");
    CU_ASSERT_FATAL(v2v && barge);
    double p50 = st_test_json_number(v2v, "first_p50");
    CU_ASSERT(p50 > 100);
    CU_ASSERT_DOUBLE_EQUAL(st_test_json_number(v2v, "limit_p50"), 0.1 * p50, 0.01);
    CU_ASSERT_DOUBLE_EQUAL(st_test_json_number(barge, "limit_p50"), 10.0, 1e-9);
    /* the centre's verdict is its shift (in limits) and permutation p-value */
    const char *cmp = strstr(v2v, "\"compared_p50\": true");
    if (cmp && cmp < barge) {
        double shift = st_test_json_number(v2v, "shift_deciles");
        double pv = st_test_json_number(v2v, "p_value_deciles");
        CU_ASSERT(isfinite(shift) && pv > 0 && pv <= 1);
        bool v2v_ok = strstr(v2v, "\"ok\": true") && strstr(v2v, "\"ok\": true") < barge;
        if (fabs(shift) > 1 && pv < 0.01)
            CU_ASSERT_FALSE(v2v_ok);
    }
    free(js);
    remove(json_path);
}

CU_TestInfo st_tests_cli[] = {
    {"help_lists_every_command", test_help_lists_every_command},
    {"unknown_command_and_option", test_unknown_command_and_option},
    {"loopback_missing_file", test_loopback_missing_file},
    {"devices_without_sound_card", test_devices_without_sound_card},
    {"loopback_virtual_report", test_loopback_virtual_report},
    {"bench_json", test_bench_json},
    {"demo_runs", test_demo_runs},
    {"soak_short", test_soak_short},
    CU_TEST_INFO_NULL,
};
