/*  snn/neuron.c - the neuron models, step for step as Norse computes them.

    Each model's update is written with the same float32 operations in the
    same order as Norse's functional steps (norse/torch/functional/), so that
    Norse's own traces are reproduced to the last bit or two and spike times
    exactly. Decay factors (dt * tau_inv) are computed once per
    parameter set, rounded to float as PyTorch rounds a Python float times a
    float32 tensor.

    Tuned for populations of 10 to 10,000 neurons stepped once per 1-10 ms
    frame: the model, the reset mode and whether parameters are shared are
    resolved once per call by a switch, and each combination runs its own
    straight loop (an always-inlined template), with spikes compacted into an
    index list afterwards. Every loop is written so that GCC vectorises it
    (no loop-carried state but the arrays, selects on float compares) and is
    compiled twice, portable and for AVX2, chosen at run time (snn/layer.c,
    st_snn_simd()); lif, lifrefrac and lif_ei, the models the benchmarks and
    recognisers run, have hand-written AVX2 loops that also list the spikes
    as they go. All do the same float operations per neuron, so they agree
    to the bit. On one AMD EPYC core a 512-neuron lif step takes 0.35 us
    with AVX2 (1.2 us portable). Nothing here allocates after construction.
*/
#include "snn_impl.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- parameters ----------------------------------------------------------- */

static const char *const model_names[ST_SNN_N_MODELS] = {
    [ST_SNN_LIF] = "lif",       [ST_SNN_LI] = "li",           [ST_SNN_LIFBOX] = "lifbox",
    [ST_SNN_LIBOX] = "libox",   [ST_SNN_IAF] = "iaf",         [ST_SNN_LSNN] = "lsnn",
    [ST_SNN_ADEX] = "adex",     [ST_SNN_CUBALIF] = "cubalif", [ST_SNN_CUBALI] = "cubali",
    [ST_SNN_INTEGRATOR] = "integrator", [ST_SNN_LIFREFRAC] = "lifrefrac",
    [ST_SNN_LIF_EI] = "lif_ei",
};

/* Parameter names per model, in Norse's order (its NamedTuple fields). */
static const char *const names_lif[] = {"tau_syn_inv", "tau_mem_inv", "v_leak", "v_th",
                                        "v_reset", "reset", NULL};
static const char *const names_li[] = {"tau_syn_inv", "tau_mem_inv", "v_leak", NULL};
static const char *const names_lifbox[] = {"tau_mem_inv", "v_leak", "v_th", "v_reset", "reset",
                                           NULL};
static const char *const names_libox[] = {"tau_mem_inv", "v_leak", NULL};
static const char *const names_iaf[] = {"v_th", "v_reset", "reset", NULL};
static const char *const names_lsnn[] = {"tau_syn_inv", "tau_mem_inv", "tau_adapt_inv", "v_leak",
                                         "v_th", "v_reset", "beta", "reset", NULL};
static const char *const names_adex[] = {"adaptation_current", "adaptation_spike", "delta_T",
                                         "tau_ada_inv", "tau_syn_inv", "tau_mem_inv", "v_leak",
                                         "v_th", "v_reset", "reset", NULL};
static const char *const names_cubalif[] = {"tau_syn_inv", "tau_mem_inv", "v_leak", "v_th",
                                            "v_reset", "w_in", "r", "reset", NULL};
static const char *const names_cubali[] = {"tau_syn_inv", "tau_mem_inv", "v_leak", "w_in", "r",
                                           NULL};
static const char *const names_integrator[] = {NULL};
static const char *const names_lifrefrac[] = {"tau_syn_inv", "tau_mem_inv", "v_leak", "v_th",
                                              "v_reset", "reset", "rho_reset", NULL};
static const char *const names_lif_ei[] = {"tau_syn_inv", "tau_syn_inh_inv", "tau_mem_inv",
                                           "v_leak", "v_th", "v_reset", "rho_reset", "reset",
                                           NULL};

static const char *const *const param_names[ST_SNN_N_MODELS] = {
    [ST_SNN_LIF] = names_lif,         [ST_SNN_LI] = names_li,
    [ST_SNN_LIFBOX] = names_lifbox,   [ST_SNN_LIBOX] = names_libox,
    [ST_SNN_IAF] = names_iaf,         [ST_SNN_LSNN] = names_lsnn,
    [ST_SNN_ADEX] = names_adex,       [ST_SNN_CUBALIF] = names_cubalif,
    [ST_SNN_CUBALI] = names_cubali,   [ST_SNN_INTEGRATOR] = names_integrator,
    [ST_SNN_LIFREFRAC] = names_lifrefrac, [ST_SNN_LIF_EI] = names_lif_ei,
};

/* Where each float parameter lives in the struct. */
static const struct {
    const char *name;
    size_t offset;
} float_fields[] = {
    {"tau_syn_inv", offsetof(st_snn_neuron_params, tau_syn_inv)},
    {"tau_mem_inv", offsetof(st_snn_neuron_params, tau_mem_inv)},
    {"v_leak", offsetof(st_snn_neuron_params, v_leak)},
    {"v_th", offsetof(st_snn_neuron_params, v_th)},
    {"v_reset", offsetof(st_snn_neuron_params, v_reset)},
    {"tau_adapt_inv", offsetof(st_snn_neuron_params, tau_adapt_inv)},
    {"beta", offsetof(st_snn_neuron_params, beta)},
    {"adaptation_current", offsetof(st_snn_neuron_params, adaptation_current)},
    {"adaptation_spike", offsetof(st_snn_neuron_params, adaptation_spike)},
    {"delta_T", offsetof(st_snn_neuron_params, delta_T)},
    {"tau_ada_inv", offsetof(st_snn_neuron_params, tau_ada_inv)},
    {"w_in", offsetof(st_snn_neuron_params, w_in)},
    {"r", offsetof(st_snn_neuron_params, r)},
    {"tau_syn_inh_inv", offsetof(st_snn_neuron_params, tau_syn_inh_inv)},
    {"rho_reset", offsetof(st_snn_neuron_params, rho_reset)},
};

static const char *const reset_names[] = {"value", "subtract", "none"};

