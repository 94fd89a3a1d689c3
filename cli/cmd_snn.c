/*  cli/cmd_snn.c - `spiketalk snn`: the spiking network engine from the
    command line.

    `snn trace MODEL` runs one population of a neuron model on a CSV of input
    currents (T rows x N neurons, stdin) and prints its per-step trace in the
    column layout of Norse's reference traces (stdout), so the two can be
    compared with any CSV tool. It streams: one row is read, stepped and
    printed at a time, so T is unbounded and memory is O(N).
*/
#include "cli.h"

#include "snn/snn.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static void print_models(FILE *out)
{
    for (int m = 0; m < ST_SNN_N_MODELS; m++) {
        int col = fprintf(out, "  %-11s", st_snn_model_name((st_snn_model)m));
        const char *const *names = st_snn_neuron_param_names((st_snn_model)m);
        st_snn_neuron_params d = st_snn_neuron_default_params((st_snn_model)m);
        if (!*names)
            fprintf(out, " (no parameters)");
        for (; *names; names++) {
            char item[64];
            double v = 0;
            st_snn_neuron_get_param(&d, *names, &v);
            if (!strcmp(*names, "reset"))
                snprintf(item, sizeof item, " reset=value");
            else
                snprintf(item, sizeof item, " %s=%g", *names, v);
            if (col + (int)strlen(item) > 79)
                col = fprintf(out, "\n%13s", "") - 1;
            col += fprintf(out, "%s", item);
        }
        fputc('\n', out);
    }
}

static void trace_usage(FILE *out)
{
    fprintf(out,
            "usage: spiketalk snn trace MODEL [--dt S] [NAME=VALUE ...] < input.csv > output.csv\n"
            "\n"
            "Runs one population of a neuron model, N neurons, on a CSV of input currents\n"
            "(one row per time step, one column per neuron; a first line of names is\n"
            "skipped) and prints each step's state in the layout of Norse's traces:\n"
            "\n"
            "  t,z0..zN-1,v0..vN-1,i0..iN-1   then b0.. (lsnn threshold) or a0.. (adex)\n"
            "\n"
            "z is 1 when the neuron spiked in that step (strictly v - v_th > 0), v the\n"
            "membrane after any reset, i the synaptic current (models without one print\n"
            "no i columns). Times are in seconds and rates in 1/s, as in Norse; the\n"
            "parameters take Norse's names. The models, with their parameters and Norse's\n"
            "defaults:\n"
            "\n");
    print_models(out);
    fprintf(out,
            "\n"
            "options:\n"
            "  --dt S        integration step in seconds (default 0.001)\n"
            "  NAME=VALUE    a parameter of the model, e.g. tau_mem_inv=50 v_th=0.8\n"
            "  reset=MODE    value (to v_reset), subtract (v - v_th), none\n"
            "\n"
            "examples:\n"
            "  # Norse's LIF on its reference input; compare with Norse's own trace\n"
            "  spiketalk snn trace lif < ../shared/data/snn/norse/example_input.csv\n"
            "  # two neurons, a slower membrane, reset by subtraction, 0.5 ms steps\n"
            "  printf '1.5,3\\n1.5,3\\n1.5,3\\n' | spiketalk snn trace lif --dt 5e-4 \\\n"
            "      tau_mem_inv=50 reset=subtract\n"
            "  # an adaptive threshold that rises by 0.5 on each spike\n"
            "  spiketalk snn trace lsnn beta=0.5 < input.csv > lsnn.csv\n");
}

/* In cli/snn_run.c. */
int st_cmd_snn_run(int argc, char **argv);
int st_cmd_snn_convert(int argc, char **argv);
int st_cmd_snn_info(int argc, char **argv);

static void usage(FILE *out)
{
    fprintf(out,
            "usage: spiketalk snn SUBCOMMAND [OPTIONS]\n"
            "\n"
            "The spiking neural network engine.\n"
            "\n"
            "subcommands:\n"
            "  trace MODEL   run one population of a neuron model on a CSV of input\n"
            "                currents and print its trace (spikes, membrane, current)\n"
            "  run MODEL     run a network (.stm model file or .nir graph) on a CSV of\n"
            "                inputs and print its outputs per step\n"
            "  convert IN OUT  convert a network between .stm and .nir\n"
            "  info MODEL    list a network's nodes\n"
            "  profile       count a network's work per node and estimate its energy\n"
            "\n"
            "`spiketalk snn SUBCOMMAND --help` for one subcommand's options.\n"
            "\n"
            "example:\n"
            "  spiketalk snn trace lif tau_mem_inv=50 < input.csv > trace.csv\n");
}

