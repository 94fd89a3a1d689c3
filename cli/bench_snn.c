/*  cli/bench_snn.c - `spiketalk bench snn`: the spiking network engine
    against the two simulators people would otherwise use, in the same run
    and on the very same networks.

    1. Vogels & Abbott's CUBA network (4000 lif_ei neurons, 80/20 E/I, 2 %
       connectivity, dt = 0.1 ms, 1 s) against Brian2 in its fastest mode
       here, C++ standalone (tools/peers/brian2_cuba.py). spiketalk draws the
       synapses and initial membranes and hands the same ones to Brian2, so
       both simulate one network; the spike counts must agree within 5 %,
       and (unless --quick) the first milliseconds of the spike raster are
       compared neuron by neuron with Brian2's runtime mode.
    2. The streaming stack Linear(256 -> 512) + LIF + Linear(512 -> 256) +
       LIF, stepped one step at a time at batch 1, against PyTorch running
       the same layers and weights the way Norse and snnTorch do
       (tools/peers/torch_stream.py), on spike input (10 % of the channels
       fire a step) and on dense real input of the same mean; then many
       streams at once through st_snn_step_batch, and the memory a stream
       costs.

    The peers run under /usr/bin/python3 with Debian's python3-brian and
    python3-torch (tools/deps installs them); when one is missing the bench
    says how to install it and reports spiketalk alone.
*/
#include "cli.h"

#include "snn/snn.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CMD "bench snn"
#define PYTHON "/usr/bin/python3"
#define MAX_REPEAT 50
#define PATH_LEN 1024 /* folders; files in them get PATH_LEN + 64 */
#define FILE_LEN (PATH_LEN + 64)
#define PEER_OUT_CAP (1u << 20)
#define INSTALL_HINT                                                                               \
    "sudo apt-get install python3-brian python3-torch libopenblas0-pthread (or as root: "         \
    "tools/deps)"

typedef struct {
    bool quick, peers, json;
    long repeat;
    char dir[PATH_LEN];    /* temporary folder for the peers' data */
    char peers_dir[PATH_LEN];
    cli_progress progress;
    int stage, n_stages;
} bench_ctx;

/* ---- small helpers ------------------------------------------------------------- */

static void progress(bench_ctx *b, const char *label)
{
    cli_progress_update(&b->progress, (double)b->stage++ / b->n_stages, label);
}

/* Processor time of the calling thread, s: the kind of time Brian2's loop
   timer measures (std::clock()), which leaves out the time the machine gave
   to other processes. */
static double thread_cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int write_file(const char *dir, const char *name, const void *data, size_t bytes)
{
    char path[FILE_LEN];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f)
        return cli_fail(CMD, "cannot write %s: %s", path, strerror(errno));
    size_t put = fwrite(data, 1, bytes, f);
    if (fclose(f) != 0 || put != bytes)
        return cli_fail(CMD, "cannot write %s: %s", path, strerror(errno));
    return 0;
}

/* Where tools/peers is: $ST_PEERS_DIR, beside the binary's source tree
   (build/spiketalk -> tools/peers), or under the current folder. */
static bool find_peers(char *out, size_t cap)
{
    const char *env = getenv("ST_PEERS_DIR");
    char exe[PATH_LEN - 64], probe[FILE_LEN];
    struct stat st;
    if (env && *env) {
        snprintf(out, cap, "%s", env);
        return true;
    }
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = '\0';
            snprintf(probe, sizeof probe, "%s/../tools/peers/brian2_cuba.py", exe);
            if (stat(probe, &st) == 0) {
                snprintf(out, cap, "%s/../tools/peers", exe);
                return true;
            }
        }
    }
    if (stat("tools/peers/brian2_cuba.py", &st) == 0) {
        snprintf(out, cap, "tools/peers");
        return true;
    }
    return false;
}

/* The peers print one flat-ish JSON object; these find a key's value from
   `from` on (enough for what the peers print, not a JSON parser). */
static const char *json_find(const char *from, const char *key)
{
    char pat[96];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = from ? strstr(from, pat) : NULL;
    if (!p)
        return NULL;
    p += strlen(pat);
    while (*p == ' ')
        p++;
    return p;
}

