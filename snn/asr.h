/*  snn/asr.h - the word recognizer: a trained spiking network over the
    front end's log-mel frames, in two modes from one model.

    Workload: 40 log-mel channels every 10 ms (audio/audio.h's front end,
    computed by the caller: snn/ never includes audio/), engine steps
    (one per frame for a clip, ten per frame when streaming a max/mean
    model, one per frame when streaming a CTC model) through a small
    recurrent adaptive-LIF (LSNN) layer and a leaky integrator read-out
    with one unit per class. Classes are, in order, "_silence_",
    "_unknown_" and the vocabulary words (models/README.md).

    The pooling the model was trained with (tensor "pool") decides both modes:
      max, mean (a classifier of 1-s clips)
        clip classification  st_asr_classify(): the read-out's max (or
                             mean) over the clip's frames, argmax over the
                             classes;
        streaming words      st_asr_stream_push() one frame at a time: every
                             100 ms the last second is classified as a clip
                             (the model's training condition) and the
                             window probabilities go through the decision
                             rule below; a word is emitted as soon as two
                             windows in a row agree on it.
      ctc (trained with CTC over whole utterances; class 0, "_silence_", is
           the CTC blank)
        clip classification  the frames run once; per frame the softmax of
                             the read-out; each class's posterior summed
                             over the frames (scores: the sums / frames);
                             the answer is the non-blank class with the
                             largest sum, or silence when no frame gives any
                             non-blank class a posterior >= 0.02
                             (ST_ASR_CTC_SPEECH_P);
        streaming words      the net runs continuously, one step per frame
                             (no window re-run), and each frame's softmax
                             goes through the decision rule; the blank is
                             silence, which never opens a candidate.

    The decision rule (st_asr_decider, pure, usable on any sequence of
    class probabilities): a class k >= 1 opens a candidate when its
    probability reaches `on_threshold` and is the largest; the candidate
    stays open while its probability is above `off_threshold`; when it
    falls below (or after max_frames), the candidate is emitted if it lasted
    at least min_frames steps - or, with emit_early, as soon as it has
    lasted min_frames, once (min_frames 1: on the frame that opens it);
    an emitted emit_early candidate also ends when another class other
    than silence becomes the largest at >= on_threshold, and the frame that
    ends it may open the next candidate. "_unknown_" (class 1) is reported as such,
    never as a vocabulary word (callers drop it or print "<unknown>");
    silence never opens a candidate. After an emission the decider waits
    `refractory_frames` steps.

    The model file is a tensor file of kind "asr": the engine network under
    "net/", the class names as a text "words" (one per line), the feature
    normalisation "feat_mean" and "feat_std" (f32 [n_features]), and the
    front-end settings the model was trained with ("frontend": a text of
    "n_mels hop_ms window_ms"), and the clip pooling it was trained with
    ("pool": "max", "mean" or "ctc"). Features are normalised (x - mean) / std
    before the first layer.

    Errors follow base/base.h. Threads: a loaded st_asr is read-only and
    may be shared; a stream belongs to one thread. st_asr_stream_push does
    not allocate.
*/
#ifndef ST_ASR_H
#define ST_ASR_H

#include "snn/snn.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ST_ASR_SILENCE 0
#define ST_ASR_UNKNOWN 1
#define ST_ASR_MAX_CLASSES 256
#define ST_ASR_WORD_LEN 32

typedef struct st_asr st_asr;

typedef struct {
    int n_mels;        /* features per frame; 40 */
    double hop_ms;     /* frame step; 10 */
    double window_ms;  /* analysis window; 25 */
} st_asr_frontend_info;

/*  A recognizer from a finished engine net (ownership moves: *net_p is
    NULLed, also on failure, when the net is destroyed), the class names
    (words[0] = "_silence_", words[1] = "_unknown_"; n_classes = the net's
    output size), and the normalisation (n_features = the net's input
    size; std > 0). ST_ERR_INVALID naming what does not fit. */
