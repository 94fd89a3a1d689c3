/*  audio/scenario.c - scripted conversations (the "Scenarios" section of
    audio/audio.h): a small INI-style file describing the user's side of a
    conversation, its parser, and a renderer that turns it into 16 kHz
    samples with the true position of every word.

    The parser is our own, not libinih (which pipeline/config.c uses): inih
    does not give its handler the line number, and the checks that span
    keys (an `at` naming a turn, a turn without text or file) must name the
    line they come from. The syntax is inih's subset: [section], key = value,
    full-line # or ; comments.

    The synthesizer is a callback: audio/ sits below tts/ and must not call
    it (docs/ARCHITECTURE.md); the callers (tests, the benchmark, the agent)
    hand in an adapter over st_tts_synthesize.

    Workload: a few hundred turns of a few seconds each; rendering a scenario
    is dominated by the synthesizer. May touch: base/, this layer's file
    reader and resampler, the file system (reads the scenario and the audio
    files it names), the heap. Not for the real-time path, except
    st_scenario_noise_add (no allocation, no I/O).
*/
#include "audio.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RATE ST_PIPELINE_RATE_HZ

static const char *const kind_names[ST_TURN_N_KINDS] = {
    "command", "arithmetic", "request", "interruption", "backchannel", "echo_only", "noise",
};

const char *st_turn_kind_name(st_turn_kind k)
{
    return (unsigned)k < ST_TURN_N_KINDS ? kind_names[k] : "?";
}

int st_turn_kind_from_name(const char *name, st_turn_kind *out)
{
    for (int k = 0; k < ST_TURN_N_KINDS; k++)
        if (!strcmp(name, kind_names[k])) {
            *out = (st_turn_kind)k;
            return ST_OK;
        }
    return st_error(ST_ERR_NOT_FOUND,
                    "no turn kind '%s' (command, arithmetic, request, interruption, "
                    "backchannel, echo_only, noise)",
                    name);
}

/* ---- parsing ----------------------------------------------------------- */

typedef struct {
    const char *origin;
    int line;
    st_scenario *sc;
    size_t cap;
    int section;                 /* 0 none, 1 scenario, 2 turn */
    bool seen_scenario;
    /* anchors name turns; resolved when the turn is complete */
    char at_text[ST_SCENARIO_TEXT];
} parser;

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

#define FAIL(ps, ...) fail_at(ps, __VA_ARGS__)

static int fail_at(parser *ps, const char *fmt, ...) ST_PRINTF(2, 3);
static int fail_at(parser *ps, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return st_error(ST_ERR_FORMAT, "%s:%d: %s", ps->origin, ps->line, msg);
}

static int get_double(parser *ps, const char *key, const char *v, double lo, double hi,
                      double *out)
{
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (end == v || *trim(end) || errno || !(x >= lo && x <= hi))
        return FAIL(ps, "%s = '%s': expected a number in %g .. %g", key, v, lo, hi);
    *out = x;
    return ST_OK;
}

static int get_int(parser *ps, const char *key, const char *v, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (end == v || *trim(end) || errno || x < lo || x > hi)
        return FAIL(ps, "%s = '%s': expected a whole number in %ld .. %ld", key, v, lo, hi);
    *out = x;
    return ST_OK;
}

static int get_bool(parser *ps, const char *key, const char *v, bool *out)
{
    if (!strcmp(v, "yes") || !strcmp(v, "true") || !strcmp(v, "1"))
        *out = true;
    else if (!strcmp(v, "no") || !strcmp(v, "false") || !strcmp(v, "0"))
        *out = false;
    else
        return FAIL(ps, "%s = '%s': expected yes or no", key, v);
    return ST_OK;
}

static int get_str(parser *ps, const char *key, const char *v, char *out, size_t cap)
{
    if (strlen(v) >= cap)
        return FAIL(ps, "%s: value longer than %zu characters", key, cap - 1);
    memcpy(out, v, strlen(v) + 1);
    return ST_OK;
}

static int find_turn(const st_scenario *sc, size_t before, const char *name)
{
    for (size_t j = 0; j < before; j++)
        if (!strcmp(sc->turns[j].name, name))
            return (int)j;
    return -1;
}

/*  at = SECONDS | EVENT [NAME] [+|- SECONDS], EVENT in user_end,
    agent_start, agent_end; NAME defaults to the previous turn. */
