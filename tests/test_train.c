/*  tests/test_train.c - suite `train`: the trainer's gradients against
    finite differences for every layer type and against PyTorch autograd
    (fixtures made by tools/make_grad_fixtures.py), the losses (CTC against
    a brute-force sum over all alignments), Adam and AdamW against a hand
    computation, thread-count independence, exact resume from a checkpoint,
    refusal of bad configurations, a short training run that learns, and
    export to the engine (bit for bit) and through NIR.

    Finite differences and spikes: the loss of a network of hard spikes is
    piecewise constant in the weights, so its finite differences say nothing
    about a surrogate gradient. The checks therefore run the trainer with
    smooth_forward = true, where a spike is the smooth step S(u) whose
    derivative is exactly the surrogate's pseudo-derivative (SuperSpike at
    alpha = 2: u / (1 + 2|u|) + 1/2; arctan at alpha = 2), delays
    interpolate between whole steps, and the reset is not detached: the
    forward is then a smooth function and the backward its exact
    derivative, through every path (recurrence, reset, adaptation, rates,
    thresholds, delays). The hard-spike backward, with Norse's detached
    reset, is checked against PyTorch on networks with no membrane within
    1e-3 of its threshold (the fixture script makes sure), where float32
    and float64 take the same spike decisions.

    ST_MEMCHECK (valgrind) shrinks the runs.
*/
#include "testutil.h"

#include "snn/snn.h"
#include "snn/train.h"
#include "snn/train_impl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

static bool memcheck(void)
{
    return getenv("ST_MEMCHECK") != NULL;
}

/* ---- helpers --------------------------------------------------------------------------- */

static uint64_t rng_s = 88172645463325252ULL;

static void rseed(uint64_t s)
{
    rng_s = s ? s : 1;
}

static double runif(void)
{
    rng_s ^= rng_s << 13;
    rng_s ^= rng_s >> 7;
    rng_s ^= rng_s << 17;
    return (double)(rng_s >> 11) / 9007199254740992.0;
}

typedef struct {
    st_train_config cfg;
    st_train_model *model;
    st_train *tr;
} rig;

/* Builds model and trainer from a configuration text, with n_in inputs. */
static bool rig_make(rig *r, const char *text, size_t n_in, unsigned threads,
                     void (*tweak)(st_train_config *))
{
    memset(r, 0, sizeof *r);
    int rc = st_train_config_parse(text, "test", &r->cfg);
    if (rc != ST_OK) {
        fprintf(stderr, "config: %s\n", st_errmsg());
        return false;
    }
    r->cfg.train.threads = threads;
    if (tweak)
        tweak(&r->cfg);
    r->model = st_train_model_new(n_in, r->cfg.layers, r->cfg.n_layers, r->cfg.init_seed, &rc);
    if (!r->model) {
        fprintf(stderr, "model: %s\n", st_errmsg());
        return false;
    }
    r->tr = st_train_new(r->model, &r->cfg.train, &rc);
    if (!r->tr) {
        fprintf(stderr, "trainer: %s\n", st_errmsg());
        st_train_model_destroy(&r->model);
        return false;
    }
    return true;
}

static void rig_free(rig *r)
{
    st_train_destroy(&r->tr);
    st_train_model_destroy(&r->model);
}

/* Random inputs, lengths T, T-1, T-3, ...; labels below K (or sequences). */
/* seq: 0 a class per sample, 1 a CTC label sequence, FRAME_LABELS a label per step */
#define FRAME_LABELS 2
static st_train_data *random_data(size_t B, size_t T, size_t C, size_t K, int seq, bool binary,
                                  unsigned seed)
{
    rseed(seed);
    st_train_data *d = st_train_data_new(B, T, C, NULL);
    float *x = malloc(T * C * sizeof *x);
    for (size_t b = 0; b < B; b++) {
        const size_t steps = T - (b * 2 < T / 2 ? b * 2 : 0) - (b ? 1 : 0);
        for (size_t e = 0; e < T * C; e++)
            x[e] = binary ? (runif() < 0.3 ? 1.0f : 0.0f) : (float)(runif() < 0.5 ? runif() : 0);
        if (seq == FRAME_LABELS) {
            int32_t lab[64];
            for (size_t t = 0; t < steps && t < 64; t++)
                lab[t] = (int32_t)((t / 3 + b) % K);
            st_train_data_set_seq(d, b, x, steps, lab, steps);
        } else if (seq) {
            int32_t lab[3];
            const size_t L = 1 + b % 3;
            for (size_t s = 0; s < L; s++)
                lab[s] = (int32_t)((b + s * 2) % (K - 1));
            st_train_data_set_seq(d, b, x, steps, lab, L);
        } else
            st_train_data_set(d, b, x, steps, (int32_t)(b % K));
    }
    free(x);
    return d;
}

static float *snapshot(const st_train_model *m)
{
    const size_t n = st_train_model_param_total(m);
    float *p = malloc((n ? n : 1) * sizeof *p);
    st_train_tensor t;
    for (size_t k = 0; k < st_train_model_param_count(m); k++) {
        st_train_model_param(m, k, &t);
        memcpy(p + t.offset, t.data, t.count * sizeof *p);
    }
    return p;
}

/* ---- surrogates ------------------------------------------------------------------------- */

static void test_surrogates(void)
{
    for (int s = 0; s < ST_TRAIN_N_SURR; s++) {
        const float alpha = st_train_surrogate_default_alpha((st_train_surrogate)s);
        CU_ASSERT(alpha > 0);
        st_train_surrogate back;
        CU_ASSERT_EQUAL(st_train_surrogate_from_name(st_train_surrogate_name(
                                                         (st_train_surrogate)s), &back), ST_OK);
        CU_ASSERT_EQUAL((int)back, s);
        /* the pseudo-derivative is the derivative of the smooth step */
        for (double u = -0.3; u <= 0.3; u += 0.0137) {
            const double h = 1e-2 / alpha;
            const double fd = ((double)st_train_surrogate_smooth((st_train_surrogate)s, alpha,
                                                                 (float)(u + h)) -
                               st_train_surrogate_smooth((st_train_surrogate)s, alpha,
                                                         (float)(u - h))) / (2 * h);
            const double an = st_train_surrogate_grad((st_train_surrogate)s, alpha, (float)u);
            CU_ASSERT(fabs(fd - an) <= 2e-3 * an + 1e-4);
        }
        CU_ASSERT(st_train_surrogate_smooth((st_train_surrogate)s, alpha, -1e6f) < 1e-3f);
    }
    /* Norse's SuperSpike at 0 and at u = 0.01 with alpha = 100: 1/(1 + 1)^2 */
    CU_ASSERT_DOUBLE_EQUAL(st_train_surrogate_grad(ST_TRAIN_SURR_SUPERSPIKE, 100, 0.0f), 1.0,
                           1e-7);
    CU_ASSERT_DOUBLE_EQUAL(st_train_surrogate_grad(ST_TRAIN_SURR_SUPERSPIKE, 100, 0.01f), 0.25,
                           1e-6);
    st_train_surrogate bad;
    CU_ASSERT_EQUAL(st_train_surrogate_from_name("tanh", &bad), ST_ERR_NOT_FOUND);
    CU_ASSERT_PTR_NOT_NULL(strstr(st_errmsg(), "superspike"));
}

/* ---- finite differences ------------------------------------------------------------------ */

static void smooth_mode(st_train_config *c)
{
    c->train.smooth_forward = true;
    c->train.detach_reset = false;
    c->train.chunk = 2; /* several chunks: the reduction is part of what is checked */
}

/* Central differences of the mean loss along one element and along a
   random direction per tensor, against the analytic gradient. */
