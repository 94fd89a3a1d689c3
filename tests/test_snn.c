/*  tests/test_snn.c - suite `snn`: the neuron models against Norse's own
    traces and against a plain double-precision reference written here (with
    parameters other than the defaults, so each one is seen to matter), the
    reset modes and the strict threshold, the trace command end to end, and
    the network engine: event-driven and dense paths against a naive
    reference, recurrence, delays, convolutions, counters, save/restore,
    batch stepping and no allocation in a step.
*/
#include "testutil.h"

#include "snn/snn.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

/* ---- helpers --------------------------------------------------------------- */

static uint32_t rng_state = 12345;

static void rng_seed(uint32_t s)
{
    rng_state = s ? s : 1;
}

static float rng_uniform(float lo, float hi)
{
    uint32_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    rng_state = x;
    return lo + (hi - lo) * (float)((x >> 8) * (1.0 / 16777216.0));
}

/* Reads a numeric CSV (a header line of names is skipped). Caller frees. */
static float *read_csv(const char *path, size_t *rows, size_t *cols)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    size_t cap = 1024, n = 0, c = 0;
    float *data = malloc(cap * sizeof *data);
    char line[65536];
    *rows = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '\n' || line[0] == '\0')
            continue;
        if ((line[0] < '0' || line[0] > '9') && line[0] != '-' && line[0] != '.')
            continue; /* header */
        size_t k = 0;
        for (char *p = line;;) {
            char *end;
            double v = strtod(p, &end);
            if (end == p)
                break;
            if (n == cap)
                data = realloc(data, (cap *= 2) * sizeof *data);
            data[n++] = (float)v;
            k++;
            p = end;
            if (*p != ',')
                break;
            p++;
        }
        if (c == 0)
            c = k;
        (*rows)++;
    }
    fclose(f);
    *cols = c;
    return data;
}

static bool file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* ---- a plain double-precision reference of every model --------------------- */

typedef struct {
    double v, i, b; /* b: lsnn threshold or adex adaptation */
} ref_state;

static double ref_after(const st_snn_neuron_params *p, bool z, double vd, double th)
{
    if (!z || p->reset == ST_SNN_RESET_NONE)
        return vd;
    return p->reset == ST_SNN_RESET_VALUE ? p->v_reset : vd - th;
}

/* One step; returns z and sets *margin to v_d - threshold (how far from a
   tie the spike decision was). */
static bool ref_step(const st_snn_neuron_params *p, ref_state *s, double x, double *margin)
{
    const double dt = p->dt, a = dt * p->tau_mem_inv, syn = dt * p->tau_syn_inv;
    double vd, th = p->v_th;
    bool z = false;
    *margin = 1e9;
    switch (p->model) {
    case ST_SNN_LIF:
    case ST_SNN_LI: {
        double ij = s->i + x;
        vd = s->v + a * (p->v_leak - s->v + ij);
        s->i = ij - syn * ij;
        break;
    }
    case ST_SNN_LIFBOX:
    case ST_SNN_LIBOX: vd = s->v + a * (p->v_leak - s->v + x); break;
    case ST_SNN_IAF:
    case ST_SNN_INTEGRATOR: vd = s->v + x; break;
    case ST_SNN_LSNN: {
        vd = s->v + a * (p->v_leak - s->v + s->i);
        double id = s->i - syn * s->i;
        double bd = s->b + dt * p->tau_adapt_inv * (p->v_th - s->b);
        th = bd;
        z = vd - bd > 0;
        s->b = bd + (z ? p->beta : 0.0);
        s->i = id + x;
        break;
    }
    case ST_SNN_ADEX: {
        double ij = s->i + x;
        vd = s->v + a * (p->v_leak - s->v + p->delta_T * exp((s->v - p->v_th) / p->delta_T) + ij -
                         s->b);
        s->i = ij - syn * ij;
        double ad =
            s->b + dt * p->tau_ada_inv * (p->adaptation_current * (s->v - p->v_leak) - s->b);
        z = vd - p->v_th > 0;
        s->b = ad + (z ? p->adaptation_spike : 0.0);
        break;
    }
    case ST_SNN_CUBALIF:
    case ST_SNN_CUBALI: {
        double in = s->i + syn * (p->w_in * x - s->i);
        vd = s->v + a * (p->v_leak - s->v + p->r * in);
        s->i = in;
        break;
    }
    default: vd = 0; break;
    }
    if (st_snn_model_spikes(p->model)) {
        if (p->model != ST_SNN_LSNN && p->model != ST_SNN_ADEX)
            z = vd - th > 0;
        *margin = vd - th;
        s->v = ref_after(p, z, vd, th);
    } else {
        s->v = vd;
    }
    return z;
}

/* ---- Norse's traces ----------------------------------------------------------- */

