/*
 * index.c - building and appending to PLAID indexes (index.h), the way
 * fast-plaid's create() does (research/plaid.md 1.1-1.5, 2.2):
 *
 *   1. a sample of documents (1 + 16 sqrt(120 N) of N, at most N), its
 *      tokens gathered on the host;
 *   2. K = 2^floor(log2(16 sqrt(estimated tokens))) centroids (at most the
 *      sample's tokens), k-means on at most 256 K of the sample's tokens:
 *      K random points to start, each iteration assigns every point to its
 *      nearest centroid on the device and takes the means on the host (an
 *      empty cluster restarts at a random point); then normalized and
 *      stored as float16 (float32 for NextPlaid);
 *   3. the held-out tokens (min(5% of the sample's, 50000), from documents
 *      drawn apart from the sample, as fast-plaid's create() draws its own)
 *      are coded by the largest dot product with the stored centroids; the quantiles of
 *      their flattened residuals give the 2^nbits - 1 bucket cutoffs (i/n)
 *      and the 2^nbits bucket weights ((i + 0.5)/n); avg_residual and
 *      cluster_threshold come from them too;
 *   4. every document, streamed block by block, is coded and compressed on
 *      the device and appended to chunk files of docs_per_chunk documents;
 *   5. the IVF: for each centroid the ascending ids of the documents with a
 *      token coded by it, built from the chunk files in two passes (count,
 *      then fill a memory-mapped ivf.npy), so it is never held in memory.
 *
 * Determinism (the lead's rule: results must not depend on block
 * boundaries): the sample, the k-means start and restarts come from
 * splitmix64 seeded with --seed (not torch's generator, so the centroids are
 * not fast-plaid's own); the device computes each point's scores with fma
 * in a fixed order, which is exact rounding on every device; k-means sums
 * are accumulated on the host in double, in point order. Files are written
 * in document order with no timestamps.
 *
 * Host and device overlap (the host's share was about half of a build on
 * the H200): the sample is read by several threads straight into the
 * buffer k-means uses, as stored (float16 stays float16); a k-means block's
 * sums run on threads while the device assigns the next block (or, on a GPU
 * with room, every training point is loaded once for all iterations); the
 * chunk files are written by a thread while the device codes the next
 * block. None of it changes a byte (tests/test_index.c).
 */
#include "index.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "index_cl.h"
#include "npy.h"
#include "out.h"
#include "par.h"
#include "stream.h"

#define KMEANS_BLOCK    (1u << 18) /* training points per device launch */
#define MAX_HELDOUT     50000      /* fast-plaid's cap on held-out tokens */
#define POINTS_PER_CENT 256        /* fast-plaid's max_points_per_centroid */

/* ---- seeded generator (splitmix64) ---- */

struct rng {
    uint64_t s;
};

static uint64_t rng_next(struct rng *r)
{
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* uniform in [0, 1) with 53 random bits */
static double rng_unit(struct rng *r)
{
    return (double)(rng_next(r) >> 11) * 0x1.0p-53;
}

static uint64_t rng_below(struct rng *r, uint64_t n)
{
    const uint64_t v = (uint64_t)(rng_unit(r) * (double)n);
    return v < n ? v : n - 1;
}

/* m of 0..n-1, ascending, each subset equally likely (Knuth's Algorithm S):
 * O(n) time and no memory beyond the output. */
static void pick_sorted(struct rng *r, uint64_t n, uint64_t m, uint64_t *out)
{
    uint64_t need = m;
    for (uint64_t i = 0; i < n && need; i++)
        if (rng_unit(r) * (double)(n - i) < (double)need)
            out[m - need--] = i;
}

/* ---- small helpers ---- */

uint64_t ms_index_default_k(double est_tokens)
{
    if (est_tokens < 1)
        return 1;
    return 1ull << (int)floor(log2(16.0 * sqrt(est_tokens)));
}

double ms_index_quantile(const double *sorted, uint64_t n, double q)
{
    const double pos = q * (double)(n - 1);
    const uint64_t lo = (uint64_t)floor(pos), hi = lo + 1 < n ? lo + 1 : n - 1;
    return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - (double)lo);
}

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int cmp_u32(const void *a, const void *b)
{
    const uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* Sort and deduplicate codes[0, n) in place; returns the distinct count. */
static uint64_t unique_codes(uint32_t *codes, uint64_t n)
{
    uint64_t m = 0;
    if (n < 32) { /* documents are short: insertion sort */
        for (uint64_t i = 1; i < n; i++) {
            const uint32_t v = codes[i];
            uint64_t j = i;
            for (; j > 0 && codes[j - 1] > v; j--)
                codes[j] = codes[j - 1];
            codes[j] = v;
        }
    } else {
        qsort(codes, n, sizeof *codes, cmp_u32);
    }
    for (uint64_t i = 0; i < n; i++)
        if (i == 0 || codes[i] != codes[i - 1])
            codes[m++] = codes[i];
    return m;
}

static void path_of(char *buf, size_t cap, const char *dir, const char *name)
{
    snprintf(buf, cap, "%s/%s", dir, name);
}

static int write_fail(struct ms_err *err, const char *path)
{
    return ms_err_set(err, MS_ERR_RUNTIME, "cannot write '%s': %s", path, strerror(errno));
}

/* Write a whole small file. */
static int write_file(const char *dir, const char *name, const void *a, size_t na, const void *b,
                      size_t nb, struct ms_err *err)
{
    char path[4096];
    FILE *f;
    path_of(path, sizeof path, dir, name);
    if (!(f = fopen(path, "wbx")))
        return write_fail(err, path);
    const int ok = fwrite(a, 1, na, f) == na && (!nb || fwrite(b, 1, nb, f) == nb);
    if (fclose(f) != 0 || !ok)
        return write_fail(err, path);
    return MS_OK;
}

static int write_npy(const char *dir, const char *name, const char *descr, int rank,
                     const uint64_t *shape, const void *data, size_t bytes, struct ms_err *err)
{
    char hdr[256];
    const size_t hlen = ms_npy_header(hdr, descr, rank, shape);
    return write_file(dir, name, hdr, hlen, data, bytes, err);
}

static int write_json(const char *dir, const char *name, json_t *j, struct ms_err *err)
{
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
    if (!s)
        return ms_err_set(err, MS_ERR_RUNTIME, "out of memory");
    const int rc = write_file(dir, name, s, strlen(s), "\n", 1, err);
    free(s);
    return rc;
}

/* Remove the plain files of a directory we made, then the directory. */
static void remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char path[4096];
    if (d) {
        while ((e = readdir(d)))
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
                path_of(path, sizeof path, dir, e->d_name);
                unlink(path);
            }
        closedir(d);
    }
    rmdir(dir);
}

int ms_index_check_output(const char *dir, struct ms_err *err)
{
    struct stat st;
    char path[4096];
    if (stat(dir, &st) != 0) {
        if (errno == ENOENT) {
            /* the temporary directory goes beside it: the parent must exist */
            size_t n = strlen(dir);
            while (n > 1 && dir[n - 1] == '/')
                n--;
            while (n > 0 && dir[n - 1] != '/')
                n--;
            snprintf(path, sizeof path, "%.*s", n ? (int)n : 1, n ? dir : ".");
            if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
                return ms_err_set(err, MS_ERR_INPUT,
                                  "cannot create the index directory '%s': its parent '%s' is "
                                  "not a directory",
                                  dir, path);
            return MS_OK;
        }
        return ms_err_set(err, MS_ERR_INPUT, "cannot use '%s' as the index directory: %s", dir,
                          strerror(errno));
    }
    if (!S_ISDIR(st.st_mode))
        return ms_err_set(err, MS_ERR_INPUT,
                          "'%s' exists and is not a directory; expected a new directory, an "
                          "empty one or an index to replace",
                          dir);
    path_of(path, sizeof path, dir, "metadata.json");
    if (access(path, F_OK) == 0)
        return MS_OK;
    DIR *d = opendir(dir);
    struct dirent *e;
    int empty = 1;
    if (!d)
        return ms_err_set(err, MS_ERR_INPUT, "cannot read directory '%s': %s", dir,
                          strerror(errno));
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            empty = 0;
    closedir(d);
    if (!empty)
        return ms_err_set(err, MS_ERR_INPUT,
                          "'%s' is a directory that is neither empty nor an index (no "
                          "metadata.json); expected a new directory, an empty one or an index",
                          dir);
    return MS_OK;
}

/* A temporary directory beside `dir`: DIR.tmp-XXXXXX. */
static int make_tmp_dir(const char *dir, char *tmp, size_t cap, struct ms_err *err)
{
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/')
        n--;
    if ((size_t)snprintf(tmp, cap, "%.*s.tmp-XXXXXX", (int)n, dir) >= cap)
        return ms_err_set(err, MS_ERR_INPUT, "index path too long: '%s'", dir);
    if (!mkdtemp(tmp))
        return ms_err_set(err, MS_ERR_RUNTIME, "cannot create a directory beside '%s': %s", dir,
                          strerror(errno));
    return MS_OK;
}

/* Put the finished tmp directory at dir: a plain rename when dir is absent
 * or empty, else an atomic exchange and the old index removed. */
