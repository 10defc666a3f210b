/*
 * maxsim_cl.c - the OpenCL MaxSim scorer: host side of kernels/maxsim.cl.
 *
 * ms_scorer_create prepares the query batch once on the host (float32,
 * normalized if asked, each query padded with zero tokens to a multiple of
 * the kernel's QB) and uploads it; ms_scorer_run then scores blocks of
 * documents against it: upload the raw tokens, ms_prep_* converts them into
 * the tiled layout, ms_score writes [n_queries, n_docs] scores, read back with
 * the caller's leading dimension. ms_scorer_run_pairs prepares only the
 * documents its pairs name and scores the list with ms_score_pairs.
 *
 * Every device buffer is sized once (from max_docs / max_tokens, capped by
 * CL_DEVICE_MAX_MEM_ALLOC_SIZE) and reused. A block that does not fit is
 * scored in several sub-blocks, and a query batch too large for one buffer is
 * split into groups, each launched separately: both splits are invisible in
 * the scores, because every (query, document) score is computed by one
 * work-item from the same prepared data in the same order.
 *
 * NVIDIA path (kernels/maxsim_nv.cl, tensor cores through inline PTX): an opt-in alternative
 * for ms_scorer_run and ms_scorer_run_pairs, chosen in nv_wanted / nv_usable. That code has
 * been compiled (ptxas, via scripts/nv-twin) and its fragment layouts checked on the CPU
 * (tests/test_nv_layout.c), but it has NOT yet run on a GPU: it stays behind MAXSIM_NV_MMA=1
 * until scripts/gpu-check passes on the H100 (docs/kernel-notes.md, "NVIDIA path"). The
 * portable path is the default everywhere.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "maxsim.h"
#include "maxsim_gpu.h"

#define DEFAULT_TN 16 /* tokens per tile: one AVX-512 vector; little padding for short docs */
#define DEFAULT_QB 8  /* query tokens per register block */
#define DEFAULT_WG 1  /* documents per work-group */

struct qgroup {
    uint64_t q0, nq;     /* queries q0 .. q0+nq-1 of the batch */
    cl_mem queries;      /* [blocks * QB][dim] float32 */
    cl_mem q_blk, q_len; /* [nq + 1] first block of each query, [nq] lengths */
    /* NVIDIA path: [n_rb * 16][kp] float16 bits, valid rows per row block, first row block
     * of each query [nq + 1]. */
    cl_mem nv_q, nv_rb_valid, nv_q_blk;
    uint32_t n_rb;
};

/* The tensor-core path's program, variant and buffers (on == 0: not in use). */
struct nvpath {
    int on;
    cl_program prog;
    cl_kernel prep_f32, prep_f16, score, sum;
    uint32_t kp; /* dim rounded up to 16 */
    int mr, wc, nch, ldsm, cpasync;
    cl_mem docs; /* [cap_tokens][kp] float16 bits (prepared documents) */
    cl_mem part; /* [max group n_rb][cap_docs] float32 */
};

struct ms_scorer {
    struct ms_cl *cl;
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
    int precision;
    struct nvpath nv;
    struct ms_gpu *gpu; /* the portable GPU path (src/maxsim_gpu.c) when on */
};

static int cl_fail(struct ms_err *err, const char *call, cl_int rc)
{
    return ms_err_set(err, MS_ERR_RUNTIME, "%s failed: %s", call, ms_cl_strerror(rc));
}

static cl_mem make_buffer(struct ms_scorer *s, cl_mem_flags flags, size_t bytes, const char *what,
                          struct ms_err *err)
{
    cl_int rc;
    /* Zero-sized buffers are invalid in OpenCL; one element keeps the code uniform. */
    cl_mem m = clCreateBuffer(s->cl->ctx, flags, bytes ? bytes : 4, NULL, &rc);
    if (!m)
        ms_err_set(err, MS_ERR_RUNTIME, "clCreateBuffer(%s, %zu bytes) failed on '%s': %s", what,
                   bytes, s->cl->info.name, ms_cl_strerror(rc));
    return m;
}

static void release(cl_mem *m)
{
    if (*m)
        clReleaseMemObject(*m);
    *m = NULL;
}

/* The most bytes one buffer may take: the device's allocation limit, and a
 * quarter of its memory so that the several buffers fit together. */
static uint64_t buffer_limit(const struct ms_cl *cl, uint64_t override)
{
    uint64_t lim;
    if (override)
        return override;
    lim = cl->info.max_alloc ? cl->info.max_alloc : (128ull << 20);
    if (cl->info.global_mem && cl->info.global_mem / 4 < lim)
        lim = cl->info.global_mem / 4;
    return lim < (1ull << 20) ? (1ull << 20) : lim;
}

static uint64_t ceil_div(uint64_t a, uint64_t b)
{
    return (a + b - 1) / b;
}

static int build(struct ms_scorer *s, struct ms_err *err)
{
    char opts[256];
    cl_int rc;

    snprintf(opts, sizeof opts, "-cl-std=CL1.2 -DMS_TN=%d -DMS_QB=%d%s", s->tn, s->qb,
             s->cl->info.is_nvidia ? " -DMS_NVIDIA=1" : "");
    if (ms_cl_program(s->cl, "maxsim.cl", opts, &s->prog, err) != MS_OK)
        return err->status;
    s->prep_f32 = clCreateKernel(s->prog, "ms_prep_f32", &rc);
    if (!s->prep_f32)
        return cl_fail(err, "clCreateKernel(ms_prep_f32)", rc);
    s->prep_f16 = clCreateKernel(s->prog, "ms_prep_f16", &rc);
    if (!s->prep_f16)
        return cl_fail(err, "clCreateKernel(ms_prep_f16)", rc);
    s->score = clCreateKernel(s->prog, "ms_score", &rc);
    if (!s->score)
        return cl_fail(err, "clCreateKernel(ms_score)", rc);
    s->score_pairs = clCreateKernel(s->prog, "ms_score_pairs", &rc);
    if (!s->score_pairs)
        return cl_fail(err, "clCreateKernel(ms_score_pairs)", rc);
    return MS_OK;
}

/* Padded query tokens of queries a .. b-1. */
static uint64_t padded_tokens(const struct ms_scorer *s, const struct ms_emb *q, uint64_t a,
                              uint64_t b)
{
    uint64_t n = 0;
    for (uint64_t i = a; i < b; i++)
        n += ceil_div(ms_emb_row_len(q, i), (uint64_t)s->qb) * (uint64_t)s->qb;
    return n;
}

/* Prepare and upload queries [g->q0, g->q0 + g->nq). */
static int upload_group(struct ms_scorer *s, const struct ms_emb *q, struct qgroup *g,
                        struct ms_err *err)
{
    const uint64_t ntok = padded_tokens(s, q, g->q0, g->q0 + g->nq);
    float *host = ms_calloc(ntok ? ntok * s->dim : 1, sizeof *host, err);
    uint32_t *blk = ms_malloc((g->nq + 1) * sizeof *blk, err);
    uint32_t *len = ms_malloc((g->nq ? g->nq : 1) * sizeof *len, err);
    uint64_t row = 0;
    cl_int rc = CL_SUCCESS;
    int status = MS_OK;

