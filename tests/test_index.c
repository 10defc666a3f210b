/*
 * test_index.c - `maxsim index` below the command line: the quantile and
 * centroid-count formulas against worked values, the device assignment and
 * residual compression (kernels/index.cl, both assignment kernels) against
 * a double-precision reference on random shapes, independence from how points are split into
 * launches, and a whole build read back by the index reader. The float16 assignment with its
 * exact re-check (MS_INDEX_ASSIGN_APPROX, the portable reference of the tensor-core kernel)
 * against the exact kernels' codes, byte for byte, on adversarial centroids and points.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cl_dev.h"
#include "index.h"
#include "index_cl.h"
#include "out.h"
#include "plaid.h"
#include "src.h"
#include "testutil.h"

Test(index_formula, quantile_is_linear_interpolation)
{
    const double v[5] = { -2, 0, 1, 3, 10 };
    /* numpy.quantile([-2, 0, 1, 3, 10], q) */
    cr_assert_float_eq(ms_index_quantile(v, 5, 0.0), -2.0, 1e-12);
    cr_assert_float_eq(ms_index_quantile(v, 5, 0.5), 1.0, 1e-12);
    cr_assert_float_eq(ms_index_quantile(v, 5, 0.125), -1.0, 1e-12);
    cr_assert_float_eq(ms_index_quantile(v, 5, 0.9), 7.2, 1e-12);
    cr_assert_float_eq(ms_index_quantile(v, 5, 1.0), 10.0, 1e-12);
    cr_assert_float_eq(ms_index_quantile(v, 1, 0.75), -2.0, 1e-12);
}

Test(index_formula, default_centroids_as_fast_plaid)
{
    /* research/plaid.md 1.1: 1M tokens -> 8192, 10M -> 32768, 100k -> 4096 */
    cr_assert_eq(ms_index_default_k(1e6), 8192);
    cr_assert_eq(ms_index_default_k(1e7), 32768);
    cr_assert_eq(ms_index_default_k(1e5), 4096);
    cr_assert_eq(ms_index_default_k(853477), 8192); /* ColBERT issue 195's log */
}

static struct ms_cl cl;
static int have_cl;

static void setup(void)
{
    struct ms_err err;
    have_cl =
        ms_cl_open(&cl, getenv("MAXSIM_DEVICE") ? getenv("MAXSIM_DEVICE") : "auto", &err) == MS_OK;
    if (!have_cl)
        cr_skip_test("no OpenCL device: %s", err.msg);
}

static void teardown(void)
{
    if (have_cl)
        ms_cl_close(&cl);
}

/* The best <x, c> + bias over centroids, in double. */
static double best_score(const float *x, const float *cents, const float *bias, uint32_t k,
                         uint32_t dim)
{
    double best = -INFINITY;
    for (uint32_t c = 0; c < k; c++) {
        double s = bias ? bias[c] : 0.0;
        for (uint32_t d = 0; d < dim; d++)
            s += (double)x[d] * cents[(uint64_t)c * dim + d];
        best = s > best ? s : best;
    }
    return best;
}

static double score_of(const float *x, const float *cents, const float *bias, uint32_t c,
                       uint32_t dim)
{
    double s = bias ? bias[c] : 0.0;
    for (uint32_t d = 0; d < dim; d++)
        s += (double)x[d] * cents[(uint64_t)c * dim + d];
    return s;
}