st_asr *st_asr_new(st_snn_net **net_p, const char *const *words, size_t n_classes,
                   const float *feat_mean, const float *feat_std, size_t n_features,
                   const st_asr_frontend_info *fe, int *err);
void st_asr_destroy(st_asr **self_p);

/*  File round trip. Load refuses (ST_ERR_FORMAT naming file and tensor) a
    file of another kind, a missing tensor, a class list that does not match
    the net's outputs, a non-positive std. */
int st_asr_save(const st_asr *self, const char *path);
st_asr *st_asr_load(const char *path, int *err);
/*  The same from a file already loaded (st_tensor_file_load), for a caller
    that looked at its kind first: the file is not read again; `file` stays
    the caller's (the recognizer keeps nothing of it). */
st_asr *st_asr_of_file(const st_tensor_file *file, int *err);

/*  An ensemble of k recognizers as one (st_snn_net_ensemble: their nets side
    by side, the read-out the mean of theirs, i.e. the mean of the members'
    logits): the members must have one view each and the same classes,
    normalisation, front end and pooling (ST_ERR_INVALID naming the first
    member that differs); members with cmn and without read two views of
    one input (st_snn_net_ensemble_inputs), in the order of their first
    members. The pooling, stored rule and bigram are member 0's. Its work
    is the sum of the members'. The members are only read. */
st_asr *st_asr_ensemble(const st_asr *const *members, size_t k, int *err);

size_t st_asr_classes(const st_asr *self);
size_t st_asr_features(const st_asr *self);
const char *st_asr_word(const st_asr *self, size_t k);  /* borrowed; NULL out of range */
int st_asr_find(const st_asr *self, const char *word);  /* class index or -1 */
const st_asr_frontend_info *st_asr_frontend(const st_asr *self);
const st_snn_net *st_asr_net(const st_asr *self);
/*  One front-end frame (st_asr_features() values) normalised by the mean
    and std stored in the file. */
void st_asr_normalise(const st_asr *self, const float *frame, float *x);
/*  n frames (n x st_asr_features()) as the net takes them, into x (n x
    st_asr_input_len()): each normalised, once per view (below), and in each
    view with cmn less the mean of the n normalised frames per feature
    (cepstral mean normalisation over the clip: what a microphone, a room
    and the gain add to every frame cancels). x may be frames (in place)
    when the model has one view. */
void st_asr_normalise_clip(const st_asr *self, const float *frames, size_t n, float *x);
/*  Views: each input node of the net takes all the features, normalised,
    and with cmn (tensor "cmn" = "clip") less the clip's own mean: the
    model was trained on such clips (asr-tool train --cmn); st_asr_classify
    subtracts the clip's mean and the windowed stream each window's. A
    trained member has one view; an ensemble of members trained both ways
    has two (tensor "cmn" = "none,clip"), its members each reading theirs.
    Off by default; a ctc model cannot have it (ST_ERR_INVALID: it steps
    before the mean is known) nor more than one view. st_asr_cmn: any view
    has cmn; st_asr_views: how many views, their cmn flags into cmn (may be
    NULL; up to ST_ASR_MAX_VIEWS); st_asr_input_len: views x features. */
#define ST_ASR_MAX_VIEWS 8
bool st_asr_cmn(const st_asr *self);
size_t st_asr_views(const st_asr *self, bool *cmn);
size_t st_asr_input_len(const st_asr *self);
/*  The cmn step alone: each of the nf features of the n frames of x (n x nf)
    less its mean over them (a trainer's clips get exactly what
    st_asr_normalise_clip does to a clip's cmn view). */
void st_asr_subtract_mean(float *x, size_t n, size_t nf);
/*  Sets cmn on every view. */
int st_asr_set_cmn(st_asr *self, bool on);
/*  The pooling the model was trained for (tensor "pool", "max", "mean" or
    "ctc"; max when the file has none), and setting it before st_asr_save. */
