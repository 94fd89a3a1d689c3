/*  pipeline/pipeline.h - the pipeline runtime: the wire protocol, stages as
    actors, their configuration, the registry of stage types and the
    supervisor that starts, watches and restarts them.

    A pipeline is a graph of stages joined by ZeroMQ edges. Every edge carries
    the same two-frame messages (st_wire_*: a fixed 296-byte header and one
    payload frame per type, docs/PROTOCOL.md); every stage has one data input
    (a PULL socket that binds one endpoint per transport its edges use), one
    PUSH socket per output edge, a SUB socket on the supervisor's control bus
    (polled before data) and a PUSH socket to the supervisor's report socket
    (ready, heartbeats, end of stream, metrics). A stage runs as a thread of
    the supervisor's process (inproc edges, the default) or as its own
    process (`spiketalk stage NAME --config FILE`, ipc or tcp edges), on this
    machine or another, and behaves the same.

    Workload: 10 ms audio frames (160 float samples at 16 kHz, 640 bytes)
    through a handful of stages, a few words and tokens a second, control
    events a few times a turn. Latency matters more than throughput: one hop
    costs one ZeroMQ send and one wake-up of the next stage's thread.

    What it may touch: audio/ (devices, files, resampler) and tts/ for the
    built-in stages, libzmq and libinih. Nothing below pipeline/ depends on it.

    Threads: a stage's callbacks all run on its own thread (shared with the
    other stages of its fused chain when configured with `thread =`); st_stage_*
    functions that take an `st_stage *` are for that thread only. st_wire_*
    byte functions are pure and may be called from any thread. An st_pipe is
    driven by one thread (its creator's).

    Errors follow base/base.h: ST_OK or a negative st_err, with a sentence in
    st_errmsg(); configuration errors name the file and line.
*/
#ifndef ST_PIPELINE_H
#define ST_PIPELINE_H

#include "../base/base.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ======================================================================== */
/*  Wire protocol (pipeline/wire.c). docs/PROTOCOL.md is the reference.      */
/* ======================================================================== */

#define ST_WIRE_MAGIC "STLK"           /* the header's first four bytes */
#define ST_WIRE_VERSION 1
#define ST_WIRE_HEADER_BYTES 296       /* 40 fixed + 16 hops of 16 bytes */
#define ST_WIRE_MAX_HOPS 16
#define ST_WIRE_MAX_PAYLOAD (4u << 20) /* larger payload frames are dropped */

typedef enum {
    ST_MSG_PCM = 1,     /* audio samples */
    ST_MSG_SPIKES = 2,  /* spike events, address-event representation */
    ST_MSG_WORDS = 3,   /* word hypotheses (partial or final) */
    ST_MSG_TEXT = 4,    /* text tokens */
    ST_MSG_CONTROL = 5, /* control events (bus, in-band, reports) */
    ST_MSG_METRICS = 6  /* named figures */
} st_msg_type;
#define ST_MSG_TYPE_MAX 6

/*  Header flags. */
#define ST_WIRE_HOPS_TRUNCATED 0x01    /* more than 16 hops: the last slot was reused */

/*  One hop: a stage that sent the message. */
typedef struct {
    uint64_t sent_ns;      /* CLOCK_MONOTONIC of the sender's host, ns */
    uint32_t compute_ns;   /* from the arrival of what caused it to its send; 0 for a source */
    uint16_t stage_id;     /* the sender's id (1-based index in the configuration) */
} st_wire_hop;

typedef struct {
    uint8_t version;       /* ST_WIRE_VERSION */
    uint8_t type;          /* st_msg_type */
    uint8_t n_hops;        /* hops[0 .. n_hops) are valid */
    uint8_t flags;         /* ST_WIRE_HOPS_TRUNCATED */
    uint32_t stream_id;    /* which conversation */
    uint32_t epoch;        /* the turn it belongs to: older epochs are dropped */
    uint64_t seq;          /* the sending stage's message counter (gaps = losses) */
    uint64_t sample_index; /* capture sample index (16 kHz) the data derives from */
    uint32_t payload_bytes;/* length of the payload frame */
    st_wire_hop hops[ST_WIRE_MAX_HOPS];
} st_wire_header;

/*  PCM: mono samples. */
#define ST_PCM_F32 1       /* IEEE float, little-endian */
#define ST_PCM_S16 2       /* signed 16-bit, little-endian */
typedef struct {
    uint32_t rate_hz;
    uint16_t channels;     /* 1 in protocol version 1 */
    uint16_t format;       /* ST_PCM_F32 or ST_PCM_S16 */
    uint32_t frames;
    const unsigned char *data; /* borrowed, possibly unaligned: read with st_wire_pcm_read() */
} st_wire_pcm;

/*  Spikes: time (µs after the instant of the header's sample_index) and channel. */
typedef struct {
    uint32_t t_us;
    uint32_t channel;
} st_wire_spike;
typedef struct {
    uint32_t n_channels;   /* size of the address space: every channel is below it */
    uint32_t n_events;
    const unsigned char *data;
} st_wire_spikes;

/*  Words: a hypothesis of several words. */
#define ST_WORDS_FINAL 0x01
typedef struct {
    uint64_t start_sample; /* capture sample index (16 kHz) where the word starts */
    uint64_t end_sample;   /* ... and ends (exclusive) */
    float confidence;      /* 0..1 */
    uint32_t text_bytes;
    const char *text;      /* UTF-8, not NUL-terminated; borrowed */
} st_wire_word;
typedef struct {
    uint32_t flags;        /* ST_WORDS_FINAL: the hypothesis will not change */
    uint32_t n_words;
    const unsigned char *data;
    size_t bytes;
} st_wire_words;

/*  Text tokens. */
#define ST_TEXT_END 0x01   /* the last token of an utterance */
typedef struct {
    uint32_t flags;
    uint32_t bytes;
    const char *text;      /* UTF-8, not NUL-terminated; borrowed */
} st_wire_text;

/*  Control events. Bus: supervisor -> every stage (PUB/SUB). In-band: on the
    data plane, in order with the data. Report: stage -> supervisor. */
typedef enum {
    ST_CTL_START = 1,      /* bus: sources begin */
    ST_CTL_STOP = 2,       /* bus: sources end their stream; the pipeline drains */
    ST_CTL_INTERRUPT = 3,  /* bus: barge-in; the header's epoch is the new turn */
    ST_CTL_FLUSH = 4,      /* in-band: emit what is held back, then pass it on */
    ST_CTL_TURN = 5,       /* bus: turn change; the header's epoch is the new turn; arg: who speaks */
    ST_CTL_END = 6,        /* in-band: end of stream on this edge; report: the stage finished */
    ST_CTL_HEARTBEAT = 7,  /* bus: arg 1 once started; report: the stage is alive */
    ST_CTL_READY = 8,      /* report: initialised and hearing the bus; text: the stage's name */
    ST_CTL_FAILED = 9,     /* report: could not start or must stop; text: why */
    ST_CTL_SHUTDOWN = 10,  /* bus: exit cleanly */
    ST_CTL_SPEECH = 11     /* in-band: the VAD's speech onset (arg 1) or offset (arg 0);
                              the header's sample_index is where it is placed */
} st_ctl_cmd;
#define ST_CTL_MAX 11
typedef struct {
    uint32_t cmd;          /* st_ctl_cmd */
    uint32_t arg;
    uint32_t stage_id;     /* reports: the sender; bus: the target, 0 = every stage */
    uint32_t bytes;
    const char *text;      /* UTF-8, not NUL-terminated; borrowed */
} st_wire_control;

