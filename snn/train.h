/*  snn/train.h - training spiking networks in C: surrogate-gradient
    backpropagation through time (BPTT), losses (cross-entropy on a read-out,
    CTC), Adam/AdamW, deterministic mini-batches over a worker pool,
    checkpoints that resume exactly, and export to the engine (snn/snn.h),
    its model file and NIR.

    Tuned for the networks this project trains: 40-band spike inputs, one to
    three layers of 64 to 1024 LIF-family neurons (often recurrent), a
    leaky-integrator read-out, 50 to 500 time steps per sample, mini-batches
    of 16 to 128 samples, 1 to 16 cores. The work is dense matrix products
    over the batch ([rows x n_in] x [n_in x n]); inputs that are spikes (0/1)
    take an event-driven path that only adds the weight rows of the inputs
    that fired.

    The forward pass is the engine's, to the bit: each neuron model is
    written with the same float operations in the same order as
    snn/neuron.c (Norse's), and every synaptic sum adds its terms in
    ascending input order with separate multiplies and adds, as the engine's
    kernels do. A network exported with st_train_export() therefore steps on
    the engine exactly as the trainer computed it.

    Gradients. A spike z = H(u), u = v - threshold (strictly u > 0, as
    Norse), has the pseudo-derivative of the chosen surrogate in the
    backward pass. As in Norse, the reset is detached by default (no
    gradient flows through the z of the reset); detach_reset = false makes
    the reset part of the graph. With smooth_forward (for gradient checks)
    the forward uses the smooth step S whose derivative is the surrogate, so
    the gradient is the exact derivative of the function computed; delays
    then interpolate linearly between whole steps instead of rounding.

    The loss of a mini-batch is the mean over its samples of the task loss
    plus, when asked, rate_reg * sum over spiking layers of
    mean_k (r_k - rate_target)^2, with r_k neuron k's firing rate over the
    sample's steps. Gradients are of that loss.

    Determinism. A mini-batch is cut into chunks of `chunk` samples; each
    chunk's forward and backward run on one thread into that chunk's own
    gradient buffer, and the buffers are summed in chunk order. The result
    is bit-identical for any thread count (it depends on `chunk`, not on
    `threads`; across machines it may differ in the last bits, as the
    backward uses fused multiply-adds where the CPU has them). Initial
    weights, generated data and the epoch shuffles come from the seed.

    Errors follow base/base.h: functions return ST_OK or a negative code
    with st_errmsg() saying what was wrong and where; constructors return
    NULL and *err. Nothing here prints. Thread safety: one thread drives a
    trainer (its pool's workers are internal); distinct trainers and models
    are independent.
*/
#ifndef ST_TRAIN_H
#define ST_TRAIN_H

#include "snn/snn.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ======================================================================
   Surrogate gradients
   ====================================================================== */

typedef enum {
    ST_TRAIN_SURR_SUPERSPIKE = 0, /* Norse "super": 1/(alpha|u| + 1)^2, alpha = 100 */
    ST_TRAIN_SURR_FAST_SIGMOID,   /* snnTorch fast_sigmoid: 1/(alpha|u| + 1)^2, slope 25 */
    ST_TRAIN_SURR_ARCTAN,         /* snnTorch ATan: (alpha/2)/(1 + (pi/2 alpha u)^2), alpha = 2 */
    ST_TRAIN_N_SURR
} st_train_surrogate;

const char *st_train_surrogate_name(st_train_surrogate s); /* "superspike", ...; NULL if bad */
/*  ST_OK, or ST_ERR_NOT_FOUND with a message listing the names. */
int st_train_surrogate_from_name(const char *name, st_train_surrogate *out);
/*  The default steepness (100, 25, 2). */
float st_train_surrogate_default_alpha(st_train_surrogate s);
/*  The pseudo-derivative dz/du at u = v - threshold. */
float st_train_surrogate_grad(st_train_surrogate s, float alpha, float u);
/*  The smooth step S with S' = the pseudo-derivative and S(-inf) = 0 (the
    forward of smooth_forward). SuperSpike's reaches 2/alpha at +inf,
    arctan's 1. */
float st_train_surrogate_smooth(st_train_surrogate s, float alpha, float u);

