/*  snn/train_impl.h - private to the trainer (snn/train*.c): the layer and
    model records, the kernels (train_kernels.c), the neuron steps forward
    and backward (train_neuron.c), the losses (train_loss.c). Not part of the
    API.

    Layout of every sequence buffer: time-major, [T][R][n] with R the rows
    (samples) of a chunk, so that one step of a layer is a contiguous
    [R][n] block and a whole sequence is one [T*R][n] matrix.
*/
#ifndef ST_TRAIN_IMPL_H
#define ST_TRAIN_IMPL_H

#include "train.h"

#if defined(__GNUC__)
#define ST_TR_HIDDEN __attribute__((visibility("hidden")))
#else
#define ST_TR_HIDDEN
#endif

#define TR_NONE ((size_t)-1)

/* ---- the model ---------------------------------------------------------------- */

typedef struct {
    st_train_layer_params p;
    st_snn_model model;     /* lif, lsnn, cubalif, li (dense, conv1d) */
    bool spiking;           /* its output is z */
    size_t n_in, n;         /* input and output lengths */
    uint32_t len_in, len_out; /* conv1d: positions per channel */
    /* offsets in the flat parameter vector, TR_NONE when absent */
    size_t o_w, o_b, o_rec, o_a, o_s, o_ad, o_th, o_d;
    /* fixed per-neuron coefficients (used when not trained): n each */
    float *fix_a, *fix_s, *fix_ad, *fix_th;
    /* the engine's rates per neuron, kept in step with a, s, ad */
    float *tau_mem, *tau_syn, *tau_adapt;
    float dtf, vl, vr, beta, w_in, r;
} tr_layer;

typedef struct {
    char name[ST_TRAIN_NAME_LEN + 8];
    size_t offset, count;
    unsigned ndim;
    size_t dims[3];
    bool decay;             /* weight decay applies (weights only) */
    int project;            /* 0 none, 1 rate (a, s, ad), 2 delay */
    int layer;
} tr_tensor;

#define TR_MAX_TENSORS (ST_TRAIN_MAX_LAYERS * 8)

struct st_train_model {
    size_t n_in, n_layers;
    tr_layer layers[ST_TRAIN_MAX_LAYERS];
    float *params;
    size_t n_params;
    tr_tensor tensors[TR_MAX_TENSORS];
    size_t n_tensors;
};

/* The per-neuron coefficient arrays a layer's kernels read. */
typedef struct {
    const float *a, *s, *ad, *th;
} tr_coef;
ST_TR_HIDDEN tr_coef tr_layer_coef(const st_train_model *m, const tr_layer *L);
/* For a trained rate tensor k (a, s, ad): the engine's tau_*_inv array
   kept beside it (NULL for other tensors), and setting both from saved
   taus, exactly (r = fl(dt * tau), as the engine computes it). */
ST_TR_HIDDEN float *tr_tensor_tau(st_train_model *m, size_t k);
ST_TR_HIDDEN void tr_tensor_set_tau(st_train_model *m, size_t k, const float *tau);

/* ---- kernels (train_kernels.c) ---------------------------------------------------

   Every C[i][j] receives its terms in ascending p, as fl(a*b) then an add
   (no fused multiply-add), at every SIMD width: the engine's arithmetic. */

/* C[i][j] += sum_p A(i, p) B[p][j], A(i, p) = A[i*ars + p*acs]. */
ST_TR_HIDDEN void tr_gemm(size_t m, size_t n, size_t k, const float *A, size_t ars, size_t acs,
                          const float *B, size_t ldb, float *C, size_t ldc);
/* The same with fused multiply-adds where the CPU has them (1.5 times the
   throughput on AMD Zen, whose front end the separate multiply and add
   saturate): for the backward, which no engine has to reproduce. The order
   of the terms is the same; the rounding is one per term, not two. */
ST_TR_HIDDEN void tr_gemm_fast(size_t m, size_t n, size_t k, const float *A, size_t ars,
                               size_t acs, const float *B, size_t ldb, float *C, size_t ldc);
/* Spike lists of a 0/1 matrix A [m][k], in CSR: the ascending indices of
   row i's ones are idx[off[i]..off[i+1]). off[0] must hold where row 0's
   list starts (0, or the end of earlier rows: lists are built step by step
   as the rows are made); off[1..m] are written. Returns the ones listed. */
ST_TR_HIDDEN size_t tr_list_rows(const float *A, size_t m, size_t k, uint32_t *off,
                                 uint32_t *idx);
/* C[i] += the rows B[p] for p in row i's list, in ascending p: the product
   of the listed 0/1 matrix and B, exactly as tr_gemm computes it. */
ST_TR_HIDDEN void tr_gemm_listed(size_t m, size_t n, const uint32_t *off, const uint32_t *idx,
                                 const float *B, size_t ldb, float *C, size_t ldc);
