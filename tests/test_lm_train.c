/*  tests/test_lm_train.c - suite `lm_train`: training the spiking language
    model (snn/lm_train.h) and the agent's dialogue (snn/dialogue.h).

    Gradients are checked three ways, each saying what it can:
      - each operation's backward against central finite differences of its
        own forward (double-precision differences of the float code), with
        the LIF in the smooth-step forward, where the ATan surrogate is the
        exact derivative;
      - the whole model against finite differences: the dense twin as is
        (smooth everywhere but the relu kinks), the spiking model with
        smooth_forward (the surrogate then is the derivative of the function
        computed, so all of the backward is checked, reset path included),
        and the hard spiking model only downstream of the last LIF (head,
        ln_out), where the hard forward is smooth;
      - the hard spiking model and the dense twin against PyTorch autograd
        (tests/fixtures/lm_grad_*.bin, tools/make_lm_grad_fixtures.py): two
        chunks with the state carried and detached, L2Wrap, and one clipped
        Adam step.
    Then: results independent of the thread count (bit for bit), a
    checkpoint resumed mid-run continues bit for bit, a short run lowers
    the loss and the engine's evaluation agrees with the trainer's loss,
    the optimizer's schedule; and for the dialogue: number words, the
    tools, normalisation, the corpus never containing a held-out request,
    the answer mask, the checker, replies never silent, the CLI's message
    when no model is built. Under ST_MEMCHECK the runs are shorter.
*/
#include "testutil.h"

#include "snn/dialogue.h"
#include "snn/lm.h"
#include "snn/lm_train.h"
#include "snn/lm_train_impl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

static bool memcheck(void)
{
    return getenv("ST_MEMCHECK") != NULL;
}

/* ST_VERBOSE=1 prints the measured agreement of each gradient check. */
static bool verbose(void)
{
    return getenv("ST_VERBOSE") != NULL;
}

static uint64_t rng_s = 12345;

static double urand(void)
{
    rng_s ^= rng_s << 13;
    rng_s ^= rng_s >> 7;
    rng_s ^= rng_s << 17;
    return (double)(rng_s >> 11) * (1.0 / 9007199254740992.0);
}

static void fill(float *x, size_t n, double lo, double hi)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(lo + (hi - lo) * urand());
}

/* ---- the matrix kernel --------------------------------------------------------------- */

static void test_gemm(void)
{
    const size_t shapes[][3] = {{1, 1, 1}, {7, 9, 5}, {6, 16, 8}, {13, 33, 17}, {24, 65, 128},
                                {128, 24, 300}};
    lmt_gemm_fn kern[2] = {lmt_gemm_generic, lmt_gemm_avx2 && st_lm_cpu_has_avx2()
                                                 ? lmt_gemm_avx2
                                                 : lmt_gemm_generic};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        size_t M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        float *A = malloc(M * K * 4), *At = malloc(M * K * 4), *B = malloc(K * N * 4);
        float *C = malloc(M * N * 4), *C0 = malloc(M * N * 4);
        fill(A, M * K, -1, 1);
        fill(B, K * N, -1, 1);
        fill(C0, M * N, -1, 1);
        for (size_t i = 0; i < M; i++)
            for (size_t p = 0; p < K; p++)
                At[p * M + i] = A[i * K + p];
        for (int k = 0; k < 2; k++)
            for (int layout = 0; layout < 2; layout++)
                for (int acc = 0; acc < 2; acc++) {
                    memcpy(C, C0, M * N * 4);
                    if (layout == 0)
                        kern[k](M, N, K, A, K, 1, B, N, C, N, acc);
                    else
                        kern[k](M, N, K, At, 1, M, B, N, C, N, acc);
                    double worst = 0;
                    for (size_t i = 0; i < M; i++)
                        for (size_t j = 0; j < N; j++) {
                            double ref = acc ? C0[i * N + j] : 0;
                            for (size_t p = 0; p < K; p++)
                                ref += (double)A[i * K + p] * B[p * N + j];
                            double d = fabs(ref - C[i * N + j]);
                            worst = d > worst ? d : worst;
                        }
                    CU_ASSERT(worst < 1e-5 * (double)K);
                }
        free(A);
        free(At);
        free(B);
        free(C);
        free(C0);
    }
}

/* ---- each operation against finite differences ------------------------------------------ */

/* Central difference of f along the coordinate x[i]. */
typedef double (*scalar_fn)(void *ctx);

static double fd(scalar_fn f, void *ctx, float *x, double h)
{
    float old = *x;
    *x = (float)(old + h);
    double hi = (double)*x;
    double fp = f(ctx);
    *x = (float)(old - h);
    double lo = (double)*x;
    double fm = f(ctx);
    *x = old;
    return (fp - fm) / (hi - lo);
}

static bool close_to(double a, double b, double rel, double abs_tol)
{
    return fabs(a - b) <= abs_tol + rel * fmax(fabs(a), fabs(b));
}

enum { N_OP = 11, T_OP = 6 }; /* 8 channels in SIMD, 3 in the tail */

typedef struct {
    float x[T_OP * N_OP], g[N_OP], b[N_OP], w[T_OP * N_OP]; /* w: the loss weights */
    float y[T_OP * N_OP], xh[T_OP * N_OP], rs[T_OP];
} ln_ctx;

static double ln_loss(void *c)
{
    ln_ctx *k = c;
    lmt_ln_forward(k->x, k->g, k->b, N_OP, T_OP, k->y, k->xh, k->rs);
    double s = 0;
    for (size_t i = 0; i < T_OP * N_OP; i++)
        s += (double)k->w[i] * k->y[i];
    return s;
}

static void test_op_layernorm(void)
{
    ln_ctx k;
    fill(k.x, T_OP * N_OP, -2, 2);
    fill(k.g, N_OP, 0.5, 1.5);
    fill(k.b, N_OP, -0.5, 0.5);
    fill(k.w, T_OP * N_OP, -1, 1);
    ln_loss(&k);
    float gx[T_OP * N_OP] = {0}, gg[N_OP] = {0}, gb[N_OP] = {0};
    lmt_ln_backward(k.w, k.xh, k.rs, k.g, N_OP, T_OP, gx, gg, gb);
    for (size_t i = 0; i < T_OP * N_OP; i++)
        CU_ASSERT(close_to(gx[i], fd(ln_loss, &k, &k.x[i], 1e-2), 2e-3, 2e-4));
    for (size_t i = 0; i < N_OP; i++) {
        CU_ASSERT(close_to(gg[i], fd(ln_loss, &k, &k.g[i], 1e-2), 2e-3, 2e-4));
        CU_ASSERT(close_to(gb[i], fd(ln_loss, &k, &k.b[i], 1e-2), 2e-3, 2e-4));
    }
}

typedef struct {
    float a[T_OP * N_OP], prev[N_OP], m[N_OP], w[T_OP * N_OP], out[T_OP * N_OP];
} mix_ctx;

static double mix_loss(void *c)
{
    mix_ctx *k = c;
    lmt_mix_forward(k->a, k->prev, k->m, N_OP, T_OP, k->out);
    double s = 0;
    for (size_t i = 0; i < T_OP * N_OP; i++)
        s += (double)k->w[i] * k->out[i];
    return s;
}

static void test_op_token_shift(void)
{
    mix_ctx k;
    fill(k.a, T_OP * N_OP, -2, 2);
    fill(k.prev, N_OP, -2, 2);
    fill(k.m, N_OP, 0, 1);
    fill(k.w, T_OP * N_OP, -1, 1);
    float ga[T_OP * N_OP] = {0}, gm[N_OP] = {0};
    lmt_mix_backward(k.w, k.a, k.prev, k.m, N_OP, T_OP, ga, gm);
    for (size_t i = 0; i < T_OP * N_OP; i++)
        CU_ASSERT(close_to(ga[i], fd(mix_loss, &k, &k.a[i], 1e-2), 1e-3, 1e-4));
    for (size_t i = 0; i < N_OP; i++)
        CU_ASSERT(close_to(gm[i], fd(mix_loss, &k, &k.m[i], 1e-2), 1e-3, 1e-4));
}

