/*
 * cmd_plaid.c - `maxsim plaid`: search a PLAID index (fast-plaid or NextPlaid
 * directory) or rerank a candidate run against it.
 *
 * Search follows fast-plaid's pipeline and defaults (plaid_cl.h): nprobe 8,
 * 4096 candidates by centroid-interaction score, 1024 of them scored exactly
 * from the decompressed residuals, top 10. Rerank (-c RUN) scores every
 * (query, document) pair of the run exactly, as `maxsim rerank` does for raw
 * embeddings. Documents are named by their 0-based position in the index
 * (fast-plaid's ids) unless --doc-ids gives one id a line. Queries are used
 * as given (the engines do not normalize them). Nothing is written until
 * every score is known; -o files appear whole or not at all.
 */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "cmd_common.h"
#include "idmap.h"
#include "out.h"
#include "plaid.h"
#include "plaid_cl.h"
#include "run.h"
#include "stream.h"
#include "topk.h"

static const char usage_text[] =
    "usage: maxsim plaid -q <queries> -i <index-dir> [-c <run>] [-k <n>]\n"
    "                    [--nprobe <n>] [--ncandidates <n>] [--nrerank <n>]\n"
    "                    [--centroid-threshold <x>] [--query-batch <n>]\n"
    "                    [-o <out>] [--format (trec | tsv)]\n"
    "                    [--run-tag <tag>] [--doc-ids <file>] [--query-ids <file>]\n"
    "                    [--query-lengths <file.npy>] [--skip-missing] [--progress]\n"
    "\n"
    "Search a PLAID index (fast-plaid or NextPlaid directory) with fast-plaid's\n"
    "pipeline, or with -c rerank a candidate run exactly from its compressed tokens.\n"
    "\n"
    "  -q, --queries <file>       query embeddings (.npy, .npy.zst, .h5[:/group])\n"
    "  -i, --index <dir>          the index directory (never modified)\n"
    "  -c, --candidates <run>     rerank this run instead of searching ('-' for stdin)\n"
    "  -k <n>                     results per query (default 10; with -c all candidates)\n"
    "  --nprobe <n>               centroids probed per query token (default 8)\n"
    "  --ncandidates <n>          documents kept by centroid score (default 4096)\n"
    "  --nrerank <n>              of those, documents scored exactly\n"
    "                             (default max(ncandidates/4, k))\n"
    "  --centroid-threshold <x>   skip probed centroids whose best score over the\n"
    "                             query is below x (NextPlaid; default off)\n"
    "  --query-batch <n>          queries searched together on the device (default:\n"
    "                             as many as fit a sixteenth of its memory, <= 1024)\n"
    "  -o, --output <file>        write here instead of stdout (.trec .tsv, + .zst)\n"
    "  --format <fmt>             trec (default) or tsv\n"
    "  --run-tag <tag>            the TREC run tag (default maxsim)\n"
    "  --doc-ids <file>           document ids, one per line, in index order\n"
    "  --query-ids <file>         query ids, one per line\n"
    "  --query-lengths <file>     query row lengths (1-D integer .npy); without it a\n"
    "                             query's trailing all-zero rows are dropped (padding)\n"
    "  --skip-missing             with -c: skip candidates with unknown ids\n"
    "  --progress                 show progress even when stderr is not a terminal\n"
    "  -h, --help                 this help\n";

enum {
    OPT_NPROBE = 3000,
    OPT_NCAND,
    OPT_NRERANK,
    OPT_THRESHOLD,
    OPT_SKIP,
    OPT_QBATCH,
};

/* Rerank mode: score the run's pairs, a batch of queries at a time. */
static int rerank_run(struct ms_plaid_dev *dev, struct ms_src *q, struct ms_cand *pairs, uint64_t n,
                      struct ms_progress *prog, struct ms_err *err)
{
    const uint64_t nqb = 256;
    uint64_t *rows = ms_malloc((nqb + 1) * sizeof *rows, err);
    uint32_t *pq = ms_malloc((n ? n : 1) * 4, err), *pd = ms_malloc((n ? n : 1) * 4, err);
    float *sc = ms_malloc((n ? n : 1) * 4, err);
    struct ms_emb qe;
    int rc = MS_OK;

