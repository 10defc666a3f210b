/*
 * test_run.c - candidate run parsing (table-driven), streamed lines from
 * plain and zstd text with CRLF and long lines, and the id map.
 */
#include <zstd.h>

#include "idmap.h"
#include "run.h"
#include "testutil.h"

struct parse_case {
    const char *line;
    int rc;
    const char *qid, *did;
};

static const struct parse_case parse_cases[] = {
    { "q1 Q0 d7 1 12.5 bm25", 0, "q1", "d7" },
    { "q1\tQ0\td7\t1\t12.5\tbm25", 0, "q1", "d7" }, /* TREC written with tabs */
    { "  q1   Q0 d7 1 -3 run  ", 0, "q1", "d7" },   /* extra blanks */
    { "q1\td7", 0, "q1", "d7" },
    { "q1\td7\t0.5", 0, "q1", "d7" },
    { "q1\td7\t\t", 0, "q1", "d7" },
    { "1042\t3", 0, "1042", "3" },
    { "", 1, NULL, NULL },
    { "   \t ", 1, NULL, NULL }, /* blanks only */
    { "  ", 1, NULL, NULL },
    { "q1 d7", -1, NULL, NULL },
    { "q1 Q0 d7 1 12.5", -1, NULL, NULL },
    { "q1 Q0 d7 1 12.5 tag extra", -1, NULL, NULL },
    { "q1\t", -1, NULL, NULL },
    { "\td7", -1, NULL, NULL },
    { "q1", -1, NULL, NULL },
};

Test(run, parse_table)
{
    for (size_t i = 0; i < sizeof parse_cases / sizeof parse_cases[0]; i++) {
        const struct parse_case *c = &parse_cases[i];
        struct ms_run_line rl;
        const char *why = NULL;
        const int rc = ms_run_parse(c->line, strlen(c->line), &rl, &why);
        cr_assert_eq(rc, c->rc, "case %zu '%s': rc %d, expected %d", i, c->line, rc, c->rc);
        if (rc == 0) {
            cr_assert(rl.qlen == strlen(c->qid) && memcmp(rl.qid, c->qid, rl.qlen) == 0,
                      "case %zu: qid", i);
            cr_assert(rl.dlen == strlen(c->did) && memcmp(rl.did, c->did, rl.dlen) == 0,
                      "case %zu: did", i);
        } else if (rc < 0) {
            cr_assert(why && *why, "case %zu: no reason", i);
        }
    }
}

static void read_all(const char *path, char *out, size_t cap, uint64_t *lines)
{
    struct ms_lines *l;
    struct ms_err err;
    const char *line;
    size_t len, used = 0;
    int rc;
    cr_assert(ms_lines_open(&l, path, &err) == 0, "%s", err.msg);
    while ((rc = ms_lines_next(l, &line, &len, &err)) == 1) {
        cr_assert(used + len + 2 < cap);
        memcpy(out + used, line, len);
        used += len;
        out[used++] = '|';
    }
    cr_assert_eq(rc, 0, "%s", err.msg);
    out[used] = '\0';
    *lines = ms_lines_number(l);
    ms_lines_close(l);
}

Test(run, lines_plain_crlf_and_no_final_newline)
{
    const char text[] = "a b\r\nc\n\nlast";
    char got[256];
    uint64_t n;
    read_all(tmpfile_with(text, sizeof text - 1, ".trec"), got, sizeof got, &n);
    cr_assert_str_eq(got, "a b|c||last|");
    cr_assert_eq(n, 4);
}

Test(run, lines_zstd_and_long_input)
{
    /* 200k lines, several MiB: crosses every buffer boundary */
    const size_t n = 200000;
    char *text = malloc(n * 32);
    size_t len = 0;
    for (size_t i = 0; i < n; i++)
        len += (size_t)sprintf(text + len, "q%zu Q0 d%zu %zu 1.0 t\r\n", i % 97, i, i);
    const size_t bound = ZSTD_compressBound(len);
    char *z = malloc(bound);
    const size_t zlen = ZSTD_compress(z, bound, text, len, 1);
    cr_assert(!ZSTD_isError(zlen));
    const char *paths[2] = { tmpfile_with(text, len, ".trec"), tmpfile_with(z, zlen, ".trec.zst") };
    for (int p = 0; p < 2; p++) {
        struct ms_lines *l;
        struct ms_err err;
        const char *line;
        size_t ll, count = 0;
        int rc;
        cr_assert(ms_lines_open(&l, paths[p], &err) == 0);
        while ((rc = ms_lines_next(l, &line, &ll, &err)) == 1) {
            char want[64];
            const int wl = sprintf(want, "q%zu Q0 d%zu %zu 1.0 t", count % 97, count, count);
            cr_assert(ll == (size_t)wl && memcmp(line, want, ll) == 0, "line %zu", count);
            count++;
        }
        cr_assert_eq(rc, 0, "%s", err.msg);
        cr_assert_eq(count, n);
        ms_lines_close(l);
    }
    free(text);
    free(z);
}

