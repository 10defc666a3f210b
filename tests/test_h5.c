/*
 * test_h5.c - the HDF5 backend: ms_h5_open() on files h5py wrote
 * (tests/fixtures_h5.py), token spans read back exactly, every refusal with
 * its exact message, and the output writer round-tripped through the HDF5 API.
 *
 * Tests go through ms_h5_open() and raw.ops directly, not ms_src_open(), so
 * that they link with h5.o, emb.o and err.o alone.
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>
#include <criterion/redirect.h>
#include <hdf5.h>
#include <math.h>
#include <sys/stat.h>

#include "h5.h"
#include "src.h"
#include "testutil.h"

/* The formula fixtures_h5.py writes; flat datasets use r = 0. */
static float value(uint64_t r, uint64_t t, uint64_t k)
{
    return (float)((double)((r * 31 + t * 7 + k) % 17) / 8.0 - 1.0);
}

/* `tmpl` with each '@' replaced by `file`: messages name the fixture path. */
static const char *expand(const char *tmpl, const char *file)
{
    static char buf[1024];
    size_t o = 0;
    for (const char *p = tmpl; *p && o < sizeof buf - 1; p++) {
        if (*p == '@') {
            o += (size_t)snprintf(buf + o, sizeof buf - o, "%s", file);
            o = o < sizeof buf ? o : sizeof buf - 1;
        } else
            buf[o++] = *p;
    }
    buf[o] = '\0';
    return buf;
}

static void open_ok(const char *name, const char *group, struct ms_raw *raw)
{
    struct ms_err err = { 0 };
    const int rc = ms_h5_open(fixture(name), group, raw, &err);
    cr_assert_eq(rc, MS_OK, "%s:%s: %s", name, group, err.msg);
    cr_assert_not_null(raw->ops);
}

static void close_raw(struct ms_raw *raw)
{
    raw->ops->close(raw->impl);
    free(raw->lengths);
    ms_ids_release(&raw->ids);
}

/* Read storage tokens [first, first + n) and compare with the formula. */
static void check_span(struct ms_raw *raw, uint64_t first, uint64_t n)
{
    struct ms_err err = { 0 };
    const uint64_t dim = raw->shape[raw->rank - 1];
    const uint64_t L = raw->rank == 3 ? raw->shape[1] : 0;
    const size_t esize = ms_dtype_size(raw->dtype);
    void *buf = malloc((n ? n : 1) * dim * esize);

    cr_assert_eq(raw->ops->read_span(raw->impl, first, n, buf, &err), MS_OK, "span %llu+%llu: %s",
                 (unsigned long long)first, (unsigned long long)n, err.msg);
    for (uint64_t i = 0; i < n; i++) {
        const uint64_t s = first + i, r = L ? s / L : 0, t = L ? s % L : s;
        for (uint64_t k = 0; k < dim; k++) {
            const uint64_t j = i * dim + k;
            const float got = raw->dtype == MS_DTYPE_F16 ? ms_half_to_float(((uint16_t *)buf)[j])
                                                         : ((float *)buf)[j];
            cr_assert_eq(got, value(r, t, k), "span %llu+%llu: token %llu [%llu] = %g, not %g",
                         (unsigned long long)first, (unsigned long long)n, (unsigned long long)s,
                         (unsigned long long)k, got, value(r, t, k));
        }
    }
    free(buf);
}

/* Every span of the dataset: within a row, whole rows, and across rows. */
static void check_all_spans(struct ms_raw *raw)
{
    const uint64_t total = raw->rank == 3 ? raw->shape[0] * raw->shape[1] : raw->shape[0];
    for (uint64_t first = 0; first <= total; first++)
        for (uint64_t n = 0; first + n <= total; n++)
            check_span(raw, first, n);
}

struct good_case {
    const char *file, *group;
    enum ms_dtype dtype;
    int rank;
    uint64_t shape[3];
    const char *where; /* '@' = the fixture path */
    int n_lengths;
    int64_t lengths[8];
    int n_ids;
    const char *ids[8];
};

