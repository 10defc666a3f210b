/*
 * test_npy.c - the .npy / .npy.zst backends and the header parser (npy.c).
 *
 * Files come from tests/fixtures_npy.py (written by numpy and the zstd CLI);
 * their values follow value(r, t, k) = ((r * 31 + t * 7 + k) % 17) / 8 - 1,
 * recomputed here, so every element read back is checked exactly. Header
 * parser cases are hand-written byte buffers. Tables of cases are looped in
 * one Test each; every check names its case.
 */
#include <math.h>
#include <sys/stat.h>

#include "npy.h"
#include "src.h"
#include "testutil.h"

#define ROWS        4
#define LEN         5
#define DIM         6
#define FLAT_TOKENS 12 /* lengths 3, 5, 0, 4 */

/* The expected message: msg with its "%s" replaced by path (a table entry is
 * not a format literal, so no printf here). */
static void expand(char *out, size_t cap, const char *msg, const char *path)
{
    const char *at = strstr(msg, "%s");
    if (!at)
        snprintf(out, cap, "%s", msg);
    else
        snprintf(out, cap, "%.*s%s%s", (int)(at - msg), msg, path, at + 2);
}

static float value(uint64_t r, uint64_t t, uint64_t k)
{
    return (float)((double)((r * 31 + t * 7 + k) % 17) / 8.0 - 1.0);
}

/* Expected element k of storage token s of a fixture of the given rank. */
static float storage_value(int rank, uint64_t s, uint64_t k)
{
    return rank == 3 ? value(s / LEN, s % LEN, k) : value(0, s, k);
}

static float elem(const struct ms_raw *raw, const void *buf, uint64_t i)
{
    if (raw->dtype == MS_DTYPE_F16)
        return ms_half_to_float(((const uint16_t *)buf)[i]);
    return ((const float *)buf)[i];
}

/* Check tokens [first, first + n) held in buf. */
static void check_tokens(const char *name, const struct ms_raw *raw, const void *buf,
                         uint64_t first, uint64_t n)
{
    for (uint64_t s = 0; s < n; s++)
        for (uint64_t k = 0; k < DIM; k++) {
            const float got = elem(raw, buf, s * DIM + k);
            const float want = storage_value(raw->rank, first + s, k);
            cr_assert(got == want, "%s: token %llu element %llu: got %g, want %g", name,
                      (unsigned long long)(first + s), (unsigned long long)k, got, want);
        }
}

struct good_case {
    const char *name;
    int zst;
    enum ms_dtype dtype;
    int rank;
    uint64_t shape[3];
};

static const struct good_case good_cases[] = {
    { "npy_f32_3d.npy", 0, MS_DTYPE_F32, 3, { ROWS, LEN, DIM } },
    { "npy_f16_3d.npy", 0, MS_DTYPE_F16, 3, { ROWS, LEN, DIM } },
    { "npy_f32_3d_v2.npy", 0, MS_DTYPE_F32, 3, { ROWS, LEN, DIM } },
    { "npy_f32_3d_v3.npy", 0, MS_DTYPE_F32, 3, { ROWS, LEN, DIM } },
    { "npy_f16_3d_v2.npy", 0, MS_DTYPE_F16, 3, { ROWS, LEN, DIM } },
    { "npy_f32_2d.npy", 0, MS_DTYPE_F32, 2, { FLAT_TOKENS, DIM, 0 } },
    { "npy_f16_2d.npy", 0, MS_DTYPE_F16, 2, { FLAT_TOKENS, DIM, 0 } },
    { "npy_empty_2d.npy", 0, MS_DTYPE_F32, 2, { 0, DIM, 0 } },
    { "npy_f32_3d.npy.zst", 1, MS_DTYPE_F32, 3, { ROWS, LEN, DIM } },
    { "npy_f16_3d.npy.zst", 1, MS_DTYPE_F16, 3, { ROWS, LEN, DIM } },
    { "npy_f32_2d.npy.zst", 1, MS_DTYPE_F32, 2, { FLAT_TOKENS, DIM, 0 } },
    { "npy_f32_3d_multi.npy.zst", 1, MS_DTYPE_F32, 3, { ROWS, LEN, DIM } },
};

static int open_any(const char *path, int zst, struct ms_raw *raw, struct ms_err *err)
{
    memset(raw, 0, sizeof *raw);
    ms_ids_init(&raw->ids);
    return zst ? ms_npy_zst_open(path, raw, err) : ms_npy_open(path, raw, err);
}

static void close_raw(struct ms_raw *raw)
{
    if (raw->ops)
        raw->ops->close(raw->impl);
    memset(raw, 0, sizeof *raw);
}

static uint64_t n_storage(const struct ms_raw *raw)
{
    return raw->rank == 3 ? raw->shape[0] * raw->shape[1] : raw->shape[0];
}

