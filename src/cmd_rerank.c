/*
 * cmd_rerank.c - `maxsim rerank`: rescore the candidates of a first-stage
 * run with exact MaxSim and write the reranked run.
 *
 * The run is read as a stream (run.c) and its ids matched to rows through
 * hash maps (idmap.c); each (query, document) pair is kept once. Queries are
 * taken in batches; for a batch, the documents its pairs need are read once
 * each, in row order, in blocks on the reader thread (stream.c) while the
 * previous block is scored by the pair-list kernel (maxsim_cl.c). Output:
 * queries in input order, each by score, highest first, ties by row.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "cmd_common.h"
#include "idmap.h"
#include "maxsim.h"
#include "out.h"
#include "pool.h"
#include "run.h"
#include "sort.h"
#include "stream.h"

static const char usage_text[] =
    "usage: maxsim rerank -q <queries> -d <docs> -c <run> [-k <n>] [--normalize]\n"
    "                     [-o <out>] [--format (trec | tsv)] [--run-tag <tag>]\n"
    "                     [--skip-missing] [--query-lengths <file.npy>] [--doc-lengths "
    "<file.npy>]\n"
    "                     [--query-ids <file>] [--doc-ids <file>]\n"
    "                     [--chunk-docs <n>] [--query-batch <n>] [--progress]\n"
    "                     [--precision (exact | tf32 | f16 | f8 | int8)]\n"
    "\n"
    "Rescore the candidates of a run (TREC or QID<TAB>DOCID lines; '-' for stdin;\n"
    "zstd-compressed accepted) with exact MaxSim.\n"
    "\n"
    "  -q, --queries <file>     query embeddings (.npy, .npy.zst, .h5[:/group])\n"
    "  -d, --docs <file>        document embeddings (same formats)\n"
    "  -c, --candidates <run>   the candidate run\n"
    "  -k <n>                   results per query (default: all candidates)\n"
    "  --normalize              L2-normalize every token before scoring\n"
    "  --precision <p>          exact (default), tf32 (float32 inputs rounded to tf32 on NVIDIA\n"
    "                           tensor cores, cc >= 8.0; elsewhere exact, with a warning),\n"
    "                           f16 (float32 inputs rounded to float16), f8 (e4m3 on NVIDIA\n"
    "                           tensor cores, cc >= 8.9) or int8 (scaled int8 codes on NVIDIA\n"
    "                           tensor cores, cc >= 8.0)\n"
    "  -o, --output <file>      write here instead of stdout (.trec .tsv, + .zst)\n"
    "  --format <fmt>           trec (default) or tsv\n"
    "  --run-tag <tag>          the TREC run tag (default maxsim)\n"
    "  --skip-missing           skip candidates with unknown ids (one warning with a count)\n"
    "  --query-lengths <file>   query row lengths (1-D integer .npy)\n"
    "  --doc-lengths <file>     document row lengths (1-D integer .npy)\n"
    "  --query-ids <file>       query ids, one per line\n"
    "  --doc-ids <file>         document ids, one per line\n"
    "  --chunk-docs <n>         documents fetched per block (default: from device memory)\n"
    "  --query-batch <n>        queries scored together (default: all that fit)\n"
    "  --progress               show progress even when stderr is not a terminal\n"
    "  -h, --help               this help\n";

enum { OPT_SKIP_MISSING = 2000 };

struct batch_ctx {
    struct ms_devset *devs;
    struct ms_src *q, *d;
    int normalize, precision;
    uint64_t max_docs, max_tokens;
    struct ms_progress *prog;
    struct ms_run_stats *stats;
    double prep_s; /* host time before the batches' streams: queries, pair order, scorers */
};

