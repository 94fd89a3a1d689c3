/*  cli/bench_latency.c - `spiketalk bench latency`: the standard scenario set
    (the .ini files in scenarios/, docs/SCENARIOS.md) through the whole agent
    (pipeline/agent.c) in virtual time, with the metrics of issue 10: per
    turn voice-to-voice, end-of-turn wait, recognizer finalisation, compute;
    for interruptions onset -> silence and stale samples; quality rates
    (false interruptions on echo-only and noise stretches, pauses that ended
    a turn, missed interruptions, wrong answers); n, p50, p90, p95, p99, max.
    --baseline runs the same set again with the end-of-turn policy common in
    voice-agent frameworks and prints both side by side. Writes a JSON file
    with every measurement (--json FILE) and two SVG plots drawn with plain
    fprintf: the CDF of each latency and the timeline of one conversation.

    The driver: each turn is rendered alone (st_scenario_render_turn) and
    placed on the microphone when its anchor resolves from the agent's
    events; the microphone is the placed speech, the scenario's background
    noise and, in rooms, the agent's own played voice through st_room. Block
    k's speaker output is played during block k + 1 (the agent's clock).
    Everything is sample-accurate and deterministic: the same figures on
    every run, except the wall-clock compute and CPU columns. Each scenario
    (and each baseline pass of one) runs in its own child process, so its
    figures are also the same alone as in any set, in any order
    (run_isolated: espeak-ng keeps state across utterances).

    The second clock (--realtime): the same driver, each block handed to
    the agent no earlier than its capture would be complete on a device
    (wall0 + (pos + BLOCK) / RATE; a late agent gets the queued blocks at
    once). Each SPEAKING and PAUSED event is settled when the block that
    made it returns (wall W): lateness = max(0, W - (wall0 + sample / RATE))
    is added to its virtual-time latency. Blocks whose processing ran past
    the 10 ms budget (W after the next block's capture) are counted late.

    May touch: the scenario files and audio they name, the models, the
    output files it is asked to write, stdout.
*/
#include "cli.h"
#include "scenario_synth.h"

#include "audio/audio.h"
#include "pipeline/pipeline.h"
#include "tts/tts.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <time.h>

#define CMD "bench latency"
#define RATE ST_PIPELINE_RATE_HZ
#define BLOCK ST_AGENT_BLOCK
#define MAX_FILES 64
#define NO_ANSWER_S 6.0   /* the user goes on when nothing answered for this long */
#define MAX_EVENTS 4096

/* ---- measurements ---------------------------------------------------------- */

typedef enum {
    M_V2V = 0,      /* end of user speech -> agent's first sample (warm turns) */
    M_V2V_COLD,     /* the same, first answered turn of each scenario */
    M_V2V_INT,      /* the same, requests that interrupted the agent */
    M_EOT,          /* end of user speech -> end-of-turn decision */
    M_ASR,          /* end of user speech -> the recognizer's last word of the turn */
    M_COMPUTE,      /* decision -> first sample, virtual time */
    M_SILENCE,      /* interruption onset -> agent silent */
    M_COMPUTE_WALL, /* decision -> first sample ready, wall clock (the rest are too) */
    M_LM_FIRST,     /* decision -> the LM's first token */
    M_LM_PIECE,     /* decision -> the first words to the synthesizer */
    M_TTS_FIRST,    /* those words -> the synthesizer's first audio */
    M_LM_ANSWER,    /* decision -> the whole answer written */
    M_V2V_RT,       /* --realtime: M_V2V + the lateness of the first sample */
    M_V2V_COLD_RT,  /* ... M_V2V_COLD */
    M_V2V_INT_RT,   /* ... M_V2V_INT */
    M_SILENCE_RT,   /* ... M_SILENCE + the lateness of the pause */
    M_BLOCK,        /* --realtime: st_agent_process() per block, wall clock */
    M_N
} metric;

static const char *const metric_names[M_N] = {
    "voice_to_voice_ms", "voice_to_voice_cold_ms", "voice_to_voice_interrupting_ms",
    "end_of_turn_ms", "asr_final_ms", "compute_virtual_ms", "interrupt_to_silence_ms",
    "compute_wall_ms", "lm_first_token_ms", "lm_first_words_ms", "tts_first_audio_ms",
    "lm_answer_ms", "voice_to_voice_realtime_ms", "voice_to_voice_cold_realtime_ms",
    "voice_to_voice_interrupting_realtime_ms", "interrupt_to_silence_realtime_ms", "block_ms"};
#define M_WALL M_COMPUTE_WALL /* metrics from here on are wall-clock compute */
#define M_RT M_V2V_RT         /* ... and from here on, --realtime only */
static const char *const metric_help[M_N] = {
    "end of user speech -> agent's first sample at the speaker (warm turns)",
    "the same, the first answer of each conversation (cold)",
    "the same, requests that interrupted the agent (counted apart)",
    "end of user speech -> the end-of-turn decision",
    "end of user speech -> the recognizer's last word of the turn (< 0: it came earlier)",
    "decision -> first sample (virtual time: the output block included)",
    "user onset (interruption) -> agent silent",
    "decision -> the first block of the answer ready to play, wall clock",
    "decision -> the LM's first token (the prompt read), wall clock",
    "decision -> the LM's first words handed to the synthesizer, wall clock",
    "those words -> the synthesizer's first audio, wall clock",
    "decision -> the LM's whole answer written, wall clock (the voice has begun)",
    "--realtime: voice_to_voice + how late the first sample was ready on the wall clock",
    "--realtime: the same, cold",
    "--realtime: the same, requests that interrupted the agent",
    "--realtime: interrupt_to_silence + how late the pause was ready on the wall clock",
    "--realtime: the agent's processing of one 10 ms block, wall clock (budget 10)"};

typedef struct {
    double *v[M_N];
    int n[M_N], cap[M_N];
    /* counts */
    int turns, answered_kinds, answered, no_answer, requests_spurious;
    int pause_turns, pause_wrong_end;
    int interruptions, interrupt_missed, interrupt_late;
    int false_int_echo, false_pause_echo, false_int_noise, false_pause_noise;
    int false_int_backchannel, false_pause_backchannel, false_pause_other;
    int expect_turns, expect_ok, request_match, request_checked;
    double echo_only_s, noise_bursts, backchannels;
    uint64_t stale_samples;
    double audio_s, wall_s, cpu_s;
    int answers_done, answers_interrupted; /* answers played to the end / cut */
    unsigned long long preempted, preempt_used; /* prompts the LM read ahead / used */
    unsigned long long refused_calls;           /* tool calls with a number nobody said */
    double cpu_part[8];                    /* the agent's parts, s (see cpu_names) */
    /* --realtime */
    unsigned long long blocks, late_blocks; /* blocks processed / past the budget */
    double late_total_ms, late_max_ms;      /* beyond the budget, over the late blocks */
    int rt_events, rt_events_late;          /* SPEAKING/PAUSED settled / ready late */
} tally;

static const char *const cpu_names[8] = {"echo_canceller", "front_end", "vad", "recognizer",
                                         "lm", "synthesizer_worker", "other", "agent_total"};

static void add(tally *t, metric m, double x)
{
    if (t->n[m] == t->cap[m]) {
        int cap = t->cap[m] ? 2 * t->cap[m] : 64;
        double *nv = realloc(t->v[m], (size_t)cap * sizeof *nv);
        if (!nv)
            return;
        t->v[m] = nv;
        t->cap[m] = cap;
    }
    t->v[m][t->n[m]++] = x;
}

/* Percentile by linear interpolation on a sorted copy. */
/* The synthesizer behind the scenario renderer: its voices live for the run. */
static cli_synth_cache *synth_cache;


/* ---- one conversation -------------------------------------------------------- */

typedef struct {
    st_agent_event_kind kind;
    uint64_t sample, ref;
    char text[96];
} ev;

/* A SPEAKING or PAUSED event of the block in process (--realtime). */
typedef struct {
    int turn;
    bool pause;
    uint64_t sample;
} pending_ev;
#define MAX_PENDING 32

typedef struct {
    const st_scenario *sc;
    st_scenario_clip *clips;
    st_scenario_truth *truth;    /* relative to the clip until placed */
    int64_t *placed;             /* clip offset on the mic, -1 not yet */
    int64_t *ue, *as, *ae;       /* user end, agent start, agent end per turn */
    int64_t *req;                /* decision sample of the turn's request, -1 none */
    int64_t *last_word;          /* the latest word decided within the turn */
    double (*wall)[5];           /* the turn's wall-clock compute (M_WALL ..), NAN none */
    char (*answer)[256];
    char (*request)[256];
    bool *interrupted_ok, *paused_for; /* the turn interrupted / paused the agent */
    size_t next;                 /* next turn to place */
    int answering;               /* the turn the agent's current answer belongs to */
    int requested;               /* the turn of the latest request */
    uint64_t pos;
    bool first_answer_done;
    int cold_turn;
    tally *t;
    ev *events;                  /* the timeline scenario only */
    size_t n_events;
    bool record;
    bool realtime;
    double *silence;                 /* per turn, onset -> PAUSED, ms; NAN none */
    double *late_speak, *late_pause; /* per turn, ms on the wall clock; NAN none */
    pending_ev pend[MAX_PENDING];    /* the block's events, settled when it returns */
    int n_pend;
} conv;

