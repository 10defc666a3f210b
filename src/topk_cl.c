/*
 * topk_cl.c - host side of kernels/topk.cl: per-query top-k selection on the device.
 *
 * ms_topk_cl_select launches one work-group per row of a score buffer and reads back k scores
 * and columns a row; ms_topk_sink_put is what the scorer's backends call instead of reading a
 * piece of the score matrix back: it selects the piece's top k and merges them (two sorted
 * lists, topk.h's order) into the block's lists, so that pieces of any shape give the lists of
 * the whole block.
 */
#include "topk_cl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "topk.h"

struct ms_topk_cl {
    struct ms_cl *cl;
    cl_program prog;
    cl_kernel select;
    size_t wg;
    uint64_t cap;        /* entries of the buffers below */
    cl_mem d_s, d_i;     /* [cap] selected scores and columns */
    float *h_s, *m_s;    /* [cap] read back; [k] merge room */
    uint32_t *h_i, *m_i; /* likewise */
};

/* Work-items per group: 256, or the device's largest power of two below that. */
static size_t pick_wg(const struct ms_cl *cl)
{
    size_t wg = 256;
    while (wg > 1 && wg > cl->info.max_work_group)
        wg >>= 1;
    return wg;
}

static uint64_t local_bytes(size_t wg)
{
    return (256 + wg + 2 * (uint64_t)MS_TOPK_CL_MAX_K + 2) * 4;
}

int ms_topk_cl_usable(const struct ms_cl *cl)
{
    const size_t wg = pick_wg(cl);
    return wg >= 32 && cl->info.local_mem >= local_bytes(wg);
}

int ms_topk_cl_create(struct ms_topk_cl **out, struct ms_cl *cl, struct ms_err *err)
{
    struct ms_topk_cl *t;
    char opts[128];

    *out = NULL;
    if (!(t = ms_calloc(1, sizeof *t, err)))
        return err->status;
    t->cl = cl;
    t->wg = pick_wg(cl);
    snprintf(opts, sizeof opts, "-cl-std=CL1.2 -DTK_WG=%zu -DTK_MAXK=%u", t->wg, MS_TOPK_CL_MAX_K);
    if (ms_cl_program(cl, "topk.cl", opts, &t->prog, err) != MS_OK ||
        ms_cl_kernel(t->prog, "ms_topk_select", &t->select, err) != MS_OK) {
        ms_topk_cl_free(t);
        return err->status;
    }
    *out = t;
    return MS_OK;
}

void ms_topk_cl_free(struct ms_topk_cl *t)
{
    if (!t)
        return;
    ms_cl_release(&t->d_s);
    ms_cl_release(&t->d_i);
    if (t->select)
        clReleaseKernel(t->select);
    if (t->prog)
        clReleaseProgram(t->prog);
    free(t->h_s);
    free(t->h_i);
    free(t->m_s);
    free(t->m_i);
    free(t);
}

/* Room for n selected entries (device and host) and a merge of 2 * MAX_K. */
static int reserve(struct ms_topk_cl *t, uint64_t n, struct ms_err *err)
{
    if (n <= t->cap)
        return MS_OK;
    ms_cl_release(&t->d_s);
    ms_cl_release(&t->d_i);
    free(t->h_s);
    free(t->h_i);
    t->h_s = NULL;
    t->h_i = NULL;
    t->cap = 0;
    if (!(t->d_s = ms_cl_buffer(t->cl, CL_MEM_WRITE_ONLY, n * 4, NULL, "top-k scores", err)) ||
        !(t->d_i = ms_cl_buffer(t->cl, CL_MEM_WRITE_ONLY, n * 4, NULL, "top-k indices", err)) ||
        !(t->h_s = ms_malloc(n * 4, err)) || !(t->h_i = ms_malloc(n * 4, err)))
        return err->status;
    if (!t->m_s && (!(t->m_s = ms_malloc(2 * MS_TOPK_CL_MAX_K * 4, err)) ||
                    !(t->m_i = ms_malloc(2 * MS_TOPK_CL_MAX_K * 4, err))))
        return err->status;
    t->cap = n;
    return MS_OK;
}

