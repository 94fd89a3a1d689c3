/*  cli/bench_tts.c - `spiketalk bench tts`: the synthesizer stage against
    the bare engine libraries and the engines' own command-line tools.

    Per engine voice, in one run:
      - time to first audio: sentences pushed token by token; from the moment
        the first piece is complete (the stage's stamp) to the first chunk
        returned by st_tts_read(); peer: the bare library on the whole
        normalised sentence, from the call to its first samples;
      - real-time factor: the worker's compute time over the audio made;
        peer: the bare library's whole-sentence synthesis;
      - cancel: st_tts_cancel() in the middle of a sentence, right after its
        first chunk: how long the call takes, how long until the engine has
        stopped (the worker left the synthesis), and whether any audio of the
        cancelled sentence came out after it (must be none);
      - intelligibility: the digits zero..nine and yes no up down left right
        on off stop go, spoken through the stage at 16 kHz and by the
        engine's own CLI (`espeak-ng -w`, `flite -o`, resampled to 16 kHz
        with libsamplerate's best converter; cut to the span ours covers,
        and whole), with the same noise draw and the same silence around
        them, each decoded 4 times at 4 offsets against the decoder's frames
        (see "the protocol" below), by pocketsphinx_batch (en-us model, a
        JSGF grammar of the twenty words) in one process: correct counts;
      - the waveform: the same words through the stage at the engine's
        native rate against the CLI's file, sample by sample.

    Touches: a temporary folder (removed at the end unless --keep), the
    engines' CLIs, `spiketalk say` (this binary) and pocketsphinx_batch as
    subprocesses; libc's rand() sequence (srand(1) before each flite word).
    The timing part finishes in under a minute on two idle cores; the
    intelligibility part adds 1-3 minutes (3120 decodings).
*/
#include "cli.h"

#include "audio/audio.h"
#include "tts/tts.h"

#include <espeak-ng/speak_lib.h>
#include <flite/flite.h>
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

cst_voice *register_cmu_us_kal16(const char *voxdir);
cst_voice *register_cmu_us_kal(const char *voxdir);
cst_voice *register_cmu_us_awb(const char *voxdir);
cst_voice *register_cmu_us_rms(const char *voxdir);
cst_voice *register_cmu_us_slt(const char *voxdir);

#define PS_MODEL "/usr/share/pocketsphinx/model/en-us"

static const char *const WORDS20[20] = {"zero", "one", "two", "three", "four", "five", "six",
                                        "seven", "eight", "nine", "yes", "no", "up", "down",
                                        "left", "right", "on", "off", "stop", "go"};

typedef struct {
    const char *engine;
    const char *voice;
} bench_voice;

static const bench_voice VOICES[] = {
    {"espeak", "en-us"},          {"espeak", "en"},            {"espeak", "en-gb-x-rp"},
    {"espeak", "en-gb-scotland"}, {"espeak", "en-029"},        {"espeak", "en-us-nyc"},
    {"espeak", "en-gb-x-gbclan"}, {"espeak", "en-gb-x-gbcwmd"}, {"flite", "kal16"},
    {"flite", "kal"},             {"flite", "awb"},            {"flite", "rms"},
    {"flite", "slt"},
};
#define N_VOICES (sizeof VOICES / sizeof VOICES[0])

/* ---- sentences: what a voice agent says ---------------------------------- */

static const char *const OPENERS[] = {
    "Sure,", "Okay,", "Right,", "Of course.", "Good question.", "Let me check.", "Alright,",
    "Well,", "Yes,", "No problem,",
};
static const char *const BODIES[] = {
    "your meeting with Anna starts at %d:%02d in room %d.",
    "the weather today is sunny with a high of %d degrees and a light breeze from the west.",
    "I found %d restaurants nearby that are still open at this hour.",
    "the package should arrive on the %dth, between %d and %d in the afternoon.",
    "that will cost about $%d.%02d including tax and delivery.",
    "the train to the airport leaves every %d minutes from platform %d.",
    "I have set a timer for %d minutes and I will remind you when it is done.",
    "the battery is at %d%% and should last for roughly %d more hours of normal use.",
    "your flight is delayed by %d minutes, so the new departure time is %d:%02d.",
    "there are %d unread messages in your inbox, and %d of them look important.",
    "the distance to the museum is %d km, which takes about %d minutes by bike.",
    "I could not find anything called that, could you say the name once more please?",
    "the recipe needs %d eggs, %d grams of flour and a cup of warm milk.",
    "your next appointment is with the dentist on Friday at %d:%02d in the morning.",
    "the song you asked for is playing now, and the album has %d more tracks.",
    "it is %d:%02d here, and it is already late in the evening in Tokyo.",
    "the stock went up %d.%d%% today after the company reported strong results.",
    "I turned off the lights in the kitchen and set the heating to %d degrees.",
    "the library closes at %d:%02d tonight, and it opens again tomorrow at nine.",
    "you walked %d steps today, which is %d more than yesterday & a new record.",
};

static void make_sentence(int i, char *out, size_t cap)
{
    char body[256];
    const char *fmt = BODIES[(i * 7) % (int)(sizeof BODIES / sizeof BODIES[0])];
    int a = 3 + (i * 13) % 20, b = (i * 17) % 60, c = 2 + (i * 5) % 9;
    snprintf(body, sizeof body, fmt, a, b, c, b, c);
    if (i % 3 == 0)
        snprintf(out, cap, "%s %s", OPENERS[i % (int)(sizeof OPENERS / sizeof OPENERS[0])], body);
    else {
        snprintf(out, cap, "%s", body);
        out[0] = (char)(out[0] >= 'a' && out[0] <= 'z' ? out[0] - 32 : out[0]);
    }
}

