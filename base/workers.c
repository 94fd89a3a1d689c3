/*  base/workers.c - a small pool of worker threads for data-parallel jobs:
    a function over items 0..n-1, handed out one at a time through an atomic
    counter, the calling thread working too.

    Made for the trainers (snn/train.c, snn/lm_train.c): a training step is a
    few such jobs (per-sequence gradients, a reduction, the optimizer over
    slices of the parameters). Workers are made once and sleep on a condition
    variable between jobs; a job allocates nothing. Workers are numbered
    1..n-1 and the caller 0, so each can own a workspace. The engine's
    per-stream pool (snn/pool.c) is separate: it adds real-time sections and
    batches of streams.

    What it may touch: pthreads and libc only (base/ is the lowest layer).
*/
#include "base.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

struct st_workers {
    pthread_t *threads;
    unsigned n_workers;     /* threads besides the caller */
    unsigned started;
    pthread_mutex_t mu;
    pthread_cond_t work_cv, done_cv;
    uint64_t generation;    /* bumped per job */
    unsigned busy;          /* workers still in the current job */
    bool quit;
    st_job_fn fn;
    void *ctx;
    size_t n_items;
    atomic_size_t next;
};

typedef struct {
    st_workers *w;
    unsigned id;
} worker_arg;

static void drain(st_workers *w, unsigned id)
{
    size_t k;
    while ((k = atomic_fetch_add_explicit(&w->next, 1, memory_order_relaxed)) < w->n_items)
        w->fn(w->ctx, k, id);
}

static void *worker_main(void *arg)
{
    worker_arg *wa = arg;
    st_workers *w = wa->w;
    const unsigned id = wa->id;
    free(wa);
    uint64_t seen = 0;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->quit && w->generation == seen)
            pthread_cond_wait(&w->work_cv, &w->mu);
        if (w->quit)
            break;
        seen = w->generation;
        pthread_mutex_unlock(&w->mu);
        drain(w, id);
        pthread_mutex_lock(&w->mu);
        if (--w->busy == 0)
            pthread_cond_signal(&w->done_cv);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

st_workers *st_workers_new(unsigned n_threads, int *err)
{
    st_workers *w = calloc(1, sizeof *w);
    if (!w) {
        int rc = st_error(ST_ERR_NOMEM, "out of memory for a worker pool");
        if (err)
            *err = rc;
        return NULL;
    }
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->work_cv, NULL);
    pthread_cond_init(&w->done_cv, NULL);
    atomic_init(&w->next, 0);
    w->n_workers = n_threads > 1 ? n_threads - 1 : 0;
    int rc = ST_OK;
    if (w->n_workers && !(w->threads = calloc(w->n_workers, sizeof *w->threads)))
        rc = st_error(ST_ERR_NOMEM, "out of memory for %u worker threads", w->n_workers);
    for (unsigned t = 0; !rc && t < w->n_workers; t++) {
        worker_arg *wa = malloc(sizeof *wa);
        if (wa)
            *wa = (worker_arg){w, t + 1};
        if (!wa || pthread_create(&w->threads[t], NULL, worker_main, wa) != 0) {
            free(wa);
            rc = st_error(ST_ERR_NOMEM, "cannot start worker thread %u of %u", t + 1,
                          w->n_workers);
            break;
        }
        w->started++;
    }
    if (rc) {
        st_workers_destroy(&w);
        if (err)
            *err = rc;
        return NULL;
    }
    if (err)
        *err = ST_OK;
    return w;
}

void st_workers_destroy(st_workers **w_p)
{
    if (!w_p || !*w_p)
        return;
    st_workers *w = *w_p;
    pthread_mutex_lock(&w->mu);
    w->quit = true;
    pthread_cond_broadcast(&w->work_cv);
    pthread_mutex_unlock(&w->mu);
    for (unsigned t = 0; t < w->started; t++)
        pthread_join(w->threads[t], NULL);
    pthread_cond_destroy(&w->work_cv);
    pthread_cond_destroy(&w->done_cv);
    pthread_mutex_destroy(&w->mu);
    free(w->threads);
    free(w);
    *w_p = NULL;
}

unsigned st_workers_count(const st_workers *w)
{
    return w ? w->n_workers + 1 : 1;
}

void st_workers_run(st_workers *w, st_job_fn fn, void *ctx, size_t n_items)
{
    if (!w || w->n_workers == 0 || n_items < 2) {
        for (size_t k = 0; k < n_items; k++)
            fn(ctx, k, 0);
        return;
    }
    pthread_mutex_lock(&w->mu);
    w->fn = fn;
    w->ctx = ctx;
    w->n_items = n_items;
    atomic_store_explicit(&w->next, 0, memory_order_relaxed);
    w->busy = w->n_workers;
    w->generation++;
    pthread_cond_broadcast(&w->work_cv);
    pthread_mutex_unlock(&w->mu);
    drain(w, 0);
    pthread_mutex_lock(&w->mu);
    while (w->busy)
        pthread_cond_wait(&w->done_cv, &w->mu);
    pthread_mutex_unlock(&w->mu);
}