static bool json_num(const char *from, const char *key, double *out)
{
    const char *p = json_find(from, key);
    char *end;
    if (!p)
        return false;
    *out = strtod(p, &end);
    return end != p;
}

static int json_nums(const char *from, const char *key, double *out, int max)
{
    const char *p = json_find(from, key);
    int n = 0;
    if (!p || *p != '[')
        return 0;
    p++;
    while (n < max) {
        char *end;
        double v = strtod(p, &end);
        if (end == p)
            break;
        out[n++] = v;
        p = end;
        while (*p == ' ' || *p == ',')
            p++;
    }
    return n;
}

static bool json_str(const char *from, const char *key, char *out, size_t cap)
{
    const char *p = json_find(from, key);
    if (!p || *p != '"')
        return false;
    size_t n = 0;
    for (p++; *p && *p != '"' && n + 1 < cap; p++)
        out[n++] = *p == '\\' && p[1] ? *++p : *p;
    out[n] = '\0';
    return true;
}

/* A peer that failed: its JSON "error", or the last line of its stderr. */
static void peer_failure(const bench_ctx *b, const char *out, int rc, char *why, size_t cap)
{
    if (json_str(out, "error", why, cap))
        return;
    char path[FILE_LEN], line[512] = "", last[512] = "";
    snprintf(path, sizeof path, "%s/peer_stderr.txt", b->dir);
    FILE *f = fopen(path, "r");
    while (f && fgets(line, sizeof line, f))
        if (line[0] != '\n' && !strstr(line, "Warning") && !strstr(line, "warn"))
            snprintf(last, sizeof last, "%s", line);
    if (f)
        fclose(f);
    last[strcspn(last, "\n")] = '\0';
    snprintf(why, cap, "exit status %d%s%s", rc, *last ? ": " : "", last);
}

static double median_of(const double *v, int n)
{
    double tmp[MAX_REPEAT * 4];
    memcpy(tmp, v, (size_t)n * sizeof *v);
    return cli_median(tmp, n);
}

/* ---- CUBA ------------------------------------------------------------------------- */

typedef struct {
    double ms;            /* median processor time of the 1 s simulation */
    double wall_ms;       /* median wall time of the same runs */
    double spikes;
    double syn_ops_per_step;
    double peer_ms, peer_spikes;
    double identical_ms;  /* raster identical to Brian2's for this long (NaN: not checked) */
    char peer[64];
    char peer_note[300];
    bool peer_ok;
} cuba_result;

