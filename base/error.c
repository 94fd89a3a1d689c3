/*  base/error.c - error codes, the per-thread detailed message, logging.

    The detailed message is thread-local so that concurrent stages never see
    each other's errors (like errno, but with a sentence that names what was
    wrong and where).
*/
#include "base.h"

#include <stdio.h>
#include <string.h>

static _Thread_local char tl_errmsg[512];

const char *st_strerror(int code)
{
    switch (code) {
    case ST_OK: return "success";
    case ST_ERR_NOMEM: return "out of memory";
    case ST_ERR_INVALID: return "invalid argument";
    case ST_ERR_IO: return "input/output error";
    case ST_ERR_FORMAT: return "bad data format";
    case ST_ERR_NOT_FOUND: return "not found";
    case ST_ERR_DEVICE: return "audio device error";
    case ST_ERR_UNSUPPORTED: return "not supported";
    case ST_ERR_STATE: return "wrong state";
    case ST_ERR_TIMEOUT: return "timed out";
    case ST_ERR_END: return "end of stream";
    case ST_ERR_INTERNAL: return "internal error";
    default: return "unknown error";
    }
}

const char *st_errmsg(void)
{
    return tl_errmsg;
}

/*  Formats into a buffer of its own first: a caller that wraps the message
    it was given (st_error(rc, "file '%s': %s", path, st_errmsg())) passes
    tl_errmsg itself as an argument, which vsnprintf must not write over
    while it reads it (it did: the reason was lost under the prefix). */
int st_error(int code, const char *fmt, ...)
{
    char msg[sizeof tl_errmsg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    memcpy(tl_errmsg, msg, sizeof msg);
    return code;
}

void st_error_clear(void)
{
    tl_errmsg[0] = '\0';
}

static st_log_fn s_log_fn;
static void *s_log_user;

void st_log_set(st_log_fn fn, void *user_data)
{
    s_log_fn = fn;
    s_log_user = user_data;
}

void st_log(st_log_level level, const char *fmt, ...)
{
    if (!s_log_fn)
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    s_log_fn(level, msg, s_log_user);
}
