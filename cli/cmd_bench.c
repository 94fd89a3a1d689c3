/*  cli/cmd_bench.c - `spiketalk bench NAME`: the benchmark table and `all`.

    Every benchmark measures spiketalk against a named peer in the same run,
    repeats, reports medians and the ratio, and prints one readable table, or
    with --json one JSON object a line (names documented in docs/BENCH.md).
*/
#include "cli.h"

#include <string.h>

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} bench;

static const bench benches[] = {
    {"ring", st_bench_ring, "SPSC ring, two threads at full speed, vs a mutex+condvar queue"},
    {"resample", st_bench_resample, "streaming resampler vs libsamplerate's one-shot src_simple"},
    {"vad", st_bench_vad, "spiking VAD on speech+noise mixtures: onset/offset latency, false onsets/min, vs energy and WebRTC VADs"},
    {"lm", st_bench_lm, "language model: tokens/s and first-token time vs PyTorch"},
    {"snn", st_bench_snn, "SNN engine: CUBA network vs Brian2, streaming SNN step vs PyTorch"},
    {"tts", st_bench_tts, "synthesizer: first audio, real-time factor, cancel, intelligibility vs the engines' own CLIs"},
    {"pipeline", st_bench_pipeline, "pipeline runtime: per-hop latency and throughput (inproc, ipc, tcp), five pass-through stages, vs bare libzmq"},
    {"asr", st_bench_asr, "recognizer: SC12 accuracy and CPU time vs pocketsphinx (en-us, a grammar of the same words)"},
    {"train", st_bench_train, "one BPTT training step of a recurrent LIF network vs PyTorch"},
    {"echo", st_bench_echo, "echo canceller in simulated rooms: ERLE, double talk, cost per frame, vs speex's filter alone"},
    {"latency", st_bench_latency, "the agent on the standard scenario set in virtual time: voice-to-voice, end of turn, barge-in, quality rates; --baseline"},
};
#define N_BENCHES (sizeof benches / sizeof benches[0])

static void usage(FILE *out)
{
    fprintf(out, "usage: spiketalk bench NAME [options] [--json]\n"
                 "       spiketalk bench all [--json]\n\n"
                 "benchmarks:\n");
    for (size_t i = 0; i < N_BENCHES; i++)
        fprintf(out, "  %-10s %s\n", benches[i].name, benches[i].summary);
    fprintf(out, "\nEach prints a table of medians over repeated runs, with the peer measured in\n"
                 "the same run and the ratio; --json prints one JSON object per benchmark instead\n"
                 "(field names in docs/BENCH.md). `spiketalk bench NAME --help` lists its options.\n"
                 "The figures depend on the machine: compare ratios, and runs on the same machine.\n");
}

int st_cmd_bench(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "all")) {
        int worst = 0;
        for (size_t i = 0; i < N_BENCHES; i++) {
            char *sub[3] = {(char *)benches[i].name, NULL, NULL};
            int n = 1;
            for (int a = 2; a < argc; a++)
                if (!strcmp(argv[a], "--json"))
                    sub[n++] = "--json";
            int rc = benches[i].run(n, sub);
            if (rc > worst)
                worst = rc;
        }
        return worst;
    }
    for (size_t i = 0; i < N_BENCHES; i++)
        if (!strcmp(argv[1], benches[i].name))
            return benches[i].run(argc - 1, argv + 1);
    cli_fail("bench", "no benchmark '%s'; the benchmarks are:", argv[1]);
    for (size_t i = 0; i < N_BENCHES; i++)
        fprintf(stderr, "  %s\n", benches[i].name);
    return 2;
}
