/*
 * test_nv_layout.c - the fragment lane mappings of kernels/maxsim_nv.cl, checked on the CPU.
 *
 * Nothing here needs a GPU. The kernel's index macros (MS_NV_A_ROW, MS_NV_LDSM_TOK, ...) come
 * from the .cl file itself (MS_NV_INDEX_ONLY); the instructions they feed are modelled from the
 * PTX ISA's own description, written out independently below ("isa_*"): which lane holds which
 * element of the A, B and C/D fragments of mma.m16n8k16 (f16 inputs, f32 accumulators), and
 * what ldmatrix.x4 gives each lane from the row addresses the lanes supply. A warp is then
 * emulated lane by lane doing what ms_nv_score does (A fragments from global memory, B by
 * ldmatrix from a padded __local tile or by the plain-load fallback, mma over the k-steps, the
 * -INFINITY mask, the shfl.sync max over a row's 4 lanes and the butterfly sum over the 16
 * rows) and compared with a plain matrix product and a plain MaxSim. The same loads feeding
 * mma.m16n8k8 with .tf32 operands (--precision tf32: rows of float32 counted in halves) are
 * checked against that instruction's own ISA layouts, and so are the same loads feeding
 * mma.m16n8k32 with .s8 operands (--precision int8: two codes a half), and register orders of
 * a wrong reading are shown to fail. A layout bug in the
 * kernel's index arithmetic shows here; a misreading of the ISA shared by both sides would not,
 * which is why scripts/gpu-check must still run on the H100. kernels/index.cl's
 * index_assign_nv (nearest centroid: A = points, B = centroids, a top-2 per row joined over a
 * row's 4 lanes) is emulated the same way, with the kernel's own ix_top2_* functions, and so is
 * index_assign_nv_tiled (the centroids staged in a padded __local tile, several m- and n-tiles a
 * warp, the filtered top-2 of ix_top2_take_run).
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MS_NV_INDEX_ONLY 1
#include "../kernels/maxsim_nv.cl"
#define PL_NV_INDEX_ONLY 1
#include "../kernels/plaid.cl"
#define IX_NV_INDEX_ONLY 1
#include "../kernels/index.cl"
#include "testutil.h"

#define KPT  48        /* k columns of the emulated tile: three k-steps */
#define LDST (KPT + 8) /* the kernel's padded __local row stride */

/* ---- The PTX ISA's fragment layouts for mma.m16n8k16, .f16 A/B, .f32 C/D ---- */
/* A: 8 halves a0..a7 per lane in 4 .b32 registers, a_i in register i / 2 (low half first). */
static void isa_a(int lane, int i, int *row, int *col)
{
    const int gid = lane >> 2, tig = lane % 4;
    *row = (i < 2 || (i >= 4 && i < 6)) ? gid : gid + 8;
    *col = tig * 2 + (i & 1) + (i >= 4 ? 8 : 0);
}
/* B: 4 halves b0..b3 in 2 registers. */
static void isa_b(int lane, int i, int *row, int *col)
{
    const int gid = lane >> 2, tig = lane % 4;
    *row = tig * 2 + (i & 1) + (i >= 2 ? 8 : 0);
    *col = gid;
}
/* C/D: 4 floats c0..c3. */
static void isa_c(int lane, int i, int *row, int *col)
{
    const int gid = lane >> 2, tig = lane % 4;
    *row = i < 2 ? gid : gid + 8;
    *col = tig * 2 + (i & 1);
}

/* The emulated warp's registers hold values, not bits: halves are small integers or
 * float16-exact floats, so float arithmetic on them is what the tensor cores compute. */
struct frag_a {
    float h[32][8];
};
struct frag_b {
    float h[32][4];
};
struct frag_c {
    float v[32][4];
};

/* An ISA fragment model must place every element of an operand exactly once: seen[r * cols + c]
 * counts the lanes and registers that held element (r, c) of operand `what`. */
static void assert_each_once(const int *seen, int rows, int cols, const char *what)
{
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++)
            cr_assert_eq(seen[r * cols + c], 1, "ISA model: %s[%d][%d] held %d times", what, r, c,
                         seen[r * cols + c]);
}

/* mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32, D = A * B + C, per the ISA layouts
 * (accumulated in double: exact for the integer data, within rounding otherwise). */
static void isa_mma(struct frag_c *d, const struct frag_a *a, const struct frag_b *b)
{
    float am[16][16], bm[16][8];
    int seen_a[16][16] = { { 0 } }, seen_b[16][8] = { { 0 } };
    for (int l = 0; l < 32; l++) {
        for (int i = 0; i < 8; i++) {
            int r, c;
            isa_a(l, i, &r, &c);
            am[r][c] = a->h[l][i];
            seen_a[r][c]++;
        }
        for (int i = 0; i < 4; i++) {
            int r, c;
            isa_b(l, i, &r, &c);
            bm[r][c] = b->h[l][i];
            seen_b[r][c]++;
        }
    }
    assert_each_once(&seen_a[0][0], 16, 16, "A");
    assert_each_once(&seen_b[0][0], 16, 8, "B");
    for (int l = 0; l < 32; l++)
        for (int i = 0; i < 4; i++) {
            int r, c;
            double s = d->v[l][i];
            isa_c(l, i, &r, &c);
            for (int k = 0; k < 16; k++)
                s += (double)am[r][k] * bm[k][c];
            d->v[l][i] = (float)s;
        }
}

/* ldmatrix.sync.aligned.m8n8.x4.shared.b16: lane 8m + i supplies the address of row i of
 * matrix m (8 consecutive b16); destination register m of lane L receives row L / 4, elements
 * 2 (L % 4) and 2 (L % 4) + 1 of matrix m. `mem` is the __local tile, addresses in halves. */
static void isa_ldsm_x4(float out[32][4][2], const float *mem, const int addr[32])
{
    for (int l = 0; l < 32; l++)
        for (int m = 0; m < 4; m++) {
            const int src = 8 * m + l / 4; /* the lane that gave row l / 4 of matrix m */
            out[l][m][0] = mem[addr[src] + 2 * (l % 4)];
            out[l][m][1] = mem[addr[src] + 2 * (l % 4) + 1];
        }
}

static float rnd_val(int exact)
{
    if (exact)
        return (float)(rand() % 33 - 16);
    /* float16-exact: 11 significant bits */
    return (float)ldexp((double)(rand() % 2048 - 1024), -10);
}

/* One 16-row query block against 16 document tokens (a [16][LDST] __local tile), k = KPT:
 * the kernel's A, B (ldmatrix and fallback) and C index maps against Q * D^T. */