    if (!host || !blk || !len) {
        status = MS_ERR_RUNTIME;
        goto done;
    }
    blk[0] = 0;
    for (uint64_t i = 0; i < g->nq; i++) {
        const uint64_t qi = g->q0 + i, n = ms_emb_row_len(q, qi);
        for (uint64_t t = 0; t < n; t++) {
            const uint64_t tok = q->offsets[qi] + t;
            float *dst = host + (row + t) * s->dim;
            double scale = 1.0;
            if (s->normalize) {
                double ss = 0.0;
                for (uint32_t k = 0; k < s->dim; k++) {
                    const double x = ms_emb_value(q, tok, k);
                    ss += x * x;
                }
                scale = 1.0 / fmax(sqrt(ss), 1e-12);
            }
            for (uint32_t k = 0; k < s->dim; k++)
                dst[k] = (float)(ms_emb_value(q, tok, k) * scale);
        }
        row += ceil_div(n, (uint64_t)s->qb) * (uint64_t)s->qb;
        blk[i + 1] = (uint32_t)(row / (uint64_t)s->qb);
        len[i] = (uint32_t)n;
    }
    g->queries = make_buffer(s, CL_MEM_READ_ONLY, ntok * s->dim * sizeof(float), "queries", err);
    g->q_blk = make_buffer(s, CL_MEM_READ_ONLY, (g->nq + 1) * sizeof *blk, "query blocks", err);
    g->q_len = make_buffer(s, CL_MEM_READ_ONLY, g->nq * sizeof *len, "query lengths", err);
    if (!g->queries || !g->q_blk || !g->q_len) {
        status = MS_ERR_RUNTIME;
        goto done;
    }
    if (ntok)
        rc = clEnqueueWriteBuffer(s->cl->queue, g->queries, CL_TRUE, 0,
                                  ntok * s->dim * sizeof(float), host, 0, NULL, NULL);
    if (rc == CL_SUCCESS)
        rc = clEnqueueWriteBuffer(s->cl->queue, g->q_blk, CL_TRUE, 0, (g->nq + 1) * sizeof *blk,
                                  blk, 0, NULL, NULL);
    if (rc == CL_SUCCESS && g->nq)
        rc = clEnqueueWriteBuffer(s->cl->queue, g->q_len, CL_TRUE, 0, g->nq * sizeof *len, len, 0,
                                  NULL, NULL);
    if (rc != CL_SUCCESS)
        status = cl_fail(err, "clEnqueueWriteBuffer(queries)", rc);
done:
    free(host);
    free(blk);
    free(len);
    return status;
}

static int nv_wanted(const struct ms_cl *cl, const struct ms_emb *q,
                     const struct ms_scorer_opts *o);
static int nv_create(struct ms_scorer *s, const struct ms_emb *q, struct ms_err *err);
static void nv_release(struct ms_scorer *s);

int ms_scorer_create(struct ms_scorer **out, struct ms_cl *cl, const struct ms_emb *queries,
                     const struct ms_scorer_opts *opts, struct ms_err *err)
{
    struct ms_scorer *s;
    uint64_t limit, max_group_nq = 0, tile_bytes, raw_tok;

    *out = NULL;
    if (queries->dim == 0 || queries->dim > (1u << 20))
        return ms_err_set(err, MS_ERR_INPUT, "unsupported query dim %u (expected 1..%u)",
                          queries->dim, 1u << 20);
    s = ms_calloc(1, sizeof *s, err);
    if (!s)
        return err->status;
    s->cl = cl;
    s->normalize = opts->normalize;
    s->tn = opts->tile_tokens ? opts->tile_tokens : DEFAULT_TN;
    s->qb = opts->query_block ? opts->query_block : DEFAULT_QB;
    s->wg = opts->work_group ? opts->work_group : DEFAULT_WG;
    if ((s->tn != 16 && s->tn != 32 && s->tn != 48 && s->tn != 64) || s->qb < 1 || s->qb > 16 ||
        s->wg < 1 || (size_t)s->wg > (cl->info.max_work_group ? cl->info.max_work_group : 1)) {
        ms_err_set(err, MS_ERR_INPUT, "bad kernel tiling tn=%d qb=%d wg=%d", s->tn, s->qb, s->wg);
        goto fail;
    }
    s->q_dtype = queries->dtype;
    s->dim = queries->dim;
    s->n_queries = queries->n_rows;
    if (build(s, err) != MS_OK)
        goto fail;

    /* Query groups: each group's prepared queries and its [nq][cap_docs]
     * output block must each fit in one buffer. */
    limit = buffer_limit(cl, opts->max_buffer);
    s->limit = limit;
    s->cap_docs = opts->max_docs ? opts->max_docs : 1;
    if (s->cap_docs * sizeof(float) > limit)
        s->cap_docs = limit / sizeof(float);
    if (s->cap_docs > UINT32_MAX / 2)
        s->cap_docs = UINT32_MAX / 2;
    s->groups = ms_calloc(queries->n_rows ? queries->n_rows : 1, sizeof *s->groups, err);
    if (!s->groups)
        goto fail;
    for (uint64_t q = 0; q < queries->n_rows;) {
        struct qgroup *g = &s->groups[s->n_groups];
        uint64_t ntok = 0, n = 0;
        while (q + n < queries->n_rows) {
            const uint64_t add =
                ceil_div(ms_emb_row_len(queries, q + n), (uint64_t)s->qb) * (uint64_t)s->qb;
            if (n > 0 && ((ntok + add) * s->dim * sizeof(float) > limit ||
                          (n + 1) * s->cap_docs * sizeof(float) > limit ||
                          (ntok + add) / (uint64_t)s->qb >= UINT32_MAX))
                break;
            ntok += add;
            n++;
        }
        if (ntok * s->dim * sizeof(float) > limit) {
            ms_err_set(err, MS_ERR_RUNTIME,
                       "query %llu has %llu tokens of dim %u: more than one device buffer holds "
                       "(%llu bytes on '%s')",
                       (unsigned long long)q, (unsigned long long)ms_emb_row_len(queries, q),
                       s->dim, (unsigned long long)limit, cl->info.name);
            goto fail;
        }
        g->q0 = q;
        g->nq = n;
        s->n_groups++;
        if (upload_group(s, queries, g, err) != MS_OK)
            goto fail;
        if (n > max_group_nq)
            max_group_nq = n;
        q += n;
    }

    /* Document buffers: the tiled copy pads each document to a multiple of
     * TN tokens, so it needs at most max_tokens / TN + max_docs tiles. */
    tile_bytes = (uint64_t)s->tn * s->dim * sizeof(float);
    raw_tok = opts->max_tokens ? opts->max_tokens : 1;
    if (raw_tok * s->dim * sizeof(float) > limit)
        raw_tok = limit / (s->dim * sizeof(float));
    s->cap_tokens = raw_tok;
    s->cap_tiles = ceil_div(opts->max_tokens ? opts->max_tokens : 1, (uint64_t)s->tn) + s->cap_docs;
    if (s->cap_tiles * tile_bytes > limit)
        s->cap_tiles = limit / tile_bytes;
    if (s->cap_tokens == 0 || s->cap_tiles == 0) {
        ms_err_set(err, MS_ERR_RUNTIME, "dim %u is too large for the buffers of '%s'", s->dim,
                   cl->info.name);
        goto fail;
    }
    /* float32 or float16 documents: size for the wider. */
    s->raw =
        make_buffer(s, CL_MEM_READ_ONLY, s->cap_tokens * s->dim * sizeof(float), "documents", err);
    s->tiles = make_buffer(s, CL_MEM_READ_WRITE, s->cap_tiles * tile_bytes, "document tiles", err);
    s->tile_tok = make_buffer(s, CL_MEM_READ_ONLY, s->cap_tiles * 4, "tile tokens", err);
    s->tile_cnt = make_buffer(s, CL_MEM_READ_ONLY, s->cap_tiles * 4, "tile counts", err);
    s->doc_tile = make_buffer(s, CL_MEM_READ_ONLY, s->cap_docs * 4, "document tiles", err);
    s->doc_len = make_buffer(s, CL_MEM_READ_ONLY, s->cap_docs * 4, "document lengths", err);
    s->out = make_buffer(s, CL_MEM_WRITE_ONLY, max_group_nq * s->cap_docs * sizeof(float), "scores",
                         err);
    if (!s->raw || !s->tiles || !s->tile_tok || !s->tile_cnt || !s->doc_tile || !s->doc_len ||
        !s->out)
        goto fail;
    s->h_tile_tok = ms_malloc(s->cap_tiles * 4, err);
    s->h_tile_cnt = s->h_tile_tok ? ms_malloc(s->cap_tiles * 4, err) : NULL;
    s->h_doc_tile = s->h_tile_cnt ? ms_malloc(s->cap_docs * 4, err) : NULL;
    s->h_doc_len = s->h_doc_tile ? ms_malloc(s->cap_docs * 4, err) : NULL;
    if (!s->h_doc_len)
        goto fail;
    s->precision = opts->precision;
    if (nv_wanted(cl, queries, opts) && nv_create(s, queries, err) != MS_OK)
        goto fail;
    if (gpu_wanted(cl) && gpu_create(&s->gpu, cl, queries, opts, err) != MS_OK)
        goto fail;
    *out = s;
    return MS_OK;
fail:
    ms_scorer_free(s);
    return err->status ? err->status : MS_ERR_RUNTIME;
}

