/*
 * index_cl.c - the device side of `maxsim index`: the host half of
 * kernels/index.cl (see index_cl.h for the calls and their order).
 *
 * Points are uploaded as read (float32 or float16) and transposed on the
 * device ([dim][n], float32) so that the kernels' neighbouring work-items
 * read neighbouring words; the host does no per-element work. The codes of the
 * last assignment stay on the device for the compression that follows it.
 */
#include "index_cl.h"

#include <stdlib.h>
#include <string.h>

#define ASSIGN_WG         64  /* work-items per group of index_assign */
#define ASSIGN_PT         4   /* points per work-item of index_assign: PT in kernels/index.cl */
#define TILED_WG          16  /* index_assign_tiled: TL x TL work-items (kernels/index.cl) */
#define TILED_POINTS      128 /* points per work-group of index_assign_tiled: TT */
#define TILED_LOCAL_BYTES (16 * 128 * 4 + 16 * 132 * 4) /* its xs and cs */

struct ms_index_dev {
    struct ms_cl *cl;
    uint32_t dim, k;
    cl_program prog;
    cl_kernel k_transpose, k_assign, k_assign_v16, k_assign_tiled, k_compress;
    enum ms_index_assign assign; /* which assignment kernel */
    cl_mem cents, bias, cutoffs;
    cl_mem raw, xt, codes, packed; /* raw: the block as read (f32 or f16) */
    uint64_t n, cap;               /* points loaded, and room for (a multiple of 16) */
    uint64_t stride;               /* n rounded up to 16: the row length of xt */
    uint64_t packed_cap;           /* bytes of the packed buffer */
    uint64_t bytes, peak;          /* device bytes held now, and the most */
    double kernel_s;
};

static void release(struct ms_index_dev *d, cl_mem *m, uint64_t bytes)
{
    if (*m) {
        clReleaseMemObject(*m);
        d->bytes -= bytes;
    }
    *m = NULL;
}

static int alloc(struct ms_index_dev *d, cl_mem *m, cl_mem_flags flags, uint64_t bytes,
                 const char *what, struct ms_err *err)
{
    cl_int rc;
    /* zero-sized buffers are invalid in OpenCL: one word keeps the code uniform */
    *m = clCreateBuffer(d->cl->ctx, flags, bytes ? bytes : 4, NULL, &rc);
    if (!*m)
        return ms_err_set(err, MS_ERR_RUNTIME, "clCreateBuffer(%s, %llu bytes) failed on '%s': %s",
                          what, (unsigned long long)bytes, d->cl->info.name, ms_cl_strerror(rc));
    d->bytes += bytes;
    if (d->bytes > d->peak)
        d->peak = d->bytes;
    return MS_OK;
}

static int upload(struct ms_index_dev *d, cl_mem m, const void *src, uint64_t bytes,
                  const char *what, struct ms_err *err)
{
    if (!bytes)
        return MS_OK;
    const cl_int rc = clEnqueueWriteBuffer(d->cl->queue, m, CL_TRUE, 0, bytes, src, 0, NULL, NULL);
    return rc == CL_SUCCESS ? MS_OK : ms_cl_fail(err, what, rc);
}

static int download(struct ms_index_dev *d, cl_mem m, void *dst, uint64_t bytes, const char *what,
                    struct ms_err *err)
{
    if (!bytes)
        return MS_OK;
    const cl_int rc = clEnqueueReadBuffer(d->cl->queue, m, CL_TRUE, 0, bytes, dst, 0, NULL, NULL);
    return rc == CL_SUCCESS ? MS_OK : ms_cl_fail(err, what, rc);
}

int ms_index_dev_create(struct ms_index_dev **out, struct ms_cl *cl, uint32_t dim,
                        struct ms_err *err)
{
    struct ms_index_dev *d;
    cl_int rc;
    int st;