static struct good_case good_cases[] = {
    { "h5_f16_3d.h5",
      "/",
      MS_DTYPE_F16,
      3,
      { 5, 6, 8 },
      "'@' dataset '/embeddings'",
      5,
      { 6, 3, 0, 6, 2 },
      5,
      { "q0", "q1", "q2", "d\xc3\xa9j\xc3\xa0", "q4" } },
    { "h5_f32_2d.h5",
      NULL,
      MS_DTYPE_F32,
      2,
      { 10, 4 },
      "'@' dataset '/embeddings'",
      3,
      { 3, 0, 7 },
      3,
      { "100", "-5", "7" } },
    { "h5_group.h5",
      "/colbert",
      MS_DTYPE_F32,
      3,
      { 4, 5, 8 },
      "'@' dataset '/colbert/embeddings'",
      0,
      { 0 },
      0,
      { NULL } },
    { "h5_group.h5",
      "colbert/",
      MS_DTYPE_F32,
      3,
      { 4, 5, 8 },
      "'@' dataset '/colbert/embeddings'",
      0,
      { 0 },
      0,
      { NULL } },
    { "h5_group.h5",
      "//colbert",
      MS_DTYPE_F32,
      3,
      { 4, 5, 8 },
      "'@' dataset '/colbert/embeddings'",
      0,
      { 0 },
      0,
      { NULL } },
    { "h5_chunked.h5",
      "",
      MS_DTYPE_F16,
      3,
      { 6, 10, 16 },
      "'@' dataset '/embeddings'",
      0,
      { 0 },
      0,
      { NULL } },
    { "h5_chunked.h5",
      "/flat",
      MS_DTYPE_F32,
      2,
      { 40, 12 },
      "'@' dataset '/flat/embeddings'",
      0,
      { 0 },
      0,
      { NULL } },
    { "h5_be.h5",
      "/",
      MS_DTYPE_F32,
      2,
      { 6, 5 },
      "'@' dataset '/embeddings'",
      0,
      { 0 },
      0,
      { NULL } },
    { "h5_be.h5",
      "/f2",
      MS_DTYPE_F16,
      3,
      { 3, 4, 8 },
      "'@' dataset '/f2/embeddings'",
      0,
      { 0 },
      0,
      { NULL } },
    { "h5_ids.h5",
      "/bytes",
      MS_DTYPE_F32,
      3,
      { 3, 2, 4 },
      "'@' dataset '/bytes/embeddings'",
      0,
      { 0 },
      3,
      { "doc-1", "d2", "abcdefgh" } },
    { "h5_ids.h5",
      "/fixutf8",
      MS_DTYPE_F32,
      3,
      { 2, 2, 4 },
      "'@' dataset '/fixutf8/embeddings'",
      0,
      { 0 },
      2,
      { "\xc3\xa9t\xc3\xa9", "x" } },
    { "h5_ids.h5",
      "/vascii",
      MS_DTYPE_F32,
      3,
      { 2, 2, 4 },
      "'@' dataset '/vascii/embeddings'",
      0,
      { 0 },
      2,
      { "a1", "b22" } },
    { "h5_ids.h5",
      "/u16",
      MS_DTYPE_F32,
      3,
      { 2, 2, 4 },
      "'@' dataset '/u16/embeddings'",
      0,
      { 0 },
      2,
      { "0", "65535" } },
    { "h5_ids.h5",
      "/u64",
      MS_DTYPE_F32,
      3,
      { 2, 2, 4 },
      "'@' dataset '/u64/embeddings'",
      0,
      { 0 },
      2,
      { "9223372036854775813", "1" } },
    { "h5_ids.h5",
      "/i8",
      MS_DTYPE_F32,
      3,
      { 2, 2, 4 },
      "'@' dataset '/i8/embeddings'",
      0,
      { 0 },
      2,
      { "-128", "127" } },
};

/* Criterion re-executes the binary for each test, so parameters carrying
 * pointers into this image would dangle under ASLR: pass indices instead. */
static int case_index[64];

static int *case_indices(size_t n)
{
    cr_assert_leq(n, sizeof case_index / sizeof case_index[0]);
    for (size_t i = 0; i < n; i++)
        case_index[i] = (int)i;
    return case_index;
}

ParameterizedTestParameters(h5, good)
{
    const size_t n = sizeof good_cases / sizeof good_cases[0];
    return cr_make_param_array(int, case_indices(n), n);
}

