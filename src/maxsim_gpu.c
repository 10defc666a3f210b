/*
 * maxsim_gpu.c - the portable GPU path: host side of kernels/maxsim_gpu.cl.
 *
 * gpu_create picks the kernel's tiling from the device limits (local memory, work-group size,
 * compute units) and the number of query rows, builds the program, and uploads the queries as
 * float32 rows transposed ([KP][rows], every query token of a group back to back, zero-padded to
 * a multiple of the row tile). gpu_run walks a document block in sub-blocks that fit its buffers:
 * upload the tokens as they are (float16 or float32), msg_norm_* when normalizing, then per query
 * group msg_score (the per-row maxima, [doc][row]) and msg_sum (a query's rows added in token
 * order), and read the [nq][nd] scores back. gpu_run_pairs uploads the sub-blocks that hold the
 * pairs' documents and scores a work list of the (row tile, document) pairs its pairs need with
 * the same kernel body (msg_score_list_*), then msg_sum_pairs: bit for bit what gpu_run gives,
 * with work proportional to the pairs.
 *
 * No score depends on the sub-blocks, the query groups or the tiling: each dot product is one
 * fma chain in k order, the max is exact, and msg_sum adds in token order (kernels/maxsim_gpu.cl).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "maxsim_gpu.h"
#include "tune.h"

/* One query group: its rows (tokens) transposed on the device. */
struct gpu_group {
    uint64_t q0, nq;     /* queries q0 .. q0+nq-1 of the batch */
    uint32_t rows;       /* padded to a multiple of the row tile */
    cl_mem qt;           /* [KP][rows] float32 */
    cl_mem q_row, q_len; /* [nq]: first row and token count of each query */
};

/* The kernel's tiling (build options) and launch shape. */
struct gpu_variant {
    int tm, tn; /* rows and document tokens per work-item (4, 8, 12 or 16) */
    int rx, cx; /* work-items per row tile column and row: the work-group is rx * cx */
    int bk;     /* dims per staged slice (8..64, a multiple of 8) */
    int qres;   /* the whole query tile stays in __local (when it fits) */
    int wgmul;  /* work-groups to aim for per compute unit (0: one document per work-group) */
    int pf;     /* fetch the next document slice while multiplying the current one */
    int split;  /* work-groups that share each document's chunks (their maxima meet in msg_sum) */
    int db;     /* double-buffered __local slices: one barrier a slice, query slices prefetched */
    int regs;   /* registers a work-item at most (-cl-nv-maxrregcount where the device takes it;
                   0: the compiler's choice) */
    int ld;     /* float16 documents: 0 vloada_half8, 1 one 16-byte integer load each 8 values */
};

struct ms_gpu {
    struct ms_cl *cl;
    double upload_s;       /* document uploads so far: event time, for -v */
    uint64_t upload_bytes; /* and bytes */
    cl_program prog;
    cl_kernel norm_f16, norm_f32, score_f16, score_f32, sum;
    cl_kernel list_f16, list_f32, sum_pairs; /* pairs: a work list of (row tile, document) */
    struct gpu_variant v;
    int normalize;
    uint32_t dim, kp, bm;
    uint64_t n_queries, limit;
    struct gpu_group *groups;
    int n_groups;
    uint32_t max_rows;
    uint64_t max_group_nq;
    /* Document side: capacities and buffers. */
    uint64_t cap_docs, cap_tokens;
    cl_mem raw;              /* [cap_tokens][dim] float32 or float16, as uploaded */
    cl_mem scale;            /* [cap_tokens] normalization scales */
    cl_mem doc_tok, doc_len; /* [cap_docs] */
    cl_mem rowmax;           /* [cap_docs][max_rows] */
    cl_mem out;              /* [max_group_nq][cap_docs] */
    uint32_t *h_doc_tok, *h_doc_len;
    uint32_t *h_q_row, *h_q_len; /* [n_queries]: first row in its group, token count */
    char describe[224];          /* gpu_describe */
    int tuned;                   /* the variant came from the tuning table */
    /* Pairs: the most row tiles one query spans, and lists grown on demand. */
    uint32_t max_span;
    uint64_t cap_pairs, cap_work;
    cl_mem pair_q, pair_d, pair_out; /* [cap_pairs] */
    cl_mem work;                     /* [cap_work] (row tile, document) */
};

static uint64_t ceil_div(uint64_t a, uint64_t b)
{
    return (a + b - 1) / b;
}

static cl_mem buffer(struct ms_gpu *g, cl_mem_flags flags, uint64_t bytes, const char *what,
                     struct ms_err *err)
{
    return ms_cl_buffer(g->cl, flags, (size_t)bytes, NULL, what, err);
}

int gpu_wanted(const struct ms_cl *cl)
{
    const char *e = getenv("MAXSIM_KERNEL");
    if (e && strcmp(e, "gpu") == 0)
        return 1;
    if (e && strcmp(e, "portable") == 0)
        return 0;
    return (cl->info.type & CL_DEVICE_TYPE_GPU) != 0;
}

/* __local bytes a variant needs for dims padded to kp (kernels/maxsim_gpu.cl, MSG_LOCALS). */
static uint64_t local_bytes(const struct gpu_variant *v, uint32_t kp)
{
    const uint64_t bm = (uint64_t)v->rx * v->tm, bn = (uint64_t)v->cx * v->tn;
    const uint64_t nb = v->db ? 2 : 1; /* buffers of each streamed slice */
    const uint64_t qk = v->qres ? kp : (uint64_t)v->bk * nb;
    const uint64_t red = (uint64_t)v->cx * bm <= (uint64_t)v->bk * bn ? 0 : (uint64_t)v->cx * bm;
    return 4 * (qk * bm + nb * (uint64_t)v->bk * bn + red);
}

/* The dims per slice that pad dim least (ties: the larger slice, fewer barriers). */
static int pick_bk(uint32_t dim)
{
    int best = 32;
    for (int bk = 16; bk >= 8; bk /= 2)
        if (ceil_div(dim, (uint64_t)bk) * (uint64_t)bk < ceil_div(dim, (uint64_t)best) * best)
            best = bk;
    return best;
}

/* Parse a variant string "tm,tn,rx,cx,bk,qres,wgmul[,pf[,split[,db[,regs[,ld]]]]]" into *o
 * (missing trailing fields, and bk 0, from *dflt); 0 when it does not parse or is out of range. */
