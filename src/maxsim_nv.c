/*
 * maxsim_nv.c - the NVIDIA tensor-core path: host side of kernels/maxsim_nv.cl.
 *
 * The default on NVIDIA devices of compute capability >= 8.0 for float16 inputs (float32 or
 * normalized inputs under --precision f16); MAXSIM_NV_MMA=0 turns it off. Queries are uploaded
 * once per group as float16 row blocks of 16 rows; documents are used as uploaded when they are
 * float16 with dim % 16 == 0 and no normalization, and converted by ms_nv_prep_* otherwise.
 * The lower precisions change only the operands: tf32 rows, e4m3 or int8 codes (int8 with a
 * scale a query row, quantized here, and one a document block, by two device passes).
 *
 * Two kernels, picked per scorer from the query batch (nv_pick), never from the document block,
 * so that every block of a run, and `score`, `search` and `rerank` alike, use the same kernel
 * and get the same bits:
 *   stream  (ms_nv_stream) few queries of few row blocks: memory-bound, each warp streams its
 *           own documents through a private cp.async ring and writes final scores.
 *   staged  (ms_nv_score + ms_nv_sum) many query rows: compute-bound, document chunks staged in
 *           __local feed the row blocks of 4 warps; per row block partial sums, then their sum.
 * Both compute each (query, document) with the same operations in the same order (the kernel
 * file says how), so the choice never changes a score.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "maxsim_gpu.h"
#include "maxsim_priv.h"
#include "tune.h"

static int env_int(const char *name, int dflt)
{
    const char *e = getenv(name);
    return e && *e ? atoi(e) : dflt;
}

/* ---- tf32 (--precision tf32): rounding, availability, mode ---- */

float ms_round_tf32(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    if ((u & 0x7f800000u) != 0x7f800000u) /* finite: add half of the last kept bit, cut 13 */
        u = (u + 0x1000u) & 0xffffe000u;
    memcpy(&x, &u, sizeof x);
    return x;
}

/* Row width in halves of tf32 rows: dim float32 rounded up to 8 (one m16n8k8 k-step), 2 halves
 * each; the A fragments take as many registers as float16 rows of this many halves. */
static uint32_t tf32_kp(uint32_t dim)
{
    return (dim + 7) / 8 * 16;
}

int ms_scorer_tf32_ok(const struct ms_cl *cl, uint32_t dim)
{
    const char *e = getenv("MAXSIM_NV_MMA");
    return !(e && strcmp(e, "0") == 0) && cl->info.is_nvidia && cl->info.nv_cc_major >= 8 &&
           dim >= 1 && tf32_kp(dim) <= 512;
}

/* MAXSIM_NV_TF32, how tf32 operands are rounded: prep (the default: a pass rounds the documents
 * to nearest into their own buffer), fused (the kernel rounds them from the float32 as uploaded,
 * by ms_nv_tf32_rna's arithmetic: no pass and no second buffer), cvt (the same with the
 * cvt.rna.tf32.f32 instruction), raw (nothing rounded: the hardware gets float32 bits; for
 * measuring what it does with them). Queries are rounded on the host except under raw. All but
 * raw give the same bits. */
static int nv_tf32_mode(int *mode, struct ms_err *err)
{
    const char *e = getenv("MAXSIM_NV_TF32");
    if (!e || !*e || strcmp(e, "prep") == 0)
        *mode = NV_TF32_PREP;
    else if (strcmp(e, "fused") == 0)
        *mode = NV_TF32_FUSED;
    else if (strcmp(e, "cvt") == 0)
        *mode = NV_TF32_CVT;
    else if (strcmp(e, "raw") == 0)
        *mode = NV_TF32_RAW;
    else
        return ms_err_set(err, MS_ERR_INPUT,
                          "MAXSIM_NV_TF32 takes prep, fused, cvt or raw, got '%s'", e);
    return MS_OK;
}

/* Whether tf32 documents are scored from the float32 upload itself: not rounded by a pass (fused
 * and cvt round in the kernel, raw not at all), rows already [token][kp / 2] (dim % 8 == 0) and
 * nothing to normalize. */
static int tf32_direct(const struct ms_scorer *s, const struct ms_emb *docs)
{
    return s->nv.tf32 != NV_TF32_PREP && docs->dtype == MS_DTYPE_F32 && 2 * s->dim == s->nv.kp &&
           !s->normalize;
}

static const char *tf32_mode_name(int mode)
{
    return mode == NV_TF32_FUSED ? "tf32 rounded in the kernel"
           : mode == NV_TF32_CVT ? "tf32 rounded in the kernel by cvt.rna"
           : mode == NV_TF32_RAW ? "tf32 from unrounded float32 bits"
                                 : "tf32 rounded by the prep pass";
}

/* ---- int8 (--precision int8): the host's query quantizer ---- */

int8_t ms_quantize_i8(float x, float s)
{
    const float r = rintf(x * s); /* the default rounding mode: to nearest, ties to even */
    return (int8_t)(r > 127.0f ? 127 : r < -127.0f ? -127 : (int)r);
}

float ms_quantize_i8_row(const float *x, uint32_t n, int8_t *out)
{
    float m = 0.0f;
    for (uint32_t k = 0; k < n; k++)
        m = fabsf(x[k]) > m ? fabsf(x[k]) : m;
    const float s = m > 0.0f ? 127.0f / m : 0.0f;
    for (uint32_t k = 0; k < n; k++)
        out[k] = ms_quantize_i8(x[k], s);
    return m / 127.0f;
}

/* A prepared row's width in 16-bit "halves", what the kernels' KP counts: f8 and int8, dim bytes
 * padded to a k-step of 32; tf32, float32 padded to a k-step of 8, two halves each; else float16
 * padded to a k-step of 16. The tuning keys and candidates use it too, so that they describe the
 * kernel that runs. */
static uint32_t nv_kp(uint32_t dim, int precision)
{
    return precision == MS_PREC_F8 || precision == MS_PREC_I8 ? (dim + 31) / 32 * 16
           : precision == MS_PREC_TF32                        ? tf32_kp(dim)
                                                              : (dim + 15) / 16 * 16;
}

/* e4m3 operands (mma.m16n8k32 .e4m3, cvt.e4m3x2) exist from sm_89 (Ada, Hopper) on */
static int nv_has_f8(const struct ms_cl *cl)
{
    return cl->info.nv_cc_major > 8 || (cl->info.nv_cc_major == 8 && cl->info.nv_cc_minor >= 9);
}

int ms_nv_wanted(const struct ms_cl *cl, const struct ms_emb *q, const struct ms_scorer_opts *o)
{
    const char *e = getenv("MAXSIM_NV_MMA");
    if (e && strcmp(e, "0") == 0)
        return 0;
    if (!cl->info.is_nvidia || cl->info.nv_cc_major < 8)
        return 0;
    if ((q->dim + 15) / 16 * 16 > 512) /* the query fragments live in registers */
        return 0;
    if (o->precision == MS_PREC_TF32)
        return ms_scorer_tf32_ok(cl, q->dim);
    if (o->precision == MS_PREC_F8) /* mma.m16n8k32 on e4m3 */
        return nv_has_f8(cl);
    if (o->precision == MS_PREC_I8) /* mma.m16n8k32 on s8: Ampere on (checked above) */
        return 1;
    if (o->precision == MS_PREC_F16)
        return 1;
    return o->precision == MS_PREC_EXACT && q->dtype == MS_DTYPE_F16 && !o->normalize;
}

