/*  tests/testutil.h - what every test suite shares: the suite table entry
    points, temporary folders that are always removed, the path to
    ../shared/data, and visible skips.

    A suite lives in tests/test_<module>.c and exports one CU_TestInfo array,
    `st_tests_<module>`, listed once in tests/main.c.
*/
#ifndef ST_TESTUTIL_H
#define ST_TESTUTIL_H

#include <CUnit/CUnit.h>
#include <stdbool.h>
#include <stddef.h>

/*  Makes a fresh folder under $TMPDIR (or /tmp) and returns its path; every
    folder made this way is removed with its contents when the runner exits,
    whatever the outcome. Borrowed string. */
const char *st_test_tmpdir(void);

/*  Joins the temporary folder and a file name into buf; returns buf. */
char *st_test_tmpfile(char *buf, size_t cap, const char *name);

/*  The shared data folder (../shared/data beside the project, or
    $ST_SHARED_DATA), or NULL when it is absent. */
const char *st_test_shared_data(void);

/*  The spiketalk binary the CLI tests run: $ST_CLI, else build/spiketalk
    (from the repository root). */
const char *st_test_cli(void);

/*  Runs `spiketalk ARGS` (st_test_cli(), through the shell) with stderr
    merged into stdout; returns the exit status (-1: it did not run or
    exit) and *out, all it printed (the caller frees). */
int st_test_run_cli(const char *args, char **out);

/*  A whole file as a NUL-terminated string (the caller frees), or NULL
    when it cannot be read. */
char *st_test_read_file(const char *path);

/*  The number after "key": in a JSON text, NAN when the key is absent or no
    number follows it. */
double st_test_json_number(const char *json, const char *key);

/*  Records a skip with its reason; the runner prints every skip at the end, so
    none is silent. */
void st_test_skip(const char *test, const char *reason);

/*  Allocation counting (tests/alloc_count.c interposes malloc & co). Counts
    allocations made by any thread while st_rt_active() is true for it.
    st_test_alloc_live() is false where the interposer cannot work (under a
    sanitizer or valgrind, which bring their own malloc). */
unsigned long st_test_rt_allocs(void);
unsigned long st_test_all_allocs(void);
bool st_test_alloc_live(void);

/*  Fault injection (tests/alloc_count.c): the n-th allocation (1-based) of
    the calling thread after this call returns NULL; bytes the thread
    allocates minus those it frees are counted until disarm, which returns
    the allocations seen and the net bytes. faults_live: false where it
    cannot work (ASan, valgrind). */
void st_test_alloc_fail_at(unsigned long n);
unsigned long st_test_alloc_disarm(long long *net_bytes);
bool st_test_alloc_faults_live(void);

/*  Fills buf with deterministic band-limited noise (a seeded xorshift through
    a four-pole low-pass), scaled to an RMS of 0.1 (peaks about 0.4): a signal
    with one clear cross-correlation peak. */
void st_test_noise(float *buf, size_t n, unsigned seed, int rate_hz, double cutoff_hz);

#define ST_SUITE(name) extern CU_TestInfo st_tests_##name[]

#endif
