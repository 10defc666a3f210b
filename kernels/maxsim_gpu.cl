/*
 * maxsim_gpu.cl - exact MaxSim for GPUs in plain OpenCL C 1.2 (no inline assembly, no
 * extensions): the path for any GPU without a vendor kernel, and for NVIDIA with
 * MAXSIM_NV_MMA=0. Host side: src/maxsim_gpu.c. kernels/maxsim.cl stays the CPU (PoCL) kernel.
 *
 * It is an SGEMM with a max epilogue. The "rows" are every query token of a query group back to
 * back (no per-query padding), zero-padded at the end to a multiple of BM; the "columns" are a
 * document's tokens. A work-group of RX x CX work-items owns a row tile of BM = RX*TM rows and a
 * run of consecutive documents; it walks each document in chunks of BN = CX*TN tokens. Each
 * work-item keeps a TM x TN register block of dot products (float32, fma in k order), folds it
 * into a running max per row (in registers) after every chunk, and at the end of the document
 * the CX work-items that share a row combine their maxima through __local (max is exact, so the
 * order does not matter). The result per (row, document) goes to rowmax[doc][row]; msg_sum adds a
 * query's rows in token order. So every score is: each dot product a sequential fma chain over
 * k = 0..dim-1 (zero padding adds exact zeros), an exact max, and a sum in token order: the bits
 * do not depend on the tile sizes, the document blocks or which queries share a batch.
 *
 * Documents are read as uploaded (float16 through vload_half / vloada_half8, or float32) and
 * converted while they are staged into __local, k-major ([k][token]), in tiles of BK dims.
 * Queries are prepared by the host as float32, transposed ([k][row]); with QRES the work-group's
 * whole query tile (BM x KP) stays in __local for its run of documents (loaded once), otherwise
 * a BK-slice of it is staged beside each document slice (any dim). Normalized documents use a
 * per-token scale from msg_norm_* (one pass), applied at staging.
 *
 * Build options (the host picks them from the device limits and the shape; MAXSIM_GPU_VARIANT
 * overrides): MSG_TM, MSG_TN (multiples of 4: rows / columns per work-item), MSG_RX, MSG_CX (work-items
 * per tile row / column), MSG_BK (dims per staged slice, a multiple of 8), MSG_DIM, MSG_KP (dim
 * rounded up to BK), MSG_QRES (0/1), MSG_PF (0/1: fetch the next document slice into registers
 * while the current one is multiplied), MSG_DB (0/1: double-buffered __local slices, below),
 * MSG_LD (0/1: how float16 documents are loaded, msg_half8).
 * Work-item ownership is strided so that __local float4 reads are conflict-free: row block i4 of
 * work-item (tr, tc) is rows i4*RX*4 + tr*4 .. +3, column block j4 is j4*CX*4 + tc*4 .. +3.
 */

#ifndef MSG_TM
#define MSG_TM 8
#endif
#ifndef MSG_TN
#define MSG_TN 4
#endif
#ifndef MSG_RX
#define MSG_RX 8
#endif
#ifndef MSG_CX
#define MSG_CX 16
#endif
#ifndef MSG_BK
#define MSG_BK 32
#endif
#ifndef MSG_DIM
#define MSG_DIM 128
#endif
#ifndef MSG_KP
#define MSG_KP ((MSG_DIM + MSG_BK - 1) / MSG_BK * MSG_BK)
#endif
#ifndef MSG_QRES
#define MSG_QRES 1
#endif
#ifndef MSG_PF
#define MSG_PF 1
#endif
#ifndef MSG_DB
#define MSG_DB 0
#endif
#ifndef MSG_LD
#define MSG_LD 0
#endif
#if MSG_TM % 4 != 0 || MSG_TN % 4 != 0 || MSG_BK % 8 != 0 || MSG_KP % MSG_BK != 0
#error "MSG_TM and MSG_TN must be multiples of 4, MSG_BK of 8, MSG_KP of MSG_BK"
#endif

