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
 *   index_approx_prep, index_assign_approx, index_assign_nv(_tiled),
 *       index_gather, index_scatter  the same codes from float16 scores
 *       (tensor cores on NVIDIA) with an exact re-check of the points they
 *       cannot settle: see "Approximate assignment" below.
 * Every result depends only on its own point and the centroids, never on
 * how points are split into launches, so a build is the same whatever the
 * block size.
 *
 * Build options: -DMS_NVIDIA=1 on NVIDIA devices; index_assign_nv (inline
 * PTX) only with -DIX_NV_KS=dim/16 too (even: dim a multiple of 32), which
 * the host leaves out under MAXSIM_INDEX_NV=0; index_assign_nv_tiled's shape
 * -DIX_NV_W, _MT, _NT, _CT, _ST, _CP (defaults below). Standalone OpenCL C
 * 1.2: `make check-kernels` compiles it with clang. tests/test_nv_layout.c
 * includes the part above the kernels (IX_NV_INDEX_ONLY) to emulate both
 * NVIDIA kernels; scripts/nv-twin/index_nv_twin.cu compiles them as CUDA
 * (IX_NV_CUDA, the portable kernels left out) for ptxas.
 */

/*
 * Approximate assignment. The exact kernels below give code(i) = the lowest
 * c maximizing s(i, c) = fl(fma chain over d of x_i[d] * c[d]) + bias[c],
 * all float32. The approximate pass computes t(i, c) from float16-rounded
 * x_i and c (float32 products and sums, on NVIDIA mma.sync f16 -> f32) plus
 * the same bias, and keeps per point the best t, its centroid and the
 * second-best t (top-2; a tie at the top makes the two equal). With a bound
 * |t(i, c) - s(i, c)| <= e_i for every c:
 *   if best_t - second_t > 2 e_i, the exact argmax is the approximate one:
 *   for any c != b (b the approximate best), s(c) <= t(c) + e_i <= second_t
 *   + e_i < best_t - e_i <= s(b), so s(c) < s(b) strictly, and b is the
 *   unique exact maximum (no tie left for the lower-index rule to break).
 * Otherwise (near ties, exact ties, NaN, values float16 cannot hold) the
 * point is listed for the exact kernel, whose code replaces the
 * approximate one: the codes are the exact kernels' codes, bit for bit.
 *
 * The bound. Write x~, c~ for the float16 roundings and |.| for the 2-norm.
 * Exactly, x~.c~ - x.c = (x~ - x).c~ + x.(c~ - c), so by Cauchy-Schwarz
 *   |<x~, c~> - <x, c>| <= |x~ - x| |c~| + |x| |c~ - c|
 * whatever the rounding (subnormals included; a value float16 cannot hold
 * makes |x~ - x| infinite). The sums add, with A = |x| |c| and A~ = |x~|
 * |c~| bounding sum_d |x_d c_d| and sum_d |x~_d c~_d|:
 *   the approximate sums: (dim + 16) 2^-22 A~ (products of float16 values
 *       are exact in float32; 2 ulps a term for the tensor cores' truncating
 *       adds, which measure at 1: Fasi et al., "Numerical behavior of NVIDIA
 *       tensor cores", 2021; the fma chain of index_assign_approx is well
 *       within it);
 *   the exact fma chain: dim 2^-24 A (1 + dim 2^-24);
 *   the two float32 bias additions: 2^-24 (|sum + bias|) each, at most
 *       2^-22 max(A, A~) + 2^-23 max|bias|.
 * So, with N = max(|x|, |x~|) and C = max over c of max(|c|, |c~|):
 *   e = |x~ - x| max|c~| + |x| max|c~ - c|
 *       + ((dim + 16) 2^-22 + dim 2^-24 + 2^-22) N C + 2^-23 max|bias|,
 * times 1 + 2^-6 for the float32 rounding of the norms (sqrt within 3
 * ulps) and of e itself. The centroid maxima come from the host (which
 * refuses the pass when a centroid value does not fit float16);
 * index_approx_prep computes |x~ - x| (infinite for a value beyond float16
 * or NaN: the point is always re-checked) and N. For unit vectors e is
 * about 4e-4 (|x~ - x| ~ 0.35 u |x|, u = 2^-11). docs/kernel-notes.md has
 * the derivation at length.
 */
