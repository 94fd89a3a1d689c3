/*  snn/model_file.c - our own model format: a versioned, checksummed
    container of named tensors ("STNN", docs/MODEL_FORMAT.md), and networks
    stored in it.

    Tuned for loading fast and refusing everything else: a file is read with
    one read() into a 64-byte aligned image, checked in full (header CRC,
    index CRC, one CRC per tensor, zero padding, a canonical layout, so every
    byte of the file is covered by a check), and its tensors are then used in
    place. Loading a network copies each weight array once into the engine's
    own layout (a transpose for dense weights) and nothing else; a 1 MB model
    loads in about a millisecond, most of it the read and the CRCs.

    May touch: the file system (the path it is given, and a temporary file
    beside it when saving), the heap. Nothing here prints; errors go to
    st_errmsg(). Any thread; a file object is used by one thread at a time
    (a loaded one may be read by many).
*/
#include "snn_impl.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAGIC "STNN"
#define FORMAT_VERSION 1u
#define HEADER_LEN 64u
#define ALIGN 64u
#define NET_FORMAT 1u /* version of the network schema inside the container */
#define MEM_LABEL "<memory>"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the STNN format is little-endian; this build assumes a little-endian host"
#endif

/* ---- CRC-32 (reflected 0xEDB88320), slice by 8 ---------------------------- */

static uint32_t crc_table[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[0][n] = c;
    }
    for (uint32_t n = 0; n < 256; n++)
        for (int t = 1; t < 8; t++)
            crc_table[t][n] = crc_table[0][crc_table[t - 1][n] & 0xff] ^ (crc_table[t - 1][n] >> 8);
}

uint32_t st_crc32(uint32_t crc, const void *data, size_t len)
{
    pthread_once(&crc_once, crc_init);
    const unsigned char *p = data;
    uint32_t c = ~crc;
    while (len >= 8) {
        uint32_t lo, hi;
        memcpy(&lo, p, 4);
        memcpy(&hi, p + 4, 4);
        lo ^= c;
        c = crc_table[7][lo & 0xff] ^ crc_table[6][(lo >> 8) & 0xff] ^
            crc_table[5][(lo >> 16) & 0xff] ^ crc_table[4][lo >> 24] ^
            crc_table[3][hi & 0xff] ^ crc_table[2][(hi >> 8) & 0xff] ^
            crc_table[1][(hi >> 16) & 0xff] ^ crc_table[0][hi >> 24];
        p += 8;
        len -= 8;
    }
    while (len--)
        c = crc_table[0][(c ^ *p++) & 0xff] ^ (c >> 8);
    return ~c;
}

/* ---- little-endian fields ------------------------------------------------- */

