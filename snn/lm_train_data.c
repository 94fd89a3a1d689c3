/*  snn/lm_train_data.c - text to training tokens: a word-piece vocabulary
    from a corpus (its characters plus its most frequent words, each with
    the space before it), and a text cut into records (dialogues) encoded
    with the start of each record, for the trainer's random sampling.

    Workload: corpora of 0.1 to a few MB, read once before training.
*/
#include "lm_train_impl.h"

#include <stdlib.h>
#include <string.h>

#define MAX_WORD 24

typedef struct {
    char *w;    /* " word" */
    size_t len;
    size_t count;
} word_count;

static uint64_t hash(const char *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 1099511628211ull;
    return h;
}

static bool word_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '\'';
}

static int by_saving(const void *a, const void *b)
{
    const word_count *x = a, *y = b;
    size_t sx = x->count * (x->len - 1), sy = y->count * (y->len - 1);
    if (sx != sy)
        return sx > sy ? -1 : 1;
    return strcmp(x->w, y->w);
}

st_lm_tokenizer *st_lm_tokenizer_words(const char *text, size_t len, size_t max_chars,
                                       size_t n_words, int *err)
{
    int e = ST_ERR_NOMEM;
    st_lm_tokenizer *chars = st_lm_tokenizer_from_corpus(text, len, max_chars, &e), *t = NULL;
    word_count *tab = NULL;
    const char **pieces = NULL;
    size_t cap = 1024, used = 0;
    if (!chars)
        goto fail;
    tab = calloc(cap, sizeof *tab);
    if (!tab)
        goto fail;
    for (size_t i = 1; i < len; i++) {
        if (text[i - 1] != ' ' || !word_char(text[i]))
            continue;
        size_t j = i;
        while (j < len && word_char(text[j]))
            j++;
        size_t wl = j - i + 1; /* with the space */
        if (wl < 3 || wl > MAX_WORD)
            continue;
        const char *w = text + i - 1;
        if (2 * (used + 1) > cap) {
            word_count *big = calloc(2 * cap, sizeof *big);
            if (!big)
                goto fail;
            for (size_t s = 0; s < cap; s++)
                if (tab[s].w) {
                    size_t d = hash(tab[s].w, tab[s].len) & (2 * cap - 1);
                    while (big[d].w)
                        d = (d + 1) & (2 * cap - 1);
                    big[d] = tab[s];
                }
            free(tab);
            tab = big;
            cap *= 2;
        }
        size_t s = hash(w, wl) & (cap - 1);
        while (tab[s].w && !(tab[s].len == wl && !memcmp(tab[s].w, w, wl)))
            s = (s + 1) & (cap - 1);
        if (!tab[s].w) {
            if (!(tab[s].w = malloc(wl + 1)))
                goto fail;
            memcpy(tab[s].w, w, wl);
            tab[s].w[wl] = '\0';
            tab[s].len = wl;
            used++;
        }
        tab[s].count++;
    }
    size_t m = 0;
    for (size_t s = 0; s < cap; s++)
        if (tab[s].w && tab[s].count >= 3)
            tab[m++] = tab[s];
        else if (tab[s].w)
            free(tab[s].w);
    qsort(tab, m, sizeof *tab, by_saving);
    if (m > n_words)
        for (size_t k = n_words; k < m; k++)
            free(tab[k].w);
    if (m > n_words)
        m = n_words;
    size_t nc = st_lm_tokenizer_size(chars);
    pieces = calloc(nc + m, sizeof *pieces);
    char *cbuf = malloc(nc * 8);
    if (!pieces || !cbuf) {
        free(cbuf);
        for (size_t k = 0; k < m; k++)
            free(tab[k].w);
        goto fail;
    }
    for (size_t k = 0; k < nc; k++) {
        size_t pl;
        const char *p = st_lm_tokenizer_piece(chars, (int32_t)k, &pl);
        memcpy(cbuf + 8 * k, p, pl);
        cbuf[8 * k + pl] = '\0';
        pieces[k] = cbuf + 8 * k;
    }
    for (size_t k = 0; k < m; k++)
        pieces[nc + k] = tab[k].w;
    t = st_lm_tokenizer_new(pieces, nc + m, 0, &e);
    for (size_t k = 0; k < m; k++)
        free(tab[k].w);
    free(cbuf);
    free(pieces);
    free(tab);
    st_lm_tokenizer_destroy(&chars);
    if (!t && err)
        *err = e;
    return t;
fail:
    if (e == ST_ERR_NOMEM)
        e = st_error(ST_ERR_NOMEM, "tokenizer: out of memory counting words");
    if (tab)
        for (size_t s = 0; s < cap; s++)
            free(tab[s].w);
    free(tab);
    st_lm_tokenizer_destroy(&chars);
    if (err)
        *err = e;
    return NULL;
}

int st_lm_encode_records(const st_lm_tokenizer *tok, const char *text, size_t len,
                         const char *sep, const uint8_t *byte_mask, int32_t **ids_out,
                         uint8_t **mask_out, size_t *n_out, size_t **starts_out,
                         size_t *n_starts_out, size_t *n_unknown)
{
    size_t cap = len + 16, n = 0, ns = 0, scap = 64, unk = 0, sl = sep ? strlen(sep) : 0;
    int32_t *ids = malloc(cap * sizeof *ids);
    uint8_t *mask = mask_out ? malloc(cap) : NULL;
    size_t *starts = malloc(scap * sizeof *starts);
    if (!ids || !starts || (mask_out && !mask))
        goto nomem;
    for (size_t at = 0; at < len;) {
        const char *end = sl ? memmem(text + at, len - at, sep, sl) : NULL;
        size_t rl = end ? (size_t)(end - (text + at)) + sl : len - at;
        if (ns == scap) {
            size_t *b = realloc(starts, 2 * scap * sizeof *b);
            if (!b)
                goto nomem;
            starts = b;
            scap *= 2;
        }
        starts[ns++] = n;
        /* runs of equal mask are encoded apart, so no token straddles two */
        for (size_t r = at; r < at + rl;) {
            size_t e = r + 1;
            if (byte_mask)
                while (e < at + rl && byte_mask[e] == byte_mask[r])
                    e++;
            else
                e = at + rl;
            size_t got = 0, u = 0; /* each byte makes at most one token */
            st_lm_tokenizer_encode(tok, text + r, e - r, ids + n, cap - n, &got, &u);
            if (mask)
                memset(mask + n, byte_mask ? byte_mask[r] : 1, got);
            n += got;
            unk += u;
            r = e;
        }
        at += rl;
    }
    *ids_out = ids;
    if (mask_out)
        *mask_out = mask;
    *n_out = n;
    if (starts_out) {
        *starts_out = starts;
        *n_starts_out = ns;
    } else {
        free(starts);
    }
    if (n_unknown)
        *n_unknown = unk;
    return ST_OK;
nomem:
    free(ids);
    free(mask);
    free(starts);
    return st_error(ST_ERR_NOMEM, "encoding: out of memory for %zu bytes of text", len);
}
