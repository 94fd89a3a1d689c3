/*  cli/bench_train.c - `spiketalk bench train`: one training step (forward,
    backward through time, Adam) of a recurrent LIF network, spiketalk's
    trainer against PyTorch on the same machine and thread count.

    The network (the figure): 40 inputs of Poisson spikes (10 %),
    a dense recurrent LIF layer of 256 neurons (Norse's parameters, weights
    uniform in +-4/sqrt(40) and +-1/sqrt(256)), a leaky-integrator read-out
    of 12, 100 time steps, batch 32, cross-entropy on the read-out's maximum
    over time, SuperSpike (alpha 100), Adam. spiketalk runs it twice: event
    driven (spike inputs only add weight rows: the trainer's default) and
    with every product multiplied (the same numbers, the work PyTorch does).
    The peer, tools/peers/torch_train_step.py, is the same network written
    by hand with Norse's operations; it runs under /usr/bin/python3 with
    Debian's python3-torch, in the same invocation, so the ratio is from one
    run. Wall time and CPU time per step are both reported (the CPU time is
    the steadier figure on a shared machine); medians over --steps.
*/
#include "cli.h"

#include "snn/train.h"

#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PYTHON "/usr/bin/python3"
#define INSTALL_HINT "sudo apt-get install python3-torch"

typedef struct {
    long inputs, hidden, outputs, time, batch, threads, steps, chunk;
    double input_rate;
} shape;

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct {
    double wall_ms, cpu_ms, rate;
    bool ok;
} timing;

static timing run_ours(const shape *s, bool events)
{
    timing r = {NAN, NAN, NAN, false};
    st_train_layer_params L[2] = {st_train_layer_default_params(ST_TRAIN_DENSE),
                                  st_train_layer_default_params(ST_TRAIN_DENSE)};
    snprintf(L[0].name, sizeof L[0].name, "hidden");
    L[0].neurons = (size_t)s->hidden;
    L[0].recurrent = true;
    L[0].bias = true;
    L[0].init_scale = 4.0f;
    snprintf(L[1].name, sizeof L[1].name, "out");
    L[1].neurons = (size_t)s->outputs;
    L[1].neuron = st_snn_neuron_default_params(ST_SNN_LI);
    int rc;
    st_train_model *m = st_train_model_new((size_t)s->inputs, L, 2, 1, &rc);
    st_train_params p = st_train_default_params();
    p.threads = (unsigned)s->threads;
    p.batch = (uint32_t)s->batch;
    p.chunk = (uint32_t)s->chunk;
    p.event_driven = events;
    st_train *tr = m ? st_train_new(m, &p, &rc) : NULL;
    st_train_data *d = st_train_data_new((size_t)s->batch, (size_t)s->time, (size_t)s->inputs,
                                         &rc);
    float *x = malloc((size_t)(s->time * s->inputs) * sizeof *x);
    size_t *idx = malloc((size_t)s->batch * sizeof *idx);
    double *wall = malloc((size_t)s->steps * sizeof *wall);
    double *cpu = malloc((size_t)s->steps * sizeof *cpu);
    if (!tr || !d || !x || !idx || !wall || !cpu) {
        cli_fail_lib("bench train", rc, "setup");
        goto done;
    }
    srand(1);
    for (long b = 0; b < s->batch; b++) {
        for (long e = 0; e < s->time * s->inputs; e++)
            x[e] = (double)rand() / RAND_MAX < s->input_rate ? 1.0f : 0.0f;
        st_train_data_set(d, (size_t)b, x, (size_t)s->time, (int32_t)(b % s->outputs));
        idx[b] = (size_t)b;
    }
    st_train_stats st;
    for (int w = 0; w < 3; w++)
        if ((rc = st_train_step(tr, d, idx, (size_t)s->batch, &st)) != ST_OK) {
            cli_fail_lib("bench train", rc, "step");
            goto done;
        }
    double rate = 0;
    for (long k = 0; k < s->steps; k++) {
        const double t0 = st_now_s(), c0 = cpu_s();
        st_train_step(tr, d, idx, (size_t)s->batch, &st);
        wall[k] = 1e3 * (st_now_s() - t0);
        cpu[k] = 1e3 * (cpu_s() - c0);
        rate += st.rate;
    }
    r.wall_ms = cli_median(wall, (int)s->steps);
    r.cpu_ms = cli_median(cpu, (int)s->steps);
    r.rate = rate / (double)s->steps;
    r.ok = true;
done:
    free(x);
    free(idx);
    free(wall);
    free(cpu);
    st_train_data_destroy(&d);
    st_train_destroy(&tr);
    st_train_model_destroy(&m);
    return r;
}

