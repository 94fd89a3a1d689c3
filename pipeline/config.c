/*  pipeline/config.c - the pipeline's one configuration file: an INI file
    (libinih) with a [pipeline] section and one [stage.NAME] section per
    stage; checking it with messages that name the file and line; resolving
    every stage's endpoints from it, so that a stage process started
    anywhere with the same file finds its peers; the built-in default.

    What it may touch: libinih, the registry (to check stage types). Workload:
    read once per run (and once per stage process); fixed-size tables, so a
    copy is one memcpy.

    Endpoint rules (docs/PROTOCOL.md repeats them for other languages):
      stage i (0-based, in file order) has id i + 1 and listens on
        inproc  inproc://st/NAME
        ipc     ipc://IPC_DIR/NAME
        tcp     tcp://HOST:PORT, PORT = its `port`, else base_port + 2 + i
      or on its `listen` endpoint when given. An edge `out = b@tcp` uses that
      transport; `out = b` uses b's `transport`, else the pipeline's. The
      control bus (PUB) and the report socket (PULL) are inproc://st/_control
      and inproc://st/_report when every stage is a thread of the supervisor,
      else tcp base_port and base_port + 1 when the pipeline's transport is
      tcp, else ipc://IPC_DIR/_control and _report (or `control` / `report`).

    Security (docs/SECURITY.md): tcp sockets use CurveZMQ with the key files
    `key =` names ([pipeline]: the supervisor's and every stage's default;
    a stage's own), admitting every key the file names or a stage's
    `accept`; plain tcp only with `insecure = yes`. Key files are read at
    load (errors name the file and line); tcp without keys is an error for
    whoever runs the pipeline, so that --insecure can still be set.
*/
#include "pipeline_impl.h"

#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

enum { TR_INPROC = 0, TR_IPC = 1, TR_TCP = 2, TR_DEFAULT = -1 };
static const char *const transports[] = {"inproc", "ipc", "tcp", NULL};

#define NAME_MAX_ 48
#define EP_MAX 256
#define RECORDER_NAME "_recorder"

typedef struct {
    char name[NAME_MAX_];
    char type[NAME_MAX_];
    int line;                   /* of the section header */
    st_params params;
    bool implicit;              /* added by `record =`; not written out */
    /* the runtime's keys */
    int n_out;
    char out_name[ST_STAGE_MAX_OUTPUTS][NAME_MAX_];
    int out_transport[ST_STAGE_MAX_OUTPUTS];
    int out_line;
    int transport;
    bool process, external, launch, shed, required;
    char host[64];
    long port, hwm, stream;
    double tick_ms, send_timeout_ms, spin_us;
    char listen[EP_MAX];
    char thread[NAME_MAX_];     /* `thread = NAME`: runs on NAME's thread; "" alone */
    int thread_line;
    char key[256];              /* `key = FILE`: its CURVE pair; "" = the pipeline's */
    int key_line;
    char pub[ST_CURVE_KEY_Z85 + 1];
    bool has_accept;            /* `accept = ...` replaces the default list */
    int n_accept;
    char accept[ST_SEC_MAX_ACCEPT][ST_CURVE_KEY_Z85 + 1];
    /* resolved */
    int group_head;             /* index of the chain's first stage; -1 alone */
    int fused_next;             /* index of the next stage of its chain; -1 none */
    int n_inputs;
    int n_binds;
    char binds[ST_STAGE_MAX_BINDS][EP_MAX];
    char outputs[ST_STAGE_MAX_OUTPUTS][EP_MAX];
    st_sec_stage sec;
} cfg_stage;

struct st_pipe_config {
    char origin[256];
    bool from_file;
    st_params pipeline;
    int n;
    cfg_stage st[ST_PIPE_MAX_STAGES];
    /* [pipeline], interpreted */
    int transport;
    bool processes;
    char host[64];
    long base_port, hwm, restarts;
    char ipc_dir[160];
    double heartbeat_ms, heartbeat_timeout_ms, start_timeout_s, send_timeout_ms, metrics_ms,
        orphan_s, spin_us;
    char control[EP_MAX], report[EP_MAX];
    char key[256];              /* `key = FILE`: the supervisor's pair, and every stage's default */
    int key_line;
    char pub[ST_CURVE_KEY_Z85 + 1];
    bool insecure;              /* `insecure = yes`: plain tcp */
    int n_accept;               /* `accept = ...`: admitted by every listener */
    char accept[ST_SEC_MAX_ACCEPT][ST_CURVE_KEY_Z85 + 1];
    bool uses_tcp;              /* some socket of the pipeline is tcp */
    st_sec_stage sup_sec;       /* the supervisor's */
    int sec_rc;                 /* tcp without keys: an error for whoever runs it */
    char sec_msg[512];
    /* resolved */
    char control_ep[EP_MAX], report_ep[EP_MAX];
    int resolve_rc;
    char resolve_msg[512];
};

/* ---- the built-in pipeline -------------------------------------------------- */

static const char default_text[] =
    "; spiketalk's built-in pipeline: what `spiketalk run` runs without --config.\n"
    "; The microphone at the device's rate, resampled to the pipeline's 16 kHz,\n"
    "; through a pass-through stage (where the recognizer, the language model and\n"
    "; the synthesizer go), to the speaker, which resamples to its own rate.\n"
    "; Try: spiketalk run --input speech.wav --output echo.wav  (virtual devices)\n"
    "\n"
    "[pipeline]\n"
    "transport = inproc      ; every edge inside this process (ipc, tcp: see docs/PROTOCOL.md)\n"
    "hwm = 64                ; queue bound per edge, messages (64 x 10 ms of audio)\n"
    "\n"
    "[stage.mic]\n"
    "type = audio_source\n"
    "device = portaudio      ; or virtual (with input = FILE), or file\n"
    "out = to16k\n"
    "\n"
    "[stage.to16k]\n"
    "type = resampler\n"
    "rate = 16000\n"
    "out = agent\n"
    "\n"
    "[stage.agent]\n"
    "type = passthrough\n"
    "out = speaker\n"
    "\n"
    "[stage.speaker]\n"
    "type = audio_sink\n"
    "device = portaudio      ; or virtual / file (with output = FILE)\n";

const char *st_pipe_config_default_text(void)
{
    return default_text;
}

/* ---- parsing ---------------------------------------------------------------- */

typedef struct {
    st_pipe_config *c;
    const char *text;           /* string source */
    size_t pos;
    FILE *f;                    /* file source */
    int line;                   /* lines handed to inih so far */
    int long_line;              /* first line longer than inih's buffer */
    char header_section[96];    /* the last [section] seen by the reader */
    int header_line;
    int rc;                     /* first error from the handler */
} parse_ctx;

