/*
 * maxsim.cl - exact MaxSim scores of a batch of queries against a block of
 * documents: score(q, d) = sum over q's tokens of the max over d's tokens of
 * the dot product (CONTRACT.md "Scores"), accumulated in float32.
 *
 * Two steps per document block (host: src/maxsim_cl.c):
 *   ms_prep_f32 / ms_prep_f16  convert each document token to float32 once,
 *       normalize it if asked, and write it into a tiled, transposed layout:
 *       every document is padded to a multiple of TN tokens, and a tile holds
 *       [dim][TN] floats, so one load gives element k of TN consecutive tokens.
 *   ms_score  one work-item per document; for every query it walks the query
 *       tokens in blocks of QB, and for every tile of the document keeps QB x TN
 *       accumulators: per k, TN/16 vector loads of the tile and QB scalar
 *       broadcasts of the query, QB * TN/16 vector FMAs. That is a register-
 *       blocked GEMM micro-kernel whose C block never leaves registers: it is
 *       reduced to a running max per query token right away, so the
 *       [Lq, Ld] similarity matrix is never written.
 *   ms_score_pairs  the same per-pair body (ms_pair_score), one work-item per
 *       (query, document) pair of a list: `maxsim rerank`.
 * Queries arrive already prepared (float32, normalized, each query padded with
 * zero tokens to a multiple of QB, row-major [token][dim]) and stay on the
 * device for the whole batch.
 *
 * Build options (chosen by the host, part of the program cache key):
 *   -DMS_TN=16|32  tokens per tile (a multiple of 16: float16 vectors)
 *   -DMS_QB=n      query tokens per register block (1..16)
 *   -DMS_NVIDIA=1  NVIDIA devices (tensor-core path, see the marked place below)
 * Standalone OpenCL C 1.2: `make check-kernels` compiles it with clang.
 */

#ifndef MS_TN
#define MS_TN 32
#endif
#ifndef MS_QB
#define MS_QB 8
#endif
#if MS_TN % 16 != 0 || MS_TN < 16 || MS_TN > 64
#error "MS_TN must be 16, 32, 48 or 64"
#endif
#if MS_QB < 1 || MS_QB > 16
#error "MS_QB must be in 1..16"
#endif
#define MS_NV (MS_TN / 16) /* float16 vectors per tile row */

/*
 * Prep: one work-item per token slot of a tile (global size n_tiles * TN).
 * tile_tok[t] is the block-relative index of the first token of tile t and
 * tile_cnt[t] how many of its TN slots hold a token; the other slots get
 * zeros (the scoring kernel masks them). Normalizing here means each document
 * token is normalized once, not once per query.
 */
#define MS_PREP_BODY(LOAD)                                                                        \
    const size_t g = get_global_id(0);                                                           \
    if (g >= (size_t)n_tiles * MS_TN)                                                            \
        return;                                                                                  \
    const uint t = (uint)(g / MS_TN), lane = (uint)(g % MS_TN);                                  \
    __global float *out = dst + (size_t)t * dim * MS_TN + lane;                                  \
    if (lane >= tile_cnt[t]) {                                                                   \
        for (uint k = 0; k < dim; k++)                                                           \
            out[(size_t)k * MS_TN] = 0.0f;                                                       \
        return;                                                                                  \
    }                                                                                            \
    const size_t base = ((size_t)tile_tok[t] + lane) * dim;                                      \
    float scale = 1.0f;                                                                          \
    if (normalize) {                                                                             \
        float ss = 0.0f;                                                                         \
        for (uint k = 0; k < dim; k++) {                                                         \
            const float x = LOAD(base + k);                                                      \
            ss = fma(x, x, ss);                                                                  \
        }                                                                                        \
        scale = 1.0f / fmax(sqrt(ss), 1e-12f);                                                   \
    }                                                                                            \
    for (uint k = 0; k < dim; k++)                                                               \
        out[(size_t)k * MS_TN] = LOAD(base + k) * scale;

#define MS_LOAD_F32(i) src[(i)]
#define MS_LOAD_F16(i) vload_half((i), src)

__kernel void ms_prep_f32(__global const float *restrict src, __global const uint *restrict tile_tok,
                          __global const uint *restrict tile_cnt, const uint n_tiles,
                          const uint dim, const int normalize, __global float *restrict dst)
{
    MS_PREP_BODY(MS_LOAD_F32)
}

__kernel void ms_prep_f16(__global const half *restrict src, __global const uint *restrict tile_tok,
                          __global const uint *restrict tile_cnt, const uint n_tiles,
                          const uint dim, const int normalize, __global float *restrict dst)
{
    MS_PREP_BODY(MS_LOAD_F16)
}

#if defined(MS_NVIDIA) && MS_NVIDIA
/*
 * ---- NVIDIA tensor-core path: to come (later issue) ----
 * Will hold an ms_score variant using mma.sync through inline PTX on
 * half / tf32 tiles. Until then NVIDIA devices build and run the portable
 * ms_score below (MS_NVIDIA only selects this place).
 */
#endif

/*
 * The score of one (query, document) pair. ms_score and ms_score_pairs both
 * call it, so a pair gets the same operations in the same order whichever
 * kernel scores it: `rerank` gives bit-identical scores to `score`.
 *   dt0         the document's first tile; n_tiles >= 1 tiles, last_valid
 *               (1..TN) tokens in the last one
 *   qp0         the query's first block of QB prepared tokens, n_blk blocks,
 *               qlen valid tokens (0: the score is 0)
 */
