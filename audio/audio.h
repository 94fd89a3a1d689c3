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
/*  Stream times are the host's estimate (JACK's and ALSA's come from a
    filtered clock and jitter under load), made monotonic here: a block never
    starts before the previous block ended (its time + its frames / rate).
    When the host's estimate steps back, the stamp holds the previous end and
    st_device_stats.time_steps_back counts it; times catch up with the host's
    when its estimate passes them again. */

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
    uint64_t time_steps_back;         /* blocks whose host stream time went back (held) */
    double worst_step_back_s;         /* the largest such step, in seconds */
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

/* ======================================================================== */
/*  Front end: log-mel filterbank, spike encoders, speech + noise mixtures.  */
/*  (audio/frontend.c, audio/encoder.c, audio/mixture.c)                     */
/* ======================================================================== */

/*  The streaming log-mel filterbank: 16 kHz mono in, one frame of n_mels log
    energies out every hop. A frame is the Hann-windowed last `window`
    samples (zero before the stream's first sample), FFT (FFTW3, float, plan
    made once at creation), power spectrum scaled by 1/sum(w^2) (so white
    noise of variance s^2 gives s^2 per bin), triangular mel filters of peak
    1 (HTK mel scale), then ln(max(energy, log_floor)); optionally minus a
    per-channel running mean (causal, no look-ahead).

    The clock. Frame k is stamped with the capture sample index of its
    newest sample, (k + 1) * hop - 1 counting from the stream start (or the
    index given to st_frontend_reset), and is emitted as soon as that sample
    is consumed: the front end holds nothing back beyond the frame it is
    filling. What a frame describes is centred (window - 1) / 2 samples before
    its stamp: that is the front end's algorithmic delay,
    st_frontend_delay_samples() (199.5 samples = 12.47 ms at the defaults).
    An impulse at sample s weighs most in the frame stamped nearest
    s + delay, and a step onset at s reaches half its final power there too.
    A live sample additionally waits for the end of its hop, so the first
    frame that carries an impulse is at most hop - 1 samples later, and the
    frame centred on it at most delay + hop - 1 later.

    Workload: 10 ms hops of 160 samples, one 512-point real FFT and 40 mel
    dot products a frame: about 5 us a frame on one core. */

typedef struct {
    int sample_rate_hz;      /* input rate; 16000 (ST_PIPELINE_RATE_HZ) */
    double window_ms;        /* analysis window (Hann); 25 */
    double hop_ms;           /* frame step, <= window_ms; 10 (5 for finer timing) */
    int n_mels;              /* mel channels; 40 */
    double f_min_hz;         /* lowest filter's lower edge; 60 (below: mains hum) */
    double f_max_hz;         /* highest filter's upper edge; 8000 (0 = Nyquist) */
    double log_floor;        /* energies below this are clamped before ln; 1e-10 (-100 dB) */
    bool normalize;          /* subtract each channel's running mean; false */
    double norm_tau_s;       /* time constant of that running mean; 3 s */
} st_frontend_params;

st_frontend_params st_frontend_default_params(void);

typedef struct st_frontend st_frontend;

/*  Owned by the caller. Errors (NULL, *err): ST_ERR_INVALID naming the
    parameter (a rate <= 0, hop > window, a mel filter with no FFT bin:
    too many mels for the window), ST_ERR_NOMEM. Creates an FFTW plan under
    a process-wide lock: any thread, but not the audio callback. */
st_frontend *st_frontend_new(const st_frontend_params *p, int *err);
void st_frontend_destroy(st_frontend **fe_p);

/*  Back to an empty history (zeros); the next frame's stamp counts from
    `first_sample_index` (0 for a new stream). */
void st_frontend_reset(st_frontend *fe, uint64_t first_sample_index);

