/*  snn/asr.c - the word recognizer (snn/asr.h): model file, clip
    classification, the streaming decision rule.

    Per frame: normalise 40 features, one st_snn_step of the exported net
    (recurrent LSNN + LI read-out, a few tens of thousands of weights); the
    stream of a max/mean model re-runs its last second every 10 frames (10
    steps a frame, about 0.2 % of one core) and takes a softmax over ~40
    classes; the stream of a ctc model steps once a frame and takes the
    softmax every frame. The per-stream buffers are made once in
    st_asr_stream_new.
*/
#include "snn/asr.h"

#include "base/base.h"

#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct st_asr {
    st_snn_net *net;
    int out_node;
    size_t n_classes, n_features;
    char (*words)[ST_ASR_WORD_LEN];
    float *mean, *std;
    st_asr_frontend_info fe;
    st_asr_pool pool;
    size_t n_views;                /* the net's inputs: one view of the features each */
    bool view_cmn[ST_ASR_MAX_VIEWS]; /* that view less the mean of the frames ("cmn") */
    size_t in_len;                 /* n_views x n_features: what st_snn_step takes */
    bool has_stream;               /* tuned decision rule stored ("stream") */
    float *lm;                     /* ctc: the word bigram ("lm"), NULL none */
    st_asr_lm_params lm_p;         /* its settings ("lm_rule") */
    st_asr_decider_params stream_p;
    size_t stream_tail;
};

struct st_asr_stream {
    const st_asr *asr;
    st_snn_state *state;
    float *prob;
    float *ring;       /* the last ST_ASR_WINDOW normalised frames (ctc: replayed on a restart) */
    float *win;        /* cmn or views: the window in time order as the net takes it */
    size_t count;      /* frames pushed since reset */
    uint64_t first;    /* stamp of the first frame */
    size_t tail;       /* frames at the window's end that are pooled; 0 all */
    st_asr_decider dec;
    /* ctc */
    uint64_t *rise;    /* per class: first stamp of its current rise, RISE_NONE */
    size_t quiet_run;  /* frames in a row with the blank >= ST_ASR_CTC_QUIET_P */
    size_t resets;     /* network restarts after a long silence */
    st_asr_beam *beam; /* the decoder when it has a bigram, else NULL: the decider */
};

#define RISE_NONE UINT64_MAX

void st_asr_destroy(st_asr **self_p)
{
    if (!self_p || !*self_p)
        return;
    st_asr *a = *self_p;
    st_snn_net_destroy(&a->net);
    free(a->words);
    free(a->mean);
    free(a->std);
    free(a->lm);
    free(a);
    *self_p = NULL;
}

/* The net's input nodes: how many; *each gets their length when they all
   have one, else 0. */
static size_t net_inputs(const st_snn_net *net, size_t *each)
{
    size_t n = 0;
    *each = 0;
    for (size_t k = 0, nodes = st_snn_net_node_count(net); k < nodes; k++) {
        st_snn_node_info in;
        if (st_snn_net_node_info(net, (int)k, &in) != ST_OK || in.kind != ST_SNN_NODE_INPUT)
            continue;
        *each = n == 0 || *each == in.n_out ? in.n_out : 0;
        n++;
    }
    return n;
}

st_asr *st_asr_new(st_snn_net **net_p, const char *const *words, size_t n_classes,
                   const float *feat_mean, const float *feat_std, size_t n_features,
                   const st_asr_frontend_info *fe, int *err)
{
    int rc = ST_ERR_NOMEM;
    st_asr *a = calloc(1, sizeof *a);
    if (!a) {
        st_snn_net_destroy(net_p);
        goto fail;
    }
    a->net = *net_p;
    *net_p = NULL;
    a->out_node = st_snn_net_find(a->net, "output");
    if (a->out_node < 0) {
        rc = st_error(ST_ERR_INVALID, "recognizer: the net has no node 'output'");
        goto fail;
    }
    st_snn_node_info info;
    if (st_snn_net_node_info(a->net, a->out_node, &info) != ST_OK || info.n_out != n_classes) {
        rc = st_error(ST_ERR_INVALID, "recognizer: %zu class names for a net of %zu outputs",
                      n_classes, (size_t)info.n_out);
        goto fail;
    }
    if (n_classes < 3 || n_classes > ST_ASR_MAX_CLASSES) {
        rc = st_error(ST_ERR_INVALID, "recognizer: %zu classes (3 to %d)", n_classes,
                      ST_ASR_MAX_CLASSES);
        goto fail;
    }
    /* each input node of the net takes one view of the n_features */
    size_t each = 0;
    a->n_views = net_inputs(a->net, &each);
    if (!a->n_views) {
        rc = st_error(ST_ERR_INVALID, "recognizer: the net has no input");
        goto fail;
    }
    if (each != n_features || a->n_views > ST_ASR_MAX_VIEWS) {
        rc = st_error(ST_ERR_INVALID, "recognizer: %zu features for a net of %zu inputs taking "
                      "%zu values in all (each of its 1 to %d inputs takes all the features)",
                      n_features, a->n_views, st_snn_net_input_len(a->net), ST_ASR_MAX_VIEWS);
        goto fail;
    }
    a->in_len = a->n_views * n_features;
    if (strcmp(words[0], "_silence_") || strcmp(words[1], "_unknown_")) {
        rc = st_error(ST_ERR_INVALID, "recognizer: classes 0 and 1 must be _silence_, _unknown_");
        goto fail;
    }
    a->n_classes = n_classes;
    a->n_features = n_features;
    a->words = calloc(n_classes, sizeof *a->words);
    a->mean = malloc(n_features * sizeof *a->mean);
    a->std = malloc(n_features * sizeof *a->std);
    if (!a->words || !a->mean || !a->std) {
        rc = ST_ERR_NOMEM;
        goto fail;
    }
    for (size_t k = 0; k < n_classes; k++) {
        size_t len = strlen(words[k]);
        if (len == 0 || len >= ST_ASR_WORD_LEN || strpbrk(words[k], " \t\n")) {
            rc = st_error(ST_ERR_INVALID, "recognizer: bad class name %zu '%s'", k, words[k]);
            goto fail;
        }
        memcpy(a->words[k], words[k], len + 1);
    }
    for (size_t i = 0; i < n_features; i++) {
        if (!(feat_std[i] > 0) || !isfinite(feat_std[i]) || !isfinite(feat_mean[i])) {
            rc = st_error(ST_ERR_INVALID, "recognizer: feature %zu: std %g must be > 0", i,
                          (double)feat_std[i]);
            goto fail;
        }
        a->mean[i] = feat_mean[i];
        a->std[i] = feat_std[i];
    }
    a->fe = fe ? *fe : (st_asr_frontend_info){.n_mels = (int)n_features, .hop_ms = 10, .window_ms = 25};
    return a;
fail:
    st_asr_destroy(&a);
    if (err)
        *err = rc;
    return NULL;
}

