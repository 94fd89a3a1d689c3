/*  snn/lm.c - the language model object: its weights, what is derived from
    them, its tokenizer, and its two file formats (the reference bundle's
    model.bin, and our own STNN container of kind "spikegpt").

    Workload: models of a few hundred KB to a few hundred MB, loaded once
    per process and shared read-only by every conversation. Loading reads
    the file once, checks every name, shape and value against the sizes in
    the header, copies the weights into one contiguous parameter block (the
    layout a trainer's optimizer wants) and precomputes, once, what would
    otherwise cost per token: w = -exp(time_decay), 1 - mix, and the first
    residual LN0([E >= 0]) of every token.

    Nothing here prints; a refused file is ST_ERR_FORMAT with st_errmsg()
    naming the file, the tensor and the reason.
*/
#include "lm_impl.h"

#include "snn.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the SpikeGPT model.bin format is little-endian; this build assumes a little-endian host"
#endif

#define REF_MAGIC 0x54475053u /* 'SPGT' little-endian */
#define REF_VERSION 1
#define OUR_KIND "spikegpt"
#define OUR_SCHEMA 1
#define MAX_LAYER 4096u
#define MAX_EMBD 65536u
#define MAX_VOCAB (1u << 24)
#define MAX_FFN (1u << 20)

st_lm_config st_lm_default_config(void)
{
    return (st_lm_config){.n_layer = 4, .n_embd = 128, .vocab = 256, .n_ffn = 512,
                          .spiking = true};
}

static int check_config(const st_lm_config *c)
{
    if (c->n_layer < 1 || c->n_layer > MAX_LAYER)
        return st_error(ST_ERR_INVALID, "language model: n_layer %u (1 to %u)", c->n_layer,
                        MAX_LAYER);
    if (c->n_embd < 1 || c->n_embd > MAX_EMBD)
        return st_error(ST_ERR_INVALID, "language model: n_embd %u (1 to %u)", c->n_embd,
                        MAX_EMBD);
    if (c->vocab < 1 || c->vocab > MAX_VOCAB)
        return st_error(ST_ERR_INVALID, "language model: vocab %u (1 to %u)", c->vocab, MAX_VOCAB);
    if (c->n_ffn < 1 || c->n_ffn > MAX_FFN)
        return st_error(ST_ERR_INVALID, "language model: n_ffn %u (1 to %u)", c->n_ffn, MAX_FFN);
    return ST_OK;
}

/* ---- the tensor table: names, shapes, places in the parameter block ------ */

typedef struct {
    st_lm_tensor_entry *e;
    size_t n;
    size_t at; /* floats laid out so far */
} table;

static void add(table *t, const char *name, unsigned ndim, uint32_t d0, uint32_t d1, uint32_t d2)
{
    st_lm_tensor_entry *e = &t->e[t->n++];
    snprintf(e->name, sizeof e->name, "%s", name);
    e->ndim = ndim;
    e->dims[0] = d0;
    e->dims[1] = ndim > 1 ? d1 : 0;
    e->dims[2] = ndim > 2 ? d2 : 0;
    e->count = (size_t)d0 * (ndim > 1 ? d1 : 1) * (ndim > 2 ? d2 : 1);
    e->data = (float *)(uintptr_t)t->at; /* an offset until the block exists */
    t->at += e->count;
}

static size_t tensor_count(uint32_t n_layer)
{
    return 6 + 18 * (size_t)n_layer;
}

/* Fills the table in the reference's state-dict order; with `params`, also
   sets every weight pointer. */
