/*
 * test_plaid.c - PLAID indexes (tests/fixtures_plaid.py writes them with its
 * own ColBERT packing): the codec's test vectors, decoding against the
 * generator's known buckets and decompressed tokens, the OpenCL rerank and
 * approximate kernels against the double-precision reference, search recall
 * against exhaustive exact search, and every refused index with its message.
 */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cl_dev.h"
#include "npy.h"
#include "plaid.h"
#include "plaid_cl.h"
#include "src.h"
#include "testutil.h"

static const char *const GOOD[] = { "plaid_fp1", "plaid_fp2",   "plaid_fp4", "plaid_np8",
                                    "plaid_np2", "plaid_short", "plaid_long" };
enum { NGOOD = sizeof GOOD / sizeof GOOD[0] };

/* A whole .npy fixture in memory; *data points at its elements. */
static uint8_t *load_npy(const char *path, struct ms_npy_header *h, const uint8_t **data)
{
    struct ms_err err;
    size_t n;
    uint8_t *buf = (uint8_t *)test_read_file(path, &n);
    cr_assert(ms_npy_parse_preamble(buf, (size_t)n, h, &err) == 0, "%s", err.msg);
    cr_assert(ms_npy_parse_header(buf, (size_t)n, h, &err) == 0, "%s", err.msg);
    *data = buf + h->data_offset;
    return buf;
}

static void open_index(struct ms_plaid *p, const char *name)
{
    struct ms_err err = { 0 };
    cr_assert(ms_plaid_open(p, fixture(name), &err) == 0, "%s: %s", name, err.msg);
}

static void read_queries(struct ms_emb *q, const char *name)
{
    struct ms_src src;
    struct ms_err err = { 0 };
    cr_assert(ms_src_open(&src, fixture(name), NULL, &err) == 0, "%s", err.msg);
    ms_emb_init(q);
    cr_assert(ms_src_read(&src, 0, src.n_rows, q, &err) == 0, "%s", err.msg);
    ms_src_close(&src);
}

Test(plaid_codec, packing_test_vectors)
{
    const uint8_t b2[4] = { 1, 2, 3, 0 }, b4[2] = { 1, 14 };
    uint8_t row[1];
    ms_plaid_pack(b2, 4, 2, row);
    cr_assert_eq(row[0], 0x9C);
    for (uint32_t d = 0; d < 4; d++)
        cr_assert_eq(ms_plaid_bucket(row, 2, d), b2[d]);
    ms_plaid_pack(b4, 2, 4, row);
    cr_assert_eq(row[0], 0x87);
    for (uint32_t d = 0; d < 2; d++)
        cr_assert_eq(ms_plaid_bucket(row, 4, d), b4[d]);
    /* nbits=1: bit 7 of byte 0 is dimension 0 */
    const uint8_t b1[8] = { 1, 0, 0, 0, 0, 0, 0, 0 };
    ms_plaid_pack(b1, 8, 1, row);
    cr_assert_eq(row[0], 0x80);
}

Test(plaid_codec, round_trip_every_nbits)
{
    uint64_t rng = 5;
    for (uint32_t nbits = 1; nbits <= 8; nbits *= 2) {
        uint8_t b[64], row[64];
        for (int i = 0; i < 64; i++)
            b[i] = (uint8_t)test_rand_below(&rng, 1u << nbits);
        ms_plaid_pack(b, 64, nbits, row);
        for (uint32_t d = 0; d < 64; d++)
            cr_assert_eq(ms_plaid_bucket(row, nbits, d), b[d], "nbits %u dim %u", nbits, d);
    }
}

