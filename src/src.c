/*
 * src.c - open any embeddings input and deliver ranges of rows (src.h).
 *
 * This layer owns everything that is the same for every format: naming the
 * input (PATH.h5:/group), lengths and ids from side files, the checks that
 * lengths agree with the data, turning rows into storage spans, compacting
 * padded rows, and refusing NaN or Inf values.
 */
#include "src.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "par.h"

static int ends_with(const char *s, size_t len, const char *suffix)
{
    const size_t n = strlen(suffix);
    return len >= n && strncasecmp(s + len - n, suffix, n) == 0;
}

/* Split PATH.h5:/group; pick the format from the suffix, else from the magic bytes. */
static int parse_spec(struct ms_src *src, const char *spec, struct ms_err *err)
{
    const char *colon = NULL;
    size_t flen = strlen(spec);
    struct stat st;

    for (const char *p = strstr(spec, ":"); p; p = strstr(p + 1, ":")) {
        if (ends_with(spec, (size_t)(p - spec), ".h5") ||
            ends_with(spec, (size_t)(p - spec), ".hdf5")) {
            colon = p;
            break;
        }
    }
    if (colon)
        flen = (size_t)(colon - spec);
    if (!(src->file = strndup(spec, flen)) || !(src->spec = strdup(spec)))
        return ms_err_set(err, MS_ERR_RUNTIME, "out of memory");
    if (ends_with(spec, flen, ".npy.zst") || ends_with(spec, flen, ".npy.zstd"))
        src->format = MS_FORMAT_NPY_ZST;
    else if (ends_with(spec, flen, ".npy"))
        src->format = MS_FORMAT_NPY;
    else if (ends_with(spec, flen, ".h5") || ends_with(spec, flen, ".hdf5"))
        src->format = MS_FORMAT_H5;
    else if (stat(src->file, &st) == 0 && !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode))
        /* a pipe (/dev/stdin): reading its magic here would consume it, and
         * only a stream can come through one, so it is .npy.zst (zin.c
         * checks the magic as it reads) */
        src->format = MS_FORMAT_NPY_ZST;
    else {
        unsigned char magic[8] = { 0 };
        FILE *f = fopen(src->file, "rb");
        if (!f)
            return ms_err_set(err, MS_ERR_INPUT, "cannot open '%s': %s", src->file,
                              strerror(errno));
        const size_t got = fread(magic, 1, sizeof magic, f);
        fclose(f);
        if (got >= 6 && memcmp(magic, "\x93NUMPY", 6) == 0)
            src->format = MS_FORMAT_NPY;
        else if (got >= 4 && memcmp(magic, "\x28\xb5\x2f\xfd", 4) == 0)
            src->format = MS_FORMAT_NPY_ZST;
        else if (got >= 8 && memcmp(magic, "\x89HDF\r\n\x1a\n", 8) == 0)
            src->format = MS_FORMAT_H5;
        else
            return ms_err_set(err, MS_ERR_INPUT,
                              "'%s': unknown format (expected a .npy, .npy.zst or .h5 file)",
                              src->file);
    }
    if (colon) {
        if (src->format != MS_FORMAT_H5)
            return ms_err_set(err, MS_ERR_INPUT,
                              "'%s': a group (':%s') can only follow an HDF5 file", spec,
                              colon + 1);
        src->group = strdup(colon[1] ? colon + 1 : "/");
    } else if (src->format == MS_FORMAT_H5)
        src->group = strdup("/");
    if (src->format == MS_FORMAT_H5 && !src->group)
        return ms_err_set(err, MS_ERR_RUNTIME, "out of memory");
    return MS_OK;
}

