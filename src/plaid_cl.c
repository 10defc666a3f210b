/*
 * plaid_cl.c - PLAID search and rerank on an OpenCL device: the host side of
 * kernels/plaid.cl (the pipeline is described in plaid_cl.h).
 *
 * Per-call buffers (queries, pairs, gathered residuals, scores) are created
 * for each call and released after it: a call is one batch of queries or one
 * block of pairs, whose device work dwarfs the allocation. Results do not
 * depend on how pairs are split into launches: each pair is scored by one
 * work-group from the same data in the same order.
 */
#include "plaid_cl.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WG         32      /* work-items per pair: a query's tokens, usually <= 32 */
#define TILE       32      /* document tokens decompressed into local memory at once */
#define MAX_PAIRS  65536   /* pairs per rerank launch (bounds the gathered residuals) */
#define MAX_APPROX 1048576 /* pairs per approximate-score launch */

struct ms_plaid_dev {
    struct ms_cl *cl;
    const struct ms_plaid *p;
    cl_program prog;
    cl_kernel k_cs, k_approx, k_rerank;
    cl_mem centroids, centroids_t, lut, codes, doc_off;
    cl_mem residuals; /* search, when the index fits: every residual row */
    struct ms_plaid_stats stats;
};

int ms_plaid_dev_create(struct ms_plaid_dev **out, struct ms_cl *cl, const struct ms_plaid *p,
                        int flags, struct ms_err *err)
{
    struct ms_plaid_dev *d;
    const uint32_t K = p->n_centroids, dim = p->dim, kpb = 8 / p->nbits;
    float *ct = NULL, lut[256 * 8];
    uint32_t *off32 = NULL;
    cl_int rc;
    int st = MS_OK;

    *out = NULL;
    if (!(d = ms_calloc(1, sizeof *d, err)))
        return err->status;
    d->cl = cl;
    d->p = p;
    if ((st = ms_cl_program(cl, "plaid.cl",
                            cl->info.is_nvidia ? "-cl-std=CL1.2 -DMS_NVIDIA=1" : "-cl-std=CL1.2",
                            &d->prog, err)) != MS_OK)
        goto fail;
    if (!(d->k_cs = clCreateKernel(d->prog, "plaid_centroid_scores", &rc)) ||
        !(d->k_approx = clCreateKernel(d->prog, "plaid_approx", &rc)) ||
        !(d->k_rerank = clCreateKernel(d->prog, "plaid_rerank", &rc))) {
        st = ms_cl_fail(err, "clCreateKernel(plaid)", rc);
        goto fail;
    }
    ms_plaid_lut(p, lut);
    if (!(d->centroids = ms_cl_buffer(d->cl, CL_MEM_READ_ONLY, (size_t)K * dim * 4, p->centroids,
                                      "centroids", err)) ||
        !(d->lut =
              ms_cl_buffer(d->cl, CL_MEM_READ_ONLY, 256 * kpb * 4, lut, "decode table", err))) {
        st = err->status;
        goto fail;
    }
    const int search = flags & MS_PLAID_SEARCH;
    /* residuals resident when they fit, unless told otherwise: on PoCL the
     * resident and the per-batch gathered copies measured the same kernel
     * time (docs/plaid-notes.md); on a GPU residency saves the uploads */
    const int resident = !(flags & MS_PLAID_GATHER);
    if (search) {
        if (p->n_tokens >= UINT32_MAX) {
            st = ms_err_set(err, MS_ERR_RUNTIME, "'%s': %llu tokens; search supports < 2^32",
                            p->dir, (unsigned long long)p->n_tokens);
            goto fail;
        }
        if (!(ct = ms_malloc((size_t)K * dim * sizeof *ct, err))) {
            st = err->status;
            goto fail;
        }
        for (uint64_t c = 0; c < K; c++)
            for (uint32_t k = 0; k < dim; k++)
                ct[(uint64_t)k * K + c] = p->centroids[c * dim + k];
        /* 32-bit document offsets (fewer than 2^32 tokens, checked above):
         * 64-bit index math in the kernels' inner loops halves PoCL's speed */
        if (!(off32 = ms_malloc((p->n_docs + 1) * 4, err))) {
            st = err->status;
            goto fail;
        }
        for (uint64_t i = 0; i <= p->n_docs; i++)
            off32[i] = (uint32_t)p->doc_off[i];
        if (!(d->centroids_t = ms_cl_buffer(d->cl, CL_MEM_READ_ONLY, (size_t)K * dim * 4, ct,
                                            "centroids", err)) ||
            !(d->doc_off = ms_cl_buffer(d->cl, CL_MEM_READ_ONLY, (p->n_docs + 1) * 4, off32,
                                        "document offsets", err)) ||
            !(d->codes =
                  ms_cl_buffer(d->cl, CL_MEM_READ_ONLY, p->n_tokens * 4, NULL, "codes", err))) {
            st = err->status;
            goto fail;
        }
        /* codes: converted to uint32 a slice at a time from the mapped files */
        const uint64_t slice = 1 << 20;
        uint32_t *buf = ms_malloc(slice * 4, err);
        if (!buf) {
            st = err->status;
            goto fail;
        }
        for (uint64_t t = 0; t < p->n_tokens && st == MS_OK; t += slice) {
            const uint64_t n = p->n_tokens - t < slice ? p->n_tokens - t : slice;
            ms_plaid_codes(p, t, n, buf);
            rc = clEnqueueWriteBuffer(cl->queue, d->codes, CL_TRUE, t * 4, n * 4, buf, 0, NULL,
                                      NULL);
            if (rc != CL_SUCCESS)
                st = ms_cl_fail(err, "clEnqueueWriteBuffer(codes)", rc);
        }
        free(buf);
        if (st != MS_OK)
            goto fail;
        /* The residuals too when they fit (one allocation, and with the codes
         * at most half the device memory): then reranking reads them in place
         * and no batch gathers or uploads anything. Otherwise each batch
         * uploads the rows of the documents it reranks. */
        const uint64_t rbytes = p->n_tokens * p->packed;
        if (resident && rbytes && (!cl->info.max_alloc || rbytes <= cl->info.max_alloc) &&
            (!cl->info.global_mem || rbytes + p->n_tokens * 4 <= cl->info.global_mem / 2)) {
            uint8_t *rb = ms_malloc(slice * p->packed, err);
            cl_mem m = rb ? clCreateBuffer(cl->ctx, CL_MEM_READ_ONLY, rbytes, NULL, &rc) : NULL;
            for (uint64_t t = 0; m && t < p->n_tokens; t += slice) {
                const uint64_t n = p->n_tokens - t < slice ? p->n_tokens - t : slice;
                ms_plaid_residuals(p, t, n, rb);
                if (clEnqueueWriteBuffer(cl->queue, m, CL_TRUE, t * p->packed, n * p->packed, rb, 0,
                                         NULL, NULL) != CL_SUCCESS) {
                    clReleaseMemObject(m); /* not fatal: gather per batch instead */
                    m = NULL;
                }
            }
            free(rb);
            if (!rb) {
                st = err->status;
                goto fail;
            }
            d->residuals = m;
        }
    }
    free(ct);
    free(off32);
    *out = d;
    return MS_OK;
fail:
    free(ct);
    free(off32);
    ms_plaid_dev_free(d);
    return st;
}

