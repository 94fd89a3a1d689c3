/*  cli/cmd_reply.c - the agent's dialogue from the command line:
    `spiketalk reply "USER TEXT"` (the answer as one line, tools executed),
    `spiketalk lm dialogue` (writes the training corpus the dialogue model
    is made from) and `spiketalk lm eval-reply` (reply accuracy on
    held-out phrasings the corpus never contains).

    The model file is found, in order: --model, $SPIKETALK_DIALOGUE_MODEL,
    models/dialogue.stnn under the current folder, and models/ beside the
    folder the spiketalk binary is in (build/spiketalk ->
    models/dialogue.stnn), so a checkout answers out of the box.
*/
#include "cli.h"

#include "snn/dialogue.h"
#include "snn/lm.h"

#include <getopt.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MODEL_REL "models/dialogue.stnn"

static bool exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* The dialogue model's path into buf, or NULL (with the places looked at
   in `tried`). */
static const char *find_model(const char *given, char *buf, size_t cap, char *tried, size_t tcap)
{
    if (given)
        return given;
    const char *env = getenv("SPIKETALK_DIALOGUE_MODEL");
    if (env && *env)
        return env;
    if (exists(MODEL_REL)) {
        snprintf(buf, cap, "%s", MODEL_REL);
        return buf;
    }
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    snprintf(tried, tcap, "./%s", MODEL_REL);
    if (n > 0) {
        exe[n] = '\0';
        char *dir = dirname(exe); /* build/ */
        char cand[4096 + 64];
        snprintf(cand, sizeof cand, "%s/../%s", dir, MODEL_REL);
        if (exists(cand)) {
            snprintf(buf, cap, "%s", cand);
            return buf;
        }
        size_t l = strlen(tried);
        snprintf(tried + l, tcap - l, " and %s", cand);
    }
    return NULL;
}

static st_lm_model *load_dialogue_model(const char *me, const char *given)
{
    char buf[4200], tried[8400] = "";
    const char *path = find_model(given, buf, sizeof buf, tried, sizeof tried);
    if (!path) {
        cli_fail(me, "no dialogue model: looked for %s (and $SPIKETALK_DIALOGUE_MODEL). Build "
                     "it with `make train-dialogue`, or give --model FILE",
                 tried);
        return NULL;
    }
    int err;
    st_lm_model *m = st_lm_model_load(path, &err);
    if (!m)
        cli_fail_lib(me, err, "loading the dialogue model");
    return m;
}

static bool parse_clock(const char *me, const char *s, int *h, int *m)
{
    int a, b;
    char extra;
    if (sscanf(s, "%d:%d%c", &a, &b, &extra) != 2 || a < 0 || a > 23 || b < 0 || b > 59) {
        cli_fail(me, "--time: '%s' is not HH:MM (24-hour)", s);
        return false;
    }
    *h = a;
    *m = b;
    return true;
}

/* ---- reply ---------------------------------------------------------------------- */

static void reply_usage(FILE *out)
{
    fprintf(out,
            "usage: spiketalk reply \"USER TEXT\" [--model M] [--time HH:MM] [--show]\n"
            "\n"
            "Prints the agent's answer to one line of user text, as one line. The\n"
            "dialogue model (a spiking language model, docs/LM.md \"Dialogue and tools\")\n"
            "writes the answer; when it calls a tool - the calculator, the clock, a\n"
            "timer - the tool is executed and its result fed back to the model.\n"
            "\n"
            "  --model M     the dialogue model (default: models/dialogue.stnn, built\n"
            "                by `make train-dialogue`)\n"
            "  --time HH:MM  the clock the time tool reads (default: the system's)\n"
            "  --show        also print, on stderr, what the model wrote with the tool\n"
            "                calls and results, and the time it took\n"
            "\n"
            "examples:\n"
            "  spiketalk reply \"what is seven times six\"\n"
            "  spiketalk reply \"set a timer for five minutes\"\n");
}

int st_cmd_reply(int argc, char **argv)
{
    static const struct option opts[] = {{"model", required_argument, 0, 'm'},
                                         {"time", required_argument, 0, 't'},
                                         {"show", no_argument, 0, 's'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *me = "reply", *model_path = NULL;
    bool show = false;
    st_dialogue_params dp = st_dialogue_default_params();
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model_path = optarg; break;
        case 't':
            if (!parse_clock(me, optarg, &dp.tools.hour, &dp.tools.minute))
                return 2;
            break;
        case 's': show = true; break;
        case 'h': reply_usage(stdout); return 0;
        default: reply_usage(stderr); return 2;
        }
    }
    if (optind != argc - 1) {
        reply_usage(stderr);
        return 2;
    }
    st_lm_model *m = load_dialogue_model(me, model_path);
    if (!m)
        return 1;
    char reply[4096];
    st_dialogue_info info;
    int err = st_dialogue_reply(m, argv[optind], &dp, reply, sizeof reply, &info);
    st_lm_model_destroy(&m);
    if (err)
        return cli_fail_lib(me, err, "replying");
    printf("%s\n", reply);
    if (show)
        fprintf(stderr, "agent:%s\n(%u tool call%s%s, %zu tokens, %.1f ms)\n", info.transcript,
                info.n_tools, info.n_tools == 1 ? "" : "s",
                info.fallback ? "; the model wrote nothing usable: fallback" : "",
                info.n_tokens, 1e3 * info.seconds);
    return 0;
}