static void conv_free(conv *c, size_t nt)
{
    if (c->clips)
        for (size_t i = 0; i < nt; i++)
            st_scenario_clip_free(&c->clips[i]);
    free(c->clips);
    free(c->truth);
    free(c->placed);
    free(c->ue);
    free(c->as);
    free(c->ae);
    free(c->req);
    free(c->last_word);
    free(c->wall);
    free(c->answer);
    free(c->request);
    free(c->interrupted_ok);
    free(c->paused_for);
    free(c->silence);
    free(c->late_speak);
    free(c->late_pause);
    free(c->events);
    memset(c, 0, sizeof *c);
}

static bool answered_kind(const st_scenario_turn *t)
{
    return t->kind != ST_TURN_BACKCHANNEL && t->kind != ST_TURN_NOISE;
}

/* The placed turn sounding at sample s (within 0.3 s after its end), or -1. */
static int turn_at_sample(const conv *c, uint64_t s)
{
    for (size_t i = c->next; i-- > 0;) {
        if (c->placed[i] < 0)
            continue;
        uint64_t a = c->truth[i].start, e = c->truth[i].end + (uint64_t)(0.3 * RATE);
        if (s + (uint64_t)(0.1 * RATE) >= a && s <= e)
            return (int)i;
    }
    return -1;
}

/* Is an echo-only answer playing at sample s? */
static bool in_echo_only(const conv *c, uint64_t s)
{
    for (size_t i = 0; i < c->next; i++)
        if (c->sc->turns[i].kind == ST_TURN_ECHO_ONLY && c->as[i] >= 0 &&
            (int64_t)s >= c->as[i] && (c->ae[i] < 0 || (int64_t)s <= c->ae[i]))
            return true;
    return false;
}

static void on_event(const st_agent_event *e, void *user_data)
{
    conv *c = user_data;
    tally *t = c->t;

    if (c->record && c->n_events < MAX_EVENTS && e->kind != ST_AGENT_EV_STATE) {
        ev *r = &c->events[c->n_events++];
        r->kind = e->kind;
        r->sample = e->sample;
        r->ref = e->ref;
        snprintf(r->text, sizeof r->text, "%s", e->text ? e->text : "");
    }
    switch (e->kind) {
    case ST_AGENT_EV_WORD: {
        int i = turn_at_sample(c, e->sample > (uint64_t)(0.6 * RATE) ? e->sample - (uint64_t)(0.6 * RATE) : 0);
        if (i < 0)
            i = turn_at_sample(c, e->sample);
        if (i >= 0)
            c->last_word[i] = (int64_t)e->sample;
        break;
    }
    case ST_AGENT_EV_REQUEST: {
        /* the latest placed turn that started before the decision */
        int i = -1;
        for (size_t k = c->next; k-- > 0;)
            if (c->placed[k] >= 0 && c->truth[k].start <= e->sample) {
                i = (int)k;
                break;
            }
        if (i >= 0 && i == c->requested && c->req[i] >= 0 && c->as[i] < 0) {
            /* the same turn decided again before its answer started (a
               late word: the agent dropped the first answer for one with
               the whole turn): the decision is this one */
            c->req[i] = (int64_t)e->sample;
            snprintf(c->request[i], sizeof c->request[i], "%s", e->text ? e->text : "");
            break;
        }
        if (i < 0 || c->req[i] >= 0 || !answered_kind(&c->sc->turns[i])) {
            t->requests_spurious++;
            c->requested = -1;
            break;
        }
        c->req[i] = (int64_t)e->sample;
        c->requested = i;
        snprintf(c->request[i], sizeof c->request[i], "%s", e->text ? e->text : "");
        break;
    }
    case ST_AGENT_EV_ANSWER:
        if (c->requested >= 0) {
            snprintf(c->answer[c->requested], sizeof c->answer[0], "%s", e->text ? e->text : "");
            c->wall[c->requested][M_LM_ANSWER - M_WALL] = e->compute_ms;
            add(t, M_LM_ANSWER, e->compute_ms);
        }
        break;
    case ST_AGENT_EV_SPEAKING:
        if (c->requested >= 0 && c->as[c->requested] < 0) {
            if (!c->first_answer_done)
                c->cold_turn = c->requested;
            const double w[4] = {e->compute_ms, e->lm_first_ms, e->lm_piece_ms, e->tts_first_ms};
            for (int k = 0; k < 4; k++) {
                c->wall[c->requested][k] = w[k];
                add(t, (metric)(M_WALL + k), w[k]);
            }
            c->as[c->requested] = (int64_t)e->sample;
            if (c->realtime && c->n_pend < MAX_PENDING)
                c->pend[c->n_pend++] = (pending_ev){c->requested, false, e->sample};
            c->answering = c->requested;
            c->first_answer_done = true;
        } else {
            c->answering = -1;
        }
        break;
    case ST_AGENT_EV_PAUSED: {
        int i = turn_at_sample(c, e->ref);
        if (i >= 0 && c->sc->turns[i].interrupts) {
            if (!c->paused_for[i]) {
                c->paused_for[i] = true;
                c->silence[i] = ((double)e->sample - (double)c->truth[i].start) * 1000.0 / RATE;
                add(t, M_SILENCE, c->silence[i]);
                if (c->realtime && c->n_pend < MAX_PENDING)
                    c->pend[c->n_pend++] = (pending_ev){i, true, e->sample};
            }
        } else if (i >= 0 && c->sc->turns[i].kind == ST_TURN_NOISE) {
            c->paused_for[i] = true;
            t->false_pause_noise++;
        } else if (i >= 0 && c->sc->turns[i].kind == ST_TURN_BACKCHANNEL) {
            c->paused_for[i] = true;
            t->false_pause_backchannel++;
        } else if (i < 0 && in_echo_only(c, e->sample)) {
            t->false_pause_echo++;
        } else if (i < 0) {
            t->false_pause_other++;
        }
        break;
    }
    case ST_AGENT_EV_INTERRUPTED: {
        int i = turn_at_sample(c, e->sample > (uint64_t)(0.3 * RATE) ? e->sample - (uint64_t)(0.3 * RATE) : 0);
        if (i < 0)
            i = turn_at_sample(c, e->sample);
        if (i >= 0 && c->sc->turns[i].interrupts)
            c->interrupted_ok[i] = true;
        else if (i >= 0 && c->sc->turns[i].kind == ST_TURN_NOISE) {
            c->interrupted_ok[i] = true;
            t->false_int_noise++;
        } else if (i >= 0 && c->sc->turns[i].kind == ST_TURN_BACKCHANNEL) {
            c->interrupted_ok[i] = true;
            t->false_int_backchannel++;
        }
        else if (i < 0 && in_echo_only(c, e->sample))
            /* (as for a pause: a user turn still under way - an answer
               started before its request ended - is a user, not echo) */
            t->false_int_echo++;
        if (c->answering >= 0 && c->ae[c->answering] < 0)
            c->ae[c->answering] = (int64_t)e->sample;
        c->answering = -1;
        break;
    }
    case ST_AGENT_EV_DONE:
        if (c->answering >= 0 && c->ae[c->answering] < 0)
            c->ae[c->answering] = (int64_t)e->sample;
        c->answering = -1;
        break;
    default: break;
    }
}

/* Lower-case words of s that are in the recognizer's vocabulary. */
static void vocab_words(const char *s, char *out, size_t cap)
{
    static const char *const vocab[] = {
        "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "yes",
        "no", "up", "down", "left", "right", "on", "off", "stop", "go", "hello", "hi", "plus",
        "minus", "times", "what", "time", "timer", "seconds", "minutes", "count", "help",
        "repeat", "thanks", "goodbye", "joke", "story", NULL};
    char buf[ST_SCENARIO_TEXT];
    snprintf(buf, sizeof buf, "%s", s);
    out[0] = '\0';
    char *save = NULL;
    for (char *w = strtok_r(buf, " |,.?!", &save); w; w = strtok_r(NULL, " |,.?!", &save)) {
        for (char *p = w; *p; p++)
            if (*p >= 'A' && *p <= 'Z')
                *p = (char)(*p - 'A' + 'a');
        for (int k = 0; vocab[k]; k++)
            if (!strcmp(vocab[k], w)) {
                size_t l = strlen(out);
                snprintf(out + l, cap - l, "%s%s", l ? " " : "", w);
                break;
            }
    }
}

static bool answer_matches(const char *answer, const char *expect)
{
    char buf[128];
    snprintf(buf, sizeof buf, "%s", expect);
    char *save = NULL;
    for (char *alt = strtok_r(buf, "|", &save); alt; alt = strtok_r(NULL, "|", &save))
        if (strcasestr(answer, alt))
            return true;
    return false;
}

/*  No answer in the making or playing. "User speaking" 2 s after the last
    user speech is the VAD's false onsets on noise (each dropped for want
    of a word 0.7 s later): with a noise that fires one a second, waiting
    for "listening" through the whole tail would never end. */
static bool agent_quiet(const st_agent *a, uint64_t pos, uint64_t last_user_end)
{
    st_turn_state s = st_agent_state(a);
    return s == ST_TURN_LISTENING || (s == ST_TURN_USER && pos > last_user_end + 2 * RATE);
}

