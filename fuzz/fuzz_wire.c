/*  fuzz/fuzz_wire.c - libFuzzer target for the wire protocol's decoders
    (pipeline/wire.c): st_wire_decode() on a header frame and a payload
    frame, every reader over what it accepted, and the receiver
    (st_wire_rx_recv) on the same bytes as one to four ZeroMQ frames over an
    inproc pair.

    Input: byte 0 picks the number of frames for the receiver (1 + b % 4)
    and, with byte 1, where the header frame ends (the rest is the payload;
    with more frames, the payload is split evenly). Seeds: fuzz/corpus/wire
    (valid messages of every type, written by fuzz/corpus.c).

    Checks beyond "no crash": what decode accepts satisfies the contract in
    pipeline.h (sizes agree with the frames, spike channels below
    n_channels, entries walk to exactly their count) and decodes the same
    through the receiver. Touches: an inproc ZeroMQ context of its own.
*/
#include "fuzz.h"
#include "pipeline/pipeline.h"

#include <stdlib.h>
#include <string.h>
#include <zmq.h>

static void *ctx, *tx, *rxs;
static st_wire_rx *rx;

static void setup(void)
{
    if (ctx)
        return;
    st_fuzz_quiet();
    ctx = zmq_ctx_new();
    tx = zmq_socket(ctx, ZMQ_PAIR);
    rxs = zmq_socket(ctx, ZMQ_PAIR);
    int hwm = 0;
    zmq_setsockopt(tx, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(rxs, ZMQ_RCVHWM, &hwm, sizeof hwm);
    if (zmq_bind(rxs, "inproc://fuzz-wire") || zmq_connect(tx, "inproc://fuzz-wire"))
        abort();
    int err;
    rx = st_wire_rx_new("fuzz", &err);
    if (!rx)
        abort();
}

/* Walks everything a decoded message offers; aborts on a broken contract. */
static void check(const st_wire_msg *m, size_t payload_len)
{
    if (m->h.payload_bytes != payload_len || m->h.n_hops > ST_WIRE_MAX_HOPS)
        abort();
    switch (m->h.type) {
    case ST_MSG_PCM: {
        if (m->pcm.format != ST_PCM_F32 && m->pcm.format != ST_PCM_S16)
            abort();
        size_t frames = m->pcm.frames;
        float *out = malloc((frames ? frames : 1) * sizeof *out);
        if (!out)
            abort();
        if (st_wire_pcm_read(&m->pcm, out, frames) != frames)
            abort();
        free(out);
        break;
    }
    case ST_MSG_SPIKES:
        for (size_t i = 0; i < m->spikes.n_events; i++)
            if (st_wire_spike_at(&m->spikes, i).channel >= m->spikes.n_channels)
                abort();
        break;
    case ST_MSG_WORDS: {
        size_t cursor = 0, n = 0;
        st_wire_word w;
        while (st_wire_words_next(&m->words, &cursor, &w)) {
            volatile char sink = 0;
            for (uint32_t i = 0; i < w.text_bytes; i++)
                sink ^= w.text[i];
            (void)sink;
            if (++n > m->words.n_words)
                abort();
        }
        if (n != m->words.n_words)
            abort();
        break;
    }
    case ST_MSG_TEXT: {
        volatile char sink = 0;
        for (uint32_t i = 0; i < m->text.bytes; i++)
            sink ^= m->text.text[i];
        (void)sink;
        break;
    }
    case ST_MSG_CONTROL: {
        volatile char sink = 0;
        for (uint32_t i = 0; i < m->control.bytes; i++)
            sink ^= m->control.text[i];
        (void)sink;
        (void)st_wire_ctl_name(m->control.cmd);
        break;
    }
    case ST_MSG_METRICS: {
        size_t cursor = 0, n = 0;
        st_wire_metric mt;
        while (st_wire_metrics_next(&m->metrics, &cursor, &mt)) {
            if (strlen(mt.name) > ST_METRIC_NAME_MAX || ++n > m->metrics.n)
                abort();
        }
        if (n != m->metrics.n)
            abort();
        break;
    }
    default: abort(); /* decode accepted an unknown type */
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup();
    if (size < 2)
        return 0;
    int frames = 1 + data[0] % 4;
    size_t split = ((size_t)(data[0] >> 2) << 8 | data[1]) % 512;
    data += 2, size -= 2;
    if (split > size)
        split = size;
    const uint8_t *hdr = data, *payload = data + split;
    size_t hdr_len = split, payload_len = size - split;

    /* Copies, so that ASan sees the frames' exact extents. */
    uint8_t *h = malloc(hdr_len ? hdr_len : 1), *p = malloc(payload_len ? payload_len : 1);
    if (!h || !p)
        abort();
    memcpy(h, hdr, hdr_len);
    memcpy(p, payload, payload_len);
    st_wire_msg m;
    memset(&m, 0, sizeof m);
    int rc = st_wire_decode(h, hdr_len, payload_len ? p : NULL, payload_len, &m);
    if (rc == ST_OK)
        check(&m, payload_len);
    else if (rc != ST_ERR_FORMAT)
        abort();

    /* The receiver: the same bytes as `frames` frames. */
    size_t rest = payload_len, chunk = frames > 1 ? payload_len / (size_t)(frames - 1) : 0;
    zmq_send(tx, h, hdr_len, frames > 1 ? ZMQ_SNDMORE : 0);
    const uint8_t *q = p;
    for (int f = 1; f < frames; f++) {
        size_t n = f == frames - 1 ? rest : chunk;
        zmq_send(tx, q, n, f < frames - 1 ? ZMQ_SNDMORE : 0);
        q += n, rest -= n;
    }
    st_wire_msg m2;
    memset(&m2, 0, sizeof m2);
    int rc2 = st_wire_rx_recv(rx, rxs, 0, &m2);
    if (frames == 2) {
        if (rc2 != rc)
            abort(); /* the receiver must judge two frames as decode does */
        if (rc2 == ST_OK)
            check(&m2, payload_len);
    } else if (rc2 != ST_ERR_FORMAT) {
        abort(); /* one, three or four frames are always dropped */
    }
    free(h);
    free(p);
    return 0;
}
