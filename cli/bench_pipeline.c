/*  cli/bench_pipeline.c - `spiketalk bench pipeline`: what the pipeline
    runtime costs. A 10 ms audio frame (160 float samples at 16 kHz: a
    296-byte header and a 652-byte payload) goes from a source stage to a
    sink stage, over one hop and through five pass-through stages (a thread
    each, and fused on one thread with `thread =`), on each
    transport (inproc, ipc, tcp on the loopback), every stage a thread of
    one process. The peer, measured in the same run, is bare libzmq: the
    same two frames through the same number of PUSH/PULL hops between
    threads that do nothing else. Latency is one-way, from the source's
    send stamp (hop 0) to the sink's receive, on CLOCK_MONOTONIC; frames
    are paced (default every 1 ms), so each one meets idle stages, as live
    audio does. Throughput is a burst with back-pressure (shed = no).
*/
#include "cli.h"

#include "pipeline/pipeline.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#define CMD "bench pipeline"
#define FRAME 160           /* 10 ms at 16 kHz */
#define WARMUP 50

typedef struct {
    double *lat_us;
    double *inside_us;      /* time inside the pass-through stages (their hops' compute) */
    size_t cap, n;
    uint64_t received, first_ns, last_ns;
} sink_result;

/* ---- the runtime's side: two stage types for the bench ---------------------------- */

typedef struct {
    long frames, sent, batch;
    float x[FRAME];
} bsrc;

static int bsrc_create(st_stage *s, void **self)
{
    bsrc *b = calloc(1, sizeof *b);
    if (!b)
        return st_error(ST_ERR_NOMEM, "out of memory");
    *self = b;
    double interval_us;
    int rc;
    if ((rc = st_stage_param_int(s, "frames", 1000, 1, 100000000, &b->frames)) ||
        (rc = st_stage_param_double(s, "interval_us", 1000, 0, 1e7, &interval_us)))
        return rc;
    for (int i = 0; i < FRAME; i++)
        b->x[i] = (float)sin(i * 0.1) * 0.1f;
    b->batch = interval_us > 0 ? 1 : 32;
    st_stage_set_tick(s, interval_us / 1000);
    return ST_OK;
}

static int bsrc_tick(st_stage *s, void *self)
{
    bsrc *b = self;
    for (long k = 0; k < b->batch; k++) {
        if (b->sent >= b->frames)
            return ST_ERR_END;
        st_wire_header h;
        st_stage_header(s, NULL, &h);
        h.sample_index = (uint64_t)b->sent * FRAME;
        b->sent++;
        int rc = st_stage_send_pcm(s, &h, 16000, b->x, FRAME);
        if (rc)
            return rc;
    }
    return ST_OK;
}

static int bench_nodata(st_stage *s, void *self, const st_wire_msg *m)
{
    return ST_OK;
}

static const st_stage_type bench_source = {
    .name = "bench_source",
    .summary = "bench: `frames` 10 ms frames, one every `interval_us` (0: a burst)",
    .create = bsrc_create,
    .data = bench_nodata,
    .tick = bsrc_tick,
    .destroy = free,
};

static int bsink_create(st_stage *s, void **self)
{
    *self = st_stage_user_data(s);
    return *self ? ST_OK : st_error(ST_ERR_INVALID, "bench_sink runs only inside the bench");
}

static int bsink_data(st_stage *s, void *self, const st_wire_msg *m)
{
    sink_result *r = self;
    uint64_t now = st_wire_now_ns();
    if (m->h.type != ST_MSG_PCM || !m->h.n_hops)
        return ST_OK;
    if (!r->received)
        r->first_ns = now;
    r->last_ns = now;
    r->received++;
    if (r->n < r->cap) {
        uint64_t inside = 0;
        for (int i = 1; i < m->h.n_hops; i++)
            inside += m->h.hops[i].compute_ns;
        r->inside_us[r->n] = (double)inside / 1e3;
        r->lat_us[r->n++] = (double)(now - m->h.hops[0].sent_ns) / 1e3;
    }
    return ST_OK;
}

static void bsink_destroy(void *self)
{
    (void)self; /* the bench owns the results */
}

static const st_stage_type bench_sink = {
    .name = "bench_sink",
    .summary = "bench: records each frame's latency since its first hop",
    .create = bsink_create,
    .data = bsink_data,
    .destroy = bsink_destroy,
};

static const char *const transports[] = {"inproc", "ipc", "tcp"};