Test(plaid_index, decode_matches_generator_buckets)
{
    for (int i = 0; i < NGOOD; i++) {
        struct ms_plaid p;
        struct ms_npy_header h;
        const uint8_t *known;
        char name[128];
        open_index(&p, GOOD[i]);
        snprintf(name, sizeof name, "%s.buckets.npy", GOOD[i]);
        uint8_t *buf = load_npy(fixture(name), &h, &known);
        cr_assert_eq(h.shape[0], p.n_tokens, "%s", GOOD[i]);
        cr_assert_eq(h.shape[1], p.dim);
        uint8_t *rows = malloc(p.n_tokens * p.packed + 1);
        ms_plaid_residuals(&p, 0, p.n_tokens, rows);
        for (uint64_t t = 0; t < p.n_tokens; t++)
            for (uint32_t d = 0; d < p.dim; d++)
                cr_assert_eq(ms_plaid_bucket(rows + t * p.packed, p.nbits, d), known[t * p.dim + d],
                             "%s token %llu dim %u", GOOD[i], (unsigned long long)t, d);
        /* codes too */
        snprintf(name, sizeof name, "%s.codes.npy", GOOD[i]);
        struct ms_npy_header hc;
        const uint8_t *kc;
        uint8_t *cbuf = load_npy(fixture(name), &hc, &kc);
        uint32_t *codes = malloc(p.n_tokens * 4 + 4);
        ms_plaid_codes(&p, 0, p.n_tokens, codes);
        for (uint64_t t = 0; t < p.n_tokens; t++) {
            int64_t v;
            memcpy(&v, kc + 8 * t, 8);
            cr_assert_eq(codes[t], (uint32_t)v);
        }
        free(codes);
        free(cbuf);
        free(rows);
        free(buf);
        ms_plaid_close(&p);
    }
}

Test(plaid_index, layouts_and_shapes)
{
    struct ms_plaid p;
    open_index(&p, "plaid_np8");
    cr_assert_eq(p.merged, 1);
    cr_assert_str_eq(p.layout, "next-plaid");
    cr_assert_eq(p.n_docs, 60);
    cr_assert_eq(p.doc_off[8] - p.doc_off[7], 0); /* the empty document */
    ms_plaid_close(&p);
    open_index(&p, "plaid_fp4");
    cr_assert_eq(p.merged, 0);
    cr_assert_eq(p.n_parts, 4);
    cr_assert_eq(p.code_bytes, 4);
    cr_assert_eq(p.centroid_dtype, MS_DTYPE_F16);
    cr_assert_str_eq(p.layout, "fast-plaid");
    ms_plaid_close(&p);
    open_index(&p, "plaid_short"); /* 20 centroids, 16 IVF lengths */
    cr_assert_eq(p.n_centroids, 20);
    for (uint32_t c = 16; c < 20; c++)
        cr_assert_eq(p.ivf_off[c + 1] - p.ivf_off[c], 0);
    ms_plaid_close(&p);
    open_index(&p, "plaid_long");
    cr_assert_eq(p.n_centroids, 16);
    ms_plaid_close(&p);
}

Test(plaid_index, decompression_matches_reference)
{
    for (int i = 0; i < NGOOD; i++) {
        struct ms_plaid p;
        struct ms_npy_header h;
        const uint8_t *raw;
        char name[128];
        open_index(&p, GOOD[i]);
        snprintf(name, sizeof name, "%s.decomp.npy", GOOD[i]);
        uint8_t *buf = load_npy(fixture(name), &h, &raw);
        double *x = malloc(p.dim * sizeof *x);
        for (uint64_t t = 0; t < p.n_tokens; t++) {
            ms_plaid_ref_decompress(&p, t, x);
            for (uint32_t d = 0; d < p.dim; d++) {
                double want;
                memcpy(&want, raw + 8 * (t * p.dim + d), 8);
                cr_assert(fabs(x[d] - want) < 1e-9, "%s token %llu dim %u: %g vs %g", GOOD[i],
                          (unsigned long long)t, d, x[d], want);
            }
        }
        free(x);
        free(buf);
        ms_plaid_close(&p);
    }
}

static struct ms_cl cl;
static int have_cl;

static void setup(void)
{
    test_cl_open(&cl);
    have_cl = 1;
}

static void teardown(void)
{
    if (have_cl)
        ms_cl_close(&cl);
}

TestSuite(plaid_cl, .init = setup, .fini = teardown, .timeout = 120);

/* Random pairs (every query, every document including the empty one).
 * approx: 0 exact scores with residuals gathered per call, 1 approximate
 * scores, 2 exact scores with the index resident (the search setup). */
