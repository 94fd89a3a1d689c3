/*  pipeline/stage_audio.c - where audio enters and leaves the pipeline:
    `audio_source` (a sound card through PortAudio, a virtual microphone fed
    from a file, or a file read directly) and `audio_sink` (a sound card, a
    virtual speaker, or a WAV file).

    The source numbers every frame with its capture sample index at 16 kHz
    (the project's one clock) and stamps the first hop; the sink resamples to
    its device's rate when a stream arrives at another. What it may touch:
    audio/ (devices, files, resampler). The device callback only moves
    samples through the rings (audio/); these stages read and write the
    rings from their own thread.

    Workload: 10 ms frames (480 samples at 48 kHz, 160 at 16 kHz). Buffers
    are sized at create for the largest message (max_frames); the sink's
    resampler is made when a stream's rate first differs, once per rate.
*/
#include "pipeline_impl.h"

#include "../audio/audio.h"

#include <stdlib.h>
#include <string.h>

enum { DEV_PORTAUDIO = 0, DEV_VIRTUAL = 1, DEV_FILE = 2 };
static const char *const devices[] = {"portaudio", "virtual", "file", NULL};

static uint64_t to16k(uint64_t index, int rate_hz)
{
    return rate_hz == 16000 ? index : (uint64_t)((unsigned __int128)index * 16000u / (unsigned)rate_hz);
}

/* ---- audio_source ---------------------------------------------------------------- */

typedef struct {
    int kind;
    st_device *dev;
    st_audio_reader *reader;
    bool running;
    int rate_hz;
    size_t frame;           /* frames per message */
    float *buf;
    uint64_t index;         /* capture sample index (device rate) of buf[0] */
    uint64_t max_frames;    /* stop after this many (0: never) */
    int64_t offset;         /* capture index - ring index, from the stamps */
    bool realtime;
} audio_source;

static int as_create(st_stage *s, void **self)
{
    audio_source *a = calloc(1, sizeof *a);
    if (!a)
        return st_error(ST_ERR_NOMEM, "out of memory");
    *self = a;
    long rate, frame_ms;
    double seconds;
    int rc;
    if ((rc = st_stage_param_choice(s, "device", "portaudio", devices, &a->kind)) ||
        (rc = st_stage_param_int(s, "rate", 0, 0, 384000, &rate)) ||
        (rc = st_stage_param_int(s, "frame_ms", 10, 1, 1000, &frame_ms)) ||
        (rc = st_stage_param_double(s, "seconds", 0, 0, 1e7, &seconds)) ||
        (rc = st_stage_param_bool(s, "realtime", a->kind == DEV_PORTAUDIO, &a->realtime)))
        return rc;
    const char *input = st_stage_param(s, "input", NULL);
    const char *input_device = st_stage_param(s, "input_device", NULL);
    if (a->kind == DEV_FILE && !input)
        return st_error(ST_ERR_INVALID, "stage '%s' (audio_source): device = file needs input = "
                        "FILE", st_stage_name(s));
    if (a->kind == DEV_FILE) {
        a->reader = st_audio_reader_open(input, &rc);
        if (!a->reader)
            return rc;
        a->rate_hz = st_audio_reader_rate_hz(a->reader);
        if (rate && rate != a->rate_hz)
            return st_error(ST_ERR_INVALID, "stage '%s' (audio_source): '%s' is at %d Hz, not "
                            "%ld (add a resampler stage)", st_stage_name(s), input, a->rate_hz, rate);
    } else {
        st_device_params dp = st_device_default_params();
        dp.sample_rate_hz = (int)rate;
        dp.input_device = input_device;
        if (a->kind == DEV_VIRTUAL) {
            dp.frames_per_block = (int)((rate ? rate : 48000) * frame_ms / 1000);
            st_virtual_params vp = {.input_path = input, .realtime = a->realtime,
                                    .max_seconds = seconds};
            a->dev = st_device_open_virtual(&dp, &vp, &rc);
        } else {
            a->dev = st_device_open(&dp, &rc);
        }
        if (!a->dev)
            return rc;
        st_device_info info;
        st_device_get_info(a->dev, &info);
        a->rate_hz = info.sample_rate_hz;
    }
    a->frame = (size_t)a->rate_hz * (size_t)frame_ms / 1000;
    if (a->frame == 0)
        a->frame = 1;
    a->max_frames = seconds > 0 ? (uint64_t)(seconds * a->rate_hz) : 0;
    a->buf = malloc(a->frame * sizeof(float));
    if (!a->buf)
        return st_error(ST_ERR_NOMEM, "out of memory");
    /* Paced sources poll the capture ring every millisecond (a frame waits
       at most that long); files and unpaced virtual devices run as fast as
       their consumers take the frames. */
    st_stage_set_tick(s, a->kind == DEV_PORTAUDIO || a->realtime
                             ? (a->kind == DEV_FILE ? (double)frame_ms : 1.0)
                             : 0.0);
    return ST_OK;
}