void ms_plaid_dev_free(struct ms_plaid_dev *d)
{
    if (!d)
        return;
    ms_cl_release(&d->centroids);
    ms_cl_release(&d->centroids_t);
    ms_cl_release(&d->lut);
    ms_cl_release(&d->codes);
    ms_cl_release(&d->doc_off);
    ms_cl_release(&d->residuals);
    if (d->k_cs)
        clReleaseKernel(d->k_cs);
    if (d->k_approx)
        clReleaseKernel(d->k_approx);
    if (d->k_rerank)
        clReleaseKernel(d->k_rerank);
    if (d->prog)
        clReleaseProgram(d->prog);
    free(d);
}

const struct ms_plaid_stats *ms_plaid_dev_stats(const struct ms_plaid_dev *d)
{
    return &d->stats;
}

/* Queries on the device: float32 tokens back to back, offsets and lengths. */
struct qbuf {
    cl_mem tok, off, len;
    uint32_t n_tok, max_len;
};

static void qbuf_release(struct qbuf *b)
{
    ms_cl_release(&b->tok);
    ms_cl_release(&b->off);
    ms_cl_release(&b->len);
}

static int qbuf_upload(struct ms_plaid_dev *d, const struct ms_emb *q, struct qbuf *b,
                       struct ms_err *err)
{
    const uint64_t nt = ms_emb_n_tokens(q), nr = q->n_rows;
    float *tok = ms_malloc((nt ? nt : 1) * q->dim * sizeof *tok, err);
    uint32_t *off = ms_malloc((nr + 1) * sizeof *off, err), *len = ms_malloc((nr + 1) * 4, err);
    int st = MS_OK;

