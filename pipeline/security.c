/*  pipeline/security.c - what keeps a pipeline's sockets private: CurveZMQ
    key pairs and their files, the ZAP authenticator that admits only listed
    public keys, the socket options of a CURVE server and client, and
    owner-only ipc socket files. docs/SECURITY.md says how they fit.

    What it may touch: libzmq, the key files it is named, ipc socket files
    after bind. Workload: a handful of sockets per stage, set up once; the
    authenticator answers one request per connection (not per message), so
    a thread polling every 100 ms to notice shutdown is plenty.
*/
#include "pipeline.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

/* ---- keys and key files ---------------------------------------------------- */

static bool is_z85_key(const char *s)
{
    static const char z85[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                              ".-:+=^!/*?&<>()[]{}@%$#";
    if (!s || strlen(s) != ST_CURVE_KEY_Z85)
        return false;
    for (; *s; s++)
        if (!strchr(z85, *s))
            return false;
    return true;
}

int st_curve_keygen(st_curve_keys *out)
{
    memset(out, 0, sizeof *out);
    if (!zmq_has("curve"))
        return st_error(ST_ERR_UNSUPPORTED, "keygen: this libzmq was built without CURVE");
    if (zmq_curve_keypair(out->public_z85, out->secret_z85))
        return st_error(ST_ERR_IO, "keygen: zmq_curve_keypair: %s", zmq_strerror(errno));
    return ST_OK;
}

static int write_file(const char *path, mode_t mode, const char *text)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0)
        return errno == EEXIST
                   ? st_error(ST_ERR_INVALID, "key file '%s' exists: not overwritten", path)
                   : st_error(ST_ERR_IO, "key file '%s': %s", path, strerror(errno));
    size_t len = strlen(text);
    bool ok = fchmod(fd, mode) == 0 && write(fd, text, len) == (ssize_t)len;
    ok = close(fd) == 0 && ok;
    if (!ok) {
        int e = errno;
        unlink(path);
        return st_error(ST_ERR_IO, "key file '%s': %s", path, strerror(e));
    }
    return ST_OK;
}

int st_curve_keys_write(const char *path, const st_curve_keys *k)
{
    if (!is_z85_key(k->public_z85) || !is_z85_key(k->secret_z85))
        return st_error(ST_ERR_INVALID, "key file '%s': not a key pair", path);
    char pub_path[4096];
    if ((size_t)snprintf(pub_path, sizeof pub_path, "%s.pub", path) >= sizeof pub_path)
        return st_error(ST_ERR_INVALID, "key file '%s': path too long", path);
    char text[512];
    snprintf(text, sizeof text,
             "# spiketalk CurveZMQ key pair (spiketalk keygen). Keep it secret: give\n"
             "# peers the .pub file beside it.\npublic = %s\nsecret = %s\n",
             k->public_z85, k->secret_z85);
    int rc = write_file(path, 0600, text);
    if (rc)
        return rc;
    snprintf(text, sizeof text,
             "# spiketalk CurveZMQ public key (spiketalk keygen): list it where this\n"
             "# peer is to be accepted.\npublic = %s\n",
             k->public_z85);
    if ((rc = write_file(pub_path, 0644, text)))
        unlink(path);
    return rc;
}

int st_curve_keys_read(const char *path, st_curve_keys *out)
{
    memset(out, 0, sizeof *out);
    /* O_NONBLOCK: a FIFO named as a key file must not hang the loader. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return errno == ENOENT ? st_error(ST_ERR_NOT_FOUND, "key file '%s': no such file", path)
                               : st_error(ST_ERR_IO, "key file '%s': %s", path, strerror(errno));
    struct stat sb;
    char buf[2048];
    ssize_t n = -1;
    if (fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode))
        n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n < 0)
        return st_error(ST_ERR_IO, "key file '%s': not a readable file", path);
    if (n == (ssize_t)sizeof buf - 1)
        return st_error(ST_ERR_FORMAT, "key file '%s': too long for a key file", path);
    buf[n] = 0;
    int line = 0;
    for (char *p = buf, *e; *p; p = e) {
        e = strchr(p, '\n');
        e = e ? (*e = 0, e + 1) : p + strlen(p);
        line++;
        while (*p == ' ' || *p == '\t')
            p++;
        if (!*p || *p == '#')
            continue;
        char key[16], val[64];
        if (sscanf(p, "%15[a-z] = %63s", key, val) != 2 || !is_z85_key(val))
            return st_error(ST_ERR_FORMAT, "%s:%d: expected 'public = KEY' or 'secret = KEY' "
                            "(40 Z85 characters)", path, line);
        if (!strcmp(key, "public"))
            memcpy(out->public_z85, val, ST_CURVE_KEY_Z85 + 1);
        else if (!strcmp(key, "secret"))
            memcpy(out->secret_z85, val, ST_CURVE_KEY_Z85 + 1);
        else
            return st_error(ST_ERR_FORMAT, "%s:%d: unknown key '%s'", path, line, key);
    }
    if (!out->public_z85[0])
        return st_error(ST_ERR_FORMAT, "key file '%s': no 'public = ' line", path);
    if (out->secret_z85[0]) {
        if (sb.st_mode & 077) {
            memset(out, 0, sizeof *out);
            return st_error(ST_ERR_INVALID, "key file '%s' holds a secret key and others may "
                            "read it (mode %03o): chmod 600 it", path, sb.st_mode & 0777);
        }
        /* The public key must be the secret's: a pasted wrong line would
           otherwise fail only at the first handshake. */
        char derived[ST_CURVE_KEY_Z85 + 1];
        if (zmq_curve_public(derived, out->secret_z85) || strcmp(derived, out->public_z85)) {
            memset(out, 0, sizeof *out);
            return st_error(ST_ERR_FORMAT, "key file '%s': the public key is not the secret "
                            "key's", path);
        }
    }
    return ST_OK;
}