typedef enum { ST_ASR_POOL_MAX = 0, ST_ASR_POOL_MEAN, ST_ASR_POOL_CTC } st_asr_pool;
/*  ctc clip classification: a clip is speech when some frame gives a
    non-blank class at least this posterior. Chosen on the validation clips
    of build/asr-ctc (models/README.md "CTC"): 0.5 kept 15.5 % of them
    right, 0.02 67.5 % (a unidirectional CTC net often has not peaked yet
    when a 1-s clip ends). */
#define ST_ASR_CTC_SPEECH_P 0.02f
st_asr_pool st_asr_default_pool(const st_asr *self);
void st_asr_set_pool(st_asr *self, st_asr_pool pool);

/*  Trainable numbers in the net (weights, biases, per-neuron parameters). */
size_t st_asr_param_count(const st_asr *self);

/* ---- clip classification ---- */

/*  Runs n_frames raw frames (n_frames x n_features, the front end's log-mel)
    from a fresh state; scores (may be NULL) gets the pooled read-out per
    class (ctc: the mean per-frame posterior). Returns the best class >= 0, or a negative st_err. Allocates a
    state: not for the audio thread. */
int st_asr_classify(const st_asr *self, const float *frames, size_t n_frames, st_asr_pool pool,
                    float *scores);

/*  The best class other than silence (what a caller that knows the clip
    holds speech asks), from the scores of st_asr_classify. */
int st_asr_best_speech(const st_asr *self, const float *scores);

/* ---- the decision rule ---- */

typedef struct {
    float on_threshold;      /* probability that opens a candidate; 0.7 */
    float off_threshold;     /* it closes below this; 0.4 */
    int min_frames;          /* shortest candidate emitted; 4 */
    int max_frames;          /* a candidate longer than this is emitted at once; 100 */
    int refractory_frames;   /* frames after an emission with no new candidate; 15 */
    bool emit_early;         /* emit as soon as the candidate has lasted min_frames (then
                                hold it, without a second emission, until it falls); false */
} st_asr_decider_params;

st_asr_decider_params st_asr_decider_default_params(void);

typedef struct {
    int word;                /* class index (>= 2 a vocabulary word, 1 unknown) */
    uint64_t start_stamp;    /* the stamp of the candidate's first frame */
    uint64_t end_stamp;      /* the stamp of its last frame above off_threshold */
    uint64_t decided_stamp;  /* the stamp of the frame that decided it */
    float score;             /* its peak probability */
} st_asr_event;

typedef struct {
    st_asr_decider_params p;
    size_t n_classes;
    int cand;                /* open candidate class, -1 none */
    int frames;              /* its length so far */
    int quiet;               /* refractory frames left */
    bool done;               /* emit_early: the open candidate was emitted */
    uint64_t start, last;
    float peak;
} st_asr_decider;

void st_asr_decider_init(st_asr_decider *d, const st_asr_decider_params *p, size_t n_classes);
/*  One frame of class probabilities (n_classes, summing to 1) stamped
    `stamp`; returns 1 and fills *ev when a word is decided, else 0. */
int st_asr_decider_step(st_asr_decider *d, const float *prob, uint64_t stamp, st_asr_event *ev);
/*  End of input: emits an open candidate that is long enough (1), else 0. */
int st_asr_decider_flush(st_asr_decider *d, st_asr_event *ev);

/* ---- the language model and the beam search ----

    A ctc model may carry a word bigram (tensors "lm", f32 [C][C]: log
    P(next | previous) over its classes, row 0 the start of a request and
    column 0 its end, the blank being no word; and "lm_rule", "alpha A beta
    B margin M beam K"). Its stream then decodes with st_asr_beam (a CTC
    prefix beam search, snn/asr_beam.c) instead of the decision rule:
    words come out once the hypotheses within `margin` of the best agree on
    them, and st_asr_stream_flush commits the best hypothesis (call it
    where the caller knows the speech ended: the agent does at each VAD
    offset). models/README.md "asr_stream.stm" gives how the bigram is made
    (asr-tool lm) and what it changes. */
#define ST_ASR_BEAM_MAX 16
#define ST_ASR_BEAM_PRUNE_P 1e-3f /* labels below this posterior are not tried */
/* A word is not heard twice in a row within this many frames of its first
   peak: a CTC net's posterior for one long word can peak twice. */
