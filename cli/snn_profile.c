/*  cli/snn_profile.c - `spiketalk snn profile`: what a network does per
    step, node by node - neuron updates, synaptic operations (spike-driven
    accumulates), multiply-accumulates on real values, spikes and spike
    rate - counted by the engine itself while it runs, and what that work
    would cost in energy on neuromorphic hardware and as dense arithmetic,
    estimated from published per-operation figures.

    The network is one of the two reference networks (--net cuba, --net
    stream; snn/bench_nets.c), a model file (.stm, or .nir with the
    importer's defaults) or a recognizer's net (snn/asr.h: stepped once a
    frame on the features of real audio, --audio, so that the counts are
    per second of speech), else stepped on generated input: each input element
    spikes with probability --rate a step, or with --input dense takes a
    real value U(0, 2 rate) (the same mean). The dense count is measured too:
    one step of the same network on the multiply-accumulate path
    (ST_SNN_PATH_DENSE) counts the MACs a non-event implementation does.
*/
#include "cli.h"

#include "audio/audio.h"
#include "snn/asr.h"
#include "snn/snn.h"

#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define CMD "snn profile"

/* Published energy per operation. Estimates for a comparison of orders of
   magnitude, not measurements of this machine. */
#define LOIHI_SYN_OP_PJ 23.6      /* per synaptic spike op (minimum) */
#define LOIHI_NEURON_PJ 52.0      /* per active neuron update */
#define TRUENORTH_SYN_EVENT_PJ 26.0 /* per synaptic event */
#define FP32_MULT_PJ 3.7          /* 32-bit float multiply, 45 nm */
#define FP32_ADD_PJ 0.9           /* 32-bit float add, 45 nm */
#define FP32_MAC_PJ (FP32_MULT_PJ + FP32_ADD_PJ)
#define SRC_LOIHI "Davies et al., \"Loihi: a neuromorphic manycore processor with on-chip " \
                  "learning\", IEEE Micro 38(1), 2018, Table 2"
#define SRC_TRUENORTH "Merolla et al., \"A million spiking-neuron integrated circuit with a " \
                      "scalable communication network and interface\", Science 345(6197), 2014"
#define SRC_HOROWITZ "Horowitz, \"Computing's energy problem (and what we can do about it)\", " \
                     "ISSCC 2014: 45 nm, 0.9 V"

typedef struct {
    const char *net_name;  /* cuba | stream, or NULL for a file */
    const char *path;
    const char *audio;     /* a recognizer's input: this recording */
    long steps;            /* -1: the net's default */
    double rate;
    bool dense_input;
    bool json;
    unsigned long seed;
} options;

static void usage(FILE *out)
{
    fprintf(out,
            "usage: spiketalk snn profile [--net cuba|stream | MODEL] [--steps N] [--rate R]\n"
            "                             [--input spikes|dense] [--seed S] [--json]\n"
            "\n"
            "Runs a network for N steps on generated input and prints, per node and in\n"
            "total, the work the engine counted: neuron updates, synaptic operations\n"
            "(spike-driven accumulates: one weight added per spike and target), dense\n"
            "multiply-accumulates (real-valued inputs), spikes and the spike rate; then an\n"
            "energy ESTIMATE of that work from published per-operation figures - the\n"
            "synaptic operations and neuron updates on neuromorphic chips next to the same\n"
            "network's dense multiply-accumulates as 32-bit float arithmetic - each with\n"
            "its source. Estimates from per-op figures, not measurements.\n"
            "\n"
            "networks:\n"
            "  --net stream   Linear(256->512) + LIF + Linear(512->256) + LIF (the\n"
            "                 default; 1000 steps of 1 ms)\n"
            "  --net cuba     Vogels & Abbott's CUBA network, Brian2's example: 4000\n"
            "                 neurons, 2 %% connectivity, no input (10000 steps of 0.1 ms)\n"
            "  MODEL          a model file: .stm (spiketalk) or .nir (NIR, default import\n"
            "                 parameters: see spiketalk snn run --help)\n"
            "  RECOGNIZER     models/asr_stream.stm, models/asr.stm: its net stepped once a\n"
            "                 10 ms frame on the normalised log-mel features of --audio\n"
            "                 (default the shared data's jfk.flac), as the streaming\n"
            "                 recognizer runs it; adds the work per second of audio\n"
            "\n"
            "options:\n"
            "  --steps N          time steps, 1 .. 10^7\n"
            "  --rate R           input spike probability a step, 0 .. 1 (default 0.1)\n"
            "  --input spikes     inputs 0/1 with probability R (the default)\n"
            "  --input dense      inputs real, U(0, 2R): the same mean drive, no events\n"
            "  --seed S           input random seed (default 1)\n"
            "  --audio FILE       a recognizer's input recording (any rate; resampled)\n"
            "  --json             one JSON object instead of the table\n"
            "\n"
            "examples:\n"
            "  spiketalk snn profile --net stream --rate 0.05\n"
            "  spiketalk snn profile --net cuba --json\n"
            "  spiketalk snn profile models/vad.stm --steps 500\n"
            "  spiketalk snn profile models/asr_stream.stm --audio speech.wav\n");
}