st_snn_neuron_params st_snn_neuron_default_params(st_snn_model model)
{
    return (st_snn_neuron_params){
        .model = model,
        .dt = 1e-3,
        .tau_syn_inv = 1.0f / 5e-3f,
        .tau_mem_inv = 1.0f / 1e-2f,
        .v_leak = 0.0f,
        .v_th = 1.0f,
        .v_reset = 0.0f,
        .tau_adapt_inv = 1.0f / 800.0f,
        .beta = 1.8f,
        .adaptation_current = 4.0f,
        .adaptation_spike = 0.02f,
        .delta_T = 0.5f,
        .tau_ada_inv = 2.0f,
        .w_in = 1.0f,
        .r = 1.0f,
        .reset = ST_SNN_RESET_VALUE,
        .tau_syn_inh_inv = 1.0f / 5e-3f,
        .rho_reset = 5.0f,
    };
}

const char *st_snn_model_name(st_snn_model model)
{
    return (unsigned)model < ST_SNN_N_MODELS ? model_names[model] : NULL;
}

int st_snn_model_from_name(const char *name, st_snn_model *out)
{
    for (int m = 0; m < ST_SNN_N_MODELS; m++)
        if (name && !strcmp(name, model_names[m])) {
            *out = (st_snn_model)m;
            return ST_OK;
        }
    char list[256] = "";
    for (int m = 0; m < ST_SNN_N_MODELS; m++) {
        strcat(list, m ? ", " : "");
        strcat(list, model_names[m]);
    }
    return st_error(ST_ERR_NOT_FOUND, "no neuron model '%s'; the models are %s", name ? name : "",
                    list);
}

const char *const *st_snn_neuron_param_names(st_snn_model model)
{
    assert((unsigned)model < ST_SNN_N_MODELS);
    return param_names[model];
}

bool st_snn_model_spikes(st_snn_model model)
{
    switch (model) {
    case ST_SNN_LI:
    case ST_SNN_LIBOX:
    case ST_SNN_CUBALI:
    case ST_SNN_INTEGRATOR: return false;
    default: return true;
    }
}

unsigned st_snn_model_inputs(st_snn_model model)
{
    return model == ST_SNN_LIF_EI ? 2 : 1;
}

static bool model_has_param(st_snn_model model, const char *name)
{
    for (const char *const *n = param_names[model]; *n; n++)
        if (!strcmp(*n, name))
            return true;
    return false;
}

static int unknown_param(st_snn_model model, const char *name)
{
    char list[400] = "";
    for (const char *const *n = param_names[model]; *n; n++) {
        if (strlen(list) + strlen(*n) + 3 >= sizeof list)
            break;
        strcat(list, n == param_names[model] ? "" : ", ");
        strcat(list, *n);
    }
    return st_error(ST_ERR_NOT_FOUND, "model %s has no parameter '%s'; its parameters are: %s",
                    model_names[model], name, *list ? list : "(none)");
}

static float *float_field(st_snn_neuron_params *p, const char *name)
{
    for (size_t k = 0; k < sizeof float_fields / sizeof float_fields[0]; k++)
        if (!strcmp(float_fields[k].name, name))
            return (float *)((char *)p + float_fields[k].offset);
    return NULL;
}

int st_snn_neuron_set_param(st_snn_neuron_params *p, const char *name, const char *value)
{
    assert(p && name && value);
    assert((unsigned)p->model < ST_SNN_N_MODELS);
    if (!model_has_param(p->model, name))
        return unknown_param(p->model, name);
    if (!strcmp(name, "reset")) {
        for (int r = 0; r < 3; r++)
            if (!strcmp(value, reset_names[r])) {
                p->reset = (st_snn_reset)r;
                return ST_OK;
            }
        return st_error(ST_ERR_INVALID, "reset: '%s' is not a reset mode (value, subtract, none)",
                        value);
    }
    char *end;
    errno = 0;
    double v = strtod(value, &end);
    if (errno || end == value || *end || !isfinite(v) || fabs(v) > 3.4e38)
        return st_error(ST_ERR_INVALID, "%s: '%s' is not a finite number", name, value);
    *float_field(p, name) = (float)v;
    return ST_OK;
}

int st_snn_neuron_get_param(const st_snn_neuron_params *p, const char *name, double *out)
{
    assert(p && name && out);
    if (!model_has_param(p->model, name))
        return unknown_param(p->model, name);
    if (!strcmp(name, "reset"))
        *out = (double)p->reset;
    else
        *out = *float_field((st_snn_neuron_params *)p, name);
    return ST_OK;
}

int st_snn_neuron_params_check(const st_snn_neuron_params *p)
{
    if ((unsigned)p->model >= ST_SNN_N_MODELS)
        return st_error(ST_ERR_INVALID, "neuron model %d does not exist", (int)p->model);
    if (!(p->dt > 0) || !isfinite(p->dt))
        return st_error(ST_ERR_INVALID, "dt must be a positive number of seconds, not %g", p->dt);
    if ((unsigned)p->reset > ST_SNN_RESET_NONE)
        return st_error(ST_ERR_INVALID, "reset mode %d does not exist", (int)p->reset);
    for (const char *const *n = param_names[p->model]; *n; n++) {
        if (!strcmp(*n, "reset"))
            continue;
        float v = *float_field((st_snn_neuron_params *)p, *n);
        if (!isfinite(v))
            return st_error(ST_ERR_INVALID, "%s %s must be finite, not %g", model_names[p->model],
                            *n, (double)v);
        if (strstr(*n, "_inv") && v < 0)
            return st_error(ST_ERR_INVALID, "%s %s is a rate in 1/s and must be >= 0, not %g",
                            model_names[p->model], *n, (double)v);
        if (!strcmp(*n, "rho_reset") && v < 0)
            return st_error(ST_ERR_INVALID, "%s rho_reset is a number of time steps and must "
                            "be >= 0, not %g", model_names[p->model], (double)v);
    }
    if (p->model == ST_SNN_ADEX && !(p->delta_T > 0))
        return st_error(ST_ERR_INVALID, "adex delta_T must be > 0, not %g", (double)p->delta_T);
    return ST_OK;
}

