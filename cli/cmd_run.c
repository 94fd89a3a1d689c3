/*  cli/cmd_run.c - `spiketalk run [--config FILE]`: runs any pipeline, the
    built-in one by default. Starts the stages, supervises them (restarts a
    stage process that dies), says what happened on stderr, and prints what
    every stage did when the run ends.

    Ctrl-C once: the sources end their streams and the pipeline drains;
    twice: it stops at once.
*/
#include "cli.h"

#include "pipeline/pipeline.h"

#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

static volatile int interrupts;
static bool started; /* st_pipe_start() returned: its errors were said already */

static void on_sigint(int sig)
{
    (void)sig;
    interrupts++;
}

static void on_event(const st_pipe_event *e, void *user_data)
{
    (void)user_data;
    switch (e->kind) {
    case ST_PIPE_EV_READY:
    case ST_PIPE_EV_ENDED: st_log(ST_LOG_INFO, "%s", e->message); break;
    case ST_PIPE_EV_FAILED:
        if (started)
            fprintf(stderr, "spiketalk run: %s\n", e->message);
        break;
    default: fprintf(stderr, "spiketalk run: %s\n", e->message); break;
    }
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: spiketalk run [--config FILE] [--set SECTION.KEY=VALUE]... [--input FILE]\n"
            "                     [--output FILE] [--seconds N] [--timeout N] [--print-config]\n"
            "\n"
            "Runs a pipeline of stages joined by ZeroMQ: the one in FILE, or without --config\n"
            "the built-in one (microphone -> 16 kHz -> pass-through -> speaker). Each stage runs\n"
            "as a thread of this process, or as a process of its own (`process = yes`, or\n"
            "`processes = yes` in [pipeline]) that this command supervises: a stage that dies\n"
            "is restarted, and this says so. The run ends when every stage has finished its\n"
            "stream (a file source at its end), after --seconds, or on Ctrl-C (once: the\n"
            "sources stop and the pipeline drains; twice: at once).\n"
            "\n"
            "A configuration is an INI file: a [pipeline] section, then one [stage.NAME]\n"
            "section per stage with its `type`, its parameters and `out = NEXT, ...`:\n"
            "\n"
            "    [pipeline]\n"
            "    transport = inproc          ; inproc, ipc or tcp (per edge: out = b@tcp)\n"
            "    [stage.mic]\n"
            "    type = audio_source\n"
            "    device = virtual\n"
            "    input = speech.wav\n"
            "    out = to16k\n"
            "    [stage.to16k]\n"
            "    type = resampler\n"
            "    rate = 16000\n"
            "    out = out\n"
            "    [stage.out]\n"
            "    type = audio_sink\n"
            "    device = file\n"
            "    output = heard.wav\n"
            "\n"
            "`spiketalk stage --list` lists the stage types and their parameters;\n"
            "docs/PROTOCOL.md has every [pipeline] key and the wire protocol.\n"
            "\n"
            "options:\n"
            "  --config FILE     the pipeline (default: the built-in one; --print-config shows it)\n"
            "  --set S.K=V       override a key: pipeline.hwm=16, mic.device=virtual (repeatable)\n"
            "  --input FILE      the built-in pipeline's microphone reads FILE (virtual device)\n"
            "  --output FILE     the built-in pipeline's speaker writes FILE (a WAV file)\n"
            "  --seconds N       stop the sources after N seconds, then drain\n"
            "  --timeout N       give up after N seconds (default: none)\n"
            "  --print-config    print the configuration that would run, and exit\n"
            "  --insecure        plain tcp between stages (insecure = yes; warns): without it\n"
            "                    tcp needs keys (key = FILE; docs/SECURITY.md)\n"
            "\n"
            "examples:\n"
            "  spiketalk run                                   # live: microphone to speaker\n"
            "  spiketalk run --input speech.wav --output out.wav\n"
            "  spiketalk run --config talk.ini --set pipeline.record=run.rec\n"
            "  spiketalk replay run.rec                        # what went through\n");
}

static void summary(st_pipe *p)
{
    const st_pipe_config *c = st_pipe_get_config(p);
    fprintf(stderr, "\n%-12s %-13s %9s %9s %7s %7s %9s %8s\n", "stage", "type", "received", "sent",
            "shed", "stale", "malformed", "restarts");
    for (size_t i = 0; i < st_pipe_config_stage_count(c); i++) {
        const char *name = st_pipe_config_stage_name(c, i);
        st_stage_stats s;
        memset(&s, 0, sizeof s);
        st_pipe_stage_stats(p, name, &s);
        fprintf(stderr, "%-12s %-13s %9llu %9llu %7llu %7llu %9llu %8d\n", name,
                st_pipe_config_stage_type(c, i), (unsigned long long)s.received,
                (unsigned long long)s.sent, (unsigned long long)s.shed,
                (unsigned long long)s.stale, (unsigned long long)s.malformed,
                st_pipe_stage_restarts(p, name));
    }
}

