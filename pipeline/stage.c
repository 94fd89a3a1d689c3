/*  pipeline/stage.c - the runner that makes a table of stage functions an
    actor: its sockets, the ready handshake, a loop that polls control before
    data, epochs, end of stream, ticks, heartbeats and metrics, the send path
    with its shedding policy, and a clean exit.

    What it may touch: base/, libzmq, POSIX threads and timerfd. A stage's
    callbacks, sockets and this loop all live on one thread (the actor's, or
    the process's main thread under `spiketalk stage`); only the counters are
    read from elsewhere (atomics).

    Workload: one 10 ms audio frame every 10 ms per stream, plus a handful of
    words, tokens and control events a second; a hop must cost microseconds.
    The loop blocks in one poll() over the sockets' ZMQ_FDs and the tick
    timer (zmq_poll() costs several system calls more per wake-up); in a
    backlog it looks at the bus every 100 µs, not after every message; sends
    share the received payload frame instead of copying it; ticks come from
    a timerfd so that a source can run at sub-millisecond periods without
    spinning. A fused chain (`thread =`, st_stage_actor_new_fused()) is
    several stages on one such loop: the first owns the input, the bus and
    the pipe and hands every bus event to each stage in order; a send from
    one to the next is a direct call (deliver_fused) that decodes the same
    header bytes and shares the same payload frame a socket would carry, so
    hops, seq, epochs, END and counters stay per stage. Measured (spiketalk
    bench pipeline): about 0.15 µs of its own time per message per stage; a
    hop's latency is libzmq's and the thread wake-up's, which fusion saves.
*/
#include "pipeline.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <poll.h>
#include <string.h>
#include <sys/timerfd.h>
#include <unistd.h>
#include <zmq.h>

#define EP_MAX 256
#define BATCH 64            /* data messages handled before the loop polls again */
#define BUS_CHECK_NS 100000 /* in a burst of data, the bus is looked at this often */
#define OUTPUT_LINGER_MS 200
#define REPORT_LINGER_MS 500

typedef struct {
    _Atomic uint64_t received, sent, malformed, stale, shed, send_timeouts, errors, controls, ticks;
    _Atomic uint32_t epoch;
    _Atomic bool started, ended;
} stats_atomic;

struct st_stage {
    const st_stage_type *type;
    void *self;
    bool created;
    char name[64];
    uint16_t id;
    uint32_t stream_id;
    st_params params;
    void *zctx;
    void *pipe, *ctl, *in, *report;
    void *out[ST_STAGE_MAX_OUTPUTS];
    int n_out;
    char binds[ST_STAGE_MAX_BINDS][EP_MAX];
    int n_binds;
    char outputs[ST_STAGE_MAX_OUTPUTS][EP_MAX];
    char control_ep[EP_MAX], report_ep[EP_MAX];
    st_sec_stage *sec;          /* CURVE on tcp sockets; NULL = plain */
    st_sec_stage sec_copy;
    bool curve_bound;           /* the input is a CURVE server */
    st_curve_keys keys;         /* our pair, read in setup() when sec */
    int n_inputs, ends_seen;
    bool started, completed, own_end, heard_bus, ready_sent, exit_requested;
    uint32_t epoch;
    uint64_t seq, last_sample_index;
    st_wire_rx *rx_in, *rx_ctl, *rx_pipe;
    int tick_fd;
    double tick_ms;
    bool tick_armed;
    int hwm;
    double heartbeat_ms, metrics_ms, send_timeout_ms, orphan_s, spin_us;
    bool shed;
    double next_heartbeat_s, next_metrics_s, last_bus_s;
    uint64_t cause_ns;      /* arrival of the message being handled; 0 in ticks */
    uint64_t sent_ns;       /* the latest send's stamp */
    void *user_data;
    volatile int *stop;
    uint64_t logged_errors, logged_sheds;
    /* Fusion: stages of one group share the first one's thread. */
    st_stage *next;         /* the output is a direct call into this stage */
    st_stage **group;       /* head only: the members in chain order */
    int n_group;            /* head only; 1 when alone */
    st_stage *alone;        /* the group of a stage on its own thread */
    stats_atomic st;
};

#define INC(field) atomic_fetch_add_explicit(&s->st.field, 1, memory_order_relaxed)

static void handle_data(st_stage *s, const st_wire_msg *m);

/* Housekeeping time (heartbeats, metrics, orphans: periods of 100 ms and
   more): the coarse clock costs a sixth of the precise one in a VM, and the
   loop reads it every turn. */
static double coarse_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

st_stage_config st_stage_default_config(void)
{
    return (st_stage_config){
        .hwm = 64,
        .heartbeat_ms = 200,
        .metrics_ms = 1000,
        .send_timeout_ms = 1000,
        .shed = true,
        .tick_ms = -1,
    };
}

/* ---- small helpers --------------------------------------------------------- */

static int zfail(const st_stage *s, const char *what, const char *ep)
{
    return st_error(ST_ERR_IO, "stage '%s': cannot %s %s: %s", s->name, what, ep,
                    zmq_strerror(errno));
}

static void set_int(void *sock, int opt, int v)
{
    zmq_setsockopt(sock, opt, &v, sizeof v);
}

/* A peer that is not listening yet (it starts after us, or restarts) is
   tried again after 10 ms, not libzmq's default 100 ms: audio waits in the
   queue meanwhile. */
static void fast_reconnect(void *sock)
{
    set_int(sock, ZMQ_RECONNECT_IVL, 10);
    set_int(sock, ZMQ_RECONNECT_IVL_MAX, 1000);
}

static int send_report(st_stage *s, uint32_t cmd, uint32_t arg, const char *text)
{
    if (!s->report)
        return ST_OK;
    unsigned char buf[16 + 512];
    char t[512];
    snprintf(t, sizeof t, "%.511s", text ? text : ""); /* a long reason is cut */
    long n = st_wire_control_encode(buf, sizeof buf, cmd, arg, s->id, t);
    if (n < 0)
        return (int)n;
    st_wire_header h;
    st_wire_header_init(&h, ST_MSG_CONTROL, s->id);
    h.epoch = s->epoch;
    h.stream_id = s->stream_id;
    return st_wire_send(s->report, &h, buf, (size_t)n, ZMQ_DONTWAIT);
}

