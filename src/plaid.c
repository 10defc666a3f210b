/*
 * plaid.c - reading and validating PLAID index directories (plaid.h), the
 * residual codec, and the double-precision reference.
 *
 * Every .npy file is memory-mapped read-only (PROT_READ, MAP_PRIVATE) and its
 * header parsed with npy.h; codes and residuals are then read in place by
 * token ranges, so opening a large index costs one validation pass over the
 * codes and nothing else proportional to its size. All validation happens
 * here, before any command writes anything.
 */
#include "plaid.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "npy.h"
#include "par.h"

static void path_of(char *buf, size_t cap, const char *dir, const char *name)
{
    snprintf(buf, cap, "%s/%s", dir, name);
}

static int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static void arr_release(struct ms_plaid_arr *a)
{
    if (a->map)
        munmap(a->map, a->map_len);
    memset(a, 0, sizeof *a);
}

/* Map a .npy file and check it is a C-order little-endian array of rank 1 or 2. */
static int arr_map(struct ms_plaid_arr *a, const char *path, struct ms_err *err)
{
    struct ms_npy_header h;
    struct stat st;
    uint64_t bytes;
    int fd, rc = MS_OK;

    memset(a, 0, sizeof *a);
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return ms_err_set(err, MS_ERR_INPUT, "cannot open '%s': %s", path, strerror(errno));
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return ms_err_set(err, MS_ERR_INPUT, "cannot read '%s': not a regular file", path);
    }
    if (st.st_size < MS_NPY_PREAMBLE) {
        close(fd);
        return ms_err_set(err, MS_ERR_INPUT, "'%s': not a .npy file (%lld bytes)", path,
                          (long long)st.st_size);
    }
    a->map_len = (size_t)st.st_size;
    a->map = mmap(NULL, a->map_len, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (a->map == MAP_FAILED) {
        a->map = NULL;
        return ms_err_set(err, MS_ERR_RUNTIME, "cannot map '%s': %s", path, strerror(errno));
    }
    if (ms_npy_parse_preamble(a->map, a->map_len, &h, err) != MS_OK ||
        ms_npy_parse_header(a->map, a->map_len, &h, err) != MS_OK ||
        ms_npy_data_bytes(&h, &bytes, err) != MS_OK) {
        rc = ms_err_prefix(err, "'%s'", path);
        goto fail;
    }
    if (h.structured || h.fortran_order || h.rank < 1 || h.rank > 2 ||
        (h.byteorder == '>' && h.itemsize > 1)) {
        char shape[128];
        ms_npy_format_shape(&h, shape, sizeof shape);
        rc = ms_err_set(err, MS_ERR_INPUT,
                        "'%s': unsupported array: expected a little-endian C-order array of rank 1 "
                        "or 2, found %s%s with shape %s",
                        path, h.fortran_order ? "Fortran-order " : "", h.descr, shape);
        goto fail;
    }
    if (h.data_offset + bytes > a->map_len) {
        rc = ms_err_set(
            err, MS_ERR_INPUT, "'%s': truncated: expected %llu bytes of data, found %llu", path,
            (unsigned long long)bytes, (unsigned long long)(a->map_len - h.data_offset));
        goto fail;
    }
    a->data = (const uint8_t *)a->map + h.data_offset;
    a->kind = h.kind;
    a->itemsize = h.itemsize;
    a->rank = h.rank;
    a->shape[0] = h.shape[0];
    a->shape[1] = h.rank == 2 ? h.shape[1] : 1;
    return MS_OK;
fail:
    arr_release(a);
    return rc;
}

static const char *arr_type(const struct ms_plaid_arr *a)
{
    if (a->kind == 'f')
        return a->itemsize == 2 ? "float16" : a->itemsize == 4 ? "float32" : "float64";
    if (a->kind == 'i')
        return a->itemsize == 1   ? "int8"
               : a->itemsize == 2 ? "int16"
               : a->itemsize == 4 ? "int32"
                                  : "int64";
    if (a->kind == 'u')
        return a->itemsize == 1   ? "uint8"
               : a->itemsize == 2 ? "uint16"
               : a->itemsize == 4 ? "uint32"
                                  : "uint64";
    return "an unsupported type";
}