/* fgets over a string or a file that also counts lines and notes where
   each section starts; a line too long for inih is cut and remembered. */
static char *reader(char *str, int num, void *stream)
{
    parse_ctx *x = stream;
    int n = 0;
    bool nl = false;
    if (num < 2)
        return NULL;
    while (n < num - 1) {
        int ch;
        if (x->f) {
            ch = fgetc(x->f);
            if (ch == EOF)
                break;
        } else {
            if (!x->text[x->pos])
                break;
            ch = (unsigned char)x->text[x->pos++];
        }
        str[n++] = (char)ch;
        if (ch == '\n') {
            nl = true;
            break;
        }
    }
    if (n == 0)
        return NULL;
    str[n] = '\0';
    x->line++;
    if (!nl) {
        /* Cut: skip the rest of the physical line so that counts stay right. */
        int ch, skipped = 0;
        while ((ch = x->f ? fgetc(x->f) : (x->text[x->pos] ? (unsigned char)x->text[x->pos++] : EOF)) != EOF && ch != '\n')
            skipped++;
        if (skipped && !x->long_line)
            x->long_line = x->line;
    }
    const char *p = str;
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p == '[') {
        const char *e = strchr(p, ']');
        if (e) {
            snprintf(x->header_section, sizeof x->header_section, "%.*s", (int)(e - p - 1), p + 1);
            x->header_line = x->line;
        }
    }
    return str;
}

static bool valid_name(const char *s)
{
    if (!*s || strlen(s) >= NAME_MAX_)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == '-'))
            return false;
    return true;
}

static cfg_stage *find_stage(st_pipe_config *c, const char *name)
{
    for (int i = 0; i < c->n; i++)
        if (!strcmp(c->st[i].name, name))
            return &c->st[i];
    return NULL;
}

static int handler(void *user, const char *section, const char *name, const char *value)
{
    parse_ctx *x = user;
    st_pipe_config *c = x->c;
    if (x->rc)
        return 1;
    st_params *target = NULL;
    if (!strcmp(section, "pipeline")) {
        target = &c->pipeline;
        if (!c->pipeline.line)
            c->pipeline.line = !strcmp(x->header_section, section) ? x->header_line : x->line;
    } else if (!strncmp(section, "stage.", 6)) {
        const char *sname = section + 6;
        if (!valid_name(sname) || sname[0] == '_') {
            x->rc = st_error(ST_ERR_FORMAT, "%s:%d: [%s]: a stage name is letters, digits, '_' "
                             "and '-' (not first), at most %d", c->origin,
                             !strcmp(x->header_section, section) ? x->header_line : x->line,
                             section, NAME_MAX_ - 1);
            return 1;
        }
        cfg_stage *s = find_stage(c, sname);
        if (!s) {
            if (c->n == ST_PIPE_MAX_STAGES) {
                x->rc = st_error(ST_ERR_FORMAT, "%s:%d: too many stages (at most %d)", c->origin,
                                 x->line, ST_PIPE_MAX_STAGES);
                return 1;
            }
            s = &c->st[c->n++];
            memset(s, 0, sizeof *s);
            snprintf(s->name, sizeof s->name, "%s", sname);
            s->line = !strcmp(x->header_section, section) ? x->header_line : x->line;
            st_params_init(&s->params, c->origin, section, s->line);
        }
        target = &s->params;
    } else {
        int line = !strcmp(x->header_section, section) ? x->header_line : x->line;
        x->rc = st_error(ST_ERR_FORMAT, "%s:%d: unknown section [%s] (sections are [pipeline] "
                         "and [stage.NAME])", c->origin, line, section);
        return 1;
    }
    for (int i = 0; i < target->n; i++)
        if (!strcmp(target->p[i].key, name)) {
            x->rc = st_error(ST_ERR_FORMAT, "%s:%d: [%s] '%s' is given twice (first at line %d)",
                             c->origin, x->line, section, name, target->p[i].line);
            return 1;
        }
    /* The line st_pipe_config_write() makes of it, "key = value", must fit
       the reader's line as --set's must: "key=value" fits where the written
       line may not (found by fuzz/fuzz_config.c). */
    if (strlen(name) + 3 + strlen(value) > ST_PARAM_VALUE_MAX - 10) {
        x->rc = st_error(ST_ERR_FORMAT, "%s:%d: [%s] %s: the line is too long once written as "
                         "'key = value' (at most %d characters)",
                         c->origin, x->line, section, name, ST_PARAM_VALUE_MAX - 10);
        return 1;
    }
    int rc = st_params_set(target, name, value, x->line);
    if (rc)
        x->rc = rc;
    return 1;
}

/* ---- interpretation ---------------------------------------------------------- */

static int line_of(const st_params *p, const char *key)
{
    for (int i = 0; i < p->n; i++)
        if (!strcmp(p->p[i].key, key))
            return p->p[i].line;
    return p->line;
}

/* "FILE:LINE: " (or "--set: " for overrides). */
static const char *at(const st_pipe_config *c, int line, char *buf, size_t cap)
{
    if (line < 0)
        snprintf(buf, cap, "--set: ");
    else if (line > 0)
        snprintf(buf, cap, "%s:%d: ", c->origin, line);
    else
        snprintf(buf, cap, "%s: ", c->origin);
    return buf;
}

static int read_transport(st_params *p, const char *key, int def, int *out)
{
    if (!st_params_get(p, key)) {
        *out = def;
        return ST_OK;
    }
    return st_params_choice(p, key, "inproc", transports, out);
}

