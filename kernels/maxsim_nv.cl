/*
 * maxsim_nv.cl - MaxSim on NVIDIA tensor cores through inline PTX (opt-in, NOT YET RUN ON A GPU).
 *
 * The same scores as kernels/maxsim.cl (score(q, d) = sum over q's tokens of the max over d's
 * tokens of the dot product), but the dot products are float16 x float16 products accumulated in
 * float32 by `mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32`. A float16 product is exact in
 * float32, so for float16 inputs the only difference from the exact path is the order of the
 * float32 sums.
 *
 * Layouts (host: src/maxsim_cl.c, "NVIDIA path"):
 *   documents  float16 bits, [token][KP], KP = dim rounded up to 16 with zero columns. With
 *              float16 documents of dim % 16 == 0 and no normalization the raw upload is used as
 *              is; otherwise ms_nv_prep_f16/_f32 write this layout (converting, normalizing).
 *   queries    float16 bits, [row block][16][KP]: each query padded with zero rows to a multiple
 *              of 16 rows, so every row block of 16 belongs to one query; rb_nvalid[rb] of its
 *              rows are real tokens (the others never count).
 *   part       [n_rb][n_docs] float32: the sum over a row block's valid rows of their max. Long
 *              queries are simply several row blocks; ms_nv_sum adds a query's blocks in order.
 *
 * ms_nv_score: a work-group of 4 (or 8) warps owns WR*MR row blocks (the "row tile", grid dimension 1)
 * and a run of docs_per_wg consecutive documents (grid dimension 0). Each warp keeps the A
 * fragments of its MR row blocks in registers for the whole run (loaded once, KP compile-time
 * so that the register arrays are indexed by constants only). Documents stream through __local
 * memory in chunks of NCH tokens, double-buffered with cp.async, each chunk serving every row
 * block of the tile: with 64 queries of 32 tokens and 4 warps x 2 row blocks, one chunk read
 * feeds 128 query rows. The warps split the row blocks (WR) and, for small batches, the
 * 16-token column tiles of each chunk (WC); B fragments come from __local by ldmatrix.x4. The
 * running max over document tokens stays in registers, per query row; tokens past the
 * document's length are set to -INFINITY before the max. At the end of a document the 4 lanes
 * of a row reduce their max with shfl.sync, warps that split columns combine theirs through
 * __local, and the 16 rows of a block are summed by a shfl.sync butterfly in a fixed order.
 *
 * Fragment lane mappings (PTX ISA, "Matrix fragments for mma.m16n8k16 with floating point
 * type"): g = lane >> 2, t = lane & 3. A (row-major 16x16 f16, 4 .b32 regs): reg r holds
 * A[g + 8(r&1)][2t + 8(r>>1) + {0,1}]. B (col 16x8, 2 regs): reg r holds B[2t + 8r + {0,1}][g].
 * C/D (16x8 f32): c_r at row g + 8(r>>1), col 2t + (r&1). The MS_NV_* index macros below are
 * the only place these appear; tests/test_nv_layout.c includes this file with
 * MS_NV_INDEX_ONLY and checks them against a PTX-ISA emulation of ldmatrix and mma on random
 * matrices (no GPU needed). scripts/nv-twin/ compiles this very file as CUDA so that ptxas
 * checks every PTX instruction.
 *
 * Build options (host): -DMS_NVIDIA=1 (required for ms_nv_score), -DMS_NV_KP (16..512, a
 * multiple of 16), -DMS_NV_MR (1..4 row blocks per warp), -DMS_NV_WC (1|2|4 warps splitting the
 * columns; WR = WARPS / WC), -DMS_NV_NCH (tokens per chunk, a multiple of 16 * WC),
 * -DMS_NV_WARPS (4|8 warps a work-group sharing each chunk), -DMS_NV_RING (0: double buffer
 * with two barriers a chunk; 2..4: a ring of chunk slots with one), -DMS_NV_NT (1|2 column
 * tiles a warp scores per step), -DMS_NV_RTFAST (0|1: the row tile in grid dimension 0),
 * -DMS_NV_LDSM=0|1 (ldmatrix, else plain __local loads), -DMS_NV_CPASYNC=0|1 (cp.async, else
 * plain copies). The fallbacks were written while two points were open on NVIDIA's OpenCL:
 * that a __local pointer converted to an integer is the .shared address ldmatrix/cp.async take,
 * and that cp.async completes as written. Both held on the H200 (docs/kernel-notes.md); the
 * fallbacks stay as switches, and scripts/gpu-check still tests every combination.
 * -DMS_NV_F8=1: e4m3 operands; -DMS_NV_TF32=1 with -DMS_NV_TF32_CVT=0|1|2: float32 operands
 * multiplied as tf32 by mma.m16n8k8 (the tf32 section); -DMS_NV_I8=1: int8 operands with scales
 * (the int8 section).
 * Without MS_NVIDIA only the portable helpers (prep, sum) are compiled: the host never builds
 * this file for another device, and `make check-kernels` checks it both ways.
 */

#ifndef MS_NV_KP
#define MS_NV_KP 128
#endif
#ifndef MS_NV_MR
#define MS_NV_MR 2
#endif
#ifndef MS_NV_WC
#define MS_NV_WC 1
#endif
#ifndef MS_NV_NCH
#define MS_NV_NCH 64
#endif
#ifndef MS_NV_LDSM
#define MS_NV_LDSM 1
#endif
#ifndef MS_NV_CPASYNC
#define MS_NV_CPASYNC 1
#endif
/* Staged: warps a work-group (4 | 8: all of them share each staged chunk). */
#ifndef MS_NV_WARPS
#define MS_NV_WARPS 4
#endif
/* Staged: 0 = the double buffer with two barriers a chunk; 2..4 = a ring of that many chunk
 * slots with one barrier a chunk (wait for the oldest, barrier, refill the slot the barrier has
 * just freed, compute). */
#ifndef MS_NV_RING
#define MS_NV_RING 0
#endif
/* Staged: 16-token column tiles a warp scores per step (1 | 2: two tiles' accumulators in
 * flight, one end-of-step drain for twice the mma). */
#ifndef MS_NV_NT
#define MS_NV_NT 1
#endif
/* Staged: 1 = the row tile is grid dimension 0 (the row tiles of one run of documents start
 * together and share its reads in L2), 0 = dimension 1. */
#ifndef MS_NV_RTFAST
#define MS_NV_RTFAST 0
#endif
#define MS_NV_WR (MS_NV_WARPS / MS_NV_WC)
#define MS_NV_KS (MS_NV_KP / 16)  /* k-steps of 16 */
/* __local row stride in halves: KP + 8, i.e. 16 bytes of padding, so the 8 rows one ldmatrix
 * 8x8 matrix reads start in 8 different 16-byte bank groups ((KP/8 + 1) is odd). */
#define MS_NV_LDS (MS_NV_KP + 8)

#if MS_NV_KP % 16 != 0 || MS_NV_KP < 16 || MS_NV_KP > 512
#error "MS_NV_KP must be a multiple of 16 in 16..512"
#endif
#if MS_NV_MR < 1 || MS_NV_MR > 4
#error "MS_NV_MR must be in 1..4"
#endif
#if MS_NV_WARPS != 4 && MS_NV_WARPS != 8
#error "MS_NV_WARPS must be 4 or 8"
#endif
#if MS_NV_RING != 0 && (MS_NV_RING < 2 || MS_NV_RING > 4)
#error "MS_NV_RING must be 0 or in 2..4"
#endif
#if MS_NV_NT != 1 && MS_NV_NT != 2
#error "MS_NV_NT must be 1 or 2"
#endif
#ifndef MS_NV_SMR
#define MS_NV_SMR 2
#endif
#ifndef MS_NV_SW
#define MS_NV_SW 2
#endif
#ifndef MS_NV_SS
#define MS_NV_SS 4
#endif
#ifndef MS_NV_ST
#define MS_NV_ST 16
#endif
/* Stream, split: the SW warps of a work-group share each document, warp w taking its tiles w,
 * w + SW, ...; their row maxima meet in __local (exact). Else every warp has its own documents. */
#ifndef MS_NV_SPLIT
#define MS_NV_SPLIT 0
#endif
/* float8 e4m3 operands (--precision f8, sm_89+): rows of KP "halves" hold 2 * KP e4m3 bytes. */
#ifndef MS_NV_F8
#define MS_NV_F8 0
#endif
/* tf32 operands (--precision tf32, sm_80+): rows of KP "halves" hold KP / 2 float32 (the tf32
 * section below); MS_NV_TF32_CVT 1|2: the kernel rounds B itself (arithmetic | cvt.rna). */
#ifndef MS_NV_TF32
#define MS_NV_TF32 0
#endif
#ifndef MS_NV_TF32_CVT
#define MS_NV_TF32_CVT 0
#endif
/* int8 operands (--precision int8, sm_80+): the f8 layout (a "half" holds two int8 codes), int32
 * products and sums by mma.m16n8k32 .s8, scales applied to the row maxima (the int8 section). */
