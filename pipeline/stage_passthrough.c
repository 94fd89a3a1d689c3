/*  pipeline/stage_passthrough.c - the `passthrough` stage: every message out
    as it came in, with one more hop. Where a stage of the agent will go; the
    unit of the runtime's overhead (`spiketalk bench pipeline`); with
    delay_ms, a deliberately slow stage for tests of shedding.

    What it may touch: nothing but the runtime. Workload: any; forwarding
    shares the payload frame, so a hop copies only the 296-byte header.
*/
#include "pipeline_impl.h"

#include <stdlib.h>
#include <time.h>

typedef struct {
    double delay_ms;
} passthrough;

static int pt_create(st_stage *s, void **self)
{
    passthrough *p = calloc(1, sizeof *p);
    if (!p)
        return st_error(ST_ERR_NOMEM, "out of memory");
    *self = p;
    return st_stage_param_double(s, "delay_ms", 0, 0, 60000, &p->delay_ms);
}

static int pt_data(st_stage *s, void *self, const st_wire_msg *m)
{
    passthrough *p = self;
    if (p->delay_ms > 0) {
        struct timespec ts = {(time_t)(p->delay_ms / 1000),
                              (long)((p->delay_ms - 1000 * (long)(p->delay_ms / 1000)) * 1e6)};
        nanosleep(&ts, NULL);
    }
    return st_stage_forward(s, m);
}

static void pt_destroy(void *self)
{
    free(self);
}

const st_stage_type st__stage_passthrough = {
    .name = "passthrough",
    .summary = "passes every message on unchanged (the runtime's overhead; a slow stage with delay_ms)",
    .params_help = "delay_ms = 0        sleep this long before passing each message on (tests)\n",
    .create = pt_create,
    .data = pt_data,
    .destroy = pt_destroy,
};