/* Select into t->d_s / t->d_i and read back into out_s / out_i. */
static int select_rows(struct ms_topk_cl *t, cl_mem scores, uint64_t pitch, uint64_t nq, uint64_t n,
                       uint32_t k, float *out_s, uint32_t *out_i, double *kernel_s,
                       struct ms_err *err)
{
    const cl_uint c_pitch = (cl_uint)pitch, c_n = (cl_uint)n, c_k = k;
    const size_t local = t->wg, global = (size_t)nq * t->wg;
    const uint64_t m = k < n ? k : n;
    cl_int rc;

    if (k == 0 || k > MS_TOPK_CL_MAX_K || pitch > UINT32_MAX || n >= UINT32_MAX || n > pitch)
        return ms_err_set(err, MS_ERR_INPUT,
                          "device top-k of k=%u over %llu columns (pitch %llu) is not supported", k,
                          (unsigned long long)n, (unsigned long long)pitch);
    if (nq == 0 || n == 0)
        return MS_OK;
    if (reserve(t, nq * k, err) != MS_OK)
        return err->status;
    if (MS_CL_SET_ARGS(t->select, "ms_topk_select", err, MS_ARG(scores), MS_ARG(c_pitch),
                       MS_ARG(c_n), MS_ARG(c_k), MS_ARG(t->d_s), MS_ARG(t->d_i)) != MS_OK ||
        ms_cl_launch(t->cl, t->select, 1, &global, &local, "ms_topk_select", kernel_s, err) !=
            MS_OK)
        return err->status;
    /* rows of k entries, the first m of each written: read whole rows (one copy each) */
    const size_t bytes = (size_t)((nq - 1) * k + m) * 4;
    rc = clEnqueueReadBuffer(t->cl->queue, t->d_s, CL_TRUE, 0, bytes, out_s, 0, NULL, NULL);
    if (rc == CL_SUCCESS)
        rc = clEnqueueReadBuffer(t->cl->queue, t->d_i, CL_TRUE, 0, bytes, out_i, 0, NULL, NULL);
    return rc == CL_SUCCESS ? MS_OK : ms_cl_fail(err, "clEnqueueReadBuffer(top-k)", rc);
}

int ms_topk_cl_select(struct ms_topk_cl *t, cl_mem scores, uint64_t pitch, uint64_t nq, uint64_t n,
                      uint32_t k, float *out_s, uint32_t *out_i, double *kernel_s,
                      struct ms_err *err)
{
    return select_rows(t, scores, pitch, nq, n, k, out_s, out_i, kernel_s, err);
}

int ms_topk_sink_put(struct ms_topk_sink *sk, cl_mem scores, uint64_t q0, uint64_t nq, uint64_t j0,
                     uint64_t nd, double *kernel_s, struct ms_err *err)
{
    struct ms_topk_cl *t = sk->dev;
    const uint32_t k = sk->k;
    const uint64_t m = k < nd ? k : nd;

    if (nq == 0 || nd == 0)
        return MS_OK;
    if (reserve(t, nq * k, err) != MS_OK ||
        select_rows(t, scores, nd, nq, nd, k, t->h_s, t->h_i, kernel_s, err) != MS_OK)
        return err->status;
    for (uint64_t i = 0; i < nq; i++) {
        float *ls = sk->score + (q0 + i) * k;
        uint32_t *li = sk->idx + (q0 + i) * k;
        const float *ns = t->h_s + i * k;
        const uint32_t *ni = t->h_i + i * k;
        const uint64_t c = sk->count[q0 + i];
        uint64_t a = 0, b = 0, o = 0;

        if (c == 0) { /* the usual case: one piece per query and block */
            for (uint64_t r = 0; r < m; r++) {
                ls[r] = ns[r];
                li[r] = (uint32_t)(j0 + ni[r]);
            }
            sk->count[q0 + i] = (uint32_t)m;
            continue;
        }
        while (o < k && (a < c || b < m)) {
            if (b >= m || (a < c && ms_topk_better(ls[a], li[a], ns[b], j0 + ni[b]))) {
                t->m_s[o] = ls[a];
                t->m_i[o++] = li[a++];
            } else {
                t->m_s[o] = ns[b];
                t->m_i[o++] = (uint32_t)(j0 + ni[b++]);
            }
        }
        memcpy(ls, t->m_s, o * sizeof *ls);
        memcpy(li, t->m_i, o * sizeof *li);
        sk->count[q0 + i] = (uint32_t)o;
    }
    return MS_OK;
}