static void test_norse_traces(void)
{
    const char *data = st_test_shared_data();
    if (!data) {
        st_test_skip("snn:norse_traces", "no shared data folder (../shared/data or "
                                         "$ST_SHARED_DATA): Norse's traces not compared; the "
                                         "reference checks still run");
        return;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/snn/norse/example_input.csv", data);
    size_t T, N;
    float *in = read_csv(path, &T, &N);
    if (!in) {
        st_test_skip("snn:norse_traces", "snn/norse/example_input.csv missing from shared data");
        return;
    }
    const char *models[] = {"lif", "li", "lifbox", "libox", "iaf", "lsnn", "adex"};
    int compared = 0;
    for (size_t m = 0; m < sizeof models / sizeof *models; m++) {
        snprintf(path, sizeof path, "%s/snn/norse/example_%s_out.csv", data, models[m]);
        size_t rows, cols;
        float *ref = read_csv(path, &rows, &cols);
        if (!ref) {
            char why[128];
            snprintf(why, sizeof why, "example_%s_out.csv missing", models[m]);
            st_test_skip("snn:norse_traces", why);
            continue;
        }
        st_snn_model model;
        CU_ASSERT_EQUAL_FATAL(st_snn_model_from_name(models[m], &model), ST_OK);
        st_snn_neuron_params p = st_snn_neuron_default_params(model);
        st_snn_neurons *pop = st_snn_neurons_new(&p, N, NULL);
        CU_ASSERT_PTR_NOT_NULL_FATAL(pop);
        float *state = malloc(st_snn_neurons_state_len(pop) * sizeof *state);
        float out[16];
        uint32_t fired[16];
        st_snn_neurons_init_state(pop, state);
        const float *v = st_snn_neurons_var(pop, state, ST_SNN_VAR_V);
        const float *cur = st_snn_neurons_var(pop, state, ST_SNN_VAR_I);
        const float *ext = st_snn_neurons_var(pop, state, ST_SNN_VAR_B);
        if (!ext)
            ext = st_snn_neurons_var(pop, state, ST_SNN_VAR_A);
        const size_t want_cols = 1 + N * (2 + (cur != NULL) + (ext != NULL));
        CU_ASSERT_EQUAL(cols, want_cols);
        CU_ASSERT_EQUAL(rows, T);
        double max_err = 0;
        int z_bad = 0, spikes = 0;
        for (size_t t = 0; t < T && t < rows && cols == want_cols; t++) {
            st_snn_neurons_step(pop, state, in + t * N, out, fired);
            const float *r = ref + t * cols;
            CU_ASSERT_EQUAL(r[0], (float)t);
            for (size_t k = 0; k < N; k++) {
                const bool z = st_snn_model_spikes(model) && out[k] == 1.0f;
                z_bad += z != (r[1 + k] == 1.0f);
                spikes += z;
                max_err = fmax(max_err, fabs(v[k] - r[1 + N + k]));
                if (cur)
                    max_err = fmax(max_err, fabs(cur[k] - r[1 + 2 * N + k]));
                if (ext)
                    max_err = fmax(max_err, fabs(ext[k] - r[1 + (cur ? 3 : 2) * N + k]));
            }
        }
        if (z_bad || max_err > 1e-5)
            fprintf(stderr, "\n  %s: %d spike mismatches, max |error| %g\n", models[m], z_bad,
                    max_err);
        CU_ASSERT_EQUAL(z_bad, 0);
        CU_ASSERT(max_err <= 1e-5);
        if (st_snn_model_spikes(model))
            CU_ASSERT(spikes > 0);
        compared++;
        free(state);
        free(ref);
        st_snn_neurons_destroy(&pop);
    }
    CU_ASSERT(compared > 0);
    free(in);
}

/* The NIR paper's single-neuron experiment (nir/good/NIR__paper_01_lif_lif_norse.nir:
   Affine w = 1 -> LIF tau = 2.5 ms, v_th = 0.1, dt = 0.1 ms), built as NIR
   maps onto our nodes. Norse and snnTorch spike at 460, 510, 710, 760. */
static void test_nir_paper_lif(void)
{
    const char *data = st_test_shared_data();
    char path[4096];
    snprintf(path, sizeof path, "%s/snn/nir/paper_01_lif/lif_norse.csv", data ? data : ".");
    size_t T, cols;
    float *ref = data ? read_csv(path, &T, &cols) : NULL;
    if (!ref) {
        st_test_skip("snn:nir_paper_lif", "no shared data (snn/nir/paper_01_lif/lif_norse.csv)");
        return;
    }
    CU_ASSERT_EQUAL_FATAL(cols, 3);
    st_snn_neuron_params p = st_snn_neuron_default_params(ST_SNN_LIFBOX);
    p.dt = 1e-4;
    p.tau_mem_inv = 1.0f / 2.5e-3f;
    p.v_th = 0.1f;
    st_snn_net *net = st_snn_net_new(NULL);
    int in = st_snn_net_add_input(net, "input", 1);
    int aff = st_snn_net_add_dense(net, "affine", 1, 1, (const float[]){1}, (const float[]){0});
    int lif = st_snn_net_add_neurons(net, "lif", &p, 1);
    int out = st_snn_net_add_output(net, "output", 1);
    st_snn_net_connect(net, in, aff);
    st_snn_net_connect(net, aff, lif);
    st_snn_net_connect(net, lif, out);
    CU_ASSERT_EQUAL_FATAL(st_snn_net_finish(net), ST_OK);
    st_snn_state *st = st_snn_state_new(net, NULL);
    const float *v = st_snn_state_var(st, lif, ST_SNN_VAR_V);
    CU_ASSERT_PTR_NULL(st_snn_state_var(st, lif, ST_SNN_VAR_I)); /* lifbox has no current */
    size_t spikes[8], n_spikes = 0;
    double worst = 0;
    int z_bad = 0;
    for (size_t t = 0; t < T; t++) {
        st_snn_step(net, st, &ref[t * 3]);
        const bool z = st_snn_state_output(st, out, NULL)[0] == 1.0f;
        if (z && n_spikes < 8)
            spikes[n_spikes++] = t;
        z_bad += z != (ref[t * 3 + 2] != 0.0f);
        worst = fmax(worst, fabs(v[0] - ref[t * 3 + 1]));
    }
    CU_ASSERT_EQUAL(z_bad, 0);
    CU_ASSERT(worst <= 1e-5);
    CU_ASSERT_EQUAL_FATAL(n_spikes, 4);
    CU_ASSERT(spikes[0] == 460 && spikes[1] == 510 && spikes[2] == 710 && spikes[3] == 760);
    st_snn_state_destroy(&st);
    st_snn_net_destroy(&net);
    free(ref);
}

/* ---- the reference, with other parameters ------------------------------------ */

static st_snn_neuron_params random_params(st_snn_model m, int variant)
{
    st_snn_neuron_params p = st_snn_neuron_default_params(m);
    p.dt = variant == 0 ? 5e-4 : variant == 1 ? 2e-3 : 1e-3;
    p.tau_syn_inv = rng_uniform(80, 400);
    p.tau_mem_inv = rng_uniform(30, 250);
    p.v_leak = rng_uniform(-0.2f, 0.2f);
    p.v_th = rng_uniform(0.6f, 1.4f);
    p.v_reset = rng_uniform(-0.4f, 0.1f);
    p.tau_adapt_inv = rng_uniform(0.5f, 20);
    p.beta = rng_uniform(0.2f, 1.5f);
    p.adaptation_current = rng_uniform(1, 6);
    p.adaptation_spike = rng_uniform(0.01f, 0.2f);
    p.delta_T = rng_uniform(0.2f, 1.0f);
    p.tau_ada_inv = rng_uniform(1, 10);
    p.w_in = rng_uniform(3, 12);
    p.r = rng_uniform(0.5f, 2);
    p.reset = (st_snn_reset)(variant % 3);
    if (m == ST_SNN_ADEX) /* without a reset to a value, v stays past threshold and the
                             exponential term diverges (as in Norse) */
        p.reset = ST_SNN_RESET_VALUE;
    return p;
}

static float input_scale(st_snn_model m)
{
    switch (m) {
    case ST_SNN_IAF:
    case ST_SNN_INTEGRATOR: return 0.7f;
    case ST_SNN_LIFBOX:
    case ST_SNN_LIBOX: return 4.0f;
    default: return 3.0f;
    }
}

/* Every model, three parameter sets and reset modes each: from the same
   state, one float step must agree with one double step. Stepping the
   reference from the engine's own state each step keeps rounding from
   piling up, so a tight tolerance holds over long runs and any parameter
   ignored or misplaced shows at once. */
static void test_reference_other_params(void)
{
    rng_seed(2024);
    const size_t N = 8, T = 400;
    for (int m = 0; m < ST_SNN_N_MODELS; m++) {
        if (m == ST_SNN_LIFREFRAC || m == ST_SNN_LIF_EI)
            continue; /* their own reference: tests/test_snn_perf.c */
        for (int variant = 0; variant < 3; variant++) {
            st_snn_neuron_params p = random_params((st_snn_model)m, variant);
            st_snn_neurons *pop = st_snn_neurons_new(&p, N, NULL);
            CU_ASSERT_PTR_NOT_NULL_FATAL(pop);
            float *state = malloc(st_snn_neurons_state_len(pop) * sizeof *state);
            st_snn_neurons_init_state(pop, state);
            float *v = st_snn_neurons_var(pop, state, ST_SNN_VAR_V);
            float *cur = st_snn_neurons_var(pop, state, ST_SNN_VAR_I);
            float *ext = st_snn_neurons_var(pop, state, ST_SNN_VAR_B);
            if (!ext)
                ext = st_snn_neurons_var(pop, state, ST_SNN_VAR_A);
            /* initial state as documented */
            for (size_t k = 0; k < N; k++) {
                float v0 = m == ST_SNN_IAF ? p.v_reset : m == ST_SNN_INTEGRATOR ? 0 : p.v_leak;
                CU_ASSERT_EQUAL(v[k], v0);
                if (m == ST_SNN_LSNN)
                    CU_ASSERT_EQUAL(ext[k], p.v_th);
            }
            float x[8], out[8];
            uint32_t fired[8];
            int bad = 0, spikes = 0;
            const float sc = input_scale((st_snn_model)m);
            for (size_t t = 0; t < T; t++) {
                ref_state rs[8];
                for (size_t k = 0; k < N; k++) {
                    x[k] = rng_uniform(-0.2f * sc, sc);
                    rs[k] = (ref_state){v[k], cur ? cur[k] : 0, ext ? ext[k] : 0};
                }
                size_t nf = st_snn_neurons_step(pop, state, x, out, fired);
                size_t f = 0;
                for (size_t k = 0; k < N; k++) {
                    double margin;
                    bool z = ref_step(&p, &rs[k], x[k], &margin);
                    const bool fz = st_snn_model_spikes((st_snn_model)m) && out[k] == 1.0f;
                    if (fz) {
                        bad += f >= nf || fired[f] != k;
                        f++;
                    }
                    if (fabs(margin) < 1e-4)
                        continue; /* a tie within rounding: either answer is right */
                    bad += z != fz;
                    const double tol = 1e-5 * (1 + fabs(rs[k].v));
                    bad += fabs(v[k] - rs[k].v) > tol;
                    if (cur)
                        bad += fabs(cur[k] - rs[k].i) > 1e-5 * (1 + fabs(rs[k].i));
                    if (ext)
                        bad += fabs(ext[k] - rs[k].b) > 1e-5 * (1 + fabs(rs[k].b));
                    if (!st_snn_model_spikes((st_snn_model)m))
                        bad += out[k] != v[k];
                    spikes += z;
                }
                bad += f != nf;
            }
            if (bad)
                fprintf(stderr, "\n  %s variant %d: %d mismatches\n",
                        st_snn_model_name((st_snn_model)m), variant, bad);
            CU_ASSERT_EQUAL(bad, 0);
            if (st_snn_model_spikes((st_snn_model)m))
                CU_ASSERT(spikes > 0);
            free(state);
            st_snn_neurons_destroy(&pop);
        }
    }
}

/* Per-neuron parameters give what one population per neuron gives. */
static void test_per_neuron_params(void)
{
    rng_seed(7);
    enum { N = 5, T = 200 };
    st_snn_neuron_params p[N];
    for (int k = 0; k < N; k++) {
        p[k] = random_params(ST_SNN_ADEX, 1);
        p[k].dt = 1e-3;
    }
    st_snn_neurons *all = st_snn_neurons_new_each(p, N, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(all);
    CU_ASSERT_EQUAL(st_snn_neurons_params(all, 3)->tau_mem_inv, p[3].tau_mem_inv);
    st_snn_neurons *one[N];
    float *s1[N], s_all[3 * N];
    st_snn_neurons_init_state(all, s_all);
    for (int k = 0; k < N; k++) {
        one[k] = st_snn_neurons_new(&p[k], 1, NULL);
        s1[k] = malloc(3 * sizeof(float));
        st_snn_neurons_init_state(one[k], s1[k]);
    }
    int bad = 0;
    for (int t = 0; t < T; t++) {
        float x[N], out[N], o1;
        uint32_t fired[N], f1;
        for (int k = 0; k < N; k++)
            x[k] = rng_uniform(0, 3);
        st_snn_neurons_step(all, s_all, x, out, fired);
        for (int k = 0; k < N; k++) {
            st_snn_neurons_step(one[k], s1[k], &x[k], &o1, &f1);
            bad += o1 != out[k] || s1[k][0] != s_all[k] || s1[k][1] != s_all[N + k] ||
                   s1[k][2] != s_all[2 * N + k];
        }
    }
    CU_ASSERT_EQUAL(bad, 0);
    /* different models in one population are refused */
    p[2].model = ST_SNN_LIF;
    int err = 0;
    CU_ASSERT_PTR_NULL(st_snn_neurons_new_each(p, N, &err));
    CU_ASSERT_EQUAL(err, ST_ERR_INVALID);
    for (int k = 0; k < N; k++) {
        st_snn_neurons_destroy(&one[k]);
        free(s1[k]);
    }
    st_snn_neurons_destroy(&all);
    CU_ASSERT_PTR_NULL(all);
}

/* Norse's LIF is NIR's CubaLIF with w_in = 1 / (dt tau_syn_inv), r = 1. */
static void test_lif_is_cubalif(void)
{
    rng_seed(99);
    st_snn_neuron_params a = st_snn_neuron_default_params(ST_SNN_LIF);
    st_snn_neuron_params b = st_snn_neuron_default_params(ST_SNN_CUBALIF);
    a.tau_syn_inv = b.tau_syn_inv = 250;
    a.tau_mem_inv = b.tau_mem_inv = 80;
    b.w_in = (float)(1.0 / (b.dt * b.tau_syn_inv));
    st_snn_neurons *pa = st_snn_neurons_new(&a, 4, NULL), *pb = st_snn_neurons_new(&b, 4, NULL);
    float sa[8], sb[8], oa[4], ob[4];
    uint32_t fa[4], fb[4];
    st_snn_neurons_init_state(pa, sa);
    st_snn_neurons_init_state(pb, sb);
    int bad = 0, spikes = 0;
    for (int t = 0; t < 300; t++) {
        float x[4];
        for (int k = 0; k < 4; k++)
            x[k] = rng_uniform(0, 2.5f);
        size_t na = st_snn_neurons_step(pa, sa, x, oa, fa);
        size_t nb = st_snn_neurons_step(pb, sb, x, ob, fb);
        bad += na != nb;
        spikes += (int)na;
        for (int k = 0; k < 4; k++)
            bad += oa[k] != ob[k] || fabsf(sa[k] - sb[k]) > 1e-5f ||
                   /* Norse reports the decayed current, cubalif the jumped one */
                   fabsf(sa[4 + k] - (sb[4 + k] - (float)(a.dt * a.tau_syn_inv) * sb[4 + k])) >
                       1e-5f;
    }
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT(spikes > 10);
    st_snn_neurons_destroy(&pa);
    st_snn_neurons_destroy(&pb);
}

static void test_reset_modes(void)
{
    /* lifbox with a = dt tau_mem_inv = 0.5: v_d = v + 0.5 (x - v) */
    st_snn_neuron_params p = st_snn_neuron_default_params(ST_SNN_LIFBOX);
    p.tau_mem_inv = 500;
    p.v_th = 1.0f;
    p.v_reset = -0.25f;
    float v, out;
    uint32_t fired;
    /* x = 4: v_d = 2 > 1 spikes */
    p.reset = ST_SNN_RESET_VALUE;
    st_snn_neurons *pop = st_snn_neurons_new(&p, 1, NULL);
    st_snn_neurons_init_state(pop, &v);
    CU_ASSERT_EQUAL(st_snn_neurons_step(pop, &v, &(float){4}, &out, &fired), 1);
    CU_ASSERT_EQUAL(out, 1.0f);
    CU_ASSERT_EQUAL(fired, 0);
    CU_ASSERT_EQUAL(v, -0.25f);
    st_snn_neurons_destroy(&pop);

    p.reset = ST_SNN_RESET_SUBTRACT;
    pop = st_snn_neurons_new(&p, 1, NULL);
    st_snn_neurons_init_state(pop, &v);
    st_snn_neurons_step(pop, &v, &(float){4}, &out, &fired);
    CU_ASSERT_EQUAL(out, 1.0f);
    CU_ASSERT_EQUAL(v, 1.0f); /* 2 - v_th */
    st_snn_neurons_destroy(&pop);

    p.reset = ST_SNN_RESET_NONE;
    pop = st_snn_neurons_new(&p, 1, NULL);
    st_snn_neurons_init_state(pop, &v);
    st_snn_neurons_step(pop, &v, &(float){4}, &out, &fired);
    CU_ASSERT_EQUAL(out, 1.0f);
    CU_ASSERT_EQUAL(v, 2.0f);
    st_snn_neurons_step(pop, &v, &(float){4}, &out, &fired);
    CU_ASSERT_EQUAL(out, 1.0f); /* stays above threshold, spikes again */
    CU_ASSERT_EQUAL(v, 3.0f);
    st_snn_neurons_destroy(&pop);

    /* lsnn subtracts the adapted threshold it crossed */
    st_snn_neuron_params q = st_snn_neuron_default_params(ST_SNN_LSNN);
    q.reset = ST_SNN_RESET_SUBTRACT;
    q.tau_adapt_inv = 0;
    q.tau_syn_inv = 0;
    q.tau_mem_inv = 1000; /* a = 1: v_d = v_leak + i */
    pop = st_snn_neurons_new(&q, 1, NULL);
    float s[3];
    st_snn_neurons_init_state(pop, s);
    st_snn_neurons_step(pop, s, &(float){3}, &out, &fired); /* charges i = 3 */
    CU_ASSERT_EQUAL(out, 0.0f);
    st_snn_neurons_step(pop, s, &(float){0}, &out, &fired); /* v_d = 3 > b = 1 */
    CU_ASSERT_EQUAL(out, 1.0f);
    CU_ASSERT_EQUAL(s[0], 2.0f);
    CU_ASSERT_EQUAL(s[2], 1.0f + q.beta);
    st_snn_neurons_destroy(&pop);
}

/* Norse spikes on v - v_th > 0: a membrane exactly at threshold does not. */
static void test_strict_threshold(void)
{
    float v, out;
    uint32_t fired;
    st_snn_neuron_params p = st_snn_neuron_default_params(ST_SNN_IAF);
    st_snn_neurons *pop = st_snn_neurons_new(&p, 1, NULL);
    st_snn_neurons_init_state(pop, &v);
    CU_ASSERT_EQUAL(st_snn_neurons_step(pop, &v, &(float){1.0f}, &out, &fired), 0);
    CU_ASSERT_EQUAL(out, 0.0f);
    CU_ASSERT_EQUAL(v, 1.0f);
    CU_ASSERT_EQUAL(st_snn_neurons_step(pop, &v, &(float){0x1p-23f}, &out, &fired), 1);
    CU_ASSERT_EQUAL(v, 0.0f);
    st_snn_neurons_destroy(&pop);

    /* the same with a leaky model whose Euler step lands on v_th exactly */
    p = st_snn_neuron_default_params(ST_SNN_LIFBOX);
    p.tau_mem_inv = 1000; /* a = 1: v_d = x + v_leak */
    p.v_th = 0.75f;
    pop = st_snn_neurons_new(&p, 1, NULL);
    st_snn_neurons_init_state(pop, &v);
    CU_ASSERT_EQUAL(st_snn_neurons_step(pop, &v, &(float){0.75f}, &out, &fired), 0);
    CU_ASSERT_EQUAL(v, 0.75f);
    CU_ASSERT_EQUAL(st_snn_neurons_step(pop, &v, &(float){0.76f}, &out, &fired), 1);
    st_snn_neurons_destroy(&pop);

    /* and a threshold node in a network */
    st_snn_net *net = st_snn_net_new(NULL);
    int in = st_snn_net_add_input(net, "in", 3);
    int th = st_snn_net_add_threshold(net, "th", 3, (const float[]){0.5f, 0.5f, 0.5f});
    CU_ASSERT_EQUAL(st_snn_net_connect(net, in, th), ST_OK);
    CU_ASSERT_EQUAL(st_snn_net_finish(net), ST_OK);
    st_snn_state *st = st_snn_state_new(net, NULL);
    st_snn_step(net, st, (const float[]){0.5f, 0.5001f, -1});
    size_t nf;
    const uint32_t *f = st_snn_state_spikes(st, th, &nf);
    CU_ASSERT_EQUAL_FATAL(nf, 1);
    CU_ASSERT_EQUAL(f[0], 1);
    st_snn_state_destroy(&st);
    st_snn_net_destroy(&net);
}

static void test_params_api(void)
{
    st_snn_model m;
    CU_ASSERT_EQUAL(st_snn_model_from_name("lsnn", &m), ST_OK);
    CU_ASSERT_EQUAL(m, ST_SNN_LSNN);
    CU_ASSERT_EQUAL(st_snn_model_from_name("hodgkin", &m), ST_ERR_NOT_FOUND);
    CU_ASSERT_PTR_NOT_NULL(strstr(st_errmsg(), "lif, li, lifbox"));
    for (int k = 0; k < ST_SNN_N_MODELS; k++) {
        CU_ASSERT_EQUAL(st_snn_model_from_name(st_snn_model_name((st_snn_model)k), &m), ST_OK);
        CU_ASSERT_EQUAL((int)m, k);
    }
    st_snn_neuron_params p = st_snn_neuron_default_params(ST_SNN_LSNN);
    CU_ASSERT_EQUAL(p.dt, 1e-3);
    CU_ASSERT_EQUAL(p.tau_syn_inv, 200.0f);
    CU_ASSERT_EQUAL(p.tau_mem_inv, 100.0f);
    CU_ASSERT_EQUAL(p.tau_adapt_inv, 1.0f / 800);
    CU_ASSERT_EQUAL(p.beta, 1.8f);
    CU_ASSERT_EQUAL(st_snn_neuron_set_param(&p, "beta", "0.25"), ST_OK);
    CU_ASSERT_EQUAL(p.beta, 0.25f);
    CU_ASSERT_EQUAL(st_snn_neuron_set_param(&p, "reset", "subtract"), ST_OK);
    CU_ASSERT_EQUAL(p.reset, ST_SNN_RESET_SUBTRACT);
    double d;
    CU_ASSERT_EQUAL(st_snn_neuron_get_param(&p, "tau_adapt_inv", &d), ST_OK);
    CU_ASSERT_DOUBLE_EQUAL(d, 1.0 / 800, 1e-9);
    /* a name of another model: refused, listing this model's names */
    CU_ASSERT_EQUAL(st_snn_neuron_set_param(&p, "delta_T", "1"), ST_ERR_NOT_FOUND);
    CU_ASSERT_PTR_NOT_NULL(strstr(st_errmsg(), "tau_adapt_inv"));
    CU_ASSERT_PTR_NOT_NULL(strstr(st_errmsg(), "'delta_T'"));
    CU_ASSERT_EQUAL(st_snn_neuron_set_param(&p, "beta", "lots"), ST_ERR_INVALID);
    CU_ASSERT_EQUAL(st_snn_neuron_set_param(&p, "beta", "inf"), ST_ERR_INVALID);
    CU_ASSERT_EQUAL(st_snn_neuron_set_param(&p, "reset", "sometimes"), ST_ERR_INVALID);
    /* ranges */
    p.dt = 0;
    CU_ASSERT_EQUAL(st_snn_neuron_params_check(&p), ST_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(st_errmsg(), "dt"));
    p.dt = 1e-3;
    p.tau_mem_inv = -1;
    int err = 0;
    CU_ASSERT_PTR_NULL(st_snn_neurons_new(&p, 4, &err));
    CU_ASSERT_EQUAL(err, ST_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(st_errmsg(), "tau_mem_inv"));
    st_snn_neuron_params q = st_snn_neuron_default_params(ST_SNN_ADEX);
    q.delta_T = 0;
    CU_ASSERT_EQUAL(st_snn_neuron_params_check(&q), ST_ERR_INVALID);
    q = st_snn_neuron_default_params(ST_SNN_LIF);
    CU_ASSERT_PTR_NULL(st_snn_neurons_new(&q, 0, &err));
    CU_ASSERT_EQUAL(err, ST_ERR_INVALID);
    st_snn_neurons_destroy(NULL);
}

/* ---- the trace command ---------------------------------------------------------- */

/* Runs a shell command; returns its exit status, its stdout+stderr in *out
   (caller frees). */
static int run_shell(const char *cmd, char **out)
{
    char full[8192];
    snprintf(full, sizeof full, "%s 2>&1", cmd);
    FILE *f = popen(full, "r");
    if (!f)
        return -1;
    size_t cap = 1 << 16, len = 0, n;
    char *buf = malloc(cap);
    while ((n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (len + 1 == cap)
            buf = realloc(buf, cap *= 2);
    }
    buf[len] = '\0';
    int status = pclose(f);
    *out = buf;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void test_trace_command(void)
{
    if (!file_exists(st_test_cli())) {
        st_test_skip("snn:trace_command", "the spiketalk binary is not built ($ST_CLI or "
                                          "build/spiketalk)");
        return;
    }
    char cmd[8192], *out;
    char in_path[4096], out_path[4096];
    st_test_tmpfile(in_path, sizeof in_path, "snn_in.csv");
    st_test_tmpfile(out_path, sizeof out_path, "snn_out.csv");
    /* a small case computed by hand: lifbox, a = 0.5, two neurons */
    FILE *f = fopen(in_path, "w");
    fprintf(f, "x0,x1\n4,0.5\n4,0.5\n");
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s snn trace lifbox tau_mem_inv=250 --dt 2e-3 reset=subtract < %s",
             st_test_cli(), in_path);
    CU_ASSERT_EQUAL(run_shell(cmd, &out), 0);
    CU_ASSERT_STRING_EQUAL(out, "t,z0,z1,v0,v1\n0,1,0,1,0.25\n1,1,0,1.5,0.375\n");
    free(out);
    /* bad CSV: line and column named */
    f = fopen(in_path, "w");
    fprintf(f, "1,2\n3,abc\n");
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s snn trace lif < %s", st_test_cli(), in_path);
    CU_ASSERT_EQUAL(run_shell(cmd, &out), 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "line 2, column 2: 'abc'"));
    free(out);
    /* unknown parameter: the valid ones listed */
    snprintf(cmd, sizeof cmd, "%s snn trace iaf tau_mem_inv=3 < %s", st_test_cli(), in_path);
    CU_ASSERT_EQUAL(run_shell(cmd, &out), 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "v_th, v_reset, reset"));
    free(out);
    snprintf(cmd, sizeof cmd, "%s snn trace --help", st_test_cli());
    CU_ASSERT_EQUAL(run_shell(cmd, &out), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "example"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "cubalif"));
    free(out);
    /* Norse's own traces, byte for byte (9 significant digits) */
    const char *data = st_test_shared_data();
    if (!data) {
        st_test_skip("snn:trace_command", "no shared data: Norse trace files not compared");
        return;
    }
    const char *models[] = {"lif", "li", "lifbox", "libox", "iaf", "lsnn", "adex"};
    for (size_t m = 0; m < sizeof models / sizeof *models; m++) {
        char ref_path[4096];
        snprintf(ref_path, sizeof ref_path, "%s/snn/norse/example_%s_out.csv", data, models[m]);
        snprintf(cmd, sizeof cmd, "%s snn trace %s < %s/snn/norse/example_input.csv > %s",
                 st_test_cli(), models[m], data, out_path);
        CU_ASSERT_EQUAL(run_shell(cmd, &out), 0);
        free(out);
        char *got = st_test_read_file(out_path), *want = st_test_read_file(ref_path);
        CU_ASSERT_PTR_NOT_NULL(got);
        if (got && want) {
            /* the comparison that matters is numeric (within 1e-5, spikes
               equal, done by norse_traces); equal text is the stronger,
               expected outcome */
            size_t gr, gc, wr, wc;
            float *g = read_csv(out_path, &gr, &gc), *w = read_csv(ref_path, &wr, &wc);
            CU_ASSERT_EQUAL(gr, wr);
            CU_ASSERT_EQUAL(gc, wc);
            double worst = 0;
            for (size_t k = 0; gr == wr && gc == wc && k < gr * gc; k++)
                worst = fmax(worst, fabs(g[k] - w[k]));
            CU_ASSERT(worst <= 1e-5);
            CU_ASSERT_EQUAL(strncmp(got, want, strchr(want, '\n') - want), 0); /* header */
            free(g);
            free(w);
        }
        free(got);
        free(want);
    }
}

