/*  snn/train_config.c - the training configuration file: an INI-like text
    read into st_train_config, refusing anything it does not understand
    with the file, line, section and key.

    Why here and not in the CLI: the configuration is the description of a
    training run (data, network, losses, optimizer), which the tests, the
    CLI and any binding read alike; parsing it in the library lets the
    tests check every refusal without running the tool.

    Small files (tens of lines), parsed once; no libinih on Debian 12's
    default install, and the grammar is a dozen lines of code.
*/
#include "train_impl.h"

#include <ctype.h>
#include <stdarg.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { SEC_NONE, SEC_DATA, SEC_LAYER, SEC_SURROGATE, SEC_LOSS, SEC_OPTIMIZER, SEC_TRAIN };

typedef struct {
    const char *origin;
    int line;
    const char *section; /* as written, for messages */
} where;

#define MAX_PENDING 32

typedef struct {
    char key[48];
    char value[128];
    int line;
} pending;

static int bad(const where *w, const char *key, const char *fmt, ...) ST_PRINTF(3, 4);
static int bad(const where *w, const char *key, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (key)
        return st_error(ST_ERR_INVALID, "%s:%d: [%s] %s: %s", w->origin, w->line, w->section, key,
                        msg);
    return st_error(ST_ERR_INVALID, "%s:%d: %s", w->origin, w->line, msg);
}

static int num(const where *w, const char *key, const char *v, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    const double x = strtod(v, &end);
    if (end == v || *end)
        return bad(w, key, "'%s' is not a number", v);
    if (errno || !isfinite(x))
        return bad(w, key, "'%s' is not a finite number", v);
    if (x < lo || x > hi)
        return bad(w, key, "%s is out of range (%g to %g)", v, lo, hi);
    *out = x;
    return ST_OK;
}

static int whole(const where *w, const char *key, const char *v, double lo, double hi,
                 uint64_t *out)
{
    double x;
    int rc = num(w, key, v, lo, hi, &x);
    if (rc != ST_OK)
        return rc;
    if (x != floor(x))
        return bad(w, key, "'%s' is not a whole number", v);
    *out = (uint64_t)x;
    return ST_OK;
}

static int flag(const where *w, const char *key, const char *v, bool *out)
{
    static const char *const yes[] = {"yes", "true", "on", "1"}, *const no[] = {"no", "false",
                                                                                "off", "0"};
    for (int k = 0; k < 4; k++) {
        if (!strcmp(v, yes[k])) {
            *out = true;
            return ST_OK;
        }
        if (!strcmp(v, no[k])) {
            *out = false;
            return ST_OK;
        }
    }
    return bad(w, key, "'%s' is not yes or no", v);
}

static int text(const where *w, const char *key, const char *v, char *out, size_t cap)
{
    if (strlen(v) >= cap)
        return bad(w, key, "longer than %zu characters", cap - 1);
    snprintf(out, cap, "%s", v);
    return ST_OK;
}

static int named(const where *w, const char *key, int rc)
{
    return rc == ST_OK ? ST_OK : bad(w, key, "%s", st_errmsg());
}

/* ---- sections ------------------------------------------------------------------------------ */

