/*
 * test_readers.c - reading with several threads gives what one thread gives (src.c).
 *
 * ms_src_read and ms_src_read_rows split a block's read into pieces over reader threads,
 * each checking its own values. These tests write .npy and .npy.zst files of odd sizes
 * (flat and padded, float16 and float32), read the same blocks and row lists with 1 thread
 * and with several (pieces made tiny so that small files are split), and compare every byte;
 * a NaN planted in the middle of a piece must give the single-threaded message, which names
 * the first bad value in row order.
 */
#include <math.h>
#include <zstd.h>

#include "src.h"
#include "testutil.h"

/* A version 1.0 .npy file of the given descr and shape around `data`. */
static const char *write_npy(const char *descr, const uint64_t *shape, int rank, const void *data,
                             size_t bytes, int zst)
{
    char dict[256], shp[128] = "";
    size_t n = 0;

    for (int i = 0; i < rank; i++)
        n += (size_t)snprintf(shp + n, sizeof shp - n, "%llu%s", (unsigned long long)shape[i],
                              rank == 1 || i + 1 < rank ? ", " : "");
    int len = snprintf(dict, sizeof dict,
                       "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }", descr, shp);
    const size_t total_hdr = ((size_t)len + 10 + 1 + 63) / 64 * 64;
    const size_t hlen = total_hdr - 10;
    char *buf = malloc(total_hdr + bytes);
    cr_assert(buf);
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    buf[8] = (char)(hlen & 0xff);
    buf[9] = (char)(hlen >> 8);
    memset(buf + 10, ' ', hlen);
    memcpy(buf + 10, dict, (size_t)len);
    buf[total_hdr - 1] = '\n';
    memcpy(buf + total_hdr, data, bytes);
    const char *path;
    if (zst) {
        /* several frames, as `zstd -T0` or pzstd write them */
        const size_t all = total_hdr + bytes, cap = ZSTD_compressBound(all) + 1024;
        char *z = malloc(cap);
        size_t zn = 0;
        cr_assert(z);
        for (size_t off = 0; off < all; off += 777) {
            const size_t part = all - off < 777 ? all - off : 777;
            const size_t r = ZSTD_compress(z + zn, cap - zn, buf + off, part, 1);
            cr_assert(!ZSTD_isError(r));
            zn += r;
        }
        path = tmpfile_with(z, zn, ".npy.zst");
        free(z);
    } else
        path = tmpfile_with(buf, total_hdr + bytes, ".npy");
    free(buf);
    return path;
}

struct corpus {
    char *data, *lengths; /* owned copies */
    uint64_t n_rows;
};

/* Random rows (lengths 0..maxlen), values from the seed, stored flat or padded. */
static struct corpus make_corpus(enum ms_dtype dt, int padded, int zst, uint64_t n_rows,
                                 uint32_t dim, uint64_t maxlen, uint64_t seed)
{
    uint64_t st = seed, total = 0;
    int64_t *len = malloc(n_rows * sizeof *len);
    cr_assert(len);
    for (uint64_t r = 0; r < n_rows; r++) {
        /* runs of full rows too, so that padded spans join */
        len[r] =
            (int64_t)(test_rand_below(&st, 3) == 0 ? maxlen : test_rand_below(&st, maxlen + 1));
        total += (uint64_t)len[r];
    }
    const uint64_t stored = padded ? n_rows * maxlen : total;
    const size_t es = dt == MS_DTYPE_F16 ? 2 : 4;
    char *v = malloc(stored * dim * es + 1);
    cr_assert(v);
    for (uint64_t i = 0; i < stored * dim; i++) {
        const float f = test_rand_f(&st);
        if (dt == MS_DTYPE_F16) {
            const uint16_t h = ms_float_to_half(f);
            memcpy(v + i * 2, &h, 2);
        } else
            memcpy(v + i * 4, &f, 4);
    }
    struct corpus c = { .n_rows = n_rows };
    const uint64_t s3[3] = { n_rows, maxlen, dim }, s2[2] = { stored, dim }, s1[1] = { n_rows };
    c.data = strdup(write_npy(dt == MS_DTYPE_F16 ? "<f2" : "<f4", padded ? s3 : s2, padded ? 3 : 2,
                              v, stored * dim * es, zst));
    c.lengths = strdup(write_npy("<i8", s1, 1, len, n_rows * sizeof *len, 0));
    free(v);
    free(len);
    return c;
}

