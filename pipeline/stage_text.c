/*  pipeline/stage_text.c - text stages: `text_source` (lines of a file or
    of the configuration, as utterances or word by word, like a language
    model's token stream), `rewrite` (whole-word replacements and case on
    every text token: the agent's text, rewritten on the way to the
    synthesizer) and `text_sink` (the transcript: one line per utterance, and
    one per final word hypothesis).

    What it may touch: files named in the configuration. Workload: a few
    tokens a second; every buffer is sized at create (64 KiB of script, 4 KiB
    per token and per transcript line).
*/
#include "pipeline_impl.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SCRIPT_MAX 65536
#define TOKEN_MAX 4096
#define LINE_MAX_ 4096

/* ---- text_source --------------------------------------------------------------- */

typedef struct {
    char *script;       /* lines, '\n'-separated */
    size_t pos, len;
    bool words;         /* one token per word */
    bool line_start;    /* the next word starts a line */
    uint64_t line_no;
    double spacing_s;   /* nominal time between lines, for sample indices */
} text_source;

static int ts_create(st_stage *s, void **self)
{
    text_source *t = calloc(1, sizeof *t);
    if (!t)
        return st_error(ST_ERR_NOMEM, "out of memory");
    *self = t;
    t->script = malloc(SCRIPT_MAX + 1);
    if (!t->script)
        return st_error(ST_ERR_NOMEM, "out of memory");
    const char *lines = st_stage_param(s, "lines", NULL);
    const char *file = st_stage_param(s, "file", NULL);
    double interval_ms;
    int rc;
    if ((rc = st_stage_param_bool(s, "words", false, &t->words)) ||
        (rc = st_stage_param_double(s, "interval_ms", 0, 0, 600000, &interval_ms)) ||
        (rc = st_stage_param_double(s, "spacing_s", 1, 0, 3600, &t->spacing_s)))
        return rc;
    if (!lines == !file)
        return st_error(ST_ERR_INVALID, "stage '%s' (text_source): give either lines = A | B | "
                        "... or file = PATH", st_stage_name(s));
    if (lines) {
        snprintf(t->script, SCRIPT_MAX + 1, "%s", lines);
        for (char *c = t->script; *c; c++)
            if (*c == '|')
                *c = '\n';
    } else {
        FILE *f = fopen(file, "r");
        if (!f)
            return st_error(ST_ERR_NOT_FOUND, "stage '%s' (text_source): cannot open '%s': %s",
                            st_stage_name(s), file, strerror(errno));
        size_t n = fread(t->script, 1, SCRIPT_MAX, f);
        bool more = fgetc(f) != EOF;
        fclose(f);
        if (more)
            return st_error(ST_ERR_INVALID, "stage '%s' (text_source): '%s' is longer than %d "
                            "bytes", st_stage_name(s), file, SCRIPT_MAX);
        t->script[n] = '\0';
    }
    t->len = strlen(t->script);
    t->line_start = true;
    st_stage_set_tick(s, interval_ms);
    return ST_OK;
}

static int ts_data(st_stage *s, void *self, const st_wire_msg *m)
{
    return ST_OK; /* a source has no input */
}

/* Emits the next line (or word); ST_ERR_END after the last. */
static int ts_tick(st_stage *s, void *self)
{
    text_source *t = self;
    for (;;) {
        while (t->pos < t->len && (t->script[t->pos] == ' ' || t->script[t->pos] == '\t'))
            t->pos++;
        if (t->pos >= t->len)
            return ST_ERR_END;
        if (t->script[t->pos] == '\n') {
            t->pos++;
            continue;
        }
        break;
    }
    size_t start = t->pos, end = start;
    if (t->words) {
        while (end < t->len && !isspace((unsigned char)t->script[end]))
            end++;
        /* Tokens join as they are, like a language model's: a word after the
           first of its line carries the space before it. */
        if (start > 0 && !t->line_start)
            start--;
    } else {
        while (end < t->len && t->script[end] != '\n')
            end++;
        while (end > start && isspace((unsigned char)t->script[end - 1]))
            end--;
    }
    t->pos = end;
    if (!t->words)
        while (t->pos < t->len && t->script[t->pos] != '\n')
            t->pos++;
    /* The utterance ends with its line. */
    size_t look = t->pos;
    while (look < t->len && (t->script[look] == ' ' || t->script[look] == '\t'))
        look++;
    bool last = !t->words || look >= t->len || t->script[look] == '\n';
    t->line_start = last;
    st_wire_header h;
    st_stage_header(s, NULL, &h);
    h.sample_index = (uint64_t)((double)t->line_no * t->spacing_s * 16000);
    if (last)
        t->line_no++;
    return st_stage_send_text(s, &h, last ? ST_TEXT_END : 0, t->script + start, end - start);
}