/* ---- statistics ------------------------------------------------------------ */

/* ---- the bare libraries ----------------------------------------------------- */

typedef struct {
    double t0, first;
    long samples;
    int rate;
    bool first_only;             /* stop at the first samples */
} bare_run;

static bare_run *bare_active;

static int bare_espeak_cb(short *wav, int n, espeak_EVENT *ev)
{
    (void)ev;
    if (n > 0 && wav) {
        if (bare_active->first == 0)
            bare_active->first = st_now_s();
        bare_active->samples += n;
    }
    return bare_active->first_only && bare_active->first > 0;
}

static int bare_flite_cb(const cst_wave *w, int start, int size, int last,
                         cst_audio_streaming_info *asi)
{
    (void)start;
    (void)last;
    (void)asi;
    if (bare_active->first == 0)
        bare_active->first = st_now_s();
    bare_active->samples += size;
    bare_active->rate = w->sample_rate;
    return bare_active->first_only ? CST_AUDIO_STREAM_STOP : CST_AUDIO_STREAM_CONT;
}

static cst_voice *flite_voice(const char *name)
{
    if (!strcmp(name, "kal16"))
        return register_cmu_us_kal16(NULL);
    if (!strcmp(name, "kal"))
        return register_cmu_us_kal(NULL);
    if (!strcmp(name, "awb"))
        return register_cmu_us_awb(NULL);
    if (!strcmp(name, "rms"))
        return register_cmu_us_rms(NULL);
    return register_cmu_us_slt(NULL);
}

/*  The bare library on one normalised sentence. Runs only while no stage of
    that engine exists (the stage's engine lock is not taken here). espeak is
    left with the voice, rate and pitch a default stage of `voice` uses, so a
    stage created next finds it as it expects. */
static bool bare_synth(const bench_voice *v, const char *text, bool first_only, double *first_ms,
                       double *rtf)
{
    bare_run r = {.first_only = first_only};
    bare_active = &r;
    if (!strcmp(v->engine, "espeak")) {
        espeak_SetSynthCallback(bare_espeak_cb);
        espeak_SetVoiceByName(v->voice);
        espeak_SetParameter(espeakRATE, espeakRATE_NORMAL, 0);
        espeak_SetParameter(espeakPITCH, 50, 0);
        r.rate = 22050;
        r.t0 = st_now_s();
        espeak_Synth(text, strlen(text) + 1, 0, POS_CHARACTER, 0, espeakCHARS_UTF8, NULL, NULL);
    } else {
        cst_voice *fv = flite_voice(v->voice);
        r.t0 = st_now_s();
        cst_utterance *u = new_utterance();
        utt_set_input_text(u, text);
        utt_init(u, fv);
        cst_audio_streaming_info *asi = new_audio_streaming_info();
        asi->asc = bare_flite_cb;
        feat_set(u->features, "streaming_info", audio_streaming_info_val(asi));
        utt_synth(u);
        delete_utterance(u);
    }
    double dt = st_now_s() - r.t0;
    bare_active = NULL;
    if (r.first == 0 || r.samples == 0 || r.rate <= 0)
        return false;
    *first_ms = (r.first - r.t0) * 1e3;
    *rtf = dt / ((double)r.samples / r.rate);
    return true;
}

/* ---- one voice: latency, RTF, cancel -------------------------------------------- */

typedef struct {
    double ttfa_p50, ttfa_p95, bare_p50, bare_p95, rtf, bare_rtf;
    double cancel_p50, cancel_p95, cancel_call_p95_us, restart_p95;
    int stale;                   /* chunks of a cancelled sentence read after the cancel */
    int runs;
    bool ok;
} voice_figures;

static void push_tokens(st_tts *t, const char *s)
{
    char tok[256];
    const char *q = s;
    while (*q) {
        const char *e = q + 1;
        while (*e && *e != ' ')
            e++;
        size_t n = (size_t)(e - q) < sizeof tok - 1 ? (size_t)(e - q) : sizeof tok - 1;
        memcpy(tok, q, n);
        tok[n] = '\0';
        st_tts_push(t, tok);
        q = e;
    }
}

/* Cancels and waits until the worker has left the engine (at most 2 s). */
static void cancel_and_settle(st_tts *t)
{
    st_tts_cancel(t);
    st_tts_stats st;
    double t0 = st_now_s();
    do
        st_tts_get_stats(t, &st);
    while (st.last_stop_s == 0 && st_now_s() - t0 < 2.0);
}

#define RTF_SENTENCES 10

/*  This (the reader's) thread at SCHED_FIFO `priority`, or back to normal
    scheduling with 0. Returns 0 or an errno. */
static int reader_priority(int priority)
{
    struct sched_param sp = {.sched_priority = priority};
    return pthread_setschedparam(pthread_self(), priority > 0 ? SCHED_FIFO : SCHED_OTHER, &sp);
}

