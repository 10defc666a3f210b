/*
 * out.h - writing results: output files that appear whole or not at all,
 * optionally zstd-compressed, and the run formats of man/maxsim.1.
 *
 * A named output is a struct ms_tempfile (tempfile.h): ms_wfile_commit()
 * puts it in place, ms_wfile_abort() removes it. So a failed run leaves no
 * partial output file.
 */
#ifndef MS_OUT_H
#define MS_OUT_H

#include <stdint.h>
#include <stdio.h>

#include "emb.h"
#include "err.h"
#include "run.h"
#include "topk.h"

enum ms_fmt {
    MS_FMT_TREC,
    MS_FMT_TSV,
    MS_FMT_NPY,
    MS_FMT_H5,
};
#define MS_FMT_TEXT (1u << MS_FMT_TREC | 1u << MS_FMT_TSV)
#define MS_FMT_ANY  (MS_FMT_TEXT | 1u << MS_FMT_NPY | 1u << MS_FMT_H5)

/* Pick the format: the suffix of the output's name picks it (.trec .tsv
 * .npy .h5 .hdf5, each text one optionally + .zst), --format (may be NULL)
 * overrides a name without one (.run, .txt, /dev/stdout), and a
 * contradiction between the two is an error, as is a format outside
 * `allowed` (a mask of 1 << MS_FMT_*). dflt is for neither. *zst is set for
 * a .zst text output. */
int ms_fmt_resolve(const char *path, const char *format, unsigned allowed, enum ms_fmt dflt,
                   enum ms_fmt *fmt, int *zst, struct ms_err *err);
const char *ms_fmt_name(enum ms_fmt fmt);

struct ms_wfile;

/* Open an output given by -o (tempfile.h says how each kind of path is
 * written; flags are its MS_TEMPFILE_*): path NULL or "-" is stdout. */
int ms_wfile_open(struct ms_wfile **w, const char *path, int zst, int flags, struct ms_err *err);
int ms_wfile_write(struct ms_wfile *w, const void *buf, size_t len, struct ms_err *err);
/* The file descriptor of a plain (uncompressed, not stdout) output, for pwrite. */
int ms_wfile_fd(const struct ms_wfile *w);
/* The name being written (the temporary; for HDF5 to create), NULL for stdout. */
const char *ms_wfile_path(const struct ms_wfile *w);
/* Finish: end the zstd frame, flush, close and rename into place. Frees w. */
int ms_wfile_commit(struct ms_wfile *w, struct ms_err *err);
/* Give up: remove the temporary file. Frees w. NULL is fine. */
void ms_wfile_abort(struct ms_wfile *w);

/* %.9g of x as snprintf writes it (faster), NUL-terminated: its length; out holds 32 bytes. */
size_t ms_format_g9(char *out, float x);

/* Write one run line: TREC `QID Q0 DOCID RANK SCORE TAG` or TSV
 * `QID<TAB>DOCID<TAB>RANK<TAB>SCORE`, the score with 9 significant digits. */
int ms_run_line(struct ms_wfile *w, enum ms_fmt fmt, const char *qid, const char *did,
                uint64_t rank, float score, const char *tag, struct ms_err *err);
/* Write the run of a finished top-k as TREC or TSV lines. */
int ms_run_write(struct ms_wfile *w, enum ms_fmt fmt, const struct ms_topk *t,
                 const struct ms_ids *qids, const struct ms_ids *dids, const char *tag,
                 struct ms_err *err);

/* Write ranked candidates (ms_cands_sort_ranked) as run lines, the best k
 * of each query, ranks from 1. */
int ms_cands_write(struct ms_wfile *w, enum ms_fmt fmt, const struct ms_cand *c, uint64_t n,
                   uint64_t k, const struct ms_ids *qids, const struct ms_ids *dids,
                   const char *tag, struct ms_err *err);

/* The bytes of a .npy v1.0 header for a C-order array ("<f4", "<i8"), padded
 * to 64 bytes; returns its length (<= 256), buf holds at least 256 bytes. */
size_t ms_npy_header(char *buf, const char *descr, int rank, const uint64_t *shape);

/* Write scores [nq, k] float32 and indices [nq, k] int64 (row numbers; -1
 * and NaN where a query has fewer than k results) as OUT.scores.npy and
 * OUT.indices.npy (OUT.npy given), or as datasets of one .h5 file (with the
 * query ids too). */
/* Try the file(s) that ms_topk_write_arrays() will write, so that an unusable
 * -o fails before any work: MS_OK or an error naming the option. */
int ms_output_try(const char *path, enum ms_fmt fmt, struct ms_err *err);
int ms_topk_write_arrays(const char *path, enum ms_fmt fmt, const struct ms_topk *t,
                         const struct ms_ids *qids, struct ms_err *err);

#endif
