/*  fuzz/fuzz_dialogue.c - libFuzzer target for the dialogue runtime's text
    handling (snn/dialogue.c): what the user said (st_dialogue_normalize,
    the numbers in it) and what the model wrote between "[" and "]" (the
    tool call: st_dialogue_tool, st_dialogue_grounded, st_number_from_words).
    Both reach it unchecked: the recognizer's words and the model's tokens.

    Input: user text, NUL, call text. Checks beyond "no crash": a tool's
    result is a NUL-terminated string in its buffer, "error" exactly when
    the call is refused; the grounding check leaves no error behind; and a
    call that the tools execute is grounded in its own words (a user who
    says "calc seven times six" has said every number of that call).
    Seeds: fuzz/corpus/dialogue. Touches: memory only.
*/
#include "fuzz.h"
#include "snn/dialogue.h"

#include <stdlib.h>
#include <string.h>

static void on_timer(long long seconds, const char *label, void *user_data)
{
    if (seconds <= 0 || !label)
        abort();
    (void)user_data;
}

static void check_call(const st_dialogue_tools *tools, const char *user, const char *call,
                       size_t len)
{
    char result[64];
    memset(result, 'x', sizeof result);
    int rc = st_dialogue_tool(tools, call, len, result, sizeof result);
    if (!memchr(result, 0, sizeof result))
        abort();
    if (rc == ST_ERR_INVALID && strcmp(result, "error"))
        abort(); /* a refused call says so */
    st_error_clear();
    st_dialogue_grounded(user, call, len);
    if (st_errmsg()[0])
        abort();
    if (rc == ST_OK) {
        /* said in its own words: every number it uses was said */
        char *own = malloc(len + 1);
        char norm[512];
        if (!own)
            abort();
        memcpy(own, call, len);
        own[len] = 0;
        st_dialogue_normalize(own, norm, sizeof norm);
        if (strlen(own) < sizeof norm - 1 && !strcmp(norm, own) &&
            !st_dialogue_grounded(norm, call, len))
            abort();
        free(own);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    st_fuzz_quiet();
    size_t ulen, clen;
    const char *call;
    char *user = st_fuzz_split(data, size, &ulen, &call, &clen), norm[1024];

    st_dialogue_normalize(user, norm, sizeof norm);
    if (strlen(norm) >= sizeof norm)
        abort();
    long long v;
    if (st_number_from_words(norm, strlen(norm), &v) == ST_OK) {
        char words[512];
        if (st_words_from_number(v, words, sizeof words) == ST_OK) {
            long long back;
            if (st_number_from_words(words, strlen(words), &back) || back != v)
                abort(); /* words -> number -> words -> the same number */
        }
    }
    st_error_clear();
    st_dialogue_tools tools = {.hour = 15, .minute = 5, .on_timer = on_timer};
    check_call(&tools, norm, call, clen);
    free(user);
    return 0;
}
