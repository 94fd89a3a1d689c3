/*  snn/asr_beam.c - the CTC prefix beam search with a word bigram
    (snn/asr.h "st_asr_beam"): the stream's decoder for a ctc model that
    carries a language model. Touches only its own buffers, made once in
    st_asr_beam_new.

    Why not a library: the CTC decoders that exist (flashlight's, kenlm with
    pyctcdecode, torchaudio's) are C++ or Python, decode characters or
    subwords through a lexicon, and allocate as they go. Here the labels are
    ~40 whole words, the beam 8 and the LM a bigram over those labels: a
    few hundred candidates a frame, preallocated.

    Per frame, every hypothesis is kept (the blank, or its last label
    again) and extended by each label whose posterior reaches
    ST_ASR_BEAM_PRUNE_P; candidates that reach the same label sequence
    merge (a 64-bit hash of the sequence, its length and last label); the
    `beam` best by log P(acoustics) + alpha * log P_lm + beta per label
    survive (beta pays for each label: a CTC net that is unsure leaves the
    blank on top, and the bonus lets the LM recover a word the blank
    hides). A word is committed - emitted - once every hypothesis within
    `margin` of the best holds it at the same place among its words
    ("_unknown_" labels are scored, never emitted); hypotheses that
    disagree with a committed word are dropped. st_asr_beam_finish commits
    the best hypothesis whole (with the LM's end of sentence) and starts
    over from it.
*/
#include "snn/asr.h"

#include "base/base.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LABELS 48   /* labels a hypothesis holds between two finishes */
#define QUEUE 128       /* committed words waiting for st_asr_beam_next */
#define NEG (-1e30)

typedef struct {
    int n;                      /* labels */
    int16_t lab[MAX_LABELS];
    uint64_t start[MAX_LABELS]; /* the label's rise (st_asr_beam_step's rise) */
    uint64_t end[MAX_LABELS];   /* the frame that added it */
    float p[MAX_LABELS];        /* its posterior there */
    int64_t at[MAX_LABELS];     /* its frame (st_asr_beam's count) */
    double pb, pnb;             /* log P(frames | labels), ending in a blank / not */
    double lm;                  /* alpha * log P_lm + beta * n */
    uint64_t hash;
} hyp;

typedef struct {
    int parent;                 /* hypothesis it comes from */
    int label;                  /* the label it adds, -1 none */
    int len, last;              /* its length and last label (the merge check) */
    double pb, pnb, lm;
    uint64_t hash;
} cand;

struct st_asr_beam {
    size_t n_classes;
    float *logp;                /* [n_classes][n_classes], copied */
    st_asr_lm_params p;
    hyp *h, *h2;
    int nh;
    cand *c;
    int nc, cap;
    int *slot;                  /* hash slots: candidate index + 1, 0 free */
    size_t table;               /* their count: a power of two >= 2 x cap */
    int *used;                  /* slots filled this frame */
    int *active;                /* labels over the prune threshold this frame */
    int ctx;                    /* the label before the hypotheses' first, 0 the start */
    int64_t ctx_at;             /* its frame (the repeat rule across a finish) */
    int committed;              /* words (labels >= 2) of every hypothesis emitted */
    int64_t frame;              /* frames stepped */
    int track_w;                /* the best hypothesis's next word to commit, -1 none */
    int64_t track_at, track_since; /* its peak frame; since when it has been so */
    uint64_t last_stamp;
    st_asr_event q[QUEUE];
    int qh, qn;
    size_t dropped;             /* committed words lost to a full queue */
};

static double lae(double a, double b)
{
    if (a < b) {
        double t = a;
        a = b;
        b = t;
    }
    return b <= NEG ? a : a + log1p(exp(b - a));
}

static uint64_t mix(uint64_t h, int label)
{
    h ^= (uint64_t)(label + 1);
    h *= 0x100000001b3ull;
    return h ^ (h >> 29);
}

#define HASH_START 0xcbf29ce484222325ull

st_asr_lm_params st_asr_lm_default_params(void)
{
    return (st_asr_lm_params){.alpha = 0.5f, .beta = 2.0f, .margin = 0.5f, .beam = 8};
}