#define IX_NV_A_ROW(lane, r)  (((lane) >> 2) + 8 * ((r) & 1)) /* A: points x dims */
#define IX_NV_A_COL(lane, r)  (2 * ((lane) & 3) + 8 * ((r) >> 1))
#define IX_NV_B_CENT(lane)    ((lane) >> 2) /* B: dims x centroids */
#define IX_NV_B_K(lane, r)    (2 * ((lane) & 3) + 8 * (r))
#define IX_NV_C_ROW(lane, r)  (((lane) >> 2) + 8 * ((r) >> 1)) /* C: points x centroids */
#define IX_NV_C_COL(lane, r)  (2 * ((lane) & 3) + ((r) & 1))
#define IX_NV_COL_T(col)      (((col) >> 1) & 3) /* t (lane & 3) of the lanes holding column col */
/* The uint4 (4 float16 pairs) of a point's or centroid's row that a lane
 * loads for k-steps 2j and 2j + 1: its words q = 0..3 feed k-step
 * 2j + (q >> 1), A registers (r & 1) + 2 (q & 1) of row r & 1, B register
 * q & 1. That permutes the 32 dimensions of the two k-steps (a lane's 4
 * words adjacent: one 16-byte load instead of 4), the same way for A and
 * B, so the dot products are the same sums in another order. */
#define IX_NV_QUAD(lane, j) (4 * (j) + ((lane) & 3))

/* index_assign_nv_tiled's maps (tests/test_nv_layout.c emulates them):
 * the __local row stride in halves for ks k-steps, padded so that row
 * starts 8 apart differ by 16 words mod 32 (a quarter-warp's 16-byte
 * loads, 2 rows x 4 words of 4 lanes, then hit 32 distinct banks); the
 * place (halves) of 16-byte word e of a staged tile (row e / qw, its
 * word e % qw as in the global row: IX_NV_QUAD still applies); a lane's
 * B word (IX_NV_QUAD(lane, j)) of n-tile t of a step; the first of the 2
 * columns (bias entries) of n-tile t a lane holds; and the point of slot s
 * (m-tile s >> 1, row g + 8 (s & 1)) within a warp's points. */
#define IX_NV_LDS_OF(ks)             (16 * (ks) + ((ks) % 4 == 0 ? 32 : 0))
#define IX_NV_STAGE_OFF(e, qw, lds)  (((e) / (qw)) * (lds) + 8 * ((e) % (qw)))
#define IX_NV_T_OFF(lane, t, j, lds) ((8 * (t) + IX_NV_B_CENT(lane)) * (lds) + 8 * IX_NV_QUAD(lane, j))
#define IX_NV_T_BIAS(lane, t)        (8 * (t) + 2 * ((lane) & 3))
#define IX_NV_SLOT_ROW(lane, s)      (16 * ((s) >> 1) + ((lane) >> 2) + 8 * ((s) & 1))

/* One more score of a point, centroids in ascending order: an equal score
 * goes to second (a tie at the top leaves no margin). */
static inline void ix_top2_take(const float s, const uint c, float *best, uint *arg, float *second)
{
    if (s > *best) {
        *second = *best;
        *best = s;
        *arg = c;
    } else {
        *second = fmax(*second, s);
    }
}

/* ns more scores s[i] of centroids c[i] (ascending) of a point: the same
 * as ns ix_top2_take calls in order. A score that does not beat second
 * changes nothing (then s <= second <= best; NaN fails every comparison
 * and fmax ignores it), so when none does, as for almost every run once
 * the point's top-2 has formed, the takes are skipped. */
static inline void ix_top2_take_run(const float *s, const uint *c, const uint ns, float *best,
                                    uint *arg, float *second)
{
    int any = 0;
    for (uint i = 0; i < ns; i++)
        any |= s[i] > *second;
    if (any)
        for (uint i = 0; i < ns; i++)
            ix_top2_take(s[i], c[i], best, arg, second);
}

/* Two top-2s of disjoint centroid sets joined: the larger best (equal: the
 * lower centroid), the larger of the loser's best and the winner's second.
 * The same result whichever side is `*`, so both lanes of a shuffle agree. */
static inline void ix_top2_join(float *best, uint *arg, float *second, const float obest,
                                const uint oarg, const float osecond)
{
    if (obest > *best || (obest == *best && oarg < *arg)) {
        *second = fmax(*best, osecond);
        *best = obest;
        *arg = oarg;
    } else {
        *second = fmax(*second, obest);
    }
}

/* Whether the approximate best is the exact argmax (the comment above):
 * rx = |x~ - x| (infinite: a value float16 cannot hold), nx = N; the host's
 * scaled constants: c_q = max|c~|, c_n = max|c~ - c| + (the sums' rate) C,
 * c_b = 2^-23 max|bias|. NaN anywhere fails the test. */
static inline int ix_settled(const float best, const float second, const float rx,
                             const float nx, const float c_q, const float c_n, const float c_b)
{
    const float e = rx * c_q + nx * c_n + c_b;
    return best - second > 2.0f * e;
}

#ifndef IX_NV_INDEX_ONLY
#ifndef IX_NV_CUDA /* the twin compiles the NVIDIA kernels alone */

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

/* The scan of index_assign_tiled over centroids [c_begin, c_end): for
 * work-item lid < TT, the best score of point p0 + lid and its centroid
 * (the lowest of equal maxima; -INFINITY and 0 when no score beats
 * -INFINITY). Every work-item of the group must call it (barriers). */
