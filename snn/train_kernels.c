/*  snn/train_kernels.c - the matrix kernels of training: C += A B with A
    real (multiply-accumulate) or 0/1 spikes (add the rows that fired), the
    spike-driven weight gradient, and small vector helpers.

    Tuned for the products of BPTT over a chunk of 8 samples: per time step
    [8 x 256] x [256 x 256] (the recurrent weights, forward and backward),
    and once per sequence [800 x n_in] x [n_in x 256] (feed-forward inputs
    of all steps at once) and its transposes for the weight gradients. The
    AVX2 kernel keeps a 4 x 16 tile of C in eight registers and streams a
    16-float panel of B (16 KB for K = 256, resident in L1) past it;
    spike inputs at the 5-20 % rates of a trained layer skip 80-95 % of the
    work through the event path.

    Exactness: every C element receives its terms in ascending p as a
    rounded product then a rounded add (no FMA), in the AVX2 and the
    portable code alike, so the trainer's forward equals the engine's
    (snn/layer.c) to the bit, and results never depend on the thread or the
    alignment of a buffer. The AVX2 code is chosen at run time.
*/
#include "train_impl.h"

#include <math.h>
#include <string.h>

#if defined(__GNUC__) && !defined(__clang__)
#define ST_VECTORIZE                                                                               \
    __attribute__((optimize("tree-vectorize", "vect-cost-model=dynamic", "no-trapping-math")))
#else
#define ST_VECTORIZE
#endif

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define TR_X86 1
#define TR_AVX2 __attribute__((target("avx2")))
#define TR_AVX2_FMA __attribute__((target("avx2,fma")))
#else
#define TR_X86 0
#endif

/* __builtin_cpu_supports reads what libgcc found at start-up: cheap, and
   safe from any thread. */
static bool have_avx2(void)
{
#if TR_X86
    return __builtin_cpu_supports("avx2");
#else
    return false;
#endif
}

static bool have_fma(void)
{
#if TR_X86
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return false;
#endif
}

/* The vector helpers also get an AVX2 clone chosen at load time (the same
   operations per element, so the same bits). */
#if TR_X86 && !defined(__clang__)
#define TR_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define TR_CLONES
#endif

/* ---- portable ------------------------------------------------------------------- */

TR_CLONES ST_VECTORIZE static void axpy(float *restrict c, const float *restrict b, float a,
                                        size_t n)
{
    for (size_t j = 0; j < n; j++)
        c[j] += a * b[j];
}

TR_CLONES ST_VECTORIZE static void addv(float *restrict c, const float *restrict b, size_t n)
{
    for (size_t j = 0; j < n; j++)
        c[j] += b[j];
}

static void gemm_generic(size_t m, size_t n, size_t k, const float *A, size_t ars, size_t acs,
                         const float *B, size_t ldb, float *C, size_t ldc)
{
    for (size_t i = 0; i < m; i++)
        for (size_t p = 0; p < k; p++)
            axpy(C + i * ldc, B + p * ldb, A[i * ars + p * acs], n);
}

static size_t list_fired(const float *a, size_t k, uint32_t *fired)
{
    size_t nf = 0;
    for (size_t p = 0; p < k; p++) {
        fired[nf] = (uint32_t)p;
        nf += a[p] != 0.0f;
    }
    return nf;
}

/* ---- AVX2 ---------------------------------------------------------------------------- */

#if TR_X86

#define LD(p) _mm256_loadu_ps(p)
#define ST(p, v) _mm256_storeu_ps(p, v)
#define MAC(c, a, b) c = _mm256_add_ps(c, _mm256_mul_ps(a, b))
#define FMAC(c, a, b) c = _mm256_fmadd_ps(a, b, c)

