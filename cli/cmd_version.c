/*  cli/cmd_version.c - `spiketalk version`: this build and its libraries. */
#include "cli.h"

#include <portaudio.h>
#include <samplerate.h>
#include <sndfile.h>
#include <string.h>

int st_cmd_version(int argc, char **argv)
{
    if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        printf("usage: spiketalk version\n\nPrints spiketalk's version and the versions of the "
               "libraries it runs on.\n");
        return 0;
    }
    char sf[64];
    sf_command(NULL, SFC_GET_LIB_VERSION, sf, sizeof sf);
    printf("spiketalk %s\n", ST_VERSION_STRING);
    printf("  %s\n  %s\n  %s\n", Pa_GetVersionText(), src_get_version(), sf);
    return 0;
}
