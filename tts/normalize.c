/*  tts/normalize.c - makes text speakable before an engine sees it.

    Engines mangle what a language model writes: espeak-ng and flite read
    "7:30", "$5.50", "20°C", "1,234", "3GHz", "&" and markdown each in their
    own way, some badly, and flite speaks ASCII only. This file rewrites a
    piece word by word into plain words both engines say the same way:
    numbers (cardinals up to 999 trillion, decimals, negatives, ordinals,
    decades, years 1100-2099, digit strings), times (7:30, 7:05pm), money
    ($ € £ ¥ with cents and k/M/bn), percent, units after numbers (km, kg,
    °C, GHz, ms, ...), ranges (5-10), fractions (3/4), symbols (& + = @ # /),
    common abbreviations (Dr., e.g.), typographic quotes, dashes and
    ellipses, markdown emphasis. Control characters are separators, invalid
    UTF-8 and zero-width characters are dropped; with ascii_only, accented
    Latin letters lose their accents and other scripts are dropped.

    Each input word (a run of non-separators, as st_tts_next_word() splits
    it) becomes zero or more output words; the word map says where each
    input word's spoken form starts, so that the engine's word positions
    lead back to the words the user wrote.

    Pure: writes only into the caller's buffers, no allocation, any thread.
    Tuned for pieces of a few dozen words; a word is at most
    ST_TTS_MAX_WORD_BYTES bytes, so every temporary lives on the stack.
*/
#include "tts_impl.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

/* ---- output buffer ---------------------------------------------------- */

typedef struct {
    char *s;
    size_t cap, len;
    bool overflow;
} wbuf;

