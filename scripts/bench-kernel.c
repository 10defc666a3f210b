/*
 * bench-kernel.c - time the OpenCL MaxSim scorer on synthetic data, for
 * docs/kernel-notes.md. Not part of the build (the real `maxsim bench` comes
 * later); build it against the library:
 *   make build/libmaxsim.a && cc -O2 -std=c11 -D_GNU_SOURCE -Isrc -o build/bench-kernel \
 *       scripts/bench-kernel.c build/libmaxsim.a -lOpenCL -lm -pthread
 *   build/bench-kernel NQ LQ ND LD_MIN LD_MAX DIM [f32|f16] [TN QB WG] [normalize]
 * With BENCH_PAIRS=1 in the environment, the same NQ x ND scores go through
 * ms_scorer_run_pairs (every pair, listed by document then query).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "maxsim.h"

static uint64_t rng = 12345;
static float frand(void)
{
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(rng >> 11) * 0x1p-53 * 2.0 - 1.0);
}

static void fill(struct ms_emb *e, enum ms_dtype dt, uint32_t dim, uint64_t n, uint64_t lo,
                 uint64_t hi)
{
    struct ms_err err;
    uint64_t total = 0, *len = malloc(n * sizeof *len);
    for (uint64_t i = 0; i < n; i++) {
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        len[i] = lo + (rng >> 33) % (hi - lo + 1);
        total += len[i];
    }
    ms_emb_init(e);
    if (ms_emb_reserve(e, dt, dim, n, total, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        exit(1);
    }
    for (uint64_t i = 0; i < n; i++)
        e->offsets[i + 1] = e->offsets[i] + len[i];
    for (uint64_t i = 0; i < total * dim; i++) {
        if (dt == MS_DTYPE_F16)
            ((uint16_t *)e->tokens)[i] = ms_float_to_half(frand());
        else
            ((float *)e->tokens)[i] = frand();
    }
    free(len);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    if (argc < 7) {
        fprintf(stderr,
                "usage: bench-kernel NQ LQ ND LD_MIN LD_MAX DIM [f32|f16] [TN QB WG] [norm]\n");
        return 2;
    }
    const uint64_t nq = strtoull(argv[1], 0, 10), lq = strtoull(argv[2], 0, 10);
    const uint64_t nd = strtoull(argv[3], 0, 10), lo = strtoull(argv[4], 0, 10),
                   hi = strtoull(argv[5], 0, 10);
    const uint32_t dim = (uint32_t)atoi(argv[6]);
    const enum ms_dtype dt = argc > 7 && strcmp(argv[7], "f16") == 0 ? MS_DTYPE_F16 : MS_DTYPE_F32;
    struct ms_scorer_opts o = { argc > 11,
                                nd,
                                0,
                                argc > 8 ? atoi(argv[8]) : 0,
                                argc > 9 ? atoi(argv[9]) : 0,
                                argc > 10 ? atoi(argv[10]) : 0,
                                0,
                                MS_PREC_EXACT,
                                NULL };
    struct ms_cl cl;
    struct ms_err err = { 0 };
    struct ms_emb q, d;
    struct ms_scorer *s;
    float *scores;
    double best = 1e30, wall = 1e30;
    const int pairs = getenv("BENCH_PAIRS") && atoi(getenv("BENCH_PAIRS"));
    uint32_t *pq = NULL, *pd = NULL;

    fill(&q, dt, dim, nq, lq, lq);
    fill(&d, dt, dim, nd, lo, hi);
    o.max_tokens = ms_emb_n_tokens(&d);
    scores = malloc(nq * nd * sizeof *scores);
    if (pairs) {
        pq = malloc(nq * nd * sizeof *pq);
        pd = malloc(nq * nd * sizeof *pd);
        for (uint64_t p = 0; p < nq * nd; p++) {
            pq[p] = (uint32_t)(p % nq);
            pd[p] = (uint32_t)(p / nq);
        }
    }
    if (ms_cl_open(&cl, getenv("MAXSIM_DEVICE") ? getenv("MAXSIM_DEVICE") : "auto", &err) ||
        ms_scorer_create(&s, &cl, &q, &o, &err)) {
        fprintf(stderr, "error: %s\n", err.msg);
        return 1;
    }
    for (int rep = 0; rep < 3; rep++) {
        double t0 = now();
        if (pairs ? ms_scorer_run_pairs(s, &d, pq, pd, nq * nd, scores, &err)
                  : ms_scorer_run(s, &d, scores, nd, &err)) {
            fprintf(stderr, "error: %s\n", err.msg);
            return 1;
        }
        double t = now() - t0;
        if (t < wall)
            wall = t;
        if (ms_scorer_last_kernel_s(s) < best)
            best = ms_scorer_last_kernel_s(s);
    }
    const double flops = 2.0 * nq * lq * (double)ms_emb_n_tokens(&d) * dim;
    printf("%snq=%llu lq=%llu nd=%llu ld=%llu..%llu dim=%u %s tn=%d qb=%d wg=%d: kernel %.3f s "
           "%.1f GFLOP/s, wall %.3f s %.1f GFLOP/s  (score[0][0]=%g)\n",
           pairs ? "pairs " : "", (unsigned long long)nq, (unsigned long long)lq,
           (unsigned long long)nd, (unsigned long long)lo, (unsigned long long)hi, dim,
           ms_dtype_name(dt), o.tile_tokens, o.query_block, o.work_group, best, flops / best * 1e-9,
           wall, flops / wall * 1e-9, (double)scores[0]);
    ms_scorer_free(s);
    ms_cl_close(&cl);
    free(pq);
    free(pd);
    return 0;
}
