/*  tests/test_base.c - suite `base`: error messages, logging, the real-time
    guard, the clock, the small-sample statistics, scratch folders. */
#include "testutil.h"

#include "base/base.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void test_strerror(void)
{
    CU_ASSERT_STRING_EQUAL(st_strerror(ST_OK), "success");
    CU_ASSERT_STRING_EQUAL(st_strerror(ST_ERR_NOT_FOUND), "not found");
    CU_ASSERT_STRING_EQUAL(st_strerror(-9999), "unknown error");
    for (int c = ST_ERR_INTERNAL; c <= ST_OK; c++)
        CU_ASSERT_STRING_NOT_EQUAL(st_strerror(c), "unknown error");
}

static void *other_thread(void *arg)
{
    st_error(ST_ERR_IO, "other thread's error");
    strcpy(arg, st_errmsg());
    return NULL;
}

static void test_errmsg_per_thread(void)
{
    CU_ASSERT_EQUAL(st_error(ST_ERR_FORMAT, "file '%s': %d bad bytes", "x.wav", 3), ST_ERR_FORMAT);
    CU_ASSERT_STRING_EQUAL(st_errmsg(), "file 'x.wav': 3 bad bytes");
    char seen[512] = "";
    pthread_t t;
    pthread_create(&t, NULL, other_thread, seen);
    pthread_join(t, NULL);
    CU_ASSERT_STRING_EQUAL(seen, "other thread's error");
    CU_ASSERT_STRING_EQUAL(st_errmsg(), "file 'x.wav': 3 bad bytes");
    /* a message that wraps the one before it keeps that one whole */
    st_error(ST_ERR_FORMAT, "model file '%s': %s", "m.stm", st_errmsg());
    CU_ASSERT_STRING_EQUAL(st_errmsg(), "model file 'm.stm': file 'x.wav': 3 bad bytes");
    st_error_clear();
    CU_ASSERT_STRING_EQUAL(st_errmsg(), "");
}

static char last_log[256];
static st_log_level last_level;

static void capture_log(st_log_level level, const char *msg, void *user)
{
    last_level = level;
    strncpy(last_log, msg, sizeof last_log - 1);
    (*(int *)user)++;
}

static void test_log_callback(void)
{
    int calls = 0;
    st_log(ST_LOG_INFO, "dropped: no sink yet");
    st_log_set(capture_log, &calls);
    st_log(ST_LOG_WARN, "ring %d overran", 2);
    CU_ASSERT_EQUAL(calls, 1);
    CU_ASSERT_EQUAL(last_level, ST_LOG_WARN);
    CU_ASSERT_STRING_EQUAL(last_log, "ring 2 overran");
    st_log_set(NULL, NULL);
    st_log(ST_LOG_ERROR, "dropped again");
    CU_ASSERT_EQUAL(calls, 1);
}

static void test_rt_guard_and_alloc_counter(void)
{
    CU_ASSERT_FALSE(st_rt_active());
    st_rt_enter();
    st_rt_enter();
    CU_ASSERT_TRUE(st_rt_active());
    st_rt_leave();
    CU_ASSERT_TRUE(st_rt_active());
    st_rt_leave();
    CU_ASSERT_FALSE(st_rt_active());
    if (!st_test_alloc_live()) {
        st_test_skip("base:rt_guard_and_alloc_counter",
                     "allocations cannot be counted under valgrind (its malloc replaces ours)");
        return;
    }
    /* The counter must see an allocation made inside a real-time section. */
    unsigned long before = st_test_rt_allocs();
    st_rt_enter();
    void *volatile p = malloc(32);
    st_rt_leave();
    free(p);
    CU_ASSERT_EQUAL(st_test_rt_allocs(), before + 1);
}

static void test_clock(void)
{
    double t0 = st_now_s();
    st_sleep_until_s(t0 + 0.02);
    double dt = st_now_s() - t0;
    CU_ASSERT_TRUE(dt >= 0.02);
    CU_ASSERT_TRUE(dt < 1.0);
}

/* Harrell-Davis against SciPy's scipy.stats.mstats.hdquantiles (Debian's
   python3-scipy, 30 Nov 2026): [1 2 3 4 10] -> p50 3.2896, p95 9.6084175;
   [1 2 3 4 5 7 9 30] -> 4.86639921, 27.42529643. */
static void test_hd_quantile(void)
{
    const double a[] = {1, 2, 3, 4, 10}, b[] = {1, 2, 3, 4, 5, 7, 9, 30};
    CU_ASSERT_DOUBLE_EQUAL(st_hd_quantile(a, 5, 50), 3.2896, 1e-4);
    CU_ASSERT_DOUBLE_EQUAL(st_hd_quantile(a, 5, 95), 9.6084175, 1e-6);
    CU_ASSERT_DOUBLE_EQUAL(st_hd_quantile(b, 8, 50), 4.86639921, 1e-6);
    CU_ASSERT_DOUBLE_EQUAL(st_hd_quantile(b, 8, 95), 27.42529643, 1e-6);
    CU_ASSERT_DOUBLE_EQUAL(st_hd_quantile(a, 1, 50), 1, 0);
    CU_ASSERT_DOUBLE_EQUAL(st_hd_quantile(a, 5, 0), 1, 0);
    CU_ASSERT_DOUBLE_EQUAL(st_hd_quantile(a, 5, 100), 10, 0);
    CU_ASSERT_TRUE(isnan(st_hd_quantile(a, 0, 50)));
}