/*  Consumes up to n samples of pcm and writes the frames they complete:
    frame j's n_mels values at feat[j * n_mels], its stamp at index[j]
    (index may be NULL). Reports what it used and what it made. Given
    st_frontend_max_frames(fe, n) frames of room it consumes everything;
    with less, it stops before the sample that would complete a frame it has
    no room for. Never allocates, locks or logs: for the real-time thread
    that owns `fe`. Returns ST_OK. */
int st_frontend_process(st_frontend *fe, const float *pcm, size_t n, float *feat,
                        uint64_t *index, size_t cap_frames, size_t *used, size_t *made);

/*  Frames that n more samples complete (for sizing `feat`). */
size_t st_frontend_max_frames(const st_frontend *fe, size_t n);

int st_frontend_n_mels(const st_frontend *fe);
size_t st_frontend_hop_samples(const st_frontend *fe);
size_t st_frontend_window_samples(const st_frontend *fe);
size_t st_frontend_fft_size(const st_frontend *fe);
/*  The algorithmic delay: from a sample to the stamp of the frame centred on
    it, (window - 1) / 2 samples; in seconds too. */
double st_frontend_delay_samples(const st_frontend *fe);
double st_frontend_delay_s(const st_frontend *fe);
/*  Centre frequency of mel channel c (Hz). */
double st_frontend_mel_centre_hz(const st_frontend *fe, int c);
const st_frontend_params *st_frontend_params_of(const st_frontend *fe);

/* ---- spike encoders: frames -> address events ---------------------------- */

/*  Encoders turn each frame (n channels of log energy) into address events
    (time, address), deterministic for a given seed and input:

    SOD (send-on-delta): per channel a reference; each time the channel rises
      `sod_threshold` above it an ON event (address 2c), each time it falls
      that far below an OFF event (2c + 1), moving the reference by one
      threshold per event (at most sod_max_events per channel and frame);
      after an event the channel is refractory for sod_refractory_frames
      frames (a change made during it is signalled on the first frame after).
      Events carry the frame's stamp.
    LIF (direct current drive): current c = lif_gain * norm(x) + lif_bias per
      channel per frame, where norm maps [in_lo, in_hi] to [0, 1] (clamped).
      st_encoder_currents() hands the currents to an SNN input population;
      st_encoder_encode() also integrates them in a per-channel LIF
      (tau lif_tau_mem_s, threshold 1, reset to 0, lif_substeps Euler steps
      a frame) and emits its spikes (address c), stamped at the sub-step.
    RATE: per channel a Poisson-like train at rate_max_hz * norm(x), drawn in
      rate_substeps Bernoulli slots a frame from a seeded xorshift64
      (address c), stamped at the slot.

    Sub-step stamps lie in (stamp - hop, stamp], so events of consecutive
    frames come out in time order. */
typedef enum {
    ST_ENCODER_SOD = 0,
    ST_ENCODER_LIF = 1,
    ST_ENCODER_RATE = 2
} st_encoder_kind;

typedef struct {
    uint64_t sample_index;   /* capture sample index (16 kHz) of the event */
    uint32_t address;        /* SOD: 2 * channel + polarity (0 ON, 1 OFF); else channel */
    uint32_t frame;          /* the frame that made it, counted from reset */
} st_aer_event;

typedef struct {
    st_encoder_kind kind;
    int n_channels;          /* channels per frame; 40 */
    size_t hop_samples;      /* samples per frame, for sub-step stamps; 160 */
    double hop_s;            /* the frame step in seconds; 0.01 */
    float sod_threshold;     /* SOD: delta per event, in the frame's units (ln energy); 0.5 */
    int sod_refractory_frames; /* SOD: frames a channel stays silent after an event; 0 */
    int sod_max_events;      /* SOD: events per channel and frame at most; 4 */
    float in_lo, in_hi;      /* LIF, RATE: input range mapped to [0, 1]; -12, 2 (ln energy) */
    float lif_gain;          /* LIF: current per unit of normalised input; 2 */
    float lif_bias;          /* LIF: constant current; 0 */
    double lif_tau_mem_s;    /* LIF: membrane time constant; 0.02 s */
    int lif_substeps;        /* LIF: Euler steps per frame; 10 */
    double rate_max_hz;      /* RATE: rate at norm = 1; 200 Hz */
    int rate_substeps;       /* RATE: Bernoulli slots per frame; 10 */
    uint64_t seed;           /* RATE: xorshift64 seed (0 is replaced by a constant); 1 */
} st_encoder_params;