static double event_s(cl_event ev)
{
    cl_ulong a = 0, b = 0;
    if (clGetEventProfilingInfo(ev, CL_PROFILING_COMMAND_START, sizeof a, &a, NULL) != CL_SUCCESS ||
        clGetEventProfilingInfo(ev, CL_PROFILING_COMMAND_END, sizeof b, &b, NULL) != CL_SUCCESS)
        return 0.0;
    return b > a ? (double)(b - a) * 1e-9 : 0.0;
}

/* Row j of the block is needed: always without a pair list, else when some
 * pair names it (`start` as in ms_scorer_run_pairs). */
static int row_used(const uint64_t *start, uint64_t j)
{
    return !start || start[j + 1] != start[j];
}

/* ---- NVIDIA tensor-core path (kernels/maxsim_nv.cl) ---- */

static int env_int(const char *name, int dflt)
{
    const char *e = getenv(name);
    return e && *e ? atoi(e) : dflt;
}

/*
 * Whether this scorer may use the tensor-core path at all. Because kernels/maxsim_nv.cl has not
 * yet run on a GPU, it stays opt-in (MAXSIM_NV_MMA=1) until scripts/gpu-check passes on the
 * H100; then the environment test can go. Float16 queries are exact in float16; float32 ones
 * (or normalized ones, whose normalized values are rounded) need MS_PREC_F16. Dims above 512
 * would not fit the kernel's register-resident query fragments.
 */
static int nv_wanted(const struct ms_cl *cl, const struct ms_emb *q, const struct ms_scorer_opts *o)
{
    const char *e = getenv("MAXSIM_NV_MMA");
    if (!e || strcmp(e, "1") != 0)
        return 0;
    if (!cl->info.is_nvidia || cl->info.nv_cc_major < 8)
        return 0;
    if ((q->dim + 15) / 16 * 16 > 512)
        return 0;
    if (o->precision == MS_PREC_F16)
        return 1;
    return q->dtype == MS_DTYPE_F16 && !o->normalize;
}

/* Whether a block of documents goes through the tensor-core path (else the portable one). */
static int nv_usable(const struct ms_scorer *s, const struct ms_emb *docs)
{
    return s->nv.on &&
           (s->precision == MS_PREC_F16 || (docs->dtype == MS_DTYPE_F16 && !s->normalize));
}

/*
 * The kernel variant from the shape. A work-group is 4 warps; a warp keeps MR row blocks of 16
 * query rows; WC warps split each chunk's column tiles, so the row tile is (4 / WC) * MR row
 * blocks. Many query rows (batched retrieval): WC = 1, every warp its own rows, each document
 * chunk read once for 128 rows. Few rows (one short query): WC = 4, the warps share the rows
 * and split the tokens. NCH: the largest chunk whose two stages fit 40 KiB of __local.
 * MAXSIM_NV_VARIANT="mr,wc,nch" overrides (scripts/gpu-check, tuning). Planned: a tuning cache
 * of the fastest variant per shape class measured by `maxsim bench` (docs/kernel-notes.md).
 */
static void nv_pick(struct nvpath *nv, uint64_t n_rb)
{
    const char *v = getenv("MAXSIM_NV_VARIANT");
    nv->mr = n_rb >= 2 && nv->kp <= 256 ? 2 : 1;
    nv->wc = n_rb >= 8 ? 1 : n_rb >= 4 ? 2 : 4;
    if (v && sscanf(v, "%d,%d,%d", &nv->mr, &nv->wc, &nv->nch) == 3)
        return;
    for (;;) {
        nv->nch = 0;
        for (int c = 128; c >= 16; c /= 2)
            if (2u * (uint32_t)c * (nv->kp + 8) * 2 <= 40960 && c % (16 * nv->wc) == 0) {
                nv->nch = c;
                break;
            }
        if (nv->nch || nv->wc == 1)
            break;
        nv->wc /= 2;
    }
    nv->ldsm = env_int("MAXSIM_NV_LDSM", 1);
    nv->cpasync = env_int("MAXSIM_NV_CPASYNC", 1);
}

static void nv_release(struct ms_scorer *s)
{
    struct nvpath *nv = &s->nv;
    for (int i = 0; i < s->n_groups; i++) {
        release(&s->groups[i].nv_q);
        release(&s->groups[i].nv_rb_valid);
        release(&s->groups[i].nv_q_blk);
    }
    release(&nv->docs);
    release(&nv->part);
    if (nv->prep_f32)
        clReleaseKernel(nv->prep_f32);
    if (nv->prep_f16)
        clReleaseKernel(nv->prep_f16);
    if (nv->score)
        clReleaseKernel(nv->score);
    if (nv->sum)
        clReleaseKernel(nv->sum);
    if (nv->prog)
        clReleaseProgram(nv->prog);
    memset(nv, 0, sizeof *nv);
}

/* Queries of group g as float16 bits, each padded to a multiple of 16 rows and kp columns. */
static int nv_upload_group(struct ms_scorer *s, const struct ms_emb *q, struct qgroup *g,
                           struct ms_err *err)
{
    const uint32_t kp = s->nv.kp;
    uint64_t n_rb = 0;
    uint16_t *host = NULL;
    uint32_t *valid = NULL, *blk = NULL;
    cl_int rc = CL_SUCCESS;
    int status = MS_OK;

