/*  pipeline/turn.c - the turn controller: a pure state machine that decides
    when the user's turn ends, when the agent speaks, and what a barge-in
    does (states and actions in pipeline.h, the design in docs/AGENT.md).

    What it may touch: nothing but its own state. It has no clock: every
    input carries capture sample indices (16 kHz), so the same inputs give
    the same decisions in virtual time and in real time. Workload: a few
    events a second and a tick every 10 ms frame; nothing allocates after
    st_turn_new().
*/
#include "pipeline_impl.h"

#include <stdlib.h>
#include <string.h>

#define REQUEST_MAX 512

/* "what time" is the request "what time is it", whose last words the
   recognizer does not know: said, they are speech after "time" (measured on
   the standard set: 0.47-0.49 s from the word's end to the VAD's offset);
   without them the user paused inside the request ("what time | is it":
   0.23 s, the VAD's hangover), so it waits like a prefix. */
#define FILLER_TAIL_S 0.35

struct st_turn {
    st_turn_params p;
    st_turn_state_fn on_state;
    void *user_data;
    st_turn_state state;
    uint32_t epoch;
    bool speaking;             /* the VAD's latch: user speech on */
    uint64_t onset;            /* the latest onset's sample */
    uint64_t offset;           /* the latest offset's sample */
    uint64_t offset_decided;   /* when that offset was decided */
    uint64_t complete_wait, incomplete_wait, prefix_wait, prefix_stale, barge_min, late_word,
        max_turn, filler_tail;
    uint64_t user_since;       /* when the state last became "user speaking" */
    char words[REQUEST_MAX];   /* the turn's words so far */
    size_t words_len;
    unsigned n_words;
    uint64_t last_word_end;    /* where the newest word of words ended */
    uint64_t barge_speech;     /* BOTH: user speech in finished segments, samples */
    uint64_t seg_start;        /* BOTH: the current segment's onset */
    uint64_t resume_at;        /* BOTH, silent: resume from here */
    uint64_t resume_hold;
    uint64_t resumed_at;       /* when the agent last resumed (0: never) */
    char request[REQUEST_MAX]; /* the latest answered request */
    uint64_t request_end, request_decided, barge_onset;
};

st_turn_params st_turn_default_params(void)
{
    return (st_turn_params){
        .rate_hz = 16000,
        .complete_wait_s = 0.05,
        .incomplete_wait_s = 0.3,
        .prefix_wait_s = 1.5,
        .prefix_stale_s = 0.65,
        .barge_min_s = 0.7,
        .barge_on_word = true,
        .barge_word_score = 0.2,
        .late_word_s = 0.6,
        .resume_hold_s = 0.4,
        .max_turn_s = 10,
    };
}

static const char *const state_names[ST_TURN_N_STATES] = {"listening", "user speaking", "thinking",
                                                          "agent speaking", "both speaking"};

const char *st_turn_state_name(st_turn_state s)
{
    return (unsigned)s < ST_TURN_N_STATES ? state_names[s] : "?";
}