static void ts_destroy(void *self)
{
    text_source *t = self;
    if (!t)
        return;
    free(t->script);
    free(t);
}

const st_stage_type st__stage_text_source = {
    .name = "text_source",
    .summary = "says lines of text (from the configuration or a file), whole or word by word",
    .params_help = "lines = A | B       the utterances, separated by '|' (or file = PATH, one a line)\n"
                   "words = no          yes: one text token per word, like a language model\n"
                   "interval_ms = 0     time between tokens (0: as fast as the pipeline takes them)\n"
                   "spacing_s = 1       nominal time between lines, for the sample indices\n",
    .create = ts_create,
    .data = ts_data,
    .tick = ts_tick,
    .destroy = ts_destroy,
};

/* ---- rewrite ------------------------------------------------------------------- */

#define MAX_RULES 16
typedef struct {
    char from[MAX_RULES][64], to[MAX_RULES][64];
    int n_rules;
    int letter_case;    /* 0 keep, 1 upper, 2 lower */
    char *buf;          /* TOKEN_MAX * 4 */
} rewrite;

static int rw_create(st_stage *s, void **self)
{
    rewrite *r = calloc(1, sizeof *r);
    if (!r)
        return st_error(ST_ERR_NOMEM, "out of memory");
    *self = r;
    r->buf = malloc(TOKEN_MAX * 4);
    if (!r->buf)
        return st_error(ST_ERR_NOMEM, "out of memory");
    static const char *const cases[] = {"keep", "upper", "lower", NULL};
    int rc = st_stage_param_choice(s, "case", "keep", cases, &r->letter_case);
    if (rc)
        return rc;
    const char *rules = st_stage_param(s, "replace", "");
    char tmp[ST_PARAM_VALUE_MAX];
    snprintf(tmp, sizeof tmp, "%s", rules);
    for (char *save = NULL, *tok = strtok_r(tmp, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *arrow = strstr(tok, "->");
        while (*tok == ' ')
            tok++;
        if (!arrow || r->n_rules == MAX_RULES)
            return st_error(ST_ERR_INVALID, "stage '%s' (rewrite): replace: '%s' is not WORD->WORD "
                            "(at most %d rules, separated by commas)", st_stage_name(s), tok,
                            MAX_RULES);
        char *a = tok, *b = arrow + 2;
        *arrow = '\0';
        while (*b == ' ')
            b++;
        size_t la = strlen(a), lb = strlen(b);
        while (la && a[la - 1] == ' ')
            a[--la] = '\0';
        while (lb && b[lb - 1] == ' ')
            b[--lb] = '\0';
        if (!la || la >= 64 || lb >= 64)
            return st_error(ST_ERR_INVALID, "stage '%s' (rewrite): replace: words of 1 to 63 "
                            "bytes", st_stage_name(s));
        snprintf(r->from[r->n_rules], 64, "%s", a);
        snprintf(r->to[r->n_rules], 64, "%s", b);
        r->n_rules++;
    }
    return ST_OK;
}

static int rw_data(st_stage *s, void *self, const st_wire_msg *m)
{
    rewrite *r = self;
    if (m->h.type != ST_MSG_TEXT)
        return st_stage_forward(s, m);
    size_t n = m->text.bytes < TOKEN_MAX ? m->text.bytes : TOKEN_MAX;
    const char *in = m->text.text;
    size_t o = 0, cap = TOKEN_MAX * 4;
    for (size_t i = 0; i < n;) {
        if (!isalnum((unsigned char)in[i]) && in[i] != '\'') {
            if (o < cap)
                r->buf[o++] = in[i];
            i++;
            continue;
        }
        size_t j = i;
        while (j < n && (isalnum((unsigned char)in[j]) || in[j] == '\''))
            j++;
        const char *word = in + i;
        size_t wl = j - i;
        for (int k = 0; k < r->n_rules; k++)
            if (strlen(r->from[k]) == wl && !strncasecmp(r->from[k], in + i, wl)) {
                word = r->to[k];
                wl = strlen(r->to[k]);
                break;
            }
        for (size_t c = 0; c < wl && o < cap; c++) {
            char ch = word[c];
            r->buf[o++] = r->letter_case == 1 ? (char)toupper((unsigned char)ch)
                          : r->letter_case == 2 ? (char)tolower((unsigned char)ch)
                                                : ch;
        }
        i = j;
    }
    st_wire_header h;
    st_stage_header(s, m, &h);
    return st_stage_send_text(s, &h, m->text.flags, r->buf, o);
}

static void rw_destroy(void *self)
{
    rewrite *r = self;
    if (!r)
        return;
    free(r->buf);
    free(r);
}

const st_stage_type st__stage_rewrite = {
    .name = "rewrite",
    .summary = "rewrites text tokens: whole-word replacements and letter case",
    .params_help = "replace = a->b, c->d  whole words, any case, in every text token\n"
                   "case = keep         keep, upper or lower\n",
    .create = rw_create,
    .data = rw_data,
    .destroy = rw_destroy,
};

/* ---- text_sink ----------------------------------------------------------------- */

typedef struct {
    FILE *f;
    bool own;
    bool stamps;
    char *line;
    size_t len;
    uint64_t line_sample;
    uint32_t line_epoch;
} text_sink;

static int tk_create(st_stage *s, void **self)
{
    text_sink *t = calloc(1, sizeof *t);
    if (!t)
        return st_error(ST_ERR_NOMEM, "out of memory");
    *self = t;
    t->line = malloc(LINE_MAX_);
    if (!t->line)
        return st_error(ST_ERR_NOMEM, "out of memory");
    int rc = st_stage_param_bool(s, "stamps", false, &t->stamps);
    if (rc)
        return rc;
    const char *file = st_stage_param(s, "file", "-");
    if (!strcmp(file, "-")) {
        t->f = stdout;
        return ST_OK;
    }
    t->f = fopen(file, "w");
    if (!t->f)
        return st_error(ST_ERR_IO, "stage '%s' (text_sink): cannot write '%s': %s",
                        st_stage_name(s), file, strerror(errno));
    t->own = true;
    return ST_OK;
}

static void tk_flush(text_sink *t)
{
    if (!t->len)
        return;
    if (t->stamps)
        fprintf(t->f, "[%llu %u] ", (unsigned long long)t->line_sample, t->line_epoch);
    fprintf(t->f, "%.*s\n", (int)t->len, t->line);
    fflush(t->f);
    t->len = 0;
}

static void append(text_sink *t, const st_wire_msg *m, const char *text, size_t n, bool space)
{
    if (!t->len) {
        while (n && (*text == ' ' || *text == '\t')) {
            text++;
            n--;
        }
        t->line_sample = m->h.sample_index;
        t->line_epoch = m->h.epoch;
    } else if (space && t->len < LINE_MAX_) {
        t->line[t->len++] = ' ';
    }
    if (n > LINE_MAX_ - t->len)
        n = LINE_MAX_ - t->len;
    memcpy(t->line + t->len, text, n);
    t->len += n;
}

static int tk_data(st_stage *s, void *self, const st_wire_msg *m)
{
    text_sink *t = self;
    if (m->h.type == ST_MSG_TEXT) {
        append(t, m, m->text.text, m->text.bytes, false);
        if (m->text.flags & ST_TEXT_END)
            tk_flush(t);
    } else if (m->h.type == ST_MSG_WORDS && (m->words.flags & ST_WORDS_FINAL)) {
        tk_flush(t);
        size_t cur = 0;
        st_wire_word w;
        while (st_wire_words_next(&m->words, &cur, &w))
            append(t, m, w.text, w.text_bytes, true);
        tk_flush(t);
    }
    return ST_OK;
}

static int tk_control(st_stage *s, void *self, const st_wire_msg *m)
{
    text_sink *t = self;
    if (!m->from_bus && m->control.cmd == ST_CTL_END)
        tk_flush(t);
    if (m->from_bus && m->control.cmd == ST_CTL_INTERRUPT)
        t->len = 0; /* what was interrupted is not said */
    return ST_OK;
}

static void tk_destroy(void *self)
{
    text_sink *t = self;
    if (!t)
        return;
    if (t->f) {
        tk_flush(t);
        if (t->own)
            fclose(t->f);
    }
    free(t->line);
    free(t);
}

const st_stage_type st__stage_text_sink = {
    .name = "text_sink",
    .summary = "writes the transcript: an utterance's tokens joined as they are, a line each; "
               "final word hypotheses, a line each",
    .params_help = "file = -            where to write (- = standard output)\n"
                   "stamps = no         yes: start each line with [sample_index epoch]\n",
    .create = tk_create,
    .data = tk_data,
    .control = tk_control,
    .destroy = tk_destroy,
};