static int parse_variant(const char *e, const struct gpu_variant *dflt, struct gpu_variant *o)
{
    char tail;
    const int n =
        sscanf(e, "%d,%d,%d,%d,%d,%d,%d,%d,%d,%d,%d,%d%c", &o->tm, &o->tn, &o->rx, &o->cx, &o->bk,
               &o->qres, &o->wgmul, &o->pf, &o->split, &o->db, &o->regs, &o->ld, &tail);
    if (n < 8)
        o->pf = dflt->pf;
    if (n < 9)
        o->split = dflt->split;
    if (n < 10)
        o->db = dflt->db;
    if (n < 11)
        o->regs = dflt->regs;
    if (n < 12)
        o->ld = dflt->ld;
    if (o->bk == 0)
        o->bk = dflt->bk;
    return n >= 7 && n <= 12 && o->split >= 1 && o->split <= 64 && (o->db == 0 || o->db == 1) &&
           (o->ld == 0 || o->ld == 1) && (o->regs == 0 || (o->regs >= 32 && o->regs <= 255)) &&
           o->tm >= 4 && o->tm <= 16 && o->tm % 4 == 0 && o->tn >= 4 && o->tn <= 16 &&
           o->tn % 4 == 0 && o->rx >= 1 && o->cx >= 1 && o->bk >= 8 && o->bk <= 64 &&
           o->bk % 8 == 0 && o->wgmul >= 0;
}

/* The tuning table's keys (tune.h): the device with its driver, and the class of shapes that
 * share a variant (dim, query rows bucketed, few or many documents a block). */
static void tune_keys(const struct ms_cl *cl, uint32_t dim, uint64_t rows, uint64_t docs,
                      char *device, size_t dcap, char *klass, size_t kcap)
{
    const uint64_t cus = cl->info.compute_units ? cl->info.compute_units : 1;
    snprintf(device, dcap, "%s|%s|%s", cl->info.name, cl->info.driver_version,
             cl->info.platform_version);
    for (char *p = device; *p; p++)
        if (*p == '\t' || *p == '\n')
            *p = ' ';
    snprintf(klass, kcap, "gpu dim=%u rows=%s docs=%s", dim,
             rows <= 32    ? "<=32"
             : rows <= 96  ? "<=96"
             : rows <= 512 ? "<=512"
                           : "more",
             docs > 16 * cus ? "many" : "few");
}

static uint64_t total_rows_of(const struct ms_emb *q)
{
    uint64_t rows = 0;
    for (uint64_t i = 0; i < q->n_rows; i++)
        rows += ms_emb_row_len(q, i);
    return rows;
}

int gpu_tune_keys(const struct ms_cl *cl, const struct ms_emb *q, const struct ms_scorer_opts *o,
                  char *device, size_t dcap, char *klass, size_t kcap)
{
    tune_keys(cl, q->dim, total_rows_of(q), o->max_docs ? o->max_docs : 1, device, dcap, klass,
              kcap);
    return 1;
}

int gpu_tune_candidates(const struct ms_cl *cl, const struct ms_emb *q,
                        const struct ms_scorer_opts *o, char (*out)[64], int max)
{
    /* The H200 sweep's winners and their neighbours (docs/kernel-notes.md), then the variants
     * of 2026-12-03: 16 dims a slice, double-buffered slices (db), a register cap, 16-byte
     * integer loads of float16 documents (ld). */
    static const char *const few[] = { "8,4,4,16,0,1,64,1,1",       "8,4,4,16,0,1,64,1,2",
                                       "8,4,4,16,0,1,64,1,4",       "4,4,8,16,0,1,64,1,1",
                                       "4,8,8,8,0,1,64,1,1",        "8,8,4,8,0,1,64,1,2",
                                       "8,4,4,16,16,1,64,1,1",      "8,4,4,16,0,1,64,1,1,1",
                                       "8,4,4,16,16,1,64,1,1,1",    "4,4,8,16,16,1,64,1,1,1",
                                       "8,4,4,16,0,1,64,1,1,0,0,1", "8,4,4,16,16,1,64,1,1,1,0,1" };
    static const char *const many[] = {
        "8,8,16,8,0,0,64,1,1",          "8,8,8,8,0,1,64,1,1",
        "8,16,16,4,0,0,64,1,1",         "16,8,8,8,0,0,64,1,1",
        "8,16,8,4,0,1,64,1,1",          "8,8,16,8,16,0,64,1,1",
        "8,8,16,8,0,0,64,1,2",          "8,8,16,8,16,0,64,1,1,1",
        "8,8,16,8,16,0,64,1,1,1,168",   "8,8,16,8,0,0,64,1,1,0,128",
        "8,8,16,8,16,0,64,1,1,0,128",   "8,8,8,8,0,1,64,1,1,1",
        "8,8,16,8,0,0,64,1,1,0,0,1",    "8,8,16,8,16,0,64,1,1,1,168,1",
        "8,8,16,8,16,0,64,1,1,1,0,1",   "8,8,16,8,16,0,64,1,1,0,0,1",
        "8,8,16,8,32,0,64,1,1,1,168,1", "8,8,16,8,16,0,64,1,1,1,128,1",
        "8,16,16,4,16,0,64,1,1,1,168,1"
    };
    const int few_rows = total_rows_of(q) <= 32;
    const int n_list =
        few_rows ? (int)(sizeof few / sizeof few[0]) : (int)(sizeof many / sizeof many[0]);
    int n = 0;
    (void)cl;
    (void)o;
    for (int i = 0; i < n_list && n < max; i++)
        snprintf(out[n++], 64, "%s", few_rows ? few[i] : many[i]);
    return n;
}

/*
 * The tiling. A row tile of BM = rx * tm query rows against chunks of BN = cx * tn document
 * tokens; each work-item an SGEMM register block (per k, tm/4 + tn/4 float4 reads of __local feed
 * tm * tn fma). The defaults are the fastest of `bench --tune` on an H200 through NVIDIA's OpenCL
 * (docs/kernel-notes.md, 2026-12-02 and 2026-12-03):
 *   <= 32 rows (one text query): 8 x 4 blocks, 4 x 16 work-items (BM 32, BN 64), query tile
 *     resident, 16 dims a slice, double-buffered, 16-byte float16 loads: text-1q 0.126 ms (the
 *     same without the last three: 0.243).
 *   more rows: 8 x 8 blocks, 16 x 8 work-items (BM 128, BN 64), query slices streamed beside the
 *     document slices, 16 dims a slice, double-buffered, at most 168 registers, 16-byte loads:
 *     text-64q-10k 40.9 ms (without the last four: 57.0; BM 64 with the query tile resident:
 *     76.7). Up to 96 rows BM 64 (8 x 8, 8 x 8, resident) wastes fewer padded rows (not
 *     measured on a GPU).
 * BN = 64 keeps the padding of 300-token documents at 6%. Work-groups are shrunk to the device's
 * limit, the query tile streamed when it does not fit its local memory. The 16-byte loads are
 * most of the gain (NVIDIA's compiler evidently splits vloada_half8); every variant gives the
 * same bits.
 * MAXSIM_GPU_VARIANT="tm,tn,rx,cx,bk,qres,wgmul[,pf[,split[,db[,regs[,ld]]]]]" replaces it
 * (scripts/gpu-portable-sweep); then the tuning table (`maxsim bench --tune`).
 */
