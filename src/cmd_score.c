/*
 * cmd_score.c - `maxsim score`: the full [queries, documents] score matrix.
 *
 * The corpus streams through in blocks as in search; each block's scores are
 * a column block of the matrix, written in place: by offset into a .npy
 * file, by hyperslab into an .h5 dataset, or into a scratch file from which
 * TSV lines (query by query, documents in order) are printed at the end.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd.h"
#include "cmd_common.h"
#include "h5.h"
#include "maxsim.h"
#include "out.h"
#include "stream.h"
#include "tempfile.h"

static const char usage_text[] =
    "usage: maxsim score -q <queries> -d <docs> [--normalize] [-o <out>]\n"
    "                    [--format (tsv | npy | h5)]\n"
    "                    [--query-lengths <file.npy>] [--doc-lengths <file.npy>]\n"
    "                    [--query-ids <file>] [--doc-ids <file>]\n"
    "                    [--chunk-docs <n>] [--query-batch <n>] [--progress]\n"
    "                    [--precision (exact | tf32 | f16 | f8 | int8)]\n"
    "\n"
    "The MaxSim score of every query against every document.\n"
    "\n"
    "  -q, --queries <file>     query embeddings (.npy, .npy.zst, .h5[:/group])\n"
    "  -d, --docs <file>        document embeddings (same formats)\n"
    "  --normalize              L2-normalize every token before scoring\n"
    "  --precision <p>          exact (default), tf32 (float32 inputs rounded to tf32 on NVIDIA\n"
    "                           tensor cores, cc >= 8.0; elsewhere exact, with a warning),\n"
    "                           f16 (float32 inputs rounded to float16), f8 (e4m3 on NVIDIA\n"
    "                           tensor cores, cc >= 8.9) or int8 (scaled int8 codes on NVIDIA\n"
    "                           tensor cores, cc >= 8.0)\n"
    "  -o, --output <file>      OUT.npy or OUT.h5 (dataset 'scores' [queries, docs]\n"
    "                           float32), or OUT.tsv[.zst]; default TSV on stdout\n"
    "  --format <fmt>           tsv, npy or h5 (default: from the suffix)\n"
    "  --query-lengths <file>   query row lengths (1-D integer .npy)\n"
    "  --doc-lengths <file>     document row lengths (1-D integer .npy)\n"
    "  --query-ids <file>       query ids, one per line (for TSV)\n"
    "  --doc-ids <file>         document ids, one per line (for TSV)\n"
    "  --chunk-docs <n>         documents scored per block (default: from device memory)\n"
    "  --query-batch <n>        queries scored together (default: all that fit)\n"
    "  --progress               show progress even when stderr is not a terminal\n"
    "  -h, --help               this help\n";

/* Where column blocks of the [nq, nd] matrix go. */
struct sink {
    enum ms_fmt fmt;
    uint64_t nq, nd;
    int fd;            /* npy output or TSV scratch file */
    uint64_t data_off; /* bytes before the matrix in fd */
    const char *name;  /* for messages */
    struct ms_h5_out *h5;
    int h5_set;         /* the 'scores' dataset */
    int threads;        /* writing a block's rows */
    struct ms_wmap map; /* npy: the file mapped for writing in place (map.base NULL: pwrite) */
    int mapped;         /* it was (-v) */
    double write_s;     /* time spent writing blocks (-v) */
    /* Adjacent blocks gathered into a panel of columns [d0, d0 + n) of queries [q0, q0 + nq)
     * before they are written: a block of 1,900 documents makes 7.6 KB pieces of rows, and
     * 53,000 such writes (a [1,000 x 100,000] matrix) cost more than the kernels. */
    float *panel;
    uint64_t panel_cap, panel_rows; /* columns, rows (queries of a batch) */
    uint64_t panel_q0, panel_nq, panel_d0, panel_n;
};