#define ST_ASR_BEAM_REPEAT_FRAMES 30
/* A word is committed once the best hypothesis has held it (the same
   peak) as its next word for this many frames, even where others within
   the margin still disagree. */
#define ST_ASR_BEAM_STABLE_FRAMES 10
/* A committed word whose posterior never reached this is not emitted. */
#define ST_ASR_BEAM_MIN_PEAK 0.1f

typedef struct {
    float alpha;   /* weight of the bigram's log-probability; 0.5 */
    float beta;    /* bonus per label, against the blank's deletions; 2 */
    float margin;  /* a word is committed when every hypothesis within this
                      (natural log) of the best holds it; 0.5 */
    int beam;      /* hypotheses kept, 1..ST_ASR_BEAM_MAX; 8 */
} st_asr_lm_params;

st_asr_lm_params st_asr_lm_default_params(void);
/*  ST_ERR_INVALID naming the setting out of range or the entry of logp
    (n_classes x n_classes, may be NULL) that is not a log-probability. */
int st_asr_lm_check(const st_asr_lm_params *p, const float *logp, size_t n_classes);
/*  Stores (copies) a bigram and its settings in the model (NULL: none),
    for st_asr_save and every stream made after. */
int st_asr_set_lm(st_asr *self, const float *logp, const st_asr_lm_params *p);
/*  The model's bigram (borrowed; NULL when it has none) and its settings. */
const float *st_asr_lm(const st_asr *self, st_asr_lm_params *p);

typedef struct st_asr_beam st_asr_beam;
/*  A beam search over n_classes posteriors with the bigram logp (copied;
    NULL: no LM, every label alike). Allocates everything it will use. */
st_asr_beam *st_asr_beam_new(size_t n_classes, const float *logp, const st_asr_lm_params *p,
                             int *err);
void st_asr_beam_destroy(st_asr_beam **self_p);
/*  Empty, the context the start of a request, the queue emptied. */
void st_asr_beam_reset(st_asr_beam *self);
/*  One frame of posteriors (summing to 1) stamped `stamp`; rise (may be
    NULL) gives per class the stamp its posterior last rose (a word's
    start_stamp; UINT64_MAX: none). Committed words wait in a queue. No
    allocation. */
void st_asr_beam_step(st_asr_beam *self, const float *prob, uint64_t stamp, const uint64_t *rise);
/*  Commits the best hypothesis's remaining words and starts over; its last
    label stays the bigram's context when keep_context. */
void st_asr_beam_finish(st_asr_beam *self, bool keep_context);
/*  The next committed word, oldest first: 1 and *ev, or 0. */
int st_asr_beam_next(st_asr_beam *self, st_asr_event *ev);
/*  Committed words lost because nobody took them (a queue of 128). */
size_t st_asr_beam_dropped(const st_asr_beam *self);

/* ---- streaming ----

    The stream classifies a sliding window: every `stride` frames
    (ST_ASR_STRIDE, 100 ms) it runs the last ST_ASR_WINDOW frames (1 s, what
    the model was trained on) from a fresh network state, takes the
    pooled read-out's softmax, and feeds it to a decider with emit_early
    (2 windows in agreement at >= 0.7, held until below 0.5). An event's
    decided_stamp is the frame that decided it; end_stamp the same frame
    (the word has been heard by then), start_stamp half a second earlier.
    Cost: ST_ASR_WINDOW / ST_ASR_STRIDE network steps per frame.

    A ctc model's stream instead steps the net once per frame and keeps
    its state; every frame's softmax goes to the decider (default rule:
    st_asr_stream_ctc_params). An event's decided_stamp and end_stamp are
    the frame that decided it (a unidirectional CTC net names a word as
    its end is heard), start_stamp the first frame of the run in which the
    word's posterior rose above ST_ASR_CTC_RISE_P (CTC peaks are brief:
    near the word's end, not its acoustic start). The state stays bounded
    on long streams: after ST_ASR_CTC_RESET_FRAMES frames in a row whose
    blank posterior is >= ST_ASR_CTC_QUIET_P (a second of silence), the
    network restarts from a fresh state run over the last
    ST_ASR_CTC_REPLAY_FRAMES frames, the condition it was trained in
    (utterances of at most ~3 s from a fresh state, with 0.1-0.5 s of
    silence or noise before the first word). The replay matters: the blank
    stays high for the first 100-200 ms of a word, so the restart can fall
    inside a word the net has not named yet, and a bare restart erased its
    start. Running speech with no such pause never resets it (see
    models/README.md). */