static void lay_out(st_lm_model *m, float *params)
{
    const uint32_t L = m->cfg.n_layer, D = m->cfg.n_embd, V = m->cfg.vocab, F = m->cfg.n_ffn;
    table t = {m->tensors, 0, 0};
    char nm[ST_LM_NAME_LEN];
#define T1(name, a) add(&t, name, 1, a, 0, 0)
#define T2(name, a, b) add(&t, name, 2, a, b, 0)
    T2("emb.weight", V, D);
    for (uint32_t i = 0; i < L; i++) {
#define NM(s) (snprintf(nm, sizeof nm, "blocks.%u.%s", (unsigned)i, s), nm)
        T1(NM("ln1.weight"), D);
        T1(NM("ln1.bias"), D);
        T1(NM("ln2.weight"), D);
        T1(NM("ln2.bias"), D);
        if (i == 0) {
            T1(NM("ln0.weight"), D);
            T1(NM("ln0.bias"), D);
        }
        T1(NM("att.time_decay"), D);
        T1(NM("att.time_first"), D);
        add(&t, NM("att.time_mix_k"), 3, 1, 1, D);
        add(&t, NM("att.time_mix_v"), 3, 1, 1, D);
        add(&t, NM("att.time_mix_r"), 3, 1, 1, D);
        T2(NM("att.key.weight"), D, D);
        T2(NM("att.value.weight"), D, D);
        T2(NM("att.receptance.weight"), D, D);
        T2(NM("att.output.weight"), D, D);
        add(&t, NM("ffn.time_mix_k"), 3, 1, 1, D);
        add(&t, NM("ffn.time_mix_r"), 3, 1, 1, D);
        T2(NM("ffn.key.weight"), F, D);
        T2(NM("ffn.receptance.weight"), D, D);
        T2(NM("ffn.value.weight"), D, F);
#undef NM
    }
    T1("ln_out.weight", D);
    T1("ln_out.bias", D);
    T2("head.weight", V, D);
#undef T1
#undef T2
    m->n_tensors = t.n;
    m->w.n_params = t.at;
    if (!params)
        return;
    m->w.params = params;
    for (size_t k = 0; k < t.n; k++)
        m->tensors[k].data = params + (size_t)(uintptr_t)m->tensors[k].data;
    /* the named pointers, in the same order as above */
    size_t k = 0;
    m->w.emb = m->tensors[k++].data;
    for (uint32_t i = 0; i < L; i++) {
        st_lm_block_weights *b = &m->blocks[i];
        float **order[] = {&b->ln1_w, &b->ln1_b, &b->ln2_w, &b->ln2_b};
        for (size_t j = 0; j < 4; j++)
            *order[j] = m->tensors[k++].data;
        if (i == 0) {
            m->w.ln0_w = m->tensors[k++].data;
            m->w.ln0_b = m->tensors[k++].data;
        }
        float **rest[] = {&b->att_time_decay, &b->att_time_first, &b->att_mix_k,
                          &b->att_mix_v,      &b->att_mix_r,      &b->att_key,
                          &b->att_value,      &b->att_receptance, &b->att_output,
                          &b->ffn_mix_k,      &b->ffn_mix_r,      &b->ffn_key,
                          &b->ffn_receptance, &b->ffn_value};
        for (size_t j = 0; j < sizeof rest / sizeof rest[0]; j++)
            *rest[j] = m->tensors[k++].data;
    }
    m->w.ln_out_w = m->tensors[k++].data;
    m->w.ln_out_b = m->tensors[k++].data;
    m->w.head = m->tensors[k++].data;
}

/* ---- construction ------------------------------------------------------- */

void st_lm_model_destroy(st_lm_model **self_p)
{
    if (!self_p || !*self_p)
        return;
    st_lm_model *m = *self_p;
    free(m->w.params);
    free(m->derived_mem);
    free(m->blocks);
    free(m->derived);
    free(m->tensors);
    st_lm_tokenizer_destroy(&m->tok);
    free(m);
    *self_p = NULL;
}

static void auto_kernel(st_lm_model *m)
{
    m->k = st_lm_cpu_has_avx2() ? &st_lm_kernels_avx2 : &st_lm_kernels_generic;
}

st_lm_model *st_lm_model_new(const st_lm_config *cfg, int *err)
{
    int e = check_config(cfg);
    st_lm_model *m = NULL;
    if (e != ST_OK)
        goto fail;
    e = ST_ERR_NOMEM;
    m = calloc(1, sizeof *m);
    if (!m)
        goto fail;
    m->cfg = *cfg;
    const size_t L = cfg->n_layer, D = cfg->n_embd, V = cfg->vocab;
    m->blocks = calloc(L, sizeof *m->blocks);
    m->derived = calloc(L, sizeof *m->derived);
    m->tensors = calloc(tensor_count(cfg->n_layer), sizeof *m->tensors);
    if (!m->blocks || !m->derived || !m->tensors)
        goto fail;
    lay_out(m, NULL);
    size_t n = m->w.n_params;
    float *params = aligned_alloc(ST_LM_ALIGN, ((n * sizeof(float)) | (ST_LM_ALIGN - 1)) + 1);
    if (!params)
        goto fail;
    memset(params, 0, n * sizeof(float));
    lay_out(m, params);
    m->w.blocks = m->blocks;
    size_t nd = 6 * L * D + V * D;
    m->derived_mem = aligned_alloc(ST_LM_ALIGN, ((nd * sizeof(float)) | (ST_LM_ALIGN - 1)) + 1);
    if (!m->derived_mem)
        goto fail;
    float *p = m->derived_mem;
    m->x0 = p, p += V * D;
    for (size_t i = 0; i < L; i++) {
        st_lm_block_derived *bd = &m->derived[i];
        float **slots[] = {&bd->decay, &bd->att_omk, &bd->att_omv, &bd->att_omr, &bd->ffn_omk,
                           &bd->ffn_omr};
        for (size_t j = 0; j < 6; j++)
            *slots[j] = p, p += D;
    }
    for (size_t i = 0; i < L; i++) {
        for (size_t c = 0; c < D; c++) {
            m->blocks[i].ln1_w[c] = 1;
            m->blocks[i].ln2_w[c] = 1;
        }
    }
    for (size_t c = 0; c < D; c++)
        m->w.ln0_w[c] = m->w.ln_out_w[c] = 1;
    m->tok = st_lm_tokenizer_default(cfg->vocab, &e);
    if (!m->tok)
        goto fail;
    auto_kernel(m);
    st_lm_model_prepare(m);
    return m;
fail:
    if (e == ST_ERR_NOMEM)
        st_error(ST_ERR_NOMEM, "language model: out of memory for %u layers x %u (vocab %u)",
                 cfg->n_layer, cfg->n_embd, cfg->vocab);
    st_lm_model_destroy(&m);
    if (err)
        *err = e;
    return NULL;
}

