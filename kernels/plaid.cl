/*
 * plaid.cl - PLAID search and rerank over a compressed (ColBERTv2 residual)
 * index: centroid scores, centroid-interaction (approximate) scores, and the
 * fused decompress + normalize + MaxSim of exact rerank.
 * Host side: src/plaid_cl.c. Codec and layouts: src/plaid.h.
 *
 *   plaid_centroid_scores  S[c][j] = <centroid c, query token j> for every
 *       centroid and every query token of a batch; one work-item per centroid
 *       and 8 query tokens (one float8 FMA a dimension, the 8 tokens' values
 *       one vector load from the transposed queries), c along dimension 0 so
 *       neighbouring work-items read neighbouring centroids of the transposed
 *       [dim][K] matrix.
 *   plaid_approx  one work-group per few (query, document) pairs; work-item i
 *       keeps the max over the document's codes of S[code][query token i]
 *       (S is [K][tokens], so the work-items of one code read one contiguous
 *       run of S), then one work-item sums the maxima in order.
 *   plaid_rerank  one work-group per (query, document) pair (document
 *       UINT_MAX: an empty slot, scored -inf). The query is
 *       copied to local memory transposed ([dim][Lq], so work-items over
 *       query tokens read consecutive words); the document is decompressed a
 *       tile of tokens at a time into local memory (centroid + bucket weight
 *       through a 256-entry-per-slot lookup table, as ColBERT's decoder),
 *       each tile token's inverse norm is computed once, and every work-item
 *       folds its query tokens' dot products into running maxima. Decompressed
 *       tokens never reach global memory.
 * Sums over query tokens are done by one work-item in token order, so a
 * score does not depend on the work-group size.
 *
 *   plaid_centroid_scores_nv  S on NVIDIA tensor cores (below).
 *   plaid_probe, plaid_union, plaid_count, plaid_compact, plaid_select  the
 *       rest of the search on the device (after plaid_rerank, below).
 *
 * Build option: -DMS_NVIDIA=1 on NVIDIA devices (plaid_centroid_scores_nv).
 * Standalone OpenCL C 1.2: `make check-kernels` compiles it with clang.
 */

/*
 * plaid_centroid_scores_nv (NVIDIA only, -DMS_NVIDIA=1): the same S on the
 * tensor cores, mma.sync m16n8k16 (float16 x float16, float32 sums) through
 * inline PTX, as kernels/maxsim_nv.cl does. Centroids [K][dim] and query
 * tokens [tokens][dim] as float16 (the queries rounded to nearest even, as
 * fast-plaid's GPU search does), dim a multiple of 16. A warp computes 16
 * centroids x 32 tokens (4 mma tiles of 8 tokens a k-step of 16); its
 * fragments are 32-bit loads straight from global memory (the centroids of
 * a batch are reused from L1/L2), out-of-range rows read as 0 and are not
 * stored. The lane mappings (PTX ISA, mma.m16n8k16 .f16): g = lane >> 2,
 * t = lane & 3; A reg r = A[g + 8(r&1)][2t + 8(r>>1) + {0,1}], B reg r =
 * B[2t + 8r + {0,1}][g], C reg r = C[g + 8(r>>1)][2t + (r&1)]; the PL_NV_*
 * macros are the only place they appear, and tests/test_nv_layout.c checks
 * them against its emulation of the ISA (PL_NV_INDEX_ONLY). Not the same
 * bits as the portable kernel: the float16 rounding of the queries (and of
 * NextPlaid's float32 centroids) and the order of the sums.
 */
#define PL_NV_A_ROW(lane, r) (((lane) >> 2) + 8 * ((r) & 1))
#define PL_NV_A_COL(lane, r) (2 * ((lane) & 3) + 8 * ((r) >> 1))
#define PL_NV_B_TOK(lane)    ((lane) >> 2)
#define PL_NV_B_K(lane, r)   (2 * ((lane) & 3) + 8 * (r))
#define PL_NV_C_ROW(lane, r) (((lane) >> 2) + 8 * ((r) >> 1))
#define PL_NV_C_COL(lane, r) (2 * ((lane) & 3) + ((r) & 1))
#ifndef PL_NV_INDEX_ONLY

