/*  snn/lm_train.c - the language-model trainer: parameters and schedule,
    SpikeGPT's initialisation, the worker pool over the batch, the ordered
    reduction, Adam/AdamW with clipping, the data streams, checkpoints, the
    CSV log, and the held-out evaluation through the inference engine.

    Workload: 8 to 32 sequences a step of 64 to 256 tokens on 1 to 16
    cores; a step is 10 to 100 ms of matrix products per sequence, so one
    sequence is the unit a worker takes (an atomic counter hands them out;
    the caller works too). Each sequence writes its own gradient buffer;
    the buffers are then summed in sequence order, in parallel over slices
    of the parameter vector, so the result does not depend on the thread
    count. The optimizer is elementwise over slices, the norm one ordered
    sum in double.
*/
#include "lm_train_impl.h"

#include "snn.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_THREADS 64
#define SLICE 16384 /* floats per unit of the reduction and the optimizer */

/* ---- parameters and schedule ------------------------------------------------------- */

st_lm_train_params st_lm_train_default_params(void)
{
    return (st_lm_train_params){
        .seq_len = 128,
        .batch = 16,
        .sampling = ST_LM_SAMPLE_STREAMS,
        .lr = 6e-4f,
        .lr_min = 1e-5f,
        .warmup_steps = 0,
        .total_steps = 0,
        .beta1 = 0.9f,
        .beta2 = 0.99f,
        .eps = 4e-9f,
        .weight_decay = 0,
        .clip_norm = 1.0f,
        .logit_l2 = 1e-4f,
        .surrogate_alpha = 2.0f,
        .detach_reset = false,
        .smooth_forward = false,
        .threads = 0,
        .seed = 1,
    };
}

static double cosine(const st_lm_train_params *p, double progress)
{
    if (progress < 0)
        progress = 0;
    if (progress > 1)
        progress = 1;
    return p->lr_min + (p->lr - p->lr_min) * 0.5 * (1.0 + cos(M_PI * progress));
}

double st_lm_train_lr(const st_lm_train_params *p, uint64_t step)
{
    if (step < p->warmup_steps)
        return p->lr_min + (p->lr - p->lr_min) * (double)step / p->warmup_steps;
    if (!p->total_steps || p->total_steps <= p->warmup_steps)
        return p->lr;
    return cosine(p, (double)(step - p->warmup_steps) / (double)(p->total_steps - p->warmup_steps));
}

double st_lm_train_lr_at(const st_lm_train_params *p, double fraction)
{
    return cosine(p, fraction);
}

static int check_params(const st_lm_train_params *p)
{
#define BAD(field, why) st_error(ST_ERR_INVALID, "language-model trainer: " field " " why)
    if (p->seq_len < 1 || p->seq_len > 65536)
        return BAD("seq_len", "must be 1 to 65536");
    if (p->batch < 1 || p->batch > 4096)
        return BAD("batch", "must be 1 to 4096");
    if ((unsigned)p->sampling >= ST_LM_N_SAMPLINGS)
        return BAD("sampling", "is not streams or random");
    if (!(p->lr >= 0 && p->lr < 10) || !(p->lr_min >= 0 && p->lr_min <= p->lr))
        return BAD("lr, lr_min", "must be finite, 0 <= lr_min <= lr < 10");
    if (!(p->beta1 >= 0 && p->beta1 < 1) || !(p->beta2 >= 0 && p->beta2 < 1))
        return BAD("beta1, beta2", "must be in [0, 1)");
    if (!(p->eps > 0 && p->eps < 1))
        return BAD("eps", "must be in (0, 1)");
    if (!(p->weight_decay >= 0 && p->weight_decay < 1))
        return BAD("weight_decay", "must be in [0, 1)");
    if (!(p->clip_norm >= 0 && p->clip_norm < 1e9))
        return BAD("clip_norm", "must be >= 0 and finite");
    if (!(p->logit_l2 >= 0 && p->logit_l2 < 1))
        return BAD("logit_l2", "must be in [0, 1)");
    if (!(p->surrogate_alpha > 0 && p->surrogate_alpha < 1000))
        return BAD("surrogate_alpha", "must be in (0, 1000)");
    if (p->threads > MAX_THREADS)
        return BAD("threads", "must be 0 (one per core) to 64");
#undef BAD
    return ST_OK;
}