int st_lm_model_prepare(st_lm_model *m)
{
    const size_t D = m->cfg.n_embd, V = m->cfg.vocab;
    for (size_t k = 0; k < m->n_tensors; k++) {
        const st_lm_tensor_entry *t = &m->tensors[k];
        for (size_t i = 0; i < t->count; i++)
            if (!isfinite(t->data[i]))
                return st_error(ST_ERR_INVALID, "language model: tensor '%s' element %zu is %s",
                                t->name, i, isnan(t->data[i]) ? "NaN" : "infinite");
    }
    for (uint32_t i = 0; i < m->cfg.n_layer; i++) {
        const st_lm_block_weights *b = &m->blocks[i];
        st_lm_block_derived *d = &m->derived[i];
        for (size_t c = 0; c < D; c++) {
            d->decay[c] = -expf(b->att_time_decay[c]);
            d->att_omk[c] = 1.0f - b->att_mix_k[c];
            d->att_omv[c] = 1.0f - b->att_mix_v[c];
            d->att_omr[c] = 1.0f - b->att_mix_r[c];
            d->ffn_omk[c] = 1.0f - b->ffn_mix_k[c];
            d->ffn_omr[c] = 1.0f - b->ffn_mix_r[c];
        }
    }
    /* x0 = LN0([E >= 0]) (LN0(E) dense), normalised in place */
    for (size_t v = 0; v < V; v++) {
        const float *e = m->w.emb + v * D;
        float *row = m->x0 + v * D;
        for (size_t c = 0; c < D; c++)
            row[c] = m->cfg.spiking ? (e[c] >= 0.0f ? 1.0f : 0.0f) : e[c];
        st_lm_layer_norm(row, m->w.ln0_w, m->w.ln0_b, D, row);
    }
    return ST_OK;
}

/* ---- random initialisation (RWKV-4's) ------------------------------------ */

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

static void fill_uniform(float *w, size_t n, double bound, uint64_t *s)
{
    for (size_t i = 0; i < n; i++)
        w[i] = (float)((uniform01(s) * 2 - 1) * bound);
}

void st_lm_model_randomize(st_lm_model *m, uint64_t seed, float out_scale)
{
    const uint32_t L = m->cfg.n_layer, D = m->cfg.n_embd, V = m->cfg.vocab, F = m->cfg.n_ffn;
    uint64_t s = seed;
    for (size_t i = 0; i < (size_t)V * D; i++) {
        double u1 = uniform01(&s), u2 = uniform01(&s);
        m->w.emb[i] = (float)(sqrt(-2 * log(u1 > 0 ? u1 : 1e-300)) * cos(2 * M_PI * u2));
    }
    for (size_t c = 0; c < D; c++) {
        m->w.ln0_w[c] = m->w.ln_out_w[c] = 1;
        m->w.ln0_b[c] = m->w.ln_out_b[c] = 0;
    }
    for (uint32_t i = 0; i < L; i++) {
        st_lm_block_weights *b = &m->blocks[i];
        double r01 = L > 1 ? (double)i / (L - 1) : 0, r10 = 1.0 - (double)i / L;
        for (size_t c = 0; c < D; c++) {
            double x = (double)c / D;
            double h = D > 1 ? (double)c / (D - 1) : 0;
            b->ln1_w[c] = b->ln2_w[c] = 1;
            b->ln1_b[c] = b->ln2_b[c] = 0;
            b->att_time_decay[c] = (float)(-5 + 8 * pow(h, 0.7 + 1.3 * r01));
            b->att_time_first[c] = (float)(log(0.3) + ((double)((c + 1) % 3) - 1) * 0.5);
            b->att_mix_k[c] = (float)pow(x, r10);
            b->att_mix_v[c] = (float)(pow(x, r10) + 0.3 * r01);
            b->att_mix_r[c] = (float)pow(x, 0.5 * r10);
            b->ffn_mix_k[c] = b->ffn_mix_r[c] = (float)pow(x, r10);
        }
        double bd = 1 / sqrt((double)D), bf = 1 / sqrt((double)F);
        fill_uniform(b->att_key, (size_t)D * D, bd, &s);
        fill_uniform(b->att_value, (size_t)D * D, bd, &s);
        fill_uniform(b->att_receptance, (size_t)D * D, bd, &s);
        fill_uniform(b->att_output, (size_t)D * D, bd * out_scale, &s);
        fill_uniform(b->ffn_key, (size_t)F * D, bd, &s);
        fill_uniform(b->ffn_receptance, (size_t)D * D, bd, &s);
        fill_uniform(b->ffn_value, (size_t)D * F, bf * out_scale, &s);
    }
    fill_uniform(m->w.head, (size_t)V * D, 1 / sqrt((double)D), &s);
    st_lm_model_prepare(m);
}