int st_asr_save(const st_asr *self, const char *path)
{
    int err = ST_OK;
    st_tensor_file *f = st_tensor_file_new("asr", &err);
    if (!f)
        return err;
    size_t cap = self->n_classes * (ST_ASR_WORD_LEN + 1) + 1, len = 0;
    char *text = malloc(cap);
    char fe[96];
    if (!text) {
        err = ST_ERR_NOMEM;
        goto done;
    }
    for (size_t k = 0; k < self->n_classes; k++)
        len += (size_t)snprintf(text + len, cap - len, "%s\n", self->words[k]);
    snprintf(fe, sizeof fe, "%d %g %g", self->fe.n_mels, self->fe.hop_ms, self->fe.window_ms);
    uint64_t dims[1] = {self->n_features};
    if ((err = st_snn_net_to_file(self->net, f, "net/")) != ST_OK ||
        (err = st_tensor_file_add_string(f, "words", text)) != ST_OK ||
        (err = st_tensor_file_add_string(f, "frontend", fe)) != ST_OK ||
        (err = st_tensor_file_add_string(f, "pool", self->pool == ST_ASR_POOL_CTC    ? "ctc"
                                                    : self->pool == ST_ASR_POOL_MEAN ? "mean"
                                                                                     : "max")) != ST_OK ||
        (err = st_tensor_file_add(f, "feat_mean", ST_DTYPE_F32, 1, dims, self->mean)) != ST_OK ||
        (err = st_tensor_file_add(f, "feat_std", ST_DTYPE_F32, 1, dims, self->std)) != ST_OK)
        goto done;
    if (st_asr_cmn(self)) { /* "clip" (one input) or a view per input: "none,clip" */
        char views[ST_ASR_MAX_VIEWS * 6] = "";
        for (size_t v = 0, o = 0; v < self->n_views; v++)
            o += (size_t)snprintf(views + o, sizeof views - o, "%s%s", v ? "," : "",
                                  self->view_cmn[v] ? "clip" : "none");
        if ((err = st_tensor_file_add_string(f, "cmn", views)) != ST_OK)
            goto done;
    }
    if (self->has_stream) {
        char rule[160];
        const st_asr_decider_params *q = &self->stream_p;
        snprintf(rule, sizeof rule, "on %g off %g min %d max %d refractory %d early %d tail %zu",
                 q->on_threshold, q->off_threshold, q->min_frames, q->max_frames,
                 q->refractory_frames, q->emit_early ? 1 : 0, self->stream_tail);
        if ((err = st_tensor_file_add_string(f, "stream", rule)) != ST_OK)
            goto done;
    }
    if (self->lm) {
        char rule[128];
        uint64_t d2[2] = {self->n_classes, self->n_classes};
        snprintf(rule, sizeof rule, "alpha %g beta %g margin %g beam %d", self->lm_p.alpha,
                 self->lm_p.beta, self->lm_p.margin, self->lm_p.beam);
        if ((err = st_tensor_file_add(f, "lm", ST_DTYPE_F32, 2, d2, self->lm)) != ST_OK ||
            (err = st_tensor_file_add_string(f, "lm_rule", rule)) != ST_OK)
            goto done;
    }
    err = st_tensor_file_save(f, path);
done:
    free(text);
    st_tensor_file_destroy(&f);
    return err;
}

/* The optional bigram: both tensors or neither, C x C log-probabilities. */
static int load_lm(st_asr *a, const st_tensor_file *f, const char *path)
{
    char rule[128];
    bool has_rule = st_tensor_file_string(f, "lm_rule", rule, sizeof rule) == ST_OK;
    st_tensor t;
    uint64_t d2[2] = {a->n_classes, a->n_classes};
    bool has_lm = st_tensor_file_find(f, "lm", &t) == ST_OK;
    if (!has_rule && !has_lm)
        return ST_OK;
    if (!has_rule || !has_lm)
        return st_error(ST_ERR_FORMAT, "'%s': tensor '%s' without '%s'", path,
                        has_lm ? "lm" : "lm_rule", has_lm ? "lm_rule" : "lm");
    int rc = st_tensor_file_expect(f, "lm", ST_DTYPE_F32, 2, d2, &t);
    if (rc != ST_OK)
        return rc;
    st_asr_lm_params p;
    if (sscanf(rule, "alpha %f beta %f margin %f beam %d", &p.alpha, &p.beta, &p.margin,
               &p.beam) != 4)
        return st_error(ST_ERR_FORMAT, "'%s': tensor 'lm_rule': '%s' is not "
                        "'alpha A beta B margin M beam K'", path, rule);
    if (st_asr_set_lm(a, t.data, &p) != ST_OK)
        return st_error(ST_ERR_FORMAT, "'%s': tensors 'lm', 'lm_rule': %s", path, st_errmsg());
    return ST_OK;
}