st_encoder_params st_encoder_default_params(st_encoder_kind kind);

/*  "sod", "lif", "rate" and back; from_name gives ST_ERR_NOT_FOUND listing them. */
const char *st_encoder_kind_name(st_encoder_kind kind);
int st_encoder_kind_from_name(const char *name, st_encoder_kind *out);

typedef struct st_encoder st_encoder;

/*  Owned by the caller; ST_ERR_INVALID naming the parameter, ST_ERR_NOMEM. */
st_encoder *st_encoder_new(const st_encoder_params *p, int *err);
void st_encoder_destroy(st_encoder **enc_p);
void st_encoder_reset(st_encoder *enc);

/*  Addresses the encoder uses (2 n for SOD, n otherwise), and the most
    events one frame can make (for sizing `out`). */
size_t st_encoder_n_addresses(const st_encoder *enc);
size_t st_encoder_max_events(const st_encoder *enc);

/*  Encodes one frame stamped `sample_index` into out[0..*made), in time
    order. ST_ERR_INVALID when cap < st_encoder_max_events() (nothing is
    changed then). No allocation: real-time safe. */
int st_encoder_encode(st_encoder *enc, const float *frame, uint64_t sample_index,
                      st_aer_event *out, size_t cap, size_t *made);

/*  LIF drive: the frame's input currents, n_channels values (any kind may
    ask; the mapping is the LIF one). Stateless. */
void st_encoder_currents(const st_encoder *enc, const float *frame, float *current);

/* ---- speech + noise mixtures (for VAD benchmarks and tests) ----------------

    Builds a 16 kHz stream of background noise with speech clips placed at
    random times at a random SNR, and the ground truth of where each clip's
    speech starts and ends. Speech comes from the shared data's manifests
    (speech_commands words, fsdd digits, an4 utterances) or, without the
    data, from espeak-ng (`espeak-ng -w`, words and voices drawn from the
    seed); noise from speech_commands' `_silence_` clips or, without them,
    generated coloured noise (white, pink, brown, band-limited, with slow
    level wander). Everything is drawn from the seed: the same parameters
    give the same samples.

    Noise: a sequence of stretches, stretch_min_s..stretch_max_s each, at a
    level drawn uniformly in noise_min_dbfs..noise_max_dbfs, joined with a
    crossfade_s equal-power crossfade. A stretch starts with a random noise
    clip and goes on, each time a clip ends, with one of the three clips
    most like it in spectral shape (50 ms crossfades at the joins): a
    background that keeps its character for seconds and changes type and
    level between stretches, without looping one second of it (a looped
    clip would repeat its one clink or miaow every second).

    Truth: the clean clip's power above 100 Hz (a 4th-order high-pass, so
    handling rumble does not count) in 5 ms windows every 1 ms; speech is
    where it is within truth_below_peak_db (20 dB: about where ITU-T P.56
    puts its activity threshold, 15.9 dB under the active level) of the
    clip's loudest 20 ms window, in bursts (windows over that line with gaps
    under 20 ms): a burst of 30 ms or more is speech, a shorter one (a lip
    smack, a click) counts only within 150 ms of speech. Onset is the centre
    of the first window of the first such burst, offset just past the centre
    of the last (a step onset is placed within 2.5 ms). A clip whose own
    noise is not clearly under the line is not used: the 20 ms windows wholly
    outside its speech must have their 90th percentile 10 dB below it, and
    at least 25 ms of it must come before the onset (FSDD's clips, cut at
    the word, mostly fail that). SNR is the clip's mean power above 100 Hz
    over its truth segment against the noise's over the same samples.

    Splits: speakers (and noise clips) are hashed into two halves, TUNE and
    TEST, so that a detector tuned on one is measured on voices it never
    met. */