TR_AVX2 static void gemm_avx2(size_t m, size_t n, size_t k, const float *A, size_t ars,
                              size_t acs, const float *B, size_t ldb, float *C, size_t ldc)
{
    size_t j = 0;
    for (; j + 16 <= n; j += 16) {
        size_t i = 0;
        for (; i + 4 <= m; i += 4) {
            float *c0 = C + i * ldc + j, *c1 = c0 + ldc, *c2 = c1 + ldc, *c3 = c2 + ldc;
            __m256 r00 = LD(c0), r01 = LD(c0 + 8), r10 = LD(c1), r11 = LD(c1 + 8);
            __m256 r20 = LD(c2), r21 = LD(c2 + 8), r30 = LD(c3), r31 = LD(c3 + 8);
            const float *a0 = A + i * ars, *a1 = a0 + ars, *a2 = a1 + ars, *a3 = a2 + ars;
            const float *b = B + j;
            for (size_t p = 0; p < k; p++, b += ldb) {
                const size_t q = p * acs;
                const __m256 b0 = LD(b), b1 = LD(b + 8);
                __m256 x = _mm256_broadcast_ss(a0 + q);
                MAC(r00, x, b0);
                MAC(r01, x, b1);
                x = _mm256_broadcast_ss(a1 + q);
                MAC(r10, x, b0);
                MAC(r11, x, b1);
                x = _mm256_broadcast_ss(a2 + q);
                MAC(r20, x, b0);
                MAC(r21, x, b1);
                x = _mm256_broadcast_ss(a3 + q);
                MAC(r30, x, b0);
                MAC(r31, x, b1);
            }
            ST(c0, r00);
            ST(c0 + 8, r01);
            ST(c1, r10);
            ST(c1 + 8, r11);
            ST(c2, r20);
            ST(c2 + 8, r21);
            ST(c3, r30);
            ST(c3 + 8, r31);
        }
        for (; i < m; i++) {
            float *c0 = C + i * ldc + j;
            __m256 r0 = LD(c0), r1 = LD(c0 + 8);
            const float *a0 = A + i * ars, *b = B + j;
            for (size_t p = 0; p < k; p++, b += ldb) {
                const __m256 x = _mm256_broadcast_ss(a0 + p * acs);
                MAC(r0, x, LD(b));
                MAC(r1, x, LD(b + 8));
            }
            ST(c0, r0);
            ST(c0 + 8, r1);
        }
    }
    for (; j + 8 <= n; j += 8)
        for (size_t i = 0; i < m; i++) {
            float *c0 = C + i * ldc + j;
            __m256 r0 = LD(c0);
            const float *a0 = A + i * ars, *b = B + j;
            for (size_t p = 0; p < k; p++, b += ldb)
                MAC(r0, _mm256_broadcast_ss(a0 + p * acs), LD(b));
            ST(c0, r0);
        }
    for (; j < n; j++)
        for (size_t i = 0; i < m; i++) {
            float t = C[i * ldc + j];
            for (size_t p = 0; p < k; p++)
                t += A[i * ars + p * acs] * B[p * ldb + j];
            C[i * ldc + j] = t;
        }
}

/* With FMA, a 4 x 24 tile: twelve accumulators cover the FMA's latency (5
   cycles on Zen 2, two pipes), which eight do not. */
#define ROW24(r0, r1, r2, a, q)                                                                    \
    do {                                                                                           \
        const __m256 x_ = _mm256_broadcast_ss((a) + (q));                                          \
        FMAC(r0, x_, b0);                                                                          \
        FMAC(r1, x_, b1);                                                                          \
        FMAC(r2, x_, b2);                                                                          \
    } while (0)

