/*
 * cmd_mpi.h - running a command under mpirun (a build with `make MPI=1`).
 *
 * Started by mpirun with N > 1 ranks, `maxsim search` gives rank r the
 * contiguous shard r of N of the corpus and the device of its node picked by
 * its node-local rank; the ranks' top-k are gathered to rank 0, which merges
 * them exactly and writes the one output. Ranks other than 0 write nothing:
 * their standard output goes to /dev/null and their standard error to a
 * scratch file, shown only when that rank met the job's first error (or
 * with -v). Every rank agrees on success before rank 0 writes, so an error
 * on any rank ends the job with one message and no output.
 *
 * Without MPI in the build, or outside mpirun, these are no-ops and the
 * command runs as one process.
 */
#ifndef MS_CMD_MPI_H
#define MS_CMD_MPI_H

#include <stdint.h>

#include "err.h"
#include "topk.h"

/* Run command `name` (its function and arguments) as this rank of the job. */
int ms_mpi_run(const char *name, int (*run)(int, char **), int argc, char **argv);

/* This process's rank and the job's size: 0 and 1 outside mpirun. */
int ms_mpi_rank(void);
int ms_mpi_size(void);
/* The rank among the ranks of this node, or -1 outside mpirun. */
int ms_mpi_local_rank(void);

/*
 * The ranks agree on the job's status at two points, collectively: the
 * checkpoint before the work (so that an error found early on one rank,
 * such as an unwritable output on rank 0, does not wait for the others to
 * scan their shards) and the gather after it. A rank that fails anywhere
 * returns from its command and joins the next of these points from
 * ms_mpi_run; the first failure ends the job on every rank. A failed point
 * returns the job's status with err->msg empty (the failing rank has
 * printed its message) or, for a device mismatch, set on rank 0.
 */

/* Collective, before scoring: every rank has its inputs, output and device
 * (`model`: name and driver; ranks on different models could round
 * differently, which is an MS_ERR_INPUT error). */
int ms_mpi_checkpoint(const char *model, struct ms_err *err);

/* Collective, once the shard is scored: rank 0's *t becomes the exact
 * top-k (k at most `k`, over n_docs documents) of all shards, and MS_OK is
 * returned on every rank: only rank 0 writes. */
int ms_mpi_gather_topk(struct ms_topk *t, uint64_t k, uint64_t n_docs, struct ms_err *err);

#endif