static void fd_check(const char *name, const char *text, size_t n_in, size_t T, size_t B,
                     int seq, bool binary, void (*prepare)(st_train_model *))
{
    rig r;
    if (!rig_make(&r, text, n_in, 1, smooth_mode)) {
        CU_FAIL("rig");
        return;
    }
    if (prepare)
        prepare(r.model);
    const size_t K = st_train_model_outputs(r.model);
    st_train_data *d = random_data(B, T, n_in, K, seq, binary, 7);
    size_t idx[16];
    for (size_t b = 0; b < B; b++)
        idx[b] = b;
    st_train_stats st;
    CU_ASSERT_EQUAL_FATAL(st_train_gradient(r.tr, d, idx, B, &st), ST_OK);
    const size_t np = st_train_model_param_total(r.model);
    float *g = malloc(np * sizeof *g);
    for (size_t k = 0; k < st_train_model_param_count(r.model); k++) {
        st_train_tensor t;
        st_train_model_param(r.model, k, &t);
        memcpy(g + t.offset, st_train_grad(r.tr, k), t.count * sizeof *g);
    }
    st_train_stats e;
    st_train_evaluate(r.tr, d, &e);
    CU_ASSERT_DOUBLE_EQUAL(e.loss, st.loss, 1e-9 * fabs(st.loss) + 1e-12);
    rseed(99);
    int fails = 0;
    for (size_t k = 0; k < st_train_model_param_count(r.model); k++) {
        st_train_tensor t;
        st_train_model_param(r.model, k, &t);
        const float *gt = g + t.offset;
        float *dir = calloc(t.count, sizeof *dir);
        /* the largest element alone, then a random direction over all */
        for (int trial = 0; trial < 2; trial++) {
            size_t top = 0;
            for (size_t e2 = 0; e2 < t.count; e2++) {
                if (trial == 0)
                    top = fabsf(gt[e2]) > fabsf(gt[top]) ? e2 : top;
                else
                    dir[e2] = runif() < 0.5 ? -1.0f : 1.0f;
            }
            if (trial == 0)
                dir[top] = 1.0f;
            double an = 0, scale = 0;
            for (size_t e2 = 0; e2 < t.count; e2++) {
                an += (double)gt[e2] * dir[e2];
                scale += fabs((double)gt[e2] * dir[e2]);
            }
            float *x = t.data;
            float *saved = malloc(t.count * sizeof *saved);
            memcpy(saved, x, t.count * sizeof *saved);
            double mag = 0;
            for (size_t e2 = 0; e2 < t.count; e2++)
                mag = fabs(saved[e2]) > mag ? fabs(saved[e2]) : mag;
            const double h = 3e-3 * (mag > 0.1 ? mag : 0.1);
            double lp, lm;
            for (size_t e2 = 0; e2 < t.count; e2++)
                x[e2] = (float)(saved[e2] + h * dir[e2]);
            st_train_evaluate(r.tr, d, &e);
            lp = e.loss;
            for (size_t e2 = 0; e2 < t.count; e2++)
                x[e2] = (float)(saved[e2] - h * dir[e2]);
            st_train_evaluate(r.tr, d, &e);
            lm = e.loss;
            /* the step actually taken, after rounding to float */
            double hh = 0;
            for (size_t e2 = 0; e2 < t.count; e2++)
                if (dir[e2] != 0) {
                    hh = ((double)(float)(saved[e2] + h * dir[e2]) -
                          (double)(float)(saved[e2] - h * dir[e2])) / (2.0 * dir[e2]);
                    break;
                }
            memcpy(x, saved, t.count * sizeof *saved);
            free(saved);
            const double fd = (lp - lm) / (2 * hh);
            const double tol = 5e-3 * fabs(an) + 5e-4 * scale + 2e-6;
            if (!(fabs(fd - an) <= tol)) {
                fails++;
                fprintf(stderr, "\n  %s: %s (%s): analytic %.7g, finite difference %.7g\n", name,
                        t.name, trial ? "random direction" : "largest element", an, fd);
            }
            memset(dir, 0, t.count * sizeof *dir);
        }
        free(dir);
    }
    CU_ASSERT_EQUAL(fails, 0);
    free(g);
    st_train_data_destroy(&d);
    rig_free(&r);
}

#define FD_HEAD                                                                                    \
    "[data]\ntask = bands\n[surrogate]\nfunction = superspike\nalpha = 2\n[train]\nseed = 3\n"

static void test_fd_lif(void)
{
    fd_check("lif", FD_HEAD "[loss]\ntype = ce_max\n"
             "[layer hid]\nneurons = 7\nmodel = lif\nv_th = 0.3\ninit_scale = 4\n"
             "train_tau = yes\ntrain_threshold = yes\n"
             "[layer out]\nneurons = 3\nmodel = li\ninit_scale = 3\n",
             5, 12, 4, false, false, NULL);
}

static void test_fd_recurrent(void)
{
    fd_check("recurrent", FD_HEAD "[loss]\ntype = ce_mean\n"
             "[layer hid]\nneurons = 8\nmodel = lif\nrecurrent = yes\nrec_scale = 3\n"
             "v_th = 0.3\ninit_scale = 4\ntrain_threshold = yes\n"
             "[layer out]\nneurons = 3\nmodel = li\ninit_scale = 3\ntrain_tau = yes\n",
             5, 12, 4, false, true, NULL);
}

static void test_fd_lsnn(void)
{
    fd_check("lsnn", "[data]\ntask = bands\n[surrogate]\nfunction = arctan\nalpha = 2\n"
             "[loss]\ntype = ce_mean\n"
             "[layer adapt]\nneurons = 6\nmodel = lsnn\nrecurrent = yes\nrec_scale = 2\n"
             "v_th = 0.3\nbeta = 0.4\ntau_adapt_inv = 80\nreset = subtract\ninit_scale = 4\n"
             "train_tau = yes\ntrain_threshold = yes\n"
             "[layer out]\nneurons = 3\nmodel = li\ninit_scale = 3\n",
             4, 12, 4, false, false, NULL);
}

static void test_fd_cubalif(void)
{
    fd_check("cubalif", FD_HEAD "[loss]\ntype = ce_last\nrate_reg = 0.7\nrate_target = 0.2\n"
             "[layer hid]\nneurons = 6\nmodel = cubalif\nv_th = 0.2\nreset = none\n"
             "tau_syn_inv = 300\ninit_scale = 4\ntrain_tau = yes\ntrain_threshold = yes\n"
             "[layer out]\nneurons = 3\nmodel = li\ninit_scale = 3\n",
             4, 10, 4, false, false, NULL);
}

static void test_fd_li_readout(void)
{
    fd_check("li", FD_HEAD "[loss]\ntype = ce_max\n"
             "[layer out]\nneurons = 4\nmodel = li\ninit_scale = 3\ntrain_tau = yes\n",
             5, 10, 5, false, false, NULL);
}

static void test_fd_conv1d(void)
{
    fd_check("conv1d", FD_HEAD "[loss]\ntype = ce_mean\n"
             "[layer conv]\ntype = conv1d\nin_channels = 2\nout_channels = 3\nkernel = 3\n"
             "stride = 2\npadding = 1\nmodel = lif\nv_th = 0.3\ninit_scale = 5\n"
             "[layer out]\nneurons = 3\nmodel = li\ninit_scale = 3\n",
             14, 10, 4, false, false, NULL);
}

static void mid_delays(st_train_model *m)
{
    st_train_tensor t;
    if (st_train_model_param_find(m, "lag.d", &t) == ST_OK)
        for (size_t k = 0; k < t.count; k++)
            t.data[k] = 0.3f + 0.45f * (float)k; /* away from whole steps */
}

static void test_fd_delay(void)
{
    fd_check("delay", FD_HEAD "[loss]\ntype = ce_mean\n"
             "[layer hid]\nneurons = 6\nmodel = lif\nv_th = 0.3\ninit_scale = 4\n"
             "[layer lag]\ntype = delay\nmax_delay = 5\n"
             "[layer out]\nneurons = 3\nmodel = li\ninit_scale = 3\n",
             4, 14, 4, false, false, mid_delays);
}

static void test_fd_ctc(void)
{
    fd_check("ctc", FD_HEAD "[loss]\ntype = ctc\n"
             "[layer hid]\nneurons = 8\nmodel = lif\nrecurrent = yes\nv_th = 0.3\n"
             "init_scale = 4\n"
             "[layer out]\nneurons = 4\nmodel = li\ninit_scale = 3\n",
             5, 12, 4, true, false, NULL);
}

/* per-step cross-entropy (frame tagging, the trained VAD's loss) */
static void test_fd_ce_frame(void)
{
    fd_check("ce_frame", FD_HEAD "[loss]\ntype = ce_frame\n"
             "[layer hid]\nneurons = 8\nmodel = lsnn\nrecurrent = yes\nv_th = 0.3\n"
             "init_scale = 4\n"
             "[layer out]\nneurons = 2\nmodel = li\ninit_scale = 3\n",
             5, 12, 4, FRAME_LABELS, false, NULL);
}

/* ce_frame with the onsets weighted: the gradient is still the loss's */
static void test_fd_ce_frame_onset(void)
{
    fd_check("ce_frame onset", FD_HEAD "[loss]\ntype = ce_frame\nonset_steps = 2\n"
             "offset_steps = 1\nonset_weight = 4\noffset_weight = 3\n"
             "[layer hid]\nneurons = 8\nmodel = lsnn\nrecurrent = yes\nv_th = 0.3\n"
             "init_scale = 4\n"
             "[layer out]\nneurons = 2\nmodel = li\ninit_scale = 3\n",
             5, 12, 4, FRAME_LABELS, false, NULL);
}

/* ---- PyTorch fixtures ------------------------------------------------------------------ */

typedef struct {
    char name[64];
    int type;
    uint32_t count;
    float *f;
    char *text;
} fx_rec;

typedef struct {
    fx_rec *r;
    uint32_t n;
} fixture;