    for (uint64_t i = 0; i < g->nq; i++)
        n_rb += ceil_div(ms_emb_row_len(q, g->q0 + i), 16);
    if (n_rb > UINT32_MAX / 16)
        return ms_err_set(err, MS_ERR_RUNTIME, "too many query tokens for the NVIDIA path");
    if (!(host = ms_calloc(n_rb ? n_rb * 16 * kp : 1, sizeof *host, err)) ||
        !(valid = ms_malloc((n_rb ? n_rb : 1) * sizeof *valid, err)) ||
        !(blk = ms_malloc((g->nq + 1) * sizeof *blk, err))) {
        status = err->status;
        goto done;
    }
    n_rb = 0;
    blk[0] = 0;
    for (uint64_t i = 0; i < g->nq; i++) {
        const uint64_t qi = g->q0 + i, n = ms_emb_row_len(q, qi);
        for (uint64_t t = 0; t < n; t++) {
            const uint64_t tok = q->offsets[qi] + t;
            uint16_t *dst = host + (n_rb * 16 + t) * kp;
            double scale = 1.0;
            if (s->normalize) {
                double ss = 0.0;
                for (uint32_t k = 0; k < s->dim; k++) {
                    const double x = ms_emb_value(q, tok, k);
                    ss += x * x;
                }
                scale = 1.0 / fmax(sqrt(ss), 1e-12);
            }
            for (uint32_t k = 0; k < s->dim; k++)
                dst[k] = q->dtype == MS_DTYPE_F16 && !s->normalize
                             ? ((const uint16_t *)q->tokens)[tok * s->dim + k]
                             : ms_float_to_half((float)(ms_emb_value(q, tok, k) * scale));
        }
        for (uint64_t t = 0; t < n; t += 16)
            valid[n_rb++] = (uint32_t)(n - t < 16 ? n - t : 16);
        blk[i + 1] = (uint32_t)n_rb;
    }
    g->n_rb = (uint32_t)n_rb;
    g->nv_q = make_buffer(s, CL_MEM_READ_ONLY, n_rb * 16 * kp * 2, "NV queries", err);
    g->nv_rb_valid = make_buffer(s, CL_MEM_READ_ONLY, n_rb * 4, "NV row blocks", err);
    g->nv_q_blk = make_buffer(s, CL_MEM_READ_ONLY, (g->nq + 1) * 4, "NV query blocks", err);
    if (!g->nv_q || !g->nv_rb_valid || !g->nv_q_blk) {
        status = err->status;
        goto done;
    }
    if (n_rb)
        rc = clEnqueueWriteBuffer(s->cl->queue, g->nv_q, CL_TRUE, 0, n_rb * 16 * kp * 2, host, 0,
                                  NULL, NULL);
    if (rc == CL_SUCCESS && n_rb)
        rc = clEnqueueWriteBuffer(s->cl->queue, g->nv_rb_valid, CL_TRUE, 0, n_rb * 4, valid, 0,
                                  NULL, NULL);
    if (rc == CL_SUCCESS)
        rc = clEnqueueWriteBuffer(s->cl->queue, g->nv_q_blk, CL_TRUE, 0, (g->nq + 1) * 4, blk, 0,
                                  NULL, NULL);
    if (rc != CL_SUCCESS)
        status = cl_fail(err, "clEnqueueWriteBuffer(NV queries)", rc);
done:
    free(host);
    free(valid);
    free(blk);
    return status;
}

/*
 * Set up the tensor-core path after the portable one (whose groups and capacities it shares).
 * A failure to build or allocate is an error, not a silent fallback: whoever set
 * MAXSIM_NV_MMA=1 wants to know (scripts/gpu-check relies on it).
 */
static int nv_create(struct ms_scorer *s, const struct ms_emb *q, struct ms_err *err)
{
    struct nvpath *nv = &s->nv;
    uint64_t max_rb = 0, total_rb = 0;
    char opts[256];
    cl_int rc;

    nv->kp = (s->dim + 15) / 16 * 16;
    for (uint64_t i = 0; i < q->n_rows; i++)
        total_rb += ceil_div(ms_emb_row_len(q, i), 16);
    nv_pick(nv, total_rb);
    snprintf(opts, sizeof opts,
             "-cl-std=CL1.2 -DMS_NVIDIA=1 -DMS_NV_KP=%u -DMS_NV_MR=%d -DMS_NV_WC=%d "
             "-DMS_NV_NCH=%d -DMS_NV_LDSM=%d -DMS_NV_CPASYNC=%d",
             nv->kp, nv->mr, nv->wc, nv->nch, nv->ldsm, nv->cpasync);
    if (ms_cl_program(s->cl, "maxsim_nv.cl", opts, &nv->prog, err) != MS_OK)
        return err->status;
    nv->prep_f32 = clCreateKernel(nv->prog, "ms_nv_prep_f32", &rc);
    if (nv->prep_f32)
        nv->prep_f16 = clCreateKernel(nv->prog, "ms_nv_prep_f16", &rc);
    if (nv->prep_f16)
        nv->score = clCreateKernel(nv->prog, "ms_nv_score", &rc);
    if (nv->score)
        nv->sum = clCreateKernel(nv->prog, "ms_nv_sum", &rc);
    if (!nv->sum)
        return cl_fail(err, "clCreateKernel(ms_nv_*)", rc);
    for (int i = 0; i < s->n_groups; i++) {
        if (nv_upload_group(s, q, &s->groups[i], err) != MS_OK)
            return err->status;
        if (s->groups[i].n_rb > max_rb)
            max_rb = s->groups[i].n_rb;
    }
    if (max_rb * s->cap_docs * sizeof(float) > s->limit)
        return ms_err_set(err, MS_ERR_RUNTIME,
                          "NVIDIA path: %llu row blocks x %llu documents of partial scores "
                          "exceed one buffer; lower the block size",
                          (unsigned long long)max_rb, (unsigned long long)s->cap_docs);
    nv->docs = make_buffer(s, CL_MEM_READ_WRITE, s->cap_tokens * nv->kp * 2, "NV documents", err);
    nv->part = make_buffer(s, CL_MEM_READ_WRITE, max_rb * s->cap_docs * sizeof(float),
                           "NV partial scores", err);
    if (!nv->docs || !nv->part)
        return err->status;
    nv->on = 1;
    ms_cl_note(s->cl, "NVIDIA tensor-core path (MAXSIM_NV_MMA=1, not yet verified on a GPU): %s",
               opts);
    return MS_OK;
}

static int run_kernel(struct ms_scorer *s, cl_kernel k, cl_uint dims, const size_t *global,
                      const size_t *local, const char *what, struct ms_err *err)
{
    cl_event ev = NULL;
    cl_int rc = clEnqueueNDRangeKernel(s->cl->queue, k, dims, NULL, global, local, 0, NULL, &ev);
    if (rc != CL_SUCCESS)
        return ms_err_set(err, MS_ERR_RUNTIME, "clEnqueueNDRangeKernel(%s) failed: %s", what,
                          ms_cl_strerror(rc));
    rc = clWaitForEvents(1, &ev);
    s->last_kernel_s += event_s(ev);
    clReleaseEvent(ev);
    if (rc != CL_SUCCESS)
        return ms_err_set(err, MS_ERR_RUNTIME, "clWaitForEvents(%s) failed: %s", what,
                          ms_cl_strerror(rc));
    return MS_OK;
}