st_turn *st_turn_new(const st_turn_params *p, st_turn_state_fn on_state, void *user_data,
                     int *err)
{
    st_turn_params q = p ? *p : st_turn_default_params();
    int rc = ST_OK;
    if (q.rate_hz < 1000 || q.rate_hz > 192000)
        rc = st_error(ST_ERR_INVALID, "turn controller: rate_hz %d is not 1000..192000", q.rate_hz);
    else if (!(q.complete_wait_s >= 0 && q.complete_wait_s <= 10))
        rc = st_error(ST_ERR_INVALID, "turn controller: complete_wait_s %g is not 0..10 s",
                      q.complete_wait_s);
    else if (!(q.incomplete_wait_s >= q.complete_wait_s && q.incomplete_wait_s <= 10))
        rc = st_error(ST_ERR_INVALID,
                      "turn controller: incomplete_wait_s %g is not complete_wait_s..10 s",
                      q.incomplete_wait_s);
    else if (!(q.prefix_wait_s >= q.complete_wait_s && q.prefix_wait_s <= 10))
        rc = st_error(ST_ERR_INVALID,
                      "turn controller: prefix_wait_s %g is not complete_wait_s..10 s",
                      q.prefix_wait_s);
    else if (!(q.prefix_stale_s >= 0 && q.prefix_stale_s <= 10))
        rc = st_error(ST_ERR_INVALID, "turn controller: prefix_stale_s %g is not 0 (never) ..10 s",
                      q.prefix_stale_s);
    else if (!(q.barge_min_s >= 0 && q.barge_min_s <= 10))
        rc = st_error(ST_ERR_INVALID, "turn controller: barge_min_s %g is not 0..10 s",
                      q.barge_min_s);
    else if (!(q.barge_word_score >= 0 && q.barge_word_score <= 1))
        rc = st_error(ST_ERR_INVALID, "turn controller: barge_word_score %g is not 0..1",
                      q.barge_word_score);
    else if (!(q.resume_hold_s >= 0 && q.resume_hold_s <= 10))
        rc = st_error(ST_ERR_INVALID, "turn controller: resume_hold_s %g is not 0..10 s",
                      q.resume_hold_s);
    else if (!(q.late_word_s >= 0 && q.late_word_s <= 10))
        rc = st_error(ST_ERR_INVALID, "turn controller: late_word_s %g is not 0..10 s",
                      q.late_word_s);
    else if (!(q.max_turn_s == 0 || (q.max_turn_s >= 1 && q.max_turn_s <= 600)))
        rc = st_error(ST_ERR_INVALID, "turn controller: max_turn_s %g is not 0 (never) or 1..600 s",
                      q.max_turn_s);
    if (rc) {
        if (err)
            *err = rc;
        return NULL;
    }
    st_turn *t = calloc(1, sizeof *t);
    if (!t) {
        if (err)
            *err = st_error(ST_ERR_NOMEM, "turn controller: out of memory");
        return NULL;
    }
    t->p = q;
    t->on_state = on_state;
    t->user_data = user_data;
    t->complete_wait = (uint64_t)(q.complete_wait_s * q.rate_hz + 0.5);
    t->incomplete_wait = (uint64_t)(q.incomplete_wait_s * q.rate_hz + 0.5);
    t->prefix_wait = (uint64_t)(q.prefix_wait_s * q.rate_hz + 0.5);
    t->prefix_stale = (uint64_t)(q.prefix_stale_s * q.rate_hz + 0.5);
    t->filler_tail = (uint64_t)(FILLER_TAIL_S * q.rate_hz + 0.5);
    t->barge_min = (uint64_t)(q.barge_min_s * q.rate_hz + 0.5);
    t->late_word = (uint64_t)(q.late_word_s * q.rate_hz + 0.5);
    t->max_turn = (uint64_t)(q.max_turn_s * q.rate_hz + 0.5);
    t->resume_hold = (uint64_t)(q.resume_hold_s * q.rate_hz + 0.5);
    if (err)
        *err = ST_OK;
    return t;
}

void st_turn_destroy(st_turn **t_p)
{
    if (t_p && *t_p) {
        free(*t_p);
        *t_p = NULL;
    }
}

static void go(st_turn *t, st_turn_state to, uint64_t sample)
{
    if (t->state == to)
        return;
    st_turn_state from = t->state;
    t->state = to;
    if (to == ST_TURN_USER)
        t->user_since = sample;
    if (t->on_state)
        t->on_state(from, to, sample, t->user_data);
}

static void words_clear(st_turn *t)
{
    t->words[0] = '\0';
    t->words_len = 0;
    t->n_words = 0;
}

/* w, which ended at sample `end`, joins the turn's words. */
static void words_add(st_turn *t, const char *w, uint64_t end)
{
    size_t n = strlen(w);
    if (t->words_len + n + 2 > sizeof t->words)
        return; /* a request this long is not of the agent's grammar anyway */
    t->last_word_end = end;
    if (t->words_len)
        t->words[t->words_len++] = ' ';
    memcpy(t->words + t->words_len, w, n + 1);
    t->words_len += n;
    t->n_words++;
}

/* ---- the grammar of a complete request ---------------------------------- */

static const char *const digits[] = {"zero", "one", "two",   "three", "four",
                                     "five", "six", "seven", "eight", "nine"};
static const char *const singles[] = {"joke", "story", "hello", "hi",  "help",
                                      "thanks", "goodbye", "repeat", "yes", "no"};
