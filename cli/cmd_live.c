/*  cli/cmd_live.c - `spiketalk live`: the voice agent of `spiketalk demo`
    on the real microphone and speaker through PortAudio, with a live view
    in the terminal (state, what the recognizer hears, the microphone's
    level, the latency of each answer).

    The device runs at its own rate; resamplers bring the capture to 16 kHz
    and the agent's voice back. The agent (pipeline/agent.c) runs on this
    thread, 10 ms blocks as the capture ring fills; the audio callback only
    moves samples through the device's rings. With no sound card it says so
    and points to `spiketalk demo --input FILE`, the same agent on a
    recording.
*/
#include "cli.h"

#include "audio/audio.h"
#include "pipeline/pipeline.h"

#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RATE ST_PIPELINE_RATE_HZ
#define BLOCK ST_AGENT_BLOCK
#define CHUNK 4096

static volatile int stop_flag;

static void on_sigint(int sig)
{
    (void)sig;
    stop_flag = 1;
}

typedef struct {
    bool tty;
    char heard[256];
    char answer[512];
    double mic_db;
    double last_ms;
    int answers, interruptions;
    st_turn_state state;
    bool status_drawn;
    st_agent_pub *pub;       /* --publish: turn changes on a PUB socket; NULL none */
} view;

static void clear_status(view *v)
{
    if (v->tty && v->status_drawn) {
        printf("\r\033[K");
        v->status_drawn = false;
    }
}

static void draw_status(view *v, double t_s)
{
    if (!v->tty)
        return;
    printf("\r\033[K%7.1f s  [%-14s]  mic %5.0f dB  heard: %-30.30s  last answer %4.0f ms",
           t_s, st_turn_state_name(v->state), v->mic_db, v->heard, v->last_ms);
    fflush(stdout);
    v->status_drawn = true;
}

static void on_event(const st_agent_event *e, void *user_data)
{
    view *v = user_data;
    double t = (double)e->sample / RATE;
    if (v->pub)
        st_agent_pub_event(v->pub, e);
    switch (e->kind) {
    case ST_AGENT_EV_STATE:
        v->state = e->to;
        if (!v->tty && (e->to == ST_TURN_USER || e->to == ST_TURN_BOTH))
            printf("%7.2f s  (%s)\n", t, st_turn_state_name(e->to));
        break;
    case ST_AGENT_EV_WORD: {
        size_t l = strlen(v->heard);
        if (l > 200)
            l = 0;
        snprintf(v->heard + l, sizeof v->heard - l, "%s%s", l ? " " : "", e->text);
        break;
    }
    case ST_AGENT_EV_REQUEST:
        clear_status(v);
        printf("%7.2f s  user : \"%s\"  (turn ended %.0f ms after the user stopped)\n",
               (double)e->ref / RATE, e->text, (double)(e->sample - e->ref) * 1000.0 / RATE);
        v->heard[0] = '\0';
        break;
    case ST_AGENT_EV_ANSWER:
        /* the answer streams: its whole text comes once the LM is done,
           usually after its first sound */
        clear_status(v);
        snprintf(v->answer, sizeof v->answer, "%s", e->text);
        v->answers++;
        printf("%7.2f s  agent: \"%s\"\n", t, v->answer);
        break;
    case ST_AGENT_EV_SPEAKING:
        clear_status(v);
        v->last_ms = (double)(e->sample - e->ref) * 1000.0 / RATE;
        if (e->ref)
            printf("%7.2f s  agent speaks: first sound %.0f ms after the user stopped (%.1f ms "
                   "of compute)\n",
                   t, v->last_ms, e->compute_ms);
        break;
    case ST_AGENT_EV_PAUSED:
        clear_status(v);
        printf("%7.2f s  ...  speech over the agent: silent %.0f ms after the onset\n", t,
               (double)(e->sample - e->ref) * 1000.0 / RATE);
        break;
    case ST_AGENT_EV_RESUMED:
        clear_status(v);
        printf("%7.2f s  ...  nothing: the agent goes on\n", t);
        break;
    case ST_AGENT_EV_INTERRUPTED:
        clear_status(v);
        v->interruptions++;
        printf("%7.2f s  ...  interrupted; the user heard: \"%s\"\n", t,
               e->text && *e->text ? e->text : "(nothing)");
        break;
    default: break;
    }
    fflush(stdout);
}