/*  Metrics: named numbers. */
#define ST_METRIC_NAME_MAX 63
typedef struct {
    char name[ST_METRIC_NAME_MAX + 1];
    double value;
} st_wire_metric;
typedef struct {
    uint32_t stage_id;
    uint32_t n;
    const unsigned char *data;
    size_t bytes;
} st_wire_metrics;

/*  A decoded message. The views point into the received frames: valid until
    the next receive on the same st_wire_rx (in a stage: until the callback
    returns). */
typedef struct {
    st_wire_header h;
    const unsigned char *payload;
    size_t payload_bytes;
    union {
        st_wire_pcm pcm;
        st_wire_spikes spikes;
        st_wire_words words;
        st_wire_text text;
        st_wire_control control;
        st_wire_metrics metrics;
    };
    bool from_bus;         /* arrived on the control bus, not the data plane */
    void *frame_;          /* private: the payload frame, for zero-copy forwarding */
} st_wire_msg;

/*  CLOCK_MONOTONIC in ns: the clock of the hop stamps. */
uint64_t st_wire_now_ns(void);

/*  Fills a header for a new message: version, type, current time as hop 0
    of stage `stage_id` (none when stage_id is 0), everything else zero. */
void st_wire_header_init(st_wire_header *h, uint8_t type, uint16_t stage_id);

/*  Appends a hop. With 16 hops already, the last one is replaced and the
    header is flagged ST_WIRE_HOPS_TRUNCATED. */
void st_wire_stamp(st_wire_header *h, uint16_t stage_id, uint64_t sent_ns, uint32_t compute_ns);

/*  Header frame <-> struct. decode checks length, magic, version, type and
    hop count; errors are ST_ERR_FORMAT with a sentence in st_errmsg(). */
void st_wire_header_encode(const st_wire_header *h, unsigned char out[ST_WIRE_HEADER_BYTES]);
int st_wire_header_decode(const void *buf, size_t len, st_wire_header *h);

/*  Decodes and checks a whole message (header and payload frames): the
    header, payload_bytes against the payload's length, the size limit, and
    the payload's own structure for its type. ST_ERR_FORMAT when anything is
    wrong; `m` then holds nothing usable. Never reads outside the buffers. */
int st_wire_decode(const void *hdr, size_t hdr_len, const void *payload, size_t payload_len,
                   st_wire_msg *m);

/*  Payload encoders. Each writes into out (cap bytes) and returns the bytes
    written, or with out NULL the bytes it would need; ST_ERR_INVALID when
    cap is too small or the content breaks a limit of the protocol. */
long st_wire_pcm_encode(void *out, size_t cap, uint32_t rate_hz, int format, const float *x,
                        size_t frames);
long st_wire_spikes_encode(void *out, size_t cap, uint32_t n_channels, const st_wire_spike *ev,
                           size_t n);
long st_wire_words_encode(void *out, size_t cap, uint32_t flags, const st_wire_word *w, size_t n);
long st_wire_text_encode(void *out, size_t cap, uint32_t flags, const char *text, size_t bytes);
long st_wire_control_encode(void *out, size_t cap, uint32_t cmd, uint32_t arg, uint32_t stage_id,
                            const char *text);
long st_wire_metrics_encode(void *out, size_t cap, uint32_t stage_id, const st_wire_metric *m,
                            size_t n);

/*  Readers over decoded views. pcm_read converts to float and returns the
    frames copied (at most cap). words_next and metrics_next walk the entries:
    start with *cursor = 0; false after the last. */
size_t st_wire_pcm_read(const st_wire_pcm *p, float *out, size_t cap);
st_wire_spike st_wire_spike_at(const st_wire_spikes *s, size_t i);
bool st_wire_words_next(const st_wire_words *w, size_t *cursor, st_wire_word *out);
bool st_wire_metrics_next(const st_wire_metrics *m, size_t *cursor, st_wire_metric *out);

const char *st_wire_type_name(int type);   /* "pcm", ...; "?" when unknown; static */
const char *st_wire_ctl_name(uint32_t cmd);/* "start", ...; "?" when unknown; static */

/*  Sockets. st_wire_send sends a header and a payload as one two-frame
    message (flags: 0 or ZMQ_DONTWAIT); ST_ERR_TIMEOUT when the socket would
    block, ST_ERR_IO otherwise. */
int st_wire_send(void *zsock, const st_wire_header *h, const void *payload, size_t bytes,
                 int flags);

/*  A receiver: owns the frames of the last message received, counts what it
    drops and logs each drop (the first 10, then every 1000th). */
typedef struct {
    uint64_t received;     /* well-formed messages */
    uint64_t malformed;    /* dropped, all reasons below */
    uint64_t bad_frames;   /* not exactly two frames */
    uint64_t bad_header;   /* header frame of the wrong length or bad hop count */
    uint64_t bad_magic;
    uint64_t bad_version;
    uint64_t bad_type;
    uint64_t bad_length;   /* payload_bytes differs from the payload's length */
    uint64_t oversized;    /* payload above ST_WIRE_MAX_PAYLOAD */
    uint64_t bad_payload;  /* the payload's own structure is wrong */
} st_wire_counters;

typedef struct st_wire_rx st_wire_rx;

/*  `who` names the receiver in log lines ("stage 'vad' input"). Owned by
    the caller. */
st_wire_rx *st_wire_rx_new(const char *who, int *err);
void st_wire_rx_destroy(st_wire_rx **rx_p);

/*  Receives one message. ST_OK: *m is valid until the next call.
    ST_ERR_FORMAT: a malformed message was counted, logged and dropped (call
    again). ST_ERR_TIMEOUT: nothing to read (ZMQ_DONTWAIT) or the socket's
    receive timeout ran out. ST_ERR_IO: the socket or context is closing. */
int st_wire_rx_recv(st_wire_rx *rx, void *zsock, int flags, st_wire_msg *m);
const st_wire_counters *st_wire_rx_counters(const st_wire_rx *rx);

/* ======================================================================== */
/*  Stage parameters (pipeline/params.c): a configuration section's keys.    */
/* ======================================================================== */

#define ST_PARAMS_MAX 32
#define ST_PARAM_KEY_MAX 48
#define ST_PARAM_VALUE_MAX 208

typedef struct {
    char key[ST_PARAM_KEY_MAX];
    char value[ST_PARAM_VALUE_MAX];
    int line;              /* in origin; 0 when set by code */
    bool used;             /* read by the stage or the runtime */
} st_param;

typedef struct {
    char origin[256];      /* the file (or "<built-in>", "--set"), for messages */
    char section[96];      /* "stage.mic" */
    int line;              /* the section's line */
    int n;
    st_param p[ST_PARAMS_MAX];
} st_params;

void st_params_init(st_params *p, const char *origin, const char *section, int line);

/*  Sets (or replaces) a key. ST_ERR_INVALID when a key or value is too long
    or there are too many keys; the message names origin and line. */
int st_params_set(st_params *p, const char *key, const char *value, int line);

