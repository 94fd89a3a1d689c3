/*  snn/vad.c - the spiking voice-activity detector (snn/vad.h): builds its
    network on the SNN engine from the parameters and runs it one frame per
    step, turning the speech latch's changes into onset and offset events;
    with a learned read-out (models/vad.stm) it also steps that net on the
    detector's features and latches its p(speech) instead.

    May touch: base/, the SNN engine's public API (snn/snn.h) and, for a
    learned read-out, its model file (read once, in st_vad_model_new). Not
    audio/: frames, stamps and the front end's delay come in as plain
    arrays.

    Tuned for: 40 log-mel channels every 10 ms, one stream per st_vad, 320
    LIF neurons and about 500 threshold units, a few percent firing in noise; the network is built
    once and shared read-only (st_vad_model), the per-stream state is one
    st_snn_state plus a few arrays made at st_vad_new.

    How the engine orders the cycles matters here, so the build checks it:
    the floor must step first (its up/down inputs read the previous step),
    and the speech gate of the floor and the latch read the previous step's
    latch. A zero-weight edge from the input anchors the floor at the front
    of the engine's order (it enters a cycle through a placed source).
*/
#include "vad.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LN_TO_DB 4.342944819032518f /* 10 / ln 10 */
#define GATE 1000.0f                /* a weight no dB difference reaches */
#define NO_ECHO -1000.0f            /* dB: "no echo here" */

struct st_vad_model {
    st_vad_params p;
    st_snn_net *net;
    int n, k;                    /* channels, levels */
    int id_floor, id_diff, id_echo_diff, id_rin, id_r, id_keep, id_s;
    size_t warm_frames;
    st_snn_net *lnet;            /* the learned read-out, or NULL */
    int l_out;                   /* its output node */
    int l_hang;                  /* learned_hangover_s in frames */
};

struct st_vad {
    const st_vad_model *m;
    st_snn_state *state;
    float *in;                   /* 2n: x then echo, dB */
    float *warm_sum;             /* n */
    size_t frames;               /* frames seen since reset */
    bool active;
    float score;
    uint64_t rise_start;         /* stamp of the first frame of the current rise */
    uint64_t last_keep;          /* stamp of the last frame that held KEEP */
    bool have_keep;
    float *feat;                 /* n: the learned read-out's input of the last frame */
    st_snn_state *lstate;        /* the learned read-out's state, or NULL */
    int l_run;                   /* learned: frames in a row over learned_on */
    int l_since;                 /* learned: frames since p was over learned_off */
};

st_vad_params st_vad_default_params(void)
{
    return (st_vad_params){
        .n_channels = 40,
        .hop_s = 0.01,
        .frontend_delay_samples = 199.5,
        .channel_hz = NULL,
        .speech_lo_hz = 90,
        .speech_hi_hz = 1200,
        .out_band_weight = 0.3f,
        .high_band_weight = -0.4f,
        .min_level_db = -80,
        .level_db = 6,
        .level_step_db = 3,
        .n_levels = 8,
        .level_gain = 1.3f,
        .e_tau_s = 0.01,
        .floor_up_db_s = 30,
        .floor_up_speech_db_s = 8,
        .floor_down_db_s = 30,
        .readout_tau_s = 0.01,
        .onset_threshold = 0.08f,
        .offset_threshold = 0.015f,
        .onset_frames = 3,
        .hangover_s = 0.1,
        .warmup_s = 0.2,
        .echo_margin_db = 3,
        .model_path = NULL,
        .learned_on = 0.95f,
        .learned_off = 0.6f,
        .learned_frames = 1,
        .learned_hangover_s = 0.08,
    };
}

/* ---- parameters by name ----------------------------------------------------- */

typedef enum { P_INT, P_FLOAT, P_DOUBLE } ptype;
typedef struct {
    const char *name;
    ptype type;
    size_t off;
} pdesc;

