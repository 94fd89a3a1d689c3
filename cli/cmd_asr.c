/*  cli/cmd_asr.c - `spiketalk eval sc12|words` and `spiketalk listen`: the
    glue that runs the front end (audio/) and the recognizer (snn/asr.h)
    on files.

    eval sc12 --manifest M   Speech Commands layout (path label12 word
                             speaker): each clip classified (max of the
                             read-out over its loudest second), the word
                             mapped to the 12 labels; per-class accuracy,
                             the confusion matrix, last line
                             `accuracy A (n=N)`.
    eval words --manifest M  layout path text speaker: a one-word text is
                             scored by clip classification (best class other
                             than silence), a longer one by the streaming
                             decoder's words; per-word accuracy, the
                             confusion matrix of one-word clips, last line
                             `wer W (n=N)`.
    eval requests --manifest M  whole requests in running speech (layout
                             path text speaker ends, as `asr-tool data
                             --requests` writes them: ends = each word's
                             end in seconds): the streaming decoder's
                             emitted words against the request's
                             vocabulary words (words outside it are not
                             expected), their substitutions, deletions and
                             insertions (and per word: how often it came
                             out right, not at all, or as another word;
                             a word is charged with a substitution when
                             it is the reference side), and the emission latency after
                             each correctly emitted word's end (p50, p95);
                             last line `wer W (n=N)`.
                             --on P --off P --min K --refractory K set the
                             decision rule (snn/asr.h; also for listen),
                             --tail K pools only each window's last K frames
                             (each defaults to the rule stored in the model).
    listen FILE              streaming: each word as it is decided, with the
                             start and end of its decision window and the
                             time it was decided; then the real-time factor.

    Clip features are made exactly as tools/asr_tool.c makes them for
    training (1 s at 16 kHz, the loudest second of longer clips, a -86 dBFS
    dither), so eval measures the trained model on what it was trained on.
*/
#include "cli.h"

#include "audio/audio.h"
#include "snn/asr.h"
#include "snn/vad.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ASR_DEFAULT_MODEL "models/asr.stm"
#define CLIP 16000


const char *const CLI_SC12[12] = {"yes", "no", "up", "down", "left", "right", "on", "off",
                                  "stop", "go", "_unknown_", "_silence_"};

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Any file -> 16 kHz mono (caller frees *out). */
int cli_asr_read16k(const char *path, float **out, size_t *n)
{
    st_audio a = {0};
    int rc = st_audio_read(path, &a);
    if (rc != ST_OK)
        return rc;
    if (a.sample_rate_hz == ST_PIPELINE_RATE_HZ) {
        *out = a.samples;
        *n = a.frames;
        return ST_OK;
    }
    st_resampler *r = st_resampler_new(a.sample_rate_hz, ST_PIPELINE_RATE_HZ,
                                       ST_RESAMPLE_BEST, &rc);
    if (!r) {
        st_audio_free(&a);
        return rc;
    }
    size_t cap = st_resampler_max_output(r, a.frames) + 4096, used = 0, made = 0, total = 0;
    float *y = malloc(cap * sizeof *y);
    if (!y) {
        st_resampler_destroy(&r);
        st_audio_free(&a);
        return ST_ERR_NOMEM;
    }
    st_resampler_process(r, a.samples, a.frames, y, cap, &used, &made);
    total = made;
    do {
        st_resampler_flush(r, y + total, cap - total, &made);
        total += made;
    } while (made > 0 && total < cap);
    st_resampler_destroy(&r);
    st_audio_free(&a);
    *out = y;
    *n = total;
    return ST_OK;
}

/* A clip as training saw it: 1 s, the loudest second of a longer one, a
   shorter one centred, plus the same tiny dither. */
int cli_asr_clip_features(const float *x, size_t n, st_frontend *fe, float *feat, size_t max_frames,
                          size_t *made)
{
    static float buf[CLIP];
    uint64_t s = 0x2545F4914F6CDD1Dull;
    for (size_t i = 0; i < CLIP; i++) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        buf[i] = (float)(((double)(s >> 11) / 9007199254740992.0 - 0.5) * 2e-4);
    }
    if (n > CLIP) {
        size_t best = 0;
        double best_e = -1;
        for (size_t o = 0; o + CLIP <= n; o += 800) {
            double e = 0;
            for (size_t i = o; i < o + CLIP; i += 4)
                e += x[i] * x[i];
            if (e > best_e) {
                best_e = e;
                best = o;
            }
        }
        for (size_t i = 0; i < CLIP; i++)
            buf[i] += x[best + i];
    } else {
        size_t off = (CLIP - n) / 2;
        for (size_t i = 0; i < n; i++)
            buf[off + i] += x[i];
    }
    st_frontend_reset(fe, 0);
    size_t used = 0;
    return st_frontend_process(fe, buf, CLIP, feat, NULL, max_frames, &used, made);
}

static st_asr *load_model(const char *cmd, const char *path)
{
    int err = 0;
    st_asr *a = st_asr_load(path, &err);
    if (!a)
        cli_fail_lib(cmd, err, path);
    return a;
}

st_frontend *cli_asr_frontend(const st_asr *a, int *err)
{
    st_frontend_params fp = st_frontend_default_params();
    const st_asr_frontend_info *fi = st_asr_frontend(a);
    fp.n_mels = fi->n_mels;
    fp.hop_ms = fi->hop_ms;
    fp.window_ms = fi->window_ms;
    return st_frontend_new(&fp, err);
}

typedef cli_asr_row row;