#define MSG_WG  (MSG_RX * MSG_CX)
#define MSG_BM  (MSG_RX * MSG_TM)
#define MSG_BN  (MSG_CX * MSG_TN)
#define MSG_NB  (MSG_DB ? 2 : 1)                      /* __local buffers of each streamed slice */
#define MSG_QK  (MSG_QRES ? MSG_KP : MSG_BK * MSG_NB) /* dims of the query slices held in __local */
#define MSG_VEC (MSG_DIM % 8 == 0)           /* documents read 8 dims at a time, aligned */

/* The per-row maxima are combined in the document slice's __local space when it is large
 * enough (it is free at the end of a document), else in their own. */
#define MSG_RED_IN_DS (MSG_CX * MSG_BM <= MSG_BK * MSG_BN)

/* Per-token scale of normalized documents: 1 / max(|x|, 1e-12), the sum of squares by fma in k
 * order (as kernels/maxsim.cl does). One work-item per token. */
#define MSG_NORM_BODY(LOAD)                                                                       \
    const uint t = (uint)get_global_id(0);                                                       \
    if (t >= n_tok)                                                                              \
        return;                                                                                  \
    float ss = 0.0f;                                                                             \
    for (uint k = 0; k < MSG_DIM; k++) {                                                         \
        const float x = LOAD((size_t)t * MSG_DIM + k);                                           \
        ss = fma(x, x, ss);                                                                      \
    }                                                                                            \
    scale[t] = 1.0f / fmax(sqrt(ss), 1e-12f);

#define MSG_LD_F32(i) src[(i)]
#define MSG_LD_F16(i) vload_half((i), src)

__kernel void msg_norm_f32(__global const float *restrict src, const uint n_tok,
                           __global float *restrict scale)
{
    MSG_NORM_BODY(MSG_LD_F32)
}

__kernel void msg_norm_f16(__global const half *restrict src, const uint n_tok,
                           __global float *restrict scale)
{
    MSG_NORM_BODY(MSG_LD_F16)
}

/*
 * A document slice: dims k0 .. k0+BK-1 of tokens tok .. tok+BN-1 (nv of them real), BN * BK / 8
 * units of 8 dims, MSG_U per work-item. msg_fetch reads a work-item's units from global memory
 * into registers (float32, scaled when normalizing; tokens past nv and dims past DIM are zeros),
 * msg_store writes them to ds[k][n]. Consecutive work-items take consecutive tokens, so one store
 * instruction writes consecutive __local words (no bank conflicts); the float16 reads are
 * 16-byte aligned vloada_half8 when DIM % 8 == 0. With MSG_PF the next slice is fetched while the
 * current one is multiplied (software pipelining: the global latency hides behind the FMAs).
 */
#define MSG_UNITS (MSG_BN * (MSG_BK / 8))

/* Eight float16 values at a 16-byte aligned address as float32. MSG_LD 0: vloada_half8, as the
 * compiler lowers it; MSG_LD 1: one 16-byte integer load, converted from a private copy, for a
 * compiler that would split vloada_half8 into narrower loads (each a separate memory
 * transaction when consecutive work-items read different tokens). Same conversion, same bits.
 * (OpenCL C 1.2 assumes no strict aliasing unless -cl-strict-aliasing, so the private uint4 may
 * be read as halves.) */
static inline float8 msg_half8(__global const half *restrict p)
{
#if MSG_LD
    const uint4 w = *(__global const uint4 *)p;
    return vload_half8(0, (__private const half *)&w);
#else
    return vloada_half8(0, p);
#endif
}
#define MSG_U     ((MSG_UNITS + MSG_WG - 1) / MSG_WG)