/* ---- the population --------------------------------------------------------- */

/* Precomputed per parameter set: what the step loop reads. */
typedef struct {
    float a;         /* dt * tau_mem_inv */
    float ns;        /* -dt * tau_syn_inv (Norse: di = -dt * tau_syn_inv * i) */
    float s;         /* dt * tau_syn_inv (cubalif) */
    float v_leak, v_th, v_reset;
    float adapt;     /* lsnn: dt * tau_adapt_inv; adex: dt * tau_ada_inv */
    float jump;      /* lsnn: beta; adex: adaptation_spike */
    float coupling;  /* adex: adaptation_current */
    float delta_T;   /* adex */
    float w_in, r;   /* cubalif, cubali */
    float rho_reset; /* lifrefrac, lif_ei: refractory steps after a spike */
    /* lif_ei, the exact propagators over one step (see make_coef) */
    float decay_v, decay_e, decay_i, gain_e, gain_i;
} coef;

struct st_snn_neurons {
    st_snn_model model;
    st_snn_reset reset;
    size_t n;
    size_t n_coef;              /* 1 when shared, n when per neuron */
    size_t n_vars;              /* state floats per neuron */
    coef *c;
    st_snn_neuron_params *p;    /* n_coef sets */
    float *lsnn;                /* lsnn with per-neuron sets: their coefficients by field,
                                   LSNN_FIELDS arrays of n (the AVX2 step loads eight
                                   neurons' a, then their ns, ...); else NULL */
};

/* The fields of lsnn's arrays, in order. */
enum { LSNN_A, LSNN_NS, LSNN_V_LEAK, LSNN_V_TH, LSNN_V_RESET, LSNN_ADAPT, LSNN_JUMP, LSNN_FIELDS };

static size_t model_vars(st_snn_model m)
{
    switch (m) {
    case ST_SNN_LIFBOX:
    case ST_SNN_LIBOX:
    case ST_SNN_IAF:
    case ST_SNN_INTEGRATOR: return 1;
    case ST_SNN_LSNN:
    case ST_SNN_ADEX:
    case ST_SNN_LIFREFRAC: return 3;
    case ST_SNN_LIF_EI: return 4;
    default: return 2;
    }
}

/* The gain from a current decaying at rate ks into a membrane decaying at
   km, over one step: the exact solution of dv/dt = km (i - v), i' = -ks i
   gives v(dt) = e^(-km dt) v + km (e^(-ks dt) - e^(-km dt)) / (km - ks) i,
   written with expm1 so that it stays accurate as ks approaches km (and is
   km dt e^(-km dt) when they are equal). */
static double exact_gain(double km, double ks, double dt)
{
    const double d = km - ks;
    const double em = exp(-km * dt);
    return d == 0 ? km * dt * em : km * em * expm1(d * dt) / d;
}

static coef make_coef(const st_snn_neuron_params *p)
{
    /* PyTorch computes `dt * tensor` with dt rounded to float first. */
    const float dt = (float)p->dt;
    coef c = {
        .a = dt * p->tau_mem_inv,
        .ns = -dt * p->tau_syn_inv,
        .s = dt * p->tau_syn_inv,
        .v_leak = p->v_leak,
        .v_th = p->v_th,
        .v_reset = p->v_reset,
        .adapt = dt * (p->model == ST_SNN_ADEX ? p->tau_ada_inv : p->tau_adapt_inv),
        .jump = p->model == ST_SNN_ADEX ? p->adaptation_spike : p->beta,
        .coupling = p->adaptation_current,
        .delta_T = p->delta_T,
        .w_in = p->w_in,
        .r = p->r,
        .rho_reset = p->rho_reset,
    };
    if (p->model == ST_SNN_LIF_EI) {
        const double km = p->tau_mem_inv, ke = p->tau_syn_inv, ki = p->tau_syn_inh_inv;
        c.decay_v = (float)exp(-km * p->dt);
        c.decay_e = (float)exp(-ke * p->dt);
        c.decay_i = (float)exp(-ki * p->dt);
        c.gain_e = (float)exact_gain(km, ke, p->dt);
        c.gain_i = (float)exact_gain(km, ki, p->dt);
    }
    return c;
}

/* Compares only the fields the model reads, so that unused ones do not make
   a population per-neuron for nothing. */
static bool same_params(const st_snn_neuron_params *a, const st_snn_neuron_params *b)
{
    for (const char *const *n = param_names[a->model]; *n; n++) {
        if (!strcmp(*n, "reset"))
            continue;
        if (*float_field((st_snn_neuron_params *)a, *n) !=
            *float_field((st_snn_neuron_params *)b, *n))
            return false;
    }
    return true;
}


static st_snn_neurons *make_population(const st_snn_neuron_params *p, size_t n_coef, size_t n,
                                       int *err)
{
    int rc = ST_OK;
    st_snn_neurons *self = calloc(1, sizeof *self);
    if (!self)
        goto nomem;
    self->model = p[0].model;
    self->reset = p[0].reset;
    self->n = n;
    self->n_coef = n_coef;
    self->n_vars = model_vars(self->model);
    self->c = malloc(n_coef * sizeof *self->c);
    self->p = malloc(n_coef * sizeof *self->p);
    if (!self->c || !self->p)
        goto nomem;
    for (size_t k = 0; k < n_coef; k++) {
        self->p[k] = p[k];
        self->c[k] = make_coef(&p[k]);
    }
    if (self->model == ST_SNN_LSNN && n_coef > 1) {
        if (!(self->lsnn = malloc(LSNN_FIELDS * n * sizeof *self->lsnn)))
            goto nomem;
        for (size_t k = 0; k < n; k++) {
            const coef *c = &self->c[k];
            const float f[LSNN_FIELDS] = {c->a,       c->ns,    c->v_leak, c->v_th,
                                          c->v_reset, c->adapt, c->jump};
            for (int j = 0; j < LSNN_FIELDS; j++)
                self->lsnn[(size_t)j * n + k] = f[j];
        }
    }
    if (err)
        *err = ST_OK;
    return self;
nomem:
    rc = st_error(ST_ERR_NOMEM, "out of memory for a population of %zu neurons", n);
    st_snn_neurons_destroy(&self);
    if (err)
        *err = rc;
    return NULL;
}