Test(npy, good_files_open_and_read_whole)
{
    for (size_t i = 0; i < sizeof good_cases / sizeof *good_cases; i++) {
        const struct good_case *c = &good_cases[i];
        const char *path = fixture(c->name);
        struct ms_raw raw;
        struct ms_err err = { 0 };
        char where[1100];
        struct stat st;

        cr_assert(open_any(path, c->zst, &raw, &err) == MS_OK, "%s: %s", c->name, err.msg);
        cr_expect(raw.dtype == c->dtype, "%s: dtype", c->name);
        cr_expect(raw.rank == c->rank, "%s: rank %d", c->name, raw.rank);
        for (int d = 0; d < c->rank; d++)
            cr_expect(raw.shape[d] == c->shape[d], "%s: shape[%d] = %llu", c->name, d,
                      (unsigned long long)raw.shape[d]);
        cr_expect(raw.sequential_only == c->zst, "%s: sequential_only", c->name);
        snprintf(where, sizeof where, "'%s'", path);
        cr_expect_str_eq(raw.where, where, "%s: where", c->name);
        cr_expect(raw.lengths == NULL && raw.n_lengths == 0, "%s: lengths", c->name);
        cr_assert(stat(path, &st) == 0);
        const uint64_t n = n_storage(&raw), bytes = n * DIM * ms_dtype_size(raw.dtype);
        if (c->zst)
            cr_expect(raw.data_bytes == (uint64_t)st.st_size, "%s: data_bytes", c->name);
        else
            cr_expect(raw.data_bytes == bytes, "%s: data_bytes %llu", c->name,
                      (unsigned long long)raw.data_bytes);
        void *buf = malloc(bytes + 1);
        if (n) {
            cr_assert(raw.ops->read_span(raw.impl, 0, n, buf, &err) == MS_OK, "%s: %s", c->name,
                      err.msg);
            check_tokens(c->name, &raw, buf, 0, n);
        }
        free(buf);
        close_raw(&raw);
    }
}

/* Plain files: every span [first, first + n), in any order, again and again. */
Test(npy, arbitrary_spans)
{
    const char *names[] = { "npy_f32_3d.npy", "npy_f16_3d_v2.npy", "npy_f32_2d.npy" };

    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        struct ms_raw raw;
        struct ms_err err = { 0 };
        float buf[ROWS * LEN * DIM];

        cr_assert(open_any(fixture(names[i]), 0, &raw, &err) == MS_OK, "%s", err.msg);
        const uint64_t total = n_storage(&raw);
        for (uint64_t first = total + 1; first-- > 0;)
            for (uint64_t n = 0; first + n <= total; n++) {
                cr_assert(raw.ops->read_span(raw.impl, first, n, buf, &err) == MS_OK, "%s: %s",
                          names[i], err.msg);
                check_tokens(names[i], &raw, buf, first, n);
            }
        /* out of range is a caller bug: a runtime error, not a crash */
        cr_expect(raw.ops->read_span(raw.impl, total, 1, buf, &err) == MS_ERR_RUNTIME);
        cr_expect(raw.ops->read_span(raw.impl, 1, UINT64_MAX, buf, &err) == MS_ERR_RUNTIME);
        close_raw(&raw);
    }
}

/* Streams: forward reads with skips between them, and a refused backward read. */
Test(npy, zst_forward_spans_and_skips)
{
    const char *names[] = { "npy_f32_3d.npy.zst", "npy_f16_3d.npy.zst",
                            "npy_f32_3d_multi.npy.zst" };
    static const uint64_t spans[][2] = { { 0, 1 }, { 1, 2 },  { 5, 0 },
                                         { 7, 3 }, { 13, 1 }, { 19, 1 } };

    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        struct ms_raw raw;
        struct ms_err err = { 0 };
        float buf[ROWS * LEN * DIM];

        cr_assert(open_any(fixture(names[i]), 1, &raw, &err) == MS_OK, "%s", err.msg);
        for (size_t j = 0; j < sizeof spans / sizeof *spans; j++) {
            cr_assert(raw.ops->read_span(raw.impl, spans[j][0], spans[j][1], buf, &err) == MS_OK,
                      "%s span %zu: %s", names[i], j, err.msg);
            check_tokens(names[i], &raw, buf, spans[j][0], spans[j][1]);
        }
        cr_expect(raw.ops->read_span(raw.impl, 3, 1, buf, &err) == MS_ERR_RUNTIME);
        cr_expect(strstr(err.msg, "is a stream: token 3 requested after token 20 was read"), "%s",
                  err.msg);
        close_raw(&raw);
    }
    /* a skip straight to the last token */
    {
        struct ms_raw raw;
        struct ms_err err = { 0 };
        float buf[DIM];
        cr_assert(open_any(fixture("npy_f32_3d.npy.zst"), 1, &raw, &err) == MS_OK, "%s", err.msg);
        cr_assert(raw.ops->read_span(raw.impl, ROWS * LEN - 1, 1, buf, &err) == MS_OK, "%s",
                  err.msg);
        check_tokens("skip to last", &raw, buf, ROWS * LEN - 1, 1);
        close_raw(&raw);
    }
}