/* What keeps x out of an ensemble whose member 0 is m0, or NULL. */
static const char *ensemble_misfit(const st_asr *x, const st_asr *m0)
{
    if (!x)
        return "is missing";
    if (x->n_classes != m0->n_classes ||
        memcmp(x->words, m0->words, m0->n_classes * sizeof *x->words))
        return "has other classes than member 0";
    if (x->n_features != m0->n_features ||
        memcmp(x->mean, m0->mean, m0->n_features * sizeof *x->mean) ||
        memcmp(x->std, m0->std, m0->n_features * sizeof *x->std))
        return "has another normalisation than member 0 (train every member on one data folder)";
    if (x->fe.n_mels != m0->fe.n_mels || x->fe.hop_ms != m0->fe.hop_ms ||
        x->fe.window_ms != m0->fe.window_ms)
        return "has another front end than member 0";
    if (x->pool != m0->pool)
        return "pools otherwise than member 0";
    if (x->n_views != 1)
        return "has more than one input (merge the members it was made of)";
    return NULL;
}

st_asr *st_asr_ensemble(const st_asr *const *members, size_t k, int *err)
{
    int rc = ST_OK;
    const st_snn_net **nets = NULL;
    const char **words = NULL;
    int *group = NULL;
    st_snn_net *net = NULL;
    st_asr *a = NULL;
    if (!members || k == 0 || k > 64 || !members[0]) {
        rc = st_error(ST_ERR_INVALID, "recognizer ensemble: 1 to 64 recognizers, not %zu", k);
        goto done;
    }
    const st_asr *m0 = members[0];
    for (size_t m = 0; m < k; m++) {
        const char *what = ensemble_misfit(members[m], m0);
        if (what) {
            rc = st_error(ST_ERR_INVALID, "recognizer ensemble: member %zu %s", m, what);
            goto done;
        }
    }
    /* members that take the features alike read one input: one per view */
    bool view_cmn[ST_ASR_MAX_VIEWS];
    size_t n_views = 0;
    nets = malloc(k * sizeof *nets);
    group = malloc(k * sizeof *group);
    words = malloc(m0->n_classes * sizeof *words);
    if (!nets || !group || !words) {
        rc = st_error(ST_ERR_NOMEM, "out of memory for a recognizer ensemble");
        goto done;
    }
    for (size_t m = 0; m < k; m++) {
        nets[m] = members[m]->net;
        size_t v = 0;
        while (v < n_views && view_cmn[v] != members[m]->view_cmn[0])
            v++;
        if (v == n_views)
            view_cmn[n_views++] = members[m]->view_cmn[0];
        group[m] = (int)v;
    }
    for (size_t c = 0; c < m0->n_classes; c++)
        words[c] = m0->words[c];
    if (!(net = st_snn_net_ensemble_inputs(nets, k, group, n_views, &rc)))
        goto done;
    a = st_asr_new(&net, words, m0->n_classes, m0->mean, m0->std, m0->n_features, &m0->fe, &rc);
    if (!a)
        goto done;
    /* member 0's pooling, stored rule and bigram */
    st_asr_set_pool(a, m0->pool);
    memcpy(a->view_cmn, view_cmn, n_views * sizeof *view_cmn); /* m0's pool is not ctc if any */
    st_asr_set_stream(a, m0->has_stream ? &m0->stream_p : NULL, m0->stream_tail);
    if (m0->lm && (rc = st_asr_set_lm(a, m0->lm, &m0->lm_p)) != ST_OK)
        st_asr_destroy(&a);
done:
    free(nets);
    free(group);
    free(words);
    if (err)
        *err = a ? ST_OK : rc;
    return a;
}

int st_asr_set_lm(st_asr *self, const float *logp, const st_asr_lm_params *p)
{
    if (!logp) {
        free(self->lm);
        self->lm = NULL;
        return ST_OK;
    }
    assert(p);
    int rc = st_asr_lm_check(p, logp, self->n_classes);
    if (rc != ST_OK)
        return rc;
    if (self->pool != ST_ASR_POOL_CTC)
        return st_error(ST_ERR_INVALID, "language model: the recognizer is not a ctc model");
    size_t bytes = self->n_classes * self->n_classes * sizeof *self->lm;
    float *m = self->lm ? self->lm : malloc(bytes);
    if (!m)
        return ST_ERR_NOMEM;
    memcpy(m, logp, bytes);
    self->lm = m;
    self->lm_p = *p;
    return ST_OK;
}

const float *st_asr_lm(const st_asr *self, st_asr_lm_params *p)
{
    if (p && self->lm)
        *p = self->lm_p;
    return self->lm;
}

/* Tensor "cmn": "clip" (every input less the clip's mean) or one word per
   input of the net, "none" or "clip", comma-separated. */
static int load_views(st_asr *a, const char *text, const char *path)
{
    if (!strcmp(text, "clip")) {
        if (st_asr_set_cmn(a, true) != ST_OK)
            return st_error(ST_ERR_FORMAT, "'%s': tensor 'cmn': 'clip' on a ctc model (cmn "
                            "needs whole windows)", path);
        return ST_OK;
    }
    size_t v = 0;
    for (const char *p = text; *p; v++) {
        size_t len = strcspn(p, ",");
        bool clip = len == 4 && !strncmp(p, "clip", 4), none = len == 4 && !strncmp(p, "none", 4);
        if ((!clip && !none) || v >= a->n_views)
            return st_error(ST_ERR_FORMAT, "'%s': tensor 'cmn': '%s' is not 'clip' nor one of "
                            "'none' or 'clip' for each of the net's %zu inputs", path, text,
                            a->n_views);
        if (clip && a->pool == ST_ASR_POOL_CTC)
            return st_error(ST_ERR_FORMAT, "'%s': tensor 'cmn': '%s' on a ctc model (cmn needs "
                            "whole windows)", path, text);
        a->view_cmn[v] = clip;
        p += len + (p[len] == ',');
    }
    if (v != a->n_views)
        return st_error(ST_ERR_FORMAT, "'%s': tensor 'cmn': '%s' names %zu inputs; the net has "
                        "%zu", path, text, v, a->n_views);
    return ST_OK;
}

