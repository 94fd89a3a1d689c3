/*  tests/test_fuzz_regress.c - suite `fuzz_regress`: what the fuzz targets
    (fuzz/, `make fuzz`) found, kept found. Each input that broke a decoder
    is committed under fuzz/regress/TARGET/ and replayed here through the
    same decoder with the same check the target made; each bug also has a
    small hand-written case naming it. And every seed of fuzz/corpus/ must
    still decode: the seeds are what the real writers produce, so a seed
    that stops loading is a format change nobody meant.

    Found so far (all by fuzz/fuzz_config.c's write -> parse -> write check;
    fixed in pipeline/config.c and pipeline/params.c):
      set_newline_injects_key       --set with a line break added keys to the
                                    file written for stage processes
      empty_key_continues_line      "= x" was a key "" whose written line
                                    " = x" continued the previous value
      set_line_too_long             --set made a line the reader cuts
      value_starting_with_semicolon "k =;v" was written "k = ;v", a comment
      set_value_leading_tabs        --set kept leading tabs the reader strips
      value_line_too_long_once_written
                                    a line "file =(...)" that just fit
                                    the reader's line was written
                                    "file = (...)", a character longer,
                                    which the reader refused (fixed in
                                    pipeline/config.c: a file's line must
                                    fit as written, as --set's must)
    and by fuzz/fuzz_model.c (fuzz_model repairs CRCs: the files here are
    what the loaders saw):
      lm_config_claims_80_GB        a 3.8 KB language model whose lm/config
                                    said n_embd 63492 made the loader
                                    allocate 80 GB before looking at the
                                    weights (fixed in snn/lm.c)
      sparse_node_claims_2_GB       a net whose net/nodes gave a sparse node
                                    587 million inputs made the loader
                                    allocate 2.3 GB (fixed in
                                    snn/model_file.c: node sizes bounded)
      lm_reference_header_claims_250_MB
                                    a 1.9 KB file in the reference (SPGT)
                                    layout whose header said n_embd 2301
                                    was allocated (250 MB) and prepared
                                    (seconds: the fuzzer's timeout) before
                                    its tensors were matched (fixed in
                                    snn/lm.c: sizes checked first)
      conv_geometry_claims_billions_of_outputs
                                    a conv node whose geometry (padding)
                                    gave 1.5 billion outputs where
                                    net/nodes said 8 had its taps walked
                                    one by one (the fuzzer's timeout;
                                    fixed in snn/model_file.c: geometry
                                    checked against net/nodes first, and
                                    snn/layer.c counts taps per kernel
                                    tap, not per output)
    and by fuzz/fuzz_dialogue.c (a call the tools execute must be grounded
    in its own words):
      billion_not_a_number_word     "calc one billion and five minus one"
                                    ran, but the grounding check read the
                                    user's "one billion and five" as 1 and 5
                                    ("billion" was no number word to it), so
                                    a user who said it would be refused
                                    (fixed in snn/dialogue.c)
    Reads files under fuzz/ (run from the repository root, as make test does).
*/
#include "testutil.h"

#include "audio/audio.h"
#include "pipeline/pipeline.h"
#include "snn/dialogue.h"
#include "snn/lm.h"
#include "snn/snn.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static unsigned char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf) {
        buf[n] = 0;
        *len = (size_t)n;
    }
    return buf;
}

/* Calls fn(path, data, len) for every file of dir in name order; returns
   how many. */
static int each_file(const char *dir, void (*fn)(const char *, const unsigned char *, size_t))
{
    struct dirent **names;
    int n = scandir(dir, &names, NULL, alphasort), done = 0;
    if (n < 0)
        return 0;
    for (int i = 0; i < n; i++) {
        if (names[i]->d_name[0] != '.') {
            char path[512];
            snprintf(path, sizeof path, "%s/%s", dir, names[i]->d_name);
            size_t len = 0;
            unsigned char *data = slurp(path, &len);
            CU_ASSERT_PTR_NOT_NULL(data);
            if (data) {
                fn(path, data, len);
                done++;
            }
            free(data);
        }
        free(names[i]);
    }
    free(names);
    return done;
}

/* ---- configuration: write, parse, write is stable --------------------------------- */

static char *written(const st_pipe_config *c)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    CU_ASSERT_EQUAL(st_pipe_config_write(c, f), ST_OK);
    fclose(f);
    return buf;
}

/* What fuzz/fuzz_config.c checks: an accepted text (plus an accepted or
   refused --set) writes a file that parses again and writes the same
   (but for the first line, which names the origin). */
