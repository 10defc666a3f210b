/*
 * maxsim.h - MaxSim scoring: the scalar reference and the OpenCL scorer.
 *
 * score(q, d) = sum over q's tokens i of max over d's tokens j of <q_i, d_j>,
 * 0 when either row has no token; with normalize, every token x is first
 * replaced by x / max(|x|_2, 1e-12). (man/maxsim.1, DESCRIPTION.)
 */
#ifndef MS_MAXSIM_H
#define MS_MAXSIM_H

#include <stddef.h>
#include <stdint.h>

#include "cl_dev.h"
#include "emb.h"
#include "err.h"

/* The double-precision reference, for tests: out[i * d->n_rows + j] =
 * score(query row i, document row j), every product and sum in double. */
void ms_ref_scores(const struct ms_emb *q, const struct ms_emb *d, int normalize, double *out);

/*
 * The OpenCL scorer. It holds one batch of queries on the device (prepared
 * once: converted, normalized), and scores blocks of documents against all of
 * them: one launch per block, the [Nq, Nd, Lq, Ld] grid never written.
 */
struct ms_scorer;

/* How inputs may be computed (--precision). EXACT (the default): products at the precision of
 * the stored inputs (float32 in float32; float16 in float16, exact in float32, with float32
 * sums). F16: float32 or normalized operands rounded to float16 (float32 accumulation) so that
 * the NVIDIA tensor-core path takes them; float16 inputs score the same either way. F8: every
 * operand rounded to float8 e4m3 (nearest even, saturated at +-448), float32 sums: twice the
 * tensor-core rate, half the bytes of the prepared documents; ranking agreement is measured by
 * `maxsim bench --precision f8` (docs/kernel-notes.md). TF32: float32 operands rounded to tf32 (10
 * mantissa bits, nearest, ties away from zero) and multiplied on the NVIDIA tensor cores (cc >=
 * 8.0) with float32 sums; a scorer refuses it where that path cannot run (MS_ERR_INPUT), and the
 * commands ask ms_scorer_tf32_ok first and fall back to EXACT with a warning. I8: int8 codes on
 * the NVIDIA tensor cores (cc >= 8.0, dim <= 512), int32 products and sums: each query row
 * scaled by 127 / its largest |value|, each block of documents by 127 / the block's largest
 * |value| (so a score depends a little on the block its document is scored in), the scales
 * applied to the exact integer maxima; refused elsewhere (MS_ERR_INPUT), as F8 is. */
enum ms_precision {
    MS_PREC_EXACT = 0,
    MS_PREC_F16 = 1,
    MS_PREC_F8 = 2,   /* float8 e4m3 operands (NVIDIA sm_89+ tensor cores only), float32 sums */
    MS_PREC_TF32 = 3, /* tf32 operands (NVIDIA sm_80+ tensor cores only), float32 sums */
    MS_PREC_I8 = 4,   /* int8 codes with scales (NVIDIA sm_80+ tensor cores only), int32 sums */
};

struct ms_scorer_opts {
    int normalize;
    uint64_t max_docs;   /* most documents in one block passed to ms_scorer_run */
    uint64_t max_tokens; /* most document tokens in one block */
    /* Kernel tiling, 0 for the defaults (for bench and tests): tokens per tile
     * (16, 32, 48 or 64), query tokens per register block (1..16), documents
     * per work-group. */
    int tile_tokens, query_block, work_group;
    /* Most bytes in one device buffer, 0 for the device's limit (a quarter
     * of its memory, at most CL_DEVICE_MAX_MEM_ALLOC_SIZE); tests set it
     * small to exercise the splitting of queries and documents. */
    uint64_t max_buffer;
    /* enum ms_precision. The NVIDIA tensor-core path (src/maxsim_nv.c) is taken on NVIDIA
     * devices of compute capability >= 8.0 (unless MAXSIM_NV_MMA=0) for float16 inputs without
     * normalization, or for any inputs under MS_PREC_F16. */
    int precision;
    /* A tensor-core kernel variant to use instead of the tuned or default one, as
     * MAXSIM_NV_VARIANT spells it (bench --tune); NULL for none. */
    const char *variant;
};

/* Whether MS_PREC_TF32 can be honoured on this device for inputs of this dim: an NVIDIA GPU of
 * compute capability >= 8.0, the tensor-core path not turned off (MAXSIM_NV_MMA=0), dim <= 256
 * (the query fragments live in registers). */
int ms_scorer_tf32_ok(const struct ms_cl *cl, uint32_t dim);
/* x rounded to tf32 (10 of float32's 23 mantissa bits kept), to nearest with ties away from zero
 * as cvt.rna.tf32.f32 rounds; infinities and NaN unchanged. What --precision tf32 does to every
 * operand (the kernels' ms_nv_tf32_rna is the same arithmetic). */
float ms_round_tf32(float x);
/* The int8 code of x at scale s (--precision int8): the nearest integer to the float32 product
 * x * s, ties to even, clamped to -127..127 (what the kernels' ms_nv_code8 computes). */
