/*  pipeline/wire.c - the wire protocol: one fixed little-endian header frame
    and one payload frame per message type, encoders, checking decoders, and
    the receiver that counts and drops what does not decode.

    What it may touch: base/ and libzmq. The byte functions are pure (any
    thread); an st_wire_rx belongs to the thread that uses its socket.

    Workload: every message of every hop passes through here twice (encode at
    the sender, decode at the receiver): a 296-byte header and a payload of
    typically 640 bytes (10 ms of 16 kHz float audio). Decoding reads bytes
    one by one through le*() helpers, never a cast of an unaligned pointer,
    and checks every length against the frame before it reads.
    docs/PROTOCOL.md is the reference for the layout.
*/
#include "pipeline.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

/* ---- little-endian helpers ------------------------------------------------ */

static inline uint16_t le16(const unsigned char *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}
static inline uint32_t le32(const unsigned char *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static inline uint64_t le64(const unsigned char *p)
{
    return (uint64_t)le32(p) | ((uint64_t)le32(p + 4) << 32);
}
static inline void put16(unsigned char *p, uint16_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}
static inline void put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}
static inline void put64(unsigned char *p, uint64_t v)
{
    put32(p, (uint32_t)v);
    put32(p + 4, (uint32_t)(v >> 32));
}
static inline float lef32(const unsigned char *p)
{
    uint32_t u = le32(p);
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}
static inline void putf32(unsigned char *p, float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    put32(p, u);
}
static inline double lef64(const unsigned char *p)
{
    uint64_t u = le64(p);
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}
static inline void putf64(unsigned char *p, double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    put64(p, u);
}

/* ---- header ---------------------------------------------------------------- */

#define HOP_BYTES 16
#define FIXED_BYTES 40

uint64_t st_wire_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void st_wire_header_init(st_wire_header *h, uint8_t type, uint16_t stage_id)
{
    memset(h, 0, sizeof *h);
    h->version = ST_WIRE_VERSION;
    h->type = type;
    if (stage_id)
        st_wire_stamp(h, stage_id, st_wire_now_ns(), 0);
}

void st_wire_stamp(st_wire_header *h, uint16_t stage_id, uint64_t sent_ns, uint32_t compute_ns)
{
    unsigned i = h->n_hops;
    if (i >= ST_WIRE_MAX_HOPS) {
        i = ST_WIRE_MAX_HOPS - 1;
        h->flags |= ST_WIRE_HOPS_TRUNCATED;
    } else {
        h->n_hops++;
    }
    h->hops[i].sent_ns = sent_ns;
    h->hops[i].compute_ns = compute_ns;
    h->hops[i].stage_id = stage_id;
}

void st_wire_header_encode(const st_wire_header *h, unsigned char out[ST_WIRE_HEADER_BYTES])
{
    memcpy(out, ST_WIRE_MAGIC, 4);
    out[4] = ST_WIRE_VERSION;
    out[5] = h->type;
    out[6] = h->n_hops > ST_WIRE_MAX_HOPS ? ST_WIRE_MAX_HOPS : h->n_hops;
    out[7] = h->flags;
    put32(out + 8, h->stream_id);
    put32(out + 12, h->epoch);
    put64(out + 16, h->seq);
    put64(out + 24, h->sample_index);
    put32(out + 32, h->payload_bytes);
    put32(out + 36, 0);
    for (unsigned i = 0; i < ST_WIRE_MAX_HOPS; i++) {
        unsigned char *p = out + FIXED_BYTES + i * HOP_BYTES;
        if (i < out[6]) {
            put64(p, h->hops[i].sent_ns);
            put32(p + 8, h->hops[i].compute_ns);
            put16(p + 12, h->hops[i].stage_id);
            put16(p + 14, 0);
        } else {
            memset(p, 0, HOP_BYTES);
        }
    }
}

/* Which check a decode failed, for the receiver's counters. */
typedef enum { BAD_NONE, BAD_HEADER, BAD_MAGIC, BAD_VERSION, BAD_TYPE, BAD_LENGTH, BAD_SIZE, BAD_PAYLOAD } bad_kind;
static _Thread_local bad_kind last_bad;