static int gpu_pick(struct ms_gpu *g, uint64_t total_rows, const struct ms_scorer_opts *opts,
                    struct ms_err *err)
{
    struct gpu_variant *v = &g->v;
    const char *e = getenv("MAXSIM_GPU_VARIANT");
    char device[640], klass[160], tuned[128];
    const uint64_t lmem = g->cl->info.local_mem ? g->cl->info.local_mem : 32768;
    const size_t max_wg = g->cl->info.max_work_group ? g->cl->info.max_work_group : 64;

    if (total_rows <= 32)
        *v = (struct gpu_variant){ 8, 4, 4, 16, 0, 1, 64, 1, 1, 1, 0, 1 };
    else if (total_rows <= 96)
        *v = (struct gpu_variant){ 8, 8, 8, 8, 0, 1, 64, 1, 1, 0, 0, 0 };
    else
        *v = (struct gpu_variant){ 8, 8, 16, 8, 0, 0, 64, 1, 1, 1, 168, 1 };
    /* double-buffered slices were timed with 16 dims a slice */
    v->bk =
        v->db ? (ceil_div(g->dim, 8) * 8 < ceil_div(g->dim, 16) * 16 ? 8 : 16) : pick_bk(g->dim);
    /* First match wins: the scorer's forced variant (bench --tune; a tensor-core variant string
     * does not parse here and is not ours), MAXSIM_GPU_VARIANT, the tuning table. */
    struct gpu_variant o = { 0 };
    g->tuned = 0;
    if (opts->variant && parse_variant(opts->variant, v, &o)) {
        *v = o;
    } else if (e && *e) {
        if (!parse_variant(e, v, &o))
            return ms_err_set(err, MS_ERR_INPUT,
                              "MAXSIM_GPU_VARIANT='%s': expected tm,tn,rx,cx,bk,qres,wgmul[,pf[,"
                              "split[,db[,regs[,ld]]]]] (tm, tn 4, 8, 12 or 16; bk a multiple of 8 "
                              "up to 64, 0 for the default; split 1..64; db 0 or 1; regs 0 or "
                              "32..255; ld 0 or 1)",
                              e);
        *v = o;
    } else {
        tune_keys(g->cl, g->dim, total_rows, g->cap_docs, device, sizeof device, klass,
                  sizeof klass);
        if (ms_tune_lookup(device, klass, tuned, sizeof tuned) && parse_variant(tuned, v, &o)) {
            *v = o;
            g->tuned = 1;
        }
    }
    /* Devices with small work-groups: halve the thread grid until it fits. */
    while ((size_t)(v->rx * v->cx) > max_wg && (v->rx > 1 || v->cx > 1)) {
        if (v->cx >= v->rx)
            v->cx /= 2;
        else
            v->rx /= 2;
    }
    g->kp = (uint32_t)(ceil_div(g->dim, (uint64_t)v->bk) * (uint64_t)v->bk);
    if (v->qres && local_bytes(v, g->kp) > lmem)
        v->qres = 0;
    if (v->db && local_bytes(v, g->kp) > lmem)
        v->db = 0;
    /* Small local memories: thinner slices, then fewer rows a tile, before giving up. */
    while (local_bytes(v, g->kp) > lmem && (v->bk > 8 || v->rx > 1)) {
        if (v->bk > 8)
            v->bk = v->bk / 16 * 8 > 8 ? v->bk / 16 * 8 : 8; /* halved, a multiple of 8 */
        else
            v->rx /= 2;
        g->kp = (uint32_t)(ceil_div(g->dim, (uint64_t)v->bk) * (uint64_t)v->bk);
    }
    if (local_bytes(v, g->kp) > lmem)
        return ms_err_set(err, MS_ERR_RUNTIME,
                          "portable GPU kernel: tiling %d,%d,%d,%d,%d needs %llu bytes of local "
                          "memory, '%s' has %llu",
                          v->tm, v->tn, v->rx, v->cx, v->bk,
                          (unsigned long long)local_bytes(v, g->kp), g->cl->info.name,
                          (unsigned long long)lmem);
    g->bm = (uint32_t)(v->rx * v->tm);
    return MS_OK;
}

static int build(struct ms_gpu *g, struct ms_err *err)
{
    struct gpu_variant *v = &g->v;
    char opts[320], regs[48] = "";
    cl_int rc = CL_SUCCESS;

    /* A register cap is a compiler option only some vendors take (NVIDIA's
     * cl_nv_compiler_options): fewer registers a work-item, more work-groups an SM. Elsewhere the
     * field is dropped (and -v says so through the describe string). */
    if (v->regs && ms_cl_has_extension(g->cl->info.device, "cl_nv_compiler_options"))
        snprintf(regs, sizeof regs, " -cl-nv-maxrregcount=%d", v->regs);
    else
        v->regs = 0;
    snprintf(opts, sizeof opts,
             "-cl-std=CL1.2 -DMSG_TM=%d -DMSG_TN=%d -DMSG_RX=%d -DMSG_CX=%d -DMSG_BK=%d "
             "-DMSG_DIM=%u -DMSG_KP=%u -DMSG_QRES=%d -DMSG_PF=%d -DMSG_DB=%d -DMSG_LD=%d%s",
             v->tm, v->tn, v->rx, v->cx, v->bk, g->dim, g->kp, v->qres, v->pf, v->db, v->ld, regs);
    if (ms_cl_program(g->cl, "maxsim_gpu.cl", opts, &g->prog, err) != MS_OK)
        return err->status;
    g->norm_f16 = clCreateKernel(g->prog, "msg_norm_f16", &rc);
    if (g->norm_f16)
        g->norm_f32 = clCreateKernel(g->prog, "msg_norm_f32", &rc);
    if (g->norm_f32)
        g->score_f16 = clCreateKernel(g->prog, "msg_score_f16", &rc);
    if (g->score_f16)
        g->score_f32 = clCreateKernel(g->prog, "msg_score_f32", &rc);
    if (g->score_f32)
        g->sum = clCreateKernel(g->prog, "msg_sum", &rc);
    if (g->sum)
        g->list_f16 = clCreateKernel(g->prog, "msg_score_list_f16", &rc);
    if (g->list_f16)
        g->list_f32 = clCreateKernel(g->prog, "msg_score_list_f32", &rc);
    if (g->list_f32)
        g->sum_pairs = clCreateKernel(g->prog, "msg_sum_pairs", &rc);
    if (!g->sum_pairs)
        return ms_cl_fail(err, "clCreateKernel(msg_*)", rc);
    snprintf(g->describe, sizeof g->describe,
             "portable GPU kernel (%dx%d per work-item, %dx%d work-items, %d dims a slice, query "
             "tile %s, split %d%s%s%.0d%s)%s",
             v->tm, v->tn, v->rx, v->cx, v->bk, v->qres ? "resident" : "streamed", v->split,
             v->db ? ", double-buffered" : "", v->regs ? ", registers <= " : "", v->regs,
             v->ld ? ", 16-byte loads" : "", g->tuned ? ", tuned" : "");
    ms_cl_note(g->cl,
               "portable GPU kernel (maxsim_gpu.cl), work-groups of %d, wgmul %d, split %d: %s",
               v->rx * v->cx, v->wgmul, v->split, opts);
    return MS_OK;
}

