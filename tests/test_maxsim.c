/*
 * test_maxsim.c - the OpenCL scorer (on whatever device `auto` picks: PoCL
 * on CI) against the double-precision reference ms_ref_scores, on many
 * random shapes and on the edges: empty rows, long documents and queries,
 * odd dims, float16 and float32 mixed, and blocks split across runs.
 *
 * Error bound: a dot product of n float32 terms accumulated with FMAs is off
 * by at most about n * 2^-24 * sum |q_k d_k| <= n * 2^-24 * |q| |d|, and the
 * sum over Lq maxes adds Lq * 2^-24 of the total; float16 inputs convert to
 * float32 exactly and their products are exact in float32, so the same
 * bound holds. We allow (dim + Lq + 16) * 2^-23 * sum_i |q_i| max_j |d_j|.
 */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cl_dev.h"
#include "maxsim.h"
#include "testutil.h"
#include "topk.h"

static struct ms_cl cl;

static void setup(void)
{
    test_cl_open(&cl);
}

static void teardown(void)
{
    ms_cl_close(&cl);
}

/* 180 s: a first run with the portable GPU kernel forced (MAXSIM_KERNEL=gpu) compiles one program
 * per dim and tiling on PoCL, a few seconds each, inside the tests that need them. */
TestSuite(maxsim, .init = setup, .fini = teardown, .timeout = 180);

static double norm_of(const struct ms_emb *e, uint64_t t)
{
    double ss = 0.0;
    for (uint32_t k = 0; k < e->dim; k++) {
        const double x = ms_emb_value(e, t, k);
        ss += x * x;
    }
    return sqrt(ss);
}

/* Score with the OpenCL scorer in one run (or in runs of `max_docs` rows
 * when split is set) and return the scores, [nq][nd]. */
static float *cl_scores(const struct ms_emb *q, const struct ms_emb *d, int normalize,
                        uint64_t max_docs, uint64_t max_tokens, int tn, int qb, int wg)
{
    struct ms_err err = { 0 };
    struct ms_scorer_opts o = {
        normalize, max_docs, max_tokens, tn, qb, wg, 0, MS_PREC_EXACT, NULL
    };
    struct ms_scorer *s;
    float *out = malloc((q->n_rows * d->n_rows + 1) * sizeof *out);

    for (uint64_t i = 0; i < q->n_rows * d->n_rows; i++)
        out[i] = NAN; /* every entry must be written */
    cr_assert(ms_scorer_create(&s, &cl, q, &o, &err) == MS_OK, "%s", err.msg);
    cr_assert(ms_scorer_run(s, d, out, d->n_rows, &err) == MS_OK, "%s", err.msg);
    cr_assert(ms_scorer_last_kernel_s(s) >= 0.0);
    ms_scorer_free(s);
    return out;
}

static void check_against_ref(const struct ms_emb *q, const struct ms_emb *d, int normalize,
                              const float *got, const char *what)
{
    double *ref = malloc((q->n_rows * d->n_rows + 1) * sizeof *ref);
    double *qsum = calloc(q->n_rows + 1, sizeof *qsum), *dmax = calloc(d->n_rows + 1, sizeof *dmax);
    uint64_t qmax_len = 0;

    ms_ref_scores(q, d, normalize, ref);
    for (uint64_t i = 0; i < q->n_rows; i++) {
        for (uint64_t t = q->offsets[i]; t < q->offsets[i + 1]; t++)
            qsum[i] += normalize ? 1.0 : norm_of(q, t);
        if (ms_emb_row_len(q, i) > qmax_len)
            qmax_len = ms_emb_row_len(q, i);
    }
    for (uint64_t j = 0; j < d->n_rows; j++)
        for (uint64_t t = d->offsets[j]; t < d->offsets[j + 1]; t++)
            dmax[j] = fmax(dmax[j], normalize ? 1.0 : norm_of(d, t));
    for (uint64_t i = 0; i < q->n_rows; i++) {
        for (uint64_t j = 0; j < d->n_rows; j++) {
            const double r = ref[i * d->n_rows + j], g = got[i * d->n_rows + j];
            const double tol = (q->dim + qmax_len + 16) * 0x1p-23 * qsum[i] * dmax[j];
            if (ms_emb_row_len(q, i) == 0 || ms_emb_row_len(d, j) == 0)
                cr_assert(g == 0.0 && !signbit(g), "%s: empty row: score(%llu, %llu) = %g, not 0",
                          what, (unsigned long long)i, (unsigned long long)j, g);
            cr_assert(fabs(g - r) <= tol,
                      "%s: score(%llu, %llu) = %.9g, reference %.9g, |diff| %g > tol %g", what,
                      (unsigned long long)i, (unsigned long long)j, g, r, fabs(g - r), tol);
        }
    }
    free(ref);
    free(qsum);
    free(dmax);
}

static void run_case(enum ms_dtype qt, enum ms_dtype dt, uint32_t dim, uint64_t nq, uint64_t lq_min,
                     uint64_t lq_max, uint64_t nd, uint64_t ld_min, uint64_t ld_max, int normalize,
                     uint64_t seed)
{
    struct ms_emb q, d;
    char what[200];
    float *got;

    test_random_emb(&q, qt, dim, nq, lq_min, lq_max, &seed);
    test_random_emb(&d, dt, dim, nd, ld_min, ld_max, &seed);
    snprintf(what, sizeof what, "%s x %s dim %u nq %llu lq %llu..%llu nd %llu ld %llu..%llu%s",
             ms_dtype_name(qt), ms_dtype_name(dt), dim, (unsigned long long)nq,
             (unsigned long long)lq_min, (unsigned long long)lq_max, (unsigned long long)nd,
             (unsigned long long)ld_min, (unsigned long long)ld_max, normalize ? " normalize" : "");
    got = cl_scores(&q, &d, normalize, nd ? nd : 1, ms_emb_n_tokens(&d) + 1, 0, 0, 0);
    check_against_ref(&q, &d, normalize, got, what);
    free(got);
    ms_emb_release(&q);
    ms_emb_release(&d);
}

Test(maxsim, random_shapes)
{
    static const uint32_t dims[] = { 1, 33, 48, 96, 128, 256 };
    uint64_t seed = 42;

    for (int c = 0; c < 96; c++) {
        const uint32_t dim = dims[c % 6];
        const enum ms_dtype qt = (c / 6) % 2 ? MS_DTYPE_F16 : MS_DTYPE_F32;
        const enum ms_dtype dt = (c / 12) % 2 ? MS_DTYPE_F16 : MS_DTYPE_F32;
        const int normalize = (c / 24) % 2;
        const uint64_t nq = 1 + test_rand_below(&seed, 4);
        const uint64_t lq_max = 1 + test_rand_below(&seed, 64);
        const uint64_t lq_min = test_rand_below(&seed, lq_max + 1);
        /* Keep the reference's work (nq * lq * nd * ld * dim) near 2e7. */
        const uint64_t ld_max =
            test_rand_below(&seed, 3) == 0 ? 2000 : 1 + test_rand_below(&seed, 300);
        const uint64_t budget = 20000000ull / (nq * lq_max * dim * (ld_max / 2 + 1) + 1);
        const uint64_t nd = test_rand_below(&seed, (budget < 5000 ? budget : 5000) + 1);
        run_case(qt, dt, dim, nq, lq_min, lq_max, nd, 0, ld_max, normalize, seed + (uint64_t)c);
    }
}

Test(maxsim, many_documents)
{
    run_case(MS_DTYPE_F32, MS_DTYPE_F16, 33, 3, 0, 9, 5000, 0, 20, 0, 7);
    run_case(MS_DTYPE_F16, MS_DTYPE_F32, 128, 2, 1, 32, 5000, 1, 10, 1, 8);
}

Test(maxsim, empty_rows)
{
    /* Rows of length 0 and 1 mixed: some queries and documents are empty. */
    run_case(MS_DTYPE_F32, MS_DTYPE_F32, 48, 9, 0, 2, 200, 0, 2, 0, 11);
    run_case(MS_DTYPE_F16, MS_DTYPE_F16, 96, 9, 0, 2, 200, 0, 2, 1, 12);
    /* Everything empty. */
    run_case(MS_DTYPE_F32, MS_DTYPE_F32, 128, 4, 0, 0, 50, 0, 0, 0, 13);
    run_case(MS_DTYPE_F32, MS_DTYPE_F32, 128, 4, 0, 0, 50, 1, 40, 1, 14);
    run_case(MS_DTYPE_F32, MS_DTYPE_F16, 128, 4, 1, 10, 50, 0, 0, 0, 15);
    /* No documents, no queries. */
    run_case(MS_DTYPE_F32, MS_DTYPE_F32, 128, 3, 1, 10, 0, 0, 0, 0, 16);
    run_case(MS_DTYPE_F32, MS_DTYPE_F32, 128, 0, 1, 10, 10, 0, 10, 0, 17);
}

Test(maxsim, long_documents)
{
    run_case(MS_DTYPE_F32, MS_DTYPE_F16, 128, 2, 1, 8, 3, 16384, 16400, 1, 21);
}

Test(maxsim, long_query)
{
    run_case(MS_DTYPE_F16, MS_DTYPE_F32, 64, 2, 1000, 1000, 20, 0, 100, 0, 22);
}

Test(maxsim, dim_4096)
{
    run_case(MS_DTYPE_F32, MS_DTYPE_F32, 4096, 2, 1, 5, 10, 0, 20, 1, 23);
    run_case(MS_DTYPE_F16, MS_DTYPE_F16, 4096, 2, 1, 5, 10, 0, 20, 0, 24);
}

Test(maxsim, other_tilings)
{
    static const int tilings[][3] = {
        { 16, 1, 1 }, { 16, 4, 4 }, { 48, 3, 2 }, { 64, 16, 1 }, { 32, 5, 8 }
    };
    uint64_t seed = 31;
    struct ms_emb q, d;

    test_random_emb(&q, MS_DTYPE_F32, 96, 3, 0, 40, &seed);
    test_random_emb(&d, MS_DTYPE_F16, 96, 300, 0, 150, &seed);
    for (size_t t = 0; t < sizeof tilings / sizeof tilings[0]; t++) {
        float *got = cl_scores(&q, &d, t % 2, 300, ms_emb_n_tokens(&d), tilings[t][0],
                               tilings[t][1], tilings[t][2]);
        check_against_ref(&q, &d, t % 2, got, "tiling");
        free(got);
    }
    ms_emb_release(&q);
    ms_emb_release(&d);
}

/* A copy of rows a .. b-1 of e, as its own block. */
static void slice(struct ms_emb *out, const struct ms_emb *e, uint64_t a, uint64_t b)
{
    struct ms_err err;
    const uint64_t t0 = e->offsets[a], nt = e->offsets[b] - t0;
    const size_t es = ms_dtype_size(e->dtype);

    ms_emb_init(out);
    cr_assert(ms_emb_reserve(out, e->dtype, e->dim, b - a, nt, &err) == 0, "%s", err.msg);
    out->first_row = a;
    for (uint64_t r = 0; r <= b - a; r++)
        out->offsets[r] = e->offsets[a + r] - t0;
    memcpy(out->tokens, (const char *)e->tokens + t0 * e->dim * es, nt * e->dim * es);
}

