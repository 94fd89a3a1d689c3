/*  audio/resample.c - streaming sample-rate conversion over libsamplerate.

    Converts one mono float stream between two fixed rates (device rate <->
    the 16 kHz pipeline rate), block by block, with src_process(): 10 ms
    blocks on the audio path, whole files in tools. The only memory is what
    libsamplerate allocates in src_new() and the measurement buffer freed
    before st_resampler_new() returns; process and flush allocate nothing and
    take no lock, so they may run on a real-time thread. Touches nothing but
    its own state: no files, no logging.

    libsamplerate's sinc converters are signal aligned: they start as if the
    input were preceded by silence, so an impulse at input frame n comes out
    at output frame n * ratio. But output frame k needs the input up to
    k / ratio plus half the filter, so the converter holds that much input
    back until more arrives: at ratio 1, SINC_FASTEST holds 20 frames,
    MEDIUM 47, BEST 144 (in input frames; when downsampling the filter is
    stretched by 1 / ratio). That hold-back is the delay a live stream sees,
    and what st_resampler_latency_frames() reports (see measure_latency()).
*/
#include "audio.h"

#include <assert.h>
#include <limits.h>
#include <math.h>
#include <samplerate.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/*  Block size for the latency measurement: 10 ms at 16 kHz, the pipeline's
    block, or less when upsampling by more than 3, so that a block makes at
    most 480 frames (at ratio 256 a 160-frame block would make 40960). The
    hold-back does not depend on it (it is the filter's), but its fractional
    part wobbles by up to a frame with the block's phase against the ratio,
    so the measurement averages over many blocks. */
#define MEASURE_BLOCK_FRAMES 160
#define MEASURE_MAX_OUT_PER_BLOCK 480
#define MEASURE_AVERAGE_BLOCKS 32    /* blocks averaged once output flows */

struct st_resampler {
    SRC_STATE *src;          /* NULL when the rates are equal: a plain copy */
    int in_rate_hz;
    int out_rate_hz;
    int converter;           /* SRC_SINC_* */
    double ratio;            /* out_rate_hz / in_rate_hz */
    double latency_frames;   /* hold-back in output frames, measured at creation */
    uint64_t in_total;       /* frames consumed since creation or reset */
    uint64_t out_total;      /* frames made since creation or reset */
    bool flushed;            /* end of input given: only reset() may follow */
};

/* An input pointer for calls that pass no input: libsamplerate checks its
   pointers against each other, and NULL arithmetic is undefined. */
static const float no_input[1];

static int converter_for(st_resample_quality quality)
{
    switch (quality) {
    case ST_RESAMPLE_FASTEST: return SRC_SINC_FASTEST;
    case ST_RESAMPLE_MEDIUM: return SRC_SINC_MEDIUM_QUALITY;
    case ST_RESAMPLE_BEST: return SRC_SINC_BEST_QUALITY;
    }
    return -1;
}

/*  Frames one call makes beyond ceil(in * ratio), at most:
      - 2 for rounding: libsamplerate steps its read position by 1 / ratio
        in floating point, and ceil(in * ratio) is itself rounded (measured:
        never more than ceil(in * ratio) over 20000 random block sizes at six
        ratios and all three converters, so 2 is slack);
      - ceil(ratio) for what a call limited by a small out_cap may leave
        inside the filter: st_resampler_process() then feeds input only as
        far as out_cap holds, except that it takes one input frame (ratio
        output frames) when it could not otherwise progress. */
static size_t output_margin(double ratio)
{
    return (size_t)ceil(ratio) + 2;
}

/*  The hold-back in output frames, measured on a throwaway state of the same
    converter and ratio fed with silence in 160-frame blocks (fewer when
    upsampling by more than 3):
    in_total * ratio - out_total is what the converter owes for the input it
    has taken. libsamplerate primes its filter with zeros at the start, so
    this is constant (up to a fraction of a frame that wobbles with the
    block's phase against the ratio) from the first block that makes output
    on: no longer warm-up is needed, and none is paid for (creation costs
    the conversion of the hold-back plus 32 blocks: 0.7 ms for fastest
    48k->16k, 15 ms for best 16k->48k, on one EPYC core). It is
    averaged over the 32 blocks after the first output, which puts the
    wobble's share of the error under 0.05 frames. Measured, not computed
    from the filter length, because the length is libsamplerate's private
    business (its tables and its rounding differ between versions). */
static int measure_latency(int converter, double ratio, double *latency)
{
    static const float zeros[MEASURE_BLOCK_FRAMES];
    long block = MEASURE_BLOCK_FRAMES;
    if (block * ratio > MEASURE_MAX_OUT_PER_BLOCK)
        block = lrint(fmax(1.0, floor(MEASURE_MAX_OUT_PER_BLOCK / ratio)));
    size_t cap = (size_t)ceil((double)block * ratio) + output_margin(ratio);
    float *out = malloc(cap * sizeof *out);
    int e = 0;
    SRC_STATE *src = src_new(converter, 1, &e);
    if (!out || !src) {
        free(out);
        src_delete(src);
        return st_error(ST_ERR_NOMEM, "resampler: out of memory%s%s", src ? "" : ": ",
                        src ? "" : src_strerror(e));
    }
    uint64_t in_total = 0, out_total = 0;
    double sum = 0;
    int averaged = 0;
    while (averaged < MEASURE_AVERAGE_BLOCKS) {
        SRC_DATA d = {
            .data_in = zeros,
            .data_out = out,
            .input_frames = block,
            .output_frames = (long)cap,
            .src_ratio = ratio,
        };
        e = src_process(src, &d);
        if (e || d.input_frames_used != block)
            break;
        in_total += (uint64_t)d.input_frames_used;
        out_total += (uint64_t)d.output_frames_gen;
        if (out_total > (uint64_t)d.output_frames_gen) { /* from the 2nd block with output */
            sum += (double)in_total * ratio - (double)out_total;
            averaged++;
        }
    }
    src_delete(src);
    free(out);
    if (averaged < MEASURE_AVERAGE_BLOCKS)
        return st_error(ST_ERR_INTERNAL, "resampler: measuring the delay at ratio %g: %s", ratio,
                        e ? src_strerror(e) : "a block was not consumed");
    *latency = sum / averaged;
    return ST_OK;
}

st_resampler *st_resampler_new(int in_rate_hz, int out_rate_hz, st_resample_quality quality,
                               int *err)
{
    st_resampler *r = NULL;
    int rc;
    if (in_rate_hz <= 0 || out_rate_hz <= 0) {
        rc = st_error(ST_ERR_INVALID, "resampler: rates must be positive, got %d Hz -> %d Hz",
                      in_rate_hz, out_rate_hz);
        goto fail;
    }
    int converter = converter_for(quality);
    if (converter < 0) {
        rc = st_error(ST_ERR_INVALID, "resampler: unknown quality %d (0 fastest, 1 medium, 2 best)",
                      (int)quality);
        goto fail;
    }
    double ratio = (double)out_rate_hz / in_rate_hz;
    if (!src_is_valid_ratio(ratio)) {
        rc = st_error(ST_ERR_INVALID,
                      "resampler: %d Hz -> %d Hz is a ratio of %g, outside libsamplerate's "
                      "1/256 .. 256",
                      in_rate_hz, out_rate_hz, ratio);
        goto fail;
    }
    r = calloc(1, sizeof *r);
    if (!r) {
        rc = st_error(ST_ERR_NOMEM, "resampler: out of memory");
        goto fail;
    }
    r->in_rate_hz = in_rate_hz;
    r->out_rate_hz = out_rate_hz;
    r->converter = converter;
    r->ratio = ratio;
    if (in_rate_hz != out_rate_hz) {
        int e = 0;
        r->src = src_new(converter, 1, &e);
        if (!r->src) {
            /* The converter and channel count are valid: only memory can fail
               (libsamplerate's error numbers are not public to tell). */
            rc = st_error(ST_ERR_NOMEM, "resampler: out of memory: %s", src_strerror(e));
            goto fail;
        }
        rc = measure_latency(converter, ratio, &r->latency_frames);
        if (rc)
            goto fail;
    }
    if (err)
        *err = ST_OK;
    return r;
fail:
    st_resampler_destroy(&r);
    if (err)
        *err = rc;
    return NULL;
}

void st_resampler_destroy(st_resampler **r_p)
{
    if (!r_p || !*r_p)
        return;
    src_delete((*r_p)->src);
    free(*r_p);
    *r_p = NULL;
}

/*  One src_process() call; adds what it used and made to the counts. */
static int convert(st_resampler *r, const float *in, size_t in_frames, float *out, size_t out_cap,
                   int end_of_input, size_t *in_used, size_t *out_made)
{
    SRC_DATA d = {
        .data_in = in_frames ? in : no_input,
        .data_out = out,
        .input_frames = (long)in_frames,
        .output_frames = (long)out_cap,
        .end_of_input = end_of_input,
        .src_ratio = r->ratio,
    };
    int e = src_process(r->src, &d);
    if (e) /* pointers and ratio were checked: this is a bug */
        return st_error(ST_ERR_INTERNAL, "resampler %d Hz -> %d Hz: libsamplerate: %s",
                        r->in_rate_hz, r->out_rate_hz, src_strerror(e));
    *in_used += (size_t)d.input_frames_used;
    *out_made += (size_t)d.output_frames_gen;
    r->in_total += (uint64_t)d.input_frames_used;
    r->out_total += (uint64_t)d.output_frames_gen;
    return ST_OK;
}

/*  How much of in_frames to hand libsamplerate so that what it makes fits
    out_cap. Handed everything, libsamplerate fills its internal buffer (some
    15000 frames for SINC_FASTEST), reports all of it as used and keeps what
    did not fit the output: the caller would think the input converted while
    the stream silently gained hundreds of milliseconds of delay, and every
    later call would owe that backlog. So a call limited by out_cap consumes
    only the input whose output fits. The backlog is estimated from the
    counts: input taken times ratio, less output made, less the steady
    hold-back; plus one frame for the hold-back's phase wobble. */
static size_t frames_that_fit(const st_resampler *r, size_t in_frames, size_t out_cap)
{
    double backlog = (double)r->in_total * r->ratio - (double)r->out_total - r->latency_frames + 1.0;
    double room = (double)out_cap - backlog;
    if (room >= (double)in_frames * r->ratio)
        return in_frames;
    if (room <= 0)
        return 0;
    size_t n = (size_t)floor(room / r->ratio);
    return n < in_frames ? n : in_frames;
}

int st_resampler_process(st_resampler *r, const float *in, size_t in_frames, float *out,
                         size_t out_cap, size_t *in_used, size_t *out_made)
{
    assert(r && in_used && out_made);
    assert(in || !in_frames);
    assert(out || !out_cap);
    assert(!in_frames || !out_cap || (uintptr_t)(in + in_frames) <= (uintptr_t)out ||
           (uintptr_t)(out + out_cap) <= (uintptr_t)in); /* in and out must not overlap */
    *in_used = 0;
    *out_made = 0;
    if (r->flushed)
        return st_error(ST_ERR_STATE,
                        "resampler %d Hz -> %d Hz: input after the end of input; call "
                        "st_resampler_reset() to start a new stream",
                        r->in_rate_hz, r->out_rate_hz);
    if (!r->src) {
        size_t n = in_frames < out_cap ? in_frames : out_cap;
        if (n)
            memcpy(out, in, n * sizeof *out);
        *in_used = *out_made = n;
        r->in_total += n;
        r->out_total += n;
        return ST_OK;
    }
    /* libsamplerate counts in long. */
    if (in_frames > LONG_MAX)
        in_frames = LONG_MAX;
    if (out_cap > LONG_MAX)
        out_cap = LONG_MAX;
    size_t feed = frames_that_fit(r, in_frames, out_cap);
    int rc = convert(r, in, feed, out, out_cap, 0, in_used, out_made);
    if (rc == ST_OK && feed == 0 && in_frames > 0 && out_cap > 0 && *out_made == 0) {
        /* The space holds less than one input frame's output and the filter
           had nothing ready: take one frame anyway, so that a caller looping
           with a small buffer always progresses. libsamplerate keeps what
           does not fit (at most ratio frames) for the next call. */
        rc = convert(r, in, 1, out, out_cap, 0, in_used, out_made);
    }
    return rc;
}

int st_resampler_flush(st_resampler *r, float *out, size_t out_cap, size_t *out_made)
{
    assert(r && out_made);
    assert(out || !out_cap);
    *out_made = 0;
    r->flushed = true;
    if (!r->src)
        return ST_OK;
    if (out_cap > LONG_MAX)
        out_cap = LONG_MAX;
    size_t in_used = 0;
    return convert(r, no_input, 0, out, out_cap, 1, &in_used, out_made);
}

void st_resampler_reset(st_resampler *r)
{
    assert(r);
    if (r->src)
        src_reset(r->src);
    r->in_total = 0;
    r->out_total = 0;
    r->flushed = false;
}

double st_resampler_latency_frames(const st_resampler *r)
{
    assert(r);
    return r->latency_frames;
}

double st_resampler_latency_s(const st_resampler *r)
{
    assert(r);
    return r->latency_frames / r->out_rate_hz;
}

size_t st_resampler_max_output(const st_resampler *r, size_t in_frames)
{
    assert(r);
    if (!r->src)
        return in_frames;
    double n = ceil((double)in_frames * r->ratio) + (double)output_margin(r->ratio);
    return n >= (double)SIZE_MAX ? SIZE_MAX : (size_t)n;
}

double st_resampler_ratio(const st_resampler *r)
{
    assert(r);
    return r->ratio;
}