/*
 * Score documents j0 .. j0+nd-1 (rows no pair needs, see row_used, get length 0) against every
 * query group on the tensor cores; group gi's [nq][nd] scores go to sink(gi). Float16 documents
 * of dim % 16 == 0 without normalization are used as uploaded; others are converted by
 * ms_nv_prep_* into [token][kp] float16 first.
 */
typedef int (*nv_sink)(void *ctx, int gi, const float *block, struct ms_err *err);

static int nv_run_sub(struct ms_scorer *s, const struct ms_emb *docs, uint64_t j0, uint64_t nd,
                      const uint64_t *start, float *tmp, nv_sink sink, void *ctx,
                      struct ms_err *err)
{
    struct nvpath *nv = &s->nv;
    const uint64_t tok0 = docs->offsets[j0], ntok = docs->offsets[j0 + nd] - tok0;
    const size_t esize = ms_dtype_size(docs->dtype);
    const int direct = docs->dtype == MS_DTYPE_F16 && s->dim == nv->kp && !s->normalize;
    const cl_uint dim = s->dim, n_docs = (cl_uint)nd, n_tok = (cl_uint)ntok;
    const cl_int normalize = s->normalize;
    cl_command_queue qu = s->cl->queue;
    cl_mem dsrc = direct ? s->raw : nv->docs;
    cl_int rc = CL_SUCCESS;

    for (uint64_t j = 0; j < nd; j++) {
        s->h_doc_tile[j] = (uint32_t)(docs->offsets[j0 + j] - tok0); /* first token */
        s->h_doc_len[j] = row_used(start, j0 + j) ? (uint32_t)ms_emb_row_len(docs, j0 + j) : 0;
    }
    if (ntok)
        rc = clEnqueueWriteBuffer(qu, s->raw, CL_TRUE, 0, ntok * dim * esize,
                                  (const char *)docs->tokens + tok0 * dim * esize, 0, NULL, NULL);
    if (rc == CL_SUCCESS)
        rc =
            clEnqueueWriteBuffer(qu, s->doc_tile, CL_TRUE, 0, nd * 4, s->h_doc_tile, 0, NULL, NULL);
    if (rc == CL_SUCCESS)
        rc = clEnqueueWriteBuffer(qu, s->doc_len, CL_TRUE, 0, nd * 4, s->h_doc_len, 0, NULL, NULL);
    if (rc != CL_SUCCESS)
        return cl_fail(err, "clEnqueueWriteBuffer(NV documents)", rc);
    if (!direct && ntok) {
        cl_kernel prep = docs->dtype == MS_DTYPE_F16 ? nv->prep_f16 : nv->prep_f32;
        const size_t local = 64, global = ceil_div(ntok, 64) * 64;
        rc = clSetKernelArg(prep, 0, sizeof(cl_mem), &s->raw);
        rc |= clSetKernelArg(prep, 1, sizeof n_tok, &n_tok);
        rc |= clSetKernelArg(prep, 2, sizeof dim, &dim);
        rc |= clSetKernelArg(prep, 3, sizeof normalize, &normalize);
        rc |= clSetKernelArg(prep, 4, sizeof(cl_mem), &nv->docs);
        if (rc != CL_SUCCESS)
            return cl_fail(err, "clSetKernelArg(ms_nv_prep)", rc);
        if (run_kernel(s, prep, 1, &global, &local, "ms_nv_prep", err) != MS_OK)
            return err->status;
    }
    for (int gi = 0; gi < s->n_groups; gi++) {
        const struct qgroup *g = &s->groups[gi];
        const cl_uint n_rb = g->n_rb, n_q = (cl_uint)g->nq;
        const uint64_t tile_rb = (uint64_t)(4 / nv->wc) * (uint64_t)nv->mr;
        const uint64_t n_rt = ceil_div(n_rb, tile_rb);
        /* Enough work-groups to fill the device several times over, each a run of documents
         * long enough that its register-resident query fragments are reused. */
        const uint64_t want =
            8 * (uint64_t)(s->cl->info.compute_units ? s->cl->info.compute_units : 1);
        uint64_t per = n_rt ? ceil_div(nd * n_rt, want) : 1;
        cl_uint docs_per_wg;
        if (per < 1)
            per = 1;
        docs_per_wg = (cl_uint)per;
        if (n_rb) {
            const size_t local[2] = { 128, 1 };
            const size_t global[2] = { ceil_div(nd, per) * 128, n_rt };
            cl_kernel k = nv->score;
            rc = clSetKernelArg(k, 0, sizeof(cl_mem), &dsrc);
            rc |= clSetKernelArg(k, 1, sizeof(cl_mem), &s->doc_tile);
            rc |= clSetKernelArg(k, 2, sizeof(cl_mem), &s->doc_len);
            rc |= clSetKernelArg(k, 3, sizeof n_docs, &n_docs);
            rc |= clSetKernelArg(k, 4, sizeof docs_per_wg, &docs_per_wg);
            rc |= clSetKernelArg(k, 5, sizeof(cl_mem), &g->nv_q);
            rc |= clSetKernelArg(k, 6, sizeof(cl_mem), &g->nv_rb_valid);
            rc |= clSetKernelArg(k, 7, sizeof n_rb, &n_rb);
            rc |= clSetKernelArg(k, 8, sizeof(cl_mem), &nv->part);
            if (rc != CL_SUCCESS)
                return cl_fail(err, "clSetKernelArg(ms_nv_score)", rc);
            if (run_kernel(s, k, 2, global, local, "ms_nv_score", err) != MS_OK)
                return err->status;
        }
        {
            const size_t local[2] = { 64, 1 };
            const size_t global[2] = { ceil_div(nd, 64) * 64, g->nq };
            cl_kernel k = nv->sum;
            rc = clSetKernelArg(k, 0, sizeof(cl_mem), &nv->part);
            rc |= clSetKernelArg(k, 1, sizeof n_docs, &n_docs);
            rc |= clSetKernelArg(k, 2, sizeof(cl_mem), &g->nv_q_blk);
            rc |= clSetKernelArg(k, 3, sizeof n_q, &n_q);
            rc |= clSetKernelArg(k, 4, sizeof(cl_mem), &s->out);
            if (rc != CL_SUCCESS)
                return cl_fail(err, "clSetKernelArg(ms_nv_sum)", rc);
            if (g->nq && run_kernel(s, k, 2, global, local, "ms_nv_sum", err) != MS_OK)
                return err->status;
        }
        rc = clEnqueueReadBuffer(qu, s->out, CL_TRUE, 0, g->nq * nd * sizeof(float), tmp, 0, NULL,
                                 NULL);
        if (rc != CL_SUCCESS)
            return cl_fail(err, "clEnqueueReadBuffer(NV scores)", rc);
        if (sink(ctx, gi, tmp, err) != MS_OK)
            return err->status;
    }
    return MS_OK;
}

/* Upload documents j0 .. j0+nd-1 (tokens tok0 .. tok0+ntok-1 of the block) and
 * convert them into tiles. Rows no pair needs (see row_used) get no tiles and
 * length 0: they are uploaded with their neighbours (one contiguous copy) but
 * never converted. */