typedef struct {
    const char *asr, *lm, *vad;
    bool baseline;
    const char *data_dir;
    bool realtime;     /* pace the blocks to the wall clock */
    /* spiketalk's end-of-turn waits (default: the turn controller's) */
    double end_wait_s, prefix_wait_s, prefix_stale_s;
    double barge_min_s; /* user speech over the agent that commits a barge-in */
    bool barge_on_word; /* ... or a recognized word */
    bool barge_hint;    /* the agent's fricative-sensitive pause (st_agent_params) */
    int index, count;  /* the scenario's place in the run (the progress line) */
} run_opts;

/*  Runs one scenario through a fresh agent; adds to the tally; with
    record, keeps the events and the tracks for the timeline. */
static int run_scenario(const st_scenario *sc, const run_opts *o, tally *t, FILE *jf,
                        bool *first_json, conv *keep, float **mic_out, float **spk_out,
                        size_t *n_out)
{
    size_t nt = sc->n_turns;
    conv c = {.sc = sc, .t = t, .answering = -1, .requested = -1, .cold_turn = -1};
    c.clips = calloc(nt, sizeof *c.clips);
    c.truth = calloc(nt, sizeof *c.truth);
    c.placed = malloc(nt * sizeof *c.placed);
    c.ue = malloc(nt * sizeof *c.ue);
    c.as = malloc(nt * sizeof *c.as);
    c.ae = malloc(nt * sizeof *c.ae);
    c.req = malloc(nt * sizeof *c.req);
    c.last_word = malloc(nt * sizeof *c.last_word);
    c.wall = malloc(nt * sizeof *c.wall);
    c.answer = calloc(nt, sizeof *c.answer);
    c.request = calloc(nt, sizeof *c.request);
    c.interrupted_ok = calloc(nt, sizeof *c.interrupted_ok);
    c.paused_for = calloc(nt, sizeof *c.paused_for);
    c.silence = malloc(nt * sizeof *c.silence);
    c.late_speak = malloc(nt * sizeof *c.late_speak);
    c.late_pause = malloc(nt * sizeof *c.late_pause);
    c.realtime = o->realtime;
    c.record = keep != NULL;
    if (c.record)
        c.events = calloc(MAX_EVENTS, sizeof *c.events);
    int rc = ST_OK;
    st_agent *agent = NULL;
    st_room *room = NULL;
    st_scenario_noise *noise = NULL;
    float *mic = NULL, *spk = NULL;
    size_t cap = 0;
    if (!synth_cache)
        synth_cache = cli_synth_cache_new(12, RATE);
    if (!synth_cache || !c.clips || !c.truth || !c.placed || !c.ue || !c.as || !c.ae || !c.req ||
        !c.last_word || !c.wall || !c.answer || !c.request || !c.interrupted_ok || !c.paused_for ||
        !c.silence || !c.late_speak || !c.late_pause || (c.record && !c.events)) {
        rc = cli_fail(CMD, "out of memory");
        goto done;
    }
    st_scenario_render_params rp = st_scenario_render_default_params();
    rp.data_dir = o->data_dir;
    rp.synth = cli_scenario_synth;
    rp.synth_data = synth_cache;
    for (size_t i = 0; i < nt; i++) {
        c.placed[i] = c.ue[i] = c.as[i] = c.ae[i] = c.req[i] = c.last_word[i] = -1;
        c.silence[i] = c.late_speak[i] = c.late_pause[i] = NAN;
        for (int k = 0; k < 5; k++)
            c.wall[i][k] = NAN;
        if ((rc = st_scenario_render_turn(sc, i, &rp, &c.clips[i], &c.truth[i]))) {
            rc = cli_fail_lib(CMD, rc, "rendering a turn");
            goto done;
        }
    }
    bool fell = false;
    noise = st_scenario_noise_new(sc, o->data_dir, &fell, &rc);
    if (!noise && rc) {
        rc = cli_fail_lib(CMD, rc, "the scenario's noise");
        goto done;
    }
    if (sc->room && !(room = st_room_new(&sc->room_params, &rc))) {
        rc = cli_fail_lib(CMD, rc, "the scenario's room");
        goto done;
    }
    st_agent_params ap = st_agent_default_params();
    ap.asr_model = o->asr;
    ap.vad_model = o->vad;
    ap.lm_model = o->lm;
    ap.clock_hour = 10;
    ap.clock_minute = 30;
    ap.on_event = on_event;
    ap.user_data = &c;
    ap.turn.incomplete_wait_s = o->end_wait_s;
    ap.turn.prefix_wait_s = o->prefix_wait_s;
    ap.turn.prefix_stale_s = o->prefix_stale_s;
    ap.turn.barge_min_s = o->barge_min_s;
    ap.turn.barge_on_word = o->barge_on_word;
    ap.barge_hint = o->barge_hint;
    if (o->baseline) {
        ap.barge_hint = false;
        /* the common policy: speech after 0.2 s of voice, end after 0.8 s of silence */
        ap.turn.complete_wait_s = 0.8;
        ap.turn.incomplete_wait_s = 0.8;
        ap.turn.prefix_wait_s = 0.8;
        ap.turn.barge_min_s = 0.2;
        ap.turn.barge_on_word = false;
    }
    if (!(agent = st_agent_new(&ap, &rc))) {
        rc = cli_fail_lib(CMD, rc, "starting the agent");
        goto done;
    }
    float block[BLOCK], out[BLOCK], prev_out[BLOCK];
    memset(prev_out, 0, sizeof prev_out);
    uint64_t last_user_end = 0, end_at = 0;
    double wall0 = st_now_s();
    struct timespec cpu0, cpu1;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu0);
    double wall_agent = 0, progress_at = wall0;
    for (uint64_t pos = 0;; pos += BLOCK) {
        c.pos = pos;
        /* place what is due */
        while (c.next < nt) {
            size_t i = c.next;
            int64_t at = st_scenario_turn_at(sc, i, c.ue, c.as, c.ae);
            if (at < 0) {
                /* nothing answered for long: the user goes on */
                const st_scenario_anchor *a = &sc->turns[i].at;
                if (agent_quiet(agent, pos, last_user_end) &&
                    pos > last_user_end + (uint64_t)(NO_ANSWER_S * RATE)) {
                    if (c.as[a->ref] < 0)
                        c.as[a->ref] = (int64_t)pos;
                    if (c.ae[a->ref] < 0)
                        c.ae[a->ref] = (int64_t)pos;
                    continue;
                }
                break;
            }
            if (at > (int64_t)(pos + BLOCK))
                break;
            int64_t off = at - (int64_t)c.truth[i].start;
            if (off < (int64_t)pos) /* due in the past (resolved late): now */
                off = (int64_t)pos;
            c.placed[i] = off;
            st_scenario_truth *tr = &c.truth[i];
            tr->start += (uint64_t)off;
            tr->end += (uint64_t)off;
            for (int k = 0; k < tr->n_parts; k++) {
                tr->part_start[k] += (uint64_t)off;
                tr->part_end[k] += (uint64_t)off;
            }
            c.ue[i] = (int64_t)tr->end;
            if (!answered_kind(&sc->turns[i]))
                c.as[i] = c.ae[i] = c.ue[i];
            if (tr->end > last_user_end)
                last_user_end = tr->end;
            c.next++;
        }
        /* the microphone: placed speech + noise + the room's echo of what
           the speaker plays during this block */
        memset(block, 0, sizeof block);
        for (size_t i = 0; i < c.next; i++) {
            int64_t off = c.placed[i];
            int64_t from = (int64_t)pos - off;
            if (from + BLOCK <= 0 || from >= (int64_t)c.clips[i].frames)
                continue;
            for (int k = 0; k < BLOCK; k++) {
                int64_t j = from + k;
                if (j >= 0 && j < (int64_t)c.clips[i].frames)
                    block[k] += c.clips[i].samples[j];
            }
        }
        st_scenario_noise_add(noise, pos, block, BLOCK);
        if (room)
            st_room_process(room, prev_out, block, BLOCK);
        if (o->realtime) {
            /* the device delivers the block when its last sample is captured;
               a late agent finds it (and the next ones) already queued */
            st_sleep_until_s(wall0 + (double)(pos + BLOCK) / RATE); /* at once when late */
            c.n_pend = 0;
        }
        double w0 = st_now_s();
        uint32_t ep;
        if ((rc = st_agent_process(agent, block, out, &ep))) {
            rc = cli_fail_lib(CMD, rc, "the agent");
            goto done;
        }
        double w1 = st_now_s();
        wall_agent += w1 - w0;
        if (o->realtime) {
            /* its output plays from sample pos + BLOCK on; the next block's
               capture completes 10 ms later: the budget */
            add(t, M_BLOCK, (w1 - w0) * 1000.0);
            t->blocks++;
            double over = (w1 - (wall0 + (double)(pos + 2 * BLOCK) / RATE)) * 1000.0;
            if (over > 0) {
                t->late_blocks++;
                t->late_total_ms += over;
                if (over > t->late_max_ms)
                    t->late_max_ms = over;
            }
            for (int k = 0; k < c.n_pend; k++) {
                const pending_ev *p = &c.pend[k];
                double late = (w1 - (wall0 + (double)p->sample / RATE)) * 1000.0;
                late = late > 0 ? late : 0;
                t->rt_events++;
                t->rt_events_late += late > 0;
                if (p->pause)
                    c.late_pause[p->turn] = late;
                else
                    c.late_speak[p->turn] = late;
            }
            c.n_pend = 0;
            if (w1 >= progress_at + 1.0) {
                progress_at = w1;
                fprintf(stderr, "\r  %s%d/%d %s: %.0f s of the conversation, %zu of %zu turns "
                                "placed   ",
                        o->baseline ? "baseline " : "", o->index + 1, o->count, sc->name,
                        (double)(pos + BLOCK) / RATE, c.next, nt);
            }
        }
        if (mic_out) {
            if (pos + 2 * BLOCK > cap) {
                size_t ncap = cap ? 2 * cap : (size_t)(60 * RATE);
                float *nm = realloc(mic, ncap * sizeof *nm), *ns = nm ? realloc(spk, ncap * sizeof *ns) : NULL;
                if (nm)
                    mic = nm;
                if (!nm || !ns) {
                    rc = cli_fail(CMD, "out of memory");
                    goto done;
                }
                spk = ns;
                cap = ncap;
            }
            memcpy(mic + pos, block, sizeof block);
            memcpy(spk + pos, prev_out, sizeof prev_out);
        }
        memcpy(prev_out, out, sizeof out);
        /* the end: every turn placed, the agent quiet, the tail over */
        if (c.next == nt && pos > last_user_end && agent_quiet(agent, pos, last_user_end)) {
            if (!end_at)
                end_at = pos + (uint64_t)(sc->tail_s * RATE);
            if (pos >= end_at) {
                c.pos = pos + BLOCK;
                break;
            }
        } else {
            end_at = 0;
        }
        if (pos > (uint64_t)(3600.0 * RATE)) {
            rc = cli_fail(CMD, "%s: the conversation did not end within an hour", sc->path);
            goto done;
        }
    }
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu1);
    if (o->realtime)
        fprintf(stderr, "\r  %s%d/%d %s: %.0f s of the conversation in %.1f s wall%20s\n",
                o->baseline ? "baseline " : "", o->index + 1, o->count, sc->name,
                (double)c.pos / RATE, st_now_s() - wall0, "");
    t->wall_s += st_now_s() - wall0;
    t->cpu_s += (double)(cpu1.tv_sec - cpu0.tv_sec) + 1e-9 * (double)(cpu1.tv_nsec - cpu0.tv_nsec);
    t->audio_s += (double)c.pos / RATE;
    (void)wall_agent;
    st_agent_stats st;
    st_agent_get_stats(agent, &st);
    t->stale_samples += st.stale_samples;
    t->answers_interrupted += (int)st.interruptions;
    t->answers_done += (int)(st.answers - st.interruptions);
    t->preempted += st.preempted;
    t->preempt_used += st.preempt_used;
    t->refused_calls += st.refused_calls;
    const double parts[8] = {st.cpu_echo_s, st.cpu_frontend_s, st.cpu_vad_s, st.cpu_asr_s,
                             st.cpu_lm_s, st.tts_worker_s,
                             st.cpu_total_s - st.cpu_echo_s - st.cpu_frontend_s - st.cpu_vad_s -
                                 st.cpu_asr_s - st.cpu_lm_s,
                             st.cpu_total_s};
    for (int k = 0; k < 8; k++)
        t->cpu_part[k] += parts[k];

    /* per turn */
    for (size_t i = 0; i < nt; i++) {
        const st_scenario_turn *tu = &sc->turns[i];
        const st_scenario_truth *tr = &c.truth[i];
        t->turns++;
        double v2v = NAN, eot = NAN, asr = NAN, comp = NAN, sil = NAN, v2v_rt = NAN,
               sil_rt = NAN;
        bool cold = (int)i == c.cold_turn;
        if (tu->kind == ST_TURN_ECHO_ONLY && c.as[i] >= 0 && c.ae[i] > c.as[i])
            t->echo_only_s += (double)(c.ae[i] - c.as[i]) / RATE;
        if (tu->kind == ST_TURN_NOISE)
            t->noise_bursts++;
        if (tu->kind == ST_TURN_BACKCHANNEL)
            t->backchannels++;
        if (answered_kind(tu)) {
            t->answered_kinds++;
            if (c.req[i] >= 0 && c.as[i] >= 0 && *c.answer[i]) {
                t->answered++;
                v2v = (double)(c.as[i] - (int64_t)tr->end) * 1000.0 / RATE;
                eot = (double)(c.req[i] - (int64_t)tr->end) * 1000.0 / RATE;
                comp = (double)(c.as[i] - c.req[i]) * 1000.0 / RATE;
                metric mv = M_V2V;
                if (cold)
                    mv = M_V2V_COLD;
                else if (tu->kind == ST_TURN_INTERRUPTION)
                    mv = M_V2V_INT;
                add(t, mv, v2v);
                if (c.realtime && !isnan(c.late_speak[i])) {
                    v2v_rt = v2v + c.late_speak[i];
                    add(t, (metric)(M_V2V_RT + (mv - M_V2V)), v2v_rt);
                }
                add(t, M_EOT, eot);
                add(t, M_COMPUTE, comp);
                if (c.last_word[i] >= 0) {
                    asr = (double)(c.last_word[i] - (int64_t)tr->end) * 1000.0 / RATE;
                    add(t, M_ASR, asr);
                }
            } else {
                t->no_answer++;
            }
            if (*tu->expect) {
                t->expect_turns++;
                if (answer_matches(c.answer[i], tu->expect))
                    t->expect_ok++;
            }
            char want[ST_SCENARIO_TEXT], got[ST_SCENARIO_TEXT];
            vocab_words(*tu->text ? tu->text : tu->fallback_text, want, sizeof want);
            if (*want && tu->kind != ST_TURN_INTERRUPTION) {
                t->request_checked++;
                vocab_words(c.request[i], got, sizeof got);
                t->request_match += !strcmp(want, got);
            }
        }
        if (tr->n_parts > 1) {
            t->pause_turns++;
            /* a decision before the turn's last part began ended it too soon:
               in a pause, or between two words of a part before one */
            if (c.req[i] >= (int64_t)tr->start &&
                c.req[i] < (int64_t)tr->part_start[tr->n_parts - 1])
                t->pause_wrong_end++;
        }
        if (tu->interrupts) {
            /* an interruption only counts when the agent was speaking at its onset */
            int r = tu->at.ref;
            bool speaking = r >= 0 && c.as[r] >= 0 && c.as[r] <= (int64_t)tr->start &&
                            (c.ae[r] < 0 || c.ae[r] >= (int64_t)tr->start);
            if (speaking) {
                t->interruptions++;
                if (!c.interrupted_ok[i])
                    t->interrupt_missed++;
            } else {
                t->interrupt_late++;
            }
            if (c.paused_for[i])
                sil = c.silence[i]; /* this turn's (not the tally's latest) */
            if (!isnan(sil) && c.realtime && !isnan(c.late_pause[i])) {
                sil_rt = sil + c.late_pause[i];
                add(t, M_SILENCE_RT, sil_rt);
            }
        }
        if (jf) {
            fprintf(jf,
                    "%s\n    {\"scenario\": \"%s\", \"turn\": \"%s\", \"kind\": \"%s\", \"baseline\": %s, "
                    "\"speech_start_s\": %.4f, \"speech_end_s\": %.4f, \"agent_start_s\": %.4f, "
                    "\"agent_end_s\": %.4f, \"cold\": %s",
                    *first_json ? "" : ",", sc->name, tu->name, st_turn_kind_name(tu->kind),
                    o->baseline ? "true" : "false", (double)tr->start / RATE,
                    (double)tr->end / RATE, c.as[i] >= 0 ? (double)c.as[i] / RATE : -1.0,
                    c.ae[i] >= 0 ? (double)c.ae[i] / RATE : -1.0, cold ? "true" : "false");
            *first_json = false;
            const double vals[] = {v2v, eot, asr, comp, sil};
            const char *names[] = {"voice_to_voice_ms", "end_of_turn_ms", "asr_final_ms",
                                   "compute_virtual_ms", "interrupt_to_silence_ms"};
            for (int k = 0; k < 5; k++)
                if (!isnan(vals[k]))
                    fprintf(jf, ", \"%s\": %.1f", names[k], vals[k]);
            for (int k = 0; k < 5; k++)
                if (!isnan(c.wall[i][k]))
                    fprintf(jf, ", \"%s\": %.2f", metric_names[M_WALL + k], c.wall[i][k]);
            if (!isnan(v2v_rt))
                fprintf(jf, ", \"voice_to_voice_realtime_ms\": %.1f, \"speaking_late_ms\": %.2f",
                        v2v_rt, c.late_speak[i]);
            if (!isnan(sil_rt))
                fprintf(jf,
                        ", \"interrupt_to_silence_realtime_ms\": %.1f, \"paused_late_ms\": %.2f",
                        sil_rt, c.late_pause[i]);
            fprintf(jf, ", \"paused_agent\": %s, \"interrupted_agent\": %s",
                    c.paused_for[i] ? "true" : "false", c.interrupted_ok[i] ? "true" : "false");
            fprintf(jf, ", \"request\": \"");
            for (const char *p = c.request[i]; *p; p++)
                if (*p != '"' && *p != '\\' && (unsigned char)*p >= 32)
                    fputc(*p, jf);
            fprintf(jf, "\", \"answer\": \"");
            for (const char *p = c.answer[i]; *p; p++)
                if (*p != '"' && *p != '\\' && (unsigned char)*p >= 32)
                    fputc(*p, jf);
            fprintf(jf, "\"}");
        }
    }
    if (keep) {
        *keep = c;
        memset(&c, 0, sizeof c); /* ownership moves to the caller */
        *mic_out = mic;
        *spk_out = spk;
        *n_out = (size_t)keep->pos;
        mic = spk = NULL;
    }
