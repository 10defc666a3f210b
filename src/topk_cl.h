/*
 * topk_cl.h - the exact top k of every query of a block, selected on the device (host side of
 * kernels/topk.cl), so that `maxsim search` reads back k scores per query instead of the block's
 * whole [queries x documents] score matrix.
 *
 * The order is topk.h's (score descending, equal scores by lower document first, -0 equal to
 * +0, NaN last), so the heaps fed from these lists hold the same entries, in the same order, as
 * heaps fed every score. A scorer computes a block in pieces (query groups, and sub-blocks when
 * the block is larger than its buffers); struct ms_topk_sink gathers the pieces' selections into
 * one sorted list of min(k, documents) entries per query.
 */
#ifndef MS_TOPK_CL_H
#define MS_TOPK_CL_H

#include <stdint.h>

#include "cl_dev.h"
#include "err.h"

/* The largest k the device selects; larger k keep the read-back of every score. */
#define MS_TOPK_CL_MAX_K 1024u

struct ms_topk_cl;

/* Whether the device can run the selection kernel (work-group size, local memory). */
int ms_topk_cl_usable(const struct ms_cl *cl);
/* Build (or load from the cache) the selection program. */
int ms_topk_cl_create(struct ms_topk_cl **out, struct ms_cl *cl, struct ms_err *err);
void ms_topk_cl_free(struct ms_topk_cl *t);
/* Rows q < nq of `scores` (row q at float q * pitch, columns 0 .. n-1), 1 <= k <= MAX_K: the best
 * min(k, n) of each row, best first, into out_s[q * k + r] (the row's own values) and
 * out_i[q * k + r] (columns). Adds the kernel's event time to *kernel_s. */
int ms_topk_cl_select(struct ms_topk_cl *t, cl_mem scores, uint64_t pitch, uint64_t nq, uint64_t n,
                      uint32_t k, float *out_s, uint32_t *out_i, double *kernel_s,
                      struct ms_err *err);

/* Where a scorer's pieces go: query i's sorted list is score[i * k ..], idx[i * k ..] (block
 * document indices), count[i] entries (0 before the first piece). */
struct ms_topk_sink {
    struct ms_topk_cl *dev;
    uint32_t k;
    float *score;
    uint32_t *idx;
    uint32_t *count;
};

/* Select the top k of the piece in `scores` ([nq][nd], pitch nd: queries q0 .. q0+nq-1 against
 * documents j0 .. j0+nd-1 of the block) and merge them into the sink's lists. */
int ms_topk_sink_put(struct ms_topk_sink *sk, cl_mem scores, uint64_t q0, uint64_t nq, uint64_t j0,
                     uint64_t nd, double *kernel_s, struct ms_err *err);

#endif
