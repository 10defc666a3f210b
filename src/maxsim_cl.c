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
 * On NVIDIA devices of compute capability >= 8.0 the tensor-core path (src/maxsim_nv.c,
 * kernels/maxsim_nv.cl) scores instead, chosen once per scorer by ms_nv_wanted and per block by
 * ms_nv_usable; this file keeps the groups, capacities and sub-blocks both paths share.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "maxsim_gpu.h"
#include "maxsim_priv.h"
#include "stream.h" /* ms_now */

#define DEFAULT_TN 16 /* tokens per tile: one AVX-512 vector; little padding for short docs */
#define DEFAULT_QB 8  /* query tokens per register block */
#define DEFAULT_WG 1  /* documents per work-group */

static cl_mem make_buffer(struct ms_scorer *s, cl_mem_flags flags, size_t bytes, const char *what,
                          struct ms_err *err)
{
    return ms_cl_buffer(s->cl, flags, bytes, NULL, what, err);
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

static int build(struct ms_scorer *s, struct ms_err *err)
{
    char opts[256];

    snprintf(opts, sizeof opts, "-cl-std=CL1.2 -DMS_TN=%d -DMS_QB=%d%s", s->tn, s->qb,
             s->cl->info.is_nvidia ? " -DMS_NVIDIA=1" : "");
    if (ms_cl_program(s->cl, "maxsim.cl", opts, &s->prog, err) != MS_OK)
        return err->status;
    if (ms_cl_kernel(s->prog, "ms_prep_f32", &s->prep_f32, err) != MS_OK ||
        ms_cl_kernel(s->prog, "ms_prep_f16", &s->prep_f16, err) != MS_OK ||
        ms_cl_kernel(s->prog, "ms_score", &s->score, err) != MS_OK ||
        ms_cl_kernel(s->prog, "ms_score_pairs", &s->score_pairs, err) != MS_OK)
        return err->status;
    return MS_OK;
}

/* A private copy of e (offsets and tokens), for what must outlive the caller's. */
static int emb_copy(struct ms_emb *out, const struct ms_emb *e, struct ms_err *err)
{
    const uint64_t nt = ms_emb_n_tokens(e);
    ms_emb_init(out);
    if (ms_emb_reserve(out, e->dtype, e->dim, e->n_rows, nt, err) != MS_OK)
        return err->status;
    out->first_row = e->first_row;
    memcpy(out->offsets, e->offsets, (e->n_rows + 1) * sizeof *out->offsets);
    memcpy(out->tokens, e->tokens, nt * e->dim * ms_dtype_size(e->dtype));
    return MS_OK;
}

/* Padded query tokens of queries a .. b-1. */
static uint64_t padded_tokens(const struct ms_scorer *s, const struct ms_emb *q, uint64_t a,
                              uint64_t b)
{
    uint64_t n = 0;
    for (uint64_t i = a; i < b; i++)
        n += ms_ceil_div(ms_emb_row_len(q, i), (uint64_t)s->qb) * (uint64_t)s->qb;
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
            const double scale = s->normalize ? ms_emb_inv_norm(q, tok) : 1.0;
            for (uint32_t k = 0; k < s->dim; k++)
                dst[k] = (float)(ms_emb_value(q, tok, k) * scale);
        }
        row += ms_ceil_div(n, (uint64_t)s->qb) * (uint64_t)s->qb;
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
        status = ms_cl_fail(err, "clEnqueueWriteBuffer(queries)", rc);
done:
    free(host);
    free(blk);
    free(len);
    return status;
}

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
    ms_emb_init(&s->base_q);
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
    /* -v: where making the first scorer went (on the H200 0.007-0.08 s, on the critical path) */
    const double t_begin = ms_now();
    /* Under the tensor cores the portable program and its queries wait until a block needs
     * them (on the H200 they were 0.05-0.08 s of a scorer's 0.09 s, for no block). */
    const int nv_wanted = ms_nv_wanted(cl, queries, opts);
    if (nv_wanted ? emb_copy(&s->base_q, queries, err) != MS_OK : build(s, err) != MS_OK)
        goto fail;
    const double t_built = ms_now();

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
                ms_ceil_div(ms_emb_row_len(queries, q + n), (uint64_t)s->qb) * (uint64_t)s->qb;
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
        if (!nv_wanted && upload_group(s, queries, g, err) != MS_OK)
            goto fail;
        if (n > max_group_nq)
            max_group_nq = n;
        q += n;
    }

    const double t_queries = ms_now();
    /* Document buffers: the tiled copy pads each document to a multiple of
     * TN tokens, so it needs at most max_tokens / TN + max_docs tiles. */
    tile_bytes = (uint64_t)s->tn * s->dim * sizeof(float);
    raw_tok = opts->max_tokens ? opts->max_tokens : 1;
    if (raw_tok * s->dim * sizeof(float) > limit)
        raw_tok = limit / (s->dim * sizeof(float));
    s->cap_tokens = raw_tok;
    s->cap_tiles =
        ms_ceil_div(opts->max_tokens ? opts->max_tokens : 1, (uint64_t)s->tn) + s->cap_docs;
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
    s->out = make_buffer(s, CL_MEM_READ_WRITE /* read by topk.cl */,
                         max_group_nq * s->cap_docs * sizeof(float), "scores", err);
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
    s->variant = opts->variant;
    const double t_buffers = ms_now();
    snprintf(s->path, sizeof s->path, "portable kernels (tile %d tokens, query block %d)", s->tn,
             s->qb);
    s->base_ready = !nv_wanted;
    if (nv_wanted && ms_nv_create(s, queries, err) != MS_OK)
        goto fail;
    if (opts->precision == MS_PREC_F8 && !s->nv.on) {
        ms_err_set(err, MS_ERR_INPUT,
                   "--precision f8 needs the tensor cores of an NVIDIA GPU of compute capability "
                   "8.9 or more, and '%s' is not one (use exact or f16)",
                   cl->info.name);
        goto fail;
    }
    if (opts->precision == MS_PREC_I8 && !s->nv.on) {
        ms_err_set(err, MS_ERR_INPUT,
                   "--precision int8 needs the tensor cores of an NVIDIA GPU of compute capability "
                   "8.0 or more (MAXSIM_NV_MMA not 0) and dim <= 512, and '%s' with dim %u is not "
                   "that (use exact or f16)",
                   cl->info.name, s->dim);
        goto fail;
    }
    if (opts->precision == MS_PREC_TF32 && !s->nv.on) {
        ms_err_set(err, MS_ERR_INPUT,
                   "--precision tf32 needs the tensor cores of an NVIDIA GPU of compute capability "
                   "8.0 or more (MAXSIM_NV_MMA not 0) and dim <= 256, and '%s' with dim %u is not "
                   "that (use exact)",
                   cl->info.name, s->dim);
        goto fail;
    }
    /* Under the tensor cores every block of one corpus takes them (a corpus has one dtype), so
     * the portable GPU kernel is built only where they do not score: no program and no buffers
     * that a run would never use. */
    if (!s->nv.on && gpu_wanted(cl) && gpu_create(&s->gpu, cl, queries, opts, err) != MS_OK)
        goto fail;
    if (s->gpu && !s->nv.on)
        snprintf(s->path, sizeof s->path, "%s", gpu_describe(s->gpu));
    if (!s->nv.on)
        ms_cl_note(cl, "scorer: %s", s->path);
    const double t_end = ms_now();
    if (!strstr(cl->notes, "scorer made in")) /* the first of a run's scorers on this device */
        ms_cl_note(
            cl,
            "scorer made in %.3f s: programs %.3f s, queries to the device %.3f s (%llu in %d "
            "group%s), document buffers %.3f s, %s %.3f s",
            t_end - t_begin, t_built - t_begin, t_queries - t_built,
            (unsigned long long)s->n_queries, s->n_groups, s->n_groups == 1 ? "" : "s",
            t_buffers - t_queries,
            s->nv.on ? "tensor-core setup (programs, queries, buffers)"
            : s->gpu ? "portable GPU kernel setup"
                     : "the rest",
            t_end - t_buffers);
    *out = s;
    return MS_OK;