static void put(wbuf *b, const char *s, size_t n)
{
    if (b->overflow || b->len + n + 1 > b->cap) {
        b->overflow = true;
        return;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

static void puts_(wbuf *b, const char *s)
{
    put(b, s, strlen(s));
}

static void sep(wbuf *b)
{
    if (b->len > 0 && b->s[b->len - 1] != ' ')
        put(b, " ", 1);
}

/* A word, separated from what came before. */
static void word(wbuf *b, const char *s)
{
    sep(b);
    puts_(b, s);
}

/* ---- numbers ---------------------------------------------------------- */

static const char *const ONES[20] = {
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
    "eighteen", "nineteen"};
static const char *const TENS[10] = {"", "", "twenty", "thirty", "forty",
                                     "fifty", "sixty", "seventy", "eighty", "ninety"};

static void say_under_100(wbuf *b, unsigned n)
{
    if (n < 20) {
        word(b, ONES[n]);
        return;
    }
    word(b, TENS[n / 10]);
    if (n % 10)
        word(b, ONES[n % 10]);
}

static void say_under_1000(wbuf *b, unsigned n)
{
    if (n >= 100) {
        word(b, ONES[n / 100]);
        word(b, "hundred");
        n %= 100;
        if (!n)
            return;
    }
    say_under_100(b, n);
}

/* Cardinal, n < 10^15. */
static void say_int(wbuf *b, unsigned long long n)
{
    static const char *const SCALE[] = {"", "thousand", "million", "billion", "trillion"};
    if (n == 0) {
        word(b, "zero");
        return;
    }
    unsigned groups[5] = {0};
    int g = 0;
    while (n && g < 5) {
        groups[g++] = (unsigned)(n % 1000);
        n /= 1000;
    }
    for (int i = g - 1; i >= 0; i--) {
        if (!groups[i])
            continue;
        say_under_1000(b, groups[i]);
        if (i)
            word(b, SCALE[i]);
    }
}

static void say_digits(wbuf *b, const char *d, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (isdigit((unsigned char)d[i]))
            word(b, ONES[d[i] - '0']);
}

/* 1100..2099 as a year: "nineteen ninety", "nineteen oh five", "two
   thousand five", "twenty twenty four", "nineteen hundred". */
static void say_year(wbuf *b, unsigned y)
{
    if (y >= 2000 && y < 2010) {
        say_int(b, y);
        return;
    }
    say_under_100(b, y / 100);
    unsigned r = y % 100;
    if (r == 0)
        word(b, "hundred");
    else if (r < 10) {
        word(b, "oh");
        word(b, ONES[r]);
    } else
        say_under_100(b, r);
}

/* Rewrites the last word of b from its cardinal to its ordinal form. */
static void ordinalize_last(wbuf *b)
{
    static const char *const irregular[][2] = {
        {"one", "first"},   {"two", "second"}, {"three", "third"},  {"five", "fifth"},
        {"eight", "eighth"}, {"nine", "ninth"}, {"twelve", "twelfth"}};
    size_t start = b->len;
    while (start > 0 && b->s[start - 1] != ' ')
        start--;
    char last[32];
    snprintf(last, sizeof last, "%s", b->s + start);
    for (size_t i = 0; i < sizeof irregular / sizeof irregular[0]; i++)
        if (!strcmp(last, irregular[i][0])) {
            b->len = start;
            puts_(b, irregular[i][1]);
            return;
        }
    size_t n = strlen(last);
    if (n && last[n - 1] == 'y') {
        b->len = start + n - 1;
        puts_(b, "ieth");
    } else
        puts_(b, "th");
}

/* Rewrites the last word of b to its plural: "ninety" -> "nineties". */
static void pluralize_last(wbuf *b)
{
    if (b->len == 0)
        return;
    char c = b->s[b->len - 1];
    if (c == 'y') {
        b->len--;
        puts_(b, "ies");
    } else if (c == 'x' || c == 's')
        puts_(b, "es");
    else
        puts_(b, "s");
}

typedef struct {
    bool neg, plus;
    const char *ip;              /* integer digits (may contain commas when grouped) */
    size_t ilen;
    const char *fp;              /* fraction digits */
    size_t flen;
    bool point;
    bool grouped;
} num;

/* Integer digits of x without commas into d (cap 40); returns count. */
static size_t num_digits(const num *x, char *d)
{
    size_t k = 0;
    for (size_t i = 0; i < x->ilen && k < 39; i++)
        if (isdigit((unsigned char)x->ip[i]))
            d[k++] = x->ip[i];
    d[k] = '\0';
    return k;
}

static unsigned long long num_int(const num *x, bool *ok)
{
    char d[40];
    size_t k = num_digits(x, d);
    *ok = k > 0 && k <= 15;
    unsigned long long v = 0;
    for (size_t i = 0; i < k && *ok; i++)
        v = v * 10 + (unsigned)(d[i] - '0');
    return v;
}

static bool is_minus(const char *s, size_t n, size_t *adv)
{
    if (n >= 1 && s[0] == '-') {
        *adv = 1;
        return true;
    }
    if (n >= 3 && (unsigned char)s[0] == 0xe2 && (unsigned char)s[1] == 0x88 &&
        (unsigned char)s[2] == 0x92) {
        *adv = 3;  /* − U+2212 */
        return true;
    }
    return false;
}

/*  Parses [+-]?(d{1,3}(,ddd)+|d+)?(.d+)? with at least one digit; returns the
    bytes taken, 0 when s does not start with a number. */
static size_t parse_number(const char *s, size_t n, num *x, bool allow_sign)
{
    memset(x, 0, sizeof *x);
    size_t i = 0, adv;
    if (allow_sign && n > 1 && s[0] == '+') {
        x->plus = true;
        i = 1;
    } else if (allow_sign && is_minus(s, n, &adv) && adv < n) {
        x->neg = true;
        i = adv;
    }
    size_t is = i;
    while (i < n && isdigit((unsigned char)s[i]))
        i++;
    size_t first = i - is;
    if (first >= 1 && first <= 3) {
        /* grouping: ,ddd repeated */
        size_t j = i;
        bool grouped = false;
        while (j + 3 < n + 0 && s[j] == ',' && isdigit((unsigned char)s[j + 1]) &&
               isdigit((unsigned char)s[j + 2]) && isdigit((unsigned char)s[j + 3]) &&
               (j + 4 >= n || !isdigit((unsigned char)s[j + 4]))) {
            j += 4;
            grouped = true;
        }
        if (grouped) {
            i = j;
            x->grouped = true;
        }
    }
    x->ip = s + is;
    x->ilen = i - is;
    if (i + 1 < n && s[i] == '.' && isdigit((unsigned char)s[i + 1])) {
        size_t f = i + 1;
        while (f < n && isdigit((unsigned char)s[f]))
            f++;
        /* "1.2.3" is a version, not a decimal: leave the second dot alone */
        x->point = true;
        x->fp = s + i + 1;
        x->flen = f - i - 1;
        i = f;
    }
    if (x->ilen == 0 && x->flen == 0)
        return 0;
    return i;
}

/* Reads a parsed number. `as_year`: read a plain 4-digit 1100..2099 as a year. */
static void say_num(wbuf *b, const num *x, bool as_year)
{
    if (x->neg)
        word(b, "minus");
    if (x->plus)
        word(b, "plus");
    char d[40];
    size_t k = num_digits(x, d);
    if (k > 0) {
        bool ok;
        unsigned long long v = num_int(x, &ok);
        if (!ok || (k > 1 && d[0] == '0' && !x->grouped))
            say_digits(b, d, k);  /* too long for words, or a code like 007 */
        else if (as_year && !x->grouped && !x->point && k == 4 && v >= 1100 && v <= 2099)
            say_year(b, (unsigned)v);
        else
            say_int(b, v);
    }
    if (x->point) {
        word(b, "point");
        say_digits(b, x->fp, x->flen);
    }
}

static bool num_is_one(const num *x)
{
    bool ok;
    return !x->neg && !x->point && num_int(x, &ok) == 1 && ok;
}

/* ---- tables ------------------------------------------------------------ */

typedef struct {
    const char *abbr;
    const char *one, *many;
    bool alone;                  /* also as a separate word after a number */
} unit;

static const unit UNITS[] = {
    {"km", "kilometer", "kilometers", true},
    {"m", "meter", "meters", true},
    {"cm", "centimeter", "centimeters", true},
    {"mm", "millimeter", "millimeters", true},
    {"nm", "nanometer", "nanometers", true},
    {"kg", "kilogram", "kilograms", true},
    {"g", "gram", "grams", true},
    {"mg", "milligram", "milligrams", true},
    {"lb", "pound", "pounds", true},
    {"lbs", "pounds", "pounds", true},
    {"oz", "ounce", "ounces", true},
    {"ft", "foot", "feet", true},
    {"in", "inch", "inches", false},
    {"mi", "mile", "miles", true},
    {"mph", "mile per hour", "miles per hour", true},
    {"km/h", "kilometer per hour", "kilometers per hour", true},
    {"kph", "kilometer per hour", "kilometers per hour", true},
    {"m/s", "meter per second", "meters per second", true},
    {"s", "second", "seconds", true},
    {"sec", "second", "seconds", true},
    {"secs", "seconds", "seconds", true},
    {"ms", "millisecond", "milliseconds", true},
    {"\xc2\xb5s", "microsecond", "microseconds", true},
    {"us", "microsecond", "microseconds", false},
    {"ns", "nanosecond", "nanoseconds", true},
    {"min", "minute", "minutes", true},
    {"mins", "minutes", "minutes", true},
    {"h", "hour", "hours", true},
    {"hr", "hour", "hours", true},
    {"hrs", "hours", "hours", true},
    {"Hz", "hertz", "hertz", true},
    {"kHz", "kilohertz", "kilohertz", true},
    {"MHz", "megahertz", "megahertz", true},
    {"GHz", "gigahertz", "gigahertz", true},
    {"KB", "kilobyte", "kilobytes", true},
    {"kB", "kilobyte", "kilobytes", true},
    {"MB", "megabyte", "megabytes", true},
    {"GB", "gigabyte", "gigabytes", true},
    {"TB", "terabyte", "terabytes", true},
    {"Mbps", "megabit per second", "megabits per second", true},
    {"Gbps", "gigabit per second", "gigabits per second", true},
    {"W", "watt", "watts", true},
    {"kW", "kilowatt", "kilowatts", true},
    {"kWh", "kilowatt hour", "kilowatt hours", true},
    {"V", "volt", "volts", true},
    {"mA", "milliamp", "milliamps", true},
    {"mAh", "milliamp hour", "milliamp hours", true},
    {"L", "liter", "liters", false},
    {"l", "liter", "liters", false},
    {"ml", "milliliter", "milliliters", true},
    {"mL", "milliliter", "milliliters", true},
    {"dB", "decibel", "decibels", true},
    {"\xc2\xb0" "C", "degree Celsius", "degrees Celsius", true},
    {"\xc2\xb0" "F", "degree Fahrenheit", "degrees Fahrenheit", true},
    {"\xc2\xb0", "degree", "degrees", true},
    {"x", "times", "times", false},
    {"yr", "year", "years", true},
    {"yrs", "years", "years", true},
    {"$", "dollar", "dollars", true},
    {"\xe2\x82\xac", "euro", "euros", true},
    {"\xc2\xa3", "pound", "pounds", true},
    {"\xc2\xa5", "yen", "yen", true},
    {"%", "percent", "percent", true},
};

static const unit *find_unit(const char *s, size_t n, bool alone)
{
    for (size_t i = 0; i < sizeof UNITS / sizeof UNITS[0]; i++)
        if (strlen(UNITS[i].abbr) == n && !memcmp(UNITS[i].abbr, s, n) &&
            (!alone || UNITS[i].alone))
            return &UNITS[i];
    return NULL;
}

typedef struct {
    const char *sym;
    const char *one, *many, *sub_one, *sub_many;
} currency;

static const currency CURRENCIES[] = {
    {"$", "dollar", "dollars", "cent", "cents"},
    {"\xe2\x82\xac", "euro", "euros", "cent", "cents"},
    {"\xc2\xa3", "pound", "pounds", "penny", "pence"},
    {"\xc2\xa5", "yen", "yen", NULL, NULL},
};

static const currency *find_currency(const char *s, size_t n, size_t *adv)
{
    for (size_t i = 0; i < sizeof CURRENCIES / sizeof CURRENCIES[0]; i++) {
        size_t l = strlen(CURRENCIES[i].sym);
        if (n >= l && !memcmp(s, CURRENCIES[i].sym, l)) {
            *adv = l;
            return &CURRENCIES[i];
        }
    }
    return NULL;
}

static const char *magnitude_word(const char *s, size_t n)
{
    static const char *const MAG[] = {"thousand", "million", "billion", "trillion"};
    for (int i = 0; i < 4; i++)
        if (strlen(MAG[i]) == n && !strncasecmp(MAG[i], s, n))
            return MAG[i];
    return NULL;
}

/* k, m, bn ... right after a money amount */
static const char *magnitude_suffix(const char *s, size_t n)
{
    if (n == 1 && (s[0] == 'k' || s[0] == 'K'))
        return "thousand";
    if ((n == 1 && (s[0] == 'm' || s[0] == 'M')) || (n == 2 && !strncasecmp(s, "mn", 2)))
        return "million";
    if ((n == 1 && (s[0] == 'b' || s[0] == 'B')) || (n == 2 && !strncasecmp(s, "bn", 2)))
        return "billion";
    if ((n == 1 && (s[0] == 't' || s[0] == 'T')) || (n == 2 && !strncasecmp(s, "tn", 2)))
        return "trillion";
    return NULL;
}

static const struct {
    const char *abbr;            /* without its final dot, lower case */
    const char *say;
    bool keep_dot;               /* the dot may also end the sentence */
} ABBREVIATIONS[] = {
    {"mr", "mister", false},     {"mrs", "missus", false},      {"ms", "miz", false},
    {"dr", "doctor", false},     {"prof", "professor", false},  {"st", "saint", false},
    {"jr", "junior", true},      {"sr", "senior", true},        {"vs", "versus", false},
    {"etc", "et cetera", true},  {"e.g", "for example", false}, {"i.e", "that is", false},
    {"approx", "approximately", false},
};

/* ---- characters -------------------------------------------------------- */

/*  Accented Latin letters (U+00C0-U+017F) to ASCII; NULL when unknown. */
static const char *latin_to_ascii(unsigned cp)
{
    static const char *const L1[64] = {
        "A", "A", "A", "A", "A", "A", "AE", "C", "E", "E", "E", "E", "I", "I", "I", "I",
        "D", "N", "O", "O", "O", "O", "O", NULL, "O", "U", "U", "U", "U", "Y", "TH", "ss",
        "a", "a", "a", "a", "a", "a", "ae", "c", "e", "e", "e", "e", "i", "i", "i", "i",
        "d", "n", "o", "o", "o", "o", "o", NULL, "o", "u", "u", "u", "u", "y", "th", "y"};
    if (cp >= 0xc0 && cp <= 0xff)
        return L1[cp - 0xc0];
    if (cp >= 0x100 && cp <= 0x17f) {
        /* Latin Extended-A: pairs upper/lower of a base letter */
        static const char base[] = "AaAaAaCcCcCcCcDdDdEeEeEeEeEeGgGgGgGgHhHhIiIiIiIiIi"
                                   "JjJjKkkLlLlLlLlLlNnNnNnnNnOoOoOoOoRrRrRrSsSsSsSsTt"
                                   "TtTtUuUuUuUuUuUuWwYyYZzZzZzs";
        size_t i = cp - 0x100;
        if (cp == 0x152)
            return "OE";
        if (cp == 0x153)
            return "oe";
        if (cp == 0x132)
            return "IJ";
        if (cp == 0x133)
            return "ij";
        if (i < sizeof base - 1) {
            static const char letters[52][2] = {
                "A", "B", "C", "D", "E", "F", "G", "H", "I", "J", "K", "L", "M",
                "N", "O", "P", "Q", "R", "S", "T", "U", "V", "W", "X", "Y", "Z",
                "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m",
                "n", "o", "p", "q", "r", "s", "t", "u", "v", "w", "x", "y", "z"};
            char ch = base[i];
            return isupper((unsigned char)ch) ? letters[ch - 'A'] : letters[26 + ch - 'a'];
        }
    }
    return NULL;
}

/* Decodes one UTF-8 character; returns its length, 0 when invalid. */
static size_t utf8_decode(const unsigned char *s, size_t n, unsigned *cp)
{
    if (n == 0)
        return 0;
    unsigned c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t len;
    unsigned min;
    if ((c & 0xe0) == 0xc0) {
        len = 2;
        *cp = c & 0x1f;
        min = 0x80;
    } else if ((c & 0xf0) == 0xe0) {
        len = 3;
        *cp = c & 0x0f;
        min = 0x800;
    } else if ((c & 0xf8) == 0xf0) {
        len = 4;
        *cp = c & 0x07;
        min = 0x10000;
    } else
        return 0;
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        *cp = (*cp << 6) | (s[i] & 0x3f);
    }
    if (*cp < min || *cp > 0x10ffff || (*cp >= 0xd800 && *cp <= 0xdfff))
        return 0;
    return len;
}

/*  One input word to clean UTF-8 (or ASCII): typographic punctuation to
    ASCII, dashes between digits to '-', other dashes to " , ", ellipsis to
    "...", zero-width and invalid bytes dropped, separators to spaces. */
static size_t sanitize(const char *w, size_t n, char *out, size_t cap, bool ascii_only)
{
    size_t o = 0;
    const unsigned char *u = (const unsigned char *)w;
    for (size_t i = 0; i < n;) {
        unsigned cp;
        size_t l = utf8_decode(u + i, n - i, &cp);
        if (l == 0) {
            i++;  /* invalid byte */
            continue;
        }
        const char *rep = NULL;
        char one[5];
        switch (cp) {
        case 0x2018: case 0x2019: case 0x201b: case 0x2032: rep = "'"; break;
        case 0x201c: case 0x201d: case 0x201e: case 0x2033: case 0xab: case 0xbb: rep = "\""; break;
        case 0x2026: rep = "..."; break;
        case 0x2212: rep = "-"; break;
        case 0x2010: case 0x2011: rep = "-"; break;
        case 0x2013: case 0x2014: case 0x2015: {
            bool digits = i > 0 && isdigit(u[i - 1]) && i + l < n && isdigit(u[i + l]);
            rep = digits ? "-" : " , ";
            break;
        }
        case 0x200b: case 0x200c: case 0x200d: case 0x2060: case 0xfeff: case 0xad:
            rep = "";
            break;
        default:
            if (cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp < 0xa0))
                rep = " ";
            else if (cp >= 0xfe00 && cp <= 0xfe0f)
                rep = "";  /* variation selectors */
            else if (cp < 0x80) {
                one[0] = (char)cp;
                one[1] = '\0';
                rep = one;
            } else if (ascii_only) {
                /* keep the money and degree signs for the rules below */
                if (cp == 0x20ac || cp == 0xa3 || cp == 0xa5 || cp == 0xb0 || cp == 0xb5) {
                    memcpy(one, w + i, l);
                    one[l] = '\0';
                    rep = one;
                } else {
                    rep = latin_to_ascii(cp);
                    if (!rep)
                        rep = " ";
                }
            } else {
                memcpy(one, w + i, l);
                one[l] = '\0';
                rep = one;
            }
        }
        size_t rl = strlen(rep);
        if (o + rl + 1 > cap)
            break;
        memcpy(out + o, rep, rl);
        o += rl;
        i += l;
    }
    out[o] = '\0';
    return o;
}

