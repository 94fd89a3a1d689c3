/*  pipeline/stage_tts.c - the `synthesizer` stage: the agent's text tokens
    in, speech out, over tts/ (espeak-ng or flite). Tokens are pushed as
    they arrive (the synthesizer starts on the first clause while the rest
    is still being written); an utterance ends with a token flagged END; an
    INTERRUPT on the bus cancels what is queued and being said. Audio goes
    out in chunks of at most 10 ms, each carrying the capture sample index
    and the turn of the text it speaks.

    What it may touch: tts/. Workload: one answer at a time, a token every
    few tens of ms, 10 ms chunks polled every 2 ms; the synthesizer's own
    worker thread does the synthesis, this stage only moves text and audio.
*/
#include "pipeline_impl.h"

#include "../tts/tts.h"

#include <stdlib.h>
#include <string.h>

#define TOKEN_MAX 4096
#define MAX_OPEN 32          /* utterances in flight (st_tts queues at most 32) */

typedef struct {
    st_tts *tts;
    float *buf;
    size_t chunk;
    char *text;              /* NUL-terminated copy of a token */
    /* The header of the first token of each utterance in flight, by id. */
    int ids[MAX_OPEN];
    st_wire_header hdr[MAX_OPEN];
    int n_open;
    bool utterance_open;
    int rate_hz;
    uint64_t cancels;
} synth;

static int sy_create(st_stage *s, void **self)
{
    synth *y = calloc(1, sizeof *y);
    if (!y)
        return st_error(ST_ERR_NOMEM, "out of memory");
    *self = y;
    st_tts_params p = st_tts_default_params();
    long rate, wpm, pitch;
    double chunk_ms;
    int rc;
    if ((rc = st_stage_param_int(s, "rate", 16000, 0, 192000, &rate)) ||
        (rc = st_stage_param_int(s, "rate_wpm", 0, 0, 450, &wpm)) ||
        (rc = st_stage_param_int(s, "pitch", 50, 0, 100, &pitch)) ||
        (rc = st_stage_param_double(s, "chunk_ms", 10, 1, ST_TTS_MAX_CHUNK_MS, &chunk_ms)))
        return rc;
    p.engine = st_stage_param(s, "engine", p.engine);
    p.voice = st_stage_param(s, "voice", p.voice);
    p.sample_rate_hz = (int)rate;
    p.rate_wpm = (int)wpm;
    p.pitch = (int)pitch;
    p.chunk_ms = chunk_ms;
    y->tts = st_tts_new(&p, &rc);
    if (!y->tts)
        return rc;
    y->rate_hz = st_tts_sample_rate_hz(y->tts);
    y->chunk = st_tts_chunk_frames(y->tts);
    y->buf = malloc(y->chunk * sizeof(float));
    y->text = malloc(TOKEN_MAX + 1);
    if (!y->buf || !y->text)
        return st_error(ST_ERR_NOMEM, "out of memory");
    st_stage_set_tick(s, 2.0);
    return ST_OK;
}

static void remember(synth *y, int id, const st_wire_header *h)
{
    for (int i = 0; i < y->n_open; i++)
        if (y->ids[i] == id)
            return;
    if (y->n_open == MAX_OPEN) {
        memmove(y->ids, y->ids + 1, (MAX_OPEN - 1) * sizeof y->ids[0]);
        memmove(y->hdr, y->hdr + 1, (MAX_OPEN - 1) * sizeof y->hdr[0]);
        y->n_open--;
    }
    y->ids[y->n_open] = id;
    y->hdr[y->n_open++] = *h;
}

static int forget(synth *y, int id)
{
    for (int i = 0; i < y->n_open; i++)
        if (y->ids[i] == id) {
            memmove(y->ids + i, y->ids + i + 1, (size_t)(y->n_open - i - 1) * sizeof y->ids[0]);
            memmove(y->hdr + i, y->hdr + i + 1, (size_t)(y->n_open - i - 1) * sizeof y->hdr[0]);
            y->n_open--;
            return 1;
        }
    return 0;
}

static int sy_data(st_stage *s, void *self, const st_wire_msg *m)
{
    synth *y = self;
    if (m->h.type != ST_MSG_TEXT)
        return st_stage_forward(s, m);
    size_t n = m->text.bytes < TOKEN_MAX ? m->text.bytes : TOKEN_MAX;
    memcpy(y->text, m->text.text, n);
    y->text[n] = '\0';
    int id = n ? st_tts_push(y->tts, y->text) : 0;
    if (id < 0)
        return id;
    y->utterance_open = true;
    if (m->text.flags & ST_TEXT_END) {
        int end = st_tts_end(y->tts);
        if (end < 0)
            return end;
        id = end;
        y->utterance_open = false;
    }
    if (id > 0)
        remember(y, id, &m->h);
    return ST_OK;
}

/* Moves every chunk ready now (or, waiting, until the utterances end). */
static int pump(st_stage *s, synth *y, double wait_s)
{
    for (;;) {
        st_tts_chunk info;
        long got = st_tts_read(y->tts, y->buf, y->chunk, wait_s, &info);
        if (got == ST_ERR_TIMEOUT)
            return ST_OK;
        if (got < 0)
            return (int)got;
        st_wire_header h;
        const st_wire_header *cause = NULL;
        for (int i = 0; i < y->n_open; i++)
            if (y->ids[i] == info.utterance)
                cause = &y->hdr[i];
        if (cause)
            h = *cause;
        else
            st_stage_header(s, NULL, &h);
        if (got > 0) {
            int rc = st_stage_send_pcm(s, &h, (uint32_t)y->rate_hz, y->buf, (size_t)got);
            if (rc)
                return rc;
        }
        if (info.end) {
            forget(y, info.utterance);
            if (wait_s > 0 && y->n_open == 0)
                return ST_OK;
        }
    }
}

static int sy_tick(st_stage *s, void *self)
{
    return pump(s, self, 0);
}

static int sy_control(st_stage *s, void *self, const st_wire_msg *m)
{
    synth *y = self;
    if (m->from_bus && m->control.cmd == ST_CTL_INTERRUPT) {
        st_tts_cancel(y->tts);
        y->n_open = 0;
        y->utterance_open = false;
        y->cancels++;
        return ST_OK;
    }
    if (!m->from_bus && m->control.cmd == ST_CTL_END) {
        /* The stream ends: say the rest before END goes on. */
        if (y->utterance_open) {
            int id = st_tts_end(y->tts);
            y->utterance_open = false;
            if (id > 0)
                remember(y, id, &m->h);
        }
        if (y->n_open)
            return pump(s, y, 5.0);
    }
    return ST_OK;
}

static void sy_destroy(void *self)
{
    synth *y = self;
    if (!y)
        return;
    st_tts_destroy(&y->tts);
    free(y->buf);
    free(y->text);
    free(y);
}

const st_stage_type st__stage_synthesizer = {
    .name = "synthesizer",
    .summary = "speaks text tokens as they come (espeak-ng or flite); cancels on interrupt",
    .params_help = "engine = espeak     espeak or flite\n"
                   "voice =             the engine's voice (spiketalk say --list-voices)\n"
                   "rate = 16000        output rate, Hz (0: the voice's own)\n"
                   "rate_wpm = 0        words per minute (0: the engine's default)\n"
                   "pitch = 50          0 to 100\n"
                   "chunk_ms = 10       audio per message, at most 20\n",
    .create = sy_create,
    .data = sy_data,
    .control = sy_control,
    .tick = sy_tick,
    .destroy = sy_destroy,
};