static int parse_at(parser *ps, size_t ti, const char *v, st_scenario_anchor *a)
{
    char buf[ST_SCENARIO_TEXT];
    snprintf(buf, sizeof buf, "%s", v);
    char *s = trim(buf);
    if (isdigit((unsigned char)*s) || *s == '.') {
        a->kind = ST_AT_ABSOLUTE;
        a->ref = -1;
        return get_double(ps, "at", s, 0, 86400, &a->offset_s);
    }
    static const struct {
        const char *word;
        st_anchor_kind kind;
    } events[] = {{"user_end", ST_AT_USER_END},
                  {"agent_start", ST_AT_AGENT_START},
                  {"agent_end", ST_AT_AGENT_END}};
    size_t e = 0;
    size_t wl = 0;
    for (; e < 3; e++) {
        wl = strlen(events[e].word);
        if (!strncmp(s, events[e].word, wl) && (!s[wl] || isspace((unsigned char)s[wl]) ||
                                                s[wl] == '+' || s[wl] == '-'))
            break;
    }
    if (e == 3)
        return FAIL(ps, "at = '%s': expected seconds, or user_end|agent_start|agent_end "
                        "[TURN] [+|- SECONDS]",
                    v);
    a->kind = events[e].kind;
    char *p = trim(s + wl);
    char name[ST_SCENARIO_NAME] = "";
    size_t nl = 0;
    while (p[nl] && !isspace((unsigned char)p[nl]) && p[nl] != '+' && p[nl] != '-')
        nl++;
    if (nl) {
        if (nl >= sizeof name)
            return FAIL(ps, "at: turn name too long");
        memcpy(name, p, nl);
        name[nl] = '\0';
        p = trim(p + nl);
    }
    if (*name) {
        a->ref = find_turn(ps->sc, ti, name);
        if (a->ref < 0)
            return FAIL(ps, "at = '%s': no turn '%s' before this one (an anchor names an "
                            "earlier turn)",
                        v, name);
    } else {
        if (ti == 0)
            return FAIL(ps, "at = '%s': the first turn has no previous turn to refer to", v);
        a->ref = (int)ti - 1;
    }
    a->offset_s = 0;
    if (*p) {
        double sign = *p == '-' ? -1 : 1;
        if (*p != '+' && *p != '-')
            return FAIL(ps, "at = '%s': expected + or - SECONDS after the event", v);
        p = trim(p + 1);
        if (get_double(ps, "at", p, 0, 3600, &a->offset_s))
            return ST_ERR_FORMAT;
        a->offset_s *= sign;
    }
    return ST_OK;
}

static void turn_defaults(st_scenario_turn *t, size_t index, int line)
{
    memset(t, 0, sizeof *t);
    t->line = line;
    t->kind = ST_TURN_COMMAND;
    snprintf(t->engine, sizeof t->engine, "espeak");
    t->level_db = -20;
    t->pause_s = 0.8;
    t->file_gap_s = 0.15;
    t->duration_s = 0.3;
    if (index == 0)
        t->at = (st_scenario_anchor){ST_AT_ABSOLUTE, -1, 1.0};
    else
        t->at = (st_scenario_anchor){ST_AT_AGENT_END, (int)index - 1, 1.0};
    snprintf(t->intent, sizeof t->intent, "none");
    t->interrupts = false;
}

/* Checks of a finished turn (the parser's line is its header's). */
static int finish_turn(parser *ps)
{
    st_scenario *sc = ps->sc;
    if (!sc->n_turns)
        return ST_OK;
    st_scenario_turn *t = &sc->turns[sc->n_turns - 1];
    int saved = ps->line;
    ps->line = t->line;
    int rc = ST_OK;
    if (t->kind != ST_TURN_NOISE && !*t->text && !*t->files)
        rc = FAIL(ps, "[turn %s] has neither text nor files", t->name);
    else if (*t->text && *t->files)
        rc = FAIL(ps, "[turn %s] has both text and files: give one", t->name);
    else if (*t->fallback_text && !*t->files)
        rc = FAIL(ps, "[turn %s]: fallback_text is for file turns", t->name);
    else if (strcmp(t->engine, "espeak") && strcmp(t->engine, "flite"))
        rc = FAIL(ps, "[turn %s]: engine '%s' is not espeak or flite", t->name, t->engine);
    ps->line = saved;
    return rc;
}

static int scenario_key(parser *ps, const char *k, const char *v)
{
    st_scenario *sc = ps->sc;
    long l;
    if (!strcmp(k, "name"))
        return get_str(ps, k, v, sc->name, sizeof sc->name);
    if (!strcmp(k, "description"))
        return get_str(ps, k, v, sc->description, sizeof sc->description);
    if (!strcmp(k, "seed")) {
        if (get_int(ps, k, v, 0, 0x7fffffff, &l))
            return ST_ERR_FORMAT;
        sc->seed = (uint32_t)l;
        return ST_OK;
    }
    if (!strcmp(k, "tail_s"))
        return get_double(ps, k, v, 0, 600, &sc->tail_s);
    if (!strcmp(k, "noise"))
        return get_str(ps, k, v, sc->noise, sizeof sc->noise);
    if (!strcmp(k, "noise_fallback")) {
        if (strcmp(v, "white") && strcmp(v, "pink") && strcmp(v, "brown"))
            return FAIL(ps, "noise_fallback = '%s': expected white, pink or brown", v);
        return get_str(ps, k, v, sc->noise_fallback, sizeof sc->noise_fallback);
    }
    if (!strcmp(k, "noise_db"))
        return get_double(ps, k, v, -120, 0, &sc->noise_db);
    if (!strcmp(k, "room"))
        return get_bool(ps, k, v, &sc->room);
    if (!strcmp(k, "room_delay_ms"))
        return get_double(ps, k, v, 0, 500, &sc->room_params.delay_ms);
    if (!strcmp(k, "room_rt60_ms"))
        return get_double(ps, k, v, 0, 2000, &sc->room_params.rt60_ms);
    if (!strcmp(k, "room_gain"))
        return get_double(ps, k, v, 0, 4, &sc->room_params.direct_gain);
    if (!strcmp(k, "agent_engine"))
        return get_str(ps, k, v, sc->agent_engine, sizeof sc->agent_engine);
    if (!strcmp(k, "agent_voice"))
        return get_str(ps, k, v, sc->agent_voice, sizeof sc->agent_voice);
    return FAIL(ps, "unknown key '%s' in [scenario] (see docs/SCENARIOS.md)", k);
}

