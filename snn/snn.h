/*  snn/snn.h - the spiking neural network engine: neuron models that
    reproduce Norse step for step, and a network of layers (dense, sparse,
    convolution, delays, recurrence) stepped one time step at a time, event
    driven where the input is spikes.

    Tuned for streaming audio: one step per filterbank frame (1 to 10 ms),
    populations of 10 to 10,000 neurons, spike rates of 1 to 20 %, batch 1 per
    stream and many streams per machine. The model (st_snn_net) is immutable
    once finished and shared by every stream; each stream owns an
    st_snn_state. Nothing in st_snn_step allocates, locks or logs.

    Units are Norse's: seconds for dt, inverse seconds for the tau_*_inv
    rates, and the same dimensionless voltages and currents.

    Thread safety: a finished st_snn_net and an st_snn_neurons may be used by
    any number of threads at once; an st_snn_state by one thread at a time.

    Usage (tests/test_snn_example.c cuts this block out of the header,
    compiles it against libspiketalk and runs it):

    EXAMPLE-BEGIN
    #include "snn/snn.h"
    #include <stdio.h>

    int main(void)
    {
        int err;
        float w[4 * 3] = {1.5f, 0, 0, 0, 1.5f, 0, 0, 0, 1.5f, 0.5f, 0.5f, 0.5f};
        st_snn_neuron_params lif = st_snn_neuron_default_params(ST_SNN_LIF);
        st_snn_net *net = st_snn_net_new(&err);           // the model: built once
        int in = st_snn_net_add_input(net, "in", 3);
        int fc = st_snn_net_add_dense(net, "fc", 4, 3, w, NULL);
        int pop = st_snn_net_add_neurons(net, "lif", &lif, 4);
        st_snn_net_connect(net, in, fc);
        st_snn_net_connect(net, fc, pop);
        if (st_snn_net_finish(net) != ST_OK) {
            fprintf(stderr, "%s\n", st_errmsg());
            return 1;
        }
        st_snn_state *stream = st_snn_state_new(net, &err); // one per stream
        float spikes_in[3] = {1, 0, 1};                    // spikes: event path
        size_t total = 0;
        for (int t = 0; t < 100; t++) {
            size_t n_fired;
            st_snn_step(net, stream, spikes_in);
            st_snn_state_spikes(stream, pop, &n_fired);
            total += n_fired;
        }
        st_snn_counters c;
        st_snn_state_counters(stream, -1, &c);
        printf("%zu spikes, %llu synaptic ops\n", total, (unsigned long long)c.syn_ops);
        st_snn_state_destroy(&stream);
        st_snn_net_destroy(&net);
        return total > 0 ? 0 : 1;
    }
    EXAMPLE-END
*/
#ifndef ST_SNN_H
#define ST_SNN_H

