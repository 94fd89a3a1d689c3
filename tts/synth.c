/*  tts/synth.c - the synthesizer stage: text in, chunks of audio and word
    events out, on one worker thread per stage.

    Data flow:
      st_tts_push() --text--> [text buffer, utterance records]
         worker: st_tts_find_cut() -> piece -> normalise -> engine -> sink
         sink: int16 -> float -> resampler (engine rate -> sink rate)
               -> [output queue: float ring + utterance marks] --> st_tts_read()
               word events -> [word ring] --> st_tts_read_words()

    Why a worker and not a pull API: both engines synthesize a piece in one
    blocking call that hands buffers to a callback (espeak-ng in synchronous
    mode, flite's streaming callback). A worker lets that call run ahead of
    the reader while the reader takes chunks as they come; when the output
    queue is full the callback waits, so memory stays bounded, and a cancel
    wakes it and makes it return "stop" to the engine.

    Positions: the resampler is signal aligned (input sample i comes out at
    output frame i * ratio), reset at the start of each utterance and flushed
    at its end, and fed every sample the engine delivers for the utterance's
    pieces in order; a word at engine sample s of a piece that started at
    in_total = b is at output frame round((b + s) * ratio) of its utterance.
    The reader's chunks carry the same frame count (position), so the two
    agree to the sample.

    Cancel: clears the text, the queued audio and the words under the lock
    and raises cancel_below; the worker checks it before every write into
    the queue (under the same lock) and in every engine callback, so no
    cancelled sample reaches the reader after st_tts_cancel() returns and the
    engine stops at its next buffer.

    Locking: one mutex guards everything shared; the worker holds it only to
    take a piece and to copy a block into the queue; the reader to copy a
    chunk out. Nothing here allocates after st_tts_new(). Touches only its
    own memory, the engines through st_tts_engine_ops, and, when
    worker_priority asks, its worker thread's scheduling policy; no files,
    no output (problems go to st_log()).

    Workload: answers of a few to a few hundred words; chunks of 10-20 ms;
    engine buffers of ~10 ms (espeak-ng) to ~20 ms (flite).
*/
#include "tts_impl.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_UTTERANCES 32        /* queued, not yet fully synthesized */
#define IN_BLOCK 512             /* engine samples per resampler call */
#define TAIL_SILENCE_MS 30.0     /* kept after a piece that does not end a clause */
#define JOIN_SILENCE_MS 20.0     /* kept before a piece that continues an utterance */
#define SYNTH_TIMEOUT_S 10.0     /* st_tts_synthesize(): no progress for this long */

static const st_tts_engine_ops *const engines[] = {&st_tts_engine_espeak, &st_tts_engine_flite};
#define N_ENGINES (sizeof engines / sizeof engines[0])

typedef struct {
    int id;
    size_t len;                  /* bytes of its text still in the buffer */
    bool ended;                  /* st_tts_end() came */
    uint32_t words_done;         /* words already cut into pieces */
    int pieces_done;
    double first_piece_s;        /* when its first piece was complete */
} in_utt;

typedef struct {
    int id;
    uint64_t start;              /* queue index of its first frame */
    uint64_t end;                /* queue index past its last frame; UINT64_MAX while open */
} out_utt;

struct st_tts {
    st_tts_params p;
    const st_tts_engine_ops *eng;
    void *es;
    int native_rate, rate;
    size_t chunk_frames;
    double ratio;
    st_resampler *rs;

    pthread_t thread;
    bool thread_started;
    pthread_mutex_t mu;
    pthread_cond_t cv_work, cv_out, cv_space, cv_idle;
    int waiting;                 /* where the worker waits (W_*), under mu */
    atomic_bool quit;
    atomic_int cancel_below;     /* utterances with a lower id are cancelled */

    /* ---- text in (under mu) ---- */
    char *text;
    size_t text_cap, text_len;
    in_utt in[MAX_UTTERANCES];
    size_t in_head, in_count;
    int next_id;
    bool in_piece;               /* the worker is synthesizing a piece */

    /* ---- audio and words out (under mu) ---- */
    float *q;
    size_t q_cap;                /* a power of two */
    uint64_t qw, qr;
    out_utt out[MAX_UTTERANCES + 1];
    size_t out_head, out_count;
    st_tts_word *words;
    size_t w_cap, w_head, w_count;
    st_tts_stats stats;
    bool first_audio_pending;

    /* ---- the worker's own ---- */
    char *piece;                 /* raw text of the piece, separators collapsed */
    size_t piece_cap, piece_len;
    char *norm;                  /* what the engine reads */
    size_t norm_cap;
    st_norm_span *spans;
    size_t spans_cap, n_spans;
    float *fin, *fout;
    size_t fout_cap;
    int piece_utt;
    uint32_t piece_first_word;
    st_cut piece_cut;
    int cur_utt;                 /* utterance the resampler is in */
    uint64_t in_total;           /* engine samples fed in this utterance */
    uint64_t piece_base;         /* in_total when the piece started */
    double blocked_s;            /* time spent waiting for the reader */
    bool acc_valid;              /* a word being merged from engine words */
    st_tts_word acc;
    st_tts_sink sink;
};