    *out = NULL;
    if (!(d = ms_calloc(1, sizeof *d, err)))
        return err->status;
    d->cl = cl;
    d->dim = dim;
    if ((st = ms_cl_program(cl, "index.cl",
                            cl->info.is_nvidia ? "-cl-std=CL1.2 -DMS_NVIDIA=1" : "-cl-std=CL1.2",
                            &d->prog, err)) != MS_OK)
        goto fail;
    if (!(d->k_transpose = clCreateKernel(d->prog, "index_transpose", &rc)) ||
        !(d->k_assign = clCreateKernel(d->prog, "index_assign", &rc)) ||
        !(d->k_assign_v16 = clCreateKernel(d->prog, "index_assign_v16", &rc)) ||
        !(d->k_assign_tiled = clCreateKernel(d->prog, "index_assign_tiled", &rc)) ||
        !(d->k_compress = clCreateKernel(d->prog, "index_compress", &rc))) {
        st = ms_cl_fail(err, "clCreateKernel(index)", rc);
        goto fail;
    }
    if ((st = alloc(d, &d->cutoffs, CL_MEM_READ_ONLY, 255 * 4, "bucket cutoffs", err)) != MS_OK)
        goto fail;
    /* CPUs: one work-item, 16 points in a vector (PoCL does not vectorize
     * index_assign's loop across work-items: 3 GFLOP/s on 2 cores). GPUs:
     * 128 x 128 tiles in local memory, 8 x 8 register blocks, when the
     * device takes 256-item groups and 17 KiB of local memory; else one
     * point a work-item, the centroid words broadcast. Same codes. */
    if (cl->info.type & CL_DEVICE_TYPE_CPU)
        d->assign = MS_INDEX_ASSIGN_V16;
    else if (cl->info.max_work_group >= TILED_WG * TILED_WG &&
             cl->info.local_mem >= TILED_LOCAL_BYTES)
        d->assign = MS_INDEX_ASSIGN_TILED;
    else
        d->assign = MS_INDEX_ASSIGN_SIMPLE;
    *out = d;
    return MS_OK;
fail:
    ms_index_dev_free(d);
    return st;
}

void ms_index_dev_free(struct ms_index_dev *d)
{
    if (!d)
        return;
    release(d, &d->cents, 0);
    release(d, &d->bias, 0);
    release(d, &d->cutoffs, 0);
    release(d, &d->raw, 0);
    release(d, &d->xt, 0);
    release(d, &d->codes, 0);
    release(d, &d->packed, 0);
    if (d->k_transpose)
        clReleaseKernel(d->k_transpose);
    if (d->k_assign)
        clReleaseKernel(d->k_assign);
    if (d->k_assign_v16)
        clReleaseKernel(d->k_assign_v16);
    if (d->k_assign_tiled)
        clReleaseKernel(d->k_assign_tiled);
    if (d->k_compress)
        clReleaseKernel(d->k_compress);
    if (d->prog)
        clReleaseProgram(d->prog);
    free(d);
}

int ms_index_dev_set_centroids(struct ms_index_dev *d, const float *cents, const float *bias,
                               uint32_t k, struct ms_err *err)
{
    const uint64_t cb = (uint64_t)k * d->dim * 4;
    float *zero = NULL;
    int st;

    release(d, &d->cents, (uint64_t)d->k * d->dim * 4);
    release(d, &d->bias, (uint64_t)d->k * 4);
    d->k = k;
    if (!bias && !(bias = zero = ms_calloc(k ? k : 1, 4, err)))
        return err->status;
    if ((st = alloc(d, &d->cents, CL_MEM_READ_ONLY, cb, "centroids", err)) == MS_OK &&
        (st = alloc(d, &d->bias, CL_MEM_READ_ONLY, (uint64_t)k * 4, "centroid bias", err)) ==
            MS_OK &&
        (st = upload(d, d->cents, cents, cb, "clEnqueueWriteBuffer(centroids)", err)) == MS_OK)
        st = upload(d, d->bias, bias, (uint64_t)k * 4, "clEnqueueWriteBuffer(bias)", err);
    free(zero);
    return st;
}