static int bad_dtype(const char *path, const struct ms_plaid_arr *a, const char *want,
                     struct ms_err *err)
{
    return ms_err_set(err, MS_ERR_INPUT, "'%s': unsupported dtype %s (expected %s)", path,
                      arr_type(a), want);
}

static int is_float(const struct ms_plaid_arr *a)
{
    return a->kind == 'f' && (a->itemsize == 2 || a->itemsize == 4);
}

static int is_int(const struct ms_plaid_arr *a)
{
    return a->kind == 'i' && (a->itemsize == 4 || a->itemsize == 8);
}

static double arr_float(const struct ms_plaid_arr *a, uint64_t i)
{
    if (a->itemsize == 2) {
        uint16_t h;
        memcpy(&h, a->data + 2 * i, 2);
        return ms_half_to_float(h);
    }
    float f;
    memcpy(&f, a->data + 4 * i, 4);
    return f;
}

static int64_t arr_int(const struct ms_plaid_arr *a, uint64_t i)
{
    if (a->itemsize == 4) {
        int32_t v;
        memcpy(&v, a->data + 4 * i, 4);
        return v;
    }
    int64_t v;
    memcpy(&v, a->data + 8 * i, 8);
    return v;
}

static int load_json(const char *path, json_t **out, struct ms_err *err)
{
    json_error_t je;

    if (!file_exists(path))
        return ms_err_set(err, MS_ERR_INPUT, "cannot open '%s': %s", path, strerror(ENOENT));
    if (!(*out = json_load_file(path, 0, &je)))
        return ms_err_set(err, MS_ERR_INPUT, "'%s': invalid JSON at line %d: %s", path, je.line,
                          je.text);
    return MS_OK;
}

static int json_uint(const char *path, json_t *obj, const char *key, uint64_t *out,
                     struct ms_err *err)
{
    json_t *v = json_object_get(obj, key);
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return ms_err_set(err, MS_ERR_INPUT, "'%s': expected a non-negative integer '%s'", path,
                          key);
    *out = (uint64_t)json_integer_value(v);
    return MS_OK;
}

static int read_metadata(struct ms_plaid *p, uint64_t *n_chunks, struct ms_err *err)
{
    char path[4096];
    json_t *m;
    uint64_t nbits;
    int rc;

    path_of(path, sizeof path, p->dir, "metadata.json");
    if ((rc = load_json(path, &m, err)) != MS_OK)
        return rc;
    if (!json_is_object(m))
        rc = ms_err_set(err, MS_ERR_INPUT, "'%s': expected a JSON object", path);
    else if ((rc = json_uint(path, m, "nbits", &nbits, err)) == MS_OK &&
             (rc = json_uint(path, m, "num_chunks", n_chunks, err)) == MS_OK) {
        if (nbits != 1 && nbits != 2 && nbits != 4 && nbits != 8)
            rc = ms_err_set(err, MS_ERR_INPUT,
                            "'%s': unsupported nbits %llu (expected 1, 2, 4 or 8)", path,
                            (unsigned long long)nbits);
        else if (*n_chunks > 1000000)
            rc = ms_err_set(err, MS_ERR_INPUT, "'%s': implausible num_chunks %llu", path,
                            (unsigned long long)*n_chunks);
        p->nbits = (uint32_t)nbits;
        p->layout =
            json_is_true(json_object_get(m, "next_plaid_compatible")) ? "next-plaid" : "fast-plaid";
    }
    json_decref(m);
    return rc;
}

