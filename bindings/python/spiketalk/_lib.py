"""spiketalk._lib - finds and opens libspiketalk.so through cffi in ABI mode
(no compiler: the declarations below are the public headers' own, copied),
and turns C error codes into Python exceptions.

It declares only what the bindings use, from base/base.h, audio/audio.h,
snn/snn.h, snn/asr.h, snn/lm.h, snn/dialogue.h and tts/tts.h, with enum
types written as int (the same ABI). A struct here must match its header
field for field; tests/test_snn.py and friends check results against the
C tool, which a layout slip would break.

The library is opened on first use, not at import, so that the pure-Python
parts (spiketalk.wire, spiketalk.stage) work without it. It is looked for,
in order: $SPIKETALK_LIB (a path to the .so), next to this package (where
`pip install bindings/python` puts it), the build tree this package sits in
(bindings/python/spiketalk -> ../../../build/libspiketalk.so), then the
system's library path.
"""
import os
import threading

from . import errors

CDEF = r"""
/* base/base.h */
const char *st_strerror(int code);
const char *st_errmsg(void);
void st_error_clear(void);
double st_now_s(void);

/* audio/audio.h */
typedef struct {
    float *samples;
    size_t frames;
    int sample_rate_hz;
    int channels_in_file;
} st_audio;
int st_audio_read(const char *path, st_audio *out);
void st_audio_free(st_audio *a);
int st_audio_write_wav(const char *path, const float *samples, size_t frames,
                       int sample_rate_hz, int format);

typedef struct st_resampler st_resampler;
st_resampler *st_resampler_new(int in_rate_hz, int out_rate_hz, int quality, int *err);
void st_resampler_destroy(st_resampler **r_p);
size_t st_resampler_max_output(const st_resampler *r, size_t in_frames);
int st_resampler_process(st_resampler *r, const float *in, size_t in_frames, float *out,
                         size_t out_cap, size_t *used, size_t *made);
int st_resampler_flush(st_resampler *r, float *out, size_t out_cap, size_t *made);

typedef struct {
    int sample_rate_hz;
    double window_ms;
    double hop_ms;
    int n_mels;
    double f_min_hz;
    double f_max_hz;
    double log_floor;
    bool normalize;
    double norm_tau_s;
} st_frontend_params;
st_frontend_params st_frontend_default_params(void);
typedef struct st_frontend st_frontend;
st_frontend *st_frontend_new(const st_frontend_params *p, int *err);
void st_frontend_destroy(st_frontend **fe_p);
void st_frontend_reset(st_frontend *fe, uint64_t first_sample_index);
int st_frontend_process(st_frontend *fe, const float *pcm, size_t n, float *feat,
                        uint64_t *index, size_t cap_frames, size_t *used, size_t *made);
size_t st_frontend_max_frames(const st_frontend *fe, size_t n);
int st_frontend_n_mels(const st_frontend *fe);
size_t st_frontend_hop_samples(const st_frontend *fe);

/* snn/snn.h: neurons */
typedef struct {
    int model;
    double dt;
    float tau_syn_inv;
    float tau_mem_inv;
    float v_leak;
    float v_th;
    float v_reset;
    float tau_adapt_inv;
    float beta;
    float adaptation_current;
    float adaptation_spike;
    float delta_T;
    float tau_ada_inv;
    float w_in;
    float r;
    int reset;
    float tau_syn_inh_inv;
    float rho_reset;
} st_snn_neuron_params;
st_snn_neuron_params st_snn_neuron_default_params(int model);
const char *st_snn_model_name(int model);
int st_snn_model_from_name(const char *name, int *out);
const char *const *st_snn_neuron_param_names(int model);
int st_snn_neuron_set_param(st_snn_neuron_params *p, const char *name, const char *value);
int st_snn_neuron_get_param(const st_snn_neuron_params *p, const char *name, double *out);
bool st_snn_model_spikes(int model);
unsigned st_snn_model_inputs(int model);

typedef struct st_snn_neurons st_snn_neurons;
st_snn_neurons *st_snn_neurons_new(const st_snn_neuron_params *p, size_t n, int *err);
void st_snn_neurons_destroy(st_snn_neurons **self_p);
size_t st_snn_neurons_count(const st_snn_neurons *self);
int st_snn_neurons_model(const st_snn_neurons *self);
size_t st_snn_neurons_state_len(const st_snn_neurons *self);
size_t st_snn_neurons_input_len(const st_snn_neurons *self);
void st_snn_neurons_init_state(const st_snn_neurons *self, float *state);
float *st_snn_neurons_var(const st_snn_neurons *self, float *state, int var);
size_t st_snn_neurons_step(const st_snn_neurons *self, float *state, const float *x, float *out,
                           uint32_t *fired);

/* snn/snn.h: networks */
typedef struct st_snn_net st_snn_net;
typedef struct st_snn_state st_snn_state;
st_snn_net *st_snn_net_new(int *err);
void st_snn_net_destroy(st_snn_net **self_p);
int st_snn_net_add_input(st_snn_net *self, const char *name, size_t n);
int st_snn_net_add_output(st_snn_net *self, const char *name, size_t n);
int st_snn_net_add_dense(st_snn_net *self, const char *name, size_t n_out, size_t n_in,
                         const float *w, const float *bias);
int st_snn_net_add_scale(st_snn_net *self, const char *name, size_t n, const float *s);
int st_snn_net_add_neurons(st_snn_net *self, const char *name, const st_snn_neuron_params *p,
                           size_t n);
int st_snn_net_add_threshold(st_snn_net *self, const char *name, size_t n, const float *th);
int st_snn_net_add_delay(st_snn_net *self, const char *name, size_t n, const uint32_t *steps);
int st_snn_net_connect(st_snn_net *self, int from, int to);
int st_snn_net_finish(st_snn_net *self);
int st_snn_net_find(const st_snn_net *self, const char *name);
typedef struct {
    const char *name;
    int kind;
    size_t n_in;
    size_t n_out;
    size_t n_weights;
    int model;
    int order;
} st_snn_node_info;
size_t st_snn_net_node_count(const st_snn_net *self);
int st_snn_net_node_info(const st_snn_net *self, int node, st_snn_node_info *out);
size_t st_snn_net_input_len(const st_snn_net *self);
const st_snn_neurons *st_snn_net_neurons(const st_snn_net *self, int node);

typedef struct {
    uint64_t steps;
    uint64_t neuron_updates;
    uint64_t syn_ops;
    uint64_t dense_macs;
    uint64_t spikes;
    uint64_t spike_slots;
    double spike_rate;
} st_snn_counters;
st_snn_state *st_snn_state_new(const st_snn_net *net, int *err);
void st_snn_state_destroy(st_snn_state **self_p);
size_t st_snn_state_bytes(const st_snn_state *self);
void st_snn_state_reset(st_snn_state *self);
void st_snn_state_set_path(st_snn_state *self, int path);
int st_snn_step(const st_snn_net *net, st_snn_state *state, const float *in);
const float *st_snn_state_output(const st_snn_state *self, int node, size_t *n);
const uint32_t *st_snn_state_spikes(const st_snn_state *self, int node, size_t *n_fired);
float *st_snn_state_var(st_snn_state *self, int node, int var);
int st_snn_state_counters(const st_snn_state *self, int node, st_snn_counters *out);
void st_snn_state_clear_counters(st_snn_state *self);
size_t st_snn_state_save_len(const st_snn_state *self);
int st_snn_state_save(const st_snn_state *self, void *buf, size_t cap);
int st_snn_state_restore(st_snn_state *self, const void *buf, size_t len);
const char *st_snn_kernels(void);

int st_snn_net_save(const st_snn_net *net, const char *path);
st_snn_net *st_snn_net_load(const char *path, int *err);
st_snn_net *st_snn_net_load_mem(const void *buf, size_t len, int *err);
typedef struct {
    double dt_s;
    int convention;
    int reset;
} st_nir_params;
st_nir_params st_nir_default_params(void);
int st_nir_convention_from_name(const char *name, int *out);
st_snn_net *st_snn_net_load_nir(const char *path, const st_nir_params *params, int *err);
int st_snn_net_save_nir(const st_snn_net *net, const char *path, const st_nir_params *params);

/* snn/asr.h */
typedef struct st_asr st_asr;
typedef struct {
    int n_mels;
    double hop_ms;
    double window_ms;
} st_asr_frontend_info;
st_asr *st_asr_load(const char *path, int *err);
void st_asr_destroy(st_asr **self_p);
size_t st_asr_classes(const st_asr *self);
size_t st_asr_features(const st_asr *self);
const char *st_asr_word(const st_asr *self, size_t k);
int st_asr_find(const st_asr *self, const char *word);
const st_asr_frontend_info *st_asr_frontend(const st_asr *self);
int st_asr_default_pool(const st_asr *self);
size_t st_asr_param_count(const st_asr *self);
int st_asr_classify(const st_asr *self, const float *frames, size_t n_frames, int pool,
                    float *scores);
typedef struct {
    float on_threshold;
    float off_threshold;
    int min_frames;
    int max_frames;
    int refractory_frames;
    bool emit_early;
} st_asr_decider_params;
typedef struct {
    int word;
    uint64_t start_stamp;
    uint64_t end_stamp;
    uint64_t decided_stamp;
    float score;
} st_asr_event;
typedef struct st_asr_stream st_asr_stream;
st_asr_decider_params st_asr_stream_default_params(void);
st_asr_decider_params st_asr_stream_params(const st_asr *self, size_t *tail);
st_asr_stream *st_asr_stream_new(const st_asr *asr, const st_asr_decider_params *p, int *err);
void st_asr_stream_destroy(st_asr_stream **self_p);
void st_asr_stream_reset(st_asr_stream *self);
int st_asr_stream_push(st_asr_stream *self, const float *frame, uint64_t stamp,
                       st_asr_event *ev, float *prob_out);
int st_asr_stream_flush(st_asr_stream *self, st_asr_event *ev);
typedef struct {
    float alpha;
    float beta;
    float margin;
    int beam;
} st_asr_lm_params;
st_asr_lm_params st_asr_lm_default_params(void);
const float *st_asr_lm(const st_asr *self, st_asr_lm_params *p);
int st_asr_stream_set_lm(st_asr_stream *self, const st_asr_lm_params *p);
bool st_asr_stream_uses_lm(const st_asr_stream *self);

/* snn/lm.h */
typedef struct {
    uint32_t n_layer;
    uint32_t n_embd;
    uint32_t vocab;
    uint32_t n_ffn;
    bool spiking;
} st_lm_config;
typedef struct st_lm_model st_lm_model;
typedef struct st_lm_tokenizer st_lm_tokenizer;
typedef struct st_lm_state st_lm_state;
typedef struct st_lm_sampler st_lm_sampler;
st_lm_config st_lm_default_config(void);
st_lm_model *st_lm_model_new(const st_lm_config *cfg, int *err);
void st_lm_model_randomize(st_lm_model *self, uint64_t seed, float out_scale);
st_lm_model *st_lm_model_load(const char *path, int *err);
int st_lm_model_save(const st_lm_model *self, const char *path);
st_lm_model *st_lm_model_twin(const st_lm_model *self, bool spiking, int *err);
void st_lm_model_destroy(st_lm_model **self_p);
const st_lm_config *st_lm_model_config(const st_lm_model *self);
const st_lm_tokenizer *st_lm_model_tokenizer(const st_lm_model *self);
const char *st_lm_model_kernel(const st_lm_model *self);
st_lm_state *st_lm_state_new(const st_lm_model *model, int *err);
void st_lm_state_destroy(st_lm_state **self_p);
void st_lm_state_reset(st_lm_state *self);
size_t st_lm_state_len(const st_lm_model *model);
float *st_lm_state_data(st_lm_state *self);
st_lm_state *st_lm_state_fork(const st_lm_state *src, int *err);
uint64_t st_lm_state_tokens(const st_lm_state *self);
const float *st_lm_state_logits(const st_lm_state *self);
int st_lm_step(const st_lm_model *model, st_lm_state *state, int32_t token, float *logits);
int st_lm_forward(const st_lm_model *model, st_lm_state *state, const int32_t *tokens,
                  size_t n, float *logits, bool all_logits, void *trace);
typedef struct {
    bool greedy;
    float temperature;
    uint32_t top_k;
    float top_p;
    float repetition_penalty;
    uint32_t repetition_last_n;
    uint64_t seed;
} st_lm_sample_params;
st_lm_sample_params st_lm_sample_default_params(void);
st_lm_sampler *st_lm_sampler_new(size_t vocab, const st_lm_sample_params *p, int *err);
void st_lm_sampler_destroy(st_lm_sampler **self_p);
typedef int (*st_lm_token_fn)(int32_t token, const char *piece, size_t piece_len,
                              void *user_data);
typedef struct {
    size_t max_tokens;
    int32_t stop_token;
    st_lm_token_fn on_token;
    void *user_data;
    const int *cancel;
} st_lm_generate_params;
st_lm_generate_params st_lm_generate_default_params(void);
typedef struct {
    size_t n_prompt;
    size_t n_generated;
    int stop;
    double first_token_s;
    double total_s;
} st_lm_generate_result;
int st_lm_generate(const st_lm_model *model, st_lm_state *state, st_lm_sampler *sampler,
                   const int32_t *prompt, size_t n_prompt, const st_lm_generate_params *p,
                   int32_t *out, size_t cap, st_lm_generate_result *res);
size_t st_lm_tokenizer_size(const st_lm_tokenizer *self);
const char *st_lm_tokenizer_piece(const st_lm_tokenizer *self, int32_t id, size_t *len);
int st_lm_tokenizer_encode(const st_lm_tokenizer *self, const char *text, size_t len,
                           int32_t *ids, size_t cap, size_t *n_ids, size_t *n_unknown);
int st_lm_tokenizer_decode(const st_lm_tokenizer *self, const int32_t *ids, size_t n, char *buf,
                           size_t cap, size_t *len);

/* snn/dialogue.h */
typedef void (*st_dialogue_timer_fn)(long long seconds, const char *label, void *user_data);
typedef struct {
    int hour, minute;
    st_dialogue_timer_fn on_timer;
    void *user_data;
} st_dialogue_tools;
typedef struct {
    size_t max_tokens;
    st_dialogue_tools tools;
} st_dialogue_params;
st_dialogue_params st_dialogue_default_params(void);
typedef struct {
    char transcript[4096];
    unsigned n_tools;
    bool tool_error;
    long long timer_s;
    bool fallback;
    size_t n_tokens;
    double seconds;
} st_dialogue_info;
int st_dialogue_reply(const st_lm_model *model, const char *user, const st_dialogue_params *p,
                      char *reply, size_t cap, st_dialogue_info *info);
int st_dialogue_tool(const st_dialogue_tools *tools, const char *call, size_t len, char *result,
                     size_t cap);
void st_dialogue_normalize(const char *in, char *out, size_t cap);

/* tts/tts.h */
typedef struct st_tts st_tts;
typedef struct {
    const char *engine;
    const char *voice;
    int rate_wpm;
    int pitch;
    int sample_rate_hz;
    double chunk_ms;
    double queue_s;
    int quality;
    int first_piece_words;
    int piece_words;
    double lead_silence_ms;
    size_t text_capacity;
    size_t word_capacity;
    bool normalize;
} st_tts_params;
st_tts_params st_tts_default_params(void);
st_tts *st_tts_new(const st_tts_params *p, int *err);
void st_tts_destroy(st_tts **t_p);
int st_tts_push(st_tts *t, const char *text);
int st_tts_end(st_tts *t);
int st_tts_say(st_tts *t, const char *text);
void st_tts_cancel(st_tts *t);
typedef struct {
    int utterance;
    uint64_t position;
    bool end;
} st_tts_chunk;
long st_tts_read(st_tts *t, float *out, size_t max_frames, double timeout_s,
                 st_tts_chunk *info);
typedef struct {
    int utterance;
    uint32_t index;
    uint64_t start;
    uint64_t end;
    char text[49];
} st_tts_word;
size_t st_tts_read_words(st_tts *t, st_tts_word *out, size_t max);
typedef struct {
    float *samples;
    size_t frames;
    int sample_rate_hz;
    st_tts_word *words;
    size_t n_words;
} st_tts_result;
int st_tts_synthesize(st_tts *t, const char *text, st_tts_result *out);
void st_tts_seed_draws(const char *key, const char *text);
void st_tts_result_free(st_tts_result *r);
int st_tts_sample_rate_hz(const st_tts *t);
int st_tts_native_rate_hz(const st_tts *t);
size_t st_tts_chunk_frames(const st_tts *t);
const char *st_tts_engine(const st_tts *t);
const char *st_tts_voice(const st_tts *t);
"""