/* Runs source -> `stages` pass-throughs -> sink; fills r. */
static int run_runtime(const char *transport, int stages, bool fused, long frames,
                       double interval_us, double spin_us, sink_result *r)
{
    char text[4096];
    size_t len = (size_t)snprintf(text, sizeof text,
                                  "[pipeline]\ntransport = %s\nhwm = 1000\nheartbeat_ms = 2000\n"
                                  "metrics_ms = 10000\nspin_us = %g\n"
                                  "[stage.src]\ntype = bench_source\nframes = %ld\n"
                                  "interval_us = %g\nshed = no\nout = %s\n",
                                  transport, spin_us, frames, interval_us, stages ? "p1" : "sink");
    for (int i = 1; i <= stages; i++) {
        char next[16];
        if (i < stages)
            snprintf(next, sizeof next, "p%d", i + 1);
        else
            snprintf(next, sizeof next, "sink");
        len += (size_t)snprintf(text + len, sizeof text - len,
                                "[stage.p%d]\ntype = passthrough\nshed = no\nout = %s\n%s", i, next,
                                fused && i > 1 ? "thread = p1\n" : "");
    }
    snprintf(text + len, sizeof text - len, "[stage.sink]\ntype = bench_sink\n");
    int rc;
    st_pipe_config *cfg = st_pipe_config_parse(text, "<bench>", &rc);
    if (!cfg)
        return rc;
    st_pipe_params pp = st_pipe_default_params();
    pp.user_data = r;
    st_pipe *p = st_pipe_new(cfg, &pp, &rc);
    st_pipe_config_destroy(&cfg);
    if (!p)
        return rc;
    r->n = 0;
    r->received = 0;
    rc = st_pipe_run(p, 120, NULL);
    st_pipe_destroy(&p);
    return rc;
}

/* ---- the peer: bare libzmq ---------------------------------------------------------- */

typedef struct {
    void *in, *out;         /* either may be NULL */
    long frames;
    double interval_us;
    sink_result *r;
} raw_node;

static void *raw_forward(void *arg)
{
    raw_node *n = arg;
    zmq_msg_t a, b;
    zmq_msg_init(&a);
    zmq_msg_init(&b);
    for (;;) {
        if (zmq_msg_recv(&a, n->in, 0) < 0 || zmq_msg_recv(&b, n->in, 0) < 0)
            break;
        bool last = ((unsigned char *)zmq_msg_data(&a))[8] == 1;
        zmq_msg_send(&a, n->out, ZMQ_SNDMORE);
        zmq_msg_send(&b, n->out, 0);
        if (last)
            break;
    }
    zmq_msg_close(&a);
    zmq_msg_close(&b);
    return NULL;
}

static void *raw_receive(void *arg)
{
    raw_node *n = arg;
    zmq_msg_t a, b;
    zmq_msg_init(&a);
    zmq_msg_init(&b);
    for (;;) {
        if (zmq_msg_recv(&a, n->in, 0) < 0 || zmq_msg_recv(&b, n->in, 0) < 0)
            break;
        uint64_t now = st_wire_now_ns(), t;
        const unsigned char *h = zmq_msg_data(&a);
        memcpy(&t, h, 8);
        if (h[8] == 1)
            break;
        sink_result *r = n->r;
        if (!r->received)
            r->first_ns = now;
        r->last_ns = now;
        r->received++;
        if (r->n < r->cap)
            r->lat_us[r->n++] = (double)(now - t) / 1e3;
    }
    zmq_msg_close(&a);
    zmq_msg_close(&b);
    return NULL;
}

static void raw_send(void *out, long frames, double interval_us)
{
    unsigned char hdr[ST_WIRE_HEADER_BYTES], body[12 + 4 * FRAME];
    memset(hdr, 0, sizeof hdr);
    memset(body, 0, sizeof body);
    double next = st_now_s();
    for (long i = 0; i <= frames; i++) {
        if (interval_us > 0) {
            next += interval_us / 1e6;
            st_sleep_until_s(next);
        }
        uint64_t t = st_wire_now_ns();
        memcpy(hdr, &t, 8);
        hdr[8] = i == frames ? 1 : 0;
        zmq_send(out, hdr, sizeof hdr, ZMQ_SNDMORE);
        zmq_send(out, body, sizeof body, 0);
    }
}