/* ---- small helpers -------------------------------------------------------- */

static void deadline_ts(double timeout_s, struct timespec *ts)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    double s = (double)ts->tv_sec + (double)ts->tv_nsec * 1e-9 + timeout_s;
    ts->tv_sec = (time_t)s;
    ts->tv_nsec = (long)((s - (double)ts->tv_sec) * 1e9);
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

static bool cancelled(const st_tts *t, int utt)
{
    return utt < atomic_load_explicit(&t->cancel_below, memory_order_acquire) ||
           atomic_load_explicit(&t->quit, memory_order_acquire);
}

static size_t next_pow2(size_t n)
{
    size_t c = 1;
    while (c < n)
        c <<= 1;
    return c;
}

const st_tts_engine_ops *st_tts_engine_find(const char *name)
{
    for (size_t i = 0; i < N_ENGINES; i++)
        if (!strcmp(engines[i]->name, name))
            return engines[i];
    if (!strcmp(name, "espeak-ng"))
        return &st_tts_engine_espeak;
    return NULL;
}

void st_tts_seed_draws(const char *key, const char *text)
{
    uint32_t h = 2166136261u;
    for (const char *q = key ? key : ""; *q; q++)
        h = (h ^ (uint8_t)*q) * 16777619u;
    for (const char *q = text ? text : ""; *q; q++)
        h = (h ^ (uint8_t)*q) * 16777619u;
    srand(h);
}

const char *st_tts_engine_name(int i)
{
    return i >= 0 && (size_t)i < N_ENGINES ? engines[i]->name : NULL;
}

int st_tts_list_voices(const char *engine, st_tts_voice_info *out, size_t max)
{
    const st_tts_engine_ops *e = st_tts_engine_find(engine ? engine : "espeak");
    if (!e)
        return st_error(ST_ERR_NOT_FOUND, "tts: no engine '%s' (espeak, flite)", engine);
    return e->list_voices(out, max);
}

st_tts_params st_tts_default_params(void)
{
    return (st_tts_params){
        .engine = "espeak",
        .voice = NULL,
        .rate_wpm = 0,
        .pitch = 50,
        .sample_rate_hz = 0,
        .chunk_ms = 10.0,
        .queue_s = 2.0,
        .quality = ST_RESAMPLE_MEDIUM,
        .first_piece_words = 0,
        .piece_words = 12,
        .lead_silence_ms = 50.0,
        .text_capacity = 65536,
        .word_capacity = 1024,
        .normalize = true,
        .worker_priority = 0,
    };
}

/* Where the worker waits: for a piece, for room before a piece, for space
   inside a piece (st_tts_quiesce). */
enum { W_NONE = 0, W_WORK, W_ROOM, W_SPACE };

/* Waits on cv for the worker, saying where (under mu). */
static void worker_wait(st_tts *t, pthread_cond_t *cv, int where)
{
    t->waiting = where;
    pthread_cond_broadcast(&t->cv_idle);
    pthread_cond_wait(cv, &t->mu);
    t->waiting = W_NONE;
}

/* ---- the worker: output side ------------------------------------------------ */

/*  Copies n frames into the queue, waiting for room; false when the piece
    was cancelled (nothing more of it may be written). */
static bool emit(st_tts *t, const float *x, size_t n)
{
    pthread_mutex_lock(&t->mu);
    while (n > 0) {
        if (cancelled(t, t->piece_utt)) {
            pthread_mutex_unlock(&t->mu);
            return false;
        }
        size_t room = t->q_cap - (size_t)(t->qw - t->qr);
        if (room == 0) {
            double t0 = st_now_s();
            worker_wait(t, &t->cv_space, W_SPACE);
            t->blocked_s += st_now_s() - t0;
            continue;
        }
        size_t m = n < room ? n : room;
        size_t at = (size_t)(t->qw & (t->q_cap - 1));
        size_t first = m < t->q_cap - at ? m : t->q_cap - at;
        memcpy(t->q + at, x, first * sizeof *x);
        memcpy(t->q, x + first, (m - first) * sizeof *x);
        t->qw += m;
        x += m;
        n -= m;
        if (t->first_audio_pending) {
            t->stats.first_audio_s = st_now_s();
            t->first_audio_pending = false;
        }
        pthread_cond_broadcast(&t->cv_out);
    }
    pthread_mutex_unlock(&t->mu);
    return true;
}

static void push_word(st_tts *t, const st_tts_word *w)
{
    pthread_mutex_lock(&t->mu);
    if (!cancelled(t, w->utterance)) {
        if (t->w_count == t->w_cap) {
            t->w_head = (t->w_head + 1) % t->w_cap;
            t->w_count--;
            t->stats.words_dropped++;
        }
        t->words[(t->w_head + t->w_count) % t->w_cap] = *w;
        t->w_count++;
    }
    pthread_mutex_unlock(&t->mu);
}

static void flush_word(st_tts *t)
{
    if (t->acc_valid)
        push_word(t, &t->acc);
    t->acc_valid = false;
}

