/*
 * out.c - output files (through tempfile.c: whole or not at all), streamed
 * through zstd when asked, and the TREC / TSV / .npy / .h5 result formats.
 */
#include "out.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "h5.h"
#include "par.h"
#include "tempfile.h"

struct ms_wfile {
    int is_stdout;
    struct ms_tempfile t; /* a named output */
    const char *name;     /* for messages */
    ZSTD_CStream *z;      /* non-NULL for a compressed output */
    char *zbuf;
    size_t zcap;
    char buf[1 << 16]; /* text is gathered here, then written in large pieces */
    size_t used;
};

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

/* The format a name stands for; -1 for none of them. */
static int fmt_of_name(const char *name)
{
    for (int f = MS_FMT_TREC; f <= MS_FMT_H5; f++)
        if (strcmp(name, ms_fmt_name((enum ms_fmt)f)) == 0)
            return f;
    return strcmp(name, "hdf5") == 0 ? MS_FMT_H5 : -1;
}

/* "trec or tsv", "tsv, npy or h5": the formats of a mask, for messages. */
static const char *fmt_list(unsigned allowed, char *buf, size_t cap)
{
    int n = 0, total = 0;
    size_t used = 0;

    for (int f = MS_FMT_TREC; f <= MS_FMT_H5; f++)
        total += (allowed >> f) & 1;
    buf[0] = '\0';
    for (int f = MS_FMT_TREC; f <= MS_FMT_H5; f++)
        if ((allowed >> f) & 1) {
            n++;
            used += (size_t)snprintf(buf + used, cap - used, "%s%s",
                                     n == 1       ? ""
                                     : n == total ? " or "
                                                  : ", ",
                                     ms_fmt_name((enum ms_fmt)f));
        }
    return buf;
}

int ms_fmt_resolve(const char *path, const char *format, unsigned allowed, enum ms_fmt dflt,
                   enum ms_fmt *fmt, int *zst, struct ms_err *err)
{
    const int to_stdout = !path || strcmp(path, "-") == 0;
    int named = -1, by_suffix = -1;
    char list[64];

    fmt_list(allowed, list, sizeof list);
    *zst = !to_stdout && (ends_with(path, ".zst") || ends_with(path, ".zstd"));
    if (format && (named = fmt_of_name(format)) < 0)
        return ms_err_set(err, MS_ERR_INPUT, "unknown format '%s' (expected %s)", format, list);
    if (!to_stdout) {
        const char *dot;
        char base[4096];
        snprintf(base, sizeof base, "%s", path);
        if (*zst)
            *strrchr(base, '.') = '\0';
        /* .trec .tsv .npy .h5 .hdf5 name a format; .run, .txt or anything else do not */
        if ((dot = strrchr(base, '.')) && !strchr(dot, '/') && strlen(dot + 1) < 8) {
            char lower[8];
            size_t i = 0;
            for (; dot[1 + i]; i++)
                lower[i] = (char)tolower((unsigned char)dot[1 + i]);
            lower[i] = '\0';
            by_suffix = fmt_of_name(lower);
        }
    }
    if (named >= 0 && by_suffix >= 0 && named != by_suffix)
        return ms_err_set(err, MS_ERR_INPUT,
                          "--format %s contradicts the name '%s' (a .%s file); give one or the "
                          "other",
                          format, path, ms_fmt_name((enum ms_fmt)by_suffix));
    *fmt = named >= 0 ? (enum ms_fmt)named : by_suffix >= 0 ? (enum ms_fmt)by_suffix : dflt;
    if (!((allowed >> *fmt) & 1)) {
        if (named >= 0)
            return ms_err_set(err, MS_ERR_INPUT, "--format takes %s here, got '%s'", list, format);
        return ms_err_set(err, MS_ERR_INPUT,
                          "-o '%s' names %s output, which this command does not write (expected "
                          "%s)",
                          path, ms_fmt_name(*fmt), list);
    }
    if ((*fmt == MS_FMT_NPY || *fmt == MS_FMT_H5) && to_stdout)
        return ms_err_set(err, MS_ERR_INPUT, "%s output needs a file name (-o OUT.%s)",
                          ms_fmt_name(*fmt), ms_fmt_name(*fmt));
    if ((*fmt == MS_FMT_NPY || *fmt == MS_FMT_H5) && *zst)
        return ms_err_set(err, MS_ERR_INPUT,
                          "'%s': only text output (trec, tsv) can be zstd-compressed", path);
    return MS_OK;
}

