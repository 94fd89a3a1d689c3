/*  tests/test_tts.c - suite `tts`: the synthesizer stage.

    What it checks: the normaliser's rewrites and the chunking rule (pure),
    incremental joining (first audio before the last token, total length
    close to the engine's one-shot synthesis, no jumps at the joins), word
    events (monotonic, and where the engine itself puts the words, within a
    chunk), the samples (flite's own, exactly, at its rate; at 48 kHz the
    same as resampling them in one go), cancel in the middle of a word (no audio of the cancelled
    utterance afterwards, the engine stops, the next utterance starts clean),
    text that would break the engines (empty, 10 000 characters, control
    characters, invalid UTF-8, other scripts), chunk sizes at 8/16/48 kHz,
    two stages on two threads, no allocation in the caller's calls, and
    `spiketalk say` end to end.

    Touches: libespeak-ng and libflite directly (for the engines' own word
    timing) only while no stage is synthesizing; temporary files through
    st_test_tmpfile(). Tuned to run in a few seconds, and under valgrind
    within a few minutes: flite's clustergen voices (slow under valgrind)
    appear only in short texts.
*/
#include "testutil.h"

#include "audio/audio.h"
#include "tts/tts.h"
#include "tts/tts_impl.h"

#include <espeak-ng/speak_lib.h>
#include <flite/flite.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

cst_voice *register_cmu_us_kal16(const char *voxdir);
cst_voice *register_cmu_us_slt(const char *voxdir);

/* ---- helpers ------------------------------------------------------------- */

static st_tts *make(const char *engine, const char *voice, int rate)
{
    st_tts_params p = st_tts_default_params();
    p.engine = engine;
    p.voice = voice;
    p.sample_rate_hz = rate;
    int err = 0;
    st_tts *t = st_tts_new(&p, &err);
    CU_ASSERT_PTR_NOT_NULL(t);
    if (!t)
        fprintf(stderr, "st_tts_new(%s, %s): %s\n", engine, voice ? voice : "-", st_errmsg());
    return t;
}

typedef struct {
    float *x;
    size_t n, cap;
    size_t max_chunk;            /* largest chunk seen */
    bool positions_ok;           /* every chunk's position = frames before it */
    int chunks;
} collected;

static void collect_free(collected *c)
{
    free(c->x);
    memset(c, 0, sizeof *c);
}

/*  Reads utterance `id` to its end (or max_s of audio); returns false on a
    timeout. */
static bool read_utterance(st_tts *t, int id, collected *c, double max_s)
{
    size_t cf = st_tts_chunk_frames(t);
    float buf[2048];
    size_t limit = (size_t)(max_s * st_tts_sample_rate_hz(t));
    if (!c->x) {
        c->cap = 1 << 16;
        c->x = malloc(c->cap * sizeof *c->x);
        c->positions_ok = true;
    }
    for (;;) {
        st_tts_chunk info;
        long n = st_tts_read(t, buf, cf < 2048 ? cf : 2048, 5.0, &info);
        if (n < 0)
            return false;
        if (info.utterance != id)
            continue;
        if (info.position != c->n)
            c->positions_ok = false;
        if ((size_t)n > c->max_chunk)
            c->max_chunk = (size_t)n;
        c->chunks++;
        if (c->n + (size_t)n > c->cap) {
            while (c->n + (size_t)n > c->cap)
                c->cap *= 2;
            c->x = realloc(c->x, c->cap * sizeof *c->x);
        }
        memcpy(c->x + c->n, buf, (size_t)n * sizeof *buf);
        c->n += (size_t)n;
        if (info.end || c->n >= limit)
            return true;
    }
}

static float max_jump(const float *x, size_t n)
{
    float m = 0;
    for (size_t i = 1; i < n; i++) {
        float d = fabsf(x[i] - x[i - 1]);
        if (d > m)
            m = d;
    }
    return m;
}

/* A sink that keeps what an engine delivers (for one-shot synthesis). */
typedef struct {
    uint64_t samples;
    float max_jump;
    int16_t last;
    size_t n_words;
    size_t off[64];
    uint64_t start[64], end[64];
} test_sink;

static bool ts_audio(st_tts_sink *s, const int16_t *pcm, size_t n)
{
    test_sink *k = s->user_data;
    for (size_t i = 0; i < n; i++) {
        if (k->samples + i > 0) {
            float d = fabsf((float)(pcm[i] - k->last)) / 32768.0f;
            if (d > k->max_jump)
                k->max_jump = d;
        }
        k->last = pcm[i];
    }
    k->samples += n;
    return true;
}

static void ts_word(st_tts_sink *s, size_t off, uint64_t start, uint64_t end)
{
    test_sink *k = s->user_data;
    if (k->n_words < 64) {
        k->off[k->n_words] = off;
        k->start[k->n_words] = start;
        k->end[k->n_words++] = end;
    }
}

/*  The engine's one-shot synthesis of text (normalised) through its driver:
    no chunking, no resampling. */
