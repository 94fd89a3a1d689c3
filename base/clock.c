/*  base/clock.c - the monotonic clock and the real-time guard.

    st_rt_* is a thread-local depth counter, so that nested sections work and
    the audio callback pays one increment and one decrement.
*/
#include "base.h"

#include <errno.h>
#include <time.h>

static _Thread_local int tl_rt_depth;

void st_rt_enter(void)
{
    tl_rt_depth++;
}

void st_rt_leave(void)
{
    tl_rt_depth--;
}

bool st_rt_active(void)
{
    return tl_rt_depth > 0;
}

double st_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void st_sleep_until_s(double deadline_s)
{
    struct timespec ts;
    ts.tv_sec = (time_t)deadline_s;
    ts.tv_nsec = (long)((deadline_s - (double)ts.tv_sec) * 1e9);
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}