static void check_tile(int exact)
{
    float q[16][KPT], tile[16 * LDST], ref[16][16];
    struct frag_c acc[2];
    memset(acc, 0, sizeof acc);
    for (int i = 0; i < 16 * LDST; i++)
        tile[i] = NAN; /* the padding columns must never be read */
    for (int r = 0; r < 16; r++)
        for (int k = 0; k < KPT; k++)
            q[r][k] = rnd_val(exact);
    for (int t = 0; t < 16; t++)
        for (int k = 0; k < KPT; k++)
            tile[t * LDST + k] = rnd_val(exact);
    for (int r = 0; r < 16; r++)
        for (int t = 0; t < 16; t++) {
            double s = 0.0;
            for (int k = 0; k < KPT; k++)
                s += (double)q[r][k] * tile[t * LDST + k];
            ref[r][t] = (float)s;
        }
    for (int ks = 0; ks < KPT / 16; ks++) {
        struct frag_a a;
        struct frag_b b[2];
        float ld[32][4][2];
        int addr[32];
        /* A as ms_nv_score loads it: register r = the two halves at (A_ROW, A_COL). */
        for (int l = 0; l < 32; l++)
            for (int r = 0; r < 4; r++) {
                a.h[l][2 * r] = q[MS_NV_A_ROW(l, r)][ks * 16 + MS_NV_A_COL(l, r)];
                a.h[l][2 * r + 1] = q[MS_NV_A_ROW(l, r)][ks * 16 + MS_NV_A_COL(l, r) + 1];
            }
        /* B by ldmatrix.x4 from the addresses the kernel computes. */
        for (int l = 0; l < 32; l++)
            addr[l] = MS_NV_LDSM_TOK(l) * LDST + ks * 16 + MS_NV_LDSM_K(l);
        isa_ldsm_x4(ld, tile, addr);
        for (int l = 0; l < 32; l++)
            for (int m = 0; m < 4; m++) {
                /* The fallback's plain loads must give the same registers. */
                const int off = MS_NV_B_TOK(l, m) * LDST + ks * 16 + MS_NV_B_K(l, m);
                cr_assert(tile[off] == ld[l][m][0] && tile[off + 1] == ld[l][m][1],
                          "fallback B register %d of lane %d differs from ldmatrix", m, l);
                b[m >> 1].h[l][2 * (m & 1)] = ld[l][m][0];
                b[m >> 1].h[l][2 * (m & 1) + 1] = ld[l][m][1];
            }
        isa_mma(&acc[0], &a, &b[0]);
        isa_mma(&acc[1], &a, &b[1]);
    }
    for (int n = 0; n < 2; n++)
        for (int l = 0; l < 32; l++)
            for (int r = 0; r < 4; r++) {
                const int row = MS_NV_C_ROW(l, r), col = n * 8 + MS_NV_C_COL(l, r);
                const float got = acc[n].v[l][r], want = ref[row][col];
                if (exact)
                    cr_assert_eq(got, want, "C[%d][%d] (lane %d reg %d): %g, want %g", row, col, l,
                                 r, got, want);
                else
                    cr_assert(fabsf(got - want) <= 1e-5f * (1.0f + fabsf(want)),
                              "C[%d][%d] (lane %d reg %d): %g, want %g", row, col, l, r, got, want);
            }
}

Test(nv_layout, tile_integer)
{
    srand(1);
    for (int i = 0; i < 20; i++)
        check_tile(1);
}

Test(nv_layout, tile_float16)
{
    srand(2);
    for (int i = 0; i < 20; i++)
        check_tile(0);
}

/* ---- tf32: mma.m16n8k8 with .tf32 A and B (--precision tf32) ----
 * The PTX ISA's layouts, written out from its text ("Matrix fragments for mma.m16n8k8", .tf32),
 * not from the kernel's macros: A (16x8) in 4 .b32 registers, one element each, row = groupID
 * for a0 and a2, groupID + 8 for a1 and a3, col = threadID_in_group for a0 and a1,
 * threadID_in_group + 4 for a2 and a3; B (8x8) in 2 registers, row = threadID_in_group for b0,
 * threadID_in_group + 4 for b1, col = groupID; C/D as for m16n8k16 (isa_c). */
static void isa_tf32_a(int lane, int i, int *row, int *col)
{
    const int gid = lane >> 2, tig = lane % 4;
    *row = (i == 0 || i == 2) ? gid : gid + 8;
    *col = (i == 0 || i == 1) ? tig : tig + 4;
}
static void isa_tf32_b(int lane, int i, int *row, int *col)
{
    const int gid = lane >> 2, tig = lane % 4;
    *row = i == 0 ? tig : tig + 4;
    *col = gid;
}

/* Registers as bits: the kernel moves 32-bit words, the mma reads them as tf32 (float32 whose
 * low 13 bits are zero: the test's values are tf32-exact). */
static float bits_f(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}
static uint32_t f_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 per the ISA layouts above. */
static void isa_mma_tf32(struct frag_c *d, const uint32_t a[32][4], const uint32_t b[32][2])
{
    float am[16][8], bm[8][8];
    int seen_a[16][8] = { { 0 } }, seen_b[8][8] = { { 0 } };
    for (int l = 0; l < 32; l++) {
        for (int i = 0; i < 4; i++) {
            int r, c;
            isa_tf32_a(l, i, &r, &c);
            am[r][c] = bits_f(a[l][i]);
            seen_a[r][c]++;
        }
        for (int i = 0; i < 2; i++) {
            int r, c;
            isa_tf32_b(l, i, &r, &c);
            bm[r][c] = bits_f(b[l][i]);
            seen_b[r][c]++;
        }
    }
    assert_each_once(&seen_a[0][0], 16, 8, "tf32 A");
    assert_each_once(&seen_b[0][0], 8, 8, "tf32 B");
    for (int l = 0; l < 32; l++)
        for (int i = 0; i < 4; i++) {
            int r, c;
            double s = d->v[l][i];
            isa_c(l, i, &r, &c);
            for (int k = 0; k < 8; k++)
                s += (double)am[r][k] * bm[k][c];
            d->v[l][i] = (float)s;
        }
}

/* ldmatrix.x4 .b16 over memory of 16-bit words (bits), as isa_ldsm_x4: register m of lane L is
 * the 32-bit word of elements 2 (L % 4), 2 (L % 4) + 1 of row L / 4 of matrix m, the lower
 * address in the low half (little-endian, as the float32 words were stored). */
static void isa_ldsm_x4_bits(uint32_t out[32][4], const uint16_t *mem, const int addr[32])
{
    for (int l = 0; l < 32; l++)
        for (int m = 0; m < 4; m++) {
            const int src = 8 * m + l / 4;
            out[l][m] = (uint32_t)mem[addr[src] + 2 * (l % 4)] |
                        (uint32_t)mem[addr[src] + 2 * (l % 4) + 1] << 16;
        }
}

/*
 * One 16-row query block against 16 document tokens of KPT / 2 float32 (three tf32 k-steps), the
 * way the kernels run under MS_NV_TF32: rows of KPT "halves" holding float32, A loaded as 32-bit
 * words at (MS_NV_A_ROW, MS_NV_A_COL), B by ldmatrix.x4 .b16 at (MS_NV_LDSM_TOK, MS_NV_LDSM_K)
 * and by the plain loads at (MS_NV_B_TOK, MS_NV_B_K), a k-step of 16 halves fed to one m16n8k8
 * per n8 tile. perm_a / perm_b reorder the registers before the mma (identity: what the kernel
 * does); returns the number of wrong C entries (integer data: every product and sum is exact).
 */
/* One k-step's registers of a 32-bit-word tile (tf32 halves of a float, four s8 codes), as
 * the kernel's fallback and ldmatrix paths load them: A from the queries' rows (as 16-bit
 * pairs through MS_NV_A_*, taken in the order perm_a), B by ldmatrix.x4 from the documents'
 * tile (each register checked against the fallback's MS_NV_B_* words), registers {0, 1} for the
 * first n8 tile and {2, 3} for the second in the order perm_b, as ms_nv_mma is called. */
