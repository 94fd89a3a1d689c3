/*  tests/test_lm.c - suite `lm`: the spiking language model.

    The reference bundle golden_L2_D32 (logits, LIF currents, spikes); and,
    independent of any bundle, random models of other sizes written here in
    the reference format by a writer of the test's own and compared with a
    plain double-precision implementation of the README's equations written
    here too, so every size and parameter is seen to be honoured, in both
    kernels and for the dense control. Then: the parallel mode against
    token by token (bit for bit), state save/restore/fork, the membranes in
    the state, sampling (greedy, seeds, top-k, top-p, repetition penalty),
    generation (callback, stop token, cancel), malformed files, our own
    format, the tokenizer, no allocation per token, and `spiketalk lm
    golden` end to end on the bundle and on a tampered copy.
*/
#include "testutil.h"

#include "snn/lm.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

/* ---- a random model, written in the reference format by the test ------------ */

static uint64_t rng;

static double urand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) * (1.0 / 9007199254740992.0);
}

static float ur(double lo, double hi)
{
    return (float)(lo + (hi - lo) * urand());
}

#define MAXT 256
typedef struct {
    char name[64];
    int ndim;
    int dims[3];
    size_t count;
    float *data;
} rtensor;

typedef struct {
    int L, D, V, F;
    int nt;
    rtensor t[MAXT];
} rmodel;

static rtensor *rt_add(rmodel *m, int ndim, int d0, int d1, int d2, const char *fmt, ...)
{
    rtensor *t = &m->t[m->nt++];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->name, sizeof t->name, fmt, ap);
    va_end(ap);
    t->ndim = ndim;
    t->dims[0] = d0;
    t->dims[1] = d1;
    t->dims[2] = d2;
    t->count = (size_t)d0 * (ndim > 1 ? d1 : 1) * (ndim > 2 ? d2 : 1);
    t->data = malloc(t->count * sizeof(float));
    return t;
}

static void fill(rtensor *t, double lo, double hi)
{
    for (size_t i = 0; i < t->count; i++)
        t->data[i] = ur(lo, hi);
}