static int check_count(size_t n)
{
    if (n == 0 || n > UINT32_MAX)
        return st_error(ST_ERR_INVALID, "a population needs 1 to %u neurons, not %zu",
                        (unsigned)UINT32_MAX, n);
    return ST_OK;
}

st_snn_neurons *st_snn_neurons_new(const st_snn_neuron_params *p, size_t n, int *err)
{
    assert(p);
    int rc = check_count(n);
    if (rc == ST_OK)
        rc = st_snn_neuron_params_check(p);
    if (rc != ST_OK) {
        if (err)
            *err = rc;
        return NULL;
    }
    return make_population(p, 1, n, err);
}

st_snn_neurons *st_snn_neurons_new_each(const st_snn_neuron_params *p, size_t n, int *err)
{
    assert(p);
    int rc = check_count(n);
    bool shared = true;
    for (size_t k = 0; k < n && rc == ST_OK; k++) {
        if ((rc = st_snn_neuron_params_check(&p[k])) != ST_OK)
            break;
        if (p[k].model != p[0].model || p[k].dt != p[0].dt || p[k].reset != p[0].reset)
            rc = st_error(ST_ERR_INVALID,
                          "neuron %zu differs from neuron 0 in model, dt or reset; a population "
                          "has one of each",
                          k);
        else if (shared && !same_params(&p[k], &p[0]))
            shared = false;
    }
    if (rc != ST_OK) {
        if (err)
            *err = rc;
        return NULL;
    }
    return make_population(p, shared ? 1 : n, n, err);
}

void st_snn_neurons_destroy(st_snn_neurons **self_p)
{
    if (!self_p || !*self_p)
        return;
    st_snn_neurons *self = *self_p;
    free(self->c);
    free(self->p);
    free(self->lsnn);
    free(self);
    *self_p = NULL;
}

size_t st_snn_neurons_count(const st_snn_neurons *self)
{
    return self->n;
}

st_snn_model st_snn_neurons_model(const st_snn_neurons *self)
{
    return self->model;
}

const st_snn_neuron_params *st_snn_neurons_params(const st_snn_neurons *self, size_t k)
{
    assert(k < self->n);
    return &self->p[self->n_coef == 1 ? 0 : k];
}

size_t st_snn_neurons_state_len(const st_snn_neurons *self)
{
    return self->n_vars * self->n;
}

size_t st_snn_neurons_input_len(const st_snn_neurons *self)
{
    return st_snn_model_inputs(self->model) * self->n;
}

float *st_snn_neurons_var(const st_snn_neurons *self, float *state, st_snn_var var)
{
    switch (var) {
    case ST_SNN_VAR_V: return state;
    case ST_SNN_VAR_I: return self->n_vars >= 2 ? state + self->n : NULL;
    case ST_SNN_VAR_B: return self->model == ST_SNN_LSNN ? state + 2 * self->n : NULL;
    case ST_SNN_VAR_A: return self->model == ST_SNN_ADEX ? state + 2 * self->n : NULL;
    case ST_SNN_VAR_I_INH: return self->model == ST_SNN_LIF_EI ? state + 2 * self->n : NULL;
    case ST_SNN_VAR_RHO:
        return self->model == ST_SNN_LIFREFRAC ? state + 2 * self->n
               : self->model == ST_SNN_LIF_EI  ? state + 3 * self->n
                                               : NULL;
    }
    return NULL;
}

void st_snn_neurons_init_state(const st_snn_neurons *self, float *state)
{
    const size_t n = self->n, cs = self->n_coef == 1 ? 0 : 1;
    float *v = state;
    for (size_t k = 0; k < n; k++) {
        const st_snn_neuron_params *p = &self->p[k * cs];
        v[k] = self->model == ST_SNN_IAF          ? p->v_reset
               : self->model == ST_SNN_INTEGRATOR ? 0.0f
                                                  : p->v_leak;
    }
    /* currents, adaptation, refractory counters: 0 */
    if (self->n_vars >= 2)
        memset(state + n, 0, (self->n_vars - 1) * n * sizeof *state);
    if (self->model == ST_SNN_LSNN)
        for (size_t k = 0; k < n; k++)
            state[2 * n + k] = self->p[k * cs].v_th;
}

/* ---- the step loops ----------------------------------------------------------

   One template per model family; `cs` (0: shared parameters, 1: per neuron),
   `reset`, `spiking` and `refrac` are constants at every call site, so each
   instantiation is a straight loop that writes out[k] (z as 0/1, or v) and
   the state; the spike list is made from out[] afterwards. The spike test is
   Norse's heaviside: strictly v - threshold > 0. */

/* The full vectoriser, and no-trapping-math so that it may if-convert the
   selects (GCC will not evaluate a float operation that only one arm of a
   select uses before the condition when it might trap). Neither changes a
   value: there is no reassociation and no contraction. For the rest of the
   file: an optimize attribute on the callers alone does not reach the
   always-inlined templates. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("tree-vectorize", "vect-cost-model=dynamic", "no-trapping-math", \
                     "allow-store-data-races")
#endif
#define ST_INLINE static inline __attribute__((always_inline))

/* Every value a select picks from is computed unconditionally: GCC will not
   if-convert (and so not vectorise) a float operation on one arm only, as
   it might trap. */
ST_INLINE float after_spike(int reset, bool z, float vd, float th, float v_reset)
{
    const float vs = vd - th;
    switch (reset) {
    case ST_SNN_RESET_VALUE: return z ? v_reset : vd;
    case ST_SNN_RESET_SUBTRACT: return z ? vs : vd;
    default: return vd;
    }
}

/* Norse's refractory update (lif_refrac.compute_refractory_update): while
   rho > 0 the membrane keeps its value from before the step, no spike is
   possible and rho counts down by one a step, never below 0; otherwise a
   spike sets rho to rho_reset. Norse writes it with 0/1 masks; these
   selects give the same values. Each select takes a float compare
   directly (no bool arithmetic), which GCC vectorises. Writes v, rho, out. */
