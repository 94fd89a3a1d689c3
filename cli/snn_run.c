/*  cli/snn_run.c - `spiketalk snn run`, `snn convert` and `snn info`: any
    network, from our model file (.stm) or a NIR graph (.nir), from the
    command line. cli/cmd_snn.c dispatches to the three functions here.

    `run` streams: one CSV row is read, stepped and printed at a time, so T
    is unbounded and memory is the network's state plus one row. Touches
    only the files it is given and stdin/stdout/stderr.
*/
#include "cli.h"

#include "snn/snn.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Called from cli/cmd_snn.c. */
int st_cmd_snn_run(int argc, char **argv);
int st_cmd_snn_convert(int argc, char **argv);
int st_cmd_snn_info(int argc, char **argv);

#define MAX_PROBES 32

/* ---- shared: options and loading ------------------------------------------------ */

typedef struct {
    st_nir_params nir;
    bool nir_given; /* --dt, --convention or --reset was given */
} load_opts;

/* Parses --dt, --convention, --reset at argv[*a]; true when it was one of
   them (then *a moves past its value). *bad is set on a bad value. */
static bool nir_option(const char *cmd, int argc, char **argv, int *a, load_opts *o, bool *bad)
{
    const char *opt = argv[*a];
    if (strcmp(opt, "--dt") && strcmp(opt, "--convention") && strcmp(opt, "--reset"))
        return false;
    if (*a + 1 >= argc) {
        cli_fail(cmd, "%s needs a value (see --help)", opt);
        *bad = true;
        return true;
    }
    const char *val = argv[++*a];
    o->nir_given = true;
    if (!strcmp(opt, "--dt")) {
        *bad = !cli_parse_double(cmd, "--dt", val, 1e-9, 1e3, &o->nir.dt_s);
    } else if (!strcmp(opt, "--convention")) {
        if (st_nir_convention_from_name(val, &o->nir.convention) != ST_OK) {
            cli_fail(cmd, "--convention: %s", st_errmsg());
            *bad = true;
        }
    } else if (!strcmp(val, "value") || !strcmp(val, "subtract")) {
        o->nir.reset = !strcmp(val, "value") ? ST_NIR_RESET_VALUE : ST_NIR_RESET_SUBTRACT;
    } else {
        cli_fail(cmd, "--reset: '%s' is not a reset; give value or subtract", val);
        *bad = true;
    }
    return true;
}

typedef enum { FMT_UNKNOWN, FMT_STNN, FMT_NIR } file_format;

static bool ends_with(const char *s, const char *tail)
{
    const size_t n = strlen(s), m = strlen(tail);
    return n >= m && !strcmp(s + n - m, tail);
}

