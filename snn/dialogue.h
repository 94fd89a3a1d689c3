/*  snn/dialogue.h - the agent's dialogue on top of the language model: the
    model writes the answer and may call a tool (the clock, a timer, a
    calculator), which the runtime executes and feeds back; plus the corpus
    the model is trained on (generated from templates for the agent's
    domain, and real dialogues) and the held-out phrasings its replies are
    measured on.

    The transcript format (docs/LM.md, "Dialogue and tools"):

        user: what do you get if you multiply seven by six
        agent: [calc seven times six]{ forty two} seven times six is forty two

    After "agent:" the model writes; when it closes a tool call with "]",
    the runtime executes the call and feeds "{ RESULT}" into the model's
    state as if it had been said, and the model goes on; a newline ends
    the answer. The reply is what the model wrote after the last tool
    result. The tools only compute (a calculator on number words, the
    time in words, a timer's acknowledgement); what to call, with which
    numbers, and what to say is the model's.

    Workload: one line of user text, an answer of 5 to 150 tokens, greedy
    decoding token by token on one core (milliseconds per token at 4 x 128).
    Nothing here prints. The reply functions allocate only their state.
*/
#ifndef ST_DIALOGUE_H
#define ST_DIALOGUE_H

#include "lm.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ======================================================================
   Numbers as words (American, no "and": 105 is "one hundred five")
   ====================================================================== */

/*  n in words into buf ("minus forty two" for -42), |n| < 10^12.
    ST_ERR_INVALID when out of range or buf (cap bytes) is too small. */
int st_words_from_number(long long n, char *buf, size_t cap);

/*  x rounded to `decimals` places in words, trailing zeros dropped
    ("three point three three", "two point five", "four"). */
int st_words_from_decimal(double x, int decimals, char *buf, size_t cap);

/*  A number phrase ("forty two", "one hundred and five", "a hundred",
    "minus three", "twelve thousand") -> *out. ST_ERR_INVALID when the
    words are not exactly one number. */
int st_number_from_words(const char *s, size_t len, long long *out);

/* ======================================================================
   Tools
   ====================================================================== */

/*  Called when the model sets a timer (seconds); the runtime's business
    what to do with it. */
typedef void (*st_dialogue_timer_fn)(long long seconds, const char *label, void *user_data);

typedef struct {
    int hour, minute;              /* the clock the time tool reads; hour < 0: local time */
    st_dialogue_timer_fn on_timer; /* may be NULL */
    void *user_data;
} st_dialogue_tools;

/*  Executes one tool call, the text between "[" and "]":
      calc A plus|minus|times|divided by B -> the result in words
           (division to two places; "not defined" for / 0)
      calc A greater than|less than B      -> "yes" or "no"
      time                                 -> "three fifteen pm"
      timer N seconds|minutes|hours        -> "ok" (on_timer called)
    into result (cap bytes). ST_ERR_INVALID (result "error") for a call it
    cannot read. */
int st_dialogue_tool(const st_dialogue_tools *tools, const char *call, size_t len, char *result,
                     size_t cap);

/*  Whether a tool call uses only numbers the user said: every number of a
    calc or timer call must be one of the numbers in user (normalised
    text, see st_dialogue_normalize), each said number used once ("seven
    times seven" needs two sevens); "a minute", "an hour" say one, "half
    an hour" thirty. Other calls (time) and calls that do not read are
    grounded: the tool reports those. A call with a number nobody said is
    the model's guess at a misheard request ("minutes" -> "[timer seven
    minutes]"): the runtime refuses it and asks again (the fallback). */
bool st_dialogue_grounded(const char *user, const char *call, size_t len);

/*  The time tool's words for hour (0-23) and minute: "three o'clock pm",
    "three oh five pm", "eleven forty two am". */
int st_dialogue_time_words(int hour, int minute, char *buf, size_t cap);

/* ======================================================================
   Replying
   ====================================================================== */

/*  User text as the model saw it in training (and as a recognizer writes
    it): lower case, digits as number words, + * / as plus, times,
    divided by, other punctuation dropped, single spaces. */
void st_dialogue_normalize(const char *in, char *out, size_t cap);

typedef struct {
    size_t max_tokens;       /* the answer's length limit, tokens (default 400) */
    st_dialogue_tools tools;
} st_dialogue_params;

/*  400 tokens, the system clock, no timer callback. */
st_dialogue_params st_dialogue_default_params(void);

