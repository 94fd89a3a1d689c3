/*  audio/device_virtual.c - virtual full-duplex devices, so that everything
    runs headless in tests and CI: a microphone fed from an audio file and a
    speaker that writes a WAV file (or discards), behind the same interface
    and the same audio path (st__device_process) as a sound card.

    The "hardware" side of this device (reading and resampling the file,
    writing the speaker file) runs outside the audio path, as a sound card's
    DMA would: the audio path itself only sees ready blocks. Two clocks:
      - realtime: a thread runs one block every block period of wall time;
      - as fast as the consumer: st_device_wait() runs exactly one block
        each time the application has read everything captured, so a run is
        deterministic to the sample and the stamps are the same every time.
*/
#include "device_impl.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VIRTUAL_DEFAULT_RATE 48000

typedef struct {
    st_audio_reader *reader;    /* NULL: a silent microphone */
    st_resampler *resampler;    /* file rate -> device rate; NULL when equal */
    st_audio_writer *writer;    /* NULL: discard */
    float *file_buf;            /* one chunk read from the file */
    size_t file_chunk;
    float *fifo;                /* device-rate samples waiting for a block */
    size_t fifo_len, fifo_cap;
    float *in_block, *out_block;
    size_t block;
    uint64_t max_frames;        /* 0 = until the end of the file */
    uint64_t captured;
    bool eof;                   /* the file (and the resampler's tail) is exhausted */
    bool mic_done;
    bool realtime;
    double t0;                  /* wall-clock start (realtime) */
    pthread_t thread;
    _Atomic int stop;
    bool thread_started;
} virtual_dev;

/* Tops the FIFO up to at least one block from the file (outside the audio path). */
static int fill_fifo(virtual_dev *v)
{
    while (v->fifo_len < v->block && !v->eof) {
        size_t space = v->fifo_cap - v->fifo_len;
        long got = st_audio_reader_read(v->reader, v->file_buf, v->file_chunk);
        if (got < 0)
            return (int)got;
        if (!v->resampler) {
            memcpy(v->fifo + v->fifo_len, v->file_buf, (size_t)got * sizeof(float));
            v->fifo_len += (size_t)got;
        } else if (got > 0) {
            size_t used, made;
            int rc = st_resampler_process(v->resampler, v->file_buf, (size_t)got,
                                          v->fifo + v->fifo_len, space, &used, &made);
            if (rc)
                return rc;
            v->fifo_len += made;
        }
        if (got == 0) {
            if (v->resampler) {
                size_t made;
                do {
                    int rc = st_resampler_flush(v->resampler, v->fifo + v->fifo_len,
                                                v->fifo_cap - v->fifo_len, &made);
                    if (rc)
                        return rc;
                    v->fifo_len += made;
                } while (made && v->fifo_len < v->fifo_cap);
            }
            v->eof = true;
        }
    }
    return ST_OK;
}

/* Runs one block: the microphone's next block, the audio path, the speaker. */
static int run_block(st_device *d)
{
    virtual_dev *v = d->backend;
    const float *in = NULL;
    if (!v->mic_done) {
        size_t n = v->block;
        memset(v->in_block, 0, v->block * sizeof(float));
        if (v->reader) {
            int rc = fill_fifo(v);
            if (rc) {
                atomic_store(&d->failed, rc);
                return rc;
            }
            n = v->fifo_len < v->block ? v->fifo_len : v->block;
            memcpy(v->in_block, v->fifo, n * sizeof(float));
            memmove(v->fifo, v->fifo + n, (v->fifo_len - n) * sizeof(float));
            v->fifo_len -= n;
        }
        if (v->max_frames && v->captured + v->block >= v->max_frames) {
            /* The last block: the part past max_frames is left silent. */
            size_t keep = (size_t)(v->max_frames - v->captured);
            if (keep < n)
                memset(v->in_block + keep, 0, (v->block - keep) * sizeof(float));
            v->mic_done = true;
        }
        if (v->reader && v->eof && v->fifo_len == 0)
            v->mic_done = true;
        v->captured += v->block;
        in = v->in_block;
    }
    double rate = d->info.sample_rate_hz;
    double adc, dac;
    if (v->realtime) {
        double now = st_now_s() - v->t0;
        adc = now - (double)v->block / rate;
        dac = now;
    } else {
        adc = (double)atomic_load(&d->frames_captured) / rate;
        dac = (double)atomic_load(&d->frames_played) / rate;
    }
    st__device_process(d, in, 1, v->out_block, 1, v->block, adc, dac);
    if (v->mic_done)
        atomic_store(&d->input_ended, 1);
    if (v->writer) {
        int rc = st_audio_writer_write(v->writer, v->out_block, v->block);
        if (rc) {
            atomic_store(&d->failed, rc);
            return rc;
        }
    }
    return ST_OK;
}

static void *realtime_thread(void *arg)
{
    st_device *d = arg;
    virtual_dev *v = d->backend;
    double period = (double)v->block / d->info.sample_rate_hz;
    double next = st_now_s();
    v->t0 = next;
    while (!atomic_load(&v->stop)) {
        next += period;
        st_sleep_until_s(next);
        if (run_block(d) != ST_OK)
            break;
    }
    return NULL;
}

