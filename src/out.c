/*
 * out.c - output files written atomically (temp file + rename), streamed
 * through zstd when asked, and the TREC / TSV / .npy / .h5 result formats.
 */
#include "out.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <zstd.h>

#include "h5.h"

struct ms_wfile {
    FILE *f;
    int is_stdout;
    char *path;      /* final name; NULL for stdout */
    char *tmp;       /* temporary name beside it */
    ZSTD_CStream *z; /* non-NULL for a compressed output */
    char *zbuf;
    size_t zcap;
    char buf[1 << 16]; /* text is gathered here, then written in large pieces */
    size_t used;
};

/* A few slots are enough: a command writes at most two outputs at a time. */
static const char *volatile tmp_paths[8];

void ms_tmp_register(const char *path)
{
    for (int i = 0; i < 8; i++)
        if (!tmp_paths[i]) {
            tmp_paths[i] = path;
            return;
        }
}

void ms_tmp_forget(const char *path)
{
    for (int i = 0; i < 8; i++)
        if (tmp_paths[i] == path)
            tmp_paths[i] = NULL;
}

void ms_tmp_remove_all(void)
{
    for (int i = 0; i < 8; i++)
        if (tmp_paths[i])
            unlink(tmp_paths[i]);
}

static int ends_with(const char *s, const char *suffix)
{
    const size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcasecmp(s + n - m, suffix) == 0;
}

const char *ms_fmt_name(enum ms_fmt fmt)
{
    static const char *const names[] = { "trec", "tsv", "npy", "h5" };
    return names[fmt];
}

int ms_fmt_resolve(const char *path, const char *format, enum ms_fmt *fmt, int *zst,
                   struct ms_err *err)
{
    const int to_stdout = !path || strcmp(path, "-") == 0;

    *zst = !to_stdout && (ends_with(path, ".zst") || ends_with(path, ".zstd"));
    if (format) {
        if (strcmp(format, "trec") == 0)
            *fmt = MS_FMT_TREC;
        else if (strcmp(format, "tsv") == 0)
            *fmt = MS_FMT_TSV;
        else if (strcmp(format, "npy") == 0)
            *fmt = MS_FMT_NPY;
        else if (strcmp(format, "h5") == 0)
            *fmt = MS_FMT_H5;
        else
            return ms_err_set(err, MS_ERR_INPUT,
                              "unknown format '%s' (expected trec, tsv, npy or h5)", format);
    } else if (to_stdout) {
        *fmt = MS_FMT_TREC;
    } else {
        char base[4096];
        snprintf(base, sizeof base, "%s", path);
        if (*zst)
            *strrchr(base, '.') = '\0';
        if (ends_with(base, ".tsv"))
            *fmt = MS_FMT_TSV;
        else if (ends_with(base, ".npy"))
            *fmt = MS_FMT_NPY;
        else if (ends_with(base, ".h5") || ends_with(base, ".hdf5"))
            *fmt = MS_FMT_H5;
        else
            *fmt = MS_FMT_TREC; /* .trec, .run, .txt or anything else: a run file */
    }
    if ((*fmt == MS_FMT_NPY || *fmt == MS_FMT_H5) && to_stdout)
        return ms_err_set(err, MS_ERR_INPUT, "%s output needs a file name (-o OUT.%s)",
                          ms_fmt_name(*fmt), ms_fmt_name(*fmt));
    if ((*fmt == MS_FMT_NPY || *fmt == MS_FMT_H5) && *zst)
        return ms_err_set(err, MS_ERR_INPUT,
                          "'%s': only text output (trec, tsv) can be zstd-compressed", path);
    return MS_OK;
}

int ms_wfile_open(struct ms_wfile **out, const char *path, int zst, struct ms_err *err)
{
    struct ms_wfile *w = ms_calloc(1, sizeof *w, err);
    int fd;

    *out = NULL;
    if (!w)
        return err->status;
    if (!path || strcmp(path, "-") == 0) {
        w->f = stdout;
        w->is_stdout = 1;
        *out = w;
        return MS_OK;
    }
    w->path = strdup(path);
    w->tmp = malloc(strlen(path) + 32);
    if (!w->path || !w->tmp) {
        ms_wfile_abort(w);
        return ms_err_set(err, MS_ERR_RUNTIME, "out of memory");
    }
    sprintf(w->tmp, "%s.tmp.%ld", path, (long)getpid());
    fd = open(w->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd >= 0)
        ms_tmp_register(w->tmp);
    if (fd < 0 || !(w->f = fdopen(fd, "wb"))) {
        const int e = errno;
        if (fd >= 0) {
            close(fd);
            unlink(w->tmp);
            ms_tmp_forget(w->tmp);
        }
        free(w->tmp);
        w->tmp = NULL;
        ms_wfile_abort(w);
        /* the user named an output we cannot create: their input, status 2 */
        return ms_err_set(err, MS_ERR_INPUT, "cannot create '%s': %s", path, strerror(e));
    }
    if (zst) {
        w->z = ZSTD_createCStream();
        w->zcap = ZSTD_CStreamOutSize();
        w->zbuf = malloc(w->zcap);
        if (!w->z || !w->zbuf || ZSTD_isError(ZSTD_initCStream(w->z, 3))) {
            ms_wfile_abort(w);
            return ms_err_set(err, MS_ERR_RUNTIME, "cannot start zstd compression for '%s'", path);
        }
    }
    *out = w;
    return MS_OK;
}

