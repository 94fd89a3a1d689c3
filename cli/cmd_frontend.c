/*  cli/cmd_frontend.c - `spiketalk features FILE` (the log-mel front end and
    its spike encoders) and `spiketalk vad FILE` (the spiking voice-activity
    detector): thin layers over audio/audio.h's "Front end" section and
    snn/vad.h, for looking at what the first stages of the pipeline make of
    a recording.

    Reads the whole file (any rate libsndfile reads, resampled to 16 kHz)
    and streams it through the front end in 10 ms blocks, as a device would.
*/
#include "cli.h"

#include "audio/audio.h"
#include "snn/vad.h"

#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define RATE ST_PIPELINE_RATE_HZ

/* Reads `path` as 16 kHz mono into *x (caller frees). */
static int load_16k(const char *cmd, const char *path, float **x, size_t *n)
{
    st_audio a = {0};
    int rc = st_audio_read(path, &a);
    if (rc != ST_OK)
        return cli_fail_lib(cmd, rc, "reading the audio");
    if (a.sample_rate_hz == RATE) {
        *x = a.samples;
        *n = a.frames;
        return 0;
    }
    int err;
    st_resampler *r = st_resampler_new(a.sample_rate_hz, RATE, ST_RESAMPLE_MEDIUM, &err);
    if (!r) {
        st_audio_free(&a);
        return cli_fail_lib(cmd, err, "resampling to 16 kHz");
    }
    size_t cap = st_resampler_max_output(r, a.frames) + 8192, used, made = 0, m;
    float *y = malloc(cap * sizeof *y);
    if (!y) {
        st_resampler_destroy(&r);
        st_audio_free(&a);
        return cli_fail(cmd, "out of memory");
    }
    st_resampler_process(r, a.samples, a.frames, y, cap, &used, &made);
    while (st_resampler_flush(r, y + made, cap - made, &m) == ST_OK && m)
        made += m;
    st_resampler_destroy(&r);
    st_audio_free(&a);
    *x = y;
    *n = made;
    return 0;
}

/* Streams x through a new front end in 10 ms blocks; *feat (nf x n_mels)
   and *stamp are the caller's to free. */
static int run_frontend(const char *cmd, const st_frontend_params *fp, const float *x, size_t n,
                        float **feat, uint64_t **stamp, size_t *nf, st_frontend **fe_out)
{
    int err;
    st_frontend *fe = st_frontend_new(fp, &err);
    if (!fe)
        return cli_fail_lib(cmd, err, "front end");
    size_t nm = (size_t)st_frontend_n_mels(fe), maxf = st_frontend_max_frames(fe, n) + 1;
    *feat = malloc(maxf * nm * sizeof **feat);
    *stamp = malloc(maxf * sizeof **stamp);
    if (!*feat || !*stamp) {
        st_frontend_destroy(&fe);
        return cli_fail(cmd, "out of memory for %zu frames", maxf);
    }
    *nf = 0;
    for (size_t at = 0; at < n;) {
        size_t len = n - at < 160 ? n - at : 160, used, made;
        st_frontend_process(fe, x + at, len, *feat + *nf * nm, *stamp + *nf, maxf - *nf, &used,
                            &made);
        at += used;
        *nf += made;
    }
    *fe_out = fe;
    return 0;
}

/* ---- features ---------------------------------------------------------------- */

static void features_usage(FILE *out)
{
    fprintf(out,
            "usage: spiketalk features FILE [--encoder sod|lif|rate] [--csv] [--hop-ms MS]\n"
            "                          [--mels N] [--normalize] [--threshold T] [--seed N]\n"
            "\n"
            "The first stage of the pipeline on a recording: FILE (any rate; resampled to\n"
            "16 kHz) through the streaming log-mel front end (25 ms Hann window, 10 ms hop,\n"
            "40 mel channels from 60 Hz to 8 kHz, natural log of the power with a floor at\n"
            "1e-10). Each frame is stamped with the capture sample index of its newest\n"
            "sample; what it describes is centred 12.47 ms (the front end's algorithmic\n"
            "delay, (window - 1) / 2) before that.\n"
            "\n"
            "Without --encoder it prints the frames: time_ms (of the stamp), sample, then\n"
            "one ln energy per mel channel. With --encoder it prints the address events the\n"
            "encoder makes of them: time_ms, sample, address, channel, polarity:\n"
            "  sod   send-on-delta: an ON (polarity 0, address 2c) or OFF (1, 2c + 1) event\n"
            "        each time channel c moves --threshold (default 0.5 ln units, 2.2 dB)\n"
            "        from its reference; steady sound makes almost none\n"
            "  lif   each channel drives a leaky integrate-and-fire neuron with a current\n"
            "        proportional to its level (ln energy -12 .. 2 mapped to 0 .. 2)\n"
            "  rate  each channel fires Poisson-like at up to 200 Hz, by its level\n"
            "\n"
            "options:\n"
            "  --encoder E     sod, lif or rate (default: print frames, no encoder)\n"
            "  --csv           comma-separated with a header line (default: aligned columns)\n"
            "  --hop-ms MS     frame step, 1 .. 25 (default 10; 5 for finer timing)\n"
            "  --mels N        mel channels, 1 .. 128 (default 40)\n"
            "  --normalize     subtract each channel's running mean (3 s, causal)\n"
            "  --threshold T   sod: the delta per event, ln units (default 0.5)\n"
            "  --seed N        rate: the generator's seed (default 1)\n"
            "  -h, --help      this help\n"
            "\n"
            "examples:\n"
            "  spiketalk features speech.flac --csv > frames.csv\n"
            "  spiketalk features speech.flac --encoder sod | head\n");
}

