/*  tests/test_snn_example.c - suite `snn_example`: the usage example in
    snn/snn.h's opening comment compiles against libspiketalk and runs, so the
    header's documentation cannot drift from the API. Needs the C compiler
    (build-essential, installed by tools/deps) and the environment the
    Makefile's test target sets: ST_BUILD (the build folder) and ST_LINK (the
    link flags, sanitizer included). */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Writes the lines between EXAMPLE-BEGIN and EXAMPLE-END of `header` to
   `out`, without their 4-space comment indent; returns how many. */
static int extract(const char *header, const char *out)
{
    FILE *in = fopen(header, "r"), *o = fopen(out, "w");
    if (!in || !o) {
        if (in)
            fclose(in);
        if (o)
            fclose(o);
        return -1;
    }
    char line[512];
    int inside = 0, n = 0;
    while (fgets(line, sizeof line, in)) {
        if (strstr(line, "EXAMPLE-BEGIN")) {
            inside = 1;
            continue;
        }
        if (strstr(line, "EXAMPLE-END"))
            break;
        if (inside) {
            fputs(strncmp(line, "    ", 4) ? line : line + 4, o);
            n++;
        }
    }
    fclose(in);
    fclose(o);
    return n;
}

static void test_header_example_compiles_and_runs(void)
{
    const char *build = getenv("ST_BUILD"), *link = getenv("ST_LINK");
    if (!build || !link) {
        st_test_skip("snn_example:header_example_compiles_and_runs",
                     "ST_BUILD/ST_LINK not set: run it through `make test`");
        return;
    }
    char src[512], bin[512], log[512], cmd[4096];
    st_test_tmpfile(src, sizeof src, "snn_example.c");
    st_test_tmpfile(bin, sizeof bin, "snn_example");
    st_test_tmpfile(log, sizeof log, "snn_example.log");
    CU_ASSERT_FATAL(extract("snn/snn.h", src) > 20);
    snprintf(cmd, sizeof cmd, "cc -std=c11 -Wall -Wextra -Werror -I. -o %s %s %s/libspiketalk.a %s > %s 2>&1",
             bin, src, build, link, log);
    int rc = system(cmd);
    CU_ASSERT_EQUAL(rc, 0);
    if (rc) {
        snprintf(cmd, sizeof cmd, "cat %s >&2", log);
        (void)system(cmd);
        return;
    }
    snprintf(cmd, sizeof cmd, "%s > %s 2>&1", bin, log);
    CU_ASSERT_EQUAL(system(cmd), 0);
    FILE *f = fopen(log, "r");
    char out[256] = "";
    if (f) {
        if (!fgets(out, sizeof out, f))
            out[0] = '\0';
        fclose(f);
    }
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "synaptic ops"));
}

CU_TestInfo st_tests_snn_example[] = {
    {"header_example_compiles_and_runs", test_header_example_compiles_and_runs},
    CU_TEST_INFO_NULL,
};
