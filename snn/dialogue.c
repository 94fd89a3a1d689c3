/*  snn/dialogue.c - the agent's runtime around the dialogue model: number
    words both ways, the tools the model may call (calculator, clock,
    timer), the normalisation of user text, and the reply loop (greedy
    decoding with tool calls executed and fed back).

    Workload: one request at a time, answers of 5 to 150 tokens; the
    model's step dominates (a few hundred microseconds a token at 4 x 128).
    The tools are string work on a few words.
*/
#include "dialogue.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- numbers ------------------------------------------------------------------ */

static const char *const SMALL[20] = {
    "zero",    "one",     "two",       "three",    "four",     "five",    "six",
    "seven",   "eight",   "nine",      "ten",      "eleven",   "twelve",  "thirteen",
    "fourteen", "fifteen", "sixteen",  "seventeen", "eighteen", "nineteen"};
static const char *const TENS[10] = {"",      "",      "twenty",  "thirty", "forty",
                                     "fifty", "sixty", "seventy", "eighty", "ninety"};

typedef struct {
    char *buf;
    size_t cap, len;
    bool overflow;
} sbuf;

static void put(sbuf *b, const char *s)
{
    size_t n = strlen(s);
    if (b->len && b->len + 1 < b->cap)
        b->buf[b->len++] = ' ';
    else if (b->len)
        b->overflow = true;
    if (b->len + n + 1 > b->cap) {
        b->overflow = true;
        return;
    }
    memcpy(b->buf + b->len, s, n + 1);
    b->len += n;
}

/* 1..999 */
static void below_thousand(sbuf *b, int n)
{
    if (n >= 100) {
        put(b, SMALL[n / 100]);
        put(b, "hundred");
        n %= 100;
        if (!n)
            return;
    }
    if (n < 20) {
        put(b, SMALL[n]);
    } else {
        put(b, TENS[n / 10]);
        if (n % 10)
            put(b, SMALL[n % 10]);
    }
}

int st_words_from_number(long long n, char *buf, size_t cap)
{
    if (!cap)
        return st_error(ST_ERR_INVALID, "number words: no room");
    buf[0] = '\0';
    if (n <= -1000000000000LL || n >= 1000000000000LL)
        return st_error(ST_ERR_INVALID, "number words: %lld is out of range", n);
    sbuf b = {buf, cap, 0, false};
    if (n < 0) {
        put(&b, "minus");
        n = -n;
    }
    if (n == 0)
        put(&b, "zero");
    static const char *const SCALE[4] = {"billion", "million", "thousand", ""};
    long long div = 1000000000LL;
    for (int k = 0; k < 4; k++, div /= 1000) {
        int part = (int)(n / div);
        n %= div;
        if (part) {
            below_thousand(&b, part);
            if (*SCALE[k])
                put(&b, SCALE[k]);
        }
    }
    if (b.overflow)
        return st_error(ST_ERR_INVALID, "number words: %zu bytes are not enough", cap);
    return ST_OK;
}

int st_words_from_decimal(double x, int decimals, char *buf, size_t cap)
{
    if (!isfinite(x) || fabs(x) >= 1e12 || decimals < 0 || decimals > 6)
        return st_error(ST_ERR_INVALID, "number words: %g cannot be said", x);
    double scale = pow(10, decimals);
    long long q = llround(fabs(x) * scale), ip = (long long)(q / (long long)scale);
    long long fp = q % (long long)scale;
    int nd = decimals;
    while (nd > 0 && fp % 10 == 0) {
        fp /= 10;
        nd--;
    }
    int e = st_words_from_number(x < 0 && q ? -ip : ip, buf, cap);
    if (e)
        return e;
    if (x < 0 && q && ip == 0) { /* minus zero point ... */
        char tmp[64];
        snprintf(tmp, sizeof tmp, "minus %s", buf);
        if (strlen(tmp) + 1 > cap)
            return st_error(ST_ERR_INVALID, "number words: no room");
        strcpy(buf, tmp);
    }
    if (!nd)
        return ST_OK;
    sbuf b = {buf, cap, strlen(buf), false};
    put(&b, "point");
    char digits[24];
    snprintf(digits, sizeof digits, "%0*lld", nd, fp);
    for (int i = 0; i < nd; i++)
        put(&b, SMALL[digits[i] - '0']);
    return b.overflow ? st_error(ST_ERR_INVALID, "number words: no room") : ST_OK;
}