typedef enum { ST_MIX_ALL = 0, ST_MIX_TUNE = 1, ST_MIX_TEST = 2 } st_mix_split;

#define ST_MIX_PAUSE_MS 100
#define ST_MIX_MAX_PAUSES 16

enum {
    ST_MIX_SPEECH_COMMANDS = 1,
    ST_MIX_FSDD = 2,
    ST_MIX_AN4 = 4,
    ST_MIX_ESPEAK = 8         /* synthesized; used alone when the data is absent */
};

typedef struct {
    const char *data_dir;    /* the shared data folder (holds speech/); NULL: synthesize */
    uint64_t seed;           /* 1 */
    st_mix_split split;      /* ST_MIX_TEST */
    unsigned sources;        /* ST_MIX_* bits; SPEECH_COMMANDS | FSDD | AN4 */
    int n_utterances;        /* clips to place; 200 */
    double snr_min_db, snr_max_db;   /* 0, 20 */
    double gap_min_s, gap_max_s;     /* noise between clips (truth end to truth start); 1.5, 3 */
    double lead_s;           /* noise before the first clip (lets a detector settle); 3 */
    double noise_min_dbfs, noise_max_dbfs; /* background level range; -55, -35 */
    double stretch_min_s, stretch_max_s;   /* one noise clip's stretch; 8, 20 */
    double crossfade_s;      /* between stretches; 1 */
    double truth_below_peak_db; /* speech threshold under the clip's peak; 20 */
    /* Augmenting the background (training data, `make train-vad`): each
       stretch played at a random rate in [1/noise_rate_max, noise_rate_max]
       (pitch and tempo together) through a random tilt y = x + k x[-1],
       |k| <= noise_tilt_max. 1 and 0: off (the benchmark's default). */
    double noise_rate_max;   /* 1 */
    double noise_tilt_max;   /* 0 */
} st_mix_params;

st_mix_params st_mix_default_params(void);

typedef struct {
    uint64_t onset;          /* truth: first speech sample, in the mixture */
    uint64_t offset;         /* truth: one past the last speech sample */
    uint64_t clip_start, clip_end; /* where the whole clip lies */
    uint64_t audible;        /* a bound for detectors: the end of the first 10 ms
                                window from the onset on in which the clip's
                                speech-band power is over the noise's in the
                                same window (local SNR >= 0 dB), every 1 ms;
                                UINT64_MAX when no window is (bench vad's
                                row "oracle") */
    uint64_t audible_end;    /* the same from the end: the end of the last such
                                window up to the offset (UINT64_MAX: none) */
    float snr_db;
    float speech_dbfs;       /* the clip's mean power over its truth segment */
    char source[16];         /* "speech_commands", "fsdd", "an4", "espeak" */
    char speaker[32];
    char text[64];
    /* pauses inside [onset, offset): gaps of ST_MIX_PAUSE_MS or more between
       the truth's bursts (between words), [on, off) in the mixture; the
       first ST_MIX_MAX_PAUSES */
    uint32_t n_pauses;
    uint64_t pause_on[ST_MIX_MAX_PAUSES], pause_off[ST_MIX_MAX_PAUSES];
} st_mix_segment;

typedef struct {
    float *samples;          /* 16 kHz mono, owned: st_mixture_free() */
    size_t frames;
    st_mix_segment *segs;    /* in time order, owned */
    size_t n_segs;
    size_t n_stretches;      /* noise stretches (each a change of background) */
    bool synthetic_speech;   /* espeak-ng stood in for the data */
    bool synthetic_noise;    /* generated noise stood in for `_silence_` */
} st_mixture;

/*  Speech in noise: n_utterances clips. Errors: ST_ERR_NOT_FOUND (no usable
    clip: names the manifest or the missing espeak-ng), ST_ERR_IO,
    ST_ERR_FORMAT (a manifest line), ST_ERR_NOMEM. Logs what it used.
    Allocates and reads files: not for the audio thread. */