/* Apply lengths (from a side file or the file itself) and compute starts. */
static int apply_lengths(struct ms_src *src, const struct ms_src_opts *opts, struct ms_err *err)
{
    struct ms_raw *raw = &src->raw;
    int64_t *lengths = raw->lengths;
    uint64_t n_lengths = raw->n_lengths;
    char lwhere[300];
    int own = 0, rc = MS_OK;

    snprintf(lwhere, sizeof lwhere, "%s", raw->lengths_where);
    if (opts && opts->lengths_path) {
        if ((rc = ms_npy_read_ints(opts->lengths_path, &lengths, &n_lengths, err)) != MS_OK)
            return rc;
        own = 1;
        snprintf(lwhere, sizeof lwhere, "'%s'", opts->lengths_path);
    }
    if (raw->rank == 3) {
        src->layout = MS_LAYOUT_PADDED;
        src->n_rows = raw->shape[0];
        src->padded_len = raw->shape[1];
    } else {
        src->layout = MS_LAYOUT_FLAT;
        src->n_rows = lengths ? n_lengths : 1;
        src->padded_len = 0;
    }
    if (lengths && n_lengths != src->n_rows) {
        rc = ms_err_set(err, MS_ERR_INPUT, "%s has %llu lengths but %s has %llu rows", lwhere,
                        (unsigned long long)n_lengths, raw->where, (unsigned long long)src->n_rows);
        goto done;
    }
    if (!(src->starts = ms_malloc((src->n_rows + 1) * sizeof *src->starts, err))) {
        rc = err->status;
        goto done;
    }
    src->starts[0] = 0;
    for (uint64_t r = 0; r < src->n_rows; r++) {
        uint64_t len;
        if (!lengths)
            len = raw->rank == 3 ? raw->shape[1] : raw->shape[0];
        else if (lengths[r] < 0) {
            rc = ms_err_set(err, MS_ERR_INPUT, "%s: negative length %lld at row %llu", lwhere,
                            (long long)lengths[r], (unsigned long long)r);
            goto done;
        } else
            len = (uint64_t)lengths[r];
        if (raw->rank == 3 && len > raw->shape[1]) {
            rc = ms_err_set(err, MS_ERR_INPUT,
                            "%s: length %llu at row %llu exceeds the padded width %llu of %s",
                            lwhere, (unsigned long long)len, (unsigned long long)r,
                            (unsigned long long)raw->shape[1], raw->where);
            goto done;
        }
        if (ms_add_u64(src->starts[r], len, (unsigned long long *)&src->starts[r + 1])) {
            rc = ms_err_set(err, MS_ERR_INPUT, "%s: lengths overflow", lwhere);
            goto done;
        }
    }
    src->n_tokens = src->starts[src->n_rows];
    if (raw->rank == 2 && src->n_tokens != raw->shape[0]) {
        rc = ms_err_set(err, MS_ERR_INPUT, "%s: lengths sum to %llu tokens but %s has %llu tokens",
                        lwhere, (unsigned long long)src->n_tokens, raw->where,
                        (unsigned long long)raw->shape[0]);
        goto done;
    }
done:
    if (own)
        free(lengths);
    return rc;
}

int ms_src_open(struct ms_src *src, const char *spec, const struct ms_src_opts *opts,
                struct ms_err *err)
{
    struct stat st;
    int rc;