#define PD(field, t) {#field, t, offsetof(st_vad_params, field)}
static const pdesc pdescs[] = {
    PD(n_channels, P_INT),          PD(hop_s, P_DOUBLE),
    PD(frontend_delay_samples, P_DOUBLE), PD(speech_lo_hz, P_DOUBLE),
    PD(speech_hi_hz, P_DOUBLE),     PD(out_band_weight, P_FLOAT),
    PD(high_band_weight, P_FLOAT),
    PD(min_level_db, P_FLOAT),      PD(level_db, P_FLOAT),
    PD(level_step_db, P_FLOAT),     PD(n_levels, P_INT),
    PD(level_gain, P_FLOAT),
    PD(e_tau_s, P_DOUBLE),          PD(floor_up_db_s, P_DOUBLE),
    PD(floor_up_speech_db_s, P_DOUBLE), PD(floor_down_db_s, P_DOUBLE),
    PD(readout_tau_s, P_DOUBLE),    PD(onset_threshold, P_FLOAT),
    PD(offset_threshold, P_FLOAT),  PD(onset_frames, P_INT),
    PD(hangover_s, P_DOUBLE),       PD(warmup_s, P_DOUBLE),
    PD(echo_margin_db, P_FLOAT),
    PD(learned_on, P_FLOAT),        PD(learned_off, P_FLOAT),
    PD(learned_frames, P_INT),      PD(learned_hangover_s, P_DOUBLE),
};
#define N_PDESCS (sizeof pdescs / sizeof pdescs[0])

int st_vad_set_param(st_vad_params *p, const char *name, const char *value)
{
    for (size_t i = 0; i < N_PDESCS; i++) {
        if (strcmp(pdescs[i].name, name))
            continue;
        char *end;
        double v = strtod(value, &end);
        if (end == value || *end || !isfinite(v))
            return st_error(ST_ERR_INVALID, "vad: %s: '%s' is not a number", name, value);
        char *f = (char *)p + pdescs[i].off;
        switch (pdescs[i].type) {
        case P_INT:
            if (v != floor(v) || fabs(v) > 1e9)
                return st_error(ST_ERR_INVALID, "vad: %s: '%s' is not a whole number", name,
                                value);
            *(int *)f = (int)v;
            break;
        case P_FLOAT: *(float *)f = (float)v; break;
        case P_DOUBLE: *(double *)f = v; break;
        }
        return ST_OK;
    }
    char names[1024] = "";
    for (size_t i = 0; i < N_PDESCS; i++) {
        strncat(names, pdescs[i].name, sizeof names - strlen(names) - 1);
        if (i + 1 < N_PDESCS)
            strncat(names, ", ", sizeof names - strlen(names) - 1);
    }
    return st_error(ST_ERR_NOT_FOUND, "vad: no parameter '%s'; the parameters are %s", name,
                    names);
}

void st_vad_params_print(const st_vad_params *p, char *buf, size_t cap)
{
    size_t len = 0;
    if (cap)
        buf[0] = '\0';
    for (size_t i = 0; i < N_PDESCS && len < cap; i++) {
        const char *f = (const char *)p + pdescs[i].off;
        double v = pdescs[i].type == P_INT     ? *(const int *)f
                   : pdescs[i].type == P_FLOAT ? *(const float *)f
                                               : *(const double *)f;
        int w = snprintf(buf + len, cap - len, "%s=%g\n", pdescs[i].name, v);
        if (w < 0)
            break;
        len += (size_t)w;
    }
}

