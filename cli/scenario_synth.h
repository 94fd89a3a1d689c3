/*  cli/scenario_synth.h - what `bench latency` and `soak` share to play
    scenarios (cli/scenario_synth.c): the scenario files a command runs, and
    the synthesizer behind the scenario renderer. For the latter, pass
    cli_scenario_synth as st_scenario_render_params.synth and a cache as its
    synth_data. The cache keeps up to `capacity` st_tts voices at rate_hz,
    evicting the oldest. */
#ifndef ST_CLI_SCENARIO_SYNTH_H
#define ST_CLI_SCENARIO_SYNTH_H

#include "audio/audio.h"

typedef struct cli_synth_cache cli_synth_cache;

cli_synth_cache *cli_synth_cache_new(int capacity, int rate_hz); /* NULL: out of memory */
void cli_synth_cache_clear(cli_synth_cache *c);                 /* frees the voices */
void cli_synth_cache_destroy(cli_synth_cache **c_p);
int cli_scenario_synth(void *user_data, const char *engine, const char *voice, int rate_wpm,
                       const char *text, st_scenario_clip *out);

/*  Adds a scenario file, or a folder's *.ini files in name order, to
    files[*n ..] (at most max in all). 0, or cli_fail()'s status (naming
    cmd) when a file does not fit. */
int cli_scenario_add_path(const char *cmd, const char *path, char files[][512], int *n, int max);

/*  The standard set: ./scenarios, or the scenarios/ folder beside the
    binary's parent (an installed or out-of-tree run). */
void cli_scenario_add_default(const char *cmd, char files[][512], int *n, int max);

#endif