#define REFRACTORY(k, v_old, v_new, fire, rho_reset)                                               \
    do {                                                                                           \
        const float rk_ = rho[k], rm_ = rk_ - 1.0f;                                                \
        const float held_rho_ = rm_ > 0.0f ? rm_ : 0.0f;                                           \
        const float free_rho_ = (fire) ? (rho_reset) : 0.0f;                                       \
        const float free_z_ = (fire) ? 1.0f : 0.0f;                                                \
        const bool held_ = rk_ > 0.0f;                                                             \
        v[k] = held_ ? (v_old) : (v_new);                                                          \
        rho[k] = held_ ? held_rho_ : free_rho_;                                                    \
        out[k] = held_ ? 0.0f : free_z_;                                                           \
    } while (0)

/* lif (spiking), li (not) and lifrefrac: the input jumps the current, v
   follows the jumped current, then the current decays. */
ST_INLINE void step_lif(const coef *restrict c, size_t cs, size_t n, float *restrict v,
                        float *restrict i, float *restrict rho, const float *restrict x,
                        float *restrict out, int reset, bool spiking, bool refrac)
{
    for (size_t k = 0; k < n; k++) {
        const coef ck = c[k * cs]; /* by value: every field loaded, none under a branch */
        const float ij = i[k] + x[k];
        const float vd = v[k] + ck.a * ((ck.v_leak - v[k]) + ij);
        i[k] = ij + ck.ns * ij;
        if (spiking) {
            const bool z = vd - ck.v_th > 0.0f;
            const float vn = after_spike(reset, z, vd, ck.v_th, ck.v_reset);
            if (refrac) {
                REFRACTORY(k, v[k], vn, z, ck.rho_reset);
            } else {
                v[k] = vn;
                out[k] = z ? 1.0f : 0.0f;
            }
        } else {
            v[k] = vd;
            out[k] = vd;
        }
    }
}

/* lif_ei: two currents, each jumped by its half of the input, then the
   exact solution of the linear ODEs over the step (Brian2's method='exact'
   for the CUBA equations), then Norse's refractory update. */
ST_INLINE void step_lif_ei(const coef *restrict c, size_t cs, size_t n, float *restrict v,
                           float *restrict ie, float *restrict ii, float *restrict rho,
                           const float *restrict xe, const float *restrict xi,
                           float *restrict out, int reset)
{
    for (size_t k = 0; k < n; k++) {
        const coef ck = c[k * cs];
        const float ej = ie[k] + xe[k], ij = ii[k] + xi[k];
        const float vd = ((ck.v_leak + (v[k] - ck.v_leak) * ck.decay_v) + ej * ck.gain_e) +
                         ij * ck.gain_i;
        ie[k] = ej * ck.decay_e;
        ii[k] = ij * ck.decay_i;
        const bool z = vd - ck.v_th > 0.0f;
        const float vn = after_spike(reset, z, vd, ck.v_th, ck.v_reset);
        REFRACTORY(k, v[k], vn, z, ck.rho_reset);
    }
}

/* lifbox (Norse: dv = a * (x + v_leak - v)) */
ST_INLINE void step_lifbox(const coef *restrict c, size_t cs, size_t n, float *restrict v,
                           const float *restrict x, float *restrict out, int reset)
{
    for (size_t k = 0; k < n; k++) {
        const coef ck = c[k * cs];
        const float vd = v[k] + ck.a * ((x[k] + ck.v_leak) - v[k]);
        const bool z = vd - ck.v_th > 0.0f;
        v[k] = after_spike(reset, z, vd, ck.v_th, ck.v_reset);
        out[k] = z ? 1.0f : 0.0f;
    }
}

/* libox (Norse: dv = a * ((v_leak - v) + x)) */
ST_INLINE void step_libox(const coef *restrict c, size_t cs, size_t n, float *restrict v,
                          const float *restrict x, float *restrict out)
{
    for (size_t k = 0; k < n; k++) {
        const coef ck = c[k * cs];
        const float vd = v[k] + ck.a * ((ck.v_leak - v[k]) + x[k]);
        v[k] = vd;
        out[k] = vd;
    }
}

/* iaf (spiking) and integrator (not): v += x, no dt, no leak. */
ST_INLINE void step_iaf(const coef *restrict c, size_t cs, size_t n, float *restrict v,
                        const float *restrict x, float *restrict out, int reset, bool spiking)
{
    for (size_t k = 0; k < n; k++) {
        const coef ck = c[k * cs];
        const float vd = v[k] + x[k];
        if (spiking) {
            const bool z = vd - ck.v_th > 0.0f;
            v[k] = after_spike(reset, z, vd, ck.v_th, ck.v_reset);
            out[k] = z ? 1.0f : 0.0f;
        } else {
            v[k] = vd;
            out[k] = vd;
        }
    }
}

/* lsnn: decay v, i and the threshold b with the old current, spike against
   the decayed b, then charge the current with the input. */
ST_INLINE void step_lsnn(const coef *restrict c, size_t cs, size_t n, float *restrict v,
                         float *restrict i, float *restrict b, const float *restrict x,
                         float *restrict out, int reset)
{
    for (size_t k = 0; k < n; k++) {
        const coef ck = c[k * cs];
        const float vd = v[k] + ck.a * ((ck.v_leak - v[k]) + i[k]);
        const float id = i[k] + ck.ns * i[k];
        const float bd = b[k] + ck.adapt * (ck.v_th - b[k]), bj = bd + ck.jump;
        const bool z = vd - bd > 0.0f;
        v[k] = after_spike(reset, z, vd, bd, ck.v_reset);
        b[k] = z ? bj : bd;
        i[k] = id + x[k];
        out[k] = z ? 1.0f : 0.0f;
    }
}

/* adex: as lif plus the exponential term and the adaptation current w,
   which is driven by the old v and jumps on a spike. (expf keeps this loop
   scalar: a vector exp would not give the same bits.) */