/* NaN and Inf are delivered as they are: src.c refuses them with the row. */
Test(npy, nonfinite_values_pass_through)
{
    struct ms_raw raw;
    struct ms_err err = { 0 };
    float buf[ROWS * LEN * DIM];

    cr_assert(open_any(fixture("npy_nan.npy"), 0, &raw, &err) == MS_OK, "%s", err.msg);
    cr_assert(raw.ops->read_span(raw.impl, 0, ROWS * LEN, buf, &err) == MS_OK, "%s", err.msg);
    cr_expect(isnan(buf[(2 * LEN + 1) * DIM + 3]));
    cr_expect(isinf(buf[(3 * LEN + 0) * DIM + 0]) && buf[3 * LEN * DIM] > 0);
    cr_expect(buf[(2 * LEN + 1) * DIM + 2] == value(2, 1, 2));
    close_raw(&raw);
}

/* Bad inputs: the exact message, with %s standing for the fixture's path. */
struct bad_case {
    const char *name;
    int zst;
    int at_read; /* the error shows when the data is read, not at open */
    int status;
    const char *msg;
};

static const struct bad_case bad_cases[] = {
    { "npy_missing.npy", 0, 0, MS_ERR_INPUT, "cannot open '%s': No such file or directory" },
    { "npy_missing.npy.zst", 1, 0, MS_ERR_INPUT, "cannot open '%s': No such file or directory" },
    { "npy_badmagic.npy", 0, 0, MS_ERR_INPUT, "'%s': not a .npy file (bad magic bytes)" },
    { "npy_tiny.npy", 0, 0, MS_ERR_INPUT, "'%s': not a .npy file (too short: 4 bytes)" },
    { "npy_version.npy", 0, 0, MS_ERR_INPUT,
      "'%s': unsupported .npy format version 4.0 (expected 1.0, 2.0 or 3.0)" },
    { "npy_hdrlen.npy", 0, 0, MS_ERR_INPUT,
      "'%s': header length 5000 goes beyond the end of the file (the header ends at byte 5010, "
      "the file has 200 bytes)" },
    { "npy_f64.npy", 0, 0, MS_ERR_INPUT,
      "'%s': unsupported element type '<f8' (float64); expected float32 '<f4' or float16 '<f2'" },
    { "npy_f64.npy.zst", 1, 0, MS_ERR_INPUT,
      "'%s': unsupported element type '<f8' (float64); expected float32 '<f4' or float16 '<f2'" },
    { "npy_i4_emb.npy", 0, 0, MS_ERR_INPUT,
      "'%s': unsupported element type '<i4' (int32); expected float32 '<f4' or float16 '<f2'" },
    { "npy_c16.npy", 0, 0, MS_ERR_INPUT,
      "'%s': unsupported element type '<c16' (complex128); expected float32 '<f4' or float16 "
      "'<f2'" },
    { "npy_object.npy", 0, 0, MS_ERR_INPUT,
      "'%s': unsupported element type '|O' (object); expected float32 '<f4' or float16 '<f2'" },
    { "npy_structured.npy", 0, 0, MS_ERR_INPUT,
      "'%s': unsupported element type [('a', '<f4'), ('b', '<i4')] (a structured dtype); "
      "expected float32 '<f4' or float16 '<f2'" },
    { "npy_bigendian.npy", 0, 0, MS_ERR_INPUT,
      "'%s': unsupported element type '>f4' (big-endian float32); expected little-endian float32 "
      "'<f4' or float16 '<f2' (numpy: a.astype('<f4'))" },
    { "npy_fortran.npy", 0, 0, MS_ERR_INPUT,
      "'%s': fortran_order is True; only C-order arrays are supported "
      "(numpy.ascontiguousarray)" },
    { "npy_1d.npy", 0, 0, MS_ERR_INPUT,
      "'%s': expected a 2-D [tokens, dim] or 3-D [rows, tokens, dim] array, got 1-D shape (5,)" },
    { "npy_4d.npy", 0, 0, MS_ERR_INPUT,
      "'%s': expected a 2-D [tokens, dim] or 3-D [rows, tokens, dim] array, got 4-D shape "
      "(2, 2, 2, 2)" },
    { "npy_truncated.npy", 0, 0, MS_ERR_INPUT,
      "'%s': truncated: shape (4, 5, 6) float32 needs 480 bytes of data, the file has 472" },
    { "npy_trailing.npy", 0, 0, MS_ERR_INPUT,
      "'%s': trailing data: shape (4, 5, 6) float32 needs 480 bytes of data, the file has 484" },
    { "npy_notzstd.npy.zst", 1, 0, MS_ERR_INPUT, "'%s': not a zstd file (bad magic bytes)" },
    { "npy_f32_3d_short.npy.zst", 1, 1, MS_ERR_INPUT,
      "'%s': truncated: shape (4, 5, 6) float32 needs 480 bytes of data, the stream ends after "
      "440" },
    { "npy_f32_3d_cut.npy.zst", 1, 0, MS_ERR_INPUT,
      "'%s': truncated zstd data (the file ends inside a frame)" },
    { "npy_f32_3d_trailing.npy.zst", 1, 1, MS_ERR_INPUT,
      "'%s': trailing data: shape (4, 5, 6) float32 needs 480 bytes of data, the stream has 488" },
    { "npy_f32_3d_corrupt.npy.zst", 1, 0, MS_ERR_INPUT, "'%s': corrupt zstd data: " },
    { "npy_late_corrupt.npy.zst", 1, 1, MS_ERR_INPUT, "'%s': corrupt zstd data: " },
    { "npy_late_cut.npy.zst", 1, 1, MS_ERR_INPUT,
      "'%s': truncated zstd data (the file ends inside a frame)" },
};