static const char *kind_name(st_snn_node_kind k)
{
    static const char *names[] = {"input",   "output",  "dense",     "sparse", "conv",
                                  "scale",   "neurons", "threshold", "delay"};
    return (unsigned)k < sizeof names / sizeof names[0] ? names[k] : "?";
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

/* xorshift64*: the input generator */
static double next_uniform(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return (double)((*s * 0x2545f4914f6cdd1dULL) >> 11) * (1.0 / 9007199254740992.0);
}

static void fill_input(float *x, size_t n, const options *o, uint64_t *s)
{
    for (size_t k = 0; k < n; k++) {
        const double u = next_uniform(s);
        x[k] = o->dense_input ? (float)(2 * o->rate * u) : (u < o->rate ? 1.0f : 0.0f);
    }
}

static void json_str(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fprintf(out, "\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            fprintf(out, "\\u%04x", *s);
        else
            fputc(*s, out);
    }
    fputc('"', out);
}

/* Energy (pJ) of counts over `steps` steps. */
typedef struct {
    double loihi, truenorth, dense_fp32;
} energy;

/* A recognizer's input: the front end's frames of o->audio (default: the
   shared data's jfk.flac), st_asr_input_len each, normalised as the net takes them
   (st_asr_normalise_clip); NULL after an error printed. */
static float *recognizer_input(const st_asr *asr, options *o, char *buf, size_t cap,
                               size_t *n_frames)
{
    if (!o->audio) {
        const char *d = getenv("ST_SHARED_DATA");
        snprintf(buf, cap, "%s/speech/clips/jfk.flac", d && *d ? d : "../shared/data");
        FILE *f = fopen(buf, "rb");
        if (!f) {
            cli_fail(CMD, "a recognizer runs on speech: give --audio FILE (%s is not here)", buf);
            return NULL;
        }
        fclose(f);
        o->audio = buf;
    }
    float *pcm = NULL, *feat = NULL;
    size_t n = 0;
    int err = cli_asr_read16k(o->audio, &pcm, &n);
    if (err) {
        cli_fail_lib(CMD, err, o->audio);
        return NULL;
    }
    st_frontend *fe = cli_asr_frontend(asr, &err);
    const size_t nf = st_asr_features(asr), cap_frames = fe ? n / st_frontend_hop_samples(fe) + 2 : 0;
    feat = fe ? malloc(cap_frames * nf * sizeof *feat) : NULL;
    size_t used = 0;
    *n_frames = 0;
    if (!fe || !feat || (err = st_frontend_process(fe, pcm, n, feat, NULL, cap_frames, &used,
                                                   n_frames)) || !*n_frames) {
        cli_fail(CMD, "%s: no frames of features (%s)", o->audio,
                 err ? st_errmsg() : "too short");
        free(feat);
        feat = NULL;
    } else { /* as the net takes them: every view of every frame */
        float *x = malloc(*n_frames * st_asr_input_len(asr) * sizeof *x);
        if (x)
            st_asr_normalise_clip(asr, feat, *n_frames, x);
        else
            cli_fail(CMD, "out of memory");
        free(feat);
        feat = x;
    }
    st_frontend_destroy(&fe);
    free(pcm);
    return feat;
}

static energy estimate(const st_snn_counters *c, double dense_macs)
{
    return (energy){
        .loihi = (double)c->syn_ops * LOIHI_SYN_OP_PJ +
                 (double)c->neuron_updates * LOIHI_NEURON_PJ +
                 (double)c->dense_macs * FP32_MAC_PJ,
        .truenorth = (double)c->syn_ops * TRUENORTH_SYN_EVENT_PJ,
        .dense_fp32 = dense_macs * FP32_MAC_PJ,
    };
}

int st_cmd_snn_profile(int argc, char **argv)
{
    static const struct option opts[] = {{"net", required_argument, 0, 'N'},
                                         {"steps", required_argument, 0, 's'},
                                         {"rate", required_argument, 0, 'r'},
                                         {"input", required_argument, 0, 'i'},
                                         {"seed", required_argument, 0, 'S'},
                                         {"audio", required_argument, 0, 'A'},
                                         {"json", no_argument, 0, 'J'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    options o = {.steps = -1, .rate = 0.1, .seed = 1};
    int c;
    long lv;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'N':
            if (strcmp(optarg, "cuba") && strcmp(optarg, "stream")) {
                cli_fail(CMD, "--net: no built-in network '%s'; they are cuba and stream "
                              "(or give a model file)", optarg);
                return 2;
            }
            o.net_name = optarg;
            break;
        case 's':
            if (!cli_parse_int(CMD, "--steps", optarg, 1, 10000000, &o.steps))
                return 2;
            break;
        case 'r':
            if (!cli_parse_double(CMD, "--rate", optarg, 0, 1, &o.rate))
                return 2;
            break;
        case 'i':
            if (strcmp(optarg, "spikes") && strcmp(optarg, "dense")) {
                cli_fail(CMD, "--input takes spikes or dense, not '%s'", optarg);
                return 2;
            }
            o.dense_input = !strcmp(optarg, "dense");
            break;
        case 'S':
            if (!cli_parse_int(CMD, "--seed", optarg, 0, 0x7fffffffL, &lv))
                return 2;
            o.seed = (unsigned long)lv;
            break;
        case 'A': o.audio = optarg; break;
        case 'J': o.json = true; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc)
        o.path = argv[optind++];
    if (optind < argc) {
        cli_fail(CMD, "unexpected argument '%s' (see --help)", argv[optind]);
        return 2;
    }
    if (o.path && o.net_name) {
        cli_fail(CMD, "give --net or a model file, not both");
        return 2;
    }
    if (!o.path && !o.net_name)
        o.net_name = "stream";

    int err = ST_OK, rc = 1;
    st_snn_net *owned = NULL;
    st_asr *asr = NULL;
    const st_snn_net *net = NULL;
    st_snn_state *st = NULL, *dense = NULL;
    float *x = NULL, *v0 = NULL, *feat = NULL;
    size_t n_frames = 0;
    st_snn_cuba_params cuba = st_snn_cuba_default_params();
    double dt_s = 0;
    char what[160], audio_buf[4200];
    if (o.path) {
        if (ends_with(o.path, ".nir")) {
            owned = st_snn_net_load_nir(o.path, NULL, &err);
        } else {
            /* a recognizer's file holds its net and more: its kind says which */
            st_tensor_file *tf = st_tensor_file_load(o.path, &err);
            if (tf && !strcmp(st_tensor_file_kind(tf), "asr"))
                asr = st_asr_of_file(tf, &err);
            else if (tf)
                owned = st_snn_net_of_file(tf, &err);
            st_tensor_file_destroy(&tf);
        }
        if (!owned && !asr) {
            cli_fail_lib(CMD, err, o.path);
            goto done;
        }
        snprintf(what, sizeof what, "%s", o.path);
    } else if (!strcmp(o.net_name, "cuba")) {
        owned = st_snn_cuba_net(&cuba, NULL, NULL, 0, &err);
        dt_s = cuba.dt;
        snprintf(what, sizeof what, "cuba (Vogels & Abbott 2005, Brian2's example)");
    } else {
        st_snn_stream_params sp = st_snn_stream_default_params();
        owned = st_snn_stream_net(&sp, &err);
        dt_s = sp.dt;
        snprintf(what, sizeof what, "stream (Linear 256-512 + LIF + Linear 512-256 + LIF)");
    }
    net = owned ? owned : asr ? st_asr_net(asr) : NULL;
    if (!net) {
        cli_fail_lib(CMD, err, "building the network");
        goto done;
    }
    if (o.audio && !asr) {
        cli_fail(CMD, "--audio is a recognizer's input; %s is not a recognizer", what);
        rc = 2;
        goto done;
    }
    if (asr && !(feat = recognizer_input(asr, &o, audio_buf, sizeof audio_buf, &n_frames)))
        goto done;
    if (asr) {
        dt_s = st_asr_frontend(asr)->hop_ms * 1e-3;
        o.steps = (long)n_frames;
        o.dense_input = true; /* features drive the first layer as currents */
        snprintf(what, sizeof what, "%s on %s (%.2f s)", o.path, o.audio,
                 (double)n_frames * dt_s);
    }
    if (o.steps < 0)
        o.steps = o.net_name && !strcmp(o.net_name, "cuba") ? 10000 : 1000;
    if (!(st = st_snn_state_new(net, &err)) || !(dense = st_snn_state_new(net, &err))) {
        cli_fail_lib(CMD, err, "making the network's state");
        goto done;
    }
    const size_t n_in = st_snn_net_input_len(net), n_nodes = st_snn_net_node_count(net);
    x = malloc((n_in ? n_in : 1) * sizeof *x);
    if (!x) {
        cli_fail(CMD, "out of memory");
        goto done;
    }
    if (o.net_name && !strcmp(o.net_name, "cuba")) {
        const int pop = st_snn_net_find(net, "P");
        v0 = malloc(((size_t)cuba.n_exc + cuba.n_inh) * sizeof *v0);
        if (!v0) {
            cli_fail(CMD, "out of memory");
            goto done;
        }
        st_snn_cuba_initial_v(&cuba, v0);
        memcpy(st_snn_state_var(st, pop, ST_SNN_VAR_V), v0,
               ((size_t)cuba.n_exc + cuba.n_inh) * sizeof *v0);
    }

    /* the run, counted by the engine; the input spikes (which the engine
       does not count: it makes none) counted here, after the timing */
    uint64_t seed = 0x9e3779b97f4a7c15ULL ^ (uint64_t)o.seed;
    seed = seed ? seed : 1;
    const uint64_t seed0 = seed;
    const double t0 = st_now_s();
    for (long s = 0; s < o.steps; s++) {
        if (!feat)
            fill_input(x, n_in, &o, &seed);
        st_snn_step(net, st, feat ? feat + (size_t)s * n_in : x);
    }
    const double wall_s = st_now_s() - t0;
    uint64_t input_spikes = 0;
    seed = seed0;
    for (long s = 0; s < o.steps && n_in && !o.dense_input; s++) {
        fill_input(x, n_in, &o, &seed);
        for (size_t k = 0; k < n_in; k++)
            input_spikes += x[k] == 1.0f;
    }
    /* one step on the multiply-accumulate path: the dense count per step
       (it does not depend on the input) */
    st_snn_state_set_path(dense, ST_SNN_PATH_DENSE);
    fill_input(x, n_in, &o, &seed);
    st_snn_step(net, dense, x);

    st_snn_counters total;
    st_snn_state_counters(st, -1, &total);
    st_snn_counters dense_total;
    st_snn_state_counters(dense, -1, &dense_total);
    const double steps = (double)o.steps;
    const energy e = estimate(&total, (double)dense_total.dense_macs * steps);

    if (o.json) {
        printf("{\"network\": ");
        json_str(stdout, what);
        printf(", \"steps\": %ld, \"dt_s\": %.9g, \"input\": \"%s\", \"rate\": %.9g, "
               "\"wall_s\": %.9g, \"kernels\": \"%s\", ",
               o.steps, dt_s, o.dense_input ? "dense" : "spikes", o.rate, wall_s,
               st_snn_kernels());
        if (asr) {
            printf("\"audio\": ");
            json_str(stdout, o.audio);
            printf(", \"audio_s\": %.9g, ", (double)o.steps * dt_s);
        }
        printf("\"nodes\": [");
    } else {
        printf("spiketalk snn profile: %s\n", what);
        char dt_text[48] = "";
        if (dt_s > 0)
            snprintf(dt_text, sizeof dt_text, " of %g ms", 1e3 * dt_s);
        char input[64] = "no input";
        if (asr)
            snprintf(input, sizeof input, "input the audio's normalised log-mel frames");
        else if (n_in)
            snprintf(input, sizeof input, "input %s at rate %.3g",
                     o.dense_input ? "dense U(0, 2R)" : "spikes", o.rate);
        printf("%ld steps%s, %s; %.3f ms wall (%s kernels)\n\n", o.steps, dt_text, input,
               1e3 * wall_s, st_snn_kernels());
        printf("%-12s %-10s %8s %15s %15s %15s %12s %10s %12s\n", "node", "kind", "n",
               "neuron_updates", "syn_ops", "dense_macs", "spikes", "spike_rate",
               "dense_eq_macs");
    }
    for (size_t k = 0; k < n_nodes; k++) {
        st_snn_node_info info;
        st_snn_counters nc, dc;
        st_snn_net_node_info(net, (int)k, &info);
        st_snn_state_counters(st, (int)k, &nc);
        st_snn_state_counters(dense, (int)k, &dc);
        char kind[40];
        if (info.kind == ST_SNN_NODE_NEURONS)
            snprintf(kind, sizeof kind, "%s", st_snn_model_name(info.model));
        else
            snprintf(kind, sizeof kind, "%s", kind_name(info.kind));
        const double dmacs = (double)dc.dense_macs * steps;
        if (info.kind == ST_SNN_NODE_INPUT && n_in && !o.dense_input) {
            /* all inputs share one generator: split by size (one input node
               is the usual case, and then this is exact) */
            nc.spikes = (uint64_t)llround((double)input_spikes * (double)info.n_out / (double)n_in);
            nc.spike_slots = (uint64_t)o.steps * info.n_out;
            nc.spike_rate = (double)nc.spikes / (double)nc.spike_slots;
        }
        if (o.json) {
            const energy ne = estimate(&nc, dmacs);
            printf("%s{\"name\": ", k ? ", " : "");
            json_str(stdout, info.name);
            printf(", \"kind\": \"%s\", \"n_in\": %zu, \"n_out\": %zu, \"n_weights\": %zu, "
                   "\"neuron_updates\": %llu, \"syn_ops\": %llu, \"dense_macs\": %llu, "
                   "\"spikes\": %llu, \"spike_rate\": %.9g, \"dense_equivalent_macs\": %.0f, "
                   "\"loihi_pj\": %.9g, \"truenorth_pj\": %.9g, \"dense_fp32_pj\": %.9g}",
                   kind, info.n_in, info.n_out, info.n_weights,
                   (unsigned long long)nc.neuron_updates, (unsigned long long)nc.syn_ops,
                   (unsigned long long)nc.dense_macs, (unsigned long long)nc.spikes,
                   nc.spike_rate, dmacs, ne.loihi, ne.truenorth, ne.dense_fp32);
        } else {
            char rate[16] = "-";
            if (nc.spike_slots)
                snprintf(rate, sizeof rate, "%.4f", nc.spike_rate);
            printf("%-12.12s %-10s %8zu %15llu %15llu %15llu %12llu %10s %12.0f\n", info.name,
                   kind, info.n_out, (unsigned long long)nc.neuron_updates,
                   (unsigned long long)nc.syn_ops, (unsigned long long)nc.dense_macs,
                   (unsigned long long)nc.spikes, rate, dmacs);
        }
    }
    const double dense_eq = (double)dense_total.dense_macs * steps;
    if (o.json) {
        printf("], \"total\": {\"neuron_updates\": %llu, \"syn_ops\": %llu, \"dense_macs\": %llu, "
               "\"spikes\": %llu, \"spike_rate\": %.9g, \"dense_equivalent_macs\": %.0f}, ",
               (unsigned long long)total.neuron_updates, (unsigned long long)total.syn_ops,
               (unsigned long long)total.dense_macs, (unsigned long long)total.spikes,
               total.spike_rate, dense_eq);
        printf("\"energy\": {\"estimate\": true, \"loihi_pj\": %.9g, \"truenorth_pj\": %.9g, "
               "\"dense_fp32_pj\": %.9g, \"loihi_pj_per_step\": %.9g, "
               "\"dense_fp32_pj_per_step\": %.9g, \"figures\": ["
               "{\"what\": \"Loihi synaptic spike op\", \"pj\": %g, \"source\": ",
               e.loihi, e.truenorth, e.dense_fp32, e.loihi / steps, e.dense_fp32 / steps,
               LOIHI_SYN_OP_PJ);
        json_str(stdout, SRC_LOIHI);
        printf("}, {\"what\": \"Loihi neuron update\", \"pj\": %g, \"source\": ", LOIHI_NEURON_PJ);
        json_str(stdout, SRC_LOIHI);
        printf("}, {\"what\": \"TrueNorth synaptic event\", \"pj\": %g, \"source\": ",
               TRUENORTH_SYN_EVENT_PJ);
        json_str(stdout, SRC_TRUENORTH);
        printf("}, {\"what\": \"32-bit float multiply-accumulate (3.7 mult + 0.9 add)\", "
               "\"pj\": %g, \"source\": ", FP32_MAC_PJ);
        json_str(stdout, SRC_HOROWITZ);
        printf("}]}}\n");
    } else {
        printf("%-12s %-10s %8s %15llu %15llu %15llu %12llu %10.4f %12.0f\n", "total", "", "",
               (unsigned long long)total.neuron_updates, (unsigned long long)total.syn_ops,
               (unsigned long long)total.dense_macs, (unsigned long long)total.spikes,
               total.spike_rate, dense_eq);
        printf("(the input's spikes are not in the total: the network did not make them)\n");
        printf("\nper step: %.1f neuron updates, %.1f synaptic ops, %.1f MACs on real values, "
               "%.2f spikes;\n          a dense (non-event) implementation: %.0f MACs\n",
               (double)total.neuron_updates / steps, (double)total.syn_ops / steps,
               (double)total.dense_macs / steps, (double)total.spikes / steps,
               (double)dense_total.dense_macs);
        if (asr) {
            const double audio_s = steps * dt_s;
            printf("per second of audio (%.0f steps a second): %.0f spikes, %.0f synaptic ops, "
                   "%.0f MACs on real values;\n          a dense implementation: %.0f MACs "
                   "(%.1f x the event-driven operations)\n",
                   1.0 / dt_s, (double)total.spikes / audio_s, (double)total.syn_ops / audio_s,
                   (double)total.dense_macs / audio_s, dense_eq / audio_s,
                   dense_eq / fmax(1.0, (double)total.syn_ops + (double)total.dense_macs));
            if (st_asr_default_pool(asr) != ST_ASR_POOL_CTC)
                printf("          (this model's stream re-runs its last second every 100 ms: "
                       "%d x this work)\n", ST_ASR_WINDOW / ST_ASR_STRIDE);
        }
        printf("\nenergy ESTIMATE per step, from published per-operation figures (not a "
               "measurement):\n");
        printf("  Loihi      %12.4g nJ = %.1f syn ops x %.1f pJ + %.1f neuron updates x %.0f "
               "pJ%s\n",
               e.loihi / steps * 1e-3, (double)total.syn_ops / steps, LOIHI_SYN_OP_PJ,
               (double)total.neuron_updates / steps, LOIHI_NEURON_PJ,
               total.dense_macs ? " + real-valued MACs x 4.6 pJ" : "");
        printf("  TrueNorth  %12.4g nJ = %.1f synaptic events x %.0f pJ (synaptic events only)\n",
               e.truenorth / steps * 1e-3, (double)total.syn_ops / steps, TRUENORTH_SYN_EVENT_PJ);
        printf("  dense fp32 %12.4g nJ = %.0f MACs x %.1f pJ (%.1f pJ mult + %.1f pJ add), "
               "arithmetic only\n",
               e.dense_fp32 / steps * 1e-3, (double)dense_total.dense_macs, FP32_MAC_PJ,
               FP32_MULT_PJ, FP32_ADD_PJ);
        if (e.loihi > 0)
            printf("  dense fp32 / Loihi: %.3g\n", e.dense_fp32 / e.loihi);
        printf("\nsources:\n  Loihi: %s\n  TrueNorth: %s\n  fp32 MAC: %s\n", SRC_LOIHI,
               SRC_TRUENORTH, SRC_HOROWITZ);
        printf("notes: per-op figures times counted operations; they leave out static power,\n"
               "  spike routing between cores and, for the dense figure, every memory access\n"
               "  (which Horowitz shows costs more than the arithmetic). MACs on real-valued\n"
               "  inputs are costed at the fp32 figure on the neuromorphic side too.\n");
    }
    rc = 0;
done:
    st_snn_state_destroy(&st);
    st_snn_state_destroy(&dense);
    st_snn_net_destroy(&owned);
    st_asr_destroy(&asr);
    free(x);
    free(v0);
    free(feat);
    return rc;
}