static const float *rt_get(const rmodel *m, const char *fmt, ...)
{
    char name[64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    for (int i = 0; i < m->nt; i++)
        if (!strcmp(m->t[i].name, name))
            return m->t[i].data;
    CU_FAIL_FATAL("test model lacks a tensor");
    return NULL;
}

/* Weights in ranges that make every part matter: LayerNorm gains and
   biases off 1 and 0, decays over e^-6 .. e^1, mixes over 0..1, and output
   projections large enough that a good share of the LIF neurons fire. */
static void rmodel_make(rmodel *m, int L, int D, int V, int F, uint64_t seed, double out_scale)
{
    memset(m, 0, sizeof *m);
    m->L = L, m->D = D, m->V = V, m->F = F;
    rng = seed * 2654435761u + 1;
    fill(rt_add(m, 2, V, D, 0, "emb.weight"), -1.5, 1.5);
    for (int i = 0; i < L; i++) {
        fill(rt_add(m, 1, D, 0, 0, "blocks.%d.ln1.weight", i), 0.7, 1.3);
        fill(rt_add(m, 1, D, 0, 0, "blocks.%d.ln1.bias", i), -0.2, 0.2);
        fill(rt_add(m, 1, D, 0, 0, "blocks.%d.ln2.weight", i), 0.7, 1.3);
        fill(rt_add(m, 1, D, 0, 0, "blocks.%d.ln2.bias", i), -0.2, 0.2);
        if (i == 0) {
            fill(rt_add(m, 1, D, 0, 0, "blocks.0.ln0.weight"), 0.7, 1.3);
            fill(rt_add(m, 1, D, 0, 0, "blocks.0.ln0.bias"), -0.2, 0.2);
        }
        fill(rt_add(m, 1, D, 0, 0, "blocks.%d.att.time_decay", i), -6, 1);
        fill(rt_add(m, 1, D, 0, 0, "blocks.%d.att.time_first", i), -2, 1);
        fill(rt_add(m, 3, 1, 1, D, "blocks.%d.att.time_mix_k", i), 0, 1);
        fill(rt_add(m, 3, 1, 1, D, "blocks.%d.att.time_mix_v", i), 0, 1);
        fill(rt_add(m, 3, 1, 1, D, "blocks.%d.att.time_mix_r", i), 0, 1);
        double bd = 1 / sqrt(D), bf = 1 / sqrt(F);
        fill(rt_add(m, 2, D, D, 0, "blocks.%d.att.key.weight", i), -bd, bd);
        fill(rt_add(m, 2, D, D, 0, "blocks.%d.att.value.weight", i), -bd, bd);
        fill(rt_add(m, 2, D, D, 0, "blocks.%d.att.receptance.weight", i), -bd, bd);
        fill(rt_add(m, 2, D, D, 0, "blocks.%d.att.output.weight", i), -bd * out_scale,
             bd * out_scale);
        fill(rt_add(m, 3, 1, 1, D, "blocks.%d.ffn.time_mix_k", i), 0, 1);
        fill(rt_add(m, 3, 1, 1, D, "blocks.%d.ffn.time_mix_r", i), 0, 1);
        fill(rt_add(m, 2, F, D, 0, "blocks.%d.ffn.key.weight", i), -bd, bd);
        fill(rt_add(m, 2, D, D, 0, "blocks.%d.ffn.receptance.weight", i), -bd, bd);
        fill(rt_add(m, 2, D, F, 0, "blocks.%d.ffn.value.weight", i), -bf * out_scale,
             bf * out_scale);
    }
    fill(rt_add(m, 1, D, 0, 0, "ln_out.weight"), 0.7, 1.3);
    fill(rt_add(m, 1, D, 0, 0, "ln_out.bias"), -0.2, 0.2);
    fill(rt_add(m, 2, V, D, 0, "head.weight"), -1 / sqrt(D), 1 / sqrt(D));
}

static void rmodel_free(rmodel *m)
{
    for (int i = 0; i < m->nt; i++)
        free(m->t[i].data);
    m->nt = 0;
}

/* Ways to break the file, for the malformed-file tests. */
typedef struct {
    uint32_t magic;     /* 0: the right one */
    int version;        /* 0: 1 */
    int skip;           /* index of a tensor left out, -1 none */
    int reshape;        /* index of a tensor whose first dim is off by one, -1 none */
    int duplicate;      /* index of a tensor written twice, -1 none */
    int rename;         /* index of a tensor renamed to an unknown name, -1 none */
    int nan_in;         /* index of a tensor with a NaN, -1 none */
    int trailing;       /* bytes of junk after the end */
} breakage;

static const breakage intact = {0, 0, -1, -1, -1, -1, -1, 0};

static void w32(FILE *f, int32_t v)
{
    fwrite(&v, 4, 1, f);
}

static void rmodel_write(const rmodel *m, const char *path, breakage b)
{
    FILE *f = fopen(path, "wb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    int n = m->nt - (b.skip >= 0) + (b.duplicate >= 0);
    w32(f, (int32_t)(b.magic ? b.magic : 0x54475053u));
    w32(f, b.version ? b.version : 1);
    w32(f, m->L);
    w32(f, m->D);
    w32(f, m->V);
    w32(f, n);
    for (int i = 0; i < m->nt; i++) {
        if (i == b.skip)
            continue;
        for (int rep = 0; rep < (i == b.duplicate ? 2 : 1); rep++) {
            const rtensor *t = &m->t[i];
            const char *name = i == b.rename ? "blocks.0.att.bogus" : t->name;
            int d0 = t->dims[0] + (i == b.reshape);
            size_t count = t->count / (size_t)t->dims[0] * (size_t)d0;
            w32(f, t->ndim);
            w32(f, (int32_t)strlen(name));
            w32(f, d0);
            for (int d = 1; d < t->ndim; d++)
                w32(f, t->dims[d]);
            fwrite(name, 1, strlen(name), f);
            for (size_t k = 0; k < count; k++) {
                float v = k < t->count ? t->data[k] : 0.5f;
                if (i == b.nan_in && k == 3)
                    v = NAN;
                fwrite(&v, 4, 1, f);
            }
        }
    }
    for (int k = 0; k < b.trailing; k++)
        fputc(0, f);
    fclose(f);
}

/* ---- the double-precision reference: the README's equations, literally ----- */

typedef struct {
    const rmodel *m;
    bool spiking;
    double *state; /* per layer: a_prev, f_prev, A, B, p, mem1, mem2 (D each) */
} dref;

static void dref_init(dref *r, const rmodel *m, bool spiking)
{
    r->m = m;
    r->spiking = spiking;
    r->state = calloc((size_t)7 * m->D * m->L, sizeof(double));
    for (int l = 0; l < m->L; l++)
        for (int c = 0; c < m->D; c++)
            r->state[(size_t)(l * 7 + 4) * m->D + c] = -1e30;
}

static void ln(const double *x, const float *w, const float *b, int d, double *y)
{
    double mean = 0, var = 0;
    for (int i = 0; i < d; i++)
        mean += x[i];
    mean /= d;
    for (int i = 0; i < d; i++)
        var += (x[i] - mean) * (x[i] - mean);
    var /= d;
    for (int i = 0; i < d; i++)
        y[i] = (x[i] - mean) / sqrt(var + 1e-5) * w[i] + b[i];
}

static void matvec(const float *w, int rows, int cols, const double *x, double *y)
{
    for (int r = 0; r < rows; r++) {
        double s = 0;
        for (int c = 0; c < cols; c++)
            s += (double)w[(size_t)r * cols + c] * x[c];
        y[r] = s;
    }
}

static double sigm(double x)
{
    return 1 / (1 + exp(-x));
}

/* One token. cur: L x 2 x D currents out. ours: our spikes (L x 2 x D) to
   follow where the reference's charge is within 1e-5 of the threshold
   (NULL: never). *followed counts them. */
static void dref_step(dref *r, int tok, double *logits, double *cur, const uint8_t *ours,
                      int *followed)
{
    const rmodel *m = r->m;
    const int D = m->D, F = m->F, V = m->V;
    double *x = calloc(D, sizeof *x), *a = calloc(D, sizeof *a), *xk = calloc(D, sizeof *xk),
           *xv = calloc(D, sizeof *xv), *xr = calloc(D, sizeof *xr), *k = calloc(D, sizeof *k),
           *v = calloc(D, sizeof *v), *rr = calloc(D, sizeof *rr), *o = calloc(D, sizeof *o),
           *h = calloc(F, sizeof *h), *c = calloc(D, sizeof *c);
    const float *E = rt_get(m, "emb.weight");
    for (int i = 0; i < D; i++) {
        double e = E[(size_t)tok * D + i];
        x[i] = r->spiking ? (e >= 0 ? 1 : 0) : e;
    }
    ln(x, rt_get(m, "blocks.0.ln0.weight"), rt_get(m, "blocks.0.ln0.bias"), D, x);
    for (int l = 0; l < m->L; l++) {
        double *st = r->state + (size_t)l * 7 * D;
        double *aprev = st, *fprev = st + D, *A = st + 2 * D, *B = st + 3 * D, *P = st + 4 * D;
        double *mem[2] = {st + 5 * D, st + 6 * D};
        ln(x, rt_get(m, "blocks.%d.ln1.weight", l), rt_get(m, "blocks.%d.ln1.bias", l), D, a);
        const float *mk = rt_get(m, "blocks.%d.att.time_mix_k", l),
                    *mv = rt_get(m, "blocks.%d.att.time_mix_v", l),
                    *mr = rt_get(m, "blocks.%d.att.time_mix_r", l);
        for (int i = 0; i < D; i++) {
            xk[i] = a[i] * mk[i] + aprev[i] * (1 - (double)mk[i]);
            xv[i] = a[i] * mv[i] + aprev[i] * (1 - (double)mv[i]);
            xr[i] = a[i] * mr[i] + aprev[i] * (1 - (double)mr[i]);
            aprev[i] = a[i];
        }
        matvec(rt_get(m, "blocks.%d.att.receptance.weight", l), D, D, xr, rr);
        matvec(rt_get(m, "blocks.%d.att.key.weight", l), D, D, xk, k);
        matvec(rt_get(m, "blocks.%d.att.value.weight", l), D, D, xv, v);
        const float *u = rt_get(m, "blocks.%d.att.time_first", l),
                    *td = rt_get(m, "blocks.%d.att.time_decay", l);
        for (int i = 0; i < D; i++) {
            double w = -exp((double)td[i]);
            double q = fmax(P[i], u[i] + k[i]);
            double wkv = (exp(P[i] - q) * A[i] + exp(u[i] + k[i] - q) * v[i]) /
                         (exp(P[i] - q) * B[i] + exp(u[i] + k[i] - q));
            double q2 = fmax(P[i] + w, k[i]);
            A[i] = exp(P[i] + w - q2) * A[i] + exp(k[i] - q2) * v[i];
            B[i] = exp(P[i] + w - q2) * B[i] + exp(k[i] - q2);
            P[i] = q2;
            o[i] = sigm(rr[i]) * wkv;
        }
        matvec(rt_get(m, "blocks.%d.att.output.weight", l), D, D, o, c);
        for (int half = 0; half < 2; half++) {
            if (half == 1) {
                ln(x, rt_get(m, "blocks.%d.ln2.weight", l), rt_get(m, "blocks.%d.ln2.bias", l), D,
                   a);
                const float *fk = rt_get(m, "blocks.%d.ffn.time_mix_k", l),
                            *fr = rt_get(m, "blocks.%d.ffn.time_mix_r", l);
                for (int i = 0; i < D; i++) {
                    xk[i] = a[i] * fk[i] + fprev[i] * (1 - (double)fk[i]);
                    xr[i] = a[i] * fr[i] + fprev[i] * (1 - (double)fr[i]);
                    fprev[i] = a[i];
                }
                matvec(rt_get(m, "blocks.%d.ffn.key.weight", l), F, D, xk, h);
                for (int i = 0; i < F; i++)
                    h[i] = h[i] > 0 ? h[i] * h[i] : 0;
                matvec(rt_get(m, "blocks.%d.ffn.value.weight", l), D, F, h, v);
                matvec(rt_get(m, "blocks.%d.ffn.receptance.weight", l), D, D, xr, rr);
                for (int i = 0; i < D; i++)
                    c[i] = sigm(rr[i]) * v[i];
            }
            for (int i = 0; i < D; i++) {
                size_t at = ((size_t)l * 2 + half) * D + i;
                cur[at] = c[i];
                if (!r->spiking) {
                    x[i] += c[i];
                    continue;
                }
                double hh = mem[half][i] + (c[i] - mem[half][i]) / 2;
                int s = hh >= 1;
                if (ours && fabs(hh - 1) < 1e-5 && s != ours[at]) {
                    s = ours[at];
                    (*followed)++;
                }
                mem[half][i] = s ? 0 : hh;
                x[i] += s;
            }
        }
    }
    ln(x, rt_get(m, "ln_out.weight"), rt_get(m, "ln_out.bias"), D, a);
    double *lg = calloc(V, sizeof *lg);
    matvec(rt_get(m, "head.weight"), V, D, a, lg);
    memcpy(logits, lg, V * sizeof *lg);
    free(lg);
    free(x), free(a), free(xk), free(xv), free(xr), free(k), free(v), free(rr), free(o), free(h),
        free(c);
}

/* Runs T tokens through ours (token by token, traced) and the reference;
   returns the largest deviations and the spike rate. */
typedef struct {
    double logits, currents, spike_rate;
    int followed;
    bool untraced_differs;
} deviation;

static deviation compare(const rmodel *rm, st_lm_model *model, bool spiking, int T, uint64_t seed)
{
    deviation dv = {0};
    const int L = rm->L, D = rm->D, V = rm->V, N = L * 2 * D;
    int err;
    st_lm_state *s = st_lm_state_new(model, &err), *plain = st_lm_state_new(model, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_PTR_NOT_NULL_FATAL(plain);
    float *plg = malloc(V * sizeof *plg);
    dref r;
    dref_init(&r, rm, spiking);
    float *lg = malloc(V * sizeof *lg), *cur = malloc(N * sizeof *cur);
    uint8_t *spk = malloc(N);
    double *rlg = malloc(V * sizeof *rlg), *rcur = malloc(N * sizeof *rcur);
    size_t fired = 0;
    rng = seed;
    for (int t = 0; t < T; t++) {
        int tok = (int)(urand() * V);
        st_lm_trace tr = {.current = cur, .spikes = spk};
        CU_ASSERT_EQUAL(st_lm_forward(model, s, (int32_t[]){tok}, 1, lg, false, &tr), ST_OK);
        dref_step(&r, tok, rlg, rcur, spk, &dv.followed);
        /* the untraced path (the kernels' own LIF) computes the same bits */
        st_lm_step(model, plain, tok, plg);
        dv.untraced_differs |= memcmp(lg, plg, V * sizeof *lg) != 0;
        for (int i = 0; i < V; i++)
            dv.logits = fmax(dv.logits, fabs(lg[i] - rlg[i]));
        for (int i = 0; i < N; i++) {
            dv.currents = fmax(dv.currents, fabs(cur[i] - rcur[i]));
            fired += spk[i];
        }
    }
    dv.spike_rate = (double)fired / ((double)T * N);
    free(lg), free(plg), free(cur), free(spk), free(rlg), free(rcur), free(r.state);
    st_lm_state_destroy(&s);
    st_lm_state_destroy(&plain);
    return dv;
}

static st_lm_model *load_random(rmodel *rm, int L, int D, int V, int F, uint64_t seed,
                                double out_scale)
{
    rmodel_make(rm, L, D, V, F, seed, out_scale);
    char path[4096];
    st_test_tmpfile(path, sizeof path, "random.bin");
    rmodel_write(rm, path, intact);
    int err;
    st_lm_model *m = st_lm_model_load(path, &err);
    if (!m)
        fprintf(stderr, "load failed: %s\n", st_errmsg());
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    remove(path);
    return m;
}

/* ---- the golden bundle ------------------------------------------------------- */

static void *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *buf = malloc(n > 0 ? (size_t)n : 1);
    if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static const char *golden_dir(void)
{
    static char dir[4096];
    const char *shared = st_test_shared_data();
    if (!shared)
        return NULL;
    snprintf(dir, sizeof dir, "%s/spikegpt/golden_L2_D32", shared);
    char p[4200];
    snprintf(p, sizeof p, "%s/model.bin", dir);
    struct stat st;
    return stat(p, &st) == 0 ? dir : NULL;
}

static void test_golden(void)
{
    const char *dir = golden_dir();
    if (!dir) {
        st_test_skip("lm:golden", "../shared/data/spikegpt/golden_L2_D32 is absent (set "
                                  "ST_SHARED_DATA); the independent checks still run");
        return;
    }
    char p[4200];
    snprintf(p, sizeof p, "%s/model.bin", dir);
    int err;
    st_lm_model *m = st_lm_model_load(p, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    const st_lm_config *c = st_lm_model_config(m);
    CU_ASSERT_EQUAL(c->n_layer, 2);
    CU_ASSERT_EQUAL(c->n_embd, 32);
    CU_ASSERT_EQUAL(c->vocab, 77);
    CU_ASSERT_TRUE(c->spiking);
    size_t n_tok, n_lg, n_cur, n_spk;
    char q[4300];
    snprintf(q, sizeof q, "%s/tokens.i32", dir);
    int32_t *tok = slurp(q, &n_tok);
    snprintf(q, sizeof q, "%s/logits.f32", dir);
    float *ref_lg = slurp(q, &n_lg);
    snprintf(q, sizeof q, "%s/hpre.f32", dir);
    float *ref_cur = slurp(q, &n_cur);
    snprintf(q, sizeof q, "%s/spk.u8", dir);
    uint8_t *ref_spk = slurp(q, &n_spk);
    CU_ASSERT_PTR_NOT_NULL_FATAL(tok);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ref_lg);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ref_cur);
    CU_ASSERT_PTR_NOT_NULL_FATAL(ref_spk);
    const size_t T = n_tok / 4, V = 77, N = 2 * 2 * 32;
    CU_ASSERT_EQUAL_FATAL(n_lg, T * V * 4);
    CU_ASSERT_EQUAL_FATAL(n_cur, T * N * 4);
    CU_ASSERT_EQUAL_FATAL(n_spk, T * N);
    static const char *kernels[] = {"generic", "avx2"};
    for (int kk = 0; kk < 2; kk++) {
        if (st_lm_model_use_kernel(m, kernels[kk]) != ST_OK)
            continue;
        st_lm_state *s = st_lm_state_new(m, &err), *plain = st_lm_state_new(m, &err);
        float lg[77], plg[77], cur[128];
        double dp = 0;
        uint8_t spk[128];
        double dl = 0, dc = 0;
        size_t bad_spikes = 0;
        for (size_t t = 0; t < T; t++) {
            st_lm_trace tr = {.current = cur, .spikes = spk, .follow = ref_spk + t * N,
                              .follow_eps = 1e-5f};
            CU_ASSERT_EQUAL(st_lm_forward(m, s, &tok[t], 1, lg, false, &tr), ST_OK);
            st_lm_step(m, plain, tok[t], plg);
            for (size_t i = 0; i < V; i++) {
                dl = fmax(dl, fabs(lg[i] - ref_lg[t * V + i]));
                dp = fmax(dp, fabs(plg[i] - ref_lg[t * V + i]));
            }
            for (size_t i = 0; i < N; i++) {
                dc = fmax(dc, fabs(cur[i] - ref_cur[t * N + i]));
                bad_spikes += spk[i] != ref_spk[t * N + i];
            }
        }
        /* golden_L2_D32 has no charge within 2e-4 of the threshold: every
           spike must be the reference's */
        CU_ASSERT(dl <= 1e-4);
        CU_ASSERT(dp <= 1e-4); /* untraced, as generation runs */
        CU_ASSERT(dc <= 1e-4);
        CU_ASSERT_EQUAL(bad_spikes, 0);
        st_lm_state_destroy(&s);
        st_lm_state_destroy(&plain);
    }
    free(tok), free(ref_lg), free(ref_cur), free(ref_spk);
    st_lm_model_destroy(&m);
}

static int run_cli(const char *args)
{
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "%s %s >/dev/null 2>&1", st_test_cli(), args);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void copy_file(const char *from_dir, const char *to_dir, const char *name, size_t perturb,
                      bool flip_byte)
{
    char a[4200], b[4200];
    snprintf(a, sizeof a, "%s/%s", from_dir, name);
    snprintf(b, sizeof b, "%s/%s", to_dir, name);
    size_t n;
    unsigned char *buf = slurp(a, &n);
    CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
    if (perturb != (size_t)-1) {
        if (flip_byte) {
            buf[perturb] ^= 1;
        } else {
            float v;
            memcpy(&v, buf + 4 * perturb, 4);
            v += 1e-3f;
            memcpy(buf + 4 * perturb, &v, 4);
        }
    }
    FILE *f = fopen(b, "wb");
    fwrite(buf, 1, n, f);
    fclose(f);
    free(buf);
}

static void test_golden_cli(void)
{
    const char *dir = golden_dir();
    struct stat st;
    if (!dir) {
        st_test_skip("lm:golden_cli", "../shared/data/spikegpt/golden_L2_D32 is absent");
        return;
    }
    if (stat(st_test_cli(), &st) != 0) {
        st_test_skip("lm:golden_cli", "the spiketalk binary is not built ($ST_CLI or "
                                      "build/spiketalk)");
        return;
    }
    char args[4200];
    snprintf(args, sizeof args, "lm golden %s", dir);
    CU_ASSERT_EQUAL(run_cli(args), 0);
    static const char *files[] = {"model.bin", "tokens.i32", "logits.f32", "hpre.f32", "mem.f32",
                                  "spk.u8"};
    /* a tampered logit, a tampered current, a flipped spike far from the
       threshold: each must fail */
    struct {
        const char *file;
        size_t at;
        bool flip;
    } tamper[] = {{"logits.f32", 100, false}, {"hpre.f32", 77, false}, {"spk.u8", 300, true}};
    for (size_t k = 0; k < 3; k++) {
        const char *tmp = st_test_tmpdir();
        for (size_t i = 0; i < 6; i++)
            copy_file(dir, tmp, files[i], strcmp(files[i], tamper[k].file) ? (size_t)-1
                                                                          : tamper[k].at,
                      tamper[k].flip);
        snprintf(args, sizeof args, "lm golden %s", tmp);
        CU_ASSERT_EQUAL(run_cli(args), 1);
    }
    /* the dense twin is a different model: the check must say so */
    snprintf(args, sizeof args, "lm golden %s --dense", dir);
    CU_ASSERT_EQUAL(run_cli(args), 1);
    /* generate runs on the bundle's model (its default tokenizer) */
    snprintf(args, sizeof args, "lm generate --model %s/model.bin --prompt 'hello' --greedy "
                                "--max-tokens 8",
             dir);
    CU_ASSERT_EQUAL(run_cli(args), 0);
    CU_ASSERT_EQUAL(run_cli("lm golden /nonexistent/bundle"), 1);
    CU_ASSERT_EQUAL(run_cli("lm golden --help"), 0);
    CU_ASSERT_EQUAL(run_cli("lm generate --help"), 0);
    CU_ASSERT_EQUAL(run_cli("lm"), 2);
}

/* ---- independent checks: random models, the double reference ----------------- */

static void test_reference_random_sizes(void)
{
    static const struct {
        int L, D, V, F;
    } sizes[] = {{3, 48, 50, 192}, {1, 20, 7, 80}, {2, 37, 300, 100}};
    static const char *kernels[] = {"generic", "avx2"};
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        rmodel rm;
        st_lm_model *m = load_random(&rm, sizes[si].L, sizes[si].D, sizes[si].V, sizes[si].F,
                                     100 + si, 30.0);
        const st_lm_config *c = st_lm_model_config(m);
        CU_ASSERT_EQUAL(c->n_layer, (uint32_t)sizes[si].L);
        CU_ASSERT_EQUAL(c->n_embd, (uint32_t)sizes[si].D);
        CU_ASSERT_EQUAL(c->vocab, (uint32_t)sizes[si].V);
        CU_ASSERT_EQUAL(c->n_ffn, (uint32_t)sizes[si].F);
        for (int kk = 0; kk < 2; kk++) {
            if (st_lm_model_use_kernel(m, kernels[kk]) != ST_OK)
                continue;
            deviation dv = compare(&rm, m, true, 40, 7 + si);
            if (getenv("ST_LM_VERBOSE") || dv.logits > 1e-4 || dv.currents > 1e-4)
                fprintf(stderr, "\n  %dx%d V%d F%d %s: logits %.3g currents %.3g rate %.3f\n",
                        sizes[si].L, sizes[si].D, sizes[si].V, sizes[si].F, kernels[kk],
                        dv.logits, dv.currents, dv.spike_rate);
            CU_ASSERT(dv.logits <= 1e-4);
            CU_ASSERT(dv.currents <= 1e-4);
            /* the test means something only if neurons fire, and not all */
            CU_ASSERT(dv.spike_rate > 0.02 && dv.spike_rate < 0.6);
            CU_ASSERT(dv.followed <= 2);
            CU_ASSERT_FALSE(dv.untraced_differs);
        }
        st_lm_model_destroy(&m);
        rmodel_free(&rm);
    }
}

static void test_dense_control(void)
{
    rmodel rm;
    st_lm_model *m = load_random(&rm, 2, 24, 30, 96, 5, 30.0);
    int err;
    st_lm_model *dense = st_lm_model_twin(m, false, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(dense);
    CU_ASSERT_FALSE(st_lm_model_config(dense)->spiking);
    deviation dv = compare(&rm, dense, false, 30, 3);
    CU_ASSERT(dv.logits <= 1e-4);
    CU_ASSERT(dv.currents <= 1e-4);
    CU_ASSERT_EQUAL(dv.spike_rate, 0);
    CU_ASSERT_FALSE(dv.untraced_differs);
    /* the twin is not the spiking model: same tokens, different logits */
    st_lm_state *a = st_lm_state_new(m, &err), *b = st_lm_state_new(dense, &err);
    int32_t toks[5] = {1, 2, 3, 4, 5};
    float la[30], lb[30];
    st_lm_forward(m, a, toks, 5, la, false, NULL);
    st_lm_forward(dense, b, toks, 5, lb, false, NULL);
    double d = 0;
    for (int i = 0; i < 30; i++)
        d = fmax(d, fabs(la[i] - lb[i]));
    CU_ASSERT(d > 1e-2);
    /* and a twin back to spiking is the spiking model again */
    st_lm_model *back = st_lm_model_twin(dense, true, &err);
    st_lm_state *c = st_lm_state_new(back, &err);
    float lc[30];
    st_lm_forward(back, c, toks, 5, lc, false, NULL);
    CU_ASSERT_EQUAL(memcmp(la, lc, sizeof la), 0);
    st_lm_state_destroy(&a), st_lm_state_destroy(&b), st_lm_state_destroy(&c);
    st_lm_model_destroy(&back), st_lm_model_destroy(&dense), st_lm_model_destroy(&m);
    rmodel_free(&rm);
}

/* ---- parallel mode, state ------------------------------------------------------ */

static void test_parallel_equals_step(void)
{
    static const char *kernels[] = {"generic", "avx2"};
    rmodel rm;
    st_lm_model *m = load_random(&rm, 3, 40, 60, 160, 9, 30.0);
    const int T = 45, V = 60; /* crosses chunk boundaries */
    int32_t toks[45];
    for (int i = 0; i < T; i++)
        toks[i] = (int32_t)((i * 37 + 11) % V);
    for (int kk = 0; kk < 2; kk++) {
        if (st_lm_model_use_kernel(m, kernels[kk]) != ST_OK)
            continue;
        int err;
        st_lm_state *a = st_lm_state_new(m, &err), *b = st_lm_state_new(m, &err);
        float *la = malloc(T * V * sizeof *la), *lb = malloc(T * V * sizeof *lb), last[60];
        for (int t = 0; t < T; t++)
            CU_ASSERT_EQUAL(st_lm_step(m, a, toks[t], la + t * V), ST_OK);
        CU_ASSERT_EQUAL(st_lm_forward(m, b, toks, T, lb, true, NULL), ST_OK);
        CU_ASSERT_EQUAL(memcmp(la, lb, T * V * sizeof *la), 0);
        CU_ASSERT_EQUAL(memcmp(st_lm_state_data(a), st_lm_state_data(b),
                               st_lm_state_len(m) * sizeof(float)),
                        0);
        CU_ASSERT_EQUAL(st_lm_state_tokens(b), (uint64_t)T);
        /* last-only logits, and a prompt split in two calls */
        st_lm_state_reset(b);
        st_lm_forward(m, b, toks, 20, NULL, false, NULL);
        st_lm_forward(m, b, toks + 20, T - 20, last, false, NULL);
        CU_ASSERT_EQUAL(memcmp(last, la + (T - 1) * V, sizeof last), 0);
        st_lm_state_destroy(&a), st_lm_state_destroy(&b);
        free(la), free(lb);
    }
    st_lm_model_destroy(&m);
    rmodel_free(&rm);
}

static void test_state_save_restore_fork(void)
{
    rmodel rm;
    st_lm_model *m = load_random(&rm, 2, 32, 40, 128, 11, 30.0);
    int err;
    const size_t len = st_lm_state_len(m);
    CU_ASSERT_EQUAL(len, (size_t)7 * 32 * 2);
    st_lm_state *s = st_lm_state_new(m, &err);
    int32_t prefix[12], cont[10];
    for (int i = 0; i < 12; i++)
        prefix[i] = (i * 7 + 3) % 40;
    for (int i = 0; i < 10; i++)
        cont[i] = (i * 13 + 5) % 40;
    st_lm_forward(m, s, prefix, 12, NULL, false, NULL);
    /* the membranes are in the state, and not all zero after 12 tokens */
    double msum = 0;
    for (uint32_t l = 0; l < 2; l++)
        for (int c = 0; c < 32; c++)
            msum += fabs(st_lm_state_var(s, l, ST_LM_VAR_MEM_ATT)[c]) +
                    fabs(st_lm_state_var(s, l, ST_LM_VAR_MEM_FFN)[c]);
    CU_ASSERT(msum > 0);
    float *saved = malloc(len * sizeof *saved);
    CU_ASSERT_EQUAL(st_lm_state_save(s, saved, len), ST_OK);
    CU_ASSERT_EQUAL(st_lm_state_save(s, saved, len - 1), ST_ERR_INVALID);
    st_lm_state *f = st_lm_state_fork(s, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    float a[40], b[40], c[40], d[40];
    st_lm_forward(m, s, cont, 10, a, false, NULL);
    /* restore: the same continuation gives the same bits */
    CU_ASSERT_EQUAL(st_lm_state_restore(s, saved, len), ST_OK);
    st_lm_forward(m, s, cont, 10, b, false, NULL);
    CU_ASSERT_EQUAL(memcmp(a, b, sizeof a), 0);
    /* fork: the branch continues identically, and the original is untouched
       by what the branch does */
    st_lm_forward(m, f, cont, 10, c, false, NULL);
    CU_ASSERT_EQUAL(memcmp(a, c, sizeof a), 0);
    st_lm_state_restore(s, saved, len);
    st_lm_state_destroy(&f);
    f = st_lm_state_fork(s, &err);
    st_lm_forward(m, f, prefix, 12, NULL, false, NULL); /* the branch goes elsewhere */
    st_lm_forward(m, s, cont, 10, d, false, NULL);
    CU_ASSERT_EQUAL(memcmp(a, d, sizeof a), 0);
    /* copy into an existing state, no allocation */
    st_lm_state_restore(s, saved, len);
    CU_ASSERT_EQUAL(st_lm_state_copy(f, s), ST_OK);
    st_lm_forward(m, f, cont, 10, d, false, NULL);
    CU_ASSERT_EQUAL(memcmp(a, d, sizeof a), 0);
    /* the reference generator's trap: restoring all but the membranes does
       not reproduce the continuation */
    st_lm_state_restore(s, saved, len);
    for (uint32_t l = 0; l < 2; l++) {
        memset(st_lm_state_var(s, l, ST_LM_VAR_MEM_ATT), 0, 32 * sizeof(float));
        memset(st_lm_state_var(s, l, ST_LM_VAR_MEM_FFN), 0, 32 * sizeof(float));
    }
    st_lm_forward(m, s, cont, 10, d, false, NULL);
    CU_ASSERT_NOT_EQUAL(memcmp(a, d, sizeof a), 0);
    /* reset gives a fresh conversation */
    st_lm_state_reset(s);
    CU_ASSERT_EQUAL(st_lm_state_tokens(s), 0);
    CU_ASSERT_EQUAL(st_lm_state_var(s, 1, ST_LM_VAR_WKV_P)[5], -1e30f);
    CU_ASSERT_PTR_NULL(st_lm_state_logits(s));
    free(saved);
    st_lm_state_destroy(&s), st_lm_state_destroy(&f);
    st_lm_model_destroy(&m);
    rmodel_free(&rm);
}

static void test_bad_token(void)
{
    st_lm_config cfg = {.n_layer = 1, .n_embd = 16, .vocab = 10, .n_ffn = 64, .spiking = true};
    int err;
    st_lm_model *m = st_lm_model_new(&cfg, &err);
    st_lm_model_randomize(m, 3, 30);
    st_lm_state *s = st_lm_state_new(m, &err);
    float lg[10];
    CU_ASSERT_EQUAL(st_lm_step(m, s, 10, lg), ST_ERR_INVALID);
    CU_ASSERT_EQUAL(st_lm_step(m, s, -1, lg), ST_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(st_errmsg(), "token"));
    CU_ASSERT_EQUAL(st_lm_forward(m, s, (int32_t[]){1, 2, 99}, 3, lg, false, NULL),
                    ST_ERR_INVALID);
    CU_ASSERT_EQUAL(st_lm_state_tokens(s), 0); /* unchanged */
    CU_ASSERT_EQUAL(st_lm_state_var(s, 0, ST_LM_VAR_WKV_P)[0], -1e30f);
    cfg.n_embd = 0;
    CU_ASSERT_PTR_NULL(st_lm_model_new(&cfg, &err));
    CU_ASSERT_EQUAL(err, ST_ERR_INVALID);
    st_lm_state_destroy(&s);
    st_lm_model_destroy(&m);
}

/* ---- sampling and generation ------------------------------------------------------ */

static void test_sampling(void)
{
    enum { V = 40 };
    float lg[V];
    rng = 77;
    for (int i = 0; i < V; i++)
        lg[i] = ur(-3, 3);
    int amax = 0;
    for (int i = 1; i < V; i++)
        if (lg[i] > lg[amax])
            amax = i;
    int err;
    st_lm_sample_params p = st_lm_sample_default_params();
    p.greedy = true;
    st_lm_sampler *s = st_lm_sampler_new(V, &p, &err);
    CU_ASSERT_EQUAL(st_lm_sampler_sample(s, lg), amax);
    CU_ASSERT_EQUAL(st_lm_sampler_probs(s)[amax], 1.0f);
    st_lm_sampler_destroy(&s);
    p = st_lm_sample_default_params();
    p.temperature = 0; /* also greedy */
    s = st_lm_sampler_new(V, &p, &err);
    CU_ASSERT_EQUAL(st_lm_sampler_sample(s, lg), amax);
    st_lm_sampler_destroy(&s);

    /* seeded: the same seed, the same draws; another seed, others */
    p = st_lm_sample_default_params();
    p.seed = 42;
    st_lm_sampler *s1 = st_lm_sampler_new(V, &p, &err), *s2 = st_lm_sampler_new(V, &p, &err);
    p.seed = 43;
    st_lm_sampler *s3 = st_lm_sampler_new(V, &p, &err);
    int same = 1, differ = 0, hist[V] = {0};
    for (int i = 0; i < 2000; i++) {
        int a = st_lm_sampler_sample(s1, lg), b = st_lm_sampler_sample(s2, lg),
            c = st_lm_sampler_sample(s3, lg);
        same &= a == b;
        differ |= a != c;
        hist[a]++;
    }
    CU_ASSERT(same);
    CU_ASSERT(differ);
    /* the draws follow softmax(logits): the argmax is drawn about as often
       as its probability says */
    double z = 0;
    for (int i = 0; i < V; i++)
        z += exp(lg[i]);
    double pa = exp(lg[amax]) / z;
    CU_ASSERT(fabs(hist[amax] / 2000.0 - pa) < 4 * sqrt(pa * (1 - pa) / 2000) + 0.01);
    CU_ASSERT(fabs(st_lm_sampler_probs(s1)[amax] - pa) < 1e-5);
    st_lm_sampler_reset(s1);
    st_lm_sampler_reset(s2);
    CU_ASSERT_EQUAL(st_lm_sampler_sample(s1, lg), st_lm_sampler_sample(s2, lg));
    st_lm_sampler_destroy(&s1), st_lm_sampler_destroy(&s2), st_lm_sampler_destroy(&s3);

    /* order of the logits, for top-k and top-p */
    int order[V];
    for (int i = 0; i < V; i++)
        order[i] = i;
    for (int i = 0; i < V; i++)
        for (int j = i + 1; j < V; j++)
            if (lg[order[j]] > lg[order[i]]) {
                int t = order[i];
                order[i] = order[j];
                order[j] = t;
            }
    /* top-k: the support is exactly the k most likely, renormalised */
    p = st_lm_sample_default_params();
    p.top_k = 5;
    s = st_lm_sampler_new(V, &p, &err);
    int outside = 0;
    for (int i = 0; i < 500; i++) {
        int t = st_lm_sampler_sample(s, lg);
        int rank = 0;
        while (order[rank] != t)
            rank++;
        outside += rank >= 5;
    }
    CU_ASSERT_EQUAL(outside, 0);
    const float *pr = st_lm_sampler_probs(s);
    double zk = 0, sum = 0;
    for (int i = 0; i < 5; i++)
        zk += exp(lg[order[i]]);
    for (int i = 0; i < V; i++) {
        sum += pr[i];
        int rank = 0;
        while (order[rank] != i)
            rank++;
        if (rank >= 5) {
            CU_ASSERT_EQUAL(pr[i], 0.0f);
        } else {
            CU_ASSERT(fabs(pr[i] - exp(lg[i]) / zk) < 1e-5);
        }
    }
    CU_ASSERT(fabs(sum - 1) < 1e-5);
    st_lm_sampler_destroy(&s);

    /* top-p: the fewest most likely whose probability reaches p */
    p = st_lm_sample_default_params();
    p.top_p = 0.6f;
    s = st_lm_sampler_new(V, &p, &err);
    st_lm_sampler_sample(s, lg);
    pr = st_lm_sampler_probs(s);
    double cum = 0;
    int need = 0;
    while (cum < 0.6 * z) /* z: the full sum */
        cum += exp(lg[order[need++]]);
    int support = 0;
    for (int i = 0; i < V; i++)
        support += pr[i] > 0;
    CU_ASSERT_EQUAL(support, need);
    for (int i = 0; i < need; i++)
        CU_ASSERT(pr[order[i]] > 0);
    st_lm_sampler_destroy(&s);
    /* top-k then top-p on the renormalised top-k */
    p.top_k = 8;
    p.top_p = 0.5f;
    s = st_lm_sampler_new(V, &p, &err);
    st_lm_sampler_sample(s, lg);
    pr = st_lm_sampler_probs(s);
    double z8 = 0;
    for (int i = 0; i < 8; i++)
        z8 += exp(lg[order[i]]);
    cum = 0;
    need = 0;
    while (cum < 0.5 * z8)
        cum += exp(lg[order[need++]]);
    support = 0;
    for (int i = 0; i < V; i++)
        support += pr[i] > 0;
    CU_ASSERT_EQUAL(support, need);
    st_lm_sampler_destroy(&s);

    /* repetition penalty: logits of tokens in the window divided (positive)
       or multiplied (negative) by the penalty, before the temperature */
    p = st_lm_sample_default_params();
    p.repetition_penalty = 1.8f;
    p.temperature = 0.7f;
    p.repetition_last_n = 3;
    s = st_lm_sampler_new(V, &p, &err);
    int pos = order[0], neg = -1;
    for (int i = 0; i < V && neg < 0; i++)
        if (lg[i] < 0)
            neg = i;
    int seen[4] = {pos, neg, order[1], order[2]};
    for (int i = 0; i < 4; i++)
        st_lm_sampler_accept(s, seen[i]); /* window 3: the first falls out */
    st_lm_sampler_sample(s, lg);
    pr = st_lm_sampler_probs(s);
    double want[V], zz = 0;
    for (int i = 0; i < V; i++) {
        double l = lg[i];
        if (i == neg || i == order[1] || i == order[2])
            l = l > 0 ? l / 1.8 : l * 1.8;
        want[i] = exp(l / 0.7);
        zz += want[i];
    }
    double worst = 0;
    for (int i = 0; i < V; i++)
        worst = fmax(worst, fabs(pr[i] - want[i] / zz));
    CU_ASSERT(worst < 1e-5);
    /* and greedy with a penalty: the repeated argmax loses to the next */
    st_lm_sampler_destroy(&s);
    p = st_lm_sample_default_params();
    p.greedy = true;
    p.repetition_penalty = 100;
    s = st_lm_sampler_new(V, &p, &err);
    st_lm_sampler_accept(s, order[0]);
    if (lg[order[0]] > 0 && lg[order[1]] > lg[order[0]] / 100) {
        CU_ASSERT_EQUAL(st_lm_sampler_sample(s, lg), order[1]);
    }
    st_lm_sampler_destroy(&s);

    /* bad parameters are refused */
    p = st_lm_sample_default_params();
    p.top_p = 0;
    CU_ASSERT_PTR_NULL(st_lm_sampler_new(V, &p, &err));
    CU_ASSERT_EQUAL(err, ST_ERR_INVALID);
    p = st_lm_sample_default_params();
    p.repetition_penalty = 0.5f;
    CU_ASSERT_PTR_NULL(st_lm_sampler_new(V, &p, &err));
}

typedef struct {
    int n;
    int32_t got[64];
    char text[256];
    size_t len;
    int stop_after;
    atomic_int *cancel;
    int cancel_after;
} cb_log;

static int on_token(int32_t token, const char *piece, size_t len, void *user)
{
    cb_log *c = user;
    c->got[c->n++] = token;
    if (c->len + len < sizeof c->text) {
        memcpy(c->text + c->len, piece, len);
        c->len += len;
    }
    if (c->cancel && c->n == c->cancel_after)
        atomic_store(c->cancel, 1);
    return c->stop_after && c->n == c->stop_after;
}

static void test_generate(void)
{
    st_lm_config cfg = {.n_layer = 2, .n_embd = 32, .vocab = 96, .n_ffn = 128, .spiking = true};
    int err;
    st_lm_model *m = st_lm_model_new(&cfg, &err);
    st_lm_model_randomize(m, 21, 30);
    const st_lm_tokenizer *tok = st_lm_model_tokenizer(m);
    CU_ASSERT_EQUAL(st_lm_tokenizer_size(tok), 96); /* the default: \n + printable ASCII */
    int32_t prompt[8];
    size_t np;
    CU_ASSERT_EQUAL(st_lm_tokenizer_encode(tok, "Hi there", 8, prompt, 8, &np, NULL), ST_OK);
    CU_ASSERT_EQUAL(np, 8);
    /* greedy generation = argmax of the logits, fed back, by hand */
    st_lm_state *ref = st_lm_state_new(m, &err), *s = st_lm_state_new(m, &err);
    float lg[96];
    st_lm_forward(m, ref, prompt, 8, lg, false, NULL);
    int32_t want[20];
    for (int i = 0; i < 20; i++) {
        int b = 0;
        for (int j = 1; j < 96; j++)
            if (lg[j] > lg[b])
                b = j;
        want[i] = b;
        st_lm_step(m, ref, b, lg);
    }
    st_lm_sample_params sp = st_lm_sample_default_params();
    sp.greedy = true;
    st_lm_sampler *smp = st_lm_sampler_new(96, &sp, &err);
    st_lm_generate_params gp = st_lm_generate_default_params();
    gp.max_tokens = 20;
    cb_log log = {0};
    gp.on_token = on_token;
    gp.user_data = &log;
    int32_t out[64];
    st_lm_generate_result res;
    CU_ASSERT_EQUAL(st_lm_generate(m, s, smp, prompt, 8, &gp, out, 64, &res), ST_OK);
    CU_ASSERT_EQUAL(res.n_generated, 20);
    CU_ASSERT_EQUAL(res.n_prompt, 8);
    CU_ASSERT_EQUAL(res.stop, ST_LM_STOP_LENGTH);
    CU_ASSERT_EQUAL(memcmp(out, want, sizeof want), 0);
    CU_ASSERT_EQUAL(log.n, 20);
    CU_ASSERT_EQUAL(memcmp(log.got, want, sizeof want), 0);
    char dec[64];
    st_lm_tokenizer_decode(tok, want, 20, dec, sizeof dec, NULL);
    CU_ASSERT_EQUAL(log.len, strlen(dec));
    CU_ASSERT_EQUAL(memcmp(log.text, dec, log.len), 0);
    /* the state holds everything, the last token included */
    CU_ASSERT_EQUAL(st_lm_state_tokens(s), 28);
    CU_ASSERT_EQUAL(memcmp(st_lm_state_data(s), st_lm_state_data(ref),
                           st_lm_state_len(m) * sizeof(float)),
                    0);
    /* an empty prompt continues from the state's logits */
    gp.max_tokens = 3;
    gp.on_token = NULL;
    CU_ASSERT_EQUAL(st_lm_generate(m, s, smp, NULL, 0, &gp, out, 64, &res), ST_OK);
    CU_ASSERT_EQUAL(res.n_generated, 3);
    st_lm_state_reset(s);
    CU_ASSERT_EQUAL(st_lm_generate(m, s, smp, NULL, 0, &gp, out, 64, &res), ST_ERR_INVALID);

    /* stop token: generation ends right after emitting it */
    st_lm_state_reset(s);
    gp.max_tokens = 20;
    gp.stop_token = want[4];
    CU_ASSERT_EQUAL(st_lm_generate(m, s, smp, prompt, 8, &gp, out, 64, &res), ST_OK);
    int first = 0;
    while (want[first] != want[4])
        first++;
    CU_ASSERT_EQUAL(res.stop, ST_LM_STOP_TOKEN);
    CU_ASSERT_EQUAL(res.n_generated, (size_t)first + 1);
    gp.stop_token = -1;

    /* the callback stops it */
    st_lm_state_reset(s);
    memset(&log, 0, sizeof log);
    log.stop_after = 6;
    gp.on_token = on_token;
    CU_ASSERT_EQUAL(st_lm_generate(m, s, smp, prompt, 8, &gp, out, 64, &res), ST_OK);
    CU_ASSERT_EQUAL(res.stop, ST_LM_STOP_CALLBACK);
    CU_ASSERT_EQUAL(res.n_generated, 6);

    /* the cancel flag stops it between tokens: set during token 3's
       callback, no token 4 */
    atomic_int cancel = 0;
    st_lm_state_reset(s);
    memset(&log, 0, sizeof log);
    log.cancel = &cancel;
    log.cancel_after = 3;
    gp.cancel = &cancel;
    CU_ASSERT_EQUAL(st_lm_generate(m, s, smp, prompt, 8, &gp, out, 64, &res), ST_OK);
    CU_ASSERT_EQUAL(res.stop, ST_LM_STOP_CANCEL);
    CU_ASSERT_EQUAL(res.n_generated, 3);
    CU_ASSERT_EQUAL(log.n, 3);
    /* already set: nothing is generated */
    st_lm_state_reset(s);
    CU_ASSERT_EQUAL(st_lm_generate(m, s, smp, prompt, 8, &gp, out, 64, &res), ST_OK);
    CU_ASSERT_EQUAL(res.n_generated, 0);
    CU_ASSERT_EQUAL(res.stop, ST_LM_STOP_CANCEL);

    /* seeded sampling through generate is reproducible */
    sp = st_lm_sample_default_params();
    sp.seed = 9;
    sp.top_k = 10;
    st_lm_sampler *r1 = st_lm_sampler_new(96, &sp, &err), *r2 = st_lm_sampler_new(96, &sp, &err);
    int32_t o1[30], o2[30];
    gp = st_lm_generate_default_params();
    gp.max_tokens = 30;
    st_lm_state_reset(s);
    st_lm_generate(m, s, r1, prompt, 8, &gp, o1, 30, &res);
    st_lm_state_reset(s);
    st_lm_generate(m, s, r2, prompt, 8, &gp, o2, 30, &res);
    CU_ASSERT_EQUAL(memcmp(o1, o2, sizeof o1), 0);
    /* a sampler of another size is refused */
    st_lm_sampler *wrong = st_lm_sampler_new(95, &sp, &err);
    CU_ASSERT_EQUAL(st_lm_generate(m, s, wrong, prompt, 8, &gp, o1, 30, &res), ST_ERR_INVALID);
    st_lm_sampler_destroy(&wrong);
    st_lm_sampler_destroy(&r1), st_lm_sampler_destroy(&r2), st_lm_sampler_destroy(&smp);
    st_lm_state_destroy(&s), st_lm_state_destroy(&ref);
    st_lm_model_destroy(&m);
}

/* ---- files ----------------------------------------------------------------------- */

static void expect_refused(const char *path, const char *needle)
{
    int err = 0;
    st_lm_model *m = st_lm_model_load(path, &err);
    CU_ASSERT_PTR_NULL(m);
    CU_ASSERT_EQUAL(err, ST_ERR_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(st_errmsg(), path));
    if (needle && !strstr(st_errmsg(), needle))
        fprintf(stderr, "\n  message lacks '%s': %s\n", needle, st_errmsg());
    if (needle) {
        CU_ASSERT_PTR_NOT_NULL(strstr(st_errmsg(), needle));
    }
    st_lm_model_destroy(&m);
}

static void test_malformed(void)
{
    rmodel rm;
    rmodel_make(&rm, 2, 16, 12, 64, 31, 8);
    char path[4096];
    st_test_tmpfile(path, sizeof path, "bad.bin");
    breakage b = intact;
    b.magic = 0x12345678;
    rmodel_write(&rm, path, b);
    expect_refused(path, NULL); /* neither SPGT nor STNN */
    b = intact;
    b.version = 2;
    rmodel_write(&rm, path, b);
    expect_refused(path, "version 2");
    b = intact;
    b.skip = 9; /* blocks.0.att.time_mix_k */
    rmodel_write(&rm, path, b);
    expect_refused(path, rm.t[9].name);
    b = intact;
    b.reshape = 12; /* blocks.0.att.key.weight */
    rmodel_write(&rm, path, b);
    expect_refused(path, rm.t[12].name);
    b = intact;
    b.duplicate = 3;
    rmodel_write(&rm, path, b);
    expect_refused(path, "twice");
    b = intact;
    b.rename = 15;
    rmodel_write(&rm, path, b);
    expect_refused(path, "blocks.0.att.bogus");
    b = intact;
    b.nan_in = 20;
    rmodel_write(&rm, path, b);
    expect_refused(path, rm.t[20].name);
    b = intact;
    b.trailing = 5;
    rmodel_write(&rm, path, b);
    expect_refused(path, "5 bytes after");
    /* truncated at several offsets: in the header, in a tensor's header, in
       its name, in its data, one byte short */
    rmodel_write(&rm, path, intact);
    size_t n;
    unsigned char *img = slurp(path, &n);
    int err;
    st_lm_model *ok = st_lm_model_load(path, &err);
    CU_ASSERT_PTR_NOT_NULL(ok);
    st_lm_model_destroy(&ok);
    size_t cuts[] = {3, 10, 23, 26, 33, 40, 24 + 8 + 8 + 10 + 100, n / 2, n - 1};
    for (size_t k = 0; k < sizeof cuts / sizeof cuts[0]; k++) {
        FILE *f = fopen(path, "wb");
        fwrite(img, 1, cuts[k], f);
        fclose(f);
        expect_refused(path, cuts[k] < 4 ? NULL : "truncated");
    }
    /* an absent file is ST_ERR_NOT_FOUND, not a format error */
    CU_ASSERT_PTR_NULL(st_lm_model_load("/nonexistent/model.bin", &err));
    CU_ASSERT_EQUAL(err, ST_ERR_NOT_FOUND);
    /* our format: a truncated file and a file of another kind */
    FILE *f = fopen(path, "wb");
    fwrite(img, 1, n, f);
    fclose(f);
    st_lm_model *m = st_lm_model_load(path, &err);
    char ours[4096];
    st_test_tmpfile(ours, sizeof ours, "ours.stnn");
    CU_ASSERT_EQUAL(st_lm_model_save(m, ours), ST_OK);
    free(img);
    img = slurp(ours, &n);
    f = fopen(ours, "wb");
    fwrite(img, 1, n - 7, f);
    fclose(f);
    expect_refused(ours, NULL);
    free(img);
    st_lm_model_destroy(&m);
    remove(path);
    remove(ours);
    rmodel_free(&rm);
}

static void test_own_format(void)
{
    st_lm_config cfg = {.n_layer = 2, .n_embd = 24, .vocab = 30, .n_ffn = 72, .spiking = true};
    int err;
    st_lm_model *m = st_lm_model_new(&cfg, &err);
    st_lm_model_randomize(m, 5, 20);
    st_lm_tokenizer *tok = st_lm_tokenizer_new_chars("abcdefghijklmnopqrstuvwxyz .é→", &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(tok);
    CU_ASSERT_EQUAL(st_lm_tokenizer_size(tok), 30);
    CU_ASSERT_EQUAL(st_lm_model_set_tokenizer(m, &tok), ST_OK);
    CU_ASSERT_PTR_NULL(tok);
    char ours[4096], ref[4096];
    st_test_tmpfile(ours, sizeof ours, "m.stnn");
    st_test_tmpfile(ref, sizeof ref, "m.bin");
    CU_ASSERT_EQUAL(st_lm_model_save(m, ours), ST_OK);
    CU_ASSERT_EQUAL(st_lm_model_save_reference(m, ref), ST_OK);
    st_lm_model *a = st_lm_model_load(ours, &err), *b = st_lm_model_load(ref, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    st_lm_weights *wm = st_lm_model_weights(m), *wa = st_lm_model_weights(a),
                  *wb = st_lm_model_weights(b);
    CU_ASSERT_EQUAL(wm->n_params, wa->n_params);
    CU_ASSERT_EQUAL(memcmp(wm->params, wa->params, wm->n_params * sizeof(float)), 0);
    CU_ASSERT_EQUAL(memcmp(wm->params, wb->params, wm->n_params * sizeof(float)), 0);
    CU_ASSERT_EQUAL(st_lm_model_config(a)->n_ffn, 72);
    CU_ASSERT_EQUAL(st_lm_model_config(b)->n_ffn, 72);
    /* the tokenizer travels with our format */
    int32_t ids[8];
    size_t n;
    st_lm_tokenizer_encode(st_lm_model_tokenizer(a), "é→a", strlen("é→a"), ids, 8, &n, NULL);
    CU_ASSERT_EQUAL(n, 3);
    CU_ASSERT_EQUAL(ids[0], 28);
    CU_ASSERT_EQUAL(ids[1], 29);
    CU_ASSERT_EQUAL(ids[2], 0);
    /* the weight count: 13 D^2-ish per layer as the README says */
    size_t D = 24, F = 72, V = 30, L = 2;
    CU_ASSERT_EQUAL(wm->n_params, V * D * 2 + 4 * D + L * (4 * D + 7 * D + 4 * D * D + 2 * D * F +
                                                           D * D));
    /* the dense variant is stored as such */
    st_lm_model *dense = st_lm_model_twin(m, false, &err);
    CU_ASSERT_EQUAL(st_lm_model_save(dense, ours), ST_OK);
    st_lm_model *c = st_lm_model_load(ours, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_FALSE(st_lm_model_config(c)->spiking);
    /* tensors by name in the reference's order */
    CU_ASSERT_EQUAL(st_lm_model_tensor_count(m), 6 + 18 * 2);
    st_lm_tensor t;
    CU_ASSERT_EQUAL(st_lm_model_tensor_at(m, 0, &t), ST_OK);
    CU_ASSERT_STRING_EQUAL(t.name, "emb.weight");
    CU_ASSERT_EQUAL(st_lm_model_tensor_at(m, 100, &t), ST_ERR_INVALID);
    /* weights edited by a trainer take effect after prepare */
    st_lm_state *s = st_lm_state_new(m, &err);
    float l1[30], l2[30];
    st_lm_step(m, s, 3, l1);
    wm->head[0] += 1.0f;
    CU_ASSERT_EQUAL(st_lm_model_prepare(m), ST_OK);
    st_lm_state_reset(s);
    st_lm_step(m, s, 3, l2);
    CU_ASSERT_NOT_EQUAL(l1[0], l2[0]);
    wm->emb[5] = NAN;
    CU_ASSERT_EQUAL(st_lm_model_prepare(m), ST_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(st_errmsg(), "emb.weight"));
    wm->emb[5] = 0;
    st_lm_model_prepare(m);
    st_lm_state_destroy(&s);
    st_lm_model_destroy(&c), st_lm_model_destroy(&dense), st_lm_model_destroy(&a);
    st_lm_model_destroy(&b), st_lm_model_destroy(&m);
    remove(ours);
    remove(ref);
}

/* ---- tokenizer ------------------------------------------------------------------- */

static void test_tokenizer(void)
{
    int err;
    st_lm_tokenizer *t = st_lm_tokenizer_new_chars("ab cé→\n", &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    CU_ASSERT_EQUAL(st_lm_tokenizer_size(t), 7);
    CU_ASSERT_EQUAL(st_lm_tokenizer_unk(t), -1);
    const char *text = "ab é→c\nba";
    int32_t ids[32];
    size_t n, unk;
    CU_ASSERT_EQUAL(st_lm_tokenizer_encode(t, text, strlen(text), ids, 32, &n, &unk), ST_OK);
    CU_ASSERT_EQUAL(n, 9);
    CU_ASSERT_EQUAL(unk, 0);
    char back[64];
    size_t len;
    CU_ASSERT_EQUAL(st_lm_tokenizer_decode(t, ids, n, back, sizeof back, &len), ST_OK);
    CU_ASSERT_STRING_EQUAL(back, text);
    CU_ASSERT_EQUAL(len, strlen(text));
    /* unknown characters: dropped and counted (no unknown token) */
    const char *odd = "axyzb\xff\xfe!";
    CU_ASSERT_EQUAL(st_lm_tokenizer_encode(t, odd, strlen(odd), ids, 32, &n, &unk), ST_OK);
    CU_ASSERT_EQUAL(n, 2);
    CU_ASSERT_EQUAL(unk, 6);
    /* an id out of range decodes as U+FFFD; a small buffer is an error
       with a NUL-terminated prefix */
    int32_t bad[3] = {0, 99, 1};
    CU_ASSERT_EQUAL(st_lm_tokenizer_decode(t, bad, 3, back, sizeof back, &len), ST_OK);
    CU_ASSERT_STRING_EQUAL(back, "a\xEF\xBF\xBD" "b");
    CU_ASSERT_EQUAL(st_lm_tokenizer_decode(t, ids, 2, back, 2, &len), ST_ERR_INVALID);
    CU_ASSERT_STRING_EQUAL(back, "a");
    CU_ASSERT_EQUAL(st_lm_tokenizer_encode(t, "abab", 4, ids, 2, &n, NULL), ST_ERR_INVALID);
    CU_ASSERT_EQUAL(n, 4);
    st_lm_tokenizer_destroy(&t);
    CU_ASSERT_PTR_NULL(st_lm_tokenizer_new_chars("abca", &err)); /* duplicate */
    CU_ASSERT_EQUAL(err, ST_ERR_INVALID);
    CU_ASSERT_PTR_NULL(st_lm_tokenizer_new_chars("a\xff", &err)); /* not UTF-8 */

    /* word pieces: the longest match wins; an unknown token takes the rest */
    const char *pieces[] = {"<?>", "t", "h", "e", " ", "th", "the", "re"};
    t = st_lm_tokenizer_new(pieces, 8, 0, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    CU_ASSERT_EQUAL(st_lm_tokenizer_encode(t, "the there thx", 13, ids, 32, &n, &unk), ST_OK);
    int32_t want[] = {6, 4, 6, 7, 4, 5, 0};
    CU_ASSERT_EQUAL(n, 7);
    CU_ASSERT_EQUAL(unk, 1);
    CU_ASSERT_EQUAL(memcmp(ids, want, sizeof want), 0);
    st_lm_tokenizer_destroy(&t);

    /* from a corpus: token 0 unknown, then by frequency */
    const char *corpus = "aaa bb c\xc3\xa9\xc3\xa9";
    t = st_lm_tokenizer_from_corpus(corpus, strlen(corpus), 4, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    CU_ASSERT_EQUAL(st_lm_tokenizer_size(t), 4);
    CU_ASSERT_EQUAL(st_lm_tokenizer_unk(t), 0);
    const char *p1 = st_lm_tokenizer_piece(t, 1, &len);
    CU_ASSERT(len == 1 && p1[0] == 'a');
    st_lm_tokenizer_piece(t, 2, &len); /* ' ', 'b' and 'é' have 2 each: ' ' has the lowest code */
    CU_ASSERT_EQUAL(st_lm_tokenizer_piece(t, 2, &len)[0], ' ');
    CU_ASSERT_EQUAL(st_lm_tokenizer_encode(t, "ac", 2, ids, 32, &n, &unk), ST_OK);
    CU_ASSERT_EQUAL(ids[0], 1);
    CU_ASSERT_EQUAL(ids[1], 0); /* 'c' did not make the cut: the unknown token */
    CU_ASSERT_EQUAL(unk, 1);
    CU_ASSERT_PTR_NULL(st_lm_tokenizer_piece(t, 4, &len));
    st_lm_tokenizer_destroy(&t);
    st_lm_tokenizer_destroy(&t); /* idempotent */
}

/* ---- no allocation per token ------------------------------------------------------ */

static void test_no_alloc_per_token(void)
{
    if (!st_test_alloc_live()) {
        st_test_skip("lm:no_alloc_per_token", "allocation counting is not live here (valgrind)");
        return;
    }
    st_lm_config cfg = st_lm_default_config();
    cfg.n_layer = 2;
    int err;
    st_lm_model *m = st_lm_model_new(&cfg, &err);
    st_lm_model_randomize(m, 1, 30);
    st_lm_state *s = st_lm_state_new(m, &err), *f = st_lm_state_new(m, &err);
    st_lm_sample_params sp = st_lm_sample_default_params();
    sp.top_k = 20;
    sp.top_p = 0.9f;
    sp.repetition_penalty = 1.2f;
    st_lm_sampler *smp = st_lm_sampler_new(cfg.vocab, &sp, &err);
    float *lg = malloc(cfg.vocab * sizeof *lg), *buf = malloc(st_lm_state_len(m) * sizeof *buf);
    int32_t prompt[40], out[50];
    for (int i = 0; i < 40; i++)
        prompt[i] = i * 5;
    st_lm_generate_params gp = st_lm_generate_default_params();
    gp.max_tokens = 50;
    st_lm_generate_result res;
    unsigned long before = st_test_rt_allocs();
    st_rt_enter();
    for (int i = 0; i < 50; i++)
        st_lm_step(m, s, i, lg);
    st_lm_forward(m, s, prompt, 40, lg, false, NULL);
    st_lm_sampler_accept(smp, 3);
    st_lm_sampler_sample(smp, lg);
    st_lm_state_save(s, buf, st_lm_state_len(m));
    st_lm_state_restore(f, buf, st_lm_state_len(m));
    st_lm_state_copy(f, s);
    st_lm_generate(m, s, smp, prompt, 40, &gp, out, 50, &res);
    size_t n;
    st_lm_tokenizer_encode(st_lm_model_tokenizer(m), "hello", 5, prompt, 40, &n, NULL);
    char text[256];
    st_lm_tokenizer_decode(st_lm_model_tokenizer(m), out, 50, text, sizeof text, NULL);
    st_rt_leave();
    CU_ASSERT_EQUAL(st_test_rt_allocs(), before);
    CU_ASSERT_EQUAL(res.n_generated, 50);
    free(lg), free(buf);
    st_lm_sampler_destroy(&smp);
    st_lm_state_destroy(&s), st_lm_state_destroy(&f);
    st_lm_model_destroy(&m);
}

CU_TestInfo st_tests_lm[] = {
    {"golden", test_golden},
    {"golden_cli", test_golden_cli},
    {"reference_random_sizes", test_reference_random_sizes},
    {"dense_control", test_dense_control},
    {"parallel_equals_step", test_parallel_equals_step},
    {"state_save_restore_fork", test_state_save_restore_fork},
    {"bad_token", test_bad_token},
    {"sampling", test_sampling},
    {"generate", test_generate},
    {"malformed", test_malformed},
    {"own_format", test_own_format},
    {"tokenizer", test_tokenizer},
    {"no_alloc_per_token", test_no_alloc_per_token},
    CU_TEST_INFO_NULL,
};