static void open_src(struct ms_src *s, const struct corpus *c, int threads, uint64_t piece)
{
    struct ms_src_opts o = { .lengths_path = c->lengths, .role = "documents" };
    struct ms_err err;
    cr_assert(ms_src_open(s, c->data, &o, &err) == MS_OK, "%s", err.msg);
    s->threads = threads;
    s->piece_bytes = piece;
}

static void same_emb(const char *what, const struct ms_emb *a, const struct ms_emb *b)
{
    cr_assert(a->n_rows == b->n_rows && a->first_row == b->first_row, "%s: rows differ", what);
    cr_assert(memcmp(a->offsets, b->offsets, (a->n_rows + 1) * sizeof *a->offsets) == 0,
              "%s: offsets differ", what);
    cr_assert(memcmp(a->tokens, b->tokens, ms_emb_n_tokens(a) * a->dim * ms_dtype_size(a->dtype)) ==
                  0,
              "%s: tokens differ", what);
}

static const int thread_counts[] = { 2, 3, 5, 8 };

/* Blocks of several sizes, in order, against one thread. */
static void compare_blocks(const struct corpus *c, int zst, const char *what)
{
    static const uint64_t block_sizes[] = { 1, 7, 64, 1000 };
    for (size_t t = 0; t < sizeof thread_counts / sizeof *thread_counts; t++)
        for (size_t b = 0; b < sizeof block_sizes / sizeof *block_sizes; b++) {
            struct ms_src one, many;
            struct ms_emb e1, e2;
            struct ms_err err;
            open_src(&one, c, 1, 0);
            open_src(&many, c, thread_counts[t], 48);
            ms_emb_init(&e1);
            ms_emb_init(&e2);
            for (uint64_t r = 0; r < c->n_rows; r += block_sizes[b]) {
                const uint64_t n = c->n_rows - r < block_sizes[b] ? c->n_rows - r : block_sizes[b];
                char name[160];
                snprintf(name, sizeof name, "%s threads %d block %llu at %llu", what,
                         thread_counts[t], (unsigned long long)block_sizes[b],
                         (unsigned long long)r);
                cr_assert(ms_src_read(&one, r, n, &e1, &err) == MS_OK, "%s: %s", name, err.msg);
                cr_assert(ms_src_read(&many, r, n, &e2, &err) == MS_OK, "%s: %s", name, err.msg);
                same_emb(name, &e1, &e2);
            }
            /* frames of declared sizes: indexed (zframes.c), so any rows in any order */
            cr_assert(many.sequential_only == 0, "%s: the frames are not indexed", what);
            {
                uint64_t st = 99 + t, *rows = malloc(c->n_rows * sizeof *rows), m = 0;
                cr_assert(rows);
                for (uint64_t r = 0; r < c->n_rows; r++)
                    if (test_rand_below(&st, 3) != 0)
                        rows[m++] = r;
                cr_assert(ms_src_read_rows(&one, rows, m, &e1, &err) == MS_OK, "%s", err.msg);
                cr_assert(ms_src_read_rows(&many, rows, m, &e2, &err) == MS_OK, "%s", err.msg);
                same_emb(what, &e1, &e2);
                free(rows);
            }
            if (zst) { /* backwards, after the end was read */
                cr_assert(ms_src_read(&one, 3, 5, &e1, &err) == MS_OK, "%s", err.msg);
                cr_assert(ms_src_read(&many, 3, 5, &e2, &err) == MS_OK, "%s", err.msg);
                same_emb(what, &e1, &e2);
            }
            ms_emb_release(&e1);
            ms_emb_release(&e2);
            ms_src_close(&one);
            ms_src_close(&many);
        }
}

