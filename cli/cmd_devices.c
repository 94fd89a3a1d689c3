/*  cli/cmd_devices.c - `spiketalk devices`: the audio devices PortAudio sees. */
#include "cli.h"

#include "audio/audio.h"

#include <string.h>

int st_cmd_devices(int argc, char **argv)
{
    if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        printf("usage: spiketalk devices\n\n"
               "Lists the audio devices PortAudio finds (ALSA, JACK, ...): index, host API,\n"
               "channels in/out, default rate and the lowest latency each allows. '*' marks\n"
               "the default input (i) and output (o). Pick one for `spiketalk loopback` with\n"
               "--device '#N' or a part of its name. With no sound card it says so and exits 0:\n"
               "the virtual devices (--input FILE) need none.\n");
        return 0;
    }
    if (argc > 1)
        return cli_fail("devices", "unexpected argument '%s' (see --help)", argv[1]), 2;
    st_device_desc devs[64];
    int n = st_device_list(devs, 64);
    if (n < 0)
        return cli_fail_lib("devices", n, "cannot list audio devices");
    if (n == 0) {
        printf("no audio devices found (no sound card, and no JACK server running).\n"
               "Everything still runs on the virtual devices: spiketalk loopback --input FILE\n");
        return 0;
    }
    printf("%-4s %-3s %-24s %-32s %6s %6s %8s %10s %10s\n", "#", "def", "host API", "name", "in",
           "out", "rate", "lat in ms", "lat out ms");
    for (int i = 0; i < n && i < 64; i++) {
        const st_device_desc *d = &devs[i];
        printf("%-4d %c%c  %-24.24s %-32.32s %6d %6d %8.0f %10.1f %10.1f\n", d->index,
               d->is_default_input ? 'i' : ' ', d->is_default_output ? 'o' : ' ', d->host_api,
               d->name, d->max_input_channels, d->max_output_channels, d->default_rate_hz,
               d->default_low_input_latency_s * 1e3, d->default_low_output_latency_s * 1e3);
    }
    return 0;
}