int st_mix_speech(const st_mix_params *p, st_mixture *out);

/*  Noise only, `seconds` long, built the same way (no segments). */
int st_mix_noise(const st_mix_params *p, double seconds, st_mixture *out);

/*  Writes the mixture as a 16 kHz WAV and its truth as TSV
    (onset_s offset_s snr_db source speaker text) beside it. */
int st_mixture_write(const st_mixture *m, const char *wav_path, const char *tsv_path);

void st_mixture_free(st_mixture *m);

/* ======================================================================== */
/*  Echo: the agent hears itself (audio/echo.c). An echo canceller over      */
/*  speexdsp, and a room simulator that puts the played voice into a mic.    */
/* ======================================================================== */

/*  Timing contract. Call st_echo_process() once per frame with the captured
    frame (capture indices c .. c+frame) and the frame the speaker was sent at
    the same play indices (p = c .. c+frame: what the application wrote to the
    playback ring for that block, silence when nothing). A sample played at
    play index p comes back in the capture at index p + delay_samples, where
    delay_samples is the device's playback->capture delay: the round trip
    `spiketalk loopback` measures from the stamps (st_loopback_report), or 0
    on the virtual devices. The canceller delays the reference by that much,
    so its adaptive filter (filter_ms long) only models the room: the path
    from the loudspeaker to the microphone, direct sound plus reflections.

    Flushes: after a barge-in flush of the speaker, do nothing; the reference
    is what was actually played, silence included, and the room is the same.
    Call st_echo_reset() when the stream restarts (device stopped and started
    again, or a new delay): it forgets the filter and the delay line. */
typedef struct {
    int sample_rate_hz;          /* 8000 .. 48000; ST_PIPELINE_RATE_HZ in the pipeline */
    int frame_samples;           /* samples per st_echo_process() call, 2.5 .. 40 ms
                                    (default 160: 10 ms at 16 kHz) */
    double filter_ms;            /* room tail the adaptive filter models, 10 .. 1000 ms
                                    (default 200; a third to a half of the room's RT60
                                    past the direct path is what speex suggests) */
    int delay_samples;           /* playback->capture delay of the device, samples */
    int max_delay_samples;       /* capacity of the delay line (st_echo_set_delay()
                                    stays below it without allocating); default 1 s */
    bool suppress_residual;      /* speex's preprocessor removes what the linear
                                    filter left (non-linear, per band); default on */
    int echo_suppress_db;        /* residual attenuation, echo only (default -40) */
    int echo_suppress_active_db; /* ... while the near end talks (default -15) */
    bool denoise;                /* also suppress stationary noise (default off:
                                    the recognizer's front end sees the raw noise
                                    it was trained on) */
} st_echo_params;

/*  16 kHz, 10 ms frames, 200 ms filter, no delay, 1 s delay line, residual
    suppression on (-40 dB / -15 dB), no denoising. */
st_echo_params st_echo_default_params(void);

typedef struct st_echo st_echo;

/*  Owned by the caller. Allocates everything the canceller will use.
    Errors (NULL, *err): ST_ERR_INVALID naming the parameter, ST_ERR_NOMEM. */
st_echo *st_echo_new(const st_echo_params *p, int *err);
void st_echo_destroy(st_echo **e_p);

/*  One frame: mic (frame_samples), played (the reference, frame_samples, or
    NULL for silence), out (frame_samples; may be mic). Samples in [-1, 1]
    (clipped to 16 bits for speex). No allocation, no lock, no I/O: safe on
    the audio thread. Always ST_OK. */
int st_echo_process(st_echo *e, const float *mic, const float *played, float *out);

/*  Forgets the filter, the delay line and the statistics. Allocates nothing. */
void st_echo_reset(st_echo *e);

/*  Changes the device delay (then resets). ST_ERR_INVALID beyond
    max_delay_samples or below 0. */
