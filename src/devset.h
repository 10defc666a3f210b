/*
 * devset.h - several OpenCL devices at once: which ones a --device spec
 * names, and opening them together.
 *
 * Specs beyond cl_dev.h's single device: "all" (every device of the type
 * "auto" would pick: every GPU, else every CPU device) and lists of indices
 * as `maxsim devices` prints them ("0,2"). A device listed twice is opened
 * twice: two contexts, queues and host threads on one device, so that one
 * block's transfer can overlap another's kernel (and so that the several-
 * device path can be checked on a machine with one GPU). The devices of one
 * set must be one model on one driver: the same kernel then gives the same bits on each,
 * so a result does not depend on which device scored which document.
 *
 * Under mpirun (cmd_mpi.c) a rank passes its node-local rank as `nth`: the
 * specs "auto", "gpu" and "cpu" then pick the nth device of that type
 * (modulo their count), so the ranks of a node spread over its GPUs.
 */
#ifndef MS_DEVSET_H
#define MS_DEVSET_H

#include <pthread.h>

#include "cl_dev.h"
#include "err.h"

#define MS_MAX_DEVICES 64

struct ms_devset {
    int n;
    struct ms_cl *cl; /* [n], owned */
};

/* 1 if spec names several devices at once ("all", or a list with a comma). */
int ms_devspec_is_multi(const char *spec);

/* Indices (into list) of the devices spec names, at most MS_MAX_DEVICES:
 * *n_idx >= 1, or an error (MS_ERR_INPUT for a malformed spec, a device
 * or devices of different models). nth < 0: no rank. */
int ms_devset_pick(const struct ms_cl_devinfo *list, int n, const char *spec, int nth, int *idx,
                   int *n_idx, struct ms_err *err);

/* Open every device of spec, each with its own context and queue. */
int ms_devset_open(struct ms_devset *s, const char *spec, int nth, struct ms_err *err);
void ms_devset_close(struct ms_devset *s);

/*
 * Opening a set on a thread of its own, so that the platform's start (a quarter of a second,
 * mostly system time, in NVIDIA's OpenCL; tens of milliseconds in PoCL's) overlaps the reading a
 * command does before its first use of the device: ms_devset_start, read, ms_devset_finish.
 * Nothing else may touch OpenCL in between. When no thread can be created, finish opens the set
 * itself: the same result, only later.
 */
struct ms_devset_start {
    const char *spec;
    int nth;    /* as ms_devset_open's */
    int single; /* ms_cl_open(spec) instead: the commands that run on one device */
    int started;
    pthread_t thread;
    struct ms_devset set;
    struct ms_err err;
    int rc;
    double begin_s, end_s; /* ms_now() when the opening began and ended */
};

/* Begin opening the devices of spec (single: the one device of spec, as ms_cl_open). */
void ms_devset_start(struct ms_devset_start *st, const char *spec, int nth, int single);
/* Wait for the opening: MS_OK with *out the set (owned by the caller), else the error. */
int ms_devset_finish(struct ms_devset_start *st, struct ms_devset *out, struct ms_err *err);
/* Wait for the opening and close what it opened (a command that failed before using it). */
void ms_devset_cancel(struct ms_devset_start *st);

#endif
