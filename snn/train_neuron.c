/*  snn/train_neuron.c - the neuron populations of training, one time step
    forward (saving the state BPTT needs) and one step backward, and the
    surrogate spike functions.

    The forward of each model is snn/neuron.c's, operation for operation
    (Norse's update order): lif and li jump the current by the input, then v
    follows the jumped current, then the current decays; lsnn decays v, i and
    the threshold b with the old current, spikes against b, then charges the
    current; cubalif updates the current first and v from the new current.
    Spikes are strictly u = v - threshold > 0. The per-neuron coefficients
    a = dt tau_mem_inv, s = dt tau_syn_inv, ad = dt tau_adapt_inv and v_th
    are arrays (the trained ones, or the fixed value repeated), so one loop
    serves both.

    The backward recomputes each step from the saved state (v, i, b before
    the step, and the step's input) rather than storing every intermediate:
    three floats per neuron and step are kept instead of eight. Its
    equations are the derivatives of the forward with dz/du the surrogate's
    pseudo-derivative, and the reset contributing through z only when not
    detached (Norse detaches it: v' = (1 - z.detach()) vd + z.detach() v_reset).

    Tuned for [8 x 256] blocks (a chunk of samples x a population) per
    step: every loop runs over contiguous neurons and vectorises; the
    surrogate is evaluated in a loop of its own so that its choice is made
    once per step, not per neuron.
*/
#include "train_impl.h"

#include <assert.h>
#include <math.h>
#include <string.h>

#if defined(__GNUC__) && !defined(__clang__)
#define ST_VECTORIZE                                                                               \
    __attribute__((optimize("tree-vectorize", "vect-cost-model=dynamic", "no-trapping-math")))
#else
#define ST_VECTORIZE
#endif

/* Every loop below also gets an AVX2 clone, chosen at load time (an
   ifunc): the same float operations per element, so both give the same
   bits. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define TR_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define TR_CLONES
#endif

#define PI_F 3.14159265358979323846f

/* ---- surrogates ----------------------------------------------------------------- */

static const char *const surr_names[ST_TRAIN_N_SURR] = {"superspike", "fast_sigmoid", "arctan"};

const char *st_train_surrogate_name(st_train_surrogate s)
{
    return (unsigned)s < ST_TRAIN_N_SURR ? surr_names[s] : NULL;
}

int st_train_surrogate_from_name(const char *name, st_train_surrogate *out)
{
    for (int k = 0; k < ST_TRAIN_N_SURR; k++)
        if (name && !strcmp(name, surr_names[k])) {
            *out = (st_train_surrogate)k;
            return ST_OK;
        }
    return st_error(ST_ERR_NOT_FOUND,
                    "no surrogate '%s'; the surrogates are superspike, fast_sigmoid, arctan",
                    name ? name : "");
}

float st_train_surrogate_default_alpha(st_train_surrogate s)
{
    switch (s) {
    case ST_TRAIN_SURR_SUPERSPIKE: return 100.0f;
    case ST_TRAIN_SURR_FAST_SIGMOID: return 25.0f;
    case ST_TRAIN_SURR_ARCTAN: return 2.0f;
    default: return 0.0f;
    }
}

float st_train_surrogate_grad(st_train_surrogate s, float alpha, float u)
{
    if (s == ST_TRAIN_SURR_ARCTAN) {
        const float q = 0.5f * PI_F * alpha * u;
        return 0.5f * alpha / (1.0f + q * q);
    }
    const float d = alpha * fabsf(u) + 1.0f;
    return 1.0f / (d * d);
}

float st_train_surrogate_smooth(st_train_surrogate s, float alpha, float u)
{
    if (s == ST_TRAIN_SURR_ARCTAN)
        return 0.5f + atanf(0.5f * PI_F * alpha * u) / PI_F;
    return u / (1.0f + alpha * fabsf(u)) + 1.0f / alpha;
}

float tr_surr_smooth(const tr_spike_fn *f, float u)
{
    return st_train_surrogate_smooth(f->surr, f->alpha, u);
}

