/*  snn/snn_impl.h - private to snn/: the synaptic kernels network.c calls
    (snn/layer.c). Not installed, not part of the API.

    Every kernel accumulates into `out` (already holding the bias or the
    other sources' sums) and comes in two forms: *_spikes takes the ascending
    indices of the inputs that are 1 (all others 0) and only adds weights;
    *_mac takes a real-valued input and multiplies. For a 0/1 input both
    perform the same float additions in the same order for every output, so
    their results are bit-identical. Each returns the operations it did.
*/
#ifndef ST_SNN_IMPL_H
#define ST_SNN_IMPL_H

#include "snn.h"

#if defined(__GNUC__)
#define ST_HIDDEN __attribute__((visibility("hidden")))
#else
#define ST_HIDDEN
#endif

/* SIMD levels; st_snn_simd() is the one the kernels use now: the best the
   CPU has, capped by st_snn_simd_cap() (tests run the portable code with
   it; not thread safe, call it while nothing steps). */
enum { ST_SNN_SIMD_NONE = 0, ST_SNN_SIMD_AVX2 = 1 };
ST_HIDDEN int st_snn_simd(void);
ST_HIDDEN void st_snn_simd_cap(int level);

/* Dense weights, column-major: column i (the n_out weights from input i) is
   contiguous at w + i * ld, with ld = st_snn_dense_ld(n_out) >= n_out (a
   multiple of 8 from 8 outputs up, so that columns stay 32-byte aligned when
   w is). */
ST_HIDDEN size_t st_snn_dense_ld(size_t n_out);
ST_HIDDEN uint64_t st_snn_dense_spikes(const float *w, size_t ld, size_t n_out,
                                       const uint32_t *fired, size_t n_fired, float *out);
ST_HIDDEN uint64_t st_snn_dense_mac(const float *w, size_t ld, size_t n_in, size_t n_out,
                                    const float *x, float *out);

/* Spike lists: the ascending indices k with x[k] == 1 into fired (room for
   n), their number returned. st_snn_classify also says whether every value
   is 0 or 1. */
ST_HIDDEN size_t st_snn_list_spikes(const float *x, size_t n, uint32_t *fired);
ST_HIDDEN size_t st_snn_classify(const float *x, size_t n, uint32_t *fired, bool *binary);

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
/* For each 8-bit mask, the positions of its set bits, one a byte, lowest
   first (snn/layer.c). */
ST_HIDDEN extern const uint64_t st_snn_lane_list[256];

/* Appends k + each set bit of the 8-lane mask m to fired[nf..] without a
   branch: writes 8 entries (those past the new count are junk), so fired
   needs room for nf + 8 - which a list of n indices has whenever the lanes
   are [k, k + 8) with k + 8 <= n, since nf <= k. Returns the new count. */
__attribute__((target("avx2,popcnt"))) static inline size_t
st_snn_list8(uint32_t *fired, size_t nf, size_t k, unsigned m)
{
    const __m128i lanes = _mm_loadl_epi64((const __m128i *)(const void *)&st_snn_lane_list[m]);
    const __m256i idx = _mm256_add_epi32(_mm256_cvtepu8_epi32(lanes), _mm256_set1_epi32((int)k));
    _mm256_storeu_si256((__m256i *)(void *)(fired + nf), idx);
    return nf + (size_t)__builtin_popcount(m);
}
#endif

/* Sparse weights grouped by input: the targets of input i are
   idx[ptr[i]..ptr[i+1]) with weights val[...]. */
ST_HIDDEN uint64_t st_snn_sparse_spikes(const uint32_t *ptr, const uint32_t *idx,
                                        const float *val, const uint32_t *fired, size_t n_fired,
                                        float *out);
ST_HIDDEN uint64_t st_snn_sparse_mac(const uint32_t *ptr, const uint32_t *idx, const float *val,
                                     size_t n_in, const float *x, float *out);

/* Convolution; out_h, out_w from st_snn_conv_out_h/w. */
ST_HIDDEN uint64_t st_snn_conv_spikes(const st_snn_conv_shape *c, uint32_t out_h, uint32_t out_w,
                                      const float *w, const uint32_t *fired, size_t n_fired,
                                      float *out);
ST_HIDDEN uint64_t st_snn_conv_mac(const st_snn_conv_shape *c, uint32_t out_h, uint32_t out_w,
                                   const float *w, const float *x, float *out);
/* The multiply-accumulates st_snn_conv_mac does per call (padding skipped). */
ST_HIDDEN uint64_t st_snn_conv_mac_count(const st_snn_conv_shape *c, uint32_t out_h,
                                         uint32_t out_w);

/* Elementwise scale. */
ST_HIDDEN uint64_t st_snn_scale_spikes(const float *s, const uint32_t *fired, size_t n_fired,
                                       float *out);
ST_HIDDEN uint64_t st_snn_scale_mac(const float *s, size_t n, const float *x, float *out);

/* Read access to what a node stores, for the file formats (snn/model_file.c,
   snn/nir.c): borrowed pointers, valid as long as the net. */
typedef struct {
    const int *src;            /* source node ids, in order of connection */
    size_t n_src;
    const float *w;            /* dense: column-major [n_in][ld], ld = st_snn_dense_ld(n_out);
                                  conv: [co][ci/g][kh][kw];
                                  scale: factors; threshold: thresholds; else NULL */
    const float *bias;         /* n_out (conv: repeated per output position) or NULL */
    const uint32_t *ptr, *idx; /* sparse, grouped by input: ptr[n_in + 1], idx = outputs */
    const float *val;
    const uint32_t *delay;     /* delay: steps per element */
    st_snn_conv_shape conv;    /* conv */
} st_snn_node_data;
ST_HIDDEN int st_snn_net_node_data(const st_snn_net *net, int id, st_snn_node_data *out);

#endif
