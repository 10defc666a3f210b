/*
 * index_cl.c - the device side of `maxsim index`: the host half of
 * kernels/index.cl (see index_cl.h for the calls and their order).
 *
 * Points are uploaded as read (float32 or float16) and transposed on the
 * device ([dim][n], float32) so that the kernels' neighbouring work-items
 * read neighbouring words; the host does no per-element work. The codes of the
 * last assignment stay on the device for the compression that follows it.
 *
 * The approximate kinds (kernels/index.cl, "Approximate assignment") add a
 * float16 copy of the centroids and of the block, the block's norms, and
 * the list of points to re-check, gathered into a transposed block of
 * their own for the exact kernel and scattered back: the codes are the
 * exact kernels', only fewer points pay for float32 scores. On NVIDIA the
 * float16 pass is index_assign_nv_tiled in the shape nv_pick chooses (or
 * MAXSIM_INDEX_NV_KERNEL names), or the older index_assign_nv; both write
 * the same codes and re-check the same points.
 */
#include "index_cl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ASSIGN_WG         64  /* work-items per group of index_assign */
#define ASSIGN_PT         4   /* points per work-item of index_assign: PT in kernels/index.cl */
#define TILED_WG          16  /* index_assign_tiled: TL x TL work-items (kernels/index.cl) */
#define TILED_POINTS      128 /* points per work-group of index_assign_tiled: TT */
#define TILED_LOCAL_BYTES (16 * 128 * 4 + 16 * 132 * 4) /* its xs and cs */
#define NV_WG             128                           /* index_assign_nv: 4 warps, 128 points */
#define NV_MAX_DIM        256 /* its A fragments live in registers: dim / 2 of them */
#define NV_KPAD           128 /* index_assign_nv_tiled's tiles divide it: c16, bias padded */

/* index_assign_nv_tiled's shape (kernels/index.cl, IX_NV_*): warps a
 * group, m-tiles a warp, n-tiles a step, centroids a tile, tiles in
 * flight, cp.async; w == 0: the older index_assign_nv. */
struct nv_variant {
    unsigned w, mt, nt, ct, st, cp;
};