/* In place over u[0..m): sg[e] = the pseudo-derivative, u[e] = z (hard or
   smooth). One loop per surrogate, each vectorisable. */
TR_CLONES ST_VECTORIZE static void spike_and_grad(const tr_spike_fn *f, float *restrict u,
                                        float *restrict sg, size_t m)
{
    const float al = f->alpha;
    if (f->surr == ST_TRAIN_SURR_ARCTAN) {
        const float c = 0.5f * PI_F * al, h = 0.5f * al;
        for (size_t e = 0; e < m; e++) {
            const float q = c * u[e];
            sg[e] = h / (1.0f + q * q);
        }
    } else {
        for (size_t e = 0; e < m; e++) {
            const float d = al * fabsf(u[e]) + 1.0f;
            sg[e] = 1.0f / (d * d);
        }
    }
    if (f->smooth) {
        for (size_t e = 0; e < m; e++)
            u[e] = tr_surr_smooth(f, u[e]);
    } else {
        for (size_t e = 0; e < m; e++)
            u[e] = u[e] > 0.0f ? 1.0f : 0.0f;
    }
}

/* ---- forward -------------------------------------------------------------------------

   Hard spikes reset with a select, as the engine; smooth ones blend:
   value: (1 - z) vd + z v_reset; subtract: vd - z th. */

#define ST_INLINE static inline __attribute__((always_inline)) ST_VECTORIZE

/* The state after a spike decision: hard spikes select, as the engine
   does; smooth ones blend. */
ST_INLINE float after(bool smooth, int reset, float z, float vd, float thr, float vr)
{
    if (!smooth) {
        const float vs = vd - thr;
        const float a = reset == ST_SNN_RESET_VALUE ? vr : reset == ST_SNN_RESET_SUBTRACT ? vs : vd;
        return z > 0.0f ? a : vd;
    }
    return reset == ST_SNN_RESET_VALUE      ? (1.0f - z) * vd + z * vr
           : reset == ST_SNN_RESET_SUBTRACT ? vd - z * thr
                                            : vd;
}

ST_INLINE float spike_of(bool smooth, const tr_spike_fn *f, float u)
{
    return smooth ? tr_surr_smooth(f, u) : (u > 0.0f ? 1.0f : 0.0f);
}

/* The state before the step is read from v0, i0, b0 and the state after
   written to v1, i1, b1: the trainer keeps every step's state for the
   backward, so stepping from one slot into the next saves a copy. */
ST_INLINE void fwd_lif_t(const tr_layer *L, const tr_coef *c, const tr_spike_fn *f, size_t R,
                         const float *restrict x, const float *restrict v0,
                         const float *restrict i0, float *restrict v1, float *restrict i1,
                         float *restrict out, bool spiking, bool smooth, int reset)
{
    const size_t n = L->n;
    const float vl = L->vl, vr = L->vr;
    const float *restrict ca = c->a, *restrict cs = c->s, *restrict cth = c->th;
    for (size_t r = 0; r < R; r++) {
        const size_t o = r * n;
        for (size_t k = 0; k < n; k++) {
            const size_t e = o + k;
            const float ij = i0[e] + x[e];
            const float vd = v0[e] + ca[k] * ((vl - v0[e]) + ij);
            i1[e] = ij + (-cs[k]) * ij;
            if (!spiking) {
                v1[e] = vd;
                out[e] = vd;
            } else {
                const float z = spike_of(smooth, f, vd - cth[k]);
                v1[e] = after(smooth, reset, z, vd, cth[k], vr);
                out[e] = z;
            }
        }
    }
}