static int interpret_pipeline(st_pipe_config *c)
{
    st_params *p = &c->pipeline;
    snprintf(p->origin, sizeof p->origin, "%s", c->origin);
    snprintf(p->section, sizeof p->section, "pipeline");
    for (int i = 0; i < p->n; i++)
        p->p[i].used = false;
    int rc;
    const char *v;
    if ((rc = read_transport(p, "transport", TR_INPROC, &c->transport)) ||
        (rc = st_params_bool(p, "processes", false, &c->processes)) ||
        (rc = st_params_int(p, "base_port", 0, 0, 65000, &c->base_port)) ||
        (rc = st_params_int(p, "hwm", 64, 1, 1000000, &c->hwm)) ||
        (rc = st_params_int(p, "restarts", 5, 0, 1000, &c->restarts)) ||
        (rc = st_params_double(p, "heartbeat_ms", 200, 10, 60000, &c->heartbeat_ms)) ||
        (rc = st_params_double(p, "heartbeat_timeout_ms", 5 * c->heartbeat_ms, c->heartbeat_ms,
                               600000, &c->heartbeat_timeout_ms)) ||
        (rc = st_params_double(p, "start_timeout_s", 10, 0.1, 3600, &c->start_timeout_s)) ||
        (rc = st_params_double(p, "send_timeout_ms", 1000, 0, 600000, &c->send_timeout_ms)) ||
        (rc = st_params_double(p, "metrics_ms", 1000, 10, 600000, &c->metrics_ms)) ||
        (rc = st_params_double(p, "orphan_s", 5, 0, 3600, &c->orphan_s)) ||
        (rc = st_params_double(p, "spin_us", 0, 0, 1e6, &c->spin_us)) ||
        (rc = st_params_bool(p, "insecure", false, &c->insecure)))
        return rc;
    st_params_get(p, "key");    /* read by security() */
    st_params_get(p, "accept");
    v = st_params_get(p, "host");
    snprintf(c->host, sizeof c->host, "%s", v ? v : "127.0.0.1");
    v = st_params_get(p, "ipc_dir");
    snprintf(c->ipc_dir, sizeof c->ipc_dir, "%s", v ? v : "");
    v = st_params_get(p, "control");
    snprintf(c->control, sizeof c->control, "%s", v ? v : "");
    v = st_params_get(p, "report");
    snprintf(c->report, sizeof c->report, "%s", v ? v : "");
    st_params_get(p, "name");
    st_params_get(p, "record");
    const st_param *u = st_params_unused(p);
    if (u) {
        char w[300];
        return st_error(ST_ERR_FORMAT, "%sunknown key '%s' in [pipeline] (see docs/PROTOCOL.md, "
                        "\"Configuration\")", at(c, u->line, w, sizeof w), u->key);
    }
    return ST_OK;
}

static int interpret_stage(st_pipe_config *c, cfg_stage *s)
{
    st_params *p = &s->params;
    char w[300];
    for (int i = 0; i < p->n; i++)
        p->p[i].used = false;
    const char *type = st_params_get(p, "type");
    if (!type)
        return st_error(ST_ERR_FORMAT, "%s[stage.%s] has no 'type' (spiketalk stage --list "
                        "names them)", at(c, s->line, w, sizeof w), s->name);
    snprintf(s->type, sizeof s->type, "%s", type);
    s->external = !strcmp(type, "external");
    if (!s->external && !st_stage_type_find(type)) {
        char list[512] = "";
        size_t len = 0;
        const st_stage_type *t;
        for (size_t i = 0; (t = st_stage_type_at(i)) && len < sizeof list; i++)
            len += (size_t)snprintf(list + len, sizeof list - len, "%s%s", i ? ", " : "", t->name);
        return st_error(ST_ERR_FORMAT, "%s[stage.%s] unknown stage type '%s' (the types are: %s, "
                        "external)", at(c, line_of(p, "type"), w, sizeof w), s->name, type, list);
    }
    int rc;
    bool launch;
    if ((rc = read_transport(p, "transport", TR_DEFAULT, &s->transport)) ||
        (rc = st_params_bool(p, "process", c->processes, &s->process)) ||
        (rc = st_params_bool(p, "launch", !s->external, &launch)) ||
        (rc = st_params_bool(p, "shed", true, &s->shed)) ||
        (rc = st_params_bool(p, "required", true, &s->required)) ||
        (rc = st_params_int(p, "port", 0, 0, 65535, &s->port)) ||
        (rc = st_params_int(p, "hwm", c->hwm, 1, 1000000, &s->hwm)) ||
        (rc = st_params_int(p, "stream", 0, 0, 0xffffffffL, &s->stream)) ||
        (rc = st_params_double(p, "tick_ms", -1, -1, 3600000, &s->tick_ms)) ||
        (rc = st_params_double(p, "spin_us", c->spin_us, 0, 1e6, &s->spin_us)) ||
        (rc = st_params_double(p, "send_timeout_ms", c->send_timeout_ms, 0, 600000,
                               &s->send_timeout_ms)))
        return rc;
    s->launch = launch && !s->external;
    if (s->external && launch)
        return st_error(ST_ERR_FORMAT, "%s[stage.%s] an external stage is started by someone else: "
                        "launch must be no", at(c, line_of(p, "launch"), w, sizeof w), s->name);
    const char *v = st_params_get(p, "host");
    snprintf(s->host, sizeof s->host, "%s", v ? v : c->host);
    v = st_params_get(p, "listen");
    snprintf(s->listen, sizeof s->listen, "%s", v ? v : "");
    v = st_params_get(p, "thread");
    s->thread_line = line_of(p, "thread");
    if (v && strlen(v) >= NAME_MAX_)
        return st_error(ST_ERR_FORMAT, "%s[stage.%s] thread: '%s' is not a stage name",
                        at(c, s->thread_line, w, sizeof w), s->name, v);
    snprintf(s->thread, sizeof s->thread, "%s", v ? v : "");
    st_params_get(p, "key");    /* read by security() */
    st_params_get(p, "accept");
    s->n_out = 0;
    s->out_line = line_of(p, "out");
    v = st_params_get(p, "out");
    if (v) {
        char buf[ST_PARAM_VALUE_MAX];
        snprintf(buf, sizeof buf, "%s", v);
        for (char *save = NULL, *tok = strtok_r(buf, ", \t", &save); tok;
             tok = strtok_r(NULL, ", \t", &save)) {
            if (s->n_out == ST_STAGE_MAX_OUTPUTS)
                return st_error(ST_ERR_FORMAT, "%s[stage.%s] out: at most %d outputs",
                                at(c, s->out_line, w, sizeof w), s->name, ST_STAGE_MAX_OUTPUTS);
            char *atsign = strchr(tok, '@');
            int tr = TR_DEFAULT;
            if (atsign) {
                *atsign++ = '\0';
                tr = -2;
                for (int t = 0; transports[t]; t++)
                    if (!strcasecmp(atsign, transports[t]))
                        tr = t;
                if (tr == -2)
                    return st_error(ST_ERR_FORMAT, "%s[stage.%s] out: '%s@%s': the transport is "
                                    "inproc, ipc or tcp", at(c, s->out_line, w, sizeof w), s->name,
                                    tok, atsign);
            }
            snprintf(s->out_name[s->n_out], NAME_MAX_, "%s", tok);
            s->out_transport[s->n_out++] = tr;
        }
    }
    return ST_OK;
}

static int edge_transport(const st_pipe_config *c, const cfg_stage *from, int k)
{
    (void)from;
    int tr = from->out_transport[k];
    if (tr != TR_DEFAULT)
        return tr;
    for (int i = 0; i < c->n; i++)
        if (!strcmp(c->st[i].name, from->out_name[k]))
            return c->st[i].transport != TR_DEFAULT ? c->st[i].transport : c->transport;
    return c->transport;
}