typedef struct {
    float k[T_OP * N_OP], v[T_OP * N_OP], u[N_OP], td[N_OP], w[N_OP];
    float A0[N_OP], B0[N_OP], P0[N_OP], A[N_OP], B[N_OP], P[N_OP];
    float y[T_OP * N_OP], sA[T_OP * N_OP], sB[T_OP * N_OP], sP[T_OP * N_OP], lw[T_OP * N_OP];
} wkv_ctx;

static double wkv_loss(void *c)
{
    wkv_ctx *k = c;
    for (size_t i = 0; i < N_OP; i++)
        k->w[i] = -expf(k->td[i]);
    memcpy(k->A, k->A0, sizeof k->A);
    memcpy(k->B, k->B0, sizeof k->B);
    memcpy(k->P, k->P0, sizeof k->P);
    lmt_wkv_forward(k->k, k->v, k->u, k->w, k->A, k->B, k->P, N_OP, T_OP, k->y, k->sA, k->sB,
                    k->sP);
    double s = 0;
    for (size_t i = 0; i < T_OP * N_OP; i++)
        s += (double)k->lw[i] * k->y[i];
    return s;
}

static void check_wkv(bool fresh, float kscale)
{
    wkv_ctx k;
    fill(k.k, T_OP * N_OP, -kscale, kscale);
    fill(k.v, T_OP * N_OP, -2, 2);
    fill(k.u, N_OP, -1, 1);
    fill(k.td, N_OP, -2, 1);
    fill(k.lw, T_OP * N_OP, -1, 1);
    for (size_t i = 0; i < N_OP; i++) {
        k.A0[i] = fresh ? 0 : (float)(urand() * 2 - 1);
        k.B0[i] = fresh ? 0 : (float)(0.2 + urand());
        k.P0[i] = fresh ? ST_LM_P_INIT : (float)(urand() * 4 - 2);
    }
    wkv_loss(&k);
    float gk[T_OP * N_OP], gv[T_OP * N_OP], gu[N_OP] = {0}, gw[N_OP] = {0};
    lmt_wkv_backward(k.k, k.v, k.u, k.w, k.sA, k.sB, k.sP, k.lw, N_OP, T_OP, gk, gv, gu, gw);
    for (size_t i = 0; i < T_OP * N_OP; i++) {
        CU_ASSERT(close_to(gk[i], fd(wkv_loss, &k, &k.k[i], 1e-2), 5e-3, 2e-4));
        CU_ASSERT(close_to(gv[i], fd(wkv_loss, &k, &k.v[i], 1e-2), 5e-3, 2e-4));
    }
    float w[N_OP];
    memcpy(w, k.w, sizeof w);
    for (size_t i = 0; i < N_OP; i++) {
        CU_ASSERT(close_to(gu[i], fd(wkv_loss, &k, &k.u[i], 1e-2), 5e-3, 2e-4));
        /* dL/d(time_decay) = dL/dw * w */
        double num = fd(wkv_loss, &k, &k.td[i], 1e-2);
        CU_ASSERT(close_to(gw[i] * w[i], num, 5e-3, 2e-4));
    }
}

static void test_op_wkv(void)
{
    check_wkv(true, 2);   /* from a fresh state: p = -1e30 */
    check_wkv(false, 2);  /* from a carried state */
    check_wkv(false, 30); /* large keys: the scaled form must not overflow */
}

typedef struct {
    lmt_spike sp;
    float c[T_OP * N_OP], mem0[N_OP], mem[N_OP], h[T_OP * N_OP], x[T_OP * N_OP];
    float w[T_OP * N_OP];
} lif_ctx;

static double lif_loss(void *c)
{
    lif_ctx *k = c;
    memcpy(k->mem, k->mem0, sizeof k->mem);
    memset(k->x, 0, sizeof k->x);
    lmt_lif_forward(&k->sp, k->c, k->mem, N_OP, T_OP, k->h, k->x);
    double s = 0;
    for (size_t i = 0; i < T_OP * N_OP; i++)
        s += (double)k->w[i] * k->x[i];
    return s;
}

static void test_op_lif(void)
{
    for (int detach = 0; detach < 2; detach++) {
        lif_ctx k = {.sp = {.alpha = 2, .smooth = true, .detach = detach}};
        fill(k.c, T_OP * N_OP, -1, 4);
        fill(k.mem0, N_OP, 0, 1);
        fill(k.w, T_OP * N_OP, -1, 1);
        lif_loss(&k);
        float gc[T_OP * N_OP];
        lmt_lif_backward(&k.sp, k.w, k.h, N_OP, T_OP, gc);
        for (size_t i = 0; i < T_OP * N_OP; i++) {
            /* detaching drops a term: the gradient is then no longer the derivative */
            double f = fd(lif_loss, &k, &k.c[i], 1e-3);
            if (!detach) {
                CU_ASSERT(close_to(gc[i], f, 5e-3, 2e-4));
            }
        }
    }
    /* hard spikes: the forward is the inference kernel's, the surrogate the ATan */
    lmt_spike hard = {.alpha = 2};
    CU_ASSERT_EQUAL(lmt_spike_fwd(&hard, 0.0f), 1.0f);
    CU_ASSERT_EQUAL(lmt_spike_fwd(&hard, -1e-7f), 0.0f);
    CU_ASSERT(fabsf(lmt_spike_grad(&hard, 0.0f) - 1.0f) < 1e-7f);
    CU_ASSERT(fabsf(lmt_spike_grad(&hard, 1.0f) - 1.0f / (1.0f + (float)(M_PI * M_PI))) < 1e-6f);
}

typedef struct {
    float r[T_OP * N_OP], v[T_OP * N_OP], o[T_OP * N_OP], w[T_OP * N_OP];
    float z[T_OP * 7], z0[T_OP * 7];
    int32_t tgt[T_OP];
    uint8_t mask[T_OP];
} gate_ctx;

static double gate_loss(void *c)
{
    gate_ctx *k = c;
    lmt_sigmul_forward(k->r, k->v, T_OP * N_OP, k->o);
    double s = 0;
    for (size_t i = 0; i < T_OP * N_OP; i++)
        s += (double)k->w[i] * k->o[i];
    return s;
}

static double ce_loss(void *c)
{
    gate_ctx *k = c;
    memcpy(k->z, k->z0, sizeof k->z);
    return lmt_ce(k->z, k->tgt, k->mask, 7, T_OP, 1, 0);
}

static void test_op_gate_and_loss(void)
{
    gate_ctx k;
    fill(k.r, T_OP * N_OP, -3, 3);
    fill(k.v, T_OP * N_OP, -2, 2);
    fill(k.w, T_OP * N_OP, -1, 1);
    float gr[T_OP * N_OP], gv[T_OP * N_OP];
    lmt_sigmul_backward(k.w, k.r, k.v, T_OP * N_OP, gr, gv);
    for (size_t i = 0; i < T_OP * N_OP; i++) {
        CU_ASSERT(close_to(gr[i], fd(gate_loss, &k, &k.r[i], 1e-2), 2e-3, 1e-4));
        CU_ASSERT(close_to(gv[i], fd(gate_loss, &k, &k.v[i], 1e-2), 2e-3, 1e-4));
    }
    fill(k.z0, T_OP * 7, -3, 3);
    for (size_t t = 0; t < T_OP; t++) {
        k.tgt[t] = (int32_t)(urand() * 7);
        k.mask[t] = t % 3 != 1;
    }
    ce_loss(&k);
    float g[T_OP * 7];
    memcpy(g, k.z, sizeof g);
    for (size_t i = 0; i < T_OP * 7; i++)
        CU_ASSERT(close_to(g[i], fd(ce_loss, &k, &k.z0[i], 1e-2), 2e-3, 1e-4));
    for (size_t i = 0; i < 7; i++)
        CU_ASSERT_EQUAL(g[1 * 7 + i], 0.0f); /* a masked row */
}