static int turn_key(parser *ps, const char *k, const char *v)
{
    st_scenario *sc = ps->sc;
    size_t ti = sc->n_turns - 1;
    st_scenario_turn *t = &sc->turns[ti];
    long l;
    if (!strcmp(k, "kind")) {
        if (st_turn_kind_from_name(v, &t->kind))
            return FAIL(ps, "kind = '%s': %s", v, st_errmsg());
        if (t->kind == ST_TURN_INTERRUPTION)
            t->interrupts = true;
        return ST_OK;
    }
    if (!strcmp(k, "text"))
        return get_str(ps, k, v, t->text, sizeof t->text);
    if (!strcmp(k, "files"))
        return get_str(ps, k, v, t->files, sizeof t->files);
    if (!strcmp(k, "fallback_text"))
        return get_str(ps, k, v, t->fallback_text, sizeof t->fallback_text);
    if (!strcmp(k, "engine"))
        return get_str(ps, k, v, t->engine, sizeof t->engine);
    if (!strcmp(k, "voice"))
        return get_str(ps, k, v, t->voice, sizeof t->voice);
    if (!strcmp(k, "rate_wpm")) {
        if (get_int(ps, k, v, 80, 450, &l))
            return ST_ERR_FORMAT;
        t->rate_wpm = (int)l;
        return ST_OK;
    }
    if (!strcmp(k, "level_db"))
        return get_double(ps, k, v, -90, 0, &t->level_db);
    if (!strcmp(k, "pause_s"))
        return get_double(ps, k, v, 0, 30, &t->pause_s);
    if (!strcmp(k, "file_gap_s"))
        return get_double(ps, k, v, 0, 10, &t->file_gap_s);
    if (!strcmp(k, "duration_s"))
        return get_double(ps, k, v, 0.01, 10, &t->duration_s);
    if (!strcmp(k, "at")) {
        t->at_line = ps->line;
        return parse_at(ps, ti, v, &t->at);
    }
    if (!strcmp(k, "intent"))
        return get_str(ps, k, v, t->intent, sizeof t->intent);
    if (!strcmp(k, "expect"))
        return get_str(ps, k, v, t->expect, sizeof t->expect);
    if (!strcmp(k, "interrupts"))
        return get_bool(ps, k, v, &t->interrupts);
    return FAIL(ps, "unknown key '%s' in [turn %s] (see docs/SCENARIOS.md)", k, t->name);
}

static int section_header(parser *ps, char *s)
{
    size_t n = strlen(s);
    if (s[n - 1] != ']')
        return FAIL(ps, "section header without its closing ']'");
    s[n - 1] = '\0';
    char *name = trim(s + 1);
    if (finish_turn(ps))
        return ST_ERR_FORMAT;
    if (!strcmp(name, "scenario")) {
        if (ps->seen_scenario)
            return FAIL(ps, "a second [scenario] section");
        ps->seen_scenario = true;
        ps->section = 1;
        return ST_OK;
    }
    if (!strncmp(name, "turn", 4) && (isspace((unsigned char)name[4]) || !name[4])) {
        char *tn = trim(name + 4);
        if (!*tn)
            return FAIL(ps, "[turn] needs a name: [turn NAME]");
        for (const char *c = tn; *c; c++)
            if (!isalnum((unsigned char)*c) && *c != '_' && *c != '-' && *c != '.')
                return FAIL(ps, "turn name '%s': use letters, digits, _ - .", tn);
        if (strlen(tn) >= ST_SCENARIO_NAME)
            return FAIL(ps, "turn name '%s' is longer than %d characters", tn,
                        ST_SCENARIO_NAME - 1);
        st_scenario *sc = ps->sc;
        if (find_turn(sc, sc->n_turns, tn) >= 0)
            return FAIL(ps, "a second [turn %s]: turn names must be unique", tn);
        if (sc->n_turns == ps->cap) {
            size_t cap = ps->cap ? 2 * ps->cap : 16;
            st_scenario_turn *nt = realloc(sc->turns, cap * sizeof *nt);
            if (!nt)
                return st_error(ST_ERR_NOMEM, "%s: out of memory at line %d", ps->origin,
                                ps->line);
            sc->turns = nt;
            ps->cap = cap;
        }
        st_scenario_turn *t = &sc->turns[sc->n_turns];
        turn_defaults(t, sc->n_turns, ps->line);
        snprintf(t->name, sizeof t->name, "%s", tn);
        sc->n_turns++;
        ps->section = 2;
        return ST_OK;
    }
    return FAIL(ps, "unknown section [%s]: expected [scenario] or [turn NAME]", name);
}

static void scenario_defaults(st_scenario *sc, const char *origin)
{
    memset(sc, 0, sizeof *sc);
    snprintf(sc->path, sizeof sc->path, "%s", origin);
    sc->seed = 1;
    sc->tail_s = 3;
    snprintf(sc->noise, sizeof sc->noise, "none");
    snprintf(sc->noise_fallback, sizeof sc->noise_fallback, "pink");
    sc->noise_db = -50;
    sc->room = false;
    sc->room_params = st_room_default_params();
    snprintf(sc->agent_engine, sizeof sc->agent_engine, "espeak");
    snprintf(sc->agent_voice, sizeof sc->agent_voice, "en-us");
}