int ms_nv_usable(const struct ms_scorer *s, const struct ms_emb *docs)
{
    return s->nv.on && (s->precision == MS_PREC_F16 || s->precision == MS_PREC_F8 ||
                        s->precision == MS_PREC_TF32 || s->precision == MS_PREC_I8 ||
                        (docs->dtype == MS_DTYPE_F16 && !s->normalize));
}

/* Row blocks (of 16 rows) per warp that the stream kernel can hold in registers: its A
 * fragments take 4 * kp / 16 registers per row block; keep them to about 128. */
static int stream_max_rb(uint32_t kp)
{
    const int most = (int)(512 / kp);
    return most < 1 ? 1 : most > 4 ? 4 : most;
}

/* The stream kernel's ring: slots of st tokens (kp + 8 halves each), as many stages as fit 40 KiB
 * of __local for one warp (2 at least, ss at most), then as many warps (a power of two, at most
 * sw) as fit. */
static void stream_ring(struct nvpath *nv)
{
    const uint32_t slot = (uint32_t)nv->st * (nv->kp + 8) * 2;
    while (nv->st > 16 && 2u * slot > 40960)
        nv->st /= 2;
    while (nv->ss > 2 && (uint32_t)nv->ss * nv->st * (nv->kp + 8) * 2 > 40960)
        nv->ss--;
    while (nv->sw > 1 && (uint32_t)(nv->sw * nv->ss * nv->st) * (nv->kp + 8) * 2 > 40960)
        nv->sw /= 2;
}

/* What nv_pick decides from: the query batch, the block capacity and the device. */
struct nv_shape {
    uint64_t n_q, max_rb, total_rb, cap_docs, cus;
};

static struct nv_shape nv_shape_of(const struct ms_cl *cl, const struct ms_emb *q,
                                   uint64_t cap_docs)
{
    struct nv_shape sh = { .n_q = q->n_rows,
                           .cap_docs = cap_docs,
                           .cus = cl->info.compute_units ? cl->info.compute_units : 1 };
    for (uint64_t i = 0; i < q->n_rows; i++) {
        const uint64_t rb = ms_ceil_div(ms_emb_row_len(q, i), 16);
        sh.total_rb += rb;
        if (rb > sh.max_rb)
            sh.max_rb = rb;
    }
    return sh;
}

/* Whether the stream kernel may take these queries: at most two, each held by one warp. */
static int stream_fits(uint32_t kp, const struct nv_shape *sh)
{
    return sh->max_rb <= (uint64_t)stream_max_rb(kp) && sh->n_q <= 2;
}

/* The tuning table's key of a device: a new driver or platform is a new device. */
static void device_key(const struct ms_cl *cl, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s|%s|%s", cl->info.name, cl->info.driver_version,
             cl->info.platform_version);
    for (char *p = buf; *p; p++)
        if (*p == '\t' || *p == '\n')
            *p = ' ';
}

/* The class of shapes that share a tuned variant: what changes the best choice (dim, queries,
 * rows a query, all rows, documents a block), bucketed so that a handful of tunings cover a
 * workload; int8 is a class of its own (its kp is f8's, its instructions and epilogue are not),
 * the other precisions keep the keys they had. */
static void shape_class(uint32_t kp, int precision, const struct nv_shape *sh, char *buf,
                        size_t cap)
{
    static const uint64_t rb_edges[] = { 1, 2, 4, 8, 16, 64 };
    static const char *const small[] = { "0", "1", "2", "3", "4" };
    int b = 0;
    while (b + 1 < 6 && sh->total_rb >= rb_edges[b + 1])
        b++;
    snprintf(buf, cap, "nv kp=%u%s nq=%s maxrb=%s rb>=%llu docs=%s", kp,
             precision == MS_PREC_I8 ? " int8" : "",
             sh->n_q <= 2 ? (sh->n_q <= 1 ? "1" : "2") : "3+",
             sh->max_rb <= 4 ? small[sh->max_rb] : "5+", (unsigned long long)rb_edges[b],
             sh->cap_docs > 16 * sh->cus ? "many" : "few");
}

/* The staged kernel's __local chunk slots, in bytes: a ring's, or the double buffer's two. */
static uint32_t staged_slot_bytes(const struct nvpath *nv, int nch)
{
    return (uint32_t)(nv->ring ? nv->ring : 2) * (uint32_t)nch * (nv->kp + 8) * 2;
}

/* Apply a variant string ("stream,SMR,SW,SS[,ST,K,SPLIT]" or
 * "staged,MR,WC,NCH[,RING,WARPS,NT,RTFAST]"); 0 when it does not parse or does not fit these
 * queries (a stream variant holds at most SMR row blocks) or __local (a staged one's slots). */
static int apply_variant(struct nvpath *nv, const char *v, const struct nv_shape *sh)
{
    int a = 0, b = 0, c = 0, st = 0, k = 0, split = -1, ring = 0, warps = 4, nt = 1, rtfast = 0;
    if (!v || !*v)
        return 0;
    if (sscanf(v, "stream,%d,%d,%d,%d,%d,%d", &a, &b, &c, &st, &k, &split) >= 3) {
        if (sh->max_rb > (uint64_t)a || a < 1 || a > 4 || b < 1 || b > 8 || c < 2 || c > 8)
            return 0;
        nv->kernel = NV_STREAM;
        nv->smr = a;
        nv->sw = b;
        nv->ss = c;
        if (st == 16 || st == 32 || st == 64)
            nv->st = st;
        if (k > 0)
            nv->warps_per_cu = k;
        nv->split = split > 0;
        stream_ring(nv); /* a forced ring still has to fit __local */
        return 1;
    }
    if (sscanf(v, "staged,%d,%d,%d,%d,%d,%d,%d", &a, &b, &c, &ring, &warps, &nt, &rtfast) >= 3 ||
        sscanf(v, "%d,%d,%d", &a, &b, &c) == 3) {
        const int old_ring = nv->ring;
        if (a < 1 || a > 4 || (b != 1 && b != 2 && b != 4) || c < 16 || c > 128 ||
            c % (16 * b) != 0 || (ring != 0 && (ring < 2 || ring > 4)) ||
            (warps != 4 && warps != 8) || (nt != 1 && nt != 2) || (rtfast != 0 && rtfast != 1))
            return 0;
        nv->ring = ring;
        if (staged_slot_bytes(nv, c) > 40960) {
            nv->ring = old_ring;
            return 0;
        }
        nv->kernel = NV_STAGED;
        nv->mr = a;
        nv->wc = b;
        nv->nch = c;
        nv->warps = warps;
        nv->nt = nt;
        nv->rtfast = rtfast;
        return 1;
    }
    return 0;
}