/* ======================================================================
   Layers and the model
   ======================================================================

   A model is a stack of layers from n_in inputs. Each layer reads the
   previous one's output (the inputs for the first) at the same step:
     dense    y = W x + b into a population (W is n x n_in)
     conv1d   the input read as [in_channels][length], a 1-D convolution
              over length (PyTorch layout: W [out][in][kernel], zero
              padding, stride), into a population of out_channels x out_len
     delay    y_k(t) = x_k(t - d_k), one learnable delay per input; the
              forward rounds d_k to whole steps (the engine's delay node),
              the gradient of d_k is x_k(t - d - 1) - x_k(t - d)
   A dense or conv1d layer may be recurrent: its population also receives
   R z(t - 1), all-to-all from its own outputs of the step before. Its
   population is lif, lsnn or cubalif (spiking) or li (a leaky integrator
   whose membrane is the output: the read-out).

   Parameter tensors of layer NAME (st_train_model_param): NAME.w (dense:
   [n_in][n], row k the weights from input k; conv1d: [out][in][kernel]),
   NAME.b [n] or [out_channels], NAME.rec [n][n] (row j from neuron j),
   NAME.a (dt tau_mem_inv), NAME.s (dt tau_syn_inv), NAME.ad (lsnn: dt
   tau_adapt_inv) - per neuron with train_tau -, NAME.th (v_th per neuron,
   with train_threshold), NAME.d (delay: steps). */

typedef enum {
    ST_TRAIN_DENSE = 0,
    ST_TRAIN_CONV1D,
    ST_TRAIN_DELAY,
    ST_TRAIN_N_KINDS
} st_train_layer_kind;

#define ST_TRAIN_NAME_LEN 32
#define ST_TRAIN_MAX_LAYERS 16

typedef struct {
    st_train_layer_kind kind;
    char name[ST_TRAIN_NAME_LEN]; /* unique, [A-Za-z0-9_-]; "" = "l<index>" */
    size_t neurons;               /* dense: population size */
    uint32_t in_channels;         /* conv1d: input channels (n_in = in_channels x length) */
    uint32_t out_channels;        /* conv1d */
    uint32_t kernel;              /* conv1d: taps */
    uint32_t stride;              /* conv1d: >= 1 */
    uint32_t padding;             /* conv1d: zeros each side */
    bool recurrent;               /* dense, conv1d: R z(t-1) into the population */
    bool bias;                    /* dense, conv1d: learn b (default true) */
    st_snn_neuron_params neuron;  /* model lif, lsnn, cubalif or li; dt, rates, v_th, reset */
    bool train_tau;               /* learn a, s (and ad) per neuron */
    bool train_threshold;         /* learn v_th per neuron */
    float init_scale;             /* W uniform in +-init_scale/sqrt(fan_in) (PyTorch's 1) */
    float rec_scale;              /* R uniform in +-rec_scale/sqrt(n) */
    float max_delay;              /* delay: steps, d is kept in [0, max_delay] */
    float init_delay;             /* delay: d starts uniform in [0, init_delay] */
    bool train_delay;             /* delay: learn d (default true) */
} st_train_layer_params;

/*  Defaults: dense, 0 neurons (set them), no recurrence, bias, Norse's LIF
    parameters (st_snn_neuron_default_params), init_scale = rec_scale = 1,
    stride 1, no padding, max_delay 10, init_delay 0, train_delay. */
st_train_layer_params st_train_layer_default_params(st_train_layer_kind kind);
const char *st_train_layer_kind_name(st_train_layer_kind kind); /* "dense", "conv1d", "delay" */

typedef struct st_train_model st_train_model;

/*  A model of n_layers layers over n_in inputs, weights drawn from `seed`.
    Refuses, with ST_ERR_INVALID and a message naming the layer, shapes that
    do not fit (a conv1d whose in_channels do not divide its input, a kernel
    longer than the padded input, 0 neurons, a delay as the last layer), a
    neuron model the trainer cannot differentiate, bad neuron parameters
    (the engine's check), duplicate names or the names "input" and
    "output". NULL and *err. The caller owns the result. */
st_train_model *st_train_model_new(size_t n_in, const st_train_layer_params *layers,
                                   size_t n_layers, uint64_t seed, int *err);
void st_train_model_destroy(st_train_model **self_p);

size_t st_train_model_inputs(const st_train_model *self);
size_t st_train_model_outputs(const st_train_model *self); /* the last layer's size */
size_t st_train_model_layer_count(const st_train_model *self);
/*  Layer k's parameters as built (name filled in), and its output size. */
const st_train_layer_params *st_train_model_layer(const st_train_model *self, size_t k);
size_t st_train_model_layer_size(const st_train_model *self, size_t k);