static int run_raw(const char *transport, int hops, long frames, double interval_us,
                   sink_result *r, const char *ipc_dir)
{
    void *ctx = zmq_ctx_new();
    int n_links = hops;    /* sender -> fwd ... -> receiver: `hops` links */
    void *pull[16] = {NULL}, *push[16] = {NULL};
    if (n_links < 1 || n_links > 16)
        return st_error(ST_ERR_INVALID, "raw: %d hops", n_links);
    int hwm = 1000;
    for (int i = 0; i < n_links; i++) {
        pull[i] = zmq_socket(ctx, ZMQ_PULL);
        push[i] = zmq_socket(ctx, ZMQ_PUSH);
        zmq_setsockopt(pull[i], ZMQ_RCVHWM, &hwm, sizeof hwm);
        zmq_setsockopt(push[i], ZMQ_SNDHWM, &hwm, sizeof hwm);
        char ep[256];
        if (!strcmp(transport, "inproc"))
            snprintf(ep, sizeof ep, "inproc://raw-%d", i);
        else if (!strcmp(transport, "ipc"))
            snprintf(ep, sizeof ep, "ipc://%s/raw-%d", ipc_dir, i);
        else
            snprintf(ep, sizeof ep, "tcp://127.0.0.1:*");
        if (zmq_bind(pull[i], ep)) {
            int rc = st_error(ST_ERR_IO, "raw: bind %s: %s", ep, zmq_strerror(errno));
            for (int j = 0; j <= i; j++) {
                zmq_close(pull[j]);
                zmq_close(push[j]);
            }
            zmq_ctx_term(ctx);
            return rc;
        }
        size_t len = sizeof ep;
        zmq_getsockopt(pull[i], ZMQ_LAST_ENDPOINT, ep, &len);
        zmq_connect(push[i], ep);
    }
    raw_node nodes[16];
    pthread_t th[16];
    r->n = 0;
    r->received = 0;
    for (int i = 0; i < n_links; i++) {
        nodes[i] = (raw_node){.in = pull[i], .out = i + 1 < n_links ? push[i + 1] : NULL, .r = r};
        pthread_create(&th[i], NULL, i + 1 < n_links ? raw_forward : raw_receive, &nodes[i]);
    }
    usleep(20000); /* connections settle */
    raw_send(push[0], frames, interval_us);
    for (int i = 0; i < n_links; i++)
        pthread_join(th[i], NULL);
    int zero = 0;
    for (int i = 0; i < n_links; i++) {
        zmq_setsockopt(push[i], ZMQ_LINGER, &zero, sizeof zero);
        zmq_close(pull[i]);
        zmq_close(push[i]);
    }
    zmq_ctx_term(ctx);
    if (!strcmp(transport, "ipc"))
        for (int i = 0; i < n_links; i++) {
            char path[256];
            snprintf(path, sizeof path, "%s/raw-%d", ipc_dir, i);
            unlink(path); /* libzmq leaves the socket files */
        }
    return ST_OK;
}

/* ---- figures ------------------------------------------------------------------------ */

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void pct(sink_result *r, double *values, double *p50, double *p99, double *max)
{
    size_t skip = r->n > 2 * WARMUP ? WARMUP : 0;
    size_t n = r->n - skip;
    if (!n) {
        *p50 = *p99 = *max = NAN;
        return;
    }
    double *v = values + skip;
    qsort(v, n, sizeof *v, cmp);
    *p50 = v[n / 2];
    *p99 = v[(size_t)((double)(n - 1) * 0.99)];
    *max = v[n - 1];
}

static double rate_kmsg(const sink_result *r)
{
    return r->received > 1 && r->last_ns > r->first_ns
               ? (double)(r->received - 1) / ((double)(r->last_ns - r->first_ns) / 1e9) / 1e3
               : NAN;
}