#ifndef MS_NV_I8
#define MS_NV_I8 0
#endif
#ifndef MS_NV_HAS_F8 /* the device has the e4m3 conversions (sm_89 on); the host says */
#define MS_NV_HAS_F8 1
#endif
#if MS_NV_F8 && !MS_NV_HAS_F8
#error "MS_NV_F8 needs MS_NV_HAS_F8 (sm_89 or later)"
#endif
#if MS_NV_I8 + MS_NV_F8 + MS_NV_TF32 > 1
#error "at most one of MS_NV_I8, MS_NV_F8 and MS_NV_TF32"
#endif
#if MS_NV_SPLIT
#define MS_NV_TSTEP MS_NV_SW
#else
#define MS_NV_TSTEP 1
#endif
#if MS_NV_ST != 16 && MS_NV_ST != 32 && MS_NV_ST != 64
#error "MS_NV_ST must be 16, 32 or 64"
#endif
#if MS_NV_SMR < 1 || MS_NV_SMR > 4
#error "MS_NV_SMR must be in 1..4"
#endif
#if MS_NV_SW < 1 || MS_NV_SW > 8 || MS_NV_SS < 2 || MS_NV_SS > 8
#error "MS_NV_SW must be in 1..8 and MS_NV_SS in 2..8"
#endif
#if MS_NV_WC != 1 && MS_NV_WC != 2 && MS_NV_WC != 4
#error "MS_NV_WC must be 1, 2 or 4"
#endif
#if MS_NV_NCH % (16 * MS_NV_WC) != 0 || MS_NV_NCH > 128
#error "MS_NV_NCH must be a multiple of 16 * MS_NV_WC, at most 128"
#endif

/* ---- Fragment index maps (lane = 0..31); checked by tests/test_nv_layout.c ---- */
#define MS_NV_G(lane) ((lane) >> 2)
#define MS_NV_T(lane) ((lane) & 3)
/* A fragment register r (0..3): row in the 16-row block, first of its two k columns. */
#define MS_NV_A_ROW(lane, r) (MS_NV_G(lane) + 8 * ((r) & 1))
#define MS_NV_A_COL(lane, r) (2 * MS_NV_T(lane) + 8 * ((r) >> 1))
/* B over a 16-token x 16-k tile of documents stored token-major (= B col-major), as
 * ldmatrix.x4 (no .trans) loads it: lane L gives the address of row L & 7 of matrix L >> 3;
 * matrix m covers tokens 8(m >> 1) .. +7 and k 8(m & 1) .. +7, so the registers come out as
 * {b0, b1} of the first n8 tile, then {b0, b1} of the second. */
#define MS_NV_LDSM_TOK(lane) (((lane) & 7) + 8 * ((lane) >> 4))
#define MS_NV_LDSM_K(lane) (8 * (((lane) >> 3) & 1))
/* The same four registers read without ldmatrix: register m of lane holds tokens / k: */
#define MS_NV_B_TOK(lane, m) (8 * ((m) >> 1) + MS_NV_G(lane))
#define MS_NV_B_K(lane, m) (2 * MS_NV_T(lane) + 8 * ((m) & 1))
/* C fragment register r: row in the block, column (token) in the n8 tile. */
#define MS_NV_C_ROW(lane, r) (MS_NV_G(lane) + 8 * ((r) >> 1))
#define MS_NV_C_COL(lane, r) (2 * MS_NV_T(lane) + ((r) & 1))
/* Staged, the 16-token column tiles of a chunk: of WC warps splitting them, warp column wc
 * scores steps of NT consecutive tiles, its first starting at tile MS_NV_STEP0 and each next
 * MS_NV_STEP_STRIDE tiles on; a step's tiles past the chunk's valid tokens are skipped. */
#define MS_NV_STEP0(wc, NT) ((wc) * (NT))
#define MS_NV_STEP_STRIDE(WC, NT) ((WC) * (NT))
/* Staged ring of R slots: the slot refilled while slot cur is scored (the one scored just
 * before, which every warp has left at the barrier), and the slot scored next. */
#define MS_NV_RING_FILL(cur, R) ((cur) == 0 ? (R) - 1 : (cur) - 1)
#define MS_NV_RING_NEXT(cur, R) ((cur) + 1 == (R) ? 0 : (cur) + 1)
/* mma.m16n8k8 with .tf32 A and B (PTX ISA, "Matrix fragments for mma.m16n8k8"): A register r
 * holds A[g + 8(r & 1)][t + 4(r >> 1)], B register r holds B[t + 4r][g], one 32-bit element
 * each; C as above. Counted in 16-bit "halves" of a row, element c of a float32 row starts at
 * half 2c: A_COL / 2 and B_K / 2 of the float16 maps, so the float16 kernels' loads (plain and
 * ldmatrix .b16) fetch exactly these registers when a k-step of 16 halves is 8 float32 (the
 * tf32 section below). tests/test_nv_layout.c checks the equalities. */
#define MS_NV_TF32_A_ROW(lane, r) (MS_NV_G(lane) + 8 * ((r) & 1))
#define MS_NV_TF32_A_K(lane, r) (MS_NV_T(lane) + 4 * ((r) >> 1))
#define MS_NV_TF32_B_K(lane, r) (MS_NV_T(lane) + 4 * (r))
#define MS_NV_TF32_B_COL(lane) MS_NV_G(lane)

#ifndef MS_NV_INDEX_ONLY

/* The CUDA twin (scripts/nv-twin) predefines these; OpenCL C gets its own spellings. */
#ifndef MS_NV_CUDA
#define MS_GLOBAL __global
#define MS_LOCAL_PTR __local
#define MS_KERNEL __kernel
#define MS_SHARED_ADDR(p) ((uint)(size_t)(p))  /* __local pointer -> .shared address (to verify) */
#define MS_GLOBAL_ADDR(p) ((ulong)(size_t)(p))
#define MS_BARRIER() barrier(CLK_LOCAL_MEM_FENCE)
#define MS_REQD_WG __attribute__((reqd_work_group_size(32 * MS_NV_WARPS, 1, 1)))
#define MS_REQD_WG_STREAM __attribute__((reqd_work_group_size(32 * MS_NV_SW, 1, 1)))
/* NVIDIA's compiler takes `asm` (verified on the H100, ANCHORS.md); clang's OpenCL mode only
 * knows `__asm__`, which lets `make check-kernels` parse every statement. */
#if defined(__clang__) && !defined(cl_nv_pragma_unroll)
#define MS_ASM __asm__ volatile
#else
#define MS_ASM asm volatile
#endif
#endif

#define MS_NV_LOAD_F32(i) src[(i)]
#define MS_NV_LOAD_F16(i) vload_half((i), src)

/* 1 / max(|token|_2, 1e-12) in float32 of the dim values from src[base]: --normalize. */
#define MS_NV_DEF_INV_NORM(NAME, T, LOAD)                                                         \
    static inline float NAME(MS_GLOBAL const T *src, const size_t base, const uint dim)          \
    {                                                                                            \
        float ss = 0.0f;                                                                         \
        for (uint k = 0; k < dim; k++) {                                                         \
            const float x = LOAD(base + k);                                                      \
            ss = fma(x, x, ss);                                                                  \
        }                                                                                        \
        return 1.0f / fmax(sqrt(ss), 1e-12f);                                                    \
    }
MS_NV_DEF_INV_NORM(ms_nv_inv_norm_f32, float, MS_NV_LOAD_F32)
MS_NV_DEF_INV_NORM(ms_nv_inv_norm_f16, half, MS_NV_LOAD_F16)

/*
 * Prep (any device): token g of the block (global size >= n_tok) into [g][KP] float16 bits,
 * normalized in float32 if asked, rounded to nearest even, zero columns from dim to KP.
 */
#define MS_NV_PREP_BODY(LOAD, NORM)                                                                     \
    const size_t g = get_global_id(0);                                                           \
    if (g >= n_tok)                                                                              \
        return;                                                                                  \
    const size_t base = g * dim;                                                                 \
    const float scale = normalize ? NORM(src, base, dim) : 1.0f;                                 \
    for (uint k = 0; k < dim; k++)                                                               \
        vstore_half_rte(LOAD(base + k) * scale, g * MS_NV_KP + k, dst);                          \
    for (uint k = dim; k < MS_NV_KP; k++)                                                        \
        vstore_half_rte(0.0f, g * MS_NV_KP + k, dst);


MS_KERNEL void ms_nv_prep_f32(MS_GLOBAL const float *restrict src, const uint n_tok,
                              const uint dim, const int normalize, MS_GLOBAL half *restrict dst)
{
    MS_NV_PREP_BODY(MS_NV_LOAD_F32, ms_nv_inv_norm_f32)
}

MS_KERNEL void ms_nv_prep_f16(MS_GLOBAL const half *restrict src, const uint n_tok,
                              const uint dim, const int normalize, MS_GLOBAL half *restrict dst)
{
    MS_NV_PREP_BODY(MS_NV_LOAD_F16, ms_nv_inv_norm_f16)
}

