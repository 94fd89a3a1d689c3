/*  cli/cmd_stage.c - `spiketalk stage NAME --config FILE`: one stage of a
    pipeline as a process of its own, on this machine or another. The
    supervisor (`spiketalk run`) starts these for stages with process = yes;
    a person starts them by hand for stages with launch = no.

    Also lists the stage types (--list) and prints a stage's endpoints
    (--endpoints), which is what a stage written in another language needs.
*/
#include "cli.h"

#include "pipeline/pipeline.h"

#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

static volatile int stop_flag;

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static void list_types(void)
{
    printf("stage types (`type =` in a [stage.NAME] section):\n\n");
    const st_stage_type *t;
    for (size_t i = 0; (t = st_stage_type_at(i)); i++) {
        printf("%s\n    %s\n", t->name, t->summary ? t->summary : "");
        if (t->params_help) {
            const char *p = t->params_help;
            while (*p) {
                const char *e = strchr(p, '\n');
                size_t n = e ? (size_t)(e - p) : strlen(p);
                printf("      %.*s\n", (int)n, p);
                p += n + (e ? 1 : 0);
            }
        }
    }
    printf("external\n    a stage someone else starts (another program, another language):\n"
           "    the configuration gives it an id and endpoints (spiketalk stage NAME --endpoints)\n"
           "\nEvery stage also takes the runtime's keys: out, transport, process, launch, host,\n"
           "port, listen, hwm, shed, tick_ms, send_timeout_ms, stream, key, accept\n"
           "(docs/PROTOCOL.md).\n");
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: spiketalk stage NAME --config FILE [--set SECTION.KEY=VALUE]... [--endpoints]\n"
            "       spiketalk stage --list\n"
            "\n"
            "Runs the stage NAME of the pipeline in FILE as a process of its own: it binds its\n"
            "input, connects to its outputs, to the supervisor's control bus and report socket,\n"
            "says READY once it hears the bus, and runs until the supervisor says SHUTDOWN (or\n"
            "SIGTERM / SIGINT, or the bus falls silent for pipeline.orphan_s seconds).\n"
            "\n"
            "`spiketalk run` starts these itself for stages with `process = yes` (or every stage,\n"
            "with `processes = yes` in [pipeline]). Start one by hand, here or on another machine,\n"
            "for a stage with `launch = no`: the same FILE gives every process the same endpoints.\n"
            "\n"
            "options:\n"
            "  --config FILE     the pipeline's configuration (INI; see docs/PROTOCOL.md)\n"
            "  --set S.K=V       override a key, e.g. --set pipeline.base_port=5600 (repeatable)\n"
            "  --endpoints       print the stage's id and endpoints and exit: what a stage\n"
            "                    written in another language needs to join (docs/PROTOCOL.md)\n"
            "  --list            list the stage types and their parameters\n"
            "  --insecure        plain tcp (insecure = yes; warns): without it tcp sockets use\n"
            "                    the CurveZMQ keys the configuration names (docs/SECURITY.md)\n"
            "\n"
            "examples:\n"
            "  spiketalk stage --list\n"
            "  spiketalk stage agent --config talk.ini --endpoints\n"
            "  spiketalk stage recognizer --config talk.ini --set pipeline.host=10.0.0.2\n");
}

int st_cmd_stage(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, 0, 'c'},
                                         {"set", required_argument, 0, 's'},
                                         {"endpoints", no_argument, 0, 'e'},
                                         {"insecure", no_argument, 0, 'I'},
                                         {"list", no_argument, 0, 'l'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *config = NULL;
    const char *sets[64];
    int n_sets = 0;
    bool endpoints = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "c:s:elh", opts, NULL)) != -1) {
        switch (c) {
        case 'c': config = optarg; break;
        case 's':
            if (n_sets == 64)
                return cli_fail("stage", "--set: at most 64");
            sets[n_sets++] = optarg;
            break;
        case 'e': endpoints = true; break;
        case 'I': /* plain tcp, as `insecure = yes` (warned; docs/SECURITY.md) */
            if (n_sets == 64)
                return cli_fail("stage", "--set: at most 64");
            sets[n_sets++] = "pipeline.insecure=yes";
            break;
        case 'l': list_types(); return 0;
        case 'h': usage(stdout); return 0;
        default: return 2;
        }
    }
    if (optind != argc - 1 || !config) {
        usage(stderr);
        return 2;
    }
    const char *name = argv[optind];
    int rc;
    st_pipe_config *cfg = st_pipe_config_load(config, &rc);
    if (!cfg)
        return cli_fail_lib("stage", rc, "configuration");
    for (int i = 0; i < n_sets; i++)
        if ((rc = st_pipe_config_set(cfg, sets[i]))) {
            st_pipe_config_destroy(&cfg);
            return cli_fail_lib("stage", rc, "--set");
        }
    st_stage_config sc;
    if ((rc = st_pipe_config_stage(cfg, name, &sc))) {
        cli_fail_lib("stage", rc, name);
        st_pipe_config_destroy(&cfg);
        return 1;
    }
    const char *type_name = NULL;
    for (size_t i = 0; i < st_pipe_config_stage_count(cfg); i++)
        if (!strcmp(st_pipe_config_stage_name(cfg, i), name))
            type_name = st_pipe_config_stage_type(cfg, i);
    if (endpoints) {
        printf("name = %s\ntype = %s\nid = %u\n", sc.name, type_name, sc.id);
        for (int i = 0; i < ST_STAGE_MAX_BINDS && sc.binds[i]; i++)
            printf("listen = %s\n", sc.binds[i]);
        for (int i = 0; i < ST_STAGE_MAX_OUTPUTS && sc.outputs[i]; i++)
            printf("out = %s\n", sc.outputs[i]);
        printf("inputs = %d\ncontrol = %s\nreport = %s\nhwm = %d\nheartbeat_ms = %g\n", sc.n_inputs,
               sc.control, sc.report, sc.hwm, sc.heartbeat_ms);
        /* CURVE on tcp (docs/SECURITY.md): our pair's file, the server key
           of each output and of the supervisor, the keys our listener admits. */
        const st_sec_stage *sec = sc.security;
        if (sec) {
            printf("key = %s\n", sec->key_file);
            for (int i = 0; i < ST_STAGE_MAX_OUTPUTS && sc.outputs[i]; i++)
                printf("out_key = %s\n", sec->server_z85[i]);
            if (sec->supervisor_z85[0])
                printf("supervisor_key = %s\n", sec->supervisor_z85);
            for (int i = 0; i < sec->n_accept; i++)
                printf("accept = %s\n", sec->accept[i]);
        }
        st_pipe_config_destroy(&cfg);
        return 0;
    }
    const st_stage_type *type = st_stage_type_find(type_name);
    if (!type) {
        cli_fail("stage", "stage '%s' is of type '%s': another program runs it (its endpoints: "
                 "spiketalk stage %s --config %s --endpoints)", name, type_name, name, config);
        st_pipe_config_destroy(&cfg);
        return 2;
    }
    if (st_pipe_config_insecure_tcp(cfg))
        st_log(ST_LOG_WARN, "stage %s: tcp sockets are plain (insecure = yes): anyone who can "
               "reach their ports can read and inject messages", name);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    void *zctx = zmq_ctx_new();
    rc = st_stage_run(zctx, type, &sc, &stop_flag);
    if (rc)
        cli_fail_lib("stage", rc, name);
    zmq_ctx_term(zctx);
    st_pipe_config_destroy(&cfg);
    return rc ? 1 : 0;
}