#include "base/base.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ======================================================================
   Neuron models
   ======================================================================

   Every model integrates with forward Euler in Norse's update order and
   spikes only when v - threshold > 0 (v exactly at threshold does not
   spike). All state is float32, as in Norse. Per neuron and step (a =
   dt*tau_mem_inv, s = dt*tau_syn_inv, x the input of the step):

   lif       i_j = i + x;  v_d = v + a((v_leak - v) + i_j);  i' = i_j - s i_j;
             z = [v_d - v_th > 0];  v' = reset(v_d)              (Norse LIF)
   li        as lif without spikes; output v                     (Norse LI)
   lifbox    v_d = v + a((x + v_leak) - v); z; reset             (Norse LIFBox)
   libox     v' = v + a((v_leak - v) + x); output v              (Norse LIBox)
   iaf       v_d = v + x (no dt, no leak); z; reset              (Norse IAF)
   lsnn      v_d = v + a((v_leak - v) + i);  i_d = i - s i;
             b_d = b + dt tau_adapt_inv (v_th - b);  z = [v_d - b_d > 0];
             v' = reset(v_d);  b' = b_d + beta z;  i' = i_d + x  (Norse LSNN:
             the input charges the current after the spike)
   adex      i_j = i + x;  v_d = v + a(((v_leak - v) + delta_T e^((v - v_th)
             / delta_T)) + i_j - w);  i' = i_j - s i_j;
             w_d = w + dt tau_ada_inv (adaptation_current (v - v_leak) - w);
             z = [v_d - v_th > 0];  v' = reset(v_d);
             w' = w_d + adaptation_spike z                       (Norse LIFAdEx)
   cubalif   i' = i + s((-i) + w_in x);  v_d = v + a((v_leak - v) + r i');
             z; reset                 (NIR CubaLIF, Euler, v from the new i)
   cubali    as cubalif without spikes; output v                 (NIR CubaLI)
   integrator v' = v + x; output v    (NIR I with R dt folded into the input)
   lifrefrac  lif, then Norse's refractory update: while rho > 0, v keeps its
             value from before the step, z = 0 and rho' = max(rho - 1, 0);
             else a spike sets rho' = rho_reset (in steps)  (Norse LIFRefrac)
   lif_ei     LIF with separate excitatory and inhibitory exponential
             currents, integrated exactly over the step, plus lifrefrac's
             refractory period. It takes 2n inputs: x[0..n) jumps the
             excitatory current e, x[n..2n) the inhibitory current h:
             e_j = e + x_e;  h_j = h + x_h;
             v_d = v_leak + (v - v_leak) A + e_j G_e + h_j G_h;
             e' = e_j D_e;  h' = h_j D_h;  z = [v_d - v_th > 0];  reset;
             refractory.  A = e^(-dt tau_mem_inv), D_e = e^(-dt
             tau_syn_inv), D_h = e^(-dt tau_syn_inh_inv), and G the gain of
             each current into v over dt (the exact solution of dv/dt =
             tau_mem_inv (v_leak - v + e + h)). This is the CUBA network's
             neuron (Vogels & Abbott 2005; Brian2's CUBA example with
             method='exact', where refractory = T is rho_reset = T/dt - 1:
             Brian2 holds v for the T/dt - 1 steps after the spike step;
             NEST's iaf_psc_exp).

   Initial state (Norse's modules): v = v_leak (v_reset for iaf), i = 0,
   b = v_th (lsnn), w = 0 (adex), rho = 0 (lifrefrac, lif_ei). Norse's lif
   with tau_syn_inv = k equals cubalif with w_in = 1/(dt k), r = 1 (Norse
   reports i' = i_j - s i_j where cubalif reports i_j). */

typedef enum {
    ST_SNN_LIF = 0,
    ST_SNN_LI,
    ST_SNN_LIFBOX,
    ST_SNN_LIBOX,
    ST_SNN_IAF,
    ST_SNN_LSNN,
    ST_SNN_ADEX,
    ST_SNN_CUBALIF,
    ST_SNN_CUBALI,
    ST_SNN_INTEGRATOR,
    ST_SNN_LIFREFRAC,
    ST_SNN_LIF_EI,
    ST_SNN_N_MODELS
} st_snn_model;

/*  What a spike does to v: set it to v_reset (Norse's default), subtract the
    threshold it crossed (v_th; b for lsnn), or nothing. */
typedef enum {
    ST_SNN_RESET_VALUE = 0,
    ST_SNN_RESET_SUBTRACT,
    ST_SNN_RESET_NONE
} st_snn_reset;

/*  A neuron model's parameters, with Norse's names. Fields a model does not
    use are ignored. */
typedef struct {
    st_snn_model model;
    double dt;                /* s, integration step (Norse's dt argument) */
    float tau_syn_inv;        /* 1/s, synaptic current decay rate */
    float tau_mem_inv;        /* 1/s, membrane decay rate */
    float v_leak;             /* leak (resting) potential */
    float v_th;               /* threshold potential */
    float v_reset;            /* potential after a spike (ST_SNN_RESET_VALUE) */
    float tau_adapt_inv;      /* 1/s, lsnn: threshold adaptation rate */
    float beta;               /* lsnn: threshold increase per spike */
    float adaptation_current; /* adex: coupling of v to the adaptation w */
    float adaptation_spike;   /* adex: w increase per spike */
    float delta_T;            /* adex: sharpness of the exponential term, > 0 */
    float tau_ada_inv;        /* 1/s, adex: adaptation decay rate */
    float w_in;               /* cubalif, cubali: input weight */
    float r;                  /* cubalif, cubali: resistance, current -> v */
    st_snn_reset reset;       /* spiking models: what a spike does to v */
    float tau_syn_inh_inv;    /* 1/s, lif_ei: inhibitory current decay rate */
    float rho_reset;          /* lifrefrac, lif_ei: refractory time steps after a spike */
} st_snn_neuron_params;

/*  Norse's defaults for `model`: dt = 1e-3, tau_syn_inv = 200,
    tau_mem_inv = 100, v_leak = v_reset = 0, v_th = 1, tau_adapt_inv = 1/800,
    beta = 1.8, adaptation_current = 4, adaptation_spike = 0.02,
    delta_T = 0.5, tau_ada_inv = 2, w_in = r = 1, reset by value,
    tau_syn_inh_inv = 200 (as tau_syn_inv), rho_reset = 5 (Norse's
    LIFRefrac default). */
st_snn_neuron_params st_snn_neuron_default_params(st_snn_model model);

/*  The model's short name ("lif", "lsnn", ...), or NULL for a bad value. */
const char *st_snn_model_name(st_snn_model model);

/*  Looks a model up by its short name. Returns ST_OK, or ST_ERR_NOT_FOUND
    with a message listing the names. */
int st_snn_model_from_name(const char *name, st_snn_model *out);

/*  The parameter names `model` uses, NULL-terminated, in Norse's order
    (static strings). "reset" takes "value", "subtract" or "none". */
const char *const *st_snn_neuron_param_names(st_snn_model model);

/*  Sets one parameter by its Norse name from text ("0.5", "1e-3", or for
    "reset" a mode name). ST_ERR_NOT_FOUND (the message lists the names valid
    for the model) or ST_ERR_INVALID (not a number). Range is checked when a
    population is made. */
int st_snn_neuron_set_param(st_snn_neuron_params *p, const char *name, const char *value);

/*  Reads one parameter by name into *out (reset as 0, 1, 2). ST_ERR_NOT_FOUND
    as above. */
int st_snn_neuron_get_param(const st_snn_neuron_params *p, const char *name, double *out);

/*  Checks a parameter set: dt > 0, every rate >= 0 and finite, delta_T > 0
    for adex. ST_ERR_INVALID names the parameter. */
int st_snn_neuron_params_check(const st_snn_neuron_params *p);

/*  Does the model emit spikes (z), or is its output the membrane v? */
bool st_snn_model_spikes(st_snn_model model);

/*  Inputs per neuron: 2 for lif_ei (excitatory, inhibitory), 1 otherwise. */
unsigned st_snn_model_inputs(st_snn_model model);

/*  State variables a model may have; st_snn_neurons_var() finds them. */
typedef enum {
    ST_SNN_VAR_V = 0, /* membrane potential */
    ST_SNN_VAR_I,     /* synaptic current (lif, li, lsnn, adex, cubalif, cubali) */
    ST_SNN_VAR_B,     /* adaptive threshold (lsnn) */
    ST_SNN_VAR_A,     /* adaptation current w (adex) */
    ST_SNN_VAR_I_INH, /* inhibitory current h (lif_ei; VAR_I is its excitatory one) */
    ST_SNN_VAR_RHO    /* refractory steps left (lifrefrac, lif_ei) */
} st_snn_var;

/*  A population: n neurons of one model, its decay factors computed once.
    Immutable after construction; the per-neuron state lives in a float block
    the caller owns (st_snn_neurons_state_len() floats), so one population
    serves many streams. */
typedef struct st_snn_neurons st_snn_neurons;

/*  A population of n >= 1 neurons sharing one parameter set. Returns NULL
    and sets *err (ST_ERR_INVALID naming the parameter, ST_ERR_NOMEM). The
    caller owns the result. */
st_snn_neurons *st_snn_neurons_new(const st_snn_neuron_params *p, size_t n, int *err);

/*  A population whose neurons each have their own parameters (p[0..n-1]),
    as NIR files give them; model, dt and reset must be the same for all.
    When every set is equal this is st_snn_neurons_new(). */
st_snn_neurons *st_snn_neurons_new_each(const st_snn_neuron_params *p, size_t n, int *err);

/*  Frees the population and NULLs *self_p; NULL or *NULL is fine. */
void st_snn_neurons_destroy(st_snn_neurons **self_p);

size_t st_snn_neurons_count(const st_snn_neurons *self);
st_snn_model st_snn_neurons_model(const st_snn_neurons *self);

/*  The parameters of neuron k (k < count); borrowed. */
const st_snn_neuron_params *st_snn_neurons_params(const st_snn_neurons *self, size_t k);

/*  Floats of state for the whole population: n for each of v, then i, then
    b or w as the model has them (lifrefrac: v, i, rho; lif_ei: v, e, h,
    rho). */
size_t st_snn_neurons_state_len(const st_snn_neurons *self);

/*  Floats of input per step: n times st_snn_model_inputs(). */
size_t st_snn_neurons_input_len(const st_snn_neurons *self);

/*  Writes the initial state (see above) into state[0..state_len). */
void st_snn_neurons_init_state(const st_snn_neurons *self, float *state);

/*  Where variable `var` lives in a state block (n floats), or NULL when the
    model has no such variable. */
float *st_snn_neurons_var(const st_snn_neurons *self, float *state, st_snn_var var);

/*  One time step of the whole population: x[0..st_snn_neurons_input_len)
    is this step's input current (n values; 2n for lif_ei), state is updated
    in place. out[0..n) receives the output: z
    (0 or 1) for spiking models, v for li, libox, cubali and integrator.
    fired[] receives the indices of the neurons that spiked, in ascending
    order (room for n; may be NULL for a non-spiking model). Returns the
    number of spikes. No allocation; any thread, one state per thread. */
size_t st_snn_neurons_step(const st_snn_neurons *self, float *state, const float *x, float *out,
                           uint32_t *fired);

/* ======================================================================
   Networks
   ======================================================================

   A network is a graph of nodes. Each node makes one output vector per time
   step (length n_out, C order for shaped data) from the sum of what its
   source nodes made. Nodes are stepped in a topological order fixed when the
   net is finished; an edge that closes a cycle (a recurrent connection, a
   self loop) reads its source's output of the previous step, so every cycle
   is broken by exactly one step of delay.

   Node kinds, and the NIR node types they take:
     input        the step's external input (NIR Input)
     output       copy of the summed sources (NIR Output; also Flatten,
                  which only reshapes: data is always flat here)
     dense        y = W x + bias, W given row-major n_out x n_in (NIR Affine,
                  Linear)
     sparse       as dense, W given in CSR (rows = outputs)
     conv         1-D or 2-D convolution over channels, PyTorch/NIR layout
                  (NIR Conv1d, Conv2d; SumPool2d and AvgPool2d are made as
                  depthwise convolutions with st_snn_net_add_pool2d)
     scale        y = s .* x (NIR Scale)
     neurons      a population (its input is st_snn_neurons_input_len long:
                  n, or 2n for lif_ei): NIR LI -> libox, LIF -> lifbox, IF -> iaf,
                  I -> integrator, CubaLI -> cubali, CubaLIF -> cubalif, with
                  tau_*_inv = 1/tau and per-neuron values through
                  st_snn_net_add_neurons_each (as Norse's NIR import maps
                  them; an r other than 1 becomes a scale node before)
     threshold    z = [x - th > 0] (NIR Threshold)
     delay        y_k(t) = x_k(t - d_k), d_k whole steps (NIR Delay)

   Event-driven synapses: a dense, sparse, conv or scale node whose source
   produced spikes (every value 0 or 1: a spiking population, a threshold, a
   delay of spikes, or an input that happens to be binary this step) adds
   the weight columns of the sources that fired - no multiplication, cost
   proportional to the spikes. A real-valued source goes through the
   multiply-accumulate code. Both give bit-identical results (the same
   additions in the same order). */

typedef struct st_snn_net st_snn_net;
typedef struct st_snn_state st_snn_state;

typedef enum {
    ST_SNN_NODE_INPUT = 0,
    ST_SNN_NODE_OUTPUT,
    ST_SNN_NODE_DENSE,
    ST_SNN_NODE_SPARSE,
    ST_SNN_NODE_CONV,
    ST_SNN_NODE_SCALE,
    ST_SNN_NODE_NEURONS,
    ST_SNN_NODE_THRESHOLD,
    ST_SNN_NODE_DELAY
} st_snn_node_kind;

/*  A convolution's geometry. 1-D: height = kernel_h = stride_h = dilation_h
    = 1, padding_h = 0 (st_snn_conv_1d() fills these). Input is
    [in_channels][height][width], weights [out_channels][in_channels/groups]
    [kernel_h][kernel_w], output [out_channels][out_h][out_w] with
    out = (in + 2 padding - dilation (kernel - 1) - 1) / stride + 1. Zero
    padding. */
typedef struct {
    uint32_t in_channels, out_channels, groups;
    uint32_t height, width;       /* input extent */
    uint32_t kernel_h, kernel_w;
    uint32_t stride_h, stride_w;
    uint32_t padding_h, padding_w;
    uint32_t dilation_h, dilation_w;
} st_snn_conv_shape;

/*  A 1-D convolution over `length` positions (for audio: the frequency
    bins of one frame, channels = feature maps), stride 1, no padding,
    dilation 1, groups 1; change the fields after as needed. */
st_snn_conv_shape st_snn_conv_1d(uint32_t in_channels, uint32_t out_channels, uint32_t length,
                                 uint32_t kernel);

/*  Output extent of a convolution (0 when the geometry is impossible). */
uint32_t st_snn_conv_out_h(const st_snn_conv_shape *c);
uint32_t st_snn_conv_out_w(const st_snn_conv_shape *c);

/*  An empty net to add nodes to. NULL and *err on failure. Caller owns it. */
st_snn_net *st_snn_net_new(int *err);

/*  Frees the net and NULLs *self_p. Every state made from it must be
    destroyed first. */
void st_snn_net_destroy(st_snn_net **self_p);

/*  Adding nodes (before st_snn_net_finish only; ST_ERR_STATE after). Each
    returns the new node's id (>= 0, in order of addition) or a negative error
    code with a message. Names must be unique and non-empty (ST_ERR_INVALID).
    Weights and parameters are copied; the caller keeps its arrays. */
int st_snn_net_add_input(st_snn_net *self, const char *name, size_t n);
int st_snn_net_add_output(st_snn_net *self, const char *name, size_t n);
/*  w: row-major [n_out][n_in]; bias: n_out or NULL. */
int st_snn_net_add_dense(st_snn_net *self, const char *name, size_t n_out, size_t n_in,
                         const float *w, const float *bias);
/*  CSR of W [n_out][n_in]: row_ptr[n_out + 1], col[nnz] < n_in, val[nnz];
    bias n_out or NULL. Duplicate entries add up. */
int st_snn_net_add_sparse(st_snn_net *self, const char *name, size_t n_out, size_t n_in,
                          const uint32_t *row_ptr, const uint32_t *col, const float *val,
                          const float *bias);
/*  w: [out_channels][in_channels/groups][kernel_h][kernel_w]; bias:
    out_channels or NULL. */
int st_snn_net_add_conv(st_snn_net *self, const char *name, const st_snn_conv_shape *shape,
                        const float *w, const float *bias);
/*  Sum (average = false) or average pooling over kernel windows of a
    [channels][height][width] input, zero padded; an average divides by the
    kernel area. Made as a depthwise convolution with constant weights. */
int st_snn_net_add_pool2d(st_snn_net *self, const char *name, uint32_t channels,
                          uint32_t height, uint32_t width, uint32_t kernel_h, uint32_t kernel_w,
                          uint32_t stride_h, uint32_t stride_w, uint32_t padding_h,
                          uint32_t padding_w, bool average);
/*  s: n factors. */
int st_snn_net_add_scale(st_snn_net *self, const char *name, size_t n, const float *s);
/*  A population of n neurons, one parameter set. */
int st_snn_net_add_neurons(st_snn_net *self, const char *name, const st_snn_neuron_params *p,
                           size_t n);
/*  A population with per-neuron parameters p[0..n) (see
    st_snn_neurons_new_each). */
int st_snn_net_add_neurons_each(st_snn_net *self, const char *name,
                                const st_snn_neuron_params *p, size_t n);
/*  th: n thresholds. */
int st_snn_net_add_threshold(st_snn_net *self, const char *name, size_t n, const float *th);
/*  steps: n delays in whole time steps (0 passes through), each <= 65535. */
int st_snn_net_add_delay(st_snn_net *self, const char *name, size_t n, const uint32_t *steps);

/*  Adds the edge from -> to: to's input gets from's output added. Sizes must
    agree (from's n_out equals to's input length) and an input node takes no
    edges (ST_ERR_INVALID naming both nodes). An edge may close a cycle. */
int st_snn_net_connect(st_snn_net *self, int from, int to);

/*  Freezes the net: checks that every node but the inputs has a source,
    fixes the stepping order and the edges that read the previous step, and
    lays out the per-stream state. After it the net is immutable. ST_OK, or
    ST_ERR_INVALID naming the node at fault. */
int st_snn_net_finish(st_snn_net *self);

/*  Node lookup: the id of the node called `name`, or ST_ERR_NOT_FOUND. */
int st_snn_net_find(const st_snn_net *self, const char *name);

typedef struct {
    const char *name;         /* borrowed, lives as long as the net */
    st_snn_node_kind kind;
    size_t n_in;              /* length of the summed input (0 for input) */
    size_t n_out;             /* length of the output */
    size_t n_weights;         /* stored weights (dense, sparse, conv, scale) */
    st_snn_model model;       /* neurons only */
    int order;                /* position in the stepping order (finished) */
} st_snn_node_info;

size_t st_snn_net_node_count(const st_snn_net *self);
/*  ST_OK, or ST_ERR_INVALID for a bad id. */
int st_snn_net_node_info(const st_snn_net *self, int node, st_snn_node_info *out);
/*  Total length of the input vector st_snn_step() takes: the input nodes'
    lengths, concatenated in the order the inputs were added. */
size_t st_snn_net_input_len(const st_snn_net *self);
/*  The population of a neurons node (borrowed), NULL otherwise. */
const st_snn_neurons *st_snn_net_neurons(const st_snn_net *self, int node);

/* ---- per-stream state ---- */

/*  Operation counters, per node and per run (node = -1: the sum). They
    accumulate until st_snn_state_clear_counters(). */
typedef struct {
    uint64_t steps;          /* time steps run */
    uint64_t neuron_updates; /* neuron state updates (n per population step) */
    uint64_t syn_ops;        /* spike-driven accumulates (one weight added) */
    uint64_t dense_macs;     /* multiply-accumulates on real-valued inputs */
    uint64_t spikes;         /* spikes emitted (populations, thresholds) */
    uint64_t spike_slots;    /* neuron-steps that could have spiked */
    double spike_rate;       /* spikes / spike_slots (0 when none) */
} st_snn_counters;

/*  Path choice for synaptic nodes; AUTO (the default) is event driven for
    spikes and multiply-accumulate for real values. DENSE forces the
    multiply-accumulate code for every input (for tests and comparisons). */
typedef enum { ST_SNN_PATH_AUTO = 0, ST_SNN_PATH_DENSE } st_snn_path;

/*  A stream's state for a finished net, at its initial values. NULL and
    *err (ST_ERR_STATE when the net is not finished, ST_ERR_NOMEM). The
    caller owns it; the net must outlive it. */
st_snn_state *st_snn_state_new(const st_snn_net *net, int *err);
void st_snn_state_destroy(st_snn_state **self_p);

/*  Bytes of memory one stream's state holds (its arena of outputs, spike
    lists, neuron states and delay lines, its counters and its handle): what
    each further stream of this net costs. */
size_t st_snn_state_bytes(const st_snn_state *self);

/*  Back to the initial values (between utterances): membranes, currents,
    delay lines and the previous step's outputs. Counters are kept. */
void st_snn_state_reset(st_snn_state *self);

void st_snn_state_set_path(st_snn_state *self, st_snn_path path);

/*  One time step: in[0..st_snn_net_input_len) is this step's input (see
    st_snn_net_input_len). Every node is stepped once, in order. No
    allocation, no lock, no I/O; the thread that owns the state. Returns
    ST_OK. */
int st_snn_step(const st_snn_net *net, st_snn_state *state, const float *in);

/*  A node's output of the last step (n_out floats, borrowed until the next
    step or reset), and its length in *n (may be NULL). */
const float *st_snn_state_output(const st_snn_state *self, int node, size_t *n);

/*  The indices of the node's output that were 1 on the last step when that
    output was all spikes (0 or 1), ascending; NULL when it was real-valued.
    *n_fired gets their number. Borrowed like st_snn_state_output. */
const uint32_t *st_snn_state_spikes(const st_snn_state *self, int node, size_t *n_fired);

/*  A neuron node's state variable (n floats, writable: for tests and
    initial conditions), or NULL when the node or model has none. */
float *st_snn_state_var(st_snn_state *self, int node, st_snn_var var);

/*  Counters of one node, or of the whole run for node = -1. ST_OK or
    ST_ERR_INVALID for a bad id. */
int st_snn_state_counters(const st_snn_state *self, int node, st_snn_counters *out);
void st_snn_state_clear_counters(st_snn_state *self);

/*  Save and restore. st_snn_state_save_len() is the size of a snapshot;
    st_snn_state_save() writes one into buf (ST_ERR_INVALID when cap is too
    small); st_snn_state_restore() puts a snapshot back into a state of the
    same net (or of an identically built one), refusing with ST_ERR_FORMAT a
    buffer that is truncated, corrupt (checksum) or from another network.
    Counters are not part of a snapshot. Neither allocates. */
size_t st_snn_state_save_len(const st_snn_state *self);
int st_snn_state_save(const st_snn_state *self, void *buf, size_t cap);
int st_snn_state_restore(st_snn_state *self, const void *buf, size_t len);

/* ---- many streams at once ---- */

/*  A small pool of worker threads for st_snn_step_batch: the only threads
    the engine makes. n_threads counts the thread that calls
    st_snn_step_batch, which works too (n_threads - 1 workers are started);
    0 picks one per online core. NULL and *err on failure. The caller owns
    it; destroy joins the workers. */
typedef struct st_snn_pool st_snn_pool;
st_snn_pool *st_snn_pool_new(unsigned n_threads, int *err);
void st_snn_pool_destroy(st_snn_pool **self_p);
unsigned st_snn_pool_threads(const st_snn_pool *self);

/*  The kernels this machine runs: "avx2" (chosen at run time when the CPU
    has it) or "portable". Both give the same results to the bit. Static
    string. */
const char *st_snn_kernels(void);

/*  Steps n independent streams of one net: states[k] with input inputs[k],
    spread over the pool's threads and the caller's (pool NULL: all in the
    caller's thread). Returns when every stream has stepped. No allocation;
    one batch at a time per pool (a second caller waits its turn). Returns
    ST_OK. */
int st_snn_step_batch(const st_snn_net *net, st_snn_state *const *states,
                      const float *const *inputs, size_t n, st_snn_pool *pool);

/* ======================================================================
   Files
   ======================================================================

   Our own model format (docs/MODEL_FORMAT.md has the byte layout): an
   "STNN" file is a versioned, checksummed container of named tensors
   (float32, int32, uint8, ...), each 64-byte aligned, that loads with one
   read() and is used in place - no per-element parsing. A network is a
   set of tensors in it (under "net/" and "node/<name>/"), so the models
   the project trains (the recognizer, the VAD, the language model) keep
   their weights in the same container and may embed networks beside them
   under a prefix.

   NIR (docs/NIR.md) is the exchange format with Norse, snnTorch, Rockpool,
   Sinabs, Spyx and the NIR paper: HDF5 files, read and written with
   libhdf5.

   Every loader refuses bad input - not the right kind of file, another
   format version, truncated, corrupt (checksum), shapes that disagree, a
   graph naming a node that does not exist - with ST_ERR_FORMAT and an
   st_errmsg() naming the file (or "<memory>"), the offset, tensor or node,
   and the reason; ST_ERR_IO when the file cannot be read or written,
   ST_ERR_UNSUPPORTED for valid input this build cannot represent. None of
   them aborts or prints on bad input. All may be called from any thread
   but not from the audio callback (they allocate and do I/O). */

/* ---- named tensors: the container ---- */

/*  Element types. The values are the codes stored in the file. */
typedef enum {
    ST_DTYPE_F32 = 1,
    ST_DTYPE_F64 = 2,
    ST_DTYPE_I32 = 3,
    ST_DTYPE_U32 = 4,
    ST_DTYPE_I64 = 5,
    ST_DTYPE_U8 = 6
} st_dtype;

/*  Bytes per element (0 for a bad value) and short name ("f32", "u8"; NULL
    for a bad value). */
size_t st_dtype_size(st_dtype dtype);
const char *st_dtype_name(st_dtype dtype);

#define ST_TENSOR_MAX_DIMS 8
#define ST_TENSOR_MAX_NAME 1023 /* bytes of a tensor name, without the NUL */
#define ST_TENSOR_KIND_LEN 15   /* bytes of a file's kind, without the NUL */

/*  One tensor of a file. Everything is borrowed from the file object and
    valid until it is destroyed (or, for a tensor added later, until the
    next add). Data is little-endian, C order (row-major, the last dimension
    varies fastest), 64-byte aligned. */
typedef struct {
    const char *name;
    st_dtype dtype;
    unsigned ndim;                     /* 0 (a scalar) to ST_TENSOR_MAX_DIMS */
    uint64_t dims[ST_TENSOR_MAX_DIMS]; /* outermost first; unused ones 0 */
    uint64_t count;                    /* elements: the product of dims (1 for a scalar) */
    const void *data;
    size_t nbytes;                     /* count * st_dtype_size(dtype) */
} st_tensor;

/*  A set of named tensors in memory, to save, or loaded from a file. */
typedef struct st_tensor_file st_tensor_file;

/*  An empty set to add tensors to. `kind` (1 to ST_TENSOR_KIND_LEN printable
    ASCII characters, e.g. "snn-net", "spikegpt", "recognizer") says what the
    file holds, so a loader can refuse a file of another kind by name. NULL
    and *err (ST_ERR_INVALID, ST_ERR_NOMEM) on failure. The caller owns it. */
st_tensor_file *st_tensor_file_new(const char *kind, int *err);

/*  Frees the set (and a loaded file's image) and NULLs *self_p; NULL or
    *NULL is fine. */
void st_tensor_file_destroy(st_tensor_file **self_p);

/*  Adds a tensor, copying its data (count * dtype size bytes; data may be
    NULL only when count is 0). Names are 1 to ST_TENSOR_MAX_NAME bytes with
    no NUL and unique (ST_ERR_INVALID naming the clash); dims as in
    st_tensor. A loaded file may be added to and saved again. */
int st_tensor_file_add(st_tensor_file *self, const char *name, st_dtype dtype, unsigned ndim,
                       const uint64_t *dims, const void *data);

/*  Adds a text as a u8 tensor of its bytes (no NUL); read it back with
    st_tensor_file_string(). */
int st_tensor_file_add_string(st_tensor_file *self, const char *name, const char *text);

/*  Writes the set to `path` (through a temporary file renamed over it, so a
    reader never sees half a file): ST_ERR_IO naming the path. */
int st_tensor_file_save(const st_tensor_file *self, const char *path);

/*  Writes the set into a new buffer *buf of *len bytes, which the caller
    frees with free(). */
int st_tensor_file_save_mem(const st_tensor_file *self, void **buf, size_t *len);

/*  Loads a file with one read and checks all of it (header, index, every
    tensor's checksum, the padding) before returning. NULL and *err:
    ST_ERR_NOT_FOUND (no such file), ST_ERR_IO (cannot open or read, not a
    regular file), ST_ERR_FORMAT (see above: the message
    names the path, the offset or tensor, and the reason), ST_ERR_NOMEM. */
st_tensor_file *st_tensor_file_load(const char *path, int *err);

/*  The same from a buffer (copied: the caller keeps its buffer). Messages
    name the file "<memory>". */
st_tensor_file *st_tensor_file_load_mem(const void *buf, size_t len, int *err);

/*  What the file holds (its kind), and where it came from (its path,
    "<memory>", or "<new>"): both borrowed. */
const char *st_tensor_file_kind(const st_tensor_file *self);
const char *st_tensor_file_path(const st_tensor_file *self);

/*  Tensors in file order: count, and the k-th (ST_ERR_INVALID for k out
    of range). */
size_t st_tensor_file_count(const st_tensor_file *self);
int st_tensor_file_at(const st_tensor_file *self, size_t k, st_tensor *out);

/*  The tensor called `name` (hashed lookup), or ST_ERR_NOT_FOUND. */
int st_tensor_file_find(const st_tensor_file *self, const char *name, st_tensor *out);

/*  Finds `name` and checks it: its dtype, its ndim, and each dims[k] that is
    not 0 (0 accepts any extent). ST_ERR_FORMAT names the file, the tensor,
    what was expected and what is there (also when it is missing). For the
    loaders of the models that use the container. */
int st_tensor_file_expect(const st_tensor_file *self, const char *name, st_dtype dtype,
                          unsigned ndim, const uint64_t *dims, st_tensor *out);

/*  Copies the u8 tensor `name` as a NUL-terminated text into buf (cap
    bytes). ST_ERR_FORMAT when it is missing, not u8, holds a NUL, or does
    not fit. */
int st_tensor_file_string(const st_tensor_file *self, const char *name, char *buf, size_t cap);

/*  CRC-32 (the polynomial of zlib, PNG and Ethernet, so `zlib.crc32` checks
    it), continuing from `crc` (0 to start). */
uint32_t st_crc32(uint32_t crc, const void *data, size_t len);

/* ---- networks in the container ---- */

/*  Saves a finished net (ST_ERR_STATE otherwise) as a file of kind
    "snn-net": every node with its weights and parameters, and the edges in
    their order, so the loaded net steps bit for bit as the saved one.
    Errors as st_tensor_file_save(). */
int st_snn_net_save(const st_snn_net *net, const char *path);

/*  The same into a new buffer the caller frees with free(). */
int st_snn_net_save_mem(const st_snn_net *net, void **buf, size_t *len);

/*  Loads a net saved by st_snn_net_save(): returns it finished, owned by
    the caller. NULL and *err as st_tensor_file_load(); a file of another
    kind, or whose network tensors disagree with each other, is
    ST_ERR_FORMAT naming the tensor or node. */
st_snn_net *st_snn_net_load(const char *path, int *err);
st_snn_net *st_snn_net_load_mem(const void *buf, size_t len, int *err);
/*  The same from a file already loaded (st_tensor_file_load), for a caller
    that looked at its kind first: the file is not read again. */
st_snn_net *st_snn_net_of_file(const st_tensor_file *file, int *err);

/*  Adds a finished net's tensors to a file under `prefix` (may be "" or
    NULL; e.g. "vad/"), for a model file that holds more than one network
    or weights of its own; st_snn_net_from_file() reads them back. */
int st_snn_net_to_file(const st_snn_net *net, st_tensor_file *file, const char *prefix);
st_snn_net *st_snn_net_from_file(const st_tensor_file *file, const char *prefix, int *err);

/*  An ensemble of k finished nets as one: the members side by side on one
    shared input, each member's output scaled by 1/k into one shared output,
    which is therefore the mean of the members' outputs (a read-out's mean
    of logits). Every member must have one input and one output, of the
    first member's sizes (ST_ERR_INVALID naming the member). The members'
    nodes are named "m<i>.<name>", their shares of the mean "m<i>.mean";
    each member steps as it did alone (its nodes, edges and their order are
    copied), so a member alone gives its own outputs bit for bit. The
    members are only read; the new net is finished and the caller's. */
st_snn_net *st_snn_net_ensemble(const st_snn_net *const *members, size_t k, int *err);
/*  The same with members that read different inputs (e.g. features
    normalised two ways): member m reads input group[m] of n_groups, all of
    the first member's input size, named "input", "input1", ... in that
    order (st_snn_step takes them concatenated). Every input must feed a
    member. group NULL with n_groups 1 is st_snn_net_ensemble. */
#define ST_SNN_ENSEMBLE_MAX_INPUTS 8
st_snn_net *st_snn_net_ensemble_inputs(const st_snn_net *const *members, size_t k,
                                       const int *group, size_t n_groups, int *err);

/* ---- NIR: import and export ---- */

/*  How the exporter that wrote a NIR file folded the time step into the
    neurons' tau, r and w_in. NIR files carry no dt, so the importer needs
    both the step and the convention; docs/NIR.md has the derivations.
    Per step, with a = 1 - alpha the membrane's decay (alpha = 1 - dt/tau
    for Euler, e^(-dt/tau) for the exponential conventions):

    NORSE     forward Euler of NIR's equations as written:
              v' = v + (dt/tau) ((v_leak - v) + r x), CubaLIF's i first and
              v from the new i. What Norse, snnTorch and Spyx compute, and
              the NIR reference. Norse writes r = w_in = 1. Reset to
              v_reset.
    SNNTORCH  the same arithmetic as NORSE: snnTorch writes tau = dt/(1-beta)
              and r = tau/dt (w_in = tau_syn/dt) at its own dt (1e-4 by
              default), so Euler at that dt gives back its v' = beta v + x.
              Use it with the exporter's dt.
    ROCKPOOL  exponential decay and no dt in the input: v' = alpha v +
              (1 - alpha) v_leak + g x, where Rockpool writes r = tau
              e^(-dt/tau) / dt so that g = r dt / (tau e^(-dt/tau)) = 1;
              CubaLIF: i' = beta i + w_in x. Reset by subtraction. Also what
              Sinabs computes for its LIF.
    EXACT     exponential integration with the input held over the step:
              v' = alpha v + (1 - alpha)(v_leak + r x) (and the same for
              CubaLIF's i with w_in), the NIR paper's exact solver.

    IF and I take v' = v + r x under every convention (the exporters fold
    dt into r). */
typedef enum {
    ST_NIR_NORSE = 0,
    ST_NIR_SNNTORCH,
    ST_NIR_ROCKPOOL,
    ST_NIR_EXACT,
    ST_NIR_N_CONVENTIONS
} st_nir_convention;

/*  What a spike does to v of the imported spiking neurons: AUTO takes the
    convention's (value for NORSE, SNNTORCH and EXACT; subtract for
    ROCKPOOL). */
typedef enum { ST_NIR_RESET_AUTO = 0, ST_NIR_RESET_VALUE, ST_NIR_RESET_SUBTRACT } st_nir_reset;

typedef struct {
    double dt_s;                  /* s, the time step the network runs at; the exporter's */
    st_nir_convention convention; /* how the exporter folded dt into tau, r and w_in */
    st_nir_reset reset;           /* reset of spiking neurons; AUTO: the convention's */
} st_nir_params;

/*  dt_s = 1e-4 (the step of the NIR paper's experiments and of snnTorch's
    exporter), NORSE, AUTO. */
st_nir_params st_nir_default_params(void);

/*  "norse", "snntorch", "rockpool", "exact"; NULL for a bad value. */
const char *st_nir_convention_name(st_nir_convention convention);
/*  ST_OK, or ST_ERR_NOT_FOUND with a message listing the names. */
int st_nir_convention_from_name(const char *name, st_nir_convention *out);

/*  Imports a NIR graph as a finished net owned by the caller (params NULL:
    the defaults). Node types: Input, Output, Affine, Linear, Scale, LI, LIF,
    IF, I, CubaLI, CubaLIF, Threshold, Delay, Conv1d, Conv2d, Flatten,
    SumPool2d, AvgPool2d, and nested NIRGraph nodes (flattened: their nodes
    are named "<graph>.<node>"). Engine node names are the NIR names; a
    neuron whose input gain is not 1 gets a scale node "<name>.r" before it.
    The net's inputs are the top-level Input nodes (in name order), its
    outputs the top-level Output nodes, and its stepping order follows the
    data (docs/NIR.md). NULL and *err: ST_ERR_NOT_FOUND or ST_ERR_IO
    (cannot open), ST_ERR_INVALID (bad params), ST_ERR_FORMAT (not HDF5, no
    /node graph, a missing or misshapen dataset, an edge naming a node that
    does not exist: the message names the file, the graph, the node and the
    dataset), ST_ERR_UNSUPPORTED (an unknown node type, a batched weight, a
    delay that is not a whole number of steps). libhdf5's own error
    printing is off for the call. libhdf5 trusts the file's internal
    structure: damaged HDF5 metadata (as opposed to a malformed graph) can
    crash it, so import untrusted files in a separate process. */
st_snn_net *st_snn_net_load_nir(const char *path, const st_nir_params *params, int *err);

/*  The same from an HDF5 image in memory (copied; for tests and fuzzing). */
st_snn_net *st_snn_net_load_nir_mem(const void *buf, size_t len, const st_nir_params *params,
                                    int *err);

/*  Exports a finished net as NIR (the layout of docs/NIR.md: /version,
    /node/type, /node/edges as an E x 2 table of names,
    /node/nodes/<name>/<param>; no attributes), in the NORSE convention at
    params->dt_s (params NULL: the populations' own dt). input -> Input,
    output -> Output (one that feeds other nodes has its edges routed around
    it), dense and sparse -> Affine or Linear, conv (pools too, as the
    depthwise convolutions they are) -> Conv1d or Conv2d with its
    input_shape, scale -> Scale, threshold -> Threshold,
    delay -> Delay (in seconds), lifbox -> LIF, libox -> LI, iaf -> IF,
    integrator -> I, cubalif -> CubaLIF, cubali -> CubaLI, and Norse's lif
    and li -> CubaLIF and CubaLI (w_in = 1/(dt tau_syn_inv)). A population
    made for another dt gets its tau scaled so each step computes the same.
    ST_ERR_UNSUPPORTED names a node NIR cannot express (lsnn, adex, a reset
    other than to a value) or a convention other than NORSE and SNNTORCH,
    checked before the file is touched; ST_ERR_STATE an unfinished net,
    ST_ERR_IO the path. Importing the file with the same dt gives back a net
    that steps as this one (Norse's lif and li: up to float rounding). */
int st_snn_net_save_nir(const st_snn_net *net, const char *path, const st_nir_params *params);

/* ======================================================================
   Reference networks
   ======================================================================

   The benchmark networks, built in one place so that `spiketalk bench snn`,
   `spiketalk snn profile`, the tests and the benchmark's peers (which are
   handed the same synapses and weights) all run the very same network.
   Drawn deterministically from a seed (splitmix64), the same on every
   platform. */

/*  Vogels & Abbott's (2005) CUBA network with the parameters of Brian2's
    example (examples/CUBA.py): n_exc + n_inh lif_ei neurons, each ordered
    pair (self included) connected with probability p_connect, an
    excitatory source adding w_exc to its target's excitatory current, an
    inhibitory one w_inh to the inhibitory current. Voltages in mV. */
typedef struct {
    uint32_t n_exc, n_inh;   /* neurons: 3200 and 800 */
    double p_connect;        /* 0.02 */
    double dt;               /* s, 1e-4 */
    double tau_mem_s;        /* 20e-3 (taum) */
    double tau_exc_s;        /* 5e-3 (taue) */
    double tau_inh_s;        /* 10e-3 (taui) */
    double refractory_s;     /* 5e-3, with Brian2's timing (rho_reset = T/dt - 1) */
    float v_leak, v_th, v_reset; /* mV: El = -49, Vt = -50, Vr = -60 */
    float w_exc, w_inh;      /* mV: we = 60 * 0.27 / 10, wi = -20 * 4.5 / 10 */
    uint64_t seed;           /* synapses and initial membranes; 1 */
} st_snn_cuba_params;

st_snn_cuba_params st_snn_cuba_default_params(void);

/*  Draws the synapses: pre[k] -> post[k] for k < *n_syn, ascending by pre
    then post, so the *n_exc_syn excitatory ones (pre < n_exc) come first.
    The caller frees *pre and *post with free(). ST_OK, ST_ERR_INVALID,
    ST_ERR_NOMEM. */
int st_snn_cuba_synapses(const st_snn_cuba_params *p, uint32_t **pre, uint32_t **post,
                         size_t *n_syn, size_t *n_exc_syn);

/*  The finished network: a lif_ei population "P" (n = n_exc + n_inh) and a
    sparse node "syn" (2n x n: the excitatory currents, then the inhibitory
    ones) from P back to P; P reads syn's output of the previous step, so a
    spike reaches its targets' currents on the next step, as Brian2's on_pre
    without delay reaches v one step after the spike. Its
    synapses are pre/post, or drawn from the seed when pre is NULL. No
    input (st_snn_step takes NULL). NULL and *err on failure; the caller
    owns it. */
st_snn_net *st_snn_cuba_net(const st_snn_cuba_params *p, const uint32_t *pre,
                            const uint32_t *post, size_t n_syn, int *err);

/*  The initial membranes, v_reset + U(0,1) (v_th - v_reset) as in Brian2's
    example, from the seed: n_exc + n_inh values into v (for
    st_snn_state_var(state, P, ST_SNN_VAR_V)). */
void st_snn_cuba_initial_v(const st_snn_cuba_params *p, float *v);

/*  The streaming stack: input (n_in) -> dense "fc1" -> lif "lif1" (n_hidden)
    -> dense "fc2" -> lif "lif2" (n_out), Norse's default LIF at dt, weights
    U(-gain/sqrt(fan_in), gain/sqrt(fan_in)) and biases in PyTorch's Linear
    initialisation range U(-1/sqrt(fan_in), 1/sqrt(fan_in)). */
typedef struct {
    uint32_t n_in, n_hidden, n_out; /* 256, 512, 256 */
    float gain;              /* 8: at 10 % input spikes, about 7 % of the LIFs fire a step */
    bool bias;               /* true */
    double dt;               /* s, 1e-3 */
    uint64_t seed;           /* 1 */
} st_snn_stream_params;

st_snn_stream_params st_snn_stream_default_params(void);

/*  The weights, row-major as PyTorch's Linear stores them: w1
    [n_hidden][n_in], b1 [n_hidden], w2 [n_out][n_hidden], b2 [n_out]
    (the caller's arrays; biases are 0 when p->bias is false). */
void st_snn_stream_weights(const st_snn_stream_params *p, float *w1, float *b1, float *w2,
                           float *b2);

/*  The finished streaming network. NULL and *err on failure; caller owns. */
st_snn_net *st_snn_stream_net(const st_snn_stream_params *p, int *err);

#ifdef __cplusplus
}
#endif
#endif
