/*  audio/echo.c - the agent hears itself: an acoustic echo canceller over
    speexdsp (the "Echo" section of audio/audio.h), and a synthetic room that
    puts the loudspeaker's signal into a microphone signal.

    The canceller: speex's multi-delay block frequency-domain adaptive filter
    (speex_echo_cancellation) on one 16-bit frame at a time, then speex's
    preprocessor fed the echo state, which estimates the residual echo the
    linear filter left and attenuates it per band. The reference is delayed
    by the device's known playback->capture delay through a preallocated
    delay line, so the filter spends its taps on the room, not on the
    device's buffering.

    The room: a sparse impulse response (direct path, then about one
    reflection a millisecond with an exponential envelope that falls 60 dB in
    RT60), convolved tap by tap over a power-of-two history ring. A few
    hundred taps: ~0.3 us a sample, cheap enough to run on every conversation
    of the latency benchmark in virtual time.

    Workload: 16 kHz, 10 ms frames, a 200 ms filter; speex's cost is a few
    FFTs of 2 x frame per frame.
    May touch: base/, speexdsp, the heap in st_echo_new / st_room_new only.
    st_echo_process and st_room_process allocate nothing, take no lock and do
    no I/O: they may run on the audio thread.
*/
#include "audio.h"

#include <math.h>
#include <speex/speex_echo.h>
#include <speex/speex_preprocess.h>
#include <stdlib.h>
#include <string.h>

/* ---- the canceller ------------------------------------------------------- */

struct st_echo {
    st_echo_params p;
    SpeexEchoState *aec;
    SpeexPreprocessState *pp;
    float *line;                 /* reference delay line, line_len floats */
    size_t line_len;             /* max_delay_samples + frame_samples */
    size_t line_w;               /* where the next reference sample goes */
    int16_t *mic16, *ref16, *out16;
    float *ref_delayed;          /* one frame */
    st_echo_stats stats;
};

st_echo_params st_echo_default_params(void)
{
    return (st_echo_params){
        .sample_rate_hz = ST_PIPELINE_RATE_HZ,
        .frame_samples = ST_PIPELINE_RATE_HZ / 100,
        .filter_ms = 200,
        .delay_samples = 0,
        .max_delay_samples = ST_PIPELINE_RATE_HZ,
        .suppress_residual = true,
        .echo_suppress_db = -40,
        .echo_suppress_active_db = -15,
        .denoise = false,
    };
}

static int check_params(const st_echo_params *p)
{
    if (p->sample_rate_hz < 8000 || p->sample_rate_hz > 48000)
        return st_error(ST_ERR_INVALID, "echo canceller: sample_rate_hz %d is outside 8000 .. 48000",
                        p->sample_rate_hz);
    double frame_ms = 1000.0 * p->frame_samples / p->sample_rate_hz;
    if (frame_ms < 2.5 || frame_ms > 40)
        return st_error(ST_ERR_INVALID,
                        "echo canceller: frame_samples %d is %.2f ms at %d Hz, outside 2.5 .. 40 ms",
                        p->frame_samples, frame_ms, p->sample_rate_hz);
    if (!(p->filter_ms >= 10 && p->filter_ms <= 1000))
        return st_error(ST_ERR_INVALID, "echo canceller: filter_ms %g is outside 10 .. 1000",
                        p->filter_ms);
    if (p->max_delay_samples < 0 || p->max_delay_samples > 10 * p->sample_rate_hz)
        return st_error(ST_ERR_INVALID,
                        "echo canceller: max_delay_samples %d is outside 0 .. 10 s of samples",
                        p->max_delay_samples);
    if (p->delay_samples < 0 || p->delay_samples > p->max_delay_samples)
        return st_error(ST_ERR_INVALID,
                        "echo canceller: delay_samples %d is outside 0 .. max_delay_samples (%d)",
                        p->delay_samples, p->max_delay_samples);
    if (p->echo_suppress_db > 0 || p->echo_suppress_db < -100 || p->echo_suppress_active_db > 0 ||
        p->echo_suppress_active_db < -100)
        return st_error(ST_ERR_INVALID,
                        "echo canceller: echo_suppress_db %d / echo_suppress_active_db %d must be "
                        "in -100 .. 0 dB",
                        p->echo_suppress_db, p->echo_suppress_active_db);
    return ST_OK;
}