static int run_cuba(bench_ctx *b, cuba_result *r)
{
    const st_snn_cuba_params p = st_snn_cuba_default_params();
    const size_t n = (size_t)p.n_exc + p.n_inh;
    const long steps = lround(1.0 / p.dt);
    uint32_t *pre = NULL, *post = NULL;
    size_t n_syn, n_exc_syn;
    int err, status = 1;
    st_snn_net *net = NULL;
    st_snn_state *st = NULL;
    float *v0 = malloc(n * sizeof *v0);
    char *out = malloc(PEER_OUT_CAP);
    *r = (cuba_result){.identical_ms = NAN, .peer_ms = NAN, .peer_spikes = NAN};
    snprintf(r->peer, sizeof r->peer, "brian2");

    progress(b, "CUBA: building the network");
    if (!v0 || !out) {
        cli_fail(CMD, "out of memory");
        goto done;
    }
    if ((err = st_snn_cuba_synapses(&p, &pre, &post, &n_syn, &n_exc_syn)) != ST_OK ||
        !(net = st_snn_cuba_net(&p, pre, post, n_syn, &err)) ||
        !(st = st_snn_state_new(net, &err))) {
        cli_fail_lib(CMD, err, "building the CUBA network");
        goto done;
    }
    st_snn_cuba_initial_v(&p, v0);
    const int pop = st_snn_net_find(net, "P");

    /* spiketalk: reset, the initial membranes, 1 s; the median of the runs */
    double t[MAX_REPEAT], wall[MAX_REPEAT], spikes = 0;
    for (long k = 0; k < b->repeat; k++) {
        progress(b, "CUBA: spiketalk");
        st_snn_state_reset(st);
        st_snn_state_clear_counters(st);
        memcpy(st_snn_state_var(st, pop, ST_SNN_VAR_V), v0, n * sizeof *v0);
        const double c0 = thread_cpu_s(), t0 = st_now_s();
        for (long s = 0; s < steps; s++)
            st_snn_step(net, st, NULL);
        wall[k] = st_now_s() - t0;
        t[k] = thread_cpu_s() - c0;
        st_snn_counters c;
        st_snn_state_counters(st, -1, &c);
        spikes = (double)c.spikes;
        r->syn_ops_per_step = (double)c.syn_ops / (double)steps;
    }
    r->ms = 1e3 * median_of(t, (int)b->repeat);
    r->wall_ms = 1e3 * median_of(wall, (int)b->repeat);
    r->spikes = spikes;

    if (!b->peers) {
        snprintf(r->peer_note, sizeof r->peer_note, "peers off (--no-peers)");
        status = 0;
        goto done;
    }
    if (write_file(b->dir, "pre_exc.u32", pre, n_exc_syn * sizeof *pre) ||
        write_file(b->dir, "post_exc.u32", post, n_exc_syn * sizeof *post) ||
        write_file(b->dir, "pre_inh.u32", pre + n_exc_syn, (n_syn - n_exc_syn) * sizeof *pre) ||
        write_file(b->dir, "post_inh.u32", post + n_exc_syn,
                   (n_syn - n_exc_syn) * sizeof *post) ||
        write_file(b->dir, "v0.f32", v0, n * sizeof *v0))
        goto done;

    /* Brian2, C++ standalone: the project is cached between runs, so only
       the first run compiles */
    char script[FILE_LEN], cache[FILE_LEN], err_path[FILE_LEN], nbuf[32], rbuf[32];
    const char *home = getenv("XDG_CACHE_HOME");
    if (home && *home)
        snprintf(cache, sizeof cache, "%s/spiketalk/brian2_cuba", home);
    else if ((home = getenv("HOME")) && *home)
        snprintf(cache, sizeof cache, "%s/.cache/spiketalk/brian2_cuba", home);
    else
        snprintf(cache, sizeof cache, "/tmp/spiketalk-brian2-cuba-%ld", (long)getuid());
    snprintf(script, sizeof script, "%s/brian2_cuba.py", b->peers_dir);
    snprintf(err_path, sizeof err_path, "%s/peer_stderr.txt", b->dir);
    snprintf(nbuf, sizeof nbuf, "%zu", n);
    snprintf(rbuf, sizeof rbuf, "%ld", b->repeat);
    progress(b, "CUBA: Brian2 C++ standalone (the first run compiles, ~1 min)");
    char *argv[] = {PYTHON, script, "--data", b->dir, "--n", nbuf, "--repeat", rbuf,
                    "--build-dir", cache, NULL};
    int rc = cli_run_capture(argv, out, PEER_OUT_CAP, err_path);
    double loops[MAX_REPEAT], counts[MAX_REPEAT];
    int nl = json_nums(out, "loop_s", loops, MAX_REPEAT);
    int nc = json_nums(out, "spikes", counts, MAX_REPEAT);
    if (rc != 0 || nl == 0 || nc == 0) {
        char why[300];
        peer_failure(b, out, rc, why, sizeof why);
        snprintf(r->peer_note, sizeof r->peer_note, "Brian2 did not run (%.120s); install: %s",
                 why, INSTALL_HINT);
        status = 0;
        goto done;
    }
    char version[32] = "?";
    json_str(out, "version", version, sizeof version);
    snprintf(r->peer, sizeof r->peer, "brian2 %s cpp_standalone", version);
    r->peer_ms = 1e3 * median_of(loops, nl);
    r->peer_spikes = median_of(counts, nc);
    r->peer_ok = true;

    /* the raster check: Brian2's runtime mode, same synapses and v0 */
    if (!b->quick) {
        const long check_steps = 500; /* 50 ms */
        char sbuf[32];
        snprintf(sbuf, sizeof sbuf, "%ld", check_steps);
        progress(b, "CUBA: spike raster check (Brian2 runtime mode)");
        char *argv2[] = {PYTHON, script, "--data", b->dir, "--n", nbuf, "--raster-steps", sbuf,
                         NULL};
        rc = cli_run_capture(argv2, out, PEER_OUT_CAP, err_path);
        const char *ras = json_find(out, "raster");
        if (rc == 0 && ras && *ras == '[') {
            /* ours: the same steps, listing (step, neuron) */
            st_snn_state_reset(st);
            memcpy(st_snn_state_var(st, pop, ST_SNN_VAR_V), v0, n * sizeof *v0);
            long first_diff = check_steps;
            const char *q = ras + 1;
            for (long s = 0; s < check_steps && first_diff == check_steps; s++) {
                st_snn_step(net, st, NULL);
                size_t nf;
                const uint32_t *f = st_snn_state_spikes(st, pop, &nf);
                for (size_t k = 0; k < nf && first_diff == check_steps; k++) {
                    long ps, pi;
                    while (*q == ' ' || *q == ',')
                        q++;
                    if (sscanf(q, "[%ld, %ld]", &ps, &pi) != 2 || ps != s || pi != (long)f[k])
                        first_diff = s;
                    q = strchr(q, ']');
                    q = q ? q + 1 : "";
                }
                /* Brian2 must have no further spike at this step */
                while (*q == ' ' || *q == ',')
                    q++;
                long ps, pi;
                if (first_diff == check_steps && sscanf(q, "[%ld, %ld]", &ps, &pi) == 2 &&
                    ps == s)
                    first_diff = s;
            }
            r->identical_ms = 1e3 * (double)first_diff * p.dt;
        }
    }
    status = 0;
done:
    st_snn_state_destroy(&st);
    st_snn_net_destroy(&net);
    free(pre);
    free(post);
    free(v0);
    free(out);
    return status;
}