/* Prepare queries [gr->q0, gr->q0 + gr->nq): float32 (normalized in double as the portable path
 * does), transposed into [kp][rows]; rows past the last token are zeros. */
static int upload_group(struct ms_gpu *g, const struct ms_emb *q, struct gpu_group *gr,
                        struct ms_err *err)
{
    const uint64_t rows = gr->rows;
    float *qt = ms_calloc(rows * g->kp, sizeof *qt, err);
    uint32_t *row = ms_malloc(gr->nq * sizeof *row + 4, err);
    uint32_t *len = ms_malloc(gr->nq * sizeof *len + 4, err);
    uint64_t r = 0;
    cl_int rc = CL_SUCCESS;
    int status = MS_OK;

    if (!qt || !row || !len) {
        status = err->status;
        goto done;
    }
    for (uint64_t i = 0; i < gr->nq; i++) {
        const uint64_t qi = gr->q0 + i, n = ms_emb_row_len(q, qi);
        row[i] = g->h_q_row[qi] = (uint32_t)r;
        len[i] = g->h_q_len[qi] = (uint32_t)n;
        if (n && (r + n - 1) / g->bm - r / g->bm + 1 > g->max_span)
            g->max_span = (uint32_t)((r + n - 1) / g->bm - r / g->bm + 1);
        for (uint64_t t = 0; t < n; t++, r++) {
            const uint64_t tok = q->offsets[qi] + t;
            const double scale = g->normalize ? ms_emb_inv_norm(q, tok) : 1.0;
            for (uint32_t k = 0; k < g->dim; k++)
                qt[k * rows + r] = (float)(ms_emb_value(q, tok, k) * scale);
        }
    }
    gr->qt = buffer(g, CL_MEM_READ_ONLY, rows * g->kp * 4, "GPU queries", err);
    gr->q_row = buffer(g, CL_MEM_READ_ONLY, gr->nq * 4, "GPU query rows", err);
    gr->q_len = buffer(g, CL_MEM_READ_ONLY, gr->nq * 4, "GPU query lengths", err);
    if (!gr->qt || !gr->q_row || !gr->q_len) {
        status = err->status;
        goto done;
    }
    rc =
        clEnqueueWriteBuffer(g->cl->queue, gr->qt, CL_TRUE, 0, rows * g->kp * 4, qt, 0, NULL, NULL);
    if (rc == CL_SUCCESS && gr->nq)
        rc = clEnqueueWriteBuffer(g->cl->queue, gr->q_row, CL_TRUE, 0, gr->nq * 4, row, 0, NULL,
                                  NULL);
    if (rc == CL_SUCCESS && gr->nq)
        rc = clEnqueueWriteBuffer(g->cl->queue, gr->q_len, CL_TRUE, 0, gr->nq * 4, len, 0, NULL,
                                  NULL);
    if (rc != CL_SUCCESS)
        status = ms_cl_fail(err, "clEnqueueWriteBuffer(GPU queries)", rc);
done:
    free(qt);
    free(row);
    free(len);
    return status;
}