    memset(src, 0, sizeof *src);
    ms_ids_init(&src->ids);
    ms_ids_init(&src->raw.ids);
    if ((rc = parse_spec(src, spec, err)) != MS_OK)
        goto fail;
    switch (src->format) {
    case MS_FORMAT_NPY: rc = ms_npy_open(src->file, &src->raw, err); break;
    case MS_FORMAT_NPY_ZST: rc = ms_npy_zst_open(src->file, &src->raw, err); break;
    case MS_FORMAT_H5: rc = ms_h5_open(src->file, src->group, &src->raw, err); break;
    }
    if (rc != MS_OK)
        goto fail;
    src->dtype = src->raw.dtype;
    src->sequential_only = src->raw.sequential_only;
    src->data_bytes = src->raw.data_bytes;
    if (src->raw.rank != 2 && src->raw.rank != 3) {
        rc = ms_err_set(
            err, MS_ERR_INPUT,
            "%s: expected a 2-D [tokens, dim] or 3-D [rows, tokens, dim] array, got %d-D",
            src->raw.where, src->raw.rank);
        goto fail;
    }
    if (src->raw.shape[src->raw.rank - 1] == 0 || src->raw.shape[src->raw.rank - 1] > 65536) {
        rc = ms_err_set(err, MS_ERR_INPUT, "%s: dim %llu is out of range (expected 1 to 65536)",
                        src->raw.where, (unsigned long long)src->raw.shape[src->raw.rank - 1]);
        goto fail;
    }
    src->dim = (uint32_t)src->raw.shape[src->raw.rank - 1];
    if ((rc = apply_lengths(src, opts, err)) != MS_OK)
        goto fail;
    if (opts && opts->ids_path) {
        if ((rc = ms_ids_read_text(&src->ids, opts->ids_path, err)) != MS_OK)
            goto fail;
        if (src->ids.n != src->n_rows) {
            rc = ms_err_set(err, MS_ERR_INPUT, "'%s' has %llu ids but %s has %llu rows",
                            opts->ids_path, (unsigned long long)src->ids.n, src->raw.where,
                            (unsigned long long)src->n_rows);
            goto fail;
        }
    } else if (src->raw.ids.n) {
        if (src->raw.ids.n != src->n_rows) {
            rc = ms_err_set(err, MS_ERR_INPUT, "%s: 'ids' has %llu entries but there are %llu rows",
                            src->raw.where, (unsigned long long)src->raw.ids.n,
                            (unsigned long long)src->n_rows);
            goto fail;
        }
        src->ids = src->raw.ids;
        ms_ids_init(&src->raw.ids);
    }
    src->file_bytes = stat(src->file, &st) == 0 ? (uint64_t)st.st_size : 0;
    return MS_OK;
fail:
    ms_src_close(src);
    return rc;
}

/* Move each row's valid tokens down so that rows are back to back. Rows were
 * read padded, row r at r * L; compacted positions never pass their source. */
static void compact_rows(struct ms_emb *out, const struct ms_src *src, uint64_t first, uint64_t n)
{
    const size_t tok_bytes = (size_t)src->dim * ms_dtype_size(src->dtype);
    char *base = out->tokens;

    for (uint64_t r = 0; r < n; r++) {
        const uint64_t len = ms_src_row_len(src, first + r);
        const uint64_t from = r * src->padded_len, to = out->offsets[r];
        if (len && from != to)
            memmove(base + to * tok_bytes, base + from * tok_bytes, len * tok_bytes);
    }
}

/* ---------------------------------------------------------------------- */
/* Reading spans on several threads                                        */
/* ---------------------------------------------------------------------- */

/* One storage read: n tokens from storage token `first` to block token `dst`. A read is a
 * list of spans whose destinations ascend, so the concatenation of the spans is the block's
 * token order and the first bad value of the lowest piece is the first in row order. */
struct span {
    uint64_t first, n, dst;
};

struct job {
    struct ms_src *src;
    char *tokens;
    size_t tok_bytes;
    const struct span *spans;
    const uint64_t *cum; /* [n_spans + 1]: tokens of the spans before span i */
    size_t n_spans;
    int read, check;
    uint64_t chunk; /* tokens read before they are checked (still in cache), 0: whole spans */
};

struct piece {
    const struct job *job;
    uint64_t lo, hi; /* tokens [lo, hi) of the concatenated spans */
    uint64_t bad;    /* first non-finite element of the piece (index into tokens), or UINT64_MAX */
    int rc;
    struct ms_err err;
};

/* One thread's piece. After a bad value it goes on reading (not checking), so that a read
 * error anywhere is reported as a single-threaded read would report it: before any value. */
