/*  tests/test_snn_perf.c - suite `snn_perf`: the correctness side of the
    engine's fast paths and of the benchmark networks (no timing here).

    - every optimised kernel (AVX2 dense spike and multiply-accumulate
      kernels, spike lists, the hand-written AVX2 neuron loops) against a
      naive reference and against the portable code, bit for bit, on random
      inputs and sizes that are not multiples of the vector width;
    - a sparse node's partial clearing (only the outputs it touched) against
      a naive reference, across event, real-valued and all-firing steps and
      a snapshot;
    - the refractory models: lifrefrac against Norse's masks, lif_ei against
      its exact solution and Brian2's refractory timing;
    - the reference networks: CUBA's sizes, connectivity, E/I split and
      routing, a plausible spike count; the streaming stack's weights;
    - `spiketalk snn profile`'s counts on a tiny network against counts by
      hand.
*/
#include "testutil.h"

#include "audio/audio.h"
#include "snn/asr.h"
#include "snn/snn.h"
#include "snn/snn_impl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

/* ---- helpers --------------------------------------------------------------- */

static uint32_t rng = 777;

static float uni(float lo, float hi)
{
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return lo + (hi - lo) * (float)((rng >> 8) * (1.0 / 16777216.0));
}

static bool have_avx2(void)
{
    st_snn_simd_cap(ST_SNN_SIMD_AVX2);
    return st_snn_simd() >= ST_SNN_SIMD_AVX2;
}

/* The SIMD levels to try: portable always, AVX2 where the CPU has it. */
static int n_levels(void)
{
    return have_avx2() ? 2 : 1;
}

static void use_level(int level)
{
    st_snn_simd_cap(level);
}

/* ---- dense kernels -------------------------------------------------------------- */

/* out = base + sum over ascending inputs of x_i * column_i, one term at a
   time, the order every kernel promises. */
static void naive_columns(const float *w, size_t ld, size_t n_in, size_t n_out, const float *x,
                          const float *base, float *out)
{
    for (size_t o = 0; o < n_out; o++) {
        float t = base[o];
        for (size_t i = 0; i < n_in; i++)
            t += x[i] * w[i * ld + o];
        out[o] = t;
    }
}

static void test_dense_kernels(void)
{
    static const size_t outs[] = {1, 3, 7, 8, 9, 15, 16, 63, 64, 65, 100, 130, 512, 515};
    static const size_t ins[] = {1, 2, 5, 8, 17, 64, 257};
    static const float rates[] = {0.0f, 0.1f, 0.5f, 1.0f};
    int bad = 0, cases = 0;
    for (size_t a = 0; a < sizeof outs / sizeof outs[0]; a++)
        for (size_t b = 0; b < sizeof ins / sizeof ins[0]; b++) {
            const size_t n_out = outs[a], n_in = ins[b], ld = st_snn_dense_ld(n_out);
            CU_ASSERT(ld >= n_out);
            float *w = malloc(n_in * ld * sizeof *w), *x = malloc(n_in * sizeof *x);
            float *base = malloc(n_out * sizeof *base), *want = malloc(n_out * sizeof *want);
            float *got = malloc(n_out * sizeof *got), *xs = malloc(n_in * sizeof *xs);
            uint32_t *fired = malloc(n_in * sizeof *fired);
            for (size_t k = 0; k < n_in * ld; k++)
                w[k] = uni(-2, 2);
            for (size_t o = 0; o < n_out; o++)
                base[o] = uni(-1, 1);
            for (size_t r = 0; r < sizeof rates / sizeof rates[0]; r++) {
                size_t nf = 0;
                for (size_t i = 0; i < n_in; i++) {
                    xs[i] = uni(0, 1) < rates[r] ? 1.0f : 0.0f;
                    if (xs[i] == 1.0f)
                        fired[nf++] = (uint32_t)i;
                    x[i] = uni(-3, 3);
                }
                for (int level = 0; level < n_levels(); level++) {
                    use_level(level);
                    /* spikes: the event kernel against the naive sum */
                    naive_columns(w, ld, n_in, n_out, xs, base, want);
                    memcpy(got, base, n_out * sizeof *got);
                    CU_ASSERT_EQUAL(st_snn_dense_spikes(w, ld, n_out, fired, nf, got),
                                    (uint64_t)nf * n_out);
                    bad += memcmp(got, want, n_out * sizeof *got) != 0;
                    /* the same 0/1 input through the MAC kernel */
                    memcpy(got, base, n_out * sizeof *got);
                    st_snn_dense_mac(w, ld, n_in, n_out, xs, got);
                    bad += memcmp(got, want, n_out * sizeof *got) != 0;
                    /* real values */
                    naive_columns(w, ld, n_in, n_out, x, base, want);
                    memcpy(got, base, n_out * sizeof *got);
                    CU_ASSERT_EQUAL(st_snn_dense_mac(w, ld, n_in, n_out, x, got),
                                    (uint64_t)n_in * n_out);
                    bad += memcmp(got, want, n_out * sizeof *got) != 0;
                    cases += 3;
                }
            }
            free(w);
            free(x);
            free(xs);
            free(base);
            free(want);
            free(got);
            free(fired);
        }
    use_level(ST_SNN_SIMD_AVX2);
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT(cases > 1000);
    if (!have_avx2())
        st_test_skip("snn_perf:dense_kernels", "no AVX2 on this CPU: the portable kernels only");
}

