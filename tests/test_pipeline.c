/*  tests/test_pipeline.c - suite `pipeline`: the runtime as stages meet it.
    An actor says ready or why it could not start, and terminates cleanly;
    control is taken before queued data; older epochs are dropped; a stalled
    stage makes its upstream shed and count audio without memory growing;
    the supervisor restarts a stage process killed with SIGKILL and says so;
    one conversation gives the same transcript and audio with every stage a
    thread (inproc) and with every stage a process (tcp on the loopback); a
    Python stage (python3-zmq only) joins a running pipeline; configuration
    errors name the file and line; a fused chain (`thread =`) gives the same
    outputs, hop stamps, epoch drops and counters as one thread per stage;
    the example stage of docs/ works; a
    recording replays; the CLI commands answer.

    Processes run $ST_CLI (default build/spiketalk) from the repository
    root; every file goes to a temporary folder, and every process started
    here is reaped before its test ends. */
#include "testutil.h"

#include "audio/audio.h"
#include "pipeline/pipeline.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

extern char **environ;
extern const st_stage_type st_example_gain_stage; /* docs/example_stage.c */

/* ---- helpers ---------------------------------------------------------------------- */

/* A CURVE key pair NAME (and NAME.pub) in the test's folder: tcp needs keys
   unless the configuration says insecure = yes (docs/SECURITY.md). */
static void test_key(const char *name, char *path, size_t cap)
{
    char pub[600];
    st_test_tmpfile(path, cap, name);
    snprintf(pub, sizeof pub, "%s.pub", path);
    unlink(path);
    unlink(pub);
    st_curve_keys k;
    CU_ASSERT_EQUAL_FATAL(st_curve_keygen(&k), ST_OK);
    CU_ASSERT_EQUAL_FATAL(st_curve_keys_write(path, &k), ST_OK);
}

static bool memcheck(void)
{
    return getenv("ST_MEMCHECK") != NULL;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs(text, f);
    fclose(f);
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return calloc(1, 1);
    char *buf = malloc(1 << 20);
    size_t n = fread(buf, 1, (1 << 20) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}


static size_t resident_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, rss = 0;
    if (f) {
        if (fscanf(f, "%lu %lu", &size, &rss) != 2)
            rss = 0;
        fclose(f);
    }
    return rss * (size_t)sysconf(_SC_PAGESIZE);
}

static bool sanitized(void)
{
#if defined(__SANITIZE_ADDRESS__)
    return true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
    return true;
#endif
#endif
    return memcheck();
}

static int send_text(void *sock, uint32_t epoch, uint64_t seq, const char *text)
{
    unsigned char buf[256];
    long n = st_wire_text_encode(buf, sizeof buf, 0, text, strlen(text));
    st_wire_header h;
    st_wire_header_init(&h, ST_MSG_TEXT, 99);
    h.epoch = epoch;
    h.seq = seq;
    return st_wire_send(sock, &h, buf, (size_t)n, 0);
}

static int publish(void *pub, uint32_t cmd, uint32_t epoch)
{
    unsigned char buf[16];
    long n = st_wire_control_encode(buf, sizeof buf, cmd, 0, 0, NULL);
    st_wire_header h;
    st_wire_header_init(&h, ST_MSG_CONTROL, 0);
    h.epoch = epoch;
    return st_wire_send(pub, &h, buf, (size_t)n, 0);
}

static void sleep_ms(int ms)
{
    usleep((useconds_t)ms * 1000);
}

/* ---- a probe stage: logs what reaches it, can fail or block ------------------------ */

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool block_first, entered, released;
    char log[64][16];
    int n_log;
    uint32_t epochs[64];
    int n_epochs;
    atomic_int destroyed;
} probe_ctl;

static void probe_init(probe_ctl *p)
{
    memset(p, 0, sizeof *p);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
}

static void probe_fini(probe_ctl *p)
{
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
}

static void probe_log(probe_ctl *p, char kind, unsigned long v)
{
    pthread_mutex_lock(&p->mu);
    if (p->n_log < 64)
        snprintf(p->log[p->n_log++], sizeof p->log[0], "%c%lu", kind, v);
    pthread_mutex_unlock(&p->mu);
}

static int probe_create(st_stage *s, void **self)
{
    *self = st_stage_user_data(s);
    bool fail;
    int rc = st_stage_param_bool(s, "fail", false, &fail);
    if (rc)
        return rc;
    return fail ? st_error(ST_ERR_INVALID, "probe: told to fail") : ST_OK;
}

static int probe_data(st_stage *s, void *self, const st_wire_msg *m)
{
    probe_ctl *p = self;
    probe_log(p, 'd', (unsigned long)m->h.seq);
    pthread_mutex_lock(&p->mu);
    if (p->n_epochs < 64)
        p->epochs[p->n_epochs++] = m->h.epoch;
    if (p->block_first) {
        p->block_first = false;
        p->entered = true;
        pthread_cond_broadcast(&p->cv);
        while (!p->released)
            pthread_cond_wait(&p->cv, &p->mu);
    }
    pthread_mutex_unlock(&p->mu);
    return st_stage_forward(s, m);
}

static int probe_control(st_stage *s, void *self, const st_wire_msg *m)
{
    probe_log(self, 'c', m->control.cmd);
    return ST_OK;
}

static void probe_destroy(void *self)
{
    probe_ctl *p = self;
    if (p)
        atomic_fetch_add(&p->destroyed, 1);
}

static const st_stage_type probe_type = {
    .name = "probe",
    .create = probe_create,
    .data = probe_data,
    .control = probe_control,
    .destroy = probe_destroy,
};

/* A source of `frames` 10 ms PCM frames, as fast as the loop turns. */
typedef struct {
    long frames, sent;
    float x[160];
} burst;

static int burst_create(st_stage *s, void **self)
{
    burst *b = calloc(1, sizeof *b);
    *self = b;
    return b ? st_stage_param_int(s, "frames", 1000, 1, 10000000, &b->frames) : ST_ERR_NOMEM;
}

static int burst_tick(st_stage *s, void *self)
{
    burst *b = self;
    for (int k = 0; k < 64; k++) {
        if (b->sent == b->frames)
            return ST_ERR_END;
        st_wire_header h;
        st_stage_header(s, NULL, &h);
        h.sample_index = (uint64_t)b->sent++ * 160;
        st_stage_send_pcm(s, &h, 16000, b->x, 160);
    }
    return ST_OK;
}

static int no_data(st_stage *s, void *self, const st_wire_msg *m)
{
    return ST_OK;
}

static const st_stage_type burst_type = {
    .name = "burst",
    .create = burst_create,
    .data = no_data,
    .tick = burst_tick,
    .destroy = free,
};

static void register_test_types(void)
{
    CU_ASSERT_EQUAL(st_stage_type_register(&probe_type), ST_OK);
    CU_ASSERT_EQUAL(st_stage_type_register(&burst_type), ST_OK);
    CU_ASSERT_EQUAL(st_stage_type_register(&st_example_gain_stage), ST_OK);
}

static st_stage_config probe_config(probe_ctl *pc, const char *bind, st_params *prm)
{
    st_stage_config sc = st_stage_default_config();
    sc.name = "probe";
    sc.id = 1;
    sc.binds[0] = bind;
    sc.n_inputs = 1;
    sc.user_data = pc;
    sc.params = prm;
    return sc;
}

/* ---- actors ------------------------------------------------------------------------ */

