/*
 * cmd_index.c - `maxsim index`: build a PLAID index of a corpus (fast-plaid
 * layout by default, NextPlaid with --layout next-plaid) that `maxsim
 * plaid`, fast-plaid and NextPlaid search; or with --append add documents
 * to an existing index with its centroids (the documents get the next
 * positions, as fast-plaid's update() without new centroids).
 *
 * Defaults are fast-plaid create()'s: nbits 4, 4 k-means iterations, its
 * sample size and centroid count, seed 42, 25,000 documents a chunk file.
 * Everything is validated before the device is opened; the index appears
 * whole (a temporary directory renamed into place) or not at all. The
 * pipeline and its determinism are described in index.h / index.c.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "cmd.h"
#include "cmd_common.h"
#include "index.h"
#include "plaid.h"
#include "stream.h"

static const char usage_text[] =
    "usage: maxsim index -d <docs> -o <index-dir> [--nbits (1 | 2 | 4 | 8)]\n"
    "                    [--centroids <n>] [--kmeans-iters <n>] [--sample <n>] [--seed <s>]\n"
    "                    [--layout (fast-plaid | next-plaid)] [--append]\n"
    "                    [--doc-lengths <file.npy>] [--docs-per-chunk <n>]\n"
    "                    [--chunk-docs <n>] [--chunk-tokens <n>] [--progress]\n"
    "\n"
    "Build a PLAID index of a corpus on the device (k-means centroids, residual\n"
    "compression, inverted lists), readable by `maxsim plaid` and fast-plaid; or\n"
    "with --append add documents to an existing index with its centroids.\n"
    "\n"
    "  -d, --docs <file>          document embeddings (.npy, .npy.zst, .h5[:/group])\n"
    "  -o, --output <dir>         the index directory: new, empty, or an index to\n"
    "                             replace (with --append: the index to add to)\n"
    "  --nbits <n>                bits per residual dimension: 1, 2, 4 (default) or 8\n"
    "  --centroids <n>            number of centroids (default: fast-plaid's\n"
    "                             2^floor(log2(16 sqrt(tokens))), tokens estimated\n"
    "                             from the sample)\n"
    "  --kmeans-iters <n>         k-means iterations (default 4)\n"
    "  --sample <n>               documents sampled for k-means and the bucket\n"
    "                             quantiles (default 1 + 16 sqrt(120 documents))\n"
    "  --seed <s>                 seed of the sample and k-means start (default 42)\n"
    "  --layout <name>            fast-plaid (default: float16 centroids) or\n"
    "                             next-plaid (float32 centroids)\n"
    "  --append                   add the documents to the index at -o\n"
    "  --doc-lengths <file>       document row lengths (1-D integer .npy)\n"
    "  --docs-per-chunk <n>       documents per chunk file (default 25000)\n"
    "  --chunk-docs <n>           read and encode at most n documents at a time\n"
    "  --chunk-tokens <n>         read and encode at most n tokens at a time\n"
    "                             (default 524288); the index is the same for any\n"
    "  --progress                 show progress even when stderr is not a terminal\n"
    "  -h, --help                 this help\n";

enum {
    OPT_NBITS = 4000,
    OPT_CENTROIDS,
    OPT_ITERS,
    OPT_SAMPLE,
    OPT_SEED,
    OPT_LAYOUT,
    OPT_APPEND,
    OPT_PER_CHUNK,
    OPT_CHUNK_TOKENS,
};

struct progress_ctx {
    struct ms_progress prog;
    int force, started;
};

/* The progress line covers the encoding pass (tokens), the long one. */
static void on_progress(void *ctx, const char *phase, uint64_t done, uint64_t total)
{
    struct progress_ctx *p = ctx;
    if (strcmp(phase, "encode") != 0)
        return;
    if (!p->started) {
        ms_progress_init(&p->prog, p->force, "index", total);
        p->prog.unit = "tokens";
        p->started = 1;
    }
    ms_progress_add(&p->prog, done - p->prog.done);
}

/* This process's own peak: VmHWM of its memory map. ru_maxrss also takes
 * in the high-water mark of a parent that vfork'ed it (Linux carries the
 * old map's peak across exec), which made a benchmark script's memory
 * look like maxsim's. */
static double peak_rss_mb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    double kb = -1.0;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmHWM:", 6))
            kb = strtod(line + 6, NULL);
    if (f)
        fclose(f);
    struct rusage ru;
    if (kb < 0.0 && getrusage(RUSAGE_SELF, &ru) == 0)
        kb = (double)ru.ru_maxrss;
    return kb > 0.0 ? kb / 1024.0 : 0.0;
}

