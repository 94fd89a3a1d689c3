/*  tts/chunker.c - cuts the incoming text into speakable pieces.

    Text arrives token by token from a language model; a piece may be
    synthesized as soon as it is complete, so the first sound comes while the
    answer is still being written. The rule (st_tts_find_cut): a piece ends
    after the first word that closes a clause (, ; : or a dash) or a sentence
    (. ! ? ...), or after max_words words when the clause runs long. A word
    ending in clause punctuation after a letter is complete at once ("Hello,"
    need not wait for the next token); after a digit it waits for the next
    character ("3." may become "3.5", "1," may become "1,000"); known
    abbreviations and initials ("Dr.", "e.g.", "J.") do not end a sentence.

    Pure functions over a byte range: no state, no allocation, any thread.
    Tuned for pieces of a few to a few dozen words, re-scanned from the piece
    start on every push (a piece is bounded by max_words words of at most
    ST_TTS_MAX_WORD_BYTES bytes, so a re-scan is at most a few KB).
*/
#include "tts_impl.h"

#include <ctype.h>
#include <string.h>

size_t st_tts_space_len(const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    if (len == 0)
        return 0;
    if (u[0] == 0x1b && len >= 2 && u[1] == '[') {
        /* an ANSI escape sequence (CSI): ESC [ parameters intermediates final */
        size_t i = 2;
        while (i < len && u[i] >= 0x20 && u[i] <= 0x3f)
            i++;
        if (i < len && u[i] >= 0x40 && u[i] <= 0x7e)
            return i + 1;
    }
    if (u[0] <= 0x20 || u[0] == 0x7f)
        return 1;
    if (u[0] == 0xc2 && len >= 2 && (u[1] <= 0x9f || u[1] == 0xa0))
        return 2;  /* C1 controls U+0080-009F, NBSP U+00A0 */
    if (u[0] == 0xe2 && len >= 3) {
        if (u[1] == 0x80 && (u[2] <= 0x8a || u[2] == 0xa8 || u[2] == 0xa9 || u[2] == 0xaf))
            return 3;  /* U+2000-200A, U+2028, U+2029, U+202F */
        if (u[1] == 0x81 && u[2] == 0x9f)
            return 3;  /* U+205F */
    }
    if (u[0] == 0xe3 && len >= 3 && u[1] == 0x80 && u[2] == 0x80)
        return 3;  /* U+3000 */
    return 0;
}

/* Length of the UTF-8 sequence starting with byte c (1 for stray bytes). */
static size_t utf8_len(unsigned char c)
{
    if (c < 0xc0)
        return 1;
    if (c < 0xe0)
        return 2;
    if (c < 0xf0)
        return 3;
    if (c < 0xf8)
        return 4;
    return 1;
}

bool st_tts_next_word(const char *text, size_t len, size_t *pos, size_t *start, size_t *wlen)
{
    size_t i = *pos, sl;
    while (i < len && (sl = st_tts_space_len(text + i, len - i)) > 0)
        i += sl;
    if (i >= len) {
        *pos = len;
        return false;
    }
    size_t s = i;
    while (i < len && st_tts_space_len(text + i, len - i) == 0) {
        size_t cl = utf8_len((unsigned char)text[i]);
        if (i + cl > len)
            cl = len - i;
        if (i - s + cl > ST_TTS_MAX_WORD_BYTES)
            break;
        i += cl;
    }
    *start = s;
    *wlen = i - s;
    *pos = i;
    return true;
}

/* Closing characters that may follow clause punctuation: ) ] } " ' and the
   typographic quotes. Returns how many bytes of them end w[0..n). */
static size_t closers_len(const char *w, size_t n)
{
    size_t k = n;
    for (;;) {
        if (k >= 1 && strchr(")]}\"'", w[k - 1]) && w[k - 1] != '\0') {
            k--;
            continue;
        }
        /* ” U+201D, ’ U+2019, » U+00BB */
        if (k >= 3 && (unsigned char)w[k - 3] == 0xe2 && (unsigned char)w[k - 2] == 0x80 &&
            ((unsigned char)w[k - 1] == 0x9d || (unsigned char)w[k - 1] == 0x99)) {
            k -= 3;
            continue;
        }
        if (k >= 2 && (unsigned char)w[k - 2] == 0xc2 && (unsigned char)w[k - 1] == 0xbb) {
            k -= 2;
            continue;
        }
        break;
    }
    return n - k;
}

