/*  pipeline/pipeline_impl.h - what the files of pipeline/ share and nobody
    else sees: the built-in stage types, listed once in registry.c. */
#ifndef ST_PIPELINE_IMPL_H
#define ST_PIPELINE_IMPL_H

#include "pipeline.h"

extern const st_stage_type st__stage_passthrough;
extern const st_stage_type st__stage_audio_source;
extern const st_stage_type st__stage_audio_sink;
extern const st_stage_type st__stage_resampler;
extern const st_stage_type st__stage_recorder;
extern const st_stage_type st__stage_replay;
extern const st_stage_type st__stage_text_source;
extern const st_stage_type st__stage_rewrite;
extern const st_stage_type st__stage_text_sink;
extern const st_stage_type st__stage_synthesizer;
extern const st_stage_type st__stage_vad;
extern const st_stage_type st__stage_recognizer;
extern const st_stage_type st__stage_lm;
extern const st_stage_type st__stage_encoder;

/*  Configuration internals for the supervisor (config.c). */
typedef struct {
    int transport;              /* 0 inproc, 1 ipc, 2 tcp */
    bool needs_ipc, needs_tcp;  /* an ipc_dir / base_port must be chosen at run time */
    long base_port, restarts;
    double heartbeat_ms, heartbeat_timeout_ms, start_timeout_s, metrics_ms, orphan_s;
    bool required[ST_PIPE_MAX_STAGES];
    int start_order[ST_PIPE_MAX_STAGES]; /* downstream first: binds before connects */
    int group_head[ST_PIPE_MAX_STAGES];  /* `thread =`: the first stage of its fused chain, -1 alone */
    int fused_next[ST_PIPE_MAX_STAGES];  /* the next stage of its fused chain, -1 none */
} st__pipe_settings;

st_pipe_config *st__pipe_config_dup(const st_pipe_config *c);
bool st__pipe_config_from_file(const st_pipe_config *c);
void st__pipe_config_settings(const st_pipe_config *c, st__pipe_settings *o);
/*  The --set arguments that make the file into this configuration. */
int st__pipe_config_overrides(const st_pipe_config *c, char out[][320], int max);

#endif
