/*
 * cmd_search.c - `maxsim search`: the exact top-k documents of every query.
 *
 * The corpus streams through in blocks (stream.c: the next block is read
 * while the current one is scored); every block is scored against a whole
 * batch of queries at once (maxsim_cl.c), and the scores are merged into
 * per-query top-k heaps (topk.c) whose order does not depend on the block
 * size. For k up to MS_TOPK_CL_MAX_K (and MAXSIM_DEVICE_TOPK not 0) the device
 * selects every block's top k of each query (topk_cl.c) and only those come
 * back to be merged: the same heaps, the same output. Nothing is written until
 * the last block is scored; the output then appears whole (out.c), or not at
 * all if anything failed.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "cmd_common.h"
#include "cmd_mpi.h"
#include "maxsim.h"
#include "out.h"
#include "stream.h"
#include "topk.h"
#include "topk_cl.h"

static const char usage_text[] =
    "usage: maxsim search -q <queries> -d <docs> [-k <n>] [--normalize] [-o <out>]\n"
    "                     [--format (trec | tsv | npy | h5)] [--run-tag <tag>]\n"
    "                     [--query-lengths <file.npy>] [--doc-lengths <file.npy>]\n"
    "                     [--query-ids <file>] [--doc-ids <file>]\n"
    "                     [--chunk-docs <n>] [--query-batch <n>] [--progress]\n"
    "                     [--precision (exact | tf32 | f16 | f8 | int8)]\n"
    "                     [--shard <i>/<n>]\n"
    "\n"
    "Exact MaxSim top-k of every query over a corpus of any size, as a TREC run.\n"
    "\n"
    "  -q, --queries <file>     query embeddings (.npy, .npy.zst, .h5[:/group])\n"
    "  -d, --docs <file>        document embeddings (same formats)\n"
    "  -k <n>                   results per query (default 10; all if fewer documents)\n"
    "  --normalize              L2-normalize every token before scoring\n"
    "  --precision <p>          exact (default), tf32 (float32 inputs rounded to tf32 on NVIDIA\n"
    "                           tensor cores, cc >= 8.0; elsewhere exact, with a warning),\n"
    "                           f16 (float32 inputs rounded to float16), f8 (e4m3 on NVIDIA\n"
    "                           tensor cores, cc >= 8.9) or int8 (scaled int8 codes on NVIDIA\n"
    "                           tensor cores, cc >= 8.0)\n"
    "  -o, --output <file>      write here instead of stdout (.trec .tsv .npy .h5, + .zst)\n"
    "  --format <fmt>           trec (default), tsv, npy or h5\n"
    "  --run-tag <tag>          the TREC run tag (default maxsim)\n"
    "  --query-lengths <file>   query row lengths (1-D integer .npy)\n"
    "  --doc-lengths <file>     document row lengths (1-D integer .npy)\n"
    "  --query-ids <file>       query ids, one per line\n"
    "  --doc-ids <file>         document ids, one per line\n"
    "  --chunk-docs <n>         documents scored per block (default: from device memory)\n"
    "  --query-batch <n>        queries scored together (default: all that fit)\n"
    "  --progress               show progress even when stderr is not a terminal\n"
    "  --shard <i>/<n>          only shard i (from 0) of n of the documents (ids stay\n"
    "                           global; 'maxsim merge' joins the shards' runs)\n"
    "  -h, --help               this help\n";

enum { OPT_SHARD = 2000 };

/* Merge one block of scores into the top-k heaps. */
static int merge_block(void *ctx, uint64_t q0, uint64_t nq, const float *scores, uint64_t ld,
                       const struct ms_emb *block, struct ms_err *err)
{
    ms_topk_push(ctx, q0, nq, scores, ld, block->n_rows, block->first_row);
    return MS_OK;
}