static int check(const st_vad_params *p)
{
#define BAD(...) return st_error(ST_ERR_INVALID, __VA_ARGS__)
    if (p->n_channels < 1 || p->n_channels > ST_VAD_MAX_CHANNELS)
        BAD("vad: n_channels %d is not in 1..%d", p->n_channels, ST_VAD_MAX_CHANNELS);
    if (!(p->hop_s > 0) || p->hop_s > 0.1)
        BAD("vad: hop_s %g is not in (0, 0.1]", p->hop_s);
    if (!(p->frontend_delay_samples >= 0))
        BAD("vad: frontend_delay_samples %g must be >= 0", p->frontend_delay_samples);
    if (!(p->speech_hi_hz > p->speech_lo_hz) || !(p->out_band_weight >= 0) ||
        !(p->high_band_weight >= -1) || p->high_band_weight > 1)
        BAD("vad: need speech_lo_hz < speech_hi_hz, out_band_weight >= 0 and -1 <= "
            "high_band_weight (%g) <= 1",
            p->high_band_weight);
    if (p->n_levels < 1 || p->n_levels > ST_VAD_MAX_LEVELS || !(p->level_db > 0) ||
        !(p->level_step_db >= 0) || !(p->level_gain > 0) || p->level_gain > 4)
        BAD("vad: need 1 <= n_levels (%d) <= %d, level_db > 0, level_step_db >= 0, "
            "0 < level_gain <= 4",
            p->n_levels, ST_VAD_MAX_LEVELS);
    if (!(p->e_tau_s >= p->hop_s) || !(p->readout_tau_s >= p->hop_s))
        BAD("vad: e_tau_s (%g) and readout_tau_s (%g) must be >= hop_s (%g)", p->e_tau_s,
            p->readout_tau_s, p->hop_s);
    if (!(p->floor_down_db_s > 0) || !(p->floor_up_speech_db_s >= 0) ||
        !(p->floor_up_db_s >= p->floor_up_speech_db_s))
        BAD("vad: need floor_down_db_s > 0 and 0 <= floor_up_speech_db_s <= floor_up_db_s");
    if (!(p->onset_threshold > 0) || !(p->onset_threshold < 1) ||
        !(p->offset_threshold > 0) || p->offset_threshold > p->onset_threshold)
        BAD("vad: need 0 < offset_threshold (%g) <= onset_threshold (%g) < 1",
            p->offset_threshold, p->onset_threshold);
    if (p->onset_frames < 1 || p->onset_frames > 100)
        BAD("vad: onset_frames %d is not in 1..100", p->onset_frames);
    if (!(p->hangover_s >= 0) || p->hangover_s / p->hop_s > 254 || !(p->warmup_s >= 0) ||
        p->warmup_s > 60)
        BAD("vad: hangover_s (%g) must be in 0..254 frames and warmup_s (%g) in 0..60 s",
            p->hangover_s, p->warmup_s);
    if (!isfinite(p->min_level_db) || !isfinite(p->echo_margin_db))
        BAD("vad: min_level_db and echo_margin_db must be finite");
    if (!(p->learned_on > 0) || !(p->learned_on < 1) || !(p->learned_off > 0) ||
        p->learned_off > p->learned_on)
        BAD("vad: need 0 < learned_off (%g) <= learned_on (%g) < 1", p->learned_off,
            p->learned_on);
    if (p->learned_frames < 1 || p->learned_frames > 100 || !(p->learned_hangover_s >= 0) ||
        p->learned_hangover_s > 10)
        BAD("vad: learned_frames (%d) must be in 1..100 and learned_hangover_s (%g) in 0..10 s",
            p->learned_frames, p->learned_hangover_s);
#undef BAD
    return ST_OK;
}

/* ---- building the network ---------------------------------------------------- */

static double mel_default_hz(int c, int n)
{
    double lo = 2595.0 * log10(1.0 + 60.0 / 700.0), hi = 2595.0 * log10(1.0 + 8000.0 / 700.0);
    double m = lo + (hi - lo) * (c + 1) / (n + 1);
    return 700.0 * (pow(10.0, m / 2595.0) - 1.0);
}

/* Shorthands that stop the build at the first error (rc < 0). */
#define TRY(expr)                                                                                 \
    do {                                                                                          \
        int r_ = (expr);                                                                          \
        if (r_ < 0) {                                                                             \
            rc = r_;                                                                              \
            goto fail;                                                                            \
        }                                                                                         \
    } while (0)
#define NODE(var, expr)                                                                           \
    do {                                                                                          \
        var = (expr);                                                                             \
        if (var < 0) {                                                                            \
            rc = var;                                                                             \
            goto fail;                                                                            \
        }                                                                                         \
    } while (0)

static float *fill(float *a, size_t n, float v)
{
    for (size_t i = 0; i < n; i++)
        a[i] = v;
    return a;
}

/* A delay line of `len` taps (0 .. len - 1 steps) of a one-wide source and
   their sum: the number of steps in the last `len` that the source was 1.
   Returns the id of the sum node. */
static int add_window_count(st_snn_net *net, const char *name, int src, int len, float *scratch)
{
    char nm[64];
    uint32_t steps[256];
    for (int i = 0; i < len; i++)
        steps[i] = (uint32_t)i;
    snprintf(nm, sizeof nm, "%s.fanout", name);
    int bc = st_snn_net_add_dense(net, nm, (size_t)len, 1, fill(scratch, (size_t)len, 1), NULL);
    if (bc < 0)
        return bc;
    int rc = st_snn_net_connect(net, src, bc);
    if (rc < 0)
        return rc;
    snprintf(nm, sizeof nm, "%s.taps", name);
    int dl = st_snn_net_add_delay(net, nm, (size_t)len, steps);
    if (dl < 0)
        return dl;
    if ((rc = st_snn_net_connect(net, bc, dl)) < 0)
        return rc;
    snprintf(nm, sizeof nm, "%s.count", name);
    int sum = st_snn_net_add_dense(net, nm, 1, (size_t)len, fill(scratch, (size_t)len, 1), NULL);
    if (sum < 0)
        return sum;
    if ((rc = st_snn_net_connect(net, dl, sum)) < 0)
        return rc;
    return sum;
}