int st_wire_header_decode(const void *buf, size_t len, st_wire_header *h)
{
    const unsigned char *p = buf;
    if (len != ST_WIRE_HEADER_BYTES) {
        last_bad = len >= 4 && memcmp(p, ST_WIRE_MAGIC, 4) ? BAD_MAGIC : BAD_HEADER;
        if (last_bad == BAD_MAGIC)
            return st_error(ST_ERR_FORMAT, "not a spiketalk message (bad magic %02x%02x%02x%02x)",
                            p[0], p[1], p[2], p[3]);
        return st_error(ST_ERR_FORMAT, "header frame of %zu bytes (expected %d)", len,
                        ST_WIRE_HEADER_BYTES);
    }
    if (memcmp(p, ST_WIRE_MAGIC, 4)) {
        last_bad = BAD_MAGIC;
        return st_error(ST_ERR_FORMAT, "not a spiketalk message (bad magic %02x%02x%02x%02x)",
                        p[0], p[1], p[2], p[3]);
    }
    if (p[4] != ST_WIRE_VERSION) {
        last_bad = BAD_VERSION;
        return st_error(ST_ERR_FORMAT, "protocol version %u (this build speaks %d)", p[4],
                        ST_WIRE_VERSION);
    }
    if (p[5] < 1 || p[5] > ST_MSG_TYPE_MAX) {
        last_bad = BAD_TYPE;
        return st_error(ST_ERR_FORMAT, "unknown message type %u", p[5]);
    }
    if (p[6] > ST_WIRE_MAX_HOPS) {
        last_bad = BAD_HEADER;
        return st_error(ST_ERR_FORMAT, "%u hops (at most %d)", p[6], ST_WIRE_MAX_HOPS);
    }
    h->version = p[4];
    h->type = p[5];
    h->n_hops = p[6];
    h->flags = p[7];
    h->stream_id = le32(p + 8);
    h->epoch = le32(p + 12);
    h->seq = le64(p + 16);
    h->sample_index = le64(p + 24);
    h->payload_bytes = le32(p + 32);
    for (unsigned i = 0; i < h->n_hops; i++) {
        const unsigned char *q = p + FIXED_BYTES + i * HOP_BYTES;
        h->hops[i].sent_ns = le64(q);
        h->hops[i].compute_ns = le32(q + 8);
        h->hops[i].stage_id = le16(q + 12);
    }
    return ST_OK;
}

/* ---- payloads -------------------------------------------------------------- */

static int bad_payload(const char *fmt, ...) ST_PRINTF(1, 2);
static int bad_payload(const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    last_bad = BAD_PAYLOAD;
    return st_error(ST_ERR_FORMAT, "%s", msg);
}

/* PCM: u32 rate, u16 channels, u16 format, u32 frames, samples. */
#define PCM_FIXED 12

long st_wire_pcm_encode(void *out, size_t cap, uint32_t rate_hz, int format, const float *x,
                        size_t frames)
{
    size_t size = format == ST_PCM_S16 ? 2 : 4;
    if (format != ST_PCM_F32 && format != ST_PCM_S16)
        return st_error(ST_ERR_INVALID, "pcm: unknown sample format %d", format);
    if (frames > (ST_WIRE_MAX_PAYLOAD - PCM_FIXED) / size)
        return st_error(ST_ERR_INVALID, "pcm: %zu frames exceed the payload limit", frames);
    size_t need = PCM_FIXED + frames * size;
    if (!out)
        return (long)need;
    if (cap < need)
        return st_error(ST_ERR_INVALID, "pcm: %zu bytes needed, %zu given", need, cap);
    unsigned char *p = out;
    put32(p, rate_hz);
    put16(p + 4, 1);
    put16(p + 6, (uint16_t)format);
    put32(p + 8, (uint32_t)frames);
    p += PCM_FIXED;
    if (format == ST_PCM_F32) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        memcpy(p, x, frames * 4);
#else
        for (size_t i = 0; i < frames; i++)
            putf32(p + 4 * i, x[i]);
#endif
    } else {
        for (size_t i = 0; i < frames; i++) {
            float v = x[i] * 32767.0f;
            v = v > 32767.0f ? 32767.0f : v < -32768.0f ? -32768.0f : v;
            put16(p + 2 * i, (uint16_t)(int16_t)(v >= 0 ? v + 0.5f : v - 0.5f));
        }
    }
    return (long)need;
}