st_asr *st_asr_load(const char *path, int *err)
{
    int rc = ST_OK;
    st_tensor_file *f = st_tensor_file_load(path, &rc);
    st_asr *a = f ? st_asr_of_file(f, &rc) : NULL;
    st_tensor_file_destroy(&f);
    if (err)
        *err = rc;
    return a;
}

st_asr *st_asr_of_file(const st_tensor_file *f, int *err)
{
    int rc = ST_OK;
    st_asr *a = NULL;
    st_snn_net *net = NULL;
    char *text = NULL;
    const char *path = st_tensor_file_path(f);
    if (strcmp(st_tensor_file_kind(f), "asr")) {
        rc = st_error(ST_ERR_FORMAT, "'%s': a file of kind '%s', not a recognizer ('asr')", path,
                      st_tensor_file_kind(f));
        goto fail;
    }
    net = st_snn_net_from_file(f, "net/", &rc);
    if (!net)
        goto fail;
    size_t n_in = 0; /* the features: what each input of the net takes */
    net_inputs(net, &n_in);
    st_tensor tm, ts;
    uint64_t dims[1] = {n_in};
    if ((rc = st_tensor_file_expect(f, "feat_mean", ST_DTYPE_F32, 1, dims, &tm)) != ST_OK ||
        (rc = st_tensor_file_expect(f, "feat_std", ST_DTYPE_F32, 1, dims, &ts)) != ST_OK)
        goto fail;
    size_t cap = ST_ASR_MAX_CLASSES * (ST_ASR_WORD_LEN + 1) + 1;
    text = malloc(cap);
    if (!text) {
        rc = ST_ERR_NOMEM;
        goto fail;
    }
    char fe_text[96];
    st_asr_frontend_info fe = {.n_mels = (int)n_in, .hop_ms = 10, .window_ms = 25};
    if ((rc = st_tensor_file_string(f, "words", text, cap)) != ST_OK ||
        (rc = st_tensor_file_string(f, "frontend", fe_text, sizeof fe_text)) != ST_OK)
        goto fail;
    if (sscanf(fe_text, "%d %lf %lf", &fe.n_mels, &fe.hop_ms, &fe.window_ms) != 3 ||
        fe.n_mels <= 0 || !(fe.hop_ms > 0) || !(fe.window_ms >= fe.hop_ms)) {
        rc = st_error(ST_ERR_FORMAT, "'%s': tensor 'frontend': bad settings '%s'", path, fe_text);
        goto fail;
    }
    const char *words[ST_ASR_MAX_CLASSES];
    size_t n = 0;
    for (char *save = NULL, *w = strtok_r(text, "\n", &save); w; w = strtok_r(NULL, "\n", &save)) {
        if (n == ST_ASR_MAX_CLASSES) {
            rc = st_error(ST_ERR_FORMAT, "'%s': tensor 'words': too many classes", path);
            goto fail;
        }
        words[n++] = w;
    }
    if (n < 3) {
        rc = st_error(ST_ERR_FORMAT, "'%s': tensor 'words': %zu classes", path, n);
        goto fail;
    }
    a = st_asr_new(&net, words, n, tm.data, ts.data, n_in, &fe, &rc);
    if (!a) {
        rc = st_error(ST_ERR_FORMAT, "'%s': %s", path, st_errmsg());
        goto fail;
    }
    /* the optional settings: absent, the defaults; present, they must read */
    char pool[16], cmn[ST_ASR_MAX_VIEWS * 6 + 16], rule[160];
    st_tensor t;
    bool has_pool = st_tensor_file_find(f, "pool", &t) == ST_OK;
    bool has_cmn = st_tensor_file_find(f, "cmn", &t) == ST_OK;
    bool has_rule = st_tensor_file_find(f, "stream", &t) == ST_OK;
    if ((has_pool && (rc = st_tensor_file_string(f, "pool", pool, sizeof pool)) != ST_OK) ||
        (has_cmn && (rc = st_tensor_file_string(f, "cmn", cmn, sizeof cmn)) != ST_OK) ||
        (has_rule && (rc = st_tensor_file_string(f, "stream", rule, sizeof rule)) != ST_OK)) {
        st_asr_destroy(&a);
        goto fail;
    }
    if (has_pool) {
        if (!strcmp(pool, "mean"))
            a->pool = ST_ASR_POOL_MEAN;
        else if (!strcmp(pool, "ctc"))
            a->pool = ST_ASR_POOL_CTC;
        else if (strcmp(pool, "max")) {
            rc = st_error(ST_ERR_FORMAT, "'%s': tensor 'pool': '%s' is not max, mean or ctc",
                          path, pool);
            st_asr_destroy(&a);
            goto fail;
        }
    }
    if (has_cmn && (rc = load_views(a, cmn, path)) != ST_OK) { /* absent: no view has cmn */
        st_asr_destroy(&a);
        goto fail;
    }
    if (a->pool == ST_ASR_POOL_CTC && a->n_views > 1) {
        rc = st_error(ST_ERR_FORMAT, "'%s': a ctc model with %zu inputs (a ctc model takes "
                      "one)", path, a->n_views);
        st_asr_destroy(&a);
        goto fail;
    }
    if (has_rule) {
        st_asr_decider_params q;
        int early = 0;
        if (sscanf(rule, "on %f off %f min %d max %d refractory %d early %d tail %zu",
                   &q.on_threshold, &q.off_threshold, &q.min_frames, &q.max_frames,
                   &q.refractory_frames, &early, &a->stream_tail) != 7 ||
            q.min_frames < 1 || q.max_frames < q.min_frames || q.refractory_frames < 0) {
            rc = st_error(ST_ERR_FORMAT, "'%s': tensor 'stream': '%s' is not a decision rule",
                          path, rule);
            st_asr_destroy(&a);
            goto fail;
        }
        q.emit_early = early != 0;
        a->stream_p = q;
        a->has_stream = true;
    }
    if ((rc = load_lm(a, f, path)) != ST_OK) {
        st_asr_destroy(&a);
        goto fail;
    }
    st_error_clear();
    free(text);
    if (err)
        *err = ST_OK;
    return a;
fail:
    st_snn_net_destroy(&net);
    free(text);
    if (err)
        *err = rc;
    return NULL;
}

