/*  snn/train.c - the trainer: the model (layers and their parameters), BPTT
    over a chunk of samples, the worker pool that spreads the chunks of a
    mini-batch over the cores, the deterministic reduction, Adam and AdamW
    with warm-up, cosine decay and clipping, epochs and evaluation.

    Tuned for a recurrent LIF network of 40 inputs, 256 hidden neurons and a
    12-output read-out over 100 steps, batches of 32 in chunks of 8 (the
    `spiketalk bench train` workload): one chunk's forward keeps 6 floats
    per neuron and step (output, input current, v, i, b, output gradient),
    about 5 MB for that layer, so each worker's sequences stay in L2/L3; the
    feed-forward products of a layer run once over all T x R rows, only the
    recurrent ones step by step, and spike inputs take the event path.

    The flow of one mini-batch: the driving thread refreshes the transposed
    weights the backward needs, hands chunk k to whichever worker is free
    (an atomic counter), each worker runs forward, loss and backward into
    chunk k's gradient buffer, and the driving thread sums the buffers in
    chunk order - so the result never depends on the number of threads.
*/
#include "train_impl.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_THREADS 256

/* ---- names ------------------------------------------------------------------------- */

static const char *const kind_names[ST_TRAIN_N_KINDS] = {"dense", "conv1d", "delay"};
static const char *const loss_names[ST_TRAIN_N_LOSSES] = {"ce_max", "ce_mean", "ce_last", "ctc",
                                                                   "ce_frame"};
static const char *const opt_names[ST_TRAIN_N_OPTIMIZERS] = {"adam", "adamw"};

const char *st_train_layer_kind_name(st_train_layer_kind kind)
{
    return (unsigned)kind < ST_TRAIN_N_KINDS ? kind_names[kind] : NULL;
}

const char *st_train_loss_name(st_train_loss l)
{
    return (unsigned)l < ST_TRAIN_N_LOSSES ? loss_names[l] : NULL;
}

int st_train_loss_from_name(const char *name, st_train_loss *out)
{
    for (int k = 0; k < ST_TRAIN_N_LOSSES; k++)
        if (name && !strcmp(name, loss_names[k])) {
            *out = (st_train_loss)k;
            return ST_OK;
        }
    return st_error(ST_ERR_NOT_FOUND, "no loss '%s'; the losses are ce_max, ce_mean, ce_last, ctc",
                    name ? name : "");
}

const char *st_train_optimizer_name(st_train_optimizer o)
{
    return (unsigned)o < ST_TRAIN_N_OPTIMIZERS ? opt_names[o] : NULL;
}

int st_train_optimizer_from_name(const char *name, st_train_optimizer *out)
{
    for (int k = 0; k < ST_TRAIN_N_OPTIMIZERS; k++)
        if (name && !strcmp(name, opt_names[k])) {
            *out = (st_train_optimizer)k;
            return ST_OK;
        }
    return st_error(ST_ERR_NOT_FOUND, "no optimizer '%s'; the optimizers are adam, adamw",
                    name ? name : "");
}

/* ---- the model ---------------------------------------------------------------------- */

st_train_layer_params st_train_layer_default_params(st_train_layer_kind kind)
{
    return (st_train_layer_params){
        .kind = kind,
        .stride = 1,
        .bias = true,
        .neuron = st_snn_neuron_default_params(ST_SNN_LIF),
        .init_scale = 1.0f,
        .rec_scale = 1.0f,
        .max_delay = 10.0f,
        .init_delay = 0.0f,
        .train_delay = true,
    };
}

static bool name_ok(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == '-'))
            return false;
    return true;
}

static size_t add_tensor(st_train_model *m, int layer, const char *what, unsigned ndim,
                         size_t d0, size_t d1, size_t d2, bool decay, int project)
{
    char lname[ST_TRAIN_NAME_LEN];
    memcpy(lname, m->layers[layer].p.name, sizeof lname);
    tr_tensor *t = &m->tensors[m->n_tensors++];
    snprintf(t->name, sizeof t->name, "%s.%s", lname, what);
    t->ndim = ndim;
    t->dims[0] = d0;
    t->dims[1] = d1;
    t->dims[2] = d2;
    t->count = d0 * (ndim > 1 ? d1 : 1) * (ndim > 2 ? d2 : 1);
    t->offset = m->n_params;
    t->decay = decay;
    t->project = project;
    t->layer = layer;
    m->n_params += t->count;
    return t->offset;
}

static void fill_uniform(tr_rng *rng, float *x, size_t n, float bound)
{
    for (size_t k = 0; k < n; k++)
        x[k] = (float)((2.0 * tr_rng_uniform(rng) - 1.0) * bound);
}

static void layer_free(tr_layer *L)
{
    free(L->fix_a);
    free(L->fix_s);
    free(L->fix_ad);
    free(L->fix_th);
    free(L->tau_mem);
    free(L->tau_syn);
    free(L->tau_adapt);
}

/* Shapes and names of one layer from its input length; ST_ERR_INVALID. */
static int plan_layer(tr_layer *L, size_t idx, size_t n_in)
{
    st_train_layer_params *p = &L->p;
    if (!p->name[0])
        snprintf(p->name, sizeof p->name, "l%zu", idx);
    if (!name_ok(p->name))
        return st_error(ST_ERR_INVALID, "layer %zu: the name '%s' may hold only letters, digits, "
                        "'_' and '-'", idx, p->name);
    if ((unsigned)p->kind >= ST_TRAIN_N_KINDS)
        return st_error(ST_ERR_INVALID, "layer '%s': kind %d does not exist", p->name,
                        (int)p->kind);
    L->n_in = n_in;
    L->model = p->neuron.model;
    if (p->kind == ST_TRAIN_DELAY) {
        L->n = n_in;
        L->spiking = false;
        if (!(p->max_delay >= 0) || !isfinite(p->max_delay) || p->max_delay > 65535)
            return st_error(ST_ERR_INVALID, "layer '%s': max_delay must be 0 to 65535 steps, "
                            "not %g", p->name, (double)p->max_delay);
        if (!(p->init_delay >= 0) || !(p->init_delay <= p->max_delay))
            return st_error(ST_ERR_INVALID, "layer '%s': init_delay must be 0 to max_delay (%g), "
                            "not %g", p->name, (double)p->max_delay, (double)p->init_delay);
        return ST_OK;
    }
    switch (L->model) {
    case ST_SNN_LIF:
    case ST_SNN_LSNN:
    case ST_SNN_CUBALIF:
    case ST_SNN_LI: break;
    default:
        return st_error(ST_ERR_INVALID, "layer '%s': the trainer differentiates lif, lsnn, cubalif "
                        "and li, not %s", p->name,
                        st_snn_model_name(L->model) ? st_snn_model_name(L->model) : "?");
    }
    int rc = st_snn_neuron_params_check(&p->neuron);
    if (rc != ST_OK) {
        char why[512];
        snprintf(why, sizeof why, "%s", st_errmsg()); /* st_error writes where it points */
        return st_error(rc, "layer '%s': %s", p->name, why);
    }
    L->spiking = L->model != ST_SNN_LI;
    if (!(p->init_scale >= 0) || !isfinite(p->init_scale) || !(p->rec_scale >= 0) ||
        !isfinite(p->rec_scale))
        return st_error(ST_ERR_INVALID, "layer '%s': init_scale and rec_scale must be finite and "
                        ">= 0", p->name);
    if (p->kind == ST_TRAIN_DENSE) {
        if (p->neurons == 0)
            return st_error(ST_ERR_INVALID, "layer '%s': a dense layer needs neurons >= 1",
                            p->name);
        L->n = p->neurons;
        return ST_OK;
    }
    /* conv1d */
    if (p->in_channels == 0 || n_in % p->in_channels)
        return st_error(ST_ERR_INVALID, "layer '%s': conv1d reads its input as [in_channels]"
                        "[length], but %zu inputs do not split into %u channels", p->name, n_in,
                        p->in_channels);
    if (p->out_channels == 0 || p->kernel == 0 || p->stride == 0)
        return st_error(ST_ERR_INVALID, "layer '%s': conv1d needs out_channels, kernel and "
                        "stride >= 1", p->name);
    L->len_in = (uint32_t)(n_in / p->in_channels);
    const size_t padded = (size_t)L->len_in + 2 * (size_t)p->padding;
    if (p->kernel > padded)
        return st_error(ST_ERR_INVALID, "layer '%s': a kernel of %u taps is longer than the "
                        "input (%u positions + 2 x %u padding)", p->name, p->kernel, L->len_in,
                        p->padding);
    L->len_out = (uint32_t)((padded - p->kernel) / p->stride + 1);
    L->n = (size_t)p->out_channels * L->len_out;
    return ST_OK;
}

