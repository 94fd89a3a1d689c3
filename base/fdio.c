/*  base/fdio.c - whole reads and writes on a file descriptor.

    write(2) and read(2) may move fewer bytes than asked (a pipe, a signal);
    these loop until all n bytes moved, or fail. Not for the audio path.
    May touch: the descriptor it is given, nothing else.
*/
#include "base.h"

#include <errno.h>
#include <unistd.h>

bool st_write_all(int fd, const void *buf, size_t n)
{
    const unsigned char *p = buf;
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

bool st_read_all(int fd, void *buf, size_t n)
{
    unsigned char *p = buf;
    while (n) {
        ssize_t r = read(fd, p, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return false; /* an error, or the end before n bytes */
        p += r;
        n -= (size_t)r;
    }
    return true;
}