int st_cmd_run(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, 0, 'c'},
                                         {"set", required_argument, 0, 's'},
                                         {"input", required_argument, 0, 'i'},
                                         {"output", required_argument, 0, 'o'},
                                         {"seconds", required_argument, 0, 'S'},
                                         {"timeout", required_argument, 0, 'T'},
                                         {"print-config", no_argument, 0, 'P'},
                                         {"insecure", no_argument, 0, 'I'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *config = NULL, *input = NULL, *output = NULL;
    char sets[64][400];
    int n_sets = 0;
    double seconds = 0, timeout = 0;
    bool print = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "c:s:i:o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c': config = optarg; break;
        case 'I': /* plain tcp, as `insecure = yes` (warned; docs/SECURITY.md) */
            if (n_sets == 60)
                return cli_fail("run", "--set: at most 60");
            snprintf(sets[n_sets++], sizeof sets[0], "pipeline.insecure=yes");
            break;
        case 's':
            if (n_sets == 60)
                return cli_fail("run", "--set: at most 60");
            snprintf(sets[n_sets++], sizeof sets[0], "%s", optarg);
            break;
        case 'i': input = optarg; break;
        case 'o': output = optarg; break;
        case 'S':
            if (!cli_parse_double("run", "--seconds", optarg, 0.001, 1e7, &seconds))
                return 2;
            break;
        case 'T':
            if (!cli_parse_double("run", "--timeout", optarg, 0.001, 1e7, &timeout))
                return 2;
            break;
        case 'P': print = true; break;
        case 'h': usage(stdout); return 0;
        default: return 2;
        }
    }
    if (optind != argc) {
        cli_fail("run", "unexpected argument '%s' (see spiketalk run --help)", argv[optind]);
        return 2;
    }
    if ((input || output) && config) {
        cli_fail("run", "--input and --output are for the built-in pipeline; with --config "
                 "use --set STAGE.input=FILE");
        return 2;
    }
    if (input) {
        snprintf(sets[n_sets++], sizeof sets[0], "mic.device=virtual");
        snprintf(sets[n_sets++], sizeof sets[0], "mic.input=%s", input);
    }
    if (output) {
        snprintf(sets[n_sets++], sizeof sets[0], "speaker.device=file");
        snprintf(sets[n_sets++], sizeof sets[0], "speaker.output=%s", output);
    }
    int rc;
    st_pipe_config *cfg = config ? st_pipe_config_load(config, &rc)
                                 : st_pipe_config_parse(st_pipe_config_default_text(),
                                                        "<built-in>", &rc);
    if (!cfg)
        return cli_fail_lib("run", rc, "configuration");
    for (int i = 0; i < n_sets; i++)
        if ((rc = st_pipe_config_set(cfg, sets[i]))) {
            st_pipe_config_destroy(&cfg);
            return cli_fail_lib("run", rc, "--set");
        }
    if (print) {
        if (!config && !n_sets)
            fputs(st_pipe_config_default_text(), stdout);
        else
            st_pipe_config_write(cfg, stdout);
        st_pipe_config_destroy(&cfg);
        return 0;
    }
    st_pipe_params pp = st_pipe_default_params();
    pp.on_event = on_event;
    st_pipe *p = st_pipe_new(cfg, &pp, &rc);
    st_pipe_config_destroy(&cfg);
    if (!p)
        return cli_fail_lib("run", rc, "pipeline");
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    int status = 0;
    if ((rc = st_pipe_start(p))) {
        cli_fail_lib("run", rc, "start");
        st_pipe_destroy(&p);
        return 1;
    } else {
        started = true;
        double t0 = st_now_s(), drain_deadline = 0;
        bool stop_sent = false;
        for (;;) {
            double now = st_now_s();
            if ((interrupts == 1 || (seconds > 0 && now - t0 > seconds)) && !stop_sent) {
                fprintf(stderr, "spiketalk run: stopping the sources; the pipeline drains "
                        "(Ctrl-C again to stop at once)\n");
                st_pipe_control(p, ST_CTL_STOP, 0);
                stop_sent = true;
                drain_deadline = now + 5;
            }
            if (interrupts >= 2)
                break;
            if (stop_sent && now > drain_deadline) {
                fprintf(stderr, "spiketalk run: the pipeline did not drain within 5 s\n");
                status = 1;
                break;
            }
            if (timeout > 0 && now - t0 > timeout) {
                cli_fail("run", "not finished after %.1f s (--timeout)", timeout);
                status = 1;
                break;
            }
            if (st_pipe_poll(p, 0.1) == ST_ERR_END)
                break;
        }
    }
    summary(p);
    st_pipe_destroy(&p);
    return status;
}