Test(index_device, assign_and_compress_match_the_reference, .init = setup, .fini = teardown)
{
    const uint32_t dims[] = { 8, 32, 128, 136 }, ks[] = { 1, 7, 100, 257 }, nbs[] = { 1, 2, 4, 8 };
    uint64_t state = 14;
    struct ms_err err = { 0 };
    for (int v = 0; v < 4; v++) {
        const uint32_t dim = dims[v], k = ks[v], nbits = nbs[v], n = 37 + 150 * (uint32_t)v;
        const uint32_t row = dim * nbits / 8, ncut = (1u << nbits) - 1;
        float *x = malloc((size_t)n * dim * 4), *cents = malloc((size_t)k * dim * 4);
        float *bias = malloc(k * 4), cut[255];
        uint32_t *codes = malloc(n * 4);
        uint8_t *packed = malloc((size_t)n * row);
        for (uint64_t i = 0; i < (uint64_t)n * dim; i++)
            x[i] = test_rand_f(&state);
        for (uint64_t i = 0; i < (uint64_t)k * dim; i++)
            cents[i] = test_rand_f(&state);
        for (uint32_t c = 0; c < k; c++)
            bias[c] = -0.5f * test_rand_f(&state) * test_rand_f(&state);
        for (uint32_t i = 0; i < ncut; i++)
            cut[i] = -1.5f + 3.0f * (float)(i + 1) / (float)(ncut + 1);
        struct ms_index_dev *dev;
        cr_assert(ms_index_dev_create(&dev, &cl, dim, &err) == MS_OK, "%s", err.msg);
        for (int var = 0; var < 10; var++) {
            const int with_bias = var & 1;
            const float *b = with_bias ? bias : NULL;
            ms_index_dev_set_assign(dev, (enum ms_index_assign)(var >> 1)); /* every kernel */
            cr_assert(ms_index_dev_set_centroids(dev, cents, b, k, &err) == MS_OK, "%s", err.msg);
            cr_assert(ms_index_dev_load(dev, x, MS_DTYPE_F32, n, &err) == MS_OK, "%s", err.msg);
            cr_assert(ms_index_dev_assign(dev, codes, &err) == MS_OK, "%s", err.msg);
            cr_assert(ms_index_dev_compress(dev, cut, nbits, packed, &err) == MS_OK, "%s", err.msg);
            for (uint32_t i = 0; i < n; i++) {
                const float *xi = x + (uint64_t)i * dim;
                cr_assert_lt(codes[i], k);
                const double best = best_score(xi, cents, b, k, dim);
                cr_assert_geq(score_of(xi, cents, b, codes[i], dim), best - 1e-4,
                              "dim %u k %u point %u: code %u is not the best", dim, k, i, codes[i]);
                for (uint32_t d = 0; d < dim; d++) {
                    const double r = (double)xi[d] - cents[(uint64_t)codes[i] * dim + d];
                    unsigned want = 0, near = 0;
                    for (uint32_t c = 0; c < ncut; c++) {
                        want += cut[c] < r;
                        near |= fabs(r - cut[c]) < 1e-6;
                    }
                    const unsigned got = ms_plaid_bucket(packed + (uint64_t)i * row, nbits, d);
                    cr_assert(got == want || near,
                              "dim %u nbits %u point %u d %u: bucket %u, want %u", dim, nbits, i, d,
                              got, want);
                }
            }
        }
        ms_index_dev_free(dev);
        free(x);
        free(cents);
        free(bias);
        free(codes);
        free(packed);
    }
}

Test(index_device, results_do_not_depend_on_blocks_or_dtype, .init = setup, .fini = teardown)
{
    const uint32_t dim = 64, k = 300, n = 1000;
    uint64_t state = 99;
    struct ms_err err = { 0 };
    float *x = malloc((size_t)n * dim * 4), *cents = malloc((size_t)k * dim * 4);
    uint16_t *h = malloc((size_t)n * dim * 2);
    uint32_t *whole = malloc(n * 4), *parts = malloc(n * 4), *half = malloc(n * 4);
    for (uint64_t i = 0; i < (uint64_t)n * dim; i++) {
        h[i] = ms_float_to_half(test_rand_f(&state));
        x[i] = ms_half_to_float(h[i]);
    }
    for (uint64_t i = 0; i < (uint64_t)k * dim; i++)
        cents[i] = test_rand_f(&state);
    struct ms_index_dev *dev;
    cr_assert(ms_index_dev_create(&dev, &cl, dim, &err) == MS_OK, "%s", err.msg);
    cr_assert(ms_index_dev_set_centroids(dev, cents, NULL, k, &err) == MS_OK, "%s", err.msg);
    cr_assert(ms_index_dev_load(dev, x, MS_DTYPE_F32, n, &err) == MS_OK, "%s", err.msg);
    cr_assert(ms_index_dev_assign(dev, whole, &err) == MS_OK, "%s", err.msg);
    const uint32_t cuts[] = { 0, 1, 333, 334, 999, 1000 };
    for (int i = 0; i + 1 < 6; i++) {
        cr_assert(ms_index_dev_load(dev, x + (uint64_t)cuts[i] * dim, MS_DTYPE_F32,
                                    cuts[i + 1] - cuts[i], &err) == MS_OK);
        cr_assert(ms_index_dev_assign(dev, parts + cuts[i], &err) == MS_OK, "%s", err.msg);
    }
    cr_assert(ms_index_dev_load(dev, h, MS_DTYPE_F16, n, &err) == MS_OK, "%s", err.msg);
    cr_assert(ms_index_dev_assign(dev, half, &err) == MS_OK, "%s", err.msg);
    cr_assert(memcmp(whole, parts, n * 4) == 0, "codes depend on the launch split");
    /* the GPU kernel and the CPU one give the same codes (the same fma chains) */
    const enum ms_index_assign kinds[] = { MS_INDEX_ASSIGN_SIMPLE, MS_INDEX_ASSIGN_V16,
                                           MS_INDEX_ASSIGN_TILED, MS_INDEX_ASSIGN_APPROX,
                                           MS_INDEX_ASSIGN_NV };
    for (int i = 0; i < 5; i++) {
        ms_index_dev_set_assign(dev, kinds[i]);
        memset(parts, 0xff, n * 4);
        cr_assert(ms_index_dev_assign(dev, parts, &err) == MS_OK, "%s", err.msg);
        cr_assert(memcmp(half, parts, n * 4) == 0, "assignment kernel %d gives other codes", i);
    }
    cr_assert(memcmp(whole, half, n * 4) == 0, "float16 input codes differ from float32");
    ms_index_dev_free(dev);
    free(x);
    free(h);
    free(cents);
    free(whole);
    free(parts);
    free(half);
}