static void check_kernels(const char *index, const char *queries, int mode)
{
    const int approx = mode == 1;
    struct ms_plaid p;
    struct ms_plaid_dev *d;
    struct ms_emb q;
    struct ms_err err = { 0 };
    uint64_t rng = 42;
    enum { N = 300 };
    uint32_t pq[N], pd[N];
    float out[N];

    open_index(&p, index);
    read_queries(&q, queries);
    const int flags = mode == 0   ? 0
                      : mode == 1 ? MS_PLAID_SEARCH | MS_PLAID_GATHER
                                  : MS_PLAID_SEARCH | MS_PLAID_RESIDENT;
    cr_assert(ms_plaid_dev_create(&d, &cl, &p, flags, &err) == 0, "%s", err.msg);
    for (int i = 0; i < N; i++) {
        pq[i] = (uint32_t)test_rand_below(&rng, q.n_rows);
        pd[i] = i < (int)p.n_docs ? (uint32_t)i : (uint32_t)test_rand_below(&rng, p.n_docs);
    }
    if (approx)
        cr_assert(ms_plaid_dev_approx(d, &q, pq, pd, N, out, &err) == 0, "%s", err.msg);
    else
        cr_assert(ms_plaid_dev_rerank(d, &q, pq, pd, N, out, &err) == 0, "%s", err.msg);
    for (int i = 0; i < N; i++) {
        const double want = approx ? ms_plaid_ref_approx(&p, &q, pq[i], pd[i])
                                   : ms_plaid_ref_score(&p, &q, pq[i], pd[i]);
        /* NVIDIA tensor-core centroid scores: float16 queries, about 2^-11 relative a dot */
        const double tol = (approx && ms_plaid_dev_f16_centroids(d) ? 2e-3 : 1e-5) *
                           (double)ms_emb_row_len(&q, pq[i]) * (1.0 + p.dim / 32.0);
        cr_assert(fabs(out[i] - want) <= tol, "%s %s pair %d (q %u, doc %u): %.9g vs %.9g", index,
                  approx ? "approx" : "exact", i, pq[i], pd[i], out[i], want);
    }
    ms_plaid_dev_free(d);
    ms_emb_release(&q);
    ms_plaid_close(&p);
}

Test(plaid_cl, rerank_kernel_matches_reference)
{
    for (int i = 0; i < NGOOD; i++)
        check_kernels(GOOD[i], "plaid_q.npy", 0);
    check_kernels("plaid_corpus", "plaid_corpus_q.npy", 0);
    check_kernels("plaid_fp2", "plaid_q_long.npy", 0); /* float16, 45 tokens > work-group */
    check_kernels("plaid_np8", "plaid_q_long.npy", 0);
}

Test(plaid_cl, rerank_kernel_resident_matches_reference)
{
    for (int i = 0; i < NGOOD; i++)
        check_kernels(GOOD[i], "plaid_q.npy", 2);
    check_kernels("plaid_corpus", "plaid_corpus_q.npy", 2);
    check_kernels("plaid_np2", "plaid_q_long.npy", 2);
}

Test(plaid_cl, approx_kernel_matches_reference)
{
    for (int i = 0; i < NGOOD; i++)
        check_kernels(GOOD[i], "plaid_q.npy", 1);
    check_kernels("plaid_corpus", "plaid_corpus_q.npy", 1);
    check_kernels("plaid_fp2", "plaid_q_long.npy", 1);
    check_kernels("plaid_np8", "plaid_q_long.npy", 1);
}