int st_echo_set_delay(st_echo *e, int delay_samples);

typedef struct {
    uint64_t frames;             /* frames processed since the last reset */
    double mic_energy;           /* sum of squares of mic samples */
    double out_energy;           /* ... of output samples */
    double ref_energy;           /* ... of (delayed) reference samples */
} st_echo_stats;
void st_echo_get_stats(const st_echo *e, st_echo_stats *s);
const st_echo_params *st_echo_params_of(const st_echo *e);

/*  A synthetic room: the impulse response from the loudspeaker to the
    microphone, a direct path after `delay_ms` and exponentially decaying
    reflections (about one per millisecond at random times and signs, their
    envelope falling 60 dB in rt60_ms), truncated where it is 60 dB down. */
typedef struct {
    int sample_rate_hz;          /* default ST_PIPELINE_RATE_HZ */
    double delay_ms;             /* loudspeaker -> mic direct path, 0 .. 500 (default 10) */
    double direct_gain;          /* gain of the direct path, 0 .. 4 (default 0.5) */
    double rt60_ms;              /* reverberation time, 0 .. 2000 (default 300; 0: direct only) */
    double reflection_gain;      /* first reflections' gain relative to the direct
                                    path (default 0.5) */
    uint32_t seed;               /* the reflections' positions and signs */
} st_room_params;
st_room_params st_room_default_params(void);

typedef struct st_room st_room;

/*  Owned by the caller. Errors: ST_ERR_INVALID naming the parameter, ST_ERR_NOMEM. */
st_room *st_room_new(const st_room_params *p, int *err);
void st_room_destroy(st_room **r_p);

/*  Streaming: feeds n played samples and ADDS their echo to mic[0..n) (the
    microphone signal of the same sample indices). No allocation. */
void st_room_process(st_room *r, const float *played, float *mic, size_t n);

/*  Back to a silent room (history zeroed). */
void st_room_reset(st_room *r);

/*  The impulse response (borrowed, *len taps: delay + RT60 + 1). */
const float *st_room_impulse(const st_room *r, size_t *len);

/* ======================================================================== */
/*  Scenarios (audio/scenario.c): scripted conversations for the agent's     */
/*  tests and the latency benchmark. File format: docs/SCENARIOS.md.         */
/* ======================================================================== */

#define ST_SCENARIO_NAME 64
#define ST_SCENARIO_TEXT 512
#define ST_SCENARIO_MAX_PARTS 8

typedef enum {
    ST_TURN_COMMAND = 0,         /* a short command: "what time is it" */
    ST_TURN_ARITHMETIC,          /* "what is three plus four" */
    ST_TURN_REQUEST,             /* a longer request, often with a pause inside */
    ST_TURN_INTERRUPTION,        /* starts while the agent answers: must stop it */
    ST_TURN_BACKCHANNEL,         /* "mm-hm" while the agent answers: must not stop it */
    ST_TURN_ECHO_ONLY,           /* asks for a long answer, then the user stays quiet:
                                    the answer's echo alone must not interrupt */
    ST_TURN_NOISE,               /* a noise burst (cough, door) while the agent talks */
    ST_TURN_N_KINDS
} st_turn_kind;

/*  "command", "arithmetic", ...; from_name: ST_ERR_NOT_FOUND when unknown. */
const char *st_turn_kind_name(st_turn_kind k);
int st_turn_kind_from_name(const char *name, st_turn_kind *out);

/*  When a turn's speech starts: an absolute time, or an offset from an
    event of an earlier turn (ref), known only once the conversation runs. */
typedef enum {
    ST_AT_ABSOLUTE = 0,          /* offset_s from the start of the conversation */
    ST_AT_USER_END,              /* offset_s after the end of turn ref's speech */
    ST_AT_AGENT_START,           /* ... after the agent's first sample answering ref */
    ST_AT_AGENT_END              /* ... after the agent's last sample answering ref */
} st_anchor_kind;

