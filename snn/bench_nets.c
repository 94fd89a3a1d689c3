/*  snn/bench_nets.c - the reference networks: Vogels & Abbott's CUBA network
    as Brian2's example builds it, and the streaming Linear + LIF stack that
    Norse and snnTorch users run. `spiketalk bench snn`, `spiketalk snn
    profile` and the tests build them here, so that all three measure and
    check the same thing, and the benchmark's peers get the very same
    synapses, weights and initial state.

    Drawing is deterministic (splitmix64 from the seed) and independent of
    the platform, so a seed names one network everywhere.
*/
#include "snn.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- random numbers ------------------------------------------------------------ */

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Uniform in [0, 1), 53 bits. */
static double uniform(uint64_t *s)
{
    return (double)(splitmix64(s) >> 11) * (1.0 / 9007199254740992.0);
}

/* ---- CUBA ------------------------------------------------------------------------- */

st_snn_cuba_params st_snn_cuba_default_params(void)
{
    return (st_snn_cuba_params){
        .n_exc = 3200,
        .n_inh = 800,
        .p_connect = 0.02,
        .dt = 1e-4,
        .tau_mem_s = 20e-3,
        .tau_exc_s = 5e-3,
        .tau_inh_s = 10e-3,
        .refractory_s = 5e-3,
        .v_leak = -49.0f,
        .v_th = -50.0f,
        .v_reset = -60.0f,
        .w_exc = 60 * 0.27 / 10,
        .w_inh = -20 * 4.5 / 10,
        .seed = 1,
    };
}

static int check_cuba(const st_snn_cuba_params *p)
{
    const uint64_t n = (uint64_t)p->n_exc + p->n_inh;
    if (n == 0 || 2 * n > UINT32_MAX)
        return st_error(ST_ERR_INVALID, "CUBA network: %llu neurons; 1 to %u",
                        (unsigned long long)n, UINT32_MAX / 2);
    if (!(p->p_connect >= 0 && p->p_connect <= 1))
        return st_error(ST_ERR_INVALID, "CUBA network: p_connect %g is not a probability",
                        p->p_connect);
    if (!(p->dt > 0) || !(p->tau_mem_s > 0) || !(p->tau_exc_s > 0) || !(p->tau_inh_s > 0) ||
        !(p->refractory_s >= 0))
        return st_error(ST_ERR_INVALID, "CUBA network: dt and the time constants must be > 0, "
                                        "the refractory period >= 0");
    return ST_OK;
}

int st_snn_cuba_synapses(const st_snn_cuba_params *p, uint32_t **pre, uint32_t **post,
                         size_t *n_syn, size_t *n_exc_syn)
{
    *pre = *post = NULL;
    *n_syn = *n_exc_syn = 0;
    int rc = check_cuba(p);
    if (rc != ST_OK)
        return rc;
    const uint64_t n = (uint64_t)p->n_exc + p->n_inh, pairs = n * n;
    /* Room for the mean plus 8 standard deviations; redrawn bigger in the
       (astronomically rare) case it is not enough. */
    const double mean = (double)pairs * p->p_connect;
    size_t cap = (size_t)(mean + 8 * sqrt(mean * (1 - p->p_connect)) + 16);
    uint32_t *a = NULL, *b = NULL;
    for (;;) {
        free(a);
        free(b);
        a = malloc(cap * sizeof *a);
        b = malloc(cap * sizeof *b);
        if (!a || !b) {
            free(a);
            free(b);
            return st_error(ST_ERR_NOMEM, "out of memory for %zu synapses", cap);
        }
        /* Each ordered pair (self included, as Brian2's connect(p=...))
           independently; the gaps between chosen pairs are geometric, so
           only the synapses are drawn, not every pair. */
        uint64_t s = p->seed, k = 0;
        size_t m = 0, n_exc = 0;
        const double log_q = p->p_connect < 1 ? log1p(-p->p_connect) : -INFINITY;
        bool full = false;
        if (p->p_connect > 0) {
            for (;;) {
                const double u = uniform(&s);
                const double gap = p->p_connect < 1 ? floor(log1p(-u) / log_q) : 0;
                if (gap >= (double)(pairs - k))
                    break;
                k += (uint64_t)gap;
                if (m == cap) {
                    full = true;
                    break;
                }
                a[m] = (uint32_t)(k / n);
                b[m] = (uint32_t)(k % n);
                n_exc += a[m] < p->n_exc;
                m++;
                if (++k >= pairs)
                    break;
            }
        }
        if (full) {
            cap *= 2;
            continue;
        }
        *pre = a;
        *post = b;
        *n_syn = m;
        *n_exc_syn = n_exc;
        return ST_OK;
    }
}