static uint16_t get16(const unsigned char *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t get32(const unsigned char *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static uint64_t get64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static void put16(unsigned char *p, uint16_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
}

static void put32(unsigned char *p, uint32_t v)
{
    memcpy(p, &v, 4);
}

static void put64(unsigned char *p, uint64_t v)
{
    memcpy(p, &v, 8);
}

static uint64_t align_up(uint64_t x)
{
    return (x + ALIGN - 1) & ~(uint64_t)(ALIGN - 1);
}

/* ---- dtypes ----------------------------------------------------------------- */

size_t st_dtype_size(st_dtype dtype)
{
    switch (dtype) {
    case ST_DTYPE_F32:
    case ST_DTYPE_I32:
    case ST_DTYPE_U32: return 4;
    case ST_DTYPE_F64:
    case ST_DTYPE_I64: return 8;
    case ST_DTYPE_U8: return 1;
    }
    return 0;
}

const char *st_dtype_name(st_dtype dtype)
{
    switch (dtype) {
    case ST_DTYPE_F32: return "f32";
    case ST_DTYPE_F64: return "f64";
    case ST_DTYPE_I32: return "i32";
    case ST_DTYPE_U32: return "u32";
    case ST_DTYPE_I64: return "i64";
    case ST_DTYPE_U8: return "u8";
    }
    return NULL;
}

/* ---- the tensor set ------------------------------------------------------------ */

typedef struct {
    char *name;        /* owned, or inside the image */
    st_dtype dtype;
    unsigned ndim;
    uint64_t dims[ST_TENSOR_MAX_DIMS];
    uint64_t count;
    void *data;        /* owned (64-aligned), or inside the image */
    size_t nbytes;
    uint32_t crc;      /* of the data */
    bool owned;
} entry;

struct st_tensor_file {
    char kind[ST_TENSOR_KIND_LEN + 1];
    char *path;            /* for messages */
    unsigned char *image;  /* a loaded file, or NULL */
    entry *e;
    size_t n, cap;
    uint32_t *slot;        /* open addressing: entry index + 1, 0 = empty */
    size_t n_slots;        /* power of two, >= 2 n */
};

static uint64_t name_hash(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ULL;
    }
    return h;
}

/* Index of `name`, or -1. */
static long lookup(const st_tensor_file *self, const char *name)
{
    if (!self->n_slots)
        return -1;
    const size_t mask = self->n_slots - 1;
    for (size_t at = (size_t)name_hash(name) & mask;; at = (at + 1) & mask) {
        const uint32_t s = self->slot[at];
        if (!s)
            return -1;
        if (!strcmp(self->e[s - 1].name, name))
            return (long)s - 1;
    }
}

static int rehash(st_tensor_file *self, size_t want)
{
    size_t n_slots = 16;
    while (n_slots < 2 * want)
        n_slots *= 2;
    if (n_slots == self->n_slots)
        return ST_OK;
    uint32_t *slot = calloc(n_slots, sizeof *slot);
    if (!slot)
        return st_error(ST_ERR_NOMEM, "out of memory for a tensor index");
    free(self->slot);
    self->slot = slot;
    self->n_slots = n_slots;
    for (size_t k = 0; k < self->n; k++) {
        size_t at = (size_t)name_hash(self->e[k].name) & (n_slots - 1);
        while (slot[at])
            at = (at + 1) & (n_slots - 1);
        slot[at] = (uint32_t)(k + 1);
    }
    return ST_OK;
}

static bool kind_ok(const char *kind)
{
    size_t n = 0;
    for (; kind[n]; n++)
        if (kind[n] < 0x21 || kind[n] > 0x7e || n >= ST_TENSOR_KIND_LEN)
            return false;
    return n > 0;
}

static st_tensor_file *file_alloc(const char *path, int *err)
{
    st_tensor_file *self = calloc(1, sizeof *self);
    if (self && !(self->path = strdup(path))) {
        free(self);
        self = NULL;
    }
    if (!self) {
        int rc = st_error(ST_ERR_NOMEM, "out of memory for a tensor file");
        if (err)
            *err = rc;
    }
    return self;
}

st_tensor_file *st_tensor_file_new(const char *kind, int *err)
{
    if (!kind || !kind_ok(kind)) {
        int rc = st_error(ST_ERR_INVALID, "a tensor file's kind is 1 to %d printable ASCII "
                                          "characters without blanks, not '%s'",
                          ST_TENSOR_KIND_LEN, kind ? kind : "(null)");
        if (err)
            *err = rc;
        return NULL;
    }
    st_tensor_file *self = file_alloc("<new>", err);
    if (!self)
        return NULL;
    snprintf(self->kind, sizeof self->kind, "%s", kind);
    if (err)
        *err = ST_OK;
    return self;
}

void st_tensor_file_destroy(st_tensor_file **self_p)
{
    if (!self_p || !*self_p)
        return;
    st_tensor_file *self = *self_p;
    for (size_t k = 0; k < self->n; k++)
        if (self->e[k].owned) {
            free(self->e[k].name);
            free(self->e[k].data);
        }
    free(self->e);
    free(self->slot);
    free(self->image);
    free(self->path);
    free(self);
    *self_p = NULL;
}

const char *st_tensor_file_kind(const st_tensor_file *self)
{
    return self->kind;
}

const char *st_tensor_file_path(const st_tensor_file *self)
{
    return self->path;
}

size_t st_tensor_file_count(const st_tensor_file *self)
{
    return self->n;
}

static void to_tensor(const entry *e, st_tensor *out)
{
    *out = (st_tensor){
        .name = e->name,
        .dtype = e->dtype,
        .ndim = e->ndim,
        .count = e->count,
        .data = e->data,
        .nbytes = e->nbytes,
    };
    memcpy(out->dims, e->dims, sizeof out->dims);
}

int st_tensor_file_at(const st_tensor_file *self, size_t k, st_tensor *out)
{
    if (k >= self->n)
        return st_error(ST_ERR_INVALID, "tensor %zu of %zu does not exist", k, self->n);
    to_tensor(&self->e[k], out);
    return ST_OK;
}

int st_tensor_file_find(const st_tensor_file *self, const char *name, st_tensor *out)
{
    const long k = name ? lookup(self, name) : -1;
    if (k < 0)
        return st_error(ST_ERR_NOT_FOUND, "model file '%s': no tensor called '%s'", self->path,
                        name ? name : "(null)");
    to_tensor(&self->e[k], out);
    return ST_OK;
}

/* "f32 [3, 4]" into buf. */
static const char *shape_text(char *buf, size_t cap, st_dtype dtype, unsigned ndim,
                              const uint64_t *dims)
{
    const char *dn = st_dtype_name(dtype);
    int at = snprintf(buf, cap, "%s [", dn ? dn : "?");
    for (unsigned k = 0; k < ndim && at > 0 && (size_t)at < cap; k++) {
        if (dims[k])
            at += snprintf(buf + at, cap - (size_t)at, "%s%llu", k ? ", " : "",
                           (unsigned long long)dims[k]);
        else
            at += snprintf(buf + at, cap - (size_t)at, "%s*", k ? ", " : "");
    }
    if (at > 0 && (size_t)at < cap)
        snprintf(buf + at, cap - (size_t)at, "]");
    return buf;
}

int st_tensor_file_expect(const st_tensor_file *self, const char *name, st_dtype dtype,
                          unsigned ndim, const uint64_t *dims, st_tensor *out)
{
    char want[160], have[160];
    shape_text(want, sizeof want, dtype, ndim, dims);
    const long k = lookup(self, name);
    if (k < 0)
        return st_error(ST_ERR_FORMAT, "model file '%s': tensor '%s' is missing (expected %s)",
                        self->path, name, want);
    const entry *e = &self->e[k];
    bool ok = e->dtype == dtype && e->ndim == ndim;
    for (unsigned d = 0; ok && d < ndim; d++)
        ok = !dims[d] || dims[d] == e->dims[d];
    if (!ok)
        return st_error(ST_ERR_FORMAT, "model file '%s': tensor '%s' is %s, expected %s",
                        self->path, name, shape_text(have, sizeof have, e->dtype, e->ndim, e->dims),
                        want);
    to_tensor(e, out);
    return ST_OK;
}

int st_tensor_file_string(const st_tensor_file *self, const char *name, char *buf, size_t cap)
{
    st_tensor t;
    int rc = st_tensor_file_expect(self, name, ST_DTYPE_U8, 1, (const uint64_t[]){0}, &t);
    if (rc != ST_OK)
        return rc;
    if (t.count >= cap || memchr(t.data, 0, t.nbytes))
        return st_error(ST_ERR_FORMAT, "model file '%s': tensor '%s' is not a text of under %zu "
                                       "bytes", self->path, name, cap);
    memcpy(buf, t.data, t.nbytes);
    buf[t.nbytes] = '\0';
    return ST_OK;
}

/* Checks dims and returns the element count through *count, or an error. */
static int count_elements(unsigned ndim, const uint64_t *dims, size_t elem, uint64_t *count)
{
    uint64_t n = 1;
    for (unsigned k = 0; k < ndim; k++) {
        if (dims[k] && n > (UINT64_MAX / 2) / dims[k])
            return ST_ERR_INVALID;
        n *= dims[k];
    }
    if (n > (SIZE_MAX / 2) / elem)
        return ST_ERR_INVALID;
    *count = n;
    return ST_OK;
}

static int grow_entries(st_tensor_file *self)
{
    if (self->n < self->cap)
        return ST_OK;
    if (self->n >= UINT32_MAX - 1)
        return st_error(ST_ERR_INVALID, "too many tensors in one file");
    size_t cap = self->cap ? 2 * self->cap : 16;
    entry *e = realloc(self->e, cap * sizeof *e);
    if (!e)
        return st_error(ST_ERR_NOMEM, "out of memory for a tensor index");
    self->e = e;
    self->cap = cap;
    return ST_OK;
}

int st_tensor_file_add(st_tensor_file *self, const char *name, st_dtype dtype, unsigned ndim,
                       const uint64_t *dims, const void *data)
{
    const size_t elem = st_dtype_size(dtype);
    if (!name || !*name || strlen(name) > ST_TENSOR_MAX_NAME)
        return st_error(ST_ERR_INVALID, "a tensor name is 1 to %d bytes, not '%.40s'",
                        ST_TENSOR_MAX_NAME, name ? name : "(null)");
    if (!elem)
        return st_error(ST_ERR_INVALID, "tensor '%s': element type %d does not exist", name,
                        (int)dtype);
    if (ndim > ST_TENSOR_MAX_DIMS || (ndim && !dims))
        return st_error(ST_ERR_INVALID, "tensor '%s': %u dimensions; at most %d", name, ndim,
                        ST_TENSOR_MAX_DIMS);
    uint64_t count;
    if (count_elements(ndim, dims, elem, &count) != ST_OK)
        return st_error(ST_ERR_INVALID, "tensor '%s' is too large", name);
    if (count && !data)
        return st_error(ST_ERR_INVALID, "tensor '%s' has %llu elements but no data", name,
                        (unsigned long long)count);
    if (lookup(self, name) >= 0)
        return st_error(ST_ERR_INVALID, "tensor file '%s': there is already a tensor called '%s'",
                        self->path, name);
    int rc = grow_entries(self);
    if (rc == ST_OK)
        rc = rehash(self, self->n + 1);
    if (rc != ST_OK)
        return rc;
    entry e = {.dtype = dtype, .ndim = ndim, .count = count, .owned = true};
    e.nbytes = (size_t)count * elem;
    for (unsigned k = 0; k < ndim; k++)
        e.dims[k] = dims[k];
    e.name = strdup(name);
    e.data = aligned_alloc(ALIGN, align_up(e.nbytes ? e.nbytes : 1));
    if (!e.name || !e.data) {
        free(e.name);
        free(e.data);
        return st_error(ST_ERR_NOMEM, "out of memory for tensor '%s' (%zu bytes)", name,
                        e.nbytes);
    }
    if (e.nbytes)
        memcpy(e.data, data, e.nbytes);
    e.crc = st_crc32(0, e.data, e.nbytes);
    self->e[self->n++] = e;
    size_t at = (size_t)name_hash(name) & (self->n_slots - 1);
    while (self->slot[at])
        at = (at + 1) & (self->n_slots - 1);
    self->slot[at] = (uint32_t)self->n;
    return ST_OK;
}

int st_tensor_file_add_string(st_tensor_file *self, const char *name, const char *text)
{
    const uint64_t len = strlen(text);
    return st_tensor_file_add(self, name, ST_DTYPE_U8, 1, &len, text);
}

/* ---- writing ------------------------------------------------------------------- */

/* The layout (docs/MODEL_FORMAT.md):

     header  64 bytes at 0
     index   one entry per tensor, from 64
     zeros   up to data_offset = align64(64 + index_len)
     data    each tensor at data_offset + align64(end of the previous one),
             zeros between, data_len = align64(end of the last one)

   Header: "STNN", u16 version, u16 header length, u32 flags, u32 tensor
   count, kind[16], u64 index_len, u64 data_offset, u64 data_len, u32 index
   CRC, u32 header CRC (of bytes 0-59). Entry: u16 name length, u8 dtype,
   u8 ndim, u32 data CRC, u64 offset in the data, u64 bytes, u64 dims[ndim],
   the name and a NUL, zeros to a multiple of 8. */

static size_t align8(size_t x)
{
    return (x + 7) & ~(size_t)7;
}

static size_t entry_len(const entry *e)
{
    return align8(24 + 8 * (size_t)e->ndim + strlen(e->name) + 1);
}

typedef struct {
    uint64_t index_len, data_offset, data_len;
} layout;

static layout plan(const st_tensor_file *self)
{
    layout L = {0};
    uint64_t end = 0;
    for (size_t k = 0; k < self->n; k++) {
        L.index_len += entry_len(&self->e[k]);
        end = align_up(end) + self->e[k].nbytes;
    }
    L.data_offset = align_up(HEADER_LEN + L.index_len);
    L.data_len = align_up(end);
    return L;
}

/* Writes header, index and the zeros before the data into head (L.data_offset
   bytes, zeroed by the caller). */
static void write_head(const st_tensor_file *self, const layout *L, unsigned char *head)
{
    unsigned char *p = head + HEADER_LEN;
    uint64_t off = 0;
    for (size_t k = 0; k < self->n; k++) {
        const entry *e = &self->e[k];
        const size_t name_len = strlen(e->name);
        off = align_up(off);
        put16(p, (uint16_t)name_len);
        p[2] = (unsigned char)e->dtype;
        p[3] = (unsigned char)e->ndim;
        put32(p + 4, e->crc);
        put64(p + 8, off);
        put64(p + 16, e->nbytes);
        for (unsigned d = 0; d < e->ndim; d++)
            put64(p + 24 + 8 * d, e->dims[d]);
        memcpy(p + 24 + 8 * e->ndim, e->name, name_len + 1);
        p += entry_len(e);
        off += e->nbytes;
    }
    memcpy(head, MAGIC, 4);
    put16(head + 4, FORMAT_VERSION);
    put16(head + 6, HEADER_LEN);
    put32(head + 8, 0);
    put32(head + 12, (uint32_t)self->n);
    memcpy(head + 16, self->kind, strlen(self->kind));
    put64(head + 32, L->index_len);
    put64(head + 40, L->data_offset);
    put64(head + 48, L->data_len);
    put32(head + 56, st_crc32(0, head + HEADER_LEN, L->index_len));
    put32(head + 60, st_crc32(0, head, 60));
}

int st_tensor_file_save_mem(const st_tensor_file *self, void **buf, size_t *len)
{
    const layout L = plan(self);
    const uint64_t total = L.data_offset + L.data_len;
    if (total > SIZE_MAX)
        return st_error(ST_ERR_NOMEM, "a %llu-byte model does not fit in memory",
                        (unsigned long long)total);
    unsigned char *out = calloc(1, (size_t)total);
    if (!out)
        return st_error(ST_ERR_NOMEM, "out of memory for a %llu-byte model",
                        (unsigned long long)total);
    write_head(self, &L, out);
    uint64_t off = 0;
    for (size_t k = 0; k < self->n; k++) {
        off = align_up(off);
        if (self->e[k].nbytes)
            memcpy(out + L.data_offset + off, self->e[k].data, self->e[k].nbytes);
        off += self->e[k].nbytes;
    }
    *buf = out;
    *len = (size_t)total;
    return ST_OK;
}

int st_tensor_file_save(const st_tensor_file *self, const char *path)
{
    static const unsigned char zeros[ALIGN];
    const layout L = plan(self);
    if (L.data_offset > SIZE_MAX)
        return st_error(ST_ERR_NOMEM, "model index too large");
    unsigned char *head = calloc(1, (size_t)L.data_offset);
    const size_t path_len = strlen(path);
    char *tmp = malloc(path_len + 16);
    if (!head || !tmp) {
        free(head);
        free(tmp);
        return st_error(ST_ERR_NOMEM, "out of memory saving '%s'", path);
    }
    write_head(self, &L, head);
    snprintf(tmp, path_len + 16, "%s.tmp-XXXXXX", path);
    int rc = ST_OK;
    int fd = mkstemp(tmp);
    if (fd < 0) {
        rc = st_error(ST_ERR_IO, "cannot write '%s': %s", path, strerror(errno));
        goto done;
    }
    bool ok = st_write_all(fd, head, (size_t)L.data_offset);
    uint64_t off = 0;
    for (size_t k = 0; ok && k < self->n; k++) {
        const size_t pad = (size_t)(align_up(off) - off);
        ok = st_write_all(fd, zeros, pad) && st_write_all(fd, self->e[k].data, self->e[k].nbytes);
        off = align_up(off) + self->e[k].nbytes;
    }
    if (ok)
        ok = st_write_all(fd, zeros, (size_t)(align_up(off) - off));
    if (ok)
        ok = fchmod(fd, 0644) == 0 || errno == EPERM;
    if (ok)
        ok = fsync(fd) == 0 || errno == EINVAL;
    const int saved = errno;
    if (close(fd) != 0 && ok)
        ok = false;
    if (!ok) {
        rc = st_error(ST_ERR_IO, "cannot write '%s': %s", path, strerror(saved ? saved : EIO));
        unlink(tmp);
        goto done;
    }
    if (rename(tmp, path) != 0) {
        rc = st_error(ST_ERR_IO, "cannot write '%s': %s", path, strerror(errno));
        unlink(tmp);
    }
done:
    free(head);
    free(tmp);
    return rc;
}

/* ---- reading ------------------------------------------------------------------- */

/* Offsets in messages count from the start of the file. */
static int bad(const char *path, const char *fmt, ...) ST_PRINTF(2, 3);

static int bad(const char *path, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return st_error(ST_ERR_FORMAT, "model file '%s': %s", path, msg);
}

/* Printable form of the first bytes, for "not an STNN file" messages. */
static const char *show_bytes(char *buf, size_t cap, const unsigned char *p, size_t n)
{
    size_t at = 0;
    for (size_t k = 0; k < n && at + 5 < cap; k++)
        at += (size_t)snprintf(buf + at, cap - at, p[k] >= 0x20 && p[k] < 0x7f ? "%c" : "\\x%02x",
                               p[k]);
    buf[at] = '\0';
    return buf;
}

static bool all_zero(const unsigned char *p, size_t n, size_t *first)
{
    for (size_t k = 0; k < n; k++)
        if (p[k]) {
            *first = k;
            return false;
        }
    return true;
}

/* Checks the image (len bytes, owned by self from here on) and builds the
   index. */
static int parse(st_tensor_file *self, unsigned char *img, size_t len)
{
    const char *path = self->path;
    char shown[64];
    size_t nz;
    self->image = img;
    if (len < 4 || memcmp(img, MAGIC, 4))
        return bad(path, "not a spiketalk model file: it starts with '%s', not 'STNN'%s",
                   show_bytes(shown, sizeof shown, img, len < 4 ? len : 4),
                   len < 4 ? " (and is shorter than a header)" : "");
    if (len < HEADER_LEN)
        return bad(path, "truncated: %zu bytes, shorter than the %u-byte header", len,
                   HEADER_LEN);
    const unsigned version = get16(img + 4);
    if (version > FORMAT_VERSION)
        return bad(path, "format version %u (offset 4) is newer than this build reads (%u): "
                         "update spiketalk", version, FORMAT_VERSION);
    if (version != FORMAT_VERSION)
        return bad(path, "format version %u (offset 4) does not exist; this build reads "
                         "version %u", version, FORMAT_VERSION);
    if (get16(img + 6) != HEADER_LEN)
        return bad(path, "header length %u at offset 6; version %u headers are %u bytes",
                   get16(img + 6), FORMAT_VERSION, HEADER_LEN);
    if (st_crc32(0, img, 60) != get32(img + 60))
        return bad(path, "header checksum mismatch (bytes 0-59, CRC at offset 60): the file "
                         "is corrupt");
    if (get32(img + 8))
        return bad(path, "unknown flags 0x%08x at offset 8: written by a newer spiketalk",
                   get32(img + 8));
    const uint32_t n = get32(img + 12);
    char kind[ST_TENSOR_KIND_LEN + 1];
    memcpy(kind, img + 16, ST_TENSOR_KIND_LEN);
    kind[ST_TENSOR_KIND_LEN] = '\0';
    const size_t kind_len = strlen(kind);
    if (!kind_ok(kind) || img[16 + ST_TENSOR_KIND_LEN] ||
        !all_zero(img + 16 + kind_len, 16 - kind_len, &nz))
        return bad(path, "the kind field (offset 16) is not 1 to %d printable characters "
                         "padded with zeros", ST_TENSOR_KIND_LEN);
    memcpy(self->kind, kind, kind_len + 1);
    const uint64_t index_len = get64(img + 32), data_offset = get64(img + 40),
                   data_len = get64(img + 48);
    if (index_len > UINT32_MAX * (uint64_t)64 || data_len > UINT64_MAX / 2 ||
        data_offset != align_up(HEADER_LEN + index_len) || data_len % ALIGN)
        return bad(path, "inconsistent header (offsets 32-55): index %llu bytes, data at "
                         "%llu, %llu bytes", (unsigned long long)index_len,
                   (unsigned long long)data_offset, (unsigned long long)data_len);
    const uint64_t total = data_offset + data_len;
    if (len < total)
        return bad(path, "truncated: %zu bytes, the header says %llu", len,
                   (unsigned long long)total);
    if (len > total)
        return bad(path, "%llu bytes of unexpected data after the end (offset %llu)",
                   (unsigned long long)(len - total), (unsigned long long)total);
    const unsigned char *index = img + HEADER_LEN;
    if (st_crc32(0, index, (size_t)index_len) != get32(img + 56))
        return bad(path, "index checksum mismatch (bytes %u-%llu, CRC at offset 56): the file "
                         "is corrupt", HEADER_LEN,
                   (unsigned long long)(HEADER_LEN + index_len - 1));
    if (!all_zero(index + index_len, (size_t)(data_offset - HEADER_LEN - index_len), &nz))
        return bad(path, "nonzero padding at offset %llu",
                   (unsigned long long)(HEADER_LEN + index_len + nz));
    if (n > index_len / 32)
        return bad(path, "%u tensors cannot fit in a %llu-byte index (offset 12)", n,
                   (unsigned long long)index_len);
    self->e = calloc(n ? n : 1, sizeof *self->e);
    if (!self->e)
        return st_error(ST_ERR_NOMEM, "out of memory for %u tensors", n);
    self->cap = n;
    int rc = rehash(self, n);
    if (rc != ST_OK)
        return rc;
    const unsigned char *data = img + data_offset;
    uint64_t at = 0, off = 0;
    for (uint32_t k = 0; k < n; k++) {
        const uint64_t where = HEADER_LEN + at;
        if (index_len - at < 24)
            return bad(path, "index entry %u at offset %llu runs past the index", k,
                       (unsigned long long)where);
        const unsigned char *p = index + at;
        entry e = {.dtype = (st_dtype)p[2], .ndim = p[3]};
        const size_t name_len = get16(p);
        const size_t elem = st_dtype_size(e.dtype);
        if (e.ndim > ST_TENSOR_MAX_DIMS)
            return bad(path, "index entry %u (offset %llu): %u dimensions, at most %d", k,
                       (unsigned long long)where, e.ndim, ST_TENSOR_MAX_DIMS);
        const size_t need = align8(24 + 8 * (size_t)e.ndim + name_len + 1);
        if (index_len - at < need || name_len == 0 || name_len > ST_TENSOR_MAX_NAME)
            return bad(path, "index entry %u (offset %llu): a %zu-byte name does not fit", k,
                       (unsigned long long)where, name_len);
        e.name = (char *)p + 24 + 8 * e.ndim;
        if (memchr(e.name, 0, name_len) || e.name[name_len] ||
            !all_zero((const unsigned char *)e.name + name_len, need - 24 - 8 * e.ndim - name_len,
                      &nz))
            return bad(path, "index entry %u (offset %llu): the name is not %zu bytes and a "
                             "NUL padded with zeros", k, (unsigned long long)where, name_len);
        if (!elem)
            return bad(path, "tensor '%s' (offset %llu): element type %u does not exist",
                       e.name, (unsigned long long)where + 2, p[2]);
        for (unsigned d = 0; d < e.ndim; d++)
            e.dims[d] = get64(p + 24 + 8 * d);
        const uint64_t nbytes = get64(p + 16), offset = get64(p + 8);
        if (count_elements(e.ndim, e.dims, elem, &e.count) != ST_OK ||
            nbytes != e.count * elem)
            return bad(path, "tensor '%s' (offset %llu): %llu bytes do not match its shape %s",
                       e.name, (unsigned long long)where, (unsigned long long)nbytes,
                       shape_text(shown, sizeof shown, e.dtype, e.ndim, e.dims));
        if (offset != align_up(off) || offset > data_len || nbytes > data_len - offset)
            return bad(path, "tensor '%s' (offset %llu): data at %llu, %llu bytes, is out of "
                             "place", e.name, (unsigned long long)where,
                       (unsigned long long)(data_offset + offset), (unsigned long long)nbytes);
        if (!all_zero(data + off, (size_t)(offset - off), &nz))
            return bad(path, "nonzero padding at offset %llu",
                       (unsigned long long)(data_offset + off + nz));
        e.nbytes = (size_t)nbytes;
        e.data = (void *)(data + offset);
        e.crc = get32(p + 4);
        if (st_crc32(0, e.data, e.nbytes) != e.crc)
            return bad(path, "tensor '%s' (data at offset %llu, %zu bytes): checksum mismatch: "
                             "the file is corrupt", e.name,
                       (unsigned long long)(data_offset + offset), e.nbytes);
        if (lookup(self, e.name) >= 0)
            return bad(path, "two tensors are called '%s' (offset %llu)", e.name,
                       (unsigned long long)where);
        self->e[self->n++] = e;
        size_t s = (size_t)name_hash(e.name) & (self->n_slots - 1);
        while (self->slot[s])
            s = (s + 1) & (self->n_slots - 1);
        self->slot[s] = (uint32_t)self->n;
        at += need;
        off = offset + nbytes;
    }
    if (at != index_len)
        return bad(path, "the index has %llu bytes after its %u entries (offset %llu)",
                   (unsigned long long)(index_len - at), n, (unsigned long long)(HEADER_LEN + at));
    if (!all_zero(data + off, (size_t)(data_len - off), &nz))
        return bad(path, "nonzero padding at offset %llu",
                   (unsigned long long)(data_offset + off + nz));
    return ST_OK;
}

static st_tensor_file *load_image(const char *path, unsigned char *img, size_t len, int *err)
{
    st_tensor_file *self = file_alloc(path, err);
    if (!self) {
        free(img);
        return NULL;
    }
    int rc = parse(self, img, len);
    if (rc != ST_OK) {
        st_tensor_file_destroy(&self);
        if (err)
            *err = rc;
        return NULL;
    }
    if (err)
        *err = ST_OK;
    return self;
}

st_tensor_file *st_tensor_file_load(const char *path, int *err)
{
    int rc;
    unsigned char *img = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0) {
        rc = st_error(errno == ENOENT ? ST_ERR_NOT_FOUND : ST_ERR_IO,
                      "model file '%s': cannot open: %s", path, strerror(errno));
        goto fail;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        rc = st_error(ST_ERR_IO, "model file '%s': not a regular file", path);
        goto fail;
    }
    const size_t len = (size_t)st.st_size;
    if ((off_t)len != st.st_size || len > SIZE_MAX - ALIGN) {
        rc = st_error(ST_ERR_NOMEM, "model file '%s' is too large for memory", path);
        goto fail;
    }
    img = aligned_alloc(ALIGN, (size_t)align_up(len ? len : 1));
    if (!img) {
        rc = st_error(ST_ERR_NOMEM, "out of memory for model file '%s' (%zu bytes)", path, len);
        goto fail;
    }
    size_t got = 0;
    while (got < len) {
        ssize_t r = read(fd, img + got, len - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = st_error(ST_ERR_IO, "model file '%s': read failed at offset %zu: %s", path, got,
                          strerror(errno));
            goto fail;
        }
        if (r == 0)
            break; /* shrank while we read: parse() reports it as truncated */
        got += (size_t)r;
    }
    close(fd);
    return load_image(path, img, got, err);
fail:
    if (fd >= 0)
        close(fd);
    free(img);
    if (err)
        *err = rc;
    return NULL;
}