static inline void msg_fetch(const int f16, __global const half *restrict dh,
                             __global const float *restrict df, const uint tok, const uint nv,
                             const uint k0, __global const float *restrict scale,
                             const int normalize, float8 *v, const uint lid)
{
#pragma unroll
    for (int i = 0; i < MSG_U; i++) {
        const uint u = lid + (uint)i * MSG_WG;
        const uint n = u % MSG_BN, kv = u / MSG_BN, k = k0 + kv * 8;
        float8 x = (float8)(0.0f);
        if (u < MSG_UNITS && n < nv) {
            const size_t at = (size_t)(tok + n) * MSG_DIM + k;
            if (MSG_VEC) {
                if (k < MSG_DIM)
                    x = !f16 ? vload8(0, df + at) : msg_half8(dh + at);
            } else {
                float e[8];
#pragma unroll
                for (uint c = 0; c < 8; c++)
                    e[c] = k + c < MSG_DIM ? (f16 ? vload_half(at + c, dh) : df[at + c]) : 0.0f;
                x = (float8)(e[0], e[1], e[2], e[3], e[4], e[5], e[6], e[7]);
            }
            if (normalize)
                x *= scale[tok + n];
        }
        v[i] = x;
    }
}

static inline void msg_store(const float8 *v, __local float *ds1, const uint lid)
{
#pragma unroll
    for (int i = 0; i < MSG_U; i++) {
        const uint u = lid + (uint)i * MSG_WG;
        if (u < MSG_UNITS) {
            __local float *dd = ds1 + (u / MSG_BN) * 8 * MSG_BN + u % MSG_BN;
            dd[0 * MSG_BN] = v[i].s0;
            dd[1 * MSG_BN] = v[i].s1;
            dd[2 * MSG_BN] = v[i].s2;
            dd[3 * MSG_BN] = v[i].s3;
            dd[4 * MSG_BN] = v[i].s4;
            dd[5 * MSG_BN] = v[i].s5;
            dd[6 * MSG_BN] = v[i].s6;
            dd[7 * MSG_BN] = v[i].s7;
        }
    }
}

/* Stage query dims kq .. kq+nk-1 of rows row0 .. row0+BM-1 into qs[k][m] (float4 over m). */
static inline void msg_stage_q(__global const float4 *restrict qt, const uint n_rows,
                               const uint row0, const uint kq, const uint nk,
                               __local float4 *restrict qs, const uint lid)
{
    for (uint u = lid; u < nk * (MSG_BM / 4); u += MSG_WG) {
        const uint kk = u / (MSG_BM / 4), m4 = u % (MSG_BM / 4);
        qs[u] = qt[(size_t)(kq + kk) * (n_rows / 4) + row0 / 4 + m4];
    }
}

/*
 * The same query slice in two halves, for MSG_DB: msg_fetch_q reads a work-item's MSG_QU float4
 * of dims kq .. kq+BK-1 into registers, msg_store_q writes them to qs[k][m] later, so the L2
 * latency of streamed query slices hides behind the FMAs as the documents' does.
 */
#define MSG_QUNITS (MSG_BK * (MSG_BM / 4))
#define MSG_QU     ((MSG_QUNITS + MSG_WG - 1) / MSG_WG)

static inline void msg_fetch_q(__global const float4 *restrict qt, const uint n_rows,
                               const uint row0, const uint kq, float4 *v, const uint lid)
{
#pragma unroll
    for (int i = 0; i < MSG_QU; i++) {
        const uint u = lid + (uint)i * MSG_WG;
        v[i] = u < MSG_QUNITS ? qt[(size_t)(kq + u / (MSG_BM / 4)) * (n_rows / 4) + row0 / 4 +
                                   u % (MSG_BM / 4)]
                              : (float4)(0.0f);
    }
}

static inline void msg_store_q(const float4 *v, __local float4 *qs1, const uint lid)
{
#pragma unroll
    for (int i = 0; i < MSG_QU; i++) {
        const uint u = lid + (uint)i * MSG_WG;
        if (u < MSG_QUNITS)
            qs1[u] = v[i];
    }
}

