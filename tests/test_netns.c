/*  tests/test_netns.c - suite `netns`: network faults between stages on
    different hosts. A second host is a network namespace joined to this one
    by a veth pair (iproute2: `ip netns add`, `ip link add ... type veth`);
    a three-stage pipeline runs with every stage a process over tcp with
    CurveZMQ (the default; the remote stage has a key pair of its own), the
    middle one (`remote`) inside the namespace, the supervisor, the source
    and the sink outside it. The link is cut (`ip link set ... down`) in
    the middle of the stream and restored:
      - link_cut_short: a cut shorter than the heartbeat timeout. Nothing
        reaches the sink while the link is down (the cut is real), then TCP
        retransmits and ZeroMQ's queues deliver everything: every line, in
        order, no restart, nothing counted lost, the run ends on its own.
      - link_cut_long: a cut longer than the heartbeat timeout. The
        supervisor reports `remote` silent, kills it and starts it again
        (in the namespace) until the link is back; the lines then flow again
        to the last one, and what was lost with the killed process is
        counted (the source's `sent` less the sink's `received`, with the
        restarts that explain it); the run ends on its own.

    Needs root and a kernel that lets it make namespaces; otherwise every
    test prints a SKIPPED line saying which (never a silent pass). The
    namespace and the veth pair are removed on every path, also when the
    runner exits early. Processes run $ST_CLI (default build/spiketalk);
    files go to a temporary folder.
*/
#include "testutil.h"

#include "pipeline/pipeline.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- the second host ------------------------------------------------------------ */

typedef struct {
    char ns[32];               /* namespace */
    char veth_here[16];        /* our end of the pair */
    char veth_there[16];       /* the end moved into the namespace */
    char addr_here[32], addr_there[32];
    bool up;
} host2;

static host2 H;                /* one at a time; atexit removes it if a test dies */

/* Runs a shell command; its output (stdout and stderr) goes to `out` when
   given. Returns the exit status (-1: could not run). */
