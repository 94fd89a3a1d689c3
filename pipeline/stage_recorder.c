/*  pipeline/stage_recorder.c - recordings of a run: the `recorder` stage
    (every message that reaches it, data and control bus alike, with its
    arrival time, into one file), the reader for such files, and the
    `replay` stage that plays a recording back into a pipeline, as fast as
    it goes or at the recorded pace.

    File: "STKREC01", then one record per message:
      u64 t_ns (arrival, CLOCK_MONOTONIC), u8 plane (0 data, 1 bus),
      u8[3] zero, u32 header_bytes, u32 payload_bytes, header, payload
    all little-endian; the header and payload are the wire frames as sent
    (docs/PROTOCOL.md), so any tool that reads the protocol reads these.

    What it may touch: the files named in the configuration. Workload: every
    message of a run (a hundred 10 ms frames a second per audio edge, ~1 KB
    each) through stdio's buffer; one flush per END.
*/
#include "pipeline_impl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define REC_FIXED 20

static void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}
static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

/* ---- recorder ------------------------------------------------------------------- */

typedef struct {
    FILE *f;
    char path[512];
    uint64_t records;
    bool failed;
} recorder;

static int rec_create(st_stage *s, void **self)
{
    recorder *r = calloc(1, sizeof *r);
    if (!r)
        return st_error(ST_ERR_NOMEM, "out of memory");
    *self = r;
    const char *file = st_stage_param(s, "file", NULL);
    if (!file)
        return st_error(ST_ERR_INVALID, "stage '%s' (recorder): file = PATH is needed",
                        st_stage_name(s));
    snprintf(r->path, sizeof r->path, "%s", file);
    r->f = fopen(file, "wb");
    if (!r->f)
        return st_error(ST_ERR_IO, "stage '%s' (recorder): cannot write '%s': %s",
                        st_stage_name(s), file, strerror(errno));
    if (fwrite(ST_REC_MAGIC, 1, 8, r->f) != 8)
        return st_error(ST_ERR_IO, "stage '%s' (recorder): cannot write '%s'", st_stage_name(s), file);
    return ST_OK;
}

static int rec_write(st_stage *s, recorder *r, const st_wire_msg *m)
{
    unsigned char fixed[REC_FIXED], hdr[ST_WIRE_HEADER_BYTES];
    uint64_t t = st_wire_now_ns();
    put32(fixed, (uint32_t)t);
    put32(fixed + 4, (uint32_t)(t >> 32));
    fixed[8] = m->from_bus ? 1 : 0;
    fixed[9] = fixed[10] = fixed[11] = 0;
    put32(fixed + 12, ST_WIRE_HEADER_BYTES);
    put32(fixed + 16, (uint32_t)m->payload_bytes);
    st_wire_header_encode(&m->h, hdr);
    if (fwrite(fixed, 1, REC_FIXED, r->f) != REC_FIXED || fwrite(hdr, 1, sizeof hdr, r->f) != sizeof hdr ||
        (m->payload_bytes && fwrite(m->payload, 1, m->payload_bytes, r->f) != m->payload_bytes)) {
        if (!r->failed)
            st_log(ST_LOG_ERROR, "stage '%s': cannot write '%s': %s", st_stage_name(s), r->path,
                   strerror(errno));
        r->failed = true;
        return st_error(ST_ERR_IO, "stage '%s': cannot write '%s'", st_stage_name(s), r->path);
    }
    r->records++;
    return ST_OK;
}

static int rec_data(st_stage *s, void *self, const st_wire_msg *m)
{
    int rc = rec_write(s, self, m);
    if (st_stage_has_outputs(s))
        st_stage_forward(s, m);
    return rc;
}

static int rec_control(st_stage *s, void *self, const st_wire_msg *m)
{
    recorder *r = self;
    int rc = rec_write(s, r, m);
    if (!m->from_bus && m->control.cmd == ST_CTL_END)
        fflush(r->f);
    return rc;
}

static void rec_destroy(void *self)
{
    recorder *r = self;
    if (!r)
        return;
    if (r->f && fclose(r->f))
        st_log(ST_LOG_ERROR, "recorder: cannot finish '%s': %s", r->path, strerror(errno));
    free(r);
}

const st_stage_type st__stage_recorder = {
    .name = "recorder",
    .summary = "writes every message it receives (data and control bus) to a file for replay",
    .params_help = "file = PATH         the recording (`spiketalk replay PATH` lists it)\n",
    .create = rec_create,
    .data = rec_data,
    .control = rec_control,
    .destroy = rec_destroy,
};

/* ---- reading recordings ------------------------------------------------------------ */

struct st_rec_reader {
    FILE *f;
    char path[512];
    unsigned char *buf;
    size_t cap;
    uint64_t index, offset;
};

st_rec_reader *st_rec_open(const char *path, int *err)
{
    int dummy;
    if (!err)
        err = &dummy;
    FILE *f = fopen(path, "rb");
    if (!f) {
        *err = st_error(ST_ERR_NOT_FOUND, "recording '%s': cannot open it: %s", path, strerror(errno));
        return NULL;
    }
    char magic[8];
    if (fread(magic, 1, 8, f) != 8 || memcmp(magic, ST_REC_MAGIC, 8)) {
        fclose(f);
        *err = st_error(ST_ERR_FORMAT, "recording '%s': not a spiketalk recording (no %s at the "
                        "start)", path, ST_REC_MAGIC);
        return NULL;
    }
    st_rec_reader *r = calloc(1, sizeof *r);
    if (!r) {
        fclose(f);
        *err = st_error(ST_ERR_NOMEM, "out of memory");
        return NULL;
    }
    r->f = f;
    r->offset = 8;
    snprintf(r->path, sizeof r->path, "%s", path);
    *err = ST_OK;
    return r;
}