int ms_wfile_fd(const struct ms_wfile *w)
{
    return w->is_stdout || w->z ? -1 : fileno(w->f);
}

static int write_raw(struct ms_wfile *w, const void *buf, size_t len, struct ms_err *err)
{
    const char *name = w->path ? w->path : "standard output";

    if (!w->z) {
        if (len && fwrite(buf, 1, len, w->f) != len)
            return ms_err_set(err, MS_ERR_RUNTIME, "cannot write to '%s': %s", name,
                              strerror(errno));
        return MS_OK;
    }
    ZSTD_inBuffer in = { buf, len, 0 };
    while (in.pos < in.size) {
        ZSTD_outBuffer o = { w->zbuf, w->zcap, 0 };
        const size_t r = ZSTD_compressStream(w->z, &o, &in);
        if (ZSTD_isError(r))
            return ms_err_set(err, MS_ERR_RUNTIME, "zstd compression of '%s' failed: %s", name,
                              ZSTD_getErrorName(r));
        if (o.pos && fwrite(w->zbuf, 1, o.pos, w->f) != o.pos)
            return ms_err_set(err, MS_ERR_RUNTIME, "cannot write to '%s': %s", name,
                              strerror(errno));
    }
    return MS_OK;
}

static int flush_buf(struct ms_wfile *w, struct ms_err *err)
{
    const int rc = write_raw(w, w->buf, w->used, err);
    w->used = 0;
    return rc;
}

int ms_wfile_write(struct ms_wfile *w, const void *buf, size_t len, struct ms_err *err)
{
    if (w->used + len > sizeof w->buf) {
        int rc = flush_buf(w, err);
        if (rc != MS_OK)
            return rc;
        if (len > sizeof w->buf)
            return write_raw(w, buf, len, err);
    }
    memcpy(w->buf + w->used, buf, len);
    w->used += len;
    return MS_OK;
}

int ms_wfile_commit(struct ms_wfile *w, struct ms_err *err)
{
    const char *name = w->path ? w->path : "standard output";
    int rc = flush_buf(w, err);

    while (rc == MS_OK && w->z) {
        ZSTD_outBuffer o = { w->zbuf, w->zcap, 0 };
        const size_t left = ZSTD_endStream(w->z, &o);
        if (ZSTD_isError(left))
            rc = ms_err_set(err, MS_ERR_RUNTIME, "zstd compression of '%s' failed: %s", name,
                            ZSTD_getErrorName(left));
        else if (o.pos && fwrite(w->zbuf, 1, o.pos, w->f) != o.pos)
            rc = ms_err_set(err, MS_ERR_RUNTIME, "cannot write to '%s': %s", name, strerror(errno));
        if (left == 0)
            break;
    }
    if (rc == MS_OK && fflush(w->f) != 0)
        rc = ms_err_set(err, MS_ERR_RUNTIME, "cannot write to '%s': %s", name, strerror(errno));
    if (w->is_stdout) {
        free(w);
        return rc;
    }
    if (fclose(w->f) != 0 && rc == MS_OK)
        rc = ms_err_set(err, MS_ERR_RUNTIME, "cannot write to '%s': %s", name, strerror(errno));
    w->f = NULL;
    if (rc == MS_OK && rename(w->tmp, w->path) != 0)
        rc = ms_err_set(err, MS_ERR_RUNTIME, "cannot rename '%s' to '%s': %s", w->tmp, w->path,
                        strerror(errno));
    if (rc != MS_OK) {
        ms_wfile_abort(w);
        return rc;
    }
    ms_tmp_forget(w->tmp);
    ZSTD_freeCStream(w->z);
    free(w->zbuf);
    free(w->path);
    free(w->tmp);
    free(w);
    return MS_OK;
}