static const char *const ops[] = {"plus", "minus", "times"};
/* Speech Commands' keywords that no request of the grammar begins with: said
   alone they are the whole utterance (the agent answers at once, if only to
   say it cannot do that), never the start of a request. */
static const char *const commands[] = {"up", "down", "left", "right", "on", "off", "go", "stop"};

/* What a listener says to show they follow: said over the agent, never a
   barge-in by itself (the recognizer knows "yes" and "right"; "okay", "uh
   huh", "mm" are its unknown). */
static const char *const backchannels[] = {"yes", "yeah", "right", "okay", "ok",
                                           "mm",  "uh",   "huh",   "hum"};

static bool is_one(const char *w, const char *const *set, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(w, set[i]))
            return true;
    return false;
}
#define IS(w, set) is_one(w, set, sizeof set / sizeof set[0])

static bool is_number(const char *w)
{
    return IS(w, digits);
}

#define MAX_SPLIT 64

/* "time" next to a number is the operator "times" the recognizer heard
   without its /z/ ("six time nine"): no other reading has a number there. */
static void times_for_time(const char **w, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(w[i], "time") &&
            ((i > 0 && is_number(w[i - 1])) || (i + 1 < n && is_number(w[i + 1]))))
            w[i] = "times";
}

/* words split at spaces into w (at most MAX_SPLIT), copied into buf, with
   times_for_time; how many. */
static size_t split_words(const char *words, char buf[REQUEST_MAX], const char *w[MAX_SPLIT])
{
    size_t n = 0;
    snprintf(buf, REQUEST_MAX, "%s", words);
    for (char *save = NULL, *tok = strtok_r(buf, " ", &save); tok && n < MAX_SPLIT;
         tok = strtok_r(NULL, " ", &save))
        w[n++] = tok;
    times_for_time(w, n);
    return n;
}

/* The request the agent answers: the turn's words as the grammar reads them. */
static void set_request(st_turn *t)
{
    char buf[REQUEST_MAX];
    const char *w[MAX_SPLIT];
    size_t n = split_words(t->words, buf, w), len = 0;
    t->request[0] = '\0';
    for (size_t i = 0; i < n && len < sizeof t->request; i++)
        len += (size_t)snprintf(t->request + len, sizeof t->request - len, "%s%s", i ? " " : "",
                                w[i]); /* (truncated at worst: words_add keeps room) */
}

bool st_turn_request_complete(const char *words)
{
    if (!words)
        return false;
    char buf[REQUEST_MAX];
    const char *w[MAX_SPLIT];
    size_t n = split_words(words, buf, w);
    if (!n)
        return false;
    const char *last = w[n - 1];
    const char *unit[] = {"seconds", "minutes"};
    /* The request is judged by how the words end: what the recognizer heard
       before (a false word in a breath) does not make it incomplete. */
    if (IS(last, singles) || !strcmp(last, "time"))
        return true;
    if (n >= 3 && is_number(last) && IS(w[n - 2], ops) && is_number(w[n - 3]))
        return true;
    if (n >= 3 && IS(last, unit) && is_number(w[n - 2]) && !strcmp(w[n - 3], "timer"))
        return true;
    /* "count N", "count down (from) N", "count up to N", "count from N to
       N"; but "count two" may be "count to ..." (homophones): not known
       complete */
    bool counted = n >= 2 && !strcmp(w[n - 2], "count");
    if (n >= 3 && !strcmp(w[n - 3], "count") &&
        (!strcmp(w[n - 2], "down") || !strcmp(w[n - 2], "up") || is_number(w[n - 2])))
        counted = true;
    if (counted && is_number(last) && strcmp(last, "two"))
        return true;
    if (n == 1 && IS(last, commands))
        return true;
    return false;
}

bool st_turn_request_prefix(const char *words)
{
    if (!words || st_turn_request_complete(words))
        return false;
    char buf[REQUEST_MAX];
    const char *w[MAX_SPLIT];
    size_t n = split_words(words, buf, w);
    if (!n)
        return false;
    const char *last = w[n - 1];
    static const char *const open[] = {"plus", "minus", "times", "timer", "count", "what"};
    /* "... plus", "timer", "count", "what", "N" (then an operator), "timer N"
       (then the unit): the rest of the request is still to come. Not "plus
       N": a sum that ends in its second number was complete but for its
       first, and no word to come brings that back (the recognizer missed
       it: "what is seven minus two" heard as "minus two") */
    if (is_number(last) && n >= 2 && IS(w[n - 2], ops))
        return false;
    if (n == 1 && is_number(last))
        return false; /* a number said alone: as often the whole utterance (an
                         answer, a digit) as a request's start; the fallback */
    return IS(last, open) || is_number(last);
}

