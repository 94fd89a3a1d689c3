/*  snn/train_data.c - data sets for training: samples of [steps][channels]
    floats with a class label or a label sequence, in memory, generated
    (the tasks the repository makes itself), or in a tensor file; and the
    random number generator every part of training draws from.

    Tuned for sets of 100 to 100,000 samples of 50 to 500 steps by 10 to 100
    channels (40-band spike trains), kept in one contiguous zero-padded
    block so a chunk of samples is gathered with one memcpy per sample and
    step.
*/
#include "train_impl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- random numbers --------------------------------------------------------------- */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

void tr_rng_seed(tr_rng *r, uint64_t seed)
{
    uint64_t x = seed;
    r->s = splitmix64(&x);
    if (!r->s)
        r->s = 0x2545F4914F6CDD1DULL;
}

uint64_t tr_rng_next(tr_rng *r)
{
    uint64_t x = r->s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    r->s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

double tr_rng_uniform(tr_rng *r)
{
    return (double)(tr_rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

/* ---- the set ------------------------------------------------------------------------- */

struct st_train_data {
    size_t n, T, C;
    float *x;            /* [n][T][C], zero padded */
    uint32_t *steps;     /* n */
    int32_t *label;      /* n (class labels) */
    size_t *off, *len;   /* n: label sequences in tgt */
    int32_t *tgt;
    size_t tgt_len, tgt_cap;
    int kind;            /* 0 unset, 1 class labels, 2 sequences */
};

st_train_data *st_train_data_new(size_t n, size_t max_steps, size_t channels, int *err)
{
    int rc;
    if (max_steps == 0 || channels == 0) {
        rc = st_error(ST_ERR_INVALID, "a data set needs steps >= 1 and channels >= 1 (not %zu, "
                      "%zu)", max_steps, channels);
        goto fail;
    }
    if (n && max_steps > SIZE_MAX / sizeof(float) / channels / n) {
        rc = st_error(ST_ERR_INVALID, "a data set of %zu x %zu x %zu is too large", n, max_steps,
                      channels);
        goto fail;
    }
    st_train_data *d = calloc(1, sizeof *d);
    if (!d)
        goto nomem;
    d->n = n;
    d->T = max_steps;
    d->C = channels;
    const size_t m = n ? n : 1;
    d->x = calloc(m * max_steps * channels, sizeof *d->x);
    d->steps = calloc(m, sizeof *d->steps);
    d->label = calloc(m, sizeof *d->label);
    d->off = calloc(m, sizeof *d->off);
    d->len = calloc(m, sizeof *d->len);
    if (!d->x || !d->steps || !d->label || !d->off || !d->len) {
        st_train_data_destroy(&d);
        goto nomem;
    }
    if (err)
        *err = ST_OK;
    return d;
nomem:
    rc = st_error(ST_ERR_NOMEM, "out of memory for a data set of %zu samples", n);
fail:
    if (err)
        *err = rc;
    return NULL;
}

void st_train_data_destroy(st_train_data **self_p)
{
    if (!self_p || !*self_p)
        return;
    st_train_data *d = *self_p;
    free(d->x);
    free(d->steps);
    free(d->label);
    free(d->off);
    free(d->len);
    free(d->tgt);
    free(d);
    *self_p = NULL;
}

static int set_input(st_train_data *d, size_t k, const float *x, size_t steps, int kind)
{
    if (k >= d->n)
        return st_error(ST_ERR_INVALID, "sample %zu of a set of %zu", k, d->n);
    if (steps == 0 || steps > d->T)
        return st_error(ST_ERR_INVALID, "sample %zu: %zu steps, the set takes 1 to %zu", k, steps,
                        d->T);
    if (d->kind && d->kind != kind)
        return st_error(ST_ERR_INVALID, "sample %zu: a set holds either class labels or label "
                        "sequences, not both", k);
    d->kind = kind;
    float *dst = d->x + k * d->T * d->C;
    memcpy(dst, x, steps * d->C * sizeof *dst);
    memset(dst + steps * d->C, 0, (d->T - steps) * d->C * sizeof *dst);
    d->steps[k] = (uint32_t)steps;
    return ST_OK;
}

int st_train_data_set(st_train_data *self, size_t k, const float *x, size_t steps, int32_t label)
{
    if (label < 0)
        return st_error(ST_ERR_INVALID, "sample %zu: label %d; labels are >= 0", k, (int)label);
    int rc = set_input(self, k, x, steps, 1);
    if (rc == ST_OK)
        self->label[k] = label;
    return rc;
}

int st_train_data_set_seq(st_train_data *self, size_t k, const float *x, size_t steps,
                          const int32_t *labels, size_t n_labels)
{
    for (size_t s = 0; s < n_labels; s++)
        if (labels[s] < 0)
            return st_error(ST_ERR_INVALID, "sample %zu: label %d; labels are >= 0", k,
                            (int)labels[s]);
    if (self->tgt_len + n_labels > self->tgt_cap) {
        size_t cap = self->tgt_cap ? self->tgt_cap : 64;
        while (cap < self->tgt_len + n_labels)
            cap *= 2;
        int32_t *t = realloc(self->tgt, cap * sizeof *t);
        if (!t)
            return st_error(ST_ERR_NOMEM, "out of memory for labels");
        self->tgt = t;
        self->tgt_cap = cap;
    }
    int rc = set_input(self, k, x, steps, 2);
    if (rc != ST_OK)
        return rc;
    if (n_labels) /* an empty sequence (CTC: all blank) stores nothing */
        memcpy(self->tgt + self->tgt_len, labels, n_labels * sizeof *labels);
    self->off[k] = self->tgt_len;
    self->len[k] = n_labels;
    self->tgt_len += n_labels;
    return ST_OK;
}

size_t st_train_data_count(const st_train_data *self)
{
    return self->n;
}

size_t st_train_data_max_steps(const st_train_data *self)
{
    return self->T;
}

size_t st_train_data_channels(const st_train_data *self)
{
    return self->C;
}

bool st_train_data_is_seq(const st_train_data *self)
{
    return self->kind == 2;
}

uint32_t st_train_data_classes(const st_train_data *self)
{
    int32_t mx = -1;
    for (size_t k = 0; k < self->n; k++) {
        if (self->kind == 2) {
            for (size_t s = 0; s < self->len[k]; s++)
                mx = self->tgt[self->off[k] + s] > mx ? self->tgt[self->off[k] + s] : mx;
        } else if (self->label[k] > mx)
            mx = self->label[k];
    }
    return (uint32_t)(mx + 1);
}

const float *st_train_data_input(const st_train_data *self, size_t k, size_t *steps)
{
    if (steps)
        *steps = self->steps[k];
    return self->x + k * self->T * self->C;
}

int32_t st_train_data_label(const st_train_data *self, size_t k)
{
    return self->label[k];
}

const int32_t *st_train_data_labels(const st_train_data *self, size_t k, size_t *n)
{
    *n = self->len[k];
    return self->tgt ? self->tgt + self->off[k] : NULL;
}

/* ---- files --------------------------------------------------------------------------- */

int st_train_data_save(const st_train_data *self, const char *path)
{
    int rc;
    st_tensor_file *f = st_tensor_file_new("train-data", &rc);
    if (!f)
        return rc;
    const uint64_t dx[3] = {self->n, self->T, self->C}, dn[1] = {self->n};
    rc = st_tensor_file_add(f, "inputs", ST_DTYPE_F32, 3, dx, self->x);
    if (rc == ST_OK)
        rc = st_tensor_file_add(f, "steps", ST_DTYPE_U32, 1, dn, self->steps);
    if (rc == ST_OK && self->kind != 2)
        rc = st_tensor_file_add(f, "labels", ST_DTYPE_I32, 1, dn, self->label);
    if (rc == ST_OK && self->kind == 2) {
        int32_t *flat = malloc((self->tgt_len ? self->tgt_len : 1) * sizeof *flat);
        uint32_t *offs = malloc((self->n + 1) * sizeof *offs);
        if (!flat || !offs)
            rc = st_error(ST_ERR_NOMEM, "out of memory saving labels");
        size_t pos = 0;
        for (size_t k = 0; rc == ST_OK && k < self->n; k++) {
            offs[k] = (uint32_t)pos;
            if (self->len[k])
                memcpy(flat + pos, self->tgt + self->off[k], self->len[k] * sizeof *flat);
            pos += self->len[k];
        }
        if (rc == ST_OK) {
            offs[self->n] = (uint32_t)pos;
            const uint64_t dt[1] = {pos}, doff[1] = {self->n + 1};
            rc = st_tensor_file_add(f, "targets", ST_DTYPE_I32, 1, dt, flat);
            if (rc == ST_OK)
                rc = st_tensor_file_add(f, "target_offsets", ST_DTYPE_U32, 1, doff, offs);
        }
        free(flat);
        free(offs);
    }
    if (rc == ST_OK)
        rc = st_tensor_file_save(f, path);
    st_tensor_file_destroy(&f);
    return rc;
}

st_train_data *st_train_data_load(const char *path, int *err)
{
    int rc;
    st_train_data *d = NULL;
    st_tensor_file *f = st_tensor_file_load(path, &rc);
    if (!f)
        goto fail;
    if (strcmp(st_tensor_file_kind(f), "train-data")) {
        rc = st_error(ST_ERR_FORMAT, "'%s' holds '%s', not training data ('train-data')", path,
                      st_tensor_file_kind(f));
        goto fail;
    }
    st_tensor x, steps, lab, tgt, offs;
    if ((rc = st_tensor_file_expect(f, "inputs", ST_DTYPE_F32, 3, (const uint64_t[3]){0, 0, 0},
                                    &x)) != ST_OK)
        goto fail;
    const uint64_t n = x.dims[0];
    if ((rc = st_tensor_file_expect(f, "steps", ST_DTYPE_U32, 1, (const uint64_t[1]){n},
                                    &steps)) != ST_OK)
        goto fail;
    const bool seq = st_tensor_file_find(f, "targets", &tgt) == ST_OK;
    if (seq) {
        if ((rc = st_tensor_file_expect(f, "targets", ST_DTYPE_I32, 1, (const uint64_t[1]){0},
                                        &tgt)) != ST_OK ||
            (rc = st_tensor_file_expect(f, "target_offsets", ST_DTYPE_U32, 1,
                                        (const uint64_t[1]){n + 1}, &offs)) != ST_OK)
            goto fail;
    } else if ((rc = st_tensor_file_expect(f, "labels", ST_DTYPE_I32, 1, (const uint64_t[1]){n},
                                           &lab)) != ST_OK)
        goto fail;
    d = st_train_data_new(n, x.dims[1], x.dims[2], &rc);
    if (!d)
        goto fail;
    const float *xs = x.data;
    const uint32_t *st = steps.data;
    for (size_t k = 0; k < n; k++) {
        const float *xk = xs + k * d->T * d->C;
        if (st[k] == 0 || st[k] > d->T) {
            rc = st_error(ST_ERR_FORMAT, "'%s': tensor 'steps': sample %zu has %u steps, the set "
                          "has 1 to %zu", path, k, st[k], d->T);
            goto fail;
        }
        if (seq) {
            const uint32_t *o = offs.data;
            if (o[k] > o[k + 1] || o[k + 1] > tgt.count) {
                rc = st_error(ST_ERR_FORMAT, "'%s': tensor 'target_offsets': sample %zu's labels "
                              "[%u, %u) are outside 'targets' (%llu)", path, k, o[k],
                              o[k + 1], (unsigned long long)tgt.count);
                goto fail;
            }
            rc = st_train_data_set_seq(d, k, xk, st[k], (const int32_t *)tgt.data + o[k],
                                       o[k + 1] - o[k]);
        } else
            rc = st_train_data_set(d, k, xk, st[k], ((const int32_t *)lab.data)[k]);
        if (rc != ST_OK) {
            char why[512];
            snprintf(why, sizeof why, "%s", st_errmsg()); /* st_error writes where it points */
            rc = st_error(ST_ERR_FORMAT, "'%s': %s", path, why);
            goto fail;
        }
    }
    st_tensor_file_destroy(&f);
    if (err)
        *err = ST_OK;
    return d;
fail:
    st_train_data_destroy(&d);
    st_tensor_file_destroy(&f);
    if (err)
        *err = rc;
    return NULL;
}

/* ---- generated tasks ------------------------------------------------------------------ */

static const char *const task_names[ST_TRAIN_N_TASKS] = {"bands", "xor", "sequence"};

const char *st_train_task_name(st_train_task task)
{
    return (unsigned)task < ST_TRAIN_N_TASKS ? task_names[task] : NULL;
}

int st_train_task_from_name(const char *name, st_train_task *out)
{
    for (int k = 0; k < ST_TRAIN_N_TASKS; k++)
        if (name && !strcmp(name, task_names[k])) {
            *out = (st_train_task)k;
            return ST_OK;
        }
    return st_error(ST_ERR_NOT_FOUND, "no task '%s'; the generated tasks are bands, xor, sequence",
                    name ? name : "");
}

st_train_task_params st_train_task_default_params(st_train_task task)
{
    return (st_train_task_params){
        .task = task,
        .samples = 1000,
        .steps = task == ST_TRAIN_TASK_SEQUENCE ? 120 : 100,
        .channels = 40,
        .classes = task == ST_TRAIN_TASK_XOR ? 2 : 4,
        .rate_background = 0.02f,
        .rate_signal = 0.3f,
        .seed = 1,
    };
}

static float spike(tr_rng *rng, double p)
{
    return tr_rng_uniform(rng) < p ? 1.0f : 0.0f;
}

/* Fills [T][C] with background spikes, then bursts: band b over steps
   [t0, t1) at rate p (the larger of the two rates wins per cell). */
typedef struct {
    size_t c0, c1, t0, t1;
    double p;
} burst;

static void draw(tr_rng *rng, float *x, size_t T, size_t C, double bg, const burst *b, size_t nb)
{
    for (size_t t = 0; t < T; t++)
        for (size_t c = 0; c < C; c++) {
            double p = bg;
            for (size_t k = 0; k < nb; k++)
                if (c >= b[k].c0 && c < b[k].c1 && t >= b[k].t0 && t < b[k].t1 && b[k].p > p)
                    p = b[k].p;
            x[t * C + c] = spike(rng, p);
        }
}

static size_t rand_below(tr_rng *rng, size_t n)
{
    return n ? (size_t)(tr_rng_uniform(rng) * (double)n) : 0;
}

st_train_data *st_train_data_generate(const st_train_task_params *p, int *err)
{
    int rc;
    const size_t T = p->steps, C = p->channels, K = p->classes;
    if ((unsigned)p->task >= ST_TRAIN_N_TASKS) {
        rc = st_error(ST_ERR_INVALID, "task %d does not exist", (int)p->task);
        goto fail;
    }
    const char *name = task_names[p->task];
    if (!(p->rate_background >= 0 && p->rate_background <= 1) ||
        !(p->rate_signal >= 0 && p->rate_signal <= 1)) {
        rc = st_error(ST_ERR_INVALID, "task %s: rates are spike probabilities per step, 0 to 1 "
                      "(rate_background %g, rate_signal %g)", name, (double)p->rate_background,
                      (double)p->rate_signal);
        goto fail;
    }
    if (p->task != ST_TRAIN_TASK_XOR && (K < 2 || C < K)) {
        rc = st_error(ST_ERR_INVALID, "task %s: needs classes >= 2 and channels >= classes (one "
                      "band each), not %zu classes over %zu channels", name, K, C);
        goto fail;
    }
    if (p->task == ST_TRAIN_TASK_XOR && C < 2) {
        rc = st_error(ST_ERR_INVALID, "task xor: needs channels >= 2, not %zu", C);
        goto fail;
    }
    const size_t min_steps = p->task == ST_TRAIN_TASK_SEQUENCE ? 40 : 20;
    if (T < min_steps) {
        rc = st_error(ST_ERR_INVALID, "task %s: needs steps >= %zu, not %zu", name, min_steps, T);
        goto fail;
    }
    st_train_data *d = st_train_data_new(p->samples, T, C, &rc);
    if (!d)
        goto fail;
    float *x = malloc(T * C * sizeof *x);
    if (!x) {
        st_train_data_destroy(&d);
        rc = st_error(ST_ERR_NOMEM, "out of memory");
        goto fail;
    }
    tr_rng rng;
    tr_rng_seed(&rng, p->seed ^ ((uint64_t)p->task << 40));
    const double bg = p->rate_background, sig = p->rate_signal;
#define BAND(k) (k) * C / K, ((k) + 1) * C / K
    for (size_t s = 0; s < p->samples; s++) {
        switch (p->task) {
        case ST_TRAIN_TASK_BANDS: {
            const size_t y = s % K, len = T / 4;
            const size_t y2 = (y + 1 + rand_below(&rng, K - 1)) % K;
            const size_t t0 = rand_below(&rng, T - len + 1), t2 = rand_below(&rng, T - len + 1);
            const burst b[2] = {{BAND(y), t0, t0 + len, sig}, {BAND(y2), t2, t2 + len, sig / 2}};
            draw(&rng, x, T, C, bg, b, 2);
            rc = st_train_data_set(d, s, x, T, (int32_t)y);
            break;
        }
        case ST_TRAIN_TASK_XOR: {
            const size_t b1 = rand_below(&rng, 2), b2 = rand_below(&rng, 2), len = T / 10;
            const size_t h = C / 2, s1 = T / 20, s2 = T / 2;
            const burst b[2] = {{b1 ? h : 0, b1 ? C : h, s1, s1 + len, sig},
                                {b2 ? h : 0, b2 ? C : h, s2, s2 + len, sig}};
            draw(&rng, x, T, C, bg, b, 2);
            rc = st_train_data_set(d, s, x, T, (int32_t)(b1 ^ b2));
            break;
        }
        default: { /* sequence */
            const size_t n = 1 + rand_below(&rng, 3), len = T / 8;
            /* the slack, spread over the n + 1 gaps, at least 2 steps between bursts */
            size_t slack = T - n * len - 2 * (n - 1), gap[4] = {0, 0, 0, 0};
            for (size_t g = 0; g <= n; g++) {
                const size_t take = g == n ? slack : rand_below(&rng, slack / 2 + 1);
                gap[g] = take;
                slack -= take;
            }
            burst b[3];
            int32_t lab[3];
            size_t t = gap[0];
            for (size_t k = 0; k < n; k++) {
                lab[k] = (int32_t)rand_below(&rng, K);
                b[k] = (burst){BAND((size_t)lab[k]), t, t + len, sig};
                t += len + 2 + gap[k + 1];
            }
            draw(&rng, x, T, C, bg, b, n);
            rc = st_train_data_set_seq(d, s, x, T, lab, n);
            break;
        }
        }
        if (rc != ST_OK)
            break;
    }
#undef BAND
    free(x);
    if (rc != ST_OK) {
        st_train_data_destroy(&d);
        goto fail;
    }
    if (err)
        *err = ST_OK;
    return d;
fail:
    if (err)
        *err = rc;
    return NULL;
}