static void fill_stats(const st_stage *s, st_stage_stats *o)
{
    o->received = atomic_load_explicit(&s->st.received, memory_order_relaxed);
    o->sent = atomic_load_explicit(&s->st.sent, memory_order_relaxed);
    o->malformed = atomic_load_explicit(&s->st.malformed, memory_order_relaxed);
    o->stale = atomic_load_explicit(&s->st.stale, memory_order_relaxed);
    o->shed = atomic_load_explicit(&s->st.shed, memory_order_relaxed);
    o->send_timeouts = atomic_load_explicit(&s->st.send_timeouts, memory_order_relaxed);
    o->errors = atomic_load_explicit(&s->st.errors, memory_order_relaxed);
    o->controls = atomic_load_explicit(&s->st.controls, memory_order_relaxed);
    o->ticks = atomic_load_explicit(&s->st.ticks, memory_order_relaxed);
    o->epoch = atomic_load_explicit(&s->st.epoch, memory_order_relaxed);
    o->started = atomic_load_explicit(&s->st.started, memory_order_relaxed);
    o->ended = atomic_load_explicit(&s->st.ended, memory_order_relaxed);
}

static void send_metrics(st_stage *s)
{
    if (!s->report)
        return;
    st_stage_stats o;
    fill_stats(s, &o);
    st_wire_metric m[12] = {
        {"received", (double)o.received}, {"sent", (double)o.sent},
        {"malformed", (double)o.malformed}, {"stale", (double)o.stale},
        {"shed", (double)o.shed}, {"send_timeouts", (double)o.send_timeouts},
        {"errors", (double)o.errors}, {"controls", (double)o.controls},
        {"ticks", (double)o.ticks}, {"epoch", (double)o.epoch},
        {"started", o.started ? 1 : 0}, {"ended", o.ended ? 1 : 0},
    };
    st_stage_report_metrics(s, m, 12);
}

static void set_epoch(st_stage *s, uint32_t e)
{
    if (e > s->epoch) {
        s->epoch = e;
        atomic_store_explicit(&s->st.epoch, e, memory_order_relaxed);
    }
}

static void count_error(st_stage *s, const char *where, int rc)
{
    INC(errors);
    if (++s->logged_errors <= 10 || s->logged_errors % 1000 == 0)
        st_log(ST_LOG_WARN, "stage '%s': %s: %s", s->name, where,
               *st_errmsg() ? st_errmsg() : st_strerror(rc));
}

static void arm_tick(st_stage *s)
{
    if (s->tick_fd < 0)
        return;
    struct itimerspec its;
    memset(&its, 0, sizeof its);
    if (s->started && !s->completed && s->tick_ms > 0) {
        long ns = (long)(s->tick_ms * 1e6);
        its.it_interval.tv_sec = ns / 1000000000L;
        its.it_interval.tv_nsec = ns % 1000000000L;
        its.it_value.tv_nsec = 1; /* the first tick at once, then every period */
        s->tick_armed = true;
    } else {
        s->tick_armed = false;
    }
    timerfd_settime(s->tick_fd, 0, &its, NULL);
}

static void complete(st_stage *s)
{
    if (s->completed)
        return;
    s->completed = true;
    atomic_store_explicit(&s->st.ended, true, memory_order_relaxed);
    arm_tick(s);
    send_metrics(s); /* before END: the supervisor may stop listening after it */
    send_report(s, ST_CTL_END, 0, s->name);
}

/* A source's own end of stream: END on every output. */
static void end_stream(st_stage *s)
{
    if (s->own_end)
        return;
    s->own_end = true;
    st_wire_header h;
    st_stage_header(s, NULL, &h);
    h.sample_index = s->last_sample_index;
    st_stage_send_control(s, &h, ST_CTL_END, 0);
    complete(s);
}

static void start(st_stage *s)
{
    if (s->started)
        return;
    s->started = true;
    atomic_store_explicit(&s->st.started, true, memory_order_relaxed);
    arm_tick(s);
}

/* ---- setup and teardown ---------------------------------------------------- */

static void teardown(st_stage *s)
{
    if (s->created && s->type->destroy)
        s->type->destroy(s->self);
    s->created = false;
    s->self = NULL;
    if (s->report && s->ready_sent)
        send_metrics(s);
    /* Unbinding first frees an inproc name at once (closing frees it later,
       on libzmq's reaper thread), so the same stage can start again. */
    for (int i = 0; s->in && i < s->n_binds; i++)
        zmq_unbind(s->in, s->binds[i]);
    void **socks[] = {&s->ctl, &s->in, &s->report};
    for (size_t i = 0; i < 3; i++)
        if (*socks[i]) {
            zmq_close(*socks[i]);
            *socks[i] = NULL;
        }
    for (int o = 0; o < s->n_out; o++)
        if (s->out[o]) {
            zmq_close(s->out[o]);
            s->out[o] = NULL;
        }
    if (s->tick_fd >= 0)
        close(s->tick_fd);
    s->tick_fd = -1;
    st_wire_rx_destroy(&s->rx_in);
    st_wire_rx_destroy(&s->rx_ctl);
    st_wire_rx_destroy(&s->rx_pipe);
    memset(&s->keys, 0, sizeof s->keys);
    s->curve_bound = false;
}

static void copy_ep(char *dst, const char *src)
{
    snprintf(dst, EP_MAX, "%s", src ? src : "");
}