/* ---- accessors ------------------------------------------------------------ */

const st_lm_config *st_lm_model_config(const st_lm_model *self)
{
    return &self->cfg;
}

st_lm_weights *st_lm_model_weights(st_lm_model *self)
{
    return &self->w;
}

size_t st_lm_model_tensor_count(const st_lm_model *self)
{
    return self->n_tensors;
}

int st_lm_model_tensor_at(const st_lm_model *self, size_t k, st_lm_tensor *out)
{
    if (k >= self->n_tensors)
        return st_error(ST_ERR_INVALID, "language model: tensor %zu of %zu", k, self->n_tensors);
    const st_lm_tensor_entry *e = &self->tensors[k];
    *out = (st_lm_tensor){.name = e->name, .ndim = e->ndim, .count = e->count, .data = e->data};
    memcpy(out->dims, e->dims, sizeof out->dims);
    return ST_OK;
}

const st_lm_tokenizer *st_lm_model_tokenizer(const st_lm_model *self)
{
    return self->tok;
}

int st_lm_model_set_tokenizer(st_lm_model *self, st_lm_tokenizer **tok)
{
    if (!tok || !*tok)
        return st_error(ST_ERR_INVALID, "language model: no tokenizer given");
    if (st_lm_tokenizer_size(*tok) > self->cfg.vocab)
        return st_error(ST_ERR_INVALID, "language model: a tokenizer of %zu pieces for a "
                                        "vocabulary of %u",
                        st_lm_tokenizer_size(*tok), self->cfg.vocab);
    st_lm_tokenizer_destroy(&self->tok);
    self->tok = *tok;
    *tok = NULL;
    return ST_OK;
}

int st_lm_model_use_kernel(st_lm_model *self, const char *name)
{
    if (!strcmp(name, "auto"))
        auto_kernel(self);
    else if (!strcmp(name, "generic"))
        self->k = &st_lm_kernels_generic;
    else if (!strcmp(name, "avx2")) {
        if (!st_lm_cpu_has_avx2())
            return st_error(ST_ERR_UNSUPPORTED, "language model: this CPU has no AVX2 and FMA");
        self->k = &st_lm_kernels_avx2;
    } else {
        return st_error(ST_ERR_INVALID, "language model: no kernel '%s' (auto, avx2, generic)",
                        name);
    }
    return ST_OK;
}

const char *st_lm_model_kernel(const st_lm_model *self)
{
    return self->k->name;
}

st_lm_model *st_lm_model_twin(const st_lm_model *self, bool spiking, int *err)
{
    st_lm_config cfg = self->cfg;
    cfg.spiking = spiking;
    st_lm_model *m = st_lm_model_new(&cfg, err);
    if (!m)
        return NULL;
    memcpy(m->w.params, self->w.params, self->w.n_params * sizeof(float));
    st_lm_tokenizer *tok = st_lm_tokenizer_copy(self->tok, err);
    if (!tok) {
        st_lm_model_destroy(&m);
        return NULL;
    }
    st_lm_model_set_tokenizer(m, &tok);
    m->k = self->k;
    st_lm_model_prepare(m);
    return m;
}

/* ---- the reference format ------------------------------------------------- */

typedef struct {
    const char *name;
    uint32_t name_len;
    int32_t ndim;
    int32_t dims[8];
    size_t data_at; /* byte offset of the data */
    size_t count;
    bool used;
} ref_record;

static int32_t get_i32(const unsigned char *p)
{
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

static const char *dims_text(char *buf, size_t cap, unsigned ndim, const int32_t *d)
{
    size_t at = (size_t)snprintf(buf, cap, "[");
    for (unsigned k = 0; k < ndim && at < cap; k++)
        at += (size_t)snprintf(buf + at, cap - at, "%s%d", k ? ", " : "", (int)d[k]);
    if (at < cap)
        snprintf(buf + at, cap - at, "]");
    return buf;
}

static int read_whole(const char *path, unsigned char **img, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return st_error(errno == ENOENT ? ST_ERR_NOT_FOUND : ST_ERR_IO,
                        "model file '%s': cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return st_error(ST_ERR_IO, "model file '%s': not a regular file", path);
    }
    size_t n = (size_t)st.st_size;
    unsigned char *buf = malloc(n ? n : 1);
    if (!buf) {
        fclose(f);
        return st_error(ST_ERR_NOMEM, "out of memory for model file '%s' (%zu bytes)", path, n);
    }
    size_t got = fread(buf, 1, n, f);
    bool bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return st_error(ST_ERR_IO, "model file '%s': read failed at offset %zu", path, got);
    }
    *img = buf;
    *len = got;
    return ST_OK;
}

static int ref_fail(int *err, int code)
{
    if (err)
        *err = code;
    return code;
}