static int send_frame(st_stage *s, audio_source *a, size_t n)
{
    st_wire_header h;
    st_stage_header(s, NULL, &h);
    h.sample_index = to16k(a->index, a->rate_hz);
    a->index += n;
    return st_stage_send_pcm(s, &h, (uint32_t)a->rate_hz, a->buf, n);
}

static int as_tick(st_stage *s, void *self)
{
    audio_source *a = self;
    if (a->max_frames && a->index >= a->max_frames)
        return ST_ERR_END;
    if (a->reader) {
        long got = st_audio_reader_read(a->reader, a->buf, a->frame);
        if (got < 0)
            return (int)got;
        if (got == 0)
            return ST_ERR_END;
        return send_frame(s, a, (size_t)got);
    }
    if (!a->running) {
        int rc = st_device_start(a->dev);
        if (rc)
            return rc;
        a->running = true;
    }
    st_ring *ring = st_device_capture(a->dev);
    bool ended = false;
    if (st_ring_read_available(ring) < a->frame) {
        /* Unpaced: runs one block. Paced: only asks whether the input ended. */
        int rc = st_device_wait(a->dev, a->realtime ? 0.0 : 10.0);
        if (rc == ST_ERR_END)
            ended = true;
        else if (rc == ST_ERR_TIMEOUT)
            st_error_clear();
        else if (rc)
            return rc;
    }
    st_stamp stamps[16];
    size_t ns;
    while ((ns = st_device_read_stamps(a->dev, stamps, 16)) > 0)
        for (size_t i = 0; i < ns; i++)
            if (stamps[i].capture_ring_index <= st_ring_read_index(ring) + a->frame)
                a->offset = (int64_t)stamps[i].capture_index - (int64_t)stamps[i].capture_ring_index;
    while (st_ring_read_available(ring) >= a->frame) {
        a->index = (uint64_t)((int64_t)st_ring_read_index(ring) + a->offset);
        st_ring_read(ring, a->buf, a->frame);
        int rc = send_frame(s, a, a->frame);
        if (rc)
            return rc;
    }
    if (ended) {
        size_t left = st_ring_read_available(ring);
        if (left) {
            a->index = (uint64_t)((int64_t)st_ring_read_index(ring) + a->offset);
            st_ring_read(ring, a->buf, left);
            send_frame(s, a, left);
        }
        return ST_ERR_END;
    }
    return ST_OK;
}

static int as_data(st_stage *s, void *self, const st_wire_msg *m)
{
    return ST_OK;
}

static void as_destroy(void *self)
{
    audio_source *a = self;
    if (!a)
        return;
    if (a->dev) {
        if (a->running)
            st_device_stop(a->dev);
        st_device_destroy(&a->dev);
    }
    st_audio_reader_close(&a->reader);
    free(a->buf);
    free(a);
}

const st_stage_type st__stage_audio_source = {
    .name = "audio_source",
    .summary = "a microphone (PortAudio), a virtual one fed from a file, or a file: 10 ms PCM frames",
    .params_help = "device = portaudio  portaudio, virtual (a file through the device path) or file\n"
                   "input = FILE        the file (virtual, file)\n"
                   "input_device = NAME a PortAudio device (a name substring, or #N)\n"
                   "rate = 0            device rate, Hz (0: the device's; file: the file's)\n"
                   "frame_ms = 10       audio per message\n"
                   "realtime = no       virtual, file: pace by the wall clock (portaudio always is)\n"
                   "seconds = 0         stop after this much audio (0: the input's end)\n",
    .create = as_create,
    .data = as_data,
    .tick = as_tick,
    .destroy = as_destroy,
};