static st_stage *stage_alloc(void *zctx, const st_stage_type *type, const st_stage_config *cfg,
                             int *err)
{
    if (!type || !type->create || !type->data || !type->destroy || !cfg) {
        *err = st_error(ST_ERR_INVALID, "stage: a type needs create, data and destroy");
        return NULL;
    }
    st_stage *s = calloc(1, sizeof *s);
    if (!s) {
        *err = st_error(ST_ERR_NOMEM, "stage: out of memory");
        return NULL;
    }
    s->type = type;
    s->zctx = zctx;
    s->tick_fd = -1;
    s->alone = s;
    s->group = &s->alone;
    s->n_group = 1;
    snprintf(s->name, sizeof s->name, "%s", cfg->name && *cfg->name ? cfg->name : type->name);
    s->id = cfg->id;
    s->stream_id = cfg->stream_id;
    for (int i = 0; i < ST_STAGE_MAX_BINDS && cfg->binds[i]; i++)
        copy_ep(s->binds[s->n_binds++], cfg->binds[i]);
    for (int i = 0; i < ST_STAGE_MAX_OUTPUTS && cfg->outputs[i]; i++)
        copy_ep(s->outputs[s->n_out++], cfg->outputs[i]);
    copy_ep(s->control_ep, cfg->control);
    copy_ep(s->report_ep, cfg->report);
    if (cfg->security && cfg->security->curve) {
        s->sec_copy = *cfg->security;
        s->sec = &s->sec_copy;
    }
    s->n_inputs = cfg->n_inputs;
    s->hwm = cfg->hwm > 0 ? cfg->hwm : 64;
    s->heartbeat_ms = cfg->heartbeat_ms > 0 ? cfg->heartbeat_ms : 200;
    s->metrics_ms = cfg->metrics_ms > 0 ? cfg->metrics_ms : 1000;
    s->send_timeout_ms = cfg->send_timeout_ms >= 0 ? cfg->send_timeout_ms : 1000;
    s->orphan_s = cfg->orphan_s;
    s->shed = cfg->shed;
    s->tick_ms = cfg->tick_ms;
    s->spin_us = cfg->spin_us > 0 ? cfg->spin_us : 0;
    s->user_data = cfg->user_data;
    if (cfg->params)
        s->params = *cfg->params;
    else {
        char sec[96];
        snprintf(sec, sizeof sec, "stage.%s", s->name);
        st_params_init(&s->params, NULL, sec, 0);
    }
    return s;
}

/* A connecting tcp socket of a stage with keys: CURVE client trusting the
   one server key of the endpoint's owner. */
static int curve_client(st_stage *s, void *sock, const char *ep, const char *server_z85)
{
    if (!s->sec || strncmp(ep, "tcp://", 6))
        return ST_OK;
    int rc = st_sec_curve_client(sock, &s->keys, server_z85);
    return rc ? st_error(rc, "stage '%s' connecting to %s: %s", s->name, ep, st_errmsg()) : ST_OK;
}

static int setup(st_stage *s)
{
    int rc;
    char who[128];
    snprintf(who, sizeof who, "stage '%s' input", s->name);
    if (!(s->rx_in = st_wire_rx_new(who, &rc)))
        return rc;
    snprintf(who, sizeof who, "stage '%s' control bus", s->name);
    if (!(s->rx_ctl = st_wire_rx_new(who, &rc)))
        return rc;
    snprintf(who, sizeof who, "stage '%s' pipe", s->name);
    if (!(s->rx_pipe = st_wire_rx_new(who, &rc)))
        return rc;

    /* CURVE on tcp sockets (docs/SECURITY.md): our pair, read once. */
    bool any_tcp = !strncmp(s->report_ep, "tcp://", 6) || !strncmp(s->control_ep, "tcp://", 6);
    for (int i = 0; i < s->n_binds; i++)
        any_tcp |= !strncmp(s->binds[i], "tcp://", 6);
    for (int o = 0; o < s->n_out; o++)
        any_tcp |= !strncmp(s->outputs[o], "tcp://", 6);
    if (s->sec && any_tcp && (rc = st_sec_stage_keys(s->sec, &s->keys)))
        return rc;

    /* The report socket first, so that a failure below can be reported. */
    if (s->report_ep[0]) {
        s->report = zmq_socket(s->zctx, ZMQ_PUSH);
        if (!s->report)
            return zfail(s, "make a socket for", s->report_ep);
        set_int(s->report, ZMQ_SNDHWM, 1000);
        set_int(s->report, ZMQ_LINGER, REPORT_LINGER_MS);
        fast_reconnect(s->report);
        if ((rc = curve_client(s, s->report, s->report_ep, s->sec ? s->sec->supervisor_z85 : "")))
            return rc;
        if (zmq_connect(s->report, s->report_ep))
            return zfail(s, "connect to the supervisor at", s->report_ep);
    }
    if (s->n_binds) {
        s->in = zmq_socket(s->zctx, ZMQ_PULL);
        if (!s->in)
            return zfail(s, "make a socket for", s->binds[0]);
        set_int(s->in, ZMQ_RCVHWM, s->hwm);
        set_int(s->in, ZMQ_LINGER, 0);
        int64_t maxsize = (int64_t)ST_WIRE_MAX_PAYLOAD + 4096;
        zmq_setsockopt(s->in, ZMQ_MAXMSGSIZE, &maxsize, sizeof maxsize);
        /* Plain endpoints first: a CURVE server option holds for the binds
           made after it. */
        int order[ST_STAGE_MAX_BINDS], n_order = 0;
        for (int pass = 0; pass < 2; pass++)
            for (int i = 0; i < s->n_binds; i++)
                if (!strncmp(s->binds[i], "tcp://", 6) == (pass == 1))
                    order[n_order++] = i;
        for (int j = 0; j < n_order; j++) {
            int i = order[j];
            if (s->sec && !strncmp(s->binds[i], "tcp://", 6) && !s->curve_bound) {
                if ((rc = st_sec_curve_server(s->in, &s->keys)))
                    return st_error(rc, "stage '%s' input %s: %s", s->name, s->binds[i],
                                    st_errmsg());
                /* Its own accept list where the authenticator has one. */
                char dom[96];
                snprintf(dom, sizeof dom, "spiketalk/%s", s->name);
                zmq_setsockopt(s->in, ZMQ_ZAP_DOMAIN, dom, strlen(dom));
                s->curve_bound = true;
            }
            if (zmq_bind(s->in, s->binds[i]))
                return zfail(s, "listen on", s->binds[i]);
            if ((rc = st_sec_ipc_restrict(s->binds[i]))) /* owner-only (docs/SECURITY.md) */
                return rc;
        }
    }
    for (int o = 0; o < s->n_out; o++) {
        s->out[o] = zmq_socket(s->zctx, ZMQ_PUSH);
        if (!s->out[o])
            return zfail(s, "make a socket for", s->outputs[o]);
        set_int(s->out[o], ZMQ_SNDHWM, s->hwm);
        set_int(s->out[o], ZMQ_SNDTIMEO, (int)s->send_timeout_ms);
        set_int(s->out[o], ZMQ_LINGER, OUTPUT_LINGER_MS);
        fast_reconnect(s->out[o]);
        if ((rc = curve_client(s, s->out[o], s->outputs[o], s->sec ? s->sec->server_z85[o] : "")))
            return rc;
        if (zmq_connect(s->out[o], s->outputs[o]))
            return zfail(s, "connect its output to", s->outputs[o]);
    }
    if (s->control_ep[0]) {
        s->ctl = zmq_socket(s->zctx, ZMQ_SUB);
        if (!s->ctl)
            return zfail(s, "make a socket for", s->control_ep);
        set_int(s->ctl, ZMQ_RCVHWM, 1000);
        set_int(s->ctl, ZMQ_LINGER, 0);
        fast_reconnect(s->ctl);
        zmq_setsockopt(s->ctl, ZMQ_SUBSCRIBE, "", 0);
        if ((rc = curve_client(s, s->ctl, s->control_ep, s->sec ? s->sec->supervisor_z85 : "")))
            return rc;
        if (zmq_connect(s->ctl, s->control_ep))
            return zfail(s, "connect to the control bus at", s->control_ep);
    }
    s->tick_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (s->tick_fd < 0)
        return st_error(ST_ERR_IO, "stage '%s': timerfd_create: %s", s->name, strerror(errno));

    /* The runtime's own keys were read by the configuration; the rest is the
       stage's. */
    double cfg_tick = s->tick_ms;
    s->tick_ms = s->type->tick ? 0 : -1;
    rc = s->type->create(s, &s->self);
    if (rc) {
        if (s->self)
            s->type->destroy(s->self); /* whatever create had made */
        s->self = NULL;
        char msg[512];
        snprintf(msg, sizeof msg, "%s", *st_errmsg() ? st_errmsg() : st_strerror(rc));
        if (!strstr(msg, s->name))
            return st_error(rc, "stage '%s' (%s): %s", s->name, s->type->name, msg);
        return st_error(rc, "%s", msg);
    }
    s->created = true;
    if (cfg_tick >= 0)
        s->tick_ms = cfg_tick;
    const st_param *u = st_params_unused(&s->params);
    if (u) {
        if (s->params.origin[0] && u->line > 0)
            return st_error(ST_ERR_INVALID, "%s:%d: [%s] unknown parameter '%s' for a stage of type '%s'",
                            s->params.origin, u->line, s->params.section, u->key, s->type->name);
        return st_error(ST_ERR_INVALID, "stage '%s': unknown parameter '%s' for a stage of type '%s'",
                        s->name, u->key, s->type->name);
    }
    double now = coarse_now_s();
    s->next_heartbeat_s = now;
    s->next_metrics_s = now + s->metrics_ms / 1000;
    s->last_bus_s = now;
    return ST_OK;
}

