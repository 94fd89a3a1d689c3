/*  fuzz/corpus.c - writes the seed corpora of the fuzz targets
    (fuzz/corpus/NAME/) with the library's own writers, so each seed is
    what the real writer produces: `make fuzz-corpus` (then commit the
    files). Small on purpose (a few KB each): libFuzzer mutates them.

    Touches: the folder given as its argument (default fuzz/corpus), and
    nothing else. The same bytes on every run, but for the Ogg file (libogg
    draws its stream serial number at random).
*/
#include "audio/audio.h"
#include "pipeline/pipeline.h"
#include "snn/lm.h"
#include "snn/snn.h"

#include <errno.h>
#include <math.h>
#include <sndfile.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char *root = "fuzz/corpus";

static void die(const char *what)
{
    fprintf(stderr, "fuzz/corpus: %s: %s\n", what, st_errmsg());
    exit(1);
}

static void put(const char *dir, const char *name, const void *data, size_t len)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", root, dir);
    if (mkdir(path, 0755) && errno != EEXIST)
        die(path);
    snprintf(path, sizeof path, "%s/%s/%s", root, dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, len, f) != len || fclose(f))
        die(path);
}

/* ---- wire: 2 selector bytes (two frames, header of 296 bytes), header, payload ---- */

static void wire_seed(const char *name, uint8_t type, const void *payload, long len)
{
    if (len < 0)
        die(name);
    st_wire_header h;
    st_wire_header_init(&h, type, 1);
    h.hops[0].sent_ns = 1000; /* not the clock: the same bytes on every run */
    h.sample_index = 16000;
    h.epoch = 2;
    st_wire_stamp(&h, 2, 1000, 50);
    h.payload_bytes = (uint32_t)len;
    unsigned char buf[2 + ST_WIRE_HEADER_BYTES + 4096];
    buf[0] = 5, buf[1] = 0x28; /* fuzz_wire.c: 2 frames, split at 296 */
    st_wire_header_encode(&h, buf + 2);
    memcpy(buf + 2 + ST_WIRE_HEADER_BYTES, payload, (size_t)len);
    put("wire", name, buf, 2 + ST_WIRE_HEADER_BYTES + (size_t)len);
}

static void wire(void)
{
    unsigned char p[4096];
    float x[16];
    for (int i = 0; i < 16; i++)
        x[i] = sinf((float)i);
    wire_seed("pcm_f32", ST_MSG_PCM, p, st_wire_pcm_encode(p, sizeof p, 16000, ST_PCM_F32, x, 16));
    wire_seed("pcm_s16", ST_MSG_PCM, p, st_wire_pcm_encode(p, sizeof p, 48000, ST_PCM_S16, x, 16));
    st_wire_spike ev[3] = {{0, 1}, {10, 5}, {250, 39}};
    wire_seed("spikes", ST_MSG_SPIKES, p, st_wire_spikes_encode(p, sizeof p, 40, ev, 3));
    st_wire_word w[2] = {{0, 8000, 0.9f, 5, "hello"}, {8000, 16000, 0.5f, 5, "world"}};
    wire_seed("words", ST_MSG_WORDS, p, st_wire_words_encode(p, sizeof p, ST_WORDS_FINAL, w, 2));
    wire_seed("text", ST_MSG_TEXT, p, st_wire_text_encode(p, sizeof p, ST_TEXT_END, "hi there", 8));
    wire_seed("control", ST_MSG_CONTROL, p,
              st_wire_control_encode(p, sizeof p, ST_CTL_READY, 1, 3, "vad"));
    st_wire_metric m[2] = {{"latency_us", 1234.5}, {"shed", 0}};
    wire_seed("metrics", ST_MSG_METRICS, p, st_wire_metrics_encode(p, sizeof p, 3, m, 2));
}

/* ---- recordings: the recorder's layout (docs/PROTOCOL.md section 7) ---- */