int st_cmd_features(int argc, char **argv)
{
    static const struct option opts[] = {{"encoder", required_argument, 0, 'e'},
                                         {"csv", no_argument, 0, 'c'},
                                         {"hop-ms", required_argument, 0, 'H'},
                                         {"mels", required_argument, 0, 'm'},
                                         {"normalize", no_argument, 0, 'n'},
                                         {"threshold", required_argument, 0, 't'},
                                         {"seed", required_argument, 0, 's'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *cmd = "features";
    st_frontend_params fp = st_frontend_default_params();
    bool csv = false, use_enc = false;
    st_encoder_kind kind = ST_ENCODER_SOD;
    double thr = 0.5;
    long mels = fp.n_mels, seed = 1;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'e':
            if (st_encoder_kind_from_name(optarg, &kind) != ST_OK)
                return cli_fail(cmd, "--encoder: %s", st_errmsg()) + 1;
            use_enc = true;
            break;
        case 'c': csv = true; break;
        case 'H':
            if (!cli_parse_double(cmd, "--hop-ms", optarg, 1, 25, &fp.hop_ms))
                return 2;
            break;
        case 'm':
            if (!cli_parse_int(cmd, "--mels", optarg, 1, 128, &mels))
                return 2;
            fp.n_mels = (int)mels;
            break;
        case 'n': fp.normalize = true; break;
        case 't':
            if (!cli_parse_double(cmd, "--threshold", optarg, 1e-3, 100, &thr))
                return 2;
            break;
        case 's':
            if (!cli_parse_int(cmd, "--seed", optarg, 0, 1L << 40, &seed))
                return 2;
            break;
        case 'h': features_usage(stdout); return 0;
        default: features_usage(stderr); return 2;
        }
    }
    if (optind != argc - 1) {
        features_usage(stderr);
        return 2;
    }
    float *x = NULL, *feat = NULL;
    uint64_t *stamp = NULL;
    size_t n = 0, nf = 0;
    st_frontend *fe = NULL;
    st_encoder *enc = NULL;
    st_aer_event *ev = NULL;
    int status = load_16k(cmd, argv[optind], &x, &n);
    if (status || (status = run_frontend(cmd, &fp, x, n, &feat, &stamp, &nf, &fe)))
        goto done;
    const int nm = st_frontend_n_mels(fe);
    const char *sep = csv ? "," : " ";
    if (!use_enc) {
        printf(csv ? "time_ms,sample" : "# time_ms   sample");
        for (int k = 0; k < nm; k++)
            printf(csv ? ",mel%d" : " mel%d", k);
        printf("\n");
        for (size_t f = 0; f < nf; f++) {
            printf(csv ? "%.3f,%llu" : "%9.3f %8llu", 1e3 * (double)stamp[f] / RATE,
                   (unsigned long long)stamp[f]);
            for (int k = 0; k < nm; k++)
                printf(csv ? "%s%.4f" : "%s%6.2f", sep, feat[f * (size_t)nm + (size_t)k]);
            printf("\n");
        }
        goto done;
    }
    st_encoder_params ep = st_encoder_default_params(kind);
    ep.n_channels = nm;
    ep.hop_samples = st_frontend_hop_samples(fe);
    ep.hop_s = (double)ep.hop_samples / RATE;
    ep.sod_threshold = (float)thr;
    ep.seed = (uint64_t)seed;
    if (fp.normalize) {
        ep.in_lo = -3;
        ep.in_hi = 5;
    }
    int err;
    enc = st_encoder_new(&ep, &err);
    if (!enc) {
        status = cli_fail_lib(cmd, err, "encoder");
        goto done;
    }
    size_t cap = st_encoder_max_events(enc), total = 0;
    ev = malloc(cap * sizeof *ev);
    if (!ev) {
        status = cli_fail(cmd, "out of memory");
        goto done;
    }
    printf(csv ? "time_ms,sample,address,channel,polarity\n"
               : "# time_ms   sample address channel polarity\n");
    for (size_t f = 0; f < nf; f++) {
        size_t made;
        st_encoder_encode(enc, feat + f * (size_t)nm, stamp[f], ev, cap, &made);
        for (size_t k = 0; k < made; k++) {
            unsigned a = ev[k].address;
            unsigned ch = kind == ST_ENCODER_SOD ? a / 2 : a;
            const char *pol = kind == ST_ENCODER_SOD ? (a & 1 ? "off" : "on") : "-";
            printf(csv ? "%.3f,%llu,%u,%u,%s\n" : "%9.3f %8llu %7u %7u %s\n",
                   1e3 * (double)ev[k].sample_index / RATE,
                   (unsigned long long)ev[k].sample_index, a, ch, pol);
        }
        total += made;
    }
    fprintf(stderr, "spiketalk features: %zu events from %zu frames (%.1f per frame) by %s\n",
            total, nf, nf ? (double)total / (double)nf : 0.0, st_encoder_kind_name(kind));
done:
    free(ev);
    st_encoder_destroy(&enc);
    st_frontend_destroy(&fe);
    free(x);
    free(feat);
    free(stamp);
    return status;
}