Test(maxsim, split_blocks_identical)
{
    uint64_t seed = 51;
    struct ms_emb q, d;
    struct ms_err err = { 0 };
    struct ms_scorer_opts o = { 1, 37, 2000, 0, 0, 0, 0, MS_PREC_EXACT, NULL };
    struct ms_scorer *s;
    float *one, *small, *runs;
    const uint64_t nd = 500;

    test_random_emb(&q, MS_DTYPE_F16, 128, 5, 0, 32, &seed);
    test_random_emb(&d, MS_DTYPE_F32, 128, nd, 0, 120, &seed);
    one = cl_scores(&q, &d, 1, nd, ms_emb_n_tokens(&d), 0, 0, 0);
    /* Buffers far smaller than the block: the scorer splits it itself. */
    small = cl_scores(&q, &d, 1, 7, 130, 0, 0, 0);
    cr_assert(memcmp(one, small, q.n_rows * nd * sizeof *one) == 0,
              "internal sub-blocks changed the scores");

    /* The caller's blocks of 37 rows, written with a leading dimension. */
    runs = malloc(q.n_rows * nd * sizeof *runs);
    cr_assert(ms_scorer_create(&s, &cl, &q, &o, &err) == MS_OK, "%s", err.msg);
    for (uint64_t a = 0; a < nd; a += 37) {
        struct ms_emb part;
        const uint64_t b = a + 37 < nd ? a + 37 : nd;
        slice(&part, &d, a, b);
        cr_assert(ms_scorer_run(s, &part, runs + a, nd, &err) == MS_OK, "%s", err.msg);
        ms_emb_release(&part);
    }
    ms_scorer_free(s);
    cr_assert(memcmp(one, runs, q.n_rows * nd * sizeof *one) == 0,
              "blocks scored in several runs differ from one run");
    check_against_ref(&q, &d, 1, one, "split");
    free(one);
    free(small);
    free(runs);
    ms_emb_release(&q);
    ms_emb_release(&d);
}

/*
 * ms_scorer_start / ms_scorer_finish as score_pass uses them: block k started before block k - 1
 * is finished, each block's memory overwritten and freed as soon as its start returns (so an
 * upload still reading it would show), blocks of uneven sizes with empty rows, and one block
 * beyond the buffers (scored in pieces: start then does it whole). The scores are ms_scorer_run's
 * bit for bit, for float16 documents (used as uploaded on the tensor cores) and float32 ones
 * (converted first), with and without normalization. The calls out of order are errors, and a
 * scorer freed with a block in flight leaves nothing behind (make asan).
 */
Test(maxsim, started_blocks_identical)
{
    static const uint64_t cuts[] = { 0, 37, 38, 140, 141, 160, 400, 430, 500 };
    const uint64_t nd = 500, n_cuts = sizeof cuts / sizeof cuts[0];
    for (int variant = 0; variant < 3; variant++) {
        uint64_t seed = 60 + (uint64_t)variant;
        const int normalize = variant == 2;
        struct ms_emb q, d;
        struct ms_err err = { 0 };
        /* room for 110 documents and 12,000 tokens a block: the 240-row block takes pieces */
        struct ms_scorer_opts o = { normalize, 110, 12000, 0, 0, 0, 0, MS_PREC_EXACT, NULL };
        struct ms_scorer *s;

        test_random_emb(&q, MS_DTYPE_F16, 128, 9, 1, 40, &seed);
        test_random_emb(&d, variant == 1 ? MS_DTYPE_F32 : MS_DTYPE_F16, 128, nd, 0, 90, &seed);
        float *want = cl_scores(&q, &d, normalize, nd, ms_emb_n_tokens(&d), 0, 0, 0);
        float *got = malloc(q.n_rows * nd * sizeof *got);
        cr_assert(got);
        memset(got, 0xff, q.n_rows * nd * sizeof *got);
        cr_assert(ms_scorer_create(&s, &cl, &q, &o, &err) == MS_OK, "%s", err.msg);
        cr_assert(ms_scorer_finish(s, &err) != MS_OK, "finish with nothing started");
        for (uint64_t c = 0; c + 1 < n_cuts; c++) {
            struct ms_emb part;
            slice(&part, &d, cuts[c], cuts[c + 1]);
            /* a leading dimension of nd: each block writes its columns of the matrix */
            cr_assert(ms_scorer_start(s, &part, got + cuts[c], nd, &err) == MS_OK, "%s", err.msg);
            memset(part.tokens, 0x7f,
                   ms_emb_n_tokens(&part) * part.dim *
                       ms_dtype_size(part.dtype)); /* NaN, were it read */
            ms_emb_release(&part);
            if (c > 0)
                cr_assert(ms_scorer_finish(s, &err) == MS_OK, "block %llu: %s",
                          (unsigned long long)c - 1, err.msg);
        }
        cr_assert(ms_scorer_finish(s, &err) == MS_OK, "last block: %s", err.msg);
        cr_assert(memcmp(want, got, q.n_rows * nd * sizeof *got) == 0,
                  "variant %d: started blocks differ from one run", variant);

        /* a third block in flight is refused; two are left to ms_scorer_free */
        struct ms_emb a, b;
        slice(&a, &d, 0, 50);
        slice(&b, &d, 50, 100);
        cr_assert(ms_scorer_start(s, &a, got, nd, &err) == MS_OK, "%s", err.msg);
        cr_assert(ms_scorer_start(s, &b, got + 50, nd, &err) == MS_OK, "%s", err.msg);
        cr_assert(ms_scorer_start(s, &a, got, nd, &err) != MS_OK, "a third block was started");
        ms_scorer_free(s);
        ms_emb_release(&a);
        ms_emb_release(&b);
        free(want);
        free(got);
        ms_emb_release(&q);
        ms_emb_release(&d);
    }
}

/*
 * The portable GPU kernel (kernels/maxsim_gpu.cl), forced on whatever device this is, under
 * tilings that differ in every build option (register blocks, work-group shape, dims per slice
 * with and without padding, query tile resident or streamed, documents per work-group, the next
 * document slice prefetched or not, documents split over 1-3 work-groups, __local slices single-
 * or double-buffered, a register cap where the device takes one, float16 loaded by vloada_half8 or
 * 16-byte integer loads): each
 * agrees with the reference, and all give the same bits, because each dot product is one fma
 * chain in k order, the max is exact and the sum runs in token order. Queries of 0..40 tokens
 * (row tiles hold parts of several queries) and documents of 0..150 tokens (several chunks).
 */
/* 420 s: six tilings, six programs to compile on a cold cache (PoCL, a loaded 2-core machine:
 * 180 s did not suffice). */
Test(maxsim, gpu_kernel_tilings_identical, .timeout = 420)
{
    static const char *variants[] = { "4,4,8,16,32,1,64,1",   "8,8,8,8,16,1,0,1,3",
                                      "8,4,4,16,8,0,3,0",     "4,8,2,4,0,0,1,0,2",
                                      "8,8,8,8,16,0,0,1,3,1", "8,4,4,16,8,1,3,1,1,1,64,1" };
    uint64_t seed = 71;
    struct ms_emb q, d, d32;
    float *first[2] = { NULL, NULL };

    setenv("MAXSIM_KERNEL", "gpu", 1);
    test_random_emb(&q, MS_DTYPE_F32, 40, 5, 0, 40, &seed);
    test_random_emb(&d, MS_DTYPE_F16, 40, 150, 0, 150, &seed);
    test_random_emb(&d32, MS_DTYPE_F32, 40, 60, 0, 70, &seed);
    for (size_t v = 0; v < sizeof variants / sizeof variants[0]; v++) {
        float *got[2];
        setenv("MAXSIM_GPU_VARIANT", variants[v], 1);
        got[0] = cl_scores(&q, &d, 0, 150, ms_emb_n_tokens(&d), 0, 0, 0);
        got[1] = cl_scores(&q, &d32, 1, 60, ms_emb_n_tokens(&d32), 0, 0, 0);
        check_against_ref(&q, &d, 0, got[0], variants[v]);
        check_against_ref(&q, &d32, 1, got[1], variants[v]);
        {
            /* Every pair through ms_scorer_run_pairs (its own kernels, never split): the same
             * bits as the run. */
            struct ms_err err = { 0 };
            const struct ms_scorer_opts o = { 0, 150, ms_emb_n_tokens(&d), 0, 0, 0, 0, 0, NULL };
            struct ms_scorer *sc;
            uint32_t *pq = malloc(q.n_rows * 150 * sizeof *pq), *pd = malloc(q.n_rows * 150 * 4);
            float *pout = malloc(q.n_rows * 150 * sizeof *pout);
            for (uint64_t p = 0; p < q.n_rows * 150; p++) {
                pq[p] = (uint32_t)(p % q.n_rows);
                pd[p] = (uint32_t)(149 - p / q.n_rows);
            }
            cr_assert(ms_scorer_create(&sc, &cl, &q, &o, &err) == MS_OK, "%s", err.msg);
            cr_assert(ms_scorer_run_pairs(sc, &d, pq, pd, q.n_rows * 150, pout, &err) == MS_OK,
                      "%s", err.msg);
            for (uint64_t p = 0; p < q.n_rows * 150; p++)
                cr_assert(memcmp(&pout[p], &got[0][pq[p] * 150 + pd[p]], sizeof(float)) == 0,
                          "tiling %s: pair (%u, %u) = %.9g, run %.9g", variants[v], pq[p], pd[p],
                          pout[p], got[0][pq[p] * 150 + pd[p]]);
            ms_scorer_free(sc);
            free(pq);
            free(pd);
            free(pout);
        }
        for (int i = 0; i < 2; i++) {
            if (!first[i])
                first[i] = got[i];
            else {
                cr_assert(memcmp(first[i], got[i], q.n_rows * (i ? 60 : 150) * sizeof(float)) == 0,
                          "tiling %s changed the scores' bits (case %d)", variants[v], i);
                free(got[i]);
            }
        }
    }
    free(first[0]);
    free(first[1]);
    ms_emb_release(&q);
    ms_emb_release(&d);
    ms_emb_release(&d32);
}

Test(maxsim, dim_mismatch)
{
    uint64_t seed = 61;
    struct ms_emb q, d;
    struct ms_err err = { 0 };
    struct ms_scorer_opts o = { 0, 10, 100, 0, 0, 0, 0, MS_PREC_EXACT, NULL };
    struct ms_scorer *s;
    float out[40];

    test_random_emb(&q, MS_DTYPE_F32, 128, 2, 1, 4, &seed);
    test_random_emb(&d, MS_DTYPE_F32, 96, 2, 1, 4, &seed);
    cr_assert(ms_scorer_create(&s, &cl, &q, &o, &err) == MS_OK, "%s", err.msg);
    cr_assert_eq(ms_scorer_run(s, &d, out, 2, &err), MS_ERR_INPUT);
    cr_assert(strstr(err.msg, "dim mismatch") != NULL, "%s", err.msg);
    ms_scorer_free(s);
    ms_emb_release(&q);
    ms_emb_release(&d);
}

/* Buffers of 16 KiB: one or two queries per group, documents of at most 32
 * tokens per sub-block; the scores must not change. */
Test(maxsim, small_buffers_split_queries_and_docs)
{
    uint64_t seed = 71;
    struct ms_emb q, d, big;
    struct ms_err err = { 0 };
    struct ms_scorer_opts o = { 0, 300, 100000, 0, 0, 0, 16384, MS_PREC_EXACT, NULL };
    struct ms_scorer *s;
    float *one, *got;

    test_random_emb(&q, MS_DTYPE_F32, 128, 7, 0, 32, &seed);
    test_random_emb(&d, MS_DTYPE_F16, 128, 300, 0, 32, &seed);
    one = cl_scores(&q, &d, 0, 300, ms_emb_n_tokens(&d), 0, 0, 0);
    got = malloc(q.n_rows * d.n_rows * sizeof *got);
    cr_assert(ms_scorer_create(&s, &cl, &q, &o, &err) == MS_OK, "%s", err.msg);
    cr_assert(ms_scorer_run(s, &d, got, d.n_rows, &err) == MS_OK, "%s", err.msg);
    ms_scorer_free(s);
    cr_assert(memcmp(one, got, q.n_rows * d.n_rows * sizeof *got) == 0,
              "split queries or documents changed the scores");
    check_against_ref(&q, &d, 0, got, "small buffers");

    /* A document longer than a buffer holds is an error naming it. */
    test_random_emb(&big, MS_DTYPE_F32, 128, 2, 40, 40, &seed);
    cr_assert(ms_scorer_create(&s, &cl, &q, &o, &err) == MS_OK, "%s", err.msg);
    cr_assert_eq(ms_scorer_run(s, &big, got, big.n_rows, &err), MS_ERR_RUNTIME);
    cr_assert(strstr(err.msg, "document 0 has 40 tokens"), "%s", err.msg);
    ms_scorer_free(s);
    free(one);
    free(got);
    ms_emb_release(&q);
    ms_emb_release(&d);
    ms_emb_release(&big);
}

