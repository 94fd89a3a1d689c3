/*  snn/lm_train_ops.c - the trainer's operations, forward and backward,
    over a chunk of T tokens: the matrix product, LayerNorm, token shift,
    WKV, LIF with its ATan surrogate, the sigmoid gate, the cross-entropy.

    Workload: T 64 to 256 tokens of D 64 to 256 channels (4 D in the
    channel mix). The matrix products (three per linear layer: forward,
    input gradient, weight gradient) are about 95 % of the time: one
    kernel C += A B with B and C row-major and A of either layout, a 6 x 16
    register tile of FMAs (AVX2) or portable C. The rest is per channel,
    sequential in time for the recurrences, and vectorised by the compiler
    over channels.

    The WKV backward runs in the same scaled form as the forward (A, B
    carry a factor e^-p): with alpha_t = dL/dA~_t e^(p_t) and beta_t the
    same for B, every exponent that appears is <= 0, so nothing overflows
    whatever the decays and keys; derivation in docs/LM.md ("Training").
*/
#include "lm_train_impl.h"

#include <math.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define LMT_X86 1
#endif

/* ---- matrix product: portable ------------------------------------------------------ */

__attribute__((optimize("O3"))) static void gemm_generic(size_t M, size_t N, size_t K,
                                                         const float *A, size_t ars, size_t acs,
                                                         const float *B, size_t ldb, float *C,
                                                         size_t ldc, bool acc)
{
    for (size_t i = 0; i < M; i++) {
        float *c = C + i * ldc;
        if (!acc)
            memset(c, 0, N * sizeof(float));
        for (size_t p = 0; p < K; p++) {
            float a = A[i * ars + p * acs];
            const float *b = B + p * ldb;
            for (size_t j = 0; j < N; j++)
                c[j] += a * b[j];
        }
    }
}

const lmt_gemm_fn lmt_gemm_generic = gemm_generic;

/* ---- matrix product: AVX2 + FMA, 6 x 16 tiles ------------------------------------- */

#ifdef LMT_X86
#define AVX2 __attribute__((target("avx2,fma")))

/* The main tile: 6 rows x 16 columns, 12 accumulators in registers. */
AVX2 static void tile6x16(size_t K, const float *A, size_t ars, size_t acs, const float *B,
                          size_t ldb, float *C, size_t ldc, bool acc)
{
    __m256 c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51;
    if (acc) {
#define LD(r) c##r##0 = _mm256_loadu_ps(C + r * ldc), c##r##1 = _mm256_loadu_ps(C + r * ldc + 8)
        LD(0); LD(1); LD(2); LD(3); LD(4); LD(5);
#undef LD
    } else {
        c00 = c01 = c10 = c11 = c20 = c21 = c30 = c31 = c40 = c41 = c50 = c51 =
            _mm256_setzero_ps();
    }
    for (size_t p = 0; p < K; p++) {
        const float *bp = B + p * ldb, *ap = A + p * acs;
        __m256 b0 = _mm256_loadu_ps(bp), b1 = _mm256_loadu_ps(bp + 8), a;
#define ROW(r)                                                                                   \
    a = _mm256_broadcast_ss(ap + r * ars);                                                       \
    c##r##0 = _mm256_fmadd_ps(a, b0, c##r##0);                                                   \
    c##r##1 = _mm256_fmadd_ps(a, b1, c##r##1)
        ROW(0); ROW(1); ROW(2); ROW(3); ROW(4); ROW(5);
#undef ROW
    }
#define ST(r) _mm256_storeu_ps(C + r * ldc, c##r##0), _mm256_storeu_ps(C + r * ldc + 8, c##r##1)
    ST(0); ST(1); ST(2); ST(3); ST(4); ST(5);
#undef ST
}

/* Any other tile: mr <= 6 rows, nv (1 or 2) vectors of 8 columns; the
   same terms in the same order as tile6x16, one FMA each. */
