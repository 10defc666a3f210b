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