/* Every per-channel operation: the SIMD path against the portable one. */
static void test_simd_matches_generic(void)
{
    enum { n = 19, T = 7, NT = n * T };
    float k[NT], v[NT], r[NT], g[NT], c[NT], u[n], w[n];
    fill(k, NT, -6, 6);
    fill(v, NT, -2, 2);
    fill(r, NT, -8, 8);
    fill(g, NT, -1, 1);
    fill(c, NT, -1, 5);
    fill(u, n, -1, 1);
    fill(w, n, -3, -0.01);
    float out[2][12][NT];
    size_t fired[2];
    memset(out, 0, sizeof out);
    float A0[n], B0[n], P0[n], mem0[n];
    for (size_t i = 0; i < n; i++) {
        A0[i] = (float)urand();
        B0[i] = 0.5f + (float)urand();
        P0[i] = i % 3 ? (float)urand() : ST_LM_P_INIT;
        mem0[i] = (float)urand() * 0.9f;
    }
    for (int path = 0; path < 2; path++) {
        lmt_use_generic(path == 0);
        float A[n], B[n], P[n], mem[n], gu[n] = {0}, gw[n] = {0};
        memcpy(A, A0, sizeof A);
        memcpy(B, B0, sizeof B);
        memcpy(P, P0, sizeof P);
        memcpy(mem, mem0, sizeof mem);
        float sA[NT], sB[NT], sP[NT];
        lmt_wkv_forward(k, v, u, w, A, B, P, n, T, out[path][0], sA, sB, sP);
        lmt_wkv_backward(k, v, u, w, sA, sB, sP, g, n, T, out[path][1], out[path][2], gu, gw);
        memcpy(out[path][3], gu, sizeof gu);
        memcpy(out[path][3] + n, gw, sizeof gw);
        memcpy(out[path][3] + 2 * n, A, sizeof A);
        lmt_spike sp = {.alpha = 2};
        fired[path] = lmt_lif_forward(&sp, c, mem, n, T, out[path][4], out[path][5]);
        lmt_lif_backward(&sp, g, out[path][4], n, T, out[path][6]);
        sp.detach = true;
        lmt_lif_backward(&sp, g, out[path][4], n, T, out[path][7]);
        lmt_sigmul_forward(r, v, NT, out[path][8]);
        lmt_sigmul_backward(g, r, v, NT, out[path][9], out[path][10]);
        memcpy(out[path][11], g, sizeof g);
        lmt_relu2_backward(c, NT, out[path][11]);
    }
    lmt_use_generic(false);
    CU_ASSERT_EQUAL(fired[0], fired[1]);
    CU_ASSERT(fired[0] > 0);
    for (int q = 0; q < 12; q++) {
        double worst = 0;
        for (size_t i = 0; i < NT; i++)
            worst = fmax(worst, fabs((double)out[0][q][i] - out[1][q][i]) /
                                    (1e-3 + fabs((double)out[0][q][i])));
        CU_ASSERT(worst < 1e-4);
        if (worst >= 1e-4)
            fprintf(stderr, "\n  output %d: SIMD and portable differ by %.3g\n", q, worst);
    }
}

/* ---- the whole model against finite differences ------------------------------------------ */

typedef struct {
    st_lm_model *m;
    lmt_net net;
    lmt_ws *ws;
    float *wt, *grad, *state;
    int32_t tok[64];
    size_t T;
} model_ctx;

static double model_loss(void *c)
{
    model_ctx *k = c;
    st_lm_model_prepare(k->m);
    lmt_transpose_weights(k->m, k->m->w.params, k->wt);
    st_lm_state *s = st_lm_state_new(k->m, NULL);
    st_lm_state_save(s, k->state, st_lm_state_len(k->m));
    st_lm_state_destroy(&s);
    memset(k->grad, 0, k->m->w.n_params * sizeof(float));
    return lmt_row(&k->net, k->ws, k->tok, NULL, k->state, 1.0f / (float)k->T, 0, k->grad,
                   NULL) /
           (double)k->T;
}

static void model_ctx_init(model_ctx *k, bool spiking, bool smooth, float out_scale)
{
    st_lm_config c = {.n_layer = 2, .n_embd = 6, .vocab = 9, .n_ffn = 12, .spiking = spiking};
    k->m = st_lm_model_new(&c, NULL);
    st_lm_model_randomize(k->m, 7, out_scale);
    k->T = 10;
    for (size_t t = 0; t <= k->T; t++)
        k->tok[t] = (int32_t)((t * 5 + 2) % 9);
    k->wt = calloc(k->m->w.n_params, sizeof(float));
    k->grad = calloc(k->m->w.n_params, sizeof(float));
    k->state = calloc(st_lm_state_len(k->m), sizeof(float));
    k->ws = lmt_ws_new(k->m, k->T);
    k->net = (lmt_net){.m = k->m,
                       .params = k->m->w.params,
                       .wt = k->wt,
                       .gemm = lmt_gemm_best(),
                       .spike = {.alpha = 2, .smooth = smooth},
                       .T = k->T};
}

static void model_ctx_free(model_ctx *k)
{
    lmt_ws_destroy(&k->ws);
    free(k->wt);
    free(k->grad);
    free(k->state);
    st_lm_model_destroy(&k->m);
}

/* The directional derivative along random directions, and each tensor's
   largest component, against central differences. `only`: check only
   tensors whose name starts with one of these (NULL: all). */
static void check_model(model_ctx *k, const char *const *only, double tol)
{
    const size_t np = k->m->w.n_params;
    float *g = malloc(np * sizeof(float)), *dir = malloc(np * sizeof(float));
    float *p = k->m->w.params, *save = malloc(np * sizeof(float));
    model_loss(k);
    memcpy(g, k->grad, np * sizeof(float));
    memcpy(save, p, np * sizeof(float));
    const size_t nt = st_lm_model_tensor_count(k->m);
    bool *use = calloc(np, 1);
    for (size_t t = 0; t < nt; t++) {
        st_lm_tensor te;
        st_lm_model_tensor_at(k->m, t, &te);
        bool ok = !only;
        for (size_t i = 0; only && only[i]; i++)
            ok |= !strncmp(te.name, only[i], strlen(only[i]));
        if (ok)
            memset(use + (te.data - p), 1, te.count);
    }
    for (int rep = 0; rep < 3; rep++) {
        double gd = 0;
        for (size_t i = 0; i < np; i++) {
            dir[i] = use[i] ? (float)(urand() * 2 - 1) : 0.0f;
            gd += (double)g[i] * dir[i];
        }
        const double h = 3e-3;
        for (size_t i = 0; i < np; i++)
            p[i] = save[i] + (float)(h * dir[i]);
        double lp = model_loss(k);
        for (size_t i = 0; i < np; i++)
            p[i] = save[i] - (float)(h * dir[i]);
        double lm = model_loss(k);
        memcpy(p, save, np * sizeof(float));
        double num = (lp - lm) / (2 * h);
        if (verbose())
            fprintf(stderr, "\n  directional derivative %.6g, finite difference %.6g (rel %.2e)",
                    gd, num, fabs(gd - num) / fmax(fabs(num), 1e-12));
        CU_ASSERT(close_to(gd, num, tol, 1e-4));
        if (!close_to(gd, num, tol, 1e-4))
            fprintf(stderr, "\n  directional derivative %.6g, finite difference %.6g\n", gd, num);
    }
    for (size_t t = 0; t < nt; t++) {
        st_lm_tensor te;
        st_lm_model_tensor_at(k->m, t, &te);
        size_t off = (size_t)(te.data - p), best = 0;
        if (!use[off])
            continue;
        for (size_t i = 1; i < te.count; i++)
            if (fabsf(g[off + i]) > fabsf(g[off + best]))
                best = i;
        double num = fd(model_loss, k, &p[off + best], 1e-2);
        CU_ASSERT(close_to(g[off + best], num, 2 * tol, 2e-4));
        if (!close_to(g[off + best], num, 2 * tol, 2e-4))
            fprintf(stderr, "\n  %s[%zu]: gradient %.6g, finite difference %.6g\n", te.name, best,
                    g[off + best], num);
    }
    free(g);
    free(dir);
    free(save);
    free(use);
}