_lock = threading.Lock()
_state = {}


def _candidates():
    env = os.environ.get("SPIKETALK_LIB")
    if env:
        return [env]
    here = os.path.dirname(os.path.abspath(__file__))
    return [os.path.join(here, "libspiketalk.so"),
            os.path.normpath(os.path.join(here, "..", "..", "..", "build", "libspiketalk.so")),
            "libspiketalk.so"]


def _open():
    import cffi
    ffi = cffi.FFI()
    ffi.cdef(CDEF)
    tried = []
    for path in _candidates():
        if os.sep in path and not os.path.exists(path):
            tried.append("%s (absent)" % path)
            continue
        try:
            return ffi, ffi.dlopen(path), path
        except OSError as e:
            tried.append("%s (%s)" % (path, e))
    raise errors.NotFoundError(
        "libspiketalk.so: not found or not loadable; tried: %s. Build it with `make`, or set "
        "SPIKETALK_LIB to its path" % "; ".join(tried), errors.NOT_FOUND)


def get():
    """(ffi, lib): the library, opened once per process."""
    s = _state.get("lib")
    if s is None:
        with _lock:
            s = _state.get("lib")
            if s is None:
                s = _open()
                _state["lib"] = s
    return s[0], s[1]


def path():
    """The path of the libspiketalk.so in use."""
    get()
    return _state["lib"][2]