done:
    free(mic);
    free(spk);
    st_agent_destroy(&agent);
    st_room_destroy(&room);
    st_scenario_noise_destroy(&noise);
    conv_free(&c, nt);
    return rc;
}

/* ---- plots ------------------------------------------------------------------- */

static const char *const colours[M_N] = {"#1f77b4", "#9467bd", "#17becf", "#d62728", "#8c564b",
                                         "#2ca02c", "#ff7f0e", "#7f7f7f", "#7f7f7f",
                                         "#7f7f7f", "#7f7f7f", "#7f7f7f"};

/*  The CDF of every latency (spiketalk solid, baseline dashed), with the
    targets of issue 10 as dotted verticals. */
static int write_cdf_svg(const char *path, const tally *a, const tally *b)
{
    report_cdf_series series[2 * M_N];
    char names[2 * M_N][64];
    int n = 0;
    for (int m = 0; m < M_WALL; m++)
        for (int k = 0; k < 2; k++) {
            const tally *t = k ? b : a;
            if (!t || !t->n[m])
                continue;
            snprintf(names[n], sizeof names[n], "%s%s", metric_names[m], k ? " base" : "");
            series[n] = (report_cdf_series){names[n], t->v[m], t->n[m], colours[m], k == 1, 0};
            n++;
        }
    static const report_cdf_mark targets[] = {
        {150, "silence 150"}, {250, "v2v p50 250"}, {400, "v2v p95 400"}};
    char title[160];
    snprintf(title, sizeof title, "spiketalk bench latency: cumulative distribution per metric "
             "(solid: spiketalk%s)", b ? ", dashed: baseline 0.2 s / 0.8 s" : "");
    return report_cdf_svg(path, title, "milliseconds", series, n, targets, 3, 0, 5000);
}