static void usage(void)
{
    printf("usage: spiketalk live [options]\n\n"
           "The voice agent on the real microphone and speaker (PortAudio), with a live view:\n"
           "state, what the recognizer hears, the microphone level, answer latencies.\n"
           "Ctrl-C ends it. Without a sound card: spiketalk demo --input FILE.\n\n"
           "options:\n"
           "  -d, --device NAME    input and output device (a name substring, or #N;\n"
           "                       `spiketalk devices` lists them)\n"
           "  -s, --seconds S      stop after S seconds (default: until Ctrl-C)\n"
           "      --say TEXT       the agent says TEXT first\n"
           "      --model FILE     dialogue model (default models/dialogue.stnn)\n"
           "      --vad FILE|none  the VAD's learned read-out, e.g. " CLI_VAD_MODEL "\n"
           "                       (default $SPIKETALK_VAD_MODEL, else none: hand-designed)\n"
           "      --asr FILE       recognizer model (default $SPIKETALK_ASR_MODEL,\n"
           "                       " CLI_AGENT_ASR ")\n"
           "      --voice V        the agent's espeak voice (default en-us)\n"
           "      --publish EP     publish every turn change on a ZeroMQ PUB socket bound to\n"
           "                       EP: wire-protocol CONTROL TURN messages (docs/AGENT.md)\n");
}