/* ---- CSV reading ---- */

/* Splits `line` at commas in place (trimming blanks); returns the number of
   fields, at most cap. */
static size_t split_fields(char *line, char **fields, size_t cap)
{
    size_t n = 0;
    char *p = line;
    for (;;) {
        while (*p == ' ' || *p == '\t')
            p++;
        char *start = p;
        while (*p && *p != ',')
            p++;
        char *end = p;
        while (end > start && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r' ||
                               end[-1] == '\n'))
            end--;
        bool last = *p == '\0';
        *end = '\0';
        if (n < cap)
            fields[n] = start;
        n++;
        if (last)
            break;
        p++;
    }
    return n;
}

static bool parse_number(const char *s, float *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end || !isfinite(v) || fabs(v) > 3.4e38)
        return false;
    *out = (float)v;
    return true;
}

static bool is_blank(const char *s)
{
    for (; *s; s++)
        if (*s != ' ' && *s != '\t' && *s != '\r' && *s != '\n')
            return false;
    return true;
}

#define MAX_NEURONS 1000000

static void print_header(FILE *out, size_t n, bool has_i, char extra)
{
    fputc('t', out);
    for (size_t k = 0; k < n; k++)
        fprintf(out, ",z%zu", k);
    for (size_t k = 0; k < n; k++)
        fprintf(out, ",v%zu", k);
    if (has_i)
        for (size_t k = 0; k < n; k++)
            fprintf(out, ",i%zu", k);
    if (extra)
        for (size_t k = 0; k < n; k++)
            fprintf(out, ",%c%zu", extra, k);
    fputc('\n', out);
}

static void print_floats(FILE *out, const float *x, size_t n)
{
    for (size_t k = 0; k < n; k++)
        fprintf(out, ",%.9g", (double)x[k]);
}

