/*
 * par.h - a few work items run at once: the first on the calling thread, each
 * other on a thread of its own, or on the calling thread when that thread
 * cannot be started (or its bookkeeping allocated). Callers make the result
 * independent of which: every item writes only its own part. What the
 * readers, the writers and the index build split their host work with.
 */
#ifndef MS_PAR_H
#define MS_PAR_H

#include <stddef.h>

/* fn(items + i * item_size) for every i < n, returning when all are done. */
void ms_par_run(void *(*fn)(void *), void *items, size_t item_size, size_t n);

#endif