static inline void ix_tiled_scan(__global const float *restrict xt, const uint stride,
                                 const uint dim, __global const float *restrict cents,
                                 __global const float *restrict bias, const uint c_begin,
                                 const uint c_end, const uint p0, __local float *xs,
                                 __local float *cs, float *best_out, uint *arg_out)
{
    const uint lx = (uint)get_local_id(0), ly = (uint)get_local_id(1), lid = ly * TL + lx;
    float best[TB];
    uint arg[TB];
    for (uint i = 0; i < TB; i++) {
        best[i] = -INFINITY;
        arg[i] = 0;
    }
    for (uint c0 = c_begin; c0 < c_end; c0 += TT) {
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
                cs[cd * CS + e / DK] =
                    cd < dl && c < c_end ? cents[(size_t)c * dim + d0 + cd] : 0.0f;
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
            if (c >= c_end)
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
        *best_out = b;
        *arg_out = a;
    }
}

__kernel __attribute__((reqd_work_group_size(TL, TL, 1))) void
index_assign_tiled(__global const float *restrict xt, const uint stride, const uint n,
                   const uint dim, __global const float *restrict cents,
                   __global const float *restrict bias, const uint k, __global uint *restrict out)
{
    __local float xs[DK * TT];
    __local float cs[DK * CS];
    const uint lid = (uint)get_local_id(1) * TL + (uint)get_local_id(0);
    const uint p0 = (uint)get_group_id(0) * TT;
    float b;
    uint a;
    ix_tiled_scan(xt, stride, dim, cents, bias, 0, k, p0, xs, cs, &b, &a);
    if (lid < TT && p0 + lid < n)
        out[p0 + lid] = a;
}

/* index_assign_tiled split over the centroids, for a few points (the
 * approximate pass's re-check): group (x, y) scans points x * TT.. against
 * centroids [y span, (y + 1) span), writing its best score and centroid to
 * part_s/part_c[y * n + i]; index_join_parts then keeps, per point, the
 * first part with the largest score. The same fma chains and the same
 * rule (the lowest of equal maxima, 0 when none beats -INFINITY), so the
 * same codes as index_assign_tiled, with enough groups to fill a GPU. */
__kernel __attribute__((reqd_work_group_size(TL, TL, 1))) void
index_assign_tiled_part(__global const float *restrict xt, const uint stride, const uint n,
                        const uint dim, __global const float *restrict cents,
                        __global const float *restrict bias, const uint k, const uint span,
                        __global float *restrict part_s, __global uint *restrict part_c)
{
    __local float xs[DK * TT];
    __local float cs[DK * CS];
    const uint lid = (uint)get_local_id(1) * TL + (uint)get_local_id(0);
    const uint p0 = (uint)get_group_id(0) * TT, y = (uint)get_group_id(1);
    const uint c_begin = y * span, c_end = min(k, c_begin + span);
    float b;
    uint a;
    ix_tiled_scan(xt, stride, dim, cents, bias, c_begin, c_end, p0, xs, cs, &b, &a);
    if (lid < TT && p0 + lid < n) {
        part_s[(size_t)y * n + p0 + lid] = b;
        part_c[(size_t)y * n + p0 + lid] = a;
    }
}

/* Per point, the parts in centroid order: strict > keeps the lower centroid
 * of equal maxima (and part 0's 0 when no score beats -INFINITY); the code
 * goes straight to its point's place (list: the re-check list). */