Test(npy, bad_files)
{
    for (size_t i = 0; i < sizeof bad_cases / sizeof *bad_cases; i++) {
        const struct bad_case *c = &bad_cases[i];
        const char *path = fixture(c->name);
        struct ms_raw raw;
        struct ms_err err = { 0 };
        char want[1100];
        int rc;

        expand(want, sizeof want, c->msg, path);
        rc = open_any(path, c->zst, &raw, &err);
        if (c->at_read) {
            cr_assert(rc == MS_OK, "%s: open: %s", c->name, err.msg);
            const uint64_t n = n_storage(&raw);
            void *buf = malloc(n * raw.shape[raw.rank - 1] * ms_dtype_size(raw.dtype));
            rc = raw.ops->read_span(raw.impl, 0, n, buf, &err);
            free(buf);
            close_raw(&raw);
        }
        cr_expect(rc == c->status, "%s: status %d, want %d (%s)", c->name, rc, c->status, err.msg);
        cr_expect(err.status == c->status, "%s: err.status", c->name);
        if (strstr(c->msg, "corrupt"))
            cr_expect(strncmp(err.msg, want, strlen(want)) == 0 && strlen(err.msg) > strlen(want),
                      "%s:\n got: %s\nwant: %s...", c->name, err.msg, want);
        else
            cr_expect_str_eq(err.msg, want, "%s:\n got: %s\nwant: %s", c->name, err.msg, want);
        cr_expect(!strchr(err.msg, '\n'), "%s: one line", c->name);
    }
}

Test(npy, directory_is_refused)
{
    struct ms_raw raw;
    struct ms_err err = { 0 };
    char want[1100];

    snprintf(want, sizeof want, "cannot read '/tmp': Is a directory");
    cr_expect(open_any("/tmp", 0, &raw, &err) == MS_ERR_INPUT);
    cr_expect_str_eq(err.msg, want);
    cr_expect(open_any("/tmp", 1, &raw, &err) == MS_ERR_INPUT);
    cr_expect_str_eq(err.msg, want);
}

struct ints_case {
    const char *name;
    int64_t v[5];
};

static const struct ints_case ints_cases[] = {
    { "npy_ints_i8.npy", { 0, 1, 7, INT64_MIN, INT64_MAX } },
    { "npy_ints_i4.npy", { 0, 1, 7, INT32_MIN, INT32_MAX } },
    { "npy_ints_i2.npy", { 0, 1, 7, INT16_MIN, INT16_MAX } },
    { "npy_ints_i1.npy", { 0, 1, 7, INT8_MIN, INT8_MAX } },
    { "npy_ints_u8.npy", { 0, 1, 7, 2, INT64_MAX } },
    { "npy_ints_u4.npy", { 0, 1, 7, 2, UINT32_MAX } },
    { "npy_ints_u2.npy", { 0, 1, 7, 2, UINT16_MAX } },
    { "npy_ints_u1.npy", { 0, 1, 7, 2, UINT8_MAX } },
    { "npy_ints_i8.npy.zst", { 0, 1, 7, INT64_MIN, INT64_MAX } },
};