/* ---- vad ------------------------------------------------------------------------ */

static void vad_usage(FILE *out)
{
    st_vad_params p = st_vad_default_params();
    char params[2048];
    st_vad_params_print(&p, params, sizeof params);
    fprintf(out,
            "usage: spiketalk vad FILE [--model FILE|none] [--set NAME=VALUE ...] [--trace]\n"
            "                          [--csv]\n"
            "\n"
            "Finds where speech starts and ends in FILE with the spiking voice-activity\n"
            "detector (snn/vad.h) on the front end's 40 log-mel channels every 10 ms. Per\n"
            "channel, a floor of integrator neurons follows the background (it steps up\n"
            "and down at 30 dB/s, and at 8 dB/s during speech); a population of LIF neurons\n"
            "fires at 6, 9, ... 27 dB above it; a leaky read-out neuron sums them, weighting\n"
            "90..1200 Hz and the higher levels most (channels above 1.2 kHz inhibit: clinks\n"
            "and clacks are not speech); a latch of threshold units turns speech on after\n"
            "3 frames above the onset threshold and off 100 ms after the read-out\n"
            "fell under the offset threshold. The first 0.2 s set the floor (no events).\n"
            "\n"
            "Prints one line per event:\n"
            "  onset|offset  at_ms  decided_ms\n"
            "where at_ms is where the detector places the change (the start of the rise\n"
            "that led to an onset, the last frame above the offset threshold for an offset,\n"
            "both corrected by the front end's 12.47 ms delay) and decided_ms when it knew\n"
            "(the stamp of the deciding frame): decided - true time is the latency a live\n"
            "turn-taker sees. Ends with the total speech time.\n"
            "\n"
            "With a learned read-out (--model, models/vad.stm: `make train-vad`) a\n"
            "recurrent spiking network trained on speech in noise reads the same floor's\n"
            "rise per channel instead, and its p(speech) drives the latch (learned_on,\n"
            "learned_off, learned_frames, learned_hangover_s).\n"
            "\n"
            "options:\n"
            "  --model FILE      the learned read-out (default $SPIKETALK_VAD_MODEL, else\n"
            "                    none: the hand-designed one)\n"
            "  --set NAME=VALUE  change a detector parameter (repeatable); the parameters\n"
            "                    and their defaults:\n");
    for (char *line = strtok(params, "\n"); line; line = strtok(NULL, "\n"))
        fprintf(out, "                      %s\n", line);
    fprintf(out,
            "                    (dB are of channel energy; *_s in seconds; thresholds are\n"
            "                    shares of the weighted levels firing, 0..1)\n"
            "  --trace           print every frame instead: time_ms, read-out, speech (0/1)\n"
            "  --csv             comma-separated with a header line\n"
            "  -h, --help        this help\n"
            "\n"
            "example:\n"
            "  spiketalk vad ../shared/data/speech/clips/jfk.flac\n");
}