/*
 * One work-group: rows row0 .. row0+BM-1 against documents j0 .. j1-1.
 *   docs      uploaded tokens of the block, [token][DIM]; doc_tok[j], doc_len[j] per document
 *   scale     per-token scale when normalize (msg_norm_*), else unused
 *   qt        [KP][n_rows] float32 query rows, transposed (float4 over rows)
 *   rowmax    [n_docs][n_rows]: the max over document j's tokens of row r's dot products
 *             (-INFINITY for an empty document: msg_sum never reads it)
 * (qs, ds and red are not restrict: red may be ds itself, see MSG_RED_IN_DS.)
 *
 * Slices go through __local in one of two ways. Single-buffered (MSG_DB 0): per slice a barrier
 * (the previous one consumed), the stores, a barrier, the FMAs. Double-buffered (MSG_DB 1): two
 * document slices (and two query slices when streamed) in __local; while slice s is multiplied
 * from buffer s % 2, slice s+1 is read from global memory into registers and then stored into
 * the other buffer, so one barrier a slice suffices and no global read waits in front of the
 * FMAs (streamed query slices included). The FMAs are the same, in the same order: same bits.
 */
static inline void msg_score_body(const int f16, __global const half *restrict dh,
                                  __global const float *restrict df,
                                  __global const uint *restrict doc_tok,
                                  __global const uint *restrict doc_len, const uint row0,
                                  const uint j0, const uint j1, const uint sp, const uint n_sp,
                                  __global const float *restrict scale,
                                  const int normalize, __global const float4 *restrict qt,
                                  const uint n_rows, __global float *restrict rowmax,
                                  __local float4 *qs, __local float4 *ds, __local float *red)
{
    __local float *ds1 = (__local float *)ds;
    const uint lid = (uint)get_local_id(0);
    const uint tr = lid / MSG_CX, tc = lid % MSG_CX;

    if (MSG_QRES) /* the whole query tile, once for the run (the first barrier below covers it) */
        msg_stage_q(qt, n_rows, row0, 0, MSG_KP, qs, lid);
    for (uint j = j0; j < j1; j++) {
        /* This work-group's part sp of n_sp of the document's chunks of BN tokens (all of them
         * when n_sp == 1), each chunk KP / BK slices of BK dims. */
        const uint n_ch = (doc_len[j] + MSG_BN - 1) / MSG_BN, per = (n_ch + n_sp - 1) / n_sp;
        const uint c0 = min(n_ch, sp * per), c1 = min(n_ch, c0 + per);
        const uint len = min(doc_len[j], c1 * MSG_BN), base = doc_tok[j];
        const uint n_steps = (c1 - c0) * (MSG_KP / MSG_BK);
        float mx[MSG_TM], acc[MSG_TM][MSG_TN];
        float8 pf[MSG_U];
        uint t0 = c0 * MSG_BN, k0 = 0;
#pragma unroll
        for (int i = 0; i < MSG_TM; i++)
            mx[i] = -INFINITY;
#if MSG_DB
        float4 qpf[MSG_QRES ? 1 : MSG_QU];
        if (n_steps) { /* slice 0 into buffer 0 */
            msg_fetch(f16, dh, df, base + t0, min((uint)MSG_BN, len - t0), 0, scale, normalize,
                      pf, lid);
            if (!MSG_QRES)
                msg_fetch_q(qt, n_rows, row0, 0, qpf, lid);
            barrier(CLK_LOCAL_MEM_FENCE); /* the previous document's maxima are out of red */
            msg_store(pf, ds1, lid);
            if (!MSG_QRES)
                msg_store_q(qpf, qs, lid);
            barrier(CLK_LOCAL_MEM_FENCE);
        }
#else
        if (MSG_PF && n_steps)
            msg_fetch(f16, dh, df, base + t0, min((uint)MSG_BN, len - t0), 0, scale, normalize,
                      pf, lid);
#endif
        for (uint st = 0; st < n_steps; st++) {
            const uint nv = min((uint)MSG_BN, len - t0), buf = MSG_DB ? st & 1 : 0;
            if (k0 == 0) {
#pragma unroll
                for (int i = 0; i < MSG_TM; i++)
#pragma unroll
                    for (int c = 0; c < MSG_TN; c++)
                        acc[i][c] = 0.0f;
            }
#if MSG_DB
            if (st + 1 < n_steps) { /* slice st+1 into registers, behind the FMAs below */
                const uint nk0 = k0 + MSG_BK == MSG_KP ? 0 : k0 + MSG_BK;
                const uint nt0 = nk0 ? t0 : t0 + MSG_BN;
                msg_fetch(f16, dh, df, base + nt0, min((uint)MSG_BN, len - nt0), nk0, scale,
                          normalize, pf, lid);
                if (!MSG_QRES)
                    msg_fetch_q(qt, n_rows, row0, nk0, qpf, lid);
            }
#else
            barrier(CLK_LOCAL_MEM_FENCE); /* the previous slice is consumed */
            if (!MSG_PF)
                msg_fetch(f16, dh, df, base + t0, nv, k0, scale, normalize, pf, lid);
            msg_store(pf, ds1, lid);
            if (!MSG_QRES)
                msg_stage_q(qt, n_rows, row0, k0, MSG_BK, qs, lid);
            barrier(CLK_LOCAL_MEM_FENCE);
            if (MSG_PF && st + 1 < n_steps) {
                const uint nk0 = k0 + MSG_BK == MSG_KP ? 0 : k0 + MSG_BK;
                const uint nt0 = nk0 ? t0 : t0 + MSG_BN;
                msg_fetch(f16, dh, df, base + nt0, min((uint)MSG_BN, len - nt0), nk0, scale,
                          normalize, pf, lid);
            }
#endif
            {
                __local const float4 *qk =
                    qs + (MSG_QRES ? k0 * (MSG_BM / 4) : buf * MSG_QUNITS) + tr;
                __local const float4 *dk = ds + buf * (MSG_BK * MSG_BN / 4) + tc;
#pragma unroll
                for (int k = 0; k < MSG_BK; k++) {
                    float a[MSG_TM], b[MSG_TN];
#pragma unroll
                    for (int i4 = 0; i4 < MSG_TM / 4; i4++) {
                        const float4 v = qk[k * (MSG_BM / 4) + i4 * MSG_RX];
                        a[4 * i4] = v.x;
                        a[4 * i4 + 1] = v.y;
                        a[4 * i4 + 2] = v.z;
                        a[4 * i4 + 3] = v.w;
                    }
#pragma unroll
                    for (int c4 = 0; c4 < MSG_TN / 4; c4++) {
                        const float4 v = dk[k * (MSG_BN / 4) + c4 * MSG_CX];
                        b[4 * c4] = v.x;
                        b[4 * c4 + 1] = v.y;
                        b[4 * c4 + 2] = v.z;
                        b[4 * c4 + 3] = v.w;
                    }
#pragma unroll
                    for (int i = 0; i < MSG_TM; i++)
#pragma unroll
                        for (int c = 0; c < MSG_TN; c++)
                            acc[i][c] = fma(a[i], b[c], acc[i][c]);
                }
            }
#if MSG_DB
            if (st + 1 < n_steps) { /* into the other buffer: its last readers passed the
                                       barrier that ended slice st-1 */
                msg_store(pf, ds1 + (buf ^ 1) * (MSG_BK * MSG_BN), lid);
                if (!MSG_QRES)
                    msg_store_q(qpf, qs + (buf ^ 1) * MSG_QUNITS, lid);
            }
            barrier(CLK_LOCAL_MEM_FENCE);
#endif
            k0 += MSG_BK;
            if (k0 == MSG_KP) {
                /* The chunk is done. Tokens past the document's end must never win the max. */
#pragma unroll
                for (int c = 0; c < MSG_TN; c++)
                    if ((uint)((c / 4) * MSG_CX * 4 + c % 4) + tc * 4 < nv)
#pragma unroll
                        for (int i = 0; i < MSG_TM; i++)
                            mx[i] = fmax(mx[i], acc[i][c]);
                k0 = 0;
                t0 += MSG_BN;
            }
        }
        /* The CX work-items of a row meet in __local; then one work-item a row writes it. */
        barrier(CLK_LOCAL_MEM_FENCE);
#pragma unroll
        for (int i = 0; i < MSG_TM; i++)
            red[tc * MSG_BM + (i / 4) * MSG_RX * 4 + tr * 4 + i % 4] = mx[i];
        barrier(CLK_LOCAL_MEM_FENCE);
        for (uint r = lid; r < MSG_BM; r += MSG_WG) {
            float m = red[r];
            for (uint c = 1; c < MSG_CX; c++)
                m = fmax(m, red[c * MSG_BM + r]);
            rowmax[((size_t)j * n_sp + sp) * n_rows + row0 + r] = m;
        }
    }
}

