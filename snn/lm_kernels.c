/*  snn/lm_kernels.c - the language model's inner loops: the matrix
    products, the WKV recurrence, the gates and the LIF update, in portable
    C and in AVX2 + FMA, chosen once per model.

    Workload: n_embd 128, n_ffn 512, batch 1 (token by token) or a chunk of
    up to 16 tokens (parallel mode). Token by token, the matrices (3.4 MB
    for 4 layers x 128) stream from the last-level cache once per token, so
    the dot products are load-bound: eight rows at a time (eight FMA
    chains, one x load shared). In a chunk each block of rows stays in L1
    for every token, four rows x three tokens at a time. Every output is
    summed the same way on every path - one 8-lane accumulator over the
    columns in order, the same reduction tree, then the scalar tail in
    order - so a chunk and single tokens give the same bits.

    The per-channel loops take 8 channels a step with an exp of about 1 ulp
    (Cephes' polynomial), masked loads for the tail so every channel runs
    the same code; per token and layer that is 3 D exps (one per WKV pair,
    as one of each pair is e^0, and the gate) instead of 5 D calls to expf.
*/
#include "lm_impl.h"

#include <math.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define ST_LM_X86 1
#endif

/* ---- portable --------------------------------------------------------------- */

__attribute__((optimize("O3"))) static void matmul_generic(const float *restrict w, size_t rows,
                                                           size_t cols, const float *restrict x,
                                                           size_t ldx, size_t n,
                                                           float *restrict y, size_t ldy)
{
    for (size_t r = 0; r < rows; r++) {
        const float *restrict wr = w + r * cols;
        for (size_t t = 0; t < n; t++) {
            const float *restrict xt = x + t * ldx;
            float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
            size_t j = 0;
            for (; j + 8 <= cols; j += 8)
                for (size_t k = 0; k < 8; k++)
                    acc[k] += wr[j + k] * xt[j + k];
            float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) +
                      ((acc[2] + acc[6]) + (acc[3] + acc[7]));
            for (; j < cols; j++)
                s += wr[j] * xt[j];
            y[t * ldy + r] = s;
        }
    }
}

static inline float sigmoidf(float x)
{
    return 1.0f / (1.0f + expf(-x));
}

static void wkv_generic(const float *restrict k, const float *restrict v, const float *restrict r,
                        const float *restrict u, const float *restrict decay, float *restrict A,
                        float *restrict B, float *restrict P, size_t d, size_t n,
                        float *restrict rw)
{
    for (size_t t = 0; t < n; t++) {
        const float *kt = k + t * d, *vt = v + t * d, *rt = r + t * d;
        float *ot = rw + t * d;
        for (size_t c = 0; c < d; c++) {
            float kk = kt[c], vv = vt[c], p = P[c];
            /* q = max(p, u + k); of e^(p - q) and e^(u + k - q) one is e^0 */
            float dlt = p - (u[c] + kk);
            float e = expf(-fabsf(dlt));
            float e1 = dlt >= 0 ? 1.0f : e, e2 = dlt >= 0 ? e : 1.0f;
            float y = (e1 * A[c] + e2 * vv) / (e1 * B[c] + e2);
            /* q2 = max(p + w, k) */
            float pw = p + decay[c];
            dlt = pw - kk;
            e = expf(-fabsf(dlt));
            e1 = dlt >= 0 ? 1.0f : e;
            e2 = dlt >= 0 ? e : 1.0f;
            A[c] = e1 * A[c] + e2 * vv;
            B[c] = e1 * B[c] + e2;
            P[c] = dlt >= 0 ? pw : kk;
            ot[c] = sigmoidf(rt[c]) * y;
        }
    }
}

static void sigmul_generic(const float *restrict r, const float *restrict v, float *restrict out,
                           size_t count)
{
    for (size_t i = 0; i < count; i++)
        out[i] = sigmoidf(r[i]) * v[i];
}

__attribute__((optimize("O3"))) static void relu2_generic(float *h, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        float a = h[i] > 0.0f ? h[i] : 0.0f;
        h[i] = a * a;
    }
}