static void word_fragments(const uint16_t *qmem, const uint16_t *tile, int ks, const int perm_a[4],
                           const int perm_b[2], const char *what, uint32_t ap[32][4],
                           uint32_t b[2][32][2])
{
    uint32_t a[32][4], ld[32][4];
    int addr[32];
    for (int l = 0; l < 32; l++)
        for (int r = 0; r < 4; r++) {
            const int off = MS_NV_A_ROW(l, r) * KPT + ks * 16 + MS_NV_A_COL(l, r);
            cr_assert(off % 2 == 0, "%s: A word of lane %d reg %d is not 32-bit aligned", what, l,
                      r);
            a[l][r] = (uint32_t)qmem[off] | (uint32_t)qmem[off + 1] << 16;
        }
    for (int l = 0; l < 32; l++)
        for (int r = 0; r < 4; r++)
            ap[l][r] = a[l][perm_a[r]];
    for (int l = 0; l < 32; l++)
        addr[l] = MS_NV_LDSM_TOK(l) * LDST + ks * 16 + MS_NV_LDSM_K(l);
    isa_ldsm_x4_bits(ld, tile, addr);
    for (int l = 0; l < 32; l++)
        for (int m = 0; m < 4; m++) {
            const int off = MS_NV_B_TOK(l, m) * LDST + ks * 16 + MS_NV_B_K(l, m);
            cr_assert(((uint32_t)tile[off] | (uint32_t)tile[off + 1] << 16) == ld[l][m],
                      "%s: fallback B register %d of lane %d differs from ldmatrix", what, m, l);
        }
    for (int l = 0; l < 32; l++)
        for (int n = 0; n < 2; n++)
            for (int r = 0; r < 2; r++)
                b[n][l][r] = ld[l][2 * n + perm_b[r]];
}

static int tf32_tile_errors(const int perm_a[4], const int perm_b[2], int exact)
{
    float q[16][KPT / 2], ref[16][16];
    uint16_t qmem[16 * KPT], tile[16 * LDST];
    struct frag_c acc[2];
    int wrong = 0;
    memset(acc, 0, sizeof acc);
    for (int i = 0; i < 16 * LDST; i++)
        tile[i] = 0x7fc0; /* NaN halves in the padding: never read */
    for (int r = 0; r < 16; r++)
        for (int c = 0; c < KPT / 2; c++) {
            const uint32_t u = f_bits(q[r][c] = rnd_val(exact));
            qmem[r * KPT + 2 * c] = (uint16_t)u;
            qmem[r * KPT + 2 * c + 1] = (uint16_t)(u >> 16);
        }
    float dv[16][KPT / 2];
    for (int t = 0; t < 16; t++)
        for (int c = 0; c < KPT / 2; c++) {
            const uint32_t u = f_bits(dv[t][c] = rnd_val(exact));
            tile[t * LDST + 2 * c] = (uint16_t)u;
            tile[t * LDST + 2 * c + 1] = (uint16_t)(u >> 16);
        }
    for (int r = 0; r < 16; r++)
        for (int t = 0; t < 16; t++) {
            double s = 0.0;
            for (int c = 0; c < KPT / 2; c++)
                s += (double)q[r][c] * dv[t][c];
            ref[r][t] = (float)s;
        }
    /* the named tf32 maps say what the 16-bit word maps say */
    for (int l = 0; l < 32; l++)
        for (int r = 0; r < 4; r++) {
            cr_assert(MS_NV_TF32_A_ROW(l, r) == MS_NV_A_ROW(l, r) &&
                          2 * MS_NV_TF32_A_K(l, r) == MS_NV_A_COL(l, r),
                      "MS_NV_TF32_A_* of lane %d reg %d", l, r);
            cr_assert(2 * MS_NV_TF32_B_K(l, r & 1) == MS_NV_B_K(l, r) &&
                          8 * (r >> 1) + MS_NV_TF32_B_COL(l) == MS_NV_B_TOK(l, r),
                      "MS_NV_TF32_B_* of lane %d reg %d", l, r);
        }
    for (int ks = 0; ks < KPT / 16; ks++) {
        uint32_t ap[32][4], b[2][32][2];
        word_fragments(qmem, tile, ks, perm_a, perm_b, "tf32", ap, b);
        isa_mma_tf32(&acc[0], ap, b[0]);
        isa_mma_tf32(&acc[1], ap, b[1]);
    }
    for (int n = 0; n < 2; n++)
        for (int l = 0; l < 32; l++)
            for (int r = 0; r < 4; r++) {
                const int row = MS_NV_C_ROW(l, r), col = n * 8 + MS_NV_C_COL(l, r);
                const float got = acc[n].v[l][r], want = ref[row][col];
                wrong += exact ? got != want : !(fabsf(got - want) <= 1e-5f * (1.0f + fabsf(want)));
            }
    return wrong;
}

static const int perm_id4[4] = { 0, 1, 2, 3 }, perm_id2[2] = { 0, 1 };

Test(nv_layout, tile_tf32)
{
    srand(5);
    for (int i = 0; i < 20; i++) {
        cr_assert_eq(tf32_tile_errors(perm_id4, perm_id2, 1), 0, "integer data, case %d", i);
        cr_assert_eq(tf32_tile_errors(perm_id4, perm_id2, 0), 0, "tf32-exact data, case %d", i);
    }
}

/* The check can fail: registers fed in the order of another reading of the layout (A's row and
 * k halves swapped, as if r & 1 chose the k half; B's two k halves swapped) give wrong scores. */
Test(nv_layout, tile_tf32_mutations_fail)
{
    static const int a_swapped[4] = { 0, 2, 1, 3 }, b_swapped[2] = { 1, 0 };
    srand(6);
    cr_assert_gt(tf32_tile_errors(a_swapped, perm_id2, 1), 0, "A registers 1 and 2 swapped");
    cr_assert_gt(tf32_tile_errors(perm_id4, b_swapped, 1), 0, "B registers swapped");
}

/* ---- mma.m16n8k32 with .s8 operands (--precision int8) ----
 * The PTX ISA's layouts for m16n8k32 .s8 (written out from "Matrix fragments for mma.m16n8k32",
 * independently of the kernel's maps): A 16x32, four .b32 registers of four .s8 each, element
 * a_i (i = 0..15, byte i % 4 of register i / 4) at row g for i in 0..3 and 8..11, g + 8 for
 * 4..7 and 12..15, column 4t + (i % 4) + 16 (i >= 8); B 32x8, two registers, b_i at row (k)
 * 4t + (i % 4) + 16 (i >= 4), column g; C/D int32 as the f32 layout. */