static void fx_free(fixture *fx)
{
    for (uint32_t k = 0; k < fx->n; k++) {
        free(fx->r[k].f);
        free(fx->r[k].text);
    }
    free(fx->r);
    fx->r = NULL;
}

static bool fx_load(const char *path, fixture *fx)
{
    memset(fx, 0, sizeof *fx);
    FILE *f = fopen(path, "rb");
    if (!f)
        return false;
    char magic[4];
    uint32_t ver, n;
    bool ok = fread(magic, 1, 4, f) == 4 && !memcmp(magic, "STGF", 4) &&
              fread(&ver, 4, 1, f) == 1 && ver == 1 && fread(&n, 4, 1, f) == 1 && n < 1000;
    if (ok) {
        fx->r = calloc(n, sizeof *fx->r);
        fx->n = n;
    }
    for (uint32_t k = 0; ok && k < n; k++) {
        fx_rec *r = &fx->r[k];
        uint32_t len, type, count;
        ok = fread(&len, 4, 1, f) == 1 && len < sizeof r->name && fread(r->name, 1, len, f) == len;
        ok = ok && fread(&type, 4, 1, f) == 1 && fread(&count, 4, 1, f) == 1 && count < (1u << 24);
        if (!ok)
            break;
        r->type = (int)type;
        r->count = count;
        if (type == 1) {
            r->text = calloc(count + 1, 1);
            ok = fread(r->text, 1, count, f) == count;
        } else {
            r->f = malloc((count ? count : 1) * sizeof *r->f);
            ok = fread(r->f, 4, count, f) == count;
        }
    }
    fclose(f);
    if (!ok)
        fx_free(fx);
    return ok;
}

static const fx_rec *fx_get(const fixture *fx, const char *name)
{
    for (uint32_t k = 0; k < fx->n; k++)
        if (!strcmp(fx->r[k].name, name))
            return &fx->r[k];
    return NULL;
}

static void check_fixture(const char *file)
{
    char path[256];
    snprintf(path, sizeof path, "tests/fixtures/%s", file);
    fixture fx;
    if (!fx_load(path, &fx)) {
        CU_FAIL("fixture missing or unreadable (run the tests from the repository root)");
        fprintf(stderr, "\n  cannot read %s\n", path);
        return;
    }
    const fx_rec *shape = fx_get(&fx, "shape"), *cfg = fx_get(&fx, "config");
    CU_ASSERT_PTR_NOT_NULL_FATAL(shape);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cfg);
    const size_t B = (size_t)shape->f[0], T = (size_t)shape->f[1], C = (size_t)shape->f[2];
    rig r;
    CU_ASSERT_FATAL(rig_make(&r, cfg->text, C, 1, NULL));
    /* the same weights */
    for (size_t k = 0; k < st_train_model_param_count(r.model); k++) {
        st_train_tensor t;
        st_train_model_param(r.model, k, &t);
        char name[96];
        snprintf(name, sizeof name, "param/%s", t.name);
        const fx_rec *p = fx_get(&fx, name);
        CU_ASSERT_PTR_NOT_NULL_FATAL(p);
        CU_ASSERT_EQUAL_FATAL(p->count, t.count);
        memcpy(t.data, p->f, t.count * sizeof(float));
    }
    /* the same data */
    const fx_rec *in = fx_get(&fx, "input"), *steps = fx_get(&fx, "steps");
    const fx_rec *labels = fx_get(&fx, "labels"), *tgt = fx_get(&fx, "targets");
    const fx_rec *tlen = fx_get(&fx, "target_lengths");
    st_train_data *d = st_train_data_new(B, T, C, NULL);
    size_t off = 0;
    for (size_t b = 0; b < B; b++) {
        const float *x = in->f + b * T * C;
        if (labels)
            st_train_data_set(d, b, x, (size_t)steps->f[b], (int32_t)labels->f[b]);
        else {
            int32_t lab[16];
            const size_t L = (size_t)tlen->f[b];
            for (size_t s = 0; s < L; s++)
                lab[s] = (int32_t)tgt->f[off + s];
            off += L;
            st_train_data_set_seq(d, b, x, (size_t)steps->f[b], lab, L);
        }
    }
    size_t idx[16];
    for (size_t b = 0; b < B; b++)
        idx[b] = b;
    st_train_stats st;
    CU_ASSERT_EQUAL_FATAL(st_train_gradient(r.tr, d, idx, B, &st), ST_OK);
    const double ref_loss = fx_get(&fx, "loss")->f[0];
    CU_ASSERT(fabs(st.loss - ref_loss) <= 1e-5 * fabs(ref_loss));
    if (!(fabs(st.loss - ref_loss) <= 1e-5 * fabs(ref_loss)))
        fprintf(stderr, "\n  %s: loss %.8g, torch %.8g\n", file, st.loss, ref_loss);
    /* the read-out, sample by sample through st_train_forward */
    const fx_rec *ro = fx_get(&fx, "readout");
    const size_t K = st_train_model_outputs(r.model);
    float *y = malloc(T * K * sizeof *y);
    double worst = 0;
    for (size_t b = 0; b < B; b++) {
        st_train_forward(r.tr, in->f + b * T * C, T, y);
        for (size_t e = 0; e < (size_t)steps->f[b] * K; e++) {
            const double dv = fabs(y[e] - ro->f[b * T * K + e]);
            worst = dv > worst ? dv : worst;
        }
    }
    CU_ASSERT(worst < 1e-4);
    free(y);
    /* every gradient */
    for (size_t k = 0; k < st_train_model_param_count(r.model); k++) {
        st_train_tensor t;
        st_train_model_param(r.model, k, &t);
        char name[96];
        snprintf(name, sizeof name, "grad/%s", t.name);
        const fx_rec *g = fx_get(&fx, name);
        CU_ASSERT_PTR_NOT_NULL_FATAL(g);
        const float *ours = st_train_grad(r.tr, k);
        double mx = 0, err = 0;
        for (size_t e = 0; e < t.count; e++) {
            mx = fabs(g->f[e]) > mx ? fabs(g->f[e]) : mx;
            const double de = fabs((double)ours[e] - g->f[e]);
            err = de > err ? de : err;
        }
        CU_ASSERT(mx > 0); /* the fixture exercises this tensor */
        if (!(mx > 0))
            fprintf(stderr, "\n  %s: %s has no gradient in the fixture\n", file, t.name);
        CU_ASSERT(err <= 1e-4 * mx + 1e-7);
        if (!(err <= 1e-4 * mx + 1e-7))
            fprintf(stderr, "\n  %s: %s differs from torch by %.3g (largest %.3g)\n", file,
                    t.name, err, mx);
    }
    st_train_data_destroy(&d);
    rig_free(&r);
    fx_free(&fx);
}

static void test_torch_fixtures(void)
{
    check_fixture("train_grad_lif.bin");
    check_fixture("train_grad_lsnn.bin");
    check_fixture("train_grad_cuba.bin");
    check_fixture("train_grad_ctc.bin");
}

/* ---- losses ------------------------------------------------------------------------------ */

/* -log p(labels) by summing every path of T symbols over K outputs that
   collapses to the labels, and its gradient w.r.t. the logits. */
static double ctc_brute(const float *y, size_t T, size_t K, const int32_t *lab, size_t L,
                        double *grad)
{
    double lp[16][8];
    for (size_t t = 0; t < T; t++) {
        double m = y[t * K], s = 0;
        for (size_t k = 1; k < K; k++)
            m = y[t * K + k] > m ? y[t * K + k] : m;
        for (size_t k = 0; k < K; k++)
            s += exp(y[t * K + k] - m);
        for (size_t k = 0; k < K; k++)
            lp[t][k] = y[t * K + k] - m - log(s);
    }
    size_t paths = 1;
    for (size_t t = 0; t < T; t++)
        paths *= K;
    double p = 0, occ[16][8] = {{0}};
    for (size_t code = 0; code < paths; code++) {
        size_t sym[16], c = code;
        for (size_t t = 0; t < T; t++) {
            sym[t] = c % K;
            c /= K;
        }
        int32_t out[16];
        size_t n = 0;
        for (size_t t = 0; t < T; t++)
            if (sym[t] != 0 && (t == 0 || sym[t] != sym[t - 1]))
                out[n++] = (int32_t)sym[t];
        if (n != L || memcmp(out, lab, L * sizeof *lab))
            continue;
        double lq = 0;
        for (size_t t = 0; t < T; t++)
            lq += lp[t][sym[t]];
        p += exp(lq);
        for (size_t t = 0; t < T; t++)
            occ[t][sym[t]] += exp(lq);
    }
    for (size_t t = 0; t < T; t++)
        for (size_t k = 0; k < K; k++)
            grad[t * K + k] = exp(lp[t][k]) - occ[t][k] / p;
    return -log(p);
}

