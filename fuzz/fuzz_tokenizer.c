/*  fuzz/fuzz_tokenizer.c - libFuzzer target for the language model's
    tokenizer (snn/tokenizer.c): vocabularies built from outside text
    (st_lm_tokenizer_new from pieces, _new_chars, _from_corpus) and the
    encoding of any text (prompts and recognised words reach it
    unchecked), then decoding of what encoding made and of arbitrary ids.
    The tokenizer stored in a model file is fuzzed through the model loader
    (fuzz/fuzz_model.c).

    Input: byte 0 picks the unknown token and max_vocab; the rest, split at
    its first NUL byte, is the vocabulary (pieces separated by '\n'; also
    used as the character list and as the corpus) and the text.
    Checks beyond "no crash": an id count that agrees between a sized and
    an unsized call, every id in range, and decode(encode(text)) == text
    whenever nothing was unknown. Seeds: fuzz/corpus/tokenizer.
    Touches: memory only.
*/
#include "fuzz.h"
#include "snn/lm.h"

#include <stdlib.h>
#include <string.h>

static void exercise(const st_lm_tokenizer *t, const char *text, size_t len)
{
    size_t n_ids = 0, n_unk = 0, n2 = 0;
    int rc = st_lm_tokenizer_encode(t, text, len, NULL, 0, &n_ids, &n_unk);
    if (n_ids > len || (rc == ST_OK) != (n_ids == 0))
        abort();
    int32_t *ids = malloc((n_ids ? n_ids : 1) * sizeof *ids);
    if (!ids)
        abort();
    if (st_lm_tokenizer_encode(t, text, len, ids, n_ids, &n2, NULL) || n2 != n_ids)
        abort();
    size_t vocab = st_lm_tokenizer_size(t);
    for (size_t i = 0; i < n_ids; i++)
        if (ids[i] < 0 || (size_t)ids[i] >= vocab)
            abort();
    size_t out_len = 0;
    st_lm_tokenizer_decode(t, ids, n_ids, NULL, 0, &out_len);
    char *out = malloc(out_len + 1);
    if (!out)
        abort();
    if (st_lm_tokenizer_decode(t, ids, n_ids, out, out_len + 1, NULL))
        abort();
    if (n_unk == 0 && (out_len != len || memcmp(out, text, len)))
        abort(); /* a text made only of known pieces comes back unchanged */
    /* A buffer one byte short: a prefix, NUL-terminated, and an error. */
    if (out_len > 0 && (st_lm_tokenizer_decode(t, ids, n_ids, out, out_len, NULL) == ST_OK ||
                        strlen(out) >= out_len))
        abort();
    free(out);
    /* Ids out of range decode as U+FFFD. */
    int32_t bad[4] = {-1, (int32_t)vocab, INT32_MIN, INT32_MAX};
    char small[16];
    size_t bl;
    if (st_lm_tokenizer_decode(t, bad, 4, small, sizeof small, &bl) || bl != 12)
        abort();
    free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    st_fuzz_quiet();
    if (size < 1)
        return 0;
    unsigned mode = data[0];
    data++, size--;
    size_t vlen, tlen;
    const char *text;
    char *vocab = st_fuzz_split(data, size, &vlen, &text, &tlen);

    /* Pieces separated by '\n' (empty pieces and repeats are refused). */
    size_t n = 1;
    for (size_t i = 0; i < vlen; i++)
        n += vocab[i] == '\n';
    char *copy = strdup(vocab);
    const char **pieces = malloc(n * sizeof *pieces);
    if (!copy || !pieces)
        abort();
    size_t k = 0;
    for (char *p = copy, *e; k < n; p = e + 1) {
        pieces[k++] = p;
        if (!(e = strchr(p, '\n')))
            break;
        *e = 0;
    }
    int32_t unk = (mode & 1) ? -1 : (int32_t)((mode >> 1) % (n + 1)); /* may be out of range */
    int err;
    st_lm_tokenizer *t = st_lm_tokenizer_new(pieces, k, unk, &err);
    if (t) {
        exercise(t, text, tlen);
        st_lm_tokenizer *c = st_lm_tokenizer_copy(t, &err);
        if (c)
            exercise(c, text, tlen);
        st_lm_tokenizer_destroy(&c);
        st_lm_tokenizer_destroy(&t);
    }
    t = st_lm_tokenizer_new_chars(vocab, &err);
    if (t) {
        exercise(t, text, tlen);
        st_lm_tokenizer_destroy(&t);
    }
    t = st_lm_tokenizer_from_corpus(vocab, vlen, 1 + (mode >> 2), &err);
    if (t) {
        exercise(t, text, tlen);
        exercise(t, vocab, vlen);
        st_lm_tokenizer_destroy(&t);
    }
    free(pieces);
    free(copy);
    free(vocab);
    return 0;
}
