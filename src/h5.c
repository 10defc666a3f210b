/*
 * h5.c - the HDF5 backend: read embeddings (src.h) and write command outputs (h5.h).
 *
 * Reading: PATH.h5:/group holds dataset `embeddings` ([T, dim] or [N, L, dim],
 * float32 or float16), optional `lengths` (1-D integer) and `ids` (1-D integer
 * or string). Everything is validated at open; token data is then read span by
 * span through hyperslab selections, so a chunked, compressed corpus larger
 * than memory streams like any other. Contiguous little-endian data (h5py's
 * default) is read with pread at its offset instead, by several threads at once
 * (the serial HDF5 library allows one thread in it at a time); so is chunked data
 * without filters whose chunks hold whole tokens, chunk by chunk at the addresses
 * HDF5 gives at open (one lookup a chunk). Lengths and ids are small (one value a
 * row) and are read whole.
 *
 * float16: HDF5 1.10 has no native half type, and h5py writes '<f2' as a
 * custom 2-byte H5T_FLOAT. We check that its bit fields are IEEE binary16 and
 * read it through a memory type with the same fields in host order, so HDF5
 * copies the words unchanged (or only swaps bytes) and we hand raw halves on.
 *
 * HDF5 prints its error stack on every failure unless told not to; a library
 * must not print, so every entry point silences it (the setting is per thread
 * in a thread-safe HDF5) and our messages quote the innermost HDF5 reason.
 */
#include "h5.h"
#include "src.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- error stack ------------------------------------------------------------------------- */

static int h5_verbose;

/* HDF5 is entered by one thread at a time: the reader thread reads the next
 * block while the main thread may write an HDF5 output, and a library built
 * without thread safety must never be entered twice. Every entry point below
 * takes this lock (the *_unlocked functions hold the work). */
static pthread_mutex_t h5_lock = PTHREAD_MUTEX_INITIALIZER;

static herr_t print_stack(hid_t estack, void *data)
{
    return H5Eprint2(estack, data);
}

/* Called at every entry point: HDF5's automatic printing is a per-thread setting. */
static void h5_quiet(void)
{
    if (h5_verbose)
        H5Eset_auto2(H5E_DEFAULT, print_stack, stderr);
    else
        H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

void ms_h5_set_verbose(int on)
{
    h5_verbose = on != 0;
    h5_quiet();
}

struct reason {
    char *buf;
    size_t size;
    int got;
};

static herr_t reason_cb(unsigned n, const H5E_error2_t *e, void *data)
{
    struct reason *r = data;
    const char *d = e->desc, *m;

    if (r->got || !d || !d[0])
        return 0;
    /* System-call failures bury errno's text in a long description: keep that text. */
    if ((m = strstr(d, "error message = '"))) {
        const char *start = m + strlen("error message = '"), *end = strchr(start, '\'');
        if (end) {
            snprintf(r->buf, r->size, "%.*s", (int)(end - start), start);
            r->got = 1;
            return 0;
        }
    }
    snprintf(r->buf, r->size, "%s", d);
    r->got = 1;
    return 0;
}

/* The innermost description on HDF5's error stack, or "unknown HDF5 error".
 * Call right after the failing call: the next API call clears the stack. */
static const char *h5_reason(char *buf, size_t size)
{
    struct reason r = { buf, size, 0 };
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, reason_cb, &r);
    if (!r.got)
        snprintf(buf, size, "unknown HDF5 error");
    return buf;
}

/* ---- describing what we found ------------------------------------------------------------ */

static int is_ieee_half(hid_t t)
{
    size_t spos, epos, esize, mpos, msize;

    if (H5Tget_class(t) != H5T_FLOAT || H5Tget_size(t) != 2 || H5Tget_precision(t) != 16 ||
        H5Tget_offset(t) != 0)
        return 0;
    if (H5Tget_fields(t, &spos, &epos, &esize, &mpos, &msize) < 0)
        return 0;
    return spos == 15 && epos == 10 && esize == 5 && mpos == 0 && msize == 10 &&
           H5Tget_ebias(t) == 15 && H5Tget_norm(t) == H5T_NORM_IMPLIED;
}

/* IEEE binary16 in host byte order. Fields first, then precision, then size:
 * HDF5 checks at every step that the fields fit the precision and the
 * precision the size, so shrinking in another order fails. */
static hid_t make_half_type(void)
{
    hid_t t = H5Tcopy(H5T_NATIVE_FLOAT);

    if (t < 0)
        return -1;
    if (H5Tset_fields(t, 15, 10, 5, 0, 10) < 0 || H5Tset_precision(t, 16) < 0 ||
        H5Tset_size(t, 2) < 0 || H5Tset_ebias(t, 15) < 0) {
        H5Tclose(t);
        return -1;
    }
    return t;
}

/* A name for an element type as numpy users know it: float64, int32, string... */
static const char *type_name(hid_t t, char *buf, size_t size)
{
    const size_t bytes = H5Tget_size(t);

    switch (H5Tget_class(t)) {
    case H5T_FLOAT:
        if (bytes == 2 && !is_ieee_half(t))
            snprintf(buf, size, "16-bit float (not IEEE float16)");
        else
            snprintf(buf, size, "float%zu", bytes * 8);
        break;
    case H5T_INTEGER:
        snprintf(buf, size, "%sint%zu", H5Tget_sign(t) == H5T_SGN_NONE ? "u" : "", bytes * 8);
        break;
    case H5T_STRING: snprintf(buf, size, "string"); break;
    case H5T_COMPOUND: snprintf(buf, size, "compound"); break;
    case H5T_ENUM: snprintf(buf, size, "enum"); break;
    case H5T_ARRAY: snprintf(buf, size, "array"); break;
    case H5T_VLEN: snprintf(buf, size, "variable-length sequence"); break;
    case H5T_BITFIELD: snprintf(buf, size, "bitfield"); break;
    case H5T_OPAQUE: snprintf(buf, size, "opaque"); break;
    case H5T_REFERENCE: snprintf(buf, size, "reference"); break;
    case H5T_TIME: snprintf(buf, size, "time"); break;
    default: snprintf(buf, size, "unknown type"); break;
    }
    return buf;
}

/* "1-D [5]", "3-D [2, 4, 8]" or "a scalar". Fills dims (up to 3) and *rank. */
static const char *shape_desc(hid_t space, int *rank, hsize_t dims3[3], char *buf, size_t size)
{
    hsize_t dims[H5S_MAX_RANK];
    const int nd = H5Sget_simple_extent_ndims(space);
    size_t used;

    *rank = nd;
    if (nd <= 0 || nd > H5S_MAX_RANK) {
        snprintf(buf, size, nd == 0 ? "a scalar" : "an unreadable shape");
        return buf;
    }
    H5Sget_simple_extent_dims(space, dims, NULL);
    for (int i = 0; i < 3; i++)
        dims3[i] = i < nd ? dims[i] : 0;
    used = (size_t)snprintf(buf, size, "%d-D [", nd);
    for (int i = 0; i < nd && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, "%s%llu", i ? ", " : "",
                                 (unsigned long long)dims[i]);
    if (used < size)
        snprintf(buf + used, size - used, "]");
    return buf;
}

