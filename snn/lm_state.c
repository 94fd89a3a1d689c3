/*  snn/lm_state.c - one conversation's state for the language model: the
    recurrent block (7 D floats a layer: both token shifts, the WKV
    numerator, denominator and running max, both LIF membranes) and the
    scratch the forward pass works in, in one allocation.

    Workload: an agent keeps one state per conversation and forks it to try
    an answer, or saves it at a turn boundary to roll back after a barge-in.
    The recurrent block is contiguous, so save, restore, copy and fork are
    one memcpy of 7 D L floats (14 KB for 4 x 128) and allocate nothing
    (fork allocates the new state, once).
*/
#include "lm_impl.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

static size_t round_up(size_t n)
{
    return (n + ST_LM_ALIGN / sizeof(float) - 1) & ~(ST_LM_ALIGN / sizeof(float) - 1);
}

size_t st_lm_state_len(const st_lm_model *model)
{
    return (size_t)ST_LM_N_VARS * model->cfg.n_embd * model->cfg.n_layer;
}

st_lm_state *st_lm_state_new(const st_lm_model *model, int *err)
{
    assert(model);
    const size_t D = model->cfg.n_embd, F = model->cfg.n_ffn, C = ST_LM_CHUNK;
    size_t block = round_up(st_lm_state_len(model)), act = round_up(C * D), hid = round_up(C * F);
    size_t total = block + 11 * act + hid + round_up(model->cfg.vocab); /* + x a xk xv xr k v
                                                                            r rw o lo, h, logits */
    st_lm_state *s = calloc(1, sizeof *s);
    float *mem = aligned_alloc(ST_LM_ALIGN, total * sizeof(float));
    if (!s || !mem) {
        free(s);
        free(mem);
        int e = st_error(ST_ERR_NOMEM, "language model: out of memory for a state (%zu floats)",
                         total);
        if (err)
            *err = e;
        return NULL;
    }
    memset(mem, 0, total * sizeof(float));
    s->model = model;
    s->n_layer = model->cfg.n_layer;
    s->n_embd = model->cfg.n_embd;
    s->vocab = model->cfg.vocab;
    s->n_ffn = model->cfg.n_ffn;
    s->mem = mem;
    float *p = mem;
    s->block = p, p += block;
    float **acts[] = {&s->x, &s->a, &s->xk, &s->xv, &s->xr, &s->k,
                      &s->v, &s->r, &s->rw, &s->o, &s->lo};
    for (size_t i = 0; i < sizeof acts / sizeof acts[0]; i++)
        *acts[i] = p, p += act;
    s->h = p, p += hid;
    s->logits = p;
    st_lm_state_reset(s);
    return s;
}

void st_lm_state_destroy(st_lm_state **self_p)
{
    if (!self_p || !*self_p)
        return;
    free((*self_p)->mem);
    free(*self_p);
    *self_p = NULL;
}

void st_lm_state_reset(st_lm_state *self)
{
    const size_t D = self->n_embd;
    memset(self->block, 0, (size_t)ST_LM_N_VARS * D * self->n_layer * sizeof(float));
    for (uint32_t l = 0; l < self->n_layer; l++) {
        float *p = self->block + ((size_t)l * ST_LM_N_VARS + ST_LM_VAR_WKV_P) * D;
        for (size_t c = 0; c < D; c++)
            p[c] = ST_LM_P_INIT;
    }
    self->n_tokens = 0;
    self->have_logits = false;
}

float *st_lm_state_data(st_lm_state *self)
{
    return self->block;
}

float *st_lm_state_var(st_lm_state *self, uint32_t layer, st_lm_var var)
{
    assert(layer < self->n_layer && (unsigned)var < ST_LM_N_VARS);
    return self->block + ((size_t)layer * ST_LM_N_VARS + var) * self->n_embd;
}

static size_t block_len(const st_lm_state *s)
{
    return (size_t)ST_LM_N_VARS * s->n_embd * s->n_layer;
}

int st_lm_state_save(const st_lm_state *self, float *buf, size_t len)
{
    if (len != block_len(self))
        return st_error(ST_ERR_INVALID, "language model state: %zu floats given, the state is %zu",
                        len, block_len(self));
    memcpy(buf, self->block, len * sizeof(float));
    return ST_OK;
}

int st_lm_state_restore(st_lm_state *self, const float *buf, size_t len)
{
    if (len != block_len(self))
        return st_error(ST_ERR_INVALID, "language model state: %zu floats given, the state is %zu",
                        len, block_len(self));
    memcpy(self->block, buf, len * sizeof(float));
    self->have_logits = false;
    return ST_OK;
}

int st_lm_state_copy(st_lm_state *dst, const st_lm_state *src)
{
    if (dst->n_layer != src->n_layer || dst->n_embd != src->n_embd)
        return st_error(ST_ERR_INVALID, "language model state: copying %u x %u into %u x %u",
                        (unsigned)src->n_layer, (unsigned)src->n_embd, (unsigned)dst->n_layer,
                        (unsigned)dst->n_embd);
    if (dst == src)
        return ST_OK;
    memcpy(dst->block, src->block, block_len(src) * sizeof(float));
    dst->n_tokens = src->n_tokens;
    dst->have_logits = src->have_logits && dst->vocab == src->vocab;
    if (dst->have_logits)
        memcpy(dst->logits, src->logits, src->vocab * sizeof(float));
    return ST_OK;
}

st_lm_state *st_lm_state_fork(const st_lm_state *src, int *err)
{
    st_lm_state *s = st_lm_state_new(src->model, err);
    if (s)
        st_lm_state_copy(s, src);
    return s;
}

uint64_t st_lm_state_tokens(const st_lm_state *self)
{
    return self->n_tokens;
}

const float *st_lm_state_logits(const st_lm_state *self)
{
    return self->have_logits ? self->logits : NULL;
}