/* ---- ms_scorer_run_pairs ---- */

struct pairlist {
    uint32_t *q, *d;
    uint64_t n;
};

/* Random pairs: each document gets 0..nq queries (several share it, some
 * documents none), `dups` extra copies of random pairs, listed by document
 * then query, or shuffled. */
static void random_pairs(struct pairlist *pl, uint64_t nq, uint64_t nd, uint64_t dups, int shuffle,
                         uint64_t *seed)
{
    const uint64_t cap = nq * nd + dups + 1;
    pl->q = malloc(cap * sizeof *pl->q);
    pl->d = malloc(cap * sizeof *pl->d);
    pl->n = 0;
    for (uint64_t j = 0; nq && j < nd; j++) {
        const uint64_t want = test_rand_below(seed, nq + 1);
        for (uint64_t i = 0; i < nq; i++)
            if (test_rand_below(seed, nq) < want) {
                pl->q[pl->n] = (uint32_t)i;
                pl->d[pl->n++] = (uint32_t)j;
            }
    }
    for (uint64_t k = 0; pl->n && k < dups; k++) {
        const uint64_t r = test_rand_below(seed, pl->n);
        pl->q[pl->n] = pl->q[r];
        pl->d[pl->n++] = pl->d[r];
    }
    for (uint64_t k = pl->n; shuffle && k > 1; k--) {
        const uint64_t r = test_rand_below(seed, k);
        uint32_t t = pl->q[k - 1];
        pl->q[k - 1] = pl->q[r];
        pl->q[r] = t;
        t = pl->d[k - 1];
        pl->d[k - 1] = pl->d[r];
        pl->d[r] = t;
    }
}

/* Score the pairs with a scorer built from o; every out[p] must be written. */
static float *pair_scores(const struct ms_emb *q, const struct ms_emb *d,
                          const struct ms_scorer_opts *o, const struct pairlist *pl)
{
    struct ms_err err = { 0 };
    struct ms_scorer *s;
    float *out = malloc((pl->n + 1) * sizeof *out);

    for (uint64_t p = 0; p < pl->n; p++)
        out[p] = NAN;
    cr_assert(ms_scorer_create(&s, &cl, q, o, &err) == MS_OK, "%s", err.msg);
    cr_assert(ms_scorer_run_pairs(s, d, pl->q, pl->d, pl->n, out, &err) == MS_OK, "%s", err.msg);
    cr_assert(ms_scorer_last_kernel_s(s) >= 0.0);
    if (pl->n && d->n_rows && ms_emb_n_tokens(d))
        cr_assert(ms_scorer_last_kernel_s(s) > 0.0, "kernel time not counted");
    ms_scorer_free(s);
    return out;
}

/* Pairs scored with options o must equal, bit for bit, the all-pairs scores of
 * ms_scorer_run (one run, default buffers), which are checked against the
 * double-precision reference. */
static void check_pairs(const struct ms_emb *q, const struct ms_emb *d, int normalize,
                        const struct ms_scorer_opts *o, const struct pairlist *pl, const char *what)
{
    float *all = cl_scores(q, d, normalize, d->n_rows ? d->n_rows : 1, ms_emb_n_tokens(d) + 1,
                           o->tile_tokens, o->query_block, o->work_group);
    float *got = pair_scores(q, d, o, pl);

    check_against_ref(q, d, normalize, all, what);
    for (uint64_t p = 0; p < pl->n; p++) {
        const float want = all[(uint64_t)pl->q[p] * d->n_rows + pl->d[p]];
        cr_assert(memcmp(&got[p], &want, sizeof want) == 0,
                  "%s: pair %llu (query %u, document %u) = %.9g, ms_scorer_run gave %.9g", what,
                  (unsigned long long)p, pl->q[p], pl->d[p], got[p], want);
    }
    free(all);
    free(got);
}

static void pairs_case(enum ms_dtype qt, enum ms_dtype dt, uint32_t dim, uint64_t nq,
                       uint64_t lq_min, uint64_t lq_max, uint64_t nd, uint64_t ld_min,
                       uint64_t ld_max, int normalize, int shuffle, uint64_t seed)
{
    const struct ms_scorer_opts o = { normalize, nd ? nd : 1, 0, 0, 0, 0, 0, MS_PREC_EXACT, NULL };
    struct ms_emb q, d;
    struct pairlist pl;
    struct ms_scorer_opts oo = o;
    char what[200];

    test_random_emb(&q, qt, dim, nq, lq_min, lq_max, &seed);
    test_random_emb(&d, dt, dim, nd, ld_min, ld_max, &seed);
    oo.max_tokens = ms_emb_n_tokens(&d) + 1;
    random_pairs(&pl, nq, nd, nq * nd / 8, shuffle, &seed);
    snprintf(what, sizeof what, "pairs %s x %s dim %u nq %llu nd %llu ld ..%llu%s%s",
             ms_dtype_name(qt), ms_dtype_name(dt), dim, (unsigned long long)nq,
             (unsigned long long)nd, (unsigned long long)ld_max, normalize ? " normalize" : "",
             shuffle ? " shuffled" : "");
    check_pairs(&q, &d, normalize, &oo, &pl, what);
    free(pl.q);
    free(pl.d);
    ms_emb_release(&q);
    ms_emb_release(&d);
}

Test(maxsim, pairs_random_shapes)
{
    static const uint32_t dims[] = { 1, 33, 128, 96 };
    uint64_t seed = 81;

    for (int c = 0; c < 32; c++) {
        const uint32_t dim = dims[c % 4];
        const enum ms_dtype qt = (c / 4) % 2 ? MS_DTYPE_F16 : MS_DTYPE_F32;
        const enum ms_dtype dt = (c / 8) % 2 ? MS_DTYPE_F16 : MS_DTYPE_F32;
        const int normalize = (c / 16) % 2;
        const uint64_t nq = 1 + test_rand_below(&seed, 6);
        const uint64_t lq_max = 1 + test_rand_below(&seed, 40);
        const uint64_t ld_max = 1 + test_rand_below(&seed, 200);
        const uint64_t nd = 1 + test_rand_below(&seed, 200);
        pairs_case(qt, dt, dim, nq, 0, lq_max, nd, 0, ld_max, normalize, c % 3 == 0,
                   seed + (uint64_t)c);
    }
}

Test(maxsim, pairs_empty_rows)
{
    pairs_case(MS_DTYPE_F32, MS_DTYPE_F32, 48, 9, 0, 2, 200, 0, 2, 0, 0, 91);
    pairs_case(MS_DTYPE_F16, MS_DTYPE_F16, 96, 9, 0, 2, 200, 0, 2, 1, 1, 92);
    pairs_case(MS_DTYPE_F32, MS_DTYPE_F32, 128, 4, 0, 0, 50, 0, 0, 0, 1, 93);
    pairs_case(MS_DTYPE_F32, MS_DTYPE_F16, 128, 4, 1, 10, 50, 0, 0, 1, 0, 94);
    /* No documents: no pairs. */
    pairs_case(MS_DTYPE_F32, MS_DTYPE_F32, 128, 3, 1, 10, 0, 0, 0, 0, 0, 95);
}

Test(maxsim, pairs_other_tilings)
{
    static const int tilings[][3] = { { 16, 1, 1 }, { 48, 3, 2 }, { 64, 16, 1 }, { 32, 5, 8 } };
    uint64_t seed = 101;
    struct ms_emb q, d;
    struct pairlist pl;

    test_random_emb(&q, MS_DTYPE_F32, 96, 5, 0, 40, &seed);
    test_random_emb(&d, MS_DTYPE_F16, 96, 150, 0, 150, &seed);
    random_pairs(&pl, 5, 150, 20, 1, &seed);
    for (size_t t = 0; t < sizeof tilings / sizeof tilings[0]; t++) {
        const struct ms_scorer_opts o = {
            (int)(t % 2),  150, ms_emb_n_tokens(&d), tilings[t][0], tilings[t][1],
            tilings[t][2], 0,   MS_PREC_EXACT,       NULL
        };
        check_pairs(&q, &d, (int)(t % 2), &o, &pl, "pairs tiling");
    }
    free(pl.q);
    free(pl.d);
    ms_emb_release(&q);
    ms_emb_release(&d);
}

/* What rerank does: the caller's blocks of rows, pairs by document then
 * query, several queries per document; same bits as `score` gives. */
Test(maxsim, pairs_identical_to_run_in_blocks)
{
    uint64_t seed = 111;
    struct ms_emb q, d;
    struct ms_err err = { 0 };
    const struct ms_scorer_opts o = { 1, 40, 3000, 0, 0, 0, 0, MS_PREC_EXACT, NULL };
    struct ms_scorer *s;
    struct pairlist pl;
    float *all, *got;
    const uint64_t nd = 300;

    test_random_emb(&q, MS_DTYPE_F16, 128, 6, 1, 32, &seed);
    test_random_emb(&d, MS_DTYPE_F16, 128, nd, 1, 120, &seed);
    all = cl_scores(&q, &d, 1, nd, ms_emb_n_tokens(&d), 0, 0, 0);
    random_pairs(&pl, q.n_rows, nd, 0, 0, &seed);
    got = malloc((pl.n + 1) * sizeof *got);
    cr_assert(ms_scorer_create(&s, &cl, &q, &o, &err) == MS_OK, "%s", err.msg);
    for (uint64_t a = 0, p = 0; a < nd; a += 40) {
        struct ms_emb part;
        const uint64_t b = a + 40 < nd ? a + 40 : nd, p0 = p;
        uint32_t pd[40 * 6];
        for (; p < pl.n && pl.d[p] < b; p++)
            pd[p - p0] = pl.d[p] - (uint32_t)a;
        slice(&part, &d, a, b);
        cr_assert(ms_scorer_run_pairs(s, &part, pl.q + p0, pd, p - p0, got + p0, &err) == MS_OK,
                  "%s", err.msg);
        ms_emb_release(&part);
    }
    ms_scorer_free(s);
    for (uint64_t p = 0; p < pl.n; p++)
        cr_assert(memcmp(&got[p], &all[(uint64_t)pl.q[p] * nd + pl.d[p]], sizeof *got) == 0,
                  "pair %llu differs from ms_scorer_run", (unsigned long long)p);
    check_against_ref(&q, &d, 1, all, "blocks");
    free(all);
    free(got);
    free(pl.q);
    free(pl.d);
    ms_emb_release(&q);
    ms_emb_release(&d);
}

Test(maxsim, pairs_none)
{
    uint64_t seed = 121;
    struct ms_emb q, d;
    struct ms_err err = { 0 };
    const struct ms_scorer_opts o = { 0, 10, 100, 0, 0, 0, 0, MS_PREC_EXACT, NULL };
    struct ms_scorer *s;
    float out[1] = { 42.0f };
    uint32_t pq[1] = { 0 }, pd[1] = { 0 };

    test_random_emb(&q, MS_DTYPE_F32, 16, 2, 1, 4, &seed);
    test_random_emb(&d, MS_DTYPE_F32, 16, 3, 1, 4, &seed);
    cr_assert(ms_scorer_create(&s, &cl, &q, &o, &err) == MS_OK, "%s", err.msg);
    cr_assert(ms_scorer_run_pairs(s, &d, pq, pd, 0, out, &err) == MS_OK, "%s", err.msg);
    cr_assert(ms_scorer_run_pairs(s, &d, NULL, NULL, 0, NULL, &err) == MS_OK, "%s", err.msg);
    cr_assert_eq(out[0], 42.0f);
    cr_assert_eq(ms_scorer_last_kernel_s(s), 0.0);
    ms_scorer_free(s);
    ms_emb_release(&q);
    ms_emb_release(&d);
}

