/*
 * index.cl - building a PLAID index (`maxsim index`): nearest-centroid
 * assignment and ColBERTv2 residual compression. Host side: src/index_cl.c.
 *
 *   index_assign  for every point i, the centroid c with the largest
 *       <x_i, c> + bias[c] (ties: the lower c). With bias[c] = -|c|^2 / 2
 *       that is the nearest centroid in L2 (k-means, as fastkmeans); with
 *       bias = 0 the largest dot product (ColBERT's compress_into_codes).
 *       Points come transposed ([dim][n], so neighbouring work-items read
 *       neighbouring words); a work-item scores PT points against a tile of
 *       CT centroids held in local memory, PT * CT accumulators in registers.
 *   index_transpose  raw points [n][dim] (float32, or float16 read with
 *       vload_half, which needs no extension) to float32 [dim][n].
 *   index_compress  one work-item per token, byte by byte: the residual
 *       x - centroid[code] of each of the byte's 8/nbits dimensions, its
 *       bucket (the number of cutoffs strictly below it, torch.bucketize),
 *       the bucket's bits least significant first, packed from the byte's
 *       most significant bit down (ColBERT's binarize + packbits).
 * Every result depends only on its own point and the centroids, never on
 * how points are split into launches, so a build is the same whatever the
 * block size.
 *
 * Standalone OpenCL C 1.2: `make check-kernels` compiles it with clang.
 */

__kernel void index_transpose(__global const float *restrict x32,
                              __global const half *restrict x16, const uint is_half,
                              const uint n, const uint dim, const uint stride,
                              __global float *restrict xt)
{
    /* stride: n rounded up to 16; the padding points are zeros */
    const uint d = (uint)get_global_id(0), i = (uint)get_global_id(1);
    if (d >= dim || i >= stride)
        return;
    const size_t at = (size_t)i * dim + d;
    xt[(size_t)d * stride + i] = i >= n ? 0.0f : is_half ? vload_half(at, x16) : x32[at];
}

#define CB 8 /* centroids per inner block */
#define PT 4 /* points per work-item (GPU kernel) */

__kernel void index_assign(__global const float *restrict xt, const uint stride, const uint n,
                           const uint dim, __global const float *restrict cents,
                           __global const float *restrict bias, const uint k,
                           __global uint *restrict out)
{
    /* PT points a work-item, PT * CB accumulators: per dimension PT point
     * loads (consecutive across work-items) and CB centroid loads (the same
     * word for every work-item: a broadcast) feed PT * CB fmas */
    const uint wg = (uint)get_local_size(0);
    const uint i0 = (uint)get_group_id(0) * wg * PT + (uint)get_local_id(0);
    float best[PT];
    uint arg[PT];
    for (uint p = 0; p < PT; p++) {
        best[p] = -INFINITY;
        arg[p] = 0;
    }
    uint c0 = 0;
    for (; c0 + CB <= k; c0 += CB) {
        float acc[PT][CB];
        for (uint p = 0; p < PT; p++)
            for (uint j = 0; j < CB; j++)
                acc[p][j] = 0.0f;
        __global const float *c = cents + (size_t)c0 * dim;
        for (uint d = 0; d < dim; d++) {
            float xv[PT], cv[CB];
            for (uint p = 0; p < PT; p++) /* stride >= every i: padding reads zeros */
                xv[p] = xt[(size_t)d * stride + min(i0 + p * wg, stride - 1)];
            for (uint j = 0; j < CB; j++)
                cv[j] = c[j * dim + d];
            for (uint p = 0; p < PT; p++)
                for (uint j = 0; j < CB; j++)
                    acc[p][j] = fma(xv[p], cv[j], acc[p][j]);
        }
        for (uint p = 0; p < PT; p++)
            for (uint j = 0; j < CB; j++) {
                const float s = acc[p][j] + bias[c0 + j];
                if (s > best[p]) {
                    best[p] = s;
                    arg[p] = c0 + j;
                }
            }
    }
    for (; c0 < k; c0++)
        for (uint p = 0; p < PT; p++) {
            float acc = 0.0f;
            for (uint d = 0; d < dim; d++)
                acc = fma(xt[(size_t)d * stride + min(i0 + p * wg, stride - 1)],
                          cents[(size_t)c0 * dim + d], acc);
            const float s = acc + bias[c0];
            if (s > best[p]) {
                best[p] = s;
                arg[p] = c0;
            }
        }
    for (uint p = 0; p < PT; p++)
        if (i0 + p * wg < n)
            out[i0 + p * wg] = arg[p];
}