TR_AVX2_FMA static void gemm_fma(size_t m, size_t n, size_t k, const float *A, size_t ars,
                              size_t acs, const float *B, size_t ldb, float *C, size_t ldc)
{
    size_t j = 0;
    for (; j + 24 <= n && m >= 4; j += 24) {
        size_t i = 0;
        for (; i + 4 <= m; i += 4) {
            float *c0 = C + i * ldc + j, *c1 = c0 + ldc, *c2 = c1 + ldc, *c3 = c2 + ldc;
            __m256 r00 = LD(c0), r01 = LD(c0 + 8), r02 = LD(c0 + 16);
            __m256 r10 = LD(c1), r11 = LD(c1 + 8), r12 = LD(c1 + 16);
            __m256 r20 = LD(c2), r21 = LD(c2 + 8), r22 = LD(c2 + 16);
            __m256 r30 = LD(c3), r31 = LD(c3 + 8), r32 = LD(c3 + 16);
            const float *a0 = A + i * ars, *a1 = a0 + ars, *a2 = a1 + ars, *a3 = a2 + ars;
            const float *b = B + j;
            for (size_t p = 0; p < k; p++, b += ldb) {
                const size_t q = p * acs;
                const __m256 b0 = LD(b), b1 = LD(b + 8), b2 = LD(b + 16);
                ROW24(r00, r01, r02, a0, q);
                ROW24(r10, r11, r12, a1, q);
                ROW24(r20, r21, r22, a2, q);
                ROW24(r30, r31, r32, a3, q);
            }
            ST(c0, r00);
            ST(c0 + 8, r01);
            ST(c0 + 16, r02);
            ST(c1, r10);
            ST(c1 + 8, r11);
            ST(c1 + 16, r12);
            ST(c2, r20);
            ST(c2 + 8, r21);
            ST(c2 + 16, r22);
            ST(c3, r30);
            ST(c3 + 8, r31);
            ST(c3 + 16, r32);
        }
        for (; i < m; i++) {
            float *c0 = C + i * ldc + j;
            __m256 r0 = LD(c0), r1 = LD(c0 + 8), r2 = LD(c0 + 16);
            const float *a0 = A + i * ars, *b = B + j;
            for (size_t p = 0; p < k; p++, b += ldb) {
                const __m256 b0 = LD(b), b1 = LD(b + 8), b2 = LD(b + 16);
                ROW24(r0, r1, r2, a0, p * acs);
            }
            ST(c0, r0);
            ST(c0 + 8, r1);
            ST(c0 + 16, r2);
        }
    }
    for (; j + 16 <= n; j += 16) {
        size_t i = 0;
        for (; i + 4 <= m; i += 4) {
            float *c0 = C + i * ldc + j, *c1 = c0 + ldc, *c2 = c1 + ldc, *c3 = c2 + ldc;
            __m256 r00 = LD(c0), r01 = LD(c0 + 8), r10 = LD(c1), r11 = LD(c1 + 8);
            __m256 r20 = LD(c2), r21 = LD(c2 + 8), r30 = LD(c3), r31 = LD(c3 + 8);
            const float *a0 = A + i * ars, *a1 = a0 + ars, *a2 = a1 + ars, *a3 = a2 + ars;
            const float *b = B + j;
            for (size_t p = 0; p < k; p++, b += ldb) {
                const size_t q = p * acs;
                const __m256 b0 = LD(b), b1 = LD(b + 8);
                __m256 x = _mm256_broadcast_ss(a0 + q);
                FMAC(r00, x, b0);
                FMAC(r01, x, b1);
                x = _mm256_broadcast_ss(a1 + q);
                FMAC(r10, x, b0);
                FMAC(r11, x, b1);
                x = _mm256_broadcast_ss(a2 + q);
                FMAC(r20, x, b0);
                FMAC(r21, x, b1);
                x = _mm256_broadcast_ss(a3 + q);
                FMAC(r30, x, b0);
                FMAC(r31, x, b1);
            }
            ST(c0, r00);
            ST(c0 + 8, r01);
            ST(c1, r10);
            ST(c1 + 8, r11);
            ST(c2, r20);
            ST(c2 + 8, r21);
            ST(c3, r30);
            ST(c3 + 8, r31);
        }
        for (; i < m; i++) {
            float *c0 = C + i * ldc + j;
            __m256 r0 = LD(c0), r1 = LD(c0 + 8);
            const float *a0 = A + i * ars, *b = B + j;
            for (size_t p = 0; p < k; p++, b += ldb) {
                const __m256 x = _mm256_broadcast_ss(a0 + p * acs);
                FMAC(r0, x, LD(b));
                FMAC(r1, x, LD(b + 8));
            }
            ST(c0, r0);
            ST(c0 + 8, r1);
        }
    }
    for (; j + 8 <= n; j += 8)
        for (size_t i = 0; i < m; i++) {
            float *c0 = C + i * ldc + j;
            __m256 r0 = LD(c0);
            const float *a0 = A + i * ars, *b = B + j;
            for (size_t p = 0; p < k; p++, b += ldb)
                FMAC(r0, _mm256_broadcast_ss(a0 + p * acs), LD(b));
            ST(c0, r0);
        }
    for (; j < n; j++)
        for (size_t i = 0; i < m; i++) {
            float t = C[i * ldc + j];
            for (size_t p = 0; p < k; p++)
                t = fmaf(A[i * ars + p * acs], B[p * ldb + j], t);
            C[i * ldc + j] = t;
        }
}

