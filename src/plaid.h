/*
 * plaid.h - PLAID index directories (fast-plaid and NextPlaid layouts), the
 * ColBERTv2 residual codec, and the double-precision reference scores.
 *
 * An index directory holds metadata.json, centroids.npy [K, dim] (f16 or
 * f32), bucket_weights.npy [2^nbits] (f16 or f32), doclens.N.json, and per
 * chunk N.codes.npy [T_N] (int32 or int64) and N.residuals.npy [T_N,
 * dim*nbits/8] (uint8), or the merged_codes.npy / merged_residuals.npy
 * copies (with trailing padding rows), plus ivf.npy / ivf_lengths.npy: for
 * each centroid the sorted ids of the documents that have a token coded by
 * it. (docs: shared/research/plaid.md sections 1-2.)
 *
 * ms_plaid_open() validates the whole index once (shapes, dtypes, every code
 * in range, doclens against token counts, IVF ids) and keeps the small parts
 * in memory (centroids as float32, bucket weights, document offsets, the
 * IVF). Codes and residuals stay on disk, memory-mapped read-only, and are
 * read by token ranges, so an index larger than memory can be served. The
 * index is never modified.
 *
 * Codec: dimension d's bucket (nbits bits, least significant first) sits in
 * a bit stream packed most significant bit first; a token decompresses to
 * normalize(centroid[code] + bucket_weights[bucket of each dim]).
 */
#ifndef MS_PLAID_H
#define MS_PLAID_H

#include <stddef.h>
#include <stdint.h>

#include "emb.h"
#include "err.h"

/* A memory-mapped .npy array. */
struct ms_plaid_arr {
    void *map;
    size_t map_len;
    const uint8_t *data; /* first element */
    char kind;           /* 'i', 'u', 'f' */
    uint32_t itemsize;
    int rank;
    uint64_t shape[2];
};

/* Codes and residuals of a run of tokens: a chunk, or the merged files. */
struct ms_plaid_part {
    uint64_t tok0, n_tokens; /* global token range */
    struct ms_plaid_arr codes, residuals;
};

struct ms_plaid {
    char *dir;
    const char *layout; /* "fast-plaid" or "next-plaid" */
    int merged;         /* codes/residuals from merged_*.npy */
    uint32_t dim, nbits, n_centroids;
    uint32_t packed;     /* bytes per token of residuals: dim * nbits / 8 */
    uint32_t code_bytes; /* 4 or 8 */
    enum ms_dtype centroid_dtype;
    uint64_t n_docs, n_tokens;
    float *centroids; /* [n_centroids * dim] float32 (converted) */
    float bucket_weights[256];
    uint64_t *doc_off; /* [n_docs + 1] token offsets */
    uint32_t max_doclen;
    struct ms_plaid_part *parts;
    int n_parts;
    uint64_t *ivf_off;   /* [n_centroids + 1] */
    uint32_t *ivf;       /* document ids */
    uint64_t disk_bytes; /* size of the directory's regular files */
};

/* Open and validate an index directory. Errors (MS_ERR_INPUT) name the file. */
int ms_plaid_open(struct ms_plaid *p, const char *dir, struct ms_err *err);
void ms_plaid_close(struct ms_plaid *p);

/* Codes of tokens [first, first + n) as uint32 (validated at open). */
void ms_plaid_codes(const struct ms_plaid *p, uint64_t first, uint64_t n, uint32_t *out);
/* Packed residual rows of tokens [first, first + n): n * packed bytes. */
void ms_plaid_residuals(const struct ms_plaid *p, uint64_t first, uint64_t n, uint8_t *out);

/* The codec. Bucket of dimension d of a packed row. */
static inline unsigned ms_plaid_bucket(const uint8_t *row, uint32_t nbits, uint32_t d)
{
    const uint32_t bit = d * nbits;
    const unsigned byte = row[bit >> 3], s = bit & 7;
    unsigned b = 0;
    for (uint32_t t = 0; t < nbits; t++)
        b |= ((byte >> (7 - (s + t))) & 1u) << t;
    return b;
}
/* Pack buckets[dim] into row[dim * nbits / 8] (for tests and tools). */
void ms_plaid_pack(const uint8_t *buckets, uint32_t dim, uint32_t nbits, uint8_t *row);
/* The decode table the kernels use: lut[byte * (8/nbits) + slot] = weight of
 * the bucket of the slot-th dimension held by that byte; [256 * 8/nbits]. */
void ms_plaid_lut(const struct ms_plaid *p, float *lut);

/* Double-precision reference (tests): token `tok` decompressed and normalized. */
void ms_plaid_ref_decompress(const struct ms_plaid *p, uint64_t tok, double *out);
/* Exact MaxSim of query row r of q against document doc, all in double. */
double ms_plaid_ref_score(const struct ms_plaid *p, const struct ms_emb *q, uint64_t r,
                          uint64_t doc);
/* Centroid-interaction score: sum over q's tokens of the max over doc's codes
 * of <q_i, centroid[code]>, in double; 0 for an empty document. */
double ms_plaid_ref_approx(const struct ms_plaid *p, const struct ms_emb *q, uint64_t r,
                           uint64_t doc);

#endif