static uint64_t out_pos(const st_tts *t, uint64_t in_index)
{
    return (uint64_t)llround((double)in_index * t->ratio);
}

/* ---- the sink the engines call --------------------------------------------- */

static bool sink_audio(st_tts_sink *s, const int16_t *pcm, size_t n)
{
    st_tts *t = s->user_data;
    if (cancelled(t, t->piece_utt))
        return false;
    while (n > 0) {
        size_t m = n < IN_BLOCK ? n : IN_BLOCK;
        for (size_t i = 0; i < m; i++)
            t->fin[i] = (float)pcm[i] * (1.0f / 32768.0f);
        size_t done = 0;
        while (done < m) {
            size_t used = 0, made = 0;
            int rc = st_resampler_process(t->rs, t->fin + done, m - done, t->fout, t->fout_cap,
                                          &used, &made);
            if (rc)
                return false;
            done += used;
            if (made && !emit(t, t->fout, made))
                return false;
            if (!used && !made)
                break;
        }
        t->in_total += m;
        pcm += m;
        n -= m;
    }
    return true;
}

static void sink_word(st_tts_sink *s, size_t text_offset, uint64_t start, uint64_t end)
{
    st_tts *t = s->user_data;
    if (t->n_spans == 0)
        return;
    size_t k = st_tts_span_at(t->spans, t->n_spans, text_offset);
    uint32_t idx = t->piece_first_word + (uint32_t)k;
    uint64_t a = out_pos(t, t->piece_base + start), z = out_pos(t, t->piece_base + end);
    if (z < a)
        z = a;
    if (t->acc_valid && t->acc.index == idx) {
        if (z > t->acc.end)
            t->acc.end = z;
        return;
    }
    flush_word(t);
    t->acc.utterance = t->piece_utt;
    t->acc.index = idx;
    t->acc.start = a;
    t->acc.end = z;
    st_tts_word_text(t->piece + t->spans[k].src_off, t->spans[k].src_len, t->acc.text,
                     sizeof t->acc.text);
    t->acc_valid = true;
}

/* ---- the worker: input side ------------------------------------------------- */

/*  Copies text[0..len) into the piece buffer with every run of separators
    made one space (the words, and how st_tts_next_word() splits them, stay
    the same). */
static void copy_piece(st_tts *t, const char *text, size_t len)
{
    size_t pos = 0, ws, wl, o = 0, prev_end = 0;
    while (st_tts_next_word(text, len, &pos, &ws, &wl)) {
        /* the parts of a long run split in two stay glued */
        if (o > 0 && ws != prev_end)
            t->piece[o++] = ' ';
        if (o + wl + 1 > t->piece_cap)
            break;
        memcpy(t->piece + o, text + ws, wl);
        o += wl;
        prev_end = ws + wl;
    }
    t->piece[o] = '\0';
    t->piece_len = o;
}

/* Offset in the text buffer of queued utterance i (0 = the head). */
static size_t utt_offset(const st_tts *t, size_t i)
{
    size_t off = 0;
    for (size_t k = 0; k < i; k++)
        off += t->in[(t->in_head + k) % MAX_UTTERANCES].len;
    return off;
}

/* Stamps the moment queued utterance i's first piece became complete. */
static void stamp_first_piece(st_tts *t, size_t i)
{
    in_utt *u = &t->in[(t->in_head + i) % MAX_UTTERANCES];
    if (u->first_piece_s > 0 || u->pieces_done > 0)
        return;
    st_cut cut;
    if (st_tts_find_cut(t->text + utt_offset(t, i), u->len, u->ended, t->p.first_piece_words, &cut))
        u->first_piece_s = st_now_s();
}

/*  Whether the worker could take a piece now (under mu). */
static bool head_has_piece(const st_tts *t)
{
    if (t->in_count == 0)
        return false;
    const in_utt *u = &t->in[t->in_head];
    st_cut cut;
    int limit = u->pieces_done == 0 ? t->p.first_piece_words : t->p.piece_words;
    return st_tts_find_cut(t->text, u->len, u->ended, limit, &cut);
}

/*  Takes the next piece (under mu). False when none is complete. */
static bool take_piece(st_tts *t)
{
    if (t->in_count == 0)
        return false;
    in_utt *u = &t->in[t->in_head];
    if (u->pieces_done == 0 && t->out_count == MAX_UTTERANCES + 1)
        return false;  /* the reader has not finished the earlier ones */
    int limit = u->pieces_done == 0 ? t->p.first_piece_words : t->p.piece_words;
    st_cut cut;
    if (!st_tts_find_cut(t->text, u->len, u->ended, limit, &cut))
        return false;
    copy_piece(t, t->text, cut.len);
    memmove(t->text, t->text + cut.len, t->text_len - cut.len);
    t->text_len -= cut.len;
    u->len -= cut.len;
    t->piece_utt = u->id;
    t->piece_first_word = u->words_done;
    t->piece_cut = cut;
    u->words_done += (uint32_t)cut.words;
    t->stats.pieces++;
    if (u->pieces_done++ == 0) {
        t->stats.utterances++;
        t->stats.first_piece_s = u->first_piece_s > 0 ? u->first_piece_s : st_now_s();
        t->stats.first_audio_s = 0;
        t->first_audio_pending = true;
        /* its place in the output queue */
        out_utt *m = &t->out[(t->out_head + t->out_count) % (MAX_UTTERANCES + 1)];
        m->id = u->id;
        m->start = t->qw;
        m->end = UINT64_MAX;
        t->out_count++;
    }
    if (cut.last) {
        t->in_head = (t->in_head + 1) % MAX_UTTERANCES;
        t->in_count--;
    }
    t->in_piece = true;
    return true;
}