size_t st_asr_classes(const st_asr *self) { return self->n_classes; }

void st_asr_set_stream(st_asr *self, const st_asr_decider_params *p, size_t tail)
{
    self->has_stream = p != NULL;
    if (p)
        self->stream_p = *p;
    self->stream_tail = p ? tail : 0;
}

st_asr_decider_params st_asr_stream_params(const st_asr *self, size_t *tail)
{
    if (tail)
        *tail = self->has_stream ? self->stream_tail : 0;
    if (self->has_stream)
        return self->stream_p;
    return self->pool == ST_ASR_POOL_CTC ? st_asr_stream_ctc_params()
                                         : st_asr_stream_default_params();
}
st_asr_pool st_asr_default_pool(const st_asr *self) { return self->pool; }
void st_asr_set_pool(st_asr *self, st_asr_pool pool) { self->pool = pool; }
bool st_asr_cmn(const st_asr *self)
{
    for (size_t v = 0; v < self->n_views; v++)
        if (self->view_cmn[v])
            return true;
    return false;
}

size_t st_asr_views(const st_asr *self, bool *cmn)
{
    if (cmn)
        memcpy(cmn, self->view_cmn, self->n_views * sizeof *cmn);
    return self->n_views;
}

size_t st_asr_input_len(const st_asr *self) { return self->in_len; }

int st_asr_set_cmn(st_asr *self, bool on)
{
    if (on && self->pool == ST_ASR_POOL_CTC)
        return st_error(ST_ERR_INVALID, "cmn: a ctc model steps frame by frame; the mean of "
                        "the frames it classifies is not known then (set a pool of max or mean)");
    for (size_t v = 0; v < self->n_views; v++)
        self->view_cmn[v] = on;
    return ST_OK;
}
size_t st_asr_features(const st_asr *self) { return self->n_features; }
const st_asr_frontend_info *st_asr_frontend(const st_asr *self) { return &self->fe; }
const st_snn_net *st_asr_net(const st_asr *self) { return self->net; }

const char *st_asr_word(const st_asr *self, size_t k)
{
    return k < self->n_classes ? self->words[k] : NULL;
}

int st_asr_find(const st_asr *self, const char *word)
{
    for (size_t k = 0; k < self->n_classes; k++)
        if (!strcmp(self->words[k], word))
            return (int)k;
    return -1;
}

size_t st_asr_param_count(const st_asr *self)
{
    size_t total = 0;
    size_t nodes = st_snn_net_node_count(self->net);
    for (size_t k = 0; k < nodes; k++) {
        st_snn_node_info info;
        if (st_snn_net_node_info(self->net, (int)k, &info) == ST_OK)
            total += info.n_weights;
    }
    return total;
}

void st_asr_normalise(const st_asr *a, const float *frame, float *x)
{
    for (size_t i = 0; i < a->n_features; i++)
        x[i] = (frame[i] - a->mean[i]) / a->std[i];
}

/* Columns [off, off + nf) of the n rows of x (stride L), each less its
   mean over the rows, feature by feature: no scratch. */
static void subtract_mean_cols(float *x, size_t n, size_t L, size_t off, size_t nf)
{
    for (size_t i = off; i < off + nf && n; i++) {
        float mean = 0;
        for (size_t t = 0; t < n; t++)
            mean += x[t * L + i];
        mean /= (float)n;
        for (size_t t = 0; t < n; t++)
            x[t * L + i] -= mean;
    }
}

/* x (n x in_len) from n normalised frames that lie in its first view's
   columns: the other views copied from them, then each cmn view less its
   mean. */
static void make_views(const st_asr *a, float *x, size_t n)
{
    const size_t nf = a->n_features, L = a->in_len;
    for (size_t t = 0; t < n && a->n_views > 1; t++)
        for (size_t v = 1; v < a->n_views; v++)
            memcpy(x + t * L + v * nf, x + t * L, nf * sizeof *x);
    for (size_t v = 0; v < a->n_views; v++)
        if (a->view_cmn[v])
            subtract_mean_cols(x, n, L, v * nf, nf);
}

void st_asr_normalise_clip(const st_asr *a, const float *frames, size_t n, float *x)
{
    const size_t nf = a->n_features;
    for (size_t t = 0; t < n; t++)
        st_asr_normalise(a, frames + t * nf, x + t * a->in_len);
    make_views(a, x, n);
}

void st_asr_subtract_mean(float *x, size_t n, size_t nf)
{
    subtract_mean_cols(x, n, nf, 0, nf);
}

/* prob = softmax(o) over n classes */
static void softmax(const float *o, size_t n, float *prob)
{
    float m = -INFINITY, sum = 0;
    for (size_t k = 0; k < n; k++)
        m = o[k] > m ? o[k] : m;
    for (size_t k = 0; k < n; k++) {
        prob[k] = expf(o[k] - m);
        sum += prob[k];
    }
    for (size_t k = 0; k < n; k++)
        prob[k] /= sum;
}

/* ctc clip classification: per-frame posteriors summed; the best non-blank
   class, or silence when no frame gives a non-blank class >= ST_ASR_CTC_SPEECH_P. */