/* __local arrays must be declared at kernel scope in OpenCL C 1.2. */
#if MSG_RED_IN_DS
#define MSG_LOCALS                                                                                \
    __local float4 qs[MSG_QK * (MSG_BM / 4)];                                                    \
    __local float4 ds[MSG_NB * MSG_BK * (MSG_BN / 4)];                                           \
    __local float *red = (__local float *)ds;
#else
#define MSG_LOCALS                                                                                \
    __local float4 qs[MSG_QK * (MSG_BM / 4)];                                                    \
    __local float4 ds[MSG_NB * MSG_BK * (MSG_BN / 4)];                                           \
    __local float red[MSG_CX * MSG_BM];
#endif

/*
 * Score: grid (n_row_tiles * WG, n_runs * n_sp), work-groups of WG. Group (rt, run * n_sp + sp)
 * scores rows rt*BM .. rt*BM+BM-1 against part sp of the chunks of documents run*docs_per_wg ..
 * (+docs_per_wg, < n_docs). n_sp > 1 splits each document over work-groups (few documents or
 * few rows: more work-groups in flight); their maxima meet in msg_sum (max is exact).
 */
#define MSG_SCORE_ARGS                                                                            \
    __global const uint *restrict doc_tok, __global const uint *restrict doc_len,                \
        const uint n_docs, const uint docs_per_wg, const uint n_sp,                              \
        __global const float *restrict scale,                                                    \
        const int normalize, __global const float4 *restrict qt, const uint n_rows,              \
        __global float *restrict rowmax
