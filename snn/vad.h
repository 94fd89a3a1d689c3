/*  snn/vad.h - a spiking voice-activity detector: speech onset and offset
    events, with their sample positions, from log-mel frames.

    The detector is a small hand-designed network run on the SNN engine
    (snn/snn.h), built in code from the parameters below; every stage is a
    population of the engine, stepped once per frame (dt = the frame hop):

      x (dB per channel) ──► diff = x - floor ─┬─► E: thermometer LIF code of
                               ▲                │    the rise above the floor
                 floor: integrators per channel │    (levels level_db + k step,
                                                │    weighted level_gain^k)
                 stepped up/down by spikes of   │            │ band-weighted: +1 in
                 [x > floor] / [x < floor]  ◄───┘            │ the voicing band, < 0
                                                             ▼ above it (inhibits)
                 (a median tracker of the         R: leaky-integrator read-out
                 background; the up step          │
                 shrinks while speech)            ├─ R > onset_threshold for
                                                  │  onset_frames frames ─► ON
      echo (optional, dB): inhibits the E levels  └─ R > offset_threshold in the
      the agent's own residual voice explains         last hangover ─► KEEP
                                                  S = ON or (S(t-1) and KEEP):
                                                  the speech state (a latch)

    The floor is the slow, inhibitory side (it follows the background per
    channel and is subtracted); E is the fast excitatory side (a rise of the
    speech band over it). An onset is reported when S turns on, an offset
    when it turns off.

    The voicing band (speech_lo_hz..speech_hi_hz, 90..1200 Hz) excites R;
    the channels above it inhibit it (high_band_weight -0.4): a voiced onset
    rises most below 1.2 kHz, while the clacks, clinks and hiss of kitchens
    and machines rise most above it, and those were nearly all of the false
    onsets on the `_silence_` backgrounds (6.5 a minute before this band
    weighting on the tune split, 0.35 after). The cost: a word that opens
    with a long fricative ("stop", "seven") is found at its vowel, 100 to
    250 ms after the /s/ starts.

    Operating point (`spiketalk bench vad`, docs/BENCH.md): fast E and R
    (10 ms), R > 0.08 for 3 frames, a 100 ms hangover; picked on the tune
    split (speakers and noise clips the test split does not hold) as the
    fastest onset whose false onsets stayed under 0.4 a minute there, for
    barge-in, where a false onset silences the agent. Measured on the test
    split (200 utterances, 10 min of noise): onset median 44 ms, p95 172
    ms, 0.7 false onsets a minute, 20 of 200 utterances missed (17 of them
    at 0-7 dB SNR). onset_threshold and onset_frames trade the two: 0.06 and
    2 frames give a 35 ms median and about 4 false onsets a minute on the
    test split's noise.

    The learned read-out (model_path: models/vad.stm, `make train-vad`,
    models/README.md "vad.stm"). In place of E and R, a recurrent spiking
    network trained on speech + noise mixtures reads, per channel, the rise
    over max(floor, echo) (st_vad_features) and gives p(speech) each frame;
    speech starts on a frame over learned_on and ends learned_hangover_s
    after p fell under learned_off. The floor, its speech gate (the hand
    latch S above, still run) and the echo input are the same. On the test
    split it finds onsets sooner (p95 153 ms against 172), ends sooner
    (offset p95 213 ms against 680), misses fewer utterances (9 of 200
    against 20) and takes as little unseen noise for speech (0.4 false
    onsets a minute against 0.7); it was trained with the first 100 ms of
    speech and the first 150 ms after it weighing 3 in the loss
    (models/vad_train.ini). The agent keeps the hand-designed read-out by
    default (docs/BENCH.md, bench latency).

    Input. Frames of n_channels natural-log energies, as audio/'s front end
    makes them (st_frontend_process with normalize off), each with the
    capture sample index of its newest sample. snn/ does not include audio/:
    the caller passes the frames, their stamps, the front end's delay and the
    channels' centre frequencies in.

    Positions. Each event says when it was decided (the stamp of the frame
    that decided it) and where the detector places it: an onset at the
    centre of the first frame of the rise that led to it (stamp minus the
    front end's delay), an offset at the centre of the last frame that still
    held the read-out above offset_threshold. The difference is what the
    detector knows of its own delay; nothing is guessed beyond it.

    Workload: one stream per st_vad, 40 channels, 100 frames a second: 320
    LIF neurons, 40 integrators, one leaky read-out and about 500 threshold
    units; a few microseconds a frame (1000 times faster than real time with
    the front end, on one core). The model
    (st_vad_model) is immutable and shared; each stream owns an st_vad.
    Nothing in st_vad_process allocates, locks or logs.
*/
#ifndef ST_VAD_H
#define ST_VAD_H