AVX2 static void tile_any(int mr, int nv, size_t K, const float *A, size_t ars, size_t acs,
                          const float *B, size_t ldb, float *C, size_t ldc, bool acc)
{
    __m256 c[6][2];
    for (int r = 0; r < mr; r++)
        for (int v = 0; v < nv; v++)
            c[r][v] = acc ? _mm256_loadu_ps(C + r * ldc + 8 * v) : _mm256_setzero_ps();
    for (size_t p = 0; p < K; p++) {
        const float *bp = B + p * ldb, *ap = A + p * acs;
        for (int v = 0; v < nv; v++) {
            __m256 b = _mm256_loadu_ps(bp + 8 * v);
            for (int r = 0; r < mr; r++)
                c[r][v] = _mm256_fmadd_ps(_mm256_broadcast_ss(ap + r * ars), b, c[r][v]);
        }
    }
    for (int r = 0; r < mr; r++)
        for (int v = 0; v < nv; v++)
            _mm256_storeu_ps(C + r * ldc + 8 * v, c[r][v]);
}

/* All row tiles of one block of 8 nv columns. */
AVX2 static void column_block(int nv, size_t M, size_t K, const float *A, size_t ars, size_t acs,
                              const float *B, size_t ldb, float *C, size_t ldc, bool acc)
{
    size_t i = 0;
    for (; i + 6 <= M; i += 6)
        if (nv == 2)
            tile6x16(K, A + i * ars, ars, acs, B, ldb, C + i * ldc, ldc, acc);
        else
            tile_any(6, 1, K, A + i * ars, ars, acs, B, ldb, C + i * ldc, ldc, acc);
    if (i < M)
        tile_any((int)(M - i), nv, K, A + i * ars, ars, acs, B, ldb, C + i * ldc, ldc, acc);
}

#define KC 256 /* rows of B packed at a time: a 16-column panel is 16 KB, in L1 */

AVX2 static void gemm_avx2(size_t M, size_t N, size_t K, const float *A, size_t ars, size_t acs,
                           const float *B, size_t ldb, float *C, size_t ldc, bool acc)
{
    float panel[KC * 16] __attribute__((aligned(64)));
    size_t j = 0;
    for (; j + 8 <= N;) {
        int nv = j + 16 <= N ? 2 : 1;
        size_t w = 8 * (size_t)nv;
        for (size_t p0 = 0; p0 < K || (p0 == 0 && !acc); p0 += KC) {
            size_t kc = K - p0 < KC ? K - p0 : KC;
            for (size_t p = 0; p < kc; p++)
                memcpy(panel + p * w, B + (p0 + p) * ldb + j, w * sizeof(float));
            bool a = acc || p0 > 0;
            column_block(nv, M, kc, A + p0 * acs, ars, acs, panel, w, C + j, ldc, a);
            if (!kc)
                break;
        }
        j += w;
    }
    if (j < N) /* the last columns: one FMA per term as well, in order */
        for (size_t i = 0; i < M; i++)
            for (size_t jj = j; jj < N; jj++) {
                float s = acc ? C[i * ldc + jj] : 0.0f;
                for (size_t p = 0; p < K; p++)
                    s = fmaf(A[i * ars + p * acs], B[p * ldb + jj], s);
                C[i * ldc + jj] = s;
            }
}

const lmt_gemm_fn lmt_gemm_avx2 = gemm_avx2;
#else
const lmt_gemm_fn lmt_gemm_avx2 = NULL;
#endif

lmt_gemm_fn lmt_gemm_best(void)
{
    return lmt_gemm_avx2 && st_lm_cpu_has_avx2() ? lmt_gemm_avx2 : lmt_gemm_generic;
}

/* ---- the spike function ------------------------------------------------------------ */

float lmt_spike_fwd(const lmt_spike *s, float u)
{
    if (!s->smooth)
        return u >= 0.0f ? 1.0f : 0.0f;
    return 0.5f + atanf((float)(M_PI / 2) * s->alpha * u) * (float)(1.0 / M_PI);
}

float lmt_spike_grad(const lmt_spike *s, float u)
{
    float z = (float)(M_PI / 2) * s->alpha * u;
    return 0.5f * s->alpha / (1.0f + z * z);
}

/* ---- LayerNorm ------------------------------------------------------------------------ */

void lmt_ln_forward(const float *x, const float *g, const float *b, size_t n, size_t T, float *y,
                    float *xhat, float *rstd)
{
    for (size_t t = 0; t < T; t++) {
        const float *xt = x + t * n;
        double s = 0;
        for (size_t i = 0; i < n; i++)
            s += xt[i];
        double mean = s / (double)n, v = 0;
        for (size_t i = 0; i < n; i++) {
            double c = xt[i] - mean;
            v += c * c;
        }
        double rs = 1.0 / sqrt(v / (double)n + 1e-5);
        rstd[t] = (float)rs;
        float *ht = xhat + t * n, *yt = y + t * n;
        for (size_t i = 0; i < n; i++) {
            float h = (float)((xt[i] - mean) * rs);
            ht[i] = h;
            yt[i] = h * g[i] + b[i];
        }
    }
}