static double lcg_uniform(uint32_t *s)
{
    *s = *s * 1664525u + 1013904223u;
    return (*s >> 8) / 16777216.0;
}

/* The soak's case (cli/cmd_soak.c): two windows of the same two clusters
   (~140 ms and ~650 ms), the second with 8 more slow turns of 80, so that
   its median lies on the other side of the gap; against a slowdown every
   value shares. Limits 10 % or 10 ms, as the soak's. */
static void test_shift_test(void)
{
    enum { N = 80 };
    static const double deciles[9] = {10, 20, 30, 40, 50, 60, 70, 80, 90}, p50 = 50, p95 = 95;
    double first[N], last[N], slower[N], shift, p;
    uint32_t s = 7;
    for (int i = 0; i < N; i++) {
        bool slow_first = i % 2 == 0, slow_last = i % 2 == 0 || i % 10 == 1;
        first[i] = (slow_first ? 620 : 110) + 60 * lcg_uniform(&s);
        last[i] = (slow_last ? 620 : 110) + 60 * lcg_uniform(&s);
        slower[i] = first[i] * 1.15;
    }
    /* the median alone: 5.6 limits, though no turn got slower */
    CU_ASSERT_EQUAL(st_shift_test(first, N, last, N, &p50, 1, 0.1, 10, 999, 1, &shift, &p), ST_OK);
    CU_ASSERT_TRUE(shift > 5);
    /* the deciles: 0.3 limits, and chance */
    CU_ASSERT_EQUAL(st_shift_test(first, N, last, N, deciles, 9, 0.1, 10, 999, 1, &shift, &p),
                    ST_OK);
    CU_ASSERT_TRUE(fabs(shift) < 1);
    CU_ASSERT_TRUE(p > 0.05);
    /* every turn 15 % slower: 1.5 limits on the deciles and on the p95, not chance */
    CU_ASSERT_EQUAL(st_shift_test(first, N, slower, N, deciles, 9, 0.1, 10, 999, 1, &shift, &p),
                    ST_OK);
    CU_ASSERT_DOUBLE_EQUAL(shift, 1.5, 0.01);
    CU_ASSERT_TRUE(p < 0.01);
    CU_ASSERT_EQUAL(st_shift_test(first, N, slower, N, &p95, 1, 0.1, 10, 999, 1, &shift, &p),
                    ST_OK);
    CU_ASSERT_DOUBLE_EQUAL(shift, 1.5, 0.01);
    CU_ASSERT_TRUE(p < 0.01);
    /* the same values: no shift, p 1; the same seed, the same p */
    CU_ASSERT_EQUAL(st_shift_test(first, N, first, N, &p95, 1, 0.1, 10, 999, 1, &shift, &p), ST_OK);
    CU_ASSERT_DOUBLE_EQUAL(shift, 0, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(p, 1, 1e-12);
    double p2;
    st_shift_test(first, N, last, N, deciles, 9, 0.1, 10, 999, 3, NULL, &p);
    st_shift_test(first, N, last, N, deciles, 9, 0.1, 10, 999, 3, NULL, &p2);
    CU_ASSERT_DOUBLE_EQUAL(p, p2, 0);
    /* the same samples in another order: the same p */
    double rev_first[N], rev_last[N];
    for (int i = 0; i < N; i++)
        rev_first[i] = first[N - 1 - i], rev_last[i] = last[(i * 7) % N];
    st_shift_test(rev_first, N, rev_last, N, deciles, 9, 0.1, 10, 999, 3, NULL, &p2);
    CU_ASSERT_DOUBLE_EQUAL(p, p2, 0);
    /* refusals */
    CU_ASSERT_EQUAL(st_shift_test(first, 0, last, N, &p50, 1, 0.1, 10, 999, 1, &shift, &p),
                    ST_ERR_INVALID);
    CU_ASSERT_TRUE(isnan(shift) && isnan(p));
    CU_ASSERT_PTR_NOT_NULL(strstr(st_errmsg(), "non-empty"));
    double bad = 101;
    CU_ASSERT_EQUAL(st_shift_test(first, N, last, N, &bad, 1, 0.1, 10, 999, 1, &shift, &p),
                    ST_ERR_INVALID);
    CU_ASSERT_EQUAL(st_shift_test(first, N, last, N, &p50, 1, -0.1, 10, 999, 1, &shift, &p),
                    ST_ERR_INVALID);
}

static bool touch(const char *dir, const char *name)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    return f && fputs("x", f) >= 0 && fclose(f) == 0;
}

