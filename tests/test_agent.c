/*  tests/test_agent.c - suite `agent`: the turn controller (pipeline/turn.c)
    as a pure state machine, and the agent (pipeline/agent.c) on scripted
    conversations in virtual time.

    Turn controller: the grammar of a complete request; the end of a turn
    after the VAD's offset (sooner for a complete request); a pause inside a
    request that does not end the turn; speech without a word dropped;
    barge-in paused at the onset and committed by duration or by a word,
    with a new epoch; a backchannel resumed; every change published; bad
    parameters refused.

    Agent (its own recognizer, models/asr_stream.stm, and espeak-ng; the
    dialogue model when present, else its "not installed" answer - the
    mechanics are the same): a user request gets an answer, with the same
    sample-exact events on a second run; a user speaking over the agent
    silences it within 150 ms of the onset, no sample of the old epoch is
    played after the flush, and the history keeps only the words that were
    played; the agent talking for a minute into a room echo never pauses or
    stops for itself, nor in a new room after a silence (the echo path it
    learnt with no room is learnt again), while a user speaking over it in the
    same room still interrupts it; with no room, a request spoken over the
    answer after a short burst of the user's voice is heard within 200 ms of
    its start (the residual echo tracker does not learn the user's voice).

    The `vad`, `recognizer` and `lm` stages in a supervised pipeline: the
    VAD's SPEECH events and the recognizer's word in the recording, the LM's
    answer streamed to a text sink.

    `spiketalk live` (the binary, $ST_CLI or build/spiketalk): with no
    device it says so and points to --input; on JACK's dummy driver (the
    real PortAudio path, no hardware) it hears speech that this test plays
    into its capture port from a second JACK client, and speaks. */
#include "testutil.h"

#include "pipeline/pipeline.h"
#include "tts/tts.h"

#include "audio/audio.h"

#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

#define RATE 16000
#define S(x) ((uint64_t)((x) * RATE))

/* ---- the turn controller ---------------------------------------------------- */

typedef struct {
    st_turn_state to[32];
    int n;
} changes;

static void record(st_turn_state from, st_turn_state to, uint64_t sample, void *user_data)
{
    (void)from;
    (void)sample;
    changes *c = user_data;
    if (c->n < 32)
        c->to[c->n++] = to;
}