static void config_roundtrip(const char *path, const unsigned char *data, size_t len)
{
    const char *text = (const char *)data;
    size_t text_len = strlen(text);
    const char *assignment = text_len < len ? text + text_len + 1 : NULL;
    int err;
    st_pipe_config *c = st_pipe_config_parse(text, path, &err);
    if (!c) {
        CU_ASSERT_NOT_EQUAL(err, ST_OK);
        return;
    }
    if (assignment)
        st_pipe_config_set(c, assignment);
    char *w1 = written(c);
    st_pipe_config *again = st_pipe_config_parse(w1, "written", &err);
    if (!again)
        fprintf(stderr, "\n%s: the written configuration does not load: %s\n", path, st_errmsg());
    CU_ASSERT_PTR_NOT_NULL_FATAL(again);
    char *w2 = written(again);
    CU_ASSERT_STRING_EQUAL(strchr(w1, '\n'), strchr(w2, '\n'));
    free(w1);
    free(w2);
    st_pipe_config_destroy(&again);
    st_pipe_config_destroy(&c);
}

static void test_config_inputs_found(void)
{
    CU_ASSERT(each_file("fuzz/regress/config", config_roundtrip) >= 5);
}

static const char TWO[] = "[stage.a]\ntype = passthrough\nout = b\n[stage.b]\ntype = passthrough\n";