static void isa_s8_a(int lane, int i, int *row, int *col)
{
    const int g = lane >> 2, t = lane % 4;
    *row = ((i >> 2) & 1) ? g + 8 : g;
    *col = 4 * t + (i % 4) + (i >= 8 ? 16 : 0);
}
static void isa_s8_b(int lane, int i, int *row, int *col)
{
    *row = 4 * (lane % 4) + (i % 4) + (i >= 4 ? 16 : 0);
    *col = lane >> 2;
}
static void isa_mma_s8(int32_t d[32][4], const uint32_t a[32][4], const uint32_t b[32][2])
{
    int am[16][32], bm[32][8], seen_a[16][32] = { { 0 } }, seen_b[32][8] = { { 0 } };
    for (int l = 0; l < 32; l++) {
        for (int i = 0; i < 16; i++) {
            int r, c;
            isa_s8_a(l, i, &r, &c);
            am[r][c] = (int8_t)(a[l][i / 4] >> (8 * (i % 4)));
            seen_a[r][c]++;
        }
        for (int i = 0; i < 8; i++) {
            int r, c;
            isa_s8_b(l, i, &r, &c);
            bm[r][c] = (int8_t)(b[l][i / 4] >> (8 * (i % 4)));
            seen_b[r][c]++;
        }
    }
    assert_each_once(&seen_a[0][0], 16, 32, "s8 A");
    assert_each_once(&seen_b[0][0], 32, 8, "s8 B");
    for (int l = 0; l < 32; l++)
        for (int i = 0; i < 4; i++) {
            int r, c;
            isa_c(l, i, &r, &c);
            for (int k = 0; k < 32; k++)
                d[l][i] += am[r][k] * bm[k][c];
        }
}

/*
 * One 16-row query block against 16 document tokens of 2 * KPT int8 codes (three k-steps of 32),
 * the way the kernels run under MS_NV_I8 (and MS_NV_F8: the same loads): rows of KPT "halves"
 * holding two codes each, A loaded as 32-bit words at (MS_NV_A_ROW, MS_NV_A_COL), B by
 * ldmatrix.x4 .b16 at (MS_NV_LDSM_TOK, MS_NV_LDSM_K) and by the plain loads at (MS_NV_B_TOK,
 * MS_NV_B_K), a k-step of 16 halves fed to one m16n8k32 per n8 tile; the int32 results against
 * the integer product (exact). perm_a / perm_b reorder the registers first (identity: what the
 * kernel does); returns the number of wrong C entries.
 */
static int s8_tile_errors(const int perm_a[4], const int perm_b[2])
{
    int8_t q[16][2 * KPT], dv[16][2 * KPT];
    uint16_t qmem[16 * KPT], tile[16 * LDST];
    int32_t acc[2][32][4], ref[16][16];
    int wrong = 0;
    memset(acc, 0, sizeof acc);
    for (int i = 0; i < 16 * LDST; i++)
        tile[i] = 0x8080; /* -128 codes in the padding: never read */
    for (int r = 0; r < 16; r++)
        for (int c = 0; c < 2 * KPT; c++) {
            q[r][c] = (int8_t)(rand() % 255 - 127);
            dv[r][c] = (int8_t)(rand() % 255 - 127);
        }
    for (int r = 0; r < 16; r++)
        for (int h = 0; h < KPT; h++) { /* little-endian: the lower code in the low byte */
            qmem[r * KPT + h] = (uint16_t)((uint8_t)q[r][2 * h] | (uint8_t)q[r][2 * h + 1] << 8);
            tile[r * LDST + h] = (uint16_t)((uint8_t)dv[r][2 * h] | (uint8_t)dv[r][2 * h + 1] << 8);
        }
    for (int r = 0; r < 16; r++)
        for (int t = 0; t < 16; t++) {
            ref[r][t] = 0;
            for (int c = 0; c < 2 * KPT; c++)
                ref[r][t] += q[r][c] * dv[t][c];
        }
    for (int ks = 0; ks < KPT / 16; ks++) {
        uint32_t ap[32][4], b[2][32][2];
        word_fragments(qmem, tile, ks, perm_a, perm_b, "s8", ap, b);
        isa_mma_s8(acc[0], ap, b[0]);
        isa_mma_s8(acc[1], ap, b[1]);
    }
    for (int n = 0; n < 2; n++)
        for (int l = 0; l < 32; l++)
            for (int r = 0; r < 4; r++)
                wrong += acc[n][l][r] != ref[MS_NV_C_ROW(l, r)][n * 8 + MS_NV_C_COL(l, r)];
    return wrong;
}

Test(nv_layout, tile_s8)
{
    srand(8);
    for (int i = 0; i < 20; i++)
        cr_assert_eq(s8_tile_errors(perm_id4, perm_id2), 0, "case %d", i);
}

/* The check can fail: A's registers 1 and 2 (row and k halves) or B's two swapped. */
Test(nv_layout, tile_s8_mutations_fail)
{
    static const int a_swapped[4] = { 0, 2, 1, 3 }, b_swapped[2] = { 1, 0 };
    srand(9);
    cr_assert_gt(s8_tile_errors(a_swapped, perm_id2), 0, "A registers 1 and 2 swapped");
    cr_assert_gt(s8_tile_errors(perm_id4, b_swapped), 0, "B registers swapped");
}

/* The shfl.sync.bfly the kernel uses: every lane gets lane ^ mask's value. */
static void shfl_xor(float v[32], int mask)
{
    float o[32];
    for (int l = 0; l < 32; l++)
        o[l] = v[l ^ mask];
    memcpy(v, o, sizeof o);
}

/*
 * The per-document part of ms_nv_score for one row block (WC = 1): chunks of NCH tokens, 16-
 * token column tiles up to the valid count, the -INFINITY mask, the running max per lane, the
 * max over a row's 4 lanes, rows past nvalid counted 0, the butterfly sum. Against a direct
 * MaxSim over the valid rows and tokens.
 */