int st_cmd_vad(int argc, char **argv)
{
    static const struct option opts[] = {{"set", required_argument, 0, 'p'},
                                         {"model", required_argument, 0, 'm'},
                                         {"trace", no_argument, 0, 't'},
                                         {"csv", no_argument, 0, 'c'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *cmd = "vad";
    st_vad_params vp = st_vad_default_params();
    bool trace = false, csv = false;
    const char *model_given = NULL;
    char mbuf[4096];
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'p': {
            char name[64];
            const char *eq = strchr(optarg, '=');
            if (!eq || eq == optarg || (size_t)(eq - optarg) >= sizeof name)
                return cli_fail(cmd, "--set: '%s' is not NAME=VALUE", optarg) + 1;
            memcpy(name, optarg, (size_t)(eq - optarg));
            name[eq - optarg] = '\0';
            if (st_vad_set_param(&vp, name, eq + 1) != ST_OK)
                return cli_fail(cmd, "--set: %s", st_errmsg()) + 1;
            break;
        }
        case 'm': model_given = optarg; break;
        case 't': trace = true; break;
        case 'c': csv = true; break;
        case 'h': vad_usage(stdout); return 0;
        default: vad_usage(stderr); return 2;
        }
    }
    if (optind != argc - 1) {
        vad_usage(stderr);
        return 2;
    }
    st_frontend_params fp = st_frontend_default_params();
    float *x = NULL, *feat = NULL;
    uint64_t *stamp = NULL;
    size_t n = 0, nf = 0;
    st_frontend *fe = NULL;
    st_vad_model *model = NULL;
    st_vad *v = NULL;
    int status = load_16k(cmd, argv[optind], &x, &n);
    if (status || (status = run_frontend(cmd, &fp, x, n, &feat, &stamp, &nf, &fe)))
        goto done;
    double centre[ST_VAD_MAX_CHANNELS];
    const int nm = st_frontend_n_mels(fe);
    for (int k = 0; k < nm; k++)
        centre[k] = st_frontend_mel_centre_hz(fe, k);
    vp.n_channels = nm;
    vp.hop_s = (double)st_frontend_hop_samples(fe) / RATE;
    vp.frontend_delay_samples = st_frontend_delay_samples(fe);
    vp.channel_hz = centre;
    vp.model_path = cli_vad_model(model_given, false, mbuf, sizeof mbuf);
    int err;
    model = st_vad_model_new(&vp, &err);
    if (!model || !(v = st_vad_new(model, &err))) {
        status = cli_fail_lib(cmd, err, "spiking VAD");
        goto done;
    }
    if (trace)
        printf(csv ? "time_ms,score,speech\n" : "# time_ms  score speech\n");
    else
        printf(csv ? "event,at_ms,decided_ms\n" : "# event     at_ms  decided_ms\n");
    double on_at = 0, speech_s = 0;
    for (size_t f = 0; f < nf; f++) {
        st_vad_event ev[1];
        size_t made;
        st_vad_process(v, feat + f * (size_t)nm, stamp + f, NULL, 1, ev, 1, &made);
        if (trace) {
            printf(csv ? "%.1f,%.4f,%d\n" : "%9.1f %6.3f %d\n", 1e3 * (double)stamp[f] / RATE,
                   st_vad_score(v), st_vad_active(v));
            continue;
        }
        for (size_t k = 0; k < made; k++) {
            double at = 1e3 * (double)ev[k].sample_index / RATE;
            printf(csv ? "%s,%.1f,%.1f\n" : "%-7s %9.1f %11.1f\n",
                   ev[k].kind == ST_VAD_ONSET ? "onset" : "offset", at,
                   1e3 * (double)ev[k].decided_index / RATE);
            if (ev[k].kind == ST_VAD_ONSET)
                on_at = at;
            else
                speech_s += (at - on_at) / 1e3;
        }
    }
    if (!trace) {
        if (st_vad_active(v)) {
            double end = 1e3 * (double)n / RATE;
            speech_s += (end - on_at) / 1e3;
            fprintf(stderr, "spiketalk vad: speech still on at the end (%.1f ms)\n", end);
        }
        fprintf(stderr, "spiketalk vad: %.2f s of speech in %.2f s\n", speech_s,
                (double)n / RATE);
    }
done:
    st_vad_destroy(&v);
    st_vad_model_destroy(&model);
    st_frontend_destroy(&fe);
    free(x);
    free(feat);
    free(stamp);
    return status;
}