/* Score the pairs [0, n) of one batch of queries (sorted by query, then document). */
static int score_batch(struct batch_ctx *c, struct ms_cand *pairs, uint64_t n, struct ms_err *err)
{
    uint64_t *qrows = NULL, *drows = NULL, nq = 0, nd = 0;
    uint32_t *pq = NULL, *pd = NULL;
    float *ps = NULL;
    struct ms_kv *kv = NULL;
    struct ms_emb queries;
    struct ms_scorer *scorer = NULL;
    struct ms_pool *pool = NULL;
    struct ms_stream *stream = NULL;
    const struct ms_emb *block;
    int rc = MS_OK;

    const double t0 = ms_now();
    ms_emb_init(&queries);
    if (!(qrows = ms_malloc(n * sizeof *qrows, err)) ||
        !(drows = ms_malloc(n * sizeof *drows, err)) || !(pq = ms_malloc(n * sizeof *pq, err)) ||
        !(pd = ms_malloc(n * sizeof *pd, err)) || !(ps = ms_malloc(n * sizeof *ps, err)) ||
        !(kv = ms_malloc(2 * n * sizeof *kv, err))) {
        rc = err->status;
        goto done;
    }
    for (uint64_t i = 0; i < n; i++) /* the batch's queries, ascending; pairs[i].q -> index */
        if (nq == 0 || qrows[nq - 1] != pairs[i].q)
            qrows[nq++] = pairs[i].q;
    if ((rc = ms_src_read_rows(c->q, qrows, nq, &queries, err)) != MS_OK)
        goto done;
    {
        uint64_t qi = 0;
        for (uint64_t i = 0; i < n; i++) {
            while (qrows[qi] != pairs[i].q)
                qi++;
            pairs[i].u.qi = (uint32_t)qi;
        }
    }
    /* The pairs in document order (then query order: the sort is stable), as indices into
     * pairs: the pairs themselves keep their (query, document) order, from which the ranked
     * sort at the end needs no sorting by document. */
    for (uint64_t i = 0; i < n; i++)
        kv[i] = (struct ms_kv){ pairs[i].d, i };
    const struct ms_kv *byd = ms_kv_sort(kv, kv + n, n);
    for (uint64_t i = 0; i < n; i++)
        if (nd == 0 || drows[nd - 1] != pairs[byd[i].val].d)
            drows[nd++] = pairs[byd[i].val].d;
    const struct ms_scorer_opts so = { .normalize = c->normalize,
                                       .max_docs = c->max_docs,
                                       .max_tokens = c->max_tokens,
                                       .precision = c->precision };
    /* several devices: each block goes to the next idle one, its scores to ps[p0..p) */
    const double setup_t0 = ms_now();
    if (c->devs->n > 1)
        rc = ms_pool_start(&pool, c->devs->cl, c->devs->n, &queries, 0, &so, NULL, 0, NULL, NULL,
                           err);
    else
        rc = ms_scorer_create(&scorer, &c->devs->cl[0], &queries, &so, err);
    if (rc != MS_OK)
        goto done;
    c->stats->setup_s += ms_now() - setup_t0;
    c->prep_s += ms_now() - t0;
    struct ms_alloc pinned;
    if ((rc = ms_stream_start_rows(&stream, c->d, drows, nd, c->max_docs, c->max_tokens,
                                   ms_pinned_alloc(c->devs, &pinned), err)) != MS_OK)
        goto done;
    uint64_t p = 0, di = 0; /* next pair, next entry of drows */
    while ((rc = ms_stream_next(stream, &block, err)) == MS_OK && block) {
        const uint64_t p0 = p;
        for (uint64_t j = 0; j < block->n_rows; j++, di++)
            for (; p < n && pairs[byd[p].val].d == drows[di]; p++) {
                pq[p - p0] = pairs[byd[p].val].u.qi;
                pd[p - p0] = (uint32_t)j;
            }
        if (pool) {
            if ((rc = ms_pool_submit_pairs(pool, block, pq, pd, p - p0, ps + p0, err)) != MS_OK)
                break;
        } else {
            if ((rc = ms_scorer_run_pairs(scorer, block, pq, pd, p - p0, ps + p0, err)) != MS_OK)
                break;
            c->stats->kernel_s += ms_scorer_last_kernel_s(scorer);
            double up_s;
            uint64_t up_bytes;
            ms_scorer_last_upload(scorer, &up_s, &up_bytes);
            c->stats->upload_s += up_s;
            c->stats->upload_bytes += up_bytes;
        }
        c->stats->blocks++;
        ms_progress_add(c->prog, p - p0);
    }
    c->stats->read_s += ms_stream_read_s(stream);
    c->stats->wait_s += ms_stream_wait_s(stream);
    c->stats->read_bytes += ms_stream_bytes(stream);
    if (pool) { /* every block handed over is scored (or the first error kept) */
        struct ms_err perr;
        const int prc = ms_pool_finish(pool, &c->stats->kernel_s, &perr);
        pool = NULL;
        if (rc == MS_OK && prc != MS_OK) {
            rc = prc;
            *err = perr;
        }
    }
    for (uint64_t i = 0; rc == MS_OK && i < n; i++)
        pairs[byd[i].val].u.score = ps[i];
done:
    ms_pool_finish(pool, NULL, &(struct ms_err){ 0 });
    ms_stream_stop(stream);
    ms_scorer_free(scorer);
    ms_emb_release(&queries);
    free(qrows);
    free(drows);
    free(pq);
    free(pd);
    free(ps);
    free(kv);
    return rc;
}

