/*
 * cmd_bench.c - `maxsim bench`: time the kernels on synthetic data.
 *
 * Random normalized token vectors (never zeros) of a given shape, a warm-up
 * run, then --reps timed runs; kernel time from OpenCL profiling events,
 * wall time around each run. Prints the median (and min/max) kernel time,
 * TFLOP/s, the effective bandwidth, and the ratio to the floor: the larger of
 * the bytes moved once over the device's copy rate (measured here, in the
 * same run, with a large clEnqueueCopyBuffer) and the FLOPs over
 * --peak-tflops when given.
 */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "cmd_common.h"
#include "maxsim.h"
#include "stream.h"
#include "topk.h"
#include "tune.h"

static const char usage_text[] =
    "usage: maxsim bench --shape <nq>,<nd>,<lq>,<ld>,<dim> [--dtype (f16 | f32)]\n"
    "                    [--op (score | search | rerank)] [--reps <n>] [--normalize]\n"
    "                    [--precision (exact | tf32 | f16 | f8 | int8)] [--peak-tflops <x>]\n"
    "                    [--json] [--tune]\n"
    "\n"
    "Time the MaxSim kernels on random data of one shape: nq queries of lq tokens\n"
    "against nd documents of ld tokens, dim dimensions.\n"
    "\n"
    "  --shape <s>          nq,nd,lq,ld,dim (e.g. 1,1000,32,300,128)\n"
    "  --dtype <t>          f16 (default) or f32 inputs\n"
    "  --op <op>            score (all pairs, default), search (score + top-10), or\n"
    "                       rerank (nd candidates per query, through the pair kernel)\n"
    "  --reps <n>           timed runs after one warm-up (default 20)\n"
    "  --normalize          normalize tokens inside the kernels\n"
    "  --precision <p>      exact (default), tf32, f16, f8 or int8, as for search; all but\n"
    "                       exact also print their ranking agreement with exact scores of\n"
    "                       the same data\n"
    "  --peak-tflops <x>    the device's arithmetic ceiling, for the floor\n"
    "  --json               one JSON object\n"
    "  --tune               time every variant of the GPU path (tensor-core kernels, or the\n"
    "                       portable GPU kernel's tilings) on this shape and keep the\n"
    "                       fastest for its class of shapes in the tuning table (beside the\n"
    "                       kernel cache), where search, score and rerank find it\n"
    "  -h, --help           this help\n";

static uint64_t bench_rng = 0x2545f4914f6cdd1dull;

static float bench_rand(void)
{
    bench_rng ^= bench_rng << 13;
    bench_rng ^= bench_rng >> 7;
    bench_rng ^= bench_rng << 17;
    return (float)((double)(bench_rng >> 11) * 0x1p-53 * 2.0 - 1.0);
}

/* n rows of len tokens, each token of unit norm. */
static int make_rows(struct ms_emb *e, enum ms_dtype dtype, uint32_t dim, uint64_t n, uint64_t len,
                     struct ms_err *err)
{
    float *tok = ms_malloc(dim * sizeof *tok, err);
    if (!tok || ms_emb_reserve(e, dtype, dim, n, n * len, err) != MS_OK) {
        free(tok);
        return err->status;
    }
    for (uint64_t r = 0; r < n; r++)
        e->offsets[r + 1] = e->offsets[r] + len;
    for (uint64_t t = 0; t < n * len; t++) {
        double norm = 0;
        for (uint32_t k = 0; k < dim; k++) {
            tok[k] = bench_rand();
            norm += (double)tok[k] * tok[k];
        }
        const float inv = (float)(1.0 / sqrt(norm > 0 ? norm : 1));
        for (uint32_t k = 0; k < dim; k++) {
            if (dtype == MS_DTYPE_F16)
                ((uint16_t *)e->tokens)[t * dim + k] = ms_float_to_half(tok[k] * inv);
            else
                ((float *)e->tokens)[t * dim + k] = tok[k] * inv;
        }
    }
    free(tok);
    return MS_OK;
}