ST_INLINE void step_adex(const coef *restrict c, size_t cs, size_t n, float *restrict v,
                         float *restrict i, float *restrict w, const float *restrict x,
                         float *restrict out, int reset)
{
    for (size_t k = 0; k < n; k++) {
        const coef ck = c[k * cs];
        const float ij = i[k] + x[k];
        const float dv_leak = ck.v_leak - v[k];
        const float dv_exp = ck.delta_T * expf((v[k] - ck.v_th) / ck.delta_T);
        const float vd = v[k] + ck.a * (((dv_leak + dv_exp) + ij) - w[k]);
        i[k] = ij + ck.ns * ij;
        const float wd = w[k] + ck.adapt * (ck.coupling * (v[k] - ck.v_leak) - w[k]);
        const float wj = wd + ck.jump;
        const bool z = vd - ck.v_th > 0.0f;
        v[k] = after_spike(reset, z, vd, ck.v_th, ck.v_reset);
        w[k] = z ? wj : wd;
        out[k] = z ? 1.0f : 0.0f;
    }
}

/* cubalif (spiking) and cubali (not), NIR's equations under forward Euler:
   the current first, then v from the new current. */
ST_INLINE void step_cuba(const coef *restrict c, size_t cs, size_t n, float *restrict v,
                         float *restrict i, const float *restrict x, float *restrict out,
                         int reset, bool spiking)
{
    for (size_t k = 0; k < n; k++) {
        const coef ck = c[k * cs];
        const float in = i[k] + ck.s * ((-i[k]) + ck.w_in * x[k]);
        const float vd = v[k] + ck.a * ((ck.v_leak - v[k]) + ck.r * in);
        i[k] = in;
        if (spiking) {
            const bool z = vd - ck.v_th > 0.0f;
            v[k] = after_spike(reset, z, vd, ck.v_th, ck.v_reset);
            out[k] = z ? 1.0f : 0.0f;
        } else {
            v[k] = vd;
            out[k] = vd;
        }
    }
}

/* Resolves model and reset once; cs is a constant in each caller. Steps
   neurons [k0, n) (those before were done by a specialised loop). */
ST_INLINE void dispatch(const st_snn_neurons *self, size_t cs, float *state, const float *x_all,
                        float *out_all, size_t k0)
{
    const size_t n_all = self->n, n = n_all - k0;
    const coef *c = self->c + k0 * cs;
    float *v = state + k0, *i = state + n_all + k0, *s2 = state + 2 * n_all + k0;
    float *s3 = state + 3 * n_all + k0, *out = out_all + k0;
    const float *x = x_all + k0, *x_inh = x_all + n_all + k0;

#define BY_RESET(CALL)                                                                             \
    switch (self->reset) {                                                                         \
    case ST_SNN_RESET_VALUE: CALL(ST_SNN_RESET_VALUE); return;                                     \
    case ST_SNN_RESET_SUBTRACT: CALL(ST_SNN_RESET_SUBTRACT); return;                               \
    default: CALL(ST_SNN_RESET_NONE); return;                                                      \
    }
#define LIF(R) step_lif(c, cs, n, v, i, NULL, x, out, R, true, false)
#define LIFREFRAC(R) step_lif(c, cs, n, v, i, s2, x, out, R, true, true)
#define LIF_EI(R) step_lif_ei(c, cs, n, v, i, s2, s3, x, x_inh, out, R)
#define LIFBOX(R) step_lifbox(c, cs, n, v, x, out, R)
#define IAF(R) step_iaf(c, cs, n, v, x, out, R, true)
#define LSNN(R) step_lsnn(c, cs, n, v, i, s2, x, out, R)
#define ADEX(R) step_adex(c, cs, n, v, i, s2, x, out, R)
#define CUBALIF(R) step_cuba(c, cs, n, v, i, x, out, R, true)

    switch (self->model) {
    case ST_SNN_LIF: BY_RESET(LIF);
    case ST_SNN_LIFREFRAC: BY_RESET(LIFREFRAC);
    case ST_SNN_LIF_EI: BY_RESET(LIF_EI);
    case ST_SNN_LIFBOX: BY_RESET(LIFBOX);
    case ST_SNN_IAF: BY_RESET(IAF);
    case ST_SNN_LSNN: BY_RESET(LSNN);
    case ST_SNN_ADEX: BY_RESET(ADEX);
    case ST_SNN_CUBALIF: BY_RESET(CUBALIF);
    case ST_SNN_LI: step_lif(c, cs, n, v, i, NULL, x, out, 0, false, false); return;
    case ST_SNN_LIBOX: step_libox(c, cs, n, v, x, out); return;
    case ST_SNN_CUBALI: step_cuba(c, cs, n, v, i, x, out, 0, false); return;
    case ST_SNN_INTEGRATOR: step_iaf(c, cs, n, v, x, out, 0, false); return;
    default: assert(!"bad neuron model"); return;
    }
#undef BY_RESET
#undef LIF
#undef LIFREFRAC
#undef LIF_EI
#undef LIFBOX
#undef IAF
#undef LSNN
#undef ADEX
#undef CUBALIF
}

/* ---- AVX2 for lif, lifrefrac and lif_ei ------------------------------------------

   The models the benchmarks and the recognisers run get hand-written AVX2:
   GCC vectorises the refractory select v' = held ? v : v_new as a masked
   store (vmaskmovps), slow on AMD cores, where these write whole vectors
   with blends; and each lists its spikes from the vector mask as it goes
   instead of in a second pass over out[]. Shared parameters only
   (per-neuron ones take the template). Same operations in the same order
   as the templates, so the same bits. */

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define ST_AVX2 __attribute__((target("avx2,popcnt")))

ST_AVX2 static inline __m256 avx2_reset(int reset, __m256 fire, __m256 vd, __m256 th, __m256 vr)
{
    switch (reset) {
    case ST_SNN_RESET_VALUE: return _mm256_blendv_ps(vd, vr, fire);
    case ST_SNN_RESET_SUBTRACT: return _mm256_blendv_ps(vd, _mm256_sub_ps(vd, th), fire);
    default: return vd;
    }
}

/* Appends the set lanes of a spike mask at k to the list (no branch). */
ST_AVX2 static inline size_t avx2_list(__m256 z, size_t k, uint32_t *fired, size_t nf)
{
    return st_snn_list8(fired, nf, k, (unsigned)_mm256_movemask_ps(z));
}