/* The next word of s[*at..len): returns its length, sets *w. */
static size_t next_word(const char *s, size_t len, size_t *at, const char **w)
{
    while (*at < len && s[*at] == ' ')
        (*at)++;
    size_t b = *at;
    while (*at < len && s[*at] != ' ')
        (*at)++;
    *w = s + b;
    return *at - b;
}

static bool word_is(const char *w, size_t n, const char *lit)
{
    return strlen(lit) == n && !memcmp(w, lit, n);
}

int st_number_from_words(const char *s, size_t len, long long *out)
{
    long long total = 0, cur = 0;
    int last = 0; /* 0 nothing, 1 unit 1-9, 2 teen/zero, 3 tens, 4 hundred, 5 scale */
    bool neg = false, any = false, a_pending = false;
    size_t at = 0;
    const char *w;
    size_t n;
    while ((n = next_word(s, len, &at, &w))) {
        if (!any && !neg && (word_is(w, n, "minus") || word_is(w, n, "negative"))) {
            neg = true;
            continue;
        }
        if (word_is(w, n, "and")) {
            if (last != 4 && last != 5)
                goto bad;
            continue;
        }
        if (word_is(w, n, "a") && !any) {
            a_pending = true;
            continue;
        }
        int v = -1;
        for (int k = 0; k < 20; k++)
            if (word_is(w, n, SMALL[k]))
                v = k;
        if (v >= 0) {
            if (a_pending || last == 1 || last == 2 || (last == 3 && (v == 0 || v >= 10)))
                goto bad;
            if (v == 0 && any)
                goto bad;
            cur += v;
            last = v >= 1 && v <= 9 ? 1 : 2;
            any = true;
            continue;
        }
        for (int k = 2; k < 10; k++)
            if (word_is(w, n, TENS[k]))
                v = k * 10;
        if (v >= 0) {
            if (a_pending || last == 1 || last == 2 || last == 3)
                goto bad;
            cur += v;
            last = 3;
            any = true;
            continue;
        }
        if (word_is(w, n, "hundred")) {
            if (a_pending) {
                cur = 1;
                a_pending = false;
            } else if (last != 1 || cur % 100 != cur || cur == 0) {
                goto bad;
            }
            cur *= 100;
            last = 4;
            any = true;
            continue;
        }
        long long scale = word_is(w, n, "thousand") ? 1000
                          : word_is(w, n, "million") ? 1000000
                          : word_is(w, n, "billion") ? 1000000000LL
                                                     : 0;
        if (scale) {
            if (a_pending) {
                cur = 1;
                a_pending = false;
            } else if (!cur || last == 5) {
                goto bad;
            }
            if (total && total % (scale * 1000) != 0 && total < scale * 1000)
                goto bad; /* "five thousand two million" */
            total += cur * scale;
            cur = 0;
            last = 5;
            any = true;
            continue;
        }
        goto bad;
    }
    if (!any || a_pending)
        goto bad;
    total += cur;
    *out = neg ? -total : total;
    return ST_OK;
bad:
    return st_error(ST_ERR_INVALID, "'%.*s' is not a number in words", (int)len, s);
}

/* ---- tools ---------------------------------------------------------------------- */

int st_dialogue_time_words(int hour, int minute, char *buf, size_t cap)
{
    if (hour < 0 || hour > 23 || minute < 0 || minute > 59)
        return st_error(ST_ERR_INVALID, "time words: %d:%d", hour, minute);
    int h12 = hour % 12 ? hour % 12 : 12;
    const char *ampm = hour < 12 ? "am" : "pm";
    char m[64];
    if (minute == 0)
        snprintf(m, sizeof m, "o'clock");
    else if (minute < 10)
        snprintf(m, sizeof m, "oh %s", SMALL[minute]);
    else
        st_words_from_number(minute, m, sizeof m);
    int n = snprintf(buf, cap, "%s %s %s", SMALL[h12], m, ampm);
    return n < 0 || (size_t)n >= cap ? st_error(ST_ERR_INVALID, "time words: no room") : ST_OK;
}

