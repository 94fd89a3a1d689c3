/*  snn/lm_generate.c - from logits to tokens: the sampler (greedy,
    temperature, top-k, top-p, repetition penalty, seeded) and the
    generation loop (prompt in parallel mode, then token by token, with a
    callback per token and a cancel flag honoured between tokens).

    Workload: vocabularies of 50 to a few thousand tokens, one draw per
    generated token (every 50-500 us). Everything is O(V) plus a heap pop
    per kept candidate; the buffers are made with the sampler, so neither
    sampling nor generating allocates (glibc's qsort may, so there is none
    here: candidates come off a binary heap in order).
*/
#include "lm_impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct st_lm_sampler {
    size_t vocab;
    st_lm_sample_params p;
    uint64_t rng;
    float *work;      /* V: penalised, tempered logits */
    float *probs;     /* V: the distribution of the last draw */
    int32_t *heap;    /* V: candidate ids */
    uint32_t *count;  /* V: occurrences in the history window */
    int32_t *ring;    /* repetition_last_n: the window, oldest first from at */
    size_t ring_len, ring_at;
};

st_lm_sample_params st_lm_sample_default_params(void)
{
    return (st_lm_sample_params){.greedy = false,
                                 .temperature = 1.0f,
                                 .top_k = 0,
                                 .top_p = 1.0f,
                                 .repetition_penalty = 1.0f,
                                 .repetition_last_n = 64,
                                 .seed = 0};
}

st_lm_generate_params st_lm_generate_default_params(void)
{
    return (st_lm_generate_params){.max_tokens = 64, .stop_token = -1};
}

void st_lm_sampler_destroy(st_lm_sampler **self_p)
{
    if (!self_p || !*self_p)
        return;
    st_lm_sampler *s = *self_p;
    free(s->work);
    free(s->probs);
    free(s->heap);
    free(s->count);
    free(s->ring);
    free(s);
    *self_p = NULL;
}

st_lm_sampler *st_lm_sampler_new(size_t vocab, const st_lm_sample_params *p, int *err)
{
    int e = ST_ERR_INVALID;
    st_lm_sampler *s = NULL;
    if (vocab < 1 || vocab > (1u << 24)) {
        st_error(e, "sampler: vocab %zu (1 to 16777216)", vocab);
        goto fail;
    }
    if (!(p->temperature >= 0) || !isfinite(p->temperature)) {
        st_error(e, "sampler: temperature %g (0 = greedy, or > 0)", (double)p->temperature);
        goto fail;
    }
    if (!(p->top_p > 0 && p->top_p <= 1)) {
        st_error(e, "sampler: top_p %g (above 0, at most 1)", (double)p->top_p);
        goto fail;
    }
    if (!(p->repetition_penalty >= 1) || !isfinite(p->repetition_penalty)) {
        st_error(e, "sampler: repetition_penalty %g (1 = off, or more)",
                 (double)p->repetition_penalty);
        goto fail;
    }
    e = ST_ERR_NOMEM;
    s = calloc(1, sizeof *s);
    if (!s)
        goto fail;
    s->vocab = vocab;
    s->p = *p;
    s->work = malloc(vocab * sizeof *s->work);
    s->probs = malloc(vocab * sizeof *s->probs);
    s->heap = malloc(vocab * sizeof *s->heap);
    s->count = calloc(vocab, sizeof *s->count);
    s->ring = malloc((p->repetition_last_n ? p->repetition_last_n : 1) * sizeof *s->ring);
    if (!s->work || !s->probs || !s->heap || !s->count || !s->ring) {
        st_error(e, "sampler: out of memory for %zu tokens", vocab);
        goto fail;
    }
    st_lm_sampler_reset(s);
    return s;
fail:
    st_lm_sampler_destroy(&s);
    if (err)
        *err = e;
    return NULL;
}

void st_lm_sampler_reset(st_lm_sampler *self)
{
    memset(self->count, 0, self->vocab * sizeof *self->count);
    memset(self->probs, 0, self->vocab * sizeof *self->probs);
    self->ring_len = self->ring_at = 0;
    self->rng = self->p.seed;
}

void st_lm_sampler_accept(st_lm_sampler *self, int32_t token)
{
    if (token < 0 || (size_t)token >= self->vocab)
        return;
    size_t n = self->p.repetition_last_n;
    if (n) {
        if (self->ring_len == n) {
            self->count[self->ring[self->ring_at]]--;
            self->ring[self->ring_at] = token;
            self->ring_at = (self->ring_at + 1) % n;
        } else {
            self->ring[(self->ring_at + self->ring_len++) % n] = token;
        }
    }
    if (self->count[token] < UINT32_MAX)
        self->count[token]++;
}

static uint64_t next_u64(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Heap order: higher value first, lower id on a tie (so every order, and
   every draw, is reproducible). */
static inline bool before(const float *v, int32_t a, int32_t b)
{
    return v[a] > v[b] || (v[a] == v[b] && a < b);
}

static void sift_down(int32_t *h, size_t n, size_t i, const float *v)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, best = i;
        if (l < n && before(v, h[l], h[best]))
            best = l;
        if (r < n && before(v, h[r], h[best]))
            best = r;
        if (best == i)
            return;
        int32_t t = h[i];
        h[i] = h[best];
        h[best] = t;
        i = best;
    }
}