static size_t rec_record(unsigned char *out, uint8_t plane, uint8_t type, const void *payload,
                         long len)
{
    st_wire_header h;
    st_wire_header_init(&h, type, 1);
    h.hops[0].sent_ns = 1000;
    h.payload_bytes = (uint32_t)len;
    uint64_t t = 123456789;
    memcpy(out, &t, 8);
    out[8] = plane, out[9] = out[10] = out[11] = 0;
    uint32_t hb = ST_WIRE_HEADER_BYTES, pb = (uint32_t)len;
    memcpy(out + 12, &hb, 4);
    memcpy(out + 16, &pb, 4);
    st_wire_header_encode(&h, out + 20);
    memcpy(out + 20 + ST_WIRE_HEADER_BYTES, payload, (size_t)len);
    return 20 + ST_WIRE_HEADER_BYTES + (size_t)len;
}

static void recording(void)
{
    unsigned char buf[8192], p[1024];
    size_t n = 8;
    memcpy(buf, ST_REC_MAGIC, 8);
    float x[8] = {0, 0.1f, 0.2f, 0.3f, 0.2f, 0.1f, 0, -0.1f};
    n += rec_record(buf + n, 0, ST_MSG_PCM, p, st_wire_pcm_encode(p, sizeof p, 16000, ST_PCM_F32, x, 8));
    n += rec_record(buf + n, 1, ST_MSG_CONTROL, p,
                    st_wire_control_encode(p, sizeof p, ST_CTL_START, 0, 0, NULL));
    n += rec_record(buf + n, 0, ST_MSG_TEXT, p, st_wire_text_encode(p, sizeof p, 0, "ok", 2));
    put("recording", "three", buf, n);
    put("recording", "empty", buf, 8);
}

/* ---- model: nets of every node kind, a tensor file of every dtype, a tiny LM ---- */

static void save_net(st_snn_net *net, const char *name)
{
    if (st_snn_net_finish(net))
        die(name);
    void *buf;
    size_t len;
    if (st_snn_net_save_mem(net, &buf, &len))
        die(name);
    put("model", name, buf, len);
    free(buf);
    st_snn_net_destroy(&net);
}