int st_asr_lm_check(const st_asr_lm_params *p, const float *logp, size_t n_classes)
{
    if (!(p->alpha >= 0 && p->alpha <= 10) || !(p->beta >= -20 && p->beta <= 20) ||
        !(p->margin >= 0 && p->margin <= 50) || p->beam < 1 || p->beam > ST_ASR_BEAM_MAX)
        return st_error(ST_ERR_INVALID,
                        "language model: alpha %g (0-10), beta %g (-20-20), margin %g (0-50), "
                        "beam %d (1-%d)",
                        (double)p->alpha, (double)p->beta, (double)p->margin, p->beam,
                        ST_ASR_BEAM_MAX);
    for (size_t i = 0; logp && i < n_classes * n_classes; i++)
        if (!(logp[i] <= 0) || !isfinite(logp[i]))
            return st_error(ST_ERR_INVALID,
                            "language model: log-probability %g at [%zu][%zu] (finite, <= 0)",
                            (double)logp[i], i / n_classes, i % n_classes);
    return ST_OK;
}

void st_asr_beam_destroy(st_asr_beam **self_p)
{
    if (!self_p || !*self_p)
        return;
    st_asr_beam *b = *self_p;
    free(b->logp);
    free(b->h);
    free(b->h2);
    free(b->c);
    free(b->slot);
    free(b->used);
    free(b->active);
    free(b);
    *self_p = NULL;
}

st_asr_beam *st_asr_beam_new(size_t n_classes, const float *logp, const st_asr_lm_params *p,
                             int *err)
{
    int rc = ST_ERR_NOMEM;
    st_asr_beam *b = NULL;
    if (n_classes < 3 || n_classes > ST_ASR_MAX_CLASSES) {
        rc = st_error(ST_ERR_INVALID, "beam search: %zu classes (3 to %d)", n_classes,
                      ST_ASR_MAX_CLASSES);
        goto fail;
    }
    if ((rc = st_asr_lm_check(p, logp, n_classes)) != ST_OK)
        goto fail;
    rc = ST_ERR_NOMEM;
    if (!(b = calloc(1, sizeof *b)))
        goto fail;
    b->n_classes = n_classes;
    b->p = *p;
    b->cap = p->beam * (int)n_classes;
    b->logp = malloc(n_classes * n_classes * sizeof *b->logp);
    b->h = malloc((size_t)p->beam * sizeof *b->h);
    b->h2 = malloc((size_t)p->beam * sizeof *b->h2);
    b->c = malloc((size_t)b->cap * sizeof *b->c);
    for (b->table = 64; b->table < 2 * (size_t)b->cap; b->table *= 2)
        ;
    b->slot = calloc(b->table, sizeof *b->slot);
    b->used = malloc((size_t)b->cap * sizeof *b->used);
    b->active = malloc(n_classes * sizeof *b->active);
    if (!b->logp || !b->h || !b->h2 || !b->c || !b->slot || !b->used || !b->active)
        goto fail;
    if (logp)
        memcpy(b->logp, logp, n_classes * n_classes * sizeof *b->logp);
    else /* no LM: every label alike */
        for (size_t i = 0; i < n_classes * n_classes; i++)
            b->logp[i] = 0;
    st_asr_beam_reset(b);
    return b;
fail:
    st_asr_beam_destroy(&b);
    if (err)
        *err = rc;
    return NULL;
}

static void start_over(st_asr_beam *b, int ctx, int64_t ctx_at)
{
    b->ctx_at = ctx_at;
    b->nh = 1;
    b->h[0].n = 0;
    b->h[0].pb = 0;
    b->h[0].pnb = NEG;
    b->h[0].lm = 0;
    b->h[0].hash = HASH_START;
    b->ctx = ctx;
    b->committed = 0;
    b->track_w = -1;
}

void st_asr_beam_reset(st_asr_beam *self)
{
    start_over(self, 0, 0);
    self->qh = self->qn = 0;
}

static double total(const hyp *y) { return lae(y->pb, y->pnb) + y->lm; }

/* The k-th word (label >= 2) of y: its index in y->lab, or -1. */
static int word_at(const hyp *y, int k)
{
    for (int i = 0; i < y->n; i++)
        if (y->lab[i] >= 2 && k-- == 0)
            return i;
    return -1;
}