int gpu_create(struct ms_gpu **out, struct ms_cl *cl, const struct ms_emb *q,
               const struct ms_scorer_opts *opts, struct ms_err *err)
{
    struct ms_gpu *g = ms_calloc(1, sizeof *g, err);
    uint64_t total_rows = 0, row_cap, lim;

    *out = NULL;
    if (!g)
        return err->status;
    g->cl = cl;
    g->normalize = opts->normalize;
    g->dim = q->dim;
    g->n_queries = q->n_rows;
    for (uint64_t i = 0; i < q->n_rows; i++)
        total_rows += ms_emb_row_len(q, i);
    g->cap_docs = opts->max_docs ? opts->max_docs : 1; /* the tuning class needs it */
    if (g->cap_docs > UINT32_MAX / 2)
        g->cap_docs = UINT32_MAX / 2;
    if (gpu_pick(g, total_rows, opts, err) != MS_OK || build(g, err) != MS_OK)
        goto fail;

    /* One buffer's bytes: the allocation limit and a quarter of the memory (as maxsim_cl.c). */
    lim = opts->max_buffer;
    if (!lim) {
        lim = cl->info.max_alloc ? cl->info.max_alloc : (128ull << 20);
        if (cl->info.global_mem && cl->info.global_mem / 4 < lim)
            lim = cl->info.global_mem / 4;
        if (lim < (1ull << 20))
            lim = 1ull << 20;
    }
    g->limit = lim;
    g->cap_docs = opts->max_docs ? opts->max_docs : 1;
    if (g->cap_docs > UINT32_MAX / 2)
        g->cap_docs = UINT32_MAX / 2;
    /* Query groups: rows whose transposed copy fits one buffer, and whose per-row maxima for
     * at least min(cap_docs, 1024) documents do too. */
    {
        const uint64_t some_docs = g->cap_docs < 1024 ? g->cap_docs : 1024;
        row_cap = lim / (4 * (g->kp > some_docs ? g->kp : some_docs));
    }
    if (row_cap > UINT32_MAX / 2)
        row_cap = UINT32_MAX / 2;
    row_cap = row_cap / g->bm * g->bm;
    if (row_cap < g->bm) /* tiny test buffers: one row tile anyway */
        row_cap = g->bm;
    g->groups = ms_calloc(q->n_rows ? q->n_rows : 1, sizeof *g->groups, err);
    g->h_q_row = g->groups ? ms_malloc(q->n_rows * 4 + 4, err) : NULL;
    g->h_q_len = g->h_q_row ? ms_malloc(q->n_rows * 4 + 4, err) : NULL;
    if (!g->h_q_len)
        goto fail;
    for (uint64_t i = 0; i < q->n_rows;) {
        struct gpu_group *gr = &g->groups[g->n_groups];
        uint64_t rows = 0, n = 0;
        while (i + n < q->n_rows &&
               (n == 0 || ceil_div(rows + ms_emb_row_len(q, i + n), g->bm) * g->bm <= row_cap)) {
            rows += ms_emb_row_len(q, i + n);
            n++;
        }
        rows = ceil_div(rows ? rows : 1, g->bm) * g->bm;
        if (rows > row_cap) {
            ms_err_set(err, MS_ERR_RUNTIME,
                       "query %llu has %llu tokens: more than the portable GPU kernel's buffers "
                       "hold (%llu rows on '%s')",
                       (unsigned long long)i, (unsigned long long)ms_emb_row_len(q, i),
                       (unsigned long long)row_cap, cl->info.name);
            goto fail;
        }
        gr->q0 = i;
        gr->nq = n;
        gr->rows = (uint32_t)rows;
        g->n_groups++;
        if (upload_group(g, q, gr, err) != MS_OK)
            goto fail;
        if (gr->rows > g->max_rows)
            g->max_rows = gr->rows;
        if (n > g->max_group_nq)
            g->max_group_nq = n;
        i += n;
    }
    if (!g->max_rows)
        g->max_rows = g->bm;
    /* Documents of a sub-block: their rows of maxima and their scores fit one buffer each. */
    if (g->cap_docs > lim / (4 * (uint64_t)g->max_rows * (uint64_t)g->v.split))
        g->cap_docs = lim / (4 * (uint64_t)g->max_rows * (uint64_t)g->v.split);
    if (g->max_group_nq && g->cap_docs > lim / (4 * g->max_group_nq))
        g->cap_docs = lim / (4 * g->max_group_nq);
    g->cap_tokens = opts->max_tokens ? opts->max_tokens : 1;
    if (g->cap_tokens > lim / (4 * (uint64_t)g->dim))
        g->cap_tokens = lim / (4 * (uint64_t)g->dim);
    if (g->cap_docs == 0 || g->cap_tokens == 0) {
        ms_err_set(err, MS_ERR_RUNTIME, "dim %u is too large for the buffers of '%s'", g->dim,
                   cl->info.name);
        goto fail;
    }
    g->raw = buffer(g, CL_MEM_READ_ONLY, g->cap_tokens * g->dim * 4, "GPU documents", err);
    g->scale = buffer(g, CL_MEM_READ_WRITE, g->normalize ? g->cap_tokens * 4 : 4,
                      "GPU document scales", err);
    g->doc_tok = buffer(g, CL_MEM_READ_ONLY, g->cap_docs * 4, "GPU document tokens", err);
    g->doc_len = buffer(g, CL_MEM_READ_ONLY, g->cap_docs * 4, "GPU document lengths", err);
    g->rowmax = buffer(g, CL_MEM_READ_WRITE, g->cap_docs * g->max_rows * 4 * (uint64_t)g->v.split,
                       "GPU row maxima", err);
    g->out = buffer(g, CL_MEM_READ_WRITE, /* read by topk.cl */ g->max_group_nq * g->cap_docs * 4,
                    "GPU scores", err);
    if (!g->raw || !g->scale || !g->doc_tok || !g->doc_len || !g->rowmax || !g->out)
        goto fail;
    g->h_doc_tok = ms_malloc(g->cap_docs * 4, err);
    g->h_doc_len = g->h_doc_tok ? ms_malloc(g->cap_docs * 4, err) : NULL;
    if (!g->h_doc_len)
        goto fail;
    *out = g;
    return MS_OK;
fail:
    gpu_release(g);
    return err->status ? err->status : MS_ERR_RUNTIME;
}

/* The longest run of rows from j0 that fits the buffers; 0 with the error set when row j0 alone
 * does not fit. */
static uint64_t fit_sub(const struct ms_gpu *g, const struct ms_emb *docs, uint64_t j0,
                        struct ms_err *err)
{
    uint64_t nd = 0, ntok = 0;
    while (j0 + nd < docs->n_rows && nd < g->cap_docs &&
           ntok + ms_emb_row_len(docs, j0 + nd) <= g->cap_tokens)
        ntok += ms_emb_row_len(docs, j0 + nd++);
    if (nd == 0)
        ms_err_set(err, MS_ERR_RUNTIME,
                   "document %llu has %llu tokens: more than the buffers of '%s' hold (%llu "
                   "tokens of dim %u)",
                   (unsigned long long)(docs->first_row + j0),
                   (unsigned long long)ms_emb_row_len(docs, j0), g->cl->info.name,
                   (unsigned long long)g->cap_tokens, g->dim);
    return nd;
}

/* Upload rows j0 .. j0+nd-1 (a row with used[j] == 0 gets length 0: uploaded with its
 * neighbours, never scored) and compute the normalization scales. */