/*  A parameter tensor: borrowed pointers into the model (writable: after
    writing, call st_train_model_changed()). dims outermost first. */
typedef struct {
    const char *name; /* "hidden.w" */
    float *data;
    size_t count;
    unsigned ndim;
    size_t dims[3];
    size_t offset; /* position in the flat vector of all parameters */
} st_train_tensor;

size_t st_train_model_param_count(const st_train_model *self);   /* tensors */
size_t st_train_model_param_total(const st_train_model *self);   /* floats in all of them */
int st_train_model_param(const st_train_model *self, size_t k, st_train_tensor *out);
/*  ST_OK or ST_ERR_NOT_FOUND (the message lists the names). */
int st_train_model_param_find(const st_train_model *self, const char *name, st_train_tensor *out);
/*  Re-derives what depends on the parameters (rounds trained rates to what
    the engine will compute, clamps delays and rates into range). */
void st_train_model_changed(st_train_model *self);

/* ======================================================================
   Data sets
   ======================================================================

   A data set is n samples, each [steps][channels] floats (steps <= the
   set's max_steps; zero padded), with a class label (classification) or a
   sequence of labels (CTC). It may be made in memory, generated (the tasks
   below, from a seed), or loaded from a tensor file of kind "train-data"
   (tensors "inputs" f32 [n][max_steps][channels], "steps" u32 [n], and
   "labels" i32 [n] or "targets" i32 [total] with "target_offsets"
   u32 [n + 1]). */

typedef struct st_train_data st_train_data;

/*  An empty set of n samples (n may be 0: refused later, with a clear
    message, by st_train_check_data). NULL and *err. Caller owns it. */
st_train_data *st_train_data_new(size_t n, size_t max_steps, size_t channels, int *err);
void st_train_data_destroy(st_train_data **self_p);

/*  Sets sample k: x [steps][channels] (copied), and its class label (>= 0)
    or its label sequence (n_labels >= 0; an empty one is all blank under
    CTC: silence, noise). A set holds one kind of label. */
int st_train_data_set(st_train_data *self, size_t k, const float *x, size_t steps, int32_t label);
int st_train_data_set_seq(st_train_data *self, size_t k, const float *x, size_t steps,
                          const int32_t *labels, size_t n_labels);

size_t st_train_data_count(const st_train_data *self);
size_t st_train_data_max_steps(const st_train_data *self);
size_t st_train_data_channels(const st_train_data *self);
bool st_train_data_is_seq(const st_train_data *self);
/*  1 + the largest label. */
uint32_t st_train_data_classes(const st_train_data *self);
/*  Sample k: its input [max_steps][channels] (borrowed), steps, label or
    label sequence (borrowed; *n gets its length). */
const float *st_train_data_input(const st_train_data *self, size_t k, size_t *steps);
int32_t st_train_data_label(const st_train_data *self, size_t k);
const int32_t *st_train_data_labels(const st_train_data *self, size_t k, size_t *n);

int st_train_data_save(const st_train_data *self, const char *path);
/*  ST_ERR_IO, or ST_ERR_FORMAT naming the file and tensor. */
st_train_data *st_train_data_load(const char *path, int *err);

/*  Tasks the repository generates itself (docs/TRAINING.md):
      bands     which of `classes` frequency bands carries a burst: channels
                are `classes` equal bands; background spikes everywhere at
                rate_background, a burst of steps/4 in the labelled band at
                rate_signal, and a distractor burst at half that rate in
                another band;
      xor       temporal XOR: two cues (channel half A or B, each a burst of
                steps/10), one at the start and one after the middle; the
                label is cue1 XOR cue2 (2 classes) - needs memory;
      sequence  1 to 3 bursts one after another, each in one of `classes`
                bands; the label sequence is their bands (for CTC). */
typedef enum { ST_TRAIN_TASK_BANDS = 0, ST_TRAIN_TASK_XOR, ST_TRAIN_TASK_SEQUENCE,
               ST_TRAIN_N_TASKS } st_train_task;

typedef struct {
    st_train_task task;
    size_t samples;
    size_t steps;          /* per sample */
    size_t channels;       /* >= classes (bands), >= 2 (xor) */
    uint32_t classes;      /* bands, sequence: number of bands */
    float rate_background; /* spike probability per channel and step */
    float rate_signal;     /* inside a burst */
    uint64_t seed;
} st_train_task_params;

