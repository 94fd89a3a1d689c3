/*  tts/engine_flite.c - flite through libflite: its English voices kal16
    (diphone, 16 kHz), kal (diphone, 8 kHz), awb, rms and slt (clustergen,
    16 kHz).

    Each piece is one flite utterance, synthesized with the streaming audio
    callback (asc) so that samples come as the waveform synthesis makes them
    (kal16 ~0.7 ms after the call, the clustergen voices after their text
    analysis and parameter generation, ~5-15 ms for a short piece). By the
    first callback the utterance's Segment and Word relations are complete:
    the word times (start of a word's first segment, end of its last) and
    the silence flite pads every utterance with (a "pau" segment of ~0.1-0.25
    s at each end) are known, so this file drops the leading pause down to
    lead_silence_ms, and, when the piece does not end a clause, the trailing
    pause down to tail_silence_ms, with 2 ms fades at the cuts so that the
    joins do not click. Word positions count the samples delivered.

    Rate and pitch go into the utterance's own features (duration_stretch,
    int_f0_target_mean), never into the shared voice. Voices are registered
    on first use and kept for the life of the process. flite's thread safety
    is not documented, so every call into it holds `flite_lock`.

    Touches: libflite's global state only, under the lock. Workload: a piece
    of a few to a few dozen words per call.
*/
#include "tts_impl.h"

#include <flite/cst_cg.h>
#include <flite/flite.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The voices' registration functions (libflite_cmu_us_*.so; no headers). */
cst_voice *register_cmu_us_kal16(const char *voxdir);
cst_voice *register_cmu_us_kal(const char *voxdir);
cst_voice *register_cmu_us_awb(const char *voxdir);
cst_voice *register_cmu_us_rms(const char *voxdir);
cst_voice *register_cmu_us_slt(const char *voxdir);

#define FLITE_DEFAULT_VOICE "kal16"
#define FLITE_FADE_MS 2.0
#define FLITE_STREAM_MIN 128     /* samples: the callback comes about every 10 ms */

typedef struct {
    const char *name;
    cst_voice *(*reg)(const char *);
    char gender;
    const char *description;
} flite_voice_desc;

static const flite_voice_desc VOICES[] = {
    {"kal16", register_cmu_us_kal16, 'M', "US English male, diphone, 16 kHz"},
    {"kal", register_cmu_us_kal, 'M', "US English male, diphone, 8 kHz"},
    {"awb", register_cmu_us_awb, 'M', "Scottish English male, clustergen, 16 kHz"},
    {"rms", register_cmu_us_rms, 'M', "US English male, clustergen, 16 kHz"},
    {"slt", register_cmu_us_slt, 'F', "US English female, clustergen, 16 kHz"},
};
#define N_VOICES (sizeof VOICES / sizeof VOICES[0])

static pthread_mutex_t flite_lock = PTHREAD_MUTEX_INITIALIZER;
static bool flite_ready;
static cst_voice *loaded[N_VOICES];
static int loaded_rate[N_VOICES];
static bool loaded_cg[N_VOICES];  /* clustergen: the front end is slow per word */
static float loaded_f0[N_VOICES];

typedef struct {
    int voice;                   /* index in VOICES */
    double stretch;              /* duration_stretch; 0 = the voice's */
    int pitch;
    double lead_s, join_s, tail_s;
} flite_state;

/* One synthesis call in progress. */
typedef struct {
    st_tts_sink *sink;
    const flite_state *st;
    size_t text_len;
    bool end_pause;
    bool last;                   /* nothing follows: keep the engine's own tail */
    bool first_piece;            /* starts the utterance: lead_s, else join_s */
    bool first;
    bool stopped;
    uint64_t keep_from, keep_to; /* samples of the utterance delivered */
    uint64_t fade;
    uint64_t delivered;          /* samples handed to the sink */
    uint64_t planned;            /* where the last segment ends, in delivered samples */
} flite_call;

/* Loads voice i (under the lock): registers it and synthesizes a word once,
   which gives its rate and warms its tables up. */
static int load_voice(int i)
{
    if (!flite_ready) {
        flite_init();
        flite_ready = true;
    }
    if (loaded[i])
        return ST_OK;
    cst_voice *v = VOICES[i].reg(NULL);
    if (!v)
        return st_error(ST_ERR_UNSUPPORTED, "flite: voice '%s' failed to register", VOICES[i].name);
    cst_wave *w = flite_text_to_wave("Hello.", v);
    if (!w || w->sample_rate <= 0) {
        delete_wave(w);
        return st_error(ST_ERR_UNSUPPORTED, "flite: voice '%s' made no audio", VOICES[i].name);
    }
    loaded_rate[i] = w->sample_rate;
    delete_wave(w);
    float f0 = flite_get_param_float(v->features, "int_f0_target_mean", -1.0f);
    if (f0 <= 0) {
        const cst_val *db = flite_get_param_val(v->features, "cg_db", NULL);
        f0 = db ? val_cg_db(db)->f0_mean : 100.0f;
    }
    loaded_f0[i] = f0;
    loaded_cg[i] = flite_get_param_val(v->features, "cg_db", NULL) != NULL;
    loaded[i] = v;
    return ST_OK;
}