static inline float ms_pair_score(__global const float16 *restrict dt0, const uint n_tiles,
                                  const uint last_valid, __global const float *restrict qp0,
                                  const uint n_blk, const uint qlen, const uint dim)
{
    /* Lane masks of the last tile: padded slots must never win the max. */
    const int16 lane = (int16)(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    float score = 0.0f;

    for (uint b = 0; b < n_blk; b++) {
        const uint nvalid = min((uint)MS_QB, qlen - b * MS_QB);
        __global const float *qp = qp0 + (size_t)b * MS_QB * dim;
        /* Running max per query token, TN lanes folded to 16. */
        float16 mx[MS_QB];
#pragma unroll
        for (int r = 0; r < MS_QB; r++)
            mx[r] = (float16)(-INFINITY);

        for (uint t = 0; t < n_tiles; t++) {
            __global const float16 *dt = dt0 + (size_t)t * dim * MS_NV;
            float16 acc[MS_QB][MS_NV];
#pragma unroll
            for (int r = 0; r < MS_QB; r++)
#pragma unroll
                for (int v = 0; v < MS_NV; v++)
                    acc[r][v] = (float16)(0.0f);
            for (uint k = 0; k < dim; k++) {
                float16 d[MS_NV];
#pragma unroll
                for (int v = 0; v < MS_NV; v++)
                    d[v] = dt[(size_t)k * MS_NV + v];
#pragma unroll
                for (int r = 0; r < MS_QB; r++) {
                    const float16 qv = (float16)(qp[(size_t)r * dim + k]);
#pragma unroll
                    for (int v = 0; v < MS_NV; v++)
                        acc[r][v] = fma(qv, d[v], acc[r][v]);
                }
            }
            if (t + 1 == n_tiles) {
#pragma unroll
                for (int v = 0; v < MS_NV; v++) {
                    const int16 keep = lane + (int16)(v * 16) < (int16)((int)last_valid);
#pragma unroll
                    for (int r = 0; r < MS_QB; r++)
                        acc[r][v] = select((float16)(-INFINITY), acc[r][v], keep);
                }
            }
#pragma unroll
            for (int r = 0; r < MS_QB; r++)
#pragma unroll
                for (int v = 0; v < MS_NV; v++)
                    mx[r] = fmax(mx[r], acc[r][v]);
        }
        /* One horizontal max per (query token, doc), then the sum in token order. */
#pragma unroll
        for (int r = 0; r < MS_QB; r++) {
            float8 m8 = fmax(mx[r].lo, mx[r].hi);
            float4 m4 = fmax(m8.lo, m8.hi);
            float2 m2 = fmax(m4.lo, m4.hi);
            const float m = fmax(m2.x, m2.y);
            if ((uint)r < nvalid)
                score += m;
        }
    }
    return score;
}

/*
 * Score: one work-item per document of the block (global size >= n_docs).
 *   tiles      prepared documents (ms_prep_*), doc_tile[j] = first tile of doc j
 *   doc_len    tokens of doc j (0: the doc scores 0 against every query)
 *   queries    [q_blk[n_q] * MS_QB][dim] prepared query tokens; query i owns
 *              blocks q_blk[i] .. q_blk[i+1]-1 and has q_len[i] valid tokens
 *   out        [n_q][n_docs]
 */
__kernel void ms_score(__global const float *restrict tiles, __global const uint *restrict doc_tile,
                       __global const uint *restrict doc_len, const uint n_docs,
                       __global const float *restrict queries, __global const uint *restrict q_blk,
                       __global const uint *restrict q_len, const uint n_q, const uint dim,
                       __global float *restrict out)
{
    const uint j = (uint)get_global_id(0);
    if (j >= n_docs)
        return;
    const uint len = doc_len[j];
    if (len == 0) {
        for (uint i = 0; i < n_q; i++)
            out[(size_t)i * n_docs + j] = 0.0f;
        return;
    }
    const uint n_tiles = (len + MS_TN - 1) / MS_TN;
    const uint last_valid = len - (n_tiles - 1) * MS_TN; /* 1..TN tokens in the last tile */
    __global const float16 *dt0 = (__global const float16 *)(tiles + (size_t)doc_tile[j] * dim * MS_TN);

    for (uint i = 0; i < n_q; i++) {
        const uint b0 = q_blk[i];
        out[(size_t)i * n_docs + j] =
            ms_pair_score(dt0, n_tiles, last_valid, queries + (size_t)b0 * MS_QB * dim,
                          q_blk[i + 1] - b0, q_len[i], dim);
    }
}

/*
 * Score pairs: one work-item per pair (global size >= n_pairs). Pair p is
 * query pair_q[p] (an index into this query group, as for ms_score) against
 * document pair_d[p] of the prepared block; out[p] its score. The host lists
 * the pairs grouped by document, so neighbouring work-items read the same
 * tiles while they are still in cache; any order gives the same scores.
 */
__kernel void ms_score_pairs(__global const float *restrict tiles,
                             __global const uint *restrict doc_tile,
                             __global const uint *restrict doc_len,
                             __global const float *restrict queries,
                             __global const uint *restrict q_blk,
                             __global const uint *restrict q_len,
                             __global const uint *restrict pair_q,
                             __global const uint *restrict pair_d, const uint n_pairs,
                             const uint dim, __global float *restrict out)
{
    const uint p = (uint)get_global_id(0);
    if (p >= n_pairs)
        return;
    const uint i = pair_q[p], j = pair_d[p], len = doc_len[j];
    if (len == 0) {
        out[p] = 0.0f;
        return;
    }
    const uint n_tiles = (len + MS_TN - 1) / MS_TN;
    const uint last_valid = len - (n_tiles - 1) * MS_TN;
    const uint b0 = q_blk[i];
    out[p] = ms_pair_score((__global const float16 *)(tiles + (size_t)doc_tile[j] * dim * MS_TN),
                           n_tiles, last_valid, queries + (size_t)b0 * MS_QB * dim,
                           q_blk[i + 1] - b0, q_len[i], dim);
}