struct ms_index_dev {
    struct ms_cl *cl;
    uint32_t dim, k;
    cl_program prog;
    cl_kernel k_transpose, k_assign, k_assign_v16, k_assign_tiled, k_compress;
    cl_kernel k_prep, k_approx, k_nv, k_gather, k_scatter; /* k_nv: NVIDIA, dim % 32 == 0 */
    cl_kernel k_tiled_part, k_join;                        /* the tiled re-check, split */
    enum ms_index_assign assign;                           /* which assignment kernel */
    enum ms_index_assign exact; /* the exact kernel of the approximate kinds' re-check */
    cl_mem cents, bias, cutoffs;
    cl_mem raw, xt, codes, packed; /* raw: the block as read (f32 or f16) */
    uint64_t n, cap;               /* points loaded, and room for (a multiple of 16) */
    uint64_t stride;               /* n rounded up to 16: the row length of xt */
    uint64_t packed_cap;           /* bytes of the packed buffer */
    uint64_t bytes, peak;          /* device bytes held now, and the most */
    double kernel_s;
    /* the approximate kinds: float16 centroids, the block's float16 rows and
     * norms (made once a load: prepped), the re-check list and its count,
     * and the re-checked points' transposed block and codes */
    cl_mem cents16, x16, norms, list, n_list, xg, codes_g, part_s, part_c;
    uint64_t approx_cap, g_cap; /* points x16 (and norms, list) and xg have room for */
    uint64_t part_cap;          /* entries of part_s and part_c */
    int prepped, cents_f16;     /* cents_f16: every centroid value fits float16 */
    double cq, cd, cm, bmax;    /* max |c~|, max |c~ - c|, max(|c|, |c~|), max |bias| */
    double margin;              /* the bound's scale (tests) */
    struct ms_index_recheck rs;
    struct nv_variant nv;  /* which tensor-core kernel k_nv is */
    char assign_name[112]; /* the NV kind, as -v names it */
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

/* Centroids rounded up to the tiled kernel's padding. */
static uint64_t k_padded(uint64_t k)
{
    return (k + NV_KPAD - 1) / NV_KPAD * NV_KPAD;
}

/* __local bytes of a tiled shape: its tiles (rows of dim + pad halves)
 * and their bias; kernels/index.cl's IX_NV_LDS_OF. */
static uint64_t nv_local_bytes(const struct nv_variant *v, uint32_t dim)
{
    const uint64_t ks = dim / 16, lds = 16 * ks + (ks % 4 == 0 ? 32 : 0);
    return (uint64_t)v->st * v->ct * (lds * 2 + 4);
}

/* The tensor-core kernel for dim: MAXSIM_INDEX_NV_KERNEL=old (the older
 * index_assign_nv), tiled:W:MT:NT:CT:ST:CP (a shape of the tiled one, for
 * timing them), or unset/"tiled": 4 warps of 4 m-tiles (2 above dim 128:
 * the A fragments take 4 MT dim / 16 registers), 2 n-tiles a step, the
 * largest tile of 64, 32 or 16 centroids whose 2 stages fit __local. */
static int nv_pick(struct nv_variant *v, const struct ms_cl *cl, uint32_t dim, struct ms_err *err)
{
    const char *env = getenv("MAXSIM_INDEX_NV_KERNEL");
    char tail;

    if (env && !strcmp(env, "old")) {
        *v = (struct nv_variant){ 0, 0, 0, 0, 0, 0 };
        return MS_OK;
    }
    if (!env || !*env || !strcmp(env, "tiled")) {
        *v = (struct nv_variant){ 4, dim <= 128 ? 4 : 2, 2, 64, 2, 1 };
        while (v->ct > 16 && nv_local_bytes(v, dim) > cl->info.local_mem)
            v->ct /= 2;
        return MS_OK;
    }
    if (sscanf(env, "tiled:%u:%u:%u:%u:%u:%u%c", &v->w, &v->mt, &v->nt, &v->ct, &v->st, &v->cp,
               &tail) != 6 ||
        (v->w != 1 && v->w != 2 && v->w != 4 && v->w != 8) ||
        (v->mt != 1 && v->mt != 2 && v->mt != 4) || (v->nt != 1 && v->nt != 2 && v->nt != 4) ||
        (v->ct != 16 && v->ct != 32 && v->ct != 64 && v->ct != 128) || v->ct % (8 * v->nt) ||
        v->st < 2 || v->st > 4 || v->cp > 1 || v->mt * dim / 16 > 32)
        return ms_err_set(err, MS_ERR_INPUT,
                          "MAXSIM_INDEX_NV_KERNEL '%s': want old, tiled or "
                          "tiled:W:MT:NT:CT:ST:CP (W 1|2|4|8, MT 1|2|4 with MT dim <= 512, NT "
                          "1|2|4, CT 16..128 a multiple of 8 NT, ST 2..4, CP 0|1)",
                          env);
    if (nv_local_bytes(v, dim) > cl->info.local_mem)
        return ms_err_set(err, MS_ERR_INPUT,
                          "MAXSIM_INDEX_NV_KERNEL '%s': %llu bytes of local memory, the device "
                          "has %llu",
                          env, (unsigned long long)nv_local_bytes(v, dim),
                          (unsigned long long)cl->info.local_mem);
    return MS_OK;
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
    d->margin = 1.0;
    /* the tensor-core kernel holds a warp's points in registers: dim / 16
     * k-steps fixed at build time, loaded two at a time; MAXSIM_INDEX_NV=0
     * leaves it out of the program altogether */
    const char *nv_env = getenv("MAXSIM_INDEX_NV");
    const int nv = cl->info.is_nvidia && dim % 32 == 0 && dim <= NV_MAX_DIM &&
                   !(nv_env && !strcmp(nv_env, "0"));
    char opts[192];
    if (nv && (st = nv_pick(&d->nv, cl, dim, err)) != MS_OK)
        goto fail;
    if (nv && d->nv.w)
        snprintf(opts, sizeof opts,
                 "-cl-std=CL1.2 -DMS_NVIDIA=1 -DIX_NV_KS=%u -DIX_NV_W=%u -DIX_NV_MT=%u "
                 "-DIX_NV_NT=%u -DIX_NV_CT=%u -DIX_NV_ST=%u -DIX_NV_CP=%u",
                 dim / 16, d->nv.w, d->nv.mt, d->nv.nt, d->nv.ct, d->nv.st, d->nv.cp);
    else if (nv)
        snprintf(opts, sizeof opts, "-cl-std=CL1.2 -DMS_NVIDIA=1 -DIX_NV_KS=%u", dim / 16);
    else
        snprintf(opts, sizeof opts, "%s",
                 cl->info.is_nvidia ? "-cl-std=CL1.2 -DMS_NVIDIA=1" : "-cl-std=CL1.2");
    if ((st = ms_cl_program(cl, "index.cl", opts, &d->prog, err)) != MS_OK)
        goto fail;
    if (!(d->k_transpose = clCreateKernel(d->prog, "index_transpose", &rc)) ||
        !(d->k_assign = clCreateKernel(d->prog, "index_assign", &rc)) ||
        !(d->k_assign_v16 = clCreateKernel(d->prog, "index_assign_v16", &rc)) ||
        !(d->k_assign_tiled = clCreateKernel(d->prog, "index_assign_tiled", &rc)) ||
        !(d->k_compress = clCreateKernel(d->prog, "index_compress", &rc)) ||
        !(d->k_prep = clCreateKernel(d->prog, "index_approx_prep", &rc)) ||
        !(d->k_approx = clCreateKernel(d->prog, "index_assign_approx", &rc)) ||
        !(d->k_gather = clCreateKernel(d->prog, "index_gather", &rc)) ||
        !(d->k_scatter = clCreateKernel(d->prog, "index_scatter", &rc)) ||
        !(d->k_tiled_part = clCreateKernel(d->prog, "index_assign_tiled_part", &rc)) ||
        !(d->k_join = clCreateKernel(d->prog, "index_join_parts", &rc)) ||
        (nv && !(d->k_nv = clCreateKernel(
                     d->prog, d->nv.w ? "index_assign_nv_tiled" : "index_assign_nv", &rc)))) {
        st = ms_cl_fail(err, "clCreateKernel(index)", rc);
        goto fail;
    }
    if ((st = alloc(d, &d->cutoffs, CL_MEM_READ_ONLY, 255 * 4, "bucket cutoffs", err)) != MS_OK)
        goto fail;
    if (d->nv.w)
        snprintf(d->assign_name, sizeof d->assign_name,
                 "float16 tensor cores (index_assign_nv_tiled:%u:%u:%u:%u:%u:%u), exact re-check",
                 d->nv.w, d->nv.mt, d->nv.nt, d->nv.ct, d->nv.st, d->nv.cp);
    else
        snprintf(d->assign_name, sizeof d->assign_name,
                 "float16 tensor cores (index_assign_nv), exact re-check");
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
    /* NVIDIA: float16 scores on the tensor cores, the few unsettled points
     * re-checked by the exact kernel (same codes), unless MAXSIM_INDEX_NV=0;
     * MAXSIM_INDEX_APPROX=1: the portable approximate pass anywhere (tests) */
    d->exact = d->assign;
    const char *approx = getenv("MAXSIM_INDEX_APPROX");
    if (approx && !strcmp(approx, "1"))
        d->assign = MS_INDEX_ASSIGN_APPROX;
    else if (d->k_nv)
        d->assign = MS_INDEX_ASSIGN_NV;
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
    release(d, &d->cents16, 0);
    release(d, &d->x16, 0);
    release(d, &d->norms, 0);
    release(d, &d->list, 0);
    release(d, &d->n_list, 0);
    release(d, &d->xg, 0);
    release(d, &d->codes_g, 0);
    release(d, &d->part_s, 0);
    release(d, &d->part_c, 0);
    const cl_kernel approx_kernels[] = { d->k_prep,    d->k_approx,     d->k_nv,  d->k_gather,
                                         d->k_scatter, d->k_tiled_part, d->k_join };
    for (size_t i = 0; i < sizeof approx_kernels / sizeof approx_kernels[0]; i++)
        if (approx_kernels[i])
            clReleaseKernel(approx_kernels[i]);
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

/* The approximate kinds' view of the centroids: their float16 copy (round
 * to nearest even, as index_approx_prep rounds the points) on the device,
 * and the maxima of the error bound; cents_f16 = 0 when a value does not
 * fit float16 (or a value or bias is not finite): then the exact kernel
 * assigns every point. */
static int set_centroids_f16(struct ms_index_dev *d, const float *cents, const float *bias,
                             struct ms_err *err)
{
    const uint64_t k = d->k, dim = d->dim;
    const uint64_t kp = k_padded(k); /* zero rows past k: the tiled kernel's whole tiles */
    uint16_t *c16 = ms_calloc(kp ? kp : 1, dim * 2, err);
    int st = MS_OK;

    if (!c16)
        return err->status;
    d->cents_f16 = 1;
    d->cq = d->cd = d->cm = d->bmax = 0.0;
    for (uint64_t c = 0; c < k; c++) {
        double sc = 0.0, sq = 0.0, sd = 0.0;
        for (uint64_t j = 0; j < dim; j++) {
            const float v = cents[c * dim + j];
            d->cents_f16 &= fabsf(v) <= 65504.0f; /* false for NaN */
            c16[c * dim + j] = ms_float_to_half(v);
            const double h = ms_half_to_float(c16[c * dim + j]);
            sc += (double)v * v;
            sq += h * h;
            sd += (h - v) * (h - v);
        }
        const double b = bias ? fabs(bias[c]) : 0.0;
        d->cents_f16 &= isfinite(b);
        d->cq = fmax(d->cq, sqrt(sq));
        d->cd = fmax(d->cd, sqrt(sd));
        d->cm = fmax(d->cm, sqrt(fmax(sc, sq)));
        d->bmax = fmax(d->bmax, b);
    }
    if ((st = alloc(d, &d->cents16, CL_MEM_READ_ONLY, kp * dim * 2, "float16 centroids", err)) ==
        MS_OK)
        st = upload(d, d->cents16, c16, kp * dim * 2, "clEnqueueWriteBuffer(centroids)", err);
    free(c16);
    return st;
}

int ms_index_dev_set_centroids(struct ms_index_dev *d, const float *cents, const float *bias,
                               uint32_t k, struct ms_err *err)
{
    const uint64_t cb = (uint64_t)k * d->dim * 4, kp = k_padded(k);
    float *padded; /* the bias (none given: zeros), -INFINITY past k: index_assign_nv_tiled's
                    * scores of its padding columns, which change no top-2 */
    int st;

    release(d, &d->cents, (uint64_t)d->k * d->dim * 4);
    release(d, &d->bias, k_padded(d->k) * 4);
    release(d, &d->cents16, k_padded(d->k) * d->dim * 2);
    d->k = k;
    if (!(padded = ms_calloc(kp ? kp : 1, 4, err)))
        return err->status;
    if (bias)
        memcpy(padded, bias, (size_t)k * 4);
    for (uint64_t c = k; c < kp; c++)
        padded[c] = -INFINITY;
    if ((st = alloc(d, &d->cents, CL_MEM_READ_ONLY, cb, "centroids", err)) == MS_OK &&
        (st = alloc(d, &d->bias, CL_MEM_READ_ONLY, kp * 4, "centroid bias", err)) == MS_OK &&
        (st = upload(d, d->cents, cents, cb, "clEnqueueWriteBuffer(centroids)", err)) == MS_OK &&
        (st = upload(d, d->bias, padded, kp * 4, "clEnqueueWriteBuffer(bias)", err)) == MS_OK)
        st = set_centroids_f16(d, cents, bias ? padded : NULL, err);
    free(padded);
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
    d->prepped = 0;
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

/* One exact assignment kernel over the transposed points xt [dim][stride]
 * (n of them) into out; its time is added to *time_s too. */
static int assign_exact(struct ms_index_dev *d, enum ms_index_assign kind, cl_mem xt, uint64_t n64,
                        uint64_t stride64, cl_mem out, double *time_s, struct ms_err *err)
{
    const cl_uint n = (cl_uint)n64, stride = (cl_uint)stride64, dim = d->dim, k = d->k;
    const cl_kernel kern = kind == MS_INDEX_ASSIGN_V16     ? d->k_assign_v16
                           : kind == MS_INDEX_ASSIGN_TILED ? d->k_assign_tiled
                                                           : d->k_assign;
    size_t global[2], local[2];
    const double t0 = d->kernel_s;
    int st;

    if ((st = MS_CL_SET_ARGS(kern, "index_assign", err, MS_ARG(xt), MS_ARG(stride), MS_ARG(n),
                             MS_ARG(dim), MS_ARG(d->cents), MS_ARG(d->bias), MS_ARG(k),
                             MS_ARG(out))) != MS_OK)
        return st;
    switch (kind) {
    case MS_INDEX_ASSIGN_V16: /* CPUs: the runtime picks the work-group size (the item count
                               * need not be a multiple of anything) */
        global[0] = stride64 / 16;
        st = ms_cl_launch(d->cl, kern, 1, global, NULL, "index_assign", &d->kernel_s, err);
        break;
    case MS_INDEX_ASSIGN_TILED:
        global[0] = (n64 + TILED_POINTS - 1) / TILED_POINTS * TILED_WG;
        global[1] = local[0] = local[1] = TILED_WG;
        st = ms_cl_launch(d->cl, kern, 2, global, local, "index_assign", &d->kernel_s, err);
        break;
    default:
        local[0] = ASSIGN_WG;
        global[0] = (n64 + ASSIGN_PT * ASSIGN_WG - 1) / (ASSIGN_PT * ASSIGN_WG) * ASSIGN_WG;
        st = ms_cl_launch(d->cl, kern, 1, global, local, "index_assign", &d->kernel_s, err);
        break;
    }
    if (time_s)
        *time_s += d->kernel_s - t0;
    return st;
}

/* Room for the approximate pass over cap points (the block's capacity). */
static int approx_buffers(struct ms_index_dev *d, struct ms_err *err)
{
    int st;
    if (!d->n_list &&
        (st = alloc(d, &d->n_list, CL_MEM_READ_WRITE, 4, "re-check count", err)) != MS_OK)
        return st;
    if (d->approx_cap >= d->cap)
        return MS_OK;
    release(d, &d->x16, d->approx_cap * d->dim * 2);
    release(d, &d->norms, d->approx_cap * 8);
    release(d, &d->list, d->approx_cap * 4);
    d->approx_cap = 0;
    if ((st = alloc(d, &d->x16, CL_MEM_READ_WRITE, d->cap * d->dim * 2, "float16 points", err)) !=
            MS_OK ||
        (st = alloc(d, &d->norms, CL_MEM_READ_WRITE, d->cap * 8, "point norms", err)) != MS_OK ||
        (st = alloc(d, &d->list, CL_MEM_READ_WRITE, d->cap * 4, "re-check list", err)) != MS_OK)
        return st;
    d->approx_cap = d->cap;
    return MS_OK;
}

/* The tiled kernel over the m gathered points, split over the centroids
 * so that a few points still make enough work-groups (about 4 a compute
 * unit; one group of 128 points against every centroid is a GPU mostly
 * idle), joined per point straight into d->codes. */
static int recheck_tiled(struct ms_index_dev *d, uint64_t m, uint64_t stride_g, struct ms_err *err)
{
    const uint64_t tiles = (m + TILED_POINTS - 1) / TILED_POINTS;
    const uint64_t want = (4ull * d->cl->info.compute_units + tiles - 1) / tiles;
    const uint64_t span = (d->k + (want ? want : 1) - 1) / (want ? want : 1);
    const uint64_t parts = (d->k + span - 1) / span;
    const cl_uint cm = (cl_uint)m, cstride_g = (cl_uint)stride_g, cdim = d->dim, ck = d->k;
    const cl_uint cspan = (cl_uint)span, cparts = (cl_uint)parts;
    int st;

    if (parts * m > d->part_cap) {
        release(d, &d->part_s, d->part_cap * 4);
        release(d, &d->part_c, d->part_cap * 4);
        d->part_cap = 0;
        if ((st = alloc(d, &d->part_s, CL_MEM_READ_WRITE, parts * m * 2 * 4, "re-check parts",
                        err)) != MS_OK ||
            (st = alloc(d, &d->part_c, CL_MEM_READ_WRITE, parts * m * 2 * 4, "re-check parts",
                        err)) != MS_OK)
            return st;
        d->part_cap = parts * m * 2;
    }
    const size_t global[2] = { tiles * TILED_WG, parts * TILED_WG },
                 local[2] = { TILED_WG, TILED_WG }, gj = m;
    if ((st = MS_CL_SET_ARGS(d->k_tiled_part, "index_assign_tiled_part", err, MS_ARG(d->xg),
                             MS_ARG(cstride_g), MS_ARG(cm), MS_ARG(cdim), MS_ARG(d->cents),
                             MS_ARG(d->bias), MS_ARG(ck), MS_ARG(cspan), MS_ARG(d->part_s),
                             MS_ARG(d->part_c))) != MS_OK ||
        (st = ms_cl_launch(d->cl, d->k_tiled_part, 2, global, local, "index_assign_tiled_part",
                           &d->kernel_s, err)) != MS_OK ||
        (st = MS_CL_SET_ARGS(d->k_join, "index_join_parts", err, MS_ARG(d->part_s),
                             MS_ARG(d->part_c), MS_ARG(cm), MS_ARG(cparts), MS_ARG(d->list),
                             MS_ARG(d->codes))) != MS_OK)
        return st;
    return ms_cl_launch(d->cl, d->k_join, 1, &gj, NULL, "index_join_parts", &d->kernel_s, err);
}

/* The m listed points, transposed into xg (grown as needed), assigned by
 * the exact kernel, their codes scattered back into d->codes. */
static int recheck(struct ms_index_dev *d, uint64_t m, struct ms_err *err)
{
    const uint64_t stride_g = (m + 15) / 16 * 16;
    const cl_uint cm = (cl_uint)m, cstride = (cl_uint)d->stride, cdim = d->dim;
    const cl_uint cstride_g = (cl_uint)stride_g;
    int st;

    if (stride_g > d->g_cap) {
        uint64_t cap = d->g_cap ? d->g_cap : 1024;
        while (cap < stride_g)
            cap *= 2;
        release(d, &d->xg, d->g_cap * d->dim * 4);
        release(d, &d->codes_g, d->g_cap * 4);
        d->g_cap = 0;
        if ((st = alloc(d, &d->xg, CL_MEM_READ_WRITE, cap * d->dim * 4, "re-checked points",
                        err)) != MS_OK ||
            (st = alloc(d, &d->codes_g, CL_MEM_READ_WRITE, cap * 4, "re-checked codes", err)) !=
                MS_OK)
            return st;
        d->g_cap = cap;
    }
    const double t0 = d->kernel_s;
    const size_t gg[2] = { d->dim, stride_g }, gs = m;
    if ((st = MS_CL_SET_ARGS(d->k_gather, "index_gather", err, MS_ARG(d->xt), MS_ARG(cstride),
                             MS_ARG(d->list), MS_ARG(cm), MS_ARG(cdim), MS_ARG(cstride_g),
                             MS_ARG(d->xg))) != MS_OK ||
        (st = ms_cl_launch(d->cl, d->k_gather, 2, gg, NULL, "index_gather", &d->kernel_s, err)) !=
            MS_OK)
        return st;
    if (d->exact == MS_INDEX_ASSIGN_TILED)
        st = recheck_tiled(d, m, stride_g, err);
    else if ((st = assign_exact(d, d->exact, d->xg, m, stride_g, d->codes_g, NULL, err)) == MS_OK &&
             (st = MS_CL_SET_ARGS(d->k_scatter, "index_scatter", err, MS_ARG(d->codes_g),
                                  MS_ARG(d->list), MS_ARG(cm), MS_ARG(d->codes))) == MS_OK)
        st = ms_cl_launch(d->cl, d->k_scatter, 1, &gs, NULL, "index_scatter", &d->kernel_s, err);
    if (st != MS_OK)
        return st;
    d->rs.recheck_s += d->kernel_s - t0;
    return MS_OK;
}

/* The approximate pass over the loaded block, then the exact re-check of
 * what it left unsettled; codes in d->codes. */
static int assign_approx(struct ms_index_dev *d, struct ms_err *err)
{
    const cl_uint n = (cl_uint)d->n, stride = (cl_uint)d->stride, dim = d->dim, k = d->k;
    const int nv = d->assign == MS_INDEX_ASSIGN_NV && d->k_nv;
    const cl_kernel kern = nv ? d->k_nv : d->k_approx;
    /* the bound of kernels/index.cl ("Approximate assignment"); the slack
     * covers the float32 rounding of the norms and of e */
    const double slack = (1.0 + 0x1p-6) * d->margin;
    const double sums = (dim + 16.0) * 0x1p-22 + dim * 0x1p-24 + 0x1p-22;
    const float c_q = (float)(d->cq * slack), c_n = (float)((d->cd + sums * d->cm) * slack);
    const float c_b = (float)(0x1p-23 * d->bmax * slack);
    const cl_uint zero = 0;
    cl_uint m = 0;
    int st;

    d->rs.points += d->n;
    if (!d->cents_f16) { /* float16 cannot hold the centroids: all exact */
        d->rs.rechecked += d->n;
        return assign_exact(d, d->exact, d->xt, d->n, d->stride, d->codes, &d->rs.recheck_s, err);
    }
    if ((st = approx_buffers(d, err)) != MS_OK)
        return st;
    const double t0 = d->kernel_s;
    if (!d->prepped) {
        const size_t global = d->n;
        if ((st = MS_CL_SET_ARGS(d->k_prep, "index_approx_prep", err, MS_ARG(d->xt), MS_ARG(stride),
                                 MS_ARG(n), MS_ARG(dim), MS_ARG(d->x16), MS_ARG(d->norms))) !=
                MS_OK ||
            (st = ms_cl_launch(d->cl, d->k_prep, 1, &global, NULL, "index_approx_prep",
                               &d->kernel_s, err)) != MS_OK)
            return st;
        d->prepped = 1;
    }
    if ((st = upload(d, d->n_list, &zero, 4, "clEnqueueWriteBuffer(re-check count)", err)) !=
            MS_OK ||
        (st = MS_CL_SET_ARGS(kern, nv ? "index_assign_nv" : "index_assign_approx", err,
                             MS_ARG(d->x16), MS_ARG(n), MS_ARG(dim), MS_ARG(d->cents16),
                             MS_ARG(d->bias), MS_ARG(k), MS_ARG(d->norms), MS_ARG(c_q), MS_ARG(c_n),
                             MS_ARG(c_b), MS_ARG(d->codes), MS_ARG(d->list), MS_ARG(d->n_list))) !=
            MS_OK)
        return st;
    if (nv && d->nv.w) { /* 16 MT points a warp, W warps a group */
        const uint64_t per = 16ull * d->nv.mt * d->nv.w;
        const size_t local = 32 * d->nv.w, global = (d->n + per - 1) / per * local;
        st = ms_cl_launch(d->cl, kern, 1, &global, &local, "index_assign_nv_tiled", &d->kernel_s,
                          err);
    } else if (nv) {
        const size_t global = (d->n + NV_WG - 1) / NV_WG * NV_WG, local = NV_WG;
        st = ms_cl_launch(d->cl, kern, 1, &global, &local, "index_assign_nv", &d->kernel_s, err);
    } else {
        const size_t global = d->n;
        st = ms_cl_launch(d->cl, kern, 1, &global, NULL, "index_assign_approx", &d->kernel_s, err);
    }
    if (st != MS_OK)
        return st;
    d->rs.approx_s += d->kernel_s - t0;
    if ((st = download(d, d->n_list, &m, 4, "clEnqueueReadBuffer(re-check count)", err)) != MS_OK)
        return st;
    if (m > d->n) /* a kernel bug, never a result to trust */
        return ms_err_set(err, MS_ERR_RUNTIME, "index_assign: %u points to re-check of %u", m, n);
    d->rs.rechecked += m;
    return m ? recheck(d, m, err) : MS_OK;
}

int ms_index_dev_assign(struct ms_index_dev *d, uint32_t *codes, struct ms_err *err)
{
    int st;

    if (!d->n)
        return MS_OK;
    if (d->assign == MS_INDEX_ASSIGN_APPROX || d->assign == MS_INDEX_ASSIGN_NV)
        st = assign_approx(d, err);
    else
        st = assign_exact(d, d->assign, d->xt, d->n, d->stride, d->codes, NULL, err);
    if (st != MS_OK)
        return st;
    return download(d, d->codes, codes, d->n * 4, "clEnqueueReadBuffer(codes)", err);
}

void ms_index_dev_set_assign(struct ms_index_dev *d, enum ms_index_assign kind)
{
    d->assign = kind;
    if (kind != MS_INDEX_ASSIGN_APPROX && kind != MS_INDEX_ASSIGN_NV)
        d->exact = kind;
}

enum ms_index_assign ms_index_dev_get_assign(const struct ms_index_dev *d)
{
    return d->assign == MS_INDEX_ASSIGN_NV && !d->k_nv ? MS_INDEX_ASSIGN_APPROX : d->assign;
}

const char *ms_index_dev_assign_name(const struct ms_index_dev *d)
{
    switch (ms_index_dev_get_assign(d)) {
    case MS_INDEX_ASSIGN_NV: return d->assign_name;
    case MS_INDEX_ASSIGN_APPROX: return "float16 (portable), exact re-check";
    default: return "float32";
    }
}

void ms_index_dev_set_margin(struct ms_index_dev *d, double scale)
{
    d->margin = scale;
}

void ms_index_dev_recheck_stats(const struct ms_index_dev *d, struct ms_index_recheck *out)
{
    *out = d->rs;
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