/* ---- the float16 pass with its exact re-check ---- */

enum adversary {
    ADV_RANDOM,
    ADV_DUPLICATES,    /* centroids repeated: exact ties, the lower index wins */
    ADV_NEAR_DUPS,     /* centroids 1 float32 ulp apart: the same float16 values */
    ADV_EQUIDISTANT,   /* centroid pairs with two values swapped, points equal in them */
    ADV_POINTS_ARE_C,  /* every point a centroid (k-means' start) */
    ADV_POINT_RANGE,   /* point values beyond float16's range and in its subnormals */
    ADV_CENTROID_HUGE, /* a centroid value beyond float16: all exact */
    ADV_CLUSTERED,     /* points near their centroid: few near ties */
    ADV_CROWDED,       /* centroids 1e-3 apart: float16 misorders many of them */
    ADV_COUNT
};

static void adversarial(enum adversary a, uint32_t n, uint32_t k, uint32_t dim, uint64_t *state,
                        float *x, float *cents)
{
    for (uint64_t i = 0; i < (uint64_t)k * dim; i++)
        cents[i] = test_rand_f(state);
    for (uint64_t i = 0; i < (uint64_t)n * dim; i++)
        x[i] = test_rand_f(state);
    for (uint32_t c = 1; c < k; c++) {
        float *v = cents + (uint64_t)c * dim;
        const float *u = v - dim;
        if (a == ADV_DUPLICATES && c % 3 != 1)
            memcpy(v, cents + (uint64_t)(c / 3) * dim, dim * 4);
        if (a == ADV_NEAR_DUPS && c % 2) {
            memcpy(v, u, dim * 4);
            v[c % dim] = nextafterf(v[c % dim], 2.0f);
        }
        if (a == ADV_CROWDED)
            for (uint32_t d = 0; d < dim; d++)
                v[d] = cents[d] + 1e-3f * test_rand_f(state);
        if (a == ADV_EQUIDISTANT && c % 2) {
            memcpy(v, u, dim * 4);
            v[0] = u[1];
            v[1] = u[0];
        }
    }
    for (uint32_t i = 0; i < n; i++) {
        float *xi = x + (uint64_t)i * dim;
        const float *ci = cents + (uint64_t)(i % k) * dim;
        if (a == ADV_EQUIDISTANT)
            xi[1] = xi[0];
        if (a == ADV_POINTS_ARE_C)
            memcpy(xi, ci, dim * 4);
        if (a == ADV_POINT_RANGE && i % 3 == 0)
            xi[i % dim] = i % 2 ? 7e4f : -1e-6f;
        if (a == ADV_POINT_RANGE && i % 3 == 1)
            xi[i % dim] = 3e-7f * test_rand_f(state);
        if (a == ADV_CLUSTERED)
            for (uint32_t d = 0; d < dim; d++)
                xi[d] = ci[d] + 0.05f * xi[d];
    }
    if (a == ADV_CENTROID_HUGE)
        cents[(uint64_t)(k / 2) * dim] = 1e5f;
}