/* ---- lm dialogue --------------------------------------------------------------------- */

static void dialogue_usage(FILE *out)
{
    fprintf(out,
            "usage: spiketalk lm dialogue --out FILE [--dialogues N] [--seed S]\n"
            "           [--chatterbot FILE] [--heldout FILE] [--heldout-n N]\n"
            "\n"
            "Writes the dialogue model's training corpus: N dialogues generated from the\n"
            "training templates (greetings, arithmetic and comparisons on spoken numbers,\n"
            "the time, timers, counting, yes/no, help, jokes, stories, and requests the\n"
            "agent cannot serve, with their tool calls and results), plus the real\n"
            "dialogues of chatterbot-corpus, as \"user:\" / \"agent:\" transcripts\n"
            "separated by blank lines. --heldout writes the held-out requests (phrasings\n"
            "the corpus never contains) as TSV: user, intent, clock, timer seconds, the\n"
            "right answers separated by '|'.\n"
            "\n"
            "  --dialogues N     generated dialogues (default 60000)\n"
            "  --seed S          (default 1)\n"
            "  --chatterbot FILE the real dialogues (\"A:\" / \"B:\" turns)\n"
            "  --repeat K        times each real dialogue is included (default 1)\n"
            "  --heldout FILE    write the held-out requests\n"
            "  --heldout-n N     how many (default 1000)\n");
}

int st_cmd_lm_dialogue(int argc, char **argv)
{
    static const struct option opts[] = {{"out", required_argument, 0, 'o'},
                                         {"dialogues", required_argument, 0, 'n'},
                                         {"seed", required_argument, 0, 's'},
                                         {"chatterbot", required_argument, 0, 'c'},
                                         {"repeat", required_argument, 0, 'r'},
                                         {"heldout", required_argument, 0, 'H'},
                                         {"heldout-n", required_argument, 0, 'N'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *me = "lm dialogue", *out = NULL, *held = NULL;
    st_dialogue_gen_params gp = st_dialogue_gen_default_params();
    long v, held_n = 1000;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case 'n':
            if (!cli_parse_int(me, "--dialogues", optarg, 0, 10000000, &v))
                return 2;
            gp.dialogues = (size_t)v;
            break;
        case 's':
            if (!cli_parse_int(me, "--seed", optarg, 0, 0x7fffffffL, &v))
                return 2;
            gp.seed = (uint64_t)v;
            break;
        case 'c': gp.chatterbot_path = optarg; break;
        case 'r':
            if (!cli_parse_int(me, "--repeat", optarg, 1, 100, &v))
                return 2;
            gp.chatterbot_repeat = (unsigned)v;
            break;
        case 'H': held = optarg; break;
        case 'N':
            if (!cli_parse_int(me, "--heldout-n", optarg, 1, 1000000, &held_n))
                return 2;
            break;
        case 'h': dialogue_usage(stdout); return 0;
        default: dialogue_usage(stderr); return 2;
        }
    }
    if (optind < argc || !out) {
        dialogue_usage(stderr);
        return 2;
    }
    char *text;
    size_t len;
    int err = st_dialogue_corpus(&gp, &text, &len);
    if (err)
        return cli_fail_lib(me, err, "making the corpus");
    FILE *f = fopen(out, "wb");
    bool ok = f && fwrite(text, 1, len, f) == len;
    if (f)
        ok = !fclose(f) && ok;
    free(text);
    if (!ok)
        return cli_fail(me, "cannot write '%s'", out);
    printf("wrote %s (%zu bytes)\n", out, len);
    if (held) {
        st_dialogue_case *cases;
        size_t n;
        if ((err = st_dialogue_heldout(gp.seed, (size_t)held_n, &cases, &n)))
            return cli_fail_lib(me, err, "making the held-out requests");
        f = fopen(held, "wb");
        if (!f) {
            free(cases);
            return cli_fail(me, "cannot write '%s'", held);
        }
        fprintf(f, "user\tintent\tclock\ttimer_s\tanswers\n");
        for (size_t i = 0; i < n; i++)
            fprintf(f, "%s\t%s\t%02d:%02d\t%lld\t%s\n", cases[i].user,
                    st_dialogue_intent_name(cases[i].intent), cases[i].hour, cases[i].minute,
                    cases[i].timer_s, cases[i].expect);
        ok = !fclose(f);
        free(cases);
        if (!ok)
            return cli_fail(me, "cannot write '%s'", held);
        printf("wrote %s (%zu held-out requests)\n", held, n);
    }
    return 0;
}

/* ---- lm eval-reply -------------------------------------------------------------------- */

