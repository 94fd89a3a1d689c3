/*  tools/asr_align.c - word times for AN4's connected speech, by forced
    alignment with pocketsphinx (`asr-tool align`; part of `make asr-data`).

    AN4 (../shared/data/speech/an4) is 74 human speakers saying digits,
    numbers, letters and commands ("u m n y h six", "enter sixty one") with
    a transcript but no word times. The recognizer's recipe wants single
    words, so each utterance is aligned to its own transcript: a linear
    finite-state grammar of its words (Sphinx FSG, silence and fillers
    allowed between them) decoded by Debian's pocketsphinx_batch with the
    en-us acoustic model, all utterances in one run (about a minute). Why
    pocketsphinx and not our own recognizer: the alignment must not depend
    on the model it trains, and pocketsphinx is the well-kept aligner
    Debian has (the same peer `spiketalk bench asr` runs).

    Output: a TSV (header `path word start_s end_s speaker`), one line per
    aligned word, paths relative to the AN4 folder, times in seconds from
    the start of the file. Utterances with a word outside pocketsphinx's
    dictionary, or that it cannot align, are left out (counted on stderr).
    Touches: a temporary folder under $TMPDIR (removed; when pocketsphinx
    fails, its log stays there and the message names it), the output file.
*/
#include "tools/asr_tool.h"

#include "audio/audio.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define PS_MODEL "/usr/share/pocketsphinx/model/en-us"
#define MAX_WORDS 64

typedef struct {
    char path[512];
    char speaker[64];
    char words[MAX_WORDS][32];
    int n;
} utt;

/* The dictionary's headwords (first field of each line), sorted, for bsearch. */
typedef struct {
    char **w;
    size_t n;
} dict;

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int dict_load(dict *d, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "asr-tool align: cannot open %s (%s): sudo apt-get install "
                        "pocketsphinx-en-us\n", path, strerror(errno));
        return -1;
    }
    char line[512];
    size_t cap = 0;
    while (fgets(line, sizeof line, f)) {
        char *sp = strpbrk(line, " \t\r\n");
        if (sp)
            *sp = 0;
        if (!line[0])
            continue;
        if (d->n == cap) {
            cap = cap ? cap * 2 : 4096;
            char **w = realloc(d->w, cap * sizeof *w);
            if (!w)
                break;
            d->w = w;
        }
        if (!(d->w[d->n] = strdup(line)))
            break;
        d->n++;
    }
    fclose(f);
    qsort(d->w, d->n, sizeof *d->w, cmp_str);
    return 0;
}

static bool dict_has(const dict *d, const char *word)
{
    return bsearch(&word, d->w, d->n, sizeof *d->w, cmp_str) != NULL;
}

static void dict_free(dict *d)
{
    for (size_t i = 0; i < d->n; i++)
        free(d->w[i]);
    free(d->w);
}

/* The manifest's utterances whose words are all in the dictionary. */
static utt *read_manifest(const char *an4, const dict *d, size_t *n_out, size_t *n_skipped)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/manifest.tsv", an4);
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    utt *u = NULL;
    size_t n = 0, cap = 0;
    char line[2048];
    bool header = true;
    while (fgets(line, sizeof line, f)) {
        if (header) {
            header = false;
            continue;
        }
        line[strcspn(line, "\r\n")] = 0;
        char *p = line, *rel = strsep(&p, "\t"), *text = strsep(&p, "\t"), *spk = strsep(&p, "\t");
        if (!rel || !text || !spk || !rel[0])
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 1024;
            utt *v = realloc(u, cap * sizeof *v);
            if (!v)
                break;
            u = v;
        }
        utt *x = &u[n];
        memset(x, 0, sizeof *x);
        snprintf(x->path, sizeof x->path, "%s", rel);
        snprintf(x->speaker, sizeof x->speaker, "%s", spk);
        bool ok = true;
        for (char *w = strtok(text, " "); w && ok; w = strtok(NULL, " ")) {
            if (x->n == MAX_WORDS || strlen(w) >= sizeof x->words[0] || !dict_has(d, w))
                ok = false;
            else
                snprintf(x->words[x->n++], sizeof x->words[0], "%s", w);
        }
        if (ok && x->n)
            n++;
        else
            (*n_skipped)++;
    }
    fclose(f);
    *n_out = n;
    return u;
}