static int key_data(st_train_config *c, const where *w, const char *k, const char *v)
{
    st_train_task_params *t = &c->task;
    uint64_t u;
    double x;
    int rc;
    if (!strcmp(k, "task")) {
        st_train_task task;
        if ((rc = named(w, k, st_train_task_from_name(v, &task))) != ST_OK)
            return rc;
        st_train_task_params d = st_train_task_default_params(task);
        /* keep what was given before the task */
        d.samples = t->samples, d.seed = t->seed;
        if (t->channels)
            d.channels = t->channels;
        if (t->steps)
            d.steps = t->steps;
        if (t->classes)
            d.classes = t->classes;
        if (t->rate_background >= 0)
            d.rate_background = t->rate_background;
        if (t->rate_signal >= 0)
            d.rate_signal = t->rate_signal;
        *t = d;
        c->generated = true;
        return ST_OK;
    }
#define WHOLE(name, lo, hi, dst)                                                                   \
    if (!strcmp(k, name)) {                                                                        \
        if ((rc = whole(w, k, v, lo, hi, &u)) != ST_OK)                                           \
            return rc;                                                                             \
        dst = u;                                                                                   \
        return ST_OK;                                                                              \
    }
#define NUM(name, lo, hi, dst)                                                                     \
    if (!strcmp(k, name)) {                                                                        \
        if ((rc = num(w, k, v, lo, hi, &x)) != ST_OK)                                             \
            return rc;                                                                             \
        dst = (float)x;                                                                            \
        return ST_OK;                                                                              \
    }
    WHOLE("samples", 0, 1e9, t->samples);
    WHOLE("valid_samples", 0, 1e9, c->valid_samples);
    WHOLE("steps", 1, 1e7, t->steps);
    WHOLE("channels", 1, 1e6, t->channels);
    WHOLE("classes", 1, 1e6, t->classes);
    WHOLE("seed", 0, 9007199254740992.0, t->seed);
    NUM("rate_background", 0, 1, t->rate_background);
    NUM("rate_signal", 0, 1, t->rate_signal);
    if (!strcmp(k, "file"))
        return text(w, k, v, c->data_path, sizeof c->data_path);
    if (!strcmp(k, "valid_file"))
        return text(w, k, v, c->valid_path, sizeof c->valid_path);
    return bad(w, k, "unknown key; [data] takes task, samples, valid_samples, steps, channels, "
               "classes, rate_background, rate_signal, seed, file, valid_file");
}

static int key_layer(st_train_layer_params *L, const where *w, const char *k, const char *v,
                     pending *pend, size_t *n_pend)
{
    uint64_t u;
    double x;
    int rc;
    if (!strcmp(k, "type")) {
        for (int t = 0; t < ST_TRAIN_N_KINDS; t++)
            if (!strcmp(v, st_train_layer_kind_name((st_train_layer_kind)t))) {
                L->kind = (st_train_layer_kind)t;
                return ST_OK;
            }
        return bad(w, k, "'%s' is not a layer type (dense, conv1d, delay)", v);
    }
    if (!strcmp(k, "model")) {
        st_snn_model mo;
        if ((rc = named(w, k, st_snn_model_from_name(v, &mo))) != ST_OK)
            return rc;
        L->neuron.model = mo;
        return ST_OK;
    }
    WHOLE("neurons", 1, 1e7, L->neurons);
    WHOLE("in_channels", 1, 1e6, L->in_channels);
    WHOLE("out_channels", 1, 1e6, L->out_channels);
    WHOLE("kernel", 1, 1e6, L->kernel);
    WHOLE("stride", 1, 1e6, L->stride);
    WHOLE("padding", 0, 1e6, L->padding);
    NUM("init_scale", 0, 1e6, L->init_scale);
    NUM("rec_scale", 0, 1e6, L->rec_scale);
    NUM("max_delay", 0, 65535, L->max_delay);
    NUM("init_delay", 0, 65535, L->init_delay);
    if (!strcmp(k, "recurrent"))
        return flag(w, k, v, &L->recurrent);
    if (!strcmp(k, "bias"))
        return flag(w, k, v, &L->bias);
    if (!strcmp(k, "train_tau"))
        return flag(w, k, v, &L->train_tau);
    if (!strcmp(k, "train_threshold"))
        return flag(w, k, v, &L->train_threshold);
    if (!strcmp(k, "train_delay"))
        return flag(w, k, v, &L->train_delay);
    if (!strcmp(k, "dt")) {
        if ((rc = num(w, k, v, 1e-9, 10, &x)) != ST_OK)
            return rc;
        L->neuron.dt = x;
        return ST_OK;
    }
    /* a neuron parameter: checked against the model when the section ends */
    if (*n_pend == MAX_PENDING)
        return bad(w, k, "too many neuron parameters in one layer");
    pending *p = &pend[(*n_pend)++];
    snprintf(p->key, sizeof p->key, "%s", k);
    snprintf(p->value, sizeof p->value, "%s", v);
    p->line = w->line;
    return ST_OK;
}