static st_turn *turn_new(changes *c)
{
    st_turn_params p = st_turn_default_params();
    int err = -1;
    st_turn *t = st_turn_new(&p, record, c, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    CU_ASSERT_EQUAL(err, ST_OK);
    return t;
}

static void test_grammar(void)
{
    CU_ASSERT_TRUE(st_turn_request_complete("what seven times six"));
    CU_ASSERT_TRUE(st_turn_request_complete("stop seven plus two"));
    CU_ASSERT_TRUE(st_turn_request_complete("timer five minutes"));
    CU_ASSERT_TRUE(st_turn_request_complete("count three"));
    CU_ASSERT_TRUE(st_turn_request_complete("joke"));
    CU_ASSERT_TRUE(st_turn_request_complete("what time"));
    CU_ASSERT_FALSE(st_turn_request_complete("timer"));
    CU_ASSERT_FALSE(st_turn_request_complete("timer five"));
    CU_ASSERT_FALSE(st_turn_request_complete("what seven times"));
    CU_ASSERT_FALSE(st_turn_request_complete("seven"));
    CU_ASSERT_TRUE(st_turn_request_complete("count down three"));
    CU_ASSERT_TRUE(st_turn_request_complete("count one five"));
    CU_ASSERT_FALSE(st_turn_request_complete("count down"));
    /* "two" after "count" may be "to" (homophones): the rest may come */
    CU_ASSERT_FALSE(st_turn_request_complete("count two"));
    CU_ASSERT_TRUE(st_turn_request_prefix("count two"));
    CU_ASSERT_TRUE(st_turn_request_prefix("count down two"));
    /* a Speech Commands keyword said alone is the whole utterance */
    CU_ASSERT_TRUE(st_turn_request_complete("up"));
    CU_ASSERT_TRUE(st_turn_request_complete("stop"));
    CU_ASSERT_FALSE(st_turn_request_complete("what up"));
    CU_ASSERT_FALSE(st_turn_request_prefix("up"));
    CU_ASSERT_FALSE(st_turn_request_complete(""));
    CU_ASSERT_FALSE(st_turn_request_complete(NULL));
    /* the start of a request: the rest is still to come */
    CU_ASSERT_TRUE(st_turn_request_prefix("timer"));
    CU_ASSERT_TRUE(st_turn_request_prefix("timer five"));
    CU_ASSERT_TRUE(st_turn_request_prefix("what seven times"));
    CU_ASSERT_TRUE(st_turn_request_prefix("what"));
    CU_ASSERT_TRUE(st_turn_request_prefix("up seven"));
    CU_ASSERT_FALSE(st_turn_request_prefix("timer five minutes")); /* complete */
    CU_ASSERT_FALSE(st_turn_request_prefix("up left"));
    CU_ASSERT_FALSE(st_turn_request_prefix("minus two")); /* the first number was missed */
    CU_ASSERT_FALSE(st_turn_request_prefix("what plus five"));
    CU_ASSERT_TRUE(st_turn_request_prefix("what is two"));
    CU_ASSERT_FALSE(st_turn_request_prefix("seven")); /* a number alone: the fallback */
    CU_ASSERT_FALSE(st_turn_request_prefix(""));
    CU_ASSERT_FALSE(st_turn_request_prefix(NULL));
    /* "time" next to a number is "times" heard without its /z/ */
    CU_ASSERT_TRUE(st_turn_request_complete("six time nine"));
    CU_ASSERT_FALSE(st_turn_request_complete("eight time"));
    CU_ASSERT_TRUE(st_turn_request_prefix("eight time"));
    CU_ASSERT_FALSE(st_turn_request_prefix("time one")); /* "times one": the first number missed */
}

static void test_end_of_turn(void)
{
    changes c = {0};
    st_turn *t = turn_new(&c);
    st_turn_params p = st_turn_default_params();
    CU_ASSERT_EQUAL(st_turn_get_state(t), ST_TURN_LISTENING);
    CU_ASSERT_EQUAL(st_turn_onset(t, S(1.0), S(1.03)), 0);
    CU_ASSERT_EQUAL(st_turn_get_state(t), ST_TURN_USER);
    st_turn_word(t, "what", S(1.0), S(1.2), S(1.4));
    st_turn_word(t, "seven", S(1.2), S(1.5), S(1.7));
    st_turn_word(t, "times", S(1.5), S(1.8), S(1.9));
    CU_ASSERT_EQUAL(st_turn_word(t, "six", S(1.9), S(2.1), S(2.15)), 0); /* still speaking */
    /* A complete request: the turn ends complete_wait_s after the offset. */
    CU_ASSERT_EQUAL(st_turn_offset(t, S(2.2), S(2.21)), 0);
    CU_ASSERT_EQUAL(st_turn_tick(t, S(2.2 + p.complete_wait_s) - 1), 0);
    CU_ASSERT_EQUAL(st_turn_tick(t, S(2.2 + p.complete_wait_s)), ST_TURN_DO_ANSWER);
    CU_ASSERT_EQUAL(st_turn_get_state(t), ST_TURN_THINKING);
    CU_ASSERT_STRING_EQUAL(st_turn_request(t), "what seven times six");
    CU_ASSERT_EQUAL(st_turn_request_end(t), S(2.2));
    CU_ASSERT_EQUAL(st_turn_epoch(t), 1);
    st_turn_agent_started(t, S(2.4));
    CU_ASSERT_EQUAL(st_turn_get_state(t), ST_TURN_AGENT);
    st_turn_agent_done(t, S(4.0));
    CU_ASSERT_EQUAL(st_turn_get_state(t), ST_TURN_LISTENING);
    /* Every change was published, in order. */
    CU_ASSERT_EQUAL(c.n, 4);
    CU_ASSERT_EQUAL(c.to[0], ST_TURN_USER);
    CU_ASSERT_EQUAL(c.to[1], ST_TURN_THINKING);
    CU_ASSERT_EQUAL(c.to[2], ST_TURN_AGENT);
    CU_ASSERT_EQUAL(c.to[3], ST_TURN_LISTENING);
    st_turn_destroy(&t);
    CU_ASSERT_PTR_NULL(t);
}

static void test_pause_inside_request(void)
{
    changes c = {0};
    st_turn *t = turn_new(&c);
    st_turn_params p = st_turn_default_params();
    st_turn_onset(t, S(1.0), S(1.03));
    st_turn_word(t, "timer", S(1.0), S(1.4), S(1.6));
    st_turn_offset(t, S(1.5), S(1.6));
    /* 0.6 s of silence inside the request: still the user's turn. */
    for (double s = 1.6; s < 2.1; s += 0.01)
        CU_ASSERT_EQUAL(st_turn_tick(t, S(s)), 0);
    CU_ASSERT_EQUAL(st_turn_get_state(t), ST_TURN_USER);
    CU_ASSERT_EQUAL(st_turn_onset(t, S(2.1), S(2.13)), 0);
    st_turn_word(t, "five", S(2.1), S(2.4), S(2.6));
    st_turn_offset(t, S(2.9), S(3.0));
    CU_ASSERT_EQUAL(st_turn_tick(t, S(3.1)), 0); /* "five" alone is not complete */
    CU_ASSERT_EQUAL(st_turn_word(t, "minutes", S(2.4), S(2.9), S(3.15)), ST_TURN_DO_ANSWER);
    CU_ASSERT_STRING_EQUAL(st_turn_request(t), "timer five minutes");
    CU_ASSERT_EQUAL(c.n, 2); /* user, thinking: the pause changed nothing */
    /* The start of a request waits longer: "what seven" (then "plus ..."). */
    st_turn_agent_started(t, S(3.3));
    st_turn_agent_done(t, S(4.0));
    st_turn_onset(t, S(5.0), S(5.03));
    st_turn_word(t, "what", S(5.0), S(5.1), S(5.3));
    st_turn_word(t, "seven", S(5.1), S(5.3), S(5.5));
    st_turn_offset(t, S(5.4), S(5.5));
    CU_ASSERT_EQUAL(st_turn_tick(t, S(5.4 + p.prefix_wait_s) - 1), 0);
    CU_ASSERT_EQUAL(st_turn_tick(t, S(5.4 + p.prefix_wait_s)), ST_TURN_DO_ANSWER);
    CU_ASSERT_STRING_EQUAL(st_turn_request(t), "what seven");
    /* The silence fallback ends words that are no request at all sooner. */
    st_turn_agent_started(t, S(7.3));
    st_turn_agent_done(t, S(8.0));
    st_turn_onset(t, S(9.0), S(9.03));
    st_turn_word(t, "minutes", S(9.0), S(9.3), S(9.5));
    st_turn_offset(t, S(9.4), S(9.5));
    CU_ASSERT_EQUAL(st_turn_tick(t, S(9.4 + p.incomplete_wait_s) - 1), 0);
    CU_ASSERT_EQUAL(st_turn_tick(t, S(9.4 + p.incomplete_wait_s)), ST_TURN_DO_ANSWER);
    CU_ASSERT_STRING_EQUAL(st_turn_request(t), "minutes");
    /* A prefix the user spoke on past (the recognizer missed the rest:
       "what is seven times [six]") is stale: the fallback, not the prefix
       wait. Spoken on less than prefix_stale_s ("timer [for]"), it holds. */
    st_turn_agent_started(t, S(11.3));
    st_turn_agent_done(t, S(12.0));
    st_turn_onset(t, S(13.0), S(13.03));
    st_turn_word(t, "seven", S(13.0), S(13.3), S(13.5));
    st_turn_word(t, "times", S(13.3), S(13.6), S(13.8));
    double off = 13.6 + p.prefix_stale_s + 0.01;
    st_turn_offset(t, S(off), S(off + 0.1));
    CU_ASSERT_EQUAL(st_turn_deadline(t), S(off) + S(p.incomplete_wait_s));
    CU_ASSERT_EQUAL(st_turn_tick(t, S(off + p.incomplete_wait_s)), ST_TURN_DO_ANSWER);
    CU_ASSERT_STRING_EQUAL(st_turn_request(t), "seven times");
    st_turn_agent_started(t, S(15.3));
    st_turn_agent_done(t, S(16.0));
    st_turn_onset(t, S(17.0), S(17.03));
    st_turn_word(t, "timer", S(17.0), S(17.3), S(17.5));
    off = 17.3 + p.prefix_stale_s - 0.05;
    st_turn_offset(t, S(off), S(off + 0.1));
    CU_ASSERT_EQUAL(st_turn_deadline(t), S(off) + S(p.prefix_wait_s));
    CU_ASSERT_EQUAL(st_turn_tick(t, S(off + p.incomplete_wait_s)), 0);
    st_turn_destroy(&t);
}

/* "what time | is it": "what time" is complete only once the words the
   recognizer does not know ("is it") were said after it, as speech past the
   word's end; without them the user paused inside the request. */
static void test_what_time_pause(void)
{
    changes c = {0};
    st_turn *t = turn_new(&c);
    st_turn_params p = st_turn_default_params();
    st_turn_onset(t, S(1.0), S(1.03));
    st_turn_word(t, "what", S(1.0), S(1.2), S(1.3));
    st_turn_word(t, "time", S(1.2), S(1.5), S(1.6));
    st_turn_offset(t, S(1.7), S(1.75)); /* 0.2 s past "time": the hangover */
    CU_ASSERT_EQUAL(st_turn_deadline(t), S(1.7) + S(p.prefix_wait_s));
    for (double s = 1.75; s < 2.9; s += 0.01)
        CU_ASSERT_EQUAL(st_turn_tick(t, S(s)), 0);
    CU_ASSERT_EQUAL(st_turn_onset(t, S(2.9), S(2.93)), 0); /* "is it" */
    CU_ASSERT_EQUAL(st_turn_offset(t, S(3.3), S(3.31)), 0);
    CU_ASSERT_EQUAL(st_turn_deadline(t), S(3.3) + S(p.complete_wait_s));
    CU_ASSERT_EQUAL(st_turn_tick(t, st_turn_deadline(t)), ST_TURN_DO_ANSWER);
    CU_ASSERT_STRING_EQUAL(st_turn_request(t), "what time");
    st_turn_agent_started(t, S(3.8));
    st_turn_agent_done(t, S(5.0));
    /* Said in one go, the offset comes well after "time": complete. */
    st_turn_onset(t, S(6.0), S(6.03));
    st_turn_word(t, "what", S(6.0), S(6.2), S(6.3));
    st_turn_word(t, "time", S(6.2), S(6.5), S(6.6));
    st_turn_offset(t, S(6.95), S(6.96));
    CU_ASSERT_EQUAL(st_turn_deadline(t), S(6.95) + S(p.complete_wait_s));
    st_turn_agent_done(t, S(7.5));
    /* The request says "times" where the recognizer heard "time". */
    st_turn_destroy(&t);
    t = turn_new(&c);
    st_turn_onset(t, S(1.0), S(1.03));
    st_turn_word(t, "six", S(1.0), S(1.2), S(1.3));
    st_turn_word(t, "time", S(1.2), S(1.5), S(1.6));
    st_turn_word(t, "nine", S(1.5), S(1.8), S(1.9));
    st_turn_offset(t, S(1.9), S(1.91));
    CU_ASSERT_EQUAL(st_turn_tick(t, st_turn_deadline(t)), ST_TURN_DO_ANSWER);
    CU_ASSERT_STRING_EQUAL(st_turn_request(t), "six times nine");
    st_turn_destroy(&t);
}

static void test_noise_dropped(void)
{
    changes c = {0};
    st_turn *t = turn_new(&c);
    st_turn_onset(t, S(1.0), S(1.03));
    st_turn_offset(t, S(1.2), S(1.3));
    int acts = 0;
    for (double s = 1.3; s < 3; s += 0.01)
        acts |= st_turn_tick(t, S(s));
    CU_ASSERT_EQUAL(acts, 0);
    CU_ASSERT_EQUAL(st_turn_get_state(t), ST_TURN_LISTENING);
    CU_ASSERT_EQUAL(st_turn_epoch(t), 0);
    /* Nothing heard yet at the offset: the turn is dropped only after
       late_word_s, not the shorter fallback, so a word the recognizer
       decides late still makes it a request. */
    st_turn_params p = st_turn_default_params();
    CU_ASSERT(p.incomplete_wait_s < p.late_word_s);
    st_turn_onset(t, S(4.0), S(4.03));
    st_turn_offset(t, S(4.5), S(4.6));
    CU_ASSERT_EQUAL(st_turn_deadline(t), S(4.5) + S(p.late_word_s));
    CU_ASSERT_EQUAL(st_turn_tick(t, S(4.5 + p.incomplete_wait_s) + 1), 0);
    CU_ASSERT_EQUAL(st_turn_get_state(t), ST_TURN_USER);
    CU_ASSERT_EQUAL(st_turn_word(t, "hello", S(4.0), S(4.5), S(4.5 + p.incomplete_wait_s + 0.05)),
                    ST_TURN_DO_ANSWER);
    CU_ASSERT_STRING_EQUAL(st_turn_request(t), "hello");
    st_turn_destroy(&t);
}

/* The VAD holding on (noise it takes for speech) does not keep the turn open
   for ever: after max_turn_s it ends, back to listening without a word, and
   with the words heard as a request otherwise. */
static void test_turn_ends_when_vad_holds_on(void)
{
    changes c = {0};
    st_turn *t = turn_new(&c);
    st_turn_onset(t, S(1.0), S(1.03)); /* and no offset */
    int acts = 0;
    for (double s = 1.03; s < 10.9; s += 0.01)
        acts |= st_turn_tick(t, S(s));
    CU_ASSERT_EQUAL(acts, 0);
    CU_ASSERT_EQUAL(st_turn_get_state(t), ST_TURN_USER);
    for (double s = 10.9; s < 11.2; s += 0.01)
        acts |= st_turn_tick(t, S(s));
    CU_ASSERT_EQUAL(acts, 0);
    CU_ASSERT_EQUAL(st_turn_get_state(t), ST_TURN_LISTENING);
    /* the same with a word heard: it is answered */
    st_turn_onset(t, S(12.0), S(12.03));
    st_turn_word(t, "joke", S(12.1), S(12.5), S(12.6));
    for (double s = 12.6; s < 22.2 && !(acts & ST_TURN_DO_ANSWER); s += 0.01)
        acts |= st_turn_tick(t, S(s));
    CU_ASSERT(acts & ST_TURN_DO_ANSWER);
    CU_ASSERT_STRING_EQUAL(st_turn_request(t), "joke");
    st_turn_destroy(&t);
}

/* Brings a controller to AGENT (one answer playing). */
static void to_agent(st_turn *t)
{
    st_turn_onset(t, S(1.0), S(1.03));
    st_turn_word(t, "joke", S(1.0), S(1.4), S(1.5));
    CU_ASSERT_EQUAL(st_turn_offset(t, S(1.4), S(1.5)), ST_TURN_DO_ANSWER);
    st_turn_agent_started(t, S(1.7));
    CU_ASSERT_EQUAL(st_turn_get_state(t), ST_TURN_AGENT);
}

static void test_barge_in(void)
{
    changes c = {0};
    st_turn *t = turn_new(&c);
    st_turn_params p = st_turn_default_params();
    to_agent(t);
    uint32_t e = st_turn_epoch(t);
    CU_ASSERT_EQUAL(st_turn_onset(t, S(3.0), S(3.03)), ST_TURN_DO_PAUSE);
    CU_ASSERT_EQUAL(st_turn_get_state(t), ST_TURN_BOTH);
    CU_ASSERT_EQUAL(st_turn_barge_onset(t), S(3.0));
    CU_ASSERT_EQUAL(st_turn_tick(t, S(3.0 + p.barge_min_s) - 1), 0);
    CU_ASSERT_EQUAL(st_turn_tick(t, S(3.0 + p.barge_min_s)), ST_TURN_DO_INTERRUPT);
    CU_ASSERT_EQUAL(st_turn_epoch(t), e + 1);
    CU_ASSERT_EQUAL(st_turn_get_state(t), ST_TURN_USER);
    /* The interrupting words make the next request. */
    st_turn_word(t, "count", S(3.0), S(3.3), S(3.5));
    st_turn_word(t, "three", S(3.3), S(3.6), S(3.8));
    CU_ASSERT_EQUAL(st_turn_offset(t, S(3.6), S(3.8)), ST_TURN_DO_ANSWER);
    CU_ASSERT_STRING_EQUAL(st_turn_request(t), "count three");
    CU_ASSERT_EQUAL(st_turn_epoch(t), e + 2);
    st_turn_destroy(&t);

    /* A word commits the barge-in before the minimum duration. */
    c.n = 0;
    t = turn_new(&c);
    to_agent(t);
    e = st_turn_epoch(t);
    st_turn_onset(t, S(3.0), S(3.03));
    CU_ASSERT_EQUAL(st_turn_word(t, "stop", S(3.0), S(3.1), S(3.15)), ST_TURN_DO_INTERRUPT);
    CU_ASSERT_EQUAL(st_turn_epoch(t), e + 1);
    st_turn_destroy(&t);
    /* ... and that word opens the new turn with its end: a prefix said over
       the agent and followed by a pause gets the prefix wait, not the
       fallback of a stale prefix */
    t = turn_new(&c);
    to_agent(t);
    st_turn_onset(t, S(3.0), S(3.03));
    CU_ASSERT_EQUAL(st_turn_word(t, "timer", S(3.0), S(3.4), S(3.5)), ST_TURN_DO_INTERRUPT);
    st_turn_offset(t, S(3.45), S(3.55));
    CU_ASSERT_EQUAL(st_turn_deadline(t), S(3.45) + S(p.prefix_wait_s));
    st_turn_destroy(&t);
}

/* The barge-in hint (st_turn_hint): it pauses the agent at once; the VAD's
   speech after it counts toward the barge-in as usual; with no speech the
   answer resumes after resume_hold_s; in any other state it does nothing. */
static void test_barge_hint(void)
{
    changes c = {0};
    st_turn *t = turn_new(&c);
    st_turn_params p = st_turn_default_params();
    CU_ASSERT_EQUAL(st_turn_hint(t, S(0.5), S(0.52)), 0); /* listening: nothing */
    CU_ASSERT_EQUAL(st_turn_get_state(t), ST_TURN_LISTENING);
    to_agent(t);
    uint32_t e = st_turn_epoch(t);
    CU_ASSERT_EQUAL(st_turn_hint(t, S(2.90), S(2.93)), ST_TURN_DO_PAUSE);
    CU_ASSERT_EQUAL(st_turn_get_state(t), ST_TURN_BOTH);
    CU_ASSERT_EQUAL(st_turn_barge_onset(t), S(2.90));
    CU_ASSERT_EQUAL(st_turn_hint(t, S(2.95), S(2.96)), 0); /* paused already */
    /* the VAD's onset 0.1 s later: speech counts from it, not from the hint */
    CU_ASSERT_EQUAL(st_turn_onset(t, S(3.0), S(3.03)), 0);
    CU_ASSERT_EQUAL(st_turn_tick(t, S(3.0 + p.barge_min_s) - 1), 0);
    CU_ASSERT_EQUAL(st_turn_tick(t, S(3.0 + p.barge_min_s)), ST_TURN_DO_INTERRUPT);
    CU_ASSERT_EQUAL(st_turn_epoch(t), e + 1);
    CU_ASSERT_EQUAL(st_turn_barge_onset(t), S(2.90));
    st_turn_destroy(&t);

    /* a hint and no speech (a clack): resumed after resume_hold_s */
    t = turn_new(&c);
    to_agent(t);
    e = st_turn_epoch(t);
    CU_ASSERT_EQUAL(st_turn_hint(t, S(3.0), S(3.03)), ST_TURN_DO_PAUSE);
    uint64_t hold = (uint64_t)(p.resume_hold_s * 16000 + 0.5);
    CU_ASSERT_EQUAL(st_turn_tick(t, S(3.03) + hold - 1), 0);
    CU_ASSERT_EQUAL(st_turn_tick(t, S(3.03) + hold), ST_TURN_DO_RESUME);
    CU_ASSERT_EQUAL(st_turn_get_state(t), ST_TURN_AGENT);
    CU_ASSERT_EQUAL(st_turn_epoch(t), e);
    st_turn_destroy(&t);
}

static void test_backchannel_resumes(void)
{
    changes c = {0};
    st_turn *t = turn_new(&c);
    to_agent(t);
    uint32_t e = st_turn_epoch(t);
    st_turn_params p = st_turn_default_params();
    CU_ASSERT_EQUAL(st_turn_onset(t, S(3.0), S(3.03)), ST_TURN_DO_PAUSE);
    CU_ASSERT_EQUAL(st_turn_tick(t, S(3.1)), 0);
    CU_ASSERT_EQUAL(st_turn_offset(t, S(3.12), S(3.2)), 0);
    CU_ASSERT_EQUAL(st_turn_tick(t, S(3.2 + p.resume_hold_s) - 1), 0);
    CU_ASSERT_EQUAL(st_turn_tick(t, S(3.2 + p.resume_hold_s)), ST_TURN_DO_RESUME);
    CU_ASSERT_EQUAL(st_turn_get_state(t), ST_TURN_AGENT);
    CU_ASSERT_EQUAL(st_turn_epoch(t), e);
    /* A backchannel word heard over the agent does not commit it either. */
    CU_ASSERT_EQUAL(st_turn_onset(t, S(4.0), S(4.03)), ST_TURN_DO_PAUSE);
    CU_ASSERT_EQUAL(st_turn_word(t, "yes", S(4.0), S(4.2), S(4.25)), 0);
    CU_ASSERT_EQUAL(st_turn_word(t, "right", S(4.2), S(4.4), S(4.45)), 0);
    CU_ASSERT_EQUAL(st_turn_offset(t, S(4.4), S(4.5)), 0);
    CU_ASSERT_EQUAL(st_turn_tick(t, S(4.5 + p.resume_hold_s)), ST_TURN_DO_RESUME);
    CU_ASSERT_EQUAL(st_turn_epoch(t), e);
    /* Nor a word the recognizer was unsure of (a noise burst as "seconds"),
       while the same word said clearly does. */
    changes c2 = {0};
    float unsure = (float)p.barge_word_score * 0.5f, sure = (float)p.barge_word_score;
    st_turn *t2 = turn_new(&c2);
    to_agent(t2);
    uint32_t e2 = st_turn_epoch(t2);
    CU_ASSERT_EQUAL(st_turn_onset(t2, S(3.0), S(3.03)), ST_TURN_DO_PAUSE);
    CU_ASSERT_EQUAL(st_turn_heard(t2, "seconds", unsure, S(3.0), S(3.05), S(3.07)), 0);
    CU_ASSERT_EQUAL(st_turn_offset(t2, S(3.1), S(3.11)), 0);
    CU_ASSERT_EQUAL(st_turn_tick(t2, S(3.11 + p.resume_hold_s)), ST_TURN_DO_RESUME);
    CU_ASSERT_EQUAL(st_turn_epoch(t2), e2);
    st_turn_destroy(&t2);
    t2 = turn_new(&c2);
    to_agent(t2);
    e2 = st_turn_epoch(t2);
    st_turn_onset(t2, S(3.0), S(3.03));
    CU_ASSERT_EQUAL(st_turn_heard(t2, "seconds", sure, S(3.0), S(3.2), S(3.25)),
                    ST_TURN_DO_INTERRUPT);
    CU_ASSERT_EQUAL(st_turn_epoch(t2), e2 + 1);
    st_turn_destroy(&t2);
    /* "no, no": two short pieces within the hold add up to a barge-in. */
    double a = 0.6 * p.barge_min_s, second = 5.5 + a + 0.2;
    CU_ASSERT_EQUAL(st_turn_onset(t, S(5.5), S(5.53)), ST_TURN_DO_PAUSE);
    CU_ASSERT_EQUAL(st_turn_offset(t, S(5.5) + S(a), S(5.5 + a + 0.1)), 0);
    CU_ASSERT_EQUAL(st_turn_onset(t, S(second), S(second + 0.03)), 0);
    CU_ASSERT_EQUAL(st_turn_get_state(t), ST_TURN_BOTH);
    uint64_t commit = S(second) + (S(p.barge_min_s) - S(a));
    CU_ASSERT_EQUAL(st_turn_tick(t, commit - 1), 0);
    CU_ASSERT_EQUAL(st_turn_tick(t, commit), ST_TURN_DO_INTERRUPT);
    CU_ASSERT_EQUAL(st_turn_epoch(t), e + 1);
    st_turn_destroy(&t);
    c.n = 0;
    t = turn_new(&c);
    to_agent(t);
    e = st_turn_epoch(t);
    /* The user going on while the answer is being made drops that answer. */
    st_turn_agent_done(t, S(4.0));
    st_turn_onset(t, S(5.0), S(5.03));
    st_turn_word(t, "joke", S(5.0), S(5.3), S(5.4));
    CU_ASSERT_EQUAL(st_turn_offset(t, S(5.3), S(5.4)), ST_TURN_DO_ANSWER);
    CU_ASSERT_EQUAL(st_turn_onset(t, S(5.45), S(5.48)), ST_TURN_DO_INTERRUPT);
    CU_ASSERT_EQUAL(st_turn_get_state(t), ST_TURN_USER);
    st_turn_destroy(&t);
}

static void test_bad_params(void)
{
    st_turn_params p = st_turn_default_params();
    p.incomplete_wait_s = 0.01; /* below complete_wait_s */
    int err = 0;
    CU_ASSERT_PTR_NULL(st_turn_new(&p, NULL, NULL, &err));
    CU_ASSERT_EQUAL(err, ST_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(st_errmsg(), "incomplete_wait_s"));
    p = st_turn_default_params();
    p.barge_min_s = -1;
    CU_ASSERT_PTR_NULL(st_turn_new(&p, NULL, NULL, &err));
    CU_ASSERT_EQUAL(err, ST_ERR_INVALID);
    p = st_turn_default_params();
    p.barge_word_score = 1.5;
    CU_ASSERT_PTR_NULL(st_turn_new(&p, NULL, NULL, &err));
    CU_ASSERT_PTR_NOT_NULL(strstr(st_errmsg(), "barge_word_score"));
    p = st_turn_default_params();
    p.max_turn_s = 0.5;
    CU_ASSERT_PTR_NULL(st_turn_new(&p, NULL, NULL, &err));
    CU_ASSERT_PTR_NOT_NULL(strstr(st_errmsg(), "max_turn_s"));
}

/* ---- the agent ------------------------------------------------------------------ */

static char *slurp(FILE *f);

#define MAX_EV 512

typedef struct {
    st_agent_event ev[MAX_EV];
    char text[MAX_EV][128];
    int n;
} log_t;

static void on_event(const st_agent_event *e, void *user_data)
{
    log_t *l = user_data;
    if (e->kind == ST_AGENT_EV_STATE || l->n >= MAX_EV)
        return;
    l->ev[l->n] = *e;
    snprintf(l->text[l->n], sizeof l->text[0], "%s", e->text ? e->text : "");
    l->ev[l->n].text = l->text[l->n];
    l->n++;
}

static int find(const log_t *l, st_agent_event_kind k, int from)
{
    for (int i = from; i < l->n; i++)
        if (l->ev[i].kind == k)
            return i;
    return -1;
}

static bool have_models(const char *test)
{
    struct stat st;
    if (stat("models/asr_stream.stm", &st) != 0) {
        st_test_skip(test, "models/asr_stream.stm is not here (run from the repository root)");
        return false;
    }
    return true;
}

static bool barge_hint = true; /* st_agent_params.barge_hint of agent_new */
static const char *agent_asr = "models/asr_stream.stm"; /* ... and its recognizer */

static st_agent *agent_new(log_t *l)
{
    st_agent_params p = st_agent_default_params();
    p.barge_hint = barge_hint;
    p.asr_model = agent_asr;
    struct stat st;
    const char *env = getenv("SPIKETALK_DIALOGUE_MODEL");
    if (env && *env)
        p.lm_model = env;
    else if (stat("models/dialogue.stnn", &st) == 0)
        p.lm_model = "models/dialogue.stnn";
    p.clock_hour = 10;
    p.clock_minute = 30;
    p.on_event = on_event;
    p.user_data = l;
    int err = -1;
    st_agent *a = st_agent_new(&p, &err);
    CU_ASSERT_PTR_NOT_NULL(a);
    if (!a)
        fprintf(stderr, "agent: %s\n", st_errmsg());
    return a;
}

/* Synthesizes text with the user's voice (not the agent's), 16 kHz. */
static float *user_says(const char *text, size_t *n)
{
    st_tts_params p = st_tts_default_params();
    p.voice = "en-gb-scotland";
    p.sample_rate_hz = RATE;
    int err;
    st_tts *t = st_tts_new(&p, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    st_tts_result r;
    CU_ASSERT_EQUAL_FATAL(st_tts_synthesize(t, text, &r), ST_OK);
    float *x = malloc(r.frames * sizeof(float));
    CU_ASSERT_PTR_NOT_NULL_FATAL(x);
    memcpy(x, r.samples, r.frames * sizeof(float));
    *n = r.frames;
    st_tts_result_free(&r);
    st_tts_destroy(&t);
    return x;
}

typedef struct {
    float *user, *spk, *mic;
    uint32_t *epoch;          /* per block */
    size_t n;                 /* samples */
} session;

static void session_init(session *s, double seconds)
{
    s->n = (size_t)(seconds * RATE) / ST_AGENT_BLOCK * ST_AGENT_BLOCK;
    s->user = calloc(s->n, sizeof(float));
    s->spk = calloc(s->n + ST_AGENT_BLOCK, sizeof(float));
    s->mic = calloc(s->n, sizeof(float));
    s->epoch = calloc(s->n / ST_AGENT_BLOCK + 1, sizeof(uint32_t));
    CU_ASSERT_PTR_NOT_NULL_FATAL(s->user);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s->spk);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s->mic);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s->epoch);
}