int cli_asr_read_manifest(const char *cmd, const char *path, bool sc12, bool requests,
                          cli_asr_row **rows_out, size_t *n_out, size_t *bad_out)
{
    *rows_out = NULL;
    *n_out = 0;
    if (bad_out)
        *bad_out = 0;
    FILE *f = fopen(path, "r");
    if (!f) {
        cli_fail(cmd, "cannot open manifest '%s'", path);
        return ST_ERR_IO;
    }
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = 0;
    else
        snprintf(dir, sizeof dir, ".");
    row *rows = NULL;
    size_t n = 0, cap = 0, bad = 0;
    char line[4096];
    long ln = 0;
    while (fgets(line, sizeof line, f)) {
        if (ln++ == 0 || line[0] == '\n')
            continue;
        line[strcspn(line, "\r\n")] = 0;
        char *fld[5] = {0}; /* tab-separated; an empty field stays in its place */
        size_t nfld = 0;
        for (char *c = line; c && nfld < 5; nfld++) {
            fld[nfld] = c;
            if ((c = strchr(c, '\t')))
                *c++ = 0;
        }
        char *p = fld[0], *a = fld[1], *b = sc12 || requests ? fld[2] : NULL;
        char *e = requests ? fld[3] : NULL;
        char *spk = sc12 ? fld[3] : fld[2];
        if (!p || !*p || !a || !*a || (requests && (!e || !*e))) {
            cli_fail(cmd, "%s:%ld: expected %s", path, ln,
                     sc12 ? "path, label12, word, speaker"
                          : requests ? "path, text, speaker, ends" : "path, text, speaker");
            bad++;
            continue;
        }
        /* every end time a number of seconds: eval reads them as such */
        const char *badt = NULL;
        for (const char *q = e; q && *q && !badt;) {
            char *stop;
            double v = strtod(q, &stop);
            if (stop == q || !isfinite(v) || v < 0 || (*stop && *stop != ' '))
                badt = q;
            for (q = stop; *q == ' '; q++)
                ;
        }
        if (badt) {
            cli_fail(cmd, "%s:%ld: ends: '%.*s' is not a time in seconds", path, ln,
                     (int)strcspn(badt, " "), badt);
            bad++;
            continue;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 256;
            row *grown = realloc(rows, cap * sizeof *rows);
            if (!grown) {
                fclose(f);
                cli_asr_free_rows(rows, n);
                cli_fail(cmd, "out of memory reading '%s'", path);
                return ST_ERR_NOMEM;
            }
            rows = grown;
        }
        char full[2048];
        if (p[0] == '/')
            snprintf(full, sizeof full, "%s", p);
        else
            snprintf(full, sizeof full, "%s/%s", dir, p);
        rows[n].path = strdup(full);
        rows[n].label = sc12 ? strdup(a) : NULL;
        rows[n].text = strdup(sc12 ? (b ? b : "") : a);
        rows[n].ends = e ? strdup(e) : NULL;
        rows[n].speaker = strdup(spk ? spk : "");
        rows[n].line = ln;
        n++;
    }
    fclose(f);
    *rows_out = rows;
    *n_out = n;
    if (bad_out)
        *bad_out = bad;
    return ST_OK;
}

void cli_asr_free_rows(cli_asr_row *r, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        free(r[k].path);
        free(r[k].text);
        free(r[k].label);
        free(r[k].ends);
        free(r[k].speaker);
    }
    free(r);
}

int cli_sc12_label(const char *label)
{
    for (int k = 0; k < 12; k++)
        if (!strcmp(CLI_SC12[k], label))
            return k;
    return -1;
}

int cli_sc12_of_word(const char *w)
{
    if (!w || !*w || !strcmp(w, "_silence_"))
        return 11;
    int k = cli_sc12_label(w);
    return k >= 0 && k < 10 ? k : 10;
}

/* Streaming over a whole buffer: the decided words' classes into words[]
   (and the second each was decided at into decided_s, may be NULL). */
static size_t stream_tail; /* the model's tail, or --tail K: st_asr_stream_set_tail */

/* Decision-rule options given on the command line (negative: the model's). */
typedef struct {
    double on, off;
    long min, refractory, tail;
    int lm;                        /* -1 the model's, 0 the decision rule, 1 the beam search */
    double alpha, beta, margin;    /* NAN: the model's (or the defaults) */
    long beam;
} rule_opts;
#define RULE_OPTS_NONE {-1, -1, -1, -1, -1, -1, NAN, NAN, NAN, -1}
static int stream_lm_mode = -1;     /* rule_for: -1 the model's decoder, 0 off, 1 stream_lm */
static st_asr_lm_params stream_lm;

/* The model's stored rule with the options applied; sets stream_tail. */
static st_asr_decider_params rule_for(const st_asr *a, const rule_opts *o)
{
    size_t tail = 0;
    st_asr_decider_params dp = st_asr_stream_params(a, &tail);
    if (o->on >= 0)
        dp.on_threshold = (float)o->on;
    if (o->off >= 0)
        dp.off_threshold = (float)o->off;
    if (o->min >= 0)
        dp.min_frames = (int)o->min;
    if (o->refractory >= 0)
        dp.refractory_frames = (int)o->refractory;
    stream_tail = o->tail >= 0 ? (size_t)o->tail : tail;
    bool has = st_asr_lm(a, &stream_lm) != NULL;
    if (!has)
        stream_lm = st_asr_lm_default_params();
    bool tuned = !isnan(o->alpha) || !isnan(o->beta) || !isnan(o->margin) || o->beam >= 0;
    if (!isnan(o->alpha))
        stream_lm.alpha = (float)o->alpha;
    if (!isnan(o->beta))
        stream_lm.beta = (float)o->beta;
    if (!isnan(o->margin))
        stream_lm.margin = (float)o->margin;
    if (o->beam >= 0)
        stream_lm.beam = (int)o->beam;
    stream_lm_mode = o->lm == 0 ? 0 : o->lm == 1 || tuned ? 1 : -1;
    return dp;
}