/* "PATH/name" for a group path that is "/" or "/a/b" (no trailing slash). */
static void child_path(char *buf, size_t size, const char *gpath, const char *name)
{
    snprintf(buf, size, "%s/%s", strcmp(gpath, "/") == 0 ? "" : gpath, name);
}

/* "'FILE' dataset 'PATH'", the way messages name a dataset. A name too long
 * for the fixed-size field ends in "..." rather than silently. */
static void name_dataset(char *buf, size_t size, const char *file, const char *path)
{
    if (snprintf(buf, size, "'%s' dataset '%s'", file, path) >= (int)size && size > 4)
        memcpy(buf + size - 4, "...", 4);
}

/* Names of the links in loc (groups only if groups_only), comma-separated and
 * prefixed with prefix, at most 8 of them; returns how many were found. */
static int list_links(hid_t loc, int groups_only, const char *prefix, char *buf, size_t size)
{
    H5G_info_t info;
    size_t used = 0;
    int found = 0;

    buf[0] = '\0';
    if (H5Gget_info(loc, &info) < 0)
        return 0;
    for (hsize_t i = 0; i < info.nlinks && i < 256 && found <= 8; i++) {
        char name[128];
        const ssize_t len = H5Lget_name_by_idx(loc, ".", H5_INDEX_NAME, H5_ITER_INC, i, name,
                                               sizeof name, H5P_DEFAULT);
        if (len <= 0 || (size_t)len >= sizeof name)
            continue;
        if (groups_only) {
            const hid_t obj = H5Oopen(loc, name, H5P_DEFAULT);
            const int is_group = obj >= 0 && H5Iget_type(obj) == H5I_GROUP;
            if (obj >= 0)
                H5Oclose(obj);
            if (!is_group)
                continue;
        }
        if (++found > 8) {
            if (used < size)
                used += (size_t)snprintf(buf + used, size - used, ", ...");
            break;
        }
        if (used < size)
            used += (size_t)snprintf(buf + used, size - used, "%s%s%s", found > 1 ? ", " : "",
                                     prefix, name);
    }
    return found;
}

/* Open loc/name as any object: 1 if it exists (*obj open), 0 if not. A
 * dangling soft link counts as missing. */
static int open_child(hid_t loc, const char *name, hid_t *obj)
{
    *obj = -1;
    if (H5Lexists(loc, name, H5P_DEFAULT) <= 0)
        return 0;
    *obj = H5Oopen(loc, name, H5P_DEFAULT);
    return *obj >= 0;
}

/* ---- the reader -------------------------------------------------------------------------- */

struct h5_reader {
    hid_t file, dset, memtype;
    int own_memtype; /* memtype is our half type (else H5T_NATIVE_FLOAT) */
    int rank;
    hsize_t shape[3];
    uint64_t n_storage; /* T, or N * L */
    char where[256];
    /* Contiguous, unfiltered little-endian data (h5py's default layout) is read directly
     * with pread at its offset in the file, on any thread, without HDF5: fd >= 0. Chunked
     * data too when the chunks are unfiltered and hold whole tokens: storage tokens
     * [k * chunk_tokens, (k + 1) * chunk_tokens) are at addr[k] (contiguous: one chunk). */
    int fd;
    uint64_t *addr, n_chunks, chunk_tokens, tok_bytes;
};

static void h5_reader_close_unlocked(void *impl)
{
    struct h5_reader *h = impl;

    if (!h)
        return;
    h5_quiet();
    if (h->fd >= 0)
        close(h->fd);
    free(h->addr);
    if (h->dset >= 0)
        H5Dclose(h->dset);
    if (h->own_memtype && h->memtype >= 0)
        H5Tclose(h->memtype);
    if (h->file >= 0)
        H5Fclose(h->file);
    free(h);
}

/* Select storage tokens [first, first + n) of a [N, L, dim] space. The span
 * may start and end inside rows: a partial head row, whole rows, a partial
 * tail row, OR-ed together; HDF5 walks any hyperslab selection in row-major
 * order, which is storage order, so the memory buffer fills back to back. */
static herr_t select_padded(hid_t space, const hsize_t shape[3], uint64_t first, uint64_t n)
{
    const hsize_t L = shape[1], dim = shape[2], end = first + n;
    hsize_t r0 = first / L, t0 = first % L;
    const hsize_t r1 = end / L, t1 = end % L;
    H5S_seloper_t op = H5S_SELECT_SET;

    if (r0 == r1) {
        const hsize_t start[3] = { r0, t0, 0 }, count[3] = { 1, t1 - t0, dim };
        return H5Sselect_hyperslab(space, H5S_SELECT_SET, start, NULL, count, NULL);
    }
    if (t0) {
        const hsize_t start[3] = { r0, t0, 0 }, count[3] = { 1, L - t0, dim };
        if (H5Sselect_hyperslab(space, op, start, NULL, count, NULL) < 0)
            return -1;
        op = H5S_SELECT_OR;
        r0++;
    }
    if (r1 > r0) {
        const hsize_t start[3] = { r0, 0, 0 }, count[3] = { r1 - r0, L, dim };
        if (H5Sselect_hyperslab(space, op, start, NULL, count, NULL) < 0)
            return -1;
        op = H5S_SELECT_OR;
    }
    if (t1) {
        const hsize_t start[3] = { r1, 0, 0 }, count[3] = { 1, t1, dim };
        if (H5Sselect_hyperslab(space, op, start, NULL, count, NULL) < 0)
            return -1;
    }
    return 0;
}

static int h5_read_span_unlocked(void *impl, uint64_t first, uint64_t n, void *dst,
                                 struct ms_err *err)
{
    struct h5_reader *h = impl;
    const hsize_t dim = h->shape[h->rank - 1];
    unsigned long long elems;
    hid_t fspace = -1, mspace = -1;
    char why[256];
    int rc = MS_OK;