st_train_model *st_train_model_new(size_t n_in, const st_train_layer_params *layers,
                                   size_t n_layers, uint64_t seed, int *err)
{
    int rc = ST_OK;
    st_train_model *m = NULL;
    if (n_in == 0) {
        rc = st_error(ST_ERR_INVALID, "the model needs at least one input");
        goto fail;
    }
    if (n_layers == 0 || n_layers > ST_TRAIN_MAX_LAYERS) {
        rc = st_error(ST_ERR_INVALID, "a model has 1 to %d layers, not %zu", ST_TRAIN_MAX_LAYERS,
                      n_layers);
        goto fail;
    }
    m = calloc(1, sizeof *m);
    if (!m)
        goto nomem;
    m->n_in = n_in;
    m->n_layers = n_layers;
    size_t width = n_in;
    for (size_t l = 0; l < n_layers; l++) {
        tr_layer *L = &m->layers[l];
        L->p = layers[l];
        if ((rc = plan_layer(L, l, width)) != ST_OK)
            goto fail;
        if (!strcmp(L->p.name, "input") || !strcmp(L->p.name, "output")) {
            rc = st_error(ST_ERR_INVALID, "layer %zu: 'input' and 'output' name the exported "
                          "network's own nodes; call the layer something else", l);
            goto fail;
        }
        for (size_t j = 0; j < l; j++)
            if (!strcmp(m->layers[j].p.name, L->p.name)) {
                rc = st_error(ST_ERR_INVALID, "two layers are called '%s'", L->p.name);
                goto fail;
            }
        width = L->n;
    }
    if (m->layers[n_layers - 1].p.kind == ST_TRAIN_DELAY) {
        rc = st_error(ST_ERR_INVALID, "the last layer '%s' is a delay: the read-out must be a "
                      "dense or conv1d layer (li neurons for a read-out)",
                      m->layers[n_layers - 1].p.name);
        goto fail;
    }
    /* parameter tensors */
    for (size_t l = 0; l < n_layers; l++) {
        tr_layer *L = &m->layers[l];
        const st_train_layer_params *p = &L->p;
        L->o_w = L->o_b = L->o_rec = L->o_a = L->o_s = L->o_ad = L->o_th = L->o_d = TR_NONE;
        const int li = (int)l;
        if (p->kind == ST_TRAIN_DELAY) {
            L->o_d = add_tensor(m, li, "d", 1, L->n, 0, 0, false, 2);
            continue;
        }
        if (p->kind == ST_TRAIN_DENSE)
            L->o_w = add_tensor(m, li, "w", 2, L->n_in, L->n, 0, true, 0);
        else
            L->o_w = add_tensor(m, li, "w", 3, p->out_channels, p->in_channels, p->kernel, true,
                                0);
        if (p->bias)
            L->o_b = add_tensor(m, li, "b", 1, p->kind == ST_TRAIN_DENSE ? L->n : p->out_channels,
                                0, 0, false, 0);
        if (p->recurrent)
            L->o_rec = add_tensor(m, li, "rec", 2, L->n, L->n, 0, true, 0);
        if (p->train_tau) {
            L->o_a = add_tensor(m, li, "a", 1, L->n, 0, 0, false, 1);
            L->o_s = add_tensor(m, li, "s", 1, L->n, 0, 0, false, 1);
            if (L->model == ST_SNN_LSNN)
                L->o_ad = add_tensor(m, li, "ad", 1, L->n, 0, 0, false, 1);
        }
        if (p->train_threshold && L->spiking)
            L->o_th = add_tensor(m, li, "th", 1, L->n, 0, 0, false, 0);
    }
    m->params = calloc(m->n_params ? m->n_params : 1, sizeof *m->params);
    if (!m->params)
        goto nomem;
    tr_rng rng;
    tr_rng_seed(&rng, seed);
    for (size_t l = 0; l < n_layers; l++) {
        tr_layer *L = &m->layers[l];
        const st_train_layer_params *p = &L->p;
        const size_t n = L->n;
        if (p->kind == ST_TRAIN_DELAY) {
            float *d = m->params + L->o_d;
            for (size_t k = 0; k < n; k++)
                d[k] = (float)(tr_rng_uniform(&rng) * p->init_delay);
            continue;
        }
        const size_t fan_in =
            p->kind == ST_TRAIN_DENSE ? L->n_in : (size_t)p->in_channels * p->kernel;
        const size_t n_w = p->kind == ST_TRAIN_DENSE
                               ? L->n_in * n
                               : (size_t)p->out_channels * p->in_channels * p->kernel;
        fill_uniform(&rng, m->params + L->o_w, n_w, p->init_scale / sqrtf((float)fan_in));
        if (L->o_rec != TR_NONE)
            fill_uniform(&rng, m->params + L->o_rec, n * n, p->rec_scale / sqrtf((float)n));
        /* the engine's coefficients, as snn/neuron.c rounds them */
        const st_snn_neuron_params *np = &p->neuron;
        L->dtf = (float)np->dt;
        L->vl = np->v_leak;
        L->vr = np->v_reset;
        L->beta = np->beta;
        L->w_in = np->w_in;
        L->r = np->r;
        L->fix_a = malloc(n * sizeof(float));
        L->fix_s = malloc(n * sizeof(float));
        L->fix_ad = malloc(n * sizeof(float));
        L->fix_th = malloc(n * sizeof(float));
        L->tau_mem = malloc(n * sizeof(float));
        L->tau_syn = malloc(n * sizeof(float));
        L->tau_adapt = malloc(n * sizeof(float));
        if (!L->fix_a || !L->fix_s || !L->fix_ad || !L->fix_th || !L->tau_mem || !L->tau_syn ||
            !L->tau_adapt)
            goto nomem;
        for (size_t k = 0; k < n; k++) {
            L->tau_mem[k] = np->tau_mem_inv;
            L->tau_syn[k] = np->tau_syn_inv;
            L->tau_adapt[k] = np->tau_adapt_inv;
            L->fix_a[k] = L->dtf * np->tau_mem_inv;
            L->fix_s[k] = L->dtf * np->tau_syn_inv;
            L->fix_ad[k] = L->dtf * np->tau_adapt_inv;
            L->fix_th[k] = np->v_th;
        }
        if (L->o_a != TR_NONE) {
            memcpy(m->params + L->o_a, L->fix_a, n * sizeof(float));
            memcpy(m->params + L->o_s, L->fix_s, n * sizeof(float));
        }
        if (L->o_ad != TR_NONE)
            memcpy(m->params + L->o_ad, L->fix_ad, n * sizeof(float));
        if (L->o_th != TR_NONE)
            memcpy(m->params + L->o_th, L->fix_th, n * sizeof(float));
    }
    st_train_model_changed(m);
    if (err)
        *err = ST_OK;
    return m;
nomem:
    rc = st_error(ST_ERR_NOMEM, "out of memory for the model");
fail:
    st_train_model_destroy(&m);
    if (err)
        *err = rc;
    return NULL;
}

void st_train_model_destroy(st_train_model **self_p)
{
    if (!self_p || !*self_p)
        return;
    st_train_model *m = *self_p;
    for (size_t l = 0; l < m->n_layers; l++)
        layer_free(&m->layers[l]);
    free(m->params);
    free(m);
    *self_p = NULL;
}

size_t st_train_model_inputs(const st_train_model *self)
{
    return self->n_in;
}

size_t st_train_model_outputs(const st_train_model *self)
{
    return self->layers[self->n_layers - 1].n;
}

size_t st_train_model_layer_count(const st_train_model *self)
{
    return self->n_layers;
}

const st_train_layer_params *st_train_model_layer(const st_train_model *self, size_t k)
{
    return k < self->n_layers ? &self->layers[k].p : NULL;
}

size_t st_train_model_layer_size(const st_train_model *self, size_t k)
{
    return k < self->n_layers ? self->layers[k].n : 0;
}

size_t st_train_model_param_count(const st_train_model *self)
{
    return self->n_tensors;
}

size_t st_train_model_param_total(const st_train_model *self)
{
    return self->n_params;
}

int st_train_model_param(const st_train_model *self, size_t k, st_train_tensor *out)
{
    if (k >= self->n_tensors)
        return st_error(ST_ERR_INVALID, "parameter tensor %zu of %zu", k, self->n_tensors);
    const tr_tensor *t = &self->tensors[k];
    *out = (st_train_tensor){
        .name = t->name,
        .data = self->params + t->offset,
        .count = t->count,
        .ndim = t->ndim,
        .dims = {t->dims[0], t->dims[1], t->dims[2]},
        .offset = t->offset,
    };
    return ST_OK;
}

int st_train_model_param_find(const st_train_model *self, const char *name, st_train_tensor *out)
{
    for (size_t k = 0; k < self->n_tensors; k++)
        if (!strcmp(self->tensors[k].name, name))
            return st_train_model_param(self, k, out);
    char list[512] = "";
    for (size_t k = 0; k < self->n_tensors && strlen(list) + 40 < sizeof list; k++) {
        strcat(list, k ? ", " : "");
        strcat(list, self->tensors[k].name);
    }
    return st_error(ST_ERR_NOT_FOUND, "the model has no parameter '%s'; it has %s", name, list);
}

/* A trained rate r = dt tau_inv is stored as the engine will compute it
   from the exported tau_inv: tau = fl(r / dt), r = fl(dt * tau). */
static void project_rates(float *x, float *tau, size_t n, float dtf)
{
    for (size_t k = 0; k < n; k++) {
        float r = x[k];
        if (!(r >= 0.0f))
            r = 0.0f; /* also NaN */
        if (r > 1.0f)
            r = 1.0f;
        tau[k] = r / dtf;
        x[k] = dtf * tau[k];
    }
}