static double search_recall(const struct ms_plaid_search_opts *o, int flags, struct ms_topk *t)
{
    struct ms_plaid p;
    struct ms_plaid_dev *d;
    struct ms_emb q;
    struct ms_err err = { 0 };
    struct ms_npy_header h;
    const uint8_t *gt;

    open_index(&p, "plaid_corpus");
    read_queries(&q, "plaid_corpus_q.npy");
    cr_assert(ms_plaid_dev_create(&d, &cl, &p, MS_PLAID_SEARCH | flags, &err) == 0, "%s", err.msg);
    cr_assert(ms_topk_init(t, q.n_rows, 10, &err) == 0);
    cr_assert(ms_plaid_dev_search(d, &q, o, t, 0, &err) == 0, "%s", err.msg);
    ms_topk_finish(t);
    uint8_t *buf = load_npy(fixture("plaid_corpus_gt.npy"), &h, &gt);
    uint64_t hit = 0;
    for (uint64_t r = 0; r < q.n_rows; r++)
        for (uint64_t i = 0; i < t->count[r]; i++)
            for (int j = 0; j < 10; j++) {
                int64_t v;
                memcpy(&v, gt + 8 * (r * 10 + (uint64_t)j), 8);
                hit += (uint64_t)v == t->row[r * 10 + i];
            }
    free(buf);
    const double recall = (double)hit / (double)(q.n_rows * 10);
    ms_plaid_dev_free(d);
    ms_emb_release(&q);
    ms_plaid_close(&p);
    return recall;
}

Test(plaid_cl, search_recall_at_defaults)
{
    const struct ms_plaid_search_opts o = { .nprobe = 8, .ncandidates = 4096, .nrerank = 1024 };
    struct ms_topk t, t2;
    const double recall = search_recall(&o, MS_PLAID_GATHER, &t);
    fprintf(stderr, "test_plaid: recall@10 at defaults: %.4f\n", recall);
    cr_assert(recall >= 0.95, "recall@10 %.4f < 0.95", recall);
    /* results are exact scores, best first */
    for (uint64_t r = 0; r < t.n_queries; r++) {
        cr_assert_eq(t.count[r], 10);
        for (uint64_t i = 1; i < t.count[r]; i++)
            cr_assert(t.score[r * 10 + i - 1] >= t.score[r * 10 + i]);
    }
    /* the resident index gives the same bytes */
    search_recall(&o, MS_PLAID_RESIDENT, &t2);
    cr_assert(memcmp(t.row, t2.row, t.n_queries * 10 * sizeof *t.row) == 0);
    cr_assert(memcmp(t.score, t2.score, t.n_queries * 10 * sizeof *t.score) == 0);
    ms_topk_release(&t);
    ms_topk_release(&t2);
}

Test(plaid_cl, search_narrow_settings_still_sane)
{
    /* one probe, few candidates: lower recall, but still results */
    const struct ms_plaid_search_opts o = {
        .nprobe = 1, .ncandidates = 64, .nrerank = 16, .use_threshold = 1, .threshold = 0.2f
    };
    struct ms_topk t;
    const double recall = search_recall(&o, MS_PLAID_RESIDENT, &t);
    fprintf(stderr, "test_plaid: recall@10 with nprobe 1, 64/16 candidates: %.4f\n", recall);
    cr_assert(recall > 0.3);
    ms_topk_release(&t);
}

/* The device pipeline against the host pipeline: the same rows and the
 * same score bytes for every query, at settings that force ties and cuts. */
static void same_as_host(const char *index, const char *queries, struct ms_plaid_search_opts o,
                         int flags, uint64_t k)
{
    struct ms_plaid p;
    struct ms_plaid_dev *d;
    struct ms_emb q;
    struct ms_err err = { 0 };
    struct ms_topk t[2];

    open_index(&p, index);
    read_queries(&q, queries);
    cr_assert(ms_plaid_dev_create(&d, &cl, &p, MS_PLAID_SEARCH | flags, &err) == 0, "%s", err.msg);
    for (int h = 0; h < 2; h++) {
        o.host_pipeline = h;
        cr_assert(ms_topk_init(&t[h], q.n_rows, k < p.n_docs ? k : p.n_docs, &err) == 0);
        cr_assert(ms_plaid_dev_search(d, &q, &o, &t[h], 0, &err) == 0, "%s", err.msg);
        ms_topk_finish(&t[h]);
    }
    for (uint64_t r = 0; r < q.n_rows; r++) {
        cr_assert_eq(t[0].count[r], t[1].count[r], "%s %s nprobe %llu q %llu: %llu vs %llu results",
                     index, queries, (unsigned long long)o.nprobe, (unsigned long long)r,
                     (unsigned long long)t[0].count[r], (unsigned long long)t[1].count[r]);
        for (uint64_t i = 0; i < t[0].count[r]; i++) {
            const uint64_t j = r * t[0].k + i;
            cr_assert(t[0].row[j] == t[1].row[j] && t[0].score[j] == t[1].score[j],
                      "%s %s nprobe %llu ncand %llu nrerank %llu q %llu rank %llu: device %llu "
                      "%.9g, host %llu %.9g",
                      index, queries, (unsigned long long)o.nprobe,
                      (unsigned long long)o.ncandidates, (unsigned long long)o.nrerank,
                      (unsigned long long)r, (unsigned long long)i, (unsigned long long)t[0].row[j],
                      t[0].score[j], (unsigned long long)t[1].row[j], t[1].score[j]);
        }
    }
    ms_topk_release(&t[0]);
    ms_topk_release(&t[1]);
    ms_plaid_dev_free(d);
    ms_emb_release(&q);
    ms_plaid_close(&p);
}