static void session_free(session *s)
{
    free(s->user);
    free(s->spk);
    free(s->mic);
    free(s->epoch);
}

/* Runs blocks [from, to) of a session: mic = user + noise (+ the echo of
   what the speaker plays, through the room: audio/'s default, a 10 ms
   direct path at gain 0.5 and 300 ms of reverberation). */
static void session_run(st_agent *a, session *s, size_t from, size_t to, st_room *room)
{
    uint32_t noise = 99;
    for (size_t b = from; b < to && (b + 1) * ST_AGENT_BLOCK <= s->n; b++) {
        size_t pos = b * ST_AGENT_BLOCK;
        for (size_t k = 0; k < ST_AGENT_BLOCK; k++) {
            noise = noise * 1664525u + 1013904223u;
            s->mic[pos + k] =
                s->user[pos + k] + ((float)(noise >> 8) / 16777216.0f - 0.5f) * 0.002f;
        }
        if (room)
            st_room_process(room, s->spk + pos, s->mic + pos, ST_AGENT_BLOCK);
        CU_ASSERT_EQUAL_FATAL(st_agent_process(a, s->mic + pos, s->spk + pos + ST_AGENT_BLOCK,
                                               &s->epoch[b + 1]),
                              ST_OK);
    }
}

static void test_agent_answers(void)
{
    if (!have_models("agent:answers"))
        return;
    log_t *l[2];
    /* The user's audio is made once: the synthesizer's first utterance in a
       process is not always the same as later ones (espeak-ng's state). */
    size_t n;
    float *x = user_says("hello.", &n);
    for (int run = 0; run < 2; run++) {
        l[run] = calloc(1, sizeof(log_t));
        CU_ASSERT_PTR_NOT_NULL_FATAL(l[run]);
        st_agent *a = agent_new(l[run]);
        if (!a)
            return;
        session s;
        session_init(&s, 6);
        memcpy(s.user + S(1.0), x, n * sizeof(float));
        session_run(a, &s, 0, s.n / ST_AGENT_BLOCK, NULL);
        int req = find(l[run], ST_AGENT_EV_REQUEST, 0);
        int ans = find(l[run], ST_AGENT_EV_ANSWER, 0);
        int spk = find(l[run], ST_AGENT_EV_SPEAKING, 0);
        /* The answer streams: its first sound may come before the LM has
           written all of it (ANSWER). */
        CU_ASSERT(req >= 0 && ans > req && spk > req);
        if (spk > 0) {
            const st_agent_event *e = &l[run]->ev[spk];
            /* The request ended after the user began and the answer followed it. */
            CU_ASSERT(e->ref > S(1.0) && e->ref < S(1.0) + n + S(0.2));
            CU_ASSERT(e->sample > e->ref && e->sample < e->ref + S(1.0));
            CU_ASSERT_TRUE(strlen(l[run]->ev[ans].text) > 0);
            /* The answer is on the speaker track from there on. */
            double energy = 0;
            for (uint64_t t = e->sample; t < e->sample + S(0.5) && t < s.n; t++)
                energy += s.spk[t] * s.spk[t];
            CU_ASSERT(energy > 0.1);
        }
        st_agent_stats st;
        st_agent_get_stats(a, &st);
        CU_ASSERT_EQUAL(st.answers, 1);
        CU_ASSERT_EQUAL(st.stale_samples, 0);
        st_agent_turn h;
        CU_ASSERT_TRUE(st_agent_history(a, 0, &h));
        CU_ASSERT_FALSE(h.agent);
        CU_ASSERT_TRUE(st_agent_history(a, 1, &h));
        CU_ASSERT_TRUE(h.agent);
        CU_ASSERT_FALSE(h.interrupted);
        session_free(&s);
        st_agent_destroy(&a);
        CU_ASSERT_PTR_NULL(a);
    }
    free(x);
    /* Virtual time: the same conversation, to the sample. */
    if (getenv("ST_VERBOSE"))
        for (int r = 0; r < 2; r++)
            for (int i = 0; i < l[r]->n; i++)
                fprintf(stderr, "run %d: %d at %llu ref %llu '%s'\n", r, l[r]->ev[i].kind,
                        (unsigned long long)l[r]->ev[i].sample,
                        (unsigned long long)l[r]->ev[i].ref, l[r]->text[i]);
    CU_ASSERT_EQUAL(l[0]->n, l[1]->n);
    for (int i = 0; i < l[0]->n && i < l[1]->n; i++) {
        CU_ASSERT_EQUAL(l[0]->ev[i].kind, l[1]->ev[i].kind);
        /* Where the answer ends is the synthesizer's: espeak-ng's output for
           a text can differ by a few ms between the first and later
           utterances of a process (tts/). Everything else is the agent's. */
        if (l[0]->ev[i].kind != ST_AGENT_EV_DONE)
            CU_ASSERT_EQUAL(l[0]->ev[i].sample, l[1]->ev[i].sample);
        CU_ASSERT_STRING_EQUAL(l[0]->text[i], l[1]->text[i]);
    }
    free(l[0]);
    free(l[1]);
}

