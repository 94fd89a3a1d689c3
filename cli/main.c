/*  cli/main.c - `spiketalk`: the command table and dispatch.

    Global options come before the command: -v (more log), -q (less),
    --help, --version. Everything else belongs to the command.
*/
#include "cli.h"

#include <stdio.h>
#include <string.h>

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command;

static const command commands[] = {
    {"demo", st_cmd_demo, "run the voice-agent demo on its embedded default (no sound card needed)"},
    {"live", st_cmd_live, "the voice agent on the real microphone and speaker, with a live view"},
    {"devices", st_cmd_devices, "list audio devices (says so, and exits 0, when there are none)"},
    {"loopback", st_cmd_loopback, "microphone -> 16 kHz -> speaker; report the measured round-trip delay"},
    {"bench", st_cmd_bench, "benchmarks: a table, or --json for machines (`bench --help`)"},
    {"version", st_cmd_version, "print the version and the libraries it was built with"},
    {"features", st_cmd_features, "log-mel frames of an audio file, or the spike events an encoder makes of them"},
    {"vad", st_cmd_vad, "speech onsets and offsets in an audio file (spiking voice-activity detector)"},
    {"snn", st_cmd_snn, "spiking network engine: trace a neuron model, run or profile a network"},
    {"lm", st_cmd_lm, "SpikeGPT-style spiking language model: golden check, generate, bench"},
    {"say", st_cmd_say, "speak text to a WAV file (espeak-ng or flite), with word times"},
    {"run", st_cmd_run, "run a pipeline of stages (the built-in one, or --config FILE), supervised"},
    {"stage", st_cmd_stage, "run one stage of a pipeline as its own process; --list the stage types"},
    {"replay", st_cmd_replay, "list the messages of a recorded run (pipeline.record = FILE)"},
    {"keygen", st_cmd_keygen, "make a CurveZMQ key pair for a stage (FILE and FILE.pub)"},
    {"soak", st_cmd_soak, "an hour of conversation in virtual time: memory growth, lost turns, latency drift"},
    {"train", st_cmd_train, "train a spiking network (surrogate-gradient BPTT) from a config file"},
    {"eval", st_cmd_eval, "recognizer accuracy on a manifest: `eval sc12|words --manifest M`"},
    {"listen", st_cmd_listen, "words of an audio file with their times, as the recognizer decides them"},
    {"reply", st_cmd_reply, "the agent's answer to one line of user text (the dialogue LM, tools executed)"},
};
#define N_COMMANDS (sizeof commands / sizeof commands[0])

static void usage(FILE *out)
{
    fprintf(out,
            "spiketalk - a low-latency, full-duplex voice pipeline on spiking neural networks\n"
            "\n"
            "usage: spiketalk [-v|-q] COMMAND [OPTIONS]\n"
            "\n"
            "commands:\n");
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(out,
            "\n"
            "global options:\n"
            "  -v, --verbose  more log on stderr (repeat for debug)\n"
            "  -q, --quiet    errors only\n"
            "  -h, --help     this help; `spiketalk COMMAND --help` for a command's\n"
            "  --version      the version\n"
            "\n"
            "examples:\n"
            "  spiketalk demo\n"
            "  spiketalk loopback --input speech.flac --output echo.wav\n"
            "  spiketalk bench all --json > bench.json\n");
}

int main(int argc, char **argv)
{
    int verbosity = 1;
    int a = 1;
    for (; a < argc && argv[a][0] == '-'; a++) {
        if (!strcmp(argv[a], "-v") || !strcmp(argv[a], "--verbose"))
            verbosity++;
        else if (!strcmp(argv[a], "-vv"))
            verbosity += 2;
        else if (!strcmp(argv[a], "-q") || !strcmp(argv[a], "--quiet"))
            verbosity = 0;
        else if (!strcmp(argv[a], "-h") || !strcmp(argv[a], "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[a], "--version"))
            return st_cmd_version(1, (char *[]){"version", NULL});
        else {
            fprintf(stderr, "spiketalk: unknown option '%s' (see spiketalk --help)\n", argv[a]);
            return 2;
        }
    }
    if (a == argc) {
        usage(stderr);
        return 2;
    }
    cli_log_init(verbosity);
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (!strcmp(argv[a], commands[i].name))
            return commands[i].run(argc - a, argv + a);
    fprintf(stderr, "spiketalk: unknown command '%s'; the commands are:", argv[a]);
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(stderr, " %s", commands[i].name);
    fprintf(stderr, " (see spiketalk --help)\n");
    return 2;
}