Test(npy, read_ints_every_type)
{
    for (size_t i = 0; i < sizeof ints_cases / sizeof *ints_cases; i++) {
        const struct ints_case *c = &ints_cases[i];
        struct ms_err err = { 0 };
        int64_t *v = NULL;
        uint64_t n = 0;

        cr_assert(ms_npy_read_ints(fixture(c->name), &v, &n, &err) == MS_OK, "%s: %s", c->name,
                  err.msg);
        cr_assert(n == 5, "%s: n = %llu", c->name, (unsigned long long)n);
        for (int j = 0; j < 5; j++)
            cr_expect(v[j] == c->v[j], "%s[%d]: got %lld, want %lld", c->name, j, (long long)v[j],
                      (long long)c->v[j]);
        free(v);
    }
}

Test(npy, read_ints_lengths_and_empty)
{
    const char *names[] = { "npy_lengths_i8.npy", "npy_lengths_i4.npy" };
    static const int64_t want[] = { 3, 5, 0, 4 };
    struct ms_err err = { 0 };
    int64_t *v;
    uint64_t n;

    for (size_t i = 0; i < 2; i++) {
        cr_assert(ms_npy_read_ints(fixture(names[i]), &v, &n, &err) == MS_OK, "%s", err.msg);
        cr_assert(n == 4);
        for (int j = 0; j < 4; j++)
            cr_expect(v[j] == want[j], "%s[%d]", names[i], j);
        free(v);
    }
    /* an empty array gives a non-NULL pointer: NULL means "no lengths" to src.c */
    cr_assert(ms_npy_read_ints(fixture("npy_ints_empty.npy"), &v, &n, &err) == MS_OK, "%s",
              err.msg);
    cr_expect(n == 0 && v != NULL);
    free(v);
}

/* Fill a pipe with a fixture's bytes; returns the path of its read end. */
static const char *pipe_with(const char *name, char path[64])
{
    int fds[2];
    char buf[4096];
    FILE *f = fopen(fixture(name), "rb");
    cr_assert(f && pipe(fds) == 0);
    const size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    cr_assert(n < sizeof buf && write(fds[1], buf, n) == (ssize_t)n);
    close(fds[1]);
    snprintf(path, 64, "/proc/self/fd/%d", fds[0]);
    return path;
}

/* Lengths and compressed embeddings are read forward, so pipes work;
 * plain .npy embeddings are read at random positions, so they do not. */
Test(npy, pipes)
{
    struct ms_err err = { 0 };
    struct ms_raw raw;
    char path[64], want[256];
    float buf[ROWS * LEN * DIM];
    int64_t *v;
    uint64_t n;

    cr_assert(ms_npy_read_ints(pipe_with("npy_lengths_i4.npy", path), &v, &n, &err) == MS_OK, "%s",
              err.msg);
    cr_expect(n == 4 && v[0] == 3 && v[1] == 5 && v[2] == 0 && v[3] == 4);
    free(v);
    cr_expect(ms_npy_read_ints(pipe_with("npy_ints_trunc.npy", path), &v, &n, &err) ==
              MS_ERR_INPUT);
    snprintf(want, sizeof want,
             "'%s': truncated: shape (5,) int64 needs 40 bytes of data, the stream ends after 36",
             path);
    cr_expect_str_eq(err.msg, want);
    cr_assert(open_any(pipe_with("npy_f32_3d.npy.zst", path), 1, &raw, &err) == MS_OK, "%s",
              err.msg);
    cr_expect(raw.data_bytes == 0);
    cr_assert(raw.ops->read_span(raw.impl, 2, ROWS * LEN - 2, buf, &err) == MS_OK, "%s", err.msg);
    check_tokens("pipe", &raw, buf, 2, ROWS * LEN - 2);
    close_raw(&raw);
    cr_expect(open_any(pipe_with("npy_f32_3d.npy", path), 0, &raw, &err) == MS_ERR_INPUT);
    snprintf(want, sizeof want,
             "'%s': not a regular file (a .npy input is read at random positions)", path);
    cr_expect_str_eq(err.msg, want);
}

static const struct bad_case bad_ints_cases[] = {
    { "npy_ints_u8_huge.npy", 0, 0, MS_ERR_INPUT, "'%s': value at index 1 does not fit in int64" },
    { "npy_ints_2d.npy", 0, 0, MS_ERR_INPUT,
      "'%s': expected a 1-D integer array, got 2-D shape (2, 3)" },
    { "npy_f32_3d.npy", 0, 0, MS_ERR_INPUT,
      "'%s': unsupported element type '<f4' (float32); expected an integer type such as '<i8'" },
    { "npy_ints_f4.npy", 0, 0, MS_ERR_INPUT,
      "'%s': unsupported element type '<f4' (float32); expected an integer type such as '<i8'" },
    { "npy_ints_be.npy", 0, 0, MS_ERR_INPUT,
      "'%s': unsupported element type '>i4' (big-endian int32); expected little-endian an integer "
      "type such as '<i8'" },
    { "npy_ints_trunc.npy", 0, 0, MS_ERR_INPUT,
      "'%s': truncated: shape (5,) int64 needs 40 bytes of data, the file has 36" },
    { "npy_ints_trunc.npy.zst", 0, 0, MS_ERR_INPUT,
      "'%s': truncated: shape (5,) int64 needs 40 bytes of data, the stream ends after 36" },
    { "npy_missing.npy", 0, 0, MS_ERR_INPUT, "cannot open '%s': No such file or directory" },
    { "npy_badmagic.npy", 0, 0, MS_ERR_INPUT, "'%s': not a .npy file (bad magic bytes)" },
};

