/*  cli/scenario_synth.h - the synthesizer behind the scenario renderer,
    shared by `bench latency` and `soak` (cli/scenario_synth.c): pass
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

#endif