/* ---- audio_sink ------------------------------------------------------------------ */

typedef struct {
    int kind;
    st_device *dev;
    st_audio_writer *writer;
    st_wav_format format;
    char path[512];
    int rate_hz;            /* device / file rate; 0 = take the first message's */
    bool realtime;
    float *in, *out;
    size_t max_frames, out_cap;
    st_resampler *rs;
    int rs_rate;            /* the input rate rs converts from */
    uint64_t dropped;
} audio_sink;

static int ak_create(st_stage *s, void **self)
{
    audio_sink *a = calloc(1, sizeof *a);
    if (!a)
        return st_error(ST_ERR_NOMEM, "out of memory");
    *self = a;
    long rate, max_frames;
    int rc, fmt;
    static const char *const formats[] = {"pcm16", "float", NULL};
    if ((rc = st_stage_param_choice(s, "device", "portaudio", devices, &a->kind)) ||
        (rc = st_stage_param_int(s, "rate", 0, 0, 384000, &rate)) ||
        (rc = st_stage_param_int(s, "max_frames", 96000, 16, 1 << 20, &max_frames)) ||
        (rc = st_stage_param_choice(s, "format", "pcm16", formats, &fmt)) ||
        (rc = st_stage_param_bool(s, "realtime", false, &a->realtime)))
        return rc;
    a->format = fmt ? ST_WAV_FLOAT : ST_WAV_PCM16;
    const char *output = st_stage_param(s, "output", NULL);
    const char *output_device = st_stage_param(s, "output_device", NULL);
    a->max_frames = (size_t)max_frames;
    a->in = malloc(a->max_frames * sizeof(float));
    if (!a->in)
        return st_error(ST_ERR_NOMEM, "out of memory");
    a->rate_hz = (int)rate;
    if (a->kind == DEV_FILE) {
        if (!output)
            return st_error(ST_ERR_INVALID, "stage '%s' (audio_sink): device = file needs output "
                            "= FILE", st_stage_name(s));
        snprintf(a->path, sizeof a->path, "%s", output);
        if (a->rate_hz && !(a->writer = st_audio_writer_open(a->path, a->rate_hz, a->format, &rc)))
            return rc;
        return ST_OK;
    }
    st_device_params dp = st_device_default_params();
    dp.sample_rate_hz = (int)rate;
    dp.output_device = output_device;
    if (a->kind == DEV_VIRTUAL) {
        /* Its microphone is silent and unused; unpaced, it must still end. */
        st_virtual_params vp = {.output_path = output, .realtime = a->realtime,
                                .max_seconds = a->realtime ? 0 : 1e7};
        a->dev = st_device_open_virtual(&dp, &vp, &rc);
    } else {
        a->dev = st_device_open(&dp, &rc);
    }
    if (!a->dev)
        return rc;
    st_device_info info;
    st_device_get_info(a->dev, &info);
    a->rate_hz = info.sample_rate_hz;
    return st_device_start(a->dev);
}

/* Converts `n` frames at `rate` to the sink's rate; returns the frames in
   *out (a->in itself when no conversion is needed). */
static int convert(st_stage *s, audio_sink *a, int rate, size_t n, const float **out, size_t *made)
{
    if (rate == a->rate_hz) {
        *out = a->in;
        *made = n;
        return ST_OK;
    }
    if (!a->rs || a->rs_rate != rate) {
        st_resampler_destroy(&a->rs);
        int rc;
        a->rs = st_resampler_new(rate, a->rate_hz, ST_RESAMPLE_FASTEST, &rc);
        if (!a->rs)
            return rc;
        a->rs_rate = rate;
        size_t need = st_resampler_max_output(a->rs, a->max_frames);
        if (need > a->out_cap) {
            free(a->out);
            a->out = malloc(need * sizeof(float));
            if (!a->out)
                return st_error(ST_ERR_NOMEM, "out of memory");
            a->out_cap = need;
        }
        st_log(ST_LOG_INFO, "stage '%s': resampling %d Hz to the device's %d Hz", st_stage_name(s),
               rate, a->rate_hz);
    }
    size_t used;
    int rc = st_resampler_process(a->rs, a->in, n, a->out, a->out_cap, &used, made);
    *out = a->out;
    return rc;
}

