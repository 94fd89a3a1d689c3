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

    The answer streams: at the block that ends the turn the dialogue LM
    decodes only until its first two words are written and hands them to
    the synthesizer (tts/, its own worker thread), whose first audio is
    played at the next block; the LM then writes at least a word a block
    until it is done, well ahead of the voice. What the speaker plays is a
    function of the text alone (the synthesizer's pieces are cut from the
    text, and the agent never hands it a word that may be the last before
    it knows: see push_answer()), and the agent waits for the audio of each
    block, so virtual time stays exact whatever the threads' timing.

    What it may touch: audio/ (front end, echo canceller), snn/ (VAD,
    recognizer, dialogue LM), tts/. Workload: 100 blocks a second; per block one front-end frame
    (a few µs), the VAD (µs) and the recognizer (ten engine steps, ~50 µs);
    per answer the LM (a ms or so a token) and the synthesizer (its worker
    thread). Memory: everything is allocated in st_agent_new() (the engines
    inside the synthesizer allocate as they please, tts/tts.h).
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
#include <time.h>
#include <zmq.h>

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
#define DT_RESID_MARGIN_DB 12.0 /* ... until then: this far above the tracked residual */
#define DT_PROMOTE_DB 6.0      /* speech judged echo becomes the user's once this
                                  much louder */
#define ECHO_SAFETY_DB 3.0     /* above the tracked residual: it varies by band */
#define PLAYING_E (1e-7 * ST_AGENT_BLOCK) /* a block's energy: something played (-70 dBFS) */
#define VOICE_E (1e-6 * ST_AGENT_BLOCK)   /* ... the agent's voice, not a gap (-60 dBFS) */
/* The double-talk detector that keeps the user's voice out of the residual
   tracker: the microphone BEFORE the canceller against what the echo path
   can make of the played signal (a Geigel detector whose threshold is the
   room's echo return loss, learnt). */
#define ERL_INIT_DB 0.0        /* a new agent's echo return loss: unknown, so as
                                  loud as what was played (a room's direct path
                                  and reflections return about that; then every
                                  block is the echo's until learnt otherwise) */
#define ERL_FLOOR_DB (-80.0)   /* what it falls to with no echo at all */
#define ERL_UP 0.1             /* per echo-only block, towards a louder echo ... */
#define ERL_DOWN 0.01          /* ... a quieter one (about a second: the upper
                                  envelope, the echo's level follows the syllables) */
#define ERL_DT_UP 0.02         /* ... and per double-talk block, up only: a new
                                  room or a moved microphone is learnt in about
                                  a second though its echo first looks like a
                                  talker; a user's word raises it a few dB */
#define DT_MARGIN 10.0         /* double talk: the microphone this many times
                                  (10 dB) above the echo the path can make plus
                                  the floor (the echo's block-to-block spread
                                  around the envelope is 5-6 dB; a user over the
                                  agent in a quiet room 20-40 dB) */
#define DT_HANG_BLOCKS 20      /* double talk holds this long after the last block
                                  that showed it: a talker's voice has gaps between
                                  syllables, and the canceller's output lags its
                                  input by a block */
#define PATH_IDLE_BLOCKS 100   /* a new echo path (a new room, a moved microphone,
                                  another device) is looked for after this long
                                  with nothing played (1 s) and the microphone
                                  quiet: ... */
