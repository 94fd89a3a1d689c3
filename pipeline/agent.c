/*  pipeline/agent.c - the conversational agent, frame by frame: microphone
    block in, speaker block out, the whole loop of the design on the
    caller's thread in block order (pipeline.h, "The agent"; docs/AGENT.md).

      mic ─▶ echo canceller ─▶ front end ─┬─▶ VAD + double-talk gate ─┐
               ▲ (speexdsp)               └─▶ recognizer (words) ─────┴─▶ turn
               │ reference                                                 │
      speaker ◀┴─ queue (epoch, pause, flush, played counter) ◀─ synthesizer ◀─ LM

    Why one thread and not one stage per box: a conversation in virtual
    time must give the same figures on every run, and stages joined by
    sockets do not (their interleaving is the scheduler's). Here the order
    is the block order, and the compute each answer takes is measured on
    the wall clock and reported beside the virtual-time latency. The same
    parts run as ZeroMQ stages too (stage_vad.c, stage_asr.c, stage_lm.c).

    What it may touch: audio/ (front end, echo canceller), snn/ (VAD,
    recognizer, dialogue LM), tts/. Workload: 100 blocks a second; per block one front-end frame
    (a few µs), the VAD (µs) and the recognizer (ten engine steps, ~50 µs);
    per answer the LM (tens of ms) and the synthesis of the whole answer
    (tens of ms), done at the block that ends the turn. Memory: everything
    but the synthesizer's result of an answer is allocated in st_agent_new().
*/
#include "pipeline_impl.h"

#include "../audio/audio.h"
#include "../snn/asr.h"
#include "../snn/dialogue.h"
#include "../snn/lm.h"
#include "../snn/vad.h"
#include "../tts/tts.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define RATE ST_PIPELINE_RATE_HZ
#define N_MELS 40
#define HISTORY_MAX 64
#define TEXT_MAX 1024
#define WORDS_MAX 512
#define DT_BLOCKS 25           /* double-talk check: the played signal's last 250 ms */
#define DT_NEAR_BLOCKS 2       /* ... against the microphone's last 20 ms */
#define DT_MIN_DB (-25.0)      /* ... the microphone must be within this of it */
#define DT_EARLY_DB (-6.0)     /* ... before the canceller has converged */
#define DT_CONVERGE_BLOCKS 300 /* blocks of the agent's voice it takes (3 s) */
#define DT_PROMOTE_DB 6.0      /* speech judged echo becomes the user's once this
                                  much louder */
#define ECHO_SAFETY_DB 3.0     /* above the tracked residual: it varies by band */
#define ECHO_FRAMES 12         /* the room's tail the echo estimate spans: 120 ms */

typedef struct {
    bool agent, interrupted;
    char text[TEXT_MAX];
    uint64_t start, end;
} entry;

struct st_agent {
    st_agent_params p;
    st_frontend *fe, *fe_ref;
    st_echo *aec;              /* NULL: no canceller */
    float clean[ST_AGENT_BLOCK];
    st_vad_model *vad_model;
    st_vad *vad;
    st_asr *asr;
    st_asr_stream *asr_stream;
    st_lm_model *lm;
    st_tts *tts;
    st_turn *turn;
    double centre_hz[N_MELS];
    float echo_offset;         /* ln of the residual's power ratio */
    double near_e[DT_BLOCKS], far_e[DT_BLOCKS]; /* per block: mic after the
                                  canceller, and what was played */
    size_t dt_at;
    uint64_t ref_blocks;       /* blocks of the agent's voice the canceller has heard */
    bool echo_latched;         /* the VAD's speech was judged the agent's own echo */
    uint64_t echo_onset;       /* where that speech began */
    double echo_near_db;       /* the microphone's level then */
    double resid_db;           /* what the canceller leaves of the played signal,
                                  tracked while the agent speaks (upper envelope) */
    float ref_hist[ECHO_FRAMES][N_MELS]; /* the played signal's recent frames */
    size_t ref_at;
    uint64_t pos;              /* capture index of the next block */
    float prev_out[ST_AGENT_BLOCK]; /* what is being played during this block */

    /* The speaker queue: one answer at a time. */
    float *queue;
    size_t queue_cap, queue_len, played;
    uint32_t queue_epoch;
    bool paused, started;
    uint32_t flushed_epoch;    /* everything below this was flushed */
    st_tts_word words[WORDS_MAX];
    size_t n_words;
    uint64_t answer_start;     /* play index of its first sample */
    uint64_t request_end;

