/*  snn/lm_train_model.c - forward with saved activations and backward of
    the whole language model over one sequence of T tokens: the unit of
    work of the trainer (one worker, one gradient buffer per sequence).

    Workload: T 64 to 256, D 64 to 256, 2 to 6 layers. What is saved per
    token and layer: 17 D + n_ffn + 2 floats (LayerNorm outputs and
    statistics, k v r, the WKV state before the token and its output, the
    LIF currents and charges, the channel mix's hidden layer); the mixes,
    the gated WKV output and relu^2 are recomputed in the backward, which
    is cheaper than storing them. At 4 x 128, T 128: 5.5 MB a worker.
*/
#include "lm_train_impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Saved per layer, each [T][.] */
typedef struct {
    float *xh1, *rs1, *a, *k, *v, *r, *sA, *sB, *sP, *y, *o1, *h1;
    float *xh2, *rs2, *f, *hk, *kv, *rr, *o2, *h2;
} layer_save;

struct lmt_ws {
    size_t T, D, F, V, L;
    layer_save *ls;
    float *st0;                     /* the initial state, L x 7 D */
    float *x;                       /* residual [T][D] */
    float *xh0, *rs0, *xho, *rso, *lo, *logits;
    float *s[8];                    /* scratch [T][D] */
    float *sf[2];                   /* scratch [T][F] */
    void *mem;
};

static size_t up16(size_t n)
{
    return (n + 15) & ~(size_t)15;
}

lmt_ws *lmt_ws_new(const st_lm_model *m, size_t T)
{
    lmt_ws *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    const size_t D = m->cfg.n_embd, F = m->cfg.n_ffn, V = m->cfg.vocab, L = m->cfg.n_layer;
    w->T = T, w->D = D, w->F = F, w->V = V, w->L = L;
    w->ls = calloc(L, sizeof *w->ls);
    const size_t TD = up16(T * D), TF = up16(T * F), T1 = up16(T);
    size_t per_layer = 17 * TD + TF + 2 * T1;
    size_t total = L * per_layer + up16(L * ST_LM_N_VARS * D) + TD /* x */ + 3 * TD + 2 * T1 +
                   up16(T * V) + 8 * TD + 2 * TF;
    w->mem = aligned_alloc(64, total * sizeof(float));
    if (!w->ls || !w->mem) {
        lmt_ws_destroy(&w);
        return NULL;
    }
    memset(w->mem, 0, total * sizeof(float));
    float *p = w->mem;
#define TAKE(dst, n) (dst = p, p += (n))
    for (size_t l = 0; l < L; l++) {
        layer_save *s = &w->ls[l];
        TAKE(s->xh1, TD), TAKE(s->rs1, T1), TAKE(s->a, TD), TAKE(s->k, TD), TAKE(s->v, TD);
        TAKE(s->r, TD), TAKE(s->sA, TD), TAKE(s->sB, TD), TAKE(s->sP, TD), TAKE(s->y, TD);
        TAKE(s->o1, TD), TAKE(s->h1, TD), TAKE(s->xh2, TD), TAKE(s->rs2, T1), TAKE(s->f, TD);
        TAKE(s->hk, TF), TAKE(s->kv, TD), TAKE(s->rr, TD), TAKE(s->o2, TD), TAKE(s->h2, TD);
    }
    TAKE(w->st0, up16(L * ST_LM_N_VARS * D));
    TAKE(w->x, TD), TAKE(w->xh0, TD), TAKE(w->rs0, T1), TAKE(w->xho, TD), TAKE(w->rso, T1);
    TAKE(w->lo, TD), TAKE(w->logits, up16(T * V));
    for (int i = 0; i < 8; i++)
        TAKE(w->s[i], TD);
    TAKE(w->sf[0], TF), TAKE(w->sf[1], TF);
#undef TAKE
    return w;
}

void lmt_ws_destroy(lmt_ws **self_p)
{
    if (!self_p || !*self_p)
        return;
    free((*self_p)->ls);
    free((*self_p)->mem);
    free(*self_p);
    *self_p = NULL;
}