    ms_emb_init(&qe);
    if (!rows || !pq || !pd || !sc)
        rc = MS_ERR_RUNTIME;
    for (uint64_t p = 0; p < n && rc == MS_OK;) {
        uint64_t end = p, nq = 0;
        while (end < n && (nq < nqb || pairs[end].q == pairs[end - 1].q)) {
            if (end == p || pairs[end].q != pairs[end - 1].q)
                rows[nq++] = pairs[end].q;
            pq[end - p] = (uint32_t)(nq - 1);
            pd[end - p] = (uint32_t)pairs[end].d; /* < the index's documents */
            end++;
        }
        if ((rc = ms_src_read_rows(q, rows, nq, &qe, err)) != MS_OK ||
            (rc = ms_plaid_dev_rerank(dev, &qe, pq, pd, end - p, sc, err)) != MS_OK)
            break;
        for (uint64_t i = p; i < end; i++)
            pairs[i].u.score = sc[i - p];
        ms_progress_add(prog, end - p);
        p = end;
    }
    ms_emb_release(&qe);
    free(rows);
    free(pq);
    free(pd);
    free(sc);
    return rc;
}

/* Search mode: batches of queries, S (centroids x tokens) under 64 MiB. */
static int search_all(struct ms_plaid_dev *dev, struct ms_src *q,
                      const struct ms_plaid_search_opts *o, uint64_t query_batch, struct ms_topk *t,
                      struct ms_progress *prog, struct ms_err *err)
{
    uint64_t longest = 1;
    for (uint64_t r = 0; r < q->n_rows; r++)
        longest = ms_src_row_len(q, r) > longest ? ms_src_row_len(q, r) : longest;
    uint64_t nqb = ms_plaid_dev_batch(dev, o, longest);
    if (query_batch && query_batch < nqb)
        nqb = query_batch;
    struct ms_emb qe;
    int rc = MS_OK;

    ms_emb_init(&qe);
    for (uint64_t q0 = 0; q0 < q->n_rows && rc == MS_OK; q0 += nqb) {
        const uint64_t nq = q->n_rows - q0 < nqb ? q->n_rows - q0 : nqb;
        if ((rc = ms_src_read(q, q0, nq, &qe, err)) == MS_OK &&
            (rc = ms_plaid_dev_search(dev, &qe, o, t, q0, err)) == MS_OK)
            ms_progress_add(prog, nq);
    }
    ms_emb_release(&qe);
    return rc;
}

static int parse_float(const char *opt, const char *arg, float *out)
{
    char *end;
    const double v = strtod(arg, &end);
    if (!*arg || *end || !isfinite(v))
        return ms_usage_error("plaid", "%s takes a number, got '%s'", opt, arg);
    *out = (float)v;
    return 0;
}

/* What the command line asked for. */
struct plaid_args {
    const char *qpath, *ipath, *run_path, *out_path, *format, *tag, *doc_ids;
    struct ms_src_opts qopts;
    struct ms_plaid_search_opts so;
    uint64_t k, query_batch;
    int skip_missing, progress;
};

/* Parse and check the options, filling in the defaults that depend on each
 * other (k, nrerank). Returns -1 to go on, else the exit status. */