static int measure_voice(const bench_voice *v, int sentences, int rate_hz, int priority,
                         voice_figures *f)
{
    memset(f, 0, sizeof *f);
    st_tts_params p = st_tts_default_params();
    p.engine = v->engine;
    p.voice = v->voice;
    p.sample_rate_hz = rate_hz;
    p.worker_priority = priority;
    int rc;
    st_tts *t = st_tts_new(&p, &rc);
    if (!t)
        return rc;
    size_t cf = st_tts_chunk_frames(t);
    float *buf = malloc(cf * sizeof *buf);
    double *ttfa = calloc((size_t)sentences, sizeof *ttfa);
    double *bare = calloc((size_t)sentences, sizeof *bare);
    double *stop = calloc((size_t)sentences, sizeof *stop);
    double *call = calloc((size_t)sentences, sizeof *call);
    double *restart = calloc((size_t)sentences, sizeof *restart);
    char s[512], s2[512];
    /* warm up: the first synthesis of a voice loads its tables */
    st_tts_result warm;
    if (st_tts_synthesize(t, "Hello there.", &warm) == ST_OK)
        st_tts_result_free(&warm);
    /* Per sentence: first audio as the tokens come, then a cancel right
       after that first chunk (the engine is mid-sentence), then the next
       sentence at once: its first chunk measures how soon the stage is
       ready again. */
    int n = 0;
    if (priority > 0)
        reader_priority(priority);  /* only while timed: the rest is bulk work */
    for (int i = 0; i < sentences; i++) {
        make_sentence(i, s, sizeof s);
        make_sentence(i + 1, s2, sizeof s2);
        push_tokens(t, s);
        int id = st_tts_end(t);
        st_tts_chunk c;
        long k = st_tts_read(t, buf, cf, 5.0, &c);
        double now = st_now_s();
        if (k < 0)
            break;
        st_tts_stats st;
        st_tts_get_stats(t, &st);
        ttfa[n] = (now - st.first_piece_s) * 1e3;
        double c0 = st_now_s();
        st_tts_cancel(t);
        double c1 = st_now_s();
        while (st_tts_read(t, buf, cf, 0, &c) >= 0)
            if (c.utterance == id)
                f->stale++;
        st_tts_say(t, s2);
        k = st_tts_read(t, buf, cf, 5.0, &c);
        double r1 = st_now_s();
        if (k < 0)
            break;
        st_tts_get_stats(t, &st);  /* the stop of the first cancel */
        call[n] = (c1 - c0) * 1e6;
        restart[n] = (r1 - c0) * 1e3;
        stop[n] = (st.last_stop_s > 0 ? st.last_stop_s - c0 : r1 - c0) * 1e3;
        n++;
        cancel_and_settle(t);
    }
    if (priority > 0)
        reader_priority(0);
    /* real-time factor: whole sentences */
    st_tts_stats s0, s1;
    st_tts_get_stats(t, &s0);
    for (int i = 0; i < sentences && i < RTF_SENTENCES; i++) {
        st_tts_result r;
        make_sentence(i, s, sizeof s);
        if (st_tts_synthesize(t, s, &r) == ST_OK)
            st_tts_result_free(&r);
    }
    st_tts_get_stats(t, &s1);
    f->rtf = (s1.compute_s - s0.compute_s) / (s1.audio_s - s0.audio_s);
    st_tts_destroy(&t);
    /* the peer: the bare library, same sentences, normalised the same way */
    double rtf_sum = 0;
    int nb = 0, nr = 0;
    for (int i = 0; i < sentences; i++) {
        char norm[8192];
        make_sentence(i, s, sizeof s);
        if (st_tts_normalize(s, norm, sizeof norm, !strcmp(v->engine, "flite")) < 0)
            continue;
        double fm, r;
        if (bare_synth(v, norm, true, &fm, &r))
            bare[nb++] = fm;
        if (i < RTF_SENTENCES && bare_synth(v, norm, false, &fm, &r)) {
            rtf_sum += r;
            nr++;
        }
    }
    f->runs = n;
    f->ttfa_p50 = cli_percentile_rank(ttfa, n, 50);
    f->ttfa_p95 = cli_percentile_rank(ttfa, n, 95);
    f->bare_p50 = cli_percentile_rank(bare, nb, 50);
    f->bare_p95 = cli_percentile_rank(bare, nb, 95);
    f->bare_rtf = nr ? rtf_sum / nr : NAN;
    f->cancel_p50 = cli_percentile_rank(stop, n, 50);
    f->cancel_p95 = cli_percentile_rank(stop, n, 95);
    f->cancel_call_p95_us = cli_percentile_rank(call, n, 95);
    f->restart_p95 = cli_percentile_rank(restart, n, 95);
    f->ok = n == sentences;
    free(buf);
    free(ttfa);
    free(bare);
    free(stop);
    free(call);
    free(restart);
    return ST_OK;
}

/* ---- intelligibility ----------------------------------------------------------------- */

/*  The protocol. pocketsphinx's answer for a word flips with small changes
    of what surrounds it (the 0.17 s of flite's pause the CLI keeps and the
    stage trims to 50 ms, espeak-ng's 0.3 s of trailing zeros), so that two
    files with the same speech in them can score differently. To measure
    what our chain does to the audio:
    - same noise: flite's clustergen voices (awb, rms, slt) excite unvoiced
      sounds with libc rand(), so every synthesis is one draw of noise; the
      CLI, a fresh process, always makes seed 1's draw. srand(1) before each
      of our syntheses makes the same draw (this process uses rand() for
      nothing else). libespeak-ng carries its glottal phase and pitch
      flutter from one synthesis to the next, so its words come from a
      fresh `spiketalk say` process, like the CLI's.
    - sample by sample: ours at the engine's native rate against the CLI's
      file, aligned (the stage only trims silence at the ends): the largest
      difference over the overlap, and the largest CLI sample left out.
    - same span: ours is read at 16 kHz from the stage (its resampler);
      "cli" is the CLI's file cut to the span ours covers (aligned at the
      native rate), resampled with libsamplerate's best converter; "file" is
      the CLI's whole file, resampled the same way. Each loses the exact
      zeros at its ends and gets INTEL_PAD_MS of zeros at each end instead.
      ours vs cli measures the chain (resampler, joins, gain); ours vs file
      adds the stage's silence trims.
    - same decoder: one pocketsphinx_batch run over all files, its defaults
      (the model's feat.params), a JSGF grammar of the twenty words. */