ParameterizedTest(int *ci, h5, good)
{
    const struct good_case *c = &good_cases[*ci];
    struct ms_raw raw;
    char buf[24];

    open_ok(c->file, c->group, &raw);
    cr_assert_eq(raw.dtype, c->dtype);
    cr_assert_eq(raw.rank, c->rank);
    for (int i = 0; i < c->rank; i++)
        cr_assert_eq(raw.shape[i], c->shape[i], "shape[%d]", i);
    cr_assert_str_eq(raw.where, expand(c->where, fixture(c->file)));
    cr_assert_eq(raw.sequential_only, 0);
    cr_assert_gt(raw.data_bytes, 0);
    cr_assert_eq(raw.n_lengths, (uint64_t)c->n_lengths);
    cr_assert_eq(raw.lengths == NULL, c->n_lengths == 0);
    for (int i = 0; i < c->n_lengths; i++)
        cr_assert_eq(raw.lengths[i], c->lengths[i], "lengths[%d]", i);
    cr_assert_eq(raw.ids.n, (uint64_t)c->n_ids);
    for (int i = 0; i < c->n_ids; i++)
        cr_assert_str_eq(ms_ids_get(&raw.ids, (uint64_t)i, buf), c->ids[i], "ids[%d]", i);
    check_all_spans(&raw);
    close_raw(&raw);
}

Test(h5, details)
{
    struct ms_raw raw;

    /* Contiguous storage: exactly the array's bytes. */
    open_ok("h5_f16_3d.h5", "/", &raw);
    cr_assert_eq(raw.data_bytes, 5 * 6 * 8 * 2);
    cr_assert_str_eq(raw.lengths_where, expand("'@' dataset '/lengths'", fixture("h5_f16_3d.h5")));
    close_raw(&raw);
    /* Compressed: the stored size (tiny chunks do not shrink), not the array's. */
    open_ok("h5_chunked.h5", "/", &raw);
    cr_assert_neq(raw.data_bytes, 6 * 10 * 16 * 2);
    close_raw(&raw);
    open_ok("h5_group.h5", "/colbert", &raw);
    cr_assert_str_eq(raw.lengths_where, "");
    close_raw(&raw);
}

/* The backend delivers what is stored; refusing NaN is src.c's job. */
Test(h5, nan_is_delivered)
{
    struct ms_raw raw;
    struct ms_err err = { 0 };
    float buf[4 * 4];

    open_ok("h5_nan.h5", "/", &raw);
    cr_assert_eq(raw.ops->read_span(raw.impl, 4, 4, buf, &err), MS_OK, "%s", err.msg);
    cr_assert(isnan(buf[2 * 4 + 3]));
    cr_assert_eq(buf[2 * 4 + 2], value(1, 2, 2));
    close_raw(&raw);
}

Test(h5, span_out_of_range)
{
    struct ms_raw raw;
    struct ms_err err = { 0 };
    float buf[64];

    open_ok("h5_f32_2d.h5", "/", &raw);
    cr_assert_eq(raw.ops->read_span(raw.impl, 8, 3, buf, &err), MS_ERR_RUNTIME);
    cr_assert_str_eq(err.msg, expand("'@' dataset '/embeddings': tokens 8..11 requested of 10",
                                     fixture("h5_f32_2d.h5")));
    close_raw(&raw);
}

struct bad_case {
    const char *file, *group;
    int status;
    const char *msg; /* exact, '@' = the fixture path; a final '*' matches any rest */
};