/* ---- networks: a naive reference ---------------------------------------------- */

/* y = bias + W x in the plain row-major order. */
static void naive_dense(const float *w, const float *bias, size_t n_out, size_t n_in,
                        const float *x, float *y)
{
    for (size_t o = 0; o < n_out; o++) {
        float acc = bias ? bias[o] : 0.0f;
        for (size_t i = 0; i < n_in; i++)
            acc += w[o * n_in + i] * x[i];
        y[o] = acc;
    }
}

static void random_matrix(float *w, size_t n, float scale, float density)
{
    for (size_t k = 0; k < n; k++) {
        float r = rng_uniform(0, 1);
        w[k] = r < density ? rng_uniform(-scale, scale) : 0.0f;
    }
}

static void random_spikes(float *x, size_t n, float rate)
{
    for (size_t k = 0; k < n; k++)
        x[k] = rng_uniform(0, 1) < rate ? 1.0f : 0.0f;
}

/* in -> dense -> lif -> dense -> lsnn -> out, with the input spikes on some
   steps and real values on others. The event path, the forced dense path
   and a naive reference must agree exactly; the counters must count what
   was done. */
static void test_net_dense_paths(void)
{
    rng_seed(31);
    enum { NI = 40, NH = 64, NO = 24, T = 120 };
    float *w1 = malloc(NH * NI * sizeof *w1), *w2 = malloc(NO * NH * sizeof *w2);
    float b1[NH], b2[NO];
    random_matrix(w1, NH * NI, 1.5f, 1.0f);
    random_matrix(w2, NO * NH, 2.0f, 1.0f);
    random_matrix(b1, NH, 0.2f, 1.0f);
    random_matrix(b2, NO, 0.2f, 1.0f);
    st_snn_neuron_params lif = st_snn_neuron_default_params(ST_SNN_LIF);
    lif.tau_mem_inv = 150;
    st_snn_neuron_params lsnn = st_snn_neuron_default_params(ST_SNN_LSNN);
    lsnn.beta = 0.3f;

    st_snn_net *net = st_snn_net_new(NULL);
    int in = st_snn_net_add_input(net, "in", NI);
    int d1 = st_snn_net_add_dense(net, "fc1", NH, NI, w1, b1);
    int p1 = st_snn_net_add_neurons(net, "lif1", &lif, NH);
    int d2 = st_snn_net_add_dense(net, "fc2", NO, NH, w2, b2);
    int p2 = st_snn_net_add_neurons(net, "lsnn2", &lsnn, NO);
    int out = st_snn_net_add_output(net, "out", NO);
    CU_ASSERT(in >= 0 && d1 >= 0 && p1 >= 0 && d2 >= 0 && p2 >= 0 && out >= 0);
    /* connected out of order on purpose: the order comes from the graph */
    CU_ASSERT_EQUAL(st_snn_net_connect(net, p2, out), ST_OK);
    CU_ASSERT_EQUAL(st_snn_net_connect(net, d2, p2), ST_OK);
    CU_ASSERT_EQUAL(st_snn_net_connect(net, p1, d2), ST_OK);
    CU_ASSERT_EQUAL(st_snn_net_connect(net, d1, p1), ST_OK);
    CU_ASSERT_EQUAL(st_snn_net_connect(net, in, d1), ST_OK);
    CU_ASSERT_EQUAL_FATAL(st_snn_net_finish(net), ST_OK);
    CU_ASSERT_EQUAL(st_snn_net_find(net, "fc2"), d2);
    CU_ASSERT_EQUAL(st_snn_net_find(net, "nope"), ST_ERR_NOT_FOUND);
    CU_ASSERT_EQUAL(st_snn_net_input_len(net), NI);

    st_snn_state *ev = st_snn_state_new(net, NULL), *dn = st_snn_state_new(net, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ev);
    CU_ASSERT_PTR_NOT_NULL_FATAL(dn);
    st_snn_state_set_path(dn, ST_SNN_PATH_DENSE);

    /* the reference: the same populations stepped by hand */
    st_snn_neurons *r1 = st_snn_neurons_new(&lif, NH, NULL);
    st_snn_neurons *r2 = st_snn_neurons_new(&lsnn, NO, NULL);
    float rs1[2 * NH], rs2[3 * NO], h1[NH], z1[NH], h2[NO], z2[NO];
    uint32_t f1[NH], f2[NO];
    st_snn_neurons_init_state(r1, rs1);
    st_snn_neurons_init_state(r2, rs2);

    uint64_t want_syn = 0, want_mac = 0, want_spk = 0;
    int bad = 0, spikes_out = 0;
    for (int t = 0; t < T; t++) {
        float x[NI];
        const bool spiking_input = t % 3 != 0;
        if (spiking_input)
            random_spikes(x, NI, 0.2f);
        else
            for (int k = 0; k < NI; k++)
                x[k] = rng_uniform(-0.5f, 1.0f);
        CU_ASSERT_EQUAL(st_snn_step(net, ev, x), ST_OK);
        CU_ASSERT_EQUAL(st_snn_step(net, dn, x), ST_OK);
        naive_dense(w1, b1, NH, NI, x, h1);
        size_t n1 = st_snn_neurons_step(r1, rs1, h1, z1, f1);
        naive_dense(w2, b2, NO, NH, z1, h2);
        size_t n2 = st_snn_neurons_step(r2, rs2, h2, z2, f2);
        size_t nin = 0;
        for (int k = 0; k < NI; k++)
            nin += x[k] == 1.0f;
        want_syn += (spiking_input ? nin * NH : 0) + n1 * NO;
        want_mac += spiking_input ? 0 : (uint64_t)NI * NH;
        want_spk += n1 + n2;
        spikes_out += (int)n2;
        const float *oe = st_snn_state_output(ev, out, NULL);
        const float *od = st_snn_state_output(dn, out, NULL);
        const float *he = st_snn_state_output(ev, d2, NULL);
        const float *hd = st_snn_state_output(dn, d2, NULL);
        bad += memcmp(oe, z2, sizeof z2) != 0;
        bad += memcmp(od, z2, sizeof z2) != 0;
        bad += memcmp(he, h2, sizeof h2) != 0;
        bad += memcmp(hd, h2, sizeof h2) != 0;
        size_t nf;
        const uint32_t *sp = st_snn_state_spikes(ev, p1, &nf);
        bad += sp == NULL || nf != n1 || (n1 && memcmp(sp, f1, n1 * sizeof *f1));
        sp = st_snn_state_spikes(ev, out, &nf); /* an output of spikes lists them too */
        bad += sp == NULL || nf != n2;
        bad += st_snn_state_spikes(ev, d1, &nf) != NULL; /* currents are not spikes */
    }
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT(spikes_out > 0);
    CU_ASSERT(want_syn > 0);

    st_snn_counters c;
    CU_ASSERT_EQUAL(st_snn_state_counters(ev, -1, &c), ST_OK);
    CU_ASSERT_EQUAL(c.steps, T);
    CU_ASSERT_EQUAL(c.neuron_updates, (uint64_t)T * (NH + NO));
    CU_ASSERT_EQUAL(c.syn_ops, want_syn);
    CU_ASSERT_EQUAL(c.dense_macs, want_mac);
    CU_ASSERT_EQUAL(c.spikes, want_spk);
    CU_ASSERT_EQUAL(c.spike_slots, (uint64_t)T * (NH + NO));
    CU_ASSERT_DOUBLE_EQUAL(c.spike_rate, (double)want_spk / (T * (NH + NO)), 1e-12);
    CU_ASSERT_EQUAL(st_snn_state_counters(dn, -1, &c), ST_OK);
    CU_ASSERT_EQUAL(c.syn_ops, 0);
    CU_ASSERT_EQUAL(c.dense_macs, (uint64_t)T * (NI * NH + NH * NO));
    CU_ASSERT_EQUAL(st_snn_state_counters(ev, p1, &c), ST_OK);
    CU_ASSERT_EQUAL(c.neuron_updates, (uint64_t)T * NH);
    CU_ASSERT_EQUAL(c.syn_ops, 0);
    CU_ASSERT_EQUAL(st_snn_state_counters(ev, 99, &c), ST_ERR_INVALID);
    st_snn_state_clear_counters(ev);
    CU_ASSERT_EQUAL(st_snn_state_counters(ev, -1, &c), ST_OK);
    CU_ASSERT_EQUAL(c.steps + c.syn_ops + c.spikes, 0);

    st_snn_node_info info;
    CU_ASSERT_EQUAL(st_snn_net_node_info(net, d1, &info), ST_OK);
    CU_ASSERT_STRING_EQUAL(info.name, "fc1");
    CU_ASSERT_EQUAL(info.kind, ST_SNN_NODE_DENSE);
    CU_ASSERT_EQUAL(info.n_weights, NH * NI);
    CU_ASSERT(info.order > 0);
    CU_ASSERT_EQUAL(st_snn_net_node_info(net, p2, &info), ST_OK);
    CU_ASSERT_EQUAL(info.model, ST_SNN_LSNN);
    CU_ASSERT_PTR_NOT_NULL(st_snn_net_neurons(net, p2));
    CU_ASSERT_PTR_NULL(st_snn_net_neurons(net, d2));

    st_snn_neurons_destroy(&r1);
    st_snn_neurons_destroy(&r2);
    st_snn_state_destroy(&ev);
    st_snn_state_destroy(&dn);
    st_snn_net_destroy(&net);
    CU_ASSERT_PTR_NULL(net);
    free(w1);
    free(w2);
}