int8_t ms_quantize_i8(float x, float s);
/* A query row of n values into int8 codes with its own scale s = 127 / max |x| (a float32
 * division): out[k] = ms_quantize_i8(x[k], s). Returns 1 / s = max |x| / 127, what the row's
 * integer maxima are multiplied by; a row of zeros gets scale 0, codes 0 and returns 0. */
float ms_quantize_i8_row(const float *x, uint32_t n, int8_t *out);

/* Prepare for scoring against `queries` (any number of rows, any length). */
int ms_scorer_create(struct ms_scorer **out, struct ms_cl *cl, const struct ms_emb *queries,
                     const struct ms_scorer_opts *opts, struct ms_err *err);
/* Score every query against every document of `docs`: scores[i * ld + j] for
 * query i and document j, ld >= docs->n_rows. The documents may be float32 or
 * float16 whatever the queries are (both become float32); their dim must be
 * the queries' (else MS_ERR_INPUT). A block larger than max_docs / max_tokens
 * is scored in several launches with the same result. */
int ms_scorer_run(struct ms_scorer *s, const struct ms_emb *docs, float *scores, uint64_t ld,
                  struct ms_err *err);
/* ms_scorer_run in two halves, so that blocks overlap: ms_scorer_start returns once the block's
 * tokens are on the device (the caller may then reuse docs' memory) with its kernels and the
 * read-back into scores possibly still running, and ms_scorer_finish waits for the oldest
 * started block and gives its result (ms_scorer_last_kernel_s and _upload then describe it).
 * At most two blocks are started and not finished; every started block is finished, in order,
 * before another call on the scorer. On the tensor-core path the next block's upload runs
 * beside the kernels of the one before; elsewhere (or a block in several pieces) start does the
 * whole block and finish only reports. The scores are ms_scorer_run's bit for bit. */
int ms_scorer_start(struct ms_scorer *s, const struct ms_emb *docs, float *scores, uint64_t ld,
                    struct ms_err *err);
int ms_scorer_finish(struct ms_scorer *s, struct ms_err *err);
/* The best min(k, docs->n_rows) documents of the block for every query of the batch, selected
 * on the device (src/topk_cl.c) so that only they come back: top_scores[i * k + r] and
 * top_idx[i * k + r] (a row of docs) are query i's r-th best, in topk.h's order (score
 * descending, equal scores by lower row), the scores those of ms_scorer_run bit for bit.
 * 1 <= k <= ms_scorer_topk_max(s), else MS_ERR_INPUT. */
int ms_scorer_run_topk(struct ms_scorer *s, const struct ms_emb *docs, uint32_t k,
                       float *top_scores, uint32_t *top_idx, struct ms_err *err);
/* The largest k ms_scorer_run_topk takes on this scorer's device; 0 when the device cannot
 * select (too little local memory or too small work-groups). */
uint32_t ms_scorer_topk_max(const struct ms_scorer *s);
/* Build the selection program now (ms_scorer_run_topk otherwise does on first use): for callers
 * that then run scorers of the same device model on several threads, so that one build fills
 * the program cache and the others load it. */
int ms_scorer_topk_prepare(struct ms_scorer *s, struct ms_err *err);
/* Score pairs: out[p] = score(query pair_q[p] of the scorer's batch,
 * document pair_d[p] of docs), p < n_pairs (any number, in any order; listed
 * by document they run fastest). Bit for bit what ms_scorer_run gives for the
 * same pair; rows no pair names are never converted. An index out of range
 * is MS_ERR_INPUT. */
int ms_scorer_run_pairs(struct ms_scorer *s, const struct ms_emb *docs, const uint32_t *pair_q,
                        const uint32_t *pair_d, uint64_t n_pairs, float *out, struct ms_err *err);
/* Tuning (bench --tune): the keys of the tuning table's line for a scorer of these queries on
 * this device with these options (tune.h), and the variants worth timing for it. Both return 0
 * when no tunable path would score them. */
int ms_scorer_tune_keys(const struct ms_cl *cl, const struct ms_emb *q,
                        const struct ms_scorer_opts *o, char *device, size_t dcap, char *klass,
                        size_t kcap);
int ms_scorer_tune_candidates(const struct ms_cl *cl, const struct ms_emb *q,
                              const struct ms_scorer_opts *o, char (*out)[64], int max);

/* Which kernels score, for -v and bench: "NVIDIA tensor cores, stream kernel (...)" or
 * "portable kernels (...)". */
const char *ms_scorer_path(const struct ms_scorer *s);
/* Kernel time of the last ms_scorer_run or ms_scorer_run_pairs, in seconds,
 * from OpenCL events. */
double ms_scorer_last_kernel_s(const struct ms_scorer *s);
/* Time (from events) and bytes of the document uploads of the last run, for -v. */
void ms_scorer_last_upload(const struct ms_scorer *s, double *seconds, uint64_t *bytes);
void ms_scorer_free(struct ms_scorer *s);

#endif