static const char *const OPS[] = {"plus",         "minus",     "times",
                                  "divided by",   "greater than", "less than"};
#define N_OPS (sizeof OPS / sizeof OPS[0])

/* Finds " OP " in s after the first word; returns the op index or -1. */
static int find_op(const char *s, size_t len, size_t *op_at, size_t *op_len)
{
    for (size_t i = 1; i < len; i++) {
        if (s[i - 1] != ' ')
            continue;
        for (size_t k = 0; k < N_OPS; k++) {
            size_t n = strlen(OPS[k]);
            if (i + n < len && s[i + n] == ' ' && !memcmp(s + i, OPS[k], n) && i >= 2) {
                *op_at = i;
                *op_len = n;
                return (int)k;
            }
        }
    }
    return -1;
}

static void trim(const char **s, size_t *len)
{
    while (*len && (**s == ' '))
        (*s)++, (*len)--;
    while (*len && (*s)[*len - 1] == ' ')
        (*len)--;
}

static int tool_fail(char *result, size_t cap, const char *call, size_t len)
{
    if (cap)
        snprintf(result, cap, "error");
    return st_error(ST_ERR_INVALID, "tool call '%.*s' cannot be read", (int)len, call);
}

/* A tool call read: its kind and numbers. */
typedef enum { CALL_BAD, CALL_CALC, CALL_TIME, CALL_TIMER } call_kind;
typedef struct {
    call_kind kind;
    int op;             /* calc: index into OPS */
    long long a, b;     /* calc: the operands; timer: a, the count */
    long long per;      /* timer: seconds per unit */
    const char *args;   /* what follows the tool's name */
    size_t args_len;
} call_parts;

/* "calc A OP B", "time", "timer N UNIT" -> parts; CALL_BAD for anything
   else, or numbers that do not read (st_error cleared either way). */
static call_parts read_call(const char *call, size_t len)
{
    call_parts c = {.kind = CALL_BAD};
    trim(&call, &len);
    if (len == 4 && !memcmp(call, "time", 4)) {
        c.kind = CALL_TIME;
        return c;
    }
    bool calc = len >= 5 && !memcmp(call, "calc ", 5);
    if (!calc && !(len >= 6 && !memcmp(call, "timer ", 6)))
        return c;
    const char *e = call + (calc ? 5 : 6);
    size_t el = len - (calc ? 5 : 6);
    trim(&e, &el);
    c.args = e;
    c.args_len = el;
    if (calc) {
        size_t op_at, op_len;
        c.op = find_op(e, el, &op_at, &op_len);
        if (c.op >= 0 && !st_number_from_words(e, op_at - 1, &c.a) &&
            !st_number_from_words(e + op_at + op_len, el - op_at - op_len, &c.b))
            c.kind = CALL_CALC;
    } else {
        size_t sp = el;
        while (sp > 0 && e[sp - 1] != ' ')
            sp--;
        const char *unit = e + sp;
        size_t ul = el - sp;
        if (word_is(unit, ul, "second") || word_is(unit, ul, "seconds"))
            c.per = 1;
        else if (word_is(unit, ul, "minute") || word_is(unit, ul, "minutes"))
            c.per = 60;
        else if (word_is(unit, ul, "hour") || word_is(unit, ul, "hours"))
            c.per = 3600;
        if (sp && c.per && !st_number_from_words(e, sp - 1, &c.a) && c.a > 0 && c.a <= 1000000)
            c.kind = CALL_TIMER;
    }
    st_error_clear();
    return c;
}