/* One row: the rows of B listed in fired added to c, 64 outputs in eight
   registers at a time (each B row loaded once, c loaded and stored once). */
TR_AVX2 static void add_rows_avx2(float *c, const float *B, size_t ldb, size_t n,
                                  const uint32_t *fired, size_t nf)
{
    size_t j = 0;
    for (; j + 64 <= n; j += 64) {
        __m256 r0 = LD(c + j), r1 = LD(c + j + 8), r2 = LD(c + j + 16), r3 = LD(c + j + 24);
        __m256 r4 = LD(c + j + 32), r5 = LD(c + j + 40), r6 = LD(c + j + 48);
        __m256 r7 = LD(c + j + 56);
        for (size_t f = 0; f < nf; f++) {
            const float *b = B + (size_t)fired[f] * ldb + j;
            r0 = _mm256_add_ps(r0, LD(b));
            r1 = _mm256_add_ps(r1, LD(b + 8));
            r2 = _mm256_add_ps(r2, LD(b + 16));
            r3 = _mm256_add_ps(r3, LD(b + 24));
            r4 = _mm256_add_ps(r4, LD(b + 32));
            r5 = _mm256_add_ps(r5, LD(b + 40));
            r6 = _mm256_add_ps(r6, LD(b + 48));
            r7 = _mm256_add_ps(r7, LD(b + 56));
        }
        ST(c + j, r0);
        ST(c + j + 8, r1);
        ST(c + j + 16, r2);
        ST(c + j + 24, r3);
        ST(c + j + 32, r4);
        ST(c + j + 40, r5);
        ST(c + j + 48, r6);
        ST(c + j + 56, r7);
    }
    for (; j + 8 <= n; j += 8) {
        __m256 r0 = LD(c + j);
        for (size_t f = 0; f < nf; f++)
            r0 = _mm256_add_ps(r0, LD(B + (size_t)fired[f] * ldb + j));
        ST(c + j, r0);
    }
    for (; j < n; j++) {
        float t = c[j];
        for (size_t f = 0; f < nf; f++)
            t += B[(size_t)fired[f] * ldb + j];
        c[j] = t;
    }
}

TR_AVX2 static size_t list_fired_avx2(const float *a, size_t k, uint32_t *fired)
{
    const __m256 zero = _mm256_setzero_ps();
    size_t nf = 0, p = 0;
    for (; p + 8 <= k; p += 8) {
        unsigned msk = 0xffu ^ (unsigned)_mm256_movemask_ps(
                                   _mm256_cmp_ps(LD(a + p), zero, _CMP_EQ_OQ));
        while (msk) {
            fired[nf++] = (uint32_t)(p + (size_t)__builtin_ctz(msk));
            msk &= msk - 1;
        }
    }
    for (; p < k; p++) {
        fired[nf] = (uint32_t)p;
        nf += a[p] != 0.0f;
    }
    return nf;
}