static int play(audio_sink *a, const float *x, size_t n)
{
    if (a->writer)
        return st_audio_writer_write(a->writer, x, n);
    if (!a->dev)
        return ST_OK;
    st_ring *ring = st_device_playback(a->dev);
    st_device_info info;
    st_device_get_info(a->dev, &info);
    while (!info.realtime && st_ring_write_available(ring) < n) {
        /* An unpaced virtual speaker plays a block whenever asked. */
        st_ring *cap = st_device_capture(a->dev);
        st_ring_skip(cap, st_ring_read_available(cap));
        int rc = st_device_wait(a->dev, 1.0);
        if (rc && rc != ST_ERR_END)
            return rc;
        st_ring_skip(cap, st_ring_read_available(cap));
    }
    size_t w = st_ring_write(ring, x, n);
    a->dropped += n - w;
    return ST_OK;
}

static int ak_data(st_stage *s, void *self, const st_wire_msg *m)
{
    audio_sink *a = self;
    if (m->h.type != ST_MSG_PCM)
        return ST_OK;
    size_t n = st_wire_pcm_read(&m->pcm, a->in, a->max_frames);
    if (n < m->pcm.frames)
        st_log(ST_LOG_WARN, "stage '%s': a message of %u frames was cut to %zu (max_frames)",
               st_stage_name(s), m->pcm.frames, n);
    int rc;
    if (a->kind == DEV_FILE && !a->writer) {
        a->rate_hz = (int)m->pcm.rate_hz;
        if (!(a->writer = st_audio_writer_open(a->path, a->rate_hz, a->format, &rc)))
            return rc;
    }
    const float *x = a->in;
    size_t made = 0;
    if ((rc = convert(s, a, (int)m->pcm.rate_hz, n, &x, &made)))
        return rc;
    return play(a, x, made);
}

static int ak_control(st_stage *s, void *self, const st_wire_msg *m)
{
    audio_sink *a = self;
    if (m->from_bus || m->control.cmd != ST_CTL_END)
        return ST_OK;
    /* End of stream: the resampler's tail, then everything queued is played. */
    int rc = ST_OK;
    if (a->rs) {
        size_t made;
        while (st_resampler_flush(a->rs, a->out, a->out_cap, &made) == ST_OK && made)
            play(a, a->out, made);
        st_resampler_reset(a->rs);
    }
    if (a->writer)
        rc = st_audio_writer_close(&a->writer);
    if (a->dev)
        st_device_drain(a->dev, 10.0);
    if (a->dropped)
        st_log(ST_LOG_WARN, "stage '%s': %llu frames did not fit in the playback ring",
               st_stage_name(s), (unsigned long long)a->dropped);
    return rc;
}

static void ak_destroy(void *self)
{
    audio_sink *a = self;
    if (!a)
        return;
    if (a->writer)
        st_audio_writer_close(&a->writer);
    if (a->dev) {
        st_device_stop(a->dev);
        st_device_destroy(&a->dev);
    }
    st_resampler_destroy(&a->rs);
    free(a->in);
    free(a->out);
    free(a);
}

const st_stage_type st__stage_audio_sink = {
    .name = "audio_sink",
    .summary = "a speaker (PortAudio), a virtual one writing a file, or a WAV file",
    .params_help = "device = portaudio  portaudio, virtual (through the device path) or file\n"
                   "output = FILE       the WAV file (file; virtual: omit to discard)\n"
                   "output_device = NAME a PortAudio device (a name substring, or #N)\n"
                   "rate = 0            device rate, Hz (0: the device's; file: the first message's)\n"
                   "format = pcm16      file: pcm16 or float\n"
                   "realtime = no       virtual: pace by the wall clock\n"
                   "max_frames = 96000  the largest message, frames\n",
    .create = ak_create,
    .data = ak_data,
    .control = ak_control,
    .destroy = ak_destroy,
};
