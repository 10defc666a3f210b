/*
 * par.h - a few work items run at once: the first on the calling thread, the
 * others on worker threads kept for the process (when another batch holds them:
 * on threads of their own), or on the calling thread when no thread can be
 * started (or its bookkeeping allocated). Callers make the result independent
 * of which, and of the order: every item writes only its own part and waits
 * for no other. What the readers, the writers and the index build split their
 * host work with.
 */
#ifndef MS_PAR_H
#define MS_PAR_H

#include <pthread.h>
#include <stddef.h>

/* fn(items + i * item_size) for every i < n, returning when all are done. */
void ms_par_run(void *(*fn)(void *), void *items, size_t item_size, size_t n);

/* One work item behind the caller's back: fn(arg) on a thread of its own from
 * ms_par_start, or on the calling thread in ms_par_wait when no thread can be
 * started. ms_par_wait returns when it is done; a task is waited for once. */
struct ms_par_task {
    void *(*fn)(void *);
    void *arg;
    pthread_t thread;
    int state; /* 0 idle, 1 on its thread, 2 to run in ms_par_wait */
};

void ms_par_start(struct ms_par_task *t, void *(*fn)(void *), void *arg);
void ms_par_wait(struct ms_par_task *t);

#endif