Test(maxsim, pairs_bad_input)
{
    uint64_t seed = 131;
    struct ms_emb q, d, d96;
    struct ms_err err = { 0 };
    const struct ms_scorer_opts o = { 0, 10, 100, 0, 0, 0, 0, MS_PREC_EXACT, NULL };
    struct ms_scorer *s;
    float out[2];
    uint32_t pq[2] = { 0, 2 }, pd[2] = { 0, 1 };

    test_random_emb(&q, MS_DTYPE_F32, 128, 2, 1, 4, &seed);
    test_random_emb(&d, MS_DTYPE_F32, 128, 2, 1, 4, &seed);
    test_random_emb(&d96, MS_DTYPE_F32, 96, 2, 1, 4, &seed);
    cr_assert(ms_scorer_create(&s, &cl, &q, &o, &err) == MS_OK, "%s", err.msg);
    cr_assert_eq(ms_scorer_run_pairs(s, &d, pq, pd, 2, out, &err), MS_ERR_INPUT);
    cr_assert(strstr(err.msg, "pair 1 is (query 2, document 1)"), "%s", err.msg);
    pq[1] = 1;
    pd[1] = 2;
    cr_assert_eq(ms_scorer_run_pairs(s, &d, pq, pd, 2, out, &err), MS_ERR_INPUT);
    cr_assert(strstr(err.msg, "document 2"), "%s", err.msg);
    pd[1] = 1;
    cr_assert_eq(ms_scorer_run_pairs(s, &d96, pq, pd, 2, out, &err), MS_ERR_INPUT);
    cr_assert(strstr(err.msg, "dim mismatch"), "%s", err.msg);
    cr_assert_eq(ms_scorer_run_pairs(s, &d, pq, pd, 2, out, &err), MS_OK, "%s", err.msg);
    ms_scorer_free(s);
    ms_emb_release(&q);
    ms_emb_release(&d);
    ms_emb_release(&d96);
}

/* Small buffers: query groups of one or two queries, sub-blocks of a few
 * documents, and pair lists longer than a buffer (duplicates: more pairs
 * than queries x documents) scored in pieces. */
Test(maxsim, pairs_small_buffers)
{
    uint64_t seed = 141;
    struct ms_emb q, d, big;
    struct ms_err err = { 0 };
    struct pairlist pl;
    struct ms_scorer *s;
    float *out;
    uint32_t pq[2] = { 0, 0 }, pd[2] = { 0, 1 };

    /* 16 KiB buffers at dim 128: 1-2 queries per group, <= 32 tokens per sub-block. */
    test_random_emb(&q, MS_DTYPE_F32, 128, 7, 0, 32, &seed);
    test_random_emb(&d, MS_DTYPE_F16, 128, 200, 0, 32, &seed);
    random_pairs(&pl, q.n_rows, d.n_rows, 300, 1, &seed);
    {
        const struct ms_scorer_opts o = { 0, 300, 100000, 0, 0, 0, 16384, MS_PREC_EXACT, NULL };
        check_pairs(&q, &d, 0, &o, &pl, "pairs 16 KiB buffers");
    }
    free(pl.q);
    free(pl.d);
    ms_emb_release(&q);
    ms_emb_release(&d);

    /* 1 KiB buffers at dim 8: 256 pairs per launch, one query per group. */
    test_random_emb(&q, MS_DTYPE_F16, 8, 5, 0, 20, &seed);
    test_random_emb(&d, MS_DTYPE_F32, 8, 60, 0, 30, &seed);
    random_pairs(&pl, q.n_rows, d.n_rows, 3000, 1, &seed);
    cr_assert(pl.n > q.n_rows * d.n_rows);
    {
        const struct ms_scorer_opts o = { 1, 300, 100000, 0, 0, 0, 1024, MS_PREC_EXACT, NULL };
        check_pairs(&q, &d, 1, &o, &pl, "pairs 1 KiB buffers");
    }
    /* A document needed by no pair may be too long for the buffers; one
     * that is needed is an error naming it. */
    test_random_emb(&big, MS_DTYPE_F32, 8, 2, 40, 40, &seed);
    big.offsets[1] = 1; /* row 0: 1 token, row 1: 79 */
    {
        const struct ms_scorer_opts o = { 1, 300, 100000, 0, 0, 0, 1024, MS_PREC_EXACT, NULL };
        cr_assert(ms_scorer_create(&s, &cl, &q, &o, &err) == MS_OK, "%s", err.msg);
    }
    out = malloc(2 * sizeof *out);
    cr_assert_eq(ms_scorer_run_pairs(s, &big, pq, pd, 1, out, &err), MS_OK, "%s", err.msg);
    cr_assert_eq(ms_scorer_run_pairs(s, &big, pq, pd, 2, out, &err), MS_ERR_RUNTIME);
    cr_assert(strstr(err.msg, "document 1 has 79 tokens"), "%s", err.msg);
    ms_scorer_free(s);
    free(out);
    free(pl.q);
    free(pl.d);
    ms_emb_release(&q);
    ms_emb_release(&d);
    ms_emb_release(&big);
}

/* ---- ms_scorer_run_topk ---- */

/* Round every value to a multiple of 1/2 (zeros included): many equal scores. */
static void quantize(struct ms_emb *e)
{
    const uint64_t n = ms_emb_n_tokens(e) * e->dim;
    for (uint64_t i = 0; i < n; i++) {
        if (e->dtype == MS_DTYPE_F16)
            ((uint16_t *)e->tokens)[i] =
                ms_float_to_half(roundf(ms_half_to_float(((uint16_t *)e->tokens)[i]) * 2) / 2);
        else
            ((float *)e->tokens)[i] = roundf(((float *)e->tokens)[i] * 2) / 2;
    }
}

/* ms_scorer_run_topk against host heaps fed every score of ms_scorer_run, same scorer: the same
 * scores (bit for bit) and rows in the same order. */
static void check_topk(const struct ms_emb *q, const struct ms_emb *d,
                       const struct ms_scorer_opts *o, uint32_t k, const char *what)
{
    struct ms_err err = { 0 };
    struct ms_scorer *s;
    struct ms_topk host;
    const uint64_t m = k < d->n_rows ? k : d->n_rows;
    float *all = malloc((q->n_rows * d->n_rows + 1) * sizeof *all);
    float *ts = malloc((q->n_rows * k + 1) * sizeof *ts);
    uint32_t *ti = malloc((q->n_rows * k + 1) * sizeof *ti);

    cr_assert(ms_scorer_create(&s, &cl, q, o, &err) == MS_OK, "%s", err.msg);
    cr_assert(ms_scorer_topk_max(s) >= 1024);
    cr_assert(ms_scorer_run(s, d, all, d->n_rows, &err) == MS_OK, "%s", err.msg);
    cr_assert(ms_scorer_run_topk(s, d, k, ts, ti, &err) == MS_OK, "%s", err.msg);
    cr_assert(ms_topk_init(&host, q->n_rows, m, &err) == MS_OK);
    ms_topk_push(&host, 0, q->n_rows, all, d->n_rows, d->n_rows, 0);
    ms_topk_finish(&host);
    for (uint64_t i = 0; i < q->n_rows; i++)
        for (uint64_t r = 0; r < m; r++) {
            const float hs = host.score[i * m + r], gs = ts[i * k + r];
            cr_assert(host.row[i * m + r] == ti[i * k + r] && memcmp(&hs, &gs, 4) == 0,
                      "%s k %u: query %llu rank %llu: device (%g, row %u), host (%g, row %llu)",
                      what, k, (unsigned long long)i, (unsigned long long)r, gs, ti[i * k + r], hs,
                      (unsigned long long)host.row[i * m + r]);
        }
    cr_assert_eq(ms_scorer_run_topk(s, d, 0, ts, ti, &err), MS_ERR_INPUT);
    ms_topk_release(&host);
    ms_scorer_free(s);
    free(all);
    free(ts);
    free(ti);
}

Test(maxsim, topk_matches_host_heaps)
{
    static const uint32_t ks[] = { 1, 7, 100, 1024 };
    uint64_t seed = 171;
    struct ms_emb q, q16, d;

    test_random_emb(&q, MS_DTYPE_F32, 16, 9, 0, 6, &seed);
    test_random_emb(&q16, MS_DTYPE_F16, 16, 9, 0, 6, &seed); /* tensor cores on NVIDIA */
    test_random_emb(&d, MS_DTYPE_F16, 16, 700, 0, 5, &seed);
    quantize(&q);
    quantize(&q16);
    quantize(&d);
    for (size_t a = 0; a < sizeof ks / sizeof *ks; a++) {
        /* one piece per block; then sub-blocks of <= 300 documents and 1-2 queries a group */
        const struct ms_scorer_opts one = { 0, 700, 100000, 0, 0, 0, 0, MS_PREC_EXACT, NULL };
        const struct ms_scorer_opts small = { 0, 300, 100000, 0, 0, 0, 1024, MS_PREC_EXACT, NULL };
        const struct ms_scorer_opts norm = { 1, 250, 100000, 0, 0, 0, 0, MS_PREC_EXACT, NULL };
        check_topk(&q, &d, &one, ks[a], "one piece");
        check_topk(&q, &d, &small, ks[a], "small buffers");
        check_topk(&q, &d, &norm, ks[a], "normalize, sub-blocks");
        check_topk(&q16, &d, &one, ks[a], "float16, one piece");
        check_topk(&q16, &d, &small, ks[a], "float16, small buffers");
    }
    ms_emb_release(&q16);
    ms_emb_release(&q);
    ms_emb_release(&d);
}

/* The reference itself on a case worked by hand. */
Test(maxsim_ref, by_hand)
{
    struct ms_err err;
    struct ms_emb q, d;
    double out[2];
    const float qv[] = { 1, 0, 0, 2 }, dv[] = { 3, 4, -1, 1, 2, 2 };

    ms_emb_init(&q);
    ms_emb_init(&d);
    cr_assert(ms_emb_reserve(&q, MS_DTYPE_F32, 2, 1, 2, &err) == 0);
    cr_assert(ms_emb_reserve(&d, MS_DTYPE_F32, 2, 2, 3, &err) == 0);
    memcpy(q.tokens, qv, sizeof qv);
    memcpy(d.tokens, dv, sizeof dv);
    q.offsets[1] = 2;
    d.offsets[1] = 2;
    d.offsets[2] = 3;
    /* q = (1,0), (0,2); d0 = (3,4), (-1,1): max 3 + max 8 = 11; d1 = (2,2): 2 + 4 = 6 */
    ms_ref_scores(&q, &d, 0, out);
    cr_assert_eq(out[0], 11.0);
    cr_assert_eq(out[1], 6.0);
    /* normalized: q = (1,0), (0,1); d0 = (.6,.8), (-.707,.707): .6 + .8; d1: .707 * 2 */
    ms_ref_scores(&q, &d, 1, out);
    cr_assert(fabs(out[0] - 1.4) < 1e-12 && fabs(out[1] - sqrt(2.0)) < 1e-12);
    ms_emb_release(&q);
    ms_emb_release(&d);
}

/* ---- --precision tf32 ---- */

/* ms_round_tf32 on the edges: 10 mantissa bits kept, to nearest, ties away from zero (as
 * cvt.rna.tf32.f32), carries into the exponent, infinities and NaN unchanged. */