/*  What a reply did. */
typedef struct {
    char transcript[4096]; /* after "agent:": the model's text and the tool results */
    unsigned n_tools;      /* tool calls executed */
    bool tool_error;       /* a call the tools could not read */
    bool ungrounded;       /* a call with a number the user did not say,
                              refused (st_dialogue_grounded) */
    long long timer_s;     /* the last timer set, seconds (-1: none) */
    bool fallback;         /* the model wrote nothing usable: the runtime's
                              "sorry, i didn't catch that." was used */
    size_t n_tokens;       /* tokens the model wrote */
    double seconds;
} st_dialogue_info;

/*  The agent's answer to one line of user text: normalises it, feeds
    "user: TEXT\nagent:" to a fresh state of `model`, decodes greedily,
    executing tool calls, until a newline or max_tokens. reply (cap bytes)
    gets the answer (what the model wrote after its last tool result,
    trimmed); a call with a number the user did not say is not executed,
    and the answer ends before it, as it does at a call the tools cannot
    read (the model's words after "{ error}" would claim what was not
    done). Should the model write nothing (or only a broken or refused
    call), the
    reply is "sorry, i didn't catch that." and info->fallback says so: the
    caller never gets silence. info may be NULL. ST_ERR_NOMEM. */
int st_dialogue_reply(const st_lm_model *model, const char *user, const st_dialogue_params *p,
                      char *reply, size_t cap, st_dialogue_info *info);

/* ======================================================================
   Training corpus and held-out phrasings (snn/dialogue_gen.c)
   ====================================================================== */

typedef struct {
    uint64_t seed;
    size_t dialogues;            /* generated dialogues (default 60000) */
    const char *chatterbot_path; /* the real dialogues ("A: / B:" turns), NULL: none */
    unsigned chatterbot_repeat;  /* times each is included (default 1) */
} st_dialogue_gen_params;

st_dialogue_gen_params st_dialogue_gen_default_params(void);

/*  The training corpus: dialogues from the training templates (never the
    held-out ones), and the real dialogues turned into "user:"/"agent:"
    turns (lower case; those whose opening line is one of the agent's own
    intents - greetings, jokes - are left out so those answers are the
    agent's), shuffled, each followed by a blank line. *text (caller frees),
    *len bytes. ST_ERR_IO naming the chatterbot file. */
int st_dialogue_corpus(const st_dialogue_gen_params *p, char **text, size_t *len);

/*  The loss mask for a corpus: 1 for the bytes the agent says (after
    "agent:" through the newline), 0 for the user's lines, the "agent:"
    label and the tool results "{ ... }" (the runtime says those). */
void st_dialogue_answer_bytes(const char *text, size_t len, uint8_t *mask);

typedef enum {
    ST_DLG_ARITH = 0, ST_DLG_COMPARE, ST_DLG_TIME, ST_DLG_TIMER, ST_DLG_COUNT,
    ST_DLG_GREET, ST_DLG_HELP, ST_DLG_YESNO, ST_DLG_JOKE, ST_DLG_STORY, ST_DLG_OOD,
    ST_DLG_N_INTENTS
} st_dialogue_intent;

const char *st_dialogue_intent_name(st_dialogue_intent i);

/*  One held-out request and what a right answer is. */
typedef struct {
    char user[256];
    st_dialogue_intent intent;
    int hour, minute;       /* the clock for this case */
    char expect[2048];      /* right answers, separated by '|' (empty for OOD) */
    long long timer_s;      /* ST_DLG_TIMER: the seconds the call must set */
} st_dialogue_case;

/*  n held-out requests (in-domain intents in proportion, plus out-of-domain
    ones), each built from a template, prefix or suffix the training corpus
    never uses, from `seed`. *cases (caller frees). */
int st_dialogue_heldout(uint64_t seed, size_t n, st_dialogue_case **cases, size_t *n_out);

/*  Whether a reply is right for the case: in-domain, the reply is one of
    the expected answers (and for a timer, info->timer_s is the right time);
    out of domain, the reply is short (1 to 40 words), holds no tool
    syntax, and was not the runtime's fallback. *why (may be NULL) gets a
    short reason when it is not. */
bool st_dialogue_check(const st_dialogue_case *c, const char *reply, const st_dialogue_info *info,
                       const char **why);

#ifdef __cplusplus
}
#endif
#endif