/* Rows [q0, q0 + nq) x columns [d0, d0 + n) from scores (row stride ld) into the file. */
static int write_rows(struct sink *s, uint64_t q0, uint64_t nq, uint64_t d0, uint64_t n,
                      const float *scores, uint64_t ld, struct ms_err *err)
{
    const double t0 = ms_now();
    const uint64_t off = s->data_off + (q0 * s->nd + d0) * sizeof(float);
    if (s->map.base)
        ms_wmap_copy_rows(&s->map, scores, n * sizeof(float), ld * sizeof(float), nq, off,
                          s->nd * sizeof(float), s->threads);
    else if (ms_pwrite_rows(s->fd, scores, n * sizeof(float), ld * sizeof(float), nq, (off_t)off,
                            (off_t)(s->nd * sizeof(float)), s->threads) != 0)
        return ms_err_set(err, MS_ERR_RUNTIME, "cannot write to '%s': %s", s->name,
                          strerror(errno));
    s->write_s += ms_now() - t0;
    return MS_OK;
}

/* The .npy file at its full size before any score is written. Where the file system can,
 * its blocks are allocated now, in one call, while the device starts: rows written later into
 * a sparse file allocate blocks write by write (ext4: 400 MB of row pieces at 1.6 GB/s sparse
 * against 2.2 GB/s allocated), and a full disk fails here, before any scoring. Elsewhere
 * (fallocate unsupported) the file is extended sparse. 1: allocated, 0: sparse, -1: errno. */
static int reserve(int fd, uint64_t size)
{
#ifdef __linux__
    if (fallocate(fd, 0, 0, (off_t)size) == 0)
        return 1;
    if (errno != EOPNOTSUPP && errno != ENOSYS && errno != EINVAL)
        return -1;
#endif
    return ftruncate(fd, (off_t)size) == 0 ? 0 : -1;
}

/* Whether an allocated .npy output is written through a mapping (tempfile.h, ms_wmap):
 * MAXSIM_OUTPUT_MAP=0 keeps pwrite, for comparison. */
static int map_wanted(void)
{
    const char *v = getenv("MAXSIM_OUTPUT_MAP");
    return !v || strcmp(v, "0") != 0;
}

static int flush_panel(struct sink *s, struct ms_err *err)
{
    const uint64_t n = s->panel_n;
    s->panel_n = 0;
    return n ? write_rows(s, s->panel_q0, s->panel_nq, s->panel_d0, n, s->panel, s->panel_cap, err)
             : MS_OK;
}

static int put_block(void *ctx, uint64_t q0, uint64_t nq, const float *scores, uint64_t ld,
                     const struct ms_emb *block, struct ms_err *err)
{
    struct sink *s = ctx;
    const uint64_t n = block->n_rows, d0 = block->first_row;

    if (s->fmt == MS_FMT_H5)
        return ms_h5_out_write(s->h5, s->h5_set, q0, d0, nq, n, scores, ld, err);
    /* a block that does not continue the panel (another query batch, or blocks finishing out
     * of order on several devices) or does not fit in it: the panel goes first */
    if (s->panel_n && (q0 != s->panel_q0 || nq != s->panel_nq || d0 != s->panel_d0 + s->panel_n ||
                       s->panel_n + n > s->panel_cap)) {
        const int rc = flush_panel(s, err);
        if (rc != MS_OK)
            return rc;
    }
    if (!s->panel || n > s->panel_cap || nq > s->panel_rows)
        return write_rows(s, q0, nq, d0, n, scores, ld, err);
    if (!s->panel_n) {
        s->panel_q0 = q0;
        s->panel_nq = nq;
        s->panel_d0 = d0;
    }
    for (uint64_t i = 0; i < nq; i++)
        memcpy(s->panel + i * s->panel_cap + s->panel_n, scores + i * ld, n * sizeof(float));
    s->panel_n += n;
    return MS_OK;
}

