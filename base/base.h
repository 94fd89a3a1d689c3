/*  base/base.h - what every layer of spiketalk shares: error codes, the thread's
    last error message, logging, a real-time guard, the monotonic clock, a
    small pool of worker threads for the trainers, the small-sample
    statistics the reports compare windows with, and scratch folders.

    The lowest layer: it depends on libc (and libm) only, and audio/, snn/,
    tts/ and pipeline/ all sit on it. Nothing here but the worker pool, the
    statistics and the scratch folders allocates after first use or
    blocks, so every other function may be called from any thread,
    including the audio callback (st_rt_* and the clock are meant for it).
*/
#ifndef ST_BASE_H
#define ST_BASE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ST_VERSION_MAJOR 0
#define ST_VERSION_MINOR 1
#define ST_VERSION_PATCH 0
#define ST_VERSION_STRING "0.1.0"

#if defined(__GNUC__)
#define ST_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define ST_PRINTF(fmt, args)
#endif

/*  Error codes. Functions return int: ST_OK (0) on success, one of these
    (negative) otherwise. Constructors return NULL and report the code through
    an `int *err` argument (which may be NULL). */
typedef enum {
    ST_OK = 0,
    ST_ERR_NOMEM = -1,       /* an allocation failed */
    ST_ERR_INVALID = -2,     /* an argument or parameter is out of range */
    ST_ERR_IO = -3,          /* a read, write, open or close failed */
    ST_ERR_FORMAT = -4,      /* input data is not in the expected format */
    ST_ERR_NOT_FOUND = -5,   /* a file, device or name does not exist */
    ST_ERR_DEVICE = -6,      /* the audio device layer failed */
    ST_ERR_UNSUPPORTED = -7, /* valid, but not supported by this build */
    ST_ERR_STATE = -8,       /* called in the wrong state (e.g. not started) */
    ST_ERR_TIMEOUT = -9,     /* a wait ran out of time */
    ST_ERR_END = -10,        /* end of stream: no more data will come */
    ST_ERR_INTERNAL = -11    /* a bug in spiketalk: please report it */
} st_err;

/*  A static, one-line description of an error code; never NULL. */
const char *st_strerror(int code);

/*  The calling thread's last detailed error message ("audio file 'x.wav':
    truncated: ..."), set by the function that returned the error. Borrowed:
    valid until this thread's next failing call. Empty when none. */
const char *st_errmsg(void);

/*  Sets the calling thread's detailed error message and returns `code`, so
    that library code can write `return st_error(ST_ERR_IO, "...", ...)`. */
int st_error(int code, const char *fmt, ...) ST_PRINTF(2, 3);

/*  Clears the calling thread's error message. */
void st_error_clear(void);

/*  Logging. Library code never prints: it logs through this callback, and the
    application (the CLI, a binding) decides what reaches the terminal. With no
    callback set, messages are dropped. The callback may be called from any
    thread except the audio callback, which never logs. */
typedef enum { ST_LOG_ERROR = 0, ST_LOG_WARN, ST_LOG_INFO, ST_LOG_DEBUG } st_log_level;
typedef void (*st_log_fn)(st_log_level level, const char *msg, void *user_data);

void st_log_set(st_log_fn fn, void *user_data);
void st_log(st_log_level level, const char *fmt, ...) ST_PRINTF(2, 3);

/*  Real-time guard. Code on the audio path brackets its work with
    st_rt_enter()/st_rt_leave(); st_rt_active() tells whether the calling
    thread is inside such a section. Tests use it to count allocations made on
    the audio path (there must be none). A thread-local flag: no lock, no
    allocation. */
void st_rt_enter(void);
void st_rt_leave(void);
bool st_rt_active(void);

/*  Monotonic clock in seconds (CLOCK_MONOTONIC), for stamps and latency. */
double st_now_s(void);

/*  Sleeps until the monotonic clock reads `deadline_s`. Not for the audio
    callback. */
void st_sleep_until_s(double deadline_s);

/*  All n bytes to / from a file descriptor (base/fdio.c), looping over short
    transfers and EINTR; false on an error or, reading, an early end. */
bool st_write_all(int fd, const void *buf, size_t n);
bool st_read_all(int fd, void *buf, size_t n);

/*  A private scratch folder (base/tmpdir.c). st_tmpdir_make() makes
    "$TMPDIR/<prefix>.XXXXXX" (/tmp without TMPDIR, or where that path would
    not fit in cap bytes, as for an ipc:// endpoint's short limit) with mode
    0700 and writes its path into dir; ST_ERR_IO (the message names the
    folder and why) or ST_ERR_INVALID (a prefix with '/') and dir "" on
    failure. st_tmpdir_remove() removes everything inside dir, sub-folders
    too (links removed, never followed), except the entry named keep (NULL:
    none), then dir itself unless something was kept: a failed run keeps its
    log for the message that names it. Not for the audio path. */
int st_tmpdir_make(char *dir, size_t cap, const char *prefix);
void st_tmpdir_remove(const char *dir, const char *keep);

/*  Worker threads for data-parallel jobs (base/workers.c): st_workers_run()
    calls fn(ctx, item, worker) for every item in 0..n_items-1, items handed
    out one at a time to n_threads - 1 workers and the caller (worker ids
    1..n-1, the caller 0), and returns when all are done. One job at a time,
    from one thread. n_threads <= 1 (or a NULL pool) runs everything on the
    caller. A job allocates nothing. For the trainers, not the audio path. */
typedef void (*st_job_fn)(void *ctx, size_t item, unsigned worker);
typedef struct st_workers st_workers;
st_workers *st_workers_new(unsigned n_threads, int *err);
void st_workers_destroy(st_workers **w_p);
unsigned st_workers_count(const st_workers *w); /* threads, the caller included */
void st_workers_run(st_workers *w, st_job_fn fn, void *ctx, size_t n_items);

/*  Small-sample statistics for reports (base/stats.c; allocates, not for the
    audio path). st_hd_quantile: the p-th percentile (0..100) of n values
    sorted ascending, by the Harrell-Davis estimator (every order statistic
    weighted by a beta distribution around the p-th); NAN when n is 0.
    st_shift_test: how far sample b lies from sample a, in units of a
    limit: for each of the n_pct percentiles, the difference of the two
    Harrell-Davis estimates (b's minus a's) over max(rel_limit * |a's|,
    abs_floor); *shift is the median of those (so one percentile is just its
    difference; the nine deciles give the shift most of the distribution
    shares). *p_value: a two-sided permutation test, the share of `rounds`
    random splits of the pooled values (plus the observed one) whose |shift|
    is at least as large; draws from `seed`, the same on every machine.
    ST_ERR_INVALID for an empty sample, a percentile outside 0..100, a
    negative limit or no rounds. */
double st_hd_quantile(const double *sorted, size_t n, double p);
int st_shift_test(const double *a, size_t na, const double *b, size_t nb, const double *pct,
                  size_t n_pct, double rel_limit, double abs_floor, unsigned rounds,
                  uint64_t seed, double *shift, double *p_value);

#ifdef __cplusplus
}
#endif
#endif
