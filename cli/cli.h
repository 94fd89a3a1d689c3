/*  cli/cli.h - the spiketalk command-line tool: one file per command
    (cli/cmd_<name>.c), each a thin layer over the public library API.

    A command is `int st_cmd_<name>(int argc, char **argv)` where argv[0] is
    the command's own name; it returns the process exit status (0 success,
    1 failure, 2 bad usage). Commands print errors through cli_fail(), which
    writes "spiketalk <command>: <message>" to stderr.
*/
#ifndef ST_CLI_H
#define ST_CLI_H

#include "base/base.h"

#include <stdbool.h>
#include <stdio.h>

/* ---- the commands (cli/main.c holds the table) ---- */
int st_cmd_devices(int argc, char **argv);
int st_cmd_loopback(int argc, char **argv);
int st_cmd_bench(int argc, char **argv);
int st_cmd_demo(int argc, char **argv);
int st_cmd_live(int argc, char **argv);   /* cli/cmd_live.c */
/*  A model file: given, else $env, else rel under the current folder, else
    rel beside the folder of the binary (cli/cmd_demo.c); rel NULL: no default
    file. NULL: none. */
const char *cli_agent_find_model(const char *given, const char *env, const char *rel, char *buf,
                                 size_t cap);
/*  The agent's recognizer (demo, live, bench latency, soak): the streaming
    one, trained on whole requests (models/README.md "asr_stream.stm");
    models/asr.stm is the isolated-word classifier the clip evaluations use.
    given, else $SPIKETALK_ASR_MODEL, else CLI_AGENT_ASR here or beside the
    binary. NULL (and an error printed for `cmd`, naming --asr): none. */
#define CLI_AGENT_ASR "models/asr_stream.stm"
/*  The spiking VAD's learned read-out (models/README.md "vad.stm"): given
    (a file, or "none" for the hand-designed read-out), else $SPIKETALK_VAD_MODEL,
    else, when `learned_default`, CLI_VAD_MODEL here or beside the binary.
    NULL: the hand-designed one. The agent's commands default to the
    hand-designed read-out (it is the better one in `bench latency` today);
    `bench vad` shows both. */
#define CLI_VAD_MODEL "models/vad.stm"
const char *cli_vad_model(const char *given, bool learned_default, char *buf, size_t cap);
const char *cli_agent_asr(const char *cmd, const char *given, char *buf, size_t cap);
int st_cmd_version(int argc, char **argv);
int st_cmd_features(int argc, char **argv); /* cli/cmd_frontend.c */
int st_cmd_vad(int argc, char **argv);      /* cli/cmd_frontend.c */
int st_cmd_snn(int argc, char **argv);
int st_cmd_snn_profile(int argc, char **argv); /* cli/snn_profile.c, via `snn` */
int st_cmd_lm(int argc, char **argv);
int st_cmd_lm_train(int argc, char **argv);       /* cli/lm_train_cmd.c, via `lm` */
int st_cmd_lm_eval(int argc, char **argv);        /* cli/lm_train_cmd.c, via `lm` */
int st_cmd_lm_eval_reply(int argc, char **argv);  /* cli/cmd_reply.c, via `lm` */
int st_cmd_lm_dialogue(int argc, char **argv);    /* cli/cmd_reply.c, via `lm` */
int st_cmd_say(int argc, char **argv);
int st_cmd_run(int argc, char **argv);
int st_cmd_stage(int argc, char **argv);
int st_cmd_replay(int argc, char **argv);
int st_cmd_keygen(int argc, char **argv); /* cli/cmd_keygen.c */
int st_cmd_soak(int argc, char **argv);   /* cli/cmd_soak.c */
int st_cmd_train(int argc, char **argv);
int st_cmd_reply(int argc, char **argv);
int st_cmd_eval(int argc, char **argv);   /* cli/cmd_asr.c */
int st_cmd_listen(int argc, char **argv); /* cli/cmd_asr.c */