typedef struct {
    st_anchor_kind kind;
    int ref;                     /* index of an earlier turn (not for ABSOLUTE) */
    double offset_s;             /* may be negative for USER_END/AGENT_*; >= 0 absolute */
} st_scenario_anchor;

typedef struct {
    char name[ST_SCENARIO_NAME]; /* from [turn NAME] */
    int line;                    /* line of its [turn] header */
    st_turn_kind kind;
    char text[ST_SCENARIO_TEXT]; /* to synthesize; '|' marks a pause of pause_s */
    char files[ST_SCENARIO_TEXT];/* or: audio files, space-separated, joined with
                                    file_gap_s ('|' = a pause of pause_s); relative
                                    to the scenario's folder, "shared:" = data_dir */
    char fallback_text[ST_SCENARIO_TEXT]; /* spoken instead when a file is missing */
    char engine[16];             /* "espeak" or "flite" (default espeak) */
    char voice[64];              /* the engine's voice ("" = the engine's default) */
    int rate_wpm;                /* 0 = the engine's default */
    double level_db;             /* speech RMS, dBFS (default -20) */
    double pause_s;              /* each '|' pause, s (default 0.8) */
    double file_gap_s;           /* silence between files, s (default 0.15) */
    double duration_s;           /* noise turns: length of the burst (default 0.3) */
    st_scenario_anchor at;       /* when its speech starts */
    int at_line;                 /* line of its `at` key (0: the default anchor) */
    char intent[32];             /* what the agent should understand ("time", "arith",
                                    "timer", "story", "joke", "stop", "none", ...) */
    char expect[128];            /* words the answer must contain, '|' between
                                    alternatives ("" = not checked) */
    bool interrupts;             /* it should stop the agent (default: kind ==
                                    interruption) */
} st_scenario_turn;

typedef struct {
    char path[512];              /* the file it came from ("<string>" for parse) */
    char name[ST_SCENARIO_NAME];
    char description[ST_SCENARIO_TEXT];
    uint32_t seed;               /* noise generation */
    double tail_s;               /* silence after the last event (default 3) */
    char noise[256];             /* "none", "white", "pink", "brown", or a file
                                    (looped; "shared:" = data_dir) */
    char noise_fallback[16];     /* generated kind used when the file is missing */
    double noise_db;             /* background RMS, dBFS (default -50) */
    bool room;                   /* the agent's voice echoes into the mic */
    st_room_params room_params;  /* room_delay_ms, room_rt60_ms, room_gain */
    char agent_engine[16];       /* the agent's voice, so that tests can check the
                                    users' voices differ (default espeak en-us) */
    char agent_voice[64];
    st_scenario_turn *turns;     /* owned */
    size_t n_turns;
} st_scenario;

/*  Reads and checks a scenario file. Errors: ST_ERR_NOT_FOUND / ST_ERR_IO
    (the file), ST_ERR_FORMAT with "PATH:LINE: what was wrong" in st_errmsg()
    (syntax, unknown section or key, a value out of range, an anchor naming a
    turn that does not come before it), ST_ERR_NOMEM. On error `out` is empty. */
int st_scenario_load(const char *path, st_scenario *out);

/*  The same on text in memory; `origin` names it in messages. */
int st_scenario_parse(const char *text, const char *origin, st_scenario *out);
void st_scenario_free(st_scenario *sc);

/*  Rendering: one turn's audio at 16 kHz with the true time of every word. */
typedef struct {
    uint64_t start, end;         /* samples (end exclusive) */
    char text[48];
} st_scenario_word;

typedef struct {
    float *samples;              /* owned (malloc) */
    size_t frames;
    st_scenario_word *words;     /* owned (malloc), in time order */
    size_t n_words;
} st_scenario_clip;
void st_scenario_clip_free(st_scenario_clip *c);