static void finish_utterance(st_tts *t)
{
    size_t made = 0;
    do {
        if (st_resampler_flush(t->rs, t->fout, t->fout_cap, &made) || !emit(t, t->fout, made))
            break;
    } while (made > 0);
    pthread_mutex_lock(&t->mu);
    if (!cancelled(t, t->piece_utt)) {
        for (size_t i = 0; i < t->out_count; i++) {
            out_utt *m = &t->out[(t->out_head + i) % (MAX_UTTERANCES + 1)];
            if (m->id == t->piece_utt)
                m->end = t->qw;
        }
        pthread_cond_broadcast(&t->cv_out);
    }
    pthread_mutex_unlock(&t->mu);
}

/*  Waits (outside any engine lock) until the queue is at most half full, so
    that a piece rarely has to wait for the reader inside the engine's
    callback, where it would hold the engine from every other stage. */
static void wait_for_room(st_tts *t)
{
    pthread_mutex_lock(&t->mu);
    while (!cancelled(t, t->piece_utt) && (size_t)(t->qw - t->qr) > t->q_cap / 2) {
        double t0 = st_now_s();
        worker_wait(t, &t->cv_space, W_ROOM);
        t->blocked_s += st_now_s() - t0;
    }
    pthread_mutex_unlock(&t->mu);
}

static void run_piece(st_tts *t)
{
    double t0 = st_now_s();
    t->blocked_s = 0;
    wait_for_room(t);
    if (t->piece_utt != t->cur_utt) {
        st_resampler_reset(t->rs);
        t->cur_utt = t->piece_utt;
        t->in_total = 0;
        t->acc_valid = false;
    }
    t->piece_base = t->in_total;
    long len = -1;
    if (t->p.normalize) {
        len = st_tts_normalize_map(t->piece, t->piece_len, t->norm, t->norm_cap,
                                   t->eng->ascii_only, t->spans, t->spans_cap, &t->n_spans);
        if (len < 0)  /* cannot happen within the bounds st_tts_new() sized; say it as written */
            st_log(ST_LOG_WARN, "tts: a piece could not be normalised: %s", st_errmsg());
    }
    if (len < 0) {
        /* the text as it is; the spans still map words back */
        memcpy(t->norm, t->piece, t->piece_len + 1);
        size_t pos = 0, ws, wl;
        t->n_spans = 0;
        while (t->n_spans < t->spans_cap && st_tts_next_word(t->piece, t->piece_len, &pos, &ws, &wl))
            t->spans[t->n_spans++] = (st_norm_span){.out_off = ws, .src_off = ws, .src_len = wl};
        len = (long)t->piece_len;
    }
    st_log(ST_LOG_DEBUG, "tts: utterance %d piece (words %u+%d, cut %d%s): \"%s\"", t->piece_utt,
           t->piece_first_word, t->piece_cut.words, (int)t->piece_cut.kind,
           t->piece_cut.last ? ", last" : "", len > 0 ? t->norm : "");
    /* punctuation alone would be silence (espeak-ng makes its pauses): skip */
    bool speakable = false;
    for (long i = 0; i < len && !speakable; i++)
        speakable = isalnum((unsigned char)t->norm[i]) || (unsigned char)t->norm[i] >= 0x80;
    if (speakable && !cancelled(t, t->piece_utt)) {
        unsigned flags = (t->piece_cut.kind == ST_CUT_CLAUSE || t->piece_cut.kind == ST_CUT_SENTENCE)
                             ? ST_ENGINE_END_PAUSE
                             : t->piece_cut.last ? ST_ENGINE_LAST : 0;
        if (t->piece_base == 0)  /* nothing of the utterance sounded yet */
            flags |= ST_ENGINE_FIRST;
        uint64_t before = t->in_total;
        int rc = t->eng->synth(t->es, t->norm, flags, &t->sink);
        if (rc)
            st_log(ST_LOG_WARN, "tts: %s", st_errmsg());
        pthread_mutex_lock(&t->mu);
        t->stats.audio_s += (double)(t->in_total - before) / t->native_rate;
        pthread_mutex_unlock(&t->mu);
    }
    if (!cancelled(t, t->piece_utt))
        flush_word(t);
    t->acc_valid = false;
    if (t->piece_cut.last && !cancelled(t, t->piece_utt))
        finish_utterance(t);
    double dt = st_now_s() - t0 - t->blocked_s;
    pthread_mutex_lock(&t->mu);
    t->stats.compute_s += dt > 0 ? dt : 0;
    t->in_piece = false;
    if (cancelled(t, t->piece_utt) && t->stats.last_stop_s == 0)
        t->stats.last_stop_s = st_now_s();
    pthread_cond_broadcast(&t->cv_out);
    pthread_mutex_unlock(&t->mu);
}