/* ---- inputs -------------------------------------------------------------- */

static int end_of_turn(st_turn *t, uint64_t now)
{
    if (!t->n_words) {
        /* Speech without a single word: a cough, a door, a breath. */
        words_clear(t);
        go(t, ST_TURN_LISTENING, now);
        return 0;
    }
    set_request(t);
    t->request_end = t->offset;
    t->request_decided = now;
    t->epoch++;
    go(t, ST_TURN_THINKING, now);
    return ST_TURN_DO_ANSWER;
}

/* AGENT -> BOTH: the speaker pauses, the user's speech from `sample` may
   be a barge-in (speech soon after a resume adds to what came before it). */
static int pause_for(st_turn *t, uint64_t sample, uint64_t now)
{
    if (!(t->resumed_at && now < t->resumed_at + t->resume_hold))
        t->barge_speech = 0;
    t->barge_onset = sample;
    go(t, ST_TURN_BOTH, now);
    return ST_TURN_DO_PAUSE;
}

int st_turn_onset(st_turn *t, uint64_t sample, uint64_t now)
{
    t->speaking = true;
    t->onset = sample;
    switch (t->state) {
    case ST_TURN_LISTENING:
        words_clear(t);
        go(t, ST_TURN_USER, now);
        return 0;
    case ST_TURN_USER:
        return 0; /* a pause inside the request ended: the same turn goes on */
    case ST_TURN_THINKING:
        /* The user was not done: drop the answer in the making, keep the
           words, and listen on. */
        t->epoch++;
        t->barge_onset = sample;
        go(t, ST_TURN_USER, now);
        return ST_TURN_DO_INTERRUPT;
    case ST_TURN_AGENT:
        t->seg_start = sample;
        return pause_for(t, sample, now) | st_turn_tick(t, now);
    case ST_TURN_BOTH:
        t->seg_start = sample; /* more speech before the resume: it adds up */
        return st_turn_tick(t, now);
    }
    return 0;
}

int st_turn_hint(st_turn *t, uint64_t sample, uint64_t now)
{
    if (t->state != ST_TURN_AGENT)
        return 0;
    t->resume_at = now + t->resume_hold; /* no speech yet: resume unless it comes */
    return pause_for(t, sample, now);
}

int st_turn_offset(st_turn *t, uint64_t sample, uint64_t now)
{
    t->speaking = false;
    t->offset = sample;
    t->offset_decided = now;
    if (t->state == ST_TURN_BOTH) {
        /* Not long enough yet: the agent resumes unless more speech comes
           within resume_hold ("stop, stop" adds up; one "mm-hm" does not). */
        t->barge_speech += sample > t->seg_start ? sample - t->seg_start : 0;
        t->resume_at = now + t->resume_hold;
    }
    return st_turn_tick(t, now);
}

static int commit_barge(st_turn *t, uint64_t now)
{
    t->epoch++;
    words_clear(t);
    go(t, ST_TURN_USER, now);
    return ST_TURN_DO_INTERRUPT;
}

int st_turn_word(st_turn *t, const char *word, uint64_t start, uint64_t end, uint64_t now)
{
    return st_turn_heard(t, word, 1.0f, start, end, now);
}

int st_turn_heard(st_turn *t, const char *word, float score, uint64_t start, uint64_t end,
                  uint64_t now)
{
    (void)start;
    if (!word || !*word)
        return 0;
    switch (t->state) {
    case ST_TURN_USER:
        words_add(t, word, end);
        return st_turn_tick(t, now);
    case ST_TURN_BOTH:
        if (t->p.barge_on_word && !IS(word, backchannels) && score >= t->p.barge_word_score) {
            int a = commit_barge(t, now);
            words_add(t, word, end);
            return a;
        }
        return 0;
    case ST_TURN_THINKING:
        /* A late word of the request just answered: the recognizer lags the
           voice. Within late_word_s of the offset it belongs to that turn;
           the answer in the making is dropped for one with the whole turn. */
        if (t->request[0] && end >= t->onset && now <= t->request_end + t->late_word &&
            !t->speaking) { /* (an announcement has no request to add to) */
            words_add(t, word, end);
            set_request(t);
            t->request_decided = now;
            t->epoch++;
            return ST_TURN_DO_INTERRUPT | ST_TURN_DO_ANSWER;
        }
        return 0;
    default:
        return 0; /* words over the agent's own voice or from nowhere */
    }
}

