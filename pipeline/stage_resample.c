/*  pipeline/stage_resample.c - the `resampler` stage: PCM at any rate in,
    PCM at `rate` out (the pipeline's 16 kHz on the way in, the speaker's
    rate on the way out), through audio/'s streaming resampler.

    Sample indices: the resampler keeps the signal aligned (output frame k is
    the input at time k / rate), so an output frame's capture sample index is
    the stream's first index plus k at 16 kHz; a gap in the input (shed
    upstream) re-anchors it. END and FLUSH emit the filter's tail first.

    What it may touch: audio/ (resampler). Workload: 10 ms frames; buffers
    are sized at create for max_frames; the converter is made on the first
    frame of each new input rate (once per stream in practice).
*/
#include "pipeline_impl.h"

#include "../audio/audio.h"

#include <stdlib.h>

typedef struct {
    int out_rate;
    st_resample_quality quality;
    st_resampler *rs;
    int in_rate;
    float *in, *out;
    size_t max_frames, out_cap;
    bool anchored;
    uint64_t anchor16;      /* capture index (16 kHz) of output frame 0 */
    uint64_t out_total;     /* frames made since the anchor */
    uint64_t next_in16;     /* where the next input should start */
} resampler;

/* The converter for a new input rate, with room for its largest output. */
static int make_converter(resampler *r, int in_rate)
{
    int rc;
    st_resampler_destroy(&r->rs);
    r->rs = st_resampler_new(in_rate, r->out_rate, r->quality, &rc);
    if (!r->rs)
        return rc;
    r->in_rate = in_rate;
    r->anchored = false;
    r->out_total = 0;
    size_t need = st_resampler_max_output(r->rs, r->max_frames);
    if (need > r->out_cap) {
        free(r->out);
        r->out = malloc(need * sizeof(float));
        r->out_cap = r->out ? need : 0;
        if (!r->out)
            return st_error(ST_ERR_NOMEM, "out of memory");
    }
    return ST_OK;
}

static int rs_create(st_stage *s, void **self)
{
    resampler *r = calloc(1, sizeof *r);
    if (!r)
        return st_error(ST_ERR_NOMEM, "out of memory");
    *self = r;
    long rate, max_frames, in_rate;
    int q, rc;
    static const char *const qualities[] = {"fastest", "medium", "best", NULL};
    if ((rc = st_stage_param_int(s, "rate", 16000, 1000, 384000, &rate)) ||
        (rc = st_stage_param_int(s, "in_rate", 0, 0, 384000, &in_rate)) ||
        (rc = st_stage_param_int(s, "max_frames", 96000, 16, 1 << 20, &max_frames)) ||
        (rc = st_stage_param_choice(s, "quality", "fastest", qualities, &q)))
        return rc;
    r->out_rate = (int)rate;
    r->quality = (st_resample_quality)q;
    r->max_frames = (size_t)max_frames;
    r->in = malloc(r->max_frames * sizeof(float));
    if (!r->in)
        return st_error(ST_ERR_NOMEM, "out of memory");
    if (in_rate && in_rate != rate)
        return make_converter(r, (int)in_rate);
    return ST_OK;
}

static int emit(st_stage *s, resampler *r, const st_wire_msg *cause, size_t made)
{
    if (!made)
        return ST_OK;
    st_wire_header h;
    st_stage_header(s, cause, &h);
    h.sample_index = r->anchor16 + r->out_total * 16000u / (uint64_t)r->out_rate;
    r->out_total += made;
    return st_stage_send_pcm(s, &h, (uint32_t)r->out_rate, r->out, made);
}

static int rs_data(st_stage *s, void *self, const st_wire_msg *m)
{
    resampler *r = self;
    if (m->h.type != ST_MSG_PCM)
        return st_stage_forward(s, m);
    int in_rate = (int)m->pcm.rate_hz;
    if (in_rate == r->out_rate)
        return st_stage_forward(s, m);
    int rc;
    if ((!r->rs || r->in_rate != in_rate) && (rc = make_converter(r, in_rate)))
        return rc;
    size_t n = st_wire_pcm_read(&m->pcm, r->in, r->max_frames);
    uint64_t dur16 = (uint64_t)n * 16000u / (uint64_t)in_rate;
    if (!r->anchored || m->h.sample_index > r->next_in16 + dur16 + 1 ||
        m->h.sample_index + dur16 + 1 < r->next_in16) {
        /* A new stream, or a gap: the next output maps to this input. */
        uint64_t done16 = r->out_total * 16000u / (uint64_t)r->out_rate;
        r->anchor16 = m->h.sample_index > done16 ? m->h.sample_index - done16 : 0;
        r->anchored = true;
    }
    r->next_in16 = m->h.sample_index + dur16;
    size_t used, made;
    if ((rc = st_resampler_process(r->rs, r->in, n, r->out, r->out_cap, &used, &made)))
        return rc;
    return emit(s, r, m, made);
}

static int rs_control(st_stage *s, void *self, const st_wire_msg *m)
{
    resampler *r = self;
    if (m->from_bus || !r->rs || (m->control.cmd != ST_CTL_END && m->control.cmd != ST_CTL_FLUSH))
        return ST_OK;
    size_t made;
    int rc;
    while ((rc = st_resampler_flush(r->rs, r->out, r->out_cap, &made)) == ST_OK && made)
        if ((rc = emit(s, r, m, made)))
            break;
    st_resampler_reset(r->rs);
    r->anchored = false;
    r->out_total = 0;
    return rc == ST_ERR_STATE ? ST_OK : rc;
}

static void rs_destroy(void *self)
{
    resampler *r = self;
    if (!r)
        return;
    st_resampler_destroy(&r->rs);
    free(r->in);
    free(r->out);
    free(r);
}

const st_stage_type st__stage_resampler = {
    .name = "resampler",
    .summary = "PCM at any rate in, PCM at `rate` out (streaming, aligned, tail on END)",
    .params_help = "rate = 16000        output rate, Hz\n"
                   "quality = fastest   fastest, medium or best (longer delay)\n"
                   "in_rate = 0         make the converter at start for this input rate\n"
                   "max_frames = 96000  the largest message, frames\n",
    .create = rs_create,
    .data = rs_data,
    .control = rs_control,
    .destroy = rs_destroy,
};