static bool all_in_process(const st_pipe_config *c)
{
    for (int i = 0; i < c->n; i++)
        if (c->st[i].process || !c->st[i].launch)
            return false;
    return true;
}

static int resolve(st_pipe_config *c);

/* ---- security: CURVE keys of tcp sockets (docs/SECURITY.md) ---------------- */

static bool is_tcp(const char *ep)
{
    return !strncmp(ep, "tcp://", 6);
}

/* The public key of a key pair named in the configuration: FILE itself when
   it is here (its permissions and pair are checked), else FILE.pub (the
   pair lives on another host). */
static int read_public(const st_pipe_config *c, const char *path, int line, const char *section,
                       char out[ST_CURVE_KEY_Z85 + 1])
{
    char w[300], pub[300];
    st_curve_keys k;
    int rc;
    snprintf(pub, sizeof pub, "%s.pub", path);
    if (!access(path, F_OK))
        rc = st_curve_keys_read(path, &k);
    else if (!access(pub, F_OK))
        rc = st_curve_keys_read(pub, &k);
    else
        rc = st_error(ST_ERR_NOT_FOUND, "key file '%s': no such file, nor '%s' (make the pair "
                      "with: spiketalk keygen %s)", path, pub, path);
    if (rc) {
        char msg[600];
        snprintf(msg, sizeof msg, "%s", st_errmsg());
        return st_error(rc, "%s[%s] key: %s", at(c, line, w, sizeof w), section, msg);
    }
    memcpy(out, k.public_z85, ST_CURVE_KEY_Z85 + 1);
    memset(&k, 0, sizeof k);
    return ST_OK;
}

static void add_key(char acc[][ST_CURVE_KEY_Z85 + 1], int *n, const char *k)
{
    if (!k[0])
        return;
    for (int i = 0; i < *n; i++)
        if (!strcmp(acc[i], k))
            return;
    if (*n < ST_SEC_MAX_ACCEPT)
        memcpy(acc[(*n)++], k, ST_CURVE_KEY_Z85 + 1);
}

/* `accept = KEY, FILE.pub, ...`: Z85 keys or key files. */
static int read_accept(const st_pipe_config *c, st_params *p, const char *section,
                       char acc[][ST_CURVE_KEY_Z85 + 1], int *n, bool *given)
{
    *n = 0;
    const char *v = st_params_get(p, "accept");
    if (given)
        *given = v != NULL;
    if (!v)
        return ST_OK;
    char buf[ST_PARAM_VALUE_MAX], w[300];
    snprintf(buf, sizeof buf, "%s", v);
    for (char *save = NULL, *tok = strtok_r(buf, ", \t", &save); tok;
         tok = strtok_r(NULL, ", \t", &save)) {
        char key[ST_CURVE_KEY_Z85 + 1];
        int rc = st_curve_public_parse(tok, key);
        if (rc) {
            char msg[600];
            snprintf(msg, sizeof msg, "%s", st_errmsg());
            return st_error(rc, "%s[%s] accept: '%s': %s", at(c, line_of(p, "accept"), w, sizeof w),
                            section, tok, msg);
        }
        if (*n == ST_SEC_MAX_ACCEPT)
            return st_error(ST_ERR_FORMAT, "%s[%s] accept: at most %d keys",
                            at(c, line_of(p, "accept"), w, sizeof w), section, ST_SEC_MAX_ACCEPT);
        add_key(acc, n, key);
    }
    return ST_OK;
}

static bool all_in_process(const st_pipe_config *c);

/* Reads the key files named (errors: now, with file and line) and decides
   who uses which key on tcp. tcp without keys and without `insecure = yes`
   is an error for whoever runs the pipeline (sec_rc), so that --insecure
   can still be given after the file is loaded. */