int st_curve_public_parse(const char *text, char out[ST_CURVE_KEY_Z85 + 1])
{
    /* A path of 40 characters may also be valid Z85 ('/' and '.' are):
       an existing file wins. */
    if (is_z85_key(text) && access(text, F_OK)) {
        memcpy(out, text, ST_CURVE_KEY_Z85 + 1);
        return ST_OK;
    }
    st_curve_keys k;
    int rc = st_curve_keys_read(text, &k);
    if (rc)
        return rc;
    memcpy(out, k.public_z85, ST_CURVE_KEY_Z85 + 1);
    memset(&k, 0, sizeof k);
    return ST_OK;
}

/* ---- socket options ---------------------------------------------------------- */

int st_sec_curve_server(void *sock, const st_curve_keys *own)
{
    if (!is_z85_key(own->secret_z85))
        return st_error(ST_ERR_INVALID, "CURVE server: no secret key");
    int one = 1;
    if (zmq_setsockopt(sock, ZMQ_CURVE_SERVER, &one, sizeof one) ||
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, own->secret_z85, ST_CURVE_KEY_Z85 + 1) ||
        zmq_setsockopt(sock, ZMQ_ZAP_DOMAIN, "spiketalk", 9))
        return st_error(ST_ERR_IO, "CURVE server: %s", zmq_strerror(errno));
#ifdef ZMQ_ZAP_ENFORCE_DOMAIN
    /* Without an authenticator, refuse rather than admit everyone. */
    zmq_setsockopt(sock, ZMQ_ZAP_ENFORCE_DOMAIN, &one, sizeof one);
#endif
    return ST_OK;
}

int st_sec_curve_client(void *sock, const st_curve_keys *own, const char *server_public_z85)
{
    if (!is_z85_key(own->public_z85) || !is_z85_key(own->secret_z85))
        return st_error(ST_ERR_INVALID, "CURVE client: no key pair");
    if (!is_z85_key(server_public_z85))
        return st_error(ST_ERR_INVALID, "CURVE client: the server's public key is not 40 Z85 "
                        "characters");
    if (zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, server_public_z85, ST_CURVE_KEY_Z85 + 1) ||
        zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, own->public_z85, ST_CURVE_KEY_Z85 + 1) ||
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, own->secret_z85, ST_CURVE_KEY_Z85 + 1))
        return st_error(ST_ERR_IO, "CURVE client: %s", zmq_strerror(errno));
    return ST_OK;
}

int st_sec_ipc_restrict(const char *endpoint)
{
    if (strncmp(endpoint, "ipc://", 6))
        return ST_OK;
    const char *path = endpoint + 6;
    if (path[0] == '@') /* Linux abstract namespace: no file to protect */
        return ST_OK;
    if (chmod(path, 0600))
        return st_error(ST_ERR_IO, "ipc socket '%s': chmod 600: %s", path, strerror(errno));
    return ST_OK;
}

/* ---- the authenticator (ZAP, RFC 27) ------------------------------------------ */

#define AUTH_MAX_DOMAINS 40