Test(readers, threads_read_what_one_thread_reads)
{
    for (int zst = 0; zst <= 1; zst++)
        for (int padded = 0; padded <= 1; padded++)
            for (int f16 = 0; f16 <= 1; f16++) {
                char what[64];
                snprintf(what, sizeof what, "%s %s %s", zst ? "zst" : "npy",
                         padded ? "padded" : "flat", f16 ? "f16" : "f32");
                struct corpus c = make_corpus(f16 ? MS_DTYPE_F16 : MS_DTYPE_F32, padded, zst, 301,
                                              7, 13, 1234 + (uint64_t)(zst * 4 + padded * 2 + f16));
                compare_blocks(&c, zst, what);
                free(c.data);
                free(c.lengths);
            }
}

/* Plant bad values at storage elements a and b (a first) of a copy of a flat f32 corpus. */
Test(readers, first_nonfinite_in_row_order_whatever_the_threads)
{
    const uint32_t dim = 5;
    const uint64_t n_rows = 200;
    uint64_t st = 7, total = 0;
    int64_t len[200];
    for (uint64_t r = 0; r < n_rows; r++)
        total += (uint64_t)(len[r] = (int64_t)(1 + test_rand_below(&st, 9)));
    float *v = malloc(total * dim * sizeof *v);
    cr_assert(v);
    for (uint64_t i = 0; i < total * dim; i++)
        v[i] = test_rand_f(&st);
    /* two bad values far apart: the later one lands in another thread's piece */
    const uint64_t a = total * dim / 2 + 3, b = total * dim - 2;
    v[a] = NAN;
    v[b] = INFINITY;
    const uint64_t s2[2] = { total, dim }, s1[1] = { n_rows };
    struct corpus c = { .n_rows = n_rows };
    c.data = strdup(write_npy("<f4", s2, 2, v, total * dim * sizeof *v, 0));
    c.lengths = strdup(write_npy("<i8", s1, 1, len, sizeof len, 0));
    /* the row and token of element a */
    uint64_t tok = a / dim, row = 0;
    while (tok >= (uint64_t)len[row])
        tok -= (uint64_t)len[row++];
    char want[512];
    snprintf(want, sizeof want,
             "'%s': row %llu token %llu holds a NaN or Inf (embeddings must be finite)", c.data,
             (unsigned long long)row, (unsigned long long)tok);
    for (int threads = 1; threads <= 8; threads++) {
        struct ms_src s;
        struct ms_emb e;
        struct ms_err err;
        open_src(&s, &c, threads, 16);
        ms_emb_init(&e);
        cr_assert(ms_src_read(&s, 0, n_rows, &e, &err) == MS_ERR_INPUT, "threads %d", threads);
        cr_assert_str_eq(err.msg, want, "threads %d", threads);
        /* a row list skipping row `row` finds the Inf instead */
        uint64_t rows[200], m = 0;
        for (uint64_t r = 0; r < n_rows; r++)
            if (r != row)
                rows[m++] = r;
        cr_assert(ms_src_read_rows(&s, rows, m, &e, &err) == MS_ERR_INPUT);
        cr_assert(strstr(err.msg, "row 199 token") != NULL, "threads %d: %s", threads, err.msg);
        ms_emb_release(&e);
        ms_src_close(&s);
    }
    free(v);
    free(c.data);
    free(c.lengths);
}

/* Bytes of a .npy.zst of several frames: frame sizes declared (ZSTD_compress) or not (a
 * stream without a pledged size, as `zstd` writes from a pipe). */
static size_t frames_of(const uint8_t *src, size_t n, size_t piece, int declare, uint8_t *out,
                        size_t cap)
{
    size_t zn = 0;
    ZSTD_CCtx *cc = ZSTD_createCCtx();
    /* checksums, as `zstd` writes them, so that damage is always detected */
    ZSTD_CCtx_setParameter(cc, ZSTD_c_checksumFlag, 1);
    ZSTD_CCtx_setParameter(cc, ZSTD_c_contentSizeFlag, declare);
    for (size_t off = 0; off < n; off += piece) {
        const size_t part = n - off < piece ? n - off : piece;
        const size_t r = ZSTD_compress2(cc, out + zn, cap - zn, src + off, part);
        cr_assert(!ZSTD_isError(r));
        zn += r;
    }
    ZSTD_freeCCtx(cc);
    return zn;
}