static bool have_tool(const char *name)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", name);
    return system(cmd) == 0;
}

#define INTEL_PAD_MS 200
#define INTEL_SHIFTS 4                  /* decodings per file, ... */
#define INTEL_SHIFT_STEP 40             /* ... each 2.5 ms later against the frames */
#define INTEL_UNIT "/80"                /* 20 words x INTEL_SHIFTS decodings */
_Static_assert(20 * INTEL_SHIFTS == 80, "INTEL_UNIT");
#define INTEL_FADE_MS 3.0               /* the stage's cut fades (2 ms) and a margin */

/*  Sample comparison of one word: ours (native rate) against the CLI's. */
typedef struct {
    double max_diff;             /* largest |ours - cli| over the aligned overlap,
                                    outside the fades, 16-bit LSB */
    double cut_peak;             /* largest |cli| outside the overlap: what the
                                    stage left out, 16-bit LSB */
    size_t from, to;             /* the overlap in the CLI's samples */
    bool ok;
} wave_cmp;

static long first_above(const float *x, size_t n, float thr)
{
    for (size_t i = 0; i < n; i++)
        if (fabsf(x[i]) > thr)
            return (long)i;
    return -1;
}

static long last_above(const float *x, size_t n, float thr)
{
    for (size_t i = n; i > 0; i--)
        if (fabsf(x[i - 1]) > thr)
            return (long)i - 1;
    return -1;
}

/*  Aligns ours inside the CLI's output (ours[i] ~ cli[i + lag]: the stage
    only drops silence at the ends), then measures the difference. */
static wave_cmp compare_wave(const float *o, size_t no, const float *c, size_t nc, int rate)
{
    wave_cmp r = {0};
    /* a first guess where both cross a tenth of their peak (in the speech:
       flite's pauses hold clicks up to -30 dBFS) */
    float po = 0, pc = 0;
    for (size_t i = 0; i < no; i++)
        po = fmaxf(po, fabsf(o[i]));
    for (size_t i = 0; i < nc; i++)
        pc = fmaxf(pc, fabsf(c[i]));
    long fo = first_above(o, no, po / 10), fc = first_above(c, nc, pc / 10);
    if (fo < 0 || fc < 0)
        return r;
    long lag0 = fc - fo, best = lag0;
    double best_sum = INFINITY;
    for (long lag = lag0 - 64; lag <= lag0 + 64; lag++) {
        long i0 = lag < 0 ? -lag : 0, i1 = (long)no < (long)nc - lag ? (long)no : (long)nc - lag;
        if (i1 - i0 < (long)no / 2)
            continue;
        double s = 0;
        for (long i = i0; i < i1; i++)
            s += fabs((double)o[i] - c[i + lag]);
        s /= (double)(i1 - i0);
        if (s < best_sum) {
            best_sum = s;
            best = lag;
        }
    }
    if (!isfinite(best_sum))
        return r;
    long i0 = best < 0 ? -best : 0, i1 = (long)no < (long)nc - best ? (long)no : (long)nc - best;
    long fade = (long)ceil(INTEL_FADE_MS / 1000.0 * rate);
    for (long i = i0 + fade; i < i1 - fade; i++) {
        double d = fabs((double)o[i] - c[i + best]) * 32768.0;
        if (d > r.max_diff)
            r.max_diff = d;
    }
    r.from = (size_t)(i0 + best);
    r.to = (size_t)(i1 + best);
    for (size_t j = 0; j < nc; j++)
        if (j < r.from || j >= r.to)
            r.cut_peak = fmax(r.cut_peak, fabs((double)c[j]) * 32768.0);
    r.ok = true;
    return r;
}

/*  Writes x (at `rate`) as the decoder gets it, INTEL_SHIFTS times: at
    16 kHz (resampled with the best converter when needed), without the
    samples at its ends that round to 0 in 16 bits, after INTEL_PAD_MS of
    zeros plus k * INTEL_SHIFT_STEP samples (shift k), before INTEL_PAD_MS of
    zeros. The shifts move the word against the decoder's 10 ms frames:
    a word pocketsphinx barely gets flips with a shift of a few samples, so
    one decoding per word is a coin toss for the marginal ones. Appends
    SRC_VOICE_SHIFT_WORD to the control list. */