/* Print the scratch matrix as TSV lines: QID, DOCID, SCORE. */
static int write_tsv(const struct sink *s, struct ms_wfile *w, const struct ms_ids *qids,
                     const struct ms_ids *dids, struct ms_err *err)
{
    float *row = ms_malloc(s->nd * sizeof *row + 1, err);
    char line[8192], qb[24], db[24];
    int rc = row ? MS_OK : err->status;

    for (uint64_t q = 0; q < s->nq && rc == MS_OK; q++) {
        const size_t len = s->nd * sizeof *row;
        if (pread(s->fd, row, len, (off_t)(q * len)) != (ssize_t)len) {
            rc = ms_err_set(err, MS_ERR_RUNTIME, "cannot read the scratch file: %s",
                            strerror(errno));
            break;
        }
        const char *qid = ms_ids_get(qids, q, qb);
        const size_t lq = strlen(qid);
        for (uint64_t j = 0; j < s->nd && rc == MS_OK; j++) {
            /* "%s\t%s\t%.9g\n" by hand: snprintf's %.9g is most of a line's cost */
            char num[32];
            const char *did = ms_ids_get(dids, j, db);
            const size_t ld = strlen(did), ln = ms_format_g9(num, row[j]), n = lq + ld + ln + 3;
            if (n >= sizeof line) {
                rc = ms_err_set(err, MS_ERR_INPUT, "id too long for a TSV line (query '%s')", qid);
                break;
            }
            memcpy(line, qid, lq);
            line[lq] = '\t';
            memcpy(line + lq + 1, did, ld);
            line[lq + 1 + ld] = '\t';
            memcpy(line + lq + 2 + ld, num, ln);
            line[n - 1] = '\n';
            rc = ms_wfile_write(w, line, n, err);
        }
    }
    free(row);
    return rc;
}