/* Frames without declared sizes stay a stream; a damaged frame of an indexed file is reported
 * as the stream reports it (the first damaged frame in file order), whatever the threads. */
Test(readers, zst_frames_index_or_stream)
{
    const uint32_t dim = 8;
    const uint64_t tokens = 20000; /* 640 KB: more than the stream reader's first read */
    float *v = malloc(tokens * dim * sizeof *v);
    uint64_t st = 5;
    for (uint64_t i = 0; i < tokens * dim; i++)
        v[i] = test_rand_f(&st);
    const uint64_t s2[2] = { tokens, dim };
    char *npy = strdup(write_npy("<f4", s2, 2, v, tokens * dim * sizeof *v, 0));
    FILE *fp = fopen(npy, "rb");
    cr_assert(fp);
    uint8_t *raw = malloc(1 << 20), *z = malloc(2 << 20);
    const size_t n = fread(raw, 1, 1 << 20, fp);
    fclose(fp);
    for (int declare = 0; declare <= 2; declare++) {
        /* declare 2: one frame of declared size, larger than a first read: a stream */
        const size_t zn = frames_of(raw, n, declare == 2 ? n : 5000, declare > 0, z, 2 << 20);
        const char *path = tmpfile_with(z, zn, ".npy.zst");
        struct ms_src s;
        struct ms_err err;
        struct ms_emb e;
        cr_assert(ms_src_open(&s, path, NULL, &err) == MS_OK, "%s", err.msg);
        cr_assert(s.sequential_only == (declare != 1), "declare %d", declare);
        ms_emb_init(&e);
        cr_assert(ms_src_read(&s, 0, 1, &e, &err) == MS_OK, "declare %d: %s", declare, err.msg);
        cr_assert(memcmp(e.tokens, v, tokens * dim * sizeof *v) == 0, "declare %d", declare);
        ms_emb_release(&e);
        ms_src_close(&s);
        if (declare != 1)
            continue;
        /* damage the middle of the 3rd frame and of the 20th: the 3rd is named */
        uint8_t *bad = malloc(zn);
        memcpy(bad, z, zn);
        size_t off = 0, fi = 0;
        while (off < zn) {
            const size_t fsz = ZSTD_findFrameCompressedSize(bad + off, zn - off);
            cr_assert(!ZSTD_isError(fsz));
            if (fi == 2 || fi == 19)
                for (size_t i = off + fsz / 2; i < off + fsz / 2 + 16; i++)
                    bad[i] ^= 0x5A;
            off += fsz;
            fi++;
        }
        const char *bpath = tmpfile_with(bad, zn, ".npy.zst");
        free(bad);
        char want[512];
        snprintf(want, sizeof want, "'%s': corrupt zstd data: ", bpath);
        char first_msg[1024] = "";
        for (int threads = 1; threads <= 8; threads *= 2) {
            if (ms_src_open(&s, bpath, NULL, &err) != MS_OK) { /* damage seen in a header */
                cr_assert(strstr(err.msg, "zstd"), "%s", err.msg);
                break;
            }
            s.threads = threads;
            cr_assert(s.sequential_only == 0, "damage in block headers: not indexed");
            ms_emb_init(&e);
            cr_assert(ms_src_read(&s, 0, 1, &e, &err) == MS_ERR_INPUT, "threads %d", threads);
            cr_assert(strncmp(err.msg, want, strlen(want)) == 0, "threads %d: %s", threads,
                      err.msg);
            if (!first_msg[0])
                snprintf(first_msg, sizeof first_msg, "%s", err.msg);
            cr_assert_str_eq(err.msg, first_msg, "threads %d", threads);
            ms_emb_release(&e);
            ms_src_close(&s);
        }
        cr_assert(first_msg[0], "the damaged file was never read");
    }
    free(raw);
    free(z);
    free(v);
    free(npy);
}

Test(readers, default_threads)
{
    const int n = ms_read_threads_default();
    cr_assert(n >= 1 && n <= 8);
}

