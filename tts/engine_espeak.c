/*  tts/engine_espeak.c - espeak-ng through libespeak-ng: every English voice
    and variant, rate and pitch, 22050 Hz.

    libespeak-ng keeps one global instance (voice, parameters, callback) and
    is not re-entrant: this file initialises it once per process, in
    synchronous mode with 10 ms buffers and phoneme events, and holds
    `espeak_lock` around every call into it. Each stage keeps its own voice,
    rate and pitch and sets them again only when another stage changed them.

    Word times come from the engine's events: espeakEVENT_WORD gives a
    word's first sample (`sample`, counted from the start of the synth call)
    and its character position in the text; the word ends at the next pause
    phoneme (phoneme names starting with '_'), the next word, or the end of
    the clause. espeak-ng makes its first samples ~0.1 ms after the call, so
    a piece's first audio is bounded by the worker's wake-up.

    Touches: libespeak-ng's global state only, under the lock. Workload: a
    piece of a few to a few dozen words per call.
*/
#include "tts_impl.h"

#include <ctype.h>
#include <espeak-ng/speak_lib.h>
#include <pthread.h>
#include <strings.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ESPEAK_BUFFER_MS 10
#define ESPEAK_DEFAULT_VOICE "en-us"

static pthread_once_t espeak_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t espeak_lock = PTHREAD_MUTEX_INITIALIZER;
static int espeak_rate_hz;       /* > 0 once initialised, < 0 when it failed */

/* What the global instance is set to now (under espeak_lock). */
static char cur_voice[64];
static int cur_rate = -1, cur_pitch = -1;

typedef struct {
    char voice[64];
    int rate_wpm;
    int pitch;
} espeak_state;

/* One synthesis call in progress (under espeak_lock). */
typedef struct {
    st_tts_sink *sink;
    const char *text;
    size_t text_len;
    bool stopped;
    uint64_t delivered;
    /* character -> byte cursor: event positions only move forward */
    int cursor_char;
    size_t cursor_byte;
    /* the word being spoken */
    bool have_word;
    bool word_voiced;            /* a non-pause phoneme came since it started */
    size_t word_off;
    uint64_t word_start;
} espeak_call;

static espeak_call *active;

static void espeak_init_once(void)
{
    int rate = espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, ESPEAK_BUFFER_MS, NULL,
                                 espeakINITIALIZE_PHONEME_EVENTS | espeakINITIALIZE_DONT_EXIT);
    espeak_rate_hz = rate > 0 ? rate : -1;
}

/* Byte offset of the 0-based character index c in the call's text. */
static size_t char_to_byte(espeak_call *k, int c)
{
    if (c < k->cursor_char) {
        k->cursor_char = 0;
        k->cursor_byte = 0;
    }
    while (k->cursor_char < c && k->cursor_byte < k->text_len) {
        k->cursor_byte++;
        while (k->cursor_byte < k->text_len &&
               ((unsigned char)k->text[k->cursor_byte] & 0xc0) == 0x80)
            k->cursor_byte++;
        k->cursor_char++;
    }
    return k->cursor_byte < k->text_len ? k->cursor_byte : (k->text_len ? k->text_len - 1 : 0);
}

static void finish_word(espeak_call *k, uint64_t end)
{
    if (!k->have_word)
        return;
    if (end < k->word_start)
        end = k->word_start;
    k->sink->word(k->sink, k->word_off, k->word_start, end);
    k->have_word = false;
}

static int espeak_callback(short *wav, int n, espeak_EVENT *ev)
{
    espeak_call *k = active;
    if (!k || k->stopped)
        return 1;
    for (; ev && ev->type != espeakEVENT_LIST_TERMINATED; ev++) {
        uint64_t at = ev->sample > 0 ? (uint64_t)ev->sample : 0;
        switch (ev->type) {
        case espeakEVENT_WORD:
            if (ev->length <= 0)
                break;  /* espeak-ng emits empty words at position 0 after a clause */
            finish_word(k, at);
            k->have_word = true;
            k->word_voiced = false;
            k->word_start = at;
            k->word_off = char_to_byte(k, ev->text_position > 0 ? ev->text_position - 1 : 0);
            break;
        case espeakEVENT_PHONEME:
            if (ev->id.string[0] == '_') {
                if (k->have_word && k->word_voiced)
                    finish_word(k, at);
            } else
                k->word_voiced = true;
            break;
        case espeakEVENT_END:
        case espeakEVENT_MSG_TERMINATED:
            finish_word(k, at);
            break;
        default:
            break;
        }
    }
    if (wav && n > 0) {
        if (!k->sink->audio(k->sink, (const int16_t *)wav, (size_t)n)) {
            k->stopped = true;
            return 1;
        }
        k->delivered += (uint64_t)n;
    }
    return 0;
}