/* The REFRACTORY step on eight neurons at k; returns the spike mask. */
ST_AVX2 static inline __m256 avx2_refractory(float *v, float *rho, float *out, size_t k,
                                             __m256 vo, __m256 vn, __m256 fire,
                                             __m256 rho_reset)
{
    const __m256 zero = _mm256_setzero_ps(), one = _mm256_set1_ps(1.0f);
    const __m256 rk = _mm256_loadu_ps(rho + k), rm = _mm256_sub_ps(rk, one);
    const __m256 held_rho = _mm256_and_ps(_mm256_cmp_ps(rm, zero, _CMP_GT_OQ), rm);
    const __m256 free_rho = _mm256_and_ps(fire, rho_reset);
    const __m256 held = _mm256_cmp_ps(rk, zero, _CMP_GT_OQ);
    const __m256 z = _mm256_andnot_ps(held, fire);
    _mm256_storeu_ps(v + k, _mm256_blendv_ps(vn, vo, held));
    _mm256_storeu_ps(rho + k, _mm256_blendv_ps(free_rho, held_rho, held));
    _mm256_storeu_ps(out + k, _mm256_and_ps(z, one));
    return z;
}

ST_AVX2 static size_t lif_avx2(const coef *c, size_t n, float *v, float *i, const float *x,
                               float *out, int reset, uint32_t *fired, size_t *nf_out)
{
    const __m256 a = _mm256_set1_ps(c->a), ns = _mm256_set1_ps(c->ns);
    const __m256 vl = _mm256_set1_ps(c->v_leak), th = _mm256_set1_ps(c->v_th);
    const __m256 vr = _mm256_set1_ps(c->v_reset);
    const __m256 zero = _mm256_setzero_ps(), one = _mm256_set1_ps(1.0f);
    size_t k = 0, nf = 0;
    for (; k + 8 <= n; k += 8) {
        const __m256 vo = _mm256_loadu_ps(v + k);
        const __m256 ij = _mm256_add_ps(_mm256_loadu_ps(i + k), _mm256_loadu_ps(x + k));
        const __m256 vd =
            _mm256_add_ps(vo, _mm256_mul_ps(a, _mm256_add_ps(_mm256_sub_ps(vl, vo), ij)));
        _mm256_storeu_ps(i + k, _mm256_add_ps(ij, _mm256_mul_ps(ns, ij)));
        const __m256 z = _mm256_cmp_ps(_mm256_sub_ps(vd, th), zero, _CMP_GT_OQ);
        _mm256_storeu_ps(v + k, avx2_reset(reset, z, vd, th, vr));
        _mm256_storeu_ps(out + k, _mm256_and_ps(z, one));
        nf = avx2_list(z, k, fired, nf);
    }
    *nf_out = nf;
    return k;
}

ST_AVX2 static size_t lifrefrac_avx2(const coef *c, size_t n, float *v, float *i, float *rho,
                                     const float *x, float *out, int reset, uint32_t *fired,
                                     size_t *nf_out)
{
    const __m256 a = _mm256_set1_ps(c->a), ns = _mm256_set1_ps(c->ns);
    const __m256 vl = _mm256_set1_ps(c->v_leak), th = _mm256_set1_ps(c->v_th);
    const __m256 vr = _mm256_set1_ps(c->v_reset), rr = _mm256_set1_ps(c->rho_reset);
    const __m256 zero = _mm256_setzero_ps();
    size_t k = 0, nf = 0;
    for (; k + 8 <= n; k += 8) {
        const __m256 vo = _mm256_loadu_ps(v + k);
        const __m256 ij = _mm256_add_ps(_mm256_loadu_ps(i + k), _mm256_loadu_ps(x + k));
        const __m256 vd =
            _mm256_add_ps(vo, _mm256_mul_ps(a, _mm256_add_ps(_mm256_sub_ps(vl, vo), ij)));
        _mm256_storeu_ps(i + k, _mm256_add_ps(ij, _mm256_mul_ps(ns, ij)));
        const __m256 fire = _mm256_cmp_ps(_mm256_sub_ps(vd, th), zero, _CMP_GT_OQ);
        const __m256 z =
            avx2_refractory(v, rho, out, k, vo, avx2_reset(reset, fire, vd, th, vr), fire, rr);
        nf = avx2_list(z, k, fired, nf);
    }
    *nf_out = nf;
    return k;
}

ST_AVX2 static size_t lif_ei_avx2(const coef *c, size_t n, float *v, float *ie, float *ii,
                                  float *rho, const float *xe, const float *xi, float *out,
                                  int reset, uint32_t *fired, size_t *nf_out)
{
    const __m256 vl = _mm256_set1_ps(c->v_leak), th = _mm256_set1_ps(c->v_th);
    const __m256 vr = _mm256_set1_ps(c->v_reset), rr = _mm256_set1_ps(c->rho_reset);
    const __m256 dv = _mm256_set1_ps(c->decay_v), de = _mm256_set1_ps(c->decay_e);
    const __m256 di = _mm256_set1_ps(c->decay_i), ge = _mm256_set1_ps(c->gain_e);
    const __m256 gi = _mm256_set1_ps(c->gain_i), zero = _mm256_setzero_ps();
    size_t k = 0, nf = 0;
    for (; k + 8 <= n; k += 8) {
        const __m256 vo = _mm256_loadu_ps(v + k);
        const __m256 e = _mm256_add_ps(_mm256_loadu_ps(ie + k), _mm256_loadu_ps(xe + k));
        const __m256 h = _mm256_add_ps(_mm256_loadu_ps(ii + k), _mm256_loadu_ps(xi + k));
        __m256 vd = _mm256_add_ps(vl, _mm256_mul_ps(_mm256_sub_ps(vo, vl), dv));
        vd = _mm256_add_ps(_mm256_add_ps(vd, _mm256_mul_ps(e, ge)), _mm256_mul_ps(h, gi));
        _mm256_storeu_ps(ie + k, _mm256_mul_ps(e, de));
        _mm256_storeu_ps(ii + k, _mm256_mul_ps(h, di));
        const __m256 fire = _mm256_cmp_ps(_mm256_sub_ps(vd, th), zero, _CMP_GT_OQ);
        const __m256 z =
            avx2_refractory(v, rho, out, k, vo, avx2_reset(reset, fire, vd, th, vr), fire, rr);
        nf = avx2_list(z, k, fired, nf);
    }
    *nf_out = nf;
    return k;
}

