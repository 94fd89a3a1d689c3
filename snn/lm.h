/*  snn/lm.h - the spiking language model that answers the user: SpikeGPT
    (RWKV-4 with a binary token embedding and a LIF neuron on the output of
    each sub-block), streaming one token at a time in constant memory, with
    its dense twin (RWKV-4: no LIF, real-valued embedding) as the control.

    Workload: small character- or word-piece-level models (2 to 12 layers,
    n_embd 32 to 512, vocab 50 to a few thousand), batch 1 per conversation,
    many conversations per model. Per token and layer the cost is 13 n_embd^2
    multiply-adds (the six matrices; their inputs are LayerNorm outputs, real
    valued, so there is no spike sparsity to exploit on a CPU). Tuned for
    n_embd 128, 4 layers: about 0.9 M multiply-adds and 3.4 MB of weights a
    token, which stay in the last-level cache.

    The computation is exactly ../shared/data/spikegpt/README.md (docs/LM.md
    has it with the state layout and the formats). Per token, per layer:
      a = LN1(x);  token shift with the previous a;  r, k, v;  WKV with the
      state (A, B, p);  x += LIF1(Wo (r * wkv));  f = LN2(x);  token shift;
      x += LIF2(sigma(Wr' xr) * Wv' relu(Wk' xk)^2)
    with LIF (tau 2, threshold 1, hard reset to 0): h = v + (c - v)/2,
    s = [h >= 1], v = s ? 0 : h. Nothing halves the residual, and the
    membranes are part of the state that is saved, restored and forked.

    Objects:
      st_lm_model      weights, derived constants, tokenizer. Immutable once
                       loaded and shared by any number of threads/streams.
      st_lm_state      one conversation: 7 n_embd floats per layer (the whole
                       recurrent state, one contiguous block) plus scratch.
                       Used by one thread at a time.
      st_lm_sampler    turns logits into a token (greedy, temperature, top-k,
                       top-p, repetition penalty, seeded).
      st_lm_tokenizer  text <-> token ids (pieces of UTF-8; character level,
                       word pieces by greedy longest match).

    Streaming contract: st_lm_step, st_lm_forward, st_lm_sampler_sample,
    st_lm_sampler_accept and st_lm_generate allocate nothing, take no lock,
    do no I/O and never log. Loading and constructors allocate and may do
    I/O; none of them prints or aborts on bad input (ST_ERR_FORMAT with an
    st_errmsg() naming the file, the tensor and the reason).
*/
#ifndef ST_LM_H
#define ST_LM_H

#include "../base/base.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ======================================================================
   Model
   ====================================================================== */

/*  Sizes and variant of a model. */
typedef struct {
    uint32_t n_layer; /* blocks, >= 1 */
    uint32_t n_embd;  /* width of the residual stream D, >= 1 */
    uint32_t vocab;   /* tokens V, >= 1 */
    uint32_t n_ffn;   /* hidden width of the channel mix (4 D in SpikeGPT), >= 1 */
    bool spiking;     /* true: SpikeGPT (binary embedding, LIF on both
                         sub-blocks); false: the RWKV-4 dense control */
} st_lm_config;

/*  4 layers x 128, vocab 256, n_ffn 512, spiking: the benchmark size. */
st_lm_config st_lm_default_config(void);

/*  One block's weights: pointers into the model's parameter block, in the
    PyTorch layout ([out][in] row-major for the matrices). */
typedef struct {
    float *ln1_w, *ln1_b, *ln2_w, *ln2_b;           /* D each */
    float *att_time_decay;                          /* D, raw: w = -exp(.) */
    float *att_time_first;                          /* D, u */
    float *att_mix_k, *att_mix_v, *att_mix_r;       /* D each */
    float *att_key, *att_value, *att_receptance;    /* D x D */
    float *att_output;                              /* D x D */
    float *ffn_mix_k, *ffn_mix_r;                   /* D each */
    float *ffn_key;                                 /* n_ffn x D */
    float *ffn_receptance;                          /* D x D */
    float *ffn_value;                               /* D x n_ffn */
} st_lm_block_weights;

/*  Every weight of a model. `params` holds all of them, contiguous (a
    trainer's optimizer may treat it as one vector of n_params floats); the
    other pointers point into it. */
typedef struct {
    float *params;
    size_t n_params;
    float *emb;                  /* V x D */
    float *ln0_w, *ln0_b;        /* D each (block 0's ln0) */
    st_lm_block_weights *blocks; /* n_layer */
    float *ln_out_w, *ln_out_b;  /* D each */
    float *head;                 /* V x D */
} st_lm_weights;