/* The scan finds the first bad value wherever it is: in a full block of the fast path, in the
 * tail, at block edges, for both types, NaN and Inf of either sign; finite extremes pass. */
Test(readers, nonfinite_scan_every_position)
{
    enum { N = 4096 * 2 + 100 };
    static uint16_t h[N];
    static uint32_t w[N];
    for (size_t i = 0; i < N; i++) {
        h[i] = i % 2 ? 0x7bff : 0xfbff; /* +-65504, the largest finite halves */
        w[i] = i % 2 ? 0x7f7fffffu : 0xff7fffffu;
    }
    cr_assert(ms_nonfinite_first(h, MS_DTYPE_F16, 0, N) == UINT64_MAX);
    cr_assert(ms_nonfinite_first(w, MS_DTYPE_F32, 0, N) == UINT64_MAX);
    static const uint16_t bad16[] = { 0x7c00, 0xfc00, 0x7e00, 0x7c01 };
    static const uint32_t bad32[] = { 0x7f800000u, 0xff800000u, 0x7fc00000u, 0x7f800001u };
    for (size_t at = 0; at < N; at += (at % 4096 < 2 || at % 4096 > 4093) ? 1 : 37) {
        const uint16_t sh = h[at];
        const uint32_t sw = w[at];
        h[at] = bad16[at % 4];
        w[at] = bad32[at % 4];
        cr_assert(ms_nonfinite_first(h, MS_DTYPE_F16, 0, N) == at, "f16 at %zu", at);
        cr_assert(ms_nonfinite_first(w, MS_DTYPE_F32, 0, N) == at, "f32 at %zu", at);
        /* a search starting after it does not see it */
        cr_assert(ms_nonfinite_first(h, MS_DTYPE_F16, at + 1, N - at - 1) == UINT64_MAX);
        h[at] = sh;
        w[at] = sw;
    }
}

/* HDF5: contiguous little-endian data, and chunks of whole tokens without filters, are read
 * with pread on several threads (concurrent); chunks that cut tokens, unwritten chunks,
 * compressed or big-endian data go through HDF5 on one thread. Either way the
 * blocks are the same whatever the threads, and big-endian data reads as the same values as
 * its little-endian twin would (checked by test_h5). */