static int read_centroids(struct ms_plaid *p, struct ms_err *err)
{
    char path[4096];
    struct ms_plaid_arr a;
    int rc;

    path_of(path, sizeof path, p->dir, "centroids.npy");
    if ((rc = arr_map(&a, path, err)) != MS_OK)
        return rc;
    if (!is_float(&a))
        rc = bad_dtype(path, &a, "float16 or float32", err);
    else if (a.rank != 2 || a.shape[0] == 0 || a.shape[1] == 0 || a.shape[0] > UINT32_MAX ||
             a.shape[1] > 65536)
        rc = ms_err_set(err, MS_ERR_INPUT,
                        "'%s': expected shape (centroids, dim) with both in 1..2^32 and dim <= "
                        "65536, found rank %d (%llu, %llu)",
                        path, a.rank, (unsigned long long)a.shape[0],
                        (unsigned long long)a.shape[1]);
    if (rc == MS_OK) {
        p->n_centroids = (uint32_t)a.shape[0];
        p->dim = (uint32_t)a.shape[1];
        p->centroid_dtype = a.itemsize == 2 ? MS_DTYPE_F16 : MS_DTYPE_F32;
        const uint64_t n = (uint64_t)p->n_centroids * p->dim;
        if (!(p->centroids = ms_malloc(n * sizeof *p->centroids, err)))
            rc = err->status;
        for (uint64_t i = 0; rc == MS_OK && i < n; i++)
            p->centroids[i] = (float)arr_float(&a, i);
        for (uint64_t i = 0; rc == MS_OK && i < n; i++)
            if (!isfinite(p->centroids[i]))
                rc = ms_err_set(err, MS_ERR_INPUT, "'%s': non-finite value at centroid %llu", path,
                                (unsigned long long)(i / p->dim));
    }
    arr_release(&a);
    return rc;
}

static int read_weights(struct ms_plaid *p, struct ms_err *err)
{
    char path[4096];
    struct ms_plaid_arr a;
    const uint64_t n = 1ull << p->nbits;
    int rc;

    path_of(path, sizeof path, p->dir, "bucket_weights.npy");
    if ((rc = arr_map(&a, path, err)) != MS_OK)
        return rc;
    if (!is_float(&a))
        rc = bad_dtype(path, &a, "float16 or float32", err);
    else if (a.rank != 1 || a.shape[0] != n)
        rc = ms_err_set(err, MS_ERR_INPUT,
                        "'%s': expected %llu bucket weights (2^nbits, nbits %u), found %llu", path,
                        (unsigned long long)n, p->nbits,
                        (unsigned long long)(a.rank == 1 ? a.shape[0] : a.shape[0] * a.shape[1]));
    for (uint64_t i = 0; rc == MS_OK && i < n; i++) {
        p->bucket_weights[i] = (float)arr_float(&a, i);
        if (!isfinite(p->bucket_weights[i]))
            rc = ms_err_set(err, MS_ERR_INPUT, "'%s': non-finite bucket weight %llu", path,
                            (unsigned long long)i);
    }
    arr_release(&a);
    return rc;
}

/* doclens.i.json for every chunk; fills doc_off and chunk_docs[i]. */
static int read_doclens(struct ms_plaid *p, uint64_t n_chunks, uint64_t *chunk_docs,
                        struct ms_err *err)
{
    char path[4096], name[64];
    uint64_t cap = 1024, n = 0;
    int rc = MS_OK;

    if (!(p->doc_off = ms_malloc(cap * sizeof *p->doc_off, err)))
        return err->status;
    p->doc_off[0] = 0;
    for (uint64_t c = 0; c < n_chunks && rc == MS_OK; c++) {
        json_t *l;
        snprintf(name, sizeof name, "doclens.%llu.json", (unsigned long long)c);
        path_of(path, sizeof path, p->dir, name);
        if ((rc = load_json(path, &l, err)) != MS_OK)
            break;
        if (!json_is_array(l))
            rc = ms_err_set(err, MS_ERR_INPUT, "'%s': expected a JSON list of document lengths",
                            path);
        chunk_docs[c] = rc == MS_OK ? json_array_size(l) : 0;
        for (size_t i = 0; rc == MS_OK && i < json_array_size(l); i++) {
            json_t *v = json_array_get(l, i);
            if (!json_is_integer(v) || json_integer_value(v) < 0 ||
                json_integer_value(v) > UINT32_MAX) {
                rc = ms_err_set(err, MS_ERR_INPUT,
                                "'%s': entry %zu: expected a document length (an integer >= 0)",
                                path, i);
                break;
            }
            if (n + 2 > cap) {
                uint64_t *g = ms_realloc(p->doc_off, 2 * cap * sizeof *g, err);
                if (!g) {
                    rc = err->status;
                    break;
                }
                p->doc_off = g;
                cap *= 2;
            }
            const uint64_t len = (uint64_t)json_integer_value(v);
            p->doc_off[n + 1] = p->doc_off[n] + len;
            if (len > p->max_doclen)
                p->max_doclen = (uint32_t)len;
            n++;
        }
        json_decref(l);
    }
    p->n_docs = n;
    p->n_tokens = p->doc_off[n];
    return rc;
}