static int prep_docs(struct ms_scorer *s, const struct ms_emb *docs, uint64_t j0, uint64_t nd,
                     const uint64_t *start, struct ms_err *err)
{
    const uint64_t tok0 = docs->offsets[j0], ntok = docs->offsets[j0 + nd] - tok0;
    const size_t esize = ms_dtype_size(docs->dtype);
    const cl_uint dim = s->dim;
    const cl_int normalize = s->normalize;
    cl_command_queue qu = s->cl->queue;
    cl_kernel prep = docs->dtype == MS_DTYPE_F16 ? s->prep_f16 : s->prep_f32;
    cl_uint n_tiles = 0;
    cl_int rc = CL_SUCCESS;

    for (uint64_t j = 0; j < nd; j++) {
        const uint64_t len = row_used(start, j0 + j) ? ms_emb_row_len(docs, j0 + j) : 0;
        const uint64_t first = docs->offsets[j0 + j] - tok0;
        s->h_doc_tile[j] = n_tiles;
        s->h_doc_len[j] = (uint32_t)len;
        for (uint64_t t = 0; t * (uint64_t)s->tn < len; t++, n_tiles++) {
            s->h_tile_tok[n_tiles] = (uint32_t)(first + t * (uint64_t)s->tn);
            s->h_tile_cnt[n_tiles] =
                (uint32_t)(len - t * (uint64_t)s->tn < (uint64_t)s->tn ? len - t * (uint64_t)s->tn
                                                                       : (uint64_t)s->tn);
        }
    }
    if (ntok)
        rc = clEnqueueWriteBuffer(qu, s->raw, CL_TRUE, 0, ntok * dim * esize,
                                  (const char *)docs->tokens + tok0 * dim * esize, 0, NULL, NULL);
    if (rc == CL_SUCCESS && n_tiles)
        rc = clEnqueueWriteBuffer(qu, s->tile_tok, CL_TRUE, 0, n_tiles * 4, s->h_tile_tok, 0, NULL,
                                  NULL);
    if (rc == CL_SUCCESS && n_tiles)
        rc = clEnqueueWriteBuffer(qu, s->tile_cnt, CL_TRUE, 0, n_tiles * 4, s->h_tile_cnt, 0, NULL,
                                  NULL);
    if (rc == CL_SUCCESS)
        rc =
            clEnqueueWriteBuffer(qu, s->doc_tile, CL_TRUE, 0, nd * 4, s->h_doc_tile, 0, NULL, NULL);
    if (rc == CL_SUCCESS)
        rc = clEnqueueWriteBuffer(qu, s->doc_len, CL_TRUE, 0, nd * 4, s->h_doc_len, 0, NULL, NULL);
    if (rc != CL_SUCCESS)
        return cl_fail(err, "clEnqueueWriteBuffer(documents)", rc);

    if (n_tiles) {
        const size_t local = (size_t)s->tn, global = (size_t)n_tiles * (size_t)s->tn;
        rc = clSetKernelArg(prep, 0, sizeof(cl_mem), &s->raw);
        rc |= clSetKernelArg(prep, 1, sizeof(cl_mem), &s->tile_tok);
        rc |= clSetKernelArg(prep, 2, sizeof(cl_mem), &s->tile_cnt);
        rc |= clSetKernelArg(prep, 3, sizeof n_tiles, &n_tiles);
        rc |= clSetKernelArg(prep, 4, sizeof dim, &dim);
        rc |= clSetKernelArg(prep, 5, sizeof normalize, &normalize);
        rc |= clSetKernelArg(prep, 6, sizeof(cl_mem), &s->tiles);
        if (rc != CL_SUCCESS)
            return cl_fail(err, "clSetKernelArg(ms_prep)", rc);
        const int launched = run_kernel(s, prep, 1, &global, &local, "ms_prep", err);
        if (launched != MS_OK)
            return launched;
    }
    return MS_OK;
}

/* Score documents j0 .. j0+nd-1 against every query group. */
static int run_sub(struct ms_scorer *s, const struct ms_emb *docs, uint64_t j0, uint64_t nd,
                   float *scores, uint64_t ld, struct ms_err *err)
{
    const cl_uint dim = s->dim, n_docs = (cl_uint)nd;
    cl_command_queue qu = s->cl->queue;
    cl_int rc;

    if (prep_docs(s, docs, j0, nd, NULL, err) != MS_OK)
        return err->status;
    for (int gi = 0; gi < s->n_groups; gi++) {
        const struct qgroup *g = &s->groups[gi];
        const cl_uint n_q = (cl_uint)g->nq;
        const size_t local = (size_t)s->wg, global = ceil_div(nd, local) * local;
        const size_t origin[3] = { 0, 0, 0 };
        const size_t region[3] = { nd * sizeof(float), g->nq, 1 };

        rc = clSetKernelArg(s->score, 0, sizeof(cl_mem), &s->tiles);
        rc |= clSetKernelArg(s->score, 1, sizeof(cl_mem), &s->doc_tile);
        rc |= clSetKernelArg(s->score, 2, sizeof(cl_mem), &s->doc_len);
        rc |= clSetKernelArg(s->score, 3, sizeof n_docs, &n_docs);
        rc |= clSetKernelArg(s->score, 4, sizeof(cl_mem), &g->queries);
        rc |= clSetKernelArg(s->score, 5, sizeof(cl_mem), &g->q_blk);
        rc |= clSetKernelArg(s->score, 6, sizeof(cl_mem), &g->q_len);
        rc |= clSetKernelArg(s->score, 7, sizeof n_q, &n_q);
        rc |= clSetKernelArg(s->score, 8, sizeof dim, &dim);
        rc |= clSetKernelArg(s->score, 9, sizeof(cl_mem), &s->out);
        if (rc != CL_SUCCESS)
            return cl_fail(err, "clSetKernelArg(ms_score)", rc);
        const int launched = run_kernel(s, s->score, 1, &global, &local, "ms_score", err);
        if (launched != MS_OK)
            return launched;
        /* Rows of nd floats on the device, rows of ld floats in `scores`. */
        rc = clEnqueueReadBufferRect(qu, s->out, CL_TRUE, origin, origin, region,
                                     nd * sizeof(float), 0, ld * sizeof(float), 0,
                                     scores + g->q0 * ld + j0, 0, NULL, NULL);
        if (rc != CL_SUCCESS)
            return cl_fail(err, "clEnqueueReadBufferRect(scores)", rc);
    }
    return MS_OK;
}

/* The longest run of rows from j0 that fits the document buffers (unused
 * rows take raw tokens but no tiles); 0 with the error set when row j0 alone
 * does not fit. */
static uint64_t fit_sub(struct ms_scorer *s, const struct ms_emb *docs, uint64_t j0,
                        const uint64_t *start, struct ms_err *err)
{
    uint64_t nd = 0, ntok = 0, ntiles = 0;
    while (j0 + nd < docs->n_rows && nd < s->cap_docs) {
        const uint64_t len = ms_emb_row_len(docs, j0 + nd);
        const uint64_t tiles = row_used(start, j0 + nd) ? ceil_div(len, (uint64_t)s->tn) : 0;
        if (ntok + len > s->cap_tokens || ntiles + tiles > s->cap_tiles)
            break;
        ntok += len;
        ntiles += tiles;
        nd++;
    }
    if (nd == 0)
        ms_err_set(err, MS_ERR_RUNTIME,
                   "document %llu has %llu tokens: more than the buffers of '%s' hold "
                   "(%llu tokens of dim %u)",
                   (unsigned long long)(docs->first_row + j0),
                   (unsigned long long)ms_emb_row_len(docs, j0), s->cl->info.name,
                   (unsigned long long)(s->cap_tokens < s->cap_tiles * s->tn
                                            ? s->cap_tokens
                                            : s->cap_tiles * s->tn),
                   s->dim);
    return nd;
}

