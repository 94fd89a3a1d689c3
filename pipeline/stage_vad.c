/*  pipeline/stage_vad.c - the `vad` stage: 16 kHz PCM in, the spiking
    voice-activity detector's speech onsets and offsets out (in-band CONTROL
    SPEECH, arg 1 / 0, the header's sample_index where the detector places
    the change), and the PCM passed on unchanged behind them (pass = yes), so
    a recognizer or a turn controller downstream hears both in order.

    What it may touch: audio/ (front end), snn/vad.h. Workload: 10 ms
    chunks, one log-mel frame and one VAD step each (a few µs); buffers are
    allocated at create.
*/
#include "pipeline_impl.h"

#include "../audio/audio.h"
#include "../snn/vad.h"

#include <stdlib.h>
#include <string.h>

#define N_MELS 40
#define MAX_FRAMES 64            /* frames one message may complete (640 ms) */
#define MAX_SAMPLES (MAX_FRAMES * 160)

typedef struct {
    st_frontend *fe;
    st_vad_model *model;
    st_vad *vad;
    double centre_hz[N_MELS];
    float *pcm, *feat;
    uint64_t stamp[MAX_FRAMES];
    bool pass, started;
    uint64_t onsets, offsets;
} vad_stage;

static int vs_create(st_stage *s, void **self)
{
    vad_stage *v = calloc(1, sizeof *v);
    if (!v)
        return st_error(ST_ERR_NOMEM, "out of memory");
    *self = v;
    int rc;
    if ((rc = st_stage_param_bool(s, "pass", true, &v->pass)))
        return rc;
    st_vad_params vp = st_vad_default_params();
    double on, off, hang;
    if ((rc = st_stage_param_double(s, "onset_threshold", vp.onset_threshold, 0.001, 1, &on)) ||
        (rc = st_stage_param_double(s, "offset_threshold", vp.offset_threshold, 0.001, 1, &off)) ||
        (rc = st_stage_param_double(s, "hangover_s", vp.hangover_s, 0, 2, &hang)))
        return rc;
    vp.onset_threshold = (float)on;
    vp.offset_threshold = (float)off;
    vp.hangover_s = hang;
    st_frontend_params fp = st_frontend_default_params();
    if (!(v->fe = st_frontend_new(&fp, &rc)))
        return rc;
    for (int c = 0; c < N_MELS; c++)
        v->centre_hz[c] = st_frontend_mel_centre_hz(v->fe, c);
    vp.channel_hz = v->centre_hz;
    vp.frontend_delay_samples = st_frontend_delay_samples(v->fe);
    const char *model = st_stage_param(s, "model", "none");
    vp.model_path = strcmp(model, "none") ? model : NULL;
    if (!(v->model = st_vad_model_new(&vp, &rc)) || !(v->vad = st_vad_new(v->model, &rc)))
        return rc;
    v->pcm = malloc(MAX_SAMPLES * sizeof(float));
    v->feat = malloc(MAX_FRAMES * N_MELS * sizeof(float));
    if (!v->pcm || !v->feat)
        return st_error(ST_ERR_NOMEM, "out of memory");
    return ST_OK;
}

static int vs_data(st_stage *s, void *self, const st_wire_msg *m)
{
    vad_stage *v = self;
    if (m->h.type != ST_MSG_PCM)
        return st_stage_forward(s, m);
    if (m->pcm.rate_hz != 16000)
        return st_error(ST_ERR_FORMAT, "stage '%s' (vad): PCM at %u Hz; put a resampler to 16000 "
                                       "before it", st_stage_name(s), m->pcm.rate_hz);
    if (!v->started) {
        st_frontend_reset(v->fe, m->h.sample_index);
        v->started = true;
    }
    size_t n = st_wire_pcm_read(&m->pcm, v->pcm, MAX_SAMPLES), used = 0, made = 0;
    st_frontend_process(v->fe, v->pcm, n, v->feat, v->stamp, MAX_FRAMES, &used, &made);
    st_vad_event ev[MAX_FRAMES];
    size_t n_ev = 0;
    int rc = st_vad_process(v->vad, v->feat, v->stamp, NULL, made, ev, MAX_FRAMES, &n_ev);
    if (rc)
        return rc;
    for (size_t k = 0; k < n_ev; k++) {
        st_wire_header h;
        st_stage_header(s, m, &h);
        h.sample_index = ev[k].sample_index;
        bool on = ev[k].kind == ST_VAD_ONSET;
        on ? v->onsets++ : v->offsets++;
        if ((rc = st_stage_send_control(s, &h, ST_CTL_SPEECH, on ? 1 : 0)))
            return rc;
    }
    return v->pass ? st_stage_forward(s, m) : ST_OK;
}

static void vs_destroy(void *self)
{
    vad_stage *v = self;
    if (!v)
        return;
    st_vad_destroy(&v->vad);
    st_vad_model_destroy(&v->model);
    st_frontend_destroy(&v->fe);
    free(v->pcm);
    free(v->feat);
    free(v);
}

const st_stage_type st__stage_vad = {
    .name = "vad",
    .summary = "spiking voice-activity detector: 16 kHz PCM in, CONTROL SPEECH onsets/offsets out",
    .params_help = "pass = yes          pass the PCM on behind the events\n"
                   "model = none        the learned read-out (models/vad.stm, snn/vad.h);\n"
                   "                    none: the hand-designed one\n"
                   "onset_threshold =   the hand-designed read-out's level that starts speech\n"
                   "                    (0.08)\n"
                   "offset_threshold =  ... that keeps it (0.015)\n"
                   "hangover_s =        speech lasts this long after the read-out falls (0.1)\n",
    .create = vs_create,
    .data = vs_data,
    .destroy = vs_destroy,
};
