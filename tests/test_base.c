/*  tests/test_base.c - suite `base`: error messages, logging, the real-time
    guard, the clock. */
#include "testutil.h"

#include "base/base.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

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

CU_TestInfo st_tests_base[] = {
    {"strerror", test_strerror},
    {"errmsg_per_thread", test_errmsg_per_thread},
    {"log_callback", test_log_callback},
    {"rt_guard_and_alloc_counter", test_rt_guard_and_alloc_counter},
    {"clock", test_clock},
    CU_TEST_INFO_NULL,
};