Test(maxsim_tf32, round_host)
{
    cr_assert_eq(ms_round_tf32(1.0f), 1.0f);
    cr_assert_eq(ms_round_tf32(1.0f + 0x1p-11f), 1.0f + 0x1p-10f, "a tie rounds away from zero");
    cr_assert_eq(ms_round_tf32(-1.0f - 0x1p-11f), -1.0f - 0x1p-10f, "a tie rounds away from zero");
    cr_assert_eq(ms_round_tf32(1.0f + 0x1p-11f - 0x1p-23f), 1.0f, "below a tie rounds down");
    cr_assert_eq(ms_round_tf32(1.0f + 0x1p-10f + 0x1p-11f), 1.0f + 0x1p-9f, "odd tie: away too");
    cr_assert_eq(ms_round_tf32(2.0f - 0x1p-12f), 2.0f, "the carry goes into the exponent");
    cr_assert_eq(ms_round_tf32(0x1p-130f), 0x1p-130f, "a subnormal with 10 bits is kept");
    cr_assert_eq(ms_round_tf32(0x1p-140f), 0.0f, "below tf32's smallest subnormal (2^-136)");
    cr_assert(isinf(ms_round_tf32(INFINITY)) && isnan(ms_round_tf32(NAN)));
    uint64_t seed = 5;
    for (int i = 0; i < 100000; i++) {
        const float x = test_rand_f(&seed) * 1000.0f, r = ms_round_tf32(x);
        uint32_t u;
        memcpy(&u, &r, sizeof u);
        cr_assert_eq(u & 0x1fffu, 0u, "%a: low 13 bits left in %a", x, r);
        cr_assert(fabsf(r - x) <= 0x1p-11f * fabsf(x), "%a -> %a: more than half an ulp", x, r);
    }
}

TestSuite(maxsim_tf32, .init = setup, .fini = teardown, .timeout = 180);

/* kernels/maxsim_nv.cl's ms_nv_prep32_* is plain OpenCL C: on this device (PoCL in CI) it must
 * give ms_round_tf32's bits for every element, zeros past dim, and normalize as the float16
 * prep does; and without rounding (MAXSIM_NV_TF32=raw) the float32 as it is. */
Test(maxsim_tf32, prep_kernel_rounds_as_the_host)
{
    enum { KP = 48, DIM = 21, NTOK = 37 }; /* KP halves: 24 float32 a row, 3 of them padding */
    struct ms_err err = { 0 };
    cl_program prog;
    cl_kernel k32, k16;
    float src[NTOK * DIM], out[NTOK * KP / 2];
    uint16_t src16[NTOK * DIM];
    uint64_t seed = 9;
    for (int i = 0; i < NTOK * DIM; i++) {
        src[i] = test_rand_f(&seed) * 4.0f;
        src16[i] = ms_float_to_half(src[i]);
    }
    cr_assert(ms_cl_program(&cl, "maxsim_nv.cl", "-cl-std=CL1.2 -DMS_NV_KP=48", &prog, &err) ==
                  MS_OK,
              "%s", err.msg);
    cr_assert(ms_cl_kernel(prog, "ms_nv_prep32_f32", &k32, &err) == MS_OK, "%s", err.msg);
    cr_assert(ms_cl_kernel(prog, "ms_nv_prep32_f16", &k16, &err) == MS_OK, "%s", err.msg);
    cl_mem in32 = ms_cl_buffer(&cl, CL_MEM_READ_ONLY, sizeof src, src, "src", &err);
    cl_mem in16 = ms_cl_buffer(&cl, CL_MEM_READ_ONLY, sizeof src16, src16, "src16", &err);
    cl_mem dst = ms_cl_buffer(&cl, CL_MEM_READ_WRITE, sizeof out, NULL, "dst", &err);
    cr_assert(in32 && in16 && dst, "%s", err.msg);
    for (int half_in = 0; half_in <= 1; half_in++)
        for (int normalize = 0; normalize <= 1; normalize++)
            for (int rna = 0; rna <= 1; rna++) {
                const cl_uint n_tok = NTOK, dim = DIM;
                const cl_int nz = normalize, rn = rna;
                const size_t local = 64, global = (NTOK * KP / 2 + 63) / 64 * 64;
                cl_kernel k = half_in ? k16 : k32;
                cl_mem in = half_in ? in16 : in32;
                cr_assert(MS_CL_SET_ARGS(k, "ms_nv_prep32", &err, MS_ARG(in), MS_ARG(n_tok),
                                         MS_ARG(dim), MS_ARG(nz), MS_ARG(rn),
                                         MS_ARG(dst)) == MS_OK &&
                              ms_cl_launch(&cl, k, 1, &global, &local, "ms_nv_prep32", NULL,
                                           &err) == MS_OK,
                          "%s", err.msg);
                cr_assert(clEnqueueReadBuffer(cl.queue, dst, CL_TRUE, 0, sizeof out, out, 0, NULL,
                                              NULL) == CL_SUCCESS);
                for (int t = 0; t < NTOK; t++) {
                    double ss = 0.0;
                    for (int c = 0; c < DIM; c++) {
                        const double x =
                            half_in ? ms_half_to_float(src16[t * DIM + c]) : src[t * DIM + c];
                        ss += x * x;
                    }
                    for (int c = 0; c < KP / 2; c++) {
                        const float got = out[t * KP / 2 + c];
                        if (c >= DIM) {
                            cr_assert(got == 0.0f && !signbit(got), "padding (%d, %d)", t, c);
                            continue;
                        }
                        const float x =
                            half_in ? ms_half_to_float(src16[t * DIM + c]) : src[t * DIM + c];
                        if (!normalize) { /* bit for bit */
                            const float want = rna ? ms_round_tf32(x) : x;
                            cr_assert(memcmp(&got, &want, sizeof got) == 0,
                                      "f16 %d rna %d (%d, %d): %a, want %a", half_in, rna, t, c,
                                      got, want);
                        } else { /* float32 normalization on the device, then the rounding */
                            const double want = x / sqrt(ss);
                            cr_assert(fabs(got - want) <=
                                          (rna ? 0x1p-11 : 0) + 1e-6 * fabs(want) + 1e-7,
                                      "normalized (%d, %d): %g, want %g", t, c, got, want);
                            if (rna) {
                                uint32_t u;
                                memcpy(&u, &got, sizeof u);
                                cr_assert_eq(u & 0x1fffu, 0u, "normalized, not rounded: %a", got);
                            }
                        }
                    }
                }
            }
    clReleaseMemObject(in32);
    clReleaseMemObject(in16);
    clReleaseMemObject(dst);
    clReleaseKernel(k32);
    clReleaseKernel(k16);
    clReleaseProgram(prog);
}

/* Where the tensor-core path cannot take tf32 (every device but an NVIDIA GPU of cc >= 8.0; any
 * device under MAXSIM_NV_MMA=0; dim > 256), a scorer refuses it (MS_ERR_INPUT) instead of running
 * something else; the commands ask ms_scorer_tf32_ok first and fall back to exact, saying so
 * (tests/cli/score.t). */
Test(maxsim_tf32, refused_without_tensor_cores)
{
    uint64_t seed = 13;
    struct ms_emb q;
    struct ms_err err = { 0 };
    struct ms_scorer *s = NULL;
    const struct ms_scorer_opts o = { 0, 10, 1000, 0, 0, 0, 0, MS_PREC_TF32, NULL };

    cr_assert_eq(ms_scorer_tf32_ok(&cl, 257), 0, "dim 257 cannot be tf32 anywhere");
    setenv("MAXSIM_NV_MMA", "0", 1);
    cr_assert_eq(ms_scorer_tf32_ok(&cl, 128), 0, "MAXSIM_NV_MMA=0 turns tf32 off");
    test_random_emb(&q, MS_DTYPE_F32, 128, 2, 1, 9, &seed);
    cr_assert_eq(ms_scorer_create(&s, &cl, &q, &o, &err), MS_ERR_INPUT);
    cr_assert(strstr(err.msg, "--precision tf32") != NULL, "%s", err.msg);
    unsetenv("MAXSIM_NV_MMA");
    if (!cl.info.is_nvidia || cl.info.nv_cc_major < 8) {
        cr_assert_eq(ms_scorer_tf32_ok(&cl, 128), 0, "'%s' has no tf32 tensor cores", cl.info.name);
        err = (struct ms_err){ 0 };
        cr_assert_eq(ms_scorer_create(&s, &cl, &q, &o, &err), MS_ERR_INPUT);
    }
    ms_emb_release(&q);
}

/* sum_i max_j sum_k |q_ik d_jk| for every pair: what the rounding errors are bounded by. */
static double *abs_bounds(const struct ms_emb *q, const struct ms_emb *d, int normalize)
{
    double *b = calloc(q->n_rows * d->n_rows + 1, sizeof *b);
    for (uint64_t i = 0; i < q->n_rows; i++)
        for (uint64_t j = 0; j < d->n_rows; j++)
            for (uint64_t a = q->offsets[i]; a < q->offsets[i + 1]; a++) {
                double best = 0.0;
                const double sa = normalize ? 1.0 / fmax(norm_of(q, a), 1e-12) : 1.0;
                for (uint64_t t = d->offsets[j]; t < d->offsets[j + 1]; t++) {
                    const double sb = normalize ? 1.0 / fmax(norm_of(d, t), 1e-12) : 1.0;
                    double s = 0.0;
                    for (uint32_t k = 0; k < q->dim; k++)
                        s += fabs(ms_emb_value(q, a, k) * ms_emb_value(d, t, k));
                    best = fmax(best, s * sa * sb);
                }
                b[i * d->n_rows + j] += best;
            }
    return b;
}

/* The scores of float32 copies of q and d with every value passed through round (the tf32 model
 * of what the tensor cores multiply), in double. */
static double *model_scores(const struct ms_emb *q, const struct ms_emb *d, float (*round)(float))
{
    struct ms_emb mq, md;
    struct ms_err err;
    double *out = malloc((q->n_rows * d->n_rows + 1) * sizeof *out);
    const struct ms_emb *src[2] = { q, d };
    struct ms_emb *dst[2] = { &mq, &md };
    for (int e = 0; e < 2; e++) {
        const struct ms_emb *a = src[e];
        ms_emb_init(dst[e]);
        cr_assert(
            ms_emb_reserve(dst[e], MS_DTYPE_F32, a->dim, a->n_rows, ms_emb_n_tokens(a), &err) == 0);
        memcpy(dst[e]->offsets, a->offsets, (a->n_rows + 1) * sizeof *a->offsets);
        for (uint64_t t = 0; t < ms_emb_n_tokens(a); t++)
            for (uint32_t k = 0; k < a->dim; k++)
                ((float *)dst[e]->tokens)[t * a->dim + k] = round((float)ms_emb_value(a, t, k));
    }
    ms_ref_scores(&mq, &md, 0, out);
    ms_emb_release(&mq);
    ms_emb_release(&md);
    return out;
}

/* What the hardware would do if it ignored the low 13 bits: truncation toward zero. */
static float trunc_tf32(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    u &= 0xffffe000u;
    memcpy(&x, &u, sizeof x);
    return x;
}

/* One case of the tf32 GPU test under MAXSIM_NV_TF32=mode: the path is the tf32 one; against the
 * double reference within the tf32 bound (each product off by at most 2^-10 of |q_k d_k| when
 * both operands are rounded to nearest, 2^-9 when truncated, plus float32 sums); for prep and
 * fused on plain inputs, against the model of rounded operands within the float32 sums' error
 * alone (this tells rounding to nearest from truncation and from no rounding at all); the pair
 * kernel's bits equal the run's. Returns the scores ([nq][nd]). */
