/*  pipeline/stage_asr.c - the `recognizer` stage: 16 kHz PCM in, the
    spiking keyword recognizer's words out (WORDS, final, one word each, with
    its start and end on the capture clock and its peak probability), as the
    streaming decider emits them. Other messages pass through in order.

    What it may touch: audio/ (front end), snn/asr.h. Workload: 10 ms
    chunks, one log-mel frame and ten engine steps each (~50 µs); buffers
    are allocated at create; a word or two a second out.
*/
#include "pipeline_impl.h"

#include "../audio/audio.h"
#include "../snn/asr.h"

#include <stdlib.h>
#include <string.h>

#define MAX_FRAMES 64
#define MAX_SAMPLES (MAX_FRAMES * 160)

typedef struct {
    st_asr *asr;
    st_asr_stream *stream;
    st_frontend *fe;
    float *pcm, *feat;
    uint64_t stamp[MAX_FRAMES];
    size_t n_feat;
    bool started, pass;
    unsigned char payload[512];
    uint64_t words;
} asr_stage;

static int as_create(st_stage *s, void **self)
{
    asr_stage *a = calloc(1, sizeof *a);
    if (!a)
        return st_error(ST_ERR_NOMEM, "out of memory");
    *self = a;
    int rc;
    const char *model = st_stage_param(s, "model", "models/asr_stream.stm");
    if ((rc = st_stage_param_bool(s, "pass", false, &a->pass)))
        return rc;
    if (!(a->asr = st_asr_load(model, &rc)) || !(a->stream = st_asr_stream_new(a->asr, NULL, &rc)))
        return rc;
    const st_asr_frontend_info *fi = st_asr_frontend(a->asr);
    st_frontend_params fp = st_frontend_default_params();
    fp.n_mels = fi->n_mels;
    fp.hop_ms = fi->hop_ms;
    fp.window_ms = fi->window_ms;
    if (!(a->fe = st_frontend_new(&fp, &rc)))
        return rc;
    a->n_feat = st_asr_features(a->asr);
    a->pcm = malloc(MAX_SAMPLES * sizeof(float));
    a->feat = malloc(MAX_FRAMES * a->n_feat * sizeof(float));
    if (!a->pcm || !a->feat)
        return st_error(ST_ERR_NOMEM, "out of memory");
    return ST_OK;
}

static int send_word(st_stage *s, asr_stage *a, const st_wire_msg *cause, const st_asr_event *ev)
{
    const char *text = st_asr_word(a->asr, (size_t)ev->word);
    st_wire_word w = {.start_sample = ev->start_stamp,
                      .end_sample = ev->end_stamp + 1,
                      .confidence = ev->score,
                      .text_bytes = (uint32_t)strlen(text),
                      .text = text};
    long n = st_wire_words_encode(a->payload, sizeof a->payload, ST_WORDS_FINAL, &w, 1);
    if (n < 0)
        return (int)n;
    st_wire_header h;
    st_stage_header(s, cause, &h);
    h.sample_index = ev->decided_stamp;
    a->words++;
    return st_stage_send(s, &h, ST_MSG_WORDS, a->payload, (size_t)n);
}

static int as_data(st_stage *s, void *self, const st_wire_msg *m)
{
    asr_stage *a = self;
    if (m->h.type != ST_MSG_PCM)
        return st_stage_forward(s, m);
    if (m->pcm.rate_hz != 16000)
        return st_error(ST_ERR_FORMAT, "stage '%s' (recognizer): PCM at %u Hz; put a resampler "
                                       "to 16000 before it", st_stage_name(s), m->pcm.rate_hz);
    if (!a->started) {
        st_frontend_reset(a->fe, m->h.sample_index);
        a->started = true;
    }
    size_t n = st_wire_pcm_read(&m->pcm, a->pcm, MAX_SAMPLES), used = 0, made = 0;
    st_frontend_process(a->fe, a->pcm, n, a->feat, a->stamp, MAX_FRAMES, &used, &made);
    for (size_t j = 0; j < made; j++) {
        st_asr_event ev;
        if (st_asr_stream_push(a->stream, a->feat + j * a->n_feat, a->stamp[j], &ev, NULL) == 1 &&
            ev.word >= 2) {
            int rc = send_word(s, a, m, &ev);
            if (rc)
                return rc;
        }
    }
    return a->pass ? st_stage_forward(s, m) : ST_OK;
}

static int as_control(st_stage *s, void *self, const st_wire_msg *m)
{
    asr_stage *a = self;
    if (!m->from_bus && m->control.cmd == ST_CTL_END) {
        st_asr_event ev;
        while (st_asr_stream_flush(a->stream, &ev) == 1) {
            int rc = ev.word >= 2 ? send_word(s, a, m, &ev) : ST_OK;
            if (rc)
                return rc;
        }
    }
    return ST_OK;
}

static void as_destroy(void *self)
{
    asr_stage *a = self;
    if (!a)
        return;
    st_asr_stream_destroy(&a->stream);
    st_asr_destroy(&a->asr);
    st_frontend_destroy(&a->fe);
    free(a->pcm);
    free(a->feat);
    free(a);
}

const st_stage_type st__stage_recognizer = {
    .name = "recognizer",
    .summary = "spiking keyword recognizer: 16 kHz PCM in, final WORDS (one word each) out",
    .params_help = "model = models/asr_stream.stm   the recognizer (snn/asr.h; the\n"
                   "                                streaming one, models/README.md)\n"
                   "pass = no                       pass the PCM on behind the words\n",
    .create = as_create,
    .data = as_data,
    .control = as_control,
    .destroy = as_destroy,
};