static const char *basename_of(const char *identifier)
{
    const char *slash = strrchr(identifier, '/');
    return slash ? slash + 1 : identifier;
}

/*  Resolves a voice as people write it - the file name espeak-ng matches
    ("en", "en-us"), a language ("en-gb"), or the description
    ("English_(Great_Britain)") - with an optional +VARIANT, to the file name
    form espeak_SetVoiceByName() takes. mbrola voices are refused before
    espeak-ng tries them (it would print to stderr). Under the lock. */
static int resolve_voice(const char *name, char *out, size_t cap)
{
    char lang[64], variant[64] = "";
    snprintf(lang, sizeof lang, "%s", name);
    char *plus = strchr(lang, '+');
    if (plus) {
        snprintf(variant, sizeof variant, "%s", plus + 1);
        *plus = '\0';
    }
    const char *found = NULL;
    bool mbrola = false;
    for (const espeak_VOICE **v = espeak_ListVoices(NULL); v && *v && !found; v++) {
        if (!(*v)->identifier)
            continue;
        const char *base = basename_of((*v)->identifier);
        const char *first = (*v)->languages ? (*v)->languages + 1 : "";
        bool match = !strcasecmp(base, lang) || !strcasecmp(first, lang) ||
                     ((*v)->name && !strcasecmp((*v)->name, lang));
        if (!match)
            continue;
        if (!strncmp((*v)->identifier, "mb/", 3))
            mbrola = true;
        else
            found = base;
    }
    if (!found)
        return st_error(ST_ERR_NOT_FOUND,
                        mbrola ? "espeak: '%s' is an mbrola voice (mbrola is not supported)"
                               : "espeak: no voice '%s' (see `spiketalk say --list-voices`)",
                        lang);
    /* espeak_ListVoices() frees the list it returned last time: keep the
       name before asking for the variants. */
    char voice[64];
    snprintf(voice, sizeof voice, "%s", found);
    if (variant[0]) {
        espeak_VOICE spec;
        memset(&spec, 0, sizeof spec);
        spec.languages = "variant";
        bool ok = false;
        for (const espeak_VOICE **v = espeak_ListVoices(&spec); v && *v && !ok; v++)
            ok = (*v)->identifier && !strncmp((*v)->identifier, "!v/", 3) &&
                 !strcasecmp((*v)->identifier + 3, variant);
        if (!ok)
            return st_error(ST_ERR_NOT_FOUND,
                            "espeak: no variant '%s' (see `spiketalk say --list-voices`)", variant);
    }
    int n = snprintf(out, cap, "%s%s%s", voice, variant[0] ? "+" : "", variant);
    if (n < 0 || (size_t)n >= cap)
        return st_error(ST_ERR_INVALID, "espeak: voice name '%s' is too long", name);
    return ST_OK;
}

/* Applies the stage's settings to the global instance (under the lock). */
static int apply(const espeak_state *s)
{
    if (strcmp(cur_voice, s->voice)) {
        if (espeak_SetVoiceByName(s->voice) != EE_OK) {
            cur_voice[0] = '\0';
            return st_error(ST_ERR_NOT_FOUND,
                            "espeak: no voice '%s' (see `spiketalk say --list-voices`)", s->voice);
        }
        snprintf(cur_voice, sizeof cur_voice, "%s", s->voice);
        cur_rate = cur_pitch = -1;
    }
    if (cur_rate != s->rate_wpm) {
        espeak_SetParameter(espeakRATE, s->rate_wpm, 0);
        cur_rate = s->rate_wpm;
    }
    if (cur_pitch != s->pitch) {
        espeak_SetParameter(espeakPITCH, s->pitch, 0);
        cur_pitch = s->pitch;
    }
    return ST_OK;
}

static void *espeak_open(const char *voice, const st_tts_engine_opts *o, int *err)
{
    pthread_once(&espeak_once, espeak_init_once);
    if (espeak_rate_hz <= 0) {
        *err = st_error(ST_ERR_UNSUPPORTED,
                        "espeak: libespeak-ng failed to initialise (is espeak-ng-data installed?)");
        return NULL;
    }
    espeak_state *s = calloc(1, sizeof *s);
    if (!s) {
        *err = st_error(ST_ERR_NOMEM, "espeak: out of memory");
        return NULL;
    }
    snprintf(s->voice, sizeof s->voice, "%s", voice && *voice ? voice : ESPEAK_DEFAULT_VOICE);
    s->rate_wpm = o->rate_wpm > 0 ? o->rate_wpm : espeakRATE_NORMAL;
    s->pitch = o->pitch;
    pthread_mutex_lock(&espeak_lock);
    char resolved[64];
    int rc = resolve_voice(s->voice, resolved, sizeof resolved);
    if (rc == ST_OK) {
        snprintf(s->voice, sizeof s->voice, "%s", resolved);
        rc = apply(s);
    }
    pthread_mutex_unlock(&espeak_lock);
    if (rc) {
        free(s);
        *err = rc;
        return NULL;
    }
    return s;
}