struct st_sec_auth {
    void *rep;
    pthread_t thread;
    atomic_bool stop;
    atomic_uint_fast64_t refused, admitted;
    size_t n;
    uint8_t (*keys)[32];   /* allowed public keys, binary: any other domain */
    pthread_mutex_t lock;  /* the domains below */
    int n_domains;
    struct {
        char name[80];
        size_t n;
        uint8_t (*keys)[32];
    } domains[AUTH_MAX_DOMAINS]; /* a listener's own list (st_sec_auth_domain) */
};

static bool allowed(st_sec_auth *a, const char *domain, size_t dlen, const uint8_t *key,
                    size_t len)
{
    if (len != 32)
        return false;
    bool ok = false, found = false;
    pthread_mutex_lock(&a->lock);
    for (int d = 0; d < a->n_domains && !found; d++)
        if (strlen(a->domains[d].name) == dlen && !memcmp(a->domains[d].name, domain, dlen)) {
            found = true;
            for (size_t i = 0; i < a->domains[d].n && !ok; i++)
                ok = !memcmp(a->domains[d].keys[i], key, 32);
        }
    pthread_mutex_unlock(&a->lock);
    for (size_t i = 0; !found && i < a->n && !ok; i++)
        ok = !memcmp(a->keys[i], key, 32);
    return ok;
}

int st_sec_auth_domain(st_sec_auth *a, const char *domain, const char *const *allowed_z85,
                       size_t n)
{
    if (strlen(domain) >= sizeof a->domains[0].name)
        return st_error(ST_ERR_INVALID, "authenticator: domain '%s' too long", domain);
    uint8_t (*keys)[32] = calloc(n ? n : 1, sizeof *keys);
    if (!keys)
        return st_error(ST_ERR_NOMEM, "authenticator: out of memory");
    for (size_t i = 0; i < n; i++)
        if (!is_z85_key(allowed_z85[i]) || !zmq_z85_decode(keys[i], allowed_z85[i])) {
            free(keys);
            return st_error(ST_ERR_INVALID, "authenticator: domain '%s': accepted key %zu is not "
                            "40 Z85 characters", domain, i + 1);
        }
    pthread_mutex_lock(&a->lock);
    int rc = ST_OK;
    if (a->n_domains == AUTH_MAX_DOMAINS) {
        rc = st_error(ST_ERR_NOMEM, "authenticator: at most %d domains", AUTH_MAX_DOMAINS);
        free(keys);
    } else {
        snprintf(a->domains[a->n_domains].name, sizeof a->domains[0].name, "%s", domain);
        a->domains[a->n_domains].n = n;
        a->domains[a->n_domains].keys = keys;
        a->n_domains++;
    }
    pthread_mutex_unlock(&a->lock);
    return rc;
}

/* One request: version, request id, domain, address, identity, mechanism,
   credentials. The reply: version, request id, status, text, user id,
   metadata. */
static void answer(st_sec_auth *a)
{
    zmq_msg_t f[8];
    int n = 0;
    bool more = true;
    while (more && n < 8) {
        zmq_msg_init(&f[n]);
        if (zmq_msg_recv(&f[n], a->rep, 0) < 0) {
            zmq_msg_close(&f[n]);
            break;
        }
        more = zmq_msg_more(&f[n]);
        n++;
    }
    while (more) { /* more frames than any request has: drain them */
        zmq_msg_t extra;
        zmq_msg_init(&extra);
        zmq_msg_recv(&extra, a->rep, 0);
        more = zmq_msg_more(&extra);
        zmq_msg_close(&extra);
    }
    bool ok = false;
    const char *why = "malformed ZAP request";
    if (n >= 6) {
        const char *mech = zmq_msg_data(&f[5]);
        size_t mlen = zmq_msg_size(&f[5]);
        if (mlen == 5 && !memcmp(mech, "CURVE", 5) && n >= 7) {
            ok = allowed(a, zmq_msg_data(&f[2]), zmq_msg_size(&f[2]), zmq_msg_data(&f[6]),
                         zmq_msg_size(&f[6]));
            why = ok ? "OK" : "unknown public key";
        } else {
            why = "only CURVE is admitted";
        }
    }
    if (ok)
        atomic_fetch_add(&a->admitted, 1);
    else
        atomic_fetch_add(&a->refused, 1);
    if (n >= 2) {
        zmq_send(a->rep, "1.0", 3, ZMQ_SNDMORE);
        zmq_send(a->rep, zmq_msg_data(&f[1]), zmq_msg_size(&f[1]), ZMQ_SNDMORE);
        zmq_send(a->rep, ok ? "200" : "400", 3, ZMQ_SNDMORE);
        zmq_send(a->rep, why, strlen(why), ZMQ_SNDMORE);
        zmq_send(a->rep, "", 0, ZMQ_SNDMORE);
        zmq_send(a->rep, "", 0, 0);
    }
    for (int i = 0; i < n; i++)
        zmq_msg_close(&f[i]);
}