#ifdef MS_NVIDIA
#if defined(__clang__) && !defined(cl_nv_pragma_unroll)
#define PL_ASM __asm__ volatile
#else
#define PL_ASM asm volatile
#endif
static inline void pl_nv_mma(float *c, const uint *a, const uint b0, const uint b1)
{
    PL_ASM("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
           "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"
           : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
           : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

/* c16, q16: float16 pairs as uint (low half first), rows of dim / 2 words.
 * Work-group: 4 warps = 64 centroids x 32 tokens. */
__kernel __attribute__((reqd_work_group_size(128, 1, 1))) void
plaid_centroid_scores_nv(__global const uint *restrict c16, const uint n_centroids,
                         const uint dim, __global const uint *restrict q16, const uint n_qtok,
                         __global float *restrict s)
{
    const uint lane = (uint)get_local_id(0) & 31u, warp = (uint)get_local_id(0) >> 5;
    const uint c0 = (uint)get_group_id(0) * 64 + warp * 16, j0 = (uint)get_group_id(1) * 32;
    const uint hw = dim / 2;
    float acc[4][4];
    for (uint n = 0; n < 4; n++)
        for (uint r = 0; r < 4; r++)
            acc[n][r] = 0.0f;
    for (uint k0 = 0; k0 < dim; k0 += 16) {
        uint a[4];
        for (uint r = 0; r < 4; r++) {
            const uint c = c0 + PL_NV_A_ROW(lane, r);
            a[r] = c < n_centroids ? c16[(size_t)c * hw + (k0 + PL_NV_A_COL(lane, r)) / 2] : 0u;
        }
        for (uint n = 0; n < 4; n++) {
            const uint j = j0 + 8 * n + PL_NV_B_TOK(lane);
            const uint b0 = j < n_qtok ? q16[(size_t)j * hw + (k0 + PL_NV_B_K(lane, 0)) / 2] : 0u;
            const uint b1 = j < n_qtok ? q16[(size_t)j * hw + (k0 + PL_NV_B_K(lane, 1)) / 2] : 0u;
            pl_nv_mma(acc[n], a, b0, b1);
        }
    }
    for (uint n = 0; n < 4; n++)
        for (uint r = 0; r < 4; r++) {
            const uint c = c0 + PL_NV_C_ROW(lane, r), j = j0 + 8 * n + PL_NV_C_COL(lane, r);
            if (c < n_centroids && j < n_qtok)
                s[(size_t)c * n_qtok + j] = acc[n][r];
        }
}
#endif

__kernel void plaid_centroid_scores(__global const float *restrict ct, const uint n_centroids,
                                    const uint dim, const uint stride_k, const uint stride_c,
                                    __global const float *restrict qt, const uint n_qtok,
                                    const uint ld_qt, __global float *restrict s)
{
    /* centroid c's value k at ct[k * stride_k + c * stride_c]: the transposed
     * [dim][K] matrix on GPUs (neighbouring work-items, neighbouring words),
     * the row-major [K][dim] one on CPUs (a work-item reads one row). One
     * centroid against 16 query tokens: the queries transposed ([dim][ld_qt],
     * zero columns up to ld_qt, a multiple of 16), so the 16 values of a k are
     * one vector load, the same for every work-item; one float16 FMA a k */
    const uint c = (uint)get_global_id(0), j0 = (uint)get_global_id(1) * 16;
    if (c >= n_centroids || j0 >= n_qtok)
        return;
    float16 acc = (float16)(0.0f);
    for (uint k = 0; k < dim; k++)
        acc = fma((float16)(ct[(size_t)k * stride_k + (size_t)c * stride_c]),
                  vload16(0, qt + (size_t)k * ld_qt + j0), acc);
    float v[16];
    vstore16(acc, 0, v);
    const uint nj = min(16u, n_qtok - j0);
    for (uint j = 0; j < nj; j++)
        s[(size_t)c * n_qtok + j0 + j] = v[j];
}

__kernel void plaid_approx(__global const float *restrict s, const uint n_qtok,
                           __global const uint *restrict codes,
                           __global const uint *restrict doc_off,
                           __global const uint *restrict q_off, __global const uint *restrict q_len,
                           __global const uint *restrict pair_q,
                           __global const uint *restrict pair_d, const uint n_pairs,
                           const uint per_group, __local float *mx, __global float *restrict out)
{
    const uint lid = (uint)get_local_id(0), wg = (uint)get_local_size(0);
    const uint p0 = (uint)get_group_id(0) * per_group;
    /* several pairs per work-group: a pair is little work (a few codes, one
     * gather each), and on CPUs a work-group has a fixed cost */
    for (uint p = p0; p < min(p0 + per_group, n_pairs); p++) {
        const uint q = pair_q[p], d = pair_d[p], qo = q_off[q], lq = q_len[q];
        const uint t0 = doc_off[d], t1 = doc_off[d + 1];
        for (uint i = lid; i < lq; i += wg) {
            float m = -INFINITY;
            for (uint t = t0; t < t1; t++)
                m = fmax(m, s[(size_t)codes[t] * n_qtok + qo + i]);
            mx[i] = m;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        if (lid == 0) {
            float acc = 0.0f;
            if (t1 > t0)
                for (uint i = 0; i < lq; i++)
                    acc += mx[i];
            out[p] = acc;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
}

__kernel void plaid_rerank(__global const float *restrict centroids,
                           __global const float *restrict lut,
                           const uint dim, const uint kpb, const uint packed,
                           __global const float *restrict qs, __global const uint *restrict q_off,
                           __global const uint *restrict q_len,
                           __global const uint *restrict g_off,
                           __global const uint *restrict g_codes,
                           __global const uchar *restrict g_res,
                           __global const uint *restrict pair_q,
                           __global const uint *restrict pair_g, const uint n_pairs,
                           const uint tile, const uint lq_cap, __local float *lq_t,
                           __local float *xs, __local float *inv, __local float *mx,
                           __global float *restrict out)
{
    const uint p = (uint)get_group_id(0), lid = (uint)get_local_id(0);
    const uint wg = (uint)get_local_size(0);
    if (p >= n_pairs)
        return;
    const uint q = pair_q[p], g = pair_g[p], qo = q_off[q], lq = q_len[q];
    if (g == UINT_MAX) { /* an empty slot of the device search's fixed-stride pairs */
        if (lid == 0)
            out[p] = -INFINITY;
        return;
    }
    const uint t0 = g_off[g], nt = g_off[g + 1] - t0;

    /* the query, transposed: lq_t[k * lq_cap + i] */
    for (uint e = lid; e < lq * dim; e += wg) {
        const uint i = e / dim, k = e - i * dim;
        lq_t[k * lq_cap + i] = qs[(size_t)(qo + i) * dim + k];
    }
    for (uint i = lid; i < lq; i += wg)
        mx[i] = -INFINITY;
    barrier(CLK_LOCAL_MEM_FENCE);

    for (uint base = 0; base < nt; base += tile) {
        const uint n = min(tile, nt - base);
        /* decompress, transposed: xs[k * tile + t] = centroid + weight of the
         * dimension's bucket; slots t >= n of the last tile are zero */
        for (uint e = lid; e < tile * dim; e += wg) {
            const uint t = e / dim, k = e - t * dim, tok = t0 + base + t;
            float x = 0.0f;
            if (t < n) {
                const uint byte = g_res[(size_t)tok * packed + k / kpb];
                x = centroids[(size_t)g_codes[tok] * dim + k] + lut[byte * kpb + k % kpb];
            }
            xs[k * tile + t] = x;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        for (uint t = lid; t < tile; t += wg) {
            float ss = 0.0f;
            for (uint k = 0; k < dim; k++)
                ss = fma(xs[k * tile + t], xs[k * tile + t], ss);
            inv[t] = t < n ? 1.0f / fmax(sqrt(ss), 1e-12f) : 0.0f;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        /* each work-item: its query tokens against 8 tile tokens at a time,
         * eight accumulators in a vector (the tile is a multiple of 8) */
        for (uint i = lid; i < lq; i += wg) {
            float m = mx[i];
            for (uint tb = 0; tb < n; tb += 8) {
                float8 acc = (float8)(0.0f);
                for (uint k = 0; k < dim; k++)
                    acc = fma((float8)(lq_t[k * lq_cap + i]), vload8(0, xs + k * tile + tb), acc);
                acc *= vload8(0, inv + tb);
                const float v[8] = { acc.s0, acc.s1, acc.s2, acc.s3,
                                     acc.s4, acc.s5, acc.s6, acc.s7 };
                for (uint j = 0; j < 8 && tb + j < n; j++)
                    m = fmax(m, v[j]);
            }
            mx[i] = m;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (lid == 0) {
        float acc = 0.0f;
        if (nt > 0)
            for (uint i = 0; i < lq; i++)
                acc += mx[i];
        out[p] = acc;
    }
}

/*
 * The search pipeline on the device (plaid_cl.c, ms_plaid_dev_search): after
 * S = centroid scores,
 *   plaid_probe_tile, plaid_probe  the top nprobe centroids of every query
 *                  token (higher score first, ties: lower centroid id): up to
 *                  16 probes a work-group per 32 tokens, else one per token;
 *   plaid_union    the IVF lists of every query's probed centroids OR-ed into
 *                  the query's document bitmap (each distinct centroid of a
 *                  query once; optional NextPlaid threshold);
 *   plaid_count    candidates per query (popcount of its bitmap);
 *   plaid_compact  the bitmap as (query, document) pairs, ascending document;
 *   plaid_select   per query the best `keep` of a segment of (document,
 *                  score) by score, ties: lower document id, in document
 *                  order: a radix select on the order-preserving key of the
 *                  float, then a stable compaction. Used for the approximate
 *                  cut (ncandidates / nrerank) and for the final top-k.
 * Every step's result is a set fixed by a total order, so it does not depend
 * on work-group sizes or on the order atomics land in.
 */
#define PL_WG   128 /* work-items of the probe, count, compact and select groups */
#define PL_PMAX 16  /* nprobe up to this: one pass with a private list per work-item */

/* (va, ca) ranks strictly before (vb, cb): higher score, then lower id */
static inline int pl_before(float va, uint ca, float vb, uint cb)
{
    return va > vb || (va == vb && ca < cb);
}

/* The best (score, id) of the work-group into lv[0], lc[0]; id UINT_MAX = none. */
static void pl_reduce_best(__local float *lv, __local uint *lc, float v, uint c)
{
    const uint lid = (uint)get_local_id(0);
    lv[lid] = v;
    lc[lid] = c;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint s = PL_WG / 2; s > 0; s >>= 1) {
        if (lid < s) {
            const float v2 = lv[lid + s];
            const uint c2 = lc[lid + s];
            if (c2 != UINT_MAX && (lc[lid] == UINT_MAX || pl_before(v2, c2, lv[lid], lc[lid]))) {
                lv[lid] = v2;
                lc[lid] = c2;
            }
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
}

/* Up to PL_PMAX probes: a work-group per 32 query tokens and slice of
 * slice_len centroids (dimension 1: the slices; few tokens, as one query,
 * fill the device only when the centroids are split too); warp-sized rows of
 * S ([K][tokens]) are read whole (coalesced): work-item (w, t) scans the
 * slice's centroids c = w mod (PL_WG / 32) for token t keeping its best
 * nprobe, sorted (ties: the lower id, as it scans in order); one work-item per
 * token then merges the PL_WG / 32 lists. One slice: the probes themselves;
 * more: the slice's sorted list (id UINT_MAX past its end) to probe and
 * part_v at [slice][token][nprobe], merged by plaid_probe_merge. */
__kernel __attribute__((reqd_work_group_size(PL_WG, 1, 1))) void
plaid_probe_tile(__global const float *restrict s, const uint n_centroids, const uint n_qtok,
                 const uint nprobe, const uint slice_len, __global uint *restrict probe,
                 __global float *restrict part_v)
{
    __local float lv[PL_WG / 32][32][PL_PMAX];
    __local uint lc[PL_WG / 32][32][PL_PMAX];
    const uint lid = (uint)get_local_id(0), t = lid & 31u, w = lid >> 5;
    const uint j = (uint)get_group_id(0) * 32 + t;
    float pv[PL_PMAX];
    uint pc[PL_PMAX], m = 0;
    const uint slice = (uint)get_group_id(1), sliced = get_num_groups(1) > 1;
    const uint c_end = min(n_centroids, (slice + 1) * slice_len);
    if (j < n_qtok)
        for (uint c = slice * slice_len + w; c < c_end; c += PL_WG / 32) {
            const float v = s[(size_t)c * n_qtok + j];
            if (m == nprobe && !(v > pv[m - 1]))
                continue;
            uint i = m < nprobe ? m++ : m - 1;
            while (i > 0 && v > pv[i - 1]) {
                pv[i] = pv[i - 1];
                pc[i] = pc[i - 1];
                i--;
            }
            pv[i] = v;
            pc[i] = c;
        }
    for (uint i = 0; i < nprobe; i++) {
        lv[w][t][i] = i < m ? pv[i] : 0.0f;
        lc[w][t][i] = i < m ? pc[i] : UINT_MAX;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    if (w != 0 || j >= n_qtok)
        return;
    uint head[PL_WG / 32];
    for (uint l = 0; l < PL_WG / 32; l++)
        head[l] = 0;
    for (uint r = 0; r < nprobe && (sliced || r < n_centroids); r++) {
        uint bl = 0, bc = UINT_MAX;
        float bv = 0.0f;
        for (uint l = 0; l < PL_WG / 32; l++) {
            if (head[l] >= nprobe)
                continue;
            const uint c = lc[l][t][head[l]];
            const float v = lv[l][t][head[l]];
            if (c != UINT_MAX && (bc == UINT_MAX || pl_before(v, c, bv, bc))) {
                bv = v;
                bc = c;
                bl = l;
            }
        }
        const size_t at = ((size_t)slice * n_qtok + j) * nprobe + r;
        probe[at] = bc;
        if (sliced)
            part_v[at] = bv;
        head[bl]++;
    }
}

/* The probes of a token from the slices' sorted lists of plaid_probe_tile:
 * round r takes the best entry ranked after round r - 1's pick (the ids are
 * distinct, so "after" is strict), the order of one unsliced scan. */
__kernel void plaid_probe_merge(__global const uint *restrict part_c,
                                __global const float *restrict part_v, const uint slices,
                                const uint n_qtok, const uint nprobe, const uint n_centroids,
                                __global uint *restrict probe)
{
    const uint j = (uint)get_global_id(0);
    if (j >= n_qtok)
        return;
    float pv = 0.0f;
    uint pc = UINT_MAX;
    for (uint r = 0; r < nprobe && r < n_centroids; r++) {
        float bv = 0.0f;
        uint bc = UINT_MAX;
        for (uint sl = 0; sl < slices; sl++) {
            const size_t a = ((size_t)sl * n_qtok + j) * nprobe;
            for (uint i = 0; i < nprobe; i++) {
                const uint c = part_c[a + i];
                if (c == UINT_MAX)
                    break; /* the slice's list ends */
                const float v = part_v[a + i];
                if (pc != UINT_MAX && !pl_before(pv, pc, v, c))
                    continue; /* taken in an earlier round */
                if (bc == UINT_MAX || pl_before(v, c, bv, bc)) {
                    bv = v;
                    bc = c;
                }
                break; /* the rest of this sorted list ranks after it */
            }
        }
        probe[(size_t)j * nprobe + r] = bc;
        pv = bv;
        pc = bc;
    }
}

/* More probes: a work-group per token; round r picks the best of the
 * centroids ranked after the pick of round r - 1. */
__kernel __attribute__((reqd_work_group_size(PL_WG, 1, 1))) void
plaid_probe(__global const float *restrict s, const uint n_centroids, const uint n_qtok,
            const uint nprobe, __global uint *restrict probe)
{
    __local float lv[PL_WG];
    __local uint lc[PL_WG];
    const uint j = (uint)get_group_id(0), lid = (uint)get_local_id(0);
    float pv = 0.0f;
    uint pc = UINT_MAX;
    for (uint r = 0; r < nprobe && r < n_centroids; r++) {
        float bv = 0.0f;
        uint bc = UINT_MAX;
        for (uint c = lid; c < n_centroids; c += PL_WG) {
            const float v = s[(size_t)c * n_qtok + j];
            if (pc != UINT_MAX && !pl_before(pv, pc, v, c))
                continue;
            if (bc == UINT_MAX || pl_before(v, c, bv, bc)) {
                bv = v;
                bc = c;
            }
        }
        pl_reduce_best(lv, lc, bv, bc);
        pv = lv[0];
        pc = lc[0];
        if (lid == 0)
            probe[(size_t)j * nprobe + r] = pc;
        barrier(CLK_LOCAL_MEM_FENCE);
    }
}

/* A work-group per (query token, probe slot): the slot's centroid, unless an
 * earlier slot of the same query holds it, ORs its IVF list into the query's
 * bitmap. */
__kernel void plaid_union(__global const float *restrict s, const uint n_qtok,
                          __global const uint *restrict probe, const uint nprobe,
                          __global const uint *restrict tok_q, __global const uint *restrict q_off,
                          __global const uint *restrict q_len,
                          __global const ulong *restrict ivf_off, __global const uint *restrict ivf,
                          const int use_threshold, const float threshold, const uint words,
                          __global uint *restrict bitmap)
{
    const uint e = (uint)get_group_id(0), lid = (uint)get_local_id(0);
    const uint wg = (uint)get_local_size(0);
    const uint j = e / nprobe, q = tok_q[j], qo = q_off[q], lq = q_len[q];
    const uint c = probe[e];
    for (uint f = qo * nprobe; f < e; f++) /* uniform across the group */
        if (probe[f] == c)
            return;
    if (use_threshold) { /* NextPlaid: the centroid's best score over the query */
        float best = -INFINITY;
        for (uint i = 0; i < lq; i++)
            best = fmax(best, s[(size_t)c * n_qtok + qo + i]);
        if (best < threshold)
            return;
    }
    __global uint *bm = bitmap + (size_t)q * words;
    const ulong a = ivf_off[c], b = ivf_off[c + 1];
    for (ulong i = a + lid; i < b; i += wg) {
        const uint doc = ivf[i];
        atomic_or(bm + (doc >> 5), 1u << (doc & 31));
    }
}

/* An exclusive prefix sum over the work-group: x[lid] becomes the sum of the
 * values before it; returns the total. */
static uint pl_scan(__local uint *x, uint v)
{
    const uint lid = (uint)get_local_id(0);
    x[lid] = v;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint s = 1; s < PL_WG; s <<= 1) {
        const uint add = lid >= s ? x[lid - s] : 0;
        barrier(CLK_LOCAL_MEM_FENCE);
        x[lid] += add;
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    const uint total = x[PL_WG - 1];
    const uint excl = x[lid] - v;
    barrier(CLK_LOCAL_MEM_FENCE);
    x[lid] = excl;
    barrier(CLK_LOCAL_MEM_FENCE);
    return total;
}

/* Count and compact: a work-group per (query, segment of seg_words bitmap
 * words), group g = q * segments + segment (pl_segment, one reading for
 * both), so one query's bitmap is spread over several groups when the
 * documents are many; pairs come out in ascending document order per query
 * all the same. */
static inline void pl_segment(const uint g, const uint words, const uint seg_words, uint *q,
                              uint *w_lo, uint *w_hi)
{
    const uint nseg = (words + seg_words - 1) / seg_words;
    *q = g / nseg;
    *w_lo = (g % nseg) * seg_words;
    *w_hi = min(words, *w_lo + seg_words);
}

__kernel __attribute__((reqd_work_group_size(PL_WG, 1, 1))) void
plaid_count(__global const uint *restrict bitmap, const uint words, const uint seg_words,
            __global uint *restrict count)
{
    __local uint x[PL_WG];
    const uint g = (uint)get_group_id(0), lid = (uint)get_local_id(0);
    uint q, w_lo, w_hi;
    pl_segment(g, words, seg_words, &q, &w_lo, &w_hi);
    __global const uint *bm = bitmap + (size_t)q * words;
    uint n = 0;
    for (uint w = w_lo + lid; w < w_hi; w += PL_WG)
        n += popcount(bm[w]);
    const uint total = pl_scan(x, n);
    if (lid == 0)
        count[g] = total;
}

__kernel __attribute__((reqd_work_group_size(PL_WG, 1, 1))) void
plaid_compact(__global const uint *restrict bitmap, const uint words, const uint seg_words,
              __global const uint *restrict start, __global uint *restrict pair_q,
              __global uint *restrict pair_d)
{
    __local uint x[PL_WG];
    const uint g = (uint)get_group_id(0), lid = (uint)get_local_id(0);
    uint q, w_lo, w_hi;
    pl_segment(g, words, seg_words, &q, &w_lo, &w_hi);
    __global const uint *bm = bitmap + (size_t)q * words;
    uint at = start[g];
    for (uint w0 = w_lo; w0 < w_hi; w0 += PL_WG) {
        const uint w = w0 + lid;
        uint bits = w < w_hi ? bm[w] : 0u;
        const uint total = pl_scan(x, popcount(bits));
        uint o = at + x[lid];
        while (bits) {
            const uint b = 31 - clz(bits & (~bits + 1u)); /* lowest set bit */
            pair_q[o] = q;
            pair_d[o++] = w * 32 + b;
            bits &= bits - 1u;
        }
        at += total;
        barrier(CLK_LOCAL_MEM_FENCE);
    }
}

/* Order-preserving key: a higher float, a higher key; -0 and +0 equal; NaN lowest. */
static inline uint pl_key(float v)
{
    if (isnan(v))
        return 0u;
    const uint b = v == 0.0f ? 0u : as_uint(v);
    return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

/* Per query (a work-group), its segment [seg_off[q], + seg_n[q]) of
 * (document, score), in ascending document order: the best `keep` go to
 * out_*[q * keep + i] in the same order, out_n[q] of them; the rest of the
 * query's `keep` slots get document UINT_MAX. */
__kernel __attribute__((reqd_work_group_size(PL_WG, 1, 1))) void
plaid_select(__global const uint *restrict seg_off, __global const uint *restrict seg_n,
             __global const uint *restrict docs, __global const float *restrict score,
             const uint keep, __global uint *restrict out_q, __global uint *restrict out_d,
             __global float *restrict out_s, __global uint *restrict out_n)
{
    __local uint hist[256];
    __local uint x[PL_WG];
    __local uint pick[2];
    const uint q = (uint)get_group_id(0), lid = (uint)get_local_id(0);
    const uint a = seg_off[q], n = seg_n[q];
    uint thr = 0u, ties = n; /* all of them when n <= keep */
    if (n > keep) {
        /* the keep-th largest key, 8 bits at a time from the top */
        uint prefix = 0u, mask = 0u, need = keep;
        for (int shift = 24; shift >= 0; shift -= 8) {
            for (uint i = lid; i < 256; i += PL_WG)
                hist[i] = 0u;
            barrier(CLK_LOCAL_MEM_FENCE);
            for (uint i = lid; i < n; i += PL_WG) {
                const uint k = pl_key(score[a + i]);
                if ((k & mask) == prefix)
                    atomic_inc(&hist[(k >> shift) & 255u]);
            }
            barrier(CLK_LOCAL_MEM_FENCE);
            if (lid == 0) {
                uint above = 0u, b = 255u;
                while (above + hist[b] < need) {
                    above += hist[b];
                    b--;
                }
                pick[0] = b;
                pick[1] = need - above;
            }
            barrier(CLK_LOCAL_MEM_FENCE);
            prefix |= pick[0] << shift;
            mask |= 255u << shift;
            need = pick[1];
            barrier(CLK_LOCAL_MEM_FENCE);
        }
        thr = prefix; /* take every key above it and the first `need` equal to it */
        ties = need;
    }
    uint got = 0u, eq = 0u;
    for (uint i0 = 0; i0 < n; i0 += PL_WG) {
        const uint i = i0 + lid;
        const uint k = i < n ? pl_key(score[a + i]) : 0u;
        const uint is_eq = i < n && k == thr;
        const uint eq_total = pl_scan(x, is_eq);
        const uint take = i < n && (k > thr || (is_eq && eq + x[lid] < ties));
        const uint got_total = pl_scan(x, take);
        if (take) {
            const size_t o = (size_t)q * keep + got + x[lid];
            out_q[o] = q;
            out_d[o] = docs[a + i];
            out_s[o] = score[a + i];
        }
        eq += eq_total;
        got += got_total;
    }
    for (uint i = got + lid; i < keep; i += PL_WG) {
        out_q[(size_t)q * keep + i] = q;
        out_d[(size_t)q * keep + i] = UINT_MAX;
        out_s[(size_t)q * keep + i] = -INFINITY;
    }
    if (lid == 0)
        out_n[q] = got;
}

#endif /* PL_NV_INDEX_ONLY */