/* tools/peers: $ST_PEERS_DIR, beside the binary (build/spiketalk ->
   tools/peers), or under the current folder. */
static bool find_peer(char *out, size_t cap)
{
    const char *env = getenv("ST_PEERS_DIR");
    struct stat st;
    if (env && *env) {
        snprintf(out, cap, "%s/torch_train_step.py", env);
        return stat(out, &st) == 0;
    }
    char exe[1024];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = '\0';
            snprintf(out, cap, "%s/../tools/peers/torch_train_step.py", exe);
            if (stat(out, &st) == 0)
                return true;
        }
    }
    snprintf(out, cap, "tools/peers/torch_train_step.py");
    return stat(out, &st) == 0;
}

static double json_num(const char *json, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(json, pat);
    return p ? strtod(p + strlen(pat), NULL) : NAN;
}

static timing run_peer(const shape *s, char *why, size_t cap)
{
    timing r = {NAN, NAN, NAN, false};
    char script[1100], out[4096];
    if (!find_peer(script, sizeof script)) {
        snprintf(why, cap, "tools/peers/torch_train_step.py not found (set ST_PEERS_DIR)");
        return r;
    }
    if (access(PYTHON, X_OK) != 0) {
        snprintf(why, cap, "%s not found: %s", PYTHON, INSTALL_HINT);
        return r;
    }
    char a[8][32];
    snprintf(a[0], 32, "%ld", s->inputs);
    snprintf(a[1], 32, "%ld", s->hidden);
    snprintf(a[2], 32, "%ld", s->outputs);
    snprintf(a[3], 32, "%ld", s->time);
    snprintf(a[4], 32, "%ld", s->batch);
    snprintf(a[5], 32, "%ld", s->threads ? s->threads : sysconf(_SC_NPROCESSORS_ONLN));
    snprintf(a[6], 32, "%ld", s->steps);
    snprintf(a[7], 32, "%g", s->input_rate);
    char *argv[] = {PYTHON, script, "--inputs", a[0], "--hidden", a[1], "--outputs", a[2],
                    "--time", a[3], "--batch", a[4], "--threads", a[5], "--steps", a[6],
                    "--input-rate", a[7], NULL};
    const int rc = cli_run_capture(argv, out, sizeof out, NULL);
    if (strstr(out, "\"error\"")) {
        const char *e = strstr(out, "\"error\"");
        snprintf(why, cap, "%.200s", e);
        return r;
    }
    if (rc != 0) {
        snprintf(why, cap, "the PyTorch peer failed (exit %d): %s", rc, INSTALL_HINT);
        return r;
    }
    r.wall_ms = json_num(out, "median_ms");
    r.cpu_ms = json_num(out, "median_cpu_ms");
    r.rate = json_num(out, "hidden_rate");
    r.ok = isfinite(r.wall_ms);
    if (!r.ok)
        snprintf(why, cap, "the PyTorch peer printed no timing");
    return r;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: spiketalk bench train [--steps N] [--threads N] [--hidden N] [--time T]\n"
            "                             [--batch B] [--chunk C] [--no-peer] [--json]\n"
            "\n"
            "One training step - forward, backpropagation through time, Adam - of a recurrent\n"
            "LIF network (40 Poisson-spike inputs at 10 %%, 256 hidden, an LI read-out of 12,\n"
            "100 steps, batch 32, cross-entropy on the read-out's maximum over time), in\n"
            "spiketalk (event driven, and multiplying everything) and in PyTorch (a hand-\n"
            "written Norse-style LIF, tools/peers/torch_train_step.py, " PYTHON ") on the\n"
            "same thread count, in one run. Medians of --steps steps (default 20) after 3\n"
            "warm-up steps; wall and CPU milliseconds per step; speedup = PyTorch / spiketalk.\n"
            "\n"
            "fields (--json): impl, threads, wall_ms, cpu_ms, hidden_rate, speedup_wall,\n"
            "speedup_cpu. The peer needs python3-torch: " INSTALL_HINT ".\n");
}