/* ---- the loop -------------------------------------------------------------- */

/* Whether a control socket holds a message. Costs a system call. */
static bool has_message(void *sock)
{
    int ev = 0;
    size_t len = sizeof ev;
    return sock && zmq_getsockopt(sock, ZMQ_EVENTS, &ev, &len) == 0 && (ev & ZMQ_POLLIN);
}

static void call_control(st_stage *s, const st_wire_msg *m)
{
    INC(controls);
    if (s->type->control) {
        int rc = s->type->control(s, s->self, m);
        if (rc)
            count_error(s, "control", rc);
    }
}

/* A control event from the bus or the creator's pipe. */
static void handle_bus(st_stage *s, st_wire_msg *m)
{
    m->from_bus = true;
    s->last_bus_s = coarse_now_s();
    if (!s->heard_bus) {
        s->heard_bus = true;
        if (!s->ready_sent) {
            send_report(s, ST_CTL_READY, 0, s->name);
            s->ready_sent = true;
        }
    }
    set_epoch(s, m->h.epoch);
    if (m->h.type != ST_MSG_CONTROL)
        return;
    if (m->control.stage_id && m->control.stage_id != s->id)
        return;
    switch (m->control.cmd) {
    case ST_CTL_HEARTBEAT:
        if (m->control.arg & 1)
            start(s);
        return;
    case ST_CTL_SHUTDOWN: s->exit_requested = true; return;
    case ST_CTL_START:
        start(s);
        call_control(s, m);
        return;
    case ST_CTL_STOP:
        call_control(s, m);
        if (s->n_inputs == 0 && s->started)
            end_stream(s);
        return;
    case ST_CTL_INTERRUPT:
    case ST_CTL_TURN:
    case ST_CTL_FLUSH: call_control(s, m); return;
    default: return; /* reports and in-band commands mean nothing on the bus */
    }
}

static void handle_data(st_stage *s, const st_wire_msg *m)
{
    INC(received);
    s->cause_ns = st_wire_now_ns();
    if (m->h.type == ST_MSG_CONTROL) {
        uint32_t cmd = m->control.cmd;
        if (cmd == ST_CTL_END) {
            s->ends_seen++;
            if (s->ends_seen >= s->n_inputs && !s->completed) {
                call_control(s, m);
                if (!s->own_end)
                    st_stage_forward(s, m);
                complete(s);
            }
        } else if (cmd == ST_CTL_FLUSH || cmd == ST_CTL_TURN || cmd == ST_CTL_INTERRUPT ||
                   cmd == ST_CTL_SPEECH) {
            set_epoch(s, m->h.epoch);
            call_control(s, m);
            st_stage_forward(s, m);
        }
        /* Reports (ready, heartbeat, ...) do not belong on the data plane. */
        s->cause_ns = 0;
        return;
    }
    if (m->h.epoch < s->epoch && m->h.type != ST_MSG_METRICS) {
        INC(stale);
        s->cause_ns = 0;
        return;
    }
    set_epoch(s, m->h.epoch);
    int rc = s->type->data(s, s->self, m);
    if (rc)
        count_error(s, "data", rc);
    s->cause_ns = 0;
}

/* Takes every control event waiting on `sock` (the pipe or the bus). Leaves
   the socket drained, so that its ZMQ_FD signals the next arrival. */
static void drain_control(st_stage *s, void *sock, st_wire_rx *rx)
{
    st_wire_msg m;
    for (;;) {
        int rc = st_wire_rx_recv(rx, sock, ZMQ_DONTWAIT, &m);
        if (rc == ST_ERR_TIMEOUT || rc == ST_ERR_IO)
            return;
        if (rc == ST_ERR_FORMAT) {
            INC(malformed);
            continue;
        }
        /* Every stage of a fused group hears the bus, in chain order. */
        for (int i = 0; i < s->n_group; i++) {
            handle_bus(s->group[i], &m);
            if (s->group[i]->exit_requested)
                s->exit_requested = true;
        }
    }
}