int st_dialogue_tool(const st_dialogue_tools *tools, const char *call, size_t len, char *result,
                     size_t cap)
{
    call_parts c = read_call(call, len);
    long long a = c.a, b = c.b;
    switch (c.kind) {
    case CALL_CALC: {
        long long v = 0;
        int rc = ST_OK;
        switch (c.op) {
        case 0: v = a + b; break;
        case 1: v = a - b; break;
        case 2:
            if (__builtin_mul_overflow(a, b, &v)) /* billions times billions */
                rc = st_error(ST_ERR_INVALID, "calc: %lld times %lld does not fit", a, b);
            break;
        case 3:
            if (b == 0) {
                snprintf(result, cap, "not defined");
                return ST_OK;
            }
            if (a % b) {
                rc = st_words_from_decimal((double)a / (double)b, 2, result, cap);
                goto said;
            }
            v = a / b;
            break;
        case 4: snprintf(result, cap, "%s", a > b ? "yes" : "no"); return ST_OK;
        default: snprintf(result, cap, "%s", a < b ? "yes" : "no"); return ST_OK;
        }
        if (!rc)
            rc = st_words_from_number(v, result, cap);
    said:
        if (rc && cap) /* a result too large to say: the call fails as a whole */
            snprintf(result, cap, "error");
        return rc;
    }
    case CALL_TIME: {
        int h = tools ? tools->hour : -1, m = tools ? tools->minute : 0;
        if (h < 0) {
            time_t now = time(NULL);
            struct tm tm;
            localtime_r(&now, &tm);
            h = tm.tm_hour;
            m = tm.tm_min;
        }
        return st_dialogue_time_words(h, m, result, cap);
    }
    case CALL_TIMER:
        if (tools && tools->on_timer) {
            char label[128];
            snprintf(label, sizeof label, "%.*s", (int)c.args_len, c.args);
            tools->on_timer(a * c.per, label, tools->user_data);
        }
        snprintf(result, cap, "ok");
        return ST_OK;
    default:
        trim(&call, &len);
        return tool_fail(result, cap, call, len);
    }
}

/* ---- grounding ---------------------------------------------------------------------- */

#define SAID_MAX 32

static bool is_number_word(const char *w, size_t n)
{
    for (int k = 0; k < 20; k++)
        if (word_is(w, n, SMALL[k]))
            return true;
    for (int k = 2; k < 10; k++)
        if (word_is(w, n, TENS[k]))
            return true;
    return word_is(w, n, "hundred") || word_is(w, n, "thousand") || word_is(w, n, "million") ||
           word_is(w, n, "billion");
}

static bool is_unit(const char *w, size_t n)
{
    return word_is(w, n, "second") || word_is(w, n, "seconds") || word_is(w, n, "minute") ||
           word_is(w, n, "minutes") || word_is(w, n, "hour") || word_is(w, n, "hours");
}

/* The numbers said in normalised text, their sizes: the longest runs of
   number words that read as one ("one hundred and five" one, "seven six"
   two); "a" or "an" before a unit is one, "half an hour" thirty. */
static size_t said_numbers(const char *s, long long *v, size_t cap)
{
    const char *w[128];
    size_t wl[128], nw = 0, at = 0, len = strlen(s), n, nv = 0;
    const char *p;
    while (nw < 128 && (n = next_word(s, len, &at, &p))) {
        w[nw] = p;
        wl[nw++] = n;
    }
    for (size_t i = 0; i < nw && nv < cap; i++) {
        if (word_is(w[i], wl[i], "half") && i + 2 < nw && word_is(w[i + 1], wl[i + 1], "an") &&
            word_is(w[i + 2], wl[i + 2], "hour")) {
            v[nv++] = 30;
            i += 2;
            continue;
        }
        if ((word_is(w[i], wl[i], "a") || word_is(w[i], wl[i], "an")) && i + 1 < nw &&
            is_unit(w[i + 1], wl[i + 1])) {
            v[nv++] = 1;
            continue;
        }
        /* a run: number words (and "and" inside), or "a" before a scale
           word ("a hundred") */
        bool a_scale = word_is(w[i], wl[i], "a") && i + 1 < nw &&
                       (word_is(w[i + 1], wl[i + 1], "hundred") ||
                        word_is(w[i + 1], wl[i + 1], "thousand") ||
                        word_is(w[i + 1], wl[i + 1], "million"));
        if (!a_scale && !is_number_word(w[i], wl[i]))
            continue;
        size_t best = i;
        long long val = -1, x;
        for (size_t j = i + a_scale;
             j < nw && (is_number_word(w[j], wl[j]) || word_is(w[j], wl[j], "and")); j++)
            if (!st_number_from_words(w[i], (size_t)(w[j] + wl[j] - w[i]), &x)) {
                best = j;
                val = x < 0 ? -x : x;
            }
        st_error_clear();
        if (val >= 0) /* "hundred" alone reads as no number */
            v[nv++] = val;
        i = best;
    }
    return nv;
}