    entry history[HISTORY_MAX];
    size_t n_history, history_head;
    st_agent_stats stats;
    char scratch[TEXT_MAX];
};

st_agent_params st_agent_default_params(void)
{
    st_turn_params turn = st_turn_default_params();
    /* Over the agent's own voice the keyword spotter hears words in the
       echo: only the duration of the user's speech commits a barge-in. */
    turn.barge_on_word = false;
    return (st_agent_params){
        .tts_engine = "espeak",
        .echo_residual_db = -6,
        .echo_cancel = true,
        .max_answer_s = 30,
        .clock_hour = -1,
        .turn = turn,
    };
}

static void emit(st_agent *a, st_agent_event_kind kind, uint64_t sample, uint64_t ref,
                 const char *text, double compute_ms)
{
    if (!a->p.on_event)
        return;
    st_agent_event e = {.kind = kind, .sample = sample, .ref = ref, .text = text,
                        .compute_ms = compute_ms, .epoch = st_turn_epoch(a->turn)};
    a->p.on_event(&e, a->p.user_data);
}

static void on_state(st_turn_state from, st_turn_state to, uint64_t sample, void *user_data)
{
    st_agent *a = user_data;
    if (!a->p.on_event)
        return;
    st_agent_event e = {.kind = ST_AGENT_EV_STATE, .sample = sample, .from = from, .to = to,
                        .epoch = a->turn ? st_turn_epoch(a->turn) : 0};
    a->p.on_event(&e, a->p.user_data);
}

static entry *history_add(st_agent *a, bool agent, const char *text, uint64_t start, uint64_t end)
{
    size_t i;
    if (a->n_history < HISTORY_MAX)
        i = (a->history_head + a->n_history++) % HISTORY_MAX;
    else {
        i = a->history_head;
        a->history_head = (a->history_head + 1) % HISTORY_MAX;
    }
    entry *e = &a->history[i];
    e->agent = agent;
    e->interrupted = false;
    snprintf(e->text, sizeof e->text, "%s", text ? text : "");
    e->start = start;
    e->end = end;
    return e;
}

static entry *history_last(st_agent *a)
{
    return a->n_history ? &a->history[(a->history_head + a->n_history - 1) % HISTORY_MAX] : NULL;
}