static float *tf32_case(const char *mode, const struct ms_emb *q, const struct ms_emb *d,
                        int normalize, const char *what)
{
    struct ms_err err = { 0 };
    const struct ms_scorer_opts o = { normalize, d->n_rows, ms_emb_n_tokens(d) + 1, 0,   0,
                                      0,         0,         MS_PREC_TF32,           NULL };
    struct ms_scorer *s;
    const uint64_t n = q->n_rows * d->n_rows;
    float *got = malloc((n + 1) * sizeof *got), *pout = malloc((n + 1) * sizeof *pout);
    uint32_t *pq = malloc((n + 1) * sizeof *pq), *pd = malloc((n + 1) * sizeof *pd);
    double *ref = malloc((n + 1) * sizeof *ref), *bound = abs_bounds(q, d, normalize);
    double *rna = model_scores(q, d, ms_round_tf32), *trn = model_scores(q, d, trunc_tf32);
    uint64_t lq = 0;
    double worst_rna = 0, worst_trunc = 0, worst_exact = 0;
    const int plain = !normalize && q->dtype == MS_DTYPE_F32;

    for (uint64_t i = 0; i < q->n_rows; i++)
        lq = ms_emb_row_len(q, i) > lq ? ms_emb_row_len(q, i) : lq;
    setenv("MAXSIM_NV_TF32", mode, 1);
    ms_ref_scores(q, d, normalize, ref);
    cr_assert(ms_scorer_create(&s, &cl, q, &o, &err) == MS_OK, "%s %s: %s", what, mode, err.msg);
    cr_assert(strstr(ms_scorer_path(s), "tf32") != NULL, "%s: path %s", what, ms_scorer_path(s));
    cr_assert(ms_scorer_run(s, d, got, d->n_rows, &err) == MS_OK, "%s", err.msg);
    for (uint64_t p = 0; p < n; p++) {
        pq[p] = (uint32_t)(p % q->n_rows);
        pd[p] = (uint32_t)(d->n_rows - 1 - p / q->n_rows);
    }
    cr_assert(ms_scorer_run_pairs(s, d, pq, pd, n, pout, &err) == MS_OK, "%s", err.msg);
    for (uint64_t p = 0; p < n; p++)
        cr_assert(memcmp(&pout[p], &got[pq[p] * d->n_rows + pd[p]], sizeof(float)) == 0,
                  "%s %s: pair (%u, %u) = %.9g, run %.9g", what, mode, pq[p], pd[p], pout[p],
                  got[pq[p] * d->n_rows + pd[p]]);
    const double sums = (q->dim + lq + 16) * 0x1p-22; /* float32 sums, tensor-core order */
    const double per_product = strcmp(mode, "raw") == 0 ? 0x1p-9 : 0x1p-10;
    for (uint64_t p = 0; p < n; p++) {
        const double b = bound[p] > 0 ? bound[p] : 1.0;
        cr_assert(fabs(got[p] - ref[p]) <= (per_product + sums) * bound[p],
                  "%s %s: score %llu = %.9g, reference %.9g, |diff| %g > %g", what, mode,
                  (unsigned long long)p, got[p], ref[p], fabs(got[p] - ref[p]),
                  (per_product + sums) * bound[p]);
        worst_exact = fmax(worst_exact, fabs(got[p] - ref[p]) / b);
        worst_rna = fmax(worst_rna, fabs(got[p] - rna[p]) / b);
        worst_trunc = fmax(worst_trunc, fabs(got[p] - trn[p]) / b);
        if (plain && strcmp(mode, "raw") != 0)
            cr_assert(fabs(got[p] - rna[p]) <= sums * bound[p],
                      "%s %s: score %llu = %.9g, model of operands rounded to nearest %.9g, |diff| "
                      "%g > %g",
                      what, mode, (unsigned long long)p, got[p], rna[p], fabs(got[p] - rna[p]),
                      sums * bound[p]);
    }
    /* what the lead reads off the GPU run: which model of the operands the results follow */
    fprintf(stderr,
            "tf32 %s %s: max |error| / sum|q d|: against float64 %.3g, rounded-operand model "
            "%.3g, truncated-operand model %.3g (path: %s)\n",
            mode, what, worst_exact, worst_rna, worst_trunc, ms_scorer_path(s));
    ms_scorer_free(s);
    unsetenv("MAXSIM_NV_TF32");
    free(pout);
    free(pq);
    free(pd);
    free(ref);
    free(bound);
    free(rna);
    free(trn);
    return got;
}

/* On an NVIDIA GPU of cc >= 8.0 only (skipped elsewhere, PoCL included): every rounding mode, the
 * stream kernel (two queries) and the staged one (five), float32 and float16 documents,
 * normalization, a dim that is not a multiple of 8 (always the prep pass); prep, fused and cvt give
 * the same bits. */
Test(maxsim_tf32, tensor_cores_against_reference, .timeout = 300)
{
    static const uint32_t dims[] = { 128, 100 };
    if (!ms_scorer_tf32_ok(&cl, 128))
        cr_skip_test("no tf32 tensor cores on '%s'", cl.info.name);
    for (size_t di = 0; di < sizeof dims / sizeof dims[0]; di++)
        for (uint64_t nq = 2; nq <= 5; nq += 3)
            for (int dt = 0; dt < 2; dt++)
                for (int normalize = 0; normalize <= 1; normalize++) {
                    uint64_t seed = 1000 + nq * 10 + (uint64_t)dt * 2 + (uint64_t)normalize;
                    struct ms_emb q, d;
                    char what[160];
                    const enum ms_dtype dtype = dt ? MS_DTYPE_F16 : MS_DTYPE_F32;
                    /* two queries of up to 32 tokens: the stream kernel; else staged */
                    test_random_emb(&q, MS_DTYPE_F32, dims[di], nq, 0, nq == 2 ? 32 : 40, &seed);
                    test_random_emb(&d, dtype, dims[di], 50, 0, 150, &seed);
                    snprintf(what, sizeof what, "dim %u nq %llu %s documents%s", dims[di],
                             (unsigned long long)nq, ms_dtype_name(dtype),
                             normalize ? " normalized" : "");
                    float *prep = tf32_case("prep", &q, &d, normalize, what);
                    float *fused = tf32_case("fused", &q, &d, normalize, what);
                    float *cvt = tf32_case("cvt", &q, &d, normalize, what);
                    float *raw = tf32_case("raw", &q, &d, normalize, what);
                    cr_assert(memcmp(prep, fused, q.n_rows * d.n_rows * sizeof(float)) == 0,
                              "%s: prep and fused rounding differ", what);
                    cr_assert(memcmp(prep, cvt, q.n_rows * d.n_rows * sizeof(float)) == 0,
                              "%s: prep and cvt.rna rounding differ", what);
                    free(prep);
                    free(fused);
                    free(cvt);
                    free(raw);
                    ms_emb_release(&q);
                    ms_emb_release(&d);
                }
}

/* Random data cannot tell rounding from none: the products' rounding errors cancel to about the
 * float32 sums' error. Here every value is positive and 1, 2 or 3 units of 2^-12 above a power
 * of two (a quarter, a half and three quarters of tf32's last bit: down, a tie away from zero,
 * up), so rounding to nearest moves every score by about 2^-12 of itself, truncation by minus
 * that, and nothing cancels: prep, fused and cvt must follow the model of operands rounded to
 * nearest within the float32 sums' error, which is 10x smaller than the distance of that model
 * to the unrounded scores (checked on the host, so it fails here too if the data stops telling
 * them apart). Raw mode's distances to both models are printed for the lead. */
Test(maxsim_tf32, rounding_is_to_nearest, .timeout = 120)
{
    enum { DIM = 128 };
    uint64_t seed = 77;
    struct ms_emb q, d;
    struct ms_err err = { 0 };
    test_random_emb(&q, MS_DTYPE_F32, DIM, 3, 1, 24, &seed);
    test_random_emb(&d, MS_DTYPE_F32, DIM, 40, 1, 60, &seed);
    struct ms_emb *e[2] = { &q, &d };
    for (int w = 0; w < 2; w++)
        for (uint64_t i = 0; i < ms_emb_n_tokens(e[w]) * DIM; i++)
            ((float *)e[w]->tokens)[i] =
                ldexpf(1.0f + (float)(1 + test_rand_below(&seed, 3)) * 0x1p-12f,
                       (int)test_rand_below(&seed, 4) - 2);
    const uint64_t n = q.n_rows * d.n_rows;
    double *ref = malloc(n * sizeof *ref), *rna = model_scores(&q, &d, ms_round_tf32),
           *trn = model_scores(&q, &d, trunc_tf32);
    ms_ref_scores(&q, &d, 0, ref);
    const double tol = (DIM + 24 + 16) * 0x1p-23; /* relative: all terms positive */
    for (uint64_t p = 0; p < n; p++)
        cr_assert(fabs(rna[p] - ref[p]) > 10 * tol * ref[p],
                  "the data no longer tells rounded from unrounded operands (score %llu)",
                  (unsigned long long)p);
    if (!ms_scorer_tf32_ok(&cl, DIM))
        cr_skip_test("no tf32 tensor cores on '%s' (the data check above ran)", cl.info.name);
    static const char *modes[] = { "prep", "fused", "cvt", "raw" };
    for (int m = 0; m < 4; m++) {
        const struct ms_scorer_opts o = { 0, d.n_rows, ms_emb_n_tokens(&d), 0,   0,
                                          0, 0,        MS_PREC_TF32,        NULL };
        struct ms_scorer *s;
        float *got = malloc(n * sizeof *got);
        double to_rna = 0, to_trunc = 0;
        setenv("MAXSIM_NV_TF32", modes[m], 1);
        cr_assert(ms_scorer_create(&s, &cl, &q, &o, &err) == MS_OK, "%s", err.msg);
        cr_assert(ms_scorer_run(s, &d, got, d.n_rows, &err) == MS_OK, "%s", err.msg);
        for (uint64_t p = 0; p < n; p++) {
            to_rna = fmax(to_rna, fabs(got[p] - rna[p]) / ref[p]);
            to_trunc = fmax(to_trunc, fabs(got[p] - trn[p]) / ref[p]);
            if (m < 3)
                cr_assert(fabs(got[p] - rna[p]) <= tol * ref[p],
                          "%s: score %llu = %.9g, rounded-operand model %.9g, unrounded %.9g",
                          modes[m], (unsigned long long)p, got[p], rna[p], ref[p]);
        }
        fprintf(stderr,
                "tf32 %s rounding data: max relative distance to the rounded-operand model %.3g, "
                "to the truncated-operand model %.3g (unrounded is %.3g from rounded)\n",
                modes[m], to_rna, to_trunc, fabs(rna[0] - ref[0]) / ref[0]);
        ms_scorer_free(s);
        free(got);
    }
    unsetenv("MAXSIM_NV_TF32");
    free(ref);
    free(rna);
    free(trn);
    ms_emb_release(&q);
    ms_emb_release(&d);
}

/* ---- --precision int8 ---- */

TestSuite(maxsim_int8, .init = setup, .fini = teardown, .timeout = 180);

/* The host's quantizer, table-driven: rounding to nearest with ties to even (at scale 1 the
 * products are the inputs), saturation at +-127 (never -128), zeros; a row takes its own scale
 * 127 / max |x| and returns max |x| / 127. */