static void *worker(void *arg)
{
    st_tts *t = arg;
    pthread_mutex_lock(&t->mu);
    for (;;) {
        while (!atomic_load(&t->quit) && !take_piece(t))
            worker_wait(t, &t->cv_work, W_WORK);
        if (atomic_load(&t->quit))
            break;
        pthread_mutex_unlock(&t->mu);
        run_piece(t);
        pthread_mutex_lock(&t->mu);
    }
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

/* ---- construction --------------------------------------------------------- */

static int check_params(const st_tts_params *p)
{
    if (p->rate_wpm != 0 && (p->rate_wpm < 80 || p->rate_wpm > 450))
        return st_error(ST_ERR_INVALID, "tts: rate_wpm %d is outside 80..450 (0 = default)",
                        p->rate_wpm);
    if (p->pitch < 0 || p->pitch > 100)
        return st_error(ST_ERR_INVALID, "tts: pitch %d is outside 0..100", p->pitch);
    if (p->sample_rate_hz != 0 && (p->sample_rate_hz < 4000 || p->sample_rate_hz > 384000))
        return st_error(ST_ERR_INVALID, "tts: sample_rate_hz %d is outside 4000..384000",
                        p->sample_rate_hz);
    if (!(p->chunk_ms >= 1.0 && p->chunk_ms <= ST_TTS_MAX_CHUNK_MS))
        return st_error(ST_ERR_INVALID, "tts: chunk_ms %g is outside 1..%d", p->chunk_ms,
                        ST_TTS_MAX_CHUNK_MS);
    if (!(p->queue_s >= 0.05 && p->queue_s <= 60))
        return st_error(ST_ERR_INVALID, "tts: queue_s %g is outside 0.05..60", p->queue_s);
    if (p->first_piece_words < 0 || p->first_piece_words > 64 || p->piece_words < 1 ||
        p->piece_words > 64)
        return st_error(ST_ERR_INVALID,
                        "tts: first_piece_words %d (0..64) / piece_words %d (1..64) out of range",
                        p->first_piece_words, p->piece_words);
    if (!(p->lead_silence_ms >= 0 && p->lead_silence_ms <= 1000))
        return st_error(ST_ERR_INVALID, "tts: lead_silence_ms %g is outside 0..1000",
                        p->lead_silence_ms);
    if (p->text_capacity < 256 || p->text_capacity > ((size_t)1 << 26))
        return st_error(ST_ERR_INVALID, "tts: text_capacity %zu is outside 256..64 MiB",
                        p->text_capacity);
    if (p->word_capacity < 1 || p->word_capacity > ((size_t)1 << 20))
        return st_error(ST_ERR_INVALID, "tts: word_capacity %zu is outside 1..1M", p->word_capacity);
    if (p->worker_priority < 0 || p->worker_priority > 99)
        return st_error(ST_ERR_INVALID, "tts: worker_priority %d is outside 0..99",
                        p->worker_priority);
    return ST_OK;
}

st_tts *st_tts_new(const st_tts_params *params, int *err)
{
    int rc = ST_OK;
    st_tts_params p = params ? *params : st_tts_default_params();
    if (!p.engine)
        p.engine = "espeak";
    st_tts *t = NULL;
    const st_tts_engine_ops *eng = st_tts_engine_find(p.engine);
    if (!eng) {
        rc = st_error(ST_ERR_NOT_FOUND, "tts: no engine '%s' (espeak, flite)", p.engine);
        goto fail;
    }
    if ((rc = check_params(&p)))
        goto fail;
    t = calloc(1, sizeof *t);
    if (!t) {
        rc = st_error(ST_ERR_NOMEM, "tts: out of memory");
        goto fail;
    }
    t->p = p;
    t->p.voice = NULL;  /* borrowed from the caller: the engine keeps its own copy */
    t->p.engine = eng->name;
    t->eng = eng;
    st_tts_engine_opts o = {.rate_wpm = p.rate_wpm,
                            .pitch = p.pitch,
                            .lead_silence_ms = p.lead_silence_ms,
                            .join_silence_ms = JOIN_SILENCE_MS,
                            .tail_silence_ms = TAIL_SILENCE_MS};
    t->es = eng->open(p.voice, &o, &rc);
    if (!t->es)
        goto fail;
    t->native_rate = eng->native_rate_hz(t->es);
    if (t->p.first_piece_words == 0)
        t->p.first_piece_words = eng->first_piece_words(t->es);
    p.first_piece_words = t->p.first_piece_words;
    t->rate = p.sample_rate_hz ? p.sample_rate_hz : t->native_rate;
    t->rs = st_resampler_new(t->native_rate, t->rate, p.quality, &rc);
    if (!t->rs)
        goto fail;
    t->ratio = (double)t->rate / t->native_rate;
    t->chunk_frames = (size_t)floor(t->rate * p.chunk_ms / 1000.0);
    if (t->chunk_frames < 1)
        t->chunk_frames = 1;
    size_t qn = (size_t)ceil(p.queue_s * t->rate);
    if (qn < 4 * t->chunk_frames)
        qn = 4 * t->chunk_frames;
    t->q_cap = next_pow2(qn);
    int maxw = p.first_piece_words > p.piece_words ? p.first_piece_words : p.piece_words;
    t->piece_cap = (size_t)maxw * (ST_TTS_MAX_WORD_BYTES + 1) + 16;
    t->norm_cap = 16 * t->piece_cap + 64;
    t->spans_cap = (size_t)maxw + 1;
    t->fout_cap = st_resampler_max_output(t->rs, IN_BLOCK);
    if (t->fout_cap < 4096)
        t->fout_cap = 4096;
    t->text_cap = p.text_capacity;
    t->w_cap = p.word_capacity;
    t->text = malloc(t->text_cap);
    t->q = calloc(t->q_cap, sizeof *t->q);
    t->words = calloc(t->w_cap, sizeof *t->words);
    t->piece = malloc(t->piece_cap);
    t->norm = malloc(t->norm_cap);
    t->spans = calloc(t->spans_cap, sizeof *t->spans);
    t->fin = malloc(IN_BLOCK * sizeof *t->fin);
    t->fout = malloc(t->fout_cap * sizeof *t->fout);
    if (!t->text || !t->q || !t->words || !t->piece || !t->norm || !t->spans || !t->fin ||
        !t->fout) {
        rc = st_error(ST_ERR_NOMEM, "tts: out of memory");
        goto fail;
    }
    t->next_id = 1;
    atomic_init(&t->cancel_below, 0);
    atomic_init(&t->quit, false);
    t->sink.audio = sink_audio;
    t->sink.word = sink_word;
    t->sink.user_data = t;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->cv_work, &ca);
    pthread_cond_init(&t->cv_out, &ca);
    pthread_cond_init(&t->cv_space, &ca);
    pthread_cond_init(&t->cv_idle, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&t->thread, NULL, worker, t)) {
        rc = st_error(ST_ERR_NOMEM, "tts: cannot start the worker thread");
        goto fail_sync;
    }
    t->thread_started = true;
    if (p.worker_priority > 0) {
        struct sched_param sp = {.sched_priority = p.worker_priority};
        int e = pthread_setschedparam(t->thread, SCHED_FIFO, &sp);
        if (e)
            st_log(ST_LOG_WARN, "tts: worker_priority %d: SCHED_FIFO refused (%s); the worker "
                                "runs at the normal priority",
                   p.worker_priority, strerror(e));
    }
    if (err)
        *err = ST_OK;
    return t;