static int write_for_decoder(const char *dir, const char *src, int vi, const char *word,
                             const float *x, size_t n, int rate, FILE *ctl)
{
    float *y = NULL;
    size_t ny = n;
    int rc = ST_OK;
    if (rate != 16000) {
        size_t cap = (size_t)ceil((double)n * 16000.0 / rate) + 4096;
        y = calloc(cap, sizeof *y);
        if (!y)
            return ST_ERR_NOMEM;
        st_resampler *r = st_resampler_new(rate, 16000, ST_RESAMPLE_BEST, &rc);
        if (!r) {
            free(y);
            return rc;
        }
        size_t used, made;
        st_resampler_process(r, x, n, y, cap, &used, &made);
        ny = made;
        do {
            st_resampler_flush(r, y + ny, cap - ny, &made);
            ny += made;
        } while (made > 0 && ny < cap);
        st_resampler_destroy(&r);
        x = y;
    }
    const float lsb_half = 0.5f / 32768.0f;
    long a = first_above(x, ny, lsb_half), z = last_above(x, ny, lsb_half);
    size_t len = a < 0 ? 0 : (size_t)(z - a + 1), pad = INTEL_PAD_MS * 16;
    size_t cap = len + 2 * pad + INTEL_SHIFTS * INTEL_SHIFT_STEP;
    float *out = calloc(cap, sizeof *out);
    if (!out) {
        free(y);
        return ST_ERR_NOMEM;
    }
    for (int k = 0; k < INTEL_SHIFTS && rc == ST_OK; k++) {
        size_t lead = pad + (size_t)k * INTEL_SHIFT_STEP;
        memset(out, 0, cap * sizeof *out);
        if (len)
            memcpy(out + lead, x + a, len * sizeof *out);
        char path[1200];
        snprintf(path, sizeof path, "%s/%s_%d_%d_%s.wav", dir, src, vi, k, word);
        rc = st_audio_write_wav(path, out, lead + len + pad, 16000, ST_WAV_PCM16);
        fprintf(ctl, "%s_%d_%d_%s\n", src, vi, k, word);
    }
    free(out);
    free(y);
    return rc;
}

/*  Ours for one word: r16 at 16 kHz (for the decoder) and rn at the
    engine's native rate (for the comparison); see the protocol above. */
static bool ours_word(const bench_voice *v, st_tts *t, st_tts *tn, const char *word,
                      const char *dir, st_audio *r16, st_audio *rn)
{
    memset(r16, 0, sizeof *r16);
    memset(rn, 0, sizeof *rn);
    if (strcmp(v->engine, "espeak")) {
        st_tts_result r;
        srand(1);
        if (st_tts_synthesize(t, word, &r) != ST_OK)
            return false;
        *r16 = (st_audio){r.samples, r.frames, r.sample_rate_hz, 1};
        free(r.words);
        srand(1);
        if (st_tts_synthesize(tn, word, &r) != ST_OK) {
            st_audio_free(r16);
            return false;
        }
        *rn = (st_audio){r.samples, r.frames, r.sample_rate_hz, 1};
        free(r.words);
        return true;
    }
    char self[1024], cmd[8192], p16[1024], pn[1024];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        return false;
    self[n] = '\0';
    snprintf(p16, sizeof p16, "%.1000s/say16.wav", dir);
    snprintf(pn, sizeof pn, "%.1000s/sayn.wav", dir);
    snprintf(cmd, sizeof cmd,
             "'%s' say '%s' -v '%s' -s 16000 -o '%s' >/dev/null 2>&1 && "
             "'%s' say '%s' -v '%s' -o '%s' >/dev/null 2>&1",
             self, word, st_tts_voice(t), p16, self, word, st_tts_voice(t), pn);
    bool ok = system(cmd) == 0 && st_audio_read(p16, r16) == ST_OK;
    ok = ok && st_audio_read(pn, rn) == ST_OK;
    if (!ok) {
        st_audio_free(r16);
        st_audio_free(rn);
    }
    unlink(p16);
    unlink(pn);
    return ok;
}

typedef struct {
    double diff, cut;            /* largest over the words */
    int same;                    /* words bit-identical over the overlap */
} voice_wave;

/*  One voice's twenty words, ours and the CLI's: appends the decoder's files
    to the control list, the comparison to *vw. Returns false when something
    failed. */
static bool intel_files(const bench_voice *v, int vi, const char *dir, FILE *ctl, voice_wave *vw)
{
    st_tts_params p = st_tts_default_params();
    p.engine = v->engine;
    p.voice = v->voice;
    p.sample_rate_hz = 16000;
    int rc;
    st_tts *t = st_tts_new(&p, &rc);
    p.sample_rate_hz = 0;
    st_tts *tn = t ? st_tts_new(&p, &rc) : NULL;
    if (!tn) {
        st_tts_destroy(&t);
        return false;
    }
    bool ok = true;
    memset(vw, 0, sizeof *vw);
    for (int w = 0; w < 20 && ok; w++) {
        char raw[1024], cmd[2048];
        st_audio r16, rn, a;
        if (!ours_word(v, t, tn, WORDS20[w], dir, &r16, &rn)) {
            ok = false;
            break;
        }
        ok = write_for_decoder(dir, "ours", vi, WORDS20[w], r16.samples, r16.frames,
                               r16.sample_rate_hz, ctl) == ST_OK;
        st_audio_free(&r16);
        /* the engine's own command line */
        snprintf(raw, sizeof raw, "%s/raw_%d_%s.wav", dir, vi, WORDS20[w]);
        if (!strcmp(v->engine, "espeak"))  /* the voice as the stage resolved it */
            snprintf(cmd, sizeof cmd, "espeak-ng -v '%s' -w '%s' '%s' >/dev/null 2>&1",
                     st_tts_voice(t), raw, WORDS20[w]);
        else
            snprintf(cmd, sizeof cmd, "flite -voice '%s' -o '%s' -t '%s' >/dev/null 2>&1",
                     v->voice, raw, WORDS20[w]);
        if (ok && system(cmd) == 0 && st_audio_read(raw, &a) == ST_OK) {
            wave_cmp wc = {0};
            if (a.sample_rate_hz == rn.sample_rate_hz)
                wc = compare_wave(rn.samples, rn.frames, a.samples, a.frames, a.sample_rate_hz);
            if (wc.ok) {
                vw->diff = fmax(vw->diff, wc.max_diff);
                vw->cut = fmax(vw->cut, wc.cut_peak);
                vw->same += wc.max_diff == 0;
            } else {
                vw->diff = INFINITY;  /* no alignment: not the same signal at all */
                wc.from = 0;
                wc.to = a.frames;
            }
            ok = write_for_decoder(dir, "cli", vi, WORDS20[w], a.samples + wc.from,
                                   wc.to - wc.from, a.sample_rate_hz, ctl) == ST_OK;
            ok = ok && write_for_decoder(dir, "file", vi, WORDS20[w], a.samples, a.frames,
                                         a.sample_rate_hz, ctl) == ST_OK;
            st_audio_free(&a);
            unlink(raw);
        } else
            ok = false;
        st_audio_free(&rn);
    }
    st_tts_destroy(&tn);
    st_tts_destroy(&t);
    return ok;
}