#endif

/* ---- the entry points ------------------------------------------------------------- */

void tr_gemm(size_t m, size_t n, size_t k, const float *A, size_t ars, size_t acs,
             const float *B, size_t ldb, float *C, size_t ldc)
{
    if (!m || !n || !k)
        return;
#if TR_X86
    if (have_avx2()) {
        gemm_avx2(m, n, k, A, ars, acs, B, ldb, C, ldc);
        return;
    }
#endif
    gemm_generic(m, n, k, A, ars, acs, B, ldb, C, ldc);
}

void tr_gemm_fast(size_t m, size_t n, size_t k, const float *A, size_t ars, size_t acs,
                  const float *B, size_t ldb, float *C, size_t ldc)
{
    if (!m || !n || !k)
        return;
#if TR_X86
    if (have_fma()) {
        gemm_fma(m, n, k, A, ars, acs, B, ldb, C, ldc);
        return;
    }
#endif
    tr_gemm(m, n, k, A, ars, acs, B, ldb, C, ldc);
}

size_t tr_list_rows(const float *A, size_t m, size_t k, uint32_t *off, uint32_t *idx)
{
    uint32_t pos = off[0];
    for (size_t i = 0; i < m; i++) {
#if TR_X86
        const size_t nf = have_avx2() ? list_fired_avx2(A + i * k, k, idx + pos)
                                      : list_fired(A + i * k, k, idx + pos);
#else
        const size_t nf = list_fired(A + i * k, k, idx + pos);
#endif
        pos += (uint32_t)nf;
        off[i + 1] = pos;
    }
    return pos - off[0];
}

void tr_gemm_listed(size_t m, size_t n, const uint32_t *off, const uint32_t *idx, const float *B,
                    size_t ldb, float *C, size_t ldc)
{
    for (size_t i = 0; i < m; i++) {
        float *c = C + i * ldc;
        const uint32_t *fired = idx + off[i];
        const size_t nf = off[i + 1] - off[i];
#if TR_X86
        if (have_avx2()) {
            add_rows_avx2(c, B, ldb, n, fired, nf);
            continue;
        }
#endif
        for (size_t f = 0; f < nf; f++)
            addv(c, B + (size_t)fired[f] * ldb, n);
    }
}

void tr_gemm_tn_listed(size_t m, size_t n, const uint32_t *off, const uint32_t *idx,
                       const float *G, size_t ldg, float *C, size_t ldc)
{
    for (size_t i = 0; i < m; i++) {
        const float *g = G + i * ldg;
        for (uint32_t f = off[i]; f < off[i + 1]; f++)
            addv(C + (size_t)idx[f] * ldc, g, n);
    }
}

void tr_transpose(const float *src, size_t rows, size_t cols, float *dst)
{
    /* 32 x 32 blocks: both sides stay in L1 */
    for (size_t i0 = 0; i0 < rows; i0 += 32)
        for (size_t j0 = 0; j0 < cols; j0 += 32) {
            const size_t i1 = i0 + 32 < rows ? i0 + 32 : rows;
            const size_t j1 = j0 + 32 < cols ? j0 + 32 : cols;
            for (size_t i = i0; i < i1; i++)
                for (size_t j = j0; j < j1; j++)
                    dst[j * rows + i] = src[i * cols + j];
        }
}

void tr_add(float *y, const float *x, size_t n)
{
    addv(y, x, n);
}

void tr_colsum(size_t m, size_t n, const float *G, float *sum)
{
    for (size_t i = 0; i < m; i++)
        addv(sum, G + i * n, n);
}

bool tr_binary(const float *x, size_t n)
{
    bool bin = true;
    for (size_t k = 0; k < n; k++)
        bin &= (x[k] == 0.0f) | (x[k] == 1.0f);
    return bin;
}