static void eval_reply_usage(FILE *out)
{
    fprintf(out,
            "usage: spiketalk lm eval-reply [--model M] [--n N] [--seed S] [--failures]\n"
            "\n"
            "The agent's reply accuracy on N held-out requests (phrasings built from\n"
            "templates, prefixes and suffixes the training corpus never uses; numbers,\n"
            "times and durations drawn at random), each answered from a fresh state as\n"
            "`spiketalk reply` answers it, with the clock set per request. In domain, a\n"
            "reply is right when it is exactly a right answer (for a timer, also when the\n"
            "timer was set to the time asked); out of domain, when it is a short answer\n"
            "(1 to 40 words) with no tool call and not the runtime's fallback.\n"
            "\n"
            "  --model M   the dialogue model (default as `spiketalk reply`)\n"
            "  --n N       requests (default 1000)\n"
            "  --seed S    the held-out set's seed (default 1, as `lm dialogue`)\n"
            "  --failures  print every wrong reply\n");
}

int st_cmd_lm_eval_reply(int argc, char **argv)
{
    static const struct option opts[] = {{"model", required_argument, 0, 'm'},
                                         {"n", required_argument, 0, 'n'},
                                         {"seed", required_argument, 0, 's'},
                                         {"failures", no_argument, 0, 'f'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *me = "lm eval-reply", *model_path = NULL;
    long n_req = 1000, seed = 1;
    bool failures = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model_path = optarg; break;
        case 'n':
            if (!cli_parse_int(me, "--n", optarg, 1, 1000000, &n_req))
                return 2;
            break;
        case 's':
            if (!cli_parse_int(me, "--seed", optarg, 0, 0x7fffffffL, &seed))
                return 2;
            break;
        case 'f': failures = true; break;
        case 'h': eval_reply_usage(stdout); return 0;
        default: eval_reply_usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        eval_reply_usage(stderr);
        return 2;
    }
    st_lm_model *m = load_dialogue_model(me, model_path);
    if (!m)
        return 1;
    st_dialogue_case *cases;
    size_t n;
    int err = st_dialogue_heldout((uint64_t)seed, (size_t)n_req, &cases, &n);
    if (err) {
        st_lm_model_destroy(&m);
        return cli_fail_lib(me, err, "making the held-out requests");
    }
    size_t right[ST_DLG_N_INTENTS] = {0}, total[ST_DLG_N_INTENTS] = {0};
    size_t fallbacks = 0;
    double seconds = 0;
    cli_progress bar;
    cli_progress_init(&bar);
    for (size_t i = 0; i < n; i++) {
        st_dialogue_params dp = st_dialogue_default_params();
        dp.tools.hour = cases[i].hour;
        dp.tools.minute = cases[i].minute;
        char reply[4096];
        st_dialogue_info info;
        if ((err = st_dialogue_reply(m, cases[i].user, &dp, reply, sizeof reply, &info))) {
            cli_progress_done(&bar);
            free(cases);
            st_lm_model_destroy(&m);
            return cli_fail_lib(me, err, "replying");
        }
        const char *why;
        bool ok = st_dialogue_check(&cases[i], reply, &info, &why);
        total[cases[i].intent]++;
        right[cases[i].intent] += ok;
        fallbacks += info.fallback;
        seconds += info.seconds;
        if (!ok && failures) {
            cli_progress_done(&bar);
            printf("WRONG [%s] \"%s\" -> \"%s\" (%s)\n    agent:%s\n",
                   st_dialogue_intent_name(cases[i].intent), cases[i].user, reply, why,
                   info.transcript);
        }
        cli_progress_update(&bar, (double)(i + 1) / (double)n, "replying");
    }
    cli_progress_done(&bar);
    size_t in_r = 0, in_t = 0;
    printf("%-14s %8s %8s\n", "intent", "right", "accuracy");
    for (int k = 0; k < ST_DLG_N_INTENTS; k++) {
        if (!total[k])
            continue;
        printf("%-14s %4zu/%-4zu %7.1f %%\n", st_dialogue_intent_name((st_dialogue_intent)k),
               right[k], total[k], 100.0 * (double)right[k] / (double)total[k]);
        if (k != ST_DLG_OOD) {
            in_r += right[k];
            in_t += total[k];
        }
    }
    printf("in-domain reply accuracy on held-out phrasings: %.2f %% (%zu of %zu)\n",
           in_t ? 100.0 * (double)in_r / (double)in_t : 0.0, in_r, in_t);
    printf("out-of-domain graceful answers: %.2f %% (%zu of %zu); runtime fallbacks: %zu; "
           "mean %.1f ms a reply\n",
           total[ST_DLG_OOD] ? 100.0 * (double)right[ST_DLG_OOD] / (double)total[ST_DLG_OOD] : 0,
           right[ST_DLG_OOD], total[ST_DLG_OOD], fallbacks, 1e3 * seconds / (double)n);
    free(cases);
    st_lm_model_destroy(&m);
    return 0;
}