__attribute__((optimize("O3"))) static void lif_generic(const float *restrict c,
                                                        float *restrict mem, float *restrict x,
                                                        size_t d, size_t n)
{
    for (size_t t = 0; t < n; t++) {
        const float *ct = c + t * d;
        float *xt = x + t * d;
        for (size_t i = 0; i < d; i++) {
            float h = mem[i] + (ct[i] - mem[i]) * 0.5f;
            float s = h >= 1.0f ? 1.0f : 0.0f;
            mem[i] = h >= 1.0f ? 0.0f : h;
            xt[i] += s;
        }
    }
}

const st_lm_kernels st_lm_kernels_generic = {
    .name = "generic",
    .matmul = matmul_generic,
    .wkv = wkv_generic,
    .sigmul = sigmul_generic,
    .relu2 = relu2_generic,
    .lif = lif_generic,
};

/* ---- AVX2 + FMA -------------------------------------------------------------- */

#ifdef ST_LM_X86
#define AVX2 __attribute__((target("avx2,fma")))

bool st_lm_cpu_has_avx2(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

/* Lane k of the result: the sum of a_k's 8 lanes, always in the same tree,
   ((0+1)+(2+3)) + ((4+5)+(6+7)), whatever the other three are. */
AVX2 static inline __m128 reduce4(__m256 a0, __m256 a1, __m256 a2, __m256 a3)
{
    __m256 s = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));
    return _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
}

/* Adds the columns past the last multiple of 8, in order, then stores. */
AVX2 static inline void finish(__m128 sums, const float *const *wr, unsigned nr, const float *xt,
                               size_t j, size_t cols, float *yt)
{
    float o[4];
    _mm_storeu_ps(o, sums);
    for (unsigned q = 0; q < nr; q++) {
        float s = o[q];
        for (size_t jj = j; jj < cols; jj++)
            s += wr[q][jj] * xt[jj];
        yt[q] = s;
    }
}