/* The range check of the codes: the first code of [a, b) outside 0..K-1,
 * or b. A typed loop without early exit (the compiler vectorizes it) over
 * blocks; only a block with a bad code is searched for its first one. */
struct code_scan {
    const struct ms_plaid_arr *c;
    uint64_t a, b, K, bad;
};

static void *scan_codes(void *arg)
{
    struct code_scan *w = arg;
    const uint64_t blk = 1 << 16;
    w->bad = w->b;
    for (uint64_t s = w->a; s < w->b; s += blk) {
        const uint64_t e = w->b - s < blk ? w->b : s + blk;
        uint64_t over = 0;
        if (w->c->itemsize == 4) {
            const uint8_t *d = w->c->data;
            for (uint64_t i = s; i < e; i++) {
                int32_t v;
                memcpy(&v, d + 4 * i, 4);
                over |= (uint64_t)(int64_t)v >= w->K; /* negative: huge as unsigned */
            }
        } else {
            const uint8_t *d = w->c->data;
            for (uint64_t i = s; i < e; i++) {
                int64_t v;
                memcpy(&v, d + 8 * i, 8);
                over |= (uint64_t)v >= w->K;
            }
        }
        if (over) {
            for (uint64_t i = s; i < e; i++) {
                const int64_t v = arr_int(w->c, i);
                if (v < 0 || (uint64_t)v >= w->K) {
                    w->bad = i;
                    return NULL;
                }
            }
        }
    }
    return NULL;
}

/* The first out-of-range code of the first n, or n; on up to 8 threads
 * (opening a large index is this pass over its codes, from the page cache). */
static uint64_t first_bad_code(const struct ms_plaid_arr *c, uint64_t n, uint64_t K)
{
    enum { MAXT = 8 };
    struct code_scan w[MAXT];
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    int nt = n < (1 << 20) ? 1 : ncpu < 1 ? 1 : ncpu > MAXT ? MAXT : (int)ncpu;
    for (int i = 0; i < nt; i++)
        w[i] = (struct code_scan){ c, n * (uint64_t)i / (uint64_t)nt,
                                   n * (uint64_t)(i + 1) / (uint64_t)nt, K, 0 };
    ms_par_run(scan_codes, w, sizeof *w, (size_t)nt);
    uint64_t bad = n;
    for (int i = 0; i < nt; i++)
        if (w[i].bad < w[i].b && bad == n)
            bad = w[i].bad; /* the lowest thread's first */
    return bad;
}