/*  The value of key, marking it used; NULL when absent. Borrowed. */
const char *st_params_get(st_params *p, const char *key);

/*  The first key nobody read, or NULL. */
const st_param *st_params_unused(const st_params *p);

/*  Typed reads with range checks. Absent keys give the default. Errors:
    ST_ERR_INVALID with "FILE:LINE: [section] key: 'v' is not a number (…)". */
int st_params_double(st_params *p, const char *key, double def, double lo, double hi, double *out);
int st_params_int(st_params *p, const char *key, long def, long lo, long hi, long *out);
int st_params_bool(st_params *p, const char *key, bool def, bool *out);
/*  One of a NULL-terminated list of words; *out is its index. */
int st_params_choice(st_params *p, const char *key, const char *def, const char *const *choices,
                     int *out);

/* ======================================================================== */
/*  Stages (pipeline/stage.c): a table of functions and the runner that      */
/*  makes it an actor.                                                       */
/* ======================================================================== */

typedef struct st_stage st_stage;  /* the runtime's side of a running stage */

/*  A stage type. Every callback runs on the stage's own thread and gets the
    stage's state as `self`. Return ST_OK, or a negative st_err with a
    sentence (st_error()); errors are counted and logged, and only create's
    stops the stage. */
typedef struct {
    const char *name;      /* what configurations write after `type =` */
    const char *summary;   /* one line for `spiketalk stage --list` */
    const char *params_help; /* "key = default   meaning" lines, or NULL */

    /*  Reads its parameters (st_stage_param_*), allocates everything it will
        need, and sets *self. A failure here is the actor's failure to start:
        the message goes to whoever started it, and destroy() gets whatever
        *self holds by then. */
    int (*create)(st_stage *s, void **self);

    /*  One data message of the current epoch (older ones never arrive).
        Emit with st_stage_forward() / st_stage_send*(). */
    int (*data)(st_stage *s, void *self, const st_wire_msg *m);

    /*  Optional. A control event: from the bus (START, STOP, INTERRUPT,
        TURN; m->from_bus) after the runner has taken the new epoch, or
        in-band (FLUSH, and END once every input has ended), before the
        runner passes it on. */
    int (*control)(st_stage *s, void *self, const st_wire_msg *m);

    /*  Optional. Called every tick period once the pipeline has started
        (period: st_stage_set_tick(); 0 = as often as the loop turns, for
        sources that run as fast as their consumers). A source returns
        ST_ERR_END when its input is exhausted: the runner then sends END. */
    int (*tick)(st_stage *s, void *self);

    /*  Frees everything create made; self may be NULL. */
    void (*destroy)(void *self);
} st_stage_type;

#define ST_STAGE_MAX_OUTPUTS 8
#define ST_STAGE_MAX_BINDS 3       /* one input endpoint per transport */

/*  How to run one stage: what the configuration resolves for it. Strings
    are borrowed by st_stage_actor_new()/st_stage_run(), which copy them. */
typedef struct {
    const char *name;              /* instance name ("mic") */
    uint16_t id;                   /* stamped in hops; 1-based */
    uint32_t stream_id;            /* stream of the messages it starts (sources) */
    const char *binds[ST_STAGE_MAX_BINDS]; /* input endpoints to bind; NULL-ended */
    const char *outputs[ST_STAGE_MAX_OUTPUTS]; /* one endpoint per output edge; NULL-ended */
    int n_inputs;                  /* upstream edges: END from each ends the stream */
    const char *control;           /* the control bus (SUB connects); NULL = none */
    const char *report;            /* the supervisor's report socket; NULL = none */
    int hwm;                       /* queue bound, messages, per socket and direction */
    double heartbeat_ms;           /* report period */
    double metrics_ms;             /* metrics report period */
    double send_timeout_ms;        /* a non-audio send waits this long, then is dropped */
    double orphan_s;               /* exit when the bus falls silent this long; 0 = never */
    bool shed;                     /* audio to a full queue is dropped and counted
                                      (false: it waits like other types) */
    double tick_ms;                /* < 0: the stage's own choice */
    double spin_us;                /* after the last message, poll without sleeping
                                      this long before blocking: a hop then costs no
                                      thread wake-up, at the price of a busy core */
    const st_params *params;       /* the stage's parameters (copied) */
    void *user_data;               /* handed to the stage: st_stage_user_data() */
    const struct st_sec_stage *security; /* CURVE on its tcp sockets (copied); NULL = plain */
} st_stage_config;

/*  hwm 64, heartbeat 200 ms, metrics 1000 ms, send timeout 1000 ms, shed,
    tick_ms -1, no endpoints. */
st_stage_config st_stage_default_config(void);

typedef struct {
    uint64_t received;     /* data messages taken from the input (any epoch) */
    uint64_t sent;         /* message copies sent to outputs */
    uint64_t malformed;    /* dropped by the decoder (input, bus) */
    uint64_t stale;        /* dropped: older epoch */
    uint64_t shed;         /* audio not sent: an output queue was full */
    uint64_t send_timeouts;/* other messages not sent: an output stayed full */
    uint64_t errors;       /* callbacks that returned an error */
    uint64_t controls;     /* control events handled */
    uint64_t ticks;
    uint32_t epoch;
    bool started, ended;
} st_stage_stats;

/*  An actor: the stage on a thread of this process. Blocks until the stage
    is ready (sockets bound and connected, create() done) and returns it, or
    returns NULL with the reason (ST_ERR_* and st_errmsg()) if it could not
    start. `zctx` is a ZeroMQ context that outlives the actor (inproc
    endpoints are per context). Owned by the caller. */
typedef struct st_stage_actor st_stage_actor;
st_stage_actor *st_stage_actor_new(void *zctx, const st_stage_type *type,
                                   const st_stage_config *cfg, int *err);

/*  A fused chain: n stages (1 .. ST_PIPE_MAX_STAGES) on one thread. cfgs[i]
    is stage i as st_stage_actor_new() takes it; every stage but the last has
    exactly one output, which is the one input of the next (its endpoints
    are ignored): that edge becomes a direct call, the message decoded from
    the same header bytes and shared payload frame a socket would carry, so
    each stage keeps its hop stamp, seq, epoch filter, END accounting and
    counters. The first stage's input, the last stage's outputs and every
    stage's report socket stay ZeroMQ; the first stage hears the bus (and
    the pipe) for all of them and hands each event to every stage in chain
    order before any more data. A fused edge has no queue: nothing is shed
    and nothing waits on it. */
st_stage_actor *st_stage_actor_new_fused(void *zctx, const st_stage_type *const *types,
                                         const st_stage_config *cfgs, int n, int *err);

/*  Tells the actor to terminate, waits for its thread (destroy() runs
    there) and frees it; NULLs *a_p; safe on NULL. */
void st_stage_actor_destroy(st_stage_actor **a_p);

/*  Delivers a control event through the actor's pipe, as if it came on the
    bus (for actors without a bus: tests, embedding). */
int st_stage_actor_control(st_stage_actor *a, uint32_t cmd, uint32_t arg, uint32_t epoch);

/*  A snapshot of the actor's counters (any thread). */
void st_stage_actor_stats(const st_stage_actor *a, st_stage_stats *out);