ST_INLINE void fwd_cuba_t(const tr_layer *L, const tr_coef *c, const tr_spike_fn *f, size_t R,
                          const float *restrict x, const float *restrict v0,
                          const float *restrict i0, float *restrict v1, float *restrict i1,
                          float *restrict out, bool smooth, int reset)
{
    const size_t n = L->n;
    const float vl = L->vl, vr = L->vr, w_in = L->w_in, rr = L->r;
    const float *restrict ca = c->a, *restrict cs = c->s, *restrict cth = c->th;
    for (size_t r = 0; r < R; r++) {
        const size_t o = r * n;
        for (size_t k = 0; k < n; k++) {
            const size_t e = o + k;
            const float in = i0[e] + cs[k] * ((-i0[e]) + w_in * x[e]);
            const float vd = v0[e] + ca[k] * ((vl - v0[e]) + rr * in);
            i1[e] = in;
            const float z = spike_of(smooth, f, vd - cth[k]);
            v1[e] = after(smooth, reset, z, vd, cth[k], vr);
            out[e] = z;
        }
    }
}

ST_INLINE void fwd_lsnn_t(const tr_layer *L, const tr_coef *c, const tr_spike_fn *f, size_t R,
                          const float *restrict x, const float *restrict v0,
                          const float *restrict i0, const float *restrict b0, float *restrict v1,
                          float *restrict i1, float *restrict b1, float *restrict out,
                          bool smooth, int reset)
{
    const size_t n = L->n;
    const float vl = L->vl, vr = L->vr, beta = L->beta;
    const float *restrict ca = c->a, *restrict cs = c->s, *restrict cad = c->ad;
    const float *restrict cth = c->th;
    for (size_t r = 0; r < R; r++) {
        const size_t o = r * n;
        for (size_t k = 0; k < n; k++) {
            const size_t e = o + k;
            const float vd = v0[e] + ca[k] * ((vl - v0[e]) + i0[e]);
            const float id = i0[e] + (-cs[k]) * i0[e];
            const float bd = b0[e] + cad[k] * (cth[k] - b0[e]), bj = bd + beta;
            const float z = spike_of(smooth, f, vd - bd);
            v1[e] = after(smooth, reset, z, vd, bd, vr);
            b1[e] = smooth ? bd + beta * z : (z > 0.0f ? bj : bd);
            out[e] = z;
            i1[e] = id + x[e];
        }
    }
}

/* One instance per (model, reset, hard or smooth): straight loops. */
#define FWD_INSTANCES(NAME, CALL)                                                                  \
    TR_CLONES ST_VECTORIZE static void NAME##_hard_value(FWD_ARGS)                                 \
    {                                                                                              \
        CALL(false, ST_SNN_RESET_VALUE);                                                           \
    }                                                                                              \
    TR_CLONES ST_VECTORIZE static void NAME##_hard_sub(FWD_ARGS)                                   \
    {                                                                                              \
        CALL(false, ST_SNN_RESET_SUBTRACT);                                                        \
    }                                                                                              \
    TR_CLONES ST_VECTORIZE static void NAME##_hard_none(FWD_ARGS)                                  \
    {                                                                                              \
        CALL(false, ST_SNN_RESET_NONE);                                                            \
    }                                                                                              \
    ST_VECTORIZE static void NAME##_smooth(FWD_ARGS)                                               \
    {                                                                                              \
        CALL(true, (int)L->p.neuron.reset);                                                        \
    }                                                                                              \
    static void NAME(FWD_ARGS)                                                                     \
    {                                                                                              \
        if (f->smooth)                                                                             \
            NAME##_smooth(FWD_PASS);                                                               \
        else if (L->p.neuron.reset == ST_SNN_RESET_VALUE)                                          \
            NAME##_hard_value(FWD_PASS);                                                           \
        else if (L->p.neuron.reset == ST_SNN_RESET_SUBTRACT)                                       \
            NAME##_hard_sub(FWD_PASS);                                                             \
        else                                                                                       \
            NAME##_hard_none(FWD_PASS);                                                            \
    }

#define FWD_ARGS                                                                                   \
    const tr_layer *L, const tr_coef *c, const tr_spike_fn *f, size_t R, const float *x,          \
        const float *v0, const float *i0, const float *b0, float *v1, float *i1, float *b1,        \
        float *out