    memset(b, 0, sizeof *b);
    if (!tok || !off || !len) {
        st = MS_ERR_RUNTIME;
        goto done;
    }
    if (q->dim != d->p->dim) {
        st = ms_err_set(err, MS_ERR_INPUT, "dim mismatch: queries have dim %u, the index '%s' %u",
                        q->dim, d->p->dir, d->p->dim);
        goto done;
    }
    for (uint64_t i = 0; i < nt * q->dim; i++)
        tok[i] = ms_emb_value(q, i / q->dim, (uint32_t)(i % q->dim));
    for (uint64_t r = 0; r < nr; r++) {
        off[r] = (uint32_t)q->offsets[r];
        len[r] = (uint32_t)ms_emb_row_len(q, r);
        b->max_len = len[r] > b->max_len ? len[r] : b->max_len;
    }
    b->n_tok = (uint32_t)nt;
    if (!(b->tok = ms_cl_buffer(d->cl, CL_MEM_READ_ONLY, nt * q->dim * 4, tok, "queries", err)) ||
        !(b->off = ms_cl_buffer(d->cl, CL_MEM_READ_ONLY, nr * 4, off, "query offsets", err)) ||
        !(b->len = ms_cl_buffer(d->cl, CL_MEM_READ_ONLY, nr * 4, len, "query lengths", err)))
        st = err->status;
done:
    free(tok);
    free(off);
    free(len);
    if (st != MS_OK)
        qbuf_release(b);
    return st;
}