/* Device copy rate in bytes/s (read + written), median of 5 copies of 256 MiB. */
static double copy_rate(struct ms_cl *cl)
{
    size_t bytes = 256u << 20;
    if (cl->info.max_alloc && bytes > cl->info.max_alloc / 2)
        bytes = (size_t)(cl->info.max_alloc / 2);
    cl_int rc;
    cl_mem a = clCreateBuffer(cl->ctx, CL_MEM_READ_WRITE, bytes, NULL, &rc);
    cl_mem b = a ? clCreateBuffer(cl->ctx, CL_MEM_READ_WRITE, bytes, NULL, &rc) : NULL;
    double t[5] = { 0 }, best = 0;
    const unsigned char zero = 1;
    if (a && b &&
        clEnqueueFillBuffer(cl->queue, a, &zero, 1, 0, bytes, 0, NULL, NULL) == CL_SUCCESS) {
        for (int i = 0; i < 6; i++) {
            cl_event ev;
            cl_ulong s0, s1;
            if (clEnqueueCopyBuffer(cl->queue, a, b, 0, 0, bytes, 0, NULL, &ev) != CL_SUCCESS)
                break;
            clWaitForEvents(1, &ev);
            clGetEventProfilingInfo(ev, CL_PROFILING_COMMAND_START, sizeof s0, &s0, NULL);
            clGetEventProfilingInfo(ev, CL_PROFILING_COMMAND_END, sizeof s1, &s1, NULL);
            clReleaseEvent(ev);
            if (i > 0) /* the first copy is a warm-up */
                t[i - 1] = (double)(s1 - s0) * 1e-9;
        }
        for (int i = 0; i < 5; i++) /* median of five by insertion sort */
            for (int j = i; j > 0 && t[j] < t[j - 1]; j--) {
                const double x = t[j];
                t[j] = t[j - 1];
                t[j - 1] = x;
            }
        best = t[2] > 0 ? 2.0 * (double)bytes / t[2] : 0;
    }
    if (a)
        clReleaseMemObject(a);
    if (b)
        clReleaseMemObject(b);
    return best;
}

static const char *precision_name(int p)
{
    return p == MS_PREC_F8     ? "f8"
           : p == MS_PREC_F16  ? "f16"
           : p == MS_PREC_TF32 ? "tf32"
           : p == MS_PREC_I8   ? "int8"
                               : "exact";
}

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Rows of s ordered by score descending, ties by row (as search ranks), into idx[0 .. n-1]. */
static const float *rank_scores;
static int by_rank(const void *a, const void *b)
{
    const uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    if (rank_scores[x] != rank_scores[y])
        return rank_scores[x] > rank_scores[y] ? -1 : 1;
    return x < y ? -1 : x > y;
}

/* How far scores `low` (a lower --precision) rank like `exact`, over nq queries of nd
 * documents: the mean recall@10 of the exact top-10, and the mean Kendall tau (tau-a) of the
 * two orders over each query's exact top-100. */
static int agreement(const float *exact, const float *low, uint64_t nq, uint64_t nd, double *recall,
                     double *tau, struct ms_err *err)
{
    uint32_t *ie = ms_malloc(nd * sizeof *ie, err),
             *il = ie ? ms_malloc(nd * sizeof *il, err) : NULL;
    const uint64_t k = nd < 10 ? nd : 10, t = nd < 100 ? nd : 100;
    *recall = *tau = 0;
    if (!il) {
        free(ie);
        return err->status;
    }
    for (uint64_t i = 0; i < nq; i++) {
        const float *e = exact + i * nd, *l = low + i * nd;
        for (uint64_t j = 0; j < nd; j++)
            ie[j] = il[j] = (uint32_t)j;
        rank_scores = e;
        qsort(ie, nd, sizeof *ie, by_rank);
        rank_scores = l;
        qsort(il, nd, sizeof *il, by_rank);
        uint64_t hit = 0;
        for (uint64_t a = 0; a < k; a++)
            for (uint64_t b = 0; b < k; b++)
                hit += ie[a] == il[b];
        *recall += (double)hit / (double)(k ? k : 1);
        double conc = 0, disc = 0;
        for (uint64_t a = 0; a < t; a++)
            for (uint64_t b = a + 1; b < t; b++) {
                const double de = (double)e[ie[a]] - e[ie[b]], dl = (double)l[ie[a]] - l[ie[b]];
                if (de * dl > 0)
                    conc++;
                else if (de * dl < 0)
                    disc++;
            }
        *tau += t > 1 ? (conc - disc) / ((double)t * (double)(t - 1) / 2) : 1.0;
    }
    *recall /= (double)(nq ? nq : 1);
    *tau /= (double)(nq ? nq : 1);
    free(ie);
    free(il);
    return MS_OK;
}

