/*  audio/device.c - what every full-duplex device shares: the rings, the one
    audio-path function every backend's callback calls, stamps, waiting and
    draining, statistics.

    Tuned for blocks of 64 to 1024 frames at 16 to 48 kHz. The audio path
    (st__device_process) touches only memory allocated here at open, moves
    samples with memcpy through the SPSC rings, and wakes the application
    with sem_post (an atomic increment; a futex wake only when someone
    waits), never a lock.
*/
#include "device_impl.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define STAMP_CAPACITY 1024

st_device_params st_device_default_params(void)
{
    return (st_device_params){
        .sample_rate_hz = 0,
        .frames_per_block = 0,
        .suggested_latency_s = -1,
        .input_device = NULL,
        .output_device = NULL,
        .ring_frames = 0,
        .prefill_frames = 0,
    };
}

static size_t pow2_at_least(size_t n)
{
    size_t p = 1;
    while (p < n)
        p <<= 1;
    return p;
}

st_device *st__device_alloc(const st_device_params *p, int rate_hz, size_t max_block_frames,
                            int *err)
{
    int rc = ST_ERR_NOMEM;
    size_t ring = p->ring_frames ? p->ring_frames : pow2_at_least((size_t)rate_hz);
    if (ring & (ring - 1)) {
        rc = st_error(ST_ERR_INVALID, "device: ring_frames %zu is not a power of two", ring);
        goto fail_early;
    }
    if (ring < 4 * max_block_frames) {
        rc = st_error(ST_ERR_INVALID,
                      "device: ring_frames %zu is too small for blocks of %zu frames (need 4 blocks)",
                      ring, max_block_frames);
        goto fail_early;
    }
    /* The rings inside keep their indices on separate 64-byte cache lines. */
    st_device *d = aligned_alloc(64, (sizeof *d + 63) & ~(size_t)63);
    if (!d)
        goto fail_early;
    memset(d, 0, sizeof *d);
    d->capture_storage = calloc(ring, sizeof(float));
    d->playback_storage = calloc(ring, sizeof(float));
    d->stamp_storage = calloc(STAMP_CAPACITY, sizeof(st_stamp));
    d->scratch = calloc(max_block_frames, sizeof(float));
    if (!d->capture_storage || !d->playback_storage || !d->stamp_storage || !d->scratch)
        goto fail;
    st_ring_init(&d->capture, d->capture_storage, sizeof(float), ring);
    st_ring_init(&d->playback, d->playback_storage, sizeof(float), ring);
    st_ring_init(&d->stamps, d->stamp_storage, sizeof(st_stamp), STAMP_CAPACITY);
    d->scratch_frames = max_block_frames;
    if (sem_init(&d->block_done, 0, 0) != 0)
        goto fail;
    d->info.sample_rate_hz = rate_hz;
    d->info.prefill_frames = p->prefill_frames;
    d->priming = true;
    return d;
fail:
    free(d->capture_storage);
    free(d->playback_storage);
    free(d->stamp_storage);
    free(d->scratch);
    free(d);
    rc = st_error(ST_ERR_NOMEM, "device: out of memory for rings of %zu frames", ring);
fail_early:
    if (err)
        *err = rc;
    return NULL;
}

void st__device_free(st_device *d)
{
    sem_destroy(&d->block_done);
    free(d->capture_storage);
    free(d->playback_storage);
    free(d->stamp_storage);
    free(d->scratch);
    free(d);
}