static int end_layer(st_train_layer_params *L, where w, pending *pend, size_t n_pend)
{
    for (size_t k = 0; k < n_pend; k++) {
        w.line = pend[k].line;
        int rc = st_snn_neuron_set_param(&L->neuron, pend[k].key, pend[k].value);
        if (rc == ST_ERR_NOT_FOUND)
            return bad(&w, pend[k].key, "unknown key: not a layer setting (type, neurons, model, "
                       "recurrent, bias, in_channels, out_channels, kernel, stride, padding, "
                       "init_scale, rec_scale, train_tau, train_threshold, dt, max_delay, "
                       "init_delay, train_delay) nor a parameter of model %s (%s)",
                       st_snn_model_name(L->neuron.model), st_errmsg());
        if (rc != ST_OK)
            return bad(&w, pend[k].key, "%s", st_errmsg());
    }
    return ST_OK;
}

static int key_surrogate(st_train_config *c, const where *w, const char *k, const char *v)
{
    double x;
    int rc;
    st_train_params *p = &c->train;
    if (!strcmp(k, "function"))
        return named(w, k, st_train_surrogate_from_name(v, &p->surrogate));
    NUM("alpha", 0, 1e6, p->surrogate_alpha);
    if (!strcmp(k, "detach_reset"))
        return flag(w, k, v, &p->detach_reset);
    if (!strcmp(k, "smooth_forward"))
        return flag(w, k, v, &p->smooth_forward);
    return bad(w, k, "unknown key; [surrogate] takes function, alpha, detach_reset, "
               "smooth_forward");
}

static int key_loss(st_train_config *c, const where *w, const char *k, const char *v)
{
    double x;
    uint64_t u;
    int rc;
    st_train_params *p = &c->train;
    if (!strcmp(k, "type"))
        return named(w, k, st_train_loss_from_name(v, &p->loss));
    WHOLE("blank", 0, 1e6, p->ctc_blank);
    NUM("rate_reg", 0, 1e6, p->rate_reg);
    NUM("rate_target", 0, 1, p->rate_target);
    WHOLE("onset_steps", 0, 100000, p->onset_steps);
    NUM("onset_weight", 0, 1e6, p->onset_weight);
    WHOLE("offset_steps", 0, 100000, p->offset_steps);
    NUM("offset_weight", 0, 1e6, p->offset_weight);
    return bad(w, k, "unknown key; [loss] takes type, blank, rate_reg, rate_target, onset_steps, "
               "onset_weight, offset_steps, offset_weight");
}

static int key_optimizer(st_train_config *c, const where *w, const char *k, const char *v)
{
    double x;
    uint64_t u;
    int rc;
    st_train_params *p = &c->train;
    if (!strcmp(k, "type"))
        return named(w, k, st_train_optimizer_from_name(v, &p->optimizer));
    if (!strcmp(k, "schedule")) {
        if (!strcmp(v, "cosine") || !strcmp(v, "constant")) {
            c->cosine = !strcmp(v, "cosine");
            return ST_OK;
        }
        return bad(w, k, "'%s' is not a schedule (cosine, constant)", v);
    }
    NUM("lr", 1e-12, 10, p->lr);
    NUM("lr_min", 0, 10, p->lr_min);
    WHOLE("warmup", 0, 1e9, p->warmup_steps);
    NUM("beta1", 0, 0.999999, p->beta1);
    NUM("beta2", 0, 0.999999, p->beta2);
    NUM("eps", 1e-30, 1, p->eps);
    NUM("weight_decay", 0, 10, p->weight_decay);
    NUM("clip", 0, 1e30, p->clip_norm);
    return bad(w, k, "unknown key; [optimizer] takes type, lr, lr_min, schedule, warmup, beta1, "
               "beta2, eps, weight_decay, clip");
}