/*  The counters of the stage `name` of a fused actor (ST_ERR_NOT_FOUND when
    the actor has none of that name). */
int st_stage_actor_stats_of(const st_stage_actor *a, const char *name, st_stage_stats *out);

/*  Runs the stage on the calling thread until SHUTDOWN comes on the bus,
    *stop becomes non-zero (a signal handler), or the bus falls silent for
    cfg->orphan_s. ST_OK on a clean exit; the start error otherwise (also
    reported to the supervisor as FAILED). For `spiketalk stage`. */
int st_stage_run(void *zctx, const st_stage_type *type, const st_stage_config *cfg,
                 volatile int *stop);

/* ---- for stage callbacks (the stage's thread only) ---------------------- */

const char *st_stage_name(const st_stage *s);
uint16_t st_stage_id(const st_stage *s);
uint32_t st_stage_epoch(const st_stage *s);      /* the current turn */
void *st_stage_user_data(const st_stage *s);
bool st_stage_has_outputs(const st_stage *s);

/*  Parameters of the stage's section (see st_params_*). A key the stage
    never reads is an error at start ("unknown parameter"), so typos do not
    pass silently. */
const char *st_stage_param(st_stage *s, const char *key, const char *def);
int st_stage_param_double(st_stage *s, const char *key, double def, double lo, double hi,
                          double *out);
int st_stage_param_int(st_stage *s, const char *key, long def, long lo, long hi, long *out);
int st_stage_param_bool(st_stage *s, const char *key, bool def, bool *out);
int st_stage_param_choice(st_stage *s, const char *key, const char *def,
                          const char *const *choices, int *out);

/*  The tick period, ms (0: every turn of the loop; < 0: none). */
void st_stage_set_tick(st_stage *s, double tick_ms);

/*  Fills *h for a new message caused by `cause` (its stream, epoch, sample
    index and hops), or a fresh one (current epoch, sample index 0) when
    cause is NULL. Set sample_index (sources) before sending. */
void st_stage_header(const st_stage *s, const st_wire_msg *cause, st_wire_header *h);

/*  Sends to every output: sets type, seq and payload_bytes, appends this
    stage's hop. Audio (PCM, spikes) meeting a full queue is shed (dropped
    and counted) unless the stage was configured shed = no; other types wait
    up to send_timeout_ms. Returns ST_OK (also when shed: that is the policy,
    not an error) or ST_ERR_NOMEM. A stage without outputs sends nothing. */
int st_stage_send(st_stage *s, st_wire_header *h, uint8_t type, const void *payload,
                  size_t bytes);
int st_stage_send_pcm(st_stage *s, st_wire_header *h, uint32_t rate_hz, const float *x,
                      size_t frames);
int st_stage_send_text(st_stage *s, st_wire_header *h, uint32_t flags, const char *text,
                       size_t bytes);
int st_stage_send_control(st_stage *s, st_wire_header *h, uint32_t cmd, uint32_t arg);

/*  Passes a received message on unchanged but for a new hop (the payload
    frame is shared, not copied). */
int st_stage_forward(st_stage *s, const st_wire_msg *m);

/*  Reports figures to the supervisor (besides the runner's own counters). */
int st_stage_report_metrics(st_stage *s, const st_wire_metric *m, size_t n);

/* ======================================================================== */
/*  Registry (pipeline/registry.c): stage types by name.                     */
/* ======================================================================== */

/*  The built-in types and any registered ones. Borrowed; NULL when unknown. */
const st_stage_type *st_stage_type_find(const char *name);

/*  Type i (built-ins first), NULL past the last. */
const st_stage_type *st_stage_type_at(size_t i);

/*  Adds a type (the pointer must stay valid). ST_ERR_INVALID for a name
    already taken or a missing create/data/destroy; ST_ERR_NOMEM when the
    table (64) is full. Any thread. */
int st_stage_type_register(const st_stage_type *t);

/* ======================================================================== */
/*  Configuration (pipeline/config.c): one INI file.                         */
/* ======================================================================== */

#define ST_PIPE_MAX_STAGES 32

typedef struct st_pipe_config st_pipe_config;

/*  Loads and checks a file; errors (ST_ERR_NOT_FOUND, ST_ERR_FORMAT,
    ST_ERR_INVALID) say "FILE:LINE: what is wrong". Owned by the caller. */
st_pipe_config *st_pipe_config_load(const char *path, int *err);

/*  The same from text; `origin` names it in messages. */
st_pipe_config *st_pipe_config_parse(const char *text, const char *origin, int *err);

/*  The built-in pipeline (microphone -> 16 kHz -> pass-through -> speaker). */
const char *st_pipe_config_default_text(void);

void st_pipe_config_destroy(st_pipe_config **c_p);

/*  Overrides one key: "SECTION.KEY=VALUE" where SECTION is "pipeline" or a
    stage's name ("mic.device=virtual"). Checks the result as load does. */
int st_pipe_config_set(st_pipe_config *c, const char *assignment);

/*  Writes the configuration as an INI file (what a stage process reads). */
int st_pipe_config_write(const st_pipe_config *c, FILE *out);

const char *st_pipe_config_origin(const st_pipe_config *c);
size_t st_pipe_config_stage_count(const st_pipe_config *c);
const char *st_pipe_config_stage_name(const st_pipe_config *c, size_t i);
const char *st_pipe_config_stage_type(const st_pipe_config *c, size_t i);

/*  Whether stage i runs in its own process / is started by someone else
    (type = external, or launch = no). */
bool st_pipe_config_stage_process(const st_pipe_config *c, size_t i);
bool st_pipe_config_stage_external(const st_pipe_config *c, size_t i);

/*  Resolves stage `name` into *out: endpoints, queue bounds, parameters.
    Pointers in *out are borrowed from c (valid until c changes). Errors:
    ST_ERR_NOT_FOUND (no such stage), ST_ERR_INVALID (endpoints that cannot
    be derived: tcp without a base_port, ipc without an ipc_dir). */
int st_pipe_config_stage(const st_pipe_config *c, const char *name, st_stage_config *out);

/*  The supervisor's endpoints (bus PUB, report PULL). */
const char *st_pipe_config_control(const st_pipe_config *c);
const char *st_pipe_config_report(const st_pipe_config *c);

/* ======================================================================== */
/*  Supervisor (pipeline/supervisor.c).                                      */
/* ======================================================================== */

typedef enum {
    ST_PIPE_EV_READY = 1,      /* a stage is ready */
    ST_PIPE_EV_STARTED,        /* every stage ready: START was sent */
    ST_PIPE_EV_FAILED,         /* a stage could not start (message: why) */
    ST_PIPE_EV_EXITED,         /* a stage process exited or was killed */
    ST_PIPE_EV_UNRESPONSIVE,   /* a stage missed its heartbeats */
    ST_PIPE_EV_RESTARTED,      /* a stage process was started again */
    ST_PIPE_EV_GAVE_UP,        /* too many restarts: the stage stays down */
    ST_PIPE_EV_ENDED,          /* a stage finished its stream */
    ST_PIPE_EV_DONE,           /* every stage finished */
    ST_PIPE_EV_INTERRUPT       /* a new epoch was broadcast */
} st_pipe_event_kind;