static int commit_dir(const char *tmp, const char *dir, struct ms_err *err)
{
    if (rename(tmp, dir) == 0)
        return MS_OK;
    if (errno != ENOTEMPTY && errno != EEXIST)
        return ms_err_set(err, MS_ERR_RUNTIME, "cannot rename '%s' to '%s': %s", tmp, dir,
                          strerror(errno));
    if (renameat2(AT_FDCWD, tmp, AT_FDCWD, dir, RENAME_EXCHANGE) != 0)
        return ms_err_set(err, MS_ERR_RUNTIME, "cannot replace '%s' by '%s': %s", dir, tmp,
                          strerror(errno));
    remove_dir(tmp); /* now the old index */
    return MS_OK;
}

/* ---- the build ---- */

struct codec {
    uint32_t dim, k, nbits;
    float *cents; /* [k * dim] as stored (float16-rounded for fast-plaid) */
    float cutoffs[255];
    float weights[256];
    float *avg_residual; /* [dim] */
    float cluster_threshold;
};

static void codec_release(struct codec *c)
{
    free(c->cents);
    free(c->avg_residual);
}

/* The device's share of the statistics. */
static void dev_stats(const struct ms_index_dev *dev, struct ms_index_stats *st)
{
    struct ms_index_recheck rs;
    ms_index_dev_recheck_stats(dev, &rs);
    st->kernel_s = ms_index_dev_kernel_s(dev);
    st->device_peak = ms_index_dev_peak_bytes(dev);
    st->assign = ms_index_dev_assign_name(dev);
    st->assign_points = rs.points;
    st->rechecked = rs.rechecked;
    st->approx_s = rs.approx_s;
    st->recheck_s = rs.recheck_s;
}

/* Points [n, dim] as the corpus stores them: float32, or float16 words
 * (half the memory of float32, and the device converts them on load). Every
 * host computation reads them as the same float32 values either way
 * (float16 to float32 is exact), so the index does not depend on the type. */
struct points {
    const void *x;
    enum ms_dtype dtype;
    uint32_t dim;
};

/* A float16 word as float32, exactly, for finite values (the readers refuse
 * the rest): its magnitude bits shifted into float32's place make a float
 * 2^-112 times the value, normal or subnormal; one exact multiplication
 * and the sign. Inline and branch-free: the k-means sums call it 128 times
 * a point (ms_half_to_float is a call with branches). */
static inline float half_value(uint16_t h)
{
    uint32_t u = (uint32_t)(h & 0x7fff) << 13;
    float f;
    memcpy(&f, &u, 4);
    f *= 0x1p112f;
    memcpy(&u, &f, 4);
    u |= (uint32_t)(h & 0x8000) << 16;
    memcpy(&f, &u, 4);
    return f;
}

static const void *point_at(const struct points *p, uint64_t i)
{
    return (const char *)p->x + i * p->dim * ms_dtype_size(p->dtype);
}

/* Point i as float32 into out[dim]. */
static void point_f32(const struct points *p, uint64_t i, float *out)
{
    if (p->dtype == MS_DTYPE_F32) {
        memcpy(out, point_at(p, i), p->dim * 4);
        return;
    }
    const uint16_t *h = point_at(p, i);
    for (uint32_t d = 0; d < p->dim; d++)
        out[d] = half_value(h[d]);
}

/* Step 1: the sample's rows: n_pick of the source's, ascending (the draw
 * that k-means' sample takes from r). */
static uint64_t *sample_rows(const struct ms_src *src, uint64_t n_pick, struct rng *r,
                             struct ms_err *err)
{
    uint64_t *rows = ms_malloc((n_pick ? n_pick : 1) * sizeof *rows, err);
    if (rows)
        pick_sorted(r, src->n_rows, n_pick, rows);
    return rows;
}

