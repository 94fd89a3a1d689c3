/*  docs/example_stage.c - a complete pipeline stage: `gain` scales audio by
    gain_db and passes every other message on unchanged. docs/EXAMPLE_STAGE.md
    walks through it; tests/test_pipeline.c builds it and runs it in a pipeline. */
#include "pipeline/pipeline.h"

#include <math.h>
#include <stdlib.h>

#define MAX_FRAMES 48000            /* the largest message it takes: 1 s at 48 kHz */

typedef struct {
    float gain;                     /* linear */
    float buf[MAX_FRAMES];          /* allocated once, at create: nothing on the data path */
} gain_stage;

static int gain_create(st_stage *s, void **self)
{
    double db;
    int rc = st_stage_param_double(s, "gain_db", 0, -60, 40, &db);
    if (rc)
        return rc;                  /* "FILE:LINE: [stage.x] gain_db: ..." reaches the user */
    gain_stage *g = malloc(sizeof *g);
    if (!g)
        return st_error(ST_ERR_NOMEM, "out of memory");
    g->gain = (float)pow(10, db / 20);
    *self = g;
    return ST_OK;
}

static int gain_data(st_stage *s, void *self, const st_wire_msg *m)
{
    gain_stage *g = self;
    if (m->h.type != ST_MSG_PCM)
        return st_stage_forward(s, m);          /* words, text, ...: unchanged */
    size_t n = st_wire_pcm_read(&m->pcm, g->buf, MAX_FRAMES);
    for (size_t i = 0; i < n; i++)
        g->buf[i] *= g->gain;
    st_wire_header h;
    st_stage_header(s, m, &h);                  /* same stream, turn, sample index, hops */
    return st_stage_send_pcm(s, &h, m->pcm.rate_hz, g->buf, n);
}

static void gain_destroy(void *self)
{
    free(self);
}

const st_stage_type st_example_gain_stage = {
    .name = "gain",
    .summary = "scales audio by gain_db (the example of docs/EXAMPLE_STAGE.md)",
    .params_help = "gain_db = 0         decibels, -60 to 40\n",
    .create = gain_create,
    .data = gain_data,
    .destroy = gain_destroy,
};