    h5_quiet();
    if (first > h->n_storage || n > h->n_storage - first)
        return ms_err_set(err, MS_ERR_RUNTIME, "%s: tokens %llu..%llu requested of %llu", h->where,
                          (unsigned long long)first, (unsigned long long)(first + n),
                          (unsigned long long)h->n_storage);
    if (n == 0)
        return MS_OK;
    if (ms_mul_u64(n, dim, &elems))
        return ms_err_set(err, MS_ERR_RUNTIME, "%s: read of %llu tokens overflows", h->where,
                          (unsigned long long)n);
    fspace = H5Dget_space(h->dset);
    if (fspace < 0)
        goto fail;
    /* The memory space has the shape of the file selection when that is one box (a flat
     * span, whole padded rows, or part of one row): HDF5 then maps chunks to memory by
     * whole boxes. With a 1-D memory space it maps them element by element, about 50x
     * slower on a chunked dataset; that remains only for padded spans that cut two rows. */
    hsize_t mdims[3] = { elems, 0, 0 };
    int mrank = 1;
    if (h->rank == 2) {
        const hsize_t start[2] = { first, 0 }, count[2] = { n, dim };
        if (H5Sselect_hyperslab(fspace, H5S_SELECT_SET, start, NULL, count, NULL) < 0)
            goto fail;
        mdims[0] = n, mdims[1] = dim, mrank = 2;
    } else {
        const hsize_t L = h->shape[1];
        if (select_padded(fspace, h->shape, first, n) < 0)
            goto fail;
        if (first % L == 0 && n % L == 0)
            mdims[0] = n / L, mdims[1] = L, mdims[2] = dim, mrank = 3;
        else if (first / L == (first + n - 1) / L)
            mdims[0] = 1, mdims[1] = n, mdims[2] = dim, mrank = 3;
    }
    if ((mspace = H5Screate_simple(mrank, mdims, NULL)) < 0 ||
        H5Dread(h->dset, h->memtype, mspace, fspace, H5P_DEFAULT, dst) < 0)
        goto fail;
    goto done;
fail:
    h5_reason(why, sizeof why);
    rc = ms_err_set(err, MS_ERR_RUNTIME, "cannot read %s (tokens %llu..%llu): %s", h->where,
                    (unsigned long long)first, (unsigned long long)(first + n), why);
done:
    if (mspace >= 0)
        H5Sclose(mspace);
    if (fspace >= 0)
        H5Sclose(fspace);
    return rc;
}

static void h5_reader_close(void *impl);
static int h5_read_span(void *impl, uint64_t first, uint64_t n, void *dst, struct ms_err *err);

/* The file addresses of the chunks of a chunked dataset whose chunks hold whole tokens (the
 * chunk spans every dimension but the first), unfiltered, each allocated at its full size:
 * *addr [*n_chunks] and the tokens a chunk holds, or 0 when the data is not like that (it is
 * then read through HDF5). h5py writes chunks of (rows, dim) when asked for chunks=... */
static int chunk_table(struct h5_reader *h, hid_t dcpl, uint64_t tok, uint64_t **addr,
                       uint64_t *n_chunks, uint64_t *chunk_tokens)
{
    hsize_t cdims[3] = { 0, 0, 0 };
    if (H5Pget_chunk(dcpl, h->rank, cdims) != h->rank || H5Pget_nfilters(dcpl) != 0 ||
        cdims[0] == 0)
        return 0;
    for (int d = 1; d < h->rank; d++)
        if (cdims[d] != h->shape[d])
            return 0;
    const uint64_t per_row = h->rank == 3 ? h->shape[1] : 1, ct = cdims[0] * per_row;
    const uint64_t n = (h->shape[0] + cdims[0] - 1) / cdims[0];
    uint64_t *a = ct ? malloc((n ? n : 1) * sizeof *a) : NULL;
    if (!a)
        return 0;
    for (uint64_t k = 0; k < n; k++) {
        hsize_t at[3] = { k * cdims[0], 0, 0 }, size = 0;
        haddr_t where = HADDR_UNDEF;
        unsigned mask = 0;
        if (H5Dget_chunk_info_by_coord(h->dset, at, &mask, &where, &size) < 0 ||
            where == HADDR_UNDEF || size != ct * tok) {
            free(a);
            return 0;
        }
        a[k] = (uint64_t)where;
    }
    *addr = a;
    *n_chunks = n;
    *chunk_tokens = ct;
    return 1;
}

/* Whether the data can be read with pread: a contiguous layout (so no filters) or chunks of
 * whole tokens without filters (chunk_table), stored at allocated addresses of a file without
 * a user block, as little-endian IEEE values that are bit for bit what the memory type holds
 * on a little-endian host, all of it allocated. The first and the last token read both ways
 * must agree, a last guard on what the addresses mean. */
static void try_direct(struct h5_reader *h, const char *file, enum ms_dtype dtype)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    const size_t es = dtype == MS_DTYPE_F16 ? 2 : 4;
    const uint64_t tok = (uint64_t)h->shape[h->rank - 1] * es;
    hid_t dcpl = H5Dget_create_plist(h->dset), fcpl = H5Fget_create_plist(h->file);
    hid_t ftype = H5Dget_type(h->dset);
    hsize_t ublock = 1;
    uint64_t *addr = NULL, n_chunks = 0, chunk_tokens = 0;
    int ok = dcpl >= 0 && fcpl >= 0 && ftype >= 0 && H5Pget_external_count(dcpl) == 0 &&
             H5Pget_userblock(fcpl, &ublock) >= 0 && ublock == 0 &&
             H5Tget_order(ftype) == H5T_ORDER_LE &&
             (dtype == MS_DTYPE_F16 ? is_ieee_half(ftype) : H5Tequal(ftype, H5T_IEEE_F32LE) > 0) &&
             h->n_storage > 0;
    if (ok && H5Pget_layout(dcpl) == H5D_CONTIGUOUS) {
        const haddr_t at = H5Dget_offset(h->dset);
        ok = at != HADDR_UNDEF && H5Dget_storage_size(h->dset) == h->n_storage * tok &&
             (addr = malloc(sizeof *addr)) != NULL;
        if (ok) {
            addr[0] = (uint64_t)at;
            n_chunks = 1;
            chunk_tokens = h->n_storage;
        }
    } else if (ok && H5Pget_layout(dcpl) == H5D_CHUNKED) {
        ok = chunk_table(h, dcpl, tok, &addr, &n_chunks, &chunk_tokens);
    } else {
        ok = 0;
    }
    if (dcpl >= 0)
        H5Pclose(dcpl);
    if (fcpl >= 0)
        H5Pclose(fcpl);
    if (ftype >= 0)
        H5Tclose(ftype);
    if (!ok) {
        free(addr);
        return;
    }
    const int fd = open(file, O_RDONLY | O_CLOEXEC);
    char *a = malloc(2 * tok);
    const uint64_t last = h->n_storage - 1;
    const uint64_t last_at = addr[last / chunk_tokens] + last % chunk_tokens * tok;
    struct ms_err ignored;
    if (fd >= 0 && a && pread(fd, a, tok, (off_t)addr[0]) == (ssize_t)tok &&
        h5_read_span_unlocked(h, 0, 1, a + tok, &ignored) == MS_OK &&
        memcmp(a, a + tok, tok) == 0 && pread(fd, a, tok, (off_t)last_at) == (ssize_t)tok &&
        h5_read_span_unlocked(h, last, 1, a + tok, &ignored) == MS_OK &&
        memcmp(a, a + tok, tok) == 0) {
        h->fd = fd;
        h->addr = addr;
        h->n_chunks = n_chunks;
        h->chunk_tokens = chunk_tokens;
        h->tok_bytes = tok;
        addr = NULL;
    } else if (fd >= 0) {
        close(fd);
    }
    free(addr);
    free(a);
#else
    (void)h;
    (void)file;
    (void)dtype;