static int cmp_u64(const void *a, const void *b)
{
    const uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

struct heldout {
    uint64_t *rows, n, part_row, part_take, tokens;
};

/*
 * The held-out documents, from which the codec's cutoffs and weights come:
 * documents drawn at random (own generator, seeded from --seed, so the
 * k-means sample and start are not changed by it) until they hold `held`
 * tokens, the last one drawn giving only its last tokens, as fast-plaid's
 * create() takes them from the end of its own shuffle of the documents.
 * That shuffle is not compute_kmeans' sample, so most held-out tokens (82%
 * at 1M documents) are not k-means points: their residuals are those of the
 * tokens the codec will code. The sample's own tail (training points, nearer
 * their centroids) gave cutoffs about 3% narrower than fast-plaid's on the
 * same centroids and recall@10 0.805 against 0.809 at 1M (docs/index-notes.md).
 * rows: ascending; the partly taken row is `part_row` (its last `part_take`
 * tokens), or UINT64_MAX when every row is taken whole.
 */
static int pick_heldout(const struct ms_src *src, uint64_t held, uint64_t seed, struct heldout *h,
                        struct ms_err *err)
{
    struct rng r = { seed ^ 0x5DEECE66DA3C2F17ull }; /* an independent stream */
    uint8_t *seen = ms_calloc(src->n_rows / 8 + 1, 1, err);
    uint64_t cap = 64, got = 0;
    memset(h, 0, sizeof *h);
    h->part_row = UINT64_MAX;
    h->rows = ms_malloc(cap * sizeof *h->rows, err);
    if (!seen || !h->rows) {
        free(seen);
        free(h->rows);
        h->rows = NULL;
        return err->status;
    }
    /* held <= the sample's tokens <= the corpus's, so the draw ends */
    for (uint64_t drawn = 0; got < held && drawn < src->n_rows;) {
        const uint64_t j = rng_below(&r, src->n_rows);
        if (seen[j >> 3] & (1u << (j & 7)))
            continue;
        seen[j >> 3] |= (uint8_t)(1u << (j & 7));
        drawn++;
        const uint64_t len = ms_src_row_len(src, j);
        if (len == 0)
            continue;
        if (h->n == cap) {
            uint64_t *more = realloc(h->rows, 2 * cap * sizeof *more);
            if (!more) {
                free(seen);
                free(h->rows);
                h->rows = NULL;
                return ms_err_set(err, MS_ERR_RUNTIME, "out of memory (held-out rows)");
            }
            h->rows = more;
            cap *= 2;
        }
        h->rows[h->n++] = j;
        if (got + len > held) {
            h->part_row = j;
            h->part_take = held - got;
        }
        got += len < held - got ? len : held - got;
    }
    free(seen);
    h->tokens = got;
    qsort(h->rows, h->n, sizeof *h->rows, cmp_u64);
    return MS_OK;
}

/* The held-out tokens of h out of e (which holds, in ascending order, at
 * least h's rows; e_rows[i] is the source row of e's row i), contiguous in
 * ascending row order, into *out (malloc'd, h->tokens points). */
static int gather_heldout(const struct ms_emb *e, const uint64_t *e_rows, const struct heldout *h,
                          void **out, struct ms_err *err)
{
    const size_t pt = e->dim * ms_dtype_size(e->dtype);
    char *dst = ms_malloc((h->tokens ? h->tokens : 1) * pt, err);
    uint64_t at = 0;
    if (!(*out = dst))
        return err->status;
    for (uint64_t i = 0, k = 0; i < e->n_rows && k < h->n; i++) {
        if (e_rows[i] != h->rows[k])
            continue;
        uint64_t a = e->offsets[i], len = e->offsets[i + 1] - a;
        if (h->rows[k] == h->part_row) {
            a += len - h->part_take;
            len = h->part_take;
        }
        memcpy(dst + at * pt, (const char *)e->tokens + a * pt, len * pt);
        at += len;
        k++;
    }
    return MS_OK;
}

/* The sample's tokens (rows `rows`, ascending) and the held-out ones (h),
 * read once: a .npy or HDF5 file in two reads, by several threads each,
 * straight into the buffer k-means uses (ms_src_read_rows); a stream, which
 * reads each row once and in order, in one read of both sets of rows, the
 * rows not in the sample then squeezed out of the buffer. */
static int read_sample(struct ms_src *src, const uint64_t *rows, uint64_t n_pick,
                       const struct heldout *h, struct ms_emb *e, void **held_x, struct ms_err *err)
{
    int rc;
    if (!src->sequential_only) {
        struct ms_emb he;
        ms_emb_init(&he);
        if ((rc = ms_src_read_rows(src, rows, n_pick, e, err)) == MS_OK &&
            (rc = ms_src_read_rows(src, h->rows, h->n, &he, err)) == MS_OK)
            rc = gather_heldout(&he, h->rows, h, held_x, err);
        ms_emb_release(&he);
        return rc;
    }
    /* the union of both row sets, ascending */
    uint64_t *all = ms_malloc((n_pick + h->n + 1) * sizeof *all, err), n_all = 0;
    if (!all)
        return err->status;
    for (uint64_t i = 0, k = 0; i < n_pick || k < h->n;) {
        if (k == h->n || (i < n_pick && rows[i] < h->rows[k]))
            all[n_all++] = rows[i++];
        else if (i == n_pick || h->rows[k] < rows[i])
            all[n_all++] = h->rows[k++];
        else {
            all[n_all++] = rows[i++];
            k++;
        }
    }
    if ((rc = ms_src_read_rows(src, all, n_all, e, err)) == MS_OK &&
        (rc = gather_heldout(e, all, h, held_x, err)) == MS_OK) {
        /* keep the sample's rows only, in place (they only move towards the front) */
        const size_t pt = e->dim * ms_dtype_size(e->dtype);
        uint64_t at = 0, r = 0;
        for (uint64_t i = 0; i < n_all; i++) {
            const uint64_t a = e->offsets[i], len = e->offsets[i + 1] - a;
            if (r < n_pick && all[i] == rows[r]) {
                if (at != a)
                    memmove((char *)e->tokens + at * pt, (char *)e->tokens + a * pt, len * pt);
                e->offsets[r] = at;
                at += len;
                r++;
            }
        }
        e->offsets[n_pick] = at;
        e->n_rows = n_pick;
        e->first_row = n_pick ? rows[0] : 0;
    }
    free(all);
    return rc;
}

#define HOST_THREADS 16 /* threads of the host's share of a build, at most (stack arrays) */

/* Threads for n work items: the online cores, at most HOST_THREADS and n, at least 1. */
static uint64_t host_threads(uint64_t n)
{
    const long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    uint64_t nt = ncpu < 1 ? 1 : ncpu > HOST_THREADS ? HOST_THREADS : (uint64_t)ncpu;
    nt = n < nt ? n : nt;
    return nt ? nt : 1;
}

/* k-means' cluster sums of one block: each thread owns a range of clusters
 * and adds, in point order, the points labelled with one of them, so every
 * sum is added in the same order as by one thread (the same bits whatever
 * the thread count). A cluster row of sums (1 KiB at dim 128) is a cache
 * miss a point; threads overlap those misses (300-400 ns a point on one core).
 * Grouping a block's points by cluster first (a stable counting sort, so
 * each row stays in cache) was tried: the point then is the random access,
 * and with the sort it was 1.1-3x slower on 2 cores (K 65,536 and 1,024). */
struct sum_part {
    const struct points *p;
    const uint32_t *lab;
    uint64_t n, c_lo, c_hi;
    double *sums;
    uint64_t *cnt;
};

static void *sum_part_run(void *arg)
{
    const struct sum_part *w = arg;
    const uint32_t dim = w->p->dim;
    for (uint64_t i = 0; i < w->n; i++) {
        const uint64_t c = w->lab[i];
        if (c < w->c_lo || c >= w->c_hi)
            continue;
        double *sc = w->sums + c * dim;
        w->cnt[c]++;
        if (w->p->dtype == MS_DTYPE_F32) {
            const float *x = (const float *)w->p->x + i * dim;
            for (uint32_t d = 0; d < dim; d++)
                sc[d] += x[d];
        } else {
            const uint16_t *x = (const uint16_t *)w->p->x + i * dim;
            for (uint32_t d = 0; d < dim; d++)
                sc[d] += half_value(x[d]);
        }
    }
    return NULL;
}

/* sums[c] += the points of cluster c among p's points [0, n) (labels lab), in point order. */
static void cluster_sums(const struct points *p, const uint32_t *lab, uint64_t n, uint64_t k,
                         double *sums, uint64_t *cnt)
{
    struct sum_part w[HOST_THREADS];
    const uint64_t nt = n < 4096 ? 1 : host_threads(k); /* small blocks: not worth threads */
    for (uint64_t t = 0; t < nt; t++)
        w[t] = (struct sum_part){ p, lab, n, k * t / nt, k * (t + 1) / nt, sums, cnt };
    ms_par_run(sum_part_run, w, sizeof *w, nt);
}

/* The sums of one block on a thread of their own while the caller has the
 * device assign the next block (two label buffers). */
struct sum_job {
    struct points p; /* the block's points */
    const uint32_t *lab;
    uint64_t n, k;
    double *sums;
    uint64_t *cnt;
};

static void *sum_job_run(void *arg)
{
    const struct sum_job *j = arg;
    cluster_sums(&j->p, j->lab, j->n, j->k, j->sums, j->cnt);
    return NULL;
}

/* Points per k-means launch: all of them when the device is a GPU and they
 * fit comfortably (then they are loaded once for every iteration instead of
 * block by block every iteration), else KMEANS_BLOCK; o->kmeans_block
 * overrides. */
static uint64_t kmeans_block(const struct ms_cl *cl, const struct ms_index_opts *o, uint64_t n,
                             uint32_t dim)
{
    uint64_t b = KMEANS_BLOCK;
    /* the device holds a block as float32 twice (as read, transposed) and a float16 copy */
    const uint64_t bytes = n * dim * 10;
    if (o->kmeans_block)
        b = o->kmeans_block;
    else if (cl && !(cl->info.type & CL_DEVICE_TYPE_CPU) && bytes <= cl->info.global_mem / 4 &&
             n * dim * 4 <= cl->info.max_alloc / 2)
        b = n;
    return b < n ? b : n ? n : 1;
}

/* Step 2: k-means on the points pts (n of them, in blocks of `block`);
 * cents [k * dim] out (not normalized). With overlap, a block's sums run on
 * a thread while the device assigns the next block. */
static int kmeans(struct ms_index_dev *dev, const struct points *pts, uint64_t n, uint64_t k,
                  uint32_t iters, uint64_t block, int overlap, struct rng *r, float *cents,
                  struct ms_index_stats *st, struct ms_err *err)
{
    const uint32_t dim = pts->dim;
    uint64_t *pick = ms_malloc(k * sizeof *pick, err), *cnt = ms_calloc(k, sizeof *cnt, err);
    double *sums = ms_malloc(k * dim * sizeof *sums, err);
    float *bias = ms_malloc(k * sizeof *bias, err);
    uint32_t *lab[2] = { ms_malloc(block * sizeof **lab, err),
                         n > block ? ms_malloc(block * sizeof **lab, err) : NULL };
    struct sum_job job;
    pthread_t th;
    int rc = MS_OK, running = 0;

    if (!pick || !cnt || !sums || !bias || !lab[0] || (n > block && !lab[1])) {
        rc = err->status;
        goto out;
    }
    pick_sorted(r, n, k, pick);
    for (uint64_t c = 0; c < k; c++)
        point_f32(pts, pick[c], cents + c * dim);
    for (uint32_t it = 0; it < iters && rc == MS_OK; it++) {
        double t = ms_now();
        /* nearest in L2 = largest <x, c> - |c|^2 / 2 */
        for (uint64_t c = 0; c < k; c++) {
            double s2 = 0;
            for (uint32_t d = 0; d < dim; d++)
                s2 += (double)cents[c * dim + d] * cents[c * dim + d];
            bias[c] = (float)(-0.5 * s2);
        }
        if ((rc = ms_index_dev_set_centroids(dev, cents, bias, (uint32_t)k, err)) != MS_OK)
            break;
        memset(sums, 0, k * dim * sizeof *sums);
        memset(cnt, 0, k * sizeof *cnt);
        st->kmeans_host_s += ms_now() - t;
        for (uint64_t b0 = 0, bi = 0; b0 < n && rc == MS_OK; b0 += block, bi++) {
            const uint64_t nb = n - b0 < block ? n - b0 : block;
            uint32_t *l = lab[bi & 1];
            t = ms_now();
            /* one block: loaded once for every iteration */
            if ((n > block || it == 0) &&
                (rc = ms_index_dev_load(dev, point_at(pts, b0), pts->dtype, nb, err)) != MS_OK)
                break;
            st->kmeans_load_s += ms_now() - t;
            t = ms_now();
            if ((rc = ms_index_dev_assign(dev, l, err)) != MS_OK)
                break;
            st->kmeans_assign_s += ms_now() - t;
            t = ms_now();
            if (running) /* the previous block's sums, on the thread */
                pthread_join(th, NULL);
            running = 0;
            job = (struct sum_job){ { point_at(pts, b0), pts->dtype, dim }, l, nb, k, sums, cnt };
            /* the last block of an iteration: nothing to overlap with */
            if (overlap && b0 + nb < n && pthread_create(&th, NULL, sum_job_run, &job) == 0)
                running = 1;
            else
                sum_job_run(&job);
            st->kmeans_host_s += ms_now() - t;
        }
        if (running)
            pthread_join(th, NULL);
        running = 0;
        t = ms_now();
        for (uint64_t c = 0; c < k && rc == MS_OK; c++) {
            if (cnt[c])
                for (uint32_t d = 0; d < dim; d++)
                    cents[c * dim + d] = (float)(sums[c * dim + d] / (double)cnt[c]);
            else /* fastkmeans: an empty cluster restarts at a random point */
                point_f32(pts, rng_below(r, n), cents + c * dim);
        }
        st->kmeans_host_s += ms_now() - t;
    }
out:
    if (running)
        pthread_join(th, NULL);
    free(pick);
    free(cnt);
    free(sums);
    free(bias);
    free(lab[0]);
    free(lab[1]);
    return rc;
}

/* The float32 residuals sorted, stably, ascending, -0 as +0 (so the same
 * order as qsort with cmp_double, which is a merge sort in glibc): LSD radix
 * sort, a byte a pass, of the ordered keys of the bits. qsort of 6.4 M
 * doubles (50,000 held-out tokens of 128) took about a second. */
static uint32_t float_key_asc(uint32_t u)
{
    u = u == 0x80000000u ? 0 : u;
    return u & 0x80000000u ? ~u : u | 0x80000000u;
}

static int sort_floats(uint32_t *v, uint64_t n, struct ms_err *err)
{
    uint32_t *tmp = ms_malloc((n ? n : 1) * sizeof *tmp, err), *a = v, *b = tmp;
    if (!tmp)
        return err->status;
    for (int shift = 0; shift < 32; shift += 8) {
        uint64_t count[257] = { 0 };
        for (uint64_t i = 0; i < n; i++)
            count[((float_key_asc(a[i]) >> shift) & 255) + 1]++;
        for (int i = 0; i < 256; i++)
            count[i + 1] += count[i];
        for (uint64_t i = 0; i < n; i++)
            b[count[(float_key_asc(a[i]) >> shift) & 255]++] = a[i];
        uint32_t *x = a;
        a = b;
        b = x;
    }
    /* four passes: the result is back in v */
    free(tmp);
    return MS_OK;
}

/* Linear-interpolation quantile of float32 bit patterns sorted by sort_floats. */
static double quantile_bits(const uint32_t *sorted, uint64_t n, double q)
{
    const double pos = q * (double)(n - 1);
    const uint64_t lo = (uint64_t)floor(pos), hi = lo + 1 < n ? lo + 1 : n - 1;
    float a, b;
    memcpy(&a, &sorted[lo], 4);
    memcpy(&b, &sorted[hi], 4);
    return (double)a + ((double)b - (double)a) * (pos - (double)lo);
}

/* Step 3: cutoffs, weights, avg_residual, cluster_threshold from held-out
 * points, coded with the stored centroids (already on the device). */
static int residual_stats(struct ms_index_dev *dev, const struct points *pts, uint64_t n,
                          struct codec *c, struct ms_err *err)
{
    const uint32_t dim = c->dim, nb = 1u << c->nbits;
    uint32_t *codes = ms_malloc(n * sizeof *codes, err);
    uint32_t *flat = ms_malloc(n * dim * sizeof *flat, err);
    double *norms = ms_malloc(n * 8, err);
    double *abs_sum = ms_calloc(dim, sizeof *abs_sum, err);
    float *x = ms_malloc(dim * 4, err);
    int rc = MS_OK;

    if (!codes || !flat || !norms || !abs_sum || !x ||
        !(c->avg_residual = ms_malloc(dim * 4, err))) {
        rc = err->status;
        goto out;
    }
    for (uint64_t b0 = 0; b0 < n && rc == MS_OK; b0 += KMEANS_BLOCK) {
        const uint64_t m = n - b0 < KMEANS_BLOCK ? n - b0 : KMEANS_BLOCK;
        if ((rc = ms_index_dev_load(dev, point_at(pts, b0), pts->dtype, m, err)) == MS_OK)
            rc = ms_index_dev_assign(dev, codes + b0, err);
    }
    if (rc != MS_OK)
        goto out;
    for (uint64_t i = 0; i < n; i++) {
        double ss = 0;
        point_f32(pts, i, x);
        for (uint32_t d = 0; d < dim; d++) {
            /* the residual as the device computes it: float32 */
            const float r = x[d] - c->cents[(uint64_t)codes[i] * dim + d];
            memcpy(&flat[i * dim + d], &r, 4);
            abs_sum[d] += fabs(r);
            ss += (double)r * r;
        }
        norms[i] = sqrt(ss);
    }
    for (uint32_t d = 0; d < dim; d++)
        c->avg_residual[d] = (float)(abs_sum[d] / (double)n);
    if ((rc = sort_floats(flat, n * dim, err)) != MS_OK)
        goto out;
    qsort(norms, n, sizeof *norms, cmp_double);
    for (uint32_t i = 1; i < nb; i++)
        c->cutoffs[i - 1] = (float)quantile_bits(flat, n * dim, (double)i / nb);
    for (uint32_t i = 0; i < nb; i++)
        c->weights[i] = (float)quantile_bits(flat, n * dim, (i + 0.5) / nb);
    c->cluster_threshold = (float)ms_index_quantile(norms, n, 0.75);
out:
    free(codes);
    free(flat);
    free(norms);
    free(abs_sum);
    free(x);
    return rc;
}

/* Where new documents go: chunk files numbered from chunk_base. */
struct layout {
    const char *dir;
    uint64_t chunk_base, docs_per_chunk;
    uint64_t token_base; /* tokens of the index before these documents */
    int next_plaid;
    uint32_t packed; /* bytes of residuals per token */
};

static uint64_t n_chunks_for(uint64_t n_docs, uint64_t per)
{
    return n_docs ? (n_docs + per - 1) / per : 0;
}

/* Open chunk c (of the new documents): headers, doclens and metadata. */
static int chunk_open(const struct layout *L, const struct ms_src *src, uint64_t c, FILE **fc,
                      FILE **fr, struct ms_err *err)
{
    const uint64_t d0 = c * L->docs_per_chunk;
    const uint64_t d1 = d0 + L->docs_per_chunk < src->n_rows ? d0 + L->docs_per_chunk : src->n_rows;
    const uint64_t t0 = src->starts[d0], t1 = src->starts[d1], num = L->chunk_base + c;
    char name[64], path[4096], hdr[256];
    FILE *f;
    int rc;

    /* doclens.N.json: one integer a document */
    snprintf(name, sizeof name, "doclens.%llu.json", (unsigned long long)num);
    path_of(path, sizeof path, L->dir, name);
    if (!(f = fopen(path, "wbx")))
        return write_fail(err, path);
    int ok = fputc('[', f) != EOF;
    for (uint64_t d = d0; d < d1 && ok; d++)
        ok = fprintf(f, d > d0 ? ",%llu" : "%llu", (unsigned long long)ms_src_row_len(src, d)) > 0;
    ok = ok && fputs("]\n", f) != EOF;
    if (fclose(f) != 0 || !ok)
        return write_fail(err, path);
    json_t *m =
        json_pack("{s:I,s:I,s:I}", "num_documents", (json_int_t)(d1 - d0), "num_embeddings",
                  (json_int_t)(t1 - t0), "embedding_offset", (json_int_t)(L->token_base + t0));
    snprintf(name, sizeof name, "%llu.metadata.json", (unsigned long long)num);
    rc = m ? write_json(L->dir, name, m, err) : ms_err_set(err, MS_ERR_RUNTIME, "out of memory");
    json_decref(m);
    if (rc != MS_OK)
        return rc;
    const uint64_t shape[2] = { t1 - t0, L->packed };
    snprintf(name, sizeof name, "%llu.codes.npy", (unsigned long long)num);
    path_of(path, sizeof path, L->dir, name);
    if (!(*fc = fopen(path, "wbx")))
        return write_fail(err, path);
    size_t hl = ms_npy_header(hdr, "<i8", 1, shape);
    if (fwrite(hdr, 1, hl, *fc) != hl)
        return write_fail(err, path);
    snprintf(name, sizeof name, "%llu.residuals.npy", (unsigned long long)num);
    path_of(path, sizeof path, L->dir, name);
    if (!(*fr = fopen(path, "wbx")))
        return write_fail(err, path);
    hl = ms_npy_header(hdr, L->next_plaid ? "|u1" : "<u1", 2, shape);
    if (fwrite(hdr, 1, hl, *fr) != hl)
        return write_fail(err, path);
    return MS_OK;
}

static int chunk_close(FILE **fc, FILE **fr, const char *dir, struct ms_err *err)
{
    int bad = 0;
    if (*fc && fclose(*fc) != 0)
        bad = 1;
    if (*fr && fclose(*fr) != 0)
        bad = 1;
    *fc = *fr = NULL;
    if (bad)
        return ms_err_set(err, MS_ERR_RUNTIME, "cannot write the chunk files in '%s': %s", dir,
                          strerror(errno));
    return MS_OK;
}

/* Step 4's host share, one block at a time on a writer thread while the
 * device codes the next block: the codes widened to int64 and both arrays
 * appended to the chunk files, cut at chunk boundaries (chunks open and
 * close here). Two sets of buffers: the device fills one while the writer
 * empties the other; blocks are written in order (one writer at a time). */
struct enc_buf {
    uint32_t *codes;
    int64_t *codes64;
    uint8_t *packed;
    uint64_t *offsets; /* the block's row offsets, copied: the stream reuses its block */
    uint64_t cap, rows_cap, first_row, n_rows;
};

struct chunk_writer {
    const struct layout *L;
    const struct ms_src *src;
    FILE *fc, *fr;
    uint64_t chunk_end;
    const struct enc_buf *buf; /* the block to write */
    int rc;
    struct ms_err err;
};

static void *write_block(void *arg)
{
    struct chunk_writer *w = arg;
    const struct enc_buf *b = w->buf;
    const struct layout *L = w->L;
    const uint64_t n = b->offsets[b->n_rows];
    for (uint64_t i = 0; i < n; i++)
        b->codes64[i] = b->codes[i];
    for (uint64_t r = 0; r < b->n_rows && w->rc == MS_OK;) {
        const uint64_t doc = b->first_row + r;
        if (doc >= w->chunk_end) {
            if ((w->rc = chunk_close(&w->fc, &w->fr, L->dir, &w->err)) != MS_OK)
                break;
            const uint64_t chunk = doc / L->docs_per_chunk;
            w->chunk_end = (chunk + 1) * L->docs_per_chunk;
            if ((w->rc = chunk_open(L, w->src, chunk, &w->fc, &w->fr, &w->err)) != MS_OK)
                break;
        }
        const uint64_t r1 =
            b->n_rows < r + (w->chunk_end - doc) ? b->n_rows : r + (w->chunk_end - doc);
        const uint64_t t0 = b->offsets[r], t1 = b->offsets[r1];
        if (fwrite(b->codes64 + t0, 8, t1 - t0, w->fc) != t1 - t0 ||
            fwrite(b->packed + t0 * L->packed, L->packed, t1 - t0, w->fr) != t1 - t0)
            w->rc = ms_err_set(&w->err, MS_ERR_RUNTIME, "cannot write the chunk files in '%s': %s",
                               L->dir, strerror(errno));
        r = r1;
    }
    return NULL;
}

/* Room in b for a block of n tokens and rows rows. */
static int enc_buf_reserve(struct enc_buf *b, uint64_t n, uint64_t rows, uint32_t packed,
                           struct ms_err *err)
{
    if (n > b->cap) {
        free(b->codes);
        free(b->codes64);
        free(b->packed);
        b->cap = 0;
        if (!(b->codes = ms_malloc(n * 4, err)) || !(b->codes64 = ms_malloc(n * 8, err)) ||
            !(b->packed = ms_malloc(n * packed, err)))
            return err->status;
        b->cap = n;
    }
    if (rows + 1 > b->rows_cap) {
        free(b->offsets);
        b->rows_cap = 0;
        if (!(b->offsets = ms_malloc((rows + 1) * sizeof *b->offsets, err)))
            return err->status;
        b->rows_cap = rows + 1;
    }
    return MS_OK;
}

static void enc_buf_release(struct enc_buf *b)
{
    free(b->codes);
    free(b->codes64);
    free(b->packed);
    free(b->offsets);
}

/* Step 4: code and compress every document of src into chunk files. */
static int encode_all(struct ms_index_dev *dev, struct ms_src *src, const struct codec *c,
                      const struct layout *L, const struct ms_index_opts *o,
                      ms_index_progress_fn fn, void *ctx, double *wait_s, struct ms_err *err)
{
    struct ms_stream *s = NULL;
    const struct ms_emb *b;
    struct enc_buf bufs[2] = { { 0 }, { 0 } };
    struct chunk_writer w = { .L = L, .src = src };
    uint64_t done = 0, bi = 0;
    pthread_t th;
    int rc, running = 0;

    if (fn)
        fn(ctx, "encode", 0, src->n_tokens);
    if ((rc = ms_stream_start(&s, src, 0, src->n_rows, o->block_docs, o->block_tokens, NULL,
                              err)) != MS_OK)
        return rc;
    while ((rc = ms_stream_next(s, &b, err)) == MS_OK && b) {
        const uint64_t n = ms_emb_n_tokens(b);
        struct enc_buf *buf = &bufs[bi++ & 1]; /* the writer holds the other one, if any */
        if ((rc = enc_buf_reserve(buf, n, b->n_rows, L->packed, err)) != MS_OK ||
            (rc = ms_index_dev_load(dev, b->tokens, b->dtype, n, err)) != MS_OK ||
            (rc = ms_index_dev_assign(dev, buf->codes, err)) != MS_OK ||
            (rc = ms_index_dev_compress(dev, c->cutoffs, c->nbits, buf->packed, err)) != MS_OK)
            break;
        memcpy(buf->offsets, b->offsets, (b->n_rows + 1) * sizeof *buf->offsets);
        buf->first_row = b->first_row;
        buf->n_rows = b->n_rows;
        const double t = ms_now();
        if (running)
            pthread_join(th, NULL);
        running = 0;
        *wait_s += ms_now() - t;
        if ((rc = w.rc) != MS_OK) {
            *err = w.err;
            break;
        }
        w.buf = buf;
        if (o->serial_host || pthread_create(&th, NULL, write_block, &w) != 0)
            write_block(&w);
        else
            running = 1;
        done += n;
        if (fn)
            fn(ctx, "encode", done, src->n_tokens);
    }
    if (running)
        pthread_join(th, NULL);
    if (rc == MS_OK && (rc = w.rc) != MS_OK)
        *err = w.err;
    if (rc == MS_OK)
        rc = chunk_close(&w.fc, &w.fr, L->dir, err);
    else
        chunk_close(&w.fc, &w.fr, L->dir, &w.err);
    ms_stream_stop(s);
    enc_buf_release(&bufs[0]);
    enc_buf_release(&bufs[1]);
    return rc;
}

/* Step 5: the IVF, from every document's distinct codes: the old documents
 * of an index being appended to (through the reader, one thread), then the
 * new chunk files, several at a time. Counting is one pass; filling gives
 * each chunk of a group its own start in every list (the counts of the
 * chunks before it, counted again), so lists hold ascending document ids
 * and the bytes do not depend on the thread count. */
struct ivf_job {
    const struct layout *L;
    const struct ms_src *src;
    uint64_t chunk, doc0; /* chunk number (of the new ones), its first document id */
    uint32_t k;
    uint64_t *cnt; /* [k]: counts added here, or NULL */
    uint64_t *pos; /* [k]: next slot of each list, with fill */
    int64_t *fill; /* the IVF, or NULL */
    struct ms_err err;
    int rc;
};

/* A document's m distinct codes: counted into cnt, or its id written at fill[pos[c]++]. */
static void ivf_emit(uint64_t doc, const uint32_t *codes, uint64_t m, uint64_t *cnt, uint64_t *pos,
                     int64_t *fill)
{
    for (uint64_t i = 0; i < m; i++) {
        if (fill)
            fill[pos[codes[i]]++] = (int64_t)doc;
        else
            cnt[codes[i]]++;
    }
}

/* One chunk file: its documents' distinct codes counted into cnt or written
 * at fill[pos[c]++]. */
static int ivf_chunk(const struct layout *L, const struct ms_src *src, uint64_t c, uint64_t doc,
                     uint64_t *cnt, uint64_t *pos, int64_t *fill, struct ms_err *err)
{
    const uint64_t d0 = c * L->docs_per_chunk;
    const uint64_t d1 = d0 + L->docs_per_chunk < src->n_rows ? d0 + L->docs_per_chunk : src->n_rows;
    const uint64_t n_tok = src->starts[d1] - src->starts[d0];
    char name[64], path[4096], hdr[256];
    const uint64_t shape[1] = { n_tok };
    const size_t hl = ms_npy_header(hdr, "<i8", 1, shape);
    snprintf(name, sizeof name, "%llu.codes.npy", (unsigned long long)(L->chunk_base + c));
    path_of(path, sizeof path, L->dir, name);
    int64_t *b64 = ms_malloc((n_tok ? n_tok : 1) * 8, err);
    uint32_t *buf = NULL;
    int rc = MS_OK, fd = -1;
    if (!b64) {
        rc = err->status;
        goto out;
    }
    uint64_t longest = 1;
    for (uint64_t d = d0; d < d1; d++)
        longest = ms_src_row_len(src, d) > longest ? ms_src_row_len(src, d) : longest;
    if (!(buf = ms_malloc(longest * 4, err))) {
        rc = err->status;
        goto out;
    }
    if ((fd = open(path, O_RDONLY)) < 0) {
        rc = ms_err_set(err, MS_ERR_RUNTIME, "cannot read '%s': %s", path, strerror(errno));
        goto out;
    }
    size_t got = 0;
    const int bad = ms_pread_full(fd, b64, n_tok * 8, (uint64_t)hl, &got) != 0;
    if (bad || got != n_tok * 8) {
        rc = ms_err_set(err, MS_ERR_RUNTIME, "cannot read '%s': %s", path,
                        bad ? strerror(errno) : "short file");
        goto out;
    }
    const int64_t *at = b64;
    for (uint64_t d = d0; d < d1; d++, doc++) {
        const uint64_t len = ms_src_row_len(src, d);
        for (uint64_t i = 0; i < len; i++)
            buf[i] = (uint32_t)at[i];
        at += len;
        ivf_emit(doc, buf, unique_codes(buf, len), cnt, pos, fill);
    }
out:
    if (fd >= 0)
        close(fd);
    free(b64);
    free(buf);
    return rc;
}

static void *ivf_job_run(void *arg)
{
    struct ivf_job *j = arg;
    j->rc = ivf_chunk(j->L, j->src, j->chunk, j->doc0, j->cnt, j->pos, j->fill, &j->err);
    return NULL;
}

/* Run jobs[0, n) at once; the first failing job's error, in job order. */
static int ivf_run_jobs(struct ivf_job *jobs, uint64_t n, struct ms_err *err)
{
    ms_par_run(ivf_job_run, jobs, sizeof *jobs, n);
    for (uint64_t t = 0; t < n; t++)
        if (jobs[t].rc != MS_OK) {
            *err = jobs[t].err;
            return jobs[t].rc;
        }
    return MS_OK;
}

/* Counting (fill NULL: cnt[k] += every list's length) or filling (fill[pos[c]++],
 * pos advanced past every list's documents). */
static int ivf_pass(const struct ms_plaid *old, const struct layout *L, const struct ms_src *src,
                    uint32_t k, uint64_t *cnt, uint64_t *pos, int64_t *fill, struct ms_err *err)
{
    struct ivf_job jobs[HOST_THREADS];
    uint64_t *part = NULL, doc = 0, cap = 0;
    uint32_t *buf = NULL;
    int rc = MS_OK;

    if (old) /* the old documents first: the lowest ids */
        for (; doc < old->n_docs; doc++) {
            const uint64_t t0 = old->doc_off[doc], len = old->doc_off[doc + 1] - t0;
            if (len + 1 > cap) {
                free(buf);
                cap = 2 * (len + 1);
                if (!(buf = ms_malloc(cap * 4, err))) {
                    rc = err->status;
                    goto out;
                }
            }
            ms_plaid_codes(old, t0, len, buf);
            ivf_emit(doc, buf, unique_codes(buf, len), cnt, pos, fill);
        }
    const uint64_t nch = n_chunks_for(src->n_rows, L->docs_per_chunk);
    const uint64_t nt = host_threads(nch);
    /* per-thread counts: [nt][k] */
    if (!(part = ms_malloc(nt * (uint64_t)k * 8, err))) {
        rc = err->status;
        goto out;
    }
    for (uint64_t g = 0; g < nch && rc == MS_OK; g += nt) {
        const uint64_t n = nch - g < nt ? nch - g : nt;
        memset(part, 0, n * (uint64_t)k * 8);
        for (uint64_t t = 0; t < n; t++)
            jobs[t] = (struct ivf_job){ .L = L,
                                        .src = src,
                                        .chunk = g + t,
                                        .doc0 = doc + (g + t) * L->docs_per_chunk,
                                        .k = k,
                                        .cnt = part + t * (uint64_t)k };
        if ((rc = ivf_run_jobs(jobs, n, err)) != MS_OK)
            break;
        if (!fill) {
            for (uint64_t t = 0; t < n; t++)
                for (uint32_t c = 0; c < k; c++)
                    cnt[c] += part[t * (uint64_t)k + c];
            continue;
        }
        /* each chunk's start in every list: after the chunks before it */
        for (uint32_t c = 0; c < k; c++) {
            uint64_t at = pos[c];
            for (uint64_t t = 0; t < n; t++) {
                const uint64_t len = part[t * (uint64_t)k + c];
                part[t * (uint64_t)k + c] = at;
                at += len;
            }
            pos[c] = at;
        }
        for (uint64_t t = 0; t < n; t++) {
            jobs[t].cnt = NULL;
            jobs[t].pos = part + t * (uint64_t)k;
            jobs[t].fill = fill;
        }
        rc = ivf_run_jobs(jobs, n, err);
    }
out:
    free(part);
    free(buf);
    return rc;
}

static int write_ivf(const struct ms_plaid *old, const struct layout *L, const struct ms_src *src,
                     uint32_t k, struct ms_err *err)
{
    uint64_t *cnt = ms_calloc(k, sizeof *cnt, err), *pos = ms_malloc((uint64_t)k * 8, err);
    int32_t *lens = ms_malloc((uint64_t)k * 4, err);
    char path[4096], hdr[256];
    int rc = MS_OK, fd = -1;
    void *map = MAP_FAILED;
    size_t map_len = 0;

    if (!cnt || !pos || !lens) {
        rc = err->status;
        goto out;
    }
    if ((rc = ivf_pass(old, L, src, k, cnt, NULL, NULL, err)) != MS_OK)
        goto out;
    uint64_t total = 0;
    for (uint32_t c = 0; c < k; c++) {
        pos[c] = total;
        total += cnt[c];
        lens[c] = (int32_t)cnt[c];
        if (cnt[c] > INT32_MAX) {
            rc = ms_err_set(err, MS_ERR_RUNTIME, "centroid %u lists %llu documents (> 2^31)", c,
                            (unsigned long long)cnt[c]);
            goto out;
        }
    }
    /* ivf.npy: sized now, filled through a shared mapping in a second pass */
    const uint64_t shape[1] = { total };
    const size_t hl = ms_npy_header(hdr, "<i8", 1, shape);
    map_len = hl + total * 8;
    path_of(path, sizeof path, L->dir, "ivf.npy");
    if ((fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0644)) < 0 ||
        ftruncate(fd, (off_t)map_len) != 0 ||
        (map = mmap(NULL, map_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)) == MAP_FAILED) {
        rc = write_fail(err, path);
        goto out;
    }
    memcpy(map, hdr, hl);
    if ((rc = ivf_pass(old, L, src, k, NULL, pos, (int64_t *)((char *)map + hl), err)) != MS_OK)
        goto out;
    if (munmap(map, map_len) != 0) {
        map = MAP_FAILED;
        rc = write_fail(err, path);
        goto out;
    }
    map = MAP_FAILED;
    const uint64_t kshape[1] = { k };
    rc = write_npy(L->dir, "ivf_lengths.npy", "<i4", 1, kshape, lens, (size_t)k * 4, err);
out:
    if (map != MAP_FAILED)
        munmap(map, map_len);
    if (fd >= 0 && close(fd) != 0 && rc == MS_OK)
        rc = write_fail(err, path);
    free(cnt);
    free(pos);
    free(lens);
    return rc;
}