static void check_rowblock(int nvalid, int len)
{
    enum { NCH = 32 };
    float q[16][KPT], d[200][KPT];
    float mx[32][2];
    float x[32];
    double want = 0.0;
    for (int r = 0; r < 16; r++)
        for (int k = 0; k < KPT; k++)
            q[r][k] = r < nvalid ? rnd_val(1) : 0.0f;
    for (int t = 0; t < len; t++)
        for (int k = 0; k < KPT; k++)
            d[t][k] = rnd_val(1);
    for (int r = 0; r < nvalid && len > 0; r++) {
        double best = -INFINITY;
        for (int t = 0; t < len; t++) {
            double s = 0.0;
            for (int k = 0; k < KPT; k++)
                s += (double)q[r][k] * d[t][k];
            best = s > best ? s : best;
        }
        want += best;
    }
    for (int l = 0; l < 32; l++)
        mx[l][0] = mx[l][1] = -INFINITY;
    for (int c = 0; c * NCH < len; c++) {
        const int valid = len - c * NCH < NCH ? len - c * NCH : NCH;
        float tile[NCH * LDST];
        for (int i = 0; i < NCH * LDST; i++)
            tile[i] = 1e30f; /* stale __local rows: must be masked */
        for (int t = 0; t < valid; t++)
            for (int k = 0; k < KPT; k++)
                tile[t * LDST + k] = d[c * NCH + t][k];
        for (int t = 0; t * 16 < valid; t++) {
            struct frag_c acc[2];
            memset(acc, 0, sizeof acc);
            for (int ks = 0; ks < KPT / 16; ks++) {
                struct frag_a a;
                struct frag_b b[2];
                float ld[32][4][2];
                int addr[32];
                for (int l = 0; l < 32; l++)
                    for (int r = 0; r < 4; r++)
                        for (int e = 0; e < 2; e++)
                            a.h[l][2 * r + e] =
                                q[MS_NV_A_ROW(l, r)][ks * 16 + MS_NV_A_COL(l, r) + e];
                for (int l = 0; l < 32; l++)
                    addr[l] = (t * 16 + MS_NV_LDSM_TOK(l)) * LDST + ks * 16 + MS_NV_LDSM_K(l);
                isa_ldsm_x4(ld, tile, addr);
                for (int l = 0; l < 32; l++)
                    for (int m = 0; m < 4; m++)
                        for (int e = 0; e < 2; e++)
                            b[m >> 1].h[l][2 * (m & 1) + e] = ld[l][m][e];
                isa_mma(&acc[0], &a, &b[0]);
                isa_mma(&acc[1], &a, &b[1]);
            }
            for (int l = 0; l < 32; l++)
                for (int n = 0; n < 2; n++)
                    for (int r = 0; r < 4; r++) {
                        const int col = t * 16 + n * 8 + MS_NV_C_COL(l, r);
                        const float v = col < valid ? acc[n].v[l][r] : -INFINITY;
                        mx[l][r >> 1] = fmaxf(mx[l][r >> 1], v);
                    }
        }
    }
    for (int h = 0; h < 2; h++)
        for (int m = 1; m <= 2; m *= 2) {
            float v[32];
            for (int l = 0; l < 32; l++)
                v[l] = mx[l][h];
            shfl_xor(v, m);
            for (int l = 0; l < 32; l++)
                mx[l][h] = fmaxf(mx[l][h], v[l]);
        }
    for (int l = 0; l < 32; l++) {
        const int g = MS_NV_G(l);
        x[l] = 0.0f;
        if (len > 0) {
            x[l] = g < nvalid ? mx[l][0] : 0.0f;
            x[l] += g + 8 < nvalid ? mx[l][1] : 0.0f;
        }
    }
    for (int m = 4; m <= 16; m *= 2) {
        float v[32];
        memcpy(v, x, sizeof v);
        shfl_xor(v, m);
        for (int l = 0; l < 32; l++)
            x[l] += v[l];
    }
    for (int l = 0; l < 32; l++)
        cr_assert_eq(x[l], (float)want, "nvalid %d len %d lane %d: %g, want %g", nvalid, len, l,
                     x[l], want);
}

Test(nv_layout, rowblock_maxsim)
{
    static const int lens[] = { 0, 1, 7, 16, 17, 31, 32, 33, 64, 100, 200 };
    srand(3);
    for (int nv = 1; nv <= 16; nv += 3)
        for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++)
            check_rowblock(nv, lens[i]);
    check_rowblock(16, 45);
}

/* kernels/plaid.cl's plaid_centroid_scores_nv: one warp, 16 centroids x 32 tokens, k = 48
 * (three k-steps), fragments by its PL_NV_* maps from the row-major centroid and token
 * matrices, against the plain product C . Q^T. */
static void check_centroid_tile(int exact)
{
    enum { KD = 48 };
    float c[16][KD], q[32][KD];
    struct frag_c acc[4];
    memset(acc, 0, sizeof acc);
    for (int r = 0; r < 16; r++)
        for (int k = 0; k < KD; k++)
            c[r][k] = rnd_val(exact);
    for (int j = 0; j < 32; j++)
        for (int k = 0; k < KD; k++)
            q[j][k] = rnd_val(exact);
    for (int k0 = 0; k0 < KD; k0 += 16) {
        struct frag_a a;
        for (int l = 0; l < 32; l++)
            for (int r = 0; r < 4; r++)
                for (int e = 0; e < 2; e++) /* a 32-bit word: the low half first */
                    a.h[l][2 * r + e] = c[PL_NV_A_ROW(l, r)][k0 + PL_NV_A_COL(l, r) + e];
        for (int n = 0; n < 4; n++) {
            struct frag_b b;
            for (int l = 0; l < 32; l++)
                for (int r = 0; r < 2; r++)
                    for (int e = 0; e < 2; e++)
                        b.h[l][2 * r + e] = q[8 * n + PL_NV_B_TOK(l)][k0 + PL_NV_B_K(l, r) + e];
            isa_mma(&acc[n], &a, &b);
        }
    }
    int seen[16][32] = { { 0 } };
    for (int n = 0; n < 4; n++)
        for (int l = 0; l < 32; l++)
            for (int r = 0; r < 4; r++) {
                const int row = PL_NV_C_ROW(l, r), col = 8 * n + PL_NV_C_COL(l, r);
                double want = 0.0;
                for (int k = 0; k < KD; k++)
                    want += (double)c[row][k] * q[col][k];
                seen[row][col]++;
                cr_assert(fabs(acc[n].v[l][r] - want) <= (exact ? 0.0 : 1e-5 * (1 + fabs(want))),
                          "S[%d][%d]: %g, want %g", row, col, acc[n].v[l][r], want);
            }
    for (int r = 0; r < 16; r++)
        for (int j = 0; j < 32; j++)
            cr_assert_eq(seen[r][j], 1, "S[%d][%d] stored %d times", r, j, seen[r][j]);
}

Test(nv_layout, plaid_centroid_tile)
{
    srand(11);
    check_centroid_tile(1);
    check_centroid_tile(0);
}

/* The exact top-2 of point xp against k centroids (rows of cent, stride floats apart) plus
 * their bias, in double: the best and second scores and the first centroid of the best. */
static void exact_top2(const float *xp, const float *cent, int stride, const float *bias, int k,
                       int dim, double *best, double *second, int *arg)
{
    double rb = -INFINITY, rs = -INFINITY;
    int ra = -1;
    for (int c = 0; c < k; c++) {
        double v = bias[c];
        for (int d = 0; d < dim; d++)
            v += (double)xp[d] * cent[(size_t)c * stride + d];
        if (v > rb) {
            rs = rb;
            rb = v;
            ra = c;
        } else if (v > rs) {
            rs = v;
        }
    }
    *best = rb;
    *second = rs;
    *arg = ra;
}

/* kernels/index.cl's index_assign_nv for one warp: 32 points (2 m-tiles, the last rows past
 * n_valid read as 0 and never written), k centroids 8 a step (the row index clamped to k - 1,
 * columns past k never taken), ks k-steps (even); A from the row-major points and B from the
 * row-major centroids by the IX_NV_* maps (IX_NV_QUAD's permuted 16-byte loads), the lanes' top-2
 * in the kernel's slot order, the shfl.sync.bfly 1, 2 join. Integer data: the scores are exact, so
 * every row's code must be the lowest argmax of <x, c> + bias and its second the second largest
 * (ties: equal). */
