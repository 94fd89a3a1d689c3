/*  audio/device_pa.c - real sound cards through PortAudio: one full-duplex
    stream (capture and playback in one callback), float32, as few channels
    as the device takes (mixed down to mono on capture, the same mono signal
    on every output channel), the lowest latency the device allows unless
    asked otherwise.

    The callback does nothing but call st__device_process(). PortAudio is
    initialised per device (its own reference count pairs Pa_Initialize with
    Pa_Terminate), so devices may be opened and closed independently.
    ALSA's and JACK's chatter on stderr while probing devices is routed to
    st_log at debug level: a library never prints.
*/
#include "device_impl.h"

#include <alsa/asoundlib.h>
#include <jack/jack.h>
#include <portaudio.h>
#include <stdlib.h>
#include <string.h>

#define PA_MAX_BLOCK 8192 /* pieces of the callback the audio path takes at once */

typedef struct {
    PaStream *stream;
    _Atomic uint64_t xruns; /* PortAudio's own input overflow / output underflow flags */
} pa_dev;

static void alsa_quiet(const char *file, int line, const char *function, int err,
                       const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    st_log(ST_LOG_DEBUG, "ALSA: %s:%d %s: %s", file, line, function, msg);
}

static void jack_quiet(const char *msg)
{
    st_log(ST_LOG_DEBUG, "JACK: %s", msg);
}

static int pa_init(void)
{
    snd_lib_error_set_handler(alsa_quiet);
    jack_set_error_function(jack_quiet);
    jack_set_info_function(jack_quiet);
    PaError e = Pa_Initialize();
    if (e != paNoError)
        return st_error(ST_ERR_DEVICE, "PortAudio: cannot initialise: %s", Pa_GetErrorText(e));
    return ST_OK;
}

static void describe(PaDeviceIndex i, st_device_desc *out)
{
    const PaDeviceInfo *di = Pa_GetDeviceInfo(i);
    const PaHostApiInfo *hi = Pa_GetHostApiInfo(di->hostApi);
    memset(out, 0, sizeof *out);
    out->index = i;
    snprintf(out->name, sizeof out->name, "%s", di->name);
    snprintf(out->host_api, sizeof out->host_api, "%s", hi ? hi->name : "?");
    out->max_input_channels = di->maxInputChannels;
    out->max_output_channels = di->maxOutputChannels;
    out->default_rate_hz = di->defaultSampleRate;
    out->default_low_input_latency_s = di->defaultLowInputLatency;
    out->default_low_output_latency_s = di->defaultLowOutputLatency;
    out->is_default_input = i == Pa_GetDefaultInputDevice();
    out->is_default_output = i == Pa_GetDefaultOutputDevice();
}

int st_device_list(st_device_desc *out, size_t max)
{
    int rc = pa_init();
    if (rc)
        return rc;
    PaDeviceIndex n = Pa_GetDeviceCount();
    if (n < 0) {
        rc = st_error(ST_ERR_DEVICE, "PortAudio: cannot count devices: %s", Pa_GetErrorText(n));
        Pa_Terminate();
        return rc;
    }
    for (PaDeviceIndex i = 0; i < n && (size_t)i < max; i++)
        describe(i, &out[i]);
    Pa_Terminate();
    return n;
}