#define MSG_SCORE_RANGE                                                                           \
    const uint row0 = (uint)get_group_id(0) * MSG_BM;                                            \
    const uint sp = (uint)get_group_id(1) % n_sp;                                                \
    const uint j0 = (uint)get_group_id(1) / n_sp * docs_per_wg;                                  \
    const uint j1 = min(n_docs, j0 + docs_per_wg);

__kernel __attribute__((reqd_work_group_size(MSG_WG, 1, 1))) void
msg_score_f16(__global const half *restrict docs, MSG_SCORE_ARGS)
{
    MSG_LOCALS
    MSG_SCORE_RANGE
    msg_score_body(1, docs, (__global const float *)docs, doc_tok, doc_len, row0, j0, j1, sp, n_sp, scale,
                   normalize, qt, n_rows, rowmax, qs, ds, red);
}

__kernel __attribute__((reqd_work_group_size(MSG_WG, 1, 1))) void
msg_score_f32(__global const float *restrict docs, MSG_SCORE_ARGS)
{
    MSG_LOCALS
    MSG_SCORE_RANGE
    msg_score_body(0, (__global const half *)docs, docs, doc_tok, doc_len, row0, j0, j1, sp, n_sp, scale,
                   normalize, qt, n_rows, rowmax, qs, ds, red);
}

/*
 * Score a work list (pairs, `maxsim rerank`): 1-D grid of n_work work-groups; group g scores row
 * tile work[g].x against document work[g].y, with the same body as msg_score: the same bits.
 */