static void check_assign_warp(int n_valid, int k, int ks, int ties)
{
    enum { KMAX = 40, DMAX = 96 };
    const int dim = 16 * ks;
    float x[32][DMAX], cent[KMAX][DMAX], bias[KMAX];
    float best[32][4], second[32][4];
    uint arg[32][4];
    struct frag_a a[2][DMAX / 16];
    cr_assert(k <= KMAX && dim <= DMAX);
    for (int p = 0; p < 32; p++)
        for (int d = 0; d < dim; d++)
            x[p][d] = rnd_val(1);
    for (int c = 0; c < k; c++) {
        for (int d = 0; d < dim; d++)
            cent[c][d] = ties && c >= 3 && c % 3 == 0 ? cent[c - 3][d] : rnd_val(1);
        bias[c] = ties && c >= 3 && c % 3 == 0 ? bias[c - 3] : (float)(rand() % 64 - 32);
    }
    for (int l = 0; l < 32; l++)
        for (int r = 0; r < 4; r++) {
            int row, col;
            isa_c(l, r, &row, &col);
            cr_assert(row == IX_NV_C_ROW(l, r) && col == IX_NV_C_COL(l, r),
                      "C map of lane %d reg %d", l, r);
            cr_assert_eq(IX_NV_COL_T(col), (unsigned)(l & 3), "column %d: t of lane %d", col, l);
        }
    /* A as the kernel loads it: per row (r & 1) and pair of k-steps j, the 4 words of uint4
     * IX_NV_QUAD(l, j), word q to k-step 2j + (q >> 1), register (r & 1) + 2 (q & 1) */
    for (int m = 0; m < 2; m++)
        for (int l = 0; l < 32; l++)
            for (int rr = 0; rr < 2; rr++)
                for (int j = 0; j < ks / 2; j++)
                    for (int q = 0; q < 4; q++)
                        for (int e = 0; e < 2; e++) {
                            const int p = 16 * m + IX_NV_A_ROW(l, rr);
                            const int w = 4 * IX_NV_QUAD(l, j) + q; /* a 32-bit word */
                            a[m][2 * j + (q >> 1)].h[l][2 * (rr + 2 * (q & 1)) + e] =
                                p < n_valid ? x[p][2 * w + e] : 0.0f;
                        }
    for (int l = 0; l < 32; l++)
        for (int s = 0; s < 4; s++) {
            best[l][s] = second[l][s] = -INFINITY;
            arg[l][s] = 0;
        }
    for (int c0 = 0; c0 < k; c0 += 8) {
        struct frag_c acc[2];
        memset(acc, 0, sizeof acc);
        for (int j = 0; j < ks / 2; j++) {
            /* B: the 4 words of uint4 IX_NV_QUAD(l, j) of centroid row cb; words 0, 1 are
             * k-step 2j's registers, 2, 3 k-step 2j + 1's */
            struct frag_b b[2];
            for (int l = 0; l < 32; l++) {
                const int cb = c0 + IX_NV_B_CENT(l) < k ? c0 + IX_NV_B_CENT(l) : k - 1;
                for (int q = 0; q < 4; q++)
                    for (int e = 0; e < 2; e++)
                        b[q >> 1].h[l][2 * (q & 1) + e] =
                            cent[cb][2 * (4 * IX_NV_QUAD(l, j) + q) + e];
            }
            for (int h = 0; h < 2; h++) {
                isa_mma(&acc[0], &a[0][2 * j + h], &b[h]);
                isa_mma(&acc[1], &a[1][2 * j + h], &b[h]);
            }
        }
        for (int l = 0; l < 32; l++)
            for (int r = 0; r < 4; r++) {
                const uint c = (uint)(c0 + IX_NV_C_COL(l, r));
                if (c < (uint)k)
                    for (int m = 0; m < 2; m++) {
                        const int sl = 2 * m + (r >> 1);
                        ix_top2_take(acc[m].v[l][r] + bias[c], c, &best[l][sl], &arg[l][sl],
                                     &second[l][sl]);
                    }
            }
    }
    for (int sl = 0; sl < 4; sl++)
        for (int m = 1; m <= 2; m *= 2) {
            float ob[32], os[32];
            uint oa[32];
            for (int l = 0; l < 32; l++) {
                ob[l] = best[l ^ m][sl];
                oa[l] = arg[l ^ m][sl];
                os[l] = second[l ^ m][sl];
            }
            for (int l = 0; l < 32; l++)
                ix_top2_join(&best[l][sl], &arg[l][sl], &second[l][sl], ob[l], oa[l], os[l]);
        }
    int written[32] = { 0 };
    for (int l = 0; l < 32; l++)
        for (int sl = 0; sl < 4; sl++) {
            /* all 4 lanes of a row agree (the join is symmetric) */
            cr_assert(best[l][sl] == best[l & ~3][sl] && arg[l][sl] == arg[l & ~3][sl] &&
                          second[l][sl] == second[l & ~3][sl],
                      "lane %d slot %d disagrees with its row's lane t = 0", l, sl);
            const int p = 16 * (sl >> 1) + (l >> 2) + 8 * (sl & 1); /* the kernel's row */
            if ((l & 3) != 0 || p >= n_valid)
                continue;
            written[p]++;
            double rb, rs;
            int ra;
            exact_top2(x[p], &cent[0][0], DMAX, bias, k, dim, &rb, &rs, &ra);
            cr_assert(arg[l][sl] == (uint)ra && best[l][sl] == (float)rb &&
                          second[l][sl] == (float)rs,
                      "n %d k %d dim %d point %d: (%u, %g, %g), want (%d, %g, %g)", n_valid, k, dim,
                      p, arg[l][sl], best[l][sl], second[l][sl], ra, rb, rs);
        }
    for (int p = 0; p < 32; p++)
        cr_assert_eq(written[p], p < n_valid, "point %d written %d times", p, written[p]);
}

Test(nv_layout, index_assign_warp)
{
    static const int kk[] = { 8, 20, 33, 40 };
    srand(17);
    for (size_t i = 0; i < sizeof kk / sizeof kk[0]; i++) {
        check_assign_warp(32, kk[i], 6, 0);
        check_assign_warp(32, kk[i], 2, 1);
        check_assign_warp(19, kk[i], 4, 1);
    }
    check_assign_warp(1, 1, 2, 0);
    check_assign_warp(5, 2, 2, 1);
}

/* kernels/index.cl's index_assign_nv_tiled for warp w of a group of nw: its 16 mt points (the
 * last rows past n_valid read as 0 and never written), k centroids staged ct at a time into a
 * padded __local tile by IX_NV_STAGE_OFF (the padding NaN: a read of it poisons a score), the
 * float16 rows zero and the bias -INFINITY past k as the host pads them; per step nt n-tiles,
 * B by the lane's 16-byte __local loads at IX_NV_T_OFF, the bias at IX_NV_T_BIAS, the scores of
 * slot s (IX_NV_SLOT_ROW) through ix_top2_take_run, then the join.
 * Integer data: every row's code, best and second must be the exact top-2's. Also: a quarter-
 * warp's B loads touch 32 distinct banks (the padding's purpose). */
enum { TMAX_K = 200, TMAX_D = 128, TMAX_P = 8 * 16 * 4 };
static float tx[TMAX_P][TMAX_D], tcent[TMAX_K + 128][TMAX_D], tbias[TMAX_K + 128];