/* ---- the streaming stack ----------------------------------------------------------- */

#define BANK 1000 /* input rows, cycled */

typedef struct {
    const char *kind;     /* "spikes" or "dense" */
    double us;            /* median per step */
    double spikes;        /* spikes in the counted steps (both layers) */
    double syn_ops, macs; /* per step */
    double peer_us, peer_spikes;
} stream_result;

typedef struct {
    int streams;
    double steps_per_s;
} batch_result;

static void make_bank(float *bank, size_t n_in, bool spikes)
{
    /* deterministic: xorshift64 from a fixed seed */
    uint64_t s = spikes ? 0x2545f4914f6cdd1dULL : 0x9e3779b97f4a7c15ULL;
    for (size_t k = 0; k < (size_t)BANK * n_in; k++) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        const double u = (double)(s >> 11) * (1.0 / 9007199254740992.0);
        /* spikes: 10 % of the channels a step; dense: U(0, 0.2), the same
           mean drive */
        bank[k] = spikes ? (u < 0.1 ? 1.0f : 0.0f) : (float)(0.2 * u);
    }
}

static int run_stream(bench_ctx *b, stream_result res[2], batch_result batch[3],
                      double *bytes_per_stream, unsigned *threads, char *note, size_t note_cap)
{
    const st_snn_stream_params p = st_snn_stream_default_params();
    const long warmup = 200, steps = b->quick ? 1000 : 5000;
    int err, status = 1;
    st_snn_net *net = NULL;
    st_snn_state *states[64] = {0};
    st_snn_pool *pool = NULL;
    float *bank[2] = {malloc((size_t)BANK * p.n_in * sizeof(float)),
                      malloc((size_t)BANK * p.n_in * sizeof(float))};
    double *t = malloc((size_t)steps * sizeof *t);
    float *w1 = malloc((size_t)p.n_hidden * p.n_in * sizeof *w1);
    float *w2 = malloc((size_t)p.n_out * p.n_hidden * sizeof *w2);
    float *b1 = malloc(p.n_hidden * sizeof *b1), *b2 = malloc(p.n_out * sizeof *b2);
    char *out = malloc(PEER_OUT_CAP);
    note[0] = '\0';
    if (!bank[0] || !bank[1] || !t || !w1 || !w2 || !b1 || !b2 || !out) {
        cli_fail(CMD, "out of memory");
        goto done;
    }
    progress(b, "streaming: building the network");
    if (!(net = st_snn_stream_net(&p, &err))) {
        cli_fail_lib(CMD, err, "building the streaming network");
        goto done;
    }
    for (int s = 0; s < 64; s++)
        if (!(states[s] = st_snn_state_new(net, &err))) {
            cli_fail_lib(CMD, err, "making stream states");
            goto done;
        }
    *bytes_per_stream = (double)st_snn_state_bytes(states[0]);
    make_bank(bank[0], p.n_in, true);
    make_bank(bank[1], p.n_in, false);

    /* batch 1, one step at a time, each step timed on its own */
    for (int kind = 0; kind < 2; kind++) {
        stream_result *r = &res[kind];
        r->kind = kind ? "dense" : "spikes";
        r->peer_us = r->peer_spikes = NAN;
        double best = INFINITY;
        for (long rep = 0; rep < b->repeat; rep++) {
            progress(b, kind ? "streaming: spiketalk, dense input"
                             : "streaming: spiketalk, spike input");
            st_snn_state *st = states[0];
            st_snn_state_reset(st);
            for (long s = 0; s < warmup; s++)
                st_snn_step(net, st, bank[kind] + (size_t)(s % BANK) * p.n_in);
            st_snn_state_clear_counters(st);
            for (long s = warmup; s < warmup + steps; s++) {
                const float *x = bank[kind] + (size_t)(s % BANK) * p.n_in;
                const double t0 = st_now_s();
                st_snn_step(net, st, x);
                t[s - warmup] = st_now_s() - t0;
            }
            const double med = cli_median(t, (int)steps);
            best = med < best ? med : best;
            st_snn_counters c;
            st_snn_state_counters(st, -1, &c);
            r->spikes = (double)c.spikes;
            r->syn_ops = (double)c.syn_ops / (double)steps;
            r->macs = (double)c.dense_macs / (double)steps;
        }
        /* the median step of the best of the repeats: the machine's noise
           (other processes) only ever adds */
        r->us = 1e6 * best;
    }

    /* many streams: steps per second through the pool (one thread a core) */
    if (!(pool = st_snn_pool_new(0, &err))) {
        cli_fail_lib(CMD, err, "starting the thread pool");
        goto done;
    }
    *threads = st_snn_pool_threads(pool);
    const int counts[3] = {1, 8, 64};
    const long batch_steps = b->quick ? 300 : 1500;
    for (int bi = 0; bi < 3; bi++) {
        const int m = counts[bi];
        const float *inputs[64];
        double rates[MAX_REPEAT];
        for (long rep = 0; rep < b->repeat; rep++) {
            progress(b, "streaming: many streams");
            for (int s = 0; s < m; s++)
                st_snn_state_reset(states[s]);
            const double t0 = st_now_s();
            for (long s = 0; s < batch_steps; s++) {
                for (int k = 0; k < m; k++)
                    inputs[k] = bank[0] + (size_t)((s + 37 * k) % BANK) * p.n_in;
                st_snn_step_batch(net, states, inputs, (size_t)m, pool);
            }
            rates[rep] = (double)m * (double)batch_steps / (st_now_s() - t0);
        }
        batch[bi].streams = m;
        batch[bi].steps_per_s = median_of(rates, (int)b->repeat);
    }

    if (!b->peers) {
        status = 0;
        goto done;
    }
    /* PyTorch on the same weights and inputs */
    st_snn_stream_weights(&p, w1, b1, w2, b2);
    if (write_file(b->dir, "w1.f32", w1, (size_t)p.n_hidden * p.n_in * sizeof *w1) ||
        write_file(b->dir, "b1.f32", b1, p.n_hidden * sizeof *b1) ||
        write_file(b->dir, "w2.f32", w2, (size_t)p.n_out * p.n_hidden * sizeof *w2) ||
        write_file(b->dir, "b2.f32", b2, p.n_out * sizeof *b2) ||
        write_file(b->dir, "in_spikes.f32", bank[0], (size_t)BANK * p.n_in * sizeof(float)) ||
        write_file(b->dir, "in_dense.f32", bank[1], (size_t)BANK * p.n_in * sizeof(float)))
        goto done;
    char script[FILE_LEN], err_path[FILE_LEN], sbuf[32], wbuf[32], rbuf[32];
    snprintf(script, sizeof script, "%s/torch_stream.py", b->peers_dir);
    snprintf(err_path, sizeof err_path, "%s/peer_stderr.txt", b->dir);
    snprintf(sbuf, sizeof sbuf, "%ld", steps);
    snprintf(wbuf, sizeof wbuf, "%ld", warmup);
    snprintf(rbuf, sizeof rbuf, "%ld", b->repeat);
    progress(b, "streaming: PyTorch");
    char *argv[] = {PYTHON, script, "--data", b->dir, "--steps", sbuf, "--warmup", wbuf,
                    "--repeat", rbuf, NULL};
    int rc = cli_run_capture(argv, out, PEER_OUT_CAP, err_path);
    const char *rs = json_find(out, "results");
    if (rc != 0 || !rs) {
        char why[300];
        peer_failure(b, out, rc, why, sizeof why);
        snprintf(note, note_cap, "PyTorch did not run (%.120s); install: %s", why, INSTALL_HINT);
        status = 0;
        goto done;
    }
    char version[32] = "?";
    json_str(out, "version", version, sizeof version);
    for (int kind = 0; kind < 2; kind++) {
        char key[16];
        snprintf(key, sizeof key, "%s", res[kind].kind);
        const char *obj = json_find(rs, key);
        double us, sh, so;
        if (obj && json_num(obj, "us_per_step_median", &us) &&
            json_num(obj, "spikes_hidden", &sh) && json_num(obj, "spikes_out", &so)) {
            res[kind].peer_us = us;
            res[kind].peer_spikes = sh + so;
        }
    }
    snprintf(note, note_cap, "pytorch %s", version);
    status = 0;
done:
    st_snn_pool_destroy(&pool);
    for (int s = 0; s < 64; s++)
        st_snn_state_destroy(&states[s]);
    st_snn_net_destroy(&net);
    free(bank[0]);
    free(bank[1]);
    free(t);
    free(w1);
    free(w2);
    free(b1);
    free(b2);
    free(out);
    return status;
}