/* By the first bytes, else by the extension. */
static file_format sniff(const char *path)
{
    static const unsigned char hdf5[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
    unsigned char head[8] = {0};
    FILE *f = fopen(path, "rb");
    size_t got = f ? fread(head, 1, sizeof head, f) : 0;
    if (f)
        fclose(f);
    if (got >= 4 && !memcmp(head, "STNN", 4))
        return FMT_STNN;
    if (got == 8 && !memcmp(head, hdf5, 8))
        return FMT_NIR;
    if (ends_with(path, ".nir") || ends_with(path, ".h5") || ends_with(path, ".hdf5"))
        return FMT_NIR;
    if (ends_with(path, ".stm"))
        return FMT_STNN;
    return FMT_UNKNOWN;
}

static st_snn_net *load_model(const char *cmd, const char *path, const load_opts *o)
{
    int err = ST_OK;
    st_snn_net *net = NULL;
    switch (sniff(path)) {
    case FMT_STNN:
        if (o->nir_given)
            fprintf(stderr, "spiketalk %s: note: --dt, --convention and --reset apply to NIR "
                            "files; '%s' carries its own\n", cmd, path);
        {
            /* a recognizer's file (snn/asr.h) holds its net under "net/" */
            st_tensor_file *tf = st_tensor_file_load(path, &err);
            if (tf && !strcmp(st_tensor_file_kind(tf), "asr"))
                net = st_snn_net_from_file(tf, "net/", &err);
            else if (tf)
                net = st_snn_net_of_file(tf, &err);
            st_tensor_file_destroy(&tf);
        }
        break;
    case FMT_NIR: net = st_snn_net_load_nir(path, &o->nir, &err); break;
    case FMT_UNKNOWN:
        cli_fail(cmd, "'%s' is neither a spiketalk model file (STNN) nor a NIR graph (HDF5)%s",
                 path, access(path, R_OK) == 0 ? "" : ": cannot open it");
        return NULL;
    }
    if (!net)
        cli_fail(cmd, "%s", *st_errmsg() ? st_errmsg() : st_strerror(err));
    return net;
}

static const char *kind_name(st_snn_node_kind kind)
{
    static const char *names[] = {"input", "output",  "dense",     "sparse", "conv",
                                  "scale", "neurons", "threshold", "delay"};
    return (unsigned)kind < sizeof names / sizeof names[0] ? names[kind] : "?";
}

/* ---- run ------------------------------------------------------------------------ */

static void run_usage(FILE *out)
{
    fprintf(out,
            "usage: spiketalk snn run MODEL --input IN.csv [OPTIONS] > OUT.csv\n"
            "\n"
            "Runs a network, step by step, on a time-major CSV and prints what it makes.\n"
            "MODEL is our model file (.stm, see docs/MODEL_FORMAT.md) or a NIR graph (.nir,\n"
            "HDF5, see docs/NIR.md); the format is told by the file's first bytes.\n"
            "\n"
            "IN.csv has one row per time step and one column per input value: T rows of\n"
            "the network's input size (its Input nodes' values, concatenated in order). A\n"
            "first line of names is skipped. OUT.csv has one row per step: the step t,\n"
            "then every output node's values, named <node>_<k> in the header line. Spiking\n"
            "outputs print 0 or 1.\n"
            "\n"
            "options:\n"
            "  --input FILE        the input CSV; '-' reads stdin (required)\n"
            "  --probe NODE[:VAR]  also print node NODE's output, or its state variable\n"
            "                      VAR (v, i, b or a) when NODE is a population; repeatable\n"
            "  --steps N           stop after N steps\n"
            "NIR files carry no time step, and exporters fold it into tau, r and w_in\n"
            "differently; tell the importer what the exporter did:\n"
            "  --dt S              the time step in seconds (default 1e-4, the NIR paper's\n"
            "                      and snnTorch's)\n"
            "  --convention NAME   norse (default: forward Euler of NIR's equations, also\n"
            "                      Spyx), snntorch (the same arithmetic, at snnTorch's dt),\n"
            "                      rockpool (exponential decay, r = tau e^(-dt/tau) / dt,\n"
            "                      reset by subtraction; also Sinabs), exact (exponential\n"
            "                      integration)\n"
            "  --reset MODE        value or subtract: what a spike does to v (default: the\n"
            "                      convention's)\n"
            "\n"
            "examples:\n"
            "  # the NIR paper's single LIF neuron: spikes at steps 460, 510, 710, 760\n"
            "  D=../shared/data/snn/nir\n"
            "  cut -d, -f1 $D/paper_01_lif/lif_norse.csv > in.csv\n"
            "  spiketalk snn run $D/good/NIR__paper_01_lif_lif_norse.nir --input in.csv \\\n"
            "      --dt 1e-4 --probe 1:v > out.csv\n"
            "  # the same neuron as Rockpool exported and ran it\n"
            "  spiketalk snn run $D/good/NIR__paper_01_lif_lif_rockpool.nir --input in.csv \\\n"
            "      --convention rockpool\n"
            "  # see what a network holds first\n"
            "  spiketalk snn info model.stm\n");
}

typedef struct {
    int node;
    st_snn_var var;
    bool is_var;
    const char *text;
} probe;

/* Splits `line` at commas in place (trimming blanks); returns the number
   of fields, storing at most cap. */
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
        const bool last = *p == '\0';
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
    const double v = strtod(s, &end);
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

/* "input_1 (3)" for each input node, for messages. */
static void describe_inputs(const st_snn_net *net, char *buf, size_t cap)
{
    size_t at = 0;
    buf[0] = '\0';
    for (size_t k = 0; k < st_snn_net_node_count(net) && at + 1 < cap; k++) {
        st_snn_node_info info;
        st_snn_net_node_info(net, (int)k, &info);
        if (info.kind != ST_SNN_NODE_INPUT)
            continue;
        int w = snprintf(buf + at, cap - at, "%s'%s': %zu", at ? ", " : "", info.name,
                         info.n_out);
        if (w < 0)
            break;
        at += (size_t)w < cap - at ? (size_t)w : cap - at - 1;
    }
}

static int parse_probe(const char *cmd, const st_snn_net *net, const char *text, probe *p)
{
    char name[512];
    const char *colon = strrchr(text, ':');
    snprintf(name, sizeof name, "%.*s", colon ? (int)(colon - text) : (int)strlen(text), text);
    p->text = text;
    p->is_var = false;
    if ((p->node = st_snn_net_find(net, name)) < 0) {
        /* a name holding a ':' of its own */
        if (colon && (p->node = st_snn_net_find(net, text)) >= 0)
            return ST_OK;
        cli_fail(cmd, "--probe: the network has no node '%s' (spiketalk snn info lists them)",
                 name);
        return ST_ERR_NOT_FOUND;
    }
    if (!colon)
        return ST_OK;
    static const struct {
        const char *name;
        st_snn_var var;
    } vars[] = {{"v", ST_SNN_VAR_V}, {"i", ST_SNN_VAR_I}, {"b", ST_SNN_VAR_B}, {"a", ST_SNN_VAR_A}};
    for (size_t k = 0; k < sizeof vars / sizeof vars[0]; k++)
        if (!strcmp(colon + 1, vars[k].name)) {
            p->is_var = true;
            p->var = vars[k].var;
            return ST_OK;
        }
    cli_fail(cmd, "--probe %s: '%s' is not a state variable; give v, i, b or a", text,
             colon + 1);
    return ST_ERR_INVALID;
}

static void print_values(const float *x, size_t n)
{
    for (size_t k = 0; k < n; k++)
        printf(",%.9g", (double)x[k]);
}

int st_cmd_snn_run(int argc, char **argv)
{
    const char *cmd = "snn run";
    load_opts o = {.nir = st_nir_default_params()};
    const char *model = NULL, *input = NULL;
    const char *probe_text[MAX_PROBES];
    size_t n_probes = 0;
    long max_steps = -1;
    for (int a = 1; a < argc; a++) {
        bool bad = false;
        if (!strcmp(argv[a], "--help") || !strcmp(argv[a], "-h")) {
            run_usage(stdout);
            return 0;
        }
        if (nir_option(cmd, argc, argv, &a, &o, &bad)) {
            if (bad)
                return 2;
        } else if (!strcmp(argv[a], "--input") || !strcmp(argv[a], "--probe") ||
                   !strcmp(argv[a], "--steps")) {
            if (a + 1 >= argc) {
                cli_fail(cmd, "%s needs a value (see --help)", argv[a]);
                return 2;
            }
            const char *opt = argv[a++];
            if (!strcmp(opt, "--input")) {
                input = argv[a];
            } else if (!strcmp(opt, "--steps")) {
                if (!cli_parse_int(cmd, "--steps", argv[a], 0, 2000000000L, &max_steps))
                    return 2;
            } else if (n_probes == MAX_PROBES) {
                cli_fail(cmd, "at most %d --probe options", MAX_PROBES);
                return 2;
            } else {
                probe_text[n_probes++] = argv[a];
            }
        } else if (argv[a][0] == '-' && argv[a][1]) {
            cli_fail(cmd, "unknown option '%s' (see spiketalk snn run --help)", argv[a]);
            return 2;
        } else if (!model) {
            model = argv[a];
        } else {
            cli_fail(cmd, "unexpected argument '%s': one model at a time (see --help)", argv[a]);
            return 2;
        }
    }
    if (!model || !input) {
        cli_fail(cmd, "%s (see spiketalk snn run --help)",
                 !model ? "which model? give MODEL.stm or MODEL.nir"
                        : "which input? give --input IN.csv (or --input - for stdin)");
        return 2;
    }

    int rc = 1, err = ST_OK;
    st_snn_net *net = load_model(cmd, model, &o);
    st_snn_state *st = NULL;
    probe probes[MAX_PROBES];
    char *line = NULL, **fields = NULL;
    size_t line_cap = 0, t = 0;
    float *x = NULL;
    const bool from_stdin = !strcmp(input, "-");
    const char *in_name = from_stdin ? "stdin" : input;
    FILE *in = NULL;
    if (!net)
        goto done;
    for (size_t k = 0; k < n_probes; k++)
        if (parse_probe(cmd, net, probe_text[k], &probes[k]) != ST_OK) {
            rc = 2;
            goto done;
        }
    const size_t n_in = st_snn_net_input_len(net);
    const size_t n_nodes = st_snn_net_node_count(net);
    if (!(st = st_snn_state_new(net, &err))) {
        cli_fail_lib(cmd, err, "cannot make the network's state");
        goto done;
    }
    for (size_t k = 0; k < n_probes; k++)
        if (probes[k].is_var && !st_snn_state_var(st, probes[k].node, probes[k].var)) {
            cli_fail(cmd, "--probe %s: that node has no such state variable", probes[k].text);
            rc = 2;
            goto done;
        }
    x = malloc((n_in ? n_in : 1) * sizeof *x);
    fields = malloc((n_in + 1) * sizeof *fields);
    if (!x || !fields) {
        cli_fail(cmd, "out of memory for %zu inputs", n_in);
        goto done;
    }
    if (!(in = from_stdin ? stdin : fopen(input, "r"))) {
        cli_fail(cmd, "cannot open '%s': %s", input, strerror(errno));
        goto done;
    }
    /* header */
    fputc('t', stdout);
    for (size_t k = 0; k < n_nodes; k++) {
        st_snn_node_info info;
        st_snn_net_node_info(net, (int)k, &info);
        if (info.kind == ST_SNN_NODE_OUTPUT)
            for (size_t j = 0; j < info.n_out; j++)
                printf(",%s_%zu", info.name, j);
    }
    for (size_t k = 0; k < n_probes; k++) {
        size_t n;
        st_snn_state_output(st, probes[k].node, &n);
        for (size_t j = 0; j < n; j++)
            printf(",%s_%zu", probes[k].text, j);
    }
    fputc('\n', stdout);

    unsigned long lineno = 0;
    bool seen_line = false;
    while ((max_steps < 0 || (long)t < max_steps) && getline(&line, &line_cap, in) >= 0) {
        lineno++;
        if (is_blank(line))
            continue;
        const size_t nf = split_fields(line, fields, n_in + 1);
        if (!seen_line) {
            seen_line = true;
            bool any_number = false;
            for (size_t k = 0; k < nf && k <= n_in && !any_number; k++)
                any_number = parse_number(fields[k], &(float){0});
            if (!any_number)
                continue; /* a header line */
        }
        if (nf != n_in) {
            char inputs[400];
            describe_inputs(net, inputs, sizeof inputs);
            cli_fail(cmd, "%s line %lu has %zu column%s, but the network takes %zu input "
                          "value%s per step (%s)",
                     in_name, lineno, nf, nf == 1 ? "" : "s", n_in, n_in == 1 ? "" : "s",
                     inputs);
            goto done;
        }
        for (size_t k = 0; k < n_in; k++)
            if (!parse_number(fields[k], &x[k])) {
                cli_fail(cmd, "%s line %lu, column %zu: '%s' is not a number", in_name, lineno,
                         k + 1, fields[k]);
                goto done;
            }
        st_snn_step(net, st, x);
        printf("%zu", t++);
        for (size_t k = 0; k < n_nodes; k++) {
            st_snn_node_info info;
            st_snn_net_node_info(net, (int)k, &info);
            if (info.kind == ST_SNN_NODE_OUTPUT)
                print_values(st_snn_state_output(st, (int)k, NULL), info.n_out);
        }
        for (size_t k = 0; k < n_probes; k++) {
            size_t n;
            const float *v = st_snn_state_output(st, probes[k].node, &n);
            if (probes[k].is_var)
                v = st_snn_state_var(st, probes[k].node, probes[k].var);
            print_values(v, n);
        }
        fputc('\n', stdout);
    }
    if (ferror(in)) {
        cli_fail(cmd, "reading %s: %s", in_name, strerror(errno));
        goto done;
    }
    if (t == 0)
        fprintf(stderr, "spiketalk %s: note: %s has no rows of input, so no step ran\n", cmd,
                in_name);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        cli_fail(cmd, "writing stdout: %s", strerror(errno));
        goto done;
    }
    rc = 0;
done:
    if (in && !from_stdin)
        fclose(in);
    free(line);
    free(fields);
    free(x);
    st_snn_state_destroy(&st);
    st_snn_net_destroy(&net);
    return rc;
}