static void svg_text(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '<')
            fputs("&lt;", f);
        else if (*s == '>')
            fputs("&gt;", f);
        else if (*s == '&')
            fputs("&amp;", f);
        else if ((unsigned char)*s >= 32)
            fputc(*s, f);
    }
}

/*  One conversation: the levels of microphone and speaker, the user's
    speech (true word times), what the VAD heard, the recognizer's words,
    end-of-turn decisions, the agent's answers, pauses and interruptions. */
static int write_timeline_svg(const char *path, const conv *c, const float *mic, const float *spk,
                              size_t n)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return st_error(ST_ERR_IO, "cannot create '%s'", path);
    double dur = (double)n / RATE, pps = 40;
    const int L = 110, rows = 7, rh = 34, T = 40;
    int W = L + (int)ceil(dur * pps) + 40, H = T + rows * rh + 40;
    const char *labels[] = {"microphone", "user speech", "VAD", "words heard", "end of turn",
                            "agent speaks", "speaker"};
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
               "font-family=\"sans-serif\" font-size=\"11\">\n", W, H);
    fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
    fprintf(f, "<text x=\"10\" y=\"22\" font-size=\"14\">scenario %s: %.1f s, virtual time "
               "(40 px a second)</text>\n", c->sc->name, dur);
    for (int r = 0; r < rows; r++) {
        fprintf(f, "<text x=\"6\" y=\"%d\">%s</text>\n", T + r * rh + rh / 2 + 4, labels[r]);
        fprintf(f, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#eee\"/>\n", L,
                T + (r + 1) * rh, W - 20, T + (r + 1) * rh);
    }
    for (int s = 0; s <= (int)dur; s++) {
        double x = L + s * pps;
        fprintf(f, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#f0f0f0\"/>\n", x, T,
                x, T + rows * rh);
        if (s % 5 == 0)
            fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%d s</text>\n", x,
                    T + rows * rh + 16, s);
    }
#define X(sample) (L + (double)(sample) / RATE * pps)
    /* levels: dB of 50 ms windows, -70 .. 0 dBFS mapped to the row height */
    for (int which = 0; which < 2; which++) {
        const float *x = which ? spk : mic;
        int row = which ? 6 : 0;
        fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" points=\"", which ? "#2ca02c" : "#1f77b4");
        for (size_t at = 0; at + 800 <= n; at += 800) {
            double acc = 0;
            for (size_t k = at; k < at + 800; k++)
                acc += (double)x[k] * x[k];
            double db = 10 * log10(acc / 800 + 1e-12);
            double h = fmin(fmax((db + 70) / 70, 0), 1) * (rh - 6);
            fprintf(f, "%.1f,%.1f ", X(at + 400), T + row * rh + rh - 3 - h);
        }
        fprintf(f, "\"/>\n");
    }
    /* user speech: each part of each turn, with its text */
    for (size_t i = 0; i < c->next; i++) {
        const st_scenario_truth *tr = &c->truth[i];
        const st_scenario_turn *tu = &c->sc->turns[i];
        const char *fill = tu->interrupts ? "#d62728" : tu->kind == ST_TURN_BACKCHANNEL ? "#ff7f0e"
                           : tu->kind == ST_TURN_NOISE ? "#7f7f7f" : "#1f77b4";
        for (int k = 0; k < tr->n_parts; k++)
            fprintf(f, "<rect x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"%s\" "
                       "opacity=\"0.7\"/>\n",
                    X(tr->part_start[k]), T + rh + 6,
                    fmax(X(tr->part_end[k]) - X(tr->part_start[k]), 1), rh - 12, fill);
        fprintf(f, "<text x=\"%.1f\" y=\"%d\" font-size=\"10\">", X(tr->start), T + rh + 4);
        svg_text(f, *tu->text ? tu->text : *tu->fallback_text ? tu->fallback_text : st_turn_kind_name(tu->kind));
        fprintf(f, "</text>\n");
    }
    /* the agent's events */
    int64_t onset = -1, speak = -1;
    for (size_t e = 0; e < c->n_events; e++) {
        const ev *v = &c->events[e];
        switch (v->kind) {
        case ST_AGENT_EV_ONSET: onset = (int64_t)v->sample; break;
        case ST_AGENT_EV_OFFSET:
            if (onset >= 0)
                fprintf(f, "<rect x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"%d\" "
                           "fill=\"#bcbd22\" opacity=\"0.6\"/>\n",
                        X(onset), T + 2 * rh + 8, fmax(X(v->sample) - X(onset), 1), rh - 16);
            onset = -1;
            break;
        case ST_AGENT_EV_WORD:
            fprintf(f, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#8c564b\"/>"
                       "<text x=\"%.1f\" y=\"%d\" font-size=\"9\">",
                    X(v->sample), T + 3 * rh + 4, X(v->sample), T + 4 * rh - 4, X(v->sample) + 2,
                    T + 3 * rh + 14);
            svg_text(f, v->text);
            fprintf(f, "</text>\n");
            break;
        case ST_AGENT_EV_REQUEST:
            fprintf(f, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#d62728\" "
                       "stroke-width=\"2\"/><line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" "
                       "stroke=\"#d62728\" stroke-dasharray=\"2,2\"/>\n",
                    X(v->sample), T + 4 * rh + 4, X(v->sample), T + 5 * rh - 4, X(v->ref),
                    T + 4 * rh + rh / 2, X(v->sample), T + 4 * rh + rh / 2);
            break;
        case ST_AGENT_EV_SPEAKING: speak = (int64_t)v->sample; break;
        case ST_AGENT_EV_PAUSED:
            fprintf(f, "<circle cx=\"%.1f\" cy=\"%d\" r=\"3\" fill=\"#ff7f0e\"/>\n", X(v->sample),
                    T + 5 * rh + rh / 2);
            break;
        case ST_AGENT_EV_INTERRUPTED:
        case ST_AGENT_EV_DONE:
            if (speak >= 0)
                fprintf(f, "<rect x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"%s\" "
                           "opacity=\"0.6\"/>\n",
                        X(speak), T + 5 * rh + 8, fmax(X(v->sample) - X(speak), 1), rh - 16,
                        v->kind == ST_AGENT_EV_DONE ? "#2ca02c" : "#d62728");
            speak = -1;
            break;
        default: break;
        }
    }
#undef X
    fprintf(f, "</svg>\n");
    return fclose(f) ? st_error(ST_ERR_IO, "cannot write '%s'", path) : ST_OK;
}

/* ---- the command ------------------------------------------------------------- */