Test(readers, h5_direct_or_through_hdf5)
{
    static const struct {
        const char *spec, *lengths;
        int concurrent;
    } cases[] = {
        { "h5_f16_3d.h5", NULL, 1 },           { "h5_f32_2d.h5", NULL, 1 },
        { "h5_group.h5:/colbert", NULL, 1 },   { "h5_chunked.h5", NULL, 0 },
        { "h5_chunked.h5:/flat", NULL, 0 },    { "h5_be.h5", NULL, 0 },
        { "h5_chunked_raw.h5", NULL, 1 },      { "h5_chunked_raw.h5:/flat", NULL, 1 },
        { "h5_chunked_raw.h5:/cut", NULL, 0 }, { "h5_chunked_raw.h5:/holes", NULL, 0 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct ms_src one, many;
        struct ms_emb e1, e2;
        struct ms_err err;
        char spec[1024];
        snprintf(spec, sizeof spec, "%s", fixture(cases[i].spec));
        cr_assert(ms_src_open(&one, spec, NULL, &err) == MS_OK, "%s", err.msg);
        cr_assert(ms_src_open(&many, spec, NULL, &err) == MS_OK, "%s", err.msg);
        cr_assert(one.raw.concurrent == cases[i].concurrent, "%s: concurrent %d", cases[i].spec,
                  one.raw.concurrent);
        one.threads = 1;
        many.threads = 4;
        many.piece_bytes = 8;
        ms_emb_init(&e1);
        ms_emb_init(&e2);
        for (uint64_t r = 0; r < one.n_rows; r++) /* every row alone, then all */
            for (uint64_t n = 1; n <= one.n_rows - r; n += one.n_rows - r) {
                cr_assert(ms_src_read(&one, r, n, &e1, &err) == MS_OK, "%s", err.msg);
                cr_assert(ms_src_read(&many, r, n, &e2, &err) == MS_OK, "%s", err.msg);
                same_emb(cases[i].spec, &e1, &e2);
            }
        ms_emb_release(&e1);
        ms_emb_release(&e2);
        ms_src_close(&one);
        ms_src_close(&many);
    }
}

/* The pread path gives the same bytes as HDF5's own read of the same dataset. */
Test(readers, h5_direct_matches_hdf5)
{
    struct ms_src s;
    struct ms_err err;
    cr_assert(ms_src_open(&s, fixture("h5_f16_3d.h5"), NULL, &err) == MS_OK, "%s", err.msg);
    cr_assert(s.raw.concurrent);
    const uint64_t n = s.raw.shape[0] * s.raw.shape[1];
    uint16_t *a = malloc(n * s.dim * 2);
    cr_assert(s.raw.ops->read_span(s.raw.impl, 0, n, a, &err) == MS_OK, "%s", err.msg);
    /* value(r, t, k) of tests/fixtures_h5.py: ((r * 31 + t * 7 + k) % 17) / 8 - 1 */
    for (uint64_t r = 0; r < s.raw.shape[0]; r++)
        for (uint64_t t = 0; t < s.raw.shape[1]; t++)
            for (uint64_t k = 0; k < s.dim; k++) {
                const float want = (float)((double)((r * 31 + t * 7 + k) % 17) / 8.0 - 1.0);
                const float got = ms_half_to_float(a[(r * s.raw.shape[1] + t) * s.dim + k]);
                cr_assert(got == want, "r %llu t %llu k %llu: %g != %g", (unsigned long long)r,
                          (unsigned long long)t, (unsigned long long)k, got, want);
            }
    free(a);
    ms_src_close(&s);
}

/* Chunks read with pread (at the addresses HDF5 gives) hold the values HDF5 reads: padded
 * float16 in chunks of two rows, the last one reaching past the end, and flat float32 in
 * chunks of 8 tokens; every span, crossing chunks or not. */
Test(readers, h5_chunks_direct_match_hdf5)
{
    static const char *specs[] = { "h5_chunked_raw.h5", "h5_chunked_raw.h5:/flat" };
    for (int i = 0; i < 2; i++) {
        struct ms_src s;
        struct ms_err err;
        char spec[1024];
        snprintf(spec, sizeof spec, "%s", fixture(specs[i]));
        cr_assert(ms_src_open(&s, spec, NULL, &err) == MS_OK, "%s", err.msg);
        cr_assert(s.raw.concurrent, "%s", specs[i]);
        const int padded = s.layout == MS_LAYOUT_PADDED;
        const uint64_t n = padded ? s.raw.shape[0] * s.raw.shape[1] : s.raw.shape[0];
        const size_t es = padded ? 2 : 4;
        char *a = malloc(n * s.dim * es);
        for (uint64_t first = 0; first < n; first++)
            for (uint64_t len = 1; first + len <= n; len += 5) {
                cr_assert(s.raw.ops->read_span(s.raw.impl, first, len, a, &err) == MS_OK, "%s",
                          err.msg);
                for (uint64_t t = first; t < first + len; t++)
                    for (uint64_t k = 0; k < s.dim; k++) {
                        /* value(r, t, k) of tests/fixtures_h5.py: ((r * 31 + t * 7 + k) % 17) / 8 -
                         * 1 */
                        const uint64_t r = padded ? t / s.raw.shape[1] : 0;
                        const uint64_t tt = padded ? t % s.raw.shape[1] : t;
                        const float want =
                            (float)((double)((r * 31 + tt * 7 + k) % 17) / 8.0 - 1.0);
                        const size_t at = (t - first) * s.dim + k;
                        float got;
                        if (padded)
                            got = ms_half_to_float(((const uint16_t *)(const void *)a)[at]);
                        else
                            memcpy(&got, a + at * 4, 4);
                        cr_assert(got == want, "%s: token %llu k %llu: %g != %g", specs[i],
                                  (unsigned long long)t, (unsigned long long)k, got, want);
                    }
            }
        free(a);
        ms_src_close(&s);
    }
}