/* ---- words --------------------------------------------------------------- */

typedef struct {
    wbuf *b;
    bool ascii_only;
    bool prev_number;            /* the previous token was a number */
    bool prev_one;               /* ... equal to one */
    bool prev_time;              /* the previous token was a time or a number (am/pm) */
    const currency *pending;     /* a money amount waiting for its magnitude word */
    bool pending_one;
    const char *next;            /* the next input word, for look-ahead */
    size_t next_len;
} ctx;

static bool is_word_char(unsigned char c)
{
    return isalnum(c) || c >= 0x80;
}

/* Punctuation the engines take as prosody: kept. */
static void put_punct(wbuf *b, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (strchr(",.!?;:'\"()", c) && c)
            put(b, &c, 1);
        else if (c == '-')
            put(b, ",", 1);
    }
}

static bool eq_nocase(const char *s, size_t n, const char *lit)
{
    return strlen(lit) == n && !strncasecmp(s, lit, n);
}

/* am / pm after a time or a number: spelled so both engines say the letters */
static bool am_pm(wbuf *b, const char *s, size_t n)
{
    if (eq_nocase(s, n, "am") || eq_nocase(s, n, "a.m")) {
        word(b, "ay em");
        return true;
    }
    if (eq_nocase(s, n, "pm") || eq_nocase(s, n, "p.m")) {
        word(b, "pee em");
        return true;
    }
    return false;
}