int st_scenario_parse(const char *text, const char *origin, st_scenario *out)
{
    scenario_defaults(out, origin);
    parser ps = {.origin = origin, .sc = out};
    const char *p = text;
    int rc = ST_OK;
    char line[2048];
    while (*p && !rc) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        ps.line++;
        if (len >= sizeof line) {
            rc = FAIL(&ps, "line longer than %zu characters", sizeof line - 1);
            break;
        }
        memcpy(line, p, len);
        line[len] = '\0';
        p += len + (nl ? 1 : 0);
        char *s = trim(line);
        if (!*s || *s == '#' || *s == ';')
            continue;
        if (*s == '[') {
            rc = section_header(&ps, s);
            continue;
        }
        char *eq = strchr(s, '=');
        if (!eq) {
            rc = FAIL(&ps, "expected 'key = value', a [section] or a # comment: '%s'", s);
            break;
        }
        *eq = '\0';
        char *k = trim(s), *v = trim(eq + 1);
        if (!*k)
            rc = FAIL(&ps, "a value without a key");
        else if (ps.section == 0)
            rc = FAIL(&ps, "'%s' before any section: start with [scenario]", k);
        else if (ps.section == 1)
            rc = scenario_key(&ps, k, v);
        else
            rc = turn_key(&ps, k, v);
    }
    if (!rc)
        rc = finish_turn(&ps);
    if (!rc && !out->n_turns) {
        ps.line++;
        rc = FAIL(&ps, "no [turn NAME] section: a scenario needs at least one turn");
    }
    if (rc) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", st_errmsg());
        st_scenario_free(out);
        return st_error(rc, "%s", msg);
    }
    if (!*out->name) {
        const char *b = strrchr(origin, '/');
        snprintf(out->name, sizeof out->name, "%s", b ? b + 1 : origin);
        char *dot = strrchr(out->name, '.');
        if (dot)
            *dot = '\0';
    }
    return ST_OK;
}

int st_scenario_load(const char *path, st_scenario *out)
{
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f)
        return st_error(errno == ENOENT ? ST_ERR_NOT_FOUND : ST_ERR_IO,
                        "scenario '%s': cannot open: %s", path, strerror(errno));
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            cap = cap ? 2 * cap : 16384;
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                return st_error(ST_ERR_NOMEM, "scenario '%s': out of memory", path);
            }
            buf = nb;
        }
        size_t got = fread(buf + len, 1, 4096, f);
        len += got;
        if (got < 4096)
            break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return st_error(ST_ERR_IO, "scenario '%s': read failed", path);
    }
    buf[len] = '\0';
    if (memchr(buf, '\0', len)) {
        free(buf);
        return st_error(ST_ERR_FORMAT, "scenario '%s': a binary file, not text", path);
    }
    int rc = st_scenario_parse(buf, path, out);
    free(buf);
    return rc;
}

void st_scenario_free(st_scenario *sc)
{
    if (!sc)
        return;
    free(sc->turns);
    sc->turns = NULL;
    sc->n_turns = 0;
}

/* ---- rendering ----------------------------------------------------------- */

st_scenario_render_params st_scenario_render_default_params(void)
{
    return (st_scenario_render_params){
        .synth = NULL,
        .synth_data = NULL,
        .data_dir = NULL,
        .agent_latency_s = 0.5,
        .answer_s = 2.0,
        .long_answer_s = 12.0,
    };
}

void st_scenario_clip_free(st_scenario_clip *c)
{
    if (!c)
        return;
    free(c->samples);
    free(c->words);
    memset(c, 0, sizeof *c);
}

/*  A growing clip: samples and words appended. */
static int clip_append(st_scenario_clip *c, size_t *cap, const float *x, size_t n)
{
    if (c->frames + n > *cap) {
        size_t nc = *cap ? *cap : RATE;
        while (nc < c->frames + n)
            nc *= 2;
        float *ns = realloc(c->samples, nc * sizeof *ns);
        if (!ns)
            return st_error(ST_ERR_NOMEM, "scenario: out of memory rendering a turn");
        c->samples = ns;
        *cap = nc;
    }
    if (x)
        memcpy(c->samples + c->frames, x, n * sizeof *x);
    else
        memset(c->samples + c->frames, 0, n * sizeof *c->samples);
    c->frames += n;
    return ST_OK;
}

static int clip_word(st_scenario_clip *c, uint64_t start, uint64_t end, const char *text)
{
    st_scenario_word *nw = realloc(c->words, (c->n_words + 1) * sizeof *nw);
    if (!nw)
        return st_error(ST_ERR_NOMEM, "scenario: out of memory rendering a turn");
    c->words = nw;
    st_scenario_word *w = &c->words[c->n_words++];
    w->start = start;
    w->end = end;
    snprintf(w->text, sizeof w->text, "%s", text);
    return ST_OK;
}

static void resolve_path(const st_scenario *sc, const char *data_dir, const char *name, char *out,
                         size_t cap)
{
    if (!strncmp(name, "shared:", 7)) {
        snprintf(out, cap, "%s/%s", data_dir ? data_dir : "../shared/data", name + 7);
        return;
    }
    if (name[0] == '/') {
        snprintf(out, cap, "%s", name);
        return;
    }
    const char *slash = strrchr(sc->path, '/');
    if (slash)
        snprintf(out, cap, "%.*s/%s", (int)(slash - sc->path), sc->path, name);
    else
        snprintf(out, cap, "%s", name);
}

