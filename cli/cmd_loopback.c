/*  cli/cmd_loopback.c - `spiketalk loopback`: microphone -> 16 kHz -> speaker
    through the rings and resamplers, with the measured round-trip delay. */
#include "cli.h"

#include "audio/audio.h"

#include <getopt.h>
#include <signal.h>
#include <string.h>

static volatile int stop_requested;

static void on_sigint(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: spiketalk loopback [--input FILE] [--output FILE] [options]\n"
            "\n"
            "Passes the microphone to the speaker through the capture ring, a resampler to\n"
            "16 kHz (the pipeline rate), a resampler back and the playback ring, then reports\n"
            "the round-trip delay measured from the sample stamps (capture index -> DAC index).\n"
            "\n"
            "With --input FILE the microphone is virtual (any WAV/FLAC/Ogg, any rate) and the\n"
            "speaker writes --output FILE (a float WAV at the device rate) or discards. Without\n"
            "--input it uses the sound card (see `spiketalk devices`) until Ctrl-C or --seconds.\n"
            "\n"
            "options:\n"
            "  -i, --input FILE       virtual microphone fed from FILE\n"
            "  -o, --output FILE      virtual speaker writes FILE\n"
            "  -r, --rate HZ          device rate (default: 48000 virtual, the device's own real)\n"
            "  -b, --block FRAMES     frames per callback (default: 10 ms virtual, the device's choice real)\n"
            "  -l, --latency S        suggested device latency in seconds (default: the lowest allowed)\n"
            "  -d, --device NAME      real device for both directions: '#N' or a part of its name\n"
            "      --realtime         pace the virtual devices by the wall clock\n"
            "  -s, --seconds S        stop after S seconds of capture\n"
            "  -q, --quality Q        resampler: fastest (default), medium, best\n"
            "      --json             one JSON object instead of the text report\n"
            "\n"
            "examples:\n"
            "  spiketalk loopback --input speech.flac --output echo.wav\n"
            "  spiketalk loopback --device '#2' --seconds 10\n");
}