#define FWD_PASS L, c, f, R, x, v0, i0, b0, v1, i1, b1, out
#define CALL_LIF(S, RS) fwd_lif_t(L, c, f, R, x, v0, i0, v1, i1, out, true, S, RS)
#define CALL_CUBA(S, RS) fwd_cuba_t(L, c, f, R, x, v0, i0, v1, i1, out, S, RS)
#define CALL_LSNN(S, RS) fwd_lsnn_t(L, c, f, R, x, v0, i0, b0, v1, i1, b1, out, S, RS)
FWD_INSTANCES(fwd_lif, CALL_LIF)
FWD_INSTANCES(fwd_cuba, CALL_CUBA)
FWD_INSTANCES(fwd_lsnn, CALL_LSNN)

TR_CLONES ST_VECTORIZE static void fwd_li(FWD_ARGS)
{
    fwd_lif_t(L, c, f, R, x, v0, i0, v1, i1, out, false, false, 0);
}


void tr_neuron_forward(const tr_layer *L, const tr_coef *c, const tr_spike_fn *f, size_t R,
                       const float *x, const float *v0, const float *i0, const float *b0,
                       float *v1, float *i1, float *b1, float *out)
{
    switch (L->model) {
    case ST_SNN_LIF: fwd_lif(L, c, f, R, x, v0, i0, b0, v1, i1, b1, out); break;
    case ST_SNN_LI: fwd_li(L, c, f, R, x, v0, i0, b0, v1, i1, b1, out); break;
    case ST_SNN_CUBALIF: fwd_cuba(L, c, f, R, x, v0, i0, b0, v1, i1, b1, out); break;
    case ST_SNN_LSNN: fwd_lsnn(L, c, f, R, x, v0, i0, b0, v1, i1, b1, out); break;
    default: break;
    }
}

/* ---- backward ------------------------------------------------------------------------

   With cv = [reset by value], cs = [reset by subtraction] and nd = [reset
   not detached], for v' = R(vd, z, thr):
     dR/dvd = 1 - cv z,  dR/dz = cv (v_reset - vd) - cs thr,  dR/dthr = -cs z. */

typedef struct {
    float cv, cs, nd;
} reset_d;

static reset_d reset_derivs(const tr_layer *L, const tr_spike_fn *f)
{
    return (reset_d){
        .cv = L->p.neuron.reset == ST_SNN_RESET_VALUE ? 1.0f : 0.0f,
        .cs = L->p.neuron.reset == ST_SNN_RESET_SUBTRACT ? 1.0f : 0.0f,
        .nd = f->detach ? 0.0f : 1.0f,
    };
}

/* u of every neuron, recomputed from the saved state: one loop per model */
TR_CLONES ST_VECTORIZE static void recompute_u(const tr_layer *L, const tr_coef *c, size_t R,
                                     const float *restrict sv, const float *restrict si,
                                     const float *restrict sb, const float *restrict x,
                                     float *restrict u)
{
    const size_t n = L->n;
    const float vl = L->vl, w_in = L->w_in, rr = L->r;
    const float *restrict ca = c->a, *restrict cs = c->s, *restrict cad = c->ad;
    const float *restrict cth = c->th;
    for (size_t r = 0; r < R; r++) {
        const size_t o = r * n;
        const float *v = sv + o, *i = si + o, *xr = x + o;
        float *ur = u + o;
        if (L->model == ST_SNN_CUBALIF) {
            for (size_t k = 0; k < n; k++) {
                const float in = i[k] + cs[k] * ((-i[k]) + w_in * xr[k]);
                ur[k] = (v[k] + ca[k] * ((vl - v[k]) + rr * in)) - cth[k];
            }
        } else if (L->model == ST_SNN_LSNN) {
            const float *b = sb + o;
            for (size_t k = 0; k < n; k++) {
                const float vd = v[k] + ca[k] * ((vl - v[k]) + i[k]);
                ur[k] = vd - (b[k] + cad[k] * (cth[k] - b[k]));
            }
        } else {
            for (size_t k = 0; k < n; k++)
                ur[k] = (v[k] + ca[k] * ((vl - v[k]) + (i[k] + xr[k]))) - cth[k];
        }
    }
}

