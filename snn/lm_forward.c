/*  snn/lm_forward.c - the language model's forward pass: one token
    (st_lm_step) or a chunk of up to 16 tokens layer by layer
    (st_lm_forward, the parallel mode), with the same arithmetic, so both
    give the same bits.

    Workload: batch 1, n_embd 128, 4 layers, vocab up to a few thousand.
    The six matrices of a block (13 D^2 weights) dominate; they and the
    per-channel loops (WKV, gates, LIF) are the model's kernel table
    (snn/lm_kernels.c). Here: the order of the work, LayerNorm (mean and
    variance in double), the token shift with 1 - mix precomputed at load,
    and the traced LIF the golden check uses. Nothing here allocates.
*/
#include "lm_impl.h"

#include <assert.h>
#include <math.h>
#include <string.h>

/* ---- per-channel pieces -------------------------------------------------- */

/*  LayerNorm, eps 1e-5, biased variance; mean and variance in double so
    that the only rounding that matters is the final float affine. y may be
    x (each element is read before it is written). */
void st_lm_layer_norm(const float *x, const float *restrict g, const float *restrict b, size_t d,
                      float *y)
{
    double s = 0;
    for (size_t i = 0; i < d; i++)
        s += x[i];
    double mean = s / (double)d, v = 0;
    for (size_t i = 0; i < d; i++) {
        double c = x[i] - mean;
        v += c * c;
    }
    double rstd = 1.0 / sqrt(v / (double)d + 1e-5);
    for (size_t i = 0; i < d; i++)
        y[i] = (float)((x[i] - mean) * rstd) * g[i] + b[i];
}

/* Token shift and mix for n tokens: out[t] = a[t] m + a[t-1] (1 - m), with
   a[-1] = prev. */
static void mix(const float *restrict a, const float *restrict prev, const float *restrict m,
                const float *restrict om, size_t d, size_t n, float *restrict out)
{
    for (size_t t = 0; t < n; t++) {
        const float *at = a + t * d, *pt = t ? a + (t - 1) * d : prev;
        float *ot = out + t * d;
        for (size_t c = 0; c < d; c++)
            ot[c] = at[c] * m[c] + pt[c] * om[c];
    }
}

/* x[t] += LIF(cur[t]) for n tokens (x += cur for the dense variant), the
   membrane carried in mem. which: 0 after the time mix, 1 after the
   channel mix (the trace's index). */
static void lif_add(const st_lm_model *m, const float *restrict cur, float *restrict mem,
                    float *restrict x, size_t n, st_lm_trace *tr, size_t t0, uint32_t layer,
                    unsigned which)
{
    const size_t d = m->cfg.n_embd;
    if (!m->cfg.spiking) {
        for (size_t t = 0; t < n; t++)
            for (size_t c = 0; c < d; c++)
                x[t * d + c] += cur[t * d + c];
        if (tr)
            for (size_t t = 0; t < n; t++) {
                size_t at = (((t0 + t) * m->cfg.n_layer + layer) * 2 + which) * d;
                if (tr->current)
                    memcpy(tr->current + at, cur + t * d, d * sizeof(float));
                if (tr->charge)
                    memset(tr->charge + at, 0, d * sizeof(float));
                if (tr->membrane)
                    memset(tr->membrane + at, 0, d * sizeof(float));
                if (tr->spikes)
                    memset(tr->spikes + at, 0, d);
            }
        return;
    }
    if (!tr) {
        m->k->lif(cur, mem, x, d, n);
        return;
    }
    /* traced: the same arithmetic as every kernel's lif, one channel at a time */
    for (size_t t = 0; t < n; t++) {
        size_t at = (((t0 + t) * m->cfg.n_layer + layer) * 2 + which) * d;
        const float *ct = cur + t * d;
        float *xt = x + t * d;
        for (size_t c = 0; c < d; c++) {
            float h = mem[c] + (ct[c] - mem[c]) * 0.5f;
            bool s = h >= 1.0f;
            if (tr->current)
                tr->current[at + c] = ct[c];
            if (tr->charge)
                tr->charge[at + c] = h;
            if (tr->spikes)
                tr->spikes[at + c] = s;
            if (tr->follow && fabsf(h - 1.0f) < tr->follow_eps) {
                bool f = tr->follow[at + c] != 0;
                tr->n_followed += f != s;
                s = f;
            }
            mem[c] = s ? 0.0f : h;
            xt[c] += s ? 1.0f : 0.0f;
            if (tr->membrane)
                tr->membrane[at + c] = mem[c];
        }
    }
}

