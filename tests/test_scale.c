/*
 * test_scale.c - scale-out: which devices a --device spec names (devset.c),
 * blocks scored on several devices at once (pool.c) giving the bits of one
 * device, scored run lines read back exactly, and shard runs merged into the
 * bytes of the unsharded run (runmerge.c), on random data full of ties.
 *
 * The pool tests ask PoCL for three CPU devices (POCL_DEVICES lists its
 * pthread device once per entry); on a machine with GPUs "all" is its GPUs.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "devset.h"
#include "maxsim.h"
#include "out.h"
#include "pool.h"
#include "runmerge.h"
#include "testutil.h"
#include "topk.h"

/* ---- devset_pick on hand-made device lists ---- */

static struct ms_cl_devinfo dev(int index, cl_device_type type, const char *name)
{
    struct ms_cl_devinfo d;
    memset(&d, 0, sizeof d);
    d.index = index;
    d.type = type;
    snprintf(d.name, sizeof d.name, "%s", name);
    snprintf(d.driver_version, sizeof d.driver_version, "1.0");
    snprintf(d.platform_name, sizeof d.platform_name, "%s",
             type == CL_DEVICE_TYPE_GPU ? "NVIDIA CUDA" : "PoCL");
    return d;
}

static void pick(const struct ms_cl_devinfo *list, int n, const char *spec, int nth,
                 const char *want)
{
    int idx[MS_MAX_DEVICES], n_idx = -1;
    char got[1200] = "";
    struct ms_err err = { 0 };

    if (ms_devset_pick(list, n, spec, nth, idx, &n_idx, &err) != MS_OK)
        snprintf(got, sizeof got, "error %d: %s", err.status, err.msg);
    else
        for (int i = 0; i < n_idx; i++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%d", i ? "," : "", idx[i]);
    cr_assert(strncmp(got, want, strlen(want)) == 0, "spec '%s' nth %d: got '%s', want '%s'", spec,
              nth, got, want);
}

Test(devset, pick)
{
    const struct ms_cl_devinfo mixed[] = {
        dev(0, CL_DEVICE_TYPE_CPU, "cpu"),
        dev(1, CL_DEVICE_TYPE_GPU, "H200"),
        dev(2, CL_DEVICE_TYPE_GPU, "H200"),
        dev(3, CL_DEVICE_TYPE_GPU, "H200"),
    };
    const struct ms_cl_devinfo cpus[] = { dev(0, CL_DEVICE_TYPE_CPU, "cpu"),
                                          dev(1, CL_DEVICE_TYPE_CPU, "cpu") };
    const struct ms_cl_devinfo odd[] = { dev(0, CL_DEVICE_TYPE_GPU, "H200"),
                                         dev(1, CL_DEVICE_TYPE_GPU, "A100") };

    pick(mixed, 4, "all", -1, "1,2,3"); /* the GPUs, not the CPU */
    pick(cpus, 2, "all", -1, "0,1");
    pick(mixed, 4, "3,1", -1, "3,1");
    pick(mixed, 4, "2", -1, "2");
    pick(mixed, 4, "auto", -1, "1");
    pick(mixed, 4, "0,1", -1, "error 2: devices 0 ('cpu', driver 1.0) and 1 ('H200'");
    pick(odd, 2, "all", -1, "error 2: devices 0 ('H200', driver 1.0) and 1 ('A100'");
    pick(mixed, 4, "1,1,2", -1, "1,1,2"); /* twice: two queues on one device */
    pick(mixed, 4, "1,,2", -1, "error 2: bad device list '1,,2': expected device indices");
    pick(mixed, 4, "1,gpu", -1, "error 2: bad device list '1,gpu'");
    pick(mixed, 4, "1,9", -1, "error 2: no device with index 9");
    pick(mixed, 4, "tpu", -1, "error 2: unknown device 'tpu'");
    /* mpirun: the node-local rank picks among the devices of the type */
    pick(mixed, 4, "auto", 0, "1");
    pick(mixed, 4, "auto", 2, "3");
    pick(mixed, 4, "gpu", 4, "2");
    pick(mixed, 4, "cpu", 5, "0");
    pick(mixed, 4, "2", 1, "2"); /* an explicit device stays */
    pick(mixed, 0, "all", -1, "error 1: no OpenCL platform found");
}

Test(devset, is_multi)
{
    cr_assert(ms_devspec_is_multi("all") && ms_devspec_is_multi("0,2"));
    cr_assert(!ms_devspec_is_multi("auto") && !ms_devspec_is_multi("3") &&
              !ms_devspec_is_multi(NULL));
}

/* ---- the pool against one device ---- */

static struct ms_devset devs;

static void pool_setup(void)
{
    struct ms_err err = { 0 };

    setenv("POCL_DEVICES", "pthread pthread pthread", 0);
    test_cache_dir();
    if (ms_devset_open(&devs, "all", -1, &err) != MS_OK)
        cr_skip_test("no OpenCL device: %s", err.msg);
}

static void pool_teardown(void)
{
    ms_devset_close(&devs);
}

TestSuite(pool, .init = pool_setup, .fini = pool_teardown, .timeout = 120);

/* Rows [a, b) of e as a block of their own (first_row a). */
static void slice(struct ms_emb *out, const struct ms_emb *e, uint64_t a, uint64_t b)
{
    struct ms_err err;
    const uint64_t t0 = e->offsets[a], nt = e->offsets[b] - t0;
    const size_t esz = ms_dtype_size(e->dtype);

    cr_assert(ms_emb_reserve(out, e->dtype, e->dim, b - a, nt, &err) == MS_OK, "%s", err.msg);
    for (uint64_t r = 0; r <= b - a; r++)
        out->offsets[r] = e->offsets[a + r] - t0;
    memcpy(out->tokens, (const char *)e->tokens + t0 * e->dim * esz, nt * e->dim * esz);
    out->first_row = a;
}

struct sink {
    float *m; /* [nq, nd] */
    uint64_t nd;
    int calls, fail_at;
};

static int store(void *ctx, uint64_t q0, uint64_t nq, const float *scores, uint64_t ld,
                 const struct ms_emb *block, struct ms_err *err)
{
    struct sink *s = ctx;
    if (++s->calls == s->fail_at)
        return ms_err_set(err, MS_ERR_RUNTIME, "sink failed on call %d", s->calls);
    for (uint64_t i = 0; i < nq; i++)
        memcpy(s->m + (q0 + i) * s->nd + block->first_row, scores + i * ld,
               block->n_rows * sizeof *scores);
    return MS_OK;
}

Test(pool, same_bits_as_one_device)
{
    uint64_t seed = 77;

    cr_assert(devs.n >= 1);
    if (strstr(devs.cl[0].info.platform_name, "Portable")) /* PoCL: POCL_DEVICES was obeyed */
        cr_assert(devs.n == 3, "PoCL gave %d devices, not 3", devs.n);
    for (int round = 0; round < 6; round++) {
        struct ms_emb q, d, block;
        struct ms_err err = { 0 };
        const enum ms_dtype dt = round % 2 ? MS_DTYPE_F16 : MS_DTYPE_F32;
        const uint32_t dim = 8 + 8 * (uint32_t)test_rand_below(&seed, 12);
        const uint64_t nq = 1 + test_rand_below(&seed, 9), nd = 1 + test_rand_below(&seed, 300);
        const uint64_t max_docs = 1 + test_rand_below(&seed, 40);
        struct ms_scorer_opts so = { .normalize = round % 3 == 0, .max_docs = max_docs };
        struct ms_scorer *one;
        struct ms_pool *pool;
        float *want = malloc(nq * nd * sizeof *want), *got = malloc(nq * nd * sizeof *got);
        struct sink s = { got, nd, 0, 0 };

        test_random_emb(&q, MS_DTYPE_F32, dim, nq, 0, 40, &seed);
        test_random_emb(&d, dt, dim, nd, 0, 70, &seed);
        so.max_tokens = ms_emb_n_tokens(&d) + 1;
        /* one device, one run over everything */
        cr_assert(ms_scorer_create(&one, &devs.cl[0], &q, &so, &err) == MS_OK, "%s", err.msg);
        cr_assert(ms_scorer_run(one, &d, want, nd, &err) == MS_OK, "%s", err.msg);
        ms_scorer_free(one);
        /* every device, blocks of random sizes */
        for (uint64_t i = 0; i < nq * nd; i++)
            got[i] = NAN;
        cr_assert(ms_pool_start(&pool, devs.cl, devs.n, &q, 0, &so, store, 0, NULL, &s, &err) ==
                      MS_OK,
                  "%s", err.msg);
        ms_emb_init(&block);
        for (uint64_t a = 0; a < nd;) {
            const uint64_t b = a + 1 + test_rand_below(&seed, max_docs);
            slice(&block, &d, a, b < nd ? b : nd);
            cr_assert(ms_pool_submit(pool, &block, &err) == MS_OK, "%s", err.msg);
            a = b;
        }
        double kernel_s = 0;
        cr_assert(ms_pool_finish(pool, &kernel_s, &err) == MS_OK, "%s", err.msg);
        cr_assert(kernel_s >= 0);
        cr_assert(memcmp(want, got, nq * nd * sizeof *got) == 0,
                  "round %d: %d devices differ from one (nq %llu, nd %llu, dim %u)", round, devs.n,
                  (unsigned long long)nq, (unsigned long long)nd, dim);
        ms_emb_release(&block);
        ms_emb_release(&q);
        ms_emb_release(&d);
        free(want);
        free(got);
    }
}

Test(pool, pairs_same_bits_as_one_device)
{
    uint64_t seed = 31;

    for (int round = 0; round < 4; round++) {
        struct ms_emb q, d, block;
        struct ms_err err = { 0 };
        const uint32_t dim = 16 + 16 * (uint32_t)test_rand_below(&seed, 4);
        const uint64_t nq = 1 + test_rand_below(&seed, 6), nd = 1 + test_rand_below(&seed, 120);
        const uint64_t max_docs = 1 + test_rand_below(&seed, 30), n = nq * nd;
        struct ms_scorer_opts so = { .normalize = round == 1, .max_docs = max_docs };
        struct ms_scorer *one;
        struct ms_pool *pool;
        uint32_t *pq = malloc(n * sizeof *pq), *pd = malloc(n * sizeof *pd);
        uint32_t *bq = malloc(n * sizeof *bq), *bd = malloc(n * sizeof *bd);
        float *want = malloc(n * sizeof *want), *got = malloc(n * sizeof *got);

        test_random_emb(&q, MS_DTYPE_F16, dim, nq, 1, 30, &seed);
        test_random_emb(&d, MS_DTYPE_F16, dim, nd, 0, 50, &seed);
        so.max_tokens = ms_emb_n_tokens(&d) + 1;
        for (uint64_t j = 0, i = 0; j < nd; j++) /* by document, as rerank lists them */
            for (uint64_t qi = 0; qi < nq; qi++, i++)
                pq[i] = (uint32_t)qi, pd[i] = (uint32_t)j, got[i] = NAN;
        cr_assert(ms_scorer_create(&one, &devs.cl[0], &q, &so, &err) == MS_OK, "%s", err.msg);
        cr_assert(ms_scorer_run_pairs(one, &d, pq, pd, n, want, &err) == MS_OK, "%s", err.msg);
        ms_scorer_free(one);
        cr_assert(ms_pool_start(&pool, devs.cl, devs.n, &q, 0, &so, NULL, 0, NULL, NULL, &err) ==
                  MS_OK);
        ms_emb_init(&block);
        for (uint64_t a = 0; a < nd;) {
            const uint64_t b0 = a + 1 + test_rand_below(&seed, max_docs), b = b0 < nd ? b0 : nd;
            slice(&block, &d, a, b);
            for (uint64_t i = 0; i < (b - a) * nq; i++) /* block-relative documents */
                bq[i] = pq[a * nq + i], bd[i] = pd[a * nq + i] - (uint32_t)a;
            cr_assert(ms_pool_submit_pairs(pool, &block, bq, bd, (b - a) * nq, got + a * nq,
                                           &err) == MS_OK,
                      "%s", err.msg);
            a = b;
        }
        cr_assert(ms_pool_finish(pool, NULL, &err) == MS_OK, "%s", err.msg);
        cr_assert(memcmp(want, got, n * sizeof *got) == 0, "round %d: pairs differ", round);
        ms_emb_release(&block);
        ms_emb_release(&q);
        ms_emb_release(&d);
        free(pq), free(pd), free(bq), free(bd), free(want), free(got);
    }
}

Test(pool, first_error_wins)
{
    struct ms_emb q, d, block;
    struct ms_err err = { 0 };
    uint64_t seed = 5;
    struct ms_scorer_opts so = { .max_docs = 4 };
    struct ms_pool *pool;
    float *m = calloc(2 * 40, sizeof *m);
    struct sink s = { m, 40, 0, 3 };
    int rc = MS_OK;

    test_random_emb(&q, MS_DTYPE_F32, 16, 2, 1, 5, &seed);
    test_random_emb(&d, MS_DTYPE_F32, 16, 40, 1, 5, &seed);
    so.max_tokens = ms_emb_n_tokens(&d);
    cr_assert(ms_pool_start(&pool, devs.cl, devs.n, &q, 0, &so, store, 0, NULL, &s, &err) == MS_OK);
    ms_emb_init(&block);
    for (uint64_t a = 0; a < 40 && rc == MS_OK; a += 4) {
        slice(&block, &d, a, a + 4);
        rc = ms_pool_submit(pool, &block, &err);
    }
    const int frc = ms_pool_finish(pool, NULL, &err);
    cr_assert(frc == MS_ERR_RUNTIME, "finish returned %d", frc);
    cr_assert_str_eq(err.msg, "sink failed on call 3");
    ms_emb_release(&block);
    ms_emb_release(&q);
    ms_emb_release(&d);
    free(m);
}

/* ---- scored run lines ---- */

Test(runmerge, parse_lines)
{
    struct ms_scored_line sl;
    const char *why = NULL;
    const char trec[] = "q1 Q0 doc-7 3 16.5641651 run1";
    const char tsv[] = "q1\tdoc-7\t3\t-0.25";

    cr_assert(ms_scored_parse(trec, strlen(trec), &sl, &why) == 0, "%s", why);
    cr_assert(sl.fmt == MS_FMT_TREC && sl.rank == 3 && sl.score == 16.5641651f);
    cr_assert(sl.qlen == 2 && strncmp(sl.did, "doc-7", sl.dlen) == 0 && sl.dlen == 5);
    cr_assert(sl.taglen == 4 && strncmp(sl.tag, "run1", 4) == 0);
    cr_assert(ms_scored_parse(tsv, strlen(tsv), &sl, &why) == 0, "%s", why);
    cr_assert(sl.fmt == MS_FMT_TSV && sl.rank == 3 && sl.score == -0.25f && sl.taglen == 0);
    cr_assert(ms_scored_parse("  \t ", 4, &sl, &why) == 1);

    static const char *const bad[] = { "q1 Q0 d 0 1.5 t",   "q1 Q0 d x 1.5 t", "q1 Q0 d 1 1.5x t",
                                       "q1 Q0 d 1 t",       "q1\td\t1",        "q1\td\t1\t\t",
                                       "\td\t1\t2",         "q1 Q0 d 1 2 t u", "q1\td\t-1\t2",
                                       "q1 Q0 d 1 1e999x t" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        why = NULL;
        cr_assert(ms_scored_parse(bad[i], strlen(bad[i]), &sl, &why) == -1, "accepted '%s'",
                  bad[i]);
        cr_assert(why && *why);
    }
}

/* What merge's exactness rests on: 9 significant digits read back as the same float32. */
Test(runmerge, nine_digits_round_trip)
{
    uint64_t seed = 9;
    for (int i = 0; i < 200000; i++) {
        uint32_t bits = (uint32_t)test_rand_u64(&seed);
        float f;
        memcpy(&f, &bits, sizeof f);
        if (!isfinite(f))
            continue;
        char text[64];
        snprintf(text, sizeof text, "%.9g", (double)f);
        const float back = strtof(text, NULL);
        cr_assert(memcmp(&back, &f, sizeof f) == 0, "%s does not read back as %a", text, (double)f);
    }
}

/* ---- shard runs merged into the unsharded run ---- */

/* Write the top-k of rows [first, first + n) of scores [nq, nd] as a run. */
static void write_run(const char *path, enum ms_fmt fmt, const float *scores, uint64_t nq,
                      uint64_t nd, uint64_t first, uint64_t n, uint64_t k)
{
    struct ms_topk t;
    struct ms_ids none;
    struct ms_wfile *w;
    struct ms_err err;

    ms_ids_init(&none);
    cr_assert(ms_topk_init(&t, nq, k < n ? k : n, &err) == MS_OK);
    for (uint64_t q = 0; q < nq; q++)
        for (uint64_t j = first; j < first + n; j++)
            ms_topk_push_one(&t, q, scores[q * nd + j], j);
    ms_topk_finish(&t);
    cr_assert(ms_wfile_open(&w, path, 0, 0, &err) == MS_OK, "%s", err.msg);
    cr_assert(ms_run_write(w, fmt, &t, &none, &none, "run", &err) == MS_OK, "%s", err.msg);
    cr_assert(ms_wfile_commit(w, &err) == MS_OK, "%s", err.msg);
    ms_topk_release(&t);
}

Test(runmerge, shards_merge_to_the_unsharded_bytes)
{
    uint64_t seed = 2026;
    char dir[] = "/tmp/maxsim-test-merge-XXXXXX";
    cr_assert(mkdtemp(dir));

    for (int round = 0; round < 40; round++) {
        const uint64_t nq = 1 + test_rand_below(&seed, 6), nd = test_rand_below(&seed, 60);
        const uint64_t k = 1 + test_rand_below(&seed, 25), n_shards = 1 + test_rand_below(&seed, 9);
        const enum ms_fmt fmt = round % 2 ? MS_FMT_TSV : MS_FMT_TREC;
        float *scores = malloc((nq * nd + 1) * sizeof *scores);
        char whole[256], merged[256], shard[16][256];
        const char *paths[16];

        /* few distinct values: ties everywhere, across shards too */
        for (uint64_t i = 0; i < nq * nd; i++)
            scores[i] = (float)test_rand_below(&seed, 5) * 0.1f - (round % 3 ? 0.0f : 1e-7f);
        snprintf(whole, sizeof whole, "%s/whole", dir);
        write_run(whole, fmt, scores, nq, nd, 0, nd, k);
        for (uint64_t s = 0; s < n_shards; s++) {
            const uint64_t lo = nd * s / n_shards, hi = nd * (s + 1) / n_shards;
            snprintf(shard[s], sizeof shard[s], "%s/shard%llu", dir, (unsigned long long)s);
            write_run(shard[s], fmt, scores, nq, nd, lo, hi - lo, k);
            paths[s] = shard[s];
        }
        snprintf(merged, sizeof merged, "%s/merged", dir);
        struct ms_wfile *w;
        struct ms_err err;
        const struct ms_merge_opts mo = { .k = k, .fmt = -1, .tag = NULL };
        cr_assert(ms_wfile_open(&w, merged, 0, 0, &err) == MS_OK);
        cr_assert(ms_runs_merge(paths, (int)n_shards, &mo, w, NULL, &err) == MS_OK, "%s", err.msg);
        cr_assert(ms_wfile_commit(w, &err) == MS_OK);

        size_t a_len, b_len;
        char *a = test_read_file(whole, &a_len), *b = test_read_file(merged, &b_len);
        cr_assert(a_len == b_len && memcmp(a, b, a_len) == 0,
                  "round %d (nq %llu nd %llu k %llu, %llu shards): merged run differs:\n%.*s\n---\n"
                  "%.*s",
                  round, (unsigned long long)nq, (unsigned long long)nd, (unsigned long long)k,
                  (unsigned long long)n_shards, (int)(a_len < 600 ? a_len : 600), a,
                  (int)(b_len < 600 ? b_len : 600), b);
        free(a);
        free(b);
        free(scores);
        unlink(whole);
        unlink(merged);
        for (uint64_t s = 0; s < n_shards; s++)
            unlink(shard[s]);
    }
    rmdir(dir);
}