/* Check the codes and residuals of one part: dtypes, shapes, codes in range. */
static int check_part(const struct ms_plaid *p, const struct ms_plaid_part *pt, const char *cpath,
                      const char *rpath, const char *dpath, int padded, struct ms_err *err)
{
    const struct ms_plaid_arr *c = &pt->codes, *r = &pt->residuals;

    if (!is_int(c))
        return bad_dtype(cpath, c, "int32 or int64", err);
    if (c->rank != 1)
        return ms_err_set(err, MS_ERR_INPUT, "'%s': expected a 1-D array of codes, found rank %d",
                          cpath, c->rank);
    if (r->kind != 'u' || r->itemsize != 1)
        return bad_dtype(rpath, r, "uint8", err);
    if (r->rank != 2 || r->shape[1] != p->packed)
        return ms_err_set(err, MS_ERR_INPUT,
                          "'%s': expected rows of %u bytes (dim %u x nbits %u / 8), found %llu",
                          rpath, p->packed, p->dim, p->nbits,
                          (unsigned long long)(r->rank == 2 ? r->shape[1] : 0));
    if (padded ? c->shape[0] < pt->n_tokens : c->shape[0] != pt->n_tokens)
        return ms_err_set(err, MS_ERR_INPUT, "'%s': %llu codes, but '%s' sums to %llu tokens",
                          cpath, (unsigned long long)c->shape[0], strrchr(dpath, '/') + 1,
                          (unsigned long long)pt->n_tokens);
    if (r->shape[0] != c->shape[0])
        return ms_err_set(err, MS_ERR_INPUT, "'%s': %llu rows, expected %llu (one per code)", rpath,
                          (unsigned long long)r->shape[0], (unsigned long long)c->shape[0]);
    const uint64_t i = first_bad_code(c, pt->n_tokens, p->n_centroids);
    if (i < pt->n_tokens)
        return ms_err_set(err, MS_ERR_INPUT,
                          "'%s': code %lld at row %llu is out of range (expected 0..%u)", cpath,
                          (long long)arr_int(c, i), (unsigned long long)i, p->n_centroids - 1);
    return MS_OK;
}

static int read_parts(struct ms_plaid *p, uint64_t n_chunks, const uint64_t *chunk_docs,
                      struct ms_err *err)
{
    char cpath[4096], rpath[4096], dpath[4096], name[64];
    int rc = MS_OK;

    path_of(cpath, sizeof cpath, p->dir, "0.codes.npy");
    p->merged = n_chunks > 0 && !file_exists(cpath) &&
                file_exists((path_of(rpath, sizeof rpath, p->dir, "merged_codes.npy"), rpath));
    p->n_parts = p->merged ? 1 : (int)n_chunks;
    if (!(p->parts = ms_calloc(p->n_parts ? (size_t)p->n_parts : 1, sizeof *p->parts, err)))
        return err->status;
    uint64_t doc = 0;
    for (int i = 0; i < p->n_parts && rc == MS_OK; i++) {
        struct ms_plaid_part *pt = &p->parts[i];
        if (p->merged) {
            path_of(cpath, sizeof cpath, p->dir, "merged_codes.npy");
            path_of(rpath, sizeof rpath, p->dir, "merged_residuals.npy");
            path_of(dpath, sizeof dpath, p->dir, "doclens.*.json");
            pt->tok0 = 0;
            pt->n_tokens = p->n_tokens;
        } else {
            snprintf(name, sizeof name, "%d.codes.npy", i);
            path_of(cpath, sizeof cpath, p->dir, name);
            snprintf(name, sizeof name, "%d.residuals.npy", i);
            path_of(rpath, sizeof rpath, p->dir, name);
            snprintf(name, sizeof name, "doclens.%d.json", i);
            path_of(dpath, sizeof dpath, p->dir, name);
            pt->tok0 = p->doc_off[doc];
            pt->n_tokens = p->doc_off[doc + chunk_docs[i]] - pt->tok0;
            doc += chunk_docs[i];
        }
        if ((rc = arr_map(&pt->codes, cpath, err)) != MS_OK ||
            (rc = arr_map(&pt->residuals, rpath, err)) != MS_OK)
            break;
        rc = check_part(p, pt, cpath, rpath, dpath, p->merged, err);
        if (rc == MS_OK && i == 0)
            p->code_bytes = pt->codes.itemsize;
    }
    return rc;
}