typedef struct st_lm_model st_lm_model;
typedef struct st_lm_tokenizer st_lm_tokenizer;

/*  A model of the given sizes with every weight 0 except the LayerNorm
    gains (1): a blank for a trainer or a loader to fill. NULL and *err
    (ST_ERR_INVALID naming the field, ST_ERR_NOMEM). Caller owns it. */
st_lm_model *st_lm_model_new(const st_lm_config *cfg, int *err);

/*  Fills the weights as RWKV-4's initialisation does (the ramps of
    time_decay, time_first and the mixes; N(0,1) embedding; linear layers
    uniform in +-1/sqrt(fan_in)), with the two output projections
    (att.output, ffn.value) multiplied by out_scale (SpikeGPT's reference
    bundle uses 30, so that about a fifth of the LIF neurons fire), from a
    seeded generator: the same seed gives the same model. Then prepares the
    model. Not while a state steps with it. */
void st_lm_model_randomize(st_lm_model *self, uint64_t seed, float out_scale);

/*  Loads a model: the reference bundle's model.bin (magic 'SPGT', loaded as
    the spiking model), or our own file (an STNN container of kind
    "spikegpt", docs/LM.md), told apart by the first four bytes. Validates
    everything: magic, version, sizes, every tensor's name and shape
    against n_layer / n_embd / vocab, missing, duplicate or unknown
    tensors, truncation, trailing bytes, non-finite weights. NULL and *err:
    ST_ERR_IO (cannot open or read), ST_ERR_FORMAT (st_errmsg() names the
    file, the tensor and the reason), ST_ERR_NOMEM. Caller owns it. */
st_lm_model *st_lm_model_load(const char *path, int *err);

/*  Saves in our own format (weights, variant and tokenizer; through a
    temporary file renamed over `path`). ST_ERR_IO naming the path. */
int st_lm_model_save(const st_lm_model *self, const char *path);

/*  Saves in the reference bundle's model.bin layout (weights only: the
    variant and the tokenizer are not part of that format), for the PyTorch
    peer and for exchange. ST_ERR_IO naming the path. */
int st_lm_model_save_reference(const st_lm_model *self, const char *path);

/*  A copy of `self` with the same weights and tokenizer, spiking or not:
    st_lm_model_twin(m, false, &err) is the dense RWKV-4 control of a
    SpikeGPT model. NULL and *err (ST_ERR_NOMEM). Caller owns it. */
st_lm_model *st_lm_model_twin(const st_lm_model *self, bool spiking, int *err);

/*  Frees the model and NULLs *self_p; NULL or *NULL is fine. Every state
    made from it must be destroyed first. */
void st_lm_model_destroy(st_lm_model **self_p);

/*  Sizes and variant (borrowed). */
const st_lm_config *st_lm_model_config(const st_lm_model *self);

/*  The weights, writable, for a trainer or a converter. After changing any,
    call st_lm_model_prepare() before stepping; never while a state steps
    with the model. Borrowed: valid as long as the model. */
st_lm_weights *st_lm_model_weights(st_lm_model *self);

/*  Recomputes what is derived from the weights once rather than per token:
    w = -exp(time_decay), 1 - mix for every mix, and the embedding table
    LN0([E >= 0]) (LN0(E) for the dense variant). Loaders and randomize call
    it. ST_ERR_INVALID when a weight is not finite (the message names it). */
int st_lm_model_prepare(st_lm_model *self);

/*  Named tensors in the reference order: name ("blocks.0.att.key.weight"),
    PyTorch shape, and the data (borrowed, writable as the weights are).
    For writers of other formats and for trainers' checkpoints. */
typedef struct {
    const char *name;
    unsigned ndim;     /* 1 to 3 */
    uint32_t dims[3];  /* PyTorch order; time_mix_* are (1, 1, D) */
    size_t count;      /* elements */
    float *data;
} st_lm_tensor;
size_t st_lm_model_tensor_count(const st_lm_model *self);
/*  ST_OK, or ST_ERR_INVALID for k out of range. */
int st_lm_model_tensor_at(const st_lm_model *self, size_t k, st_lm_tensor *out);

/*  The tokenizer stored with the model (borrowed). A model loaded without
    one (the reference format has none) gets the default: byte level when
    vocab >= 256, else newline and printable ASCII in code order, as many as
    the vocabulary holds. Never NULL. */
const st_lm_tokenizer *st_lm_model_tokenizer(const st_lm_model *self);