void st_train_model_changed(st_train_model *self)
{
    for (size_t l = 0; l < self->n_layers; l++) {
        tr_layer *L = &self->layers[l];
        if (L->o_d != TR_NONE) {
            float *d = self->params + L->o_d;
            for (size_t k = 0; k < L->n; k++)
                d[k] = d[k] >= 0.0f ? (d[k] <= L->p.max_delay ? d[k] : L->p.max_delay) : 0.0f;
        }
        if (L->o_a != TR_NONE) {
            project_rates(self->params + L->o_a, L->tau_mem, L->n, L->dtf);
            project_rates(self->params + L->o_s, L->tau_syn, L->n, L->dtf);
        }
        if (L->o_ad != TR_NONE)
            project_rates(self->params + L->o_ad, L->tau_adapt, L->n, L->dtf);
    }
}

float *tr_tensor_tau(st_train_model *m, size_t k)
{
    const tr_tensor *t = &m->tensors[k];
    tr_layer *L = &m->layers[t->layer];
    if (t->project != 1)
        return NULL;
    return t->offset == L->o_a ? L->tau_mem : t->offset == L->o_s ? L->tau_syn : L->tau_adapt;
}

void tr_tensor_set_tau(st_train_model *m, size_t k, const float *tau)
{
    const tr_tensor *t = &m->tensors[k];
    float *dst = tr_tensor_tau(m, k), *r = m->params + t->offset;
    const float dtf = m->layers[t->layer].dtf;
    for (size_t e = 0; e < t->count; e++) {
        dst[e] = tau[e];
        r[e] = dtf * tau[e];
    }
}

tr_coef tr_layer_coef(const st_train_model *m, const tr_layer *L)
{
    return (tr_coef){
        .a = L->o_a != TR_NONE ? m->params + L->o_a : L->fix_a,
        .s = L->o_s != TR_NONE ? m->params + L->o_s : L->fix_s,
        .ad = L->o_ad != TR_NONE ? m->params + L->o_ad : L->fix_ad,
        .th = L->o_th != TR_NONE ? m->params + L->o_th : L->fix_th,
    };
}

/* ---- the trainer ------------------------------------------------------------------------ */

/* One worker's buffers for a chunk of R samples over T steps. The state
   before every step is kept ([T + 1][R][n]: the neurons step from slot t
   into slot t + 1); spike outputs are listed once, as they are made, and
   the lists serve the next layer's sums, the recurrent sums of the next
   step and both weight gradients. */
typedef struct {
    size_t rows_cap, r_cap;  /* T*R and R capacities */
    size_t T, R;
    float *x;                /* [T][R][n_in] */
    float *out[ST_TRAIN_MAX_LAYERS], *cur[ST_TRAIN_MAX_LAYERS];
    float *sv[ST_TRAIN_MAX_LAYERS], *si[ST_TRAIN_MAX_LAYERS], *sb[ST_TRAIN_MAX_LAYERS];
    float *gout[ST_TRAIN_MAX_LAYERS];
    /* spike lists (CSR over rows) of the input (0) and of layer l's output (l + 1) */
    uint32_t *sp_off[ST_TRAIN_MAX_LAYERS + 1], *sp_idx[ST_TRAIN_MAX_LAYERS + 1];
    bool bin[ST_TRAIN_MAX_LAYERS + 1]; /* that activation is all 0/1 and listed */
    float *gv, *gi, *gb, *tmp, *scratch; /* [R][nmax]; scratch (2 R + 4) nmax */
    void *wmap;                          /* warp_sample's maps: T + n_in indices and weights */
    double *ctc;
    size_t ctc_cap;
    int32_t *dec;            /* T: decoded labels */
    int32_t *lab;            /* mapped labels */
    size_t dec_cap, lab_cap;
} tr_ws;

typedef struct {
    double loss, spikes, slots;
    double correct;          /* samples right; ce_frame: the share of each sample's steps */
    size_t samples;
    int rc; /* ST_OK, or why the chunk failed */
} tr_chunk_out;

struct st_train {
    st_train_model *m;
    st_train_params p;
    tr_spike_fn fn;
    unsigned n_threads;
    float *grad, *mom1, *mom2;
    float *wt;               /* transposed dense and recurrent weights */
    size_t wt_w[ST_TRAIN_MAX_LAYERS], wt_rec[ST_TRAIN_MAX_LAYERS];
    float *slots;            /* one gradient per chunk */
    size_t n_slots;
    tr_chunk_out *cout;
    size_t n_cout;
    tr_ws *ws;
    st_workers *pool;
    uint64_t steps;
    uint32_t epochs;
    size_t *perm;
    size_t perm_cap;
    /* the job under way */
    const st_train_data *job_data;
    const size_t *job_idx;
    size_t job_n;
    bool job_backward;
    float job_scale;
};

st_train_params st_train_default_params(void)
{
    return (st_train_params){
        .surrogate = ST_TRAIN_SURR_SUPERSPIKE,
        .surrogate_alpha = 0.0f,
        .detach_reset = true,
        .smooth_forward = false,
        .loss = ST_TRAIN_LOSS_CE_MAX,
        .ctc_blank = 0,
        .rate_reg = 0.0f,
        .rate_target = 0.02f,
        .onset_weight = 1.0f,
        .offset_weight = 1.0f,
        .optimizer = ST_TRAIN_ADAM,
        .lr = 1e-3f,
        .lr_min = 0.0f,
        .warmup_steps = 0,
        .decay_steps = 0,
        .beta1 = 0.9f,
        .beta2 = 0.999f,
        .eps = 1e-8f,
        .weight_decay = 0.0f,
        .clip_norm = 0.0f,
        .batch = 32,
        .chunk = 8,
        .threads = 0,
        .event_driven = true,
        .seed = 1,
    };
}