/* The median kernel time of `reps` runs (after one warm-up) of a scorer over d; < 0 on error. */
static double median_kernel(struct ms_scorer *s, const struct ms_emb *d, float *scores, uint64_t nd,
                            double *kt, uint64_t reps, struct ms_err *err)
{
    for (uint64_t r = 0; r <= reps; r++) {
        if (ms_scorer_run(s, d, scores, nd, err) != MS_OK)
            return -1;
        if (r > 0)
            kt[r - 1] = ms_scorer_last_kernel_s(s);
    }
    qsort(kt, reps, sizeof *kt, cmp_double);
    return kt[reps / 2];
}

/* --tune: time the scorer's default choice and every candidate variant on this shape, and keep
 * the fastest in the tuning table for the shape's class. */
static int bench_tune(struct ms_cl *cl, const struct ms_emb *q, const struct ms_emb *d,
                      const struct ms_scorer_opts *so, uint64_t nd, uint64_t reps, float *scores,
                      double *kt, struct ms_err *err)
{
    char device[640], klass[160], cand[64][64];
    struct ms_scorer *s = NULL;
    double best = -1, dflt;
    int best_i = -1;
    if (!ms_scorer_tune_keys(cl, q, so, device, sizeof device, klass, sizeof klass))
        return ms_err_set(err, MS_ERR_INPUT,
                          "nothing to tune on '%s': only the GPU kernels have variants (the "
                          "NVIDIA tensor-core path: compute capability 8.0 or more, float16 "
                          "inputs or --precision f16; the portable GPU kernel: any GPU)",
                          cl->info.name);
    const int n = ms_scorer_tune_candidates(cl, q, so, cand, 64);
    if (ms_scorer_create(&s, cl, q, so, err) != MS_OK)
        return err->status;
    printf("class       %s\n", klass);
    printf("default     %s\n", ms_scorer_path(s));
    dflt = median_kernel(s, d, scores, nd, kt, reps, err);
    ms_scorer_free(s);
    if (dflt < 0)
        return err->status;
    printf("            %.4f ms\n", dflt * 1e3);
    /* each line as it is timed: a tuning of many variants takes minutes, and a pipe or a
     * timeout must not lose what was measured */
    fflush(stdout);
    for (int i = 0; i < n; i++) {
        struct ms_scorer_opts o = *so;
        struct ms_err e = { 0 };
        double t = -1;
        o.variant = cand[i];
        s = NULL;
        if (ms_scorer_create(&s, cl, q, &o, &e) == MS_OK)
            t = median_kernel(s, d, scores, nd, kt, reps, &e);
        ms_scorer_free(s);
        if (t < 0) {
            printf("%-28s failed: %s\n", cand[i], e.msg);
            fflush(stdout);
            continue;
        }
        printf("%-28s %.4f ms\n", cand[i], t * 1e3);
        fflush(stdout);
        if (best < 0 || t < best) {
            best = t;
            best_i = i;
        }
    }
    if (best_i < 0)
        return ms_err_set(err, MS_ERR_RUNTIME, "no kernel variant ran on '%s'", cl->info.name);
    if (ms_tune_store(device, klass, cand[best_i], best * 1e3, err) != MS_OK)
        return err->status;
    printf("tuned       %s: %.4f ms (default %.4f ms, %.2fx)\n", cand[best_i], best * 1e3,
           dflt * 1e3, dflt / best);
    return MS_OK;
}

/* What the command line asked for. */
struct bench_args {
    unsigned long long nq, nd, lq, ld, dim;
    const char *op; /* score, search or rerank */
    enum ms_dtype dtype;
    uint64_t reps;
    double peak_tflops;
    int normalize, json, tune, precision;
};

