/*  base/stats.c - small-sample statistics for the reports that compare two
    windows of measurements: the Harrell-Davis quantile estimate and a
    permutation test of the shift between two windows' quantiles.

    Why written here: the soak (cli/cmd_soak.c) compares the first and the
    last loop's latency percentiles, a few dozen values each. Debian has no C
    library for the Harrell-Davis estimator (GSL's gsl_stats_quantile is the
    linear interpolation whose p95 of 35 values is one order statistic), and
    the incomplete beta function it needs is a continued fraction of 30
    lines. A permutation test needs nothing but a shuffle.

    Why a test at all: a threshold on the difference of two medians breaks
    when the values form two clusters (the agent answers ~120 ms after a
    request it knows complete, ~650 ms after a fallback wait): the median
    then sits in the gap and one turn changing cluster moves it by tens of
    milliseconds, though no turn got slower. The shift test compares several
    quantiles (the deciles, for the centre) and takes the median of their
    differences, each in units of its limit: a slowdown every turn shares
    moves every decile, a turn changing cluster moves one. It also asks how
    often a random split of the same values gives a shift as large; a drift
    is then a shift both beyond the limit and unlikely by chance.

    What it may touch: libc and libm only. Allocates (the test's work
    buffers); not for the audio path.
*/
#include "base.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* The regularized incomplete beta function I_x(a, b), by its continued
   fraction (modified Lentz), for a, b > 0 and 0 <= x <= 1. */
static double beta_cf(double a, double b, double x)
{
    const double tiny = 1e-300;
    double c = 1, d = 1 - (a + b) * x / (a + 1);
    d = 1 / (fabs(d) < tiny ? tiny : d);
    double h = d;
    for (int m = 1; m <= 300; m++) {
        double m2 = 2.0 * m;
        double num = m * (b - m) * x / ((a + m2 - 1) * (a + m2));
        d = 1 + num * d;
        c = 1 + num / c;
        d = 1 / (fabs(d) < tiny ? tiny : d);
        c = fabs(c) < tiny ? tiny : c;
        h *= d * c;
        num = -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1));
        d = 1 + num * d;
        c = 1 + num / c;
        d = 1 / (fabs(d) < tiny ? tiny : d);
        c = fabs(c) < tiny ? tiny : c;
        double del = d * c;
        h *= del;
        if (fabs(del - 1) < 1e-12)
            break;
    }
    return h;
}

static double ibeta(double a, double b, double x)
{
    if (x <= 0)
        return 0;
    if (x >= 1)
        return 1;
    double front = exp(lgamma(a + b) - lgamma(a) - lgamma(b) + a * log(x) + b * log1p(-x));
    return x < (a + 1) / (a + b + 2) ? front * beta_cf(a, b, x) / a
                                     : 1 - front * beta_cf(b, a, 1 - x) / b;
}

/* The Harrell-Davis weights of n sorted values for quantile q (0 < q < 1):
   stored in w (when not NULL), and the estimate over `sorted` returned
   (when not NULL; 0 otherwise). */
static double hd_weights(size_t n, double q, double *w, const double *sorted)
{
    double a = q * (double)(n + 1), b = (1 - q) * (double)(n + 1), prev = 0, est = 0;
    for (size_t i = 1; i <= n; i++) {
        double cur = ibeta(a, b, (double)i / (double)n);
        if (w)
            w[i - 1] = cur - prev;
        if (sorted)
            est += (cur - prev) * sorted[i - 1];
        prev = cur;
    }
    return est;
}

static double hd_apply(const double *sorted, size_t n, double q, const double *w)
{
    if (q <= 0)
        return sorted[0];
    if (q >= 1 || n == 1)
        return sorted[n - 1];
    double est = 0;
    for (size_t i = 0; i < n; i++)
        est += w[i] * sorted[i];
    return est;
}

double st_hd_quantile(const double *sorted, size_t n, double p)
{
    if (!sorted || !n)
        return NAN;
    double q = p / 100.0;
    if (q <= 0 || q >= 1 || n == 1)
        return hd_apply(sorted, n, q, NULL);
    return hd_weights(n, q, NULL, sorted);
}

static int cmp_double(const void *x, const void *y)
{
    double u = *(const double *)x, v = *(const double *)y;
    return (u > v) - (u < v);
}

