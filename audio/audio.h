/*  audio/audio.h - the audio layer: files, resampling, lock-free rings, devices.

    Everything between the sound card (or a file standing in for it) and the
    16 kHz mono float stream the rest of spiketalk consumes. Knows nothing of
    ZeroMQ, of spikes or of the other layers; depends on base/ only.

    Data flow of a full-duplex stream:
        device callback --push--> capture ring  --read--> application
        device callback <--pull-- playback ring <--write- application
    The callback (PortAudio's, or a virtual device's) only moves samples
    through the rings and stamps each block: no allocation, no lock, no I/O.

    Conventions: samples are float in [-1, 1], mono unless said otherwise;
    indices are counted in frames at the rate named beside them; every
    function returns ST_OK or a negative st_err, with a sentence in
    st_errmsg() that names what was wrong and where.
*/
#ifndef ST_AUDIO_H
#define ST_AUDIO_H

#include "../base/base.h"

#include <stdatomic.h>

#ifdef __cplusplus
extern "C" {
#endif

/*  The rate every stage after the front end works at. */
#define ST_PIPELINE_RATE_HZ 16000

/* ------------------------------------------------------------------------ */
/*  Files (libsndfile): WAV, FLAC, Ogg/Vorbis and whatever else libsndfile   */
/*  reads, at any rate and channel count, mixed down to mono float.          */
/* ------------------------------------------------------------------------ */

typedef struct {
    float *samples;          /* mono, owned: release with st_audio_free() */
    size_t frames;           /* number of samples */
    int sample_rate_hz;      /* the file's rate */
    int channels_in_file;    /* before the mix-down */
} st_audio;

/*  Reads a whole file into `out` (mixed down to mono by averaging channels).
    Errors: ST_ERR_NOT_FOUND (no such file), ST_ERR_FORMAT (not audio, or
    truncated: fewer frames than its header declares), ST_ERR_IO, ST_ERR_NOMEM.
    On error `out` is left empty (samples NULL). */
int st_audio_read(const char *path, st_audio *out);

/*  Frees what st_audio_read() allocated and empties `a`; safe to call twice. */
void st_audio_free(st_audio *a);

typedef enum {
    ST_WAV_PCM16 = 0,        /* 16-bit integer PCM (default: what every tool reads) */
    ST_WAV_FLOAT = 1         /* 32-bit float: bit-exact round trips */
} st_wav_format;

/*  Writes mono samples to a WAV file. Samples outside [-1, 1] are clipped in
    PCM16. Errors: ST_ERR_IO (cannot create or write, names the path). */
int st_audio_write_wav(const char *path, const float *samples, size_t frames,
                       int sample_rate_hz, st_wav_format format);

/*  Streaming reader: for files too long to hold, and for virtual devices.
    st_audio_reader_read() returns the number of frames read (0 at the end of
    the file) or a negative st_err; a truncated file gives ST_ERR_FORMAT only
    after every readable frame was handed over. st_audio_reader_frames() is
    the length the header declares. Not thread-safe; one thread per reader. */
typedef struct st_audio_reader st_audio_reader;
st_audio_reader *st_audio_reader_open(const char *path, int *err);
int st_audio_reader_rate_hz(const st_audio_reader *r);
int64_t st_audio_reader_frames(const st_audio_reader *r);   /* -1 if unknown */
long st_audio_reader_read(st_audio_reader *r, float *mono, size_t frames);
void st_audio_reader_close(st_audio_reader **r_p);

/*  Streaming WAV writer. st_audio_writer_close() reports a failed final
    write (a full disk) instead of losing it. */
typedef struct st_audio_writer st_audio_writer;
st_audio_writer *st_audio_writer_open(const char *path, int sample_rate_hz,
                                      st_wav_format format, int *err);
int st_audio_writer_write(st_audio_writer *w, const float *mono, size_t frames);
int st_audio_writer_close(st_audio_writer **w_p);

/* ------------------------------------------------------------------------ */
/*  Resampling: a streaming wrapper over libsamplerate's src_process().      */
/* ------------------------------------------------------------------------ */

typedef enum {
    ST_RESAMPLE_FASTEST = 0, /* SRC_SINC_FASTEST: shortest delay, 80% band */
    ST_RESAMPLE_MEDIUM = 1,  /* SRC_SINC_MEDIUM_QUALITY */
    ST_RESAMPLE_BEST = 2     /* SRC_SINC_BEST_QUALITY: longest delay */
} st_resample_quality;

/*  libsamplerate's sinc converters keep the signal aligned (output frame k is
    the input at time k / out_rate) but hold input back until the filter has
    seen enough of the future: that hold-back is the delay this stage adds to a
    live stream, reported by st_resampler_latency_frames(). Equal rates are a
    plain copy with no delay. */
typedef struct st_resampler st_resampler;

/*  Owned by the caller. Errors: ST_ERR_INVALID (a rate <= 0 or a ratio
    outside libsamplerate's 1/256..256), ST_ERR_NOMEM. */
st_resampler *st_resampler_new(int in_rate_hz, int out_rate_hz,
                               st_resample_quality quality, int *err);
void st_resampler_destroy(st_resampler **r_p);

/*  Converts up to `in_frames` frames into at most `out_cap` frames. Reports
    what it used and what it made (like SRC_DATA): it may consume all input
    and make less output than in_frames * ratio while the filter fills. Given
    st_resampler_max_output(in_frames) of room it consumes all its input;
    with less, only what fits (never buffering input it cannot emit). `in`
    and `out` must not overlap. After st_resampler_flush() it returns
    ST_ERR_STATE until st_resampler_reset(). Never allocates: safe on a
    real-time thread once created. */
int st_resampler_process(st_resampler *r, const float *in, size_t in_frames,
                         float *out, size_t out_cap,
                         size_t *in_used, size_t *out_made);

/*  End of input: emits what the filter holds back. Call until *out_made is 0. */
int st_resampler_flush(st_resampler *r, float *out, size_t out_cap, size_t *out_made);

/*  Forgets all history, ready for a new stream. */
void st_resampler_reset(st_resampler *r);

/*  The delay a live stream sees through this resampler, in output frames
    (fractional) and in seconds: measured once at creation. */
double st_resampler_latency_frames(const st_resampler *r);
double st_resampler_latency_s(const st_resampler *r);

/*  An upper bound on the frames one process() call makes from `in_frames`,
    for sizing output buffers. */
size_t st_resampler_max_output(const st_resampler *r, size_t in_frames);

double st_resampler_ratio(const st_resampler *r);  /* out_rate / in_rate */

/* ------------------------------------------------------------------------ */
/*  Single-producer single-consumer lock-free ring.                          */
/* ------------------------------------------------------------------------ */

/*  Caller-owned: embed the struct, give it storage of capacity * elem_size
    bytes (capacity a power of two). One thread writes, one thread reads; the
    indices count elements since st_ring_init() and never wrap in practice
    (2^64 frames), so the write index of a capture ring IS the sample index
    of the next captured frame. Acquire/release ordering on the indices; the
    two hot indices sit on separate cache lines, so the struct is 64-byte
    aligned: a heap object that embeds it must come from aligned_alloc(). */
typedef struct {
    _Alignas(64) _Atomic uint64_t write_index; /* written by the producer only */
    _Alignas(64) _Atomic uint64_t read_index;  /* written by the consumer only */
    _Alignas(64) _Atomic uint64_t overrun_elems;  /* dropped by st_ring_push() */
    _Atomic uint64_t underrun_elems;              /* zero-filled by st_ring_pull() */
    unsigned char *data;
    size_t elem_size;
    size_t capacity;
    size_t mask;
} st_ring;

/*  Errors: ST_ERR_INVALID when capacity is not a power of two, or storage or
    elem_size is 0. */
int st_ring_init(st_ring *r, void *storage, size_t elem_size, size_t capacity);

/*  Elements the consumer may read / the producer may write now. */
size_t st_ring_read_available(const st_ring *r);
size_t st_ring_write_available(const st_ring *r);

/*  Copy up to n elements in / out; return how many moved (partial is normal). */
size_t st_ring_write(st_ring *r, const void *src, size_t n);
size_t st_ring_read(st_ring *r, void *dst, size_t n);

/*  For the audio callback. push: writes what fits and counts the rest as an
    overrun (dropped). pull: reads n, zero-fills any shortfall and counts it as
    an underrun. Both return the number of elements that really moved. */
size_t st_ring_push(st_ring *r, const void *src, size_t n);
size_t st_ring_pull(st_ring *r, void *dst, size_t n);

/*  Consumer: drop up to n elements without copying; returns how many. */
size_t st_ring_skip(st_ring *r, size_t n);

static inline uint64_t st_ring_write_index(const st_ring *r)
{
    return atomic_load_explicit(&r->write_index, memory_order_acquire);
}
static inline uint64_t st_ring_read_index(const st_ring *r)
{
    return atomic_load_explicit(&r->read_index, memory_order_acquire);
}
static inline uint64_t st_ring_overruns(const st_ring *r)
{
    return atomic_load_explicit(&r->overrun_elems, memory_order_relaxed);
}
static inline uint64_t st_ring_underruns(const st_ring *r)
{
    return atomic_load_explicit(&r->underrun_elems, memory_order_relaxed);
}

/* ------------------------------------------------------------------------ */
/*  Devices: one full-duplex stream, real (PortAudio) or virtual (files).    */
/* ------------------------------------------------------------------------ */

/*  One stamp per callback block. A captured frame at capture ring index k
    (k in [capture_ring_index, capture_ring_index + captured)) has sample index
    capture_index + (k - capture_ring_index) and stream time
    adc_time_s + (that - capture_index) / rate. A played frame taken from the
    playback ring at index j (j in [play_ring_index, play_ring_index +
    ring_frames)) reaches the DAC as sample play_index + (j - play_ring_index)
    at dac_time_s + offset / rate. The rest of the block was silence
    (priming or an underrun). */
typedef struct {
    uint64_t capture_index;      /* sample index of the block's first captured frame */
    uint64_t capture_ring_index; /* capture ring write index before the block */
    uint64_t play_index;         /* sample index of the block's first played frame */
    uint64_t play_ring_index;    /* playback ring read index before the block */
    uint32_t frames;             /* frames in the block (both directions) */
    uint32_t captured;           /* frames that fitted in the capture ring */
    uint32_t ring_frames;        /* played frames that came from the ring */
    uint32_t pad_;
    double adc_time_s;           /* stream time of the first captured frame */
    double dac_time_s;           /* stream time the first played frame is heard */
} st_stamp;

typedef struct {
    int sample_rate_hz;          /* device rate; 0 = the device's default (virtual: 48000) */
    int frames_per_block;        /* callback size; 0 = the device's choice (virtual: 10 ms) */
    double suggested_latency_s;  /* < 0 = the lowest the device allows */
    const char *input_device;    /* NULL = default; a name substring, or "#N" for index N */
    const char *output_device;   /* same, for playback */
    size_t ring_frames;          /* capacity of each ring, a power of two; 0 = about 1 s */
    size_t prefill_frames;       /* playback starts (and restarts after an underrun)
                                    once this many frames are queued; 0 = 2 blocks */
} st_device_params;

st_device_params st_device_default_params(void);

/*  Virtual devices: a microphone fed from an audio file (resampled to the
    device rate) and a speaker that writes a WAV file at the device rate, or
    discards. Paced in real time by a thread, or, with realtime false, as fast
    as the consumer takes it: then each st_device_wait() runs exactly one
    block, so a run is deterministic to the sample. */
typedef struct {
    const char *input_path;      /* NULL = a silent microphone */
    const char *output_path;     /* NULL = discard what is played */
    bool realtime;               /* pace by the wall clock */
    double max_seconds;          /* stop capturing after this long; 0 = end of file
                                    (a silent microphone then runs until stopped) */
} st_virtual_params;

typedef struct st_device st_device;

/*  Opens a PortAudio full-duplex stream. Errors: ST_ERR_NOT_FOUND (no such
    device, or no devices at all), ST_ERR_DEVICE (PortAudio refused: its
    message is in st_errmsg()), ST_ERR_INVALID. */
st_device *st_device_open(const st_device_params *p, int *err);

/*  Opens a virtual full-duplex device. Errors as st_audio_read() for the
    input file, ST_ERR_IO for the output file. */
st_device *st_device_open_virtual(const st_device_params *p, const st_virtual_params *v,
                                  int *err);

void st_device_destroy(st_device **d_p);

int st_device_start(st_device *d);
int st_device_stop(st_device *d);

/*  Consumer side of the capture ring and producer side of the playback ring.
    Borrowed: valid until the device is destroyed. */
st_ring *st_device_capture(st_device *d);
st_ring *st_device_playback(st_device *d);

/*  Blocks until captured frames are available (ST_OK), the input has ended
    and everything captured was read (ST_ERR_END), or timeout_s passed
    (ST_ERR_TIMEOUT). A virtual device that is not paced runs one block here. */
int st_device_wait(st_device *d, double timeout_s);

/*  Blocks until every frame written to the playback ring has been played,
    (ST_OK) or timeout_s passed (ST_ERR_TIMEOUT). Frames short of the prefill
    are played too. */
int st_device_drain(st_device *d, double timeout_s);

/*  Moves the stamps of the blocks run since the last call into `out`; returns
    how many (at most max). Stamps not read in time are dropped and counted. */
size_t st_device_read_stamps(st_device *d, st_stamp *out, size_t max);

typedef struct {
    int sample_rate_hz;
    int frames_per_block;        /* 0 when the device varies it */
    int input_channels;          /* as opened, before the mix-down */
    int output_channels;         /* every channel plays the same mono signal */
    double input_latency_s;      /* as the device (or the virtual mic's resampler) reports */
    double output_latency_s;
    size_t prefill_frames;
    bool realtime;               /* paced by a clock (every real device is) */
    char host_api[32];           /* "ALSA", "JACK", "virtual", ... */
    char input_name[128];
    char output_name[128];
} st_device_info;

void st_device_get_info(const st_device *d, st_device_info *info);

typedef struct {
    uint64_t blocks;                  /* callbacks run */
    uint64_t frames_captured;         /* = the next capture sample index */
    uint64_t frames_played;           /* = the next play sample index */
    uint64_t capture_overrun_frames;  /* captured but dropped: the ring was full */
    uint64_t playback_underrun_frames;/* silence played because the ring ran dry */
    uint64_t silence_frames;          /* all silence played: priming and underruns */
    uint64_t stamps_dropped;          /* stamps the consumer did not read in time */
} st_device_stats;

void st_device_get_stats(const st_device *d, st_device_stats *stats);

/*  Device listing (PortAudio). Fills up to max entries; returns how many
    devices exist (0 with no sound card: not an error), or a negative st_err. */
typedef struct {
    int index;
    char name[128];
    char host_api[32];
    int max_input_channels;
    int max_output_channels;
    double default_rate_hz;
    double default_low_input_latency_s;
    double default_low_output_latency_s;
    bool is_default_input;
    bool is_default_output;
} st_device_desc;

int st_device_list(st_device_desc *out, size_t max);

/* ------------------------------------------------------------------------ */
/*  Loopback: microphone -> resample to 16 kHz -> resample back -> speaker.  */
/* ------------------------------------------------------------------------ */

typedef struct {
    int pipeline_rate_hz;        /* the rate in the middle; default 16000 */
    st_resample_quality quality; /* default ST_RESAMPLE_FASTEST */
    double timeout_s;            /* give up when no audio comes for this long; default 5 */
    double max_seconds;          /* stop after this much capture; 0 = the input's end */
    volatile int *stop;          /* optional: set non-zero (e.g. from SIGINT) to end */
    void (*progress)(double captured_s, double total_s, void *user_data); /* optional */
    void *user_data;
} st_loopback_params;

st_loopback_params st_loopback_default_params(void);

typedef struct {
    uint64_t frames_in;          /* captured, device rate */
    uint64_t frames_out;         /* played, device rate */
    double round_trip_frames;    /* median over the run: capture -> DAC, device rate */
    double round_trip_min_frames;
    double round_trip_max_frames;
    double round_trip_ms;        /* median, in ms */
    double resampler_latency_frames; /* the two resamplers' share, device rate */
    int sample_rate_hz;          /* device rate */
    st_device_stats device;
} st_loopback_report;

/*  Runs the loopback on an opened (not started) device until its input ends
    (virtual) or *p->stop is set, then drains and stops it. The round trip is
    measured from the stamps: for every played frame that came from the ring,
    its play sample index minus the capture sample index it derives from. */
int st_loopback_run(st_device *d, const st_loopback_params *p, st_loopback_report *rep);

#ifdef __cplusplus
}
#endif
#endif