static int classify_ctc(const st_asr *self, st_snn_state *s, float *x, const float *frames,
                        size_t n_frames, float *scores)
{
    float prob[ST_ASR_MAX_CLASSES];
    double acc[ST_ASR_MAX_CLASSES] = {0};
    float peak = 0; /* the largest non-blank posterior of any frame */
    for (size_t t = 0; t < n_frames; t++) {
        st_asr_normalise(self, frames + t * self->n_features, x);
        st_snn_step(self->net, s, x);
        softmax(st_snn_state_output(s, self->out_node, NULL), self->n_classes, prob);
        for (size_t k = 0; k < self->n_classes; k++) {
            acc[k] += prob[k];
            if (k != ST_ASR_SILENCE && prob[k] > peak)
                peak = prob[k];
        }
    }
    int best = 1;
    for (size_t k = 0; k < self->n_classes; k++) {
        if (scores)
            scores[k] = n_frames ? (float)(acc[k] / (double)n_frames) : 0.0f;
        if (k >= 2 && acc[k] > acc[best])
            best = (int)k;
    }
    return peak >= ST_ASR_CTC_SPEECH_P ? best : ST_ASR_SILENCE;
}

int st_asr_classify(const st_asr *self, const float *frames, size_t n_frames, st_asr_pool pool,
                    float *scores)
{
    int rc = ST_OK;
    if (pool == ST_ASR_POOL_CTC && self->n_views > 1)
        return st_error(ST_ERR_INVALID, "recognizer: ctc pooling of a model with %zu inputs "
                        "(a ctc model takes one)", self->n_views);
    /* ctc: one frame at a time; else the whole clip as the net takes it
       (cmn needs its mean first) */
    const size_t len = pool == ST_ASR_POOL_CTC ? self->n_features
                                               : (n_frames ? n_frames : 1) * self->in_len;
    st_snn_state *s = st_snn_state_new(self->net, &rc);
    float *xs = malloc(len * sizeof *xs);
    float acc[ST_ASR_MAX_CLASSES];
    if (!s || !xs) {
        st_snn_state_destroy(&s);
        free(xs);
        return rc ? rc : ST_ERR_NOMEM;
    }
    if (pool == ST_ASR_POOL_CTC) {
        int best = classify_ctc(self, s, xs, frames, n_frames, scores);
        st_snn_state_destroy(&s);
        free(xs);
        return best;
    }
    st_asr_normalise_clip(self, frames, n_frames, xs);
    for (size_t k = 0; k < self->n_classes; k++)
        acc[k] = pool == ST_ASR_POOL_MAX ? -INFINITY : 0.0f;
    for (size_t t = 0; t < n_frames; t++) {
        st_snn_step(self->net, s, xs + t * self->in_len);
        const float *o = st_snn_state_output(s, self->out_node, NULL);
        for (size_t k = 0; k < self->n_classes; k++) {
            if (pool == ST_ASR_POOL_MAX)
                acc[k] = o[k] > acc[k] ? o[k] : acc[k];
            else
                acc[k] += o[k];
        }
    }
    int best = 0;
    for (size_t k = 0; k < self->n_classes; k++) {
        if (pool == ST_ASR_POOL_MEAN && n_frames)
            acc[k] /= (float)n_frames;
        if (scores)
            scores[k] = acc[k];
        if (acc[k] > acc[best])
            best = (int)k;
    }
    st_snn_state_destroy(&s);
    free(xs);
    return best;
}

int st_asr_best_speech(const st_asr *self, const float *scores)
{
    int best = 1;
    for (size_t k = 1; k < self->n_classes; k++)
        if (scores[k] > scores[best])
            best = (int)k;
    return best;
}

/* ---- decision rule ---- */

st_asr_decider_params st_asr_decider_default_params(void)
{
    return (st_asr_decider_params){.on_threshold = 0.7f, .off_threshold = 0.4f, .min_frames = 4,
                                   .max_frames = 100, .refractory_frames = 15};
}

st_asr_decider_params st_asr_stream_ctc_params(void)
{
    return (st_asr_decider_params){.on_threshold = 0.5f, .off_threshold = 0.3f, .min_frames = 1,
                                   .max_frames = 1000, .refractory_frames = 0, .emit_early = true};
}

st_asr_decider_params st_asr_stream_default_params(void)
{
    return (st_asr_decider_params){.on_threshold = 0.7f, .off_threshold = 0.5f, .min_frames = 2,
                                   .max_frames = 1000, .refractory_frames = 0, .emit_early = true};
}

void st_asr_decider_init(st_asr_decider *d, const st_asr_decider_params *p, size_t n_classes)
{
    assert(n_classes >= 3);
    st_asr_decider_params copy = *p; /* p may point into d (a reset) */
    memset(d, 0, sizeof *d);
    d->p = copy;
    d->n_classes = n_classes;
    d->cand = -1;
}

static int close_candidate(st_asr_decider *d, uint64_t stamp, st_asr_event *ev)
{
    int emitted = 0;
    if (d->done) {
        d->quiet = d->p.refractory_frames;
    } else if (d->frames >= d->p.min_frames) {
        *ev = (st_asr_event){.word = d->cand, .start_stamp = d->start, .end_stamp = d->last,
                             .decided_stamp = stamp, .score = d->peak};
        emitted = 1;
        d->quiet = d->p.refractory_frames;
    }
    d->cand = -1;
    d->frames = 0;
    d->done = false;
    return emitted;
}

/* The largest class other than silence. */
static int best_speech(const st_asr_decider *d, const float *prob)
{
    int best = 1;
    for (size_t k = 2; k < d->n_classes; k++)
        if (prob[k] > prob[best])
            best = (int)k;
    return best;
}