/* xorshift64*: the test's draws, the same for the same seed on every machine */
static uint64_t next_u64(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static double median_small(double *v, size_t n) /* sorts v, n >= 1 */
{
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* The statistic of st_shift_test on sorted samples (weights per percentile
   in wa[k * na ...], wb[k * nb ...]); tmp holds n_pct doubles. */
static double shift_stat(const double *sa, size_t na, const double *sb, size_t nb,
                         const double *pct, size_t n_pct, double rel_limit, double abs_floor,
                         const double *wa, const double *wb, double *tmp)
{
    for (size_t k = 0; k < n_pct; k++) {
        double q = pct[k] / 100.0;
        double va = hd_apply(sa, na, q, wa + k * na), vb = hd_apply(sb, nb, q, wb + k * nb);
        double lim = fmax(rel_limit * fabs(va), abs_floor);
        tmp[k] = lim > 0 ? (vb - va) / lim : (vb == va ? 0 : copysign(INFINITY, vb - va));
    }
    return median_small(tmp, n_pct);
}

int st_shift_test(const double *a, size_t na, const double *b, size_t nb, const double *pct,
                  size_t n_pct, double rel_limit, double abs_floor, unsigned rounds,
                  uint64_t seed, double *shift, double *p_value)
{
    if (shift)
        *shift = NAN;
    if (p_value)
        *p_value = NAN;
    bool pct_ok = pct && n_pct > 0;
    for (size_t k = 0; pct_ok && k < n_pct; k++)
        pct_ok = pct[k] >= 0 && pct[k] <= 100;
    if (!a || !b || !na || !nb || !pct_ok || !rounds || !(rel_limit >= 0) || !(abs_floor >= 0))
        return st_error(ST_ERR_INVALID,
                        "shift test: needs two non-empty samples, percentiles in 0..100, "
                        "limits >= 0 and rounds > 0 (got %zu and %zu values, %zu percentiles, "
                        "limits %g and %g, %u rounds)",
                        na, nb, n_pct, rel_limit, abs_floor, rounds);
    size_t n = na + nb;
    double *pool = malloc(n * sizeof *pool), *work = malloc(n * sizeof *work);
    double *wa = malloc(n_pct * na * sizeof *wa), *wb = malloc(n_pct * nb * sizeof *wb);
    double *tmp = malloc(n_pct * sizeof *tmp);
    if (!pool || !work || !wa || !wb || !tmp) {
        free(pool), free(work), free(wa), free(wb), free(tmp);
        return st_error(ST_ERR_NOMEM, "shift test: out of memory for %zu values", n);
    }
    for (size_t k = 0; k < n_pct; k++) {
        double q = pct[k] / 100.0;
        if (q > 0 && q < 1) {
            hd_weights(na, q, wa + k * na, NULL);
            hd_weights(nb, q, wb + k * nb, NULL);
        }
    }
    memcpy(pool, a, na * sizeof *pool);
    memcpy(pool + na, b, nb * sizeof *pool);
    memcpy(work, pool, n * sizeof *work);
    qsort(work, na, sizeof *work, cmp_double);
    qsort(work + na, nb, sizeof *work, cmp_double);
    double observed = shift_stat(work, na, work + na, nb, pct, n_pct, rel_limit, abs_floor, wa,
                                 wb, tmp);
    /* a statistic counts as "as large" within a relative 1e-9: the same
       split in another order must not fall on the other side by rounding */
    double bar = fabs(observed) * (1 - 1e-9);
    /* the splits are drawn from the pooled values in sorted order: the
       p-value depends on the two samples, not on the order they came in */
    qsort(pool, n, sizeof *pool, cmp_double);
    uint64_t s = seed ? seed : 0x9E3779B97F4A7C15ULL;
    unsigned as_large = 0;
    for (unsigned r = 0; r < rounds; r++) {
        memcpy(work, pool, n * sizeof *work);
        for (size_t i = n - 1; i > 0; i--) { /* Fisher-Yates */
            size_t j = (size_t)(next_u64(&s) % (uint64_t)(i + 1));
            double t = work[i];
            work[i] = work[j];
            work[j] = t;
        }
        qsort(work, na, sizeof *work, cmp_double);
        qsort(work + na, nb, sizeof *work, cmp_double);
        double d = shift_stat(work, na, work + na, nb, pct, n_pct, rel_limit, abs_floor, wa, wb,
                              tmp);
        if (fabs(d) >= bar)
            as_large++;
    }
    free(pool), free(work), free(wa), free(wb), free(tmp);
    if (shift)
        *shift = observed;
    if (p_value)
        *p_value = (as_large + 1.0) / (rounds + 1.0);
    return ST_OK;
}