static int upload_docs(struct ms_gpu *g, const struct ms_emb *docs, uint64_t j0, uint64_t nd,
                       const unsigned char *used, double *kernel_s, struct ms_err *err)
{
    const uint64_t tok0 = docs->offsets[j0], ntok = docs->offsets[j0 + nd] - tok0;
    const size_t es = ms_dtype_size(docs->dtype);
    cl_command_queue qu = g->cl->queue;
    cl_int rc = CL_SUCCESS;

    for (uint64_t j = 0; j < nd; j++) {
        g->h_doc_tok[j] = (uint32_t)(docs->offsets[j0 + j] - tok0);
        g->h_doc_len[j] = !used || used[j0 + j] ? (uint32_t)ms_emb_row_len(docs, j0 + j) : 0;
    }
    if (ntok) {
        if (ms_cl_write(g->cl, g->raw, ntok * g->dim * es,
                        (const char *)docs->tokens + tok0 * g->dim * es, &g->upload_s,
                        "GPU documents", err) != MS_OK)
            return err->status;
        g->upload_bytes += ntok * g->dim * es;
    }
    rc = clEnqueueWriteBuffer(qu, g->doc_tok, CL_TRUE, 0, nd * 4, g->h_doc_tok, 0, NULL, NULL);
    if (rc == CL_SUCCESS)
        rc = clEnqueueWriteBuffer(qu, g->doc_len, CL_TRUE, 0, nd * 4, g->h_doc_len, 0, NULL, NULL);
    if (rc != CL_SUCCESS)
        return ms_cl_fail(err, "clEnqueueWriteBuffer(GPU documents)", rc);
    if (g->normalize && ntok) {
        cl_kernel k = docs->dtype == MS_DTYPE_F16 ? g->norm_f16 : g->norm_f32;
        const cl_uint n_tok = (cl_uint)ntok;
        const size_t global = (size_t)ntok;
        rc = clSetKernelArg(k, 0, sizeof(cl_mem), &g->raw);
        rc |= clSetKernelArg(k, 1, sizeof n_tok, &n_tok);
        rc |= clSetKernelArg(k, 2, sizeof(cl_mem), &g->scale);
        if (rc != CL_SUCCESS)
            return ms_cl_fail(err, "clSetKernelArg(msg_norm)", rc);
        return ms_cl_launch(g->cl, k, 1, &global, NULL, "msg_norm", kernel_s, err);
    }
    return MS_OK;
}

/* Score the uploaded sub-block of nd documents against group gi into g->out ([nq][nd]). */
static int score_group(struct ms_gpu *g, int gi, enum ms_dtype dtype, uint64_t nd, double *kernel_s,
                       struct ms_err *err)
{
    const struct gpu_group *gr = &g->groups[gi];
    const struct gpu_variant *v = &g->v;
    const size_t wg = (size_t)(v->rx * v->cx);
    const uint64_t n_rt = gr->rows / g->bm;
    const uint64_t cus = g->cl->info.compute_units ? g->cl->info.compute_units : 1;
    const uint64_t parts = nd * n_rt * (uint64_t)v->split;
    const uint64_t want = v->wgmul ? (uint64_t)v->wgmul * cus : parts;
    const uint64_t per = ceil_div(parts, want); /* documents per work-group, >= 1 */
    const cl_uint n_docs = (cl_uint)nd, dpw = (cl_uint)per, n_rows = gr->rows;
    const cl_uint n_sp = (cl_uint)v->split;
    const cl_int normalize = g->normalize;
    cl_kernel k = dtype == MS_DTYPE_F16 ? g->score_f16 : g->score_f32;
    cl_int rc;

    if (gr->nq == 0)
        return MS_OK;
    {
        const size_t global[2] = { (size_t)n_rt * wg, (size_t)ceil_div(nd, per) * n_sp };
        const size_t local[2] = { wg, 1 };
        rc = clSetKernelArg(k, 0, sizeof(cl_mem), &g->raw);
        rc |= clSetKernelArg(k, 1, sizeof(cl_mem), &g->doc_tok);
        rc |= clSetKernelArg(k, 2, sizeof(cl_mem), &g->doc_len);
        rc |= clSetKernelArg(k, 3, sizeof n_docs, &n_docs);
        rc |= clSetKernelArg(k, 4, sizeof dpw, &dpw);
        rc |= clSetKernelArg(k, 5, sizeof n_sp, &n_sp);
        rc |= clSetKernelArg(k, 6, sizeof(cl_mem), &g->scale);
        rc |= clSetKernelArg(k, 7, sizeof normalize, &normalize);
        rc |= clSetKernelArg(k, 8, sizeof(cl_mem), &gr->qt);
        rc |= clSetKernelArg(k, 9, sizeof n_rows, &n_rows);
        rc |= clSetKernelArg(k, 10, sizeof(cl_mem), &g->rowmax);
        if (rc != CL_SUCCESS)
            return ms_cl_fail(err, "clSetKernelArg(msg_score)", rc);
        if (ms_cl_launch(g->cl, k, 2, global, local, "msg_score", kernel_s, err) != MS_OK)
            return err->status;
    }
    {
        const size_t global[2] = { (size_t)ceil_div(nd, 64) * 64, (size_t)gr->nq };
        const size_t local[2] = { 64, 1 };
        rc = clSetKernelArg(g->sum, 0, sizeof(cl_mem), &g->rowmax);
        rc |= clSetKernelArg(g->sum, 1, sizeof n_rows, &n_rows);
        rc |= clSetKernelArg(g->sum, 2, sizeof n_sp, &n_sp);
        rc |= clSetKernelArg(g->sum, 3, sizeof(cl_mem), &g->doc_len);
        rc |= clSetKernelArg(g->sum, 4, sizeof n_docs, &n_docs);
        rc |= clSetKernelArg(g->sum, 5, sizeof(cl_mem), &gr->q_row);
        rc |= clSetKernelArg(g->sum, 6, sizeof(cl_mem), &gr->q_len);
        rc |= clSetKernelArg(g->sum, 7, sizeof(cl_mem), &g->out);
        if (rc != CL_SUCCESS)
            return ms_cl_fail(err, "clSetKernelArg(msg_sum)", rc);
        return ms_cl_launch(g->cl, g->sum, 2, global,
                            g->cl->info.max_work_group >= 64 ? local : NULL, "msg_sum", kernel_s,
                            err);
    }
}

int gpu_run(struct ms_gpu *g, const struct ms_emb *docs, float *scores, uint64_t ld,
            struct ms_topk_sink *sink, double *kernel_s, struct ms_err *err)
{
    for (uint64_t j0 = 0; j0 < docs->n_rows;) {
        const uint64_t nd = fit_sub(g, docs, j0, err);
        if (nd == 0 || upload_docs(g, docs, j0, nd, NULL, kernel_s, err) != MS_OK)
            return err->status;
        for (int gi = 0; gi < g->n_groups; gi++) {
            const struct gpu_group *gr = &g->groups[gi];
            const size_t origin[3] = { 0, 0, 0 };
            const size_t region[3] = { nd * sizeof(float), gr->nq, 1 };
            cl_int rc;
            if (gr->nq == 0)
                continue;
            if (score_group(g, gi, docs->dtype, nd, kernel_s, err) != MS_OK)
                return err->status;
            if (sink) { /* only the group's top k of this sub-block come back */
                if (ms_topk_sink_put(sink, g->out, gr->q0, gr->nq, j0, nd, kernel_s, err) != MS_OK)
                    return err->status;
                continue;
            }
            /* Rows of nd floats on the device, rows of ld floats in `scores`. */
            rc = clEnqueueReadBufferRect(g->cl->queue, g->out, CL_TRUE, origin, origin, region,
                                         nd * sizeof(float), 0, ld * sizeof(float), 0,
                                         scores + gr->q0 * ld + j0, 0, NULL, NULL);
            if (rc != CL_SUCCESS)
                return ms_cl_fail(err, "clEnqueueReadBufferRect(GPU scores)", rc);
        }
        j0 += nd;
    }
    return MS_OK;
}