/* A sparse layer equals the dense layer with the same entries. */
static void test_net_sparse(void)
{
    rng_seed(5);
    enum { NI = 50, NO = 30, T = 60 };
    float w[NO * NI], bias[NO];
    random_matrix(w, NO * NI, 1.0f, 0.15f);
    random_matrix(bias, NO, 0.1f, 1.0f);
    uint32_t row_ptr[NO + 1], col[NO * NI];
    float val[NO * NI];
    size_t nnz = 0;
    row_ptr[0] = 0;
    for (int o = 0; o < NO; o++) {
        for (int i = 0; i < NI; i++)
            if (w[o * NI + i] != 0.0f) {
                col[nnz] = (uint32_t)i;
                val[nnz++] = w[o * NI + i];
            }
        row_ptr[o + 1] = (uint32_t)nnz;
    }
    st_snn_net *net = st_snn_net_new(NULL);
    int in = st_snn_net_add_input(net, "in", NI);
    int sp = st_snn_net_add_sparse(net, "sp", NO, NI, row_ptr, col, val, bias);
    CU_ASSERT_EQUAL(st_snn_net_connect(net, in, sp), ST_OK);
    CU_ASSERT_EQUAL_FATAL(st_snn_net_finish(net), ST_OK);
    st_snn_state *ev = st_snn_state_new(net, NULL), *dn = st_snn_state_new(net, NULL);
    st_snn_state_set_path(dn, ST_SNN_PATH_DENSE);
    int bad = 0;
    uint64_t want_syn = 0;
    for (int t = 0; t < T; t++) {
        float x[NI], y[NO];
        if (t % 2)
            random_spikes(x, NI, 0.3f);
        else
            for (int k = 0; k < NI; k++)
                x[k] = rng_uniform(-1, 1);
        st_snn_step(net, ev, x);
        st_snn_step(net, dn, x);
        naive_dense(w, bias, NO, NI, x, y);
        bad += memcmp(st_snn_state_output(ev, sp, NULL), y, sizeof y) != 0;
        bad += memcmp(st_snn_state_output(dn, sp, NULL), y, sizeof y) != 0;
        if (t % 2)
            for (int k = 0; k < NI; k++)
                for (int o = 0; o < NO; o++)
                    want_syn += x[k] == 1.0f && w[o * NI + k] != 0.0f;
    }
    CU_ASSERT_EQUAL(bad, 0);
    st_snn_counters c;
    st_snn_state_counters(ev, sp, &c);
    CU_ASSERT_EQUAL(c.syn_ops, want_syn);
    CU_ASSERT_EQUAL(c.dense_macs, (uint64_t)(T / 2) * nnz);
    /* malformed CSR is refused */
    uint32_t bad_col[1] = {NI};
    uint32_t bad_ptr[2] = {0, 1};
    st_snn_net *n2 = st_snn_net_new(NULL);
    CU_ASSERT_EQUAL(st_snn_net_add_sparse(n2, "x", 1, NI, bad_ptr, bad_col, val, NULL),
                    ST_ERR_INVALID);
    st_snn_net_destroy(&n2);
    st_snn_state_destroy(&ev);
    st_snn_state_destroy(&dn);
    st_snn_net_destroy(&net);
}