int st_bench_train(int argc, char **argv)
{
    static const struct option opts[] = {
        {"steps", required_argument, NULL, 's'},  {"threads", required_argument, NULL, 't'},
        {"hidden", required_argument, NULL, 'n'}, {"time", required_argument, NULL, 'T'},
        {"batch", required_argument, NULL, 'b'},  {"chunk", required_argument, NULL, 'c'},
        {"no-peer", no_argument, NULL, 'p'},      {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
    };
    shape s = {.inputs = 40, .hidden = 256, .outputs = 12, .time = 100, .batch = 32,
               .threads = 1, .steps = 20, .chunk = 8, .input_rate = 0.1};
    bool json = false, peer = true;
    optind = 1;
    int o;
    while ((o = getopt_long(argc, argv, "s:t:n:T:b:c:pjh", opts, NULL)) != -1) {
        bool ok = true;
        switch (o) {
        case 's': ok = cli_parse_int("bench train", "--steps", optarg, 1, 100000, &s.steps); break;
        case 't': ok = cli_parse_int("bench train", "--threads", optarg, 0, 256, &s.threads); break;
        case 'n': ok = cli_parse_int("bench train", "--hidden", optarg, 1, 65536, &s.hidden); break;
        case 'T': ok = cli_parse_int("bench train", "--time", optarg, 1, 100000, &s.time); break;
        case 'b': ok = cli_parse_int("bench train", "--batch", optarg, 1, 65536, &s.batch); break;
        case 'c': ok = cli_parse_int("bench train", "--chunk", optarg, 1, 65536, &s.chunk); break;
        case 'p': peer = false; break;
        case 'j': json = true; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
        if (!ok)
            return 2;
    }
    report r;
    report_init(&r, "train", "one BPTT training step (forward + backward + Adam), ms per step",
                argc, argv);
    report_col_text(&r, "impl");
    report_col_num(&r, "threads", NULL);
    report_col_num(&r, "wall_ms", "ms");
    report_col_num(&r, "cpu_ms", "ms");
    report_col_num(&r, "hidden_rate", NULL);
    report_col_num(&r, "speedup_wall", "x");
    report_col_num(&r, "speedup_cpu", "x");
    const long threads = s.threads ? s.threads : sysconf(_SC_NPROCESSORS_ONLN);
    const timing ev = run_ours(&s, true);
    const timing dense = run_ours(&s, false);
    if (!ev.ok || !dense.ok)
        return 1;
    char why[300] = "";
    const timing pt = peer ? run_peer(&s, why, sizeof why) : (timing){NAN, NAN, NAN, false};
    const struct {
        const char *name;
        const timing *t;
    } rows[] = {{"spiketalk (event-driven)", &ev}, {"spiketalk (dense)", &dense},
                {"pytorch", &pt}};
    for (int k = 0; k < 3; k++) {
        if (!rows[k].t->ok)
            continue;
        const int row = report_row(&r);
        report_set_text(&r, row, "impl", rows[k].name);
        report_set_num(&r, row, "threads", (double)threads);
        report_set_num(&r, row, "wall_ms", rows[k].t->wall_ms);
        report_set_num(&r, row, "cpu_ms", rows[k].t->cpu_ms);
        report_set_num(&r, row, "hidden_rate", rows[k].t->rate);
        if (pt.ok) {
            report_set_num(&r, row, "speedup_wall", pt.wall_ms / rows[k].t->wall_ms);
            report_set_num(&r, row, "speedup_cpu", pt.cpu_ms / rows[k].t->cpu_ms);
        }
    }
    report_note(&r, "%ld inputs (spikes at %.0f %%) -> %ld recurrent LIF -> %ld LI, %ld steps, "
                "batch %ld (chunks of %ld), %ld step(s) timed", s.inputs, 100 * s.input_rate,
                s.hidden, s.outputs, s.time, s.batch, s.chunk, s.steps);
    if (!pt.ok && peer)
        report_note(&r, "no PyTorch figure: %s", why);
    else if (pt.ok)
        report_note(&r, "speedup = PyTorch / spiketalk from this run; the peer is a hand-written "
                    "Norse-style LIF (tools/peers/torch_train_step.py)");
    report_print(&r, json, stdout);
    return 0;
}