#define MSG_LIST_ARGS                                                                             \
    __global const uint *restrict doc_tok, __global const uint *restrict doc_len,                \
        __global const uint2 *restrict work, const uint n_work,                                  \
        __global const float *restrict scale, const int normalize,                               \
        __global const float4 *restrict qt, const uint n_rows, __global float *restrict rowmax
#define MSG_LIST_RANGE                                                                            \
    const uint g = (uint)get_group_id(0);                                                        \
    if (g >= n_work)                                                                             \
        return;                                                                                  \
    const uint row0 = work[g].x * MSG_BM, j0 = work[g].y, j1 = j0 + 1, sp = 0, n_sp = 1;

__kernel __attribute__((reqd_work_group_size(MSG_WG, 1, 1))) void
msg_score_list_f16(__global const half *restrict docs, MSG_LIST_ARGS)
{
    MSG_LOCALS
    MSG_LIST_RANGE
    msg_score_body(1, docs, (__global const float *)docs, doc_tok, doc_len, row0, j0, j1, sp, n_sp, scale,
                   normalize, qt, n_rows, rowmax, qs, ds, red);
}

__kernel __attribute__((reqd_work_group_size(MSG_WG, 1, 1))) void
msg_score_list_f32(__global const float *restrict docs, MSG_LIST_ARGS)
{
    MSG_LOCALS
    MSG_LIST_RANGE
    msg_score_body(0, (__global const half *)docs, docs, doc_tok, doc_len, row0, j0, j1, sp, n_sp, scale,
                   normalize, qt, n_rows, rowmax, qs, ds, red);
}

/* A query's score against a document from its rows' maxima: row t's is the max over the n_sp
 * parts of m[p * n_rows + t] (exact), and the rows are added in token order (msg_sum and
 * msg_sum_pairs both, so `rerank` and `score` agree bit for bit whatever n_sp). */
static inline float msg_query_sum(__global const float *restrict m, const uint n, const uint n_sp,
                                  const uint n_rows)
{
    float s = 0.0f;
    for (uint t = 0; t < n; t++) {
        float v = m[t];
        for (uint p = 1; p < n_sp; p++)
            v = fmax(v, m[(size_t)p * n_rows + t]);
        s += v;
    }
    return s;
}

/*
 * Sum: grid (>= n_docs, n_q). out[i][j] = the sum over query i's rows (q_row[i] ..
 * q_row[i]+q_len[i]-1) of the max over parts of rowmax[j][part][row], in token order; 0 for an
 * empty query or document.
 * Shared by ms_scorer_run and ms_scorer_run_pairs, so both give the same bits.
 */
__kernel void msg_sum(__global const float *restrict rowmax, const uint n_rows, const uint n_sp,
                      __global const uint *restrict doc_len, const uint n_docs,
                      __global const uint *restrict q_row, __global const uint *restrict q_len,
                      __global float *restrict out)
{
    const uint j = (uint)get_global_id(0), i = (uint)get_global_id(1);
    if (j >= n_docs)
        return;
    out[(size_t)i * n_docs + j] =
        doc_len[j] ? msg_query_sum(rowmax + (size_t)j * n_sp * n_rows + q_row[i], q_len[i], n_sp,
                                   n_rows)
                   : 0.0f;
}

/* Sum for pairs: one work-item per pair; out[p] = query pair_q[p] against document pair_d[p]. */
__kernel void msg_sum_pairs(__global const float *restrict rowmax, const uint n_rows,
                            __global const uint *restrict doc_len,
                            __global const uint *restrict q_row, __global const uint *restrict q_len,
                            __global const uint *restrict pair_q,
                            __global const uint *restrict pair_d, const uint n_pairs,
                            __global float *restrict out)
{
    const uint p = (uint)get_global_id(0);
    if (p >= n_pairs)
        return;
    const uint i = pair_q[p], j = pair_d[p];
    out[p] =
        doc_len[j] ? msg_query_sum(rowmax + (size_t)j * n_rows + q_row[i], q_len[i], 1, n_rows) : 0.0f;
}