/*
 * The kernel and its variant, from the query batch (never from a document block, so that every
 * block and every command get the same kernel). Defaults, measured on the H200
 * (docs/kernel-notes.md): one or two queries that a warp holds whole take the stream kernel
 * (memory-bound: every document byte is read once per query, and a query's rows make little
 * arithmetic), with 16-token slots, 4 stages, as many warps a work-group as fit; blocks of many
 * documents: 2 warps share each document (3 stages, 32 warps a CU). Otherwise the staged kernel,
 * where one document chunk feeds many row blocks: MR = 4 row blocks a warp for 16+ row blocks
 * (dim <= 128), WC = 1 (every warp its own rows) for 8+ row blocks, the warps splitting the
 * tokens below that; NCH the largest chunk whose two stages fit 40 KiB of __local; the row
 * tiles first in the grid from 1,024 row blocks.
 * Then, first match wins: the scorer's forced variant (bench --tune), MAXSIM_NV_VARIANT, the
 * tuning table (tune.h).
 */
static void nv_pick(struct nvpath *nv, const struct ms_cl *cl, const struct nv_shape *sh,
                    const char *forced)
{
    const int smr_most = stream_max_rb(nv->kp);
    char dev[640], klass[160], tuned[128];

    nv->ldsm = env_int("MAXSIM_NV_LDSM", 1);
    nv->cpasync = env_int("MAXSIM_NV_CPASYNC", 1);
    nv->sumb = env_int("MAXSIM_NV_SUM_BATCH", 1); /* ms_nv_sum's loads in flight (same bits) */
    if (nv->sumb < 1 || nv->sumb > 32)
        nv->sumb = 1;
    nv->kernel = stream_fits(nv->kp, sh) ? NV_STREAM : NV_STAGED;
    nv->smr = sh->max_rb < 1
                  ? 1
                  : (int)(sh->max_rb <= (uint64_t)smr_most ? sh->max_rb : (uint64_t)smr_most);
    nv->split = sh->cap_docs > 16 * sh->cus;
    nv->sw = nv->split ? 2 : 4;
    nv->ss = nv->split ? 3 : 4;
    nv->st = 16;
    nv->warps_per_cu = nv->split ? 32 : 16;
    stream_ring(nv);
    nv->mr = sh->total_rb >= 16 && nv->kp <= 128 ? 4 : sh->total_rb >= 2 && nv->kp <= 256 ? 2 : 1;
    nv->wc = sh->total_rb >= 8 ? 1 : sh->total_rb >= 4 ? 2 : 4;
    nv->nch = 0;
    nv->ring = 0;
    nv->warps = 4;
    nv->nt = 1;
    /* 1,024+ row blocks (512 queries of 32 tokens): the row tiles of a run of documents side
     * by side, sharing its chunks in L2 (H200: 3.5-7% faster at 512-4,000 queries, 128-256
     * within 0.5% either way; scripts/nv-sweep) */
    nv->rtfast = sh->total_rb >= 1024;
    nv->tuned = 0;
    if (!apply_variant(nv, forced, sh) && !apply_variant(nv, getenv("MAXSIM_NV_VARIANT"), sh)) {
        device_key(cl, dev, sizeof dev);
        shape_class(nv->kp, nv->i8 ? MS_PREC_I8 : 0, sh, klass, sizeof klass);
        if (ms_tune_lookup(dev, klass, tuned, sizeof tuned))
            nv->tuned = apply_variant(nv, tuned, sh);
    }
    while (nv->nch == 0) {
        for (int ch = 128; ch >= 16; ch /= 2)
            if (staged_slot_bytes(nv, ch) <= 40960 && ch % (16 * nv->wc) == 0) {
                nv->nch = ch;
                break;
            }
        if (nv->nch || nv->wc == 1)
            break;
        nv->wc /= 2;
    }
    if (nv->kernel == NV_STREAM)
        snprintf(nv->variant, sizeof nv->variant,
                 "stream (row blocks per warp %d, warps %d%s, ring %d x %d tokens, %d warps per "
                 "CU)%s",
                 nv->smr, nv->sw, nv->split ? " sharing each document" : "", nv->ss, nv->st,
                 nv->warps_per_cu, nv->tuned ? ", tuned" : "");
    else if (nv->ring == 0 && nv->warps == 4 && nv->nt == 1 && !nv->rtfast)
        snprintf(nv->variant, sizeof nv->variant,
                 "staged (row blocks per warp %d, column warps %d, chunk %d)%s", nv->mr, nv->wc,
                 nv->nch, nv->tuned ? ", tuned" : "");
    else
        snprintf(nv->variant, sizeof nv->variant,
                 "staged (row blocks per warp %d, column warps %d, chunk %d, %s%d, %d warps, "
                 "%d tile%s a step%s)%s",
                 nv->mr, nv->wc, nv->nch, nv->ring ? "ring of " : "double buffer ",
                 nv->ring ? nv->ring : 2, nv->warps, nv->nt, nv->nt > 1 ? "s" : "",
                 nv->rtfast ? ", row tiles first" : "", nv->tuned ? ", tuned" : "");
}

int ms_scorer_tune_keys(const struct ms_cl *cl, const struct ms_emb *q,
                        const struct ms_scorer_opts *o, char *device, size_t dcap, char *klass,
                        size_t kcap)
{
    if (!ms_nv_wanted(cl, q, o)) /* the portable GPU kernel has variants too */
        return gpu_wanted(cl) ? gpu_tune_keys(cl, q, o, device, dcap, klass, kcap) : 0;
    const struct nv_shape sh = nv_shape_of(cl, q, o->max_docs ? o->max_docs : 1);
    device_key(cl, device, dcap);
    shape_class(nv_kp(q->dim, o->precision), o->precision, &sh, klass, kcap);
    return 1;
}