static uint64_t one_shot(const char *engine, const char *voice, const char *text, int *rate,
                         float *jump)
{
    const st_tts_engine_ops *e = st_tts_engine_find(engine);
    st_tts_engine_opts o = {.rate_wpm = 0, .pitch = 50, .lead_silence_ms = 50,
                            .join_silence_ms = 20, .tail_silence_ms = 30};
    int err;
    void *s = e->open(voice, &o, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    char norm[4096];
    CU_ASSERT_TRUE(st_tts_normalize(text, norm, sizeof norm, e->ascii_only) > 0);
    test_sink k = {0};
    st_tts_sink sink = {.audio = ts_audio, .word = ts_word, .user_data = &k};
    CU_ASSERT_EQUAL(e->synth(s, norm, ST_ENGINE_FIRST | ST_ENGINE_LAST, &sink), ST_OK);
    *rate = e->native_rate_hz(s);
    if (jump)
        *jump = k.max_jump;
    e->close(s);
    return k.samples;
}

/* ---- the normaliser and the chunker (pure) ---------------------------------------- */

static void test_normalize_cases(void)
{
    static const char *const cases[][2] = {
        {"It's 7:30.", "It's seven thirty."},
        {"at 7:05pm", "at seven oh five pee em"},
        {"at 12:00", "at twelve o'clock"},
        {"meet at 9 am", "meet at nine ay em"},
        {"1,234 apples", "one thousand two hundred thirty four apples"},
        {"3.14", "three point one four"},
        {"-5 and +3", "minus five and plus three"},
        {"the 21st and 3rd", "the twenty first and third"},
        {"in 1990s", "in nineteen nineties"},
        {"in 1984 and 2005", "in nineteen eighty four and two thousand five"},
        {"007", "zero zero seven"},
        {"$5.50", "five dollars and fifty cents"},
        {"$1", "one dollar"},
        {"$0.99", "ninety nine cents"},
        {"$1.5 million", "one point five million dollars"},
        {"\xe2\x82\xac" "3 and \xc2\xa3" "2", "three euros and two pounds"},
        {"50%", "fifty percent"},
        {"5 km", "five kilometers"},
        {"1 km", "one kilometer"},
        {"20\xc2\xb0" "C", "twenty degrees Celsius"},
        {"3GHz", "three gigahertz"},
        {"5-10 people", "five to ten people"},
        {"3/4 cup", "three quarters cup"},
        {"555-1234", "five five five one two three four"},
        {"A & B", "A and B"},
        {"a+b=c", "a plus b equals c"},
        {"@home #1", "at home number one"},
        {"Dr. Smith vs. Mr. Jones", "doctor Smith versus mister Jones"},
        {"**bold** `code`", "bold code"},
        {"wait \xe2\x80\x94 what", "wait , what"},
        {"score 3:2", "score three to two"},
        {"x\x01y\tz\x7f", "x y z"},
        {"bad\xff\xfe utf", "bad utf"},
        {"12345678901234567890", "one two three four five six seven eight nine zero one two "
                                 "three four five six seven eight nine zero"},
        {"", ""},
    };
    char out[1024];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        long n = st_tts_normalize(cases[i][0], out, sizeof out, false);
        CU_ASSERT_EQUAL(n, (long)strlen(cases[i][1]));
        if (strcmp(out, cases[i][1]))
            fprintf(stderr, "\n  normalize(\"%s\") = \"%s\", expected \"%s\"\n", cases[i][0], out,
                    cases[i][1]);
        CU_ASSERT_STRING_EQUAL(out, cases[i][1]);
    }
    /* ASCII only (flite): accents go, other scripts go, money signs are words */
    CU_ASSERT_TRUE(st_tts_normalize("na\xc3\xafve caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xe2\x82\xac" "5",
                                    out, sizeof out, true) > 0);
    CU_ASSERT_STRING_EQUAL(out, "naive cafe five euros");
    /* kept as UTF-8 for espeak */
    CU_ASSERT_TRUE(st_tts_normalize("caf\xc3\xa9", out, sizeof out, false) > 0);
    CU_ASSERT_STRING_EQUAL(out, "caf\xc3\xa9");
    /* the documented bound holds for the worst case, runs of digits */
    char digits[1600];
    size_t dl = 0;
    for (int k = 0; k < 100; k++)
        dl += (size_t)snprintf(digits + dl, sizeof digits - dl, "%s", k % 2 ? "7777777777777 " : "777 ");
    size_t cap = 16 * dl + 64;
    char *big = malloc(cap);
    CU_ASSERT_TRUE(st_tts_normalize(digits, big, cap, false) > (long)(8 * dl));
    free(big);
    /* too small a buffer is an error, never an overflow */
    char small[8];
    CU_ASSERT_EQUAL(st_tts_normalize("one thousand and 1234", small, sizeof small, false),
                    ST_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(st_errmsg(), "too small"));
}

static void test_normalize_word_map(void)
{
    const char *in = "It's 7:30, ** go!";
    char out[256];
    st_norm_span sp[8];
    size_t n = 0;
    long len = st_tts_normalize_map(in, strlen(in), out, sizeof out, false, sp, 8, &n);
    CU_ASSERT_STRING_EQUAL(out, "It's seven thirty, go!");
    CU_ASSERT_EQUAL(len, 22);
    CU_ASSERT_EQUAL(n, 4);
    /* "seven" and "thirty" lead back to "7:30"; the silent "**" to nothing */
    CU_ASSERT_EQUAL(st_tts_span_at(sp, n, 5), 1);
    CU_ASSERT_EQUAL(st_tts_span_at(sp, n, 11), 1);
    CU_ASSERT_EQUAL(st_tts_span_at(sp, n, 19), 3);
    CU_ASSERT_EQUAL(st_tts_span_at(sp, n, 0), 0);
    char w[64];
    st_tts_word_text(in + sp[1].src_off, sp[1].src_len, w, sizeof w);
    CU_ASSERT_STRING_EQUAL(w, "7:30");
    st_tts_word_text(in + sp[3].src_off, sp[3].src_len, w, sizeof w);
    CU_ASSERT_STRING_EQUAL(w, "go");
}