static void transpose(const float *src, size_t rows, size_t cols, float *dst)
{
    for (size_t r0 = 0; r0 < rows; r0 += 32)
        for (size_t c0 = 0; c0 < cols; c0 += 32)
            for (size_t r = r0; r < rows && r < r0 + 32; r++)
                for (size_t c = c0; c < cols && c < c0 + 32; c++)
                    dst[c * rows + r] = src[r * cols + c];
}

#define OFF(ptr) ((size_t)((ptr) - m->w.params))

void lmt_transpose_weights(const st_lm_model *m, const float *params, float *wt)
{
    const size_t D = m->cfg.n_embd, F = m->cfg.n_ffn, V = m->cfg.vocab;
    for (uint32_t l = 0; l < m->cfg.n_layer; l++) {
        const st_lm_block_weights *b = &m->blocks[l];
        const float *sq[] = {b->att_key, b->att_value, b->att_receptance, b->att_output,
                             b->ffn_receptance};
        for (size_t i = 0; i < 5; i++)
            transpose(params + OFF(sq[i]), D, D, wt + OFF(sq[i]));
        transpose(params + OFF(b->ffn_key), F, D, wt + OFF(b->ffn_key));
        transpose(params + OFF(b->ffn_value), D, F, wt + OFF(b->ffn_value));
    }
    transpose(params + OFF(m->w.head), V, D, wt + OFF(m->w.head));
}

/* y[T][out] = x[T][in] W^T, from the transposed copy WT [in][out] */
static void linear(const lmt_net *n, const float *x, size_t in, const float *w_model, size_t out,
                   float *y)
{
    const st_lm_model *m = n->m;
    n->gemm(n->T, out, in, x, in, 1, n->wt + OFF(w_model), out, y, out, false);
}

/* gx[T][in] (= or +=) gy[T][out] W; gW[out][in] += gy^T x */
static void linear_back(const lmt_net *n, const float *gy, const float *x, size_t in,
                        const float *w_model, size_t out, float *gx, bool gx_acc, float *grad)
{
    const st_lm_model *m = n->m;
    size_t o = OFF(w_model);
    if (gx)
        n->gemm(n->T, in, out, gy, out, 1, n->params + o, in, gx, in, gx_acc);
    n->gemm(out, in, n->T, gy, 1, out, x, in, grad + o, in, true);
}

#define P(ptr) (net->params + OFF(ptr))
#define G(ptr) (grad + OFF(ptr))

