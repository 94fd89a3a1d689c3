/*  snn/tokenizer.c - text <-> token ids for the language model: a list of
    UTF-8 pieces, encoded by greedy longest match, stored with the model.

    Workload: prompts and answers of a voice agent (tens to hundreds of
    characters), character-level vocabularies of 50 to 300 pieces, word-piece
    vocabularies of a few thousand. Encoding hashes at most max_piece_len
    prefixes per position (one for a character vocabulary); decoding is a
    copy. Neither allocates, so both may run on the streaming path.

    Unknown input is not an error: a character no piece covers (or a byte
    that is not valid UTF-8) becomes the unknown token, or is dropped when
    the vocabulary has none, and is counted so the caller can say so.
*/
#include "lm_impl.h"

#include <stdlib.h>
#include <string.h>

struct st_lm_tokenizer {
    size_t n;
    int32_t unk;
    char *bytes;     /* all pieces, concatenated */
    uint32_t *off;   /* n + 1 offsets into bytes */
    size_t max_len;  /* longest piece, bytes */
    int32_t *slots;  /* open addressing: piece id or -1 */
    size_t cap;      /* power of two, >= 2 n */
};

static const char REPLACEMENT[] = "\xEF\xBF\xBD"; /* U+FFFD */

static uint64_t hash_bytes(const char *p, size_t len)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)p[i];
        h *= 1099511628211ull;
    }
    return h;
}

static int32_t lookup(const st_lm_tokenizer *t, const char *p, size_t len)
{
    size_t mask = t->cap - 1;
    for (size_t s = hash_bytes(p, len) & mask;; s = (s + 1) & mask) {
        int32_t id = t->slots[s];
        if (id < 0)
            return -1;
        size_t plen = t->off[id + 1] - t->off[id];
        if (plen == len && !memcmp(t->bytes + t->off[id], p, len))
            return id;
    }
}