/* k-means' bias: nearest in L2 = the largest <x, c> - |c|^2 / 2 */
static void l2_bias(const float *cents, uint32_t k, uint32_t dim, float *bias)
{
    for (uint32_t c = 0; c < k; c++) {
        double s = 0;
        for (uint32_t d = 0; d < dim; d++)
            s += (double)cents[(uint64_t)c * dim + d] * cents[(uint64_t)c * dim + d];
        bias[c] = (float)(-0.5 * s);
    }
}

static void assign_with(struct ms_index_dev *dev, enum ms_index_assign kind, uint32_t n,
                        uint32_t *codes)
{
    struct ms_err err = { 0 };
    ms_index_dev_set_assign(dev, kind);
    memset(codes, 0xff, n * 4);
    cr_assert(ms_index_dev_assign(dev, codes, &err) == MS_OK, "%s", err.msg);
}

Test(index_approx, recheck_gives_the_exact_codes, .init = setup, .fini = teardown)
{
    const uint32_t dims[] = { 48, 96, 128 }, ks[] = { 1, 2, 9, 67, 130 }, ns[] = { 1, 37, 301 };
    uint64_t state = 1414;
    struct ms_err err = { 0 };
    for (int v = 0; v < 3; v++) {
        const uint32_t dim = dims[v];
        struct ms_index_dev *dev;
        cr_assert(ms_index_dev_create(&dev, &cl, dim, &err) == MS_OK, "%s", err.msg);
        for (int a = 0; a < ADV_COUNT; a++)
            for (int with_bias = 0; with_bias < 2; with_bias++) {
                /* shapes vary with the case; crowded centroids (what goes wrong
                 * without the margin) are many */
                const uint32_t k = a == ADV_CROWDED ? 67u + 63u * (uint32_t)with_bias
                                                    : ks[(a + v + with_bias) % 5];
                const uint32_t n = ns[(a + 2 * with_bias) % 3];
                float *x = malloc((size_t)n * dim * 4), *cents = malloc((size_t)k * dim * 4);
                float *bias = malloc(k * 4);
                uint32_t *want = malloc(n * 4), *got = malloc(n * 4);
                struct ms_index_recheck r0, r1;
                adversarial((enum adversary)a, n, k, dim, &state, x, cents);
                l2_bias(cents, k, dim, bias);
                cr_assert(ms_index_dev_set_centroids(dev, cents, with_bias ? bias : NULL, k,
                                                     &err) == MS_OK,
                          "%s", err.msg);
                cr_assert(ms_index_dev_load(dev, x, MS_DTYPE_F32, n, &err) == MS_OK, "%s", err.msg);
                assign_with(dev, MS_INDEX_ASSIGN_TILED, n, want);
                /* the re-check runs on the last exact kind set; the tensor-core
                 * kernel on NVIDIA (elsewhere NV would be the portable one again) */
                const enum ms_index_assign exact[] = { MS_INDEX_ASSIGN_SIMPLE, MS_INDEX_ASSIGN_V16,
                                                       MS_INDEX_ASSIGN_TILED }; /* split */
                const enum ms_index_assign approx =
                    cl.info.is_nvidia ? MS_INDEX_ASSIGN_NV : MS_INDEX_ASSIGN_APPROX;
                for (int e = 0; e < 3 + cl.info.is_nvidia; e++) {
                    assign_with(dev, exact[e % 3], n, got);
                    cr_assert(memcmp(want, got, n * 4) == 0, "exact kinds differ");
                    ms_index_dev_recheck_stats(dev, &r0);
                    assign_with(dev, e < 3 ? approx : MS_INDEX_ASSIGN_APPROX, n, got);
                    ms_index_dev_recheck_stats(dev, &r1);
                    for (uint32_t i = 0; i < n; i++)
                        cr_assert_eq(got[i], want[i],
                                     "case %d bias %d dim %u k %u n %u point %u: code %u, exact %u",
                                     a, with_bias, dim, k, n, i, got[i], want[i]);
                    const uint64_t rechecked = r1.rechecked - r0.rechecked;
                    cr_assert_eq(r1.points - r0.points, n);
                    if (a == ADV_CENTROID_HUGE)
                        cr_assert_eq(rechecked, n, "a centroid beyond float16: all exact");
                    if (a == ADV_POINT_RANGE)
                        cr_assert_geq(rechecked, (n + 2) / 6, "points beyond float16 re-checked");
                    if ((a == ADV_DUPLICATES || a == ADV_NEAR_DUPS) && k > 2 && n > 1)
                        cr_assert_gt(rechecked, 0, "case %d: ties must be re-checked", a);
                    if (a == ADV_CLUSTERED && k > 2 && n > 1)
                        cr_assert_lt(rechecked, n / 4 + 1, "clustered: %llu of %u re-checked",
                                     (unsigned long long)rechecked, n);
                }
                free(x);
                free(cents);
                free(bias);
                free(want);
                free(got);
            }
        ms_index_dev_free(dev);
    }
}