/* The convolution written as its definition. */
static void naive_conv(const st_snn_conv_shape *c, const float *w, const float *bias,
                       const float *x, float *y)
{
    const uint32_t oh = st_snn_conv_out_h(c), ow = st_snn_conv_out_w(c);
    const uint32_t cig = c->in_channels / c->groups, cog = c->out_channels / c->groups;
    for (uint32_t co = 0; co < c->out_channels; co++)
        for (uint32_t oy = 0; oy < oh; oy++)
            for (uint32_t ox = 0; ox < ow; ox++) {
                float acc = bias ? bias[co] : 0.0f;
                for (uint32_t cl = 0; cl < cig; cl++)
                    for (uint32_t ky = 0; ky < c->kernel_h; ky++)
                        for (uint32_t kx = 0; kx < c->kernel_w; kx++) {
                            long iy = (long)(oy * c->stride_h + ky * c->dilation_h) - c->padding_h;
                            long ix = (long)(ox * c->stride_w + kx * c->dilation_w) - c->padding_w;
                            if (iy < 0 || iy >= c->height || ix < 0 || ix >= c->width)
                                continue;
                            uint32_t ci = (co / cog) * cig + cl;
                            acc += w[((co * cig + cl) * c->kernel_h + ky) * c->kernel_w + kx] *
                                   x[(ci * c->height + iy) * c->width + ix];
                        }
                y[(co * oh + oy) * ow + ox] = acc;
            }
}