/* Where nv_run_sub's per-group blocks go: ms_scorer_run's score matrix, or the pairs. */
struct nv_ctx {
    struct ms_scorer *s;
    uint64_t j0, nd;
    float *scores; /* run: scores[i * ld + j] */
    uint64_t ld;
    const uint64_t *start, *order; /* pairs: as in ms_scorer_run_pairs */
    const uint32_t *pair_q, *pair_d;
    float *out;
};

static int nv_sink_run(void *ctx, int gi, const float *block, struct ms_err *err)
{
    const struct nv_ctx *c = ctx;
    const struct qgroup *g = &c->s->groups[gi];
    for (uint64_t i = 0; i < g->nq; i++)
        memcpy(c->scores + (g->q0 + i) * c->ld + c->j0, block + i * c->nd, c->nd * sizeof(float));
    return MS_OK;
}

static int nv_sink_pairs(void *ctx, int gi, const float *block, struct ms_err *err)
{
    const struct nv_ctx *c = ctx;
    const struct qgroup *g = &c->s->groups[gi];
    for (uint64_t k = c->start[c->j0]; k < c->start[c->j0 + c->nd]; k++) {
        const uint64_t p = c->order[k];
        if (c->pair_q[p] >= g->q0 && c->pair_q[p] - g->q0 < g->nq)
            c->out[p] = block[(c->pair_q[p] - g->q0) * c->nd + (c->pair_d[p] - c->j0)];
    }
    return MS_OK;
}

/* Room for one group's [nq][cap_docs] block on the host. */
static float *nv_tmp(const struct ms_scorer *s, struct ms_err *err)
{
    uint64_t most = 1;
    for (int i = 0; i < s->n_groups; i++)
        if (s->groups[i].nq > most)
            most = s->groups[i].nq;
    return ms_malloc(most * s->cap_docs * sizeof(float), err);
}

int ms_scorer_run(struct ms_scorer *s, const struct ms_emb *docs, float *scores, uint64_t ld,
                  struct ms_err *err)
{
    uint64_t j0 = 0;

    s->last_kernel_s = 0.0;
    if (docs->dim != s->dim)
        return ms_err_set(err, MS_ERR_INPUT,
                          "dim mismatch: the queries have dim %u but the documents have dim %u",
                          s->dim, docs->dim);
    if (ld < docs->n_rows)
        return ms_err_set(err, MS_ERR_INPUT, "leading dimension %llu < %llu documents",
                          (unsigned long long)ld, (unsigned long long)docs->n_rows);
    if (docs->n_rows == 0 || s->n_queries == 0)
        return MS_OK;
    if (nv_usable(s, docs)) {
        struct nv_ctx c = { .s = s, .scores = scores, .ld = ld };
        float *tmp = nv_tmp(s, err);
        int status = tmp ? MS_OK : err->status;
        while (status == MS_OK && j0 < docs->n_rows) {
            c.j0 = j0;
            c.nd = fit_sub(s, docs, j0, NULL, err);
            if (c.nd == 0 ||
                nv_run_sub(s, docs, j0, c.nd, NULL, tmp, nv_sink_run, &c, err) != MS_OK)
                status = err->status;
            j0 += c.nd;
        }
        free(tmp);
        return status;
    }
    if (s->gpu)
        return gpu_run(s->gpu, docs, scores, ld, &s->last_kernel_s, err);
    /* Greedy sub-blocks that fit the buffers; normally the whole block. */
    while (j0 < docs->n_rows) {
        const uint64_t nd = fit_sub(s, docs, j0, NULL, err);
        if (nd == 0)
            return err->status;
        if (run_sub(s, docs, j0, nd, scores, ld, err) != MS_OK)
            return err->status;
        j0 += nd;
    }
    return MS_OK;
}

/* Room for n pairs on the device, at most `most`. */
static int reserve_pairs(struct ms_scorer *s, uint64_t n, uint64_t most, struct ms_err *err)
{
    if (n > most)
        n = most;
    if (n <= s->cap_pairs)
        return MS_OK;
    release(&s->pair_q);
    release(&s->pair_d);
    release(&s->pair_out);
    s->cap_pairs = 0;
    s->pair_q = make_buffer(s, CL_MEM_READ_ONLY, n * 4, "pair queries", err);
    s->pair_d = make_buffer(s, CL_MEM_READ_ONLY, n * 4, "pair documents", err);
    s->pair_out = make_buffer(s, CL_MEM_WRITE_ONLY, n * sizeof(float), "pair scores", err);
    if (!s->pair_q || !s->pair_d || !s->pair_out)
        return err->status;
    s->cap_pairs = n;
    return MS_OK;
}

/* Score the n pairs (pq[k] in group g, pd[k] a row of the prepared
 * sub-block) into pout[k], in launches of at most cap_pairs. */
static int score_pairs(struct ms_scorer *s, const struct qgroup *g, const uint32_t *pq,
                       const uint32_t *pd, uint64_t n, float *pout, struct ms_err *err)
{
    const uint64_t most =
        s->limit / sizeof(float) < UINT32_MAX / 2 ? s->limit / sizeof(float) : UINT32_MAX / 2;
    const cl_uint dim = s->dim;
    cl_command_queue qu = s->cl->queue;
    cl_kernel k = s->score_pairs;
    cl_int rc;

    /* Grow geometrically: rerank's blocks bring pair lists of varying length. */
    if (n > s->cap_pairs &&
        reserve_pairs(s, n < 2 * s->cap_pairs ? 2 * s->cap_pairs : n, most, err) != MS_OK)
        return err->status;
    for (uint64_t p0 = 0; p0 < n; p0 += s->cap_pairs) {
        const uint64_t np = n - p0 < s->cap_pairs ? n - p0 : s->cap_pairs;
        const cl_uint n_pairs = (cl_uint)np;
        const size_t local = (size_t)s->wg, global = ceil_div(np, local) * local;

        rc = clEnqueueWriteBuffer(qu, s->pair_q, CL_TRUE, 0, np * 4, pq + p0, 0, NULL, NULL);
        if (rc == CL_SUCCESS)
            rc = clEnqueueWriteBuffer(qu, s->pair_d, CL_TRUE, 0, np * 4, pd + p0, 0, NULL, NULL);
        if (rc != CL_SUCCESS)
            return cl_fail(err, "clEnqueueWriteBuffer(pairs)", rc);
        rc = clSetKernelArg(k, 0, sizeof(cl_mem), &s->tiles);
        rc |= clSetKernelArg(k, 1, sizeof(cl_mem), &s->doc_tile);
        rc |= clSetKernelArg(k, 2, sizeof(cl_mem), &s->doc_len);
        rc |= clSetKernelArg(k, 3, sizeof(cl_mem), &g->queries);
        rc |= clSetKernelArg(k, 4, sizeof(cl_mem), &g->q_blk);
        rc |= clSetKernelArg(k, 5, sizeof(cl_mem), &g->q_len);
        rc |= clSetKernelArg(k, 6, sizeof(cl_mem), &s->pair_q);
        rc |= clSetKernelArg(k, 7, sizeof(cl_mem), &s->pair_d);
        rc |= clSetKernelArg(k, 8, sizeof n_pairs, &n_pairs);
        rc |= clSetKernelArg(k, 9, sizeof dim, &dim);
        rc |= clSetKernelArg(k, 10, sizeof(cl_mem), &s->pair_out);
        if (rc != CL_SUCCESS)
            return cl_fail(err, "clSetKernelArg(ms_score_pairs)", rc);
        const int launched = run_kernel(s, k, 1, &global, &local, "ms_score_pairs", err);
        if (launched != MS_OK)
            return launched;
        rc = clEnqueueReadBuffer(qu, s->pair_out, CL_TRUE, 0, np * sizeof(float), pout + p0, 0,
                                 NULL, NULL);
        if (rc != CL_SUCCESS)
            return cl_fail(err, "clEnqueueReadBuffer(pair scores)", rc);
    }
    return MS_OK;
}