st_agent *st_agent_new(const st_agent_params *p, int *err)
{
    int rc = ST_OK;
    st_agent *a = calloc(1, sizeof *a);
    if (!a) {
        rc = st_error(ST_ERR_NOMEM, "agent: out of memory");
        goto fail;
    }
    a->p = p ? *p : st_agent_default_params();
    if (!a->p.asr_model) {
        rc = st_error(ST_ERR_INVALID, "agent: no recognizer model (asr_model) given");
        goto fail;
    }
    if (!(a->p.max_answer_s >= 1 && a->p.max_answer_s <= 600)) {
        rc = st_error(ST_ERR_INVALID, "agent: max_answer_s %g is not 1..600", a->p.max_answer_s);
        goto fail;
    }
    st_frontend_params fp = st_frontend_default_params();
    if (!(a->fe = st_frontend_new(&fp, &rc)) || !(a->fe_ref = st_frontend_new(&fp, &rc)))
        goto fail;
    if (st_frontend_hop_samples(a->fe) != ST_AGENT_BLOCK || st_frontend_n_mels(a->fe) != N_MELS) {
        rc = st_error(ST_ERR_INTERNAL, "agent: the front end's defaults are not 10 ms x 40 mels");
        goto fail;
    }
    if (a->p.echo_cancel) {
        st_echo_params ep = st_echo_default_params();
        ep.delay_samples = a->p.echo_delay_samples;
        if (ep.max_delay_samples <= ep.delay_samples)
            ep.max_delay_samples = ep.delay_samples + RATE;
        if (!(a->aec = st_echo_new(&ep, &rc)))
            goto fail;
    }
    st_vad_params vp = st_vad_default_params();
    for (int c = 0; c < N_MELS; c++)
        a->centre_hz[c] = st_frontend_mel_centre_hz(a->fe, c);
    vp.channel_hz = a->centre_hz;
    vp.frontend_delay_samples = st_frontend_delay_samples(a->fe);
    if (!(a->vad_model = st_vad_model_new(&vp, &rc)) || !(a->vad = st_vad_new(a->vad_model, &rc)))
        goto fail;
    a->resid_db = a->p.echo_residual_db;
    a->echo_offset = (float)(a->p.echo_residual_db / 10.0 * log(10.0));
    if (!(a->asr = st_asr_load(a->p.asr_model, &rc)) ||
        !(a->asr_stream = st_asr_stream_new(a->asr, NULL, &rc)))
        goto fail;
    if (st_asr_features(a->asr) != N_MELS) {
        rc = st_error(ST_ERR_FORMAT, "agent: %s takes %zu features, the front end makes %d",
                      a->p.asr_model, st_asr_features(a->asr), N_MELS);
        goto fail;
    }
    if (a->p.lm_model && !(a->lm = st_lm_model_load(a->p.lm_model, &rc)))
        goto fail;
    st_tts_params tp = st_tts_default_params();
    tp.engine = a->p.tts_engine ? a->p.tts_engine : "espeak";
    tp.voice = a->p.tts_voice;
    tp.rate_wpm = a->p.tts_rate_wpm;
    tp.sample_rate_hz = RATE;
    if (!(a->tts = st_tts_new(&tp, &rc)))
        goto fail;
    for (int k = 0; k < ECHO_FRAMES; k++)
        for (int c = 0; c < N_MELS; c++)
            a->ref_hist[k][c] = -23.0f; /* ln(1e-10): the front end's floor */
    if (!(a->turn = st_turn_new(&a->p.turn, on_state, a, &rc)))
        goto fail;
    a->queue_cap = (size_t)(a->p.max_answer_s * RATE);
    if (!(a->queue = malloc(a->queue_cap * sizeof(float)))) {
        rc = st_error(ST_ERR_NOMEM, "agent: out of memory for %g s of answer", a->p.max_answer_s);
        goto fail;
    }
    if (err)
        *err = ST_OK;
    return a;
fail:
    st_agent_destroy(&a);
    if (err)
        *err = rc ? rc : ST_ERR_INTERNAL;
    return NULL;
}

void st_agent_destroy(st_agent **a_p)
{
    if (!a_p || !*a_p)
        return;
    st_agent *a = *a_p;
    st_turn_destroy(&a->turn);
    st_tts_destroy(&a->tts);
    st_lm_model_destroy(&a->lm);
    st_asr_stream_destroy(&a->asr_stream);
    st_asr_destroy(&a->asr);
    st_vad_destroy(&a->vad);
    st_vad_model_destroy(&a->vad_model);
    st_frontend_destroy(&a->fe);
    st_frontend_destroy(&a->fe_ref);
    st_echo_destroy(&a->aec);
    free(a->queue);
    free(a);
    *a_p = NULL;
}

/* ---- the speaker queue ---------------------------------------------------- */

/* The words of the answer whose sound ended by the played counter. */
static void heard_words(st_agent *a, char *out, size_t cap)
{
    size_t len = 0;
    out[0] = '\0';
    for (size_t i = 0; i < a->n_words; i++) {
        if (a->words[i].end > a->played)
            break;
        int n = snprintf(out + len, cap - len, "%s%s", len ? " " : "", a->words[i].text);
        if (n < 0 || (size_t)n >= cap - len)
            break;
        len += (size_t)n;
    }
}

static void flush(st_agent *a, uint64_t now)
{
    entry *last = history_last(a);
    if (a->queue_len && !a->started && last && last->agent)
        a->n_history--; /* never played: the user heard none of it */
    else if (a->queue_len && a->played < a->queue_len) {
        heard_words(a, a->scratch, sizeof a->scratch);
        entry *e = history_last(a);
        if (e && e->agent) {
            snprintf(e->text, sizeof e->text, "%s", a->scratch);
            e->interrupted = true;
            e->end = now;
        }
        a->stats.interruptions++;
        emit(a, ST_AGENT_EV_INTERRUPTED, now, st_turn_barge_onset(a->turn), a->scratch, 0);
    }
    a->flushed_epoch = a->queue_epoch + 1;
    a->queue_len = a->played = 0;
    a->n_words = 0;
    a->paused = a->started = false;
}