/* Every array a restrict parameter: GCC then vectorises without alias
   checks (which, past its limit of ten, make it give up). */
#define BWD_COMMON                                                                                 \
    size_t R, size_t n, float vl, const float *restrict ca, const float *restrict cs,             \
        float *restrict ga, float *restrict gs, const float *restrict sv,                          \
        const float *restrict si, float *restrict xg, const float *restrict gout,                  \
        float *restrict gv, float *restrict gi

TR_CLONES ST_VECTORIZE static void bwd_lif(BWD_COMMON, float vr, reset_d d,
                                           const float *restrict cth, float *restrict gth,
                                           const float *restrict Z, const float *restrict SG)
{
    const float d_nd = d.nd, d_cv = d.cv, d_cs = d.cs;
    for (size_t r = 0; r < R; r++) {
        const size_t o = r * n;
        for (size_t k = 0; k < n; k++) {
            const size_t e = o + k;
            const float a = ca[k], s = cs[k], th = cth[k];
            const float vv = sv[e], ii = si[e], xx = xg[e];
            const float ij = ii + xx;
            const float vd = vv + a * ((vl - vv) + ij);
            const float z = Z[e], gvn = gv[e], gin = gi[e];
            const float dz = gout[e] + d_nd * gvn * (d_cv * (vr - vd) - d_cs * th);
            const float gu = dz * SG[e];
            const float gvd = gvn * (1.0f - d_cv * z) + gu;
            const float gij = gvd * a + gin * (1.0f - s);
            ga[k] += gvd * ((vl - vv) + ij);
            gs[k] -= gin * ij;
            gth[k] += -gu - d_cs * gvn * z;
            xg[e] = gij;
            gv[e] = gvd * (1.0f - a);
            gi[e] = gij;
        }
    }
}

TR_CLONES ST_VECTORIZE static void bwd_li(BWD_COMMON)
{
    for (size_t r = 0; r < R; r++) {
        const size_t o = r * n;
        for (size_t k = 0; k < n; k++) {
            const size_t e = o + k;
            const float a = ca[k], s = cs[k];
            const float vv = sv[e], ij = si[e] + xg[e];
            const float gvd = gout[e] + gv[e], gin = gi[e];
            const float gij = gvd * a + gin * (1.0f - s);
            ga[k] += gvd * ((vl - vv) + ij);
            gs[k] -= gin * ij;
            xg[e] = gij;
            gv[e] = gvd * (1.0f - a);
            gi[e] = gij;
        }
    }
}

TR_CLONES ST_VECTORIZE static void bwd_cuba(BWD_COMMON, float vr, float w, float rr, reset_d d,
                                  const float *restrict cth, float *restrict gth,
                                  const float *restrict Z, const float *restrict SG)
{
    const float d_nd = d.nd, d_cv = d.cv, d_cs = d.cs;
    for (size_t r = 0; r < R; r++) {
        const size_t o = r * n;
        for (size_t k = 0; k < n; k++) {
            const size_t e = o + k;
            const float a = ca[k], s = cs[k], th = cth[k];
            const float vv = sv[e], ii = si[e], xx = xg[e];
            const float drive = (-ii) + w * xx;
            const float in = ii + s * drive;
            const float vd = vv + a * ((vl - vv) + rr * in);
            const float z = Z[e], gvn = gv[e];
            const float dz = gout[e] + d_nd * gvn * (d_cv * (vr - vd) - d_cs * th);
            const float gu = dz * SG[e];
            const float gvd = gvn * (1.0f - d_cv * z) + gu;
            const float gint = gi[e] + gvd * a * rr;
            ga[k] += gvd * ((vl - vv) + rr * in);
            gs[k] += gint * drive;
            gth[k] += -gu - d_cs * gvn * z;
            xg[e] = gint * s * w;
            gi[e] = gint * (1.0f - s);
            gv[e] = gvd * (1.0f - a);
        }
    }
}