__attribute__((optimize("O3"))) void lmt_ln_backward(const float *gy, const float *xhat,
                                                     const float *rstd, const float *g, size_t n,
                                                     size_t T, float *gx, float *gg, float *gb)
{
    for (size_t t = 0; t < T; t++) {
        const float *gt = gy + t * n, *ht = xhat + t * n;
        float *xt = gx + t * n;
        float s1 = 0, s2 = 0;
        for (size_t i = 0; i < n; i++) {
            float gh = gt[i] * g[i];
            gb[i] += gt[i];
            gg[i] += gt[i] * ht[i];
            s1 += gh;
            s2 += gh * ht[i];
        }
        float m1 = s1 / (float)n, m2 = s2 / (float)n, rs = rstd[t];
        for (size_t i = 0; i < n; i++)
            xt[i] += rs * (gt[i] * g[i] - m1 - ht[i] * m2);
    }
}

/* ---- token shift ----------------------------------------------------------------------- */

__attribute__((optimize("O3"))) void lmt_mix_forward(const float *a, const float *prev,
                                                     const float *m, size_t n, size_t T,
                                                     float *out)
{
    for (size_t t = 0; t < T; t++) {
        const float *at = a + t * n, *pt = t ? a + (t - 1) * n : prev;
        float *ot = out + t * n;
        for (size_t i = 0; i < n; i++)
            ot[i] = at[i] * m[i] + pt[i] * (1.0f - m[i]);
    }
}

__attribute__((optimize("O3"))) void lmt_mix_backward(const float *gout, const float *a,
                                                      const float *prev, const float *m,
                                                      size_t n, size_t T, float *ga, float *gm)
{
    for (size_t t = 0; t < T; t++) {
        const float *gt = gout + t * n, *at = a + t * n, *pt = t ? a + (t - 1) * n : prev;
        const float *gn = t + 1 < T ? gout + (t + 1) * n : NULL;
        float *o = ga + t * n;
        for (size_t i = 0; i < n; i++) {
            gm[i] += gt[i] * (at[i] - pt[i]);
            o[i] += gt[i] * m[i];
        }
        if (gn)
            for (size_t i = 0; i < n; i++)
                o[i] += gn[i] * (1.0f - m[i]);
    }
}

/* ---- per-channel kernels: the choice ----------------------------------------------------

   The recurrences (WKV, LIF) run 8 channels at a time with their state in
   registers, time inner; the gates elementwise. AVX2 + FMA when the CPU
   has them, else (and for the channels past the last multiple of 8, and
   for the smooth-step forward of the gradient checks) the portable loops. */

static int simd_choice = -1; /* -1: not yet known */

static bool have_avx2(void)
{
    int got = __atomic_load_n(&simd_choice, __ATOMIC_RELAXED);
    if (got < 0) {
        got = lmt_gemm_avx2 && st_lm_cpu_has_avx2();
        __atomic_store_n(&simd_choice, got, __ATOMIC_RELAXED);
    }
    return got;
}

void lmt_use_generic(bool on)
{
    __atomic_store_n(&simd_choice, on ? 0 : -1, __ATOMIC_RELAXED);
}

static inline float sigmoidf(float x)
{
    return 1.0f / (1.0f + expf(-x));
}

/* ---- portable, over channels [c0, c1) of n ------------------------------------------------- */

static void wkv_fwd_c(const float *k, const float *v, const float *u, const float *w, float *A,
                      float *B, float *P, size_t n, size_t T, float *y, float *sA, float *sB,
                      float *sP, size_t c0, size_t c1)
{
    for (size_t c = c0; c < c1; c++)
        for (size_t t = 0; t < T; t++) {
            size_t at = t * n + c;
            float kk = k[at], vv = v[at], p = P[c];
            if (sA) {
                sA[at] = A[c];
                sB[at] = B[c];
                sP[at] = p;
            }
            float dlt = p - (u[c] + kk);
            float e = expf(-fabsf(dlt));
            float e1 = dlt >= 0 ? 1.0f : e, e2 = dlt >= 0 ? e : 1.0f;
            y[at] = (e1 * A[c] + e2 * vv) / (e1 * B[c] + e2);
            float pw = p + w[c];
            dlt = pw - kk;
            e = expf(-fabsf(dlt));
            e1 = dlt >= 0 ? 1.0f : e;
            e2 = dlt >= 0 ? e : 1.0f;
            A[c] = e1 * A[c] + e2 * vv;
            B[c] = e1 * B[c] + e2;
            P[c] = dlt >= 0 ? pw : kk;
        }
}