fail:
    ms_scorer_free(s);
    return err->status ? err->status : MS_ERR_RUNTIME;
}

/* The portable program and query groups, made on first need when the scorer deferred them. */
static int ensure_base(struct ms_scorer *s, struct ms_err *err)
{
    if (s->base_ready)
        return MS_OK;
    if (build(s, err) != MS_OK)
        return err->status;
    for (int i = 0; i < s->n_groups; i++)
        if (upload_group(s, &s->base_q, &s->groups[i], err) != MS_OK)
            return err->status;
    s->base_ready = 1;
    ms_emb_release(&s->base_q);
    return MS_OK;
}

static int run_kernel(struct ms_scorer *s, cl_kernel k, cl_uint dims, const size_t *global,
                      const size_t *local, const char *what, struct ms_err *err)
{
    return ms_cl_launch(s->cl, k, dims, global, local, what, &s->last_kernel_s, err);
}

/* Upload documents j0 .. j0+nd-1 (tokens tok0 .. tok0+ntok-1 of the block) and
 * convert them into tiles. Rows no pair needs (see ms_row_used) get no tiles and
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
        const uint64_t len = ms_row_used(start, j0 + j) ? ms_emb_row_len(docs, j0 + j) : 0;
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
    if (ntok) {
        if (ms_cl_write(s->cl, s->raw, ntok * dim * esize,
                        (const char *)docs->tokens + tok0 * dim * esize, &s->last_upload_s,
                        "documents", err) != MS_OK)
            return err->status;
        s->last_upload_bytes += ntok * dim * esize;
    }
    if (n_tiles)
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
        return ms_cl_fail(err, "clEnqueueWriteBuffer(documents)", rc);

    if (n_tiles) {
        const size_t local = (size_t)s->tn, global = (size_t)n_tiles * (size_t)s->tn;
        if (MS_CL_SET_ARGS(prep, "ms_prep", err, MS_ARG(s->raw), MS_ARG(s->tile_tok),
                           MS_ARG(s->tile_cnt), MS_ARG(n_tiles), MS_ARG(dim), MS_ARG(normalize),
                           MS_ARG(s->tiles)) != MS_OK)
            return err->status;
        const int launched = run_kernel(s, prep, 1, &global, &local, "ms_prep", err);
        if (launched != MS_OK)
            return launched;
    }
    return MS_OK;
}

/* Score documents j0 .. j0+nd-1 against every query group. */
static int run_sub(struct ms_scorer *s, const struct ms_emb *docs, uint64_t j0, uint64_t nd,
                   float *scores, uint64_t ld, struct ms_topk_sink *sink, struct ms_err *err)
{
    const cl_uint dim = s->dim, n_docs = (cl_uint)nd;
    cl_command_queue qu = s->cl->queue;
    cl_int rc;

    if (prep_docs(s, docs, j0, nd, NULL, err) != MS_OK)
        return err->status;
    for (int gi = 0; gi < s->n_groups; gi++) {
        const struct qgroup *g = &s->groups[gi];
        const cl_uint n_q = (cl_uint)g->nq;
        const size_t local = (size_t)s->wg, global = ms_ceil_div(nd, local) * local;
        const size_t origin[3] = { 0, 0, 0 };
        const size_t region[3] = { nd * sizeof(float), g->nq, 1 };

        if (MS_CL_SET_ARGS(s->score, "ms_score", err, MS_ARG(s->tiles), MS_ARG(s->doc_tile),
                           MS_ARG(s->doc_len), MS_ARG(n_docs), MS_ARG(g->queries), MS_ARG(g->q_blk),
                           MS_ARG(g->q_len), MS_ARG(n_q), MS_ARG(dim), MS_ARG(s->out)) != MS_OK)
            return err->status;
        const int launched = run_kernel(s, s->score, 1, &global, &local, "ms_score", err);
        if (launched != MS_OK)
            return launched;
        if (sink) { /* s->out is [g->nq][nd]: only its top k come back */
            if (ms_topk_sink_put(sink, s->out, g->q0, g->nq, j0, nd, &s->last_kernel_s, err) !=
                MS_OK)
                return err->status;
            continue;
        }
        /* Rows of nd floats on the device, rows of ld floats in `scores`. */
        rc = clEnqueueReadBufferRect(qu, s->out, CL_TRUE, origin, origin, region,
                                     nd * sizeof(float), 0, ld * sizeof(float), 0,
                                     scores + g->q0 * ld + j0, 0, NULL, NULL);
        if (rc != CL_SUCCESS)
            return ms_cl_fail(err, "clEnqueueReadBufferRect(scores)", rc);
    }
    return MS_OK;
}