/* Sum: partial scores loaded SUMB at a time before they are added (still one by one, in
 * order: the same bits), so that a query of many row blocks (colpali: 64) waits for a memory
 * latency every SUMB blocks, not every block. */
#ifndef MS_NV_SUMB
#define MS_NV_SUMB 1
#endif
#if MS_NV_SUMB < 1 || MS_NV_SUMB > 32
#error "MS_NV_SUMB must be in 1..32"
#endif

/*
 * Sum (any device): out[i][j] = sum of part[rb][j] over query i's row blocks q_blk[i] ..
 * q_blk[i+1]-1, in order (0 for a query without tokens). Global size (>= n_docs, n_q).
 */
MS_KERNEL void ms_nv_sum(MS_GLOBAL const float *restrict part, const uint n_docs,
                         MS_GLOBAL const uint *restrict q_blk, const uint n_q,
                         MS_GLOBAL float *restrict out)
{
    const uint j = (uint)get_global_id(0), i = (uint)get_global_id(1);
    if (j >= n_docs || i >= n_q)
        return;
    float s = 0.0f;
    uint rb = q_blk[i];
    const uint end = q_blk[i + 1];
#if MS_NV_SUMB > 1
    for (; rb + MS_NV_SUMB <= end; rb += MS_NV_SUMB) {
        float v[MS_NV_SUMB];
#pragma unroll
        for (int u = 0; u < MS_NV_SUMB; u++)
            v[u] = part[(size_t)(rb + (uint)u) * n_docs + j];
#pragma unroll
        for (int u = 0; u < MS_NV_SUMB; u++)
            s += v[u];
    }
#endif
    for (; rb < end; rb++)
        s += part[(size_t)rb * n_docs + j];
    out[(size_t)i * n_docs + j] = s;
}

/* ---- tf32 (--precision tf32): layout and prep, any device ----
 * Documents and queries as float32, [token][KP / 2] (KP halves = dim rounded up to 8 float32,
 * times 2), zero columns from dim on, so that the staging (16-byte cp.async pieces, ldmatrix
 * .b16 rows of 16 bytes, the LDS padding) is byte for byte that of float16 rows of KP halves:
 * twice the bytes of float16 for the same dim. Operands are rounded to tf32 to nearest, ties
 * away from zero (what cvt.rna.tf32.f32 does): keep 10 of the 23 mantissa bits, adding half of
 * the last kept bit first; infinities and NaN as they are (inputs never hold them). The same
 * integer arithmetic as the host's ms_round_tf32 (src/maxsim_nv.c), so prep and host agree on
 * every bit; plain OpenCL C, so PoCL runs it too (tests/test_maxsim.c). */
static inline float ms_nv_tf32_rna(const float x)
{
    const uint u = as_uint(x);
    return (u & 0x7f800000u) == 0x7f800000u ? x : as_float((u + 0x1000u) & 0xffffe000u);
}

/* One work-item per element, so that neighbouring work-items read neighbouring values: element
 * g of [n_tok][KP / 2], normalized in float32 if asked, rounded when rna is set (else the
 * float32 as it is: MAXSIM_NV_TF32=raw). Global size >= n_tok * KP / 2. */
#define MS_NV_PREP32_BODY(LOAD, NORM)                                                             \
    const size_t g = get_global_id(0), tok = g / (MS_NV_KP / 2), k = g % (MS_NV_KP / 2);        \
    if (tok >= n_tok)                                                                            \
        return;                                                                                  \
    const size_t base = tok * dim;                                                               \
    const float scale = normalize ? NORM(src, base, dim) : 1.0f;                                 \
    const float x = k < dim ? LOAD(base + k) * scale : 0.0f;                                     \
    dst[g] = rna ? ms_nv_tf32_rna(x) : x;

MS_KERNEL void ms_nv_prep32_f32(MS_GLOBAL const float *restrict src, const uint n_tok,
                                const uint dim, const int normalize, const int rna,
                                MS_GLOBAL float *restrict dst)
{
    MS_NV_PREP32_BODY(MS_NV_LOAD_F32, ms_nv_inv_norm_f32)
}

MS_KERNEL void ms_nv_prep32_f16(MS_GLOBAL const half *restrict src, const uint n_tok,
                                const uint dim, const int normalize, const int rna,
                                MS_GLOBAL float *restrict dst)
{
    MS_NV_PREP32_BODY(MS_NV_LOAD_F16, ms_nv_inv_norm_f16)
}

/* ---- int8 (--precision int8): the documents' scale and codes, any device ----
 * A block of documents is quantized with ONE scale, so that the scale can be applied after the
 * max over a document's tokens (it is positive and the same for every token): s_d = 127 / M, M
 * the largest |value| of the block (after --normalize when on), code = the nearest integer to
 * value * s_d, ties to even, clamped to +-127 (M = 0: every code 0). Two passes: ms_nv_absmax_*
 * (M, as the bits of a non-negative float32, whose unsigned order is the float order, by one
 * atomic_max a work-group into a word the host zeroes first), then ms_nv_prepi8_* (the codes in
 * the f8 layout: [token][KP] "halves" of two codes, zeros from dim on). M does not depend on the
 * order of the work (max is exact), nor the codes on the device: s_d by a correctly rounded
 * division (div.rn on NVIDIA, whose OpenCL `/` need not be), products rounded once, rint. Plain
 * OpenCL C but for that division, so PoCL runs both passes in the tests. */
static inline float ms_nv_div_rn(const float a, const float b)
{
#if defined(MS_NVIDIA) && MS_NVIDIA
    float r = a; /* "+f": clang's OpenCL mode (make check-kernels) rejects an "=f" output */
    MS_ASM("div.rn.f32 %0, %0, %1;" : "+f"(r) : "f"(b));
    return r;
#else
    return a / b; /* IEEE division on the CPU devices the tests run on */
#endif
}

/* The int8 code of y at scale s (s = 127 / M, |y| <= M): nearest, ties to even, within +-127. */
static inline int ms_nv_code8(const float y, const float s)
{
    return (int)fmin(fmax(rint(y * s), -127.0f), 127.0f);
}

/* The 8 float16 or 4 float32 of a 16-byte piece at p (16-byte aligned) by one load: NVIDIA's
 * compiler splits vector loads of half (docs/kernel-notes.md, portable kernel). */
static inline void ms_nv_piece_f16(MS_GLOBAL const half *p, float *v)
{
    const uint4 w = *(MS_GLOBAL const uint4 *)p;
    for (int i = 0; i < 8; i++)
        v[i] = vload_half(i, (const half *)&w);
}
static inline void ms_nv_piece_f32(MS_GLOBAL const float *p, float *v)
{
    const uint4 w = *(MS_GLOBAL const uint4 *)p;
    v[0] = as_float(w.x);
    v[1] = as_float(w.y);
    v[2] = as_float(w.z);
    v[3] = as_float(w.w);
}

/* Pass 1: work-groups of MS_NV_RED_WG work-items, any number of them (each work-item strides
 * over the block); without normalization over the block's values in 16-byte pieces (the upload
 * starts 16-byte aligned) and the tail one by one, with it a token at a time: the largest |x|
 * times the token's 1 / norm, which is exactly the largest |x / norm| that pass 2 meets
 * (rounding is monotonic). */
#define MS_NV_RED_WG 256
#ifdef MS_NV_CUDA
#define MS_REQD_WG_RED __launch_bounds__(MS_NV_RED_WG)
#define MS_NV_RED_DECL __shared__ float red[MS_NV_RED_WG];
#else
#define MS_REQD_WG_RED __attribute__((reqd_work_group_size(MS_NV_RED_WG, 1, 1)))
#define MS_NV_RED_DECL __local float red[MS_NV_RED_WG];
#endif
#define MS_NV_ABSMAX_BODY(LOAD, NORM, PIECE, PER)                                                 \
    MS_NV_RED_DECL                                                                               \
    const size_t lid = get_local_id(0), stride = get_global_size(0);                            \
    float m = 0.0f;                                                                              \
    if (normalize) {                                                                             \
        for (size_t t = get_global_id(0); t < n_tok; t += stride) {                             \
            const size_t base = t * dim;                                                         \
            float mt = 0.0f;                                                                     \
            for (uint k = 0; k < dim; k++)                                                       \
                mt = fmax(mt, fabs(LOAD(base + k)));                                             \
            m = fmax(m, mt * NORM(src, base, dim));                                              \
        }                                                                                        \
    } else {                                                                                     \
        const size_t n = (size_t)n_tok * dim, pieces = n / (PER);                                \
        float v[PER];                                                                            \
        for (size_t i = get_global_id(0); i < pieces; i += stride) {                            \
            PIECE(src + i * (PER), v);                                                           \
            for (int u = 0; u < (PER); u++)                                                      \
                m = fmax(m, fabs(v[u]));                                                         \
        }                                                                                        \
        for (size_t i = pieces * (PER) + get_global_id(0); i < n; i += stride)                  \
            m = fmax(m, fabs(LOAD(i)));                                                          \
    }                                                                                            \
    red[lid] = m;                                                                                \
    MS_BARRIER();                                                                                \
    for (uint h = MS_NV_RED_WG / 2; h > 0; h >>= 1) {                                            \
        if (lid < h)                                                                             \
            red[lid] = fmax(red[lid], red[lid + h]);                                             \
        MS_BARRIER();                                                                            \
    }                                                                                            \
    if (lid == 0)                                                                                \
        atomic_max(dmax, as_uint(red[0]));