static struct bad_case bad_cases[] = {
    { "h5_missing.h5", "/", MS_ERR_INPUT, "cannot open '@': No such file or directory" },
    { "", "/", MS_ERR_INPUT, "cannot open '@': Is a directory" },
    { "h5_not.h5", "/", MS_ERR_INPUT, "'@': not an HDF5 file" },
    { "h5_trunc.h5", "/", MS_ERR_INPUT, "'@': truncated HDF5 file (1000 bytes; its header says *" },
    { "h5_bad.h5", "/nope", MS_ERR_INPUT,
      "'@': no group '/nope' (groups at the root: /embgroup, /empty, /emptyid, /f64, /i32, "
      "/ids2d, /idsfloat, /len2d, ...)" },
    { "h5_group.h5", "/nope/deeper", MS_ERR_INPUT,
      "'@': no group '/nope/deeper' (groups at the root: /colbert, /other)" },
    { "h5_group.h5", "/colbert/nope", MS_ERR_INPUT,
      "'@': no group '/colbert/nope' (groups at the root: /colbert, /other)" },
    { "h5_f32_2d.h5", "/x", MS_ERR_INPUT, "'@': no group '/x' (the root holds no groups)" },
    { "h5_f32_2d.h5", "/embeddings", MS_ERR_INPUT, "'@': '/embeddings' is not a group" },
    { "h5_bad.h5", "/f64", MS_ERR_INPUT,
      "'@' dataset '/f64/embeddings': unsupported element type float64; expected float32 or "
      "float16" },
    { "h5_bad.h5", "/i32", MS_ERR_INPUT,
      "'@' dataset '/i32/embeddings': unsupported element type int32; expected float32 or "
      "float16" },
    { "h5_bad.h5", "/noemb", MS_ERR_INPUT,
      "'@': no dataset 'embeddings' in group '/noemb' (it holds: ids, lengths)" },
    { "h5_bad.h5", "/empty", MS_ERR_INPUT,
      "'@': no dataset 'embeddings' in group '/empty' (the group is empty)" },
    { "h5_bad.h5", "/embgroup", MS_ERR_INPUT, "'@': '/embgroup/embeddings' is not a dataset" },
    { "h5_bad.h5", "/rank1", MS_ERR_INPUT,
      "'@' dataset '/rank1/embeddings': expected a 2-D [tokens, dim] or 3-D [rows, tokens, dim] "
      "dataset, got 1-D [5]" },
    { "h5_bad.h5", "/rank4", MS_ERR_INPUT,
      "'@' dataset '/rank4/embeddings': expected a 2-D [tokens, dim] or 3-D [rows, tokens, dim] "
      "dataset, got 4-D [2, 3, 4, 5]" },
    { "h5_bad.h5", "/scalar", MS_ERR_INPUT,
      "'@' dataset '/scalar/embeddings': expected a 2-D [tokens, dim] or 3-D [rows, tokens, dim] "
      "dataset, got a scalar" },
    { "h5_bad.h5", "/len2d", MS_ERR_INPUT,
      "'@' dataset '/len2d/lengths': expected a 1-D integer dataset, got int64 2-D [2, 1]" },
    { "h5_bad.h5", "/lenfloat", MS_ERR_INPUT,
      "'@' dataset '/lenfloat/lengths': expected a 1-D integer dataset, got float32" },
    { "h5_bad.h5", "/idsfloat", MS_ERR_INPUT,
      "'@' dataset '/idsfloat/ids': expected 1-D integer or string ids, got float64" },
    { "h5_bad.h5", "/ids2d", MS_ERR_INPUT,
      "'@' dataset '/ids2d/ids': expected 1-D integer or string ids, got int64 2-D [2, 2]" },
    { "h5_bad.h5", "/emptyid", MS_ERR_INPUT, "'@' dataset '/emptyid/ids': empty id at row 1" },
    { "h5_bad.h5", "/lzf", MS_ERR_INPUT,
      "'@' dataset '/lzf/embeddings': compressed with HDF5 filter 'lzf' (id 32000), which this "
      "HDF5 library cannot decode*" },
};

ParameterizedTestParameters(h5, bad)
{
    const size_t n = sizeof bad_cases / sizeof bad_cases[0];
    return cr_make_param_array(int, case_indices(n), n);
}

ParameterizedTest(int *ci, h5, bad, .init = cr_redirect_stderr)
{
    const struct bad_case *c = &bad_cases[*ci];
    struct ms_raw raw;
    struct ms_err err = { 0 };
    char file[1024];

    /* "" names the fixture directory itself */
    snprintf(file, sizeof file, "%s", c->file[0] ? fixture(c->file) : fixture(""));
    if (!c->file[0])
        file[strlen(file) - 1] = '\0';
    cr_assert_eq(ms_h5_open(file, c->group, &raw, &err), c->status, "%s:%s: %s", c->file, c->group,
                 err.msg);
    cr_assert_eq(err.status, c->status);
    const char *want = expand(c->msg, file);
    const size_t wlen = strlen(want);
    if (wlen && want[wlen - 1] == '*')
        cr_assert(strncmp(err.msg, want, wlen - 1) == 0, "got: %s\nwant: %s", err.msg, want);
    else
        cr_assert_str_eq(err.msg, want);
    cr_assert_null(raw.lengths);
    cr_assert_eq(raw.ids.n, 0);
    /* HDF5 printed none of its error stack. */
    fflush(stderr);
    cr_assert_stderr_eq_str("");
}

/* With -v, HDF5's own stack goes to stderr (here: a dataset created twice). */
Test(h5, verbose_prints_the_stack, .init = cr_redirect_stderr)
{
    const char *path = tmpfile_with("", 0, ".h5");
    struct ms_h5_out *o;
    struct ms_err err = { 0 };

    ms_h5_set_verbose(1);
    cr_assert_eq(ms_h5_out_create(&o, path, &err), MS_OK, "%s", err.msg);
    cr_assert_geq(ms_h5_out_dataset(o, "x", 0, 1, 1, &err), 0);
    cr_assert_eq(ms_h5_out_dataset(o, "x", 0, 1, 1, &err), -1);
    ms_h5_set_verbose(0);
    ms_h5_out_abort(o);
    unlink(path);
    fflush(stderr);
    cr_assert_stderr_neq_str("");
}