static int sh(char *out, size_t cap, const char *fmt, ...) ST_PRINTF(3, 4);
static int sh(char *out, size_t cap, const char *fmt, ...)
{
    char cmd[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    size_t l = strlen(cmd);
    snprintf(cmd + l, sizeof cmd - l, " 2>&1");
    FILE *f = popen(cmd, "r");
    if (!f)
        return -1;
    char buf[512];
    size_t n = 0;
    if (out && cap)
        out[0] = '\0';
    while (fgets(buf, sizeof buf, f))
        if (out && n + 1 < cap) {
            snprintf(out + n, cap - n, "%s", buf);
            n = strlen(out);
        }
    if (out && n && out[n - 1] == '\n')
        out[n - 1] = '\0';
    int st = pclose(f);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/*  Whether /run/netns is a mount point (iproute2's first `ip netns add`
    bind-mounts it onto itself and leaves it so). */
static bool run_netns_mounted(void)
{
    FILE *f = fopen("/proc/self/mountinfo", "r");
    if (!f)
        return false;
    char line[1024];
    bool found = false;
    while (!found && fgets(line, sizeof line, f)) {
        /* "id parent major:minor root mount-point ..." */
        char root[512], point[512];
        if (sscanf(line, "%*s %*s %*s %511s %511s", root, point) == 2 &&
            !strcmp(point, "/run/netns"))
            found = true;
    }
    fclose(f);
    return found;
}

static bool netns_mount_was_ours; /* the test's `ip netns add` made that mount */

static void host2_remove(void)
{
    if (!H.up)
        return;
    sh(NULL, 0, "ip link del %s", H.veth_here);   /* takes its peer with it */
    sh(NULL, 0, "ip netns del %s", H.ns);
    H.up = false;
    /* Leave the machine as it was: a mount left behind keeps a chroot or
       CI workspace from being removed. */
    char out[256] = "";
    if (netns_mount_was_ours && sh(out, sizeof out, "ip netns list") == 0 && !out[0])
        sh(NULL, 0, "umount /run/netns");
}

/*  Makes the namespace and the link; false with `why` (for the skip line)
    when this machine does not allow it. */
static bool host2_make(char *why, size_t cap)
{
    static bool registered;
    if (geteuid() != 0) {
        snprintf(why, cap, "not root (uid %d): `ip netns add` needs CAP_SYS_ADMIN", (int)geteuid());
        return false;
    }
    char out[512];
    if (sh(out, sizeof out, "ip -V") != 0) {
        snprintf(why, cap, "iproute2's `ip` is not installed (tools/deps TEST_PKGS has it)");
        return false;
    }
    int id = (int)(getpid() % 100000);
    snprintf(H.ns, sizeof H.ns, "st-netns-%d", id);
    snprintf(H.veth_here, sizeof H.veth_here, "stn%da", id);
    snprintf(H.veth_there, sizeof H.veth_there, "stn%db", id);
    int net = 1 + id % 250;
    snprintf(H.addr_here, sizeof H.addr_here, "10.201.%d.1", net);
    snprintf(H.addr_there, sizeof H.addr_there, "10.201.%d.2", net);
    if (!registered) {
        atexit(host2_remove);
        registered = true;
    }
    netns_mount_was_ours = !run_netns_mounted();
    if (sh(out, sizeof out, "ip netns add %s", H.ns) != 0) {
        if (netns_mount_was_ours && run_netns_mounted())
            sh(NULL, 0, "umount /run/netns");
        snprintf(why, cap, "`ip netns add` is not permitted here (a container?): %s", out);
        return false;
    }
    H.up = true;
    if (sh(out, sizeof out, "ip link add %s type veth peer name %s", H.veth_here, H.veth_there) ||
        sh(out, sizeof out, "ip link set %s netns %s", H.veth_there, H.ns) ||
        sh(out, sizeof out, "ip addr add %s/24 dev %s", H.addr_here, H.veth_here) ||
        sh(out, sizeof out, "ip link set %s up", H.veth_here) ||
        sh(out, sizeof out, "ip netns exec %s ip addr add %s/24 dev %s", H.ns, H.addr_there,
           H.veth_there) ||
        sh(out, sizeof out, "ip netns exec %s ip link set %s up", H.ns, H.veth_there) ||
        sh(out, sizeof out, "ip netns exec %s ip link set lo up", H.ns)) {
        snprintf(why, cap, "a veth pair into a namespace is not permitted here: %s", out);
        host2_remove();
        return false;
    }
    return true;
}

static int link_set(bool up)
{
    return sh(NULL, 0, "ip link set %s %s", H.veth_here, up ? "up" : "down");
}

/* ---- the pipeline ---------------------------------------------------------------- */

typedef struct {
    char text[8192];
    size_t len;
    int restarted, unresponsive, gave_up;
} event_log;

static void collect(const st_pipe_event *e, void *user)
{
    event_log *l = user;
    if (l->len < sizeof l->text - 1)
        l->len += (size_t)snprintf(l->text + l->len, sizeof l->text - l->len, "%s\n", e->message);
    if (l->len >= sizeof l->text)
        l->len = sizeof l->text - 1;
    l->restarted += e->kind == ST_PIPE_EV_RESTARTED;
    l->unresponsive += e->kind == ST_PIPE_EV_UNRESPONSIVE;
    l->gave_up += e->kind == ST_PIPE_EV_GAVE_UP;
}

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return calloc(1, 1);
    char *buf = malloc(1 << 16);
    size_t n = buf ? fread(buf, 1, (1 << 16) - 1, f) : 0;
    if (buf)
        buf[n] = '\0';
    fclose(f);
    return buf;
}

#define N_LINES 160      /* 8 s of lines: the stream outlasts the cut */
#define INTERVAL_MS 50

/*  The stage processes' program: `remote` runs inside the namespace, the
    others here. The supervisor starts (and restarts) every stage through
    it; `ip netns exec` execs the stage, so the pid it knows is the stage's. */
static int write_launcher(const char *path, const char *cli_abs)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fprintf(f,
            "#!/bin/sh\n"
            "# $1 = stage, $2 = its name (st_pipe_params.child_args is NULL)\n"
            "if [ \"$2\" = remote ]; then exec ip netns exec %s '%s' \"$@\"; fi\n"
            "exec '%s' \"$@\"\n",
            H.ns, cli_abs, cli_abs);
    fclose(f);
    return chmod(path, 0700);
}

typedef struct {
    double cut_after_s;        /* from START */
    double cut_s;              /* how long the link stays down */
    int heartbeat_timeout_ms;
} cut_plan;

typedef struct {
    int run_rc;
    uint64_t sent, sent_timeouts, received;     /* source's sent, sink's received */
    uint64_t sink_before_cut, sink_end_of_cut;  /* sink's received around the cut */
    int restarts;
    int lines, in_order;
    bool last_line;
    event_log ev;
    char transcript[256];      /* the first lines, for messages */
} cut_result;

