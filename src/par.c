/*
 * par.c - a few work items run at once (par.h).
 */
#include "par.h"

#include <pthread.h>
#include <stdlib.h>

void ms_par_run(void *(*fn)(void *), void *items, size_t item_size, size_t n)
{
    char *at = items;
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