/*  Per channel, tokens in reverse, with alpha/beta the scaled adjoints of
    the state after the token (0 after the last: the carry is detached):
      the update A' = e^(pw-p')A + e^(k-p')v, B' = e^(pw-p')B + e^(k-p'):
        gk += (alpha v + beta) e^(k-p'),  gv += alpha e^(k-p'),
        gw += (alpha A + beta B) e^(pw-p')
      the output y = (e1 A + e2 v)/(e1 B + e2), q = max(p, u+k):
        gv += gy e2/den, gk += gy e2 (v - y)/den, gu += the same
      then alpha = gy e1/den + e^(pw-p') alpha, beta = -gy y e1/den + e^(pw-p') beta. */
static void wkv_bwd_c(const float *k, const float *v, const float *u, const float *w,
                      const float *sA, const float *sB, const float *sP, const float *gy, size_t n,
                      size_t T, float *gk, float *gv, float *gu, float *gw, size_t c0, size_t c1)
{
    for (size_t c = c0; c < c1; c++) {
        float al = 0, be = 0, su = 0, sw = 0;
        for (size_t t = T; t-- > 0;) {
            size_t at = t * n + c;
            float kk = k[at], vv = v[at], A = sA[at], B = sB[at], p = sP[at], g = gy[at];
            float pw = p + w[c], dl = pw - kk, ee = expf(-fabsf(dl));
            float d1 = dl >= 0 ? 1.0f : ee, d2 = dl >= 0 ? ee : 1.0f;
            float gkk = (al * vv + be) * d2, gvv = al * d2;
            sw += (al * A + be * B) * d1;
            float dlt = p - (u[c] + kk);
            float e = expf(-fabsf(dlt));
            float e1 = dlt >= 0 ? 1.0f : e, e2 = dlt >= 0 ? e : 1.0f;
            float den = e1 * B + e2, y = (e1 * A + e2 * vv) / den;
            float gd = g / den;
            gvv += gd * e2;
            float gq = gd * e2 * (vv - y);
            gkk += gq;
            su += gq;
            al = gd * e1 + d1 * al;
            be = -gd * y * e1 + d1 * be;
            gk[at] = gkk;
            gv[at] = gvv;
        }
        gu[c] += su;
        gw[c] += sw;
    }
}

static size_t lif_fwd_c(const lmt_spike *sp, const float *c, float *mem, size_t n, size_t T,
                        float *h, float *x, size_t c0, size_t c1)
{
    size_t fired = 0;
    for (size_t i = c0; i < c1; i++)
        for (size_t t = 0; t < T; t++) {
            size_t at = t * n + i;
            float hh = mem[i] + (c[at] - mem[i]) * 0.5f;
            float s = lmt_spike_fwd(sp, hh - 1.0f);
            h[at] = hh;
            fired += s > 0.5f;
            mem[i] = sp->smooth ? hh * (1.0f - s) : (s > 0.5f ? 0.0f : hh);
            x[at] += s;
        }
    return fired;
}

static void lif_bwd_c(const lmt_spike *sp, const float *gs, const float *h, size_t n, size_t T,
                      float *gc, size_t c0, size_t c1)
{
    for (size_t i = c0; i < c1; i++) {
        float gm = 0; /* dL/d(membrane after the token) */
        for (size_t t = T; t-- > 0;) {
            size_t at = t * n + i;
            float hh = h[at], u = hh - 1.0f;
            float s = lmt_spike_fwd(sp, u), ds = lmt_spike_grad(sp, u);
            float dm = 1.0f - s;
            if (!sp->detach)
                dm -= hh * ds;
            float gh = gs[at] * ds + gm * dm;
            gc[at] = 0.5f * gh;
            gm = 0.5f * gh;
        }
    }
}

/* ---- AVX2 + FMA --------------------------------------------------------------------------- */

#ifdef LMT_X86
/* e^x, about 1 ulp (Cephes' polynomial, as snn/lm_kernels.c); 0 below -87.3 */
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
    return _mm256_div_ps(one, _mm256_add_ps(one, exp8(_mm256_sub_ps(_mm256_setzero_ps(), x))));
}