int st_turn_tick(st_turn *t, uint64_t now)
{
    switch (t->state) {
    case ST_TURN_USER:
        if (t->max_turn && now >= t->user_since + t->max_turn) {
            t->speaking = false; /* the VAD held on too long: noise, or a monologue */
            t->offset = t->offset_decided = now;
            return end_of_turn(t, now);
        }
        uint64_t deadline = st_turn_deadline(t);
        if (deadline && now >= deadline)
            return end_of_turn(t, now);
        return 0;
    case ST_TURN_BOTH: {
        uint64_t heard = t->barge_speech + (t->speaking && now > t->seg_start ? now - t->seg_start : 0);
        if (heard >= t->barge_min)
            return commit_barge(t, now);
        if (!t->speaking && now >= t->resume_at) {
            t->resumed_at = now;
            go(t, ST_TURN_AGENT, now);
            return ST_TURN_DO_RESUME;
        }
        return 0;
    }
    default:
        return 0;
    }
}

int st_turn_announce(st_turn *t, uint64_t now)
{
    if (t->state != ST_TURN_LISTENING)
        return 0;
    t->request[0] = '\0';
    t->request_end = t->request_decided = now;
    t->epoch++;
    go(t, ST_TURN_THINKING, now);
    return ST_TURN_DO_ANSWER;
}

int st_turn_agent_started(st_turn *t, uint64_t now)
{
    if (t->state == ST_TURN_THINKING)
        go(t, ST_TURN_AGENT, now);
    return 0;
}

int st_turn_agent_done(st_turn *t, uint64_t now)
{
    if (t->state == ST_TURN_AGENT || t->state == ST_TURN_THINKING)
        go(t, ST_TURN_LISTENING, now);
    return 0;
}

st_turn_state st_turn_get_state(const st_turn *t)
{
    return t->state;
}

uint32_t st_turn_epoch(const st_turn *t)
{
    return t->epoch;
}

const char *st_turn_request(const st_turn *t)
{
    return t->request;
}

uint64_t st_turn_request_end(const st_turn *t)
{
    return t->request_end;
}

uint64_t st_turn_request_decided(const st_turn *t)
{
    return t->request_decided;
}

uint64_t st_turn_barge_onset(const st_turn *t)
{
    return t->barge_onset;
}

/* The words end in "time" of "what time [is it]" and nothing was said past it
   (FILLER_TAIL_S above). */
static bool unsaid_filler(const st_turn *t)
{
    size_t n = t->words_len;
    if (n < 4 || strcmp(t->words + n - 4, "time") || (n > 4 && t->words[n - 5] != ' '))
        return false;
    return t->offset < t->last_word_end + t->filler_tail;
}

uint64_t st_turn_deadline(const st_turn *t)
{
    if (t->state != ST_TURN_USER || t->speaking || !t->offset_decided || t->offset < t->onset)
        return 0;
    uint64_t wait = t->incomplete_wait;
    if (st_turn_request_complete(t->words))
        wait = unsaid_filler(t) ? t->prefix_wait : t->complete_wait;
    else if (st_turn_request_prefix(t->words) &&
             (!t->prefix_stale || t->offset < t->last_word_end + t->prefix_stale))
        wait = t->prefix_wait;
    /* (A prefix the user spoke on past, more than a short word's length, is
       stale: the recognizer missed what came after it, most often the
       request's last word, and no pause is going on.) */
    if (!t->n_words && wait < t->late_word)
        wait = t->late_word; /* nothing heard yet: a word may still come (the
                                recognizer lags); nothing waits on the drop */
    return t->offset + wait;
}

const char *st_turn_pending(const st_turn *t)
{
    if (t->state != ST_TURN_USER || t->speaking || !t->offset_decided || !t->n_words ||
        t->offset < t->onset)
        return NULL;
    return t->words;
}