static int v_start(st_device *d)
{
    virtual_dev *v = d->backend;
    if (!v->realtime)
        return ST_OK;
    atomic_store(&v->stop, 0);
    if (pthread_create(&v->thread, NULL, realtime_thread, d) != 0)
        return st_error(ST_ERR_DEVICE, "virtual device: cannot start its clock thread");
    v->thread_started = true;
    return ST_OK;
}

static int v_stop(st_device *d)
{
    virtual_dev *v = d->backend;
    if (v->thread_started) {
        atomic_store(&v->stop, 1);
        pthread_join(v->thread, NULL);
        v->thread_started = false;
    }
    return atomic_load(&d->failed);
}

static int v_step(st_device *d)
{
    return run_block(d);
}

static void v_close(st_device *d)
{
    virtual_dev *v = d->backend;
    if (!v)
        return;
    st_audio_reader_close(&v->reader);
    st_resampler_destroy(&v->resampler);
    if (v->writer)
        st_audio_writer_close(&v->writer);
    free(v->file_buf);
    free(v->fifo);
    free(v->in_block);
    free(v->out_block);
    free(v);
    d->backend = NULL;
}

static const st_device_ops ops_fast = {.start = v_start, .stop = v_stop, .step = v_step, .close = v_close};
static const st_device_ops ops_realtime = {.start = v_start, .stop = v_stop, .step = NULL, .close = v_close};

st_device *st_device_open_virtual(const st_device_params *p, const st_virtual_params *vp,
                                  int *err)
{
    int rc = ST_ERR_NOMEM;
    st_device *d = NULL;
    int rate = p->sample_rate_hz > 0 ? p->sample_rate_hz : VIRTUAL_DEFAULT_RATE;
    if (p->sample_rate_hz < 0 || rate > 768000) {
        rc = st_error(ST_ERR_INVALID, "virtual device: sample rate %d Hz is out of range",
                      p->sample_rate_hz);
        goto fail;
    }
    size_t block = p->frames_per_block > 0 ? (size_t)p->frames_per_block : (size_t)rate / 100;
    if (p->frames_per_block < 0 || block > 65536) {
        rc = st_error(ST_ERR_INVALID, "virtual device: %d frames per block is out of range",
                      p->frames_per_block);
        goto fail;
    }
    d = st__device_alloc(p, rate, block, &rc);
    if (!d)
        goto fail;
    virtual_dev *v = calloc(1, sizeof *v);
    if (!v)
        goto fail;
    d->backend = v;
    d->ops = vp->realtime ? &ops_realtime : &ops_fast;
    v->block = block;
    v->realtime = vp->realtime;
    v->max_frames = vp->max_seconds > 0 ? (uint64_t)(vp->max_seconds * rate + 0.5) : 0;
    v->in_block = calloc(block, sizeof(float));
    v->out_block = calloc(block, sizeof(float));
    if (!v->in_block || !v->out_block)
        goto fail;

    st_device_info *info = &d->info;
    info->frames_per_block = (int)block;
    info->input_channels = 1;
    info->output_channels = 1;
    info->realtime = vp->realtime;
    info->prefill_frames = p->prefill_frames ? p->prefill_frames : 2 * block;
    snprintf(info->host_api, sizeof info->host_api, "virtual");
    snprintf(info->input_name, sizeof info->input_name, "%s",
             vp->input_path ? vp->input_path : "(silence)");
    snprintf(info->output_name, sizeof info->output_name, "%s",
             vp->output_path ? vp->output_path : "(discard)");

    if (vp->input_path) {
        v->reader = st_audio_reader_open(vp->input_path, &rc);
        if (!v->reader)
            goto fail;
        int file_rate = st_audio_reader_rate_hz(v->reader);
        v->file_chunk = block * (size_t)file_rate / (size_t)rate + 1;
        v->file_buf = calloc(v->file_chunk, sizeof(float));
        if (!v->file_buf)
            goto fail;
        if (file_rate != rate) {
            v->resampler = st_resampler_new(file_rate, rate, ST_RESAMPLE_MEDIUM, &rc);
            if (!v->resampler)
                goto fail;
            info->input_latency_s = st_resampler_latency_s(v->resampler);
        }
        size_t per_chunk = v->resampler ? st_resampler_max_output(v->resampler, v->file_chunk)
                                        : v->file_chunk;
        v->fifo_cap = block + per_chunk + 8192; /* + the resampler's tail at the end */
        v->fifo = calloc(v->fifo_cap, sizeof(float));
        if (!v->fifo)
            goto fail;
    } else if (!v->max_frames && !vp->realtime) {
        rc = st_error(ST_ERR_INVALID,
                      "virtual device: a silent microphone that is not paced needs max_seconds");
        goto fail;
    }
    if (vp->output_path) {
        v->writer = st_audio_writer_open(vp->output_path, rate, ST_WAV_FLOAT, &rc);
        if (!v->writer)
            goto fail;
    }
    return d;
fail:
    if (rc == ST_ERR_NOMEM)
        st_error(ST_ERR_NOMEM, "virtual device: out of memory");
    if (d) {
        if (d->backend)
            v_close(d);
        st__device_free(d);
    }
    if (err)
        *err = rc;
    return NULL;
}