/*  bands, 1000 samples, 100 steps, 40 channels, 4 classes, 0.02, 0.3, seed 1. */
st_train_task_params st_train_task_default_params(st_train_task task);
const char *st_train_task_name(st_train_task task);
int st_train_task_from_name(const char *name, st_train_task *out);
st_train_data *st_train_data_generate(const st_train_task_params *p, int *err);

/* ======================================================================
   The trainer
   ====================================================================== */

typedef enum {
    ST_TRAIN_LOSS_CE_MAX = 0, /* cross-entropy on max over time of the read-out (Norse's decode) */
    ST_TRAIN_LOSS_CE_MEAN,    /* ... on its mean over time */
    ST_TRAIN_LOSS_CE_LAST,    /* ... on its last step */
    ST_TRAIN_LOSS_CTC,        /* CTC over the per-step read-out as logits */
    ST_TRAIN_LOSS_CE_FRAME,   /* cross-entropy at every step against that step's label (a label
                                 sequence as long as the sample: frame tagging, e.g. a VAD) */
    ST_TRAIN_N_LOSSES
} st_train_loss;

typedef enum { ST_TRAIN_ADAM = 0, ST_TRAIN_ADAMW, ST_TRAIN_N_OPTIMIZERS } st_train_optimizer;

/*  "ce_max", "ce_mean", "ce_last", "ctc", "ce_frame"; "adam", "adamw"; NULL for a bad
    value. The _from_name functions: ST_OK or ST_ERR_NOT_FOUND listing the
    names. */
const char *st_train_loss_name(st_train_loss l);
int st_train_loss_from_name(const char *name, st_train_loss *out);
const char *st_train_optimizer_name(st_train_optimizer o);
int st_train_optimizer_from_name(const char *name, st_train_optimizer *out);

typedef struct {
    st_train_surrogate surrogate;
    float surrogate_alpha;        /* steepness; 0 = the surrogate's default */
    bool detach_reset;            /* no gradient through the reset's z (Norse); default true */
    bool smooth_forward;          /* gradient checks: the smooth step forward (see above) */
    st_train_loss loss;
    uint32_t ctc_blank;           /* CTC: the blank's output index; labels take the others */
    float rate_reg;               /* weight of the firing-rate regulariser; 0 = off */
    float rate_target;            /* its target rate, spikes per neuron and step */
    st_train_optimizer optimizer;
    float lr;                     /* peak learning rate */
    float lr_min;                 /* end of the cosine decay */
    uint32_t warmup_steps;        /* linear warm-up from lr/warmup to lr */
    uint64_t decay_steps;         /* steps of warm-up + cosine; 0 = constant lr after warm-up */
    float beta1, beta2, eps;      /* Adam's */
    float weight_decay;           /* Adam: L2 in the gradient; AdamW: decoupled; weights only */
    float clip_norm;              /* clip the global gradient norm to this; 0 = off */
    uint32_t batch;               /* samples per step */
    uint32_t chunk;               /* samples per unit of work (fixes the summation order) */
    unsigned threads;             /* 0 = one per core */
    bool event_driven;            /* spike inputs only add weights (default true; false: always
                                     multiply, the same result, for comparisons) */
    uint64_t seed;                /* the epoch shuffles */
    /* SpecAugment (Park et al., 2019) on the inputs of training steps only:
       each sample gets mask_freq bands of 0 to mask_freq_width channels and
       mask_time stretches of 0 to mask_time_width steps set to 0 (the mean
       of normalised features; no spike for spike inputs), drawn afresh for
       every step from the seed, the step number and the sample's index, so
       any thread count draws the same masks. Never on evaluation. 0: off. */
    uint32_t mask_freq, mask_freq_width;
    uint32_t mask_time, mask_time_width;
    /* Warps on the inputs of training steps only, drawn like the masks (and
       applied before them): each sample is stretched in time by a factor
       drawn uniformly from 1 +- warp_time about its middle step, and across
       its channels by 1 +- warp_freq (vocal tract length perturbation,
       Jaitly & Hinton 2013: channel c is read from c x factor up to 80 % of
       the channels, the rest squeezed or spread so that the last channel
       stays the last), read between steps and channels by linear
       interpolation (nearest for a sample of spikes, which stays spikes);
       reads past the sample's ends take its first or last step. For
       features such as log-mel channels: a speaker's pace and vocal tract,
       new at every step. 0: off; at most 0.5. */
    float warp_time, warp_freq;
    /* ce_frame: the first onset_steps steps of every run of a label other
       than 0 weigh onset_weight in the loss, and the first offset_steps
       steps of label 0 after a run of another label weigh offset_weight
       (the others 1). A detector's onsets and offsets are a few frames
       among thousands; these say how much being late to one costs. 0 steps
       (default): every step weighs 1. */
    uint32_t onset_steps, offset_steps;
    float onset_weight, offset_weight;
} st_train_params;