/* ---- the report --------------------------------------------------------------------- */

static void usage(FILE *out)
{
    fprintf(out,
            "usage: spiketalk bench snn [--quick] [--repeat N] [--no-peers] [--json]\n"
            "\n"
            "The spiking network engine against Brian2 and PyTorch, in the same run and on\n"
            "the very same networks (spiketalk draws the synapses and weights and hands them\n"
            "to the peers):\n"
            "\n"
            "  cuba           Vogels & Abbott's CUBA network, Brian2's example: 4000 LIF\n"
            "                 neurons with separate E/I exponential currents (exact\n"
            "                 integration), 80/20 E/I, 2 %% connectivity, 5 ms refractory,\n"
            "                 dt = 0.1 ms, 1 s simulated; vs Brian2's C++ standalone mode\n"
            "                 (one thread). Timed: spiketalk's 10,000 st_snn_step calls;\n"
            "                 Brian2's own timer around its simulation loop (Network::run,\n"
            "                 build and I/O excluded); both in processor time (Brian2's\n"
            "                 timer is std::clock()), so that other processes on the machine\n"
            "                 do not count. Spike counts must agree within 5 %%, and the\n"
            "                 first 50 ms of the spike raster are compared.\n"
            "  stream_spikes  Linear(256->512) + LIF + Linear(512->256) + LIF, one step at a\n"
            "                 time, batch 1, input spikes on 10 %% of the channels; vs the\n"
            "                 same layers and weights in PyTorch as Norse runs them\n"
            "                 (no_grad, one thread). Median time of one step, both sides.\n"
            "  stream_dense   the same on real-valued input, U(0, 0.2) (same mean drive).\n"
            "  streams_N      N streams stepped together through st_snn_step_batch on a\n"
            "                 pool of one thread a core: stream-steps per second.\n"
            "\n"
            "options:\n"
            "  --quick        fewer steps and repeats, no raster check (about 20 s)\n"
            "  --repeat N     repeats of each measurement, 1 .. %d (default 5; 2 with --quick)\n"
            "  --no-peers     spiketalk alone (no Python)\n"
            "  --json         one JSON object instead of the table (fields: docs/BENCH.md)\n"
            "  -h, --help     this help\n"
            "\n"
            "The peers run under " PYTHON " with Debian's python3-brian, python3-torch\n"
            "and libopenblas0-pthread:\n"
            "  " INSTALL_HINT "\n"
            "Brian2's first run compiles its project (10 s to a minute), cached afterwards\n"
            "in $XDG_CACHE_HOME/spiketalk (or ~/.cache/spiketalk).\n",
            MAX_REPEAT);
}