#endif
}

/* pread of tokens [first, first + n) of contiguous data, or of the chunks they lie in. */
static int h5_read_direct(struct h5_reader *h, uint64_t first, uint64_t n, void *dst,
                          struct ms_err *err)
{
    if (first > h->n_storage || n > h->n_storage - first)
        return ms_err_set(err, MS_ERR_RUNTIME, "%s: tokens %llu..%llu requested of %llu", h->where,
                          (unsigned long long)first, (unsigned long long)(first + n),
                          (unsigned long long)h->n_storage);
    for (uint64_t t = first, end = first + n; t < end;) {
        const uint64_t k = t / h->chunk_tokens, in = t % h->chunk_tokens;
        const uint64_t m = h->chunk_tokens - in < end - t ? h->chunk_tokens - in : end - t;
        const uint64_t bytes = m * h->tok_bytes;
        size_t got = 0;
        const int rc = ms_pread_full(h->fd, (char *)dst + (t - first) * h->tok_bytes, (size_t)bytes,
                                     h->addr[k] + in * h->tok_bytes, &got);
        if (rc != 0 || got < bytes)
            return ms_err_set(err, MS_ERR_RUNTIME, "cannot read %s (tokens %llu..%llu): %s",
                              h->where, (unsigned long long)first, (unsigned long long)(first + n),
                              rc != 0 ? strerror(errno) : "unexpected end of file");
        t += m;
    }
    return MS_OK;
}

static const struct ms_backend_ops h5_ops = {
    .read_span = h5_read_span,
    .close = h5_reader_close,
};

/* "/", or the group path with one leading slash and none trailing or doubled. */
static char *normalize_group(const char *group, struct ms_err *err)
{
    const char *g = group && group[0] ? group : "/";
    char *out = ms_malloc(strlen(g) + 2, err), *o = out;

    if (!out)
        return NULL;
    *o++ = '/';
    for (const char *p = g; *p; p++)
        if (*p != '/' || (o[-1] != '/'))
            *o++ = *p;
    if (o > out + 1 && o[-1] == '/')
        o--;
    *o = '\0';
    return out;
}

static int open_file(const char *file, hid_t *fid, struct ms_err *err)
{
    struct stat st;
    char why[256];
    hid_t fapl;
    int fd;

    /* Ask the system first: HDF5's own message for a missing file is a stack
     * of five errors, and it cannot tell "missing" from "not HDF5". */
    if ((fd = open(file, O_RDONLY)) < 0)
        return ms_err_set(err, MS_ERR_INPUT, "cannot open '%s': %s", file, strerror(errno));
    if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
        close(fd);
        return ms_err_set(err, MS_ERR_INPUT, "cannot open '%s': %s", file, strerror(EISDIR));
    }
    close(fd);
    if (H5Fis_hdf5(file) <= 0)
        return ms_err_set(err, MS_ERR_INPUT, "'%s': not an HDF5 file", file);
    if ((fapl = H5Pcreate(H5P_FILE_ACCESS)) < 0)
        return ms_err_set(err, MS_ERR_RUNTIME, "'%s': %s", file, h5_reason(why, sizeof why));
#if H5_VERSION_GE(1, 12, 1) || (H5_VERS_MAJOR == 1 && H5_VERS_MINOR == 10 && H5_VERS_RELEASE >= 7)
    /* Read-only use needs no lock where the file system has none (NFS, Lustre). */
    H5Pset_file_locking(fapl, 1, 1);
#endif
    *fid = H5Fopen(file, H5F_ACC_RDONLY, fapl);
    if (*fid < 0)
        h5_reason(why, sizeof why);
    H5Pclose(fapl);
    if (*fid < 0) {
        unsigned long long eof, stored;
        const char *se = strstr(why, "stored_eof = ");
        /* A copy cut short is common enough to deserve a plain message. */
        if (sscanf(why, "truncated file: eof = %llu", &eof) == 1 && se &&
            sscanf(se, "stored_eof = %llu", &stored) == 1)
            return ms_err_set(err, MS_ERR_INPUT,
                              "'%s': truncated HDF5 file (%llu bytes; its header says %llu)", file,
                              eof, stored);
        return ms_err_set(err, MS_ERR_INPUT, "cannot open '%s' as HDF5: %s", file, why);
    }
    return MS_OK;
}

/* Open the group gpath, naming what exists when it does not. */
static int open_group(hid_t fid, const char *file, const char *gpath, hid_t *gid,
                      struct ms_err *err)
{
    char hint[512], partial[1024];
    hid_t obj = -1;
    int exists = 1;

    /* H5Lexists fails (rather than answering no) when a middle component is
     * missing, so test each prefix in turn. */
    for (const char *p = gpath + 1; exists && *p; p++) {
        const char *slash = strchr(p, '/');
        const size_t len = slash ? (size_t)(slash - gpath) : strlen(gpath);
        snprintf(partial, sizeof partial, "%.*s", (int)len, gpath);
        exists = H5Lexists(fid, partial, H5P_DEFAULT) > 0;
        if (!slash)
            break;
        p = slash;
    }
    if (exists)
        obj = H5Oopen(fid, gpath, H5P_DEFAULT);
    if (obj < 0) {
        char groups[400];
        const hid_t root = H5Gopen2(fid, "/", H5P_DEFAULT);
        const int n = root >= 0 ? list_links(root, 1, "/", groups, sizeof groups) : 0;
        if (root >= 0)
            H5Gclose(root);
        if (n)
            snprintf(hint, sizeof hint, " (groups at the root: %s)", groups);
        else
            snprintf(hint, sizeof hint, " (the root holds no groups)");
        return ms_err_set(err, MS_ERR_INPUT, "'%s': no group '%s'%s", file, gpath, hint);
    }
    if (H5Iget_type(obj) != H5I_GROUP) {
        H5Oclose(obj);
        return ms_err_set(err, MS_ERR_INPUT, "'%s': '%s' is not a group", file, gpath);
    }
    *gid = obj;
    return MS_OK;
}

/* Refuse a dataset whose filters (compression) this HDF5 cannot decode: the
 * read would fail only later, with a vaguer message. */
static int check_filters(hid_t dset, const char *where, struct ms_err *err)
{
    const hid_t dcpl = H5Dget_create_plist(dset);
    const int nf = dcpl >= 0 ? H5Pget_nfilters(dcpl) : 0;
    int rc = MS_OK;

    for (int i = 0; i < nf && rc == MS_OK; i++) {
        unsigned flags, config;
        size_t nelmts = 0;
        char name[64] = "";
        const H5Z_filter_t id =
            H5Pget_filter2(dcpl, (unsigned)i, &flags, &nelmts, NULL, sizeof name, name, &config);
        if (id >= 0 && H5Zfilter_avail(id) <= 0)
            rc = ms_err_set(err, MS_ERR_INPUT,
                            "%s: compressed with HDF5 filter '%s' (id %d), which this HDF5 "
                            "library cannot decode (set HDF5_PLUGIN_PATH to its plugin, or "
                            "rewrite the file with gzip)",
                            where, name, (int)id);
    }
    if (dcpl >= 0)
        H5Pclose(dcpl);
    return rc;
}