static int check_params(const st_train_params *p, const st_train_model *m)
{
#define FINITE(field, lo, hi, what)                                                                \
    if (!isfinite(p->field) || !(p->field >= (lo)) || !(p->field <= (hi)))                         \
        return st_error(ST_ERR_INVALID, "%s must be %s, not %g", #field, what, (double)p->field);
    if ((unsigned)p->surrogate >= ST_TRAIN_N_SURR)
        return st_error(ST_ERR_INVALID, "surrogate %d does not exist", (int)p->surrogate);
    if ((unsigned)p->loss >= ST_TRAIN_N_LOSSES)
        return st_error(ST_ERR_INVALID, "loss %d does not exist", (int)p->loss);
    if ((unsigned)p->optimizer >= ST_TRAIN_N_OPTIMIZERS)
        return st_error(ST_ERR_INVALID, "optimizer %d does not exist", (int)p->optimizer);
    FINITE(surrogate_alpha, 0.0f, 1e6f, "a finite number >= 0 (0: the default)");
    FINITE(lr, 1e-12f, 10.0f, "a number in (0, 10]");
    FINITE(lr_min, 0.0f, p->lr, "a number from 0 to lr");
    FINITE(beta1, 0.0f, 0.999999f, "in [0, 1)");
    FINITE(beta2, 0.0f, 0.999999f, "in [0, 1)");
    FINITE(eps, 1e-30f, 1.0f, "a small positive number");
    FINITE(weight_decay, 0.0f, 10.0f, "a number in [0, 10]");
    FINITE(clip_norm, 0.0f, 1e30f, "a number >= 0 (0: off)");
    FINITE(rate_reg, 0.0f, 1e6f, "a number >= 0 (0: off)");
    FINITE(rate_target, 0.0f, 1.0f, "a rate in [0, 1]");
    FINITE(onset_weight, 0.0f, 1e6f, "a number >= 0 (1: the onset weighs as any step)");
    FINITE(offset_weight, 0.0f, 1e6f, "a number >= 0 (1: the offset weighs as any step)");
#undef FINITE
    if (p->batch == 0)
        return st_error(ST_ERR_INVALID, "batch must be at least 1 sample");
    if (p->chunk == 0)
        return st_error(ST_ERR_INVALID, "chunk must be at least 1 sample");
    if (p->threads > MAX_THREADS)
        return st_error(ST_ERR_INVALID, "threads must be 0 (one per core) to %d, not %u",
                        MAX_THREADS, p->threads);
    const size_t K = st_train_model_outputs(m);
    if (p->loss == ST_TRAIN_LOSS_CTC && (K < 2 || p->ctc_blank >= K))
        return st_error(ST_ERR_INVALID, "ctc: the read-out has %zu outputs; it needs the blank "
                        "(index %u) and at least one label", K, p->ctc_blank);
    return ST_OK;
}

static void ws_free(tr_ws *w, size_t n_layers)
{
    free(w->x);
    for (size_t l = 0; l < n_layers; l++) {
        free(w->out[l]);
        free(w->cur[l]);
        free(w->sv[l]);
        free(w->si[l]);
        free(w->sb[l]);
        free(w->gout[l]);
    }
    for (size_t a = 0; a <= n_layers; a++) {
        free(w->sp_off[a]);
        free(w->sp_idx[a]);
    }
    free(w->gv);
    free(w->gi);
    free(w->gb);
    free(w->tmp);
    free(w->scratch);
    free(w->wmap);
    free(w->ctc);
    free(w->dec);
    free(w->lab);
    memset(w, 0, sizeof *w);
}

static size_t model_nmax(const st_train_model *m)
{
    size_t nmax = m->n_in;
    for (size_t l = 0; l < m->n_layers; l++)
        nmax = m->layers[l].n > nmax ? m->layers[l].n : nmax;
    return nmax;
}

/* Buffers for T steps of R rows; keeps what is large enough. */
static int ws_reserve(const st_train_model *m, tr_ws *w, size_t T, size_t R)
{
    const size_t rows = T * R;
    w->T = T;
    w->R = R;
    if (rows <= w->rows_cap && R <= w->r_cap && T <= w->dec_cap)
        return ST_OK;
    const size_t n_layers = m->n_layers;
    ws_free(w, n_layers);
    const size_t nmax = model_nmax(m);
    bool ok = (w->x = malloc(rows * m->n_in * sizeof(float))) &&
              (w->sp_off[0] = malloc((rows + 1) * sizeof(uint32_t))) &&
              (w->sp_idx[0] = malloc(rows * m->n_in * sizeof(uint32_t)));
    for (size_t l = 0; l < n_layers && ok; l++) {
        const tr_layer *L = &m->layers[l];
        const size_t sz = rows * L->n * sizeof(float), ssz = (rows + R) * L->n * sizeof(float);
        ok = (w->out[l] = malloc(sz)) && (w->gout[l] = malloc(sz));
        if (ok && L->p.kind != ST_TRAIN_DELAY)
            ok = (w->cur[l] = malloc(sz)) && (w->sv[l] = malloc(ssz)) &&
                 (w->si[l] = malloc(ssz));
        if (ok && L->model == ST_SNN_LSNN && L->p.kind != ST_TRAIN_DELAY)
            ok = (w->sb[l] = malloc(ssz)) != NULL;
        if (ok && (L->spiking || L->p.kind == ST_TRAIN_DELAY))
            ok = (w->sp_off[l + 1] = malloc((rows + 1) * sizeof(uint32_t))) &&
                 (w->sp_idx[l + 1] = malloc(rows * L->n * sizeof(uint32_t)));
    }
    ok = ok && (w->gv = malloc(R * nmax * sizeof(float))) &&
         (w->gi = malloc(R * nmax * sizeof(float))) &&
         (w->gb = malloc(R * nmax * sizeof(float))) &&
         (w->tmp = malloc(R * nmax * sizeof(float))) &&
         (w->scratch = malloc((2 * R + 4) * nmax * sizeof(float))) &&
         (w->wmap = malloc((T + m->n_in) * (sizeof(uint32_t) + sizeof(float)))) &&
         (w->dec = malloc(T * sizeof(int32_t)));
    if (!ok) {
        ws_free(w, n_layers);
        return st_error(ST_ERR_NOMEM, "out of memory for a chunk of %zu samples x %zu steps", R,
                        T);
    }
    w->rows_cap = rows;
    w->r_cap = R;
    w->dec_cap = T;
    w->T = T;
    w->R = R;
    return ST_OK;
}

static void refresh_transposes(st_train *tr)
{
    const st_train_model *m = tr->m;
    for (size_t l = 0; l < m->n_layers; l++) {
        const tr_layer *L = &m->layers[l];
        if (tr->wt_w[l] != TR_NONE)
            tr_transpose(m->params + L->o_w, L->n_in, L->n, tr->wt + tr->wt_w[l]);
        if (tr->wt_rec[l] != TR_NONE)
            tr_transpose(m->params + L->o_rec, L->n, L->n, tr->wt + tr->wt_rec[l]);
    }
}

st_train *st_train_new(st_train_model *model, const st_train_params *p, int *err)
{
    int rc;
    st_train *tr = NULL;
    if (!model || !p) {
        rc = st_error(ST_ERR_INVALID, "st_train_new: no model or no parameters");
        goto fail;
    }
    if ((rc = check_params(p, model)) != ST_OK)
        goto fail;
    tr = calloc(1, sizeof *tr);
    if (!tr)
        goto nomem;
    tr->m = model;
    tr->p = *p;
    tr->fn = (tr_spike_fn){
        .surr = p->surrogate,
        .alpha = p->surrogate_alpha > 0 ? p->surrogate_alpha
                                        : st_train_surrogate_default_alpha(p->surrogate),
        .smooth = p->smooth_forward,
        .detach = p->detach_reset,
    };
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    tr->n_threads = p->threads ? p->threads : (cores > 0 ? (unsigned)cores : 1);
    if (tr->n_threads > MAX_THREADS)
        tr->n_threads = MAX_THREADS;
    const size_t np = model->n_params ? model->n_params : 1;
    tr->grad = calloc(np, sizeof(float));
    tr->mom1 = calloc(np, sizeof(float));
    tr->mom2 = calloc(np, sizeof(float));
    size_t wt_len = 0;
    for (size_t l = 0; l < model->n_layers; l++) {
        const tr_layer *L = &model->layers[l];
        tr->wt_w[l] = tr->wt_rec[l] = TR_NONE;
        if (L->p.kind == ST_TRAIN_DENSE && l > 0) {
            tr->wt_w[l] = wt_len;
            wt_len += L->n_in * L->n;
        }
        if (L->o_rec != TR_NONE) {
            tr->wt_rec[l] = wt_len;
            wt_len += L->n * L->n;
        }
    }
    tr->wt = malloc((wt_len ? wt_len : 1) * sizeof(float));
    tr->ws = calloc(tr->n_threads, sizeof *tr->ws);
    if (!tr->grad || !tr->mom1 || !tr->mom2 || !tr->wt || !tr->ws)
        goto nomem;
    if (!(tr->pool = st_workers_new(tr->n_threads, &rc)))
        goto fail;
    if (err)
        *err = ST_OK;
    return tr;
nomem:
    rc = st_error(ST_ERR_NOMEM, "out of memory for the trainer");
fail:
    st_train_destroy(&tr);
    if (err)
        *err = rc;
    return NULL;
}

void st_train_destroy(st_train **self_p)
{
    if (!self_p || !*self_p)
        return;
    st_train *tr = *self_p;
    st_workers_destroy(&tr->pool);
    if (tr->ws)
        for (unsigned t = 0; t < tr->n_threads; t++)
            ws_free(&tr->ws[t], tr->m->n_layers);
    free(tr->ws);
    free(tr->grad);
    free(tr->mom1);
    free(tr->mom2);
    free(tr->wt);
    free(tr->slots);
    free(tr->cout);
    free(tr->perm);
    free(tr);
    *self_p = NULL;
}

const st_train_params *st_train_get_params(const st_train *self)
{
    return &self->p;
}

st_train_model *st_train_get_model(const st_train *self)
{
    return self->m;
}

uint64_t st_train_steps_done(const st_train *self)
{
    return self->steps;
}

uint32_t st_train_epochs_done(const st_train *self)
{
    return self->epochs;
}

/* CTC output index of class c, skipping the blank */
static int32_t ctc_out(uint32_t blank, int32_t c)
{
    return c < (int32_t)blank ? c : c + 1;
}

int st_train_check_data(const st_train *self, const st_train_data *data, const char *what)
{
    what = what ? what : "data";
    const size_t n = st_train_data_count(data);
    const st_train_model *m = self->m;
    const size_t K = st_train_model_outputs(m);
    const char *ro = m->layers[m->n_layers - 1].p.name;
    if (n == 0)
        return st_error(ST_ERR_INVALID, "the %s set is empty: it has no samples", what);
    if (st_train_data_channels(data) != m->n_in)
        return st_error(ST_ERR_INVALID, "the %s has %zu channels but the model takes %zu inputs",
                        what, st_train_data_channels(data), m->n_in);
    const bool ctc = self->p.loss == ST_TRAIN_LOSS_CTC;
    const bool frame = self->p.loss == ST_TRAIN_LOSS_CE_FRAME;
    if ((ctc || frame) != st_train_data_is_seq(data)) {
        if (ctc || frame)
            return st_error(ST_ERR_INVALID, "the loss is %s, which needs a label sequence per "
                            "sample, but the %s has one class label per sample",
                            loss_names[self->p.loss], what);
        return st_error(ST_ERR_INVALID, "the loss is %s, which needs one class label per sample, "
                        "but the %s has label sequences (use loss = ctc or ce_frame)",
                        loss_names[self->p.loss], what);
    }
    for (size_t k = 0; k < n; k++) {
        size_t steps;
        st_train_data_input(data, k, &steps);
        if (steps == 0)
            return st_error(ST_ERR_INVALID, "%s sample %zu has no time steps", what, k);
        if (!ctc && !frame) {
            const int32_t y = st_train_data_label(data, k);
            if (y < 0 || (size_t)y >= K)
                return st_error(ST_ERR_INVALID, "%s sample %zu has label %d but the read-out '%s' "
                                "has %zu outputs (labels 0 to %zu)", what, k, (int)y, ro, K,
                                K - 1);
            continue;
        }
        size_t L;
        const int32_t *lab = st_train_data_labels(data, k, &L);
        if (frame) {
            if (L != steps)
                return st_error(ST_ERR_INVALID, "%s sample %zu has %zu labels but %zu steps: "
                                "ce_frame takes one label per step", what, k, L, steps);
            for (size_t s = 0; s < L; s++)
                if (lab[s] < 0 || (size_t)lab[s] >= K)
                    return st_error(ST_ERR_INVALID, "%s sample %zu, step %zu, has label %d but the "
                                    "read-out '%s' has %zu outputs (labels 0 to %zu)", what, k, s,
                                    (int)lab[s], ro, K, K - 1);
            continue;
        }
        size_t need = L;
        for (size_t s = 0; s < L; s++) {
            if (lab[s] < 0 || (size_t)lab[s] + 1 >= K)
                return st_error(ST_ERR_INVALID, "%s sample %zu has label %d but the read-out '%s' "
                                "has %zu outputs, one of them the blank (labels 0 to %zu)", what,
                                k, (int)lab[s], ro, K, K - 2);
            need += s > 0 && lab[s] == lab[s - 1];
        }
        if (need > steps)
            return st_error(ST_ERR_INVALID, "%s sample %zu: %zu labels need at least %zu steps for "
                            "ctc, but it has %zu", what, k, L, need, steps);
    }
    return ST_OK;
}

/* ---- one chunk: forward, loss, backward ------------------------------------------------- */

static void conv_forward(const tr_layer *L, const float *W, const float *in, float *cur,
                         size_t rows)
{
    const st_train_layer_params *p = &L->p;
    const size_t Ci = p->in_channels, Co = p->out_channels, K = p->kernel;
    const size_t Li = L->len_in, Lo = L->len_out, s = p->stride, pad = p->padding;
    for (size_t row = 0; row < rows; row++) {
        const float *x = in + row * L->n_in;
        float *o = cur + row * L->n;
        for (size_t co = 0; co < Co; co++)
            for (size_t ci = 0; ci < Ci; ci++)
                for (size_t kx = 0; kx < K; kx++) {
                    const float w = W[(co * Ci + ci) * K + kx];
                    const float *xc = x + ci * Li;
                    float *oc = o + co * Lo;
                    /* ox with 0 <= ox s - pad + kx < Li */
                    size_t lo = kx >= pad ? 0 : (pad - kx + s - 1) / s;
                    if (Li + pad <= kx)
                        continue;
                    size_t hi = (Li - 1 + pad - kx) / s + 1;
                    hi = hi < Lo ? hi : Lo;
                    for (size_t ox = lo; ox < hi; ox++)
                        oc[ox] += w * xc[ox * s + kx - pad];
                }
    }
}

static void conv_backward(const tr_layer *L, const float *W, const float *in, const float *g,
                          size_t rows, float *gw, float *gb, float *gx)
{
    const st_train_layer_params *p = &L->p;
    const size_t Ci = p->in_channels, Co = p->out_channels, K = p->kernel;
    const size_t Li = L->len_in, Lo = L->len_out, s = p->stride, pad = p->padding;
    for (size_t row = 0; row < rows; row++) {
        const float *x = in + row * L->n_in;
        const float *go = g + row * L->n;
        float *gxr = gx ? gx + row * L->n_in : NULL;
        for (size_t co = 0; co < Co; co++) {
            const float *gc = go + co * Lo;
            if (gb) {
                float sum = 0;
                for (size_t ox = 0; ox < Lo; ox++)
                    sum += gc[ox];
                gb[co] += sum;
            }
            for (size_t ci = 0; ci < Ci; ci++)
                for (size_t kx = 0; kx < K; kx++) {
                    if (Li + pad <= kx)
                        continue;
                    size_t lo = kx >= pad ? 0 : (pad - kx + s - 1) / s;
                    size_t hi = (Li - 1 + pad - kx) / s + 1;
                    hi = hi < Lo ? hi : Lo;
                    const float *xc = x + ci * Li;
                    const float w = W[(co * Ci + ci) * K + kx];
                    float acc = 0;
                    for (size_t ox = lo; ox < hi; ox++)
                        acc += gc[ox] * xc[ox * s + kx - pad];
                    gw[(co * Ci + ci) * K + kx] += acc;
                    if (gxr) {
                        float *gxc = gxr + ci * Li;
                        for (size_t ox = lo; ox < hi; ox++)
                            gxc[ox * s + kx - pad] += w * gc[ox];
                    }
                }
        }
    }
}

/* Delays: hard rounds to the nearest step; smooth interpolates. */
static void delay_split(float d, bool smooth, size_t *d0, float *f)
{
    if (!smooth) {
        *d0 = (size_t)floorf(d + 0.5f);
        *f = 0.0f;
    } else {
        const float fl = floorf(d);
        *d0 = (size_t)fl;
        *f = d - fl;
    }
}

static void delay_forward(const tr_layer *L, const float *d, bool smooth, const float *in,
                          float *out, size_t T, size_t R)
{
    const size_t n = L->n, rn = R * n;
    for (size_t k = 0; k < n; k++) {
        size_t d0;
        float f;
        delay_split(d[k], smooth, &d0, &f);
        for (size_t t = 0; t < T; t++)
            for (size_t r = 0; r < R; r++) {
                const float a = t >= d0 ? in[(t - d0) * rn + r * n + k] : 0.0f;
                if (!smooth) {
                    out[t * rn + r * n + k] = a;
                    continue;
                }
                const float b = t >= d0 + 1 ? in[(t - d0 - 1) * rn + r * n + k] : 0.0f;
                out[t * rn + r * n + k] = (1.0f - f) * a + f * b;
            }
    }
}

static void delay_backward(const tr_layer *L, const float *d, bool smooth, const float *in,
                           const float *gout, float *gx, float *gd, size_t T, size_t R)
{
    const size_t n = L->n, rn = R * n;
    for (size_t k = 0; k < n; k++) {
        size_t d0;
        float f;
        delay_split(d[k], smooth, &d0, &f);
        float acc = 0;
        for (size_t t = 0; t < T; t++)
            for (size_t r = 0; r < R; r++) {
                const float g = gout[t * rn + r * n + k];
                const float a = t >= d0 ? in[(t - d0) * rn + r * n + k] : 0.0f;
                const float b = t >= d0 + 1 ? in[(t - d0 - 1) * rn + r * n + k] : 0.0f;
                acc += g * (b - a);
                if (gx && t >= d0)
                    gx[(t - d0) * rn + r * n + k] += (1.0f - f) * g;
                if (gx && smooth && t >= d0 + 1)
                    gx[(t - d0 - 1) * rn + r * n + k] += f * g;
            }
        if (gd)
            gd[k] += acc;
    }
}

static void fill_bias(float *cur, const float *bias, size_t rows, size_t n, size_t per_out)
{
    /* per_out: positions per bias value (conv1d); 1 for dense */
    if (!bias) {
        memset(cur, 0, rows * n * sizeof *cur);
        return;
    }
    float *first = cur;
    if (per_out == 1)
        memcpy(first, bias, n * sizeof *cur);
    else
        for (size_t o = 0; o < n; o++)
            first[o] = bias[o / per_out];
    for (size_t row = 1; row < rows; row++)
        memcpy(cur + row * n, first, n * sizeof *cur);
}

/* Forward of the whole model over the chunk in w (x filled): every
   layer's output, summed input and state before each step, and the spike
   lists of every 0/1 activation. */
static void chunk_forward(st_train *tr, tr_ws *w)
{
    const st_train_model *m = tr->m;
    const size_t T = w->T, R = w->R, rows = T * R;
    const float *in = w->x;
    const bool events = tr->p.event_driven && !tr->fn.smooth;
    w->bin[0] = events && tr_binary(w->x, rows * m->n_in);
    if (w->bin[0]) {
        w->sp_off[0][0] = 0;
        tr_list_rows(w->x, rows, m->n_in, w->sp_off[0], w->sp_idx[0]);
    }
    for (size_t l = 0; l < m->n_layers; l++) {
        const tr_layer *L = &m->layers[l];
        const size_t n = L->n, n_in = L->n_in, rn = R * n;
        const bool bin_in = w->bin[l];
        if (L->p.kind == ST_TRAIN_DELAY) {
            delay_forward(L, m->params + L->o_d, tr->fn.smooth, in, w->out[l], T, R);
            w->bin[l + 1] = bin_in; /* a delay of spikes is spikes */
            if (bin_in) {
                w->sp_off[l + 1][0] = 0;
                tr_list_rows(w->out[l], rows, n, w->sp_off[l + 1], w->sp_idx[l + 1]);
            }
            in = w->out[l];
            continue;
        }
        const float *W = m->params + L->o_w;
        const float *bias = L->o_b != TR_NONE ? m->params + L->o_b : NULL;
        float *cur = w->cur[l];
        if (L->p.kind == ST_TRAIN_DENSE) {
            fill_bias(cur, bias, rows, n, 1);
            if (bin_in)
                tr_gemm_listed(rows, n, w->sp_off[l], w->sp_idx[l], W, n, cur, n);
            else
                tr_gemm(rows, n, n_in, in, n_in, 1, W, n, cur, n);
        } else {
            fill_bias(cur, bias, rows, n, L->len_out);
            conv_forward(L, W, in, cur, rows);
        }
        const tr_coef c = tr_layer_coef(m, L);
        float *sv = w->sv[l], *si = w->si[l], *sb = w->sb[l];
        for (size_t r = 0; r < R; r++)
            for (size_t k = 0; k < n; k++) {
                sv[r * n + k] = L->vl;
                si[r * n + k] = 0.0f;
                if (sb)
                    sb[r * n + k] = c.th[k];
            }
        const bool out_bin = L->spiking && events;
        uint32_t *off = w->sp_off[l + 1], *idx = w->sp_idx[l + 1];
        if (out_bin)
            off[0] = 0;
        const float *Rw = L->o_rec != TR_NONE ? m->params + L->o_rec : NULL;
        for (size_t t = 0; t < T; t++) {
            float *ct = cur + t * rn, *zt = w->out[l] + t * rn;
            if (Rw && t > 0) {
                memset(w->tmp, 0, rn * sizeof(float));
                if (out_bin)
                    tr_gemm_listed(R, n, off + (t - 1) * R, idx, Rw, n, w->tmp, n);
                else
                    tr_gemm(R, n, n, zt - rn, n, 1, Rw, n, w->tmp, n);
                tr_add(ct, w->tmp, rn);
            }
            tr_neuron_forward(L, &c, &tr->fn, R, ct, sv + t * rn, si + t * rn,
                              sb ? sb + t * rn : NULL, sv + (t + 1) * rn, si + (t + 1) * rn,
                              sb ? sb + (t + 1) * rn : NULL, zt);
            if (out_bin)
                tr_list_rows(zt, R, n, off + t * R, idx);
        }
        w->bin[l + 1] = out_bin;
        in = w->out[l];
    }
}

static void chunk_backward(st_train *tr, tr_ws *w, float *slot)
{
    const st_train_model *m = tr->m;
    const size_t T = w->T, R = w->R, rows = T * R;
    for (size_t l = m->n_layers; l-- > 0;) {
        const tr_layer *L = &m->layers[l];
        const size_t n = L->n, n_in = L->n_in, rn = R * n;
        const float *in = l ? w->out[l - 1] : w->x;
        float *gprev = l ? w->gout[l - 1] : NULL;
        if (L->p.kind == ST_TRAIN_DELAY) {
            delay_backward(L, m->params + L->o_d, tr->fn.smooth, in, w->gout[l], gprev,
                           slot + L->o_d, T, R);
            continue;
        }
        const tr_coef c = tr_layer_coef(m, L);
        const tr_coef_grad cg = {
            .a = L->o_a != TR_NONE ? slot + L->o_a : NULL,
            .s = L->o_s != TR_NONE ? slot + L->o_s : NULL,
            .ad = L->o_ad != TR_NONE ? slot + L->o_ad : NULL,
            .th = L->o_th != TR_NONE ? slot + L->o_th : NULL,
        };
        float *gv = w->gv, *gi = w->gi, *gb = w->gb;
        memset(gv, 0, rn * sizeof(float));
        memset(gi, 0, rn * sizeof(float));
        memset(gb, 0, rn * sizeof(float));
        float *cur = w->cur[l];
        const float *RT = tr->wt_rec[l] != TR_NONE ? tr->wt + tr->wt_rec[l] : NULL;
        for (size_t t = T; t-- > 0;) {
            float *ct = cur + t * rn;
            tr_neuron_backward(L, &c, &tr->fn, R, w->sv[l] + t * rn, w->si[l] + t * rn,
                               w->sb[l] ? w->sb[l] + t * rn : NULL, ct, w->gout[l] + t * rn, gv,
                               gi, gb, ct, &cg, w->scratch);
            if (RT && t > 0)
                tr_gemm_fast(R, n, n, ct, n, 1, RT, n, w->gout[l] + (t - 1) * rn, n);
        }
        /* lsnn starts with b = v_th */
        if (L->model == ST_SNN_LSNN && cg.th)
            for (size_t r = 0; r < R; r++)
                for (size_t k = 0; k < n; k++)
                    cg.th[k] += gb[r * n + k];
        /* cur now holds the gradient of each step's input current */
        if (L->p.kind == ST_TRAIN_DENSE) {
            if (L->o_b != TR_NONE)
                tr_colsum(rows, n, cur, slot + L->o_b);
            if (w->bin[l])
                tr_gemm_tn_listed(rows, n, w->sp_off[l], w->sp_idx[l], cur, n, slot + L->o_w, n);
            else
                tr_gemm_fast(n_in, n, rows, in, 1, n_in, cur, n, slot + L->o_w, n);
            if (gprev)
                tr_gemm_fast(rows, n_in, n, cur, n, 1, tr->wt + tr->wt_w[l], n_in, gprev, n_in);
        } else {
            conv_backward(L, m->params + L->o_w, in, cur, rows, slot + L->o_w,
                          L->o_b != TR_NONE ? slot + L->o_b : NULL, gprev);
        }
        if (L->o_rec != TR_NONE && T > 1) {
            if (w->bin[l + 1])
                tr_gemm_tn_listed(rows - R, n, w->sp_off[l + 1], w->sp_idx[l + 1], cur + rn, n,
                                  slot + L->o_rec, n);
            else
                tr_gemm_fast(n, n, rows - R, w->out[l], 1, n, cur + rn, n, slot + L->o_rec, n);
        }
    }
}

/* Loss, accuracy, rates and the read-out gradient of a chunk; the rate
   regulariser's gradient too. gout must be zeroed when backward. */
static int chunk_loss(st_train *tr, tr_ws *w, const st_train_data *d, const size_t *idx,
                      bool backward, float scale, tr_chunk_out *o)
{
    const st_train_model *m = tr->m;
    const size_t R = w->R, last = m->n_layers - 1;
    const size_t K = m->layers[last].n;
    const st_train_params *p = &tr->p;
    const float *y = w->out[last];
    float *gy = backward ? w->gout[last] : NULL;
    for (size_t r = 0; r < R; r++) {
        size_t T;
        st_train_data_input(d, idx[r], &T);
        double loss;
        bool right;
        if (p->loss == ST_TRAIN_LOSS_CE_FRAME) {
            /* the mean over the steps of each step's cross-entropy */
            size_t L, hits = 0;
            const int32_t *lab = st_train_data_labels(d, idx[r], &L);
            const float st = scale / (float)T;
            /* steps since the label turned to its value; `after` whether that
               was the end of a run of another label (an offset, for label 0) */
            size_t run = 0;
            bool after = false;
            loss = 0;
            for (size_t t = 0; t < T; t++) {
                int32_t pred;
                if (t > 0 && lab[t - 1] == lab[t])
                    run++;
                else {
                    run = 0;
                    after = t > 0;
                }
                float wt = 1.0f;
                if (lab[t] != 0 && run < p->onset_steps)
                    wt = p->onset_weight;
                else if (lab[t] == 0 && after && run < p->offset_steps)
                    wt = p->offset_weight;
                loss += wt * tr_ce_loss(ST_TRAIN_LOSS_CE_LAST, y + (t * R + r) * K, R * K, 1, K,
                                        lab[t], st * wt, gy ? gy + (t * R + r) * K : NULL, &pred);
                hits += pred == lab[t];
            }
            loss /= (double)T;
            o->correct += (double)hits / (double)T;
            right = false;
        } else if (p->loss != ST_TRAIN_LOSS_CTC) {
            int32_t pred;
            const int32_t label = st_train_data_label(d, idx[r]);
            loss = tr_ce_loss(p->loss, y + r * K, R * K, T, K, label, scale,
                              gy ? gy + r * K : NULL, &pred);
            right = pred == label;
        } else {
            size_t L;
            const int32_t *lab = st_train_data_labels(d, idx[r], &L);
            const size_t need = tr_ctc_work_len(T, L, K);
            if (need > w->ctc_cap) {
                free(w->ctc);
                w->ctc = malloc(need * sizeof(double));
                w->ctc_cap = w->ctc ? need : 0;
            }
            if (L > w->lab_cap) {
                free(w->lab);
                w->lab = malloc(L * sizeof(int32_t));
                w->lab_cap = w->lab ? L : 0;
            }
            if (!w->ctc || (L && !w->lab))
                return st_error(ST_ERR_NOMEM, "out of memory for ctc");
            for (size_t s = 0; s < L; s++)
                w->lab[s] = ctc_out(p->ctc_blank, lab[s]);
            loss = tr_ctc_loss(y + r * K, R * K, T, K, p->ctc_blank, w->lab, L, scale,
                               gy ? gy + r * K : NULL, w->ctc);
            const size_t nd = tr_ctc_greedy(y + r * K, R * K, T, K, p->ctc_blank, w->dec);
            right = nd == L && (L == 0 || !memcmp(w->dec, w->lab, L * sizeof(int32_t)));
        }
        /* rates, and the regulariser: per neuron spike counts over the
           sample's steps (in w->tmp, free after the forward) */
        for (size_t l = 0; l < m->n_layers; l++) {
            const tr_layer *L = &m->layers[l];
            if (!L->spiking || L->p.kind == ST_TRAIN_DELAY)
                continue;
            const size_t n = L->n, rn = R * n;
            const float *z = w->out[l] + r * n;
            float *cnt = w->tmp;
            memset(cnt, 0, n * sizeof *cnt);
            for (size_t t = 0; t < T; t++)
                tr_add(cnt, z + t * rn, n);
            double layer_reg = 0, total = 0;
            for (size_t k = 0; k < n; k++) {
                total += cnt[k];
                const double dev = cnt[k] / (double)T - p->rate_target;
                layer_reg += dev * dev;
                /* cnt becomes the gradient of the regulariser w.r.t. each z */
                cnt[k] = (float)(scale * p->rate_reg * 2.0 * dev / ((double)n * (double)T));
            }
            o->spikes += total;
            o->slots += (double)n * (double)T;
            if (p->rate_reg > 0) {
                loss += p->rate_reg * layer_reg / (double)n;
                if (backward)
                    for (size_t t = 0; t < T; t++)
                        tr_add(w->gout[l] + t * rn + r * n, cnt, n);
            }
        }
        o->loss += loss;
        if (p->loss != ST_TRAIN_LOSS_CE_FRAME)
            o->correct += right;
        o->samples++;
    }
    return ST_OK;
}

/* SpecAugment's masks on sample r of the chunk in w->x (its own `steps`),
   drawn from the seed, the step under way and the sample's index. */
static void mask_sample(const st_train *tr, tr_ws *w, size_t r, size_t idx, size_t steps,
                        size_t C)
{
    const st_train_params *p = &tr->p;
    const size_t R = w->R;
    tr_rng rng;
    tr_rng_seed(&rng, p->seed ^ (tr->steps + 1) * 0x9E3779B97F4A7C15ull ^ (uint64_t)idx << 20);
    for (uint32_t k = 0; k < p->mask_freq; k++) {
        size_t width = (size_t)(tr_rng_uniform(&rng) * (double)(p->mask_freq_width + 1));
        width = width < C ? width : C;
        size_t f0 = (size_t)(tr_rng_uniform(&rng) * (double)(C - width + 1));
        for (size_t t = 0; t < steps; t++)
            memset(w->x + (t * R + r) * C + f0, 0, width * sizeof(float));
    }
    for (uint32_t k = 0; k < p->mask_time; k++) {
        size_t width = (size_t)(tr_rng_uniform(&rng) * (double)(p->mask_time_width + 1));
        width = width < steps ? width : steps;
        size_t t0 = (size_t)(tr_rng_uniform(&rng) * (double)(steps - width + 1));
        for (size_t t = t0; t < t0 + width; t++)
            memset(w->x + (t * R + r) * C, 0, C * sizeof(float));
    }
}

/* Where warped position i of n reads from: src[i] (an index) and frac[i]
   (the weight of src[i] + 1), for a stretch by `f` about the middle (time)
   or VTLP's piecewise line through 0 and n - 1 (channels). */
static void warp_map(size_t n, double f, bool vtlp, bool nearest, uint32_t *src, float *frac)
{
    const double last = (double)(n ? n - 1 : 0), mid = last / 2, knee = 0.8 * last;
    for (size_t i = 0; i < n; i++) {
        double at;
        if (!vtlp)
            at = mid + ((double)i - mid) * f;
        else if ((double)i <= knee)
            at = (double)i * f;
        else
            at = knee * f + ((double)i - knee) * (last - knee * f) / (last - knee);
        at = at < 0 ? 0 : at > last ? last : at;
        if (nearest)
            at = floor(at + 0.5);
        const size_t k = (size_t)at; /* at <= last: k <= n - 1 */
        src[i] = (uint32_t)k;
        frac[i] = k + 1 < n ? (float)(at - (double)k) : 0.0f;
    }
}

/* The warps (st_train_params.warp_time, warp_freq) of sample r of the
   chunk: w->x takes x (its own `steps`) read through them, drawn from the
   seed, the step under way and the sample's index. */
static void warp_sample(const st_train *tr, tr_ws *w, size_t r, size_t idx, const float *x,
                        size_t steps, size_t C)
{
    const st_train_params *p = &tr->p;
    const size_t T = w->T, R = w->R;
    tr_rng rng;
    tr_rng_seed(&rng, p->seed ^ (tr->steps + 1) * 0xD1B54A32D192ED03ull ^ (uint64_t)idx << 24);
    const double ft = 1 + p->warp_time * (2 * tr_rng_uniform(&rng) - 1);
    const double ff = 1 + p->warp_freq * (2 * tr_rng_uniform(&rng) - 1);
    const bool nearest = tr_binary(x, steps * C);
    uint32_t *ts = (uint32_t *)w->wmap, *cs = ts + T;
    float *tf = (float *)(cs + C), *cf = tf + T;
    warp_map(steps, ft, false, nearest, ts, tf);
    warp_map(C, ff, true, nearest, cs, cf);
    for (size_t t = 0; t < T; t++) {
        const size_t tt = t < steps ? t : steps - 1;
        const float a = tf[tt];
        const float *x0 = x + ts[tt] * C, *x1 = a > 0 ? x0 + C : x0;
        float *o = w->x + (t * R + r) * C;
        for (size_t c = 0; c < C; c++) {
            const size_t k = cs[c];
            const float b = cf[c];
            const float v0 = b > 0 ? x0[k] + b * (x0[k + 1] - x0[k]) : x0[k];
            const float v1 = b > 0 ? x1[k] + b * (x1[k + 1] - x1[k]) : x1[k];
            o[c] = v0 + a * (v1 - v0);
        }
    }
}

static void gather_chunk(const st_train *tr, const st_train_data *d, const size_t *idx,
                         tr_ws *w, size_t C)
{
    const size_t T = w->T, R = w->R;
    const bool masks = tr->job_backward && (tr->p.mask_freq || tr->p.mask_time);
    const bool warps = tr->job_backward && (tr->p.warp_time > 0 || tr->p.warp_freq > 0);
    for (size_t r = 0; r < R; r++) {
        size_t steps = 0;
        const float *x = st_train_data_input(d, idx[r], &steps);
        if (warps && steps > 0)
            warp_sample(tr, w, r, idx[r], x, steps < T ? steps : T, C);
        else
            for (size_t t = 0; t < T; t++)
                memcpy(w->x + (t * R + r) * C, x + t * C, C * sizeof(float));
        if (masks)
            mask_sample(tr, w, r, idx[r], steps < T ? steps : T, C);
    }
}

static void run_chunk(void *ctx, size_t item, unsigned worker)
{
    st_train *tr = ctx;
    tr_ws *w = &tr->ws[worker];
    const size_t first = item * tr->p.chunk;
    const size_t R = tr->job_n - first < tr->p.chunk ? tr->job_n - first : tr->p.chunk;
    const size_t *idx = tr->job_idx + first;
    size_t T = 0;
    for (size_t r = 0; r < R; r++) {
        size_t s;
        st_train_data_input(tr->job_data, idx[r], &s);
        T = s > T ? s : T;
    }
    tr_chunk_out *o = &tr->cout[item];
    memset(o, 0, sizeof *o);
    int rc = ws_reserve(tr->m, w, T, R);
    if (rc == ST_OK) {
        gather_chunk(tr, tr->job_data, idx, w, tr->m->n_in);
        chunk_forward(tr, w);
        if (tr->job_backward)
            for (size_t l = 0; l < tr->m->n_layers; l++)
                memset(w->gout[l], 0, T * R * tr->m->layers[l].n * sizeof(float));
        rc = chunk_loss(tr, w, tr->job_data, idx, tr->job_backward, tr->job_scale, o);
    }
    if (rc == ST_OK && tr->job_backward) {
        float *slot = tr->slots + item * tr->m->n_params;
        memset(slot, 0, tr->m->n_params * sizeof(float));
        chunk_backward(tr, w, slot);
    }
    o->rc = rc;
}

/* Runs a job over samples idx[0..n) and sums its chunks in order. */
static int run_job(st_train *tr, const st_train_data *d, const size_t *idx, size_t n,
                   bool backward, st_train_stats *out)
{
    const size_t n_chunks = (n + tr->p.chunk - 1) / tr->p.chunk;
    const size_t np = tr->m->n_params;
    if (n_chunks > tr->n_cout) {
        tr_chunk_out *c = realloc(tr->cout, n_chunks * sizeof *c);
        if (!c)
            return st_error(ST_ERR_NOMEM, "out of memory for %zu chunks", n_chunks);
        tr->cout = c;
        tr->n_cout = n_chunks;
    }
    if (backward && n_chunks > tr->n_slots) {
        free(tr->slots);
        tr->slots = malloc(n_chunks * (np ? np : 1) * sizeof(float));
        tr->n_slots = tr->slots ? n_chunks : 0;
        if (!tr->slots)
            return st_error(ST_ERR_NOMEM, "out of memory for the gradients of %zu chunks",
                            n_chunks);
    }
    if (backward)
        refresh_transposes(tr);
    tr->job_data = d;
    tr->job_idx = idx;
    tr->job_n = n;
    tr->job_backward = backward;
    tr->job_scale = 1.0f / (float)n;
    st_workers_run(tr->pool, run_chunk, tr, n_chunks);
    for (size_t c = 0; c < n_chunks; c++)
        if (tr->cout[c].rc != ST_OK)
            return tr->cout[c].rc;
    double loss = 0, spikes = 0, slots = 0, correct = 0;
    size_t samples = 0;
    for (size_t c = 0; c < n_chunks; c++) {
        loss += tr->cout[c].loss;
        spikes += tr->cout[c].spikes;
        slots += tr->cout[c].slots;
        correct += tr->cout[c].correct;
        samples += tr->cout[c].samples;
    }
    if (backward) {
        memcpy(tr->grad, tr->slots, np * sizeof(float));
        for (size_t c = 1; c < n_chunks; c++)
            tr_add(tr->grad, tr->slots + c * np, np);
    }
    if (out) {
        memset(out, 0, sizeof *out);
        out->loss = samples ? loss / (double)samples : 0;
        out->accuracy = samples ? correct / (double)samples : 0;
        out->rate = slots > 0 ? spikes / slots : 0;
        out->samples = samples;
        out->correct = (size_t)(correct + 0.5);
    }
    return ST_OK;
}

int st_train_gradient(st_train *self, const st_train_data *data, const size_t *idx, size_t n,
                      st_train_stats *out)
{
    if (n == 0)
        return st_error(ST_ERR_INVALID, "a gradient over no samples");
    for (size_t k = 0; k < n; k++)
        if (idx[k] >= st_train_data_count(data))
            return st_error(ST_ERR_INVALID, "sample %zu of a set of %zu", idx[k],
                            st_train_data_count(data));
    return run_job(self, data, idx, n, true, out);
}

float *st_train_grad(st_train *self, size_t k)
{
    return k < self->m->n_tensors ? self->grad + self->m->tensors[k].offset : NULL;
}

/* ---- the optimizer ---------------------------------------------------------------------- */

static double lr_at(const st_train_params *p, uint64_t s)
{
    if (p->warmup_steps && s < p->warmup_steps)
        return (double)p->lr * (double)(s + 1) / (double)p->warmup_steps;
    if (p->decay_steps > p->warmup_steps) {
        double prog = (double)(s - p->warmup_steps) / (double)(p->decay_steps - p->warmup_steps);
        prog = prog < 1.0 ? prog : 1.0;
        return p->lr_min + 0.5 * ((double)p->lr - p->lr_min) * (1.0 + cos(M_PI * prog));
    }
    return p->lr;
}

double st_train_next_lr(const st_train *self)
{
    return lr_at(&self->p, self->steps);
}

int st_train_apply(st_train *self, st_train_stats *out)
{
    st_train_model *m = self->m;
    const st_train_params *p = &self->p;
    const size_t np = m->n_params;
    double ss = 0;
    for (size_t e = 0; e < np; e++)
        ss += (double)self->grad[e] * self->grad[e];
    const double norm = sqrt(ss);
    if (!isfinite(norm))
        return st_error(ST_ERR_INVALID, "the gradient is not finite at step %llu: lower the "
                        "learning rate (%g) or clip the gradient norm",
                        (unsigned long long)self->steps, (double)p->lr);
    if (p->clip_norm > 0 && norm > p->clip_norm) {
        const float coef = (float)(p->clip_norm / (norm + 1e-6));
        for (size_t e = 0; e < np; e++)
            self->grad[e] *= coef;
    }
    const double lr = lr_at(p, self->steps);
    const uint64_t t = self->steps + 1;
    const double bc1 = 1.0 - pow(p->beta1, (double)t), bc2 = 1.0 - pow(p->beta2, (double)t);
    const float step_size = (float)(lr / bc1), bc2_sqrt = (float)sqrt(bc2);
    const float b1 = p->beta1, b2 = p->beta2, wd = p->weight_decay, eps = p->eps;
    const float decay_mul = (float)(1.0 - lr * wd);
    for (size_t k = 0; k < m->n_tensors; k++) {
        const tr_tensor *tt = &m->tensors[k];
        if (tt->project == 2 && !m->layers[tt->layer].p.train_delay)
            continue;
        float *x = m->params + tt->offset, *g = self->grad + tt->offset;
        float *m1 = self->mom1 + tt->offset, *m2 = self->mom2 + tt->offset;
        const bool dec = tt->decay && wd > 0;
        for (size_t e = 0; e < tt->count; e++) {
            float gg = g[e];
            if (dec && p->optimizer == ST_TRAIN_ADAMW)
                x[e] *= decay_mul;
            else if (dec)
                gg += wd * x[e];
            m1[e] = m1[e] * b1 + gg * (1.0f - b1);
            m2[e] = m2[e] * b2 + gg * gg * (1.0f - b2);
            const float denom = sqrtf(m2[e]) / bc2_sqrt + eps;
            x[e] -= step_size * (m1[e] / denom);
        }
    }
    self->steps++;
    st_train_model_changed(m);
    if (out) {
        out->grad_norm = norm;
        out->lr = lr;
    }
    return ST_OK;
}

int st_train_step(st_train *self, const st_train_data *data, const size_t *idx, size_t n,
                  st_train_stats *out)
{
    st_train_stats st;
    int rc = st_train_gradient(self, data, idx, n, &st);
    if (rc != ST_OK)
        return rc;
    if (!isfinite(st.loss))
        return st_error(ST_ERR_INVALID, "the loss is %g at step %llu: lower the learning rate "
                        "(%g) or clip the gradient norm", st.loss,
                        (unsigned long long)self->steps, (double)self->p.lr);
    rc = st_train_apply(self, &st);
    if (out)
        *out = st;
    return rc;
}

/* ---- epochs ---------------------------------------------------------------------------- */

int st_train_epoch(st_train *self, const st_train_data *data, st_train_progress_fn fn,
                   void *user_data, st_train_stats *out)
{
    const size_t n = st_train_data_count(data);
    int rc = st_train_check_data(self, data, "training data");
    if (rc != ST_OK)
        return rc;
    if (n > self->perm_cap) {
        size_t *p = realloc(self->perm, n * sizeof *p);
        if (!p)
            return st_error(ST_ERR_NOMEM, "out of memory for the epoch order");
        self->perm = p;
        self->perm_cap = n;
    }
    for (size_t k = 0; k < n; k++)
        self->perm[k] = k;
    tr_rng rng;
    tr_rng_seed(&rng, self->p.seed * 0x9E3779B97F4A7C15ULL + self->epochs + 1);
    for (size_t k = n - 1; k > 0; k--) {
        const size_t j = (size_t)(tr_rng_uniform(&rng) * (double)(k + 1));
        const size_t t = self->perm[k];
        self->perm[k] = self->perm[j < k + 1 ? j : k];
        self->perm[j < k + 1 ? j : k] = t;
    }
    const size_t B = self->p.batch, steps = (n + B - 1) / B;
    double loss = 0, rate_w = 0, correct = 0;
    size_t seen = 0;
    st_train_stats st = {0};
    for (size_t s = 0; s < steps; s++) {
        const size_t first = s * B, cnt = n - first < B ? n - first : B;
        if ((rc = st_train_step(self, data, self->perm + first, cnt, &st)) != ST_OK)
            return rc;
        loss += st.loss * (double)cnt;
        rate_w += st.rate * (double)cnt;
        correct += st.accuracy * (double)cnt;
        seen += cnt;
        if (fn) {
            const st_train_progress pr = {
                .epoch = self->epochs,
                .step = s + 1,
                .steps = steps,
                .loss = loss / (double)seen,
                .accuracy = correct / (double)seen,
                .rate = rate_w / (double)seen,
                .lr = st.lr,
            };
            fn(&pr, user_data);
        }
    }
    self->epochs++;
    if (out) {
        memset(out, 0, sizeof *out);
        out->loss = loss / (double)seen;
        out->accuracy = correct / (double)seen;
        out->rate = rate_w / (double)seen;
        out->samples = seen;
        out->correct = (size_t)(correct + 0.5);
        out->grad_norm = st.grad_norm;
        out->lr = st.lr;
    }
    return ST_OK;
}

int st_train_evaluate(st_train *self, const st_train_data *data, st_train_stats *out)
{
    int rc = st_train_check_data(self, data, "evaluation data");
    if (rc != ST_OK)
        return rc;
    const size_t n = st_train_data_count(data);
    size_t *idx = malloc(n * sizeof *idx);
    if (!idx)
        return st_error(ST_ERR_NOMEM, "out of memory");
    for (size_t k = 0; k < n; k++)
        idx[k] = k;
    rc = run_job(self, data, idx, n, false, out);
    free(idx);
    return rc;
}

int st_train_forward(st_train *self, const float *x, size_t steps, float *out)
{
    const st_train_model *m = self->m;
    if (steps == 0)
        return st_error(ST_ERR_INVALID, "a forward pass of 0 steps");
    tr_ws *w = &self->ws[0];
    int rc = ws_reserve(m, w, steps, 1);
    if (rc != ST_OK)
        return rc;
    memcpy(w->x, x, steps * m->n_in * sizeof(float));
    chunk_forward(self, w);
    const size_t K = st_train_model_outputs(m);
    memcpy(out, w->out[m->n_layers - 1], steps * K * sizeof(float));
    return ST_OK;
}

/* ---- for the checkpoints (train_ckpt.c) -------------------------------------------------- */

void tr_train_state(st_train *self, float **mom1, float **mom2, uint64_t **steps,
                    uint32_t **epochs)
{
    *mom1 = self->mom1;
    *mom2 = self->mom2;
    *steps = &self->steps;
    *epochs = &self->epochs;
}