static bool is_abbreviation(const char *w, size_t n)
{
    static const char *const abbr[] = {"mr", "mrs", "ms", "dr", "prof", "st", "jr", "sr",
                                       "vs", "etc", "e.g", "i.e", "a.m", "p.m", "approx",
                                       "fig", "mt", "no", "vol", "ca", NULL};
    /* strip opening punctuation */
    while (n > 0 && strchr("([{\"'", *w) && *w) {
        w++;
        n--;
    }
    if (n == 1 && isalpha((unsigned char)w[0]))
        return true;  /* an initial: "J." */
    for (const char *const *a = abbr; *a; a++)
        if (strlen(*a) == n && !strncasecmp(*a, w, n))
            return true;
    /* "U.S." : a dot inside the word */
    return memchr(w, '.', n) != NULL;
}

/*  Classifies a word's end: 0 (no boundary), ST_CUT_CLAUSE or
    ST_CUT_SENTENCE. `complete`: a separator follows it. */
static int word_boundary(const char *w, size_t n, bool complete)
{
    size_t core = n - closers_len(w, n);
    if (core == 0)
        return 0;
    /* a lone dash is a pause */
    if ((core == 1 && w[0] == '-') || (core == 2 && w[0] == '-' && w[1] == '-'))
        return complete ? ST_CUT_CLAUSE : 0;
    if (core == 3 && (unsigned char)w[0] == 0xe2 && (unsigned char)w[1] == 0x80 &&
        ((unsigned char)w[2] == 0x94 || (unsigned char)w[2] == 0x93))
        return complete ? ST_CUT_CLAUSE : 0;  /* — – */
    /* … U+2026 */
    if (core >= 3 && (unsigned char)w[core - 3] == 0xe2 && (unsigned char)w[core - 2] == 0x80 &&
        (unsigned char)w[core - 1] == 0xa6)
        return core > 3 || complete ? ST_CUT_SENTENCE : 0;
    char p = w[core - 1];
    if (!strchr(".!?,;:", p) || p == '\0')
        return 0;
    size_t body = core - 1;
    while (body > 0 && strchr(".!?,;:", w[body - 1]))
        body--;  /* "?!" "..." */
    if (body == 0)
        return 0;  /* punctuation only: belongs to the previous word */
    char before = w[body - 1];
    if (!complete && isdigit((unsigned char)before) && (p == '.' || p == ',' || p == ':'))
        return 0;  /* may continue as a number or a time */
    if (p == '.' && body == core - 1 && is_abbreviation(w, body))
        return 0;
    if (p == ',' || p == ';' || p == ':')
        return ST_CUT_CLAUSE;
    return ST_CUT_SENTENCE;
}

bool st_tts_find_cut(const char *text, size_t len, bool final, int max_words, st_cut *cut)
{
    size_t pos = 0, ws, wl;
    int words = 0;
    while (st_tts_next_word(text, len, &pos, &ws, &wl)) {
        bool complete = pos < len || final;  /* a separator follows, or nothing will */
        if (!complete && wl == ST_TTS_MAX_WORD_BYTES)
            complete = true;                 /* a long run was split: this part is whole */
        int b = word_boundary(text + ws, wl, complete);
        if (!complete && !b)
            break;  /* an unfinished word: wait for more */
        words++;
        if (b || words >= max_words) {
            /* take the separators after the word too */
            size_t end = pos, sl;
            while (end < len && (sl = st_tts_space_len(text + end, len - end)) > 0)
                end += sl;
            cut->len = end;
            cut->words = words;
            cut->kind = b ? (st_cut_kind)b : ST_CUT_WORDS;
            cut->last = final && end == len;
            if (cut->last)
                cut->kind = ST_CUT_END;
            return true;
        }
    }
    if (!final)
        return false;
    cut->len = len;
    cut->words = words;
    cut->kind = ST_CUT_END;
    cut->last = true;
    return true;
}