/*  The synthesizer, supplied by the caller (audio/ does not know tts/; the
    adapter over st_tts_synthesize is a dozen lines, see tests/test_scenario.c):
    text at 16 kHz with word times; fills `out` (malloc'd, the renderer frees
    it) and returns ST_OK or a negative st_err with st_error()'s message. */
typedef int (*st_scenario_synth_fn)(void *user_data, const char *engine, const char *voice,
                                    int rate_wpm, const char *text, st_scenario_clip *out);

typedef struct {
    st_scenario_synth_fn synth;  /* required for text turns */
    void *synth_data;
    const char *data_dir;        /* for "shared:" paths; NULL = "../shared/data" */
    double agent_latency_s;      /* st_scenario_render only: assumed end of user speech
                                    -> agent's first sample (default 0.5) */
    double answer_s;             /* assumed length of an answer (default 2) */
    double long_answer_s;        /* ... of a story or joke (intent), default 12 */
} st_scenario_render_params;
st_scenario_render_params st_scenario_render_default_params(void);

/*  What happened in one turn, in samples of the rendering (or of the clip). */
typedef struct {
    size_t turn;                 /* index in sc->turns */
    uint64_t at;                 /* where its speech starts (the anchor, resolved) */
    uint64_t start, end;         /* true speech start / end (first word's start,
                                    last word's end) */
    uint64_t part_start[ST_SCENARIO_MAX_PARTS], part_end[ST_SCENARIO_MAX_PARTS];
    int n_parts;                 /* stretches of speech between '|' pauses */
    uint64_t agent_start, agent_end; /* st_scenario_render: the assumed answer */
    bool from_files;             /* human recordings (else synthesized) */
    bool fallback;               /* a file was missing: fallback_text was spoken */
} st_scenario_truth;

/*  Turn i alone: its clip (speech from sample 0, the words' times within it)
    and truth relative to the clip (at = start). For drivers that place turns
    at times known only while the conversation runs. Allocates. Errors: those
    of the synthesizer and of st_audio_read (naming the file and the
    scenario's line), ST_ERR_NOT_FOUND when a file is missing and there is no
    fallback_text. */
int st_scenario_render_turn(const st_scenario *sc, size_t i, const st_scenario_render_params *p,
                            st_scenario_clip *clip, st_scenario_truth *truth);

/*  Where turn i's speech starts, in samples, given what is known of earlier
    turns (arrays of n_turns sample indices, -1 = not yet known): user_end[j],
    agent_start[j], agent_end[j]. Returns -1 while its anchor is unknown. */
int64_t st_scenario_turn_at(const st_scenario *sc, size_t i, const int64_t *user_end,
                            const int64_t *agent_start, const int64_t *agent_end);

/*  The whole user side with an assumed agent (agent_latency_s, answer_s):
    every turn placed at its anchor, plus the background noise. No agent
    voice or echo in it (the room adds those while the agent runs). */
typedef struct {
    float *samples;              /* owned, 16 kHz mono */
    size_t frames;
    st_scenario_truth *turns;    /* owned, one per turn, in order */
    size_t n_turns;
    st_scenario_word *words;     /* owned, every word of every turn, mix positions */
    size_t n_words;
    bool noise_fallback;         /* the noise file was missing: generated noise used */
} st_scenario_rendering;
int st_scenario_render(const st_scenario *sc, const st_scenario_render_params *p,
                       st_scenario_rendering *out);
void st_scenario_rendering_free(st_scenario_rendering *r);

/*  Adds the scenario's background noise for samples [from, from + n) to
    out: deterministic (the same samples for the same indices on every call,
    in any block sizes). `noise` is loaded once by st_scenario_noise_new. */
typedef struct st_scenario_noise st_scenario_noise;
st_scenario_noise *st_scenario_noise_new(const st_scenario *sc, const char *data_dir,
                                         bool *fell_back, int *err);
void st_scenario_noise_add(st_scenario_noise *nz, uint64_t from, float *out, size_t n);
void st_scenario_noise_destroy(st_scenario_noise **nz_p);

#ifdef __cplusplus
}
#endif
#endif
