/*  cli/cmd_demo.c - `spiketalk demo`: the voice-agent demo on its embedded
    default, no sound card needed.

    What exists of the conversation so far runs here: the embedded default
    utterance goes through the virtual microphone, the capture ring, the
    resampler to 16 kHz and back, the playback ring and the virtual speaker,
    with the measured round trip. The recognizer, the language model and the
    synthesizer join this path as their issues land (see README.md).
*/
#include "cli.h"

#include "audio/audio.h"

#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/*  The embedded default: 1.5 s of a voiced, vowel-like sound (a glottal
    pulse train at a falling pitch through three formant resonators), made in
    code so the binary carries no audio file. */
static void embedded_utterance(float *x, size_t n, int rate)
{
    static const double formant_hz[3] = {700, 1220, 2600}, bw_hz[3] = {130, 70, 160};
    double y1[3] = {0}, y2[3] = {0}, phase = 0;
    for (size_t i = 0; i < n; i++) {
        double t = (double)i / rate;
        double f0 = 140 - 30 * t;
        phase += f0 / rate;
        double src = 0;
        if (phase >= 1) {
            phase -= 1;
            src = 1;
        }
        double out = 0;
        for (int k = 0; k < 3; k++) {
            double r = exp(-M_PI * bw_hz[k] / rate);
            double a1 = 2 * r * cos(2 * M_PI * formant_hz[k] / rate), a2 = -r * r;
            double y = (1 - r) * src + a1 * y1[k] + a2 * y2[k];
            y2[k] = y1[k];
            y1[k] = y;
            out += y;
        }
        double env = fmin(1, fmin(t / 0.05, ((double)n / rate - t) / 0.1));
        x[i] = (float)(0.5 * env * out);
    }
}

int st_cmd_demo(int argc, char **argv)
{
    static const struct option opts[] = {{"input", required_argument, 0, 'i'},
                                         {"output", required_argument, 0, 'o'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *input = NULL, *output = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "i:o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'i': input = optarg; break;
        case 'o': output = optarg; break;
        case 'h':
            printf("usage: spiketalk demo [--input FILE] [--output FILE]\n\n"
                   "Runs the voice-agent demo on virtual devices (no sound card needed): the\n"
                   "embedded default utterance, or --input FILE, through the audio path; the\n"
                   "agent's answer (today: the audio path's loopback) goes to --output FILE or\n"
                   "is discarded. The recognizer, language model and synthesizer stages join the\n"
                   "demo as they are built; the README says which exist.\n");
            return 0;
        default: return 2;
        }
    }
    char tmp[] = "/tmp/spiketalk-demo-XXXXXX.wav";
    bool made_tmp = false;
    if (!input) {
        int fd = mkstemps(tmp, 4);
        if (fd < 0)
            return cli_fail("demo", "cannot make a temporary file in /tmp");
        close(fd);
        made_tmp = true;
        const int rate = ST_PIPELINE_RATE_HZ;
        size_t n = (size_t)(1.5 * rate);
        float *x = malloc(n * sizeof *x);
        if (!x) {
            unlink(tmp);
            return cli_fail("demo", "out of memory");
        }
        embedded_utterance(x, n, rate);
        int rc = st_audio_write_wav(tmp, x, n, rate, ST_WAV_PCM16);
        free(x);
        if (rc) {
            unlink(tmp);
            return cli_fail_lib("demo", rc, "cannot write the embedded utterance");
        }
        input = tmp;
    }
    printf("spiketalk demo: user speech from %s\n", made_tmp ? "the embedded default utterance" : input);
    printf("  stages running: virtual mic -> capture ring -> resample 48k->16k -> resample 16k->48k"
           " -> playback ring -> virtual speaker\n");
    printf("  stages to come: spike encoder, VAD, recognizer (issue 6), language model (issue 7),"
           " synthesizer (issue 5)\n");
    st_device_params dp = st_device_default_params();
    st_virtual_params vp = {.input_path = input, .output_path = output, .realtime = false};
    int rc = ST_OK;
    st_device *dev = st_device_open_virtual(&dp, &vp, &rc);
    if (!dev) {
        if (made_tmp)
            unlink(tmp);
        return cli_fail_lib("demo", rc, "cannot open the virtual devices");
    }
    st_loopback_params lp = st_loopback_default_params();
    st_loopback_report rep;
    double t0 = st_now_s();
    rc = st_loopback_run(dev, &lp, &rep);
    double wall = st_now_s() - t0;
    st_device_destroy(&dev);
    if (made_tmp)
        unlink(tmp);
    if (rc)
        return cli_fail_lib("demo", rc, "the audio path failed");
    printf("  %.2f s of audio through the path in %.3f s (%.0fx real time)\n",
           rep.frames_in / (double)rep.sample_rate_hz, wall,
           rep.frames_in / (double)rep.sample_rate_hz / wall);
    printf("  round trip mic -> speaker: %.0f samples at %d Hz = %.2f ms (resamplers %.2f ms)\n",
           rep.round_trip_frames, rep.sample_rate_hz, rep.round_trip_ms,
           1e3 * rep.resampler_latency_frames / rep.sample_rate_hz);
    if (output)
        printf("  speaker output written to %s\n", output);
    return 0;
}