void st__device_process(st_device *d, const float *in, int in_channels, float *out,
                        int out_channels, size_t frames, double adc_time_s, double dac_time_s)
{
    st_rt_enter();
    const double dt = 1.0 / d->info.sample_rate_hz;
    const size_t prefill = d->info.prefill_frames;
    if (d->timed) { /* monotonic stream time: never before the last block's end */
        double back = d->next_adc_s - adc_time_s;
        double back_dac = d->next_dac_s - dac_time_s;
        back = back > back_dac ? back : back_dac;
        if (back > 0.5 * dt) { /* half a sample: below that it is rounding */
            atomic_fetch_add_explicit(&d->time_steps_back, 1, memory_order_relaxed);
            uint64_t ns = (uint64_t)(back * 1e9);
            if (ns > atomic_load_explicit(&d->worst_step_back_ns, memory_order_relaxed))
                atomic_store_explicit(&d->worst_step_back_ns, ns, memory_order_relaxed);
        }
        if (adc_time_s < d->next_adc_s)
            adc_time_s = d->next_adc_s;
        if (dac_time_s < d->next_dac_s)
            dac_time_s = d->next_dac_s;
    }
    while (frames) {
        size_t n = frames < d->scratch_frames ? frames : d->scratch_frames;
        st_stamp s;
        memset(&s, 0, sizeof s);
        s.frames = (uint32_t)n;
        s.adc_time_s = adc_time_s;
        s.dac_time_s = dac_time_s;

        /* Capture: mix down to mono, push; a full ring drops and counts. */
        s.capture_index = atomic_load_explicit(&d->frames_captured, memory_order_relaxed);
        s.capture_ring_index = st_ring_write_index(&d->capture);
        if (in) {
            if (in_channels == 1) {
                s.captured = (uint32_t)st_ring_push(&d->capture, in, n);
            } else {
                const float gain = 1.0f / (float)in_channels;
                for (size_t i = 0; i < n; i++) {
                    float acc = 0;
                    for (int c = 0; c < in_channels; c++)
                        acc += in[i * (size_t)in_channels + (size_t)c];
                    d->scratch[i] = acc * gain;
                }
                s.captured = (uint32_t)st_ring_push(&d->capture, d->scratch, n);
            }
            atomic_store_explicit(&d->frames_captured, s.capture_index + n, memory_order_relaxed);
            in += n * (size_t)in_channels;
        }

        /* Playback: silence until the prefill is queued (or we drain), then
           play; running dry plays silence, counts an underrun, re-primes. */
        s.play_index = atomic_load_explicit(&d->frames_played, memory_order_relaxed);
        s.play_ring_index = st_ring_read_index(&d->playback);
        size_t avail = st_ring_read_available(&d->playback);
        bool draining = atomic_load_explicit(&d->draining, memory_order_relaxed);
        if (d->priming && (avail >= prefill || (draining && avail)))
            d->priming = false;
        size_t take = 0;
        if (!d->priming) {
            take = avail < n ? avail : n;
            st_ring_read(&d->playback, d->scratch, take);
            if (take < n) {
                if (!draining)
                    atomic_fetch_add_explicit(&d->underrun_frames, n - take, memory_order_relaxed);
                d->priming = true;
            }
        }
        memset(d->scratch + take, 0, (n - take) * sizeof(float));
        if (take < n)
            atomic_fetch_add_explicit(&d->silence_frames, n - take, memory_order_relaxed);
        if (out) {
            if (out_channels == 1) {
                memcpy(out, d->scratch, n * sizeof(float));
            } else {
                for (size_t i = 0; i < n; i++)
                    for (int c = 0; c < out_channels; c++)
                        out[i * (size_t)out_channels + (size_t)c] = d->scratch[i];
            }
            out += n * (size_t)out_channels;
        }
        s.ring_frames = (uint32_t)take;
        atomic_store_explicit(&d->frames_played, s.play_index + n, memory_order_relaxed);

        if (!st_ring_write(&d->stamps, &s, 1))
            atomic_fetch_add_explicit(&d->stamps_dropped, 1, memory_order_relaxed);
        adc_time_s += (double)n * dt;
        dac_time_s += (double)n * dt;
        frames -= n;
    }
    d->next_adc_s = adc_time_s;
    d->next_dac_s = dac_time_s;
    d->timed = true;
    atomic_fetch_add_explicit(&d->blocks, 1, memory_order_relaxed);
    st_rt_leave();
    sem_post(&d->block_done);
}

/* ---- the application side ------------------------------------------------- */

void st_device_destroy(st_device **d_p)
{
    if (!d_p || !*d_p)
        return;
    st_device *d = *d_p;
    if (atomic_load(&d->running))
        d->ops->stop(d);
    d->ops->close(d);
    st__device_free(d);
    *d_p = NULL;
}