/* Finds a device by "#N", by a substring of "host API: name", or the default. */
static PaDeviceIndex find_device(const char *want, bool input, int *rc)
{
    PaDeviceIndex n = Pa_GetDeviceCount();
    if (!want) {
        PaDeviceIndex def = input ? Pa_GetDefaultInputDevice() : Pa_GetDefaultOutputDevice();
        if (def == paNoDevice) {
            /* No default (common under JACK alone): take the first that fits. */
            for (PaDeviceIndex i = 0; i < n; i++) {
                const PaDeviceInfo *di = Pa_GetDeviceInfo(i);
                if ((input ? di->maxInputChannels : di->maxOutputChannels) > 0)
                    return i;
            }
            *rc = st_error(ST_ERR_NOT_FOUND, "no audio %s device (%d devices in all); "
                           "`spiketalk devices` lists them, or use the virtual devices",
                           input ? "input" : "output", n);
        }
        return def;
    }
    if (want[0] == '#') {
        char *end;
        long i = strtol(want + 1, &end, 10);
        if (*end || i < 0 || i >= n) {
            *rc = st_error(ST_ERR_NOT_FOUND, "audio device '%s': no such index (0 to %d)", want,
                           n - 1);
            return paNoDevice;
        }
        return (PaDeviceIndex)i;
    }
    for (PaDeviceIndex i = 0; i < n; i++) {
        const PaDeviceInfo *di = Pa_GetDeviceInfo(i);
        const PaHostApiInfo *hi = Pa_GetHostApiInfo(di->hostApi);
        char full[300];
        snprintf(full, sizeof full, "%s: %s", hi ? hi->name : "", di->name);
        if (strstr(full, want) && (input ? di->maxInputChannels : di->maxOutputChannels) > 0)
            return i;
    }
    *rc = st_error(ST_ERR_NOT_FOUND, "no audio %s device matches '%s' (see `spiketalk devices`)",
                   input ? "input" : "output", want);
    return paNoDevice;
}

static int pa_callback(const void *input, void *output, unsigned long frames,
                       const PaStreamCallbackTimeInfo *time, PaStreamCallbackFlags flags,
                       void *user)
{
    st_device *d = user;
    pa_dev *pd = d->backend;
    if (flags & (paInputOverflow | paOutputUnderflow))
        atomic_fetch_add_explicit(&pd->xruns, 1, memory_order_relaxed);
    st__device_process(d, input, d->info.input_channels, output, d->info.output_channels,
                       frames, time->inputBufferAdcTime, time->outputBufferDacTime);
    return paContinue;
}

static int pa_start(st_device *d)
{
    pa_dev *pd = d->backend;
    PaError e = Pa_StartStream(pd->stream);
    if (e != paNoError)
        return st_error(ST_ERR_DEVICE, "PortAudio: cannot start the stream: %s",
                        Pa_GetErrorText(e));
    return ST_OK;
}

static int pa_stop(st_device *d)
{
    pa_dev *pd = d->backend;
    PaError e = Pa_StopStream(pd->stream);
    if (e != paNoError)
        return st_error(ST_ERR_DEVICE, "PortAudio: cannot stop the stream: %s",
                        Pa_GetErrorText(e));
    return ST_OK;
}

static void pa_close(st_device *d)
{
    pa_dev *pd = d->backend;
    if (pd) {
        if (pd->stream)
            Pa_CloseStream(pd->stream);
        free(pd);
        d->backend = NULL;
    }
    Pa_Terminate();
}

static const st_device_ops pa_ops = {.start = pa_start, .stop = pa_stop, .step = NULL, .close = pa_close};

/* Fills stream parameters with the fewest channels (1, else 2, else the
   device's maximum) that the device accepts at `rate`. */
static int pick_channels(PaStreamParameters *in, PaStreamParameters *out, double rate)
{
    const PaDeviceInfo *ii = Pa_GetDeviceInfo(in->device);
    const PaDeviceInfo *oi = Pa_GetDeviceInfo(out->device);
    int tries[3] = {1, 2, 0};
    for (int a = 0; a < 3; a++) {
        in->channelCount = tries[a] ? tries[a] : ii->maxInputChannels;
        for (int b = 0; b < 3; b++) {
            out->channelCount = tries[b] ? tries[b] : oi->maxOutputChannels;
            if (in->channelCount > ii->maxInputChannels || out->channelCount > oi->maxOutputChannels)
                continue;
            if (Pa_IsFormatSupported(in, out, rate) == paFormatIsSupported)
                return ST_OK;
        }
    }
    return st_error(ST_ERR_DEVICE, "audio devices '%s' and '%s' do not take float32 full duplex at %.0f Hz",
                    ii->name, oi->name, rate);
}