/*  superspike (alpha 100), detach_reset, ce_max, blank 0, no rate
    regulariser (target 0.02), adam, lr 1e-3, lr_min 0, no warm-up, no
    decay, betas 0.9/0.999, eps 1e-8, no weight decay, no clipping, batch
    32, chunk 8, threads 0, event driven, seed 1, no masks, no onset
    or offset weight (onset_steps, offset_steps 0; the weights 1). */
st_train_params st_train_default_params(void);

typedef struct st_train st_train;

/*  A trainer for `model` (borrowed: it must outlive the trainer, which
    updates its parameters). Refuses with ST_ERR_INVALID, naming the field,
    a learning rate or any other number that is not finite or out of range,
    batch or chunk 0, a loss the read-out cannot feed (ctc_blank beyond the
    outputs). NULL and *err. Starts the pool's threads. */
st_train *st_train_new(st_train_model *model, const st_train_params *p, int *err);
void st_train_destroy(st_train **self_p);

const st_train_params *st_train_get_params(const st_train *self);
st_train_model *st_train_get_model(const st_train *self);

/*  Checks that `data` can train this model with this loss, before any
    work: not empty, channels = the model's inputs, labels below the
    outputs (CE) or the outputs minus the blank (CTC), and for CTC that
    every label sequence fits its sample's steps. ST_ERR_INVALID with a
    message naming the set (`what`, e.g. "training data") and the sample. */
int st_train_check_data(const st_train *self, const st_train_data *data, const char *what);

typedef struct {
    double loss;          /* mean over the samples: task loss + regulariser */
    double accuracy;      /* CE: argmax = label; CTC: greedy decoding = the sequence;
                             ce_frame: the share of the steps whose argmax is their label */
    double rate;          /* mean firing rate of the spiking layers, spikes/(neuron step) */
    size_t samples;
    size_t correct;       /* samples right (ce_frame: accuracy x samples, rounded) */
    double grad_norm;     /* global gradient norm before clipping (steps only) */
    double lr;            /* learning rate of the last step */
} st_train_stats;

/*  Gradient of the mean loss over samples idx[0..n) of data into the
    trainer's gradient buffers (st_train_grad), without updating. */
int st_train_gradient(st_train *self, const st_train_data *data, const size_t *idx, size_t n,
                      st_train_stats *out);

/*  The gradient buffer of parameter tensor k (same layout as the
    parameter; writable, for tests of the optimizer). */
float *st_train_grad(st_train *self, size_t k);

/*  One optimizer step from the gradient buffers: clipping, the learning
    rate schedule, Adam or AdamW, then st_train_model_changed(). Counts the
    step. out (may be NULL) gets grad_norm and lr. */
int st_train_apply(st_train *self, st_train_stats *out);

/*  st_train_gradient then st_train_apply. */
int st_train_step(st_train *self, const st_train_data *data, const size_t *idx, size_t n,
                  st_train_stats *out);

/*  Progress within an epoch, after each step. */
typedef struct {
    uint32_t epoch;       /* 0-based, the epoch under way */
    size_t step, steps;   /* steps done in this epoch, and in all of it */
    double loss, accuracy, rate; /* running means over the epoch so far */
    double lr;
} st_train_progress;
typedef void (*st_train_progress_fn)(const st_train_progress *p, void *user_data);

/*  One epoch: the samples in the epoch's shuffled order (from the seed and
    the epoch number), in steps of `batch` (the last may be smaller). fn
    (may be NULL) is called after every step. out gets the epoch's means. */
int st_train_epoch(st_train *self, const st_train_data *data, st_train_progress_fn fn,
                   void *user_data, st_train_stats *out);

/*  Loss, accuracy and rate over a whole set, no update. */
int st_train_evaluate(st_train *self, const st_train_data *data, st_train_stats *out);

/*  The read-out of one sample: x [steps][inputs] -> out [steps][outputs]
    (the trainer's forward; hard spikes unless smooth_forward). */