/* Open dataset gid/name, if present: returns MS_OK with *dset = -1 when
 * absent, an error when it is not a dataset. Datasets get a chunk cache large
 * enough that streaming block by block never decompresses a chunk twice in
 * the common case of chunks of whole rows. */
static int open_dataset(hid_t gid, const char *name, const char *file, const char *gpath,
                        hid_t *dset, struct ms_err *err)
{
    char path[1024], why[256];
    hid_t obj, dapl;
    int is_dataset;

    *dset = -1;
    if (!open_child(gid, name, &obj))
        return MS_OK;
    is_dataset = H5Iget_type(obj) == H5I_DATASET;
    H5Oclose(obj);
    child_path(path, sizeof path, gpath, name);
    if (!is_dataset)
        return ms_err_set(err, MS_ERR_INPUT, "'%s': '%s' is not a dataset", file, path);
    if ((dapl = H5Pcreate(H5P_DATASET_ACCESS)) >= 0)
        H5Pset_chunk_cache(dapl, 100003, 64u << 20, 1.0);
    *dset = H5Dopen2(gid, name, dapl >= 0 ? dapl : H5P_DEFAULT);
    if (*dset < 0)
        h5_reason(why, sizeof why);
    if (dapl >= 0)
        H5Pclose(dapl);
    if (*dset < 0)
        return ms_err_set(err, MS_ERR_INPUT, "cannot open '%s' dataset '%s': %s", file, path, why);
    return MS_OK;
}

static int open_embeddings(struct h5_reader *h, hid_t gid, const char *file, const char *gpath,
                           struct ms_raw *raw, struct ms_err *err)
{
    char tname[64], shape[128];
    hid_t ftype = -1, space = -1;
    int rc;

    if ((rc = open_dataset(gid, "embeddings", file, gpath, &h->dset, err)) != MS_OK)
        return rc;
    if (h->dset < 0) {
        char names[400];
        if (list_links(gid, 0, "", names, sizeof names))
            return ms_err_set(err, MS_ERR_INPUT,
                              "'%s': no dataset 'embeddings' in group '%s' (it holds: %s)", file,
                              gpath, names);
        return ms_err_set(err, MS_ERR_INPUT,
                          "'%s': no dataset 'embeddings' in group '%s' (the group is empty)", file,
                          gpath);
    }
    if ((ftype = H5Dget_type(h->dset)) < 0 || (space = H5Dget_space(h->dset)) < 0) {
        rc = ms_err_set(err, MS_ERR_RUNTIME, "cannot read %s: %s", h->where,
                        h5_reason(shape, sizeof shape));
        goto done;
    }
    if (H5Tget_class(ftype) == H5T_FLOAT && H5Tget_size(ftype) == 4) {
        raw->dtype = MS_DTYPE_F32;
        h->memtype = H5T_NATIVE_FLOAT;
    } else if (is_ieee_half(ftype)) {
        raw->dtype = MS_DTYPE_F16;
        h->own_memtype = 1;
        if ((h->memtype = make_half_type()) < 0) {
            rc = ms_err_set(err, MS_ERR_RUNTIME, "%s: cannot build the float16 memory type: %s",
                            h->where, h5_reason(shape, sizeof shape));
            goto done;
        }
    } else {
        rc = ms_err_set(err, MS_ERR_INPUT,
                        "%s: unsupported element type %s; expected float32 or float16", h->where,
                        type_name(ftype, tname, sizeof tname));
        goto done;
    }
    shape_desc(space, &h->rank, h->shape, shape, sizeof shape);
    if (h->rank != 2 && h->rank != 3) {
        rc = ms_err_set(err, MS_ERR_INPUT,
                        "%s: expected a 2-D [tokens, dim] or 3-D [rows, tokens, dim] dataset, "
                        "got %s",
                        h->where, shape);
        goto done;
    }
    h->n_storage = h->shape[0];
    if (h->rank == 3 && ms_mul_u64(h->shape[0], h->shape[1], (unsigned long long *)&h->n_storage)) {
        rc = ms_err_set(err, MS_ERR_INPUT, "%s: shape %s is too large", h->where, shape);
        goto done;
    }
    if ((rc = check_filters(h->dset, h->where, err)) != MS_OK)
        goto done;
    raw->rank = h->rank;
    for (int i = 0; i < 3; i++)
        raw->shape[i] = h->shape[i];
    raw->data_bytes = H5Dget_storage_size(h->dset);
done:
    if (space >= 0)
        H5Sclose(space);
    if (ftype >= 0)
        H5Tclose(ftype);
    return rc;
}

/* A 1-D dataset's length, or an error naming what was found instead. */
static int check_1d(hid_t dset, hid_t ftype, const char *where, const char *expected, uint64_t *n,
                    struct ms_err *err)
{
    char tname[64], shape[128];
    hsize_t dims[3];
    int rank;
    const hid_t space = H5Dget_space(dset);

    if (space < 0)
        return ms_err_set(err, MS_ERR_RUNTIME, "cannot read %s: %s", where,
                          h5_reason(shape, sizeof shape));
    shape_desc(space, &rank, dims, shape, sizeof shape);
    H5Sclose(space);
    if (rank != 1)
        return ms_err_set(err, MS_ERR_INPUT, "%s: expected %s, got %s %s", where, expected,
                          type_name(ftype, tname, sizeof tname), shape);
    *n = dims[0];
    return MS_OK;
}

static int read_lengths(hid_t gid, const char *file, const char *gpath, struct ms_raw *raw,
                        struct ms_err *err)
{
    char path[1024], tname[64], why[256];
    const char *expected = "a 1-D integer dataset";
    hid_t dset, ftype = -1;
    uint64_t n = 0;
    int rc;

    if ((rc = open_dataset(gid, "lengths", file, gpath, &dset, err)) != MS_OK || dset < 0)
        return rc;
    child_path(path, sizeof path, gpath, "lengths");
    name_dataset(raw->lengths_where, sizeof raw->lengths_where, file, path);
    if ((ftype = H5Dget_type(dset)) < 0) {
        rc = ms_err_set(err, MS_ERR_RUNTIME, "cannot read %s: %s", raw->lengths_where,
                        h5_reason(why, sizeof why));
        goto done;
    }
    if ((rc = check_1d(dset, ftype, raw->lengths_where, expected, &n, err)) != MS_OK)
        goto done;
    if (H5Tget_class(ftype) != H5T_INTEGER) {
        rc = ms_err_set(err, MS_ERR_INPUT, "%s: expected %s, got %s", raw->lengths_where, expected,
                        type_name(ftype, tname, sizeof tname));
        goto done;
    }
    if (!(raw->lengths = ms_calloc(n ? n : 1, sizeof *raw->lengths, err))) {
        rc = err->status;
        goto done;
    }
    raw->n_lengths = n;
    /* HDF5 converts any integer width; a uint64 beyond INT64_MAX saturates,
     * and src.c then refuses it as longer than the data. */
    if (n && H5Dread(dset, H5T_NATIVE_INT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, raw->lengths) < 0)
        rc = ms_err_set(err, MS_ERR_RUNTIME, "cannot read %s: %s", raw->lengths_where,
                        h5_reason(why, sizeof why));
done:
    if (ftype >= 0)
        H5Tclose(ftype);
    H5Dclose(dset);
    return rc;
}