static void check_conv(const st_snn_conv_shape *c, bool with_bias, int *bad)
{
    const size_t nw = (size_t)c->out_channels * (c->in_channels / c->groups) * c->kernel_h *
                      c->kernel_w;
    const size_t ni = (size_t)c->in_channels * c->height * c->width;
    const size_t no = (size_t)c->out_channels * st_snn_conv_out_h(c) * st_snn_conv_out_w(c);
    float *w = malloc(nw * sizeof *w), *bias = malloc(c->out_channels * sizeof *bias);
    float *x = malloc(ni * sizeof *x), *y = malloc(no * sizeof *y);
    random_matrix(w, nw, 1.0f, 1.0f);
    random_matrix(bias, c->out_channels, 0.5f, 1.0f);
    st_snn_net *net = st_snn_net_new(NULL);
    int in = st_snn_net_add_input(net, "in", ni);
    int cv = st_snn_net_add_conv(net, "conv", c, w, with_bias ? bias : NULL);
    CU_ASSERT_FATAL(cv >= 0);
    st_snn_net_connect(net, in, cv);
    CU_ASSERT_EQUAL_FATAL(st_snn_net_finish(net), ST_OK);
    st_snn_state *ev = st_snn_state_new(net, NULL), *dn = st_snn_state_new(net, NULL);
    st_snn_state_set_path(dn, ST_SNN_PATH_DENSE);
    uint64_t spikes_in = 0;
    for (int t = 0; t < 6; t++) {
        if (t % 2)
            random_spikes(x, ni, 0.25f);
        else
            for (size_t k = 0; k < ni; k++)
                x[k] = rng_uniform(-1, 1);
        st_snn_step(net, ev, x);
        st_snn_step(net, dn, x);
        naive_conv(c, w, with_bias ? bias : NULL, x, y);
        *bad += memcmp(st_snn_state_output(ev, cv, NULL), y, no * sizeof *y) != 0;
        *bad += memcmp(st_snn_state_output(dn, cv, NULL), y, no * sizeof *y) != 0;
        if (t % 2)
            for (size_t k = 0; k < ni; k++)
                spikes_in += x[k] == 1.0f;
    }
    st_snn_counters ce, cd;
    st_snn_state_counters(ev, cv, &ce);
    st_snn_state_counters(dn, cv, &cd);
    CU_ASSERT(ce.syn_ops > 0 || spikes_in == 0);
    CU_ASSERT(ce.dense_macs * 2 == cd.dense_macs); /* half the steps were real-valued */
    st_snn_state_destroy(&ev);
    st_snn_state_destroy(&dn);
    st_snn_net_destroy(&net);
    free(w);
    free(bias);
    free(x);
    free(y);
}

static void test_net_conv(void)
{
    rng_seed(77);
    int bad = 0;
    /* conv1d over frequency bins: 4 feature maps of 20 bins -> 6 maps */
    st_snn_conv_shape c = st_snn_conv_1d(4, 6, 20, 5);
    CU_ASSERT_EQUAL(st_snn_conv_out_w(&c), 16);
    check_conv(&c, true, &bad);
    c.stride_w = 2;
    c.padding_w = 3;
    c.dilation_w = 2;
    check_conv(&c, false, &bad);
    c = st_snn_conv_1d(6, 4, 17, 3);
    c.groups = 2;
    c.padding_w = 1;
    check_conv(&c, true, &bad);
    /* conv2d */
    st_snn_conv_shape c2 = {.in_channels = 2, .out_channels = 3, .groups = 1, .height = 7,
                            .width = 9, .kernel_h = 3, .kernel_w = 2, .stride_h = 2,
                            .stride_w = 1, .padding_h = 1, .padding_w = 0, .dilation_h = 1,
                            .dilation_w = 2};
    check_conv(&c2, true, &bad);
    CU_ASSERT_EQUAL(bad, 0);
    /* impossible geometry refused */
    st_snn_net *net = st_snn_net_new(NULL);
    st_snn_conv_shape big = st_snn_conv_1d(1, 1, 3, 5);
    float w[5] = {0};
    CU_ASSERT_EQUAL(st_snn_net_add_conv(net, "c", &big, w, NULL), ST_ERR_INVALID);
    /* pooling: 2 channels of 4x4, 2x2 sum and average */
    int in = st_snn_net_add_input(net, "in", 32);
    int sum = st_snn_net_add_pool2d(net, "sum", 2, 4, 4, 2, 2, 2, 2, 0, 0, false);
    int avg = st_snn_net_add_pool2d(net, "avg", 2, 4, 4, 2, 2, 2, 2, 0, 0, true);
    st_snn_net_connect(net, in, sum);
    st_snn_net_connect(net, in, avg);
    CU_ASSERT_EQUAL_FATAL(st_snn_net_finish(net), ST_OK);
    st_snn_state *st = st_snn_state_new(net, NULL);
    float x[32];
    for (int k = 0; k < 32; k++)
        x[k] = (float)k;
    st_snn_step(net, st, x);
    size_t n;
    const float *s = st_snn_state_output(st, sum, &n);
    CU_ASSERT_EQUAL(n, 8);
    CU_ASSERT_EQUAL(s[0], 0 + 1 + 4 + 5);
    CU_ASSERT_EQUAL(s[7], 26 + 27 + 30 + 31);
    CU_ASSERT_EQUAL(st_snn_state_output(st, avg, NULL)[7], (26 + 27 + 30 + 31) / 4.0f);
    st_snn_state_destroy(&st);
    st_snn_net_destroy(&net);
}