st_tensor_file *st_tensor_file_load_mem(const void *buf, size_t len, int *err)
{
    if (len > SIZE_MAX - ALIGN || (!buf && len)) {
        int rc = st_error(ST_ERR_INVALID, "model buffer: bad length %zu", len);
        if (err)
            *err = rc;
        return NULL;
    }
    unsigned char *img = aligned_alloc(ALIGN, (size_t)align_up(len ? len : 1));
    if (!img) {
        int rc = st_error(ST_ERR_NOMEM, "out of memory for a %zu-byte model", len);
        if (err)
            *err = rc;
        return NULL;
    }
    if (len)
        memcpy(img, buf, len);
    return load_image(MEM_LABEL, img, len, err);
}

/* ---- networks in the container -------------------------------------------------- */

/* The network schema (docs/MODEL_FORMAT.md, "Networks"), under a prefix P:

     P net/format      u32 []        1
     P net/nodes       u32 [N, 3]    kind code, n_in, n_out, in node order
     P net/names       u8  [bytes]   the N names, each followed by a NUL
     P net/edges       u32 [E, 2]    from, to: grouped by target, in each
                                     target's order of connection
     P node/<name>/... per kind, below

   The codes are the file's, mapped here, so that reordering the engine's
   enums never changes what a file means. */

