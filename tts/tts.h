/*  tts/tts.h - the synthesizer stage: streaming speech out of text that
    arrives token by token, with word events and a cancel that takes effect
    at once.

    Two engines from Debian sit behind one interface: espeak-ng (through
    libespeak-ng; the default) and flite (through libflite). The stage cuts
    the incoming text into speakable pieces (a clause, or a few words when
    the clause is long), makes each piece speakable (numbers, times, symbols,
    units), synthesizes the pieces in order on its own worker thread,
    resamples the engine's output to the sink's rate and queues it in a
    bounded queue, from which the caller reads chunks of at most 20 ms.

    Workload: one answer of a voice agent at a time, a few words to a few
    hundred, tokens arriving every few tens of milliseconds; a reader pulling
    10-20 ms chunks for a speaker ring. The first sound comes from the first
    piece while the rest of the answer is still being written.

    Threads: st_tts_push/end/say/cancel may be called from any thread;
    st_tts_read and st_tts_read_words from one reader thread at a time. None
    of them is for the audio callback (they take the stage's mutex briefly);
    the reader moves chunks into the speaker's lock-free ring.

    Memory: everything the stage itself uses is allocated by st_tts_new();
    pushing text, synthesizing and reading allocate nothing in spiketalk. The
    engines allocate internally while they synthesize (both libraries do, per
    utterance); that is theirs and outside this contract.

    Engines are process-wide: libespeak-ng has one global instance and is not
    re-entrant, libflite's voices are shared objects. Each engine is guarded
    by its own global mutex, so several st_tts objects (on several threads)
    are safe but synthesize one piece at a time per engine.
*/
#ifndef ST_TTS_H
#define ST_TTS_H

#include "../audio/audio.h"
#include "../base/base.h"

