/*  audio/mixture.c - speech + noise mixtures with ground truth, for the
    voice-activity benchmark and tests (the "Front end" section of
    audio/audio.h): speech clips from the shared data's manifests (or
    espeak-ng words) placed at random times and SNRs into a background made
    of `_silence_` noise clips (or generated coloured noise).

    May touch: base/, this layer's files and resampler, the file system
    (reads the manifests and clips, writes temporary WAVs for espeak-ng),
    and an espeak-ng child process. Not for the real-time path.

    Tuned for: a few hundred clips and tens of minutes of 16 kHz audio (a
    few hundred MB of float at most); building 200 utterances takes about a
    second, mostly FLAC decoding.
*/
#include "audio.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define RATE ST_PIPELINE_RATE_HZ
#define MAX_FIELD 64

st_mix_params st_mix_default_params(void)
{
    return (st_mix_params){
        .data_dir = NULL,
        .seed = 1,
        .split = ST_MIX_TEST,
        .sources = ST_MIX_SPEECH_COMMANDS | ST_MIX_FSDD | ST_MIX_AN4,
        .n_utterances = 200,
        .snr_min_db = 0,
        .snr_max_db = 20,
        .gap_min_s = 1.5,
        .gap_max_s = 3,
        .lead_s = 3,
        .noise_min_dbfs = -55,
        .noise_max_dbfs = -35,
        .stretch_min_s = 8,
        .stretch_max_s = 20,
        .crossfade_s = 1,
        .truth_below_peak_db = 20,
        .noise_rate_max = 1,
        .noise_tilt_max = 0,
    };
}

/* ---- random numbers: splitmix64, the same on every platform ---------------- */

static uint64_t next_u64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static double uniform(uint64_t *s)
{
    return (double)(next_u64(s) >> 11) * (1.0 / 9007199254740992.0);
}

static double uniform_in(uint64_t *s, double lo, double hi)
{
    return lo + (hi - lo) * uniform(s);
}

static uint64_t fnv1a(const char *str)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (; *str; str++) {
        h ^= (unsigned char)*str;
        h *= 0x100000001b3ULL;
    }
    return h;
}

/* TUNE takes the even hashes, TEST the odd ones. */
static bool in_split(st_mix_split split, const char *key)
{
    if (split == ST_MIX_ALL)
        return true;
    bool odd = (fnv1a(key) >> 17) & 1;
    return split == ST_MIX_TEST ? odd : !odd;
}

/* ---- the clip lists ---------------------------------------------------------- */

typedef struct {
    char *path;                 /* full path, or the text to speak (espeak) */
    char speaker[32];
    char text[MAX_FIELD];
    char voice[32];             /* espeak: voice, speed and pitch */
    int speed, pitch;
    int source;                 /* ST_MIX_* bit */
} clip_ref;

typedef struct {
    clip_ref *v;
    size_t n, cap;
} clip_list;

static void clip_list_free(clip_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i].path);
    free(l->v);
    memset(l, 0, sizeof *l);
}

static int clip_list_add(clip_list *l, const clip_ref *c)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 256;
        clip_ref *v = realloc(l->v, cap * sizeof *v);
        if (!v)
            return st_error(ST_ERR_NOMEM, "mixtures: out of memory for the clip list");
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = *c;
    return ST_OK;
}

static const char *source_name(int source)
{
    switch (source) {
    case ST_MIX_SPEECH_COMMANDS: return "speech_commands";
    case ST_MIX_FSDD: return "fsdd";
    case ST_MIX_AN4: return "an4";
    default: return "espeak";
    }
}

static void copy_field(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src ? src : "");
}

/* Reads `<data_dir>/speech/<set>/manifest.tsv`. Speech rows go to `speech`
   (those of the split), speech_commands' `_silence_` rows to `noise` (those
   of the split). A missing manifest is not an error (*found = false). */
static int read_manifest(const char *data_dir, int source, st_mix_split split, clip_list *speech,
                         clip_list *noise, bool *found)
{
    const char *set = source_name(source);
    char dir[4096], path[4200];
    snprintf(dir, sizeof dir, "%s/speech/%s", data_dir, set);
    snprintf(path, sizeof path, "%s/manifest.tsv", dir);
    *found = false;
    FILE *f = fopen(path, "r");
    if (!f)
        return ST_OK;
    *found = true;
    char line[8192];
    int col_path = -1, col_speaker = -1, col_text = -1, col_word = -1, col_label = -1;
    int rc = ST_OK;
    long lineno = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        line[strcspn(line, "\r\n")] = '\0';
        char *fields[16];
        int nf = 0;
        for (char *s = line, *tab; nf < 16; s = tab + 1) {
            fields[nf++] = s;
            tab = strchr(s, '\t');
            if (!tab)
                break;
            *tab = '\0';
        }
        if (lineno == 1) {
            for (int k = 0; k < nf; k++) {
                if (!strcmp(fields[k], "path")) col_path = k;
                else if (!strcmp(fields[k], "speaker")) col_speaker = k;
                else if (!strcmp(fields[k], "text")) col_text = k;
                else if (!strcmp(fields[k], "word")) col_word = k;
                else if (!strcmp(fields[k], "label12")) col_label = k;
            }
            if (col_path < 0) {
                rc = st_error(ST_ERR_FORMAT, "manifest '%s': no 'path' column in the header", path);
                break;
            }
            continue;
        }
        if (nf <= col_path || !*fields[col_path])
            continue;
        const char *label = col_label >= 0 && col_label < nf ? fields[col_label] : "";
        const char *speaker = col_speaker >= 0 && col_speaker < nf ? fields[col_speaker] : "";
        const char *text = col_text >= 0 && col_text < nf ? fields[col_text]
                           : col_word >= 0 && col_word < nf && *fields[col_word] ? fields[col_word]
                                                                                 : label;
        clip_ref c = {.source = source};
        size_t plen = strlen(dir) + strlen(fields[col_path]) + 2;
        c.path = malloc(plen);
        if (!c.path) {
            rc = st_error(ST_ERR_NOMEM, "mixtures: out of memory reading '%s'", path);
            break;
        }
        snprintf(c.path, plen, "%s/%s", dir, fields[col_path]);
        copy_field(c.speaker, sizeof c.speaker, speaker);
        copy_field(c.text, sizeof c.text, text);
        bool is_noise = !strcmp(label, "_silence_");
        clip_list *dst = is_noise ? noise : speech;
        const char *key = is_noise ? fields[col_path] : speaker;
        if (!dst || !in_split(split, key)) {
            free(c.path);
            continue;
        }
        rc = clip_list_add(dst, &c);
        if (rc != ST_OK) {
            free(c.path);
            break;
        }
    }
    fclose(f);
    return rc;
}