void st_vad_model_destroy(st_vad_model **m_p)
{
    if (!m_p || !*m_p)
        return;
    st_snn_net_destroy(&(*m_p)->net);
    st_snn_net_destroy(&(*m_p)->lnet);
    free(*m_p);
    *m_p = NULL;
}

/* The learned read-out: an engine net of n_channels inputs whose node
   "output" has the two units (not speech, speech). */
static int load_learned(st_vad_model *m, const char *path)
{
    int rc;
    m->lnet = st_snn_net_load(path, &rc);
    if (!m->lnet)
        return rc;
    const size_t n_in = st_snn_net_input_len(m->lnet);
    if (n_in != (size_t)m->n)
        return st_error(ST_ERR_FORMAT, "vad model '%s': the net takes %zu inputs a step, but the "
                        "detector gives it one per channel (%d)", path, n_in, m->n);
    m->l_out = st_snn_net_find(m->lnet, "output");
    st_snn_node_info info;
    if (m->l_out < 0 || st_snn_net_node_info(m->lnet, m->l_out, &info) != ST_OK ||
        info.n_out != 2)
        return st_error(ST_ERR_FORMAT, "vad model '%s': no node 'output' of 2 units (not "
                        "speech, speech); is it a recognizer's or another net's file?", path);
    m->l_hang = (int)lround(m->p.learned_hangover_s / m->p.hop_s);
    return ST_OK;
}

bool st_vad_model_learned(const st_vad_model *m)
{
    return m->lnet != NULL;
}