/* ---- convert --------------------------------------------------------------------- */

static void convert_usage(FILE *out)
{
    fprintf(out,
            "usage: spiketalk snn convert IN OUT [--dt S] [--convention NAME] [--reset MODE]\n"
            "\n"
            "Converts a network between our model file and NIR, either way. IN is told by its\n"
            "first bytes; OUT by its extension: .nir writes NIR (HDF5), anything else our\n"
            "model file (use .stm).\n"
            "\n"
            "Reading NIR, --dt, --convention and --reset say how to read it (see spiketalk snn\n"
            "run --help). Writing NIR, the file is in the norse convention for --dt (default:\n"
            "the step the populations were made for); lsnn and adex populations and resets\n"
            "by subtraction have no NIR form and are refused.\n"
            "\n"
            "examples:\n"
            "  spiketalk snn convert braille.nir braille.stm --dt 1e-4\n"
            "  spiketalk snn convert braille.stm braille_again.nir\n");
}

int st_cmd_snn_convert(int argc, char **argv)
{
    const char *cmd = "snn convert";
    load_opts o = {.nir = st_nir_default_params()};
    const char *paths[2] = {NULL, NULL};
    int n_paths = 0;
    for (int a = 1; a < argc; a++) {
        bool bad = false;
        if (!strcmp(argv[a], "--help") || !strcmp(argv[a], "-h")) {
            convert_usage(stdout);
            return 0;
        }
        if (nir_option(cmd, argc, argv, &a, &o, &bad)) {
            if (bad)
                return 2;
        } else if (argv[a][0] == '-' && argv[a][1]) {
            cli_fail(cmd, "unknown option '%s' (see spiketalk snn convert --help)", argv[a]);
            return 2;
        } else if (n_paths < 2) {
            paths[n_paths++] = argv[a];
        } else {
            cli_fail(cmd, "unexpected argument '%s': give IN and OUT (see --help)", argv[a]);
            return 2;
        }
    }
    if (n_paths < 2) {
        cli_fail(cmd, "give IN and OUT (see spiketalk snn convert --help)");
        return 2;
    }
    st_snn_net *net = load_model(cmd, paths[0], &o);
    if (!net)
        return 1;
    const bool to_nir = ends_with(paths[1], ".nir");
    int rc = to_nir ? st_snn_net_save_nir(net, paths[1], o.nir_given ? &o.nir : NULL)
                    : st_snn_net_save(net, paths[1]);
    st_snn_net_destroy(&net);
    if (rc != ST_OK)
        return cli_fail_lib(cmd, rc, "cannot write");
    return 0;
}

