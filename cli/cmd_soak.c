/*  cli/cmd_soak.c - `spiketalk soak`: one long conversation (an hour by
    default) in virtual time through one agent (pipeline/agent.c), to find
    what only shows after many turns: memory that grows, turns or answers
    that vanish without being counted, latencies that drift.

    The conversation is the standard scenario set (the .ini files in scenarios/,
    docs/SCENARIOS.md) looped: each pass of a scenario gets its own noise
    seed and its turns' anchors moved by a deterministic jitter, so no two
    passes are the same, and the same --minutes gives the same conversation
    on every run. It runs whole loops over the set (as many as make the
    time asked, two at least), and the last loop repeats the first one's
    seeds and jitter exactly: the first and the last loop (about 14 min
    each with the standard set) are the windows compared, the same input
    an hour apart, so a difference is what the hour did to the agent and
    not a different mix of scenarios. Turns are rendered once (synthesis is
    the expensive part and does not change between passes) and placed on
    the microphone as their anchors resolve from the agent's events, with
    the scenario's noise and, in rooms, the agent's own voice (the driver
    of cli/bench_latency.c, one agent for the whole run instead of one per
    scenario). docs/RELIABILITY.md has the figures.

    Measured: resident memory (/proc/self/statm) after the warm-up and at
    the end; a ledger of every user turn and every answer (answered, or
    what the agent counted or published instead: a turn ended for want of
    a word, merged into a later request, talked over before its answer
    started, an interruption, an onset judged echo, a pause judged nothing;
    and passes after which the agent never came back to listening);
    voice-to-voice and barge-in percentiles (virtual time) in the first and
    the last loop (and every barge-in of the two, with its turn, so that a
    difference can be traced to the turns that made it; the barge-in
    percentiles of every loop, so that a trend shows apart from an
    outlier), with CPU per second of conversation and the wall-clock
    time to the first answer block beside them (reported, not checked: the
    machine is shared). Checks: growth after the first loop < 1 MB, nothing
    unaccounted, and no drift of voice-to-voice or barge-in between the first
    and the last loop: the centre (the nine deciles' median shift) and the
    p95 each within 10 % of the first loop's (or one 10 ms agent block where
    that is more: the step the latencies move in), or a shift a permutation
    test calls chance (p >= 0.01; base/stats.c says why the deciles: the
    times form two clusters). Harrell-Davis estimates, each compared where
    both windows hold at least 5 values beyond it: a p95 from 100 values. Exit
    status 1 when a check fails. `make soak` runs the hour.

    The driver keeps fixed-size tables allocated before the warm-up, so its
    own bookkeeping does not show as growth.

    May touch: the scenario files and audio they name, the models, stdout,
    stderr (progress), the --json file.
*/
#include "cli.h"
#include "scenario_synth.h"

#include "audio/audio.h"
#include "pipeline/pipeline.h"
#include "tts/tts.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CMD "soak"
#define RATE ST_PIPELINE_RATE_HZ
#define BLOCK ST_AGENT_BLOCK
#define MAX_FILES 64
#define NO_ANSWER_S 6.0        /* the user goes on when nothing answered for this long */
#define GAP_S 1.0              /* silence between two scenario passes (plus the tail) */
#define WINDOW_S 600.0         /* runs under one loop: the windows compared and the
                                  warm-up, at most this (a quarter of the run) */
#define GROWTH_LIMIT_B (1024.0 * 1024.0)
#define DRIFT_LIMIT 0.10
#define DRIFT_FLOOR_MS (1000.0 * BLOCK / RATE) /* ... or one agent block, whichever is
                                  larger: the agent acts block by block, so a
                                  virtual-time latency moves in 10 ms steps */
#define DRIFT_ALPHA 0.01       /* ... and a permutation p-value under this */
#define DRIFT_ROUNDS 4999
#define DRIFT_SEED 20261130u
#define MIN_TAIL_N 5            /* a percentile is compared when each window holds at
                                  least this many values beyond it (p50: 10 values,
                                  p95: 100): a p95 of 25 barge-ins is their largest
                                  one or two, and moved 62 -> 121 ms between loops */
#define MAX_PASS_S 600.0       /* a pass of a standard scenario takes 1-3 min */
#define STUCK_S 60.0           /* every turn placed and over, the agent not listening
                                  this long: counted as stuck, next pass */

/* ---- samples kept for the percentiles (fixed tables) ------------------------- */

typedef enum { S_V2V = 0, S_BARGE, S_CPU, S_WALL, S_N } series_id;
static const char *const series_names[S_N] = {"voice_to_voice_ms", "barge_in_ms",
                                               "cpu_ms_per_s", "first_audio_wall_ms"};
static const char *const series_help[S_N] = {
    "end of user speech -> agent's first sample (virtual time)",
    "user onset over the agent -> speaker paused (virtual time)",
    "process CPU per second of conversation, each 10 s (every thread; a shared machine: "
    "not checked)",
    "decision -> first answer block ready, wall clock (shared machine: not checked)"};
static const bool series_checked[S_N] = {true, true, false, false};
#define CPU_BUCKET_S 10

typedef struct {
    double *t_s, *v;           /* when (virtual s), value */
    size_t n, cap, overflow;
} series;

static void series_add(series *s, double t_s, double v)
{
    if (s->n == s->cap) {
        s->overflow++;
        return;
    }
    s->t_s[s->n] = t_s;
    s->v[s->n++] = v;
}

/* p-th percentile of the values with t in [t0, t1): the Harrell-Davis
   estimate (every order statistic weighted by a beta distribution around
   the p-th; Harrell & Davis 1982, the estimator perfolizer/BenchmarkDotNet
   compare small samples with). A window holds ~35 barge-ins, and the
   linearly interpolated p95 of 35 values is the 2nd or 3rd largest alone:
   two loops of the same input with the same sorted values but one (72.5,
   82.5, 82.5, 102.5 against 62.5, 62.5, 82.5, 92.5 ms in their tails) gave
   66.5 against 82.5 ms. `scratch` holds s->cap doubles. NAN when none;
   *n_out the count. */
static size_t window_values(const series *s, double t0, double t1, double *out)
{
    size_t n = 0;
    for (size_t i = 0; i < s->n; i++)
        if (s->t_s[i] >= t0 && s->t_s[i] < t1)
            out[n++] = s->v[i];
    return n;
}

static double window_pct(const series *s, double t0, double t1, double p, double *scratch,
                         int *n_out)
{
    size_t n = window_values(s, t0, t1, scratch);
    *n_out = (int)n;
    if (!n)
        return NAN;
    qsort(scratch, n, sizeof *scratch, cli_cmp_double);
    return st_hd_quantile(scratch, n, p);
}

/* ---- the synthesizer behind the renderer (one engine per voice) --------------- */


/* ---- one scenario, rendered once ---------------------------------------------- */

typedef struct {
    st_scenario sc;
    st_scenario_clip *clips;   /* per turn, speech from sample 0 */
    st_scenario_truth *truth;  /* per turn, relative to its clip */
    double *offset0;           /* the anchors' offsets as written */
    uint32_t seed0;
    int passes;
    double cpu_first, cpu_last;/* process CPU ms per s of conversation: first, last pass */
} scen;

static void scen_free(scen *s)
{
    if (s->clips)
        for (size_t i = 0; i < s->sc.n_turns; i++)
            st_scenario_clip_free(&s->clips[i]);
    free(s->clips);
    free(s->truth);
    free(s->offset0);
    st_scenario_free(&s->sc);
    memset(s, 0, sizeof *s);
}

/* ---- the ledger ---------------------------------------------------------------- */