int ms_index_dev_load(struct ms_index_dev *d, const void *x, enum ms_dtype dtype, uint64_t n,
                      struct ms_err *err)
{
    const uint32_t dim = d->dim, packed_row = dim; /* at most dim bytes a row (nbits 8) */
    const uint64_t stride = (n + 15) / 16 * 16;
    const cl_uint is_half = dtype == MS_DTYPE_F16, cn = (cl_uint)n, cdim = dim;
    const cl_uint cstride = (cl_uint)stride;
    cl_int rc = CL_SUCCESS;
    int st;

    if (n >= UINT32_MAX / 8)
        return ms_err_set(err, MS_ERR_RUNTIME, "a block of %llu points is too large for the device",
                          (unsigned long long)n);
    if (n > d->cap) {
        uint64_t cap = d->cap ? d->cap : 1024;
        while (cap < n)
            cap *= 2;
        release(d, &d->raw, d->cap * dim * 4);
        release(d, &d->xt, d->cap * dim * 4);
        release(d, &d->codes, d->cap * 4);
        release(d, &d->packed, d->packed_cap);
        d->cap = 0;
        d->packed_cap = 0;
        if ((st = alloc(d, &d->raw, CL_MEM_READ_ONLY, cap * dim * 4, "points", err)) != MS_OK ||
            (st = alloc(d, &d->xt, CL_MEM_READ_WRITE, cap * dim * 4, "points", err)) != MS_OK ||
            (st = alloc(d, &d->codes, CL_MEM_READ_WRITE, cap * 4, "codes", err)) != MS_OK ||
            (st = alloc(d, &d->packed, CL_MEM_WRITE_ONLY, cap * packed_row, "residuals", err)) !=
                MS_OK)
            return st;
        d->cap = cap;
        d->packed_cap = cap * packed_row;
    }
    d->n = n;
    d->stride = stride;
    if (!n)
        return MS_OK;
    if ((st = upload(d, d->raw, x, n * dim * ms_dtype_size(dtype), "clEnqueueWriteBuffer(points)",
                     err)) != MS_OK)
        return st;
    const size_t global[2] = { dim, stride };
    rc |= clSetKernelArg(d->k_transpose, 0, sizeof(cl_mem), &d->raw);
    rc |= clSetKernelArg(d->k_transpose, 1, sizeof(cl_mem), &d->raw);
    rc |= clSetKernelArg(d->k_transpose, 2, sizeof is_half, &is_half);
    rc |= clSetKernelArg(d->k_transpose, 3, sizeof cn, &cn);
    rc |= clSetKernelArg(d->k_transpose, 4, sizeof cdim, &cdim);
    rc |= clSetKernelArg(d->k_transpose, 5, sizeof cstride, &cstride);
    rc |= clSetKernelArg(d->k_transpose, 6, sizeof(cl_mem), &d->xt);
    if (rc != CL_SUCCESS)
        return ms_cl_fail(err, "clSetKernelArg(index_transpose)", rc);
    return ms_cl_launch(d->cl, d->k_transpose, 2, global, NULL, "index_transpose", &d->kernel_s,
                        err);
}