#include "snn/snn.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ST_VAD_MAX_CHANNELS 256
#define ST_VAD_MAX_LEVELS 8

typedef struct {
    int n_channels;             /* channels per frame; 40 */
    double hop_s;               /* frame step = the network's dt; 0.01 s */
    double frontend_delay_samples; /* the front end's algorithmic delay
                                   (st_frontend_delay_samples); 199.5 */
    const double *channel_hz;   /* centre frequency per channel (borrowed during
                                   st_vad_model_new); NULL = HTK mel, 60..8000 Hz */
    double speech_lo_hz;        /* full weight from here (voicing) ...; 90 Hz */
    double speech_hi_hz;        /* ... to here; 1200 Hz */
    float out_band_weight;      /* weight of the channels below that band, >= 0; 0.3 */
    float min_level_db;         /* channel levels are clamped up to this (digital
                                   silence is not a floor to rise from); -80 dB */
    float level_db;             /* E: first level above the floor; 6 dB */
    float level_step_db;        /* E: spacing of the levels; 3 dB */
    int n_levels;               /* E: levels per channel, 1..ST_VAD_MAX_LEVELS; 8
                                   (6 .. 27 dB) */
    float level_gain;           /* R: weight of each level over the one below (> 1: a
                                   strong rise in a few channels counts more); 1.3 */
    double e_tau_s;             /* E: membrane time constant; 0.01 s (= the hop: E
                                   follows the rise within the frame) */
    double floor_up_db_s;       /* floor: rise rate while x > floor, no speech; 30 dB/s
                                   (equal up and down rates: a median tracker) */
    double floor_up_speech_db_s;/* floor: the same during speech; 8 dB/s (a louder
                                   background still ends a false speech in seconds) */
    double floor_down_db_s;     /* floor: fall rate while x < floor; 30 dB/s */
    double readout_tau_s;       /* R: leaky integrator time constant; 0.01 s */
    float onset_threshold;      /* R level that starts speech, 0..1; 0.08 */
    float offset_threshold;     /* R level that keeps it, 0..onset; 0.015 */
    int onset_frames;           /* consecutive frames above onset_threshold; 3 (a
                                   click lasts 2 frames through the 25 ms window) */
    double hangover_s;          /* speech lasts this long after R < offset_threshold; 0.1 s */
    double warmup_s;            /* the floor is the mean of this first stretch (no
                                   events then); 0.2 s */
    float echo_margin_db;       /* added to the echo estimate before it inhibits; 3 dB */
    float high_band_weight;     /* weight of the channels above speech_hi_hz, -1..1;
                                   < 0 inhibits (R is the share of the positive
                                   weights, less this band's); -0.4 (set it to
                                   out_band_weight for the detector before it) */
    /* The learned read-out (`make train-vad`, models/README.md "vad.stm"):
       a spiking network trained on speech + noise mixtures replaces E and
       R; the floor, the echo input and the events stay as above. */
    const char *model_path;     /* its engine net file (models/vad.stm); NULL = the
                                   hand-designed E and R (borrowed during
                                   st_vad_model_new) */
    float learned_on;           /* p(speech) over which speech starts; 0.95 */
    float learned_off;          /* p(speech) over which it is kept; 0.6 */
    int learned_frames;         /* consecutive frames over learned_on; 1 */
    double learned_hangover_s;  /* speech lasts this long after p < learned_off; 0.08 s */
} st_vad_params;