int ms_scorer_tune_candidates(const struct ms_cl *cl, const struct ms_emb *q,
                              const struct ms_scorer_opts *o, char (*out)[64], int max)
{
    static const int ring[][2] = { { 1, 4 }, { 2, 4 }, { 4, 4 }, { 2, 3 }, { 4, 3 }, { 1, 6 } };
    const uint32_t kp = nv_kp(q->dim, o->precision);
    const struct nv_shape sh = nv_shape_of(cl, q, o->max_docs ? o->max_docs : 1);
    const int smr = sh.max_rb < 1 ? 1 : (int)sh.max_rb;
    int n = 0;
    if (!ms_nv_wanted(cl, q, o))
        return gpu_wanted(cl) ? gpu_tune_candidates(cl, q, o, out, max) : 0;
    if (stream_fits(kp, &sh))
        for (int split = 0; split <= 1; split++)
            for (size_t r = 0; r < sizeof ring / sizeof ring[0] && n < max; r++)
                if ((uint32_t)(ring[r][0] * ring[r][1]) * 16u * (kp + 8) * 2 <= 40960 &&
                    !(split && ring[r][0] == 1))
                    snprintf(out[n++], 64, "stream,%d,%d,%d,16,%d,%d", smr, ring[r][0], ring[r][1],
                             split ? 32 : 16, split);
    for (int mr = 1; mr <= 4; mr *= 2)
        for (int wc = 1; wc <= 4; wc *= 2)
            for (int nch = 32; nch <= 64; nch *= 2) {
                if ((mr == 4 && kp > 128) || (mr == 2 && kp > 256) || nch % (16 * wc) != 0 ||
                    2u * (uint32_t)nch * (kp + 8) * 2 > 40960 || n >= max)
                    continue;
                /* a row tile more than twice the batch's rows only multiplies zeros */
                if ((uint64_t)(4 / wc) * (uint64_t)mr > 2 * (sh.total_rb ? sh.total_rb : 1))
                    continue;
                snprintf(out[n++], 64, "staged,%d,%d,%d", mr, wc, nch);
            }
    /* Many row blocks (compute-bound): the one-barrier rings, 8 warps sharing a chunk, two
     * tiles a step, 3 row blocks a warp (12 warps a multiprocessor), row tiles first. */
    static const int wide[][7] = { { 4, 1, 64, 2, 4, 1, 0 }, { 4, 1, 48, 3, 4, 1, 0 },
                                   { 4, 1, 32, 4, 4, 1, 0 }, { 4, 1, 64, 2, 4, 2, 0 },
                                   { 4, 1, 48, 3, 4, 2, 0 }, { 4, 1, 64, 2, 8, 1, 0 },
                                   { 4, 1, 48, 3, 8, 1, 0 }, { 4, 1, 48, 3, 8, 2, 0 },
                                   { 2, 1, 64, 2, 8, 1, 0 }, { 3, 1, 64, 2, 4, 1, 0 },
                                   { 3, 1, 48, 3, 4, 1, 0 }, { 4, 1, 64, 2, 4, 1, 1 },
                                   { 4, 1, 48, 3, 4, 2, 1 } };
    for (size_t i = 0; i < sizeof wide / sizeof wide[0] && n < max; i++) {
        const int *w = wide[i];
        if ((uint64_t)(w[4] / w[1]) * (uint64_t)w[0] > 2 * sh.total_rb || kp > 128 ||
            (uint32_t)w[3] * (uint32_t)w[2] * (kp + 8) * 2 > 40960)
            continue;
        snprintf(out[n++], 64, "staged,%d,%d,%d,%d,%d,%d,%d", w[0], w[1], w[2], w[3], w[4], w[5],
                 w[6]);
    }
    return n;
}

void ms_nv_release(struct ms_scorer *s)
{
    struct nvpath *nv = &s->nv;
    for (int i = 0; i < s->n_groups; i++) {
        ms_cl_release(&s->groups[i].nv_q);
        ms_cl_release(&s->groups[i].nv_rb_valid);
        ms_cl_release(&s->groups[i].nv_q_blk);
        ms_cl_release(&s->groups[i].nv_inv_q);
    }
    ms_cl_release(&nv->docs);
    ms_cl_release(&nv->part);
    ms_cl_release(&nv->dmax);
    if (nv->tmp)
        ms_cl_pinned_free(s->cl, nv->tmp_handle);
    cl_kernel *ks[] = { &nv->prep_f32,   &nv->prep_f16,   &nv->prep8_f32,  &nv->prep8_f16,
                        &nv->prep32_f32, &nv->prep32_f16, &nv->absmax_f32, &nv->absmax_f16,
                        &nv->prepi8_f32, &nv->prepi8_f16, &nv->score,      &nv->sum,
                        &nv->stream };
    for (size_t i = 0; i < sizeof ks / sizeof ks[0]; i++)
        if (*ks[i])
            clReleaseKernel(*ks[i]);
    if (nv->prog)
        clReleaseProgram(nv->prog);
    memset(nv, 0, sizeof *nv);
}

/* Queries of group g as float16 bits (or the precision's operands), each padded to a multiple of
 * 16 rows and kp columns; under int8 also each row's 1 / s_q (zeros elsewhere). */
static int nv_upload_group(struct ms_scorer *s, const struct ms_emb *q, struct qgroup *g,
                           struct ms_err *err)
{
    const uint32_t kp = s->nv.kp;
    uint64_t n_rb = 0;
    uint16_t *host = NULL;
    uint32_t *valid = NULL, *blk = NULL;
    float *inv_q = NULL, *row = NULL;
    int status = MS_OK;

    for (uint64_t i = 0; i < g->nq; i++)
        n_rb += ms_ceil_div(ms_emb_row_len(q, g->q0 + i), 16);
    if (n_rb > UINT32_MAX / 16)
        return ms_err_set(err, MS_ERR_RUNTIME, "too many query tokens for the NVIDIA path");
    if (!(host = ms_calloc(n_rb ? n_rb * 16 * kp : 1, sizeof *host, err)) ||
        !(valid = ms_malloc((n_rb ? n_rb : 1) * sizeof *valid, err)) ||
        !(blk = ms_malloc((g->nq + 1) * sizeof *blk, err)) ||
        !(inv_q = ms_calloc(n_rb ? n_rb * 16 : 1, sizeof *inv_q, err)) ||
        !(row = ms_malloc((s->dim ? s->dim : 1) * sizeof *row, err))) {
        status = err->status;
        goto done;
    }
    n_rb = 0;
    blk[0] = 0;
    for (uint64_t i = 0; i < g->nq; i++) {
        const uint64_t qi = g->q0 + i, n = ms_emb_row_len(q, qi);
        for (uint64_t t = 0; t < n; t++) {
            const uint64_t tok = q->offsets[qi] + t;
            uint16_t *dst = host + (n_rb * 16 + t) * kp;
            const double scale = s->normalize ? ms_emb_inv_norm(q, tok) : 1.0;
            if (s->nv.tf32) /* the row's kp / 2 float32, rounded unless raw */
                for (uint32_t k = 0; k < s->dim; k++) {
                    float v = (float)(ms_emb_value(q, tok, k) * scale);
                    if (s->nv.tf32 != NV_TF32_RAW)
                        v = ms_round_tf32(v);
                    memcpy(dst + 2 * k, &v, sizeof v);
                }
            else if (s->nv.f8) /* the row's 2 * kp bytes */
                for (uint32_t k = 0; k < s->dim; k++)
                    ((uint8_t *)dst)[k] =
                        ms_float_to_e4m3((float)(ms_emb_value(q, tok, k) * scale));
            else if (s->nv.i8) { /* the row's 2 * kp bytes of codes, and its scale */
                for (uint32_t k = 0; k < s->dim; k++)
                    row[k] = (float)(ms_emb_value(q, tok, k) * scale);
                inv_q[n_rb * 16 + t] = ms_quantize_i8_row(row, s->dim, (int8_t *)dst);
            } else
                for (uint32_t k = 0; k < s->dim; k++)
                    dst[k] = q->dtype == MS_DTYPE_F16 && !s->normalize
                                 ? ((const uint16_t *)q->tokens)[tok * s->dim + k]
                                 : ms_float_to_half((float)(ms_emb_value(q, tok, k) * scale));
        }
        for (uint64_t t = 0; t < n; t += 16)
            valid[n_rb++] = (uint32_t)(n - t < 16 ? n - t : 16);
        blk[i + 1] = (uint32_t)n_rb;
    }
    g->n_rb = (uint32_t)n_rb;
    if (!(g->nv_q =
              ms_cl_buffer(s->cl, CL_MEM_READ_ONLY, n_rb * 16 * kp * 2, host, "NV queries", err)) ||
        !(g->nv_rb_valid =
              ms_cl_buffer(s->cl, CL_MEM_READ_ONLY, n_rb * 4, valid, "NV row blocks", err)) ||
        !(g->nv_q_blk = ms_cl_buffer(s->cl, CL_MEM_READ_ONLY, (g->nq + 1) * 4, blk,
                                     "NV query blocks", err)) ||
        !(g->nv_inv_q = ms_cl_buffer(s->cl, CL_MEM_READ_ONLY, n_rb * 16 * sizeof *inv_q, inv_q,
                                     "NV query scales", err)))
        status = err->status;
done:
    free(host);
    free(valid);
    free(blk);
    free(inv_q);
    free(row);
    return status;
}