#define PATH_ONSET_BLOCKS 5    /* ... an excess within the first blocks of the
                                  agent's voice (plus the device's delay), that
                                  began with it, is its echo by a path it has not
                                  learnt (a user's voice begins when the user
                                  does, not with the agent's) ... */
#define PATH_VERIFY_BLOCKS 50  /* ... and the agent's voice over the next 0.5 s is
                                  taken as its echo alone */
#define CANCEL_ADDS 4.0        /* the canceller's output this many times (6 dB) above
                                  its input: it adds an echo that is not there (its
                                  filter still models a room that is gone, until it
                                  unlearns it), which is as much the agent's voice
                                  as an echo and bounds the residual too */
#define FLOOR_INIT_DB (-60.0)  /* the microphone's floor before the canceller, dBFS,
                                  before any silence was heard */
#define FLOOR_DOWN 0.3         /* per block with nothing played: down at once ... */
#define FLOOR_UP 0.002         /* ... up over 5 s (a user's turn barely moves it) */
#define ECHO_FRAMES 12         /* the room's tail the echo estimate spans: 120 ms */
#define BARGE_HINT_HIGH_BAND 0.3f /* the barge-in hint's high_band_weight (the VAD: -0.4) */
#define FIRST_WORDS 2          /* the LM writes this many words before the first audio
                                  (the synthesizer's first piece: tts/tts.h) */
#define BLOCK_TOKENS 48        /* then at most this many tokens a block, at least a word */
#define MAX_TOKENS 200         /* an answer's length limit */
#define LEAD_SILENCE_MS 10     /* before the answer's first word (tts/ keeps 50 ms) */
#define FALLBACK "sorry, i didn't catch that."

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
    st_vad_model *hint_model;  /* barge_hint: the fricative-sensitive read-out */
    st_vad *hint;
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
    double erl_db;             /* the echo path: microphone before the canceller
                                  over the loudest played block of DT_BLOCKS,
                                  learnt from echo-only blocks (upper envelope) */
    double floor_db;           /* the microphone before the canceller with nothing
                                  played, dBFS (a minimum tracker) */
    double added_db;           /* what the canceller adds to its input over the
                                  loudest played block (upper envelope) */
    unsigned dt_hang;          /* blocks double talk still holds */
    unsigned silent_blocks;    /* blocks since the agent's voice was last played */
    bool was_quiet;            /* the microphone was at its floor the block before */
    unsigned path_check;       /* blocks of its voice in which a new path is looked for */
    unsigned verify_blocks;    /* blocks of its voice still taken as echo alone */
    float ref_hist[ECHO_FRAMES][N_MELS]; /* the played signal's recent frames */
    size_t ref_at;
    uint64_t pos;              /* capture index of the next block */
    float prev_out[ST_AGENT_BLOCK]; /* what is being played during this block */

    /* The answer in the making: the LM writes it token by token. */
    st_lm_state *lm_state;
    float *logits;
    int32_t *ids;
    size_t ids_cap;
    st_dialogue_tools tools;
    bool lm_on;                /* decoding */
    size_t lm_tokens;
    char gen[TEXT_MAX];        /* after "agent:": the model's text and tool results */
    size_t gen_len;
    size_t answer_at;          /* the answer is gen[answer_at ..): after the last tool result */
    size_t pushed_at;          /* gen[answer_at .. pushed_at) went to the synthesizer */
    unsigned pushed_words;
    char asked[TEXT_MAX];      /* the request as the LM read it (normalised) */
    char refused[128];         /* the tool call refused in this answer ("" none) */
    char reply[TEXT_MAX];      /* what went to the synthesizer: the answer as said */
    size_t reply_len;
    char last_reply[TEXT_MAX]; /* the last answer the model wrote, whole ("repeat") */
    char last_request[TEXT_MAX]; /* the request the model last answered */
    bool last_cut;             /* ... and its answer was flushed before it was written */
    double t_decided, t_first_token, t_first_push, t_first_audio; /* wall clock, s */

    /* Preemptive work: the prompt of a pending turn's words, read ahead
       while the controller waits (st_turn_pending), and which words. */
    st_lm_state *pre_state;
    float *pre_logits;
    char pre_prompt[TEXT_MAX + 16]; /* "" none */

    /* The speaker queue: one answer at a time, read from the synthesizer. */
    float *queue;
    size_t queue_cap, queue_len, played;
    uint32_t queue_epoch;
    bool answering;            /* an answer is queued or being made */
    int utt;                   /* its utterance in the synthesizer */
    bool text_done, audio_done;/* st_tts_end() called; its end read */
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
    return (st_agent_params){
        .tts_engine = "espeak",
        .echo_residual_db = -6,
        .echo_cancel = true,
        .max_answer_s = 30,
        .clock_hour = -1,
        .preempt = true,
        .barge_hint = true,
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
    if (kind == ST_AGENT_EV_ANSWER && a->refused[0])
        e.refused = a->refused;
    a->p.on_event(&e, a->p.user_data);
}

static void on_state(st_turn_state from, st_turn_state to, uint64_t sample, void *user_data)
{
    st_agent *a = user_data;
    if (from == ST_TURN_USER && to == ST_TURN_LISTENING)
        a->stats.dropped_turns++; /* the turn ended without a word */
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
    vp.model_path = a->p.vad_model;
    if (!(a->vad_model = st_vad_model_new(&vp, &rc)) || !(a->vad = st_vad_new(a->vad_model, &rc)))
        goto fail;
    if (a->p.barge_hint) {
        vp.model_path = NULL;
        vp.high_band_weight = BARGE_HINT_HIGH_BAND;
        if (!(a->hint_model = st_vad_model_new(&vp, &rc)) ||
            !(a->hint = st_vad_new(a->hint_model, &rc)))
            goto fail;
    }
    a->resid_db = a->p.echo_residual_db;
    a->erl_db = ERL_INIT_DB;
    a->floor_db = FLOOR_INIT_DB;
    a->silent_blocks = PATH_IDLE_BLOCKS;
    a->added_db = ERL_FLOOR_DB;
    a->echo_offset = (float)(a->p.echo_residual_db / 10.0 * log(10.0));
    if (!(a->asr = st_asr_load(a->p.asr_model, &rc)) ||
        !(a->asr_stream = st_asr_stream_new(a->asr, NULL, &rc)))
        goto fail;
    if (st_asr_features(a->asr) != N_MELS) {
        rc = st_error(ST_ERR_FORMAT, "agent: %s takes %zu features, the front end makes %d",
                      a->p.asr_model, st_asr_features(a->asr), N_MELS);
        goto fail;
    }
    if (a->p.lm_model) {
        if (!(a->lm = st_lm_model_load(a->p.lm_model, &rc)) ||
            !(a->lm_state = st_lm_state_new(a->lm, &rc)) ||
            !(a->pre_state = st_lm_state_new(a->lm, &rc)))
            goto fail;
        a->ids_cap = 2 * TEXT_MAX;
        size_t vocab = st_lm_model_config(a->lm)->vocab;
        if (!(a->logits = malloc(vocab * sizeof *a->logits)) ||
            !(a->pre_logits = malloc(vocab * sizeof *a->pre_logits)) ||
            !(a->ids = malloc(a->ids_cap * sizeof *a->ids))) {
            rc = st_error(ST_ERR_NOMEM, "agent: out of memory for the LM");
            goto fail;
        }
    }
    a->tools.hour = a->p.clock_hour;
    a->tools.minute = a->p.clock_minute;
    st_tts_params tp = st_tts_default_params();
    tp.engine = a->p.tts_engine ? a->p.tts_engine : "espeak";
    tp.voice = a->p.tts_voice;
    tp.rate_wpm = a->p.tts_rate_wpm;
    tp.sample_rate_hz = RATE;
    tp.lead_silence_ms = LEAD_SILENCE_MS;
    tp.first_piece_words = FIRST_WORDS;
    /* Room for a whole answer: a synthesizer whose queue is full waits
       for its reader inside the engine, holding the engine's process-wide
       lock (tts/), and anyone else in the process who wants to speak (a
       test's user, a scenario's renderer) would wait for the agent's next
       block. The worker at SCHED_FIFO 10 when the process may: on a busy
       machine its wake-up is otherwise most of the first audio's delay. */
    tp.queue_s = a->p.max_answer_s + 1 < 60 ? a->p.max_answer_s + 1 : 60;
    tp.worker_priority = 10;
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
    st_lm_state_destroy(&a->lm_state);
    st_lm_state_destroy(&a->pre_state);
    st_lm_model_destroy(&a->lm);
    free(a->logits);
    free(a->pre_logits);
    free(a->ids);
    st_asr_stream_destroy(&a->asr_stream);
    st_asr_destroy(&a->asr);
    st_vad_destroy(&a->vad);
    st_vad_model_destroy(&a->vad_model);
    st_vad_destroy(&a->hint);
    st_vad_model_destroy(&a->hint_model);
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

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The synthesizer's word events so far, into the answer's word list (their
   positions are frames of the utterance: indices into the queue). */
static void collect_words(st_agent *a)
{
    st_tts_word w[16];
    size_t n;
    while ((n = st_tts_read_words(a->tts, w, 16)) > 0)
        for (size_t i = 0; i < n; i++)
            if (w[i].utterance == a->utt && a->n_words < WORDS_MAX)
                a->words[a->n_words++] = w[i];
}

static void flush(st_agent *a, uint64_t now)
{
    entry *last = history_last(a);
    if (a->answering && !(a->text_done && a->audio_done))
        /* Let the synthesizer's worker get as far as it can first: then
           where the cancel stops the engine (whose state the next answer
           inherits) and which word events came depend on what the agent
           pushed and read, not on thread timing, and a virtual-time run
           gives the same samples every time. The speaker is paused or
           silent meanwhile; at most the rest of one engine call. */
        (void)st_tts_quiesce(a->tts, 2.0);
    if (a->answering)
        collect_words(a);
    if (a->answering && !a->started && last && last->agent)
        a->n_history--; /* never played: the user heard none of it */
    else if (a->answering && (a->played < a->queue_len || !a->audio_done)) {
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
    if (a->answering && !(a->text_done && a->audio_done))
        st_tts_cancel(a->tts); /* the synthesizer drops the rest */
    a->lm_on = false; /* the LM stops where it is */
    a->flushed_epoch = a->queue_epoch + 1;
    a->queue_len = a->played = 0;
    a->n_words = 0;
    a->answering = a->paused = a->started = false;
    a->utt = 0;
}

/* ---- the answer, streamed --------------------------------------------------- */

static bool is_word_byte(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (unsigned char)c >= 0x80;
}

/* Hands text to the synthesizer (and to the reply as said). */
static int tts_push(st_agent *a, const char *text, size_t len)
{
    if (!len)
        return ST_OK;
    if (a->reply_len + len >= sizeof a->reply)
        len = sizeof a->reply - 1 - a->reply_len;
    memcpy(a->reply + a->reply_len, text, len);
    a->reply_len += len;
    a->reply[a->reply_len] = '\0';
    int id = st_tts_push(a->tts, a->reply + a->reply_len - len);
    if (id < 0)
        return id;
    if (!a->t_first_push)
        a->t_first_push = st_now_s();
    a->utt = id;
    return ST_OK;
}

/* Where the answer's speakable text ends now: at a tool call, or at a
   brace or bracket the model should not have written (dialogue.h). */
static size_t answer_end(const st_agent *a)
{
    for (size_t i = a->answer_at; i < a->gen_len; i++)
        if (strchr("[]{}\n", a->gen[i]))
            return i;
    return a->gen_len;
}

/*  Gives the synthesizer every word of the answer but the last one: a word
    the agent hands over may never turn out to be the answer's last. The
    synthesizer cuts its pieces from the text (tts/chunker.c), and the
    piece with the last word is spoken differently (the engine's tail, no
    clause pause) when the utterance has ended by the time it is cut; were
    the last word pushed before st_tts_end(), which of the two it became
    would be a race with the synthesizer's thread (answers 0.3 s longer in
    one run of three). Held back until the next word starts, the last word
    goes with the end (stripped of its final punctuation, so it can never
    be cut before the end is known): the same audio on every run. */
static int push_answer(st_agent *a, bool final)
{
    size_t end = answer_end(a);
    if (a->pushed_at < a->answer_at)
        a->pushed_at = a->answer_at;
    if (end <= a->pushed_at)
        return ST_OK;
    const char *g = a->gen;
    size_t cut = end;
    if (!final) {
        /* up to the start of the last word (a run with a letter or digit) */
        size_t k = end;
        while (k > a->pushed_at && !is_word_byte(g[k - 1]))
            k--;
        while (k > a->pushed_at && g[k - 1] != ' ')
            k--;
        cut = k;
    } else {
        while (cut > a->pushed_at && !is_word_byte(g[cut - 1]))
            cut--;
    }
    if (cut <= a->pushed_at)
        return ST_OK;
    size_t from = a->pushed_at;
    if (!a->reply_len)
        while (from < cut && g[from] == ' ')
            from++;
    for (size_t i = from; i < cut; i++)
        if (g[i] == ' ' && i > from && g[i - 1] != ' ')
            a->pushed_words++;
    if (final)
        a->pushed_words++;
    int rc = tts_push(a, g + from, cut - from);
    a->pushed_at = final ? end : cut;
    return rc;
}

/* Appends to the LM's transcript. */
static void gen_add(st_agent *a, const char *s, size_t n)
{
    size_t room = sizeof a->gen - 1 - a->gen_len;
    if (n > room)
        n = room;
    memcpy(a->gen + a->gen_len, s, n);
    a->gen_len += n;
    a->gen[a->gen_len] = '\0';
}

static int32_t argmax(const float *z, size_t n)
{
    size_t best = 0;
    for (size_t i = 1; i < n; i++)
        if (z[i] > z[best])
            best = i;
    return (int32_t)best;
}

/* The answer is written: the rest goes to the synthesizer with its end. */
static int lm_finish(st_agent *a, uint64_t now)
{
    a->lm_on = false;
    int rc = push_answer(a, true);
    if (!rc && a->reply_len) {
        memcpy(a->last_reply, a->reply, a->reply_len + 1);
        a->last_cut = false;
    }
    if (!rc && !a->reply_len)
        rc = tts_push(a, FALLBACK, strlen(FALLBACK) - 1); /* the model wrote nothing usable */
    if (rc)
        return rc;
    int id = st_tts_end(a->tts);
    if (id < 0)
        return id;
    a->utt = id;
    a->text_done = true;
    entry *e = history_last(a);
    if (e && e->agent)
        snprintf(e->text, sizeof e->text, "%s", a->reply);
    emit(a, ST_AGENT_EV_ANSWER, now, a->request_end, a->reply,
         (st_now_s() - a->t_decided) * 1000);
    return ST_OK;
}

/*  One token of the answer (the loop of st_dialogue_reply(), a token at a
    time): a tool call closed by "]" is executed and its result fed to the
    model; a newline or the length limit ends the answer. */
static int lm_token(st_agent *a, uint64_t now)
{
    const st_lm_tokenizer *tok = st_lm_model_tokenizer(a->lm);
    size_t V = st_lm_model_config(a->lm)->vocab;
    int32_t t = argmax(a->logits, V);
    if (!a->t_first_token)
        a->t_first_token = st_now_s();
    size_t pl = 0;
    const char *piece = st_lm_tokenizer_piece(tok, t, &pl);
    const char *nl = piece ? memchr(piece, '\n', pl) : NULL;
    a->lm_tokens++;
    if (nl) {
        gen_add(a, piece, (size_t)(nl - piece));
        return lm_finish(a, now);
    }
    if (piece)
        gen_add(a, piece, pl);
    int rc = st_lm_step(a->lm, a->lm_state, t, a->logits);
    if (rc)
        return rc;
    if (piece && pl && piece[pl - 1] == ']') {
        size_t open = a->gen_len;
        for (size_t i = a->gen_len; i-- > a->answer_at;)
            if (a->gen[i] == '[') {
                open = i;
                break;
            }
        if (open < a->gen_len) {
            char result[256], fed[300];
            size_t cl = a->gen_len - 1 - (open + 1);
            if (!st_dialogue_grounded(a->asked, a->gen + open + 1, cl) ||
                st_dialogue_tool(&a->tools, a->gen + open + 1, cl, result, sizeof result)) {
                /* a number nobody said (the model guessed), or a call the
                   tools cannot read: the answer ends; nothing said, the
                   fallback asks again */
                a->stats.refused_calls++;
                snprintf(a->refused, sizeof a->refused, "%.*s", (int)cl, a->gen + open + 1);
                return lm_finish(a, now);
            }
            int fl = snprintf(fed, sizeof fed, "{ %s}", result);
            if (fl > (int)sizeof fed - 1)
                fl = (int)sizeof fed - 1;
            gen_add(a, fed, (size_t)fl);
            a->answer_at = a->gen_len;
            size_t m = 0;
            st_lm_tokenizer_encode(tok, fed, (size_t)fl, a->ids, a->ids_cap, &m, NULL);
            if (m > a->ids_cap)
                m = a->ids_cap;
            if (m && (rc = st_lm_forward(a->lm, a->lm_state, a->ids, m, a->logits, false, NULL)))
                return rc;
        }
    }
    if (a->lm_tokens >= MAX_TOKENS || a->gen_len >= sizeof a->gen - 1)
        return lm_finish(a, now);
    return push_answer(a, false);
}

/*  The LM writes on until `words` words went to the synthesizer in all (or
    it is done; at most max_tokens now). A function of the tokens alone, so
    the answer's events fall on the same blocks on every run. */
static int lm_pump(st_agent *a, unsigned words, size_t max_tokens, uint64_t now)
{
    int rc = ST_OK;
    double c0 = cpu_now();
    for (size_t k = 0; a->lm_on && a->pushed_words < words && k < max_tokens && !rc; k++)
        rc = lm_token(a, now);
    a->stats.cpu_lm_s += cpu_now() - c0;
    return rc;
}

/* The prompt of normalised words. */
static size_t prompt_of(const char *norm, char *prompt, size_t cap)
{
    int pn = snprintf(prompt, cap, "user: %s\nagent:", norm);
    return pn < 0 ? 0 : (size_t)pn < cap ? (size_t)pn : cap - 1;
}

/* The LM's prompt for a request: "user: WORDS\nagent:", the words
   normalised as in training. Its length. */
static size_t make_prompt(const char *request, char *prompt, size_t cap)
{
    char norm[TEXT_MAX];
    st_dialogue_normalize(request, norm, sizeof norm);
    return prompt_of(norm, prompt, cap);
}

/* Reads a prompt into state/logits from a fresh state. */
static int read_prompt(st_agent *a, const char *prompt, size_t len, st_lm_state *state,
                       float *logits)
{
    size_t n = 0;
    st_lm_state_reset(state);
    st_lm_tokenizer_encode(st_lm_model_tokenizer(a->lm), prompt, len, a->ids, a->ids_cap, &n,
                           NULL);
    if (n > a->ids_cap)
        n = a->ids_cap;
    return st_lm_forward(a->lm, state, a->ids, n, logits, false, NULL);
}

/* Preemptive work: while the controller waits on a pending turn (the user
   silent, words heard), the LM reads those words' prompt into a spare state.
   If the turn ends with the same words, answer() starts from it; if more
   words come, it is read again, and what was read is dropped. The answer is
   the same either way (the same prompt from a fresh state), only sooner. */
static int preempt(st_agent *a)
{
    const char *words = st_turn_pending(a->turn);
    if (!a->p.preempt || !a->lm || !words || a->answering)
        return ST_OK;
    char prompt[sizeof a->pre_prompt];
    size_t len = make_prompt(words, prompt, sizeof prompt);
    if (!strcmp(prompt, a->pre_prompt))
        return ST_OK;
    double c0 = cpu_now();
    a->pre_prompt[0] = '\0';
    int rc = read_prompt(a, prompt, len, a->pre_state, a->pre_logits);
    a->stats.cpu_lm_s += cpu_now() - c0;
    if (rc)
        return rc;
    memcpy(a->pre_prompt, prompt, len + 1);
    a->stats.preempted++;
    return ST_OK;
}

/* "repeat" (what the recognizer keeps of "can you repeat that", "please
   repeat"): the user asks for the last answer again. The agent says it
   whole, not the model: an answer is up to 30 s of text, more than the
   model can copy, and the request is about the conversation, not the
   world. An answer cut before the model had written it all (the model
   writes as the speaker plays) is asked of the model again: it decodes
   greedily, so the same request gives the same words. */
static bool wants_repeat(const char *request)
{
    const char *last = strrchr(request, ' ');
    return !strcmp(last ? last + 1 : request, "repeat");
}

static int answer(st_agent *a, uint64_t now, const char *said)
{
    a->t_decided = st_now_s();
    a->t_first_token = a->t_first_push = a->t_first_audio = 0;
    const char *request = st_turn_request(a->turn);
    if (!said) {
        history_add(a, false, request, st_turn_request_end(a->turn),
                    st_turn_request_end(a->turn));
        emit(a, ST_AGENT_EV_REQUEST, now, st_turn_request_end(a->turn), request, 0);
    }
    if (a->answering)
        flush(a, now); /* cannot happen: the controller interrupts first */
    a->gen_len = a->answer_at = a->pushed_at = a->reply_len = 0;
    a->gen[0] = a->reply[0] = a->refused[0] = '\0';
    a->pushed_words = 0;
    a->lm_tokens = 0;
    a->queue_len = a->played = 0;
    a->n_words = 0;
    a->paused = a->started = a->text_done = a->audio_done = false;
    a->answering = true;
    a->utt = 0;
    a->queue_epoch = st_turn_epoch(a->turn);
    a->request_end = said ? 0 : st_turn_request_end(a->turn); /* 0: nobody asked */
    history_add(a, true, "", 0, 0);
    a->stats.answers++;
    const char *fixed = said, *ask = request;
    bool repeat = !said && wants_repeat(request);
    if (repeat && a->lm && a->last_cut)
        ask = a->last_request;
    else if (repeat)
        fixed = a->last_reply[0] ? a->last_reply : "i have not said anything yet.";
    else if (!said && !a->lm)
        fixed = "my dialogue model is not installed.";
    if (fixed) {
        gen_add(a, fixed, strlen(fixed));
        a->t_first_token = st_now_s();
        return lm_finish(a, now);
    }
    double c0 = cpu_now();
    a->lm_on = true;
    char prompt[sizeof a->pre_prompt];
    if (ask != a->last_request)
        snprintf(a->last_request, sizeof a->last_request, "%s", ask);
    a->last_cut = true; /* until lm_finish */
    st_dialogue_normalize(ask, a->asked, sizeof a->asked);
    size_t len = prompt_of(a->asked, prompt, sizeof prompt);
    int rc = ST_OK;
    if (a->pre_prompt[0] && !strcmp(prompt, a->pre_prompt)) {
        /* read ahead while the controller waited: the same prompt */
        rc = st_lm_state_copy(a->lm_state, a->pre_state);
        memcpy(a->logits, a->pre_logits, st_lm_model_config(a->lm)->vocab * sizeof *a->logits);
        a->stats.preempt_used++;
    } else {
        rc = read_prompt(a, prompt, len, a->lm_state, a->logits);
    }
    a->pre_prompt[0] = '\0';
    a->stats.cpu_lm_s += cpu_now() - c0;
    if (rc)
        return rc;
    /* the first piece, then the first audio: the speaker waits for it */
    return lm_pump(a, FIRST_WORDS, MAX_TOKENS, now);
}

static int act(st_agent *a, int actions, uint64_t now)
{
    if (actions & ST_TURN_DO_INTERRUPT)
        flush(a, now);
    if (actions & ST_TURN_DO_PAUSE && a->answering) {
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

/* A word from the recognizer: published, then given to the turn controller. */
static int heard_word(st_agent *a, const st_asr_event *w, uint64_t now)
{
    const char *word = st_asr_word(a->asr, (size_t)w->word);
    emit(a, ST_AGENT_EV_WORD, w->end_stamp, w->start_stamp, word, 0);
    return act(a, st_turn_heard(a->turn, word, w->score, w->start_stamp, w->end_stamp, now), now);
}

/* What the recognizer still weighs (its beam search) is decided now: when
   the user stops, and when the controller is about to end the turn, so
   that it judges every word heard. */
static int decide_words(st_agent *a, uint64_t now)
{
    st_asr_event w;
    int rc = ST_OK;
    while (!rc && st_asr_stream_flush(a->asr_stream, &w) == 1)
        if (w.word >= 2)
            rc = heard_word(a, &w, now);
    return rc;
}

int st_agent_say(st_agent *a, const char *text)
{
    uint64_t now = a->pos ? a->pos - 1 : 0;
    if (!st_turn_announce(a->turn, now))
        return st_error(ST_ERR_STATE, "agent: cannot speak unasked while %s",
                        st_turn_state_name(st_turn_get_state(a->turn)));
    return answer(a, now, text ? text : "");
}

/*  Reads the synthesizer's audio into the queue until `need` samples wait
    to be played or the answer's audio has ended. It waits: in virtual time
    the block does not start before its audio exists. */
static int fill(st_agent *a, size_t need, uint64_t now)
{
    int rc;
    while (a->answering && !a->audio_done && a->queue_len - a->played < need) {
        if (a->queue_len >= a->queue_cap) {
            /* the longest answer played: the rest is not said */
            st_tts_cancel(a->tts);
            if (a->lm_on) {
                a->lm_on = false;
                emit(a, ST_AGENT_EV_ANSWER, now, a->request_end, a->reply,
                     (st_now_s() - a->t_decided) * 1000);
            }
            a->text_done = a->audio_done = true;
            break;
        }
        if (!a->utt) {
            a->audio_done = true; /* nothing to say */
            break;
        }
        st_tts_chunk info;
        long n = st_tts_read(a->tts, a->queue + a->queue_len, a->queue_cap - a->queue_len, 5.0,
                             &info);
        if (n == ST_ERR_TIMEOUT && a->lm_on) {
            /* the synthesizer waits for text (the LM fell behind the voice,
               which the pacing should prevent): the LM finishes now */
            st_log(ST_LOG_WARN, "agent: the synthesizer starved; the LM finishes at once");
            if ((rc = lm_pump(a, (unsigned)-1, MAX_TOKENS, now)))
                return rc;
            if (a->lm_on && (rc = lm_finish(a, now)))
                return rc;
            continue;
        }
        if (n < 0)
            return st_error((int)n, "agent: the synthesizer made no audio for 5 s: %s",
                            st_errmsg());
        if (info.utterance != a->utt)
            continue; /* a cancelled answer's (cannot happen: cancel drops it) */
        if (n > 0 && !a->t_first_audio)
            a->t_first_audio = st_now_s();
        a->queue_len += (size_t)n;
        if (info.end && a->text_done)
            a->audio_done = true;
    }
    collect_words(a);
    return ST_OK;
}

/* ---- one block -------------------------------------------------------------- */

/* The microphone's last DT_NEAR_BLOCKS, after the canceller, over what
   the speaker played in its loudest block of the last DT_BLOCKS, dB; *playing:
   whether it played anything. */
/* The microphone after the canceller, mean energy of its last
   DT_NEAR_BLOCKS blocks. */
static double near_energy(const st_agent *a)
{
    double near = 0;
    for (int q = 1; q <= DT_NEAR_BLOCKS; q++)
        near += a->near_e[(a->dt_at + DT_BLOCKS - q) % DT_BLOCKS] / DT_NEAR_BLOCKS;
    return near;
}

/* The loudest block played within the last DT_BLOCKS, its energy. */
static double far_energy(const st_agent *a)
{
    double far = 0;
    for (int q = 0; q < DT_BLOCKS; q++)
        far = a->far_e[q] > far ? a->far_e[q] : far;
    return far;
}

static double near_far_db(const st_agent *a, bool *playing)
{
    double near = near_energy(a), far = far_energy(a);
    *playing = far >= PLAYING_E;
    return 10 * log10((near + 1e-15) / (far + 1e-15));
}

/* Until the canceller has heard DT_CONVERGE_BLOCKS of the agent's voice its
   residual is loud (speexdsp takes about two seconds in a new room): until
   then a user must be about as loud as the agent's playback. */
static double dt_threshold_db(const st_agent *a)
{
    if (a->ref_blocks >= DT_CONVERGE_BLOCKS)
        return DT_MIN_DB;
    /* Before that, what the canceller leaves is known from its tracked
       residual (the upper envelope): speech DT_RESID_MARGIN_DB above it is
       not the agent's echo. Without a room (or once it has converged early)
       the residual is low and a user need not shout; in a new room it is
       high and the early threshold holds. */
    double t = a->resid_db + DT_RESID_MARGIN_DB;
    return t > DT_EARLY_DB ? DT_EARLY_DB : t < DT_MIN_DB ? DT_MIN_DB : t;
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
    return 10 * log10(near_energy(a) + 1e-15);
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

/* The double-talk detector, once a block: whether the microphone before the
   canceller (energy mic_e) holds more than the agent's echo and the floor -
   more than DT_MARGIN above what the echo path, at its learnt return
   loss, makes of the loudest block played within DT_BLOCKS (far_max), plus
   the floor. The canceller cannot tell: what it leaves of a user is as loud
   as what it leaves of an echo it has not learnt. Learns the return loss
   while the agent plays (ref_e, this block's) from the blocks it judges
   echo alone (and, slowly and only upwards, from the others: a new room's
   echo first looks like a talker), and the floor from the blocks with
   nothing played. Double talk holds DT_HANG_BLOCKS after it was seen.
   *new_path: a new echo path was found in this block (PATH_ONSET_BLOCKS). */
static bool double_talk(st_agent *a, double mic_e, double ref_e, double far_max, bool *new_path)
{
    double n = ST_AGENT_BLOCK, mic_db = 10 * log10(mic_e / n + 1e-15);
    bool playing = far_max >= PLAYING_E, voice = ref_e > VOICE_E; /* this block */
    double floor_e = n * pow(10, a->floor_db / 10), path_e = far_max * pow(10, a->erl_db / 10);
    bool quiet = mic_e < floor_e * DT_MARGIN;
    if (!playing || mic_db < a->floor_db)
        a->floor_db += (mic_db < a->floor_db ? FLOOR_DOWN : FLOOR_UP) * (mic_db - a->floor_db);
    if (voice && a->silent_blocks >= PATH_IDLE_BLOCKS && a->was_quiet)
        a->path_check = PATH_ONSET_BLOCKS + (unsigned)(a->p.echo_delay_samples / ST_AGENT_BLOCK);
    a->silent_blocks = voice ? 0 : a->silent_blocks + 1;
    a->was_quiet = quiet;
    *new_path = false;
    if (!playing) {
        a->dt_hang = 0;
        return false;
    }
    double excess = mic_e - floor_e, r = excess > 0 ? 10 * log10(excess / far_max) : ERL_FLOOR_DB;
    r = r < ERL_FLOOR_DB ? ERL_FLOOR_DB : r;
    bool seen = mic_e > (floor_e + path_e) * DT_MARGIN;
    if (voice && a->path_check > 0 && ref_e > floor_e * DT_MARGIN * DT_MARGIN) {
        /* the agent's voice, clearly above the floor, after a silence */
        a->path_check--;
        if (seen) {
            a->path_check = 0;
            a->verify_blocks = PATH_VERIFY_BLOCKS;
            *new_path = true;
        }
    }
    if (a->verify_blocks > 0) {
        /* the echo path changed while the agent was quiet: what its voice
           brings now is its echo, at once */
        a->dt_hang = 0;
        if (voice) {
            a->verify_blocks--;
            a->erl_db = r > a->erl_db ? r : a->erl_db + ERL_DOWN * (r - a->erl_db);
        }
        return false;
    }
    bool dt = seen || a->dt_hang > 0;
    a->dt_hang = seen ? DT_HANG_BLOCKS : a->dt_hang ? a->dt_hang - 1 : 0;
    if (!voice)
        return dt; /* the agent paused or between words: an echo tail, or not */
    if (!dt)
        a->erl_db += (r > a->erl_db ? ERL_UP : ERL_DOWN) * (r - a->erl_db);
    else if (seen && r > a->erl_db)
        a->erl_db += ERL_DT_UP * (r - a->erl_db);
    return dt;
}

int st_agent_process(st_agent *a, const float *mic, float *speaker, uint32_t *epoch)
{
    float feat[2 * N_MELS], echo[2 * N_MELS];
    uint64_t stamp[2], stamp_ref[2];
    size_t used = 0, made = 0, made_ref = 0;
    uint64_t now = a->pos + ST_AGENT_BLOCK - 1;
    int rc;
    double c0 = cpu_now(), c1, cpu_start = c0;

    /* The microphone, less the echo of what the speaker is playing during
       the same block, and, for the VAD's echo estimate, what it plays. */
    if (a->aec) {
        st_echo_process(a->aec, mic, a->prev_out, a->clean);
        /* How much of the played signal is left, block by block: the
           upper envelope (up at once, down over a second), for the residual
           comes in bursts; never above echo_residual_db. The VAD is told
           that much, ECHO_SAFETY_DB more (its echo input). It rises only
           on blocks of the echo alone: a user's voice, which the canceller
           leaves whole, would raise it to its cap within three blocks and
           the VAD's echo input with it, masking the user (missed and late
           barge-ins). And it is never above the echo path's return loss:
           what the canceller leaves of the echo is not louder than the echo
           (with no room the canceller's output is the noise, which the
           VAD's own floor follows; taken for echo it masked a user at the
           agent's level by 20 dB). */
        double ref_e = 0, out_e = 0, mic_e = 0;
        for (size_t k = 0; k < ST_AGENT_BLOCK; k++) {
            ref_e += (double)a->prev_out[k] * a->prev_out[k];
            out_e += (double)a->clean[k] * a->clean[k];
            mic_e += (double)mic[k] * mic[k];
        }
        a->near_e[a->dt_at] = out_e;
        a->far_e[a->dt_at] = ref_e;
        a->dt_at = (a->dt_at + 1) % DT_BLOCKS;
        double far_max = far_energy(a);
        bool new_path, dt = double_talk(a, mic_e, ref_e, far_max, &new_path);
        if (ref_e > VOICE_E)
            a->ref_blocks++;
        if (ref_e > VOICE_E && a->p.echo_residual_db > -200) {
            double r = 10 * log10((out_e + 1e-15) / ref_e);
            if (dt && r > a->resid_db)
                r = a->resid_db;
            a->resid_db += (r > a->resid_db ? 0.3 : 0.01) * (r - a->resid_db);
            if (new_path)
                a->resid_db = a->erl_db; /* the canceller has not learnt the new
                                            path: it leaves the echo whole */
            if (a->resid_db > a->p.echo_residual_db)
                a->resid_db = a->p.echo_residual_db;
            /* what the canceller adds: out well above its input, no user */
            double added = !dt && out_e > CANCEL_ADDS * mic_e ? 10 * log10(out_e / far_max)
                                                              : ERL_FLOOR_DB;
            a->added_db += (added > a->added_db ? ERL_UP : ERL_DOWN) * (added - a->added_db);
            double ceil_db = a->erl_db > a->added_db ? a->erl_db : a->added_db;
            if (a->resid_db > ceil_db)
                a->resid_db = ceil_db;
            a->echo_offset = (float)((a->resid_db + ECHO_SAFETY_DB) / 10.0 * log(10.0));
        }
        mic = a->clean;
    }
    c1 = cpu_now();
    a->stats.cpu_echo_s += c1 - c0;
    st_frontend_process(a->fe, mic, ST_AGENT_BLOCK, feat, stamp, 2, &used, &made);
    st_frontend_process(a->fe_ref, a->prev_out, ST_AGENT_BLOCK, echo, stamp_ref, 2, &used,
                        &made_ref);
    c0 = cpu_now();
    a->stats.cpu_frontend_s += c0 - c1;
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
        c0 = cpu_now();
        if (a->hint) {
            /* the barge-in hint: only its onsets, only while the agent speaks
               (st_turn_hint acts in no other state), past the same
               double-talk gate as the VAD's */
            rc = st_vad_process(a->hint, feat + j * N_MELS, stamp + j, ech, 1, ev, 1, &n_ev);
            if (rc)
                return rc;
            if (n_ev && ev[0].kind == ST_VAD_ONSET && !echo_only(a) &&
                (rc = act(a, st_turn_hint(a->turn, ev[0].sample_index, now), now)))
                return rc;
            n_ev = 0;
        }
        rc = st_vad_process(a->vad, feat + j * N_MELS, stamp + j, ech, 1, ev, 1, &n_ev);
        c1 = cpu_now();
        a->stats.cpu_vad_s += c1 - c0;
        if (rc)
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
            /* an offset: the turn's words are decided before the controller
               judges it; an onset: what the recognizer still weighs was
               heard before this speech (in the room, in the agent's echo)
               and goes to the controller as such (it drops words heard
               while nobody or only the agent spoke) */
            if ((rc = decide_words(a, now)))
                return rc;
            int acts = on ? st_turn_onset(a->turn, ev[k].sample_index, now)
                          : st_turn_offset(a->turn, ev[k].sample_index, now);
            if ((rc = act(a, acts, now)))
                return rc;
        }
        st_asr_event w;
        c0 = cpu_now();
        int heard = st_asr_stream_push(a->asr_stream, feat + j * N_MELS, stamp[j], &w, NULL);
        a->stats.cpu_asr_s += cpu_now() - c0;
        if (heard == 1 && w.word >= 2 && (rc = heard_word(a, &w, now)))
            return rc;
    }
    if (a->echo_latched && user_over_echo(a)) {
        /* The user got loud within what was judged echo: their speech
           began where the VAD placed it. */
        a->echo_latched = false;
        emit(a, ST_AGENT_EV_ONSET, a->echo_onset, now, NULL, 0);
        if ((rc = act(a, st_turn_onset(a->turn, a->echo_onset, now), now)))
            return rc;
    }
    uint64_t deadline = st_turn_deadline(a->turn);
    if (deadline && now >= deadline && (rc = decide_words(a, now)))
        return rc;
    if ((rc = act(a, st_turn_tick(a->turn, now), now)))
        return rc;
    if ((rc = preempt(a)))
        return rc;

    /* The answer: the LM writes on, a word or more a block, ahead of the voice. */
    if (a->lm_on) {
        if ((rc = lm_pump(a, a->pushed_words + 1, BLOCK_TOKENS, now)))
            return rc;
    }

    /* The speaker: the next block of the answer, unless paused or flushed. */
    uint64_t play_at = a->pos + ST_AGENT_BLOCK; /* played during the next block */
    uint32_t ep = 0;
    /* One sample more than a block: whether this block ends the answer is
       then known now, whenever the synthesizer's end marker comes. */
    size_t n_played = 0;
    if (a->answering && !a->paused && (rc = fill(a, ST_AGENT_BLOCK + 1, now)))
        return rc;
    if (a->answering && !a->paused && a->played < a->queue_len) {
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
            double t = st_now_s();
            st_agent_event ev = {
                .kind = ST_AGENT_EV_SPEAKING, .sample = play_at, .ref = a->request_end,
                .compute_ms = (t - a->t_decided) * 1000, .epoch = st_turn_epoch(a->turn),
                .lm_first_ms = a->t_first_token ? (a->t_first_token - a->t_decided) * 1000 : 0,
                .lm_piece_ms = a->t_first_push ? (a->t_first_push - a->t_decided) * 1000 : 0,
                .tts_first_ms = a->t_first_audio && a->t_first_push
                                    ? (a->t_first_audio - a->t_first_push) * 1000 : 0};
            if (a->p.on_event)
                a->p.on_event(&ev, a->p.user_data);
        }
        a->played += n;
        n_played = n;
        ep = a->queue_epoch;
    } else
        memset(speaker, 0, ST_AGENT_BLOCK * sizeof(float));
    if (a->answering && !a->paused && a->audio_done && a->played >= a->queue_len) {
        /* the answer was played to its end (or had no audio at all) */
        uint64_t end = play_at + n_played;
        entry *e = history_last(a);
        if (e && e->agent)
            e->end = end;
        emit(a, ST_AGENT_EV_DONE, end, a->answer_start, NULL, 0);
        a->queue_len = a->played = 0;
        a->n_words = 0;
        a->answering = a->started = false;
        a->utt = 0;
        st_turn_agent_done(a->turn, end);
    }
    memcpy(a->prev_out, speaker, sizeof a->prev_out);
    if (epoch)
        *epoch = ep;
    a->pos += ST_AGENT_BLOCK;
    a->stats.cpu_total_s += cpu_now() - cpu_start;
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
    st_tts_stats ts;
    st_tts_get_stats(a->tts, &ts);
    out->tts_worker_s = ts.compute_s;
}

/* ---- the turn publisher --------------------------------------------------------- */

struct st_agent_pub {
    void *zctx, *pub;
    uint64_t seq;
    uint64_t sent, dropped;
};

st_agent_pub *st_agent_pub_new(const char *endpoint, int *err)
{
    int rc = ST_OK;
    st_agent_pub *p = calloc(1, sizeof *p);
    if (!p) {
        rc = st_error(ST_ERR_NOMEM, "turn publisher: out of memory");
        goto fail;
    }
    if (!endpoint || !*endpoint) {
        rc = st_error(ST_ERR_INVALID, "turn publisher: no endpoint given");
        goto fail;
    }
    if (!(p->zctx = zmq_ctx_new()) || !(p->pub = zmq_socket(p->zctx, ZMQ_PUB))) {
        rc = st_error(ST_ERR_IO, "turn publisher: %s", zmq_strerror(zmq_errno()));
        goto fail;
    }
    int linger = 200, hwm = 1000;
    zmq_setsockopt(p->pub, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(p->pub, ZMQ_SNDHWM, &hwm, sizeof hwm);
    if (zmq_bind(p->pub, endpoint) != 0) {
        rc = st_error(ST_ERR_IO, "turn publisher: cannot bind '%s': %s", endpoint,
                      zmq_strerror(zmq_errno()));
        goto fail;
    }
    if (err)
        *err = ST_OK;
    return p;
fail:
    st_agent_pub_destroy(&p);
    if (err)
        *err = rc;
    return NULL;
}

int st_agent_pub_event(st_agent_pub *p, const st_agent_event *e)
{
    if (!p || e->kind != ST_AGENT_EV_STATE)
        return ST_OK;
    unsigned char payload[64];
    long n = st_wire_control_encode(payload, sizeof payload, ST_CTL_TURN,
                                    e->to == ST_TURN_AGENT ? 1u : 0u, 0,
                                    st_turn_state_name(e->to));
    if (n < 0)
        return (int)n;
    st_wire_header h;
    st_wire_header_init(&h, ST_MSG_CONTROL, 0);
    h.epoch = e->epoch;
    h.seq = ++p->seq;
    h.sample_index = e->sample;
    h.payload_bytes = (uint32_t)n;
    int rc = st_wire_send(p->pub, &h, payload, (size_t)n, ZMQ_DONTWAIT);
    if (rc == ST_ERR_TIMEOUT) { /* PUB never blocks; a full queue drops (counted) */
        p->dropped++;
        return ST_OK;
    }
    if (!rc)
        p->sent++;
    return rc;
}

uint64_t st_agent_pub_sent(const st_agent_pub *p)
{
    return p ? p->sent : 0;
}

void st_agent_pub_destroy(st_agent_pub **p_p)
{
    if (!p_p || !*p_p)
        return;
    st_agent_pub *p = *p_p;
    if (p->pub)
        zmq_close(p->pub);
    if (p->zctx)
        zmq_ctx_term(p->zctx);
    free(p);
    *p_p = NULL;
}
