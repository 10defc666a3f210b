/*
 * cmd_info.c - `maxsim info`: describe embedding files and PLAID index
 * directories (describe_indexes).
 *
 * For each input: its layout (padded 3-D or flat 2-D), element type, dim,
 * rows, valid tokens, row length statistics, empty rows, whether ids are
 * present, and its size. A table by default, JSON with --json. --check also
 * reads every value and fails on NaN or Inf. Lengths and ids side files
 * apply to every input named.
 */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cl_dev.h"
#include "cmd.h"
#include "cmd_common.h"
#include "plaid.h"
#include "src.h"
#include "stream.h"

static const char usage_text[] =
    "usage: maxsim info [--json] [--check] [--lengths <file.npy>] [--ids <file>] <file>...\n"
    "       maxsim info --cache [--json]\n"
    "       maxsim info [--json] <index-dir>...\n"
    "\n"
    "Describe embedding files: FILE.npy, FILE.npy.zst, FILE.h5[:/group], or PLAID\n"
    "index directories (documents, tokens, dim, nbits, centroids, size).\n"
    "\n"
    "  --json             one JSON array, an object per file\n"
    "  --check            read every value and fail on NaN or Inf\n"
    "  --lengths <file>   row lengths for the inputs (1-D integer .npy)\n"
    "  --ids <file>       row ids for the inputs (text, one per line)\n"
    "  --cache            where compiled kernels are cached, entries and bytes\n"
    "  -h, --help         this help\n";

struct info {
    const char *spec;
    const char *format;
    const char *layout;
    const char *dtype;
    uint64_t dim, rows, tokens, padded_len, min_len, max_len, empty;
    double mean_len;
    const char *ids;
    uint64_t file_bytes, data_bytes;
    int checked;
};

static const char *format_name(enum ms_format f)
{
    return f == MS_FORMAT_NPY ? "npy" : f == MS_FORMAT_NPY_ZST ? "npy.zst" : "hdf5";
}

static int describe(const char *spec, const struct ms_src_opts *opts, int check, int threads,
                    struct info *in, struct ms_err *err)
{
    struct ms_src src;
    int rc = ms_src_open(&src, spec, opts, err);

    if (rc != MS_OK)
        return rc;
    src.threads = threads;
    memset(in, 0, sizeof *in);
    in->spec = spec;
    in->format = format_name(src.format);
    in->layout = src.layout == MS_LAYOUT_PADDED ? "padded" : "flat";
    in->dtype = ms_dtype_name(src.dtype);
    in->dim = src.dim;
    in->rows = src.n_rows;
    in->tokens = src.n_tokens;
    in->padded_len = src.padded_len;
    in->min_len = src.n_rows ? UINT64_MAX : 0;
    for (uint64_t r = 0; r < src.n_rows; r++) {
        const uint64_t len = ms_src_row_len(&src, r);
        in->min_len = len < in->min_len ? len : in->min_len;
        in->max_len = len > in->max_len ? len : in->max_len;
        in->empty += len == 0;
    }
    in->mean_len = src.n_rows ? (double)src.n_tokens / (double)src.n_rows : 0.0;
    in->ids = src.ids.n ? (opts->ids_path ? "file" : "yes") : "no";
    in->file_bytes = src.file_bytes;
    in->data_bytes = src.data_bytes;
    if (check) {
        struct ms_stream *st;
        const struct ms_emb *block;
        rc = ms_stream_start(&st, &src, 0, src.n_rows, 65536, 1 << 22, NULL, err);
        while (rc == MS_OK && (rc = ms_stream_next(st, &block, err)) == MS_OK && block)
            ;
        ms_stream_stop(st);
        in->checked = rc == MS_OK;
    }
    ms_src_close(&src);
    return rc;
}

static json_t *to_json(const struct info *in)
{
    json_t *o = json_object();
    json_object_set_new(o, "file", json_string(in->spec));
    json_object_set_new(o, "format", json_string(in->format));
    json_object_set_new(o, "layout", json_string(in->layout));
    json_object_set_new(o, "dtype", json_string(in->dtype));
    json_object_set_new(o, "dim", json_integer((json_int_t)in->dim));
    json_object_set_new(o, "rows", json_integer((json_int_t)in->rows));
    json_object_set_new(o, "tokens", json_integer((json_int_t)in->tokens));
    if (in->padded_len)
        json_object_set_new(o, "padded_length", json_integer((json_int_t)in->padded_len));
    json_object_set_new(o, "min_length", json_integer((json_int_t)in->min_len));
    json_object_set_new(o, "mean_length", json_real(in->mean_len));
    json_object_set_new(o, "max_length", json_integer((json_int_t)in->max_len));
    json_object_set_new(o, "empty_rows", json_integer((json_int_t)in->empty));
    json_object_set_new(o, "ids", json_boolean(strcmp(in->ids, "no") != 0));
    json_object_set_new(o, "file_bytes", json_integer((json_int_t)in->file_bytes));
    json_object_set_new(o, "data_bytes", json_integer((json_int_t)in->data_bytes));
    if (in->checked)
        json_object_set_new(o, "values_finite", json_true());
    return o;
}