static void *do_piece(void *arg)
{
    struct piece *p = arg;
    const struct job *j = p->job;
    const struct ms_backend_ops *ops = j->src->raw.ops;
    const uint32_t dim = j->src->dim;
    size_t i = 0, lo = 0, hi = j->n_spans;

    p->bad = UINT64_MAX;
    p->rc = MS_OK;
    while (hi - lo > 1) { /* the span holding token lo: cum[i] <= p->lo < cum[i + 1] */
        const size_t mid = lo + (hi - lo) / 2;
        if (j->cum[mid] <= p->lo)
            lo = mid;
        else
            hi = mid;
    }
    i = lo;
    for (uint64_t pos = p->lo; pos < p->hi;) {
        while (j->cum[i + 1] <= pos)
            i++;
        const struct span *sp = &j->spans[i];
        const uint64_t off = pos - j->cum[i];
        uint64_t n = (j->cum[i + 1] < p->hi ? j->cum[i + 1] : p->hi) - pos;
        if (j->chunk && n > j->chunk)
            n = j->chunk;
        const uint64_t at = sp->dst + off;
        if (j->read && (p->rc = ops->read_span(j->src->raw.impl, sp->first + off, n,
                                               j->tokens + at * j->tok_bytes, &p->err)) != MS_OK)
            return NULL;
        if (j->check && p->bad == UINT64_MAX)
            p->bad = ms_nonfinite_first(j->tokens, j->src->dtype, at * dim, n * dim);
        pos += n;
    }
    return NULL;
}

int ms_pread_full(int fd, void *dst, size_t n, uint64_t off, size_t *got)
{
    size_t done = 0;

    while (done < n) {
        const ssize_t r = pread(fd, (char *)dst + done, n - done, (off_t)(off + done));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            *got = done;
            return -1;
        }
        if (r == 0)
            break;
        done += (size_t)r;
    }
    *got = done;
    return 0;
}

int ms_read_threads_default(void)
{
    const long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1    ? 1
           : n > 16 ? 16
                    : (int)n; /* H200 host, 2 GB page-cached: 8 -> 16 threads, 13-16.5 -> 16.5-18.8
                                 GB/s */
}

#define MAX_THREADS 256

/* Run a job over `total` tokens in pieces of near-equal size on up to src->threads threads
 * (the caller's among them). *bad: the first non-finite element of the whole job. */
static int run_job(const struct job *j, uint64_t total, uint64_t *bad, struct ms_err *err)
{
    const struct ms_src *src = j->src;
    const uint64_t piece_bytes = src->piece_bytes ? src->piece_bytes : 4u << 20;
    const uint64_t bytes = total * j->tok_bytes;
    uint64_t nw = src->threads > 0 ? (uint64_t)src->threads : (uint64_t)ms_read_threads_default();
    struct piece pieces[MAX_THREADS];

    if (nw > MAX_THREADS)
        nw = MAX_THREADS;
    if (nw > (bytes + piece_bytes - 1) / piece_bytes)
        nw = (bytes + piece_bytes - 1) / piece_bytes;
    if (nw > total)
        nw = total;
    if (nw < 1)
        nw = 1;
    for (uint64_t w = 0; w < nw; w++) {
        pieces[w].job = j;
        pieces[w].lo = total / nw * w + (w < total % nw ? w : total % nw);
        pieces[w].hi = pieces[w].lo + total / nw + (w < total % nw);
    }
    ms_par_run(do_piece, pieces, sizeof *pieces, nw);
    *bad = UINT64_MAX;
    for (uint64_t w = 0; w < nw; w++)
        if (pieces[w].rc != MS_OK) {
            *err = pieces[w].err;
            return pieces[w].rc;
        }
    for (uint64_t w = 0; w < nw && *bad == UINT64_MAX; w++)
        *bad = pieces[w].bad;
    return MS_OK;
}

/* Read the spans into out->tokens and, with check, find the first bad value (*bad). A
 * concurrent backend is read and checked by several threads, each its own piece, while the
 * piece is in cache; any other is read here and checked by several threads afterwards. */