int st_cmd_live(int argc, char **argv)
{
    enum { O_SAY = 1000, O_MODEL, O_ASR, O_VOICE, O_PUBLISH, O_VAD };
    static const struct option opts[] = {{"device", required_argument, 0, 'd'},
                                         {"seconds", required_argument, 0, 's'},
                                         {"say", required_argument, 0, O_SAY},
                                         {"model", required_argument, 0, O_MODEL},
                                         {"asr", required_argument, 0, O_ASR},
                                         {"vad", required_argument, 0, O_VAD},
                                         {"voice", required_argument, 0, O_VOICE},
                                         {"publish", required_argument, 0, O_PUBLISH},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *device = NULL, *say = NULL, *model = NULL, *asr = NULL, *voice = "en-us", *vad = NULL;
    const char *publish = NULL;
    double seconds = 0;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "d:s:h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': device = optarg; break;
        case 's':
            if (!cli_parse_double("live", "--seconds", optarg, 0.1, 1e6, &seconds))
                return 2;
            break;
        case O_SAY: say = optarg; break;
        case O_MODEL: model = optarg; break;
        case O_ASR: asr = optarg; break;
        case O_VAD: vad = optarg; break;
        case O_VOICE: voice = optarg; break;
        case O_PUBLISH: publish = optarg; break;
        case 'h': usage(); return 0;
        default: return 2;
        }
    }
    st_device_desc devs[4];
    if (!device && st_device_list(devs, 4) <= 0) {
        fprintf(stderr, "spiketalk live: no audio device here (PortAudio finds none).\n"
                        "  The same agent runs on a recording: spiketalk demo --input FILE\n");
        return 1;
    }
    char asr_buf[4200], lm_buf[4200];
    const char *asr_path = cli_agent_asr("live", asr, asr_buf, sizeof asr_buf);
    char vad_buf[4200];
    const char *vad_path = cli_vad_model(vad, false, vad_buf, sizeof vad_buf);
    if (!asr_path)
        return 1;
    const char *lm_path = cli_agent_find_model(model, "SPIKETALK_DIALOGUE_MODEL",
                                               "models/dialogue.stnn", lm_buf, sizeof lm_buf);

    st_device_params dp = st_device_default_params();
    dp.input_device = dp.output_device = device;
    int rc = ST_OK, status = 1;
    st_device *dev = st_device_open(&dp, &rc);
    if (!dev) {
        fprintf(stderr, "spiketalk live: no usable audio device: %s\n"
                        "  The same agent runs on a recording: spiketalk demo --input FILE\n",
                st_errmsg());
        return 1;
    }
    st_device_info info;
    st_device_get_info(dev, &info);
    view v = {.tty = isatty(1), .last_ms = NAN};
    st_agent_params ap = st_agent_default_params();
    ap.asr_model = asr_path;
    ap.vad_model = vad_path;
    ap.lm_model = lm_path;
    ap.tts_voice = voice;
    ap.on_event = on_event;
    ap.user_data = &v;
    st_agent *agent = NULL;
    st_resampler *down = NULL, *up = NULL;
    float *in = malloc(CHUNK * sizeof(float)), *in16 = NULL, *out16 = NULL, *out = NULL;
    size_t in16_cap = 0, out_cap = 0;
    if (!in) {
        cli_fail("live", "out of memory");
        goto done;
    }
    if (publish && !(v.pub = st_agent_pub_new(publish, &rc))) {
        cli_fail_lib("live", rc, "--publish");
        goto done;
    }
    if (!(agent = st_agent_new(&ap, &rc))) {
        cli_fail_lib("live", rc, "cannot start the agent");
        goto done;
    }
    if (!(down = st_resampler_new(info.sample_rate_hz, RATE, ST_RESAMPLE_MEDIUM, &rc)) ||
        !(up = st_resampler_new(RATE, info.sample_rate_hz, ST_RESAMPLE_MEDIUM, &rc))) {
        cli_fail_lib("live", rc, "cannot make the resamplers");
        goto done;
    }
    in16_cap = st_resampler_max_output(down, CHUNK) + 2 * BLOCK;
    out_cap = st_resampler_max_output(up, BLOCK) + 64;
    if (!(in16 = malloc(in16_cap * sizeof(float))) || !(out16 = malloc(BLOCK * sizeof(float))) ||
        !(out = malloc(out_cap * sizeof(float)))) {
        cli_fail("live", "out of memory");
        goto done;
    }
    printf("spiketalk live: %s (%s, %d Hz) <-> the agent at 16 kHz; dialogue model %s\n",
           info.input_name, info.host_api, info.sample_rate_hz, lm_path ? lm_path : "MISSING");
    printf("  speak to it; Ctrl-C ends%s\n", seconds > 0 ? " (or the --seconds limit)" : "");
    if (say && (rc = st_agent_say(agent, say))) {
        cli_fail_lib("live", rc, "--say");
        goto done;
    }
    stop_flag = 0;
    signal(SIGINT, on_sigint);
    if ((rc = st_device_start(dev))) {
        signal(SIGINT, SIG_DFL);
        cli_fail_lib("live", rc, "cannot start the device");
        goto done;
    }
    size_t have = 0; /* 16 kHz samples waiting in in16 */
    double level = 0, last_draw = 0;
    uint64_t blocks = 0;
    while (!stop_flag) {
        if (seconds > 0 && (double)st_agent_position(agent) / RATE >= seconds)
            break;
        rc = st_device_wait(dev, 1.0);
        if (rc == ST_ERR_TIMEOUT) {
            clear_status(&v);
            fprintf(stderr, "spiketalk live: the device delivered nothing for 1 s\n");
            break;
        }
        if (rc)
            break;
        size_t n;
        while ((n = st_ring_read(st_device_capture(dev), in, CHUNK)) > 0) {
            size_t used = 0, made = 0;
            st_resampler_process(down, in, n, in16 + have, in16_cap - have, &used, &made);
            have += made;
            size_t off = 0;
            for (; have - off >= BLOCK; off += BLOCK) {
                for (size_t k = 0; k < BLOCK; k++)
                    level = 0.995 * level + 0.005 * in16[off + k] * in16[off + k];
                if ((rc = st_agent_process(agent, in16 + off, out16, NULL))) {
                    cli_fail_lib("live", rc, "the agent");
                    goto stopped;
                }
                blocks++;
                size_t u = 0, m = 0;
                st_resampler_process(up, out16, BLOCK, out, out_cap, &u, &m);
                st_ring_write(st_device_playback(dev), out, m);
            }
            memmove(in16, in16 + off, (have - off) * sizeof(float));
            have -= off;
        }
        v.mic_db = 10 * log10(level + 1e-12);
        double now = (double)st_agent_position(agent) / RATE;
        if (now - last_draw >= 0.1) {
            draw_status(&v, now);
            last_draw = now;
        }
    }
    rc = ST_OK;
stopped:
    st_device_stop(dev);
    signal(SIGINT, SIG_DFL);
    clear_status(&v);
    st_device_stats ds;
    st_device_get_stats(dev, &ds);
    st_agent_stats as;
    st_agent_get_stats(agent, &as);
    printf("live: %.1f s through %s (%llu agent blocks), %llu answers, %llu interruptions; "
           "device: %llu frames captured, %llu played, %llu dropped, %llu of silence\n",
           (double)st_agent_position(agent) / RATE, info.host_api, (unsigned long long)blocks,
           (unsigned long long)as.answers, (unsigned long long)as.interruptions,
           (unsigned long long)ds.frames_captured, (unsigned long long)ds.frames_played,
           (unsigned long long)ds.capture_overrun_frames, (unsigned long long)ds.silence_frames);
    status = rc ? 1 : 0;
done:
    st_agent_destroy(&agent);
    st_agent_pub_destroy(&v.pub);
    st_resampler_destroy(&down);
    st_resampler_destroy(&up);
    st_device_destroy(&dev);
    free(in);
    free(in16);
    free(out16);
    free(out);
    return status;
}
