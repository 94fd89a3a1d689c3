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
        with libsamplerate's best converter), each as its system wrote it,
        recognized by pocketsphinx_batch (en-us model, a JSGF grammar of the
        twenty words) in one process: correct counts for both.

    Touches: a temporary folder (removed at the end), the engines' CLIs and
    pocketsphinx_batch as subprocesses. Tuned to finish the default run in
    under a minute on two cores.
*/
#include "cli.h"

#include "audio/audio.h"
#include "tts/tts.h"

#include <espeak-ng/speak_lib.h>
#include <flite/flite.h>
#include <getopt.h>
#include <math.h>
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

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double *v, int n, double p)
{
    if (n <= 0)
        return NAN;
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    int k = (int)ceil(p * n) - 1;
    if (k < 0)
        k = 0;
    if (k >= n)
        k = n - 1;
    return v[k];
}

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

static int measure_voice(const bench_voice *v, int sentences, int rate_hz, voice_figures *f)
{
    memset(f, 0, sizeof *f);
    st_tts_params p = st_tts_default_params();
    p.engine = v->engine;
    p.voice = v->voice;
    p.sample_rate_hz = rate_hz;
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
    f->ttfa_p50 = pct(ttfa, n, 0.5);
    f->ttfa_p95 = pct(ttfa, n, 0.95);
    f->bare_p50 = pct(bare, nb, 0.5);
    f->bare_p95 = pct(bare, nb, 0.95);
    f->bare_rtf = nr ? rtf_sum / nr : NAN;
    f->cancel_p50 = pct(stop, n, 0.5);
    f->cancel_p95 = pct(stop, n, 0.95);
    f->cancel_call_p95_us = pct(call, n, 0.95);
    f->restart_p95 = pct(restart, n, 0.95);
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

static bool have_tool(const char *name)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", name);
    return system(cmd) == 0;
}

/*  Writes x (at `rate`) resampled to 16 kHz. Not padded: pocketsphinx
    misrecognizes next to long runs of digital zeros, so each file is
    compared as its system wrote it. */
static int write_16k(const char *path, const float *x, size_t n, int rate)
{
    if (rate == 16000)
        return st_audio_write_wav(path, x, n, 16000, ST_WAV_PCM16);
    size_t cap = (size_t)ceil((double)n * 16000.0 / rate) + 4096;
    float *y = calloc(cap, sizeof *y);
    if (!y)
        return ST_ERR_NOMEM;
    int rc;
    st_resampler *r = st_resampler_new(rate, 16000, ST_RESAMPLE_BEST, &rc);
    if (!r) {
        free(y);
        return rc;
    }
    size_t used, made, total = 0;
    st_resampler_process(r, x, n, y, cap, &used, &made);
    total = made;
    do {
        st_resampler_flush(r, y + total, cap - total, &made);
        total += made;
    } while (made > 0 && total < cap);
    st_resampler_destroy(&r);
    rc = st_audio_write_wav(path, y, total, 16000, ST_WAV_PCM16);
    free(y);
    return rc;
}

/* Synthesizes the twenty words for voice v, ours and the CLI's; appends the
   files to the control list. Returns false when something failed. */
static bool intel_files(const bench_voice *v, int vi, const char *dir, FILE *ctl)
{
    st_tts_params p = st_tts_default_params();
    p.engine = v->engine;
    p.voice = v->voice;
    p.sample_rate_hz = 16000;
    int rc;
    st_tts *t = st_tts_new(&p, &rc);
    if (!t)
        return false;
    bool ok = true;
    for (int w = 0; w < 20 && ok; w++) {
        char path[1024], raw[1024], cmd[2048];
        st_tts_result r;
        if (st_tts_synthesize(t, WORDS20[w], &r) != ST_OK) {
            ok = false;
            break;
        }
        snprintf(path, sizeof path, "%s/ours_%d_%s.wav", dir, vi, WORDS20[w]);
        ok = write_16k(path, r.samples, r.frames, r.sample_rate_hz) == ST_OK;
        st_tts_result_free(&r);
        fprintf(ctl, "ours_%d_%s\n", vi, WORDS20[w]);
        /* the engine's own command line */
        snprintf(raw, sizeof raw, "%s/raw_%d_%s.wav", dir, vi, WORDS20[w]);
        if (!strcmp(v->engine, "espeak"))  /* the voice as the stage resolved it */
            snprintf(cmd, sizeof cmd, "espeak-ng -v '%s' -w '%s' '%s' >/dev/null 2>&1",
                     st_tts_voice(t), raw, WORDS20[w]);
        else
            snprintf(cmd, sizeof cmd, "flite -voice '%s' -o '%s' -t '%s' >/dev/null 2>&1",
                     v->voice, raw, WORDS20[w]);
        st_audio a;
        if (ok && system(cmd) == 0 && st_audio_read(raw, &a) == ST_OK) {
            snprintf(path, sizeof path, "%s/cli_%d_%s.wav", dir, vi, WORDS20[w]);
            ok = write_16k(path, a.samples, a.frames, a.sample_rate_hz) == ST_OK;
            st_audio_free(&a);
            unlink(raw);
            fprintf(ctl, "cli_%d_%s\n", vi, WORDS20[w]);
        } else
            ok = false;
    }
    st_tts_destroy(&t);
    return ok;
}

/* Runs pocketsphinx_batch once over the list; counts correct words per
   (source, voice). */
static bool recognize(const char *dir, int ours[], int cli[])
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
    char line[512];
    while (fgets(line, sizeof line, h)) {
        /* "seven (ours_3_seven -1234)" or "(cli_3_seven -1234)" */
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
        int vi;
        char src[8], word[32];
        if (sscanf(id, "%7[a-z]_%d_%31s", src, &vi, word) != 3 || vi < 0 || vi >= (int)N_VOICES)
            continue;
        if (strcmp(said, word))
            continue;
        if (!strcmp(src, "ours"))
            ours[vi]++;
        else
            cli[vi]++;
    }
    fclose(h);
    return true;
}