/* Runs pocketsphinx_batch once over the list; counts correct words per
   (source, voice) over all shifts: correct[0] ours, [1] cli, [2] file;
   *unsteady: the files whose answer was right at some shifts only. */
static bool recognize(const char *dir, int correct[3][N_VOICES], int *unsteady)
{
    char cmd[4096], path[1024];
    snprintf(path, sizeof path, "%s/words.jsgf", dir);
    FILE *g = fopen(path, "w");
    if (!g)
        return false;
    fprintf(g, "#JSGF V1.0;\ngrammar words;\npublic <word> = ");
    for (int w = 0; w < 20; w++)
        fprintf(g, "%s%s", w ? " | " : "", WORDS20[w]);
    fprintf(g, " ;\n");
    fclose(g);
    snprintf(cmd, sizeof cmd,
             "pocketsphinx_batch -adcin yes -adchdr 44 -cepext .wav -cepdir '%s' -ctl '%s/ctl' "
             "-hyp '%s/hyp' -hmm " PS_MODEL "/en-us -dict " PS_MODEL "/cmudict-en-us.dict "
             "-jsgf '%s/words.jsgf' -samprate 16000 -logfn /dev/null >/dev/null 2>&1",
             dir, dir, dir, dir);
    if (system(cmd) != 0)
        return false;
    snprintf(path, sizeof path, "%s/hyp", dir);
    FILE *h = fopen(path, "r");
    if (!h)
        return false;
    static int right[3][N_VOICES][20];  /* right answers per file, over the shifts */
    memset(right, 0, sizeof right);
    char line[512];
    while (fgets(line, sizeof line, h)) {
        /* "seven (ours_3_0_seven -1234)" or "(cli_3_2_seven -1234)" */
        char *paren = strrchr(line, '(');
        if (!paren)
            continue;
        char said[64] = "";
        sscanf(line, "%63s", said);
        if (said[0] == '(')
            said[0] = '\0';
        char id[128];
        if (sscanf(paren + 1, "%127s", id) != 1)
            continue;
        int vi, shift;
        char src[8], word[32];
        if (sscanf(id, "%7[a-z]_%d_%d_%31s", src, &vi, &shift, word) != 4 || vi < 0 ||
            vi >= (int)N_VOICES)
            continue;
        int w = 0;
        while (w < 20 && strcmp(word, WORDS20[w]))
            w++;
        if (w == 20 || shift < 0 || shift >= INTEL_SHIFTS || strcmp(said, word))
            continue;
        int k = !strcmp(src, "ours") ? 0 : !strcmp(src, "cli") ? 1 : 2;
        correct[k][vi]++;
        right[k][vi][w]++;
    }
    fclose(h);
    *unsteady = 0;
    for (int k = 0; k < 3; k++)
        for (size_t v = 0; v < N_VOICES; v++)
            for (int w = 0; w < 20; w++)
                *unsteady += right[k][v][w] > 0 && right[k][v][w] < INTEL_SHIFTS;
    return true;
}

/* ---- the command --------------------------------------------------------------------- */