static void drain_bus(st_stage *s)
{
    if (s->pipe)
        drain_control(s, s->pipe, s->rx_pipe);
    if (s->ctl)
        drain_control(s, s->ctl, s->rx_ctl);
}

static void do_tick(st_stage *s)
{
    INC(ticks);
    int rc = s->type->tick(s, s->self);
    if (rc == ST_ERR_END) {
        if (s->n_inputs == 0)
            end_stream(s);
    } else if (rc) {
        count_error(s, "tick", rc);
    }
}

/*  The wait. zmq_poll() would cost two poll() calls and a ZMQ_EVENTS query
    per socket per wake-up; instead the loop polls the sockets' ZMQ_FDs once
    and relies on their contract: a socket drained until EAGAIN signals its
    fd when the next message arrives. A socket not yet drained (a batch cut
    short, or the first turn) is "pending" and makes the poll not wait. */
static int run_loop(st_stage *s)
{
    st_stage **g = s->group;
    int ng = s->n_group;
    int fd_pipe = -1, fd_ctl = -1, fd_in = -1;
    size_t len = sizeof(int);
    if (s->pipe)
        zmq_getsockopt(s->pipe, ZMQ_FD, &fd_pipe, &len);
    len = sizeof(int);
    if (s->ctl)
        zmq_getsockopt(s->ctl, ZMQ_FD, &fd_ctl, &len);
    len = sizeof(int);
    if (s->in)
        zmq_getsockopt(s->in, ZMQ_FD, &fd_in, &len);
    bool bus_pending = true, in_pending = s->in != NULL;
    while (!s->exit_requested) {
        if (s->stop && *s->stop)
            break;
        double now = coarse_now_s();
        bool busy[ST_PIPE_MAX_STAGES], any_busy = false;
        double wait_s = 0.1;
        for (int j = 0; j < ng; j++) {
            st_stage *x = g[j];
            busy[j] = x->type->tick && x->started && !x->completed && x->tick_ms == 0;
            any_busy |= busy[j];
            if (x->report) {
                if (x->ready_sent && x->next_heartbeat_s - now < wait_s)
                    wait_s = x->next_heartbeat_s - now;
                if (x->ready_sent && x->next_metrics_s - now < wait_s)
                    wait_s = x->next_metrics_s - now;
            }
        }
        int timeout_ms = any_busy || bus_pending || in_pending ? 0
                         : wait_s <= 0                         ? 0
                                                               : (int)ceil(wait_s * 1000);
        struct pollfd fds[3 + ST_PIPE_MAX_STAGES];
        int n = 0, i_pipe = -1, i_ctl = -1, i_in = -1, i_tick[ST_PIPE_MAX_STAGES];
        if (fd_pipe >= 0) {
            i_pipe = n;
            fds[n++] = (struct pollfd){fd_pipe, POLLIN, 0};
        }
        if (fd_ctl >= 0) {
            i_ctl = n;
            fds[n++] = (struct pollfd){fd_ctl, POLLIN, 0};
        }
        if (fd_in >= 0) {
            i_in = n;
            fds[n++] = (struct pollfd){fd_in, POLLIN, 0};
        }
        for (int j = 0; j < ng; j++) {
            i_tick[j] = -1;
            if (g[j]->tick_armed) {
                i_tick[j] = n;
                fds[n++] = (struct pollfd){g[j]->tick_fd, POLLIN, 0};
            }
        }
        int ready = 0;
        if (timeout_ms > 0 && s->spin_us > 0) {
            /* Spin: the next message is taken without a wake-up. */
            uint64_t until = st_wire_now_ns() + (uint64_t)(s->spin_us * 1000);
            while ((ready = poll(fds, (nfds_t)n, 0)) == 0 && st_wire_now_ns() < until)
                ;
        }
        if (ready == 0)
            ready = poll(fds, (nfds_t)n, timeout_ms);
        if (ready < 0) {
            if (errno == EINTR)
                continue;
            return st_error(ST_ERR_IO, "stage '%s': poll: %s", s->name, strerror(errno));
        }
        /* 1. Control first: the creator's pipe, then the bus. */
        if (bus_pending || (i_pipe >= 0 && fds[i_pipe].revents) ||
            (i_ctl >= 0 && fds[i_ctl].revents)) {
            drain_bus(s);
            bus_pending = false;
        }
        if (s->exit_requested)
            break;
        /* 2. Data: a batch, with a look at the bus every BUS_CHECK_NS (a
           system call per look: not after every message of a burst). A
           fused group handles each message through all its stages before
           the next. */
        if (in_pending || (i_in >= 0 && fds[i_in].revents)) {
            uint64_t last_check_ns = st_wire_now_ns();
            in_pending = false;
            for (int k = 0; k < BATCH; k++) {
                st_wire_msg m;
                int r = st_wire_rx_recv(s->rx_in, s->in, ZMQ_DONTWAIT, &m);
                if (r == ST_ERR_TIMEOUT || r == ST_ERR_IO)
                    break;
                in_pending = k == BATCH - 1; /* cut short: more may wait */
                if (r == ST_ERR_FORMAT) {
                    INC(malformed);
                    continue;
                }
                handle_data(s, &m);
                /* The stamp of a send it made, if any, is the time now. */
                uint64_t now_ns = s->sent_ns > last_check_ns && ng == 1 ? s->sent_ns
                                                                        : st_wire_now_ns();
                if (now_ns - last_check_ns >= BUS_CHECK_NS) {
                    last_check_ns = now_ns;
                    if (has_message(s->pipe) || has_message(s->ctl)) {
                        drain_bus(s);
                        if (s->exit_requested)
                            break;
                    }
                }
            }
        }
        if (s->exit_requested)
            break;
        /* 3. Ticks, of every stage of the group. */
        for (int j = 0; j < ng; j++) {
            st_stage *x = g[j];
            if (i_tick[j] >= 0 && fds[i_tick[j]].revents) {
                uint64_t expirations;
                if (read(x->tick_fd, &expirations, sizeof expirations) == sizeof expirations &&
                    x->started && !x->completed)
                    do_tick(x);
            } else if (busy[j]) {
                do_tick(x);
            }
        }
        /* 4. Housekeeping, for every stage of the group. */
        now = coarse_now_s();
        for (int j = 0; j < ng; j++) {
            st_stage *x = g[j];
            if (x->report && !x->ready_sent && !s->ctl) {
                send_report(x, ST_CTL_READY, 0, x->name);
                x->ready_sent = true;
            }
            if (x->report && x->ready_sent && now >= x->next_heartbeat_s) {
                send_report(x, ST_CTL_HEARTBEAT, x->started, NULL);
                x->next_heartbeat_s = now + x->heartbeat_ms / 1000;
            }
            if (x->report && x->ready_sent && now >= x->next_metrics_s) {
                send_metrics(x);
                x->next_metrics_s = now + x->metrics_ms / 1000;
            }
        }
        if (s->orphan_s > 0 && s->heard_bus && now - s->last_bus_s > s->orphan_s) {
            st_log(ST_LOG_WARN, "stage '%s': the control bus has been silent for %.1f s "
                   "(supervisor gone?); exiting", s->name, now - s->last_bus_s);
            return st_error(ST_ERR_TIMEOUT, "stage '%s': the supervisor went silent", s->name);
        }
    }
    return ST_OK;
}

