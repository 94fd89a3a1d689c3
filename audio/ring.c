/*  audio/ring.c - single-producer single-consumer lock-free ring.

    Tuned for the audio callback: blocks of 32 to 1024 frames, one memcpy or
    two per call, no lock, no allocation, no system call. The producer owns
    write_index, the consumer owns read_index; each publishes its index with a
    release store after touching the data and reads the other's with an
    acquire load, which is all the ordering an SPSC ring needs. The indices are
    64-bit element counts that never wrap in practice, so fill levels are a
    plain subtraction and the capture ring's write index doubles as the sample
    index (PortAudio's pa_ringbuffer masks its indices instead, and so cannot).
*/
#include "audio.h"

#include <string.h>

int st_ring_init(st_ring *r, void *storage, size_t elem_size, size_t capacity)
{
    if (!r || !storage || !elem_size || !capacity || (capacity & (capacity - 1)))
        return st_error(ST_ERR_INVALID,
                        "ring: capacity %zu is not a power of two, or storage/element size is empty",
                        capacity);
    atomic_init(&r->write_index, 0);
    atomic_init(&r->read_index, 0);
    atomic_init(&r->overrun_elems, 0);
    atomic_init(&r->underrun_elems, 0);
    r->data = storage;
    r->elem_size = elem_size;
    r->capacity = capacity;
    r->mask = capacity - 1;
    return ST_OK;
}

size_t st_ring_read_available(const st_ring *r)
{
    uint64_t w = atomic_load_explicit(&r->write_index, memory_order_acquire);
    uint64_t rd = atomic_load_explicit(&r->read_index, memory_order_acquire);
    return (size_t)(w - rd);
}

size_t st_ring_write_available(const st_ring *r)
{
    return r->capacity - st_ring_read_available(r);
}

/* Copies n elements between the ring at absolute index `at` and `buf`, in at
   most two pieces around the end of the storage. */
static void copy_in(st_ring *r, uint64_t at, const void *buf, size_t n)
{
    size_t pos = (size_t)(at & r->mask);
    size_t first = r->capacity - pos < n ? r->capacity - pos : n;
    memcpy(r->data + pos * r->elem_size, buf, first * r->elem_size);
    if (n > first)
        memcpy(r->data, (const unsigned char *)buf + first * r->elem_size,
               (n - first) * r->elem_size);
}

static void copy_out(const st_ring *r, uint64_t at, void *buf, size_t n)
{
    size_t pos = (size_t)(at & r->mask);
    size_t first = r->capacity - pos < n ? r->capacity - pos : n;
    memcpy(buf, r->data + pos * r->elem_size, first * r->elem_size);
    if (n > first)
        memcpy((unsigned char *)buf + first * r->elem_size, r->data,
               (n - first) * r->elem_size);
}

size_t st_ring_write(st_ring *r, const void *src, size_t n)
{
    uint64_t w = atomic_load_explicit(&r->write_index, memory_order_relaxed);
    uint64_t rd = atomic_load_explicit(&r->read_index, memory_order_acquire);
    size_t space = r->capacity - (size_t)(w - rd);
    if (n > space)
        n = space;
    if (n) {
        copy_in(r, w, src, n);
        atomic_store_explicit(&r->write_index, w + n, memory_order_release);
    }
    return n;
}

size_t st_ring_read(st_ring *r, void *dst, size_t n)
{
    uint64_t rd = atomic_load_explicit(&r->read_index, memory_order_relaxed);
    uint64_t w = atomic_load_explicit(&r->write_index, memory_order_acquire);
    size_t avail = (size_t)(w - rd);
    if (n > avail)
        n = avail;
    if (n) {
        copy_out(r, rd, dst, n);
        atomic_store_explicit(&r->read_index, rd + n, memory_order_release);
    }
    return n;
}

size_t st_ring_push(st_ring *r, const void *src, size_t n)
{
    size_t done = st_ring_write(r, src, n);
    if (done < n)
        atomic_fetch_add_explicit(&r->overrun_elems, n - done, memory_order_relaxed);
    return done;
}

size_t st_ring_pull(st_ring *r, void *dst, size_t n)
{
    size_t done = st_ring_read(r, dst, n);
    if (done < n) {
        memset((unsigned char *)dst + done * r->elem_size, 0, (n - done) * r->elem_size);
        atomic_fetch_add_explicit(&r->underrun_elems, n - done, memory_order_relaxed);
    }
    return done;
}

size_t st_ring_skip(st_ring *r, size_t n)
{
    uint64_t rd = atomic_load_explicit(&r->read_index, memory_order_relaxed);
    uint64_t w = atomic_load_explicit(&r->write_index, memory_order_acquire);
    size_t avail = (size_t)(w - rd);
    if (n > avail)
        n = avail;
    atomic_store_explicit(&r->read_index, rd + n, memory_order_release);
    return n;
}