static int decode_pcm(const unsigned char *p, size_t n, st_wire_pcm *out)
{
    if (n < PCM_FIXED)
        return bad_payload("pcm payload of %zu bytes (at least %d)", n, PCM_FIXED);
    out->rate_hz = le32(p);
    out->channels = le16(p + 4);
    out->format = le16(p + 6);
    out->frames = le32(p + 8);
    out->data = p + PCM_FIXED;
    if (out->rate_hz < 1000 || out->rate_hz > 384000)
        return bad_payload("pcm sample rate %u Hz (1000 to 384000)", out->rate_hz);
    if (out->channels != 1)
        return bad_payload("pcm with %u channels (version 1 carries mono)", out->channels);
    if (out->format != ST_PCM_F32 && out->format != ST_PCM_S16)
        return bad_payload("pcm sample format %u (1 = f32, 2 = s16)", out->format);
    size_t size = out->format == ST_PCM_S16 ? 2 : 4;
    if ((uint64_t)out->frames * size != n - PCM_FIXED)
        return bad_payload("pcm says %u frames, payload holds %zu bytes of samples", out->frames,
                           n - PCM_FIXED);
    return ST_OK;
}

size_t st_wire_pcm_read(const st_wire_pcm *p, float *out, size_t cap)
{
    size_t n = p->frames < cap ? p->frames : cap;
    if (p->format == ST_PCM_F32) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        memcpy(out, p->data, n * 4);
#else
        for (size_t i = 0; i < n; i++)
            out[i] = lef32(p->data + 4 * i);
#endif
    } else {
        for (size_t i = 0; i < n; i++)
            out[i] = (float)(int16_t)le16(p->data + 2 * i) / 32768.0f;
    }
    return n;
}