static int security(st_pipe_config *c)
{
    char w[300];
    int rc;
    st_params *pp = &c->pipeline;
    c->sec_rc = ST_OK;
    c->sec_msg[0] = '\0';
    memset(&c->sup_sec, 0, sizeof c->sup_sec);
    const char *v = st_params_get(pp, "key");
    snprintf(c->key, sizeof c->key, "%s", v ? v : "");
    c->key_line = line_of(pp, "key");
    c->pub[0] = '\0';
    if (c->key[0] && (rc = read_public(c, c->key, c->key_line, "pipeline", c->pub)))
        return rc;
    if ((rc = read_accept(c, pp, "pipeline", c->accept, &c->n_accept, NULL)))
        return rc;
    bool all_keys = true, any_key = c->key[0];
    for (int i = 0; i < c->n; i++) {
        cfg_stage *s = &c->st[i];
        char section[NAME_MAX_ + 8];
        snprintf(section, sizeof section, "stage.%s", s->name);
        memset(&s->sec, 0, sizeof s->sec);
        v = st_params_get(&s->params, "key");
        snprintf(s->key, sizeof s->key, "%s", v ? v : "");
        s->key_line = line_of(&s->params, "key");
        s->pub[0] = '\0';
        if (s->key[0] && (rc = read_public(c, s->key, s->key_line, section, s->pub)))
            return rc;
        any_key |= s->key[0] != '\0';
        all_keys &= s->key[0] || c->key[0];
        if ((rc = read_accept(c, &s->params, section, s->accept, &s->n_accept, &s->has_accept)))
            return rc;
    }
    /* Which sockets are tcp: edges (not fused ones), listeners, the bus. */
    bool local = all_in_process(c);
    bool bus_tcp = !local && ((c->control[0] ? is_tcp(c->control) : c->transport == TR_TCP) ||
                              (c->report[0] ? is_tcp(c->report) : c->transport == TR_TCP));
    c->uses_tcp = bus_tcp;
    for (int i = 0; i < c->n; i++) {
        const cfg_stage *s = &c->st[i];
        c->uses_tcp |= s->listen[0] && is_tcp(s->listen);
        for (int k = 0; k < s->n_out; k++) {
            const cfg_stage *d = find_stage(c, s->out_name[k]);
            if (s->fused_next >= 0 || !d)
                continue;
            c->uses_tcp |= d->listen[0] ? is_tcp(d->listen) : edge_transport(c, s, k) == TR_TCP;
        }
    }
    if (!c->uses_tcp || c->insecure)
        return ST_OK;
    if (!any_key || !all_keys || (bus_tcp && !c->key[0])) {
        const cfg_stage *lacking = NULL;
        for (int i = 0; i < c->n && !lacking && any_key; i++)
            if (!c->st[i].key[0] && !c->key[0])
                lacking = &c->st[i];
        if (!any_key)
            c->sec_rc = st_error(ST_ERR_INVALID, "%s[pipeline] tcp sockets are encrypted and "
                                 "authenticated (CurveZMQ) by default: name a key pair (key = "
                                 "FILE, made by `spiketalk keygen FILE`) or allow plain tcp with "
                                 "insecure = yes (or --insecure); docs/SECURITY.md",
                                 at(c, line_of(pp, "transport"), w, sizeof w));
        else if (lacking)
            c->sec_rc = st_error(ST_ERR_INVALID, "%s[stage.%s] has no key and [pipeline] has "
                                 "none for it (key = FILE)", at(c, lacking->line, w, sizeof w),
                                 lacking->name);
        else
            c->sec_rc = st_error(ST_ERR_INVALID, "%s[pipeline] has no key: the supervisor's "
                                 "control bus and report socket are tcp and need a key pair "
                                 "(key = FILE)", at(c, pp->line, w, sizeof w));
        snprintf(c->sec_msg, sizeof c->sec_msg, "%s", st_errmsg());
        st_error_clear();
        return ST_OK;
    }
    /* Every key the configuration names is admitted by default. */
    char known[ST_SEC_MAX_ACCEPT][ST_CURVE_KEY_Z85 + 1];
    int n_known = 0;
    add_key(known, &n_known, c->pub);
    for (int i = 0; i < c->n; i++)
        add_key(known, &n_known, c->st[i].pub);
    for (int i = 0; i < c->n_accept; i++)
        add_key(known, &n_known, c->accept[i]);
    st_sec_stage *ss = &c->sup_sec;
    ss->curve = true;
    snprintf(ss->key_file, sizeof ss->key_file, "%s", c->key);
    snprintf(ss->key_where, sizeof ss->key_where, "%.280s[pipeline] key",
             at(c, c->key_line, w, sizeof w));
    memcpy(ss->public_z85, c->pub, sizeof ss->public_z85);
    memcpy(ss->supervisor_z85, c->pub, sizeof ss->supervisor_z85);
    memcpy(ss->accept, known, sizeof known);
    ss->n_accept = n_known;
    for (int i = 0; i < c->n; i++) {
        cfg_stage *s = &c->st[i];
        st_sec_stage *sec = &s->sec;
        sec->curve = true;
        bool own = s->key[0] != '\0';
        snprintf(sec->key_file, sizeof sec->key_file, "%s", own ? s->key : c->key);
        snprintf(sec->key_where, sizeof sec->key_where, "%.240s[%s%.48s] key",
                 at(c, own ? s->key_line : c->key_line, w, sizeof w), own ? "stage." : "pipeline",
                 own ? s->name : "");
        memcpy(sec->public_z85, own ? s->pub : c->pub, sizeof sec->public_z85);
        memcpy(sec->supervisor_z85, c->pub, sizeof sec->supervisor_z85);
        for (int k = 0; k < s->n_out; k++) {
            const cfg_stage *d = find_stage(c, s->out_name[k]);
            if (d)
                memcpy(sec->server_z85[k], d->pub[0] ? d->pub : c->pub, ST_CURVE_KEY_Z85 + 1);
        }
        if (s->has_accept) {
            memcpy(sec->accept, s->accept, sizeof s->accept);
            sec->n_accept = s->n_accept;
        } else {
            memcpy(sec->accept, known, sizeof known);
            sec->n_accept = n_known;
        }
    }
    return ST_OK;
}

/* `thread = NAME`: the stage runs on the thread of stage NAME, the first of a
   fused chain. The stages of one thread must form a chain in which each
   stage but the first is fed by the one before it alone, and each but the
   last feeds the next one alone. */
static int fuse(st_pipe_config *c)
{
    char w[300];
    for (int i = 0; i < c->n; i++)
        c->st[i].group_head = c->st[i].fused_next = -1;
    for (int i = 0; i < c->n; i++) {
        cfg_stage *s = &c->st[i];
        if (!s->thread[0])
            continue;
        cfg_stage *h = find_stage(c, s->thread);
        if (!h)
            return st_error(ST_ERR_FORMAT, "%s[stage.%s] thread: no stage named '%s' (thread = "
                            "names the first stage of a fused chain)",
                            at(c, s->thread_line, w, sizeof w), s->name, s->thread);
        if (h->thread[0] && strcmp(h->thread, h->name))
            return st_error(ST_ERR_FORMAT, "%s[stage.%s] thread: '%s' runs on the thread of "
                            "'%s': name the first stage of the chain, '%s'",
                            at(c, s->thread_line, w, sizeof w), s->name, h->name, h->thread,
                            h->thread);
        const cfg_stage *apart = s->process || !s->launch ? s : h->process || !h->launch ? h : NULL;
        if (apart)
            return st_error(ST_ERR_FORMAT, "%s[stage.%s] thread: '%s' %s; fused stages are "
                            "threads of the supervisor", at(c, s->thread_line, w, sizeof w),
                            s->name, apart->name, apart->process ? "runs in a process of its own"
                                                                 : "is not launched here");
        s->group_head = (int)(h - c->st);
        h->group_head = (int)(h - c->st);
    }
    for (int i = 0; i < c->n; i++) {
        cfg_stage *h = &c->st[i];
        if (h->group_head != i)
            continue;
        /* Walk the chain from its first stage. */
        cfg_stage *cur = h;
        bool in_chain[ST_PIPE_MAX_STAGES] = {false};
        in_chain[i] = true;
        while (cur->n_out == 1) {
            cfg_stage *d = find_stage(c, cur->out_name[0]);
            if (!d)
                break;
            int di = (int)(d - c->st);
            if (d->group_head != i || in_chain[di] || d->n_inputs != 1)
                break;
            cur->fused_next = di;
            in_chain[di] = true;
            cur = d;
        }
        for (int j = 0; j < c->n; j++) {
            cfg_stage *s = &c->st[j];
            if (s->group_head != i || in_chain[j])
                continue;
            return st_error(ST_ERR_FORMAT, "%s[stage.%s] thread = %s: the stages of one thread "
                            "must be consecutive, each fed by the one before it alone (the chain "
                            "from '%s' ends at '%s', which %s)",
                            at(c, s->thread_line, w, sizeof w), s->name, h->name, h->name,
                            cur->name, cur->n_out == 1 ? "does not feed it alone"
                                       : cur->n_out ? "has several outputs" : "has no output");
        }
    }
    return ST_OK;
}