MS_KERNEL MS_REQD_WG_RED void ms_nv_absmax_f32(MS_GLOBAL const float *restrict src,
                                               const uint n_tok, const uint dim,
                                               const int normalize, MS_GLOBAL uint *restrict dmax)
{
    MS_NV_ABSMAX_BODY(MS_NV_LOAD_F32, ms_nv_inv_norm_f32, ms_nv_piece_f32, 4)
}

MS_KERNEL MS_REQD_WG_RED void ms_nv_absmax_f16(MS_GLOBAL const half *restrict src,
                                               const uint n_tok, const uint dim,
                                               const int normalize, MS_GLOBAL uint *restrict dmax)
{
    MS_NV_ABSMAX_BODY(MS_NV_LOAD_F16, ms_nv_inv_norm_f16, ms_nv_piece_f16, 8)
}

/* Pass 2: one work-item per 8 codes (8 bytes of [token][KP] halves), so that neighbouring
 * work-items read neighbouring values, by 16-byte loads where the row allows them (dim a
 * multiple of the piece: 8 float16 or 4 float32); normalized in float32 first if asked (the
 * norm as the other preps take it). Global size >= n_tok * KP / 4. */
#define MS_NV_PREPI8_BODY(LOAD, NORM, PIECE, PER)                                                 \
    const size_t g = get_global_id(0), tok = g / (MS_NV_KP / 4);                                \
    const uint k0 = 8 * (uint)(g % (MS_NV_KP / 4));                                              \
    if (tok >= n_tok)                                                                            \
        return;                                                                                  \
    const size_t base = tok * dim;                                                               \
    const float mx = as_float(dmax[0]);                                                          \
    const float s = mx > 0.0f ? ms_nv_div_rn(127.0f, mx) : 0.0f;                                 \
    const float scale = normalize ? NORM(src, base, dim) : 1.0f;                                 \
    float v[8];                                                                                  \
    if (dim % (PER) == 0 && k0 + 8 <= dim) {                                                     \
        for (int u = 0; u < 8; u += (PER))                                                       \
            PIECE(src + base + k0 + (uint)u, v + u);                                             \
    } else {                                                                                     \
        for (int u = 0; u < 8; u++)                                                              \
            v[u] = k0 + (uint)u < dim ? LOAD(base + k0 + (uint)u) : 0.0f;                        \
    }                                                                                            \
    uint w[2] = { 0u, 0u };                                                                      \
    for (int u = 0; u < 8; u++)                                                                  \
        w[u >> 2] |= ((uint)ms_nv_code8(v[u] * scale, s) & 0xffu) << (8 * (u & 3));             \
    dst[2 * g] = w[0];                                                                           \
    dst[2 * g + 1] = w[1];

MS_KERNEL void ms_nv_prepi8_f32(MS_GLOBAL const float *restrict src, const uint n_tok,
                                const uint dim, const int normalize,
                                MS_GLOBAL const uint *restrict dmax, MS_GLOBAL uint *restrict dst)
{
    MS_NV_PREPI8_BODY(MS_NV_LOAD_F32, ms_nv_inv_norm_f32, ms_nv_piece_f32, 4)
}

MS_KERNEL void ms_nv_prepi8_f16(MS_GLOBAL const half *restrict src, const uint n_tok,
                                const uint dim, const int normalize,
                                MS_GLOBAL const uint *restrict dmax, MS_GLOBAL uint *restrict dst)
{
    MS_NV_PREPI8_BODY(MS_NV_LOAD_F16, ms_nv_inv_norm_f16, ms_nv_piece_f16, 8)
}

#if defined(MS_NVIDIA) && MS_NVIDIA

/* ---- tf32 on the tensor cores ----
 * D += A * B on a 16x8x8 tf32 tile: a k-step of 16 halves of the float16 layout is 8 float32
 * here, and the registers the kernels load for it are the m16n8k8 .tf32 fragments (the
 * MS_NV_TF32_* maps above), so ms_nv_score and ms_nv_stream run unchanged around it. With
 * MS_NV_TF32_CVT the B registers, raw float32 from the documents as uploaded, are rounded here
 * (1: ms_nv_tf32_rna's integer arithmetic, 2: cvt.rna.tf32.f32, the same bits; A was rounded
 * on the host); else they come rounded from ms_nv_prep32_*
 * (or, MAXSIM_NV_TF32=raw, not at all: the PTX ISA does not say what mma makes of the low 13
 * bits of a .tf32 operand). */
