/*  audio/encoder.c - spike encoders over the front end's frames (the "Front
    end" section of audio/audio.h): send-on-delta ON/OFF events, direct LIF
    current drive, and rate coding, all as address events (time, address)
    written into the caller's buffer.

    May touch: base/ only. The encoder's own LIF is a few lines of Euler
    here, not the SNN engine: audio/ knows nothing of snn/ (the currents from
    st_encoder_currents() are what an SNN input population takes).

    Tuned for: 40 channels a frame every 10 ms; a few to a few hundred events
    a frame (send-on-delta on speech: about 1 event per channel and frame at
    a 0.5 threshold on ln energy, far fewer in steady noise). Deterministic:
    the same frames and seed give the same events on every platform.
*/
#include "audio.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct st_encoder {
    st_encoder_params p;
    size_t n;
    float *ref;          /* SOD: reference per channel */
    int *refr;           /* SOD: refractory frames left */
    float *v;            /* LIF: membrane per channel */
    float lif_a;         /* LIF: dt_sub / tau */
    double rate_p_max;   /* RATE: spike probability per slot at norm = 1 */
    uint64_t rng;
    uint32_t frame;      /* frames encoded since reset */
    bool primed;         /* SOD: the reference holds a frame */
};

static const char *const kind_names[] = {"sod", "lif", "rate"};

const char *st_encoder_kind_name(st_encoder_kind kind)
{
    return (unsigned)kind < 3 ? kind_names[kind] : NULL;
}

int st_encoder_kind_from_name(const char *name, st_encoder_kind *out)
{
    for (int k = 0; k < 3; k++)
        if (name && !strcmp(name, kind_names[k])) {
            *out = (st_encoder_kind)k;
            return ST_OK;
        }
    return st_error(ST_ERR_NOT_FOUND, "no encoder '%s': the encoders are sod, lif, rate",
                    name ? name : "(null)");
}

st_encoder_params st_encoder_default_params(st_encoder_kind kind)
{
    return (st_encoder_params){
        .kind = kind,
        .n_channels = 40,
        .hop_samples = 160,
        .hop_s = 0.01,
        .sod_threshold = 0.5f,
        .sod_refractory_frames = 0,
        .sod_max_events = 4,
        .in_lo = -12.0f,
        .in_hi = 2.0f,
        .lif_gain = 2.0f,
        .lif_bias = 0.0f,
        .lif_tau_mem_s = 0.02,
        .lif_substeps = 10,
        .rate_max_hz = 200,
        .rate_substeps = 10,
        .seed = 1,
    };
}

void st_encoder_destroy(st_encoder **enc_p)
{
    if (!enc_p || !*enc_p)
        return;
    st_encoder *e = *enc_p;
    free(e->ref);
    free(e->refr);
    free(e->v);
    free(e);
    *enc_p = NULL;
}

static int check(const st_encoder_params *p)
{
    if ((unsigned)p->kind > ST_ENCODER_RATE)
        return st_error(ST_ERR_INVALID, "encoder: kind %d is not sod, lif or rate", (int)p->kind);
    if (p->n_channels < 1 || p->n_channels > 65536)
        return st_error(ST_ERR_INVALID, "encoder: n_channels %d is not in 1..65536",
                        p->n_channels);
    if (p->hop_samples < 1 || !(p->hop_s > 0))
        return st_error(ST_ERR_INVALID, "encoder: hop_samples (%zu) and hop_s (%g) must be > 0",
                        p->hop_samples, p->hop_s);
    switch (p->kind) {
    case ST_ENCODER_SOD:
        if (!(p->sod_threshold > 0) || p->sod_refractory_frames < 0 || p->sod_max_events < 1)
            return st_error(ST_ERR_INVALID,
                            "encoder sod: need sod_threshold > 0 (%g), sod_refractory_frames "
                            ">= 0 (%d), sod_max_events >= 1 (%d)",
                            p->sod_threshold, p->sod_refractory_frames, p->sod_max_events);
        break;
    case ST_ENCODER_LIF:
        if (!(p->lif_tau_mem_s > 0) || p->lif_substeps < 1 ||
            (size_t)p->lif_substeps > p->hop_samples)
            return st_error(ST_ERR_INVALID,
                            "encoder lif: need lif_tau_mem_s > 0 (%g) and 1 <= lif_substeps "
                            "(%d) <= hop_samples (%zu)",
                            p->lif_tau_mem_s, p->lif_substeps, p->hop_samples);
        break;
    case ST_ENCODER_RATE:
        if (!(p->rate_max_hz >= 0) || p->rate_substeps < 1 ||
            (size_t)p->rate_substeps > p->hop_samples)
            return st_error(ST_ERR_INVALID,
                            "encoder rate: need rate_max_hz >= 0 (%g) and 1 <= rate_substeps "
                            "(%d) <= hop_samples (%zu)",
                            p->rate_max_hz, p->rate_substeps, p->hop_samples);
        break;
    }
    if (p->kind != ST_ENCODER_SOD && !(p->in_hi > p->in_lo))
        return st_error(ST_ERR_INVALID, "encoder: in_hi (%g) must be above in_lo (%g)",
                        p->in_hi, p->in_lo);
    return ST_OK;
}

