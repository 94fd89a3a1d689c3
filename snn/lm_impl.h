/*  snn/lm_impl.h - private to the language model (snn/lm*.c,
    snn/tokenizer.c): the model and state structs and the kernels.
    Not installed, not part of the API.
*/
#ifndef ST_LM_IMPL_H
#define ST_LM_IMPL_H

#include "lm.h"

#if defined(__GNUC__)
#define ST_LM_HIDDEN __attribute__((visibility("hidden")))
#else
#define ST_LM_HIDDEN
#endif

#define ST_LM_ALIGN 64
/* Tokens per chunk of the parallel mode: a chunk's activations (about
   16 D + n_ffn floats a token) stay in L2 while every weight row is read
   once per chunk. */
#define ST_LM_CHUNK 16
#define ST_LM_P_INIT (-1e30f)
#define ST_LM_NAME_LEN 48

/*  The kernels of the forward pass, chosen once per model (the best the
    CPU has, or the portable ones): a table, not a test per call. Each
    processes its whole input the same way whatever the number of tokens,
    so one token and a chunk of tokens give the same bits. */
typedef struct {
    const char *name;
    /*  Y[t][r] = sum_j W[r][j] X[t][j] for r < rows, t < n: W row-major
        [rows][cols], X rows of ldx floats, Y rows of ldy floats. */
    void (*matmul)(const float *restrict w, size_t rows, size_t cols, const float *restrict x,
                   size_t ldx, size_t n, float *restrict y, size_t ldy);
    /*  The WKV recurrence over n tokens of d channels (k, v, r: n x d),
        state A, B, P (d each) updated; rw = sigmoid(r) * wkv. */
    void (*wkv)(const float *restrict k, const float *restrict v, const float *restrict r,
                const float *restrict u, const float *restrict decay, float *restrict A,
                float *restrict B, float *restrict P, size_t d, size_t n, float *restrict rw);
    /*  out = sigmoid(r) * v, count floats. */
    void (*sigmul)(const float *restrict r, const float *restrict v, float *restrict out,
                   size_t count);
    /*  h = relu(h)^2 in place, count floats. */
    void (*relu2)(float *h, size_t count);
    /*  LIF over n tokens of d channels: h = mem + (c - mem)/2, s = [h >= 1],
        mem = s ? 0 : h, x += s. */
    void (*lif)(const float *restrict c, float *restrict mem, float *restrict x, size_t d,
                size_t n);
} st_lm_kernels;

ST_LM_HIDDEN extern const st_lm_kernels st_lm_kernels_generic;
ST_LM_HIDDEN extern const st_lm_kernels st_lm_kernels_avx2; /* AVX2 + FMA */
ST_LM_HIDDEN bool st_lm_cpu_has_avx2(void);

/* LayerNorm (eps 1e-5, biased variance) of d floats; y may be x. */
ST_LM_HIDDEN void st_lm_layer_norm(const float *x, const float *restrict g,
                                   const float *restrict b, size_t d, float *y);

/* Derived per block (st_lm_model_prepare). */
typedef struct {
    float *decay;                /* w = -exp(time_decay) */
    float *att_omk, *att_omv, *att_omr; /* 1 - mix */
    float *ffn_omk, *ffn_omr;
} st_lm_block_derived;

typedef struct {
    char name[ST_LM_NAME_LEN];
    unsigned ndim;
    uint32_t dims[3];
    size_t count;
    float *data;
} st_lm_tensor_entry;

struct st_lm_model {
    st_lm_config cfg;
    st_lm_weights w;
    st_lm_block_weights *blocks;
    st_lm_block_derived *derived;
    float *derived_mem;          /* the derived floats, one block */
    float *x0;                   /* V x D: the first residual for each token */
    st_lm_tensor_entry *tensors; /* in reference order */
    size_t n_tensors;
    st_lm_tokenizer *tok;        /* never NULL */
    const st_lm_kernels *k;
};

struct st_lm_state {
    const st_lm_model *model;
    uint32_t n_layer, n_embd, vocab, n_ffn;
    uint64_t n_tokens;
    float *block;  /* 7 D L: the recurrent state */
    /* chunk scratch, ST_LM_CHUNK rows each */
    float *x, *a, *xk, *xv, *xr, *k, *v, *r, *rw, *o, *h, *lo;
    float *logits;    /* V: the logits after the last token fed with logits */
    bool have_logits; /* whether they belong to the last token fed */
    void *mem;
};

/* Tokenizer internals shared with the model files. */
ST_LM_HIDDEN st_lm_tokenizer *st_lm_tokenizer_default(uint32_t vocab, int *err);
/* The pieces as one byte string and vocab+1 offsets (borrowed). */
ST_LM_HIDDEN const char *st_lm_tokenizer_bytes(const st_lm_tokenizer *self,
                                               const uint32_t **offsets);
ST_LM_HIDDEN st_lm_tokenizer *st_lm_tokenizer_from_bytes(const char *bytes, const uint32_t *offsets,
                                                         size_t n, int32_t unk, int *err);

#endif