/*  Stores a tokenizer with the model; ownership moves (*tok becomes NULL).
    ST_ERR_INVALID when it has more pieces than the model has tokens. */
int st_lm_model_set_tokenizer(st_lm_model *self, st_lm_tokenizer **tok);

/*  Selects the matrix kernel: "auto" (the best the CPU has: the default),
    "avx2" (AVX2 + FMA; ST_ERR_UNSUPPORTED without them) or "generic"
    (portable C). The name in use: st_lm_model_kernel(). Kernels differ in
    the last bits of their sums, so compare results within one kernel. Not
    while a state steps with the model. */
int st_lm_model_use_kernel(st_lm_model *self, const char *name);
const char *st_lm_model_kernel(const st_lm_model *self);

/* ======================================================================
   State: one conversation
   ======================================================================

   The recurrent state is one block of 7 D floats per layer, layer after
   layer; within a layer, D floats each of: */
typedef enum {
    ST_LM_VAR_ATT_SHIFT = 0, /* a_prev: LN1 output of the previous token */
    ST_LM_VAR_FFN_SHIFT,     /* f_prev: LN2 output of the previous token */
    ST_LM_VAR_WKV_A,         /* WKV numerator A */
    ST_LM_VAR_WKV_B,         /* WKV denominator B */
    ST_LM_VAR_WKV_P,         /* WKV running max exponent p (starts at -1e30) */
    ST_LM_VAR_MEM_ATT,       /* membrane of LIF1 (after time mix) */
    ST_LM_VAR_MEM_FFN,       /* membrane of LIF2 (after channel mix) */
    ST_LM_N_VARS
} st_lm_var;

typedef struct st_lm_state st_lm_state;

/*  A fresh state (st_lm_state_reset) for `model`, which it borrows: the
    model must outlive it. Holds every buffer stepping needs. NULL and *err
    (ST_ERR_NOMEM). Caller owns it. */
st_lm_state *st_lm_state_new(const st_lm_model *model, int *err);

/*  Frees the state and NULLs *self_p; NULL or *NULL is fine. */
void st_lm_state_destroy(st_lm_state **self_p);

/*  Back to the start of a conversation: p = -1e30, everything else 0. */
void st_lm_state_reset(st_lm_state *self);

/*  Floats of recurrent state: 7 n_embd n_layer. */
size_t st_lm_state_len(const st_lm_model *model);

/*  The recurrent state block itself (st_lm_state_len() floats, layout
    above); borrowed, writable. */
float *st_lm_state_data(st_lm_state *self);

/*  The D floats of one variable of one layer within the block. */
float *st_lm_state_var(st_lm_state *self, uint32_t layer, st_lm_var var);

/*  Copies the recurrent state out to buf / in from buf (len floats, which
    must be st_lm_state_len(): ST_ERR_INVALID otherwise). No allocation. */
int st_lm_state_save(const st_lm_state *self, float *buf, size_t len);
int st_lm_state_restore(st_lm_state *self, const float *buf, size_t len);

/*  dst takes src's recurrent state (one memcpy). Both must belong to models
    of the same sizes (ST_ERR_INVALID). No allocation. */
int st_lm_state_copy(st_lm_state *dst, const st_lm_state *src);

/*  A new state for the same model holding a copy of src's recurrent state:
    a branch of the conversation. NULL and *err (ST_ERR_NOMEM). */
st_lm_state *st_lm_state_fork(const st_lm_state *src, int *err);

/*  Tokens fed since the last reset (copy and fork carry it over; restore
    leaves it as it was). */
uint64_t st_lm_state_tokens(const st_lm_state *self);

/*  The V logits after the last token fed, when that call asked for logits
    (st_lm_generate always does); NULL otherwise, and after a reset or a
    restore. Copy and fork carry them over. Borrowed until the next call on
    the state. */
const float *st_lm_state_logits(const st_lm_state *self);

/* ======================================================================
   Forward pass
   ====================================================================== */

/*  What the LIF neurons did, for checking against a reference. Every array
    is n x n_layer x 2 x D (token, layer, 0 = after time mix / 1 = after
    channel mix, channel), any may be NULL. For the dense variant current is
    what is added to the residual and the rest is 0. */