static void *flite_open(const char *voice, const st_tts_engine_opts *o, int *err)
{
    const char *name = voice && *voice ? voice : FLITE_DEFAULT_VOICE;
    if (!strncmp(name, "cmu_us_", 7))
        name += 7;
    int idx = -1;
    for (size_t i = 0; i < N_VOICES; i++)
        if (!strcmp(VOICES[i].name, name))
            idx = (int)i;
    if (idx < 0) {
        *err = st_error(ST_ERR_NOT_FOUND, "flite: no voice '%s' (kal16, kal, awb, rms, slt)", name);
        return NULL;
    }
    pthread_mutex_lock(&flite_lock);
    int rc = load_voice(idx);
    pthread_mutex_unlock(&flite_lock);
    if (rc) {
        *err = rc;
        return NULL;
    }
    flite_state *s = calloc(1, sizeof *s);
    if (!s) {
        *err = st_error(ST_ERR_NOMEM, "flite: out of memory");
        return NULL;
    }
    s->voice = idx;
    s->stretch = o->rate_wpm > 0 ? 175.0 / o->rate_wpm : 0;
    s->pitch = o->pitch;
    s->lead_s = o->lead_silence_ms / 1000.0;
    s->join_s = o->join_silence_ms / 1000.0;
    s->tail_s = o->tail_silence_ms / 1000.0;
    return s;
}

static void flite_close(void *state)
{
    free(state);
}

static int flite_native_rate(const void *state)
{
    return loaded_rate[((const flite_state *)state)->voice];
}

static const char *flite_voice_name(const void *state)
{
    return VOICES[((const flite_state *)state)->voice].name;
}

static int flite_first_piece_words(const void *state)
{
    /* clustergen predicts and smooths the parameters of the whole utterance
       before its first sample: ~2-3 ms a word */
    return loaded_cg[((const flite_state *)state)->voice] ? 2 : 3;
}

static double seg_start(const cst_item *seg)
{
    const cst_item *p = item_prev(seg);
    return p ? item_feat_float(p, "end") : 0.0;
}

/*  At the first callback: where speech starts and ends, and every word. */
static void plan(flite_call *k, const cst_utterance *u, int rate)
{
    double first = -1, last = 0, total = 0;
    for (const cst_item *s = relation_head(utt_relation(u, "Segment")); s; s = item_next(s)) {
        double end = item_feat_float(s, "end");
        total = end;
        if (strcmp(item_feat_string(s, "name"), "pau")) {
            if (first < 0)
                first = seg_start(s);
            last = end;
        }
    }
    if (first < 0)
        first = last = 0;
    double from = first - (k->first_piece ? k->st->lead_s : k->st->join_s);
    k->keep_from = from > 0 ? (uint64_t)llround(from * rate) : 0;
    double to = last + k->st->tail_s;
    k->keep_to = (!k->end_pause && !k->last && to < total) ? (uint64_t)llround(to * rate)
                                                           : UINT64_MAX;
    double planned = total * rate - (double)k->keep_from;
    k->planned = planned > 0 ? (uint64_t)llround(planned) : 0;
    k->fade = (uint64_t)llround(FLITE_FADE_MS / 1000.0 * rate);
    for (const cst_item *w = relation_head(utt_relation(u, "Word")); w; w = item_next(w)) {
        const cst_item *ss = item_as(w, "SylStructure");
        if (!ss || !item_daughter(ss) || !item_daughter(item_daughter(ss)))
            continue;
        const cst_item *s0 = item_as(item_daughter(item_daughter(ss)), "Segment");
        const cst_item *s1 = item_as(item_last_daughter(item_last_daughter(ss)), "Segment");
        if (!s0 || !s1)
            continue;
        /* the token's file_pos is two bytes past its last character */
        const cst_item *tok = item_parent(item_as(w, "Token"));
        long fp = tok ? (long)item_feat_int(tok, "file_pos") - 2 : 0;
        if (fp < 0)
            fp = 0;
        if (k->text_len && (size_t)fp >= k->text_len)
            fp = (long)k->text_len - 1;
        double a = seg_start(s0) * rate, z = item_feat_float(s1, "end") * rate;
        uint64_t start = a > (double)k->keep_from ? (uint64_t)llround(a) - k->keep_from : 0;
        uint64_t end = z > (double)k->keep_from ? (uint64_t)llround(z) - k->keep_from : 0;
        k->sink->word(k->sink, (size_t)fp, start, end);
    }
}