/*  The learned read-out's input, one value per channel and frame: how far
    the channel rises over what the background and the agent's echo
    explain, x - max(floor, echo + echo_margin_db), clamped to
    [ST_VAD_FEATURE_MIN_DB, ST_VAD_FEATURE_MAX_DB] and divided by
    ST_VAD_FEATURE_SCALE_DB. Its output node "output" holds two units (not
    speech, speech); p(speech) is their softmax. */
#define ST_VAD_FEATURE_MIN_DB (-10.0f)
#define ST_VAD_FEATURE_MAX_DB 40.0f
#define ST_VAD_FEATURE_SCALE_DB 10.0f

st_vad_params st_vad_default_params(void);

/*  Sets one parameter by its field name from text (for the CLI and the
    benchmark's tuning); ST_ERR_NOT_FOUND lists the names, ST_ERR_INVALID
    for a value that is not a number. channel_hz cannot be set this way. */
int st_vad_set_param(st_vad_params *p, const char *name, const char *value);

/*  Writes "name=value" lines of every numeric parameter into buf. */
void st_vad_params_print(const st_vad_params *p, char *buf, size_t cap);

typedef struct st_vad_model st_vad_model;
typedef struct st_vad st_vad;

/*  Builds the network. NULL and *err: ST_ERR_INVALID naming the parameter,
    ST_ERR_NOMEM. The caller owns it; any thread; immutable after. */
st_vad_model *st_vad_model_new(const st_vad_params *p, int *err);
void st_vad_model_destroy(st_vad_model **m_p);
const st_vad_params *st_vad_model_params(const st_vad_model *m);
/*  The network (borrowed): for inspection, profiling and export. */
const st_snn_net *st_vad_model_net(const st_vad_model *m);

/*  One stream's detector; the model must outlive it. NULL and *err
    (ST_ERR_NOMEM). */
st_vad *st_vad_new(const st_vad_model *m, int *err);
void st_vad_destroy(st_vad **v_p);
/*  Forgets the stream (floor, latch, counters): ready for a new one. */
void st_vad_reset(st_vad *v);

typedef enum { ST_VAD_ONSET = 1, ST_VAD_OFFSET = 2 } st_vad_event_kind;

typedef struct {
    st_vad_event_kind kind;
    uint64_t sample_index;      /* where the detector places the change (capture index) */
    uint64_t decided_index;     /* stamp of the frame that decided it */
} st_vad_event;

/*  Runs n frames: frames[f * n_channels + c] in ln energy, stamps[f] their
    capture indices (ascending), echo NULL or the same shape (ln energy of
    the agent's residual echo as the echo canceller estimates it at the
    microphone). Writes the onset and offset events into out (at most one
    per frame: room for n is always enough) and their number in *made.
    ST_ERR_INVALID when cap < n (nothing is run). No allocation, lock or
    log: the thread that owns the stream. */
int st_vad_process(st_vad *v, const float *frames, const uint64_t *stamps, const float *echo,
                   size_t n, st_vad_event *out, size_t cap, size_t *made);

/*  After the last frame: is speech on, and the read-out R (at most 1; below
    0 while only the channels above speech_hi_hz rise, high_band_weight < 0;
    with a learned read-out: p(speech)). */
bool st_vad_active(const st_vad *v);
float st_vad_score(const st_vad *v);

/*  The learned read-out's input of the last frame (n_channels floats, see
    ST_VAD_FEATURE_SCALE_DB; zeros during the warm-up), computed with or
    without a learned read-out: what `make train-vad` trains on. Borrowed
    until the next call on the stream. */
const float *st_vad_features(const st_vad *v);

/*  Whether the model runs a learned read-out (params.model_path). */
bool st_vad_model_learned(const st_vad_model *m);

/*  The floor of channel c after the last frame, in dB (for inspection). */
float st_vad_floor_db(const st_vad *v, int c);

/*  Counters of the stream's network (spikes, synaptic events), as
    st_snn_state_counters(node = -1). */
int st_vad_counters(const st_vad *v, st_snn_counters *out);

#ifdef __cplusplus
}
#endif
#endif