Test(npy, read_ints_errors)
{
    for (size_t i = 0; i < sizeof bad_ints_cases / sizeof *bad_ints_cases; i++) {
        const struct bad_case *c = &bad_ints_cases[i];
        const char *path = fixture(c->name);
        struct ms_err err = { 0 };
        char want[1100];
        int64_t *v = (int64_t *)1;
        uint64_t n = 99;

        expand(want, sizeof want, c->msg, path);
        cr_expect(ms_npy_read_ints(path, &v, &n, &err) == c->status, "%s: %s", c->name, err.msg);
        cr_expect(v == NULL && n == 0, "%s: outputs cleared", c->name);
        cr_expect_str_eq(err.msg, want, "%s:\n got: %s\nwant: %s", c->name, err.msg, want);
    }
}

/* ---- the header parser on memory ---- */

/* Build a .npy prefix: magic, version, length field, then the dict text. */
static size_t make_npy(uint8_t *buf, size_t cap, unsigned major, const char *dict)
{
    const size_t dlen = strlen(dict), pre = major == 1 ? 10 : 12;
    cr_assert(pre + dlen <= cap);
    memcpy(buf, "\x93NUMPY", 6);
    buf[6] = (uint8_t)major;
    buf[7] = 0;
    for (size_t i = 0; i < pre - 8; i++)
        buf[8 + i] = (uint8_t)(dlen >> (8 * i));
    memcpy(buf + pre, dict, dlen);
    return pre + dlen;
}

struct hdr_case {
    unsigned major;
    const char *dict;
    int status;
    const char *want; /* for good cases: "descr kind itemsize fortran shape"; else the message */
};