/* ---- random numbers ---------------------------------------------------------------- */

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double uniform01(uint64_t *s)
{
    return (double)(splitmix(s) >> 11) * (1.0 / 9007199254740992.0);
}

static double gauss(uint64_t *s)
{
    double u1 = uniform01(s), u2 = uniform01(s);
    return sqrt(-2 * log(u1 > 0 ? u1 : 1e-300)) * cos(2 * M_PI * u2);
}

/* ---- SpikeGPT's initialisation ------------------------------------------------------- */

/* PyTorch's orthogonal_: a Gaussian matrix, QR of its tall orientation
   (here Gram-Schmidt, in double, R's diagonal positive), times gain. */
static void orthogonal(float *w, size_t rows, size_t cols, double gain, uint64_t *rng)
{
    size_t tall = rows >= cols ? rows : cols, n = rows >= cols ? cols : rows;
    double *q = malloc(tall * n * sizeof *q);
    if (!q) { /* out of memory: a scaled Gaussian is the next best thing */
        for (size_t i = 0; i < rows * cols; i++)
            w[i] = (float)(gain * gauss(rng) / sqrt((double)tall));
        return;
    }
    for (size_t i = 0; i < tall * n; i++)
        q[i] = gauss(rng); /* column j of the tall matrix: q[j * tall ...] */
    for (size_t j = 0; j < n; j++) {
        double *cj = q + j * tall;
        for (int pass = 0; pass < 2; pass++) /* twice is enough (Kahan) */
            for (size_t i = 0; i < j; i++) {
                const double *ci = q + i * tall;
                double d = 0;
                for (size_t r = 0; r < tall; r++)
                    d += ci[r] * cj[r];
                for (size_t r = 0; r < tall; r++)
                    cj[r] -= d * ci[r];
            }
        double nn = 0;
        for (size_t r = 0; r < tall; r++)
            nn += cj[r] * cj[r];
        nn = nn > 0 ? 1 / sqrt(nn) : 0;
        for (size_t r = 0; r < tall; r++)
            cj[r] *= nn;
    }
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < cols; c++)
            w[r * cols + c] = (float)(gain * (rows >= cols ? q[c * tall + r] : q[r * tall + c]));
    free(q);
}

void st_lm_train_init(st_lm_model *model, uint64_t seed)
{
    st_lm_model_randomize(model, seed, 1.0f); /* RWKV-4's ramps of decays and mixes */
    const st_lm_config *c = &model->cfg;
    const size_t D = c->n_embd, F = c->n_ffn, V = c->vocab;
    uint64_t rng = seed ^ 0x5350474954524149ull;
    orthogonal(model->w.emb, V, D, 1e-4 * sqrt((double)(V > D ? V : D)), &rng);
    for (uint32_t l = 0; l < c->n_layer; l++) {
        st_lm_block_weights *b = &model->blocks[l];
        memset(b->att_key, 0, D * D * sizeof(float));
        memset(b->att_receptance, 0, D * D * sizeof(float));
        memset(b->att_output, 0, D * D * sizeof(float));
        memset(b->ffn_receptance, 0, D * D * sizeof(float));
        memset(b->ffn_value, 0, D * F * sizeof(float));
        orthogonal(b->att_value, D, D, 1.0, &rng);
        orthogonal(b->ffn_key, F, D, F > D ? sqrt((double)F / D) : 1.0, &rng);
    }
    orthogonal(model->w.head, V, D, 0.5 * (V > D ? sqrt((double)V / D) : 1.0), &rng);
    st_lm_model_prepare(model);
}

/* ---- the trainer ------------------------------------------------------------------------ */