static void test_actor_ready_and_failure(void)
{
    register_test_types();
    void *ctx = zmq_ctx_new();
    probe_ctl pc;
    probe_init(&pc);
    st_params prm;
    st_params_init(&prm, "test.ini", "stage.probe", 3);
    st_params_set(&prm, "fail", "yes", 4);
    st_stage_config sc = probe_config(&pc, "inproc://probe-a", &prm);
    int rc;

    /* create() fails: no actor, the stage's reason, and destroy() ran. */
    st_stage_actor *a = st_stage_actor_new(ctx, &probe_type, &sc, &rc);
    CU_ASSERT_PTR_NULL(a);
    CU_ASSERT_EQUAL(rc, ST_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(st_errmsg(), "told to fail"));
    CU_ASSERT_EQUAL(atomic_load(&pc.destroyed), 1);

    /* A parameter nobody reads: a typo, named with its line. */
    st_params_set(&prm, "fail", "no", 4);
    st_params_set(&prm, "colour", "red", 5);
    a = st_stage_actor_new(ctx, &probe_type, &sc, &rc);
    CU_ASSERT_PTR_NULL(a);
    CU_ASSERT_PTR_NOT_NULL(strstr(st_errmsg(), "test.ini:5:"));
    CU_ASSERT_PTR_NOT_NULL(strstr(st_errmsg(), "unknown parameter 'colour'"));

    /* An endpoint already taken. */
    st_params_init(&prm, "test.ini", "stage.probe", 3);
    void *squatter = zmq_socket(ctx, ZMQ_PULL);
    CU_ASSERT_EQUAL_FATAL(zmq_bind(squatter, "tcp://127.0.0.1:*"), 0);
    char ep[128];
    size_t len = sizeof ep;
    zmq_getsockopt(squatter, ZMQ_LAST_ENDPOINT, ep, &len);
    sc.binds[0] = ep;
    a = st_stage_actor_new(ctx, &probe_type, &sc, &rc);
    CU_ASSERT_PTR_NULL(a);
    CU_ASSERT_PTR_NOT_NULL(strstr(st_errmsg(), ep));
    CU_ASSERT_PTR_NOT_NULL(strstr(st_errmsg(), "cannot listen"));
    int zero = 0;
    zmq_setsockopt(squatter, ZMQ_LINGER, &zero, sizeof zero);
    zmq_close(squatter);

    /* Ready: the constructor returns a running actor; destroy joins it. */
    sc.binds[0] = "inproc://probe-a";
    int before = atomic_load(&pc.destroyed);
    a = st_stage_actor_new(ctx, &probe_type, &sc, &rc);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT_EQUAL(rc, ST_OK);
    double t0 = st_now_s();
    st_stage_actor_destroy(&a);
    CU_ASSERT(st_now_s() - t0 < 1.0);
    CU_ASSERT_PTR_NULL(a);
    CU_ASSERT_EQUAL(atomic_load(&pc.destroyed), before + 1);
    st_stage_actor_destroy(&a); /* idempotent */
    zmq_ctx_term(ctx);
    probe_fini(&pc);
}