/* ---- actors ---------------------------------------------------------------- */

struct st_stage_actor {
    void *zctx;
    void *pipe;                 /* creator's end */
    char pipe_ep[64];
    pthread_t thread;
    bool joined;
    st_stage *stage;            /* the head of the group */
    st_stage *members[ST_PIPE_MAX_STAGES]; /* chain order; members[0] == stage */
    int n_members;
};

static int pipe_signal(void *pipe, uint32_t cmd, int rc, const char *text)
{
    unsigned char buf[16 + 1024];
    long n = st_wire_control_encode(buf, sizeof buf, cmd, (uint32_t)-rc, 0, text);
    st_wire_header h;
    st_wire_header_init(&h, ST_MSG_CONTROL, 0);
    return st_wire_send(pipe, &h, buf, (size_t)n, 0);
}

static void *actor_main(void *arg)
{
    st_stage_actor *a = arg;
    st_stage *s = a->stage;
    s->pipe = zmq_socket(s->zctx, ZMQ_PAIR);
    set_int(s->pipe, ZMQ_LINGER, 0);
    zmq_connect(s->pipe, a->pipe_ep);
    int rc = ST_OK;
    for (int i = 0; i < a->n_members && !rc; i++)
        rc = setup(a->members[i]);
    if (rc) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", st_errmsg());
        for (int i = a->n_members - 1; i >= 0; i--)
            teardown(a->members[i]);
        pipe_signal(s->pipe, ST_CTL_FAILED, rc, msg);
        zmq_close(s->pipe);
        s->pipe = NULL;
        return NULL;
    }
    pipe_signal(s->pipe, ST_CTL_READY, 0, s->name);
    rc = run_loop(s);
    if (rc)
        st_log(ST_LOG_ERROR, "%s", st_errmsg());
    for (int i = a->n_members - 1; i >= 0; i--)
        teardown(a->members[i]);
    zmq_close(s->pipe);
    s->pipe = NULL;
    return NULL;
}

static void free_members(st_stage_actor *a)
{
    for (int i = 0; i < a->n_members; i++)
        free(a->members[i]);
    a->n_members = 0;
    a->stage = NULL;
}

st_stage_actor *st_stage_actor_new(void *zctx, const st_stage_type *type,
                                   const st_stage_config *cfg, int *err)
{
    return st_stage_actor_new_fused(zctx, &type, cfg, 1, err);
}

st_stage_actor *st_stage_actor_new_fused(void *zctx, const st_stage_type *const *types,
                                         const st_stage_config *cfgs, int n, int *err)
{
    static _Atomic unsigned counter;
    int dummy;
    if (!err)
        err = &dummy;
    st_stage_actor *a = calloc(1, sizeof *a);
    if (!a) {
        *err = st_error(ST_ERR_NOMEM, "stage: out of memory");
        return NULL;
    }
    a->zctx = zctx;
    if (n < 1 || n > ST_PIPE_MAX_STAGES) {
        *err = st_error(ST_ERR_INVALID, "stage: a thread runs 1 to %d stages, not %d",
                        ST_PIPE_MAX_STAGES, n);
        goto fail;
    }
    for (int i = 0; i < n; i++) {
        st_stage *m = stage_alloc(zctx, types[i], &cfgs[i], err);
        if (!m)
            goto fail;
        a->members[a->n_members++] = m;
    }
    a->stage = a->members[0];
    /* A fused chain: each stage's one output is the next one's one input.
       Those edges become direct calls; the others stay sockets. */
    for (int i = 0; n > 1 && i < n; i++) {
        st_stage *m = a->members[i];
        if (i < n - 1 && m->n_out != 1) {
            *err = st_error(ST_ERR_INVALID, "stage '%s': in a fused chain every stage but the "
                            "last has exactly one output (the next stage); it has %d",
                            m->name, m->n_out);
            goto fail;
        }
        if (i > 0 && m->n_inputs != 1) {
            *err = st_error(ST_ERR_INVALID, "stage '%s': in a fused chain every stage but the "
                            "first has exactly one input (the stage before); it has %d",
                            m->name, m->n_inputs);
            goto fail;
        }
        if (i < n - 1) {
            m->n_out = 0;
            m->next = a->members[i + 1];
        }
        if (i > 0) {
            m->n_binds = 0;        /* its input is the direct call */
            m->control_ep[0] = '\0'; /* the head hears the bus for the group */
        }
    }
    a->stage->group = a->members;
    a->stage->n_group = n;
    snprintf(a->pipe_ep, sizeof a->pipe_ep, "inproc://st-actor-%p-%u", (void *)a,
             atomic_fetch_add(&counter, 1));
    a->pipe = zmq_socket(zctx, ZMQ_PAIR);
    if (a->pipe)
        set_int(a->pipe, ZMQ_LINGER, 0);
    if (!a->pipe || zmq_bind(a->pipe, a->pipe_ep)) {
        *err = st_error(ST_ERR_IO, "stage '%s': cannot make its pipe: %s", a->stage->name,
                        zmq_strerror(errno));
        goto fail;
    }
    if (pthread_create(&a->thread, NULL, actor_main, a)) {
        *err = st_error(ST_ERR_NOMEM, "stage '%s': cannot start a thread", a->stage->name);
        goto fail;
    }
    /* The handshake: READY, or FAILED with the reason. */
    st_wire_rx *rx = st_wire_rx_new("actor pipe", err);
    st_wire_msg m;
    int rc = rx ? ST_ERR_IO : ST_ERR_NOMEM;
    while (rx && (rc = st_wire_rx_recv(rx, a->pipe, 0, &m)) == ST_ERR_TIMEOUT)
        ;
    if (rc == ST_OK && m.h.type == ST_MSG_CONTROL && m.control.cmd == ST_CTL_READY) {
        st_wire_rx_destroy(&rx);
        *err = ST_OK;
        return a;
    }
    int code = ST_ERR_INTERNAL;
    char msg[1024] = "the stage's thread ended without a word";
    if (rc == ST_OK && m.h.type == ST_MSG_CONTROL && m.control.cmd == ST_CTL_FAILED) {
        code = -(int)m.control.arg;
        snprintf(msg, sizeof msg, "%.*s", (int)m.control.bytes, m.control.text);
    }
    st_wire_rx_destroy(&rx);
    pthread_join(a->thread, NULL);
    a->joined = true;
    *err = st_error(code, "%s", msg);
    zmq_close(a->pipe);
    free_members(a);
    free(a);
    return NULL;
fail:
    if (a->pipe)
        zmq_close(a->pipe);
    free_members(a);
    free(a);
    return NULL;
}