static void usage(FILE *out)
{
    /* the waits' defaults come from the turn controller, not from this text */
    const st_turn_params d = st_agent_default_params().turn;
    fprintf(out,
            "usage: spiketalk bench latency [--scenarios PATH]... [--baseline] [--json FILE]\n"
            "                               [--svg PREFIX] [--timeline NAME] [--asr FILE]\n"
            "                               [--vad FILE|none]\n"
            "                               [--model FILE] [--data DIR] [--seed N] [--realtime]\n"
            "\n"
            "Runs scripted conversations (docs/SCENARIOS.md; by default the standard set,\n"
            "scenarios/*.ini) through the whole agent in virtual time: each user turn is\n"
            "placed when its anchor resolves from the agent's events, the microphone hears\n"
            "the user, the scenario's noise and, in rooms, the agent's own voice. Reports n,\n"
            "p50, p90, p95, p99 and max of every latency and the quality rates of issue 10.\n"
            "The same scenarios give the same virtual-time figures on every run; each\n"
            "runs in a process of its own, so a scenario gives the same figures alone as\n"
            "in any set.\n"
            "\n"
            "Two clocks. Virtual time (the default) runs faster than real time and is\n"
            "sample-accurate. --realtime paces the blocks to the wall clock as devices\n"
            "would deliver them and adds the real-time rows: each latency plus how late\n"
            "its sample was ready, the processing time per 10 ms block and the blocks\n"
            "that ran past that budget. It takes as long as the conversations last (the\n"
            "standard set: about 13.5 minutes; twice that with --baseline, which runs\n"
            "paced too). A short run, about 2 minutes: --scenarios scenarios/commands.ini.\n"
            "\n"
            "options:\n"
            "  --scenarios PATH  a scenario file or a folder of them (repeatable;\n"
            "                    default scenarios/)\n"
            "  --baseline        also run the common end-of-turn policy (speech after 0.2 s\n"
            "                    of voice, end after 0.8 s of silence) and print both\n"
            "  --json FILE       every turn's measurements and the summary, as JSON\n"
            "  --svg PREFIX      plots PREFIX_cdf.svg and PREFIX_timeline.svg (default\n"
            "                    build/latency)\n"
            "  --timeline NAME   the scenario the timeline shows (default interruptions)\n"
            "  --asr FILE        recognizer (default $SPIKETALK_ASR_MODEL, " CLI_AGENT_ASR ")\n"
            "  --vad FILE|none   the VAD's learned read-out, e.g. " CLI_VAD_MODEL " (default\n"
            "                    $SPIKETALK_VAD_MODEL, else none: the hand-designed one)\n"
            "  --model FILE      dialogue model (default $SPIKETALK_DIALOGUE_MODEL,\n"
            "                    models/dialogue.stnn; without one every answer says so)\n"
            "  --data DIR        shared data for recordings (default ../shared/data)\n"
            "  --end-wait S      spiketalk's silence fallback: the turn ends S seconds after\n"
            "                    the user's offset when the words are no request of the\n"
            "                    grammar (default %g; docs/AGENT.md \"End of turn\")\n"
            "  --prefix-wait S   ... when they are the start of one (default %g)\n"
            "  --prefix-stale S  ... unless the user spoke on S seconds past the prefix's\n"
            "                    last word (the rest was missed): then the fallback\n"
            "                    (default %g; 0: a prefix is never stale)\n"
            "  --barge-min S     user speech over the agent that commits a barge-in\n"
            "                    (default %g; shorter: the agent pauses, then resumes)\n"
            "  --barge-hint on|off  a second VAD read-out that takes a fricative for speech\n"
            "                    pauses the agent at once while it speaks (default on;\n"
            "                    the VAD still decides what counts toward --barge-min)\n"
            "  --barge-word on|off  a word the recognizer hears over the agent commits it\n"
            "                    too, unless a backchannel (\"yes\", \"right\"; default %s)\n"
            "  --seed N          add N to every scenario's seeds: the same conversations\n"
            "                    with other noise and room reflections (default 0). The\n"
            "                    quality rates move between seeds (a turn's outcome moves\n"
            "                    every later turn): compare settings over a few seeds\n"
            "  --realtime        pace the blocks to the wall clock and report the real-time\n"
            "                    figures too (a progress line on stderr)\n"
            "  -h, --help        this help\n"
            "\n"
            "metrics (ms):\n",
            d.incomplete_wait_s, d.prefix_wait_s, d.prefix_stale_s, d.barge_min_s,
            d.barge_on_word ? "on" : "off");
    for (int m = 0; m < M_N; m++)
        fprintf(out, "  %-24s %s\n", metric_names[m], metric_help[m]);
}

/* p50, p90, p95, p99 and the largest of v[0..n), the columns of the table */
static void five(const double *v, int n, double o[5])
{
    static const double p[5] = {50, 90, 95, 99, 100};
    for (int k = 0; k < 5; k++)
        o[k] = cli_percentile(v, n, p[k]);
}

static void summary_json(FILE *jf, const char *name, const tally *t, bool realtime)
{
    fprintf(jf, "\"%s\": {", name);
    for (int m = 0; m < (realtime ? M_N : M_RT); m++) {
        int n = t->n[m];
        fprintf(jf, "%s\"%s\": {\"n\": %d", m ? ", " : "", metric_names[m], n);
        if (n) {
            double o[5];
            five(t->v[m], n, o);
            fprintf(jf, ", \"p50\": %.1f, \"p90\": %.1f, \"p95\": %.1f, \"p99\": %.1f, \"max\": %.1f",
                    o[0], o[1], o[2], o[3], o[4]);
        }
        fprintf(jf, "}");
    }
    fprintf(jf,
            ", \"turns\": %d, \"answered\": %d, \"of_answerable\": %d, \"pause_turns\": %d, "
            "\"pause_wrong_end\": %d, \"interruptions\": %d, \"interrupt_missed\": %d, "
            "\"interrupt_after_answer_ended\": %d, \"false_interruptions_echo\": %d, "
            "\"false_pauses_echo\": %d, \"echo_only_s\": %.1f, \"false_interruptions_noise\": %d, "
            "\"false_pauses_noise\": %d, \"noise_bursts\": %.0f, "
            "\"false_interruptions_backchannel\": %d, \"false_pauses_backchannel\": %d, "
            "\"backchannels\": %.0f, \"false_pauses_other\": %d, \"spurious_requests\": %d, "
            "\"expect_turns\": %d, \"expect_ok\": %d, \"request_checked\": %d, "
            "\"request_match\": %d, \"stale_samples\": %llu, \"audio_s\": %.1f, \"wall_s\": %.2f, "
            "\"cpu_s\": %.2f, \"rtf\": %.4f, \"answers_played_to_end\": %d, "
            "\"answers_interrupted\": %d, \"preempted\": %llu, \"preempt_used\": %llu, "
            "\"refused_calls\": %llu",
            t->turns, t->answered, t->answered_kinds, t->pause_turns, t->pause_wrong_end,
            t->interruptions, t->interrupt_missed, t->interrupt_late, t->false_int_echo,
            t->false_pause_echo, t->echo_only_s, t->false_int_noise, t->false_pause_noise,
            t->noise_bursts, t->false_int_backchannel, t->false_pause_backchannel,
            t->backchannels, t->false_pause_other, t->requests_spurious, t->expect_turns,
            t->expect_ok, t->request_checked, t->request_match,
            (unsigned long long)t->stale_samples, t->audio_s, t->wall_s, t->cpu_s,
            t->audio_s > 0 ? t->cpu_s / t->audio_s : 0, t->answers_done, t->answers_interrupted,
            t->preempted, t->preempt_used, t->refused_calls);
    fprintf(jf, ", \"cpu\": {");
    for (int k = 0; k < 8; k++)
        fprintf(jf, "%s\"%s\": {\"s\": %.3f, \"per_answer_ms\": %.2f, \"rtf\": %.5f}",
                k ? ", " : "", cpu_names[k], t->cpu_part[k],
                t->answered ? 1000 * t->cpu_part[k] / t->answered : 0,
                t->audio_s > 0 ? t->cpu_part[k] / t->audio_s : 0);
    fprintf(jf, "}");
    if (realtime)
        fprintf(jf,
                ", \"realtime\": {\"blocks\": %llu, \"block_budget_ms\": %.1f, "
                "\"late_blocks\": %llu, \"late_total_ms\": %.1f, \"late_max_ms\": %.2f, "
                "\"events\": %d, \"events_late\": %d}",
                t->blocks, 1000.0 * BLOCK / RATE, t->late_blocks, t->late_total_ms,
                t->late_max_ms, t->rt_events, t->rt_events_late);
    fprintf(jf, "}");
}

static void print_row(const char *name, const tally *a, const tally *b, int m, const char *target)
{
    double o[5];
    five(a->v[m], a->n[m], o);
    printf("  %-24s %4d %7.0f %7.0f %7.0f %7.0f %7.0f", name, a->n[m], o[0], o[1], o[2], o[3], o[4]);
    if (b)
        printf("   | %4d %7.0f %7.0f", b->n[m], cli_percentile(b->v[m], b->n[m], 50),
               cli_percentile(b->v[m], b->n[m], 95));
    printf("   %s\n", target);
}

static double rate(int k, int n)
{
    return n ? 100.0 * k / n : 0;
}