/*
 * A failure to build or allocate is an error, not a silent fallback to the portable kernel:
 * the user would otherwise get a path 100 times slower without a word (MAXSIM_NV_MMA=0 is the
 * way out, and the error says so).
 */
int ms_nv_create(struct ms_scorer *s, const struct ms_emb *q, struct ms_err *err)
{
    struct nvpath *nv = &s->nv;
    uint64_t max_rb = 0;
    char opts[512];
    const char *extra = getenv("MAXSIM_NV_BUILD_OPTS"); /* e.g. -cl-nv-verbose */

    const int has_f8 = nv_has_f8(s->cl);
    nv->f8 = s->precision == MS_PREC_F8;
    nv->i8 = s->precision == MS_PREC_I8;
    if (s->precision == MS_PREC_TF32 && nv_tf32_mode(&nv->tf32, err) != MS_OK)
        return err->status;
    nv->kp = nv_kp(s->dim, s->precision);
    const struct nv_shape sh = nv_shape_of(s->cl, q, s->cap_docs);
    nv_pick(nv, s->cl, &sh, s->variant);
    snprintf(
        opts, sizeof opts,
        "-cl-std=CL1.2 -DMS_NVIDIA=1 -DMS_NV_KP=%u -DMS_NV_MR=%d -DMS_NV_WC=%d "
        "-DMS_NV_NCH=%d -DMS_NV_SMR=%d -DMS_NV_SW=%d -DMS_NV_SS=%d -DMS_NV_ST=%d -DMS_NV_SPLIT=%d "
        "-DMS_NV_LDSM=%d -DMS_NV_CPASYNC=%d -DMS_NV_F8=%d -DMS_NV_RING=%d -DMS_NV_WARPS=%d "
        "-DMS_NV_NT=%d -DMS_NV_RTFAST=%d -DMS_NV_SUMB=%d -DMS_NV_TF32=%d -DMS_NV_TF32_CVT=%d "
        "-DMS_NV_I8=%d -DMS_NV_HAS_F8=%d%s%s",
        nv->kp, nv->mr, nv->wc, nv->nch, nv->smr, nv->sw, nv->ss, nv->st, nv->split, nv->ldsm,
        nv->cpasync, nv->f8, nv->ring, nv->warps, nv->nt, nv->rtfast, nv->sumb, nv->tf32 != 0,
        nv->tf32 == NV_TF32_FUSED ? 1
        : nv->tf32 == NV_TF32_CVT ? 2
                                  : 0,
        nv->i8, has_f8, extra ? " " : "", extra ? extra : "");
    if (ms_cl_program(s->cl, "maxsim_nv.cl", opts, &nv->prog, err) != MS_OK)
        return ms_err_prefix(err, "NVIDIA tensor-core path (MAXSIM_NV_MMA=0 turns it off)");
    if (ms_cl_kernel(nv->prog, "ms_nv_prep_f32", &nv->prep_f32, err) != MS_OK ||
        ms_cl_kernel(nv->prog, "ms_nv_prep_f16", &nv->prep_f16, err) != MS_OK ||
        (has_f8 && ms_cl_kernel(nv->prog, "ms_nv_prep8_f32", &nv->prep8_f32, err) != MS_OK) ||
        (has_f8 && ms_cl_kernel(nv->prog, "ms_nv_prep8_f16", &nv->prep8_f16, err) != MS_OK) ||
        ms_cl_kernel(nv->prog, "ms_nv_prep32_f32", &nv->prep32_f32, err) != MS_OK ||
        ms_cl_kernel(nv->prog, "ms_nv_prep32_f16", &nv->prep32_f16, err) != MS_OK ||
        ms_cl_kernel(nv->prog, "ms_nv_absmax_f32", &nv->absmax_f32, err) != MS_OK ||
        ms_cl_kernel(nv->prog, "ms_nv_absmax_f16", &nv->absmax_f16, err) != MS_OK ||
        ms_cl_kernel(nv->prog, "ms_nv_prepi8_f32", &nv->prepi8_f32, err) != MS_OK ||
        ms_cl_kernel(nv->prog, "ms_nv_prepi8_f16", &nv->prepi8_f16, err) != MS_OK ||
        ms_cl_kernel(nv->prog, "ms_nv_score", &nv->score, err) != MS_OK ||
        ms_cl_kernel(nv->prog, "ms_nv_sum", &nv->sum, err) != MS_OK ||
        ms_cl_kernel(nv->prog, "ms_nv_stream", &nv->stream, err) != MS_OK)
        return err->status;
    /* int8's M (the kernels take the argument in every build) */
    if (!(nv->dmax = ms_cl_buffer(s->cl, CL_MEM_READ_WRITE, 4, NULL, "NV document scale", err)))
        return err->status;
    for (int i = 0; i < s->n_groups; i++) {
        if (nv_upload_group(s, q, &s->groups[i], err) != MS_OK)
            return err->status;
        if (s->groups[i].n_rb > max_rb)
            max_rb = s->groups[i].n_rb;
    }
    if (nv->kernel == NV_STAGED) {
        if (max_rb * s->cap_docs * sizeof(float) > s->limit)
            return ms_err_set(err, MS_ERR_RUNTIME,
                              "NVIDIA path: %llu row blocks x %llu documents of partial scores "
                              "exceed one buffer; lower the block size",
                              (unsigned long long)max_rb, (unsigned long long)s->cap_docs);
        if (!(nv->part =
                  ms_cl_buffer(s->cl, CL_MEM_READ_WRITE, max_rb * s->cap_docs * sizeof(float), NULL,
                               "NV partial scores", err)))
            return err->status;
    }
    nv->on = 1;
    snprintf(s->path, sizeof s->path, "NVIDIA tensor cores (sm_%d%d), %s%s%s",
             s->cl->info.nv_cc_major, s->cl->info.nv_cc_minor,
             nv->tf32 ? tf32_mode_name(nv->tf32)
             : nv->i8 ? "int8 (a scale a query row, one a document block)"
                      : "",
             nv->tf32 || nv->i8 ? ", " : "", nv->variant);
    ms_cl_note(s->cl, "scorer: %s", s->path);
    return MS_OK;
}

/* A launch of the scoring path: waited for and timed into last_kernel_s, or, while
 * ms_scorer_start enqueues a block (s->rec), only recorded there. */