static int answer(st_agent *a, uint64_t now, const char *said)
{
    double t0 = st_now_s();
    const char *request = st_turn_request(a->turn);
    char reply[TEXT_MAX];
    if (said) {
        snprintf(reply, sizeof reply, "%s", said);
    } else {
        history_add(a, false, request, st_turn_request_end(a->turn),
                    st_turn_request_end(a->turn));
        emit(a, ST_AGENT_EV_REQUEST, now, st_turn_request_end(a->turn), request, 0);
    }
    if (!said && a->lm) {
        st_dialogue_params dp = st_dialogue_default_params();
        dp.max_tokens = 200;
        dp.tools.hour = a->p.clock_hour;
        dp.tools.minute = a->p.clock_minute;
        int rc = st_dialogue_reply(a->lm, request, &dp, reply, sizeof reply, NULL);
        if (rc)
            return rc;
    } else if (!said)
        snprintf(reply, sizeof reply, "my dialogue model is not installed.");
    st_tts_result r;
    int rc = st_tts_synthesize(a->tts, reply, &r);
    if (rc)
        return rc;
    size_t n = r.frames < a->queue_cap ? r.frames : a->queue_cap;
    memcpy(a->queue, r.samples, n * sizeof(float));
    a->n_words = r.n_words < WORDS_MAX ? r.n_words : WORDS_MAX;
    memcpy(a->words, r.words, a->n_words * sizeof a->words[0]);
    st_tts_result_free(&r);
    a->queue_len = n;
    a->played = 0;
    a->paused = a->started = false;
    a->queue_epoch = st_turn_epoch(a->turn);
    a->request_end = said ? 0 : st_turn_request_end(a->turn); /* 0: nobody asked */
    double ms = (st_now_s() - t0) * 1000;
    history_add(a, true, reply, 0, 0);
    a->stats.answers++;
    emit(a, ST_AGENT_EV_ANSWER, now, a->request_end, reply, ms);
    if (!n) /* nothing to say (should not happen: the LM never gives silence) */
        st_turn_agent_done(a->turn, now);
    return ST_OK;
}

static int act(st_agent *a, int actions, uint64_t now)
{
    if (actions & ST_TURN_DO_INTERRUPT)
        flush(a, now);
    if (actions & ST_TURN_DO_PAUSE && a->queue_len) {
        a->paused = true;
        emit(a, ST_AGENT_EV_PAUSED, now + ST_AGENT_BLOCK, st_turn_barge_onset(a->turn), NULL, 0);
    }
    if (actions & ST_TURN_DO_RESUME && a->paused) {
        a->paused = false;
        a->stats.resumes++;
        emit(a, ST_AGENT_EV_RESUMED, now, 0, NULL, 0);
    }
    if (actions & ST_TURN_DO_ANSWER)
        return answer(a, now, NULL);
    return ST_OK;
}

int st_agent_say(st_agent *a, const char *text)
{
    uint64_t now = a->pos ? a->pos - 1 : 0;
    if (!st_turn_announce(a->turn, now))
        return st_error(ST_ERR_STATE, "agent: cannot speak unasked while %s",
                        st_turn_state_name(st_turn_get_state(a->turn)));
    return answer(a, now, text ? text : "");
}

/* ---- one block -------------------------------------------------------------- */

/* The microphone's last DT_NEAR_BLOCKS, after the canceller, over what
   the speaker played in its loudest block of the last DT_BLOCKS, dB; *playing:
   whether it played anything. */
static double near_far_db(const st_agent *a, bool *playing)
{
    double near = 0, far = 0;
    for (int q = 1; q <= DT_NEAR_BLOCKS; q++)
        near += a->near_e[(a->dt_at + DT_BLOCKS - q) % DT_BLOCKS] / DT_NEAR_BLOCKS;
    for (int q = 0; q < DT_BLOCKS; q++)
        far = a->far_e[q] > far ? a->far_e[q] : far;
    *playing = far >= 1e-7 * ST_AGENT_BLOCK; /* above -70 dBFS */
    return 10 * log10((near + 1e-15) / (far + 1e-15));
}

/* Until the canceller has heard DT_CONVERGE_BLOCKS of the agent's voice its
   residual is loud (speexdsp takes about two seconds in a new room): until
   then a user must be about as loud as the agent's playback. */
static double dt_threshold_db(const st_agent *a)
{
    return a->ref_blocks >= DT_CONVERGE_BLOCKS ? DT_MIN_DB : DT_EARLY_DB;
}

static bool echo_only(const st_agent *a)
{
    bool playing;
    double r = near_far_db(a, &playing);
    return a->aec && playing && r < dt_threshold_db(a);
}