/* C[p] += G[i] for every p in row i's list, rows i ascending: the weight
   gradient A^T G of a listed 0/1 matrix. */
ST_TR_HIDDEN void tr_gemm_tn_listed(size_t m, size_t n, const uint32_t *off, const uint32_t *idx,
                                    const float *G, size_t ldg, float *C, size_t ldc);
/* dst[j][i] = src[i][j], src rows x cols. */
ST_TR_HIDDEN void tr_transpose(const float *src, size_t rows, size_t cols, float *dst);
/* y += x, n floats. */
ST_TR_HIDDEN void tr_add(float *y, const float *x, size_t n);
/* sum[j] += sum over rows i of G[i][j] (rows ascending). */
ST_TR_HIDDEN void tr_colsum(size_t m, size_t n, const float *G, float *sum);
/* Is every value 0 or 1? */
ST_TR_HIDDEN bool tr_binary(const float *x, size_t n);

/* ---- neurons (train_neuron.c) ------------------------------------------------------ */

typedef struct {
    st_train_surrogate surr;
    float alpha;
    bool smooth;          /* smooth-step forward */
    bool detach;          /* detach the reset */
} tr_spike_fn;

ST_TR_HIDDEN float tr_surr_smooth(const tr_spike_fn *f, float u);

/* One forward step of R rows of a layer's population: x [R][n] (the
   summed input), the state before the step v0, i0, b0 [R][n] (b: lsnn
   only), the state after it written to v1, i1, b1 (distinct from the
   inputs), output z or v to out [R][n]. */
ST_TR_HIDDEN void tr_neuron_forward(const tr_layer *L, const tr_coef *c, const tr_spike_fn *f,
                                    size_t R, const float *x, const float *v0, const float *i0,
                                    const float *b0, float *v1, float *i1, float *b1,
                                    float *out);

/* Gradient accumulators of the per-neuron parameters (NULL when not
   trained), n each. */
typedef struct {
    float *a, *s, *ad, *th;
} tr_coef_grad;

/* One backward step: from the saved state before the step (sv, si, sb)
   and its input x, the gradient of the output gout [R][n] and of the state
   after the step (gv, gi, gb, updated in place to the state before),
   writes the gradient of the input into gx (which must be x: in place) and adds to the
   per-neuron parameter gradients. scratch: (2 R + 4) n floats. */
ST_TR_HIDDEN void tr_neuron_backward(const tr_layer *L, const tr_coef *c, const tr_spike_fn *f,
                                     size_t R, const float *sv, const float *si, const float *sb,
                                     const float *x, const float *gout, float *gv, float *gi,
                                     float *gb, float *gx, const tr_coef_grad *g, float *scratch);

/* ---- losses (train_loss.c) ----------------------------------------------------------- */

/* Classification losses on one sample's read-out y [T][ld] (K outputs
   used, steps T): the loss, the predicted class in *pred, and when g is
   not NULL, scale * dloss/dy added into g (same layout). */
ST_TR_HIDDEN double tr_ce_loss(st_train_loss kind, const float *y, size_t ld, size_t T, size_t K,
                               int32_t label, float scale, float *g, int32_t *pred);

/* CTC: -log p(labels | y) with y [T][ld] logits over K outputs, blank
   index `blank`, labels as output indices (blank excluded). g as above.
   work: tr_ctc_work_len(T, L) doubles. Returns INFINITY when the labels
   cannot fit T steps. */
ST_TR_HIDDEN size_t tr_ctc_work_len(size_t T, size_t L, size_t K);
ST_TR_HIDDEN double tr_ctc_loss(const float *y, size_t ld, size_t T, size_t K, uint32_t blank,
                                const int32_t *labels, size_t L, float scale, float *g,
                                double *work);
/* Greedy CTC decoding (best path, repeats merged, blanks dropped) into
   out (room for T), returning its length. */
ST_TR_HIDDEN size_t tr_ctc_greedy(const float *y, size_t ld, size_t T, size_t K, uint32_t blank,
                                  int32_t *out);

/* ---- data (train_data.c) --------------------------------------------------------------- */

/* xorshift64* seeded through splitmix64: the one generator for weights,
   data and shuffles. */
typedef struct {
    uint64_t s;
} tr_rng;
ST_TR_HIDDEN void tr_rng_seed(tr_rng *r, uint64_t seed);
ST_TR_HIDDEN uint64_t tr_rng_next(tr_rng *r);
ST_TR_HIDDEN double tr_rng_uniform(tr_rng *r); /* [0, 1) */

/* ---- the trainer's state, for the checkpoints (train.c) -------------------------------- */

ST_TR_HIDDEN void tr_train_state(st_train *self, float **mom1, float **mom2, uint64_t **steps,
                                 uint32_t **epochs);

#endif