int st_asr_decider_step(st_asr_decider *d, const float *prob, uint64_t stamp, st_asr_event *ev)
{
    if (d->cand >= 0) {
        float pc = prob[d->cand];
        /* an emitted (emit_early) candidate also ends when another class takes over */
        int other = d->done ? best_speech(d, prob) : d->cand;
        bool taken = other != d->cand && prob[other] >= d->p.on_threshold && prob[other] > pc &&
                     prob[other] >= prob[ST_ASR_SILENCE];
        if (pc >= d->p.off_threshold && !taken) {
            d->frames++;
            d->last = stamp;
            if (pc > d->peak)
                d->peak = pc;
            if (d->p.emit_early && !d->done && d->frames >= d->p.min_frames) {
                *ev = (st_asr_event){.word = d->cand, .start_stamp = d->start, .end_stamp = d->last,
                                     .decided_stamp = stamp, .score = d->peak};
                d->done = true;
                return 1;
            }
            if (d->frames >= d->p.max_frames)
                return close_candidate(d, stamp, ev);
            return 0;
        }
        bool was_done = d->done;
        int got = close_candidate(d, stamp, ev);
        if (got || !was_done || d->quiet > 0)
            return got;
        /* an early-emitted candidate ended: this frame may open the next word */
    }
    if (d->quiet > 0) {
        d->quiet--;
        return 0;
    }
    int best = 0;
    for (size_t k = 1; k < d->n_classes; k++)
        if (prob[k] > prob[best])
            best = (int)k;
    if (best != ST_ASR_SILENCE && prob[best] >= d->p.on_threshold) {
        d->cand = best;
        d->frames = 1;
        d->start = d->last = stamp;
        d->peak = prob[best];
        if (d->p.emit_early && d->p.min_frames <= 1) { /* one frame decides */
            *ev = (st_asr_event){.word = best, .start_stamp = stamp, .end_stamp = stamp,
                                 .decided_stamp = stamp, .score = d->peak};
            d->done = true;
            return 1;
        }
    }
    return 0;
}

int st_asr_decider_flush(st_asr_decider *d, st_asr_event *ev)
{
    if (d->cand < 0)
        return 0;
    return close_candidate(d, d->last, ev);
}

/* ---- streaming ---- */

st_asr_stream *st_asr_stream_new(const st_asr *asr, const st_asr_decider_params *p, int *err)
{
    int rc = ST_ERR_NOMEM;
    st_asr_stream *s = calloc(1, sizeof *s);
    if (!s)
        goto fail;
    if (asr->pool == ST_ASR_POOL_CTC && asr->n_views > 1) {
        rc = st_error(ST_ERR_INVALID, "recognizer stream: a ctc model with %zu inputs (a ctc "
                      "model takes one)", asr->n_views);
        goto fail;
    }
    s->asr = asr;
    s->prob = malloc(asr->n_classes * sizeof *s->prob);
    s->ring = malloc(ST_ASR_WINDOW * asr->n_features * sizeof *s->ring);
    s->rise = malloc(asr->n_classes * sizeof *s->rise);
    s->win = malloc(ST_ASR_WINDOW * asr->in_len * sizeof *s->win);
    if (!s->prob || !s->ring || !s->rise || !s->win)
        goto fail;
    for (size_t k = 0; k < asr->n_classes; k++)
        s->rise[k] = RISE_NONE;
    s->state = st_snn_state_new(asr->net, &rc);
    if (!s->state)
        goto fail;
    size_t tail = 0;
    st_asr_decider_params dp = st_asr_stream_params(asr, &tail);
    if (p)
        dp = *p;
    st_asr_stream_set_tail(s, tail);
    st_asr_decider_init(&s->dec, &dp, asr->n_classes);
    if (asr->lm && (rc = st_asr_stream_set_lm(s, &asr->lm_p)) != ST_OK)
        goto fail;
    return s;
fail:
    st_asr_stream_destroy(&s);
    if (err)
        *err = rc;
    return NULL;
}

void st_asr_stream_destroy(st_asr_stream **self_p)
{
    if (!self_p || !*self_p)
        return;
    st_asr_stream *s = *self_p;
    st_snn_state_destroy(&s->state);
    st_asr_beam_destroy(&s->beam);
    free(s->win);
    free(s->prob);
    free(s->ring);
    free(s->rise);
    free(s);
    *self_p = NULL;
}

void st_asr_stream_set_tail(st_asr_stream *self, size_t frames)
{
    self->tail = frames < ST_ASR_WINDOW ? frames : 0;
}

void st_asr_stream_reset(st_asr_stream *self)
{
    st_snn_state_reset(self->state);
    self->count = 0;
    self->quiet_run = 0;
    self->resets = 0;
    for (size_t k = 0; k < self->asr->n_classes; k++)
        self->rise[k] = RISE_NONE;
    st_asr_decider_init(&self->dec, &self->dec.p, self->asr->n_classes);
    if (self->beam)
        st_asr_beam_reset(self->beam);
}

int st_asr_stream_set_lm(st_asr_stream *self, const st_asr_lm_params *p)
{
    st_asr_beam_destroy(&self->beam);
    if (!p)
        return ST_OK;
    if (self->asr->pool != ST_ASR_POOL_CTC)
        return st_error(ST_ERR_INVALID, "beam search: the recognizer is not a ctc model");
    int rc = ST_OK;
    self->beam = st_asr_beam_new(self->asr->n_classes, self->asr->lm, p, &rc);
    return self->beam ? ST_OK : rc;
}

bool st_asr_stream_uses_lm(const st_asr_stream *self) { return self->beam != NULL; }

size_t st_asr_stream_state_resets(const st_asr_stream *self) { return self->resets; }

/* ctc: one engine step per frame, the state kept (restarted after a long
   silence), every frame's softmax to the decider. */