/* H:MM[:SS] with H <= 24, MM <= 59; returns bytes taken. */
static size_t parse_time(const char *s, size_t n, unsigned *h, unsigned *m, int *sec)
{
    size_t i = 0;
    unsigned hh = 0;
    while (i < n && i < 2 && isdigit((unsigned char)s[i]))
        hh = hh * 10 + (unsigned)(s[i++] - '0');
    if (i == 0 || i + 3 > n || s[i] != ':' || !isdigit((unsigned char)s[i + 1]) ||
        !isdigit((unsigned char)s[i + 2]))
        return 0;
    unsigned mm = (unsigned)(s[i + 1] - '0') * 10 + (unsigned)(s[i + 2] - '0');
    i += 3;
    if (i < n && isdigit((unsigned char)s[i]))
        return 0;
    int ss = -1;
    if (i + 2 < n && s[i] == ':' && isdigit((unsigned char)s[i + 1]) &&
        isdigit((unsigned char)s[i + 2]) && (i + 3 >= n || !isdigit((unsigned char)s[i + 3]))) {
        ss = (s[i + 1] - '0') * 10 + (s[i + 2] - '0');
        i += 3;
    }
    if (hh > 24 || mm > 59 || ss > 59)
        return 0;
    *h = hh;
    *m = mm;
    *sec = ss;
    return i;
}