static int cmd_trace(int argc, char **argv)
{
    const char *cmd = "snn trace";
    for (int a = 1; a < argc; a++)
        if (!strcmp(argv[a], "--help") || !strcmp(argv[a], "-h")) {
            trace_usage(stdout);
            return 0;
        }
    if (argc < 2) {
        cli_fail(cmd, "which model? (see spiketalk snn trace --help)");
        return 2;
    }
    st_snn_model model;
    if (st_snn_model_from_name(argv[1], &model) != ST_OK) {
        cli_fail(cmd, "%s", st_errmsg());
        return 2;
    }
    if (st_snn_model_inputs(model) != 1) { /* lif_ei: excitatory and inhibitory inputs */
        cli_fail(cmd, "%s takes %u inputs a neuron; trace runs the one-input models", argv[1],
                 st_snn_model_inputs(model));
        return 2;
    }
    st_snn_neuron_params p = st_snn_neuron_default_params(model);
    for (int a = 2; a < argc; a++) {
        if (!strcmp(argv[a], "--dt")) {
            if (a + 1 == argc) {
                cli_fail(cmd, "--dt needs a value in seconds, e.g. --dt 1e-3");
                return 2;
            }
            if (!cli_parse_double(cmd, "--dt", argv[++a], 1e-12, 1e3, &p.dt))
                return 2;
            continue;
        }
        char *eq = strchr(argv[a], '=');
        if (argv[a][0] == '-' || !eq) {
            cli_fail(cmd, "unexpected argument '%s': give parameters as NAME=VALUE (see --help)",
                     argv[a]);
            return 2;
        }
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)(eq - argv[a]), argv[a]);
        if (st_snn_neuron_set_param(&p, name, eq + 1) != ST_OK) {
            cli_fail(cmd, "%s", st_errmsg());
            return 2;
        }
    }
    if (st_snn_neuron_params_check(&p) != ST_OK) {
        cli_fail(cmd, "%s", st_errmsg());
        return 2;
    }

    int rc = 1, err = ST_OK;
    char *line = NULL;
    size_t line_cap = 0, fields_cap = 0;
    char **fields = NULL;
    float *x = NULL, *state = NULL, *out = NULL;
    uint32_t *fired = NULL;
    st_snn_neurons *pop = NULL;
    size_t n = 0, t = 0;
    unsigned long lineno = 0, first_data = 0;
    bool spikes = st_snn_model_spikes(model), has_i = false, seen_line = false;
    char extra = 0;
    const float *v = NULL, *cur = NULL, *ext = NULL;
    while (getline(&line, &line_cap, stdin) >= 0) {
        lineno++;
        if (is_blank(line))
            continue;
        size_t nf = 1;
        for (const char *c = line; *c; c++)
            nf += *c == ',';
        if (nf > fields_cap) {
            char **f = realloc(fields, nf * sizeof *f);
            if (!f) {
                cli_fail(cmd, "out of memory for %zu columns", nf);
                goto done;
            }
            fields = f;
            fields_cap = nf;
        }
        split_fields(line, fields, fields_cap);
        if (n == 0) {
            /* The first line may be a header: every field a name. */
            bool any_number = false;
            for (size_t k = 0; k < nf && !any_number; k++)
                any_number = parse_number(fields[k], &(float){0});
            if (!any_number && !seen_line) {
                seen_line = true;
                continue;
            }
            seen_line = true;
            if (nf > MAX_NEURONS) {
                cli_fail(cmd, "stdin line %lu has %zu columns; at most %d neurons", lineno, nf,
                         MAX_NEURONS);
                goto done;
            }
            n = nf;
            first_data = lineno;
            pop = st_snn_neurons_new(&p, n, &err);
            if (!pop) {
                cli_fail_lib(cmd, err, "cannot make the population");
                goto done;
            }
            x = malloc(n * sizeof *x);
            out = malloc(n * sizeof *out);
            fired = malloc(n * sizeof *fired);
            state = malloc(st_snn_neurons_state_len(pop) * sizeof *state);
            if (!x || !out || !fired || !state) {
                cli_fail(cmd, "out of memory for %zu neurons", n);
                goto done;
            }
            st_snn_neurons_init_state(pop, state);
            v = st_snn_neurons_var(pop, state, ST_SNN_VAR_V);
            cur = st_snn_neurons_var(pop, state, ST_SNN_VAR_I);
            has_i = cur != NULL;
            if ((ext = st_snn_neurons_var(pop, state, ST_SNN_VAR_B)))
                extra = 'b';
            else if ((ext = st_snn_neurons_var(pop, state, ST_SNN_VAR_A)))
                extra = 'a';
        }
        if (nf != n) {
            cli_fail(cmd,
                     "stdin line %lu has %zu column%s, but line %lu has %zu: one column per "
                     "neuron on every line",
                     lineno, nf, nf == 1 ? "" : "s", first_data, n);
            goto done;
        }
        for (size_t k = 0; k < n; k++)
            if (!parse_number(fields[k], &x[k])) {
                cli_fail(cmd, "stdin line %lu, column %zu: '%s' is not a number", lineno, k + 1,
                         fields[k]);
                goto done;
            }
        if (t == 0)
            print_header(stdout, n, has_i, extra);
        st_snn_neurons_step(pop, state, x, out, fired);
        printf("%zu", t++);
        for (size_t k = 0; k < n; k++)
            fputs(spikes && out[k] != 0.0f ? ",1" : ",0", stdout);
        print_floats(stdout, v, n);
        if (has_i)
            print_floats(stdout, cur, n);
        if (extra)
            print_floats(stdout, ext, n);
        fputc('\n', stdout);
    }
    if (ferror(stdin)) {
        cli_fail(cmd, "reading stdin: %s", strerror(errno));
        goto done;
    }
    if (n == 0) {
        cli_fail(cmd, "no data on stdin: give one line of input currents per time step, one "
                      "column per neuron (see --help)");
        goto done;
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
        cli_fail(cmd, "writing stdout: %s", strerror(errno));
        goto done;
    }
    rc = 0;
done:
    free(line);
    free(fields);
    free(x);
    free(out);
    free(fired);
    free(state);
    st_snn_neurons_destroy(&pop);
    return rc;
}

int st_cmd_snn(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "trace"))
        return cmd_trace(argc - 1, argv + 1);
    if (!strcmp(argv[1], "run"))
        return st_cmd_snn_run(argc - 1, argv + 1);
    if (!strcmp(argv[1], "convert"))
        return st_cmd_snn_convert(argc - 1, argv + 1);
    if (!strcmp(argv[1], "info"))
        return st_cmd_snn_info(argc - 1, argv + 1);
    if (!strcmp(argv[1], "profile"))
        return st_cmd_snn_profile(argc - 1, argv + 1);
    cli_fail("snn",
             "unknown subcommand '%s'; the subcommands are: trace, run, convert, info, profile "
             "(see "
             "spiketalk snn --help)",
             argv[1]);
    return 2;
}