/* Takes x's size from the said numbers; false when it is not among them. */
static bool take(long long x, long long *v, size_t *nv)
{
    x = x < 0 ? -x : x;
    for (size_t i = 0; i < *nv; i++)
        if (v[i] == x) {
            v[i] = v[--*nv];
            return true;
        }
    return false;
}

bool st_dialogue_grounded(const char *user, const char *call, size_t len)
{
    long long said[SAID_MAX];
    size_t n_said = said_numbers(user ? user : "", said, SAID_MAX);
    call_parts c = read_call(call, len);
    if (c.kind == CALL_CALC)
        return take(c.a, said, &n_said) && take(c.b, said, &n_said);
    if (c.kind == CALL_TIMER)
        return take(c.a, said, &n_said);
    return true; /* the time, or a call that does not read: the tool's to report */
}

/* ---- normalisation ------------------------------------------------------------------ */

void st_dialogue_normalize(const char *in, char *out, size_t cap)
{
    if (!cap)
        return;
    sbuf b = {out, cap, 0, false};
    out[0] = '\0';
    char word[64];
    size_t wl = 0;
    for (const char *p = in;; p++) {
        unsigned char c = (unsigned char)*p;
        bool letter = isalpha(c) || c == '\'';
        if (letter && wl + 1 < sizeof word) {
            word[wl++] = (char)tolower(c);
            continue;
        }
        if (letter)
            continue;
        if (wl) {
            word[wl] = '\0';
            put(&b, word);
            wl = 0;
        }
        if (!c)
            break;
        if (isdigit(c)) {
            long long v = 0;
            int nd = 0;
            while (isdigit((unsigned char)*p) && nd < 12) {
                v = v * 10 + (*p++ - '0');
                nd++;
            }
            while (isdigit((unsigned char)*p))
                p++;
            p--;
            char num[256];
            if (st_words_from_number(v, num, sizeof num) == ST_OK)
                put(&b, num);
        } else if (c == '+') {
            put(&b, "plus");
        } else if (c == '*') {
            put(&b, "times");
        } else if (c == '/') {
            put(&b, "divided by");
        }
    }
    if (b.overflow && b.len < cap)
        out[b.len] = '\0';
}

/* ---- replying ---------------------------------------------------------------------- */

st_dialogue_params st_dialogue_default_params(void)
{
    return (st_dialogue_params){.max_tokens = 400, .tools = {.hour = -1}};
}

static const char FALLBACK[] = "sorry, i didn't catch that.";

/* Appends n bytes to the transcript (always NUL-terminated, truncated). */
static void say(st_dialogue_info *in, size_t *len, const char *s, size_t n)
{
    size_t room = sizeof in->transcript - 1 - *len;
    if (n > room)
        n = room;
    memcpy(in->transcript + *len, s, n);
    *len += n;
    in->transcript[*len] = '\0';
}

typedef struct {
    const st_dialogue_tools *user;
    st_dialogue_info *in;
} relay_ctx;

static void relay_timer(long long seconds, const char *label, void *user_data)
{
    relay_ctx *r = user_data;
    r->in->timer_s = seconds;
    if (r->user->on_timer)
        r->user->on_timer(seconds, label, r->user->user_data);
}

static int32_t argmax(const float *z, size_t n)
{
    size_t best = 0;
    for (size_t i = 1; i < n; i++)
        if (z[i] > z[best])
            best = i;
    return (int32_t)best;
}

