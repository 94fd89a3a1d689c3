/*  pipeline/stage_encoder.c - the `encoder` stage: PCM at 16 kHz in, spike
    trains out as address events (SPIKES), through audio/'s streaming log-mel
    front end and one of its spike encoders (send-on-delta, LIF current
    drive, rate coding).

    Timing. Each PCM message feeds the front end; the frames it completes
    are encoded and their events sent as one SPIKES message. The header's
    sample_index is the first instant the message's events can carry (the
    start of the hop of its first frame: events of a frame lie in
    (stamp - hop, stamp]), and each event's t_us is its capture index minus
    that, in µs: the event's place on the one clock, exactly. The front end's
    algorithmic delay (window - 1) / 2 samples is what a frame's stamp lags
    what it describes (audio/audio.h); `spiketalk stage --list` shows it.
    A message whose samples complete no frame sends nothing. A gap in the
    capture index (audio shed upstream) or a new epoch restarts the front
    end and encoder from the new index, so stamps never drift.

    What it may touch: audio/ (front end, encoders). Workload: a 10 ms message
    is one frame: one 512-point FFT, 40 mel sums and the encoder, a few µs.
    Every buffer is sized in create for max_frames samples; data() does not
    allocate.
*/
#include "pipeline_impl.h"

#include "../audio/audio.h"

#include <stdlib.h>

typedef struct {
    st_frontend *fe;
    st_encoder *enc;
    size_t max_frames;      /* samples per message at most */
    size_t max_feat;        /* frames those samples can complete */
    size_t max_ev;          /* events of one frame at most */
    float *pcm, *feat;
    uint64_t *stamp;
    st_aer_event *ev;       /* max_ev events of the frame being encoded */
    st_wire_spike *out;     /* the message's events */
    size_t out_cap;
    unsigned char *payload;
    size_t payload_cap;
    uint32_t n_addr;
    uint64_t hop;
    bool anchored;
    uint64_t next16;        /* the capture index the next message should start at */
    uint32_t epoch;
} encoder;

static int en_create(st_stage *s, void **self)
{
    encoder *e = calloc(1, sizeof *e);
    if (!e)
        return st_error(ST_ERR_NOMEM, "out of memory");
    *self = e;
    static const char *const kinds[] = {"sod", "lif", "rate", NULL};
    long n_mels, max_frames, refractory, seed;
    double hop_ms, sod_threshold;
    int kind, rc;
    if ((rc = st_stage_param_choice(s, "kind", "sod", kinds, &kind)) ||
        (rc = st_stage_param_int(s, "n_mels", 40, 1, 256, &n_mels)) ||
        (rc = st_stage_param_double(s, "hop_ms", 10, 1, 25, &hop_ms)) ||
        (rc = st_stage_param_double(s, "sod_threshold", 0.5, 1e-3, 100, &sod_threshold)) ||
        (rc = st_stage_param_int(s, "sod_refractory_frames", 0, 0, 1000, &refractory)) ||
        (rc = st_stage_param_int(s, "seed", 1, 0, 1L << 62, &seed)) ||
        (rc = st_stage_param_int(s, "max_frames", 96000, 16, 1 << 20, &max_frames)))
        return rc;
    st_frontend_params fp = st_frontend_default_params();
    fp.n_mels = (int)n_mels;
    fp.hop_ms = hop_ms;
    if (!(e->fe = st_frontend_new(&fp, &rc)))
        return rc;
    st_encoder_params ep = st_encoder_default_params((st_encoder_kind)kind);
    ep.n_channels = (int)n_mels;
    ep.hop_samples = st_frontend_hop_samples(e->fe);
    ep.hop_s = (double)ep.hop_samples / ST_PIPELINE_RATE_HZ;
    ep.sod_threshold = (float)sod_threshold;
    ep.sod_refractory_frames = (int)refractory;
    ep.seed = (uint64_t)seed;
    if (!(e->enc = st_encoder_new(&ep, &rc)))
        return rc;
    e->hop = ep.hop_samples;
    e->n_addr = (uint32_t)st_encoder_n_addresses(e->enc);
    e->max_frames = (size_t)max_frames;
    e->max_feat = st_frontend_max_frames(e->fe, e->max_frames);
    e->max_ev = st_encoder_max_events(e->enc);
    e->out_cap = e->max_feat * e->max_ev;
    e->payload_cap = 8 + 8 * e->out_cap; /* docs/PROTOCOL.md 2.3, SPIKES */
    if (e->payload_cap > ST_WIRE_MAX_PAYLOAD)
        return st_error(ST_ERR_INVALID,
                        "encoder: max_frames = %zu makes messages over the protocol's 4 MiB; "
                        "use fewer",
                        e->max_frames);
    e->pcm = malloc(e->max_frames * sizeof *e->pcm);
    e->feat = malloc(e->max_feat * (size_t)n_mels * sizeof *e->feat);
    e->stamp = malloc(e->max_feat * sizeof *e->stamp);
    e->ev = malloc(e->max_ev * sizeof *e->ev);
    e->out = malloc(e->out_cap * sizeof *e->out);
    e->payload = malloc(e->payload_cap);
    if (!e->pcm || !e->feat || !e->stamp || !e->ev || !e->out || !e->payload)
        return st_error(ST_ERR_NOMEM, "out of memory");
    return ST_OK;
}