st_device *st_device_open(const st_device_params *p, int *err)
{
    int rc = pa_init();
    st_device *d = NULL;
    if (rc) {
        if (err)
            *err = rc;
        return NULL;
    }
    if (Pa_GetDeviceCount() <= 0) {
        rc = st_error(ST_ERR_NOT_FOUND,
                      "no audio devices (no sound card, and no JACK server running); "
                      "use the virtual devices (--input FILE) instead");
        goto fail;
    }
    PaStreamParameters in = {0}, out = {0};
    in.device = find_device(p->input_device, true, &rc);
    if (in.device == paNoDevice)
        goto fail;
    out.device = find_device(p->output_device, false, &rc);
    if (out.device == paNoDevice)
        goto fail;
    const PaDeviceInfo *ii = Pa_GetDeviceInfo(in.device);
    const PaDeviceInfo *oi = Pa_GetDeviceInfo(out.device);
    if (ii->maxInputChannels < 1 || oi->maxOutputChannels < 1) {
        rc = st_error(ST_ERR_DEVICE, "audio device '%s' has no %s",
                      ii->maxInputChannels < 1 ? ii->name : oi->name,
                      ii->maxInputChannels < 1 ? "input" : "output");
        goto fail;
    }
    double rate = p->sample_rate_hz > 0 ? p->sample_rate_hz : ii->defaultSampleRate;
    in.sampleFormat = out.sampleFormat = paFloat32;
    in.suggestedLatency = p->suggested_latency_s >= 0 ? p->suggested_latency_s
                                                      : ii->defaultLowInputLatency;
    out.suggestedLatency = p->suggested_latency_s >= 0 ? p->suggested_latency_s
                                                       : oi->defaultLowOutputLatency;
    if ((rc = pick_channels(&in, &out, rate)))
        goto fail;

    d = st__device_alloc(p, (int)rate, PA_MAX_BLOCK, &rc);
    if (!d)
        goto fail;
    pa_dev *pd = calloc(1, sizeof *pd);
    if (!pd) {
        rc = st_error(ST_ERR_NOMEM, "PortAudio device: out of memory");
        goto fail;
    }
    d->backend = pd;
    d->ops = &pa_ops;
    unsigned long fpb = p->frames_per_block > 0 ? (unsigned long)p->frames_per_block
                                                : paFramesPerBufferUnspecified;
    PaError e = Pa_OpenStream(&pd->stream, &in, &out, rate, fpb, paNoFlag, pa_callback, d);
    if (e != paNoError) {
        pd->stream = NULL;
        rc = st_error(ST_ERR_DEVICE, "PortAudio: cannot open '%s' / '%s' at %.0f Hz: %s", ii->name,
                      oi->name, rate, Pa_GetErrorText(e));
        goto fail;
    }
    const PaStreamInfo *si = Pa_GetStreamInfo(pd->stream);
    st_device_info *info = &d->info;
    info->sample_rate_hz = (int)rate;
    info->frames_per_block = p->frames_per_block > 0 ? p->frames_per_block : 0;
    info->input_channels = in.channelCount;
    info->output_channels = out.channelCount;
    info->input_latency_s = si ? si->inputLatency : in.suggestedLatency;
    info->output_latency_s = si ? si->outputLatency : out.suggestedLatency;
    info->realtime = true;
    /* Without a fixed block size, prefill 10 ms: enough to ride out jitter. */
    info->prefill_frames = p->prefill_frames ? p->prefill_frames
                           : p->frames_per_block > 0 ? 2 * (size_t)p->frames_per_block
                                                     : (size_t)rate / 100;
    const PaHostApiInfo *hi = Pa_GetHostApiInfo(ii->hostApi);
    snprintf(info->host_api, sizeof info->host_api, "%s", hi ? hi->name : "?");
    snprintf(info->input_name, sizeof info->input_name, "%s", ii->name);
    snprintf(info->output_name, sizeof info->output_name, "%s", oi->name);
    return d;
fail:
    if (d) {
        if (d->backend)
            pa_close(d);
        else
            Pa_Terminate();
        st__device_free(d);
    } else {
        Pa_Terminate();
    }
    if (err)
        *err = rc;
    return NULL;
}
