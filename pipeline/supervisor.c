/*  pipeline/supervisor.c - starts the configured stages (threads of this
    process, or processes of their own running `spiketalk stage`), waits
    until each is ready, says START on the control bus, watches heartbeats,
    restarts a stage process that dies or hangs, and tells the user what
    happened through an event callback.

    What it may touch: libzmq, POSIX processes (posix_spawn, waitpid, kill),
    a private folder under $TMPDIR for ipc sockets and a generated
    configuration, and the registry. Driven by one thread, its creator's.

    Workload: a handful of stages, a heartbeat from each every 200 ms and
    metrics every second; the supervisor is off the data path entirely, so
    its own latency only matters for noticing a dead stage (one heartbeat
    timeout, 1 s by default).
*/
#include "pipeline_impl.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

extern char **environ;

typedef struct {
    char name[48];
    uint16_t id;
    bool process, external, required;
    st_stage_actor *actor;      /* shared by the stages of a fused chain */
    bool owns_actor;            /* the chain's first stage (or a stage alone) */
    pid_t pid;
    int restarts;
    bool ready, ended, failed, gave_up, unresponsive;
    double last_seen_s;
    double restart_at_s;        /* > 0: a restart is due then */
    double spawned_s;
    st_stage_stats stats;       /* the last metrics report (processes) */
    char fail_msg[1024];
} sup_stage;

struct st_pipe {
    st_pipe_config *cfg;
    st_pipe_params params;
    st__pipe_settings set;
    void *zctx, *pub, *pull;
    st_sec_auth *auth;          /* CURVE: admits the keys of this process's tcp listeners */
    st_wire_rx *rx;
    int n;
    sup_stage st[ST_PIPE_MAX_STAGES];
    uint32_t epoch;
    bool launched, started_sent, done, shutting_down;
    double next_hb_s;
    char rundir[256];
    char config_path[512];
    char exe[512];
};

st_pipe_params st_pipe_default_params(void)
{
    return (st_pipe_params){.start_timeout_s = 0};
}

/* ---- events ------------------------------------------------------------------ */

static void event(st_pipe *p, st_pipe_event_kind kind, const sup_stage *s, const char *fmt, ...)
    ST_PRINTF(4, 5);
static void event(st_pipe *p, st_pipe_event_kind kind, const sup_stage *s, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    st_pipe_event e = {.kind = kind,
                       .stage = s ? s->name : NULL,
                       .pid = s ? (int)s->pid : 0,
                       .restarts = s ? s->restarts : 0,
                       .message = msg};
    if (p->params.on_event)
        p->params.on_event(&e, p->params.user_data);
    else
        st_log(kind == ST_PIPE_EV_EXITED || kind == ST_PIPE_EV_FAILED ||
                       kind == ST_PIPE_EV_GAVE_UP || kind == ST_PIPE_EV_UNRESPONSIVE
                   ? ST_LOG_WARN
                   : ST_LOG_INFO,
               "%s", msg);
}

/* ---- the bus ----------------------------------------------------------------- */

static int publish(st_pipe *p, uint32_t cmd, uint32_t arg)
{
    unsigned char buf[16];
    long n = st_wire_control_encode(buf, sizeof buf, cmd, arg, 0, NULL);
    st_wire_header h;
    st_wire_header_init(&h, ST_MSG_CONTROL, 0);
    h.epoch = p->epoch;
    return st_wire_send(p->pub, &h, buf, (size_t)n, ZMQ_DONTWAIT);
}

/* ---- run-time choices -------------------------------------------------------- */