static int push_ctc(st_asr_stream *self, const float *frame, uint64_t stamp, st_asr_event *ev,
                    float *prob_out)
{
    const st_asr *a = self->asr;
    size_t nf = a->n_features;
    float *x = self->ring + (self->count % ST_ASR_WINDOW) * nf;
    st_asr_normalise(a, frame, x);
    st_snn_step(a->net, self->state, x);
    softmax(st_snn_state_output(self->state, a->out_node, NULL), a->n_classes, self->prob);
    for (size_t k = 0; k < a->n_classes; k++) {
        if (self->prob[k] < ST_ASR_CTC_RISE_P)
            self->rise[k] = RISE_NONE;
        else if (self->rise[k] == RISE_NONE)
            self->rise[k] = stamp;
    }
    if (prob_out)
        memcpy(prob_out, self->prob, a->n_classes * sizeof *prob_out);
    self->count++;
    int got = 0;
    if (self->beam)
        st_asr_beam_step(self->beam, self->prob, stamp, self->rise);
    else
        got = st_asr_decider_step(&self->dec, self->prob, stamp, ev);
    if (got) {
        uint64_t r = self->rise[ev->word];
        ev->end_stamp = ev->decided_stamp;
        ev->start_stamp = r != RISE_NONE && r <= ev->decided_stamp ? r : ev->decided_stamp;
    }
    /* a second of silence: start again from a fresh state run over the last
       ST_ASR_CTC_REPLAY_FRAMES frames heard (the training condition: a fresh
       state, a short lead of silence). The replay keeps the start of a word
       the net has not named yet: the blank stays >= QUIET_P well into a
       word, and a bare restart on such a frame erased the word's start
       ("hello." after 0.8-0.9 s of silence was not heard; models/README.md) */
    self->quiet_run = self->prob[ST_ASR_SILENCE] >= ST_ASR_CTC_QUIET_P ? self->quiet_run + 1 : 0;
    if (self->quiet_run >= ST_ASR_CTC_RESET_FRAMES) {
        st_snn_state_reset(self->state);
        size_t k = self->count < ST_ASR_CTC_REPLAY_FRAMES ? self->count : ST_ASR_CTC_REPLAY_FRAMES;
        for (size_t t = self->count - k; t < self->count; t++)
            st_snn_step(a->net, self->state, self->ring + (t % ST_ASR_WINDOW) * nf);
        self->quiet_run = 0;
        self->resets++;
        if (self->beam) /* a new request: the bigram starts over */
            st_asr_beam_finish(self->beam, false);
    }
    return self->beam ? st_asr_beam_next(self->beam, ev) : got;
}

int st_asr_stream_push(st_asr_stream *self, const float *frame, uint64_t stamp,
                       st_asr_event *ev, float *prob_out)
{
    const st_asr *a = self->asr;
    if (a->pool == ST_ASR_POOL_CTC)
        return push_ctc(self, frame, stamp, ev, prob_out);
    size_t nf = a->n_features;
    if (self->count == 0)
        self->first = stamp;
    st_asr_normalise(a, frame, self->ring + (self->count % ST_ASR_WINDOW) * nf);
    self->count++;
    if (self->count % ST_ASR_STRIDE != 0 || self->count < 30)
        return 0;
    /* the last second (or what there is of it) from a fresh state */
    size_t n = self->count < ST_ASR_WINDOW ? self->count : ST_ASR_WINDOW;
    st_snn_state_reset(self->state);
    float acc[ST_ASR_MAX_CLASSES];
    for (size_t k = 0; k < a->n_classes; k++)
        acc[k] = a->pool == ST_ASR_POOL_MAX ? -INFINITY : 0.0f;
    size_t pool_from = self->tail && self->tail < n ? self->count - self->tail : self->count - n;
    const size_t t0 = self->count - n; /* the window's first frame */
    const bool direct = a->n_views == 1 && !a->view_cmn[0]; /* the ring is what the net takes */
    if (!direct) { /* the window as a clip in training: in time order, its views made */
        for (size_t t = t0; t < self->count; t++)
            memcpy(self->win + (t - t0) * a->in_len, self->ring + (t % ST_ASR_WINDOW) * nf,
                   nf * sizeof *self->win);
        make_views(a, self->win, n);
    }
    for (size_t t = t0; t < self->count; t++) {
        const float *x = direct ? self->ring + (t % ST_ASR_WINDOW) * nf
                                : self->win + (t - t0) * a->in_len;
        st_snn_step(a->net, self->state, x);
        if (t < pool_from)
            continue;
        const float *o = st_snn_state_output(self->state, a->out_node, NULL);
        for (size_t k = 0; k < a->n_classes; k++)
            acc[k] = a->pool == ST_ASR_POOL_MAX ? (o[k] > acc[k] ? o[k] : acc[k]) : acc[k] + o[k];
    }
    float m = -INFINITY, sum = 0;
    for (size_t k = 0; k < a->n_classes; k++) {
        if (a->pool == ST_ASR_POOL_MEAN)
            acc[k] /= (float)(self->count - pool_from);
        m = acc[k] > m ? acc[k] : m;
    }
    for (size_t k = 0; k < a->n_classes; k++) {
        self->prob[k] = expf(acc[k] - m);
        sum += self->prob[k];
    }
    for (size_t k = 0; k < a->n_classes; k++)
        self->prob[k] /= sum;
    if (prob_out)
        memcpy(prob_out, self->prob, a->n_classes * sizeof *prob_out);
    int got = st_asr_decider_step(&self->dec, self->prob, stamp, ev);
    if (got) {
        uint64_t half = (uint64_t)(a->fe.hop_ms * 1e-3 * 16000 * ST_ASR_WINDOW / 2);
        ev->end_stamp = ev->decided_stamp;
        ev->start_stamp = ev->decided_stamp - self->first > half ? ev->decided_stamp - half : self->first;
    }
    return got;
}

int st_asr_stream_flush(st_asr_stream *self, st_asr_event *ev)
{
    if (self->beam) {
        if (st_asr_beam_next(self->beam, ev))
            return 1;
        st_asr_beam_finish(self->beam, true);
        return st_asr_beam_next(self->beam, ev);
    }
    if (self->dec.done)
        return 0;
    return st_asr_decider_flush(&self->dec, ev);
}