/* The options into a; -1 to go on, else the exit status (after the message or --help). */
static int parse_args(int argc, char **argv, struct bench_args *a)
{
    static const struct option longopts[] = {
        { "shape", required_argument, NULL, 's' },
        { "dtype", required_argument, NULL, 't' },
        { "op", required_argument, NULL, 'o' },
        { "reps", required_argument, NULL, 'r' },
        { "normalize", no_argument, NULL, 'n' },
        { "peak-tflops", required_argument, NULL, 'p' },
        { "precision", required_argument, NULL, 'P' },
        { "json", no_argument, NULL, 'j' },
        { "tune", no_argument, NULL, 'T' },
        MS_GLOBAL_LONGOPTS,
        { NULL, 0, NULL, 0 },
    };
    static const struct ms_optspec spec = { "bench", ":hv", longopts, usage_text, 0 };
    int c, status;

    *a = (struct bench_args){
        .op = "score", .dtype = MS_DTYPE_F16, .reps = 20, .precision = MS_PREC_EXACT
    };
    while ((c = ms_getopt(&spec, argc, argv, &status)) != 0) {
        switch (c) {
        case 's': {
            char tail;
            if (sscanf(optarg, "%llu,%llu,%llu,%llu,%llu%c", &a->nq, &a->nd, &a->lq, &a->ld,
                       &a->dim, &tail) != 5 ||
                !a->nq || !a->nd || !a->lq || !a->ld || !a->dim || a->dim > 4096)
                return ms_usage_error("bench",
                                      "--shape takes nq,nd,lq,ld,dim, all >= 1, dim <= 4096 (e.g. "
                                      "--shape 1,1000,32,300,128), got '%s'",
                                      optarg);
            break;
        }
        case 't':
            if (strcmp(optarg, "f16") && strcmp(optarg, "f32"))
                return ms_usage_error("bench", "--dtype takes f16 or f32, got '%s'", optarg);
            a->dtype = optarg[1] == '1' ? MS_DTYPE_F16 : MS_DTYPE_F32;
            break;
        case 'o':
            if (strcmp(optarg, "score") && strcmp(optarg, "search") && strcmp(optarg, "rerank"))
                return ms_usage_error("bench", "--op takes score, search or rerank, got '%s'",
                                      optarg);
            a->op = optarg;
            break;
        case 'r':
            if (ms_parse_u64("bench", "--reps", optarg, 1, &a->reps))
                return MS_ERR_INPUT;
            break;
        case 'n': a->normalize = 1; break;
        case 'p': {
            char *end;
            a->peak_tflops = strtod(optarg, &end);
            if (*end || !(a->peak_tflops > 0))
                return ms_usage_error("bench", "--peak-tflops takes a positive number, got '%s'",
                                      optarg);
            break;
        }
        case 'P':
            if (ms_parse_precision("bench", optarg, &a->precision))
                return MS_ERR_INPUT;
            break;
        case 'j': a->json = 1; break;
        case 'T': a->tune = 1; break;
        default: return ms_usage_error("bench", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (status >= 0)
        return status;
    if (!a->nq)
        return ms_usage_error("bench", "no shape (e.g. --shape 1,1000,32,300,128)");
    if (a->tune && strcmp(a->op, "score") != 0)
        return ms_usage_error("bench", "--tune times scoring (--op score), got --op %s", a->op);
    return -1;
}

/* What the timed runs measured. */
struct bench_result {
    double kmed, kmin, kmax, wmed; /* kernel and wall seconds */
    double recall, tau;            /* agreement with exact scores, -1 when exact */
};

/* The warm-up and reps timed runs of s (as the op asks), then, for a lower precision, the
 * ranking agreement with an exact scorer on the same data. */
static int run_timed(struct ms_cl *cl, const struct bench_args *a, const struct ms_emb *q,
                     const struct ms_emb *d, struct ms_scorer *s, const struct ms_scorer_opts *so,
                     float *scores, double *kt, double *wt, struct bench_result *res,
                     struct ms_err *err)
{
    const int rerank = strcmp(a->op, "rerank") == 0;
    const uint64_t n_out = a->nq * a->nd;
    uint32_t *pq = NULL, *pd = NULL;
    int rc = MS_OK;

    res->recall = res->tau = -1;
    if (rerank) { /* nd candidates for each query, each its own document */
        if (!(pq = ms_malloc(n_out * sizeof *pq, err)) ||
            !(pd = ms_malloc(n_out * sizeof *pd, err))) {
            rc = err->status;
            goto done;
        }
        for (uint64_t i = 0; i < n_out; i++) {
            pq[i] = (uint32_t)(i / a->nd);
            pd[i] = (uint32_t)i;
        }
    }
    for (uint64_t r = 0; r <= a->reps; r++) { /* run 0 is the warm-up */
        const double t0 = ms_now();
        rc = rerank ? ms_scorer_run_pairs(s, d, pq, pd, n_out, scores, err)
                    : ms_scorer_run(s, d, scores, a->nd, err);
        if (rc != MS_OK)
            goto done;
        if (strcmp(a->op, "search") == 0) { /* the host top-10 merge, as search does it */
            struct ms_topk t;
            if ((rc = ms_topk_init(&t, a->nq, a->nd < 10 ? a->nd : 10, err)) != MS_OK)
                goto done;
            ms_topk_push(&t, 0, a->nq, scores, a->nd, a->nd, 0);
            ms_topk_finish(&t);
            ms_topk_release(&t);
        }
        if (r > 0) {
            kt[r - 1] = ms_scorer_last_kernel_s(s);
            wt[r - 1] = ms_now() - t0;
        }
    }
    qsort(kt, a->reps, sizeof *kt, cmp_double);
    qsort(wt, a->reps, sizeof *wt, cmp_double);
    res->kmed = kt[a->reps / 2];
    res->kmin = kt[0];
    res->kmax = kt[a->reps - 1];
    res->wmed = wt[a->reps / 2];
    if (a->precision != MS_PREC_EXACT && !rerank) {
        struct ms_scorer_opts eo = *so;
        struct ms_scorer *es = NULL;
        float *ex = ms_malloc(n_out * sizeof *ex, err);
        eo.precision = MS_PREC_EXACT;
        eo.variant = NULL;
        rc = ex ? ms_scorer_create(&es, cl, q, &eo, err) : err->status;
        if (rc == MS_OK)
            rc = ms_scorer_run(es, d, ex, a->nd, err);
        if (rc == MS_OK)
            rc = agreement(ex, scores, a->nq, a->nd, &res->recall, &res->tau, err);
        ms_scorer_free(es);
        free(ex);
    }
done:
    free(pq);
    free(pd);
    return rc;
}

static void print_result(struct ms_cl *cl, const struct bench_args *a, const struct ms_scorer *s,
                         const struct bench_result *r)
{
    const int rerank = strcmp(a->op, "rerank") == 0;
    const uint64_t n_docs = rerank ? a->nq * a->nd : a->nd;
    const size_t es = ms_dtype_size(a->dtype);
    const double flops =
        2.0 * (double)a->nq * (double)a->nd * (double)a->lq * (double)a->ld * (double)a->dim;
    const double bytes = (double)(n_docs * a->ld + a->nq * a->lq) * (double)a->dim * (double)es +
                         (double)(a->nq * a->nd) * 4.0;
    const double rate = copy_rate(cl);
    double floor_s = rate > 0 ? bytes / rate : 0;
    if (a->peak_tflops > 0 && flops / (a->peak_tflops * 1e12) > floor_s)
        floor_s = flops / (a->peak_tflops * 1e12);
    const char *dtype = a->dtype == MS_DTYPE_F16 ? "f16" : "f32";
    if (a->json) {
        printf("{\"device\": \"%s\", \"op\": \"%s\", \"shape\": [%llu, %llu, %llu, %llu, %llu], "
               "\"dtype\": \"%s\", \"normalize\": %s, \"reps\": %llu, \"kernel_ms_median\": %.4f, "
               "\"kernel_ms_min\": %.4f, \"kernel_ms_max\": %.4f, \"wall_ms_median\": %.4f, "
               "\"gflop\": %.3f, \"tflops\": %.3f, \"gbs\": %.1f, \"copy_gbs\": %.1f, "
               "\"floor_ms\": %.4f, \"ratio_to_floor\": %.2f, \"path\": \"%s\", "
               "\"precision\": \"%s\", \"recall_at_10\": %.4f, \"kendall_tau\": %.4f}\n",
               cl->info.name, a->op, a->nq, a->nd, a->lq, a->ld, a->dim, dtype,
               a->normalize ? "true" : "false", (unsigned long long)a->reps, r->kmed * 1e3,
               r->kmin * 1e3, r->kmax * 1e3, r->wmed * 1e3, flops * 1e-9, flops / r->kmed * 1e-12,
               bytes / r->kmed * 1e-9, rate * 1e-9, floor_s * 1e3,
               floor_s > 0 ? r->kmed / floor_s : 0, ms_scorer_path(s), precision_name(a->precision),
               r->recall, r->tau);
        return;
    }
    printf("device      %s\n", cl->info.name);
    printf("op          %s, shape nq=%llu nd=%llu lq=%llu ld=%llu dim=%llu, %s%s\n", a->op, a->nq,
           a->nd, a->lq, a->ld, a->dim, a->dtype == MS_DTYPE_F16 ? "float16" : "float32",
           a->normalize ? ", normalized in the kernel" : "");
    printf("path        %s\n", ms_scorer_path(s));
    if (r->recall >= 0)
        printf("agreement   --precision %s against exact, same data: recall@10 %.4f, "
               "Kendall tau %.4f over each query's exact top-100\n",
               precision_name(a->precision), r->recall, r->tau);
    printf("kernel      %.4f ms median (min %.4f, max %.4f) over %llu runs\n", r->kmed * 1e3,
           r->kmin * 1e3, r->kmax * 1e3, (unsigned long long)a->reps);
    printf("wall        %.4f ms median (with transfers%s)\n", r->wmed * 1e3,
           strcmp(a->op, "search") == 0 ? " and the top-k merge" : "");
    printf("rate        %.3f TFLOP/s, %.1f GB/s effective (%.3f GFLOP, %.1f MB)\n",
           flops / r->kmed * 1e-12, bytes / r->kmed * 1e-9, flops * 1e-9, bytes * 1e-6);
    printf("floor       %.4f ms (copy rate %.1f GB/s measured%s): %.2fx the floor\n", floor_s * 1e3,
           rate * 1e-9, a->peak_tflops > 0 ? ", with --peak-tflops" : "",
           floor_s > 0 ? r->kmed / floor_s : 0);
}

int cmd_bench(int argc, char **argv)
{
    struct bench_args a;
    struct bench_result res = { 0 };
    struct ms_err err = { 0 };
    int rc = parse_args(argc, argv, &a);
    if (rc >= 0)
        return rc;

    /* rerank: nd candidates for each query, each its own document */
    const uint64_t n_docs = strcmp(a.op, "rerank") == 0 ? a.nq * a.nd : a.nd;
    struct ms_cl cl;
    struct ms_emb q, d;
    struct ms_scorer *s = NULL;
    float *scores = NULL;
    double *kt = NULL, *wt = NULL;
    ms_emb_init(&q);
    ms_emb_init(&d);
    if ((rc = ms_cl_open(&cl, ms_global.device, &err)) != MS_OK)
        return ms_report(&err);
    /* tf32 where the device cannot: exact with a warning, and no agreement line (exact is
     * compared with nothing) */
    a.precision = ms_precision_settle(&cl, 1, a.precision, (uint32_t)a.dim);
    if ((rc = make_rows(&q, a.dtype, (uint32_t)a.dim, a.nq, a.lq, &err)) != MS_OK ||
        (rc = make_rows(&d, a.dtype, (uint32_t)a.dim, n_docs, a.ld, &err)) != MS_OK)
        goto done;
    const struct ms_scorer_opts so = { .normalize = a.normalize,
                                       .max_docs = n_docs,
                                       .max_tokens = n_docs * a.ld,
                                       .precision = a.precision };
    if (!(scores = ms_malloc(a.nq * a.nd * sizeof *scores, &err)) ||
        !(kt = ms_malloc(a.reps * sizeof *kt, &err)) ||
        !(wt = ms_malloc(a.reps * sizeof *wt, &err))) {
        rc = err.status;
        goto done;
    }
    if (a.tune) {
        rc = bench_tune(&cl, &q, &d, &so, a.nd, a.reps, scores, kt, &err);
        goto done;
    }
    if ((rc = ms_scorer_create(&s, &cl, &q, &so, &err)) != MS_OK ||
        (rc = run_timed(&cl, &a, &q, &d, s, &so, scores, kt, wt, &res, &err)) != MS_OK)
        goto done;
    print_result(&cl, &a, s, &res);
done:
    if (rc != MS_OK && err.status)
        ms_report(&err);
    free(scores);
    free(kt);
    free(wt);
    ms_scorer_free(s);
    ms_emb_release(&q);
    ms_emb_release(&d);
    ms_device_close(&cl);
    return rc;
}