static void test_spike_lists(void)
{
    static const size_t sizes[] = {0, 1, 7, 8, 9, 31, 64, 100, 1001};
    int bad = 0;
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        const size_t n = sizes[s];
        float *x = malloc((n ? n : 1) * sizeof *x);
        uint32_t *f = malloc((n ? n : 1) * sizeof *f), *g = malloc((n ? n : 1) * sizeof *g);
        for (int trial = 0; trial < 6; trial++) {
            size_t want = 0;
            bool want_bin = true;
            for (size_t k = 0; k < n; k++) {
                const float r = uni(0, 1);
                x[k] = r < 0.2f ? 1.0f : 0.0f;
                if (trial == 1 && k == n / 2)
                    x[k] = 0.5f; /* not binary */
                if (trial == 2 && k == n - 1)
                    x[k] = NAN;
                if (trial == 3 && r < 0.5f)
                    x[k] = -0.0f; /* still binary */
                if (trial == 4)
                    x[k] = 1.0f;
                want_bin &= x[k] == 0.0f || x[k] == 1.0f;
                if (x[k] == 1.0f)
                    g[want++] = (uint32_t)k;
            }
            for (int level = 0; level < n_levels(); level++) {
                use_level(level);
                bool bin = !want_bin;
                const size_t got = st_snn_classify(x, n, f, &bin);
                bad += got != want || bin != want_bin || (want && memcmp(f, g, want * sizeof *f));
                const size_t got2 = st_snn_list_spikes(x, n, f);
                bad += got2 != want || (want && memcmp(f, g, want * sizeof *f));
            }
        }
        free(x);
        free(f);
        free(g);
    }
    use_level(ST_SNN_SIMD_AVX2);
    CU_ASSERT_EQUAL(bad, 0);
}

/* Through the network: dense layers of sizes that are not multiples of the
   vector width (their columns padded inside the net), event path, forced
   dense path and a naive reference, at both SIMD levels: the same bits. */
static void test_net_odd_sizes(void)
{
    static const int shapes[][3] = {{7, 13, 5}, {1, 9, 3}, {33, 65, 17}, {40, 8, 1}};
    int bad = 0;
    for (size_t sh = 0; sh < sizeof shapes / sizeof shapes[0]; sh++) {
        const int NI = shapes[sh][0], NH = shapes[sh][1], NO = shapes[sh][2];
        float *w1 = malloc((size_t)NH * NI * sizeof *w1);
        float *w2 = malloc((size_t)NO * NH * sizeof *w2);
        float *b1 = malloc(NH * sizeof *b1), *b2 = malloc(NO * sizeof *b2);
        for (int k = 0; k < NH * NI; k++)
            w1[k] = uni(-1.5f, 1.5f);
        for (int k = 0; k < NO * NH; k++)
            w2[k] = uni(-2, 2);
        for (int k = 0; k < NH; k++)
            b1[k] = uni(-0.2f, 0.4f);
        for (int k = 0; k < NO; k++)
            b2[k] = uni(-0.2f, 0.4f);
        st_snn_neuron_params lif = st_snn_neuron_default_params(ST_SNN_LIF);
        st_snn_net *net = st_snn_net_new(NULL);
        const int in = st_snn_net_add_input(net, "in", (size_t)NI);
        const int d1 = st_snn_net_add_dense(net, "d1", (size_t)NH, (size_t)NI, w1, b1);
        const int p1 = st_snn_net_add_neurons(net, "p1", &lif, (size_t)NH);
        const int d2 = st_snn_net_add_dense(net, "d2", (size_t)NO, (size_t)NH, w2, b2);
        st_snn_net_connect(net, in, d1);
        st_snn_net_connect(net, d1, p1);
        st_snn_net_connect(net, p1, d2);
        CU_ASSERT_EQUAL_FATAL(st_snn_net_finish(net), ST_OK);
        st_snn_state *ev = st_snn_state_new(net, NULL), *dn = st_snn_state_new(net, NULL);
        st_snn_state_set_path(dn, ST_SNN_PATH_DENSE);
        st_snn_neurons *ref = st_snn_neurons_new(&lif, (size_t)NH, NULL);
        float *rs = malloc(2 * (size_t)NH * sizeof *rs), *h = malloc(NH * sizeof *h);
        float *z = malloc(NH * sizeof *z), *o = malloc(NO * sizeof *o), *x = malloc(NI * sizeof *x);
        uint32_t *f = malloc(NH * sizeof *f);
        st_snn_neurons_init_state(ref, rs);
        for (int t = 0; t < 80; t++) {
            for (int k = 0; k < NI; k++)
                x[k] = t % 4 == 3 ? uni(-0.5f, 1) : (uni(0, 1) < 0.3f ? 1.0f : 0.0f);
            use_level(t % n_levels()); /* alternate SIMD levels step by step */
            st_snn_step(net, ev, x);
            st_snn_step(net, dn, x);
            for (int r = 0; r < NH; r++) {
                float acc = b1[r];
                for (int i = 0; i < NI; i++)
                    acc += w1[r * NI + i] * x[i];
                h[r] = acc;
            }
            st_snn_neurons_step(ref, rs, h, z, f);
            for (int r = 0; r < NO; r++) {
                float acc = b2[r];
                for (int i = 0; i < NH; i++)
                    acc += w2[r * NH + i] * z[i];
                o[r] = acc;
            }
            bad += memcmp(st_snn_state_output(ev, d1, NULL), h, NH * sizeof *h) != 0;
            bad += memcmp(st_snn_state_output(dn, d1, NULL), h, NH * sizeof *h) != 0;
            bad += memcmp(st_snn_state_output(ev, d2, NULL), o, NO * sizeof *o) != 0;
            bad += memcmp(st_snn_state_output(dn, d2, NULL), o, NO * sizeof *o) != 0;
        }
        use_level(ST_SNN_SIMD_AVX2);
        st_snn_neurons_destroy(&ref);
        st_snn_state_destroy(&ev);
        st_snn_state_destroy(&dn);
        st_snn_net_destroy(&net);
        free(w1);
        free(w2);
        free(b1);
        free(b2);
        free(rs);
        free(h);
        free(z);
        free(o);
        free(x);
        free(f);
    }
    CU_ASSERT_EQUAL(bad, 0);
}

/* ---- neuron loops: AVX2 against portable, every model -------------------------------- */

static st_snn_neuron_params random_params(st_snn_model m, int variant)
{
    st_snn_neuron_params p = st_snn_neuron_default_params(m);
    p.tau_mem_inv = uni(50, 300);
    p.tau_syn_inv = uni(80, 400);
    p.tau_syn_inh_inv = uni(40, 200);
    p.v_leak = uni(-0.2f, 0.2f);
    p.v_th = uni(0.6f, 1.2f);
    p.v_reset = uni(-0.3f, 0.1f);
    p.rho_reset = (float)(variant + 1) * 1.5f;
    p.reset = (st_snn_reset)(variant % 3);
    return p;
}

