/*  tests/main.c - the test runner: every suite, registered from one table.

    spiketalk-tests                run every suite
    spiketalk-tests ring device    run the named suites
    spiketalk-tests ring:push_pull run one test of a suite
    spiketalk-tests --list         list suites and tests

    Exits non-zero when any test fails (CU_get_number_of_failures(), not
    CU_basic_run_tests()'s return). Skips are printed at the end.
*/
#include "testutil.h"

#include "base/base.h"

#include <CUnit/Basic.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

ST_SUITE(base);
ST_SUITE(ring);
ST_SUITE(file);
ST_SUITE(resample);
ST_SUITE(device);
ST_SUITE(loopback);
ST_SUITE(cli);
ST_SUITE(frontend);
ST_SUITE(vad);
ST_SUITE(snn);
ST_SUITE(snn_example);
ST_SUITE(lm);
ST_SUITE(lm_train);
ST_SUITE(snn_perf);
ST_SUITE(snn_files);
ST_SUITE(train);
ST_SUITE(asr);
ST_SUITE(asr_beam);
ST_SUITE(tts);
ST_SUITE(wire);
ST_SUITE(pipeline);
ST_SUITE(fuzz_regress);
ST_SUITE(security);
ST_SUITE(faults);
ST_SUITE(agent);
ST_SUITE(echo);
ST_SUITE(scenario);
ST_SUITE(netns);

/* One line a suite, in dependency order. */
static CU_SuiteInfo suites[] = {
    {"base", NULL, NULL, NULL, NULL, st_tests_base},
    {"ring", NULL, NULL, NULL, NULL, st_tests_ring},
    {"file", NULL, NULL, NULL, NULL, st_tests_file},
    {"resample", NULL, NULL, NULL, NULL, st_tests_resample},
    {"device", NULL, NULL, NULL, NULL, st_tests_device},
    {"loopback", NULL, NULL, NULL, NULL, st_tests_loopback},
    {"cli", NULL, NULL, NULL, NULL, st_tests_cli},
    {"frontend", NULL, NULL, NULL, NULL, st_tests_frontend},
    {"vad", NULL, NULL, NULL, NULL, st_tests_vad},
    {"snn", NULL, NULL, NULL, NULL, st_tests_snn},
    {"snn_example", NULL, NULL, NULL, NULL, st_tests_snn_example},
    {"lm", NULL, NULL, NULL, NULL, st_tests_lm},
    {"lm_train", NULL, NULL, NULL, NULL, st_tests_lm_train},
    {"snn_perf", NULL, NULL, NULL, NULL, st_tests_snn_perf},
    {"snn_files", NULL, NULL, NULL, NULL, st_tests_snn_files},
    {"train", NULL, NULL, NULL, NULL, st_tests_train},
    {"asr", NULL, NULL, NULL, NULL, st_tests_asr},
    {"asr_beam", NULL, NULL, NULL, NULL, st_tests_asr_beam},
    {"tts", NULL, NULL, NULL, NULL, st_tests_tts},
    {"wire", NULL, NULL, NULL, NULL, st_tests_wire},
    {"pipeline", NULL, NULL, NULL, NULL, st_tests_pipeline},
    {"fuzz_regress", NULL, NULL, NULL, NULL, st_tests_fuzz_regress},
    {"security", NULL, NULL, NULL, NULL, st_tests_security},
    {"faults", NULL, NULL, NULL, NULL, st_tests_faults},
    {"agent", NULL, NULL, NULL, NULL, st_tests_agent},
    {"echo", NULL, NULL, NULL, NULL, st_tests_echo},
    {"scenario", NULL, NULL, NULL, NULL, st_tests_scenario},
    {"netns", NULL, NULL, NULL, NULL, st_tests_netns},
    CU_SUITE_INFO_NULL,
};

/* ---- temporary folders, removed at exit ---------------------------------- */

#define MAX_TMPDIRS 64
static char *tmpdirs[MAX_TMPDIRS];
static int n_tmpdirs;

static void remove_tmpdirs(void)
{
    for (int i = 0; i < n_tmpdirs; i++) {
        st_tmpdir_remove(tmpdirs[i], NULL);
        free(tmpdirs[i]);
    }
    n_tmpdirs = 0;
}

const char *st_test_tmpdir(void)
{
    char tmpl[4096];
    if (n_tmpdirs == MAX_TMPDIRS || st_tmpdir_make(tmpl, sizeof tmpl, "spiketalk-test")) {
        fprintf(stderr, "cannot make a temporary folder: %s\n",
                n_tmpdirs == MAX_TMPDIRS ? "too many" : st_errmsg());
        exit(2);
    }
    tmpdirs[n_tmpdirs] = strdup(tmpl);
    return tmpdirs[n_tmpdirs++];
}