int cmd_score(int argc, char **argv)
{
    static const struct option longopts[] = {
        MS_INPUTS_LONGOPTS,
        { "output", required_argument, NULL, 'o' },
        { "format", required_argument, NULL, OPT_FORMAT },
        MS_GLOBAL_LONGOPTS,
        { NULL, 0, NULL, 0 },
    };
    static const struct ms_optspec spec = { "score", ":q:d:o:hv", longopts, usage_text, 0 };
    struct ms_inputs_opts in = { 0 };
    uint64_t nqb, max_docs, max_tokens;
    struct ms_run_stats stats = { 0 };
    struct sink sink = { 0 };
    struct ms_src q, d;
    struct ms_devset devs;
    struct ms_devset_start start;
    struct ms_progress prog;
    struct ms_wfile *w = NULL;
    FILE *scratch = NULL;
    struct ms_err err;
    int zst, c, rc, status;

    while ((c = ms_getopt(&spec, argc, argv, &status)) != 0)
        if (ms_inputs_option("score", &in, c, optarg) == 2)
            return MS_ERR_INPUT;
    if (status >= 0)
        return status;
    if (ms_fmt_resolve(in.out_path, in.format,
                       1u << MS_FMT_TSV | 1u << MS_FMT_NPY | 1u << MS_FMT_H5, MS_FMT_TSV, &sink.fmt,
                       &zst, &err) != MS_OK)
        return ms_report(&err);
    /* Open the destination before reading any input, so an unusable path
     * fails at once. .npy and HDF5 are written by offset: they need a
     * seekable file (a scratch file when -o names a device or a FIFO). */
    const int seekable = sink.fmt != MS_FMT_TSV ? MS_TEMPFILE_SEEKABLE : 0;
    if (ms_wfile_open(&w, in.out_path, sink.fmt == MS_FMT_TSV && zst, seekable, &err) != MS_OK)
        return ms_report(&err);
    /* the device starts while the inputs are opened and the output laid out */
    ms_devices_start(&start, 0);
    if ((rc = ms_inputs_open("score", &in, &q, &d)) != MS_OK) {
        ms_devset_cancel(&start);
        ms_wfile_abort(w);
        return rc;
    }
    sink.nq = q.n_rows;
    sink.nd = d.n_rows;
    sink.threads = d.threads > 0 ? d.threads : ms_read_threads_default();
    sink.name = in.out_path ? in.out_path : "standard output";
    if (sink.fmt == MS_FMT_H5) {
        if ((rc = ms_h5_out_create(&sink.h5, ms_wfile_path(w), &err)) != MS_OK ||
            (rc = sink.h5_set = ms_h5_out_dataset(sink.h5, "scores", 0, sink.nq, sink.nd, &err)) <
                0) {
            rc = ms_report(&err);
            goto close_output;
        }
        rc = MS_OK;
    } else if (sink.fmt == MS_FMT_NPY) {
        char hdr[256];
        const uint64_t shape[2] = { sink.nq, sink.nd };
        const size_t hlen = ms_npy_header(hdr, "<f4", 2, shape);
        sink.fd = ms_wfile_fd(w);
        sink.data_off = hlen;
        const uint64_t size = hlen + sink.nq * sink.nd * sizeof(float);
        int allocated = 0;
        if (ms_pwrite_all(sink.fd, hdr, hlen, 0) != 0 || (allocated = reserve(sink.fd, size)) < 0) {
            rc = errno == ENOSPC
                     ? ms_fail(MS_ERR_RUNTIME, "cannot write to '%s': no room for its %llu bytes",
                               in.out_path, (unsigned long long)size)
                     : ms_fail(MS_ERR_RUNTIME, "cannot write to '%s': %s", in.out_path,
                               strerror(errno));
            goto close_output;
        }
        /* its pages faulted in on threads while the device starts; pwrite where it cannot */
        if (allocated && map_wanted() && sink.nq * sink.nd > 0 &&
            ms_wmap_open(&sink.map, sink.fd, size, sink.threads < 8 ? sink.threads : 8) == 0)
            sink.mapped = 1;
    } else if (!(scratch = tmpfile())) {
        rc = ms_fail(MS_ERR_RUNTIME, "cannot create a scratch file: %s", strerror(errno));
        goto close_output;
    } else {
        sink.fd = fileno(scratch);
        sink.name = "the scratch file";
    }
    if ((rc = ms_devices_finish(&start, &devs)) != MS_OK)
        goto close_output;
    ms_plan_blocks(devs.cl, &in, &q, &d, &nqb, &max_docs, &max_tokens);
    ms_progress_init(&prog, in.progress, "score",
                     d.n_rows * ((q.n_rows + nqb - 1) / (nqb ? nqb : 1)));
    if (sink.fmt != MS_FMT_H5 &&
        !sink.map.base) { /* 64 MiB of panel, when it holds more than a block */
        const uint64_t cap = (64ull << 20) / (sizeof(float) * nqb);
        if (cap > max_docs && (sink.panel = malloc(cap * nqb * sizeof(float))) != NULL) {
            sink.panel_cap = cap;
            sink.panel_rows = nqb;
        }
    }
    const double t0 = ms_now();
    rc = ms_score_all(&devs, &in, &q, &d, nqb, max_docs, max_tokens, put_block, 0, NULL, &sink,
                      &prog, &stats, &err);
    if (rc == MS_OK)
        rc = flush_panel(&sink, &err);
    ms_progress_end(&prog);
    if (rc == MS_OK && sink.fmt == MS_FMT_TSV)
        rc = write_tsv(&sink, w, &q.ids, &d.ids, &err);
    if (rc == MS_OK && sink.h5) {
        rc = ms_h5_out_close(sink.h5, &err);
        sink.h5 = NULL;
    }
    const double t_unmap = ms_now();
    ms_wmap_close(&sink.map); /* the stores are in the page cache: the file is whole */
    sink.write_s += ms_now() - t_unmap;
    if ((rc = ms_output_finish(&w, rc, &err)) == MS_OK && ms_global.verbose) {
        fprintf(stderr, "maxsim: score: %llu x %llu in %llu blocks: read %.3f s, kernels %.3f s\n",
                (unsigned long long)q.n_rows, (unsigned long long)d.n_rows,
                (unsigned long long)stats.blocks, stats.read_s, stats.kernel_s);
        ms_run_stats_print("score", &stats, ms_now() - t0);
        if (sink.fmt == MS_FMT_NPY || sink.fmt == MS_FMT_TSV)
            fprintf(stderr, "maxsim: score: host: blocks written in %.3f s (%d threads, %s)\n",
                    sink.write_s, sink.threads,
                    sink.mapped ? "copies into the mapped file, its unmapping included" : "pwrite");
    }
    ms_devices_close(&devs);
close_output:
    ms_wmap_close(&sink.map);
    free(sink.panel);
    ms_devset_cancel(&start); /* nothing left there once finished */
    if (sink.h5)
        ms_h5_out_abort(sink.h5);
    ms_wfile_abort(w);
    if (scratch)
        fclose(scratch);
    ms_src_close(&q);
    ms_src_close(&d);
    return rc;
}