fail_sync:
    pthread_mutex_destroy(&t->mu);
    pthread_cond_destroy(&t->cv_work);
    pthread_cond_destroy(&t->cv_out);
    pthread_cond_destroy(&t->cv_space);
    pthread_cond_destroy(&t->cv_idle);
fail:
    if (t) {
        if (t->es)
            t->eng->close(t->es);
        st_resampler_destroy(&t->rs);
        free(t->text);
        free(t->q);
        free(t->words);
        free(t->piece);
        free(t->norm);
        free(t->spans);
        free(t->fin);
        free(t->fout);
        free(t);
    }
    if (err)
        *err = rc;
    return NULL;
}

void st_tts_destroy(st_tts **t_p)
{
    if (!t_p || !*t_p)
        return;
    st_tts *t = *t_p;
    *t_p = NULL;
    pthread_mutex_lock(&t->mu);
    atomic_store(&t->quit, true);
    pthread_cond_broadcast(&t->cv_work);
    pthread_cond_broadcast(&t->cv_space);
    pthread_cond_broadcast(&t->cv_out);
    pthread_mutex_unlock(&t->mu);
    if (t->thread_started)
        pthread_join(t->thread, NULL);
    pthread_mutex_destroy(&t->mu);
    pthread_cond_destroy(&t->cv_work);
    pthread_cond_destroy(&t->cv_out);
    pthread_cond_destroy(&t->cv_space);
    pthread_cond_destroy(&t->cv_idle);
    t->eng->close(t->es);
    st_resampler_destroy(&t->rs);
    free(t->text);
    free(t->q);
    free(t->words);
    free(t->piece);
    free(t->norm);
    free(t->spans);
    free(t->fin);
    free(t->fout);
    free(t);
}

/* ---- text in -------------------------------------------------------------- */

/* The open utterance at the tail, opening one if needed (under mu). */
static in_utt *open_utterance(st_tts *t, int *rc)
{
    if (t->in_count > 0) {
        in_utt *u = &t->in[(t->in_head + t->in_count - 1) % MAX_UTTERANCES];
        if (!u->ended)
            return u;
    }
    if (t->in_count == MAX_UTTERANCES) {
        *rc = st_error(ST_ERR_STATE, "tts: %d utterances already queued", MAX_UTTERANCES);
        return NULL;
    }
    in_utt *u = &t->in[(t->in_head + t->in_count) % MAX_UTTERANCES];
    memset(u, 0, sizeof *u);
    u->id = t->next_id++;
    if (t->next_id == INT32_MAX) {
        t->next_id = 1;  /* after two billion utterances: start again */
        atomic_store_explicit(&t->cancel_below, 0, memory_order_release);
    }
    t->in_count++;
    return u;
}