/* lsnn: xg holds only the output here (the input's gradient is that of
   the next current, gi) */
TR_CLONES ST_VECTORIZE static void bwd_lsnn(BWD_COMMON, float vr, float beta, reset_d d,
                                  const float *restrict cad, const float *restrict cth,
                                  float *restrict gad, float *restrict gth,
                                  const float *restrict sb, float *restrict gb,
                                  const float *restrict Z, const float *restrict SG)
{
    const float d_nd = d.nd, d_cv = d.cv, d_cs = d.cs;
    for (size_t r = 0; r < R; r++) {
        const size_t o = r * n;
        for (size_t k = 0; k < n; k++) {
            const size_t e = o + k;
            const float a = ca[k], s = cs[k], ad = cad[k], th = cth[k];
            const float vv = sv[e], ii = si[e], bb = sb[e];
            const float vd = vv + a * ((vl - vv) + ii);
            const float bd = bb + ad * (th - bb);
            const float z = Z[e], gvn = gv[e], gin = gi[e], gbn = gb[e];
            const float dz =
                gout[e] + d_nd * gvn * (d_cv * (vr - vd) - d_cs * bd) + gbn * beta;
            const float gu = dz * SG[e];
            const float gvd = gvn * (1.0f - d_cv * z) + gu;
            const float gbd = gbn - gu - d_cs * gvn * z;
            ga[k] += gvd * ((vl - vv) + ii);
            gs[k] -= gin * ii;
            gad[k] += gbd * (th - bb);
            gth[k] += gbd * ad;
            xg[e] = gin;
            gv[e] = gvd * (1.0f - a);
            gi[e] = gvd * a + gin * (1.0f - s);
            gb[e] = gbd * (1.0f - ad);
        }
    }
}

void tr_neuron_backward(const tr_layer *L, const tr_coef *c, const tr_spike_fn *f, size_t R,
                        const float *sv, const float *si, const float *sb, const float *x,
                        const float *gout, float *gv, float *gi, float *gb, float *gx,
                        const tr_coef_grad *g, float *scratch)
{
    const size_t n = L->n, m = R * n;
    assert(gx == x); /* in place: the input's gradient replaces the input */
    (void)x;
    float *Z = scratch, *SG = scratch + m, *junk = scratch + 2 * m;
    /* gradients nobody asked for go to scratch: no branch in the loops */
    float *ga = g->a ? g->a : junk, *gs = g->s ? g->s : junk + n;
    float *gad = g->ad ? g->ad : junk + 2 * n, *gth = g->th ? g->th : junk + 3 * n;
    if (L->model == ST_SNN_LI) {
        bwd_li(R, n, L->vl, c->a, c->s, ga, gs, sv, si, gx, gout, gv, gi);
        return;
    }
    recompute_u(L, c, R, sv, si, sb, x, Z);
    spike_and_grad(f, Z, SG, m);
    const reset_d d = reset_derivs(L, f);
    switch (L->model) {
    case ST_SNN_LIF:
        bwd_lif(R, n, L->vl, c->a, c->s, ga, gs, sv, si, gx, gout, gv, gi, L->vr, d, c->th, gth,
                Z, SG);
        break;
    case ST_SNN_CUBALIF:
        bwd_cuba(R, n, L->vl, c->a, c->s, ga, gs, sv, si, gx, gout, gv, gi, L->vr, L->w_in, L->r,
                 d, c->th, gth, Z, SG);
        break;
    case ST_SNN_LSNN:
        bwd_lsnn(R, n, L->vl, c->a, c->s, ga, gs, sv, si, gx, gout, gv, gi, L->vr, L->beta, d,
                 c->ad, c->th, gad, gth, sb, gb, Z, SG);
        break;
    default: break;
    }
}