static int key_train(st_train_config *c, const where *w, const char *k, const char *v)
{
    uint64_t u;
    double x;
    int rc;
    st_train_params *p = &c->train;
    WHOLE("epochs", 1, 1e7, c->epochs);
    WHOLE("batch", 1, 1e6, p->batch);
    WHOLE("chunk", 1, 1e6, p->chunk);
    WHOLE("threads", 0, 256, p->threads);
    WHOLE("mask_freq", 0, 64, p->mask_freq);
    WHOLE("mask_freq_width", 0, 4096, p->mask_freq_width);
    WHOLE("mask_time", 0, 64, p->mask_time);
    WHOLE("mask_time_width", 0, 100000, p->mask_time_width);
    NUM("warp_time", 0, 0.5, p->warp_time);
    NUM("warp_freq", 0, 0.5, p->warp_freq);
    if (!strcmp(k, "seed")) {
        if ((rc = whole(w, k, v, 0, 9007199254740992.0, &u)) != ST_OK)
            return rc;
        p->seed = c->init_seed = u;
        return ST_OK;
    }
    if (!strcmp(k, "log"))
        return text(w, k, v, c->log_path, sizeof c->log_path);
    if (!strcmp(k, "checkpoint"))
        return text(w, k, v, c->checkpoint_path, sizeof c->checkpoint_path);
    if (!strcmp(k, "export"))
        return text(w, k, v, c->export_path, sizeof c->export_path);
    if (!strcmp(k, "export_nir"))
        return text(w, k, v, c->export_nir_path, sizeof c->export_nir_path);
    return bad(w, k, "unknown key; [train] takes epochs, batch, chunk, threads, mask_freq, "
               "mask_freq_width, mask_time, mask_time_width, warp_time, warp_freq, seed, log, "
               "checkpoint, export, export_nir");
#undef WHOLE
#undef NUM
}

/* ---- the file ---------------------------------------------------------------------------- */

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