/* The re-check is what makes the codes exact: without a margin some near
 * ties keep their float16 winner; with an enormous one every point is
 * re-checked; the proven bound re-checks few and gets every code right. */
Test(index_approx, the_margin_decides, .init = setup, .fini = teardown)
{
    const uint32_t dim = 64, k = 48, n = 2000;
    const enum ms_index_assign approx =
        cl.info.is_nvidia ? MS_INDEX_ASSIGN_NV : MS_INDEX_ASSIGN_APPROX;
    uint64_t state = 7;
    struct ms_err err = { 0 };
    float *x = malloc((size_t)n * dim * 4), *cents = malloc((size_t)k * dim * 4);
    uint32_t *want = malloc(n * 4), *got = malloc(n * 4);
    struct ms_index_recheck r0, r1;
    /* centroids a little apart around one direction: scores within float16's error */
    for (uint64_t i = 0; i < (uint64_t)k * dim; i++)
        cents[i] = (i % dim == 0 ? 1.0f : 0.0f) + 2e-3f * test_rand_f(&state);
    for (uint64_t i = 0; i < (uint64_t)n * dim; i++)
        x[i] = (i % dim == 0 ? 1.0f : 0.0f) + 0.3f * test_rand_f(&state);
    struct ms_index_dev *dev;
    cr_assert(ms_index_dev_create(&dev, &cl, dim, &err) == MS_OK, "%s", err.msg);
    cr_assert(ms_index_dev_set_centroids(dev, cents, NULL, k, &err) == MS_OK, "%s", err.msg);
    cr_assert(ms_index_dev_load(dev, x, MS_DTYPE_F32, n, &err) == MS_OK, "%s", err.msg);
    assign_with(dev, MS_INDEX_ASSIGN_TILED, n, want);
    ms_index_dev_set_margin(dev, 0.0);
    assign_with(dev, approx, n, got);
    cr_assert(memcmp(want, got, n * 4) != 0, "no margin: float16 codes should differ somewhere");
    ms_index_dev_set_margin(dev, 1e30);
    ms_index_dev_recheck_stats(dev, &r0);
    assign_with(dev, approx, n, got);
    ms_index_dev_recheck_stats(dev, &r1);
    cr_assert_eq(r1.rechecked - r0.rechecked, n);
    cr_assert(memcmp(want, got, n * 4) == 0, "all re-checked: the exact codes");
    ms_index_dev_set_margin(dev, 1.0);
    ms_index_dev_recheck_stats(dev, &r0);
    assign_with(dev, approx, n, got);
    ms_index_dev_recheck_stats(dev, &r1);
    cr_assert(memcmp(want, got, n * 4) == 0, "the proven bound: the exact codes");
    cr_assert_lt(r1.rechecked - r0.rechecked, n, "the proven bound re-checked every point");
    ms_index_dev_free(dev);
    free(x);
    free(cents);
    free(want);
    free(got);
}

/* The bound's two rounding terms, each at its worst: the float16 rounding
 * of the points (then of the centroids) all in one direction, along a
 * centroid, so that the float16 scores put the other centroid ahead by
 * 2^-7 while float32 puts this one ahead by about 0.015. Without the term
 * for that side (|x~ - x| max|c~|, or |x| max|c~ - c|) the margin passes
 * and the code is wrong; with it the points are re-checked. dim 64. */