static const st_snn_node_kind kind_of_code[] = {
    ST_SNN_NODE_INPUT,   ST_SNN_NODE_OUTPUT,  ST_SNN_NODE_DENSE,
    ST_SNN_NODE_SPARSE,  ST_SNN_NODE_CONV,    ST_SNN_NODE_SCALE,
    ST_SNN_NODE_NEURONS, ST_SNN_NODE_THRESHOLD, ST_SNN_NODE_DELAY,
};
#define N_KIND_CODES (sizeof kind_of_code / sizeof kind_of_code[0])

static uint32_t code_of_kind(st_snn_node_kind kind)
{
    for (uint32_t c = 0; c < N_KIND_CODES; c++)
        if (kind_of_code[c] == kind)
            return c;
    return UINT32_MAX;
}

/* Neuron parameter columns: the file names each column, so a reader maps
   them by name. */
static const struct {
    const char *name;
    size_t offset;
} neuron_cols[] = {
    {"tau_syn_inv", offsetof(st_snn_neuron_params, tau_syn_inv)},
    {"tau_mem_inv", offsetof(st_snn_neuron_params, tau_mem_inv)},
    {"v_leak", offsetof(st_snn_neuron_params, v_leak)},
    {"v_th", offsetof(st_snn_neuron_params, v_th)},
    {"v_reset", offsetof(st_snn_neuron_params, v_reset)},
    {"tau_adapt_inv", offsetof(st_snn_neuron_params, tau_adapt_inv)},
    {"beta", offsetof(st_snn_neuron_params, beta)},
    {"adaptation_current", offsetof(st_snn_neuron_params, adaptation_current)},
    {"adaptation_spike", offsetof(st_snn_neuron_params, adaptation_spike)},
    {"delta_T", offsetof(st_snn_neuron_params, delta_T)},
    {"tau_ada_inv", offsetof(st_snn_neuron_params, tau_ada_inv)},
    {"w_in", offsetof(st_snn_neuron_params, w_in)},
    {"r", offsetof(st_snn_neuron_params, r)},
};
#define N_NEURON_COLS (sizeof neuron_cols / sizeof neuron_cols[0])

static const char *const reset_names[] = {"value", "subtract", "none"};

#define FIELD(p, k) ((float *)(void *)((char *)(p) + neuron_cols[k].offset))

/* Tensor names: prefix + what. */
typedef struct {
    char buf[ST_TENSOR_MAX_NAME + 64];
    bool too_long;
} tname;

