/*  snn/lm_train.h - training the spiking language model (snn/lm.h) in C:
    backpropagation through time over chunks of tokens for the whole of
    SpikeGPT (binary embedding, LayerNorms, token shift, WKV, the LIF
    neurons with their surrogate gradient, the channel mix, the head) and
    for its dense RWKV-4 twin, with SpikeGPT's optimiser recipe, a worker
    pool over the batch, checkpoints that resume bit for bit, and the
    held-out figure (nats per token) measured with the inference engine.

    Workload: character-level or small word-piece models (2 to 6 layers,
    n_embd 64 to 256, vocab 50 to 1000), chunks of 64 to 256 tokens, 8 to
    32 sequences a step, on 1 to 16 cores. Per token the work is the
    forward's 13 D^2 L + V D multiply-adds three times over (forward, and
    the two products of the backward), as dense matrix products over the
    chunk ([T x in] x [in x out]); the per-channel recurrences (WKV, LIF,
    token shift) are sequential in time and vectorised over channels.

    Forward in training (per chunk of T tokens, state carried in):
    exactly the computation of ../shared/data/spikegpt/README.md, float32,
    LayerNorm statistics in double. Gradients:
      - LIF (tau 2, threshold 1, hard reset to 0):  s = H(h - 1) forward;
        backward ds/dh = the ATan surrogate of spikingjelly, which SpikeGPT
        uses (surrogate.ATan(alpha = 2)):
            ds/dh = (alpha/2) / (1 + (pi/2 * alpha * (h - 1))^2)
        i.e. 1 / (1 + (pi (h - 1))^2) at alpha 2. The reset m = h (1 - s)
        is part of the graph (spikingjelly's detach_reset = False, as
        SpikeGPT), dm/dh = (1 - s) - h ds/dh; detach_reset drops the
        second term.
      - binary embedding e = H(E[tok]) (SpikeGPT's `self.atan(emb(idx))`):
        the same ATan surrogate at threshold 0, de/dE = 1/(1 + (pi E)^2).
      - everything else is differentiated exactly (WKV in the numerically
        safe scaled form: no exponent overflows for any decay).
      - with smooth_forward (for gradient checks) the forward itself uses
        the smooth step S(u) = 1/2 + atan(pi/2 alpha u)/pi, whose derivative
        is the surrogate, for both the LIF spikes and the embedding: the
        gradient is then the exact derivative of the function computed.
    Truncated BPTT: each chunk starts from the state the previous chunk of
    the same stream ended with, detached (no gradient flows into it), as
    RWKV's and SpikeGPT's recurrent mode carry it; or from a fresh state.

    Loss: mean cross-entropy over the batch's tokens. SpikeGPT's L2Wrap
    (logit_l2) adds logit_l2 / (tokens) * max_logit to the gradient of
    each token's largest logit (it keeps logits near 0); it is not part of
    the loss reported, so gradient checks set it to 0.

    Optimiser (SpikeGPT's train.py, the defaults): Adam, betas 0.9/0.99,
    eps 4e-9, learning rate cosine from 6e-4 to 1e-5 (linear warm-up from
    lr_min when asked), global gradient norm clipped to 1.0 (PyTorch's
    clip_grad_norm_), no weight decay (weight_decay > 0 makes it AdamW,
    decoupled, on the matrices only). PyTorch's arithmetic for the step.
    Not here: SpikeGPT's dropout of 0.03 (a run of minutes underfits;
    dropout only slows it).

    Determinism: each sequence of the batch is one unit of work with its
    own gradient buffer; units are summed in sequence order. The result is
    bit-identical for any number of threads (it may differ between CPUs
    with and without FMA). Initial weights, batches and streams come from
    the seed.

    Errors as base/base.h (ST_ERR_*, st_errmsg() says what and where);
    nothing here prints. One thread drives a trainer (its workers are
    internal); the model it trains is updated in place after each step
    (st_lm_model_prepare), so no state may step with it meanwhile.
*/
#ifndef ST_LM_TRAIN_H
#define ST_LM_TRAIN_H

#include "lm.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ======================================================================
   Initialisation
   ====================================================================== */

/*  SpikeGPT's RWKV_Init on a model: time_decay, time_first and the mixes as
    RWKV-4; the embedding orthogonal with gain 1e-4 sqrt(max(V, D)) (tiny:
    the binary embedding keeps its surrogate at full strength); att.key,
    att.receptance, att.output, ffn.receptance and ffn.value zero; the other
    matrices orthogonal with gain sqrt(out/in) when out > in, else 1; the
    head orthogonal with gain 0.5 sqrt(V/D) (V > D) or 0.5. LayerNorms 1
    and 0. From `seed`; then prepares the model. */