Test(plaid_cl, device_search_equals_host_pipeline)
{
    const struct ms_plaid_search_opts os[] = {
        { .nprobe = 8, .ncandidates = 4096, .nrerank = 1024 },
        { .nprobe = 1, .ncandidates = 64, .nrerank = 16 },
        { .nprobe = 2, .ncandidates = 7, .nrerank = 100 },
        { .nprobe = 24, .ncandidates = 300, .nrerank = 50 }, /* > 16: the round-based probe */
        { .nprobe = 3, .ncandidates = 40, .nrerank = 20, .use_threshold = 1, .threshold = 0.2f },
        { .nprobe = 4, .ncandidates = 30, .nrerank = 30, .trim_zero = 1 },
    };
    for (size_t i = 0; i < sizeof os / sizeof *os; i++) {
        same_as_host("plaid_corpus", "plaid_corpus_q.npy", os[i], MS_PLAID_RESIDENT, 10);
        same_as_host("plaid_corpus", "plaid_corpus_q_ties.npy", os[i], MS_PLAID_RESIDENT, 10);
        same_as_host("plaid_corpus", "plaid_corpus_q_ties.npy", os[i], MS_PLAID_GATHER, 7);
    }
    for (int g = 0; g < NGOOD; g++) {
        same_as_host(GOOD[g], "plaid_q.npy", os[1], MS_PLAID_RESIDENT, 5);
        same_as_host(GOOD[g], "plaid_q.npy", os[2], MS_PLAID_RESIDENT, 100); /* k > documents */
        same_as_host(GOOD[g], "plaid_q_long.npy", os[3], MS_PLAID_GATHER, 10);
    }
}

/* The probe split over centroid slices and merged, and the candidate count
 * and compaction split over bitmap segments, as large indexes (and single
 * queries) run them: the same results as the host pipeline. */
Test(plaid_cl, device_search_sliced_probe_and_segments)
{
    const struct ms_plaid_search_opts os[] = {
        { .nprobe = 8, .ncandidates = 4096, .nrerank = 1024 },
        { .nprobe = 3, .ncandidates = 40, .nrerank = 20 },
        { .nprobe = 16, .ncandidates = 7, .nrerank = 100 },
    };
    const char *slices[] = { "2", "3", "7", "64" }, *segs[] = { "1", "3", "5", "128" };
    for (size_t v = 0; v < sizeof slices / sizeof *slices; v++) {
        setenv("MAXSIM_PLAID_SLICES", slices[v], 1);
        setenv("MAXSIM_PLAID_SEG_WORDS", segs[v], 1);
        for (size_t i = 0; i < sizeof os / sizeof *os; i++) {
            same_as_host("plaid_corpus", "plaid_corpus_q.npy", os[i], MS_PLAID_RESIDENT, 10);
            same_as_host("plaid_corpus", "plaid_corpus_q_ties.npy", os[i], MS_PLAID_RESIDENT, 10);
        }
        for (int g = 0; g < NGOOD; g++)
            same_as_host(GOOD[g], "plaid_q.npy", os[1], MS_PLAID_RESIDENT, 5);
    }
    unsetenv("MAXSIM_PLAID_SLICES");
    unsetenv("MAXSIM_PLAID_SEG_WORDS");
}

