/*  tests/test_wire.c - suite `wire`: the wire protocol. Every message type
    survives encode -> socket -> decode with every field intact; garbage,
    truncated, oversized, wrong-version, wrong-magic and wrong-type messages
    are counted under their reason and dropped, never a crash, and the next
    good message still gets through; every prefix of a valid message and a
    loop of random and mutated bytes decode to an error or a message, never
    to a read out of bounds (run under ASan and valgrind). */
#include "testutil.h"

#include "pipeline/pipeline.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

/* ---- helpers ---------------------------------------------------------------------- */

typedef struct {
    void *ctx, *tx, *rxsock;
    st_wire_rx *rx;
} link_t;

static void link_open(link_t *l)
{
    static int n;
    char ep[64];
    snprintf(ep, sizeof ep, "inproc://wire-test-%d", n++);
    l->ctx = zmq_ctx_new();
    l->rxsock = zmq_socket(l->ctx, ZMQ_PULL);
    l->tx = zmq_socket(l->ctx, ZMQ_PUSH);
    int zero = 0;
    zmq_setsockopt(l->tx, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(l->rxsock, ZMQ_LINGER, &zero, sizeof zero);
    CU_ASSERT_EQUAL_FATAL(zmq_bind(l->rxsock, ep), 0);
    CU_ASSERT_EQUAL_FATAL(zmq_connect(l->tx, ep), 0);
    int rc;
    l->rx = st_wire_rx_new("test", &rc);
    CU_ASSERT_PTR_NOT_NULL_FATAL(l->rx);
}

static void link_close(link_t *l)
{
    st_wire_rx_destroy(&l->rx);
    CU_ASSERT_PTR_NULL(l->rx);
    st_wire_rx_destroy(&l->rx); /* idempotent */
    zmq_close(l->tx);
    zmq_close(l->rxsock);
    zmq_ctx_term(l->ctx);
}

/* Sends raw frames (n of them) as one message. */
static void send_frames(link_t *l, const void *const *data, const size_t *len, int n)
{
    for (int i = 0; i < n; i++)
        zmq_send(l->tx, data[i], len[i], i + 1 < n ? ZMQ_SNDMORE : 0);
}

static int recv_one(link_t *l, st_wire_msg *m)
{
    zmq_pollitem_t it = {l->rxsock, 0, ZMQ_POLLIN, 0};
    zmq_poll(&it, 1, 1000);
    return st_wire_rx_recv(l->rx, l->rxsock, ZMQ_DONTWAIT, m);
}

static st_wire_header sample_header(uint8_t type)
{
    st_wire_header h;
    st_wire_header_init(&h, type, 7);
    h.stream_id = 0xA1B2C3D4u;
    h.epoch = 42;
    h.seq = 0x0102030405060708ull;
    h.sample_index = 0x1122334455667788ull;
    st_wire_stamp(&h, 9, 123456789012345ull, 4321);
    return h;
}

static void check_header(const st_wire_header *a, const st_wire_header *b)
{
    CU_ASSERT_EQUAL(a->version, ST_WIRE_VERSION);
    CU_ASSERT_EQUAL(a->type, b->type);
    CU_ASSERT_EQUAL(a->stream_id, b->stream_id);
    CU_ASSERT_EQUAL(a->epoch, b->epoch);
    CU_ASSERT_EQUAL(a->seq, b->seq);
    CU_ASSERT_EQUAL(a->sample_index, b->sample_index);
    CU_ASSERT_EQUAL(a->n_hops, b->n_hops);
    for (int i = 0; i < a->n_hops && i < b->n_hops; i++) {
        CU_ASSERT_EQUAL(a->hops[i].sent_ns, b->hops[i].sent_ns);
        CU_ASSERT_EQUAL(a->hops[i].compute_ns, b->hops[i].compute_ns);
        CU_ASSERT_EQUAL(a->hops[i].stage_id, b->hops[i].stage_id);
    }
}

/* Builds one valid message of each type into hdr/payload; returns the payload length. */
static size_t build(int type, st_wire_header *h, unsigned char *payload, size_t cap)
{
    *h = sample_header((uint8_t)type);
    long n = -1;
    switch (type) {
    case ST_MSG_PCM: {
        float x[160];
        for (int i = 0; i < 160; i++)
            x[i] = (float)sin(i * 0.05) * 0.5f;
        n = st_wire_pcm_encode(payload, cap, 16000, ST_PCM_F32, x, 160);
        break;
    }
    case ST_MSG_SPIKES: {
        st_wire_spike ev[5] = {{0, 3}, {10, 0}, {250, 63}, {251, 1}, {9999, 62}};
        n = st_wire_spikes_encode(payload, cap, 64, ev, 5);
        break;
    }
    case ST_MSG_WORDS: {
        st_wire_word w[3] = {{100, 2000, 0.9f, 5, "hello"},
                             {2000, 5000, 0.5f, 5, "world"},
                             {5000, 5000, 0.0f, 0, ""}};
        n = st_wire_words_encode(payload, cap, ST_WORDS_FINAL, w, 3);
        break;
    }
    case ST_MSG_TEXT: n = st_wire_text_encode(payload, cap, ST_TEXT_END, "Hi there.", 9); break;
    case ST_MSG_CONTROL:
        n = st_wire_control_encode(payload, cap, ST_CTL_INTERRUPT, 77, 3, "barge-in");
        break;
    case ST_MSG_METRICS: {
        st_wire_metric m[2] = {{"received", 12}, {"latency_us", 3.25}};
        n = st_wire_metrics_encode(payload, cap, 5, m, 2);
        break;
    }
    }
    CU_ASSERT_FATAL(n > 0);
    h->payload_bytes = (uint32_t)n;
    return (size_t)n;
}

static void check_payload(int type, const st_wire_msg *m)
{
    switch (type) {
    case ST_MSG_PCM: {
        CU_ASSERT_EQUAL(m->pcm.rate_hz, 16000);
        CU_ASSERT_EQUAL(m->pcm.frames, 160);
        float y[160];
        CU_ASSERT_EQUAL(st_wire_pcm_read(&m->pcm, y, 160), 160);
        for (int i = 0; i < 160; i++)
            CU_ASSERT_EQUAL(y[i], (float)sin(i * 0.05) * 0.5f);
        break;
    }
    case ST_MSG_SPIKES: {
        CU_ASSERT_EQUAL(m->spikes.n_channels, 64);
        CU_ASSERT_EQUAL(m->spikes.n_events, 5);
        st_wire_spike e = st_wire_spike_at(&m->spikes, 2);
        CU_ASSERT_EQUAL(e.t_us, 250);
        CU_ASSERT_EQUAL(e.channel, 63);
        break;
    }
    case ST_MSG_WORDS: {
        CU_ASSERT_EQUAL(m->words.flags, ST_WORDS_FINAL);
        CU_ASSERT_EQUAL(m->words.n_words, 3);
        size_t cur = 0;
        st_wire_word w;
        CU_ASSERT_TRUE(st_wire_words_next(&m->words, &cur, &w));
        CU_ASSERT_EQUAL(w.start_sample, 100);
        CU_ASSERT_EQUAL(w.end_sample, 2000);
        CU_ASSERT_EQUAL(w.confidence, 0.9f);
        CU_ASSERT_EQUAL(w.text_bytes, 5);
        CU_ASSERT_EQUAL(memcmp(w.text, "hello", 5), 0);
        CU_ASSERT_TRUE(st_wire_words_next(&m->words, &cur, &w));
        CU_ASSERT_EQUAL(memcmp(w.text, "world", 5), 0);
        CU_ASSERT_TRUE(st_wire_words_next(&m->words, &cur, &w));
        CU_ASSERT_EQUAL(w.text_bytes, 0);
        CU_ASSERT_FALSE(st_wire_words_next(&m->words, &cur, &w));
        break;
    }
    case ST_MSG_TEXT:
        CU_ASSERT_EQUAL(m->text.flags, ST_TEXT_END);
        CU_ASSERT_EQUAL(m->text.bytes, 9);
        CU_ASSERT_EQUAL(memcmp(m->text.text, "Hi there.", 9), 0);
        break;
    case ST_MSG_CONTROL:
        CU_ASSERT_EQUAL(m->control.cmd, ST_CTL_INTERRUPT);
        CU_ASSERT_EQUAL(m->control.arg, 77);
        CU_ASSERT_EQUAL(m->control.stage_id, 3);
        CU_ASSERT_EQUAL(m->control.bytes, 8);
        CU_ASSERT_EQUAL(memcmp(m->control.text, "barge-in", 8), 0);
        break;
    case ST_MSG_METRICS: {
        CU_ASSERT_EQUAL(m->metrics.stage_id, 5);
        size_t cur = 0;
        st_wire_metric e;
        CU_ASSERT_TRUE(st_wire_metrics_next(&m->metrics, &cur, &e));
        CU_ASSERT_STRING_EQUAL(e.name, "received");
        CU_ASSERT_EQUAL(e.value, 12);
        CU_ASSERT_TRUE(st_wire_metrics_next(&m->metrics, &cur, &e));
        CU_ASSERT_STRING_EQUAL(e.name, "latency_us");
        CU_ASSERT_EQUAL(e.value, 3.25);
        CU_ASSERT_FALSE(st_wire_metrics_next(&m->metrics, &cur, &e));
        break;
    }
    }
}

/* ---- tests ------------------------------------------------------------------------ */

static void test_round_trip_every_type(void)
{
    link_t l;
    link_open(&l);
    unsigned char payload[4096];
    for (int type = 1; type <= ST_MSG_TYPE_MAX; type++) {
        st_wire_header h;
        size_t n = build(type, &h, payload, sizeof payload);
        /* Bytes alone. */
        unsigned char hb[ST_WIRE_HEADER_BYTES];
        st_wire_header_encode(&h, hb);
        CU_ASSERT_EQUAL(memcmp(hb, ST_WIRE_MAGIC, 4), 0);
        st_wire_msg m;
        CU_ASSERT_EQUAL(st_wire_decode(hb, sizeof hb, payload, n, &m), ST_OK);
        check_header(&m.h, &h);
        check_payload(type, &m);
        /* Through a socket. */
        CU_ASSERT_EQUAL(st_wire_send(l.tx, &h, payload, n, 0), ST_OK);
        CU_ASSERT_EQUAL(recv_one(&l, &m), ST_OK);
        check_header(&m.h, &h);
        check_payload(type, &m);
        CU_ASSERT_STRING_NOT_EQUAL(st_wire_type_name(type), "?");
    }
    CU_ASSERT_EQUAL(st_wire_rx_counters(l.rx)->received, ST_MSG_TYPE_MAX);
    CU_ASSERT_EQUAL(st_wire_rx_counters(l.rx)->malformed, 0);
    link_close(&l);
}

static void test_header_layout_and_hops(void)
{
    /* The layout docs/PROTOCOL.md gives, byte by byte. */
    st_wire_header h;
    st_wire_header_init(&h, ST_MSG_TEXT, 0);
    CU_ASSERT_EQUAL(h.n_hops, 0);
    h.stream_id = 0x04030201u;
    h.epoch = 5;
    h.seq = 6;
    h.sample_index = 0x0807060504030201ull;
    h.payload_bytes = 9;
    st_wire_stamp(&h, 0x0201, 0x1122334455667788ull, 0x0A0B0C0Du);
    unsigned char b[ST_WIRE_HEADER_BYTES];
    st_wire_header_encode(&h, b);
    CU_ASSERT_EQUAL(b[4], 1);
    CU_ASSERT_EQUAL(b[5], ST_MSG_TEXT);
    CU_ASSERT_EQUAL(b[6], 1);
    CU_ASSERT_EQUAL(b[8], 0x01);
    CU_ASSERT_EQUAL(b[11], 0x04);
    CU_ASSERT_EQUAL(b[12], 5);
    CU_ASSERT_EQUAL(b[16], 6);
    CU_ASSERT_EQUAL(b[24], 0x01);
    CU_ASSERT_EQUAL(b[31], 0x08);
    CU_ASSERT_EQUAL(b[32], 9);
    CU_ASSERT_EQUAL(b[40], 0x88);
    CU_ASSERT_EQUAL(b[47], 0x11);
    CU_ASSERT_EQUAL(b[48], 0x0D);
    CU_ASSERT_EQUAL(b[52], 0x01);
    CU_ASSERT_EQUAL(b[53], 0x02);
    /* Hops past 16 reuse the last slot and say so. */
    st_wire_header_init(&h, ST_MSG_PCM, 1);
    for (int i = 2; i <= 20; i++)
        st_wire_stamp(&h, (uint16_t)i, (uint64_t)i, 0);
    CU_ASSERT_EQUAL(h.n_hops, ST_WIRE_MAX_HOPS);
    CU_ASSERT_EQUAL(h.hops[0].stage_id, 1);
    CU_ASSERT_EQUAL(h.hops[ST_WIRE_MAX_HOPS - 1].stage_id, 20);
    CU_ASSERT_TRUE(h.flags & ST_WIRE_HOPS_TRUNCATED);
}

static void test_encoder_limits(void)
{
    float x[16] = {0};
    unsigned char buf[64];
    /* NULL: the size it would need. */
    CU_ASSERT_EQUAL(st_wire_pcm_encode(NULL, 0, 16000, ST_PCM_F32, x, 16), 12 + 64);
    CU_ASSERT_EQUAL(st_wire_pcm_encode(NULL, 0, 16000, ST_PCM_S16, x, 16), 12 + 32);
    CU_ASSERT_EQUAL(st_wire_pcm_encode(buf, sizeof buf, 16000, ST_PCM_F32, x, 16), ST_ERR_INVALID);
    CU_ASSERT_EQUAL(st_wire_pcm_encode(buf, sizeof buf, 16000, 9, x, 1), ST_ERR_INVALID);
    st_wire_spike ev = {0, 8};
    CU_ASSERT_EQUAL(st_wire_spikes_encode(buf, sizeof buf, 8, &ev, 1), ST_ERR_INVALID);
    st_wire_metric m = {"", 1};
    CU_ASSERT_EQUAL(st_wire_metrics_encode(buf, sizeof buf, 1, &m, 1), ST_ERR_INVALID);
    /* s16 round trip, clipped. */
    float s[4] = {0.5f, -0.5f, 2.0f, -2.0f}, y[4];
    CU_ASSERT_EQUAL(st_wire_pcm_encode(buf, sizeof buf, 8000, ST_PCM_S16, s, 4), 20);
    st_wire_header h = sample_header(ST_MSG_PCM);
    h.payload_bytes = 20;
    unsigned char hb[ST_WIRE_HEADER_BYTES];
    st_wire_header_encode(&h, hb);
    st_wire_msg msg;
    CU_ASSERT_EQUAL_FATAL(st_wire_decode(hb, sizeof hb, buf, 20, &msg), ST_OK);
    CU_ASSERT_EQUAL(st_wire_pcm_read(&msg.pcm, y, 4), 4);
    CU_ASSERT_DOUBLE_EQUAL(y[0], 0.5, 1e-4);
    CU_ASSERT_DOUBLE_EQUAL(y[1], -0.5, 1e-4);
    CU_ASSERT_DOUBLE_EQUAL(y[2], 1.0, 1e-4);
    CU_ASSERT_DOUBLE_EQUAL(y[3], -1.0, 1e-4);
}

static void test_garbage_is_counted_and_dropped(void)
{
    link_t l;
    link_open(&l);
    unsigned char payload[4096];
    st_wire_header h;
    size_t n = build(ST_MSG_TEXT, &h, payload, sizeof payload);
    unsigned char hb[ST_WIRE_HEADER_BYTES], bad[ST_WIRE_HEADER_BYTES];
    st_wire_header_encode(&h, hb);
    st_wire_msg m;

    /* One frame; three frames. */
    const void *f1[] = {hb};
    size_t l1[] = {sizeof hb};
    send_frames(&l, f1, l1, 1);
    CU_ASSERT_EQUAL(recv_one(&l, &m), ST_ERR_FORMAT);
    const void *f3[] = {hb, payload, payload};
    size_t l3[] = {sizeof hb, n, n};
    send_frames(&l, f3, l3, 3);
    CU_ASSERT_EQUAL(recv_one(&l, &m), ST_ERR_FORMAT);
    CU_ASSERT_EQUAL(st_wire_rx_counters(l.rx)->bad_frames, 2);

    /* Bad magic, version, type; truncated header; too many hops. */
    const void *f2[] = {bad, payload};
    size_t l2[] = {sizeof bad, n};
    memcpy(bad, hb, sizeof bad);
    bad[0] = 'X';
    send_frames(&l, f2, l2, 2);
    CU_ASSERT_EQUAL(recv_one(&l, &m), ST_ERR_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(st_errmsg(), "magic"));
    memcpy(bad, hb, sizeof bad);
    bad[4] = 2;
    send_frames(&l, f2, l2, 2);
    CU_ASSERT_EQUAL(recv_one(&l, &m), ST_ERR_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(st_errmsg(), "version 2"));
    memcpy(bad, hb, sizeof bad);
    bad[5] = 99;
    send_frames(&l, f2, l2, 2);
    CU_ASSERT_EQUAL(recv_one(&l, &m), ST_ERR_FORMAT);
    memcpy(bad, hb, sizeof bad);
    bad[6] = 17;
    send_frames(&l, f2, l2, 2);
    CU_ASSERT_EQUAL(recv_one(&l, &m), ST_ERR_FORMAT);
    l2[0] = 100;
    memcpy(bad, hb, sizeof bad);
    send_frames(&l, f2, l2, 2);
    CU_ASSERT_EQUAL(recv_one(&l, &m), ST_ERR_FORMAT);
    l2[0] = sizeof bad;

    /* Truncated payload: the header says more than the frame holds. */
    l2[1] = n - 1;
    send_frames(&l, f2, l2, 2);
    CU_ASSERT_EQUAL(recv_one(&l, &m), ST_ERR_FORMAT);
    l2[1] = n;

    /* Oversized: a payload frame above the limit (and a header that agrees). */
    size_t big = ST_WIRE_MAX_PAYLOAD + 1;
    unsigned char *huge = calloc(1, big);
    st_wire_header hh = h;
    hh.payload_bytes = (uint32_t)big;
    st_wire_header_encode(&hh, bad);
    const void *fb[] = {bad, huge};
    size_t lb[] = {sizeof bad, big};
    send_frames(&l, fb, lb, 2);
    CU_ASSERT_EQUAL(recv_one(&l, &m), ST_ERR_FORMAT);
    free(huge);

    /* A payload that lies about its own structure: text length past the end. */
    unsigned char lie[16];
    memcpy(lie, payload, 8);
    lie[4] = 0xff;
    st_wire_header hl = h;
    hl.payload_bytes = 8;
    st_wire_header_encode(&hl, bad);
    const void *fl[] = {bad, lie};
    size_t ll[] = {sizeof bad, 8};
    send_frames(&l, fl, ll, 2);
    CU_ASSERT_EQUAL(recv_one(&l, &m), ST_ERR_FORMAT);

    /* Empty frames. */
    const void *fe[] = {"", ""};
    size_t le[] = {0, 0};
    send_frames(&l, fe, le, 2);
    CU_ASSERT_EQUAL(recv_one(&l, &m), ST_ERR_FORMAT);

    /* And the next good one still arrives. */
    const void *fg[] = {hb, payload};
    size_t lg[] = {sizeof hb, n};
    send_frames(&l, fg, lg, 2);
    CU_ASSERT_EQUAL(recv_one(&l, &m), ST_OK);
    check_payload(ST_MSG_TEXT, &m);

    const st_wire_counters *c = st_wire_rx_counters(l.rx);
    CU_ASSERT_EQUAL(c->malformed, 11);
    CU_ASSERT_EQUAL(c->bad_frames, 2);
    CU_ASSERT_EQUAL(c->bad_magic, 1);
    CU_ASSERT_EQUAL(c->bad_version, 1);
    CU_ASSERT_EQUAL(c->bad_type, 1);
    CU_ASSERT_EQUAL(c->bad_header, 3); /* 17 hops, 100 bytes, empty */
    CU_ASSERT_EQUAL(c->bad_length, 1);
    CU_ASSERT_EQUAL(c->oversized, 1);
    CU_ASSERT_EQUAL(c->bad_payload, 1);
    CU_ASSERT_EQUAL(c->received, 1);
    link_close(&l);
}

static void test_every_prefix_and_corruption(void)
{
    unsigned char payload[4096], hb[ST_WIRE_HEADER_BYTES];
    for (int type = 1; type <= ST_MSG_TYPE_MAX; type++) {
        st_wire_header h;
        size_t n = build(type, &h, payload, sizeof payload);
        st_wire_header_encode(&h, hb);
        st_wire_msg m;
        /* Every truncation of the payload, with the header telling the truth
           about the frame: the payload's own checks must catch it. */
        for (size_t k = 0; k < n; k++) {
            /* Exact-size copies so that ASan/valgrind see any overread. */
            unsigned char *p = malloc(k ? k : 1);
            memcpy(p, payload, k);
            st_wire_header t = h;
            t.payload_bytes = (uint32_t)k;
            unsigned char tb[ST_WIRE_HEADER_BYTES];
            st_wire_header_encode(&t, tb);
            CU_ASSERT_EQUAL(st_wire_decode(tb, sizeof tb, p, k, &m), ST_ERR_FORMAT);
            free(p);
        }
        for (size_t k = 0; k < sizeof hb; k++) {
            unsigned char *p = malloc(k ? k : 1);
            memcpy(p, hb, k);
            CU_ASSERT_EQUAL(st_wire_decode(p, k, payload, n, &m), ST_ERR_FORMAT);
            free(p);
        }
        /* Every byte of the payload flipped: decoded or refused, never a crash. */
        for (size_t k = 0; k < n; k++) {
            unsigned char *p = malloc(n);
            memcpy(p, payload, n);
            p[k] ^= 0xff;
            if (st_wire_decode(hb, sizeof hb, p, n, &m) == ST_OK && type == ST_MSG_WORDS) {
                size_t cur = 0;
                st_wire_word w;
                while (st_wire_words_next(&m.words, &cur, &w))
                    CU_ASSERT(w.text + w.text_bytes <= (const char *)p + n);
            }
            free(p);
        }
    }
}

static uint32_t rnd_state = 0x12345678u;
static uint32_t rnd(void)
{
    uint32_t x = rnd_state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return rnd_state = x;
}
#define RND() rnd()

static void test_fuzz_random_bytes(void)
{
    unsigned char payload[4096], hb[ST_WIRE_HEADER_BYTES];
    int ok = 0, refused = 0;
    const int rounds = getenv("ST_MEMCHECK") ? 3000 : 30000;
    for (int i = 0; i < rounds; i++) {
        st_wire_msg m;
        if (i % 2) {
            /* Pure noise of random lengths. */
            size_t hl = RND() % 2 ? ST_WIRE_HEADER_BYTES : RND() % 400;
            size_t pl = RND() % 700;
            unsigned char *h = malloc(hl ? hl : 1), *p = malloc(pl ? pl : 1);
            for (size_t k = 0; k < hl; k++)
                h[k] = (unsigned char)RND();
            for (size_t k = 0; k < pl; k++)
                p[k] = (unsigned char)RND();
            if (hl >= 8 && RND() % 2) {
                memcpy(h, ST_WIRE_MAGIC, 4);
                h[4] = 1;
                h[5] = (unsigned char)(1 + RND() % ST_MSG_TYPE_MAX);
                h[6] = (unsigned char)(RND() % 17);
            }
            if (hl >= 36 && RND() % 2) {
                h[32] = (unsigned char)pl;
                h[33] = (unsigned char)(pl >> 8);
                h[34] = h[35] = 0;
            }
            if (st_wire_decode(h, hl, p, pl, &m) == ST_OK)
                ok++;
            else
                refused++;
            free(h);
            free(p);
        } else {
            /* A valid message with a few random bytes changed. */
            st_wire_header h;
            size_t n = build((int)(1 + RND() % ST_MSG_TYPE_MAX), &h, payload, sizeof payload);
            st_wire_header_encode(&h, hb);
            unsigned char *p = malloc(n);
            memcpy(p, payload, n);
            int flips = 1 + (int)(RND() % 4);
            for (int k = 0; k < flips; k++) {
                if (RND() % 3 == 0)
                    hb[RND() % 40] = (unsigned char)RND();
                else
                    p[RND() % n] = (unsigned char)RND();
            }
            if (st_wire_decode(hb, sizeof hb, p, n, &m) == ST_OK) {
                ok++;
                float y[256];
                if (m.h.type == ST_MSG_PCM)
                    st_wire_pcm_read(&m.pcm, y, 256);
                size_t cur = 0;
                st_wire_word w;
                st_wire_metric e;
                if (m.h.type == ST_MSG_WORDS)
                    while (st_wire_words_next(&m.words, &cur, &w))
                        ;
                if (m.h.type == ST_MSG_METRICS)
                    while (st_wire_metrics_next(&m.metrics, &cur, &e))
                        ;
            } else {
                refused++;
            }
            free(p);
        }
    }
    CU_ASSERT_EQUAL(ok + refused, rounds);
    CU_ASSERT(refused > rounds / 2);
}

static void test_fuzz_through_a_socket(void)
{
    /* The receiver under a stream of noise: counts everything, keeps going. */
    link_t l;
    link_open(&l);
    uint32_t x = 99;
    unsigned char buf[1024];
    const int n = getenv("ST_MEMCHECK") ? 200 : 2000;
    int frames_total = 0;
    for (int i = 0; i < n; i++) {
        int frames = 1 + (int)((x = x * 1664525u + 1013904223u) >> 28) % 3;
        for (int f = 0; f < frames; f++) {
            size_t len = (x = x * 1664525u + 1013904223u) >> 22;
            for (size_t k = 0; k < len; k++)
                buf[k] = (unsigned char)((x = x * 1664525u + 1013904223u) >> 24);
            if (len >= 4 && f == 0 && i % 3 == 0)
                memcpy(buf, ST_WIRE_MAGIC, 4);
            zmq_send(l.tx, buf, len, f + 1 < frames ? ZMQ_SNDMORE : 0);
        }
        frames_total++;
    }
    st_wire_msg m;
    int got = 0;
    while (got < frames_total && recv_one(&l, &m) != ST_ERR_TIMEOUT)
        got++;
    const st_wire_counters *c = st_wire_rx_counters(l.rx);
    CU_ASSERT_EQUAL(got, n);
    CU_ASSERT_EQUAL(c->malformed + c->received, (uint64_t)n);
    CU_ASSERT(c->malformed > (uint64_t)n * 9 / 10);
    link_close(&l);
}

CU_TestInfo st_tests_wire[] = {
    {"round_trip_every_type", test_round_trip_every_type},
    {"header_layout_and_hops", test_header_layout_and_hops},
    {"encoder_limits", test_encoder_limits},
    {"garbage_is_counted_and_dropped", test_garbage_is_counted_and_dropped},
    {"every_prefix_and_corruption", test_every_prefix_and_corruption},
    {"fuzz_random_bytes", test_fuzz_random_bytes},
    {"fuzz_through_a_socket", test_fuzz_through_a_socket},
    CU_TEST_INFO_NULL,
};