/* Merge one block's top k, selected on the device, into the heaps. */
static int merge_block_topk(void *ctx, uint64_t q0, uint64_t nq, uint32_t k, const float *top_s,
                            const uint32_t *top_i, const struct ms_emb *block, struct ms_err *err)
{
    const uint64_t m = k < block->n_rows ? k : block->n_rows;
    for (uint64_t i = 0; i < nq; i++)
        for (uint64_t r = 0; r < m; r++)
            ms_topk_push_one(ctx, q0 + i, top_s[i * k + r], block->first_row + top_i[i * k + r]);
    return MS_OK;
}

int cmd_search(int argc, char **argv)
{
    static const struct option longopts[] = {
        MS_INPUTS_LONGOPTS, MS_OUTPUT_LONGOPTS,   { "shard", required_argument, NULL, OPT_SHARD },
        MS_GLOBAL_LONGOPTS, { NULL, 0, NULL, 0 },
    };
    static const struct ms_optspec spec = { "search", ":q:d:k:o:hv", longopts, usage_text, 0 };
    struct ms_inputs_opts in = { .tag = "maxsim", .k = 10 };
    uint64_t nqb, max_docs, max_tokens, shard_first, shard_rows;
    struct ms_run_stats stats = { 0 };
    struct ms_src q, d;
    struct ms_devset devs;
    struct ms_devset_start start;
    struct ms_topk topk;
    struct ms_progress prog;
    struct ms_wfile *w = NULL;
    struct ms_err err;
    enum ms_fmt fmt;
    int zst, c, rc, status, device_topk;

    while ((c = ms_getopt(&spec, argc, argv, &status)) != 0)
        if (c == OPT_SHARD ? ms_parse_shard("search", optarg, &in) != 0
                           : ms_inputs_option("search", &in, c, optarg) == 2)
            return MS_ERR_INPUT;
    if (status >= 0)
        return status;
    if (ms_device_topk_env("search", &device_topk) != 0)
        return MS_ERR_INPUT;
    if (ms_fmt_resolve(in.out_path, in.format, MS_FMT_ANY, MS_FMT_TREC, &fmt, &zst, &err) != MS_OK)
        return ms_report(&err);
    if (ms_mpi_size() > 1) { /* under mpirun: rank r scores shard r, rank 0 writes */
        if (in.shard_count)
            return ms_usage_error("search", "--shard is not for mpirun: each rank takes its shard");
        in.shard_index = (uint64_t)ms_mpi_rank();
        in.shard_count = (uint64_t)ms_mpi_size();
    }
    /* Create the output now (as a temporary file) so an unusable path fails
     * before any input is read; it is put in place only at the end. Arrays
     * are written by name at the end: their path is only tried here. Under
     * mpirun only rank 0 writes. */
    if (ms_mpi_rank() == 0 &&
        (fmt == MS_FMT_NPY || fmt == MS_FMT_H5 ? ms_output_try(in.out_path, fmt, &err)
                                               : ms_wfile_open(&w, in.out_path, zst, 0, &err)))
        return ms_report(&err);
    /* the device starts while the inputs are opened and the queries read */
    ms_devices_start(&start, 0);
    if ((rc = ms_inputs_open("search", &in, &q, &d)) != MS_OK) {
        ms_devset_cancel(&start);
        ms_wfile_abort(w);
        return rc;
    }
    ms_shard_rows(&in, d.n_rows, &shard_first, &shard_rows);
    if ((rc = ms_devices_finish(&start, &devs)) != MS_OK)
        goto close_output;
    char model[400]; /* under mpirun: every rank ready, on one device model? */
    snprintf(model, sizeof model, "%s, driver %s", devs.cl[0].info.name,
             devs.cl[0].info.driver_version);
    if ((rc = ms_mpi_checkpoint(model, &err)) != MS_OK) {
        if (err.msg[0]) /* else another rank failed and said why */
            ms_report(&err);
        goto close_device;
    }
    ms_plan_blocks(devs.cl, &in, &q, &d, &nqb, &max_docs, &max_tokens);
    if ((rc = ms_topk_init(&topk, q.n_rows, in.k < shard_rows ? in.k : shard_rows, &err)) !=
        MS_OK) {
        ms_report(&err);
        goto close_device;
    }
    ms_progress_init(&prog, in.progress, "search",
                     shard_rows * ((q.n_rows + nqb - 1) / (nqb ? nqb : 1)));
    const double t0 = ms_now();
    /* The device selects when k is within its limit (topk.k: k, or fewer documents), by default
     * unless it is a CPU: there the read-back is a copy within memory, cheaper than selecting
     * (PoCL: about 10 ns a score to select, 4 to push into the heaps). */
    const int cpu = (devs.cl[0].info.type & CL_DEVICE_TYPE_CPU) != 0, topk_env = device_topk;
    if (device_topk < 0)
        device_topk = !cpu;
    const uint32_t device_k =
        device_topk && topk.k > 0 && topk.k <= MS_TOPK_CL_MAX_K ? (uint32_t)topk.k : 0;
    rc = ms_score_all(&devs, &in, &q, &d, nqb, max_docs, max_tokens, merge_block, device_k,
                      merge_block_topk, &topk, &prog, &stats, &err);
    ms_progress_end(&prog);
    if (rc != MS_OK) {
        ms_report(&err);
        goto free_topk;
    }
    ms_topk_finish(&topk);
    if ((rc = ms_mpi_gather_topk(&topk, in.k, d.n_rows, &err)) != MS_OK) {
        if (err.msg[0]) /* else another rank failed and said why */
            ms_report(&err);
        goto free_topk;
    }
    if (ms_mpi_rank() > 0)
        goto free_topk;
    if (fmt == MS_FMT_NPY || fmt == MS_FMT_H5)
        rc = ms_topk_write_arrays(in.out_path, fmt, &topk, &q.ids, &err);
    else
        rc = ms_run_write(w, fmt, &topk, &q.ids, &d.ids, in.tag, &err);
    if ((rc = ms_output_finish(&w, rc, &err)) == MS_OK && ms_global.verbose) {
        const double total = ms_now() - t0;
        fprintf(stderr,
                "maxsim: search: %llu queries x %llu documents in %llu blocks (%llu queries, "
                "%llu documents, %llu tokens at most): read %.3f s (waited %.3f s), kernels "
                "%.3f s, total %.3f s, %.0f documents/s\n",
                (unsigned long long)q.n_rows, (unsigned long long)shard_rows,
                (unsigned long long)stats.blocks, (unsigned long long)nqb,
                (unsigned long long)max_docs, (unsigned long long)max_tokens, stats.read_s,
                stats.wait_s, stats.kernel_s, total, total > 0 ? (double)shard_rows / total : 0.0);
        if (stats.topk_blocks)
            fprintf(stderr,
                    "maxsim: search: top-k on the device: %llu of %llu blocks, %llu scores a "
                    "query and block read back\n",
                    (unsigned long long)stats.topk_blocks, (unsigned long long)stats.blocks,
                    (unsigned long long)topk.k);
        else if (!device_topk)
            fprintf(stderr, "maxsim: search: top-k on the host: every score read back (%s)\n",
                    topk_env < 0 ? "a CPU device; MAXSIM_DEVICE_TOPK=1 selects on it"
                                 : "MAXSIM_DEVICE_TOPK=0");
        else if (topk.k > MS_TOPK_CL_MAX_K)
            fprintf(stderr,
                    "maxsim: search: top-k on the host: every score read back (k above %u)\n",
                    MS_TOPK_CL_MAX_K);
        else if (stats.blocks)
            fprintf(stderr, "maxsim: search: top-k on the host: every score read back (the "
                            "device cannot select)\n");
        ms_run_stats_print("search", &stats, total);
    }
free_topk:
    ms_topk_release(&topk);
close_device:
    ms_devices_close(&devs);
close_output:
    ms_devset_cancel(&start); /* nothing left there once finished */
    ms_wfile_abort(w);
    ms_src_close(&q);
    ms_src_close(&d);
    return rc;
}