static void test_control_before_data(void)
{
    register_test_types();
    void *ctx = zmq_ctx_new();
    void *pub = zmq_socket(ctx, ZMQ_PUB);
    void *push = zmq_socket(ctx, ZMQ_PUSH);
    int zero = 0;
    zmq_setsockopt(pub, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(push, ZMQ_LINGER, &zero, sizeof zero);
    CU_ASSERT_EQUAL_FATAL(zmq_bind(pub, "inproc://ctl-b"), 0);
    probe_ctl pc;
    probe_init(&pc);
    st_stage_config sc = probe_config(&pc, "inproc://probe-b", NULL);
    sc.control = "inproc://ctl-b";
    int rc;
    st_stage_actor *a = st_stage_actor_new(ctx, &probe_type, &sc, &rc);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT_EQUAL_FATAL(zmq_connect(push, "inproc://probe-b"), 0);

    /* Until the stage hears the bus (a subscription takes a moment). */
    for (int i = 0; i < 200 && !pc.n_log; i++) {
        publish(pub, ST_CTL_TURN, 0);
        sleep_ms(10);
    }
    CU_ASSERT(pc.n_log > 0);
    if (!pc.n_log)
        goto out;
    pthread_mutex_lock(&pc.mu);
    pc.n_log = 0;
    pc.block_first = true;
    pthread_mutex_unlock(&pc.mu);

    /* Message 1 is taken and holds the stage; 2..10 queue behind it; then an
       interrupt opens turn 1. */
    send_text(push, 0, 1, "one");
    pthread_mutex_lock(&pc.mu);
    while (!pc.entered)
        pthread_cond_wait(&pc.cv, &pc.mu);
    pthread_mutex_unlock(&pc.mu);
    for (int i = 2; i <= 10; i++)
        send_text(push, 0, (uint64_t)i, "stale");
    publish(pub, ST_CTL_INTERRUPT, 1);
    sleep_ms(100);
    pthread_mutex_lock(&pc.mu);
    pc.released = true;
    pthread_cond_broadcast(&pc.cv);
    pthread_mutex_unlock(&pc.mu);

    st_stage_stats st;
    for (int i = 0; i < 200; i++) {
        st_stage_actor_stats(a, &st);
        if (st.stale == 9)
            break;
        sleep_ms(10);
    }
    /* The interrupt came before any of the queued data, which was stale. */
    CU_ASSERT_EQUAL(st.received, 10);
    CU_ASSERT_EQUAL(st.stale, 9);
    CU_ASSERT_EQUAL(st.epoch, 1);
    pthread_mutex_lock(&pc.mu);
    CU_ASSERT_EQUAL(pc.n_log, 2);
    CU_ASSERT_STRING_EQUAL(pc.log[0], "d1");
    CU_ASSERT_STRING_EQUAL(pc.log[1], "c3");
    pthread_mutex_unlock(&pc.mu);
    /* The new turn's data goes through. */
    send_text(push, 1, 11, "fresh");
    for (int i = 0; i < 200 && pc.n_log < 3; i++)
        sleep_ms(5);
    CU_ASSERT_STRING_EQUAL(pc.log[2], "d11");
out:
    st_stage_actor_destroy(&a);
    CU_ASSERT_EQUAL(atomic_load(&pc.destroyed), 1);
    zmq_close(pub);
    zmq_close(push);
    zmq_ctx_term(ctx);
    probe_fini(&pc);
}

static void test_epochs_drop_older_turns(void)
{
    register_test_types();
    void *ctx = zmq_ctx_new();
    void *push = zmq_socket(ctx, ZMQ_PUSH);
    int zero = 0;
    zmq_setsockopt(push, ZMQ_LINGER, &zero, sizeof zero);
    probe_ctl pc;
    probe_init(&pc);
    st_stage_config sc = probe_config(&pc, "inproc://probe-e", NULL);
    int rc;
    st_stage_actor *a = st_stage_actor_new(ctx, &probe_type, &sc, &rc);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    zmq_connect(push, "inproc://probe-e");
    const uint32_t epochs[] = {2, 1, 3, 3, 0};
    for (int i = 0; i < 5; i++)
        send_text(push, epochs[i], (uint64_t)i + 1, "x");
    st_stage_stats st;
    for (int i = 0; i < 200; i++) {
        st_stage_actor_stats(a, &st);
        if (st.received == 5)
            break;
        sleep_ms(5);
    }
    CU_ASSERT_EQUAL(st.stale, 2);
    CU_ASSERT_EQUAL(pc.n_epochs, 3);
    CU_ASSERT_EQUAL(pc.epochs[0], 2);
    CU_ASSERT_EQUAL(pc.epochs[1], 3);
    CU_ASSERT_EQUAL(pc.epochs[2], 3);
    /* An interrupt through the actor's pipe opens turn 5: 4 is stale, 5 is not. */
    CU_ASSERT_EQUAL(st_stage_actor_control(a, ST_CTL_INTERRUPT, 0, 5), ST_OK);
    sleep_ms(20);
    send_text(push, 4, 6, "late");
    send_text(push, 5, 7, "now");
    for (int i = 0; i < 200; i++) {
        st_stage_actor_stats(a, &st);
        if (st.received == 7)
            break;
        sleep_ms(5);
    }
    CU_ASSERT_EQUAL(st.stale, 3);
    CU_ASSERT_EQUAL(st.epoch, 5);
    CU_ASSERT_EQUAL(pc.n_epochs, 4);
    CU_ASSERT_EQUAL(pc.epochs[3], 5);
    bool saw_interrupt = false;
    for (int i = 0; i < pc.n_log; i++)
        saw_interrupt |= !strcmp(pc.log[i], "c3");
    CU_ASSERT_TRUE(saw_interrupt);
    st_stage_actor_destroy(&a);
    zmq_close(push);
    zmq_ctx_term(ctx);
    probe_fini(&pc);
}

/* ---- queues ------------------------------------------------------------------------- */

static void test_stalled_stage_sheds_bounded(void)
{
    register_test_types();
    const long frames = memcheck() ? 3000 : 20000;
    char text[1024];
    snprintf(text, sizeof text,
             "[pipeline]\nhwm = 16\n"
             "[stage.src]\ntype = burst\nframes = %ld\nout = slow\n"
             "[stage.slow]\ntype = passthrough\ndelay_ms = 10\nout = sink\n"
             "[stage.sink]\ntype = passthrough\n",
             frames);
    int rc;
    st_pipe_config *cfg = st_pipe_config_parse(text, "shed.ini", &rc);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    st_pipe *p = st_pipe_new(cfg, NULL, &rc);
    st_pipe_config_destroy(&cfg);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    size_t rss0 = resident_bytes();
    CU_ASSERT_EQUAL(st_pipe_run(p, 30, NULL), ST_OK);
    size_t rss1 = resident_bytes();
    st_stage_stats src, slow, sink;
    st_pipe_stage_stats(p, "src", &src);
    st_pipe_stage_stats(p, "slow", &slow);
    st_pipe_stage_stats(p, "sink", &sink);
    /* Most audio was shed at the source, counted; what went through, arrived. */
    CU_ASSERT(src.shed > (uint64_t)frames / 2);
    CU_ASSERT_EQUAL(src.sent - 1 + src.shed, (uint64_t)frames); /* - 1: END */
    CU_ASSERT(slow.received < 1000);
    CU_ASSERT_EQUAL(slow.received, src.sent);
    CU_ASSERT_EQUAL(sink.received, slow.received);
    CU_ASSERT_EQUAL(slow.shed, 0);
    /* 20000 frames are 19 MB on the wire: the queues held at most ~40 of them. */
    if (!sanitized())
        CU_ASSERT(rss1 < rss0 + (8u << 20));
    st_pipe_destroy(&p);
}

/* ---- processes ---------------------------------------------------------------------- */

typedef struct {
    char text[8192];
    size_t len;
    int restarted, exited;
} event_log;

static void collect(const st_pipe_event *e, void *user)
{
    event_log *l = user;
    l->len += (size_t)snprintf(l->text + l->len, sizeof l->text - l->len, "%s\n", e->message);
    if (l->len >= sizeof l->text)
        l->len = sizeof l->text - 1;
    l->restarted += e->kind == ST_PIPE_EV_RESTARTED;
    l->exited += e->kind == ST_PIPE_EV_EXITED;
}

static void test_supervisor_restarts_killed_stage(void)
{
    char out[512], text[4096];
    st_test_tmpfile(out, sizeof out, "restart.txt");
    snprintf(text, sizeof text,
             "[pipeline]\ntransport = tcp\ninsecure = yes\nprocesses = yes\nheartbeat_ms = 100\n"
             "heartbeat_timeout_ms = 3000\n"
             "[stage.text]\ntype = text_source\ninterval_ms = 100\n"
             "lines = one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|"
             "fourteen|fifteen|sixteen|seventeen|eighteen|nineteen|twenty\nout = pass\n"
             "[stage.pass]\ntype = passthrough\nout = sink\n"
             "[stage.sink]\ntype = text_sink\nfile = %s\n",
             out);
    int rc;
    st_pipe_config *cfg = st_pipe_config_parse(text, "restart.ini", &rc);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    event_log ev = {.len = 0};
    st_pipe_params pp = st_pipe_default_params();
    pp.exe_path = st_test_cli();
    pp.on_event = collect;
    pp.user_data = &ev;
    st_pipe *p = st_pipe_new(cfg, &pp, &rc);
    st_pipe_config_destroy(&cfg);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    /* No FATAL from here: st_pipe_destroy() must reap the processes. */
    rc = st_pipe_start(p);
    CU_ASSERT_EQUAL(rc, ST_OK);
    if (rc) {
        fprintf(stderr, "restart: %s\n", st_errmsg());
        st_pipe_destroy(&p);
        return;
    }
    int pid = st_pipe_stage_pid(p, "pass");
    CU_ASSERT(pid > 0);
    CU_ASSERT_EQUAL(st_pipe_stage_pid(p, "nosuch"), ST_ERR_NOT_FOUND);
    double t0 = st_now_s();
    while (st_now_s() - t0 < 0.5)
        st_pipe_poll(p, 0.05);
    CU_ASSERT_EQUAL(kill(pid, SIGKILL), 0);
    CU_ASSERT_EQUAL(st_pipe_run(p, 30, NULL), ST_OK);
    int pid2 = st_pipe_stage_pid(p, "pass");
    char expect[128];
    snprintf(expect, sizeof expect, "stage 'pass' (pid %d) was killed by signal 9", pid);
    CU_ASSERT_PTR_NOT_NULL(strstr(ev.text, expect));
    CU_ASSERT_PTR_NOT_NULL(strstr(ev.text, "restarted stage 'pass'"));
    CU_ASSERT_EQUAL(ev.restarted, 1);
    CU_ASSERT_EQUAL(st_pipe_stage_restarts(p, "pass"), 1);
    CU_ASSERT(pid2 > 0 && pid2 != pid);
    int pids[3] = {st_pipe_stage_pid(p, "text"), pid2, st_pipe_stage_pid(p, "sink")};
    st_pipe_destroy(&p);
    for (int i = 0; i < 3; i++)
        CU_ASSERT(kill(pids[i], 0) != 0 && errno == ESRCH);
    /* The lines after the restart got through; the last one too. */
    char *t = read_file(out);
    int lines = 0;
    for (char *c = t; *c; c++)
        lines += *c == '\n';
    CU_ASSERT(lines >= 10);
    CU_ASSERT_PTR_NOT_NULL(strstr(t, "twenty\n"));
    if (!strstr(t, "twenty\n"))
        fprintf(stderr, "transcript after restart:\n%s\nevents:\n%s\n", t, ev.text);
    free(t);
}

static void test_supervisor_kills_hung_stage(void)
{
    /* A stage process stuck in its callback stops its heartbeats: the
       supervisor kills it and starts it again. */
    char out[512], text[2048];
    st_test_tmpfile(out, sizeof out, "hung.txt");
    snprintf(text, sizeof text,
             "[pipeline]\ntransport = tcp\ninsecure = yes\nprocesses = yes\nheartbeat_ms = 100\n"
             "heartbeat_timeout_ms = 600\n"
             "[stage.text]\ntype = text_source\ninterval_ms = 2000\nlines = stuck | through\n"
             "out = slow\n"
             "[stage.slow]\ntype = passthrough\ndelay_ms = 30000\nout = sink\n"
             "[stage.sink]\ntype = text_sink\nfile = %s\n",
             out);
    int rc;
    st_pipe_config *cfg = st_pipe_config_parse(text, "hung.ini", &rc);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    event_log ev = {.len = 0};
    st_pipe_params pp = st_pipe_default_params();
    pp.exe_path = st_test_cli();
    pp.on_event = collect;
    pp.user_data = &ev;
    st_pipe *p = st_pipe_new(cfg, &pp, &rc);
    st_pipe_config_destroy(&cfg);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    /* The first line hangs `slow` for 30 s; within a second it is killed
       and restarted. The run itself cannot finish: `slow` takes 30 s per
       line. */
    double t0 = st_now_s();
    rc = st_pipe_start(p);
    CU_ASSERT_EQUAL(rc, ST_OK);
    while (!rc && st_now_s() - t0 < 10 && !ev.restarted)
        st_pipe_poll(p, 0.05);
    CU_ASSERT_PTR_NOT_NULL(strstr(ev.text, "stage 'slow'"));
    CU_ASSERT_PTR_NOT_NULL(strstr(ev.text, "was silent for"));
    CU_ASSERT_PTR_NOT_NULL(strstr(ev.text, "killed by signal 9"));
    CU_ASSERT_EQUAL(ev.restarted, 1);
    CU_ASSERT(st_now_s() - t0 < 5);
    if (ev.restarted != 1)
        fprintf(stderr, "events after %.1f s:\n%s", st_now_s() - t0, ev.text);
    st_pipe_destroy(&p);
}

/* One conversation: text through a rewrite to a transcript, and audio from a
   48 kHz file through a resampler to a 16 kHz file. */
static int conversation(const char *dir, bool processes, const char *tag)
{
    char text[4096], key[512] = "";
    if (processes) /* tcp between processes: CurveZMQ, one key for the pipeline */
        test_key("conversation.key", key, sizeof key);
    snprintf(text, sizeof text,
             "[pipeline]\ntransport = %s\nprocesses = %s\n%s%s%s"
             "[stage.agent]\ntype = text_source\nwords = yes\n"
             "lines = Hello there, how can I help? | The weather is fine today. | Goodbye!\n"
             "out = polish\n"
             "[stage.polish]\ntype = rewrite\nreplace = fine->lovely\nout = voice\n"
             "[stage.voice]\ntype = text_sink\nfile = %s/transcript-%s.txt\n"
             "[stage.mic]\ntype = audio_source\ndevice = file\ninput = %s/in.wav\nshed = no\n"
             "out = to16k\n"
             "[stage.to16k]\ntype = resampler\nrate = 16000\nshed = no\nout = ear\n"
             "[stage.ear]\ntype = audio_sink\ndevice = file\nformat = float\n"
             "output = %s/heard-%s.wav\n",
             processes ? "tcp" : "inproc", processes ? "yes" : "no", key[0] ? "key = " : "", key,
             key[0] ? "\n" : "", dir, tag, dir, dir, tag);
    int rc;
    st_pipe_config *cfg = st_pipe_config_parse(text, "conversation.ini", &rc);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    st_pipe_params pp = st_pipe_default_params();
    pp.exe_path = st_test_cli();
    st_pipe *p = st_pipe_new(cfg, &pp, &rc);
    st_pipe_config_destroy(&cfg);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    if (processes) /* every tcp socket, the bus and reports too, is CURVE */
        CU_ASSERT_PTR_NOT_NULL(st_pipe_config_security(st_pipe_get_config(p)));
    rc = st_pipe_run(p, 30, NULL);
    if (rc)
        fprintf(stderr, "conversation (%s): %s\n", tag, st_errmsg());
    st_pipe_destroy(&p);
    return rc;
}

static void test_same_transcript_threads_and_processes(void)
{
    const char *dir = st_test_tmpdir();
    char path[512];
    snprintf(path, sizeof path, "%s/in.wav", dir);
    float *x = malloc(48000 * sizeof(float));
    st_test_noise(x, 48000, 7, 48000, 4000);
    CU_ASSERT_EQUAL_FATAL(st_audio_write_wav(path, x, 48000, 48000, ST_WAV_FLOAT), ST_OK);
    free(x);
    CU_ASSERT_EQUAL_FATAL(conversation(dir, false, "threads"), ST_OK);
    CU_ASSERT_EQUAL_FATAL(conversation(dir, true, "processes"), ST_OK);
    char a_path[512], b_path[512];
    snprintf(a_path, sizeof a_path, "%s/transcript-threads.txt", dir);
    snprintf(b_path, sizeof b_path, "%s/transcript-processes.txt", dir);
    char *a = read_file(a_path), *b = read_file(b_path);
    CU_ASSERT_STRING_EQUAL(a, "Hello there, how can I help?\nThe weather is lovely today.\nGoodbye!\n");
    CU_ASSERT_STRING_EQUAL(a, b);
    free(a);
    free(b);
    st_audio wa, wb;
    snprintf(a_path, sizeof a_path, "%s/heard-threads.wav", dir);
    snprintf(b_path, sizeof b_path, "%s/heard-processes.wav", dir);
    CU_ASSERT_EQUAL_FATAL(st_audio_read(a_path, &wa), ST_OK);
    CU_ASSERT_EQUAL_FATAL(st_audio_read(b_path, &wb), ST_OK);
    CU_ASSERT_EQUAL(wa.sample_rate_hz, 16000);
    CU_ASSERT(wa.frames >= 15900 && wa.frames <= 16400);
    CU_ASSERT_EQUAL(wa.frames, wb.frames);
    if (wa.frames == wb.frames)
        CU_ASSERT_EQUAL(memcmp(wa.samples, wb.samples, wa.frames * sizeof(float)), 0);
    st_audio_free(&wa);
    st_audio_free(&wb);
}

/* Every stage a process, tcp on the loopback, CurveZMQ: `agent` has a key
   of its own that `voice` does not accept. The supervisor admits it (the
   configuration names it), so the pipeline starts, but voice's listener
   refuses its handshake: nothing reaches the transcript and the stream
   never ends. With the key accepted, the same pipeline completes. */
static int refused_run(const char *pipe_key, const char *agent_key, bool accepted,
                       const char *out)
{
    char text[4096];
    snprintf(text, sizeof text,
             "[pipeline]\ntransport = tcp\nprocesses = yes\nheartbeat_ms = 100\nkey = %s\n"
             "[stage.agent]\ntype = text_source\nlines = secret plans | more of them\n"
             "key = %s\nout = voice\n"
             "[stage.voice]\ntype = text_sink\nfile = %s\naccept = %s.pub%s%s%s\n",
             pipe_key, agent_key, out, pipe_key, accepted ? ", " : "", accepted ? agent_key : "",
             accepted ? ".pub" : "");
    int rc;
    st_pipe_config *cfg = st_pipe_config_parse(text, "refused.ini", &rc);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    st_pipe_params pp = st_pipe_default_params();
    pp.exe_path = st_test_cli();
    st_pipe *p = st_pipe_new(cfg, &pp, &rc);
    st_pipe_config_destroy(&cfg);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    rc = st_pipe_run(p, accepted ? 30 : 3, NULL);
    st_pipe_destroy(&p);
    return rc;
}

static void test_unknown_key_refused_over_tcp(void)
{
    char pipe_key[512], agent_key[512], out[512], out_ok[512];
    test_key("refused-pipe.key", pipe_key, sizeof pipe_key);
    test_key("refused-agent.key", agent_key, sizeof agent_key);
    st_test_tmpfile(out, sizeof out, "refused.txt");
    st_test_tmpfile(out_ok, sizeof out_ok, "admitted.txt");
    unlink(out);
    unlink(out_ok);
    CU_ASSERT_EQUAL(refused_run(pipe_key, agent_key, false, out), ST_ERR_TIMEOUT);
    char *t = read_file(out);
    CU_ASSERT(!t || !strstr(t, "secret"));
    free(t);
    CU_ASSERT_EQUAL(refused_run(pipe_key, agent_key, true, out_ok), ST_OK);
    t = read_file(out_ok);
    CU_ASSERT_PTR_NOT_NULL(t);
    if (t)
        CU_ASSERT_STRING_EQUAL(t, "secret plans\nmore of them\n");
    free(t);
}

static void test_python_stage_joins(void)
{
    /* Debian's interpreter, which sees Debian's python3-zmq (a python3 of
       one's own earlier in PATH may not). */
    const char *python = access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3";
    char check[256];
    snprintf(check, sizeof check, "%s -c 'import zmq' >/dev/null 2>&1", python);
    if (system(check) != 0) {
        st_test_skip("pipeline:python_stage_joins", "python3-zmq is not installed (tools/deps installs it)");
        return;
    }
    char out[512], text[4096];
    st_test_tmpfile(out, sizeof out, "python.txt");
    snprintf(text, sizeof text,
             "[pipeline]\ntransport = tcp\ninsecure = yes\nheartbeat_ms = 100\n"
             "[stage.agent]\ntype = text_source\nwords = yes\nlines = hello world | you are kind\n"
             "out = polish\n"
             "[stage.polish]\ntype = external\nout = voice\n"
             "[stage.voice]\ntype = text_sink\nfile = %s\n",
             out);
    int rc;
    st_pipe_config *cfg = st_pipe_config_parse(text, "python.ini", &rc);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    st_pipe *p = st_pipe_new(cfg, NULL, &rc);
    st_pipe_config_destroy(&cfg);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    rc = st_pipe_start(p);
    CU_ASSERT_EQUAL(rc, ST_OK);
    if (rc) {
        st_pipe_destroy(&p);
        return;
    }
    /* Running, and waiting for the stage to join: nothing has started. */
    for (int i = 0; i < 5; i++)
        CU_ASSERT_EQUAL(st_pipe_poll(p, 0.02), ST_OK);
    st_stage_stats st;
    st_pipe_stage_stats(p, "agent", &st);
    CU_ASSERT_FALSE(st.started);

    st_stage_config sc;
    rc = st_pipe_config_stage(st_pipe_get_config(p), "polish", &sc);
    CU_ASSERT_EQUAL(rc, ST_OK);
    if (rc) {
        st_pipe_destroy(&p);
        return;
    }
    char id[16];
    snprintf(id, sizeof id, "%u", sc.id);
    char *argv[] = {(char *)python, "bindings/python/examples/rewrite_stage.py", "--name", "polish",
                    "--id", id, "--listen", (char *)sc.binds[0], "--out", (char *)sc.outputs[0],
                    "--control", (char *)sc.control, "--report", (char *)sc.report,
                    "--heartbeat-ms", "100", "--replace", "hello->goodbye, you->they", "--upper",
                    NULL};
    pid_t py;
    rc = posix_spawnp(&py, python, NULL, NULL, argv, environ);
    CU_ASSERT_EQUAL(rc, 0);
    if (rc) {
        st_pipe_destroy(&p);
        return;
    }
    rc = st_pipe_run(p, 30, NULL);
    CU_ASSERT_EQUAL(rc, ST_OK);
    if (rc)
        fprintf(stderr, "python stage: %s\n", st_errmsg());
    st_pipe_destroy(&p);
    /* SHUTDOWN reached it: it exits by itself. */
    int status = 0;
    pid_t r = 0;
    for (int i = 0; i < 500 && (r = waitpid(py, &status, WNOHANG)) == 0; i++)
        sleep_ms(10);
    if (r == 0) {
        kill(py, SIGKILL);
        waitpid(py, &status, 0);
    }
    CU_ASSERT_EQUAL(r, py);
    CU_ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    char *t = read_file(out);
    CU_ASSERT_STRING_EQUAL(t, "GOODBYE WORLD\nTHEY ARE KIND\n");
    free(t);
}

/* ---- configuration ------------------------------------------------------------------ */

static void expect_config_error(const char *text, const char *where, const char *what)
{
    char path[512];
    st_test_tmpfile(path, sizeof path, "bad.ini");
    write_file(path, text);
    int rc;
    st_pipe_config *c = st_pipe_config_load(path, &rc);
    CU_ASSERT_PTR_NULL(c);
    CU_ASSERT(rc < 0);
    char loc[600];
    snprintf(loc, sizeof loc, "%s:%s:", path, where);
    bool ok = strstr(st_errmsg(), loc) && strstr(st_errmsg(), what);
    CU_ASSERT_TRUE(ok);
    if (!ok)
        fprintf(stderr, "expected '%s' and '%s' in: %s\n", loc, what, st_errmsg());
    st_pipe_config_destroy(&c);
}

static void expect_start_error(const char *text, const char *where, const char *what)
{
    char path[512];
    st_test_tmpfile(path, sizeof path, "bad-start.ini");
    write_file(path, text);
    int rc;
    st_pipe_config *c = st_pipe_config_load(path, &rc);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    st_pipe *p = st_pipe_new(c, NULL, &rc);
    st_pipe_config_destroy(&c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    CU_ASSERT(st_pipe_start(p) < 0);
    char loc[600];
    snprintf(loc, sizeof loc, "%s:%s:", path, where);
    bool ok = strstr(st_errmsg(), loc) && strstr(st_errmsg(), what);
    CU_ASSERT_TRUE(ok);
    if (!ok)
        fprintf(stderr, "expected '%s' and '%s' in: %s\n", loc, what, st_errmsg());
    st_pipe_destroy(&p);
}

static void test_config_errors_name_file_and_line(void)
{
    register_test_types();
    expect_config_error("[pipeline]\nhwm = 8\n\n[stage.a]\ntype = nosuch\n", "5",
                        "unknown stage type 'nosuch'");
    expect_config_error("[stage.a]\ntype = passthrough\nout = b\n", "3", "no stage named 'b'");
    expect_config_error("[pipeline]\ntransprt = tcp\n[stage.a]\ntype = passthrough\n", "2",
                        "unknown key 'transprt'");
    expect_config_error("[stage.a]\ntype = passthrough\nthis is not a key\n", "3",
                        "not 'key = value'");
    expect_config_error("; a comment\n[stages]\nx = 1\n", "2", "unknown section [stages]");
    expect_config_error("[stage.a]\ntype = passthrough\ntype = rewrite\n", "3", "given twice");
    expect_config_error("[pipeline]\nhwm = lots\n[stage.a]\ntype = passthrough\n", "2",
                        "'lots' is not a whole number");
    expect_config_error("[stage.a]\ntype = passthrough\nprocess = yes\nout = b\n"
                        "[stage.b]\ntype = passthrough\ntransport = inproc\n",
                        "4", "inproc");
    expect_config_error("[stage.a]\ntype = passthrough\nout = b@pigeon\n[stage.b]\n"
                        "type = passthrough\n", "3", "inproc, ipc or tcp");
    expect_config_error("[stage.a]\nout = a\n", "1", "has no 'type'");
    /* Fused chains (`thread =`): an unknown thread, and stages that are not consecutive. */
    expect_config_error("[stage.a]\ntype = passthrough\nout = b\n[stage.b]\n"
                        "type = passthrough\nthread = nosuch\n", "6", "no stage named 'nosuch'");
    expect_config_error("[stage.a]\ntype = passthrough\nout = b\n[stage.b]\ntype = passthrough\n"
                        "out = c\n[stage.c]\ntype = passthrough\nthread = a\n", "9",
                        "must be consecutive");
    expect_config_error("[pipeline]\ntransport = tcp\n[stage.a]\ntype = passthrough\nout = b\n"
                        "[stage.b]\ntype = passthrough\nthread = a\nprocess = yes\n", "8",
                        "threads of the supervisor");
    /* Errors a stage finds when it starts. */
    expect_start_error("[stage.a]\ntype = passthrough\ndelay_ms = soon\n", "3",
                       "delay_ms: 'soon' is not a number");
    expect_start_error("[stage.a]\ntype = passthrough\ndealy_ms = 5\n", "3",
                       "unknown parameter 'dealy_ms'");
    expect_start_error("[stage.a]\ntype = gain\n\ngain_db = 100\n", "4", "gain_db");
    int rc;
    CU_ASSERT_PTR_NULL(st_pipe_config_load("/nonexistent/pipe.ini", &rc));
    CU_ASSERT_EQUAL(rc, ST_ERR_NOT_FOUND);
    CU_ASSERT_PTR_NOT_NULL(strstr(st_errmsg(), "/nonexistent/pipe.ini"));
    /* --set: checked the same way, and the old value stays on error. */
    st_pipe_config *c = st_pipe_config_parse(st_pipe_config_default_text(), "<built-in>", &rc);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_EQUAL(st_pipe_config_stage_count(c), 4);
    CU_ASSERT_EQUAL(st_pipe_config_set(c, "mic.device=virtual"), ST_OK);
    CU_ASSERT_EQUAL(st_pipe_config_set(c, "nosuch.device=virtual"), ST_ERR_NOT_FOUND);
    CU_ASSERT_EQUAL(st_pipe_config_set(c, "agent.out=nowhere"), ST_ERR_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(st_errmsg(), "--set"));
    CU_ASSERT_EQUAL(st_pipe_config_set(c, "pipeline.hwm"), ST_ERR_INVALID);
    st_stage_config sc;
    CU_ASSERT_EQUAL(st_pipe_config_stage(c, "agent", &sc), ST_OK);
    CU_ASSERT_STRING_EQUAL(sc.outputs[0], "inproc://st/speaker");
    st_pipe_config_destroy(&c);
}

/* ---- fusion ------------------------------------------------------------------------- */

#define FUSE_N 5
#define FUSE_MSGS 64

typedef struct {
    int n;
    char out[FUSE_MSGS][160];
    st_stage_stats st[FUSE_N];
} fuse_run;

/* Five pass-throughs, as five actors or one fused actor, fed by a PUSH
   socket and drained by a PULL socket: text of several epochs, an interrupt
   (through each actor's pipe), the new turn, then END. */
static void run_chain(bool fused, fuse_run *fr)
{
    register_test_types();
    const st_stage_type *pt = st_stage_type_find("passthrough");
    CU_ASSERT_PTR_NOT_NULL_FATAL(pt);
    void *ctx = zmq_ctx_new();
    void *push = zmq_socket(ctx, ZMQ_PUSH), *pull = zmq_socket(ctx, ZMQ_PULL);
    int zero = 0, tmo = 2000;
    zmq_setsockopt(push, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(pull, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(pull, ZMQ_RCVTIMEO, &tmo, sizeof tmo);
    const char *pre = fused ? "fz" : "uf";
    char eps[FUSE_N + 1][64];
    for (int i = 0; i <= FUSE_N; i++)
        snprintf(eps[i], sizeof eps[i], "inproc://%s-%d", pre, i);
    CU_ASSERT_EQUAL_FATAL(zmq_bind(pull, eps[FUSE_N]), 0);
    st_stage_config sc[FUSE_N];
    const st_stage_type *types[FUSE_N];
    char names[FUSE_N][8];
    for (int i = 0; i < FUSE_N; i++) {
        snprintf(names[i], sizeof names[i], "p%d", i + 1);
        sc[i] = st_stage_default_config();
        sc[i].name = names[i];
        sc[i].id = (uint16_t)(i + 1);
        sc[i].binds[0] = eps[i];
        sc[i].outputs[0] = eps[i + 1];
        sc[i].n_inputs = 1;
        sc[i].shed = false;
        types[i] = pt;
    }
    st_stage_actor *a[FUSE_N] = {NULL};
    int rc, n_actors = fused ? 1 : FUSE_N;
    if (fused)
        a[0] = st_stage_actor_new_fused(ctx, types, sc, FUSE_N, &rc);
    else
        for (int i = FUSE_N - 1; i >= 0; i--)
            a[i] = st_stage_actor_new(ctx, pt, &sc[i], &rc);
    for (int i = 0; i < n_actors; i++) {
        CU_ASSERT_PTR_NOT_NULL_FATAL(a[i]);
    }
    CU_ASSERT_EQUAL_FATAL(zmq_connect(push, eps[0]), 0);
    const uint32_t epochs[] = {0, 2, 1, 2, 3, 1, 3};
    uint64_t seq = 0;
    for (size_t i = 0; i < sizeof epochs / sizeof *epochs; i++) {
        char t[32];
        snprintf(t, sizeof t, "m%zu", i);
        send_text(push, epochs[i], ++seq, t);
    }
    sleep_ms(50);
    for (int i = 0; i < n_actors; i++)
        CU_ASSERT_EQUAL(st_stage_actor_control(a[i], ST_CTL_INTERRUPT, 0, 5), ST_OK);
    sleep_ms(50);
    send_text(push, 4, ++seq, "late");
    send_text(push, 5, ++seq, "now");
    {
        unsigned char buf[16];
        long n = st_wire_control_encode(buf, sizeof buf, ST_CTL_END, 0, 99, NULL);
        st_wire_header h;
        st_wire_header_init(&h, ST_MSG_CONTROL, 99);
        h.epoch = 5;
        h.seq = ++seq;
        st_wire_send(push, &h, buf, (size_t)n, 0);
    }
    st_wire_rx *rx = st_wire_rx_new("test fused output", &rc);
    CU_ASSERT_PTR_NOT_NULL_FATAL(rx);
    fr->n = 0;
    st_wire_msg m;
    while (fr->n < FUSE_MSGS && st_wire_rx_recv(rx, pull, 0, &m) == ST_OK) {
        char *o = fr->out[fr->n++];
        int len = snprintf(o, 160, "%s e%u s%llu", st_wire_type_name(m.h.type), m.h.epoch,
                           (unsigned long long)m.h.seq);
        if (m.h.type == ST_MSG_TEXT)
            len += snprintf(o + len, 160 - (size_t)len, " '%.*s'", (int)m.text.bytes, m.text.text);
        else if (m.h.type == ST_MSG_CONTROL)
            len += snprintf(o + len, 160 - (size_t)len, " %s", st_wire_ctl_name(m.control.cmd));
        len += snprintf(o + len, 160 - (size_t)len, " hops");
        for (int k = 0; k < m.h.n_hops; k++) {
            len += snprintf(o + len, 160 - (size_t)len, " %u", m.h.hops[k].stage_id);
            /* Stamps are in order and each later than the one before. */
            if (k) {
                CU_ASSERT(m.h.hops[k].sent_ns >= m.h.hops[k - 1].sent_ns);
            }
        }
        if (m.h.type == ST_MSG_CONTROL && m.control.cmd == ST_CTL_END)
            break;
    }
    st_wire_rx_destroy(&rx);
    for (int i = 0; i < FUSE_N; i++) {
        st_stage_stats *st = &fr->st[i];
        for (int k = 0; k < 200; k++) {
            if (fused) {
                CU_ASSERT_EQUAL(st_stage_actor_stats_of(a[0], names[i], st), ST_OK);
            } else {
                st_stage_actor_stats(a[i], st);
            }
            if (st->ended)
                break;
            sleep_ms(5);
        }
    }
    for (int i = 0; i < n_actors; i++)
        st_stage_actor_destroy(&a[i]);
    zmq_close(push);
    zmq_close(pull);
    zmq_ctx_term(ctx);
}

static void test_fused_chain_matches_threads(void)
{
    static fuse_run apart, fused;
    run_chain(false, &apart);
    run_chain(true, &fused);
    /* m0 (e0), m1 (e2), m3 (e2), m4 (e3), m6 (e3), now (e5), END; m2 and m5
       are older than e2/e3 and "late" older than the interrupt's e5. */
    CU_ASSERT_EQUAL(apart.n, 7);
    CU_ASSERT_EQUAL(fused.n, apart.n);
    for (int i = 0; i < apart.n && i < fused.n; i++) {
        CU_ASSERT_STRING_EQUAL(fused.out[i], apart.out[i]);
        if (strcmp(fused.out[i], apart.out[i]))
            fprintf(stderr, "fused '%s' vs threads '%s'\n", fused.out[i], apart.out[i]);
    }
    if (apart.n == 7) {
        CU_ASSERT_STRING_EQUAL(apart.out[0], "text e0 s1 'm0' hops 99 1 2 3 4 5");
        CU_ASSERT_STRING_EQUAL(apart.out[5], "text e5 s6 'now' hops 99 1 2 3 4 5");
        CU_ASSERT_STRING_EQUAL(apart.out[6], "control e5 s7 end hops 99 1 2 3 4 5");
    }
    for (int i = 0; i < FUSE_N; i++) {
        const st_stage_stats *x = &apart.st[i], *y = &fused.st[i];
        CU_ASSERT_EQUAL(y->received, x->received);
        CU_ASSERT_EQUAL(y->sent, x->sent);
        CU_ASSERT_EQUAL(y->stale, x->stale);
        CU_ASSERT_EQUAL(y->shed, x->shed);
        CU_ASSERT_EQUAL(y->errors, x->errors);
        CU_ASSERT_EQUAL(y->malformed, x->malformed);
        CU_ASSERT_EQUAL(y->controls, x->controls);
        CU_ASSERT_EQUAL(y->epoch, x->epoch);
        CU_ASSERT_EQUAL(y->ended, x->ended);
        CU_ASSERT_TRUE(y->ended);
        CU_ASSERT_EQUAL(y->epoch, 5);
    }
    /* The first stage drops the three stale messages; the others never see them. */
    CU_ASSERT_EQUAL(fused.st[0].received, 10);
    CU_ASSERT_EQUAL(fused.st[0].stale, 3);
    CU_ASSERT_EQUAL(fused.st[1].received, 7);
    CU_ASSERT_EQUAL(fused.st[1].stale, 0);
}

/* The supervisor runs `thread =` chains: every stage reports and ends. */
static void test_fused_pipeline_runs(void)
{
    register_test_types();
    const char *text = "[pipeline]\nheartbeat_ms = 50\n"
                       "[stage.src]\ntype = text_source\nlines = hello world\nout = a\n"
                       "[stage.a]\ntype = passthrough\nout = b\n"
                       "[stage.b]\ntype = passthrough\nthread = a\nout = c\n"
                       "[stage.c]\ntype = passthrough\nthread = a\nout = sink\n"
                       "[stage.sink]\ntype = passthrough\n";
    int rc;
    st_pipe_config *cfg = st_pipe_config_parse(text, "<fused>", &rc);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    st_pipe_params pp = st_pipe_default_params();
    st_pipe *p = st_pipe_new(cfg, &pp, &rc);
    st_pipe_config_destroy(&cfg);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    rc = st_pipe_run(p, 20, NULL);
    CU_ASSERT_EQUAL(rc, ST_OK);
    if (rc)
        fprintf(stderr, "fused pipeline: %s\n", st_errmsg());
    const char *names[] = {"a", "b", "c", "sink"};
    st_stage_stats st[4];
    for (int i = 0; i < 4; i++) {
        CU_ASSERT_EQUAL(st_pipe_stage_stats(p, names[i], &st[i]), ST_OK);
        CU_ASSERT_TRUE(st[i].ended);
        CU_ASSERT(st[i].received >= 2);
    }
    CU_ASSERT_EQUAL(st[1].received, st[0].received);
    CU_ASSERT_EQUAL(st[2].received, st[1].received);
    CU_ASSERT_EQUAL(st[3].received, st[2].received);
    st_pipe_destroy(&p);
}

/* ---- the example stage, recordings, the CLI ----------------------------------------- */

static void test_example_stage_from_docs(void)
{
    register_test_types();
    /* The page shows the file, byte for byte. */
    char *page = read_file("docs/EXAMPLE_STAGE.md"), *src = read_file("docs/example_stage.c");
    CU_ASSERT(strlen(src) > 500);
    CU_ASSERT_PTR_NOT_NULL(strstr(page, src));
    int lines = 0;
    for (char *c = src; *c; c++)
        lines += *c == '\n';
    CU_ASSERT(lines < 60);
    free(page);
    free(src);
    const char *dir = st_test_tmpdir();
    char in[512], outp[512], text[4096];
    snprintf(in, sizeof in, "%s/in.wav", dir);
    snprintf(outp, sizeof outp, "%s/out.wav", dir);
    float *x = malloc(16000 * sizeof(float));
    st_test_noise(x, 16000, 3, 16000, 3000);
    CU_ASSERT_EQUAL_FATAL(st_audio_write_wav(in, x, 16000, 16000, ST_WAV_FLOAT), ST_OK);
    snprintf(text, sizeof text,
             "[stage.mic]\ntype = audio_source\ndevice = file\ninput = %s\nshed = no\nout = half\n"
             "[stage.half]\ntype = gain\ngain_db = -6.0206\nshed = no\nout = out\n"
             "[stage.out]\ntype = audio_sink\ndevice = file\nformat = float\noutput = %s\n",
             in, outp);
    int rc;
    st_pipe_config *cfg = st_pipe_config_parse(text, "gain.ini", &rc);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    st_pipe *p = st_pipe_new(cfg, NULL, &rc);
    st_pipe_config_destroy(&cfg);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    CU_ASSERT_EQUAL(st_pipe_run(p, 20, NULL), ST_OK);
    st_pipe_destroy(&p);
    st_audio y;
    CU_ASSERT_EQUAL_FATAL(st_audio_read(outp, &y), ST_OK);
    CU_ASSERT_EQUAL(y.frames, 16000);
    double err = 0;
    for (size_t i = 0; i < y.frames && i < 16000; i++)
        err = fmax(err, fabs(y.samples[i] - 0.5 * x[i]));
    CU_ASSERT(err < 1e-5);
    st_audio_free(&y);
    free(x);
}

static void test_audio_through_virtual_devices(void)
{
    /* The device path (capture ring, stamps, playback ring) on both ends. */
    const char *dir = st_test_tmpdir();
    char in[512], outp[512], text[4096];
    snprintf(in, sizeof in, "%s/in.wav", dir);
    snprintf(outp, sizeof outp, "%s/out.wav", dir);
    float *x = malloc(24000 * sizeof(float));
    st_test_noise(x, 24000, 5, 48000, 3000);
    CU_ASSERT_EQUAL_FATAL(st_audio_write_wav(in, x, 24000, 48000, ST_WAV_FLOAT), ST_OK);
    free(x);
    snprintf(text, sizeof text,
             "[stage.mic]\ntype = audio_source\ndevice = virtual\nrate = 48000\ninput = %s\n"
             "shed = no\nout = to16k\n"
             "[stage.to16k]\ntype = resampler\nshed = no\nout = speaker\n"
             "[stage.speaker]\ntype = audio_sink\ndevice = virtual\nrate = 48000\noutput = %s\n",
             in, outp);
    int rc;
    st_pipe_config *cfg = st_pipe_config_parse(text, "devices.ini", &rc);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    st_pipe *p = st_pipe_new(cfg, NULL, &rc);
    st_pipe_config_destroy(&cfg);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    CU_ASSERT_EQUAL(st_pipe_run(p, 20, NULL), ST_OK);
    st_stage_stats mic, sp;
    st_pipe_stage_stats(p, "mic", &mic);
    st_pipe_stage_stats(p, "speaker", &sp);
    st_pipe_destroy(&p);
    CU_ASSERT(mic.sent >= 51 && mic.sent <= 53); /* 50 frames of 10 ms (and the file resampler's tail), END */
    if (mic.sent < 51 || mic.sent > 53)
        fprintf(stderr, "mic sent %llu\n", (unsigned long long)mic.sent);
    CU_ASSERT_EQUAL(mic.shed, 0);
    st_audio y;
    CU_ASSERT_EQUAL_FATAL(st_audio_read(outp, &y), ST_OK);
    CU_ASSERT_EQUAL(y.sample_rate_hz, 48000);
    /* Half a second there and back, the resamplers' tails and the speaker's
       priming included. */
    CU_ASSERT(y.frames >= 24000 && y.frames <= 24000 + 4800);
    double e = 0;
    for (size_t i = 0; i < y.frames; i++)
        e += (double)y.samples[i] * y.samples[i];
    CU_ASSERT(y.frames && sqrt(e / (double)y.frames) > 0.05);
    st_audio_free(&y);
}

static void test_transport_per_edge(void)
{
    /* One pipeline, three transports: inproc into `up`, ipc into `mid`, tcp
       into `voice`; each stage binds what its incoming edges need. */
    char out[512], text[4096], key[512];
    st_test_tmpfile(out, sizeof out, "edges.txt");
    test_key("edges.key", key, sizeof key); /* the tcp edge: CURVE, checked in this process */
    snprintf(text, sizeof text,
             "[pipeline]\nkey = %s\n"
             "[stage.agent]\ntype = text_source\nlines = over three | transports\nout = up\n"
             "[stage.up]\ntype = rewrite\ncase = upper\nout = mid@ipc, voice@tcp\n"
             "[stage.mid]\ntype = passthrough\nout = voice\n"
             "[stage.voice]\ntype = text_sink\ntransport = tcp\nfile = %s\n",
             key, out);
    int rc;
    st_pipe_config *cfg = st_pipe_config_parse(text, "edges.ini", &rc);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    st_pipe *p = st_pipe_new(cfg, NULL, &rc);
    st_pipe_config_destroy(&cfg);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    st_stage_config up, mid, voice;
    CU_ASSERT_EQUAL(st_pipe_config_stage(st_pipe_get_config(p), "up", &up), ST_OK);
    CU_ASSERT_EQUAL(st_pipe_config_stage(st_pipe_get_config(p), "mid", &mid), ST_OK);
    CU_ASSERT_EQUAL(st_pipe_config_stage(st_pipe_get_config(p), "voice", &voice), ST_OK);
    CU_ASSERT_STRING_EQUAL(up.binds[0], "inproc://st/up");
    CU_ASSERT(!strncmp(up.outputs[0], "ipc://", 6));
    CU_ASSERT(!strncmp(up.outputs[1], "tcp://127.0.0.1:", 16));
    CU_ASSERT_STRING_EQUAL(mid.binds[0], up.outputs[0]);
    CU_ASSERT_STRING_EQUAL(voice.binds[0], up.outputs[1]);
    CU_ASSERT_PTR_NULL(voice.binds[1]); /* mid's edge takes voice's transport: tcp too */
    CU_ASSERT_EQUAL(voice.n_inputs, 2);
    CU_ASSERT_PTR_NOT_NULL(voice.security); /* CURVE by default on tcp */
    CU_ASSERT_PTR_NOT_NULL(up.security);
    CU_ASSERT_EQUAL(st_pipe_run(p, 20, NULL), ST_OK);
    st_pipe_destroy(&p);
    /* Two copies of each line (two paths into the sink), in some order. */
    char *t = read_file(out);
    int over = 0, trans = 0;
    for (char *c = t; (c = strstr(c, "OVER THREE\n")); c++)
        over++;
    for (char *c = t; (c = strstr(c, "TRANSPORTS\n")); c++)
        trans++;
    CU_ASSERT_EQUAL(over, 2);
    CU_ASSERT_EQUAL(trans, 2);
    free(t);
}

static void test_recording_replays(void)
{
    const char *dir = st_test_tmpdir();
    char text[4096], rec[512], a[512], b[512];
    snprintf(rec, sizeof rec, "%s/run.rec", dir);
    snprintf(a, sizeof a, "%s/a.txt", dir);
    snprintf(b, sizeof b, "%s/b.txt", dir);
    snprintf(text, sizeof text,
             "[stage.agent]\ntype = text_source\nwords = yes\nlines = one two | three\n"
             "out = up, tape\n"
             "[stage.tape]\ntype = recorder\nfile = %s\n"
             "[stage.up]\ntype = rewrite\ncase = upper\nout = voice\n"
             "[stage.voice]\ntype = text_sink\nfile = %s\n",
             rec, a);
    int rc;
    st_pipe_config *cfg = st_pipe_config_parse(text, "rec.ini", &rc);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    st_pipe *p = st_pipe_new(cfg, NULL, &rc);
    st_pipe_config_destroy(&cfg);
    CU_ASSERT_EQUAL(st_pipe_run(p, 20, NULL), ST_OK);
    st_pipe_destroy(&p);
    /* The recording: the START on the bus, three tokens, END. */
    st_rec_reader *r = st_rec_open(rec, &rc);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    st_rec_entry e;
    int n = 0, texts = 0, bus = 0;
    while (st_rec_read(r, &e) == ST_OK) {
        n++;
        texts += e.m.h.type == ST_MSG_TEXT;
        bus += e.from_bus;
    }
    st_rec_close(&r);
    CU_ASSERT_EQUAL(texts, 3);
    CU_ASSERT(bus >= 1);
    CU_ASSERT_EQUAL(n, texts + bus + 1);
    /* Played back through the same rewrite: the same transcript. */
    snprintf(text, sizeof text,
             "[stage.tape]\ntype = replay\nfile = %s\nout = up\n"
             "[stage.up]\ntype = rewrite\ncase = upper\nout = voice\n"
             "[stage.voice]\ntype = text_sink\nfile = %s\n",
             rec, b);
    cfg = st_pipe_config_parse(text, "replay.ini", &rc);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    p = st_pipe_new(cfg, NULL, &rc);
    st_pipe_config_destroy(&cfg);
    CU_ASSERT_EQUAL(st_pipe_run(p, 20, NULL), ST_OK);
    st_pipe_destroy(&p);
    char *ta = read_file(a), *tb = read_file(b);
    CU_ASSERT_STRING_EQUAL(ta, "ONE TWO\nTHREE\n");
    CU_ASSERT_STRING_EQUAL(ta, tb);
    free(ta);
    free(tb);
    /* A damaged recording is refused with a reason. */
    write_file(a, "not a recording");
    CU_ASSERT_PTR_NULL(st_rec_open(a, &rc));
    CU_ASSERT_EQUAL(rc, ST_ERR_FORMAT);
}

static void test_synthesizer_speaks_tokens(void)
{
    const char *dir = st_test_tmpdir();
    char wav[512], text[2048];
    snprintf(wav, sizeof wav, "%s/said.wav", dir);
    snprintf(text, sizeof text,
             "[stage.agent]\ntype = text_source\nwords = yes\nlines = Hello there. | Goodbye now.\n"
             "out = voice\n"
             "[stage.voice]\ntype = synthesizer\nrate = 16000\nout = speaker\n"
             "[stage.speaker]\ntype = audio_sink\ndevice = file\nformat = float\noutput = %s\n",
             wav);
    int rc;
    st_pipe_config *cfg = st_pipe_config_parse(text, "say.ini", &rc);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    st_pipe *p = st_pipe_new(cfg, NULL, &rc);
    st_pipe_config_destroy(&cfg);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    rc = st_pipe_start(p);
    if (rc && strstr(st_errmsg(), "voice")) {
        char why[300];
        snprintf(why, sizeof why, "the synthesizer could not start: %.250s", st_errmsg());
        st_test_skip("pipeline:synthesizer_speaks_tokens", why);
        st_pipe_destroy(&p);
        return;
    }
    CU_ASSERT_EQUAL(rc, ST_OK);
    if (!rc)
        CU_ASSERT_EQUAL(st_pipe_run(p, 30, NULL), ST_OK);
    st_pipe_destroy(&p);
    if (rc)
        return;
    st_audio y;
    CU_ASSERT_EQUAL_FATAL(st_audio_read(wav, &y), ST_OK);
    CU_ASSERT_EQUAL(y.sample_rate_hz, 16000);
    double e = 0;
    for (size_t i = 0; i < y.frames; i++)
        e += (double)y.samples[i] * y.samples[i];
    CU_ASSERT(y.frames > 16000 / 2); /* two short sentences: well over half a second */
    CU_ASSERT(y.frames && sqrt(e / (double)y.frames) > 0.01);
    st_audio_free(&y);
}

/* The encoder stage: a 16 kHz file through `encoder` into a recorder gives
   exactly the events of the front end and encoder run directly on the same
   samples, each at its own capture sample index. */
static void test_encoder_stage_matches_library(void)
{
    const char *dir = st_test_tmpdir();
    char wav[512], rec[512], text[2048];
    snprintf(wav, sizeof wav, "%s/enc.wav", dir);
    snprintf(rec, sizeof rec, "%s/enc.rec", dir);
    enum { N = 16000 };
    static float x[N];
    uint64_t rs = 7;
    for (size_t i = 0; i < N; i++) {
        rs ^= rs << 13, rs ^= rs >> 7, rs ^= rs << 17;
        double noise = ((double)(rs >> 11) / 9007199254740992.0 - 0.5) * 0.01;
        double tone = (i > 4000 && i < 9000) ? 0.3 * sin(2 * M_PI * 440 * i / 16000.0) : 0;
        x[i] = (float)(noise + tone);
    }
    CU_ASSERT_EQUAL_FATAL(st_audio_write_wav(wav, x, N, 16000, ST_WAV_FLOAT), ST_OK);
    snprintf(text, sizeof text,
             "[stage.mic]\ntype = audio_source\ndevice = file\ninput = %s\nout = spikes\n"
             "[stage.spikes]\ntype = encoder\nkind = sod\nshed = no\nout = tape\n"
             "[stage.tape]\ntype = recorder\nfile = %s\n",
             wav, rec);
    int rc;
    st_pipe_config *cfg = st_pipe_config_parse(text, "enc.ini", &rc);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    st_pipe *p = st_pipe_new(cfg, NULL, &rc);
    st_pipe_config_destroy(&cfg);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    CU_ASSERT_EQUAL(st_pipe_run(p, 20, NULL), ST_OK);
    st_pipe_destroy(&p);

    /* The library, directly. */
    st_frontend_params fp = st_frontend_default_params();
    st_frontend *fe = st_frontend_new(&fp, &rc);
    st_encoder_params ep = st_encoder_default_params(ST_ENCODER_SOD);
    st_encoder *enc = st_encoder_new(&ep, &rc);
    CU_ASSERT_PTR_NOT_NULL_FATAL(fe);
    CU_ASSERT_PTR_NOT_NULL_FATAL(enc);
    size_t maxf = st_frontend_max_frames(fe, N), used, made;
    float *feat = malloc(maxf * 40 * sizeof *feat);
    uint64_t *stamp = malloc(maxf * sizeof *stamp);
    size_t cap = st_encoder_max_events(enc), n_ref = 0;
    st_aer_event *ev = malloc(cap * sizeof *ev);
    uint64_t *ref_at = malloc(maxf * cap * sizeof *ref_at);
    uint32_t *ref_ch = malloc(maxf * cap * sizeof *ref_ch);
    st_frontend_process(fe, x, N, feat, stamp, maxf, &used, &made);
    for (size_t f = 0; f < made; f++) {
        size_t got;
        st_encoder_encode(enc, feat + f * 40, stamp[f], ev, cap, &got);
        for (size_t i = 0; i < got; i++, n_ref++) {
            ref_at[n_ref] = ev[i].sample_index;
            ref_ch[n_ref] = ev[i].address;
        }
    }
    CU_ASSERT(n_ref > 20); /* the burst's onset and end make events */

    /* The recording: every event at the same instant (to the µs) and channel. */
    st_rec_reader *r = st_rec_open(rec, &rc);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    st_rec_entry e;
    size_t k = 0, msgs = 0;
    bool same = true;
    while (st_rec_read(r, &e) == ST_OK) {
        if (e.from_bus || e.m.h.type != ST_MSG_SPIKES)
            continue;
        msgs++;
        CU_ASSERT_EQUAL(e.m.spikes.n_channels, 80);
        for (size_t i = 0; i < e.m.spikes.n_events; i++, k++) {
            st_wire_spike sp = st_wire_spike_at(&e.m.spikes, i);
            uint64_t at_us = e.m.h.sample_index * 1000000u / 16000u + sp.t_us;
            if (k >= n_ref || sp.channel != ref_ch[k] ||
                at_us / 1000 != ref_at[k] * 1000000u / 16000u / 1000)
                same = false;
        }
    }
    st_rec_close(&r);
    CU_ASSERT(msgs >= 90); /* one message a 10 ms frame */
    CU_ASSERT_EQUAL(k, n_ref);
    CU_ASSERT(same);
    free(feat);
    free(stamp);
    free(ev);
    free(ref_at);
    free(ref_ch);
    st_encoder_destroy(&enc);
    st_frontend_destroy(&fe);
}

static void test_cli_run_stage_replay(void)
{
    char *out;
    CU_ASSERT_EQUAL(st_test_run_cli("run --print-config", &out), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "[stage.mic]"));
    free(out);
    CU_ASSERT_EQUAL(st_test_run_cli("stage --list", &out), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "passthrough"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "external"));
    free(out);
    const char *helps[] = {"run --help", "stage --help", "replay --help", "bench pipeline --help"};
    for (int i = 0; i < 4; i++) {
        CU_ASSERT_EQUAL(st_test_run_cli(helps[i], &out), 0);
        CU_ASSERT_PTR_NOT_NULL(strstr(out, "usage: spiketalk"));
        free(out);
    }
    const char *dir = st_test_tmpdir();
    char ini[512], rec[512], txt[512], text[2048], args[2048];
    snprintf(ini, sizeof ini, "%s/t.ini", dir);
    snprintf(rec, sizeof rec, "%s/t.rec", dir);
    snprintf(txt, sizeof txt, "%s/t.txt", dir);
    snprintf(text, sizeof text,
             "[pipeline]\nrecord = %s\n[stage.a]\ntype = text_source\nlines = hi | there\nout = b\n"
             "[stage.b]\ntype = text_sink\nfile = %s\n",
             rec, txt);
    write_file(ini, text);
    snprintf(args, sizeof args, "run --config %s", ini);
    CU_ASSERT_EQUAL(st_test_run_cli(args, &out), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "every stage has finished"));
    free(out);
    snprintf(args, sizeof args, "replay %s", rec);
    CU_ASSERT_EQUAL(st_test_run_cli(args, &out), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "\"there\""));
    free(out);
    snprintf(args, sizeof args, "stage b --config %s --endpoints", ini);
    CU_ASSERT_EQUAL(st_test_run_cli(args, &out), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "listen = inproc://st/b"));
    free(out);
    write_file(ini, "[stage.a]\ntype = text_source\nlines = x\nout = nowhere\n");
    snprintf(args, sizeof args, "run --config %s", ini);
    CU_ASSERT_EQUAL(st_test_run_cli(args, &out), 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "t.ini:4:"));
    free(out);
}