typedef struct {
    st_pipe_event_kind kind;
    const char *stage;         /* NULL for pipeline-wide events */
    int pid;                   /* the stage's process, 0 for a thread */
    int restarts;              /* so far */
    const char *message;       /* one sentence for people */
} st_pipe_event;

typedef struct {
    const char *exe_path;      /* the spiketalk binary for stage processes;
                                  NULL = this program (/proc/self/exe) */
    void (*on_event)(const st_pipe_event *e, void *user_data); /* optional */
    void *user_data;           /* for on_event, and st_stage_user_data() of
                                  stages running in this process */
    double start_timeout_s;    /* every stage ready within this; 0 = the
                                  configuration's start_timeout_s (10 s) */
    const char *const *child_args; /* extra arguments before the command for
                                  stage processes (e.g. "-q"); NULL-ended */
} st_pipe_params;

st_pipe_params st_pipe_default_params(void);

typedef struct st_pipe st_pipe;

/*  Makes a pipeline from a configuration (copied: `cfg` may be destroyed
    after). Resolves what the configuration leaves to run time: a free tcp
    base port, a private ipc folder. Starts nothing. Owned by the caller. */
st_pipe *st_pipe_new(const st_pipe_config *cfg, const st_pipe_params *p, int *err);

/*  Starts every stage it launches (threads, processes) and waits until
    each is ready. External stages may join later. Errors: the first stage
    that failed, with its message ("stage 'mic': ..."). */
int st_pipe_start(st_pipe *p);

/*  Supervises: starts the stages if st_pipe_start() was not called, sends
    START once every stage (required external ones included) is ready,
    watches heartbeats, restarts dead stage processes, and returns ST_OK
    when every stage it launched has ended its stream, ST_ERR_TIMEOUT after
    timeout_s (<= 0: none; the message names the stages still running), or
    ST_ERR_END when *stop (may be NULL) became non-zero. */
int st_pipe_run(st_pipe *p, double timeout_s, volatile int *stop);

/*  One supervision step of at most timeout_s; returns ST_OK, or ST_ERR_END
    once every launched stage has ended. For callers with their own loop. */
int st_pipe_poll(st_pipe *p, double timeout_s);

/*  Starts a new turn: epoch + 1, broadcast as INTERRUPT. Returns the epoch. */
uint32_t st_pipe_interrupt(st_pipe *p);

/*  Broadcasts a control event with the current epoch (STOP, TURN, ...). */
int st_pipe_control(st_pipe *p, uint32_t cmd, uint32_t arg);

uint32_t st_pipe_epoch(const st_pipe *p);
void *st_pipe_zmq_context(st_pipe *p);
const st_pipe_config *st_pipe_get_config(const st_pipe *p); /* the resolved copy */

/*  Per stage, by name: process id (0: a thread or not running), restarts,
    and the latest counters (live for threads, the last report for
    processes). ST_ERR_NOT_FOUND for an unknown name. */
int st_pipe_stage_pid(const st_pipe *p, const char *name);
int st_pipe_stage_restarts(const st_pipe *p, const char *name);
int st_pipe_stage_stats(const st_pipe *p, const char *name, st_stage_stats *out);

/*  Broadcasts SHUTDOWN, joins the threads, reaps the processes (SIGTERM,
    then SIGKILL after 2 s), removes its private folder; NULLs *p_p. */
void st_pipe_destroy(st_pipe **p_p);

/* ======================================================================== */
/*  Turn controller (pipeline/turn.c): who speaks, when a turn ends, barge-in */
/* ======================================================================== */

/*  A pure state machine over the capture sample index (16 kHz): it is told
    the voice-activity events, the recognizer's words, the time, and what
    the speaker did; it answers with actions. No I/O, no allocation after
    st_turn_new(), no clock of its own: the same inputs give the same
    outputs (docs/AGENT.md has the states and the timing).

      LISTENING --onset--> USER --offset + wait--> THINKING --first sample
          ^                 ^  \--noise (no word)--> LISTENING   played--> AGENT
          |                 |                                      |  |
          |                 +--onset (user goes on): INTERRUPT <---+  | onset:
          |                                                           | PAUSE
          +--------------- speaker drained ---------------- AGENT <--BOTH
                                              silent resume_hold, gate not met:
                                                     RESUME  |  speech >= gate
                                                             |  or a word:
                                                             v  INTERRUPT
                                                            USER

    End of turn: after the VAD's offset the controller waits `complete_wait_s`
    when the words so far are a complete request (st_turn_request_complete),
    `prefix_wait_s` when they are the start of one (a pause inside "timer ...
    five minutes": st_turn_request_prefix) and the user did not speak on
    more than `prefix_stale_s` past its last word, `incomplete_wait_s`
    otherwise; an onset in the wait continues the same turn. A turn without
    a single word is dropped as noise (`late_word_s` after its offset).
    Barge-in: an onset while the agent speaks pauses the speaker at once
    (PAUSE); speech that adds up to `barge_min_s`
    (pieces less than resume_hold_s apart) or brings a word that is no
    backchannel ("yes", "right", "okay") commits the
    interruption (INTERRUPT: a new epoch, the synthesizer cancels, the
    speaker flushes); silence of resume_hold_s short of that resumes the
    answer where it paused (RESUME): backchannels and coughs do not stop
    the agent. */

typedef enum {
    ST_TURN_LISTENING = 0,     /* nobody speaks */
    ST_TURN_USER,              /* the user speaks (or pauses inside a request) */
    ST_TURN_THINKING,          /* the request is complete; the answer is being made */
    ST_TURN_AGENT,             /* the agent speaks */
    ST_TURN_BOTH               /* the user speaks over the agent (paused) */
} st_turn_state;
#define ST_TURN_N_STATES 5

/*  Actions: what the caller must do (a bit set). */
#define ST_TURN_DO_ANSWER 0x01     /* answer st_turn_request() under st_turn_epoch() */
#define ST_TURN_DO_PAUSE 0x02      /* stop playing, keep the queue */
#define ST_TURN_DO_RESUME 0x04     /* play the kept queue on */
#define ST_TURN_DO_INTERRUPT 0x08  /* new epoch: cancel synthesis and LM, flush the speaker */

typedef struct {
    int rate_hz;               /* the capture clock; 16000 */
    double complete_wait_s;    /* after the offset, a complete request; 0.05 s */
    double incomplete_wait_s;  /* ... words that are neither: the silence fallback; 0.3 s
                                  (docs/AGENT.md "End of turn": swept on the standard set) */
    double prefix_wait_s;      /* ... the start of a request of the grammar ("timer",
                                  "what is three plus": st_turn_request_prefix), a pause
                                  inside it; 1.5 s */
    double prefix_stale_s;     /* ... unless the user spoke on this long past the prefix's
                                  last word (the recognizer missed the rest: no pause
                                  is going on): then incomplete_wait_s; 0.65 s (0: never) */
    double barge_min_s;        /* user speech over the agent that commits a barge-in
                                  (segments less than resume_hold_s apart add up); 0.7 s:
                                  longer than the standard set's backchannels, so a
                                  one-word interruption commits by its word */
    double resume_hold_s;      /* after such speech ends short of it, the agent waits this
                                  long before it resumes (and speech this soon after a
                                  resume still adds up); 0.4 s */
    double barge_word_score;   /* ... if the recognizer was this sure of it (st_turn_heard);
                                  0.2 */
    bool barge_on_word;        /* a recognized word commits it sooner, unless it is a
                                  backchannel ("yes", "right", "okay", ...); true.
                                  Words only count while the user's own onset has
                                  paused the agent (BOTH), so the echo's do not */
    double late_word_s;        /* a word decided this long after the offset still
                                  belongs to the turn (the recognizer lags), and a
                                  turn with no word yet waits this long after its
                                  offset before it is dropped; 0.6 s */
    double max_turn_s;         /* a user turn ends after this long even if the VAD
                                  holds on (noise it takes for speech): with the words
                                  heard, or back to listening without any; 10 s
                                  (0: never) */
} st_turn_params;