Test(run, lines_errors)
{
    struct ms_lines *l;
    struct ms_err err;
    const char *line;
    size_t len;
    cr_assert_eq(ms_lines_open(&l, "/nonexistent/run.trec", &err), MS_ERR_INPUT);
    cr_assert_str_eq(err.msg, "cannot open '/nonexistent/run.trec': No such file or directory");

    /* a zstd frame cut short */
    const char text[] = "q1 Q0 d1 1 1 t\nq1 Q0 d2 2 1 t\n";
    char z[256];
    const size_t zlen = ZSTD_compress(z, sizeof z, text, sizeof text - 1, 1);
    const char *path = tmpfile_with(z, zlen - 3, ".zst");
    cr_assert(ms_lines_open(&l, path, &err) == 0);
    int rc;
    while ((rc = ms_lines_next(l, &line, &len, &err)) == 1)
        ;
    cr_assert_eq(rc, MS_ERR_INPUT);
    cr_assert(strstr(err.msg, "truncated zstd data") || strstr(err.msg, "corrupt zstd data"), "%s",
              err.msg);
    ms_lines_close(l);

    /* garbage after the zstd magic */
    const char bad[] = "\x28\xb5\x2f\xfdgarbage that is not a frame";
    cr_assert(ms_lines_open(&l, tmpfile_with(bad, sizeof bad - 1, ".zst"), &err) == 0);
    while ((rc = ms_lines_next(l, &line, &len, &err)) == 1)
        ;
    cr_assert_eq(rc, MS_ERR_INPUT);
    cr_assert(strstr(err.msg, "corrupt zstd data"), "%s", err.msg);
    ms_lines_close(l);
}

Test(idmap, strings_and_row_numbers)
{
    struct ms_ids ids;
    struct ms_idmap m;
    struct ms_err err;
    char buf[32];
    ms_ids_init(&ids);
    for (int i = 0; i < 1000; i++) {
        const int n = sprintf(buf, "doc-%d", i * 7);
        cr_assert(ms_ids_push(&ids, buf, (size_t)n, &err) == 0);
    }
    cr_assert(ms_idmap_init(&m, &ids, ids.n, "'x'", &err) == 0);
    for (int i = 0; i < 1000; i++) {
        const int n = sprintf(buf, "doc-%d", i * 7);
        cr_assert_eq(ms_idmap_find(&m, buf, (size_t)n), i);
    }
    cr_assert_eq(ms_idmap_find(&m, "doc-1", 5), -1);
    cr_assert_eq(ms_idmap_find(&m, "doc-70", 5), 1); /* a prefix ("doc-7") is its own id */
    ms_idmap_release(&m);

    cr_assert(ms_ids_push(&ids, "doc-14", 6, &err) == 0);
    cr_assert_eq(ms_idmap_init(&m, &ids, ids.n, "'x.txt'", &err), MS_ERR_INPUT);
    cr_assert_str_eq(err.msg, "'x.txt': id 'doc-14' appears twice (rows 2 and 1000)");
    ms_ids_release(&ids);

    struct ms_ids none;
    ms_ids_init(&none);
    cr_assert(ms_idmap_init(&m, &none, 50, "'y'", &err) == 0);
    cr_assert_eq(ms_idmap_find(&m, "0", 1), 0);
    cr_assert_eq(ms_idmap_find(&m, "49", 2), 49);
    cr_assert_eq(ms_idmap_find(&m, "50", 2), -1);
    cr_assert_eq(ms_idmap_find(&m, "07", 2), -1);
    cr_assert_eq(ms_idmap_find(&m, "-1", 2), -1);
    cr_assert_eq(ms_idmap_find(&m, "1a", 2), -1);
    cr_assert_eq(ms_idmap_find(&m, "99999999999999999999999", 23), -1);
    ms_idmap_release(&m);
}