/*
 * The pairs are bucketed by document (a stable counting sort, so that the
 * pairs of one document are neighbours whatever order the caller used), then
 * the block is walked in greedy sub-blocks as by ms_scorer_run, skipping rows
 * no pair needs; each sub-block is prepared once and its pairs scored group
 * by group. Every pair is scored by ms_pair_score from the same prepared
 * data as ms_score uses, so the scores are those of ms_scorer_run, bit for bit.
 */
int ms_scorer_run_pairs(struct ms_scorer *s, const struct ms_emb *docs, const uint32_t *pair_q,
                        const uint32_t *pair_d, uint64_t n_pairs, float *out, struct ms_err *err)
{
    uint64_t *start = NULL, *order = NULL;
    uint32_t *pq = NULL, *pd = NULL;
    float *pout = NULL, *tmp = NULL;
    uint64_t j0 = 0;
    int status = MS_OK;
    const int nv = nv_usable(s, docs);

    s->last_kernel_s = 0.0;
    if (docs->dim != s->dim)
        return ms_err_set(err, MS_ERR_INPUT,
                          "dim mismatch: the queries have dim %u but the documents have dim %u",
                          s->dim, docs->dim);
    if (n_pairs == 0)
        return MS_OK;
    for (uint64_t p = 0; p < n_pairs; p++)
        if (pair_q[p] >= s->n_queries || pair_d[p] >= docs->n_rows)
            return ms_err_set(err, MS_ERR_INPUT,
                              "pair %llu is (query %u, document %u): out of range (%llu queries, "
                              "%llu documents)",
                              (unsigned long long)p, pair_q[p], pair_d[p],
                              (unsigned long long)s->n_queries, (unsigned long long)docs->n_rows);
    if (s->gpu && !nv)
        return gpu_run_pairs(s->gpu, docs, pair_q, pair_d, n_pairs, out, &s->last_kernel_s, err);
    /* Counting sort: order[start[j] .. start[j+1]-1] are the pairs of row j,
     * in the caller's order. */
    if (!(start = ms_calloc(docs->n_rows + 2, sizeof *start, err)) ||
        !(order = ms_malloc(n_pairs * sizeof *order, err)) ||
        !(pq = ms_malloc(n_pairs * sizeof *pq, err)) ||
        !(pd = ms_malloc(n_pairs * sizeof *pd, err)) ||
        !(pout = ms_malloc(n_pairs * sizeof *pout, err))) {
        status = err->status;
        goto done;
    }
    for (uint64_t p = 0; p < n_pairs; p++)
        start[pair_d[p] + 2]++;
    for (uint64_t j = 0; j < docs->n_rows; j++)
        start[j + 2] += start[j + 1];
    for (uint64_t p = 0; p < n_pairs; p++)
        order[start[pair_d[p] + 1]++] = p;

    while (j0 < docs->n_rows) {
        uint64_t nd;
        if (!row_used(start, j0)) {
            j0++;
            continue;
        }
        nd = fit_sub(s, docs, j0, start, err);
        if (nd == 0) {
            status = err->status;
            goto done;
        }
        while (!row_used(start, j0 + nd - 1)) /* trailing rows no pair needs */
            nd--;
        if (nv) {
            /* Tensor-core path: every query of a group against the sub-block's used rows,
             * then the pairs picked out; the same kernel and data as ms_scorer_run, so the
             * same bits (scores the pairs do not name are wasted work: see kernel-notes). */
            struct nv_ctx c = { .s = s,
                                .j0 = j0,
                                .nd = nd,
                                .start = start,
                                .order = order,
                                .pair_q = pair_q,
                                .pair_d = pair_d,
                                .out = out };
            if ((!tmp && !(tmp = nv_tmp(s, err))) ||
                nv_run_sub(s, docs, j0, nd, start, tmp, nv_sink_pairs, &c, err) != MS_OK) {
                status = err->status;
                goto done;
            }
            j0 += nd;
            continue;
        }
        if (prep_docs(s, docs, j0, nd, start, err) != MS_OK) {
            status = err->status;
            goto done;
        }
        for (int gi = 0; gi < s->n_groups; gi++) {
            const struct qgroup *g = &s->groups[gi];
            uint64_t n = 0;
            for (uint64_t k = start[j0]; k < start[j0 + nd]; k++) {
                const uint64_t p = order[k];
                if (pair_q[p] < g->q0 || pair_q[p] - g->q0 >= g->nq)
                    continue;
                pq[n] = (uint32_t)(pair_q[p] - g->q0);
                pd[n] = (uint32_t)(pair_d[p] - j0);
                n++;
            }
            if (n == 0)
                continue;
            if (score_pairs(s, g, pq, pd, n, pout, err) != MS_OK) {
                status = err->status;
                goto done;
            }
            n = 0;
            for (uint64_t k = start[j0]; k < start[j0 + nd]; k++) {
                const uint64_t p = order[k];
                if (pair_q[p] >= g->q0 && pair_q[p] - g->q0 < g->nq)
                    out[p] = pout[n++];
            }
        }
        j0 += nd;
    }
done:
    free(tmp);
    free(start);
    free(order);
    free(pq);
    free(pd);
    free(pout);
    return status;
}

double ms_scorer_last_kernel_s(const struct ms_scorer *s)
{
    return s->last_kernel_s;
}

void ms_scorer_free(struct ms_scorer *s)
{
    if (!s)
        return;
    nv_release(s);
    gpu_release(s->gpu);
    for (int i = 0; i < s->n_groups; i++) {
        release(&s->groups[i].queries);
        release(&s->groups[i].q_blk);
        release(&s->groups[i].q_len);
    }
    free(s->groups);
    release(&s->raw);
    release(&s->tiles);
    release(&s->tile_tok);
    release(&s->tile_cnt);
    release(&s->doc_tile);
    release(&s->doc_len);
    release(&s->out);
    release(&s->pair_q);
    release(&s->pair_d);
    release(&s->pair_out);
    if (s->score)
        clReleaseKernel(s->score);
    if (s->score_pairs)
        clReleaseKernel(s->score_pairs);
    if (s->prep_f32)
        clReleaseKernel(s->prep_f32);
    if (s->prep_f16)
        clReleaseKernel(s->prep_f16);
    if (s->prog)
        clReleaseProgram(s->prog);
    free(s->h_tile_tok);
    free(s->h_tile_cnt);
    free(s->h_doc_tile);
    free(s->h_doc_len);
    free(s);
}