AVX2 static void matmul_avx2(const float *restrict w, size_t rows, size_t cols,
                             const float *restrict x, size_t ldx, size_t n, float *restrict y,
                             size_t ldy)
{
    const size_t c8 = cols & ~(size_t)7;
    size_t t = 0;
    /* three tokens at a time, four rows: each weight load serves three FMAs
       (12 accumulators, 3 x vectors and the weight fill the 16 registers) */
    for (; t + 3 <= n; t += 3) {
        const float *x0 = x + t * ldx, *x1 = x0 + ldx, *x2 = x1 + ldx;
        size_t r = 0;
        for (; r + 4 <= rows; r += 4) {
            const float *wr[4] = {w + r * cols, w + (r + 1) * cols, w + (r + 2) * cols,
                                  w + (r + 3) * cols};
            __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
            __m256 b0 = a0, b1 = a0, b2 = a0, b3 = a0;
            __m256 c0 = a0, c1 = a0, c2 = a0, c3 = a0;
            for (size_t j = 0; j < c8; j += 8) {
                __m256 u = _mm256_loadu_ps(x0 + j), v = _mm256_loadu_ps(x1 + j),
                       q = _mm256_loadu_ps(x2 + j), wv;
                wv = _mm256_loadu_ps(wr[0] + j);
                a0 = _mm256_fmadd_ps(wv, u, a0);
                b0 = _mm256_fmadd_ps(wv, v, b0);
                c0 = _mm256_fmadd_ps(wv, q, c0);
                wv = _mm256_loadu_ps(wr[1] + j);
                a1 = _mm256_fmadd_ps(wv, u, a1);
                b1 = _mm256_fmadd_ps(wv, v, b1);
                c1 = _mm256_fmadd_ps(wv, q, c1);
                wv = _mm256_loadu_ps(wr[2] + j);
                a2 = _mm256_fmadd_ps(wv, u, a2);
                b2 = _mm256_fmadd_ps(wv, v, b2);
                c2 = _mm256_fmadd_ps(wv, q, c2);
                wv = _mm256_loadu_ps(wr[3] + j);
                a3 = _mm256_fmadd_ps(wv, u, a3);
                b3 = _mm256_fmadd_ps(wv, v, b3);
                c3 = _mm256_fmadd_ps(wv, q, c3);
            }
            finish(reduce4(a0, a1, a2, a3), wr, 4, x0, c8, cols, y + t * ldy + r);
            finish(reduce4(b0, b1, b2, b3), wr, 4, x1, c8, cols, y + (t + 1) * ldy + r);
            finish(reduce4(c0, c1, c2, c3), wr, 4, x2, c8, cols, y + (t + 2) * ldy + r);
        }
        for (; r < rows; r++) {
            const float *wr[1] = {w + r * cols};
            __m256 a = _mm256_setzero_ps(), b = a, c = a, z = a;
            for (size_t j = 0; j < c8; j += 8) {
                __m256 wv = _mm256_loadu_ps(wr[0] + j);
                a = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x0 + j), a);
                b = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x1 + j), b);
                c = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x2 + j), c);
            }
            finish(reduce4(a, z, z, z), wr, 1, x0, c8, cols, y + t * ldy + r);
            finish(reduce4(b, z, z, z), wr, 1, x1, c8, cols, y + (t + 1) * ldy + r);
            finish(reduce4(c, z, z, z), wr, 1, x2, c8, cols, y + (t + 2) * ldy + r);
        }
    }
    /* two tokens, four rows */
    for (; t + 2 <= n; t += 2) {
        const float *x0 = x + t * ldx, *x1 = x0 + ldx;
        size_t r = 0;
        for (; r + 4 <= rows; r += 4) {
            const float *wr[4] = {w + r * cols, w + (r + 1) * cols, w + (r + 2) * cols,
                                  w + (r + 3) * cols};
            __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
            __m256 b0 = a0, b1 = a0, b2 = a0, b3 = a0;
            for (size_t j = 0; j < c8; j += 8) {
                __m256 u = _mm256_loadu_ps(x0 + j), v = _mm256_loadu_ps(x1 + j);
                __m256 w0 = _mm256_loadu_ps(wr[0] + j), w1 = _mm256_loadu_ps(wr[1] + j);
                __m256 w2 = _mm256_loadu_ps(wr[2] + j), w3 = _mm256_loadu_ps(wr[3] + j);
                a0 = _mm256_fmadd_ps(w0, u, a0);
                b0 = _mm256_fmadd_ps(w0, v, b0);
                a1 = _mm256_fmadd_ps(w1, u, a1);
                b1 = _mm256_fmadd_ps(w1, v, b1);
                a2 = _mm256_fmadd_ps(w2, u, a2);
                b2 = _mm256_fmadd_ps(w2, v, b2);
                a3 = _mm256_fmadd_ps(w3, u, a3);
                b3 = _mm256_fmadd_ps(w3, v, b3);
            }
            finish(reduce4(a0, a1, a2, a3), wr, 4, x0, c8, cols, y + t * ldy + r);
            finish(reduce4(b0, b1, b2, b3), wr, 4, x1, c8, cols, y + (t + 1) * ldy + r);
        }
        for (; r < rows; r++) {
            const float *wr[1] = {w + r * cols};
            __m256 a = _mm256_setzero_ps(), b = a, z = a;
            for (size_t j = 0; j < c8; j += 8) {
                __m256 wv = _mm256_loadu_ps(wr[0] + j);
                a = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x0 + j), a);
                b = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x1 + j), b);
            }
            finish(reduce4(a, z, z, z), wr, 1, x0, c8, cols, y + t * ldy + r);
            finish(reduce4(b, z, z, z), wr, 1, x1, c8, cols, y + (t + 1) * ldy + r);
        }
    }
    /* one token: eight rows at a time, eight FMA chains */
    for (; t < n; t++) {
        const float *xt = x + t * ldx;
        float *yt = y + t * ldy;
        size_t r = 0;
        for (; r + 8 <= rows; r += 8) {
            const float *wr[8];
            for (unsigned q = 0; q < 8; q++)
                wr[q] = w + (r + q) * cols;
            __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0,
                   a6 = a0, a7 = a0;
            for (size_t j = 0; j < c8; j += 8) {
                __m256 u = _mm256_loadu_ps(xt + j);
                a0 = _mm256_fmadd_ps(_mm256_loadu_ps(wr[0] + j), u, a0);
                a1 = _mm256_fmadd_ps(_mm256_loadu_ps(wr[1] + j), u, a1);
                a2 = _mm256_fmadd_ps(_mm256_loadu_ps(wr[2] + j), u, a2);
                a3 = _mm256_fmadd_ps(_mm256_loadu_ps(wr[3] + j), u, a3);
                a4 = _mm256_fmadd_ps(_mm256_loadu_ps(wr[4] + j), u, a4);
                a5 = _mm256_fmadd_ps(_mm256_loadu_ps(wr[5] + j), u, a5);
                a6 = _mm256_fmadd_ps(_mm256_loadu_ps(wr[6] + j), u, a6);
                a7 = _mm256_fmadd_ps(_mm256_loadu_ps(wr[7] + j), u, a7);
            }
            finish(reduce4(a0, a1, a2, a3), wr, 4, xt, c8, cols, yt + r);
            finish(reduce4(a4, a5, a6, a7), wr + 4, 4, xt, c8, cols, yt + r + 4);
        }
        for (; r < rows; r++) {
            const float *wr[1] = {w + r * cols};
            __m256 a = _mm256_setzero_ps(), z = a;
            for (size_t j = 0; j < c8; j += 8)
                a = _mm256_fmadd_ps(_mm256_loadu_ps(wr[0] + j), _mm256_loadu_ps(xt + j), a);
            finish(reduce4(a, z, z, z), wr, 1, xt, c8, cols, yt + r);
        }
    }
}