void st_stage_actor_destroy(st_stage_actor **a_p)
{
    if (!a_p || !*a_p)
        return;
    st_stage_actor *a = *a_p;
    if (!a->joined) {
        st_stage_actor_control(a, ST_CTL_SHUTDOWN, 0, 0);
        pthread_join(a->thread, NULL);
    }
    zmq_close(a->pipe);
    free_members(a);
    free(a);
    *a_p = NULL;
}

int st_stage_actor_control(st_stage_actor *a, uint32_t cmd, uint32_t arg, uint32_t epoch)
{
    unsigned char buf[16];
    long n = st_wire_control_encode(buf, sizeof buf, cmd, arg, 0, NULL);
    st_wire_header h;
    st_wire_header_init(&h, ST_MSG_CONTROL, 0);
    h.epoch = epoch;
    /* Never blocks: the actor may have left already (SHUTDOWN on the bus). */
    return st_wire_send(a->pipe, &h, buf, (size_t)n, ZMQ_DONTWAIT);
}

void st_stage_actor_stats(const st_stage_actor *a, st_stage_stats *out)
{
    fill_stats(a->stage, out);
}

int st_stage_actor_stats_of(const st_stage_actor *a, const char *name, st_stage_stats *out)
{
    for (int i = 0; i < a->n_members; i++)
        if (!strcmp(a->members[i]->name, name)) {
            fill_stats(a->members[i], out);
            return ST_OK;
        }
    return st_error(ST_ERR_NOT_FOUND, "stage: no stage '%s' on this thread", name);
}

int st_stage_run(void *zctx, const st_stage_type *type, const st_stage_config *cfg,
                 volatile int *stop)
{
    int rc;
    st_stage *s = stage_alloc(zctx, type, cfg, &rc);
    if (!s)
        return rc;
    s->stop = stop;
    /* This process's context: its tcp listener admits the stage's accepted
       keys (an actor's context belongs to its owner, who runs this). */
    st_sec_auth *auth = NULL;
    bool tcp_in = false;
    for (int i = 0; i < s->n_binds; i++)
        tcp_in |= !strncmp(s->binds[i], "tcp://", 6);
    rc = ST_OK;
    if (s->sec && tcp_in)
        auth = st_sec_stage_auth(zctx, s->sec, &rc);
    if (!rc)
        rc = setup(s);
    if (rc) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", st_errmsg());
        send_report(s, ST_CTL_FAILED, 0, msg);
        teardown(s);
        st_sec_auth_destroy(&auth);
        free(s);
        return st_error(rc, "%s", msg);
    }
    rc = run_loop(s);
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", rc ? st_errmsg() : "");
    teardown(s);
    st_sec_auth_destroy(&auth);
    free(s);
    return rc ? st_error(rc, "%s", msg) : ST_OK;
}

/* ---- the stage's side ------------------------------------------------------ */

const char *st_stage_name(const st_stage *s)
{
    return s->name;
}
uint16_t st_stage_id(const st_stage *s)
{
    return s->id;
}
uint32_t st_stage_epoch(const st_stage *s)
{
    return s->epoch;
}
void *st_stage_user_data(const st_stage *s)
{
    return s->user_data;
}
bool st_stage_has_outputs(const st_stage *s)
{
    return s->n_out > 0 || s->next;
}

const char *st_stage_param(st_stage *s, const char *key, const char *def)
{
    const char *v = st_params_get(&s->params, key);
    return v ? v : def;
}
int st_stage_param_double(st_stage *s, const char *key, double def, double lo, double hi,
                          double *out)
{
    return st_params_double(&s->params, key, def, lo, hi, out);
}
int st_stage_param_int(st_stage *s, const char *key, long def, long lo, long hi, long *out)
{
    return st_params_int(&s->params, key, def, lo, hi, out);
}
int st_stage_param_bool(st_stage *s, const char *key, bool def, bool *out)
{
    return st_params_bool(&s->params, key, def, out);
}
int st_stage_param_choice(st_stage *s, const char *key, const char *def,
                          const char *const *choices, int *out)
{
    return st_params_choice(&s->params, key, def, choices, out);
}

void st_stage_set_tick(st_stage *s, double tick_ms)
{
    s->tick_ms = tick_ms;
    if (s->created)
        arm_tick(s);
}

void st_stage_header(const st_stage *s, const st_wire_msg *cause, st_wire_header *h)
{
    if (cause) {
        *h = cause->h;
        return;
    }
    st_wire_header_init(h, 0, 0);
    h->epoch = s->epoch;
    h->stream_id = s->stream_id;
}

/* A fused edge: the message goes to the next stage of the group by a direct
   call, decoded from the same header bytes and payload frame a socket would
   have carried (the frame is shared, not copied). No queue: nothing is shed
   and nothing waits. */
static void deliver_fused(st_stage *s, const st_wire_header *h, zmq_msg_t *body)
{
    st_stage *d = s->next;
    unsigned char hb[ST_WIRE_HEADER_BYTES];
    st_wire_header_encode(h, hb);
    st_wire_msg m;
    INC(sent);
    if (st_wire_decode(hb, sizeof hb, zmq_msg_data(body), zmq_msg_size(body), &m)) {
        atomic_fetch_add_explicit(&d->st.malformed, 1, memory_order_relaxed);
        count_error(s, "fused send", ST_ERR_FORMAT);
        return;
    }
    m.from_bus = false;
    m.frame_ = body;
    handle_data(d, &m);
}