/* metadata.json and plan.json. */
static int write_metadata(const char *dir, json_t *base, uint64_t n_chunks, uint32_t nbits,
                          uint64_t k, uint64_t n_tokens, uint64_t n_docs, int next_plaid,
                          uint32_t dim, struct ms_err *err)
{
    json_t *m = base ? json_deep_copy(base) : json_object();
    json_t *plan =
        json_pack("{s:I,s:I}", "nbits", (json_int_t)nbits, "num_chunks", (json_int_t)n_chunks);
    int rc;
    if (!m || !plan) {
        json_decref(m);
        json_decref(plan);
        return ms_err_set(err, MS_ERR_RUNTIME, "out of memory");
    }
    json_object_set_new(m, "num_chunks", json_integer((json_int_t)n_chunks));
    json_object_set_new(m, "nbits", json_integer(nbits));
    if (!json_object_get(m, "num_partitions")) /* an appended index keeps its own */
        json_object_set_new(m, "num_partitions", json_integer((json_int_t)k));
    json_object_set_new(m, "num_embeddings", json_integer((json_int_t)n_tokens));
    json_object_set_new(m, "num_documents", json_integer((json_int_t)n_docs));
    json_object_set_new(m, "avg_doclen", json_real(n_docs ? (double)n_tokens / n_docs : 0.0));
    /* merged copies, if any, are not carried over (see ms_index_append) */
    json_object_del(m, "frozen");
    if (next_plaid) {
        json_object_set_new(m, "embedding_dim", json_integer(dim));
        json_object_set_new(m, "next_plaid_compatible", json_true());
    } else if (!json_object_get(m, "compress_only")) {
        json_object_set_new(m, "compress_only", json_false());
    }
    if ((rc = write_json(dir, "metadata.json", m, err)) == MS_OK)
        rc = write_json(dir, "plan.json", plan, err);
    json_decref(m);
    json_decref(plan);
    return rc;
}