static int parse_args(int argc, char **argv, struct plaid_args *a)
{
    static const struct option longopts[] = {
        { "queries", required_argument, NULL, 'q' },
        { "index", required_argument, NULL, 'i' },
        { "candidates", required_argument, NULL, 'c' },
        { "nprobe", required_argument, NULL, OPT_NPROBE },
        { "ncandidates", required_argument, NULL, OPT_NCAND },
        { "nrerank", required_argument, NULL, OPT_NRERANK },
        { "centroid-threshold", required_argument, NULL, OPT_THRESHOLD },
        { "query-batch", required_argument, NULL, OPT_QBATCH },
        MS_OUTPUT_LONGOPTS,
        { "doc-ids", required_argument, NULL, OPT_DOC_IDS },
        { "query-ids", required_argument, NULL, OPT_QUERY_IDS },
        { "query-lengths", required_argument, NULL, OPT_QUERY_LENGTHS },
        { "skip-missing", no_argument, NULL, OPT_SKIP },
        { "progress", no_argument, NULL, OPT_PROGRESS },
        MS_GLOBAL_LONGOPTS,
        { NULL, 0, NULL, 0 },
    };
    static const struct ms_optspec spec = { "plaid", ":q:i:c:k:o:hv", longopts, usage_text, 0 };
    int c, status;

    memset(a, 0, sizeof *a);
    a->tag = "maxsim";
    a->qopts.role = "queries";
    a->so.nprobe = 8;
    a->so.ncandidates = 4096;
    while ((c = ms_getopt(&spec, argc, argv, &status)) != 0) {
        switch (c) {
        case 'q': a->qpath = optarg; break;
        case 'i': a->ipath = optarg; break;
        case 'c': a->run_path = optarg; break;
        case 'k':
            if (ms_parse_u64("plaid", "-k", optarg, 1, &a->k))
                return MS_ERR_INPUT;
            break;
        case OPT_NPROBE:
            if (ms_parse_u64("plaid", "--nprobe", optarg, 1, &a->so.nprobe))
                return MS_ERR_INPUT;
            break;
        case OPT_NCAND:
            if (ms_parse_u64("plaid", "--ncandidates", optarg, 1, &a->so.ncandidates))
                return MS_ERR_INPUT;
            break;
        case OPT_NRERANK:
            if (ms_parse_u64("plaid", "--nrerank", optarg, 1, &a->so.nrerank))
                return MS_ERR_INPUT;
            break;
        case OPT_THRESHOLD:
            if (parse_float("--centroid-threshold", optarg, &a->so.threshold))
                return MS_ERR_INPUT;
            a->so.use_threshold = 1;
            break;
        case OPT_QBATCH:
            if (ms_parse_u64("plaid", "--query-batch", optarg, 1, &a->query_batch))
                return MS_ERR_INPUT;
            break;
        case 'o': a->out_path = optarg; break;
        case OPT_FORMAT: a->format = optarg; break;
        case OPT_RUN_TAG:
            if (ms_parse_run_tag("plaid", optarg))
                return MS_ERR_INPUT;
            a->tag = optarg;
            break;
        case OPT_DOC_IDS: a->doc_ids = optarg; break;
        case OPT_QUERY_IDS: a->qopts.ids_path = optarg; break;
        case OPT_QUERY_LENGTHS: a->qopts.lengths_path = optarg; break;
        case OPT_SKIP: a->skip_missing = 1; break;
        case OPT_PROGRESS: a->progress = 1; break;
        default: break;
        }
    }
    if (status >= 0)
        return status;
    if (!a->qpath)
        return ms_usage_error("plaid", "no queries (-q QUERIES)");
    if (!a->ipath)
        return ms_usage_error("plaid", "no index (-i INDEX_DIR)");
    if (a->skip_missing && !a->run_path)
        return ms_usage_error("plaid", "--skip-missing needs a candidate run (-c RUN)");
    if (!a->k)
        a->k = a->run_path ? UINT64_MAX : 10;
    if (!a->so.nrerank) /* fast-plaid: n_full_scores / 4; NextPlaid: at least top_k */
        a->so.nrerank = a->so.ncandidates / 4 > a->k || a->run_path ? a->so.ncandidates / 4 : a->k;
    if (!a->so.nrerank)
        a->so.nrerank = 1;
    /* fast-plaid 1.7 drops trailing all-zero query rows; explicit lengths win */
    a->so.trim_zero = !a->qopts.lengths_path;
    return -1;
}

/* Search mode: the top k of every query, written as run lines to w. */
static int plaid_search(const struct plaid_args *a, struct ms_plaid_dev *dev,
                        const struct ms_plaid *idx, struct ms_src *q, const struct ms_ids *dids,
                        struct ms_wfile *w, enum ms_fmt fmt, struct ms_err *err)
{
    struct ms_topk topk = { 0 };
    struct ms_progress prog;
    int rc;

    ms_progress_init(&prog, a->progress, "plaid search", q->n_rows);
    prog.unit = "queries";
    if ((rc = ms_topk_init(&topk, q->n_rows, a->k < idx->n_docs ? a->k : idx->n_docs, err)) ==
        MS_OK)
        rc = search_all(dev, q, &a->so, a->query_batch, &topk, &prog, err);
    ms_progress_end(&prog);
    if (rc == MS_OK) {
        ms_topk_finish(&topk);
        rc = ms_run_write(w, fmt, &topk, &q->ids, dids, a->tag, err);
    }
    ms_topk_release(&topk);
    return rc;
}