static st_lm_model *load_reference(const char *path, const unsigned char *img, size_t len,
                                   int *err)
{
    ref_record *rec = NULL;
    st_lm_model *m = NULL;
    int e;
    char a[96], b[96];
    if (len < 24) {
        e = st_error(ST_ERR_FORMAT, "model file '%s': truncated: %zu bytes, the header alone is 24",
                     path, len);
        goto fail;
    }
    uint32_t magic = (uint32_t)get_i32(img);
    int32_t version = get_i32(img + 4), L = get_i32(img + 8), D = get_i32(img + 12),
            V = get_i32(img + 16), nt = get_i32(img + 20);
    if (magic != REF_MAGIC) {
        e = st_error(ST_ERR_FORMAT, "model file '%s': magic 0x%08x, expected 0x%08x ('SPGT')",
                     path, magic, REF_MAGIC);
        goto fail;
    }
    if (version != REF_VERSION) {
        e = st_error(ST_ERR_FORMAT, "model file '%s': format version %d, this reader knows %d",
                     path, (int)version, REF_VERSION);
        goto fail;
    }
    if (L < 1 || (uint32_t)L > MAX_LAYER || D < 1 || (uint32_t)D > MAX_EMBD || V < 1 ||
        (uint32_t)V > MAX_VOCAB) {
        e = st_error(ST_ERR_FORMAT, "model file '%s': header sizes n_layer %d, n_embd %d, vocab "
                                    "%d out of range (1..%u, 1..%u, 1..%u)",
                     path, (int)L, (int)D, (int)V, MAX_LAYER, MAX_EMBD, MAX_VOCAB);
        goto fail;
    }
    if (nt < 0 || (size_t)nt > (len - 24) / 8) {
        e = st_error(ST_ERR_FORMAT, "model file '%s': truncated: the header says %d tensors, "
                                    "which %zu bytes cannot hold",
                     path, (int)nt, len);
        goto fail;
    }
    rec = calloc((size_t)nt + 1, sizeof *rec);
    if (!rec) {
        e = st_error(ST_ERR_NOMEM, "out of memory reading '%s'", path);
        goto fail;
    }
    size_t at = 24;
    for (int32_t k = 0; k < nt; k++) {
        ref_record *r = &rec[k];
        if (len - at < 8) {
            e = st_error(ST_ERR_FORMAT, "model file '%s': truncated at byte %zu, in the header of "
                                        "tensor %d of %d",
                         path, at, (int)k, (int)nt);
            goto fail;
        }
        r->ndim = get_i32(img + at);
        int32_t name_len = get_i32(img + at + 4);
        if (r->ndim < 1 || r->ndim > 8 || name_len < 1 || name_len > 1023) {
            e = st_error(ST_ERR_FORMAT, "model file '%s': tensor %d at byte %zu: ndim %d (1..8), "
                                        "name length %d (1..1023)",
                         path, (int)k, at, (int)r->ndim, (int)name_len);
            goto fail;
        }
        at += 8;
        if (len - at < 4 * (size_t)r->ndim + (size_t)name_len) {
            e = st_error(ST_ERR_FORMAT, "model file '%s': truncated at byte %zu, in the header of "
                                        "tensor %d of %d",
                         path, len, (int)k, (int)nt);
            goto fail;
        }
        r->count = 1;
        for (int32_t d = 0; d < r->ndim; d++) {
            r->dims[d] = get_i32(img + at + 4 * (size_t)d);
            if (r->dims[d] < 0 || (r->dims[d] && r->count > SIZE_MAX / 8 / (size_t)r->dims[d])) {
                e = st_error(ST_ERR_FORMAT, "model file '%s': tensor %d: bad dimension %d", path,
                             (int)k, (int)r->dims[d]);
                goto fail;
            }
            r->count *= (size_t)r->dims[d];
        }
        at += 4 * (size_t)r->ndim;
        r->name = (const char *)img + at;
        r->name_len = (uint32_t)name_len;
        at += (size_t)name_len;
        for (int32_t j = 0; j < k; j++)
            if (rec[j].name_len == r->name_len && !memcmp(rec[j].name, r->name, r->name_len)) {
                e = st_error(ST_ERR_FORMAT, "model file '%s': tensor '%.*s' appears twice", path,
                             (int)r->name_len, r->name);
                goto fail;
            }
        if ((len - at) / 4 < r->count) {
            e = st_error(ST_ERR_FORMAT, "model file '%s': truncated: tensor '%.*s' %s needs %zu "
                                        "bytes at byte %zu, the file has %zu left",
                         path, (int)r->name_len, r->name,
                         dims_text(a, sizeof a, (unsigned)r->ndim, r->dims), 4 * r->count, at,
                         len - at);
            goto fail;
        }
        r->data_at = at;
        at += 4 * r->count;
    }
    if (at != len) {
        e = st_error(ST_ERR_FORMAT, "model file '%s': %zu bytes after the last of %d tensors", path,
                     len - at, (int)nt);
        goto fail;
    }
    /* As in the STNN reader: sizes the file's tensors cannot hold are
       refused before the model is allocated and prepared (a 1.9 KB file
       claiming n_embd 2301 took a quarter of a gigabyte and seconds; found
       by fuzz/fuzz_model.c). A lower bound: the embedding and each layer's
       four D x D attention matrices. */
    double have = 0;
    for (int32_t k = 0; k < nt; k++)
        have += (double)rec[k].count;
    if ((double)V * D + 4.0 * L * D * D > have) {
        e = st_error(ST_ERR_FORMAT, "model file '%s': the header (n_layer %d, n_embd %d, vocab %d) "
                                    "needs more weights than the file holds",
                     path, (int)L, (int)D, (int)V);
        goto fail;
    }
    /* n_ffn is not in the header: take it from the first channel mix */
    uint32_t F = 4 * (uint32_t)D;
    for (int32_t k = 0; k < nt; k++)
        if (rec[k].name_len == 23 && !memcmp(rec[k].name, "blocks.0.ffn.key.weight", 23) &&
            rec[k].ndim == 2 && rec[k].dims[0] >= 1 && (uint32_t)rec[k].dims[0] <= MAX_FFN)
            F = (uint32_t)rec[k].dims[0];
    st_lm_config cfg = {.n_layer = (uint32_t)L, .n_embd = (uint32_t)D, .vocab = (uint32_t)V,
                        .n_ffn = F, .spiking = true};
    m = st_lm_model_new(&cfg, &e);
    if (!m)
        goto fail;
    /* names first: an unknown name, then a missing one (a renamed tensor
       is reported by its unknown name), then shapes and values */
    ref_record **match = calloc(m->n_tensors, sizeof *match);
    if (!match) {
        e = st_error(ST_ERR_NOMEM, "out of memory reading '%s'", path);
        goto fail;
    }
    size_t missing = m->n_tensors;
    for (size_t t = 0; t < m->n_tensors; t++) {
        const char *name = m->tensors[t].name;
        size_t nl = strlen(name);
        for (int32_t k = 0; k < nt && !match[t]; k++)
            if (rec[k].name_len == nl && !memcmp(rec[k].name, name, nl))
                match[t] = &rec[k];
        if (match[t])
            match[t]->used = true;
        else if (missing == m->n_tensors)
            missing = t;
    }
    for (int32_t k = 0; k < nt; k++)
        if (!rec[k].used) {
            free(match);
            e = st_error(ST_ERR_FORMAT, "model file '%s': unknown tensor '%.*s' for n_layer %d "
                                        "(a SpikeGPT model has %zu tensors)",
                         path, (int)rec[k].name_len, rec[k].name, (int)L, tensor_count((uint32_t)L));
            goto fail;
        }
    for (size_t t = 0; t < m->n_tensors; t++) {
        st_lm_tensor_entry *te = &m->tensors[t];
        ref_record *r = match[t];
        int32_t want[3] = {(int32_t)te->dims[0], (int32_t)te->dims[1], (int32_t)te->dims[2]};
        if (!r || t == missing) {
            free(match);
            e = st_error(ST_ERR_FORMAT, "model file '%s': tensor '%s' %s is missing (n_layer %d, "
                                        "n_embd %d, vocab %d)",
                         path, te->name, dims_text(a, sizeof a, te->ndim, want), (int)L, (int)D,
                         (int)V);
            goto fail;
        }
        bool same = (unsigned)r->ndim == te->ndim;
        for (unsigned d = 0; same && d < te->ndim; d++)
            same = r->dims[d] == want[d];
        if (!same) {
            free(match);
            e = st_error(ST_ERR_FORMAT, "model file '%s': tensor '%s' has shape %s, expected %s "
                                        "(n_layer %d, n_embd %d, vocab %d, n_ffn %u)",
                         path, te->name, dims_text(a, sizeof a, (unsigned)r->ndim, r->dims),
                         dims_text(b, sizeof b, te->ndim, want), (int)L, (int)D, (int)V, F);
            goto fail;
        }
        memcpy(te->data, img + r->data_at, te->count * sizeof(float));
        for (size_t i = 0; i < te->count; i++)
            if (!isfinite(te->data[i])) {
                free(match);
                e = st_error(ST_ERR_FORMAT, "model file '%s': tensor '%s' element %zu is %s", path,
                             te->name, i, isnan(te->data[i]) ? "NaN" : "infinite");
                goto fail;
            }
    }
    free(match);
    free(rec);
    st_lm_model_prepare(m);
    return m;
fail:
    free(rec);
    st_lm_model_destroy(&m);
    ref_fail(err, e);
    return NULL;
}