/* e^x, about 1 ulp (Cephes expf: x = n ln2 + r, a degree-5 polynomial in r,
   times 2^n); 0 below -87.33 (where e^x leaves the normal floats). */
AVX2 static inline __m256 exp8(__m256 x)
{
    const __m256 lo = _mm256_set1_ps(-87.3365478515625f);
    __m256 zero = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
    x = _mm256_min_ps(x, _mm256_set1_ps(88.3762626647949f));
    x = _mm256_max_ps(x, lo);
    __m256 fx = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 z = _mm256_mul_ps(r, r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(p, z, _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(fx), _mm256_set1_epi32(127)),
                                  23);
    return _mm256_andnot_ps(zero, _mm256_mul_ps(p, _mm256_castsi256_ps(e)));
}

AVX2 static inline __m256 sigmoid8(__m256 x)
{
    const __m256 one = _mm256_set1_ps(1.0f);
    __m256 e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), x));
    return _mm256_div_ps(one, _mm256_add_ps(one, e));
}

/* Lanes below `left` on, for the masked tail. */
AVX2 static inline __m256i tail_mask(size_t left)
{
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)left), idx);
}

/* Loads and stores of 8 floats, or of the lanes `m` holds for the tail
   (masked: what lies past the end is neither read nor written). `full` is
   a constant where these are inlined, so the main loop has plain moves
   (masked stores are slow on some AMD cores). */
AVX2 static inline __m256 ld(const float *p, __m256i m, bool full)
{
    return full ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, m);
}

AVX2 static inline void st(float *p, __m256i m, bool full, __m256 v)
{
    if (full)
        _mm256_storeu_ps(p, v);
    else
        _mm256_maskstore_ps(p, m, v);
}

#define LOAD(p, m) ld((p), (m), full)
#define STORE(p, m, v) st((p), (m), full, (v))

AVX2 static inline void wkv8(const float *kt, const float *vt, const float *rt, const float *u,
                             const float *decay, float *A, float *B, float *P, float *ot,
                             __m256i m, bool full)
{
    const __m256 one = _mm256_set1_ps(1.0f), sign = _mm256_set1_ps(-0.0f);
    __m256 kk = LOAD(kt, m), vv = LOAD(vt, m), a = LOAD(A, m), b = LOAD(B, m), p = LOAD(P, m);
    __m256 dlt = _mm256_sub_ps(p, _mm256_add_ps(LOAD(u, m), kk));
    __m256 e = exp8(_mm256_or_ps(dlt, sign)); /* e^-|dlt| */
    __m256 ge = _mm256_cmp_ps(dlt, _mm256_setzero_ps(), _CMP_GE_OQ);
    __m256 e1 = _mm256_blendv_ps(e, one, ge), e2 = _mm256_blendv_ps(one, e, ge);
    __m256 y = _mm256_div_ps(_mm256_add_ps(_mm256_mul_ps(e1, a), _mm256_mul_ps(e2, vv)),
                             _mm256_add_ps(_mm256_mul_ps(e1, b), e2));
    __m256 pw = _mm256_add_ps(p, LOAD(decay, m));
    dlt = _mm256_sub_ps(pw, kk);
    e = exp8(_mm256_or_ps(dlt, sign));
    ge = _mm256_cmp_ps(dlt, _mm256_setzero_ps(), _CMP_GE_OQ);
    e1 = _mm256_blendv_ps(e, one, ge);
    e2 = _mm256_blendv_ps(one, e, ge);
    STORE(A, m, _mm256_add_ps(_mm256_mul_ps(e1, a), _mm256_mul_ps(e2, vv)));
    STORE(B, m, _mm256_add_ps(_mm256_mul_ps(e1, b), e2));
    STORE(P, m, _mm256_blendv_ps(kk, pw, ge));
    STORE(ot, m, _mm256_mul_ps(sigmoid8(LOAD(rt, m)), y));
}