st_turn_params st_turn_default_params(void);

typedef struct st_turn st_turn;

/*  Called on every change of state, with the sample index that caused it.
    On the caller's thread, inside the st_turn_* call. */
typedef void (*st_turn_state_fn)(st_turn_state from, st_turn_state to, uint64_t sample,
                                 void *user_data);

/*  Owned by the caller. ST_ERR_INVALID naming a parameter out of range. */
st_turn *st_turn_new(const st_turn_params *p, st_turn_state_fn on_state, void *user_data,
                     int *err);
void st_turn_destroy(st_turn **t_p);

/*  Inputs; each returns the actions (ST_TURN_DO_*). `sample` is where the
    event is placed on the capture clock, `now` the index of the newest
    sample the caller has seen (the decision time). */
int st_turn_onset(st_turn *t, uint64_t sample, uint64_t now);
int st_turn_offset(st_turn *t, uint64_t sample, uint64_t now);
/*  Something that may be the user starting over the agent, from a detector
    quicker and less sure than the VAD (the agent's fricative-sensitive
    barge-in read-out): in AGENT it pauses the speaker at once (PAUSE, to
    BOTH) with no speech counted; the VAD's onset then counts speech toward
    the barge-in as usual, and without one the answer resumes after
    resume_hold_s. Nothing in any other state. */
int st_turn_hint(st_turn *t, uint64_t sample, uint64_t now);
/*  A recognized word (vocabulary words only; NUL-terminated, borrowed). */
int st_turn_word(st_turn *t, const char *word, uint64_t start, uint64_t end, uint64_t now);
/*  The same with the recognizer's confidence (its peak probability, 0..1):
    over the agent a word under barge_word_score does not commit a barge-in
    (a noise burst heard as "seconds" at 0.14). st_turn_word is this at 1. */
int st_turn_heard(st_turn *t, const char *word, float score, uint64_t start, uint64_t end,
                  uint64_t now);
/*  Time passes: end-of-turn waits and the barge-in gate are checked here. */
int st_turn_tick(st_turn *t, uint64_t now);
/*  The agent speaks unasked (an announcement, a timer going off): from
    LISTENING to THINKING under a new epoch, as if a request had ended now.
    Returns ST_TURN_DO_ANSWER, or 0 (nothing) in any other state. */
int st_turn_announce(st_turn *t, uint64_t now);
/*  The speaker played the first sample of the answer / ran dry after it. */
int st_turn_agent_started(st_turn *t, uint64_t now);
int st_turn_agent_done(st_turn *t, uint64_t now);

st_turn_state st_turn_get_state(const st_turn *t);
const char *st_turn_state_name(st_turn_state s);   /* "listening", ...; static */
uint32_t st_turn_epoch(const st_turn *t);          /* the current turn */
/*  The request of the latest ANSWER: the turn's words, space-separated.
    Borrowed until the next st_turn_* call. */
const char *st_turn_request(const st_turn *t);
/*  Where the user's speech of the latest ANSWER ended (the offset's sample)
    and when the controller decided (the end-of-turn wait is the difference). */
uint64_t st_turn_request_end(const st_turn *t);
uint64_t st_turn_request_decided(const st_turn *t);
/*  The onset that the latest PAUSE or INTERRUPT answered. */
uint64_t st_turn_barge_onset(const st_turn *t);
/*  The words of a user turn that may be about to end: the user is silent
    (the VAD's offset came) and some words were heard; NULL otherwise. What
    preemptive work reads (the agent starts its LM on them while the
    controller waits). Borrowed until the next st_turn_* call. */
const char *st_turn_pending(const st_turn *t);
/*  The user is silent and the controller waits: the sample at which it
    ends the turn on the words heard so far (a tick at or after it does);
    0 when it does not wait. */
uint64_t st_turn_deadline(const st_turn *t);

/*  Whether words (space-separated, the recognizer's vocabulary) end in a
    complete request of the agent's grammar: "[what] N plus|minus|times N",
    "timer N seconds|minutes", "count N", "count down|up N", "count N N"
    (N not "two", which may be "to ..."),
    "[what] time", "joke", "story", "hello", "hi", "help", "thanks",
    "goodbye", "repeat", "yes", "no"; or a Speech Commands keyword said alone
    ("up", "down", "left", "right", "on", "off", "go", "stop"). Pure. */
bool st_turn_request_complete(const char *words);

/*  Whether words end in the start of such a request, the rest still to come:
    the last word is "plus", "minus", "times", "timer", "count", "what" or a
    number (not completing a request, not "plus N", not a number said
    alone). Pure. */
bool st_turn_request_prefix(const char *words);

/* ======================================================================== */
/*  The agent (pipeline/agent.c): the whole conversation, frame by frame.    */
/* ======================================================================== */

/*  Microphone in, speaker out, one 10 ms block (160 samples at 16 kHz) per
    call, full duplex: the front end, the spiking VAD (with the agent's own
    played signal as its echo estimate), the recognizer, the turn controller
    (above), the dialogue LM (snn/dialogue.h, tools executed) and the
    synthesizer (tts/), and a speaker queue tagged with the turn's epoch
    that pauses, resumes and flushes. Everything runs on the caller's thread
    in block order but the synthesizer (its worker thread), whose audio each
    block waits for, so a recording gives the same conversation, to the
    sample, on every run (virtual time); the compute each answer took is
    measured on the wall clock and reported beside it. The answer streams:
    the LM writes its first words at the block that ends the turn, the
    synthesizer speaks them while the LM writes on (a word or more a block).

    The clock: block k holds capture samples [160 k, 160 k + 160); what
    st_agent_process() returns for it is played during block k + 1 (one
    block of output latency, counted in every latency). */

#define ST_AGENT_BLOCK 160

typedef enum {
    ST_AGENT_EV_STATE = 1,     /* the turn controller changed state (from, to) */
    ST_AGENT_EV_ONSET,         /* the VAD: user speech starts (sample: where) */
    ST_AGENT_EV_OFFSET,        /* ... ends */
    ST_AGENT_EV_WORD,          /* the recognizer heard a word (text) */
    ST_AGENT_EV_REQUEST,       /* end of turn: text = the request, ref = end of speech */
    ST_AGENT_EV_ANSWER,        /* the LM wrote the whole answer: text = the answer as
                                  said, compute_ms = decision -> written (wall clock);
                                  before or after SPEAKING (the answer streams) */
    ST_AGENT_EV_SPEAKING,      /* first sample played; ref = end of the request
                                  (0: st_agent_say(), nobody asked); compute_ms =
                                  decision -> first block ready, and its parts
                                  lm_first_ms, lm_piece_ms, tts_first_ms */
    ST_AGENT_EV_PAUSED,        /* barge-in: speaker paused; ref = the user's onset */
    ST_AGENT_EV_RESUMED,       /* it was nothing: speaking on */
    ST_AGENT_EV_INTERRUPTED,   /* barge-in committed: text = what the user heard */
    ST_AGENT_EV_DONE           /* the answer was played to its end */
} st_agent_event_kind;