/* ---- the benchmarks (`spiketalk bench NAME`, table in cli/cmd_bench.c) ----
    Each takes its own options and --json, and prints one report. */
int st_bench_ring(int argc, char **argv);
int st_bench_resample(int argc, char **argv);
int st_bench_vad(int argc, char **argv);
int st_bench_snn(int argc, char **argv);
int st_bench_lm(int argc, char **argv);
int st_bench_tts(int argc, char **argv);
int st_bench_pipeline(int argc, char **argv);
int st_bench_train(int argc, char **argv);
int st_bench_asr(int argc, char **argv);   /* cli/bench_asr.c */
int st_bench_echo(int argc, char **argv);  /* cli/bench_echo.c */
int st_bench_latency(int argc, char **argv); /* cli/bench_latency.c */

/*  The recognizer's file glue (cli/cmd_asr.c): any audio file -> 16 kHz
    (caller frees *out), and a clip's features as training made them. */
int cli_asr_read16k(const char *path, float **out, size_t *n);
struct st_frontend;
int cli_asr_clip_features(const float *x, size_t n, struct st_frontend *fe, float *feat,
                          size_t max_frames, size_t *made);
/*  The front end a recognizer was trained on (its stored mels, hop, window). */
struct st_asr;
struct st_frontend *cli_asr_frontend(const struct st_asr *a, int *err);
/*  A manifest of clips (header line, tab-separated; paths relative to its
    folder): sc12 `path label12 word speaker` (label in .label, word in
    .text), requests `path text speaker ends`, else `path text speaker`. A
    row without its fields is named on stderr ("M:LINE: expected ...") and
    counted in *bad (may be NULL). ST_ERR_IO (said) when the file cannot be
    opened; an empty list is ST_OK with *n 0. */
typedef struct {
    char *path, *text, *label, *ends, *speaker; /* speaker: "" when the row has none */
    long line; /* in the manifest, from 1 (the header) */
} cli_asr_row;
int cli_asr_read_manifest(const char *cmd, const char *path, bool sc12, bool requests,
                          cli_asr_row **rows, size_t *n, size_t *bad);
void cli_asr_free_rows(cli_asr_row *rows, size_t n);
/*  Speech Commands' 12 classes, in eval's order (yes no up down left right
    on off stop go _unknown_ _silence_): cli_sc12_label, a manifest's label's
    index (-1: not one of them); cli_sc12_of_word, the class a recognizer's
    word falls in (another word: _unknown_; none or "_silence_": _silence_). */
extern const char *const CLI_SC12[12];
int cli_sc12_label(const char *label);
int cli_sc12_of_word(const char *word);

/* ---- shared helpers (cli/util.c) ---- */

/*  Prints "spiketalk <cmd>: <message>\n" to stderr; returns 1. */
int cli_fail(const char *cmd, const char *fmt, ...) ST_PRINTF(2, 3);

/*  Prints the library's last error for a failed call: "<what>: <st_errmsg or
    st_strerror>". Returns 1. */
int cli_fail_lib(const char *cmd, int code, const char *what);

/*  Log callback that writes the library's log to stderr at or above a level
    (set by -v / -q in main). */
void cli_log_init(int verbosity);

/*  Parses a number with a unit check; on failure prints which option was
    wrong and returns false. */
bool cli_parse_double(const char *cmd, const char *opt, const char *s, double lo, double hi,
                      double *out);
bool cli_parse_int(const char *cmd, const char *opt, const char *s, long lo, long hi, long *out);

/*  A progress bar on stderr (only when stderr is a terminal): fraction 0..1,
    a label, and the estimated time left. cli_progress_done() ends the line. */
typedef struct {
    double start_s;
    double last_draw_s;
    bool tty;
    bool drawn;
} cli_progress;
void cli_progress_init(cli_progress *p);
void cli_progress_update(cli_progress *p, double fraction, const char *label);
void cli_progress_done(cli_progress *p);