/* e^-|d| and which of the pair is e^0: e1 = d >= 0 ? 1 : e, e2 = d >= 0 ? e : 1 */
AVX2 static inline void pair8(__m256 d, __m256 *e1, __m256 *e2, __m256 *ge)
{
    const __m256 one = _mm256_set1_ps(1.0f);
    __m256 e = exp8(_mm256_or_ps(d, _mm256_set1_ps(-0.0f)));
    *ge = _mm256_cmp_ps(d, _mm256_setzero_ps(), _CMP_GE_OQ);
    *e1 = _mm256_blendv_ps(e, one, *ge);
    *e2 = _mm256_blendv_ps(one, e, *ge);
}

#define LD(p) _mm256_loadu_ps(p)
#define ST(p, v) _mm256_storeu_ps((p), (v))

AVX2 static size_t wkv_fwd_avx2(const float *k, const float *v, const float *u, const float *w,
                                float *A, float *B, float *P, size_t n, size_t T, float *y,
                                float *sA, float *sB, float *sP)
{
    size_t c = 0;
    for (; c + 8 <= n; c += 8) {
        __m256 a = LD(A + c), b = LD(B + c), p = LD(P + c), uu = LD(u + c), ww = LD(w + c);
        for (size_t t = 0; t < T; t++) {
            size_t at = t * n + c;
            __m256 kk = LD(k + at), vv = LD(v + at), e1, e2, ge;
            if (sA) {
                ST(sA + at, a);
                ST(sB + at, b);
                ST(sP + at, p);
            }
            pair8(_mm256_sub_ps(p, _mm256_add_ps(uu, kk)), &e1, &e2, &ge);
            ST(y + at, _mm256_div_ps(_mm256_fmadd_ps(e1, a, _mm256_mul_ps(e2, vv)),
                                     _mm256_fmadd_ps(e1, b, e2)));
            __m256 pw = _mm256_add_ps(p, ww);
            pair8(_mm256_sub_ps(pw, kk), &e1, &e2, &ge);
            a = _mm256_fmadd_ps(e1, a, _mm256_mul_ps(e2, vv));
            b = _mm256_fmadd_ps(e1, b, e2);
            p = _mm256_blendv_ps(kk, pw, ge);
        }
        ST(A + c, a);
        ST(B + c, b);
        ST(P + c, p);
    }
    return c;
}

AVX2 static size_t wkv_bwd_avx2(const float *k, const float *v, const float *u, const float *w,
                                const float *sA, const float *sB, const float *sP,
                                const float *gy, size_t n, size_t T, float *gk, float *gv,
                                float *gu, float *gw)
{
    size_t c = 0;
    for (; c + 8 <= n; c += 8) {
        __m256 al = _mm256_setzero_ps(), be = al, su = al, sw = al;
        const __m256 uu = LD(u + c), ww = LD(w + c);
        for (size_t t = T; t-- > 0;) {
            size_t at = t * n + c;
            __m256 kk = LD(k + at), vv = LD(v + at), A = LD(sA + at), B = LD(sB + at);
            __m256 p = LD(sP + at), g = LD(gy + at), d1, d2, e1, e2, ge;
            pair8(_mm256_sub_ps(_mm256_add_ps(p, ww), kk), &d1, &d2, &ge);
            __m256 gkk = _mm256_mul_ps(_mm256_fmadd_ps(al, vv, be), d2);
            __m256 gvv = _mm256_mul_ps(al, d2);
            sw = _mm256_fmadd_ps(_mm256_fmadd_ps(al, A, _mm256_mul_ps(be, B)), d1, sw);
            pair8(_mm256_sub_ps(p, _mm256_add_ps(uu, kk)), &e1, &e2, &ge);
            __m256 den = _mm256_fmadd_ps(e1, B, e2);
            __m256 y = _mm256_div_ps(_mm256_fmadd_ps(e1, A, _mm256_mul_ps(e2, vv)), den);
            __m256 gd = _mm256_div_ps(g, den);
            __m256 gde2 = _mm256_mul_ps(gd, e2);
            gvv = _mm256_add_ps(gvv, gde2);
            __m256 gq = _mm256_mul_ps(gde2, _mm256_sub_ps(vv, y));
            gkk = _mm256_add_ps(gkk, gq);
            su = _mm256_add_ps(su, gq);
            __m256 gde1 = _mm256_mul_ps(gd, e1);
            al = _mm256_fmadd_ps(d1, al, gde1);
            be = _mm256_fnmadd_ps(gde1, y, _mm256_mul_ps(d1, be));
            ST(gk + at, gkk);
            ST(gv + at, gvv);
        }
        ST(gu + c, _mm256_add_ps(LD(gu + c), su));
        ST(gw + c, _mm256_add_ps(LD(gw + c), sw));
    }
    return c;
}

