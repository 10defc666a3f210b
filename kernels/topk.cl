/*
 * topk.cl - the exact top k of every row of a score matrix, selected on the device so that only
 * k scores and indices per query come back to the host (`maxsim search`; host: src/topk_cl.c).
 *
 * One work-group per row (query). The order is topk.c's: higher score first, equal scores by
 * lower column (document) first, -0 equal to +0, NaN below everything. Each score becomes a
 * 32-bit key whose unsigned order is that order on the scores (ties left to the column):
 *   1. radix select, four passes of 8 bits: a histogram of the keys that share the digits found
 *      so far gives the next digit of T, the key of the k-th best entry, and how many entries
 *      of key T are among the k best (the rest of them rank below by column);
 *   2. one pass in column order, chunk by chunk with a work-group scan: every key > T and the
 *      first entries of key T are written to local memory at positions fixed by the scan;
 *   3. a bitonic sort of those <= k entries by (key desc, column asc), and the write of
 *      min(k, n) scores (the row's own values) and columns.
 * Every step is exact and its result does not depend on the scheduling: the same bits as a
 * host heap over the whole row, for any row length.
 *
 * Build options: -DTK_WG=n work-items per group (a power of two, <= 1024), -DTK_MAXK=n the
 * largest k (a power of two). Standalone OpenCL C 1.2: `make check-kernels` compiles it.
 */
#ifndef TK_WG
#define TK_WG 256
#endif
#ifndef TK_MAXK
#define TK_MAXK 1024
#endif

/* Larger key = better score; -0 and +0 share a key, NaN takes 0 (below -inf's key). On the bits
 * alone: a device that flushes denormals in float compares must not tie them with zero. */
static inline uint tk_key(float x)
{
    const uint u = as_uint(x), mag = u & 0x7fffffffu;
    if (mag > 0x7f800000u) /* NaN */
        return 0u;
    if (mag == 0u)
        return 0x80000000u;
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

/* Inclusive scan of v over the work-group (Hillis-Steele in sc[TK_WG]). */
static inline uint tk_scan(__local uint *sc, uint lid, uint v)
{
    sc[lid] = v;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint off = 1; off < TK_WG; off <<= 1) {
        const uint add = lid >= off ? sc[lid - off] : 0u;
        barrier(CLK_LOCAL_MEM_FENCE);
        sc[lid] += add;
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    const uint r = sc[lid];
    barrier(CLK_LOCAL_MEM_FENCE);
    return r;
}

/* scores: row q at scores[q * pitch], n columns; out_s, out_i: row q at q * k, min(k, n) of
 * them. k <= TK_MAXK, n < 2^32 - 1. */
__kernel __attribute__((reqd_work_group_size(TK_WG, 1, 1))) void
ms_topk_select(__global const float *scores, const uint pitch, const uint n, const uint k,
               __global float *out_s, __global uint *out_i)
{
    __local uint hist[256];
    __local uint sc[TK_WG];
    __local uint ck[TK_MAXK], ci[TK_MAXK];
    __local uint sel[2]; /* the digit found and the rank still wanted in it; then a chunk flag */
    const uint lid = get_local_id(0), q = get_group_id(0);
    __global const float *row = scores + (size_t)q * pitch;
    const uint m = k < n ? k : n;
    uint prefix = 0, want = m; /* T's digits so far; rank of T among the keys sharing them */

    if (m == 0)
        return;
    /* 1. radix select of T, 8 bits at a time from the top */
    for (int shift = 24; shift >= 0; shift -= 8) {
        const uint hmask = shift == 24 ? 0u : 0xffffffffu << (shift + 8);
        for (uint b = lid; b < 256; b += TK_WG)
            hist[b] = 0;
        barrier(CLK_LOCAL_MEM_FENCE);
        for (uint j = lid; j < n; j += TK_WG) {
            const uint key = tk_key(row[j]);
            if ((key & hmask) == prefix)
                atomic_inc(&hist[(key >> shift) & 255u]);
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        if (lid == 0) {
            uint above = 0, d = 255;
            for (;; d--) {
                if (above + hist[d] >= want || d == 0)
                    break;
                above += hist[d];
            }
            sel[0] = d;
            sel[1] = want - above;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        prefix |= sel[0] << shift;
        want = sel[1];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    /* 2. keys > T (m - want of them) and the first `want` keys == T, in column order */
    const uint T = prefix, n_gt = m - want;
    uint run_gt = 0, run_eq = 0;
    for (uint base = 0; base < n; base += TK_WG) {
        const uint j = base + lid;
        const uint key = j < n ? tk_key(row[j]) : 0u;
        /* keys == T count until `want` of them are taken (run_eq is the group's, uniform) */
        const uint gt = j < n && key > T, eq = j < n && key == T && run_eq < want;
        /* most chunks hold no candidate: skip their scan (`any` is uniform after the barrier) */
        if (lid == 0)
            sel[0] = 0;
        barrier(CLK_LOCAL_MEM_FENCE);
        if (gt || eq)
            sel[0] = 1;
        barrier(CLK_LOCAL_MEM_FENCE);
        const uint any = sel[0];
        barrier(CLK_LOCAL_MEM_FENCE);
        if (!any)
            continue;
        const uint inc = tk_scan(sc, lid, gt | (eq << 16)); /* both counts <= TK_WG < 2^16 */
        const uint r_gt = run_gt + (inc & 0xffffu) - gt, r_eq = run_eq + (inc >> 16) - eq;
        if (gt)
            ck[r_gt] = key, ci[r_gt] = j;
        else if (eq && r_eq < want)
            ck[n_gt + r_eq] = key, ci[n_gt + r_eq] = j;
        const uint tot = sc[TK_WG - 1]; /* tk_scan left sc whole until its caller's next write */
        run_gt += tot & 0xffffu;
        run_eq += tot >> 16;
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    /* 3. bitonic sort of the m entries, padded to a power of two with entries ranking last */
    uint p = 1;
    while (p < m)
        p <<= 1;
    for (uint i = m + lid; i < p; i += TK_WG)
        ck[i] = 0u, ci[i] = 0xffffffffu;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (uint size = 2; size <= p; size <<= 1) {
        for (uint stride = size >> 1; stride > 0; stride >>= 1) {
            for (uint t = lid; t < p / 2; t += TK_WG) {
                const uint a = 2 * t - (t & (stride - 1)), b = a + stride;
                /* ascending in rank order (best first) within blocks whose a & size is 0 */
                const int up = (a & size) == 0;
                const uint ka = ck[a], kb = ck[b], ia = ci[a], ib = ci[b];
                const int b_first = kb > ka || (kb == ka && ib < ia);
                if (b_first == up) {
                    ck[a] = kb, ck[b] = ka;
                    ci[a] = ib, ci[b] = ia;
                }
            }
            barrier(CLK_LOCAL_MEM_FENCE);
        }
    }
    for (uint r = lid; r < m; r += TK_WG) {
        const uint j = ci[r];
        out_s[(size_t)q * k + r] = row[j];
        out_i[(size_t)q * k + r] = j;
    }
}