/* Rerank mode: score the run's pairs and write the best k of each query. */
static int plaid_rerank(const struct plaid_args *a, struct ms_plaid_dev *dev, struct ms_src *q,
                        const struct ms_ids *dids, struct ms_cand *pairs, uint64_t n_pairs,
                        struct ms_wfile *w, enum ms_fmt fmt, struct ms_err *err)
{
    struct ms_progress prog;
    int rc;

    ms_progress_init(&prog, a->progress, "plaid rerank", n_pairs);
    prog.unit = "pairs";
    rc = rerank_run(dev, q, pairs, n_pairs, &prog, err);
    ms_progress_end(&prog);
    if (rc == MS_OK) {
        ms_cands_sort_ranked(pairs, n_pairs);
        rc = ms_cands_write(w, fmt, pairs, n_pairs, a->k, &q->ids, dids, a->tag, err);
    }
    return rc;
}

/* With -v: where the time went. */
static void print_stats(const struct plaid_args *a, const struct ms_plaid_dev *dev,
                        uint64_t n_queries, uint64_t n_pairs, double total, double open_s,
                        double upload_s)
{
    const struct ms_plaid_stats *st = ms_plaid_dev_stats(dev);
    const double ks = st->centroid_s + st->approx_s + st->rerank_s;

    if (a->run_path)
        fprintf(stderr,
                "maxsim: plaid rerank: %llu pairs in %.3f s (kernels %.3f s), %.0f pairs/s\n",
                (unsigned long long)n_pairs, total, ks, total > 0 ? (double)n_pairs / total : 0.0);
    else {
        const double ks2 = ks + st->probe_s + st->union_s + st->select_s;
        fprintf(stderr,
                "maxsim: plaid search: %llu queries in %.3f s, %.1f queries/s; %.0f candidates "
                "and %.0f reranked per query\n",
                (unsigned long long)n_queries, total, total > 0 ? (double)n_queries / total : 0.0,
                n_queries ? (double)st->candidates / (double)n_queries : 0.0,
                n_queries ? (double)st->reranked / (double)n_queries : 0.0);
        fprintf(stderr,
                "maxsim: plaid search: kernels %.3f s (centroid scores %.3f, probe %.3f, union "
                "%.3f, approximate %.3f, select %.3f, rerank %.3f)\n",
                ks2, st->centroid_s, st->probe_s, st->union_s, st->approx_s, st->select_s,
                st->rerank_s);
        fprintf(stderr,
                "maxsim: plaid search: %llu batches, %.3f s in search calls; host and transfers "
                "%.3f s (%.2f ms a batch, at most %.2f ms)\n",
                (unsigned long long)st->batches, st->search_s, st->host_s,
                st->batches ? 1e3 * st->host_s / (double)st->batches : 0.0, 1e3 * st->host_max_s);
        fprintf(stderr,
                "maxsim: plaid search: index opened and checked in %.3f s, uploaded in %.3f s; "
                "setup %.3f s\n",
                open_s, upload_s, total - st->search_s);
    }
}