static int interpret(st_pipe_config *c)
{
    int rc = interpret_pipeline(c);
    if (rc)
        return rc;
    /* `record = FILE` adds a recorder fed by every stage. */
    if (c->n && c->st[c->n - 1].implicit)
        c->n--;
    const char *rec = NULL;
    for (int i = 0; i < c->pipeline.n; i++)
        if (!strcmp(c->pipeline.p[i].key, "record"))
            rec = c->pipeline.p[i].value;
    for (int i = 0; i < c->n; i++)
        if ((rc = interpret_stage(c, &c->st[i])))
            return rc;
    if (rec && *rec) {
        if (c->n == ST_PIPE_MAX_STAGES)
            return st_error(ST_ERR_FORMAT, "%s: record: no room for the recorder (%d stages)",
                            c->origin, ST_PIPE_MAX_STAGES);
        for (int i = 0; i < c->n; i++) {
            cfg_stage *s = &c->st[i];
            if (s->n_out == ST_STAGE_MAX_OUTPUTS)
                return st_error(ST_ERR_FORMAT, "%s: record: stage '%s' has no output left for "
                                "the recorder", c->origin, s->name);
            snprintf(s->out_name[s->n_out], NAME_MAX_, "%s", RECORDER_NAME);
            s->out_transport[s->n_out++] = TR_DEFAULT;
        }
        cfg_stage *r = &c->st[c->n++];
        memset(r, 0, sizeof *r);
        r->implicit = true;
        snprintf(r->name, sizeof r->name, RECORDER_NAME);
        r->line = line_of(&c->pipeline, "record");
        st_params_init(&r->params, c->origin, "stage." RECORDER_NAME, r->line);
        st_params_set(&r->params, "type", "recorder", r->line);
        st_params_set(&r->params, "file", rec, r->line);
        if ((rc = interpret_stage(c, r)))
            return rc;
    }
    /* Edges: every output names a stage; inproc only between threads. */
    for (int i = 0; i < c->n; i++)
        c->st[i].n_inputs = 0;
    for (int i = 0; i < c->n; i++) {
        cfg_stage *s = &c->st[i];
        for (int k = 0; k < s->n_out; k++) {
            cfg_stage *d = find_stage(c, s->out_name[k]);
            char w[300];
            if (!d)
                return st_error(ST_ERR_FORMAT, "%s[stage.%s] out: no stage named '%s'",
                                at(c, s->out_line, w, sizeof w), s->name, s->out_name[k]);
            d->n_inputs++;
            int tr = edge_transport(c, s, k);
            bool s_apart = s->process || !s->launch, d_apart = d->process || !d->launch;
            if (tr == TR_INPROC && (s_apart || d_apart) && !d->listen[0])
                return st_error(ST_ERR_FORMAT, "%s[stage.%s] out: the edge to '%s' is inproc, but "
                                "'%s' runs in a process of its own: use ipc or tcp (out = %s@tcp, "
                                "or transport = tcp)", at(c, s->out_line, w, sizeof w), s->name,
                                d->name, s_apart ? s->name : d->name, d->name);
        }
    }
    if ((rc = fuse(c)))
        return rc;
    if ((rc = security(c)))
        return rc;
    /* Endpoints that depend on run-time choices (a port, a folder) may not
       resolve yet: that is an error only for whoever needs them. */
    c->resolve_rc = resolve(c);
    snprintf(c->resolve_msg, sizeof c->resolve_msg, "%s", c->resolve_rc ? st_errmsg() : "");
    st_error_clear();
    return ST_OK;
}

/* ---- resolution -------------------------------------------------------------- */

static int endpoint(const st_pipe_config *c, const cfg_stage *s, int idx, int tr, char *out)
{
    if (s->listen[0]) {
        snprintf(out, EP_MAX, "%s", s->listen);
        return ST_OK;
    }
    char w[300];
    switch (tr) {
    case TR_INPROC: snprintf(out, EP_MAX, "inproc://st/%s", s->name); return ST_OK;
    case TR_IPC:
        if (!c->ipc_dir[0])
            return st_error(ST_ERR_INVALID, "%sstage '%s' listens on ipc, but [pipeline] has no "
                            "ipc_dir (the supervisor picks one when it starts the pipeline)",
                            at(c, s->line, w, sizeof w), s->name);
        snprintf(out, EP_MAX, "ipc://%s/%s", c->ipc_dir, s->name);
        return ST_OK;
    default: {
        long port = s->port ? s->port : c->base_port ? c->base_port + 2 + idx : 0;
        if (!port || port > 65535)
            return st_error(ST_ERR_INVALID, "%sstage '%s' listens on tcp, but has no port and "
                            "[pipeline] has no base_port (the supervisor picks one when it starts "
                            "the pipeline)", at(c, s->line, w, sizeof w), s->name);
        snprintf(out, EP_MAX, "tcp://%s:%ld", s->host, port);
        return ST_OK;
    }
    }
}

static int resolve(st_pipe_config *c)
{
    int rc;
    for (int i = 0; i < c->n; i++)
        c->st[i].n_binds = 0;
    for (int i = 0; i < c->n; i++) {
        cfg_stage *s = &c->st[i];
        for (int k = 0; k < s->n_out; k++) {
            cfg_stage *d = find_stage(c, s->out_name[k]);
            int di = (int)(d - c->st);
            int tr = edge_transport(c, s, k);
            if ((rc = endpoint(c, d, di, tr, s->outputs[k])))
                return rc;
            bool have = false;
            for (int b = 0; b < d->n_binds; b++)
                have |= !strcmp(d->binds[b], s->outputs[k]);
            if (!have && d->n_binds < ST_STAGE_MAX_BINDS)
                snprintf(d->binds[d->n_binds++], EP_MAX, "%s", s->outputs[k]);
        }
    }
    /* External stages and stages without inputs still get a listening
       endpoint of their own transport, for tools that want to talk to them. */
    bool local = all_in_process(c);
    int bus_tr = local ? TR_INPROC : c->transport == TR_TCP ? TR_TCP : TR_IPC;
    char w[300];
    if (c->control[0])
        snprintf(c->control_ep, EP_MAX, "%s", c->control);
    else if (bus_tr == TR_INPROC)
        snprintf(c->control_ep, EP_MAX, "inproc://st/_control");
    else if (bus_tr == TR_TCP && c->base_port)
        snprintf(c->control_ep, EP_MAX, "tcp://%s:%ld", c->host, c->base_port);
    else if (bus_tr == TR_IPC && c->ipc_dir[0])
        snprintf(c->control_ep, EP_MAX, "ipc://%s/_control", c->ipc_dir);
    else
        return st_error(ST_ERR_INVALID, "%sthe control bus needs %s (the supervisor picks one when "
                        "it starts the pipeline)", at(c, c->pipeline.line, w, sizeof w),
                        bus_tr == TR_TCP ? "a base_port" : "an ipc_dir");
    if (c->report[0])
        snprintf(c->report_ep, EP_MAX, "%s", c->report);
    else if (bus_tr == TR_INPROC)
        snprintf(c->report_ep, EP_MAX, "inproc://st/_report");
    else if (bus_tr == TR_TCP)
        snprintf(c->report_ep, EP_MAX, "tcp://%s:%ld", c->host, c->base_port + 1);
    else
        snprintf(c->report_ep, EP_MAX, "ipc://%s/_report", c->ipc_dir);
    return ST_OK;
}