/* A recurrent LIF layer (lif -> w_rec -> lif): the recurrent input is the
   previous step's spikes. Also a scale node and a self loop. */
static void test_net_recurrent(void)
{
    rng_seed(11);
    enum { NI = 12, NH = 20, T = 150 };
    float w_in[NH * NI], w_rec[NH * NH];
    random_matrix(w_in, NH * NI, 1.2f, 1.0f);
    random_matrix(w_rec, NH * NH, 1.0f, 0.5f);
    st_snn_neuron_params p = st_snn_neuron_default_params(ST_SNN_CUBALIF);
    p.w_in = 6;
    p.reset = ST_SNN_RESET_SUBTRACT;
    st_snn_net *net = st_snn_net_new(NULL);
    int in = st_snn_net_add_input(net, "in", NI);
    int fc = st_snn_net_add_dense(net, "fc", NH, NI, w_in, NULL);
    int lif = st_snn_net_add_neurons(net, "lif", &p, NH);
    int rec = st_snn_net_add_dense(net, "rec", NH, NH, w_rec, NULL);
    int out = st_snn_net_add_output(net, "out", NH);
    st_snn_net_connect(net, in, fc);
    st_snn_net_connect(net, fc, lif);
    st_snn_net_connect(net, rec, lif);
    st_snn_net_connect(net, lif, rec);
    st_snn_net_connect(net, lif, out);
    CU_ASSERT_EQUAL_FATAL(st_snn_net_finish(net), ST_OK);
    st_snn_node_info a, b;
    st_snn_net_node_info(net, lif, &a);
    st_snn_net_node_info(net, rec, &b);
    CU_ASSERT(a.order < b.order); /* the cycle entered at lif: rec is read a step late */
    st_snn_state *st = st_snn_state_new(net, NULL);
    st_snn_neurons *ref = st_snn_neurons_new(&p, NH, NULL);
    float rs[2 * NH], z[NH] = {0}, zprev[NH] = {0}, h[NH], r[NH];
    uint32_t f[NH];
    st_snn_neurons_init_state(ref, rs);
    int bad = 0, spikes = 0;
    for (int t = 0; t < T; t++) {
        float x[NI];
        random_spikes(x, NI, 0.3f);
        st_snn_step(net, st, x);
        naive_dense(w_in, NULL, NH, NI, x, h);
        naive_dense(w_rec, NULL, NH, NH, zprev, r);
        for (int k = 0; k < NH; k++)
            h[k] += r[k];
        spikes += (int)st_snn_neurons_step(ref, rs, h, z, f);
        memcpy(zprev, z, sizeof z);
        bad += memcmp(st_snn_state_output(st, out, NULL), z, sizeof z) != 0;
    }
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT(spikes > 0);
    st_snn_neurons_destroy(&ref);
    st_snn_state_destroy(&st);
    st_snn_net_destroy(&net);

    /* a self loop through a scale node: y(t) = x(t) + 0.5 y(t-1) */
    net = st_snn_net_new(NULL);
    in = st_snn_net_add_input(net, "in", 1);
    int acc = st_snn_net_add_scale(net, "acc", 1, (const float[]){0.5f});
    int sum = st_snn_net_add_output(net, "sum", 1);
    st_snn_net_connect(net, in, sum);
    st_snn_net_connect(net, sum, acc);
    st_snn_net_connect(net, acc, sum);
    CU_ASSERT_EQUAL_FATAL(st_snn_net_finish(net), ST_OK);
    st = st_snn_state_new(net, NULL);
    float y = 0;
    for (int t = 0; t < 10; t++) {
        float x = (float)(t + 1);
        st_snn_step(net, st, &x);
        y = x + 0.5f * y;
        CU_ASSERT_EQUAL(st_snn_state_output(st, sum, NULL)[0], y);
    }
    st_snn_state_destroy(&st);
    st_snn_net_destroy(&net);
}

static void test_net_delay(void)
{
    enum { N = 4, T = 12 };
    const uint32_t d[N] = {0, 1, 3, 7};
    st_snn_net *net = st_snn_net_new(NULL);
    int in = st_snn_net_add_input(net, "in", N);
    int dl = st_snn_net_add_delay(net, "delay", N, d);
    int fc = st_snn_net_add_dense(net, "fc", 1, N, (const float[]){1, 10, 100, 1000}, NULL);
    st_snn_net_connect(net, in, dl);
    st_snn_net_connect(net, dl, fc);
    CU_ASSERT_EQUAL_FATAL(st_snn_net_finish(net), ST_OK);
    st_snn_state *st = st_snn_state_new(net, NULL);
    /* a single spike on every element at step 2 */
    for (int t = 0; t < T; t++) {
        float x[N] = {0};
        if (t == 2)
            x[0] = x[1] = x[2] = x[3] = 1;
        st_snn_step(net, st, x);
        const float *y = st_snn_state_output(st, dl, NULL);
        for (int k = 0; k < N; k++)
            CU_ASSERT_EQUAL(y[k], t == 2 + (int)d[k] ? 1.0f : 0.0f);
        float want = 0;
        for (int k = 0; k < N; k++)
            want += t == 2 + (int)d[k] ? (float)pow(10, k) : 0;
        CU_ASSERT_EQUAL(st_snn_state_output(st, fc, NULL)[0], want);
    }
    st_snn_counters c;
    st_snn_state_counters(st, fc, &c);
    CU_ASSERT_EQUAL(c.syn_ops, 4); /* the delayed spikes went the event path */
    CU_ASSERT_EQUAL(c.dense_macs, 0);
    st_snn_net *bad = st_snn_net_new(NULL);
    CU_ASSERT_EQUAL(st_snn_net_add_delay(bad, "d", 1, (const uint32_t[]){70000}), ST_ERR_INVALID);
    st_snn_net_destroy(&bad);
    st_snn_state_destroy(&st);
    st_snn_net_destroy(&net);
}

/* A net with a bit of everything, for the state tests. */
static st_snn_net *small_net(int *out_id)
{
    rng_seed(3);
    enum { NI = 16, NH = 32 };
    float w1[NH * NI], w2[NH * NH];
    random_matrix(w1, NH * NI, 1.5f, 1.0f);
    random_matrix(w2, NH * NH, 0.8f, 0.3f);
    st_snn_neuron_params p = st_snn_neuron_default_params(ST_SNN_ADEX);
    uint32_t d[NH];
    for (int k = 0; k < NH; k++)
        d[k] = (uint32_t)(k % 5);
    st_snn_net *net = st_snn_net_new(NULL);
    int in = st_snn_net_add_input(net, "in", NI);
    int fc = st_snn_net_add_dense(net, "fc", NH, NI, w1, NULL);
    int pop = st_snn_net_add_neurons(net, "adex", &p, NH);
    int dl = st_snn_net_add_delay(net, "delay", NH, d);
    int rec = st_snn_net_add_dense(net, "rec", NH, NH, w2, NULL);
    int out = st_snn_net_add_output(net, "out", NH);
    st_snn_net_connect(net, in, fc);
    st_snn_net_connect(net, fc, pop);
    st_snn_net_connect(net, pop, dl);
    st_snn_net_connect(net, dl, rec);
    st_snn_net_connect(net, rec, pop);
    st_snn_net_connect(net, pop, out);
    if (st_snn_net_finish(net) != ST_OK)
        st_snn_net_destroy(&net);
    *out_id = out;
    return net;
}

static void input_at(int t, float *x, size_t n)
{
    rng_seed((uint32_t)(1000 + t));
    random_spikes(x, n, 0.35f);
}

