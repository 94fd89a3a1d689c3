/*  snn/pool.c - many independent streams stepped at once on a small pool of
    worker threads.

    Tuned for tens to thousands of concurrent streams sharing one network,
    each step a few microseconds to a millisecond: the workers are made once
    and sleep on a condition variable between batches; a batch hands out
    streams one at a time through an atomic counter (streams differ in
    spike counts, so dynamic hand-out balances better than fixed slices), and
    the calling thread works too. A batch allocates nothing. When the caller
    is inside an st_rt_enter() section the workers enter one for the batch,
    so the allocation guard covers them as well.
*/
#include "snn.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#define MAX_THREADS 256

struct st_snn_pool {
    pthread_t *threads;
    unsigned n_threads;     /* workers, not counting the caller */
    unsigned started;
    pthread_mutex_t mu;
    pthread_cond_t work_cv, done_cv;
    pthread_mutex_t batch_mu; /* one batch at a time */
    uint64_t generation;    /* bumped per batch */
    unsigned busy;          /* workers still in the current batch */
    bool quit;
    /* the current batch */
    const st_snn_net *net;
    st_snn_state *const *states;
    const float *const *inputs;
    size_t n;
    bool rt;
    atomic_size_t next;
};

static void run_batch(st_snn_pool *self)
{
    size_t k;
    while ((k = atomic_fetch_add_explicit(&self->next, 1, memory_order_relaxed)) < self->n)
        st_snn_step(self->net, self->states[k], self->inputs[k]);
}

static void *worker(void *arg)
{
    st_snn_pool *self = arg;
    uint64_t seen = 0;
    pthread_mutex_lock(&self->mu);
    for (;;) {
        while (!self->quit && self->generation == seen)
            pthread_cond_wait(&self->work_cv, &self->mu);
        if (self->quit)
            break;
        seen = self->generation;
        const bool rt = self->rt;
        pthread_mutex_unlock(&self->mu);
        if (rt)
            st_rt_enter();
        run_batch(self);
        if (rt)
            st_rt_leave();
        pthread_mutex_lock(&self->mu);
        if (--self->busy == 0)
            pthread_cond_signal(&self->done_cv);
    }
    pthread_mutex_unlock(&self->mu);
    return NULL;
}

st_snn_pool *st_snn_pool_new(unsigned n_threads, int *err)
{
    int rc = ST_OK;
    if (n_threads == 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        n_threads = cores > 0 ? (unsigned)cores : 1;
    }
    if (n_threads > MAX_THREADS) {
        rc = st_error(ST_ERR_INVALID, "a pool of %u threads; at most %d", n_threads, MAX_THREADS);
        if (err)
            *err = rc;
        return NULL;
    }
    st_snn_pool *self = calloc(1, sizeof *self);
    if (!self) {
        rc = st_error(ST_ERR_NOMEM, "out of memory for a thread pool");
        if (err)
            *err = rc;
        return NULL;
    }
    pthread_mutex_init(&self->mu, NULL);
    pthread_mutex_init(&self->batch_mu, NULL);
    pthread_cond_init(&self->work_cv, NULL);
    pthread_cond_init(&self->done_cv, NULL);
    atomic_init(&self->next, 0);
    /* The caller works too: n_threads - 1 workers. */
    self->n_threads = n_threads - 1;
    if (self->n_threads) {
        self->threads = calloc(self->n_threads, sizeof *self->threads);
        if (!self->threads) {
            rc = st_error(ST_ERR_NOMEM, "out of memory for a thread pool");
            goto fail;
        }
    }
    for (unsigned t = 0; t < self->n_threads; t++) {
        if (pthread_create(&self->threads[t], NULL, worker, self) != 0) {
            rc = st_error(ST_ERR_NOMEM, "cannot start worker thread %u of %u", t + 1,
                          self->n_threads);
            goto fail;
        }
        self->started++;
    }
    if (err)
        *err = ST_OK;
    return self;
fail:
    st_snn_pool_destroy(&self);
    if (err)
        *err = rc;
    return NULL;
}

void st_snn_pool_destroy(st_snn_pool **self_p)
{
    if (!self_p || !*self_p)
        return;
    st_snn_pool *self = *self_p;
    pthread_mutex_lock(&self->mu);
    self->quit = true;
    pthread_cond_broadcast(&self->work_cv);
    pthread_mutex_unlock(&self->mu);
    for (unsigned t = 0; t < self->started; t++)
        pthread_join(self->threads[t], NULL);
    pthread_cond_destroy(&self->work_cv);
    pthread_cond_destroy(&self->done_cv);
    pthread_mutex_destroy(&self->mu);
    pthread_mutex_destroy(&self->batch_mu);
    free(self->threads);
    free(self);
    *self_p = NULL;
}

unsigned st_snn_pool_threads(const st_snn_pool *self)
{
    return self->n_threads + 1;
}

int st_snn_step_batch(const st_snn_net *net, st_snn_state *const *states,
                      const float *const *inputs, size_t n, st_snn_pool *pool)
{
    if (!pool || pool->n_threads == 0 || n < 2) {
        for (size_t k = 0; k < n; k++)
            st_snn_step(net, states[k], inputs[k]);
        return ST_OK;
    }
    pthread_mutex_lock(&pool->batch_mu);
    pthread_mutex_lock(&pool->mu);
    pool->net = net;
    pool->states = states;
    pool->inputs = inputs;
    pool->n = n;
    pool->rt = st_rt_active();
    atomic_store_explicit(&pool->next, 0, memory_order_relaxed);
    pool->busy = pool->n_threads;
    pool->generation++;
    pthread_cond_broadcast(&pool->work_cv);
    pthread_mutex_unlock(&pool->mu);
    run_batch(pool);
    pthread_mutex_lock(&pool->mu);
    while (pool->busy)
        pthread_cond_wait(&pool->done_cv, &pool->mu);
    pthread_mutex_unlock(&pool->mu);
    pthread_mutex_unlock(&pool->batch_mu);
    return ST_OK;
}
