/*  fuzz/fuzz.h - what the libFuzzer targets in fuzz/ share: silencing the
    library's log, and handing an input to a decoder that only takes a path
    (an anonymous in-memory file, so fuzzing writes nothing to disk).

    Header-only: each fuzz/fuzz_NAME.c is one binary (Makefile, `make fuzz`).
    Touches nothing but the process's own descriptors.
*/
#ifndef ST_FUZZ_H
#define ST_FUZZ_H

#include "base/base.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void st_fuzz_log_drop(st_log_level level, const char *msg, void *user_data)
{
    (void)level, (void)msg, (void)user_data;
}

/*  Once per process: the library's log goes nowhere (a malformed input is
    the normal case here, and its warnings would drown libFuzzer's output). */
static inline void st_fuzz_quiet(void)
{
    static int done;
    if (!done) {
        st_log_set(st_fuzz_log_drop, NULL);
        done = 1;
    }
}

/*  Writes the input to a memfd and puts "/proc/self/fd/N" in path (cap >= 32).
    Returns the descriptor (close it when done) or -1. */
static inline int st_fuzz_memfile(const uint8_t *data, size_t size, char *path, size_t cap)
{
    int fd = memfd_create("st-fuzz", MFD_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t done = 0;
    while (done < size) {
        ssize_t w = write(fd, data + done, size - done);
        if (w <= 0) {
            close(fd);
            return -1;
        }
        done += (size_t)w;
    }
    snprintf(path, cap, "/proc/self/fd/%d", fd);
    return fd;
}

/*  Splits an input at its first NUL: returns the part before it as a new
    NUL-terminated string (free it; aborts when out of memory) and sets
    *head_len to its length, *rest / *rest_len to what follows the NUL
    ("" and 0 when there is none). */
static inline char *st_fuzz_split(const uint8_t *data, size_t size, size_t *head_len,
                                  const char **rest, size_t *rest_len)
{
    const uint8_t *nul = memchr(data, 0, size);
    size_t n = nul ? (size_t)(nul - data) : size;
    char *head = malloc(n + 1);
    if (!head)
        abort();
    memcpy(head, data, n);
    head[n] = 0;
    *head_len = n;
    *rest = nul ? (const char *)nul + 1 : "";
    *rest_len = nul ? size - n - 1 : 0;
    return head;
}

#endif