/* lsnn (step_lsnn's operations in its order, eight neurons at a time): per
   neuron coefficients from lsnn's arrays, or one set for all (soa NULL). */
ST_AVX2 static size_t lsnn_avx2(const coef *c, const float *soa, size_t n, float *v, float *i,
                                float *b, const float *x, float *out, int reset,
                                uint32_t *fired, size_t *nf_out)
{
    __m256 a = _mm256_set1_ps(c->a), ns = _mm256_set1_ps(c->ns);
    __m256 vl = _mm256_set1_ps(c->v_leak), th = _mm256_set1_ps(c->v_th);
    __m256 vr = _mm256_set1_ps(c->v_reset), ad = _mm256_set1_ps(c->adapt);
    __m256 jp = _mm256_set1_ps(c->jump);
    const __m256 zero = _mm256_setzero_ps(), one = _mm256_set1_ps(1.0f);
    size_t k = 0, nf = 0;
    for (; k + 8 <= n; k += 8) {
        if (soa) {
            a = _mm256_loadu_ps(soa + LSNN_A * n + k);
            ns = _mm256_loadu_ps(soa + LSNN_NS * n + k);
            vl = _mm256_loadu_ps(soa + LSNN_V_LEAK * n + k);
            th = _mm256_loadu_ps(soa + LSNN_V_TH * n + k);
            vr = _mm256_loadu_ps(soa + LSNN_V_RESET * n + k);
            ad = _mm256_loadu_ps(soa + LSNN_ADAPT * n + k);
            jp = _mm256_loadu_ps(soa + LSNN_JUMP * n + k);
        }
        const __m256 vo = _mm256_loadu_ps(v + k), io = _mm256_loadu_ps(i + k);
        const __m256 bo = _mm256_loadu_ps(b + k);
        const __m256 vd =
            _mm256_add_ps(vo, _mm256_mul_ps(a, _mm256_add_ps(_mm256_sub_ps(vl, vo), io)));
        const __m256 id = _mm256_add_ps(io, _mm256_mul_ps(ns, io));
        const __m256 bd = _mm256_add_ps(bo, _mm256_mul_ps(ad, _mm256_sub_ps(th, bo)));
        const __m256 bj = _mm256_add_ps(bd, jp);
        const __m256 z = _mm256_cmp_ps(_mm256_sub_ps(vd, bd), zero, _CMP_GT_OQ);
        _mm256_storeu_ps(v + k, avx2_reset(reset, z, vd, bd, vr));
        _mm256_storeu_ps(b + k, _mm256_blendv_ps(bd, bj, z));
        _mm256_storeu_ps(i + k, _mm256_add_ps(id, _mm256_loadu_ps(x + k)));
        _mm256_storeu_ps(out + k, _mm256_and_ps(z, one));
        nf = avx2_list(z, k, fired, nf);
    }
    *nf_out = nf;
    return k;
}

/* Neurons [0, k) of lif, lifrefrac and lif_ei by AVX2, their spikes listed
   in fired[0..*nf); returns k, the first neuron the template must still
   step (0: none done). */
static size_t special_avx2(const st_snn_neurons *self, float *state, const float *x, float *out,
                           uint32_t *fired, size_t *nf)
{
    const size_t n = self->n;
    const coef *c = self->c;
    *nf = 0;
    if (self->model == ST_SNN_LSNN)
        return lsnn_avx2(c, self->lsnn, n, state, state + n, state + 2 * n, x, out, self->reset,
                         fired, nf);
    if (self->n_coef != 1)
        return 0;
    switch (self->model) {
    case ST_SNN_LIF: return lif_avx2(c, n, state, state + n, x, out, self->reset, fired, nf);
    case ST_SNN_LIFREFRAC:
        return lifrefrac_avx2(c, n, state, state + n, state + 2 * n, x, out, self->reset, fired,
                              nf);
    case ST_SNN_LIF_EI:
        return lif_ei_avx2(c, n, state, state + n, state + 2 * n, state + 3 * n, x, x + n, out,
                           self->reset, fired, nf);
    default: return 0;
    }
}
#endif

static void step_portable(const st_snn_neurons *self, float *state, const float *x,
                                       float *out, size_t k0)
{
    if (self->n_coef == 1)
        dispatch(self, 0, state, x, out, k0);
    else
        dispatch(self, 1, state, x, out, k0);
}

#if defined(__x86_64__) && defined(__GNUC__)
#define ST_HAVE_AVX2_STEP 1
__attribute__((target("avx2"))) static void
step_avx2(const st_snn_neurons *self, float *state, const float *x, float *out, size_t k0)
{
    if (self->n_coef == 1)
        dispatch(self, 0, state, x, out, k0);
    else
        dispatch(self, 1, state, x, out, k0);
}
#endif

size_t st_snn_neurons_step(const st_snn_neurons *self, float *state, const float *x, float *out,
                           uint32_t *fired)
{
    assert(self && state && x && out);
    assert(fired || !st_snn_model_spikes(self->model));
    const size_t n = self->n;
    size_t done = 0, nf = 0;
#ifdef ST_HAVE_AVX2_STEP
    if (st_snn_simd() >= ST_SNN_SIMD_AVX2) {
        done = special_avx2(self, state, x, out, fired, &nf);
        if (done < n)
            step_avx2(self, state, x, out, done);
    } else
#endif
        step_portable(self, state, x, out, 0);
    if (!st_snn_model_spikes(self->model))
        return 0;
    if (done == 0)
        return st_snn_list_spikes(out, n, fired);
    for (size_t k = done; k < n; k++) {
        fired[nf] = (uint32_t)k;
        nf += out[k] == 1.0f;
    }
    return nf;
}