static bool exists(const char *dir, const char *name)
{
    char path[4200];
    snprintf(path, sizeof path, "%s%s%s", dir, name ? "/" : "", name ? name : "");
    struct stat st;
    return lstat(path, &st) == 0;
}

/* st_tmpdir_make: under TMPDIR, private, /tmp where TMPDIR does not fit,
   refusals named; st_tmpdir_remove: everything (sub-folders, links not
   followed) or everything but the kept log */
static void test_tmpdir(void)
{
    const char *outer = st_test_tmpdir();
    const char *old = getenv("TMPDIR");
    char *saved = old ? strdup(old) : NULL;
    setenv("TMPDIR", outer, 1);

    char dir[4096];
    CU_ASSERT_EQUAL_FATAL(st_tmpdir_make(dir, sizeof dir, "st-unit"), ST_OK);
    CU_ASSERT_EQUAL(strncmp(dir, outer, strlen(outer)), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(dir, "/st-unit."));
    struct stat st;
    CU_ASSERT_TRUE(stat(dir, &st) == 0 && S_ISDIR(st.st_mode) && (st.st_mode & 0777) == 0700);
    /* a file outside, reached by a link inside: the link goes, the file stays */
    CU_ASSERT_TRUE(touch(outer, "outside.txt"));
    char link_path[4200], target[4200], sub[4200];
    snprintf(target, sizeof target, "%s/outside.txt", outer);
    snprintf(link_path, sizeof link_path, "%s/link", dir);
    CU_ASSERT_EQUAL(symlink(target, link_path), 0);
    snprintf(sub, sizeof sub, "%s/deep", dir);
    CU_ASSERT_EQUAL(mkdir(sub, 0700), 0);
    CU_ASSERT_TRUE(touch(sub, "a.wav") && touch(dir, "b.wav") && touch(dir, "log"));
    /* keep the log: only it and the folder stay */
    st_tmpdir_remove(dir, "log");
    CU_ASSERT_TRUE(exists(dir, "log"));
    CU_ASSERT_FALSE(exists(dir, "b.wav") || exists(dir, "deep") || exists(dir, "link"));
    CU_ASSERT_TRUE(exists(target, NULL));
    /* nothing kept: the folder goes too; a keep that is absent keeps nothing */
    st_tmpdir_remove(dir, NULL);
    CU_ASSERT_FALSE(exists(dir, NULL));
    CU_ASSERT_EQUAL_FATAL(st_tmpdir_make(dir, sizeof dir, "st-unit"), ST_OK);
    CU_ASSERT_TRUE(touch(dir, "b.wav"));
    st_tmpdir_remove(dir, "log");
    CU_ASSERT_FALSE(exists(dir, NULL));
    st_tmpdir_remove("", NULL); /* nothing made: nothing done */

    /* a TMPDIR too long for the caller's buffer: /tmp instead */
    char small[4096];
    size_t cap = strlen(outer) + 5; /* not room for outer's "/st-unit.XXXXXX" */
    CU_ASSERT_EQUAL_FATAL(st_tmpdir_make(small, cap < 20 ? 20 : cap, "st-unit"), ST_OK);
    CU_ASSERT_EQUAL(strncmp(small, "/tmp/st-unit.", 13), 0);
    st_tmpdir_remove(small, NULL);
    CU_ASSERT_FALSE(exists(small, NULL));

    /* refusals: a prefix with '/', a TMPDIR that is not there */
    CU_ASSERT_EQUAL(st_tmpdir_make(dir, sizeof dir, "../x"), ST_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(st_errmsg(), "plain name"));
    char missing[4200];
    snprintf(missing, sizeof missing, "%s/not-there", outer);
    setenv("TMPDIR", missing, 1);
    CU_ASSERT_EQUAL(st_tmpdir_make(dir, sizeof dir, "st-unit"), ST_ERR_IO);
    CU_ASSERT_STRING_EQUAL(dir, "");
    CU_ASSERT_PTR_NOT_NULL(strstr(st_errmsg(), missing));
    CU_ASSERT_PTR_NOT_NULL(strstr(st_errmsg(), "TMPDIR"));

    if (saved)
        setenv("TMPDIR", saved, 1);
    else
        unsetenv("TMPDIR");
    free(saved);
}

CU_TestInfo st_tests_base[] = {
    {"strerror", test_strerror},
    {"errmsg_per_thread", test_errmsg_per_thread},
    {"log_callback", test_log_callback},
    {"rt_guard_and_alloc_counter", test_rt_guard_and_alloc_counter},
    {"clock", test_clock},
    {"hd_quantile", test_hd_quantile},
    {"shift_test", test_shift_test},
    {"tmpdir", test_tmpdir},
    CU_TEST_INFO_NULL,
};