/* The agent with its event log and a session of `seconds`, for a test that
   needs the models: NULL (nothing to free) when they are absent (skipped,
   said) or it would not start. */
static st_agent *agent_session(const char *test, double seconds, log_t **l_out, session *s)
{
    *l_out = NULL;
    if (!have_models(test))
        return NULL;
    log_t *l = calloc(1, sizeof *l);
    CU_ASSERT_PTR_NOT_NULL_FATAL(l);
    st_agent *a = agent_new(l);
    if (!a) {
        free(l);
        return NULL;
    }
    session_init(s, seconds);
    *l_out = l;
    return a;
}

/* audio/'s default room (a 10 ms direct path, RT60 300 ms). */
static st_room *default_room(void)
{
    st_room_params rp = st_room_default_params();
    int err;
    st_room *room = st_room_new(&rp, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(room);
    return room;
}

static const char *long_answer =
    "once upon a time there was a little robot who lived in a lighthouse by the sea. "
    "every night it counted the ships that passed, one by one, and wrote their names "
    "in a big blue book, until one stormy night a ship without a name came by.";

/* Blocks [b, blocks) of the session with the agent saying the long answer
   again whenever it is done (while a second is left), into `room`; the
   seconds it spoke. */
static double talk_into_room(st_agent *a, session *s, size_t b, size_t blocks, st_room *room)
{
    double spoken_s = 0;
    for (; b < blocks; b++) {
        if (st_agent_state(a) == ST_TURN_LISTENING && b + 100 < blocks)
            CU_ASSERT_EQUAL_FATAL(st_agent_say(a, long_answer), ST_OK);
        session_run(a, s, b, b + 1, room);
        spoken_s += s->epoch[b + 1] ? (double)ST_AGENT_BLOCK / RATE : 0;
    }
    return spoken_s;
}

/* "stop." over the agent, in the room: the /s/ comes ~100 ms before the
   vowel the VAD waits for; the barge-in hint pauses the agent within 150 ms
   of the user's first sound (without it: measured 200-250 ms). */
static uint64_t silent_after_stop(const char *test, bool hint)
{
    log_t *l;
    session s;
    barge_hint = hint;
    st_agent *a = agent_session(test, 8, &l, &s);
    barge_hint = true;
    if (!a)
        return 0;
    st_room *room = default_room();
    session_run(a, &s, 0, 50, room);
    CU_ASSERT_EQUAL_FATAL(st_agent_say(a, long_answer), ST_OK);
    size_t n;
    float *x = user_says("stop.", &n);
    size_t lead = 0;
    while (lead < n && fabsf(x[lead]) < 0.01f)
        lead++;
    uint64_t at = S(5.0); /* where the user's first sound lands */
    for (size_t i = lead; i < n && at + i - lead < s.n; i++)
        s.user[at + i - lead] = x[i];
    free(x);
    session_run(a, &s, 50, s.n / ST_AGENT_BLOCK, room);
    st_room_destroy(&room);
    int p = find(l, ST_AGENT_EV_PAUSED, 0);
    CU_ASSERT(p >= 0);
    uint64_t silent = p >= 0 && l->ev[p].sample > at ? l->ev[p].sample - at : UINT64_MAX;
    st_agent_destroy(&a);
    free(l);
    session_free(&s);
    return silent;
}

/* "repeat": the agent says its last answer again, whole, not a new one. */
static void test_agent_repeat(void)
{
    if (!have_models("agent:repeat"))
        return;
    log_t *l = calloc(1, sizeof(log_t));
    CU_ASSERT_PTR_NOT_NULL_FATAL(l);
    st_agent *a = agent_new(l);
    if (!a) {
        free(l);
        return;
    }
    size_t n1, n2;
    float *ask = user_says("what time is it?", &n1), *rep = user_says("repeat.", &n2);
    session s;
    session_init(&s, 14);
    memcpy(s.user + S(1.0), ask, n1 * sizeof(float));
    memcpy(s.user + S(8.0), rep, n2 * sizeof(float));
    session_run(a, &s, 0, s.n / ST_AGENT_BLOCK, NULL);
    int r1 = find(l, ST_AGENT_EV_REQUEST, 0), a1 = find(l, ST_AGENT_EV_ANSWER, 0);
    int r2 = r1 >= 0 ? find(l, ST_AGENT_EV_REQUEST, r1 + 1) : -1;
    int a2 = r2 >= 0 ? find(l, ST_AGENT_EV_ANSWER, r2 + 1) : -1;
    CU_ASSERT(r1 >= 0 && a1 > r1 && r2 > a1 && a2 > r2);
    if (!(r1 >= 0 && a1 > r1 && r2 > a1 && a2 > r2))
        for (int i = 0; i < l->n; i++)
            if (l->ev[i].kind == ST_AGENT_EV_REQUEST || l->ev[i].kind == ST_AGENT_EV_ANSWER)
                fprintf(stderr, "agent:repeat: %s at %.2f s: '%s'\n",
                        l->ev[i].kind == ST_AGENT_EV_REQUEST ? "request" : "answer",
                        (double)l->ev[i].sample / RATE, l->text[i]);
    if (a2 > 0) {
        CU_ASSERT_PTR_NOT_NULL(strstr(l->text[r2], "repeat"));
        CU_ASSERT_PTR_NOT_NULL(strstr(l->text[a1], "ten thirty"));
        CU_ASSERT_STRING_EQUAL(l->text[a2], l->text[a1]);
        if (strcmp(l->text[a2], l->text[a1]))
            fprintf(stderr, "agent:repeat: heard '%s' -> '%s'; then '%s' -> '%s'\n", l->text[r1],
                    l->text[a1], l->text[r2], l->text[a2]);
    }
    st_agent_destroy(&a);
    session_free(&s);
    free(ask);
    free(rep);
    free(l);
}

static void test_agent_barge_hint(void)
{
    uint64_t with = silent_after_stop("agent:barge_hint", true);
    if (!with)
        return;
    uint64_t without = silent_after_stop("agent:barge_hint", false);
    fprintf(stderr, "\n  agent:barge_hint: \"stop.\" -> silent after %.0f ms (without the "
                    "hint: %.0f ms)\n", with * 1000.0 / RATE, without * 1000.0 / RATE);
    CU_ASSERT(with <= S(0.150));
    CU_ASSERT(with <= without);
}

static void test_agent_interrupted(void)
{
    log_t *l;
    session s;
    st_agent *a = agent_session("agent:interrupted", 11, &l, &s);
    if (!a)
        return;
    st_room *room = default_room();
    session_run(a, &s, 0, 50, room); /* 0.5 s of room noise first */
    CU_ASSERT_EQUAL_FATAL(st_agent_say(a, long_answer), ST_OK);
    CU_ASSERT_EQUAL(st_agent_say(a, "again"), ST_ERR_STATE); /* busy */
    size_t n;
    float *x = user_says("no, no, stop, what time is it?", &n);
    uint64_t at = S(6.0); /* the canceller has converged by then (~3 s of speech) */
    memcpy(s.user + at, x, (n < s.n - at ? n : s.n - at) * sizeof(float));
    free(x);
    session_run(a, &s, 50, s.n / ST_AGENT_BLOCK, room);
    st_room_destroy(&room);

    int p = find(l, ST_AGENT_EV_PAUSED, 0);
    int in = find(l, ST_AGENT_EV_INTERRUPTED, 0);
    CU_ASSERT_FATAL(p >= 0 && in > p);
    const st_agent_event *pe = &l->ev[p], *ie = &l->ev[in];
    /* The onset is placed near where the user started, and the agent is
       silent within 150 ms of it. */
    CU_ASSERT(pe->ref + S(0.05) >= at && pe->ref <= at + S(0.15));
    if (getenv("ST_VERBOSE"))
        for (int i = 0; i < l->n; i++)
            fprintf(stderr, "  event %d at %.3f s (ref %.3f s)\n", l->ev[i].kind,
                    (double)l->ev[i].sample / RATE, (double)l->ev[i].ref / RATE);
    if (getenv("ST_VERBOSE"))
        fprintf(stderr, "user at %.3f s, onset placed at %.3f s, silent at %.3f s\n",
                (double)at / RATE, (double)pe->ref / RATE, (double)pe->sample / RATE);
    CU_ASSERT(pe->sample - pe->ref <= S(0.150));
    /* Silent from there until it resumes (a first short piece of the
       user's speech may be followed by 0.4 s of silence) or is interrupted:
       the speaker track holds zeros. */
    int re = find(l, ST_AGENT_EV_RESUMED, p);
    uint64_t quiet_to = re >= 0 && l->ev[re].sample < ie->sample ? l->ev[re].sample : ie->sample;
    size_t loud = 0;
    for (uint64_t t = pe->sample; t < quiet_to && t < s.n; t++)
        loud += s.spk[t] != 0;
    CU_ASSERT_EQUAL(loud, 0);
    /* And after the interruption, nothing until the next answer (the user's
       first "no" may be one, answered at once). */
    int next = find(l, ST_AGENT_EV_SPEAKING, in);
    uint64_t until = next >= 0 && l->ev[next].sample < ie->sample + S(0.3) ? l->ev[next].sample
                                                                          : ie->sample + S(0.3);
    for (uint64_t t = ie->sample; t < until && t < s.n; t++)
        loud += s.spk[t] != 0;
    CU_ASSERT_EQUAL(loud, 0);
    /* No block of the interrupted epoch is played after the flush. */
    size_t stale = 0;
    for (size_t b = ie->sample / ST_AGENT_BLOCK + 1; b <= s.n / ST_AGENT_BLOCK; b++)
        stale += s.epoch[b] != 0 && s.epoch[b] <= pe->epoch;
    CU_ASSERT_EQUAL(stale, 0);
    st_agent_stats st;
    st_agent_get_stats(a, &st);
    CU_ASSERT_EQUAL(st.stale_samples, 0);
    CU_ASSERT(st.interruptions >= 1); /* the user may go on over the next answer too */
    /* The history keeps only the words that were played: a true prefix. */
    st_agent_turn h;
    CU_ASSERT_TRUE_FATAL(st_agent_history(a, 0, &h));
    CU_ASSERT_TRUE(h.agent);
    CU_ASSERT_TRUE(h.interrupted);
    CU_ASSERT(strlen(h.text) > 10);
    CU_ASSERT(strlen(h.text) < strlen(long_answer) / 2);
    CU_ASSERT_EQUAL(strncmp(h.text, "once upon a time", 16), 0);
    CU_ASSERT_STRING_EQUAL(h.text, ie->text);
    session_free(&s);
    st_agent_destroy(&a);
    free(l);
}

/*  Virtual time is exact: the same conversation twice in one process gives
    the same events and the same speaker samples, to the sample and the bit.
    The agent speaks with flite here: espeak-ng keeps state across
    utterances inside the engine (wavegen.c's function-static pitch flutter
    index), so its output for a text can differ by a few samples between
    the first and a later conversation of one process; across processes
    (the same calls in the same order) it does not, which
    determinism_processes checks with the default voice. */
static void test_agent_deterministic(void)
{
    if (!have_models("agent:deterministic"))
        return;
    size_t n1, n2;
    /* the first request ends on the start of one ("timer five"): the
       controller waits, and the LM reads it ahead meanwhile */
    float *x1 = user_says("set a timer for five", &n1);
    float *x2 = user_says("tell me a joke.", &n2);
    log_t *l[2];
    session s[2];
    st_agent_stats stats[2];
    for (int run = 0; run < 2; run++) {
        l[run] = calloc(1, sizeof(log_t));
        CU_ASSERT_PTR_NOT_NULL_FATAL(l[run]);
        st_agent_params p = st_agent_default_params();
        p.asr_model = "models/asr_stream.stm";
        struct stat st;
        const char *env = getenv("SPIKETALK_DIALOGUE_MODEL");
        if (env && *env)
            p.lm_model = env;
        else if (stat("models/dialogue.stnn", &st) == 0)
            p.lm_model = "models/dialogue.stnn";
        p.tts_engine = "flite";
        p.clock_hour = 10;
        p.clock_minute = 30;
        p.on_event = on_event;
        p.user_data = l[run];
        p.preempt = run == 0; /* preemptive work changes when, never what */
        int err;
        st_agent *a = st_agent_new(&p, &err);
        CU_ASSERT_PTR_NOT_NULL_FATAL(a);
        session_init(&s[run], 12);
        memcpy(s[run].user + S(0.5), x1, n1 * sizeof(float));
        memcpy(s[run].user + S(5.0), x2, n2 * sizeof(float));
        st_room_params rp = st_room_default_params();
        st_room *room = st_room_new(&rp, &err);
        CU_ASSERT_PTR_NOT_NULL_FATAL(room);
        session_run(a, &s[run], 0, s[run].n / ST_AGENT_BLOCK, room);
        st_agent_get_stats(a, &stats[run]);
        st_room_destroy(&room);
        st_agent_destroy(&a);
    }
    free(x1);
    free(x2);
    CU_ASSERT(find(l[0], ST_AGENT_EV_SPEAKING, 0) >= 0); /* it answered */
    /* the LM read ahead on the pending words, and what it read was used */
    CU_ASSERT(stats[0].preempted >= 1);
    CU_ASSERT(stats[0].preempt_used >= 1);
    CU_ASSERT(stats[0].preempt_used <= stats[0].preempted);
    CU_ASSERT_EQUAL(stats[1].preempted, 0);
    CU_ASSERT_EQUAL(l[0]->n, l[1]->n);
    for (int i = 0; i < l[0]->n && i < l[1]->n; i++) {
        CU_ASSERT_EQUAL(l[0]->ev[i].kind, l[1]->ev[i].kind);
        CU_ASSERT_EQUAL(l[0]->ev[i].sample, l[1]->ev[i].sample);
        CU_ASSERT_EQUAL(l[0]->ev[i].ref, l[1]->ev[i].ref);
        CU_ASSERT_EQUAL(l[0]->ev[i].epoch, l[1]->ev[i].epoch);
        CU_ASSERT_STRING_EQUAL(l[0]->text[i], l[1]->text[i]);
    }
    CU_ASSERT_EQUAL(memcmp(s[0].spk, s[1].spk, s[0].n * sizeof(float)), 0);
    CU_ASSERT_EQUAL(memcmp(s[0].mic, s[1].mic, s[0].n * sizeof(float)), 0);
    for (int run = 0; run < 2; run++) {
        session_free(&s[run]);
        free(l[run]);
    }
}

/* Drops the wall-clock fields ("compute_wall_ms": 12.34, ...) from a line. */
static void strip_wall(char *line)
{
    static const char *const wall[] = {"compute_wall_ms", "lm_first_token_ms",
                                       "lm_first_words_ms", "tts_first_audio_ms",
                                       "lm_answer_ms"};
    for (size_t k = 0; k < sizeof wall / sizeof wall[0]; k++) {
        char key[64];
        snprintf(key, sizeof key, ", \"%s\": ", wall[k]);
        char *p = strstr(line, key);
        if (!p)
            continue;
        char *e = p + strlen(key);
        while (*e && *e != ',' && *e != '}')
            e++;
        memmove(p, e, strlen(e) + 1);
    }
}

/* The per-turn records of a bench latency JSON file, wall clock dropped. */
static char *turn_records(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    char *all = slurp(f);
    fclose(f);
    if (!all)
        return NULL;
    char *out = calloc(strlen(all) + 1, 1);
    size_t len = 0;
    for (char *save = NULL, *ln = strtok_r(all, "\n", &save); ln && out;
         ln = strtok_r(NULL, "\n", &save))
        if (strstr(ln, "{\"scenario\": ")) {
            strip_wall(ln);
            len += (size_t)sprintf(out + len, "%s\n", ln);
        }
    free(all);
    return out;
}

/*  `spiketalk bench latency` in two processes: the same scenario (a
    question, a joke interrupted, an echo-only stretch in a room) gives the
    same figures, every virtual-time field of every turn. */
static void test_determinism_processes(void)
{
    if (!have_models("agent:determinism_processes"))
        return;
    char ini[512], js[2][512], cmd[4096];
    st_test_tmpfile(ini, sizeof ini, "determinism.ini");
    FILE *f = fopen(ini, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs("[scenario]\nname = determinism\nseed = 5\nnoise = pink\nnoise_db = -55\n"
          "room = yes\ntail_s = 1\n\n"
          "[turn sum]\nkind = arithmetic\ntext = what is two plus three\nat = 0.5\n"
          "engine = espeak\nvoice = en-gb-scotland\n\n"
          "[turn joke]\nkind = request\ntext = tell me a joke\nat = agent_end sum + 0.8\n"
          "engine = flite\nvoice = slt\n\n"
          "[turn cut]\nkind = interruption\ntext = stop\nat = agent_start joke + 0.8\n"
          "engine = flite\nvoice = slt\n",
          f);
    fclose(f);
    char *rec[2] = {NULL, NULL};
    for (int run = 0; run < 2; run++) {
        char name[32];
        snprintf(name, sizeof name, "determinism%d.json", run);
        st_test_tmpfile(js[run], sizeof js[run], name);
        snprintf(cmd, sizeof cmd,
                 "%s bench latency --scenarios %s --json %s --svg %s.plot >/dev/null 2>&1",
                 st_test_cli(), ini, js[run], js[run]);
        CU_ASSERT_EQUAL(system(cmd), 0);
        rec[run] = turn_records(js[run]);
        CU_ASSERT_PTR_NOT_NULL_FATAL(rec[run]);
    }
    CU_ASSERT(strlen(rec[0]) > 100);
    CU_ASSERT_PTR_NOT_NULL(strstr(rec[0], "\"turn\": \"cut\""));
    CU_ASSERT_STRING_EQUAL(rec[0], rec[1]);
    if (strcmp(rec[0], rec[1]))
        fprintf(stderr, "run 1:\n%s\nrun 2:\n%s\n", rec[0], rec[1]);
    free(rec[0]);
    free(rec[1]);
}

typedef struct {
    st_agent_pub *pub;
    st_turn_state to[64];
    uint64_t sample[64];
    uint32_t epoch[64];
    int n;
} pub_log;

static void on_event_pub(const st_agent_event *e, void *user_data)
{
    pub_log *pl = user_data;
    CU_ASSERT_EQUAL(st_agent_pub_event(pl->pub, e), ST_OK);
    if (e->kind == ST_AGENT_EV_STATE && pl->n < 64) {
        pl->to[pl->n] = e->to;
        pl->sample[pl->n] = e->sample;
        pl->epoch[pl->n++] = e->epoch;
    }
}

/*  Every turn change goes out on the PUB socket as a CONTROL TURN message,
    in order, with the state's name, the epoch and the sample. */
static void test_publish(void)
{
    if (!have_models("agent:publish"))
        return;
    char path[512], ep[600];
    st_test_tmpfile(path, sizeof path, "turns.sock");
    snprintf(ep, sizeof ep, "ipc://%s", path);
    int err;
    pub_log pl = {0};
    pl.pub = st_agent_pub_new(ep, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(pl.pub);
    CU_ASSERT_PTR_NULL(st_agent_pub_new("nonsense://x", &err));
    CU_ASSERT_EQUAL(err, ST_ERR_IO);
    void *zctx = zmq_ctx_new();
    void *sub = zmq_socket(zctx, ZMQ_SUB);
    CU_ASSERT_EQUAL_FATAL(zmq_connect(sub, ep), 0);
    zmq_setsockopt(sub, ZMQ_SUBSCRIBE, "", 0);
    /* PUB drops what goes out before the subscription has arrived: probe
       until one comes through, then drain the probes */
    st_agent_event probe = {.kind = ST_AGENT_EV_STATE, .to = ST_TURN_LISTENING, .epoch = 99};
    st_wire_rx *rx = st_wire_rx_new("test subscriber", &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(rx);
    st_wire_msg m;
    bool joined = false;
    for (int i = 0; i < 400 && !joined; i++) {
        st_agent_pub_event(pl.pub, &probe);
        zmq_pollitem_t it = {.socket = sub, .events = ZMQ_POLLIN};
        if (zmq_poll(&it, 1, 25) == 1)
            joined = st_wire_rx_recv(rx, sub, 0, &m) == ST_OK;
    }
    CU_ASSERT_TRUE_FATAL(joined);
    zmq_pollitem_t it = {.socket = sub, .events = ZMQ_POLLIN};
    while (zmq_poll(&it, 1, 100) == 1 && st_wire_rx_recv(rx, sub, 0, &m) == ST_OK)
        CU_ASSERT_EQUAL(m.h.epoch, 99);
    /* a conversation: "hello." and the answer */
    st_agent_params p = st_agent_default_params();
    p.asr_model = "models/asr_stream.stm";
    p.on_event = on_event_pub;
    p.user_data = &pl;
    st_agent *a = st_agent_new(&p, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    size_t n;
    float *x = user_says("hello.", &n);
    session s;
    session_init(&s, 5);
    memcpy(s.user + S(0.5), x, n * sizeof(float));
    free(x);
    session_run(a, &s, 0, s.n / ST_AGENT_BLOCK, NULL);
    st_agent_destroy(&a);
    session_free(&s);
    CU_ASSERT(pl.n >= 4); /* user speaking, thinking, agent speaking, listening */
    /* every change, in order, on the socket */
    int got = 0;
    while (zmq_poll(&it, 1, 500) == 1 && st_wire_rx_recv(rx, sub, 0, &m) == ST_OK) {
        CU_ASSERT_EQUAL(m.h.type, ST_MSG_CONTROL);
        CU_ASSERT_EQUAL(m.control.cmd, ST_CTL_TURN);
        if (got < pl.n) {
            const char *name = st_turn_state_name(pl.to[got]);
            CU_ASSERT_EQUAL(m.control.bytes, strlen(name));
            CU_ASSERT_EQUAL(strncmp(m.control.text, name, m.control.bytes), 0);
            CU_ASSERT_EQUAL(m.control.arg, pl.to[got] == ST_TURN_AGENT ? 1u : 0u);
            CU_ASSERT_EQUAL(m.h.sample_index, pl.sample[got]);
            CU_ASSERT_EQUAL(m.h.epoch, pl.epoch[got]);
        }
        got++;
    }
    CU_ASSERT_EQUAL(got, pl.n);
    st_wire_rx_destroy(&rx);
    st_agent_pub_destroy(&pl.pub);
    CU_ASSERT_PTR_NULL(pl.pub);
    zmq_close(sub);
    zmq_ctx_term(zctx);
}

static void test_agent_own_echo(void)
{
    log_t *l;
    session s;
    st_agent *a = agent_session("agent:own_echo", 75, &l, &s);
    if (!a)
        return;
    /* A minute of the agent talking into the room, nobody else there. */
    st_room *room = default_room();
    size_t blocks = s.n / ST_AGENT_BLOCK, b = 50;
    session_run(a, &s, 0, b, room);
    double spoken_s = talk_into_room(a, &s, b, blocks, room);
    if (getenv("ST_VERBOSE")) {
        fprintf(stderr, "agent spoke %.1f s\n", spoken_s);
        for (int i = 0; i < l->n; i++)
            if (l->ev[i].kind == ST_AGENT_EV_PAUSED || l->ev[i].kind == ST_AGENT_EV_ONSET ||
                l->ev[i].kind == ST_AGENT_EV_INTERRUPTED)
                fprintf(stderr, "  %d at %.2f s\n", l->ev[i].kind, (double)l->ev[i].sample / RATE);
    }
    CU_ASSERT(spoken_s >= 60);
    CU_ASSERT_EQUAL(find(l, ST_AGENT_EV_PAUSED, 0), -1);
    CU_ASSERT_EQUAL(find(l, ST_AGENT_EV_INTERRUPTED, 0), -1);
    CU_ASSERT_EQUAL(find(l, ST_AGENT_EV_REQUEST, 0), -1);
    st_room_destroy(&room);
    session_free(&s);
    st_agent_destroy(&a);
    free(l);
}

/*  The agent's own echo in a room it has not heard before: the same agent
    answered with no room first (the echo path it learnt: none), and after
    a silence it talks into a room (each soak pass may bring a new one).
    Its echo, louder than anything the learnt path can make, would look
    like a user talking over it: the path is learnt again from the first
    half second of the agent's voice after a silence, and the echo never
    pauses or stops it. */
static void test_agent_own_echo_new_room(void)
{
    log_t *l;
    session s;
    st_agent *a = agent_session("agent:own_echo_new_room", 60, &l, &s);
    if (!a)
        return;
    st_room *room = default_room();
    size_t blocks = s.n / ST_AGENT_BLOCK, b = 50, room_at = 0;
    session_run(a, &s, 0, b, NULL);
    CU_ASSERT_EQUAL_FATAL(st_agent_say(a, long_answer), ST_OK);
    /* the answer with no room, then 1.5 s of silence */
    while (b < blocks && (st_agent_state(a) != ST_TURN_LISTENING || !room_at)) {
        if (st_agent_state(a) == ST_TURN_LISTENING && !room_at)
            room_at = b + 150;
        session_run(a, &s, b, b + 1, NULL);
        b++;
    }
    for (; b < room_at; b++)
        session_run(a, &s, b, b + 1, NULL);
    double spoken_s = talk_into_room(a, &s, b, blocks, room);
    st_agent_stats st;
    st_agent_get_stats(a, &st);
    if (getenv("ST_VERBOSE")) {
        fprintf(stderr, "room from %.2f s; the agent spoke %.1f s in it, echo onsets %llu\n",
                (double)room_at / 100, spoken_s, (unsigned long long)st.echo_onsets);
        for (int i = 0; i < l->n; i++)
            if (l->ev[i].kind == ST_AGENT_EV_PAUSED || l->ev[i].kind == ST_AGENT_EV_ONSET ||
                l->ev[i].kind == ST_AGENT_EV_INTERRUPTED)
                fprintf(stderr, "  %d at %.2f s\n", l->ev[i].kind, (double)l->ev[i].sample / RATE);
    }
    CU_ASSERT(room_at > 0 && spoken_s >= 20);
    CU_ASSERT_EQUAL(find(l, ST_AGENT_EV_PAUSED, 0), -1);
    CU_ASSERT_EQUAL(find(l, ST_AGENT_EV_INTERRUPTED, 0), -1);
    CU_ASSERT_EQUAL(find(l, ST_AGENT_EV_REQUEST, 0), -1);
    st_room_destroy(&room);
    session_free(&s);
    st_agent_destroy(&a);
    free(l);
}

/*  A user talks over the agent with no room (the microphone hears the user
    and the noise, no echo): a short burst first (0.1 s of "yes", a
    backchannel cut short: the agent pauses and resumes), then a request
    over the answer. The tracked residual echo (what the canceller leaves of
    the played signal) must not learn the user's voice: it used to rise to
    its cap within three blocks of it, and the VAD's echo input (the played
    signal lowered by that residual) masked the user - the burst unheard and
    the request's onset decided 0.3-0.6 s late, or never (the soak's
    unaccounted `backchannels/ask10`). The request's onset must be decided
    within 200 ms of its start, with the agent speaking until then, and
    pause it. */
static void test_agent_request_over_answer(void)
{
    log_t *l;
    session s;
    st_agent *a = agent_session("agent:request_over_answer", 8, &l, &s);
    if (!a)
        return;
    size_t nb, nr;
    float *bc = user_says("yes.", &nb), *rq = user_says("what time is it?", &nr);
    uint64_t bc_at = S(2.5), rq_at = S(4.0);
    nb = nb < S(0.1) ? nb : S(0.1);
    memcpy(s.user + bc_at, bc, nb * sizeof(float));
    memcpy(s.user + rq_at, rq, (nr < s.n - rq_at ? nr : s.n - rq_at) * sizeof(float));
    free(bc);
    free(rq);
    session_run(a, &s, 0, 50, NULL);
    CU_ASSERT_EQUAL_FATAL(st_agent_say(a, long_answer), ST_OK);
    session_run(a, &s, 50, s.n / ST_AGENT_BLOCK, NULL);
    if (getenv("ST_VERBOSE"))
        for (int i = 0; i < l->n; i++)
            fprintf(stderr, "  event %d at %.3f s (ref %.3f s)\n", l->ev[i].kind,
                    (double)l->ev[i].sample / RATE, (double)l->ev[i].ref / RATE);
    /* the agent speaks over the 0.2 s before the request */
    double played = 0;
    for (uint64_t t = rq_at - S(0.2); t < rq_at; t++)
        played += s.spk[t] * s.spk[t];
    CU_ASSERT(played > 0.1);
    /* the request's onset (ONSET: sample where, ref when decided) */
    int on = -1;
    for (int i = find(l, ST_AGENT_EV_ONSET, 0); i >= 0 && on < 0;
         i = find(l, ST_AGENT_EV_ONSET, i + 1))
        if (l->ev[i].ref >= rq_at && l->ev[i].ref <= rq_at + S(0.2))
            on = i;
    CU_ASSERT_FATAL(on >= 0);
    int p = find(l, ST_AGENT_EV_PAUSED, on);
    CU_ASSERT(p > on && l->ev[p].ref == l->ev[on].sample);
    session_free(&s);
    st_agent_destroy(&a);
    free(l);
}

/* ---- spiketalk live --------------------------------------------------------- */

static char *slurp(FILE *f)
{
    size_t cap = 1 << 16, len = 0, n;
    char *buf = malloc(cap);
    if (!buf)
        return NULL;
    while ((n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (len + 1 == cap) {
            char *b = realloc(buf, cap *= 2);
            if (!b)
                break;
            buf = b;
        }
    }
    buf[len] = '\0';
    return buf;
}

static void test_live_no_device(void)
{
    char cmd[1024];
    /* No JACK server of that name, and no sound card on a CI machine. */
    snprintf(cmd, sizeof cmd,
             "JACK_DEFAULT_SERVER=spiketalk-none-%d JACK_NO_START_SERVER=1 %s live 2>&1",
             (int)getpid(), st_test_cli());
    FILE *f = popen(cmd, "r");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    char *out = slurp(f);
    int status = pclose(f);
    CU_ASSERT_PTR_NOT_NULL_FATAL(out);
    st_device_desc devs[4];
    if (st_device_list(devs, 4) > 0) {
        st_test_skip("agent:live_no_device", "this machine has an audio device");
    } else {
        CU_ASSERT_EQUAL(WEXITSTATUS(status), 1);
        CU_ASSERT_PTR_NOT_NULL(strstr(out, "no audio device"));
        CU_ASSERT_PTR_NOT_NULL(strstr(out, "--input"));
    }
    free(out);
}

static pid_t jack_pid;

static bool jack_start(const char *name)
{
    jack_pid = fork();
    if (jack_pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        dup2(null, 2);
        execlp("jackd", "jackd", "--no-realtime", "-n", name, "-d", "dummy", "-r", "48000", "-p",
               "256", "-C", "2", "-P", "2", (char *)NULL);
        _exit(127);
    }
    setenv("JACK_DEFAULT_SERVER", name, 1);
    setenv("JACK_NO_START_SERVER", "1", 1);
    for (int i = 0; i < 100; i++) {
        st_device_desc devs[16];
        int n = st_device_list(devs, 16);
        for (int k = 0; k < n && k < 16; k++)
            if (strstr(devs[k].host_api, "JACK"))
                return true;
        int status;
        if (waitpid(jack_pid, &status, WNOHANG) == jack_pid) {
            jack_pid = 0;
            return false;
        }
        usleep(50000);
    }
    return false;
}

static void jack_stop(void)
{
    if (jack_pid > 0) {
        kill(jack_pid, SIGTERM);
        waitpid(jack_pid, NULL, 0);
        jack_pid = 0;
    }
    unsetenv("JACK_DEFAULT_SERVER");
    unsetenv("JACK_NO_START_SERVER");
}

/* Whether jack_lsp lists a port of that name. */
static bool jack_has_port(const char *port)
{
    FILE *f = popen("jack_lsp 2>/dev/null", "r");
    if (!f)
        return false;
    char *out = slurp(f);
    pclose(f);
    bool yes = false;
    if (out) {
        for (char *line = strtok(out, "\n"); line && !yes; line = strtok(NULL, "\n"))
            yes = !strcmp(line, port);
        free(out);
    }
    return yes;
}

static void test_live_jack(void)
{
    if (!have_models("agent:live_jack"))
        return;
    char name[64];
    snprintf(name, sizeof name, "spiketalk-agent-%d", (int)getpid());
    if (!jack_start(name)) {
        jack_stop();
        CU_FAIL("jackd (Debian's jackd2, installed by tools/deps) did not start");
        return;
    }
    /* The agent first: it becomes JACK client "PortAudio". */
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s live --device JACK --seconds 7 2>&1", st_test_cli());
    FILE *live = popen(cmd, "r");
    CU_ASSERT_PTR_NOT_NULL_FATAL(live);
    bool up = false;
    for (int i = 0; i < 100 && !up; i++) {
        up = jack_has_port("PortAudio:in_0");
        if (!up)
            usleep(50000);
    }
    CU_ASSERT_TRUE(up);
    /* The user: a second client that plays a request into the agent's input. */
    size_t n16;
    float *x16 = user_says("hello.", &n16);
    size_t n = n16 * 3;
    float *x = calloc(n, sizeof(float));
    CU_ASSERT_PTR_NOT_NULL_FATAL(x);
    for (size_t i = 0; i < n; i++) /* 16 -> 48 kHz, linear: the agent resamples back */
    {
        double p = (double)i / 3;
        size_t k = (size_t)p;
        double f = p - k;
        x[i] = (float)((1 - f) * x16[k] + f * (k + 1 < n16 ? x16[k + 1] : 0));
    }
    free(x16);
    st_device_params dp = st_device_default_params();
    dp.input_device = dp.output_device = "JACK";
    int rc;
    st_device *user = up ? st_device_open(&dp, &rc) : NULL;
    CU_ASSERT_PTR_NOT_NULL(user);
    char *out = NULL;
    if (user) {
        CU_ASSERT_EQUAL(st_device_start(user), ST_OK);
        bool wired = false;
        for (int i = 0; i < 40 && !wired; i++) {
            wired = jack_has_port("PortAudio-01:out_0");
            if (!wired)
                usleep(50000);
        }
        CU_ASSERT_TRUE(wired);
        if (wired) {
            CU_ASSERT_EQUAL(system("jack_disconnect system:capture_1 PortAudio:in_0 >/dev/null 2>&1; "
                                   "jack_connect PortAudio-01:out_0 PortAudio:in_0"),
                            0);
        }
        /* One second of quiet, the request, then quiet again. */
        float buf[2048], quiet[256] = {0};
        size_t at = 0;
        double t0 = st_now_s();
        while (st_now_s() - t0 < 4.0) {
            if (st_device_wait(user, 1.0) != ST_OK)
                break;
            while (st_ring_read(st_device_capture(user), buf, 2048) > 0)
                ;
            st_ring *pb = st_device_playback(user);
            while (st_ring_write_available(pb) > 4096) {
                bool speak = st_now_s() - t0 > 1.0 && at < n;
                size_t k = speak ? (n - at < 256 ? n - at : 256) : 256;
                st_ring_write(pb, speak ? x + at : quiet, k);
                at += speak ? k : 0;
            }
        }
        st_device_stop(user);
        st_device_destroy(&user);
    }
    free(x);
    out = slurp(live);
    int status = pclose(live);
    CU_ASSERT_PTR_NOT_NULL_FATAL(out);
    CU_ASSERT_EQUAL(WEXITSTATUS(status), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "JACK"));
    /* The VAD heard the user through the real path, the recognizer a word,
       and the agent answered. */
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "(user speaking)"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "user : \""));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "agent: \""));
    if (getenv("ST_VERBOSE"))
        fprintf(stderr, "%s", out);
    free(out);
    jack_stop();
}

/* ---- the stages: vad, recognizer, lm in a pipeline ----------------------------- */

static void test_stages_in_a_pipeline(void)
{
    if (!have_models("agent:stages_in_a_pipeline"))
        return;
    const char *dir = st_test_tmpdir();
    char wav[512], rec[512], answer[512], text[4096];
    snprintf(wav, sizeof wav, "%s/user.wav", dir);
    snprintf(rec, sizeof rec, "%s/run.rec", dir);
    snprintf(answer, sizeof answer, "%s/answer.txt", dir);
    size_t n;
    float *x = user_says("hello.", &n);
    size_t total = n + S(2.0);
    float *y = calloc(total, sizeof(float));
    CU_ASSERT_PTR_NOT_NULL_FATAL(y);
    uint32_t noise = 5;
    for (size_t i = 0; i < total; i++) {
        noise = noise * 1664525u + 1013904223u;
        y[i] = ((float)(noise >> 8) / 16777216.0f - 0.5f) * 0.002f;
    }
    for (size_t i = 0; i < n; i++)
        y[S(1.0) + i] += x[i];
    CU_ASSERT_EQUAL_FATAL(st_audio_write_wav(wav, y, total, RATE, ST_WAV_FLOAT), ST_OK);
    free(x);
    free(y);
    const char *lm = getenv("SPIKETALK_DIALOGUE_MODEL");
    struct stat st;
    if (!(lm && *lm) && stat("models/dialogue.stnn", &st) == 0)
        lm = "models/dialogue.stnn";
    snprintf(text, sizeof text,
             "[stage.mic]\ntype = audio_source\ndevice = file\ninput = %s\nshed = no\nout = vad\n"
             "[stage.vad]\ntype = vad\nshed = no\nout = asr\n"
             "[stage.asr]\ntype = recognizer\nout = rec\n" /* its default: asr_stream.stm */
             "[stage.rec]\ntype = recorder\nfile = %s\n",
             wav, rec);
    if (lm && *lm) {
        size_t l = strlen(text);
        snprintf(text + l, sizeof text - l,
                 "[stage.ask]\ntype = text_source\nlines = what seven times six\nout = lm\n"
                 "[stage.lm]\ntype = lm\nmodel = %s\nhour = 10\nminute = 30\nout = say\n"
                 "[stage.say]\ntype = text_sink\nfile = %s\n",
                 lm, answer);
    } else
        st_test_skip("agent:stages_in_a_pipeline (lm)", "no dialogue model (models/dialogue.stnn)");
    int rc;
    st_pipe_config *cfg = st_pipe_config_parse(text, "agent-stages.ini", &rc);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    st_pipe *p = st_pipe_new(cfg, NULL, &rc);
    st_pipe_config_destroy(&cfg);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    rc = st_pipe_run(p, 30, NULL);
    if (rc)
        fprintf(stderr, "agent stages: %s\n", st_errmsg());
    CU_ASSERT_EQUAL(rc, ST_OK);
    st_pipe_destroy(&p);

    /* The recording: the VAD's onset near 1 s and an offset after it, in
       order with the audio, and the recognizer's word. */
    st_rec_reader *r = st_rec_open(rec, &rc);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    st_rec_entry e;
    int onsets = 0, offsets = 0;
    uint64_t onset_at = 0, offset_at = 0;
    bool hello = false;
    while (st_rec_read(r, &e) == ST_OK) {
        if (e.m.h.type == ST_MSG_CONTROL && e.m.control.cmd == ST_CTL_SPEECH) {
            if (e.m.control.arg == 1 && !onsets++)
                onset_at = e.m.h.sample_index;
            else if (e.m.control.arg == 0) {
                offsets++;
                offset_at = e.m.h.sample_index;
            }
        }
        if (e.m.h.type == ST_MSG_WORDS) {
            size_t cur = 0;
            st_wire_word w;
            while (st_wire_words_next(&e.m.words, &cur, &w))
                hello |= w.text_bytes == 5 && !memcmp(w.text, "hello", 5);
        }
    }
    st_rec_close(&r);
    CU_ASSERT(onsets >= 1);
    CU_ASSERT(offsets >= 1);
    CU_ASSERT(onset_at + S(0.1) >= S(1.0) && onset_at <= S(1.0) + S(0.2));
    CU_ASSERT(offset_at > onset_at && offset_at <= S(1.0) + n + S(0.3));
    CU_ASSERT_TRUE(hello);
    if (lm && *lm) {
        FILE *f = fopen(answer, "r");
        CU_ASSERT_PTR_NOT_NULL_FATAL(f);
        char line[512] = "";
        CU_ASSERT_PTR_NOT_NULL(fgets(line, sizeof line, f));
        fclose(f);
        CU_ASSERT(strlen(line) > 3); /* the answer, streamed word by word */
    }
}

CU_TestInfo st_tests_agent[] = {
    {"grammar", test_grammar},
    {"end_of_turn", test_end_of_turn},
    {"pause_inside_request", test_pause_inside_request},
    {"what_time_pause", test_what_time_pause},
    {"noise_dropped", test_noise_dropped},
    {"turn_ends_when_vad_holds_on", test_turn_ends_when_vad_holds_on},
    {"barge_in", test_barge_in},
    {"barge_hint", test_barge_hint},
    {"agent_repeat", test_agent_repeat},
    {"agent_barge_hint", test_agent_barge_hint},
    {"backchannel_resumes", test_backchannel_resumes},
    {"bad_params", test_bad_params},
    {"answers", test_agent_answers},
    {"interrupted", test_agent_interrupted},
    {"own_echo", test_agent_own_echo},
    {"deterministic", test_agent_deterministic},
    {"determinism_processes", test_determinism_processes},
    {"own_echo_new_room", test_agent_own_echo_new_room},
    {"request_over_answer", test_agent_request_over_answer},
    {"publish", test_publish},
    {"stages_in_a_pipeline", test_stages_in_a_pipeline},
    {"live_no_device", test_live_no_device},
    {"live_jack", test_live_jack},
    CU_TEST_INFO_NULL,
};