static void test_chunker_rule(void)
{
    st_cut c;
    /* a clause ends at once after a letter */
    CU_ASSERT_TRUE(st_tts_find_cut("Hello,", 6, false, 3, &c));
    CU_ASSERT_EQUAL(c.len, 6);
    CU_ASSERT_EQUAL(c.kind, ST_CUT_CLAUSE);
    CU_ASSERT_FALSE(c.last);
    /* an unfinished word waits */
    CU_ASSERT_FALSE(st_tts_find_cut("Hello wor", 9, false, 3, &c));
    /* after a digit, the dot may be a decimal point: wait */
    CU_ASSERT_FALSE(st_tts_find_cut("It is 3.", 8, false, 12, &c));
    CU_ASSERT_TRUE(st_tts_find_cut("It is 3. Then", 13, false, 12, &c));
    CU_ASSERT_EQUAL(c.len, 9);
    CU_ASSERT_EQUAL(c.kind, ST_CUT_SENTENCE);
    /* abbreviations and initials do not end a sentence */
    CU_ASSERT_FALSE(st_tts_find_cut("Ask Dr. Smith about", 19, false, 12, &c));
    CU_ASSERT_FALSE(st_tts_find_cut("J. R. R. Tolkien wrote", 22, false, 12, &c));
    /* a long clause is cut after max_words words */
    CU_ASSERT_TRUE(st_tts_find_cut("one two three four five", 23, false, 3, &c));
    CU_ASSERT_EQUAL(c.words, 3);
    CU_ASSERT_EQUAL(c.kind, ST_CUT_WORDS);
    CU_ASSERT_EQUAL(c.len, 14);
    /* the end of an utterance takes the rest, even empty */
    CU_ASSERT_TRUE(st_tts_find_cut("go now", 6, true, 12, &c));
    CU_ASSERT_TRUE(c.last);
    CU_ASSERT_EQUAL(c.kind, ST_CUT_END);
    CU_ASSERT_TRUE(st_tts_find_cut("  ", 2, true, 12, &c));
    CU_ASSERT_TRUE(c.last);
    CU_ASSERT_EQUAL(c.words, 0);
    /* a run without separators is split into words of bounded size */
    char longw[200];
    memset(longw, 'a', sizeof longw);
    size_t pos = 0, ws, wl;
    CU_ASSERT_TRUE(st_tts_next_word(longw, sizeof longw, &pos, &ws, &wl));
    CU_ASSERT_EQUAL(wl, ST_TTS_MAX_WORD_BYTES);
}

/* ---- streaming ----------------------------------------------------------- */

static const char *const TOKENS[] = {"Well", ",", " the", " quick", " brown", " fox",
                                     " jumps", " over", " the", " lazy", " dog", " at",
                                     " 7:30", ",", " and", " then", " it", " sleeps", "."};
#define N_TOKENS (sizeof TOKENS / sizeof TOKENS[0])

static void incremental(const char *engine, const char *voice)
{
    st_tts *t = make(engine, voice, 0);
    if (!t)
        return;
    int rate = st_tts_sample_rate_hz(t);
    /* audio comes while the answer is still being written */
    int id = 0;
    for (size_t i = 0; i < 4; i++)
        id = st_tts_push(t, TOKENS[i]);
    CU_ASSERT_TRUE(id > 0);
    float buf[1024];
    st_tts_chunk info;
    long n = st_tts_read(t, buf, 1024, 5.0, &info);
    CU_ASSERT_TRUE(n > 0);
    CU_ASSERT_EQUAL(info.utterance, id);
    CU_ASSERT_EQUAL(info.position, 0);
    collected c = {0};
    c.cap = 1 << 16;
    c.x = malloc(c.cap * sizeof *c.x);
    c.positions_ok = true;
    memcpy(c.x, buf, (size_t)n * sizeof *buf);
    c.n = (size_t)n;
    for (size_t i = 4; i < N_TOKENS; i++)
        CU_ASSERT_EQUAL(st_tts_push(t, TOKENS[i]), id);
    CU_ASSERT_EQUAL(st_tts_end(t), id);
    CU_ASSERT_TRUE(read_utterance(t, id, &c, 60));
    CU_ASSERT_TRUE(c.positions_ok);
    st_tts_stats s;
    st_tts_get_stats(t, &s);
    CU_ASSERT_TRUE(s.pieces >= 3);  /* it really was cut */
    st_tts_word w[32];
    size_t nw = st_tts_read_words(t, w, 32);
    CU_ASSERT_EQUAL(nw, 16);        /* every word of the text, 7:30 as one */
    st_tts_destroy(&t);

    /* the engine on the whole sentence at once */
    char whole[512] = "";
    for (size_t i = 0; i < N_TOKENS; i++)
        strcat(whole, TOKENS[i]);
    int erate;
    float ejump;
    uint64_t ref = one_shot(engine, voice, whole, &erate, &ejump);
    CU_ASSERT_EQUAL(erate, rate);
    double ratio = (double)c.n / (double)ref;
    if (ratio < 0.85 || ratio > 1.25)
        fprintf(stderr, "\n  %s: incremental %zu frames vs one-shot %lu\n", engine, c.n,
                (unsigned long)ref);
    /* clause pauses and prosody (flite lengthens a long sentence's last
       phrase), nothing more: no gaps, nothing lost */
    CU_ASSERT_TRUE(ratio > 0.85 && ratio < 1.25);
    /* the joins add no jump bigger than the speech's own */
    float jump = max_jump(c.x, c.n);
    if (jump > 1.2f * ejump + 0.02f)
        fprintf(stderr, "\n  %s: largest step %.3f vs one-shot %.3f\n", engine, jump, ejump);
    CU_ASSERT_TRUE(jump <= 1.2f * ejump + 0.02f);
    collect_free(&c);
}

static void test_incremental_espeak(void)
{
    incremental("espeak", NULL);
}

static void test_incremental_flite(void)
{
    incremental("flite", "kal16");
}

/* espeak's own word events on text, at 22050 Hz (only while no stage runs). */
static int es_n;
static int es_start[64];
static int es_cb(short *wav, int n, espeak_EVENT *ev)
{
    (void)wav;
    (void)n;
    for (; ev->type != espeakEVENT_LIST_TERMINATED; ev++)
        if (ev->type == espeakEVENT_WORD && ev->length > 0 && es_n < 64)
            es_start[es_n++] = ev->sample;
    return 0;
}

static void check_words(const st_tts_word *w, size_t n, int rate, const double *ref_s,
                        size_t n_ref, double offset_s)
{
    CU_ASSERT_EQUAL_FATAL(n, n_ref);
    double chunk_s = 0.010;
    for (size_t i = 0; i < n; i++) {
        CU_ASSERT_EQUAL(w[i].index, i);
        CU_ASSERT_TRUE(w[i].end >= w[i].start);
        if (i > 0)
            CU_ASSERT_TRUE(w[i].start >= w[i - 1].end);
        double ours = (double)w[i].start / rate;
        if (fabs(ours - (ref_s[i] + offset_s)) > chunk_s)
            fprintf(stderr, "\n  word %zu '%s': %.4f s, the engine says %.4f s\n", i, w[i].text,
                    ours, ref_s[i] + offset_s);
        CU_ASSERT_TRUE(fabs(ours - (ref_s[i] + offset_s)) <= chunk_s);
    }
}