int st_device_start(st_device *d)
{
    if (atomic_load(&d->running))
        return st_error(ST_ERR_STATE, "device: already started");
    int rc = d->ops->start(d);
    if (rc == ST_OK)
        atomic_store(&d->running, 1);
    return rc;
}

int st_device_stop(st_device *d)
{
    if (!atomic_load(&d->running))
        return ST_OK;
    int rc = d->ops->stop(d);
    atomic_store(&d->running, 0);
    return rc;
}

st_ring *st_device_capture(st_device *d)
{
    return &d->capture;
}

st_ring *st_device_playback(st_device *d)
{
    return &d->playback;
}

/* Waits for the next block, or until `deadline_s`. */
static int wait_block(st_device *d, double deadline_s)
{
    if (d->ops->step)
        return d->ops->step(d);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    double left = deadline_s - st_now_s();
    if (left <= 0)
        return ST_ERR_TIMEOUT;
    double wait = left < 0.05 ? left : 0.05; /* wake now and then to re-check state */
    long ns = ts.tv_nsec + (long)(wait * 1e9);
    ts.tv_sec += ns / 1000000000L;
    ts.tv_nsec = ns % 1000000000L;
    while (sem_timedwait(&d->block_done, &ts) != 0) {
        if (errno == ETIMEDOUT)
            return st_now_s() >= deadline_s ? ST_ERR_TIMEOUT : ST_OK;
        if (errno != EINTR)
            return st_error(ST_ERR_INTERNAL, "device: sem_timedwait failed: %s", strerror(errno));
    }
    return ST_OK;
}

int st_device_wait(st_device *d, double timeout_s)
{
    if (!atomic_load(&d->running))
        return st_error(ST_ERR_STATE, "device: wait before start");
    double deadline = st_now_s() + timeout_s;
    for (;;) {
        if (st_ring_read_available(&d->capture) > 0)
            return ST_OK;
        int failed = atomic_load(&d->failed);
        if (failed)
            return failed;
        if (atomic_load(&d->input_ended)) {
            /* The last block may have landed between the two checks. */
            return st_ring_read_available(&d->capture) > 0 ? ST_OK : ST_ERR_END;
        }
        int rc = wait_block(d, deadline);
        if (rc == ST_ERR_TIMEOUT)
            return st_error(ST_ERR_TIMEOUT, "device: no audio captured for %.3f s", timeout_s);
        if (rc)
            return rc;
    }
}

int st_device_drain(st_device *d, double timeout_s)
{
    if (!atomic_load(&d->running))
        return st_error(ST_ERR_STATE, "device: drain before start");
    double deadline = st_now_s() + timeout_s;
    atomic_store(&d->draining, 1);
    int rc = ST_OK;
    while (st_ring_read_available(&d->playback) > 0) {
        if ((rc = atomic_load(&d->failed)))
            break;
        rc = wait_block(d, deadline);
        if (rc == ST_ERR_TIMEOUT) {
            rc = st_error(ST_ERR_TIMEOUT, "device: %zu frames still queued after %.3f s",
                          st_ring_read_available(&d->playback), timeout_s);
            break;
        }
        if (rc)
            break;
    }
    atomic_store(&d->draining, 0);
    return rc;
}

size_t st_device_read_stamps(st_device *d, st_stamp *out, size_t max)
{
    return st_ring_read(&d->stamps, out, max);
}

void st_device_get_info(const st_device *d, st_device_info *info)
{
    *info = d->info;
}

void st_device_get_stats(const st_device *d, st_device_stats *s)
{
    memset(s, 0, sizeof *s);
    s->blocks = atomic_load(&d->blocks);
    s->frames_captured = atomic_load(&d->frames_captured);
    s->frames_played = atomic_load(&d->frames_played);
    s->capture_overrun_frames = st_ring_overruns(&d->capture);
    s->playback_underrun_frames = atomic_load(&d->underrun_frames);
    s->silence_frames = atomic_load(&d->silence_frames);
    s->stamps_dropped = atomic_load(&d->stamps_dropped);
    s->time_steps_back = atomic_load(&d->time_steps_back);
    s->worst_step_back_s = (double)atomic_load(&d->worst_step_back_ns) * 1e-9;
}