Test(maxsim_int8, quantize_host)
{
    static const struct {
        float x, s;
        int8_t want;
    } one[] = {
        { 0.0f, 1.0f, 0 },
        { -0.0f, 1.0f, 0 },
        { 0.5f, 1.0f, 0 },
        { 1.5f, 1.0f, 2 },
        { 2.5f, 1.0f, 2 },
        { 3.5f, 1.0f, 4 },
        { -2.5f, 1.0f, -2 },
        { -3.5f, 1.0f, -4 },
        { 0.49999997f, 1.0f, 0 },
        { 2.5000002f, 1.0f, 3 },
        { 126.5f, 1.0f, 126 },
        { 127.5f, 1.0f, 127 },
        { -127.5f, 1.0f, -127 },
        { 200.0f, 1.0f, 127 },
        { -300.0f, 1.0f, -127 },
        { 1e30f, 1.0f, 127 },
        { 1.0f, 0.0f, 0 },
        { 0.25f, 10.0f, 2 },
        { 0.35f, 10.0f, 4 } /* 3.5: even 4 */,
    };
    for (size_t i = 0; i < sizeof one / sizeof one[0]; i++)
        cr_assert_eq(ms_quantize_i8(one[i].x, one[i].s), one[i].want, "code of %a at scale %g: %d",
                     one[i].x, one[i].s, ms_quantize_i8(one[i].x, one[i].s));

    static const struct {
        float x[6];
        uint32_t n;
        int8_t want[6];
        float inv;
    } rows[] = {
        { { 0, 0, 0 }, 3, { 0, 0, 0 }, 0.0f },
        { { 127, -63.5f, 0.5f, 1.5f, -2.5f, 126.5f }, 6, { 127, -64, 0, 2, -2, 126 }, 1.0f },
        /* scale 63.5: 63.5 -> 64 (tie, even), 31.75 -> 32, -127 from the largest |x| */
        { { -2, 1, 0.5f }, 3, { -127, 64, 32 }, 2.0f / 127.0f },
        /* a tiny row keeps its resolution: the scale is its own */
        { { 1e-30f, -1e-30f, 5e-31f }, 3, { 127, -127, 64 }, 1e-30f / 127.0f },
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        int8_t got[6];
        const float inv = ms_quantize_i8_row(rows[i].x, rows[i].n, got);
        cr_assert_eq(inv, rows[i].inv, "row %zu: 1 / scale %a, want %a", i, inv, rows[i].inv);
        for (uint32_t k = 0; k < rows[i].n; k++)
            cr_assert_eq(got[k], rows[i].want[k], "row %zu value %u: code %d, want %d", i, k,
                         got[k], rows[i].want[k]);
    }
    uint64_t seed = 31;
    for (int r = 0; r < 1000; r++) {
        float x[40];
        int8_t c[40];
        float m = 0;
        for (int k = 0; k < 40; k++) {
            x[k] = test_rand_f(&seed) * (float)(r + 1);
            m = fmaxf(m, fabsf(x[k]));
        }
        const float inv = ms_quantize_i8_row(x, 40, c);
        int top = 0;
        for (int k = 0; k < 40; k++) {
            cr_assert(fabs((double)c[k] - (double)x[k] * (127.0f / m)) <= 0.5, "%a -> %d", x[k],
                      c[k]);
            top = abs(c[k]) > top ? abs(c[k]) : top;
        }
        cr_assert_eq(top, 127, "the largest |x| must map to 127");
        cr_assert_eq(inv, m / 127.0f);
    }
}

/* The codes the int8 passes must write for a block: the float32 model of the kernel comment
 * (M the largest |value|, s = 127 / M by float32 division, ms_quantize_i8). */
static void model_block_codes(const float *x, uint64_t n, float *m_out, int8_t *codes)
{
    float m = 0.0f;
    for (uint64_t i = 0; i < n; i++)
        m = fmaxf(m, fabsf(x[i]));
    const float s = m > 0.0f ? 127.0f / m : 0.0f;
    for (uint64_t i = 0; i < n; i++)
        codes[i] = ms_quantize_i8(x[i], s);
    *m_out = m;
}

/* kernels/maxsim_nv.cl's ms_nv_absmax_* and ms_nv_prepi8_* are plain OpenCL C but for the NVIDIA
 * division: on this device (PoCL in CI) M must be the block's largest |value| bit for bit (with
 * several work-groups striding, a 16-byte-piece path and a tail), the codes the model's, bit for
 * bit, zeros past dim up to the padded row; normalized, M and the codes those of the normalized
 * values (within float32 rounding of the norm); an all-zero block gives M = 0 and codes 0; and
 * data of halves with M = 127 (scale 1: every product a tie) are rounded to even. */
Test(maxsim_int8, prep_kernels_match_the_model)
{
    static const uint32_t dims[] = { 40, 21 }; /* 16-byte pieces (and a tail) / one by one */
    enum { NTOK = 301, MAXKP = 32 };
    struct ms_err err = { 0 };
    uint64_t seed = 17;
    for (size_t di = 0; di < 2; di++) {
        const uint32_t dim = dims[di], kp = (dim + 31) / 32 * 16;
        char opts[64];
        cl_program prog;
        cl_kernel am[2], pq[2];
        float *src = malloc(NTOK * dim * sizeof *src), *val = malloc(NTOK * dim * sizeof *val);
        uint16_t *src16 = malloc(NTOK * dim * sizeof *src16);
        int8_t *want = malloc(NTOK * dim), out[NTOK * MAXKP * 2];
        snprintf(opts, sizeof opts, "-cl-std=CL1.2 -DMS_NV_KP=%u", kp);
        cr_assert(ms_cl_program(&cl, "maxsim_nv.cl", opts, &prog, &err) == MS_OK, "%s", err.msg);
        cr_assert(ms_cl_kernel(prog, "ms_nv_absmax_f32", &am[0], &err) == MS_OK, "%s", err.msg);
        cr_assert(ms_cl_kernel(prog, "ms_nv_absmax_f16", &am[1], &err) == MS_OK, "%s", err.msg);
        cr_assert(ms_cl_kernel(prog, "ms_nv_prepi8_f32", &pq[0], &err) == MS_OK, "%s", err.msg);
        cr_assert(ms_cl_kernel(prog, "ms_nv_prepi8_f16", &pq[1], &err) == MS_OK, "%s", err.msg);
        cl_mem in32 =
            ms_cl_buffer(&cl, CL_MEM_READ_ONLY, NTOK * dim * sizeof *src, NULL, "src", &err);
        cl_mem in16 =
            ms_cl_buffer(&cl, CL_MEM_READ_ONLY, NTOK * dim * sizeof *src16, NULL, "src16", &err);
        cl_mem dmax = ms_cl_buffer(&cl, CL_MEM_READ_WRITE, 4, NULL, "dmax", &err);
        cl_mem dst = ms_cl_buffer(&cl, CL_MEM_READ_WRITE, sizeof out, NULL, "dst", &err);
        cr_assert(in32 && in16 && dmax && dst, "%s", err.msg);
        for (int ties = 0; ties <= 1; ties++) {
            /* random values, or k + 1/2 for k in -127..126 with one 127: M = 127, scale 1 */
            for (uint32_t i = 0; i < NTOK * dim; i++) {
                src[i] = ties ? (float)((int)test_rand_below(&seed, 254) - 127) + 0.5f
                              : test_rand_f(&seed) * 3.0f;
                if (ties && i == NTOK * dim / 2)
                    src[i] = 127.0f;
                src16[i] = ms_float_to_half(src[i]);
            }
            cr_assert(clEnqueueWriteBuffer(cl.queue, in32, CL_TRUE, 0, NTOK * dim * sizeof *src,
                                           src, 0, NULL, NULL) == CL_SUCCESS &&
                      clEnqueueWriteBuffer(cl.queue, in16, CL_TRUE, 0, NTOK * dim * sizeof *src16,
                                           src16, 0, NULL, NULL) == CL_SUCCESS);
            for (int half_in = 0; half_in <= 1; half_in++)
                for (int normalize = 0; normalize <= !ties; normalize++)
                    for (int zero = 0; zero <= !ties; zero++) {
                        /* zero: an all-zero block, read from the same buffers */
                        const cl_uint n_tok = zero ? 0 : NTOK, ndim = dim, ntok_p = NTOK;
                        const cl_int nz = normalize;
                        const cl_uint z = 0;
                        const size_t rl = 256, rg = 2 * 256, pl = 64,
                                     pg = ((size_t)NTOK * kp / 4 + 63) / 64 * 64;
                        cl_mem in = half_in ? in16 : in32;
                        float m_dev, m_want;
                        uint32_t mbits;
                        for (uint32_t t = 0; t < NTOK; t++) {
                            double ss = 0.0;
                            for (uint32_t k = 0; k < dim; k++) {
                                const double x = half_in ? ms_half_to_float(src16[t * dim + k])
                                                         : src[t * dim + k];
                                ss += x * x;
                            }
                            for (uint32_t k = 0; k < dim; k++) {
                                const double x = half_in ? ms_half_to_float(src16[t * dim + k])
                                                         : src[t * dim + k];
                                val[t * dim + k] =
                                    zero ? 0.0f : (float)(normalize ? x / sqrt(ss) : x);
                            }
                        }
                        model_block_codes(val, (uint64_t)NTOK * dim, &m_want, want);
                        cr_assert(clEnqueueFillBuffer(cl.queue, dmax, &z, 4, 0, 4, 0, NULL, NULL) ==
                                  CL_SUCCESS);
                        /* the zero block: M stays 0 (no token counted), codes from M = 0 */
                        cr_assert(MS_CL_SET_ARGS(am[half_in], "absmax", &err, MS_ARG(in),
                                                 MS_ARG(n_tok), MS_ARG(ndim), MS_ARG(nz),
                                                 MS_ARG(dmax)) == MS_OK &&
                                      ms_cl_launch(&cl, am[half_in], 1, &rg, &rl, "absmax", NULL,
                                                   &err) == MS_OK,
                                  "%s", err.msg);
                        cr_assert(MS_CL_SET_ARGS(pq[half_in], "prepi8", &err, MS_ARG(in),
                                                 MS_ARG(ntok_p), MS_ARG(ndim), MS_ARG(nz),
                                                 MS_ARG(dmax), MS_ARG(dst)) == MS_OK &&
                                      ms_cl_launch(&cl, pq[half_in], 1, &pg, &pl, "prepi8", NULL,
                                                   &err) == MS_OK,
                                  "%s", err.msg);
                        cr_assert(clEnqueueReadBuffer(cl.queue, dmax, CL_TRUE, 0, 4, &mbits, 0,
                                                      NULL, NULL) == CL_SUCCESS);
                        cr_assert(clEnqueueReadBuffer(cl.queue, dst, CL_TRUE, 0,
                                                      (size_t)NTOK * kp * 2, out, 0, NULL,
                                                      NULL) == CL_SUCCESS);
                        memcpy(&m_dev, &mbits, 4);
                        if (zero) {
                            cr_assert_eq(mbits, 0u, "no tokens: M %a", m_dev);
                            for (uint32_t i = 0; i < NTOK * kp * 2; i++)
                                cr_assert_eq(out[i], 0, "M = 0: code %u is %d", i, out[i]);
                            continue;
                        }
                        if (!normalize)
                            cr_assert_eq(m_dev, m_want, "dim %u f16 %d: M %a, want %a", dim,
                                         half_in, m_dev, m_want);
                        else
                            cr_assert(fabsf(m_dev - m_want) <= 1e-6f * m_want,
                                      "normalized M %a, %a", m_dev, m_want);
                        const float s = 127.0f / m_dev;
                        int top = 0;
                        for (uint32_t t = 0; t < NTOK; t++)
                            for (uint32_t k = 0; k < 2 * kp; k++) {
                                const int8_t got = out[t * 2 * kp + k];
                                if (k >= dim) {
                                    cr_assert_eq(got, 0, "padding (%u, %u): %d", t, k, got);
                                    continue;
                                }
                                top = abs(got) > top ? abs(got) : top;
                                if (!normalize)
                                    cr_assert_eq(got, want[t * dim + k],
                                                 "dim %u f16 %d (%u, %u): code %d, want %d", dim,
                                                 half_in, t, k, got, want[t * dim + k]);
                                else /* the device's norm may differ in the last bit */
                                    cr_assert(fabs(got - (double)val[t * dim + k] * s) <=
                                                  0.5 + 1e-4,
                                              "normalized (%u, %u): code %d for %g", t, k, got,
                                              (double)val[t * dim + k] * s);
                            }
                        cr_assert_eq(top, 127, "the largest |value| must map to 127");
                        if (ties) /* the model itself rounds ties to even */
                            cr_assert(want[0] % 2 == 0 && fabsf(src[0] - (float)want[0]) == 0.5f,
                                      "tie %g -> %d", src[0], want[0]);
                    }
        }
        clReleaseMemObject(in32);
        clReleaseMemObject(in16);
        clReleaseMemObject(dmax);
        clReleaseMemObject(dst);
        for (int i = 0; i < 2; i++) {
            clReleaseKernel(am[i]);
            clReleaseKernel(pq[i]);
        }
        clReleaseProgram(prog);
        free(src);
        free(src16);
        free(val);
        free(want);
    }
}