static int write_codec(const char *dir, const struct codec *c, int next_plaid, struct ms_err *err)
{
    const uint64_t nb = 1u << c->nbits;
    const uint64_t cshape[2] = { c->k, c->dim }, cut[1] = { nb - 1 }, w[1] = { nb },
                   dshape[1] = { c->dim }, one[1] = { 1 };
    const uint64_t n = (uint64_t)c->k * c->dim;
    int rc;
    if (next_plaid) {
        rc = write_npy(dir, "centroids.npy", "<f4", 2, cshape, c->cents, n * 4, err);
    } else {
        uint16_t *h = ms_malloc(n * 2, err);
        if (!h)
            return err->status;
        for (uint64_t i = 0; i < n; i++)
            h[i] = ms_float_to_half(c->cents[i]);
        rc = write_npy(dir, "centroids.npy", "<f2", 2, cshape, h, n * 2, err);
        free(h);
    }
    if (rc == MS_OK)
        rc = write_npy(dir, "bucket_cutoffs.npy", "<f4", 1, cut, c->cutoffs, (nb - 1) * 4, err);
    if (rc == MS_OK)
        rc = write_npy(dir, "bucket_weights.npy", "<f4", 1, w, c->weights, nb * 4, err);
    if (rc == MS_OK)
        rc = write_npy(dir, "avg_residual.npy", "<f4", 1, dshape, c->avg_residual, c->dim * 4, err);
    if (rc == MS_OK)
        rc = write_npy(dir, "cluster_threshold.npy", "<f4", 1, one, &c->cluster_threshold, 4, err);
    return rc;
}