int st_rec_read(st_rec_reader *r, st_rec_entry *e)
{
    unsigned char fixed[REC_FIXED];
    size_t got = fread(fixed, 1, REC_FIXED, r->f);
    if (got == 0 && feof(r->f))
        return ST_ERR_END;
    if (got != REC_FIXED)
        return st_error(ST_ERR_FORMAT, "recording '%s': record %llu at byte %llu is truncated",
                        r->path, (unsigned long long)r->index, (unsigned long long)r->offset);
    uint32_t hb = get32(fixed + 12), pb = get32(fixed + 16);
    if (hb != ST_WIRE_HEADER_BYTES || pb > ST_WIRE_MAX_PAYLOAD || fixed[8] > 1)
        return st_error(ST_ERR_FORMAT, "recording '%s': record %llu at byte %llu is damaged",
                        r->path, (unsigned long long)r->index, (unsigned long long)r->offset);
    size_t need = (size_t)hb + pb;
    if (need > r->cap) {
        unsigned char *nb = realloc(r->buf, need);
        if (!nb)
            return st_error(ST_ERR_NOMEM, "out of memory");
        r->buf = nb;
        r->cap = need;
    }
    if (fread(r->buf, 1, need, r->f) != need)
        return st_error(ST_ERR_FORMAT, "recording '%s': record %llu at byte %llu is truncated",
                        r->path, (unsigned long long)r->index, (unsigned long long)r->offset);
    int rc = st_wire_decode(r->buf, hb, r->buf + hb, pb, &e->m);
    if (rc)
        return st_error(ST_ERR_FORMAT, "recording '%s': record %llu at byte %llu: %s", r->path,
                        (unsigned long long)r->index, (unsigned long long)r->offset, st_errmsg());
    e->t_ns = (uint64_t)get32(fixed) | ((uint64_t)get32(fixed + 4) << 32);
    e->from_bus = fixed[8] == 1;
    e->m.from_bus = e->from_bus;
    e->m.frame_ = NULL;
    r->index++;
    r->offset += REC_FIXED + need;
    return ST_OK;
}

void st_rec_close(st_rec_reader **r_p)
{
    if (!r_p || !*r_p)
        return;
    fclose((*r_p)->f);
    free((*r_p)->buf);
    free(*r_p);
    *r_p = NULL;
}

/* ---- replay ------------------------------------------------------------------------ */

typedef struct {
    st_rec_reader *rd;
    bool pace;
    bool have;              /* `e` holds a record not yet sent */
    st_rec_entry e;
    uint64_t first_ns;
    double t0_s;
    bool first;
} replay;

static int rp_create(st_stage *s, void **self)
{
    replay *p = calloc(1, sizeof *p);
    if (!p)
        return st_error(ST_ERR_NOMEM, "out of memory");
    *self = p;
    int rc = st_stage_param_bool(s, "pace", false, &p->pace);
    if (rc)
        return rc;
    const char *file = st_stage_param(s, "file", NULL);
    if (!file)
        return st_error(ST_ERR_INVALID, "stage '%s' (replay): file = PATH is needed",
                        st_stage_name(s));
    if (!(p->rd = st_rec_open(file, &rc)))
        return rc;
    p->first = true;
    st_stage_set_tick(s, p->pace ? 1.0 : 0.0);
    return ST_OK;
}

static int rp_tick(st_stage *s, void *self)
{
    replay *p = self;
    for (int k = 0; k < 64; k++) {
        if (!p->have) {
            int rc = st_rec_read(p->rd, &p->e);
            if (rc)
                return rc == ST_ERR_END ? ST_ERR_END : rc;
            /* The bus is the supervisor's, and each END was an edge's: the
               replay says its own END when the file ends. */
            if (p->e.from_bus || (p->e.m.h.type == ST_MSG_CONTROL && p->e.m.control.cmd == ST_CTL_END))
                continue;
            p->have = true;
        }
        if (p->first) {
            p->first = false;
            p->first_ns = p->e.t_ns;
            p->t0_s = st_now_s();
        }
        if (p->pace && st_now_s() - p->t0_s < (double)(p->e.t_ns - p->first_ns) / 1e9)
            return ST_OK;
        p->have = false;
        st_wire_header h = p->e.m.h;
        int rc = st_stage_send(s, &h, p->e.m.h.type, p->e.m.payload, p->e.m.payload_bytes);
        if (rc || !p->pace)
            return rc;
    }
    return ST_OK;
}

static int rp_data(st_stage *s, void *self, const st_wire_msg *m)
{
    return ST_OK;
}

static void rp_destroy(void *self)
{
    replay *p = self;
    if (!p)
        return;
    st_rec_close(&p->rd);
    free(p);
}

const st_stage_type st__stage_replay = {
    .name = "replay",
    .summary = "plays a recording's data messages back into the pipeline",
    .params_help = "file = PATH         a recording made by a recorder stage\n"
                   "pace = no           yes: at the recorded pace; no: as fast as it goes\n",
    .create = rp_create,
    .data = rp_data,
    .tick = rp_tick,
    .destroy = rp_destroy,
};