int st_train_forward(st_train *self, const float *x, size_t steps, float *out);

uint64_t st_train_steps_done(const st_train *self);
uint32_t st_train_epochs_done(const st_train *self);
/*  The learning rate the next step will use. */
double st_train_next_lr(const st_train *self);

/* ---- checkpoints and the log ---- */

/*  Saves everything a resumed run needs - parameters, Adam's moments, the
    step and epoch counters - and `config_text` (may be NULL) in a tensor
    file of kind "snn-train". Resuming with st_train_load() into a trainer
    built from the same configuration continues bit for bit as if never
    stopped. */
int st_train_save(const st_train *self, const char *path, const char *config_text);
/*  ST_ERR_FORMAT naming the file and the tensor that is missing or of
    another shape (a checkpoint of another network). */
int st_train_load(st_train *self, const char *path);
/*  The configuration text stored in a checkpoint, into buf (cap bytes). */
int st_train_checkpoint_config(const char *path, char *buf, size_t cap);

/*  One line of the training log. */
typedef struct {
    uint32_t epoch;        /* 1-based */
    uint64_t steps;        /* optimizer steps so far */
    double lr;
    st_train_stats train;  /* the epoch's running means */
    st_train_stats valid;  /* samples = 0 when there is no validation set */
    double seconds;        /* wall time of the epoch */
} st_train_log_row;

/*  Appends a row to a CSV file, writing the header first when the file is
    new or empty: epoch,steps,lr,train_loss,train_acc,train_rate,grad_norm,
    valid_loss,valid_acc,valid_rate,seconds. */
int st_train_log_append(const char *path, const st_train_log_row *row);

/* ---- export ---- */

/*  The model as an engine network (finished, owned by the caller): input
    node "input", per layer "<name>.w" (dense or conv), "<name>.rec" (a dense
    node from the population back to itself), the population "<name>" (per
    neuron parameters when trained), delays as delay nodes, and an output
    node "output" (layers may not take those two names). Stepping it gives
    the trainer's forward outputs bit for bit (hard spikes; delays rounded
    as in the forward). */
st_snn_net *st_train_export(const st_train_model *self, int *err);
/*  The same written as the engine's model file (st_snn_net_save) or as NIR
    (st_snn_net_save_nir: lif, cubalif and li; an lsnn layer is
    ST_ERR_UNSUPPORTED). */
int st_train_export_file(const st_train_model *self, const char *path);
int st_train_export_nir(const st_train_model *self, const char *path);

/* ======================================================================
   Configuration files
   ======================================================================

   An INI-like text (docs/TRAINING.md): sections [data], [layer NAME]
   (one per layer, in order), [surrogate], [loss], [optimizer], [train];
   `key = value` lines; `#` or `;` start a comment. Every error names the
   origin, the line, the section and the key. */

typedef struct {
    /* [data]: a generated task, or files */
    bool generated;
    st_train_task_params task;
    size_t valid_samples;        /* generated: a validation set from seed + 1 (0 = none) */
    char data_path[512];         /* a "train-data" file */
    char valid_path[512];        /* optional */
    /* [layer NAME] ... */
    st_train_layer_params layers[ST_TRAIN_MAX_LAYERS];
    size_t n_layers;
    uint64_t init_seed;          /* [train] seed: weights (the shuffles use it too) */
    /* [surrogate] [loss] [optimizer] [train] */
    st_train_params train;
    bool cosine;                 /* [optimizer] schedule = cosine (default) or constant */
    uint32_t epochs;
    char log_path[512];          /* CSV, "" = none */
    char checkpoint_path[512];   /* saved after every epoch, "" = none */
    char export_path[512];       /* engine model file at the end, "" = none */
    char export_nir_path[512];   /* NIR at the end, "" = none */
} st_train_config;

/*  Parses `text`; `origin` (e.g. the file name) prefixes messages. Unknown
    sections and keys, values that are not numbers or not in range, missing
    layers are ST_ERR_INVALID ("bands.ini:12: [optimizer] lr: 'fast' is not
    a number"). */
int st_train_config_parse(const char *text, const char *origin, st_train_config *out);
/*  Reads and parses a file (ST_ERR_IO when it cannot be read). If text_out
    is not NULL it gets the file's text (caller frees). */
int st_train_config_load(const char *path, st_train_config *out, char **text_out);

#ifdef __cplusplus
}
#endif
#endif