static void model(void)
{
    int err;
    float w[4 * 3] = {1.5f, 0, 0, 0, 1.5f, 0, 0, 0, 1.5f, 0.5f, 0.5f, 0.5f}, b[4] = {0, .1f, 0, 0};
    st_snn_neuron_params lif = st_snn_neuron_default_params(ST_SNN_LIF);

    st_snn_net *net = st_snn_net_new(&err);
    int in = st_snn_net_add_input(net, "in", 3);
    int fc = st_snn_net_add_dense(net, "fc", 4, 3, w, b);
    int pop = st_snn_net_add_neurons(net, "lif", &lif, 4);
    int out = st_snn_net_add_output(net, "out", 4);
    st_snn_net_connect(net, in, fc), st_snn_net_connect(net, fc, pop);
    st_snn_net_connect(net, pop, out);
    save_net(net, "dense_lif.stm");

    net = st_snn_net_new(&err);
    uint32_t row_ptr[4] = {0, 1, 2, 4}, col[4] = {0, 1, 0, 1}, steps[3] = {0, 1, 3};
    float val[4] = {1, -1, .5f, .5f}, s[3] = {2, 2, 2}, th[3] = {.5f, .5f, .5f};
    in = st_snn_net_add_input(net, "in", 2);
    int sp = st_snn_net_add_sparse(net, "sp", 3, 2, row_ptr, col, val, NULL);
    int sc = st_snn_net_add_scale(net, "sc", 3, s);
    int dl = st_snn_net_add_delay(net, "dl", 3, steps);
    int tq = st_snn_net_add_threshold(net, "th", 3, th);
    st_snn_net_connect(net, in, sp), st_snn_net_connect(net, sp, sc);
    st_snn_net_connect(net, sc, dl), st_snn_net_connect(net, dl, tq);
    st_snn_net_connect(net, tq, sp);
    save_net(net, "sparse_delay_loop.stm");

    net = st_snn_net_new(&err);
    in = st_snn_net_add_input(net, "img", 2 * 4 * 4);
    int pool = st_snn_net_add_pool2d(net, "pool", 2, 4, 4, 2, 2, 2, 2, 0, 0, true);
    st_snn_neuron_params iaf = st_snn_neuron_default_params(ST_SNN_LIFBOX);
    pop = st_snn_net_add_neurons(net, "box", &iaf, 2 * 2 * 2);
    st_snn_net_connect(net, in, pool), st_snn_net_connect(net, pool, pop);
    save_net(net, "pool.stm");

    st_tensor_file *f = st_tensor_file_new("fuzz", &err);
    uint64_t d2[2] = {2, 3}, d1[1] = {3};
    double f64[3] = {1, 2, 3};
    int32_t i32[6] = {-1, 0, 1, 2, 3, 4};
    int64_t i64[3] = {-5, 0, 5};
    st_tensor_file_add(f, "w", ST_DTYPE_F32, 2, d2, w);
    st_tensor_file_add(f, "d", ST_DTYPE_F64, 1, d1, f64);
    st_tensor_file_add(f, "i", ST_DTYPE_I32, 2, d2, i32);
    st_tensor_file_add(f, "u", ST_DTYPE_U32, 1, d1, col);
    st_tensor_file_add(f, "l", ST_DTYPE_I64, 1, d1, i64);
    st_tensor_file_add(f, "scalar", ST_DTYPE_F32, 0, NULL, w);
    st_tensor_file_add_string(f, "text", "abc");
    void *buf;
    size_t len;
    if (!f || st_tensor_file_save_mem(f, &buf, &len))
        die("tensors.stm");
    put("model", "tensors.stm", buf, len);
    free(buf);
    st_tensor_file_destroy(&f);

    st_lm_config cfg = st_lm_default_config();
    cfg.n_layer = 1, cfg.n_embd = 4, cfg.vocab = 6, cfg.n_ffn = 8;
    st_lm_model *lm = st_lm_model_new(&cfg, &err);
    if (!lm)
        die("lm");
    st_lm_model_randomize(lm, 1, 1.0f);
    char path[512];
    snprintf(path, sizeof path, "%s/model/lm_tiny.stnn", root);
    if (st_lm_model_save(lm, path))
        die(path);
    snprintf(path, sizeof path, "%s/model/lm_tiny_reference.bin", root);
    if (st_lm_model_save_reference(lm, path))
        die(path);
    st_lm_model_destroy(&lm);
}

/* ---- NIR: programs for fuzz_nir.c's builder (see take() there) ---- */