static void say_time(wbuf *b, unsigned h, unsigned m, int sec, bool has_suffix)
{
    say_int(b, h);
    if (m == 0 && sec <= 0) {
        if (!has_suffix)
            word(b, "o'clock");
    } else if (m < 10) {
        word(b, "oh");
        word(b, ONES[m]);
    } else
        say_under_100(b, m);
    if (sec > 0) {
        word(b, "and");
        say_int(b, (unsigned)sec);
        word(b, sec == 1 ? "second" : "seconds");
    }
}

static void token(ctx *c, const char *s, size_t n, bool last_sub);

/* Generic: letters kept, digit runs read as numbers, symbols as words. */
static void generic(ctx *c, const char *s, size_t n)
{
    wbuf *b = c->b;
    size_t i = 0;
    bool in_letters = false;
    while (i < n) {
        unsigned char ch = (unsigned char)s[i];
        if (ch >= 0x80) {
            size_t adv;
            const currency *cur = find_currency(s + i, n - i, &adv);
            const char *say = NULL;
            if (cur)
                say = cur->many;
            else if (ch == 0xc2 && i + 1 < n && (unsigned char)s[i + 1] == 0xb0)
                say = "degrees", adv = 2;
            else if (ch == 0xc2 && i + 1 < n && (unsigned char)s[i + 1] == 0xb5)
                say = "micro", adv = 2;
            if (say) {
                word(b, say);
                i += adv;
                in_letters = false;
                continue;
            }
            if (c->ascii_only) {
                i++;
                while (i < n && ((unsigned char)s[i] & 0xc0) == 0x80)
                    i++;
                continue;
            }
        }
        if (isdigit(ch)) {
            num x;
            size_t l = parse_number(s + i, n - i, &x, false);
            if (l == 0)
                l = 1;
            sep(b);
            say_num(b, &x, false);
            i += l;
            in_letters = false;
            continue;
        }
        if (is_word_char(ch) || ((ch == '\'' || ch == '-' || ch == '.') && in_letters && i + 1 < n &&
                                 is_word_char((unsigned char)s[i + 1]) &&
                                 !isdigit((unsigned char)s[i + 1]))) {
            if (!in_letters)
                sep(b);
            /* copy one UTF-8 character */
            size_t l = 1;
            while (i + l < n && ((unsigned char)s[i + l] & 0xc0) == 0x80)
                l++;
            put(b, s + i, l);
            i += l;
            in_letters = true;
            continue;
        }
        in_letters = false;
        const char *say = NULL;
        switch (ch) {
        case '&': say = "and"; break;
        case '+': say = "plus"; break;
        case '=': say = "equals"; break;
        case '@': say = "at"; break;
        case '%': say = "percent"; break;
        case '/': say = "slash"; break;
        case '#': say = (i + 1 < n && isdigit((unsigned char)s[i + 1])) ? "number" : NULL; break;
        case '<': say = "less than"; break;
        case '>': say = "greater than"; break;
        default: break;
        }
        if (say)
            word(b, say);
        else if (ch == '$')
            word(b, "dollars");
        else if (strchr(",.!?;:", ch) && ch)
            put(b, (const char *)&s[i], 1);
        /* everything else (markdown * _ ` ~ ^ | \ { } [ ]) is silent */
        i++;
    }
}

