/*  tests/alloc_count.c - counts heap allocations made on the audio path.

    Interposes malloc, calloc, realloc and aligned allocations over glibc's
    (__libc_*), counting every call and, separately, those made while the
    calling thread is inside an st_rt_enter()/st_rt_leave() section. Under
    AddressSanitizer the allocator is ASan's, so the same counting runs from
    its malloc hook instead. Under valgrind neither is reached, and
    st_test_alloc_live() says so (the tests then skip, visibly).

    Fault injection (tests/test_faults.c): st_test_alloc_fail_at(n) makes the
    n-th allocation of the calling thread from then on return NULL, and
    counts the bytes that thread allocates and frees until
    st_test_alloc_disarm(): a constructor that fails cleanly leaves the
    count at zero. Only where the interposer works (not under ASan).
*/
#include "testutil.h"

#include "base/base.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>

#if defined(__SANITIZE_ADDRESS__)
#define ST_NO_INTERPOSE 1
#endif
#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ST_NO_INTERPOSE 1
#endif
#endif

static atomic_ulong rt_allocs;
static atomic_ulong all_allocs;

unsigned long st_test_rt_allocs(void)
{
    return atomic_load(&rt_allocs);
}

unsigned long st_test_all_allocs(void)
{
    return atomic_load(&all_allocs);
}

/* Fault injection: this thread only, so that other threads' allocations
   (ZeroMQ's, a pool's) neither fail nor count. */
static _Thread_local bool fi_armed;
static _Thread_local unsigned long fi_fail_at, fi_seen;
static _Thread_local long long fi_net;

void st_test_alloc_fail_at(unsigned long n)
{
    fi_fail_at = n;
    fi_seen = 0;
    fi_net = 0;
    fi_armed = true;
}

unsigned long st_test_alloc_disarm(long long *net_bytes)
{
    fi_armed = false;
    if (net_bytes)
        *net_bytes = fi_net;
    return fi_seen;
}

static inline void count(void)
{
    atomic_fetch_add_explicit(&all_allocs, 1, memory_order_relaxed);
    if (st_rt_active())
        atomic_fetch_add_explicit(&rt_allocs, 1, memory_order_relaxed);
}

#ifdef ST_NO_INTERPOSE
/* From <sanitizer/allocator_interface.h>, which clang ships and gcc does not;
   both runtimes provide the function. */
void __sanitizer_install_malloc_and_free_hooks(void (*malloc_hook)(const volatile void *, size_t),
                                               void (*free_hook)(const volatile void *));

static void on_malloc(const volatile void *p, size_t n)
{
    (void)p;
    (void)n;
    count();
}

static void on_free(const volatile void *p)
{
    (void)p;
}

__attribute__((constructor)) static void install_hooks(void)
{
    __sanitizer_install_malloc_and_free_hooks(on_malloc, on_free);
}
#else
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void __libc_free(void *);
size_t malloc_usable_size(void *);

static inline bool fi_fail(void)
{
    return fi_armed && ++fi_seen == fi_fail_at;
}

static inline void *fi_got(void *p)
{
    if (fi_armed && p)
        fi_net += (long long)malloc_usable_size(p);
    return p;
}

void *malloc(size_t n);
void *calloc(size_t n, size_t m);
void *realloc(void *p, size_t n);
void *memalign(size_t a, size_t n);
int posix_memalign(void **p, size_t a, size_t n);
void *aligned_alloc(size_t a, size_t n);
void free(void *p);

void *malloc(size_t n)
{
    count();
    return fi_fail() ? NULL : fi_got(__libc_malloc(n));
}

void *calloc(size_t n, size_t m)
{
    count();
    return fi_fail() ? NULL : fi_got(__libc_calloc(n, m));
}

void *realloc(void *p, size_t n)
{
    count();
    if (fi_fail())
        return NULL;
    long long before = fi_armed && p ? (long long)malloc_usable_size(p) : 0;
    void *q = __libc_realloc(p, n);
    if (fi_armed && (q || !n))
        fi_net -= before;
    return fi_got(q);
}

void *memalign(size_t a, size_t n)
{
    count();
    return fi_fail() ? NULL : fi_got(__libc_memalign(a, n));
}

void *aligned_alloc(size_t a, size_t n)
{
    count();
    return fi_fail() ? NULL : fi_got(__libc_memalign(a, n));
}

int posix_memalign(void **p, size_t a, size_t n)
{
    count();
    *p = fi_fail() ? NULL : fi_got(__libc_memalign(a, n));
    return *p ? 0 : 12; /* ENOMEM */
}

void free(void *p)
{
    if (fi_armed && p)
        fi_net -= (long long)malloc_usable_size(p);
    __libc_free(p);
}
#endif

bool st_test_alloc_faults_live(void)
{
#ifdef ST_NO_INTERPOSE
    return false;
#else
    st_test_alloc_fail_at(1);
    void *volatile p = malloc(16);
    st_test_alloc_disarm(NULL);
    free(p);
    return p == NULL;
#endif
}

bool st_test_alloc_live(void)
{
    unsigned long before = st_test_all_allocs();
    void *volatile p = malloc(16);
    free(p);
    return st_test_all_allocs() > before;
}
