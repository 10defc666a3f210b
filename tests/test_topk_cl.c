/*
 * test_topk_cl.c - the device top-k selection (src/topk_cl.c, kernels/topk.cl) against the host
 * heaps of topk.c on random score rows with many ties (quantized scores, -0 and +0, denormals,
 * infinities, NaN), for k in {1, 7, 100, 1024} and row lengths {1, 5, 1000, 70000}, k above the
 * length included: the same scores (bit for bit) and columns, in the same order.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cl_dev.h"
#include "testutil.h"
#include "topk.h"
#include "topk_cl.h"

static struct ms_cl cl;

static void setup(void)
{
    test_cl_open(&cl);
}

static void teardown(void)
{
    ms_cl_close(&cl);
}

TestSuite(topk_cl, .init = setup, .fini = teardown, .timeout = 300);

/* A score with many ties: a multiple of 1/4 in [-4, 4), now and then -0, +0, +-inf or NaN
 * (`special` of 64 draws), or from a narrow set of `levels` values. */
static float tie_score(uint64_t *seed, int special, int levels)
{
    const uint64_t r = test_rand_below(seed, 64);
    if ((int)r < special) {
        /* denormals too: above +0 and below -0 on the host, so on the device */
        static const float sp[] = { -0.0f, 0.0f, INFINITY, -INFINITY, NAN, -NAN, 1e-40f, -1e-45f };
        return sp[test_rand_below(seed, 8)];
    }
    return (float)((int)test_rand_below(seed, (uint64_t)levels) - levels / 2) * 0.25f;
}

/* Select rows [nq][n] (pitch floats apart) on the device and compare with heaps. */
static void check(uint64_t nq, uint64_t n, uint64_t pitch, uint32_t k, int special, int levels,
                  uint64_t seed)
{
    struct ms_err err = { 0 };
    struct ms_topk_cl *t;
    struct ms_topk host;
    float *scores = malloc(nq * pitch * sizeof *scores);
    float *got_s = malloc(nq * k * sizeof *got_s);
    uint32_t *got_i = malloc(nq * k * sizeof *got_i);
    const uint64_t m = k < n ? k : n;
    double kernel_s = 0;

    for (uint64_t i = 0; i < nq * pitch; i++)
        scores[i] = tie_score(&seed, special, levels);
    cl_mem buf =
        ms_cl_buffer(&cl, CL_MEM_READ_ONLY, nq * pitch * sizeof *scores, scores, "scores", &err);
    cr_assert(buf, "%s", err.msg);
    cr_assert(ms_topk_cl_create(&t, &cl, &err) == MS_OK, "%s", err.msg);
    cr_assert(ms_topk_cl_select(t, buf, pitch, nq, n, k, got_s, got_i, &kernel_s, &err) == MS_OK,
              "%s", err.msg);
    cr_assert(ms_topk_init(&host, nq, m, &err) == MS_OK);
    for (uint64_t q = 0; q < nq; q++)
        for (uint64_t j = 0; j < n; j++)
            ms_topk_push_one(&host, q, scores[q * pitch + j], j);
    ms_topk_finish(&host);
    for (uint64_t q = 0; q < nq; q++) {
        cr_assert_eq(host.count[q], m);
        for (uint64_t r = 0; r < m; r++) {
            const float hs = host.score[q * m + r], gs = got_s[q * k + r];
            cr_assert(host.row[q * m + r] == got_i[q * k + r] && memcmp(&hs, &gs, 4) == 0,
                      "nq %llu n %llu k %u: query %llu rank %llu: device (%g, col %u), host (%g, "
                      "col %llu)",
                      (unsigned long long)nq, (unsigned long long)n, k, (unsigned long long)q,
                      (unsigned long long)r, gs, got_i[q * k + r], hs,
                      (unsigned long long)host.row[q * m + r]);
        }
    }
    ms_topk_release(&host);
    ms_topk_cl_free(t);
    ms_cl_release(&buf);
    free(scores);
    free(got_s);
    free(got_i);
}

Test(topk_cl, ties_all_shapes)
{
    static const uint32_t ks[] = { 1, 7, 100, 1024 };
    static const uint64_t ns[] = { 1, 5, 1000, 70000 };

    cr_assert(ms_topk_cl_usable(&cl), "the test device cannot select");
    for (size_t a = 0; a < sizeof ks / sizeof *ks; a++)
        for (size_t b = 0; b < sizeof ns / sizeof *ns; b++)
            check(ns[b] > 1000 ? 2 : 5, ns[b], ns[b], ks[a], 4, 32, 1000 * a + b);
}

Test(topk_cl, few_levels_and_pitch)
{
    /* two levels: the k-th key has thousands of equal keys, the first by column win */
    check(3, 5000, 5003, 100, 0, 2, 7);
    check(3, 5000, 5000, 1024, 0, 1, 8);
    /* mostly NaN and signed zeros */
    check(4, 3000, 3001, 1024, 60, 2, 9);
    check(4, 777, 800, 1000, 30, 8, 10);
}

Test(topk_cl, bad_k)
{
    struct ms_err err = { 0 };
    struct ms_topk_cl *t;
    float s = 1, os;
    uint32_t oi;
    cl_mem buf = ms_cl_buffer(&cl, CL_MEM_READ_ONLY, sizeof s, &s, "scores", &err);

    cr_assert(ms_topk_cl_create(&t, &cl, &err) == MS_OK, "%s", err.msg);
    cr_assert_eq(ms_topk_cl_select(t, buf, 1, 1, 1, 0, &os, &oi, NULL, &err), MS_ERR_INPUT);
    cr_assert_eq(ms_topk_cl_select(t, buf, 1, 1, 1, MS_TOPK_CL_MAX_K + 1, &os, &oi, NULL, &err),
                 MS_ERR_INPUT);
    cr_assert(ms_topk_cl_select(t, buf, 1, 1, 1, 3, &os, &oi, NULL, &err) == MS_OK, "%s", err.msg);
    cr_assert(os == 1.0f && oi == 0);
    ms_topk_cl_free(t);
    ms_cl_release(&buf);
}