static void enqueue(st_asr_beam *b, const hyp *y, int i, uint64_t decided)
{
    if (y->p[i] < ST_ASR_BEAM_MIN_PEAK)
        return; /* scored, kept as context, never said to be heard */
    if (b->qn == QUEUE) {
        b->dropped++;
        return;
    }
    b->q[(b->qh + b->qn++) % QUEUE] =
        (st_asr_event){.word = y->lab[i], .start_stamp = y->start[i], .end_stamp = y->end[i],
                       .decided_stamp = decided, .score = y->p[i]};
}

static int best_hyp(const st_asr_beam *b, bool at_end)
{
    int best = 0;
    double bs = NEG;
    for (int i = 0; i < b->nh; i++) {
        const hyp *y = &b->h[i];
        double s = total(y);
        if (at_end)
            s += b->p.alpha * b->logp[(size_t)(y->n ? y->lab[y->n - 1] : b->ctx) * b->n_classes];
        if (s > bs)
            bs = s, best = i;
    }
    return best;
}

/* Adds a candidate or merges it into the one with the same label sequence. */
static void add(st_asr_beam *b, const cand *x)
{
    size_t s = (size_t)(x->hash ^ (x->hash >> 32)) & (b->table - 1);
    while (b->slot[s]) {
        cand *o = &b->c[b->slot[s] - 1];
        if (o->hash == x->hash && o->len == x->len && o->last == x->last) {
            o->pb = lae(o->pb, x->pb);
            o->pnb = lae(o->pnb, x->pnb);
            if (x->label < 0) { /* keep the hypothesis as it is (its stamps) */
                o->parent = x->parent;
                o->label = -1;
                o->lm = x->lm;
            }
            return;
        }
        s = (s + 1) & (b->table - 1);
    }
    assert(b->nc < b->cap);
    b->c[b->nc] = *x;
    b->slot[s] = ++b->nc;
    b->used[b->nc - 1] = (int)s;
}

/* Commits the next words while every hypothesis within the margin agrees
   on them, or while the best hypothesis has held the same next word (the
   same peak) for ST_ASR_BEAM_STABLE_FRAMES; drops the hypotheses that
   disagree with a committed word. */
static void commit(st_asr_beam *b, uint64_t stamp)
{
    for (;;) {
        int best = best_hyp(b, false);
        const hyp *y = &b->h[best];
        double floor = total(y) - b->p.margin;
        int at = word_at(y, b->committed);
        if (at < 0)
            break;
        int w = y->lab[at];
        if (y->p[at] < ST_ASR_BEAM_MIN_PEAK && at == y->n - 1)
            break; /* still rising: whether it is heard is not known yet */
        bool all = true;
        for (int i = 0; i < b->nh && all; i++) {
            if (total(&b->h[i]) < floor)
                continue;
            int j = word_at(&b->h[i], b->committed);
            all = j >= 0 && b->h[i].lab[j] == w;
        }
        if (!all) {
            if (b->track_w != w || b->track_at != y->at[at]) {
                b->track_w = w;
                b->track_at = y->at[at];
                b->track_since = b->frame;
            }
            if (b->frame - b->track_since < ST_ASR_BEAM_STABLE_FRAMES)
                break;
        }
        enqueue(b, y, at, stamp);
        b->committed++;
        b->track_w = -1;
        int keep = 0;
        for (int i = 0; i < b->nh; i++) {
            int j = word_at(&b->h[i], b->committed - 1);
            if (j >= 0 && b->h[i].lab[j] == w)
                b->h[keep++] = b->h[i];
        }
        b->nh = keep;
    }
}