static void test_ctc_bruteforce(void)
{
    const struct {
        size_t T, K, L;
        int32_t lab[3];
    } cases[] = {{4, 3, 2, {1, 2}}, {5, 3, 2, {1, 1}}, {4, 4, 1, {3}},
                 {6, 3, 3, {2, 1, 2}}, {3, 3, 2, {1, 1}}, {7, 4, 3, {1, 3, 3}}};
    rseed(5);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const size_t T = cases[c].T, K = cases[c].K, L = cases[c].L;
        float y[64], g[64] = {0};
        double gb[64], work[512];
        for (size_t e = 0; e < T * K; e++)
            y[e] = (float)(4 * runif() - 2);
        CU_ASSERT(tr_ctc_work_len(T, L, K) <= 512);
        const double ours = tr_ctc_loss(y, K, T, K, 0, cases[c].lab, L, 1.0f, g, work);
        const double ref = ctc_brute(y, T, K, cases[c].lab, L, gb);
        CU_ASSERT_DOUBLE_EQUAL(ours, ref, 1e-9 * fabs(ref) + 1e-12);
        for (size_t e = 0; e < T * K; e++)
            CU_ASSERT_DOUBLE_EQUAL(g[e], gb[e], 1e-6);
    }
    /* labels that cannot fit: [1, 1] needs 3 steps */
    float y[6] = {0};
    double work[64];
    CU_ASSERT(isinf(tr_ctc_loss(y, 3, 2, 3, 0, (const int32_t[]){1, 1}, 2, 1.0f, NULL, work)));
    /* greedy decoding merges repeats and drops blanks */
    const float yy[] = {0, 5, 0, 0, 5, 0, 5, 0, 0, 0, 5, 0, 0, 0, 5};
    int32_t out[5];
    CU_ASSERT_EQUAL(tr_ctc_greedy(yy, 3, 5, 3, 0, out), 3);
    CU_ASSERT(out[0] == 1 && out[1] == 1 && out[2] == 2);
}

static void test_ce_losses(void)
{
    /* y [3 steps][2 outputs] */
    const float y[6] = {0.1f, 0.5f, 0.9f, 0.2f, 0.3f, 0.4f};
    float g[6];
    int32_t pred;
    /* max: logits 0.9, 0.5 */
    memset(g, 0, sizeof g);
    double l = tr_ce_loss(ST_TRAIN_LOSS_CE_MAX, y, 2, 3, 2, 1, 1.0f, g, &pred);
    const double p1 = 1 / (1 + exp(0.9 - 0.5));
    CU_ASSERT_DOUBLE_EQUAL(l, -log(p1), 1e-6);
    CU_ASSERT_EQUAL(pred, 0);
    CU_ASSERT_DOUBLE_EQUAL(g[2], 1 - p1, 1e-6); /* output 0 peaks at step 1 */
    CU_ASSERT_DOUBLE_EQUAL(g[1], p1 - 1, 1e-6); /* output 1 peaks at step 0 */
    CU_ASSERT_EQUAL(g[0], 0.0f);
    /* mean: logits 0.4333, 0.3667 */
    memset(g, 0, sizeof g);
    l = tr_ce_loss(ST_TRAIN_LOSS_CE_MEAN, y, 2, 3, 2, 0, 0.5f, g, &pred);
    const double q0 = 1 / (1 + exp(1.1 / 3 - 1.3 / 3));
    CU_ASSERT_DOUBLE_EQUAL(l, -log(q0), 1e-7);
    CU_ASSERT_DOUBLE_EQUAL(g[0], 0.5 * (q0 - 1) / 3, 1e-6);
    /* last */
    memset(g, 0, sizeof g);
    l = tr_ce_loss(ST_TRAIN_LOSS_CE_LAST, y, 2, 3, 2, 1, 1.0f, g, &pred);
    CU_ASSERT_DOUBLE_EQUAL(l, log(exp(0.3) + exp(0.4)) - 0.4, 1e-7);
    CU_ASSERT_EQUAL(pred, 1);
    CU_ASSERT(g[0] == 0 && g[1] == 0 && g[4] != 0);
}

/* ---- the optimizer ---------------------------------------------------------------------- */

#define OPT_CFG                                                                                    \
    "[data]\ntask = bands\n[layer out]\nneurons = 3\nmodel = li\n[optimizer]\n"

static void opt_run(const char *opt_text, bool adamw, double wd, double clip)
{
    char text[512];
    snprintf(text, sizeof text, OPT_CFG "%s", opt_text);
    rig r;
    CU_ASSERT_FATAL(rig_make(&r, text, 2, 1, NULL));
    /* tensors: out.w [2][3] (decayed), out.b [3] (not) */
    st_train_tensor w, b;
    CU_ASSERT_EQUAL_FATAL(st_train_model_param_find(r.model, "out.w", &w), ST_OK);
    CU_ASSERT_EQUAL_FATAL(st_train_model_param_find(r.model, "out.b", &b), ST_OK);
    const size_t n = w.count + b.count;
    double p[9], m[9] = {0}, v[9] = {0};
    for (size_t e = 0; e < w.count; e++)
        p[e] = w.data[e];
    for (size_t e = 0; e < b.count; e++)
        p[w.count + e] = b.data[e] = (float)(0.1 * (double)e - 0.05);
    const double lr = 0.01, b1 = 0.9, b2 = 0.999, eps = 1e-8;
    rseed(11);
    for (int step = 1; step <= 5; step++) {
        double g[9], ss = 0;
        for (size_t e = 0; e < n; e++) {
            g[e] = (float)((runif() - 0.4) * (step == 2 ? 50 : 1));
            ss += g[e] * g[e];
        }
        for (size_t e = 0; e < w.count; e++)
            st_train_grad(r.tr, 0)[e] = (float)g[e];
        for (size_t e = 0; e < b.count; e++)
            st_train_grad(r.tr, 1)[e] = (float)g[w.count + e];
        st_train_stats st;
        CU_ASSERT_EQUAL(st_train_apply(r.tr, &st), ST_OK);
        CU_ASSERT_DOUBLE_EQUAL(st.grad_norm, sqrt(ss), 1e-6 * sqrt(ss));
        const double coef = clip > 0 && sqrt(ss) > clip ? clip / (sqrt(ss) + 1e-6) : 1;
        for (size_t e = 0; e < n; e++) {
            double gg = (float)(g[e] * coef);
            const bool decay = e < w.count;
            if (decay && adamw)
                p[e] *= 1 - lr * wd;
            else if (decay)
                gg += wd * p[e];
            m[e] = b1 * m[e] + (1 - b1) * gg;
            v[e] = b2 * v[e] + (1 - b2) * gg * gg;
            const double mh = m[e] / (1 - pow(b1, step)), vh = v[e] / (1 - pow(b2, step));
            p[e] -= lr * mh / (sqrt(vh) + eps);
        }
    }
    for (size_t e = 0; e < w.count; e++)
        CU_ASSERT_DOUBLE_EQUAL(w.data[e], p[e], 2e-6);
    for (size_t e = 0; e < b.count; e++)
        CU_ASSERT_DOUBLE_EQUAL(b.data[e], p[w.count + e], 2e-6);
    CU_ASSERT_EQUAL(st_train_steps_done(r.tr), 5);
    rig_free(&r);
}

static void test_adam(void)
{
    opt_run("type = adam\nlr = 0.01\nschedule = constant\n", false, 0, 0);
    opt_run("type = adam\nlr = 0.01\nweight_decay = 0.1\nschedule = constant\n", false, 0.1, 0);
    opt_run("type = adam\nlr = 0.01\nclip = 2\nschedule = constant\n", false, 0, 2);
}

static void test_adamw(void)
{
    opt_run("type = adamw\nlr = 0.01\nweight_decay = 0.5\nschedule = constant\n", true, 0.5, 0);
    opt_run("type = adamw\nlr = 0.01\nweight_decay = 0.05\nclip = 1.5\n", true, 0.05, 1.5);
}

static void test_schedule(void)
{
    rig r;
    CU_ASSERT_FATAL(rig_make(&r, OPT_CFG "lr = 0.1\nlr_min = 0.01\nwarmup = 4\n", 2, 1, NULL));
    st_train_destroy(&r.tr);
    st_train_params p = r.cfg.train;
    p.decay_steps = 14;
    r.tr = st_train_new(r.model, &p, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r.tr);
    for (int s = 0; s < 20; s++) {
        double want;
        if (s < 4)
            want = 0.1 * (s + 1) / 4;
        else {
            double prog = (s - 4) / 10.0;
            prog = prog < 1 ? prog : 1;
            want = 0.01 + 0.5 * 0.09 * (1 + cos(M_PI * prog));
        }
        CU_ASSERT_DOUBLE_EQUAL(st_train_next_lr(r.tr), want, 1e-7);
        st_train_apply(r.tr, NULL);
    }
    rig_free(&r);
}

/* ---- determinism, checkpoints -------------------------------------------------------------- */