/* A number at the start of s (already parsed as x, l bytes) and what follows. */
static void number_token(ctx *c, const char *s, size_t n, const num *x, size_t l, bool last_sub)
{
    wbuf *b = c->b;
    const char *rest = s + l;
    size_t rn = n - l;
    bool plain_int = !x->point && !x->neg && !x->plus;
    /* ordinal: 21st 2nd 3rd 4th */
    if (plain_int && rn == 2 &&
        (eq_nocase(rest, 2, "st") || eq_nocase(rest, 2, "nd") || eq_nocase(rest, 2, "rd") ||
         eq_nocase(rest, 2, "th"))) {
        sep(b);
        say_num(b, x, false);
        ordinalize_last(b);
        return;
    }
    /* decades: 1990s 80s '80s */
    if (plain_int && ((rn == 1 && rest[0] == 's') || (rn == 2 && rest[0] == '\'' && rest[1] == 's'))) {
        sep(b);
        say_num(b, x, true);
        pluralize_last(b);
        return;
    }
    /* range 5-10, or a phone number / code 555-1234 read as digits */
    size_t adv;
    if (rn > 1 && is_minus(rest, rn, &adv) && isdigit((unsigned char)rest[adv])) {
        num y;
        size_t l2 = parse_number(rest + adv, rn - adv, &y, false);
        if (l2 == rn - adv && !x->point && !y.point && x->ilen <= 4 && y.ilen <= 4 &&
            !(x->ilen == 3 && y.ilen == 4)) {
            sep(b);
            say_num(b, x, true);
            word(b, "to");
            sep(b);
            say_num(b, &y, true);
            return;
        }
        sep(b);
        for (size_t i = 0; i < n; i++)
            if (isdigit((unsigned char)s[i]))
                word(b, ONES[s[i] - '0']);
        return;
    }
    /* fraction 3/4, or a date-like 12/25/2024 */
    if (rn > 1 && rest[0] == '/' && isdigit((unsigned char)rest[1]) && plain_int) {
        num y;
        size_t l2 = parse_number(rest + 1, rn - 1, &y, false);
        bool ok1, ok2;
        unsigned long long a = num_int(x, &ok1), d = num_int(&y, &ok2);
        if (l2 == rn - 1 && !y.point && ok1 && ok2 && d >= 2 && d <= 10 && a < d) {
            sep(b);
            say_int(b, a);
            if (d == 2)
                word(b, a == 1 ? "half" : "halves");
            else if (d == 4)
                word(b, a == 1 ? "quarter" : "quarters");
            else {
                say_int(b, d);
                ordinalize_last(b);
                if (a != 1)
                    pluralize_last(b);
            }
            return;
        }
        sep(b);
        say_num(b, x, false);
        generic(c, rest, rn);
        return;
    }
    /* a unit glued on: 5km 20°C 3.5GHz 50% 2x 5€ */
    const unit *u = rn ? find_unit(rest, rn, false) : NULL;
    if (u) {
        sep(b);
        say_num(b, x, false);
        word(b, num_is_one(x) ? u->one : u->many);
        return;
    }
    /* nothing more: a number, maybe a year; remember it for a unit word next */
    if (rn == 0) {
        sep(b);
        say_num(b, x, true);
        c->prev_number = true;
        c->prev_one = num_is_one(x);
        c->prev_time = true;
        return;
    }
    /* am/pm glued on: 7pm */
    if (plain_int && x->ilen <= 2) {
        wbuf save = *b;
        sep(b);
        say_num(b, x, false);
        if (am_pm(b, rest, rn))
            return;
        *b = save;
        if (b->len < b->cap)
            b->s[b->len] = '\0';
    }
    /* anything else: the number, then the rest as a token of its own */
    sep(b);
    say_num(b, x, false);
    token(c, rest, rn, last_sub);
}