static int push_id(struct ms_ids *ids, const char *s, size_t len, const char *where,
                   struct ms_err *err)
{
    const char *flaw = ms_id_flaw(s, len);

    if (len == 0)
        return ms_err_set(err, MS_ERR_INPUT, "%s: empty id at row %llu", where,
                          (unsigned long long)ids->n);
    if (flaw) /* run lines are split on whitespace: such an id would break them */
        return ms_err_set(err, MS_ERR_INPUT,
                          "%s: id at row %llu contains %s (expected no whitespace in an id)", where,
                          (unsigned long long)ids->n, flaw);
    return ms_ids_push(ids, s, len, err);
}

static int read_int_ids(hid_t dset, hid_t ftype, uint64_t n, const char *where, struct ms_ids *ids,
                        struct ms_err *err)
{
    const int is_unsigned = H5Tget_sign(ftype) == H5T_SGN_NONE;
    long long *v = ms_calloc(n ? n : 1, sizeof *v, err);
    char buf[32], why[256];
    int rc = MS_OK;

    if (!v)
        return err->status;
    if (n && H5Dread(dset, is_unsigned ? H5T_NATIVE_ULLONG : H5T_NATIVE_LLONG, H5S_ALL, H5S_ALL,
                     H5P_DEFAULT, v) < 0)
        rc = ms_err_set(err, MS_ERR_RUNTIME, "cannot read %s: %s", where,
                        h5_reason(why, sizeof why));
    for (uint64_t i = 0; i < n && rc == MS_OK; i++) {
        const int len = is_unsigned ? snprintf(buf, sizeof buf, "%llu", (unsigned long long)v[i])
                                    : snprintf(buf, sizeof buf, "%lld", v[i]);
        rc = ms_ids_push(ids, buf, (size_t)len, err);
    }
    free(v);
    return rc;
}

/* Variable-length strings (h5py.string_dtype(), utf-8 or ascii): read as C
 * strings of the file's character set, since HDF5 will not convert between sets. */
static int read_vlen_ids(hid_t dset, hid_t ftype, uint64_t n, const char *where, struct ms_ids *ids,
                         struct ms_err *err)
{
    char **v = ms_calloc(n ? n : 1, sizeof *v, err), why[256];
    hid_t mtype = -1, space = -1;
    int rc = MS_OK, read = 0;

    if (!v)
        return err->status;
    if ((mtype = H5Tcopy(H5T_C_S1)) < 0 || H5Tset_size(mtype, H5T_VARIABLE) < 0 ||
        H5Tset_cset(mtype, H5Tget_cset(ftype)) < 0 || (space = H5Dget_space(dset)) < 0 ||
        (n && H5Dread(dset, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) < 0)) {
        rc = ms_err_set(err, MS_ERR_RUNTIME, "cannot read %s: %s", where,
                        h5_reason(why, sizeof why));
        goto done;
    }
    read = n > 0;
    for (uint64_t i = 0; i < n && rc == MS_OK; i++)
        rc = push_id(ids, v[i] ? v[i] : "", v[i] ? strlen(v[i]) : 0, where, err);
done:
    if (read) {
#if H5_VERSION_GE(1, 12, 0)
        H5Treclaim(mtype, space, H5P_DEFAULT, v);
#else
        H5Dvlen_reclaim(mtype, space, H5P_DEFAULT, v);
#endif
    }
    if (space >= 0)
        H5Sclose(space);
    if (mtype >= 0)
        H5Tclose(mtype);
    free(v);
    return rc;
}

/* Fixed-length strings (numpy 'S8', h5py fixed utf-8): read the bytes as
 * stored, then drop the padding (NULs, or spaces for SPACEPAD). */
static int read_fixed_ids(hid_t dset, hid_t ftype, uint64_t n, const char *where,
                          struct ms_ids *ids, struct ms_err *err)
{
    const size_t width = H5Tget_size(ftype);
    const int spacepad = H5Tget_strpad(ftype) == H5T_STR_SPACEPAD;
    unsigned long long bytes;
    char *v, why[256];
    int rc = MS_OK;

    if (width == 0 || ms_mul_u64(n, width, &bytes))
        return ms_err_set(err, MS_ERR_INPUT, "%s: bad string width %zu", where, width);
    if (!(v = ms_malloc(bytes ? bytes : 1, err)))
        return err->status;
    if (n && H5Dread(dset, ftype, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) < 0)
        rc = ms_err_set(err, MS_ERR_RUNTIME, "cannot read %s: %s", where,
                        h5_reason(why, sizeof why));
    for (uint64_t i = 0; i < n && rc == MS_OK; i++) {
        const char *s = v + i * width;
        size_t len = strnlen(s, width);
        while (spacepad && len && s[len - 1] == ' ')
            len--;
        rc = push_id(ids, s, len, where, err);
    }
    free(v);
    return rc;
}

static int read_ids(hid_t gid, const char *file, const char *gpath, struct ms_raw *raw,
                    struct ms_err *err)
{
    const char *expected = "1-D integer or string ids";
    char path[1024], where[1100], tname[64], why[256];
    hid_t dset, ftype = -1;
    uint64_t n = 0;
    int rc;

    if ((rc = open_dataset(gid, "ids", file, gpath, &dset, err)) != MS_OK || dset < 0)
        return rc;
    child_path(path, sizeof path, gpath, "ids");
    name_dataset(where, sizeof where, file, path);
    if ((ftype = H5Dget_type(dset)) < 0) {
        rc = ms_err_set(err, MS_ERR_RUNTIME, "cannot read %s: %s", where,
                        h5_reason(why, sizeof why));
        goto done;
    }
    if ((rc = check_1d(dset, ftype, where, expected, &n, err)) != MS_OK)
        goto done;
    switch (H5Tget_class(ftype)) {
    case H5T_INTEGER:
        if (H5Tget_size(ftype) > 8)
            goto bad_type;
        rc = read_int_ids(dset, ftype, n, where, &raw->ids, err);
        break;
    case H5T_STRING:
        if (H5Tis_variable_str(ftype) > 0)
            rc = read_vlen_ids(dset, ftype, n, where, &raw->ids, err);
        else
            rc = read_fixed_ids(dset, ftype, n, where, &raw->ids, err);
        break;
    default: goto bad_type;
    }
    goto done;
bad_type:
    rc = ms_err_set(err, MS_ERR_INPUT, "%s: expected %s, got %s", where, expected,
                    type_name(ftype, tname, sizeof tname));
done:
    if (ftype >= 0)
        H5Tclose(ftype);
    H5Dclose(dset);
    return rc;
}