/* One decided word into words[] (and decided_s), printed and timed. */
static void take_word(const st_asr *a, const st_asr_event *ev, double decided, int *words,
                      double *decided_s, size_t cap, size_t *got, FILE *print,
                      double *latency_ms, size_t *n_lat, bool at_end)
{
    double rate = ST_PIPELINE_RATE_HZ;
    if (*got < cap) {
        if (decided_s)
            decided_s[*got] = decided;
        words[(*got)++] = ev->word;
    }
    if (print) {
        if (at_end)
            fprintf(print, "%8.3f %8.3f  %-10s (decided at end of input, p %.2f)\n",
                    ev->start_stamp / rate, ev->end_stamp / rate,
                    st_asr_word(a, (size_t)ev->word), ev->score);
        else
            fprintf(print, "%8.3f %8.3f  %-10s (decided at %.3f s, p %.2f)\n",
                    ev->start_stamp / rate, ev->end_stamp / rate,
                    st_asr_word(a, (size_t)ev->word), decided, ev->score);
    }
    if (latency_ms && n_lat && !at_end)
        latency_ms[(*n_lat)++ % 4096] = (decided * rate - (double)ev->end_stamp) * 1000.0 / rate;
}

/* --flush: a beam-search stream decides its pending words at each offset of
   the spiking VAD run on the same frames (what the agent does), or only at
   the end of the input. */
static bool flush_at_vad = true;

static size_t stream_words(const st_asr *a, const st_asr_decider_params *dp, st_frontend *fe,
                           const float *x, size_t n, int *words, double *decided_s, size_t cap,
                           FILE *print, double *latency_ms, size_t *n_lat)
{
    int err = 0;
    st_asr_stream *s = st_asr_stream_new(a, dp, &err);
    if (!s)
        return 0;
    st_asr_stream_set_tail(s, stream_tail);
    if (stream_lm_mode >= 0 &&
        st_asr_stream_set_lm(s, stream_lm_mode ? &stream_lm : NULL) != ST_OK) {
        cli_fail(print ? "listen" : "eval", "%s", st_errmsg()); /* listen prints */
        st_asr_stream_destroy(&s);
        return 0;
    }
    size_t nf = st_asr_features(a), got = 0;
    st_vad_model *vm = NULL;
    st_vad *vad = NULL;
    if (flush_at_vad && st_asr_stream_uses_lm(s) && nf <= ST_VAD_MAX_CHANNELS) {
        double centre[ST_VAD_MAX_CHANNELS]; /* (borrowed by st_vad_model_new only) */
        for (size_t c = 0; c < nf; c++)
            centre[c] = st_frontend_mel_centre_hz(fe, (int)c);
        st_vad_params vp = st_vad_default_params();
        vp.channel_hz = centre;
        vp.frontend_delay_samples = st_frontend_delay_samples(fe);
        if (!(vm = st_vad_model_new(&vp, &err)) || !(vad = st_vad_new(vm, &err)))
            st_vad_model_destroy(&vm); /* no VAD: the words are decided at the end */
    }
    float feat[16 * 256];
    uint64_t stamp[16];
    st_frontend_reset(fe, 0);
    size_t hop = st_frontend_hop_samples(fe);
    double rate = ST_PIPELINE_RATE_HZ;
    st_asr_event ev;
    for (size_t pos = 0; pos < n; pos += hop) {
        size_t len = n - pos < hop ? n - pos : hop, used = 0, made = 0;
        st_frontend_process(fe, x + pos, len, feat, stamp, 16, &used, &made);
        for (size_t j = 0; j < made; j++) {
            st_vad_event ve[1];
            size_t n_ve = 0;
            if (vad && st_vad_process(vad, feat + j * nf, stamp + j, NULL, 1, ve, 1, &n_ve) == ST_OK &&
                n_ve && ve[0].kind == ST_VAD_OFFSET)
                while (st_asr_stream_flush(s, &ev) == 1)
                    if (ev.word != ST_ASR_UNKNOWN)
                        take_word(a, &ev, stamp[j] / rate, words, decided_s, cap, &got, print,
                                  latency_ms, n_lat, false);
            if (st_asr_stream_push(s, feat + j * nf, stamp[j], &ev, NULL) == 1 &&
                ev.word != ST_ASR_UNKNOWN)
                take_word(a, &ev, ev.decided_stamp / rate, words, decided_s, cap, &got, print,
                          latency_ms, n_lat, false);
        }
    }
    while (st_asr_stream_flush(s, &ev) == 1)
        if (ev.word != ST_ASR_UNKNOWN)
            take_word(a, &ev, (double)n / rate, words, decided_s, cap, &got, print, latency_ms,
                      n_lat, true);
    st_vad_destroy(&vad);
    st_vad_model_destroy(&vm);
    st_asr_stream_destroy(&s);
    return got;
}