static void *auth_main(void *arg)
{
    st_sec_auth *a = arg;
    while (!atomic_load(&a->stop)) {
        zmq_pollitem_t it = {a->rep, 0, ZMQ_POLLIN, 0};
        int rc = zmq_poll(&it, 1, 100);
        if (rc < 0 && errno == ETERM)
            break;
        if (rc > 0)
            answer(a);
    }
    zmq_close(a->rep);
    return NULL;
}

st_sec_auth *st_sec_auth_new(void *zctx, const char *const *allowed_z85, size_t n, int *err)
{
    int rc = ST_ERR_NOMEM;
    st_sec_auth *a = calloc(1, sizeof *a);
    if (!a || !(a->keys = calloc(n ? n : 1, sizeof *a->keys))) {
        rc = st_error(ST_ERR_NOMEM, "authenticator: out of memory");
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        if (!is_z85_key(allowed_z85[i]) || !zmq_z85_decode(a->keys[i], allowed_z85[i])) {
            rc = st_error(ST_ERR_INVALID, "authenticator: accepted key %zu is not 40 Z85 "
                          "characters", i + 1);
            goto fail;
        }
    }
    a->n = n;
    pthread_mutex_init(&a->lock, NULL);
    a->rep = zmq_socket(zctx, ZMQ_REP);
    int zero = 0;
    if (!a->rep || zmq_setsockopt(a->rep, ZMQ_LINGER, &zero, sizeof zero) ||
        zmq_bind(a->rep, "inproc://zeromq.zap.01")) {
        rc = st_error(ST_ERR_IO, "authenticator: cannot bind the ZAP endpoint (%s; one per "
                      "context)", zmq_strerror(errno));
        goto fail;
    }
    if (pthread_create(&a->thread, NULL, auth_main, a)) {
        rc = st_error(ST_ERR_IO, "authenticator: cannot start its thread");
        goto fail;
    }
    if (err)
        *err = ST_OK;
    return a;
fail:
    if (a) {
        if (a->rep)
            zmq_close(a->rep);
        free(a->keys);
        free(a);
    }
    if (err)
        *err = rc;
    return NULL;
}

void st_sec_auth_destroy(st_sec_auth **self_p)
{
    if (!self_p || !*self_p)
        return;
    st_sec_auth *a = *self_p;
    atomic_store(&a->stop, true);
    pthread_join(a->thread, NULL);
    memset(a->keys, 0, a->n * sizeof *a->keys);
    free(a->keys);
    for (int d = 0; d < a->n_domains; d++)
        free(a->domains[d].keys);
    pthread_mutex_destroy(&a->lock);
    free(a);
    *self_p = NULL;
}

uint64_t st_sec_auth_refused(const st_sec_auth *self)
{
    return atomic_load(&((st_sec_auth *)self)->refused);
}

uint64_t st_sec_auth_admitted(const st_sec_auth *self)
{
    return atomic_load(&((st_sec_auth *)self)->admitted);
}

/* ---- a socket owner's side of the configuration ------------------------------ */

int st_sec_stage_keys(const st_sec_stage *sec, st_curve_keys *own)
{
    memset(own, 0, sizeof *own);
    if (!sec->key_file[0])
        return st_error(ST_ERR_INVALID, "%s: no key pair named (key = FILE; spiketalk keygen "
                        "FILE)", sec->key_where[0] ? sec->key_where : "CURVE");
    int rc = st_curve_keys_read(sec->key_file, own);
    if (!rc && !own->secret_z85[0])
        rc = st_error(ST_ERR_FORMAT, "key file '%s' has no 'secret = ' line (a .pub file?)",
                      sec->key_file);
    if (rc) {
        char msg[600];
        snprintf(msg, sizeof msg, "%s", st_errmsg());
        memset(own, 0, sizeof *own);
        return st_error(rc, "%s: %s", sec->key_where, msg);
    }
    return ST_OK;
}

st_sec_auth *st_sec_stage_auth(void *zctx, const st_sec_stage *sec, int *err)
{
    const char *keys[ST_SEC_MAX_ACCEPT];
    int n = sec->n_accept < ST_SEC_MAX_ACCEPT ? sec->n_accept : ST_SEC_MAX_ACCEPT;
    for (int i = 0; i < n; i++)
        keys[i] = sec->accept[i];
    return st_sec_auth_new(zctx, keys, (size_t)n, err);
}