static int nv_launch(struct ms_scorer *s, cl_kernel k, cl_uint dims, const size_t *global,
                     const size_t *local, const char *name, struct ms_err *err)
{
    struct inflight *f = s->rec;
    if (!f)
        return ms_cl_launch(s->cl, k, dims, global, local, name, &s->last_kernel_s, err);
    if (f->n_kev == MS_INFLIGHT_EVENTS) /* ms_nv_can_start counts them: never */
        return ms_err_set(err, MS_ERR_RUNTIME, "internal: more than %d kernels in one block",
                          MS_INFLIGHT_EVENTS);
    if (ms_cl_enqueue(s->cl, k, dims, global, local, name, &f->kev[f->n_kev], err) != MS_OK)
        return err->status;
    f->n_kev++;
    return MS_OK;
}

/* The stream kernel on group g: scores straight into s->out ([nq][nd]). */
static int nv_stream_group(struct ms_scorer *s, const struct qgroup *g, cl_mem dsrc, uint64_t nd,
                           struct ms_err *err)
{
    struct nvpath *nv = &s->nv;
    const uint64_t cus = s->cl->info.compute_units ? s->cl->info.compute_units : 1;
    /* A grid that is resident at once (warps_per_cu warps on every multiprocessor, all queries
     * of the group together), each warp taking every warp_stride-th document: no second wave
     * and no tail of idle multiprocessors; at most one warp a document. */
    uint64_t warps = (uint64_t)nv->warps_per_cu * cus / (g->nq ? g->nq : 1);
    /* split: the work-group's warps share each document, so a work-group per document */
    const uint64_t per_doc = nv->split ? (uint64_t)nv->sw : 1;
    if (warps > nd * per_doc)
        warps = nd * per_doc;
    if (warps < 1)
        warps = 1;
    const uint64_t n_wg = ms_ceil_div(warps, (uint64_t)nv->sw);
    const cl_uint n_docs = (cl_uint)nd;
    const cl_uint warp_stride = (cl_uint)(nv->split ? n_wg : n_wg * (uint64_t)nv->sw);
    const size_t local[2] = { 32 * (size_t)nv->sw, 1 };
    const size_t global[2] = { n_wg * local[0], g->nq };
    if (MS_CL_SET_ARGS(nv->stream, "ms_nv_stream", err, MS_ARG(dsrc), MS_ARG(s->doc_tile),
                       MS_ARG(s->doc_len), MS_ARG(n_docs), MS_ARG(warp_stride), MS_ARG(g->nv_q),
                       MS_ARG(g->nv_rb_valid), MS_ARG(g->nv_q_blk), MS_ARG(s->out),
                       MS_ARG(g->nv_inv_q), MS_ARG(nv->dmax)) != MS_OK)
        return err->status;
    return nv_launch(s, nv->stream, 2, global, local, "ms_nv_stream", err);
}

/* The staged kernel on group g, then the sum of each query's row blocks into s->out. */
static int nv_staged_group(struct ms_scorer *s, const struct qgroup *g, cl_mem dsrc, uint64_t nd,
                           struct ms_err *err)
{
    struct nvpath *nv = &s->nv;
    const cl_uint n_rb = g->n_rb, n_q = (cl_uint)g->nq, n_docs = (cl_uint)nd;
    const uint64_t tile_rb = (uint64_t)(nv->warps / nv->wc) * (uint64_t)nv->mr;
    const uint64_t n_rt = ms_ceil_div(n_rb, tile_rb);
    /* Enough work-groups to fill the device several times over, each a run of documents long
     * enough that its register-resident query fragments are reused. */
    const uint64_t want = 8 * (uint64_t)(s->cl->info.compute_units ? s->cl->info.compute_units : 1);
    uint64_t per = n_rt ? ms_ceil_div(nd * n_rt, want) : 1;
    if (per < 1)
        per = 1;
    const cl_uint docs_per_wg = (cl_uint)per;
    if (n_rb) {
        /* rtfast: the row tiles of a run of documents are neighbours in the grid, so they run
         * together and read the run's chunks from L2 rather than memory */
        const size_t wg = 32 * (size_t)nv->warps, n_runs = ms_ceil_div(nd, per);
        const size_t local[2] = { wg, 1 };
        const size_t global[2] = { nv->rtfast ? n_rt * wg : n_runs * wg,
                                   nv->rtfast ? n_runs : n_rt };
        if (MS_CL_SET_ARGS(nv->score, "ms_nv_score", err, MS_ARG(dsrc), MS_ARG(s->doc_tile),
                           MS_ARG(s->doc_len), MS_ARG(n_docs), MS_ARG(docs_per_wg), MS_ARG(g->nv_q),
                           MS_ARG(g->nv_rb_valid), MS_ARG(n_rb), MS_ARG(nv->part),
                           MS_ARG(g->nv_inv_q), MS_ARG(nv->dmax)) != MS_OK ||
            nv_launch(s, nv->score, 2, global, local, "ms_nv_score", err) != MS_OK)
            return err->status;
    }
    const size_t local[2] = { 64, 1 };
    const size_t global[2] = { ms_ceil_div(nd, 64) * 64, g->nq };
    if (MS_CL_SET_ARGS(nv->sum, "ms_nv_sum", err, MS_ARG(nv->part), MS_ARG(n_docs),
                       MS_ARG(g->nv_q_blk), MS_ARG(n_q), MS_ARG(s->out)) != MS_OK)
        return err->status;
    return g->nq ? nv_launch(s, nv->sum, 2, global, local, "ms_nv_sum", err) : MS_OK;
}

/*
 * int8: the block's ntok tokens, uploaded to s->raw, into codes in nv->docs with one scale: M
 * zeroed (also for a block without tokens, whose scores are 0 whatever M is), M by
 * ms_nv_absmax_* (work-groups enough to fill the device a few times, each a grid-stride loop, so
 * that few atomics meet on M), then the codes by ms_nv_prepi8_* (one work-item per 8 codes).
 */
static int nv_prep_i8(struct ms_scorer *s, const struct ms_emb *docs, uint64_t ntok,
                      struct ms_err *err)
{
    struct nvpath *nv = &s->nv;
    const cl_uint dim = s->dim, n_tok = (cl_uint)ntok;
    const cl_int normalize = s->normalize;
    const cl_uint zero = 0;
    const int f16 = docs->dtype == MS_DTYPE_F16;
    const cl_int rc =
        clEnqueueFillBuffer(s->cl->queue, nv->dmax, &zero, sizeof zero, 0, 4, 0, NULL, NULL);
    if (rc != CL_SUCCESS)
        return ms_cl_fail(err, "clEnqueueFillBuffer(NV document scale)", rc);
    if (!ntok)
        return MS_OK;
    const uint64_t cus = s->cl->info.compute_units ? s->cl->info.compute_units : 1;
    /* normalize: a work-item a token; else one a 16-byte piece (8 float16 or 4 float32) */
    const uint64_t units = normalize ? ntok : ms_ceil_div(ntok * dim, f16 ? 8 : 4);
    uint64_t groups = ms_ceil_div(units, 256);
    if (groups > 4 * cus)
        groups = 4 * cus;
    const size_t rlocal = 256, rglobal = (size_t)groups * 256;
    const size_t local = 64, global = ms_ceil_div(ntok * (nv->kp / 4), 64) * 64;
    cl_kernel absmax = f16 ? nv->absmax_f16 : nv->absmax_f32;
    cl_kernel prep = f16 ? nv->prepi8_f16 : nv->prepi8_f32;
    if (MS_CL_SET_ARGS(absmax, "ms_nv_absmax", err, MS_ARG(s->raw), MS_ARG(n_tok), MS_ARG(dim),
                       MS_ARG(normalize), MS_ARG(nv->dmax)) != MS_OK ||
        nv_launch(s, absmax, 1, &rglobal, &rlocal, "ms_nv_absmax", err) != MS_OK ||
        MS_CL_SET_ARGS(prep, "ms_nv_prepi8", err, MS_ARG(s->raw), MS_ARG(n_tok), MS_ARG(dim),
                       MS_ARG(normalize), MS_ARG(nv->dmax), MS_ARG(nv->docs)) != MS_OK ||
        nv_launch(s, prep, 1, &global, &local, "ms_nv_prepi8", err) != MS_OK)
        return err->status;
    return MS_OK;
}