int st_cmd_loopback(int argc, char **argv)
{
    static const struct option opts[] = {
        {"input", required_argument, 0, 'i'},   {"output", required_argument, 0, 'o'},
        {"rate", required_argument, 0, 'r'},    {"block", required_argument, 0, 'b'},
        {"latency", required_argument, 0, 'l'}, {"device", required_argument, 0, 'd'},
        {"realtime", no_argument, 0, 'R'},      {"seconds", required_argument, 0, 's'},
        {"quality", required_argument, 0, 'q'}, {"json", no_argument, 0, 'J'},
        {"help", no_argument, 0, 'h'},          {0, 0, 0, 0},
    };
    const char *cmd = "loopback";
    st_device_params dp = st_device_default_params();
    st_virtual_params vp = {0};
    st_loopback_params lp = st_loopback_default_params();
    bool json = false;
    long l;
    double x;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "i:o:r:b:l:d:s:q:h", opts, NULL)) != -1) {
        switch (c) {
        case 'i': vp.input_path = optarg; break;
        case 'o': vp.output_path = optarg; break;
        case 'r':
            if (!cli_parse_int(cmd, "--rate", optarg, 1000, 384000, &l))
                return 2;
            dp.sample_rate_hz = (int)l;
            break;
        case 'b':
            if (!cli_parse_int(cmd, "--block", optarg, 16, 16384, &l))
                return 2;
            dp.frames_per_block = (int)l;
            break;
        case 'l':
            if (!cli_parse_double(cmd, "--latency", optarg, 0, 2, &x))
                return 2;
            dp.suggested_latency_s = x;
            break;
        case 'd': dp.input_device = dp.output_device = optarg; break;
        case 'R': vp.realtime = true; break;
        case 's':
            if (!cli_parse_double(cmd, "--seconds", optarg, 0.01, 86400, &x))
                return 2;
            vp.max_seconds = lp.max_seconds = x;
            break;
        case 'q':
            if (!strcmp(optarg, "fastest"))
                lp.quality = ST_RESAMPLE_FASTEST;
            else if (!strcmp(optarg, "medium"))
                lp.quality = ST_RESAMPLE_MEDIUM;
            else if (!strcmp(optarg, "best"))
                lp.quality = ST_RESAMPLE_BEST;
            else
                return cli_fail(cmd, "--quality: '%s' is not one of fastest, medium, best", optarg), 2;
            break;
        case 'J': json = true; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc)
        return cli_fail(cmd, "unexpected argument '%s' (see --help)", argv[optind]), 2;
    if (vp.output_path && !vp.input_path)
        return cli_fail(cmd, "--output needs --input (the virtual devices go together)"), 2;

    int rc = ST_OK;
    st_device *dev = vp.input_path ? st_device_open_virtual(&dp, &vp, &rc) : st_device_open(&dp, &rc);
    if (!dev)
        return cli_fail_lib(cmd, rc, "cannot open the audio device");
    st_device_info info;
    st_device_get_info(dev, &info);
    signal(SIGINT, on_sigint);
    lp.stop = &stop_requested;
    if (!vp.input_path && lp.max_seconds <= 0)
        fprintf(stderr, "loopback on '%s' -> '%s' (%s); Ctrl-C to stop\n", info.input_name,
                info.output_name, info.host_api);
    st_loopback_report rep;
    rc = st_loopback_run(dev, &lp, &rep);
    signal(SIGINT, SIG_DFL);
    st_device_destroy(&dev);
    if (rc)
        return cli_fail_lib(cmd, rc, "loopback failed");

    double rate = rep.sample_rate_hz;
    double device_ms = 1e3 * (info.input_latency_s + info.output_latency_s);
    if (json) {
        printf("{\"sample_rate_hz\": %d, \"frames_in\": %llu, \"frames_out\": %llu, "
               "\"round_trip_frames\": %.0f, \"round_trip_ms\": %.3f, "
               "\"round_trip_min_frames\": %.0f, \"round_trip_max_frames\": %.0f, "
               "\"resampler_latency_frames\": %.2f, \"device_latency_ms\": %.3f, "
               "\"underrun_frames\": %llu, \"overrun_frames\": %llu, \"host_api\": \"%s\"}\n",
               rep.sample_rate_hz, (unsigned long long)rep.frames_in,
               (unsigned long long)rep.frames_out, rep.round_trip_frames, rep.round_trip_ms,
               rep.round_trip_min_frames, rep.round_trip_max_frames, rep.resampler_latency_frames,
               device_ms, (unsigned long long)rep.device.playback_underrun_frames,
               (unsigned long long)rep.device.capture_overrun_frames, info.host_api);
        return 0;
    }
    printf("loopback %s -> %s (%s, %d Hz, blocks of %d)\n", info.input_name, info.output_name,
           info.host_api, rep.sample_rate_hz, info.frames_per_block);
    printf("  frames in / out       %llu / %llu (%.2f s)\n", (unsigned long long)rep.frames_in,
           (unsigned long long)rep.frames_out, rep.frames_in / rate);
    printf("  round trip (measured) %.0f samples = %.2f ms  (min %.0f, max %.0f)\n",
           rep.round_trip_frames, rep.round_trip_ms, rep.round_trip_min_frames,
           rep.round_trip_max_frames);
    printf("    of which resamplers %.1f samples = %.2f ms\n", rep.resampler_latency_frames,
           1e3 * rep.resampler_latency_frames / rate);
    if (info.realtime && !vp.input_path)
        printf("  device latency        %.2f ms more (ADC + DAC, as the device reports)\n",
               device_ms);
    printf("  underruns / overruns  %llu / %llu frames\n",
           (unsigned long long)rep.device.playback_underrun_frames,
           (unsigned long long)rep.device.capture_overrun_frames);
    return 0;
}