static void check_assign_tiled(int n_valid, int k, int ks, int ties, int nw, int w, int mt, int nt,
                               int ct)
{
    const int dim = 16 * ks, qw = dim / 8, lds = IX_NV_LDS_OF(ks), p0 = 16 * mt * w;
    const int kp = (k + 127) / 128 * 128;
    float best[32][8], second[32][8];
    uint arg[32][8];
    static float lt[128 * (TMAX_D + 32)];
    static struct frag_a a[4][TMAX_D / 16];
    float bt[128];
    cr_assert(k <= TMAX_K && dim <= TMAX_D && 16 * mt * nw <= TMAX_P && mt <= 4 && w < nw);
    for (int p = 0; p < 16 * mt * nw; p++)
        for (int d = 0; d < dim; d++)
            tx[p][d] = rnd_val(1);
    for (int c = 0; c < kp; c++) {
        const int dup = ties && c >= 3 && c % 3 == 0;
        for (int d = 0; d < dim; d++)
            tcent[c][d] = c >= k ? 0.0f : dup ? tcent[c - 3][d] : rnd_val(1);
        tbias[c] = c >= k ? -INFINITY : dup ? tbias[c - 3] : (float)(rand() % 64 - 32);
    }
    /* the slot and bias maps against the ISA's C layout */
    for (int l = 0; l < 32; l++)
        for (int s = 0; s < 2 * mt; s++)
            for (int t = 0; t < nt; t++)
                for (int e = 0; e < 2; e++) {
                    int row, col;
                    isa_c(l, 2 * (s & 1) + e, &row, &col);
                    cr_assert(16 * (s >> 1) + row == (int)IX_NV_SLOT_ROW(l, s) &&
                                  8 * t + col == (int)IX_NV_T_BIAS(l, t) + e,
                              "slot %d of lane %d: C reg %d is row %d col %d", s, l,
                              2 * (s & 1) + e, row, col);
                }
    /* A as in check_assign_warp, rows of warp w */
    for (int m = 0; m < mt; m++)
        for (int l = 0; l < 32; l++)
            for (int rr = 0; rr < 2; rr++)
                for (int j = 0; j < ks / 2; j++)
                    for (int q = 0; q < 4; q++)
                        for (int e = 0; e < 2; e++) {
                            const int p = p0 + 16 * m + IX_NV_A_ROW(l, rr);
                            const int wd = 4 * IX_NV_QUAD(l, j) + q;
                            a[m][2 * j + (q >> 1)].h[l][2 * (rr + 2 * (q & 1)) + e] =
                                p < n_valid ? tx[p][2 * wd + e] : 0.0f;
                        }
    for (int l = 0; l < 32; l++)
        for (int s = 0; s < 8; s++) {
            best[l][s] = second[l][s] = -INFINITY;
            arg[l][s] = 0;
        }
    for (int c0 = 0; c0 < k; c0 += ct) {
        for (int i = 0; i < ct * lds; i++)
            lt[i] = NAN;
        for (int e = 0; e < ct * qw; e++) /* 16-byte word e: row e / qw, word e % qw */
            for (int h = 0; h < 8; h++)
                lt[IX_NV_STAGE_OFF(e, qw, lds) + h] = tcent[c0 + e / qw][8 * (e % qw) + h];
        for (int i = 0; i < ct; i++)
            bt[i] = tbias[c0 + i];
        const int valid = k - c0 < ct ? k - c0 : ct;
        for (int cc = 0; cc < valid; cc += 8 * nt) {
            struct frag_c acc[4][4];
            memset(acc, 0, sizeof acc);
            for (int j = 0; j < ks / 2; j++)
                for (int t = 0; t < nt; t++) {
                    struct frag_b b[2];
                    int bank_use[4][32] = { { 0 } };
                    for (int l = 0; l < 32; l++) {
                        const int off = cc * lds + (int)IX_NV_T_OFF(l, t, j, lds);
                        cr_assert(off % 8 == 0, "lane %d: unaligned 16-byte load", l);
                        for (int q = 0; q < 4; q++) {
                            bank_use[l / 8][(off / 2 + q) % 32]++;
                            for (int e = 0; e < 2; e++)
                                b[q >> 1].h[l][2 * (q & 1) + e] = lt[off + 2 * q + e];
                        }
                    }
                    for (int qq = 0; qq < 4; qq++)
                        for (int bk = 0; bk < 32; bk++)
                            cr_assert_eq(bank_use[qq][bk], 1,
                                         "ks %d: quarter-warp %d uses bank %d %d times", ks, qq, bk,
                                         bank_use[qq][bk]);
                    for (int m = 0; m < mt; m++)
                        for (int h = 0; h < 2; h++)
                            isa_mma(&acc[t][m], &a[m][2 * j + h], &b[h]);
                }
            for (int l = 0; l < 32; l++)
                for (int s = 0; s < 2 * mt; s++) {
                    float sc[8];
                    uint col[8];
                    for (int t = 0; t < nt; t++)
                        for (int e = 0; e < 2; e++) {
                            col[2 * t + e] = (uint)(c0 + cc + (int)IX_NV_T_BIAS(l, t) + e);
                            sc[2 * t + e] = acc[t][s >> 1].v[l][2 * (s & 1) + e] +
                                            bt[cc + IX_NV_T_BIAS(l, t) + e];
                        }
                    ix_top2_take_run(sc, col, (uint)(2 * nt), &best[l][s], &arg[l][s],
                                     &second[l][s]);
                }
        }
    }
    for (int s = 0; s < 2 * mt; s++)
        for (int m = 1; m <= 2; m *= 2) {
            float ob[32], os[32];
            uint oa[32];
            for (int l = 0; l < 32; l++) {
                ob[l] = best[l ^ m][s];
                oa[l] = arg[l ^ m][s];
                os[l] = second[l ^ m][s];
            }
            for (int l = 0; l < 32; l++)
                ix_top2_join(&best[l][s], &arg[l][s], &second[l][s], ob[l], oa[l], os[l]);
        }
    int written[16 * 4] = { 0 };
    for (int l = 0; l < 32; l += 4)
        for (int s = 0; s < 2 * mt; s++) {
            const int p = p0 + (int)IX_NV_SLOT_ROW(l, s);
            if (p >= n_valid)
                continue;
            written[p - p0]++;
            double rb, rs;
            int ra;
            exact_top2(tx[p], &tcent[0][0], TMAX_D, tbias, k, dim, &rb, &rs, &ra);
            cr_assert(arg[l][s] == (uint)ra && best[l][s] == (float)rb && second[l][s] == (float)rs,
                      "tiled mt %d nt %d ct %d, n %d k %d dim %d point %d: (%u, %g, %g), want (%d, "
                      "%g, %g)",
                      mt, nt, ct, n_valid, k, dim, p, arg[l][s], best[l][s], second[l][s], ra, rb,
                      rs);
        }
    for (int p = 0; p < 16 * mt; p++)
        cr_assert_eq(written[p], p0 + p < n_valid, "point %d written %d times", p0 + p, written[p]);
}

Test(nv_layout, index_assign_tiled)
{
    srand(19);
    /* n_valid k ks ties nw w mt nt ct: the host's default shapes (dim 128: 4 4 2 64; dim 256
     * needs more room than here), and the others MAXSIM_INDEX_NV_KERNEL takes */
    check_assign_tiled(256, 200, 8, 1, 4, 3, 4, 2, 64);
    check_assign_tiled(200, 131, 8, 0, 4, 3, 4, 2, 64);
    check_assign_tiled(64, 64, 8, 1, 4, 0, 4, 2, 64);
    check_assign_tiled(100, 77, 6, 1, 4, 1, 4, 2, 32);
    check_assign_tiled(40, 150, 2, 1, 2, 1, 2, 1, 16);
    check_assign_tiled(300, 190, 4, 0, 8, 4, 1, 4, 128);
    check_assign_tiled(16, 9, 2, 0, 1, 0, 1, 1, 16);
    check_assign_tiled(5, 1, 2, 1, 4, 0, 4, 2, 64);
    check_assign_tiled(64, 33, 8, 1, 1, 0, 4, 4, 32);
    check_assign_tiled(128, 100, 8, 1, 4, 2, 2, 4, 64);
}