static inline void ms_nv_mma_tf32(float *c, const uint *a, uint b0, uint b1)
{
#if MS_NV_TF32_CVT == 1
    /* plain arithmetic: the compiler converts each register once for all MR row blocks */
    b0 = as_uint(ms_nv_tf32_rna(as_float(b0)));
    b1 = as_uint(ms_nv_tf32_rna(as_float(b1)));
#elif MS_NV_TF32_CVT == 2
    /* the instruction (volatile asm: once per mma, MR times per register) */
    MS_ASM("cvt.rna.tf32.f32 %0, %1;" : "=r"(b0) : "f"(as_float(b0)));
    MS_ASM("cvt.rna.tf32.f32 %0, %1;" : "=r"(b1) : "f"(as_float(b1)));
#endif
    MS_ASM("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 "
           "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"
           : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
           : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

/* ---- int8 on the tensor cores ----
 * D += A * B on a 16x8x32 tile of int8 codes into int32: the .s8 fragments of m16n8k32 sit in
 * the registers and byte positions of the e4m3 ones (PTX ISA, "Matrix fragments for
 * mma.m16n8k32": one layout for .s8/.u8/.e4m3/.e5m2), so the f8 loads feed it unchanged. The
 * float accumulator arrays carry the int32 bits (as_uint / as_float are moves): exact, |sum| <=
 * KP * 2 * 127 * 127 < 2^24 for KP <= 512, so even the float conversion at the end is exact. On
 * sm_90 this is IMMA.16832.S8.S8 (native; the e4m3 mma is emulated there: docs/kernel-notes.md). */
static inline void ms_nv_mma_i8(float *c, const uint *a, const uint b0, const uint b1)
{
    uint d0 = as_uint(c[0]), d1 = as_uint(c[1]), d2 = as_uint(c[2]), d3 = as_uint(c[3]);
    MS_ASM("mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 "
           "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"
           : "+r"(d0), "+r"(d1), "+r"(d2), "+r"(d3)
           : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
    c[0] = as_float(d0);
    c[1] = as_float(d1);
    c[2] = as_float(d2);
    c[3] = as_float(d3);
}

/* The running max over document tokens and its start: float maxima, or under MS_NV_I8 the int32
 * products compared as integers (bits in the float arrays) and converted once a document row
 * (MS_NV_ROW_VALUE) rather than once a product: a conversion issues at a quarter of the rate of
 * a max (16 against 64 a clock and multiprocessor on sm_80/90), as many a tile as the IMMA. */
#if MS_NV_I8
#define MS_NV_MAX2(x, y) as_float(max(as_int(x), as_int(y)))
#define MS_NV_NEG as_float(0x80000000u) /* INT_MIN: below any product */
#else
#define MS_NV_MAX2(x, y) fmax((x), (y))
#define MS_NV_NEG (-INFINITY)
#endif

/* What a valid query row adds to its block's sum: its max over the document's tokens; under
 * MS_NV_I8 that max (an integer) times the row's scale rs (the query row's 1 / s_q times the
 * block's 1 / s_d = M / 127: both scales are positive, so they commute with the max). Both
 * kernels take it the same way, so they still give the same bits. */
#if MS_NV_I8
#define MS_NV_ROW_VALUE(v, scale) ((float)as_int(v) * (scale))
#else
#define MS_NV_ROW_VALUE(v, scale) (v)
#endif

/* Under MS_NV_I8, rs[m][h] = the scale of row g + 8h of row block rb0 + m (0 past n_rb):
 * inv_q[row] (the host's 1 / s_q of each query row) times M / 127, M from dmax (pass 1). */
#if MS_NV_I8
#define MS_NV_ROW_SCALES(NM, rb0, n_rb)                                                          \
    float rs[NM][2];                                                                             \
    {                                                                                            \
        const float inv_d = ms_nv_div_rn(as_float(dmax[0]), 127.0f);                             \
        _Pragma("unroll") for (int m = 0; m < (NM); m++)                                         \
        {                                                                                        \
            const uint rb = (rb0) + (uint)m;                                                     \
            rs[m][0] = rb < (n_rb) ? inv_q[(size_t)rb * 16 + g] * inv_d : 0.0f;                 \
            rs[m][1] = rb < (n_rb) ? inv_q[(size_t)rb * 16 + g + 8] * inv_d : 0.0f;             \
        }                                                                                        \
    }
#else
#define MS_NV_ROW_SCALES(NM, rb0, n_rb)
#endif

/* D += A * B on one 16x8x16 tile (MS_NV_F8: 16x8x32 of e4m3 bytes, the same registers and byte
 * positions: a "half" of the layout is then two e4m3 values); c, a: the lane's fragments. */
static inline void ms_nv_mma(float *c, const uint *a, const uint b0, const uint b1)
{
#if MS_NV_TF32
    ms_nv_mma_tf32(c, a, b0, b1);
    return;
#endif
#if MS_NV_I8
    ms_nv_mma_i8(c, a, b0, b1);
    return;
#endif
#if MS_NV_F8
    MS_ASM("mma.sync.aligned.m16n8k32.row.col.f32.e4m3.e4m3.f32 "
#else
    MS_ASM("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
#endif
           "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"
           : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
           : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

#if MS_NV_LDSM
/* Four 8x8 b16 matrices from .shared; lane L supplies the address of row L & 7 of matrix L >> 3. */
static inline void ms_nv_ldsm_x4(uint *r, const uint saddr)
{
    MS_ASM("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];"
           : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
           : "r"(saddr)
           : "memory");
}
#endif

#if MS_NV_CPASYNC
static inline void ms_nv_cp16(const uint saddr, const ulong gaddr)
{
    MS_ASM("cp.async.cg.shared.global [%0], [%1], 16;" : : "r"(saddr), "l"(gaddr) : "memory");
}
static inline void ms_nv_cp_commit(void)
{
    MS_ASM("cp.async.commit_group;" : : : "memory");
}
/* All groups but the newest complete: the chunk about to be used is in __local. */
static inline void ms_nv_cp_wait1(void)
{
    MS_ASM("cp.async.wait_group 1;" : : : "memory");
}
static inline void ms_nv_cp_wait0(void)
{
    MS_ASM("cp.async.wait_group 0;" : : : "memory");
}
#endif

/* The e4m3 conversion is sm_89 PTX: ptxas for sm_80..sm_86 rejects it, and with it the whole
 * program, so the host builds it only where the device has it (-DMS_NV_HAS_F8=1). */
#if MS_NV_HAS_F8
/* Two floats to two e4m3 bytes, rounded to nearest even and saturated to +-448 (lo at the lower
 * address). */
static inline uint ms_nv_e4m3x2(const float lo, const float hi)
{
    uint r;
    MS_ASM("{ .reg .b16 t; cvt.rn.satfinite.e4m3x2.f32 t, %1, %2; cvt.u32.u16 %0, t; }"
           : "=r"(r)
           : "f"(hi), "f"(lo));
    return r;
}

/* Prep for --precision f8: one work-item per pair of values, so that neighbouring work-items read
 * neighbouring values (a work-item per token read 256-byte strides and cost more than the
 * products): element pair g of [n_tok][KP] "halves" = 2 * KP e4m3 bytes, normalized in float32
 * if asked, zeros from dim on. Global size >= n_tok * KP. */
#define MS_NV_PREP8_BODY(LOAD, NORM)                                                              \
    const size_t g = get_global_id(0), tok = g / MS_NV_KP, k = 2 * (g % MS_NV_KP);              \
    if (tok >= n_tok)                                                                            \
        return;                                                                                  \
    const size_t base = tok * dim;                                                               \
    const float scale = normalize ? NORM(src, base, dim) : 1.0f;                                 \
    const float lo = k < dim ? LOAD(base + k) * scale : 0.0f;                                    \
    const float hi = k + 1 < dim ? LOAD(base + k + 1) * scale : 0.0f;                            \
    dst[g] = (ushort)ms_nv_e4m3x2(lo, hi);

MS_KERNEL void ms_nv_prep8_f32(MS_GLOBAL const float *restrict src, const uint n_tok,
                               const uint dim, const int normalize,
                               MS_GLOBAL ushort *restrict dst)
{
    MS_NV_PREP8_BODY(MS_NV_LOAD_F32, ms_nv_inv_norm_f32)
}

MS_KERNEL void ms_nv_prep8_f16(MS_GLOBAL const half *restrict src, const uint n_tok,
                               const uint dim, const int normalize,
                               MS_GLOBAL ushort *restrict dst)
{
    MS_NV_PREP8_BODY(MS_NV_LOAD_F16, ms_nv_inv_norm_f16)
}
#endif

/* Butterfly exchange within the warp; every lane must take part (no divergence here). */
static inline float ms_nv_shfl_xor(const float v, const uint mask)
{
    uint r; /* as bits, as CUDA's __shfl_xor_sync does ("r" is valid for every target) */
    MS_ASM("shfl.sync.bfly.b32 %0, %1, %2, 0x1f, 0xffffffff;"
           : "=r"(r)
           : "r"(as_uint(v)), "r"(mask));
    return as_float(r);
}

/* The running max of a 16x16 product tile (acc, two n8 halves) into mx; columns past `valid`
 * (tokens past the document's end) never count. Full tiles skip the mask (warp-uniform). */
#define MS_NV_MAX_TILE(NM, acc, mx, valid)                                                       \
    if ((valid) >= 16) {                                                                         \
        _Pragma("unroll") for (int m = 0; m < (NM); m++)                                         \
            _Pragma("unroll") for (int r = 0; r < 4; r++)                                        \
                mx[m][r >> 1] = MS_NV_MAX2(mx[m][r >> 1], MS_NV_MAX2(acc[m][0][r], acc[m][1][r])); \
    } else {                                                                                     \
        _Pragma("unroll") for (int n = 0; n < 2; n++)                                            \
            _Pragma("unroll") for (int r = 0; r < 4; r++)                                        \
            {                                                                                    \
                const uint col = (uint)n * 8 + MS_NV_C_COL(lane, r);                             \
                _Pragma("unroll") for (int m = 0; m < (NM); m++)                                 \
                {                                                                                \
                    const float v = col < (valid) ? acc[m][n][r] : MS_NV_NEG;                    \
                    mx[m][r >> 1] = MS_NV_MAX2(mx[m][r >> 1], v);                                \
                }                                                                                \
            }                                                                                    \
    }

/* Stage rows tok0 .. tok0 + nrows - 1 of the documents into buf ([NCH][LDS] halves), 16 bytes
 * per copy, the work-group's 128 threads striding over (row, 16-byte piece). */
static inline void ms_nv_stage(MS_LOCAL_PTR ushort *buf, MS_GLOBAL const ushort *docs,
                               const uint tok0, const uint nrows, const uint lid)
{
    const uint per_row = MS_NV_KP / 8;
    for (uint p = lid; p < nrows * per_row; p += 32 * MS_NV_WARPS) {
        const uint row = p / per_row, piece = p % per_row;
        MS_LOCAL_PTR ushort *d = buf + row * MS_NV_LDS + piece * 8;
        MS_GLOBAL const ushort *s = docs + (size_t)(tok0 + row) * MS_NV_KP + piece * 8;
#if MS_NV_CPASYNC
        ms_nv_cp16(MS_SHARED_ADDR(d), MS_GLOBAL_ADDR(s));
#else
        *(MS_LOCAL_PTR uint4 *)d = *(MS_GLOBAL const uint4 *)s;
#endif
    }
#if MS_NV_CPASYNC
    ms_nv_cp_commit();
#endif
}

/* The next (document, chunk) after (*j, *c) that has tokens, *j == j_end when none. */
static inline void ms_nv_next(uint *j, uint *c, const uint j_end, MS_GLOBAL const uint *doc_len)
{
    if (*j < j_end && (*c + 1) * MS_NV_NCH < doc_len[*j]) {
        (*c)++;
        return;
    }
    *c = 0;
    for ((*j)++; *j < j_end && doc_len[*j] == 0; (*j)++)
        ;
}

#if MS_NV_RING
#define MS_NV_SLOTS MS_NV_RING
#else
#define MS_NV_SLOTS 2
#endif

#if MS_NV_CPASYNC && MS_NV_RING
/* Ring: all groups but the newest RING - 2 are complete, so the chunk about to be scored is in
 * __local (one group a chunk; wait_group takes an immediate). */
static inline void ms_nv_cp_wait_chunk(void)
{
#if MS_NV_RING == 2
    ms_nv_cp_wait0();
#elif MS_NV_RING == 3
    ms_nv_cp_wait1();
#else
    MS_ASM("cp.async.wait_group 2;" : : : "memory");
#endif
}
#endif

/* The B fragments of 16-token column tile `tile` of a staged chunk at k-step ks: {b0, b1} of
 * its first n8 tile, then of its second. */
static inline void ms_nv_load_b(uint *b, MS_LOCAL_PTR const ushort *buf, const uint tile,
                                const int ks, const uint lane)
{
#if MS_NV_LDSM
    ms_nv_ldsm_x4(b, MS_SHARED_ADDR(buf + (tile * 16 + MS_NV_LDSM_TOK(lane)) * MS_NV_LDS +
                                    ks * 16 + MS_NV_LDSM_K(lane)));
#else
#pragma unroll
    for (int q = 0; q < 4; q++)
        b[q] = *(MS_LOCAL_PTR const uint *)(buf + (tile * 16 + MS_NV_B_TOK(lane, q)) * MS_NV_LDS +
                                            ks * 16 + MS_NV_B_K(lane, q));
#endif
}

/* One step of ms_nv_score: column tiles t .. t + NTL - 1 of the chunk in buf (the last of them
 * starts before `valid`) against the warp's MR row blocks, into the running max mx. Every
 * accumulator takes its k-steps in order 0, 1, ... and the tiles reach mx in column order, so
 * NTL changes no bit. */
#define MS_NV_SCORE_STEP(NTL)                                                                    \
    {                                                                                            \
        float acc[NTL][MS_NV_MR][2][4];                                                          \
        _Pragma("unroll") for (int u = 0; u < (NTL); u++)                                        \
            _Pragma("unroll") for (int m = 0; m < MS_NV_MR; m++)                                 \
                _Pragma("unroll") for (int n = 0; n < 2; n++)                                    \
                    _Pragma("unroll") for (int r = 0; r < 4; r++) acc[u][m][n][r] = 0.0f;        \
        _Pragma("unroll") for (int ks = 0; ks < MS_NV_KS; ks++)                                  \
            _Pragma("unroll") for (int u = 0; u < (NTL); u++)                                    \
            {                                                                                    \
                uint b[4];                                                                       \
                ms_nv_load_b(b, buf, t + (uint)u, ks, lane);                                     \
                _Pragma("unroll") for (int m = 0; m < MS_NV_MR; m++)                             \
                {                                                                                \
                    ms_nv_mma(acc[u][m][0], a[m][ks], b[0], b[1]);                               \
                    ms_nv_mma(acc[u][m][1], a[m][ks], b[2], b[3]);                               \
                }                                                                                \
            }                                                                                    \
        _Pragma("unroll") for (int u = 0; u < (NTL); u++)                                        \
        {                                                                                        \
            /* Tokens past the document's end (stale __local rows) never win the max. */        \
            const uint sub_valid = valid - (t + (uint)u) * 16;                                   \
            MS_NV_MAX_TILE(MS_NV_MR, acc[u], mx, sub_valid)                                      \
        }                                                                                        \
    }

/*
 * Score: see the top of the file. Global size (n_wg * 32 * WARPS, n_row_tiles), local
 * (32 * WARPS, 1); with RTFAST the two grid dimensions are swapped.
 *   docs       [tokens][KP] float16 bits; document j is tokens doc_tok[j] .. + doc_len[j] - 1
 *   queries    [n_rb * 16][KP] float16 bits; rb_nvalid[rb] valid rows in row block rb
 *   part       [n_rb][n_docs]: sum over the valid rows of rb of their max over document j
 *   inv_q, dmax  MS_NV_I8 only (set always): [n_rb * 16] the query rows' 1 / s_q, and M (the
 *              float bits written by ms_nv_absmax_*); the row maxima are scaled by them
 * Work-group x scores documents x * docs_per_wg .. + docs_per_wg - 1.
 * Chunks go through MS_NV_SLOTS slots of __local: RING = 0, a double buffer (the next chunk's
 * copies issued, wait for the current one, barrier, compute, barrier); RING >= 2, a ring with
 * one barrier a chunk (wait for the current chunk, barrier, refill the slot of the chunk before,
 * which every warp has left by then, compute). Either way every chunk of the run is staged and
 * scored in the same order, so the variants give the same bits.
 */
MS_KERNEL MS_REQD_WG void
ms_nv_score(MS_GLOBAL const ushort *restrict docs, MS_GLOBAL const uint *restrict doc_tok,
            MS_GLOBAL const uint *restrict doc_len, const uint n_docs, const uint docs_per_wg,
            MS_GLOBAL const ushort *restrict queries, MS_GLOBAL const uint *restrict rb_nvalid,
            const uint n_rb, MS_GLOBAL float *restrict part, MS_GLOBAL const float *restrict inv_q,
            MS_GLOBAL const uint *restrict dmax)
{
#ifdef MS_NV_CUDA
    __shared__ __align__(16) ushort sbuf[MS_NV_SLOTS][MS_NV_NCH * MS_NV_LDS];
    __shared__ float red[MS_NV_WARPS][MS_NV_MR * 16];
#else
    __local ushort sbuf[MS_NV_SLOTS][MS_NV_NCH * MS_NV_LDS] __attribute__((aligned(16)));
    __local float red[MS_NV_WARPS][MS_NV_MR * 16];
#endif
    const uint lid = (uint)get_local_id(0), lane = lid & 31, warp = lid >> 5;
    const uint wr = warp / MS_NV_WC, wc = warp % MS_NV_WC;
#if MS_NV_RTFAST
    const uint row_tile = (uint)get_group_id(0), run = (uint)get_group_id(1);
#else
    const uint row_tile = (uint)get_group_id(1), run = (uint)get_group_id(0);
#endif
    const uint rb0 = row_tile * (MS_NV_WR * MS_NV_MR) + wr * MS_NV_MR;
    const uint j_begin = run * docs_per_wg;
    const uint j_end = min(n_docs, j_begin + docs_per_wg);
    const uint g = MS_NV_G(lane);

    /* A fragments of this warp's row blocks, for every k-step: loaded once for the whole run of
     * documents. Row blocks past n_rb get zeros (their mma results are never written). */
    uint a[MS_NV_MR][MS_NV_KS][4];
    uint nvalid[MS_NV_MR];
#pragma unroll
    for (int m = 0; m < MS_NV_MR; m++) {
        const uint rb = rb0 + (uint)m;
        nvalid[m] = rb < n_rb ? rb_nvalid[rb] : 0;
#pragma unroll
        for (int ks = 0; ks < MS_NV_KS; ks++)
#pragma unroll
            for (int r = 0; r < 4; r++) {
                const size_t off = ((size_t)rb * 16 + MS_NV_A_ROW(lane, r)) * MS_NV_KP +
                                   (size_t)(ks * 16 + MS_NV_A_COL(lane, r));
                a[m][ks][r] = rb < n_rb ? *(MS_GLOBAL const uint *)(queries + off) : 0u;
            }
    }
    MS_NV_ROW_SCALES(MS_NV_MR, rb0, n_rb)
    if (j_begin >= j_end)
        return; /* the whole work-group: no barrier is left behind */

    /* The first chunk that has tokens. */
    uint pj = j_begin, pc = 0;
    while (pj < j_end && doc_len[pj] == 0)
        pj++;
#if MS_NV_RING
    /* Prologue: the first RING - 1 chunks in flight, one commit group each (empty groups past
     * the run's last chunk); (pj, pc) is then the next chunk to stage. */
#pragma unroll
    for (int i = 0; i < MS_NV_RING - 1; i++) {
        if (pj < j_end) {
            ms_nv_stage(sbuf[i], docs, doc_tok[pj] + pc * MS_NV_NCH,
                        min((uint)MS_NV_NCH, doc_len[pj] - pc * MS_NV_NCH), lid);
            ms_nv_next(&pj, &pc, j_end, doc_len);
        }
#if MS_NV_CPASYNC
        else
            ms_nv_cp_commit();
#endif
    }
#else
    if (pj < j_end)
        ms_nv_stage(sbuf[0], docs, doc_tok[pj], min((uint)MS_NV_NCH, doc_len[pj]), lid);
#if MS_NV_CPASYNC
    else
        ms_nv_cp_commit();
#endif
#endif
    uint cur = 0;

    for (uint j = j_begin; j < j_end; j++) {
        const uint len = doc_len[j];
        /* Running max of rows g (h = 0) and g + 8 (h = 1) of each row block, over the columns
         * this lane holds. */
        float mx[MS_NV_MR][2];
#pragma unroll
        for (int m = 0; m < MS_NV_MR; m++)
            mx[m][0] = mx[m][1] = MS_NV_NEG;

        for (uint c = 0; c * MS_NV_NCH < len; c++) {
#if MS_NV_RING
            /* Invariant: chunk (j, c) is in flight into sbuf[cur], RING - 2 newer ones behind. */
#if MS_NV_CPASYNC
            ms_nv_cp_wait_chunk();
#endif
            MS_BARRIER(); /* chunk (j, c) is in; every warp has left the previous chunk's slot */
            {
                const uint fill = MS_NV_RING_FILL(cur, MS_NV_RING);
                if (pj < j_end) {
                    ms_nv_stage(sbuf[fill], docs, doc_tok[pj] + pc * MS_NV_NCH,
                                min((uint)MS_NV_NCH, doc_len[pj] - pc * MS_NV_NCH), lid);
                    ms_nv_next(&pj, &pc, j_end, doc_len);
                }
#if MS_NV_CPASYNC
                else
                    ms_nv_cp_commit(); /* keeps one group a chunk for the wait above */
#endif
            }
#else
            /* Invariant: chunk (j, c) is in flight into sbuf[cur]; start the next one. */
            ms_nv_next(&pj, &pc, j_end, doc_len);
            if (pj < j_end)
                ms_nv_stage(sbuf[cur ^ 1], docs, doc_tok[pj] + pc * MS_NV_NCH,
                            min((uint)MS_NV_NCH, doc_len[pj] - pc * MS_NV_NCH), lid);
#if MS_NV_CPASYNC
            else
                ms_nv_cp_commit(); /* an empty group keeps wait_group 1 meaning "chunk c" */
            ms_nv_cp_wait1();
#endif
            MS_BARRIER();
#endif

            const uint valid = min((uint)MS_NV_NCH, len - c * MS_NV_NCH);
            MS_LOCAL_PTR const ushort *buf = sbuf[cur];
            /* Warp column wc takes the steps of NT tiles wc, wc + WC, ... (warp-uniform). */
            for (uint t = MS_NV_STEP0(wc, MS_NV_NT); t * 16 < valid;
                 t += MS_NV_STEP_STRIDE(MS_NV_WC, MS_NV_NT)) {
#if MS_NV_NT == 2
                if ((t + 1) * 16 < valid) {
                    MS_NV_SCORE_STEP(2)
                    continue;
                }
#endif
                MS_NV_SCORE_STEP(1)
            }
#if MS_NV_RING
            cur = MS_NV_RING_NEXT(cur, MS_NV_RING);
#else
            MS_BARRIER(); /* sbuf[cur] is read; the next iteration refills it */
            cur ^= 1;
#endif
        }

        /* The row's max over the 4 lanes that hold its columns. */
#pragma unroll
        for (int m = 0; m < MS_NV_MR; m++)
#pragma unroll
            for (int h = 0; h < 2; h++) {
                mx[m][h] = MS_NV_MAX2(mx[m][h], ms_nv_shfl_xor(mx[m][h], 1));
                mx[m][h] = MS_NV_MAX2(mx[m][h], ms_nv_shfl_xor(mx[m][h], 2));
            }
#if MS_NV_WC > 1
        /* Warps that split the columns combine their maxima (order-free: max is exact). */
        if (MS_NV_T(lane) == 0) {
#pragma unroll
            for (int m = 0; m < MS_NV_MR; m++) {
                red[warp][m * 16 + g] = mx[m][0];
                red[warp][m * 16 + g + 8] = mx[m][1];
            }
        }
        MS_BARRIER();
        if (wc == 0) {
#pragma unroll
            for (int w = 1; w < MS_NV_WC; w++) {
#pragma unroll
                for (int m = 0; m < MS_NV_MR; m++) {
                    mx[m][0] = MS_NV_MAX2(mx[m][0], red[warp + w][m * 16 + g]);
                    mx[m][1] = MS_NV_MAX2(mx[m][1], red[warp + w][m * 16 + g + 8]);
                }
            }
        }
        MS_BARRIER(); /* red is read before the next document writes it */
#endif
        if (wc == 0) { /* warp-uniform */
#pragma unroll
            for (int m = 0; m < MS_NV_MR; m++) {
                /* Rows past the query's tokens count 0; an empty document scores 0. */
                float x = 0.0f;
                if (len > 0) {
                    x = g < nvalid[m] ? MS_NV_ROW_VALUE(mx[m][0], rs[m][0]) : 0.0f;
                    x += g + 8 < nvalid[m] ? MS_NV_ROW_VALUE(mx[m][1], rs[m][1]) : 0.0f;
                }
                /* Sum over the 8 row pairs: a fixed butterfly, the same order every time. */
                x += ms_nv_shfl_xor(x, 4);
                x += ms_nv_shfl_xor(x, 8);
                x += ms_nv_shfl_xor(x, 16);
                const uint rb = rb0 + (uint)m;
                if (lane == 0 && rb < n_rb)
                    part[(size_t)rb * n_docs + j] = x;
            }
        }
    }
#if MS_NV_CPASYNC
    ms_nv_cp_wait0(); /* nothing may still be writing __local when the work-group ends */
#endif
}

/* Wait until every lane's cp.async of the warp has landed and is visible to the whole warp (and,
 * before a slot is refilled, until every lane has read it): bar.warp.sync orders the warp's
 * shared-memory accesses, as CUDA's __syncwarp does. */
static inline void ms_nv_warp_sync(void)
{
    MS_ASM("bar.warp.sync 0xffffffff;" : : : "memory");
}

#if MS_NV_CPASYNC
/* All groups but the newest SS - 1 are complete: the tile about to be used is in __local. */
#define MS_NV_STR2(x) #x
#define MS_NV_STR(x) MS_NV_STR2(x)
#if MS_NV_SS == 2
#define MS_NV_SS_M1 1
#elif MS_NV_SS == 3
#define MS_NV_SS_M1 2
#elif MS_NV_SS == 4
#define MS_NV_SS_M1 3
#elif MS_NV_SS == 5
#define MS_NV_SS_M1 4
#elif MS_NV_SS == 6
#define MS_NV_SS_M1 5
#elif MS_NV_SS == 7
#define MS_NV_SS_M1 6
#else
#define MS_NV_SS_M1 7
#endif
static inline void ms_nv_cp_wait_ring(void)
{
    /* a literal in the text: wait_group takes an immediate */
    MS_ASM("cp.async.wait_group " MS_NV_STR(MS_NV_SS_M1) ";" : : : "memory");
}
#endif

/* Stage ST tokens of one document into a warp's ring slot ([ST][LDS] halves): token tok0 + r
 * for r < ST, clamped to the document's last token (the copies past its end are masked out by
 * the caller, and the clamp keeps every address inside the buffer). One commit group. */
static inline void ms_nv_stage_tile(MS_LOCAL_PTR ushort *slot, MS_GLOBAL const ushort *docs,
                                    const uint first, const uint tok0, const uint len,
                                    const uint lane)
{
    const uint per_row = MS_NV_KP / 8;
#pragma unroll 4
    for (uint p = lane; p < MS_NV_ST * per_row; p += 32) {
        const uint row = p / per_row, piece = p % per_row;
        const uint tok = min(tok0 + row, len - 1);
        MS_LOCAL_PTR ushort *d = slot + row * MS_NV_LDS + piece * 8;
        MS_GLOBAL const ushort *src = docs + (size_t)(first + tok) * MS_NV_KP + piece * 8;
#if MS_NV_CPASYNC
        ms_nv_cp16(MS_SHARED_ADDR(d), MS_GLOBAL_ADDR(src));
#else
        *(MS_LOCAL_PTR uint4 *)d = *(MS_GLOBAL const uint4 *)src;
#endif
    }
#if MS_NV_CPASYNC
    ms_nv_cp_commit();
#endif
}

/* The next (document, ST-token tile) after (*j, *t) for a warp whose documents are j, j + stride,
 * ... and whose tiles of each are t0, t0 + TSTEP, ...; *j >= n_docs when none is left. */
static inline void ms_nv_next_tile(uint *j, uint *t, const uint t0, const uint stride,
                                   const uint n_docs, MS_GLOBAL const uint *doc_len)
{
    if (*j < n_docs && (*t + MS_NV_TSTEP) * MS_NV_ST < doc_len[*j]) {
        *t += MS_NV_TSTEP;
        return;
    }
    *t = t0;
    for (*j += stride; *j < n_docs && doc_len[*j] <= t0 * MS_NV_ST; *j += stride)
        ;
}

/*
 * Stream: few queries, memory-bound (one query of up to SMR row blocks against many documents).
 * Each warp works alone: it holds the A fragments of one whole query (work-group dimension 1 is
 * the query) and streams its documents (j = its warp index, then every warp_stride-th) through a
 * private ring of SS slots of ST tokens in __local, filled by cp.async SS - 1 slots ahead across
 * document boundaries, so that each warp keeps several KiB of loads in flight with no
 * work-group barrier at all. B fragments come from the ring by ldmatrix.x4 and the products by
 * the same mma as ms_nv_score, in the same k order; the row maxima and the fixed butterfly sums
 * are those of ms_nv_score, and the row blocks' sums are added in order as ms_nv_sum adds them,
 * so both kernels give the same bits. The score goes straight to out[q][j]: one launch, no
 * partial sums.
 *   docs, doc_tok, doc_len, n_docs   as for ms_nv_score
 *   warp_stride                      warps in grid dimension 0 (the document stride)
 *   queries, rb_nvalid               the group's row blocks; q_blk[q] .. q_blk[q+1]-1 are query
 *                                    q's (at most SMR of them: the host checks)
 *   out                              [n_q][n_docs] float32
 *   inv_q, dmax                      as for ms_nv_score (MS_NV_I8 only)
 * Global size (warp_stride / SW * 32 * SW, n_q), local (32 * SW, 1).
 */
MS_KERNEL MS_REQD_WG_STREAM void
ms_nv_stream(MS_GLOBAL const ushort *restrict docs, MS_GLOBAL const uint *restrict doc_tok,
             MS_GLOBAL const uint *restrict doc_len, const uint n_docs, const uint warp_stride,
             MS_GLOBAL const ushort *restrict queries, MS_GLOBAL const uint *restrict rb_nvalid,
             MS_GLOBAL const uint *restrict q_blk, MS_GLOBAL float *restrict out,
             MS_GLOBAL const float *restrict inv_q, MS_GLOBAL const uint *restrict dmax)
{
#ifdef MS_NV_CUDA
    __shared__ __align__(16) ushort ring[MS_NV_SW][MS_NV_SS][MS_NV_ST * MS_NV_LDS];
#else
    __local ushort ring[MS_NV_SW][MS_NV_SS][MS_NV_ST * MS_NV_LDS] __attribute__((aligned(16)));
#endif
#if MS_NV_SPLIT
#ifdef MS_NV_CUDA
    __shared__ float red[2][MS_NV_SW][MS_NV_SMR][16];
#else
    __local float red[2][MS_NV_SW][MS_NV_SMR][16];
#endif
    uint parity = 0;
#endif
    const uint lid = (uint)get_local_id(0), lane = lid & 31, warp = lid >> 5;
    const uint q = (uint)get_group_id(1);
    const uint rb0 = q_blk[q], nrb = q_blk[q + 1] - rb0;
#if MS_NV_SPLIT
    const uint j_first = (uint)get_group_id(0), t0 = warp; /* the whole work-group: uniform */
#else
    const uint j_first = (uint)get_group_id(0) * MS_NV_SW + warp, t0 = 0;
#endif
    const uint g = MS_NV_G(lane);

    if (j_first >= n_docs)
        return; /* this warp only: the kernel has no work-group barrier */
    uint a[MS_NV_SMR][MS_NV_KS][4];
    uint nvalid[MS_NV_SMR];
#pragma unroll
    for (int m = 0; m < MS_NV_SMR; m++) {
        const uint rb = rb0 + (uint)m;
        nvalid[m] = (uint)m < nrb ? rb_nvalid[rb] : 0;
#pragma unroll
        for (int ks = 0; ks < MS_NV_KS; ks++)
#pragma unroll
            for (int r = 0; r < 4; r++) {
                const size_t off = ((size_t)rb * 16 + MS_NV_A_ROW(lane, r)) * MS_NV_KP +
                                   (size_t)(ks * 16 + MS_NV_A_COL(lane, r));
                a[m][ks][r] = (uint)m < nrb ? *(MS_GLOBAL const uint *)(queries + off) : 0u;
            }
    }
    MS_NV_ROW_SCALES(MS_NV_SMR, rb0, rb0 + nrb)

    MS_LOCAL_PTR ushort *myring = ring[warp][0];
    /* Prologue: slots 0 .. SS-2 in flight (empty groups past the last document). */
    uint pj = j_first, pt = t0;
    while (pj < n_docs && doc_len[pj] <= t0 * MS_NV_ST)
        pj += warp_stride;
    uint slot = 0; /* ring slot of the next tile to stage */
#pragma unroll
    for (int i = 0; i < MS_NV_SS - 1; i++) {
        if (pj < n_docs) {
            ms_nv_stage_tile(myring + slot * MS_NV_ST * MS_NV_LDS, docs, doc_tok[pj],
                             pt * MS_NV_ST, doc_len[pj], lane);
            ms_nv_next_tile(&pj, &pt, t0, warp_stride, n_docs, doc_len);
        }
#if MS_NV_CPASYNC
        else
            ms_nv_cp_commit();
#endif
        slot = slot + 1 == MS_NV_SS ? 0 : slot + 1;
    }
    uint cur = 0; /* ring slot of the tile being scored */

    for (uint j = j_first; j < n_docs; j += warp_stride) {
        const uint len = doc_len[j];
        float mx[MS_NV_SMR][2];
#pragma unroll
        for (int m = 0; m < MS_NV_SMR; m++)
            mx[m][0] = mx[m][1] = MS_NV_NEG;

        for (uint t = t0; t * MS_NV_ST < len; t += MS_NV_TSTEP) {
            ms_nv_warp_sync(); /* every lane has read the slot refilled now */
            if (pj < n_docs) {
                ms_nv_stage_tile(myring + slot * MS_NV_ST * MS_NV_LDS, docs, doc_tok[pj],
                                 pt * MS_NV_ST, doc_len[pj], lane);
                ms_nv_next_tile(&pj, &pt, t0, warp_stride, n_docs, doc_len);
            }
#if MS_NV_CPASYNC
            else
                ms_nv_cp_commit(); /* keeps "SS - 1 newer groups" meaning "tile t is in" */
            ms_nv_cp_wait_ring();
#endif
            ms_nv_warp_sync();
            slot = slot + 1 == MS_NV_SS ? 0 : slot + 1;

            const uint valid = min((uint)MS_NV_ST, len - t * MS_NV_ST);
            MS_LOCAL_PTR const ushort *tbuf = myring + cur * MS_NV_ST * MS_NV_LDS;
            for (uint u = 0; u * 16 < valid; u++) { /* warp-uniform */
                MS_LOCAL_PTR const ushort *buf = tbuf + u * 16 * MS_NV_LDS;
                float acc[MS_NV_SMR][2][4];
#pragma unroll
                for (int m = 0; m < MS_NV_SMR; m++)
#pragma unroll
                    for (int n = 0; n < 2; n++)
#pragma unroll
                        for (int r = 0; r < 4; r++)
                            acc[m][n][r] = 0.0f;
#pragma unroll
                for (int ks = 0; ks < MS_NV_KS; ks++) {
                    uint b[4];
#if MS_NV_LDSM
                    ms_nv_ldsm_x4(b, MS_SHARED_ADDR(buf + MS_NV_LDSM_TOK(lane) * MS_NV_LDS +
                                                    ks * 16 + MS_NV_LDSM_K(lane)));
#else
#pragma unroll
                    for (int qq = 0; qq < 4; qq++)
                        b[qq] = *(MS_LOCAL_PTR const uint *)(buf +
                                                             MS_NV_B_TOK(lane, qq) * MS_NV_LDS +
                                                             ks * 16 + MS_NV_B_K(lane, qq));
#endif
#pragma unroll
                    for (int m = 0; m < MS_NV_SMR; m++)
                        if ((uint)m < nrb) { /* warp-uniform */
                            ms_nv_mma(acc[m][0], a[m][ks], b[0], b[1]);
                            ms_nv_mma(acc[m][1], a[m][ks], b[2], b[3]);
                        }
                }
                const uint sub_valid = valid - u * 16;
                MS_NV_MAX_TILE(MS_NV_SMR, acc, mx, sub_valid)
            }
            cur = cur + 1 == MS_NV_SS ? 0 : cur + 1;
        }

        /* As ms_nv_score and ms_nv_sum: row max over the 4 lanes of a row, the 16 rows' sum by
         * the same butterfly, then the row blocks added in order starting from 0. */
        float score = 0.0f;
#pragma unroll
        for (int m = 0; m < MS_NV_SMR; m++)
#pragma unroll
            for (int h = 0; h < 2; h++) {
                mx[m][h] = MS_NV_MAX2(mx[m][h], ms_nv_shfl_xor(mx[m][h], 1));
                mx[m][h] = MS_NV_MAX2(mx[m][h], ms_nv_shfl_xor(mx[m][h], 2));
            }
#if MS_NV_SPLIT
        /* The warps' maxima of each row meet (max is exact: any order gives the same bits);
         * red alternates between two buffers, so one barrier a document suffices. */
        if (MS_NV_T(lane) == 0) {
#pragma unroll
            for (int m = 0; m < MS_NV_SMR; m++) {
                red[parity][warp][m][g] = mx[m][0];
                red[parity][warp][m][g + 8] = mx[m][1];
            }
        }
        MS_BARRIER();
#pragma unroll
        for (int w = 0; w < MS_NV_SW; w++)
#pragma unroll
            for (int m = 0; m < MS_NV_SMR; m++) {
                mx[m][0] = MS_NV_MAX2(mx[m][0], red[parity][w][m][g]);
                mx[m][1] = MS_NV_MAX2(mx[m][1], red[parity][w][m][g + 8]);
            }
        parity ^= 1;
#endif
#pragma unroll
        for (int m = 0; m < MS_NV_SMR; m++) {
            float x = 0.0f;
            if (len > 0) {
                x = g < nvalid[m] ? MS_NV_ROW_VALUE(mx[m][0], rs[m][0]) : 0.0f;
                x += g + 8 < nvalid[m] ? MS_NV_ROW_VALUE(mx[m][1], rs[m][1]) : 0.0f;
            }
            x += ms_nv_shfl_xor(x, 4);
            x += ms_nv_shfl_xor(x, 8);
            x += ms_nv_shfl_xor(x, 16);
            if ((uint)m < nrb)
                score += x;
        }
#if MS_NV_SPLIT
        if (lane == 0 && warp == 0)
#else
        if (lane == 0)
#endif
            out[(size_t)q * n_docs + j] = score;
    }
#if MS_NV_CPASYNC
    ms_nv_cp_wait0(); /* nothing may still be writing __local when the warp ends */
#endif
}

#endif /* MS_NVIDIA */
#endif /* MS_NV_INDEX_ONLY */
