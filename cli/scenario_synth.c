/*  cli/scenario_synth.c - what the commands that play scenarios (`bench
    latency`, `soak`) share: the list of scenario files they run, and the
    synthesizer behind the scenario renderer: st_tts voices kept in a small
    cache keyed by engine, voice and rate, the oldest evicted when it is
    full (rendering happens once per scenario).

    What it may touch: tts/, audio/'s scenario clip type, the file system
    (folder listings). Not for the audio path: it allocates and synthesizes
    whole turns.
*/
#include "scenario_synth.h"

#include "cli.h"
#include "tts/tts.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    char key[128];
    char voice[64];             /* st_tts keeps the pointer: the slot never moves */
    st_tts *t;
} synth_slot;

struct cli_synth_cache {
    int capacity, n, rate_hz;
    synth_slot **slot;
};

cli_synth_cache *cli_synth_cache_new(int capacity, int rate_hz)
{
    cli_synth_cache *c = calloc(1, sizeof *c);
    if (c && !(c->slot = calloc((size_t)(capacity > 0 ? capacity : 1), sizeof *c->slot))) {
        free(c);
        c = NULL;
    }
    if (c) {
        c->capacity = capacity > 0 ? capacity : 1;
        c->rate_hz = rate_hz;
    }
    return c;
}

void cli_synth_cache_clear(cli_synth_cache *c)
{
    if (!c)
        return;
    for (int i = 0; i < c->n; i++) {
        st_tts_destroy(&c->slot[i]->t);
        free(c->slot[i]);
    }
    c->n = 0;
}

void cli_synth_cache_destroy(cli_synth_cache **c_p)
{
    if (!c_p || !*c_p)
        return;
    cli_synth_cache_clear(*c_p);
    free((*c_p)->slot);
    free(*c_p);
    *c_p = NULL;
}

int cli_scenario_synth(void *user_data, const char *engine, const char *voice, int rate_wpm,
                       const char *text, st_scenario_clip *out)
{
    cli_synth_cache *c = user_data;
    char key[128];
    snprintf(key, sizeof key, "%s/%s/%d", engine, voice ? voice : "", rate_wpm);
    st_tts *t = NULL;
    for (int i = 0; i < c->n; i++)
        if (!strcmp(c->slot[i]->key, key))
            t = c->slot[i]->t;
    if (!t) {
        if (c->n == c->capacity) {
            st_tts_destroy(&c->slot[0]->t);
            free(c->slot[0]);
            memmove(c->slot, c->slot + 1, (size_t)(c->capacity - 1) * sizeof *c->slot);
            c->n--;
        }
        synth_slot *slot = calloc(1, sizeof *slot);
        if (!slot)
            return st_error(ST_ERR_NOMEM, "out of memory");
        snprintf(slot->key, sizeof slot->key, "%s", key);
        snprintf(slot->voice, sizeof slot->voice, "%s", voice ? voice : "");
        st_tts_params p = st_tts_default_params();
        p.engine = engine;
        p.voice = voice ? slot->voice : NULL;
        p.rate_wpm = rate_wpm;
        p.sample_rate_hz = c->rate_hz;
        int err;
        if (!(slot->t = t = st_tts_new(&p, &err))) {
            free(slot);
            return err;
        }
        c->slot[c->n++] = slot;
    }
    /* flite's clustergen voices draw from libc's rand(): what was
       synthesized before (and how far the agent's own voice got before a
       barge-in cancelled it) would change this turn's samples. Each turn
       draws from a state of its own, so a scenario renders the same on every
       run and in any order. */
    st_tts_seed_draws(key, text);
    st_tts_result r;
    int rc = st_tts_synthesize(t, text, &r);
    if (rc)
        return rc;
    out->words = calloc(r.n_words ? r.n_words : 1, sizeof *out->words);
    if (!out->words) {
        st_tts_result_free(&r);
        return st_error(ST_ERR_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < r.n_words; i++) {
        out->words[i].start = r.words[i].start;
        out->words[i].end = r.words[i].end;
        snprintf(out->words[i].text, sizeof out->words[i].text, "%.47s", r.words[i].text);
    }
    out->n_words = r.n_words;
    out->samples = r.samples;
    out->frames = r.frames;
    r.samples = NULL;
    st_tts_result_free(&r);
    return ST_OK;
}

/* ---- the scenario files ---------------------------------------------------- */

static int by_name(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

int cli_scenario_add_path(const char *cmd, const char *path, char files[][512], int *n, int max)
{
    DIR *d = opendir(path);
    if (!d) {
        if (*n == max)
            return cli_fail(cmd, "more than %d scenario files", max);
        snprintf(files[(*n)++], 512, "%s", path);
        return 0;
    }
    int first = *n;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l > 4 && !strcmp(e->d_name + l - 4, ".ini") && *n < max)
            snprintf(files[(*n)++], 512, "%s/%s", path, e->d_name);
    }
    closedir(d);
    qsort(files[first], (size_t)(*n - first), 512, by_name);
    return 0;
}

void cli_scenario_add_default(const char *cmd, char files[][512], int *n, int max)
{
    DIR *d = opendir("scenarios");
    if (d) {
        closedir(d);
        cli_scenario_add_path(cmd, "scenarios", files, n, max);
        return;
    }
    char beside[4096];
    ssize_t l = readlink("/proc/self/exe", beside, sizeof beside - 32);
    if (l > 0) {
        beside[l] = '\0';
        char *slash = strrchr(beside, '/');
        if (slash)
            snprintf(slash, sizeof beside - (size_t)(slash - beside), "/../scenarios");
        cli_scenario_add_path(cmd, beside, files, n, max);
    }
}
