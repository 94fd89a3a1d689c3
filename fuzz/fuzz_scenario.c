/*  fuzz/fuzz_scenario.c - libFuzzer target for scenario files
    (audio/scenario.c, docs/SCENARIOS.md): st_scenario_parse on the input as
    text, then a walk over every turn it accepted and st_scenario_free.
    On error the scenario must be left empty (audio.h's contract).

    Seeds: fuzz/corpus/scenario (the scenarios/ shipped with the project,
    copied by fuzz/corpus.c). Touches: memory only.
*/
#include "fuzz.h"
#include "audio/audio.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    st_fuzz_quiet();
    size_t len, rest_len; /* the parser reads a C string: up to the first NUL */
    const char *rest;
    char *text = st_fuzz_split(data, size, &len, &rest, &rest_len);
    st_scenario sc;
    memset(&sc, 0x5a, sizeof sc); /* the parser must not read what it did not write */
    int rc = st_scenario_parse(text, "fuzz.ini", &sc);
    if (rc == ST_OK) {
        if (sc.n_turns && !sc.turns)
            abort();
        volatile size_t sink = 0;
        for (size_t i = 0; i < sc.n_turns; i++)
            sink += strnlen((const char *)&sc.turns[i], sizeof sc.turns[i]);
        (void)sink;
    } else if (sc.turns || sc.n_turns) {
        abort(); /* "On error `out` is empty" */
    }
    st_scenario_free(&sc);
    free(text);
    return 0;
}