static const struct hdr_case hdr_cases[] = {
    { 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }          \n", MS_OK,
      "<f4 f 4 0 (2, 3)" },
    { 2, "{'descr': '<f2', 'fortran_order': False, 'shape': (4, 5, 6), }\n", MS_OK,
      "<f2 f 2 0 (4, 5, 6)" },
    { 3, "{'descr': '<f4', 'fortran_order': True, 'shape': (7,), }\n", MS_OK, "<f4 f 4 1 (7,)" },
    /* any key order, odd whitespace, double quotes, no trailing comma */
    { 1, "\t{ \"shape\" :( 2 ,\n3 ) ,'fortran_order':False,\r\n'descr':\"=f2\"}", MS_OK,
      "=f2 f 2 0 (2, 3)" },
    { 1, "{'descr':'|u1','fortran_order':False,'shape':()}", MS_OK, "|u1 u 1 0 ()" },
    { 1, "{'descr': '<i8', 'fortran_order': False, 'shape': (3L, 4L), }", MS_OK,
      "<i8 i 8 0 (3, 4)" },
    { 1, "{'descr': '<M8[ns]', 'fortran_order': False, 'shape': (1,), }", MS_OK,
      "<M8[ns] M 8 0 (1,)" },
    { 1, "{'descr': [('a', '<f4'), ('b', '<i4', (2,))], 'fortran_order': False, 'shape': (1,)}",
      MS_OK, "[('a', '<f4'), ('b', '<i4', ... 0 0 0 (1,)" },
    { 1, "{'descr': '<x9', 'fortran_order': False, 'shape': (1,)}", MS_OK, "<x9 0 0 0 (1,)" },
    /* malformed dicts */
    { 1, "['descr', '<f4']", MS_ERR_INPUT,
      "malformed header: expected '{' opening the header dict at byte 10, found '['" },
    { 1, "{'descr': '<f4', 'fortran_order': False}", MS_ERR_INPUT,
      "malformed header: no 'shape' key (a .npy header has 'descr', 'fortran_order' and 'shape')" },
    { 1, "{'shape': (1,), 'fortran_order': False}", MS_ERR_INPUT,
      "malformed header: no 'descr' key (a .npy header has 'descr', 'fortran_order' and 'shape')" },
    { 1, "{'descr': '<f4', 'descr': '<f4'}", MS_ERR_INPUT,
      "malformed header: duplicate key 'descr'" },
    { 1, "{'descr': '<f4', 'dtype': 1}", MS_ERR_INPUT,
      "malformed header: unexpected key 'dtype' (expected 'descr', 'fortran_order' and 'shape')" },
    { 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3)}", MS_ERR_INPUT,
      "malformed header: 'shape' is (3), not a tuple (a 1-element tuple is written (3,))" },
    { 1, "{'descr': '<f4', 'fortran_order': False, 'shape': [3, 4]}", MS_ERR_INPUT,
      "malformed header: expected a tuple like (2, 3) for 'shape' at byte 60, found '['" },
    { 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3, -4)}", MS_ERR_INPUT,
      "malformed header: expected a dimension or ')' in 'shape' at byte 64, found '-'" },
    { 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3 4)}", MS_ERR_INPUT,
      "malformed header: expected ',' or ')' in 'shape' at byte 63, found '4'" },
    { 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,)}", MS_ERR_INPUT,
      "malformed header: shape dimension at byte 61 does not fit in 64 bits" },
    { 1, "{'descr': '<f4', 'fortran_order': 0, 'shape': (3,)}", MS_ERR_INPUT,
      "malformed header: expected True or False for 'fortran_order' at byte 44, found '0'" },
    { 1, "{'descr': '<f4', 'fortran_order': Falsey, 'shape': (3,)}", MS_ERR_INPUT,
      "malformed header: expected True or False for 'fortran_order' at byte 44, found 'F'" },
    { 1, "{'descr': '<f4, 'fortran_order': False}", MS_ERR_INPUT,
      "malformed header: expected ',' or '}' in the header dict at byte 27, found 'f'" },
    { 1, "{'descr': '<f4\n', 'fortran_order': False}", MS_ERR_INPUT,
      "malformed header: expected a closing quote at byte 24, found byte 0x0a" },
    { 1, "{'descr': '<f\\x34'}", MS_ERR_INPUT,
      "malformed header: escape sequences are not supported (byte 23)" },
    { 1, "{'descr': 4}", MS_ERR_INPUT,
      "malformed header: expected a type string like '<f4' for 'descr' at byte 20, found '4'" },
    { 1, "{'descr' '<f4'}", MS_ERR_INPUT,
      "malformed header: expected ':' after a key at byte 19, found '''" },
    { 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,)} x", MS_ERR_INPUT,
      "malformed header: expected only spaces after the header dict at byte 66, found 'x'" },
    { 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,)", MS_ERR_INPUT,
      "malformed header: expected ',' or '}' in the header dict at byte 64, found the end of the "
      "header" },
    { 1,
      "{'descr': [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[('a', '<f4')]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}",
      MS_ERR_INPUT, "malformed header: nesting deeper than 32" },
    { 1, "{'descr': [('a', '<f4'), 'fortran_order': False, 'shape': (1,)}", MS_ERR_INPUT,
      "malformed header: expected a value at byte 50, found ':'" },
    { 1, "{'\x01\x02': 1}", MS_ERR_INPUT,
      "malformed header: unexpected key '?\?' (expected 'descr', 'fortran_order' and 'shape')" },
    { 1, "", MS_ERR_INPUT,
      "malformed header: expected '{' opening the header dict at byte 10, found the end of the "
      "header" },
};

Test(npy_header, dict_cases)
{
    for (size_t i = 0; i < sizeof hdr_cases / sizeof *hdr_cases; i++) {
        const struct hdr_case *c = &hdr_cases[i];
        uint8_t buf[512];
        struct ms_npy_header h;
        struct ms_err err = { 0 };
        char got[300], shape[128];
        const size_t len = make_npy(buf, sizeof buf, c->major, c->dict);
        const int rc = ms_npy_parse_header(buf, len, &h, &err);

        cr_expect(rc == c->status, "case %zu: status %d (%s)", i, rc, err.msg);
        if (rc != MS_OK) {
            cr_expect_str_eq(err.msg, c->want, "case %zu:\n got: %s\nwant: %s", i, err.msg,
                             c->want);
            continue;
        }
        ms_npy_format_shape(&h, shape, sizeof shape);
        snprintf(got, sizeof got, "%s %c %u %d %s", h.descr, h.kind ? h.kind : '0', h.itemsize,
                 h.fortran_order, shape);
        cr_expect_str_eq(got, c->want, "case %zu:\n got: %s\nwant: %s", i, got, c->want);
        cr_expect(h.major == c->major && h.data_offset == len, "case %zu: offsets", i);
    }
}