st_echo *st_echo_new(const st_echo_params *p, int *err)
{
    int e = check_params(p);
    st_echo *ec = NULL;
    if (e)
        goto fail;
    e = ST_ERR_NOMEM;
    ec = calloc(1, sizeof *ec);
    if (!ec)
        goto fail;
    ec->p = *p;
    size_t f = (size_t)p->frame_samples;
    ec->line_len = (size_t)p->max_delay_samples + f;
    ec->line = calloc(ec->line_len, sizeof *ec->line);
    ec->ref_delayed = calloc(f, sizeof *ec->ref_delayed);
    ec->mic16 = calloc(f, sizeof *ec->mic16);
    ec->ref16 = calloc(f, sizeof *ec->ref16);
    ec->out16 = calloc(f, sizeof *ec->out16);
    if (!ec->line || !ec->ref_delayed || !ec->mic16 || !ec->ref16 || !ec->out16)
        goto fail;
    int taps = (int)lround(p->filter_ms * 1e-3 * p->sample_rate_hz);
    ec->aec = speex_echo_state_init(p->frame_samples, taps);
    if (!ec->aec)
        goto fail;
    int rate = p->sample_rate_hz;
    speex_echo_ctl(ec->aec, SPEEX_ECHO_SET_SAMPLING_RATE, &rate);
    if (p->suppress_residual || p->denoise) {
        ec->pp = speex_preprocess_state_init(p->frame_samples, p->sample_rate_hz);
        if (!ec->pp)
            goto fail;
        /* speex applies its per-band gains (the residual echo's included)
           only with denoising on; without our denoise, the noise floor is
           0 dB so that only the echo is attenuated */
        int on = 1, off = 0, noise_db = p->denoise ? -15 : 0;
        speex_preprocess_ctl(ec->pp, SPEEX_PREPROCESS_SET_DENOISE, &on);
        speex_preprocess_ctl(ec->pp, SPEEX_PREPROCESS_SET_NOISE_SUPPRESS, &noise_db);
        speex_preprocess_ctl(ec->pp, SPEEX_PREPROCESS_SET_AGC, &off);
        speex_preprocess_ctl(ec->pp, SPEEX_PREPROCESS_SET_DEREVERB, &off);
        /* its VAD stays off (the default): setting it only prints a warning */
        if (p->suppress_residual) {
            int s = p->echo_suppress_db, a = p->echo_suppress_active_db;
            speex_preprocess_ctl(ec->pp, SPEEX_PREPROCESS_SET_ECHO_STATE, ec->aec);
            speex_preprocess_ctl(ec->pp, SPEEX_PREPROCESS_SET_ECHO_SUPPRESS, &s);
            speex_preprocess_ctl(ec->pp, SPEEX_PREPROCESS_SET_ECHO_SUPPRESS_ACTIVE, &a);
        }
    }
    if (err)
        *err = ST_OK;
    return ec;
fail:
    if (e == ST_ERR_NOMEM)
        st_error(e, "echo canceller: out of memory (frame %d, filter %g ms)", p->frame_samples,
                 p->filter_ms);
    st_echo_destroy(&ec);
    if (err)
        *err = e;
    return NULL;
}

void st_echo_destroy(st_echo **e_p)
{
    if (!e_p || !*e_p)
        return;
    st_echo *e = *e_p;
    if (e->pp)
        speex_preprocess_state_destroy(e->pp);
    if (e->aec)
        speex_echo_state_destroy(e->aec);
    free(e->line);
    free(e->ref_delayed);
    free(e->mic16);
    free(e->ref16);
    free(e->out16);
    free(e);
    *e_p = NULL;
}

static inline int16_t to16(float x)
{
    float y = x * 32767.0f;
    if (y > 32767.0f)
        return 32767;
    if (y < -32768.0f)
        return -32768;
    return (int16_t)lrintf(y);
}