int st_tts_push(st_tts *t, const char *text)
{
    assert(t && text);
    size_t n = strlen(text);
    int rc = ST_OK;
    pthread_mutex_lock(&t->mu);
    in_utt *u = open_utterance(t, &rc);
    if (u && t->text_len + n > t->text_cap)
        rc = st_error(ST_ERR_NOMEM,
                      "tts: text queue full (%zu of %zu bytes): read audio first or raise "
                      "text_capacity",
                      t->text_len, t->text_cap);
    if (u && rc == ST_OK) {
        memcpy(t->text + t->text_len, text, n);
        t->text_len += n;
        u->len += n;
        stamp_first_piece(t, t->in_count - 1);
        /* wake the worker only for a piece it can take: a wake-up per token
           would cost a context switch each, for nothing */
        if (head_has_piece(t))
            pthread_cond_signal(&t->cv_work);
        rc = u->id;
    }
    pthread_mutex_unlock(&t->mu);
    return rc;
}

int st_tts_end(st_tts *t)
{
    assert(t);
    int rc = ST_OK;
    pthread_mutex_lock(&t->mu);
    in_utt *u = open_utterance(t, &rc);
    if (u) {
        u->ended = true;
        stamp_first_piece(t, t->in_count - 1);
        pthread_cond_signal(&t->cv_work);
        rc = u->id;
    }
    pthread_mutex_unlock(&t->mu);
    return rc;
}

int st_tts_say(st_tts *t, const char *text)
{
    int rc = st_tts_push(t, text);
    return rc < 0 ? rc : st_tts_end(t);
}

void st_tts_cancel(st_tts *t)
{
    assert(t);
    pthread_mutex_lock(&t->mu);
    atomic_store_explicit(&t->cancel_below, t->next_id, memory_order_release);
    t->text_len = 0;
    t->in_count = 0;
    t->qr = t->qw;
    t->out_count = 0;
    t->w_count = 0;
    t->stats.cancels++;
    t->stats.last_cancel_s = st_now_s();
    t->stats.last_stop_s = t->in_piece ? 0 : t->stats.last_cancel_s;
    t->first_audio_pending = false;
    pthread_cond_broadcast(&t->cv_space);
    pthread_cond_broadcast(&t->cv_out);
    pthread_mutex_unlock(&t->mu);
}

/*  Whether the worker cannot go on without the caller (under mu): it waits
    for a piece and none is complete, or for room that the reader has not
    made. Then where it stopped follows from what was pushed and read alone. */
static bool quiescent(const st_tts *t)
{
    switch (t->waiting) {
    case W_WORK: {
        if (t->in_count == 0)
            return true;
        const in_utt *u = &t->in[t->in_head];
        if (u->pieces_done == 0 && t->out_count == MAX_UTTERANCES + 1)
            return true;
        return !head_has_piece(t);
    }
    case W_ROOM:
        return !cancelled(t, t->piece_utt) && (size_t)(t->qw - t->qr) > t->q_cap / 2;
    case W_SPACE:
        return !cancelled(t, t->piece_utt) && (size_t)(t->qw - t->qr) == t->q_cap;
    default:
        return false;
    }
}

int st_tts_quiesce(st_tts *t, double timeout_s)
{
    assert(t);
    struct timespec dl;
    deadline_ts(timeout_s, &dl);
    int rc = ST_OK;
    pthread_mutex_lock(&t->mu);
    while (!quiescent(t) && !atomic_load(&t->quit))
        if (pthread_cond_timedwait(&t->cv_idle, &t->mu, &dl) == ETIMEDOUT) {
            if (!quiescent(t))
                rc = ST_ERR_TIMEOUT;
            break;
        }
    pthread_mutex_unlock(&t->mu);
    return rc;
}

/* ---- audio and words out ------------------------------------------------- */