void st_lm_train_init(st_lm_model *model, uint64_t seed);

/* ======================================================================
   The trainer
   ====================================================================== */

typedef enum {
    /* `batch` streams spread evenly over the data, each reading the next
       seq_len tokens every step; the state is carried from chunk to chunk
       (detached), reset when a stream wraps around. For continuous text. */
    ST_LM_SAMPLE_STREAMS = 0,
    /* every sequence of every step starts at a random place (a random
       record start when the data has record starts) from a fresh state.
       For collections of separate texts (dialogues). */
    ST_LM_SAMPLE_RANDOM,
    ST_LM_N_SAMPLINGS
} st_lm_sampling;

typedef struct {
    uint32_t seq_len;        /* T: tokens of one chunk of BPTT, >= 1 */
    uint32_t batch;          /* sequences per optimizer step, >= 1 */
    st_lm_sampling sampling;
    float lr;                /* peak learning rate */
    float lr_min;            /* end of the cosine */
    uint32_t warmup_steps;   /* linear warm-up from lr_min to lr */
    uint64_t total_steps;    /* warm-up + cosine; 0: lr constant after warm-up */
    float beta1, beta2, eps; /* Adam's */
    float weight_decay;      /* 0: Adam; > 0: AdamW (decoupled), matrices only */
    float clip_norm;         /* global gradient norm limit; 0: off */
    float logit_l2;          /* SpikeGPT's L2Wrap factor (1e-4); 0: off */
    float surrogate_alpha;   /* ATan steepness (2, spikingjelly's default) */
    bool detach_reset;       /* no gradient through the LIF reset (default false) */
    bool smooth_forward;     /* the smooth step forward, for gradient checks */
    unsigned threads;        /* workers counting the caller; 0: one per core */
    uint64_t seed;           /* batches (random sampling) */
} st_lm_train_params;

/*  SpikeGPT's recipe: T 128, batch 16, streams, lr 6e-4 -> 1e-5 cosine
    over total_steps (set it; 0 = constant), no warm-up, betas 0.9/0.99,
    eps 4e-9, no weight decay, clip 1.0, L2Wrap 1e-4, ATan alpha 2, reset
    in the graph, hard spikes, threads 0, seed 1. */
st_lm_train_params st_lm_train_default_params(void);

/*  The learning rate of the schedule at `step` (0-based) of p->total_steps
    (or at a fraction of the run, for a run bounded by time). */
double st_lm_train_lr(const st_lm_train_params *p, uint64_t step);
double st_lm_train_lr_at(const st_lm_train_params *p, double fraction);

typedef struct st_lm_trainer st_lm_trainer;

/*  A trainer for `model` (borrowed: it must outlive the trainer, which
    updates its weights in place). ST_ERR_INVALID naming the field for a
    parameter out of range; ST_ERR_NOMEM. Starts the worker threads.
    NULL and *err. Caller owns it. */
st_lm_trainer *st_lm_trainer_new(st_lm_model *model, const st_lm_train_params *p, int *err);
void st_lm_trainer_destroy(st_lm_trainer **self_p);

const st_lm_train_params *st_lm_trainer_params(const st_lm_trainer *self);
st_lm_model *st_lm_trainer_model(st_lm_trainer *self);
unsigned st_lm_trainer_threads(const st_lm_trainer *self);

/*  What a gradient or a step measured. */
typedef struct {
    double loss;        /* mean cross-entropy, nats per token */
    size_t tokens;      /* predictions it is the mean of */
    double spike_rate;  /* spiking: fraction of LIF neurons firing per token */
    double grad_norm;   /* global norm before clipping (after a step) */
    double lr;          /* learning rate used (after a step) */
    double seconds;     /* wall time */
} st_lm_train_stats;

/*  The gradient of the mean loss over n_seq sequences of seq_len + 1
    tokens each (tokens [n_seq][seq_len + 1]: inputs, then each position's
    next token as its target) into the trainer's gradient buffer, without
    updating. mask (may be NULL: every target counts): [n_seq][seq_len + 1]
    bytes; a target tokens[i] whose mask[i] is 0 has no loss (e.g. the
    user's side of a dialogue); the mean is over the targets counted.
    states: NULL (every sequence from a fresh state) or n_seq blocks of
    st_lm_state_len() floats (the st_lm_state layout), read as each
    sequence's initial state and overwritten with its final state.
    ST_ERR_INVALID for a token out of range, n_seq 0, or no target counted. */
int st_lm_trainer_gradient(st_lm_trainer *self, const int32_t *tokens, const uint8_t *mask,
                           size_t n_seq, float *states, st_lm_train_stats *out);

/*  The gradient buffer: n_params floats, laid out as the model's parameter
    block (st_lm_model_weights()->params). Writable. */