/* ix_top2_take_run is ns ix_top2_take calls in order, bit for bit, on runs with ties, -INFINITY
 * and NaN (a point beyond float16 may score NaN), from every kind of running top-2. */
Test(nv_layout, top2_take_run)
{
    static const float vals[] = {
        -INFINITY, -3.0f, -1.0f, 0.0f, 0.0f, 1.0f, 2.0f, 2.0f, 5.0f, NAN
    };
    const int nv = (int)(sizeof vals / sizeof vals[0]);
    srand(23);
    for (int it = 0; it < 200000; it++) {
        float b1 = -INFINITY, s1 = -INFINITY, b2, s2;
        uint a1 = 0, a2;
        const int pre = rand() % 4, ns = 1 + rand() % 8;
        uint c = 0;
        for (int i = 0; i < pre; i++, c++)
            ix_top2_take(vals[rand() % nv], c, &b1, &a1, &s1);
        b2 = b1, s2 = s1, a2 = a1;
        float sc[8];
        uint col[8];
        for (int i = 0; i < ns; i++, c++) {
            sc[i] = vals[rand() % nv];
            col[i] = c;
            ix_top2_take(sc[i], c, &b1, &a1, &s1);
        }
        ix_top2_take_run(sc, col, (uint)ns, &b2, &a2, &s2);
        cr_assert(a1 == a2 && memcmp(&b1, &b2, 4) == 0 && memcmp(&s1, &s2, 4) == 0,
                  "run of %d after %d: (%u, %g, %g), the takes give (%u, %g, %g)", ns, pre, a2, b2,
                  s2, a1, b1, s1);
    }
}

/* ms_nv_score's column steps (MS_NV_STEP0, MS_NV_STEP_STRIDE): for every split of a chunk over
 * WC warp columns, NT tiles a step and every count of valid tokens, each 16-token tile that holds
 * a valid token is scored exactly once, by the kernel's own loop (a step's second tile only when
 * it starts before `valid`), and no tile reads past the chunk's NCH rows of __local. */
Test(nv_layout, staged_steps)
{
    static const int wcs[] = { 1, 2, 4 };
    for (size_t w = 0; w < sizeof wcs / sizeof wcs[0]; w++)
        for (int nt = 1; nt <= 2; nt++)
            for (int nch = 16 * wcs[w]; nch <= 128; nch += 16 * wcs[w])
                for (int valid = 1; valid <= nch; valid++) {
                    int seen[8] = { 0 };
                    for (int wc = 0; wc < wcs[w]; wc++)
                        for (int t = MS_NV_STEP0(wc, nt); t * 16 < valid;
                             t += MS_NV_STEP_STRIDE(wcs[w], nt))
                            for (int u = 0; u < nt && (t + u) * 16 < valid; u++) {
                                cr_assert((t + u + 1) * 16 <= nch, "tile %d past chunk %d", t + u,
                                          nch);
                                seen[t + u]++;
                            }
                    for (int t = 0; t < 8; t++)
                        cr_assert_eq(seen[t], t * 16 < valid,
                                     "WC %d NT %d NCH %d valid %d: tile %d scored %d times", wcs[w],
                                     nt, nch, valid, t, seen[t]);
                }
}

/*
 * ms_nv_score's ring of R chunk slots (MS_NV_RING_FILL, MS_NV_RING_NEXT) played through for runs
 * of documents of mixed lengths (empty ones included): the prologue stages R - 1 chunks, then
 * each chunk waits for all commit groups but the newest R - 2 (cp.async.wait_group R - 2),
 * passes the barrier, refills one slot and is scored. The chunk scored must be the one staged in
 * its slot and landed, and a refill may only overwrite a slot that every warp has scored before
 * the barrier (or an unused one). The prefetch order is ms_nv_next's: the next chunk of the
 * document, else the first of the next document that has tokens.
 */
static void check_ring(int ring, int nch, const int *len, int n_docs)
{
    int slot_chunk[4], pj = 0, pc = 0, n_groups = 0, landed = 0, scored = 0, cur = 0;
    int group_chunk[64];
    for (int s = 0; s < ring; s++)
        slot_chunk[s] = -1;
    while (pj < n_docs && len[pj] == 0)
        pj++;
        /* stage the next chunk (or an empty group) into slot s; chunks are numbered in order */
#define RING_STAGE(s)                                                                              \
    do {                                                                                           \
        cr_assert(n_groups < 64);                                                                  \
        if (pj < n_docs) {                                                                         \
            group_chunk[n_groups] = n_groups;                                                      \
            slot_chunk[(s)] = n_groups;                                                            \
            if ((pc + 1) * nch < len[pj]) {                                                        \
                pc++;                                                                              \
            } else {                                                                               \
                pc = 0;                                                                            \
                for (pj++; pj < n_docs && len[pj] == 0; pj++)                                      \
                    ;                                                                              \
            }                                                                                      \
        } else {                                                                                   \
            group_chunk[n_groups] = -1;                                                            \
        }                                                                                          \
        n_groups++;                                                                                \
    } while (0)
    for (int i = 0; i < ring - 1; i++)
        RING_STAGE(i);
    for (int j = 0; j < n_docs; j++)
        for (int c = 0; c * nch < len[j]; c++) {
            landed = n_groups - (ring - 2); /* wait_group R - 2: the older groups are complete */
            const int fill = MS_NV_RING_FILL(cur, ring);
            cr_assert(fill != cur, "R %d: refilling the slot about to be scored", ring);
            cr_assert(slot_chunk[fill] < scored, "R %d: slot %d holds chunk %d, not yet scored",
                      ring, fill, slot_chunk[fill]);
            RING_STAGE(fill);
            cr_assert_eq(slot_chunk[cur], scored, "R %d: slot %d holds chunk %d, scoring %d", ring,
                         cur, slot_chunk[cur], scored);
            cr_assert(scored < landed && group_chunk[scored] == scored,
                      "R %d: chunk %d scored before its copies landed", ring, scored);
            scored++;
            cur = MS_NV_RING_NEXT(cur, ring);
        }
#undef RING_STAGE
    int want = 0;
    for (int j = 0; j < n_docs; j++)
        want += (len[j] + nch - 1) / nch;
    cr_assert_eq(scored, want);
}

Test(nv_layout, staged_ring)
{
    static const int runs[][6] = { { 300, 300, 300, 0, 0, 0 }, { 0, 17, 0, 0, 64, 1 },
                                   { 1, 1, 1, 1, 1, 1 },       { 0, 0, 0, 0, 0, 0 },
                                   { 128, 0, 129, 33, 0, 0 },  { 47, 48, 49, 0, 96, 95 } };
    for (int ring = 2; ring <= 4; ring++)
        for (int nch = 16; nch <= 64; nch += 16)
            for (size_t r = 0; r < sizeof runs / sizeof runs[0]; r++)
                check_ring(ring, nch, runs[r], 6);
}