/* ---- audio: loading at 16 kHz, espeak-ng ------------------------------------- */

typedef struct {
    float *x;
    size_t n;
} buf;

static int to_16k(st_audio *a, buf *out)
{
    if (a->sample_rate_hz == RATE) {
        out->x = a->samples;
        out->n = a->frames;
        a->samples = NULL;
        return ST_OK;
    }
    int err;
    st_resampler *r = st_resampler_new(a->sample_rate_hz, RATE, ST_RESAMPLE_MEDIUM, &err);
    if (!r)
        return err;
    size_t cap = st_resampler_max_output(r, a->frames) + 4096, made = 0, used = 0, m = 0;
    float *y = malloc(cap * sizeof *y);
    if (!y) {
        st_resampler_destroy(&r);
        return st_error(ST_ERR_NOMEM, "mixtures: out of memory resampling");
    }
    int rc = st_resampler_process(r, a->samples, a->frames, y, cap, &used, &made);
    while (rc == ST_OK) {
        rc = st_resampler_flush(r, y + made, cap - made, &m);
        if (rc != ST_OK || m == 0)
            break;
        made += m;
    }
    st_resampler_destroy(&r);
    if (rc != ST_OK) {
        free(y);
        return rc;
    }
    out->x = y;
    out->n = made;
    return ST_OK;
}

static int load_16k(const char *path, buf *out)
{
    st_audio a = {0};
    int rc = st_audio_read(path, &a);
    if (rc != ST_OK)
        return rc;
    rc = to_16k(&a, out);
    st_audio_free(&a);
    return rc;
}