static void print_table(const struct info *infos, int n)
{
    static const char *const head[] = { "FILE",  "FORMAT", "LAYOUT", "DTYPE", "DIM",
                                        "ROWS",  "TOKENS", "MIN",    "MEAN",  "MAX",
                                        "EMPTY", "IDS",    "BYTES" };
    enum { NCOL = sizeof head / sizeof head[0] };
    char cell[NCOL][64];
    int width[NCOL];

    for (int c = 0; c < NCOL; c++)
        width[c] = (int)strlen(head[c]);
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) {
            for (int c = 0; c < NCOL; c++)
                printf("%-*s%s", c + 1 < NCOL ? width[c] : 0, head[c], c + 1 < NCOL ? "  " : "\n");
        }
        for (int i = 0; i < n; i++) {
            const struct info *in = &infos[i];
            char layout[64];
            if (in->padded_len)
                snprintf(layout, sizeof layout, "padded(%llu)", (unsigned long long)in->padded_len);
            else
                snprintf(layout, sizeof layout, "flat");
            snprintf(cell[0], 64, "%s", in->spec);
            snprintf(cell[1], 64, "%s", in->format);
            snprintf(cell[2], 64, "%s", layout);
            snprintf(cell[3], 64, "%s", in->dtype);
            snprintf(cell[4], 64, "%llu", (unsigned long long)in->dim);
            snprintf(cell[5], 64, "%llu", (unsigned long long)in->rows);
            snprintf(cell[6], 64, "%llu", (unsigned long long)in->tokens);
            snprintf(cell[7], 64, "%llu", (unsigned long long)in->min_len);
            snprintf(cell[8], 64, "%.2f", in->mean_len);
            snprintf(cell[9], 64, "%llu", (unsigned long long)in->max_len);
            snprintf(cell[10], 64, "%llu", (unsigned long long)in->empty);
            snprintf(cell[11], 64, "%s", in->ids);
            snprintf(cell[12], 64, "%llu", (unsigned long long)in->file_bytes);
            for (int c = 0; c < NCOL; c++) {
                const int w = (int)strlen(cell[c]);
                if (pass == 0)
                    width[c] = w > width[c] ? w : width[c];
                else
                    printf("%-*s%s", c + 1 < NCOL ? width[c] : 0, cell[c],
                           c + 1 < NCOL ? "  " : "\n");
            }
        }
    }
}

/* `info --cache`: the program cache's directory, entries and size. */
static int print_cache(int json)
{
    char dir[4096] = "";
    uint64_t entries, bytes;
    const int on = ms_cl_cache_info(dir, sizeof dir, &entries, &bytes);

    if (json) {
        json_t *o = json_object();
        json_object_set_new(o, "cache_dir", on ? json_string(dir) : json_null());
        json_object_set_new(o, "entries", json_integer((json_int_t)entries));
        json_object_set_new(o, "bytes", json_integer((json_int_t)bytes));
        char *js = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (js)
            puts(js);
        free(js);
        json_decref(o);
    } else if (on) {
        printf("cache    %s\nentries  %llu\nbytes    %llu\n", dir, (unsigned long long)entries,
               (unsigned long long)bytes);
    } else {
        printf("cache    off\n");
    }
    return MS_OK;
}