/* Spikes: u32 n_channels, u32 n_events, events of {u32 t_us, u32 channel}. */
long st_wire_spikes_encode(void *out, size_t cap, uint32_t n_channels, const st_wire_spike *ev,
                           size_t n)
{
    if (n > (ST_WIRE_MAX_PAYLOAD - 8) / 8)
        return st_error(ST_ERR_INVALID, "spikes: %zu events exceed the payload limit", n);
    for (size_t i = 0; i < n; i++)
        if (ev[i].channel >= n_channels)
            return st_error(ST_ERR_INVALID, "spikes: event %zu on channel %u of %u", i,
                            ev[i].channel, n_channels);
    size_t need = 8 + 8 * n;
    if (!out)
        return (long)need;
    if (cap < need)
        return st_error(ST_ERR_INVALID, "spikes: %zu bytes needed, %zu given", need, cap);
    unsigned char *p = out;
    put32(p, n_channels);
    put32(p + 4, (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
        put32(p + 8 + 8 * i, ev[i].t_us);
        put32(p + 12 + 8 * i, ev[i].channel);
    }
    return (long)need;
}

static int decode_spikes(const unsigned char *p, size_t n, st_wire_spikes *out)
{
    if (n < 8)
        return bad_payload("spikes payload of %zu bytes (at least 8)", n);
    out->n_channels = le32(p);
    out->n_events = le32(p + 4);
    out->data = p + 8;
    if ((uint64_t)out->n_events * 8 != n - 8)
        return bad_payload("spikes says %u events, payload holds %zu bytes of events",
                           out->n_events, n - 8);
    for (uint32_t i = 0; i < out->n_events; i++) {
        uint32_t ch = le32(out->data + 8 * i + 4);
        if (ch >= out->n_channels)
            return bad_payload("spike %u on channel %u of %u", i, ch, out->n_channels);
    }
    return ST_OK;
}

st_wire_spike st_wire_spike_at(const st_wire_spikes *s, size_t i)
{
    st_wire_spike e = {0, 0};
    if (i < s->n_events) {
        e.t_us = le32(s->data + 8 * i);
        e.channel = le32(s->data + 8 * i + 4);
    }
    return e;
}

/* Words: u32 flags, u32 n_words, then per word u64 start, u64 end, f32
   confidence, u32 text_bytes, text. */
#define WORD_FIXED 24
#define MAX_WORDS 4096
#define MAX_WORD_BYTES 1024

long st_wire_words_encode(void *out, size_t cap, uint32_t flags, const st_wire_word *w, size_t n)
{
    if (n > MAX_WORDS)
        return st_error(ST_ERR_INVALID, "words: %zu words (at most %d)", n, MAX_WORDS);
    size_t need = 8;
    for (size_t i = 0; i < n; i++) {
        if (w[i].text_bytes > MAX_WORD_BYTES)
            return st_error(ST_ERR_INVALID, "words: word %zu of %u bytes (at most %d)", i,
                            w[i].text_bytes, MAX_WORD_BYTES);
        need += WORD_FIXED + w[i].text_bytes;
    }
    if (!out)
        return (long)need;
    if (cap < need)
        return st_error(ST_ERR_INVALID, "words: %zu bytes needed, %zu given", need, cap);
    unsigned char *p = out;
    put32(p, flags);
    put32(p + 4, (uint32_t)n);
    p += 8;
    for (size_t i = 0; i < n; i++) {
        put64(p, w[i].start_sample);
        put64(p + 8, w[i].end_sample);
        putf32(p + 16, w[i].confidence);
        put32(p + 20, w[i].text_bytes);
        if (w[i].text_bytes)
            memcpy(p + WORD_FIXED, w[i].text, w[i].text_bytes);
        p += WORD_FIXED + w[i].text_bytes;
    }
    return (long)need;
}

static int decode_words(const unsigned char *p, size_t n, st_wire_words *out)
{
    if (n < 8)
        return bad_payload("words payload of %zu bytes (at least 8)", n);
    out->flags = le32(p);
    out->n_words = le32(p + 4);
    out->data = p + 8;
    out->bytes = n - 8;
    if (out->n_words > MAX_WORDS)
        return bad_payload("%u words (at most %d)", out->n_words, MAX_WORDS);
    size_t off = 0;
    for (uint32_t i = 0; i < out->n_words; i++) {
        if (out->bytes - off < WORD_FIXED)
            return bad_payload("word %u truncated", i);
        uint32_t tb = le32(out->data + off + 20);
        if (tb > MAX_WORD_BYTES || tb > out->bytes - off - WORD_FIXED)
            return bad_payload("word %u says %u bytes of text, %zu left", i, tb,
                               out->bytes - off - WORD_FIXED);
        float conf = lef32(out->data + off + 16);
        if (!(conf >= 0.0f && conf <= 1.0f))
            return bad_payload("word %u has confidence %g (0 to 1)", i, (double)conf);
        off += WORD_FIXED + tb;
    }
    if (off != out->bytes)
        return bad_payload("%zu bytes after the last word", out->bytes - off);
    return ST_OK;
}

bool st_wire_words_next(const st_wire_words *w, size_t *cursor, st_wire_word *out)
{
    if (*cursor + WORD_FIXED > w->bytes)
        return false;
    const unsigned char *p = w->data + *cursor;
    out->start_sample = le64(p);
    out->end_sample = le64(p + 8);
    out->confidence = lef32(p + 16);
    out->text_bytes = le32(p + 20);
    out->text = (const char *)p + WORD_FIXED;
    *cursor += WORD_FIXED + out->text_bytes;
    return true;
}

/* Text: u32 flags, u32 bytes, text. */
long st_wire_text_encode(void *out, size_t cap, uint32_t flags, const char *text, size_t bytes)
{
    if (bytes > ST_WIRE_MAX_PAYLOAD - 8)
        return st_error(ST_ERR_INVALID, "text: %zu bytes exceed the payload limit", bytes);
    size_t need = 8 + bytes;
    if (!out)
        return (long)need;
    if (cap < need)
        return st_error(ST_ERR_INVALID, "text: %zu bytes needed, %zu given", need, cap);
    unsigned char *p = out;
    put32(p, flags);
    put32(p + 4, (uint32_t)bytes);
    if (bytes)
        memcpy(p + 8, text, bytes);
    return (long)need;
}

static int decode_text(const unsigned char *p, size_t n, st_wire_text *out)
{
    if (n < 8)
        return bad_payload("text payload of %zu bytes (at least 8)", n);
    out->flags = le32(p);
    out->bytes = le32(p + 4);
    out->text = (const char *)p + 8;
    if ((uint64_t)out->bytes != n - 8)
        return bad_payload("text says %u bytes, payload holds %zu", out->bytes, n - 8);
    return ST_OK;
}

/* Control: u32 cmd, u32 arg, u32 stage_id, u32 bytes, text. */
#define CONTROL_FIXED 16
#define MAX_CONTROL_TEXT 4096

long st_wire_control_encode(void *out, size_t cap, uint32_t cmd, uint32_t arg, uint32_t stage_id,
                            const char *text)
{
    size_t tb = text ? strlen(text) : 0;
    if (tb > MAX_CONTROL_TEXT)
        tb = MAX_CONTROL_TEXT;
    size_t need = CONTROL_FIXED + tb;
    if (!out)
        return (long)need;
    if (cap < need)
        return st_error(ST_ERR_INVALID, "control: %zu bytes needed, %zu given", need, cap);
    unsigned char *p = out;
    put32(p, cmd);
    put32(p + 4, arg);
    put32(p + 8, stage_id);
    put32(p + 12, (uint32_t)tb);
    if (tb)
        memcpy(p + CONTROL_FIXED, text, tb);
    return (long)need;
}

static int decode_control(const unsigned char *p, size_t n, st_wire_control *out)
{
    if (n < CONTROL_FIXED)
        return bad_payload("control payload of %zu bytes (at least %d)", n, CONTROL_FIXED);
    out->cmd = le32(p);
    out->arg = le32(p + 4);
    out->stage_id = le32(p + 8);
    out->bytes = le32(p + 12);
    out->text = (const char *)p + CONTROL_FIXED;
    if (out->cmd < 1 || out->cmd > ST_CTL_MAX)
        return bad_payload("unknown control command %u", out->cmd);
    if (out->bytes > MAX_CONTROL_TEXT || (uint64_t)out->bytes != n - CONTROL_FIXED)
        return bad_payload("control says %u bytes of text, payload holds %zu", out->bytes,
                           n - CONTROL_FIXED);
    return ST_OK;
}

/* Metrics: u32 stage_id, u32 n, then per metric u8 name_len, name, f64 value. */
#define MAX_METRICS 256

long st_wire_metrics_encode(void *out, size_t cap, uint32_t stage_id, const st_wire_metric *m,
                            size_t n)
{
    if (n > MAX_METRICS)
        return st_error(ST_ERR_INVALID, "metrics: %zu entries (at most %d)", n, MAX_METRICS);
    size_t need = 8;
    for (size_t i = 0; i < n; i++) {
        size_t len = strnlen(m[i].name, sizeof m[i].name);
        if (len == 0 || len > ST_METRIC_NAME_MAX)
            return st_error(ST_ERR_INVALID, "metrics: entry %zu has a name of %zu bytes", i, len);
        need += 1 + len + 8;
    }
    if (!out)
        return (long)need;
    if (cap < need)
        return st_error(ST_ERR_INVALID, "metrics: %zu bytes needed, %zu given", need, cap);
    unsigned char *p = out;
    put32(p, stage_id);
    put32(p + 4, (uint32_t)n);
    p += 8;
    for (size_t i = 0; i < n; i++) {
        size_t len = strnlen(m[i].name, sizeof m[i].name);
        *p++ = (unsigned char)len;
        memcpy(p, m[i].name, len);
        p += len;
        putf64(p, m[i].value);
        p += 8;
    }
    return (long)need;
}

static int decode_metrics(const unsigned char *p, size_t n, st_wire_metrics *out)
{
    if (n < 8)
        return bad_payload("metrics payload of %zu bytes (at least 8)", n);
    out->stage_id = le32(p);
    out->n = le32(p + 4);
    out->data = p + 8;
    out->bytes = n - 8;
    if (out->n > MAX_METRICS)
        return bad_payload("%u metrics (at most %d)", out->n, MAX_METRICS);
    size_t off = 0;
    for (uint32_t i = 0; i < out->n; i++) {
        if (off >= out->bytes)
            return bad_payload("metric %u truncated", i);
        size_t len = out->data[off];
        if (len == 0 || len > ST_METRIC_NAME_MAX || out->bytes - off - 1 < len + 8)
            return bad_payload("metric %u: name of %zu bytes, %zu bytes left", i, len,
                               out->bytes - off - 1);
        off += 1 + len + 8;
    }
    if (off != out->bytes)
        return bad_payload("%zu bytes after the last metric", out->bytes - off);
    return ST_OK;
}

bool st_wire_metrics_next(const st_wire_metrics *m, size_t *cursor, st_wire_metric *out)
{
    if (*cursor >= m->bytes)
        return false;
    const unsigned char *p = m->data + *cursor;
    size_t len = p[0];
    if (len > ST_METRIC_NAME_MAX || *cursor + 1 + len + 8 > m->bytes)
        return false;
    memcpy(out->name, p + 1, len);
    out->name[len] = '\0';
    out->value = lef64(p + 1 + len);
    *cursor += 1 + len + 8;
    return true;
}

/* ---- whole messages -------------------------------------------------------- */

int st_wire_decode(const void *hdr, size_t hdr_len, const void *payload, size_t payload_len,
                   st_wire_msg *m)
{
    last_bad = BAD_NONE;
    int rc = st_wire_header_decode(hdr, hdr_len, &m->h);
    if (rc)
        return rc;
    if (payload_len > ST_WIRE_MAX_PAYLOAD) {
        last_bad = BAD_SIZE;
        return st_error(ST_ERR_FORMAT, "payload of %zu bytes (at most %u)", payload_len,
                        ST_WIRE_MAX_PAYLOAD);
    }
    if (m->h.payload_bytes != payload_len) {
        last_bad = BAD_LENGTH;
        return st_error(ST_ERR_FORMAT, "header says %u payload bytes, frame holds %zu",
                        m->h.payload_bytes, payload_len);
    }
    const unsigned char *p = payload ? payload : (const unsigned char *)"";
    m->payload = p;
    m->payload_bytes = payload_len;
    switch (m->h.type) {
    case ST_MSG_PCM: return decode_pcm(p, payload_len, &m->pcm);
    case ST_MSG_SPIKES: return decode_spikes(p, payload_len, &m->spikes);
    case ST_MSG_WORDS: return decode_words(p, payload_len, &m->words);
    case ST_MSG_TEXT: return decode_text(p, payload_len, &m->text);
    case ST_MSG_CONTROL: return decode_control(p, payload_len, &m->control);
    case ST_MSG_METRICS: return decode_metrics(p, payload_len, &m->metrics);
    default: last_bad = BAD_TYPE; return st_error(ST_ERR_FORMAT, "unknown message type %u", m->h.type);
    }
}

const char *st_wire_type_name(int type)
{
    static const char *names[] = {"?", "pcm", "spikes", "words", "text", "control", "metrics"};
    return type >= 1 && type <= ST_MSG_TYPE_MAX ? names[type] : "?";
}

const char *st_wire_ctl_name(uint32_t cmd)
{
    static const char *names[] = {"?",   "start",     "stop",  "interrupt", "flush",  "turn",
                                  "end", "heartbeat", "ready", "failed",    "shutdown",
                                  "speech"};
    return cmd >= 1 && cmd <= ST_CTL_MAX ? names[cmd] : "?";
}

/* ---- sockets --------------------------------------------------------------- */

int st_wire_send(void *zsock, const st_wire_header *h, const void *payload, size_t bytes,
                 int flags)
{
    unsigned char hb[ST_WIRE_HEADER_BYTES];
    st_wire_header copy = *h;
    copy.payload_bytes = (uint32_t)bytes;
    st_wire_header_encode(&copy, hb);
    if (zmq_send(zsock, hb, sizeof hb, flags | ZMQ_SNDMORE) < 0)
        goto fail;
    if (zmq_send(zsock, payload ? payload : "", bytes, flags) < 0)
        goto fail; /* cannot happen once the first frame went: multipart is atomic */
    return ST_OK;
fail:
    if (errno == EAGAIN)
        return st_error(ST_ERR_TIMEOUT, "send: the queue is full");
    return st_error(ST_ERR_IO, "send: %s", zmq_strerror(errno));
}

struct st_wire_rx {
    zmq_msg_t hdr, body;
    bool holding;
    char who[96];
    st_wire_counters c;
};

st_wire_rx *st_wire_rx_new(const char *who, int *err)
{
    st_wire_rx *rx = calloc(1, sizeof *rx);
    if (!rx) {
        if (err)
            *err = st_error(ST_ERR_NOMEM, "out of memory");
        return NULL;
    }
    snprintf(rx->who, sizeof rx->who, "%s", who ? who : "receiver");
    zmq_msg_init(&rx->hdr);
    zmq_msg_init(&rx->body);
    if (err)
        *err = ST_OK;
    return rx;
}

void st_wire_rx_destroy(st_wire_rx **rx_p)
{
    if (!rx_p || !*rx_p)
        return;
    st_wire_rx *rx = *rx_p;
    zmq_msg_close(&rx->hdr);
    zmq_msg_close(&rx->body);
    free(rx);
    *rx_p = NULL;
}

const st_wire_counters *st_wire_rx_counters(const st_wire_rx *rx)
{
    return &rx->c;
}

static int drop(st_wire_rx *rx, bad_kind kind, const char *why)
{
    st_wire_counters *c = &rx->c;
    c->malformed++;
    switch (kind) {
    case BAD_HEADER: c->bad_header++; break;
    case BAD_MAGIC: c->bad_magic++; break;
    case BAD_VERSION: c->bad_version++; break;
    case BAD_TYPE: c->bad_type++; break;
    case BAD_LENGTH: c->bad_length++; break;
    case BAD_SIZE: c->oversized++; break;
    case BAD_PAYLOAD: c->bad_payload++; break;
    default: c->bad_frames++; break;
    }
    if (c->malformed <= 10 || c->malformed % 1000 == 0)
        st_log(ST_LOG_WARN, "%s: dropped a malformed message (%s); %llu dropped so far", rx->who,
               why, (unsigned long long)c->malformed);
    return st_error(ST_ERR_FORMAT, "%s: %s", rx->who, why);
}

int st_wire_rx_recv(st_wire_rx *rx, void *zsock, int flags, st_wire_msg *m)
{
    if (zmq_msg_recv(&rx->hdr, zsock, flags) < 0) {
        if (errno == EAGAIN)
            return ST_ERR_TIMEOUT;
        if (errno == EINTR)
            return ST_ERR_TIMEOUT;
        return st_error(ST_ERR_IO, "%s: receive: %s", rx->who, zmq_strerror(errno));
    }
    if (!zmq_msg_more(&rx->hdr)) {
        zmq_msg_close(&rx->body);
        zmq_msg_init(&rx->body);
        return drop(rx, BAD_NONE, "one frame, expected two (header, payload)");
    }
    /* The rest of a multipart message is already here: these never block. */
    zmq_msg_recv(&rx->body, zsock, 0);
    if (zmq_msg_more(&rx->body)) {
        zmq_msg_t extra;
        zmq_msg_init(&extra);
        int frames = 2;
        do {
            zmq_msg_recv(&extra, zsock, 0);
            frames++;
        } while (zmq_msg_more(&extra));
        zmq_msg_close(&extra);
        char why[64];
        snprintf(why, sizeof why, "%d frames, expected two (header, payload)", frames);
        return drop(rx, BAD_NONE, why);
    }
    int rc = st_wire_decode(zmq_msg_data(&rx->hdr), zmq_msg_size(&rx->hdr),
                            zmq_msg_data(&rx->body), zmq_msg_size(&rx->body), m);
    if (rc) {
        char why[256];
        snprintf(why, sizeof why, "%s", st_errmsg());
        return drop(rx, last_bad, why);
    }
    m->from_bus = false;
    m->frame_ = &rx->body;
    rx->c.received++;
    return ST_OK;
}
