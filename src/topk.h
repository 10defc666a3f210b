/*
 * topk.h - the exact top-k of every query, merged block by block.
 *
 * The order is total and does not depend on how the corpus was cut into
 * blocks: higher score first, equal scores by lower row number first (NaN,
 * which finite inputs should never produce, ranks below everything). So the
 * same inputs give the same result whatever the chunk size.
 */
#ifndef MS_TOPK_H
#define MS_TOPK_H

#include <stdint.h>

#include "err.h"

struct ms_topk {
    uint64_t n_queries;
    uint64_t k;
    uint64_t *count; /* [n_queries] entries held for each query (<= k) */
    float *score;    /* [n_queries * k]: a min-heap per query until finished */
    uint64_t *row;   /* [n_queries * k] */
};

int ms_topk_init(struct ms_topk *t, uint64_t n_queries, uint64_t k, struct ms_err *err);
void ms_topk_release(struct ms_topk *t);
/* Offer scores[q * ld + j] for document row first_row + j, j < n_docs, for
 * queries q0 .. q0 + nq - 1. */
void ms_topk_push(struct ms_topk *t, uint64_t q0, uint64_t nq, const float *scores, uint64_t ld,
                  uint64_t n_docs, uint64_t first_row);
/* Offer one (score, row) pair to query q. */
void ms_topk_push_one(struct ms_topk *t, uint64_t q, float score, uint64_t row);
/* 1 if (score sa, row ra) ranks strictly before (sb, rb) in this order. */
int ms_topk_better(float sa, uint64_t ra, float sb, uint64_t rb);
/* Sort every query's entries best first; afterwards no more pushes. */
void ms_topk_finish(struct ms_topk *t);

#endif