char *st_test_tmpfile(char *buf, size_t cap, const char *name)
{
    static const char *dir;
    if (!dir)
        dir = st_test_tmpdir();
    snprintf(buf, cap, "%s/%s", dir, name);
    return buf;
}

/* ---- shared data and skips ------------------------------------------------ */

const char *st_test_cli(void)
{
    const char *p = getenv("ST_CLI");
    return p && *p ? p : "build/spiketalk";
}

char *st_test_read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    long n = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    if (n >= 0 && fseek(f, 0, SEEK_SET) == 0 && (buf = malloc((size_t)n + 1)))
        buf[fread(buf, 1, (size_t)n, f)] = '\0';
    fclose(f);
    return buf;
}

int st_test_run_cli(const char *args, char **out)
{
    size_t cl = strlen(st_test_cli()) + strlen(args) + 16;
    char *cmd = malloc(cl);
    snprintf(cmd, cl, "%s %s 2>&1", st_test_cli(), args);
    FILE *f = popen(cmd, "r");
    free(cmd);
    size_t cap = 1 << 16, len = 0, n;
    char *buf = malloc(cap);
    while (f && (n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (len + 1 == cap)
            buf = realloc(buf, cap *= 2);
    }
    buf[len] = '\0';
    *out = buf;
    if (!f)
        return -1;
    int status = pclose(f);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

double st_test_json_number(const char *json, const char *key)
{
    char pat[128];
    snprintf(pat, sizeof pat, "\"%s\": ", key);
    const char *p = json ? strstr(json, pat) : NULL;
    if (!p)
        return NAN;
    char *end;
    double v = strtod(p + strlen(pat), &end);
    return end == p + strlen(pat) ? NAN : v;
}

const char *st_test_shared_data(void)
{
    static char path[4096];
    const char *env = getenv("ST_SHARED_DATA");
    snprintf(path, sizeof path, "%s", env && *env ? env : "../shared/data");
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode) ? path : NULL;
}

#define MAX_SKIPS 128
static char skips[MAX_SKIPS][256];
static int n_skips;

void st_test_skip(const char *test, const char *reason)
{
    if (n_skips < MAX_SKIPS)
        snprintf(skips[n_skips++], sizeof skips[0], "%s: %s", test, reason);
}

/* ---- the runner ----------------------------------------------------------- */

static int add_suite(const CU_SuiteInfo *si, const char *only_test)
{
    CU_pSuite s = CU_add_suite(si->pName, si->pInitFunc, si->pCleanupFunc);
    if (!s)
        return -1;
    int added = 0;
    for (const CU_TestInfo *t = si->pTests; t->pName; t++) {
        if (only_test && strcmp(only_test, t->pName))
            continue;
        if (!CU_add_test(s, t->pName, t->pTestFunc))
            return -1;
        added++;
    }
    if (only_test && !added) {
        fprintf(stderr, "no test '%s' in suite '%s' (try --list)\n", only_test, si->pName);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && (!strcmp(argv[1], "--list") || !strcmp(argv[1], "--help"))) {
        printf("usage: %s [SUITE[:TEST] ...]\n", argv[0]);
        for (const CU_SuiteInfo *si = suites; si->pName; si++) {
            printf("%s:", si->pName);
            for (const CU_TestInfo *t = si->pTests; t->pName; t++)
                printf(" %s", t->pName);
            printf("\n");
        }
        return 0;
    }
    atexit(remove_tmpdirs);
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 2;
    int rc = 0;
    if (argc == 1) {
        for (const CU_SuiteInfo *si = suites; si->pName && !rc; si++)
            rc = add_suite(si, NULL);
    }
    for (int a = 1; a < argc && !rc; a++) {
        char name[256];
        snprintf(name, sizeof name, "%s", argv[a]);
        char *colon = strchr(name, ':');
        if (colon)
            *colon++ = '\0';
        const CU_SuiteInfo *si = suites;
        while (si->pName && strcmp(si->pName, name))
            si++;
        if (!si->pName) {
            fprintf(stderr, "no suite '%s' (try --list)\n", name);
            rc = -1;
            break;
        }
        rc = add_suite(si, colon);
    }
    if (rc) {
        CU_cleanup_registry();
        return 2;
    }
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failures = CU_get_number_of_failures();
    unsigned suites_failed = CU_get_number_of_suites_failed();
    CU_cleanup_registry();
    for (int i = 0; i < n_skips; i++)
        printf("SKIPPED %s\n", skips[i]);
    if (failures || suites_failed) {
        printf("\nFAILED: %u assertion(s) failed, %u suite(s) could not run\n", failures, suites_failed);
        return 1;
    }
    printf("\nall tests passed%s\n", n_skips ? " (with the skips above)" : "");
    return 0;
}