#define SMALL_TASK                                                                                 \
    "[data]\ntask = bands\nsamples = 48\nsteps = 30\nchannels = 12\nclasses = 3\n"             \
    "[layer hid]\nneurons = 24\nmodel = lif\nrecurrent = yes\ninit_scale = 4\n"                \
    "train_tau = yes\ntrain_threshold = yes\n"                                                   \
    "[layer out]\nneurons = 3\nmodel = li\ninit_scale = 2\n"                                     \
    "[optimizer]\ntype = adamw\nlr = 0.01\nweight_decay = 0.01\nclip = 5\nwarmup = 2\n"         \
    "[train]\nbatch = 16\nchunk = 4\nseed = 5\n"

static st_train_data *small_task_data(const st_train_config *c)
{
    return st_train_data_generate(&c->task, NULL);
}

static void no_events(st_train_config *c)
{
    c->train.event_driven = false;
}

/* Whether two rigs' models hold the same parameters, bit for bit. */
static bool same_params(const rig *x, const rig *y)
{
    const size_t bytes = st_train_model_param_total(x->model) * sizeof(float);
    float *px = snapshot(x->model), *py = snapshot(y->model);
    const bool same = px && py && memcmp(px, py, bytes) == 0;
    free(px);
    free(py);
    return same;
}

/* 1 thread, 2 threads, and the multiply-everything path: the same bits */
static void test_threads_identical(void)
{
    rig a, b, c;
    CU_ASSERT_FATAL(rig_make(&a, SMALL_TASK, 12, 1, NULL));
    CU_ASSERT_FATAL(rig_make(&b, SMALL_TASK, 12, 2, NULL));
    CU_ASSERT_FATAL(rig_make(&c, SMALL_TASK, 12, 2, no_events));
    st_train_data *d = small_task_data(&a.cfg);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    st_train_stats sa, sb, sc;
    for (int e = 0; e < (memcheck() ? 1 : 2); e++) {
        CU_ASSERT_EQUAL(st_train_epoch(a.tr, d, NULL, NULL, &sa), ST_OK);
        CU_ASSERT_EQUAL(st_train_epoch(b.tr, d, NULL, NULL, &sb), ST_OK);
        CU_ASSERT_EQUAL(st_train_epoch(c.tr, d, NULL, NULL, &sc), ST_OK);
        CU_ASSERT_EQUAL(sa.loss, sb.loss);
        CU_ASSERT_EQUAL(sa.loss, sc.loss);
    }
    CU_ASSERT_TRUE(same_params(&a, &b));
    CU_ASSERT_TRUE(same_params(&a, &c));
    st_train_data_destroy(&d);
    rig_free(&a);
    rig_free(&b);
    rig_free(&c);
}

/* An augmentation of training inputs (SpecAugment's masks, the warps):
   the same draws on any thread count, a different run from the plain one,
   never on evaluation. */
static void augment_case(const char *augmented)
{
    rig a, b, c;
    CU_ASSERT_FATAL(rig_make(&a, augmented, 12, 1, NULL));
    CU_ASSERT_FATAL(rig_make(&b, augmented, 12, 2, NULL));
    CU_ASSERT_FATAL(rig_make(&c, SMALL_TASK, 12, 1, NULL));
    st_train_data *d = small_task_data(&a.cfg);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    /* before any step the augmentation changes nothing: evaluation never has it */
    st_train_stats ea, ec;
    CU_ASSERT_EQUAL(st_train_evaluate(a.tr, d, &ea), ST_OK);
    CU_ASSERT_EQUAL(st_train_evaluate(c.tr, d, &ec), ST_OK);
    CU_ASSERT_EQUAL(ea.loss, ec.loss);
    st_train_stats sa, sb, sc;
    CU_ASSERT_EQUAL(st_train_epoch(a.tr, d, NULL, NULL, &sa), ST_OK);
    CU_ASSERT_EQUAL(st_train_epoch(b.tr, d, NULL, NULL, &sb), ST_OK);
    CU_ASSERT_EQUAL(st_train_epoch(c.tr, d, NULL, NULL, &sc), ST_OK);
    CU_ASSERT_EQUAL(sa.loss, sb.loss);
    CU_ASSERT_NOT_EQUAL(sa.loss, sc.loss);
    CU_ASSERT_TRUE(same_params(&a, &b));
    CU_ASSERT_FALSE(same_params(&a, &c));
    st_train_data_destroy(&d);
    rig_free(&a);
    rig_free(&b);
    rig_free(&c);
}

/* SMALL_TASK with `line` added to its [train] is refused, the message
   naming `key`. */
static void refused_train_key(const char *line, const char *key)
{
    char text[1024];
    snprintf(text, sizeof text, "%s%s\n", SMALL_TASK, line);
    st_train_config cfg;
    CU_ASSERT_EQUAL(st_train_config_parse(text, "bad.ini", &cfg), ST_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(st_errmsg(), key));
}

/* SpecAugment: as augment_case, and bad settings refused. */
static void test_spec_augment(void)
{
    augment_case(SMALL_TASK "mask_freq = 2\nmask_freq_width = 4\nmask_time = 2\n"
                            "mask_time_width = 6\n");
    refused_train_key("mask_freq = 65", "mask_freq");
    refused_train_key("mask_time_width = -3", "mask_time_width");
}

/* Real-valued samples of 30 steps x 12 channels: each one value throughout
   (flat) or a ramp across channels and steps. */
static st_train_data *warp_data(bool flat)
{
    st_train_data *d = st_train_data_new(24, 30, 12, NULL);
    float x[30 * 12];
    for (size_t k = 0; d && k < 24; k++) {
        for (size_t t = 0; t < 30; t++)
            for (size_t c = 0; c < 12; c++)
                x[t * 12 + c] = 0.1f + 0.07f * (float)k +
                                (flat ? 0.0f : 0.05f * (float)c + 0.02f * (float)t);
        if (st_train_data_set(d, k, x, 30, (int32_t)(k % 3)) != ST_OK)
            st_train_data_destroy(&d);
    }
    return d;
}

/* The warps (time and VTLP): as augment_case; on samples that are one
   value throughout they change nothing (they read the sample itself, at
   places between its steps and channels), on ramps they do; bad settings
   refused. */
static void test_warps(void)
{
    const char *warped = SMALL_TASK "warp_time = 0.2\nwarp_freq = 0.15\n";
    augment_case(warped);
    for (int flat = 1; flat >= 0; flat--) {
        rig a, c;
        CU_ASSERT_FATAL(rig_make(&a, warped, 12, 2, NULL));
        CU_ASSERT_FATAL(rig_make(&c, SMALL_TASK, 12, 2, NULL));
        CU_ASSERT_EQUAL(a.cfg.train.warp_freq, 0.15f);
        st_train_data *d = warp_data(flat);
        CU_ASSERT_PTR_NOT_NULL_FATAL(d);
        st_train_stats sa, sc;
        CU_ASSERT_EQUAL(st_train_epoch(a.tr, d, NULL, NULL, &sa), ST_OK);
        CU_ASSERT_EQUAL(st_train_epoch(c.tr, d, NULL, NULL, &sc), ST_OK);
        CU_ASSERT_EQUAL(same_params(&a, &c), flat);
        st_train_data_destroy(&d);
        rig_free(&a);
        rig_free(&c);
    }
    refused_train_key("warp_time = 0.6", "warp_time");
    refused_train_key("warp_freq = -0.1", "warp_freq");
}

static void test_checkpoint_resume(void)
{
    char path[512];
    st_test_tmpfile(path, sizeof path, "train.ckpt");
    rig a, b, c;
    CU_ASSERT_FATAL(rig_make(&a, SMALL_TASK, 12, 1, NULL));
    CU_ASSERT_FATAL(rig_make(&b, SMALL_TASK, 12, 2, NULL));
    st_train_data *d = small_task_data(&a.cfg);
    /* a: two epochs straight; b: one, saved; c: loads b's and does the second */
    st_train_epoch(a.tr, d, NULL, NULL, NULL);
    st_train_epoch(a.tr, d, NULL, NULL, NULL);
    st_train_epoch(b.tr, d, NULL, NULL, NULL);
    CU_ASSERT_EQUAL_FATAL(st_train_save(b.tr, path, SMALL_TASK), ST_OK);
    rig_free(&b);
    CU_ASSERT_FATAL(rig_make(&c, SMALL_TASK, 12, 1, NULL));
    CU_ASSERT_EQUAL_FATAL(st_train_load(c.tr, path), ST_OK);
    CU_ASSERT_EQUAL(st_train_epochs_done(c.tr), 1);
    st_train_epoch(c.tr, d, NULL, NULL, NULL);
    CU_ASSERT_EQUAL(st_train_steps_done(c.tr), st_train_steps_done(a.tr));
    float *pa = snapshot(a.model), *pc = snapshot(c.model);
    CU_ASSERT_EQUAL(memcmp(pa, pc, st_train_model_param_total(a.model) * sizeof(float)), 0);
    free(pa);
    free(pc);
    char text[4096];
    CU_ASSERT_EQUAL(st_train_checkpoint_config(path, text, sizeof text), ST_OK);
    CU_ASSERT_STRING_EQUAL(text, SMALL_TASK);
    /* a checkpoint of another network is refused, naming the tensor */
    rig o;
    CU_ASSERT_FATAL(rig_make(&o, OPT_CFG, 12, 1, NULL));
    CU_ASSERT_EQUAL(st_train_load(o.tr, path), ST_ERR_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(st_errmsg(), "out.w"));
    rig_free(&o);
    st_train_data_destroy(&d);
    rig_free(&a);
    rig_free(&c);
}