static void test_neuron_loops_exact(void)
{
    static const size_t sizes[] = {1, 5, 8, 13, 64, 77};
    int bad = 0, spikes = 0;
    for (int m = 0; m < ST_SNN_N_MODELS; m++)
        for (int variant = 0; variant < 3; variant++)
            for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
                const size_t n = sizes[s];
                st_snn_neuron_params p = random_params((st_snn_model)m, variant);
                st_snn_neuron_params *each = malloc(n * sizeof *each);
                for (size_t k = 0; k < n; k++) {
                    /* per neuron: the template and lsnn's per-field arrays;
                       every parameter its own, so a field read from the
                       wrong array shows */
                    const float u = 1.0f + 0.01f * (float)k;
                    each[k] = p;
                    each[k].v_th = p.v_th + 0.01f * (float)k;
                    each[k].tau_syn_inv = p.tau_syn_inv * u;
                    each[k].tau_mem_inv = p.tau_mem_inv / u;
                    each[k].v_leak = p.v_leak - 0.005f * (float)k;
                    each[k].v_reset = p.v_reset + 0.003f * (float)k;
                    each[k].tau_adapt_inv = p.tau_adapt_inv * u;
                    each[k].beta = p.beta * (2.0f - u);
                }
                st_snn_neurons *pops[2] = {st_snn_neurons_new(&p, n, NULL),
                                           st_snn_neurons_new_each(each, n, NULL)};
                for (int which = 0; which < 2; which++) {
                    st_snn_neurons *pop = pops[which];
                    CU_ASSERT_PTR_NOT_NULL_FATAL(pop);
                    const size_t sl = st_snn_neurons_state_len(pop);
                    const size_t il = st_snn_neurons_input_len(pop);
                    float *st[2], *out[2], *x = malloc(il * sizeof *x);
                    uint32_t *f[2];
                    size_t nf[2];
                    for (int l = 0; l < 2; l++) {
                        st[l] = malloc(sl * sizeof(float));
                        out[l] = malloc(n * sizeof(float));
                        f[l] = malloc(n * sizeof(uint32_t));
                        st_snn_neurons_init_state(pop, st[l]);
                    }
                    for (int t = 0; t < 60; t++) {
                        for (size_t k = 0; k < il; k++)
                            x[k] = m == ST_SNN_LIF_EI && k >= n ? uni(-0.5f, 0.0f)
                                                                : uni(-0.3f, 2.5f);
                        for (int l = 0; l < n_levels(); l++) {
                            use_level(l);
                            nf[l] = st_snn_neurons_step(pop, st[l], x, out[l], f[l]);
                        }
                        if (n_levels() == 2) {
                            bad += memcmp(st[0], st[1], sl * sizeof(float)) != 0;
                            bad += memcmp(out[0], out[1], n * sizeof(float)) != 0;
                            bad += nf[0] != nf[1] || memcmp(f[0], f[1], nf[0] * sizeof(uint32_t));
                        }
                        /* the list is the 1s of out, ascending */
                        size_t c = 0;
                        for (size_t k = 0; k < n && st_snn_model_spikes((st_snn_model)m); k++)
                            if (out[0][k] == 1.0f)
                                bad += c >= nf[0] || f[0][c++] != k;
                        bad += st_snn_model_spikes((st_snn_model)m) && c != nf[0];
                        spikes += (int)nf[0];
                    }
                    for (int l = 0; l < 2; l++) {
                        free(st[l]);
                        free(out[l]);
                        free(f[l]);
                    }
                    free(x);
                    st_snn_neurons_destroy(&pops[which]);
                }
                free(each);
            }
    use_level(ST_SNN_SIMD_AVX2);
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT(spikes > 1000);
}

/* ---- lifrefrac: Norse's masks, literally ------------------------------------------------ */

static void test_lifrefrac_reference(void)
{
    enum { N = 21, T = 300 };
    int bad = 0, spikes = 0, held_steps = 0;
    for (int variant = 0; variant < 3; variant++) {
        st_snn_neuron_params p = random_params(ST_SNN_LIFREFRAC, variant);
        p.rho_reset = variant == 2 ? 2.5f : (float)(3 + variant); /* also a fractional one */
        st_snn_neurons *pop = st_snn_neurons_new(&p, N, NULL);
        CU_ASSERT_PTR_NOT_NULL_FATAL(pop);
        CU_ASSERT_EQUAL(st_snn_neurons_state_len(pop), 3 * N);
        float state[3 * N], out[N], x[N];
        uint32_t fired[N];
        st_snn_neurons_init_state(pop, state);
        float *v = st_snn_neurons_var(pop, state, ST_SNN_VAR_V);
        float *i = st_snn_neurons_var(pop, state, ST_SNN_VAR_I);
        float *rho = st_snn_neurons_var(pop, state, ST_SNN_VAR_RHO);
        CU_ASSERT_PTR_NOT_NULL_FATAL(rho);
        CU_ASSERT_PTR_NULL(st_snn_neurons_var(pop, state, ST_SNN_VAR_I_INH));
        /* the reference state, stepped with Norse's formulas in float */
        float rv[N], ri[N], rr[N];
        const float dt = (float)p.dt, a = dt * p.tau_mem_inv, ns = -dt * p.tau_syn_inv;
        for (int k = 0; k < N; k++) {
            rv[k] = p.v_leak;
            ri[k] = 0;
            rr[k] = 0;
            bad += v[k] != rv[k] || i[k] != 0 || rho[k] != 0;
        }
        for (int t = 0; t < T; t++) {
            for (int k = 0; k < N; k++)
                x[k] = uni(-0.1f, 1.2f);
            st_snn_neurons_step(pop, state, x, out, fired);
            for (int k = 0; k < N; k++) {
                /* lif_feed_forward_step */
                const float ij = ri[k] + x[k];
                const float vd = rv[k] + a * ((p.v_leak - rv[k]) + ij);
                const float id = ij + ns * ij;
                float z = vd - p.v_th > 0 ? 1.0f : 0.0f;
                float vn = p.reset == ST_SNN_RESET_VALUE      ? (z != 0 ? p.v_reset : vd)
                           : p.reset == ST_SNN_RESET_SUBTRACT ? (z != 0 ? vd - p.v_th : vd)
                                                              : vd;
                /* compute_refractory_update */
                const float mask = rr[k] > 0 ? 1.0f : 0.0f;
                vn = mask != 0 ? rv[k] : vn;
                z = (1 - mask) * z;
                const float relu = rr[k] - mask > 0 ? rr[k] - mask : 0.0f;
                rr[k] = z != 0 ? p.rho_reset : relu;
                rv[k] = vn;
                ri[k] = id;
                held_steps += mask != 0;
                bad += v[k] != rv[k] || i[k] != ri[k] || rho[k] != rr[k] || out[k] != z;
                spikes += z != 0;
            }
        }
        st_snn_neurons_destroy(&pop);
    }
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT(spikes > 100);
    CU_ASSERT(held_steps > 100);

    /* the timing, plainly: driven hard, a neuron with rho_reset = 3 spikes
       every 4th step and keeps v_reset in between */
    st_snn_neuron_params p = st_snn_neuron_default_params(ST_SNN_LIFREFRAC);
    p.rho_reset = 3;
    st_snn_neurons *pop = st_snn_neurons_new(&p, 1, NULL);
    float state[3], out[1], x[1] = {500};
    uint32_t fired[1];
    st_snn_neurons_init_state(pop, state);
    int pattern_bad = 0;
    for (int t = 0; t < 20; t++) {
        const size_t nf = st_snn_neurons_step(pop, state, x, out, fired);
        pattern_bad += nf != (t % 4 == 0 ? 1u : 0u);
        if (t % 4 != 0)
            pattern_bad += state[0] != p.v_reset;
    }
    CU_ASSERT_EQUAL(pattern_bad, 0);
    st_snn_neurons_destroy(&pop);
}