struct st_lm_trainer {
    st_lm_model *m;
    st_lm_train_params p;
    lmt_net net;
    float *wt;           /* transposed matrices */
    size_t n_params, state_len;
    unsigned n_threads;
    lmt_ws *ws[MAX_THREADS];
    st_workers *pool;
    float *grad, *m1, *m2;
    uint8_t *decay_mask; /* weight decay applies */
    uint64_t steps;
    /* per sequence of a gradient call */
    size_t rows_cap;
    float *rowgrad;      /* rows_cap x n_params */
    float *fresh;        /* rows_cap x state_len, for sequences from a fresh state */
    double *row_loss;
    size_t *row_spikes;
    /* the current gradient call */
    const int32_t *g_tokens;
    const uint8_t *g_mask;
    float *g_states;
    size_t g_rows;
    float g_scale, g_l2;
    /* data */
    int32_t *data;
    uint8_t *mask;       /* NULL: every token a target */
    size_t n_data;
    size_t *starts;
    size_t n_starts;
    uint64_t *pos;       /* batch: stream positions */
    float *streams;      /* batch x state_len: carried states */
    int32_t *batch_tok;  /* batch x (seq_len + 1) */
    uint8_t *batch_mask; /* batch x (seq_len + 1) */
    uint64_t rng;
};

static void fresh_state(const st_lm_model *m, float *s)
{
    const size_t D = m->cfg.n_embd;
    memset(s, 0, st_lm_state_len(m) * sizeof(float));
    for (uint32_t l = 0; l < m->cfg.n_layer; l++)
        for (size_t c = 0; c < D; c++)
            s[(l * ST_LM_N_VARS + ST_LM_VAR_WKV_P) * D + c] = ST_LM_P_INIT;
}

void st_lm_trainer_destroy(st_lm_trainer **self_p)
{
    if (!self_p || !*self_p)
        return;
    st_lm_trainer *t = *self_p;
    st_workers_destroy(&t->pool);
    for (unsigned i = 0; i < MAX_THREADS; i++)
        lmt_ws_destroy(&t->ws[i]);
    free(t->wt);
    free(t->grad);
    free(t->m1);
    free(t->m2);
    free(t->decay_mask);
    free(t->rowgrad);
    free(t->fresh);
    free(t->row_loss);
    free(t->row_spikes);
    free(t->data);
    free(t->mask);
    free(t->batch_mask);
    free(t->starts);
    free(t->pos);
    free(t->streams);
    free(t->batch_tok);
    free(t);
    *self_p = NULL;
}

static int reserve_rows(st_lm_trainer *t, size_t rows)
{
    if (rows <= t->rows_cap)
        return ST_OK;
    float *rg = realloc(t->rowgrad, rows * t->n_params * sizeof(float));
    if (rg)
        t->rowgrad = rg;
    float *fr = realloc(t->fresh, rows * t->state_len * sizeof(float));
    if (fr)
        t->fresh = fr;
    double *rl = realloc(t->row_loss, rows * sizeof(double));
    if (rl)
        t->row_loss = rl;
    size_t *rs = realloc(t->row_spikes, rows * sizeof(size_t));
    if (rs)
        t->row_spikes = rs;
    if (!rg || !fr || !rl || !rs)
        return st_error(ST_ERR_NOMEM, "language-model trainer: out of memory for %zu sequences "
                                      "of gradients (%zu MB)",
                        rows, rows * t->n_params * sizeof(float) >> 20);
    t->rows_cap = rows;
    return ST_OK;
}