int st_echo_process(st_echo *e, const float *mic, const float *played, float *out)
{
    size_t f = (size_t)e->p.frame_samples, L = e->line_len, d = (size_t)e->p.delay_samples;
    /* Write the played frame, then read the one played delay samples ago:
       the line holds max_delay + frame samples, so nothing needed is
       overwritten. */
    for (size_t i = 0; i < f; i++) {
        e->line[e->line_w] = played ? played[i] : 0.0f;
        size_t r = (e->line_w + L - d) % L;
        e->ref_delayed[i] = e->line[r];
        e->line_w = e->line_w + 1 == L ? 0 : e->line_w + 1;
    }
    double em = 0, er = 0, eo = 0;
    for (size_t i = 0; i < f; i++) {
        e->mic16[i] = to16(mic[i]);
        e->ref16[i] = to16(e->ref_delayed[i]);
        em += (double)mic[i] * mic[i];
        er += (double)e->ref_delayed[i] * e->ref_delayed[i];
    }
    speex_echo_cancellation(e->aec, e->mic16, e->ref16, e->out16);
    if (e->pp)
        speex_preprocess_run(e->pp, e->out16);
    for (size_t i = 0; i < f; i++) {
        out[i] = (float)e->out16[i] * (1.0f / 32768.0f);
        eo += (double)out[i] * out[i];
    }
    e->stats.frames++;
    e->stats.mic_energy += em;
    e->stats.ref_energy += er;
    e->stats.out_energy += eo;
    return ST_OK;
}

void st_echo_reset(st_echo *e)
{
    speex_echo_state_reset(e->aec);
    memset(e->line, 0, e->line_len * sizeof *e->line);
    e->line_w = 0;
    memset(&e->stats, 0, sizeof e->stats);
}

int st_echo_set_delay(st_echo *e, int delay_samples)
{
    if (delay_samples < 0 || delay_samples > e->p.max_delay_samples)
        return st_error(ST_ERR_INVALID,
                        "echo canceller: delay_samples %d is outside 0 .. max_delay_samples (%d)",
                        delay_samples, e->p.max_delay_samples);
    e->p.delay_samples = delay_samples;
    st_echo_reset(e);
    return ST_OK;
}

void st_echo_get_stats(const st_echo *e, st_echo_stats *s)
{
    *s = e->stats;
}

const st_echo_params *st_echo_params_of(const st_echo *e)
{
    return &e->p;
}

/* ---- the room ------------------------------------------------------------ */

struct st_room {
    st_room_params p;
    float *ir;                   /* dense impulse response, ir_len taps */
    size_t ir_len;
    uint32_t *tap_at;            /* the non-zero taps: lag and gain */
    float *tap_gain;
    size_t n_taps;
    float *hist;                 /* played history, power-of-two ring */
    size_t hist_mask;
    size_t hist_w;
};

st_room_params st_room_default_params(void)
{
    return (st_room_params){
        .sample_rate_hz = ST_PIPELINE_RATE_HZ,
        .delay_ms = 10,
        .direct_gain = 0.5,
        .rt60_ms = 300,
        .reflection_gain = 0.5,
        .seed = 1,
    };
}

static double room_uniform(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return (double)*s / 4294967296.0;
}