st_snn_net *st_snn_cuba_net(const st_snn_cuba_params *p, const uint32_t *pre,
                            const uint32_t *post, size_t n_syn, int *err)
{
    int rc = check_cuba(p);
    st_snn_net *net = NULL;
    uint32_t *own_pre = NULL, *own_post = NULL, *row_ptr = NULL, *col = NULL, *fill = NULL;
    float *val = NULL;
    if (rc != ST_OK)
        goto done;
    const size_t n = (size_t)p->n_exc + p->n_inh;
    if (!pre) {
        size_t n_exc_syn;
        if ((rc = st_snn_cuba_synapses(p, &own_pre, &own_post, &n_syn, &n_exc_syn)) != ST_OK)
            goto done;
        pre = own_pre;
        post = own_post;
    }
    if (n_syn > UINT32_MAX) {
        rc = st_error(ST_ERR_INVALID, "CUBA network: %zu synapses; at most %u", n_syn,
                      UINT32_MAX);
        goto done;
    }
    /* The sparse node's rows: the excitatory current of each neuron (rows
       0..n), then its inhibitory current (n..2n); a synapse lands in the
       row its source's sign picks, with that source's weight. */
    row_ptr = calloc(2 * n + 1, sizeof *row_ptr);
    col = malloc((n_syn ? n_syn : 1) * sizeof *col);
    val = malloc((n_syn ? n_syn : 1) * sizeof *val);
    fill = malloc(2 * n * sizeof *fill);
    if (!row_ptr || !col || !val || !fill) {
        rc = st_error(ST_ERR_NOMEM, "out of memory for the CUBA network's %zu synapses", n_syn);
        goto done;
    }
    for (size_t k = 0; k < n_syn; k++) {
        if (pre[k] >= n || post[k] >= n) {
            rc = st_error(ST_ERR_INVALID, "CUBA synapse %zu: %u -> %u, but there are %zu "
                                          "neurons", k, pre[k], post[k], n);
            goto done;
        }
        row_ptr[post[k] + (pre[k] < p->n_exc ? 0 : n) + 1]++;
    }
    for (size_t r = 0; r < 2 * n; r++)
        row_ptr[r + 1] += row_ptr[r];
    memcpy(fill, row_ptr, 2 * n * sizeof *fill);
    for (size_t k = 0; k < n_syn; k++) {
        const bool exc = pre[k] < p->n_exc;
        const uint32_t at = fill[post[k] + (exc ? 0 : n)]++;
        col[at] = pre[k];
        val[at] = exc ? p->w_exc : p->w_inh;
    }

    st_snn_neuron_params np = st_snn_neuron_default_params(ST_SNN_LIF_EI);
    np.dt = p->dt;
    np.tau_mem_inv = (float)(1 / p->tau_mem_s);
    np.tau_syn_inv = (float)(1 / p->tau_exc_s);
    np.tau_syn_inh_inv = (float)(1 / p->tau_inh_s);
    np.v_leak = p->v_leak;
    np.v_th = p->v_th;
    np.v_reset = p->v_reset;
    /* Brian2 holds v for the steps after the spike step until T has passed:
       T/dt - 1 of them (see lif_ei in snn.h). */
    const double ref_steps = floor(p->refractory_s / p->dt + 1e-3) - 1;
    np.rho_reset = ref_steps > 0 ? (float)ref_steps : 0.0f;
    np.reset = ST_SNN_RESET_VALUE;

    if (!(net = st_snn_net_new(&rc)))
        goto done;
    const int pop = st_snn_net_add_neurons(net, "P", &np, n);
    const int syn = st_snn_net_add_sparse(net, "syn", 2 * n, n, row_ptr, col, val, NULL);
    if (pop < 0 || syn < 0) {
        rc = pop < 0 ? pop : syn;
        goto done;
    }
    if ((rc = st_snn_net_connect(net, pop, syn)) != ST_OK ||
        (rc = st_snn_net_connect(net, syn, pop)) != ST_OK || (rc = st_snn_net_finish(net)) != ST_OK)
        goto done;
done:
    free(own_pre);
    free(own_post);
    free(row_ptr);
    free(col);
    free(val);
    free(fill);
    if (rc != ST_OK)
        st_snn_net_destroy(&net);
    if (err)
        *err = rc;
    return net;
}