long st_tts_read(st_tts *t, float *out, size_t max_frames, double timeout_s, st_tts_chunk *info)
{
    assert(t && out && max_frames > 0);
    struct timespec dl;
    bool have_dl = false;
    pthread_mutex_lock(&t->mu);
    for (;;) {
        if (t->out_count > 0) {
            out_utt *m = &t->out[t->out_head];
            uint64_t limit = m->end != UINT64_MAX ? m->end : t->qw;
            if (t->qr < limit) {
                size_t n = (size_t)(limit - t->qr);
                if (n > max_frames)
                    n = max_frames;
                if (n > t->chunk_frames)
                    n = t->chunk_frames;
                size_t at = (size_t)(t->qr & (t->q_cap - 1));
                size_t first = n < t->q_cap - at ? n : t->q_cap - at;
                memcpy(out, t->q + at, first * sizeof *out);
                memcpy(out + first, t->q, (n - first) * sizeof *out);
                if (info) {
                    info->utterance = m->id;
                    info->position = t->qr - m->start;
                    info->end = m->end == t->qr + n;
                }
                t->qr += n;
                t->stats.frames_out += n;
                if (m->end == t->qr) {
                    t->out_head = (t->out_head + 1) % (MAX_UTTERANCES + 1);
                    t->out_count--;
                    pthread_cond_signal(&t->cv_work);
                }
                pthread_cond_signal(&t->cv_space);
                pthread_mutex_unlock(&t->mu);
                return (long)n;
            }
            if (m->end == t->qr) {
                if (info) {
                    info->utterance = m->id;
                    info->position = t->qr - m->start;
                    info->end = true;
                }
                t->out_head = (t->out_head + 1) % (MAX_UTTERANCES + 1);
                t->out_count--;
                pthread_cond_signal(&t->cv_work);
                pthread_mutex_unlock(&t->mu);
                return 0;
            }
        }
        if (timeout_s <= 0)
            break;
        if (!have_dl) {
            deadline_ts(timeout_s, &dl);
            have_dl = true;
        }
        if (pthread_cond_timedwait(&t->cv_out, &t->mu, &dl) == ETIMEDOUT)
            timeout_s = 0;  /* one last look, then give up */
    }
    pthread_mutex_unlock(&t->mu);
    return ST_ERR_TIMEOUT;
}

size_t st_tts_read_words(st_tts *t, st_tts_word *out, size_t max)
{
    assert(t && (out || max == 0));
    pthread_mutex_lock(&t->mu);
    size_t n = 0;
    while (n < max && t->w_count > 0) {
        out[n++] = t->words[t->w_head];
        t->w_head = (t->w_head + 1) % t->w_cap;
        t->w_count--;
    }
    pthread_mutex_unlock(&t->mu);
    return n;
}

/* ---- whole utterances ------------------------------------------------------- */

int st_tts_synthesize(st_tts *t, const char *text, st_tts_result *out)
{
    assert(t && text && out);
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&t->mu);
    bool busy = t->in_count > 0 || t->out_count > 0;
    pthread_mutex_unlock(&t->mu);
    if (busy)
        return st_error(ST_ERR_STATE, "tts: synthesize needs an idle stage (cancel first)");
    int id = st_tts_say(t, text);
    if (id < 0)
        return id;
    size_t cap = 0, wcap = 0;
    float *chunk = malloc(t->chunk_frames * sizeof *chunk);
    int rc = chunk ? ST_OK : st_error(ST_ERR_NOMEM, "tts: out of memory");
    bool done = false;
    while (rc == ST_OK && !done) {
        st_tts_chunk info;
        long n = st_tts_read(t, chunk, t->chunk_frames, SYNTH_TIMEOUT_S, &info);
        if (n == ST_ERR_TIMEOUT) {
            rc = st_error(ST_ERR_TIMEOUT, "tts: the engine made no audio for %g s", SYNTH_TIMEOUT_S);
            break;
        }
        if (info.utterance != id)
            continue;
        if (out->frames + (size_t)n > cap) {
            size_t nc = cap ? 2 * cap : 65536;
            while (nc < out->frames + (size_t)n)
                nc *= 2;
            float *g = realloc(out->samples, nc * sizeof *g);
            if (!g) {
                rc = st_error(ST_ERR_NOMEM, "tts: out of memory");
                break;
            }
            out->samples = g;
            cap = nc;
        }
        memcpy(out->samples + out->frames, chunk, (size_t)n * sizeof *chunk);
        out->frames += (size_t)n;
        done = info.end;
        /* words as they come, so that a long text does not overflow the ring */
        for (;;) {
            if (out->n_words == wcap) {
                size_t nc = wcap ? 2 * wcap : 64;
                st_tts_word *g = realloc(out->words, nc * sizeof *g);
                if (!g) {
                    rc = st_error(ST_ERR_NOMEM, "tts: out of memory");
                    break;
                }
                out->words = g;
                wcap = nc;
            }
            size_t got = st_tts_read_words(t, out->words + out->n_words, wcap - out->n_words);
            out->n_words += got;
            if (got == 0)
                break;
        }
    }
    free(chunk);
    out->sample_rate_hz = t->rate;
    if (rc) {
        st_tts_cancel(t);
        st_tts_result_free(out);
    }
    return rc;
}

void st_tts_result_free(st_tts_result *r)
{
    if (!r)
        return;
    free(r->samples);
    free(r->words);
    memset(r, 0, sizeof *r);
}

/* ---- information ------------------------------------------------------------ */

int st_tts_sample_rate_hz(const st_tts *t)
{
    return t->rate;
}

int st_tts_native_rate_hz(const st_tts *t)
{
    return t->native_rate;
}

size_t st_tts_chunk_frames(const st_tts *t)
{
    return t->chunk_frames;
}

const char *st_tts_engine(const st_tts *t)
{
    return t->eng->name;
}

const char *st_tts_voice(const st_tts *t)
{
    return t->eng->voice(t->es);
}

void st_tts_get_stats(st_tts *t, st_tts_stats *s)
{
    pthread_mutex_lock(&t->mu);
    *s = t->stats;
    pthread_mutex_unlock(&t->mu);
}