int ms_index_build(struct ms_cl *cl, struct ms_src *docs, struct ms_src *again, const char *out_dir,
                   const struct ms_index_opts *o, ms_index_progress_fn fn, void *ctx,
                   struct ms_index_stats *st, struct ms_err *err)
{
    struct rng r = { o->seed };
    struct ms_index_dev *dev = NULL;
    struct codec c = { 0 };
    struct ms_emb sample;
    struct heldout hold = { 0 };
    void *held_x = NULL; /* the held-out tokens, as stored */
    uint64_t n_pts = 0;
    char tmp[4096] = "";
    int rc;
    double t;

    memset(st, 0, sizeof *st);
    ms_emb_init(&sample);
    const uint32_t dim = docs->dim;
    if (docs->n_rows == 0 || docs->n_tokens == 0)
        return ms_err_set(err, MS_ERR_INPUT,
                          "%s: empty corpus (%llu documents, 0 tokens); expected at least one "
                          "token to index",
                          docs->spec, (unsigned long long)docs->n_rows);
    if (dim % 8)
        return ms_err_set(err, MS_ERR_INPUT,
                          "%s: dimension %u is not a multiple of 8; the residual codec packs "
                          "8 dimensions a byte",
                          docs->spec, dim);
    if (o->centroids && o->centroids > docs->n_tokens)
        return ms_err_set(err, MS_ERR_INPUT,
                          "%s: %llu tokens, fewer than the %llu centroids asked for (--centroids)",
                          docs->spec, (unsigned long long)docs->n_tokens,
                          (unsigned long long)o->centroids);