/* The longest run of rows from j0 that fits the document buffers (unused
 * rows take raw tokens but no tiles); 0 with the error set when row j0 alone
 * does not fit. */
uint64_t ms_scorer_fit(struct ms_scorer *s, const struct ms_emb *docs, uint64_t j0,
                       const uint64_t *start, struct ms_err *err)
{
    uint64_t nd = 0, ntok = 0, ntiles = 0;
    while (j0 + nd < docs->n_rows && nd < s->cap_docs) {
        const uint64_t len = ms_emb_row_len(docs, j0 + nd);
        const uint64_t tiles = ms_row_used(start, j0 + nd) ? ms_ceil_div(len, (uint64_t)s->tn) : 0;
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

/* ms_scorer_run, or with a sink ms_scorer_run_topk: the scores of every query group and
 * sub-block go to the sink instead of `scores`. */
static int run_block(struct ms_scorer *s, const struct ms_emb *docs, float *scores, uint64_t ld,
                     struct ms_topk_sink *sink, struct ms_err *err)
{
    uint64_t j0 = 0;

    s->last_kernel_s = s->last_upload_s = 0.0;
    s->last_upload_bytes = 0;
    if (docs->dim != s->dim)
        return ms_err_set(err, MS_ERR_INPUT,
                          "dim mismatch: the queries have dim %u but the documents have dim %u",
                          s->dim, docs->dim);
    if (ld < docs->n_rows)
        return ms_err_set(err, MS_ERR_INPUT, "leading dimension %llu < %llu documents",
                          (unsigned long long)ld, (unsigned long long)docs->n_rows);
    if (docs->n_rows == 0 || s->n_queries == 0)
        return MS_OK;
    if (ms_nv_usable(s, docs))
        return ms_nv_run(s, docs, scores, ld, sink, err);
    if (s->gpu) {
        double u0, u1;
        uint64_t b0, b1;
        gpu_uploads(s->gpu, &u0, &b0);
        const int rc = gpu_run(s->gpu, docs, scores, ld, sink, &s->last_kernel_s, err);
        gpu_uploads(s->gpu, &u1, &b1);
        s->last_upload_s = u1 - u0;
        s->last_upload_bytes = b1 - b0;
        return rc;
    }
    if (ensure_base(s, err) != MS_OK)
        return err->status;
    /* Greedy sub-blocks that fit the buffers; normally the whole block. */
    while (j0 < docs->n_rows) {
        const uint64_t nd = ms_scorer_fit(s, docs, j0, NULL, err);
        if (nd == 0)
            return err->status;
        if (run_sub(s, docs, j0, nd, scores, ld, sink, err) != MS_OK)
            return err->status;
        j0 += nd;
    }
    return MS_OK;
}

int ms_scorer_run(struct ms_scorer *s, const struct ms_emb *docs, float *scores, uint64_t ld,
                  struct ms_err *err)
{
    return run_block(s, docs, scores, ld, NULL, err);
}

/* Release a finished (or abandoned) entry's events; with wait, first wait for them and take
 * its kernel time, a failure into its result. */
static void inflight_settle(struct inflight *f, int wait)
{
    cl_event all[2 * MS_INFLIGHT_EVENTS];
    int n = 0;
    for (int i = 0; i < f->n_kev; i++)
        all[n++] = f->kev[i];
    for (int i = 0; i < f->n_rev; i++)
        all[n++] = f->rev[i];
    if (wait && n && f->rc == MS_OK) {
        const cl_int rc = clWaitForEvents((cl_uint)n, all);
        if (rc != CL_SUCCESS)
            f->rc = ms_cl_fail(&f->err, "scoring a block (kernels, read-back)", rc);
        for (int i = 0; rc == CL_SUCCESS && i < f->n_kev; i++)
            f->kernel_s += ms_cl_event_s(f->kev[i]);
    }
    for (int i = 0; i < n; i++)
        clReleaseEvent(all[i]);
    f->n_kev = f->n_rev = 0;
}

int ms_scorer_start(struct ms_scorer *s, const struct ms_emb *docs, float *scores, uint64_t ld,
                    struct ms_err *err)
{
    if (s->n_inflight == 2)
        return ms_err_set(err, MS_ERR_RUNTIME,
                          "internal: a third block started before the "
                          "first was finished");
    struct inflight *f = &s->inflight[(s->first_inflight + s->n_inflight) % 2];
    memset(f, 0, sizeof *f);
    s->n_inflight++;
    if (docs->dim == s->dim && ld >= docs->n_rows && s->n_queries > 0 && ms_nv_can_start(s, docs)) {
        s->rec = f;
        f->rc = ms_nv_start(s, docs, scores, ld, &f->err);
        s->rec = NULL;
        if (f->rc != MS_OK) /* what was enqueued runs out before the buffers can go */
            clFinish(s->cl->queue);
    } else { /* the whole block now, its result kept for finish */
        f->rc = run_block(s, docs, scores, ld, NULL, &f->err);
        f->kernel_s = s->last_kernel_s;
        f->upload_s = s->last_upload_s;
        f->upload_bytes = s->last_upload_bytes;
    }
    (void)err; /* a failure is reported by ms_scorer_finish, in order */
    return MS_OK;
}

int ms_scorer_finish(struct ms_scorer *s, struct ms_err *err)
{
    if (s->n_inflight == 0)
        return ms_err_set(err, MS_ERR_RUNTIME, "internal: no block started to finish");
    struct inflight *f = &s->inflight[s->first_inflight];
    s->first_inflight = (s->first_inflight + 1) % 2;
    s->n_inflight--;
    inflight_settle(f, 1);
    s->last_kernel_s = f->kernel_s;
    s->last_upload_s = f->upload_s;
    s->last_upload_bytes = f->upload_bytes;
    if (f->rc != MS_OK)
        *err = f->err;
    return f->rc;
}

uint32_t ms_scorer_topk_max(const struct ms_scorer *s)
{
    return ms_topk_cl_usable(s->cl) ? MS_TOPK_CL_MAX_K : 0;
}

int ms_scorer_topk_prepare(struct ms_scorer *s, struct ms_err *err)
{
    return s->topk ? MS_OK : ms_topk_cl_create(&s->topk, s->cl, err);
}

int ms_scorer_run_topk(struct ms_scorer *s, const struct ms_emb *docs, uint32_t k,
                       float *top_scores, uint32_t *top_idx, struct ms_err *err)
{
    struct ms_topk_sink sink = { .k = k, .score = top_scores, .idx = top_idx };

    if (k == 0 || k > ms_scorer_topk_max(s))
        return ms_err_set(err, MS_ERR_INPUT, "device top-k: k=%u is not in 1..%u on '%s'", k,
                          ms_scorer_topk_max(s), s->cl->info.name);
    if (docs->n_rows >= UINT32_MAX)
        return ms_err_set(err, MS_ERR_INPUT, "device top-k: a block of %llu documents is too large",
                          (unsigned long long)docs->n_rows);
    if (ms_scorer_topk_prepare(s, err) != MS_OK)
        return err->status;
    if (!s->topk_count &&
        !(s->topk_count = ms_malloc((s->n_queries ? s->n_queries : 1) * sizeof(uint32_t), err)))
        return err->status;
    memset(s->topk_count, 0, (s->n_queries ? s->n_queries : 1) * sizeof(uint32_t));
    sink.dev = s->topk;
    sink.count = s->topk_count;
    return run_block(s, docs, NULL, docs->n_rows, &sink, err);
}

/* Room for n pairs on the device, at most `most`. */
static int reserve_pairs(struct ms_scorer *s, uint64_t n, uint64_t most, struct ms_err *err)
{
    if (n > most)
        n = most;
    if (n <= s->cap_pairs)
        return MS_OK;
    ms_cl_release(&s->pair_q);
    ms_cl_release(&s->pair_d);
    ms_cl_release(&s->pair_out);
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
        const size_t local = (size_t)s->wg, global = ms_ceil_div(np, local) * local;

        rc = clEnqueueWriteBuffer(qu, s->pair_q, CL_TRUE, 0, np * 4, pq + p0, 0, NULL, NULL);
        if (rc == CL_SUCCESS)
            rc = clEnqueueWriteBuffer(qu, s->pair_d, CL_TRUE, 0, np * 4, pd + p0, 0, NULL, NULL);
        if (rc != CL_SUCCESS)
            return ms_cl_fail(err, "clEnqueueWriteBuffer(pairs)", rc);
        if (MS_CL_SET_ARGS(k, "ms_score_pairs", err, MS_ARG(s->tiles), MS_ARG(s->doc_tile),
                           MS_ARG(s->doc_len), MS_ARG(g->queries), MS_ARG(g->q_blk),
                           MS_ARG(g->q_len), MS_ARG(s->pair_q), MS_ARG(s->pair_d), MS_ARG(n_pairs),
                           MS_ARG(dim), MS_ARG(s->pair_out)) != MS_OK)
            return err->status;
        const int launched = run_kernel(s, k, 1, &global, &local, "ms_score_pairs", err);
        if (launched != MS_OK)
            return launched;
        rc = clEnqueueReadBuffer(qu, s->pair_out, CL_TRUE, 0, np * sizeof(float), pout + p0, 0,
                                 NULL, NULL);
        if (rc != CL_SUCCESS)
            return ms_cl_fail(err, "clEnqueueReadBuffer(pair scores)", rc);
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
    float *pout = NULL;
    uint64_t j0 = 0;
    int status = MS_OK;
    const int nv = ms_nv_usable(s, docs);

    s->last_kernel_s = s->last_upload_s = 0.0;
    s->last_upload_bytes = 0;
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
    if (s->gpu && !nv) {
        double u0, u1;
        uint64_t b0, b1;
        gpu_uploads(s->gpu, &u0, &b0);
        const int rc =
            gpu_run_pairs(s->gpu, docs, pair_q, pair_d, n_pairs, out, &s->last_kernel_s, err);
        gpu_uploads(s->gpu, &u1, &b1);
        s->last_upload_s = u1 - u0;
        s->last_upload_bytes = b1 - b0;
        return rc;
    }
    if (!nv && ensure_base(s, err) != MS_OK)
        return err->status;
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
        if (!ms_row_used(start, j0)) {
            j0++;
            continue;
        }
        nd = ms_scorer_fit(s, docs, j0, start, err);
        if (nd == 0) {
            status = err->status;
            goto done;
        }
        while (!ms_row_used(start, j0 + nd - 1)) /* trailing rows no pair needs */
            nd--;
        if (nv) {
            /* Tensor-core path: every query of a group against the sub-block's used rows,
             * then the pairs picked out; the same kernel and data as ms_scorer_run, so the
             * same bits (scores the pairs do not name are wasted work). */
            if (ms_nv_run_pairs(s, docs, j0, nd, start, order, pair_q, pair_d, out, err) != MS_OK) {
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
    free(start);
    free(order);
    free(pq);
    free(pd);
    free(pout);
    return status;
}

const char *ms_scorer_path(const struct ms_scorer *s)
{
    return s->path;
}

void ms_scorer_last_upload(const struct ms_scorer *s, double *seconds, uint64_t *bytes)
{
    *seconds = s->last_upload_s;
    *bytes = s->last_upload_bytes;
}

double ms_scorer_last_kernel_s(const struct ms_scorer *s)
{
    return s->last_kernel_s;
}

void ms_scorer_free(struct ms_scorer *s)
{
    if (!s)
        return;
    if (s->n_inflight) { /* abandoned after an error: nothing may still write the buffers */
        clFinish(s->cl->queue);
        for (int i = 0; i < s->n_inflight; i++)
            inflight_settle(&s->inflight[(s->first_inflight + i) % 2], 0);
    }
    if (s->copy_q) {
        clFinish(s->copy_q);
        clReleaseCommandQueue(s->copy_q);
    }
    ms_cl_release(&s->raw2);
    ms_cl_release(&s->doc_tile2);
    ms_cl_release(&s->doc_len2);
    ms_nv_release(s);
    gpu_release(s->gpu);
    ms_topk_cl_free(s->topk);
    free(s->topk_count);
    for (int i = 0; i < s->n_groups; i++) {
        ms_cl_release(&s->groups[i].queries);
        ms_cl_release(&s->groups[i].q_blk);
        ms_cl_release(&s->groups[i].q_len);
    }
    free(s->groups);
    ms_cl_release(&s->raw);
    ms_cl_release(&s->tiles);
    ms_cl_release(&s->tile_tok);
    ms_cl_release(&s->tile_cnt);
    ms_cl_release(&s->doc_tile);
    ms_cl_release(&s->doc_len);
    ms_cl_release(&s->out);
    ms_cl_release(&s->pair_q);
    ms_cl_release(&s->pair_d);
    ms_cl_release(&s->pair_out);
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
    ms_emb_release(&s->base_q);
    free(s);
}