/* The same result, tiled for GPUs: a work-group of 16 x 16 work-items scores
 * a tile of TP = 128 points against every centroid, TC = 128 at a time.
 * DK dimensions of both tiles are staged in local memory per step; a
 * work-item keeps an 8 x 8 register block (points lx*8.., centroids ly*8..
 * of the tile) and reads them as float4 pairs, 16 local words for 64 fmas.
 * Each (point, centroid) accumulator is still one fma chain over the
 * dimensions in order from 0.0f, so the scores, and the codes, are
 * index_assign's. A work-item scans its own centroids in ascending order
 * (strict >: the lowest of equal maxima); the 16 lanes of a point are then
 * joined by the larger score, ties to the lower centroid. */
#define TL 16 /* work-items along each side of the work-group */
#define TB 8  /* points (and centroids) per work-item */
#define TT (TL * TB)
#define DK 16
#define CS (TT + 4) /* local row of the centroid tile: padded against bank conflicts, 16-byte rows */

__kernel __attribute__((reqd_work_group_size(TL, TL, 1))) void
index_assign_tiled(__global const float *restrict xt, const uint stride, const uint n,
                   const uint dim, __global const float *restrict cents,
                   __global const float *restrict bias, const uint k, __global uint *restrict out)
{
    __local float xs[DK * TT];
    __local float cs[DK * CS];
    const uint lx = (uint)get_local_id(0), ly = (uint)get_local_id(1), lid = ly * TL + lx;
    const uint p0 = (uint)get_group_id(0) * TT;
    float best[TB];
    uint arg[TB];
    for (uint i = 0; i < TB; i++) {
        best[i] = -INFINITY;
        arg[i] = 0;
    }
    for (uint c0 = 0; c0 < k; c0 += TT) {
        float acc[TB][TB];
        for (uint i = 0; i < TB; i++)
            for (uint j = 0; j < TB; j++)
                acc[i][j] = 0.0f;
        for (uint d0 = 0; d0 < dim; d0 += DK) {
            const uint dl = min((uint)DK, dim - d0);
            barrier(CLK_LOCAL_MEM_FENCE);
            for (uint e = lid; e < DK * TT; e += TL * TL) {
                const uint dd = e / TT, p = p0 + e % TT;
                xs[e] = dd < dl && p < stride ? xt[(size_t)(d0 + dd) * stride + p] : 0.0f;
                const uint cd = e % DK, c = c0 + e / DK;
                cs[cd * CS + e / DK] = cd < dl && c < k ? cents[(size_t)c * dim + d0 + cd] : 0.0f;
            }
            barrier(CLK_LOCAL_MEM_FENCE);
            for (uint dd = 0; dd < dl; dd++) {
                const float4 xa = vload4(0, xs + dd * TT + lx * TB);
                const float4 xb = vload4(1, xs + dd * TT + lx * TB);
                const float4 ca = vload4(0, cs + dd * CS + ly * TB);
                const float4 cb = vload4(1, cs + dd * CS + ly * TB);
                const float xv[TB] = { xa.x, xa.y, xa.z, xa.w, xb.x, xb.y, xb.z, xb.w };
                const float cv[TB] = { ca.x, ca.y, ca.z, ca.w, cb.x, cb.y, cb.z, cb.w };
                for (uint i = 0; i < TB; i++)
                    for (uint j = 0; j < TB; j++)
                        acc[i][j] = fma(xv[i], cv[j], acc[i][j]);
            }
        }
        for (uint j = 0; j < TB; j++) {
            const uint c = c0 + ly * TB + j;
            if (c >= k)
                break;
            const float b = bias[c];
            for (uint i = 0; i < TB; i++) {
                const float s = acc[i][j] + b;
                if (s > best[i]) {
                    best[i] = s;
                    arg[i] = c;
                }
            }
        }
    }
    /* join the 16 centroid lanes of every point */
    barrier(CLK_LOCAL_MEM_FENCE);
    __local uint *args = (__local uint *)cs;
    for (uint i = 0; i < TB; i++) {
        xs[ly * TT + lx * TB + i] = best[i];
        args[ly * TT + lx * TB + i] = arg[i];
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    if (lid < TT) {
        float b = xs[lid];
        uint a = args[lid];
        for (uint l = 1; l < TL; l++) {
            const float s = xs[l * TT + lid];
            const uint c = args[l * TT + lid];
            if (s > b || (s == b && c < a)) {
                b = s;
                a = c;
            }
        }
        if (p0 + lid < n)
            out[p0 + lid] = a;
    }
}
#undef TL
#undef TB
#undef TT
#undef DK
#undef CS

/* The same result for CPUs: a work-item takes 16 consecutive points as one
 * float16 vector per dimension (the transposed layout makes it one load)
 * and CB broadcast centroid values; the per-point fma chain is the one of
 * index_assign, so the codes are identical. */
__kernel void index_assign_v16(__global const float *restrict xt, const uint stride, const uint n,
                               const uint dim, __global const float *restrict cents,
                               __global const float *restrict bias, const uint k,
                               __global uint *restrict out)
{
    const uint i0 = (uint)get_global_id(0) * 16;
    if (i0 >= n)
        return;
    float16 best = (float16)(-INFINITY);
    uint16 arg = (uint16)(0);
    uint c0 = 0;
    for (; c0 + 8 <= k; c0 += 8) {
        __global const float *c = cents + (size_t)c0 * dim;
        float16 a0 = (float16)(0.0f), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0,
                a7 = a0;
        for (uint d = 0; d < dim; d++) {
            const float16 xv = vload16(0, xt + (size_t)d * stride + i0);
            a0 = fma(xv, (float16)(c[d]), a0);
            a1 = fma(xv, (float16)(c[dim + d]), a1);
            a2 = fma(xv, (float16)(c[2 * dim + d]), a2);
            a3 = fma(xv, (float16)(c[3 * dim + d]), a3);
            a4 = fma(xv, (float16)(c[4 * dim + d]), a4);
            a5 = fma(xv, (float16)(c[5 * dim + d]), a5);
            a6 = fma(xv, (float16)(c[6 * dim + d]), a6);
            a7 = fma(xv, (float16)(c[7 * dim + d]), a7);
        }
#define MS_TAKE(A, J)                                                                             \
    {                                                                                             \
        const float16 s = A + (float16)(bias[c0 + J]);                                            \
        const int16 better = s > best;                                                            \
        best = select(best, s, better);                                                           \
        arg = select(arg, (uint16)(c0 + J), as_uint16(better));                                   \
    }
        MS_TAKE(a0, 0) MS_TAKE(a1, 1) MS_TAKE(a2, 2) MS_TAKE(a3, 3);
        MS_TAKE(a4, 4) MS_TAKE(a5, 5) MS_TAKE(a6, 6) MS_TAKE(a7, 7);
    }
    for (; c0 < k; c0++) {
        float16 a0 = (float16)(0.0f);
        for (uint d = 0; d < dim; d++)
            a0 = fma(vload16(0, xt + (size_t)d * stride + i0), (float16)(cents[(size_t)c0 * dim + d]),
                     a0);
        MS_TAKE(a0, 0);
    }
#undef MS_TAKE
    uint r[16];
    vstore16(arg, 0, r);
    for (uint j = 0; j < 16 && i0 + j < n; j++)
        out[i0 + j] = r[j];
}

__kernel void index_compress(__global const float *restrict xt, const uint stride, const uint n,
                             const uint dim,
                             __global const float *restrict cents,
                             __global const uint *restrict codes,
                             __global const float *restrict cutoffs, const uint nbits,
                             __global uchar *restrict out)
{
    /* one work-item per token, all its bytes: neighbouring work-items read
     * neighbouring words of the transposed points */
    const uint t = (uint)get_global_id(0);
    if (t >= n)
        return;
    const uint kpb = 8 / nbits, packed = dim * nbits / 8;
    const uint ncut = (1u << nbits) - 1;
    const size_t crow = (size_t)codes[t] * dim;
    for (uint b = 0; b < packed; b++) {
        uint byte = 0;
        for (uint s = 0; s < kpb; s++) {
            const uint d = b * kpb + s;
            const float r = xt[(size_t)d * stride + t] - cents[crow + d];
            uint bucket = 0;
            for (uint c = 0; c < ncut; c++)
                bucket += cutoffs[c] < r ? 1u : 0u;
            for (uint tb = 0; tb < nbits; tb++)
                byte |= ((bucket >> tb) & 1u) << (7 - (s * nbits + tb));
        }
        out[(size_t)t * packed + b] = (uchar)byte;
    }
}