/* Where the tensor-core path cannot take int8 (every device but an NVIDIA GPU of cc >= 8.0; any
 * device under MAXSIM_NV_MMA=0; dim > 512) a scorer refuses it (MS_ERR_INPUT), as f8. */
Test(maxsim_int8, refused_without_tensor_cores)
{
    uint64_t seed = 14;
    struct ms_emb q, q600;
    struct ms_err err = { 0 };
    struct ms_scorer *s = NULL;
    const struct ms_scorer_opts o = { 0, 10, 1000, 0, 0, 0, 0, MS_PREC_I8, NULL };
    test_random_emb(&q, MS_DTYPE_F16, 128, 2, 1, 9, &seed);
    test_random_emb(&q600, MS_DTYPE_F16, 600, 1, 1, 3, &seed);
    cr_assert_eq(ms_scorer_create(&s, &cl, &q600, &o, &err), MS_ERR_INPUT, "dim 600");
    cr_assert(strstr(err.msg, "--precision int8") != NULL, "%s", err.msg);
    setenv("MAXSIM_NV_MMA", "0", 1);
    err = (struct ms_err){ 0 };
    cr_assert_eq(ms_scorer_create(&s, &cl, &q, &o, &err), MS_ERR_INPUT);
    cr_assert(strstr(err.msg, "--precision int8") != NULL, "%s", err.msg);
    unsetenv("MAXSIM_NV_MMA");
    if (!cl.info.is_nvidia || cl.info.nv_cc_major < 8) {
        err = (struct ms_err){ 0 };
        cr_assert_eq(ms_scorer_create(&s, &cl, &q, &o, &err), MS_ERR_INPUT);
    }
    ms_emb_release(&q);
    ms_emb_release(&q600);
}

/*
 * One int8 GPU case: the scorer with blocks of `block` documents (each its own M), against
 * (1) a float64 model of the same quantization (the host's query codes and scales, each block's
 * codes by model_block_codes, exact integer products, maxima times the scales), to float32
 * rounding: the row values carry about 3 roundings (the scales' product, the conversion is exact)
 * and the sums over lq rows one each, so |got - model| <= (lq + 8) 2^-23 sum_rows |value|
 * (without --normalize; normalized, the device's norm may move a code by one, so only (2)); and
 * (2) the unquantized float64 scores within the quantization bound: a code is off its scaled
 * value by at most 1/2, so a product sum_k q_k d_k moves by at most 1/2 (M_b / 127) |q|_1 +
 * 1/2 (M_q / 127) |d|_1 + dim / 4 (M_q / 127)(M_b / 127), and a max by at most the largest
 * such move over the document's tokens; plus the float32 sums. Pairs give the run's bits.
 */
static void int8_case(const struct ms_emb *q, const struct ms_emb *d, int normalize, uint64_t block,
                      const char *what)
{
    struct ms_err err = { 0 };
    const struct ms_scorer_opts o = { normalize,  block, ms_emb_n_tokens(d) + 1, 0, 0, 0, 0,
                                      MS_PREC_I8, NULL };
    const uint32_t dim = q->dim;
    const uint64_t nq = q->n_rows, nd = d->n_rows, n = nq * nd;
    const uint64_t qtok = ms_emb_n_tokens(q), dtok = ms_emb_n_tokens(d);
    struct ms_scorer *s;
    float *got = malloc((n + 1) * sizeof *got), *pout = malloc((n + 1) * sizeof *pout);
    uint32_t *pq = malloc((n + 1) * sizeof *pq), *pd = malloc((n + 1) * sizeof *pd);
    double *ref = malloc((n + 1) * sizeof *ref);
    float *qv = malloc((qtok * dim + 1) * sizeof *qv), *dv = malloc((dtok * dim + 1) * sizeof *dv);
    float *qinv = malloc((qtok + 1) * sizeof *qinv), *dm = malloc((nd + 1) * sizeof *dm);
    int8_t *qc = malloc(qtok * dim + 1), *dc = malloc(dtok * dim + 1);
    double worst_model = 0, worst_exact = 0;

    /* the values the kernels quantize (normalized in double here) */
    const struct ms_emb *src[2] = { q, d };
    float *dstv[2] = { qv, dv };
    for (int e = 0; e < 2; e++)
        for (uint64_t t = 0; t < ms_emb_n_tokens(src[e]); t++) {
            const double sc = normalize ? 1.0 / fmax(norm_of(src[e], t), 1e-12) : 1.0;
            for (uint32_t k = 0; k < dim; k++)
                dstv[e][t * dim + k] = (float)(ms_emb_value(src[e], t, k) * sc);
        }
    for (uint64_t t = 0; t < qtok; t++)
        qinv[t] = ms_quantize_i8_row(qv + t * dim, dim, qc + t * dim);
    for (uint64_t j0 = 0; j0 < nd; j0 += block) { /* the scorer's blocks: `block` documents */
        const uint64_t j1 = j0 + block < nd ? j0 + block : nd;
        const uint64_t t0 = d->offsets[j0], t1 = d->offsets[j1];
        float m;
        model_block_codes(dv + t0 * dim, (t1 - t0) * dim, &m, dc + t0 * dim);
        for (uint64_t j = j0; j < j1; j++)
            dm[j] = m;
    }

    cr_assert(ms_scorer_create(&s, &cl, q, &o, &err) == MS_OK, "%s: %s", what, err.msg);
    cr_assert(strstr(ms_scorer_path(s), "int8") != NULL, "%s: path %s", what, ms_scorer_path(s));
    cr_assert(ms_scorer_run(s, d, got, nd, &err) == MS_OK, "%s", err.msg);
    for (uint64_t p = 0; p < n; p++) {
        pq[p] = (uint32_t)(p % nq);
        pd[p] = (uint32_t)(nd - 1 - p / nq);
    }
    cr_assert(ms_scorer_run_pairs(s, d, pq, pd, n, pout, &err) == MS_OK, "%s", err.msg);
    for (uint64_t p = 0; p < n; p++)
        cr_assert(memcmp(&pout[p], &got[pq[p] * nd + pd[p]], sizeof(float)) == 0,
                  "%s: pair (%u, %u) = %.9g, run %.9g", what, pq[p], pd[p], pout[p],
                  got[pq[p] * nd + pd[p]]);
    ms_ref_scores(q, d, normalize, ref);
    for (uint64_t i = 0; i < nq; i++)
        for (uint64_t j = 0; j < nd; j++) {
            const double g = got[i * nd + j], inv_d = dm[j] / 127.0;
            const uint64_t lq = ms_emb_row_len(q, i);
            double model = 0, mag = 0, qbound = 0;
            if (lq == 0 || ms_emb_row_len(d, j) == 0) {
                cr_assert(g == 0.0 && !signbit(g), "%s: empty row: score(%llu, %llu) = %g", what,
                          (unsigned long long)i, (unsigned long long)j, g);
                continue;
            }
            for (uint64_t a = q->offsets[i]; a < q->offsets[i + 1]; a++) {
                long best = LONG_MIN;
                double move = 0, q1 = 0;
                for (uint32_t k = 0; k < dim; k++)
                    q1 += fabs(qv[a * dim + k]);
                for (uint64_t t = d->offsets[j]; t < d->offsets[j + 1]; t++) {
                    long dot = 0;
                    double d1 = 0;
                    for (uint32_t k = 0; k < dim; k++) {
                        dot += (long)qc[a * dim + k] * dc[t * dim + k];
                        d1 += fabs(dv[t * dim + k]);
                    }
                    best = dot > best ? dot : best;
                    move = fmax(move, 0.5 * inv_d * q1 + 0.5 * qinv[a] * d1 +
                                          0.25 * dim * qinv[a] * inv_d);
                }
                const double v = (double)best * qinv[a] * inv_d;
                model += v;
                mag += fabs(v);
                qbound += move;
            }
            const double sums = (double)(lq + 8) * 0x1p-23 * mag + 1e-30;
            worst_model = fmax(worst_model, fabs(g - model) / (mag > 0 ? mag : 1));
            worst_exact = fmax(worst_exact, fabs(g - ref[i * nd + j]) / (qbound > 0 ? qbound : 1));
            if (!normalize)
                cr_assert(fabs(g - model) <= sums,
                          "%s: score(%llu, %llu) = %.9g, same-quantization model %.9g, |diff| %g "
                          "> %g",
                          what, (unsigned long long)i, (unsigned long long)j, g, model,
                          fabs(g - model), sums);
            cr_assert(fabs(g - ref[i * nd + j]) <= qbound * 1.001 + 2 * sums,
                      "%s: score(%llu, %llu) = %.9g, float64 %.9g, |diff| %g > quantization "
                      "bound %g",
                      what, (unsigned long long)i, (unsigned long long)j, g, ref[i * nd + j],
                      fabs(g - ref[i * nd + j]), qbound);
        }
    /* what the lead reads off the GPU run */
    fprintf(stderr,
            "int8 %s: max |error| against the same-quantization model / sum |row value| %.3g; "
            "against float64 / quantization bound %.3g (path: %s)\n",
            what, worst_model, worst_exact, ms_scorer_path(s));
    ms_scorer_free(s);
    free(got);
    free(pout);
    free(pq);
    free(pd);
    free(ref);
    free(qv);
    free(dv);
    free(qinv);
    free(dm);
    free(qc);
    free(dc);
}

/* On an NVIDIA GPU of cc >= 8.0 only (skipped elsewhere, PoCL included): the stream kernel (two
 * queries) and the staged one (five), float16 and float32 documents in blocks of 17 of 50 (each
 * its own M; lengths from 0: empty documents and queries), dims 128 (16-byte pieces), 100 and 40
 * (not multiples of 32: zero padding in the last k-step; 100 read one by one), normalization. */
Test(maxsim_int8, tensor_cores_against_reference, .timeout = 300)
{
    static const uint32_t dims[] = { 128, 100, 40 };
    const char *e = getenv("MAXSIM_NV_MMA");
    if (!cl.info.is_nvidia || cl.info.nv_cc_major < 8 || (e && strcmp(e, "0") == 0))
        cr_skip_test("no int8 tensor cores on '%s'", cl.info.name);
    for (size_t di = 0; di < sizeof dims / sizeof dims[0]; di++)
        for (uint64_t nq = 2; nq <= 5; nq += 3)
            for (int dt = 0; dt < 2; dt++)
                for (int normalize = 0; normalize <= 1; normalize++) {
                    uint64_t seed =
                        2000 + di * 100 + nq * 10 + (uint64_t)dt * 2 + (uint64_t)normalize;
                    struct ms_emb q, d;
                    char what[160];
                    const enum ms_dtype dtype = dt ? MS_DTYPE_F16 : MS_DTYPE_F32;
                    test_random_emb(&q, MS_DTYPE_F16, dims[di], nq, 0, nq == 2 ? 32 : 40, &seed);
                    test_random_emb(&d, dtype, dims[di], 50, 0, 150, &seed);
                    snprintf(what, sizeof what, "dim %u nq %llu %s documents%s", dims[di],
                             (unsigned long long)nq, ms_dtype_name(dtype),
                             normalize ? " normalized" : "");
                    int8_case(&q, &d, normalize, 17, what);
                    ms_emb_release(&q);
                    ms_emb_release(&d);
                }
}