/*
 * Score documents j0 .. j0+nd-1 (rows no pair needs, see ms_row_used, get length 0) against
 * every query group; sink(gi) fetches group gi's [nq][nd] scores from the device buffer `out`.
 * Float16 documents of dim % 16 == 0 without normalization are used as uploaded; others are
 * converted by ms_nv_prep_* into [token][kp] float16 first.
 */
typedef int (*nv_sink)(void *ctx, int gi, cl_mem out, struct ms_err *err);

static int nv_run_sub(struct ms_scorer *s, const struct ms_emb *docs, uint64_t j0, uint64_t nd,
                      const uint64_t *start, nv_sink sink, void *ctx, struct ms_topk_sink *topk,
                      struct ms_err *err)
{
    struct nvpath *nv = &s->nv;
    const uint64_t tok0 = docs->offsets[j0], ntok = docs->offsets[j0 + nd] - tok0;
    const size_t esize = ms_dtype_size(docs->dtype);
    const int direct = nv->tf32 ? tf32_direct(s, docs)
                                : docs->dtype == MS_DTYPE_F16 && s->dim == nv->kp &&
                                      !s->normalize && !nv->f8 && !nv->i8;
    const cl_uint dim = s->dim, n_tok = (cl_uint)ntok;
    const cl_int normalize = s->normalize;
    cl_int rc = CL_SUCCESS;

    for (uint64_t j = 0; j < nd; j++) {
        s->h_doc_tile[j] = (uint32_t)(docs->offsets[j0 + j] - tok0); /* first token */
        s->h_doc_len[j] = ms_row_used(start, j0 + j) ? (uint32_t)ms_emb_row_len(docs, j0 + j) : 0;
    }
    /* ms_scorer_start (s->rec): on the copy queue, beside the block before's kernels, timed
     * into its entry. Blocking either way, and in order: all three are in on return. */
    cl_command_queue qu = s->rec ? s->copy_q : s->cl->queue;
    if (ntok) {
        const size_t bytes = ntok * dim * esize;
        if (ms_cl_write_on(
                s->cl, qu, s->raw, bytes, (const char *)docs->tokens + tok0 * dim * esize,
                s->rec ? &s->rec->upload_s : &s->last_upload_s, "NV documents", err) != MS_OK)
            return err->status;
        *(s->rec ? &s->rec->upload_bytes : &s->last_upload_bytes) += bytes;
    }
    rc = clEnqueueWriteBuffer(qu, s->doc_tile, CL_TRUE, 0, nd * 4, s->h_doc_tile, 0, NULL, NULL);
    if (rc == CL_SUCCESS)
        rc = clEnqueueWriteBuffer(qu, s->doc_len, CL_TRUE, 0, nd * 4, s->h_doc_len, 0, NULL, NULL);
    if (rc != CL_SUCCESS)
        return ms_cl_fail(err, "clEnqueueWriteBuffer(NV documents)", rc);
    if (!direct && !nv->docs &&
        !(nv->docs = ms_cl_buffer(s->cl, CL_MEM_READ_WRITE, s->cap_tokens * nv->kp * 2, NULL,
                                  "NV documents", err)))
        return err->status;
    if (nv->i8) { /* codes and M: two passes, also without tokens (M = 0) */
        if (nv_prep_i8(s, docs, ntok, err) != MS_OK)
            return err->status;
    } else if (!direct && ntok && nv->tf32) { /* float32 rows, rounded unless raw */
        cl_kernel prep = docs->dtype == MS_DTYPE_F16 ? nv->prep32_f16 : nv->prep32_f32;
        const cl_int rna = nv->tf32 != NV_TF32_RAW;
        const size_t local = 64, global = ms_ceil_div(ntok * (nv->kp / 2), 64) * 64;
        if (MS_CL_SET_ARGS(prep, "ms_nv_prep32", err, MS_ARG(s->raw), MS_ARG(n_tok), MS_ARG(dim),
                           MS_ARG(normalize), MS_ARG(rna), MS_ARG(nv->docs)) != MS_OK ||
            nv_launch(s, prep, 1, &global, &local, "ms_nv_prep32", err) != MS_OK)
            return err->status;
    } else if (!direct && ntok) {
        cl_kernel prep = nv->f8 ? (docs->dtype == MS_DTYPE_F16 ? nv->prep8_f16 : nv->prep8_f32)
                                : (docs->dtype == MS_DTYPE_F16 ? nv->prep_f16 : nv->prep_f32);
        const size_t local = 64, global = ms_ceil_div(nv->f8 ? ntok * nv->kp : ntok, 64) * 64;
        if (MS_CL_SET_ARGS(prep, "ms_nv_prep", err, MS_ARG(s->raw), MS_ARG(n_tok), MS_ARG(dim),
                           MS_ARG(normalize), MS_ARG(nv->docs)) != MS_OK ||
            nv_launch(s, prep, 1, &global, &local, "ms_nv_prep", err) != MS_OK)
            return err->status;
    }
    const cl_mem dsrc = direct ? s->raw : nv->docs;
    for (int gi = 0; gi < s->n_groups; gi++) {
        const struct qgroup *g = &s->groups[gi];
        if (g->nq == 0)
            continue;
        if ((nv->kernel == NV_STREAM ? nv_stream_group(s, g, dsrc, nd, err)
                                     : nv_staged_group(s, g, dsrc, nd, err)) != MS_OK)
            return err->status;
        if (topk) { /* ms_scorer_run_topk: s->out is [g->nq][nd]; only its top k come back */
            if (ms_topk_sink_put(topk, s->out, g->q0, g->nq, j0, nd, &s->last_kernel_s, err) !=
                MS_OK)
                return err->status;
            continue;
        }
        if (sink(ctx, gi, s->out, err) != MS_OK)
            return err->status;
    }
    return MS_OK;
}

/* Where nv_run_sub's per-group blocks go: ms_scorer_run's score matrix, or the pairs. */
struct nv_ctx {
    struct ms_scorer *s;
    uint64_t j0, nd;
    float *scores; /* run: scores[i * ld + j] */
    uint64_t ld;
    const uint64_t *start, *order; /* pairs: as in ms_scorer_run_pairs */
    const uint32_t *pair_q, *pair_d;
    float *out;
    float *tmp; /* pairs: the group's block on the host */
};

/* Straight into the caller's matrix (rows of nd floats there, of ld here): no copy on the host
 * and no host buffer between, which for score's [1,000 x 100,000] were 400 MB of each. */