__kernel void index_join_parts(__global const float *restrict part_s,
                               __global const uint *restrict part_c, const uint n,
                               const uint parts, __global const uint *restrict list,
                               __global uint *restrict codes)
{
    const uint i = (uint)get_global_id(0);
    if (i >= n)
        return;
    float b = part_s[i];
    uint a = part_c[i];
    for (uint y = 1; y < parts; y++) {
        const float s = part_s[(size_t)y * n + i];
        if (s > b) {
            b = s;
            a = part_c[(size_t)y * n + i];
        }
    }
    codes[list[i]] = a;
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

/* ---- Approximate assignment (see the comment at the top) ---- */

/* Per point of the transposed block: its float16 row (round to nearest
 * even, as the host rounds the centroids), |x~ - x| (infinite when a value
 * is beyond float16's range or NaN: then the point is re-checked) and
 * max(|x|, |x~|). One work-item a point; it reads back its own float16
 * values (OpenCL 1.2 has no half arithmetic without cl_khr_fp16). */
__kernel void index_approx_prep(__global const float *restrict xt, const uint stride, const uint n,
                                const uint dim, __global half *restrict x16,
                                __global float2 *restrict norms)
{
    const uint i = (uint)get_global_id(0);
    if (i >= n)
        return;
    float sx = 0.0f, sh = 0.0f, sr = 0.0f;
    int safe = 1;
    for (uint d = 0; d < dim; d++) {
        const size_t at = (size_t)i * dim + d;
        const float v = xt[(size_t)d * stride + i];
        safe &= fabs(v) <= 65504.0f; /* false for NaN */
        vstore_half_rte(v, at, x16);
        const float h = vload_half(at, x16), r = h - v; /* exact: h and v are close */
        sx = fma(v, v, sx);
        sh = fma(h, h, sh);
        sr = fma(r, r, sr);
    }
    norms[i] = (float2)(safe ? sqrt(sr) : INFINITY, sqrt(fmax(sx, sh)));
}

/* The approximate pass anywhere (PoCL tests it): one work-item a point,
 * float16 inputs, float32 fma sums. The centroids are split over 4 slots
 * as index_assign_nv splits them over the 4 lanes of a row (pairs of
 * columns), and the slots joined in its shuffle order, so the top-2 logic
 * is the one the tensor-core kernel runs. Not fast: a reference. */
__kernel void index_assign_approx(__global const half *restrict x16, const uint n, const uint dim,
                                  __global const half *restrict c16,
                                  __global const float *restrict bias, const uint k,
                                  __global const float2 *restrict norms, const float c_q,
                                  const float c_n, const float c_b,
                                  __global uint *restrict out, __global uint *restrict recheck,
                                  __global uint *restrict n_recheck)
{
    const uint i = (uint)get_global_id(0);
    if (i >= n)
        return;
    float best[4], second[4];
    uint arg[4];
    for (uint l = 0; l < 4; l++) {
        best[l] = second[l] = -INFINITY;
        arg[l] = 0;
    }
    for (uint c = 0; c < k; c++) {
        float acc = 0.0f;
        for (uint d = 0; d < dim; d++)
            acc = fma(vload_half((size_t)i * dim + d, x16), vload_half((size_t)c * dim + d, c16),
                      acc);
        const uint l = IX_NV_COL_T(c);
        ix_top2_take(acc + bias[c], c, &best[l], &arg[l], &second[l]);
    }
    /* shfl.xor 1 then 2, as lane 0 sees it */
    for (uint m = 1; m <= 2; m *= 2)
        for (uint l = 0; l < 4; l += 2 * m)
            ix_top2_join(&best[l], &arg[l], &second[l], best[l + m], arg[l + m], second[l + m]);
    out[i] = arg[0];
    const float2 nx = norms[i];
    if (!ix_settled(best[0], second[0], nx.x, nx.y, c_q, c_n, c_b))
        recheck[atomic_inc(n_recheck)] = i;
}

/* The points to re-check, transposed into a block of their own (stride:
 * m rounded up to 16, the padding zeros), for the exact kernels. */
__kernel void index_gather(__global const float *restrict xt, const uint stride,
                           __global const uint *restrict list, const uint m, const uint dim,
                           const uint stride_g, __global float *restrict xg)
{
    const uint d = (uint)get_global_id(0), j = (uint)get_global_id(1);
    if (d >= dim || j >= stride_g)
        return;
    xg[(size_t)d * stride_g + j] = j < m ? xt[(size_t)d * stride + list[j]] : 0.0f;
}

__kernel void index_scatter(__global const uint *restrict codes_g, __global const uint *restrict list,
                            const uint m, __global uint *restrict codes)
{
    const uint j = (uint)get_global_id(0);
    if (j < m)
        codes[list[j]] = codes_g[j];
}

#endif /* IX_NV_CUDA */

/*
 * index_assign_nv (NVIDIA only, -DMS_NVIDIA=1): index_assign_approx's
 * result on the tensor cores, mma.sync m16n8k16 (float16 x float16,
 * float32 sums) through inline PTX, as kernels/plaid.cl's
 * plaid_centroid_scores_nv (verified on the H200). A work-group of 4 warps
 * takes 128 points, a warp 32 of them (2 m-tiles of 16), their A fragments
 * held in registers for the whole dimension (IX_NV_KS k-steps, loaded once
 * from the float16 rows). The warp walks every centroid 8 at a time (one
 * n-tile): B fragments are 16-byte loads (two k-steps, IX_NV_QUAD's
 * permutation of the dimensions) of the float16 centroid rows from
 * global memory (the 4 warps of a group read the same words: L1 hits; all
 * groups stream the same rows: L2), two mmas a k-step. A lane holds, per
 * n-tile, columns 2t and 2t + 1 of rows g and g + 8 of each m-tile (the
 * IX_NV_C_* maps), in ascending column order, and keeps a top-2 per row;
 * the 4 lanes of a row join theirs with shfl.sync.bfly 1 and 2, and lane
 * t = 0 writes the code and, when unsettled, lists the point. The lane
 * mappings (PTX ISA, as in plaid.cl): g = lane >> 2, t = lane & 3; A reg r
 * = A[g + 8(r&1)][2t + 8(r>>1) + {0,1}], B reg r = B[2t + 8r + {0,1}][g],
 * C reg r = C[g + 8(r>>1)][2t + (r&1)]; tests/test_nv_layout.c emulates
 * this kernel's index math against its model of the ISA.
 *
 * index_assign_nv_tiled: the same scores, bit for bit, faster. Its
 * measured predecessor above spends its time waiting: every n-tile's B
 * loads go to global memory just before the 16 mmas that need them, and
 * those mmas form only 2 dependent chains. Here the work-group's IX_NV_W
 * warps share tiles of IX_NV_CT centroids (and their bias) staged in
 * __local by cp.async, IX_NV_ST tiles in flight (one barrier a tile); a
 * warp holds IX_NV_MT m-tiles (16 MT points, A in registers as above) and
 * takes IX_NV_NT n-tiles at a time, so that one 16-byte __local load of B
 * feeds 2 MT mmas and MT NT accumulator chains are independent. Every
 * accumulator still starts at 0 and adds its k-steps in the same order
 * from the same fragments (the __local tile keeps IX_NV_QUAD's 16-byte
 * words, the rows padded so that a quarter-warp's loads meet no bank
 * conflict), so t(i, c) and the bias sum are the old kernel's; a slot
 * still sees its columns in ascending order, its takes filtered by
 * ix_top2_take_run (the same top-2); the join and the test are unchanged.
 * So the codes written, and the list of points to re-check, are the old
 * kernel's, and the bound needs nothing new.
 */
#if defined(MS_NVIDIA) && defined(IX_NV_KS) /* IX_NV_KS = dim / 16, even: set by the host */
#if IX_NV_KS % 2
#error "IX_NV_KS must be even (dim a multiple of 32)"
#endif
/* The tiled kernel's shape (the host picks; these defaults are its
 * choice at dim 128): warps a group, m-tiles a warp, n-tiles a step,
 * centroids a tile (a divisor of 128: the host pads the float16
 * centroids and the bias to a multiple of 128), tiles in flight, and
 * cp.async (0: plain copies, no overlap: a fallback). */
#ifndef IX_NV_W
#define IX_NV_W 4
#endif
#ifndef IX_NV_MT
#define IX_NV_MT 4
#endif
#ifndef IX_NV_NT
#define IX_NV_NT 2
#endif
#ifndef IX_NV_CT
#define IX_NV_CT 64
#endif
#ifndef IX_NV_ST
#define IX_NV_ST 2
#endif
#ifndef IX_NV_CP
#define IX_NV_CP 1
#endif
#if IX_NV_CT % (8 * IX_NV_NT) || 128 % IX_NV_CT || IX_NV_ST < 2 || IX_NV_ST > 4
#error "IX_NV_CT must divide 128 and be a multiple of 8 IX_NV_NT; IX_NV_ST in 2..4"
#endif
#define IX_NV_LDS IX_NV_LDS_OF(IX_NV_KS)

/* The CUDA twin (scripts/nv-twin/index_nv_twin.cu) predefines these. */
#ifndef IX_NV_CUDA
#define IX_GLOBAL                  __global
#define IX_LOCAL_PTR               __local
#define IX_KERNEL(wg)              __kernel __attribute__((reqd_work_group_size(wg, 1, 1))) void
#define IX_BARRIER()               barrier(CLK_LOCAL_MEM_FENCE)
#define IX_SHARED_ADDR(p)          ((uint)(size_t)(p)) /* maxsim_nv.cl's, verified on the H200 */
#define IX_GLOBAL_ADDR(p)          ((ulong)(size_t)(p))
#define IX_ZERO4                   ((uint4)(0u))
#define IX_ATOMIC_INC(p)           atomic_inc(p)
#define IX_LOCAL_ARRAY(T, name, n) __local T name[n] __attribute__((aligned(16)))
#if defined(__clang__) && !defined(cl_nv_pragma_unroll)
#define IX_ASM __asm__ volatile
#else
#define IX_ASM asm volatile
#endif
#endif
#define IX_NV_STR_(x) #x
#define IX_NV_STR(x)  IX_NV_STR_(x)

static inline void ix_nv_mma(float *c, const uint *a, const uint b0, const uint b1)
{
    IX_ASM("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
           "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"
           : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
           : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

/* Butterfly exchange within the warp (maxsim_nv.cl's); every lane takes part. */
static inline uint ix_nv_shfl_xor(const uint v, const uint mask)
{
    uint r;
    IX_ASM("shfl.sync.bfly.b32 %0, %1, %2, 0x1f, 0xffffffff;" : "=r"(r) : "r"(v), "r"(mask));
    return r;
}

/* The end of both kernels: a slot's 4 lanes join their top-2s (shfl.sync
 * bfly 1, then 2), and lane t = 0 writes the code of the slot's point and,
 * when the top-2 does not settle it, lists it for the re-check. */
static inline void ix_nv_finish(const uint lane, const uint p, const uint n, float best,
                                uint arg, float second, IX_GLOBAL const float2 *restrict norms,
                                const float c_q, const float c_n, const float c_b,
                                IX_GLOBAL uint *restrict out, IX_GLOBAL uint *restrict recheck,
                                IX_GLOBAL uint *restrict n_recheck)
{
    for (uint m = 1; m <= 2; m *= 2) {
        const float ob = as_float(ix_nv_shfl_xor(as_uint(best), m));
        const uint oa = ix_nv_shfl_xor(arg, m);
        const float os = as_float(ix_nv_shfl_xor(as_uint(second), m));
        ix_top2_join(&best, &arg, &second, ob, oa, os);
    }
    if ((lane & 3u) == 0 && p < n) {
        out[p] = arg;
        const float2 nx = norms[p];
        if (!ix_settled(best, second, nx.x, nx.y, c_q, c_n, c_b))
            recheck[IX_ATOMIC_INC(n_recheck)] = p;
    }
}

/* x16, c16: float16 rows of dim / 8 uint4 (4 float16 pairs, low half
 * first): 16-byte loads, the alignment of uint4 (buffers start aligned). */
IX_KERNEL(128)
index_assign_nv(IX_GLOBAL const uint4 *restrict x16, const uint n, const uint dim,
                IX_GLOBAL const uint4 *restrict c16, IX_GLOBAL const float *restrict bias,
                const uint k, IX_GLOBAL const float2 *restrict norms, const float c_q,
                const float c_n, const float c_b, IX_GLOBAL uint *restrict out,
                IX_GLOBAL uint *restrict recheck, IX_GLOBAL uint *restrict n_recheck)
{
    const uint lane = (uint)get_local_id(0) & 31u, warp = (uint)get_local_id(0) >> 5;
    const uint p0 = (uint)get_group_id(0) * 128 + warp * 32;
    const uint qw = dim / 8; /* uint4 a row; dim == 16 * IX_NV_KS: the host checks */
    uint a[2][IX_NV_KS][4];
#pragma unroll
    for (uint m = 0; m < 2; m++)
#pragma unroll
        for (uint rr = 0; rr < 2; rr++) {
            const uint p = p0 + 16 * m + IX_NV_A_ROW(lane, rr);
#pragma unroll
            for (uint j = 0; j < IX_NV_KS / 2; j++) {
                const uint4 v = p < n ? x16[(size_t)p * qw + IX_NV_QUAD(lane, j)] : IX_ZERO4;
                a[m][2 * j][rr] = v.x;
                a[m][2 * j][rr + 2] = v.y;
                a[m][2 * j + 1][rr] = v.z;
                a[m][2 * j + 1][rr + 2] = v.w;
            }
        }
    /* slot 2m + h: row 16m + g + 8h of the warp's 32 */
    float best[4], second[4];
    uint arg[4];
#pragma unroll
    for (uint s = 0; s < 4; s++) {
        best[s] = second[s] = -INFINITY;
        arg[s] = 0;
    }
    for (uint c0 = 0; c0 < k; c0 += 8) {
        /* centroids past k: a valid row read again, never taken */
        IX_GLOBAL const uint4 *crow = c16 + (size_t)min(c0 + IX_NV_B_CENT(lane), k - 1) * qw;
        float acc[2][4];
#pragma unroll
        for (uint m = 0; m < 2; m++)
#pragma unroll
            for (uint r = 0; r < 4; r++)
                acc[m][r] = 0.0f;
#pragma unroll
        for (uint j = 0; j < IX_NV_KS / 2; j++) {
            const uint4 b = crow[IX_NV_QUAD(lane, j)];
            ix_nv_mma(acc[0], a[0][2 * j], b.x, b.y);
            ix_nv_mma(acc[1], a[1][2 * j], b.x, b.y);
            ix_nv_mma(acc[0], a[0][2 * j + 1], b.z, b.w);
            ix_nv_mma(acc[1], a[1][2 * j + 1], b.z, b.w);
        }
#pragma unroll
        for (uint r = 0; r < 4; r++) {
            const uint c = c0 + IX_NV_C_COL(lane, r);
            if (c < k) {
                const float b = bias[c];
                ix_top2_take(acc[0][r] + b, c, &best[r >> 1], &arg[r >> 1], &second[r >> 1]);
                ix_top2_take(acc[1][r] + b, c, &best[2 + (r >> 1)], &arg[2 + (r >> 1)],
                             &second[2 + (r >> 1)]);
            }
        }
    }
#pragma unroll
    for (uint s = 0; s < 4; s++)
        ix_nv_finish(lane, p0 + 16 * (s >> 1) + (lane >> 2) + 8 * (s & 1), n, best[s], arg[s],
                     second[s], norms, c_q, c_n, c_b, out, recheck, n_recheck);
}

#if IX_NV_CP
static inline void ix_nv_cp16(const uint saddr, const ulong gaddr)
{
    IX_ASM("cp.async.cg.shared.global [%0], [%1], 16;" : : "r"(saddr), "l"(gaddr) : "memory");
}
static inline void ix_nv_cp_commit(void)
{
    IX_ASM("cp.async.commit_group;" : : : "memory");
}
#if IX_NV_ST == 2
#define IX_NV_ST_M2 0
#elif IX_NV_ST == 3
#define IX_NV_ST_M2 1
#else
#define IX_NV_ST_M2 2
#endif
/* All groups but the newest IX_NV_ST - 2 complete: the tile about to be
 * used is in __local (wait_group takes an immediate). */
static inline void ix_nv_cp_wait_tile(void)
{
    IX_ASM("cp.async.wait_group " IX_NV_STR(IX_NV_ST_M2) ";" : : : "memory");
}
#endif

/* Tile `tile` (centroids tile * CT ..) into slot buf: the float16 rows at
 * IX_NV_STAGE_OFF (padded rows, the same 16-byte words) and the bias, 16
 * bytes a copy, the group's threads striding; one cp.async group. The
 * buffers hold a multiple of 128 rows (padding past k): no copy is partial. */
static inline void ix_nv_stage(IX_LOCAL_PTR uint4 *ct, IX_LOCAL_PTR float *bt,
                               IX_GLOBAL const uint4 *restrict c16,
                               IX_GLOBAL const float *restrict bias, const uint tile,
                               const uint lid)
{
    const uint qw = 2 * IX_NV_KS, c0 = tile * IX_NV_CT;
    IX_GLOBAL const uint4 *src = c16 + (size_t)c0 * qw;
    for (uint e = lid; e < IX_NV_CT * qw; e += 32 * IX_NV_W) {
        IX_LOCAL_PTR uint4 *dst = ct + IX_NV_STAGE_OFF(e, qw, IX_NV_LDS) / 8;
#if IX_NV_CP
        ix_nv_cp16(IX_SHARED_ADDR(dst), IX_GLOBAL_ADDR(src + e));
#else
        *dst = src[e];
#endif
    }
    for (uint e = lid; e < IX_NV_CT / 4; e += 32 * IX_NV_W) {
#if IX_NV_CP
        ix_nv_cp16(IX_SHARED_ADDR(bt + 4 * e), IX_GLOBAL_ADDR(bias + c0 + 4 * e));
#else
        *(IX_LOCAL_PTR float4 *)(bt + 4 * e) = *(IX_GLOBAL const float4 *)(bias + c0 + 4 * e);
#endif
    }
#if IX_NV_CP
    ix_nv_cp_commit();
#endif
}

/* The same arguments as index_assign_nv; c16 and bias padded to a multiple
 * of 128 centroids (zero rows, bias -INFINITY). A group takes 16 MT W points, warp w the 16 MT from
 * 16 MT w on; slot 2m + h of a lane: the point IX_NV_SLOT_ROW of its warp's. */
IX_KERNEL(32 * IX_NV_W)
index_assign_nv_tiled(IX_GLOBAL const uint4 *restrict x16, const uint n, const uint dim,
                      IX_GLOBAL const uint4 *restrict c16, IX_GLOBAL const float *restrict bias,
                      const uint k, IX_GLOBAL const float2 *restrict norms, const float c_q,
                      const float c_n, const float c_b, IX_GLOBAL uint *restrict out,
                      IX_GLOBAL uint *restrict recheck, IX_GLOBAL uint *restrict n_recheck)
{
    IX_LOCAL_ARRAY(uint4, ctile, IX_NV_ST * IX_NV_CT * IX_NV_LDS / 8);
    IX_LOCAL_ARRAY(float, btile, IX_NV_ST * IX_NV_CT);
    const uint lid = (uint)get_local_id(0), lane = lid & 31u, warp = lid >> 5;
    const uint p0 = ((uint)get_group_id(0) * IX_NV_W + warp) * (16 * IX_NV_MT);
    const uint qw = 2 * IX_NV_KS; /* uint4 a row: dim == 16 * IX_NV_KS, the host checks */
    const uint ntiles = (k + IX_NV_CT - 1) / IX_NV_CT;
    (void)dim;

    /* the first tiles in flight while the A fragments load */
#pragma unroll
    for (uint s = 0; s + 1 < IX_NV_ST; s++) {
        if (s < ntiles)
            ix_nv_stage(ctile + s * (IX_NV_CT * IX_NV_LDS / 8), btile + s * IX_NV_CT, c16, bias,
                        s, lid);
#if IX_NV_CP
        else
            ix_nv_cp_commit(); /* empty: wait_group counts tiles */
#endif
    }
    uint a[IX_NV_MT][IX_NV_KS][4];
#pragma unroll
    for (uint m = 0; m < IX_NV_MT; m++)
#pragma unroll
        for (uint rr = 0; rr < 2; rr++) {
            const uint p = p0 + 16 * m + IX_NV_A_ROW(lane, rr);
#pragma unroll
            for (uint j = 0; j < IX_NV_KS / 2; j++) {
                const uint4 v = p < n ? x16[(size_t)p * qw + IX_NV_QUAD(lane, j)] : IX_ZERO4;
                a[m][2 * j][rr] = v.x;
                a[m][2 * j][rr + 2] = v.y;
                a[m][2 * j + 1][rr] = v.z;
                a[m][2 * j + 1][rr + 2] = v.w;
            }
        }
    float best[2 * IX_NV_MT], second[2 * IX_NV_MT];
    uint arg[2 * IX_NV_MT];
#pragma unroll
    for (uint s = 0; s < 2 * IX_NV_MT; s++) {
        best[s] = second[s] = -INFINITY;
        arg[s] = 0;
    }
    for (uint tile = 0; tile < ntiles; tile++) {
#if IX_NV_CP
        ix_nv_cp_wait_tile(); /* this thread's copies of the tile landed */
#endif
        IX_BARRIER(); /* everyone's did; and the slot refilled next was read by all */
        {
            const uint next = tile + IX_NV_ST - 1, ns = next % IX_NV_ST;
            if (next < ntiles)
                ix_nv_stage(ctile + ns * (IX_NV_CT * IX_NV_LDS / 8), btile + ns * IX_NV_CT, c16,
                            bias, next, lid);
#if IX_NV_CP
            else
                ix_nv_cp_commit();
#endif
        }
        const uint sl = tile % IX_NV_ST, c0 = tile * IX_NV_CT;
        IX_LOCAL_PTR const uint4 *ct = ctile + sl * (IX_NV_CT * IX_NV_LDS / 8);
        IX_LOCAL_PTR const float *bt = btile + sl * IX_NV_CT;
        const uint valid = min((uint)IX_NV_CT, k - c0);
        for (uint cc = 0; cc < valid; cc += 8 * IX_NV_NT) { /* warp-uniform */
            float acc[IX_NV_NT][IX_NV_MT][4];
#pragma unroll
            for (uint t = 0; t < IX_NV_NT; t++)
#pragma unroll
                for (uint m = 0; m < IX_NV_MT; m++)
#pragma unroll
                    for (uint r = 0; r < 4; r++)
                        acc[t][m][r] = 0.0f;
#pragma unroll
            for (uint j = 0; j < IX_NV_KS / 2; j++)
#pragma unroll
                for (uint t = 0; t < IX_NV_NT; t++) {
                    const uint4 b = ct[(cc * IX_NV_LDS + IX_NV_T_OFF(lane, t, j, IX_NV_LDS)) / 8];
#pragma unroll
                    for (uint m = 0; m < IX_NV_MT; m++) {
                        ix_nv_mma(acc[t][m], a[m][2 * j], b.x, b.y);
                        ix_nv_mma(acc[t][m], a[m][2 * j + 1], b.z, b.w);
                    }
                }
            /* per slot its 2 NT columns, ascending: n-tile t, then r & 1 */
            float bb[2 * IX_NV_NT];
            uint col[2 * IX_NV_NT];
#pragma unroll
            for (uint t = 0; t < IX_NV_NT; t++)
#pragma unroll
                for (uint e = 0; e < 2; e++) {
                    bb[2 * t + e] = bt[cc + IX_NV_T_BIAS(lane, t) + e];
                    col[2 * t + e] = c0 + cc + IX_NV_T_BIAS(lane, t) + e;
                }
            /* past k the bias is -INFINITY (the host's padding): the
             * score is -INFINITY or NaN, a take that changes nothing */
#pragma unroll
            for (uint s = 0; s < 2 * IX_NV_MT; s++) {
                float sc[2 * IX_NV_NT];
#pragma unroll
                for (uint t = 0; t < IX_NV_NT; t++)
#pragma unroll
                    for (uint e = 0; e < 2; e++)
                        sc[2 * t + e] = acc[t][s >> 1][2 * (s & 1) + e] + bb[2 * t + e];
                ix_top2_take_run(sc, col, 2 * IX_NV_NT, &best[s], &arg[s], &second[s]);
            }
            /* the takes branch per lane; the next mma.sync.aligned needs the
             * whole warp converged (maxsim_nv.cl's ms_nv_warp_sync) */
            IX_ASM("bar.warp.sync 0xffffffff;" : : : "memory");
        }
    }
#if IX_NV_CP
    IX_ASM("cp.async.wait_group 0;" : : : "memory"); /* nothing in flight at the end */
#endif
#pragma unroll
    for (uint s = 0; s < 2 * IX_NV_MT; s++)
        ix_nv_finish(lane, p0 + IX_NV_SLOT_ROW(lane, s), n, best[s], arg[s], second[s], norms,
                     c_q, c_n, c_b, out, recheck, n_recheck);
}
#endif /* MS_NVIDIA && IX_NV_KS */
#endif /* IX_NV_INDEX_ONLY */
