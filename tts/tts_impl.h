/*  tts/tts_impl.h - what the files of tts/ share and nothing outside uses
    (tests of the module may): the engine interface, the chunker and the
    normaliser's word map.

    An engine is one file implementing st_tts_engine_ops and listed in
    engines[] in tts/synth.c. It synthesizes one piece of normalised text at
    a time on the stage's worker thread, hands its samples to the sink as
    they come and reports every word it speaks with its start and end in the
    samples it delivered. It may drop leading and trailing silence (flite
    pads every utterance) as long as the word positions count what it
    delivered.
*/
#ifndef ST_TTS_IMPL_H
#define ST_TTS_IMPL_H

#include "tts.h"

/* ---- the engine interface ------------------------------------------------ */

/*  Where an engine delivers a piece. Called on the worker thread, inside the
    engine's global lock. */
typedef struct st_tts_sink {
    /*  Samples, 16-bit as both engines make them. Returns true to continue,
        false to stop the synthesis now (cancelled or shutting down). */
    bool (*audio)(struct st_tts_sink *s, const int16_t *pcm, size_t n);
    /*  A word: the byte offset in the piece's text of a character inside it,
        and its start and end in samples delivered for this piece. */
    void (*word)(struct st_tts_sink *s, size_t text_offset, uint64_t start, uint64_t end);
    void *user_data;
} st_tts_sink;

/* Flags for synth(). */
#define ST_ENGINE_END_PAUSE 1u   /* the piece ends a clause: keep the natural
                                    pause after it */
#define ST_ENGINE_FIRST 4u       /* the piece starts the utterance */
#define ST_ENGINE_LAST 2u        /* the piece ends the utterance: nothing is
                                    joined after it, keep the engine's own tail.
                                    Without either flag, end at the last word */

typedef struct {
    int rate_wpm;                /* 0 = default */
    int pitch;                   /* 0..100, 50 = the voice's own */
    double lead_silence_ms;      /* silence to keep before an utterance's first word */
    double join_silence_ms;      /* ... before the first word of a later piece */
    double tail_silence_ms;      /* ... after the last word, without END_PAUSE */
} st_tts_engine_opts;

typedef struct st_tts_engine_ops {
    const char *name;            /* "espeak" */
    const char *default_voice;
    bool ascii_only;             /* the normaliser must give it ASCII */
    /*  Resolves the voice, initialises the library once per process.
        Returns an opaque per-stage state, NULL with *err set (and the
        thread's error message) on failure. */
    void *(*open)(const char *voice, const st_tts_engine_opts *o, int *err);
    void (*close)(void *state);
    int (*native_rate_hz)(const void *state);
    const char *(*voice)(const void *state);
    /*  Words in an utterance's first piece when the caller leaves it to the
        engine: fewer where the engine's front end is slow per word. */
    int (*first_piece_words)(const void *state);
    /*  Synthesizes NUL-terminated text into the sink. ST_OK when done or
        stopped by the sink; a negative st_err when the engine failed. */
    int (*synth)(void *state, const char *text, unsigned flags, st_tts_sink *sink);
    int (*list_voices)(st_tts_voice_info *out, size_t max);
} st_tts_engine_ops;

extern const st_tts_engine_ops st_tts_engine_espeak;
extern const st_tts_engine_ops st_tts_engine_flite;

/*  The engine named `name`, or NULL. */
const st_tts_engine_ops *st_tts_engine_find(const char *name);

/* ---- words and the chunker ----------------------------------------------- */

/*  Bytes that separate words: ASCII space and control characters (a whole
    ANSI escape sequence ESC [ ... counts as one separator), DEL, and
    the UTF-8 encodings of C1 controls, NBSP, the Unicode spaces U+2000-200A,
    U+2028/2029, U+202F, U+205F and U+3000. Returns the length of the
    separator at s (0 when s[0] starts a word character). */
size_t st_tts_space_len(const char *s, size_t len);

/*  Steps to the next word of text[*pos..len): skips separators, then takes
    a run of non-separators of at most ST_TTS_MAX_WORD_BYTES bytes (cut at a
    UTF-8 character boundary). Returns false at the end. *pos moves past the
    word. */
bool st_tts_next_word(const char *text, size_t len, size_t *pos, size_t *start, size_t *wlen);

typedef enum {
    ST_CUT_WORDS = 1,            /* after max_words words, inside a clause */
    ST_CUT_CLAUSE,               /* after , ; : or a dash */
    ST_CUT_SENTENCE,             /* after . ! ? ... */
    ST_CUT_END                   /* the rest of an ended utterance */
} st_cut_kind;

typedef struct {
    size_t len;                  /* bytes of text the piece takes (with the
                                    separators after it) */
    int words;                   /* words in it */
    st_cut_kind kind;
    bool last;                   /* it ends the utterance */
} st_cut;

/*  The chunking rule. Finds the first speakable piece of text[0..len): up to
    and including the first word that ends a clause or sentence, or the
    max_words-th word, whichever comes first. A word is complete when a
    separator follows it, or when it ends with clause punctuation after a
    letter (so "Hello," cuts at once, "3." waits: it may be "3.5"). With
    `final` (the utterance has ended) the rest is a piece too, possibly
    empty. Returns false when more text is needed. Pure. */
bool st_tts_find_cut(const char *text, size_t len, bool final, int max_words, st_cut *cut);

/* ---- the normaliser with its word map ------------------------------------ */

typedef struct {
    size_t out_off;              /* where the word's spoken form starts in out */
    size_t src_off, src_len;     /* the word in the input */
} st_norm_span;

/*  st_tts_normalize() that also records, for the k-th word of the input
    (as st_tts_next_word() splits it), where its spoken form starts in out.
    A word that produces nothing gets the offset where the next one starts.
    Returns the output length or ST_ERR_INVALID (out too small, or more
    words than max_spans). */
long st_tts_normalize_map(const char *in, size_t len, char *out, size_t cap, bool ascii_only,
                          st_norm_span *spans, size_t max_spans, size_t *n_spans);

/*  The span a byte offset of the output belongs to: the last one whose
    out_off <= off. */
size_t st_tts_span_at(const st_norm_span *spans, size_t n, size_t off);

/*  Copies the word src[0..len) into out (cap bytes, NUL-terminated) without
    the punctuation around it: "(world," -> "world". */
void st_tts_word_text(const char *src, size_t len, char *out, size_t cap);

#endif