st_lm_trainer *st_lm_trainer_new(st_lm_model *model, const st_lm_train_params *p, int *err)
{
    int e = check_params(p);
    st_lm_trainer *t = NULL;
    if (e)
        goto fail;
    e = ST_ERR_NOMEM;
    t = calloc(1, sizeof *t);
    if (!t)
        goto fail;
    t->m = model;
    t->p = *p;
    t->n_params = model->w.n_params;
    t->state_len = st_lm_state_len(model);
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    t->n_threads = p->threads ? p->threads : (unsigned)(cores < 1 ? 1 : cores > MAX_THREADS ? MAX_THREADS : cores);
    t->wt = aligned_alloc(64, ((t->n_params * sizeof(float)) | 63) + 1);
    t->grad = calloc(t->n_params, sizeof(float));
    t->m1 = calloc(t->n_params, sizeof(float));
    t->m2 = calloc(t->n_params, sizeof(float));
    t->decay_mask = calloc(t->n_params, 1);
    t->pos = calloc(p->batch, sizeof *t->pos);
    t->streams = malloc((size_t)p->batch * t->state_len * sizeof(float));
    t->batch_tok = malloc((size_t)p->batch * (p->seq_len + 1) * sizeof(int32_t));
    t->batch_mask = malloc((size_t)p->batch * (p->seq_len + 1));
    if (!t->wt || !t->grad || !t->m1 || !t->m2 || !t->decay_mask || !t->pos || !t->streams ||
        !t->batch_tok || !t->batch_mask)
        goto fail;
    memset(t->wt, 0, t->n_params * sizeof(float));
    for (unsigned i = 0; i < t->n_threads; i++)
        if (!(t->ws[i] = lmt_ws_new(model, p->seq_len)))
            goto fail;
    if ((e = reserve_rows(t, p->batch)))
        goto fail;
    for (size_t k = 0; k < model->n_tensors; k++) {
        const st_lm_tensor_entry *te = &model->tensors[k];
        if (te->ndim == 2 && strcmp(te->name, "emb.weight"))
            memset(t->decay_mask + (te->data - model->w.params), 1, te->count);
    }
    for (uint32_t b = 0; b < p->batch; b++)
        fresh_state(model, t->streams + b * t->state_len);
    t->rng = p->seed;
    t->net = (lmt_net){.m = model,
                       .params = model->w.params,
                       .wt = t->wt,
                       .gemm = lmt_gemm_best(),
                       .spike = {.alpha = p->surrogate_alpha,
                                 .smooth = p->smooth_forward,
                                 .detach = p->detach_reset},
                       .T = p->seq_len};
    if (!(t->pool = st_workers_new(t->n_threads, &e)))
        goto fail;
    return t;
fail:
    if (e == ST_ERR_NOMEM)
        st_error(ST_ERR_NOMEM, "language-model trainer: out of memory (%zu parameters, T %u, "
                               "batch %u)",
                 model->w.n_params, p->seq_len, p->batch);
    st_lm_trainer_destroy(&t);
    if (err)
        *err = e;
    return NULL;
}

const st_lm_train_params *st_lm_trainer_params(const st_lm_trainer *self)
{
    return &self->p;
}

st_lm_model *st_lm_trainer_model(st_lm_trainer *self)
{
    return self->m;
}

unsigned st_lm_trainer_threads(const st_lm_trainer *self)
{
    return self->n_threads;
}

float *st_lm_trainer_grad(st_lm_trainer *self)
{
    return self->grad;
}

uint64_t st_lm_trainer_steps(const st_lm_trainer *self)
{
    return self->steps;
}

/* ---- gradient ---------------------------------------------------------------------------- */

static void row_job(void *ctx, size_t k, unsigned worker)
{
    st_lm_trainer *t = ctx;
    float *g = t->rowgrad + k * t->n_params;
    memset(g, 0, t->n_params * sizeof(float));
    float *st;
    if (t->g_states) {
        st = t->g_states + k * t->state_len;
    } else {
        st = t->fresh + k * t->state_len;
        fresh_state(t->m, st);
    }
    size_t at = k * (t->p.seq_len + 1);
    t->row_loss[k] = lmt_row(&t->net, t->ws[worker], t->g_tokens + at,
                             t->g_mask ? t->g_mask + at : NULL, st, t->g_scale, t->g_l2, g,
                             &t->row_spikes[k]);
}

static void reduce_job(void *ctx, size_t item, unsigned worker)
{
    (void)worker;
    st_lm_trainer *t = ctx;
    size_t lo = item * SLICE, hi = lo + SLICE < t->n_params ? lo + SLICE : t->n_params;
    float *g = t->grad;
    memcpy(g + lo, t->rowgrad + lo, (hi - lo) * sizeof(float));
    for (size_t r = 1; r < t->g_rows; r++) {
        const float *s = t->rowgrad + r * t->n_params;
        for (size_t i = lo; i < hi; i++)
            g[i] += s[i];
    }
}