int st_bench_tts(int argc, char **argv)
{
    static const struct option opts[] = {{"sentences", required_argument, 0, 'n'},
                                         {"rate", required_argument, 0, 'r'},
                                         {"quick", no_argument, 0, 'q'},
                                         {"no-intelligibility", no_argument, 0, 'I'},
                                         {"only-intelligibility", no_argument, 0, 'O'},
                                         {"keep", no_argument, 0, 'K'},
                                         {"rt-priority", required_argument, 0, 'P'},
                                         {"json", no_argument, 0, 'J'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    long sentences = 100, rate = 48000, priority = 0;
    bool json = false, quick = false, intel = true, only_intel = false, keep = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'n':
            if (!cli_parse_int("bench tts", "--sentences", optarg, 1, 1000, &sentences))
                return 2;
            break;
        case 'r':
            if (!cli_parse_int("bench tts", "--rate", optarg, 8000, 192000, &rate))
                return 2;
            break;
        case 'q': quick = true; break;
        case 'I': intel = false; break;
        case 'O': only_intel = true; break;
        case 'K': keep = true; break;
        case 'P':
            if (!cli_parse_int("bench tts", "--rt-priority", optarg, 0, 99, &priority))
                return 2;
            break;
        case 'J': json = true; break;
        case 'h':
            printf("usage: spiketalk bench tts [--sentences N] [--rate HZ] [--quick]\n"
                   "                           [--no-intelligibility | --only-intelligibility]\n"
                   "                           [--keep] [--rt-priority N] [--json]\n\n"
                   "For each engine voice (espeak-ng's English voices, flite's five):\n"
                   "  ttfa_p50_ms/ttfa_p95_ms  first audio through the stage: N sentences (default\n"
                   "                           100) pushed token by token, from the moment the\n"
                   "                           first piece is complete to the first chunk read,\n"
                   "                           at the sink rate HZ (default 48000)\n"
                   "  bare_p50_ms/bare_p95_ms  the peer: the bare library on the whole normalised\n"
                   "                           sentence, from the call to its first samples\n"
                   "  rtf, bare_rtf            compute time / audio time (stage incl. resampling),\n"
                   "                           over the first 10 sentences synthesized whole\n"
                   "  cancel_p50_ms/p95_ms     st_tts_cancel() right after a sentence's first chunk\n"
                   "                           until the engine has stopped; cancel_call_us: the\n"
                   "                           call itself (p95; after it no cancelled audio can\n"
                   "                           be read; a note names any voice where some was)\n"
                   "  restart_p95_ms           from the cancel to the first chunk of the next\n"
                   "                           sentence, said at once\n"
                   "  intel_ours/intel_cli     of the twenty words zero..nine, yes, no, up, down,\n"
                   "  intel_file               left, right, on, off, stop, go: how many pocketsphinx\n"
                   "                           recognizes, of 80: each file decoded 4 times, moved\n"
                   "                           by 2.5 ms against the decoder's frames each time\n"
                   "                           (one pocketsphinx_batch run, en-us, JSGF grammar of\n"
                   "                           the twenty), spoken through the stage at\n"
                   "                           16 kHz (ours) and by the engine's CLI (espeak-ng -w,\n"
                   "                           flite -o): its file cut to the span ours covers (cli)\n"
                   "                           and whole (file); the same noise draw for flite's\n"
                   "                           clustergen voices (srand(1), as a fresh CLI), each\n"
                   "                           file's end zeros replaced by 200 ms of zeros\n"
                   "  wave_diff                ours at the engine's native rate against the CLI's\n"
                   "                           file, aligned: the largest difference (16-bit LSB,\n"
                   "                           outside the 2 ms fades; 0 = bit-identical); notes\n"
                   "                           give the identical words and the largest CLI sample\n"
                   "                           the stage left out (its silence trims)\n"
                   "--quick: 20 sentences, espeak en-us and the flite voices only.\n"
                   "--keep: keep the decoder's files and its answers (the folder is named in a\n"
                   "        note).\n"
                   "--rt-priority N: the stage's worker (worker_priority) and this reader thread\n"
                   "        at SCHED_FIFO priority N (default 0: normal scheduling).\n");
            return 0;
        default: return 2;
        }
    }
    if (quick && sentences == 100)
        sentences = 20;
    const char *sched = "normal scheduling";
    if (priority > 0) {
        int e = reader_priority((int)priority);
        if (e) {
            fprintf(stderr, "spiketalk bench tts: --rt-priority %ld: SCHED_FIFO refused: %s\n",
                    priority, strerror(e));
            return 1;
        }
        reader_priority(0);
        sched = "worker and reader at SCHED_FIFO while timed (--rt-priority)";
    }

    double load_start = NAN;
    if (getloadavg(&load_start, 1) < 1)
        load_start = NAN;
    report r;
    report_init(&r, "tts", "synthesizer stage vs the bare engine libraries and CLIs", argc, argv);
    report_col_text(&r, "engine");
    report_col_text(&r, "voice");
    report_col_num(&r, "ttfa_p50_ms", "ms");
    report_col_num(&r, "ttfa_p95_ms", "ms");
    report_col_num(&r, "bare_p50_ms", "ms");
    report_col_num(&r, "bare_p95_ms", "ms");
    report_col_num(&r, "rtf", "");
    report_col_num(&r, "bare_rtf", "");
    report_col_num(&r, "cancel_p50_ms", "ms");
    report_col_num(&r, "cancel_p95_ms", "ms");
    report_col_num(&r, "cancel_call_us", "us");
    report_col_num(&r, "restart_p95_ms", "ms");
    report_col_num(&r, "intel_ours", INTEL_UNIT);
    report_col_num(&r, "intel_cli", INTEL_UNIT);
    report_col_num(&r, "intel_file", INTEL_UNIT);
    report_col_num(&r, "wave_diff", "lsb");

    char dir[1000] = "";
    bool do_intel = intel && have_tool("pocketsphinx_batch") && have_tool("espeak-ng") &&
                    have_tool("flite") && access(PS_MODEL "/en-us", R_OK) == 0;
    FILE *ctl = NULL;
    if (do_intel && st_tmpdir_make(dir, sizeof dir, "spiketalk-bench-tts") == ST_OK) {
        char path[1100];
        snprintf(path, sizeof path, "%s/ctl", dir);
        ctl = fopen(path, "w");
    }
    if (!ctl) {
        st_tmpdir_remove(dir, NULL);
        do_intel = false;
    }

    int rows[N_VOICES];
    bool intel_ok[N_VOICES];
    int correct[3][N_VOICES] = {{0}};
    voice_wave vw[N_VOICES] = {{0}};
    int status = 0, stale_total = 0;
    for (size_t i = 0; i < N_VOICES; i++) {
        rows[i] = -1;
        intel_ok[i] = false;
        const bench_voice *v = &VOICES[i];
        if (quick && !strcmp(v->engine, "espeak") && strcmp(v->voice, "en-us"))
            continue;
        int row = report_row(&r);
        rows[i] = row;
        report_set_text(&r, row, "engine", v->engine);
        report_set_text(&r, row, "voice", v->voice);
        if (only_intel) {
            if (do_intel)
                intel_ok[i] = intel_files(v, (int)i, dir, ctl, &vw[i]);
            continue;
        }
        voice_figures f;
        int rc = measure_voice(v, (int)sentences, (int)rate, (int)priority, &f);
        if (rc) {
            report_note(&r, "%s %s: %s", v->engine, v->voice, st_errmsg());
            status = 1;
            continue;
        }
        report_set_num(&r, row, "ttfa_p50_ms", f.ttfa_p50);
        report_set_num(&r, row, "ttfa_p95_ms", f.ttfa_p95);
        report_set_num(&r, row, "bare_p50_ms", f.bare_p50);
        report_set_num(&r, row, "bare_p95_ms", f.bare_p95);
        report_set_num(&r, row, "rtf", f.rtf);
        report_set_num(&r, row, "bare_rtf", f.bare_rtf);
        report_set_num(&r, row, "cancel_p50_ms", f.cancel_p50);
        report_set_num(&r, row, "cancel_p95_ms", f.cancel_p95);
        report_set_num(&r, row, "cancel_call_us", f.cancel_call_p95_us);
        report_set_num(&r, row, "restart_p95_ms", f.restart_p95);
        if (f.stale)
            report_note(&r, "%s %s: %d chunks of cancelled audio read after the cancel",
                        v->engine, v->voice, f.stale);
        stale_total += f.stale;
        if (!f.ok)
            status = 1;
        if (do_intel)
            intel_ok[i] = intel_files(v, (int)i, dir, ctl, &vw[i]);
    }
    if (ctl)
        fclose(ctl);
    int unsteady = 0;
    if (do_intel && recognize(dir, correct, &unsteady)) {
        int tot[3][2] = {{0}}, tot_n[2] = {0, 0}, same = 0, words = 0;
        double cut_max = 0;
        for (size_t i = 0; i < N_VOICES; i++)
            if (rows[i] >= 0 && intel_ok[i]) {
                report_set_num(&r, rows[i], "intel_ours", correct[0][i]);
                report_set_num(&r, rows[i], "intel_cli", correct[1][i]);
                report_set_num(&r, rows[i], "intel_file", correct[2][i]);
                report_set_num(&r, rows[i], "wave_diff", vw[i].diff);
                cut_max = fmax(cut_max, vw[i].cut);
                same += vw[i].same;
                words += 20;
                int e = strcmp(VOICES[i].engine, "espeak") != 0;
                for (int k = 0; k < 3; k++)
                    tot[k][e] += correct[k][i];
                tot_n[e] += 20 * INTEL_SHIFTS;
            }
        report_note(&r, "intelligibility: correct of 20 words x %d decodings of each file (the "
                        "word %d samples later each time); totals (ours / cli / file): espeak "
                        "%d / %d / %d of %d, flite %d / %d / %d of %d; %d of %d files were right "
                        "at some shifts only",
                    INTEL_SHIFTS, INTEL_SHIFT_STEP, tot[0][0], tot[1][0], tot[2][0], tot_n[0],
                    tot[0][1], tot[1][1], tot[2][1], tot_n[1], unsteady,
                    3 * (tot_n[0] + tot_n[1]) / INTEL_SHIFTS);
        report_note(&r, "waveforms at the native rate: %d of %d words bit-identical to the CLI's "
                        "over the span the stage keeps; it left out CLI samples of at most %.0f "
                        "LSB (flite's lead pause, with its clicks)",
                    same, words, cut_max);
    } else
        report_note(&r, "intelligibility skipped: needs pocketsphinx_batch, pocketsphinx-en-us, "
                        "espeak-ng and flite (tools/deps BENCH_PKGS)%s",
                    intel ? "" : " (--no-intelligibility)");
    if (do_intel && keep)
        report_note(&r, "the decoder's files and answers (hyp) are in %s", dir);
    else if (do_intel)
        st_tmpdir_remove(dir, NULL);
    double load[3] = {0, 0, 0};
    int nload = getloadavg(load, 3);
    report_note(&r, "%ld sentences per voice at %ld Hz, 10 ms chunks, p50/p95 over them, rtf over "
                    "the first %d; load average %.2f -> %.2f on %ld CPUs (busy CPUs delay wake-ups "
                    "up to a 4 ms tick); %s",
                sentences, rate, RTF_SENTENCES, load_start, nload > 0 ? load[0] : NAN,
                sysconf(_SC_NPROCESSORS_ONLN), sched);
    report_note(&r, "bare = the library alone on the whole normalised sentence; ttfa = from the "
                    "first complete piece; stale = cancelled audio read after the cancel (%s)",
                stale_total ? "SOME" : "none");
    report_print(&r, json, stdout);
    return stale_total ? 1 : status;
}