/* Length of the valid UTF-8 code point at p (1 to 4), 0 when invalid. */
static size_t utf8_len(const unsigned char *p, size_t avail, uint32_t *cp)
{
    if (!avail)
        return 0;
    unsigned c = p[0];
    size_t n;
    uint32_t v, min;
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if ((c & 0xE0) == 0xC0) {
        n = 2, v = c & 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
        n = 3, v = c & 0x0F, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
        n = 4, v = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (avail < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        v = v << 6 | (p[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
        return 0;
    *cp = v;
    return n;
}

static size_t utf8_put(char *out, uint32_t cp)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    } else if (cp < 0x800) {
        out[0] = (char)(0xC0 | cp >> 6);
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    } else if (cp < 0x10000) {
        out[0] = (char)(0xE0 | cp >> 12);
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | cp >> 18);
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

void st_lm_tokenizer_destroy(st_lm_tokenizer **self_p)
{
    if (!self_p || !*self_p)
        return;
    st_lm_tokenizer *t = *self_p;
    free(t->bytes);
    free(t->off);
    free(t->slots);
    free(t);
    *self_p = NULL;
}

/* Builds from a concatenation and offsets (copied); checks everything. */
st_lm_tokenizer *st_lm_tokenizer_from_bytes(const char *bytes, const uint32_t *offsets,
                                            size_t n, int32_t unk, int *err)
{
    int e = ST_ERR_NOMEM;
    st_lm_tokenizer *t = NULL;
    if (n == 0 || n > (1u << 24) || offsets[0] != 0) {
        e = st_error(ST_ERR_INVALID, "tokenizer: %zu pieces (1 to 16777216), first offset %u",
                     n, (unsigned)offsets[0]);
        goto fail;
    }
    if (unk < -1 || unk >= (int64_t)n) {
        e = st_error(ST_ERR_INVALID, "tokenizer: unknown token %d outside -1..%zu", (int)unk,
                     n - 1);
        goto fail;
    }
    for (size_t k = 0; k < n; k++)
        if (offsets[k + 1] <= offsets[k]) {
            e = st_error(ST_ERR_INVALID, "tokenizer: piece %zu is empty or its offsets decrease",
                         k);
            goto fail;
        }
    t = calloc(1, sizeof *t);
    if (!t)
        goto fail;
    t->n = n;
    t->unk = unk;
    size_t nbytes = offsets[n];
    t->bytes = malloc(nbytes);
    t->off = malloc((n + 1) * sizeof *t->off);
    t->cap = 16;
    while (t->cap < 2 * n)
        t->cap *= 2;
    t->slots = malloc(t->cap * sizeof *t->slots);
    if (!t->bytes || !t->off || !t->slots)
        goto fail;
    memcpy(t->bytes, bytes, nbytes);
    memcpy(t->off, offsets, (n + 1) * sizeof *t->off);
    for (size_t s = 0; s < t->cap; s++)
        t->slots[s] = -1;
    for (size_t k = 0; k < n; k++) {
        const char *p = t->bytes + t->off[k];
        size_t len = t->off[k + 1] - t->off[k];
        if (len > t->max_len)
            t->max_len = len;
        if (memchr(p, '\0', len)) {
            e = st_error(ST_ERR_INVALID, "tokenizer: piece %zu holds a NUL byte", k);
            goto fail;
        }
        int32_t dup = lookup(t, p, len);
        if (dup >= 0) {
            e = st_error(ST_ERR_INVALID, "tokenizer: piece %zu ('%.*s') repeats piece %d", k,
                         (int)(len > 16 ? 16 : len), p, (int)dup);
            goto fail;
        }
        size_t mask = t->cap - 1, s = hash_bytes(p, len) & mask;
        while (t->slots[s] >= 0)
            s = (s + 1) & mask;
        t->slots[s] = (int32_t)k;
    }
    return t;
fail:
    if (e == ST_ERR_NOMEM)
        st_error(ST_ERR_NOMEM, "tokenizer: out of memory for %zu pieces", n);
    st_lm_tokenizer_destroy(&t);
    if (err)
        *err = e;
    return NULL;
}

st_lm_tokenizer *st_lm_tokenizer_new(const char *const *pieces, size_t n, int32_t unk, int *err)
{
    if (!pieces || n == 0) {
        int e = st_error(ST_ERR_INVALID, "tokenizer: no pieces");
        if (err)
            *err = e;
        return NULL;
    }
    uint32_t *off = malloc((n + 1) * sizeof *off);
    size_t total = 0;
    for (size_t k = 0; k < n; k++)
        total += pieces[k] ? strlen(pieces[k]) : 0;
    char *bytes = malloc(total ? total : 1);
    if (!off || !bytes || total > UINT32_MAX) {
        free(off);
        free(bytes);
        int e = st_error(ST_ERR_NOMEM, "tokenizer: out of memory for %zu pieces", n);
        if (err)
            *err = e;
        return NULL;
    }
    off[0] = 0;
    for (size_t k = 0; k < n; k++) {
        size_t len = pieces[k] ? strlen(pieces[k]) : 0;
        memcpy(bytes + off[k], pieces[k] ? pieces[k] : "", len);
        off[k + 1] = off[k] + (uint32_t)len;
    }
    st_lm_tokenizer *t = st_lm_tokenizer_from_bytes(bytes, off, n, unk, err);
    free(off);
    free(bytes);
    return t;
}

st_lm_tokenizer *st_lm_tokenizer_new_chars(const char *chars, int *err)
{
    size_t len = chars ? strlen(chars) : 0, n = 0;
    uint32_t *off = malloc((len + 1) * sizeof *off);
    if (!off) {
        int e = st_error(ST_ERR_NOMEM, "tokenizer: out of memory");
        if (err)
            *err = e;
        return NULL;
    }
    off[0] = 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t l = utf8_len((const unsigned char *)chars + i, len - i, &cp);
        if (!l) {
            free(off);
            int e = st_error(ST_ERR_INVALID, "tokenizer: byte %zu of the character list is not "
                                             "valid UTF-8",
                             i);
            if (err)
                *err = e;
            return NULL;
        }
        i += l;
        off[++n] = (uint32_t)i;
    }
    st_lm_tokenizer *t = st_lm_tokenizer_from_bytes(chars ? chars : "", off, n, -1, err);
    free(off);
    return t;
}

typedef struct {
    uint32_t cp;
    uint64_t count;
} cp_count;

static int by_count(const void *a, const void *b)
{
    const cp_count *x = a, *y = b;
    if (x->count != y->count)
        return x->count > y->count ? -1 : 1;
    return x->cp < y->cp ? -1 : x->cp > y->cp;
}

st_lm_tokenizer *st_lm_tokenizer_from_corpus(const char *text, size_t len, size_t max_vocab,
                                             int *err)
{
    int e = ST_ERR_NOMEM;
    size_t cap = 256, used = 0;
    cp_count *tab = NULL;
    char *bytes = NULL;
    uint32_t *off = NULL;
    st_lm_tokenizer *t = NULL;
    if (max_vocab < 2 || max_vocab > (1u << 24)) {
        e = st_error(ST_ERR_INVALID, "tokenizer: max_vocab %zu (2 to 16777216)", max_vocab);
        goto fail;
    }
    tab = calloc(cap, sizeof *tab); /* open addressing on cp + 1 (0 = empty) */
    if (!tab)
        goto fail;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t l = utf8_len((const unsigned char *)text + i, len - i, &cp);
        i += l ? l : 1;
        if (!l || cp == 0xFFFD || cp == 0)
            continue; /* the unknown token covers them */
        if (2 * (used + 1) > cap) {
            cp_count *bigger = calloc(2 * cap, sizeof *bigger);
            if (!bigger)
                goto fail;
            for (size_t s = 0; s < cap; s++)
                if (tab[s].cp) {
                    size_t d = (tab[s].cp * 2654435761u) & (2 * cap - 1);
                    while (bigger[d].cp)
                        d = (d + 1) & (2 * cap - 1);
                    bigger[d] = tab[s];
                }
            free(tab);
            tab = bigger;
            cap *= 2;
        }
        size_t s = ((cp + 1) * 2654435761u) & (cap - 1);
        while (tab[s].cp && tab[s].cp != cp + 1)
            s = (s + 1) & (cap - 1);
        if (!tab[s].cp) {
            tab[s].cp = cp + 1;
            used++;
        }
        tab[s].count++;
    }
    size_t m = 0;
    for (size_t s = 0; s < cap; s++)
        if (tab[s].cp)
            tab[m++] = (cp_count){tab[s].cp - 1, tab[s].count};
    qsort(tab, m, sizeof *tab, by_count);
    if (m > max_vocab - 1)
        m = max_vocab - 1;
    bytes = malloc(3 + 4 * m);
    off = malloc((m + 2) * sizeof *off);
    if (!bytes || !off)
        goto fail;
    memcpy(bytes, REPLACEMENT, 3);
    off[0] = 0;
    off[1] = 3;
    for (size_t k = 0; k < m; k++)
        off[k + 2] = off[k + 1] + (uint32_t)utf8_put(bytes + off[k + 1], tab[k].cp);
    t = st_lm_tokenizer_from_bytes(bytes, off, m + 1, 0, &e);
    if (!t)
        goto fail;
    free(tab);
    free(bytes);
    free(off);
    return t;
fail:
    if (e == ST_ERR_NOMEM)
        st_error(ST_ERR_NOMEM, "tokenizer: out of memory reading the corpus");
    free(tab);
    free(bytes);
    free(off);
    if (err)
        *err = e;
    return NULL;
}

st_lm_tokenizer *st_lm_tokenizer_default(uint32_t vocab, int *err)
{
    char bytes[256];
    uint32_t off[257];
    size_t n = 0;
    off[0] = 0;
    if (vocab >= 256) {
        /* Byte level: id = byte. Byte 0 is a piece too (ids are bytes), so
           this table skips from_bytes' NUL check; encode never meets a NUL
           inside a C string anyway. */
        st_lm_tokenizer *t = calloc(1, sizeof *t);
        if (!t)
            goto nomem;
        t->n = 256;
        t->unk = -1;
        t->max_len = 1;
        t->cap = 512;
        t->bytes = malloc(256);
        t->off = malloc(257 * sizeof *t->off);
        t->slots = malloc(t->cap * sizeof *t->slots);
        if (!t->bytes || !t->off || !t->slots) {
            st_lm_tokenizer_destroy(&t);
            goto nomem;
        }
        for (size_t s = 0; s < t->cap; s++)
            t->slots[s] = -1;
        for (size_t k = 0; k < 256; k++) {
            t->bytes[k] = (char)k;
            t->off[k] = (uint32_t)k;
            size_t mask = t->cap - 1, s = hash_bytes(t->bytes + k, 1) & mask;
            while (t->slots[s] >= 0)
                s = (s + 1) & mask;
            t->slots[s] = (int32_t)k;
        }
        t->off[256] = 256;
        return t;
    }
    /* newline, then printable ASCII in code order */
    bytes[n] = '\n';
    off[++n] = 1;
    for (int c = 32; c < 127 && n < vocab; c++) {
        bytes[n] = (char)c;
        off[n + 1] = (uint32_t)n + 1;
        n++;
    }
    return st_lm_tokenizer_from_bytes(bytes, off, n, -1, err);
nomem:
    if (err)
        *err = st_error(ST_ERR_NOMEM, "tokenizer: out of memory");
    return NULL;
}

st_lm_tokenizer *st_lm_tokenizer_copy(const st_lm_tokenizer *self, int *err)
{
    st_lm_tokenizer *t = calloc(1, sizeof *t);
    if (!t)
        goto nomem;
    *t = *self;
    t->bytes = malloc(self->off[self->n] ? self->off[self->n] : 1);
    t->off = malloc((self->n + 1) * sizeof *t->off);
    t->slots = malloc(self->cap * sizeof *t->slots);
    if (!t->bytes || !t->off || !t->slots) {
        st_lm_tokenizer_destroy(&t);
        goto nomem;
    }
    memcpy(t->bytes, self->bytes, self->off[self->n]);
    memcpy(t->off, self->off, (self->n + 1) * sizeof *t->off);
    memcpy(t->slots, self->slots, self->cap * sizeof *t->slots);
    return t;
nomem:
    if (err)
        *err = st_error(ST_ERR_NOMEM, "tokenizer: out of memory");
    return NULL;
}

size_t st_lm_tokenizer_size(const st_lm_tokenizer *self)
{
    return self->n;
}

int32_t st_lm_tokenizer_unk(const st_lm_tokenizer *self)
{
    return self->unk;
}

const char *st_lm_tokenizer_bytes(const st_lm_tokenizer *self, const uint32_t **offsets)
{
    *offsets = self->off;
    return self->bytes;
}

const char *st_lm_tokenizer_piece(const st_lm_tokenizer *self, int32_t id, size_t *len)
{
    if (id < 0 || (size_t)id >= self->n)
        return NULL;
    *len = self->off[id + 1] - self->off[id];
    return self->bytes + self->off[id];
}

int st_lm_tokenizer_encode(const st_lm_tokenizer *self, const char *text, size_t len,
                           int32_t *ids, size_t cap, size_t *n_ids, size_t *n_unknown)
{
    size_t n = 0, unknown = 0;
    for (size_t i = 0; i < len;) {
        size_t most = len - i < self->max_len ? len - i : self->max_len;
        int32_t id = -1;
        size_t l;
        for (l = most; l > 0; l--)
            if ((id = lookup(self, text + i, l)) >= 0)
                break;
        if (id < 0) {
            uint32_t cp;
            l = utf8_len((const unsigned char *)text + i, len - i, &cp);
            if (!l)
                l = 1;
            unknown++;
            id = self->unk;
        }
        i += l;
        if (id >= 0) {
            if (n < cap)
                ids[n] = id;
            n++;
        }
    }
    if (n_ids)
        *n_ids = n;
    if (n_unknown)
        *n_unknown = unknown;
    if (n > cap)
        return st_error(ST_ERR_INVALID, "tokenizer: the text makes %zu tokens, room for %zu", n,
                        cap);
    return ST_OK;
}

int st_lm_tokenizer_decode(const st_lm_tokenizer *self, const int32_t *ids, size_t n, char *buf,
                           size_t cap, size_t *len)
{
    size_t at = 0;
    bool fits = true;
    for (size_t k = 0; k < n; k++) {
        size_t l;
        const char *p = st_lm_tokenizer_piece(self, ids[k], &l);
        if (!p) {
            p = REPLACEMENT;
            l = 3;
        }
        if (fits && at + l < cap)
            memcpy(buf + at, p, l);
        else if (fits) {
            fits = false; /* at < cap: the pieces so far fitted with their NUL */
            if (cap)
                buf[at] = '\0';
        }
        at += l;
    }
    if (fits && cap)
        buf[at] = '\0';
    if (len)
        *len = at;
    if (!fits || at + 1 > cap)
        return st_error(ST_ERR_INVALID, "tokenizer: the text is %zu bytes, room for %zu", at + 1,
                        cap);
    return ST_OK;
}