/* ---- writer ------------------------------------------------------------------------------ */

static const char *tmp_h5(void)
{
    return tmpfile_with("", 0, ".h5");
}

static void read_back(hid_t f, const char *name, hid_t mtype, void *buf, hsize_t rows, hsize_t cols)
{
    hsize_t dims[2];
    const hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
    cr_assert_geq(d, 0, "dataset %s", name);
    const hid_t s = H5Dget_space(d);
    cr_assert_eq(H5Sget_simple_extent_ndims(s), 2);
    H5Sget_simple_extent_dims(s, dims, NULL);
    cr_assert_eq(dims[0], rows);
    cr_assert_eq(dims[1], cols);
    cr_assert_geq(H5Dread(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf), 0);
    H5Sclose(s);
    H5Dclose(d);
}

Test(h5_out, round_trip)
{
    const char *path = tmp_h5();
    struct ms_h5_out *o;
    struct ms_err err = { 0 };
    enum { NQ = 5, ND = 7, K = 3, LD = 10 };
    float src[NQ * LD], scores[NQ * ND];
    int64_t idx[NQ * K], got_idx[NQ * K];
    const char *ids[] = { "q0", "d\xc3\xa9j\xc3\xa0", "q2" };

    for (int r = 0; r < NQ; r++)
        for (int c = 0; c < LD; c++)
            src[r * LD + c] = (float)(r * 100 + c) + 0.25f;
    for (int i = 0; i < NQ * K; i++)
        idx[i] = (int64_t)i * 1000000007LL - 3;

    cr_assert_eq(ms_h5_out_create(&o, path, &err), MS_OK, "%s", err.msg);
    const int ds = ms_h5_out_dataset(o, "scores", 0, NQ, ND, &err);
    cr_assert_eq(ds, 0, "%s", err.msg);
    const int di = ms_h5_out_dataset(o, "indices", 1, NQ, K, &err);
    cr_assert_eq(di, 1, "%s", err.msg);
    /* Column blocks of 3, each from the same column of src (ld = 10). */
    for (uint64_t c0 = 0; c0 < ND; c0 += 3) {
        const uint64_t nc = ND - c0 < 3 ? ND - c0 : 3;
        cr_assert_eq(ms_h5_out_write(o, ds, 0, c0, NQ, nc, src + c0, LD, &err), MS_OK, "%s",
                     err.msg);
    }
    /* Row blocks of 2 for the indices. */
    for (uint64_t r0 = 0; r0 < NQ; r0 += 2) {
        const uint64_t nr = NQ - r0 < 2 ? NQ - r0 : 2;
        cr_assert_eq(ms_h5_out_write(o, di, r0, 0, nr, K, idx + r0 * K, K, &err), MS_OK, "%s",
                     err.msg);
    }
    cr_assert_eq(ms_h5_out_write(o, di, 0, 0, 0, 0, idx, K, &err), MS_OK);
    cr_assert_eq(ms_h5_out_string_dataset(o, "query_ids", ids, 3, &err), MS_OK, "%s", err.msg);
    cr_assert_eq(ms_h5_out_string_dataset(o, "doc_ids", NULL, 0, &err), MS_OK, "%s", err.msg);
    cr_assert_eq(ms_h5_out_close(o, &err), MS_OK, "%s", err.msg);

    const hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    cr_assert_geq(f, 0);
    read_back(f, "scores", H5T_NATIVE_FLOAT, scores, NQ, ND);
    for (int r = 0; r < NQ; r++)
        for (int c = 0; c < ND; c++)
            cr_assert_eq(scores[r * ND + c], src[r * LD + c], "scores[%d][%d]", r, c);
    read_back(f, "indices", H5T_NATIVE_INT64, got_idx, NQ, K);
    cr_assert_arr_eq(got_idx, idx, sizeof idx);

    /* The on-disk types are what numpy users expect: <f4, <i8, vlen utf-8. */
    hid_t d = H5Dopen2(f, "scores", H5P_DEFAULT);
    hid_t t = H5Dget_type(d);
    cr_assert_gt(H5Tequal(t, H5T_IEEE_F32LE), 0);
    H5Tclose(t);
    H5Dclose(d);
    d = H5Dopen2(f, "indices", H5P_DEFAULT);
    t = H5Dget_type(d);
    cr_assert_gt(H5Tequal(t, H5T_STD_I64LE), 0);
    H5Tclose(t);
    H5Dclose(d);
    d = H5Dopen2(f, "query_ids", H5P_DEFAULT);
    t = H5Dget_type(d);
    cr_assert_gt(H5Tis_variable_str(t), 0);
    cr_assert_eq(H5Tget_cset(t), H5T_CSET_UTF8);
    char *back[3];
    cr_assert_geq(H5Dread(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, back), 0);
    for (int i = 0; i < 3; i++)
        cr_assert_str_eq(back[i], ids[i]);
    const hid_t s = H5Dget_space(d);
    H5Dvlen_reclaim(t, s, H5P_DEFAULT, back);
    H5Sclose(s);
    H5Tclose(t);
    H5Dclose(d);
    H5Fclose(f);
    unlink(path);
}