/* Trailing zero rows are dropped: padded queries give the unpadded results. */
Test(plaid_cl, padded_queries_are_trimmed)
{
    struct ms_plaid p;
    struct ms_plaid_dev *d;
    struct ms_emb q, qp;
    struct ms_err err = { 0 };
    struct ms_topk t[3];
    struct ms_plaid_search_opts o = { .nprobe = 8, .ncandidates = 4096, .nrerank = 1024 };

    open_index(&p, "plaid_corpus");
    read_queries(&q, "plaid_corpus_q.npy");
    read_queries(&qp, "plaid_corpus_q_pad.npy");
    cr_assert(ms_plaid_dev_create(&d, &cl, &p, MS_PLAID_SEARCH, &err) == 0, "%s", err.msg);
    uint64_t cands[3];
    for (int h = 0; h < 3; h++) {
        const uint64_t c0 = ms_plaid_dev_stats(d)->candidates;
        o.trim_zero = h != 2;
        cr_assert(ms_topk_init(&t[h], q.n_rows, 10, &err) == 0);
        cr_assert(ms_plaid_dev_search(d, h ? &qp : &q, &o, &t[h], 0, &err) == 0, "%s", err.msg);
        ms_topk_finish(&t[h]);
        cands[h] = ms_plaid_dev_stats(d)->candidates - c0;
    }
    cr_assert_eq(cands[0], cands[1]);
    cr_assert(memcmp(t[0].row, t[1].row, q.n_rows * 10 * sizeof *t[0].row) == 0);
    cr_assert(memcmp(t[0].score, t[1].score, q.n_rows * 10 * sizeof *t[0].score) == 0);
    /* untrimmed, the padding rows probe centroids too: more candidates */
    cr_assert(cands[2] > cands[1], "%llu candidates padded, %llu trimmed",
              (unsigned long long)cands[2], (unsigned long long)cands[1]);
    for (int h = 0; h < 3; h++)
        ms_topk_release(&t[h]);
    ms_plaid_dev_free(d);
    ms_emb_release(&q);
    ms_emb_release(&qp);
    ms_plaid_close(&p);
}

/* Every refused index: exit status 2 and the precise message. */
static void expect_bad(const char *name, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void expect_bad(const char *name, const char *fmt, ...)
{
    struct ms_plaid p;
    struct ms_err err = { 0 };
    char want[2048];
    const char *dir = fixture(name);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(want, sizeof want, fmt, ap);
    va_end(ap);
    cr_assert_eq(ms_plaid_open(&p, dir, &err), MS_ERR_INPUT, "%s opened", name);
    cr_assert_str_eq(err.msg, want);
}

Test(plaid_index, bad_indexes)
{
    expect_bad("plaid_bad_missing", "cannot open '%s/centroids.npy': No such file or directory",
               fixture("plaid_bad_missing"));
    expect_bad("plaid_bad_width",
               "'%s/0.residuals.npy': expected rows of 8 bytes (dim 32 x nbits 2 / 8), found 7",
               fixture("plaid_bad_width"));
    expect_bad("plaid_bad_codes",
               "'%s/1.codes.npy': code 16 at row 3 is out of range (expected 0..15)",
               fixture("plaid_bad_codes"));
    expect_bad("plaid_bad_negcode",
               "'%s/0.codes.npy': code -1 at row 5 is out of range (expected 0..15)",
               fixture("plaid_bad_negcode"));
    expect_bad("plaid_bad_ivf",
               "'%s/ivf.npy': document id 60 at 2 is out of range (expected 0..59)",
               fixture("plaid_bad_ivf"));
    expect_bad("plaid_bad_doclens",
               "'%s/0.codes.npy': 141 codes, but 'doclens.0.json' sums to 142 tokens",
               fixture("plaid_bad_doclens"));
    expect_bad("plaid_bad_nbits", "'%s/metadata.json': unsupported nbits 3 (expected 1, 2, 4 or 8)",
               fixture("plaid_bad_nbits"));
    expect_bad("plaid_bad_dtype",
               "'%s/0.codes.npy': unsupported dtype float32 (expected int32 or int64)",
               fixture("plaid_bad_dtype"));
}
