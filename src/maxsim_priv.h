/*
 * maxsim_priv.h - what the scorer's host files share; not a public header.
 *
 * src/maxsim_cl.c is the scorer (ms_scorer_*: query groups, buffers, sub-blocks, pairs) and the
 * host side of kernels/maxsim.cl, the portable kernels; src/maxsim_nv.c is the host side of
 * kernels/maxsim_nv.cl, the NVIDIA tensor-core path. Each host file pairs with one kernel file;
 * this header holds the scorer's state, which both read, and the few calls between them.
 */
#ifndef MS_MAXSIM_PRIV_H
#define MS_MAXSIM_PRIV_H

#include "maxsim.h"
#include "topk_cl.h"

struct qgroup {
    uint64_t q0, nq;     /* queries q0 .. q0+nq-1 of the batch */
    cl_mem queries;      /* [blocks * QB][dim] float32 */
    cl_mem q_blk, q_len; /* [nq + 1] first block of each query, [nq] lengths */
    /* NVIDIA path: [n_rb * 16][kp] float16 bits, valid rows per row block, first row block
     * of each query [nq + 1]; [n_rb * 16] float32, each row's 1 / s_q under int8 (0 elsewhere:
     * the kernels take the argument in every build). */
    cl_mem nv_q, nv_rb_valid, nv_q_blk, nv_inv_q;
    uint32_t n_rb;
};

/* Which tensor-core kernel scores a query group (src/maxsim_nv.c, nv_pick). */
enum nv_kernel {
    NV_STAGED =
        0, /* ms_nv_score + ms_nv_sum: document chunks shared by the row blocks of 4 warps */
    NV_STREAM = 1, /* ms_nv_stream: a warp streams its own documents against a whole query */
};

/* How --precision tf32 rounds (MAXSIM_NV_TF32, src/maxsim_nv.c nv_tf32_mode). */
enum nv_tf32 {
    NV_TF32_PREP = 1,  /* prep pass rounds the documents (rna) into their own buffer */
    NV_TF32_FUSED = 2, /* the kernel rounds B (integer arithmetic) from the upload itself */
    NV_TF32_RAW = 3,   /* no rounding: float32 bits straight to mma (what the hardware does) */
    NV_TF32_CVT = 4,   /* as fused, rounding with the cvt.rna.tf32.f32 instruction */
};

/* The tensor-core path's programs, variant and buffers (on == 0: not in use). */
struct nvpath {
    int on;
    enum nv_kernel kernel;
    cl_program prog;
    cl_kernel prep_f32, prep_f16, prep8_f32, prep8_f16, score, sum, stream;
    cl_kernel prep32_f32, prep32_f16; /* tf32: float32 rows, rounded (maxsim_nv.cl, tf32) */
    cl_kernel absmax_f32, absmax_f16, prepi8_f32, prepi8_f16; /* int8: M, then the codes */
    uint32_t kp;                                              /* dim rounded up to 16 */
    /* staged: row blocks per warp, warps splitting the columns, tokens per chunk;
     * stream: row blocks per warp (smr), warps per work-group (sw), ring stages (ss). */
    int mr, wc, nch, smr, sw, ss, ldsm, cpasync;
    /* staged: chunk slots (0: the double buffer with two barriers a chunk, 2..4: a ring with
     * one), warps a work-group (4, 8), column tiles a step (1, 2), row tile in dimension 0 */
    int ring, warps, nt, rtfast;
    int sumb;          /* ms_nv_sum: partial scores loaded at a time (MAXSIM_NV_SUM_BATCH) */
    int st;            /* stream: tokens per ring slot (16, 32, 64) */
    int warps_per_cu;  /* stream: warps in the grid per compute unit */
    int split;         /* stream: the warps of a work-group share each document */
    int tuned;         /* the variant came from the tuning table */
    int f8;            /* e4m3 operands: kp "halves" hold 2 * kp bytes */
    int i8;            /* int8 codes, the f8 layout; scales from nv_inv_q and dmax */
    int tf32;          /* enum nv_tf32 (0: not tf32): kp "halves" hold kp / 2 float32 */
    char variant[160]; /* what -v shows */
    cl_mem docs;       /* [cap_tokens][kp] float16 bits (prepared documents) */
    cl_mem part;       /* staged: [max group n_rb][cap_docs] float32 */
    cl_mem dmax;       /* int8: the block's largest |value| M, float32 bits (4 bytes, always) */
    /* pairs: one group's [nq][cap_docs] scores on the host, allocated once per scorer (pinned
     * when the driver gives it: a fresh allocation a block cost more than the copy) */
    float *tmp;
    void *tmp_handle;
};

/* A block started by ms_scorer_start and not finished. Overlapped (tensor cores): the events
 * of its kernels and read-backs, which finish waits for; else the result start already has. */
#define MS_INFLIGHT_EVENTS 16
struct inflight {
    int rc;
    struct ms_err err;
    double kernel_s, upload_s;
    uint64_t upload_bytes;
    cl_event kev[MS_INFLIGHT_EVENTS]; /* kernels (timed) */
    cl_event rev[MS_INFLIGHT_EVENTS]; /* read-backs */
    int n_kev, n_rev;
};

