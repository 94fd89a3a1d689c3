/*  tests/test_security.c - suite `security`: CurveZMQ key files
    (`spiketalk keygen`, owner-only, never overwritten, refused when others
    may read the secret), the authenticator (a client whose public key is
    listed gets through; an unknown key and a plain client are refused and
    counted, and nothing of theirs arrives), owner-only ipc sockets, and the
    configuration's keys (tcp needs keys or insecure = yes; key file errors
    name the file and line).
    Sockets on 127.0.0.1 with ports the system picks; no timing asserted
    (waits are for an event, with a generous bound). */
#include "testutil.h"

#include "pipeline/pipeline.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

static mode_t mode_of(const char *path)
{
    struct stat sb;
    return stat(path, &sb) ? (mode_t)-1 : sb.st_mode & 0777;
}

static void test_key_files(void)
{
    char path[512], pub[600];
    st_test_tmpfile(path, sizeof path, "stage.key");
    snprintf(pub, sizeof pub, "%s.pub", path);
    st_curve_keys k, back, pk;
    CU_ASSERT_EQUAL_FATAL(st_curve_keygen(&k), ST_OK);
    CU_ASSERT_EQUAL(strlen(k.public_z85), ST_CURVE_KEY_Z85);
    mode_t old = umask(0); /* the modes must not depend on the umask */
    CU_ASSERT_EQUAL(st_curve_keys_write(path, &k), ST_OK);
    umask(old);
    CU_ASSERT_EQUAL(mode_of(path), 0600);
    CU_ASSERT_EQUAL(mode_of(pub), 0644);
    CU_ASSERT_EQUAL(st_curve_keys_write(path, &k), ST_ERR_INVALID); /* never overwritten */
    CU_ASSERT_EQUAL(st_curve_keys_read(path, &back), ST_OK);
    CU_ASSERT_STRING_EQUAL(back.public_z85, k.public_z85);
    CU_ASSERT_STRING_EQUAL(back.secret_z85, k.secret_z85);
    CU_ASSERT_EQUAL(st_curve_keys_read(pub, &pk), ST_OK);
    CU_ASSERT_STRING_EQUAL(pk.public_z85, k.public_z85);
    CU_ASSERT_EQUAL(pk.secret_z85[0], '\0');
    char z[ST_CURVE_KEY_Z85 + 1];
    CU_ASSERT_EQUAL(st_curve_public_parse(pub, z), ST_OK);
    CU_ASSERT_STRING_EQUAL(z, k.public_z85);
    CU_ASSERT_EQUAL(st_curve_public_parse(k.public_z85, z), ST_OK);
    CU_ASSERT_EQUAL(st_curve_public_parse("too short", z), ST_ERR_NOT_FOUND);

    /* A secret others may read is refused, as ssh does. */
    CU_ASSERT_EQUAL(chmod(path, 0640), 0);
    CU_ASSERT_EQUAL(st_curve_keys_read(path, &back), ST_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(st_errmsg(), "chmod 600"));
    CU_ASSERT_EQUAL(back.secret_z85[0], '\0');

    /* A public key that is not the secret's, and a damaged line. */
    char bad[512];
    st_test_tmpfile(bad, sizeof bad, "mixed.key");
    st_curve_keys other;
    CU_ASSERT_EQUAL_FATAL(st_curve_keygen(&other), ST_OK);
    FILE *f = fopen(bad, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fprintf(f, "public = %s\nsecret = %s\n", other.public_z85, k.secret_z85);
    fclose(f);
    chmod(bad, 0600);
    CU_ASSERT_EQUAL(st_curve_keys_read(bad, &back), ST_ERR_FORMAT);
    f = fopen(bad, "w");
    fprintf(f, "# comment\npublic = abc\n");
    fclose(f);
    CU_ASSERT_EQUAL(st_curve_keys_read(bad, &back), ST_ERR_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(st_errmsg(), "mixed.key:2:"));
}

/* The command: `spiketalk keygen FILE` (ST_CLI, set by make test). */
static void test_keygen_command(void)
{
    const char *cli = getenv("ST_CLI");
    if (!cli) {
        st_test_skip("security:keygen_command", "ST_CLI not set (make test sets it)");
        return;
    }
    char path[512], cmd[1400], pub[600];
    st_test_tmpfile(path, sizeof path, "cli.key");
    snprintf(pub, sizeof pub, "%s.pub", path);
    snprintf(cmd, sizeof cmd, "umask 0; '%s' -q keygen '%s' >/dev/null 2>&1", cli, path);
    CU_ASSERT_EQUAL(system(cmd), 0);
    CU_ASSERT_EQUAL(mode_of(path), 0600);
    CU_ASSERT_EQUAL(mode_of(pub), 0644);
    st_curve_keys k;
    CU_ASSERT_EQUAL(st_curve_keys_read(path, &k), ST_OK);
    CU_ASSERT_NOT_EQUAL(system(cmd), 0); /* never overwrites */
    st_curve_keys again;
    CU_ASSERT_EQUAL(st_curve_keys_read(path, &again), ST_OK);
    CU_ASSERT_STRING_EQUAL(again.secret_z85, k.secret_z85);
}

static void set_int(void *s, int opt, int v)
{
    zmq_setsockopt(s, opt, &v, sizeof v);
}

/* Waits (up to 10 s) until the authenticator has refused `n` clients. */
static bool wait_refused(const st_sec_auth *a, uint64_t n)
{
    for (int i = 0; i < 1000 && st_sec_auth_refused(a) < n; i++)
        nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
    return st_sec_auth_refused(a) >= n;
}

static void test_unknown_key_refused(void)
{
    if (!zmq_has("curve")) {
        st_test_skip("security:unknown_key_refused", "libzmq without CURVE");
        return;
    }
    st_curve_keys server, good, stranger;
    CU_ASSERT_EQUAL_FATAL(st_curve_keygen(&server), ST_OK);
    CU_ASSERT_EQUAL_FATAL(st_curve_keygen(&good), ST_OK);
    CU_ASSERT_EQUAL_FATAL(st_curve_keygen(&stranger), ST_OK);

    void *ctx = zmq_ctx_new();
    const char *allow[1] = {good.public_z85};
    int err;
    st_sec_auth *auth = st_sec_auth_new(ctx, allow, 1, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(auth);
    CU_ASSERT_PTR_NULL(st_sec_auth_new(ctx, allow, 1, &err)); /* one per context */
    CU_ASSERT_EQUAL(err, ST_ERR_IO);
    const char *bad[1] = {"not a key"};
    void *ctx2 = zmq_ctx_new();
    CU_ASSERT_PTR_NULL(st_sec_auth_new(ctx2, bad, 1, &err));
    CU_ASSERT_EQUAL(err, ST_ERR_INVALID);
    zmq_ctx_term(ctx2);

    void *in = zmq_socket(ctx, ZMQ_PULL);
    set_int(in, ZMQ_LINGER, 0);
    set_int(in, ZMQ_RCVTIMEO, 10000);
    CU_ASSERT_EQUAL(st_sec_curve_server(in, &server), ST_OK);
    CU_ASSERT_EQUAL_FATAL(zmq_bind(in, "tcp://127.0.0.1:*"), 0);
    char ep[256];
    size_t len = sizeof ep;
    zmq_getsockopt(in, ZMQ_LAST_ENDPOINT, ep, &len);

    /* A stranger with a valid CURVE handshake, and a plain client: both
       refused before anything they send is delivered. */
    void *evil = zmq_socket(ctx, ZMQ_PUSH), *plain = zmq_socket(ctx, ZMQ_PUSH);
    set_int(evil, ZMQ_LINGER, 0);
    set_int(plain, ZMQ_LINGER, 0);
    CU_ASSERT_EQUAL(st_sec_curve_client(evil, &stranger, server.public_z85), ST_OK);
    CU_ASSERT_EQUAL(zmq_connect(evil, ep), 0);
    CU_ASSERT_EQUAL(zmq_connect(plain, ep), 0);
    zmq_send(evil, "evil", 4, ZMQ_DONTWAIT);
    zmq_send(plain, "plain", 5, ZMQ_DONTWAIT);
    CU_ASSERT(wait_refused(auth, 1));

    /* The listed client gets through; what arrives is its message only. */
    void *out = zmq_socket(ctx, ZMQ_PUSH);
    set_int(out, ZMQ_LINGER, 0);
    CU_ASSERT_EQUAL(st_sec_curve_client(out, &good, server.public_z85), ST_OK);
    CU_ASSERT_EQUAL(zmq_connect(out, ep), 0);
    CU_ASSERT_EQUAL(zmq_send(out, "good", 4, 0), 4);
    char buf[16] = "";
    int n = zmq_recv(in, buf, sizeof buf, 0);
    CU_ASSERT_EQUAL(n, 4);
    CU_ASSERT_EQUAL(memcmp(buf, "good", 4), 0);
    CU_ASSERT(st_sec_auth_admitted(auth) >= 1);
    set_int(in, ZMQ_RCVTIMEO, 0);
    CU_ASSERT_EQUAL(zmq_recv(in, buf, sizeof buf, 0), -1); /* nothing else came */

    /* Misuse: a server without a secret, a client without the server's key. */
    st_curve_keys pub_only = good;
    pub_only.secret_z85[0] = 0;
    CU_ASSERT_EQUAL(st_sec_curve_server(in, &pub_only), ST_ERR_INVALID);
    CU_ASSERT_EQUAL(st_sec_curve_client(out, &good, "short"), ST_ERR_INVALID);

    zmq_close(evil);
    zmq_close(plain);
    zmq_close(out);
    zmq_close(in);
    st_sec_auth_destroy(&auth);
    CU_ASSERT_PTR_NULL(auth);
    st_sec_auth_destroy(&auth); /* idempotent */
    zmq_ctx_term(ctx);
}

static void test_ipc_owner_only(void)
{
    char path[512], ep[600];
    st_test_tmpfile(path, sizeof path, "in.sock");
    snprintf(ep, sizeof ep, "ipc://%s", path);
    void *ctx = zmq_ctx_new();
    void *s = zmq_socket(ctx, ZMQ_PULL);
    set_int(s, ZMQ_LINGER, 0);
    mode_t old = umask(0); /* the worst case: a world-writable socket file */
    CU_ASSERT_EQUAL_FATAL(zmq_bind(s, ep), 0);
    umask(old);
    CU_ASSERT_NOT_EQUAL(mode_of(path) & 077, 0);
    CU_ASSERT_EQUAL(st_sec_ipc_restrict(ep), ST_OK);
    CU_ASSERT_EQUAL(mode_of(path), 0600);
    CU_ASSERT_EQUAL(st_sec_ipc_restrict("tcp://127.0.0.1:5555"), ST_OK);
    CU_ASSERT_EQUAL(st_sec_ipc_restrict("ipc:///nonexistent/dir/x"), ST_ERR_IO);
    zmq_close(s);
    zmq_ctx_term(ctx);
}

/* A pipeline over ipc in a folder of our choosing, under the most
   permissive umask: every socket file the stages and the supervisor bind
   is still owner-only. With ST_CLI (make test sets it) the stages are
   processes, so the bus and the report socket are ipc files too. */
static void test_pipeline_ipc_sockets_owner_only(void)
{
    const char *dir = st_test_tmpdir();
    const char *exe = getenv("ST_CLI"); /* stage processes need the tool */
    char text[1024];
    snprintf(text, sizeof text,
             "[pipeline]\ntransport = ipc\nprocesses = %s\nipc_dir = %s\n"
             "[stage.src]\ntype = text_source\nlines = hello\nout = sink\n"
             "[stage.sink]\ntype = text_sink\nfile = %s/heard.txt\n",
             exe ? "yes" : "no", dir, dir);
    int err;
    st_pipe_config *cfg = st_pipe_config_parse(text, "ipc.ini", &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    st_pipe_params pp = st_pipe_default_params();
    pp.exe_path = exe;
    st_pipe *p = st_pipe_new(cfg, &pp, &err);
    st_pipe_config_destroy(&cfg);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    mode_t old = umask(0);
    int rc = st_pipe_start(p);
    umask(old);
    if (rc)
        fprintf(stderr, "\n%s\n", st_errmsg());
    CU_ASSERT_EQUAL(rc, ST_OK);
    int sockets = 0;
    DIR *d = opendir(dir);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    struct dirent *e;
    while ((e = readdir(d))) {
        char path[1024];
        struct stat sb;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (stat(path, &sb) == 0 && S_ISSOCK(sb.st_mode)) {
            sockets++;
            if ((sb.st_mode & 0777) != 0600)
                fprintf(stderr, "\n%s: mode %03o\n", path, sb.st_mode & 0777);
            CU_ASSERT_EQUAL(sb.st_mode & 0777, 0600);
        }
    }
    closedir(d);
    /* Processes: the bus, the reports and the sink's input; threads: the
       sink's input (the bus and reports are inproc then). */
    CU_ASSERT(sockets >= (exe ? 3 : 1));
    if (!exe)
        st_test_skip("security:pipeline_ipc_sockets_owner_only",
                     "ST_CLI not set: stage processes (bus and report over ipc) not tried");
    CU_ASSERT_EQUAL(st_pipe_run(p, 30, NULL), ST_OK);
    st_pipe_destroy(&p);
}

/* The configuration: tcp needs keys or `insecure = yes`; key files named
   in it are read at load, and their errors name the file and line. */
static st_pipe_config *parse_ok(const char *text)
{
    int rc;
    st_pipe_config *c = st_pipe_config_parse(text, "sec.ini", &rc);
    if (!c)
        fprintf(stderr, "\nsec.ini: %s\n", st_errmsg());
    return c;
}

static void expect_load_error(const char *text, const char *where, const char *what)
{
    int rc;
    st_pipe_config *c = st_pipe_config_parse(text, "sec.ini", &rc);
    CU_ASSERT_PTR_NULL(c);
    CU_ASSERT_NOT_EQUAL(rc, ST_OK);
    CU_ASSERT_PTR_NOT_NULL(strstr(st_errmsg(), where));
    CU_ASSERT_PTR_NOT_NULL(strstr(st_errmsg(), what));
    if (!strstr(st_errmsg(), where) || !strstr(st_errmsg(), what))
        fprintf(stderr, "\nexpected '%s' and '%s' in: %s\n", where, what, st_errmsg());
    st_pipe_config_destroy(&c);
}

static void test_config_keys(void)
{
    char pk[512], sk[512], text[4096];
    st_test_tmpfile(pk, sizeof pk, "cfg-pipe.key");
    st_test_tmpfile(sk, sizeof sk, "cfg-sink.key");
    st_curve_keys k1, k2;
    CU_ASSERT_EQUAL_FATAL(st_curve_keygen(&k1), ST_OK);
    CU_ASSERT_EQUAL_FATAL(st_curve_keygen(&k2), ST_OK);
    CU_ASSERT_EQUAL_FATAL(st_curve_keys_write(pk, &k1), ST_OK);
    CU_ASSERT_EQUAL_FATAL(st_curve_keys_write(sk, &k2), ST_OK);
    const char *stages = "[stage.a]\ntype = text_source\nlines = x\nout = b\n"
                         "[stage.b]\ntype = text_sink\nfile = -\n";

    /* tcp without keys: loads (--insecure may still come), but cannot run. */
    snprintf(text, sizeof text, "[pipeline]\nprocesses = yes\ntransport = tcp\nbase_port = 5600\n%s",
             stages);
    st_pipe_config *c = parse_ok(text);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    st_stage_config sc;
    CU_ASSERT_EQUAL(st_pipe_config_stage(c, "b", &sc), ST_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(st_errmsg(), "sec.ini:3:"));
    CU_ASSERT_PTR_NOT_NULL(strstr(st_errmsg(), "insecure = yes"));
    CU_ASSERT_PTR_NULL(st_pipe_new(c, NULL, NULL));
    /* --insecure: plain, and said so. */
    CU_ASSERT_EQUAL(st_pipe_config_set(c, "pipeline.insecure=yes"), ST_OK);
    CU_ASSERT_EQUAL(st_pipe_config_stage(c, "b", &sc), ST_OK);
    CU_ASSERT_PTR_NULL(sc.security);
    CU_ASSERT_TRUE(st_pipe_config_insecure_tcp(c));
    CU_ASSERT_PTR_NULL(st_pipe_config_security(c));
    st_pipe_config_destroy(&c);

    /* No tcp: no keys needed, nothing to warn about. */
    c = parse_ok(stages);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_EQUAL(st_pipe_config_stage(c, "b", &sc), ST_OK);
    CU_ASSERT_PTR_NULL(sc.security);
    CU_ASSERT_FALSE(st_pipe_config_insecure_tcp(c));
    st_pipe_config_destroy(&c);

    /* One line for a pipeline on one machine: every socket owner uses the
       pipeline's pair and admits it. */
    snprintf(text, sizeof text, "[pipeline]\nprocesses = yes\ntransport = tcp\nbase_port = 5600\n"
             "key = %s\n%s", pk, stages);
    c = parse_ok(text);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_EQUAL(st_pipe_config_stage(c, "a", &sc), ST_OK);
    CU_ASSERT_PTR_NOT_NULL_FATAL(sc.security);
    CU_ASSERT_STRING_EQUAL(sc.security->key_file, pk);
    CU_ASSERT_STRING_EQUAL(sc.security->server_z85[0], k1.public_z85);
    CU_ASSERT_STRING_EQUAL(sc.security->supervisor_z85, k1.public_z85);
    CU_ASSERT_EQUAL(sc.security->n_accept, 1);
    st_curve_keys own;
    CU_ASSERT_EQUAL(st_sec_stage_keys(sc.security, &own), ST_OK);
    CU_ASSERT_STRING_EQUAL(own.secret_z85, k1.secret_z85);
    CU_ASSERT_PTR_NOT_NULL(st_pipe_config_security(c));
    st_pipe_config_destroy(&c);

    /* A stage's own key: its peers trust it, and `accept` narrows who may
       connect to it. The pair may live elsewhere: FILE.pub is enough here. */
    snprintf(text, sizeof text, "[pipeline]\nprocesses = yes\ntransport = tcp\nbase_port = 5600\n"
             "key = %s\n[stage.a]\ntype = text_source\nlines = x\nout = b\n"
             "[stage.b]\ntype = text_sink\nfile = -\nkey = %s\naccept = %s.pub\n", pk, sk, pk);
    c = parse_ok(text);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_EQUAL(st_pipe_config_stage(c, "a", &sc), ST_OK);
    CU_ASSERT_STRING_EQUAL(sc.security->server_z85[0], k2.public_z85);
    CU_ASSERT_EQUAL(sc.security->n_accept, 2); /* both keys the file names */
    CU_ASSERT_EQUAL(st_pipe_config_stage(c, "b", &sc), ST_OK);
    CU_ASSERT_EQUAL(sc.security->n_accept, 1);
    CU_ASSERT_STRING_EQUAL(sc.security->accept[0], k1.public_z85);
    st_pipe_config_destroy(&c);

    /* Errors name the configuration's file and line, and the key file. */
    snprintf(text, sizeof text, "[pipeline]\ntransport = tcp\nkey = %s.missing\n%s", pk, stages);
    expect_load_error(text, "sec.ini:3:", "no such file");
    CU_ASSERT_EQUAL(chmod(sk, 0644), 0);
    snprintf(text, sizeof text, "[pipeline]\ntransport = tcp\nkey = %s\n"
             "[stage.a]\ntype = text_source\nlines = x\nout = b\n"
             "[stage.b]\ntype = text_sink\nfile = -\nkey = %s\n", pk, sk);
    expect_load_error(text, "sec.ini:11:", "chmod 600");
    CU_ASSERT_EQUAL(chmod(sk, 0600), 0);
    if (geteuid() != 0) { /* root reads anything */
        CU_ASSERT_EQUAL(chmod(sk, 0), 0);
        expect_load_error(text, "sec.ini:11:", "cfg-sink.key");
        CU_ASSERT_EQUAL(chmod(sk, 0600), 0);
    }
    snprintf(text, sizeof text, "[pipeline]\ntransport = tcp\nkey = %s\naccept = nonsense\n%s", pk,
             stages);
    expect_load_error(text, "sec.ini:4:", "accept");
    /* A stage without a key when the pipeline has none. */
    snprintf(text, sizeof text, "[pipeline]\ntransport = tcp\nbase_port = 5600\n"
             "[stage.a]\ntype = text_source\nlines = x\nout = b\nkey = %s\n"
             "[stage.b]\ntype = text_sink\nfile = -\n", sk);
    c = parse_ok(text);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_EQUAL(st_pipe_config_stage(c, "a", &sc), ST_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(st_errmsg(), "sec.ini:9: [stage.b] has no key"));
    st_pipe_config_destroy(&c);
}

CU_TestInfo st_tests_security[] = {
    {"pipeline_ipc_sockets_owner_only", test_pipeline_ipc_sockets_owner_only},
    {"key_files", test_key_files},
    {"keygen_command", test_keygen_command},
    {"unknown_key_refused", test_unknown_key_refused},
    {"ipc_owner_only", test_ipc_owner_only},
    {"config_keys", test_config_keys},
    CU_TEST_INFO_NULL,
};