static void money_token(ctx *c, const currency *cur, const char *s, size_t n, bool last_sub)
{
    wbuf *b = c->b;
    num x;
    size_t l = parse_number(s, n, &x, false);
    const char *mag = magnitude_suffix(s + l, n - l);
    if (l == 0 || (l < n && !mag)) {
        word(b, cur->many);
        if (n)
            token(c, s, n, last_sub);
        return;
    }
    bool ok;
    unsigned long long units = num_int(&x, &ok);
    if (x.ilen == 0)
        ok = true, units = 0;
    if (mag) {
        sep(b);
        say_num(b, &x, false);
        word(b, mag);
        word(b, cur->many);
        return;
    }
    /* "$1.5 million": the magnitude is the next word */
    if (last_sub && c->next) {
        size_t pos = 0, ws, wl;
        if (st_tts_next_word(c->next, c->next_len, &pos, &ws, &wl)) {
            size_t core = wl;
            while (core > 0 && strchr(",.!?;:", c->next[ws + core - 1]) && c->next[ws + core - 1])
                core--;
            if (magnitude_word(c->next + ws, core)) {
                sep(b);
                say_num(b, &x, false);
                c->pending = cur;
                return;
            }
        }
    }
    if (!ok) {
        sep(b);
        say_num(b, &x, false);
        word(b, cur->many);
        return;
    }
    bool cents_ok = x.point && cur->sub_many && x.flen <= 2;
    unsigned cents = 0;
    if (cents_ok) {
        cents = (unsigned)(x.fp[0] - '0') * 10 + (x.flen == 2 ? (unsigned)(x.fp[1] - '0') : 0);
    }
    if (x.point && !cents_ok) {
        sep(b);
        say_num(b, &x, false);
        word(b, cur->many);
        return;
    }
    if (units > 0 || cents == 0) {
        say_int(b, units);
        word(b, units == 1 ? cur->one : cur->many);
    }
    if (cents) {
        if (units > 0)
            word(b, "and");
        say_int(b, cents);
        word(b, cents == 1 ? cur->sub_one : cur->sub_many);
    }
}

/* One token: no separators inside. */
static void token(ctx *c, const char *s, size_t n, bool last_sub)
{
    wbuf *b = c->b;
    bool was_number = c->prev_number, was_one = c->prev_one, was_time = c->prev_time;
    c->prev_number = c->prev_time = false;
    if (n == 0)
        return;
    /* leading and trailing punctuation */
    size_t a = 0, z = n;
    while (a < z && strchr("\"'([{*_`~", s[a]) && s[a])
        a++;
    while (z > a && strchr("\"')]}.,;:!?*_`~", s[z - 1]) && s[z - 1])
        z--;
    const char *core = s + a;
    size_t cn = z - a;
    const char *trail = s + z;
    size_t tn = n - z;
    if (cn == 0) {
        /* punctuation only; a lone dash is a pause */
        bool dashes = true;
        for (size_t i = 0; i < n; i++)
            dashes = dashes && s[i] == '-';
        if (dashes)
            put(b, ",", 1);
        else
            put_punct(b, s, n);
        return;
    }
    put_punct(b, s, a);
    /* a money amount waiting for this magnitude word */
    if (c->pending) {
        const char *mag = magnitude_word(core, cn);
        if (mag) {
            word(b, mag);
            word(b, c->pending->many);
            c->pending = NULL;
            put_punct(b, trail, tn);
            return;
        }
        word(b, c->pending->many);
        c->pending = NULL;
    }
    /* abbreviations: the dot is in the trailing punctuation */
    if (tn > 0 && trail[0] == '.') {
        for (size_t i = 0; i < sizeof ABBREVIATIONS / sizeof ABBREVIATIONS[0]; i++)
            if (eq_nocase(core, cn, ABBREVIATIONS[i].abbr)) {
                word(b, ABBREVIATIONS[i].say);
                put_punct(b, trail + (ABBREVIATIONS[i].keep_dot ? 0 : 1),
                          tn - (ABBREVIATIONS[i].keep_dot ? 0 : 1));
                return;
            }
    }
    if (eq_nocase(core, cn, "vs")) {
        word(b, "versus");
        put_punct(b, trail, tn);
        return;
    }
    /* am / pm after a time or a number */
    if (was_time && am_pm(b, core, cn)) {
        put_punct(b, trail, tn);
        return;
    }
    /* a unit word after a number: "5 km" */
    if (was_number) {
        const unit *u = find_unit(core, cn, true);
        if (u) {
            word(b, was_one ? u->one : u->many);
            put_punct(b, trail, tn);
            return;
        }
    }
    /* time */
    unsigned h, m;
    int sec;
    size_t tl = parse_time(core, cn, &h, &m, &sec);
    if (tl) {
        const char *suf = core + tl;
        size_t sn = cn - tl;
        if (sn == 0) {
            sep(b);
            say_time(b, h, m, sec, false);
            c->prev_time = true;
        } else {
            wbuf save = *b;
            sep(b);
            say_time(b, h, m, sec, true);
            if (am_pm(b, suf, sn)) {
                put_punct(b, trail, tn);
                return;
            }
            *b = save;
            if (b->len < b->cap)
                b->s[b->len] = '\0';
            sep(b);
            say_time(b, h, m, sec, false);
            token(c, suf, sn, last_sub);
        }
        put_punct(b, trail, tn);
        return;
    }
    /* ratio or score 3:2 */
    if (isdigit((unsigned char)core[0])) {
        const char *colon = memchr(core, ':', cn);
        if (colon && colon > core && (size_t)(colon - core) < cn - 1 &&
            isdigit((unsigned char)colon[1])) {
            num x, y;
            size_t l1 = parse_number(core, (size_t)(colon - core), &x, false);
            size_t l2 = parse_number(colon + 1, cn - (size_t)(colon - core) - 1, &y, false);
            if (l1 == (size_t)(colon - core) && l2 == cn - (size_t)(colon - core) - 1) {
                sep(b);
                say_num(b, &x, false);
                word(b, "to");
                sep(b);
                say_num(b, &y, false);
                put_punct(b, trail, tn);
                return;
            }
        }
    }
    /* money */
    size_t adv;
    const currency *cur = find_currency(core, cn, &adv);
    if (cur && adv < cn && (isdigit((unsigned char)core[adv]) || core[adv] == '.')) {
        money_token(c, cur, core + adv, cn - adv, last_sub && tn == 0);
        put_punct(b, trail, tn);
        return;
    }
    /* # number */
    if (core[0] == '#' && cn > 1 && isdigit((unsigned char)core[1])) {
        word(b, "number");
        token(c, core + 1, cn - 1, last_sub);
        put_punct(b, trail, tn);
        return;
    }
    /* number first */
    num x;
    size_t l = parse_number(core, cn, &x, true);
    if (l) {
        number_token(c, core, cn, &x, l, last_sub);
        put_punct(b, trail, tn);
        return;
    }
    /* a lone symbol or a word with symbols in it */
    if (cn == 1 && strchr("&+=@%#/", core[0]) && core[0]) {
        generic(c, core, cn);
        put_punct(b, trail, tn);
        return;
    }
    generic(c, core, cn);
    put_punct(b, trail, tn);
}