static void test_model_fd_dense(void)
{
    model_ctx k;
    model_ctx_init(&k, false, false, 3);
    check_model(&k, NULL, 1e-2);
    model_ctx_free(&k);
}

static void test_model_fd_spiking_smooth(void)
{
    model_ctx k;
    model_ctx_init(&k, true, true, 3);
    check_model(&k, NULL, 1e-2);
    model_ctx_free(&k);
}

static void test_model_fd_spiking_hard_head(void)
{
    /* hard spikes: the function is piecewise constant upstream of the last
       LIF, so only what follows it has a derivative to compare with */
    model_ctx k;
    model_ctx_init(&k, true, false, 3);
    const char *const only[] = {"head.", "ln_out.", NULL};
    check_model(&k, only, 1e-2);
    model_ctx_free(&k);
}

/* ---- against PyTorch ---------------------------------------------------------------------- */

typedef struct {
    char name[96];
    int type;
    uint32_t count;
    void *data;
} fx_rec;

typedef struct {
    fx_rec *r;
    uint32_t n;
} fixture;

static bool fixture_load(const char *path, fixture *fx)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return false;
    char magic[4];
    uint32_t ver, n;
    bool ok = fread(magic, 1, 4, f) == 4 && !memcmp(magic, "STGF", 4) &&
              fread(&ver, 4, 1, f) == 1 && fread(&n, 4, 1, f) == 1 && ver == 1;
    fx->r = ok ? calloc(n, sizeof *fx->r) : NULL;
    fx->n = 0;
    for (uint32_t i = 0; ok && i < n; i++) {
        uint32_t nl, type, count;
        ok = fread(&nl, 4, 1, f) == 1 && nl < sizeof fx->r[i].name &&
             fread(fx->r[i].name, 1, nl, f) == nl && fread(&type, 4, 1, f) == 1 &&
             fread(&count, 4, 1, f) == 1;
        if (!ok)
            break;
        fx->r[i].name[nl] = '\0';
        fx->r[i].type = (int)type;
        fx->r[i].count = count;
        size_t sz = type == 1 ? count + 1 : 4 * (size_t)count;
        fx->r[i].data = calloc(sz ? sz : 1, 1);
        ok = fread(fx->r[i].data, 1, type == 1 ? count : 4 * (size_t)count, f) ==
             (type == 1 ? count : 4 * (size_t)count);
        fx->n++;
    }
    fclose(f);
    return ok;
}

static void fixture_free(fixture *fx)
{
    for (uint32_t i = 0; i < fx->n; i++)
        free(fx->r[i].data);
    free(fx->r);
}

static const fx_rec *fx_find(const fixture *fx, const char *prefix, const char *name)
{
    char full[128];
    snprintf(full, sizeof full, "%s%s", prefix, name);
    for (uint32_t i = 0; i < fx->n; i++)
        if (!strcmp(fx->r[i].name, full))
            return &fx->r[i];
    return NULL;
}

/* Per tensor: |ours - torch| <= rel * max|torch| + abs_tol. */
static void compare_grads(const st_lm_model *m, const float *ours, const fixture *fx,
                          const char *prefix, double rel, double abs_tol)
{
    const float *base = st_lm_model_weights((st_lm_model *)m)->params;
    for (size_t t = 0; t < st_lm_model_tensor_count(m); t++) {
        st_lm_tensor te;
        st_lm_model_tensor_at(m, t, &te);
        const fx_rec *r = fx_find(fx, prefix, te.name);
        CU_ASSERT_PTR_NOT_NULL_FATAL(r);
        CU_ASSERT_EQUAL_FATAL(r->count, te.count);
        const float *ref = r->data, *g = ours + (te.data - base);
        double mx = 0, worst = 0;
        for (size_t i = 0; i < te.count; i++)
            mx = fmax(mx, fabs(ref[i]));
        for (size_t i = 0; i < te.count; i++)
            worst = fmax(worst, fabs((double)g[i] - ref[i]));
        CU_ASSERT(worst <= rel * mx + abs_tol);
        if (verbose())
            fprintf(stderr, "\n  %s%-30s max |ours - torch| %.2e, largest |torch| %.2e", prefix,
                    te.name, worst, mx);
        if (worst > rel * mx + abs_tol)
            fprintf(stderr, "\n  %s%s: |ours - torch| %.3g (largest |torch| %.3g)\n", prefix,
                    te.name, worst, mx);
    }
}