#define ST_ASR_WINDOW 100
#define ST_ASR_STRIDE 10
#define ST_ASR_CTC_RISE_P 0.1f
#define ST_ASR_CTC_QUIET_P 0.9f
#define ST_ASR_CTC_RESET_FRAMES 100
#define ST_ASR_CTC_REPLAY_FRAMES 50 /* < ST_ASR_WINDOW (the ring) */

typedef struct st_asr_stream st_asr_stream;

/*  The decider settings a stream uses when given NULL and its model stores
    none (per window). */
st_asr_decider_params st_asr_stream_default_params(void);
/*  The same for a ctc model (per frame: on 0.5, off 0.3, one frame decides,
    emit_early, no refractory frames). */
st_asr_decider_params st_asr_stream_ctc_params(void);

/*  A stream over a loaded model (borrowed: it must outlive the stream).
    NULL and *err. */
st_asr_stream *st_asr_stream_new(const st_asr *asr, const st_asr_decider_params *p, int *err);
void st_asr_stream_destroy(st_asr_stream **self_p);
void st_asr_stream_reset(st_asr_stream *self);
/*  One raw frame (n_features) stamped `stamp` (the front end's sample
    index); returns 1 with *ev filled when a word is decided, 0 otherwise.
    No allocation. prob_out (may be NULL) gets this frame's probabilities.
    With the beam search a frame may commit more than one word: each push
    returns the oldest waiting (drain them with st_asr_stream_flush, which
    also decides, or with pushes). */
int st_asr_stream_push(st_asr_stream *self, const float *frame, uint64_t stamp,
                       st_asr_event *ev, float *prob_out);
/*  The speech ended: decides what is still open. Returns 1 and *ev for each
    word, one a call, then 0: call it until it returns 0. No allocation. */
int st_asr_stream_flush(st_asr_stream *self, st_asr_event *ev);
/*  A ctc stream's decoder: the beam search with the bigram and settings p
    (NULL: the decision rule). Streams of a model with a bigram start with
    it at the stored settings. Allocates: not for the audio thread.
    ST_ERR_INVALID for a model that is not ctc or settings out of range. */
int st_asr_stream_set_lm(st_asr_stream *self, const st_asr_lm_params *p);
bool st_asr_stream_uses_lm(const st_asr_stream *self);
/*  ctc: how many times the stream restarted its network after a long
    silence (ST_ASR_CTC_RESET_FRAMES); 0 for other models. */
size_t st_asr_stream_state_resets(const st_asr_stream *self);
/*  The decision rule tuned for this model and stored in its file (tensor
    "stream", "on P off P min K max K refractory K early 0|1 tail K"), or
    st_asr_stream_default_params() (ctc: st_asr_stream_ctc_params()) and
    tail 0 when the file has none; a
    stream made with NULL params uses it, and every stream the model's tail.
    st_asr_set_stream (NULL: none) sets it before st_asr_save. */
st_asr_decider_params st_asr_stream_params(const st_asr *self, size_t *tail);
void st_asr_set_stream(st_asr *self, const st_asr_decider_params *p, size_t tail);

/*  Pools only the last `frames` steps of each window (the network still
    runs the whole window from a fresh state): the read-out near the
    window's end says what was just heard. 0 (the default) or >= the window:
    the whole window, the clip condition. A ctc stream has no window: it
    ignores the tail. */
void st_asr_stream_set_tail(st_asr_stream *self, size_t frames);

#ifdef __cplusplus
}
#endif
#endif