int st_bench_pipeline(int argc, char **argv)
{
    static const struct option opts[] = {{"frames", required_argument, 0, 'f'},
                                         {"interval-us", required_argument, 0, 'i'},
                                         {"burst", required_argument, 0, 'b'},
                                         {"transport", required_argument, 0, 't'},
                                         {"spin-us", required_argument, 0, 's'},
                                         {"repeat", required_argument, 0, 'n'},
                                         {"json", no_argument, 0, 'J'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    long frames = 1000, burst = 20000, repeat = 3;
    double interval_us = 1000;
    bool json = false;
    const char *only = NULL;
    double spin_us = 0;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'f':
            if (!cli_parse_int(CMD, "--frames", optarg, 200, 10000000, &frames))
                return 2;
            break;
        case 'i':
            if (!cli_parse_double(CMD, "--interval-us", optarg, 50, 1e6, &interval_us))
                return 2;
            break;
        case 'b':
            if (!cli_parse_int(CMD, "--burst", optarg, 1000, 10000000, &burst))
                return 2;
            break;
        case 's':
            if (!cli_parse_double(CMD, "--spin-us", optarg, 0, 1e6, &spin_us))
                return 2;
            break;
        case 'n':
            if (!cli_parse_int(CMD, "--repeat", optarg, 1, 16, &repeat))
                return 2;
            break;
        case 't':
            if (strcmp(optarg, "inproc") && strcmp(optarg, "ipc") && strcmp(optarg, "tcp")) {
                cli_fail(CMD, "--transport: '%s' is not inproc, ipc or tcp", optarg);
                return 2;
            }
            only = optarg;
            break;
        case 'J': json = true; break;
        case 'h':
            printf("usage: spiketalk bench pipeline [--frames N] [--interval-us U] [--burst N] [--repeat N]\n"
                   "                                [--transport inproc|ipc|tcp] [--spin-us U] [--json]\n\n"
                   "A 10 ms audio frame (160 float samples, 948 bytes on the wire) from a source\n"
                   "stage to a sink stage, over one hop and through five pass-through stages, on\n"
                   "inproc, ipc and tcp (loopback); every stage a thread of this process. N frames\n"
                   "(default 1000, the first %d not counted) are sent one every U microseconds\n"
                   "(default 1000: idle stages between frames, as with live audio); latency is\n"
                   "one-way, source send to sink receive. Then a burst of --burst frames (default\n"
                   "20000) with back-pressure gives the throughput. The peer, in the same run, is\n"
                   "bare libzmq moving the same two frames through the same number of hops.\n"
                   "The two take turns --repeat times (default 3); each figure is the median.\n"
                   "inside_*_us is the time the frame spent inside the five stages (each hop's\n"
                   "compute_ns: arrival to departure), the rest is transport and thread wake-ups.\n"
                   "The \"fused\" rows run the five on one thread (configuration key\n"
                   "thread = p1 in p2..p5): direct calls between them, sockets only at the ends;\n"
                   "their zmq_* figures are the same six-hop peer.\n"
                   "--transport measures one transport only; --spin-us U adds rows where every\n"
                   "stage polls U microseconds before sleeping (pipeline key spin_us): hops\n"
                   "without wake-ups, for machines with a core per stage to spare.\n"
                   "Target: five pass-through stages add under 100 us at p99 on inproc.\n"
                   "Fields: docs/BENCH.md.\n", WARMUP);
            return 0;
        default: return 2;
        }
    }
    st_stage_type_register(&bench_source);
    st_stage_type_register(&bench_sink);
    sink_result r = {.cap = (size_t)(frames > burst ? frames : burst) + 16};
    r.lat_us = malloc(r.cap * sizeof(double));
    r.inside_us = malloc(r.cap * sizeof(double));
    char ipc_dir[81]; /* ipc paths are short (107 bytes): a longer TMPDIR falls back to /tmp */
    bool fed = r.lat_us && r.inside_us;
    if (!fed || st_tmpdir_make(ipc_dir, sizeof ipc_dir, "spiketalk-bench")) {
        free(r.lat_us);
        free(r.inside_us);
        return cli_fail(CMD, "%s", fed ? st_errmsg() : "out of memory");
    }
    report rep;
    report_init(&rep, "pipeline", "pipeline runtime: 10 ms frames, one hop and five pass-through "
                "stages, vs bare libzmq", argc, argv);
    report_col_text(&rep, "path");
    report_col_text(&rep, "transport");
    report_col_num(&rep, "hops", "");
    report_col_num(&rep, "p50_us", "us");
    report_col_num(&rep, "p99_us", "us");
    report_col_num(&rep, "max_us", "us");
    report_col_num(&rep, "inside_p50_us", "us");
    report_col_num(&rep, "inside_p99_us", "us");
    report_col_num(&rep, "zmq_p50_us", "us");
    report_col_num(&rep, "zmq_p99_us", "us");
    report_col_num(&rep, "overhead_p99_us", "us");
    report_col_num(&rep, "kmsg_per_s", "k/s");
    report_col_num(&rep, "zmq_kmsg_per_s", "k/s");
    report_col_num(&rep, "mb_per_s", "MB/s");
    report_col_num(&rep, "lost", "");
    int status = 0;
    double five_inproc_p99 = NAN, five_inside_p99 = NAN, fused_inproc_p99 = NAN;
    /* 0: one hop; 1: five pass-throughs, a thread each; 2: the same five
       fused on one thread (`thread = p1`: direct calls inside, the source's
       and the sink's edges stay sockets); 3: five, a thread each, spinning. */
    for (int variant = 0; variant < (spin_us > 0 ? 4 : 3); variant++) {
        int stages = variant ? 5 : 0;
        bool fused = variant == 2;
        double spin = variant == 3 ? spin_us : 0;
        for (int t = 0; t < 3; t++) {
            if (only && strcmp(only, transports[t]))
                continue;
            /* The runtime and the peer take turns, `repeat` times; each
               figure is the median of its runs. */
            double v[11][16];
            uint64_t got = (uint64_t)frames;
            int rc = ST_OK;
            for (long k = 0; k < repeat && !rc; k++) {
                if ((rc = run_runtime(transports[t], stages, fused, frames, interval_us, spin, &r)))
                    break;
                if (r.received < got)
                    got = r.received;
                pct(&r, r.inside_us, &v[3][k], &v[4][k], &v[5][k]);
                pct(&r, r.lat_us, &v[0][k], &v[1][k], &v[2][k]);
                if ((rc = run_runtime(transports[t], stages, fused, burst, 0, spin, &r)))
                    break;
                v[9][k] = rate_kmsg(&r);
                run_raw(transports[t], stages + 1, frames, interval_us, &r, ipc_dir);
                pct(&r, r.lat_us, &v[6][k], &v[7][k], &v[8][k]);
                run_raw(transports[t], stages + 1, burst, 0, &r, ipc_dir);
                v[10][k] = rate_kmsg(&r);
            }
            if (rc) {
                cli_fail_lib(CMD, rc, transports[t]);
                status = 1;
                continue;
            }
            int nr = (int)repeat;
            double p50 = cli_median(v[0], nr), p99 = cli_median(v[1], nr), mx = cli_median(v[2], nr);
            double ip50 = cli_median(v[3], nr), ip99 = cli_median(v[4], nr);
            double zp50 = cli_median(v[6], nr), zp99 = cli_median(v[7], nr);
            double k = cli_median(v[9], nr), zk = cli_median(v[10], nr);
            int row = report_row(&rep);
            report_set_text(&rep, row, "path", variant == 0   ? "1 hop"
                                               : variant == 1 ? "5 pass-through"
                                               : variant == 2 ? "5 pass-through, fused"
                                                              : "5 pass-through, spin");
            report_set_text(&rep, row, "transport", transports[t]);
            report_set_num(&rep, row, "hops", stages + 1);
            report_set_num(&rep, row, "p50_us", p50);
            report_set_num(&rep, row, "p99_us", p99);
            report_set_num(&rep, row, "max_us", mx);
            if (stages) {
                report_set_num(&rep, row, "inside_p50_us", ip50);
                report_set_num(&rep, row, "inside_p99_us", ip99);
            }
            report_set_num(&rep, row, "zmq_p50_us", zp50);
            report_set_num(&rep, row, "zmq_p99_us", zp99);
            report_set_num(&rep, row, "overhead_p99_us", p99 - zp99);
            report_set_num(&rep, row, "kmsg_per_s", k);
            report_set_num(&rep, row, "zmq_kmsg_per_s", zk);
            report_set_num(&rep, row, "mb_per_s", k * 1e3 * (ST_WIRE_HEADER_BYTES + 12 + 4 * FRAME) / 1e6);
            report_set_num(&rep, row, "lost", (double)frames - (double)got);
            if (variant == 1 && t == 0) {
                five_inproc_p99 = p99;
                five_inside_p99 = ip99;
            }
            if (variant == 2 && t == 0)
                fused_inproc_p99 = p99;
        }
    }
    st_tmpdir_remove(ipc_dir, NULL);
    free(r.lat_us);
    free(r.inside_us);
    report_note(&rep, "%ld frames of 10 ms (948 bytes) one every %g us, the first %d not counted; "
                "throughput from a burst of %ld with back-pressure; medians of %ld runs, runtime and "
                "peer taking turns", frames, interval_us, WARMUP, burst, repeat);
    if (!isnan(five_inproc_p99))
        report_note(&rep, "target: a 10 ms frame through five pass-through stages in under 100 us at "
                "p99 (inproc): %.1f us end to end, %s; of which inside the stages: %.1f us",
                five_inproc_p99, five_inproc_p99 < 100 ? "met" : "NOT met", five_inside_p99);
    if (!isnan(fused_inproc_p99))
        report_note(&rep, "the five fused on one thread (thread = p1): %.1f us at p99 (inproc), "
                    "target %s", fused_inproc_p99, fused_inproc_p99 < 100 ? "met" : "NOT met");
    report_print(&rep, json, stdout);
    return status;
}