long st_tts_normalize_map(const char *in, size_t len, char *out, size_t cap, bool ascii_only,
                          st_norm_span *spans, size_t max_spans, size_t *n_spans)
{
    if (!out || cap == 0)
        return st_error(ST_ERR_INVALID, "normalize: no output buffer");
    wbuf b = {.s = out, .cap = cap, .len = 0, .overflow = false};
    out[0] = '\0';
    ctx c = {.b = &b, .ascii_only = ascii_only};
    size_t pos = 0, ws, wl, k = 0;
    while (st_tts_next_word(in, len, &pos, &ws, &wl)) {
        size_t before = b.len;
        bool added_sep = false;
        if (b.len > 0 && b.s[b.len - 1] != ' ') {
            put(&b, " ", 1);
            added_sep = true;
        }
        size_t start = b.len;
        if (spans) {
            if (k >= max_spans)
                return st_error(ST_ERR_INVALID, "normalize: more than %zu words", max_spans);
            spans[k].out_off = start;
            spans[k].src_off = ws;
            spans[k].src_len = wl;
        }
        char clean[ST_TTS_MAX_WORD_BYTES * 4 + 8];
        size_t cl = sanitize(in + ws, wl, clean, sizeof clean, ascii_only);
        c.next = in + pos;
        c.next_len = len - pos;
        /* a word may hold separators after sanitizing (a dash became " , ") */
        size_t p2 = 0, s2, l2;
        while (st_tts_next_word(clean, cl, &p2, &s2, &l2)) {
            size_t q = p2, t1, t2;
            bool last_sub = !st_tts_next_word(clean, cl, &q, &t1, &t2);
            token(&c, clean + s2, l2, last_sub);
        }
        if (b.len == start && added_sep) {
            b.len = before;  /* nothing said: drop the separator */
            b.s[b.len] = '\0';
            if (spans)
                spans[k].out_off = b.len;
        }
        k++;
    }
    if (c.pending)
        word(&b, c.pending->many);
    /* trim a trailing space */
    while (b.len > 0 && b.s[b.len - 1] == ' ' && !b.overflow)
        b.s[--b.len] = '\0';
    if (n_spans)
        *n_spans = k;
    if (b.overflow)
        return st_error(ST_ERR_INVALID, "normalize: output buffer of %zu bytes too small", cap);
    return (long)b.len;
}

long st_tts_normalize(const char *in, char *out, size_t cap, bool ascii_only)
{
    if (!in)
        return st_error(ST_ERR_INVALID, "normalize: no text");
    return st_tts_normalize_map(in, strlen(in), out, cap, ascii_only, NULL, 0, NULL);
}

size_t st_tts_span_at(const st_norm_span *spans, size_t n, size_t off)
{
    size_t lo = 0, hi = n;  /* the last span with out_off <= off */
    while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        if (spans[mid].out_off <= off)
            lo = mid;
        else
            hi = mid;
    }
    /* ties: a word that said nothing shares its offset with the next */
    while (lo + 1 < n && spans[lo + 1].out_off <= off)
        lo++;
    return lo;
}

void st_tts_word_text(const char *src, size_t len, char *out, size_t cap)
{
    size_t a = 0, z = len;
    while (a < z && strchr("\"'([{*_`~<", src[a]) && src[a])
        a++;
    while (z > a && strchr("\"')]}.,;:!?*_`~>", src[z - 1]) && src[z - 1])
        z--;
    size_t n = z - a;
    if (n + 1 > cap)
        n = cap - 1;
    /* do not cut a UTF-8 character */
    while (n > 0 && a + n < len && ((unsigned char)src[a + n] & 0xc0) == 0x80)
        n--;
    memcpy(out, src + a, n);
    out[n] = '\0';
}