static int nv_sink_run(void *ctx, int gi, cl_mem out, struct ms_err *err)
{
    const struct nv_ctx *c = ctx;
    const struct qgroup *g = &c->s->groups[gi];
    struct inflight *f = c->s->rec; /* ms_scorer_start: not waited for here */
    if (f && f->n_rev == MS_INFLIGHT_EVENTS)
        return ms_err_set(err, MS_ERR_RUNTIME, "internal: more than %d read-backs in one block",
                          MS_INFLIGHT_EVENTS);
    const size_t origin[3] = { 0, 0, 0 }, region[3] = { c->nd * sizeof(float), g->nq, 1 };
    const cl_int rc = clEnqueueReadBufferRect(
        c->s->cl->queue, out, f ? CL_FALSE : CL_TRUE, origin, origin, region, c->nd * sizeof(float),
        0, c->ld * sizeof(float), 0, c->scores + g->q0 * c->ld + c->j0, 0, NULL,
        f ? &f->rev[f->n_rev] : NULL);
    if (rc != CL_SUCCESS)
        return ms_cl_fail(err, "clEnqueueReadBufferRect(NV scores)", rc);
    if (f)
        f->n_rev++;
    return MS_OK;
}

static int nv_sink_pairs(void *ctx, int gi, cl_mem out, struct ms_err *err)
{
    const struct nv_ctx *c = ctx;
    const struct qgroup *g = &c->s->groups[gi];
    const float *block = c->tmp;
    const cl_int rc = clEnqueueReadBuffer(c->s->cl->queue, out, CL_TRUE, 0,
                                          g->nq * c->nd * sizeof(float), c->tmp, 0, NULL, NULL);
    if (rc != CL_SUCCESS)
        return ms_cl_fail(err, "clEnqueueReadBuffer(NV scores)", rc);
    for (uint64_t k = c->start[c->j0]; k < c->start[c->j0 + c->nd]; k++) {
        const uint64_t p = c->order[k];
        if (c->pair_q[p] >= g->q0 && c->pair_q[p] - g->q0 < g->nq)
            c->out[p] = block[(c->pair_q[p] - g->q0) * c->nd + (c->pair_d[p] - c->j0)];
    }
    return MS_OK;
}

/* Room for one group's [nq][cap_docs] block on the host: the scorer's, made on first use. */
static float *nv_tmp(struct ms_scorer *s, struct ms_err *err)
{
    uint64_t most = 1;
    if (s->nv.tmp)
        return s->nv.tmp;
    for (int i = 0; i < s->n_groups; i++)
        if (s->groups[i].nq > most)
            most = s->groups[i].nq;
    if (!(s->nv.tmp =
              ms_cl_pinned_alloc(s->cl, most * s->cap_docs * sizeof(float), &s->nv.tmp_handle)))
        ms_err_set(err, MS_ERR_RUNTIME, "out of memory allocating %zu bytes",
                   (size_t)(most * s->cap_docs * sizeof(float)));
    return s->nv.tmp;
}

int ms_nv_run(struct ms_scorer *s, const struct ms_emb *docs, float *scores, uint64_t ld,
              struct ms_topk_sink *sink, struct ms_err *err)
{
    struct nv_ctx c = { .s = s, .scores = scores, .ld = ld };
    int status = MS_OK;
    for (uint64_t j0 = 0; status == MS_OK && j0 < docs->n_rows; j0 += c.nd) {
        c.j0 = j0;
        c.nd = ms_scorer_fit(s, docs, j0, NULL, err);
        if (c.nd == 0 || nv_run_sub(s, docs, j0, c.nd, NULL, nv_sink_run, &c, sink, err) != MS_OK)
            status = err->status;
    }
    return status;
}

int ms_nv_can_start(struct ms_scorer *s, const struct ms_emb *docs)
{
    struct ms_err ignored;
    int groups = 0;
    for (int i = 0; i < s->n_groups; i++)
        groups += s->groups[i].nq > 0;
    /* kernels: two a group and two of preparation at most; a read-back a group */
    return ms_nv_usable(s, docs) && docs->n_rows > 0 && 2 * groups + 2 <= MS_INFLIGHT_EVENTS &&
           ms_scorer_fit(s, docs, 0, NULL, &ignored) == docs->n_rows;
}

int ms_nv_start(struct ms_scorer *s, const struct ms_emb *docs, float *scores, uint64_t ld,
                struct ms_err *err)
{
    struct nv_ctx c = { .s = s, .scores = scores, .ld = ld, .j0 = 0, .nd = docs->n_rows };
    cl_int rc = CL_SUCCESS;
    if (!s->copy_q) {
        s->copy_q =
            clCreateCommandQueue(s->cl->ctx, s->cl->info.device, CL_QUEUE_PROFILING_ENABLE, &rc);
        if (!s->copy_q)
            return ms_cl_fail(err, "clCreateCommandQueue(copy queue)", rc);
    }
    if (!s->raw2) { /* the second set, as ms_scorer_create sized the first */
        size_t raw = 0, tile = 0, len = 0;
        clGetMemObjectInfo(s->raw, CL_MEM_SIZE, sizeof raw, &raw, NULL);
        clGetMemObjectInfo(s->doc_tile, CL_MEM_SIZE, sizeof tile, &tile, NULL);
        clGetMemObjectInfo(s->doc_len, CL_MEM_SIZE, sizeof len, &len, NULL);
        if (!(s->doc_tile2 =
                  ms_cl_buffer(s->cl, CL_MEM_READ_ONLY, tile, NULL, "document tiles", err)) ||
            !(s->doc_len2 =
                  ms_cl_buffer(s->cl, CL_MEM_READ_ONLY, len, NULL, "document lengths", err)) ||
            !(s->raw2 = ms_cl_buffer(s->cl, CL_MEM_READ_ONLY, raw, NULL, "documents", err)))
            return err->status;
    }
    /* this block takes the set the block before the last used (finished by now) */
    cl_mem t = s->raw;
    s->raw = s->raw2;
    s->raw2 = t;
    t = s->doc_tile;
    s->doc_tile = s->doc_tile2;
    s->doc_tile2 = t;
    t = s->doc_len;
    s->doc_len = s->doc_len2;
    s->doc_len2 = t;
    const int status = nv_run_sub(s, docs, 0, docs->n_rows, NULL, nv_sink_run, &c, NULL, err);
    if (status == MS_OK)
        clFlush(s->cl->queue); /* the kernels start now, not at the next blocking call */
    return status;
}

int ms_nv_run_pairs(struct ms_scorer *s, const struct ms_emb *docs, uint64_t j0, uint64_t nd,
                    const uint64_t *start, const uint64_t *order, const uint32_t *pair_q,
                    const uint32_t *pair_d, float *out, struct ms_err *err)
{
    struct nv_ctx c = { .s = s,
                        .j0 = j0,
                        .nd = nd,
                        .start = start,
                        .order = order,
                        .pair_q = pair_q,
                        .pair_d = pair_d,
                        .out = out };
    if (!(c.tmp = nv_tmp(s, err)))
        return err->status;
    return nv_run_sub(s, docs, j0, nd, start, nv_sink_pairs, &c, NULL, err);
}