static int run_batch(const char *dir)
{
    char ctl[1100], hyp[1100], seg[1100], log[1100];
    snprintf(ctl, sizeof ctl, "%s/ctl", dir);
    snprintf(hyp, sizeof hyp, "%s/hyp", dir);
    snprintf(seg, sizeof seg, "%s/hypseg", dir);
    snprintf(log, sizeof log, "%s/log", dir);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        execlp("pocketsphinx_batch", "pocketsphinx_batch", "-hmm", PS_MODEL "/en-us", "-dict",
               PS_MODEL "/cmudict-en-us.dict", "-ctl", ctl, "-cepdir", dir, "-cepext", ".wav",
               "-adcin", "yes", "-adchdr", "44", "-fsgctl", ctl, "-fsgdir", dir, "-fsgext", ".fsg",
               "-hyp", hyp, "-hypseg", seg, "-logfn", log, (char *)NULL);
        _exit(127);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* One hypseg line: "uttid S s T t A a L l  sf ascr lscr word  sf ascr lscr
   word ... end" -> the utterance's words with their first and last frame;
   filler words (<sil>, ++noise++, ...) are passed over. Writes the
   transcript's words to out when the line's words are exactly them. */
static int parse_seg(char *line, const utt *u, FILE *out, size_t *n_words)
{
    char *tok[4 * (3 * MAX_WORDS) + 16];
    size_t nt = 0;
    for (char *t = strtok(line, " \n"); t && nt < sizeof tok / sizeof *tok; t = strtok(NULL, " \n"))
        tok[nt++] = t;
    if (nt < 14 || (nt - 10) % 4 != 0)
        return -1;
    long sf[3 * MAX_WORDS], ef[3 * MAX_WORDS];
    const char *w[3 * MAX_WORDS];
    size_t nw = 0;
    for (size_t i = 9; i + 4 < nt && nw < 3 * MAX_WORDS; i += 4) {
        const char *word = tok[i + 3];
        if (word[0] == '<' || word[0] == '+' || word[0] == '[')
            continue;
        w[nw] = word;
        sf[nw] = atol(tok[i]);
        ef[nw] = atol(tok[i + 4]);
        nw++;
    }
    if (nw != (size_t)u->n)
        return -1;
    for (size_t k = 0; k < nw; k++) {
        /* pocketsphinx writes alternate pronunciations as word(2) */
        size_t len = strcspn(w[k], "(");
        if (strncmp(w[k], u->words[k], len) || u->words[k][len])
            return -1;
    }
    for (size_t k = 0; k < nw; k++)
        fprintf(out, "%s\t%s\t%.2f\t%.2f\t%s\n", u->path, u->words[k], (double)sf[k] * 0.01,
                (double)ef[k] * 0.01, u->speaker);
    *n_words += nw;
    return 0;
}

int asr_align_an4(const char *an4, const char *out_path)
{
    dict d = {0};
    if (dict_load(&d, PS_MODEL "/cmudict-en-us.dict"))
        return -1;
    size_t n = 0, skipped = 0;
    utt *u = read_manifest(an4, &d, &n, &skipped);
    dict_free(&d);
    if (!u) {
        fprintf(stderr, "asr-tool align: cannot read %s/manifest.tsv (%s): give AN4's folder, "
                        "../shared/data/speech/an4\n", an4, strerror(errno));
        return -1;
    }
    char dir[1024];
    if (st_tmpdir_make(dir, sizeof dir, "st-align")) {
        fprintf(stderr, "asr-tool align: %s\n", st_errmsg());
        free(u);
        return -1;
    }
    int rc = -1;
    char p[1100];
    snprintf(p, sizeof p, "%s/ctl", dir);
    FILE *ctl = fopen(p, "w");
    if (!ctl) {
        fprintf(stderr, "asr-tool align: cannot write %s: %s\n", p, strerror(errno));
        st_tmpdir_remove(dir, NULL);
        free(u);
        return -1;
    }
    size_t written = 0;
    for (size_t i = 0; i < n; i++) {
        char src[1600];
        snprintf(src, sizeof src, "%s/%s", an4, u[i].path);
        st_audio a = {0};
        if (st_audio_read(src, &a) != ST_OK) {
            fprintf(stderr, "asr-tool align: %s: %s\n", src, st_errmsg());
            u[i].n = 0;
            continue;
        }
        snprintf(p, sizeof p, "%s/u%04zu.wav", dir, i);
        int w = st_audio_write_wav(p, a.samples, a.frames, a.sample_rate_hz, ST_WAV_PCM16);
        st_audio_free(&a);
        snprintf(p, sizeof p, "%s/u%04zu.fsg", dir, i);
        FILE *g = w == ST_OK ? fopen(p, "w") : NULL;
        if (!g) {
            u[i].n = 0;
            continue;
        }
        fprintf(g, "FSG_BEGIN u%04zu\nNUM_STATES %d\nSTART_STATE 0\nFINAL_STATE %d\n", i,
                u[i].n + 1, u[i].n);
        for (int k = 0; k < u[i].n; k++)
            fprintf(g, "TRANSITION %d %d 1.0 %s\n", k, k + 1, u[i].words[k]);
        fprintf(g, "FSG_END\n");
        fclose(g);
        fprintf(ctl, "u%04zu\n", i);
        written++;
    }
    fclose(ctl);
    int ps = written ? run_batch(dir) : -1;
    if (ps != 0) {
        if (written)
            fprintf(stderr, "asr-tool align: pocketsphinx_batch %s (exit %d; its log: %s/log); "
                            "sudo apt-get install pocketsphinx pocketsphinx-en-us\n",
                    ps == 127 ? "is not installed" : "failed", ps, dir);
        else
            fprintf(stderr, "asr-tool align: no utterance of %s/manifest.tsv could be read\n",
                    an4);
        st_tmpdir_remove(dir, written ? "log" : NULL);
        free(u);
        return -1;
    }
    snprintf(p, sizeof p, "%s/hypseg", dir);
    FILE *seg = fopen(p, "r");
    if (!seg)
        fprintf(stderr, "asr-tool align: pocketsphinx wrote no %s: %s\n", p, strerror(errno));
    FILE *out = seg ? fopen(out_path, "w") : NULL;
    size_t aligned = 0, words = 0, failed = 0;
    if (seg && !out)
        fprintf(stderr, "asr-tool align: cannot write %s: %s\n", out_path, strerror(errno));
    if (out) {
        fprintf(out, "path\tword\tstart_s\tend_s\tspeaker\n");
        char line[16384];
        while (fgets(line, sizeof line, seg)) {
            size_t i;
            if (sscanf(line, "u%zu ", &i) != 1 || i >= n)
                continue;
            if (parse_seg(line, &u[i], out, &words) == 0)
                aligned++;
            else
                failed++;
        }
        rc = fclose(out) == 0 ? 0 : -1;
        if (rc)
            fprintf(stderr, "asr-tool align: cannot write %s: %s\n", out_path, strerror(errno));
    }
    if (seg)
        fclose(seg);
    fprintf(stderr, "asr-tool align: %zu AN4 utterances aligned (%zu words) into %s; %zu left "
                    "out (a word not in pocketsphinx's dictionary: %zu, not aligned: %zu)\n",
            aligned, words, out_path, skipped + failed + (n - written), skipped, failed);
    st_tmpdir_remove(dir, NULL);
    free(u);
    return rc;
}