/* Room for n pairs and n * max_span work items on the device (n <= the buffer limit allows). */
static int reserve_pairs(struct ms_gpu *g, uint64_t n, struct ms_err *err)
{
    const uint64_t w = n * (g->max_span ? g->max_span : 1);
    if (n > g->cap_pairs) {
        ms_cl_release(&g->pair_q);
        ms_cl_release(&g->pair_d);
        ms_cl_release(&g->pair_out);
        g->cap_pairs = 0;
        g->pair_q = buffer(g, CL_MEM_READ_ONLY, n * 4, "GPU pair queries", err);
        g->pair_d = buffer(g, CL_MEM_READ_ONLY, n * 4, "GPU pair documents", err);
        g->pair_out = buffer(g, CL_MEM_WRITE_ONLY, n * 4, "GPU pair scores", err);
        if (!g->pair_q || !g->pair_d || !g->pair_out)
            return err->status;
        g->cap_pairs = n;
    }
    if (w > g->cap_work) {
        ms_cl_release(&g->work);
        g->cap_work = 0;
        if (!(g->work = buffer(g, CL_MEM_READ_ONLY, w * 8, "GPU work list", err)))
            return err->status;
        g->cap_work = w;
    }
    return MS_OK;
}

/*
 * Score n pairs of group gi against the uploaded sub-block: pq[k] (a query of the group), pd[k]
 * (a row of the sub-block), listed by document. The work list holds each (row tile, document)
 * some pair needs once; msg_score_list computes their row maxima exactly as msg_score would, and
 * msg_sum_pairs adds them up as msg_sum does.
 */
static int score_pairs(struct ms_gpu *g, int gi, enum ms_dtype dtype, const uint32_t *pq,
                       const uint32_t *pd, uint64_t n, uint32_t *work, uint64_t *stamp,
                       uint64_t *mark, const uint32_t *q_row, const uint32_t *q_len, float *pout,
                       double *kernel_s, struct ms_err *err)
{
    const struct gpu_group *gr = &g->groups[gi];
    const size_t wg = (size_t)(g->v.rx * g->v.cx);
    const cl_int normalize = g->normalize;
    const cl_uint n_rows = gr->rows, n_pairs = (cl_uint)n;
    cl_kernel k = dtype == MS_DTYPE_F16 ? g->list_f16 : g->list_f32;
    cl_command_queue qu = g->cl->queue;
    cl_uint n_work = 0;
    cl_int rc;

    for (uint64_t p = 0; p < n; p++) {
        if (p == 0 || pd[p] != pd[p - 1])
            (*mark)++; /* a new document: every row tile is needed afresh */
        if (!q_len[pq[p]])
            continue;
        for (uint32_t rt = q_row[pq[p]] / g->bm; rt <= (q_row[pq[p]] + q_len[pq[p]] - 1) / g->bm;
             rt++) {
            if (stamp[rt] == *mark)
                continue;
            stamp[rt] = *mark;
            work[2 * n_work] = rt;
            work[2 * n_work + 1] = pd[p];
            n_work++;
        }
    }
    rc = clEnqueueWriteBuffer(qu, g->pair_q, CL_TRUE, 0, n * 4, pq, 0, NULL, NULL);
    if (rc == CL_SUCCESS)
        rc = clEnqueueWriteBuffer(qu, g->pair_d, CL_TRUE, 0, n * 4, pd, 0, NULL, NULL);
    if (rc == CL_SUCCESS && n_work)
        rc = clEnqueueWriteBuffer(qu, g->work, CL_TRUE, 0, (size_t)n_work * 8, work, 0, NULL, NULL);
    if (rc != CL_SUCCESS)
        return ms_cl_fail(err, "clEnqueueWriteBuffer(GPU pairs)", rc);
    if (n_work) {
        const size_t global = (size_t)n_work * wg;
        rc = clSetKernelArg(k, 0, sizeof(cl_mem), &g->raw);
        rc |= clSetKernelArg(k, 1, sizeof(cl_mem), &g->doc_tok);
        rc |= clSetKernelArg(k, 2, sizeof(cl_mem), &g->doc_len);
        rc |= clSetKernelArg(k, 3, sizeof(cl_mem), &g->work);
        rc |= clSetKernelArg(k, 4, sizeof n_work, &n_work);
        rc |= clSetKernelArg(k, 5, sizeof(cl_mem), &g->scale);
        rc |= clSetKernelArg(k, 6, sizeof normalize, &normalize);
        rc |= clSetKernelArg(k, 7, sizeof(cl_mem), &gr->qt);
        rc |= clSetKernelArg(k, 8, sizeof n_rows, &n_rows);
        rc |= clSetKernelArg(k, 9, sizeof(cl_mem), &g->rowmax);
        if (rc != CL_SUCCESS)
            return ms_cl_fail(err, "clSetKernelArg(msg_score_list)", rc);
        if (ms_cl_launch(g->cl, k, 1, &global, &wg, "msg_score_list", kernel_s, err) != MS_OK)
            return err->status;
    }
    {
        const size_t global = (size_t)ceil_div(n, 64) * 64, local = 64;
        rc = clSetKernelArg(g->sum_pairs, 0, sizeof(cl_mem), &g->rowmax);
        rc |= clSetKernelArg(g->sum_pairs, 1, sizeof n_rows, &n_rows);
        rc |= clSetKernelArg(g->sum_pairs, 2, sizeof(cl_mem), &g->doc_len);
        rc |= clSetKernelArg(g->sum_pairs, 3, sizeof(cl_mem), &gr->q_row);
        rc |= clSetKernelArg(g->sum_pairs, 4, sizeof(cl_mem), &gr->q_len);
        rc |= clSetKernelArg(g->sum_pairs, 5, sizeof(cl_mem), &g->pair_q);
        rc |= clSetKernelArg(g->sum_pairs, 6, sizeof(cl_mem), &g->pair_d);
        rc |= clSetKernelArg(g->sum_pairs, 7, sizeof n_pairs, &n_pairs);
        rc |= clSetKernelArg(g->sum_pairs, 8, sizeof(cl_mem), &g->pair_out);
        if (rc != CL_SUCCESS)
            return ms_cl_fail(err, "clSetKernelArg(msg_sum_pairs)", rc);
        if (ms_cl_launch(g->cl, g->sum_pairs, 1, &global,
                         g->cl->info.max_work_group >= 64 ? &local : NULL, "msg_sum_pairs",
                         kernel_s, err) != MS_OK)
            return err->status;
    }
    rc = clEnqueueReadBuffer(qu, g->pair_out, CL_TRUE, 0, n * 4, pout, 0, NULL, NULL);
    return rc == CL_SUCCESS ? MS_OK : ms_cl_fail(err, "clEnqueueReadBuffer(GPU pair scores)", rc);
}

