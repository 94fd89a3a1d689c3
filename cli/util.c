/*  cli/util.c - what every command shares: error printing, the log sink,
    number parsing with a message that names the option, the progress bar,
    running a peer program for its output. */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int cli_fail(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "spiketalk %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return 1;
}

int cli_fail_lib(const char *cmd, int code, const char *what)
{
    const char *msg = st_errmsg();
    if (msg && *msg)
        return cli_fail(cmd, "%s: %s", what, msg);
    return cli_fail(cmd, "%s: %s", what, st_strerror(code));
}

static int log_threshold;

static void log_to_stderr(st_log_level level, const char *msg, void *user_data)
{
    static const char *names[] = {"error", "warning", "info", "debug"};
    if ((int)level <= log_threshold)
        fprintf(stderr, "spiketalk: %s: %s\n", names[level], msg);
}

void cli_log_init(int verbosity)
{
    /* 0: errors; 1 (default): warnings; 2: info; 3: debug */
    log_threshold = verbosity < 0 ? 0 : verbosity > 3 ? 3 : verbosity;
    st_log_set(log_to_stderr, NULL);
}

bool cli_parse_double(const char *cmd, const char *opt, const char *s, double lo, double hi,
                      double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v)) {
        cli_fail(cmd, "%s: '%s' is not a number", opt, s);
        return false;
    }
    if (v < lo || v > hi) {
        cli_fail(cmd, "%s: %g is out of range (%g to %g)", opt, v, lo, hi);
        return false;
    }
    *out = v;
    return true;
}

bool cli_parse_int(const char *cmd, const char *opt, const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end) {
        cli_fail(cmd, "%s: '%s' is not a whole number", opt, s);
        return false;
    }
    if (v < lo || v > hi) {
        cli_fail(cmd, "%s: %ld is out of range (%ld to %ld)", opt, v, lo, hi);
        return false;
    }
    *out = v;
    return true;
}

void cli_progress_init(cli_progress *p)
{
    p->start_s = st_now_s();
    p->last_draw_s = 0;
    p->tty = isatty(STDERR_FILENO);
    p->drawn = false;
}

void cli_progress_update(cli_progress *p, double fraction, const char *label)
{
    if (!p->tty)
        return;
    double now = st_now_s();
    if (p->drawn && now - p->last_draw_s < 0.1 && fraction < 1.0)
        return;
    p->last_draw_s = now;
    p->drawn = true;
    if (fraction < 0)
        fraction = 0;
    if (fraction > 1)
        fraction = 1;
    const int width = 30;
    int filled = (int)(fraction * width + 0.5);
    char bar[64];
    for (int i = 0; i < width; i++)
        bar[i] = i < filled ? '#' : '.';
    bar[width] = '\0';
    double elapsed = now - p->start_s;
    double left = fraction > 0.01 ? elapsed * (1 - fraction) / fraction : 0;
    fprintf(stderr, "\r%s [%s] %3.0f%%  %.1fs elapsed, %.1fs left  ", label ? label : "", bar,
            fraction * 100, elapsed, left);
    fflush(stderr);
}

void cli_progress_done(cli_progress *p)
{
    if (p->tty && p->drawn)
        fputc('\n', stderr);
    p->drawn = false;
}

int cli_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double *cli_sorted_copy(const double *v, int n)
{
    double *s = n > 0 ? malloc((size_t)n * sizeof *s) : NULL;
    if (s) {
        memcpy(s, v, (size_t)n * sizeof *s);
        qsort(s, (size_t)n, sizeof *s, cli_cmp_double);
    }
    return s;
}

double cli_percentile(const double *v, int n, double p)
{
    double *s = cli_sorted_copy(v, n);
    if (!s)
        return NAN;
    double r = p / 100.0 * (n - 1);
    int lo = (int)r;
    double x = lo + 1 < n ? s[lo] + (r - lo) * (s[lo + 1] - s[lo]) : s[lo];
    free(s);
    return x;
}

double cli_rank_of_sorted(const double *s, int n, double p)
{
    int k = (int)ceil(p / 100.0 * n) - 1;
    return s[k < 0 ? 0 : k >= n ? n - 1 : k];
}

double cli_percentile_rank(const double *v, int n, double p)
{
    double *s = cli_sorted_copy(v, n);
    if (!s)
        return NAN;
    double x = cli_rank_of_sorted(s, n, p);
    free(s);
    return x;
}

double cli_median(double *v, int n)
{
    if (n <= 0)
        return NAN;
    qsort(v, (size_t)n, sizeof *v, cli_cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int cli_run_capture(char *const argv[], char *out, size_t cap, const char *err_path)
{
    int fd[2];
    out[0] = '\0';
    if (pipe(fd) != 0)
        return -1;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        close(fd[0]);
        close(fd[1]);
        return -1;
    }
    if (pid == 0) {
        int err = err_path ? open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600)
                           : open("/dev/null", O_WRONLY);
        if (err >= 0)
            dup2(err, 2);
        dup2(fd[1], 1);
        close(fd[0]);
        close(fd[1]);
        execv(argv[0], argv);
        _exit(127);
    }
    close(fd[1]);
    size_t len = 0;
    for (;;) {
        /* past cap the rest is read and dropped: a child blocked on a full
           pipe would never exit */
        char sink[4096];
        char *to = len + 1 < cap ? out + len : sink;
        size_t room = len + 1 < cap ? cap - 1 - len : sizeof sink;
        ssize_t got = read(fd[0], to, room);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        if (to != sink)
            len += (size_t)got;
    }
    out[len] = '\0';
    close(fd[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}