static void run_with_cut(const cut_plan *plan, cut_result *r)
{
    memset(r, 0, sizeof *r);
    const char *dir = st_test_tmpdir();
    char out[512], launcher[512], cli_abs[PATH_MAX];
    snprintf(out, sizeof out, "%s/heard.txt", dir);
    snprintf(launcher, sizeof launcher, "%s/launch.sh", dir);
    if (!realpath(st_test_cli(), cli_abs)) {
        CU_FAIL("the spiketalk binary is not there (ST_CLI)");
        return;
    }
    CU_ASSERT_EQUAL_FATAL(write_launcher(launcher, cli_abs), 0);
    /* tcp between hosts is CurveZMQ by default (docs/SECURITY.md): the
       pipeline's pair for the supervisor and the stages here, one of its
       own for the stage on the other host; both admitted everywhere. */
    char pipe_key[512], remote_key[512];
    snprintf(pipe_key, sizeof pipe_key, "%s/pipeline.key", dir);
    snprintf(remote_key, sizeof remote_key, "%s/remote.key", dir);
    st_curve_keys kp, kr;
    CU_ASSERT_EQUAL_FATAL(st_curve_keygen(&kp), ST_OK);
    CU_ASSERT_EQUAL_FATAL(st_curve_keygen(&kr), ST_OK);
    CU_ASSERT_EQUAL_FATAL(st_curve_keys_write(pipe_key, &kp), ST_OK);
    CU_ASSERT_EQUAL_FATAL(st_curve_keys_write(remote_key, &kr), ST_OK);
    char lines[512], text[4096];
    snprintf(lines, sizeof lines, "%s/lines.txt", dir);
    FILE *lf = fopen(lines, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(lf);
    for (int i = 1; i <= N_LINES; i++)
        fprintf(lf, "l%03d\n", i);
    fclose(lf);
    snprintf(text, sizeof text,
             "[pipeline]\ntransport = tcp\nprocesses = yes\nhost = %s\nkey = %s\n"
             "heartbeat_ms = 100\nheartbeat_timeout_ms = %d\nmetrics_ms = 100\n"
             "restarts = 50\norphan_s = 0\nsend_timeout_ms = 200\n"
             "[stage.text]\ntype = text_source\ninterval_ms = %d\nfile = %s\nout = remote\n"
             "[stage.remote]\ntype = passthrough\nhost = %s\nkey = %s\nout = sink\n"
             "[stage.sink]\ntype = text_sink\nfile = %s\n",
             H.addr_here, pipe_key, plan->heartbeat_timeout_ms, INTERVAL_MS, lines, H.addr_there,
             remote_key, out);
    int rc;
    st_pipe_config *cfg = st_pipe_config_parse(text, "netns.ini", &rc);
    CU_ASSERT_PTR_NOT_NULL(cfg);
    if (!cfg) {
        fprintf(stderr, "netns: %s\n", st_errmsg());
        return;
    }
    st_pipe_params pp = st_pipe_default_params();
    pp.exe_path = launcher;
    pp.on_event = collect;
    pp.user_data = &r->ev;
    st_pipe *p = st_pipe_new(cfg, &pp, &rc);
    st_pipe_config_destroy(&cfg);
    CU_ASSERT_PTR_NOT_NULL(p);
    if (!p) {
        fprintf(stderr, "netns: %s\n", st_errmsg());
        return;
    }
    /* No FATAL from here: the link must come back up and the pipe be destroyed. */
    rc = st_pipe_start(p);
    CU_ASSERT_EQUAL(rc, ST_OK);
    if (rc) {
        fprintf(stderr, "netns: %s\nevents:\n%s", st_errmsg(), r->ev.text);
        st_pipe_destroy(&p);
        return;
    }
    st_stage_stats st;
    double t0 = st_now_s();
    while (st_now_s() - t0 < plan->cut_after_s)
        st_pipe_poll(p, 0.05);
    CU_ASSERT_EQUAL(link_set(false), 0);
    double tc = st_now_s();
    /* What was already on the wire arrives in the first moments; after
       that nothing may, until the link is back. */
    while (st_now_s() - tc < 0.5)
        st_pipe_poll(p, 0.05);
    st_pipe_stage_stats(p, "sink", &st);
    r->sink_before_cut = st.received;
    while (st_now_s() - tc < plan->cut_s)
        st_pipe_poll(p, 0.05);
    st_pipe_stage_stats(p, "sink", &st);
    r->sink_end_of_cut = st.received;
    CU_ASSERT_EQUAL(link_set(true), 0);
    r->run_rc = st_pipe_run(p, 40, NULL);
    if (r->run_rc)
        fprintf(stderr, "netns: run: %s\nevents:\n%s", st_errmsg(), r->ev.text);
    st_pipe_stage_stats(p, "text", &st);
    r->sent = st.sent;
    r->sent_timeouts = st.send_timeouts;
    st_pipe_stage_stats(p, "sink", &st);
    r->received = st.received;
    r->restarts = st_pipe_stage_restarts(p, "remote");
    st_pipe_destroy(&p);

    char *t = read_text(out);
    snprintf(r->transcript, sizeof r->transcript, "%s", t ? t : "");
    int prev = 0;
    r->in_order = 1;
    for (char *save = NULL, *l = t ? strtok_r(t, "\n", &save) : NULL; l;
         l = strtok_r(NULL, "\n", &save)) {
        int k = 0;
        if (sscanf(l, "l%d", &k) != 1 || k <= prev)
            r->in_order = 0;
        prev = k;
        r->lines++;
        r->last_line = k == N_LINES;
    }
    free(t);
}

static bool prepare(const char *test)
{
    char why[600];
    if (!host2_make(why, sizeof why)) {
        st_test_skip(test, why);
        return false;
    }
    return true;
}

/* ---- the tests ------------------------------------------------------------------- */

static void test_link_cut_short(void)
{
    if (!prepare("netns:link_cut_short"))
        return;
    cut_plan plan = {.cut_after_s = 1.0, .cut_s = 2.0, .heartbeat_timeout_ms = 8000};
    cut_result r;
    run_with_cut(&plan, &r);
    host2_remove();
    CU_ASSERT_EQUAL(r.run_rc, ST_OK);
    /* the cut was real: the sink heard nothing new while it lasted */
    CU_ASSERT(r.sink_before_cut > 0);
    CU_ASSERT_EQUAL(r.sink_end_of_cut, r.sink_before_cut);
    /* and nothing was lost: TCP and the queues carried it over */
    CU_ASSERT_EQUAL(r.lines, N_LINES);
    CU_ASSERT_TRUE(r.in_order);
    CU_ASSERT_TRUE(r.last_line);
    CU_ASSERT_EQUAL(r.restarts, 0);
    CU_ASSERT_EQUAL(r.ev.unresponsive, 0);
    CU_ASSERT_EQUAL(r.sent, (uint64_t)N_LINES + 1);   /* the lines and END */
    CU_ASSERT_EQUAL(r.sent_timeouts, 0);
    CU_ASSERT_EQUAL(r.received, (uint64_t)r.lines + 1);   /* the lines and END */
    if (r.lines != N_LINES || r.run_rc || r.received != (uint64_t)r.lines + 1)
        fprintf(stderr, "link_cut_short: %d lines, sink received %llu, events:\n%s\n", r.lines,
                (unsigned long long)r.received, r.ev.text);
}

static void test_link_cut_long(void)
{
    if (!prepare("netns:link_cut_long"))
        return;
    cut_plan plan = {.cut_after_s = 1.0, .cut_s = 3.5, .heartbeat_timeout_ms = 1500};
    cut_result r;
    run_with_cut(&plan, &r);
    host2_remove();
    CU_ASSERT_EQUAL(r.run_rc, ST_OK);
    CU_ASSERT(r.sink_before_cut > 0);
    CU_ASSERT_EQUAL(r.sink_end_of_cut, r.sink_before_cut);
    /* the supervisor saw it and acted */
    CU_ASSERT(r.ev.unresponsive >= 1);
    CU_ASSERT(r.restarts >= 1);
    CU_ASSERT_EQUAL(r.ev.gave_up, 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(r.ev.text, "stage 'remote'"));
    /* it recovered: lines flow again, in order, to the last one */
    CU_ASSERT_TRUE(r.in_order);
    CU_ASSERT_TRUE(r.last_line);
    CU_ASSERT((uint64_t)r.lines > r.sink_before_cut);
    /* and the loss is counted: every line was sent or counted as not sent,
       and what the sink lacks is what the source sent less what it got */
    CU_ASSERT_EQUAL(r.sent + r.sent_timeouts, (uint64_t)N_LINES + 1);   /* the lines and END */
    CU_ASSERT_EQUAL(r.received, (uint64_t)r.lines + 1);   /* the lines and END */
    CU_ASSERT(r.received <= r.sent);
    fprintf(stderr,
            "  [netns:link_cut_long: %d of %d lines arrived; source sent %llu (END included), "
            "%llu not sent (timeouts); lost with the killed stage %llu; remote restarted %d "
            "times]\n",
            r.lines, N_LINES, (unsigned long long)r.sent, (unsigned long long)r.sent_timeouts,
            (unsigned long long)(r.sent - r.sent_timeouts - r.received), r.restarts);
    if (!r.last_line || r.run_rc || r.received != (uint64_t)r.lines + 1)
        fprintf(stderr, "link_cut_long: sink received %llu, events:\n%s\n",
                (unsigned long long)r.received, r.ev.text);
}

CU_TestInfo st_tests_netns[] = {
    {"link_cut_short", test_link_cut_short},
    {"link_cut_long", test_link_cut_long},
    CU_TEST_INFO_NULL,
};