static const char *mkname(tname *t, const char *prefix, const char *node, const char *what)
{
    int n = node ? snprintf(t->buf, sizeof t->buf, "%snode/%s/%s", prefix, node, what)
                 : snprintf(t->buf, sizeof t->buf, "%snet/%s", prefix, what);
    t->too_long = n < 0 || (size_t)n > ST_TENSOR_MAX_NAME;
    return t->buf;
}

/* Adds one tensor of a node (or of the net when node is NULL). */
static int put(st_tensor_file *f, const char *prefix, const char *node, const char *what,
               st_dtype dtype, unsigned ndim, const uint64_t *dims, const void *data)
{
    tname t;
    mkname(&t, prefix, node, what);
    if (t.too_long)
        return st_error(ST_ERR_INVALID, "node '%.60s...': the name is too long for a model file",
                        node ? node : "");
    return st_tensor_file_add(f, t.buf, dtype, ndim, dims, data);
}

static int put_node(st_tensor_file *f, const char *prefix, const st_snn_net *net, int id,
                    const st_snn_node_info *info)
{
    st_snn_node_data d;
    int rc = st_snn_net_node_data(net, id, &d);
    if (rc != ST_OK)
        return rc;
    const char *name = info->name;
    const uint64_t n_in = info->n_in, n_out = info->n_out;
    switch (info->kind) {
    case ST_SNN_NODE_INPUT:
    case ST_SNN_NODE_OUTPUT: return ST_OK;
    case ST_SNN_NODE_DENSE: {
        /* The engine keeps W column-major with padded columns; the file has
           it as the API takes it, [n_out][n_in]. */
        const size_t ld = st_snn_dense_ld((size_t)n_out);
        float *w = malloc((size_t)(n_in * n_out) * sizeof *w);
        if (!w)
            return st_error(ST_ERR_NOMEM, "out of memory saving '%s'", name);
        for (size_t i = 0; i < n_in; i++)
            for (size_t o = 0; o < n_out; o++)
                w[o * n_in + i] = d.w[i * ld + o];
        rc = put(f, prefix, name, "weight", ST_DTYPE_F32, 2, (const uint64_t[]){n_out, n_in}, w);
        free(w);
        break;
    }
    case ST_SNN_NODE_SPARSE: {
        /* Back from groups by input to CSR by output: within a row, inputs
           ascend and duplicates keep their order, so loading rebuilds the
           same groups. */
        const size_t nnz = d.ptr[n_in];
        uint32_t *row_ptr = calloc((size_t)n_out + 1, sizeof *row_ptr);
        uint32_t *col = malloc((nnz ? nnz : 1) * sizeof *col);
        float *val = malloc((nnz ? nnz : 1) * sizeof *val);
        uint32_t *fill = malloc((size_t)(n_out ? n_out : 1) * sizeof *fill);
        if (!row_ptr || !col || !val || !fill) {
            rc = st_error(ST_ERR_NOMEM, "out of memory saving '%s'", name);
        } else {
            for (size_t k = 0; k < nnz; k++)
                row_ptr[d.idx[k] + 1]++;
            for (size_t o = 0; o < n_out; o++)
                row_ptr[o + 1] += row_ptr[o];
            memcpy(fill, row_ptr, (size_t)n_out * sizeof *fill);
            for (uint32_t i = 0; i < n_in; i++)
                for (uint32_t k = d.ptr[i]; k < d.ptr[i + 1]; k++) {
                    const uint32_t at = fill[d.idx[k]]++;
                    col[at] = i;
                    val[at] = d.val[k];
                }
            rc = put(f, prefix, name, "row_ptr", ST_DTYPE_U32, 1, (const uint64_t[]){n_out + 1},
                     row_ptr);
            if (rc == ST_OK)
                rc = put(f, prefix, name, "col", ST_DTYPE_U32, 1, (const uint64_t[]){nnz}, col);
            if (rc == ST_OK)
                rc = put(f, prefix, name, "val", ST_DTYPE_F32, 1, (const uint64_t[]){nnz}, val);
        }
        free(row_ptr);
        free(col);
        free(val);
        free(fill);
        break;
    }
    case ST_SNN_NODE_CONV: {
        const st_snn_conv_shape *c = &d.conv;
        const uint32_t geometry[13] = {c->in_channels, c->out_channels, c->groups, c->height,
                                       c->width,       c->kernel_h,     c->kernel_w, c->stride_h,
                                       c->stride_w,    c->padding_h,    c->padding_w,
                                       c->dilation_h,  c->dilation_w};
        rc = put(f, prefix, name, "geometry", ST_DTYPE_U32, 1, (const uint64_t[]){13}, geometry);
        const uint64_t wd[4] = {c->out_channels, c->in_channels / c->groups, c->kernel_h,
                                c->kernel_w};
        if (rc == ST_OK)
            rc = put(f, prefix, name, "weight", ST_DTYPE_F32, 4, wd, d.w);
        if (rc == ST_OK && d.bias) {
            /* The engine repeats the bias over each channel's positions. */
            const size_t per = (size_t)(n_out / c->out_channels);
            float *bias = malloc(c->out_channels * sizeof *bias);
            if (!bias)
                return st_error(ST_ERR_NOMEM, "out of memory saving '%s'", name);
            for (size_t co = 0; co < c->out_channels; co++)
                bias[co] = d.bias[co * per];
            rc = put(f, prefix, name, "bias", ST_DTYPE_F32, 1,
                     (const uint64_t[]){c->out_channels}, bias);
            free(bias);
        }
        return rc;
    }
    case ST_SNN_NODE_SCALE:
        return put(f, prefix, name, "scale", ST_DTYPE_F32, 1, &n_out, d.w);
    case ST_SNN_NODE_THRESHOLD:
        return put(f, prefix, name, "threshold", ST_DTYPE_F32, 1, &n_out, d.w);
    case ST_SNN_NODE_DELAY:
        return put(f, prefix, name, "delay", ST_DTYPE_U32, 1, &n_out, d.delay);
    case ST_SNN_NODE_NEURONS: {
        const st_snn_neurons *pop = st_snn_net_neurons(net, id);
        const st_snn_neuron_params *p0 = st_snn_neurons_params(pop, 0);
        /* Shared parameters come back as one pointer for every neuron. */
        const bool shared = n_out == 1 || st_snn_neurons_params(pop, 1) == p0;
        const uint64_t rows = shared ? 1 : n_out;
        float *tab = malloc((size_t)rows * N_NEURON_COLS * sizeof *tab);
        char names[N_NEURON_COLS * 24] = "";
        if (!tab)
            return st_error(ST_ERR_NOMEM, "out of memory saving '%s'", name);
        for (size_t r = 0; r < rows; r++) {
            const st_snn_neuron_params *p = st_snn_neurons_params(pop, r);
            for (size_t k = 0; k < N_NEURON_COLS; k++)
                tab[r * N_NEURON_COLS + k] = *FIELD(p, k);
        }
        for (size_t k = 0; k < N_NEURON_COLS; k++) {
            strcat(names, neuron_cols[k].name);
            if (k + 1 < N_NEURON_COLS)
                strcat(names, ",");
        }
        const uint64_t len_model = strlen(st_snn_model_name(p0->model));
        const uint64_t len_reset = strlen(reset_names[p0->reset]);
        const uint64_t len_names = strlen(names);
        rc = put(f, prefix, name, "model", ST_DTYPE_U8, 1, &len_model,
                 st_snn_model_name(p0->model));
        if (rc == ST_OK)
            rc = put(f, prefix, name, "reset", ST_DTYPE_U8, 1, &len_reset, reset_names[p0->reset]);
        if (rc == ST_OK)
            rc = put(f, prefix, name, "dt", ST_DTYPE_F64, 0, NULL, &p0->dt);
        if (rc == ST_OK)
            rc = put(f, prefix, name, "param_names", ST_DTYPE_U8, 1, &len_names, names);
        if (rc == ST_OK)
            rc = put(f, prefix, name, "params", ST_DTYPE_F32, 2,
                     (const uint64_t[]){rows, N_NEURON_COLS}, tab);
        free(tab);
        return rc;
    }
    }
    if (rc == ST_OK && d.bias && info->kind != ST_SNN_NODE_CONV)
        rc = put(f, prefix, name, "bias", ST_DTYPE_F32, 1, &n_out, d.bias);
    return rc;
}