static void nir(void)
{
    /* Input[3] -> Affine 2x3 -> LIF[2] -> Output[2]. Values: 0x80,k = k;
       0x80|m,0 = m/1000; 124 = 3. */
    static const uint8_t lif[] = {
        0,    /* norse, auto reset, dt 1e-4 */
        1,    /* version 1.0.0 */
        3,    /* 4 nodes */
        0, 0, 1, 13, 1, 1, 124,                     /* input: Input, shape [1] = 3 */
        2, 2, 2, 0, 2, 2, 3, 0x80, 1, 1, 1, 2, 0x80, 0, /* a: Affine, weight [2,3] = 1, bias [2] = 0 */
        6, 6, 5,                                    /* lif: LIF, 5 params */
        2, 1, 2, 0x8a, 0,                           /* tau [2] = 0.01 */
        3, 0, 0x80, 1,                              /* r = 1 */
        4, 0, 0x80, 0,                              /* v_leak = 0 */
        5, 0, 0x80, 1,                              /* v_threshold = 1 */
        6, 0, 0x80, 0,                              /* v_reset = 0 */
        1, 1, 1, 13, 1, 1, 0x80, 2,                 /* output: Output, shape [1] = 2 */
        3, 0, 2, 2, 6, 6, 1,                        /* edges: input-a, a-lif, lif-output */
    };
    put("nir", "affine_lif", lif, sizeof lif);
    uint8_t rock[sizeof lif];
    memcpy(rock, lif, sizeof lif);
    rock[0] = 2 | 0x80; /* rockpool, dt 1e-3 */
    put("nir", "affine_lif_rockpool", rock, sizeof rock);
    /* Input[2] -> Scale -> Delay -> Threshold -> Output, and a nested graph g. */
    static const uint8_t chain[] = {
        1, 1, 5,
        0, 0, 1, 13, 1, 1, 0x80, 2,                  /* input: shape [1] = 2 */
        2, 4, 1, 10, 1, 2, 0x80, 3,                  /* a: Scale, scale [2] = 3 */
        3, 12, 1, 12, 0, 0x81, 0,                    /* b: Delay, delay = 0.001 */
        4, 11, 1, 11, 1, 2, 0x80, 1,                 /* c: Threshold, threshold [2] = 1 */
        5, 18,                                       /* g: NIRGraph */
        1, 0, 0, 1, 13, 1, 1, 0x80, 2, 1, 1, 1, 13, 1, 1, 0x80, 2, 1, 0, 1, /* input->output */
        1, 1, 1, 13, 1, 1, 0x80, 2,                  /* output: shape [1] = 2 */
        5, 0, 2, 2, 3, 3, 4, 4, 5, 5, 1,             /* input-a-b-c-g-output */
    };
    put("nir", "chain_nested", chain, sizeof chain);
}

/* ---- audio: libsndfile's writers ---- */

static void sound(const char *name, int format, int channels, int rate, int frames)
{
    char path[512];
    snprintf(path, sizeof path, "%s/audio", root);
    if (mkdir(path, 0755) && errno != EEXIST)
        die(path);
    snprintf(path, sizeof path, "%s/audio/%s", root, name);
    SF_INFO info = {.samplerate = rate, .channels = channels, .format = format};
    SNDFILE *sf = sf_open(path, SFM_WRITE, &info);
    if (!sf)
        die(path);
    sf_command(sf, SFC_SET_ADD_PEAK_CHUNK, NULL, SF_FALSE); /* it holds the time */
    float x[2 * 400];
    for (int i = 0; i < frames * channels; i++)
        x[i] = 0.3f * sinf(0.07f * (float)i);
    sf_writef_float(sf, x, frames);
    sf_close(sf);
}

static void audio(void)
{
    sound("pcm16.wav", SF_FORMAT_WAV | SF_FORMAT_PCM_16, 1, 16000, 200);
    sound("float_stereo.wav", SF_FORMAT_WAV | SF_FORMAT_FLOAT, 2, 48000, 100);
    sound("pcm24.aiff", SF_FORMAT_AIFF | SF_FORMAT_PCM_24, 1, 8000, 100);
    sound("mono.flac", SF_FORMAT_FLAC | SF_FORMAT_PCM_16, 1, 16000, 400);
    sound("mono.ogg", SF_FORMAT_OGG | SF_FORMAT_VORBIS, 1, 16000, 400);
}

/* ---- configuration ---- */