static void espeak_close(void *state)
{
    free(state);
}

static int espeak_native_rate(const void *state)
{
    (void)state;
    return espeak_rate_hz;
}

static const char *espeak_voice(const void *state)
{
    return ((const espeak_state *)state)->voice;
}

static int espeak_first_piece_words(const void *state)
{
    (void)state;
    return 3;  /* its first samples come ~0.1 ms after the call, whatever the length */
}

static int espeak_synth(void *state, const char *text, unsigned flags, st_tts_sink *sink)
{
    espeak_state *s = state;
    espeak_call k = {.sink = sink, .text = text, .text_len = strlen(text)};
    pthread_mutex_lock(&espeak_lock);
    int rc = apply(s);
    if (rc == ST_OK) {
        espeak_SetSynthCallback(espeak_callback);
        active = &k;
        unsigned opts = espeakCHARS_UTF8 | ((flags & ST_ENGINE_END_PAUSE) ? espeakENDPAUSE : 0);
        espeak_ERROR e = espeak_Synth(text, k.text_len + 1, 0, POS_CHARACTER, 0, opts, NULL, NULL);
        active = NULL;
        if (e != EE_OK && !k.stopped)
            rc = st_error(ST_ERR_INTERNAL, "espeak: synthesis failed (error %d)", (int)e);
    }
    pthread_mutex_unlock(&espeak_lock);
    if (rc == ST_OK && !k.stopped)
        finish_word(&k, k.delivered);
    return rc;
}

/* English voices: languages "en*", not mbrola (not installed with espeak-ng). */
static int espeak_list_voices(st_tts_voice_info *out, size_t max)
{
    pthread_once(&espeak_once, espeak_init_once);
    if (espeak_rate_hz <= 0)
        return st_error(ST_ERR_UNSUPPORTED, "espeak: libespeak-ng failed to initialise");
    pthread_mutex_lock(&espeak_lock);
    const espeak_VOICE **v = espeak_ListVoices(NULL);
    int n = 0;
    for (; v && *v; v++) {
        const char *lang = (*v)->languages ? (*v)->languages + 1 : "";
        if (strncmp(lang, "en", 2) || !(*v)->identifier || !strncmp((*v)->identifier, "mb/", 3))
            continue;
        if ((size_t)n < max) {
            st_tts_voice_info *o = &out[n];
            memset(o, 0, sizeof *o);
            snprintf(o->name, sizeof o->name, "%s", basename_of((*v)->identifier));
            for (char *c = o->name; *c; c++)
                *c = (char)tolower((unsigned char)*c);
            snprintf(o->language, sizeof o->language, "%s", lang);
            o->gender = (*v)->gender == 2 ? 'F' : (*v)->gender == 1 ? 'M' : '-';
            snprintf(o->description, sizeof o->description, "%s", (*v)->name ? (*v)->name : "");
            o->native_rate_hz = espeak_rate_hz;
        }
        n++;
    }
    pthread_mutex_unlock(&espeak_lock);
    return n;
}

int st_tts_list_variants(st_tts_voice_info *out, size_t max)
{
    pthread_once(&espeak_once, espeak_init_once);
    if (espeak_rate_hz <= 0)
        return st_error(ST_ERR_UNSUPPORTED, "espeak: libespeak-ng failed to initialise");
    espeak_VOICE spec;
    memset(&spec, 0, sizeof spec);
    spec.languages = "variant";
    pthread_mutex_lock(&espeak_lock);
    const espeak_VOICE **v = espeak_ListVoices(&spec);
    int n = 0;
    for (; v && *v; v++) {
        const char *id = (*v)->identifier;
        if (!id || strncmp(id, "!v/", 3))
            continue;
        if ((size_t)n < max) {
            st_tts_voice_info *o = &out[n];
            memset(o, 0, sizeof *o);
            snprintf(o->name, sizeof o->name, "%s", id + 3);
            snprintf(o->language, sizeof o->language, "variant");
            o->gender = (*v)->gender == 2 ? 'F' : (*v)->gender == 1 ? 'M' : '-';
            snprintf(o->description, sizeof o->description, "%s", (*v)->name ? (*v)->name : "");
            o->native_rate_hz = espeak_rate_hz;
        }
        n++;
    }
    pthread_mutex_unlock(&espeak_lock);
    return n;
}

const st_tts_engine_ops st_tts_engine_espeak = {
    .name = "espeak",
    .default_voice = ESPEAK_DEFAULT_VOICE,
    .ascii_only = false,
    .open = espeak_open,
    .close = espeak_close,
    .native_rate_hz = espeak_native_rate,
    .voice = espeak_voice,
    .first_piece_words = espeak_first_piece_words,
    .synth = espeak_synth,
    .list_voices = espeak_list_voices,
};