int st_snn_net_to_file(const st_snn_net *net, st_tensor_file *file, const char *prefix)
{
    prefix = prefix ? prefix : "";
    const size_t n = st_snn_net_node_count(net);
    st_snn_node_info info;
    if (n == 0 || st_snn_net_node_info(net, 0, &info) != ST_OK || info.order < 0)
        return st_error(ST_ERR_STATE, "only a finished network can be saved "
                                      "(st_snn_net_finish)");
    if (n > UINT32_MAX / 4)
        return st_error(ST_ERR_INVALID, "too many nodes to save");
    int rc = ST_OK;
    uint32_t *nodes = malloc(n * 3 * sizeof *nodes);
    size_t names_len = 0, n_edges = 0;
    for (size_t k = 0; k < n; k++) {
        st_snn_node_data d;
        st_snn_net_node_info(net, (int)k, &info);
        st_snn_net_node_data(net, (int)k, &d);
        names_len += strlen(info.name) + 1;
        n_edges += d.n_src;
    }
    char *names = malloc(names_len);
    uint32_t *edges = malloc((n_edges ? n_edges : 1) * 2 * sizeof *edges);
    if (!nodes || !names || !edges) {
        rc = st_error(ST_ERR_NOMEM, "out of memory saving a network");
        goto done;
    }
    size_t at = 0, e = 0;
    for (size_t k = 0; k < n; k++) {
        st_snn_node_data d;
        st_snn_net_node_info(net, (int)k, &info);
        st_snn_net_node_data(net, (int)k, &d);
        nodes[3 * k] = code_of_kind(info.kind);
        nodes[3 * k + 1] = (uint32_t)info.n_in;
        nodes[3 * k + 2] = (uint32_t)info.n_out;
        memcpy(names + at, info.name, strlen(info.name) + 1);
        at += strlen(info.name) + 1;
        for (size_t s = 0; s < d.n_src; s++, e++) {
            edges[2 * e] = (uint32_t)d.src[s];
            edges[2 * e + 1] = (uint32_t)k;
        }
    }
    const uint32_t format = NET_FORMAT;
    rc = put(file, prefix, NULL, "format", ST_DTYPE_U32, 0, NULL, &format);
    if (rc == ST_OK)
        rc = put(file, prefix, NULL, "nodes", ST_DTYPE_U32, 2, (const uint64_t[]){n, 3}, nodes);
    if (rc == ST_OK)
        rc = put(file, prefix, NULL, "names", ST_DTYPE_U8, 1, (const uint64_t[]){names_len},
                 names);
    if (rc == ST_OK)
        rc = put(file, prefix, NULL, "edges", ST_DTYPE_U32, 2, (const uint64_t[]){n_edges, 2},
                 edges);
    for (size_t k = 0; k < n && rc == ST_OK; k++) {
        st_snn_net_node_info(net, (int)k, &info);
        rc = put_node(file, prefix, net, (int)k, &info);
    }
done:
    free(nodes);
    free(names);
    free(edges);
    return rc;
}

/* ---- loading a network ---- */

/* Wraps the engine's message for a node that would not build. */
static int node_fail(const st_tensor_file *f, const char *node, int rc)
{
    char why[400];
    snprintf(why, sizeof why, "%s", st_errmsg());
    if (rc == ST_ERR_NOMEM)
        return st_error(rc, "model file '%s': node '%s': %s", f->path, node, why);
    return st_error(ST_ERR_FORMAT, "model file '%s': node '%s': %s", f->path, node, why);
}

static int get(const st_tensor_file *f, const char *prefix, const char *node, const char *what,
               st_dtype dtype, unsigned ndim, const uint64_t *dims, st_tensor *out)
{
    tname t;
    mkname(&t, prefix, node, what);
    if (t.too_long)
        return st_error(ST_ERR_FORMAT, "model file '%s': node '%.60s...': name too long", f->path,
                        node ? node : "");
    return st_tensor_file_expect(f, t.buf, dtype, ndim, dims, out);
}

static bool has(const st_tensor_file *f, const char *prefix, const char *node, const char *what)
{
    tname t;
    mkname(&t, prefix, node, what);
    return !t.too_long && lookup(f, t.buf) >= 0;
}

static int get_text(const st_tensor_file *f, const char *prefix, const char *node,
                    const char *what, char *buf, size_t cap)
{
    tname t;
    mkname(&t, prefix, node, what);
    return st_tensor_file_string(f, t.buf, buf, cap);
}

/* An optional f32 bias of n elements: *bias NULL when absent. */
static int get_bias(const st_tensor_file *f, const char *prefix, const char *node, uint64_t n,
                    const float **bias)
{
    st_tensor t;
    *bias = NULL;
    if (!has(f, prefix, node, "bias"))
        return ST_OK;
    int rc = get(f, prefix, node, "bias", ST_DTYPE_F32, 1, &n, &t);
    if (rc == ST_OK)
        *bias = t.data;
    return rc;
}

