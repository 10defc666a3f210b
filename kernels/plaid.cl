/*
 * plaid.cl - PLAID search and rerank over a compressed (ColBERTv2 residual)
 * index: centroid scores, centroid-interaction (approximate) scores, and the
 * fused decompress + normalize + MaxSim of exact rerank.
 * Host side: src/plaid_cl.c. Codec and layouts: src/plaid.h.
 *
 *   plaid_centroid_scores  S[c][j] = <centroid c, query token j> for every
 *       centroid and every query token of a batch; one work-item per centroid
 *       and 8 query tokens, c along dimension 0 so neighbouring work-items
 *       read neighbouring centroids of the transposed [dim][K] matrix.
 *   plaid_approx  one work-group per few (query, document) pairs; work-item i
 *       keeps the max over the document's codes of S[code][query token i]
 *       (S is [K][tokens], so the work-items of one code read one contiguous
 *       run of S), then one work-item sums the maxima in order.
 *   plaid_rerank  one work-group per (query, document) pair. The query is
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
 * Build option: -DMS_NVIDIA=1 on NVIDIA devices (nothing specific yet).
 * Standalone OpenCL C 1.2: `make check-kernels` compiles it with clang.
 */

__kernel void plaid_centroid_scores(__global const float *restrict ct, const uint n_centroids,
                                    const uint dim, __global const float *restrict q,
                                    const uint n_qtok, __global float *restrict s)
{
    /* one centroid against 8 query tokens: the 8 query values of a k are the
     * same for every work-item (broadcast), the centroid value is loaded once */
    const uint c = (uint)get_global_id(0), j0 = (uint)get_global_id(1) * 8;
    if (c >= n_centroids || j0 >= n_qtok)
        return;
    const uint nj = min(8u, n_qtok - j0);
    float acc[8] = { 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f };
    if (nj == 8) {
        for (uint k = 0; k < dim; k++) {
            const float x = ct[(size_t)k * n_centroids + c];
            for (uint j = 0; j < 8; j++)
                acc[j] = fma(x, q[(size_t)(j0 + j) * dim + k], acc[j]);
        }
    } else {
        for (uint k = 0; k < dim; k++) {
            const float x = ct[(size_t)k * n_centroids + c];
            for (uint j = 0; j < nj; j++)
                acc[j] = fma(x, q[(size_t)(j0 + j) * dim + k], acc[j]);
        }
    }
    for (uint j = 0; j < nj; j++)
        s[(size_t)c * n_qtok + j0 + j] = acc[j];
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