int gpu_run_pairs(struct ms_gpu *g, const struct ms_emb *docs, const uint32_t *pair_q,
                  const uint32_t *pair_d, uint64_t n_pairs, float *out, double *kernel_s,
                  struct ms_err *err)
{
    /* Pairs per launch: what one buffer holds of their work list (<= max_span items a pair). */
    const uint64_t span = g->max_span ? g->max_span : 1;
    uint64_t piece = g->limit / 8 / span;
    uint64_t *start = NULL, *order = NULL, *stamp = NULL, mark = 0;
    uint32_t *pq = NULL, *pd = NULL, *work = NULL;
    unsigned char *used = NULL;
    float *pout = NULL;
    int status = MS_OK;

    if (piece > n_pairs)
        piece = n_pairs;
    if (piece < 1)
        piece = 1;
    /* Counting sort: order[start[j] .. start[j+1]-1] are the pairs of row j, in the caller's order.
     */
    if (!(start = ms_calloc(docs->n_rows + 2, sizeof *start, err)) ||
        !(order = ms_malloc(n_pairs * sizeof *order, err)) ||
        !(used = ms_calloc(docs->n_rows + 1, 1, err)) ||
        !(pq = ms_malloc(piece * sizeof *pq, err)) || !(pd = ms_malloc(piece * sizeof *pd, err)) ||
        !(pout = ms_malloc(piece * sizeof *pout, err)) ||
        !(work = ms_malloc(piece * span * 2 * sizeof *work, err)) ||
        !(stamp = ms_calloc(g->max_rows / g->bm + 1, sizeof *stamp, err)) ||
        reserve_pairs(g, piece, err) != MS_OK) {
        status = err->status;
        goto done;
    }
    for (uint64_t p = 0; p < n_pairs; p++) {
        start[pair_d[p] + 2]++;
        used[pair_d[p]] = 1;
    }
    for (uint64_t j = 0; j < docs->n_rows; j++)
        start[j + 2] += start[j + 1];
    for (uint64_t p = 0; p < n_pairs; p++)
        order[start[pair_d[p] + 1]++] = p;

    for (uint64_t j0 = 0; j0 < docs->n_rows;) {
        uint64_t nd;
        if (!used[j0]) {
            j0++;
            continue;
        }
        nd = fit_sub(g, docs, j0, err);
        if (nd == 0) {
            status = err->status;
            goto done;
        }
        while (!used[j0 + nd - 1]) /* trailing rows no pair needs */
            nd--;
        if (upload_docs(g, docs, j0, nd, used, kernel_s, err) != MS_OK) {
            status = err->status;
            goto done;
        }
        for (int gi = 0; gi < g->n_groups; gi++) {
            const struct gpu_group *gr = &g->groups[gi];
            uint64_t k = start[j0];
            while (k < start[j0 + nd]) {
                uint64_t n = 0, k1 = k;
                for (; k1 < start[j0 + nd] && n < piece; k1++) {
                    const uint64_t p = order[k1];
                    if (pair_q[p] < gr->q0 || pair_q[p] - gr->q0 >= gr->nq)
                        continue;
                    pq[n] = (uint32_t)(pair_q[p] - gr->q0);
                    pd[n] = (uint32_t)(pair_d[p] - j0);
                    n++;
                }
                if (n && score_pairs(g, gi, docs->dtype, pq, pd, n, work, stamp, &mark,
                                     g->h_q_row + gr->q0, g->h_q_len + gr->q0, pout, kernel_s,
                                     err) != MS_OK) {
                    status = err->status;
                    goto done;
                }
                n = 0;
                for (; k < k1; k++) {
                    const uint64_t p = order[k];
                    if (pair_q[p] >= gr->q0 && pair_q[p] - gr->q0 < gr->nq)
                        out[p] = pout[n++];
                }
            }
        }
        j0 += nd;
    }
done:
    free(start);
    free(order);
    free(used);
    free(pq);
    free(pd);
    free(pout);
    free(work);
    free(stamp);
    return status;
}

void gpu_uploads(const struct ms_gpu *g, double *seconds, uint64_t *bytes)
{
    *seconds = g->upload_s;
    *bytes = g->upload_bytes;
}

const char *gpu_describe(const struct ms_gpu *g)
{
    return g->describe;
}

void gpu_release(struct ms_gpu *g)
{
    if (!g)
        return;
    for (int i = 0; i < g->n_groups; i++) {
        ms_cl_release(&g->groups[i].qt);
        ms_cl_release(&g->groups[i].q_row);
        ms_cl_release(&g->groups[i].q_len);
    }
    free(g->groups);
    ms_cl_release(&g->raw);
    ms_cl_release(&g->scale);
    ms_cl_release(&g->doc_tok);
    ms_cl_release(&g->doc_len);
    ms_cl_release(&g->rowmax);
    ms_cl_release(&g->out);
    ms_cl_release(&g->pair_q);
    ms_cl_release(&g->pair_d);
    ms_cl_release(&g->pair_out);
    ms_cl_release(&g->work);
    if (g->list_f16)
        clReleaseKernel(g->list_f16);
    if (g->list_f32)
        clReleaseKernel(g->list_f32);
    if (g->sum_pairs)
        clReleaseKernel(g->sum_pairs);
    if (g->norm_f16)
        clReleaseKernel(g->norm_f16);
    if (g->norm_f32)
        clReleaseKernel(g->norm_f32);
    if (g->score_f16)
        clReleaseKernel(g->score_f16);
    if (g->score_f32)
        clReleaseKernel(g->score_f32);
    if (g->sum)
        clReleaseKernel(g->sum);
    if (g->prog)
        clReleaseProgram(g->prog);
    free(g->h_doc_tok);
    free(g->h_doc_len);
    free(g->h_q_row);
    free(g->h_q_len);
    free(g);
}