int cmd_index(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "docs", required_argument, NULL, 'd' },
        { "output", required_argument, NULL, 'o' },
        { "nbits", required_argument, NULL, OPT_NBITS },
        { "centroids", required_argument, NULL, OPT_CENTROIDS },
        { "kmeans-iters", required_argument, NULL, OPT_ITERS },
        { "sample", required_argument, NULL, OPT_SAMPLE },
        { "seed", required_argument, NULL, OPT_SEED },
        { "layout", required_argument, NULL, OPT_LAYOUT },
        { "append", no_argument, NULL, OPT_APPEND },
        { "doc-lengths", required_argument, NULL, OPT_DOC_LENGTHS },
        { "docs-per-chunk", required_argument, NULL, OPT_PER_CHUNK },
        { "chunk-docs", required_argument, NULL, OPT_CHUNK_DOCS },
        { "chunk-tokens", required_argument, NULL, OPT_CHUNK_TOKENS },
        { "progress", no_argument, NULL, OPT_PROGRESS },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    struct ms_index_opts o = {
        .nbits = 4, .kmeans_iters = 4, .seed = 42, .docs_per_chunk = 25000, .block_tokens = 1u << 19
    };
    struct ms_src_opts dopts = { NULL, NULL, "documents" };
    const char *dpath = NULL, *out = NULL;
    uint64_t v;
    int append = 0, c, rc;
    const char *build_only = NULL; /* an option --append does not take */
    struct progress_ctx pc = { 0 };
    struct ms_index_stats st;
    struct ms_plaid idx;
    struct ms_src d, d2;
    struct ms_cl cl;
    struct ms_err err;

    while ((c = getopt_long(argc, argv, ":d:o:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'd': dpath = optarg; break;
        case 'o': out = optarg; break;
        case OPT_NBITS:
            build_only = "--nbits";
            if (ms_parse_u64("index", "--nbits", optarg, 1, &v))
                return MS_ERR_INPUT;
            if (v != 1 && v != 2 && v != 4 && v != 8)
                return ms_usage_error("index", "--nbits takes 1, 2, 4 or 8, got '%s'", optarg);
            o.nbits = (uint32_t)v;
            break;
        case OPT_CENTROIDS:
            build_only = "--centroids";
            if (ms_parse_u64("index", "--centroids", optarg, 1, &o.centroids))
                return MS_ERR_INPUT;
            break;
        case OPT_ITERS:
            build_only = "--kmeans-iters";
            if (ms_parse_u64("index", "--kmeans-iters", optarg, 0, &v))
                return MS_ERR_INPUT;
            if (v > 1000)
                return ms_usage_error("index", "--kmeans-iters takes at most 1000, got '%s'",
                                      optarg);
            o.kmeans_iters = (uint32_t)v;
            break;
        case OPT_SAMPLE:
            build_only = "--sample";
            if (ms_parse_u64("index", "--sample", optarg, 1, &o.sample_docs))
                return MS_ERR_INPUT;
            break;
        case OPT_SEED:
            build_only = "--seed";
            if (ms_parse_u64("index", "--seed", optarg, 0, &o.seed))
                return MS_ERR_INPUT;
            break;
        case OPT_LAYOUT:
            build_only = "--layout";
            if (strcmp(optarg, "fast-plaid") == 0)
                o.next_plaid = 0;
            else if (strcmp(optarg, "next-plaid") == 0)
                o.next_plaid = 1;
            else
                return ms_usage_error("index", "--layout takes fast-plaid or next-plaid, got '%s'",
                                      optarg);
            break;
        case OPT_APPEND: append = 1; break;
        case OPT_DOC_LENGTHS: dopts.lengths_path = optarg; break;
        case OPT_PER_CHUNK:
            if (ms_parse_u64("index", "--docs-per-chunk", optarg, 1, &o.docs_per_chunk))
                return MS_ERR_INPUT;
            break;
        case OPT_CHUNK_DOCS:
            if (ms_parse_u64("index", "--chunk-docs", optarg, 1, &o.block_docs))
                return MS_ERR_INPUT;
            break;
        case OPT_CHUNK_TOKENS:
            if (ms_parse_u64("index", "--chunk-tokens", optarg, 1, &o.block_tokens))
                return MS_ERR_INPUT;
            break;
        case OPT_PROGRESS: pc.force = 1; break;
        case 'h': fputs(usage_text, stdout); return ms_close_stdout();
        case ':': return ms_usage_error("index", "option '%s' needs a value", argv[optind - 1]);
        default: return ms_usage_error("index", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return ms_usage_error("index", "unexpected argument '%s'", argv[optind]);
    if (!dpath)
        return ms_usage_error("index", "no documents (-d DOCS)");
    if (!out)
        return ms_usage_error("index", "no index directory (-o INDEX_DIR)");
    /* variants for timing, the index the same with any: MAXSIM_INDEX_KMEANS_BLOCK points
     * per k-means launch, MAXSIM_INDEX_OVERLAP=0 the host's work after the device's */
    const char *kb = getenv("MAXSIM_INDEX_KMEANS_BLOCK"), *ov = getenv("MAXSIM_INDEX_OVERLAP");
    if (kb && *kb && ms_parse_u64("index", "MAXSIM_INDEX_KMEANS_BLOCK", kb, 1, &o.kmeans_block))
        return MS_ERR_INPUT;
    o.serial_host = ov && !strcmp(ov, "0");
    if (append && build_only)
        return ms_usage_error("index",
                              "'%s' does not go with --append: the index keeps its own centroids, "
                              "nbits and layout",
                              build_only);

    /* every input check before the device */
    if ((rc = ms_src_open(&d, dpath, &dopts, &err)) != MS_OK)
        return ms_report(&err);
    if (append) {
        if ((rc = ms_plaid_open(&idx, out, &err)) != MS_OK) {
            ms_src_close(&d);
            return ms_report(&err);
        }
    } else if ((rc = ms_index_check_output(out, &err)) != MS_OK) {
        ms_src_close(&d);
        return ms_report(&err);
    }
    if (d.dim % 8 && !append) {
        rc = ms_fail(MS_ERR_INPUT,
                     "%s: dimension %u is not a multiple of 8; expected 8 dimensions a byte "
                     "for the residual codec",
                     dpath, d.dim);
        ms_src_close(&d);
        return rc;
    }
    if ((rc = ms_device_open(&cl)) != MS_OK) {
        if (append)
            ms_plaid_close(&idx);
        ms_src_close(&d);
        return rc;
    }
    const double t0 = ms_now();
    if (append) {
        rc = ms_index_append(&cl, &idx, &d, &o, on_progress, &pc, &st, &err);
        ms_plaid_close(&idx);
    } else if (!d.sequential_only) {
        rc = ms_index_build(&cl, &d, &d, out, &o, on_progress, &pc, &st, &err);
    } else if ((rc = ms_src_open(&d2, dpath, &dopts, &err)) == MS_OK) {
        /* a zstd stream: read once for the sample, once more to encode */
        rc = ms_index_build(&cl, &d, &d2, out, &o, on_progress, &pc, &st, &err);
        ms_src_close(&d2);
    }
    if (pc.started)
        ms_progress_end(&pc.prog);
    if (rc == MS_OK && ms_global.verbose) {
        fprintf(stderr,
                "index: %llu documents, %llu tokens, %llu centroids, %.2f s (sample %.2f, "
                "k-means %.2f, codec %.2f, encode %.2f, ivf %.2f; kernels %.2f)\n",
                (unsigned long long)st.n_docs, (unsigned long long)st.n_tokens,
                (unsigned long long)st.k, ms_now() - t0, st.sample_s, st.kmeans_s, st.codec_s,
                st.encode_s, st.ivf_s, st.kernel_s);
        if (!append)
            fprintf(stderr,
                    "index: k-means: load %.2f s, assign %.2f s, host %.2f s (%s); encode: "
                    "%.2f s waiting for the chunk writer\n",
                    st.kmeans_load_s, st.kmeans_assign_s, st.kmeans_host_s,
                    o.serial_host ? "after the device" : "beside the device", st.encode_wait_s);
        if (!append)
            fprintf(stderr,
                    "index: sample %llu documents, %llu tokens; k-means on %llu points; %llu "
                    "held out for the bucket quantiles\n",
                    (unsigned long long)st.sample_docs, (unsigned long long)st.sample_tokens,
                    (unsigned long long)st.train_points, (unsigned long long)st.heldout);
        if (st.assign_points)
            fprintf(
                stderr,
                "index: assignment %s: %llu of %llu points re-checked (%.2f%%); kernels "
                "%.2f s float16, %.2f s re-check\n",
                st.assign, (unsigned long long)st.rechecked, (unsigned long long)st.assign_points,
                100.0 * (double)st.rechecked / (double)st.assign_points, st.approx_s, st.recheck_s);
        else if (st.assign)
            fprintf(stderr, "index: assignment %s\n", st.assign);
        fprintf(stderr, "index: peak resident memory %.1f MiB, device buffers %.1f MiB\n",
                peak_rss_mb(), (double)st.device_peak / 1048576.0);
    }
    ms_device_close(&cl);
    ms_src_close(&d);
    return rc == MS_OK ? MS_OK : ms_report(&err);
}