st_vad_model *st_vad_model_new(const st_vad_params *p, int *err)
{
    int rc = check(p);
    st_vad_model *m = NULL;
    float *w = NULL;
    uint32_t *rows = NULL, *cols = NULL;
    st_snn_neuron_params *ep = NULL;
    if (rc != ST_OK)
        goto fail;
    const int n = p->n_channels, K = p->n_levels;
    const int hang_len = 1 + (int)lround(p->hangover_s / p->hop_s);
    const int on_len = p->onset_frames;
    rc = ST_ERR_NOMEM;
    m = calloc(1, sizeof *m);
    size_t wcap = (size_t)n * K + 1024;
    w = calloc(wcap, sizeof *w);
    ep = calloc((size_t)n * K, sizeof *ep);
    rows = calloc((size_t)n * K + 1, sizeof *rows);
    cols = calloc((size_t)n * K, sizeof *cols);
    if (!m || !w || !ep || !rows || !cols) {
        st_error(ST_ERR_NOMEM, "vad: out of memory building the network");
        goto fail;
    }
    m->p = *p;
    m->p.channel_hz = NULL;
    m->p.model_path = NULL;
    m->n = n;
    m->k = K;
    m->warm_frames = (size_t)lround(p->warmup_s / p->hop_s);
    m->net = st_snn_net_new(&rc);
    if (!m->net)
        goto fail;
    st_snn_net *net = m->net;
    const size_t nk = (size_t)n * K;
    const float dt = (float)p->hop_s;
    int x, echo, anchor, flr, negf, diff, negd, down, up_slow, s_gate, up_fast, down_w, up_slow_w,
        up_fast_w, echo_diff, x_exp, e_exp, echo_i, inh, E, r_in, R, on_thr, keep_thr, on_cnt,
        onp, keep_cnt, hang, latch_and, S;

    NODE(x, st_snn_net_add_input(net, "x", (size_t)n));
    NODE(echo, st_snn_net_add_input(net, "echo", (size_t)n));
    /* floor: one integrator per channel (v' = v + input), the slow side */
    NODE(anchor, st_snn_net_add_scale(net, "floor.anchor", (size_t)n, fill(w, (size_t)n, 0)));
    TRY(st_snn_net_connect(net, x, anchor));
    st_snn_neuron_params ip = st_snn_neuron_default_params(ST_SNN_INTEGRATOR);
    ip.dt = p->hop_s;
    NODE(flr, st_snn_net_add_neurons(net, "floor", &ip, (size_t)n));
    TRY(st_snn_net_connect(net, anchor, flr));
    NODE(negf, st_snn_net_add_scale(net, "floor.neg", (size_t)n, fill(w, (size_t)n, -1)));
    TRY(st_snn_net_connect(net, flr, negf));
    NODE(diff, st_snn_net_add_output(net, "diff", (size_t)n));
    TRY(st_snn_net_connect(net, x, diff));
    TRY(st_snn_net_connect(net, negf, diff));
    /* floor steps: down fast when below, up slowly when above, slower still
       during speech (the latch closes the fast up path) */
    NODE(negd, st_snn_net_add_scale(net, "diff.neg", (size_t)n, fill(w, (size_t)n, -1)));
    TRY(st_snn_net_connect(net, diff, negd));
    NODE(down, st_snn_net_add_threshold(net, "floor.below", (size_t)n, fill(w, (size_t)n, 0)));
    TRY(st_snn_net_connect(net, negd, down));
    NODE(up_slow, st_snn_net_add_threshold(net, "floor.above", (size_t)n, fill(w, (size_t)n, 0)));
    TRY(st_snn_net_connect(net, diff, up_slow));
    NODE(up_fast,
         st_snn_net_add_threshold(net, "floor.above_quiet", (size_t)n, fill(w, (size_t)n, 0)));
    TRY(st_snn_net_connect(net, diff, up_fast));
    NODE(down_w, st_snn_net_add_scale(net, "floor.step_down", (size_t)n,
                                      fill(w, (size_t)n, (float)(-p->floor_down_db_s * dt))));
    TRY(st_snn_net_connect(net, down, down_w));
    NODE(up_slow_w, st_snn_net_add_scale(net, "floor.step_up", (size_t)n,
                                         fill(w, (size_t)n, (float)(p->floor_up_speech_db_s * dt))));
    TRY(st_snn_net_connect(net, up_slow, up_slow_w));
    NODE(up_fast_w,
         st_snn_net_add_scale(net, "floor.step_up_quiet", (size_t)n,
                              fill(w, (size_t)n,
                                   (float)((p->floor_up_db_s - p->floor_up_speech_db_s) * dt))));
    TRY(st_snn_net_connect(net, up_fast, up_fast_w));
    TRY(st_snn_net_connect(net, down_w, flr));
    TRY(st_snn_net_connect(net, up_slow_w, flr));
    TRY(st_snn_net_connect(net, up_fast_w, flr));
    /* echo: how far the agent's own residual voice rises over the floor */
    NODE(echo_diff, st_snn_net_add_output(net, "echo.diff", (size_t)n));
    TRY(st_snn_net_connect(net, echo, echo_diff));
    TRY(st_snn_net_connect(net, negf, echo_diff));
    /* E: K levels per channel; the same levels of the echo inhibit them */
    /* each channel fans out to its K levels: one synapse per level */
    for (size_t r = 0; r < nk; r++) {
        rows[r] = (uint32_t)r;
        cols[r] = (uint32_t)(r / (size_t)K);
        w[r] = 1;
    }
    rows[nk] = (uint32_t)nk;
    NODE(x_exp, st_snn_net_add_sparse(net, "E.fanin", nk, (size_t)n, rows, cols, w, NULL));
    TRY(st_snn_net_connect(net, diff, x_exp));
    NODE(e_exp, st_snn_net_add_sparse(net, "echo.fanin", nk, (size_t)n, rows, cols, w, NULL));
    TRY(st_snn_net_connect(net, echo_diff, e_exp));
    for (size_t r = 0; r < nk; r++)
        w[r] = p->level_db + p->level_step_db * (float)(r % (size_t)K);
    NODE(echo_i, st_snn_net_add_threshold(net, "echo.levels", nk, w));
    TRY(st_snn_net_connect(net, e_exp, echo_i));
    NODE(inh, st_snn_net_add_scale(net, "echo.inhibit", nk, fill(w, nk, -100)));
    TRY(st_snn_net_connect(net, echo_i, inh));
    for (size_t r = 0; r < nk; r++) {
        ep[r] = st_snn_neuron_default_params(ST_SNN_LIFBOX);
        ep[r].dt = p->hop_s;
        ep[r].tau_mem_inv = (float)(1.0 / p->e_tau_s);
        ep[r].v_leak = 0;
        ep[r].v_reset = 0;
        ep[r].reset = ST_SNN_RESET_NONE;
        ep[r].v_th = p->level_db + p->level_step_db * (float)(r % (size_t)K);
    }
    NODE(E, st_snn_net_add_neurons_each(net, "E", ep, nk));
    TRY(st_snn_net_connect(net, x_exp, E));
    TRY(st_snn_net_connect(net, inh, E));
    /* R: the band-weighted share of the E levels that fire, leaky; the
       channels above the voicing band weigh high_band_weight (< 0: a rise
       mostly up there, a clack or a hiss, counts against speech), and the
       share is of the positive weights */
    double wsum = 0;
    for (int c = 0; c < n; c++) {
        double hz = p->channel_hz ? p->channel_hz[c] : mel_default_hz(c, n);
        float wc = hz > p->speech_hi_hz    ? p->high_band_weight
                   : hz >= p->speech_lo_hz ? 1.0f
                                           : p->out_band_weight;
        float g = 1;
        for (int k = 0; k < K; k++, g *= p->level_gain) {
            w[(size_t)c * K + k] = wc * g;
            wsum += wc > 0 ? wc * g : 0;
        }
    }
    if (!(wsum > 0)) {
        rc = st_error(ST_ERR_INVALID, "vad: every channel has weight 0 (no channel between "
                                      "speech_lo_hz and speech_hi_hz, out_band_weight 0)");
        goto fail;
    }
    for (size_t r = 0; r < nk; r++)
        w[r] = (float)(w[r] / wsum);
    NODE(r_in, st_snn_net_add_dense(net, "R.fanin", 1, nk, w, NULL));
    TRY(st_snn_net_connect(net, E, r_in));
    st_snn_neuron_params rp = st_snn_neuron_default_params(ST_SNN_LIBOX);
    rp.dt = p->hop_s;
    rp.tau_mem_inv = (float)(1.0 / p->readout_tau_s);
    rp.v_leak = 0;
    NODE(R, st_snn_net_add_neurons(net, "R", &rp, 1));
    TRY(st_snn_net_connect(net, r_in, R));
    /* onset: R above onset_threshold for onset_frames frames */
    NODE(on_thr, st_snn_net_add_threshold(net, "R.onset", 1, fill(w, 1, p->onset_threshold)));
    TRY(st_snn_net_connect(net, R, on_thr));
    NODE(on_cnt, add_window_count(net, "onset", on_thr, on_len, w));
    NODE(onp, st_snn_net_add_threshold(net, "ON", 1, fill(w, 1, (float)on_len - 0.5f)));
    TRY(st_snn_net_connect(net, on_cnt, onp));
    /* keep: R above offset_threshold within the hangover */
    NODE(keep_thr, st_snn_net_add_threshold(net, "R.keep", 1, fill(w, 1, p->offset_threshold)));
    TRY(st_snn_net_connect(net, R, keep_thr));
    NODE(keep_cnt, add_window_count(net, "hangover", keep_thr, hang_len, w));
    NODE(hang, st_snn_net_add_threshold(net, "KEEP", 1, fill(w, 1, 0.5f)));
    TRY(st_snn_net_connect(net, keep_cnt, hang));
    /* the latch: S = ON or (S(t-1) and KEEP) */
    NODE(latch_and, st_snn_net_add_threshold(net, "S.hold", 1, fill(w, 1, 1.5f)));
    TRY(st_snn_net_connect(net, hang, latch_and));
    NODE(S, st_snn_net_add_threshold(net, "S", 1, fill(w, 1, 0.5f)));
    TRY(st_snn_net_connect(net, onp, S));
    TRY(st_snn_net_connect(net, latch_and, S));
    TRY(st_snn_net_connect(net, S, latch_and));
    /* while S, the fast up path of the floor is shut */
    NODE(s_gate, st_snn_net_add_dense(net, "S.gate", (size_t)n, 1, fill(w, (size_t)n, -GATE),
                                      NULL));
    TRY(st_snn_net_connect(net, S, s_gate));
    TRY(st_snn_net_connect(net, s_gate, up_fast));
    TRY(st_snn_net_finish(net));

    /* the stepping order the design needs (see the top of the file) */
    st_snn_node_info fi, di, ui, li, si;
    st_snn_net_node_info(net, flr, &fi);
    st_snn_net_node_info(net, diff, &di);
    st_snn_net_node_info(net, up_fast, &ui);
    st_snn_net_node_info(net, latch_and, &li);
    st_snn_net_node_info(net, S, &si);
    if (!(fi.order < di.order && ui.order < si.order && li.order < si.order)) {
        rc = st_error(ST_ERR_INTERNAL,
                      "vad: the engine stepped the network in an unexpected order (floor %d, "
                      "diff %d, gate %d, hold %d, latch %d)",
                      fi.order, di.order, ui.order, li.order, si.order);
        goto fail;
    }
    m->id_floor = flr;
    m->id_diff = diff;
    m->id_echo_diff = echo_diff;
    if (p->model_path && (rc = load_learned(m, p->model_path)) != ST_OK)
        goto fail;
    m->id_rin = r_in;
    m->id_r = R;
    m->id_keep = keep_thr;
    m->id_s = S;
    free(w);
    free(ep);
    free(rows);
    free(cols);
    if (err)
        *err = ST_OK;
    return m;
fail:
    free(w);
    free(ep);
    free(rows);
    free(cols);
    st_vad_model_destroy(&m);
    if (err)
        *err = rc;
    return NULL;
}

