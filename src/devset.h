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

#endif