/* ---- bad configurations ----------------------------------------------------------------- */

static void expect_refusal(const char *text, size_t n_in, const char *needle)
{
    st_train_config c;
    int rc = st_train_config_parse(text, "bad.ini", &c);
    st_train_model *m = NULL;
    st_train *tr = NULL;
    st_train_data *d = NULL;
    if (rc == ST_OK) {
        d = st_train_data_generate(&c.task, &rc);
        if (d && n_in == 0)
            n_in = st_train_data_channels(d);
    }
    if (rc == ST_OK)
        m = st_train_model_new(n_in, c.layers, c.n_layers, 1, &rc);
    if (rc == ST_OK)
        tr = st_train_new(m, &c.train, &rc);
    if (rc == ST_OK)
        rc = st_train_check_data(tr, d, "training data");
    CU_ASSERT(rc != ST_OK);
    CU_ASSERT_PTR_NOT_NULL(strstr(st_errmsg(), needle));
    if (!strstr(st_errmsg(), needle))
        fprintf(stderr, "\n  wanted '%s' in: %s\n", needle, st_errmsg());
    st_train_destroy(&tr);
    st_train_model_destroy(&m);
    st_train_data_destroy(&d);
}

#define GOOD_DATA "[data]\ntask = bands\nsamples = 8\nsteps = 20\nchannels = 8\nclasses = 2\n"
#define GOOD_OUT "[layer out]\nneurons = 2\nmodel = li\n"

/* The loss of a frame-tagging net with onset weights (labels in runs of 3
   steps: 0 0 0 1 1 1 ...). Weighting every step of label 1 by w makes the
   loss L0 + w (L1 - L0), with L0 the steps of label 0 alone and L1 the
   unweighted loss; weighting only the first step of each run lands
   strictly between the unweighted loss and the all-steps one. */
static double onset_loss(const char *loss_keys)
{
    char text[512];
    snprintf(text, sizeof text, "[data]\ntask = bands\n[train]\nseed = 3\n[loss]\n"
             "type = ce_frame\n%s[layer hid]\nneurons = 8\nmodel = lsnn\nrecurrent = yes\n"
             "v_th = 0.3\ninit_scale = 4\n[layer out]\nneurons = 2\nmodel = li\n"
             "init_scale = 3\n", loss_keys);
    rig r;
    if (!rig_make(&r, text, 5, 1, NULL))
        return NAN;
    st_train_data *d = random_data(4, 12, 5, 2, FRAME_LABELS, false, 7);
    st_train_stats e;
    st_train_evaluate(r.tr, d, &e);
    st_train_data_destroy(&d);
    rig_free(&r);
    return e.loss;
}

static void test_onset_weight(void)
{
    const double l1 = onset_loss(""), same = onset_loss("onset_steps = 3\nonset_weight = 1\n");
    const double l0 = onset_loss("onset_steps = 3\nonset_weight = 0\n");
    const double l3 = onset_loss("onset_steps = 3\nonset_weight = 3\n");
    const double first = onset_loss("onset_steps = 1\nonset_weight = 3\n");
    CU_ASSERT_DOUBLE_EQUAL(same, l1, 1e-12);
    CU_ASSERT(l0 > 0 && l0 < l1);
    CU_ASSERT_DOUBLE_EQUAL(l3, l0 + 3 * (l1 - l0), 1e-5 * l3);
    CU_ASSERT(first > l1 + 1e-4 && first < l3 - 1e-4);
    /* the offsets: label 0 after a run of 1 (not the 0s a sample opens with) */
    const double o0 = onset_loss("offset_steps = 3\noffset_weight = 0\n");
    const double o3 = onset_loss("offset_steps = 3\noffset_weight = 3\n");
    const double both = onset_loss("onset_steps = 3\nonset_weight = 0\n"
                                   "offset_steps = 3\noffset_weight = 0\n");
    CU_ASSERT(o0 > 0 && o0 < l1);
    CU_ASSERT_DOUBLE_EQUAL(o3, o0 + 3 * (l1 - o0), 1e-5 * o3);
    CU_ASSERT(both > 0 && both < o0 && both < l0); /* the 0s that open a sample are left */
    CU_ASSERT_DOUBLE_EQUAL(l1 - both, (l1 - l0) + (l1 - o0), 1e-5 * l1);
    expect_refusal(GOOD_DATA GOOD_OUT "[loss]\nonset_weight = -1\n", 0, "onset_weight");
    expect_refusal(GOOD_DATA GOOD_OUT "[loss]\nonset_steps = many\n", 0, "onset_steps");
    expect_refusal(GOOD_DATA GOOD_OUT "[loss]\noffset_weight = inf\n", 0, "offset_weight");
}

static void test_bad_configs(void)
{
    expect_refusal(GOOD_DATA GOOD_OUT "[optimizer]\nlr = fast\n", 0,
                   "bad.ini:11: [optimizer] lr: 'fast' is not a number");
    expect_refusal(GOOD_DATA GOOD_OUT "[optimizer]\nlr = nan\n", 0, "not a finite number");
    expect_refusal(GOOD_DATA GOOD_OUT "[optimizer]\nlr = -1\n", 0, "out of range");
    expect_refusal(GOOD_DATA GOOD_OUT "[optimizer]\nlearning_rate = 1\n", 0, "unknown key");
    expect_refusal(GOOD_DATA, 0, "no layers");
    expect_refusal(GOOD_OUT, 0, "no data");
    expect_refusal(GOOD_DATA GOOD_OUT "[trian]\n", 0, "unknown section [trian]");
    expect_refusal(GOOD_DATA GOOD_OUT "[train]\nbatch = 0\n", 0, "batch: 0 is out of range");
    expect_refusal(GOOD_DATA "[layer c]\ntype = conv1d\nin_channels = 3\nout_channels = 2\n"
                   "kernel = 2\n" GOOD_OUT, 0, "8 inputs do not split into 3 channels");
    expect_refusal(GOOD_DATA "[layer c]\ntype = conv1d\nin_channels = 2\nout_channels = 2\n"
                   "kernel = 9\n" GOOD_OUT, 0, "longer than the input");
    expect_refusal(GOOD_DATA "[layer out]\nneurons = 3\nmodel = adex\n", 0,
                   "differentiates lif, lsnn, cubalif and li");
    expect_refusal(GOOD_DATA "[layer out]\nneurons = 2\nmodel = li\ntau_mem_inv = -3\n", 0,
                   "tau_mem_inv");
    expect_refusal(GOOD_DATA "[layer out]\nneurons = 2\nmodel = li\nv_th = 1\n", 0,
                   "nor a parameter of model li");
    expect_refusal("[data]\ntask = bands\nsamples = 8\nsteps = 20\nchannels = 8\nclasses = 4\n"
                   GOOD_OUT, 0, "has label 2 but the read-out 'out' has 2 outputs");
    expect_refusal("[data]\ntask = bands\nsamples = 0\nsteps = 20\nchannels = 8\nclasses = 2\n"
                   GOOD_OUT, 0, "is empty");
    expect_refusal(GOOD_DATA GOOD_OUT, 5, "has 8 channels but the model takes 5 inputs");
    expect_refusal(GOOD_DATA GOOD_OUT "[loss]\ntype = ctc\n", 0, "needs a label sequence");
    expect_refusal("[data]\ntask = sequence\nsamples = 8\nsteps = 40\nchannels = 8\nclasses = 2\n"
                   "[layer out]\nneurons = 2\nmodel = li\n[loss]\ntype = ctc\n", 0,
                   "has 2 outputs, one of them the blank");
    expect_refusal(GOOD_DATA GOOD_OUT "[loss]\ntype = ce_frame\n", 0,
                   "the loss is ce_frame, which needs a label sequence");
    expect_refusal("[data]\ntask = sequence\nsamples = 8\nsteps = 40\nchannels = 8\nclasses = 2\n"
                   "[layer out]\nneurons = 3\nmodel = li\n[loss]\ntype = ce_frame\n", 0,
                   "but 40 steps: ce_frame takes one label per step");
    expect_refusal(GOOD_DATA GOOD_OUT "[loss]\ntype = hinge\n", 0, "no loss 'hinge'");
    expect_refusal(GOOD_DATA "[layer out]\nneurons = 2\nmodel = li\nrecurrent = maybe\n", 0,
                   "'maybe' is not yes or no");
}

