/*  fuzz/fuzz_config.c - libFuzzer target for pipeline configuration files
    (pipeline/config.c over libinih): st_pipe_config_parse on the input,
    then what a supervisor does with an accepted file: every stage resolved
    (st_pipe_config_stage), the whole written back (st_pipe_config_write,
    which a stage process reads), and that text parsed again, which must
    succeed and write the same bytes. An input holding a NUL byte is split
    there: the rest is one "SECTION.KEY=VALUE" override (st_pipe_config_set,
    the CLI's --set).

    Seeds: fuzz/corpus/config (the built-in pipeline and the example
    pipelines of docs/examples, copied by fuzz/corpus.c). Touches: memory only.
*/
#include "fuzz.h"
#include "pipeline/pipeline.h"

#include <stdlib.h>
#include <string.h>

static char *write_text(const st_pipe_config *c, size_t *len)
{
    char *buf = NULL;
    FILE *f = open_memstream(&buf, len);
    if (!f)
        abort();
    int rc = st_pipe_config_write(c, f);
    fclose(f);
    if (rc) {
        free(buf);
        return NULL;
    }
    return buf;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    st_fuzz_quiet();
    char *text = malloc(size + 1);
    if (!text)
        abort();
    memcpy(text, data, size);
    text[size] = 0;
    size_t text_len = strlen(text);
    const char *assignment = text_len < size ? text + text_len + 1 : NULL;

    int err;
    st_pipe_config *c = st_pipe_config_parse(text, "fuzz.ini", &err);
    if (!c) {
        if (err == ST_OK)
            abort();
        free(text);
        return 0;
    }
    if (assignment)
        st_pipe_config_set(c, assignment);
    size_t n = st_pipe_config_stage_count(c);
    if (n > ST_PIPE_MAX_STAGES)
        abort();
    for (size_t i = 0; i < n; i++) {
        const char *name = st_pipe_config_stage_name(c, i);
        if (!name || !st_pipe_config_stage_type(c, i))
            abort();
        st_stage_config sc;
        st_pipe_config_stage(c, name, &sc);
        (void)st_pipe_config_stage_process(c, i);
        (void)st_pipe_config_stage_external(c, i);
    }
    (void)st_pipe_config_control(c);
    (void)st_pipe_config_report(c);

    size_t len1 = 0, len2 = 0; /* written texts hold no NUL */
    char *w1 = write_text(c, &len1);
    if (w1) {
        st_pipe_config *again = st_pipe_config_parse(w1, "fuzz-written.ini", &err);
        if (!again) {
            fprintf(stderr, "written configuration does not load: %s\n---\n%s---\n", st_errmsg(),
                    w1);
            abort();
        }
        char *w2 = write_text(again, &len2);
        /* The first line is a comment naming the origin, which differs. */
        const char *b1 = strchr(w1, '\n'), *b2 = w2 ? strchr(w2, '\n') : NULL;
        if (!b1 || !b2 || strcmp(b1, b2)) {
            fprintf(stderr, "write, parse, write is not stable:\n---\n%s---\n%s---\n", w1,
                    w2 ? w2 : "(failed)");
            abort();
        }
        free(w2);
        st_pipe_config_destroy(&again);
        free(w1);
    }
    st_pipe_config_destroy(&c);
    free(text);
    return 0;
}