int st_train_config_parse(const char *text_in, const char *origin, st_train_config *out)
{
    st_train_config c;
    memset(&c, 0, sizeof c);
    c.task = st_train_task_default_params(ST_TRAIN_TASK_BANDS);
    c.task.channels = c.task.steps = c.task.classes = 0; /* 0: the task's default */
    c.task.rate_background = c.task.rate_signal = -1;
    c.train = st_train_default_params();
    c.cosine = true;
    c.epochs = 10;
    c.init_seed = c.train.seed;
    where w = {.origin = origin ? origin : "<config>", .line = 0, .section = ""};
    pending pend[MAX_PENDING];
    size_t n_pend = 0;
    int sec = SEC_NONE, rc = ST_OK;
    char secname[80] = "";
    const char *p = text_in;
    bool seen_data = false;
    while (*p && rc == ST_OK) {
        const char *nl = strchr(p, '\n');
        const size_t len = nl ? (size_t)(nl - p) : strlen(p);
        char buf[1024];
        w.line++;
        if (len >= sizeof buf) {
            rc = bad(&w, NULL, "line longer than %zu characters", sizeof buf - 1);
            break;
        }
        memcpy(buf, p, len);
        buf[len] = '\0';
        p += len + (nl ? 1 : 0);
        /* comments: a line starting with # or ;, or " #" / " ;" after a value */
        for (char *q = buf; *q; q++)
            if ((*q == '#' || *q == ';') && (q == buf || isspace((unsigned char)q[-1]))) {
                *q = '\0';
                break;
            }
        char *line = trim(buf);
        if (!*line)
            continue;
        if (*line == '[') {
            char *close = strchr(line, ']');
            if (!close || trim(close + 1)[0]) {
                rc = bad(&w, NULL, "a section header is [name]: '%s'", line);
                break;
            }
            if (sec == SEC_LAYER && (rc = end_layer(&c.layers[c.n_layers - 1], w, pend,
                                                    n_pend)) != ST_OK)
                break;
            n_pend = 0;
            *close = '\0';
            char *name = trim(line + 1);
            snprintf(secname, sizeof secname, "%s", name);
            w.section = secname;
            const bool is_layer =
                !strncmp(name, "layer", 5) && (name[5] == '\0' || isspace((unsigned char)name[5]));
            if (is_layer) {
                if (c.n_layers == ST_TRAIN_MAX_LAYERS) {
                    rc = bad(&w, NULL, "more than %d layers", ST_TRAIN_MAX_LAYERS);
                    break;
                }
                st_train_layer_params *L = &c.layers[c.n_layers++];
                *L = st_train_layer_default_params(ST_TRAIN_DENSE);
                const char *lname = trim(name + 5);
                if (strlen(lname) >= sizeof L->name) {
                    rc = bad(&w, NULL, "layer name '%s' is longer than %zu characters", lname,
                             sizeof L->name - 1);
                    break;
                }
                snprintf(L->name, sizeof L->name, "%s", lname);
                sec = SEC_LAYER;
            } else if (!strcmp(name, "data")) {
                sec = SEC_DATA;
                seen_data = true;
            } else if (!strcmp(name, "surrogate"))
                sec = SEC_SURROGATE;
            else if (!strcmp(name, "loss"))
                sec = SEC_LOSS;
            else if (!strcmp(name, "optimizer"))
                sec = SEC_OPTIMIZER;
            else if (!strcmp(name, "train"))
                sec = SEC_TRAIN;
            else {
                rc = bad(&w, NULL, "unknown section [%s]; the sections are [data], [layer NAME], "
                         "[surrogate], [loss], [optimizer], [train]", name);
                break;
            }
            continue;
        }
        char *eq = strchr(line, '=');
        if (!eq) {
            rc = bad(&w, NULL, "expected 'key = value', got '%s'", line);
            break;
        }
        *eq = '\0';
        char *key = trim(line), *val = trim(eq + 1);
        if (!*key || !*val) {
            rc = bad(&w, *key ? key : NULL, "%s", *key ? "no value" : "no key before '='");
            break;
        }
        switch (sec) {
        case SEC_DATA: rc = key_data(&c, &w, key, val); break;
        case SEC_LAYER:
            rc = key_layer(&c.layers[c.n_layers - 1], &w, key, val, pend, &n_pend);
            break;
        case SEC_SURROGATE: rc = key_surrogate(&c, &w, key, val); break;
        case SEC_LOSS: rc = key_loss(&c, &w, key, val); break;
        case SEC_OPTIMIZER: rc = key_optimizer(&c, &w, key, val); break;
        case SEC_TRAIN: rc = key_train(&c, &w, key, val); break;
        default: rc = bad(&w, key, "is outside any section: start with [data]"); break;
        }
    }
    if (rc == ST_OK && sec == SEC_LAYER)
        rc = end_layer(&c.layers[c.n_layers - 1], w, pend, n_pend);
    if (rc != ST_OK)
        return rc;
    w.line = 0;
    if (!seen_data || (!c.generated && !c.data_path[0]))
        return st_error(ST_ERR_INVALID, "%s: no data: give [data] task = bands|xor|sequence, or "
                        "[data] file = PATH", w.origin);
    if (c.generated && c.data_path[0])
        return st_error(ST_ERR_INVALID, "%s: [data] has both a task and a file; keep one",
                        w.origin);
    if (c.n_layers == 0)
        return st_error(ST_ERR_INVALID, "%s: no layers: add [layer NAME] sections, the last one "
                        "the read-out", w.origin);
    if (c.generated) {
        st_train_task_params d = st_train_task_default_params(c.task.task);
        if (!c.task.channels)
            c.task.channels = d.channels;
        if (!c.task.steps)
            c.task.steps = d.steps;
        if (!c.task.classes)
            c.task.classes = d.classes;
        if (c.task.rate_background < 0)
            c.task.rate_background = d.rate_background;
        if (c.task.rate_signal < 0)
            c.task.rate_signal = d.rate_signal;
    }
    *out = c;
    return ST_OK;
}

int st_train_config_load(const char *path, st_train_config *out, char **text_out)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return st_error(ST_ERR_IO, "cannot open the configuration '%s'", path);
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    while (buf) {
        const size_t got = fread(buf + len, 1, cap - len - 1, f);
        len += got;
        if (got == 0)
            break;
        if (len + 1 == cap) {
            char *nb = cap < (1u << 24) ? realloc(buf, cap * 2) : NULL;
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
    }
    const bool err = ferror(f);
    fclose(f);
    if (!buf || err) {
        free(buf);
        return st_error(err ? ST_ERR_IO : ST_ERR_NOMEM, "cannot read the configuration '%s'",
                        path);
    }
    buf[len] = '\0';
    const char *base = strrchr(path, '/');
    int rc = st_train_config_parse(buf, base ? base + 1 : path, out);
    if (rc == ST_OK && text_out)
        *text_out = buf;
    else
        free(buf);
    return rc;
}