st_room *st_room_new(const st_room_params *p, int *err)
{
    int e = ST_ERR_INVALID;
    st_room *r = NULL;
    if (p->sample_rate_hz < 8000 || p->sample_rate_hz > 48000) {
        st_error(e, "room: sample_rate_hz %d is outside 8000 .. 48000", p->sample_rate_hz);
        goto fail;
    }
    if (!(p->delay_ms >= 0 && p->delay_ms <= 500)) {
        st_error(e, "room: delay_ms %g is outside 0 .. 500", p->delay_ms);
        goto fail;
    }
    if (!(p->direct_gain >= 0 && p->direct_gain <= 4)) {
        st_error(e, "room: direct_gain %g is outside 0 .. 4", p->direct_gain);
        goto fail;
    }
    if (!(p->rt60_ms >= 0 && p->rt60_ms <= 2000)) {
        st_error(e, "room: rt60_ms %g is outside 0 .. 2000", p->rt60_ms);
        goto fail;
    }
    if (!(p->reflection_gain >= 0 && p->reflection_gain <= 4)) {
        st_error(e, "room: reflection_gain %g is outside 0 .. 4", p->reflection_gain);
        goto fail;
    }
    e = ST_ERR_NOMEM;
    r = calloc(1, sizeof *r);
    if (!r)
        goto fail;
    r->p = *p;
    double fs = p->sample_rate_hz;
    size_t d0 = (size_t)lround(p->delay_ms * 1e-3 * fs);
    size_t tail = (size_t)lround(p->rt60_ms * 1e-3 * fs);
    r->ir_len = d0 + tail + 1;
    r->ir = calloc(r->ir_len, sizeof *r->ir);
    if (!r->ir)
        goto fail;
    r->ir[d0] = (float)p->direct_gain;
    /* Reflections: the first a couple of ms after the direct sound, then at
       exponential intervals of mean 1 ms; amplitude envelope
       10^(-3 t / RT60) (60 dB of energy in RT60), random signs. */
    uint32_t s = p->seed ? p->seed : 1;
    double gap = 1e-3 * fs;
    for (double t = 2e-3 * fs; p->rt60_ms > 0 && t < (double)tail;) {
        double env = pow(10.0, -3.0 * t / (p->rt60_ms * 1e-3 * fs));
        double sign = room_uniform(&s) < 0.5 ? -1.0 : 1.0;
        double g = p->direct_gain * p->reflection_gain * env * (0.5 + room_uniform(&s)) * sign;
        r->ir[d0 + (size_t)t] += (float)g;
        t += -log(1.0 - room_uniform(&s) * 0.999) * gap + 1;
    }
    for (size_t i = 0; i < r->ir_len; i++)
        r->n_taps += r->ir[i] != 0.0f;
    r->tap_at = calloc(r->n_taps ? r->n_taps : 1, sizeof *r->tap_at);
    r->tap_gain = calloc(r->n_taps ? r->n_taps : 1, sizeof *r->tap_gain);
    size_t cap = 1;
    while (cap < r->ir_len)
        cap <<= 1;
    r->hist = calloc(cap, sizeof *r->hist);
    r->hist_mask = cap - 1;
    if (!r->tap_at || !r->tap_gain || !r->hist)
        goto fail;
    for (size_t i = 0, k = 0; i < r->ir_len; i++)
        if (r->ir[i] != 0.0f) {
            r->tap_at[k] = (uint32_t)i;
            r->tap_gain[k++] = r->ir[i];
        }
    if (err)
        *err = ST_OK;
    return r;
fail:
    if (e == ST_ERR_NOMEM)
        st_error(e, "room: out of memory (rt60 %g ms)", p->rt60_ms);
    st_room_destroy(&r);
    if (err)
        *err = e;
    return NULL;
}

void st_room_destroy(st_room **r_p)
{
    if (!r_p || !*r_p)
        return;
    st_room *r = *r_p;
    free(r->ir);
    free(r->tap_at);
    free(r->tap_gain);
    free(r->hist);
    free(r);
    *r_p = NULL;
}

void st_room_process(st_room *r, const float *played, float *mic, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        r->hist[r->hist_w] = played[i];
        float acc = 0.0f;
        for (size_t k = 0; k < r->n_taps; k++)
            acc += r->tap_gain[k] * r->hist[(r->hist_w - r->tap_at[k]) & r->hist_mask];
        mic[i] += acc;
        r->hist_w = (r->hist_w + 1) & r->hist_mask;
    }
}

void st_room_reset(st_room *r)
{
    memset(r->hist, 0, (r->hist_mask + 1) * sizeof *r->hist);
    r->hist_w = 0;
}

const float *st_room_impulse(const st_room *r, size_t *len)
{
    *len = r->ir_len;
    return r->ir;
}