int cmd_plaid(int argc, char **argv)
{
    struct plaid_args a;
    uint64_t n_pairs = 0;
    int zst, rc;
    struct ms_idmap qmap = { 0 }, dmap = { 0 };
    struct ms_ids dids;
    struct ms_cand *pairs = NULL;
    struct ms_plaid idx;
    struct ms_plaid_dev *dev = NULL;
    struct ms_src q;
    struct ms_devset devs = { 0 };
    struct ms_devset_start start;
    struct ms_wfile *w = NULL;
    struct ms_err err;
    enum ms_fmt fmt;

    if ((rc = parse_args(argc, argv, &a)) >= 0)
        return rc;
    if (ms_fmt_resolve(a.out_path, a.format, MS_FMT_TEXT, MS_FMT_TREC, &fmt, &zst, &err) != MS_OK)
        return ms_report(&err);
    /* the output first, so an unusable path fails before any input is read */
    if (ms_wfile_open(&w, a.out_path, zst, 0, &err) != MS_OK)
        return ms_report(&err);
    /* the device starts while the queries, the index and the candidates are read */
    if ((rc = ms_devices_start(&start, 1)) != 0) {
        ms_wfile_abort(w);
        return rc;
    }
    if (ms_src_open(&q, a.qpath, &a.qopts, &err) != MS_OK) {
        ms_devset_cancel(&start);
        ms_wfile_abort(w);
        return ms_report(&err);
    }
    ms_ids_init(&dids);
    double open_s = ms_now();
    if ((rc = ms_plaid_open(&idx, a.ipath, &err)) != MS_OK) {
        ms_report(&err);
        goto close_queries;
    }
    open_s = ms_now() - open_s;
    rc = MS_ERR_INPUT;
    if (q.dim != idx.dim) {
        ms_fail(rc, "dim mismatch: queries '%s' have dim %u but the index '%s' has dim %u", a.qpath,
                q.dim, a.ipath, idx.dim);
        goto close_index;
    }
    if (q.n_rows > UINT32_MAX) {
        ms_fail(rc, "'%s': %llu queries; at most %u", a.qpath, (unsigned long long)q.n_rows,
                UINT32_MAX);
        goto close_index;
    }
    if (ms_check_unique_ids(&q.ids, a.qopts.ids_path, a.qpath) != MS_OK)
        goto close_index;
    if (a.doc_ids) {
        if ((rc = ms_ids_read_text(&dids, a.doc_ids, &err)) != MS_OK) {
            ms_report(&err);
            goto close_index;
        }
        if (dids.n != idx.n_docs) {
            rc = ms_fail(MS_ERR_INPUT, "'%s': %llu ids, but the index '%s' has %llu documents",
                         a.doc_ids, (unsigned long long)dids.n, a.ipath,
                         (unsigned long long)idx.n_docs);
            goto close_index;
        }
        if ((rc = ms_check_unique_ids(&dids, a.doc_ids, a.ipath)) != MS_OK)
            goto close_index;
    }
    if (a.run_path) {
        char qwhat[512], dwhat[512];
        snprintf(qwhat, sizeof qwhat, "'%s'", a.qopts.ids_path ? a.qopts.ids_path : a.qpath);
        snprintf(dwhat, sizeof dwhat, "'%s'", a.doc_ids ? a.doc_ids : a.ipath);
        if ((rc = ms_idmap_init(&qmap, &q.ids, q.n_rows, qwhat, &err)) != MS_OK ||
            (rc = ms_idmap_init(&dmap, &dids, idx.n_docs, dwhat, &err)) != MS_OK) {
            ms_report(&err);
            goto close_index;
        }
        if ((rc = ms_read_candidates(a.run_path, &qmap, &dmap, a.skip_missing, &pairs, &n_pairs)) !=
            MS_OK)
            goto close_index;
    }
    if ((rc = ms_devices_finish(&start, &devs)) != MS_OK)
        goto close_index;
    struct ms_cl *const cl = &devs.cl[0];
    const double t0 = ms_now();
    double upload_s = 0.0;
    if ((rc = ms_plaid_dev_create(&dev, cl, &idx, a.run_path ? 0 : MS_PLAID_SEARCH, &err)) ==
            MS_OK &&
        (upload_s = ms_now() - t0) >= 0.0)
        rc = a.run_path ? plaid_rerank(&a, dev, &q, &dids, pairs, n_pairs, w, fmt, &err)
                        : plaid_search(&a, dev, &idx, &q, &dids, w, fmt, &err);
    if ((rc = ms_output_finish(&w, rc, &err)) == MS_OK && ms_global.verbose)
        print_stats(&a, dev, q.n_rows, n_pairs, ms_now() - t0, open_s, upload_s);
    ms_plaid_dev_free(dev);
    ms_devices_close(&devs);
close_index:
    free(pairs);
    ms_idmap_release(&qmap);
    ms_idmap_release(&dmap);
    ms_ids_release(&dids);
    ms_plaid_close(&idx);
close_queries:
    ms_devset_cancel(&start); /* nothing left there once finished */
    ms_wfile_abort(w);
    ms_src_close(&q);
    return rc;
}
