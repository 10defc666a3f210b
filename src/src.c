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

int ms_src_read(struct ms_src *src, uint64_t first, uint64_t n, struct ms_emb *out,
                struct ms_err *err)
{
    const struct ms_backend_ops *ops = src->raw.ops;
    const size_t tok_bytes = (size_t)src->dim * ms_dtype_size(src->dtype);
    uint64_t valid, row, token;
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

    if (src->layout == MS_LAYOUT_FLAT) {
        if (valid)
            rc = ops->read_span(src->raw.impl, src->starts[first], valid, out->tokens, err);
    } else if (padded_block) {
        rc = ops->read_span(src->raw.impl, first * src->padded_len, n * src->padded_len,
                            out->tokens, err);
        if (rc == MS_OK)
            compact_rows(out, src, first, n);
    } else {
        /* Sparse padded block: read each row's valid prefix, joining runs of full rows. */
        for (uint64_t r = 0; r < n && rc == MS_OK;) {
            uint64_t len = ms_src_row_len(src, first + r), end = r + 1;
            if (len == src->padded_len)
                while (end < n && ms_src_row_len(src, first + end) == src->padded_len)
                    end++;
            else
                end = r + 1;
            len = out->offsets[end] - out->offsets[r];
            if (len)
                rc = ops->read_span(src->raw.impl, (first + r) * src->padded_len, len,
                                    (char *)out->tokens + out->offsets[r] * tok_bytes, err);
            r = end;
        }
    }
    if (rc != MS_OK)
        return rc;
    src->next_row = first + n;
    if (ms_emb_find_nonfinite(out, &row, &token))
        return ms_err_set(err, MS_ERR_INPUT,
                          "%s: row %llu token %llu holds a NaN or Inf (embeddings must be finite)",
                          src->raw.where, (unsigned long long)(first + row),
                          (unsigned long long)token);
    return MS_OK;
}

int ms_src_read_rows(struct ms_src *src, const uint64_t *rows, uint64_t n, struct ms_emb *out,
                     struct ms_err *err)
{
    const struct ms_backend_ops *ops = src->raw.ops;
    const size_t tok_bytes = (size_t)src->dim * ms_dtype_size(src->dtype);
    uint64_t total = 0, row, token;
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
    /* one span per run of consecutive rows (flat), or of consecutive full rows (padded) */
    for (uint64_t i = 0; i < n && rc == MS_OK;) {
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
            rc = ops->read_span(src->raw.impl, first, len,
                                (char *)out->tokens + out->offsets[i] * tok_bytes, err);
        i = j;
    }
    if (rc != MS_OK)
        return rc;
    if (n)
        src->next_row = rows[n - 1] + 1;
    if (ms_emb_find_nonfinite(out, &row, &token))
        return ms_err_set(err, MS_ERR_INPUT,
                          "%s: row %llu token %llu holds a NaN or Inf (embeddings must be finite)",
                          src->raw.where, (unsigned long long)rows[row], (unsigned long long)token);
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