static int read_ivf(struct ms_plaid *p, struct ms_err *err)
{
    char ipath[4096], lpath[4096];
    struct ms_plaid_arr iv, ln;
    int rc;

    path_of(ipath, sizeof ipath, p->dir, "ivf.npy");
    path_of(lpath, sizeof lpath, p->dir, "ivf_lengths.npy");
    if ((rc = arr_map(&iv, ipath, err)) != MS_OK)
        return rc;
    if ((rc = arr_map(&ln, lpath, err)) != MS_OK) {
        arr_release(&iv);
        return rc;
    }
    if (!is_int(&iv) || iv.rank != 1)
        rc = is_int(&iv) ? ms_err_set(err, MS_ERR_INPUT, "'%s': expected a 1-D array", ipath)
                         : bad_dtype(ipath, &iv, "int32 or int64", err);
    else if (!is_int(&ln) || ln.rank != 1)
        rc = is_int(&ln) ? ms_err_set(err, MS_ERR_INPUT, "'%s': expected a 1-D array", lpath)
                         : bad_dtype(lpath, &ln, "int32 or int64", err);
    if (rc == MS_OK &&
        (!(p->ivf_off = ms_malloc((p->n_centroids + 1ull) * sizeof *p->ivf_off, err))))
        rc = err->status;
    /* ivf_lengths may be shorter than the centroid count (centroids beyond it
     * have empty lists: NextPlaid's guard) or longer (fast-plaid's bincount
     * with minlength = the estimated partition count): entries past K must
     * then be empty, as no code reaches them. */
    uint64_t total = 0;
    for (uint64_t c = 0; rc == MS_OK && c < ln.shape[0]; c++) {
        const int64_t v = arr_int(&ln, c);
        if (v < 0 || (c >= p->n_centroids && v != 0) || (uint64_t)v > iv.shape[0] - total)
            rc = ms_err_set(err, MS_ERR_INPUT,
                            "'%s': entry %llu is %lld: expected a list length within 'ivf.npy' "
                            "(%llu ids)%s",
                            lpath, (unsigned long long)c, (long long)v,
                            (unsigned long long)iv.shape[0],
                            c >= p->n_centroids ? " and 0 past the last centroid" : "");
        else if (c < p->n_centroids) {
            p->ivf_off[c] = total;
            total += (uint64_t)v;
        }
    }
    for (uint64_t c = ln.shape[0]; rc == MS_OK && c <= p->n_centroids; c++)
        p->ivf_off[c] = total;
    if (rc == MS_OK) {
        p->ivf_off[p->n_centroids] = total;
        if (!(p->ivf = ms_malloc((total ? total : 1) * sizeof *p->ivf, err)))
            rc = err->status;
    }
    /* typed loops (vectorized), then the first bad id for the message */
    uint64_t over = 0;
    if (rc == MS_OK && iv.itemsize == 4)
        for (uint64_t i = 0; i < total; i++) {
            int32_t v;
            memcpy(&v, iv.data + 4 * i, 4);
            over |= (uint64_t)(int64_t)v >= p->n_docs;
            p->ivf[i] = (uint32_t)v;
        }
    else if (rc == MS_OK)
        for (uint64_t i = 0; i < total; i++) {
            int64_t v;
            memcpy(&v, iv.data + 8 * i, 8);
            over |= (uint64_t)v >= p->n_docs;
            p->ivf[i] = (uint32_t)v;
        }
    for (uint64_t i = 0; rc == MS_OK && over && i < total; i++) {
        const int64_t v = arr_int(&iv, i);
        if (v < 0 || (uint64_t)v >= p->n_docs)
            rc = ms_err_set(err, MS_ERR_INPUT,
                            "'%s': document id %lld at %llu is out of range (expected 0..%lld)",
                            ipath, (long long)v, (unsigned long long)i, (long long)p->n_docs - 1);
    }
    arr_release(&iv);
    arr_release(&ln);
    return rc;
}

static uint64_t dir_bytes(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    uint64_t total = 0;
    char path[4096];

    if (!d)
        return 0;
    while ((e = readdir(d))) {
        struct stat st;
        path_of(path, sizeof path, dir, e->d_name);
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
            total += (uint64_t)st.st_size;
    }
    closedir(d);
    return total;
}