static int ms_h5_open_unlocked(const char *file, const char *group, struct ms_raw *raw,
                               struct ms_err *err)
{
    struct h5_reader *h;
    char *gpath = NULL, path[1024];
    hid_t gid = -1;
    int rc;

    h5_quiet();
    memset(raw, 0, sizeof *raw);
    ms_ids_init(&raw->ids);
    if (!(h = ms_calloc(1, sizeof *h, err)))
        return err->status;
    h->file = h->dset = h->memtype = h->fd = -1;
    if (!(gpath = normalize_group(group, err))) {
        rc = err->status;
        goto fail;
    }
    child_path(path, sizeof path, gpath, "embeddings");
    name_dataset(h->where, sizeof h->where, file, path);
    snprintf(raw->where, sizeof raw->where, "%s", h->where);
    if ((rc = open_file(file, &h->file, err)) != MS_OK ||
        (rc = open_group(h->file, file, gpath, &gid, err)) != MS_OK ||
        (rc = open_embeddings(h, gid, file, gpath, raw, err)) != MS_OK ||
        (rc = read_lengths(gid, file, gpath, raw, err)) != MS_OK ||
        (rc = read_ids(gid, file, gpath, raw, err)) != MS_OK)
        goto fail;
    H5Gclose(gid);
    free(gpath);
    try_direct(h, file, raw->dtype);
    raw->sequential_only = 0;
    raw->concurrent = h->fd >= 0;
    raw->ops = &h5_ops;
    raw->impl = h;
    return MS_OK;
fail:
    if (gid >= 0)
        H5Gclose(gid);
    free(gpath);
    h5_reader_close_unlocked(h);
    free(raw->lengths);
    raw->lengths = NULL;
    raw->n_lengths = 0;
    ms_ids_release(&raw->ids);
    return rc;
}

/* ---- the writer -------------------------------------------------------------------------- */

struct h5_out_dset {
    hid_t id;
    int is_int64;
    uint64_t rows, cols;
    char path[128];
};

struct ms_h5_out {
    hid_t file;
    char *path;
    struct h5_out_dset *dsets;
    int n, cap;
    int failed; /* a write failed: the file is incomplete */
};

static void out_free(struct ms_h5_out *o)
{
    free(o->dsets);
    free(o->path);
    free(o);
}

static int ms_h5_out_create_unlocked(struct ms_h5_out **out, const char *path, struct ms_err *err)
{
    struct ms_h5_out *o;
    struct stat st;
    char why[256];
    hid_t fapl;
    int fd;

    h5_quiet();
    *out = NULL;
    /* HDF5 seeks and rewrites its header: only a regular file will do. */
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode))
        return ms_err_set(err, MS_ERR_RUNTIME, "cannot write '%s': not a regular file", path);
    /* Create it ourselves first for an errno-style reason ("Permission denied"). */
    if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NONBLOCK, 0666)) < 0)
        return ms_err_set(err, MS_ERR_RUNTIME, "cannot create '%s': %s", path, strerror(errno));
    close(fd);
    if (!(o = ms_calloc(1, sizeof *o, err)))
        return err->status;
    if (!(o->path = strdup(path))) {
        out_free(o);
        return ms_err_set(err, MS_ERR_RUNTIME, "out of memory");
    }
    /* Strong close degree: closing the file closes whatever is still open in it. */
    if ((fapl = H5Pcreate(H5P_FILE_ACCESS)) >= 0)
        H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG);
    o->file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, fapl >= 0 ? fapl : H5P_DEFAULT);
    if (o->file < 0)
        h5_reason(why, sizeof why);
    if (fapl >= 0)
        H5Pclose(fapl);
    if (o->file < 0) {
        out_free(o);
        return ms_err_set(err, MS_ERR_RUNTIME, "cannot create '%s': %s", path, why);
    }
    *out = o;
    return MS_OK;
}

/* Register a created dataset; on failure closes it. Returns its index or -1. */
static int out_add(struct ms_h5_out *o, hid_t id, const char *name, int is_int64, uint64_t rows,
                   uint64_t cols, struct ms_err *err)
{
    if (o->n == o->cap) {
        const int cap = o->cap ? o->cap * 2 : 4;
        struct h5_out_dset *d = ms_realloc(o->dsets, (size_t)cap * sizeof *d, err);
        if (!d) {
            H5Dclose(id);
            return -1;
        }
        o->dsets = d;
        o->cap = cap;
    }
    struct h5_out_dset *d = &o->dsets[o->n];
    d->id = id;
    d->is_int64 = is_int64;
    d->rows = rows;
    d->cols = cols;
    snprintf(d->path, sizeof d->path, "%s%s", name[0] == '/' ? "" : "/", name);
    return o->n++;
}

static int ms_h5_out_dataset_unlocked(struct ms_h5_out *o, const char *name, int is_int64,
                                      uint64_t rows, uint64_t cols, struct ms_err *err)
{
    const hsize_t dims[2] = { rows, cols };
    hid_t space, dcpl, id = -1;
    char why[256];

    h5_quiet();
    space = H5Screate_simple(2, dims, NULL);
    dcpl = H5Pcreate(H5P_DATASET_CREATE);
    /* Every element is written exactly once: writing fill values first would
     * double the I/O of a large score matrix. */
    if (space >= 0 && dcpl >= 0 && H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER) >= 0)
        id = H5Dcreate2(o->file, name, is_int64 ? H5T_STD_I64LE : H5T_IEEE_F32LE, space,
                        H5P_DEFAULT, dcpl, H5P_DEFAULT);
    if (id < 0)
        h5_reason(why, sizeof why);
    if (dcpl >= 0)
        H5Pclose(dcpl);
    if (space >= 0)
        H5Sclose(space);
    if (id < 0) {
        o->failed = 1;
        ms_err_set(err, MS_ERR_RUNTIME, "cannot create dataset '%s' in '%s': %s", name, o->path,
                   why);
        return -1;
    }
    return out_add(o, id, name, is_int64, rows, cols, err);
}

static int ms_h5_out_write_unlocked(struct ms_h5_out *o, int dataset, uint64_t row0, uint64_t col0,
                                    uint64_t rows, uint64_t cols, const void *data, uint64_t ld,
                                    struct ms_err *err)
{
    struct h5_out_dset *d;
    hid_t fspace = -1, mspace = -1;
    char why[256];
    int rc = MS_OK;