static int read_spans(struct ms_src *src, struct ms_emb *out, const struct span *spans,
                      size_t n_spans, int check, uint64_t *bad, struct ms_err *err)
{
    struct job j = { .src = src,
                     .tokens = out->tokens,
                     .tok_bytes = (size_t)src->dim * ms_dtype_size(src->dtype),
                     .spans = spans,
                     .n_spans = n_spans,
                     .read = 1 };
    uint64_t *cum = ms_malloc((n_spans + 1) * sizeof *cum, err);
    int rc;

    *bad = UINT64_MAX;
    if (src->raw.ops->set_threads)
        src->raw.ops->set_threads(src->raw.impl,
                                  src->threads > 0 ? src->threads : ms_read_threads_default());
    if (!cum)
        return err->status;
    cum[0] = 0;
    for (size_t i = 0; i < n_spans; i++)
        cum[i + 1] = cum[i] + spans[i].n;
    j.cum = cum;
    if (src->raw.concurrent) {
        j.check = check;
        j.chunk = (1u << 20) / j.tok_bytes + 1;
        rc = run_job(&j, cum[n_spans], bad, err);
    } else {
        struct piece p = { .job = &j, .lo = 0, .hi = cum[n_spans] };
        do_piece(&p);
        if ((rc = p.rc) != MS_OK)
            *err = p.err;
        else if (check) {
            struct span all = { 0, ms_emb_n_tokens(out), 0 };
            uint64_t cum1[2] = { 0, all.n };
            struct job c = { .src = src,
                             .tokens = out->tokens,
                             .tok_bytes = j.tok_bytes,
                             .spans = &all,
                             .cum = cum1,
                             .n_spans = 1,
                             .check = 1 };
            rc = run_job(&c, all.n, bad, err);
        }
    }
    free(cum);
    return rc;
}

/* Check every valid token of out (after compaction) on several threads. */
static uint64_t check_block(struct ms_src *src, struct ms_emb *out)
{
    struct span all = { 0, ms_emb_n_tokens(out), 0 };
    uint64_t cum[2] = { 0, all.n }, bad;
    struct job c = { .src = src,
                     .tokens = out->tokens,
                     .tok_bytes = (size_t)src->dim * ms_dtype_size(src->dtype),
                     .spans = &all,
                     .cum = cum,
                     .n_spans = 1,
                     .check = 1 };
    struct ms_err ignored;

    run_job(&c, all.n, &bad, &ignored); /* checking alone cannot fail */
    return bad;
}

static int nonfinite_error(const struct ms_src *src, const struct ms_emb *out, const uint64_t *rows,
                           uint64_t bad, struct ms_err *err)
{
    uint64_t row, token;

    ms_emb_locate(out, bad / src->dim, &row, &token);
    return ms_err_set(err, MS_ERR_INPUT,
                      "%s: row %llu token %llu holds a NaN or Inf (embeddings must be finite)",
                      src->raw.where, (unsigned long long)(rows ? rows[row] : out->first_row + row),
                      (unsigned long long)token);
}

int ms_src_read(struct ms_src *src, uint64_t first, uint64_t n, struct ms_emb *out,
                struct ms_err *err)
{
    uint64_t valid, bad = UINT64_MAX;
    struct span *spans = NULL;
    size_t n_spans = 0;
    int rc;

    if (first > src->n_rows || n > src->n_rows - first)
        return ms_err_set(err, MS_ERR_RUNTIME, "%s: rows %llu..%llu requested of %llu",
                          src->raw.where, (unsigned long long)first,
                          (unsigned long long)(first + n), (unsigned long long)src->n_rows);
    if (src->sequential_only && first < src->next_row)
        return ms_err_set(
            err, MS_ERR_RUNTIME, "%s is a stream: row %llu requested after row %llu was read",
            src->raw.where, (unsigned long long)first, (unsigned long long)src->next_row);
    valid = src->starts[first + n] - src->starts[first];
    /* A dense padded block is read in one span and compacted in place. */
    const int padded_block =
        src->layout == MS_LAYOUT_PADDED && n > 0 && valid * 4 >= n * src->padded_len * 3;
    if ((rc = ms_emb_reserve(out, src->dtype, src->dim, n,
                             padded_block ? n * src->padded_len : valid, err)) != MS_OK)
        return rc;
    out->first_row = first;
    out->n_rows = n;
    for (uint64_t r = 0; r < n; r++)
        out->offsets[r + 1] = src->starts[first + r + 1] - src->starts[first];