/* ---- public ------------------------------------------------------------------ */

static st_pipe_config *parse(const char *text, FILE *f, const char *origin, int *err)
{
    int dummy;
    if (!err)
        err = &dummy;
    st_pipe_config *c = calloc(1, sizeof *c);
    if (!c) {
        *err = st_error(ST_ERR_NOMEM, "configuration: out of memory");
        return NULL;
    }
    snprintf(c->origin, sizeof c->origin, "%s", origin ? origin : "<text>");
    st_params_init(&c->pipeline, c->origin, "pipeline", 0);
    parse_ctx x = {.c = c, .text = text, .f = f};
    int line = ini_parse_stream(reader, &x, handler, &x);
    int rc = x.rc;
    if (!rc && x.long_line)
        rc = st_error(ST_ERR_FORMAT, "%s:%d: the line is too long (at most %d characters)",
                      c->origin, x.long_line, ST_PARAM_VALUE_MAX - 10);
    if (!rc && line > 0)
        rc = st_error(ST_ERR_FORMAT, "%s:%d: not 'key = value', a [section] or a comment",
                      c->origin, line);
    if (!rc && line < 0)
        rc = st_error(ST_ERR_NOMEM, "%s: out of memory while parsing", c->origin);
    if (!rc && c->n == 0)
        rc = st_error(ST_ERR_FORMAT, "%s: no stages (add [stage.NAME] sections)", c->origin);
    if (!rc)
        rc = interpret(c);
    if (rc) {
        free(c);
        *err = rc;
        return NULL;
    }
    *err = ST_OK;
    return c;
}

st_pipe_config *st_pipe_config_load(const char *path, int *err)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        int rc = st_error(ST_ERR_NOT_FOUND, "configuration '%s': cannot open it", path);
        if (err)
            *err = rc;
        return NULL;
    }
    st_pipe_config *c = parse(NULL, f, path, err);
    fclose(f);
    if (c)
        c->from_file = true;
    return c;
}

st_pipe_config *st_pipe_config_parse(const char *text, const char *origin, int *err)
{
    return parse(text ? text : "", NULL, origin, err);
}

void st_pipe_config_destroy(st_pipe_config **c_p)
{
    if (!c_p || !*c_p)
        return;
    free(*c_p);
    *c_p = NULL;
}

st_pipe_config *st__pipe_config_dup(const st_pipe_config *c)
{
    st_pipe_config *d = malloc(sizeof *d);
    if (d)
        memcpy(d, c, sizeof *d);
    return d;
}

bool st__pipe_config_from_file(const st_pipe_config *c)
{
    return c->from_file;
}

int st_pipe_config_set(st_pipe_config *c, const char *assignment)
{
    const char *eq = strchr(assignment, '=');
    const char *dot = strchr(assignment, '.');
    /* One line: a line break would let the value add keys and sections to
       the file written for stage processes (found by fuzz/fuzz_config.c). */
    for (const char *p = assignment; *p; p++)
        if ((unsigned char)*p < 0x20 && *p != '\t')
            return st_error(ST_ERR_INVALID, "--set: a control character (0x%02x) at byte %d",
                            (unsigned char)*p, (int)(p - assignment));
    if (!eq || !dot || dot > eq)
        return st_error(ST_ERR_INVALID, "--set '%s': write SECTION.KEY=VALUE (pipeline.hwm=16, "
                        "mic.device=virtual)", assignment);
    char section[NAME_MAX_ + 8], key[ST_PARAM_KEY_MAX];
    const char *sec = assignment;
    if (!strncmp(sec, "stage.", 6) && strchr(sec + 6, '.') && strchr(sec + 6, '.') < eq) {
        sec += 6;
        dot = strchr(sec, '.');
    }
    snprintf(section, sizeof section, "%.*s", (int)(dot - sec), sec);
    snprintf(key, sizeof key, "%.*s", (int)(eq - dot - 1), dot + 1);
    while (*key && key[strlen(key) - 1] == ' ')
        key[strlen(key) - 1] = '\0';
    const char *value = eq + 1;
    while (*value == ' ' || *value == '\t')
        value++;
    /* The written line "key = value" must fit the reader's line, as a line
       of a file does (found by fuzz/fuzz_config.c). */
    if (strlen(key) + 3 + strlen(value) > ST_PARAM_VALUE_MAX - 10)
        return st_error(ST_ERR_INVALID, "--set %s.%s: the line is too long (at most %d characters)",
                        section, key, ST_PARAM_VALUE_MAX - 10);
    size_t vlen = strlen(value);
    if (strstr(value, " ;") || strstr(value, "\t;") ||
        (vlen && (value[vlen - 1] == ' ' || value[vlen - 1] == '\t')))
        return st_error(ST_ERR_INVALID, "--set %s.%s: a value cannot end in a space or hold ' ;' "
                        "(a file could not say it)", section, key);
    st_params *target;
    if (!strcmp(section, "pipeline"))
        target = &c->pipeline;
    else {
        cfg_stage *s = find_stage(c, section);
        if (!s || s->implicit) {
            char list[512] = "";
            size_t len = 0;
            for (int i = 0; i < c->n && len < sizeof list; i++)
                len += (size_t)snprintf(list + len, sizeof list - len, " %s", c->st[i].name);
            return st_error(ST_ERR_NOT_FOUND, "--set %s: no stage named '%s' (the stages are:%s)",
                            assignment, section, list);
        }
        target = &s->params;
    }
    st_pipe_config *backup = st__pipe_config_dup(c);
    if (!backup)
        return st_error(ST_ERR_NOMEM, "--set: out of memory");
    int rc = st_params_set(target, key, value, -1);
    if (!rc)
        rc = interpret(c);
    if (rc) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", st_errmsg());
        memcpy(c, backup, sizeof *c);
        rc = st_error(rc, "%s", msg);
    }
    free(backup);
    return rc;
}

static void write_params(const st_params *p, FILE *out, bool overrides_only)
{
    for (int i = 0; i < p->n; i++)
        if (!overrides_only || p->p[i].line < 0)
            /* "key =;x": a space before ';' or '#' would make it a comment. */
            fprintf(out, "%s =%s%s\n", p->p[i].key, strchr(";#", p->p[i].value[0]) ? "" : " ",
                    p->p[i].value);
}