Test(h5_out, bad_blocks)
{
    const char *path = tmp_h5();
    struct ms_h5_out *o;
    struct ms_err err = { 0 };
    float x[16] = { 0 };

    cr_assert_eq(ms_h5_out_create(&o, path, &err), MS_OK, "%s", err.msg);
    const int ds = ms_h5_out_dataset(o, "scores", 0, 2, 3, &err);
    cr_assert_geq(ds, 0);
    cr_assert_eq(ms_h5_out_write(o, ds, 1, 0, 2, 3, x, 3, &err), MS_ERR_RUNTIME);
    cr_assert_str_eq(err.msg, expand("'@' dataset '/scores': block [1+2, 0+3] (ld 3) does not "
                                     "fit [2, 3]",
                                     path));
    cr_assert_eq(ms_h5_out_write(o, ds, 0, 0, 1, 3, x, 2, &err), MS_ERR_RUNTIME);
    cr_assert_eq(ms_h5_out_write(o, 5, 0, 0, 1, 3, x, 3, &err), MS_ERR_RUNTIME);
    cr_assert_str_eq(err.msg, expand("'@': no output dataset 5", path));
    /* A second dataset of the same name: HDF5 refuses, we report it. */
    cr_assert_eq(ms_h5_out_dataset(o, "scores", 0, 2, 3, &err), -1);
    cr_assert_eq(err.status, MS_ERR_RUNTIME);
    cr_assert(strncmp(err.msg, expand("cannot create dataset 'scores' in '@': ", path),
                      strlen(expand("cannot create dataset 'scores' in '@': ", path))) == 0,
              "%s", err.msg);
    /* ...and the file is then reported incomplete. */
    cr_assert_eq(ms_h5_out_close(o, &err), MS_ERR_RUNTIME);
    cr_assert_str_eq(err.msg, expand("cannot write '@': an earlier write failed", path));
    unlink(path);
}

Test(h5_out, unwritable, .init = cr_redirect_stderr)
{
    struct ms_h5_out *o = (struct ms_h5_out *)1;
    struct ms_err err = { 0 };

    cr_assert_eq(ms_h5_out_create(&o, "/nonexistent-dir/x.h5", &err), MS_ERR_RUNTIME);
    cr_assert_null(o);
    cr_assert_str_eq(err.msg, "cannot create '/nonexistent-dir/x.h5': No such file or directory");
    cr_assert_eq(ms_h5_out_create(&o, "/tmp", &err), MS_ERR_RUNTIME);
    cr_assert_str_eq(err.msg, "cannot write '/tmp': not a regular file");
    cr_assert_eq(ms_h5_out_create(&o, "/dev/full", &err), MS_ERR_RUNTIME);
    cr_assert_str_eq(err.msg, "cannot write '/dev/full': not a regular file");
    fflush(stderr);
    cr_assert_stderr_eq_str("");
}

Test(h5_out, abort)
{
    const char *path = tmp_h5();
    struct ms_h5_out *o;
    struct ms_err err = { 0 };
    float x[6] = { 1, 2, 3, 4, 5, 6 };

    cr_assert_eq(ms_h5_out_create(&o, path, &err), MS_OK, "%s", err.msg);
    const int ds = ms_h5_out_dataset(o, "scores", 0, 2, 3, &err);
    cr_assert_eq(ms_h5_out_write(o, ds, 0, 0, 1, 3, x, 3, &err), MS_OK, "%s", err.msg);
    ms_h5_out_abort(o);
    ms_h5_out_abort(NULL);
    unlink(path);
}
