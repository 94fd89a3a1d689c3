/*  tests/alloc_count.c - counts heap allocations made on the audio path.

    Interposes malloc, calloc, realloc and aligned allocations over glibc's
    (__libc_*), counting every call and, separately, those made while the
    calling thread is inside an st_rt_enter()/st_rt_leave() section. Under
    AddressSanitizer the allocator is ASan's, so the same counting runs from
    its malloc hook instead. Under valgrind neither is reached, and
    st_test_alloc_live() says so (the tests then skip, visibly).
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

void *malloc(size_t n);
void *calloc(size_t n, size_t m);
void *realloc(void *p, size_t n);
void *memalign(size_t a, size_t n);
int posix_memalign(void **p, size_t a, size_t n);
void *aligned_alloc(size_t a, size_t n);

void *malloc(size_t n)
{
    count();
    return __libc_malloc(n);
}

void *calloc(size_t n, size_t m)
{
    count();
    return __libc_calloc(n, m);
}

void *realloc(void *p, size_t n)
{
    count();
    return __libc_realloc(p, n);
}

void *memalign(size_t a, size_t n)
{
    count();
    return __libc_memalign(a, n);
}

void *aligned_alloc(size_t a, size_t n)
{
    count();
    return __libc_memalign(a, n);
}

int posix_memalign(void **p, size_t a, size_t n)
{
    count();
    *p = __libc_memalign(a, n);
    return *p ? 0 : 12; /* ENOMEM */
}
#endif

bool st_test_alloc_live(void)
{
    unsigned long before = st_test_all_allocs();
    void *volatile p = malloc(16);
    free(p);
    return st_test_all_allocs() > before;
}