/* ---- lif_ei: the exact solution and Brian2's refractory timing --------------------------- */

static void test_lif_ei(void)
{
    st_snn_neuron_params p = st_snn_neuron_default_params(ST_SNN_LIF_EI);
    p.dt = 1e-4;
    p.tau_mem_inv = 50;      /* 20 ms */
    p.tau_syn_inv = 200;     /* 5 ms */
    p.tau_syn_inh_inv = 100; /* 10 ms */
    p.v_leak = -49;
    p.v_th = -50;
    p.v_reset = -60;
    p.rho_reset = 0;
    st_snn_neurons *pop = st_snn_neurons_new(&p, 2, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(pop);
    CU_ASSERT_EQUAL(st_snn_neurons_input_len(pop), 4);
    CU_ASSERT_EQUAL(st_snn_model_inputs(ST_SNN_LIF_EI), 2);
    CU_ASSERT_EQUAL(st_snn_model_inputs(ST_SNN_LIF), 1);
    float state[8], out[2];
    uint32_t fired[2];
    st_snn_neurons_init_state(pop, state);
    float *v = st_snn_neurons_var(pop, state, ST_SNN_VAR_V);
    float *e = st_snn_neurons_var(pop, state, ST_SNN_VAR_I);
    float *h = st_snn_neurons_var(pop, state, ST_SNN_VAR_I_INH);
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    CU_ASSERT_PTR_NOT_NULL(st_snn_neurons_var(pop, state, ST_SNN_VAR_RHO));
    /* neuron 0 gets one excitatory pulse of 3 mV, neuron 1 one inhibitory
       pulse of -5 mV, both from v = -70: the exact solution of
       dv/dt = (e + h - (v - El)) / taum with e, h decaying exponentially */
    v[0] = v[1] = -70;
    double worst = 0;
    for (int t = 0; t < 400; t++) {
        float x[4] = {t == 0 ? 3.0f : 0, 0, 0, t == 0 ? -5.0f : 0};
        st_snn_neurons_step(pop, state, x, out, fired);
        const double time = (t + 1) * 1e-4, km = 50;
        for (int k = 0; k < 2; k++) {
            const double ks = k ? 100 : 200, amp = k ? -5 : 3;
            const double want = -49 + (-70 + 49) * exp(-km * time) +
                                amp * km / (km - ks) * (exp(-ks * time) - exp(-km * time));
            const double d = fabs(v[k] - want);
            worst = d > worst ? d : worst;
        }
        CU_ASSERT_EQUAL(out[0] + out[1], 0);
    }
    CU_ASSERT(worst < 2e-3); /* mV, float32 over 400 steps */
    CU_ASSERT(fabs(e[0] - 3 * exp(-200 * 0.04)) < 1e-5);
    CU_ASSERT(fabs(h[1] + 5 * exp(-100 * 0.04)) < 1e-5);
    st_snn_neurons_destroy(&pop);

    /* equal rates: the gain's limit, finite (threshold out of the way) */
    p.tau_syn_inv = p.tau_mem_inv;
    p.v_th = 0;
    pop = st_snn_neurons_new(&p, 1, NULL);
    float s1[4], o1[1], x1[2] = {1, 0};
    uint32_t f1[1];
    st_snn_neurons_init_state(pop, s1);
    s1[0] = -49;
    st_snn_neurons_step(pop, s1, x1, o1, f1);
    const double gain = 50 * 1e-4 * exp(-50 * 1e-4);
    CU_ASSERT(fabs((s1[0] + 49) - gain) < 1e-5); /* float near 49: ulp 4e-6 */
    st_snn_neurons_destroy(&pop);

    /* Brian2's refractory = 5 ms at dt = 0.1 ms is rho_reset = 49: a neuron
       held far above threshold spikes every 50 steps (5 ms), v = Vr between */
    st_snn_cuba_params cp = st_snn_cuba_default_params();
    cp.n_exc = 1;
    cp.n_inh = 0;
    cp.p_connect = 0;
    st_snn_net *net = st_snn_cuba_net(&cp, NULL, NULL, 0, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(net);
    const int P = st_snn_net_find(net, "P");
    CU_ASSERT_EQUAL(st_snn_neurons_params(st_snn_net_neurons(net, P), 0)->rho_reset, 49.0f);
    st_snn_state *st = st_snn_state_new(net, NULL);
    int spikes_at[8], n_spikes = 0, held_bad = 0;
    for (int t = 0; t < 300; t++) {
        st_snn_state_var(st, P, ST_SNN_VAR_I)[0] = 1e4; /* past threshold in one step */
        st_snn_step(net, st, NULL);
        size_t nf;
        st_snn_state_spikes(st, P, &nf);
        if (nf && n_spikes < 8)
            spikes_at[n_spikes++] = t;
        const float vv = st_snn_state_var(st, P, ST_SNN_VAR_V)[0];
        if (n_spikes && t > spikes_at[n_spikes - 1] && t < spikes_at[n_spikes - 1] + 50)
            held_bad += vv != cp.v_reset;
    }
    CU_ASSERT(n_spikes >= 5);
    for (int k = 1; k < n_spikes; k++)
        CU_ASSERT_EQUAL(spikes_at[k] - spikes_at[k - 1], 50);
    CU_ASSERT_EQUAL(held_bad, 0);
    st_snn_state_destroy(&st);
    st_snn_net_destroy(&net);

    /* parameters: names, ranges */
    st_snn_neuron_params q = st_snn_neuron_default_params(ST_SNN_LIF_EI);
    CU_ASSERT_EQUAL(st_snn_neuron_set_param(&q, "tau_syn_inh_inv", "125"), ST_OK);
    CU_ASSERT_EQUAL(q.tau_syn_inh_inv, 125.0f);
    CU_ASSERT_EQUAL(st_snn_neuron_set_param(&q, "rho_reset", "7"), ST_OK);
    CU_ASSERT_EQUAL(q.rho_reset, 7.0f);
    q.rho_reset = -1;
    CU_ASSERT_EQUAL(st_snn_neuron_params_check(&q), ST_ERR_INVALID);
    q = st_snn_neuron_default_params(ST_SNN_LIF);
    CU_ASSERT_EQUAL(st_snn_neuron_set_param(&q, "rho_reset", "7"), ST_ERR_NOT_FOUND);
    st_snn_model m;
    CU_ASSERT_EQUAL(st_snn_model_from_name("lif_ei", &m), ST_OK);
    CU_ASSERT_EQUAL(m, ST_SNN_LIF_EI);
    CU_ASSERT_EQUAL(st_snn_model_from_name("lifrefrac", &m), ST_OK);
    CU_ASSERT_EQUAL(m, ST_SNN_LIFREFRAC);
}

/* ---- a sparse node's partial clearing ----------------------------------------------------- */

static void test_sparse_partial_clear(void)
{
    enum { NI = 37, NO = 29, T = 200 };
    uint32_t row_ptr[NO + 1], col[NO * NI];
    float val[NO * NI], bias[NO], dense_w[NO * NI];
    size_t nnz = 0;
    row_ptr[0] = 0;
    for (int o = 0; o < NO; o++) {
        for (int i = 0; i < NI; i++) {
            dense_w[o * NI + i] = 0;
            if (uni(0, 1) < 0.3f) {
                col[nnz] = (uint32_t)i;
                val[nnz] = uni(-1, 1);
                dense_w[o * NI + i] = val[nnz];
                nnz++;
            }
        }
        row_ptr[o + 1] = (uint32_t)nnz;
        bias[o] = uni(-0.5f, 0.5f);
    }
    for (int with_bias = 0; with_bias < 2; with_bias++) {
        st_snn_net *net = st_snn_net_new(NULL);
        int in = st_snn_net_add_input(net, "in", NI);
        int sp = st_snn_net_add_sparse(net, "sp", NO, NI, row_ptr, col, val,
                                       with_bias ? bias : NULL);
        st_snn_net_connect(net, in, sp);
        CU_ASSERT_EQUAL_FATAL(st_snn_net_finish(net), ST_OK);
        st_snn_state *st = st_snn_state_new(net, NULL);
        void *snap = malloc(st_snn_state_save_len(st));
        int bad = 0;
        for (int t = 0; t < T; t++) {
            float x[NI], want[NO];
            const int mode = t % 10;
            for (int i = 0; i < NI; i++)
                x[i] = mode == 3 ? uni(-1, 1)               /* real values */
                       : mode == 6 ? 1.0f                   /* everything fires */
                                   : (uni(0, 1) < 0.08f ? 1.0f : 0.0f);
            if (t == 100)
                CU_ASSERT_EQUAL(st_snn_state_save(st, snap, st_snn_state_save_len(st)), ST_OK);
            st_snn_step(net, st, x);
            for (int o = 0; o < NO; o++) {
                float acc = with_bias ? bias[o] : 0.0f;
                for (int i = 0; i < NI; i++)
                    acc += dense_w[o * NI + i] * x[i];
                want[o] = acc;
            }
            const float *got = st_snn_state_output(st, sp, NULL);
            for (int o = 0; o < NO; o++)
                bad += fabsf(got[o] - want[o]) > 1e-5f;
            if (t == 150) { /* back to step 100 and on from there */
                CU_ASSERT_EQUAL(st_snn_state_restore(st, snap, st_snn_state_save_len(st)), ST_OK);
            }
        }
        CU_ASSERT_EQUAL(bad, 0);
        free(snap);
        st_snn_state_destroy(&st);
        st_snn_net_destroy(&net);
    }
}

/* ---- the reference networks ------------------------------------------------------------------ */

static void test_cuba_net(void)
{
    const st_snn_cuba_params p = st_snn_cuba_default_params();
    CU_ASSERT_EQUAL(p.n_exc, 3200);
    CU_ASSERT_EQUAL(p.n_inh, 800);
    CU_ASSERT_DOUBLE_EQUAL(p.w_exc, 1.62, 1e-6);
    CU_ASSERT_DOUBLE_EQUAL(p.w_inh, -9.0, 1e-6);
    uint32_t *pre, *post;
    size_t n_syn, n_exc_syn;
    CU_ASSERT_EQUAL_FATAL(st_snn_cuba_synapses(&p, &pre, &post, &n_syn, &n_exc_syn), ST_OK);
    /* 2 % of the 16 M ordered pairs: 320,000 +- 5 sigma (sigma ~ 560) */
    const double mean = 0.02 * 4000.0 * 4000.0, sd = sqrt(mean * 0.98);
    CU_ASSERT(fabs((double)n_syn - mean) < 5 * sd);
    /* the E/I split: 80 % of the sources, so about 80 % of the synapses */
    const double exc_mean = 0.8 * mean, exc_sd = sqrt(exc_mean * 0.98);
    CU_ASSERT(fabs((double)n_exc_syn - exc_mean) < 5 * exc_sd);
    int bad = 0;
    size_t exc = 0, self = 0;
    for (size_t k = 0; k < n_syn; k++) {
        bad += pre[k] >= 4000 || post[k] >= 4000;
        exc += pre[k] < 3200;
        self += pre[k] == post[k];
        if (k)
            bad += pre[k] < pre[k - 1] || (pre[k] == pre[k - 1] && post[k] <= post[k - 1]);
    }
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT_EQUAL(exc, n_exc_syn);
    CU_ASSERT(self > 40 && self < 130); /* autapses allowed, as Brian2's p=: ~80 */
    /* each neuron's in-degree: binomial(4000, 0.02), mean 80 */
    unsigned *indeg = calloc(4000, sizeof *indeg);
    for (size_t k = 0; k < n_syn; k++)
        indeg[post[k]]++;
    unsigned lo = 1000, hi = 0;
    for (int k = 0; k < 4000; k++) {
        lo = indeg[k] < lo ? indeg[k] : lo;
        hi = indeg[k] > hi ? indeg[k] : hi;
    }
    CU_ASSERT(lo > 40 && hi < 130);
    free(indeg);

    int err = -1;
    st_snn_net *net = st_snn_cuba_net(&p, pre, post, n_syn, &err);
    CU_ASSERT_EQUAL(err, ST_OK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(net);
    const int P = st_snn_net_find(net, "P"), syn = st_snn_net_find(net, "syn");
    st_snn_node_info info;
    CU_ASSERT_EQUAL(st_snn_net_node_info(net, P, &info), ST_OK);
    CU_ASSERT_EQUAL(info.model, ST_SNN_LIF_EI);
    CU_ASSERT_EQUAL(info.n_out, 4000);
    CU_ASSERT_EQUAL(info.n_in, 8000);
    CU_ASSERT_EQUAL(st_snn_net_node_info(net, syn, &info), ST_OK);
    CU_ASSERT_EQUAL(info.kind, ST_SNN_NODE_SPARSE);
    CU_ASSERT_EQUAL(info.n_in, 4000);
    CU_ASSERT_EQUAL(info.n_out, 8000);
    CU_ASSERT_EQUAL(info.n_weights, n_syn);
    CU_ASSERT_EQUAL(st_snn_net_input_len(net), 0);
    const st_snn_neuron_params *np = st_snn_neurons_params(st_snn_net_neurons(net, P), 0);
    CU_ASSERT_DOUBLE_EQUAL(np->tau_mem_inv, 50, 1e-3);
    CU_ASSERT_DOUBLE_EQUAL(np->tau_syn_inv, 200, 1e-3);
    CU_ASSERT_DOUBLE_EQUAL(np->tau_syn_inh_inv, 100, 1e-3);
    CU_ASSERT_EQUAL(np->v_th, -50.0f);
    CU_ASSERT_EQUAL(np->v_reset, -60.0f);
    CU_ASSERT_EQUAL(np->v_leak, -49.0f);

    /* routing: one excitatory and one inhibitory neuron fire; the synapse
       node (stepped after P, which reads it a step later) holds w_exc on the
       excitatory current of exactly the targets of the first and w_inh on
       the inhibitory current of exactly the targets of the second */
    st_snn_state *st = st_snn_state_new(net, NULL);
    float *v = st_snn_state_var(st, P, ST_SNN_VAR_V);
    for (int k = 0; k < 4000; k++)
        v[k] = -65; /* far below threshold: nobody else fires for a while */
    const uint32_t e_src = 17, i_src = 3500;
    v[e_src] = v[i_src] = -40;
    st_snn_step(net, st, NULL);
    size_t nf;
    const uint32_t *f = st_snn_state_spikes(st, P, &nf);
    CU_ASSERT_EQUAL_FATAL(nf, 2);
    CU_ASSERT(f[0] == e_src && f[1] == i_src);
    const float *x = st_snn_state_output(st, syn, NULL);
    float *want = calloc(8000, sizeof *want);
    for (size_t k = 0; k < n_syn; k++) {
        if (pre[k] == e_src)
            want[post[k]] += p.w_exc;
        if (pre[k] == i_src)
            want[4000 + post[k]] += p.w_inh;
    }
    CU_ASSERT_EQUAL(memcmp(x, want, 8000 * sizeof *x), 0);
    free(want);

    /* 0.1 s from Brian2's initial condition: about 2,400 spikes (Brian2
       gives 2,401 on this network) - a plausible range, not an exact count */
    st_snn_state_reset(st);
    st_snn_cuba_initial_v(&p, st_snn_state_var(st, P, ST_SNN_VAR_V));
    v = st_snn_state_var(st, P, ST_SNN_VAR_V);
    float lo_v = 0, hi_v = -100;
    for (int k = 0; k < 4000; k++) {
        lo_v = v[k] < lo_v ? v[k] : lo_v;
        hi_v = v[k] > hi_v ? v[k] : hi_v;
    }
    CU_ASSERT(lo_v >= -60 && hi_v < -50);
    st_snn_state_clear_counters(st);
    for (int t = 0; t < 1000; t++)
        st_snn_step(net, st, NULL);
    st_snn_counters c;
    st_snn_state_counters(st, -1, &c);
    CU_ASSERT(c.spikes > 1500 && c.spikes < 4000);
    CU_ASSERT_EQUAL(c.neuron_updates, 4000u * 1000u);
    CU_ASSERT(c.syn_ops > 50 * c.spikes && c.syn_ops < 110 * c.spikes); /* ~80 targets a spike */
    CU_ASSERT_EQUAL(c.dense_macs, 0);
    st_snn_state_destroy(&st);
    st_snn_net_destroy(&net);

    /* drawn from the seed when no list is given: the same network */
    net = st_snn_cuba_net(&p, NULL, NULL, 0, NULL);
    CU_ASSERT_EQUAL(st_snn_net_node_info(net, st_snn_net_find(net, "syn"), &info), ST_OK);
    CU_ASSERT_EQUAL(info.n_weights, n_syn);
    st_snn_net_destroy(&net);
    /* bad parameters are refused */
    st_snn_cuba_params q = p;
    q.p_connect = 1.5;
    err = 0;
    CU_ASSERT_PTR_NULL(st_snn_cuba_net(&q, NULL, NULL, 0, &err));
    CU_ASSERT_EQUAL(err, ST_ERR_INVALID);
    free(pre);
    free(post);
}

static void test_stream_net(void)
{
    const st_snn_stream_params p = st_snn_stream_default_params();
    int err = -1;
    st_snn_net *net = st_snn_stream_net(&p, &err);
    CU_ASSERT_EQUAL(err, ST_OK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(net);
    CU_ASSERT_EQUAL(st_snn_net_input_len(net), 256);
    const int fc1 = st_snn_net_find(net, "fc1"), fc2 = st_snn_net_find(net, "fc2");
    const int lif1 = st_snn_net_find(net, "lif1");
    st_snn_node_info info;
    st_snn_net_node_info(net, fc1, &info);
    CU_ASSERT_EQUAL(info.n_weights, 256 * 512);
    st_snn_net_node_info(net, fc2, &info);
    CU_ASSERT_EQUAL(info.n_weights, 512 * 256);
    st_snn_net_node_info(net, lif1, &info);
    CU_ASSERT_EQUAL(info.model, ST_SNN_LIF);
    /* the weights the peers get are the ones the net holds: a spike on
       input 5 gives fc1 = column 5 + bias */
    float *w1 = malloc(512 * 256 * sizeof *w1), *w2 = malloc(256 * 512 * sizeof *w2);
    float b1[512], b2[256], x[256] = {0};
    st_snn_stream_weights(&p, w1, b1, w2, b2);
    st_snn_state *st = st_snn_state_new(net, NULL);
    CU_ASSERT(st_snn_state_bytes(st) > (512 + 256) * 3 * sizeof(float));
    x[5] = 1;
    st_snn_step(net, st, x);
    const float *h = st_snn_state_output(st, fc1, NULL);
    int bad = 0;
    for (int o = 0; o < 512; o++)
        bad += h[o] != b1[o] + w1[o * 256 + 5];
    CU_ASSERT_EQUAL(bad, 0);
    /* at 10 % input spikes some of the hidden layer fires, not all */
    st_snn_counters c;
    for (int t = 0; t < 200; t++) {
        for (int k = 0; k < 256; k++)
            x[k] = uni(0, 1) < 0.1f ? 1.0f : 0.0f;
        st_snn_step(net, st, x);
    }
    st_snn_state_counters(st, lif1, &c);
    CU_ASSERT(c.spike_rate > 0.01 && c.spike_rate < 0.3);
    st_snn_state_destroy(&st);
    st_snn_net_destroy(&net);
    free(w1);
    free(w2);
}

/* ---- spiketalk snn profile ------------------------------------------------------------------- */

/* in (3) -> dense 2x3 of ones -> iaf (2, v_th 0.5) -> dense 1x2 -> iaf (1):
   with every input spiking every step (--rate 1), every neuron fires every
   step, so per step: 3 x 2 + 2 x 1 = 8 synaptic ops, 3 neuron updates,
   3 spikes, and a dense implementation's 6 + 2 = 8 MACs. */
static void test_profile_counts(void)
{
    struct stat sb;
    if (stat(st_test_cli(), &sb) != 0) {
        st_test_skip("snn_perf:profile_counts", "no spiketalk binary (set ST_CLI)");
        return;
    }
    st_snn_neuron_params iaf = st_snn_neuron_default_params(ST_SNN_IAF);
    iaf.v_th = 0.5f;
    const float ones[6] = {1, 1, 1, 1, 1, 1};
    st_snn_net *net = st_snn_net_new(NULL);
    const int in = st_snn_net_add_input(net, "in", 3);
    const int d1 = st_snn_net_add_dense(net, "d1", 2, 3, ones, NULL);
    const int n1 = st_snn_net_add_neurons(net, "n1", &iaf, 2);
    const int d2 = st_snn_net_add_dense(net, "d2", 1, 2, ones, NULL);
    const int n2 = st_snn_net_add_neurons(net, "n2", &iaf, 1);
    st_snn_net_connect(net, in, d1);
    st_snn_net_connect(net, d1, n1);
    st_snn_net_connect(net, n1, d2);
    st_snn_net_connect(net, d2, n2);
    CU_ASSERT_EQUAL_FATAL(st_snn_net_finish(net), ST_OK);
    char path[1024], cmd[2300];
    st_test_tmpfile(path, sizeof path, "tiny-profile.stm");
    CU_ASSERT_EQUAL_FATAL(st_snn_net_save(net, path), ST_OK);
    st_snn_net_destroy(&net);

    snprintf(cmd, sizeof cmd, "%s snn profile %s --steps 10 --rate 1 --json 2>&1", st_test_cli(),
             path);
    FILE *f = popen(cmd, "r");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    char buf[16384];
    size_t len = fread(buf, 1, sizeof buf - 1, f);
    buf[len] = '\0';
    const int status = pclose(f);
    CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    const char *total = strstr(buf, "\"total\": ");
    CU_ASSERT_PTR_NOT_NULL_FATAL(total);
    CU_ASSERT_EQUAL(st_test_json_number(total, "neuron_updates"), 30);
    CU_ASSERT_EQUAL(st_test_json_number(total, "syn_ops"), 80);
    CU_ASSERT_EQUAL(st_test_json_number(total, "dense_macs"), 0);
    CU_ASSERT_EQUAL(st_test_json_number(total, "spikes"), 30);
    CU_ASSERT_EQUAL(st_test_json_number(total, "spike_rate"), 1);
    CU_ASSERT_EQUAL(st_test_json_number(total, "dense_equivalent_macs"), 80);
    /* per node: d1 6 ops a step, n1 2 updates and 2 spikes a step */
    const char *nd1 = strstr(buf, "\"name\": \"d1\"");
    const char *nn1 = strstr(buf, "\"name\": \"n1\"");
    CU_ASSERT_PTR_NOT_NULL_FATAL(nd1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(nn1);
    CU_ASSERT_EQUAL(st_test_json_number(nd1, "syn_ops"), 60);
    CU_ASSERT_EQUAL(st_test_json_number(nd1, "dense_equivalent_macs"), 60);
    CU_ASSERT_EQUAL(st_test_json_number(nn1, "neuron_updates"), 20);
    CU_ASSERT_EQUAL(st_test_json_number(nn1, "spikes"), 20);
    /* the estimates: counts times the published figures */
    const char *en = strstr(buf, "\"energy\": ");
    CU_ASSERT_PTR_NOT_NULL_FATAL(en);
    CU_ASSERT_DOUBLE_EQUAL(st_test_json_number(en, "loihi_pj"), 80 * 23.6 + 30 * 52.0, 1e-6);
    CU_ASSERT_DOUBLE_EQUAL(st_test_json_number(en, "truenorth_pj"), 80 * 26.0, 1e-6);
    CU_ASSERT_DOUBLE_EQUAL(st_test_json_number(en, "dense_fp32_pj"), 80 * 4.6, 1e-6);
    CU_ASSERT_PTR_NOT_NULL(strstr(en, "Davies"));
    CU_ASSERT_PTR_NOT_NULL(strstr(en, "Merolla"));
    CU_ASSERT_PTR_NOT_NULL(strstr(en, "Horowitz"));

    /* no input spikes at all: nothing fires, nothing is added */
    snprintf(cmd, sizeof cmd, "%s snn profile %s --steps 10 --rate 0 --json 2>&1", st_test_cli(),
             path);
    f = popen(cmd, "r");
    len = fread(buf, 1, sizeof buf - 1, f);
    buf[len] = '\0';
    pclose(f);
    total = strstr(buf, "\"total\": ");
    CU_ASSERT_PTR_NOT_NULL_FATAL(total);
    CU_ASSERT_EQUAL(st_test_json_number(total, "syn_ops"), 0);
    CU_ASSERT_EQUAL(st_test_json_number(total, "spikes"), 0);
    CU_ASSERT_EQUAL(st_test_json_number(total, "neuron_updates"), 30);
    CU_ASSERT_EQUAL(st_test_json_number(total, "dense_equivalent_macs"), 80);

    /* the built-in networks run, and a bad name is refused */
    snprintf(cmd, sizeof cmd, "%s snn profile --net stream --steps 20 >/dev/null 2>&1",
             st_test_cli());
    CU_ASSERT_EQUAL(WEXITSTATUS(system(cmd)), 0);
    snprintf(cmd, sizeof cmd, "%s snn profile --net nope >/dev/null 2>&1", st_test_cli());
    CU_ASSERT_EQUAL(WEXITSTATUS(system(cmd)), 2);
}

/* A recognizer on audio: one step a 10 ms frame, the counts per second of
   audio, and the dense count the weights make (one MAC per weight a step:
   st_asr_param_count; models/asr.stm is an ensemble of LSNNs, each 40 x H
   in, H x H recurrent, H x 39 out, plus the 39 factors of its share of the
   mean). */
static void test_profile_recognizer(void)
{
    struct stat sb;
    if (stat("models/asr.stm", &sb) != 0 || stat(st_test_cli(), &sb) != 0) {
        st_test_skip("snn_perf:profile_recognizer", "no models/asr.stm or spiketalk binary here");
        return;
    }
    char wav[512], args[1024], *out;
    st_test_tmpfile(wav, sizeof wav, "profile.wav");
    float *x = malloc(32000 * sizeof *x);
    st_test_noise(x, 32000, 7, 16000, 3000); /* 2 s of band-limited noise */
    CU_ASSERT_EQUAL_FATAL(st_audio_write_wav(wav, x, 32000, 16000, ST_WAV_FLOAT), ST_OK);
    free(x);
    snprintf(args, sizeof args, "snn profile models/asr.stm --audio %s --json", wav);
    CU_ASSERT_EQUAL(st_test_run_cli(args, &out), 0);
    double steps = st_test_json_number(out, "steps");
    CU_ASSERT(steps >= 197 && steps <= 201); /* 2 s of 10 ms hops, less the window */
    CU_ASSERT_DOUBLE_EQUAL(st_test_json_number(out, "audio_s"), steps * 0.01, 1e-9);
    const char *total = strstr(out, "\"total\": ");
    CU_ASSERT_PTR_NOT_NULL_FATAL(total);
    int err = 0;
    st_asr *a = st_asr_load("models/asr.stm", &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    const double weights = (double)st_asr_param_count(a);
    st_asr_destroy(&a);
    CU_ASSERT_EQUAL(st_test_json_number(total, "dense_equivalent_macs"), steps * weights);
    /* the real-valued features drive the first layers as currents: dense */
    const double dense = st_test_json_number(total, "dense_macs");
    CU_ASSERT(dense >= steps * 40 * 192 && dense < steps * weights);
    CU_ASSERT(st_test_json_number(total, "syn_ops") > 0);
    free(out);
    /* --audio belongs to a recognizer; a recording that is not there is named */
    CU_ASSERT_EQUAL(st_test_run_cli("snn profile --net cuba --audio x.wav", &out), 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "not a recognizer"));
    free(out);
    CU_ASSERT_EQUAL(st_test_run_cli("snn profile models/asr.stm --audio /nonexistent/a.wav", &out),
                    1);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "/nonexistent/a.wav"));
    free(out);
}

CU_TestInfo st_tests_snn_perf[] = {
    {"dense_kernels", test_dense_kernels},
    {"spike_lists", test_spike_lists},
    {"net_odd_sizes", test_net_odd_sizes},
    {"neuron_loops_exact", test_neuron_loops_exact},
    {"lifrefrac_reference", test_lifrefrac_reference},
    {"lif_ei", test_lif_ei},
    {"sparse_partial_clear", test_sparse_partial_clear},
    {"cuba_net", test_cuba_net},
    {"stream_net", test_stream_net},
    {"profile_counts", test_profile_counts},
    {"profile_recognizer", test_profile_recognizer},
    CU_TEST_INFO_NULL,
};