void ms_wfile_abort(struct ms_wfile *w)
{
    if (!w)
        return;
    if (w->f && !w->is_stdout)
        fclose(w->f);
    if (w->tmp) {
        unlink(w->tmp);
        ms_tmp_forget(w->tmp);
    }
    ZSTD_freeCStream(w->z);
    free(w->zbuf);
    free(w->path);
    free(w->tmp);
    free(w);
}

int ms_run_line(struct ms_wfile *w, enum ms_fmt fmt, const char *qid, const char *did,
                uint64_t rank, float score, const char *tag, struct ms_err *err)
{
    char line[8192];
    int n;

    /* %.9g: every float32 prints exactly and reads back the same */
    if (fmt == MS_FMT_TSV)
        n = snprintf(line, sizeof line, "%s\t%s\t%llu\t%.9g\n", qid, did, (unsigned long long)rank,
                     (double)score);
    else
        n = snprintf(line, sizeof line, "%s Q0 %s %llu %.9g %s\n", qid, did,
                     (unsigned long long)rank, (double)score, tag);
    if (n < 0 || (size_t)n >= sizeof line)
        return ms_err_set(err, MS_ERR_INPUT, "id too long for a run line (query '%s')", qid);
    return ms_wfile_write(w, line, (size_t)n, err);
}

int ms_run_write(struct ms_wfile *w, enum ms_fmt fmt, const struct ms_topk *t,
                 const struct ms_ids *qids, const struct ms_ids *dids, const char *tag,
                 struct ms_err *err)
{
    char qbuf[24], dbuf[24];

    for (uint64_t q = 0; q < t->n_queries; q++) {
        const char *qid = ms_ids_get(qids, q, qbuf);
        for (uint64_t i = 0; i < t->count[q]; i++) {
            const int rc = ms_run_line(w, fmt, qid, ms_ids_get(dids, t->row[q * t->k + i], dbuf),
                                       i + 1, t->score[q * t->k + i], tag, err);
            if (rc != MS_OK)
                return rc;
        }
    }
    return MS_OK;
}

int ms_cands_write(struct ms_wfile *w, enum ms_fmt fmt, const struct ms_cand *c, uint64_t n,
                   uint64_t k, const struct ms_ids *qids, const struct ms_ids *dids,
                   const char *tag, struct ms_err *err)
{
    char qb[24], db[24];
    uint64_t rank = 0;

    for (uint64_t i = 0; i < n; i++) {
        rank = i > 0 && c[i].q == c[i - 1].q ? rank + 1 : 1;
        if (rank > k)
            continue;
        const int rc = ms_run_line(w, fmt, ms_ids_get(qids, c[i].q, qb),
                                   ms_ids_get(dids, c[i].d, db), rank, c[i].u.score, tag, err);
        if (rc != MS_OK)
            return rc;
    }
    return MS_OK;
}

size_t ms_npy_header(char *buf, const char *descr, int rank, const uint64_t *shape)
{
    char dict[192], dims[128] = "";
    size_t n = 0;

    /* numpy writes (3, 4), and (3,) for one dimension */
    for (int i = 0; i < rank; i++)
        n += (size_t)snprintf(dims + n, sizeof dims - n, "%s%llu", i ? ", " : "",
                              (unsigned long long)shape[i]);
    if (rank == 1)
        snprintf(dims + n, sizeof dims - n, ",");
    n = (size_t)snprintf(dict, sizeof dict,
                         "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }", descr, dims);
    size_t total = 10 + n + 1;
    total = (total + 63) / 64 * 64;
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    buf[8] = (char)((total - 10) & 0xff);
    buf[9] = (char)((total - 10) >> 8);
    memcpy(buf + 10, dict, n);
    memset(buf + 10 + n, ' ', total - 10 - n - 1);
    buf[total - 1] = '\n';
    return total;
}

/* The entry (score or index) of query q at rank i, padded past count. */
static void topk_arrays(const struct ms_topk *t, float *scores, int64_t *indices, uint64_t k)
{
    for (uint64_t q = 0; q < t->n_queries; q++)
        for (uint64_t i = 0; i < k; i++) {
            const int have = i < t->count[q];
            scores[q * k + i] = have ? t->score[q * t->k + i] : NAN;
            indices[q * k + i] = have ? (int64_t)t->row[q * t->k + i] : -1;
        }
}