/* Sends one message to every output; takes ownership of body. */
static int send_frames(st_stage *s, st_wire_header *h, uint8_t type, zmq_msg_t *body)
{
    if (s->n_out == 0 && !s->next) {
        zmq_msg_close(body);
        return ST_OK;
    }
    h->version = ST_WIRE_VERSION;
    h->type = type;
    h->seq = ++s->seq;
    h->payload_bytes = (uint32_t)zmq_msg_size(body);
    s->last_sample_index = h->sample_index;
    uint64_t now = st_wire_now_ns();
    uint64_t compute = s->cause_ns && now > s->cause_ns ? now - s->cause_ns : 0;
    st_wire_stamp(h, s->id, now, compute > UINT32_MAX ? UINT32_MAX : (uint32_t)compute);
    s->sent_ns = now;
    if (s->next) {
        deliver_fused(s, h, body);
        zmq_msg_close(body);
        return ST_OK;
    }
    unsigned char hb[ST_WIRE_HEADER_BYTES];
    st_wire_header_encode(h, hb);
    bool droppable = s->shed && (type == ST_MSG_PCM || type == ST_MSG_SPIKES);
    int flags = droppable ? ZMQ_DONTWAIT : 0;
    for (int o = 0; o < s->n_out; o++) {
        zmq_msg_t part;
        zmq_msg_init(&part);
        if (o == s->n_out - 1)
            zmq_msg_move(&part, body);
        else
            zmq_msg_copy(&part, body);
        if (zmq_send(s->out[o], hb, sizeof hb, flags | ZMQ_SNDMORE) < 0 ||
            zmq_msg_send(&part, s->out[o], flags) < 0) {
            zmq_msg_close(&part);
            if (errno != EAGAIN)
                continue; /* the context is closing */
            if (droppable) {
                INC(shed);
                if (++s->logged_sheds == 1 || s->logged_sheds % 1000 == 0)
                    st_log(ST_LOG_WARN, "stage '%s': output %s is full: shedding audio "
                           "(%llu messages so far)", s->name, s->outputs[o],
                           (unsigned long long)s->logged_sheds);
            } else {
                INC(send_timeouts);
                st_log(ST_LOG_WARN, "stage '%s': output %s stayed full for %.0f ms: dropped a "
                       "%s message", s->name, s->outputs[o], s->send_timeout_ms,
                       st_wire_type_name(type));
            }
            continue;
        }
        INC(sent);
    }
    zmq_msg_close(body);
    return ST_OK;
}

int st_stage_send(st_stage *s, st_wire_header *h, uint8_t type, const void *payload, size_t bytes)
{
    zmq_msg_t body;
    if (zmq_msg_init_size(&body, bytes))
        return st_error(ST_ERR_NOMEM, "stage '%s': out of memory for a message", s->name);
    if (bytes)
        memcpy(zmq_msg_data(&body), payload, bytes);
    return send_frames(s, h, type, &body);
}

int st_stage_send_pcm(st_stage *s, st_wire_header *h, uint32_t rate_hz, const float *x,
                      size_t frames)
{
    long need = st_wire_pcm_encode(NULL, 0, rate_hz, ST_PCM_F32, x, frames);
    if (need < 0)
        return (int)need;
    zmq_msg_t body;
    if (zmq_msg_init_size(&body, (size_t)need))
        return st_error(ST_ERR_NOMEM, "stage '%s': out of memory for a message", s->name);
    st_wire_pcm_encode(zmq_msg_data(&body), (size_t)need, rate_hz, ST_PCM_F32, x, frames);
    return send_frames(s, h, ST_MSG_PCM, &body);
}

int st_stage_send_text(st_stage *s, st_wire_header *h, uint32_t flags, const char *text,
                       size_t bytes)
{
    long need = st_wire_text_encode(NULL, 0, flags, text, bytes);
    if (need < 0)
        return (int)need;
    zmq_msg_t body;
    if (zmq_msg_init_size(&body, (size_t)need))
        return st_error(ST_ERR_NOMEM, "stage '%s': out of memory for a message", s->name);
    st_wire_text_encode(zmq_msg_data(&body), (size_t)need, flags, text, bytes);
    return send_frames(s, h, ST_MSG_TEXT, &body);
}

int st_stage_send_control(st_stage *s, st_wire_header *h, uint32_t cmd, uint32_t arg)
{
    unsigned char buf[16];
    long n = st_wire_control_encode(buf, sizeof buf, cmd, arg, s->id, NULL);
    return st_stage_send(s, h, ST_MSG_CONTROL, buf, (size_t)n);
}

int st_stage_forward(st_stage *s, const st_wire_msg *m)
{
    st_wire_header h = m->h;
    zmq_msg_t body;
    zmq_msg_init(&body);
    if (m->frame_) {
        if (zmq_msg_copy(&body, (zmq_msg_t *)m->frame_))
            return st_error(ST_ERR_INTERNAL, "stage '%s': cannot share a frame", s->name);
    } else {
        zmq_msg_close(&body);
        if (zmq_msg_init_size(&body, m->payload_bytes))
            return st_error(ST_ERR_NOMEM, "stage '%s': out of memory for a message", s->name);
        if (m->payload_bytes)
            memcpy(zmq_msg_data(&body), m->payload, m->payload_bytes);
    }
    return send_frames(s, &h, m->h.type, &body);
}

int st_stage_report_metrics(st_stage *s, const st_wire_metric *m, size_t n)
{
    if (!s->report)
        return ST_OK;
    long need = st_wire_metrics_encode(NULL, 0, s->id, m, n);
    if (need < 0)
        return (int)need;
    unsigned char *buf = malloc((size_t)need);
    if (!buf)
        return st_error(ST_ERR_NOMEM, "stage '%s': out of memory for metrics", s->name);
    st_wire_metrics_encode(buf, (size_t)need, s->id, m, n);
    st_wire_header h;
    st_wire_header_init(&h, ST_MSG_METRICS, s->id);
    h.epoch = s->epoch;
    h.stream_id = s->stream_id;
    int rc = st_wire_send(s->report, &h, buf, (size_t)need, ZMQ_DONTWAIT);
    free(buf);
    return rc;
}