static int write_all(FILE *f, const void *p, size_t n)
{
    return fwrite(p, 1, n, f) == n ? 0 : -1;
}

int st_lm_model_save_reference(const st_lm_model *self, const char *path)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp%ld", path, (long)getpid()) >= (int)sizeof tmp)
        return st_error(ST_ERR_IO, "model file '%s': path too long", path);
    FILE *f = fopen(tmp, "wb");
    if (!f)
        return st_error(ST_ERR_IO, "model file '%s': cannot create: %s", tmp, strerror(errno));
    int32_t head[6] = {(int32_t)REF_MAGIC,         REF_VERSION,
                       (int32_t)self->cfg.n_layer, (int32_t)self->cfg.n_embd,
                       (int32_t)self->cfg.vocab,   (int32_t)self->n_tensors};
    int bad = write_all(f, head, sizeof head);
    for (size_t k = 0; k < self->n_tensors && !bad; k++) {
        const st_lm_tensor_entry *t = &self->tensors[k];
        int32_t h[2 + 3] = {(int32_t)t->ndim, (int32_t)strlen(t->name)};
        for (unsigned d = 0; d < t->ndim; d++)
            h[2 + d] = (int32_t)t->dims[d];
        bad |= write_all(f, h, (2 + t->ndim) * sizeof(int32_t));
        bad |= write_all(f, t->name, strlen(t->name));
        bad |= write_all(f, t->data, t->count * sizeof(float));
    }
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, path) != 0) {
        int en = errno;
        remove(tmp);
        return st_error(ST_ERR_IO, "model file '%s': cannot write: %s", path, strerror(en));
    }
    return ST_OK;
}