/* One chunk of n <= ST_LM_CHUNK valid tokens through every layer. */
static void run_chunk(const st_lm_model *m, st_lm_state *s, const int32_t *tok, size_t n,
                      float *logits, bool all, st_lm_trace *tr, size_t t0)
{
    const size_t D = m->cfg.n_embd, F = m->cfg.n_ffn, V = m->cfg.vocab;
    const st_lm_kernels *kn = m->k;
    void (*const mm)(const float *restrict, size_t, size_t, const float *restrict, size_t, size_t,
                     float *restrict, size_t) = kn->matmul;
    float *X = s->x, *a = s->a;
    for (size_t t = 0; t < n; t++)
        memcpy(X + t * D, m->x0 + (size_t)tok[t] * D, D * sizeof(float));
    for (uint32_t l = 0; l < m->cfg.n_layer; l++) {
        const st_lm_block_weights *bw = &m->blocks[l];
        const st_lm_block_derived *bd = &m->derived[l];
        float *st = s->block + (size_t)l * ST_LM_N_VARS * D;
        float *a_prev = st, *f_prev = st + D, *A = st + 2 * D, *B = st + 3 * D, *P = st + 4 * D;
        float *mem1 = st + 5 * D, *mem2 = st + 6 * D;

        /* time mix */
        for (size_t t = 0; t < n; t++)
            st_lm_layer_norm(X + t * D, bw->ln1_w, bw->ln1_b, D, a + t * D);
        mix(a, a_prev, bw->att_mix_k, bd->att_omk, D, n, s->xk);
        mix(a, a_prev, bw->att_mix_v, bd->att_omv, D, n, s->xv);
        mix(a, a_prev, bw->att_mix_r, bd->att_omr, D, n, s->xr);
        memcpy(a_prev, a + (n - 1) * D, D * sizeof(float));
        mm(bw->att_key, D, D, s->xk, D, n, s->k, D);
        mm(bw->att_value, D, D, s->xv, D, n, s->v, D);
        mm(bw->att_receptance, D, D, s->xr, D, n, s->r, D);
        kn->wkv(s->k, s->v, s->r, bw->att_time_first, bd->decay, A, B, P, D, n, s->rw);
        mm(bw->att_output, D, D, s->rw, D, n, s->o, D);
        lif_add(m, s->o, mem1, X, n, tr, t0, l, 0);

        /* channel mix */
        for (size_t t = 0; t < n; t++)
            st_lm_layer_norm(X + t * D, bw->ln2_w, bw->ln2_b, D, a + t * D);
        mix(a, f_prev, bw->ffn_mix_k, bd->ffn_omk, D, n, s->xk);
        mix(a, f_prev, bw->ffn_mix_r, bd->ffn_omr, D, n, s->xr);
        memcpy(f_prev, a + (n - 1) * D, D * sizeof(float));
        mm(bw->ffn_key, F, D, s->xk, D, n, s->h, F);
        kn->relu2(s->h, n * F);
        mm(bw->ffn_value, D, F, s->h, F, n, s->v, D);
        mm(bw->ffn_receptance, D, D, s->xr, D, n, s->r, D);
        kn->sigmul(s->r, s->v, s->o, n * D);
        lif_add(m, s->o, mem2, X, n, tr, t0, l, 1);
    }
    if (!logits)
        return;
    size_t first = all ? 0 : n - 1, cnt = n - first;
    for (size_t t = 0; t < cnt; t++)
        st_lm_layer_norm(X + (first + t) * D, m->w.ln_out_w, m->w.ln_out_b, D, s->lo + t * D);
    mm(m->w.head, V, D, s->lo, D, cnt, logits, V);
}

int st_lm_forward(const st_lm_model *model, st_lm_state *state, const int32_t *tokens,
                  size_t n, float *logits, bool all_logits, st_lm_trace *trace)
{
    assert(model && state && (tokens || !n));
    assert(state->n_layer == model->cfg.n_layer && state->n_embd == model->cfg.n_embd &&
           state->vocab == model->cfg.vocab && state->n_ffn == model->cfg.n_ffn);
    for (size_t t = 0; t < n; t++)
        if (tokens[t] < 0 || (uint32_t)tokens[t] >= model->cfg.vocab)
            return st_error(ST_ERR_INVALID, "language model: token %d at position %zu is "
                                            "outside the vocabulary (0 to %u)",
                            (int)tokens[t], t, (unsigned)model->cfg.vocab - 1);
    if (trace)
        trace->n_followed = 0;
    for (size_t t0 = 0; t0 < n; t0 += ST_LM_CHUNK) {
        size_t len = n - t0 < ST_LM_CHUNK ? n - t0 : ST_LM_CHUNK;
        bool last = t0 + len == n;
        float *out = NULL;
        if (logits && all_logits)
            out = logits + t0 * model->cfg.vocab;
        else if (logits && last)
            out = logits;
        run_chunk(model, state, tokens + t0, len, out, all_logits, trace, t0);
    }
    if (n) {
        state->n_tokens += n;
        state->have_logits = logits != NULL;
        const float *last = logits && all_logits ? logits + (n - 1) * model->cfg.vocab : logits;
        if (last && last != state->logits)
            memcpy(state->logits, last, model->cfg.vocab * sizeof(float));
    }
    return ST_OK;
}

int st_lm_step(const st_lm_model *model, st_lm_state *state, int32_t token, float *logits)
{
    return st_lm_forward(model, state, &token, 1, logits, false, NULL);
}