int st_dialogue_reply(const st_lm_model *model, const char *user, const st_dialogue_params *p,
                      char *reply, size_t cap, st_dialogue_info *info)
{
    st_dialogue_params dp = p ? *p : st_dialogue_default_params();
    st_dialogue_info local, *in = info ? info : &local;
    memset(in, 0, sizeof *in);
    in->timer_s = -1;
    double t0 = st_now_s();
    const st_lm_tokenizer *tok = st_lm_model_tokenizer(model);
    const size_t V = st_lm_model_config(model)->vocab;
    char norm[1024], prompt[1200];
    st_dialogue_normalize(user, norm, sizeof norm);
    snprintf(prompt, sizeof prompt, "user: %s\nagent:", norm);
    int e;
    st_lm_state *s = st_lm_state_new(model, &e);
    float *logits = malloc(V * sizeof *logits);
    int32_t *ids = malloc(sizeof prompt * sizeof *ids);
    if (!s || !logits || !ids) {
        st_lm_state_destroy(&s);
        free(logits);
        free(ids);
        return st_error(ST_ERR_NOMEM, "reply: out of memory");
    }
    size_t n = 0, len = 0, answer_at = 0;
    st_lm_tokenizer_encode(tok, prompt, strlen(prompt), ids, sizeof prompt, &n, NULL);
    st_lm_forward(model, s, ids, n, logits, false, NULL);
    /* the timer callback goes through relay_timer, which notes the seconds */
    relay_ctx rc = {&dp.tools, in};
    st_dialogue_tools tools = dp.tools;
    tools.on_timer = relay_timer;
    tools.user_data = &rc;
    for (size_t k = 0; k < dp.max_tokens; k++) {
        int32_t t = argmax(logits, V);
        size_t pl;
        const char *piece = st_lm_tokenizer_piece(tok, t, &pl);
        const char *nl = piece ? memchr(piece, '\n', pl) : NULL;
        in->n_tokens++;
        if (nl) {
            say(in, &len, piece, (size_t)(nl - piece));
            break;
        }
        if (piece)
            say(in, &len, piece, pl);
        st_lm_step(model, s, t, logits);
        if (piece && pl && piece[pl - 1] == ']') {
            /* the call: from the last '[' after the last tool result */
            const char *open = NULL;
            for (size_t i = len; i-- > answer_at;)
                if (in->transcript[i] == '[') {
                    open = in->transcript + i;
                    break;
                }
            if (!open)
                continue;
            char result[256], fed[300];
            size_t cl = (size_t)(in->transcript + len - 1 - (open + 1));
            if (!st_dialogue_grounded(norm, open + 1, cl)) {
                in->ungrounded = true; /* the answer ends before the call */
                break;
            }
            in->n_tools++;
            if (st_dialogue_tool(&tools, open + 1, cl, result, sizeof result) != ST_OK) {
                in->tool_error = true; /* what it writes after "{ error}" is not an answer */
                break;
            }
            int fl = snprintf(fed, sizeof fed, "{ %s}", result);
            say(in, &len, fed, (size_t)fl);
            answer_at = len;
            size_t m = 0;
            st_lm_tokenizer_encode(tok, fed, (size_t)fl, ids, sizeof prompt, &m, NULL);
            if (m)
                st_lm_forward(model, s, ids, m, logits, false, NULL);
        }
    }
    /* the answer: after the last tool result, up to an unfinished call */
    const char *a = in->transcript + answer_at;
    size_t al = len - answer_at;
    const char *br = memchr(a, '[', al);
    if (br)
        al = (size_t)(br - a);
    trim(&a, &al);
    if (!al || memchr(a, '{', al) || memchr(a, '}', al) || memchr(a, ']', al)) {
        in->fallback = true;
        a = FALLBACK;
        al = strlen(FALLBACK);
    }
    if (cap) {
        size_t c = al < cap - 1 ? al : cap - 1;
        memmove(reply, a, c);
        reply[c] = '\0';
    }
    in->seconds = st_now_s() - t0;
    st_lm_state_destroy(&s);
    free(logits);
    free(ids);
    return ST_OK;
}