def message(code):
    """The calling thread's detailed message for a failure with `code`, or the
    code's one-line description when the C code left none."""
    ffi, lib = get()
    m = ffi.string(lib.st_errmsg()).decode("utf-8", "replace")
    if not m:
        m = ffi.string(lib.st_strerror(code)).decode("utf-8", "replace")
    return m


def error(code):
    return errors.from_code(code, message(code))


def check(rc):
    """Raises the exception for a negative st_err return; returns rc."""
    if rc < 0:
        raise error(rc)
    return rc


def new(ctor, *args):
    """Calls a constructor that takes `int *err` last; raises on NULL."""
    ffi, lib = get()
    lib.st_error_clear()
    err = ffi.new("int *")
    p = ctor(*args, err)
    if p == ffi.NULL:
        raise error(err[0] or errors.INTERNAL)
    return p


def destroy(fn, ptr):
    """Calls a `destroy(T **)` on ptr (which may be None)."""
    if ptr is None:
        return
    ffi, _ = get()
    box = ffi.new("void **", ptr)
    fn(ffi.cast(ffi.typeof(fn).args[0], box))


def cstr(s, what="text"):
    """str or bytes -> bytes for a const char * argument."""
    if isinstance(s, bytes):
        b = s
    elif isinstance(s, str):
        b = s.encode("utf-8")
    elif isinstance(s, os.PathLike):
        b = os.fsencode(s)
    else:
        raise errors.InvalidError("%s: expected str, bytes or a path, not %s"
                                  % (what, type(s).__name__), errors.INVALID)
    if b"\0" in b:
        raise errors.InvalidError("%s: holds a NUL byte" % what, errors.INVALID)
    return b
