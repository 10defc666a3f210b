/*
 * index.h - building PLAID indexes (`maxsim index`): k-means centroids from
 * a sample of tokens, every token assigned and residual-compressed on the
 * device, written in the fast-plaid (or NextPlaid) directory layout that
 * src/plaid.c, fast-plaid and NextPlaid read (docs: research/plaid.md
 * sections 1-2, docs/index-notes.md).
 *
 * Bounded memory: the corpus is streamed block by block; what is held is
 * the k-means sample (fast-plaid's size, growing as the square root of the
 * corpus), the centroids, one block, and the IVF counts. Deterministic: a
 * seeded generator picks the sample and the initial centroids, every
 * assignment depends only on its own point, and k-means sums are taken in
 * double precision in point order on the host, so the same corpus, options
 * and seed give the same bytes whatever the block size or device.
 *
 * Output: a temporary directory beside the target, renamed into place when
 * complete (an existing index there is swapped out and removed), so a
 * failed build leaves no partial index.
 */
#ifndef MS_INDEX_H
#define MS_INDEX_H

#include <stdint.h>

#include "cl_dev.h"
#include "err.h"
#include "plaid.h"
#include "src.h"

struct ms_index_opts {
    uint32_t nbits;          /* 1, 2, 4 or 8 */
    uint64_t centroids;      /* 0: fast-plaid's 2^floor(log2(16 sqrt(tokens))) */
    uint32_t kmeans_iters;   /* fast-plaid's default: 4 */
    uint64_t sample_docs;    /* 0: fast-plaid's 1 + 16 sqrt(120 docs) */
    uint64_t seed;           /* fast-plaid's default: 42 */
    int next_plaid;          /* NextPlaid layout (f32 centroids, '|u1' residuals) */
    uint64_t docs_per_chunk; /* documents per chunk file (fast-plaid's batch: 25000) */
    uint64_t block_docs;     /* read blocks: at most this many documents (0: any) */
    uint64_t block_tokens;   /* read blocks: at most this many tokens */
    /* Training points per k-means launch (0: all of them on a GPU with room, else 262,144;
     * MAXSIM_INDEX_KMEANS_BLOCK). The index is the same for any. */
    uint64_t kmeans_block;
    /* 1: the host's k-means sums and chunk writes wait for the device instead of running
     * beside its next block (MAXSIM_INDEX_OVERLAP=0), to time what the overlap saves. */
    int serial_host;
};

/* What a build did, for -v and the benchmarks. */
struct ms_index_stats {
    uint64_t n_docs, n_tokens; /* added by this build */
    uint64_t k, sample_docs, sample_tokens, train_points, heldout;
    double sample_s, kmeans_s, codec_s, encode_s, ivf_s, kernel_s;
    /* wall time of k-means' parts on the calling thread: loading blocks, assigning them
     * (blocking), and the host's share (bias, sums not overlapped, waiting for the
     * overlapped sums, means) */
    double kmeans_load_s, kmeans_assign_s, kmeans_host_s;
    /* encode: waiting for the writer thread (codes and residuals to the chunk files) */
    double encode_wait_s;
    uint64_t device_peak; /* bytes of device buffers, at most */
    /* the nearest-centroid assignment: "float32", or the float16 pass with
     * its exact re-check (kernels/index.cl): points assigned that way, how
     * many were re-checked, and the kernel seconds of the two passes */
    const char *assign;
    uint64_t assign_points, rechecked;
    double approx_s, recheck_s;
};

/* Progress: called after each block with tokens done and the total, and at
 * the start of each phase with done = 0 ("sample", "k-means", "encode"). */
typedef void (*ms_index_progress_fn)(void *ctx, const char *phase, uint64_t done, uint64_t total);

/* Check that `dir` can receive an index: absent, an empty directory, or an
 * index directory (metadata.json present: it will be replaced). */
int ms_index_check_output(const char *dir, struct ms_err *err);

/* Build a new index of every document of `docs` into out_dir. `again` is
 * the same input opened a second time when it can only be read forward
 * (zstd): the sample is read from docs, the encoding pass from again (else
 * again == docs). */
int ms_index_build(struct ms_cl *cl, struct ms_src *docs, struct ms_src *again, const char *out_dir,
                   const struct ms_index_opts *o, ms_index_progress_fn fn, void *ctx,
                   struct ms_index_stats *st, struct ms_err *err);

/* Add every document of `docs` to the open index `p` (its directory),
 * encoded with its centroids and bucket cutoffs; they get the next
 * positions. The index keeps its layout and nbits (o->nbits, o->next_plaid
 * and the k-means options are ignored). Fails with MS_ERR_INPUT on a
 * dimension mismatch. */
int ms_index_append(struct ms_cl *cl, struct ms_plaid *p, struct ms_src *docs,
                    const struct ms_index_opts *o, ms_index_progress_fn fn, void *ctx,
                    struct ms_index_stats *st, struct ms_err *err);

/* fast-plaid's default centroid count for an estimated token count. */
uint64_t ms_index_default_k(double est_tokens);
/* Linear-interpolation quantile (torch.quantile / numpy's default) of
 * sorted[0, n) at q in [0, 1]. */
double ms_index_quantile(const double *sorted, uint64_t n, double q);

#endif