/* ---- info --------------------------------------------------------------------- */

int st_cmd_snn_info(int argc, char **argv)
{
    const char *cmd = "snn info";
    load_opts o = {.nir = st_nir_default_params()};
    const char *path = NULL;
    for (int a = 1; a < argc; a++) {
        bool bad = false;
        if (!strcmp(argv[a], "--help") || !strcmp(argv[a], "-h")) {
            printf("usage: spiketalk snn info MODEL [--dt S] [--convention NAME] [--reset "
                   "MODE]\n\n"
                   "Lists a network's nodes (our model file or NIR): id, name, kind, neuron\n"
                   "model, input and output sizes, stored weights, and the position in the\n"
                   "stepping order. A recognizer's file (models/asr.stm, asr_stream.stm)\n"
                   "shows its net; `snn run` and `snn convert` read it the same way.\n"
                   "\n"
                   "example:\n"
                   "  spiketalk snn info models/asr.stm\n");
            return 0;
        }
        if (nir_option(cmd, argc, argv, &a, &o, &bad)) {
            if (bad)
                return 2;
        } else if (!path && (argv[a][0] != '-' || !argv[a][1])) {
            path = argv[a];
        } else {
            cli_fail(cmd, "unexpected argument '%s' (see spiketalk snn info --help)", argv[a]);
            return 2;
        }
    }
    if (!path) {
        cli_fail(cmd, "which model? (see spiketalk snn info --help)");
        return 2;
    }
    st_snn_net *net = load_model(cmd, path, &o);
    if (!net)
        return 1;
    const size_t n = st_snn_net_node_count(net);
    printf("%s: %zu nodes, %zu input values per step\n", path, n, st_snn_net_input_len(net));
    printf("%4s  %-24s %-9s %-10s %8s %8s %9s %5s\n", "id", "name", "kind", "model", "n_in",
           "n_out", "weights", "order");
    for (size_t k = 0; k < n; k++) {
        st_snn_node_info i;
        st_snn_net_node_info(net, (int)k, &i);
        printf("%4zu  %-24s %-9s %-10s %8zu %8zu %9zu %5d\n", k, i.name, kind_name(i.kind),
               i.kind == ST_SNN_NODE_NEURONS ? st_snn_model_name(i.model) : "-", i.n_in,
               i.n_out, i.n_weights, i.order);
    }
    st_snn_net_destroy(&net);
    return 0;
}