static void rm_dir(const char *dir)
{
    char cmd[1100];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "spiketalk bench tts: could not remove %s\n", dir);
}

/* ---- the command --------------------------------------------------------------------- */

int st_bench_tts(int argc, char **argv)
{
    static const struct option opts[] = {{"sentences", required_argument, 0, 'n'},
                                         {"rate", required_argument, 0, 'r'},
                                         {"quick", no_argument, 0, 'q'},
                                         {"no-intelligibility", no_argument, 0, 'I'},
                                         {"json", no_argument, 0, 'J'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    long sentences = 100, rate = 48000;
    bool json = false, quick = false, intel = true;
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
        case 'J': json = true; break;
        case 'h':
            printf("usage: spiketalk bench tts [--sentences N] [--rate HZ] [--quick]\n"
                   "                           [--no-intelligibility] [--json]\n\n"
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
                   "                           be read); stale: cancelled audio read afterwards\n"
                   "  restart_p95_ms           from the cancel to the first chunk of the next\n"
                   "                           sentence, said at once\n"
                   "  intel_ours/intel_cli     of the twenty words zero..nine, yes, no, up, down,\n"
                   "                           left, right, on, off, stop, go: how many pocketsphinx\n"
                   "                           recognizes, spoken through the stage and by the\n"
                   "                           engine's CLI (espeak-ng -w, flite -o)\n"
                   "--quick: 20 sentences, espeak en-us and the flite voices only.\n");
            return 0;
        default: return 2;
        }
    }
    if (quick && sentences == 100)
        sentences = 20;

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
    report_col_num(&r, "stale", "");
    report_col_num(&r, "intel_ours", "/20");
    report_col_num(&r, "intel_cli", "/20");

    char dir[] = "/tmp/spiketalk-bench-tts.XXXXXX";
    bool do_intel = intel && have_tool("pocketsphinx_batch") && have_tool("espeak-ng") &&
                    have_tool("flite") && access(PS_MODEL "/en-us", R_OK) == 0;
    FILE *ctl = NULL;
    if (do_intel && mkdtemp(dir)) {
        char path[1100];
        snprintf(path, sizeof path, "%s/ctl", dir);
        ctl = fopen(path, "w");
    }
    if (!ctl)
        do_intel = false;

    int rows[N_VOICES];
    bool intel_ok[N_VOICES];
    int ours[N_VOICES] = {0}, cli[N_VOICES] = {0};
    int status = 0, stale_total = 0;
    for (size_t i = 0; i < N_VOICES; i++) {
        rows[i] = -1;
        intel_ok[i] = false;
        const bench_voice *v = &VOICES[i];
        if (quick && !strcmp(v->engine, "espeak") && strcmp(v->voice, "en-us"))
            continue;
        voice_figures f;
        int rc = measure_voice(v, (int)sentences, (int)rate, &f);
        int row = report_row(&r);
        rows[i] = row;
        report_set_text(&r, row, "engine", v->engine);
        report_set_text(&r, row, "voice", v->voice);
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
        report_set_num(&r, row, "stale", f.stale);
        stale_total += f.stale;
        if (!f.ok)
            status = 1;
        if (do_intel)
            intel_ok[i] = intel_files(v, (int)i, dir, ctl);
    }
    if (ctl)
        fclose(ctl);
    if (do_intel && recognize(dir, ours, cli)) {
        int tot_ours[2] = {0, 0}, tot_cli[2] = {0, 0}, tot_n[2] = {0, 0};
        for (size_t i = 0; i < N_VOICES; i++)
            if (rows[i] >= 0 && intel_ok[i]) {
                report_set_num(&r, rows[i], "intel_ours", ours[i]);
                report_set_num(&r, rows[i], "intel_cli", cli[i]);
                int e = strcmp(VOICES[i].engine, "espeak") != 0;
                tot_ours[e] += ours[i];
                tot_cli[e] += cli[i];
                tot_n[e] += 20;
            }
        /* one voice moves by a word or two from run to run (espeak-ng varies
           between calls): the totals are the steadier comparison */
        report_note(&r, "intelligibility totals: espeak ours %d/%d vs CLI %d/%d; flite ours %d/%d "
                        "vs CLI %d/%d",
                    tot_ours[0], tot_n[0], tot_cli[0], tot_n[0], tot_ours[1], tot_n[1], tot_cli[1],
                    tot_n[1]);
    } else
        report_note(&r, "intelligibility skipped: needs pocketsphinx_batch, pocketsphinx-en-us, "
                        "espeak-ng and flite (tools/deps BENCH_PKGS)%s",
                    intel ? "" : " (--no-intelligibility)");
    if (do_intel)
        rm_dir(dir);
    double load[3] = {0, 0, 0};
    int nload = getloadavg(load, 3);
    report_note(&r, "%ld sentences per voice at %ld Hz, 10 ms chunks, p50/p95 over them, rtf over "
                    "the first %d; load average %.2f -> %.2f on %ld CPUs (busy CPUs delay wake-ups "
                    "up to a 4 ms tick)",
                sentences, rate, RTF_SENTENCES, load_start, nload > 0 ? load[0] : NAN,
                sysconf(_SC_NPROCESSORS_ONLN));
    report_note(&r, "bare = the library alone on the whole normalised sentence; ttfa = from the "
                    "first complete piece; stale = cancelled audio read after the cancel (%s)",
                stale_total ? "SOME" : "none");
    report_print(&r, json, stdout);
    return stale_total ? 1 : status;
}