static void restart(encoder *e, uint64_t at)
{
    st_frontend_reset(e->fe, at);
    st_encoder_reset(e->enc);
    e->anchored = true;
}

static int en_data(st_stage *s, void *self, const st_wire_msg *m)
{
    encoder *e = self;
    if (m->h.type != ST_MSG_PCM)
        return st_stage_forward(s, m);
    if (m->pcm.rate_hz != ST_PIPELINE_RATE_HZ)
        return st_error(ST_ERR_INVALID,
                        "encoder: PCM at %u Hz; the front end takes %d Hz (put a resampler "
                        "before it)",
                        m->pcm.rate_hz, ST_PIPELINE_RATE_HZ);
    size_t n = st_wire_pcm_read(&m->pcm, e->pcm, e->max_frames);
    if (!e->anchored || m->h.sample_index != e->next16 || m->h.epoch != e->epoch)
        restart(e, m->h.sample_index);
    e->epoch = m->h.epoch;
    e->next16 = m->h.sample_index + n;
    size_t used, made;
    st_frontend_process(e->fe, e->pcm, n, e->feat, e->stamp, e->max_feat, &used, &made);
    if (!made)
        return ST_OK;
    int n_mels = st_frontend_n_mels(e->fe);
    uint64_t base = e->stamp[0] + 1 >= e->hop ? e->stamp[0] + 1 - e->hop : 0;
    size_t k = 0;
    for (size_t f = 0; f < made; f++) {
        size_t got = 0;
        int rc = st_encoder_encode(e->enc, e->feat + f * (size_t)n_mels, e->stamp[f], e->ev,
                                   e->max_ev, &got);
        if (rc)
            return rc;
        for (size_t i = 0; i < got && k < e->out_cap; i++, k++) {
            uint64_t at = e->ev[i].sample_index > base ? e->ev[i].sample_index - base : 0;
            e->out[k].t_us = (uint32_t)(at * 1000000u / ST_PIPELINE_RATE_HZ);
            e->out[k].channel = e->ev[i].address;
        }
    }
    long bytes = st_wire_spikes_encode(e->payload, e->payload_cap, e->n_addr, e->out, k);
    if (bytes < 0)
        return (int)bytes;
    st_wire_header h;
    st_stage_header(s, m, &h);
    h.sample_index = base;
    return st_stage_send(s, &h, ST_MSG_SPIKES, e->payload, (size_t)bytes);
}

static int en_control(st_stage *s, void *self, const st_wire_msg *m)
{
    (void)s;
    encoder *e = self;
    if (!m->from_bus && (m->control.cmd == ST_CTL_END || m->control.cmd == ST_CTL_FLUSH))
        e->anchored = false; /* the next stream starts afresh */
    return ST_OK;
}

static void en_destroy(void *self)
{
    encoder *e = self;
    if (!e)
        return;
    st_frontend_destroy(&e->fe);
    st_encoder_destroy(&e->enc);
    free(e->pcm);
    free(e->feat);
    free(e->stamp);
    free(e->ev);
    free(e->out);
    free(e->payload);
    free(e);
}

const st_stage_type st__stage_encoder = {
    .name = "encoder",
    .summary = "PCM 16 kHz in, spike trains out (log-mel front end + sod/lif/rate encoder, "
               "AER on the capture clock)",
    .params_help = "kind = sod          sod (send-on-delta ON/OFF), lif (current drive) or rate\n"
                   "n_mels = 40         mel channels (sod: 2 addresses each)\n"
                   "hop_ms = 10         frame step (window 25 ms; delay 12.47 ms at 10/25)\n"
                   "sod_threshold = 0.5 sod: change per event, ln energy\n"
                   "sod_refractory_frames = 0  sod: frames a channel rests after an event\n"
                   "seed = 1            rate: the draw's seed\n"
                   "max_frames = 96000  the largest message, samples\n",
    .create = en_create,
    .data = en_data,
    .control = en_control,
    .destroy = en_destroy,
};