/* ---- our format: an STNN container of kind "spikegpt" --------------------- */

int st_lm_model_save(const st_lm_model *self, const char *path)
{
    int e;
    st_tensor_file *f = st_tensor_file_new(OUR_KIND, &e);
    if (!f)
        return e;
    int32_t cfg[6] = {OUR_SCHEMA,
                      (int32_t)self->cfg.n_layer,
                      (int32_t)self->cfg.n_embd,
                      (int32_t)self->cfg.vocab,
                      (int32_t)self->cfg.n_ffn,
                      self->cfg.spiking ? 1 : 0};
    e = st_tensor_file_add(f, "lm/config", ST_DTYPE_I32, 1, (const uint64_t[]){6}, cfg);
    for (size_t k = 0; k < self->n_tensors && e == ST_OK; k++) {
        const st_lm_tensor_entry *t = &self->tensors[k];
        uint64_t dims[3] = {t->dims[0], t->dims[1], t->dims[2]};
        e = st_tensor_file_add(f, t->name, ST_DTYPE_F32, t->ndim, dims, t->data);
    }
    const uint32_t *off;
    const char *bytes = st_lm_tokenizer_bytes(self->tok, &off);
    size_t n = st_lm_tokenizer_size(self->tok);
    int32_t unk = st_lm_tokenizer_unk(self->tok);
    if (e == ST_OK)
        e = st_tensor_file_add(f, "tokenizer/bytes", ST_DTYPE_U8, 1, (const uint64_t[]){off[n]},
                               bytes);
    if (e == ST_OK)
        e = st_tensor_file_add(f, "tokenizer/offsets", ST_DTYPE_U32, 1,
                               (const uint64_t[]){n + 1}, off);
    if (e == ST_OK)
        e = st_tensor_file_add(f, "tokenizer/unk", ST_DTYPE_I32, 1, (const uint64_t[]){1}, &unk);
    if (e == ST_OK)
        e = st_tensor_file_save(f, path);
    st_tensor_file_destroy(&f);
    return e;
}