void st_asr_beam_step(st_asr_beam *self, const float *prob, uint64_t stamp, const uint64_t *rise)
{
    st_asr_beam *b = self;
    size_t C = b->n_classes;
    int na = 0;
    for (size_t k = 1; k < C; k++)
        if (prob[k] >= ST_ASR_BEAM_PRUNE_P)
            b->active[na++] = (int)k;
    double l0 = log(prob[0] > 1e-10f ? prob[0] : 1e-10f);
    b->nc = 0;
    for (int i = 0; i < b->nh; i++) {
        const hyp *y = &b->h[i];
        double tot = lae(y->pb, y->pnb);
        int last = y->n ? y->lab[y->n - 1] : -1;
        cand stay = {.parent = i, .label = -1, .len = y->n, .last = last, .pb = tot + l0,
                     .pnb = last >= 0 ? y->pnb + log(prob[last] > 1e-10f ? prob[last] : 1e-10f)
                                      : NEG,
                     .lm = y->lm, .hash = y->hash};
        add(b, &stay);
        if (y->n == MAX_LABELS)
            continue;
        const float *lm_row = b->logp + (size_t)(last >= 0 ? last : b->ctx) * C;
        for (int a = 0; a < na; a++) {
            int k = b->active[a];
            /* the same word again this soon: one word's two peaks, or its
               tail after a finish */
            if (y->n && k == last && b->frame - y->at[y->n - 1] < ST_ASR_BEAM_REPEAT_FRAMES)
                continue;
            if (!y->n && k == b->ctx && b->frame - b->ctx_at < ST_ASR_BEAM_REPEAT_FRAMES)
                continue;
            double lk = log(prob[k]);
            cand x = {.parent = i, .label = k, .len = y->n + 1, .last = k, .pb = NEG,
                      .pnb = (k == last ? y->pb : tot) + lk,
                      .lm = y->lm + b->p.alpha * lm_row[k] + (k == last ? 0 : b->p.beta),
                      .hash = mix(y->hash, k)};
            add(b, &x);
        }
    }
    for (int i = 0; i < b->nc; i++)
        b->slot[b->used[i]] = 0;
    /* the best `beam` candidates, in order */
    int n = 0;
    for (; n < b->p.beam && n < b->nc; n++) {
        int arg = n;
        double s = NEG;
        for (int i = n; i < b->nc; i++) {
            double t = lae(b->c[i].pb, b->c[i].pnb) + b->c[i].lm;
            if (t > s)
                s = t, arg = i;
        }
        cand t = b->c[n];
        b->c[n] = b->c[arg];
        b->c[arg] = t;
        const cand *x = &b->c[n];
        hyp *y = &b->h2[n];
        *y = b->h[x->parent];
        if (x->label >= 0) {
            int j = y->n++;
            y->lab[j] = (int16_t)x->label;
            y->start[j] = rise && rise[x->label] <= stamp ? rise[x->label] : stamp;
            y->end[j] = stamp;
            y->p[j] = prob[x->label];
            y->at[j] = b->frame;
        }
        else if (y->n && prob[y->lab[y->n - 1]] > y->p[y->n - 1]) {
            /* the last label's peak so far: where the word is heard */
            int j = y->n - 1;
            y->end[j] = stamp;
            y->p[j] = prob[y->lab[j]];
            y->at[j] = b->frame;
        }
        y->pb = x->pb;
        y->pnb = x->pnb;
        y->lm = x->lm;
        y->hash = x->hash;
    }
    hyp *t = b->h;
    b->h = b->h2;
    b->h2 = t;
    b->nh = n;
    b->last_stamp = stamp;
    b->frame++;
    commit(b, stamp);
    /* a hypothesis that runs out of room: what there is, is final */
    for (int i = 0; i < b->nh; i++)
        if (b->h[i].n >= MAX_LABELS - 1) {
            st_asr_beam_finish(b, true);
            break;
        }
}

void st_asr_beam_finish(st_asr_beam *self, bool keep_context)
{
    int best = best_hyp(self, true);
    const hyp *y = &self->h[best];
    for (int k = self->committed;; k++) {
        int at = word_at(y, k);
        if (at < 0)
            break;
        enqueue(self, y, at, self->last_stamp);
    }
    /* the context: the last label heard (one still under the minimum peak
       may yet rise: it is dropped here, so its peak can come as a new word) */
    int last = y->n - 1;
    while (last >= 0 && y->p[last] < ST_ASR_BEAM_MIN_PEAK)
        last--;
    int ctx = keep_context ? (last >= 0 ? y->lab[last] : self->ctx) : 0;
    int64_t at = last >= 0 ? y->at[last] : self->ctx_at;
    start_over(self, ctx, keep_context ? at : 0);
}

int st_asr_beam_next(st_asr_beam *self, st_asr_event *ev)
{
    if (self->qn == 0)
        return 0;
    *ev = self->q[self->qh];
    self->qh = (self->qh + 1) % QUEUE;
    self->qn--;
    return 1;
}

size_t st_asr_beam_dropped(const st_asr_beam *self) { return self->dropped; }