#ifdef __cplusplus
extern "C" {
#endif

/*  The largest chunk st_tts_read() returns, in ms. */
#define ST_TTS_MAX_CHUNK_MS 20

/*  Longest word (bytes of UTF-8) the stage treats as one word; longer runs
    of non-space characters are split into words of this size. */
#define ST_TTS_MAX_WORD_BYTES 48

typedef struct st_tts st_tts;

typedef struct {
    const char *engine;          /* "espeak" (default) or "flite" */
    const char *voice;           /* the engine's voice name; NULL = its default
                                    (espeak "en-us", flite "kal16"). espeak takes
                                    LANG[+VARIANT], e.g. "en-gb-x-rp+f3" */
    int rate_wpm;                /* speaking rate, words per minute, 80..450;
                                    0 = the engine's default (175) */
    int pitch;                   /* 0..100, 50 = the voice's own pitch */
    int sample_rate_hz;          /* the sink's rate; 0 = the engine's native rate */
    double chunk_ms;             /* largest chunk st_tts_read() returns, ms, 1..20 */
    double queue_s;              /* output queue capacity, seconds of audio; when it
                                    is full the engine waits for the reader */
    st_resample_quality quality; /* resampler to the sink rate (FASTEST passes 80 %
                                    of the band; for speech to pocketsphinx all three
                                    score alike: kal at 16 kHz 16.75 / 16.75 / 16.5
                                    of 20 with FASTEST / MEDIUM / BEST) */
    int first_piece_words;       /* an utterance's first piece ends after at most
                                    this many words (sooner at a clause end);
                                    0 = the engine's choice: 3, and 2 for flite's
                                    clustergen voices (awb, rms, slt), whose
                                    front end costs ~2-3 ms a word */
    int piece_words;             /* later pieces: at most this many words */
    double lead_silence_ms;      /* silence kept before an utterance's first word,
                                    ms (flite pads every utterance with ~0.2 s;
                                    later pieces keep 20 ms, for tight joins;
                                    below ~50 ms pocketsphinx misses words) */
    size_t text_capacity;        /* bytes of text queued and not yet synthesized */
    size_t word_capacity;        /* word events queued for st_tts_read_words();
                                    beyond it the oldest are dropped and counted */
    bool normalize;              /* make numbers, times, symbols speakable first */
    int worker_priority;         /* 0: the worker thread runs at the normal
                                    priority; 1..99: SCHED_FIFO at this priority
                                    when the process may (else a warning in the
                                    log and the normal priority). On a busy
                                    machine a woken normal thread can wait for
                                    the next scheduler tick (4 ms on the project's
                                    VM), which is most of the first-audio time
                                    there; the reader's thread is the caller's */
} st_tts_params;

/*  espeak, default voice, 175 wpm, pitch 50, native rate, 10 ms chunks, 2 s
    queue, medium resampler, first piece as the engine suggests then 12 words,
    50 ms lead silence,
    64 KiB of text, 1024 word events, normalising, normal worker priority. */
st_tts_params st_tts_default_params(void);

/*  Creates the stage and starts its worker thread. Owned by the caller.
    Errors: ST_ERR_NOT_FOUND (no such engine or voice: the message lists
    where to look), ST_ERR_INVALID (a parameter out of range, named in the
    message), ST_ERR_UNSUPPORTED (the engine failed to initialise, e.g. its
    data files are missing), ST_ERR_NOMEM. */
st_tts *st_tts_new(const st_tts_params *p, int *err);

/*  Stops the worker (interrupting any synthesis) and frees everything;
    NULLs *t_p; safe on NULL. */
void st_tts_destroy(st_tts **t_p);

/* ---- text in ------------------------------------------------------------ */

/*  Appends text (a token, a word, a sentence, any UTF-8 fragment: words may
    be split across calls) to the open utterance, opening a new one when none
    is. Synthesis of a piece starts as soon as the piece is complete: a
    clause (ended by , ; : . ! ?), or first_piece_words / piece_words words.
    Control characters count as spaces; invalid UTF-8 is dropped.
    Returns the utterance's id (> 0) or: ST_ERR_NOMEM (more than
    text_capacity bytes queued: read audio first), ST_ERR_STATE (32
    utterances already queued). */
int st_tts_push(st_tts *t, const char *text);

/*  Ends the open utterance: the rest of its text is spoken. Without an open
    utterance, queues an empty one (its end comes through st_tts_read() with
    no audio). Returns the utterance's id or a negative st_err. */
int st_tts_end(st_tts *t);

/*  st_tts_push(text) then st_tts_end(): one whole utterance. */
int st_tts_say(st_tts *t, const char *text);

/*  Drops everything queued (text, audio, word events) and stops the engine
    at its next buffer (both engines hand over ~10 ms of audio at a time;
    flite only once its text analysis of the current piece is done). Returns
    at once: from then on
    st_tts_read() returns no audio of the cancelled utterances, and text
    pushed next starts a new utterance. Any thread. */
void st_tts_cancel(st_tts *t);

/*  Waits (at most timeout_s) until the worker cannot go on without the
    caller: it waits for text, or for the reader to make room. Called before
    st_tts_cancel(), it makes where the engine was stopped - and so the
    engine's state for the next utterance (libespeak-ng carries its wave
    generator's state from call to call) - depend only on what was pushed
    and read, never on how far the worker thread had got: what virtual-time
    runs need to give the same samples every time. Costs at most the rest of
    one engine call. ST_OK, or ST_ERR_TIMEOUT (nothing is changed). */
int st_tts_quiesce(st_tts *t, double timeout_s);

/* ---- audio and words out ------------------------------------------------ */

typedef struct {
    int utterance;               /* the id st_tts_push() returned */
    uint64_t position;           /* frame index of out[0] within the utterance,
                                    at the sink rate */
    bool end;                    /* the utterance's last chunk: nothing of it follows */
} st_tts_chunk;

/*  Copies the next chunk of audio (at most max_frames, at most chunk_ms) into
    out, waiting up to timeout_s for it (0: do not wait). Returns the number
    of frames (0 only for an utterance's end marker when its audio was
    already read: then info->end is set), or ST_ERR_TIMEOUT when nothing came
    in time. Chunks never straddle two utterances. */
long st_tts_read(st_tts *t, float *out, size_t max_frames, double timeout_s,
                 st_tts_chunk *info);

/*  A word of the utterance's text and where it is in the output. */
typedef struct {
    int utterance;               /* the utterance it belongs to */
    uint32_t index;              /* its index among the utterance's words
                                    (runs of non-space characters, from 0) */
    uint64_t start;              /* frame (sink rate, within the utterance) where
                                    its sound starts */
    uint64_t end;                /* frame where its sound ends (exclusive) */
    char text[ST_TTS_MAX_WORD_BYTES + 1]; /* as written, surrounding punctuation
                                    stripped ("7:30", "$5", "world") */
} st_tts_word;

/*  Moves up to max queued word events into out, in order; returns how many.
    Never waits. A word's event is queued once the engine has reached its end
    (espeak-ng: when it starts the next word, a fraction of a millisecond of
    compute after the word's first audio was queued; flite: before the
    piece's first audio). Words that produce no sound (a lone symbol the
    normaliser drops) have no event, so indices may skip. */
size_t st_tts_read_words(st_tts *t, st_tts_word *out, size_t max);

/* ---- whole utterances: the data generator ------------------------------- */

typedef struct {
    float *samples;              /* owned: free with st_tts_result_free() */
    size_t frames;
    int sample_rate_hz;
    st_tts_word *words;          /* owned */
    size_t n_words;
} st_tts_result;

/*  Synthesizes `text` as one utterance on an idle stage (nothing queued) and
    returns all of its audio and words. Allocates the result (not a streaming
    call). Errors: ST_ERR_STATE (the stage is busy), ST_ERR_NOMEM,
    ST_ERR_TIMEOUT (the engine made no progress for 10 s). */
int st_tts_synthesize(st_tts *t, const char *text, st_tts_result *out);
void st_tts_result_free(st_tts_result *r);

/* ---- information -------------------------------------------------------- */

int st_tts_sample_rate_hz(const st_tts *t);   /* the sink rate */
int st_tts_native_rate_hz(const st_tts *t);   /* the engine voice's own rate */
size_t st_tts_chunk_frames(const st_tts *t);  /* the largest chunk, frames */
const char *st_tts_engine(const st_tts *t);   /* "espeak", "flite" (static) */
const char *st_tts_voice(const st_tts *t);    /* the voice in use (borrowed) */

typedef struct {
    uint64_t utterances;         /* utterances started */
    uint64_t pieces;             /* pieces synthesized */
    uint64_t cancels;
    uint64_t frames_out;         /* frames read by the reader */
    uint64_t words_dropped;      /* word events dropped: the queue was full */
    double audio_s;              /* seconds of audio the engine made (native) */
    double compute_s;            /* worker time spent making it (engine + ours),
                                    not counting waits for the reader */
    double first_piece_s;        /* latest utterance: when its first piece was
                                    complete (st_now_s() clock); 0 = not yet */
    double first_audio_s;        /* latest utterance: when its first audio was
                                    queued for the reader; 0 = not yet */
    double last_cancel_s;        /* when the latest cancel was called */
    double last_stop_s;          /* when the worker had left the cancelled
                                    synthesis after it (engine stopped) */
} st_tts_stats;

void st_tts_get_stats(st_tts *t, st_tts_stats *s);

/*  Voices. `engine` is "espeak" or "flite". Fills up to max entries and
    returns how many voices there are, or a negative st_err. espeak lists
    its English languages (variants are given as LANG+VARIANT; see
    st_tts_list_variants()). */
typedef struct {
    char name[64];               /* what st_tts_params.voice takes */
    char language[16];
    char gender;                 /* 'M', 'F' or '-' */
    char description[96];
    int native_rate_hz;
} st_tts_voice_info;

int st_tts_list_voices(const char *engine, st_tts_voice_info *out, size_t max);

/*  espeak-ng's voice variants ("f3", "klatt", "Alicia", ...), appended to a
    language as LANG+VARIANT. Same contract as st_tts_list_voices(). */
int st_tts_list_variants(st_tts_voice_info *out, size_t max);

/*  flite's clustergen voices (awb, rms, slt) draw their excitation noise, and
    espeak-ng some of its own variation, from libc's rand(), whose state the
    whole process shares: without this, what was synthesized before changes
    the samples of what comes next. Seeds rand() from an FNV-1a hash of key
    (name the engine, voice and settings) followed by text, so that the next
    synthesis of text draws the same numbers whatever came before it (a
    clustergen voice then says it bit for bit the same; espeak-ng also keeps
    some state of its own from one utterance to the next). Call it right
    before st_tts_synthesize() or st_tts_say(), with no synthesis running:
    it sets the process's rand() state. */
void st_tts_seed_draws(const char *key, const char *text);

/*  The engines compiled in: name i, or NULL past the last. */
const char *st_tts_engine_name(int i);

/* ---- the text normaliser ------------------------------------------------ */

/*  Makes text speakable: numbers ("1,234" "3.5" "-7" "21st" "1990s"),
    years, times ("7:30", "7:05pm"), money ("$5.50", "€3"), percent, units
    after numbers ("5 km", "20°C", "3GHz"), symbols (& + = @ # / %), common
    abbreviations (Dr., e.g.), typographic punctuation; control characters
    become spaces, invalid UTF-8 is dropped. With ascii_only, accented Latin
    letters lose their accents and other non-ASCII characters are dropped
    (flite speaks ASCII only). Writes a NUL-terminated string; returns its
    length, or ST_ERR_INVALID when out is too small (16 * strlen(in) + 64
    always suffices: the longest expansion is a run of digits, ~11.7 bytes
    of words per digit). Pure: any thread. */
long st_tts_normalize(const char *in, char *out, size_t cap, bool ascii_only);

#ifdef __cplusplus
}
#endif
#endif