Test(npy_header, preamble_errors)
{
    struct ms_npy_header h;
    struct ms_err err = { 0 };
    uint8_t buf[64];
    size_t len;

    cr_expect(ms_npy_parse_header((const uint8_t *)"", 0, &h, &err) == MS_ERR_INPUT);
    cr_expect_str_eq(err.msg, "not a .npy file (too short: 0 bytes)");
    cr_expect(ms_npy_parse_header((const uint8_t *)"\x93NUMPX\x01\x00", 8, &h, &err) ==
              MS_ERR_INPUT);
    cr_expect_str_eq(err.msg, "not a .npy file (bad magic bytes)");
    cr_expect(ms_npy_parse_header((const uint8_t *)"PK\x03\x04", 4, &h, &err) == MS_ERR_INPUT);
    cr_expect_str_eq(err.msg, "not a .npy file (bad magic bytes)");
    cr_expect(ms_npy_parse_header((const uint8_t *)"\x93NUMPY\x02\x01\0\0\0\0", 12, &h, &err) ==
              MS_ERR_INPUT);
    cr_expect_str_eq(err.msg, "unsupported .npy format version 2.1 (expected 1.0, 2.0 or 3.0)");
    cr_expect(ms_npy_parse_header((const uint8_t *)"\x93NUMPY\x02\x00\0\0", 10, &h, &err) ==
              MS_ERR_INPUT);
    cr_expect_str_eq(err.msg, "not a .npy file (too short: 10 bytes)");
    /* a 2 MiB header length is refused before anything is allocated */
    cr_expect(ms_npy_parse_header((const uint8_t *)"\x93NUMPY\x02\x00\x00\x00\x20\x00", 12, &h,
                                  &err) == MS_ERR_INPUT);
    cr_expect_str_eq(err.msg, "header length 2097152 is beyond the limit of 1048576 bytes");
    /* a header length past the end of the buffer */
    len = make_npy(buf, sizeof buf, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': ()}");
    cr_expect(ms_npy_parse_header(buf, len - 5, &h, &err) == MS_ERR_INPUT);
    cr_expect_str_eq(err.msg, "header length 53 goes beyond the end of the file (the header ends "
                              "at byte 63, the file has 58 bytes)");
}

/* numpy pads headers with spaces; a long header (many dimensions or much
 * padding) must parse, up to the 1 MiB limit. */
Test(npy_header, long_headers)
{
    const char *head = "{'descr': '<f4', 'fortran_order': False, 'shape': (";
    const size_t cap = (1u << 20) + 64;
    char *dict = malloc(cap);
    uint8_t *buf = malloc(cap + 12);
    struct ms_npy_header h;
    struct ms_err err = { 0 };
    size_t len;

    /* 64 dimensions: the most numpy 2 allows */
    strcpy(dict, head);
    for (int i = 0; i < 64; i++)
        strcat(dict, "1, ");
    strcat(dict, ")}");
    len = make_npy(buf, cap + 12, 2, dict);
    cr_assert(ms_npy_parse_header(buf, len, &h, &err) == MS_OK, "%s", err.msg);
    cr_expect(h.rank == 64);
    /* 65 are too many */
    strcpy(dict, head);
    for (int i = 0; i < 65; i++)
        strcat(dict, "1, ");
    strcat(dict, ")}");
    len = make_npy(buf, cap + 12, 2, dict);
    cr_expect(ms_npy_parse_header(buf, len, &h, &err) == MS_ERR_INPUT);
    cr_expect_str_eq(err.msg, "malformed header: shape has more than 64 dimensions");
    /* padding up to exactly the limit */
    strcpy(dict, "{'descr': '<f2', 'fortran_order': False, 'shape': (2, 2)}");
    len = strlen(dict);
    memset(dict + len, ' ', (1u << 20) - len - 1);
    dict[(1u << 20) - 1] = '\n';
    dict[1u << 20] = '\0';
    len = make_npy(buf, cap + 12, 3, dict);
    cr_assert(ms_npy_parse_header(buf, len, &h, &err) == MS_OK, "%s", err.msg);
    cr_expect(h.data_offset == 12 + (1u << 20));
    free(dict);
    free(buf);
}

Test(npy_header, data_bytes_and_shape_text)
{
    struct ms_npy_header h;
    struct ms_err err = { 0 };
    uint64_t bytes;
    char s[16];

    memset(&h, 0, sizeof h);
    h.kind = 'f';
    h.itemsize = 4;
    h.rank = 3;
    h.shape[0] = 1ull << 40;
    h.shape[1] = 1ull << 20;
    h.shape[2] = 16;
    cr_expect(ms_npy_data_bytes(&h, &bytes, &err) == MS_ERR_INPUT);
    cr_expect_str_eq(err.msg, "shape (1099511627776, 1048576, 16) of float32 is too large "
                              "(over 2^64 bytes)");
    h.shape[1] = 0; /* empty, whatever the other dimensions say */
    cr_expect(ms_npy_data_bytes(&h, &bytes, &err) == MS_OK && bytes == 0);
    h.rank = 0;
    cr_expect(ms_npy_data_bytes(&h, &bytes, &err) == MS_OK && bytes == 4);
    h.rank = 3;
    h.shape[1] = 7;
    ms_npy_format_shape(&h, s, sizeof s);
    cr_expect_str_eq(s, "(...)");
    cr_expect(strlen(s) < sizeof s);
}