const st_vad_params *st_vad_model_params(const st_vad_model *m)
{
    return &m->p;
}

const st_snn_net *st_vad_model_net(const st_vad_model *m)
{
    return m->net;
}

/* ---- streams ------------------------------------------------------------------ */

void st_vad_destroy(st_vad **v_p)
{
    if (!v_p || !*v_p)
        return;
    st_vad *v = *v_p;
    st_snn_state_destroy(&v->state);
    st_snn_state_destroy(&v->lstate);
    free(v->feat);
    free(v->in);
    free(v->warm_sum);
    free(v);
    *v_p = NULL;
}

st_vad *st_vad_new(const st_vad_model *m, int *err)
{
    int rc = ST_ERR_NOMEM;
    st_vad *v = calloc(1, sizeof *v);
    if (!v)
        goto fail;
    v->m = m;
    v->in = calloc(2 * (size_t)m->n, sizeof *v->in);
    v->warm_sum = calloc((size_t)m->n, sizeof *v->warm_sum);
    v->feat = calloc((size_t)m->n, sizeof *v->feat);
    if (!v->in || !v->warm_sum || !v->feat)
        goto fail;
    v->state = st_snn_state_new(m->net, &rc);
    if (!v->state)
        goto fail;
    if (m->lnet && !(v->lstate = st_snn_state_new(m->lnet, &rc)))
        goto fail;
    st_vad_reset(v);
    if (err)
        *err = ST_OK;
    return v;
fail:
    if (rc == ST_ERR_NOMEM)
        st_error(ST_ERR_NOMEM, "vad: out of memory for a stream");
    st_vad_destroy(&v);
    if (err)
        *err = rc;
    return NULL;
}