double lmt_row(const lmt_net *net, lmt_ws *ws, const int32_t *tokens, const uint8_t *mask,
               float *state, float scale, float l2, float *grad, size_t *spikes)
{
    const st_lm_model *m = net->m;
    const size_t T = net->T, D = m->cfg.n_embd, F = m->cfg.n_ffn, V = m->cfg.vocab;
    const size_t L = m->cfg.n_layer, TD = T * D;
    const bool spiking = m->cfg.spiking;
    const lmt_spike *sp = &net->spike;
    float *x = ws->x, **s = ws->s, **sf = ws->sf;
    size_t fired = 0;

    memcpy(ws->st0, state, L * ST_LM_N_VARS * D * sizeof(float));

    /* ---- forward ---- */
    const float *emb = P(m->w.emb);
    for (size_t t = 0; t < T; t++) {
        const float *e = emb + (size_t)tokens[t] * D;
        for (size_t c = 0; c < D; c++)
            s[0][t * D + c] = spiking ? lmt_spike_fwd(sp, e[c]) : e[c];
    }
    lmt_ln_forward(s[0], P(m->w.ln0_w), P(m->w.ln0_b), D, T, x, ws->xh0, ws->rs0);
    for (size_t l = 0; l < L; l++) {
        const st_lm_block_weights *b = &m->blocks[l];
        layer_save *S = &ws->ls[l];
        float *st = state + l * ST_LM_N_VARS * D;
        float *a_prev = st, *f_prev = st + D, *A = st + 2 * D, *B = st + 3 * D, *Pp = st + 4 * D;
        float *mem1 = st + 5 * D, *mem2 = st + 6 * D;
        const float *decay = m->derived[l].decay; /* -exp(time_decay), prepared */

        lmt_ln_forward(x, P(b->ln1_w), P(b->ln1_b), D, T, S->a, S->xh1, S->rs1);
        lmt_mix_forward(S->a, a_prev, P(b->att_mix_k), D, T, s[0]);
        lmt_mix_forward(S->a, a_prev, P(b->att_mix_v), D, T, s[1]);
        lmt_mix_forward(S->a, a_prev, P(b->att_mix_r), D, T, s[2]);
        memcpy(a_prev, S->a + (T - 1) * D, D * sizeof(float));
        linear(net, s[0], D, b->att_key, D, S->k);
        linear(net, s[1], D, b->att_value, D, S->v);
        linear(net, s[2], D, b->att_receptance, D, S->r);
        lmt_wkv_forward(S->k, S->v, P(b->att_time_first), decay, A, B, Pp, D, T, S->y, S->sA,
                        S->sB, S->sP);
        lmt_sigmul_forward(S->r, S->y, TD, s[0]);
        linear(net, s[0], D, b->att_output, D, S->o1);
        if (spiking)
            fired += lmt_lif_forward(sp, S->o1, mem1, D, T, S->h1, x);
        else
            for (size_t i = 0; i < TD; i++)
                x[i] += S->o1[i];

        lmt_ln_forward(x, P(b->ln2_w), P(b->ln2_b), D, T, S->f, S->xh2, S->rs2);
        lmt_mix_forward(S->f, f_prev, P(b->ffn_mix_k), D, T, s[0]);
        lmt_mix_forward(S->f, f_prev, P(b->ffn_mix_r), D, T, s[1]);
        memcpy(f_prev, S->f + (T - 1) * D, D * sizeof(float));
        linear(net, s[0], D, b->ffn_key, F, S->hk);
        lmt_relu2(S->hk, T * F, sf[0]);
        linear(net, sf[0], F, b->ffn_value, D, S->kv);
        linear(net, s[1], D, b->ffn_receptance, D, S->rr);
        lmt_sigmul_forward(S->rr, S->kv, TD, S->o2);
        if (spiking)
            fired += lmt_lif_forward(sp, S->o2, mem2, D, T, S->h2, x);
        else
            for (size_t i = 0; i < TD; i++)
                x[i] += S->o2[i];
    }
    lmt_ln_forward(x, P(m->w.ln_out_w), P(m->w.ln_out_b), D, T, ws->lo, ws->xho, ws->rso);
    linear(net, ws->lo, D, m->w.head, V, ws->logits);
    double loss = lmt_ce(ws->logits, tokens + 1, mask ? mask + 1 : NULL, V, T, scale, l2);
    if (spikes)
        *spikes = fired;

    /* ---- backward ---- */
    float *gx = x; /* the residual's gradient replaces the residual */
    memset(gx, 0, TD * sizeof(float));
    linear_back(net, ws->logits, ws->lo, D, m->w.head, V, s[0], false, grad);
    lmt_ln_backward(s[0], ws->xho, ws->rso, P(m->w.ln_out_w), D, T, gx, G(m->w.ln_out_w),
                    G(m->w.ln_out_b));
    for (size_t l = L; l-- > 0;) {
        const st_lm_block_weights *b = &m->blocks[l];
        layer_save *S = &ws->ls[l];
        const float *st = ws->st0 + l * ST_LM_N_VARS * D;
        const float *a_prev = st, *f_prev = st + D;
        const float *decay = m->derived[l].decay;

        /* channel mix: x += LIF2(sigmoid(rr) * kv) */
        float *go = s[0];
        if (spiking)
            lmt_lif_backward(sp, gx, S->h2, D, T, go);
        else
            memcpy(go, gx, TD * sizeof(float));
        lmt_sigmul_backward(go, S->rr, S->kv, TD, s[2] /* grr */, s[1] /* gkv */);
        lmt_relu2(S->hk, T * F, sf[0]);
        linear_back(net, s[1], sf[0], F, b->ffn_value, D, sf[1], false, grad);
        lmt_relu2_backward(S->hk, T * F, sf[1]);
        lmt_mix_forward(S->f, f_prev, P(b->ffn_mix_k), D, T, s[3]);
        lmt_mix_forward(S->f, f_prev, P(b->ffn_mix_r), D, T, s[4]);
        linear_back(net, sf[1], s[3], D, b->ffn_key, F, s[5] /* gfk */, false, grad);
        linear_back(net, s[2], s[4], D, b->ffn_receptance, D, s[6] /* gfr */, false, grad);
        memset(s[7], 0, TD * sizeof(float));
        lmt_mix_backward(s[5], S->f, f_prev, P(b->ffn_mix_k), D, T, s[7], G(b->ffn_mix_k));
        lmt_mix_backward(s[6], S->f, f_prev, P(b->ffn_mix_r), D, T, s[7], G(b->ffn_mix_r));
        lmt_ln_backward(s[7], S->xh2, S->rs2, P(b->ln2_w), D, T, gx, G(b->ln2_w), G(b->ln2_b));

        /* time mix: x += LIF1(Wo (sigmoid(r) * wkv)) */
        if (spiking)
            lmt_lif_backward(sp, gx, S->h1, D, T, go);
        else
            memcpy(go, gx, TD * sizeof(float));
        lmt_sigmul_forward(S->r, S->y, TD, s[1]); /* rw */
        linear_back(net, go, s[1], D, b->att_output, D, s[2] /* grw */, false, grad);
        lmt_sigmul_backward(s[2], S->r, S->y, TD, s[3] /* gr */, s[4] /* gy */);
        memset(s[7], 0, D * sizeof(float)); /* dL/dw, D floats */
        lmt_wkv_backward(S->k, S->v, P(b->att_time_first), decay, S->sA, S->sB, S->sP, s[4], D,
                         T, s[5] /* gk */, s[6] /* gv */, G(b->att_time_first), s[7]);
        float *gtd = G(b->att_time_decay); /* dw/d(time_decay) = w */
        for (size_t c = 0; c < D; c++)
            gtd[c] += s[7][c] * decay[c];
        lmt_mix_forward(S->a, a_prev, P(b->att_mix_k), D, T, s[0]);
        lmt_mix_forward(S->a, a_prev, P(b->att_mix_v), D, T, s[1]);
        lmt_mix_forward(S->a, a_prev, P(b->att_mix_r), D, T, s[2]);
        /* gxk, gxv, gxr overwrite the inputs' slots one after the other */
        linear_back(net, s[5], s[0], D, b->att_key, D, s[7], false, grad);
        memset(s[5], 0, TD * sizeof(float)); /* ga */
        lmt_mix_backward(s[7], S->a, a_prev, P(b->att_mix_k), D, T, s[5], G(b->att_mix_k));
        linear_back(net, s[6], s[1], D, b->att_value, D, s[7], false, grad);
        lmt_mix_backward(s[7], S->a, a_prev, P(b->att_mix_v), D, T, s[5], G(b->att_mix_v));
        linear_back(net, s[3], s[2], D, b->att_receptance, D, s[7], false, grad);
        lmt_mix_backward(s[7], S->a, a_prev, P(b->att_mix_r), D, T, s[5], G(b->att_mix_r));
        lmt_ln_backward(s[5], S->xh1, S->rs1, P(b->ln1_w), D, T, gx, G(b->ln1_w), G(b->ln1_b));
    }
    /* LN0 and the embedding */
    memset(s[0], 0, TD * sizeof(float));
    lmt_ln_backward(gx, ws->xh0, ws->rs0, P(m->w.ln0_w), D, T, s[0], G(m->w.ln0_w),
                    G(m->w.ln0_b));
    float *gemb = G(m->w.emb);
    for (size_t t = 0; t < T; t++) {
        const float *e = emb + (size_t)tokens[t] * D, *ge = s[0] + t * D;
        float *g = gemb + (size_t)tokens[t] * D;
        for (size_t c = 0; c < D; c++)
            g[c] += spiking ? ge[c] * lmt_spike_grad(sp, e[c]) : ge[c];
    }
    return loss;
}