static int flite_asc(const cst_wave *w, int start, int size, int last, cst_audio_streaming_info *asi)
{
    (void)last;
    flite_call *k = asi->userdata;
    if (k->stopped)
        return CST_AUDIO_STREAM_STOP;
    if (k->first) {
        k->first = false;
        plan(k, asi->utt, w->sample_rate);
    }
    uint64_t a = (uint64_t)start, z = (uint64_t)start + (uint64_t)size;
    if (a < k->keep_from)
        a = k->keep_from;
    if (z > k->keep_to)
        z = k->keep_to;
    int16_t buf[512];
    while (a < z) {
        size_t n = z - a < 512 ? (size_t)(z - a) : 512;
        for (size_t i = 0; i < n; i++) {
            uint64_t s = a + i;
            double g = 1.0;
            if (k->keep_from > 0 && s - k->keep_from < k->fade)
                g = (double)(s - k->keep_from) / (double)k->fade;
            if (k->keep_to != UINT64_MAX && k->keep_to - s <= k->fade)
                g = fmin(g, (double)(k->keep_to - s - 1) / (double)k->fade);
            buf[i] = (int16_t)lrint(w->samples[s] * g);
        }
        if (!k->sink->audio(k->sink, buf, n)) {
            k->stopped = true;
            return CST_AUDIO_STREAM_STOP;
        }
        a += n;
        k->delivered += n;
    }
    /* past the end we keep: nothing more is needed from this utterance */
    return (uint64_t)start + (uint64_t)size >= k->keep_to ? CST_AUDIO_STREAM_STOP
                                                         : CST_AUDIO_STREAM_CONT;
}

static int flite_synth(void *state, const char *text, unsigned flags, st_tts_sink *sink)
{
    flite_state *s = state;
    flite_call k = {.sink = sink,
                    .st = s,
                    .text_len = strlen(text),
                    .end_pause = (flags & ST_ENGINE_END_PAUSE) != 0,
                    .last = (flags & ST_ENGINE_LAST) != 0,
                    .first_piece = (flags & ST_ENGINE_FIRST) != 0,
                    .first = true,
                    .keep_to = UINT64_MAX};
    pthread_mutex_lock(&flite_lock);
    cst_voice *v = loaded[s->voice];
    cst_utterance *u = new_utterance();
    utt_set_input_text(u, text);
    utt_init(u, v);
    if (s->stretch > 0)
        feat_set_float(u->features, "duration_stretch", (float)s->stretch);
    if (s->pitch != 50)
        feat_set_float(u->features, "int_f0_target_mean",
                       loaded_f0[s->voice] * (float)pow(2.0, (s->pitch - 50) / 100.0));
    cst_audio_streaming_info *asi = new_audio_streaming_info();
    asi->asc = flite_asc;
    asi->min_buffsize = FLITE_STREAM_MIN;
    asi->userdata = &k;
    feat_set(u->features, "streaming_info", audio_streaming_info_val(asi));
    cst_utterance *r = utt_synth(u);
    delete_utterance(u);
    /* The diphone voices stop their wave halfway into the final pause; a
       clause keeps the whole pause flite planned (up to half a second). */
    if (k.end_pause && !k.stopped && r) {
        static const int16_t zeros[256];
        uint64_t want = k.planned;
        uint64_t cap = k.delivered + (uint64_t)(loaded_rate[s->voice] / 2);
        if (want > cap)
            want = cap;
        while (k.delivered < want && !k.stopped) {
            size_t n = want - k.delivered < 256 ? (size_t)(want - k.delivered) : 256;
            k.stopped = !sink->audio(sink, zeros, n);
            k.delivered += n;
        }
    }
    pthread_mutex_unlock(&flite_lock);
    if (!r && !k.stopped)
        return st_error(ST_ERR_INTERNAL, "flite: synthesis failed");
    return ST_OK;
}

static int flite_list_voices(st_tts_voice_info *out, size_t max)
{
    for (size_t i = 0; i < N_VOICES && i < max; i++) {
        memset(&out[i], 0, sizeof out[i]);
        snprintf(out[i].name, sizeof out[i].name, "%s", VOICES[i].name);
        snprintf(out[i].language, sizeof out[i].language, "en-us");
        out[i].gender = VOICES[i].gender;
        snprintf(out[i].description, sizeof out[i].description, "%s", VOICES[i].description);
        out[i].native_rate_hz = strcmp(VOICES[i].name, "kal") ? 16000 : 8000;
    }
    return (int)N_VOICES;
}

const st_tts_engine_ops st_tts_engine_flite = {
    .name = "flite",
    .default_voice = FLITE_DEFAULT_VOICE,
    .ascii_only = true,
    .open = flite_open,
    .close = flite_close,
    .native_rate_hz = flite_native_rate,
    .voice = flite_voice_name,
    .first_piece_words = flite_first_piece_words,
    .synth = flite_synth,
    .list_voices = flite_list_voices,
};