void st_vad_reset(st_vad *v)
{
    st_snn_state_reset(v->state);
    if (v->lstate)
        st_snn_state_reset(v->lstate);
    memset(v->warm_sum, 0, (size_t)v->m->n * sizeof *v->warm_sum);
    memset(v->feat, 0, (size_t)v->m->n * sizeof *v->feat);
    v->l_run = 0;
    v->l_since = INT32_MAX / 2;
    v->frames = 0;
    v->active = false;
    v->score = 0;
    v->rise_start = UINT64_MAX;
    v->last_keep = 0;
    v->have_keep = false;
}

int st_vad_process(st_vad *v, const float *frames, const uint64_t *stamps, const float *echo,
                   size_t n_frames, st_vad_event *out, size_t cap, size_t *made)
{
    if (cap < n_frames) {
        if (made)
            *made = 0;
        return st_error(ST_ERR_INVALID, "vad: room for %zu events, %zu frames may make %zu", cap,
                        n_frames, n_frames);
    }
    const st_vad_model *m = v->m;
    const int n = m->n;
    const float lo = m->p.min_level_db;
    const uint64_t delay = (uint64_t)llround(m->p.frontend_delay_samples);
    size_t nev = 0;
    for (size_t f = 0; f < n_frames; f++) {
        const float *x = frames + f * (size_t)n;
        float *xi = v->in, *ei = v->in + n;
        for (int c = 0; c < n; c++) {
            float d = x[c] * LN_TO_DB;
            xi[c] = d > lo ? d : lo;
            ei[c] = echo ? echo[f * (size_t)n + c] * LN_TO_DB + m->p.echo_margin_db : NO_ECHO;
        }
        if (v->frames < m->warm_frames) {
            /* the floor starts at the mean of the first stretch */
            for (int c = 0; c < n; c++)
                v->warm_sum[c] += xi[c];
            v->frames++;
            if (v->frames == m->warm_frames) {
                float *fl = st_snn_state_var(v->state, m->id_floor, ST_SNN_VAR_V);
                for (int c = 0; c < n; c++)
                    fl[c] = v->warm_sum[c] / (float)m->warm_frames;
            }
            continue;
        }
        if (v->frames == 0) {
            float *fl = st_snn_state_var(v->state, m->id_floor, ST_SNN_VAR_V);
            memcpy(fl, xi, (size_t)n * sizeof *fl);
        }
        v->frames++;
        st_snn_step(m->net, v->state, v->in);
        const uint64_t stamp = stamps[f];
        /* the learned read-out's input: the rise over max(floor, echo) */
        const float *dx = st_snn_state_output(v->state, m->id_diff, NULL);
        const float *de = st_snn_state_output(v->state, m->id_echo_diff, NULL);
        for (int c = 0; c < n; c++) {
            float r = dx[c] - (de[c] > 0 ? de[c] : 0);
            r = r < ST_VAD_FEATURE_MIN_DB ? ST_VAD_FEATURE_MIN_DB
                : r > ST_VAD_FEATURE_MAX_DB ? ST_VAD_FEATURE_MAX_DB
                                             : r;
            v->feat[c] = r / ST_VAD_FEATURE_SCALE_DB;
        }
        bool keep, s;
        if (m->lnet) {
            /* p(speech), and the latch on it: learned_frames over learned_on
               start speech, learned_hangover_s under learned_off end it */
            st_snn_step(m->lnet, v->lstate, v->feat);
            const float *o = st_snn_state_output(v->lstate, m->l_out, NULL);
            v->score = 1.0f / (1.0f + expf(o[0] - o[1]));
            v->l_run = v->score > m->p.learned_on ? v->l_run + 1 : 0;
            v->l_since = v->score > m->p.learned_off ? 0 : v->l_since + 1;
            keep = v->l_since == 0;
            s = v->l_run >= m->p.learned_frames || (v->active && v->l_since <= m->l_hang);
        } else {
            v->score = st_snn_state_output(v->state, m->id_r, NULL)[0];
            keep = st_snn_state_output(v->state, m->id_keep, NULL)[0] > 0.5f;
            s = st_snn_state_output(v->state, m->id_s, NULL)[0] > 0.5f;
        }
        /* the learned p(speech) is never quite 0: its rise starts at half
           learned_off */
        const float quiet = 0.5f * (m->lnet ? m->p.learned_off : m->p.offset_threshold);
        if (!v->active && v->score <= quiet)
            v->rise_start = UINT64_MAX; /* the rise, if one comes, starts later */
        else if (!v->active && v->rise_start == UINT64_MAX && v->score > (m->lnet ? quiet : 0))
            v->rise_start = stamp;
        if (keep) {
            v->last_keep = stamp;
            v->have_keep = true;
        }
        if (s != v->active) {
            st_vad_event *e = &out[nev++];
            e->kind = s ? ST_VAD_ONSET : ST_VAD_OFFSET;
            e->decided_index = stamp;
            uint64_t at = s ? (v->rise_start == UINT64_MAX ? stamp : v->rise_start)
                            : (v->have_keep ? v->last_keep : stamp);
            e->sample_index = at > delay ? at - delay : 0;
            v->active = s;
            if (!s)
                v->rise_start = UINT64_MAX;
        }
    }
    if (made)
        *made = nev;
    return ST_OK;
}

const float *st_vad_features(const st_vad *v)
{
    return v->feat;
}

bool st_vad_active(const st_vad *v)
{
    return v->active;
}

float st_vad_score(const st_vad *v)
{
    return v->score;
}

float st_vad_floor_db(const st_vad *v, int c)
{
    if (c < 0 || c >= v->m->n)
        return NAN;
    float *fl = st_snn_state_var(v->state, v->m->id_floor, ST_SNN_VAR_V);
    return fl ? fl[c] : NAN;
}

int st_vad_counters(const st_vad *v, st_snn_counters *out)
{
    return st_snn_state_counters(v->state, -1, out);
}
