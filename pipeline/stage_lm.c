/*  pipeline/stage_lm.c - the `lm` stage: the user's request in (TEXT
    tokens, the last flagged END), the agent's answer out as TEXT tokens
    (one word each, with its leading space, the last flagged END), through
    the dialogue model (snn/dialogue.h: tools executed). The answer is
    decoded at once and sent a token per tick, so an INTERRUPT on the bus
    stops it between two tokens; every token carries the request's epoch
    and capture sample index.

    What it may touch: snn/ (dialogue LM). Workload: a request every few
    seconds, an answer of tens of ms of compute and a few dozen tokens; the
    buffers are allocated at create.
*/
#include "pipeline_impl.h"

#include "../snn/dialogue.h"
#include "../snn/lm.h"

#include <stdlib.h>
#include <string.h>

#define REQUEST_MAX 1024
#define REPLY_MAX 2048

typedef struct {
    st_lm_model *model;
    st_dialogue_params dp;
    char request[REQUEST_MAX];
    size_t request_len;
    char reply[REPLY_MAX];
    size_t at, len;              /* the answer's tokens still to send: reply[at .. len) */
    st_wire_header cause;        /* the header of the request being answered */
    st_wire_header next_cause;   /* ... of the request being read */
    uint64_t answers, stopped;
} lm_stage;

static int lm_create(st_stage *s, void **self)
{
    lm_stage *l = calloc(1, sizeof *l);
    if (!l)
        return st_error(ST_ERR_NOMEM, "out of memory");
    *self = l;
    int rc;
    long hour, minute, max_tokens;
    const char *model = st_stage_param(s, "model", "models/dialogue.stnn");
    if ((rc = st_stage_param_int(s, "hour", -1, -1, 23, &hour)) ||
        (rc = st_stage_param_int(s, "minute", 0, 0, 59, &minute)) ||
        (rc = st_stage_param_int(s, "max_tokens", 200, 1, 4000, &max_tokens)))
        return rc;
    if (!(l->model = st_lm_model_load(model, &rc)))
        return rc;
    l->dp = st_dialogue_default_params();
    l->dp.max_tokens = (size_t)max_tokens;
    l->dp.tools.hour = (int)hour;
    l->dp.tools.minute = (int)minute;
    st_stage_set_tick(s, 0.5);
    return ST_OK;
}

static int lm_tick(st_stage *s, void *self);

static int lm_data(st_stage *s, void *self, const st_wire_msg *m)
{
    lm_stage *l = self;
    if (m->h.type != ST_MSG_TEXT)
        return st_stage_forward(s, m);
    if (!l->request_len)
        l->next_cause = m->h;
    size_t n = m->text.bytes;
    if (n > sizeof l->request - 1 - l->request_len)
        n = sizeof l->request - 1 - l->request_len;
    memcpy(l->request + l->request_len, m->text.text, n);
    l->request_len += n;
    l->request[l->request_len] = '\0';
    if (!(m->text.flags & ST_TEXT_END))
        return ST_OK;
    int rc;
    while (l->at < l->len) /* a new request of the same turn: the answer before it ends first */
        if ((rc = lm_tick(s, l)))
            return rc;
    rc = st_dialogue_reply(l->model, l->request, &l->dp, l->reply, sizeof l->reply, NULL);
    l->request_len = 0;
    if (rc)
        return rc;
    l->at = 0;
    l->len = strlen(l->reply);
    l->cause = l->next_cause;
    l->answers++;
    return ST_OK;
}

/* One token (a word and the space before it) per tick. */
static int lm_tick(st_stage *s, void *self)
{
    lm_stage *l = self;
    if (l->at >= l->len)
        return ST_OK;
    size_t end = l->at;
    while (end < l->len && l->reply[end] == ' ')
        end++;
    while (end < l->len && l->reply[end] != ' ')
        end++;
    st_wire_header h = l->cause;
    uint32_t flags = end >= l->len ? ST_TEXT_END : 0;
    int rc = st_stage_send_text(s, &h, flags, l->reply + l->at, end - l->at);
    l->at = end;
    return rc;
}

static int lm_control(st_stage *s, void *self, const st_wire_msg *m)
{
    (void)s;
    lm_stage *l = self;
    if (m->control.cmd == ST_CTL_INTERRUPT && l->at < l->len) {
        l->at = l->len = 0; /* the rest of the answer is not said */
        l->stopped++;
    }
    if (!m->from_bus && m->control.cmd == ST_CTL_END)
        while (l->at < l->len) { /* the stream ends: say the rest first */
            int rc = lm_tick(s, l);
            if (rc)
                return rc;
        }
    return ST_OK;
}

static void lm_destroy(void *self)
{
    lm_stage *l = self;
    if (!l)
        return;
    st_lm_model_destroy(&l->model);
    free(l);
}

const st_stage_type st__stage_lm = {
    .name = "lm",
    .summary = "the dialogue LM: a request (TEXT) in, the answer's tokens out; stops on interrupt",
    .params_help = "model = models/dialogue.stnn   the dialogue model\n"
                   "hour = -1           the time tool's clock (-1: local time)\n"
                   "minute = 0\n"
                   "max_tokens = 200    the answer's length limit\n",
    .create = lm_create,
    .data = lm_data,
    .control = lm_control,
    .tick = lm_tick,
    .destroy = lm_destroy,
};