static void print_quality(const char *who, const tally *t)
{
    printf("\n  %s:\n", who);
    printf("    answered %d of %d answerable turns (%d without an answer, %d requests "
           "attributed to no turn)\n",
           t->answered, t->answered_kinds, t->no_answer, t->requests_spurious);
    printf("    request words recognized exactly: %d of %d (%.0f %%)\n", t->request_match,
           t->request_checked, rate(t->request_match, t->request_checked));
    if (t->expect_turns)
        printf("    right answers (expected words): %d of %d (%.0f %% wrong)\n", t->expect_ok,
               t->expect_turns, 100 - rate(t->expect_ok, t->expect_turns));
    printf("    tool calls refused (a number the request did not hold, or unreadable): %llu "
           "(the agent asked again)\n",
           t->refused_calls);
    if (t->pause_turns)
        printf("    pauses that ended a turn: %d of %d turns with pauses (%.0f %%; target <= 5 %%)\n",
               t->pause_wrong_end, t->pause_turns, rate(t->pause_wrong_end, t->pause_turns));
    printf("    interruptions: %d while the agent spoke, %d missed; %d came after the answer "
           "had ended\n",
           t->interruptions, t->interrupt_missed, t->interrupt_late);
    printf("    stale samples after a flush: %llu (target 0)\n",
           (unsigned long long)t->stale_samples);
    printf("    echo-only stretches %.0f s: %d false interruptions (%.2f / min; target 0), %d "
           "pauses\n",
           t->echo_only_s, t->false_int_echo,
           t->echo_only_s > 0 ? t->false_int_echo * 60.0 / t->echo_only_s : 0, t->false_pause_echo);
    printf("    noise bursts %.0f: %d interruptions, %d pauses; backchannels %.0f: %d "
           "interruptions, %d pauses; pauses for nobody elsewhere %d\n",
           t->noise_bursts, t->false_int_noise, t->false_pause_noise, t->backchannels,
           t->false_int_backchannel, t->false_pause_backchannel, t->false_pause_other);
    printf("    answers played to their end %d, interrupted %d (counted apart)\n",
           t->answers_done, t->answers_interrupted);
    printf("    preemptive work: the LM read %llu pending requests ahead, %llu of them were the "
           "final request\n",
           t->preempted, t->preempt_used);
    printf("    %.0f s of conversation in %.1f s wall, %.1f s CPU (driver, rendering and agent): "
           "real-time factor %.3f\n",
           t->audio_s, t->wall_s, t->cpu_s, t->audio_s > 0 ? t->cpu_s / t->audio_s : 0);
    printf("    the agent's CPU by part (s, ms per answered turn, real-time factor):");
    for (int k = 0; k < 8; k++)
        printf("%s%s %.2f s, %.1f ms, %.4f", k % 3 ? "; " : "\n      ", cpu_names[k],
               t->cpu_part[k], t->answered ? 1000 * t->cpu_part[k] / t->answered : 0,
               t->audio_s > 0 ? t->cpu_part[k] / t->audio_s : 0);
    printf("\n");
}

static void tally_free(tally *t)
{
    for (int m = 0; m < M_N; m++)
        free(t->v[m]);
    memset(t, 0, sizeof *t);
}

/* ---- one process per scenario --------------------------------------------- */

/*  Runs one scenario in a child process and takes its tally back: every
    scenario starts from the same state of the libraries it uses, whatever
    ran before it. espeak-ng keeps state across utterances inside the
    engine (function-static variables that no call resets), so in one
    process a scenario's audio, and then its figures, changed with the
    scenarios before it and their order (30 Nov: changing the text of one
    backchannel moved an interruption of another scenario from 105 to
    500 ms). The timeline scenario's child writes its plot itself. */
static int run_isolated(const st_scenario *sc, const run_opts *o, tally *t, FILE *jf,
                        bool *first_json, const char *timeline_svg)
{
    int fd[2];
    fflush(stdout);
    fflush(stderr);
    if (jf)
        fflush(jf);
    if (pipe(fd))
        return cli_fail(CMD, "cannot make a pipe: %s", strerror(errno));
    pid_t pid = fork();
    if (pid < 0) {
        close(fd[0]);
        close(fd[1]);
        return cli_fail(CMD, "cannot fork: %s", strerror(errno));
    }
    if (pid == 0) {
        close(fd[0]);
        conv keep = {0};
        float *mic = NULL, *spk = NULL;
        size_t n_keep = 0;
        bool rec = timeline_svg != NULL;
        int rc = run_scenario(sc, o, t, jf, first_json, rec ? &keep : NULL, rec ? &mic : NULL,
                              rec ? &spk : NULL, rec ? &n_keep : NULL);
        if (!rc && rec && (rc = write_timeline_svg(timeline_svg, &keep, mic, spk, n_keep)))
            cli_fail_lib(CMD, rc, "the timeline plot");
        if (jf)
            fflush(jf);
        fflush(stdout);
        bool ok = st_write_all(fd[1], &rc, sizeof rc) && st_write_all(fd[1], t, sizeof *t) &&
                  st_write_all(fd[1], first_json, sizeof *first_json);
        for (int m = 0; m < M_N && ok; m++)
            ok = st_write_all(fd[1], t->v[m], (size_t)t->n[m] * sizeof *t->v[m]);
        _exit(ok ? 0 : 1);
    }
    close(fd[1]);
    int rc = ST_ERR_IO;
    tally got;
    bool ok = st_read_all(fd[0], &rc, sizeof rc) && st_read_all(fd[0], &got, sizeof got) &&
              st_read_all(fd[0], first_json, sizeof *first_json);
    for (int m = 0; m < M_N; m++) {
        got.v[m] = NULL;
        got.cap[m] = 0;
    }
    for (int m = 0; m < M_N && ok; m++) {
        got.v[m] = got.n[m] ? malloc((size_t)got.n[m] * sizeof *got.v[m]) : NULL;
        got.cap[m] = got.n[m];
        ok = (!got.n[m] || got.v[m]) &&
             st_read_all(fd[0], got.v[m], (size_t)got.n[m] * sizeof *got.v[m]);
    }
    close(fd[0]);
    int ws = 0;
    while (waitpid(pid, &ws, 0) < 0 && errno == EINTR)
        ;
    if (ok && !rc && WIFEXITED(ws) && !WEXITSTATUS(ws)) {
        tally_free(t);
        *t = got;
        return 0;
    }
    tally_free(&got);
    if (ok && rc)
        return rc; /* the child said why */
    return cli_fail(CMD, "scenario '%s': its process ended without its results%s", sc->name,
                    WIFSIGNALED(ws) ? " (killed by a signal)" : "");
}