static void check_fixture(const char *file, bool spiking)
{
    char path[4096];
    snprintf(path, sizeof path, "tests/fixtures/%s", file);
    fixture fx;
    if (!fixture_load(path, &fx)) {
        CU_FAIL("cannot read the fixture");
        return;
    }
    st_lm_config c = {.n_layer = 2, .n_embd = 6, .vocab = 9, .n_ffn = 12, .spiking = spiking};
    const size_t T = 10, B = 2;
    st_lm_model *m = st_lm_model_new(&c, NULL);
    for (size_t t = 0; t < st_lm_model_tensor_count(m); t++) {
        st_lm_tensor te;
        st_lm_model_tensor_at(m, t, &te);
        const fx_rec *r = fx_find(&fx, "w/", te.name);
        CU_ASSERT_PTR_NOT_NULL_FATAL(r);
        CU_ASSERT_EQUAL_FATAL(r->count, te.count);
        memcpy(te.data, r->data, te.count * sizeof(float));
    }
    st_lm_model_prepare(m);
    st_lm_train_params p = st_lm_train_default_params();
    p.seq_len = (uint32_t)T;
    p.batch = (uint32_t)B;
    p.threads = 2;
    int err;
    st_lm_trainer *tr = st_lm_trainer_new(m, &p, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(tr);
    const int32_t *tok = fx_find(&fx, "", "tokens")->data;
    int32_t c1[2][11], c2[2][11];
    for (size_t b = 0; b < B; b++) {
        memcpy(c1[b], tok + b * (2 * T + 1), (T + 1) * 4);
        memcpy(c2[b], tok + b * (2 * T + 1) + T, (T + 1) * 4);
    }
    const size_t SL = st_lm_state_len(m);
    float *states = malloc(B * SL * sizeof(float));
    st_lm_state *fresh = st_lm_state_new(m, NULL);
    for (size_t b = 0; b < B; b++)
        st_lm_state_save(fresh, states + b * SL, SL);
    st_lm_train_stats s1, s2;
    CU_ASSERT_EQUAL(st_lm_trainer_gradient(tr, &c1[0][0], NULL, B, states, &s1), ST_OK);
    double l1 = ((const float *)fx_find(&fx, "", "loss1")->data)[0];
    double l2 = ((const float *)fx_find(&fx, "", "loss2")->data)[0];
    CU_ASSERT(close_to(s1.loss, l1, 2e-6, 0));
    if (verbose())
        fprintf(stderr, "\n  loss: ours %.9f, torch %.9f", s1.loss, l1);
    compare_grads(m, st_lm_trainer_grad(tr), &fx, "g1/", 2e-4, 1e-6);
    /* the second chunk from the carried state */
    CU_ASSERT_EQUAL(st_lm_trainer_gradient(tr, &c2[0][0], NULL, B, states, &s2), ST_OK);
    CU_ASSERT(close_to(s2.loss, l2, 2e-6, 0));
    compare_grads(m, st_lm_trainer_grad(tr), &fx, "g2/", 2e-4, 1e-6);
    /* one clipped Adam step on the first chunk's gradient */
    for (size_t b = 0; b < B; b++)
        st_lm_state_save(fresh, states + b * SL, SL);
    st_lm_trainer_gradient(tr, &c1[0][0], NULL, B, states, &s1);
    double gn = ((const float *)fx_find(&fx, "", "grad_norm1")->data)[0];
    st_lm_train_stats sa;
    CU_ASSERT_EQUAL(st_lm_trainer_apply(tr, 6e-4, &sa), ST_OK);
    CU_ASSERT(close_to(sa.grad_norm, gn, 1e-4, 0));
    const float *base = st_lm_model_weights(m)->params;
    float *dummy = calloc(st_lm_model_weights(m)->n_params, sizeof(float));
    for (size_t t = 0; t < st_lm_model_tensor_count(m); t++) {
        st_lm_tensor te;
        st_lm_model_tensor_at(m, t, &te);
        const float *after = fx_find(&fx, "adam/", te.name)->data;
        const float *g = fx_find(&fx, "g1/", te.name)->data;
        double worst = 0;
        for (size_t i = 0; i < te.count; i++)
            if (fabs(g[i]) > 1e-6) /* where the sign of a tiny gradient is not noise */
                worst = fmax(worst, fabs((double)te.data[i] - after[i]));
        CU_ASSERT(worst < 2e-6);
        if (worst >= 2e-6)
            fprintf(stderr, "\n  adam %s: %.3g\n", te.name, worst);
    }
    (void)base;
    free(dummy);
    free(states);
    st_lm_state_destroy(&fresh);
    st_lm_trainer_destroy(&tr);
    st_lm_model_destroy(&m);
    fixture_free(&fx);
}

static void test_torch_spiking(void)
{
    check_fixture("lm_grad_spiking.bin", true);
}

static void test_torch_dense(void)
{
    check_fixture("lm_grad_dense.bin", false);
}

/* ---- threads, checkpoints, a short run ------------------------------------------------------ */

static st_lm_model *small_model(bool spiking, uint32_t vocab)
{
    st_lm_config c = {.n_layer = 2, .n_embd = 16, .vocab = vocab, .n_ffn = 40, .spiking = spiking};
    st_lm_model *m = st_lm_model_new(&c, NULL);
    st_lm_train_init(m, 3);
    return m;
}

static int32_t *pattern(size_t n, uint32_t vocab)
{
    static const char text[] = "the cat sat on the mat. the dog sat on the log. ";
    int32_t *ids = malloc(n * sizeof *ids);
    for (size_t i = 0; i < n; i++)
        ids[i] = (int32_t)((unsigned char)text[i % (sizeof text - 1)] % vocab);
    return ids;
}

static void test_threads_independent(void)
{
    float *w[2];
    size_t np = 0;
    for (int k = 0; k < 2; k++) {
        st_lm_model *m = small_model(true, 32);
        st_lm_train_params p = st_lm_train_default_params();
        p.seq_len = 16;
        p.batch = 5;
        p.threads = k ? 3 : 1;
        p.total_steps = 10;
        st_lm_trainer *tr = st_lm_trainer_new(m, &p, NULL);
        int32_t *ids = pattern(2000, 32);
        CU_ASSERT_EQUAL(st_lm_trainer_set_data(tr, ids, NULL, 2000, NULL, 0), ST_OK);
        for (int s = 0; s < 3; s++)
            CU_ASSERT_EQUAL(st_lm_trainer_step(tr, -1, NULL), ST_OK);
        np = st_lm_model_weights(m)->n_params;
        w[k] = malloc(np * sizeof(float));
        memcpy(w[k], st_lm_model_weights(m)->params, np * sizeof(float));
        free(ids);
        st_lm_trainer_destroy(&tr);
        st_lm_model_destroy(&m);
    }
    CU_ASSERT_EQUAL(memcmp(w[0], w[1], np * sizeof(float)), 0);
    free(w[0]);
    free(w[1]);
}

static void run_steps(st_lm_trainer *tr, int n)
{
    for (int s = 0; s < n; s++)
        CU_ASSERT_EQUAL(st_lm_trainer_step(tr, -1, NULL), ST_OK);
}

static void test_checkpoint_resume(void)
{
    for (int mode = 0; mode < 2; mode++) {
        st_lm_train_params p = st_lm_train_default_params();
        p.seq_len = 12;
        p.batch = 3;
        p.threads = 2;
        p.total_steps = 8;
        p.sampling = mode ? ST_LM_SAMPLE_RANDOM : ST_LM_SAMPLE_STREAMS;
        int32_t *ids = pattern(1500, 32);
        size_t starts[] = {0, 48, 96, 500, 1000};
        /* straight through */
        st_lm_model *a = small_model(true, 32);
        st_lm_trainer *ta = st_lm_trainer_new(a, &p, NULL);
        st_lm_trainer_set_data(ta, ids, NULL, 1500, mode ? starts : NULL, mode ? 5 : 0);
        run_steps(ta, 6);
        /* stopped after 3, saved, resumed from the file */
        char path[512];
        st_test_tmpfile(path, sizeof path, mode ? "ckpt_random.stnn" : "ckpt_streams.stnn");
        st_lm_model *b = small_model(true, 32);
        st_lm_trainer *tb = st_lm_trainer_new(b, &p, NULL);
        st_lm_trainer_set_data(tb, ids, NULL, 1500, mode ? starts : NULL, mode ? 5 : 0);
        run_steps(tb, 3);
        CU_ASSERT_EQUAL(st_lm_trainer_save(tb, path, "test note"), ST_OK);
        st_lm_trainer_destroy(&tb);
        st_lm_model_destroy(&b);
        int err;
        st_lm_model *c = st_lm_model_load(path, &err);
        CU_ASSERT_PTR_NOT_NULL_FATAL(c);
        st_lm_trainer *tc = st_lm_trainer_new(c, &p, NULL);
        st_lm_trainer_set_data(tc, ids, NULL, 1500, mode ? starts : NULL, mode ? 5 : 0);
        CU_ASSERT_EQUAL(st_lm_trainer_load(tc, path), ST_OK);
        CU_ASSERT_EQUAL(st_lm_trainer_steps(tc), 3);
        run_steps(tc, 3);
        size_t np = st_lm_model_weights(a)->n_params;
        CU_ASSERT_EQUAL(memcmp(st_lm_model_weights(a)->params, st_lm_model_weights(c)->params,
                               np * sizeof(float)),
                        0);
        char note[64];
        CU_ASSERT_EQUAL(st_lm_trainer_checkpoint_note(path, note, sizeof note), ST_OK);
        CU_ASSERT_STRING_EQUAL(note, "test note");
        /* a checkpoint of another shape is refused, naming the tensor */
        st_lm_train_params q = p;
        q.batch = 4;
        st_lm_trainer *td = st_lm_trainer_new(c, &q, NULL);
        CU_ASSERT_EQUAL(st_lm_trainer_load(td, path), ST_ERR_FORMAT);
        CU_ASSERT_PTR_NOT_NULL(strstr(st_errmsg(), "train/stream_pos"));
        st_lm_trainer_destroy(&td);
        st_lm_trainer_destroy(&ta);
        st_lm_trainer_destroy(&tc);
        st_lm_model_destroy(&a);
        st_lm_model_destroy(&c);
        free(ids);
    }
}

static void test_training_lowers_loss(void)
{
    for (int spiking = 0; spiking < 2; spiking++) {
        st_lm_model *m = small_model(spiking, 32);
        st_lm_train_params p = st_lm_train_default_params();
        p.seq_len = 24;
        p.batch = 4;
        p.lr = 1e-2f;
        p.lr_min = 1e-3f;
        p.total_steps = memcheck() ? 15 : 60;
        int32_t *ids = pattern(4000, 32);
        st_lm_trainer *tr = st_lm_trainer_new(m, &p, NULL);
        CU_ASSERT_EQUAL(st_lm_trainer_set_data(tr, ids, NULL, 4000, NULL, 0), ST_OK);
        double first = 0, last = 0;
        for (uint64_t s = 0; s < p.total_steps; s++) {
            st_lm_train_stats st;
            CU_ASSERT_EQUAL_FATAL(st_lm_trainer_step(tr, -1, &st), ST_OK);
            if (!s)
                first = st.loss;
            last = st.loss;
        }
        CU_ASSERT(last < 0.5 * first);
        /* the inference engine measures about what the trainer saw */
        double nats;
        CU_ASSERT_EQUAL(st_lm_eval_tokens(m, ids, 400, &nats), ST_OK);
        CU_ASSERT(nats / 399 < 1.5 * last + 0.1);
        free(ids);
        st_lm_trainer_destroy(&tr);
        st_lm_model_destroy(&m);
    }
}

static void test_eval_tokens(void)
{
    st_lm_model *m = small_model(true, 32);
    st_lm_model_randomize(m, 5, 10);
    int32_t *ids = pattern(300, 32);
    double nats;
    CU_ASSERT_EQUAL(st_lm_eval_tokens(m, ids, 300, &nats), ST_OK);
    /* the same sum token by token */
    st_lm_state *s = st_lm_state_new(m, NULL);
    float lg[32];
    double ref = 0;
    for (size_t i = 0; i + 1 < 300; i++) {
        st_lm_step(m, s, ids[i], lg);
        double mx = lg[0], se = 0;
        for (int k = 1; k < 32; k++)
            mx = fmax(mx, lg[k]);
        for (int k = 0; k < 32; k++)
            se += exp(lg[k] - mx);
        ref += log(se) - (lg[ids[i + 1]] - mx);
    }
    CU_ASSERT(close_to(nats, ref, 1e-6, 0));
    CU_ASSERT_EQUAL(st_lm_eval_tokens(m, ids, 1, &nats), ST_ERR_INVALID);
    st_lm_state_destroy(&s);
    free(ids);
    st_lm_model_destroy(&m);
}

static void test_schedule_and_params(void)
{
    st_lm_train_params p = st_lm_train_default_params();
    CU_ASSERT_EQUAL(p.beta2, 0.99f);
    CU_ASSERT_EQUAL(p.eps, 4e-9f);
    CU_ASSERT_EQUAL(p.clip_norm, 1.0f);
    p.total_steps = 100;
    CU_ASSERT(close_to(st_lm_train_lr(&p, 0), 6e-4, 1e-6, 0));
    CU_ASSERT(close_to(st_lm_train_lr(&p, 50), (6e-4 + 1e-5) / 2, 1e-5, 0));
    CU_ASSERT(close_to(st_lm_train_lr(&p, 100), 1e-5, 1e-5, 0));
    p.warmup_steps = 10;
    CU_ASSERT(close_to(st_lm_train_lr(&p, 0), 1e-5, 1e-5, 0));
    CU_ASSERT(close_to(st_lm_train_lr(&p, 10), 6e-4, 1e-6, 0));
    st_lm_model *m = small_model(true, 32);
    int err;
    p.batch = 0;
    CU_ASSERT_PTR_NULL(st_lm_trainer_new(m, &p, &err));
    CU_ASSERT_EQUAL(err, ST_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(st_errmsg(), "batch"));
    p = st_lm_train_default_params();
    p.lr = NAN;
    CU_ASSERT_PTR_NULL(st_lm_trainer_new(m, &p, &err));
    p = st_lm_train_default_params();
    p.seq_len = 8;
    st_lm_trainer *tr = st_lm_trainer_new(m, &p, &err);
    int32_t bad[9] = {1, 2, 3, 40, 1, 2, 3, 4, 5};
    CU_ASSERT_EQUAL(st_lm_trainer_gradient(tr, bad, NULL, 1, NULL, NULL), ST_ERR_INVALID);
    CU_ASSERT_EQUAL(st_lm_trainer_set_data(tr, bad, NULL, 5, NULL, 0), ST_ERR_INVALID);
    uint8_t none[9] = {0};
    bad[3] = 4;
    CU_ASSERT_EQUAL(st_lm_trainer_gradient(tr, bad, none, 1, NULL, NULL), ST_ERR_INVALID);
    CU_ASSERT_EQUAL(st_lm_trainer_step(tr, -1, NULL), ST_ERR_INVALID); /* no data */
    char path[512];
    st_test_tmpfile(path, sizeof path, "log.csv");
    st_lm_train_stats st = {.loss = 2.5, .lr = 1e-3};
    CU_ASSERT_EQUAL(st_lm_train_log_append(path, 1, 100, &st, -1, 1.5), ST_OK);
    CU_ASSERT_EQUAL(st_lm_train_log_append(path, 2, 200, &st, 2.25, 3.0), ST_OK);
    FILE *f = fopen(path, "r");
    char line[256];
    int lines = 0;
    while (fgets(line, sizeof line, f))
        lines++;
    fclose(f);
    CU_ASSERT_EQUAL(lines, 3);
    st_lm_trainer_destroy(&tr);
    st_lm_model_destroy(&m);
}

static void test_word_tokenizer(void)
{
    const char text[] = "user: what is seven times six\nagent: seven times six is forty two\n"
                        "user: what is seventy times six\nagent: seventy times six is four "
                        "hundred twenty\nuser: seven seven seven seventy seventy seventy\n";
    int err;
    st_lm_tokenizer *t = st_lm_tokenizer_words(text, strlen(text), 256, 20, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    int32_t ids[64];
    size_t n;
    CU_ASSERT_EQUAL(st_lm_tokenizer_encode(t, " seventy seven", 14, ids, 64, &n, NULL), ST_OK);
    CU_ASSERT_EQUAL(n, 2);
    char out[64];
    st_lm_tokenizer_decode(t, ids, n, out, sizeof out, NULL);
    CU_ASSERT_STRING_EQUAL(out, " seventy seven");
    /* records and a byte mask: runs encoded apart, the mask per token */
    const char rec[] = "ab cd\n\nef\n\n";
    uint8_t bm[sizeof rec - 1] = {0, 0, 1, 1, 1, 1, 0, 1, 1, 1, 0};
    int32_t *rid;
    uint8_t *rm;
    size_t rn, *starts, ns;
    CU_ASSERT_EQUAL(st_lm_encode_records(t, rec, sizeof rec - 1, "\n\n", bm, &rid, &rm, &rn,
                                         &starts, &ns, NULL),
                    ST_OK);
    CU_ASSERT_EQUAL(ns, 2);
    CU_ASSERT_EQUAL(starts[1], 7);
    CU_ASSERT_EQUAL(rn, 11);
    for (size_t i = 0; i < rn; i++)
        CU_ASSERT_EQUAL(rm[i], bm[i]);
    free(rid);
    free(rm);
    free(starts);
    st_lm_tokenizer_destroy(&t);
}

/* ---- the dialogue ------------------------------------------------------------------------- */

static void test_number_words(void)
{
    char buf[256];
    static const struct {
        long long n;
        const char *w;
    } cases[] = {{0, "zero"},
                 {7, "seven"},
                 {42, "forty two"},
                 {105, "one hundred five"},
                 {-3, "minus three"},
                 {1000, "one thousand"},
                 {12345, "twelve thousand three hundred forty five"},
                 {2000001, "two million one"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        CU_ASSERT_EQUAL(st_words_from_number(cases[i].n, buf, sizeof buf), ST_OK);
        CU_ASSERT_STRING_EQUAL(buf, cases[i].w);
        long long v;
        CU_ASSERT_EQUAL(st_number_from_words(cases[i].w, strlen(cases[i].w), &v), ST_OK);
        CU_ASSERT_EQUAL(v, cases[i].n);
    }
    for (long long n = -1000; n <= 20000; n += 7) {
        long long v = -1;
        st_words_from_number(n, buf, sizeof buf);
        CU_ASSERT_EQUAL(st_number_from_words(buf, strlen(buf), &v), ST_OK);
        CU_ASSERT_EQUAL(v, n);
    }
    long long v;
    CU_ASSERT_EQUAL(st_number_from_words("a hundred and five", 18, &v), ST_OK);
    CU_ASSERT_EQUAL(v, 105);
    const char *bad[] = {"seven three", "twenty thirty", "hundred", "seven apples", "", "and"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CU_ASSERT_EQUAL(st_number_from_words(bad[i], strlen(bad[i]), &v), ST_ERR_INVALID);
    CU_ASSERT_EQUAL(st_words_from_decimal(10.0 / 3, 2, buf, sizeof buf), ST_OK);
    CU_ASSERT_STRING_EQUAL(buf, "three point three three");
    CU_ASSERT_EQUAL(st_words_from_decimal(2.5, 2, buf, sizeof buf), ST_OK);
    CU_ASSERT_STRING_EQUAL(buf, "two point five");
    CU_ASSERT_EQUAL(st_words_from_number(42, buf, 4), ST_ERR_INVALID);
}

static long long timer_seen;

static void on_timer(long long s, const char *label, void *ud)
{
    (void)label;
    (void)ud;
    timer_seen = s;
}

static void test_tools(void)
{
    st_dialogue_tools t = {.hour = 15, .minute = 5, .on_timer = on_timer};
    char r[128];
    static const struct {
        const char *call, *result;
    } cases[] = {{"calc seven times six", "forty two"},
                 {"calc seven minus twelve", "minus five"},
                 {"calc one hundred plus twenty three", "one hundred twenty three"},
                 {"calc ten divided by four", "two point five"},
                 {"calc nine divided by zero", "not defined"},
                 {"calc ninety greater than nine", "yes"},
                 {"calc ninety less than nine", "no"},
                 {"calc four minus minus two", "six"},
                 {"time", "three oh five pm"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        CU_ASSERT_EQUAL(st_dialogue_tool(&t, cases[i].call, strlen(cases[i].call), r, sizeof r),
                        ST_OK);
        CU_ASSERT_STRING_EQUAL(r, cases[i].result);
    }
    CU_ASSERT_EQUAL(st_dialogue_tool(&t, "timer ninety seconds", 20, r, sizeof r), ST_OK);
    CU_ASSERT_STRING_EQUAL(r, "ok");
    CU_ASSERT_EQUAL(timer_seen, 90);
    const char *bad[] = {"calc seven times", "calc banana plus two", "weather", "timer five",
                         "timer zero minutes",
                         /* results too large to say, one past int64 (was signed overflow) */
                         "calc one million times one million",
                         "calc nine hundred billion times nine hundred billion"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CU_ASSERT_EQUAL(st_dialogue_tool(&t, bad[i], strlen(bad[i]), r, sizeof r),
                        ST_ERR_INVALID);
        CU_ASSERT_STRING_EQUAL(r, "error");
    }
    CU_ASSERT_EQUAL(st_dialogue_time_words(0, 0, r, sizeof r), ST_OK);
    CU_ASSERT_STRING_EQUAL(r, "twelve o'clock am");
    CU_ASSERT_EQUAL(st_dialogue_time_words(23, 42, r, sizeof r), ST_OK);
    CU_ASSERT_STRING_EQUAL(r, "eleven forty two pm");
    char n[128];
    st_dialogue_normalize("  What's 7 * 6?? Tell me, NOW!", n, sizeof n);
    CU_ASSERT_STRING_EQUAL(n, "what's seven times six tell me now");
    st_dialogue_normalize("", n, sizeof n);
    CU_ASSERT_STRING_EQUAL(n, "");
}

static void test_grounded(void)
{
    static const struct {
        const char *user, *call;
        bool ok;
    } cases[] = {
        {"what is seven times six", "calc seven times six", true},
        {"what is seven times six", "calc six times seven", true},
        {"times six", "calc six times six", false}, /* one six said, two used */
        {"six times six", "calc six times six", true},
        {"minutes", "timer seven minutes", false},
        {"set a timer for five minutes", "timer five minutes", true},
        {"set a timer for five minutes", "timer fifteen minutes", false},
        {"timer for a minute please", "timer one minute", true},
        {"start an hour timer", "timer one hour", true},
        {"start a timer", "timer one hour", false},
        {"start a timer for an hour", "timer one hour", true},
        {"half an hour timer", "timer thirty minutes", true},
        {"how much is one hundred and five minus twenty", "calc one hundred and five minus twenty",
         true},
        {"how much is one hundred and five minus twenty", "calc one hundred minus twenty", false},
        {"what's minus three plus two", "calc minus three plus two", true},
        {"what is a hundred plus two", "calc one hundred plus two", true},
        {"what is a hundred plus two", "calc a hundred plus two", true},
        {"hundred plus two", "calc zero plus two", false}, /* "hundred" alone is no zero */
        {"what time is it", "time", true},
        {"", "calc one plus one", false},
        {"two", "weather", true}, /* not the guard's: the tool reports it */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bool ok = st_dialogue_grounded(cases[i].user, cases[i].call, strlen(cases[i].call));
        if (ok != cases[i].ok)
            fprintf(stderr, "\n  grounded('%s', '%s') = %d\n", cases[i].user, cases[i].call, ok);
        CU_ASSERT_EQUAL(ok, cases[i].ok);
    }
    CU_ASSERT(st_dialogue_grounded(NULL, "time", 4));
    CU_ASSERT(!st_dialogue_grounded(NULL, "timer two seconds", 17));
    CU_ASSERT_STRING_EQUAL(st_errmsg(), ""); /* the number reader's errors do not leak */
}

/* The shipped dialogue model: a request with no number sets no timer (the
   model's guess is refused), a timer that was asked for is set. */
static void test_reply_refuses_guess(void)
{
    struct stat sb;
    if (stat("models/dialogue.stnn", &sb) != 0) {
        st_test_skip("lm_train:reply_refuses_guess", "models/dialogue.stnn is not here (run from the repository root)");
        return;
    }
    int err = 0;
    st_lm_model *m = st_lm_model_load("models/dialogue.stnn", &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    st_dialogue_params p = st_dialogue_default_params();
    char reply[512];
    st_dialogue_info info;
    static const char *const unsaid[] = {"minutes", "timer", "seconds please", "times six"};
    for (size_t i = 0; i < sizeof unsaid / sizeof unsaid[0]; i++) {
        CU_ASSERT_EQUAL(st_dialogue_reply(m, unsaid[i], &p, reply, sizeof reply, &info), ST_OK);
        CU_ASSERT_EQUAL(info.timer_s, -1);
        CU_ASSERT(info.fallback || !info.n_tools);
        CU_ASSERT(!strstr(reply, "thirty six"));
    }
    CU_ASSERT_EQUAL(
        st_dialogue_reply(m, "set a timer for five minutes", &p, reply, sizeof reply, &info),
        ST_OK);
    CU_ASSERT_EQUAL(info.timer_s, 300);
    CU_ASSERT(!info.ungrounded);
    st_lm_model_destroy(&m);
}

static void test_corpus_and_heldout(void)
{
    st_dialogue_gen_params gp = st_dialogue_gen_default_params();
    gp.dialogues = memcheck() ? 3000 : 30000;
    char *text;
    size_t len;
    CU_ASSERT_EQUAL_FATAL(st_dialogue_corpus(&gp, &text, &len), ST_OK);
    CU_ASSERT(len > 1000);
    st_dialogue_case *cases;
    size_t n;
    CU_ASSERT_EQUAL_FATAL(st_dialogue_heldout(1, memcheck() ? 100 : 1000, &cases, &n), ST_OK);
    size_t ood = 0;
    for (size_t i = 0; i < n; i++) {
        /* no held-out request is a training line */
        char line[300];
        snprintf(line, sizeof line, "user: %s\n", cases[i].user);
        CU_ASSERT_PTR_NULL(strstr(text, line));
        if (strstr(text, line))
            fprintf(stderr, "\n  held-out request in the corpus: %s\n", cases[i].user);
        ood += cases[i].intent == ST_DLG_OOD;
        if (cases[i].intent != ST_DLG_OOD)
            CU_ASSERT(cases[i].expect[0] != '\0');
        /* the right answer passes the checker, something else does not */
        if (cases[i].intent != ST_DLG_OOD) {
            char first[2048];
            snprintf(first, sizeof first, "%s", cases[i].expect);
            char *bar = strchr(first, '|');
            if (bar)
                *bar = '\0';
            st_dialogue_info info = {.timer_s = cases[i].timer_s};
            CU_ASSERT(st_dialogue_check(&cases[i], first, &info, NULL));
            CU_ASSERT_FALSE(st_dialogue_check(&cases[i], "banana", &info, NULL));
        }
    }
    CU_ASSERT(ood > n / 20 && ood < n / 5);
    /* the answer mask: only what the agent writes, tool results excluded */
    const char d[] = "user: hi\nagent: [time]{ one pm} it is one pm\n\n";
    uint8_t mask[sizeof d - 1];
    st_dialogue_answer_bytes(d, sizeof d - 1, mask);
    const char *agent = strstr(d, "agent:");
    for (size_t i = 0; i < sizeof d - 1; i++) {
        bool in_result = i >= (size_t)(strchr(d, '{') - d) && i <= (size_t)(strchr(d, '}') - d);
        bool want = d + i >= agent + 6 && !in_result && i < sizeof d - 2;
        CU_ASSERT_EQUAL(mask[i], want);
    }
    /* what the recognizer hears is in it too: keyword requests with the
       full request's answer, and fragments that are no request answered
       gracefully */
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "\nagent: sorry, i didn't catch that."));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "user: stop\nagent: ok.\n"));
    size_t keyword_calc = 0;
    for (const char *q = text; (q = strstr(q, "user: what ")) != NULL; q++) {
        const char *nl = strchr(q, '\n');
        if (nl && !strncmp(nl, "\nagent: [calc ", 14) && !memchr(q, '\'', (size_t)(nl - q)) &&
            !memmem(q, (size_t)(nl - q), " is ", 4) && (size_t)(nl - q) < 40 &&
            !memmem(q, (size_t)(nl - q), " the ", 5))
            keyword_calc++;
    }
    CU_ASSERT(keyword_calc > 0);
    /* the same seed gives the same corpus */
    char *again;
    size_t len2;
    st_dialogue_corpus(&gp, &again, &len2);
    CU_ASSERT(len2 == len && !memcmp(again, text, len));
    free(again);
    free(cases);
    free(text);
    /* a missing chatterbot file is an error that names it */
    gp.chatterbot_path = "/nonexistent/chat.txt";
    gp.dialogues = 10;
    CU_ASSERT_EQUAL(st_dialogue_corpus(&gp, &text, &len), ST_ERR_IO);
    CU_ASSERT_PTR_NOT_NULL(strstr(st_errmsg(), "/nonexistent/chat.txt"));
}

static void test_reply_never_silent(void)
{
    /* an untrained model writes nonsense or nothing: the reply is never empty */
    const char chars[] = "\n abcdefghijklmnopqrstuvwxyz[]{}:.";
    st_lm_config c = {.n_layer = 1, .n_embd = 8, .vocab = (uint32_t)strlen(chars), .n_ffn = 16,
                      .spiking = true};
    st_lm_model *m = st_lm_model_new(&c, NULL);
    st_lm_tokenizer *t = st_lm_tokenizer_new_chars(chars, NULL);
    st_lm_model_set_tokenizer(m, &t);
    st_lm_model_randomize(m, 1, 5);
    st_dialogue_params p = st_dialogue_default_params();
    p.max_tokens = 40;
    char reply[512];
    st_dialogue_info info;
    CU_ASSERT_EQUAL(st_dialogue_reply(m, "what is seven times six", &p, reply, sizeof reply, &info),
                    ST_OK);
    CU_ASSERT(strlen(reply) > 0);
    CU_ASSERT(info.n_tokens <= 40);
    st_lm_model_destroy(&m);
}


static void test_cli(void)
{
    struct stat sb;
    if (stat(st_test_cli(), &sb) != 0) {
        st_test_skip("lm_train:cli", "no spiketalk binary (set ST_CLI)");
        return;
    }
    char text[512], model[512], args[2048], *out;
    st_test_tmpfile(text, sizeof text, "tiny.txt");
    st_test_tmpfile(model, sizeof model, "tiny.stnn");
    FILE *f = fopen(text, "w");
    for (int i = 0; i < 60; i++)
        fprintf(f, "to be or not to be, that is the question.\n");
    fclose(f);
    snprintf(args, sizeof args,
             "lm train --text %s --out %s --steps 3 --layers 1 --embd 8 --seq-len 16 --batch 2",
             text, model);
    CU_ASSERT_EQUAL(st_test_run_cli(args, &out), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "nats/char"));
    free(out);
    snprintf(args, sizeof args, "lm eval --model %s --text %s --last 0.1", model, text);
    CU_ASSERT_EQUAL(st_test_run_cli(args, &out), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "bits/char"));
    free(out);
    /* a model that is not there is an error naming it */
    CU_ASSERT_EQUAL(st_test_run_cli("reply \"hello\" --model /nonexistent/dialogue.stnn", &out), 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "/nonexistent/dialogue.stnn"));
    free(out);
    /* no model anywhere (a copy of the binary away from models/): the message says how to
       build one */
    const char *dir = st_test_tmpdir();
    snprintf(args, sizeof args,
             "mkdir -p %s/bin && cp %s %s/bin/spiketalk && cd %s && "
             "env -u SPIKETALK_DIALOGUE_MODEL ./bin/spiketalk reply hello 2>&1",
             dir, st_test_cli(), dir, dir);
    FILE *p = popen(args, "r");
    char msg[1024] = "";
    size_t got = p ? fread(msg, 1, sizeof msg - 1, p) : 0;
    msg[got] = '\0';
    int status = p ? pclose(p) : -1;
    CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, "make train-dialogue"));
    CU_ASSERT_EQUAL(st_test_run_cli("lm train --text /nonexistent.txt --out x --steps 1", &out), 1);
    free(out);
    CU_ASSERT_EQUAL(st_test_run_cli("lm train --text x", &out), 2);
    free(out);
}