Test(index_approx, rounding_aligned_with_a_centroid, .init = setup, .fini = teardown)
{
    enum { DIM = 64, N = 40 };
    const float up = 1.0f + 0.99f * 0x1p-11f, down = 1.0f - 0.99f * 0x1p-12f; /* both -> 1 */
    float x[N * DIM], cents[2 * DIM];
    uint32_t want[N], got[N];
    struct ms_err err = { 0 };
    struct ms_index_dev *dev;
    cr_assert(ms_index_dev_create(&dev, &cl, DIM, &err) == MS_OK, "%s", err.msg);
    for (int side = 0; side < 2; side++)
        for (int order = 0; order < 2; order++) {
            /* a: exact in float16, 2^-7 ahead there; b: ahead in float32 */
            float *a = cents + DIM * order, *b = cents + DIM * (1 - order);
            struct ms_index_recheck r0, r1;
            for (int d = 0; d < DIM; d++) {
                a[d] = d == 0 ? 1.0f + 0x1p-7f : 1.0f;
                if (side == 0) /* the points round down along b = (2, 0, 2, 0, ...) */
                    b[d] = d % 2 ? 0.0f : 2.0f;
                else /* the centroid b rounds down along the points (all ones) */
                    b[d] = up;
            }
            for (int i = 0; i < N; i++)
                for (int d = 0; d < DIM; d++)
                    x[i * DIM + d] = side == 1 ? 1.0f : d % 2 ? down : up;
            cr_assert(ms_index_dev_set_centroids(dev, cents, NULL, 2, &err) == MS_OK, "%s",
                      err.msg);
            cr_assert(ms_index_dev_load(dev, x, MS_DTYPE_F32, N, &err) == MS_OK, "%s", err.msg);
            assign_with(dev, MS_INDEX_ASSIGN_TILED, N, want);
            for (int i = 0; i < N; i++)
                cr_assert_eq(want[i], (uint32_t)(1 - order), "the float32 winner is b");
            ms_index_dev_recheck_stats(dev, &r0);
            assign_with(dev, cl.info.is_nvidia ? MS_INDEX_ASSIGN_NV : MS_INDEX_ASSIGN_APPROX, N,
                        got);
            ms_index_dev_recheck_stats(dev, &r1);
            cr_assert(memcmp(want, got, sizeof want) == 0,
                      "side %d order %d: float16's winner kept", side, order);
            cr_assert_eq(r1.rechecked - r0.rechecked, N, "side %d: every point re-checked", side);
        }
    ms_index_dev_free(dev);
}

Test(index_build, reads_back_through_the_index_reader, .init = setup, .fini = teardown)
{
    struct ms_src src;
    struct ms_plaid p;
    struct ms_index_stats st;
    struct ms_err err = { 0 };
    struct ms_src_opts so = { fixture("index_lens.npy"), NULL, "documents" };
    struct ms_index_opts o = { .nbits = 2,
                               .centroids = 24,
                               .kmeans_iters = 3,
                               .seed = 5,
                               .docs_per_chunk = 128,
                               .block_tokens = 700 };
    char dir[] = "/tmp/maxsim-test-index-XXXXXX";
    cr_assert(mkdtemp(dir));
    cr_assert(ms_src_open(&src, fixture("index_docs.npy"), &so, &err) == MS_OK, "%s", err.msg);
    cr_assert(ms_index_build(&cl, &src, &src, dir, &o, NULL, NULL, &st, &err) == MS_OK, "%s",
              err.msg);
    cr_assert(ms_plaid_open(&p, dir, &err) == MS_OK, "%s", err.msg);
    cr_assert_eq(p.n_docs, src.n_rows);
    cr_assert_eq(p.n_tokens, src.n_tokens);
    cr_assert_eq(p.n_centroids, 24);
    cr_assert_eq(p.n_parts, 4); /* 400 documents, 128 a chunk */
    cr_assert_eq(st.k, 24);
    cr_assert_eq(st.sample_docs, 400); /* 1 + 16 sqrt(120 * 400) = 3506: all of them */
    /* every document is in the list of each of its codes */
    uint32_t codes[64];
    for (uint64_t d = 0; d < p.n_docs; d++) {
        const uint64_t t0 = p.doc_off[d], len = p.doc_off[d + 1] - t0;
        cr_assert_leq(len, 64);
        ms_plaid_codes(&p, t0, len, codes);
        for (uint64_t t = 0; t < len; t++) {
            int found = 0;
            for (uint64_t j = p.ivf_off[codes[t]]; j < p.ivf_off[codes[t] + 1]; j++)
                found |= p.ivf[j] == d;
            cr_assert(found, "document %llu missing from list %u", (unsigned long long)d, codes[t]);
        }
    }
    ms_plaid_close(&p);
    ms_src_close(&src);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -r '%s'", dir);
    cr_assert(system(cmd) == 0);
}

