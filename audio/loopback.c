/*  audio/loopback.c - microphone -> resample to the pipeline rate -> resample
    back -> speaker, through a device's rings: the smallest complete path,
    used to measure what the audio layer itself costs in delay.

    Runs on the application thread. The round trip is measured, not
    predicted: libsamplerate keeps the signal aligned, so playback ring
    frame j carries capture ring frame j; the stamps say at which sample index
    each was captured and played, and the difference is the round trip.
*/
#include "audio.h"

#include <stdlib.h>
#include <string.h>

#define LOOP_BLOCK 1024       /* capture frames taken per pass */
#define LOOP_MAX_RT 65536     /* round-trip samples kept for the median */

st_loopback_params st_loopback_default_params(void)
{
    return (st_loopback_params){
        .pipeline_rate_hz = ST_PIPELINE_RATE_HZ,
        .quality = ST_RESAMPLE_FASTEST,
        .timeout_s = 5.0,
        .max_seconds = 0,
        .stop = NULL,
        .progress = NULL,
        .user_data = NULL,
    };
}

typedef struct {
    st_device *dev;
    st_resampler *down, *up;
    float *cap, *mid, *out;
    size_t mid_cap, out_cap;
    int64_t capture_offset;   /* capture index - capture ring index, from the stamps */
    int64_t *rt;              /* round trips, one per stamp that played ring frames */
    size_t n_rt;
    uint64_t dropped;         /* output frames that found the playback ring full */
} loop_state;

static void take_stamps(loop_state *s)
{
    st_stamp st[64];
    size_t n;
    while ((n = st_device_read_stamps(s->dev, st, 64)) > 0) {
        for (size_t i = 0; i < n; i++) {
            if (st[i].captured)
                s->capture_offset = (int64_t)(st[i].capture_index - st[i].capture_ring_index);
            if (st[i].ring_frames && s->n_rt < LOOP_MAX_RT)
                s->rt[s->n_rt++] =
                    (int64_t)(st[i].play_index - st[i].play_ring_index) - s->capture_offset;
        }
    }
}

static void play(loop_state *s, const float *x, size_t n)
{
    size_t done = st_ring_write(st_device_playback(s->dev), x, n);
    s->dropped += n - done;
}

/* Pushes n pipeline-rate frames through the up-sampler to the speaker. */
static int up_and_play(loop_state *s, const float *mid, size_t n)
{
    while (n) {
        size_t used, made;
        int rc = st_resampler_process(s->up, mid, n, s->out, s->out_cap, &used, &made);
        if (rc)
            return rc;
        play(s, s->out, made);
        mid += used;
        n -= used;
    }
    return ST_OK;
}

static int process(loop_state *s, const float *in, size_t n)
{
    while (n) {
        size_t used, made;
        int rc = st_resampler_process(s->down, in, n, s->mid, s->mid_cap, &used, &made);
        if (rc)
            return rc;
        if ((rc = up_and_play(s, s->mid, made)))
            return rc;
        in += used;
        n -= used;
    }
    return ST_OK;
}

static int flush(loop_state *s)
{
    size_t made;
    int rc;
    do {
        if ((rc = st_resampler_flush(s->down, s->mid, s->mid_cap, &made)))
            return rc;
        if ((rc = up_and_play(s, s->mid, made)))
            return rc;
    } while (made);
    do {
        if ((rc = st_resampler_flush(s->up, s->out, s->out_cap, &made)))
            return rc;
        play(s, s->out, made);
    } while (made);
    return ST_OK;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

int st_loopback_run(st_device *d, const st_loopback_params *p, st_loopback_report *rep)
{
    st_device_info info;
    st_device_get_info(d, &info);
    memset(rep, 0, sizeof *rep);
    rep->sample_rate_hz = info.sample_rate_hz;
    if (p->pipeline_rate_hz <= 0)
        return st_error(ST_ERR_INVALID, "loopback: pipeline rate %d Hz", p->pipeline_rate_hz);

    int rc = ST_OK;
    loop_state s = {.dev = d};
    s.down = st_resampler_new(info.sample_rate_hz, p->pipeline_rate_hz, p->quality, &rc);
    if (!s.down)
        goto done;
    s.up = st_resampler_new(p->pipeline_rate_hz, info.sample_rate_hz, p->quality, &rc);
    if (!s.up)
        goto done;
    s.mid_cap = st_resampler_max_output(s.down, LOOP_BLOCK);
    s.out_cap = st_resampler_max_output(s.up, s.mid_cap);
    s.cap = malloc(LOOP_BLOCK * sizeof(float));
    s.mid = malloc(s.mid_cap * sizeof(float));
    s.out = malloc(s.out_cap * sizeof(float));
    s.rt = malloc(LOOP_MAX_RT * sizeof(int64_t));
    if (!s.cap || !s.mid || !s.out || !s.rt) {
        rc = st_error(ST_ERR_NOMEM, "loopback: out of memory");
        goto done;
    }
    rep->resampler_latency_frames =
        st_resampler_latency_frames(s.down) * info.sample_rate_hz / p->pipeline_rate_hz +
        st_resampler_latency_frames(s.up);

    if ((rc = st_device_start(d)))
        goto done;
    st_ring *capture = st_device_capture(d);
    for (;;) {
        if (p->stop && *p->stop)
            break;
        if (p->max_seconds > 0 && rep->frames_in >= p->max_seconds * info.sample_rate_hz)
            break;
        rc = st_device_wait(d, p->timeout_s);
        if (rc == ST_ERR_END) {
            rc = ST_OK;
            break;
        }
        if (rc)
            goto stop;
        size_t n;
        while ((n = st_ring_read(capture, s.cap, LOOP_BLOCK)) > 0) {
            rep->frames_in += n;
            if ((rc = process(&s, s.cap, n)))
                goto stop;
        }
        take_stamps(&s);
        if (p->progress)
            p->progress((double)rep->frames_in / info.sample_rate_hz, 0, p->user_data);
    }
    if ((rc = flush(&s)))
        goto stop;
    rc = st_device_drain(d, p->timeout_s);
stop:;
    int stop_rc = st_device_stop(d);
    if (!rc)
        rc = stop_rc;
    take_stamps(&s);
    st_device_get_stats(d, &rep->device);
    rep->frames_out = rep->device.frames_played - rep->device.silence_frames;
    if (s.n_rt) {
        qsort(s.rt, s.n_rt, sizeof *s.rt, cmp_i64);
        rep->round_trip_min_frames = (double)s.rt[0];
        rep->round_trip_max_frames = (double)s.rt[s.n_rt - 1];
        rep->round_trip_frames = (double)s.rt[s.n_rt / 2];
        rep->round_trip_ms = 1e3 * rep->round_trip_frames / info.sample_rate_hz;
    } else if (!rc) {
        rc = st_error(ST_ERR_END, "loopback: nothing was played (no audio captured?)");
    }
    if (!rc && s.dropped)
        st_log(ST_LOG_WARN, "loopback: %llu output frames dropped: the playback ring was full",
               (unsigned long long)s.dropped);
done:
    st_resampler_destroy(&s.down);
    st_resampler_destroy(&s.up);
    free(s.cap);
    free(s.mid);
    free(s.out);
    free(s.rt);
    return rc;
}