/* Speaks c->path (the text) with espeak-ng into a temporary WAV and loads it. */
static int espeak_16k(const clip_ref *c, buf *out)
{
    const char *tmp = getenv("TMPDIR");
    char wav[4096];
    snprintf(wav, sizeof wav, "%s/spiketalk-mix-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    int fd = mkstemp(wav);
    if (fd < 0)
        return st_error(ST_ERR_IO, "mixtures: cannot make a temporary file in %s: %s",
                        tmp && *tmp ? tmp : "/tmp", strerror(errno));
    close(fd);
    char speed[16], pitch[16];
    snprintf(speed, sizeof speed, "%d", c->speed);
    snprintf(pitch, sizeof pitch, "%d", c->pitch);
    char *argv[] = {"espeak-ng", "-w", wav, "-v", (char *)c->voice, "-s", speed,
                    "-p", pitch, "--", c->path, NULL};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
    pid_t pid;
    int e = posix_spawnp(&pid, "espeak-ng", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    int rc = ST_OK;
    if (e != 0) {
        rc = st_error(ST_ERR_NOT_FOUND, "mixtures: cannot run espeak-ng: %s", strerror(e));
    } else {
        int status = 0;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            rc = st_error(ST_ERR_IO, "mixtures: espeak-ng failed on '%s' (voice %s)", c->path,
                          c->voice);
        else
            rc = load_16k(wav, out);
    }
    unlink(wav);
    return rc;
}

/* ---- truth ------------------------------------------------------------------- */

typedef struct {
    size_t on, off;   /* truth, in clip samples: [on, off) */
    double power;     /* mean power over [on, off) */
    uint32_t n_pauses;/* gaps of ST_MIX_PAUSE_MS or more between bursts inside it */
    size_t pause_on[ST_MIX_MAX_PAUSES], pause_off[ST_MIX_MAX_PAUSES];
} truth;

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The speech band for the truth and the SNR: a 4th-order Butterworth
   high-pass at 100 Hz (two biquads), so that a clip's rumble, hum or DC
   (some Speech Commands clips carry handling noise 10 dB over the word,
   under 100 Hz) neither places the truth nor counts as speech power.
   y[i] = x[i] filtered from rest; y may be x. */
static void speech_band(const float *x, size_t n, float *y)
{
    static const double q[2] = {0.54119610, 1.30656296};
    const double w = tan(M_PI * 100.0 / RATE);
    for (int s = 0; s < 2; s++) {
        double k = 1 / (1 + w / q[s] + w * w);
        double b0 = k, b1 = -2 * k, b2 = k, a1 = 2 * (w * w - 1) * k,
               a2 = (1 - w / q[s] + w * w) * k;
        double z1 = 0, z2 = 0;
        const float *in = s == 0 ? x : y;
        for (size_t i = 0; i < n; i++) {
            double v = in[i], o = b0 * v + z1;
            z1 = b1 * v - a1 * o + z2;
            z2 = b2 * v - a2 * o;
            y[i] = (float)o;
        }
    }
}

#define TRUTH_BRIDGE_MS 20   /* gaps this short join windows into one burst */
#define TRUTH_BURST_MS 30    /* a burst this long (first to last window) is speech */
#define TRUTH_ATTACH_MS 150  /* a shorter burst counts only this close to speech */

/* Speech is where the speech band's power in 5 ms windows (centred, every
   1 ms) is within below_db of its loudest 20 ms window, in bursts: windows
   over the threshold with gaps under 20 ms between them. A burst spanning
   30 ms or more is speech; a shorter one (a click, a lip smack, a plosive's
   release) counts only within 150 ms of speech, so an isolated click half a
   second before the word does not place its onset. Returns false for a clip
   without such a burst, or whose own noise is not clearly under the
   threshold: the 20 ms windows wholly outside the speech (when there are 10
   or more) must have their 90th percentile 10 dB under it, so a hum that
   crosses it does not pass for the word; and so must the windows before the
   onset, of which there must be 25 ms (a clip that starts in speech or in
   its own loud noise has no onset to place). */
static bool find_truth(const float *x, size_t n, double below_db, truth *t)
{
    const size_t w20 = RATE / 50, w5 = RATE / 200, step = RATE / 1000;
    if (n < 2 * w20)
        return false;
    double *cum = malloc((n + 1) * sizeof *cum);
    double *outside = malloc((n / step + 1) * sizeof *outside);
    float *y = malloc(n * sizeof *y);
    if (!cum || !outside || !y) {
        free(cum);
        free(outside);
        free(y);
        return false;
    }
    speech_band(x, n, y);
    cum[0] = 0;
    for (size_t i = 0; i < n; i++)
        cum[i + 1] = cum[i] + (double)y[i] * y[i];
    double peak = 0;
    for (size_t s = 0; s + w20 <= n; s += step) {
        double p = (cum[s + w20] - cum[s]) / w20;
        peak = p > peak ? p : peak;
    }
    double thr = peak * pow(10.0, -below_db / 10.0);
    /* bursts: [b_on, b_off) in window positions (ms); the first and last
       speech bursts, and the short ones attached to them */
    const size_t bridge = TRUTH_BRIDGE_MS, longb = TRUTH_BURST_MS, attach = TRUTH_ATTACH_MS;
    size_t nb = 0, cap = 64;
    size_t(*b)[2] = malloc(cap * sizeof *b);
    bool ok = b != NULL;
    for (size_t s = 0, pos = 0; ok && peak > 0 && s + w5 <= n; s += step, pos++) {
        if ((cum[s + w5] - cum[s]) / w5 <= thr)
            continue;
        if (nb && pos - b[nb - 1][1] < bridge) {
            b[nb - 1][1] = pos + 1;
            continue;
        }
        if (nb == cap) {
            size_t(*g)[2] = realloc(b, 2 * cap * sizeof *b);
            if (!g) {
                ok = false;
                break;
            }
            b = g;
            cap *= 2;
        }
        b[nb][0] = pos;
        b[nb][1] = pos + 1;
        nb++;
    }
    size_t first = nb, last = nb;
    for (size_t k = 0; ok && k < nb; k++)
        if (b[k][1] - b[k][0] >= longb) {
            if (first == nb)
                first = k;
            last = k;
        }
    ok = ok && first < nb;
    size_t on = 0, off = 0;
    if (ok) {
        size_t bo = b[first][0], bf = b[last][1];
        for (size_t k = first; k-- > 0 && b[k][1] + attach >= bo;)
            bo = b[k][0];
        for (size_t k = last + 1; k < nb && b[k][0] <= bf + attach; k++)
            bf = b[k][1];
        on = bo * step + w5 / 2;
        off = (bf - 1) * step + w5 / 2 + 1;
        ok = on < off && off <= n;
        /* the pauses between the bursts inside (between words) */
        t->n_pauses = 0;
        for (size_t k = 0; k + 1 < nb && t->n_pauses < ST_MIX_MAX_PAUSES; k++) {
            if (b[k][1] < bo || b[k + 1][0] > bf || b[k + 1][0] - b[k][1] < ST_MIX_PAUSE_MS)
                continue;
            t->pause_on[t->n_pauses] = (b[k][1] - 1) * step + w5 / 2 + 1;
            t->pause_off[t->n_pauses++] = b[k + 1][0] * step + w5 / 2;
        }
    }
    free(b);
    /* what comes before the onset places it: 25 ms or more of it, clean */
    ok = ok && on >= w20 + w5;
    if (ok) {
        size_t no = 0;
        for (size_t s = 0; s + w20 <= on; s += step)
            outside[no++] = (cum[s + w20] - cum[s]) / w20;
        qsort(outside, no, sizeof *outside, cmp_double);
        ok = no > 0 && outside[(no * 9) / 10] <= thr * 0.1;
    }
    if (ok) {
        size_t no = 0;
        for (size_t s = 0; s + w20 <= n; s += step)
            if (s + w20 <= on || s >= off)
                outside[no++] = (cum[s + w20] - cum[s]) / w20;
        if (no >= 10) {
            qsort(outside, no, sizeof *outside, cmp_double);
            ok = outside[(no * 9) / 10] <= thr * 0.1;
        }
    }
    if (ok) {
        t->on = on;
        t->off = off;
        t->power = (cum[off] - cum[on]) / (double)(off - on);
    }
    free(cum);
    free(outside);
    free(y);
    return ok;
}

/* ---- noise ------------------------------------------------------------------- */

#define SIG_BANDS 8
#define NEIGHBOURS 3

typedef struct {
    buf *clips;       /* unit RMS */
    size_t n;
    bool synthetic;
    size_t (*near)[NEIGHBOURS]; /* per clip, the clips most alike in spectrum */
} noise_pool;

static void noise_pool_free(noise_pool *np)
{
    for (size_t i = 0; i < np->n; i++)
        free(np->clips[i].x);
    free(np->clips);
    free(np->near);
    memset(np, 0, sizeof *np);
}

/* A clip's spectral shape: its mean log-mel energy in SIG_BANDS groups of
   the front end's channels, less their mean (clips are unit RMS anyway). */
static void signature(const buf *b, st_frontend *fe, float *feat, size_t cap, double *sig)
{
    size_t used, made, nf = 0;
    double acc[40] = {0};
    st_frontend_reset(fe, 0);
    for (size_t at = 0; at < b->n; at += used) {
        st_frontend_process(fe, b->x + at, b->n - at, feat, NULL, cap, &used, &made);
        for (size_t f = 0; f < made; f++, nf++)
            for (int c = 0; c < 40; c++)
                acc[c] += feat[f * 40 + (size_t)c];
        if (!used)
            break;
    }
    double mean = 0;
    for (int k = 0; k < SIG_BANDS; k++) {
        sig[k] = 0;
        for (int c = k * 40 / SIG_BANDS; c < (k + 1) * 40 / SIG_BANDS; c++)
            sig[k] += acc[c] / (nf ? (double)nf : 1.0) / (40 / SIG_BANDS);
        mean += sig[k] / SIG_BANDS;
    }
    for (int k = 0; k < SIG_BANDS; k++)
        sig[k] -= mean;
}

/* For every clip, its NEIGHBOURS nearest clips by spectral shape: a stretch
   goes on with one of them, so a background keeps its character without
   repeating one second of it. */
static int find_neighbours(noise_pool *np)
{
    st_frontend_params fp = st_frontend_default_params();
    int err;
    st_frontend *fe = st_frontend_new(&fp, &err);
    double *sig = malloc(np->n * SIG_BANDS * sizeof *sig);
    float *feat = malloc(64 * 40 * sizeof *feat);
    np->near = malloc(np->n * sizeof *np->near);
    if (!fe || !sig || !feat || !np->near) {
        st_frontend_destroy(&fe);
        free(sig);
        free(feat);
        return fe ? st_error(ST_ERR_NOMEM, "mixtures: out of memory") : err;
    }
    for (size_t i = 0; i < np->n; i++)
        signature(&np->clips[i], fe, feat, 64, sig + i * SIG_BANDS);
    for (size_t i = 0; i < np->n; i++) {
        double best[NEIGHBOURS];
        for (int k = 0; k < NEIGHBOURS; k++) {
            best[k] = INFINITY;
            np->near[i][k] = i;
        }
        for (size_t j = 0; j < np->n; j++) {
            if (j == i)
                continue;
            double d = 0;
            for (int k = 0; k < SIG_BANDS; k++) {
                double e = sig[i * SIG_BANDS + k] - sig[j * SIG_BANDS + k];
                d += e * e;
            }
            for (int k = 0; k < NEIGHBOURS; k++)
                if (d < best[k]) {
                    for (int m = NEIGHBOURS - 1; m > k; m--) {
                        best[m] = best[m - 1];
                        np->near[i][m] = np->near[i][m - 1];
                    }
                    best[k] = d;
                    np->near[i][k] = j;
                    break;
                }
        }
    }
    st_frontend_destroy(&fe);
    free(sig);
    free(feat);
    return ST_OK;
}

static bool normalise_unit_rms(buf *b)
{
    double e = 0;
    for (size_t i = 0; i < b->n; i++)
        e += (double)b->x[i] * b->x[i];
    if (!(e > 0) || b->n < RATE / 4)
        return false;
    float g = (float)(1.0 / sqrt(e / b->n));
    for (size_t i = 0; i < b->n; i++)
        b->x[i] *= g;
    return true;
}

/* Generated coloured noise, 2 s clips: white, pink (Kellet's filter), brown
   (leaky integral), and band-limited (a two-pole resonator) noise, each
   with a slow level wander of a few dB. */
static int synth_noise_pool(uint64_t seed, noise_pool *np)
{
    const size_t n_clips = 16, len = 2 * RATE;
    np->clips = calloc(n_clips, sizeof *np->clips);
    if (!np->clips)
        return st_error(ST_ERR_NOMEM, "mixtures: out of memory for noise");
    uint64_t s = seed ^ 0x5eed0f4015eULL;
    for (size_t k = 0; k < n_clips; k++) {
        float *x = malloc(len * sizeof *x);
        if (!x)
            return st_error(ST_ERR_NOMEM, "mixtures: out of memory for noise");
        np->clips[np->n++] = (buf){x, len};
        int type = (int)(k % 4);
        double b0 = 0, b1 = 0, b2 = 0, b3 = 0, b4 = 0, b5 = 0, b6 = 0, y1 = 0, y2 = 0;
        double fc = uniform_in(&s, 300, 3000), bw = uniform_in(&s, 200, 1500);
        double r = exp(-M_PI * bw / RATE), cth = cos(2 * M_PI * fc / RATE);
        double wander_hz = uniform_in(&s, 0.2, 1.0), depth = uniform_in(&s, 0.05, 0.3);
        for (size_t i = 0; i < len; i++) {
            double w = uniform(&s) * 2 - 1, y;
            switch (type) {
            case 0: y = w; break;
            case 1:
                b0 = 0.99886 * b0 + w * 0.0555179;
                b1 = 0.99332 * b1 + w * 0.0750759;
                b2 = 0.96900 * b2 + w * 0.1538520;
                b3 = 0.86650 * b3 + w * 0.3104856;
                b4 = 0.55000 * b4 + w * 0.5329522;
                b5 = -0.7616 * b5 - w * 0.0168980;
                y = b0 + b1 + b2 + b3 + b4 + b5 + b6 + w * 0.5362;
                b6 = w * 0.115926;
                break;
            case 2:
                b0 = 0.995 * b0 + w;
                y = b0;
                break;
            default:
                y = w + 2 * r * cth * y1 - r * r * y2;
                y2 = y1;
                y1 = y;
                break;
            }
            x[i] = (float)(y * (1 + depth * sin(2 * M_PI * wander_hz * i / RATE)));
        }
        normalise_unit_rms(&np->clips[k]);
    }
    np->synthetic = true;
    return ST_OK;
}

static int load_noise_pool(const st_mix_params *p, clip_list *noise, noise_pool *np)
{
    if (noise->n == 0)
        return synth_noise_pool(p->seed, np);
    np->clips = calloc(noise->n, sizeof *np->clips);
    if (!np->clips)
        return st_error(ST_ERR_NOMEM, "mixtures: out of memory for noise");
    for (size_t i = 0; i < noise->n; i++) {
        buf b = {0};
        int rc = load_16k(noise->v[i].path, &b);
        if (rc != ST_OK)
            return rc;
        if (!normalise_unit_rms(&b)) {
            free(b.x); /* digital silence or too short: not a background */
            continue;
        }
        np->clips[np->n++] = b;
    }
    if (np->n == 0)
        return synth_noise_pool(p->seed, np);
    return ST_OK;
}

/* Equal-power crossfade gains for uncorrelated signals: fade-in at u in
   [0, 1], the fade-out is fade_in(1 - u). */
static inline float fade_in(double u)
{
    return (float)sin(0.5 * M_PI * u);
}

/* Adds samples [0, span) of a stretch `len` long into out: clip `first`
   from a random start, then, each time a clip ends, one of the clips most
   like the one playing (a 50 ms crossfade at each join), times gain,
   fading in over its first xf_in samples and out over its last xf_out. */
static void add_stretch(float *out, size_t span, size_t len, const noise_pool *np, size_t first,
                        float gain, size_t xf_in, size_t xf_out, uint64_t *s)
{
    size_t cur = first, prev = first;
    const buf *c = &np->clips[cur], *o = c;
    size_t join = RATE / 20;
    if (3 * join > c->n)
        join = c->n / 4;
    size_t pos = join ? (size_t)(uniform(s) * (double)(c->n - join)) % (c->n - join) : 0;
    size_t fading = 0, old = 0;
    for (size_t i = 0; i < span; i++) {
        if (join && !fading && pos + join >= c->n) {
            /* hand over to a neighbour (not straight back to the last one) */
            size_t next = np->near[cur][next_u64(s) % NEIGHBOURS];
            if (next == prev && np->n > 2)
                next = np->near[cur][(next_u64(s) % (NEIGHBOURS - 1)) + 1];
            prev = cur;
            o = c;
            old = pos;
            cur = next;
            c = &np->clips[cur];
            pos = 0;
            fading = join;
        }
        float v;
        if (fading) {
            double u = 1.0 - (double)fading / join;
            v = c->x[pos] * fade_in(u) + o->x[old < o->n ? old : o->n - 1] * fade_in(1.0 - u);
            old++;
            fading--;
        } else {
            v = c->x[pos];
        }
        pos = pos + 1 < c->n ? pos + 1 : 0;
        float g = gain;
        if (i < xf_in)
            g *= fade_in((double)i / xf_in);
        if (len - i <= xf_out)
            g *= fade_in((double)(len - i) / xf_out);
        out[i] += g * v;
    }
}

/* Fills out[0..n) with stretches, each overlapping the one before by the
   crossfade; returns how many (SIZE_MAX: out of memory). */
static size_t make_background(const st_mix_params *p, const noise_pool *np, float *out, size_t n,
                              uint64_t *s)
{
    const size_t xf = (size_t)llround(p->crossfade_s * RATE);
    size_t at = 0, count = 0;
    memset(out, 0, n * sizeof *out);
    while (at < n) {
        size_t len = (size_t)llround(uniform_in(s, p->stretch_min_s, p->stretch_max_s) * RATE);
        if (len < 2 * xf + RATE / 10)
            len = 2 * xf + RATE / 10;
        size_t first = next_u64(s) % np->n;
        double level = uniform_in(s, p->noise_min_dbfs, p->noise_max_dbfs);
        float gain = (float)pow(10.0, level / 20.0);
        size_t start = at == 0 ? 0 : at - xf;
        size_t span = start + len > n ? n - start : len;
        if (p->noise_rate_max > 1 || p->noise_tilt_max > 0) {
            /* augmented: the stretch made at `rate` times its length, read
               back by linear interpolation, through the tilt */
            const double lr = log(p->noise_rate_max);
            const double rate = exp(uniform_in(s, -lr, lr));
            const double k = uniform_in(s, -p->noise_tilt_max, p->noise_tilt_max);
            const size_t need = (size_t)ceil((double)span * rate) + 2;
            float *tmp = calloc(need, sizeof *tmp);
            if (!tmp)
                return SIZE_MAX;
            add_stretch(tmp, need, (size_t)ceil((double)len * rate) + 2, np, first,
                        gain / (float)(1 + fabs(k)), at == 0 ? 0 : (size_t)(xf * rate),
                        (size_t)(xf * rate), s);
            float last = 0;
            for (size_t i = 0; i < span; i++) {
                const double t = (double)i * rate;
                const size_t i0 = (size_t)t;
                const float f = (float)(t - (double)i0);
                const float v = tmp[i0] * (1 - f) + tmp[i0 + 1 < need ? i0 + 1 : i0] * f;
                out[start + i] += v + (float)k * last;
                last = v;
            }
            free(tmp);
        } else {
            add_stretch(out + start, span, len, np, first, gain, at == 0 ? 0 : xf, xf, s);
        }
        at = start + len;
        count++;
    }
    return count;
}

static int check_params(const st_mix_params *p)
{
    if (p->n_utterances < 0 || p->n_utterances > 100000 || !(p->snr_max_db >= p->snr_min_db) ||
        !(p->gap_min_s > 0) || !(p->gap_max_s >= p->gap_min_s) || !(p->lead_s >= 0) ||
        !(p->noise_max_dbfs >= p->noise_min_dbfs) || p->noise_max_dbfs > 0 ||
        !(p->stretch_min_s > 0) || !(p->stretch_max_s >= p->stretch_min_s) ||
        !(p->crossfade_s >= 0) || 2 * p->crossfade_s > p->stretch_min_s ||
        !(p->truth_below_peak_db > 0) || !(p->noise_rate_max >= 1) || p->noise_rate_max > 2 ||
        !(p->noise_tilt_max >= 0) || p->noise_tilt_max > 0.95)
        return st_error(ST_ERR_INVALID,
                        "mixtures: parameters out of range (need 0 <= n_utterances, min <= max "
                        "for SNR, gap, noise level (<= 0 dBFS) and stretch, gap_min_s > 0, "
                        "crossfade_s <= stretch_min_s / 2, truth_below_peak_db > 0, "
                        "1 <= noise_rate_max <= 2, 0 <= noise_tilt_max <= 0.95)");
    return ST_OK;
}

static int make_noise_pool(const st_mix_params *p, noise_pool *np)
{
    clip_list noise = {0};
    int rc = ST_OK;
    if (p->data_dir) {
        bool found;
        rc = read_manifest(p->data_dir, ST_MIX_SPEECH_COMMANDS, p->split, NULL, &noise, &found);
    }
    if (rc == ST_OK)
        rc = load_noise_pool(p, &noise, np);
    if (rc == ST_OK)
        rc = find_neighbours(np);
    clip_list_free(&noise);
    return rc;
}

int st_mix_noise(const st_mix_params *p, double seconds, st_mixture *out)
{
    memset(out, 0, sizeof *out);
    int rc = check_params(p);
    if (rc != ST_OK)
        return rc;
    if (!(seconds > 0) || seconds > 24 * 3600)
        return st_error(ST_ERR_INVALID, "mixtures: %g s of noise is not in (0, 86400]", seconds);
    noise_pool np = {0};
    rc = make_noise_pool(p, &np);
    if (rc == ST_OK) {
        out->frames = (size_t)llround(seconds * RATE);
        out->samples = malloc(out->frames * sizeof *out->samples);
        if (!out->samples)
            rc = st_error(ST_ERR_NOMEM, "mixtures: out of memory for %g s", seconds);
    }
    if (rc == ST_OK) {
        uint64_t s = p->seed * 0x2545f4914f6cdd1dULL + 7;
        out->n_stretches = make_background(p, &np, out->samples, out->frames, &s);
        if (out->n_stretches == SIZE_MAX)
            rc = st_error(ST_ERR_NOMEM, "mixtures: out of memory for a noise stretch");
        out->synthetic_noise = np.synthetic;
        st_log(ST_LOG_INFO, "mixtures: %.0f s of noise from %zu %s clips in %zu stretches",
               seconds, np.n, np.synthetic ? "generated" : "_silence_", out->n_stretches);
    }
    noise_pool_free(&np);
    if (rc != ST_OK)
        st_mixture_free(out);
    return rc;
}

/* ---- speech ------------------------------------------------------------------ */

static const char *const espeak_words[] = {
    "yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go",
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
    "hello there", "what time is it", "turn it off", "please wait", "thank you",
    "seventeen", "forward", "backward", "follow me", "learn"};
static const char *const espeak_voices[] = {
    "en-us", "en", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-us+f2", "en+m3", "en+f3",
    "en-us+m5", "en+f4", "en-gb-x-gbclan", "en+m7"};

static int espeak_list(const st_mix_params *p, clip_list *speech)
{
    uint64_t s = p->seed ^ 0xe5bea4ULL;
    size_t nw = sizeof espeak_words / sizeof *espeak_words;
    size_t nv = sizeof espeak_voices / sizeof *espeak_voices;
    for (size_t v = 0; v < nv; v++) {
        if (!in_split(p->split, espeak_voices[v]))
            continue;
        for (size_t w = 0; w < nw; w++) {
            clip_ref c = {.source = ST_MIX_ESPEAK};
            c.path = strdup(espeak_words[w]);
            if (!c.path)
                return st_error(ST_ERR_NOMEM, "mixtures: out of memory");
            copy_field(c.voice, sizeof c.voice, espeak_voices[v]);
            copy_field(c.speaker, sizeof c.speaker, espeak_voices[v]);
            copy_field(c.text, sizeof c.text, espeak_words[w]);
            c.speed = 130 + (int)(next_u64(&s) % 60);
            c.pitch = 30 + (int)(next_u64(&s) % 40);
            int rc = clip_list_add(speech, &c);
            if (rc != ST_OK) {
                free(c.path);
                return rc;
            }
        }
    }
    return ST_OK;
}

typedef struct {
    buf audio;
    truth t;
    const clip_ref *ref;
    size_t start;      /* clip start in the mixture */
    double snr_db;
} placed;

/* Whether the clip (its speech band sb from q->start, gain g) outweighs
   the noise (its speech band nb from mixture sample lo) in the 10 ms that
   end at mixture sample i. */
static bool over_noise(const placed *q, double g, const float *sb, const float *nb, size_t lo,
                       size_t i)
{
    const size_t w = RATE / 100;
    size_t a = i - w > lo ? i - w : lo;
    double ps = 0, pw = 0;
    for (size_t j = a; j < i; j++) {
        double v = g * sb[j - q->start];
        ps += v * v;
        pw += (double)nb[j - lo] * nb[j - lo];
    }
    return ps >= pw;
}

/* The segment's "audible" bounds (st_mix_segment.audible, audible_end),
   every 1 ms: nb is the noise's speech band from mixture sample lo to off,
   the clip is placed at q->start with gain g. Returns false when out of
   memory. */
static bool audible_bounds(const placed *q, double g, const float *nb, size_t lo, size_t on,
                           size_t off, st_mix_segment *sg)
{
    const size_t step = RATE / 1000, clip_off = off - q->start;
    float *sb = malloc(clip_off * sizeof *sb);
    if (!sb)
        return false;
    speech_band(q->audio.x, clip_off, sb);
    sg->audible = sg->audible_end = UINT64_MAX;
    for (size_t i = on + step; i <= off; i += step)
        if (over_noise(q, g, sb, nb, lo, i)) {
            sg->audible = i;
            break;
        }
    for (size_t i = off; sg->audible != UINT64_MAX && i >= sg->audible; i -= step)
        if (over_noise(q, g, sb, nb, lo, i)) {
            sg->audible_end = i;
            break;
        }
    free(sb);
    return true;
}

int st_mix_speech(const st_mix_params *p, st_mixture *out)
{
    memset(out, 0, sizeof *out);
    int rc = check_params(p);
    if (rc != ST_OK)
        return rc;
    clip_list lists[4] = {{0}};     /* speech_commands, fsdd, an4, espeak */
    static const int srcs[4] = {ST_MIX_SPEECH_COMMANDS, ST_MIX_FSDD, ST_MIX_AN4, ST_MIX_ESPEAK};
    noise_pool np = {0};
    placed *pl = NULL;
    int n_pl = 0;
    bool any = false;
    for (int k = 0; k < 3 && rc == ST_OK; k++) {
        if (!(p->sources & (unsigned)srcs[k]) || !p->data_dir)
            continue;
        bool found;
        rc = read_manifest(p->data_dir, srcs[k], p->split, &lists[k], NULL, &found);
        any = any || lists[k].n > 0;
    }
    if (rc == ST_OK && (!any || (p->sources & ST_MIX_ESPEAK))) {
        rc = espeak_list(p, &lists[3]);
        out->synthetic_speech = !any;
    }
    if (rc == ST_OK)
        rc = make_noise_pool(p, &np);
    if (rc != ST_OK)
        goto done;
    pl = calloc((size_t)p->n_utterances + 1, sizeof *pl);
    if (!pl) {
        rc = st_error(ST_ERR_NOMEM, "mixtures: out of memory");
        goto done;
    }
    uint64_t s = p->seed * 0x9e3779b97f4a7c15ULL + 3;
    /* Draw clips: a source (among those with clips), then a clip; keep it if
       its truth is clean. */
    int rejected = 0;
    size_t t_next = (size_t)llround(p->lead_s * RATE); /* truth onset of the next clip */
    size_t prev_end = 0;
    while (n_pl < p->n_utterances) {
        int avail[4], na = 0;
        for (int k = 0; k < 4; k++)
            if (lists[k].n)
                avail[na++] = k;
        if (na == 0) {
            rc = st_error(ST_ERR_NOT_FOUND,
                          "mixtures: no usable speech clip (data folder %s; espeak-ng %s)",
                          p->data_dir ? p->data_dir : "not given",
                          (p->sources & ST_MIX_ESPEAK) || !any ? "failed" : "not asked");
            goto done;
        }
        clip_list *l = &lists[avail[next_u64(&s) % (uint64_t)na]];
        size_t pick = next_u64(&s) % l->n;
        const clip_ref *c = &l->v[pick];
        buf a = {0};
        rc = c->source == ST_MIX_ESPEAK ? espeak_16k(c, &a) : load_16k(c->path, &a);
        truth t;
        if (rc != ST_OK || !find_truth(a.x, a.n, p->truth_below_peak_db, &t)) {
            free(a.x);
            if (rc == ST_ERR_NOT_FOUND && c->source == ST_MIX_ESPEAK)
                goto done; /* no espeak-ng at all */
            if (rc != ST_OK) {
                st_log(ST_LOG_WARN, "mixtures: skipping '%s': %s", c->path, st_errmsg());
                rc = ST_OK;
            }
            /* drop it from the list so it is not drawn again */
            free(l->v[pick].path);
            l->v[pick] = l->v[--l->n];
            rejected++;
            continue;
        }
        size_t start = t_next > t.on ? t_next - t.on : 0;
        if (start < prev_end)
            start = prev_end;
        pl[n_pl] = (placed){.audio = a, .t = t, .ref = c, .start = start,
                            .snr_db = uniform_in(&s, p->snr_min_db, p->snr_max_db)};
        prev_end = start + a.n;
        t_next = start + t.off + (size_t)llround(uniform_in(&s, p->gap_min_s, p->gap_max_s) * RATE);
        n_pl++;
    }
    size_t total = n_pl ? t_next : (size_t)llround(p->lead_s * RATE) + RATE;
    if (total < prev_end + RATE / 2)
        total = prev_end + RATE / 2;
    out->samples = malloc(total * sizeof *out->samples);
    out->segs = calloc((size_t)n_pl + 1, sizeof *out->segs);
    if (!out->samples || !out->segs) {
        rc = st_error(ST_ERR_NOMEM, "mixtures: out of memory for %.0f s", (double)total / RATE);
        goto done;
    }
    out->frames = total;
    uint64_t sn = p->seed * 0x2545f4914f6cdd1dULL + 11;
    out->n_stretches = make_background(p, &np, out->samples, total, &sn);
    if (out->n_stretches == SIZE_MAX) {
        rc = st_error(ST_ERR_NOMEM, "mixtures: out of memory for a noise stretch");
        goto done;
    }
    out->synthetic_noise = np.synthetic;
    for (int k = 0; k < n_pl; k++) {
        placed *q = &pl[k];
        size_t on = q->start + q->t.on, off = q->start + q->t.off;
        /* the noise's power in the same speech band as the clip's (the
           filter starts up to 50 ms early, on noise only) */
        size_t lo = on - (on - q->start < RATE / 20 ? on - q->start : RATE / 20);
        float *nb = malloc((off - lo) * sizeof *nb);
        if (!nb) {
            rc = st_error(ST_ERR_NOMEM, "mixtures: out of memory");
            goto done;
        }
        speech_band(out->samples + lo, off - lo, nb);
        double pn = 0;
        for (size_t i = on; i < off; i++)
            pn += (double)nb[i - lo] * nb[i - lo];
        pn /= (double)(off - on);
        double g = sqrt(pn * pow(10.0, q->snr_db / 10.0) / q->t.power);
        st_mix_segment *sg = &out->segs[out->n_segs];
        bool ok = audible_bounds(q, g, nb, lo, on, off, sg);
        free(nb);
        if (!ok) {
            rc = st_error(ST_ERR_NOMEM, "mixtures: out of memory");
            goto done;
        }
        out->n_segs++;
        for (size_t i = 0; i < q->audio.n && q->start + i < total; i++)
            out->samples[q->start + i] += (float)(g * q->audio.x[i]);
        sg->onset = on;
        sg->offset = off;
        sg->clip_start = q->start;
        sg->clip_end = q->start + q->audio.n;
        sg->snr_db = (float)q->snr_db;
        sg->speech_dbfs = (float)(10 * log10(q->t.power * g * g + 1e-30));
        sg->n_pauses = q->t.n_pauses;
        for (uint32_t j = 0; j < q->t.n_pauses; j++) {
            sg->pause_on[j] = q->start + q->t.pause_on[j];
            sg->pause_off[j] = q->start + q->t.pause_off[j];
        }
        copy_field(sg->source, sizeof sg->source, source_name(q->ref->source));
        copy_field(sg->speaker, sizeof sg->speaker, q->ref->speaker);
        copy_field(sg->text, sizeof sg->text, q->ref->text);
    }
    st_log(ST_LOG_INFO,
           "mixtures: %d clips (%d rejected for unclear truth) in %.0f s of %s noise, %zu "
           "stretches%s",
           n_pl, rejected, (double)total / RATE, np.synthetic ? "generated" : "_silence_",
           out->n_stretches, out->synthetic_speech ? "; speech by espeak-ng" : "");
done:
    for (int k = 0; k < n_pl; k++)
        free(pl[k].audio.x);
    free(pl);
    for (int k = 0; k < 4; k++)
        clip_list_free(&lists[k]);
    noise_pool_free(&np);
    if (rc != ST_OK)
        st_mixture_free(out);
    return rc;
}

int st_mixture_write(const st_mixture *m, const char *wav_path, const char *tsv_path)
{
    int rc = st_audio_write_wav(wav_path, m->samples, m->frames, RATE, ST_WAV_FLOAT);
    if (rc != ST_OK || !tsv_path)
        return rc;
    FILE *f = fopen(tsv_path, "w");
    if (!f)
        return st_error(ST_ERR_IO, "cannot create '%s': %s", tsv_path, strerror(errno));
    fprintf(f, "onset_s\toffset_s\tsnr_db\tsource\tspeaker\ttext\n");
    for (size_t i = 0; i < m->n_segs; i++) {
        const st_mix_segment *s = &m->segs[i];
        fprintf(f, "%.4f\t%.4f\t%.1f\t%s\t%s\t%s\n", (double)s->onset / RATE,
                (double)s->offset / RATE, s->snr_db, s->source, s->speaker, s->text);
    }
    if (fclose(f) != 0)
        return st_error(ST_ERR_IO, "writing '%s' failed: %s", tsv_path, strerror(errno));
    return ST_OK;
}

void st_mixture_free(st_mixture *m)
{
    if (!m)
        return;
    free(m->samples);
    free(m->segs);
    memset(m, 0, sizeof *m);
}
