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

#include "stream.h" /* ms_now */

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
    cl_kernel k_cs, k_approx, k_rerank, k_probe, k_probe_tile, k_probe_merge, k_union, k_count,
        k_compact, k_select;
    /* device search: centroid slices of the probe (0: chosen per batch) and
     * bitmap words per count / compact work-group; MAXSIM_PLAID_SLICES and
     * MAXSIM_PLAID_SEG_WORDS set them (tests, tuning) */
    uint32_t probe_slices, seg_words;
    cl_kernel k_cs_nv; /* NVIDIA: centroid scores on the tensor cores */
    cl_mem centroids, centroids_t, lut, codes, doc_off, ivf_off, ivf;
    cl_mem centroids16; /* [K][dim] float16, for k_cs_nv */
    /* device search: launches not waited for one by one (the queue is in
     * order; the batch's blocking reads order the host), their events kept
     * for the kernel times until the batch ends */
    int defer;
    /* device search: buffers kept between batches (dbuf / drel) */
    struct {
        cl_mem m;
        size_t cap;
        int busy;
    } pool[40];
    int n_pend;
    cl_event pend[32];
    double *pend_acc[32];
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
        !(d->k_rerank = clCreateKernel(d->prog, "plaid_rerank", &rc)) ||
        !(d->k_probe = clCreateKernel(d->prog, "plaid_probe", &rc)) ||
        !(d->k_probe_tile = clCreateKernel(d->prog, "plaid_probe_tile", &rc)) ||
        !(d->k_probe_merge = clCreateKernel(d->prog, "plaid_probe_merge", &rc)) ||
        !(d->k_union = clCreateKernel(d->prog, "plaid_union", &rc)) ||
        !(d->k_count = clCreateKernel(d->prog, "plaid_count", &rc)) ||
        !(d->k_compact = clCreateKernel(d->prog, "plaid_compact", &rc)) ||
        !(d->k_select = clCreateKernel(d->prog, "plaid_select", &rc))) {
        st = ms_cl_fail(err, "clCreateKernel(plaid)", rc);
        goto fail;
    }
    {
        const char *e = getenv("MAXSIM_PLAID_SLICES");
        d->probe_slices = e ? (uint32_t)strtoul(e, NULL, 10) : 0;
        d->probe_slices = d->probe_slices > 1024 ? 1024 : d->probe_slices;
        e = getenv("MAXSIM_PLAID_SEG_WORDS");
        d->seg_words = e ? (uint32_t)strtoul(e, NULL, 10) : 2048;
        d->seg_words = d->seg_words < 1 ? 1 : d->seg_words;
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
        /* NVIDIA, dim a multiple of 16: centroid scores on the tensor cores
         * (float16 inputs), unless MAXSIM_PLAID_NV=0 */
        const char *nv = getenv("MAXSIM_PLAID_NV");
        if (cl->info.is_nvidia && dim % 16 == 0 && !(nv && !strcmp(nv, "0"))) {
            uint16_t *c16 = (uint16_t *)ct; /* the scratch is large enough */
            for (uint64_t i = 0; i < (uint64_t)K * dim; i++)
                c16[i] = ms_float_to_half(p->centroids[i]);
            if ((st = ms_cl_kernel(d->prog, "plaid_centroid_scores_nv", &d->k_cs_nv, err)) !=
                    MS_OK ||
                !(d->centroids16 = ms_cl_buffer(d->cl, CL_MEM_READ_ONLY, (size_t)K * dim * 2, c16,
                                                "centroids", err))) {
                st = err->status;
                goto fail;
            }
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
            !(d->ivf_off = ms_cl_buffer(d->cl, CL_MEM_READ_ONLY, (K + 1ull) * 8, p->ivf_off,
                                        "IVF offsets", err)) ||
            !(d->ivf =
                  ms_cl_buffer(d->cl, CL_MEM_READ_ONLY, p->ivf_off[K] * 4, p->ivf, "IVF", err)) ||
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
            /* straight from the mapped files: a part's rows are contiguous */
            cl_mem m = clCreateBuffer(cl->ctx, CL_MEM_READ_ONLY, rbytes, NULL, &rc);
            for (int i = 0; m && i < p->n_parts; i++) {
                const struct ms_plaid_part *pt = &p->parts[i];
                if (pt->n_tokens &&
                    clEnqueueWriteBuffer(cl->queue, m, CL_TRUE, pt->tok0 * p->packed,
                                         pt->n_tokens * p->packed, pt->residuals.data, 0, NULL,
                                         NULL) != CL_SUCCESS) {
                    clReleaseMemObject(m); /* not fatal: gather per batch instead */
                    m = NULL;
                }
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
    ms_cl_release(&d->ivf_off);
    ms_cl_release(&d->ivf);
    ms_cl_release(&d->centroids16);
    for (size_t i = 0; i < sizeof d->pool / sizeof *d->pool; i++)
        ms_cl_release(&d->pool[i].m);
    if (d->k_cs_nv)
        clReleaseKernel(d->k_cs_nv);
    cl_kernel *ks[] = { &d->k_probe, &d->k_probe_tile, &d->k_probe_merge, &d->k_union,
                        &d->k_count, &d->k_compact,    &d->k_select };
    for (size_t i = 0; i < sizeof ks / sizeof *ks; i++)
        if (*ks[i])
            clReleaseKernel(*ks[i]);
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

/* A buffer of at least `bytes`, filled from host when given (a blocking
 * write: in the in-order queue it lands after every command before it, so a
 * buffer freed by drel can be handed out again within a batch). With
 * d->defer, from the pool kept between batches; else a new one. */
static cl_mem dbuf(struct ms_plaid_dev *d, size_t bytes, const void *host, const char *what,
                   struct ms_err *err)
{
    if (!d->defer)
        return ms_cl_buffer(d->cl, CL_MEM_READ_WRITE, bytes, host, what, err);
    const int n = (int)(sizeof d->pool / sizeof *d->pool);
    int best = -1, spare = -1;
    for (int i = 0; i < n; i++) {
        if (d->pool[i].busy)
            continue;
        if (d->pool[i].m && d->pool[i].cap >= bytes &&
            (best < 0 || d->pool[i].cap < d->pool[best].cap))
            best = i;
        if (spare < 0 || !d->pool[i].m || (d->pool[spare].m && d->pool[i].cap < d->pool[spare].cap))
            spare = i;
    }
    if (best < 0 && spare >= 0) { /* a new one, in place of the smallest free (or an empty slot) */
        ms_cl_release(&d->pool[spare].m);
        const size_t cap = bytes < 4096 ? 4096 : bytes + bytes / 4;
        if (!(d->pool[spare].m = ms_cl_buffer(d->cl, CL_MEM_READ_WRITE, cap, NULL, what, err)))
            return NULL;
        d->pool[spare].cap = cap;
        best = spare;
    }
    if (best < 0) /* every slot busy: not pooled */
        return ms_cl_buffer(d->cl, CL_MEM_READ_WRITE, bytes, host, what, err);
    d->pool[best].busy = 1;
    if (host && bytes) {
        const cl_int rc = clEnqueueWriteBuffer(d->cl->queue, d->pool[best].m, CL_TRUE, 0, bytes,
                                               host, 0, NULL, NULL);
        if (rc != CL_SUCCESS) {
            d->pool[best].busy = 0;
            ms_cl_fail(err, "clEnqueueWriteBuffer", rc);
            return NULL;
        }
    }
    return d->pool[best].m;
}

/* Give back a buffer from dbuf (or release one that is not pooled). */
static void drel(struct ms_plaid_dev *d, cl_mem *m)
{
    if (!*m)
        return;
    for (size_t i = 0; i < sizeof d->pool / sizeof *d->pool; i++)
        if (d->pool[i].m == *m && d->pool[i].busy) {
            d->pool[i].busy = 0;
            *m = NULL;
            return;
        }
    ms_cl_release(m);
}

/* Kernel times of the deferred launches (all finished or failed by now). */
static int flush_launches(struct ms_plaid_dev *d, struct ms_err *err)
{
    int st = MS_OK;
    if (d->n_pend) {
        const cl_int rc = clWaitForEvents((cl_uint)d->n_pend, d->pend);
        if (rc != CL_SUCCESS)
            st = ms_err_set(err, MS_ERR_RUNTIME, "a plaid kernel failed on '%s': %s",
                            d->cl->info.name, ms_cl_strerror(rc));
    }
    for (int i = 0; i < d->n_pend; i++) {
        if (st == MS_OK)
            *d->pend_acc[i] += ms_cl_event_s(d->pend[i]);
        clReleaseEvent(d->pend[i]);
    }
    d->n_pend = 0;
    return st;
}

/* ms_cl_launch, or with d->defer an enqueue whose event is kept. */
static int launch(struct ms_plaid_dev *d, cl_kernel k, cl_uint dims, const size_t *global,
                  const size_t *local, const char *name, double *time_s, struct ms_err *err)
{
    if (!d->defer)
        return ms_cl_launch(d->cl, k, dims, global, local, name, time_s, err);
    if (d->n_pend == (int)(sizeof d->pend / sizeof *d->pend)) {
        const int st = flush_launches(d, err);
        if (st != MS_OK)
            return st;
    }
    cl_event ev = NULL;
    const cl_int rc =
        clEnqueueNDRangeKernel(d->cl->queue, k, dims, NULL, global, local, 0, NULL, &ev);
    if (rc != CL_SUCCESS)
        return ms_err_set(err, MS_ERR_RUNTIME, "clEnqueueNDRangeKernel(%s) failed on '%s': %s",
                          name, d->cl->info.name, ms_cl_strerror(rc));
    d->pend[d->n_pend] = ev;
    d->pend_acc[d->n_pend++] = time_s;
    return MS_OK;
}

int ms_plaid_dev_f16_centroids(const struct ms_plaid_dev *d)
{
    return d->k_cs_nv != NULL;
}

const struct ms_plaid_stats *ms_plaid_dev_stats(const struct ms_plaid_dev *d)
{
    return &d->stats;
}

/* Queries on the device: float32 tokens back to back, offsets and lengths,
 * and for every token its query (the union kernel's). With `trim`, each
 * query's trailing all-zero rows are left out (fast-plaid 1.7 does the same
 * before its search); offsets are then those of the trimmed tokens. */
struct qbuf {
    cl_mem tok, off, len, tok_q;
    cl_mem tok16; /* NVIDIA path: the tokens as float16 */
    cl_mem tok_t; /* the tokens transposed, [dim][ld_t] (portable centroid scores) */
    uint32_t ld_t;
    uint32_t n_tok, max_len;
    uint32_t *h_off, *h_len; /* the same on the host, [n_rows] */
};

static void qbuf_release(struct ms_plaid_dev *d, struct qbuf *b)
{
    drel(d, &b->tok);
    drel(d, &b->off);
    drel(d, &b->len);
    drel(d, &b->tok_q);
    drel(d, &b->tok16);
    drel(d, &b->tok_t);
    free(b->h_off);
    free(b->h_len);
    b->h_off = b->h_len = NULL;
}

/* Rows of query r left after dropping trailing rows whose elements are all 0. */
static uint64_t trimmed_len(const struct ms_emb *q, uint64_t r)
{
    uint64_t n = ms_emb_row_len(q, r);
    const uint64_t o = q->offsets[r];
    while (n > 0) {
        uint32_t k = 0;
        while (k < q->dim && ms_emb_value(q, o + n - 1, k) == 0.0f)
            k++;
        if (k < q->dim)
            break;
        n--;
    }
    return n;
}

static int qbuf_upload(struct ms_plaid_dev *d, const struct ms_emb *q, int trim, struct qbuf *b,
                       struct ms_err *err)
{
    const uint64_t nr = q->n_rows;
    float *tok = NULL;
    uint32_t *tq = NULL;
    uint64_t nt = 0;
    int st = MS_OK;

    memset(b, 0, sizeof *b);
    if (q->dim != d->p->dim)
        return ms_err_set(err, MS_ERR_INPUT, "dim mismatch: queries have dim %u, the index '%s' %u",
                          q->dim, d->p->dir, d->p->dim);
    if (!(b->h_off = ms_malloc((nr + 1) * 4, err)) || !(b->h_len = ms_malloc((nr + 1) * 4, err))) {
        st = err->status;
        goto done;
    }
    for (uint64_t r = 0; r < nr; r++) {
        b->h_off[r] = (uint32_t)nt;
        b->h_len[r] = (uint32_t)(trim ? trimmed_len(q, r) : ms_emb_row_len(q, r));
        b->max_len = b->h_len[r] > b->max_len ? b->h_len[r] : b->max_len;
        nt += b->h_len[r];
    }
    if (!(tok = ms_malloc((nt ? nt : 1) * q->dim * sizeof *tok, err)) ||
        !(tq = ms_malloc((nt ? nt : 1) * 4, err))) {
        st = err->status;
        goto done;
    }
    for (uint64_t r = 0; r < nr; r++)
        for (uint32_t i = 0; i < b->h_len[r]; i++) {
            const uint64_t t = b->h_off[r] + i;
            tq[t] = (uint32_t)r;
            for (uint32_t k = 0; k < q->dim; k++)
                tok[t * q->dim + k] = ms_emb_value(q, q->offsets[r] + i, k);
        }
    b->n_tok = (uint32_t)nt;
    if (!(b->tok = dbuf(d, nt * q->dim * 4, tok, "queries", err)) ||
        !(b->off = dbuf(d, nr * 4, b->h_off, "query offsets", err)) ||
        !(b->len = dbuf(d, nr * 4, b->h_len, "query lengths", err)) ||
        !(b->tok_q = dbuf(d, nt * 4, tq, "token queries", err))) {
        st = err->status;
        goto done;
    }
    if (d->codes && !d->k_cs_nv) { /* transposed copy, zero columns to a multiple of 8 */
        b->ld_t = (uint32_t)((nt + 15) / 16 * 16);
        float *t = ms_calloc((size_t)(b->ld_t ? b->ld_t : 1) * q->dim, 4, err);
        if (!t) {
            st = err->status;
            goto done;
        }
        for (uint64_t i = 0; i < nt; i++)
            for (uint32_t k = 0; k < q->dim; k++)
                t[(uint64_t)k * b->ld_t + i] = tok[i * q->dim + k];
        if (!(b->tok_t = dbuf(d, (size_t)b->ld_t * q->dim * 4, t, "queries", err)))
            st = err->status;
        free(t);
        if (st != MS_OK)
            goto done;
    }
    if (d->k_cs_nv) { /* float16 copy for the tensor-core centroid scores */
        uint16_t *h = ms_malloc((nt ? nt : 1) * q->dim * 2, err);
        if (!h) {
            st = err->status;
            goto done;
        }
        for (uint64_t i = 0; i < nt * q->dim; i++)
            h[i] = ms_float_to_half(tok[i]);
        if (!(b->tok16 = dbuf(d, nt * q->dim * 2, h, "queries", err)))
            st = err->status;
        free(h);
    }
done:
    free(tok);
    free(tq);
    if (st != MS_OK)
        qbuf_release(d, b);
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
        if (n && (st = launch(d, k, 1, &global, &local, "plaid_rerank", &d->stats.rerank_s, err)) !=
                     MS_OK)
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
    int st = qbuf_upload(d, q, 0, &qb, err);
    if (st != MS_OK)
        return st;
    st = rerank_pairs(d, &qb, pair_q, pair_doc, n, out, err);
    qbuf_release(d, &qb);
    return st;
}

/* S = centroids x query tokens on the device ([K][n_tok]); optionally read back. */
static int centroid_scores(struct ms_plaid_dev *d, const struct qbuf *qb, cl_mem *s, float *host,
                           struct ms_err *err)
{
    const cl_uint K = d->p->n_centroids, dim = d->p->dim, nt = qb->n_tok;
    cl_int rc = CL_SUCCESS;
    int st;

    if (!(*s = dbuf(d, (size_t)K * nt * 4, NULL, "centroid scores", err)))
        return err->status;
    if (nt == 0)
        return MS_OK;
    if (d->k_cs_nv && qb->tok16) { /* tensor cores: 64 centroids x 32 tokens a work-group */
        if (MS_CL_SET_ARGS(d->k_cs_nv, "plaid_centroid_scores_nv", err, MS_ARG(d->centroids16),
                           MS_ARG(K), MS_ARG(dim), MS_ARG(qb->tok16), MS_ARG(nt),
                           MS_ARG(*s)) != MS_OK)
            return err->status;
        const size_t global[2] = { ((size_t)K + 63) / 64 * 128, ((size_t)nt + 31) / 32 },
                     local[2] = { 128, 1 };
        st = launch(d, d->k_cs_nv, 2, global, local, "plaid_centroid_scores_nv",
                    &d->stats.centroid_s, err);
    } else {
        /* GPUs: the transposed centroids (coalesced); CPUs: row-major (a
         * work-item walks one contiguous row) */
        const int gpu = (d->cl->info.type & CL_DEVICE_TYPE_GPU) != 0;
        const cl_uint stride_k = gpu ? K : 1, stride_c = gpu ? 1 : dim;
        cl_mem cm = gpu ? d->centroids_t : d->centroids;
        if (MS_CL_SET_ARGS(d->k_cs, "plaid_centroid_scores", err, MS_ARG(cm), MS_ARG(K),
                           MS_ARG(dim), MS_ARG(stride_k), MS_ARG(stride_c), MS_ARG(qb->tok_t),
                           MS_ARG(nt), MS_ARG(qb->ld_t), MS_ARG(*s)) != MS_OK)
            return err->status;
        /* a work-item: one centroid, 16 query tokens */
        const size_t global[2] = { ((size_t)K + 63) / 64 * 64, ((size_t)nt + 15) / 16 },
                     local[2] = { 64, 1 };
        st = launch(d, d->k_cs, 2, global, local, "plaid_centroid_scores", &d->stats.centroid_s,
                    err);
    }
    if (st != MS_OK)
        return st;
    if (host && (rc = clEnqueueReadBuffer(d->cl->queue, *s, CL_TRUE, 0, (size_t)K * nt * 4, host, 0,
                                          NULL, NULL)) != CL_SUCCESS)
        return ms_cl_fail(err, "clEnqueueReadBuffer(centroid scores)", rc);
    return MS_OK;
}

/* Approximate scores of n device-resident pairs into b_out. */
static int approx_launch(struct ms_plaid_dev *d, const struct qbuf *qb, cl_mem s, cl_mem b_pq,
                         cl_mem b_pd, uint64_t n, cl_mem b_out, struct ms_err *err)
{
    /* GPUs want many work-groups; CPUs few, each with more work */
    const cl_uint nt = qb->n_tok, np = (cl_uint)n,
                  per_group = d->cl->info.type & CL_DEVICE_TYPE_GPU ? 1 : 16;
    cl_kernel k = d->k_approx;
    int st;
    if (!n)
        return MS_OK;
    if ((st = MS_CL_SET_ARGS(k, "plaid_approx", err, MS_ARG(s), MS_ARG(nt), MS_ARG(d->codes),
                             MS_ARG(d->doc_off), MS_ARG(qb->off), MS_ARG(qb->len), MS_ARG(b_pq),
                             MS_ARG(b_pd), MS_ARG(np), MS_ARG(per_group),
                             { (size_t)(qb->max_len ? qb->max_len : 1) * 4, NULL },
                             MS_ARG(b_out))) != MS_OK)
        return st;
    const size_t global = (size_t)((n + per_group - 1) / per_group) * WG, local = WG;
    return launch(d, k, 1, &global, &local, "plaid_approx", &d->stats.approx_s, err);
}

static int approx_pairs(struct ms_plaid_dev *d, const struct qbuf *qb, cl_mem s,
                        const uint32_t *pair_q, const uint32_t *pair_doc, uint64_t n, float *out,
                        struct ms_err *err)
{
    for (uint64_t i0 = 0; i0 < n; i0 += MAX_APPROX) {
        const uint64_t m = n - i0 < MAX_APPROX ? n - i0 : MAX_APPROX;
        cl_mem b_pq = ms_cl_buffer(d->cl, CL_MEM_READ_ONLY, m * 4, pair_q + i0, "pairs", err);
        cl_mem b_pd =
            b_pq ? ms_cl_buffer(d->cl, CL_MEM_READ_ONLY, m * 4, pair_doc + i0, "pairs", err) : NULL;
        cl_mem b_out =
            b_pd ? ms_cl_buffer(d->cl, CL_MEM_WRITE_ONLY, m * 4, NULL, "scores", err) : NULL;
        cl_int rc = CL_SUCCESS;
        int st = MS_OK;
        if (!b_out)
            st = err->status;
        else if ((st = approx_launch(d, qb, s, b_pq, b_pd, m, b_out, err)) == MS_OK &&
                 (rc = clEnqueueReadBuffer(d->cl->queue, b_out, CL_TRUE, 0, m * 4, out + i0, 0,
                                           NULL, NULL)) != CL_SUCCESS)
            st = ms_cl_fail(err, "clEnqueueReadBuffer(approximate scores)", rc);
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
    if ((st = qbuf_upload(d, q, 0, &qb, err)) != MS_OK)
        return st;
    if ((st = centroid_scores(d, &qb, &s, NULL, err)) == MS_OK)
        st = approx_pairs(d, &qb, s, pair_q, pair_doc, n, out, err);
    ms_cl_release(&s);
    qbuf_release(d, &qb);
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

/* The host pipeline (the first implementation, kept for tests: the device
 * pipeline must give the same bytes). */
static int search_host(struct ms_plaid_dev *d, const struct ms_emb *q, const struct qbuf *qbp,
                       const struct ms_plaid_search_opts *o, struct ms_topk *t, uint64_t q0,
                       struct ms_err *err)
{
    const struct ms_plaid *p = d->p;
    const uint32_t K = p->n_centroids;
    const uint32_t nprobe = o->nprobe < K ? (uint32_t)o->nprobe : K;
    const uint64_t keep = o->nrerank < o->ncandidates ? o->nrerank : o->ncandidates;
    const struct qbuf qb = *qbp;
    cl_mem s = NULL;
    float *sh = NULL, *approx = NULL, *exact = NULL, *val = NULL;
    uint32_t *top = NULL, *cstamp = NULL, *dstamp = NULL, *pq = NULL, *pd = NULL;
    uint64_t *qstart = NULL, np = 0, cap = 0;
    struct cand *cands = NULL;
    int st;

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
        const uint32_t stamp = (uint32_t)r + 1, qo = qb.h_off[r];
        const uint64_t lq = qb.h_len[r];
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

#define PL_WG    128 /* kernels/plaid.cl: probe, count, compact and select work-groups */
#define PL_PMAX  16  /* kernels/plaid.cl: probes of plaid_probe_tile */
#define UNION_WG 64  /* work-items per (token, probe) of plaid_union */

static int read_buf(struct ms_plaid_dev *d, cl_mem m, size_t bytes, void *host, const char *what,
                    struct ms_err *err)
{
    const cl_int rc =
        bytes ? clEnqueueReadBuffer(d->cl->queue, m, CL_TRUE, 0, bytes, host, 0, NULL, NULL)
              : CL_SUCCESS;
    if (rc != CL_SUCCESS) {
        char msg[96];
        snprintf(msg, sizeof msg, "clEnqueueReadBuffer(%s)", what);
        return ms_cl_fail(err, msg, rc);
    }
    return MS_OK;
}

/* Per query the best `keep` of its segment (plaid_select). */
static int select_launch(struct ms_plaid_dev *d, uint64_t nq, cl_mem seg_off, cl_mem seg_n,
                         cl_mem docs, cl_mem score, uint32_t keep, cl_mem oq, cl_mem od, cl_mem os,
                         cl_mem on, struct ms_err *err)
{
    int st;
    if ((st = MS_CL_SET_ARGS(d->k_select, "plaid_select", err, MS_ARG(seg_off), MS_ARG(seg_n),
                             MS_ARG(docs), MS_ARG(score), MS_ARG(keep), MS_ARG(oq), MS_ARG(od),
                             MS_ARG(os), MS_ARG(on))) != MS_OK)
        return st;
    const size_t global = nq * PL_WG, local = PL_WG;
    return launch(d, d->k_select, 1, &global, &local, "plaid_select", &d->stats.select_s, err);
}

/* The device pipeline (plaid_cl.h): only per-query counts (once) and the
 * final k results per query come back. */
static int search_device(struct ms_plaid_dev *d, uint64_t nq, const struct qbuf *qb,
                         const struct ms_plaid_search_opts *o, struct ms_topk *t, uint64_t q0,
                         struct ms_err *err)
{
    const struct ms_plaid *p = d->p;
    const uint32_t K = p->n_centroids, nprobe = o->nprobe < K ? (uint32_t)o->nprobe : K;
    const uint32_t words = (uint32_t)((p->n_docs + 31) / 32);
    const uint32_t seg_words = d->seg_words, nseg = (words + seg_words - 1) / seg_words;
    const uint64_t ng = nq * nseg; /* count / compact groups */
    uint64_t keep64 = o->nrerank < o->ncandidates ? o->nrerank : o->ncandidates;
    keep64 = keep64 < p->n_docs ? keep64 : p->n_docs;
    const uint32_t keep = keep64 ? (uint32_t)keep64 : 1, k = t->k ? (uint32_t)t->k : 1;
    cl_mem s = NULL, b_probe = NULL, b_part = NULL, b_part_v = NULL, b_bm = NULL, b_cnt = NULL,
           b_start = NULL, b_pq = NULL, b_pd = NULL, b_ap = NULL, b_sq = NULL, b_sd = NULL,
           b_ss = NULL, b_sn = NULL, b_ex = NULL, b_off2 = NULL, b_fq = NULL, b_fd = NULL,
           b_fs = NULL, b_fn = NULL;
    uint32_t *cnt = NULL, *start = NULL, *sd = NULL, *sn = NULL, *dq = NULL, *dd = NULL;
    float *fs = NULL, *ex = NULL;
    uint64_t np = 0;
    int st = MS_OK;
    cl_int rc;

    if (!qb->n_tok || !p->n_docs)
        return MS_OK; /* no tokens: no results */
    if ((st = centroid_scores(d, qb, &s, NULL, err)) != MS_OK)
        goto done;
    /* top nprobe centroids per token */
    if (!(b_probe = dbuf(d, (size_t)qb->n_tok * nprobe * 4, NULL, "probes", err))) {
        st = err->status;
        goto done;
    }
    if (nprobe <= PL_PMAX) {
        /* a work-group per 32 tokens and slice of the centroids: about two
         * groups a compute unit (one query of 32 tokens alone would use one
         * group for all 65,536 centroids of a 1M-document index, 4.5 ms on
         * the H200), slices of at least 128 centroids, at most 64 to merge */
        const uint32_t tiles = (uint32_t)((qb->n_tok + 31) / 32);
        uint32_t slices = d->probe_slices;
        if (!slices) {
            const uint32_t want = 2 * (d->cl->info.compute_units ? d->cl->info.compute_units : 1);
            slices = (want + tiles - 1) / tiles;
            slices = slices > 64 ? 64 : slices;
            slices = slices > (K + 127) / 128 ? (K + 127) / 128 : slices;
            slices = slices < 1 ? 1 : slices;
        }
        const uint32_t slice_len = (K + slices - 1) / slices;
        slices = (K + slice_len - 1) / slice_len; /* none empty */
        if (slices > 1 &&
            (!(b_part = dbuf(d, (size_t)slices * qb->n_tok * nprobe * 4, NULL, "probes", err)) ||
             !(b_part_v = dbuf(d, (size_t)slices * qb->n_tok * nprobe * 4, NULL, "probes", err)))) {
            st = err->status;
            goto done;
        }
        cl_mem out_c = slices > 1 ? b_part : b_probe, out_v = slices > 1 ? b_part_v : b_probe;
        if ((st = MS_CL_SET_ARGS(d->k_probe_tile, "plaid_probe_tile", err, MS_ARG(s), MS_ARG(K),
                                 MS_ARG(qb->n_tok), MS_ARG(nprobe), MS_ARG(slice_len),
                                 MS_ARG(out_c), MS_ARG(out_v))) != MS_OK)
            goto done;
        const size_t global[2] = { (size_t)tiles * PL_WG, slices }, local[2] = { PL_WG, 1 };
        if ((st = launch(d, d->k_probe_tile, 2, global, local, "plaid_probe_tile",
                         &d->stats.probe_s, err)) != MS_OK)
            goto done;
        if (slices > 1) {
            if ((st = MS_CL_SET_ARGS(d->k_probe_merge, "plaid_probe_merge", err, MS_ARG(b_part),
                                     MS_ARG(b_part_v), MS_ARG(slices), MS_ARG(qb->n_tok),
                                     MS_ARG(nprobe), MS_ARG(K), MS_ARG(b_probe))) != MS_OK)
                goto done;
            const size_t gm = ((size_t)qb->n_tok + 63) / 64 * 64, lm = 64;
            if ((st = launch(d, d->k_probe_merge, 1, &gm, &lm, "plaid_probe_merge",
                             &d->stats.probe_s, err)) != MS_OK)
                goto done;
        }
    } else {
        /* more probes: a work-group per token, a round per probe */
        if ((st = MS_CL_SET_ARGS(d->k_probe, "plaid_probe", err, MS_ARG(s), MS_ARG(K),
                                 MS_ARG(qb->n_tok), MS_ARG(nprobe), MS_ARG(b_probe))) != MS_OK)
            goto done;
        const size_t global = (size_t)qb->n_tok * PL_WG, local = PL_WG;
        if ((st = launch(d, d->k_probe, 1, &global, &local, "plaid_probe", &d->stats.probe_s,
                         err)) != MS_OK)
            goto done;
    }
    /* candidates: per query a bitmap over the documents */
    const cl_uint zero = 0;
    if (!(b_bm = dbuf(d, nq * words * 4, NULL, "bitmaps", err)) ||
        !(b_cnt = dbuf(d, ng * 4, NULL, "counts", err))) {
        st = err->status;
        goto done;
    }
    if ((rc = clEnqueueFillBuffer(d->cl->queue, b_bm, &zero, 4, 0, nq * words * 4, 0, NULL,
                                  NULL)) != CL_SUCCESS) {
        st = ms_cl_fail(err, "clEnqueueFillBuffer(bitmaps)", rc);
        goto done;
    }
    {
        const cl_int use_thr = o->use_threshold != 0;
        const cl_float thr = o->threshold;
        if ((st = MS_CL_SET_ARGS(d->k_union, "plaid_union", err, MS_ARG(s), MS_ARG(qb->n_tok),
                                 MS_ARG(b_probe), MS_ARG(nprobe), MS_ARG(qb->tok_q),
                                 MS_ARG(qb->off), MS_ARG(qb->len), MS_ARG(d->ivf_off),
                                 MS_ARG(d->ivf), MS_ARG(use_thr), MS_ARG(thr), MS_ARG(words),
                                 MS_ARG(b_bm))) != MS_OK)
            goto done;
        const size_t global = (size_t)qb->n_tok * nprobe * UNION_WG, local = UNION_WG;
        if ((st = launch(d, d->k_union, 1, &global, &local, "plaid_union", &d->stats.union_s,
                         err)) != MS_OK)
            goto done;
    }
    if ((st = MS_CL_SET_ARGS(d->k_count, "plaid_count", err, MS_ARG(b_bm), MS_ARG(words),
                             MS_ARG(seg_words), MS_ARG(b_cnt))) != MS_OK)
        goto done;
    {
        const size_t global = ng * PL_WG, local = PL_WG;
        if ((st = launch(d, d->k_count, 1, &global, &local, "plaid_count", &d->stats.union_s,
                         err)) != MS_OK)
            goto done;
    }
    if (!(cnt = ms_malloc(ng * 4, err)) || !(start = ms_malloc((ng + 1) * 4, err))) {
        st = err->status;
        goto done;
    }
    if ((st = read_buf(d, b_cnt, ng * 4, cnt, "candidate counts", err)) != MS_OK)
        goto done;
    uint64_t nr = 0;
    for (uint64_t r = 0; r < nq; r++) {
        uint64_t nq_r = 0; /* query r's candidates: its segments' counts */
        for (uint32_t g = 0; g < nseg; g++) {
            start[r * nseg + g] = (uint32_t)np;
            np += cnt[r * nseg + g];
            nq_r += cnt[r * nseg + g];
            if (np >= UINT32_MAX) {
                st = ms_err_set(err, MS_ERR_RUNTIME, "too many candidates in one batch");
                goto done;
            }
        }
        cnt[r] = (uint32_t)nq_r; /* in place: slot r is read before it is written */
        nr += nq_r < keep ? nq_r : keep;
    }
    start[ng] = (uint32_t)np;
    d->stats.candidates += np;
    d->stats.reranked += nr;
    if (!np)
        goto done;
    if (!(b_start = dbuf(d, ng * 4, start, "starts", err)) ||
        !(b_pq = dbuf(d, np * 4, NULL, "pairs", err)) ||
        !(b_pd = dbuf(d, np * 4, NULL, "pairs", err)) ||
        !(b_ap = dbuf(d, np * 4, NULL, "approximate scores", err))) {
        st = err->status;
        goto done;
    }
    if ((st = MS_CL_SET_ARGS(d->k_compact, "plaid_compact", err, MS_ARG(b_bm), MS_ARG(words),
                             MS_ARG(seg_words), MS_ARG(b_start), MS_ARG(b_pq), MS_ARG(b_pd))) !=
        MS_OK)
        goto done;
    {
        const size_t global = ng * PL_WG, local = PL_WG;
        if ((st = launch(d, d->k_compact, 1, &global, &local, "plaid_compact", &d->stats.union_s,
                         err)) != MS_OK)
            goto done;
    }
    drel(d, &b_bm);
    if ((st = approx_launch(d, qb, s, b_pq, b_pd, np, b_ap, err)) != MS_OK)
        goto done;
    /* the best `keep` by approximate score, fixed stride per query */
    const size_t ns = nq * keep;
    if (!(b_sq = dbuf(d, ns * 4, NULL, "selected", err)) ||
        !(b_sd = dbuf(d, ns * 4, NULL, "selected", err)) ||
        !(b_ss = dbuf(d, ns * 4, NULL, "selected", err)) ||
        !(b_sn = dbuf(d, nq * 4, NULL, "selected", err))) {
        st = err->status;
        goto done;
    }
    if (nseg > 1) {
        /* select wants per-query starts and counts: the first segment's
         * start, the segments' total (cnt[0..nq), summed above) */
        for (uint64_t r = 0; r < nq; r++)
            start[r] = start[r * nseg];
        drel(d, &b_start);
        drel(d, &b_cnt);
        if (!(b_start = dbuf(d, nq * 4, start, "starts", err)) ||
            !(b_cnt = dbuf(d, nq * 4, cnt, "counts", err))) {
            st = err->status;
            goto done;
        }
    }
    if ((st = select_launch(d, nq, b_start, b_cnt, b_pd, b_ap, keep, b_sq, b_sd, b_ss, b_sn,
                            err)) != MS_OK)
        goto done;
    if (!d->residuals) {
        /* residuals not resident: the selected documents come back and the
         * host gathers their rows (rerank_pairs), then keeps the top k */
        if (!(sd = ms_malloc(ns * 4, err)) || !(sn = ms_malloc(nq * 4, err)) ||
            !(dq = ms_malloc((nr ? nr : 1) * 4, err)) ||
            !(dd = ms_malloc((nr ? nr : 1) * 4, err)) ||
            !(ex = ms_malloc((nr ? nr : 1) * 4, err))) {
            st = err->status;
            goto done;
        }
        if ((st = read_buf(d, b_sd, ns * 4, sd, "selected", err)) != MS_OK ||
            (st = read_buf(d, b_sn, nq * 4, sn, "selected", err)) != MS_OK)
            goto done;
        uint64_t m = 0;
        for (uint64_t r = 0; r < nq; r++)
            for (uint32_t i = 0; i < sn[r]; i++) {
                dq[m] = (uint32_t)r;
                dd[m++] = sd[r * keep + i];
            }
        if ((st = rerank_pairs(d, qb, dq, dd, m, ex, err)) != MS_OK)
            goto done;
        for (uint64_t i = 0; i < m; i++)
            ms_topk_push_one(t, q0 + dq[i], ex[i], dd[i]);
        goto done;
    }
    /* exact scores of the fixed-stride pairs (empty slots score -inf) */
    if (!(b_ex = dbuf(d, ns * 4, NULL, "exact scores", err))) {
        st = err->status;
        goto done;
    }
    {
        const struct ms_plaid *pp = p;
        const uint32_t lq_cap = qb->max_len ? qb->max_len : 1, dim = pp->dim;
        uint32_t tile = TILE;
        const uint64_t lmem = d->cl->info.local_mem ? d->cl->info.local_mem : 32768;
        while (tile > 8 &&
               ((uint64_t)lq_cap * dim + (uint64_t)tile * dim + tile + lq_cap) * 4 > lmem)
            tile /= 2;
        if (((uint64_t)lq_cap * dim + (uint64_t)tile * dim + tile + lq_cap) * 4 > lmem) {
            st = ms_err_set(err, MS_ERR_INPUT,
                            "a query of %u tokens of dim %u does not fit the %llu bytes of local "
                            "memory of '%s'",
                            lq_cap, dim, (unsigned long long)lmem, d->cl->info.name);
            goto done;
        }
        const cl_uint kpb = 8 / pp->nbits, packed = pp->packed, npairs = (cl_uint)ns;
        if ((st = MS_CL_SET_ARGS(
                 d->k_rerank, "plaid_rerank", err, MS_ARG(d->centroids), MS_ARG(d->lut),
                 MS_ARG(dim), MS_ARG(kpb), MS_ARG(packed), MS_ARG(qb->tok), MS_ARG(qb->off),
                 MS_ARG(qb->len), MS_ARG(d->doc_off), MS_ARG(d->codes), MS_ARG(d->residuals),
                 MS_ARG(b_sq), MS_ARG(b_sd), MS_ARG(npairs), MS_ARG(tile), MS_ARG(lq_cap),
                 { (size_t)lq_cap * dim * 4, NULL }, { (size_t)tile * dim * 4, NULL },
                 { (size_t)tile * 4, NULL }, { (size_t)lq_cap * 4, NULL }, MS_ARG(b_ex))) != MS_OK)
            goto done;
        const size_t global = ns * WG, local = WG;
        if ((st = launch(d, d->k_rerank, 1, &global, &local, "plaid_rerank", &d->stats.rerank_s,
                         err)) != MS_OK)
            goto done;
    }
    /* the top k of each query's reranked documents; only these come back */
    for (uint64_t r = 0; r < nq; r++)
        start[r] = (uint32_t)(r * keep);
    const size_t nf = nq * k;
    if (!(b_off2 = dbuf(d, nq * 4, start, "starts", err)) ||
        !(b_fq = dbuf(d, nf * 4, NULL, "results", err)) ||
        !(b_fd = dbuf(d, nf * 4, NULL, "results", err)) ||
        !(b_fs = dbuf(d, nf * 4, NULL, "results", err)) ||
        !(b_fn = dbuf(d, nq * 4, NULL, "results", err))) {
        st = err->status;
        goto done;
    }
    if ((st = select_launch(d, nq, b_off2, b_sn, b_sd, b_ex, k, b_fq, b_fd, b_fs, b_fn, err)) !=
        MS_OK)
        goto done;
    if (!(sd = ms_malloc(nf * 4, err)) || !(fs = ms_malloc(nf * 4, err))) {
        st = err->status;
        goto done;
    }
    if ((st = read_buf(d, b_fd, nf * 4, sd, "results", err)) != MS_OK ||
        (st = read_buf(d, b_fs, nf * 4, fs, "results", err)) != MS_OK ||
        (st = read_buf(d, b_fn, nq * 4, cnt, "results", err)) != MS_OK)
        goto done;
    for (uint64_t r = 0; r < nq; r++)
        for (uint32_t i = 0; i < cnt[r]; i++)
            ms_topk_push_one(t, q0 + r, fs[r * k + i], sd[r * k + i]);
done:
    drel(d, &s);
    drel(d, &b_probe);
    drel(d, &b_part);
    drel(d, &b_part_v);
    drel(d, &b_bm);
    drel(d, &b_cnt);
    drel(d, &b_start);
    drel(d, &b_pq);
    drel(d, &b_pd);
    drel(d, &b_ap);
    drel(d, &b_sq);
    drel(d, &b_sd);
    drel(d, &b_ss);
    drel(d, &b_sn);
    drel(d, &b_ex);
    drel(d, &b_off2);
    drel(d, &b_fq);
    drel(d, &b_fd);
    drel(d, &b_fs);
    drel(d, &b_fn);
    free(cnt);
    free(start);
    free(sd);
    free(sn);
    free(dq);
    free(dd);
    free(fs);
    free(ex);
    return st;
}

uint64_t ms_plaid_dev_batch(const struct ms_plaid_dev *d, const struct ms_plaid_search_opts *o,
                            uint64_t longest)
{
    const struct ms_plaid *p = d->p;
    /* bytes of per-batch device buffers: a sixteenth of the device memory,
     * 64 MiB to 4 GiB */
    uint64_t budget = d->cl->info.global_mem / 16;
    budget = budget < (64ull << 20) ? 64ull << 20 : budget > (4ull << 30) ? 4ull << 30 : budget;
    uint64_t keep = o->nrerank < o->ncandidates ? o->nrerank : o->ncandidates;
    keep = keep < p->n_docs ? keep : p->n_docs;
    /* per query: S columns, probes, bitmap, selected pairs (4 arrays); the
     * candidates (12 bytes each) are sized from their counts */
    const uint64_t lq = longest ? longest : 1;
    const uint64_t per_q = (uint64_t)p->n_centroids * lq * 4 + lq * o->nprobe * 4 +
                           (p->n_docs + 31) / 32 * 4 + (keep ? keep : 1) * 16;
    uint64_t n = budget / per_q;
    /* S in one allocation */
    const uint64_t s_q = (uint64_t)p->n_centroids * lq * 4;
    if (d->cl->info.max_alloc && n * s_q > d->cl->info.max_alloc)
        n = d->cl->info.max_alloc / s_q;
    return n < 1 ? 1 : n > 1024 ? 1024 : n;
}

int ms_plaid_dev_search(struct ms_plaid_dev *d, const struct ms_emb *q,
                        const struct ms_plaid_search_opts *o, struct ms_topk *t, uint64_t q0,
                        struct ms_err *err)
{
    struct qbuf qb;
    int st;
    const double t0 = ms_now();
    const double k0 = d->stats.centroid_s + d->stats.probe_s + d->stats.union_s +
                      d->stats.approx_s + d->stats.select_s + d->stats.rerank_s;

    if (!d->codes)
        return ms_err_set(err, MS_ERR_RUNTIME, "search needs the search setup");
    d->defer = !o->host_pipeline; /* pooled buffers, launches not waited for one by one */
    if ((st = qbuf_upload(d, q, o->trim_zero, &qb, err)) == MS_OK) {
        st = o->host_pipeline ? search_host(d, q, &qb, o, t, q0, err)
                              : search_device(d, q->n_rows, &qb, o, t, q0, err);
        qbuf_release(d, &qb);
    }
    const int fst = flush_launches(d, err);
    st = st != MS_OK ? st : fst;
    d->defer = 0;
    const double wall = ms_now() - t0;
    const double ks = d->stats.centroid_s + d->stats.probe_s + d->stats.union_s +
                      d->stats.approx_s + d->stats.select_s + d->stats.rerank_s - k0;
    d->stats.batches++;
    d->stats.search_s += wall;
    d->stats.host_s += wall > ks ? wall - ks : 0.0;
    if (wall - ks > d->stats.host_max_s)
        d->stats.host_max_s = wall - ks;
    return st;
}