typedef struct {
    uint64_t passes, turns, answerable;
    uint64_t answered;         /* a request attributed to the turn, its answer played */
    uint64_t unanswered_dropped;   /* the turn controller published user -> listening:
                                      speech without a word (agent stats.dropped_turns
                                      is not maintained; this is from the events) */
    uint64_t unanswered_merged;    /* its words went into a later turn's request */
    uint64_t unanswered_superseded;/* the user went on before the answer started */
    uint64_t unanswered_stopped;   /* no request, but it interrupted the agent */
    uint64_t unanswered_echo;      /* the agent judged its onset its own echo */
    uint64_t unanswered_resumed;   /* it paused the agent, which judged it nothing */
    uint64_t unanswered_lost;      /* none of these: nothing counted it */
    uint64_t requests, answers, spurious_requests;
    uint64_t speaking, done, interrupted, open_at_end;
    uint64_t onsets, offsets, pauses, resumes;
    uint64_t drops_ev, supersede_ev;   /* USER->LISTENING, THINKING->USER transitions */
    uint64_t replaced_ev;      /* a request replaced before its first sample by the same
                                  turn with a late word (REQUEST while still thinking) */
    uint64_t ledger_errors;    /* an event order the agent's contract forbids */
    uint64_t stuck;            /* passes after which the agent sat in one state other
                                  than listening for STUCK_S (a turn that never ends) */
    uint64_t noise_busy;       /* passes whose background kept the VAD firing, the
                                  agent never quiet for long after the last user speech
                                  (its state still changing: reported, not a failure) */
    char stuck_what[256];      /* the first of them */
    char lost_what[512];       /* the first unaccounted turns: "scenario/turn (kind,
                                  pass, words the recognizer heard in its time)" */
} ledger;

/* ---- every barge-in, for the report (fixed table) ------------------------------- */

typedef struct {
    double t_s;                /* when the speaker paused (virtual s) */
    double ms;                 /* the user's onset -> paused */
    const char *scenario, *turn; /* the turn the onset fell in (NULL: none) */
    uint64_t pass;
    char then;                 /* 'i' interrupted, 'r' resumed, '?' neither yet */
} barge_rec;

/* ---- the pass being played ------------------------------------------------------ */

typedef struct {
    scen *s;
    size_t nt;
    uint64_t base;             /* agent sample where this pass starts */
    int64_t *placed, *ue, *as, *ae, *req;  /* relative to base; -1 unknown */
    st_scenario_truth *truth;  /* placed (relative to base) */
    bool *dropped, *superseded, *answered, *stopped, *echo, *resumed;
    unsigned *words;           /* words the recognizer heard in each turn's time */
    barge_rec *barge;          /* the soak's table of barge-ins */
    size_t *n_barge, cap_barge, open_barge; /* open_barge: the last one, or SIZE_MAX */
    uint64_t pass_no;
    uint64_t echo_onsets;      /* the agent's count before the current block */
    size_t next;
    int requested, answering;
    ledger *L;
    series *ser;
    bool thinking;             /* between a REQUEST and its answer's first sample */
    uint64_t last_change;      /* the agent's last state change (agent sample) */
    bool speaking_open;
} pass_state;

static int turn_before(const pass_state *p, uint64_t rel)
{
    for (size_t k = p->next; k-- > 0;)
        if (p->placed[k] >= 0 && p->truth[k].start <= rel)
            return (int)k;
    return -1;
}

static bool answered_kind(const st_scenario_turn *t)
{
    return t->kind != ST_TURN_BACKCHANNEL && t->kind != ST_TURN_NOISE;
}

static void on_event(const st_agent_event *e, void *user_data)
{
    pass_state *p = user_data;
    ledger *L = p->L;
    uint64_t rel = e->sample >= p->base ? e->sample - p->base : 0;
    double t_s = (double)e->sample / RATE;
    switch (e->kind) {
    case ST_AGENT_EV_STATE: {
        p->last_change = e->sample;
        int i = turn_before(p, rel);
        if (e->from == ST_TURN_USER && e->to == ST_TURN_LISTENING) {
            L->drops_ev++;
            if (i >= 0)
                p->dropped[i] = true;
        } else if (e->from == ST_TURN_THINKING && e->to == ST_TURN_USER) {
            L->supersede_ev++;
            if (p->requested >= 0)
                p->superseded[p->requested] = true;
            p->thinking = false;
        }
        break;
    }
    case ST_AGENT_EV_ONSET: L->onsets++; break;
    case ST_AGENT_EV_OFFSET: L->offsets++; break;
    case ST_AGENT_EV_REQUEST: {
        L->requests++;
        if (p->thinking)
            L->replaced_ev++; /* the recognizer's late word: the same turn asked again */
        int i = turn_before(p, rel);
        if (i < 0 || p->req[i] >= 0 || !answered_kind(&p->s->sc.turns[i])) {
            L->spurious_requests++;
            p->requested = -1;
        } else {
            p->req[i] = (int64_t)rel;
            p->requested = i;
        }
        p->thinking = true;
        break;
    }
    case ST_AGENT_EV_ANSWER:
        L->answers++;
        break;
    case ST_AGENT_EV_WORD: {   /* sample: the word's end (its start is the
                                  recognizer's window, not the word's) */
        int i = turn_before(p, rel);
        if (i >= 0)
            p->words[i]++;
        break;
    }
    case ST_AGENT_EV_SPEAKING:
        if (!e->ref)
            break;   /* st_agent_say(): nobody asked (the soak never calls it) */
        L->speaking++;
        if (p->speaking_open)
            L->ledger_errors++;   /* a new answer before the last one ended */
        p->speaking_open = true;
        p->thinking = false;
        series_add(&p->ser[S_V2V], t_s, (double)(e->sample - e->ref) * 1000.0 / RATE);
        if (e->compute_ms > 0)
            series_add(&p->ser[S_WALL], t_s, e->compute_ms);
        if (p->requested >= 0 && p->as[p->requested] < 0) {
            p->as[p->requested] = (int64_t)rel;
            p->answered[p->requested] = true;
            p->answering = p->requested;
        } else {
            p->answering = -1;
        }
        break;
    case ST_AGENT_EV_PAUSED:
        L->pauses++;
        if (e->ref && e->sample >= e->ref) {
            double ms = (double)(e->sample - e->ref) * 1000.0 / RATE;
            series_add(&p->ser[S_BARGE], t_s, ms);
            p->open_barge = SIZE_MAX;
            if (*p->n_barge < p->cap_barge) {
                int i = turn_before(p, e->ref >= p->base ? e->ref - p->base : 0);
                p->open_barge = (*p->n_barge)++;
                p->barge[p->open_barge] = (barge_rec){
                    .t_s = t_s, .ms = ms, .scenario = p->s->sc.name,
                    .turn = i >= 0 ? p->s->sc.turns[i].name : NULL, .pass = p->pass_no,
                    .then = '?'};
            }
        }
        break;
    case ST_AGENT_EV_RESUMED: {
        L->resumes++;
        if (p->open_barge != SIZE_MAX)
            p->barge[p->open_barge].then = 'r';
        p->open_barge = SIZE_MAX;
        int i = turn_before(p, rel);
        if (i >= 0)
            p->resumed[i] = true;
        break;
    }
    case ST_AGENT_EV_INTERRUPTED:
    case ST_AGENT_EV_DONE:
        if (e->kind == ST_AGENT_EV_INTERRUPTED) {
            int i = turn_before(p, rel);
            if (i >= 0)
                p->stopped[i] = true;
            if (p->open_barge != SIZE_MAX)
                p->barge[p->open_barge].then = 'i';
            p->open_barge = SIZE_MAX;
        }
        if (e->kind == ST_AGENT_EV_DONE)
            L->done++;
        else
            L->interrupted++;
        if (p->speaking_open)
            p->speaking_open = false;
        else if (e->kind == ST_AGENT_EV_DONE)
            L->ledger_errors++;   /* an end without a start */
        if (p->answering >= 0 && p->ae[p->answering] < 0)
            p->ae[p->answering] = (int64_t)rel;
        p->answering = -1;
        break;
    default: break;
    }
}

