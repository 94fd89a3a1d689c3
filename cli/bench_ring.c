/*  cli/bench_ring.c - `spiketalk bench ring`: the SPSC ring moving audio
    blocks between two threads at full speed, against the obvious peer, a
    mutex + condition variable queue of the same capacity. */
#include "cli.h"

#include "audio/audio.h"

#include <getopt.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    st_ring ring;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    float *buf;
    size_t cap, head, count;
    uint64_t total;
    size_t block;
    bool use_mutex;
    uint64_t checksum_in, checksum_out;
} bench_q;

static size_t mq_write(bench_q *q, const float *x, size_t n)
{
    pthread_mutex_lock(&q->mu);
    size_t space = q->cap - q->count;
    if (n > space)
        n = space;
    for (size_t i = 0; i < n; i++)
        q->buf[(q->head + q->count + i) % q->cap] = x[i];
    q->count += n;
    pthread_cond_signal(&q->cv);
    pthread_mutex_unlock(&q->mu);
    return n;
}

static size_t mq_read(bench_q *q, float *x, size_t n)
{
    pthread_mutex_lock(&q->mu);
    while (q->count == 0)
        pthread_cond_wait(&q->cv, &q->mu);
    if (n > q->count)
        n = q->count;
    for (size_t i = 0; i < n; i++)
        x[i] = q->buf[(q->head + i) % q->cap];
    q->head = (q->head + n) % q->cap;
    q->count -= n;
    pthread_mutex_unlock(&q->mu);
    return n;
}

static void *producer(void *arg)
{
    bench_q *q = arg;
    float *block = malloc(q->block * sizeof(float));
    uint64_t sent = 0, sum = 0;
    while (sent < q->total) {
        size_t want = q->block;
        if (want > q->total - sent)
            want = (size_t)(q->total - sent);
        for (size_t i = 0; i < want; i++) {
            block[i] = (float)((sent + i) & 0xffff);
        }
        size_t off = 0;
        while (off < want) {
            size_t n = q->use_mutex ? mq_write(q, block + off, want - off)
                                    : st_ring_write(&q->ring, block + off, want - off);
            off += n;
        }
        for (size_t i = 0; i < want; i++)
            sum += (uint64_t)block[i];
        sent += want;
    }
    q->checksum_in = sum;
    free(block);
    return NULL;
}

static double run_once(size_t block, uint64_t total, bool use_mutex, bool *ok)
{
    bench_q q;
    memset(&q, 0, sizeof q);
    q.cap = 8192;
    q.buf = malloc(q.cap * sizeof(float));
    st_ring_init(&q.ring, q.buf, sizeof(float), q.cap);
    pthread_mutex_init(&q.mu, NULL);
    pthread_cond_init(&q.cv, NULL);
    q.total = total;
    q.block = block;
    q.use_mutex = use_mutex;
    float *out = malloc(block * sizeof(float));
    double t0 = st_now_s();
    pthread_t th;
    pthread_create(&th, NULL, producer, &q);
    uint64_t got = 0, sum = 0;
    while (got < total) {
        size_t n = use_mutex ? mq_read(&q, out, block) : st_ring_read(&q.ring, out, block);
        for (size_t i = 0; i < n; i++)
            sum += (uint64_t)out[i];
        got += n;
    }
    pthread_join(th, NULL);
    double dt = st_now_s() - t0;
    *ok = *ok && sum == q.checksum_in;
    pthread_mutex_destroy(&q.mu);
    pthread_cond_destroy(&q.cv);
    free(q.buf);
    free(out);
    return (double)total / dt;
}

int st_bench_ring(int argc, char **argv)
{
    static const struct option opts[] = {{"frames", required_argument, 0, 'f'},
                                         {"repeat", required_argument, 0, 'n'},
                                         {"json", no_argument, 0, 'J'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    long frames = 20000000, repeat = 5;
    bool json = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'f':
            if (!cli_parse_int("bench ring", "--frames", optarg, 1000, 2000000000L, &frames))
                return 2;
            break;
        case 'n':
            if (!cli_parse_int("bench ring", "--repeat", optarg, 1, 100, &repeat))
                return 2;
            break;
        case 'J': json = true; break;
        case 'h':
            printf("usage: spiketalk bench ring [--frames N] [--repeat N] [--json]\n\n"
                   "Moves N float frames (default 20 000 000) from a producer thread to a\n"
                   "consumer thread in blocks of 16, 160 and 1024 frames, through spiketalk's\n"
                   "lock-free SPSC ring and through a mutex + condition-variable queue of the\n"
                   "same capacity (8192), each repeated N times (default 5); prints the median\n"
                   "throughput and the ratio. Data is checksummed on both sides.\n");
            return 0;
        default: return 2;
        }
    }
    report r;
    report_init(&r, "ring", "SPSC ring vs mutex+condvar queue (2 threads, capacity 8192)", argc,
                argv);
    report_col_num(&r, "block_frames", "");
    report_col_num(&r, "ring_mframes_per_s", "M/s");
    report_col_num(&r, "mutex_mframes_per_s", "M/s");
    report_col_num(&r, "speedup", "x");
    report_col_num(&r, "ring_ns_per_block", "ns");
    static const size_t blocks[] = {16, 160, 1024};
    bool ok = true;
    for (size_t b = 0; b < 3; b++) {
        double ring[100], mtx[100];
        for (long k = 0; k < repeat; k++) {
            ring[k] = run_once(blocks[b], (uint64_t)frames, false, &ok);
            mtx[k] = run_once(blocks[b], (uint64_t)frames, true, &ok);
        }
        double rm = cli_median(ring, (int)repeat), mm = cli_median(mtx, (int)repeat);
        int row = report_row(&r);
        report_set_num(&r, row, "block_frames", (double)blocks[b]);
        report_set_num(&r, row, "ring_mframes_per_s", rm / 1e6);
        report_set_num(&r, row, "mutex_mframes_per_s", mm / 1e6);
        report_set_num(&r, row, "speedup", rm / mm);
        report_set_num(&r, row, "ring_ns_per_block", 1e9 * (double)blocks[b] / rm);
    }
    report_note(&r, "median of %ld runs of %ld frames each; checksums %s", repeat, frames,
                ok ? "matched" : "DID NOT MATCH");
    report_print(&r, json, stdout);
    return ok ? 0 : 1;
}