int ms_plaid_open(struct ms_plaid *p, const char *dir, struct ms_err *err)
{
    uint64_t n_chunks = 0, *chunk_docs = NULL;
    struct stat st;
    int rc;

    memset(p, 0, sizeof *p);
    if (stat(dir, &st) != 0)
        return ms_err_set(err, MS_ERR_INPUT, "cannot open '%s': %s", dir, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return ms_err_set(err, MS_ERR_INPUT, "'%s': expected a PLAID index directory, found a file",
                          dir);
    if (!(p->dir = strdup(dir)))
        return ms_err_set(err, MS_ERR_RUNTIME, "out of memory");
    {
        size_t n = strlen(p->dir); /* "idx/" names its files "idx/x", not "idx//x" */
        while (n > 1 && p->dir[n - 1] == '/')
            p->dir[--n] = 0;
    }
    if ((rc = read_metadata(p, &n_chunks, err)) != MS_OK || (rc = read_centroids(p, err)) != MS_OK)
        goto fail;
    if (((uint64_t)p->dim * p->nbits) % 8 != 0) {
        rc = ms_err_set(err, MS_ERR_INPUT,
                        "'%s/centroids.npy': dim %u times nbits %u is not a multiple of 8", p->dir,
                        p->dim, p->nbits);
        goto fail;
    }
    p->packed = p->dim * p->nbits / 8;
    if ((rc = read_weights(p, err)) != MS_OK)
        goto fail;
    if (!(chunk_docs = ms_calloc(n_chunks + 1, sizeof *chunk_docs, err))) {
        rc = err->status;
        goto fail;
    }
    if ((rc = read_doclens(p, n_chunks, chunk_docs, err)) != MS_OK ||
        (rc = read_parts(p, n_chunks, chunk_docs, err)) != MS_OK ||
        (rc = read_ivf(p, err)) != MS_OK)
        goto fail;
    if (p->n_docs > UINT32_MAX) {
        rc = ms_err_set(err, MS_ERR_INPUT, "'%s': %llu documents; at most 2^32-1 supported", p->dir,
                        (unsigned long long)p->n_docs);
        goto fail;
    }
    if (!p->code_bytes)
        p->code_bytes = 8;
    p->disk_bytes = dir_bytes(p->dir);
    free(chunk_docs);
    return MS_OK;
fail:
    free(chunk_docs);
    ms_plaid_close(p);
    return rc;
}

void ms_plaid_close(struct ms_plaid *p)
{
    for (int i = 0; i < p->n_parts; i++) {
        arr_release(&p->parts[i].codes);
        arr_release(&p->parts[i].residuals);
    }
    free(p->parts);
    free(p->centroids);
    free(p->doc_off);
    free(p->ivf_off);
    free(p->ivf);
    free(p->dir);
    memset(p, 0, sizeof *p);
}

/* The part holding token tok (parts are in token order). */
static const struct ms_plaid_part *part_of(const struct ms_plaid *p, uint64_t tok)
{
    int lo = 0, hi = p->n_parts - 1;
    while (lo < hi) {
        const int mid = (lo + hi + 1) / 2;
        if (p->parts[mid].tok0 <= tok)
            lo = mid;
        else
            hi = mid - 1;
    }
    return &p->parts[lo];
}

void ms_plaid_codes(const struct ms_plaid *p, uint64_t first, uint64_t n, uint32_t *out)
{
    while (n > 0) {
        const struct ms_plaid_part *pt = part_of(p, first);
        const uint64_t i0 = first - pt->tok0;
        uint64_t m = pt->n_tokens - i0;
        m = m < n ? m : n;
        if (pt->codes.itemsize == 4) {
            for (uint64_t i = 0; i < m; i++) {
                int32_t v;
                memcpy(&v, pt->codes.data + 4 * (i0 + i), 4);
                out[i] = (uint32_t)v;
            }
        } else {
            for (uint64_t i = 0; i < m; i++) {
                int64_t v;
                memcpy(&v, pt->codes.data + 8 * (i0 + i), 8);
                out[i] = (uint32_t)v;
            }
        }
        out += m;
        first += m;
        n -= m;
    }
}

void ms_plaid_residuals(const struct ms_plaid *p, uint64_t first, uint64_t n, uint8_t *out)
{
    while (n > 0) {
        const struct ms_plaid_part *pt = part_of(p, first);
        const uint64_t i0 = first - pt->tok0;
        uint64_t m = pt->n_tokens - i0;
        m = m < n ? m : n;
        memcpy(out, pt->residuals.data + i0 * p->packed, m * p->packed);
        out += m * p->packed;
        first += m;
        n -= m;
    }
}

void ms_plaid_pack(const uint8_t *buckets, uint32_t dim, uint32_t nbits, uint8_t *row)
{
    memset(row, 0, dim * nbits / 8);
    for (uint32_t d = 0; d < dim; d++)
        for (uint32_t t = 0; t < nbits; t++) {
            const uint32_t bit = d * nbits + t; /* position in the MSB-first stream */
            if ((buckets[d] >> t) & 1u)
                row[bit >> 3] |= (uint8_t)(0x80u >> (bit & 7));
        }
}

void ms_plaid_lut(const struct ms_plaid *p, float *lut)
{
    const uint32_t kpb = 8 / p->nbits;
    for (unsigned b = 0; b < 256; b++) {
        const uint8_t byte = (uint8_t)b;
        for (uint32_t s = 0; s < kpb; s++)
            lut[b * kpb + s] = p->bucket_weights[ms_plaid_bucket(&byte, p->nbits, s)];
    }
}

void ms_plaid_ref_decompress(const struct ms_plaid *p, uint64_t tok, double *out)
{
    uint32_t code;
    uint8_t row[65536 / 8 * 8];
    double ss = 0.0;

    ms_plaid_codes(p, tok, 1, &code);
    ms_plaid_residuals(p, tok, 1, row);
    for (uint32_t d = 0; d < p->dim; d++) {
        out[d] = (double)p->centroids[(uint64_t)code * p->dim + d] +
                 (double)p->bucket_weights[ms_plaid_bucket(row, p->nbits, d)];
        ss += out[d] * out[d];
    }
    const double inv = 1.0 / fmax(sqrt(ss), 1e-12);
    for (uint32_t d = 0; d < p->dim; d++)
        out[d] *= inv;
}

double ms_plaid_ref_score(const struct ms_plaid *p, const struct ms_emb *q, uint64_t r,
                          uint64_t doc)
{
    const uint64_t t0 = p->doc_off[doc], nt = p->doc_off[doc + 1] - t0, lq = ms_emb_row_len(q, r);
    double *x = malloc((nt ? nt : 1) * p->dim * sizeof *x), total = 0.0;

    if (!x || nt == 0) {
        free(x);
        return 0.0;
    }
    for (uint64_t t = 0; t < nt; t++)
        ms_plaid_ref_decompress(p, t0 + t, x + t * p->dim);
    for (uint64_t i = 0; i < lq; i++) {
        double best = -INFINITY;
        for (uint64_t t = 0; t < nt; t++) {
            double s = 0.0;
            for (uint32_t k = 0; k < p->dim; k++)
                s += (double)ms_emb_value(q, q->offsets[r] + i, k) * x[t * p->dim + k];
            best = s > best ? s : best;
        }
        total += best;
    }
    free(x);
    return total;
}

double ms_plaid_ref_approx(const struct ms_plaid *p, const struct ms_emb *q, uint64_t r,
                           uint64_t doc)
{
    const uint64_t t0 = p->doc_off[doc], nt = p->doc_off[doc + 1] - t0, lq = ms_emb_row_len(q, r);
    double total = 0.0;

    if (nt == 0)
        return 0.0;
    for (uint64_t i = 0; i < lq; i++) {
        double best = -INFINITY;
        for (uint64_t t = 0; t < nt; t++) {
            uint32_t code;
            double s = 0.0;
            ms_plaid_codes(p, t0 + t, 1, &code);
            for (uint32_t k = 0; k < p->dim; k++)
                s += (double)ms_emb_value(q, q->offsets[r] + i, k) *
                     (double)p->centroids[(uint64_t)code * p->dim + k];
            best = s > best ? s : best;
        }
        total += best;
    }
    return total;
}