/*  A whole file at 16 kHz (caller frees). */
static int read16k(const char *path, float **out, size_t *n)
{
    st_audio a;
    int rc = st_audio_read(path, &a);
    if (rc)
        return rc;
    if (a.sample_rate_hz == RATE) {
        *out = a.samples;
        *n = a.frames;
        return ST_OK;
    }
    int err;
    st_resampler *r = st_resampler_new(a.sample_rate_hz, RATE, ST_RESAMPLE_MEDIUM, &err);
    if (!r) {
        st_audio_free(&a);
        return err;
    }
    size_t cap = st_resampler_max_output(r, a.frames) + 4096, made = 0, used = 0, m;
    float *y = malloc(cap * sizeof *y);
    rc = y ? st_resampler_process(r, a.samples, a.frames, y, cap, &used, &made)
           : st_error(ST_ERR_NOMEM, "out of memory resampling '%s'", path);
    while (!rc && !(rc = st_resampler_flush(r, y + made, cap - made, &m)) && m)
        made += m;
    st_resampler_destroy(&r);
    st_audio_free(&a);
    if (rc) {
        free(y);
        return rc;
    }
    *out = y;
    *n = made;
    return ST_OK;
}

/*  Speech bounds of a recording: the first and last 10 ms frame whose RMS
    is within 30 dB of the loudest frame (and above -60 dBFS). */
static void speech_bounds(const float *x, size_t n, size_t *s, size_t *e)
{
    size_t hop = RATE / 100, nf = n / hop;
    double peak = 0;
    for (size_t f = 0; f < nf; f++) {
        double acc = 0;
        for (size_t i = f * hop; i < (f + 1) * hop; i++)
            acc += (double)x[i] * x[i];
        peak = fmax(peak, acc / hop);
    }
    double thr = fmax(peak * 1e-3, 1e-6);
    *s = 0;
    *e = n;
    size_t first = nf, last = 0;
    for (size_t f = 0; f < nf; f++) {
        double acc = 0;
        for (size_t i = f * hop; i < (f + 1) * hop; i++)
            acc += (double)x[i] * x[i];
        if (acc / hop >= thr) {
            if (first == nf)
                first = f;
            last = f;
        }
    }
    if (first < nf) {
        *s = first * hop;
        *e = (last + 1) * hop;
    }
}