    /* 1. the sample */
    t = ms_now();
    uint64_t n_sample =
        o->sample_docs ? o->sample_docs : 1 + (uint64_t)(16.0 * sqrt(120.0 * docs->n_rows));
    n_sample = n_sample < docs->n_rows ? n_sample : docs->n_rows;
    if (fn)
        fn(ctx, "sample", 0, n_sample);
    uint64_t *rows = sample_rows(docs, n_sample, &r, err);
    if (!rows) {
        rc = err->status;
        goto out;
    }
    for (uint64_t i = 0; i < n_sample; i++)
        n_pts += ms_src_row_len(docs, rows[i]);
    /* the held-out's size: fast-plaid's min(5% of the sample's tokens, 50,000) */
    uint64_t held = n_pts / 20 < MAX_HELDOUT ? n_pts / 20 : MAX_HELDOUT;
    held = held ? held : n_pts;
    rc = pick_heldout(docs, held, o->seed, &hold, err);
    if (rc == MS_OK)
        rc = read_sample(docs, rows, n_sample, &hold, &sample, &held_x, err);
    free(rows);
    if (rc != MS_OK)
        goto out;
    n_pts = ms_emb_n_tokens(&sample);
    const struct points pts = { sample.tokens, sample.dtype, dim };
    const size_t pt_bytes = dim * ms_dtype_size(sample.dtype);
    st->sample_docs = n_sample;
    st->sample_tokens = n_pts;
    st->sample_s = ms_now() - t;

    /* 2. k-means */
    t = ms_now();
    uint64_t k = o->centroids;
    if (!k) {
        k = ms_index_default_k((double)n_pts / (double)n_sample * (double)docs->n_rows);
        k = k < n_pts ? k : n_pts; /* fast-plaid: min(K, sample tokens) */
    }
    if (k > n_pts) {
        rc = ms_err_set(err, MS_ERR_INPUT,
                        "%s: the sample of %llu documents has %llu tokens, fewer than the %llu "
                        "centroids asked for; sample more documents (--sample)",
                        docs->spec, (unsigned long long)n_sample, (unsigned long long)n_pts,
                        (unsigned long long)k);
        goto out;
    }
    if (k > UINT32_MAX / 2) {
        rc = ms_err_set(err, MS_ERR_INPUT, "%llu centroids: too many", (unsigned long long)k);
        goto out;
    }
    /* training points: at most 256 per centroid, a seeded subset */
    struct points train = pts;
    void *train_own = NULL;
    uint64_t n_train = n_pts;
    if (n_pts > k * POINTS_PER_CENT) {
        n_train = k * POINTS_PER_CENT;
        uint64_t *pick = ms_malloc(n_train * 8, err);
        if (!pick || !(train_own = ms_malloc(n_train * pt_bytes, err))) {
            free(pick);
            rc = err->status;
            goto out;
        }
        pick_sorted(&r, n_pts, n_train, pick);
        for (uint64_t i = 0; i < n_train; i++)
            memcpy((char *)train_own + i * pt_bytes, point_at(&pts, pick[i]), pt_bytes);
        free(pick);
        train.x = train_own;
    }
    c.dim = dim;
    c.k = (uint32_t)k;
    c.nbits = o->nbits;
    if (fn)
        fn(ctx, "k-means", 0, o->kmeans_iters);
    if (!(c.cents = ms_malloc(k * dim * 4, err)))
        rc = err->status;
    if (rc == MS_OK)
        rc = ms_index_dev_create(&dev, cl, dim, err);
    if (rc == MS_OK)
        rc = kmeans(dev, &train, n_train, k, o->kmeans_iters, kmeans_block(cl, o, n_train, dim),
                    !o->serial_host, &r, c.cents, st, err);
    free(train_own);
    if (rc != MS_OK)
        goto out;
    /* normalized (F.normalize: x / max(|x|, 1e-12)), then as stored */
    for (uint64_t i = 0; i < k; i++) {
        float *v = c.cents + i * dim;
        double ss = 0;
        for (uint32_t d = 0; d < dim; d++)
            ss += (double)v[d] * v[d];
        const float inv = (float)(1.0 / fmax(sqrt(ss), 1e-12));
        for (uint32_t d = 0; d < dim; d++)
            v[d] = o->next_plaid ? v[d] * inv : ms_half_to_float(ms_float_to_half(v[d] * inv));
    }
    st->k = k;
    st->train_points = n_train;
    st->kmeans_s = ms_now() - t;

    /* 3. bucket cutoffs and weights from the held-out documents */
    t = ms_now();
    if ((rc = ms_index_dev_set_centroids(dev, c.cents, NULL, c.k, err)) != MS_OK ||
        (rc = residual_stats(dev, &(struct points){ held_x, pts.dtype, dim }, hold.tokens, &c,
                             err)) != MS_OK)
        goto out;
    st->heldout = hold.tokens;
    st->codec_s = ms_now() - t;
    ms_emb_release(&sample);

    /* 4. every document, into a new directory */
    t = ms_now();
    if ((rc = make_tmp_dir(out_dir, tmp, sizeof tmp, err)) != MS_OK) {
        tmp[0] = 0;
        goto out;
    }
    const struct layout L = { tmp, 0, o->docs_per_chunk, 0, o->next_plaid, dim * o->nbits / 8 };
    if ((rc = encode_all(dev, again, &c, &L, o, fn, ctx, &st->encode_wait_s, err)) != MS_OK)
        goto out;
    st->encode_s = ms_now() - t;

    /* 5. IVF, codec and metadata */
    t = ms_now();
    if ((rc = write_ivf(NULL, &L, docs, c.k, err)) != MS_OK ||
        (rc = write_codec(tmp, &c, o->next_plaid, err)) != MS_OK ||
        (rc = write_metadata(tmp, NULL, n_chunks_for(docs->n_rows, o->docs_per_chunk), o->nbits, k,
                             docs->n_tokens, docs->n_rows, o->next_plaid, dim, err)) != MS_OK)
        goto out;
    st->ivf_s = ms_now() - t;
    if ((rc = commit_dir(tmp, out_dir, err)) == MS_OK)
        tmp[0] = 0;
    st->n_docs = docs->n_rows;
    st->n_tokens = docs->n_tokens;
out:
    if (dev)
        dev_stats(dev, st);
    if (tmp[0])
        remove_dir(tmp);
    ms_index_dev_free(dev);
    codec_release(&c);
    ms_emb_release(&sample);
    free(hold.rows);
    free(held_x);
    return rc;
}

/* bucket_cutoffs.npy of an index: 2^nbits - 1 floats (float32 or float16). */
static int read_cutoffs(const struct ms_plaid *p, float *out, struct ms_err *err)
{
    char path[4096];
    uint8_t buf[4096];
    struct ms_npy_header h;
    const uint64_t want = (1u << p->nbits) - 1;
    path_of(path, sizeof path, p->dir, "bucket_cutoffs.npy");
    FILE *f = fopen(path, "rb");
    if (!f)
        return ms_err_set(err, MS_ERR_INPUT, "'%s': cannot open: %s (--append needs it)", path,
                          strerror(errno));
    const size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    memset(&h, 0, sizeof h);
    if (ms_npy_parse_preamble(buf, n, &h, err) != MS_OK ||
        ms_npy_parse_header(buf, n, &h, err) != MS_OK)
        return ms_err_prefix(err, "'%s'", path);
    if (h.kind != 'f' || (h.itemsize != 4 && h.itemsize != 2) || h.byteorder == '>' ||
        h.rank != 1 || h.shape[0] != want || h.data_offset + want * h.itemsize > n)
        return ms_err_set(err, MS_ERR_INPUT,
                          "'%s': expected %llu float32 or float16 values (nbits %u), found %s of "
                          "type %s",
                          path, (unsigned long long)want, p->nbits, h.descr, ms_npy_type_name(&h));
    for (uint64_t i = 0; i < want; i++) {
        const uint8_t *e = buf + h.data_offset + i * h.itemsize;
        if (h.itemsize == 4)
            memcpy(&out[i], e, 4);
        else
            out[i] = ms_half_to_float((uint16_t)(e[0] | e[1] << 8));
    }
    return MS_OK;
}