/* `maxsim info DIR...`: describe index directories (table or JSON). */
static int describe_indexes(char **dirs, int n, int json)
{
    struct ms_plaid *p = calloc((size_t)(n ? n : 1), sizeof *p);
    struct ms_err err;
    int rc = MS_OK, opened = 0;

    if (!p)
        return ms_fail(MS_ERR_RUNTIME, "out of memory");
    for (; opened < n; opened++)
        if ((rc = ms_plaid_open(&p[opened], dirs[opened], &err)) != MS_OK) {
            ms_report(&err);
            break;
        }
    if (rc == MS_OK && json) {
        json_t *arr = json_array();
        for (int i = 0; i < n; i++) {
            json_t *o = json_object();
            json_object_set_new(o, "index", json_string(dirs[i]));
            json_object_set_new(o, "layout", json_string(p[i].layout));
            json_object_set_new(o, "documents", json_integer((json_int_t)p[i].n_docs));
            json_object_set_new(o, "tokens", json_integer((json_int_t)p[i].n_tokens));
            json_object_set_new(o, "dim", json_integer(p[i].dim));
            json_object_set_new(o, "nbits", json_integer(p[i].nbits));
            json_object_set_new(o, "centroids", json_integer(p[i].n_centroids));
            json_object_set_new(o, "centroid_dtype",
                                json_string(ms_dtype_name(p[i].centroid_dtype)));
            json_object_set_new(o, "code_bytes", json_integer(p[i].code_bytes));
            json_object_set_new(o, "bytes_per_token", json_integer(p[i].code_bytes + p[i].packed));
            json_object_set_new(o, "merged", json_boolean(p[i].merged));
            json_object_set_new(o, "max_doclen", json_integer(p[i].max_doclen));
            json_object_set_new(o, "disk_bytes", json_integer((json_int_t)p[i].disk_bytes));
            json_array_append_new(arr, o);
        }
        char *s = json_dumps(arr, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (s)
            puts(s);
        free(s);
        json_decref(arr);
    } else if (rc == MS_OK) {
        int wi = 5;
        for (int i = 0; i < n; i++)
            wi = (int)strlen(dirs[i]) > wi ? (int)strlen(dirs[i]) : wi;
        printf("%-*s  %-10s  %9s  %10s  %4s  %5s  %9s  %11s  %s\n", wi, "INDEX", "LAYOUT", "DOCS",
               "TOKENS", "DIM", "NBITS", "CENTROIDS", "BYTES/TOKEN", "DISK");
        for (int i = 0; i < n; i++)
            printf("%-*s  %-10s  %9llu  %10llu  %4u  %5u  %9u  %11u  %llu\n", wi, dirs[i],
                   p[i].layout, (unsigned long long)p[i].n_docs, (unsigned long long)p[i].n_tokens,
                   p[i].dim, p[i].nbits, p[i].n_centroids, p[i].code_bytes + p[i].packed,
                   (unsigned long long)p[i].disk_bytes);
    }
    for (int i = 0; i < opened; i++)
        ms_plaid_close(&p[i]);
    free(p);
    return rc;
}

int cmd_info(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "json", no_argument, NULL, 'j' },
        { "check", no_argument, NULL, 'c' },
        { "lengths", required_argument, NULL, 'l' },
        { "ids", required_argument, NULL, 'i' },
        { "cache", no_argument, NULL, 'C' },
        MS_GLOBAL_LONGOPTS,
        { NULL, 0, NULL, 0 },
    };
    static const struct ms_optspec spec = { "info", ":hv", longopts, usage_text, 1 };
    struct ms_src_opts opts = { NULL, NULL, "input" };
    int json = 0, check = 0, cache = 0, c, status, rc = MS_OK;
    struct ms_err err;
    struct info *infos;

    while ((c = ms_getopt(&spec, argc, argv, &status)) != 0) {
        switch (c) {
        case 'j': json = 1; break;
        case 'c': check = 1; break;
        case 'l': opts.lengths_path = optarg; break;
        case 'i': opts.ids_path = optarg; break;
        case 'C': cache = 1; break;
        default: break;
        }
    }
    if (status >= 0)
        return status;
    int threads;
    if ((status = ms_read_threads_env("info", &threads)) != 0)
        return status;
    if (cache) {
        if (optind < argc)
            return ms_usage_error("info", "--cache takes no files, got '%s'", argv[optind]);
        return print_cache(json);
    }
    if (optind >= argc)
        return ms_usage_error("info", "no input file (e.g. maxsim info docs.npy)");
    /* Index directories are described by cmd_plaid.c, embedding files here;
     * every input is checked before anything is printed. */
    char **files = calloc((size_t)(argc - optind), sizeof *files);
    char **dirs = calloc((size_t)(argc - optind), sizeof *dirs);
    int n_files = 0, n_dirs = 0;
    infos = calloc((size_t)(argc - optind), sizeof *infos);
    if (!files || !dirs || !infos) {
        free(files);
        free(dirs);
        free(infos);
        return ms_fail(MS_ERR_RUNTIME, "out of memory");
    }
    for (int i = optind; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) == 0 && S_ISDIR(st.st_mode))
            dirs[n_dirs++] = argv[i];
        else
            files[n_files++] = argv[i];
    }
    if (json && n_dirs && n_files)
        rc = ms_usage_error("info", "--json describes either embedding files or index "
                                    "directories; name them in two calls");
    for (int i = 0; i < n_files && rc == MS_OK; i++)
        if ((rc = describe(files[i], &opts, check, threads, &infos[i], &err)) != MS_OK)
            ms_report(&err);
    if (rc == MS_OK && n_dirs) /* prints its own table, or an error and nothing */
        rc = describe_indexes(dirs, n_dirs, json);
    if (rc == MS_OK && n_files) {
        if (n_dirs)
            putchar('\n');
        if (json) {
            json_t *arr = json_array();
            for (int i = 0; i < n_files; i++)
                json_array_append_new(arr, to_json(&infos[i]));
            char *js = json_dumps(arr, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
            if (js)
                puts(js);
            free(js);
            json_decref(arr);
        } else {
            print_table(infos, n_files);
        }
    }
    free(files);
    free(dirs);
    free(infos);
    return rc;
}
