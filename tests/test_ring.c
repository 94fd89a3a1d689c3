/*  tests/test_ring.c - suite `ring`: the SPSC lock-free ring, alone and under
    two threads at full speed. */
#include "testutil.h"

#include "audio/audio.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static void test_init_rejects_bad_capacity(void)
{
    st_ring r;
    float buf[12];
    CU_ASSERT_EQUAL(st_ring_init(&r, buf, sizeof(float), 12), ST_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(st_errmsg(), "power of two"));
    CU_ASSERT_EQUAL(st_ring_init(&r, buf, sizeof(float), 0), ST_ERR_INVALID);
    CU_ASSERT_EQUAL(st_ring_init(&r, NULL, sizeof(float), 8), ST_ERR_INVALID);
    CU_ASSERT_EQUAL(st_ring_init(&r, buf, sizeof(float), 8), ST_OK);
}

static void test_wraparound(void)
{
    st_ring r;
    int storage[8];
    st_ring_init(&r, storage, sizeof(int), 8);
    int next_in = 0, next_out = 0;
    for (int round = 0; round < 50; round++) {
        int chunk[8];
        size_t n = (size_t)(round % 7) + 1;
        for (size_t i = 0; i < n; i++)
            chunk[i] = next_in + (int)i;
        size_t w = st_ring_write(&r, chunk, n);
        next_in += (int)w;
        CU_ASSERT_TRUE(w <= n);
        int got[8];
        size_t m = st_ring_read(&r, got, (size_t)(round % 5) + 1);
        for (size_t i = 0; i < m; i++)
            CU_ASSERT_EQUAL(got[i], next_out + (int)i);
        next_out += (int)m;
        CU_ASSERT_EQUAL(st_ring_read_available(&r), (size_t)(next_in - next_out));
        CU_ASSERT_EQUAL(st_ring_write_available(&r), 8 - (size_t)(next_in - next_out));
    }
    CU_ASSERT_EQUAL(st_ring_write_index(&r), (uint64_t)next_in);
    CU_ASSERT_EQUAL(st_ring_read_index(&r), (uint64_t)next_out);
}

static void test_push_pull_count(void)
{
    st_ring r;
    float storage[4];
    st_ring_init(&r, storage, sizeof(float), 4);
    float in[6] = {1, 2, 3, 4, 5, 6};
    CU_ASSERT_EQUAL(st_ring_push(&r, in, 6), 4);
    CU_ASSERT_EQUAL(st_ring_overruns(&r), 2);
    float out[6] = {9, 9, 9, 9, 9, 9};
    CU_ASSERT_EQUAL(st_ring_pull(&r, out, 6), 4);
    CU_ASSERT_EQUAL(st_ring_underruns(&r), 2);
    CU_ASSERT_EQUAL(out[0], 1);
    CU_ASSERT_EQUAL(out[3], 4);
    CU_ASSERT_EQUAL(out[4], 0);
    CU_ASSERT_EQUAL(out[5], 0);
    /* Plain write/read never count: partial moves are normal for them. */
    CU_ASSERT_EQUAL(st_ring_write(&r, in, 6), 4);
    CU_ASSERT_EQUAL(st_ring_read(&r, out, 6), 4);
    CU_ASSERT_EQUAL(st_ring_overruns(&r), 2);
    CU_ASSERT_EQUAL(st_ring_underruns(&r), 2);
    CU_ASSERT_EQUAL(st_ring_write(&r, in, 3), 3);
    CU_ASSERT_EQUAL(st_ring_skip(&r, 10), 3);
    CU_ASSERT_EQUAL(st_ring_read_available(&r), 0);
}

/* ---- two threads at full speed ------------------------------------------- */

typedef struct {
    st_ring ring;
    uint64_t total;
    bool lossy;          /* producer uses push (drops when full) instead of retrying */
    uint64_t sent;
} spsc_job;

static void *spsc_producer(void *arg)
{
    spsc_job *j = arg;
    uint32_t block[97];
    uint64_t next = 0;
    unsigned seed = 12345;
    while (next < j->total) {
        seed = seed * 1103515245u + 12345u;
        size_t n = 1 + (seed >> 16) % 97;
        if (n > j->total - next)
            n = (size_t)(j->total - next);
        for (size_t i = 0; i < n; i++)
            block[i] = (uint32_t)(next + i);
        if (j->lossy) {
            st_ring_push(&j->ring, block, n);
            next += n;
        } else {
            next += st_ring_write(&j->ring, block, n);
        }
    }
    __atomic_store_n(&j->sent, next, __ATOMIC_RELEASE);
    return NULL;
}

static void run_spsc(bool lossy)
{
    const uint64_t total = getenv("ST_MEMCHECK") ? 200000 : 20000000;
    spsc_job j = {.total = total, .lossy = lossy};
    uint32_t *storage = malloc(1024 * sizeof *storage);
    st_ring_init(&j.ring, storage, sizeof *storage, 1024);
    pthread_t t;
    pthread_create(&t, NULL, spsc_producer, &j);
    uint32_t buf[61];
    uint64_t got = 0, bad = 0;
    int64_t last = -1;
    unsigned seed = 777;
    for (;;) {
        seed = seed * 1103515245u + 12345u;
        size_t n = st_ring_read(&j.ring, buf, 1 + (seed >> 16) % 61);
        for (size_t i = 0; i < n; i++) {
            /* Lossless: every value in order. Lossy: strictly increasing. */
            if (lossy ? (int64_t)buf[i] <= last : (int64_t)buf[i] != last + 1)
                bad++;
            last = buf[i];
        }
        got += n;
        if (!n && (int64_t)last == (int64_t)total - 1)
            break;
        if (!n && lossy && __atomic_load_n(&j.sent, __ATOMIC_ACQUIRE) == total &&
            st_ring_read_available(&j.ring) == 0)
            break;
    }
    pthread_join(t, NULL);
    CU_ASSERT_EQUAL(bad, 0);
    if (lossy) {
        CU_ASSERT_EQUAL(got + st_ring_overruns(&j.ring), total);
    } else {
        CU_ASSERT_EQUAL(got, total);
        CU_ASSERT_EQUAL(st_ring_overruns(&j.ring), 0);
    }
    CU_ASSERT_EQUAL(st_ring_write_index(&j.ring), got);
    free(storage);
}

static void test_two_threads_lossless(void)
{
    run_spsc(false);
}

static void test_two_threads_push_counts_overruns(void)
{
    run_spsc(true);
}

CU_TestInfo st_tests_ring[] = {
    {"init_rejects_bad_capacity", test_init_rejects_bad_capacity},
    {"wraparound", test_wraparound},
    {"push_pull_count", test_push_pull_count},
    {"two_threads_lossless", test_two_threads_lossless},
    {"two_threads_push_counts_overruns", test_two_threads_push_counts_overruns},
    CU_TEST_INFO_NULL,
};