typedef struct {
    float *current;  /* c: the sub-block's output, the LIF's input current */
    float *charge;   /* h = v + (c - v)/2, before fire and reset */
    float *membrane; /* v after fire and reset (as the state keeps it) */
    uint8_t *spikes; /* our s = [h >= 1] */
    /* Optional, in: a reference's spikes. Where our h is within follow_eps
       of the threshold, the reference's spike is the one that propagates
       (to the residual and the membrane), so that a rounding difference on
       the threshold does not make the rest of a comparison diverge. */
    const uint8_t *follow;
    float follow_eps;
    size_t n_followed; /* out: spikes taken from `follow` that differed from ours */
} st_lm_trace;

/*  Feeds one token and, when logits is not NULL, writes the V logits that
    predict the next. ST_ERR_INVALID for a token outside 0..V-1 (the state
    is then unchanged). No allocation, no lock; one thread per state. */
int st_lm_step(const st_lm_model *model, st_lm_state *state, int32_t token, float *logits);

/*  The parallel mode: feeds n tokens, running each layer over a chunk of
    tokens at once (every weight read once per chunk rather than once per
    token), with exactly the arithmetic of n calls of st_lm_step: the
    results are bit-identical. logits: NULL (none), the last token's V
    logits (all_logits false) or n x V (all_logits true). trace: NULL, or
    arrays for all n tokens. ST_ERR_INVALID for a token out of range (the
    state is then unchanged: tokens are checked first). No allocation. */
int st_lm_forward(const st_lm_model *model, st_lm_state *state, const int32_t *tokens,
                  size_t n, float *logits, bool all_logits, st_lm_trace *trace);

/* ======================================================================
   Sampling and generation
   ====================================================================== */

typedef struct {
    bool greedy;                /* argmax (lowest id on a tie); the rest is ignored */
    float temperature;          /* > 0: logits are divided by it; 0 = greedy */
    uint32_t top_k;             /* keep the k most likely tokens (0: all) */
    float top_p;                /* then keep the fewest most likely tokens whose
                                   probability reaches top_p, 0 < p <= 1 (1: all) */
    float repetition_penalty;   /* >= 1 (1: off). Each token present in the
                                   history window has its logit divided by it
                                   when positive, multiplied when negative
                                   (CTRL, Keskar et al. 2019), before the
                                   temperature */
    uint32_t repetition_last_n; /* history window, tokens (0: the whole history) */
    uint64_t seed;              /* the same seed, logits and history give the same tokens */
} st_lm_sample_params;

/*  Temperature 1, no top-k, top-p 1, no penalty, window 64, seed 0. */
st_lm_sample_params st_lm_sample_default_params(void);

typedef struct st_lm_sampler st_lm_sampler;

/*  A sampler for `vocab` tokens, its buffers allocated here. NULL and *err
    (ST_ERR_INVALID naming the parameter, ST_ERR_NOMEM). Caller owns it. */
st_lm_sampler *st_lm_sampler_new(size_t vocab, const st_lm_sample_params *p, int *err);
void st_lm_sampler_destroy(st_lm_sampler **self_p);

/*  Clears the history and restarts the random sequence from the seed. */
void st_lm_sampler_reset(st_lm_sampler *self);

/*  Adds a token (prompt or generated) to the history the repetition
    penalty looks at. Out-of-range tokens are ignored. No allocation. */
void st_lm_sampler_accept(st_lm_sampler *self, int32_t token);

/*  Draws a token from logits[0..vocab). Steps (each optional):
    repetition penalty, temperature, softmax, top-k, top-p (on the top-k
    renormalised), draw. Does not add the token to the history. No
    allocation. */
int32_t st_lm_sampler_sample(st_lm_sampler *self, const float *logits);

/*  The distribution the last draw came from: vocab probabilities summing
    to 1, zero outside the kept set (one-hot when greedy). Borrowed. */
const float *st_lm_sampler_probs(const st_lm_sampler *self);

/*  Called with each generated token and its text (from the model's
    tokenizer; not NUL-terminated). Return nonzero to stop after it. */
typedef int (*st_lm_token_fn)(int32_t token, const char *piece, size_t piece_len,
                              void *user_data);

typedef struct {
    size_t max_tokens;         /* tokens to generate at most */
    int32_t stop_token;        /* generation ends after emitting it (-1: none) */
    st_lm_token_fn on_token;   /* may be NULL */
    void *user_data;           /* for on_token */
    const atomic_int *cancel;  /* may be NULL; nonzero stops before the next
                                  token (checked between tokens, from any thread) */
} st_lm_generate_params;

/*  64 tokens, no stop token, no callback, no cancel flag. */
st_lm_generate_params st_lm_generate_default_params(void);