int st_lm_trainer_gradient(st_lm_trainer *self, const int32_t *tokens, const uint8_t *mask,
                           size_t n_seq, float *states, st_lm_train_stats *out)
{
    double t0 = st_now_s();
    const size_t T = self->p.seq_len, V = self->m->cfg.vocab;
    if (!n_seq)
        return st_error(ST_ERR_INVALID, "language-model trainer: no sequences");
    size_t counted = 0;
    for (size_t i = 0; i < n_seq * (T + 1); i++) {
        if (tokens[i] < 0 || (uint32_t)tokens[i] >= V)
            return st_error(ST_ERR_INVALID, "language-model trainer: token %d at sequence %zu, "
                                            "position %zu is outside the vocabulary (0 to %zu)",
                            (int)tokens[i], i / (T + 1), i % (T + 1), V - 1);
        counted += i % (T + 1) && (!mask || mask[i]);
    }
    if (!counted)
        return st_error(ST_ERR_INVALID, "language-model trainer: the mask leaves no target");
    int e = reserve_rows(self, n_seq);
    if (e)
        return e;
    lmt_transpose_weights(self->m, self->m->w.params, self->wt);
    self->g_tokens = tokens;
    self->g_mask = mask;
    self->g_states = states;
    self->g_rows = n_seq;
    double ntok = (double)counted;
    self->g_scale = (float)(1.0 / ntok);
    self->g_l2 = (float)(self->p.logit_l2 / ntok);
    st_workers_run(self->pool, row_job, self, n_seq);
    st_workers_run(self->pool, reduce_job, self, (self->n_params + SLICE - 1) / SLICE);
    if (out) {
        double loss = 0;
        size_t spikes = 0;
        for (size_t r = 0; r < n_seq; r++) {
            loss += self->row_loss[r];
            spikes += self->row_spikes[r];
        }
        memset(out, 0, sizeof *out);
        out->loss = loss / ntok;
        out->tokens = (size_t)ntok;
        out->spike_rate = self->m->cfg.spiking
                              ? (double)spikes / ((double)n_seq * T * 2.0 *
                                                  self->m->cfg.n_layer * self->m->cfg.n_embd)
                              : 0;
        out->seconds = st_now_s() - t0;
    }
    return ST_OK;
}

/* ---- the optimizer ------------------------------------------------------------------------- */

typedef struct {
    st_lm_trainer *t;
    float clip, lr, bc1, bc2_sqrt, wd;
} adam_ctx;

/* PyTorch's Adam / AdamW (single-tensor path), in float. */
static void adam_job(void *ctx, size_t item, unsigned worker)
{
    (void)worker;
    const adam_ctx *a = ctx;
    st_lm_trainer *t = a->t;
    size_t lo = item * SLICE, hi = lo + SLICE < t->n_params ? lo + SLICE : t->n_params;
    float *w = t->m->w.params, *g = t->grad, *m1 = t->m1, *m2 = t->m2;
    const float b1 = t->p.beta1, b2 = t->p.beta2, eps = t->p.eps;
    const float step = a->lr / a->bc1;
    for (size_t i = lo; i < hi; i++) {
        float gi = g[i] * a->clip;
        if (a->wd > 0 && t->decay_mask[i])
            w[i] *= 1.0f - a->lr * a->wd;
        m1[i] = m1[i] * b1 + gi * (1.0f - b1);
        m2[i] = m2[i] * b2 + (1.0f - b2) * gi * gi;
        float den = sqrtf(m2[i]) / a->bc2_sqrt + eps;
        w[i] -= step * (m1[i] / den);
    }
}

int st_lm_trainer_apply(st_lm_trainer *self, double lr, st_lm_train_stats *out)
{
    if (lr < 0)
        lr = st_lm_train_lr(&self->p, self->steps);
    double nn = 0;
    for (size_t i = 0; i < self->n_params; i++)
        nn += (double)self->grad[i] * self->grad[i];
    double norm = sqrt(nn);
    if (!isfinite(norm))
        return st_error(ST_ERR_INVALID, "language-model trainer: the gradient is not finite at "
                                        "step %llu (lower the learning rate?)",
                        (unsigned long long)self->steps);
    float clip = 1.0f;
    if (self->p.clip_norm > 0) {
        double c = self->p.clip_norm / (norm + 1e-6);
        if (c < 1)
            clip = (float)c;
    }
    self->steps++;
    adam_ctx a = {.t = self,
                  .clip = clip,
                  .lr = (float)lr,
                  .bc1 = (float)(1.0 - pow(self->p.beta1, (double)self->steps)),
                  .bc2_sqrt = (float)sqrt(1.0 - pow(self->p.beta2, (double)self->steps)),
                  .wd = self->p.weight_decay};
    st_workers_run(self->pool, adam_job, &a, (self->n_params + SLICE - 1) / SLICE);
    int e = st_lm_model_prepare(self->m);
    if (out) {
        out->grad_norm = norm;
        out->lr = lr;
    }
    return e;
}

