/*
 * pool.h - blocks of documents scored on several devices at once: one host
 * thread, queue and scorer per device.
 *
 * The caller reads blocks (stream.c) and submits them; each goes to the
 * next idle device, which scores it against the same query batch and hands
 * the scores (or each query's top k, selected on the device) to the caller's
 * function (or, for pairs, writes them where the caller said). Those calls are serialized (one at a
 * time, under a lock), in whatever order the devices finish: the consumers
 * (top-k heaps, a score matrix filled by columns) give the same result in
 * any order, so the output does not depend on the device count.
 */
#ifndef MS_POOL_H
#define MS_POOL_H

#include <stdint.h>

#include "cl_dev.h"
#include "emb.h"
#include "err.h"
#include "maxsim.h"

/* Called with the scores of one block: scores[i * ld + j] is query q0 + i
 * against document block->first_row + j (the signature of ms_block_fn). */
typedef int (*ms_pool_fn)(void *ctx, uint64_t q0, uint64_t nq, const float *scores, uint64_t ld,
                          const struct ms_emb *block, struct ms_err *err);

/* Called instead when the devices select each block's top k (the signature of
 * ms_topk_block_fn): top_s[i * k + r], top_i[i * k + r] (a row of block), r < min(k, rows). */
typedef int (*ms_pool_topk_fn)(void *ctx, uint64_t q0, uint64_t nq, uint32_t k, const float *top_s,
                               const uint32_t *top_i, const struct ms_emb *block,
                               struct ms_err *err);

struct ms_pool;

/* Create a scorer for `queries` (rows q0 .. q0 + n_rows - 1 of the query
 * input) on each of the n devices and start their threads. With topk_k > 0
 * and tfn, when every device can select that k (ms_scorer_topk_max), each
 * block's top topk_k of every query go to tfn instead of its scores to fn. */
int ms_pool_start(struct ms_pool **out, struct ms_cl *cls, int n, const struct ms_emb *queries,
                  uint64_t q0, const struct ms_scorer_opts *so, ms_pool_fn fn, uint32_t topk_k,
                  ms_pool_topk_fn tfn, void *ctx, struct ms_err *err);
/* Whether the pool's devices select the top k (tfn is called, not fn). */
int ms_pool_topk(const struct ms_pool *p);
/* Hand a block to the next idle device (waiting for one); the block is
 * copied, so the caller may reuse it at once. Returns the first error any
 * device met so far. */
int ms_pool_submit(struct ms_pool *p, const struct ms_emb *block, struct ms_err *err);
/* The same for pairs (rerank): out[i] = score(query pq[i] of the batch,
 * document pd[i] of block), i < n_pairs, written by the device that takes
 * the block (fn is not called); pq and pd are copied, out must stay valid
 * until ms_pool_finish. */
int ms_pool_submit_pairs(struct ms_pool *p, const struct ms_emb *block, const uint32_t *pq,
                         const uint32_t *pd, uint64_t n_pairs, float *out, struct ms_err *err);
/* Wait for every submitted block, stop the threads and free the pool.
 * Returns the first error of any device; *kernel_s (may be NULL) gets the
 * devices' kernel time added. NULL p is fine. */
int ms_pool_finish(struct ms_pool *p, double *kernel_s, struct ms_err *err);

#endif