typedef enum {
    ST_LM_STOP_LENGTH = 0, /* max_tokens (or the out buffer) reached */
    ST_LM_STOP_TOKEN,      /* stop_token emitted */
    ST_LM_STOP_CALLBACK,   /* on_token returned nonzero */
    ST_LM_STOP_CANCEL      /* *cancel was set */
} st_lm_stop;

/*  What a generation used and made. */
typedef struct {
    size_t n_prompt;       /* prompt tokens fed (parallel mode) */
    size_t n_generated;    /* tokens written to out */
    st_lm_stop stop;
    double first_token_s;  /* from the call to the first token's draw */
    double total_s;
} st_lm_generate_result;

/*  Feeds the prompt (parallel mode; it may be empty when the state already
    holds a context), then draws tokens with the sampler, feeding each back,
    until a stop condition; out (cap tokens) receives them. Each prompt and
    generated token is accepted into the sampler's history. Each generated
    token goes to on_token first, then is fed, so the state ends holding
    everything, the last generated token included, ready for the next turn.
    An empty prompt continues from st_lm_state_logits() (e.g. after an
    earlier generate). ST_OK, or ST_ERR_INVALID (a prompt token out of
    range, a sampler of another vocab size, an empty prompt with no logits
    in the state). No allocation. */
int st_lm_generate(const st_lm_model *model, st_lm_state *state, st_lm_sampler *sampler,
                   const int32_t *prompt, size_t n_prompt, const st_lm_generate_params *p,
                   int32_t *out, size_t cap, st_lm_generate_result *res);

/* ======================================================================
   Tokenizer
   ====================================================================== */

/*  A tokenizer over `n` pieces: piece k (pieces[k], a non-empty byte string,
    NUL-terminated) is token k; pieces must be distinct. Encoding takes the
    longest piece that matches at each position, so single characters give
    a character-level tokenizer and longer pieces word pieces. unk: the id
    unknown characters become, or -1 to drop them (counted either way).
    NULL and *err (ST_ERR_INVALID naming the piece, ST_ERR_NOMEM). */
st_lm_tokenizer *st_lm_tokenizer_new(const char *const *pieces, size_t n, int32_t unk,
                                     int *err);

/*  Character level from a UTF-8 string listing the characters (each code
    point one token, in order; duplicates are an error), with no unknown
    token (unknown characters are dropped and counted). */
st_lm_tokenizer *st_lm_tokenizer_new_chars(const char *chars, int *err);

/*  Character level from a corpus: token 0 is the unknown token (decoded as
    U+FFFD), then the corpus's characters (code points; an invalid byte
    counts as U+FFFD), most frequent first, ties by code, at most
    max_vocab - 1 of them. For a trainer. */
st_lm_tokenizer *st_lm_tokenizer_from_corpus(const char *text, size_t len, size_t max_vocab,
                                             int *err);

/*  A copy (for a model twin). */
st_lm_tokenizer *st_lm_tokenizer_copy(const st_lm_tokenizer *self, int *err);

void st_lm_tokenizer_destroy(st_lm_tokenizer **self_p);

/*  Pieces, and the unknown token (-1: none). */
size_t st_lm_tokenizer_size(const st_lm_tokenizer *self);
int32_t st_lm_tokenizer_unk(const st_lm_tokenizer *self);

/*  Token id -> its bytes (borrowed, not NUL-terminated; *len set), or NULL
    for an id out of range. */
const char *st_lm_tokenizer_piece(const st_lm_tokenizer *self, int32_t id, size_t *len);

/*  Text (len bytes of UTF-8) -> ids. An unknown character (or a byte that
    is not valid UTF-8) becomes the unknown token, or is dropped when there
    is none; either way it counts in *n_unknown (may be NULL). *n_ids gets
    the number of ids the whole text makes; at most cap are written:
    ST_ERR_INVALID when they do not fit. No allocation. */
int st_lm_tokenizer_encode(const st_lm_tokenizer *self, const char *text, size_t len,
                           int32_t *ids, size_t cap, size_t *n_ids, size_t *n_unknown);

/*  Ids -> text in buf (cap bytes, always NUL-terminated when cap > 0). An
    id out of range becomes U+FFFD. *len (may be NULL) gets the full length
    without the NUL; ST_ERR_INVALID when it did not fit (buf then holds a
    prefix). No allocation. */
int st_lm_tokenizer_decode(const st_lm_tokenizer *self, const int32_t *ids, size_t n, char *buf,
                           size_t cap, size_t *len);

#ifdef __cplusplus
}
#endif
#endif