/* Hard links of the files an append keeps (chunks, codec) in tmp. */
static int link_kept(const char *from, const char *tmp, int rechunk, struct ms_err *err)
{
    static const char *const rewritten[] = { "ivf.npy", "ivf_lengths.npy", "metadata.json",
                                             "plan.json", "plaid.lock" };
    DIR *d = opendir(from);
    struct dirent *e;
    char a[4096], b[4096];
    int rc = MS_OK;
    if (!d)
        return ms_err_set(err, MS_ERR_INPUT, "cannot read directory '%s': %s", from,
                          strerror(errno));
    while (rc == MS_OK && (e = readdir(d))) {
        int skip = e->d_name[0] == '.' || strncmp(e->d_name, "merged_", 7) == 0;
        /* chunks are rewritten from the merged files: drop their doclens and metadata */
        if (rechunk)
            skip |= strncmp(e->d_name, "doclens.", 8) == 0 ||
                    (e->d_name[0] >= '0' && e->d_name[0] <= '9');
        for (size_t i = 0; i < sizeof rewritten / sizeof *rewritten; i++)
            skip |= strcmp(e->d_name, rewritten[i]) == 0;
        path_of(a, sizeof a, from, e->d_name);
        struct stat st;
        if (skip || lstat(a, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        path_of(b, sizeof b, tmp, e->d_name);
        if (link(a, b) != 0)
            rc = ms_err_set(err, MS_ERR_RUNTIME, "cannot link '%s' to '%s': %s", a, b,
                            strerror(errno));
    }
    closedir(d);
    return rc;
}

/* The documents of a merged-only index as chunk files 0.. of L->dir. */
static int write_old_chunks(const struct ms_plaid *p, const struct layout *L, struct ms_err *err)
{
    const uint64_t per = L->docs_per_chunk, nch = n_chunks_for(p->n_docs, per);
    const uint64_t slice = 1 << 16;
    uint32_t *c32 = ms_malloc(slice * 4, err);
    int64_t *c64 = ms_malloc(slice * 8, err);
    uint8_t *res = ms_malloc(slice * L->packed, err);
    int rc = c32 && c64 && res ? MS_OK : err->status;

    for (uint64_t c = 0; c < nch && rc == MS_OK; c++) {
        const uint64_t d0 = c * per, d1 = d0 + per < p->n_docs ? d0 + per : p->n_docs;
        const uint64_t t0 = p->doc_off[d0], t1 = p->doc_off[d1];
        char name[64], path[4096], hdr[256];
        FILE *f;
        snprintf(name, sizeof name, "doclens.%llu.json", (unsigned long long)c);
        path_of(path, sizeof path, L->dir, name);
        if (!(f = fopen(path, "wbx"))) {
            rc = write_fail(err, path);
            break;
        }
        int ok = fputc('[', f) != EOF;
        for (uint64_t d = d0; d < d1 && ok; d++)
            ok = fprintf(f, d > d0 ? ",%llu" : "%llu",
                         (unsigned long long)(p->doc_off[d + 1] - p->doc_off[d])) > 0;
        ok = ok && fputs("]\n", f) != EOF;
        if (fclose(f) != 0 || !ok) {
            rc = write_fail(err, path);
            break;
        }
        json_t *m =
            json_pack("{s:I,s:I,s:I}", "num_documents", (json_int_t)(d1 - d0), "num_embeddings",
                      (json_int_t)(t1 - t0), "embedding_offset", (json_int_t)t0);
        snprintf(name, sizeof name, "%llu.metadata.json", (unsigned long long)c);
        rc =
            m ? write_json(L->dir, name, m, err) : ms_err_set(err, MS_ERR_RUNTIME, "out of memory");
        json_decref(m);
        const uint64_t shape[2] = { t1 - t0, L->packed };
        FILE *fc = NULL, *fr = NULL;
        for (int which = 0; which < 2 && rc == MS_OK; which++) {
            snprintf(name, sizeof name, which ? "%llu.residuals.npy" : "%llu.codes.npy",
                     (unsigned long long)c);
            path_of(path, sizeof path, L->dir, name);
            FILE *g = fopen(path, "wbx");
            const size_t hl = ms_npy_header(hdr, which ? (L->next_plaid ? "|u1" : "<u1") : "<i8",
                                            which + 1, shape);
            if (!g || fwrite(hdr, 1, hl, g) != hl)
                rc = write_fail(err, path);
            *(which ? &fr : &fc) = g;
        }
        for (uint64_t t = t0; t < t1 && rc == MS_OK; t += slice) {
            const uint64_t n = t1 - t < slice ? t1 - t : slice;
            ms_plaid_codes(p, t, n, c32);
            ms_plaid_residuals(p, t, n, res);
            for (uint64_t i = 0; i < n; i++)
                c64[i] = c32[i];
            if (fwrite(c64, 8, n, fc) != n || fwrite(res, L->packed, n, fr) != n)
                rc = write_fail(err, L->dir);
        }
        if (rc == MS_OK)
            rc = chunk_close(&fc, &fr, L->dir, err);
        else
            chunk_close(&fc, &fr, L->dir, err);
    }
    free(c32);
    free(c64);
    free(res);
    return rc;
}

int ms_index_append(struct ms_cl *cl, struct ms_plaid *p, struct ms_src *docs,
                    const struct ms_index_opts *o, ms_index_progress_fn fn, void *ctx,
                    struct ms_index_stats *st, struct ms_err *err)
{
    struct ms_index_dev *dev = NULL;
    struct codec c = { 0 };
    char tmp[4096] = "", path[4096];
    json_t *base = NULL;
    json_error_t jerr;
    int rc;
    double t;

    memset(st, 0, sizeof *st);
    if (docs->dim != p->dim)
        return ms_err_set(err, MS_ERR_INPUT,
                          "%s: dimension %u does not match the index '%s' (dimension %u)",
                          docs->spec, docs->dim, p->dir, p->dim);
    if (docs->n_rows == 0)
        return ms_err_set(err, MS_ERR_INPUT, "%s: no documents to append", docs->spec);
    c.dim = p->dim;
    c.k = p->n_centroids;
    c.nbits = p->nbits;
    if ((rc = read_cutoffs(p, c.cutoffs, err)) != MS_OK)
        return rc;
    path_of(path, sizeof path, p->dir, "metadata.json");
    if (!(base = json_load_file(path, 0, &jerr)) || !json_is_object(base)) {
        json_decref(base);
        return ms_err_set(err, MS_ERR_INPUT, "'%s': %s", path, jerr.text);
    }
    const int next_plaid = strcmp(p->layout, "next-plaid") == 0;
    /* an index fast-plaid has loaded keeps only merged_*.npy: its documents
     * are written back as chunk files first, then the new ones follow */
    const uint64_t old_chunks =
        p->merged ? n_chunks_for(p->n_docs, o->docs_per_chunk) : (uint64_t)p->n_parts;
    const struct layout L = { tmp,         old_chunks, o->docs_per_chunk,
                              p->n_tokens, next_plaid, p->dim * p->nbits / 8 };
    t = ms_now();
    if ((rc = make_tmp_dir(p->dir, tmp, sizeof tmp, err)) != MS_OK) {
        tmp[0] = 0;
        goto out;
    }
    if ((rc = link_kept(p->dir, tmp, p->merged, err)) != MS_OK ||
        (p->merged && (rc = write_old_chunks(p, &L, err)) != MS_OK) ||
        (rc = ms_index_dev_create(&dev, cl, p->dim, err)) != MS_OK ||
        (rc = ms_index_dev_set_centroids(dev, p->centroids, NULL, c.k, err)) != MS_OK ||
        (rc = encode_all(dev, docs, &c, &L, o, fn, ctx, &st->encode_wait_s, err)) != MS_OK)
        goto out;
    st->encode_s = ms_now() - t;
    t = ms_now();
    const uint64_t n_docs = p->n_docs + docs->n_rows, n_tok = p->n_tokens + docs->n_tokens;
    if ((rc = write_ivf(p, &L, docs, c.k, err)) != MS_OK ||
        (rc = write_metadata(tmp, base, L.chunk_base + n_chunks_for(docs->n_rows, L.docs_per_chunk),
                             p->nbits, c.k, n_tok, n_docs, next_plaid, p->dim, err)) != MS_OK)
        goto out;
    st->ivf_s = ms_now() - t;
    if ((rc = commit_dir(tmp, p->dir, err)) == MS_OK)
        tmp[0] = 0;
    st->n_docs = docs->n_rows;
    st->n_tokens = docs->n_tokens;
    st->k = c.k;
out:
    if (dev)
        dev_stats(dev, st);
    if (tmp[0])
        remove_dir(tmp);
    ms_index_dev_free(dev);
    json_decref(base);
    return rc;
}