/* ---- data ------------------------------------------------------------------------------------ */

static void reset_streams(st_lm_trainer *t)
{
    const size_t B = t->p.batch;
    for (size_t b = 0; b < B; b++) {
        t->pos[b] = t->n_data ? b * (t->n_data / B) : 0;
        fresh_state(t->m, t->streams + b * t->state_len);
    }
}

int st_lm_trainer_set_data(st_lm_trainer *self, const int32_t *ids, const uint8_t *mask, size_t n,
                           const size_t *record_starts, size_t n_starts)
{
    const size_t T = self->p.seq_len, B = self->p.batch;
    if (n < T + 1)
        return st_error(ST_ERR_INVALID, "language-model trainer: %zu tokens of data, fewer than "
                                        "one sequence of %zu + 1",
                        n, T);
    if (self->p.sampling == ST_LM_SAMPLE_STREAMS && n / B < T + 1)
        return st_error(ST_ERR_INVALID, "language-model trainer: %zu tokens cannot make %zu "
                                        "streams of at least %zu + 1",
                        n, B, T);
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || (uint32_t)ids[i] >= self->m->cfg.vocab)
            return st_error(ST_ERR_INVALID, "language-model trainer: token %d at %zu of the data "
                                            "is outside the vocabulary",
                            (int)ids[i], i);
    int32_t *d = malloc(n * sizeof *d);
    size_t *s = n_starts ? malloc(n_starts * sizeof *s) : NULL;
    uint8_t *mk = mask ? malloc(n) : NULL;
    if (!d || (n_starts && !s) || (mask && !mk)) {
        free(d);
        free(s);
        free(mk);
        return st_error(ST_ERR_NOMEM, "language-model trainer: out of memory for the data");
    }
    memcpy(d, ids, n * sizeof *d);
    if (mk)
        memcpy(mk, mask, n);
    size_t k = 0;
    for (size_t i = 0; i < n_starts; i++)
        if (record_starts[i] < n)
            s[k++] = record_starts[i] + T + 1 <= n ? record_starts[i] : n - T - 1;
    free(self->data);
    free(self->mask);
    free(self->starts);
    self->data = d;
    self->mask = mk;
    self->n_data = n;
    self->starts = s;
    self->n_starts = k;
    reset_streams(self);
    return ST_OK;
}

int st_lm_trainer_step(st_lm_trainer *self, double lr, st_lm_train_stats *out)
{
    const size_t T = self->p.seq_len, B = self->p.batch, SL = self->state_len;
    if (!self->data)
        return st_error(ST_ERR_INVALID, "language-model trainer: no data (st_lm_trainer_set_data)");
    if (self->p.sampling == ST_LM_SAMPLE_STREAMS) {
        size_t seg = self->n_data / B;
        for (size_t b = 0; b < B; b++) {
            size_t lo = b * seg;
            if (self->pos[b] + T + 1 > lo + seg) {
                self->pos[b] = lo;
                fresh_state(self->m, self->streams + b * SL);
            }
            memcpy(self->batch_tok + b * (T + 1), self->data + self->pos[b],
                   (T + 1) * sizeof(int32_t));
            if (self->mask)
                memcpy(self->batch_mask + b * (T + 1), self->mask + self->pos[b], T + 1);
            self->pos[b] += T;
        }
    } else {
        for (size_t b = 0; b < B; b++) {
            size_t at;
            if (self->n_starts)
                at = self->starts[(size_t)(uniform01(&self->rng) * self->n_starts)];
            else
                at = (size_t)(uniform01(&self->rng) * (double)(self->n_data - T));
            memcpy(self->batch_tok + b * (T + 1), self->data + at, (T + 1) * sizeof(int32_t));
            if (self->mask)
                memcpy(self->batch_mask + b * (T + 1), self->mask + at, T + 1);
        }
    }
    st_lm_train_stats g;
    double t0 = st_now_s();
    int e = st_lm_trainer_gradient(self, self->batch_tok, self->mask ? self->batch_mask : NULL, B,
                                   self->p.sampling == ST_LM_SAMPLE_STREAMS ? self->streams : NULL,
                                   &g);
    if (e)
        return e;
    e = st_lm_trainer_apply(self, lr, &g);
    g.seconds = st_now_s() - t0;
    if (out)
        *out = g;
    return e;
}