/* ---- helpers ---------------------------------------------------------------------- */

static double rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        return NAN;
    unsigned long size = 0, resident = 0;
    int n = fscanf(f, "%lu %lu", &size, &resident);
    fclose(f);
    return n == 2 ? (double)resident * (double)sysconf(_SC_PAGESIZE) : NAN;
}

static double process_cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* xorshift32: the jitter of each pass, the same on every run */
static uint32_t rng_next(uint32_t *s)
{
    uint32_t x = *s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *s = x;
}

static double rng_uniform(uint32_t *s, double lo, double hi)
{
    return lo + (hi - lo) * (double)(rng_next(s) >> 8) / (double)(1u << 24);
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: spiketalk soak [--minutes N] [--scenario FILE]... [--json [FILE]]\n"
            "                      [--asr FILE] [--vad FILE|none] [--model FILE] [--data DIR]\n"
            "\n"
            "One long conversation in virtual time through one agent: the standard\n"
            "scenarios (scenarios/*.ini) looped with a new noise seed and jittered turn\n"
            "times on every pass, answers, interruptions and echo. Whole loops over the\n"
            "set; the last repeats the first exactly. Checks that resident memory grows\n"
            "< 1 MB after the first loop (the warm-up), that every user turn and answer\n"
            "is accounted for, and that voice-to-voice and barge-in times did not drift\n"
            "from the first loop to the last: their centre (the median shift of the\n"
            "nine deciles: the times form two clusters, and a median between them\n"
            "moves with one turn) and their p95, each within 10 %% or one 10 ms block,\n"
            "whichever is more, or a shift a permutation test calls chance (p >= 0.01)\n"
            "(under two loops: the first and last quarter of the run; a percentile is\n"
            "compared when each window holds 5 values beyond it: p95 from 100 values).\n"
            "Exit status 1 when a check fails.\n"
            "\n"
            "Columns: each window's n, p50 and p95; their change in %%; the centre's and\n"
            "the p95's shift in limits (beyond +-1 is beyond the limit) with the\n"
            "permutation test's p.\n"
            "\n"
            "options:\n"
            "  --minutes N      virtual minutes of conversation (default 60; rounded to\n"
            "                   whole loops over the scenarios once it passes one)\n"
            "  --scenario FILE  a scenario file or folder (repeatable; default scenarios/)\n"
            "  --json [FILE]    the figures as JSON (to FILE, or instead of the table)\n"
            "  --asr FILE       recognizer (default $SPIKETALK_ASR_MODEL, " CLI_AGENT_ASR ")\n"
            "  --vad FILE|none  the VAD's learned read-out, e.g. " CLI_VAD_MODEL "\n"
            "                   (default $SPIKETALK_VAD_MODEL, else none: hand-designed)\n"
            "  --model FILE     dialogue model (default $SPIKETALK_DIALOGUE_MODEL,\n"
            "                   models/dialogue.stnn; without one every answer says so)\n"
            "  --data DIR       shared data for recordings (default ../shared/data)\n"
            "  -h, --help       this help\n");
}

/* ---- one pass of one scenario ------------------------------------------------------ */

typedef struct {
    st_agent *agent;
    pass_state *ps;            /* the agent's user_data: re-pointed every pass */
    float prev_out[BLOCK];
    uint64_t pos;
    series ser[S_N];
    ledger L;
    const char *data_dir;
    double target_s;
    cli_progress prog;
    double next_note_s;        /* non-tty progress lines */
    double warm_s, rss_warm, rss_peak;  /* warm_s: the time fallback (under one loop) */
    bool warm_taken;
    double rss_loop1;          /* after the first pass over every scenario */
    double loop1_end_s, last_loop_s;
    uint64_t loops;            /* complete passes over the whole set */
#define MAX_LOOPS 64
    double loop_cpu_s[MAX_LOOPS + 1], loop_at_s[MAX_LOOPS + 1]; /* at each loop's start */
    uint64_t pass_no;
    barge_rec *barge;          /* every barge-in (fixed table, cap_barge) */
    size_t n_barge, cap_barge;
    double cpu_mark_s;         /* process CPU at the start of the current bucket */
    double *rss_min;           /* resident bytes at the end of each virtual minute */
    size_t n_rss_min, cap_rss_min;
} soak;