int st_bench_snn(int argc, char **argv)
{
    static const struct option opts[] = {{"quick", no_argument, 0, 'q'},
                                         {"repeat", required_argument, 0, 'n'},
                                         {"no-peers", no_argument, 0, 'P'},
                                         {"json", no_argument, 0, 'J'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    bench_ctx b = {.peers = true, .repeat = -1};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'q': b.quick = true; break;
        case 'n':
            if (!cli_parse_int(CMD, "--repeat", optarg, 1, MAX_REPEAT, &b.repeat))
                return 2;
            break;
        case 'P': b.peers = false; break;
        case 'J': b.json = true; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc)
        return cli_fail(CMD, "unexpected argument '%s' (see --help)", argv[optind]) + 1;
    if (b.repeat < 0)
        b.repeat = b.quick ? 2 : 5;

    char peer_note[300] = "";
    if (b.peers && access(PYTHON, X_OK) != 0) {
        snprintf(peer_note, sizeof peer_note, "peers skipped: %s not found; install: %s", PYTHON,
                 INSTALL_HINT);
        b.peers = false;
    } else if (b.peers && !find_peers(b.peers_dir, sizeof b.peers_dir)) {
        snprintf(peer_note, sizeof peer_note, "peers skipped: tools/peers not found (run from the "
                                              "source tree or set ST_PEERS_DIR)");
        b.peers = false;
    }
    if (b.peers) {
        if (st_tmpdir_make(b.dir, sizeof b.dir, "spiketalk-bench-snn"))
            return cli_fail(CMD, "%s", st_errmsg());
    }
    cli_progress_init(&b.progress);
    b.n_stages = (int)(3 * b.repeat + 8 + (b.peers ? 3 : 0));

    cuba_result cuba;
    stream_result stream[2];
    batch_result batch[3];
    double bytes_per_stream = 0;
    unsigned threads = 0;
    char stream_note[300];
    int status = run_cuba(&b, &cuba);
    if (!status)
        status = run_stream(&b, stream, batch, &bytes_per_stream, &threads, stream_note,
                            sizeof stream_note);
    cli_progress_done(&b.progress);
    if (b.peers)
        st_tmpdir_remove(b.dir, NULL);
    if (status)
        return status;

    report rep;
    report_init(&rep, "snn", "SNN engine: CUBA network vs Brian2, streaming SNN step vs PyTorch",
                argc, argv);
    report_col_text(&rep, "case");
    report_col_text(&rep, "unit");
    report_col_num(&rep, "spiketalk", "");
    report_col_text(&rep, "peer");
    report_col_num(&rep, "peer_value", "");
    report_col_num(&rep, "speedup", "x");
    report_col_num(&rep, "spikes", "");
    report_col_num(&rep, "peer_spikes", "");
    report_col_num(&rep, "spikes_diff_pct", "%");
    report_col_num(&rep, "identical_ms", "ms");
    report_col_num(&rep, "syn_ops_per_step", "");
    report_col_num(&rep, "macs_per_step", "");
    report_col_num(&rep, "bytes_per_stream", "B");

    int row = report_row(&rep);
    report_set_text(&rep, row, "case", "cuba");
    report_set_text(&rep, row, "unit", "ms/1s");
    report_set_num(&rep, row, "spiketalk", cuba.ms);
    report_set_text(&rep, row, "peer", cuba.peer_ok ? cuba.peer : "-");
    report_set_num(&rep, row, "peer_value", cuba.peer_ms);
    report_set_num(&rep, row, "speedup", cuba.peer_ms / cuba.ms);
    report_set_num(&rep, row, "spikes", cuba.spikes);
    report_set_num(&rep, row, "peer_spikes", cuba.peer_spikes);
    const double diff = 100 * (cuba.spikes - cuba.peer_spikes) / cuba.peer_spikes;
    report_set_num(&rep, row, "spikes_diff_pct", diff);
    report_set_num(&rep, row, "identical_ms", cuba.identical_ms);
    report_set_num(&rep, row, "syn_ops_per_step", cuba.syn_ops_per_step);
    for (int k = 0; k < 2; k++) {
        row = report_row(&rep);
        report_set_text(&rep, row, "case", k ? "stream_dense" : "stream_spikes");
        report_set_text(&rep, row, "unit", "us/step");
        report_set_num(&rep, row, "spiketalk", stream[k].us);
        report_set_text(&rep, row, "peer", isnan(stream[k].peer_us) ? "-" : "pytorch");
        report_set_num(&rep, row, "peer_value", stream[k].peer_us);
        report_set_num(&rep, row, "speedup", stream[k].peer_us / stream[k].us);
        report_set_num(&rep, row, "spikes", stream[k].spikes);
        report_set_num(&rep, row, "peer_spikes", stream[k].peer_spikes);
        report_set_num(&rep, row, "spikes_diff_pct",
                       100 * (stream[k].spikes - stream[k].peer_spikes) / stream[k].peer_spikes);
        report_set_num(&rep, row, "syn_ops_per_step", stream[k].syn_ops);
        report_set_num(&rep, row, "macs_per_step", stream[k].macs);
        report_set_num(&rep, row, "bytes_per_stream", bytes_per_stream);
    }
    for (int k = 0; k < 3; k++) {
        char name[32];
        snprintf(name, sizeof name, "streams_%d", batch[k].streams);
        row = report_row(&rep);
        report_set_text(&rep, row, "case", name);
        report_set_text(&rep, row, "unit", "steps/s");
        report_set_num(&rep, row, "spiketalk", batch[k].steps_per_s);
        report_set_text(&rep, row, "peer", "-");
        report_set_num(&rep, row, "bytes_per_stream", bytes_per_stream);
    }

    report_note(&rep, "cuba: float32 vs Brian2's float64, same synapses and v0; median of %ld "
                      "runs; each side times its 10,000-step loop in processor time, as "
                      "Brian2's std::clock() does (spiketalk wall: %.1f ms)%s",
                b.repeat, cuba.wall_ms,
                isnan(cuba.identical_ms) ? "" : "; identical_ms of 50 checked");
    report_note(&rep, "stream: median of %ld steps each timed alone, after 200 warm-up, best of "
                      "%ld repeats, the same for PyTorch (perf_counter_ns); streams_N: a pool of "
                      "%u threads; spiketalk kernels: %s",
                b.quick ? 1000L : 5000L, b.repeat, threads, st_snn_kernels());
    if (*peer_note || *cuba.peer_note)
        report_note(&rep, "%s", *peer_note ? peer_note : cuba.peer_note);
    if (b.peers && *stream_note && strncmp(stream_note, "pytorch", 7))
        report_note(&rep, "%s", stream_note);
    report_print(&rep, b.json, stdout);
    if (cuba.peer_ok && fabs(diff) > 5) {
        fprintf(stderr, "spiketalk " CMD ": CUBA spike counts differ by %.1f %% (more than 5 %%): "
                        "not the same network?\n", diff);
        return 1;
    }
    return 0;
}