CU_TestInfo st_tests_lm_train[] = {
    {"gemm", test_gemm},
    {"op_layernorm", test_op_layernorm},
    {"op_token_shift", test_op_token_shift},
    {"op_wkv", test_op_wkv},
    {"op_lif", test_op_lif},
    {"op_gate_and_loss", test_op_gate_and_loss},
    {"simd_matches_generic", test_simd_matches_generic},
    {"model_fd_dense", test_model_fd_dense},
    {"model_fd_spiking_smooth", test_model_fd_spiking_smooth},
    {"model_fd_spiking_hard_head", test_model_fd_spiking_hard_head},
    {"torch_spiking", test_torch_spiking},
    {"torch_dense", test_torch_dense},
    {"threads_independent", test_threads_independent},
    {"checkpoint_resume", test_checkpoint_resume},
    {"training_lowers_loss", test_training_lowers_loss},
    {"eval_tokens", test_eval_tokens},
    {"schedule_and_params", test_schedule_and_params},
    {"word_tokenizer", test_word_tokenizer},
    {"number_words", test_number_words},
    {"tools", test_tools},
    {"grounded", test_grounded},
    {"reply_refuses_guess", test_reply_refuses_guess},
    {"corpus_and_heldout", test_corpus_and_heldout},
    {"reply_never_silent", test_reply_never_silent},
    {"cli", test_cli},
    CU_TEST_INFO_NULL,
};