int ms_wfile_open(struct ms_wfile **out, const char *path, int zst, int flags, struct ms_err *err)
{
    struct ms_wfile *w = ms_calloc(1, sizeof *w, err);
    int rc;

    *out = NULL;
    if (!w)
        return err->status;
    w->t.fd = w->t.out_fd = -1;
    if (!path || strcmp(path, "-") == 0) {
        w->is_stdout = 1;
        w->name = "standard output";
        *out = w;
        return MS_OK;
    }
    if ((rc = ms_tempfile_create(&w->t, "-o", path, flags, err)) != MS_OK) {
        free(w);
        return rc;
    }
    w->name = w->t.target;
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
    return w->is_stdout || w->z ? -1 : w->t.fd;
}

const char *ms_wfile_path(const struct ms_wfile *w)
{
    return w->is_stdout ? NULL : w->t.path;
}

static int write_out(struct ms_wfile *w, const void *buf, size_t len, struct ms_err *err)
{
    if (w->is_stdout ? len && fwrite(buf, 1, len, stdout) != len
                     : ms_write_all(w->t.fd, buf, len) != 0)
        return ms_err_set(err, MS_ERR_RUNTIME, "cannot write to '%s': %s", w->name,
                          strerror(errno));
    return MS_OK;
}

static int write_raw(struct ms_wfile *w, const void *buf, size_t len, struct ms_err *err)
{
    if (!w->z)
        return write_out(w, buf, len, err);
    ZSTD_inBuffer in = { buf, len, 0 };
    while (in.pos < in.size) {
        ZSTD_outBuffer o = { w->zbuf, w->zcap, 0 };
        const size_t r = ZSTD_compressStream(w->z, &o, &in);
        if (ZSTD_isError(r))
            return ms_err_set(err, MS_ERR_RUNTIME, "zstd compression of '%s' failed: %s", w->name,
                              ZSTD_getErrorName(r));
        const int rc = write_out(w, w->zbuf, o.pos, err);
        if (rc != MS_OK)
            return rc;
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
    int rc = flush_buf(w, err);

    while (rc == MS_OK && w->z) {
        ZSTD_outBuffer o = { w->zbuf, w->zcap, 0 };
        const size_t left = ZSTD_endStream(w->z, &o);
        if (ZSTD_isError(left))
            rc = ms_err_set(err, MS_ERR_RUNTIME, "zstd compression of '%s' failed: %s", w->name,
                            ZSTD_getErrorName(left));
        else
            rc = write_out(w, w->zbuf, o.pos, err);
        if (left == 0)
            break;
    }
    if (w->is_stdout) {
        if (rc == MS_OK && fflush(stdout) != 0)
            rc = ms_err_set(err, MS_ERR_RUNTIME, "cannot write to '%s': %s", w->name,
                            strerror(errno));
    } else if (rc == MS_OK) {
        rc = ms_tempfile_commit(&w->t, err);
    }
    ms_wfile_abort(w);
    return rc;
}

void ms_wfile_abort(struct ms_wfile *w)
{
    if (!w)
        return;
    ms_tempfile_abort(&w->t);
    ZSTD_freeCStream(w->z);
    free(w->zbuf);
    free(w);
}

#define RUN_LINE_MAX 8192

/*
 * %.9g of a float, the bytes glibc's printf writes, at a quarter of its cost: printf takes the
 * multi-precision way for every value, and run lines are mostly that one number. The value is
 * scaled to nine digits with 128-bit integers and rounded to nearest, ties to even, as glibc
 * rounds the exact value; then %g's rules (exponent form below 1e-4 or from 1e9, trailing zeros
 * dropped). Checked against snprintf on every 13th bit pattern of a float (offline) and in
 * tests/test_run.c on a million random ones, the ties and the powers of ten.
 */
static uint64_t pow10_u64(int k) /* k <= 19 */
{
    uint64_t p = 1;
    while (k-- > 0)
        p *= 10;
    return p;
}

size_t ms_format_g9(char *out, float x)
{
    uint32_t bits;
    memcpy(&bits, &x, sizeof bits);
    const int biased = (int)((bits >> 23) & 0xff), neg = (int)(bits >> 31);
    /* the exact way: |x| in [2^-33, 2^40), where 128-bit integers hold every step below;
     * elsewhere (and 0, subnormals, inf, nan) glibc's */
    if (biased - 127 < -33 || biased - 127 >= 40)
        return (size_t)snprintf(out, 32, "%.9g", (double)x);
    const uint64_t m = (bits & 0x7fffffu) | 0x800000u;
    const int e2 = biased - 150; /* |x| = m * 2^e2, -56 <= e2 <= 16 */
    int X = (int)floor(log10(fabs((double)x)));
    unsigned __int128 q, r, den;
    for (;;) {
        const int k = 8 - X; /* scale |x| by 10^k: 9 digits before the point */
        unsigned __int128 num = m;
        den = 1;
        if (k >= 0)
            num *= pow10_u64(k);
        else
            den *= pow10_u64(-k);
        if (e2 >= 0)
            num <<= e2;
        else
            den <<= -e2;
        q = num / den;
        r = num % den;
        if (q < 100000000u)
            X--;
        else if (q >= 1000000000u)
            X++;
        else
            break;
    }
    uint64_t d = (uint64_t)q;
    if (2 * r > den || (2 * r == den && (d & 1))) /* to nearest, ties to even: as glibc */
        d++;
    if (d == 1000000000u) {
        d = 100000000u;
        X++;
    }
    char dig[9];
    for (int i = 8; i >= 0; i--) {
        dig[i] = (char)('0' + d % 10);
        d /= 10;
    }
    char *p = out;
    if (neg)
        *p++ = '-';
    if (X < -4 || X >= 9) {
        int last = 8;
        while (last > 0 && dig[last] == '0')
            last--;
        *p++ = dig[0];
        if (last > 0) {
            *p++ = '.';
            memcpy(p, dig + 1, (size_t)last);
            p += last;
        }
        *p++ = 'e';
        *p++ = X < 0 ? '-' : '+';
        const int ax = X < 0 ? -X : X;
        if (ax >= 100)
            *p++ = (char)('0' + ax / 100);
        *p++ = (char)('0' + ax / 10 % 10);
        *p++ = (char)('0' + ax % 10);
    } else {
        int last = 8; /* the last digit kept: trailing zeros of the fraction go */
        while (last > X && last > 0 && dig[last] == '0')
            last--;
        if (X >= 0) {
            memcpy(p, dig, (size_t)X + 1);
            p += X + 1;
            if (last > X) {
                *p++ = '.';
                memcpy(p, dig + X + 1, (size_t)(last - X));
                p += last - X;
            }
        } else {
            *p++ = '0';
            *p++ = '.';
            for (int i = 0; i < -X - 1; i++)
                *p++ = '0';
            memcpy(p, dig, (size_t)last + 1);
            p += last + 1;
        }
    }
    *p = '\0';
    return (size_t)(p - out);
}

/* The decimal digits of v into out: their count. */
static size_t put_u64(char *out, uint64_t v)
{
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    return n;
}

/* One run line into line[RUN_LINE_MAX]: its length, or 0 (err set) when it does not fit. */
static size_t run_line_format(char *line, enum ms_fmt fmt, const char *qid, const char *did,
                              uint64_t rank, float score, const char *tag, struct ms_err *err)
{
    /* TSV `QID<TAB>DOCID<TAB>RANK<TAB>SCORE`, TREC `QID Q0 DOCID RANK SCORE TAG`; %.9g: every
     * float32 prints exactly and reads back the same */
    const int tsv = fmt == MS_FMT_TSV;
    const size_t lq = strlen(qid), ld = strlen(did), lt = tsv ? 0 : strlen(tag);
    char num[48];
    size_t ln = put_u64(num, rank);
    num[ln++] = tsv ? '\t' : ' ';
    ln += ms_format_g9(num + ln, score);
    /* the rest: TSV two tabs and the newline; TREC " Q0 ", two spaces and the newline */
    const size_t n = lq + ld + ln + lt + (tsv ? 3 : 7);
    if (n >= RUN_LINE_MAX) {
        ms_err_set(err, MS_ERR_INPUT, "id too long for a run line (query '%s')", qid);
        return 0;
    }
    char *p = line;
    memcpy(p, qid, lq);
    p += lq;
    memcpy(p, tsv ? "\t" : " Q0 ", tsv ? 1 : 4);
    p += tsv ? 1 : 4;
    memcpy(p, did, ld);
    p += ld;
    *p++ = tsv ? '\t' : ' ';
    memcpy(p, num, ln);
    p += ln;
    if (!tsv) {
        *p++ = ' ';
        memcpy(p, tag, lt);
        p += lt;
    }
    *p++ = '\n';
    return (size_t)(p - line);
}

int ms_run_line(struct ms_wfile *w, enum ms_fmt fmt, const char *qid, const char *did,
                uint64_t rank, float score, const char *tag, struct ms_err *err)
{
    char line[RUN_LINE_MAX];
    const size_t n = run_line_format(line, fmt, qid, did, rank, score, tag, err);

    return n ? ms_wfile_write(w, line, n, err) : err->status;
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

/*
 * Ranked candidates are formatted by several threads at once: glibc's %.9g costs about half a
 * microsecond, so a million lines took half a second on one core. The lines are cut into
 * parts at query boundaries (a rank counts from its query's first line), each thread formats
 * its parts into memory, and the parts are written in order: the same bytes as one thread's.
 * Rounds of at most CANDS_ROUND lines keep the memory bounded whatever the run's size.
 */
#define CANDS_THREADS 8
#define CANDS_ROUND   (1u << 18)

struct cands_part {
    const struct ms_cand *c;
    uint64_t first, end; /* lines [first, end), first the first line of a query */
    uint64_t k;
    enum ms_fmt fmt;
    const struct ms_ids *qids, *dids;
    const char *tag;
    char *text;
    size_t len, cap;
    int rc;
    struct ms_err err;
};

static void *format_part(void *arg)
{
    struct cands_part *p = arg;
    char qb[24], db[24];
    uint64_t rank = 0;

    p->rc = MS_OK;
    for (uint64_t i = p->first; i < p->end; i++) {
        rank = i > p->first && p->c[i].q == p->c[i - 1].q ? rank + 1 : 1;
        if (rank > p->k)
            continue;
        if (p->cap - p->len < RUN_LINE_MAX) {
            const size_t cap = p->cap ? 2 * p->cap : 1u << 20;
            char *grown = ms_realloc(p->text, cap, &p->err);
            if (!grown) {
                p->rc = p->err.status;
                break;
            }
            p->text = grown;
            p->cap = cap;
        }
        const size_t n = run_line_format(
            p->text + p->len, p->fmt, ms_ids_get(p->qids, p->c[i].q, qb),
            ms_ids_get(p->dids, p->c[i].d, db), rank, p->c[i].u.score, p->tag, &p->err);
        if (!n) {
            p->rc = p->err.status;
            break;
        }
        p->len += n;
    }
    return NULL;
}

/* The first line of the query after line i (n when none), or i itself when it begins one. */
static uint64_t query_start(const struct ms_cand *c, uint64_t n, uint64_t i)
{
    while (i > 0 && i < n && c[i].q == c[i - 1].q)
        i++;
    return i;
}

int ms_cands_write(struct ms_wfile *w, enum ms_fmt fmt, const struct ms_cand *c, uint64_t n,
                   uint64_t k, const struct ms_ids *qids, const struct ms_ids *dids,
                   const char *tag, struct ms_err *err)
{
    struct cands_part parts[CANDS_THREADS];
    const long cores = sysconf(_SC_NPROCESSORS_ONLN);
    const int threads = cores < 1 ? 1 : cores > CANDS_THREADS ? CANDS_THREADS : (int)cores;
    int rc = MS_OK;

    memset(parts, 0, sizeof parts);
    for (uint64_t r0 = 0; r0 < n && rc == MS_OK;) {
        /* this round: lines [r0, r1), cut into `threads` parts at query boundaries */
        uint64_t r1 = n - r0 > CANDS_ROUND ? query_start(c, n, r0 + CANDS_ROUND) : n;
        for (int t = 0; t < threads; t++) {
            struct cands_part *p = &parts[t];
            p->first = t ? parts[t - 1].end : r0;
            p->end = t + 1 < threads ? query_start(c, r1, r0 + (r1 - r0) * (t + 1) / threads) : r1;
            if (p->end < p->first)
                p->end = p->first;
            p->c = c, p->k = k, p->fmt = fmt, p->qids = qids, p->dids = dids, p->tag = tag;
            p->len = 0;
        }
        ms_par_run(format_part, parts, sizeof *parts, (size_t)threads);
        for (int t = 0; t < threads && rc == MS_OK; t++) {
            if ((rc = parts[t].rc) != MS_OK)
                *err = parts[t].err; /* the first error in the run's order */
            else if (parts[t].len)
                rc = ms_wfile_write(w, parts[t].text, parts[t].len, err);
        }
        r0 = r1;
    }
    for (int t = 0; t < threads; t++)
        free(parts[t].text);
    return rc;
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

/* Open an output and write a 2-D .npy array to it; committed by the caller. */
static int write_npy_file(struct ms_wfile **w, const char *path, const char *descr, uint64_t rows,
                          uint64_t cols, const void *data, size_t elem, struct ms_err *err)
{
    char hdr[256];
    const uint64_t shape[2] = { rows, cols };
    const size_t hlen = ms_npy_header(hdr, descr, 2, shape);
    int rc = ms_wfile_open(w, path, 0, 0, err);

    if (rc == MS_OK && (rc = ms_wfile_write(*w, hdr, hlen, err)) == MS_OK)
        rc = ms_wfile_write(*w, data, rows * cols * elem, err);
    return rc;
}

/* scores, indices and (when the queries have ids) query_ids in one .h5
 * file, written under a temporary name and renamed into place. */
static int write_h5_topk(const char *path, uint64_t nq, uint64_t k, const float *scores,
                         const int64_t *indices, const struct ms_ids *qids, struct ms_err *err)
{
    struct ms_h5_out *o = NULL;
    struct ms_tempfile t;
    const char **ids = NULL;
    int rc, set;

    if ((rc = ms_tempfile_create(&t, "-o", path, MS_TEMPFILE_SEEKABLE, err)) != MS_OK)
        return rc;
    if ((rc = ms_h5_out_create(&o, t.path, err)) != MS_OK)
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
    if (rc != MS_OK || (rc = ms_tempfile_commit(&t, err)) != MS_OK)
        goto fail;
    free(ids);
    return MS_OK;
fail:
    ms_h5_out_abort(o);
    ms_tempfile_abort(&t);
    free(ids);
    return err->status ? err->status : MS_ERR_RUNTIME;
}

/* The .npy file of search's arrays named part ("scores", "indices"). */
static char *npy_part_path(const char *path, const char *part)
{
    const size_t n = strlen(path) - (ends_with(path, ".npy") ? 4 : 0);
    char *p = malloc(n + strlen(part) + 8);
    if (p)
        sprintf(p, "%.*s.%s.npy", (int)n, path, part);
    return p;
}

int ms_output_try(const char *path, enum ms_fmt fmt, struct ms_err *err)
{
    char *part = fmt == MS_FMT_NPY ? npy_part_path(path, "scores") : NULL;
    struct ms_tempfile t;
    struct stat st;
    int rc;

    if (fmt == MS_FMT_NPY && !part)
        return ms_err_set(err, MS_ERR_RUNTIME, "out of memory");
    /* OUT.npy names two new files: beside a device they would be made in /dev */
    if (fmt == MS_FMT_NPY && stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
        free(part);
        return ms_err_set(err, MS_ERR_INPUT,
                          "-o '%s': npy output is two files, OUT.scores.npy and "
                          "OUT.indices.npy; expected a file name, not a %s",
                          path, S_ISDIR(st.st_mode) ? "directory" : "device or FIFO");
    }
    rc = ms_tempfile_create(&t, "-o", part ? part : path, MS_TEMPFILE_SEEKABLE, err);
    ms_tempfile_abort(&t);
    free(part);
    return rc;
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
        char *sp = npy_part_path(path, "scores"), *ip = npy_part_path(path, "indices");
        if (!sp || !ip) {
            free(sp);
            free(ip);
            rc = ms_err_set(err, MS_ERR_RUNTIME, "out of memory");
            goto done;
        }
        /* both written in full before either is put in place */
        struct ms_wfile *sw = NULL, *iw = NULL;
        rc = write_npy_file(&sw, sp, "<f4", t->n_queries, k, scores, sizeof *scores, err);
        if (rc == MS_OK)
            rc = write_npy_file(&iw, ip, "<i8", t->n_queries, k, indices, sizeof *indices, err);
        if (rc == MS_OK) {
            rc = ms_wfile_commit(sw, err);
            sw = NULL;
        }
        if (rc == MS_OK) {
            rc = ms_wfile_commit(iw, err);
            iw = NULL;
        }
        ms_wfile_abort(sw);
        ms_wfile_abort(iw);
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