/* The host's share of a build does not change the index: the same corpus as
 * float16 and as float32 (the sample kept as stored, the k-means sums of
 * float16 words), k-means in one launch or in blocks of 97 points with the
 * sums beside the device or after it, the encoding's writer thread or not,
 * and a training subset (16 centroids: 4,884 tokens > 256 x 16) give the
 * same files byte for byte. */
static void build_into(struct ms_src *src, const struct ms_index_opts *o, char *dir)
{
    struct ms_index_stats st;
    struct ms_err err = { 0 };
    strcpy(dir, "/tmp/maxsim-test-index-XXXXXX");
    cr_assert(mkdtemp(dir));
    cr_assert(ms_index_build(&cl, src, src, dir, o, NULL, NULL, &st, &err) == MS_OK, "%s", err.msg);
    cr_assert_eq(st.train_points, 16 * 256);
}

Test(index_build, host_work_and_input_type_do_not_change_the_bytes, .init = setup, .fini = teardown)
{
    struct ms_src h, f;
    struct ms_emb e;
    struct ms_err err = { 0 };
    struct ms_src_opts so = { fixture("index_lens.npy"), NULL, "documents" };
    const struct ms_index_opts base = { .nbits = 4,
                                        .centroids = 16,
                                        .kmeans_iters = 3,
                                        .seed = 9,
                                        .docs_per_chunk = 100,
                                        .block_tokens = 1u << 19 };
    struct ms_index_opts o;
    char dirs[4][64], cmd[512];

    cr_assert(ms_src_open(&h, fixture("index_docs.npy"), &so, &err) == MS_OK, "%s", err.msg);
    cr_assert_eq(h.dtype, MS_DTYPE_F16);
    /* the same values as float32 */
    ms_emb_init(&e);
    cr_assert(ms_src_read(&h, 0, h.n_rows, &e, &err) == MS_OK, "%s", err.msg);
    const uint64_t n = ms_emb_n_tokens(&e) * h.dim, shape[2] = { ms_emb_n_tokens(&e), h.dim };
    char hdr[256];
    const size_t hl = ms_npy_header(hdr, "<f4", 2, shape);
    char *file = malloc(hl + n * 4);
    cr_assert(file);
    memcpy(file, hdr, hl);
    for (uint64_t i = 0; i < n; i++) {
        const float v = ms_half_to_float(((const uint16_t *)e.tokens)[i]);
        memcpy(file + hl + i * 4, &v, 4);
    }
    cr_assert(ms_src_open(&f, tmpfile_with(file, hl + n * 4, ".npy"), &so, &err) == MS_OK, "%s",
              err.msg);
    cr_assert_eq(f.dtype, MS_DTYPE_F32);

    o = base;
    build_into(&h, &o, dirs[0]);
    o.kmeans_block = 97;
    o.block_tokens = 333;
    build_into(&f, &o, dirs[1]);
    o.serial_host = 1;
    build_into(&h, &o, dirs[2]);
    o = base;
    o.kmeans_block = 1000;
    build_into(&f, &o, dirs[3]);
    for (int i = 1; i < 4; i++) {
        snprintf(cmd, sizeof cmd, "diff -r '%s' '%s' >&2", dirs[0], dirs[i]);
        cr_assert(system(cmd) == 0, "build %d differs from the first", i);
    }
    for (int i = 0; i < 4; i++) {
        snprintf(cmd, sizeof cmd, "rm -r '%s'", dirs[i]);
        cr_assert(system(cmd) == 0);
    }
    free(file);
    ms_emb_release(&e);
    ms_src_close(&f);
    ms_src_close(&h);
}