typedef struct {
    st_agent_event_kind kind;
    uint64_t sample;           /* capture (or play) sample index of the event */
    uint64_t ref;              /* the sample it answers (see the kinds); 0 none */
    st_turn_state from, to;    /* ST_AGENT_EV_STATE */
    const char *text;          /* borrowed for the callback; NULL when none */
    double compute_ms;         /* ANSWER, SPEAKING: wall clock since the decision, ms */
    double lm_first_ms;        /* SPEAKING: decision -> the LM's first token (the
                                  prompt read), wall clock, ms */
    double lm_piece_ms;        /* SPEAKING: decision -> the first words handed to the
                                  synthesizer, ms */
    double tts_first_ms;       /* SPEAKING: those words -> the synthesizer's first
                                  audio, ms */
    const char *refused;       /* ANSWER: the tool call not executed (a number the user
                                  did not say, or unreadable: st_dialogue_grounded), the
                                  answer cut before it; borrowed; NULL when none */
    uint32_t epoch;
} st_agent_event;

typedef void (*st_agent_event_fn)(const st_agent_event *e, void *user_data);

typedef struct {
    const char *asr_model;     /* the recognizer (models/asr.stm); required */
    const char *vad_model;     /* the VAD's learned read-out (models/vad.stm, snn/vad.h);
                                  NULL: the hand-designed one */
    const char *lm_model;      /* the dialogue model (models/dialogue.stnn); NULL: none,
                                  and every answer says the model is missing */
    const char *tts_engine;    /* the agent's voice: "espeak" */
    const char *tts_voice;     /* NULL: the engine's default */
    int tts_rate_wpm;          /* 0: the engine's default */
    double echo_residual_db;   /* the most echo the VAD is told to expect, relative to
                                  the played signal's level (the loudest of its last
                                  120 ms, per mel channel); below it the canceller's
                                  tracked residual is used. -6 dB (a loud room before
                                  the canceller has converged); -200: no echo input.
                                  Besides, an onset while the agent plays counts only
                                  when the cleaned mic is within 25 dB of the played
                                  signal (a double-talk gate; docs/AGENT.md) */
    bool echo_cancel;          /* a speexdsp echo canceller (audio/ st_echo) on the mic,
                                  fed with what the speaker played; true */
    int echo_delay_samples;    /* the device's playback -> capture delay beyond the one
                                  block the agent itself adds (0 on virtual devices) */
    double max_answer_s;       /* longest answer played; 30 s */
    int clock_hour;            /* the LM's time tool: hour 0..23 (-1: local time) */
    int clock_minute;
    bool preempt;              /* the LM reads the words of a pending turn (the user
                                  silent, the controller still waiting) ahead of the
                                  decision; used when the final request is the same
                                  text, dropped if not. Answers are the same either
                                  way; true */
    bool barge_hint;           /* a second, hand-designed VAD read-out whose channels
                                  above the voicing band excite rather than inhibit
                                  (high_band_weight +0.3: a fricative "s" of "stop" is
                                  found before its vowel) pauses the agent while it
                                  speaks (st_turn_hint); the VAD still decides what
                                  counts as speech. true */
    st_turn_params turn;
    st_agent_event_fn on_event;/* may be NULL */
    void *user_data;
} st_agent_params;

/*  espeak default voice, echo canceller on, residual -6 dB, 30 s answers,
    local time, preemptive LM, the turn controller's defaults (barge-in on a
    word that is no backchannel or 0.7 s of speech); asr_model, vad_model
    and lm_model NULL (the caller finds them). */
st_agent_params st_agent_default_params(void);

typedef struct st_agent st_agent;

/*  Loads the models, starts the synthesizer. Owned by the caller. Errors
    (NULL, *err): the model's or the engine's (ST_ERR_NOT_FOUND, ST_ERR_FORMAT,
    ...), ST_ERR_INVALID for a parameter, ST_ERR_NOMEM. */
st_agent *st_agent_new(const st_agent_params *p, int *err);
void st_agent_destroy(st_agent **a_p);

/*  One block: mic[ST_AGENT_BLOCK] in, speaker[ST_AGENT_BLOCK] out (to be
    played next). *epoch (may be NULL) gets the turn of the samples written
    (0: silence). Events go to on_event from inside this call. Answers are
    made here too: at the block that ends a turn the LM's first words and
    the wait for the synthesizer's first audio (~10 ms), then a word or more
    of the LM a block; every block waits for its audio. Call it from the
    agent's thread, never from an audio callback. ST_OK or the LM's or
    synthesizer's error (ST_ERR_TIMEOUT: no audio for 5 s). */
int st_agent_process(st_agent *a, const float *mic, float *speaker, uint32_t *epoch);

/*  The agent says `text` from the next block on, as an answer of a new
    turn (an announcement; also how tests make it talk). ST_ERR_STATE
    unless it is listening; the synthesizer's errors. */
int st_agent_say(st_agent *a, const char *text);

/*  The capture index of the next block. */
uint64_t st_agent_position(const st_agent *a);
st_turn_state st_agent_state(const st_agent *a);

/*  The conversation so far, as the agent remembers it: entry i (oldest
    first), false past the last. An interrupted answer holds only the words
    the speaker actually played. Borrowed until the next st_agent_process(). */
typedef struct {
    bool agent;                /* who: the agent, or the user */
    const char *text;
    uint64_t start, end;       /* capture/play sample indices */
    bool interrupted;          /* an agent answer cut short by the user */
} st_agent_turn;
bool st_agent_history(const st_agent *a, size_t i, st_agent_turn *out);

typedef struct {
    uint64_t answers;          /* answers started */
    uint64_t interruptions;    /* barge-ins committed */
    uint64_t resumes;          /* pauses that were nothing */
    uint64_t dropped_turns;    /* speech without a word */
    uint64_t echo_onsets;      /* VAD onsets over the agent judged its own echo */
    uint64_t stale_samples;    /* samples of an old epoch played after its flush (0) */
    /* CPU time of the caller's thread inside st_agent_process(), s: all of it,
       and its parts (the rest is the turn controller, the speaker queue and
       the double-talk gate) */
    double cpu_total_s, cpu_echo_s, cpu_frontend_s, cpu_vad_s, cpu_asr_s, cpu_lm_s;
    double tts_worker_s;       /* the synthesizer's worker thread, busy time, s */
    uint64_t preempted;        /* prompts the LM read ahead, on a pending turn's words */
    uint64_t preempt_used;     /* ... that were the final request: their work was used */
    uint64_t refused_calls;    /* tool calls not executed: a number the user did not
                                  say (st_dialogue_grounded) or a call the tools cannot
                                  read; the answer ends there (the fallback if empty) */
} st_agent_stats;
void st_agent_get_stats(const st_agent *a, st_agent_stats *out);