/* ---- a training run that learns ------------------------------------------------------------- */

static void test_tiny_training(void)
{
    const char *text = "[data]\ntask = bands\nsamples = 384\nsteps = 60\nchannels = 24\n"
                       "classes = 4\nrate_signal = 0.4\n"
                       "[layer hid]\nneurons = 48\nmodel = lif\ninit_scale = 4\n"
                       "[layer out]\nneurons = 4\nmodel = li\ninit_scale = 3\n"
                       "[optimizer]\ntype = adam\nlr = 0.01\n[train]\nbatch = 32\nseed = 2\n";
    rig r;
    CU_ASSERT_FATAL(rig_make(&r, text, 24, 0, NULL));
    st_train_data *d = st_train_data_generate(&r.cfg.task, NULL);
    st_train_stats first, last;
    st_train_evaluate(r.tr, d, &first);
    const int epochs = memcheck() ? 1 : 6;
    for (int e = 0; e < epochs; e++)
        CU_ASSERT_EQUAL(st_train_epoch(r.tr, d, NULL, NULL, NULL), ST_OK);
    st_train_evaluate(r.tr, d, &last);
    CU_ASSERT(last.loss < first.loss);
    if (!memcheck()) {
        /* about 1.4 -> 0.2 and 25 % -> 95 % (docs/TRAINING.md) */
        CU_ASSERT(last.loss < 0.5 * first.loss);
        CU_ASSERT(last.accuracy > 0.8);
        if (!(last.accuracy > 0.8))
            fprintf(stderr, "\n  tiny training: loss %.3f -> %.3f, accuracy %.3f -> %.3f\n",
                    first.loss, last.loss, first.accuracy, last.accuracy);
    }
    CU_ASSERT(last.rate > 0 && last.rate < 1);
    st_train_data_destroy(&d);
    rig_free(&r);
}

/* ---- export ------------------------------------------------------------------------------ */

/* Steps the engine net over x [T][C] and compares its output with y. */
static double engine_diff(const st_snn_net *net, const float *x, size_t T, size_t C,
                          const float *y, size_t K, bool *bit_equal)
{
    st_snn_state *s = st_snn_state_new(net, NULL);
    const int out = st_snn_net_find(net, "output");
    double worst = 0;
    *bit_equal = true;
    for (size_t t = 0; t < T; t++) {
        st_snn_step(net, s, x + t * C);
        size_t n;
        const float *o = st_snn_state_output(s, out, &n);
        for (size_t k = 0; k < K && k < n; k++) {
            const double d = fabs((double)o[k] - y[t * K + k]);
            worst = d > worst ? d : worst;
            *bit_equal &= memcmp(&o[k], &y[t * K + k], sizeof(float)) == 0 || o[k] == y[t * K + k];
        }
    }
    st_snn_state_destroy(&s);
    return worst;
}

static void perturb(st_train_model *m)
{
    /* trained rates and thresholds away from their shared start, delays
       off the whole steps (the forward and the export round them) */
    rseed(21);
    for (size_t k = 0; k < st_train_model_param_count(m); k++) {
        st_train_tensor t;
        st_train_model_param(m, k, &t);
        const char *what = strrchr(t.name, '.') + 1;
        for (size_t e = 0; e < t.count; e++) {
            if (!strcmp(what, "a") || !strcmp(what, "s") || !strcmp(what, "ad"))
                t.data[e] *= (float)(0.7 + 0.6 * runif());
            else if (!strcmp(what, "th"))
                t.data[e] *= (float)(0.8 + 0.4 * runif());
            else if (!strcmp(what, "d"))
                t.data[e] = (float)(4 * runif());
            else if (!strcmp(what, "b"))
                t.data[e] = (float)(0.2 * runif() - 0.1);
        }
    }
    st_train_model_changed(m);
}

#define EXPORT_NET                                                                                 \
    "[data]\ntask = bands\n"                                                                       \
    "[layer conv]\ntype = conv1d\nin_channels = 2\nout_channels = 4\nkernel = 3\npadding = 1\n"  \
    "model = lif\ninit_scale = 6\nv_th = 0.4\ntrain_threshold = yes\n"                           \
    "[layer lag]\ntype = delay\nmax_delay = 4\n"                                                 \
    "[layer adapt]\nneurons = 12\nmodel = lsnn\nrecurrent = yes\ninit_scale = 5\nrec_scale = 2\n" \
    "v_th = 0.5\ntrain_tau = yes\ntrain_threshold = yes\nreset = subtract\n"                     \
    "[layer cuba]\nneurons = 10\nmodel = cubalif\ninit_scale = 5\ntrain_tau = yes\n"              \
    "[layer out]\nneurons = 3\nmodel = li\ninit_scale = 3\ntrain_tau = yes\n"