static void test_net_save_restore(void)
{
    int out;
    st_snn_net *net = small_net(&out);
    CU_ASSERT_PTR_NOT_NULL_FATAL(net);
    st_snn_state *st = st_snn_state_new(net, NULL);
    float x[16];
    for (int t = 0; t < 40; t++) {
        input_at(t, x, 16);
        st_snn_step(net, st, x);
    }
    const size_t len = st_snn_state_save_len(st);
    unsigned char *snap = malloc(len);
    CU_ASSERT_EQUAL(st_snn_state_save(st, snap, len - 1), ST_ERR_INVALID);
    CU_ASSERT_EQUAL_FATAL(st_snn_state_save(st, snap, len), ST_OK);
    enum { T2 = 60, NH = 32 };
    float *first = malloc(T2 * NH * sizeof *first);
    int total = 0;
    for (int t = 0; t < T2; t++) {
        input_at(40 + t, x, 16);
        st_snn_step(net, st, x);
        memcpy(first + t * NH, st_snn_state_output(st, out, NULL), NH * sizeof *first);
        for (int k = 0; k < NH; k++)
            total += first[t * NH + k] != 0;
    }
    CU_ASSERT(total > 0);
    /* restore into the same state and into a fresh one: the same future */
    st_snn_state *other = st_snn_state_new(net, NULL);
    CU_ASSERT_EQUAL(st_snn_state_restore(st, snap, len), ST_OK);
    CU_ASSERT_EQUAL(st_snn_state_restore(other, snap, len), ST_OK);
    int bad = 0;
    for (int t = 0; t < T2; t++) {
        input_at(40 + t, x, 16);
        st_snn_step(net, st, x);
        st_snn_step(net, other, x);
        bad += memcmp(first + t * NH, st_snn_state_output(st, out, NULL), NH * sizeof *first);
        bad += memcmp(first + t * NH, st_snn_state_output(other, out, NULL), NH * sizeof *first);
    }
    CU_ASSERT_EQUAL(bad, 0);
    /* refused: truncated, corrupt, not a snapshot, another network */
    CU_ASSERT_EQUAL(st_snn_state_restore(st, snap, len - 10), ST_ERR_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(st_errmsg(), "truncated"));
    CU_ASSERT_EQUAL(st_snn_state_restore(st, snap, 12), ST_ERR_FORMAT);
    snap[len / 2] ^= 0x10;
    CU_ASSERT_EQUAL(st_snn_state_restore(st, snap, len), ST_ERR_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(st_errmsg(), "checksum"));
    snap[len / 2] ^= 0x10;
    snap[0] = 'X';
    CU_ASSERT_EQUAL(st_snn_state_restore(st, snap, len), ST_ERR_FORMAT);
    snap[0] = 'S';
    st_snn_net *net2 = st_snn_net_new(NULL);
    int i2 = st_snn_net_add_input(net2, "in", 16);
    int o2 = st_snn_net_add_output(net2, "out", 16);
    st_snn_net_connect(net2, i2, o2);
    st_snn_net_finish(net2);
    st_snn_state *st2 = st_snn_state_new(net2, NULL);
    CU_ASSERT_EQUAL(st_snn_state_restore(st2, snap, len), ST_ERR_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(st_errmsg(), "another network"));
    CU_ASSERT_EQUAL(st_snn_state_restore(st, snap, len), ST_OK); /* intact after all that */

    /* reset: a fresh start, the same as a new state */
    st_snn_state_reset(st);
    st_snn_state *fresh = st_snn_state_new(net, NULL);
    bad = 0;
    for (int t = 0; t < 30; t++) {
        input_at(t, x, 16);
        st_snn_step(net, st, x);
        st_snn_step(net, fresh, x);
        bad += memcmp(st_snn_state_output(st, out, NULL), st_snn_state_output(fresh, out, NULL),
                      NH * sizeof(float));
    }
    CU_ASSERT_EQUAL(bad, 0);
    st_snn_state_destroy(&fresh);
    st_snn_state_destroy(&st2);
    st_snn_net_destroy(&net2);
    st_snn_state_destroy(&other);
    st_snn_state_destroy(&st);
    st_snn_net_destroy(&net);
    free(snap);
    free(first);
}

/* Many streams through a pool give what stepping each alone gives, and
   neither a step nor a batch allocates. */
static void test_net_batch_and_no_alloc(void)
{
    int out;
    st_snn_net *net = small_net(&out);
    CU_ASSERT_PTR_NOT_NULL_FATAL(net);
    enum { S = 13, T = 25, NI = 16, NH = 32 };
    st_snn_state *a[S], *b[S];
    float x[S][NI];
    const float *xs[S];
    for (int s = 0; s < S; s++) {
        a[s] = st_snn_state_new(net, NULL);
        b[s] = st_snn_state_new(net, NULL);
        xs[s] = x[s];
    }
    int err = -1;
    st_snn_pool *pool = st_snn_pool_new(3, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(pool);
    CU_ASSERT_EQUAL(err, ST_OK);
    CU_ASSERT_EQUAL(st_snn_pool_threads(pool), 3);
    const bool live = st_test_alloc_live();
    const unsigned long before = st_test_rt_allocs();
    int bad = 0;
    for (int t = 0; t < T; t++) {
        for (int s = 0; s < S; s++)
            input_at(t * S + s, x[s], NI);
        st_rt_enter();
        CU_ASSERT_EQUAL(st_snn_step_batch(net, a, xs, S, pool), ST_OK);
        for (int s = 0; s < S; s++)
            st_snn_step(net, b[s], xs[s]);
        st_rt_leave();
        for (int s = 0; s < S; s++)
            bad += memcmp(st_snn_state_output(a[s], out, NULL),
                          st_snn_state_output(b[s], out, NULL), NH * sizeof(float)) != 0;
    }
    CU_ASSERT_EQUAL(bad, 0);
    if (live) {
        CU_ASSERT_EQUAL(st_test_rt_allocs(), before);
    } else {
        st_test_skip("snn:batch_and_no_alloc", "allocation counting is off under a sanitizer "
                                               "or valgrind: no-allocation not checked here");
    }
    /* without a pool: the caller's thread */
    CU_ASSERT_EQUAL(st_snn_step_batch(net, a, xs, S, NULL), ST_OK);
    st_snn_pool_destroy(&pool);
    CU_ASSERT_PTR_NULL(pool);
    st_snn_pool_destroy(&pool);
    for (int s = 0; s < S; s++) {
        st_snn_state_destroy(&a[s]);
        st_snn_state_destroy(&b[s]);
    }
    st_snn_net_destroy(&net);
}

static void test_net_errors(void)
{
    st_snn_net *net = st_snn_net_new(NULL);
    int in = st_snn_net_add_input(net, "in", 4);
    CU_ASSERT_EQUAL(st_snn_net_add_input(net, "in", 4), ST_ERR_INVALID); /* same name */
    CU_ASSERT_EQUAL(st_snn_net_add_output(net, "", 4), ST_ERR_INVALID);
    CU_ASSERT_EQUAL(st_snn_net_add_output(net, "zero", 0), ST_ERR_INVALID);
    int fc = st_snn_net_add_dense(net, "fc", 3, 5, (const float[15]){0}, NULL);
    int out = st_snn_net_add_output(net, "out", 3);
    CU_ASSERT_EQUAL(st_snn_net_connect(net, in, fc), ST_ERR_INVALID); /* 4 into 5 */
    CU_ASSERT_PTR_NOT_NULL(strstr(st_errmsg(), "'in' makes 4 values but 'fc' takes 5"));
    CU_ASSERT_EQUAL(st_snn_net_connect(net, out, in), ST_ERR_INVALID);
    CU_ASSERT_EQUAL(st_snn_net_connect(net, in, 42), ST_ERR_INVALID);
    st_snn_neuron_params p = st_snn_neuron_default_params(ST_SNN_LIF);
    p.v_th = NAN;
    CU_ASSERT_EQUAL(st_snn_net_add_neurons(net, "bad", &p, 3), ST_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(st_errmsg(), "'bad'"));
    st_snn_net_connect(net, fc, out);
    int err = 0;
    CU_ASSERT_PTR_NULL(st_snn_state_new(net, &err)); /* not finished */
    CU_ASSERT_EQUAL(err, ST_ERR_STATE);
    CU_ASSERT_EQUAL(st_snn_net_finish(net), ST_ERR_INVALID); /* fc has no source */
    CU_ASSERT_PTR_NOT_NULL(strstr(st_errmsg(), "'fc' has no input"));
    int in5 = st_snn_net_add_input(net, "in5", 5);
    st_snn_net_connect(net, in5, fc);
    CU_ASSERT_EQUAL(st_snn_net_finish(net), ST_OK);
    CU_ASSERT_EQUAL(st_snn_net_input_len(net), 9);
    CU_ASSERT_EQUAL(st_snn_net_add_output(net, "late", 3), ST_ERR_STATE);
    CU_ASSERT_EQUAL(st_snn_net_connect(net, fc, out), ST_ERR_STATE);
    CU_ASSERT_EQUAL(st_snn_net_finish(net), ST_ERR_STATE);
    st_snn_net_destroy(&net);
    st_snn_net_destroy(&net);
    st_snn_net *empty = st_snn_net_new(NULL);
    CU_ASSERT_EQUAL(st_snn_net_finish(empty), ST_ERR_INVALID);
    st_snn_net_destroy(&empty);
}

CU_TestInfo st_tests_snn[] = {
    {"norse_traces", test_norse_traces},
    {"nir_paper_lif", test_nir_paper_lif},
    {"reference_other_params", test_reference_other_params},
    {"per_neuron_params", test_per_neuron_params},
    {"lif_is_cubalif", test_lif_is_cubalif},
    {"reset_modes", test_reset_modes},
    {"strict_threshold", test_strict_threshold},
    {"params_api", test_params_api},
    {"trace_command", test_trace_command},
    {"net_dense_paths", test_net_dense_paths},
    {"net_sparse", test_net_sparse},
    {"net_conv", test_net_conv},
    {"net_recurrent", test_net_recurrent},
    {"net_delay", test_net_delay},
    {"net_save_restore", test_net_save_restore},
    {"net_batch_and_no_alloc", test_net_batch_and_no_alloc},
    {"net_errors", test_net_errors},
    CU_TEST_INFO_NULL,
};