/* ---- checkpoints -------------------------------------------------------------------------------- */

int st_lm_trainer_save(const st_lm_trainer *self, const char *path, const char *note)
{
    int e = st_lm_model_save(self->m, path);
    if (e)
        return e;
    st_tensor_file *f = st_tensor_file_load(path, &e);
    if (!f)
        return e;
    const uint64_t np = self->n_params, B = self->p.batch;
    int64_t shape[4] = {(int64_t)self->p.seq_len, (int64_t)self->p.batch,
                        (int64_t)self->p.sampling, (int64_t)self->n_data};
    int64_t steps = (int64_t)self->steps, rng = (int64_t)self->rng;
    int64_t *pos = malloc(B * sizeof *pos);
    if (!pos) {
        st_tensor_file_destroy(&f);
        return st_error(ST_ERR_NOMEM, "checkpoint '%s': out of memory", path);
    }
    for (size_t b = 0; b < B; b++)
        pos[b] = (int64_t)self->pos[b];
    if (!(e = st_tensor_file_add(f, "train/shape", ST_DTYPE_I64, 1, (const uint64_t[]){4}, shape)) &&
        !(e = st_tensor_file_add(f, "train/steps", ST_DTYPE_I64, 1, (const uint64_t[]){1}, &steps)) &&
        !(e = st_tensor_file_add(f, "train/rng", ST_DTYPE_I64, 1, (const uint64_t[]){1}, &rng)) &&
        !(e = st_tensor_file_add(f, "train/adam_m", ST_DTYPE_F32, 1, &np, self->m1)) &&
        !(e = st_tensor_file_add(f, "train/adam_v", ST_DTYPE_F32, 1, &np, self->m2)) &&
        !(e = st_tensor_file_add(f, "train/stream_pos", ST_DTYPE_I64, 1, &B, pos)) &&
        !(e = st_tensor_file_add(f, "train/stream_state", ST_DTYPE_F32, 2,
                                 (const uint64_t[]){B, self->state_len}, self->streams)))
        e = st_tensor_file_add_string(f, "train/note", note ? note : "");
    free(pos);
    if (!e)
        e = st_tensor_file_save(f, path);
    st_tensor_file_destroy(&f);
    return e;
}

int st_lm_trainer_load(st_lm_trainer *self, const char *path)
{
    int e;
    st_tensor_file *f = st_tensor_file_load(path, &e);
    if (!f)
        return e;
    const uint64_t np = self->n_params, B = self->p.batch;
    st_tensor sh, st, rg, m1, m2, ps, ss;
    if ((e = st_tensor_file_expect(f, "train/shape", ST_DTYPE_I64, 1, (const uint64_t[]){4}, &sh)) ||
        (e = st_tensor_file_expect(f, "train/steps", ST_DTYPE_I64, 1, (const uint64_t[]){1}, &st)) ||
        (e = st_tensor_file_expect(f, "train/rng", ST_DTYPE_I64, 1, (const uint64_t[]){1}, &rg)) ||
        (e = st_tensor_file_expect(f, "train/adam_m", ST_DTYPE_F32, 1, &np, &m1)) ||
        (e = st_tensor_file_expect(f, "train/adam_v", ST_DTYPE_F32, 1, &np, &m2)) ||
        (e = st_tensor_file_expect(f, "train/stream_pos", ST_DTYPE_I64, 1, &B, &ps)) ||
        (e = st_tensor_file_expect(f, "train/stream_state", ST_DTYPE_F32, 2,
                                   (const uint64_t[]){B, self->state_len}, &ss)))
        goto done;
    const int64_t *shape = sh.data;
    if (shape[0] != (int64_t)self->p.seq_len || shape[2] != (int64_t)self->p.sampling) {
        e = st_error(ST_ERR_FORMAT, "checkpoint '%s': tensor 'train/shape': made with seq_len "
                                    "%lld and sampling %lld, this run has %u and %d",
                     path, (long long)shape[0], (long long)shape[2], self->p.seq_len,
                     (int)self->p.sampling);
        goto done;
    }
    if (self->data && shape[3] != (int64_t)self->n_data) {
        e = st_error(ST_ERR_FORMAT, "checkpoint '%s': made on %lld tokens of data, this run has "
                                    "%zu",
                     path, (long long)shape[3], self->n_data);
        goto done;
    }
    int64_t v;
    memcpy(&v, st.data, 8);
    self->steps = (uint64_t)v;
    memcpy(&v, rg.data, 8);
    self->rng = (uint64_t)v;
    memcpy(self->m1, m1.data, np * sizeof(float));
    memcpy(self->m2, m2.data, np * sizeof(float));
    for (size_t b = 0; b < B; b++) {
        memcpy(&v, (const char *)ps.data + 8 * b, 8);
        self->pos[b] = (uint64_t)v;
    }
    memcpy(self->streams, ss.data, B * self->state_len * sizeof(float));
done:
    st_tensor_file_destroy(&f);
    return e;
}