CU_TestInfo st_tests_pipeline[] = {
    {"actor_ready_and_failure", test_actor_ready_and_failure},
    {"control_before_data", test_control_before_data},
    {"epochs_drop_older_turns", test_epochs_drop_older_turns},
    {"stalled_stage_sheds_bounded", test_stalled_stage_sheds_bounded},
    {"supervisor_restarts_killed_stage", test_supervisor_restarts_killed_stage},
    {"supervisor_kills_hung_stage", test_supervisor_kills_hung_stage},
    {"same_transcript_threads_and_processes", test_same_transcript_threads_and_processes},
    {"python_stage_joins", test_python_stage_joins},
    {"config_errors_name_file_and_line", test_config_errors_name_file_and_line},
    {"fused_chain_matches_threads", test_fused_chain_matches_threads},
    {"fused_pipeline_runs", test_fused_pipeline_runs},
    {"example_stage_from_docs", test_example_stage_from_docs},
    {"audio_through_virtual_devices", test_audio_through_virtual_devices},
    {"transport_per_edge", test_transport_per_edge},
    {"unknown_key_refused_over_tcp", test_unknown_key_refused_over_tcp},
    {"recording_replays", test_recording_replays},
    {"synthesizer_speaks_tokens", test_synthesizer_speaks_tokens},
    {"encoder_stage_matches_library", test_encoder_stage_matches_library},
    {"cli_run_stage_replay", test_cli_run_stage_replay},
    CU_TEST_INFO_NULL,
};