static void test_export_engine(void)
{
    const size_t C = 16, T = 60, K = 3;
    rig r;
    CU_ASSERT_FATAL(rig_make(&r, EXPORT_NET, C, 1, NULL));
    perturb(r.model);
    int err;
    st_snn_net *net = st_train_export(r.model, &err);
    if (!net)
        fprintf(stderr, "\n  export: %s\n", st_errmsg());
    CU_ASSERT_PTR_NOT_NULL_FATAL(net);
    float *x = malloc(T * C * sizeof *x), *y = malloc(T * K * sizeof *y);
    for (int trial = 0; trial < 3; trial++) {
        rseed(40 + (unsigned)trial);
        for (size_t e = 0; e < T * C; e++) /* spikes, then real values */
            x[e] = trial < 2 ? (runif() < 0.25 ? 1.0f : 0.0f) : (float)runif();
        CU_ASSERT_EQUAL(st_train_forward(r.tr, x, T, y), ST_OK);
        bool exact;
        engine_diff(net, x, T, C, y, K, &exact);
        CU_ASSERT(exact);
    }
    /* the layers did spike */
    st_train_stats st;
    st_train_data *d = random_data(4, T, C, K, false, true, 3);
    st_train_evaluate(r.tr, d, &st);
    CU_ASSERT(st.rate > 0.01);
    /* the model file gives the same net */
    char path[512];
    st_test_tmpfile(path, sizeof path, "trained.stm");
    CU_ASSERT_EQUAL_FATAL(st_train_export_file(r.model, path), ST_OK);
    st_snn_net *loaded = st_snn_net_load(path, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(loaded);
    bool exact;
    engine_diff(loaded, x, T, C, y, K, &exact);
    CU_ASSERT(exact);
    /* NIR cannot hold an lsnn: refused by name */
    st_test_tmpfile(path, sizeof path, "trained.nir");
    CU_ASSERT_EQUAL(st_train_export_nir(r.model, path), ST_ERR_UNSUPPORTED);
    st_snn_net_destroy(&loaded);
    st_snn_net_destroy(&net);
    st_train_data_destroy(&d);
    free(x);
    free(y);
    rig_free(&r);
}

static void test_export_nir(void)
{
    const char *text = "[data]\ntask = bands\n"
                       "[layer conv]\ntype = conv1d\nin_channels = 2\nout_channels = 3\n"
                       "kernel = 3\nmodel = lif\ninit_scale = 6\nv_th = 0.4\n"
                       "[layer hid]\nneurons = 12\nmodel = lif\nrecurrent = yes\ninit_scale = 5\n"
                       "train_tau = yes\ntrain_threshold = yes\n"
                       "[layer cuba]\nneurons = 8\nmodel = cubalif\ninit_scale = 5\n"
                       "[layer out]\nneurons = 3\nmodel = li\ninit_scale = 3\n";
    const size_t C = 16, T = 60, K = 3;
    rig r;
    CU_ASSERT_FATAL(rig_make(&r, text, C, 1, NULL));
    perturb(r.model);
    char path[512];
    st_test_tmpfile(path, sizeof path, "trained2.nir");
    int err = st_train_export_nir(r.model, path);
    if (err != ST_OK)
        fprintf(stderr, "\n  NIR export: %s\n", st_errmsg());
    CU_ASSERT_EQUAL_FATAL(err, ST_OK);
    st_snn_net *net = NULL;
    st_nir_params np = st_nir_default_params();
    np.dt_s = 1e-3;
    net = st_snn_net_load_nir(path, &np, &err);
    if (!net)
        fprintf(stderr, "\n  NIR import: %s\n", st_errmsg());
    CU_ASSERT_PTR_NOT_NULL_FATAL(net);
    float *x = malloc(T * C * sizeof *x), *y = malloc(T * K * sizeof *y);
    rseed(77);
    for (size_t e = 0; e < T * C; e++)
        x[e] = runif() < 0.25 ? 1.0f : 0.0f;
    st_train_forward(r.tr, x, T, y);
    double mx = 0;
    for (size_t e = 0; e < T * K; e++)
        mx = fabs(y[e]) > mx ? fabs(y[e]) : mx;
    bool exact;
    const double worst = engine_diff(net, x, T, C, y, K, &exact);
    /* Norse's lif goes to NIR as CubaLIF (w_in = 1/(dt tau_syn_inv)): the
       same dynamics, rounded differently */
    CU_ASSERT(mx > 0.01);
    CU_ASSERT(worst <= 1e-4 * mx);
    if (!(worst <= 1e-4 * mx))
        fprintf(stderr, "\n  NIR round trip: read-out differs by %g (largest %g)\n", worst, mx);
    st_snn_net_destroy(&net);
    free(x);
    free(y);
    rig_free(&r);
}

/* ---- data files, the log ------------------------------------------------------------------ */

static void test_data_files(void)
{
    st_train_task_params tp = st_train_task_default_params(ST_TRAIN_TASK_SEQUENCE);
    tp.samples = 20;
    tp.steps = 48;
    tp.channels = 8;
    st_train_data *d = st_train_data_generate(&tp, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    CU_ASSERT(st_train_data_is_seq(d));
    CU_ASSERT(st_train_data_classes(d) <= 4);
    char path[512];
    st_test_tmpfile(path, sizeof path, "seq.stm");
    CU_ASSERT_EQUAL_FATAL(st_train_data_save(d, path), ST_OK);
    int err;
    st_train_data *e = st_train_data_load(path, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_EQUAL(st_train_data_count(e), 20);
    for (size_t k = 0; k < 20; k++) {
        size_t s1, s2, n1, n2;
        const float *x1 = st_train_data_input(d, k, &s1), *x2 = st_train_data_input(e, k, &s2);
        CU_ASSERT_EQUAL(s1, s2);
        CU_ASSERT_EQUAL(memcmp(x1, x2, 48 * 8 * sizeof(float)), 0);
        const int32_t *l1 = st_train_data_labels(d, k, &n1), *l2 = st_train_data_labels(e, k, &n2);
        CU_ASSERT(n1 == n2 && n1 >= 1 && n1 <= 3 && !memcmp(l1, l2, n1 * sizeof *l1));
    }
    /* the same seed gives the same set */
    st_train_data *again = st_train_data_generate(&tp, NULL);
    CU_ASSERT_EQUAL(memcmp(st_train_data_input(d, 19, NULL), st_train_data_input(again, 19, NULL),
                           48 * 8 * sizeof(float)), 0);
    st_train_data_destroy(&again);
    /* a file of another kind is refused by name */
    CU_ASSERT_PTR_NULL(st_train_data_load("tests/fixtures/snn_tiny_v1.stm", &err));
    CU_ASSERT(err != ST_OK);
    st_train_data_destroy(&d);
    st_train_data_destroy(&e);
    /* bands: balanced labels */
    tp = st_train_task_default_params(ST_TRAIN_TASK_BANDS);
    tp.samples = 40;
    d = st_train_data_generate(&tp, NULL);
    size_t count[4] = {0};
    for (size_t k = 0; k < 40; k++)
        count[st_train_data_label(d, k)]++;
    CU_ASSERT(count[0] == 10 && count[3] == 10);
    st_train_data_destroy(&d);
}

static void test_csv_log(void)
{
    char path[512];
    st_test_tmpfile(path, sizeof path, "train.csv");
    st_train_log_row row = {.epoch = 1, .steps = 10, .lr = 0.001};
    row.train.loss = 1.5;
    row.train.accuracy = 0.25;
    CU_ASSERT_EQUAL(st_train_log_append(path, &row), ST_OK);
    row.epoch = 2;
    row.valid.samples = 10;
    row.valid.accuracy = 0.5;
    CU_ASSERT_EQUAL(st_train_log_append(path, &row), ST_OK);
    FILE *f = fopen(path, "r");
    char line[512];
    int n = 0;
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    while (fgets(line, sizeof line, f)) {
        if (n == 0)
            CU_ASSERT_EQUAL(strncmp(line, "epoch,steps,lr,train_loss", 25), 0);
        if (n == 2)
            CU_ASSERT_PTR_NOT_NULL(strstr(line, ",0.5000,"));
        n++;
    }
    fclose(f);
    CU_ASSERT_EQUAL(n, 3);
    CU_ASSERT_EQUAL(st_train_log_append("/nonexistent/dir/x.csv", &row), ST_ERR_IO);
}

/* ---- the command ---------------------------------------------------------------------------- */


static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && st.st_size > 0;
}

static void test_cli_train(void)
{
    if (!exists(st_test_cli())) {
        st_test_skip("train:cli_train", "no spiketalk binary (set ST_CLI)");
        return;
    }
    char cfg[512], log[512], ckpt[512], model[512], nir[512], bad[512], args[2048];
    st_test_tmpfile(cfg, sizeof cfg, "cli.ini");
    st_test_tmpfile(log, sizeof log, "cli.csv");
    st_test_tmpfile(ckpt, sizeof ckpt, "cli.ckpt");
    st_test_tmpfile(model, sizeof model, "cli.stm");
    st_test_tmpfile(nir, sizeof nir, "cli.nir");
    st_test_tmpfile(bad, sizeof bad, "bad.ini");
    FILE *f = fopen(cfg, "w");
    fprintf(f, "[data]\ntask = bands\nsamples = 64\nvalid_samples = 16\nsteps = 30\n"
               "channels = 8\nclasses = 2\n[layer hid]\nneurons = 12\nmodel = lif\n"
               "recurrent = yes\ninit_scale = 4\n[layer out]\nneurons = 2\nmodel = li\n"
               "[train]\nepochs = 2\nbatch = 16\nlog = %s\ncheckpoint = %s\nexport = %s\n"
               "export_nir = %s\n", log, ckpt, model, nir);
    fclose(f);
    char *out;
    snprintf(args, sizeof args, "train --config %s --threads 2", cfg);
    CU_ASSERT_EQUAL(st_test_run_cli(args, &out), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "validation accuracy"));
    free(out);
    CU_ASSERT(exists(log) && exists(ckpt) && exists(model) && exists(nir));
    int err;
    st_snn_net *net = st_snn_net_load(model, &err);
    CU_ASSERT_PTR_NOT_NULL(net);
    st_snn_net_destroy(&net);
    /* resuming a finished run trains nothing more and says so */
    snprintf(args, sizeof args, "train --config %s --resume %s", cfg, ckpt);
    CU_ASSERT_EQUAL(st_test_run_cli(args, &out), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "already done 2 of 2 epochs"));
    free(out);
    /* a bad configuration fails before any training, naming line and key */
    f = fopen(bad, "w");
    fprintf(f, "[data]\ntask = bands\n[layer out]\nneurons = 4\nmodel = li\n"
               "[optimizer]\nlr = nan\n");
    fclose(f);
    snprintf(args, sizeof args, "train --config %s", bad);
    CU_ASSERT_EQUAL(st_test_run_cli(args, &out), 1);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "bad.ini:7: [optimizer] lr: 'nan' is not a finite number"));
    CU_ASSERT_PTR_NULL(strstr(out, "epoch"));
    free(out);
    CU_ASSERT_EQUAL(st_test_run_cli("train", &out), 2);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "--config FILE is required"));
    free(out);
    CU_ASSERT_EQUAL(st_test_run_cli("train --help", &out), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "usage: spiketalk train"));
    free(out);
}

CU_TestInfo st_tests_train[] = {
    {"surrogates", test_surrogates},
    {"fd_lif", test_fd_lif},
    {"fd_recurrent", test_fd_recurrent},
    {"fd_lsnn", test_fd_lsnn},
    {"fd_cubalif", test_fd_cubalif},
    {"fd_li_readout", test_fd_li_readout},
    {"fd_conv1d", test_fd_conv1d},
    {"fd_delay", test_fd_delay},
    {"fd_ctc", test_fd_ctc},
    {"fd_ce_frame", test_fd_ce_frame},
    {"fd_ce_frame_onset", test_fd_ce_frame_onset},
    {"onset_weight", test_onset_weight},
    {"torch_fixtures", test_torch_fixtures},
    {"ctc_bruteforce", test_ctc_bruteforce},
    {"ce_losses", test_ce_losses},
    {"adam", test_adam},
    {"adamw", test_adamw},
    {"schedule", test_schedule},
    {"threads_identical", test_threads_identical},
    {"spec_augment", test_spec_augment},
    {"warps", test_warps},
    {"checkpoint_resume", test_checkpoint_resume},
    {"bad_configs", test_bad_configs},
    {"tiny_training", test_tiny_training},
    {"export_engine", test_export_engine},
    {"export_nir", test_export_nir},
    {"data_files", test_data_files},
    {"csv_log", test_csv_log},
    {"cli_train", test_cli_train},
    CU_TEST_INFO_NULL,
};