static void config(void)
{
    const char *d = st_pipe_config_default_text();
    put("config", "default.ini", d, strlen(d));
    static const char procs[] =
        "[pipeline]\ntransport = tcp\nprocesses = yes\nbase_port = 5600\nhwm = 16\n\n"
        "[stage.mic]\ntype = audio_source\ndevice = virtual\ninput = speech.wav\nout = to16k\n\n"
        "[stage.to16k]\ntype = resampler\nrate = 16000\nout = polish@ipc, tape\n\n"
        "[stage.polish]\ntype = external\nout = speaker\n\n"
        "[stage.tape]\ntype = recorder\nfile = run.rec\n\n"
        "[stage.speaker]\ntype = audio_sink\ndevice = file\noutput = heard.wav\n";
    put("config", "processes.ini", procs, sizeof procs - 1);
    static const char fused[] =
        "[pipeline]\nname = fused\n"
        "[stage.src]\ntype = text_source\ntext = hello\nout = p1\n"
        "[stage.p1]\ntype = passthrough\nout = p2\n"
        "[stage.p2]\ntype = passthrough\nthread = p1\nout = p3\n"
        "[stage.p3]\ntype = passthrough\nthread = p1\nout = sink\n"
        "[stage.sink]\ntype = text_sink\n";
    put("config", "fused.ini", fused, sizeof fused - 1);
    static const char rec[] = "[pipeline]\nrecord = all.rec\ntransport = ipc\n"
                              "[stage.src]\ntype = text_source\ntext = hi\nout = sink@tcp\n"
                              "[stage.sink]\ntype = text_sink\n";
    put("config", "record.ini", rec, sizeof rec - 1);
    static const char set[] = "[stage.a]\ntype = passthrough\nout = b\n[stage.b]\ntype = "
                              "passthrough\n\0a.hwm=8";
    put("config", "with_set.ini", set, sizeof set - 1);
}

/* ---- tokenizer: mode byte, vocabulary, NUL, text ---- */

static void tokenizer(void)
{
    static const char chars[] = "\x01hel o\nwr\nd\0hello world";
    put("tokenizer", "chars", chars, sizeof chars - 1);
    static const char pieces[] = "\x02the\nhe\nt\nh\ne\n \ncat\nc\na\0the cat hat";
    put("tokenizer", "pieces", pieces, sizeof pieces - 1);
    static const char utf8[] = "\x41h\xc3\xa9llo w\xc3\xb6rld \xe2\x82\xac\xf0\x9f\x99\x82\0"
                               "\xe2\x82\xac h\xc3\xa9 \xff\xfe bad";
    put("tokenizer", "utf8", utf8, sizeof utf8 - 1);
}

/* ---- dialogue: user text, NUL, tool call ---- */

static void dialogue(void)
{
    static const struct {
        const char *name, *user, *call;
    } seeds[] = {
        {"calc", "What's 7 * 6?", "calc seven times six"},
        {"timer", "set a timer for half an hour", "timer thirty minutes"},
        {"guess", "minutes", "timer seven minutes"},
        {"big", "one hundred and five minus a thousand", "calc one hundred and five minus one thousand"},
        {"time", "what time is it", "time"},
    };
    for (size_t i = 0; i < sizeof seeds / sizeof *seeds; i++) {
        char buf[256];
        size_t u = strlen(seeds[i].user), c = strlen(seeds[i].call);
        memcpy(buf, seeds[i].user, u + 1); /* with its NUL: the separator */
        memcpy(buf + u + 1, seeds[i].call, c);
        put("dialogue", seeds[i].name, buf, u + 1 + c);
    }
}

/* ---- scenarios: the project's own (the .ini files of scenarios/), when present ---- */

static void scenario(void)
{
    static const char *const names[] = {"arithmetic.ini", "backchannels.ini", "commands.ini",
                                        "echo_only.ini", "human.ini", "interruptions.ini"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        char path[256];
        snprintf(path, sizeof path, "scenarios/%s", names[i]);
        FILE *f = fopen(path, "rb");
        if (!f)
            continue;
        char buf[16384];
        size_t n = fread(buf, 1, sizeof buf, f);
        fclose(f);
        put("scenario", names[i], buf, n);
    }
}

int main(int argc, char **argv)
{
    if (argc > 1)
        root = argv[1];
    if (mkdir(root, 0755) && errno != EEXIST)
        die(root);
    wire();
    recording();
    model();
    nir();
    audio();
    config();
    tokenizer();
    dialogue();
    scenario();
    return 0;
}