/* Speech that was judged echo turned into a user over the agent. */
static double near_db(const st_agent *a)
{
    double near = 0;
    for (int q = 1; q <= DT_NEAR_BLOCKS; q++)
        near += a->near_e[(a->dt_at + DT_BLOCKS - q) % DT_BLOCKS] / DT_NEAR_BLOCKS;
    return 10 * log10(near + 1e-15);
}

/* Speech judged echo is the user's after all when it grew DT_PROMOTE_DB
   since and is no longer below the agent's signal by DT_MIN_DB (an echo
   tail decays; a voice rises). */
static bool user_over_echo(const st_agent *a)
{
    bool playing;
    double r = near_far_db(a, &playing);
    return playing && r >= dt_threshold_db(a) && near_db(a) >= a->echo_near_db + DT_PROMOTE_DB;
}

int st_agent_process(st_agent *a, const float *mic, float *speaker, uint32_t *epoch)
{
    float feat[2 * N_MELS], echo[2 * N_MELS];
    uint64_t stamp[2], stamp_ref[2];
    size_t used = 0, made = 0, made_ref = 0;
    uint64_t now = a->pos + ST_AGENT_BLOCK - 1;
    int rc;

    /* The microphone, less the echo of what the speaker is playing during
       the same block, and, for the VAD's echo estimate, what it plays. */
    if (a->aec) {
        st_echo_process(a->aec, mic, a->prev_out, a->clean);
        /* How much of the played signal is left, block by block: the
           upper envelope (up at once, down over a second), for the residual
           comes in bursts; never above echo_residual_db. The VAD is told
           that much, ECHO_SAFETY_DB more (its echo input). */
        double ref_e = 0, out_e = 0;
        for (size_t k = 0; k < ST_AGENT_BLOCK; k++) {
            ref_e += (double)a->prev_out[k] * a->prev_out[k];
            out_e += (double)a->clean[k] * a->clean[k];
        }
        a->near_e[a->dt_at] = out_e;
        a->far_e[a->dt_at] = ref_e;
        a->dt_at = (a->dt_at + 1) % DT_BLOCKS;
        if (ref_e > 1e-6 * ST_AGENT_BLOCK)
            a->ref_blocks++;
        if (ref_e > 1e-6 * ST_AGENT_BLOCK && a->p.echo_residual_db > -200) {
            double r = 10 * log10((out_e + 1e-15) / ref_e);
            a->resid_db += (r > a->resid_db ? 0.3 : 0.01) * (r - a->resid_db);
            if (a->resid_db > a->p.echo_residual_db)
                a->resid_db = a->p.echo_residual_db;
            a->echo_offset = (float)((a->resid_db + ECHO_SAFETY_DB) / 10.0 * log(10.0));
        }
        mic = a->clean;
    }
    st_frontend_process(a->fe, mic, ST_AGENT_BLOCK, feat, stamp, 2, &used, &made);
    st_frontend_process(a->fe_ref, a->prev_out, ST_AGENT_BLOCK, echo, stamp_ref, 2, &used,
                        &made_ref);
    for (size_t j = 0; j < made; j++) {
        const float *ech = NULL;
        if (a->p.echo_residual_db > -200 && j < made_ref) {
            /* The room smears the played signal over its tail: the echo
               estimate per channel is the loudest of the recent frames. */
            memcpy(a->ref_hist[a->ref_at], echo + j * N_MELS, sizeof a->ref_hist[0]);
            a->ref_at = (a->ref_at + 1) % ECHO_FRAMES;
            for (int c = 0; c < N_MELS; c++) {
                float m = a->ref_hist[0][c];
                for (int k = 1; k < ECHO_FRAMES; k++)
                    m = a->ref_hist[k][c] > m ? a->ref_hist[k][c] : m;
                echo[j * N_MELS + c] = m + a->echo_offset;
            }
            ech = echo + j * N_MELS;
        }
        st_vad_event ev[1];
        size_t n_ev = 0;
        if ((rc = st_vad_process(a->vad, feat + j * N_MELS, stamp + j, ech, 1, ev, 1, &n_ev)))
            return rc;
        for (size_t k = 0; k < n_ev; k++) {
            bool on = ev[k].kind == ST_VAD_ONSET;
            /* Double talk: speech while the agent plays counts only when
               the microphone, after the canceller, is within DT_MIN_DB of
               what was played; the canceller's residual bursts are 35-45 dB
               below it, a user over the agent 0-15 dB. */
            if (on && echo_only(a)) {
                a->echo_latched = true;
                a->echo_onset = ev[k].sample_index;
                a->echo_near_db = near_db(a);
                a->stats.echo_onsets++;
                continue;
            }
            if (!on && a->echo_latched) {
                a->echo_latched = false;
                continue;
            }
            emit(a, on ? ST_AGENT_EV_ONSET : ST_AGENT_EV_OFFSET, ev[k].sample_index,
                 ev[k].decided_index, NULL, 0);
            int acts = on ? st_turn_onset(a->turn, ev[k].sample_index, now)
                          : st_turn_offset(a->turn, ev[k].sample_index, now);
            if ((rc = act(a, acts, now)))
                return rc;
        }
        st_asr_event w;
        if (st_asr_stream_push(a->asr_stream, feat + j * N_MELS, stamp[j], &w, NULL) == 1 &&
            w.word >= 2) {
            const char *word = st_asr_word(a->asr, (size_t)w.word);
            emit(a, ST_AGENT_EV_WORD, w.end_stamp, w.start_stamp, word, 0);
            if ((rc = act(a, st_turn_word(a->turn, word, w.start_stamp, w.end_stamp, now), now)))
                return rc;
        }
    }
    if (a->echo_latched && user_over_echo(a)) {
        /* The user got loud within what was judged echo: their speech
           began where the VAD placed it. */
        a->echo_latched = false;
        emit(a, ST_AGENT_EV_ONSET, a->echo_onset, now, NULL, 0);
        if ((rc = act(a, st_turn_onset(a->turn, a->echo_onset, now), now)))
            return rc;
    }
    if ((rc = act(a, st_turn_tick(a->turn, now), now)))
        return rc;

    /* The speaker: the next block of the answer, unless paused or flushed. */
    uint64_t play_at = a->pos + ST_AGENT_BLOCK; /* played during the next block */
    uint32_t ep = 0;
    if (a->queue_len && !a->paused && a->played < a->queue_len) {
        if (a->queue_epoch < a->flushed_epoch)
            a->stats.stale_samples += ST_AGENT_BLOCK; /* cannot happen: flush empties */
        size_t n = a->queue_len - a->played;
        if (n > ST_AGENT_BLOCK)
            n = ST_AGENT_BLOCK;
        memcpy(speaker, a->queue + a->played, n * sizeof(float));
        memset(speaker + n, 0, (ST_AGENT_BLOCK - n) * sizeof(float));
        if (!a->started) {
            a->started = true;
            a->answer_start = play_at;
            entry *e = history_last(a);
            if (e && e->agent)
                e->start = play_at;
            st_turn_agent_started(a->turn, now);
            emit(a, ST_AGENT_EV_SPEAKING, play_at, a->request_end, NULL, 0);
        }
        a->played += n;
        ep = a->queue_epoch;
        if (a->played >= a->queue_len) {
            entry *e = history_last(a);
            if (e && e->agent)
                e->end = play_at + n;
            emit(a, ST_AGENT_EV_DONE, play_at + n, a->answer_start, NULL, 0);
            a->queue_len = a->played = 0;
            a->n_words = 0;
            a->started = false;
            st_turn_agent_done(a->turn, play_at + n);
        }
    } else
        memset(speaker, 0, ST_AGENT_BLOCK * sizeof(float));
    memcpy(a->prev_out, speaker, sizeof a->prev_out);
    if (epoch)
        *epoch = ep;
    a->pos += ST_AGENT_BLOCK;
    return ST_OK;
}

uint64_t st_agent_position(const st_agent *a)
{
    return a->pos;
}

st_turn_state st_agent_state(const st_agent *a)
{
    return st_turn_get_state(a->turn);
}

bool st_agent_history(const st_agent *a, size_t i, st_agent_turn *out)
{
    if (i >= a->n_history)
        return false;
    const entry *e = &a->history[(a->history_head + i) % HISTORY_MAX];
    *out = (st_agent_turn){.agent = e->agent, .text = e->text, .start = e->start, .end = e->end,
                           .interrupted = e->interrupted};
    return true;
}

void st_agent_get_stats(const st_agent *a, st_agent_stats *out)
{
    *out = a->stats;
}