/*  One pass of scenario s; `variant` chooses its noise seed and jitter. */
static int run_pass(soak *k, scen *s, uint64_t variant)
{
    st_scenario *sc = &s->sc;
    size_t nt = sc->n_turns;
    uint32_t rs = 0x9e3779b9u ^ (uint32_t)(variant * 2654435761u);
    rng_next(&rs);
    /* this pass's variation: noise seed and anchor offsets */
    sc->seed = s->seed0 + (uint32_t)variant * 7919u;
    for (size_t i = 0; i < nt; i++) {
        double o = s->offset0[i] + rng_uniform(&rs, -0.15, 0.35);
        if (s->offset0[i] >= 0 && o < 0)
            o = 0;
        sc->turns[i].at.offset_s = o;
    }
    pass_state p = {.s = s, .nt = nt, .base = k->pos, .last_change = k->pos, .requested = -1, .answering = -1,
                    .L = &k->L, .ser = k->ser, .barge = k->barge, .n_barge = &k->n_barge,
                    .cap_barge = k->cap_barge, .open_barge = SIZE_MAX, .pass_no = k->pass_no};
    p.placed = malloc(nt * sizeof *p.placed);
    p.ue = malloc(nt * sizeof *p.ue);
    p.as = malloc(nt * sizeof *p.as);
    p.ae = malloc(nt * sizeof *p.ae);
    p.req = malloc(nt * sizeof *p.req);
    p.truth = malloc(nt * sizeof *p.truth);
    p.dropped = calloc(nt, sizeof *p.dropped);
    p.superseded = calloc(nt, sizeof *p.superseded);
    p.answered = calloc(nt, sizeof *p.answered);
    p.stopped = calloc(nt, sizeof *p.stopped);
    p.echo = calloc(nt, sizeof *p.echo);
    p.resumed = calloc(nt, sizeof *p.resumed);
    p.words = calloc(nt, sizeof *p.words);
    int rc = ST_OK;
    st_scenario_noise *noise = NULL;
    st_room *room = NULL;
    if (!p.placed || !p.ue || !p.as || !p.ae || !p.req || !p.truth || !p.dropped ||
        !p.superseded || !p.answered || !p.stopped || !p.echo || !p.resumed || !p.words) {
        rc = cli_fail(CMD, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < nt; i++) {
        p.placed[i] = p.ue[i] = p.as[i] = p.ae[i] = p.req[i] = -1;
        p.truth[i] = s->truth[i];
    }
    bool fell = false;
    noise = st_scenario_noise_new(sc, k->data_dir, &fell, &rc);
    if (!noise && rc) {
        rc = cli_fail_lib(CMD, rc, "the scenario's noise");
        goto done;
    }
    if (sc->room && !(room = st_room_new(&sc->room_params, &rc))) {
        rc = cli_fail_lib(CMD, rc, "the scenario's room");
        goto done;
    }
    k->ps = &p;
    st_agent_stats ast;
    st_agent_get_stats(k->agent, &ast);
    p.echo_onsets = ast.echo_onsets;
    double cpu0 = process_cpu_s();
    uint64_t pos0 = k->pos;
    float block[BLOCK], out[BLOCK];
    uint64_t last_user_end = 0, end_at = 0;
    for (uint64_t rel = 0;; rel += BLOCK) {
        while (p.next < nt) {
            size_t i = p.next;
            int64_t at = st_scenario_turn_at(sc, i, p.ue, p.as, p.ae);
            if (at < 0) {
                const st_scenario_anchor *a = &sc->turns[i].at;
                if (st_agent_state(k->agent) == ST_TURN_LISTENING &&
                    rel > last_user_end + (uint64_t)(NO_ANSWER_S * RATE)) {
                    if (p.as[a->ref] < 0)
                        p.as[a->ref] = (int64_t)rel;
                    if (p.ae[a->ref] < 0)
                        p.ae[a->ref] = (int64_t)rel;
                    continue;
                }
                break;
            }
            if (at > (int64_t)(rel + BLOCK))
                break;
            int64_t off = at - (int64_t)p.truth[i].start;
            if (off < (int64_t)rel)
                off = (int64_t)rel;
            p.placed[i] = off;
            st_scenario_truth *tr = &p.truth[i];
            tr->start += (uint64_t)off;
            tr->end += (uint64_t)off;
            p.ue[i] = (int64_t)tr->end;
            if (!answered_kind(&sc->turns[i]))
                p.as[i] = p.ae[i] = p.ue[i];
            if (tr->end > last_user_end)
                last_user_end = tr->end;
            p.next++;
        }
        memset(block, 0, sizeof block);
        for (size_t i = 0; i < p.next; i++) {
            int64_t from = (int64_t)rel - p.placed[i];
            const st_scenario_clip *cl = &s->clips[i];
            if (from + BLOCK <= 0 || from >= (int64_t)cl->frames)
                continue;
            for (int j = 0; j < BLOCK; j++) {
                int64_t x = from + j;
                if (x >= 0 && x < (int64_t)cl->frames)
                    block[j] += cl->samples[x];
            }
        }
        st_scenario_noise_add(noise, rel, block, BLOCK);
        if (room)
            st_room_process(room, k->prev_out, block, BLOCK);
        if ((rc = st_agent_process(k->agent, block, out, NULL))) {
            rc = cli_fail_lib(CMD, rc, "the agent");
            goto done;
        }
        st_agent_get_stats(k->agent, &ast);
        if (ast.echo_onsets != p.echo_onsets) {
            int i = turn_before(&p, rel + BLOCK);
            if (i >= 0)
                p.echo[i] = true;
            p.echo_onsets = ast.echo_onsets;
        }
        memcpy(k->prev_out, out, sizeof out);
        k->pos += BLOCK;
        double now_s = (double)k->pos / RATE;
        if (!k->warm_taken && now_s >= k->warm_s) {
            k->rss_warm = rss_bytes();
            k->warm_taken = true;
        }
        if (k->pos % (uint64_t)(CPU_BUCKET_S * RATE) == 0) {
            double c = process_cpu_s();
            series_add(&k->ser[S_CPU], now_s - CPU_BUCKET_S / 2.0,
                       (c - k->cpu_mark_s) * 1000.0 / CPU_BUCKET_S);
            k->cpu_mark_s = c;
            double r = rss_bytes();
            if (k->pos % (uint64_t)(60 * RATE) == 0 && k->n_rss_min < k->cap_rss_min)
                k->rss_min[k->n_rss_min++] = r;
            if (r > k->rss_peak)
                k->rss_peak = r;
            char label[96];
            snprintf(label, sizeof label, "soak %5.1f / %.0f min, RSS %.1f MB", now_s / 60,
                     k->target_s / 60, r / 1048576.0);
            cli_progress_update(&k->prog, now_s / k->target_s, label);
            if (!k->prog.tty && now_s >= k->next_note_s) {
                fprintf(stderr, "spiketalk soak: %s\n", label);
                k->next_note_s += k->target_s / 10;
            }
        }
        if (p.next == nt && rel > last_user_end &&
            st_agent_state(k->agent) == ST_TURN_LISTENING) {
            if (!end_at)
                end_at = rel + (uint64_t)((sc->tail_s + GAP_S) * RATE);
            if (rel >= end_at)
                break;
        } else {
            end_at = 0;
        }
        if (p.next == nt && rel > last_user_end + (uint64_t)(STUCK_S * RATE) &&
            st_agent_state(k->agent) != ST_TURN_LISTENING &&
            k->pos < p.last_change + (uint64_t)(STUCK_S * RATE)) {
            k->L.noise_busy++; /* not stuck: noise keeps starting turns that end */
            break;
        }
        if (p.next == nt && rel > last_user_end + (uint64_t)(STUCK_S * RATE) &&
            st_agent_state(k->agent) != ST_TURN_LISTENING) {
            if (!k->L.stuck++)
                snprintf(k->L.stuck_what, sizeof k->L.stuck_what,
                         "%s (pass %llu): the agent still '%s' %.0f s after the last user "
                         "speech (at %.1f s)",
                         sc->name, (unsigned long long)k->pass_no,
                         st_turn_state_name(st_agent_state(k->agent)), STUCK_S,
                         (double)(p.base + last_user_end) / RATE);
            break;
        }
        if (rel > (uint64_t)(MAX_PASS_S * RATE)) {
            rc = cli_fail(CMD,
                          "%s (pass %llu, from %.1f s): did not end within %.0f s: %zu of %zu "
                          "turns placed, the agent %s, the last user speech ended at %.1f s",
                          sc->path, (unsigned long long)k->pass_no, (double)p.base / RATE,
                          MAX_PASS_S, p.next, nt, st_turn_state_name(st_agent_state(k->agent)),
                          (double)(p.base + last_user_end) / RATE);
            goto done;
        }
    }
    /* this pass's turns in the ledger */
    k->L.passes++;
    double cpu_ms_per_s = (process_cpu_s() - cpu0) * 1000.0 / ((double)(k->pos - pos0) / RATE);
    if (!s->passes++)
        s->cpu_first = cpu_ms_per_s;
    s->cpu_last = cpu_ms_per_s;
    for (size_t i = 0; i < nt; i++) {
        k->L.turns++;
        if (!answered_kind(&sc->turns[i]))
            continue;
        k->L.answerable++;
        if (p.answered[i])
            k->L.answered++;
        else if (p.superseded[i])
            k->L.unanswered_superseded++;
        else if (p.dropped[i])
            k->L.unanswered_dropped++;
        else if (p.stopped[i])
            k->L.unanswered_stopped++;
        else if (p.echo[i])
            k->L.unanswered_echo++;
        else if (p.resumed[i])
            k->L.unanswered_resumed++;
        else {
            bool merged = false;
            for (size_t j = i + 1; j < nt && !merged; j++)
                merged = p.req[j] >= 0;
            if (merged)
                k->L.unanswered_merged++;
            else {
                size_t l = strlen(k->L.lost_what);
                if (k->L.unanswered_lost++ < 4)
                    snprintf(k->L.lost_what + l, sizeof k->L.lost_what - l,
                             "%s%s/%s (%s, pass %llu, %u words heard)", l ? ", " : "", sc->name,
                             sc->turns[i].name, st_turn_kind_name(sc->turns[i].kind),
                             (unsigned long long)k->pass_no, p.words[i]);
            }
        }
    }
done:
    k->ps = NULL;
    st_room_destroy(&room);
    st_scenario_noise_destroy(&noise);
    free(p.placed);
    free(p.ue);
    free(p.as);
    free(p.ae);
    free(p.req);
    free(p.truth);
    free(p.dropped);
    free(p.superseded);
    free(p.answered);
    free(p.stopped);
    free(p.echo);
    free(p.resumed);
    free(p.words);
    return rc;
}

/* The agent's callback goes through the soak to the pass being played. */
static void on_event_soak(const st_agent_event *e, void *user_data)
{
    soak *k = user_data;
    if (k->ps)
        on_event(e, k->ps);
}

/* ---- the report ---------------------------------------------------------------------- */

typedef struct {
    double first[2], last[2];  /* p50, p95 */
    double shift[2];           /* the deciles' and the p95's shift, in limits (base/stats.c) */
    double p_value[2];         /* the permutation test's, NAN when not compared */
    int n_first, n_last;
    bool compared[2], ok;      /* p50, p95 compared (checked, enough values) */
} drift;

static const double drift_pct[2] = {50, 95};

/* How far the last window's percentile may be from the first window's v:
   DRIFT_LIMIT of it, but never less than one block. At a 42.5 ms barge-in
   median 10 % is 4 ms, less than the step the measure moves in: without
   the floor the check would ask the two windows for the same block count,
   and one barge-in decided a block later in either window would fail it. */
static double drift_limit_ms(double v)
{
    double l = DRIFT_LIMIT * fabs(v);
    return l > DRIFT_FLOOR_MS ? l : DRIFT_FLOOR_MS;
}

/* The first window against the last: the centre (the nine deciles) and the
   p95. Each percentile's difference is taken in units of its limit
   (drift_limit_ms: 10 % or one block) and the centre's shift is the median
   of the nine (base/stats.c, st_shift_test). A check fails when the shift is
   beyond 1 (the limit) and a permutation test of the two windows' values
   (DRIFT_ROUNDS random splits) gives it a p-value under DRIFT_ALPHA. Why
   not the p50 alone: the voice-to-voice times are two clusters (a request
   known complete is answered after ~120 ms, a fallback wait after ~650 ms);
   the median sits in the gap and moves by tens of ms when one turn changes
   cluster, as at 14:03 on 30 Nov (p50 -16.9 %, docs/RELIABILITY.md). A
   slowdown every turn shares moves every decile (tests/test_base.c: 15 % on
   80 values each gives 1.5 limits, p 0.003). `scratch` holds 2 * cap
   doubles. */
static drift series_drift(const series *s, bool checked, double first_end_s, double last_start_s,
                          double end_s, double *scratch, size_t cap)
{
    static const double deciles[9] = {10, 20, 30, 40, 50, 60, 70, 80, 90};
    drift d = {0};
    d.first[0] = window_pct(s, 0, first_end_s, 50, scratch, &d.n_first);
    d.first[1] = window_pct(s, 0, first_end_s, 95, scratch, &d.n_first);
    d.last[0] = window_pct(s, last_start_s, end_s + 1, 50, scratch, &d.n_last);
    d.last[1] = window_pct(s, last_start_s, end_s + 1, 95, scratch, &d.n_last);
    size_t n1 = window_values(s, 0, first_end_s, scratch);
    size_t n2 = window_values(s, last_start_s, end_s + 1, scratch + cap);
    d.ok = true;
    for (int q = 0; q < 2; q++) {
        double beyond = 1 - drift_pct[q] / 100;
        d.shift[q] = d.p_value[q] = NAN;
        d.compared[q] = checked && d.n_first * beyond >= MIN_TAIL_N - 1e-9 &&
                        d.n_last * beyond >= MIN_TAIL_N - 1e-9;
        if (!d.compared[q])
            continue;
        const double *pct = q ? &drift_pct[1] : deciles;
        size_t n_pct = q ? 1 : 9;
        if (st_shift_test(scratch, n1, scratch + cap, n2, pct, n_pct, DRIFT_LIMIT,
                          DRIFT_FLOOR_MS, DRIFT_ROUNDS, DRIFT_SEED, &d.shift[q],
                          &d.p_value[q]) != ST_OK) {
            /* out of memory: judge on the percentile's size alone */
            d.shift[q] = (d.last[q] - d.first[q]) / drift_limit_ms(d.first[q]);
            d.p_value[q] = 0;
        }
        if (fabs(d.shift[q]) > 1 && d.p_value[q] < DRIFT_ALPHA)
            d.ok = false;
    }
    return d;
}

/* The `show` slowest barge-ins with t in [t0, t1), slowest first. */
static void print_slowest(const barge_rec *b, size_t n, double t0, double t1, int show)
{
    double last = INFINITY;
    size_t last_i = SIZE_MAX;
    for (int k = 0; k < show; k++) {
        size_t best = SIZE_MAX;
        for (size_t i = 0; i < n; i++) {
            if (b[i].t_s < t0 || b[i].t_s >= t1)
                continue;
            bool below = b[i].ms < last || (b[i].ms == last && i > last_i);
            if (below && (best == SIZE_MAX || b[i].ms > b[best].ms))
                best = i;
        }
        if (best == SIZE_MAX)
            break;
        printf("%s%s/%s %.1f ms (%s)", k ? ", " : " ", b[best].scenario,
               b[best].turn ? b[best].turn : "-", b[best].ms,
               b[best].then == 'i' ? "interrupted" : b[best].then == 'r' ? "resumed" : "-");
        last = b[best].ms;
        last_i = best;
    }
}

static void json_num(FILE *f, double x)
{
    if (isfinite(x))
        fprintf(f, "%.3f", x);
    else
        fprintf(f, "null");
}

int st_cmd_soak(int argc, char **argv)
{
    char (*files)[512] = calloc(MAX_FILES, sizeof *files);
    int n_files = 0, status = 0;
    double minutes = 60;
    const char *json = NULL, *asr = NULL, *model = NULL, *data = NULL, *vad = NULL;
    if (!files)
        return cli_fail(CMD, "out of memory");
    for (int a = 1; a < argc && !status; a++) {
        const char *o = argv[a];
        bool has = a + 1 < argc;
        if (!strcmp(o, "-h") || !strcmp(o, "--help")) {
            usage(stdout);
            free(files);
            return 0;
        } else if (has && !strcmp(o, "--minutes")) {
            if (!cli_parse_double(CMD, "--minutes", argv[++a], 0.05, 24 * 60, &minutes))
                status = 2;
        } else if (has && !strcmp(o, "--scenario")) {
            status = cli_scenario_add_path(CMD, argv[++a], files, &n_files, MAX_FILES);
        } else if (!strcmp(o, "--json") && has && argv[a + 1][0] != '-') {
            json = argv[++a];
        } else if (!strcmp(o, "--json")) {
            json = "-";
        } else if (has && !strcmp(o, "--asr")) {
            asr = argv[++a];
        } else if (has && !strcmp(o, "--vad")) {
            vad = argv[++a];
        } else if (has && !strcmp(o, "--model")) {
            model = argv[++a];
        } else if (has && !strcmp(o, "--data")) {
            data = argv[++a];
        } else {
            usage(stderr);
            status = 2;
        }
    }
    if (status) {
        free(files);
        return status;
    }
    if (!n_files)
        cli_scenario_add_default(CMD, files, &n_files, MAX_FILES);
    char asr_buf[4096], lm_buf[4096], vad_buf[4096];
    const char *asr_path = cli_agent_asr(CMD, asr, asr_buf, sizeof asr_buf);
    const char *vad_path = cli_vad_model(vad, false, vad_buf, sizeof vad_buf);
    const char *lm_path = cli_agent_find_model(model, "SPIKETALK_DIALOGUE_MODEL",
                                               "models/dialogue.stnn", lm_buf, sizeof lm_buf);
    if (!asr_path) {
        free(files);
        return 1;
    }
    scen *scs = calloc((size_t)(n_files ? n_files : 1), sizeof *scs);
    soak *k = calloc(1, sizeof *k);
    double *scratch = NULL;
    int n_sc = 0;
    FILE *jf = NULL;
    cli_synth_cache *synth = cli_synth_cache_new(16, RATE);
    if (!scs || !k || !synth) {
        status = cli_fail(CMD, "out of memory");
        goto done;
    }
    /* load and render every scenario once */
    st_scenario_render_params rp = st_scenario_render_default_params();
    rp.data_dir = data;
    rp.synth = cli_scenario_synth;
    rp.synth_data = synth;
    for (int i = 0; i < n_files; i++) {
        scen *s = &scs[n_sc];
        int rc = st_scenario_load(files[i], &s->sc);
        if (rc) {
            status = cli_fail_lib(CMD, rc, files[i]);
            goto done;
        }
        n_sc++;
        size_t nt = s->sc.n_turns;
        s->clips = calloc(nt ? nt : 1, sizeof *s->clips);
        s->truth = calloc(nt ? nt : 1, sizeof *s->truth);
        s->offset0 = calloc(nt ? nt : 1, sizeof *s->offset0);
        if (!s->clips || !s->truth || !s->offset0) {
            status = cli_fail(CMD, "out of memory");
            goto done;
        }
        s->seed0 = s->sc.seed;
        for (size_t t = 0; t < nt; t++) {
            s->offset0[t] = s->sc.turns[t].at.offset_s;
            if ((rc = st_scenario_render_turn(&s->sc, t, &rp, &s->clips[t], &s->truth[t]))) {
                status = cli_fail_lib(CMD, rc, files[i]);
                goto done;
            }
        }
    }
    cli_synth_cache_clear(synth); /* every clip is rendered: the voices are not needed again */
    if (!n_sc) {
        status = cli_fail(CMD, "no scenarios (--scenario FILE, or run from the repository)");
        goto done;
    }
    k->target_s = minutes * 60;
    double win_s = k->target_s / 4 < WINDOW_S ? k->target_s / 4 : WINDOW_S;
    k->warm_s = win_s;
    k->data_dir = data;
    /* fixed tables: a sample per answer at most every 0.5 s of conversation */
    size_t cap = (size_t)(k->target_s * 2) + 4096;
    for (int m = 0; m < S_N; m++) {
        k->ser[m].cap = cap;
        k->ser[m].t_s = malloc(cap * sizeof(double));
        k->ser[m].v = malloc(cap * sizeof(double));
        if (!k->ser[m].t_s || !k->ser[m].v) {
            status = cli_fail(CMD, "out of memory");
            goto done;
        }
    }
    k->cap_rss_min = (size_t)(minutes * 2) + 64;
    k->cap_barge = cap;
    if (!(k->barge = malloc(cap * sizeof *k->barge))) {
        status = cli_fail(CMD, "out of memory");
        goto done;
    }
    if (!(scratch = malloc(2 * cap * sizeof *scratch)) ||
        !(k->rss_min = malloc(k->cap_rss_min * sizeof *k->rss_min))) {
        status = cli_fail(CMD, "out of memory");
        goto done;
    }
    if (json && strcmp(json, "-") && !(jf = fopen(json, "w"))) {
        status = cli_fail(CMD, "cannot create '%s'", json);
        goto done;
    }
    st_agent_params ap = st_agent_default_params();
    ap.asr_model = asr_path;
    ap.vad_model = vad_path;
    ap.lm_model = lm_path;
    ap.clock_hour = 10;
    ap.clock_minute = 30;
    ap.on_event = on_event_soak;
    ap.user_data = k;
    int rc;
    if (!(k->agent = st_agent_new(&ap, &rc))) {
        status = cli_fail_lib(CMD, rc, "starting the agent");
        goto done;
    }
    fprintf(stderr,
            "spiketalk soak: %.0f virtual minutes, %d scenarios looped; warm-up: the first "
            "loop (%.0f s if the run is shorter)\n",
            minutes, n_sc, win_s);
    cli_progress_init(&k->prog);
    k->next_note_s = k->target_s / 10;
    k->rss_peak = rss_bytes();
    double rss_start = k->rss_peak;
    double wall0 = st_now_s();
    struct timespec cpu0, cpu1;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu0);
    k->cpu_mark_s = process_cpu_s();
    /* Whole loops over the set: once the first is done, as many as make
       the time asked (two at least). The last loop repeats the first one's
       seeds and jitter exactly (the loops between vary), so the two differ
       only by what an hour did to the agent. Under one loop: by time. */
    uint64_t nsc = (uint64_t)n_sc, n_loops = 0;
    while (!status) {
        bool at_loop = k->pass_no % nsc == 0;
        if (at_loop && k->pass_no && ++k->loops == 1) {
            k->rss_loop1 = rss_bytes();
            k->loop1_end_s = (double)k->pos / RATE;
            n_loops = (uint64_t)ceil(k->target_s / k->loop1_end_s - 0.05);
            if (n_loops < 2)
                n_loops = 2;
        }
        if (n_loops ? k->loops >= n_loops : (double)k->pos / RATE >= k->target_s) {
            if (at_loop && k->loops <= MAX_LOOPS) {
                k->loop_cpu_s[k->loops] = process_cpu_s();
                k->loop_at_s[k->loops] = (double)k->pos / RATE;
            }
            break;
        }
        if (at_loop) {
            k->last_loop_s = (double)k->pos / RATE;
            uint64_t li = k->pass_no / nsc;
            if (li <= MAX_LOOPS) {
                k->loop_cpu_s[li] = process_cpu_s();
                k->loop_at_s[li] = (double)k->pos / RATE;
            }
        }
        bool last = n_loops && k->loops == n_loops - 1;
        status = run_pass(k, &scs[k->pass_no % nsc], last ? k->pass_no % nsc : k->pass_no);
        k->pass_no++;
    }
    cli_progress_done(&k->prog);
    if (status)
        goto done;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu1);
    double wall_s = st_now_s() - wall0;
    double cpu_s = (double)(cpu1.tv_sec - cpu0.tv_sec) + 1e-9 * (double)(cpu1.tv_nsec - cpu0.tv_nsec);
    double rss_end = rss_bytes();
    if (rss_end > k->rss_peak)
        k->rss_peak = rss_end;
    double end_s = (double)k->pos / RATE;
    if (!k->warm_taken) {   /* runs shorter than the warm-up: not reachable (warm = 1/4) */
        k->rss_warm = rss_end;
        k->warm_taken = true;
    }
    /* windows and warm-up: the first and the last loop over the set when
       there are two; else the first and last quarter (at most 10 min) */
    bool by_loops = k->loops >= 2;
    double first_end_s = by_loops ? k->loop1_end_s : win_s;
    double last_start_s = by_loops ? k->last_loop_s : end_s - win_s;
    double warm_at_s = k->loops >= 1 ? k->loop1_end_s : win_s;
    if (k->loops >= 1)
        k->rss_warm = k->rss_loop1;
    st_agent_stats st;
    st_agent_get_stats(k->agent, &st);
    ledger *L = &k->L;
    L->open_at_end = k->L.speaking - k->L.done - k->L.interrupted;
    double growth = rss_end - k->rss_warm;
    /* the warm-up is the first loop: a shorter run has none to measure from */
    bool mem_checked = k->loops >= 1;
    bool mem_ok = !mem_checked || growth < GROWTH_LIMIT_B;
    /* the ledger: every answerable turn answered or counted; every request
       answered; every answer started ended; the agent's own counters agree */
    /* a request ends as an answer started, or one the user talked over
       before its first sample (thinking -> user speaking) */
    uint64_t req_closed = L->speaking + L->supersede_ev + L->replaced_ev;
    uint64_t req_open = L->requests > req_closed ? L->requests - req_closed : 0;
    uint64_t unaccounted = L->unanswered_lost + L->ledger_errors + req_open + L->open_at_end +
                           st.stale_samples + L->stuck;
    /* the agent counts every answer it begins: one a request, also one the
       user talked over before its first sample (that term was missing: the
       check failed the first time a soak had such a request) */
    bool counters_ok = st.answers == L->requests && L->requests == req_closed;
    bool ledger_ok = unaccounted == 0 && counters_ok;
    drift d[S_N];
    bool drift_ok = true;
    for (int m = 0; m < S_N; m++) {
        d[m] = series_drift(&k->ser[m], series_checked[m], first_end_s, last_start_s, end_s,
                            scratch, cap);
        drift_ok = drift_ok && d[m].ok;
    }
    bool pass = mem_ok && ledger_ok && drift_ok;
    /* the same scenario's last pass against its first: CPU drift free of the mix */
    double ratios[MAX_FILES];
    int n_ratio = 0;
    for (int i = 0; i < n_sc; i++)
        if (scs[i].passes >= 2 && scs[i].cpu_first > 0)
            ratios[n_ratio++] = scs[i].cpu_last / scs[i].cpu_first;
    double ratio_lo = NAN, ratio_hi = NAN;
    for (int i = 0; i < n_ratio; i++) {
        if (!(ratios[i] >= ratio_lo))
            ratio_lo = ratios[i];
        if (!(ratios[i] <= ratio_hi))
            ratio_hi = ratios[i];
    }
    double ratio_med = n_ratio ? cli_median(ratios, n_ratio) : NAN;

    if (!json || jf) {
        printf("\nspiketalk soak: %.1f min of conversation (virtual) in %.1f s wall, %.1f s CPU "
               "(real-time factor %.4f); %llu scenario passes; agent %s, VAD read-out %s, "
               "dialogue model %s\n",
               end_s / 60, wall_s, cpu_s, cpu_s / end_s, (unsigned long long)L->passes,
               asr_path, vad_path ? vad_path : "hand-designed",
               lm_path ? lm_path : "MISSING (every answer says so)");
        printf("\n  memory (resident, /proc/self/statm)\n");
        printf("    start %.1f MB, after warm-up (%.0f s) %.2f MB, end %.2f MB, peak %.1f MB\n",
               rss_start / 1048576, warm_at_s, k->rss_warm / 1048576, rss_end / 1048576,
               k->rss_peak / 1048576);
        printf("    growth after warm-up %+.3f MB (limit 1 MB)   %s\n", growth / 1048576,
               !mem_checked ? "not checked: the run ended inside the first loop (the warm-up)"
               : mem_ok     ? "ok"
                            : "FAIL");
        printf("    every 10 min (MB):");
        for (size_t i = 9; i < k->n_rss_min; i += 10)
            printf(" %.2f", k->rss_min[i] / 1048576);
        printf("\n");
        printf("\n  ledger\n");
        printf("    user turns %llu, of which answerable %llu: answered %llu; not answered, "
               "counted: ended without a request (no word heard) %llu, merged into a later request "
               "%llu, superseded (user went on) %llu, interrupted the agent without a request "
               "%llu, judged the agent's echo %llu, paused the agent and judged nothing %llu; "
               "unaccounted %llu\n",
               (unsigned long long)L->turns, (unsigned long long)L->answerable,
               (unsigned long long)L->answered, (unsigned long long)L->unanswered_dropped,
               (unsigned long long)L->unanswered_merged,
               (unsigned long long)L->unanswered_superseded,
               (unsigned long long)L->unanswered_stopped, (unsigned long long)L->unanswered_echo,
               (unsigned long long)L->unanswered_resumed, (unsigned long long)L->unanswered_lost);
        printf("    requests %llu (%llu attributed to no turn) = answers started %llu + talked "
               "over before the first sample %llu + replaced by the same turn with a late word "
               "%llu; answers written by the LM %llu; started = "
               "played to the end %llu + interrupted %llu + open %llu; agent counters: "
               "answers %llu, interruptions %llu, resumes %llu, dropped turns %llu, stale "
               "samples %llu\n",
               (unsigned long long)L->requests, (unsigned long long)L->spurious_requests,
               (unsigned long long)L->speaking, (unsigned long long)L->supersede_ev,
               (unsigned long long)L->replaced_ev, (unsigned long long)L->answers, (unsigned long long)L->done, (unsigned long long)L->interrupted,
               (unsigned long long)L->open_at_end, (unsigned long long)st.answers,
               (unsigned long long)st.interruptions, (unsigned long long)st.resumes,
               (unsigned long long)st.dropped_turns, (unsigned long long)st.stale_samples);
        printf("    VAD onsets %llu, offsets %llu; pauses %llu, resumes %llu; event-order "
               "errors %llu   %s\n",
               (unsigned long long)L->onsets, (unsigned long long)L->offsets,
               (unsigned long long)L->pauses, (unsigned long long)L->resumes,
               (unsigned long long)L->ledger_errors, ledger_ok ? "ok" : "FAIL");
        if (L->unanswered_lost)
            printf("    UNACCOUNTED turns (no request, no drop, nothing the agent counted); the "
                   "first: %s\n",
                   L->lost_what);
        if (L->stuck)
            printf("    STUCK: %llu passes ended with the agent not listening; the first: %s\n",
                   (unsigned long long)L->stuck, L->stuck_what);
        if (L->noise_busy)
            printf("    %llu passes ended with the background still starting turns (the VAD "
                   "firing on noise; each turn ended, reported only)\n",
                   (unsigned long long)L->noise_busy);
        if (by_loops)
            printf("\n  latency, the first loop over the %d scenarios (0-%.0f s) vs the last "
                   "(%.0f-%.0f s), %llu loops (limit: the deciles' median shift and the p95 "
                   "within 10 %% or one 10 ms block, whichever is larger, or a shift a "
                   "permutation test gives p >= %.2f)\n",
                   n_sc, first_end_s, last_start_s, end_s, (unsigned long long)k->loops,
                   DRIFT_ALPHA);
        else
            printf("\n  latency, first %.0f s vs last %.0f s (fewer than two loops over the "
                   "scenarios; limit: the deciles' median shift and the p95 within 10 %% or one "
                   "10 ms block, whichever is larger, or a shift a permutation test gives "
                   "p >= %.2f)\n",
                   win_s, win_s, DRIFT_ALPHA);
        printf("    %-20s %5s %8s %8s   %5s %8s %8s   %7s %7s   %6s %6s %6s %6s\n",
               "metric (ms)", "n", "p50", "p95", "n", "p50", "p95", "p50 %", "p95 %", "centre",
               "p", "p95", "p");
        for (int m = 0; m < S_N; m++)
            printf("    %-20s %5d %8.1f %8.1f   %5d %8.1f %8.1f   %+7.1f %+7.1f   %+6.2f %6.3f "
                   "%+6.2f %6.3f   %s\n",
                   series_names[m], d[m].n_first, d[m].first[0], d[m].first[1], d[m].n_last,
                   d[m].last[0], d[m].last[1], 100 * (d[m].last[0] / d[m].first[0] - 1),
                   100 * (d[m].last[1] / d[m].first[1] - 1), d[m].shift[0], d[m].p_value[0],
                   d[m].shift[1], d[m].p_value[1],
                   !series_checked[m]                    ? "reported only"
                   : !d[m].compared[0] && !d[m].compared[1] ? "too few to compare"
                   : !d[m].ok                             ? "FAIL"
                   : !d[m].compared[1] ? "ok (p50; p95 too few: under 100 a window)"
                                       : "ok");
        for (int m = 0; m < S_N; m++)
            printf("      %s: %s\n", series_names[m], series_help[m]);
        printf("    barge-ins, the slowest of the first window:");
        print_slowest(k->barge, k->n_barge, 0, first_end_s, 3);
        printf("\n                   ... of the last:");
        print_slowest(k->barge, k->n_barge, last_start_s, end_s + 1, 3);
        printf("\n");
        if (by_loops) {
            printf("    barge-in p50 / p95 (n), loop by loop (the loops between vary the input):");
            for (uint64_t l = 0; l < k->loops && l < MAX_LOOPS; l++) {
                int nb;
                double t0 = k->loop_at_s[l], t1 = l + 1 < k->loops ? k->loop_at_s[l + 1] : end_s + 1;
                double b50 = window_pct(&k->ser[S_BARGE], t0, t1, 50, scratch, &nb);
                double b95 = window_pct(&k->ser[S_BARGE], t0, t1, 95, scratch, &nb);
                printf(" %.1f/%.1f (%d)", b50, b95, nb);
            }
            printf("\n");
            printf("    CPU per second of conversation, loop by loop (ms/s):");
            for (uint64_t l = 0; l < k->loops && l < MAX_LOOPS; l++)
                printf(" %.1f", (k->loop_cpu_s[l + 1] - k->loop_cpu_s[l]) * 1000.0 /
                                    (k->loop_at_s[l + 1] - k->loop_at_s[l]));
            printf("\n");
        }
        if (n_ratio)
            printf("    CPU per second, each scenario's last pass / its first (%d scenarios): "
                   "median %.3f, range %.3f .. %.3f (reported only: a shared machine)\n",
                   n_ratio, ratio_med, ratio_lo, ratio_hi);
        else
            printf("    CPU per second, last pass / first pass of the same scenario: no "
                   "scenario ran twice (a longer --minutes)\n");
        printf("\n  soak %s\n", pass ? "PASSED" : "FAILED");
    }
    if (json) {
        FILE *f = jf ? jf : stdout;
        fprintf(f, "{\"command\": \"soak\", \"version\": \"%s\", \"minutes\": %.3f, "
                   "\"virtual_s\": %.2f, \"wall_s\": %.2f, \"cpu_s\": %.2f, \"passes\": %llu, "
                   "\"loops\": %llu, \"first_window_s\": [0, %.1f], \"last_window_s\": "
                   "[%.1f, %.1f], \"warm_up_s\": %.1f,\n",
                ST_VERSION_STRING, minutes, end_s, wall_s, cpu_s, (unsigned long long)L->passes,
                (unsigned long long)k->loops, first_end_s, last_start_s, end_s, warm_at_s);
        fprintf(f, " \"memory\": {\"rss_start_b\": %.0f, \"rss_warm_b\": %.0f, \"rss_end_b\": "
                   "%.0f, \"rss_peak_b\": %.0f, \"growth_b\": %.0f, \"checked\": %s, \"ok\": %s},\n",
                rss_start, k->rss_warm, rss_end, k->rss_peak, growth,
                mem_checked ? "true" : "false", mem_ok ? "true" : "false");
        fprintf(f, " \"rss_each_minute_b\": [");
        for (size_t i = 0; i < k->n_rss_min; i++)
            fprintf(f, "%s%.0f", i ? ", " : "", k->rss_min[i]);
        fprintf(f, "],\n");
        fprintf(f, " \"ledger\": {\"turns\": %llu, \"answerable\": %llu, \"answered\": %llu, "
                   "\"dropped\": %llu, \"merged\": %llu, \"superseded\": %llu, \"stopped\": %llu, "
                   "\"echo\": %llu, \"resumed\": %llu, "
                   "\"unaccounted\": %llu, \"requests\": %llu, \"replaced_by_late_word\": %llu, \"spurious_requests\": %llu, "
                   "\"answers\": %llu, \"started\": %llu, \"done\": %llu, \"interrupted\": %llu, "
                   "\"open\": %llu, \"order_errors\": %llu, \"stuck_passes\": %llu, \"noise_busy_passes\": %llu, \"agent_answers\": %llu, "
                   "\"agent_dropped_turns\": %llu, \"stale_samples\": %llu, \"ok\": %s},\n",
                (unsigned long long)L->turns, (unsigned long long)L->answerable,
                (unsigned long long)L->answered, (unsigned long long)L->unanswered_dropped,
                (unsigned long long)L->unanswered_merged,
                (unsigned long long)L->unanswered_superseded,
                (unsigned long long)L->unanswered_stopped, (unsigned long long)L->unanswered_echo,
                (unsigned long long)L->unanswered_resumed, (unsigned long long)L->unanswered_lost,
                (unsigned long long)L->requests, (unsigned long long)L->replaced_ev,
                (unsigned long long)L->spurious_requests, (unsigned long long)L->answers,
                (unsigned long long)L->speaking, (unsigned long long)L->done,
                (unsigned long long)L->interrupted, (unsigned long long)L->open_at_end,
                (unsigned long long)L->ledger_errors, (unsigned long long)L->stuck,
                (unsigned long long)L->noise_busy, (unsigned long long)st.answers,
                (unsigned long long)st.dropped_turns, (unsigned long long)st.stale_samples,
                ledger_ok ? "true" : "false");
        fprintf(f, " \"latency\": {");
        for (int m = 0; m < S_N; m++) {
            fprintf(f, "%s\"%s\": {\"first_n\": %d, \"first_p50\": ", m ? ", " : "",
                    series_names[m], d[m].n_first);
            json_num(f, d[m].first[0]);
            fprintf(f, ", \"first_p95\": ");
            json_num(f, d[m].first[1]);
            fprintf(f, ", \"last_n\": %d, \"last_p50\": ", d[m].n_last);
            json_num(f, d[m].last[0]);
            fprintf(f, ", \"last_p95\": ");
            json_num(f, d[m].last[1]);
            /* the largest difference the check allows (null: not checked) */
            fprintf(f, ", \"limit_p50\": ");
            json_num(f, series_checked[m] ? drift_limit_ms(d[m].first[0]) : NAN);
            fprintf(f, ", \"limit_p95\": ");
            json_num(f, series_checked[m] ? drift_limit_ms(d[m].first[1]) : NAN);
            /* the shifts in limits (the deciles', the p95's) and their
               permutation p-values (null: not compared) */
            fprintf(f, ", \"shift_deciles\": ");
            json_num(f, d[m].shift[0]);
            fprintf(f, ", \"p_value_deciles\": ");
            json_num(f, d[m].p_value[0]);
            fprintf(f, ", \"shift_p95\": ");
            json_num(f, d[m].shift[1]);
            fprintf(f, ", \"p_value_p95\": ");
            json_num(f, d[m].p_value[1]);
            fprintf(f, ", \"compared_p50\": %s, \"compared_p95\": %s, \"ok\": %s}",
                    d[m].compared[0] ? "true" : "false", d[m].compared[1] ? "true" : "false",
                    d[m].ok ? "true" : "false");
        }
        fprintf(f, "},\n \"barge_ins\": [");
        bool any = false;
        for (size_t i = 0; i < k->n_barge; i++) {
            const barge_rec *b = &k->barge[i];
            bool in_first = b->t_s < first_end_s, in_last = b->t_s >= last_start_s;
            if (!in_first && !in_last)
                continue;
            fprintf(f, "%s\n  {\"window\": \"%s\", \"t_s\": %.2f, \"pass\": %llu, "
                       "\"scenario\": \"%s\", \"turn\": \"%s\", \"ms\": %.1f, \"then\": \"%s\"}",
                    any ? "," : "", in_first ? "first" : "last", b->t_s,
                    (unsigned long long)b->pass, b->scenario, b->turn ? b->turn : "",
                    b->ms, b->then == 'i' ? "interrupted" : b->then == 'r' ? "resumed" : "");
            any = true;
        }
        fprintf(f, "],\n \"cpu_last_over_first_pass\": {\"scenarios\": %d, \"median\": ",
                n_ratio);
        json_num(f, ratio_med);
        fprintf(f, ", \"min\": ");
        json_num(f, ratio_lo);
        fprintf(f, ", \"max\": ");
        json_num(f, ratio_hi);
        fprintf(f, "},\n \"passed\": %s}\n", pass ? "true" : "false");
    }
    if (!pass)
        status = 1;
done:
    if (k) {
        st_agent_destroy(&k->agent);
        for (int m = 0; m < S_N; m++) {
            free(k->ser[m].t_s);
            free(k->ser[m].v);
        }
        free(k->rss_min);
        free(k->barge);
    }
    if (jf && fclose(jf) && !status)
        status = cli_fail(CMD, "cannot write '%s'", json);
    cli_synth_cache_destroy(&synth);
    for (int i = 0; i < n_sc; i++)
        scen_free(&scs[i]);
    free(scs);
    free(k);
    free(scratch);
    free(files);
    return status;
}