static st_lm_model *load_ours(const char *path, int *err)
{
    int e;
    st_lm_model *m = NULL;
    st_lm_tokenizer *tok = NULL;
    st_tensor_file *f = st_tensor_file_load(path, &e);
    if (!f)
        goto fail;
    if (strcmp(st_tensor_file_kind(f), OUR_KIND)) {
        e = st_error(ST_ERR_FORMAT, "model file '%s' holds a '%s', not a language model ('%s')",
                     path, st_tensor_file_kind(f), OUR_KIND);
        goto fail;
    }
    st_tensor t;
    if ((e = st_tensor_file_expect(f, "lm/config", ST_DTYPE_I32, 1, (const uint64_t[]){6}, &t)))
        goto fail;
    int32_t c[6];
    memcpy(c, t.data, sizeof c);
    if (c[0] != OUR_SCHEMA) {
        e = st_error(ST_ERR_FORMAT, "model file '%s': language model schema %d, this reader knows "
                                    "%d",
                     path, (int)c[0], OUR_SCHEMA);
        goto fail;
    }
    st_lm_config cfg = {.n_layer = (uint32_t)c[1], .n_embd = (uint32_t)c[2],
                        .vocab = (uint32_t)c[3], .n_ffn = (uint32_t)c[4], .spiking = c[5] != 0};
    if (c[1] < 1 || c[2] < 1 || c[3] < 1 || c[4] < 1 || (c[5] != 0 && c[5] != 1) ||
        check_config(&cfg) != ST_OK) {
        e = st_error(ST_ERR_FORMAT, "model file '%s': tensor 'lm/config': bad sizes n_layer %d, "
                                    "n_embd %d, vocab %d, n_ffn %d, spiking %d",
                     path, (int)c[1], (int)c[2], (int)c[3], (int)c[4], (int)c[5]);
        goto fail;
    }
    /* Sizes the file's tensors cannot hold are refused before anything is
       allocated for them: a few bytes must not claim gigabytes (found by
       fuzz/fuzz_model.c). A lower bound: the embedding and each layer's
       four D x D attention matrices. */
    double have = 0;
    for (size_t k = 0; k < st_tensor_file_count(f); k++)
        if (st_tensor_file_at(f, k, &t) == ST_OK)
            have += (double)t.nbytes;
    if ((double)cfg.vocab * cfg.n_embd + 4.0 * cfg.n_layer * cfg.n_embd * cfg.n_embd >
        have / sizeof(float)) {
        e = st_error(ST_ERR_FORMAT, "model file '%s': tensor 'lm/config' (n_layer %d, n_embd %d, "
                                    "vocab %d) needs more weights than the file holds",
                     path, (int)c[1], (int)c[2], (int)c[3]);
        goto fail;
    }
    m = st_lm_model_new(&cfg, &e);
    if (!m)
        goto fail;
    for (size_t k = 0; k < m->n_tensors; k++) {
        st_lm_tensor_entry *te = &m->tensors[k];
        uint64_t dims[3] = {te->dims[0], te->dims[1], te->dims[2]};
        if ((e = st_tensor_file_expect(f, te->name, ST_DTYPE_F32, te->ndim, dims, &t)))
            goto fail;
        memcpy(te->data, t.data, te->count * sizeof(float));
    }
    if (st_tensor_file_find(f, "tokenizer/offsets", &t) == ST_OK) {
        st_tensor tb, tu;
        if ((e = st_tensor_file_expect(f, "tokenizer/offsets", ST_DTYPE_U32, 1,
                                       (const uint64_t[]){0}, &t)) ||
            (e = st_tensor_file_expect(f, "tokenizer/bytes", ST_DTYPE_U8, 1,
                                       (const uint64_t[]){0}, &tb)) ||
            (e = st_tensor_file_expect(f, "tokenizer/unk", ST_DTYPE_I32, 1,
                                       (const uint64_t[]){1}, &tu)))
            goto fail;
        const uint32_t *off = t.data;
        size_t n = t.count ? t.count - 1 : 0;
        if (!t.count || off[n] != tb.count) {
            e = st_error(ST_ERR_FORMAT, "model file '%s': tensor 'tokenizer/offsets' does not end "
                                        "at the %zu bytes of 'tokenizer/bytes'",
                         path, (size_t)tb.count);
            goto fail;
        }
        int32_t unk;
        memcpy(&unk, tu.data, 4);
        tok = st_lm_tokenizer_from_bytes(tb.data, off, n, unk, &e);
        if (!tok || (e = st_lm_model_set_tokenizer(m, &tok))) {
            if (e != ST_ERR_NOMEM)
                e = st_error(ST_ERR_FORMAT, "model file '%s': %s", path, st_errmsg());
            goto fail;
        }
    }
    if ((e = st_lm_model_prepare(m))) {
        e = st_error(ST_ERR_FORMAT, "model file '%s': %s", path, st_errmsg());
        goto fail;
    }
    st_tensor_file_destroy(&f);
    return m;
fail:
    st_lm_tokenizer_destroy(&tok);
    st_lm_model_destroy(&m);
    st_tensor_file_destroy(&f);
    if (err)
        *err = e;
    return NULL;
}

st_lm_model *st_lm_model_load(const char *path, int *err)
{
    unsigned char head[4] = {0};
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = st_error(errno == ENOENT ? ST_ERR_NOT_FOUND : ST_ERR_IO,
                         "model file '%s': cannot open: %s", path, strerror(errno));
        if (err)
            *err = e;
        return NULL;
    }
    size_t got = fread(head, 1, 4, f);
    bool failed = ferror(f);
    fclose(f);
    if (failed) {
        int e = st_error(ST_ERR_IO, "model file '%s': cannot read (a folder?)", path);
        if (err)
            *err = e;
        return NULL;
    }
    if (got == 4 && !memcmp(head, "STNN", 4))
        return load_ours(path, err);
    if (got < 4 || memcmp(head, "SPGT", 4)) {
        int e = st_error(ST_ERR_FORMAT, "model file '%s': neither a SpikeGPT model.bin (magic "
                                        "'SPGT') nor a spiketalk model (magic 'STNN'): it starts "
                                        "with %02x %02x %02x %02x",
                         path, head[0], head[1], head[2], head[3]);
        if (err)
            *err = e;
        return NULL;
    }
    unsigned char *img = NULL;
    size_t len = 0;
    int e = read_whole(path, &img, &len);
    if (e) {
        if (err)
            *err = e;
        return NULL;
    }
    st_lm_model *m = load_reference(path, img, len, err);
    free(img);
    return m;
}