static uint32_t xs(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

static double unif(uint32_t *s)
{
    return (double)xs(s) / 4294967296.0 * 2.0 - 1.0;
}

/*  n samples of coloured noise (white, pink: Kellet's filter, brown: leaky
    integrator), normalised to RMS 1. */
static void gen_noise(const char *kind, uint32_t seed, float *x, size_t n)
{
    uint32_t s = seed ? seed * 2654435761u : 0x9e3779b9u;
    double b0 = 0, b1 = 0, b2 = 0, b3 = 0, b4 = 0, b5 = 0, b6 = 0, br = 0;
    for (size_t i = 0; i < n; i++) {
        double w = unif(&s);
        double y;
        if (!strcmp(kind, "pink")) {
            b0 = 0.99886 * b0 + w * 0.0555179;
            b1 = 0.99332 * b1 + w * 0.0750759;
            b2 = 0.96900 * b2 + w * 0.1538520;
            b3 = 0.86650 * b3 + w * 0.3104856;
            b4 = 0.55000 * b4 + w * 0.5329522;
            b5 = -0.7616 * b5 - w * 0.0168980;
            y = b0 + b1 + b2 + b3 + b4 + b5 + b6 + w * 0.5362;
            b6 = w * 0.115926;
        } else if (!strcmp(kind, "brown")) {
            br = 0.995 * br + 0.1 * w;
            y = br;
        } else {
            y = w;
        }
        x[i] = (float)y;
    }
    double acc = 0;
    for (size_t i = 0; i < n; i++)
        acc += (double)x[i] * x[i];
    double g = acc > 0 ? 1.0 / sqrt(acc / (double)n) : 0;
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(x[i] * g);
}

/*  Scales the clip so that its speech (the samples inside its words' spans,
    not the pauses between them) has RMS level_db dBFS. */
static void set_level(st_scenario_clip *c, double level_db)
{
    double acc = 0;
    size_t n = 0;
    uint64_t covered = 0; /* words may overlap: count each sample once */
    for (size_t w = 0; w < c->n_words; w++) {
        uint64_t s = c->words[w].start > covered ? c->words[w].start : covered;
        uint64_t e = c->words[w].end < c->frames ? c->words[w].end : c->frames;
        for (uint64_t i = s; i < e; i++)
            acc += (double)c->samples[i] * c->samples[i];
        if (e > s) {
            n += (size_t)(e - s);
            covered = e;
        }
    }
    if (!n || acc <= 0)
        return;
    double g = pow(10.0, level_db / 20.0) / sqrt(acc / (double)n);
    for (size_t i = 0; i < c->frames; i++)
        c->samples[i] = (float)(c->samples[i] * g);
}

/*  Synthesizes the text's parts ('|') and joins them: part k is kept from
    its first word's start (k > 0) to its last word's end (k < last), with
    pause_s of silence between, so each pause is exactly pause_s long. */
static int render_text(const st_scenario *sc, const st_scenario_turn *t, const char *text,
                       const st_scenario_render_params *p, st_scenario_clip *c,
                       st_scenario_truth *tr)
{
    if (!p->synth)
        return st_error(ST_ERR_INVALID, "%s:%d: [turn %s] needs a synthesizer (none given)",
                        sc->path, t->line, t->name);
    char buf[ST_SCENARIO_TEXT];
    snprintf(buf, sizeof buf, "%s", text);
    char *parts[ST_SCENARIO_MAX_PARTS];
    int np = 0;
    for (char *s = buf;;) {
        char *bar = strchr(s, '|');
        if (bar)
            *bar = '\0';
        if (np == ST_SCENARIO_MAX_PARTS)
            return st_error(ST_ERR_FORMAT, "%s:%d: [turn %s] has more than %d parts", sc->path,
                            t->line, t->name, ST_SCENARIO_MAX_PARTS);
        parts[np++] = trim(s);
        if (!bar)
            break;
        s = bar + 1;
    }
    size_t cap = 0;
    for (int k = 0; k < np; k++) {
        st_scenario_clip part = {0};
        int rc = p->synth(p->synth_data, t->engine, *t->voice ? t->voice : NULL, t->rate_wpm,
                          parts[k], &part);
        if (rc) {
            char msg[512];
            snprintf(msg, sizeof msg, "%s", st_errmsg());
            st_scenario_clip_free(&part);
            return st_error(rc, "%s:%d: [turn %s]: synthesizing '%s': %s", sc->path, t->line,
                            t->name, parts[k], msg);
        }
        if (!part.n_words) {
            st_scenario_clip_free(&part);
            return st_error(ST_ERR_FORMAT, "%s:%d: [turn %s]: '%s' made no words", sc->path,
                            t->line, t->name, parts[k]);
        }
        size_t from = k > 0 ? (size_t)part.words[0].start : 0;
        size_t to = k < np - 1 ? (size_t)part.words[part.n_words - 1].end : part.frames;
        if (to > part.frames)
            to = part.frames;
        if (from > to)
            from = to;
        uint64_t base = c->frames;
        rc = clip_append(c, &cap, part.samples + from, to - from);
        for (size_t w = 0; !rc && w < part.n_words; w++)
            rc = clip_word(c, base + part.words[w].start - from, base + part.words[w].end - from,
                           part.words[w].text);
        if (!rc) {
            tr->part_start[k] = base + part.words[0].start - from;
            tr->part_end[k] = base + part.words[part.n_words - 1].end - from;
        }
        if (!rc && k < np - 1)
            rc = clip_append(c, &cap, NULL, (size_t)lround(t->pause_s * RATE));
        st_scenario_clip_free(&part);
        if (rc)
            return rc;
    }
    tr->n_parts = np;
    return ST_OK;
}

/*  Reads the files and joins them ('|' = pause_s, else file_gap_s); each
    file is one "word" spanning its speech bounds. Returns ST_ERR_NOT_FOUND
    (with *missing set) when a file does not exist. */
static int render_files(const st_scenario *sc, const st_scenario_turn *t,
                        const st_scenario_render_params *p, st_scenario_clip *c,
                        st_scenario_truth *tr, bool *missing)
{
    char buf[ST_SCENARIO_TEXT];
    snprintf(buf, sizeof buf, "%s", t->files);
    size_t cap = 0;
    int np = 0;
    bool pause_next = false, first = true, part_open = false;
    char *save = NULL;
    for (char *tok = strtok_r(buf, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save)) {
        if (!strcmp(tok, "|")) {
            pause_next = true;
            continue;
        }
        char path[1024];
        resolve_path(sc, p->data_dir, tok, path, sizeof path);
        float *x = NULL;
        size_t n = 0;
        int rc = read16k(path, &x, &n);
        if (rc) {
            *missing = rc == ST_ERR_NOT_FOUND;
            char msg[512];
            snprintf(msg, sizeof msg, "%s", st_errmsg());
            return st_error(rc, "%s:%d: [turn %s]: %s", sc->path, t->line, t->name, msg);
        }
        size_t s, e;
        speech_bounds(x, n, &s, &e);
        if (!first) {
            if (pause_next && np < ST_SCENARIO_MAX_PARTS) {
                tr->part_end[np - 1] = c->words[c->n_words - 1].end;
                part_open = false;
            }
            rc = clip_append(c, &cap, NULL,
                             (size_t)lround((pause_next ? t->pause_s : t->file_gap_s) * RATE));
        }
        uint64_t base = c->frames;
        if (!rc)
            rc = clip_append(c, &cap, x + s, e - s);
        const char *b = strrchr(tok, '/');
        if (!rc)
            rc = clip_word(c, base, base + (e - s), b ? b + 1 : tok);
        free(x);
        if (rc)
            return rc;
        if (!part_open && np < ST_SCENARIO_MAX_PARTS) {
            tr->part_start[np++] = base;
            part_open = true;
        }
        first = false;
        pause_next = false;
    }
    if (!c->n_words)
        return st_error(ST_ERR_FORMAT, "%s:%d: [turn %s]: files = '' names no file", sc->path,
                        t->line, t->name);
    tr->part_end[np - 1] = c->words[c->n_words - 1].end;
    tr->n_parts = np;
    /* a little silence either side, as a recording has */
    float *ns = malloc((c->frames + RATE / 5) * sizeof *ns);
    if (!ns)
        return st_error(ST_ERR_NOMEM, "scenario: out of memory");
    size_t pad = RATE / 10;
    memset(ns, 0, (c->frames + 2 * pad) * sizeof *ns);
    memcpy(ns + pad, c->samples, c->frames * sizeof *ns);
    free(c->samples);
    c->samples = ns;
    c->frames += 2 * pad;
    for (size_t w = 0; w < c->n_words; w++) {
        c->words[w].start += pad;
        c->words[w].end += pad;
    }
    for (int k = 0; k < np; k++) {
        tr->part_start[k] += pad;
        tr->part_end[k] += pad;
    }
    tr->from_files = true;
    return ST_OK;
}

/*  A noise burst (cough, door): noise with a fast attack and exponential
    decay, duration_s long. */
static int render_burst(const st_scenario *sc, size_t i, const st_scenario_turn *t,
                        st_scenario_clip *c, st_scenario_truth *tr)
{
    size_t n = (size_t)lround(t->duration_s * RATE), pad = RATE / 20;
    size_t cap = 0;
    if (clip_append(c, &cap, NULL, n + 2 * pad))
        return ST_ERR_NOMEM;
    float *x = c->samples + pad;
    gen_noise("pink", sc->seed * 7919u + (uint32_t)i, x, n);
    for (size_t k = 0; k < n; k++) {
        double tt = (double)k / (double)n;
        double env = fmin(1.0, tt * 50.0) * exp(-4.0 * tt);
        x[k] = (float)(x[k] * env);
    }
    if (clip_word(c, pad, pad + n, "<noise>"))
        return ST_ERR_NOMEM;
    tr->part_start[0] = pad;
    tr->part_end[0] = pad + n;
    tr->n_parts = 1;
    return ST_OK;
}

int st_scenario_render_turn(const st_scenario *sc, size_t i, const st_scenario_render_params *p,
                            st_scenario_clip *clip, st_scenario_truth *truth)
{
    memset(clip, 0, sizeof *clip);
    memset(truth, 0, sizeof *truth);
    if (i >= sc->n_turns)
        return st_error(ST_ERR_INVALID, "scenario %s: no turn %zu (it has %zu)", sc->path, i,
                        sc->n_turns);
    const st_scenario_turn *t = &sc->turns[i];
    truth->turn = i;
    int rc;
    if (t->kind == ST_TURN_NOISE && !*t->text && !*t->files) {
        rc = render_burst(sc, i, t, clip, truth);
    } else if (*t->files) {
        bool missing = false;
        rc = render_files(sc, t, p, clip, truth, &missing);
        if (rc && missing && *t->fallback_text) {
            st_scenario_clip_free(clip);
            memset(truth, 0, sizeof *truth);
            truth->turn = i;
            truth->fallback = true;
            rc = render_text(sc, t, t->fallback_text, p, clip, truth);
        }
    } else {
        rc = render_text(sc, t, t->text, p, clip, truth);
    }
    if (rc) {
        st_scenario_clip_free(clip);
        return rc;
    }
    set_level(clip, t->level_db);
    truth->start = truth->at = clip->words[0].start;
    truth->end = clip->words[clip->n_words - 1].end;
    return ST_OK;
}

int64_t st_scenario_turn_at(const st_scenario *sc, size_t i, const int64_t *user_end,
                            const int64_t *agent_start, const int64_t *agent_end)
{
    const st_scenario_anchor *a = &sc->turns[i].at;
    int64_t base;
    switch (a->kind) {
    case ST_AT_ABSOLUTE: base = 0; break;
    case ST_AT_USER_END: base = user_end[a->ref]; break;
    case ST_AT_AGENT_START: base = agent_start[a->ref]; break;
    default: base = agent_end[a->ref]; break;
    }
    if (base < 0)
        return -1;
    int64_t at = base + (int64_t)llround(a->offset_s * RATE);
    return at < 0 ? 0 : at;
}

static bool long_answer(const st_scenario_turn *t)
{
    return !strcmp(t->intent, "story") || !strcmp(t->intent, "joke") ||
           t->kind == ST_TURN_ECHO_ONLY;
}

void st_scenario_rendering_free(st_scenario_rendering *r)
{
    if (!r)
        return;
    free(r->samples);
    free(r->turns);
    free(r->words);
    memset(r, 0, sizeof *r);
}

int st_scenario_render(const st_scenario *sc, const st_scenario_render_params *p,
                       st_scenario_rendering *out)
{
    memset(out, 0, sizeof *out);
    size_t nt = sc->n_turns;
    st_scenario_clip *clips = calloc(nt, sizeof *clips);
    int64_t *ue = malloc(nt * sizeof *ue), *as = malloc(nt * sizeof *as),
            *ae = malloc(nt * sizeof *ae), *shift = malloc(nt * sizeof *shift);
    out->turns = calloc(nt, sizeof *out->turns);
    out->n_turns = nt;
    int rc = ST_OK;
    if (!clips || !ue || !as || !ae || !shift || !out->turns)
        rc = st_error(ST_ERR_NOMEM, "scenario %s: out of memory", sc->path);
    size_t total_words = 0;
    uint64_t end_all = 0;
    for (size_t i = 0; !rc && i < nt; i++) {
        st_scenario_truth tr;
        rc = st_scenario_render_turn(sc, i, p, &clips[i], &tr);
        if (rc)
            break;
        /* the speech starts at `at`: the clip's first word goes there (a clip
           that would start before the conversation starts at 0 instead) */
        int64_t at = st_scenario_turn_at(sc, i, ue, as, ae);
        shift[i] = at - (int64_t)tr.start;
        if (shift[i] < 0)
            shift[i] = 0;
        uint64_t sh = (uint64_t)shift[i];
        tr.at = (uint64_t)at;
        tr.start += sh;
        tr.end += sh;
        for (int k = 0; k < tr.n_parts; k++) {
            tr.part_start[k] += sh;
            tr.part_end[k] += sh;
        }
        for (size_t w = 0; w < clips[i].n_words; w++) {
            clips[i].words[w].start += sh;
            clips[i].words[w].end += sh;
        }
        /* the assumed agent: answers what is not a backchannel or a noise */
        const st_scenario_turn *t = &sc->turns[i];
        ue[i] = (int64_t)tr.end;
        if (t->kind != ST_TURN_BACKCHANNEL && t->kind != ST_TURN_NOISE) {
            as[i] = ue[i] + (int64_t)llround(p->agent_latency_s * RATE);
            ae[i] = as[i] +
                    (int64_t)llround((long_answer(t) ? p->long_answer_s : p->answer_s) * RATE);
        } else {
            as[i] = ae[i] = ue[i];
        }
        /* an interruption ends the answer it interrupts */
        if (t->interrupts && t->at.kind != ST_AT_ABSOLUTE && ae[t->at.ref] > (int64_t)tr.start) {
            ae[t->at.ref] = (int64_t)tr.start;
            out->turns[t->at.ref].agent_end = tr.start;
        }
        tr.agent_start = (uint64_t)as[i];
        tr.agent_end = (uint64_t)ae[i];
        out->turns[i] = tr;
        total_words += clips[i].n_words;
        uint64_t clip_end = sh + clips[i].frames;
        if (clip_end > end_all)
            end_all = clip_end;
        if ((uint64_t)ae[i] > end_all)
            end_all = (uint64_t)ae[i];
    }
    if (!rc) {
        out->frames = (size_t)end_all + (size_t)lround(sc->tail_s * RATE);
        out->samples = calloc(out->frames ? out->frames : 1, sizeof *out->samples);
        out->words = calloc(total_words ? total_words : 1, sizeof *out->words);
        if (!out->samples || !out->words)
            rc = st_error(ST_ERR_NOMEM, "scenario %s: out of memory for %.0f s", sc->path,
                          (double)out->frames / RATE);
    }
    for (size_t i = 0; !rc && i < nt; i++) {
        float *dst = out->samples + shift[i];
        for (size_t k = 0; k < clips[i].frames; k++)
            dst[k] += clips[i].samples[k];
        for (size_t w = 0; w < clips[i].n_words; w++)
            out->words[out->n_words++] = clips[i].words[w];
    }
    if (!rc) {
        bool fell = false;
        int err;
        st_scenario_noise *nz = st_scenario_noise_new(sc, p->data_dir, &fell, &err);
        if (!nz && err)
            rc = err;
        st_scenario_noise_add(nz, 0, out->samples, out->frames);
        st_scenario_noise_destroy(&nz);
        out->noise_fallback = fell;
    }
    for (size_t i = 0; clips && i < nt; i++)
        st_scenario_clip_free(&clips[i]);
    free(clips);
    free(ue);
    free(as);
    free(ae);
    free(shift);
    if (rc)
        st_scenario_rendering_free(out);
    return rc;
}

/* ---- background noise ---------------------------------------------------- */

struct st_scenario_noise {
    float *loop;                 /* at the scenario's level */
    size_t len;
};

st_scenario_noise *st_scenario_noise_new(const st_scenario *sc, const char *data_dir,
                                         bool *fell_back, int *err)
{
    if (fell_back)
        *fell_back = false;
    if (err)
        *err = ST_OK;
    if (!strcmp(sc->noise, "none"))
        return NULL;
    st_scenario_noise *nz = calloc(1, sizeof *nz);
    if (!nz) {
        if (err)
            *err = st_error(ST_ERR_NOMEM, "scenario noise: out of memory");
        return NULL;
    }
    const char *kind = NULL;
    if (!strcmp(sc->noise, "white") || !strcmp(sc->noise, "pink") || !strcmp(sc->noise, "brown"))
        kind = sc->noise;
    if (!kind) {
        char path[1024];
        resolve_path(sc, data_dir, sc->noise, path, sizeof path);
        int rc = read16k(path, &nz->loop, &nz->len);
        if (rc == ST_ERR_NOT_FOUND) {
            kind = sc->noise_fallback;
            if (fell_back)
                *fell_back = true;
        } else if (rc || nz->len < RATE / 10) {
            if (!rc)
                rc = st_error(ST_ERR_FORMAT, "scenario %s: noise file '%s' is shorter than 0.1 s",
                              sc->path, path);
            free(nz->loop);
            free(nz);
            if (err)
                *err = rc;
            return NULL;
        } else {
            /* normalise the file to RMS 1 */
            double acc = 0;
            for (size_t i = 0; i < nz->len; i++)
                acc += (double)nz->loop[i] * nz->loop[i];
            double g = acc > 0 ? 1.0 / sqrt(acc / (double)nz->len) : 0;
            for (size_t i = 0; i < nz->len; i++)
                nz->loop[i] = (float)(nz->loop[i] * g);
        }
    }
    if (kind) {
        nz->len = 10 * RATE;
        nz->loop = malloc(nz->len * sizeof *nz->loop);
        if (!nz->loop) {
            free(nz);
            if (err)
                *err = st_error(ST_ERR_NOMEM, "scenario noise: out of memory");
            return NULL;
        }
        gen_noise(kind, sc->seed, nz->loop, nz->len);
    }
    float g = (float)pow(10.0, sc->noise_db / 20.0);
    for (size_t i = 0; i < nz->len; i++)
        nz->loop[i] *= g;
    return nz;
}

void st_scenario_noise_add(st_scenario_noise *nz, uint64_t from, float *out, size_t n)
{
    if (!nz)
        return;
    size_t at = (size_t)(from % nz->len);
    for (size_t i = 0; i < n; i++) {
        out[i] += nz->loop[at];
        if (++at == nz->len)
            at = 0;
    }
}

void st_scenario_noise_destroy(st_scenario_noise **nz_p)
{
    if (!nz_p || !*nz_p)
        return;
    free((*nz_p)->loop);
    free(*nz_p);
    *nz_p = NULL;
}