int st_lm_trainer_checkpoint_note(const char *path, char *buf, size_t cap)
{
    int e;
    st_tensor_file *f = st_tensor_file_load(path, &e);
    if (!f)
        return e;
    e = st_tensor_file_string(f, "train/note", buf, cap);
    st_tensor_file_destroy(&f);
    return e;
}

int st_lm_train_log_append(const char *path, uint64_t step, uint64_t tokens,
                           const st_lm_train_stats *train, double valid_loss, double seconds)
{
    struct stat sb;
    bool fresh = stat(path, &sb) != 0 || sb.st_size == 0;
    FILE *f = fopen(path, "a");
    if (!f)
        return st_error(ST_ERR_IO, "training log '%s': cannot open: %s", path, strerror(errno));
    if (fresh)
        fprintf(f, "step,tokens,lr,train_loss,grad_norm,spike_rate,valid_loss,seconds\n");
    fprintf(f, "%llu,%llu,%.6g,%.6f,%.6g,%.6f,", (unsigned long long)step,
            (unsigned long long)tokens, train->lr, train->loss, train->grad_norm,
            train->spike_rate);
    if (valid_loss >= 0)
        fprintf(f, "%.6f", valid_loss);
    fprintf(f, ",%.3f\n", seconds);
    if (fclose(f))
        return st_error(ST_ERR_IO, "training log '%s': cannot write: %s", path, strerror(errno));
    return ST_OK;
}

/* ---- evaluation --------------------------------------------------------------------------------- */

#define EVAL_CHUNK 256

int st_lm_eval_tokens(const st_lm_model *model, const int32_t *ids, size_t n, double *nats)
{
    if (n < 2)
        return st_error(ST_ERR_INVALID, "language-model evaluation: %zu tokens (at least 2)", n);
    const size_t V = model->cfg.vocab;
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || (uint32_t)ids[i] >= V)
            return st_error(ST_ERR_INVALID, "language-model evaluation: token %d at %zu is outside "
                                            "the vocabulary",
                            (int)ids[i], i);
    int e;
    st_lm_state *s = st_lm_state_new(model, &e);
    float *lg = malloc(EVAL_CHUNK * V * sizeof(float));
    if (!s || !lg) {
        st_lm_state_destroy(&s);
        free(lg);
        return st_error(ST_ERR_NOMEM, "language-model evaluation: out of memory");
    }
    double sum = 0;
    for (size_t at = 0; at + 1 < n; at += EVAL_CHUNK) {
        size_t len = n - 1 - at < EVAL_CHUNK ? n - 1 - at : EVAL_CHUNK;
        st_lm_forward(model, s, ids + at, len, lg, true, NULL);
        for (size_t t = 0; t < len; t++) {
            const float *z = lg + t * V;
            float mx = z[0];
            for (size_t i = 1; i < V; i++)
                mx = z[i] > mx ? z[i] : mx;
            double se = 0;
            for (size_t i = 0; i < V; i++)
                se += exp((double)(z[i] - mx));
            sum += log(se) - (double)(z[ids[at + t + 1]] - mx);
        }
    }
    st_lm_state_destroy(&s);
    free(lg);
    *nats = sum;
    return ST_OK;
}