static void test_words_espeak(void)
{
    const char *text = "the quick brown fox jumps over the lazy dog";
    st_tts_params p = st_tts_default_params();
    p.sample_rate_hz = 48000;
    p.first_piece_words = 12;  /* one piece: the engine's own timing applies as is */
    int err;
    st_tts *t = st_tts_new(&p, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    st_tts_result r;
    CU_ASSERT_EQUAL_FATAL(st_tts_synthesize(t, text, &r), ST_OK);
    st_tts_destroy(&t);
    CU_ASSERT_STRING_EQUAL(r.words[0].text, "the");
    CU_ASSERT_STRING_EQUAL(r.words[8].text, "dog");
    CU_ASSERT_TRUE(r.words[8].end <= r.frames);
    /* espeak-ng's own events, same voice and settings as the stage's */
    espeak_SetSynthCallback(es_cb);
    espeak_SetVoiceByName("en-us");
    espeak_SetParameter(espeakRATE, espeakRATE_NORMAL, 0);
    espeak_SetParameter(espeakPITCH, 50, 0);
    es_n = 0;
    espeak_Synth(text, strlen(text) + 1, 0, POS_CHARACTER, 0, espeakCHARS_UTF8, NULL, NULL);
    double ref[64];
    for (int i = 0; i < es_n; i++)
        ref[i] = es_start[i] / 22050.0;
    check_words(r.words, r.n_words, 48000, ref, (size_t)es_n, 0);
    st_tts_result_free(&r);
}

static void test_words_flite(void)
{
    const char *text = "the quick brown fox jumps over the lazy dog";
    st_tts_params p = st_tts_default_params();
    p.engine = "flite";
    p.voice = "kal16";
    p.sample_rate_hz = 48000;
    p.first_piece_words = 12;
    int err;
    st_tts *t = st_tts_new(&p, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    st_tts_result r;
    CU_ASSERT_EQUAL_FATAL(st_tts_synthesize(t, text, &r), ST_OK);
    st_tts_destroy(&t);
    /* flite's own timing: each word from its first segment's start */
    cst_utterance *u = flite_synth_text(text, register_cmu_us_kal16(NULL));
    CU_ASSERT_PTR_NOT_NULL_FATAL(u);
    double ref[64];
    size_t n = 0;
    for (cst_item *w = relation_head(utt_relation(u, "Word")); w && n < 64; w = item_next(w)) {
        cst_item *s0 = item_as(item_daughter(item_daughter(item_as(w, "SylStructure"))), "Segment");
        ref[n++] = item_prev(s0) ? item_feat_float(item_prev(s0), "end") : 0;
    }
    delete_utterance(u);
    /* the stage keeps 50 ms of the leading pause: everything moves by the same */
    double offset = 0.050 - ref[0];
    check_words(r.words, r.n_words, 48000, ref, n, offset);
    st_tts_result_free(&r);
}

/* ---- the waveform: nothing in the chain changes the engine's samples -------- */

/*  The stage at the engine's own rate against flite_text_to_wave() of the
    same word: ours must be the engine's samples exactly, cut out of its
    wave (the stage trims the leading pause to 50 ms with a 2 ms fade).
    Clustergen voices excite unvoiced sounds with rand(): srand(1) before
    each synthesis gives both the same draw. */
static void same_samples(const char *voice, cst_voice *(*reg)(const char *), const char *word)
{
    st_tts *t = make("flite", voice, 0);
    if (!t)
        return;
    st_tts_result r;
    srand(1);
    int rc = st_tts_synthesize(t, word, &r);
    st_tts_destroy(&t);
    CU_ASSERT_EQUAL_FATAL(rc, ST_OK);
    srand(1);
    cst_wave *w = flite_text_to_wave(word, reg(NULL));
    CU_ASSERT_PTR_NOT_NULL_FATAL(w);
    CU_ASSERT_EQUAL(r.sample_rate_hz, w->sample_rate);
    /* where ours starts in the engine's wave: the one offset at which ours,
       past its fade, is the wave */
    size_t fade = (size_t)(0.003 * r.sample_rate_hz), n = (size_t)w->num_samples, lag = SIZE_MAX;
    for (size_t k = 0; r.frames > fade && k + r.frames <= n && lag == SIZE_MAX; k++) {
        size_t i = fade;
        while (i < r.frames && lrintf(r.samples[i] * 32768.0f) == w->samples[k + i])
            i++;
        if (i == r.frames)
            lag = k;
    }
    CU_ASSERT_NOT_EQUAL(lag, SIZE_MAX);
    if (lag == SIZE_MAX)
        fprintf(stderr, "flite %s '%s': the stage's %zu samples are nowhere in flite's %zu\n",
                voice, word, r.frames, n);
    else {
        /* ours ends with the wave and keeps at least the 50 ms before the word */
        CU_ASSERT_EQUAL(lag + r.frames, n);
        CU_ASSERT_TRUE(r.frames > (size_t)(0.05 * r.sample_rate_hz));
    }
    delete_wave(w);
    st_tts_result_free(&r);
}

static void test_waveform_flite(void)
{
    same_samples("kal16", register_cmu_us_kal16, "seven");
    same_samples("slt", register_cmu_us_slt, "stop");
}

/*  st_tts_seed_draws(): a clustergen word says the same samples whatever was
    synthesized before it; without it, what came before changes them (so
    the check can fail), and another text draws other numbers. */
static bool same_result(const st_tts_result *a, const st_tts_result *b)
{
    return a->frames == b->frames &&
           !memcmp(a->samples, b->samples, a->frames * sizeof *a->samples);
}

static void test_seed_draws(void)
{
    st_tts *t = make("flite", "awb", 16000);
    if (!t)
        return;
    st_tts_result first = {0}, again = {0}, unseeded = {0}, other = {0}, r = {0};
    st_tts_seed_draws("flite/awb", "seven");
    CU_ASSERT_EQUAL_FATAL(st_tts_synthesize(t, "seven", &first), ST_OK);
    CU_ASSERT_EQUAL_FATAL(st_tts_synthesize(t, "six", &r), ST_OK); /* draws in between */
    st_tts_result_free(&r);
    st_tts_seed_draws("flite/awb", "seven");
    CU_ASSERT_EQUAL_FATAL(st_tts_synthesize(t, "seven", &again), ST_OK);
    CU_ASSERT_TRUE(same_result(&first, &again));
    CU_ASSERT_EQUAL_FATAL(st_tts_synthesize(t, "seven", &unseeded), ST_OK);
    CU_ASSERT_FALSE(same_result(&first, &unseeded)); /* rand() has moved on */
    st_tts_seed_draws("flite/rms", "seven");          /* another key: another draw */
    CU_ASSERT_EQUAL_FATAL(st_tts_synthesize(t, "seven", &other), ST_OK);
    CU_ASSERT_FALSE(same_result(&first, &other));
    st_tts_result_free(&first);
    st_tts_result_free(&again);
    st_tts_result_free(&unseeded);
    st_tts_result_free(&other);
    st_tts_destroy(&t);
}

/*  The stage at 48 kHz against its own output at the native rate,
    resampled in one go with the same converter: the pieces, the joins and
    the 10 ms chunks add nothing (the resampler runs through the utterance). */
static void resampled_in_one_go(const char *engine, const char *voice, const char *text)
{
    st_tts *tn = make(engine, voice, 0), *t = make(engine, voice, 48000);
    st_tts_result rn = {0}, r = {0};
    bool ok = tn && t;
    srand(1);
    ok = ok && st_tts_synthesize(tn, text, &rn) == ST_OK;
    srand(1);
    ok = ok && st_tts_synthesize(t, text, &r) == ST_OK;
    st_tts_destroy(&tn);
    st_tts_destroy(&t);
    CU_ASSERT_TRUE_FATAL(ok);
    int err;
    st_resampler *rs = st_resampler_new(rn.sample_rate_hz, 48000, ST_RESAMPLE_MEDIUM, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(rs);
    size_t cap = rn.frames * 48000 / (size_t)rn.sample_rate_hz + 8192, used, made, ny;
    float *y = calloc(cap, sizeof *y);
    CU_ASSERT_PTR_NOT_NULL_FATAL(y);
    CU_ASSERT_EQUAL(st_resampler_process(rs, rn.samples, rn.frames, y, cap, &used, &made), ST_OK);
    CU_ASSERT_EQUAL(used, rn.frames);
    ny = made;
    do {
        CU_ASSERT_EQUAL(st_resampler_flush(rs, y + ny, cap - ny, &made), ST_OK);
        ny += made;
    } while (made > 0 && ny < cap);
    st_resampler_destroy(&rs);
    CU_ASSERT_EQUAL(r.frames, ny);
    double worst = 0;
    for (size_t i = 0; i < r.frames && i < ny; i++)
        worst = fmax(worst, fabs((double)r.samples[i] - y[i]));
    CU_ASSERT_TRUE(worst < 1e-6);
    if (worst >= 1e-6 || r.frames != ny)
        fprintf(stderr, "%s %s: stage %zu frames, one go %zu, largest difference %g\n", engine,
                voice, r.frames, ny, worst);
    free(y);
    st_tts_result_free(&rn);
    st_tts_result_free(&r);
}

static void test_resampled_in_one_go(void)
{
    /* several pieces: a clause, then a cut after 12 words */
    resampled_in_one_go("flite", "kal16",
                        "Well, one two three four five six seven eight nine ten eleven twelve "
                        "thirteen.");
    resampled_in_one_go("flite", "kal", "Sure, the train leaves at 7:30 from platform 4.");
    /* (espeak-ng carries its glottal phase from one synthesis to the next:
       two syntheses of the same text differ, so it cannot be compared so) */
}

/* ---- cancel ---------------------------------------------------------------- */

static void cancel_mid_word(const char *engine, const char *voice)
{
    st_tts *t = make(engine, voice, 48000);
    if (!t)
        return;
    size_t cf = st_tts_chunk_frames(t);
    const char *text = "Remember to buy bread, milk and some oranges on the way home tonight.";
    int id = st_tts_say(t, text);
    CU_ASSERT_TRUE(id > 0);
    /* read until the middle of the second word; a word's event comes once
       the engine has reached its end, so let the worker run ahead first (as
       it does when a speaker paces the reader) */
    float buf[1024];
    st_tts_chunk info;
    st_tts_word w[16];
    collected c = {0};
    long n = st_tts_read(t, buf, cf, 10.0, &info);
    CU_ASSERT_TRUE(n > 0);
    uint64_t pos = n > 0 ? (uint64_t)n : 0;
    size_t nw = 0;
    double t_wait = st_now_s();
    while (nw < 2 && st_now_s() - t_wait < 30) {  /* slow under valgrind */
        st_sleep_until_s(st_now_s() + 0.02);
        nw += st_tts_read_words(t, w + nw, 16 - nw);
    }
    CU_ASSERT_TRUE(nw >= 2);
    if (n <= 0 || nw < 2)
        goto out;
    while (pos < w[1].start + (w[1].end - w[1].start) / 2) {
        n = st_tts_read(t, buf, cf, 10.0, &info);
        CU_ASSERT_TRUE(n > 0 && !info.end);
        if (n <= 0 || info.end)
            goto out;
        pos = info.position + (uint64_t)n;
    }
    CU_ASSERT_TRUE(pos > w[1].start && pos < w[1].end);
    st_tts_cancel(t);
    /* nothing of it comes out after the cancel, now or later */
    CU_ASSERT_EQUAL(st_tts_read(t, buf, cf, 0, &info), ST_ERR_TIMEOUT);
    CU_ASSERT_EQUAL(st_tts_read(t, buf, cf, 0.1, &info), ST_ERR_TIMEOUT);
    CU_ASSERT_EQUAL(st_tts_read_words(t, w, 16), 0);
    /* and the engine has stopped */
    st_tts_stats s;
    double t0 = st_now_s();
    do
        st_tts_get_stats(t, &s);
    while (s.last_stop_s == 0 && st_now_s() - t0 < 10);
    CU_ASSERT_TRUE(s.last_stop_s > 0);
    CU_ASSERT_EQUAL(s.cancels, 1);
    /* the next utterance starts clean: at 0, from silence, the same as on a fresh stage */
    int id2 = st_tts_say(t, "yes");
    CU_ASSERT_TRUE(id2 > id);
    CU_ASSERT_TRUE(read_utterance(t, id2, &c, 10));
    CU_ASSERT_TRUE(c.positions_ok);
    CU_ASSERT_TRUE(c.n > 0 && fabsf(c.x[0]) < 0.01f);
    nw = st_tts_read_words(t, w, 16);
    CU_ASSERT_EQUAL(nw, 1);
    CU_ASSERT_EQUAL(w[0].utterance, id2);
    CU_ASSERT_STRING_EQUAL(w[0].text, "yes");
    st_tts_destroy(&t);
    st_tts *fresh = make(engine, voice, 48000);
    st_tts_result r;
    if (fresh && st_tts_synthesize(fresh, "yes", &r) == ST_OK) {
        double ratio = (double)c.n / (double)r.frames;
        CU_ASSERT_TRUE(ratio > 0.95 && ratio < 1.05);
        st_tts_result_free(&r);
    } else
        CU_FAIL("a fresh stage did not say yes");
    st_tts_destroy(&fresh);
out:
    st_tts_destroy(&t);
    collect_free(&c);
}

static void test_cancel_espeak(void)
{
    cancel_mid_word("espeak", NULL);
}

static void test_cancel_flite(void)
{
    cancel_mid_word("flite", "kal16");
}

/* ---- bad text ------------------------------------------------------------- */

static void bad_text(const char *engine, const char *voice)
{
    static char big_word[10001], big_text[10001];
    memset(big_word, 'x', 10000);
    for (size_t i = 0; i < 10000; i++)
        big_text[i] = "The cat sat on 12 mats, 3:15 & 50%. "[i % 36];
    const char *const texts[] = {
        "", "   \t\n  ", "\x01\x02\x1b[31m\x7f\x1b[0m", "\xff\xfe\xc3\x28 \xe2\x82",
        "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\xe3\x81\xae\xe3\x83\x86\xe3\x82\xad\xe3\x82\xb9\xe3\x83\x88",
        "\xd9\x85\xd8\xb1\xd8\xad\xd8\xa8\xd8\xa7 \xd8\xa8\xd8\xa7\xd9\x84\xd8\xb9\xd8\xa7\xd9\x84\xd9\x85",
        "\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82 \xd0\xbc\xd0\xb8\xd1\x80",
        "\xf0\x9f\x98\x80\xf0\x9f\x91\x8d", "...,,,!!!???", "$ % & + = @ # / * _ ~", big_word,
        big_text,
    };
    st_tts *t = make(engine, voice, 16000);
    if (!t)
        return;
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        int id = st_tts_say(t, texts[i]);
        CU_ASSERT_TRUE(id > 0);
        if (id <= 0)
            continue;
        collected c = {0};
        /* speech, or a clean end with none; at most 1.5 s read, then cancel */
        bool ok = read_utterance(t, id, &c, 1.5);
        CU_ASSERT_TRUE(ok);
        if (i < 4 || i == 8)
            CU_ASSERT_EQUAL(c.n, 0);  /* nothing speakable in these */
        if (i >= 10)
            CU_ASSERT_TRUE(c.n > 0);
        for (size_t k = 0; k < c.n; k++)
            if (!(fabsf(c.x[k]) <= 1.0f)) {
                CU_FAIL("sample out of range");
                break;
            }
        st_tts_cancel(t);
        st_tts_word w[64];
        while (st_tts_read_words(t, w, 64) > 0)
            ;
        collect_free(&c);
    }
    st_tts_destroy(&t);
}

static void test_bad_text_espeak(void)
{
    bad_text("espeak", NULL);
}

static void test_bad_text_flite(void)
{
    bad_text("flite", "kal16");
}

static void test_text_capacity(void)
{
    st_tts_params p = st_tts_default_params();
    p.text_capacity = 256;
    int err;
    st_tts *t = st_tts_new(&p, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    char text[1001];
    memset(text, 'a', 1000);
    text[1000] = '\0';
    CU_ASSERT_EQUAL(st_tts_push(t, text), ST_ERR_NOMEM);
    CU_ASSERT_PTR_NOT_NULL(strstr(st_errmsg(), "text_capacity"));
    st_tts_cancel(t);
    st_tts_destroy(&t);
    st_tts_destroy(&t);  /* idempotent */
}

static void test_params_errors(void)
{
    st_tts_params p = st_tts_default_params();
    int err = 0;
    p.engine = "festival";
    CU_ASSERT_PTR_NULL(st_tts_new(&p, &err));
    CU_ASSERT_EQUAL(err, ST_ERR_NOT_FOUND);
    CU_ASSERT_PTR_NOT_NULL(strstr(st_errmsg(), "festival"));
    p = st_tts_default_params();
    p.voice = "no-such-voice";
    CU_ASSERT_PTR_NULL(st_tts_new(&p, &err));
    CU_ASSERT_EQUAL(err, ST_ERR_NOT_FOUND);
    p.engine = "flite";
    CU_ASSERT_PTR_NULL(st_tts_new(&p, &err));
    CU_ASSERT_EQUAL(err, ST_ERR_NOT_FOUND);
    p = st_tts_default_params();
    p.chunk_ms = 25;
    CU_ASSERT_PTR_NULL(st_tts_new(&p, &err));
    CU_ASSERT_EQUAL(err, ST_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(st_errmsg(), "chunk_ms"));
    p = st_tts_default_params();
    p.rate_wpm = 20;
    CU_ASSERT_PTR_NULL(st_tts_new(&p, &err));
    CU_ASSERT_EQUAL(err, ST_ERR_INVALID);
    p = st_tts_default_params();
    p.worker_priority = 100;
    CU_ASSERT_PTR_NULL(st_tts_new(&p, &err));
    CU_ASSERT_EQUAL(err, ST_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(st_errmsg(), "worker_priority"));
    /* a real-time worker where the process may, the normal one where not:
       it speaks either way */
    p.worker_priority = 1;
    st_tts *t = st_tts_new(&p, &err);
    CU_ASSERT_PTR_NOT_NULL(t);
    st_tts_result r;
    if (t && st_tts_synthesize(t, "yes", &r) == ST_OK) {
        CU_ASSERT_TRUE(r.frames > 1000);
        st_tts_result_free(&r);
    } else
        CU_FAIL("a stage with worker_priority 1 did not speak");
    st_tts_destroy(&t);
    /* voices are listed for both engines */
    st_tts_voice_info v[64];
    CU_ASSERT_TRUE(st_tts_list_voices("espeak", v, 64) >= 2);
    CU_ASSERT_EQUAL(st_tts_list_voices("flite", v, 64), 5);
    CU_ASSERT_TRUE(st_tts_list_variants(v, 64) > 10);
}

/* ---- chunks at the sink rate ------------------------------------------------ */

static void test_chunk_sizes(void)
{
    static const struct {
        const char *engine, *voice;
    } e[] = {{"espeak", NULL}, {"flite", "kal16"}, {"flite", "kal"}};
    static const int rates[] = {8000, 16000, 48000};
    for (size_t i = 0; i < 3; i++)
        for (size_t k = 0; k < 3; k++) {
            st_tts_params p = st_tts_default_params();
            p.engine = e[i].engine;
            p.voice = e[i].voice;
            p.sample_rate_hz = rates[k];
            p.chunk_ms = 20;
            int err;
            st_tts *t = st_tts_new(&p, &err);
            CU_ASSERT_PTR_NOT_NULL_FATAL(t);
            CU_ASSERT_EQUAL(st_tts_chunk_frames(t), (size_t)rates[k] / 50);
            int id = st_tts_say(t, "Testing, one two three.");
            collected c = {0};
            CU_ASSERT_TRUE(read_utterance(t, id, &c, 30));
            CU_ASSERT_TRUE(c.max_chunk > 0 && c.max_chunk <= (size_t)rates[k] / 50);
            CU_ASSERT_TRUE(c.positions_ok);
            /* about a second of speech, at the asked rate */
            CU_ASSERT_TRUE(c.n > (size_t)rates[k] / 2 && c.n < (size_t)rates[k] * 4);
            collect_free(&c);
            st_tts_destroy(&t);
        }
}

/* ---- threads and the caller's calls ------------------------------------------- */

typedef struct {
    const char *voice;
    size_t frames, words;
} thread_job;

static void *say_thread(void *arg)
{
    thread_job *j = arg;
    st_tts_params p = st_tts_default_params();
    p.voice = j->voice;
    int err;
    st_tts *t = st_tts_new(&p, &err);
    if (!t)
        return NULL;
    for (int k = 0; k < 3; k++) {
        st_tts_result r;
        if (st_tts_synthesize(t, "One, two, three, four, five.", &r) == ST_OK) {
            j->frames += r.frames;
            j->words += r.n_words;
            st_tts_result_free(&r);
        }
    }
    st_tts_destroy(&t);
    return NULL;
}

static void test_two_stages(void)
{
    thread_job a = {.voice = "en-us"}, b = {.voice = "en-gb"};
    pthread_t ta, tb;
    CU_ASSERT_EQUAL_FATAL(pthread_create(&ta, NULL, say_thread, &a), 0);
    CU_ASSERT_EQUAL_FATAL(pthread_create(&tb, NULL, say_thread, &b), 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    if (a.words != 15 || b.words != 15)
        fprintf(stderr, "\n  two stages: %zu and %zu words, %zu and %zu frames\n", a.words, b.words,
                a.frames, b.frames);
    CU_ASSERT_EQUAL(a.words, 15);
    CU_ASSERT_EQUAL(b.words, 15);
    CU_ASSERT_TRUE(a.frames > 3 * 22050 && b.frames > 3 * 22050);
}

static void test_no_alloc_in_calls(void)
{
    if (!st_test_alloc_live()) {
        st_test_skip("tts:no_alloc_in_calls", "allocation counting is off under a sanitizer/valgrind");
        return;
    }
    st_tts *t = make("espeak", NULL, 48000);
    if (!t)
        return;
    float buf[480];
    st_tts_chunk info;
    st_tts_word w[8];
    unsigned long before = st_test_rt_allocs();
    st_rt_enter();
    int id = st_tts_push(t, "Counting the allocations, ");
    st_tts_push(t, "there should be none.");
    st_tts_end(t);
    long got = 0;
    for (int i = 0; i < 40; i++) {
        long n = st_tts_read(t, buf, 480, 1.0, &info);
        if (n > 0)
            got += n;
        st_tts_read_words(t, w, 8);
    }
    st_tts_cancel(t);
    st_rt_leave();
    CU_ASSERT_TRUE(id > 0 && got > 0);
    CU_ASSERT_EQUAL(st_test_rt_allocs(), before);
    st_tts_destroy(&t);
}

/* ---- the command line ------------------------------------------------------------ */

static int run_cli(const char *args)
{
    const char *cli = getenv("ST_CLI");
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s %s >/dev/null 2>&1", cli && *cli ? cli : "build/spiketalk", args);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static void test_cli_say(void)
{
    char wav[1024], tsv[1024], args[3072];
    st_test_tmpfile(wav, sizeof wav, "say.wav");
    st_test_tmpfile(tsv, sizeof tsv, "say.tsv");
    snprintf(args, sizeof args, "say \"It's 7:30, time to go.\" -o '%s' --words '%s'", wav, tsv);
    CU_ASSERT_EQUAL_FATAL(run_cli(args), 0);
    st_audio a;
    CU_ASSERT_EQUAL_FATAL(st_audio_read(wav, &a), ST_OK);
    CU_ASSERT_EQUAL(a.sample_rate_hz, 22050);
    double dur = (double)a.frames / a.sample_rate_hz;
    CU_ASSERT_TRUE(dur > 1.0 && dur < 5.0);
    st_audio_free(&a);
    FILE *f = fopen(tsv, "r");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    static const char *const expect[] = {"It's", "7:30", "time", "to", "go"};
    double s, e, prev_end = 0;
    char word[64];
    int n = 0;
    while (fscanf(f, "%lf\t%lf\t%63s\n", &s, &e, word) == 3) {
        if (n < 5)
            CU_ASSERT_STRING_EQUAL(word, expect[n]);
        CU_ASSERT_TRUE(s >= prev_end - 1e-9 && e >= s && e <= dur + 1e-6);
        prev_end = e;
        n++;
    }
    fclose(f);
    CU_ASSERT_EQUAL(n, 5);
    remove(tsv);
    remove(wav);
    /* flite, another rate */
    snprintf(args, sizeof args, "say hello world -e flite -v kal16 -s 16000 -o '%s'", wav);
    CU_ASSERT_EQUAL(run_cli(args), 0);
    CU_ASSERT_EQUAL_FATAL(st_audio_read(wav, &a), ST_OK);
    CU_ASSERT_EQUAL(a.sample_rate_hz, 16000);
    st_audio_free(&a);
    remove(wav);
    /* usage errors and unspeakable text */
    CU_ASSERT_EQUAL(run_cli("say hello"), 2);
    snprintf(args, sizeof args, "say '' -o '%s'", wav);
    CU_ASSERT_EQUAL(run_cli(args), 1);
    snprintf(args, sizeof args, "say hi -v nobody -o '%s'", wav);
    CU_ASSERT_EQUAL(run_cli(args), 1);
    remove(wav);
}

/* A voice with a variant ("en-gb+f3") resolves to that voice and variant,
   every time: the name once pointed into a list espeak-ng had freed. */
static void test_espeak_variant_voice(void)
{
    static const char *const names[] = {"en-gb+f3", "en-us+m2", "en+klatt", "en-gb+f3"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        st_tts *t = make("espeak", names[i], 16000);
        if (!t)
            continue;
        const char *v = st_tts_voice(t);
        const char *plus = strchr(names[i], '+');
        CU_ASSERT_PTR_NOT_NULL(strchr(v, '+'));
        CU_ASSERT_STRING_EQUAL(strchr(v, '+') ? strchr(v, '+') : "", plus);
        st_tts_destroy(&t);
    }
}

/* Frames there are to read now (timeout 0), and whether the end came. */
static long drain_now(st_tts *t, bool *end)
{
    float buf[4096];
    st_tts_chunk info = {0};
    long n, total = 0;
    *end = false;
    while ((n = st_tts_read(t, buf, 4096, 0, &info)) >= 0) {
        total += n;
        if (info.end) {
            *end = true;
            break;
        }
    }
    return total;
}

/*  st_tts_quiesce: the worker gets as far as it can without the reader, so
    what is there to read (and where a cancel stops the engine) depends only
    on what was pushed and read. */
static void test_quiesce(void)
{
    st_tts_params p = st_tts_default_params();
    p.engine = "espeak";
    p.sample_rate_hz = 16000;
    p.queue_s = 5;
    int err;
    st_tts *t = st_tts_new(&p, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    CU_ASSERT_EQUAL(st_tts_quiesce(t, 10.0), ST_OK); /* idle: at once */
    /* a short utterance in a large queue: all of it is there at once */
    bool end;
    CU_ASSERT_TRUE(st_tts_say(t, "yes, i can hear you.") > 0);
    CU_ASSERT_EQUAL(st_tts_quiesce(t, 10.0), ST_OK);
    long all = drain_now(t, &end);
    CU_ASSERT_TRUE(end && all > 8000);
    st_tts_destroy(&t);
    /* a long one in a small queue: the worker fills it and waits */
    p.queue_s = 0.1;
    t = st_tts_new(&p, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    CU_ASSERT_TRUE(st_tts_say(t, "once upon a time, a little paper boat sailed down a rainy "
                                 "street and raced a beetle on a twig.") > 0);
    for (int k = 0; k < 3; k++) {
        CU_ASSERT_EQUAL(st_tts_quiesce(t, 10.0), ST_OK);
        long n = drain_now(t, &end);
        CU_ASSERT_TRUE(n >= 1600 && !end); /* the queue was full: at least 0.1 s */
    }
    CU_ASSERT_EQUAL(st_tts_quiesce(t, 10.0), ST_OK);
    st_tts_cancel(t);
    CU_ASSERT_EQUAL(st_tts_quiesce(t, 10.0), ST_OK); /* the cancelled piece stops */
    CU_ASSERT_EQUAL(drain_now(t, &end), 0);
    /* the stage goes on after it */
    CU_ASSERT_TRUE(st_tts_say(t, "yes") > 0);
    CU_ASSERT_EQUAL(st_tts_quiesce(t, 10.0), ST_OK);
    CU_ASSERT_TRUE(drain_now(t, &end) > 0);
    st_tts_destroy(&t);
}

CU_TestInfo st_tests_tts[] = {
    {"normalize_cases", test_normalize_cases},
    {"normalize_word_map", test_normalize_word_map},
    {"chunker_rule", test_chunker_rule},
    {"incremental_espeak", test_incremental_espeak},
    {"incremental_flite", test_incremental_flite},
    {"words_espeak", test_words_espeak},
    {"words_flite", test_words_flite},
    {"waveform_flite", test_waveform_flite},
    {"seed_draws", test_seed_draws},
    {"resampled_in_one_go", test_resampled_in_one_go},
    {"cancel_espeak", test_cancel_espeak},
    {"cancel_flite", test_cancel_flite},
    {"quiesce", test_quiesce},
    {"bad_text_espeak", test_bad_text_espeak},
    {"bad_text_flite", test_bad_text_flite},
    {"text_capacity", test_text_capacity},
    {"params_errors", test_params_errors},
    {"espeak_variant_voice", test_espeak_variant_voice},
    {"chunk_sizes", test_chunk_sizes},
    {"two_stages", test_two_stages},
    {"no_alloc_in_calls", test_no_alloc_in_calls},
    {"cli_say", test_cli_say},
    CU_TEST_INFO_NULL,
};