static void test_config_set_refuses_line_breaks(void)
{
    int err;
    st_pipe_config *c = st_pipe_config_parse(TWO, "two", &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_EQUAL(st_pipe_config_set(c, "a.hwm=8\n[stage.evil]\ntype = passthrough"),
                    ST_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(st_errmsg(), "control character"));
    CU_ASSERT_EQUAL(st_pipe_config_set(c, "a.text=x\ry"), ST_ERR_INVALID);
    CU_ASSERT_EQUAL(st_pipe_config_stage_count(c), 2);
    char big[400];
    snprintf(big, sizeof big, "a.text=%0300d", 7);
    CU_ASSERT_EQUAL(st_pipe_config_set(c, big), ST_ERR_INVALID);
    CU_ASSERT_EQUAL(st_pipe_config_set(c, "a.text=x ;y"), ST_ERR_INVALID);
    CU_ASSERT_EQUAL(st_pipe_config_set(c, "a.text=trailing "), ST_ERR_INVALID);
    CU_ASSERT_EQUAL(st_pipe_config_set(c, "a.te:xt=1"), ST_ERR_INVALID);
    /* Leading blanks go, as they do in a file. */
    CU_ASSERT_EQUAL(st_pipe_config_set(c, "a.hwm=\t\t 8"), ST_OK);
    char *w = written(c);
    CU_ASSERT_PTR_NOT_NULL(strstr(w, "\nhwm = 8\n"));
    free(w);
    st_pipe_config_destroy(&c);
}

static void test_config_refuses_empty_key(void)
{
    int err;
    st_pipe_config *c = st_pipe_config_parse("[stage.a]\ntype = passthrough\n= x\n", "t.ini", &err);
    CU_ASSERT_PTR_NULL(c);
    CU_ASSERT_EQUAL(err, ST_ERR_INVALID);
    CU_ASSERT_PTR_NOT_NULL(strstr(st_errmsg(), "t.ini:3"));
    st_pipe_config_destroy(&c);
}

static void test_config_value_starting_with_semicolon(void)
{
    int err;
    st_pipe_config *c =
        st_pipe_config_parse("[stage.a]\ntype = passthrough\nnote =;kept\n", "t.ini", &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    char *w = written(c);
    CU_ASSERT_PTR_NOT_NULL(strstr(w, "\nnote =;kept\n"));
    st_pipe_config *again = st_pipe_config_parse(w, "w", &err);
    CU_ASSERT_PTR_NOT_NULL(again);
    char *w2 = again ? written(again) : NULL;
    CU_ASSERT(w2 && strstr(w2, "\nnote =;kept\n"));
    free(w);
    free(w2);
    st_pipe_config_destroy(&again);
    st_pipe_config_destroy(&c);
}

static void test_config_line_fits_once_written(void)
{
    /* "k=" and a value that fills the reader's line exactly: the written
       "k = value" would be two characters longer */
    const int max = ST_PARAM_VALUE_MAX - 10;
    char text[2 * ST_PARAM_VALUE_MAX];
    int n = snprintf(text, sizeof text, "[stage.a]\ntype = passthrough\nk=");
    memset(text + n, 'v', (size_t)(max - 2));
    snprintf(text + n + max - 2, sizeof text - (size_t)(n + max - 2), "\n");
    int err;
    st_pipe_config *c = st_pipe_config_parse(text, "t.ini", &err);
    CU_ASSERT_PTR_NULL(c);
    CU_ASSERT_EQUAL(err, ST_ERR_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(st_errmsg(), "t.ini:3: [stage.a] k: the line is too long once "
                                               "written"));
    st_pipe_config_destroy(&c);
    /* three characters shorter it fits, written too */
    text[n + max - 5] = '\n';
    text[n + max - 4] = '\0';
    c = st_pipe_config_parse(text, "t.ini", &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    config_roundtrip("short enough", (const unsigned char *)text, strlen(text));
    st_pipe_config_destroy(&c);
}

/* ---- model files ---------------------------------------------------------------- */

/* What fuzz/fuzz_model.c ran: every loader, each an error or an object,
   never a crash, never a blow-up (the runner's memory is the check). */
static void model_replay(const char *path, const unsigned char *d, size_t n)
{
    int err;
    st_lm_model *lm = st_lm_model_load(path, &err);
    CU_ASSERT(lm || err < 0);
    st_lm_model_destroy(&lm);
    st_snn_net *net = st_snn_net_load_mem(d, n, &err);
    CU_ASSERT(net || err < 0);
    st_snn_net_destroy(&net);
    st_tensor_file *f = st_tensor_file_load_mem(d, n, &err);
    CU_ASSERT(f || err < 0);
    st_tensor_file_destroy(&f);
}

static void test_model_inputs_found(void)
{
    CU_ASSERT(each_file("fuzz/regress/model", model_replay) >= 1);
}

static void test_lm_sizes_checked_before_allocating(void)
{
    int err;
    st_lm_model *lm = st_lm_model_load("fuzz/regress/model/lm_config_claims_80_GB", &err);
    CU_ASSERT_PTR_NULL(lm);
    CU_ASSERT_EQUAL(err, ST_ERR_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(st_errmsg(), "needs more weights than the file holds"));
    st_lm_model_destroy(&lm);
}

static void test_net_sizes_bounded(void)
{
    size_t len = 0;
    unsigned char *d = slurp("fuzz/regress/model/sparse_node_claims_2_GB", &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    int err;
    st_snn_net *net = st_snn_net_load_mem(d, len, &err);
    CU_ASSERT_PTR_NULL(net);
    CU_ASSERT_EQUAL(err, ST_ERR_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(st_errmsg(), "more than this reader takes"));
    st_snn_net_destroy(&net);
    free(d);
}

static void test_lm_reference_sizes_checked_first(void)
{
    int err;
    st_lm_model *lm =
        st_lm_model_load("fuzz/regress/model/lm_reference_header_claims_250_MB", &err);
    CU_ASSERT_PTR_NULL(lm);
    CU_ASSERT_EQUAL(err, ST_ERR_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(st_errmsg(), "n_embd 2301"));
    CU_ASSERT_PTR_NOT_NULL(strstr(st_errmsg(), "needs more weights than the file holds"));
    st_lm_model_destroy(&lm);
}

static void test_conv_geometry_matches_nodes(void)
{
    size_t len = 0;
    unsigned char *d = slurp("fuzz/regress/model/conv_geometry_claims_billions_of_outputs", &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    int err;
    st_snn_net *net = st_snn_net_load_mem(d, len, &err);
    CU_ASSERT_PTR_NULL(net);
    CU_ASSERT_EQUAL(err, ST_ERR_FORMAT);
    CU_ASSERT_PTR_NOT_NULL(strstr(st_errmsg(), "-> 1533573178 by its geometry"));
    st_snn_net_destroy(&net);
    free(d);
}

/* ---- every seed still decodes ------------------------------------------------------ */

static void seed_wire(const char *path, const unsigned char *d, size_t n)
{
    /* fuzz_wire.c's layout: 2 selector bytes, then a 296-byte header. */
    CU_ASSERT_FATAL(n >= 2 + ST_WIRE_HEADER_BYTES);
    st_wire_msg m;
    int rc = st_wire_decode(d + 2, ST_WIRE_HEADER_BYTES, d + 2 + ST_WIRE_HEADER_BYTES,
                            n - 2 - ST_WIRE_HEADER_BYTES, &m);
    if (rc)
        fprintf(stderr, "\n%s: %s\n", path, st_errmsg());
    CU_ASSERT_EQUAL(rc, ST_OK);
}

static void seed_model(const char *path, const unsigned char *d, size_t n)
{
    int err;
    st_tensor_file *f = st_tensor_file_load_mem(d, n, &err);
    st_lm_model *lm = st_lm_model_load(path, &err);
    /* Every seed is a container or the reference layout, and loads as one
       of the things the model target tries. */
    st_snn_net *net = f ? st_snn_net_load_mem(d, n, &err) : NULL;
    CU_ASSERT(lm || (f && (net || strcmp(st_tensor_file_kind(f), "snn-net"))));
    st_snn_net_destroy(&net);
    st_lm_model_destroy(&lm);
    st_tensor_file_destroy(&f);
}

static void seed_audio(const char *path, const unsigned char *d, size_t n)
{
    st_audio a;
    int rc = st_audio_read(path, &a);
    if (rc)
        fprintf(stderr, "\n%s: %s\n", path, st_errmsg());
    CU_ASSERT_EQUAL(rc, ST_OK);
    CU_ASSERT(a.frames > 0);
    st_audio_free(&a);
}

static void seed_config(const char *path, const unsigned char *d, size_t n)
{
    int err;
    st_pipe_config *c = st_pipe_config_parse((const char *)d, path, &err);
    if (!c)
        fprintf(stderr, "\n%s\n", st_errmsg());
    CU_ASSERT_PTR_NOT_NULL(c);
    st_pipe_config_destroy(&c);
    config_roundtrip(path, d, n);
}

static void seed_recording(const char *path, const unsigned char *d, size_t n)
{
    int err;
    st_rec_reader *r = st_rec_open(path, &err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    st_rec_entry e;
    int rc;
    while ((rc = st_rec_read(r, &e)) == ST_OK)
        ;
    CU_ASSERT_EQUAL(rc, ST_ERR_END);
    st_rec_close(&r);
}

static void test_seeds_decode(void)
{
    CU_ASSERT(each_file("fuzz/corpus/wire", seed_wire) >= 7);
    CU_ASSERT(each_file("fuzz/corpus/model", seed_model) >= 5);
    CU_ASSERT(each_file("fuzz/corpus/audio", seed_audio) >= 4);
    CU_ASSERT(each_file("fuzz/corpus/config", seed_config) >= 3);
    CU_ASSERT(each_file("fuzz/corpus/recording", seed_recording) >= 1);
}

/* ---- dialogue: a call the tools execute is grounded in its own words ---- */

/* What fuzz/fuzz_dialogue.c checks, on user text, NUL, call text. */
static void dialogue_replay(const char *path, const unsigned char *data, size_t len)
{
    const char *user = (const char *)data;
    size_t ulen = strnlen(user, len);
    const char *call = ulen < len ? user + ulen + 1 : "";
    size_t clen = ulen < len ? len - ulen - 1 : 0;
    char result[64], own[512], norm[512];
    if (st_dialogue_tool(NULL, call, clen, result, sizeof result) != ST_OK ||
        clen >= sizeof own)
        return;
    memcpy(own, call, clen);
    own[clen] = 0;
    st_dialogue_normalize(own, norm, sizeof norm);
    if (!strcmp(norm, own) && !st_dialogue_grounded(norm, call, clen))
        fprintf(stderr, "\n%s: '%s' ran but is not grounded in its own words\n", path, own);
    CU_ASSERT(strcmp(norm, own) || st_dialogue_grounded(norm, call, clen));
}

static void test_dialogue_inputs_found(void)
{
    CU_ASSERT(each_file("fuzz/regress/dialogue", dialogue_replay) >= 1);
    CU_ASSERT(each_file("fuzz/corpus/dialogue", dialogue_replay) >= 5);
}

static void test_dialogue_billion_is_a_number(void)
{
    static const char call[] = "calc one billion and five minus one";
    CU_ASSERT(st_dialogue_grounded("what is one billion and five minus one", call,
                                   sizeof call - 1));
    CU_ASSERT(!st_dialogue_grounded("what is one and five minus one", call, sizeof call - 1));
}

CU_TestInfo st_tests_fuzz_regress[] = {
    {"config_inputs_found", test_config_inputs_found},
    {"config_set_refuses_line_breaks", test_config_set_refuses_line_breaks},
    {"config_refuses_empty_key", test_config_refuses_empty_key},
    {"config_value_starting_with_semicolon", test_config_value_starting_with_semicolon},
    {"config_line_fits_once_written", test_config_line_fits_once_written},
    {"model_inputs_found", test_model_inputs_found},
    {"lm_sizes_checked_before_allocating", test_lm_sizes_checked_before_allocating},
    {"net_sizes_bounded", test_net_sizes_bounded},
    {"lm_reference_sizes_checked_first", test_lm_reference_sizes_checked_first},
    {"conv_geometry_matches_nodes", test_conv_geometry_matches_nodes},
    {"dialogue_inputs_found", test_dialogue_inputs_found},
    {"dialogue_billion_is_a_number", test_dialogue_billion_is_a_number},
    {"seeds_decode", test_seeds_decode},
    CU_TEST_INFO_NULL,
};
