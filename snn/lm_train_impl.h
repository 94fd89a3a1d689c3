/*  snn/lm_train_impl.h - private to the language-model trainer
    (snn/lm_train*.c) and its tests: the matrix kernel, each operation's
    forward and backward over a chunk of T tokens (so the tests can check
    each one against finite differences on its own), and the per-sequence
    forward/backward of the whole model. Not installed, not part of the API.

    Layout: every activation of a chunk is time-major [T][n] floats.
*/
#ifndef ST_LM_TRAIN_IMPL_H
#define ST_LM_TRAIN_IMPL_H

#include "lm_impl.h"
#include "lm_train.h"

#define LMT_HIDDEN ST_LM_HIDDEN

/* ---- the matrix kernel --------------------------------------------------------

   C[i][j] (acc ? += : =) sum_p A(i, p) B[p][j] for i < M, j < N, p < K, with
   A(i, p) = A[i * ars + p * acs] (either layout of A), B and C row-major.
   Terms are added in ascending p; the result depends on the kernel (FMA or
   not) but never on the thread that runs it. */
typedef void (*lmt_gemm_fn)(size_t M, size_t N, size_t K, const float *A, size_t ars, size_t acs,
                            const float *B, size_t ldb, float *C, size_t ldc, bool acc);
LMT_HIDDEN extern const lmt_gemm_fn lmt_gemm_generic;
LMT_HIDDEN extern const lmt_gemm_fn lmt_gemm_avx2; /* NULL without AVX2 + FMA at build time */
/* The best the CPU has. */
LMT_HIDDEN lmt_gemm_fn lmt_gemm_best(void);

/* ---- the spike function ------------------------------------------------------- */

typedef struct {
    float alpha;   /* ATan steepness */
    bool smooth;   /* forward S(u) instead of H(u) */
    bool detach;   /* detach the LIF reset */
} lmt_spike;

/* H(u) = [u >= 0] (spikingjelly's heaviside), or S(u) when smooth. */
LMT_HIDDEN float lmt_spike_fwd(const lmt_spike *s, float u);
/* The ATan surrogate (alpha/2) / (1 + (pi/2 alpha u)^2) = S'(u). */
LMT_HIDDEN float lmt_spike_grad(const lmt_spike *s, float u);

/* ---- operations over T tokens of n channels ------------------------------------

   The per-channel operations run 8 channels at a time in AVX2 + FMA when
   the CPU has them; lmt_use_generic(true) forces the portable loops (for
   the tests, which compare the two), false restores the choice. Not while
   a trainer runs. */
LMT_HIDDEN void lmt_use_generic(bool on);


/* LayerNorm (eps 1e-5, biased variance, statistics in double) of each row:
   y = xhat g + b; xhat and rstd (T) saved for the backward. */
LMT_HIDDEN void lmt_ln_forward(const float *x, const float *g, const float *b, size_t n,
                               size_t T, float *y, float *xhat, float *rstd);
/* gx += dL/dx, gg += dL/dg, gb += dL/db from gy. */
LMT_HIDDEN void lmt_ln_backward(const float *gy, const float *xhat, const float *rstd,
                                const float *g, size_t n, size_t T, float *gx, float *gg,
                                float *gb);

/* Token shift: out[t] = a[t] m + a[t-1] (1 - m), a[-1] = prev. */
LMT_HIDDEN void lmt_mix_forward(const float *a, const float *prev, const float *m, size_t n,
                                size_t T, float *out);
/* ga += dL/da (not into prev: the carried state is detached), gm += dL/dm. */
LMT_HIDDEN void lmt_mix_backward(const float *gout, const float *a, const float *prev,
                                 const float *m, size_t n, size_t T, float *ga, float *gm);

/* WKV over T tokens with the state (A, B, P) updated in place; y the
   output (before the receptance gate). sA, sB, sP (may be NULL): the state
   before each token, for the backward. w = -exp(time_decay). */
LMT_HIDDEN void lmt_wkv_forward(const float *k, const float *v, const float *u, const float *w,
                                float *A, float *B, float *P, size_t n, size_t T, float *y,
                                float *sA, float *sB, float *sP);
/* From gy: gk, gv written; gu, gw (dL/dw, w itself) added. */
LMT_HIDDEN void lmt_wkv_backward(const float *k, const float *v, const float *u, const float *w,
                                 const float *sA, const float *sB, const float *sP,
                                 const float *gy, size_t n, size_t T, float *gk, float *gv,
                                 float *gu, float *gw);

/* LIF (tau 2, threshold 1, reset to 0) over T tokens from the current c,
   membrane mem updated in place: h = m + (c - m)/2, s = spike(h - 1),
   m = h (1 - s); h saved, x += s. Returns the number of spikes (> 0.5). */
LMT_HIDDEN size_t lmt_lif_forward(const lmt_spike *sp, const float *c, float *mem, size_t n,
                                  size_t T, float *h, float *x);
/* gc from gs (the gradient of the spikes s), the final membrane's
   gradient taken as 0 (detached carry). */
LMT_HIDDEN void lmt_lif_backward(const lmt_spike *sp, const float *gs, const float *h, size_t n,
                                 size_t T, float *gc);

/* out = sigmoid(r) v; backward gr, gv written. */
LMT_HIDDEN void lmt_sigmul_forward(const float *r, const float *v, size_t count, float *out);
LMT_HIDDEN void lmt_sigmul_backward(const float *go, const float *r, const float *v, size_t count,
                                    float *gr, float *gv);

/* out = relu(h)^2; backward g *= 2 relu(h) in place. */
LMT_HIDDEN void lmt_relu2(const float *hk, size_t n, float *out);
LMT_HIDDEN void lmt_relu2_backward(const float *hk, size_t n, float *g);

/* Softmax cross-entropy of T rows of V logits against targets; the
   logits are replaced by scale * dL/dlogits (plus SpikeGPT's L2Wrap:
   l2 * max logit on each row's largest). mask (may be NULL): rows whose
   mask is 0 have no loss and a zero gradient. Returns the summed loss
   (nats) of the rows counted. */
LMT_HIDDEN double lmt_ce(float *logits, const int32_t *targets, const uint8_t *mask, size_t V,
                         size_t T, float scale, float l2);

/* ---- the whole model, one sequence ---------------------------------------------- */

typedef struct lmt_ws lmt_ws; /* one worker's activations and scratch */

typedef struct {
    const st_lm_model *m;
    const float *params; /* the model's parameter block */
    const float *wt;     /* the matrices transposed ([in][out]), at the params' offsets */
    lmt_gemm_fn gemm;
    lmt_spike spike;
    size_t T;
} lmt_net;

LMT_HIDDEN lmt_ws *lmt_ws_new(const st_lm_model *m, size_t T);
LMT_HIDDEN void lmt_ws_destroy(lmt_ws **self_p);

/* Transposes every matrix of params into wt (same offsets). */
LMT_HIDDEN void lmt_transpose_weights(const st_lm_model *m, const float *params, float *wt);

/* Forward over tokens[0..T) with targets tokens[1..T] (those whose
   mask[1..T] is nonzero; mask NULL: all), the recurrent state `state`
   (st_lm_state layout; in: initial, out: final), saving what the backward
   needs; then the backward with loss scale `scale` (the loss is scale *
   the sum of the token losses), adding the gradient into grad. Returns
   the summed loss (nats, unscaled); *spikes gets the spike count. */
LMT_HIDDEN double lmt_row(const lmt_net *net, lmt_ws *ws, const int32_t *tokens,
                          const uint8_t *mask, float *state, float scale, float l2, float *grad,
                          size_t *spikes);

#endif