static bool port_free(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return false;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

/* A run of `count` free ports on the loopback; 0 when none was found. */
static long pick_ports(int count)
{
    unsigned seed = (unsigned)getpid() ^ (unsigned)(st_wire_now_ns() >> 10);
    for (int attempt = 0; attempt < 100; attempt++) {
        seed = seed * 1103515245u + 12345u;
        long base = 20000 + (long)((seed >> 8) % (unsigned)(40000 - count));
        int k = 0;
        while (k < count && port_free((int)base + k))
            k++;
        if (k == count)
            return base;
    }
    return 0;
}

static int make_rundir(st_pipe *p)
{
    if (p->rundir[0])
        return ST_OK;
    /* ipc paths are short (107 bytes): a longer TMPDIR falls back to /tmp */
    int rc = st_tmpdir_make(p->rundir, 81, "spiketalk-run");
    return rc ? st_error(rc, "pipeline: %s", st_errmsg()) : ST_OK;
}

static void remove_rundir(st_pipe *p)
{
    st_tmpdir_remove(p->rundir, NULL);
    p->rundir[0] = '\0';
}

/* ---- creation ---------------------------------------------------------------- */

/* CURVE on tcp (docs/SECURITY.md): one authenticator for this process's
   context; the bus and the report socket (ZAP domain "spiketalk") admit the
   keys the configuration names, each stage thread's input (domain
   "spiketalk/NAME") its own accept list. Plain tcp only with insecure = yes,
   and then a warning. */
static int secure_sockets(st_pipe *p, const char *ctl, const char *rep)
{
    if (st_pipe_config_insecure_tcp(p->cfg))
        st_log(ST_LOG_WARN, "pipeline: tcp sockets are plain (insecure = yes): anyone who can "
               "reach their ports can read and inject messages");
    const st_sec_stage *sec = st_pipe_config_security(p->cfg);
    if (!sec)
        return ST_OK;
    int rc, n = 0;
    const char **keys = malloc(sizeof *keys * ST_SEC_MAX_ACCEPT);
    if (!keys)
        return st_error(ST_ERR_NOMEM, "pipeline: out of memory");
    for (int i = 0; i < sec->n_accept; i++)
        keys[n++] = sec->accept[i];
    p->auth = st_sec_auth_new(p->zctx, keys, (size_t)n, &rc);
    free(keys);
    if (!p->auth)
        return rc;
    /* Each stage thread's input admits its own list (its ZAP domain). */
    for (int i = 0; i < p->n; i++) {
        st_stage_config sc;
        if (p->st[i].process || p->st[i].external ||
            st_pipe_config_stage(p->cfg, p->st[i].name, &sc) || !sc.security)
            continue;
        const char *own[ST_SEC_MAX_ACCEPT];
        for (int k = 0; k < sc.security->n_accept; k++)
            own[k] = sc.security->accept[k];
        char dom[96];
        snprintf(dom, sizeof dom, "spiketalk/%s", p->st[i].name);
        if ((rc = st_sec_auth_domain(p->auth, dom, own, (size_t)sc.security->n_accept)))
            return rc;
    }
    if (strncmp(ctl, "tcp://", 6) && strncmp(rep, "tcp://", 6))
        return ST_OK;
    st_curve_keys own;
    if ((rc = st_sec_stage_keys(sec, &own)))
        return rc;
    void *socks[2] = {p->pub, p->pull};
    const char *eps[2] = {ctl, rep};
    for (int i = 0; i < 2 && !rc; i++)
        if (!strncmp(eps[i], "tcp://", 6) && (rc = st_sec_curve_server(socks[i], &own)))
            rc = st_error(rc, "pipeline: %s: %s", eps[i], st_errmsg());
    memset(&own, 0, sizeof own);
    return rc;
}

st_pipe *st_pipe_new(const st_pipe_config *cfg, const st_pipe_params *params, int *err)
{
    int dummy, rc;
    if (!err)
        err = &dummy;
    st_pipe *p = calloc(1, sizeof *p);
    if (!p) {
        *err = st_error(ST_ERR_NOMEM, "pipeline: out of memory");
        return NULL;
    }
    p->params = params ? *params : st_pipe_default_params();
    p->cfg = st__pipe_config_dup(cfg);
    if (!p->cfg) {
        rc = st_error(ST_ERR_NOMEM, "pipeline: out of memory");
        goto fail;
    }
    st__pipe_config_settings(p->cfg, &p->set);
    char assign[400];
    if (p->set.needs_ipc) {
        if ((rc = make_rundir(p)))
            goto fail;
        snprintf(assign, sizeof assign, "pipeline.ipc_dir=%s", p->rundir);
        if ((rc = st_pipe_config_set(p->cfg, assign)))
            goto fail;
    }
    p->n = (int)st_pipe_config_stage_count(p->cfg);
    if (p->set.needs_tcp) {
        long base = pick_ports(p->n + 2);
        if (!base) {
            rc = st_error(ST_ERR_IO, "pipeline: found no %d free tcp ports on the loopback", p->n + 2);
            goto fail;
        }
        snprintf(assign, sizeof assign, "pipeline.base_port=%ld", base);
        if ((rc = st_pipe_config_set(p->cfg, assign)))
            goto fail;
    }
    st__pipe_config_settings(p->cfg, &p->set);
    if (p->params.start_timeout_s <= 0)
        p->params.start_timeout_s = p->set.start_timeout_s;
    for (int i = 0; i < p->n; i++) {
        sup_stage *s = &p->st[i];
        snprintf(s->name, sizeof s->name, "%s", st_pipe_config_stage_name(p->cfg, (size_t)i));
        s->id = (uint16_t)(i + 1);
        s->process = st_pipe_config_stage_process(p->cfg, (size_t)i);
        s->external = st_pipe_config_stage_external(p->cfg, (size_t)i);
        s->required = p->set.required[i];
        st_stage_config sc;
        if ((rc = st_pipe_config_stage(p->cfg, s->name, &sc)))
            goto fail;
    }
    if (p->params.exe_path)
        snprintf(p->exe, sizeof p->exe, "%s", p->params.exe_path);
    else {
        ssize_t len = readlink("/proc/self/exe", p->exe, sizeof p->exe - 1);
        p->exe[len > 0 ? len : 0] = '\0';
    }
    p->zctx = zmq_ctx_new();
    if (!p->zctx) {
        rc = st_error(ST_ERR_IO, "pipeline: cannot make a ZeroMQ context");
        goto fail;
    }
    p->pub = zmq_socket(p->zctx, ZMQ_PUB);
    p->pull = zmq_socket(p->zctx, ZMQ_PULL);
    int hwm = 10000, linger = 0;
    zmq_setsockopt(p->pub, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(p->pull, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_setsockopt(p->pub, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(p->pull, ZMQ_LINGER, &linger, sizeof linger);
    const char *ctl = st_pipe_config_control(p->cfg), *rep = st_pipe_config_report(p->cfg);
    if ((rc = secure_sockets(p, ctl, rep)))
        goto fail;
    if (zmq_bind(p->pub, ctl)) {
        rc = st_error(ST_ERR_IO, "pipeline: cannot open the control bus on %s: %s", ctl,
                      zmq_strerror(errno));
        goto fail;
    }
    if (zmq_bind(p->pull, rep)) {
        rc = st_error(ST_ERR_IO, "pipeline: cannot open the report socket on %s: %s", rep,
                      zmq_strerror(errno));
        goto fail;
    }
    /* ipc socket files owner-only (docs/SECURITY.md). */
    if ((rc = st_sec_ipc_restrict(ctl)) || (rc = st_sec_ipc_restrict(rep)))
        goto fail;
    if (!(p->rx = st_wire_rx_new("supervisor reports", &rc)))
        goto fail;
    *err = ST_OK;
    return p;
fail:
    *err = rc;
    {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", st_errmsg());
        st_pipe_destroy(&p);
        st_error(rc, "%s", msg);
    }
    return NULL;
}

/* ---- processes --------------------------------------------------------------- */

static int write_child_config(st_pipe *p)
{
    if (p->config_path[0])
        return ST_OK;
    if (st__pipe_config_from_file(p->cfg)) {
        const char *origin = st_pipe_config_origin(p->cfg);
        if (!realpath(origin, p->config_path))
            snprintf(p->config_path, sizeof p->config_path, "%s", origin);
        return ST_OK;
    }
    int rc = make_rundir(p);
    if (rc)
        return rc;
    snprintf(p->config_path, sizeof p->config_path, "%s/pipeline.ini", p->rundir);
    FILE *f = fopen(p->config_path, "w");
    if (!f)
        return st_error(ST_ERR_IO, "pipeline: cannot write %s: %s", p->config_path, strerror(errno));
    rc = st_pipe_config_write(p->cfg, f);
    if (fclose(f) && !rc)
        rc = st_error(ST_ERR_IO, "pipeline: cannot write %s", p->config_path);
    return rc;
}

static int spawn(st_pipe *p, sup_stage *s)
{
    int rc = write_child_config(p);
    if (rc)
        return rc;
    static char overrides[64][320];
    int n_ov = st__pipe_config_from_file(p->cfg) ? st__pipe_config_overrides(p->cfg, overrides, 64)
                                                  : 0;
    char *argv[16 + 2 * 64];
    int a = 0;
    argv[a++] = p->exe;
    for (int i = 0; p->params.child_args && p->params.child_args[i] && i < 8; i++)
        argv[a++] = (char *)p->params.child_args[i];
    argv[a++] = "stage";
    argv[a++] = s->name;
    argv[a++] = "--config";
    argv[a++] = p->config_path;
    for (int i = 0; i < n_ov; i++) {
        argv[a++] = "--set";
        argv[a++] = overrides[i];
    }
    argv[a] = NULL;
    pid_t pid;
    int e = posix_spawn(&pid, p->exe, NULL, NULL, argv, environ);
    if (e)
        return st_error(ST_ERR_IO, "stage '%s': cannot run %s: %s", s->name, p->exe, strerror(e));
    s->pid = pid;
    s->ready = false;
    s->spawned_s = st_now_s();
    s->last_seen_s = s->spawned_s;
    s->unresponsive = false;
    return ST_OK;
}

static void describe_exit(int status, char *buf, size_t cap)
{
    if (WIFSIGNALED(status))
        snprintf(buf, cap, "was killed by signal %d (%s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    else if (WIFEXITED(status))
        snprintf(buf, cap, "exited with status %d", WEXITSTATUS(status));
    else
        snprintf(buf, cap, "stopped (status %d)", status);
}

static void reap(st_pipe *p)
{
    for (int i = 0; i < p->n; i++) {
        sup_stage *s = &p->st[i];
        if (!s->process || s->pid <= 0)
            continue;
        int status;
        pid_t r = waitpid(s->pid, &status, WNOHANG);
        if (r != s->pid)
            continue;
        char how[128];
        describe_exit(status, how, sizeof how);
        event(p, ST_PIPE_EV_EXITED, s, "stage '%s' (pid %d) %s%s%s", s->name, (int)s->pid, how,
              s->fail_msg[0] ? ": " : "", s->fail_msg);
        s->pid = 0;
        s->ready = false;
        if (p->shutting_down)
            continue;
        if (s->restarts >= p->set.restarts) {
            s->gave_up = true;
            event(p, ST_PIPE_EV_GAVE_UP, s, "stage '%s' stays down: it was restarted %d times "
                  "(pipeline.restarts = %ld)", s->name, s->restarts, p->set.restarts);
            continue;
        }
        double backoff = 0.05 * (double)(1u << (s->restarts < 7 ? s->restarts : 7));
        s->restart_at_s = st_now_s() + backoff;
    }
}

static void restart_due(st_pipe *p)
{
    double now = st_now_s();
    for (int i = 0; i < p->n; i++) {
        sup_stage *s = &p->st[i];
        if (s->restart_at_s <= 0 || now < s->restart_at_s)
            continue;
        s->restart_at_s = 0;
        s->restarts++;
        s->fail_msg[0] = '\0';
        s->failed = false;
        if (spawn(p, s)) {
            /* Often passing (the binary being replaced): try again later. */
            bool again = s->restarts < p->set.restarts;
            event(p, again ? ST_PIPE_EV_FAILED : ST_PIPE_EV_GAVE_UP, s, "%s%s", st_errmsg(),
                  again ? "; trying again" : "; giving up");
            if (again)
                s->restart_at_s = st_now_s() + 0.05 * (double)(1u << (s->restarts < 7 ? s->restarts : 7));
            else
                s->gave_up = true;
            continue;
        }
        event(p, ST_PIPE_EV_RESTARTED, s, "restarted stage '%s' (restart %d of at most %ld), "
              "pid %d", s->name, s->restarts, p->set.restarts, (int)s->pid);
    }
}

/* ---- reports ----------------------------------------------------------------- */

static sup_stage *by_id(st_pipe *p, uint32_t id)
{
    return id >= 1 && id <= (uint32_t)p->n ? &p->st[id - 1] : NULL;
}

static void take_metrics(sup_stage *s, const st_wire_metrics *m)
{
    size_t cur = 0;
    st_wire_metric e;
    while (st_wire_metrics_next(m, &cur, &e)) {
        uint64_t v = e.value > 0 ? (uint64_t)e.value : 0;
        if (!strcmp(e.name, "received")) s->stats.received = v;
        else if (!strcmp(e.name, "sent")) s->stats.sent = v;
        else if (!strcmp(e.name, "malformed")) s->stats.malformed = v;
        else if (!strcmp(e.name, "stale")) s->stats.stale = v;
        else if (!strcmp(e.name, "shed")) s->stats.shed = v;
        else if (!strcmp(e.name, "send_timeouts")) s->stats.send_timeouts = v;
        else if (!strcmp(e.name, "errors")) s->stats.errors = v;
        else if (!strcmp(e.name, "controls")) s->stats.controls = v;
        else if (!strcmp(e.name, "ticks")) s->stats.ticks = v;
        else if (!strcmp(e.name, "epoch")) s->stats.epoch = (uint32_t)v;
        else if (!strcmp(e.name, "started")) s->stats.started = v != 0;
        else if (!strcmp(e.name, "ended")) s->stats.ended = v != 0;
    }
}

static void handle_report(st_pipe *p, const st_wire_msg *m)
{
    if (m->h.type == ST_MSG_METRICS) {
        sup_stage *s = by_id(p, m->metrics.stage_id);
        if (s) {
            s->last_seen_s = st_now_s();
            take_metrics(s, &m->metrics);
        }
        return;
    }
    if (m->h.type != ST_MSG_CONTROL)
        return;
    sup_stage *s = by_id(p, m->control.stage_id);
    if (!s)
        return;
    s->last_seen_s = st_now_s();
    s->unresponsive = false;
    switch (m->control.cmd) {
    case ST_CTL_READY:
        if (!s->ready) {
            s->ready = true;
            if (s->pid)
                event(p, ST_PIPE_EV_READY, s, "stage '%s' is ready (pid %d)", s->name, (int)s->pid);
            else if (s->external)
                event(p, ST_PIPE_EV_READY, s, "stage '%s' joined", s->name);
            else
                event(p, ST_PIPE_EV_READY, s, "stage '%s' is ready", s->name);
        }
        break;
    case ST_CTL_END:
        if (!s->ended) {
            s->ended = true;
            event(p, ST_PIPE_EV_ENDED, s, "stage '%s' finished its stream", s->name);
        }
        break;
    case ST_CTL_FAILED:
        s->failed = true;
        snprintf(s->fail_msg, sizeof s->fail_msg, "%.*s", (int)m->control.bytes, m->control.text);
        event(p, ST_PIPE_EV_FAILED, s, "stage '%s' could not start: %s", s->name, s->fail_msg);
        break;
    default: break;
    }
}

static void check_heartbeats(st_pipe *p)
{
    double now = st_now_s(), limit = p->set.heartbeat_timeout_ms / 1000;
    for (int i = 0; i < p->n; i++) {
        sup_stage *s = &p->st[i];
        bool watched = (s->process && s->pid > 0) || (s->actor) || (s->external && s->ready);
        if (!watched || s->unresponsive)
            continue;
        /* A process gets the start timeout to say it is ready. */
        double allowed = s->ready ? limit : p->params.start_timeout_s;
        if (now - s->last_seen_s <= allowed)
            continue;
        s->unresponsive = true;
        if (s->process && s->pid > 0) {
            event(p, ST_PIPE_EV_UNRESPONSIVE, s, "stage '%s' (pid %d) was silent for %.1f s; "
                  "killing it", s->name, (int)s->pid, now - s->last_seen_s);
            kill(s->pid, SIGKILL);
        } else {
            event(p, ST_PIPE_EV_UNRESPONSIVE, s, "stage '%s' was silent for %.1f s", s->name,
                  now - s->last_seen_s);
        }
    }
}

static bool all_ready(const st_pipe *p, bool launched_only)
{
    for (int i = 0; i < p->n; i++) {
        const sup_stage *s = &p->st[i];
        if (s->external && (launched_only || !s->required))
            continue;
        if (!s->ready)
            return false;
    }
    return true;
}

static bool all_ended(const st_pipe *p)
{
    for (int i = 0; i < p->n; i++) {
        const sup_stage *s = &p->st[i];
        if (!s->external && !s->ended && !s->gave_up)
            return false;
    }
    return true;
}

int st_pipe_poll(st_pipe *p, double timeout_s)
{
    double now = st_now_s();
    if (now >= p->next_hb_s) {
        publish(p, ST_CTL_HEARTBEAT, p->started_sent ? 1 : 0);
        p->next_hb_s = now + p->set.heartbeat_ms / 1000;
    }
    double wait = p->next_hb_s - now;
    if (timeout_s < wait)
        wait = timeout_s;
    zmq_pollitem_t it = {p->pull, 0, ZMQ_POLLIN, 0};
    zmq_poll(&it, 1, wait > 0 ? (long)(wait * 1000 + 0.999) : 0);
    st_wire_msg m;
    int rc;
    while ((rc = st_wire_rx_recv(p->rx, p->pull, ZMQ_DONTWAIT, &m)) != ST_ERR_TIMEOUT &&
           rc != ST_ERR_IO)
        if (rc == ST_OK)
            handle_report(p, &m);
    reap(p);
    restart_due(p);
    check_heartbeats(p);
    if (p->launched && !p->started_sent && all_ready(p, false)) {
        p->started_sent = true;
        publish(p, ST_CTL_START, 0);
        publish(p, ST_CTL_HEARTBEAT, 1);
        event(p, ST_PIPE_EV_STARTED, NULL, "every stage is ready: started");
    }
    if (p->started_sent && all_ended(p)) {
        if (!p->done) {
            p->done = true;
            event(p, ST_PIPE_EV_DONE, NULL, "every stage has finished");
        }
        return ST_ERR_END;
    }
    return ST_OK;
}

int st_pipe_start(st_pipe *p)
{
    if (p->launched)
        return st_error(ST_ERR_STATE, "pipeline: already started");
    int rc;
    for (int k = 0; k < p->n; k++) {
        int i = p->set.start_order[k];
        sup_stage *s = &p->st[i];
        if (s->external)
            continue;
        if (s->process) {
            if ((rc = spawn(p, s)))
                return rc;
            continue;
        }
        if (s->actor)
            continue; /* started with its chain */
        /* A stage alone, or the whole fused chain it belongs to. */
        int chain[ST_PIPE_MAX_STAGES], n = 0;
        int head = p->set.group_head[i] >= 0 ? p->set.group_head[i] : i;
        for (int j = head; j >= 0 && n < ST_PIPE_MAX_STAGES; j = p->set.fused_next[j])
            chain[n++] = j;
        st_stage_config sc[ST_PIPE_MAX_STAGES];
        const st_stage_type *types[ST_PIPE_MAX_STAGES];
        for (int k2 = 0; k2 < n; k2++) {
            int j = chain[k2];
            if ((rc = st_pipe_config_stage(p->cfg, p->st[j].name, &sc[k2])))
                return rc;
            sc[k2].user_data = p->params.user_data;
            types[k2] = st_stage_type_find(st_pipe_config_stage_type(p->cfg, (size_t)j));
            if (!types[k2])
                return st_error(ST_ERR_NOT_FOUND, "stage '%s': no stage type '%s'", p->st[j].name,
                                st_pipe_config_stage_type(p->cfg, (size_t)j));
        }
        st_stage_actor *a = st_stage_actor_new_fused(p->zctx, types, sc, n, &rc);
        if (!a) {
            char msg[1024];
            snprintf(msg, sizeof msg, "%s", st_errmsg());
            s->failed = true;
            snprintf(s->fail_msg, sizeof s->fail_msg, "%.500s", msg);
            event(p, ST_PIPE_EV_FAILED, s, "stage '%s' could not start: %s", s->name, msg);
            return st_error(rc, "%s", msg);
        }
        for (int k2 = 0; k2 < n; k2++) {
            sup_stage *m = &p->st[chain[k2]];
            m->actor = a;
            m->owns_actor = k2 == 0;
            m->last_seen_s = st_now_s();
        }
    }
    p->launched = true;
    /* Every stage this supervisor launched must say READY in time. */
    double deadline = st_now_s() + p->params.start_timeout_s;
    while (!all_ready(p, true)) {
        st_pipe_poll(p, 0.02);
        for (int i = 0; i < p->n; i++) {
            sup_stage *s = &p->st[i];
            if (s->failed || (s->process && s->pid == 0 && !s->ready)) {
                /* A stage that fails at start fails the same way again. */
                s->restart_at_s = 0;
                return st_error(ST_ERR_STATE, "stage '%s' could not start%s%s", s->name,
                                s->fail_msg[0] ? ": " : " (its process exited)", s->fail_msg);
            }
        }
        if (st_now_s() > deadline) {
            for (int i = 0; i < p->n; i++)
                if (!p->st[i].external && !p->st[i].ready)
                    return st_error(ST_ERR_TIMEOUT, "stage '%s' was not ready within %.1f s "
                                    "(pipeline.start_timeout_s)", p->st[i].name,
                                    p->params.start_timeout_s);
        }
    }
    return ST_OK;
}

int st_pipe_run(st_pipe *p, double timeout_s, volatile int *stop)
{
    if (!p->launched) {
        int rc = st_pipe_start(p);
        if (rc)
            return rc;
    }
    double deadline = timeout_s > 0 ? st_now_s() + timeout_s : 0;
    for (;;) {
        if (stop && *stop)
            return ST_ERR_END;
        if (st_pipe_poll(p, 0.05) == ST_ERR_END)
            return ST_OK;
        if (deadline && st_now_s() > deadline) {
            char waiting[512] = "";
            size_t len = 0;
            for (int i = 0; i < p->n && len < sizeof waiting; i++) {
                const sup_stage *s = &p->st[i];
                if (!p->started_sent && s->external && s->required && !s->ready)
                    len += (size_t)snprintf(waiting + len, sizeof waiting - len,
                                            " %s (not joined)", s->name);
                else if (!s->external && !s->ended)
                    len += (size_t)snprintf(waiting + len, sizeof waiting - len, " %s", s->name);
            }
            return st_error(ST_ERR_TIMEOUT, "pipeline: not finished after %.1f s; waiting for:%s",
                            timeout_s, waiting);
        }
    }
}

uint32_t st_pipe_interrupt(st_pipe *p)
{
    p->epoch++;
    publish(p, ST_CTL_INTERRUPT, 0);
    event(p, ST_PIPE_EV_INTERRUPT, NULL, "interrupt: turn %u begins", p->epoch);
    return p->epoch;
}

int st_pipe_control(st_pipe *p, uint32_t cmd, uint32_t arg)
{
    return publish(p, cmd, arg);
}

uint32_t st_pipe_epoch(const st_pipe *p)
{
    return p->epoch;
}

void *st_pipe_zmq_context(st_pipe *p)
{
    return p->zctx;
}

const st_pipe_config *st_pipe_get_config(const st_pipe *p)
{
    return p->cfg;
}

static const sup_stage *find(const st_pipe *p, const char *name)
{
    for (int i = 0; i < p->n; i++)
        if (!strcmp(p->st[i].name, name))
            return &p->st[i];
    return NULL;
}

int st_pipe_stage_pid(const st_pipe *p, const char *name)
{
    const sup_stage *s = find(p, name);
    return s ? (int)s->pid : st_error(ST_ERR_NOT_FOUND, "pipeline: no stage '%s'", name);
}

int st_pipe_stage_restarts(const st_pipe *p, const char *name)
{
    const sup_stage *s = find(p, name);
    return s ? s->restarts : st_error(ST_ERR_NOT_FOUND, "pipeline: no stage '%s'", name);
}

int st_pipe_stage_stats(const st_pipe *p, const char *name, st_stage_stats *out)
{
    const sup_stage *s = find(p, name);
    if (!s)
        return st_error(ST_ERR_NOT_FOUND, "pipeline: no stage '%s'", name);
    if (s->actor)
        st_stage_actor_stats_of(s->actor, s->name, out);
    else
        *out = s->stats;
    return ST_OK;
}

/* ---- shutdown ---------------------------------------------------------------- */

static bool children_left(st_pipe *p)
{
    bool any = false;
    for (int i = 0; i < p->n; i++) {
        sup_stage *s = &p->st[i];
        if (s->pid <= 0)
            continue;
        int status;
        if (waitpid(s->pid, &status, WNOHANG) == s->pid)
            s->pid = 0;
        else
            any = true;
    }
    return any;
}

void st_pipe_destroy(st_pipe **p_p)
{
    if (!p_p || !*p_p)
        return;
    st_pipe *p = *p_p;
    p->shutting_down = true;
    if (p->pub)
        publish(p, ST_CTL_SHUTDOWN, 0);
    for (int i = 0; i < p->n; i++)
        if (p->st[i].owns_actor)
            st_stage_actor_destroy(&p->st[i].actor);
    for (int i = 0; i < p->n; i++)
        p->st[i].actor = NULL; /* the rest of a fused chain went with its first stage */
    /* Processes: SHUTDOWN (again, for late subscribers), then SIGTERM, then SIGKILL. */
    double t0 = st_now_s();
    int phase = 0;
    while (children_left(p)) {
        double dt = st_now_s() - t0;
        if (phase == 0 && dt > 2.0) {
            for (int i = 0; i < p->n; i++)
                if (p->st[i].pid > 0)
                    kill(p->st[i].pid, SIGTERM);
            phase = 1;
        } else if (phase == 1 && dt > 3.0) {
            for (int i = 0; i < p->n; i++)
                if (p->st[i].pid > 0)
                    kill(p->st[i].pid, SIGKILL);
            phase = 2;
        } else if (phase == 2 && dt > 6.0) {
            break;
        }
        if (p->pub && phase == 0)
            publish(p, ST_CTL_SHUTDOWN, 0);
        usleep(20000);
    }
    st_wire_rx_destroy(&p->rx);
    if (p->pub)
        zmq_close(p->pub);
    if (p->pull)
        zmq_close(p->pull);
    st_sec_auth_destroy(&p->auth);
    if (p->zctx)
        zmq_ctx_term(p->zctx);
    remove_rundir(p);
    st_pipe_config_destroy(&p->cfg);
    free(p);
    *p_p = NULL;
}