    if (!(spans = ms_malloc(
              (src->layout == MS_LAYOUT_FLAT || padded_block ? 1 : n + 1) * sizeof *spans, err)))
        return err->status;
    if (src->layout == MS_LAYOUT_FLAT) {
        if (valid)
            spans[n_spans++] = (struct span){ src->starts[first], valid, 0 };
    } else if (padded_block) {
        spans[n_spans++] = (struct span){ first * src->padded_len, n * src->padded_len, 0 };
    } else {
        /* Sparse padded block: read each row's valid prefix, joining runs of full rows. */
        for (uint64_t r = 0; r < n;) {
            uint64_t end = r + 1;
            if (ms_src_row_len(src, first + r) == src->padded_len)
                while (end < n && ms_src_row_len(src, first + end) == src->padded_len)
                    end++;
            const uint64_t len = out->offsets[end] - out->offsets[r];
            if (len)
                spans[n_spans++] =
                    (struct span){ (first + r) * src->padded_len, len, out->offsets[r] };
            r = end;
        }
    }
    /* a padded block holds padding until it is compacted: checked after that */
    rc = read_spans(src, out, spans, n_spans, !padded_block, &bad, err);
    free(spans);
    if (rc != MS_OK)
        return rc;
    if (padded_block) {
        compact_rows(out, src, first, n);
        bad = check_block(src, out);
    }
    src->next_row = first + n;
    if (bad != UINT64_MAX)
        return nonfinite_error(src, out, NULL, bad, err);
    return MS_OK;
}

int ms_src_read_rows(struct ms_src *src, const uint64_t *rows, uint64_t n, struct ms_emb *out,
                     struct ms_err *err)
{
    uint64_t total = 0, bad = UINT64_MAX;
    struct span *spans;
    size_t n_spans = 0;
    int rc = MS_OK;

    for (uint64_t i = 0; i < n; i++) {
        if (rows[i] >= src->n_rows || (i > 0 && rows[i] <= rows[i - 1]))
            return ms_err_set(err, MS_ERR_RUNTIME, "%s: rows must be ascending and below %llu",
                              src->raw.where, (unsigned long long)src->n_rows);
        total += ms_src_row_len(src, rows[i]);
    }
    if (n && src->sequential_only && rows[0] < src->next_row)
        return ms_err_set(
            err, MS_ERR_RUNTIME, "%s is a stream: row %llu requested after row %llu was read",
            src->raw.where, (unsigned long long)rows[0], (unsigned long long)src->next_row);
    if ((rc = ms_emb_reserve(out, src->dtype, src->dim, n, total, err)) != MS_OK)
        return rc;
    out->first_row = n ? rows[0] : 0;
    out->n_rows = n;
    for (uint64_t i = 0; i < n; i++)
        out->offsets[i + 1] = out->offsets[i] + ms_src_row_len(src, rows[i]);
    if (!(spans = ms_malloc((n + 1) * sizeof *spans, err)))
        return err->status;
    /* one span per run of consecutive rows (flat), or of consecutive full rows (padded) */
    for (uint64_t i = 0; i < n;) {
        uint64_t j = i + 1;
        if (src->layout == MS_LAYOUT_FLAT)
            while (j < n && rows[j] == rows[j - 1] + 1)
                j++;
        else if (ms_src_row_len(src, rows[i]) == src->padded_len)
            while (j < n && rows[j] == rows[j - 1] + 1 &&
                   ms_src_row_len(src, rows[j]) == src->padded_len)
                j++;
        const uint64_t len = out->offsets[j] - out->offsets[i];
        const uint64_t first =
            src->layout == MS_LAYOUT_FLAT ? src->starts[rows[i]] : rows[i] * src->padded_len;
        if (len)
            spans[n_spans++] = (struct span){ first, len, out->offsets[i] };
        i = j;
    }
    rc = read_spans(src, out, spans, n_spans, 1, &bad, err);
    free(spans);
    if (rc != MS_OK)
        return rc;
    if (n)
        src->next_row = rows[n - 1] + 1;
    if (bad != UINT64_MAX)
        return nonfinite_error(src, out, rows, bad, err);
    return MS_OK;
}

void ms_src_close(struct ms_src *src)
{
    if (src->raw.ops && src->raw.impl)
        src->raw.ops->close(src->raw.impl);
    free(src->raw.lengths);
    ms_ids_release(&src->raw.ids);
    ms_ids_release(&src->ids);
    free(src->starts);
    free(src->spec);
    free(src->file);
    free(src->group);
    memset(src, 0, sizeof *src);
}