struct ms_scorer {
    struct ms_cl *cl;
    /* The portable kernels (kernels/maxsim.cl) and their float32 query groups. Under the tensor
     * cores they are made only when a block needs them (base_ready 0 until then; the queries
     * kept in base_q for it): a float32 corpus scored exactly. */
    int base_ready;
    struct ms_emb base_q;
    cl_program prog;
    cl_kernel prep_f32, prep_f16, score, score_pairs;
    int normalize, tn, qb, wg;
    enum ms_dtype q_dtype;
    uint32_t dim;
    uint64_t n_queries;
    struct qgroup *groups;
    int n_groups;

    /* Document side, capacities in documents, tokens and tiles. */
    uint64_t cap_docs, cap_tokens, cap_tiles;
    cl_mem raw;                /* [cap_tokens * dim] of float32 or float16 */
    cl_mem tiles;              /* [cap_tiles][dim][TN] float32 */
    cl_mem tile_tok, tile_cnt; /* [cap_tiles] */
    cl_mem doc_tile, doc_len;  /* [cap_docs] */
    cl_mem out;                /* [max group nq][cap_docs] float32 */
    uint32_t *h_tile_tok, *h_tile_cnt, *h_doc_tile, *h_doc_len;
    /* Pair lists (ms_scorer_run_pairs): sized on first use, grown up to the
     * buffer limit; longer lists are scored in pieces. */
    uint64_t limit, cap_pairs;
    cl_mem pair_q, pair_d, pair_out; /* [cap_pairs] */
    double last_kernel_s;
    double last_upload_s;       /* document uploads of the last run: event time */
    uint64_t last_upload_bytes; /* and bytes */
    int precision;
    char path[288];      /* ms_scorer_path */
    const char *variant; /* ms_scorer_opts.variant */
    struct nvpath nv;
    struct ms_gpu *gpu; /* the portable GPU path (src/maxsim_gpu.c, maxsim_gpu.h) when on */
    /* ms_scorer_run_topk: the selection program (built on first use), and the per-query
     * counts of its lists [n_queries] */
    struct ms_topk_cl *topk;
    uint32_t *topk_count;
    /* ms_scorer_start / _finish: the blocks in flight, oldest first at inflight[first]; while
     * a start enqueues, rec is its entry (launches then record events instead of waiting). The
     * overlapped blocks upload on copy_q and take turns with the second set of document
     * buffers (swapped into raw, doc_tile, doc_len at each start). */
    struct inflight inflight[2];
    int n_inflight, first_inflight;
    struct inflight *rec;
    cl_command_queue copy_q;
    cl_mem raw2, doc_tile2, doc_len2;
};

static inline uint64_t ms_ceil_div(uint64_t a, uint64_t b)
{
    return (a + b - 1) / b;
}

/* Row j of the block is needed: always without a pair list (start == NULL), else when some
 * pair names it (start[j] .. start[j+1]-1 are its pairs, as in ms_scorer_run_pairs). */
static inline int ms_row_used(const uint64_t *start, uint64_t j)
{
    return !start || start[j + 1] != start[j];
}

/* maxsim_cl.c: the longest run of rows from j0 that fits the document buffers; 0 with the
 * error set when row j0 alone does not fit. */
uint64_t ms_scorer_fit(struct ms_scorer *s, const struct ms_emb *docs, uint64_t j0,
                       const uint64_t *start, struct ms_err *err);

/* ---- maxsim_nv.c: the NVIDIA tensor-core path ---- */

/* Whether a scorer for these queries takes the tensor-core path: an NVIDIA device of compute
 * capability >= 8.0 (unless MAXSIM_NV_MMA=0), dims up to 512, float16 queries without
 * normalization, or any queries under MS_PREC_F16. */
int ms_nv_wanted(const struct ms_cl *cl, const struct ms_emb *q, const struct ms_scorer_opts *o);
/* Build the program, upload the query groups as float16 row blocks, size the buffers. After
 * the portable setup, whose groups and capacities it shares. */
int ms_nv_create(struct ms_scorer *s, const struct ms_emb *q, struct ms_err *err);
/* Whether this block of documents goes through the tensor-core path. */
int ms_nv_usable(const struct ms_scorer *s, const struct ms_emb *docs);
/* ms_scorer_run on the tensor cores; with a sink (ms_scorer_run_topk), every group's scores
 * go to it instead of `scores`. */
int ms_nv_run(struct ms_scorer *s, const struct ms_emb *docs, float *scores, uint64_t ld,
              struct ms_topk_sink *sink, struct ms_err *err);
/* ms_scorer_start's overlapped half: whether this block can go that way (the tensor cores, one
 * piece, few query groups), and the enqueueing itself (s->rec set; the upload on s->copy_q,
 * waited for; kernels and read-backs recorded in s->rec). */
int ms_nv_can_start(struct ms_scorer *s, const struct ms_emb *docs);
int ms_nv_start(struct ms_scorer *s, const struct ms_emb *docs, float *scores, uint64_t ld,
                struct ms_err *err);
/* The pairs of rows j0 .. j0+nd-1 (start, order as in ms_scorer_run_pairs) on the tensor
 * cores: every query of a group against the used rows, then the pairs picked out. */
int ms_nv_run_pairs(struct ms_scorer *s, const struct ms_emb *docs, uint64_t j0, uint64_t nd,
                    const uint64_t *start, const uint64_t *order, const uint32_t *pair_q,
                    const uint32_t *pair_d, float *out, struct ms_err *err);
void ms_nv_release(struct ms_scorer *s);

#endif