AVX2 static size_t lif_fwd_avx2(const float *c, float *mem, size_t n, size_t T, float *h, float *x,
                                size_t *fired)
{
    const __m256 half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.0f);
    size_t i = 0, f = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 m = LD(mem + i);
        for (size_t t = 0; t < T; t++) {
            size_t at = t * n + i;
            __m256 hh = _mm256_fmadd_ps(_mm256_sub_ps(LD(c + at), m), half, m);
            __m256 s = _mm256_cmp_ps(hh, one, _CMP_GE_OQ);
            ST(h + at, hh);
            m = _mm256_andnot_ps(s, hh);
            ST(x + at, _mm256_add_ps(LD(x + at), _mm256_and_ps(s, one)));
            f += (size_t)__builtin_popcount((unsigned)_mm256_movemask_ps(s));
        }
        ST(mem + i, m);
    }
    *fired = f;
    return i;
}

AVX2 static size_t lif_bwd_avx2(const lmt_spike *sp, const float *gs, const float *h, size_t n,
                                size_t T, float *gc)
{
    const __m256 half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.0f);
    const __m256 ka = _mm256_set1_ps((float)(M_PI / 2) * sp->alpha);
    const __m256 ha = _mm256_set1_ps(0.5f * sp->alpha);
    const __m256 keep = sp->detach ? _mm256_setzero_ps() : one;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 gm = _mm256_setzero_ps();
        for (size_t t = T; t-- > 0;) {
            size_t at = t * n + i;
            __m256 hh = LD(h + at), u = _mm256_sub_ps(hh, one);
            __m256 s = _mm256_and_ps(_mm256_cmp_ps(u, _mm256_setzero_ps(), _CMP_GE_OQ), one);
            __m256 z = _mm256_mul_ps(ka, u);
            __m256 ds = _mm256_div_ps(ha, _mm256_fmadd_ps(z, z, one));
            __m256 dm = _mm256_sub_ps(_mm256_sub_ps(one, s), _mm256_mul_ps(keep,
                                                                           _mm256_mul_ps(hh, ds)));
            __m256 gh = _mm256_fmadd_ps(LD(gs + at), ds, _mm256_mul_ps(gm, dm));
            gm = _mm256_mul_ps(half, gh);
            ST(gc + at, gm);
        }
    }
    return i;
}

AVX2 static size_t sigmul_fwd_avx2(const float *r, const float *v, size_t count, float *out)
{
    size_t i = 0;
    for (; i + 8 <= count; i += 8)
        ST(out + i, _mm256_mul_ps(sigmoid8(LD(r + i)), LD(v + i)));
    return i;
}

AVX2 static size_t sigmul_bwd_avx2(const float *go, const float *r, const float *v, size_t count,
                                   float *gr, float *gv)
{
    const __m256 one = _mm256_set1_ps(1.0f);
    size_t i = 0;
    for (; i + 8 <= count; i += 8) {
        __m256 s = sigmoid8(LD(r + i)), g = LD(go + i);
        ST(gv + i, _mm256_mul_ps(g, s));
        ST(gr + i, _mm256_mul_ps(_mm256_mul_ps(g, LD(v + i)),
                                 _mm256_mul_ps(s, _mm256_sub_ps(one, s))));
    }
    return i;
}

AVX2 static size_t relu2_avx2(const float *hk, size_t n, float *out, bool back)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 a = _mm256_max_ps(LD(hk + i), _mm256_setzero_ps());
        ST(out + i, back ? _mm256_mul_ps(LD(out + i), _mm256_add_ps(a, a)) : _mm256_mul_ps(a, a));
    }
    return i;
}
#undef LD
#undef ST
#endif

/* ---- the entry points ---------------------------------------------------------------------- */