int st_bench_latency(int argc, char **argv)
{
    char (*files)[512] = calloc(MAX_FILES, sizeof *files);
    int n_files = 0;
    const char *json = NULL, *svg = "build/latency", *timeline = "interruptions";
    const char *asr = NULL, *model = NULL, *data = NULL, *vad = NULL;
    bool baseline = false, realtime = false;
    uint32_t seed_shift = 0; /* added to every scenario's seeds (--seed) */
    const st_turn_params turn = st_agent_default_params().turn;
    double end_wait = turn.incomplete_wait_s, prefix_wait = turn.prefix_wait_s;
    double prefix_stale = turn.prefix_stale_s;
    double barge_min = turn.barge_min_s;
    bool barge_word = turn.barge_on_word, barge_hint = st_agent_default_params().barge_hint;
    int status = 0;
    if (!files)
        return cli_fail(CMD, "out of memory");
    for (int a = 1; a < argc; a++) {
        const char *o = argv[a];
        bool has = a + 1 < argc;
        if (!strcmp(o, "-h") || !strcmp(o, "--help")) {
            usage(stdout);
            free(files);
            return 0;
        } else if (!strcmp(o, "--baseline")) {
            baseline = true;
        } else if (!strcmp(o, "--realtime")) {
            realtime = true;
        } else if (!strcmp(o, "--json") && has && argv[a + 1][0] != '-') {
            json = argv[++a];
        } else if (!strcmp(o, "--json")) {
            json = "-";
        } else if (has && !strcmp(o, "--scenarios")) {
            if ((status = cli_scenario_add_path(CMD, argv[++a], files, &n_files, MAX_FILES)))
                break;
        } else if (has && !strcmp(o, "--svg")) {
            svg = argv[++a];
        } else if (has && !strcmp(o, "--timeline")) {
            timeline = argv[++a];
        } else if (has && !strcmp(o, "--asr")) {
            asr = argv[++a];
        } else if (has && !strcmp(o, "--vad")) {
            vad = argv[++a];
        } else if (has && !strcmp(o, "--model")) {
            model = argv[++a];
        } else if (has && !strcmp(o, "--data")) {
            data = argv[++a];
        } else if (has && (!strcmp(o, "--end-wait") || !strcmp(o, "--prefix-wait"))) {
            double *w = o[2] == 'e' ? &end_wait : &prefix_wait;
            if (!cli_parse_double(CMD, o, argv[++a], 0.05, 10, w)) {
                free(files);
                return 2;
            }
        } else if (has && !strcmp(o, "--seed")) {
            long v;
            if (!cli_parse_int(CMD, o, argv[++a], 0, 1000000, &v)) {
                free(files);
                return 2;
            }
            seed_shift = (uint32_t)v;
        } else if (has && !strcmp(o, "--prefix-stale")) {
            if (!cli_parse_double(CMD, o, argv[++a], 0, 10, &prefix_stale)) {
                free(files);
                return 2;
            }
        } else if (has && !strcmp(o, "--barge-min")) {
            if (!cli_parse_double(CMD, o, argv[++a], 0, 10, &barge_min)) {
                free(files);
                return 2;
            }
        } else if (has && (!strcmp(o, "--barge-word") || !strcmp(o, "--barge-hint"))) {
            const char *v = argv[++a];
            if (strcmp(v, "on") && strcmp(v, "off")) {
                cli_fail(CMD, "%s takes on or off, not '%s'", o, v);
                free(files);
                return 2;
            }
            *(!strcmp(o, "--barge-word") ? &barge_word : &barge_hint) = !strcmp(v, "on");
        } else {
            usage(stderr);
            free(files);
            return 2;
        }
    }
    if (status) {
        free(files);
        return status;
    }
    if (!n_files)
        cli_scenario_add_default(CMD, files, &n_files, MAX_FILES);
    char asr_buf[4096], lm_buf[4096], vad_buf[4096];
    run_opts ro = {
        .asr = cli_agent_asr(CMD, asr, asr_buf, sizeof asr_buf),
        .vad = cli_vad_model(vad, false, vad_buf, sizeof vad_buf),
        .lm = cli_agent_find_model(model, "SPIKETALK_DIALOGUE_MODEL", "models/dialogue.stnn",
                                   lm_buf, sizeof lm_buf),
        .data_dir = data,
        .realtime = realtime,
        .end_wait_s = end_wait,
        .prefix_wait_s = prefix_wait,
        .prefix_stale_s = prefix_stale,
        .barge_min_s = barge_min,
        .barge_on_word = barge_word,
        .barge_hint = barge_hint,
    };
    if (!ro.asr) {
        free(files);
        return 1;
    }
    st_scenario *scs = calloc((size_t)(n_files ? n_files : 1), sizeof *scs);
    int n_sc = 0;
    for (int i = 0; i < n_files && scs; i++) {
        int rc = st_scenario_load(files[i], &scs[n_sc]);
        if (rc) {
            status = cli_fail_lib(CMD, rc, files[i]);
            break;
        }
        scs[n_sc].seed += seed_shift; /* other noise, other reflections */
        scs[n_sc].room_params.seed += seed_shift;
        n_sc++;
    }
    if (!scs || (!status && !n_sc))
        status = cli_fail(CMD, "no scenarios (--scenarios PATH, or run from the repository)");
    tally ta = {0}, tb = {0};
    FILE *jf = NULL;
    int keep_idx = -1;
    if (!status && json) {
        jf = strcmp(json, "-") ? fopen(json, "w") : stdout;
        if (!jf)
            status = cli_fail(CMD, "cannot create '%s'", json);
        else
            fprintf(jf, "{\"bench\": \"latency\", \"version\": \"%s\", %s\"seed\": %u, "
                        "\"end_wait_s\": %g, "
                        "\"prefix_wait_s\": %g, \"prefix_stale_s\": %g, \"barge_min_s\": %g, "
                        "\"barge_on_word\": %s, "
                        "\"barge_hint\": %s, \"turns\": [",
                    ST_VERSION_STRING, realtime ? "\"clock\": \"realtime\", " : "", seed_shift,
                    end_wait, prefix_wait, prefix_stale, barge_min, barge_word ? "true" : "false",
                    barge_hint ? "true" : "false");
    }
    size_t total_turns = 0;
    for (int i = 0; i < n_sc; i++)
        total_turns += scs[i].n_turns;
    if (!status)
        fprintf(stderr, "spiketalk bench latency: %d scenarios, %zu user turns, %s%s\n",
                n_sc, total_turns,
                realtime ? "real time (paced to the wall clock: as long as the conversations "
                           "last)"
                         : "virtual time",
                baseline ? ", then the baseline" : "");
    bool first = true;
    char timeline_path[1024];
    snprintf(timeline_path, sizeof timeline_path, "%s_timeline.svg", svg);
    for (int pass = 0; pass < (baseline ? 2 : 1) && !status; pass++) {
        run_opts o = ro;
        o.baseline = pass == 1;
        o.count = n_sc;
        for (int i = 0; i < n_sc && !status; i++) {
            o.index = i;
            bool rec = pass == 0 && keep_idx < 0 && !strcmp(scs[i].name, timeline);
            status = run_isolated(&scs[i], &o, pass ? &tb : &ta, jf, &first,
                                  rec ? timeline_path : NULL);
            if (rec && !status)
                keep_idx = i;
        }
    }
    cli_synth_cache_destroy(&synth_cache);
    if (!status) {
        const tally *b = baseline ? &tb : NULL;
        printf("\nspiketalk bench latency: %d scenarios, %zu user turns, %s; agent "
               "%s, VAD read-out %s, dialogue model %s; end-of-turn waits %g s (fallback), "
               "%g s (prefix); barge-in after %g s of speech%s%s%s\n",
               n_sc, total_turns,
               realtime ? "real time (paced to the wall clock) and virtual time" : "virtual time",
               ro.asr, ro.vad ? ro.vad : "hand-designed",
               ro.lm ? ro.lm : "MISSING (every answer says so)",
               end_wait, prefix_wait, barge_min, barge_word ? " or a word" : "",
               barge_hint ? ", the agent paused at once by the fricative-sensitive hint" : "",
               seed_shift ? "; scenario seeds shifted (--seed)" : "");
        printf("\n  %-24s %4s %7s %7s %7s %7s %7s%s   %s\n", "metric (ms)", "n", "p50", "p90",
               "p95", "p99", "max", b ? "   | base    p50     p95" : "", "target");
        print_row("voice_to_voice", &ta, b, M_V2V, "p50 250, p95 400");
        print_row("voice_to_voice cold", &ta, b, M_V2V_COLD, "");
        print_row("v2v interrupting", &ta, b, M_V2V_INT, "");
        print_row("end_of_turn", &ta, b, M_EOT, "");
        print_row("asr_final", &ta, b, M_ASR, "");
        print_row("compute (virtual)", &ta, b, M_COMPUTE, "p95 20");
        print_row("interrupt_to_silence", &ta, b, M_SILENCE, "p95 150");
        static const char *const wall_rows[5] = {"compute (wall)", "  LM first token",
                                                 "  LM first words", "  TTS first audio",
                                                 "LM whole answer"};
        for (int k = 0; k < 5; k++) {
            int m = M_WALL + k;
            double o[5];
            five(ta.v[m], ta.n[m], o);
            printf("  %-24s %4d %7.1f %7.1f %7.1f %7.1f %7.1f   %s\n", wall_rows[k], ta.n[m], o[0],
                   o[1], o[2], o[3], o[4], k == 0 ? "p95 20 (decision -> first sample ready)" : "");
        }
        if (realtime) {
            print_row("v2v real time", &ta, b, M_V2V_RT, "p50 250, p95 400");
            print_row("v2v cold real time", &ta, b, M_V2V_COLD_RT, "");
            print_row("v2v interrupting rt", &ta, b, M_V2V_INT_RT, "");
            print_row("interrupt_to_silence rt", &ta, b, M_SILENCE_RT, "p95 150");
            double o[5];
            five(ta.v[M_BLOCK], ta.n[M_BLOCK], o);
            printf("  %-24s %4d %7.2f %7.2f %7.2f %7.2f %7.2f   %s\n", "block (wall)",
                   ta.n[M_BLOCK], o[0], o[1], o[2], o[3], o[4], "budget 10 (one block)");
            for (int k = 0; k < (b ? 2 : 1); k++) {
                const tally *t = k ? b : &ta;
                printf("  real time%s: %llu blocks, %llu late (output ready after the next "
                       "block's capture: past the 10 ms budget), %.1f ms late in all, max "
                       "%.2f ms; %d of %d speaking/paused events ready after their play time\n",
                       k ? " (baseline)" : "", t->blocks, t->late_blocks, t->late_total_ms,
                       t->late_max_ms, t->rt_events_late, t->rt_events);
            }
        }
        print_quality("spiketalk", &ta);
        if (b)
            print_quality("baseline (speech after 0.2 s, end after 0.8 s of silence)", b);
        struct rusage ru, ruc;
        getrusage(RUSAGE_SELF, &ru);
        getrusage(RUSAGE_CHILDREN, &ruc); /* the scenarios ran in child processes */
        if (ruc.ru_maxrss > ru.ru_maxrss)
            ru.ru_maxrss = ruc.ru_maxrss;
        printf("\n  peak memory (max RSS, the largest scenario's process) %.1f MB\n",
               ru.ru_maxrss / 1024.0);
        if (jf) {
            fprintf(jf, "\n], \"summary\": {");
            summary_json(jf, "spiketalk", &ta, realtime);
            if (b) {
                fprintf(jf, ", ");
                summary_json(jf, "baseline", b, realtime);
            }
            fprintf(jf, "}, \"max_rss_mb\": %.1f}\n", ru.ru_maxrss / 1024.0);
        }
        char path[1024];
        snprintf(path, sizeof path, "%s_cdf.svg", svg);
        int rc = write_cdf_svg(path, &ta, b);
        if (rc)
            status = cli_fail_lib(CMD, rc, "the CDF plot");
        else
            printf("  plots: %s", path);
        if (keep_idx >= 0 && !status)
            printf(", %s (scenario %s)", timeline_path, scs[keep_idx].name);
        printf("\n");
        if (jf && jf != stdout)
            printf("  every measurement: %s\n", json);
    }
    if (jf && jf != stdout && fclose(jf) && !status)
        status = cli_fail(CMD, "cannot write '%s'", json);
    for (int i = 0; i < n_sc; i++)
        st_scenario_free(&scs[i]);
    free(scs);
    free(files);
    tally_free(&ta);
    tally_free(&tb);
    return status;
}