AVX2 static void wkv_avx2(const float *restrict k, const float *restrict v,
                          const float *restrict r, const float *restrict u,
                          const float *restrict decay, float *restrict A, float *restrict B,
                          float *restrict P, size_t d, size_t n, float *restrict rw)
{
    const __m256i all = _mm256_set1_epi32(-1);
    for (size_t t = 0; t < n; t++) {
        const float *kt = k + t * d, *vt = v + t * d, *rt = r + t * d;
        float *ot = rw + t * d;
        size_t c = 0;
        for (; c + 8 <= d; c += 8)
            wkv8(kt + c, vt + c, rt + c, u + c, decay + c, A + c, B + c, P + c, ot + c, all,
                 true);
        if (c < d)
            wkv8(kt + c, vt + c, rt + c, u + c, decay + c, A + c, B + c, P + c, ot + c,
                 tail_mask(d - c), false);
    }
}

AVX2 static inline void sigmul8(const float *r, const float *v, float *out, __m256i m, bool full)
{
    STORE(out, m, _mm256_mul_ps(sigmoid8(LOAD(r, m)), LOAD(v, m)));
}

AVX2 static void sigmul_avx2(const float *restrict r, const float *restrict v,
                             float *restrict out, size_t count)
{
    size_t i = 0;
    for (; i + 8 <= count; i += 8)
        sigmul8(r + i, v + i, out + i, _mm256_set1_epi32(-1), true);
    if (i < count)
        sigmul8(r + i, v + i, out + i, tail_mask(count - i), false);
}

AVX2 static inline void relu28(float *h, __m256i m, bool full)
{
    __m256 a = _mm256_max_ps(LOAD(h, m), _mm256_setzero_ps());
    STORE(h, m, _mm256_mul_ps(a, a));
}

AVX2 static void relu2_avx2(float *h, size_t count)
{
    size_t i = 0;
    for (; i + 8 <= count; i += 8)
        relu28(h + i, _mm256_set1_epi32(-1), true);
    if (i < count)
        relu28(h + i, tail_mask(count - i), false);
}

AVX2 static inline void lif8(const float *c, float *mem, float *x, __m256i m, bool full)
{
    const __m256 half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.0f);
    __m256 v = LOAD(mem, m);
    __m256 h = _mm256_add_ps(v, _mm256_mul_ps(_mm256_sub_ps(LOAD(c, m), v), half));
    __m256 s = _mm256_cmp_ps(h, one, _CMP_GE_OQ);
    STORE(mem, m, _mm256_andnot_ps(s, h));
    STORE(x, m, _mm256_add_ps(LOAD(x, m), _mm256_and_ps(s, one)));
}

AVX2 static void lif_avx2(const float *restrict c, float *restrict mem, float *restrict x,
                          size_t d, size_t n)
{
    for (size_t t = 0; t < n; t++) {
        size_t i = 0;
        for (; i + 8 <= d; i += 8)
            lif8(c + t * d + i, mem + i, x + t * d + i, _mm256_set1_epi32(-1), true);
        if (i < d)
            lif8(c + t * d + i, mem + i, x + t * d + i, tail_mask(d - i), false);
    }
}

const st_lm_kernels st_lm_kernels_avx2 = {
    .name = "avx2",
    .matmul = matmul_avx2,
    .wkv = wkv_avx2,
    .sigmul = sigmul_avx2,
    .relu2 = relu2_avx2,
    .lif = lif_avx2,
};
#else
bool st_lm_cpu_has_avx2(void)
{
    return false;
}

const st_lm_kernels st_lm_kernels_avx2 = {
    .name = "generic",
    .matmul = matmul_generic,
    .wkv = wkv_generic,
    .sigmul = sigmul_generic,
    .relu2 = relu2_generic,
    .lif = lif_generic,
};
#endif