static int write_npy_file(const char *path, const char *descr, uint64_t rows, uint64_t cols,
                          const void *data, size_t elem, struct ms_err *err)
{
    struct ms_wfile *w;
    char hdr[256];
    const uint64_t shape[2] = { rows, cols };
    const size_t hlen = ms_npy_header(hdr, descr, 2, shape);
    int rc = ms_wfile_open(&w, path, 0, err);

    if (rc != MS_OK)
        return rc;
    if ((rc = ms_wfile_write(w, hdr, hlen, err)) != MS_OK ||
        (rc = ms_wfile_write(w, data, rows * cols * elem, err)) != MS_OK) {
        ms_wfile_abort(w);
        return rc;
    }
    return ms_wfile_commit(w, err);
}

/* scores, indices and (when the queries have ids) query_ids in one .h5
 * file, written under a temporary name and renamed into place. */
static int write_h5_topk(const char *path, uint64_t nq, uint64_t k, const float *scores,
                         const int64_t *indices, const struct ms_ids *qids, struct ms_err *err)
{
    struct ms_h5_out *o = NULL;
    char *tmp = malloc(strlen(path) + 32);
    const char **ids = NULL;
    int rc, set;

    if (!tmp)
        return ms_err_set(err, MS_ERR_RUNTIME, "out of memory");
    sprintf(tmp, "%s.tmp.%ld", path, (long)getpid());
    ms_tmp_register(tmp);
    if ((rc = ms_h5_out_create(&o, tmp, err)) != MS_OK)
        goto fail;
    if ((set = ms_h5_out_dataset(o, "scores", 0, nq, k, err)) < 0 ||
        (rc = ms_h5_out_write(o, set, 0, 0, nq, k, scores, k, err)) != MS_OK)
        goto fail;
    if ((set = ms_h5_out_dataset(o, "indices", 1, nq, k, err)) < 0 ||
        (rc = ms_h5_out_write(o, set, 0, 0, nq, k, indices, k, err)) != MS_OK)
        goto fail;
    if (qids->n) {
        if (!(ids = ms_malloc(qids->n * sizeof *ids, err)))
            goto fail;
        for (uint64_t i = 0; i < qids->n; i++)
            ids[i] = qids->pool + qids->offs[i];
        if ((rc = ms_h5_out_string_dataset(o, "query_ids", ids, qids->n, err)) != MS_OK)
            goto fail;
    }
    rc = ms_h5_out_close(o, err);
    o = NULL;
    if (rc != MS_OK)
        goto fail;
    if (rename(tmp, path) != 0) {
        rc = ms_err_set(err, MS_ERR_RUNTIME, "cannot rename '%s' to '%s': %s", tmp, path,
                        strerror(errno));
        goto fail;
    }
    ms_tmp_forget(tmp);
    free(ids);
    free(tmp);
    return MS_OK;
fail:
    ms_h5_out_abort(o);
    unlink(tmp);
    ms_tmp_forget(tmp);
    free(ids);
    free(tmp);
    return err->status ? err->status : MS_ERR_RUNTIME;
}

int ms_topk_write_arrays(const char *path, enum ms_fmt fmt, const struct ms_topk *t,
                         const struct ms_ids *qids, struct ms_err *err)
{
    /* every query has the same number of results in a search; use the largest */
    uint64_t k = 0;
    for (uint64_t q = 0; q < t->n_queries; q++)
        k = t->count[q] > k ? t->count[q] : k;
    float *scores = ms_malloc(t->n_queries * k * sizeof *scores + 1, err);
    int64_t *indices = ms_malloc(t->n_queries * k * sizeof *indices + 1, err);
    int rc = MS_OK;

    if (!scores || !indices) {
        rc = err->status;
        goto done;
    }
    topk_arrays(t, scores, indices, k);
    if (fmt == MS_FMT_NPY) {
        /* OUT.npy -> OUT.scores.npy and OUT.indices.npy */
        const size_t n = strlen(path) - (ends_with(path, ".npy") ? 4 : 0);
        char *sp = malloc(n + 16), *ip = malloc(n + 16);
        if (!sp || !ip) {
            free(sp);
            free(ip);
            rc = ms_err_set(err, MS_ERR_RUNTIME, "out of memory");
            goto done;
        }
        sprintf(sp, "%.*s.scores.npy", (int)n, path);
        sprintf(ip, "%.*s.indices.npy", (int)n, path);
        rc = write_npy_file(sp, "<f4", t->n_queries, k, scores, sizeof *scores, err);
        if (rc == MS_OK) {
            rc = write_npy_file(ip, "<i8", t->n_queries, k, indices, sizeof *indices, err);
            if (rc != MS_OK)
                unlink(sp);
        }
        free(sp);
        free(ip);
    } else {
        rc = write_h5_topk(path, t->n_queries, k, scores, indices, qids, err);
    }
done:
    free(scores);
    free(indices);
    return rc;
}