    h5_quiet();
    if (dataset < 0 || dataset >= o->n)
        return ms_err_set(err, MS_ERR_RUNTIME, "'%s': no output dataset %d", o->path, dataset);
    d = &o->dsets[dataset];
    if (row0 > d->rows || rows > d->rows - row0 || col0 > d->cols || cols > d->cols - col0 ||
        ld < cols)
        return ms_err_set(err, MS_ERR_RUNTIME,
                          "'%s' dataset '%s': block [%llu+%llu, %llu+%llu] (ld %llu) does not "
                          "fit [%llu, %llu]",
                          o->path, d->path, (unsigned long long)row0, (unsigned long long)rows,
                          (unsigned long long)col0, (unsigned long long)cols,
                          (unsigned long long)ld, (unsigned long long)d->rows,
                          (unsigned long long)d->cols);
    if (rows == 0 || cols == 0)
        return MS_OK;
    const hsize_t fstart[2] = { row0, col0 }, count[2] = { rows, cols };
    const hsize_t mdims[2] = { rows, ld }, mstart[2] = { 0, 0 };
    if ((fspace = H5Dget_space(d->id)) < 0 ||
        H5Sselect_hyperslab(fspace, H5S_SELECT_SET, fstart, NULL, count, NULL) < 0 ||
        (mspace = H5Screate_simple(2, mdims, NULL)) < 0 ||
        H5Sselect_hyperslab(mspace, H5S_SELECT_SET, mstart, NULL, count, NULL) < 0 ||
        H5Dwrite(d->id, d->is_int64 ? H5T_NATIVE_INT64 : H5T_NATIVE_FLOAT, mspace, fspace,
                 H5P_DEFAULT, data) < 0) {
        o->failed = 1;
        rc = ms_err_set(err, MS_ERR_RUNTIME, "cannot write '%s' dataset '%s': %s", o->path, d->path,
                        h5_reason(why, sizeof why));
    }
    if (mspace >= 0)
        H5Sclose(mspace);
    if (fspace >= 0)
        H5Sclose(fspace);
    return rc;
}

static int ms_h5_out_string_dataset_unlocked(struct ms_h5_out *o, const char *name,
                                             const char *const *strings, uint64_t n,
                                             struct ms_err *err)
{
    const hsize_t dims[1] = { n };
    hid_t type, space = -1, id = -1;
    char why[256];
    int ok = 0;

    h5_quiet();
    if ((type = H5Tcopy(H5T_C_S1)) >= 0 && H5Tset_size(type, H5T_VARIABLE) >= 0 &&
        H5Tset_cset(type, H5T_CSET_UTF8) >= 0 && (space = H5Screate_simple(1, dims, NULL)) >= 0 &&
        (id = H5Dcreate2(o->file, name, type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)) >= 0)
        ok = n == 0 || H5Dwrite(id, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, strings) >= 0;
    if (!ok)
        h5_reason(why, sizeof why);
    if (id >= 0)
        H5Dclose(id);
    if (space >= 0)
        H5Sclose(space);
    if (type >= 0)
        H5Tclose(type);
    if (!ok) {
        o->failed = 1;
        return ms_err_set(err, MS_ERR_RUNTIME, "cannot write '%s' dataset '%s%s': %s", o->path,
                          name[0] == '/' ? "" : "/", name, why);
    }
    return MS_OK;
}

static int ms_h5_out_close_unlocked(struct ms_h5_out *o, struct ms_err *err)
{
    char why[256] = "";
    int bad = 0;

    h5_quiet();
    for (int i = 0; i < o->n; i++)
        if (H5Dclose(o->dsets[i].id) < 0 && !bad++)
            h5_reason(why, sizeof why);
    /* Closing writes the metadata: a full disk shows up here. */
    if (H5Fclose(o->file) < 0 && !bad++)
        h5_reason(why, sizeof why);
    int rc = MS_OK;
    if (bad)
        rc = ms_err_set(err, MS_ERR_RUNTIME, "cannot write '%s': %s", o->path, why);
    else if (o->failed)
        rc = ms_err_set(err, MS_ERR_RUNTIME, "cannot write '%s': an earlier write failed", o->path);
    out_free(o);
    return rc;
}

static void ms_h5_out_abort_unlocked(struct ms_h5_out *o)
{
    if (!o)
        return;
    h5_quiet();
    for (int i = 0; i < o->n; i++)
        H5Dclose(o->dsets[i].id);
    H5Fclose(o->file);
    out_free(o);
}

/* ---- one thread at a time -------------------------------------------------------------- */

static void h5_reader_close(void *impl)
{
    pthread_mutex_lock(&h5_lock);
    h5_reader_close_unlocked(impl);
    pthread_mutex_unlock(&h5_lock);
}

static int h5_read_span(void *impl, uint64_t first, uint64_t n, void *dst, struct ms_err *err)
{
    struct h5_reader *h = impl;
    if (h->fd >= 0) /* no HDF5 call: any thread, no lock */
        return h5_read_direct(h, first, n, dst, err);
    pthread_mutex_lock(&h5_lock);
    const int rc = h5_read_span_unlocked(impl, first, n, dst, err);
    pthread_mutex_unlock(&h5_lock);
    return rc;
}

int ms_h5_open(const char *file, const char *group, struct ms_raw *raw, struct ms_err *err)
{
    pthread_mutex_lock(&h5_lock);
    const int rc = ms_h5_open_unlocked(file, group, raw, err);
    pthread_mutex_unlock(&h5_lock);
    return rc;
}

int ms_h5_out_create(struct ms_h5_out **out, const char *path, struct ms_err *err)
{
    pthread_mutex_lock(&h5_lock);
    const int rc = ms_h5_out_create_unlocked(out, path, err);
    pthread_mutex_unlock(&h5_lock);
    return rc;
}

int ms_h5_out_dataset(struct ms_h5_out *o, const char *name, int is_int64, uint64_t rows,
                      uint64_t cols, struct ms_err *err)
{
    pthread_mutex_lock(&h5_lock);
    const int rc = ms_h5_out_dataset_unlocked(o, name, is_int64, rows, cols, err);
    pthread_mutex_unlock(&h5_lock);
    return rc;
}

int ms_h5_out_write(struct ms_h5_out *o, int dataset, uint64_t row0, uint64_t col0, uint64_t rows,
                    uint64_t cols, const void *data, uint64_t ld, struct ms_err *err)
{
    pthread_mutex_lock(&h5_lock);
    const int rc = ms_h5_out_write_unlocked(o, dataset, row0, col0, rows, cols, data, ld, err);
    pthread_mutex_unlock(&h5_lock);
    return rc;
}

int ms_h5_out_string_dataset(struct ms_h5_out *o, const char *name, const char *const *strings,
                             uint64_t n, struct ms_err *err)
{
    pthread_mutex_lock(&h5_lock);
    const int rc = ms_h5_out_string_dataset_unlocked(o, name, strings, n, err);
    pthread_mutex_unlock(&h5_lock);
    return rc;
}

int ms_h5_out_close(struct ms_h5_out *o, struct ms_err *err)
{
    pthread_mutex_lock(&h5_lock);
    const int rc = ms_h5_out_close_unlocked(o, err);
    pthread_mutex_unlock(&h5_lock);
    return rc;
}

void ms_h5_out_abort(struct ms_h5_out *o)
{
    pthread_mutex_lock(&h5_lock);
    ms_h5_out_abort_unlocked(o);
    pthread_mutex_unlock(&h5_lock);
}