int st_pipe_config_write(const st_pipe_config *c, FILE *out)
{
    fprintf(out, "; written by spiketalk from %s\n[pipeline]\n", c->origin);
    write_params(&c->pipeline, out, false);
    for (int i = 0; i < c->n; i++) {
        if (c->st[i].implicit)
            continue;
        fprintf(out, "\n[stage.%s]\n", c->st[i].name);
        write_params(&c->st[i].params, out, false);
    }
    return ferror(out) ? st_error(ST_ERR_IO, "configuration: write failed") : ST_OK;
}

/* The --set arguments that turn the file into this configuration. */
int st__pipe_config_overrides(const st_pipe_config *c, char out[][320], int max)
{
    int n = 0;
    for (int i = 0; i < c->pipeline.n && n < max; i++)
        if (c->pipeline.p[i].line < 0)
            snprintf(out[n++], 320, "pipeline.%s=%s", c->pipeline.p[i].key,
                     c->pipeline.p[i].value);
    for (int s = 0; s < c->n; s++) {
        if (c->st[s].implicit)
            continue;
        for (int i = 0; i < c->st[s].params.n && n < max; i++)
            if (c->st[s].params.p[i].line < 0)
                snprintf(out[n++], 320, "%s.%s=%s", c->st[s].name, c->st[s].params.p[i].key,
                         c->st[s].params.p[i].value);
    }
    return n;
}

const char *st_pipe_config_origin(const st_pipe_config *c)
{
    return c->origin;
}
size_t st_pipe_config_stage_count(const st_pipe_config *c)
{
    return (size_t)c->n;
}
const char *st_pipe_config_stage_name(const st_pipe_config *c, size_t i)
{
    return i < (size_t)c->n ? c->st[i].name : NULL;
}
const char *st_pipe_config_stage_type(const st_pipe_config *c, size_t i)
{
    return i < (size_t)c->n ? c->st[i].type : NULL;
}
bool st_pipe_config_stage_process(const st_pipe_config *c, size_t i)
{
    return i < (size_t)c->n && c->st[i].process && c->st[i].launch;
}
bool st_pipe_config_stage_external(const st_pipe_config *c, size_t i)
{
    return i < (size_t)c->n && !c->st[i].launch;
}

/* Depth-first, outputs before the stage itself: sinks come first. */
static void post_order(const st_pipe_config *c, int i, bool *seen, int *order, int *n)
{
    if (seen[i])
        return;
    seen[i] = true;
    const cfg_stage *s = &c->st[i];
    for (int k = 0; k < s->n_out; k++)
        for (int j = 0; j < c->n; j++)
            if (!strcmp(c->st[j].name, s->out_name[k]))
                post_order(c, j, seen, order, n);
    order[(*n)++] = i;
}

void st__pipe_config_settings(const st_pipe_config *c, st__pipe_settings *o)
{
    memset(o, 0, sizeof *o);
    o->transport = c->transport;
    o->base_port = c->base_port;
    o->restarts = c->restarts;
    o->heartbeat_ms = c->heartbeat_ms;
    o->heartbeat_timeout_ms = c->heartbeat_timeout_ms;
    o->start_timeout_s = c->start_timeout_s;
    o->metrics_ms = c->metrics_ms;
    o->orphan_s = c->orphan_s;
    bool local = all_in_process(c);
    if (!local && !c->control[0])
        (c->transport == TR_TCP ? &o->needs_tcp : &o->needs_ipc)[0] = true;
    for (int i = 0; i < c->n; i++) {
        const cfg_stage *s = &c->st[i];
        o->required[i] = s->required;
        o->group_head[i] = s->group_head;
        o->fused_next[i] = s->fused_next;
        if (s->listen[0])
            continue;
        for (int k = 0; k < s->n_out; k++) {
            if (s->fused_next >= 0)
                break; /* a direct call, no socket */
            int tr = edge_transport(c, s, k);
            if (tr == TR_IPC)
                o->needs_ipc = true;
            if (tr == TR_TCP)
                o->needs_tcp = true;
        }
    }
    bool seen[ST_PIPE_MAX_STAGES] = {false};
    int n = 0;
    for (int i = 0; i < c->n; i++)
        post_order(c, i, seen, o->start_order, &n);
    if (o->needs_ipc && c->ipc_dir[0])
        o->needs_ipc = false; /* already chosen */
    if (o->needs_tcp && c->base_port)
        o->needs_tcp = false;
}

int st_pipe_config_stage(const st_pipe_config *c, const char *name, st_stage_config *out)
{
    const cfg_stage *s = NULL;
    for (int i = 0; i < c->n && !s; i++)
        if (!strcmp(c->st[i].name, name))
            s = &c->st[i];
    if (!s)
        return st_error(ST_ERR_NOT_FOUND, "%s: no stage named '%s'", c->origin, name);
    if (c->resolve_rc)
        return st_error(c->resolve_rc, "%s", c->resolve_msg);
    if (c->sec_rc)
        return st_error(c->sec_rc, "%s", c->sec_msg);
    *out = st_stage_default_config();
    out->security = s->sec.curve ? &s->sec : NULL;
    out->name = s->name;
    out->id = (uint16_t)(s - c->st + 1);
    out->stream_id = (uint32_t)s->stream;
    for (int b = 0; b < s->n_binds; b++)
        out->binds[b] = s->binds[b];
    /* A stage nobody feeds still listens on its `listen`, so tools can reach it. */
    if (s->n_binds == 0 && s->listen[0])
        out->binds[0] = s->listen;
    for (int k = 0; k < s->n_out; k++)
        out->outputs[k] = s->outputs[k];
    out->n_inputs = s->n_inputs;
    out->control = c->control_ep;
    out->report = c->report_ep;
    out->hwm = (int)s->hwm;
    out->heartbeat_ms = c->heartbeat_ms;
    out->metrics_ms = c->metrics_ms;
    out->send_timeout_ms = s->send_timeout_ms;
    out->orphan_s = s->process || !s->launch ? c->orphan_s : 0;
    out->shed = s->shed;
    out->tick_ms = s->tick_ms;
    out->spin_us = s->spin_us;
    out->params = &s->params;  /* the runtime's keys are marked used already */
    return ST_OK;
}

const char *st_pipe_config_control(const st_pipe_config *c)
{
    return c->resolve_rc ? NULL : c->control_ep;
}

const char *st_pipe_config_report(const st_pipe_config *c)
{
    return c->resolve_rc ? NULL : c->report_ep;
}

const st_sec_stage *st_pipe_config_security(const st_pipe_config *c)
{
    return c->sup_sec.curve ? &c->sup_sec : NULL;
}

bool st_pipe_config_insecure_tcp(const st_pipe_config *c)
{
    return c->uses_tcp && c->insecure;
}