void st_snn_cuba_initial_v(const st_snn_cuba_params *p, float *v)
{
    /* Brian2's example: P.v = 'Vr + rand() * (Vt - Vr)'. A stream of its own
       (seed + 1), so that it does not depend on the synapses drawn. */
    uint64_t s = p->seed ^ 0x5851f42d4c957f2dULL;
    const size_t n = (size_t)p->n_exc + p->n_inh;
    for (size_t k = 0; k < n; k++)
        v[k] = (float)(p->v_reset + uniform(&s) * (p->v_th - p->v_reset));
}

/* ---- the streaming stack ---------------------------------------------------------- */

st_snn_stream_params st_snn_stream_default_params(void)
{
    return (st_snn_stream_params){
        .n_in = 256,
        .n_hidden = 512,
        .n_out = 256,
        .gain = 8.0f,
        .bias = true,
        .dt = 1e-3,
        .seed = 1,
    };
}

static void fill_uniform(uint64_t *s, float *x, size_t n, double half_width)
{
    for (size_t k = 0; k < n; k++)
        x[k] = (float)((2 * uniform(s) - 1) * half_width);
}

void st_snn_stream_weights(const st_snn_stream_params *p, float *w1, float *b1, float *w2,
                           float *b2)
{
    uint64_t s = p->seed;
    const double a1 = 1 / sqrt((double)p->n_in), a2 = 1 / sqrt((double)p->n_hidden);
    fill_uniform(&s, w1, (size_t)p->n_hidden * p->n_in, p->gain * a1);
    fill_uniform(&s, b1, p->n_hidden, p->bias ? a1 : 0);
    fill_uniform(&s, w2, (size_t)p->n_out * p->n_hidden, p->gain * a2);
    fill_uniform(&s, b2, p->n_out, p->bias ? a2 : 0);
}

st_snn_net *st_snn_stream_net(const st_snn_stream_params *p, int *err)
{
    int rc = ST_OK;
    st_snn_net *net = NULL;
    float *w1 = NULL, *w2 = NULL, *b1 = NULL, *b2 = NULL;
    if (!p->n_in || !p->n_hidden || !p->n_out || p->n_in > 1u << 20 || p->n_hidden > 1u << 20 ||
        p->n_out > 1u << 20 || !(p->dt > 0)) {
        rc = st_error(ST_ERR_INVALID, "streaming network: sizes 1 to 2^20 and dt > 0");
        goto done;
    }
    w1 = malloc((size_t)p->n_hidden * p->n_in * sizeof *w1);
    w2 = malloc((size_t)p->n_out * p->n_hidden * sizeof *w2);
    b1 = malloc(p->n_hidden * sizeof *b1);
    b2 = malloc(p->n_out * sizeof *b2);
    if (!w1 || !w2 || !b1 || !b2) {
        rc = st_error(ST_ERR_NOMEM, "out of memory for the streaming network's weights");
        goto done;
    }
    st_snn_stream_weights(p, w1, b1, w2, b2);
    st_snn_neuron_params lif = st_snn_neuron_default_params(ST_SNN_LIF);
    lif.dt = p->dt;
    if (!(net = st_snn_net_new(&rc)))
        goto done;
    const int in = st_snn_net_add_input(net, "in", p->n_in);
    const int fc1 =
        st_snn_net_add_dense(net, "fc1", p->n_hidden, p->n_in, w1, p->bias ? b1 : NULL);
    const int lif1 = st_snn_net_add_neurons(net, "lif1", &lif, p->n_hidden);
    const int fc2 =
        st_snn_net_add_dense(net, "fc2", p->n_out, p->n_hidden, w2, p->bias ? b2 : NULL);
    const int lif2 = st_snn_net_add_neurons(net, "lif2", &lif, p->n_out);
    const int ids[] = {in, fc1, lif1, fc2, lif2};
    for (size_t k = 0; k < 5; k++)
        if (ids[k] < 0) {
            rc = ids[k];
            goto done;
        }
    for (size_t k = 0; k + 1 < 5; k++)
        if ((rc = st_snn_net_connect(net, ids[k], ids[k + 1])) != ST_OK)
            goto done;
    rc = st_snn_net_finish(net);
done:
    free(w1);
    free(w2);
    free(b1);
    free(b2);
    if (rc != ST_OK)
        st_snn_net_destroy(&net);
    if (err)
        *err = rc;
    return net;
}
