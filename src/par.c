/*
 * par.c - a few work items run at once (par.h).
 *
 * A batch's items go to worker threads kept for the life of the process when no other batch
 * holds them; a batch that finds them busy (another thread's, or one started from inside an
 * item) starts threads of its own, as every batch once did. The readers run one batch a block:
 * starting 15 threads for each 48 MB block of a 20 GB corpus (420 blocks) cost part of each
 * block's time on the H200.
 */
#include "par.h"

#include <pthread.h>
#include <stdlib.h>

#define POOL_MAX 256

static struct {
    pthread_mutex_t owner; /* held by the thread whose batch the workers run */
    pthread_mutex_t mu;
    pthread_cond_t work, done;
    size_t workers; /* started so far */
    void *(*fn)(void *);
    char *items;
    size_t item_size, n, next, left; /* items [next, n) unclaimed; left: not yet finished */
} pool = { .owner = PTHREAD_MUTEX_INITIALIZER,
           .mu = PTHREAD_MUTEX_INITIALIZER,
           .work = PTHREAD_COND_INITIALIZER,
           .done = PTHREAD_COND_INITIALIZER };

/* Claim items of the batch and run them; with the lock held on entry and on return. */
static void claim_and_run(void)
{
    while (pool.next < pool.n) {
        void *(*const fn)(void *) = pool.fn;
        void *const item = pool.items + pool.next++ * pool.item_size;
        pthread_mutex_unlock(&pool.mu);
        fn(item);
        pthread_mutex_lock(&pool.mu);
        if (--pool.left == 0)
            pthread_cond_signal(&pool.done);
    }
}

static void *worker(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&pool.mu);
    for (;;) {
        while (pool.next >= pool.n)
            pthread_cond_wait(&pool.work, &pool.mu);
        claim_and_run();
    }
    return NULL;
}

/* Items 1 .. n - 1 on the workers (and on this thread once item 0 is done); 0 when they are
 * taken. */
static int pool_run(void *(*fn)(void *), char *items, size_t item_size, size_t n)
{
    pthread_attr_t attr;
    if (n > POOL_MAX || pthread_mutex_trylock(&pool.owner) != 0)
        return -1;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    for (pthread_t th; pool.workers < n - 1 && pthread_create(&th, &attr, worker, NULL) == 0;)
        pool.workers++;
    pthread_attr_destroy(&attr);
    if (pool.workers == 0) { /* no thread at all: the old way may still start some */
        pthread_mutex_unlock(&pool.owner);
        return -1;
    }
    pthread_mutex_lock(&pool.mu);
    pool.fn = fn;
    pool.items = items;
    pool.item_size = item_size;
    pool.left = n - 1;
    pool.next = 1;
    pool.n = n;
    pthread_cond_broadcast(&pool.work);
    pthread_mutex_unlock(&pool.mu);
    fn(items);
    pthread_mutex_lock(&pool.mu);
    claim_and_run(); /* with fewer workers than items, or while they wake */
    while (pool.left > 0)
        pthread_cond_wait(&pool.done, &pool.mu);
    pool.n = pool.next = 0;
    pthread_mutex_unlock(&pool.mu);
    pthread_mutex_unlock(&pool.owner);
    return 0;
}

void ms_par_run(void *(*fn)(void *), void *items, size_t item_size, size_t n)
{
    char *at = items;
    if (n > 1 && pool_run(fn, items, item_size, n) == 0)
        return;
    pthread_t *th = n > 1 ? malloc((n - 1) * sizeof *th) : NULL;
    unsigned char *started = n > 1 ? calloc(n - 1, 1) : NULL;

    if (n > 1 && (!th || !started)) { /* no room to track threads: one after another here */
        free(th);
        free(started);
        for (size_t i = 0; i < n; i++)
            fn(at + i * item_size);
        return;
    }
    for (size_t i = 1; i < n; i++)
        started[i - 1] = pthread_create(&th[i - 1], NULL, fn, at + i * item_size) == 0;
    if (n)
        fn(at);
    for (size_t i = 1; i < n; i++) {
        if (started[i - 1])
            pthread_join(th[i - 1], NULL);
        else
            fn(at + i * item_size);
    }
    free(th);
    free(started);
}

void ms_par_start(struct ms_par_task *t, void *(*fn)(void *), void *arg)
{
    t->fn = fn;
    t->arg = arg;
    t->state = pthread_create(&t->thread, NULL, fn, arg) == 0 ? 1 : 2;
}

void ms_par_wait(struct ms_par_task *t)
{
    if (t->state == 1)
        pthread_join(t->thread, NULL);
    else if (t->state == 2)
        t->fn(t->arg);
    t->state = 0;
}