static int add_neurons_from(const st_tensor_file *f, const char *prefix, st_snn_net *net,
                            const char *name, const char *as, uint64_t n)
{
    char model_name[32], reset_name[32], col_names[1024];
    st_tensor dt, tab;
    st_snn_model model;
    int rc = get_text(f, prefix, name, "model", model_name, sizeof model_name);
    if (rc == ST_OK)
        rc = get_text(f, prefix, name, "reset", reset_name, sizeof reset_name);
    if (rc == ST_OK)
        rc = get_text(f, prefix, name, "param_names", col_names, sizeof col_names);
    if (rc == ST_OK)
        rc = get(f, prefix, name, "dt", ST_DTYPE_F64, 0, NULL, &dt);
    if (rc == ST_OK)
        rc = get(f, prefix, name, "params", ST_DTYPE_F32, 2, (const uint64_t[]){0, 0}, &tab);
    if (rc != ST_OK)
        return rc;
    if (st_snn_model_from_name(model_name, &model) != ST_OK)
        return st_error(ST_ERR_FORMAT, "model file '%s': node '%s': unknown neuron model '%s'",
                        f->path, name, model_name);
    st_snn_neuron_params base = st_snn_neuron_default_params(model);
    base.dt = *(const double *)dt.data;
    int reset = -1;
    for (int k = 0; k < 3; k++)
        if (!strcmp(reset_name, reset_names[k]))
            reset = k;
    if (reset < 0)
        return st_error(ST_ERR_FORMAT, "model file '%s': node '%s': unknown reset '%s'", f->path,
                        name, reset_name);
    base.reset = (st_snn_reset)reset;
    /* Map the file's columns to fields by name. */
    size_t col_field[64], n_cols = 0;
    for (char *save = NULL, *tok = strtok_r(col_names, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        size_t k = 0;
        while (k < N_NEURON_COLS && strcmp(neuron_cols[k].name, tok))
            k++;
        if (k == N_NEURON_COLS || n_cols == 64)
            return st_error(ST_ERR_FORMAT, "model file '%s': node '%s': unknown neuron "
                                           "parameter '%s'", f->path, name, tok);
        col_field[n_cols++] = k;
    }
    if (tab.dims[1] != n_cols || (tab.dims[0] != 1 && tab.dims[0] != n))
        return st_error(ST_ERR_FORMAT, "model file '%s': tensor '%snode/%s/params' is [%llu, "
                                       "%llu]; expected [1 or %llu, %zu] (one column per "
                                       "param_names entry)", f->path, prefix, name,
                        (unsigned long long)tab.dims[0], (unsigned long long)tab.dims[1],
                        (unsigned long long)n, n_cols);
    const size_t rows = (size_t)tab.dims[0];
    st_snn_neuron_params *p = malloc(rows * sizeof *p);
    if (!p)
        return st_error(ST_ERR_NOMEM, "out of memory loading '%s'", name);
    const float *v = tab.data;
    for (size_t r = 0; r < rows; r++) {
        p[r] = base;
        for (size_t c = 0; c < n_cols; c++)
            *FIELD(&p[r], col_field[c]) = v[r * n_cols + c];
    }
    rc = rows == 1 ? st_snn_net_add_neurons(net, as, p, (size_t)n)
                   : st_snn_net_add_neurons_each(net, as, p, (size_t)n);
    free(p);
    return rc;
}

/* The node `name` of the file, added to net as `as` (the same name when loading a file). */
static int add_node_from(const st_tensor_file *f, const char *prefix, st_snn_net *net,
                         const char *name, const char *as, st_snn_node_kind kind, uint64_t n_in,
                         uint64_t n_out)
{
    st_tensor t, u, v;
    const float *bias = NULL;
    int rc;
    switch (kind) {
    case ST_SNN_NODE_INPUT: return st_snn_net_add_input(net, as, (size_t)n_out);
    case ST_SNN_NODE_OUTPUT: return st_snn_net_add_output(net, as, (size_t)n_out);
    case ST_SNN_NODE_DENSE:
        rc = get(f, prefix, name, "weight", ST_DTYPE_F32, 2, (const uint64_t[]){n_out, n_in}, &t);
        if (rc == ST_OK)
            rc = get_bias(f, prefix, name, n_out, &bias);
        return rc != ST_OK ? rc
                           : st_snn_net_add_dense(net, as, (size_t)n_out, (size_t)n_in, t.data,
                                                  bias);
    case ST_SNN_NODE_SPARSE: {
        rc = get(f, prefix, name, "row_ptr", ST_DTYPE_U32, 1, (const uint64_t[]){n_out + 1}, &t);
        if (rc != ST_OK)
            return rc;
        const uint32_t *row_ptr = t.data;
        const uint64_t nnz = row_ptr[n_out];
        rc = get(f, prefix, name, "col", ST_DTYPE_U32, 1, &nnz, &u);
        if (rc == ST_OK)
            rc = get(f, prefix, name, "val", ST_DTYPE_F32, 1, &nnz, &v);
        if (rc == ST_OK)
            rc = get_bias(f, prefix, name, n_out, &bias);
        return rc != ST_OK ? rc
                           : st_snn_net_add_sparse(net, as, (size_t)n_out, (size_t)n_in,
                                                   row_ptr, u.data, v.data, bias);
    }
    case ST_SNN_NODE_CONV: {
        rc = get(f, prefix, name, "geometry", ST_DTYPE_U32, 1, (const uint64_t[]){13}, &t);
        if (rc != ST_OK)
            return rc;
        const uint32_t *g = t.data;
        const st_snn_conv_shape c = {
            .in_channels = g[0], .out_channels = g[1], .groups = g[2], .height = g[3],
            .width = g[4], .kernel_h = g[5], .kernel_w = g[6], .stride_h = g[7],
            .stride_w = g[8], .padding_h = g[9], .padding_w = g[10], .dilation_h = g[11],
            .dilation_w = g[12],
        };
        const uint64_t wd[4] = {c.out_channels, c.groups ? c.in_channels / c.groups : 0,
                                c.kernel_h, c.kernel_w};
        if (!c.groups || !wd[0] || !wd[1] || !wd[2] || !wd[3])
            return st_error(ST_ERR_FORMAT, "model file '%s': tensor '%snode/%s/geometry' has a "
                                           "zero channel count, group count or kernel extent",
                            f->path, prefix, name);
        /* The geometry must give the sizes the node table gave (bounded
           above) before the node is made: a padding of millions claimed
           billions of outputs (found by fuzz/fuzz_model.c). In double: a
           product past 2^53 is no table's size anyway. */
        const double g_in = (double)c.in_channels * c.height * c.width;
        const double g_out =
            (double)c.out_channels * st_snn_conv_out_h(&c) * st_snn_conv_out_w(&c);
        if (g_in != (double)n_in || g_out != (double)n_out)
            return st_error(ST_ERR_FORMAT, "model file '%s': node '%s' is %.0f -> %.0f by its "
                                           "geometry, but '%snet/nodes' says %llu -> %llu",
                            f->path, name, g_in, g_out, prefix, (unsigned long long)n_in,
                            (unsigned long long)n_out);
        rc = get(f, prefix, name, "weight", ST_DTYPE_F32, 4, wd, &u);
        if (rc == ST_OK)
            rc = get_bias(f, prefix, name, c.out_channels, &bias);
        return rc != ST_OK ? rc : st_snn_net_add_conv(net, as, &c, u.data, bias);
    }
    case ST_SNN_NODE_SCALE:
        rc = get(f, prefix, name, "scale", ST_DTYPE_F32, 1, &n_out, &t);
        return rc != ST_OK ? rc : st_snn_net_add_scale(net, as, (size_t)n_out, t.data);
    case ST_SNN_NODE_THRESHOLD:
        rc = get(f, prefix, name, "threshold", ST_DTYPE_F32, 1, &n_out, &t);
        return rc != ST_OK ? rc : st_snn_net_add_threshold(net, as, (size_t)n_out, t.data);
    case ST_SNN_NODE_DELAY:
        rc = get(f, prefix, name, "delay", ST_DTYPE_U32, 1, &n_out, &t);
        return rc != ST_OK ? rc : st_snn_net_add_delay(net, as, (size_t)n_out, t.data);
    case ST_SNN_NODE_NEURONS: return add_neurons_from(f, prefix, net, name, as, n_out);
    }
    return st_error(ST_ERR_FORMAT, "model file '%s': node '%s' has an unknown kind", f->path, name);
}

st_snn_net *st_snn_net_from_file(const st_tensor_file *f, const char *prefix, int *err)
{
    prefix = prefix ? prefix : "";
    st_snn_net *net = NULL;
    st_tensor t_format, t_nodes, t_names, t_edges;
    int rc = get(f, prefix, NULL, "format", ST_DTYPE_U32, 0, NULL, &t_format);
    if (rc == ST_OK && *(const uint32_t *)t_format.data != NET_FORMAT) {
        rc = st_error(ST_ERR_FORMAT, "model file '%s': network schema %u (tensor '%snet/format'); "
                                     "this build reads %u", f->path,
                      *(const uint32_t *)t_format.data, prefix, NET_FORMAT);
    }
    if (rc == ST_OK)
        rc = get(f, prefix, NULL, "nodes", ST_DTYPE_U32, 2, (const uint64_t[]){0, 3}, &t_nodes);
    if (rc == ST_OK)
        rc = get(f, prefix, NULL, "names", ST_DTYPE_U8, 1, (const uint64_t[]){0}, &t_names);
    if (rc == ST_OK)
        rc = get(f, prefix, NULL, "edges", ST_DTYPE_U32, 2, (const uint64_t[]){0, 2}, &t_edges);
    if (rc != ST_OK)
        goto fail;
    const size_t n = (size_t)t_nodes.dims[0];
    const uint32_t *nodes = t_nodes.data, *edges = t_edges.data;
    const char *names = t_names.data, *names_end = names + t_names.nbytes;
    if (n == 0 || n > INT32_MAX) {
        rc = st_error(ST_ERR_FORMAT, "model file '%s': tensor '%snet/nodes' lists %zu nodes",
                      f->path, prefix, n);
        goto fail;
    }
    if (!(net = st_snn_net_new(&rc)))
        goto fail;
    /* Nodes, in their saved order (ids, inputs' order and the stepping plan
       all follow it). */
    const char *name = names;
    uint64_t total_values = 0;
    for (size_t k = 0; k < n; k++) {
        const char *end = name < names_end ? memchr(name, 0, (size_t)(names_end - name)) : NULL;
        if (!end) {
            rc = st_error(ST_ERR_FORMAT, "model file '%s': tensor '%snet/names' holds fewer "
                                         "than the %zu names of '%snet/nodes'", f->path, prefix,
                          n, prefix);
            goto fail;
        }
        const uint32_t code = nodes[3 * k];
        if (code >= N_KIND_CODES) {
            rc = st_error(ST_ERR_FORMAT, "model file '%s': node '%s' (row %zu of '%snet/nodes') "
                                         "has unknown kind code %u", f->path, name, k, prefix,
                          code);
            goto fail;
        }
        /* Sizes are claims the file need not back with data (inputs,
           outputs, a sparse node's inputs, a population with shared
           parameters): bounded, so that a few bytes cannot make the loader
           or a state allocate gigabytes (found by fuzz/fuzz_model.c). */
        total_values += (uint64_t)nodes[3 * k + 1] + nodes[3 * k + 2];
        if (nodes[3 * k + 1] > (1u << 24) || nodes[3 * k + 2] > (1u << 24) ||
            total_values > (1u << 26)) {
            rc = st_error(ST_ERR_FORMAT, "model file '%s': node '%s' (row %zu of '%snet/nodes') "
                                         "has %u inputs and %u outputs: more than this reader "
                                         "takes (2^24 a node, 2^26 in all)",
                          f->path, name, k, prefix, nodes[3 * k + 1], nodes[3 * k + 2]);
            goto fail;
        }
        const st_snn_node_kind kind = kind_of_code[code];
        rc = add_node_from(f, prefix, net, name, name, kind, nodes[3 * k + 1], nodes[3 * k + 2]);
        if (rc < 0) {
            if (rc != ST_ERR_FORMAT)
                rc = node_fail(f, name, rc);
            goto fail;
        }
        st_snn_node_info info;
        st_snn_net_node_info(net, rc, &info);
        if (info.n_in != nodes[3 * k + 1] || info.n_out != nodes[3 * k + 2]) {
            rc = st_error(ST_ERR_FORMAT, "model file '%s': node '%s' is %zu -> %zu by its "
                                         "weights, but '%snet/nodes' says %u -> %u", f->path,
                          name, info.n_in, info.n_out, prefix, nodes[3 * k + 1],
                          nodes[3 * k + 2]);
            goto fail;
        }
        name = end + 1;
    }
    if (name != names_end) {
        rc = st_error(ST_ERR_FORMAT, "model file '%s': tensor '%snet/names' holds more than the "
                                     "%zu names of '%snet/nodes'", f->path, prefix, n, prefix);
        goto fail;
    }
    for (size_t e = 0; e < t_edges.dims[0]; e++) {
        const uint32_t from = edges[2 * e], to = edges[2 * e + 1];
        if (from >= n || to >= n) {
            rc = st_error(ST_ERR_FORMAT, "model file '%s': edge %zu of '%snet/edges' (%u -> %u) "
                                         "names a node beyond the %zu there are", f->path, e,
                          prefix, from, to, n);
            goto fail;
        }
        if ((rc = st_snn_net_connect(net, (int)from, (int)to)) != ST_OK) {
            char why[400];
            snprintf(why, sizeof why, "%s", st_errmsg());
            rc = st_error(rc == ST_ERR_NOMEM ? rc : ST_ERR_FORMAT,
                          "model file '%s': edge %zu of '%snet/edges': %s", f->path, e, prefix,
                          why);
            goto fail;
        }
    }
    if ((rc = st_snn_net_finish(net)) != ST_OK) {
        char why[400];
        snprintf(why, sizeof why, "%s", st_errmsg());
        rc = st_error(rc == ST_ERR_NOMEM ? rc : ST_ERR_FORMAT, "model file '%s': %s", f->path,
                      why);
        goto fail;
    }
    if (err)
        *err = ST_OK;
    return net;
fail:
    st_snn_net_destroy(&net);
    if (err)
        *err = rc;
    return NULL;
}

#define NET_KIND "snn-net"

static int net_to_new_file(const st_snn_net *net, st_tensor_file **out)
{
    int rc;
    *out = st_tensor_file_new(NET_KIND, &rc);
    if (!*out)
        return rc;
    if ((rc = st_snn_net_to_file(net, *out, "")) != ST_OK)
        st_tensor_file_destroy(out);
    return rc;
}

/* ---- an ensemble as one network ---- */

st_snn_net *st_snn_net_ensemble(const st_snn_net *const *members, size_t k, int *err)
{
    return st_snn_net_ensemble_inputs(members, k, NULL, 1, err);
}

st_snn_net *st_snn_net_ensemble_inputs(const st_snn_net *const *members, size_t k,
                                       const int *group, size_t n_groups, int *err)
{
    int rc = ST_OK;
    st_snn_net *net = NULL;
    st_tensor_file *f = NULL;
    int *map = NULL;
    int in_ids[ST_SNN_ENSEMBLE_MAX_INPUTS], out_id = -1;
    size_t n_in = 0, n_out = 0;
    if (!members || k == 0 || k > 64) {
        rc = st_error(ST_ERR_INVALID, "an ensemble takes 1 to 64 networks, not %zu", k);
        goto fail;
    }
    if (n_groups < 1 || n_groups > ST_SNN_ENSEMBLE_MAX_INPUTS || (!group && n_groups != 1)) {
        rc = st_error(ST_ERR_INVALID, "an ensemble has 1 to %d inputs, not %zu",
                      ST_SNN_ENSEMBLE_MAX_INPUTS, n_groups);
        goto fail;
    }
    size_t readers[ST_SNN_ENSEMBLE_MAX_INPUTS] = {0}; /* every input feeds a member */
    for (size_t m = 0; m < k; m++) {
        if (group && (group[m] < 0 || (size_t)group[m] >= n_groups)) {
            rc = st_error(ST_ERR_INVALID, "ensemble: member %zu reads input %d of %zu", m,
                          group[m], n_groups);
            goto fail;
        }
        readers[group ? group[m] : 0]++;
    }
    for (size_t g = 0; g < n_groups; g++)
        if (!readers[g]) {
            rc = st_error(ST_ERR_INVALID, "ensemble: no member reads input %zu", g);
            goto fail;
        }
    /* every member: one input and one output, the same sizes as the first */
    for (size_t m = 0; m < k; m++) {
        size_t ins = 0, outs = 0, len_in = 0, len_out = 0;
        const size_t n = members[m] ? st_snn_net_node_count(members[m]) : 0;
        for (size_t i = 0; i < n; i++) {
            st_snn_node_info info;
            st_snn_net_node_info(members[m], (int)i, &info);
            if (info.order < 0) {
                rc = st_error(ST_ERR_STATE, "ensemble: member %zu is not finished", m);
                goto fail;
            }
            if (info.kind == ST_SNN_NODE_INPUT) {
                ins++;
                len_in = info.n_out;
            } else if (info.kind == ST_SNN_NODE_OUTPUT) {
                outs++;
                len_out = info.n_out;
            }
        }
        if (m == 0) {
            n_in = len_in;
            n_out = len_out;
        }
        if (ins != 1 || outs != 1 || len_in != n_in || len_out != n_out) {
            rc = st_error(ST_ERR_INVALID, "ensemble: member %zu has %zu input(s) (of %zu) and "
                                          "%zu output(s) (of %zu); each member needs one input "
                                          "of %zu and one output of %zu, as member 0", m, ins,
                          len_in, outs, len_out, n_in, n_out);
            goto fail;
        }
    }
    if (!(net = st_snn_net_new(&rc)))
        goto fail;
    for (size_t g = 0; g < n_groups; g++) {
        char as[32];
        snprintf(as, sizeof as, g ? "input%zu" : "input", g);
        if ((rc = in_ids[g] = st_snn_net_add_input(net, as, n_in)) < 0)
            goto fail;
    }
    float *inv = malloc(n_out * sizeof *inv);
    if (!inv) {
        rc = st_error(ST_ERR_NOMEM, "out of memory for an ensemble");
        goto fail;
    }
    for (size_t o = 0; o < n_out; o++)
        inv[o] = 1.0f / (float)k;
    int *mean_ids = malloc(k * sizeof *mean_ids);
    for (size_t m = 0; m < k && mean_ids; m++) {
        /* the member through its file form: add_node_from reads any node kind */
        const size_t n = st_snn_net_node_count(members[m]);
        if ((rc = net_to_new_file(members[m], &f)) != ST_OK)
            break;
        free(map);
        if (!(map = malloc(n * sizeof *map))) {
            rc = st_error(ST_ERR_NOMEM, "out of memory for an ensemble");
            break;
        }
        for (size_t i = 0; i < n && rc >= 0; i++) {
            st_snn_node_info info;
            st_snn_net_node_info(members[m], (int)i, &info);
            char as[160];
            if (info.kind == ST_SNN_NODE_INPUT) {
                map[i] = in_ids[group ? group[m] : 0];
                continue;
            }
            if (info.kind == ST_SNN_NODE_OUTPUT) {
                /* the member's output becomes its share of the mean */
                snprintf(as, sizeof as, "m%zu.mean", m);
                rc = map[i] = mean_ids[m] = st_snn_net_add_scale(net, as, n_out, inv);
                continue;
            }
            snprintf(as, sizeof as, "m%zu.%s", m, info.name);
            rc = map[i] = add_node_from(f, "", net, info.name, as, info.kind, info.n_in,
                                        info.n_out);
        }
        /* the member's edges, each node's sources in their order */
        for (size_t i = 0; i < n && rc >= 0; i++) {
            st_snn_node_data d;
            st_snn_net_node_data(members[m], (int)i, &d);
            for (size_t e = 0; e < d.n_src && rc >= 0; e++)
                rc = st_snn_net_connect(net, map[d.src[e]], map[i]);
        }
        st_tensor_file_destroy(&f);
    }
    free(inv);
    if (!mean_ids && rc >= 0)
        rc = st_error(ST_ERR_NOMEM, "out of memory for an ensemble");
    if (rc >= 0 && (rc = out_id = st_snn_net_add_output(net, "output", n_out)) >= 0)
        for (size_t m = 0; m < k && rc >= 0; m++)
            rc = st_snn_net_connect(net, mean_ids[m], out_id);
    free(mean_ids);
    if (rc >= 0)
        rc = st_snn_net_finish(net);
    if (rc < 0)
        goto fail;
    free(map);
    if (err)
        *err = ST_OK;
    return net;
fail:
    st_tensor_file_destroy(&f);
    free(map);
    st_snn_net_destroy(&net);
    if (err)
        *err = rc;
    return NULL;
}

int st_snn_net_save(const st_snn_net *net, const char *path)
{
    st_tensor_file *f;
    int rc = net_to_new_file(net, &f);
    if (rc == ST_OK)
        rc = st_tensor_file_save(f, path);
    st_tensor_file_destroy(&f);
    return rc;
}

int st_snn_net_save_mem(const st_snn_net *net, void **buf, size_t *len)
{
    st_tensor_file *f;
    int rc = net_to_new_file(net, &f);
    if (rc == ST_OK)
        rc = st_tensor_file_save_mem(f, buf, len);
    st_tensor_file_destroy(&f);
    return rc;
}

st_snn_net *st_snn_net_of_file(const st_tensor_file *f, int *err)
{
    if (strcmp(f->kind, NET_KIND)) {
        int rc = st_error(ST_ERR_FORMAT, "model file '%s' holds a '%s', not a network ('%s')",
                          f->path, f->kind, NET_KIND);
        if (err)
            *err = rc;
        return NULL;
    }
    return st_snn_net_from_file(f, "", err);
}

static st_snn_net *net_from_loaded(st_tensor_file *f, int rc, int *err)
{
    st_snn_net *net = f ? st_snn_net_of_file(f, &rc) : NULL;
    st_tensor_file_destroy(&f);
    if (err)
        *err = rc;
    return net;
}

st_snn_net *st_snn_net_load(const char *path, int *err)
{
    int rc;
    st_tensor_file *f = st_tensor_file_load(path, &rc);
    return net_from_loaded(f, rc, err);
}

st_snn_net *st_snn_net_load_mem(const void *buf, size_t len, int *err)
{
    int rc;
    st_tensor_file *f = st_tensor_file_load_mem(buf, len, &rc);
    return net_from_loaded(f, rc, err);
}