int ms_index_dev_assign(struct ms_index_dev *d, uint32_t *codes, struct ms_err *err)
{
    const cl_uint n = (cl_uint)d->n, stride = (cl_uint)d->stride, dim = d->dim, k = d->k;
    const cl_kernel kern = d->assign == MS_INDEX_ASSIGN_V16     ? d->k_assign_v16
                           : d->assign == MS_INDEX_ASSIGN_TILED ? d->k_assign_tiled
                                                                : d->k_assign;
    size_t global[2], local[2];
    cl_int rc = CL_SUCCESS;
    int st;

    if (!d->n)
        return MS_OK;
    rc |= clSetKernelArg(kern, 0, sizeof(cl_mem), &d->xt);
    rc |= clSetKernelArg(kern, 1, sizeof stride, &stride);
    rc |= clSetKernelArg(kern, 2, sizeof n, &n);
    rc |= clSetKernelArg(kern, 3, sizeof dim, &dim);
    rc |= clSetKernelArg(kern, 4, sizeof(cl_mem), &d->cents);
    rc |= clSetKernelArg(kern, 5, sizeof(cl_mem), &d->bias);
    rc |= clSetKernelArg(kern, 6, sizeof k, &k);
    rc |= clSetKernelArg(kern, 7, sizeof(cl_mem), &d->codes);
    if (rc != CL_SUCCESS)
        return ms_cl_fail(err, "clSetKernelArg(index_assign)", rc);
    switch (d->assign) {
    case MS_INDEX_ASSIGN_V16: /* CPUs: the runtime picks the work-group size (the item count
                               * need not be a multiple of anything) */
        global[0] = d->stride / 16;
        st = ms_cl_launch(d->cl, kern, 1, global, NULL, "index_assign", &d->kernel_s, err);
        break;
    case MS_INDEX_ASSIGN_TILED:
        global[0] = (d->n + TILED_POINTS - 1) / TILED_POINTS * TILED_WG;
        global[1] = local[0] = local[1] = TILED_WG;
        st = ms_cl_launch(d->cl, kern, 2, global, local, "index_assign", &d->kernel_s, err);
        break;
    default:
        local[0] = ASSIGN_WG;
        global[0] = (d->n + ASSIGN_PT * ASSIGN_WG - 1) / (ASSIGN_PT * ASSIGN_WG) * ASSIGN_WG;
        st = ms_cl_launch(d->cl, kern, 1, global, local, "index_assign", &d->kernel_s, err);
        break;
    }
    if (st != MS_OK)
        return st;
    return download(d, d->codes, codes, d->n * 4, "clEnqueueReadBuffer(codes)", err);
}

void ms_index_dev_set_assign(struct ms_index_dev *d, enum ms_index_assign kind)
{
    d->assign = kind;
}

int ms_index_dev_compress(struct ms_index_dev *d, const float *cutoffs, uint32_t nbits,
                          uint8_t *packed, struct ms_err *err)
{
    const cl_uint n = (cl_uint)d->n, stride = (cl_uint)d->stride, dim = d->dim, nb = nbits;
    const uint32_t row = dim * nbits / 8;
    const size_t global = d->n;
    cl_int rc = CL_SUCCESS;
    int st;

    if (!d->n)
        return MS_OK;
    if ((st = upload(d, d->cutoffs, cutoffs, ((1u << nbits) - 1) * 4,
                     "clEnqueueWriteBuffer(cutoffs)", err)) != MS_OK)
        return st;
    rc |= clSetKernelArg(d->k_compress, 0, sizeof(cl_mem), &d->xt);
    rc |= clSetKernelArg(d->k_compress, 1, sizeof stride, &stride);
    rc |= clSetKernelArg(d->k_compress, 2, sizeof n, &n);
    rc |= clSetKernelArg(d->k_compress, 3, sizeof dim, &dim);
    rc |= clSetKernelArg(d->k_compress, 4, sizeof(cl_mem), &d->cents);
    rc |= clSetKernelArg(d->k_compress, 5, sizeof(cl_mem), &d->codes);
    rc |= clSetKernelArg(d->k_compress, 6, sizeof(cl_mem), &d->cutoffs);
    rc |= clSetKernelArg(d->k_compress, 7, sizeof nb, &nb);
    rc |= clSetKernelArg(d->k_compress, 8, sizeof(cl_mem), &d->packed);
    if (rc != CL_SUCCESS)
        return ms_cl_fail(err, "clSetKernelArg(index_compress)", rc);
    if ((st = ms_cl_launch(d->cl, d->k_compress, 1, &global, NULL, "index_compress", &d->kernel_s,
                           err)) != MS_OK)
        return st;
    return download(d, d->packed, packed, d->n * row, "clEnqueueReadBuffer(residuals)", err);
}

double ms_index_dev_kernel_s(const struct ms_index_dev *d)
{
    return d->kernel_s;
}

uint64_t ms_index_dev_peak_bytes(const struct ms_index_dev *d)
{
    return d->peak;
}