/* ---- benchmark reports (cli/report.c) ----
    A report is a titled table of rows, each with named columns. It prints as
    an aligned table for people, or with --json as one JSON object:
    {"bench": NAME, "version": ..., "machine": {...}, "command": "...",
     "results": [ {column: value, ...}, ... ]}
    Column names are the documented JSON names (docs/BENCH.md). */
#define REPORT_MAX_COLS 16
#define REPORT_MAX_ROWS 64
#define REPORT_MAX_NOTES 8
typedef struct {
    char name[48];
    char unit[16];      /* printed in the table header */
    int is_text;
} report_col;
typedef struct {
    char bench[48];
    char title[128];
    char command[512];
    int ncols, nrows;
    report_col cols[REPORT_MAX_COLS];
    char text[REPORT_MAX_ROWS][REPORT_MAX_COLS][64];
    double num[REPORT_MAX_ROWS][REPORT_MAX_COLS];
    char notes[REPORT_MAX_NOTES][256];
    int nnotes;
} report;

void report_init(report *r, const char *bench, const char *title, int argc, char **argv);
void report_col_text(report *r, const char *name);
void report_col_num(report *r, const char *name, const char *unit);
int report_row(report *r);                          /* returns the new row index */
void report_set_text(report *r, int row, const char *col, const char *value);
void report_set_num(report *r, int row, const char *col, double value);
void report_note(report *r, const char *fmt, ...) ST_PRINTF(2, 3);
void report_print(const report *r, bool json, FILE *out);

/*  A plot of cumulative distributions as an SVG file: one step line per
    series (its values need not be sorted; solid or dashed, in its colour,
    named in the legend with its n and median; with `of` > n, the share is
    of `of`: a detector that missed some never reaches 1) and a dotted
    vertical per mark (a target). The x axis runs from min(0, the lowest
    5th percentile) to the highest 99th percentile or the last mark,
    whichever is further, within x_lo..x_hi (values outside are drawn at
    the edge). ST_ERR_IO naming the path. */
typedef struct {
    const char *name;
    const double *v;
    int n;
    const char *colour;  /* "#1f77b4" */
    bool dashed;
    int of;              /* the whole the shares are of; 0: n */
} report_cdf_series;
typedef struct {
    double x;
    const char *label;
} report_cdf_mark;
int report_cdf_svg(const char *path, const char *title, const char *x_label,
                   const report_cdf_series *series, int n_series, const report_cdf_mark *marks,
                   int n_marks, double x_lo, double x_hi);

/*  qsort's comparison of doubles, ascending (NaN compares equal to all). */
int cli_cmp_double(const void *a, const void *b);

/*  The p-th percentile (p in 0..100) of n doubles, v left as it is; NAN
    when n <= 0 or out of memory. Two definitions, each benchmark keeping
    the one its published figures were measured with:
    cli_percentile: linear interpolation between the closest ranks (numpy's
    default): bench latency, the demo's summary;
    cli_percentile_rank: the nearest rank, the smallest value with at
    least p % of the values at or under it: bench vad, tts and lm, the
    plots' ranges. */
double cli_percentile(const double *v, int n, double p);
double cli_percentile_rank(const double *v, int n, double p);

/*  For data already sorted: v's n values sorted into a new array the caller
    frees (NULL when n <= 0 or out of memory), and the nearest-rank p-th
    percentile of sorted s (n > 0), as cli_percentile_rank. */
double *cli_sorted_copy(const double *v, int n);
double cli_rank_of_sorted(const double *s, int n, double p);

/*  Median of n doubles (sorts a copy in place of `v`). */
double cli_median(double *v, int n);

/*  Runs argv (argv[0] a path: a peer of tools/peers, say) with its
    stdout into out (NUL-terminated, at most cap - 1 bytes; the rest is
    read and dropped) and its stderr into err_path (NULL: dropped). The
    exit status, or -1 when it could not run. */
int cli_run_capture(char *const argv[], char *out, size_t cap, const char *err_path);

#endif