int cmd_rerank(int argc, char **argv)
{
    static const struct option longopts[] = {
        MS_INPUTS_LONGOPTS, { "candidates", required_argument, NULL, 'c' },
        MS_OUTPUT_LONGOPTS, { "skip-missing", no_argument, NULL, OPT_SKIP_MISSING },
        MS_GLOBAL_LONGOPTS, { NULL, 0, NULL, 0 },
    };
    static const struct ms_optspec spec = { "rerank", ":q:d:c:k:o:hv", longopts, usage_text, 0 };
    struct ms_inputs_opts in = { .tag = "maxsim", .k = UINT64_MAX };
    const char *run_path = NULL;
    uint64_t nqb, max_docs, max_tokens, n_pairs = 0;
    int skip_missing = 0, zst, c, rc, status;
    struct ms_run_stats stats = { 0 };
    struct ms_idmap qmap = { 0 }, dmap = { 0 };
    struct ms_cand *pairs = NULL;
    struct ms_src q, d;
    struct ms_devset devs;
    struct ms_devset_start start;
    struct ms_progress prog;
    struct ms_wfile *w = NULL;
    struct ms_err err;
    enum ms_fmt fmt;

    while ((c = ms_getopt(&spec, argc, argv, &status)) != 0) {
        const int r = ms_inputs_option("rerank", &in, c, optarg);
        if (r == 2)
            return MS_ERR_INPUT;
        if (r == 1)
            continue;
        switch (c) {
        case 'c': run_path = optarg; break;
        case OPT_SKIP_MISSING: skip_missing = 1; break;
        default: break;
        }
    }
    if (status >= 0)
        return status;
    if (!run_path)
        return ms_usage_error("rerank", "no candidate run (-c RUN, or -c - for stdin)");
    if (ms_fmt_resolve(in.out_path, in.format, MS_FMT_TEXT, MS_FMT_TREC, &fmt, &zst, &err) != MS_OK)
        return ms_report(&err);
    /* the output first, so an unusable path fails before any input is read */
    if (ms_wfile_open(&w, in.out_path, zst, 0, &err) != MS_OK)
        return ms_report(&err);
    /* the device starts while the inputs are opened and the candidates read */
    ms_devices_start(&start, 0);
    if ((rc = ms_inputs_open("rerank", &in, &q, &d)) != MS_OK) {
        ms_devset_cancel(&start);
        ms_wfile_abort(w);
        return rc;
    }
    if (q.n_rows > UINT32_MAX) {
        rc = ms_fail(MS_ERR_INPUT, "'%s': %llu queries; rerank takes at most %u", in.queries,
                     (unsigned long long)q.n_rows, UINT32_MAX);
        goto close_inputs;
    }
    char qwhat[512], dwhat[512];
    snprintf(qwhat, sizeof qwhat, "'%s'", in.qopts.ids_path ? in.qopts.ids_path : in.queries);
    snprintf(dwhat, sizeof dwhat, "'%s'", in.dopts.ids_path ? in.dopts.ids_path : in.docs);
    if ((rc = ms_idmap_init(&qmap, &q.ids, q.n_rows, qwhat, &err)) != MS_OK ||
        (rc = ms_idmap_init(&dmap, &d.ids, d.n_rows, dwhat, &err)) != MS_OK) {
        ms_report(&err);
        goto close_inputs;
    }
    const double cands_t0 = ms_now();
    if ((rc = ms_read_candidates(run_path, &qmap, &dmap, skip_missing, &pairs, &n_pairs)) != MS_OK)
        goto close_inputs;
    const double cands_s = ms_now() - cands_t0;
    if ((rc = ms_devices_finish(&start, &devs)) != MS_OK)
        goto close_inputs;
    ms_plan_blocks(devs.cl, &in, &q, &d, &nqb, &max_docs, &max_tokens);
    ms_progress_init(&prog, in.progress, "rerank", n_pairs);
    prog.unit = "pairs";
    struct batch_ctx ctx = { .devs = &devs,
                             .q = &q,
                             .d = &d,
                             .normalize = in.normalize,
                             .precision = ms_precision_settle(devs.cl, devs.n, in.precision, q.dim),
                             .max_docs = max_docs,
                             .max_tokens = max_tokens,
                             .prog = &prog,
                             .stats = &stats };
    const double t0 = ms_now();
    /* batches of at most nqb queries; pairs are sorted by query */
    for (uint64_t p = 0, batch = 0; p < n_pairs && rc == MS_OK; batch++) {
        uint64_t end = p, nq = 0;
        while (end < n_pairs && (nq < nqb || pairs[end].q == pairs[end - 1].q)) {
            if (end == p || pairs[end].q != pairs[end - 1].q)
                nq++;
            end++;
        }
        if (batch > 0 && d.sequential_only) { /* a stream is read again from its start */
            struct ms_src again;
            struct ms_src_opts dopt = in.dopts;
            if ((rc = ms_src_open(&again, in.docs, &dopt, &err)) != MS_OK)
                break;
            ms_src_close(&d);
            d = again;
        }
        rc = score_batch(&ctx, pairs + p, end - p, &err);
        p = end;
    }
    ms_progress_end(&prog);
    const double scored_s = ms_now();
    double ranked_s = scored_s;
    if (rc == MS_OK) {
        ms_cands_sort_ranked(pairs, n_pairs);
        ranked_s = ms_now();
        rc = ms_cands_write(w, fmt, pairs, n_pairs, in.k, &q.ids, &d.ids, in.tag, &err);
    }
    if ((rc = ms_output_finish(&w, rc, &err)) == MS_OK && ms_global.verbose) {
        const double end_s = ms_now(), total = end_s - t0;
        fprintf(stderr,
                "maxsim: rerank: %llu pairs in %llu blocks: read %.3f s (waited %.3f s), kernels "
                "%.3f s, total %.3f s, %.0f pairs/s\n",
                (unsigned long long)n_pairs, (unsigned long long)stats.blocks, stats.read_s,
                stats.wait_s, stats.kernel_s, total, total > 0 ? (double)n_pairs / total : 0.0);
        ms_run_stats_print("rerank", &stats, total);
        /* the host's own parts, which the rates above do not show */
        fprintf(stderr,
                "maxsim: rerank: host: candidates read %.3f s (before the device was needed), "
                "batches prepared %.3f s, ranked %.3f s, written %.3f s\n",
                cands_s, ctx.prep_s, ranked_s - scored_s, end_s - ranked_s);
    }
    ms_devices_close(&devs);
close_inputs:
    ms_devset_cancel(&start); /* nothing left there once finished */
    ms_wfile_abort(w);
    free(pairs);
    ms_idmap_release(&qmap);
    ms_idmap_release(&dmap);
    ms_src_close(&q);
    ms_src_close(&d);
    return rc;
}
