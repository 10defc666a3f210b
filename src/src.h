/*
 * src.h - an opened embeddings input that delivers any range of rows.
 *
 * A user names an input as PATH.npy, PATH.npy.zst, PATH.h5 or PATH.h5:/group
 * (see man/maxsim.1). ms_src_open() picks the format backend from the name,
 * applies lengths and ids (from the file or from --*-lengths / --*-ids
 * files), validates everything it can without reading the token data, and
 * keeps the per-row lengths. ms_src_read() then delivers rows [first,
 * first+n) as a struct ms_emb, reading only those rows from disk, so a
 * corpus larger than memory is streamed block by block.
 *
 * Storage positions: a backend stores tokens either flat ([T, dim], the
 * token of row r at starts[r] + t) or padded ([N, L, dim], at r * L + t).
 * A backend only knows how to read a span of consecutive storage tokens;
 * this layer turns rows into spans, compacts padded rows and checks values.
 */
#ifndef MS_SRC_H
#define MS_SRC_H

#include <stdint.h>

#include "emb.h"
#include "err.h"

enum ms_layout {
    MS_LAYOUT_FLAT,   /* rank 2: [T, dim], rows back to back */
    MS_LAYOUT_PADDED, /* rank 3: [N, L, dim], row r's valid tokens first */
};

/* What a format backend offers once opened. */
struct ms_backend_ops {
    /* Read tokens [first, first + n) in storage order into dst, as dtype
     * elements in host byte order. For padded storage, first = r * L + t.
     * Sequential-only backends (zstd) accept only first >= the end of the
     * previous read and skip forward by decompressing. */
    int (*read_span)(void *impl, uint64_t first, uint64_t n, void *dst, struct ms_err *err);
    void (*close)(void *impl);
    /* Optional: threads a backend may use inside one read_span (zstd frames, zframes.c). */
    void (*set_threads)(void *impl, int threads);
};

/* What a format backend reports about a file before lengths are applied. */
struct ms_raw {
    enum ms_dtype dtype;
    int rank;            /* 2 or 3 (anything else is refused by the backend) */
    uint64_t shape[3];   /* [T, dim] or [N, L, dim] */
    uint64_t data_bytes; /* bytes of embedding data on disk (compressed size for .zst) */
    int sequential_only; /* reads must go forward (zstd streams) */
    int concurrent;      /* read_span may run on several threads at once (pread) */
    char where[256];     /* how messages name the data, e.g. "'d.h5' dataset '/g/embeddings'" */
    int64_t *lengths;    /* from the file itself (HDF5 'lengths'), or NULL; owned */
    uint64_t n_lengths;
    char lengths_where[256]; /* how messages name that lengths dataset */
    struct ms_ids ids;       /* from the file itself (HDF5 'ids'); n == 0 if none */
    const struct ms_backend_ops *ops;
    void *impl;
};

/* Format backends (npy.c, h5.c). Each fills *raw or returns an error that
 * names the file (and dataset) and says what was expected and found. */
int ms_npy_open(const char *path, struct ms_raw *raw, struct ms_err *err);
int ms_npy_zst_open(const char *path, struct ms_raw *raw, struct ms_err *err);
int ms_h5_open(const char *file, const char *group, struct ms_raw *raw, struct ms_err *err);

/* A 1-D integer .npy (or .npy.zst) file: lengths given with --*-lengths.
 * Accepts every little-endian (or byte-order-free) integer type numpy writes. */
int ms_npy_read_ints(const char *path, int64_t **values, uint64_t *n, struct ms_err *err);

struct ms_src_opts {
    const char *lengths_path; /* --query-lengths / --doc-lengths, or NULL */
    const char *ids_path;     /* --query-ids / --doc-ids, or NULL */
    const char *role;         /* "queries" or "documents", for messages */
};

enum ms_format {
    MS_FORMAT_NPY,
    MS_FORMAT_NPY_ZST,
    MS_FORMAT_H5,
};

struct ms_src {
    char *spec;  /* as the user wrote it; owned */
    char *file;  /* the file part; owned */
    char *group; /* HDF5 group ("/" by default), NULL otherwise; owned */
    enum ms_format format;
    enum ms_layout layout;
    enum ms_dtype dtype;
    uint32_t dim;
    uint64_t n_rows;
    uint64_t padded_len; /* L for padded storage, 0 for flat */
    uint64_t n_tokens;   /* valid tokens over all rows */
    uint64_t *starts;    /* [n_rows + 1] prefix sums of the row lengths; owned */
    uint64_t file_bytes; /* size of the file(s) on disk */
    uint64_t data_bytes; /* bytes of embedding data */
    int sequential_only;
    struct ms_ids ids; /* n == 0: row numbers are the ids */
    struct ms_raw raw; /* the backend; owned */
    uint64_t next_row; /* for sequential-only sources: where the next read must start */
    /* Reader threads for one read (0: ms_read_threads_default()); the command layer sets it
     * from MAXSIM_READ_THREADS. Pieces smaller than piece_bytes (0: 4 MiB) are not split
     * further: tests make it small to exercise the splitting on small files. */
    int threads;
    uint64_t piece_bytes;
};

/* pread(2) until n bytes are read or the file ends (*got says how many came), retrying
 * interrupted calls; what the format backends read files with. Returns 0, or -1 with errno
 * set on a read error. */
int ms_pread_full(int fd, void *dst, size_t n, uint64_t off, size_t *got);

/* min(8, online cores): what one read uses unless told otherwise. */
int ms_read_threads_default(void);

/* Open an input; opts may be NULL. On failure *src is left released. */
int ms_src_open(struct ms_src *src, const char *spec, const struct ms_src_opts *opts,
                struct ms_err *err);
/* Read rows [first, first + n) into out (buffers reused), and check that every
 * value is finite (a NaN or Inf is an MS_ERR_INPUT error naming the first such row and
 * token in row order). Backends that allow it (raw.concurrent) are read by several threads
 * at once, each reading and checking its own contiguous piece; the others are read on the
 * calling thread and checked by several. The result is the same whatever the thread count. */
int ms_src_read(struct ms_src *src, uint64_t first, uint64_t n, struct ms_emb *out,
                struct ms_err *err);
/* Read the given rows (strictly ascending) into out, back to back in that
 * order; out->first_row is rows[0]. Checks values as ms_src_read does. */
int ms_src_read_rows(struct ms_src *src, const uint64_t *rows, uint64_t n, struct ms_emb *out,
                     struct ms_err *err);
static inline uint64_t ms_src_row_len(const struct ms_src *src, uint64_t r)
{
    return src->starts[r + 1] - src->starts[r];
}
void ms_src_close(struct ms_src *src);

#endif