st_encoder *st_encoder_new(const st_encoder_params *p, int *err)
{
    int rc = check(p);
    st_encoder *e = NULL;
    if (rc != ST_OK)
        goto fail;
    rc = ST_ERR_NOMEM;
    e = calloc(1, sizeof *e);
    if (!e)
        goto fail;
    e->p = *p;
    e->n = (size_t)p->n_channels;
    e->ref = calloc(e->n, sizeof *e->ref);
    e->refr = calloc(e->n, sizeof *e->refr);
    e->v = calloc(e->n, sizeof *e->v);
    if (!e->ref || !e->refr || !e->v) {
        st_error(ST_ERR_NOMEM, "encoder: out of memory for %zu channels", e->n);
        goto fail;
    }
    if (p->kind == ST_ENCODER_LIF)
        e->lif_a = (float)(p->hop_s / p->lif_substeps / p->lif_tau_mem_s);
    if (p->kind == ST_ENCODER_RATE)
        e->rate_p_max = p->rate_max_hz * p->hop_s / p->rate_substeps;
    st_encoder_reset(e);
    if (err)
        *err = ST_OK;
    return e;
fail:
    st_encoder_destroy(&e);
    if (err)
        *err = rc;
    return NULL;
}

void st_encoder_reset(st_encoder *e)
{
    memset(e->ref, 0, e->n * sizeof *e->ref);
    memset(e->refr, 0, e->n * sizeof *e->refr);
    memset(e->v, 0, e->n * sizeof *e->v);
    e->rng = e->p.seed ? e->p.seed : 0x9e3779b97f4a7c15ULL;
    e->frame = 0;
    e->primed = false;
}

size_t st_encoder_n_addresses(const st_encoder *e)
{
    return e->p.kind == ST_ENCODER_SOD ? 2 * e->n : e->n;
}

size_t st_encoder_max_events(const st_encoder *e)
{
    switch (e->p.kind) {
    case ST_ENCODER_SOD: return e->n * (size_t)e->p.sod_max_events;
    case ST_ENCODER_LIF: return e->n * (size_t)e->p.lif_substeps;
    case ST_ENCODER_RATE: return e->n * (size_t)e->p.rate_substeps;
    }
    return 0;
}

static inline float norm01(const st_encoder_params *p, float x)
{
    float u = (x - p->in_lo) / (p->in_hi - p->in_lo);
    return u < 0 ? 0 : u > 1 ? 1 : u;
}

void st_encoder_currents(const st_encoder *e, const float *frame, float *current)
{
    for (size_t c = 0; c < e->n; c++)
        current[c] = e->p.lif_gain * norm01(&e->p, frame[c]) + e->p.lif_bias;
}

/* xorshift64 (Marsaglia 2003); the top 24 bits as a uniform in [0, 1). */
static inline double uniform(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    return (double)(x >> 40) * (1.0 / 16777216.0);
}

/* Stamp of sub-step j (0-based) of `steps` in the frame stamped `s`: the
   slots end at s - hop + (j + 1) hop / steps, the last one at s itself. */
static inline uint64_t sub_stamp(const st_encoder *e, uint64_t s, int j, int steps)
{
    uint64_t back = e->p.hop_samples - ((uint64_t)(j + 1) * e->p.hop_samples) / (uint64_t)steps;
    return s >= back ? s - back : 0;
}

int st_encoder_encode(st_encoder *e, const float *frame, uint64_t sample_index,
                      st_aer_event *out, size_t cap, size_t *made)
{
    if (cap < st_encoder_max_events(e)) {
        if (made)
            *made = 0;
        return st_error(ST_ERR_INVALID, "encoder: room for %zu events, a frame may make %zu", cap,
                        st_encoder_max_events(e));
    }
    size_t m = 0;
    const st_encoder_params *p = &e->p;
    switch (p->kind) {
    case ST_ENCODER_SOD:
        if (!e->primed) {
            memcpy(e->ref, frame, e->n * sizeof *frame);
            e->primed = true;
            break;
        }
        for (size_t c = 0; c < e->n; c++) {
            if (e->refr[c] > 0) {
                e->refr[c]--;
                continue;
            }
            float d = frame[c] - e->ref[c];
            int pol = d >= 0 ? 0 : 1;
            float step = pol ? -p->sod_threshold : p->sod_threshold;
            int k = 0;
            while (k < p->sod_max_events && fabsf(frame[c] - e->ref[c]) >= p->sod_threshold) {
                e->ref[c] += step;
                out[m++] = (st_aer_event){sample_index, (uint32_t)(2 * c + (size_t)pol), e->frame};
                k++;
            }
            if (k && p->sod_refractory_frames)
                e->refr[c] = p->sod_refractory_frames;
        }
        break;
    case ST_ENCODER_LIF:
        for (int j = 0; j < p->lif_substeps; j++) {
            uint64_t t = sub_stamp(e, sample_index, j, p->lif_substeps);
            for (size_t c = 0; c < e->n; c++) {
                float i = p->lif_gain * norm01(p, frame[c]) + p->lif_bias;
                float v = e->v[c] + e->lif_a * (i - e->v[c]);
                if (v > 1.0f) {
                    out[m++] = (st_aer_event){t, (uint32_t)c, e->frame};
                    v = 0;
                }
                e->v[c] = v;
            }
        }
        break;
    case ST_ENCODER_RATE:
        for (int j = 0; j < p->rate_substeps; j++) {
            uint64_t t = sub_stamp(e, sample_index, j, p->rate_substeps);
            for (size_t c = 0; c < e->n; c++) {
                double prob = e->rate_p_max * norm01(p, frame[c]);
                if (uniform(&e->rng) < prob)
                    out[m++] = (st_aer_event){t, (uint32_t)c, e->frame};
            }
        }
        break;
    }
    e->frame++;
    if (made)
        *made = m;
    return ST_OK;
}