static int cmp_u32(const void *a, const void *b)
{
    const uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* Exact scores of n pairs (n <= MAX_PAIRS) against uploaded queries. */
static int rerank_block(struct ms_plaid_dev *d, const struct qbuf *qb, const uint32_t *pair_q,
                        const uint32_t *pair_doc, uint64_t n, float *out, struct ms_err *err)
{
    const struct ms_plaid *p = d->p;
    uint32_t *docs = ms_malloc((n ? n : 1) * 4, err), *pg = ms_malloc((n ? n : 1) * 4, err);
    uint32_t *goff = NULL, *gcodes = NULL, nd = 0;
    uint8_t *gres = NULL;
    cl_mem b_goff = NULL, b_codes = NULL, b_res = NULL, b_pq = NULL, b_pg = NULL, b_out = NULL;
    int st = MS_OK;
    cl_int rc = CL_SUCCESS;

    if (!docs || !pg) {
        st = MS_ERR_RUNTIME;
        goto done;
    }
    if (d->residuals) { /* resident index: pairs name documents, offsets are the index's */
        memcpy(pg, pair_doc, n * 4);
        goto gathered;
    }
    memcpy(docs, pair_doc, n * 4);
    qsort(docs, n, 4, cmp_u32);
    for (uint64_t i = 0; i < n; i++)
        if (nd == 0 || docs[nd - 1] != docs[i])
            docs[nd++] = docs[i];
    uint64_t ntok = 0;
    for (uint32_t i = 0; i < nd; i++)
        ntok += p->doc_off[docs[i] + 1] - p->doc_off[docs[i]];
    if (ntok >= UINT32_MAX) { /* 32-bit offsets: index math in the kernel stays 32-bit */
        st = ms_err_set(err, MS_ERR_RUNTIME, "too many tokens gathered for one launch");
        goto done;
    }
    if (!(goff = ms_malloc((nd + 1ull) * 4, err)) ||
        !(gcodes = ms_malloc((ntok ? ntok : 1) * 4, err)) ||
        !(gres = ms_malloc((ntok ? ntok : 1) * p->packed, err))) {
        st = err->status;
        goto done;
    }
    goff[0] = 0;
    for (uint32_t i = 0; i < nd; i++) {
        const uint64_t t0 = p->doc_off[docs[i]], len = p->doc_off[docs[i] + 1] - t0;
        ms_plaid_codes(p, t0, len, gcodes + goff[i]);
        ms_plaid_residuals(p, t0, len, gres + (uint64_t)goff[i] * p->packed);
        goff[i + 1] = goff[i] + (uint32_t)len;
    }
    for (uint64_t i = 0; i < n; i++) {
        const uint32_t *f = bsearch(&pair_doc[i], docs, nd, 4, cmp_u32);
        pg[i] = (uint32_t)(f - docs);
    }
    if (!(b_goff = ms_cl_buffer(d->cl, CL_MEM_READ_ONLY, (nd + 1ull) * 4, goff, "offsets", err)) ||
        !(b_codes = ms_cl_buffer(d->cl, CL_MEM_READ_ONLY, ntok * 4, gcodes, "codes", err)) ||
        !(b_res =
              ms_cl_buffer(d->cl, CL_MEM_READ_ONLY, ntok * p->packed, gres, "residuals", err))) {
        st = err->status;
        goto done;
    }
gathered:;
    /* local memory: the query transposed, a tile, its inverse norms, the maxima */
    const uint32_t lq_cap = qb->max_len ? qb->max_len : 1, dim = p->dim;
    uint32_t tile = TILE;
    const uint64_t lmem = d->cl->info.local_mem ? d->cl->info.local_mem : 32768;
    while (tile > 8 && ((uint64_t)lq_cap * dim + (uint64_t)tile * dim + tile + lq_cap) * 4 > lmem)
        tile /= 2; /* a multiple of 8: the kernel reads 8 tile tokens at a time */
    if (((uint64_t)lq_cap * dim + (uint64_t)tile * dim + tile + lq_cap) * 4 > lmem) {
        st = ms_err_set(err, MS_ERR_INPUT,
                        "a query of %u tokens of dim %u does not fit the %llu bytes of local "
                        "memory of '%s'",
                        lq_cap, dim, (unsigned long long)lmem, d->cl->info.name);
        goto done;
    }
    if (!(b_pq = ms_cl_buffer(d->cl, CL_MEM_READ_ONLY, n * 4, pair_q, "pairs", err)) ||
        !(b_pg = ms_cl_buffer(d->cl, CL_MEM_READ_ONLY, n * 4, pg, "pairs", err)) ||
        !(b_out = ms_cl_buffer(d->cl, CL_MEM_WRITE_ONLY, n * 4, NULL, "scores", err))) {
        st = err->status;
        goto done;
    }
    {
        const cl_uint kpb = 8 / p->nbits, packed = p->packed, np = (cl_uint)n;
        cl_kernel k = d->k_rerank;
        if ((st = MS_CL_SET_ARGS(
                 k, "plaid_rerank", err, MS_ARG(d->centroids), MS_ARG(d->lut), MS_ARG(dim),
                 MS_ARG(kpb), MS_ARG(packed), MS_ARG(qb->tok), MS_ARG(qb->off), MS_ARG(qb->len),
                 { sizeof(cl_mem), d->residuals ? &d->doc_off : &b_goff },
                 { sizeof(cl_mem), d->residuals ? &d->codes : &b_codes },
                 { sizeof(cl_mem), d->residuals ? &d->residuals : &b_res }, MS_ARG(b_pq),
                 MS_ARG(b_pg), MS_ARG(np), MS_ARG(tile), MS_ARG(lq_cap),
                 { (size_t)lq_cap * dim * 4, NULL }, { (size_t)tile * dim * 4, NULL },
                 { (size_t)tile * 4, NULL }, { (size_t)lq_cap * 4, NULL }, MS_ARG(b_out))) != MS_OK)
            goto done;
        const size_t global = (size_t)n * WG, local = WG;
        if (n && (st = ms_cl_launch(d->cl, k, 1, &global, &local, "plaid_rerank",
                                    &d->stats.rerank_s, err)) != MS_OK)
            goto done;
    }
    if (n && (rc = clEnqueueReadBuffer(d->cl->queue, b_out, CL_TRUE, 0, n * 4, out, 0, NULL,
                                       NULL)) != CL_SUCCESS)
        st = ms_cl_fail(err, "clEnqueueReadBuffer(scores)", rc);
done:
    ms_cl_release(&b_goff);
    ms_cl_release(&b_codes);
    ms_cl_release(&b_res);
    ms_cl_release(&b_pq);
    ms_cl_release(&b_pg);
    ms_cl_release(&b_out);
    free(docs);
    free(pg);
    free(goff);
    free(gcodes);
    free(gres);
    return st;
}

static int rerank_pairs(struct ms_plaid_dev *d, const struct qbuf *qb, const uint32_t *pair_q,
                        const uint32_t *pair_doc, uint64_t n, float *out, struct ms_err *err)
{
    for (uint64_t i = 0; i < n; i += MAX_PAIRS) {
        const uint64_t m = n - i < MAX_PAIRS ? n - i : MAX_PAIRS;
        int st = rerank_block(d, qb, pair_q + i, pair_doc + i, m, out + i, err);
        if (st != MS_OK)
            return st;
    }
    return MS_OK;
}

int ms_plaid_dev_rerank(struct ms_plaid_dev *d, const struct ms_emb *q, const uint32_t *pair_q,
                        const uint32_t *pair_doc, uint64_t n, float *out, struct ms_err *err)
{
    struct qbuf qb;
    int st = qbuf_upload(d, q, &qb, err);
    if (st != MS_OK)
        return st;
    st = rerank_pairs(d, &qb, pair_q, pair_doc, n, out, err);
    qbuf_release(&qb);
    return st;
}

/* S = centroids x query tokens on the device ([K][n_tok]); optionally read back. */
static int centroid_scores(struct ms_plaid_dev *d, const struct qbuf *qb, cl_mem *s, float *host,
                           struct ms_err *err)
{
    const cl_uint K = d->p->n_centroids, dim = d->p->dim, nt = qb->n_tok;
    cl_int rc = CL_SUCCESS;
    int st;

    if (!(*s = ms_cl_buffer(d->cl, CL_MEM_READ_WRITE, (size_t)K * nt * 4, NULL, "centroid scores",
                            err)))
        return err->status;
    if (MS_CL_SET_ARGS(d->k_cs, "plaid_centroid_scores", err, MS_ARG(d->centroids_t), MS_ARG(K),
                       MS_ARG(dim), MS_ARG(qb->tok), MS_ARG(nt), MS_ARG(*s)) != MS_OK)
        return err->status;
    if (nt == 0)
        return MS_OK;
    const size_t global[2] = { ((size_t)K + 63) / 64 * 64, nt }, local[2] = { 64, 1 };
    if ((st = ms_cl_launch(d->cl, d->k_cs, 2, global, local, "plaid_centroid_scores",
                           &d->stats.centroid_s, err)) != MS_OK)
        return st;
    if (host && (rc = clEnqueueReadBuffer(d->cl->queue, *s, CL_TRUE, 0, (size_t)K * nt * 4, host, 0,
                                          NULL, NULL)) != CL_SUCCESS)
        return ms_cl_fail(err, "clEnqueueReadBuffer(centroid scores)", rc);
    return MS_OK;
}

static int approx_pairs(struct ms_plaid_dev *d, const struct qbuf *qb, cl_mem s,
                        const uint32_t *pair_q, const uint32_t *pair_doc, uint64_t n, float *out,
                        struct ms_err *err)
{
    for (uint64_t i0 = 0; i0 < n; i0 += MAX_APPROX) {
        const uint64_t m = n - i0 < MAX_APPROX ? n - i0 : MAX_APPROX;
        /* GPUs want many work-groups; CPUs few, each with more work */
        const cl_uint nt = qb->n_tok, np = (cl_uint)m,
                      per_group = d->cl->info.type & CL_DEVICE_TYPE_GPU ? 1 : 16;
        cl_mem b_pq = ms_cl_buffer(d->cl, CL_MEM_READ_ONLY, m * 4, pair_q + i0, "pairs", err);
        cl_mem b_pd =
            b_pq ? ms_cl_buffer(d->cl, CL_MEM_READ_ONLY, m * 4, pair_doc + i0, "pairs", err) : NULL;
        cl_mem b_out =
            b_pd ? ms_cl_buffer(d->cl, CL_MEM_WRITE_ONLY, m * 4, NULL, "scores", err) : NULL;
        cl_kernel k = d->k_approx;
        cl_int rc = CL_SUCCESS;
        int st = MS_OK;
        if (!b_out) {
            st = err->status;
            goto next;
        }
        if ((st = MS_CL_SET_ARGS(k, "plaid_approx", err, MS_ARG(s), MS_ARG(nt), MS_ARG(d->codes),
                                 MS_ARG(d->doc_off), MS_ARG(qb->off), MS_ARG(qb->len), MS_ARG(b_pq),
                                 MS_ARG(b_pd), MS_ARG(np), MS_ARG(per_group),
                                 { (size_t)(qb->max_len ? qb->max_len : 1) * 4, NULL },
                                 MS_ARG(b_out))) != MS_OK)
            goto next;
        const size_t global = (size_t)((m + per_group - 1) / per_group) * WG, local = WG;
        if ((st = ms_cl_launch(d->cl, k, 1, &global, &local, "plaid_approx", &d->stats.approx_s,
                               err)) == MS_OK &&
            (rc = clEnqueueReadBuffer(d->cl->queue, b_out, CL_TRUE, 0, m * 4, out + i0, 0, NULL,
                                      NULL)) != CL_SUCCESS)
            st = ms_cl_fail(err, "clEnqueueReadBuffer(approximate scores)", rc);
    next:
        ms_cl_release(&b_pq);
        ms_cl_release(&b_pd);
        ms_cl_release(&b_out);
        if (st != MS_OK)
            return st;
    }
    return MS_OK;
}

int ms_plaid_dev_approx(struct ms_plaid_dev *d, const struct ms_emb *q, const uint32_t *pair_q,
                        const uint32_t *pair_doc, uint64_t n, float *out, struct ms_err *err)
{
    struct qbuf qb;
    cl_mem s = NULL;
    int st;

    if (!d->codes)
        return ms_err_set(err, MS_ERR_RUNTIME, "approximate scores need the search setup");
    if ((st = qbuf_upload(d, q, &qb, err)) != MS_OK)
        return st;
    if ((st = centroid_scores(d, &qb, &s, NULL, err)) == MS_OK)
        st = approx_pairs(d, &qb, s, pair_q, pair_doc, n, out, err);
    ms_cl_release(&s);
    qbuf_release(&qb);
    return st;
}

struct cand {
    float score;
    uint32_t doc;
};

/* Higher score first, ties by lower document id. */
static int by_score(const void *a, const void *b)
{
    const struct cand *x = a, *y = b;
    if (x->score != y->score)
        return x->score > y->score ? -1 : 1;
    return x->doc < y->doc ? -1 : x->doc > y->doc;
}

/* The top n of K scores s[c * stride] (higher first, ties by lower c) into top[]. */
static uint32_t top_centroids(const float *s, uint64_t stride, uint32_t K, uint32_t n,
                              uint32_t *top, float *val)
{
    uint32_t m = 0;
    for (uint32_t c = 0; c < K; c++) {
        const float v = s[(uint64_t)c * stride];
        if (m == n && !(v > val[m - 1]))
            continue;
        uint32_t i = m < n ? m++ : m - 1;
        while (i > 0 && v > val[i - 1]) {
            val[i] = val[i - 1];
            top[i] = top[i - 1];
            i--;
        }
        val[i] = v;
        top[i] = c;
    }
    return m;
}

int ms_plaid_dev_search(struct ms_plaid_dev *d, const struct ms_emb *q,
                        const struct ms_plaid_search_opts *o, struct ms_topk *t, uint64_t q0,
                        struct ms_err *err)
{
    const struct ms_plaid *p = d->p;
    const uint32_t K = p->n_centroids;
    const uint32_t nprobe = o->nprobe < K ? (uint32_t)o->nprobe : K;
    const uint64_t keep = o->nrerank < o->ncandidates ? o->nrerank : o->ncandidates;
    struct qbuf qb;
    cl_mem s = NULL;
    float *sh = NULL, *approx = NULL, *exact = NULL, *val = NULL;
    uint32_t *top = NULL, *cstamp = NULL, *dstamp = NULL, *pq = NULL, *pd = NULL;
    uint64_t *qstart = NULL, np = 0, cap = 0;
    struct cand *cands = NULL;
    int st;

    if (!d->codes)
        return ms_err_set(err, MS_ERR_RUNTIME, "search needs the search setup");
    if ((st = qbuf_upload(d, q, &qb, err)) != MS_OK)
        return st;
    if (!(sh = ms_malloc(((size_t)K * qb.n_tok + 1) * 4, err)) ||
        !(top = ms_malloc((nprobe + 1) * 4, err)) || !(val = ms_malloc((nprobe + 1) * 4, err)) ||
        !(cstamp = ms_calloc(K, 4, err)) || !(dstamp = ms_calloc(p->n_docs + 1, 4, err)) ||
        !(qstart = ms_malloc((q->n_rows + 1) * 8, err))) {
        st = err->status;
        goto done;
    }
    if ((st = centroid_scores(d, &qb, &s, sh, err)) != MS_OK)
        goto done;
    /* candidates: per query the union of the IVF lists of its probed centroids */
    for (uint64_t r = 0; r < q->n_rows; r++) {
        const uint32_t stamp = (uint32_t)r + 1, qo = (uint32_t)q->offsets[r];
        const uint64_t lq = ms_emb_row_len(q, r);
        qstart[r] = np;
        for (uint64_t j = 0; j < lq; j++) {
            const uint32_t m = top_centroids(sh + qo + j, qb.n_tok, K, nprobe, top, val);
            for (uint32_t i = 0; i < m; i++) {
                const uint32_t c = top[i];
                if (cstamp[c] == stamp)
                    continue;
                cstamp[c] = stamp;
                if (o->use_threshold) { /* NextPlaid: the centroid's best score over the query */
                    float best = -INFINITY;
                    for (uint64_t jj = 0; jj < lq; jj++)
                        best = fmaxf(best, sh[(uint64_t)c * qb.n_tok + qo + jj]);
                    if (best < o->threshold)
                        continue;
                }
                for (uint64_t e = p->ivf_off[c]; e < p->ivf_off[c + 1]; e++) {
                    const uint32_t doc = p->ivf[e];
                    if (dstamp[doc] == stamp)
                        continue;
                    dstamp[doc] = stamp;
                    if (np == cap) {
                        cap = cap ? 2 * cap : 65536;
                        uint32_t *a = ms_realloc(pq, cap * 4, err),
                                 *b = a ? ms_realloc(pd, cap * 4, err) : NULL;
                        if (a)
                            pq = a;
                        if (!b) {
                            st = err->status;
                            goto done;
                        }
                        pd = b;
                    }
                    pq[np] = (uint32_t)r;
                    pd[np++] = doc;
                }
            }
        }
    }
    qstart[q->n_rows] = np;
    if (!(approx = ms_malloc((np + 1) * 4, err)) ||
        !(cands = ms_malloc((np + 1) * sizeof *cands, err)) ||
        !(exact = ms_malloc((np + 1) * 4, err))) {
        st = err->status;
        goto done;
    }
    d->stats.candidates += np;
    if ((st = approx_pairs(d, &qb, s, pq, pd, np, approx, err)) != MS_OK)
        goto done;
    ms_cl_release(&s);
    /* per query: the best `keep` by approximate score; pairs compacted in place */
    uint64_t nr = 0;
    for (uint64_t r = 0; r < q->n_rows; r++) {
        const uint64_t a = qstart[r], n = qstart[r + 1] - a;
        for (uint64_t i = 0; i < n; i++) {
            cands[i].score = approx[a + i];
            cands[i].doc = pd[a + i];
        }
        qsort(cands, n, sizeof *cands, by_score);
        const uint64_t m = n < keep ? n : keep;
        for (uint64_t i = 0; i < m; i++) {
            pq[nr] = (uint32_t)r;
            pd[nr++] = cands[i].doc;
        }
    }
    d->stats.reranked += nr;
    if ((st = rerank_pairs(d, &qb, pq, pd, nr, exact, err)) != MS_OK)
        goto done;
    for (uint64_t i = 0; i < nr; i++)
        ms_topk_push_one(t, q0 + pq[i], exact[i], pd[i]);
done:
    ms_cl_release(&s);
    qbuf_release(&qb);
    free(sh);
    free(approx);
    free(exact);
    free(val);
    free(top);
    free(cstamp);
    free(dstamp);
    free(pq);
    free(pd);
    free(qstart);
    free(cands);
    return st;
}