int32_t st_lm_sampler_sample(st_lm_sampler *self, const float *logits)
{
    const size_t V = self->vocab;
    const st_lm_sample_params *p = &self->p;
    float *w = self->work, *probs = self->probs;
    float pen = p->repetition_penalty;
    for (size_t i = 0; i < V; i++) {
        float l = logits[i];
        if (pen != 1.0f && self->count[i])
            l = l > 0 ? l / pen : l * pen;
        w[i] = l;
    }
    if (p->greedy || p->temperature == 0.0f) {
        size_t best = 0;
        for (size_t i = 1; i < V; i++)
            if (w[i] > w[best])
                best = i;
        memset(probs, 0, V * sizeof *probs);
        probs[best] = 1.0f;
        return (int32_t)best;
    }
    float mx = -INFINITY;
    for (size_t i = 0; i < V; i++) {
        w[i] /= p->temperature;
        if (w[i] > mx)
            mx = w[i];
    }
    double z = 0;
    for (size_t i = 0; i < V; i++) {
        probs[i] = expf(w[i] - mx);
        z += probs[i];
    }
    size_t k = p->top_k && p->top_k < V ? p->top_k : V;
    size_t kept;
    double zk;
    int32_t *h = self->heap;
    if (k == V && p->top_p >= 1.0f) {
        /* no truncation: draw straight from the whole distribution */
        double u = (double)(next_u64(&self->rng) >> 11) * (1.0 / 9007199254740992.0) * z;
        size_t pick = V - 1;
        double acc = 0;
        for (size_t i = 0; i < V; i++) {
            acc += probs[i];
            if (u < acc) {
                pick = i;
                break;
            }
        }
        for (size_t i = 0; i < V; i++)
            probs[i] = (float)(probs[i] / z);
        return (int32_t)pick;
    }
    /* the candidates in descending order come off a max-heap: pop the top
       k (all, for top-p alone, stopping once top_p is reached) */
    for (size_t i = 0; i < V; i++)
        h[i] = (int32_t)i;
    for (size_t i = V / 2; i-- > 0;)
        sift_down(h, V, i, w);
    size_t n = V;
    double target = p->top_p >= 1.0f ? INFINITY : (double)p->top_p * z;
    zk = 0;
    kept = 0;
    /* popped ids are parked at the end of the array: h[V-1], h[V-2], ... */
    while (kept < k) {
        int32_t top = h[0];
        h[0] = h[--n];
        h[n] = top;
        sift_down(h, n, 0, w);
        zk += probs[top];
        kept++;
        if (k == V && zk >= target)
            break;
    }
    if (k < V && p->top_p < 1.0f) {
        /* top-p on the top-k renormalised: the fewest that reach top_p */
        double t = (double)p->top_p * zk, acc = 0;
        size_t m = 0;
        while (m < kept) {
            acc += probs[h[V - 1 - m]];
            m++;
            if (acc >= t)
                break;
        }
        kept = m;
        zk = acc;
    }
    double u = (double)(next_u64(&self->rng) >> 11) * (1.0 / 9007199254740992.0) * zk;
    int32_t pick = h[V - kept];
    double acc = 0;
    for (size_t m = 0; m < kept; m++) {
        int32_t id = h[V - 1 - m];
        acc += probs[id];
        if (u < acc) {
            pick = id;
            break;
        }
    }
    /* the distribution drawn from, for st_lm_sampler_probs() */
    for (size_t m = 0; m < kept; m++)
        w[h[V - 1 - m]] = (float)(probs[h[V - 1 - m]] / zk);
    memset(probs, 0, V * sizeof *probs);
    for (size_t m = 0; m < kept; m++)
        probs[h[V - 1 - m]] = w[h[V - 1 - m]];
    return pick;
}

const float *st_lm_sampler_probs(const st_lm_sampler *self)
{
    return self->probs;
}

int st_lm_generate(const st_lm_model *model, st_lm_state *state, st_lm_sampler *sampler,
                   const int32_t *prompt, size_t n_prompt, const st_lm_generate_params *p,
                   int32_t *out, size_t cap, st_lm_generate_result *res)
{
    double t0 = st_now_s();
    st_lm_generate_result r = {.stop = ST_LM_STOP_LENGTH};
    if (sampler->vocab != model->cfg.vocab)
        return st_error(ST_ERR_INVALID, "generate: a sampler for %zu tokens, a model of %u",
                        sampler->vocab, (unsigned)model->cfg.vocab);
    if (n_prompt) {
        int rc = st_lm_forward(model, state, prompt, n_prompt, state->logits, false, NULL);
        if (rc)
            return rc;
        for (size_t i = 0; i < n_prompt; i++)
            st_lm_sampler_accept(sampler, prompt[i]);
        r.n_prompt = n_prompt;
    } else if (!state->have_logits) {
        return st_error(ST_ERR_INVALID, "generate: an empty prompt and no logits in the state to "
                                        "continue from");
    }
    size_t limit = p->max_tokens < cap ? p->max_tokens : cap;
    while (r.n_generated < limit) {
        if (p->cancel && atomic_load_explicit(p->cancel, memory_order_acquire)) {
            r.stop = ST_LM_STOP_CANCEL;
            break;
        }
        int32_t tok = st_lm_sampler_sample(sampler, state->logits);
        if (r.n_generated == 0)
            r.first_token_s = st_now_s() - t0;
        out[r.n_generated++] = tok;
        st_lm_sampler_accept(sampler, tok);
        int stop = 0;
        if (p->on_token) {
            size_t len = 0;
            const char *piece = st_lm_tokenizer_piece(model->tok, tok, &len);
            stop = p->on_token(tok, piece ? piece : "", piece ? len : 0, p->user_data);
        }
        st_lm_forward(model, state, &tok, 1, state->logits, false, NULL);
        if (stop) {
            r.stop = ST_LM_STOP_CALLBACK;
            break;
        }
        if (tok == p->stop_token) {
            r.stop = ST_LM_STOP_TOKEN;
            break;
        }
    }
    r.total_s = st_now_s() - t0;
    if (res)
        *res = r;
    return ST_OK;
}
