/*
 * plaid_cl.h - PLAID search and rerank on an OpenCL device (host side of
 * kernels/plaid.cl).
 *
 * A struct ms_plaid_dev holds what every query needs on the device: the
 * centroids (row-major for decompression, transposed for centroid scores),
 * the bucket-weight decode table and, for search, every code of the index
 * and the document offsets (4 + 8/doclen bytes a token). Residuals stay on
 * disk; the rows of the documents a batch reranks are gathered from the
 * memory-mapped files and uploaded with it.
 *
 * Search, per batch of queries (fast-plaid's pipeline, research/plaid.md 3.3),
 * all on the device (kernels/plaid.cl):
 *   1. S = centroids x query tokens (tensor cores on NVIDIA, float16 inputs);
 *   2. the top `nprobe` centroids of every query token (ties: lower centroid
 *      id); per query, each distinct probed centroid (optionally only those
 *      whose best score over the query's tokens reaches the threshold:
 *      NextPlaid) ORs its IVF list into the query's document bitmap; the
 *      bitmaps become (query, document) pairs in ascending document order;
 *   3. the centroid-interaction score of every candidate;
 *   4. per query the best `min(ncandidates, nrerank)` by that score (ties:
 *      lower document id), by radix select;
 *   5. exact scores from decompressed residuals; per query the top k by the
 *      same select. Only the candidate counts (once) and the k results per
 *      query come back to the host.
 * The first implementation, with steps 2, 4 and the top-k on the host, is
 * kept (search opts host_pipeline) so that tests can prove the device
 * pipeline gives the same bytes. With residuals not resident (too large, or
 * MS_PLAID_GATHER) step 5 gathers their rows on the host as rerank does.
 */
#ifndef MS_PLAID_CL_H
#define MS_PLAID_CL_H

#include <stdint.h>

#include "cl_dev.h"
#include "emb.h"
#include "err.h"
#include "plaid.h"
#include "topk.h"

struct ms_plaid_dev;

struct ms_plaid_search_opts {
    uint64_t nprobe;      /* centroids probed per query token (8) */
    uint64_t ncandidates; /* documents kept by approximate score (4096) */
    uint64_t nrerank;     /* of those, documents scored exactly (1024) */
    int use_threshold;    /* --centroid-threshold given */
    float threshold;
    int trim_zero;     /* drop each query's trailing all-zero rows (fast-plaid 1.7) */
    int host_pipeline; /* tests: the first (host) implementation of steps 2-5 */
};

/* Queries per search call that keep its device buffers (S, bitmaps,
 * selections) within a sixteenth of the device memory, for queries of at
 * most `longest` tokens; 1 to 1024. */
uint64_t ms_plaid_dev_batch(const struct ms_plaid_dev *d, const struct ms_plaid_search_opts *o,
                            uint64_t longest);

/* Prepare the device for an index. Flags: MS_PLAID_SEARCH uploads every
 * code (search and approximate scores need them), and with it every residual
 * row when they fit; MS_PLAID_GATHER keeps residuals on the host even so
 * (tests, benchmarks); MS_PLAID_RESIDENT is the default, named for tests. */
enum {
    MS_PLAID_SEARCH = 1,
    MS_PLAID_RESIDENT = 2,
    MS_PLAID_GATHER = 4,
};
int ms_plaid_dev_create(struct ms_plaid_dev **out, struct ms_cl *cl, const struct ms_plaid *p,
                        int flags, struct ms_err *err);
void ms_plaid_dev_free(struct ms_plaid_dev *d);

/* Exact scores: out[i] = MaxSim(query row pair_q[i] of q, document pair_doc[i]),
 * tokens decompressed and normalized on the fly. q may be float32 or float16. */
int ms_plaid_dev_rerank(struct ms_plaid_dev *d, const struct ms_emb *q, const uint32_t *pair_q,
                        const uint32_t *pair_doc, uint64_t n, float *out, struct ms_err *err);

/* Approximate (centroid-interaction) scores of pairs (needs `search`). */
int ms_plaid_dev_approx(struct ms_plaid_dev *d, const struct ms_emb *q, const uint32_t *pair_q,
                        const uint32_t *pair_doc, uint64_t n, float *out, struct ms_err *err);

/* Search every row of q; results go to query q0 + r of t. */
int ms_plaid_dev_search(struct ms_plaid_dev *d, const struct ms_emb *q,
                        const struct ms_plaid_search_opts *o, struct ms_topk *t, uint64_t q0,
                        struct ms_err *err);

/* What the calls so far did: kernel time by kernel (OpenCL events), and
 * for search the candidates scored approximately and the pairs reranked. */
struct ms_plaid_stats {
    double centroid_s, probe_s, union_s, approx_s, select_s, rerank_s;
    uint64_t candidates, reranked, batches;
    /* search calls: wall time, and wall time less kernel time (host work,
     * transfers, launches), summed and the largest of one call */
    double search_s, host_s, host_max_s;
};
const struct ms_plaid_stats *ms_plaid_dev_stats(const struct ms_plaid_dev *d);

/* 1 when centroid scores run on NVIDIA tensor cores (kernels/plaid.cl,
 * plaid_centroid_scores_nv: queries and centroids rounded to float16, float32
 * sums): NVIDIA devices, dim a multiple of 16, search setup, unless the
 * environment sets MAXSIM_PLAID_NV=0. Approximate scores then differ from the
 * portable kernel's by that rounding; the pipeline is otherwise the same. */
int ms_plaid_dev_f16_centroids(const struct ms_plaid_dev *d);

#endif