static size_t edit_distance(const int *a, size_t na, const int *b, size_t nb)
{
    size_t d[65][65];
    if (na > 64)
        na = 64;
    if (nb > 64)
        nb = 64;
    for (size_t i = 0; i <= na; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= nb; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= na; i++)
        for (size_t j = 1; j <= nb; j++) {
            size_t sub = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            size_t del = d[i - 1][j] + 1, ins = d[i][j - 1] + 1;
            d[i][j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
    return d[na][nb];
}

/* `eval requests`: streaming over whole requests; see the file comment. */
static int eval_requests(const st_asr *a, st_frontend *fe, const row *rows, size_t n,
                         const st_asr_decider_params *dp, const char *model)
{
    size_t n_ref_words = 0, n_sub = 0, n_del = 0, n_ins = 0, n_emit = 0, n_lat = 0, done = 0;
    size_t n_requests_ok = 0, n_cap = 4096;
    /* per reference word: how often it came, and came out right or not at all */
    size_t w_ref[ST_ASR_MAX_CLASSES] = {0}, w_ok[ST_ASR_MAX_CLASSES] = {0};
    size_t w_del[ST_ASR_MAX_CLASSES] = {0};
    double *lat = malloc(n_cap * sizeof *lat), audio_s = 0, cpu = 0;
    if (!lat)
        return cli_fail_lib("eval", ST_ERR_NOMEM, "latencies");
    for (size_t k = 0; k < n; k++) {
        int ref[64], hyp[64];
        double end[64], dec[64];
        size_t n_ref = 0, n_words = 0;
        char *t = strdup(rows[k].text), *e = strdup(rows[k].ends), *s1 = NULL, *s2 = NULL;
        char *w = strtok_r(t, " ", &s1), *v = strtok_r(e, " ", &s2);
        for (; w && v && n_ref < 64; w = strtok_r(NULL, " ", &s1), v = strtok_r(NULL, " ", &s2)) {
            char low[64];
            size_t L = 0;
            for (const char *c = w; *c && L < sizeof low - 1; c++)
                if ((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z'))
                    low[L++] = (char)(*c | 0x20);
            low[L] = 0;
            int c = st_asr_find(a, low);
            n_words++;
            if (c >= 2) {
                end[n_ref] = atof(v);
                ref[n_ref++] = c;
            }
        }
        bool mismatch = (w != NULL) != (v != NULL);
        free(t);
        free(e);
        if (mismatch || n_words == 0) {
            cli_fail("eval", "%s: the text and the ends do not have the same number of words",
                     rows[k].path);
            continue;
        }
        float *x = NULL;
        size_t len = 0;
        if (cli_asr_read16k(rows[k].path, &x, &len) != ST_OK) {
            cli_fail_lib("eval", ST_ERR_IO, rows[k].path);
            continue;
        }
        audio_s += (double)len / ST_PIPELINE_RATE_HZ;
        double c0 = cpu_s();
        size_t n_hyp = stream_words(a, dp, fe, x, len, hyp, dec, 64, NULL, NULL, NULL);
        cpu += cpu_s() - c0;
        free(x);
        /* alignment: edit distance with a backtrace (matches first) */
        size_t d[65][65];
        for (size_t i = 0; i <= n_ref; i++)
            d[i][0] = i;
        for (size_t j = 0; j <= n_hyp; j++)
            d[0][j] = j;
        for (size_t i = 1; i <= n_ref; i++)
            for (size_t j = 1; j <= n_hyp; j++) {
                size_t sub = d[i - 1][j - 1] + (ref[i - 1] != hyp[j - 1]);
                size_t del = d[i - 1][j] + 1, ins = d[i][j - 1] + 1;
                d[i][j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
            }
        size_t i = n_ref, j = n_hyp;
        while (i > 0 || j > 0) {
            if (i > 0 && j > 0 && d[i][j] == d[i - 1][j - 1] + (ref[i - 1] != hyp[j - 1])) {
                w_ref[ref[i - 1]]++;
                if (ref[i - 1] == hyp[j - 1]) {
                    w_ok[ref[i - 1]]++;
                    if (n_lat == n_cap) {
                        double *m = realloc(lat, 2 * n_cap * sizeof *lat);
                        if (!m)
                            break;
                        lat = m;
                        n_cap *= 2;
                    }
                    lat[n_lat++] = (dec[j - 1] - end[i - 1]) * 1000.0;
                } else {
                    n_sub++;
                }
                i--, j--;
            } else if (i > 0 && d[i][j] == d[i - 1][j] + 1) {
                w_ref[ref[i - 1]]++;
                w_del[ref[i - 1]]++;
                n_del++, i--;
            } else {
                n_ins++, j--;
            }
        }
        n_requests_ok += d[n_ref][n_hyp] == 0;
        n_ref_words += n_ref;
        n_emit += n_hyp;
        done++;
    }
    printf("%-10s %6s %8s %8s %8s %8s\n", "word", "n", "correct", "deleted", "subst.",
           "correct%");
    for (size_t k = 2; k < st_asr_classes(a) && k < ST_ASR_MAX_CLASSES; k++)
        if (w_ref[k])
            printf("%-10s %6zu %8zu %8zu %8zu %7.1f%%\n", st_asr_word(a, k), w_ref[k], w_ok[k],
                   w_del[k], w_ref[k] - w_ok[k] - w_del[k], 100.0 * w_ok[k] / w_ref[k]);
    printf("requests %zu, vocabulary words %zu, emitted %zu: correct %zu, substituted %zu, "
           "deleted %zu, inserted %zu; whole requests right %zu (%.1f %%)\n",
           done, n_ref_words, n_emit, n_lat, n_sub, n_del, n_ins, n_requests_ok,
           done ? 100.0 * n_requests_ok / done : 0.0);
    printf("emission after the word's end (correct words): p50 %.0f ms, p95 %.0f ms, max %.0f ms "
           "(n=%zu)\n",
           n_lat ? cli_percentile_rank(lat, (int)n_lat, 50) : 0.0,
           n_lat ? cli_percentile_rank(lat, (int)n_lat, 95) : 0.0,
           n_lat ? cli_percentile_rank(lat, (int)n_lat, 100) : 0.0, n_lat);
    bool beam = stream_lm_mode == 1 || (stream_lm_mode < 0 && st_asr_lm(a, NULL));
    if (st_asr_default_pool(a) == ST_ASR_POOL_CTC && beam)
        printf("decoder: CTC beam search of %d with %s (alpha %.2f, beta %.2f), a word emitted "
               "when every hypothesis within %.2f agrees or the best has held it %d frames, "
               "the rest at the end of each request\n",
               stream_lm.beam, st_asr_lm(a, NULL) ? "the model's word bigram" : "no bigram",
               stream_lm.alpha, stream_lm.beta, stream_lm.margin, ST_ASR_BEAM_STABLE_FRAMES);
    else if (st_asr_default_pool(a) == ST_ASR_POOL_CTC)
        printf("decision rule: on %.2f off %.2f min %d refractory %d%s, on each frame's CTC "
               "posteriors\n", dp->on_threshold, dp->off_threshold, dp->min_frames,
               dp->refractory_frames, dp->emit_early ? " early" : "");
    else
        printf("decision rule: on %.2f off %.2f min %d refractory %d%s, pooled over the last %zu "
               "frames\n", dp->on_threshold, dp->off_threshold, dp->min_frames,
               dp->refractory_frames, dp->emit_early ? " early" : "",
               stream_tail ? stream_tail : (size_t)ST_ASR_WINDOW);
    printf("model %s: %.1f s of audio, %.2f s CPU (RTF %.4f)\n", model, audio_s, cpu,
           audio_s > 0 ? cpu / audio_s : 0);
    printf("wer %.4f (n=%zu)\n",
           n_ref_words ? (double)(n_sub + n_del + n_ins) / (double)n_ref_words : 0.0, done);
    free(lat);
    if (done == 0) /* a figure of nothing is not a result */
        return cli_fail("eval", "no request of the manifest could be evaluated (why: above)");
    return 0;
}

/* 1: a decision-rule or beam-search option taken; 0: not one; -1: a bad
   value (said). */
static int decider_option(const char *cmd, int argc, char **argv, int *i, rule_opts *r)
{
    if (*i + 1 >= argc)
        return 0;
    const char *o = argv[*i], *v = argv[*i + 1];
    /* each numeric option: its field and range */
    static const struct {
        const char *name;
        size_t at;
        bool whole;
        double lo, hi;
    } nums[] = {
        {"--on", offsetof(rule_opts, on), false, 0, 1},
        {"--off", offsetof(rule_opts, off), false, 0, 1},
        {"--min", offsetof(rule_opts, min), true, 1, 1000},
        {"--refractory", offsetof(rule_opts, refractory), true, 0, 100000},
        {"--tail", offsetof(rule_opts, tail), true, 0, 100000},
        {"--alpha", offsetof(rule_opts, alpha), false, 0, 10},
        {"--beta", offsetof(rule_opts, beta), false, -20, 20},
        {"--margin", offsetof(rule_opts, margin), false, 0, 50},
        {"--beam", offsetof(rule_opts, beam), true, 1, ST_ASR_BEAM_MAX},
    };
    for (size_t k = 0; k < sizeof nums / sizeof nums[0]; k++) {
        if (strcmp(o, nums[k].name))
            continue;
        char *field = (char *)r + nums[k].at;
        bool ok;
        if (nums[k].whole)
            ok = cli_parse_int(cmd, o, v, (long)nums[k].lo, (long)nums[k].hi, (long *)field);
        else
            ok = cli_parse_double(cmd, o, v, nums[k].lo, nums[k].hi, (double *)field);
        ++*i;
        return ok ? 1 : -1;
    }
    if (!strcmp(o, "--lm")) {
        ++*i;
        r->lm = !strcmp(v, "on") ? 1 : !strcmp(v, "off") ? 0 : -2;
        if (r->lm == -2)
            return cli_fail(cmd, "--lm '%s': use on or off", v), -1;
    }
    else if (!strcmp(o, "--flush")) {
        ++*i;
        if (strcmp(v, "vad") && strcmp(v, "end"))
            return cli_fail(cmd, "--flush '%s': use vad or end", v), -1;
        flush_at_vad = !strcmp(v, "vad");
    }
    else
        return 0;
    return 1;
}

/* --by-speaker: errors over units (clips for sc12, reference words for
   words) per speaker of the manifest. */
typedef struct {
    const char *name; /* the row's; "" when it has none */
    size_t clips, errors, units;
} speaker_tally;

static speaker_tally *tally_of(speaker_tally *t, size_t *n, const char *name)
{
    for (size_t k = 0; k < *n; k++)
        if (!strcmp(t[k].name, name))
            return &t[k];
    t[*n].name = name; /* room for one per row */
    return &t[(*n)++];
}

static double tally_score(const speaker_tally *t, bool sc12)
{
    double e = t->units ? (double)t->errors / (double)t->units : 0;
    return sc12 ? 1 - e : e;
}

/* Worst first: the higher error rate (of clips or of words) first, ties by
   name, so that the order is the same on every system. */
static int worst_first(const void *x, const void *y)
{
    const speaker_tally *s = x, *t = y;
    double a = tally_score(s, false), b = tally_score(t, false);
    return a != b ? (a < b) - (a > b) : strcmp(s->name, t->name);
}

/* How far the figure could move with other speakers like these: the named
   speakers drawn with replacement (a bootstrap over speakers, not clips: one
   speaker's clips fail together), BOOT_N times from a fixed seed, so the
   interval is the same on every run; rows without a speaker stay in every
   draw. The 2.5th and 97.5th percentiles (nearest rank) of the figures. */
#define BOOT_N 2000

static bool speaker_interval(const speaker_tally *t, size_t n, bool sc12, double *lo,
                             double *hi)
{
    size_t *named = malloc(n * sizeof *named), m = 0, base_e = 0, base_u = 0;
    double *v = malloc(BOOT_N * sizeof *v);
    if (!named || !v) {
        free(named);
        free(v);
        return false;
    }
    for (size_t k = 0; k < n; k++) {
        if (t[k].name[0])
            named[m++] = k;
        else
            base_e += t[k].errors, base_u += t[k].units;
    }
    uint64_t s = 0x9E3779B97F4A7C15ull; /* xorshift64 */
    for (int b = 0; b < BOOT_N; b++) {
        size_t e = base_e, u = base_u;
        for (size_t j = 0; j < m; j++) {
            s ^= s << 13, s ^= s >> 7, s ^= s << 17;
            const speaker_tally *x = &t[named[s % m]];
            e += x->errors, u += x->units;
        }
        double r = u ? (double)e / (double)u : 0;
        v[b] = sc12 ? 1 - r : r;
    }
    *lo = cli_percentile_rank(v, BOOT_N, 2.5);
    *hi = cli_percentile_rank(v, BOOT_N, 97.5);
    free(named);
    free(v);
    return true;
}

/* The speakers, worst first, then how the figure spreads over the named
   ones (rows without a speaker, such as Speech Commands' _silence_ clips,
   are listed as "(none)" and left out of the spread). */
static void print_speakers(speaker_tally *t, size_t n, bool sc12)
{
    qsort(t, n, sizeof *t, worst_first);
    printf("\nby speaker (worst first)\n%-16s %6s %9s\n", "speaker", "clips",
           sc12 ? "accuracy" : "wer");
    size_t named = 0, worst = n;
    for (size_t k = 0; k < n; k++) {
        printf("%-16s %6zu %8.1f%%\n", t[k].name[0] ? t[k].name : "(none)", t[k].clips,
               100.0 * tally_score(&t[k], sc12));
        if (t[k].name[0] && named++ == 0)
            worst = k;
    }
    if (named < 2)
        return;
    /* the median named speaker, and the whole figure without the worst one */
    double lo = 0, hi = 0;
    for (size_t k = 0, i = 0; k < n; k++) {
        if (!t[k].name[0])
            continue;
        if (i == (named - 1) / 2)
            lo = tally_score(&t[k], sc12);
        if (i == named / 2)
            hi = tally_score(&t[k], sc12);
        i++;
    }
    size_t err = 0, units = 0;
    for (size_t k = 0; k < n; k++)
        if (k != worst)
            err += t[k].errors, units += t[k].units;
    double rest = units ? (double)err / (double)units : 0;
    printf("%zu speakers: the median speaker %.1f%%; all but the worst (%s, %zu clips) %.1f%%\n",
           named, 100.0 * (lo + hi) / 2, t[worst].name, t[worst].clips,
           100.0 * (sc12 ? 1 - rest : rest));
    if (speaker_interval(t, n, sc12, &lo, &hi))
        printf("other speakers like these (%d draws of %zu speakers with replacement): "
               "95%% of the figures %.1f-%.1f%%\n", BOOT_N, named, 100.0 * lo, 100.0 * hi);
}

static int eval_usage(FILE *out)
{
    fprintf(out, "usage: spiketalk eval sc12|words|requests --manifest M [--model F] [--pool max|mean|ctc]\n"
                 "       [--clips FILE] [--by-speaker]\n"
                 "       [--on P] [--off P] [--min K] [--refractory K] [--tail K]\n"
                 "       [--lm on|off] [--alpha A] [--beta B] [--margin M] [--beam K] [--flush vad|end]\n"
                 "  --pool defaults to the pooling the model was trained with\n"
                 "  sc12   Speech Commands layout (path label12 word speaker): 12-class accuracy\n"
                 "  words  layout path text speaker: word error rate\n"
                 "  requests  layout path text speaker ends: streaming word error rate and\n"
                 "         emission latency after each word's end (--on.. --tail set the decision\n"
                 "         rule; default: the one stored in the model); a ctc model with a word\n"
                 "         bigram decodes with a beam search instead (--lm off: the rule; --alpha\n"
                 "         the bigram's weight, --beta the bonus per word, --margin the score gap\n"
                 "         within which every hypothesis must agree before a word is emitted,\n"
                 "         --beam the hypotheses kept; default: the model's, snn/asr.h); what the\n"
                 "         beam search still weighs is decided at each offset of the spiking VAD\n"
                 "         run on the same frames, as the agent does (--flush end: only at the\n"
                 "         end of each file)\n"
                 "  --clips FILE  (sc12, words) one line per clip there: path, truth, what was\n"
                 "         recognized, right (1 or 0), to find the clips and speakers it misses\n"
                 "  --by-speaker  (sc12, words) accuracy or wer per speaker (the manifest's\n"
                 "         speaker column), worst first, and their spread: how much of the\n"
                 "         figure a few speakers make, and the range in which 95 %% of the\n"
                 "         figures fall when the speakers are drawn again with replacement\n"
                 "         (a bootstrap over speakers, fixed seed: what other speakers like\n"
                 "         these might give)\n"
                 "  the last line is `accuracy A (n=N)` or `wer W (n=N)`\n"
                 "  --model defaults to " ASR_DEFAULT_MODEL " (the word classifier) for sc12 and\n"
                 "  words, to " CLI_AGENT_ASR " (the agent's streaming recognizer) for requests\n");
    return out == stdout ? 0 : 2;
}

int st_cmd_eval(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))
        return eval_usage(argc < 2 ? stderr : stdout);
    bool sc12 = !strcmp(argv[1], "sc12"), requests = !strcmp(argv[1], "requests");
    if (!sc12 && !requests && strcmp(argv[1], "words"))
        return cli_fail("eval", "unknown task '%s' (sc12, words or requests)", argv[1]) + 1;
    rule_opts ro = RULE_OPTS_NONE;
    const char *manifest = NULL, *model = requests ? CLI_AGENT_ASR : ASR_DEFAULT_MODEL;
    const char *clips_path = NULL;
    bool by_speaker = false;
    int pool = -1; /* the model's own */
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--manifest") && i + 1 < argc)
            manifest = argv[++i];
        else if (!strcmp(argv[i], "--clips") && i + 1 < argc && !requests)
            clips_path = argv[++i];
        else if (!strcmp(argv[i], "--by-speaker") && !requests)
            by_speaker = true;
        else if (!strcmp(argv[i], "--model") && i + 1 < argc)
            model = argv[++i];
        else if (!strcmp(argv[i], "--pool") && i + 1 < argc) {
            const char *v = argv[++i];
            if (!strcmp(v, "mean"))
                pool = ST_ASR_POOL_MEAN;
            else if (!strcmp(v, "max"))
                pool = ST_ASR_POOL_MAX;
            else if (!strcmp(v, "ctc"))
                pool = ST_ASR_POOL_CTC;
            else
                return cli_fail("eval", "--pool '%s': use max, mean or ctc", v) + 1;
        } else {
            int r = decider_option("eval", argc, argv, &i, &ro);
            if (r <= 0)
                return r < 0 ? 2 : cli_fail("eval", "unknown option '%s'", argv[i]) + 1;
        }
    }
    if (!manifest)
        return cli_fail("eval", "--manifest M is required") + 1;
    st_asr *a = load_model("eval", model);
    if (!a)
        return 1;
    if (pool < 0)
        pool = (int)st_asr_default_pool(a);
    st_asr_decider_params dp = rule_for(a, &ro);
    int err = 0;
    st_frontend *fe = cli_asr_frontend(a, &err);
    size_t n = 0;
    row *rows = NULL;
    int rc_m = 1; /* the front end failed */
    if (fe)
        rc_m = cli_asr_read_manifest("eval", manifest, sc12, requests, &rows, &n, NULL);
    if (rc_m || n == 0) {
        st_asr_destroy(&a);
        st_frontend_destroy(&fe);
        cli_asr_free_rows(rows, n);
        return rc_m ? 1 : cli_fail("eval", "'%s' lists no clips", manifest);
    }
    if (requests) {
        int rc = eval_requests(a, fe, rows, n, &dp, model);
        cli_asr_free_rows(rows, n);
        st_frontend_destroy(&fe);
        st_asr_destroy(&a);
        return rc;
    }
    FILE *clips = NULL;
    if (clips_path) {
        if (!(clips = fopen(clips_path, "w"))) {
            cli_fail("eval", "--clips: cannot create '%s': %s", clips_path, strerror(errno));
            cli_asr_free_rows(rows, n);
            st_frontend_destroy(&fe);
            st_asr_destroy(&a);
            return 1;
        }
        fprintf(clips, "path\ttruth\trecognized\tright\n");
    }
    size_t C = st_asr_classes(a), nf = st_asr_features(a);
    size_t K = sc12 ? 12 : C; /* confusion over these labels */
    size_t *conf = calloc(K * K, sizeof *conf);
    float *feat = malloc(200 * nf * sizeof *feat), scores[ST_ASR_MAX_CLASSES];
    size_t n_ok = 0, n_err_words = 0, n_ref_words = 0, done = 0, n_short = 0;
    double audio_s = 0, cpu = 0; /* CPU of features + network only, not file reading */
    speaker_tally *spk = by_speaker ? calloc(n, sizeof *spk) : NULL;
    size_t n_spk = 0;
    for (size_t k = 0; k < n; k++) {
        float *x = NULL;
        size_t len = 0;
        if (cli_asr_read16k(rows[k].path, &x, &len) != ST_OK) {
            cli_fail_lib("eval", ST_ERR_IO, rows[k].path);
            continue;
        }
        audio_s += (double)len / ST_PIPELINE_RATE_HZ;
        int ref[64], hyp[64];
        size_t n_ref = 0, n_hyp = 0, clip_err = 0, clip_units = 0;
        if (!sc12) {
            char *t = strdup(rows[k].text), *save = NULL;
            for (char *w = strtok_r(t, " ", &save); w && n_ref < 64; w = strtok_r(NULL, " ", &save)) {
                int c = st_asr_find(a, w);
                ref[n_ref++] = c >= 2 ? c : ST_ASR_UNKNOWN;
            }
            free(t);
        }
        double c0 = cpu_s();
        if (sc12 || n_ref == 1) {
            size_t made = 0;
            n_short += len < CLIP;
            cli_asr_clip_features(x, len, fe, feat, 200, &made);
            int best = st_asr_classify(a, feat, made, (st_asr_pool)pool, scores);
            if (sc12) {
                int truth = cli_sc12_label(rows[k].label);
                int pred = cli_sc12_of_word(st_asr_word(a, (size_t)best));
                if (truth < 0) {
                    cli_fail("eval", "%s: label12 '%s' is not one of the 12", rows[k].path,
                             rows[k].label);
                    free(x);
                    continue;
                }
                conf[(size_t)truth * K + (size_t)pred]++;
                n_ok += truth == pred;
                clip_err = truth != pred;
                clip_units = 1;
                if (clips)
                    fprintf(clips, "%s\t%s\t%s\t%d\n", rows[k].path, CLI_SC12[truth],
                            CLI_SC12[pred], truth == pred);
            } else {
                best = st_asr_best_speech(a, scores);
                hyp[n_hyp++] = best;
                conf[(size_t)ref[0] * K + (size_t)best]++;
                n_ok += best == ref[0];
            }
        } else {
            n_hyp = stream_words(a, &dp, fe, x, len, hyp, NULL, 64, NULL, NULL, NULL);
        }
        cpu += cpu_s() - c0;
        if (!sc12) {
            size_t e = edit_distance(ref, n_ref, hyp, n_hyp);
            n_err_words += e;
            n_ref_words += n_ref;
            clip_err = e;
            clip_units = n_ref;
            if (clips) {
                fprintf(clips, "%s\t%s\t", rows[k].path, rows[k].text);
                for (size_t j = 0; j < n_hyp; j++)
                    fprintf(clips, "%s%s", j ? " " : "", st_asr_word(a, (size_t)hyp[j]));
                fprintf(clips, "\t%d\n", e == 0);
            }
        }
        if (spk) {
            speaker_tally *t = tally_of(spk, &n_spk, rows[k].speaker);
            t->clips++;
            t->errors += clip_err;
            t->units += clip_units;
        }
        done++;
        free(x);
    }
    /* per-class accuracy and the confusion matrix */
    printf("%-10s %6s %8s\n", "class", "n", "accuracy");
    for (size_t r = 0; r < K; r++) {
        size_t tot = 0;
        for (size_t c = 0; c < K; c++)
            tot += conf[r * K + c];
        if (tot)
            printf("%-10s %6zu %7.1f%%\n", sc12 ? CLI_SC12[r] : st_asr_word(a, r), tot,
                   100.0 * conf[r * K + r] / tot);
    }
    printf("\nconfusion (rows: truth, columns: recognized%s)\n%-10s", sc12 ? "" : "; one-word clips", "");
    for (size_t c = 0; c < K; c++) {
        size_t any = 0;
        for (size_t r = 0; r < K; r++)
            any += conf[r * K + c] + conf[c * K + r];
        if (any)
            printf(" %5.5s", sc12 ? CLI_SC12[c] : st_asr_word(a, c));
    }
    printf("\n");
    for (size_t r = 0; r < K; r++) {
        size_t tot = 0, any = 0;
        for (size_t c = 0; c < K; c++) {
            tot += conf[r * K + c];
            any += conf[r * K + c] + conf[c * K + r];
        }
        if (!any)
            continue;
        printf("%-10s", sc12 ? CLI_SC12[r] : st_asr_word(a, r));
        for (size_t c = 0; c < K; c++) {
            size_t anyc = 0;
            for (size_t q = 0; q < K; q++)
                anyc += conf[q * K + c] + conf[c * K + q];
            if (anyc)
                printf(" %5zu", conf[r * K + c]);
        }
        printf("\n");
    }
    if (spk)
        print_speakers(spk, n_spk, sc12);
    free(spk);
    printf("\nmodel %s: %zu classes, %zu weights; %zu clips, %.1f s of audio, %.2f s CPU (RTF %.4f)\n",
           model, C, st_asr_param_count(a), done, audio_s, cpu, audio_s > 0 ? cpu / audio_s : 0);
    if (n_short)
        printf("%zu clips shorter than the 1-s window, each centred in the -86 dBFS dither as "
               "training padded its short clips (models/README.md, \"Clips cut short\")\n",
               n_short);
    if (sc12)
        printf("accuracy %.4f (n=%zu)\n", done ? (double)n_ok / done : 0.0, done);
    else
        printf("wer %.4f (n=%zu)\n", n_ref_words ? (double)n_err_words / n_ref_words : 0.0, done);
    int status = 0;
    if (done == 0)
        status = cli_fail("eval", "no clip of the manifest could be evaluated (why: above)");
    if (clips && fclose(clips) != 0)
        status = cli_fail("eval", "--clips: writing '%s' failed", clips_path);
    free(conf);
    free(feat);
    cli_asr_free_rows(rows, n);
    st_frontend_destroy(&fe);
    st_asr_destroy(&a);
    return status;
}

int st_cmd_listen(int argc, char **argv)
{
    const char *file = NULL, *model = CLI_AGENT_ASR;
    rule_opts ro = RULE_OPTS_NONE;
    int opt;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: spiketalk listen FILE [--model F] [--on P] [--off P] [--min K] [--refractory K]\n"
                   "       [--tail K]  (the decision rule; default: the one stored in the model)\n"
                   "       [--lm on|off] [--alpha A] [--beta B] [--margin M] [--beam K]\n"
                   "       [--flush vad|end]\n"
                   "         (a ctc model with a word bigram decodes with a beam search;\n"
                   "          --lm off: the decision rule; see `spiketalk eval --help`)\n"
                   "  prints each word as it is decided: start_s end_s word (decided at t)\n"
                   "  --model defaults to " CLI_AGENT_ASR ", the agent's streaming recognizer\n");
            return 0;
        } else if (!strcmp(argv[i], "--model") && i + 1 < argc)
            model = argv[++i];
        else if ((opt = decider_option("listen", argc, argv, &i, &ro)) != 0) {
            if (opt < 0)
                return 2;
        } else if (argv[i][0] != '-' && !file)
            file = argv[i];
        else
            return cli_fail("listen", "unknown option '%s'", argv[i]) + 1;
    }
    if (!file)
        return cli_fail("listen", "usage: spiketalk listen FILE [--model F]") + 1;
    st_asr *a = load_model("listen", model);
    if (!a)
        return 1;
    st_asr_decider_params dp = rule_for(a, &ro);
    int err = 0;
    st_frontend *fe = cli_asr_frontend(a, &err);
    float *x = NULL;
    size_t n = 0;
    int rc = fe ? cli_asr_read16k(file, &x, &n) : err;
    if (rc != ST_OK) {
        st_frontend_destroy(&fe);
        st_asr_destroy(&a);
        return cli_fail_lib("listen", rc, file);
    }
    int words[256];
    double lat[4096];
    size_t n_lat = 0;
    double t0 = cpu_s();
    size_t got = stream_words(a, &dp, fe, x, n, words, NULL, 256, stdout, lat, &n_lat);
    double cpu = cpu_s() - t0, dur = (double)n / ST_PIPELINE_RATE_HZ;
    printf("%zu words in %.2f s of audio; CPU %.3f s, real-time factor %.4f\n", got, dur, cpu,
           dur > 0 ? cpu / dur : 0);
    free(x);
    st_frontend_destroy(&fe);
    st_asr_destroy(&a);
    return 0;
}