void lmt_wkv_forward(const float *k, const float *v, const float *u, const float *w, float *A,
                     float *B, float *P, size_t n, size_t T, float *y, float *sA, float *sB,
                     float *sP)
{
    size_t c = 0;
#ifdef LMT_X86
    if (have_avx2())
        c = wkv_fwd_avx2(k, v, u, w, A, B, P, n, T, y, sA, sB, sP);
#endif
    wkv_fwd_c(k, v, u, w, A, B, P, n, T, y, sA, sB, sP, c, n);
}

void lmt_wkv_backward(const float *k, const float *v, const float *u, const float *w,
                      const float *sA, const float *sB, const float *sP, const float *gy,
                      size_t n, size_t T, float *gk, float *gv, float *gu, float *gw)
{
    size_t c = 0;
#ifdef LMT_X86
    if (have_avx2())
        c = wkv_bwd_avx2(k, v, u, w, sA, sB, sP, gy, n, T, gk, gv, gu, gw);
#endif
    wkv_bwd_c(k, v, u, w, sA, sB, sP, gy, n, T, gk, gv, gu, gw, c, n);
}

size_t lmt_lif_forward(const lmt_spike *sp, const float *c, float *mem, size_t n, size_t T,
                       float *h, float *x)
{
    size_t i = 0, fired = 0;
#ifdef LMT_X86
    if (have_avx2() && !sp->smooth)
        i = lif_fwd_avx2(c, mem, n, T, h, x, &fired);
#endif
    return fired + lif_fwd_c(sp, c, mem, n, T, h, x, i, n);
}

void lmt_lif_backward(const lmt_spike *sp, const float *gs, const float *h, size_t n, size_t T,
                      float *gc)
{
    size_t i = 0;
#ifdef LMT_X86
    if (have_avx2() && !sp->smooth)
        i = lif_bwd_avx2(sp, gs, h, n, T, gc);
#endif
    lif_bwd_c(sp, gs, h, n, T, gc, i, n);
}

void lmt_sigmul_forward(const float *r, const float *v, size_t count, float *out)
{
    size_t i = 0;
#ifdef LMT_X86
    if (have_avx2())
        i = sigmul_fwd_avx2(r, v, count, out);
#endif
    for (; i < count; i++)
        out[i] = sigmoidf(r[i]) * v[i];
}

void lmt_sigmul_backward(const float *go, const float *r, const float *v, size_t count, float *gr,
                         float *gv)
{
    size_t i = 0;
#ifdef LMT_X86
    if (have_avx2())
        i = sigmul_bwd_avx2(go, r, v, count, gr, gv);
#endif
    for (; i < count; i++) {
        float s = sigmoidf(r[i]);
        gv[i] = go[i] * s;
        gr[i] = go[i] * v[i] * s * (1.0f - s);
    }
}

void lmt_relu2(const float *hk, size_t n, float *out)
{
    size_t i = 0;
#ifdef LMT_X86
    if (have_avx2())
        i = relu2_avx2(hk, n, out, false);
#endif
    for (; i < n; i++) {
        float a = hk[i] > 0.0f ? hk[i] : 0.0f;
        out[i] = a * a;
    }
}

void lmt_relu2_backward(const float *hk, size_t n, float *g)
{
    size_t i = 0;
#ifdef LMT_X86
    if (have_avx2())
        i = relu2_avx2(hk, n, g, true);
#endif
    for (; i < n; i++) {
        float a = hk[i] > 0.0f ? hk[i] : 0.0f;
        g[i] = g[i] * (a + a);
    }
}

/* ---- the loss --------------------------------------------------------------------------------- */

double lmt_ce(float *logits, const int32_t *targets, const uint8_t *mask, size_t V, size_t T,
              float scale, float l2)
{
    double loss = 0;
    for (size_t t = 0; t < T; t++) {
        float *z = logits + t * V;
        if (mask && !mask[t]) {
            memset(z, 0, V * sizeof(float));
            continue;
        }
        size_t arg = 0;
        for (size_t i = 1; i < V; i++)
            if (z[i] > z[arg])
                arg = i;
        float mx = z[arg];
        double sum = 0;
        for (size_t i = 0; i < V; i++)
            sum += exp((double)(z[i] - mx));
        loss += log(sum) - (double)(z[targets[t]] - mx);
        float inv = (float)(1.0 / sum);
        for (size_t i = 0; i < V; i++)
            z[i] = scale * (expf(z[i] - mx) * inv);
        z[targets[t]] -= scale;
        z[arg] += l2 * mx;
    }
    return loss;
}