float *st_lm_trainer_grad(st_lm_trainer *self);

/*  One optimizer step from the gradient buffer at learning rate lr (< 0:
    the schedule's at the next step count): clipping, Adam/AdamW, then
    st_lm_model_prepare(). Counts the step. out (may be NULL) gets
    grad_norm and lr. */
int st_lm_trainer_apply(st_lm_trainer *self, double lr, st_lm_train_stats *out);

/*  Steps done. */
uint64_t st_lm_trainer_steps(const st_lm_trainer *self);

/* ---- data ---- */

/*  The training token stream (copied), with its loss mask (may be NULL:
    every token is a target; else n bytes, 0 for tokens that are input
    only). record_starts (may be NULL): the positions where a record (a
    dialogue) begins, ascending; the random sampling then starts its
    sequences only there. Resets the streams. ST_ERR_INVALID when the data
    is shorter than seq_len + 1 tokens or a token is out of range. */
int st_lm_trainer_set_data(st_lm_trainer *self, const int32_t *ids, const uint8_t *mask, size_t n,
                           const size_t *record_starts, size_t n_starts);

/*  One step on the data: draws the batch (streams or random), computes the
    gradient and applies it. lr as st_lm_trainer_apply(). */
int st_lm_trainer_step(st_lm_trainer *self, double lr, st_lm_train_stats *out);

/* ---- checkpoints ---- */

/*  Saves a model file (st_lm_model_save: weights, variant, tokenizer;
    loadable by st_lm_model_load and `spiketalk lm generate`) that also
    holds what a resumed run needs: Adam's moments, the step count, the
    streams' positions and carried states, the random generator, and
    `note` (may be NULL: e.g. the command line). Through a temporary file. */
int st_lm_trainer_save(const st_lm_trainer *self, const char *path, const char *note);

/*  Restores the optimizer and data state from a checkpoint into a trainer
    made from the model loaded from that same file and the same parameters
    and data: the run then continues bit for bit. ST_ERR_FORMAT naming the
    file and tensor when it is not a checkpoint of this model. */
int st_lm_trainer_load(st_lm_trainer *self, const char *path);

/*  The note stored in a checkpoint (NUL-terminated into buf). */
int st_lm_trainer_checkpoint_note(const char *path, char *buf, size_t cap);

/*  Appends one row to a CSV log, writing the header first when the file
    is new or empty: step,tokens,lr,train_loss,grad_norm,spike_rate,
    valid_loss,seconds (valid_loss empty when < 0). */
int st_lm_train_log_append(const char *path, uint64_t step, uint64_t tokens,
                           const st_lm_train_stats *train, double valid_loss, double seconds);

/* ======================================================================
   Text to tokens
   ====================================================================== */

/*  A word-piece vocabulary for a corpus: token 0 unknown, its characters
    most frequent first (at most max_chars - 1, as
    st_lm_tokenizer_from_corpus), then up to n_words of its words (runs of
    a-z, 0-9 and ' after a space, 2 to 23 letters, seen at least 3 times)
    as pieces " word", those saving the most characters first. Greedy
    longest match then reads " seventy" as one token, " sevens" as
    " seven" + "s". NULL and *err. Caller owns it. */
st_lm_tokenizer *st_lm_tokenizer_words(const char *text, size_t len, size_t max_chars,
                                       size_t n_words, int *err);

/*  Encodes text cut after each occurrence of `sep` (e.g. "\n\n"; NULL: one
    record) record by record, into *ids_out (n_out tokens; caller frees)
    and, when starts_out is not NULL, the token index where each record
    begins (*starts_out, caller frees). byte_mask (may be NULL): one byte
    per byte of text; runs of equal value are encoded apart and
    *mask_out (when not NULL; caller frees) gets each token's value (1
    everywhere without a byte mask): a loss mask for the trainer. *n_unknown
    (may be NULL) counts characters the tokenizer does not know. */
int st_lm_encode_records(const st_lm_tokenizer *tok, const char *text, size_t len,
                         const char *sep, const uint8_t *byte_mask, int32_t **ids_out,
                         uint8_t **mask_out, size_t *n_out, size_t **starts_out,
                         size_t *n_starts_out, size_t *n_unknown);

/* ======================================================================
   Evaluation (the inference engine: what ships is what is measured)
   ====================================================================== */

/*  Feeds ids[0..n) from a fresh state through st_lm_forward (the parallel
    mode) and sums -ln p(ids[i+1]) over the n - 1 predictions into
    *nats. ST_ERR_INVALID for n < 2 or a token out of range. */
int st_lm_eval_tokens(const st_lm_model *model, const int32_t *ids, size_t n, double *nats);

#ifdef __cplusplus
}
#endif
#endif