/*  The conversation for other processes: a ZeroMQ PUB socket bound to
    `endpoint` ("tcp://127.0.0.1:5599", "ipc:///tmp/turns") on which every
    turn-state change (ST_AGENT_EV_STATE) goes out as a wire-protocol CONTROL
    TURN message (docs/PROTOCOL.md): the header's epoch is the turn, its
    sample_index where the change happened; arg 1 when the agent speaks, else
    0; the text is the new state's name ("listening", "user speaking",
    "thinking", "agent speaking", "both speaking"). Owned by the caller; a
    subscriber that connects late misses what went before (PUB). Errors:
    ST_ERR_IO naming the endpoint, ST_ERR_INVALID, ST_ERR_NOMEM. */
typedef struct st_agent_pub st_agent_pub;
st_agent_pub *st_agent_pub_new(const char *endpoint, int *err);
/*  Publishes e when it is a state change (other events: nothing). Never
    waits: a subscriber too slow to keep up loses messages (the header's seq
    shows the gap). Call it from the agent's event callback. */
int st_agent_pub_event(st_agent_pub *p, const st_agent_event *e);
uint64_t st_agent_pub_sent(const st_agent_pub *p);
void st_agent_pub_destroy(st_agent_pub **p_p);

/* ======================================================================== */
/*  Recordings (pipeline/stage_recorder.c): every message of a run.          */
/* ======================================================================== */

#define ST_REC_MAGIC "STKREC01"     /* the file's first 8 bytes */

typedef struct {
    uint64_t t_ns;                  /* when the recorder received it */
    bool from_bus;
    st_wire_msg m;                  /* decoded; views valid until the next read */
} st_rec_entry;

typedef struct st_rec_reader st_rec_reader;
st_rec_reader *st_rec_open(const char *path, int *err);
/*  ST_OK, ST_ERR_END at the end, ST_ERR_FORMAT for a damaged record (the
    message says where; reading stops). */
int st_rec_read(st_rec_reader *r, st_rec_entry *e);
void st_rec_close(st_rec_reader **r_p);

/* ======================================================================== */
/*  Security (pipeline/security.c, docs/SECURITY.md): CurveZMQ keys, the     */
/*  authenticator that refuses unknown peers, owner-only ipc sockets.        */
/* ======================================================================== */

#define ST_CURVE_KEY_Z85 40         /* characters of a Z85-encoded 32-byte key */

typedef struct {
    char public_z85[ST_CURVE_KEY_Z85 + 1];
    char secret_z85[ST_CURVE_KEY_Z85 + 1]; /* empty when only the public key is known */
} st_curve_keys;

/*  A new key pair (zmq_curve_keypair). ST_ERR_UNSUPPORTED when libzmq was
    built without CURVE. */
int st_curve_keygen(st_curve_keys *out);

/*  Writes the pair to `path` (created with mode 0600, never over an
    existing file: ST_ERR_INVALID) and the public key alone to
    `path`.pub (0644), the file to hand to peers. ST_ERR_IO naming the path. */
int st_curve_keys_write(const char *path, const st_curve_keys *k);

/*  Reads a key file: a pair (refused, ST_ERR_INVALID, when group or others
    may read it, as ssh does), or a .pub file (secret_z85 left empty).
    ST_ERR_NOT_FOUND, ST_ERR_FORMAT ("FILE:LINE: ..."). */
int st_curve_keys_read(const char *path, st_curve_keys *out);

/*  A public key given as 40 Z85 characters or as the path of a key file.
    ST_ERR_FORMAT / errors of st_curve_keys_read. */
int st_curve_public_parse(const char *text, char out[ST_CURVE_KEY_Z85 + 1]);

/*  The authenticator of one ZeroMQ context: a ZAP handler thread that
    admits a CURVE client only when its public key is on the list. Owned by
    the caller; destroy it before terminating the context. The list is
    copied. ST_ERR_IO when the handler cannot bind (one per context). */
typedef struct st_sec_auth st_sec_auth;
st_sec_auth *st_sec_auth_new(void *zctx, const char *const *allowed_z85, size_t n, int *err);
void st_sec_auth_destroy(st_sec_auth **self_p);
/*  A list of its own for the listeners whose ZAP domain is `domain` (a
    stage's input: "spiketalk/NAME"); other domains get the list given to
    st_sec_auth_new. Any thread. */
int st_sec_auth_domain(st_sec_auth *a, const char *domain, const char *const *allowed_z85,
                       size_t n);
/*  Clients refused and admitted so far (any thread). */
uint64_t st_sec_auth_refused(const st_sec_auth *self);
uint64_t st_sec_auth_admitted(const st_sec_auth *self);

/*  Socket options, before bind / connect. server: CURVE server with our
    secret key, checked by the context's authenticator. client: CURVE client
    with our pair, trusting only `server_public_z85`. ST_ERR_INVALID for a
    key that is not 40 Z85 characters or a pair without its secret. */
int st_sec_curve_server(void *sock, const st_curve_keys *own);
int st_sec_curve_client(void *sock, const st_curve_keys *own, const char *server_public_z85);

/*  After binding an ipc:// endpoint: makes the socket file owner-only
    (0600). Other transports: nothing. ST_ERR_IO naming the path. */
int st_sec_ipc_restrict(const char *endpoint);

/*  What the configuration (`key`, `accept`, `insecure`; docs/PROTOCOL.md
    section 6) resolves for one socket owner (a stage, the supervisor): its
    key file (the secret is read when the sockets are made), the server key
    each of its tcp connections trusts, and the public keys its tcp
    listeners admit. Only tcp endpoints use CURVE; inproc and ipc stay plain. */
#define ST_SEC_MAX_ACCEPT 48
typedef struct st_sec_stage {
    bool curve;                                   /* false: plain tcp (insecure = yes) */
    char key_file[256];                           /* our pair; "" = none named */
    char key_where[320];                          /* "FILE:LINE: [SECTION] key" for messages */
    char public_z85[ST_CURVE_KEY_Z85 + 1];
    char server_z85[ST_STAGE_MAX_OUTPUTS][ST_CURVE_KEY_Z85 + 1]; /* per output */
    char supervisor_z85[ST_CURVE_KEY_Z85 + 1];    /* the bus and the report socket */
    int n_accept;
    char accept[ST_SEC_MAX_ACCEPT][ST_CURVE_KEY_Z85 + 1];
} st_sec_stage;

/*  Reads the pair named by sec->key_file; errors name the configuration
    line and the key file (missing, unreadable, readable by others). */
int st_sec_stage_keys(const st_sec_stage *sec, st_curve_keys *own);

/*  Starts the authenticator of `zctx` admitting sec->accept (for a process
    whose tcp listeners belong to one owner: `spiketalk stage`). */
st_sec_auth *st_sec_stage_auth(void *zctx, const st_sec_stage *sec, int *err);

/*  The supervisor's side: NULL when the pipeline's tcp sockets are plain
    (no tcp, or insecure = yes). Its accept list admits every key the
    configuration names. Borrowed from c. */
const st_sec_stage *st_pipe_config_security(const st_pipe_config *c);

/*  Whether tcp sockets are plain because of `insecure = yes` (warn). */
bool st_pipe_config_insecure_tcp(const st_pipe_config *c);

#ifdef __cplusplus
}
#endif
#endif
