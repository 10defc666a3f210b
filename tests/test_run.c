/*
 * test_run.c - candidate run parsing (table-driven), streamed lines from
 * plain and zstd text with CRLF and long lines, the id map, the radix sort of
 * candidates against the comparisons it replaced, and the threaded writing of
 * ranked candidates against one line at a time.
 */
#include <math.h>
#include <zstd.h>

#include "idmap.h"
#include "out.h"
#include "run.h"
#include "sort.h"
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

/* A small deterministic generator (splitmix64) for the sort and output tests. */
static uint64_t mix_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static int by_key_val(const void *a, const void *b)
{
    const struct ms_kv *x = a, *y = b;
    if (x->key != y->key)
        return x->key < y->key ? -1 : 1;
    return x->val < y->val ? -1 : x->val > y->val;
}

/* The radix sort is a stable sort: equal keys keep their order (vals are the input order). */
Test(sort, kv_sort_is_stable_and_sorted)
{
    const uint64_t masks[] = { 0, 0xf, 0xffff, 0xff00ff0000ull, UINT64_MAX };
    const uint64_t sizes[] = { 0, 1, 2, 255, 10007 };
    uint64_t seed = 7;
    for (size_t m = 0; m < sizeof masks / sizeof masks[0]; m++)
        for (size_t z = 0; z < sizeof sizes / sizeof sizes[0]; z++) {
            const uint64_t n = sizes[z];
            struct ms_kv *a = malloc((2 * n + 1) * sizeof *a), *want = malloc((n + 1) * sizeof *a);
            for (uint64_t i = 0; i < n; i++)
                a[i] = want[i] = (struct ms_kv){ mix_next(&seed) & masks[m], i };
            qsort(want, n, sizeof *want, by_key_val);
            const struct ms_kv *got = ms_kv_sort(a, a + n, n);
            cr_assert(n == 0 || memcmp(got, want, n * sizeof *got) == 0, "mask %zu, n %llu", m,
                      (unsigned long long)n);
            free(a);
            free(want);
        }
}

/* The ranked order of the comparison the sort replaced: query, score highest first (-0 and
 * +0 equal), document. */
static int ranked_ref(const void *a, const void *b)
{
    const struct ms_cand *x = a, *y = b;
    if (x->q != y->q)
        return x->q < y->q ? -1 : 1;
    if (x->u.score != y->u.score)
        return x->u.score > y->u.score ? -1 : 1;
    return x->d < y->d ? -1 : x->d > y->d;
}

static int by_qd(const void *a, const void *b)
{
    const struct ms_cand *x = a, *y = b;
    if (x->q != y->q)
        return x->q < y->q ? -1 : 1;
    return x->d < y->d ? -1 : x->d > y->d;
}

Test(run, sort_ranked_matches_the_comparison)
{
    const float values[] = { 0.0f, -0.0f, 1.5f, -1.5f, 3.25e-8f, -7e20f, 12.0f, 1e-40f };
    const uint64_t n = 50000;
    struct ms_cand *c = malloc(n * sizeof *c), *want = malloc(n * sizeof *c);
    uint64_t seed = 11;
    /* distinct (query, document) pairs, many equal scores */
    for (uint64_t i = 0; i < n; i++) {
        c[i].q = (uint32_t)(i % 37);
        c[i].d = (i / 37) * 3 + (mix_next(&seed) % 3);
        c[i].u.score = mix_next(&seed) % 3 ? values[mix_next(&seed) % 8]
                                           : (float)(mix_next(&seed) % 1000) / 7.0f;
    }
    for (int sorted = 0; sorted < 2; sorted++) {
        /* shuffled, then sorted by (query, document) as rerank hands them over */
        for (uint64_t i = n - 1; i > 0; i--) {
            const uint64_t j = mix_next(&seed) % (i + 1);
            const struct ms_cand t = c[i];
            c[i] = c[j];
            c[j] = t;
        }
        if (sorted)
            qsort(c, n, sizeof *c, by_qd);
        memcpy(want, c, n * sizeof *c);
        qsort(want, n, sizeof *want, ranked_ref);
        ms_cands_sort_ranked(c, n);
        for (uint64_t i = 0; i < n; i++)
            cr_assert(c[i].q == want[i].q && c[i].d == want[i].d &&
                          ranked_ref(&c[i], &want[i]) == 0,
                      "sorted %d, entry %llu", sorted, (unsigned long long)i);
    }
    free(c);
    free(want);
}

/* ms_cands_write formats its lines on several threads in rounds: the bytes are those of one
 * line at a time (ms_run_line), ranks counted per query across parts and rounds, -k too. */
Test(run, cands_write_parallel_same_bytes)
{
    const uint64_t n = 700000; /* more than two rounds; one query of 300,000 lines */
    struct ms_cand *c = malloc(n * sizeof *c);
    struct ms_ids qids, dids;
    uint64_t seed = 3, q = 0, left = 0;
    ms_ids_init(&qids);
    ms_ids_init(&dids);
    for (uint64_t i = 0; i < n; i++) {
        if (left == 0) {
            left = q == 5 ? 300000 : 1 + mix_next(&seed) % 2000;
            q++;
        }
        left--;
        c[i].q = (uint32_t)q;
        c[i].d = mix_next(&seed) % 100000;
        c[i].u.score = (float)(mix_next(&seed) % 100000) / 1024.0f - 40.0f;
    }
    const uint64_t ks[] = { UINT64_MAX, 7 };
    for (size_t ki = 0; ki < 2; ki++)
        for (int fmt = 0; fmt < 2; fmt++) {
            const enum ms_fmt f = fmt ? MS_FMT_TSV : MS_FMT_TREC;
            char pa[64], pb[64];
            struct ms_wfile *w;
            struct ms_err err;
            snprintf(pa, sizeof pa, "/tmp/maxsim-test-cw-%d-a", (int)getpid());
            snprintf(pb, sizeof pb, "/tmp/maxsim-test-cw-%d-b", (int)getpid());
            cr_assert(ms_wfile_open(&w, pa, 0, 0, &err) == MS_OK, "%s", err.msg);
            cr_assert(ms_cands_write(w, f, c, n, ks[ki], &qids, &dids, "tag", &err) == MS_OK);
            cr_assert(ms_wfile_commit(w, &err) == MS_OK);
            cr_assert(ms_wfile_open(&w, pb, 0, 0, &err) == MS_OK);
            uint64_t rank = 0;
            for (uint64_t i = 0; i < n; i++) {
                char qb[24], db[24];
                rank = i > 0 && c[i].q == c[i - 1].q ? rank + 1 : 1;
                if (rank <= ks[ki])
                    cr_assert(ms_run_line(w, f, ms_ids_get(&qids, c[i].q, qb),
                                          ms_ids_get(&dids, c[i].d, db), rank, c[i].u.score, "tag",
                                          &err) == MS_OK);
            }
            cr_assert(ms_wfile_commit(w, &err) == MS_OK);
            size_t la, lb;
            char *a = test_read_file(pa, &la), *b = test_read_file(pb, &lb);
            cr_assert(la == lb && memcmp(a, b, la) == 0, "k %llu, format %d",
                      (unsigned long long)ks[ki], fmt);
            free(a);
            free(b);
            unlink(pa);
            unlink(pb);
        }
    free(c);
}

/* ms_format_g9 writes what snprintf's %.9g writes: specials, the ties between two 9-digit
 * values (1 + n/512 has ten digits ending in 5: glibc rounds them to even), the neighbours of
 * the powers of ten (where the exponent and the form change), and random bit patterns. */
static void same_as_printf(float f)
{
    char a[64], b[64];
    const size_t n = ms_format_g9(a, f);
    const int m = snprintf(b, sizeof b, "%.9g", (double)f);
    cr_assert(n == (size_t)m && strcmp(a, b) == 0, "%a: '%s', printf '%s'", (double)f, a, b);
}

Test(run, format_g9_is_printf)
{
    const float specials[] = { 0.0f,    -0.0f,   1.0f,     -1.0f,        0.1f,
                               1e-4f,   1e-5f,   1e9f,     999999999.0f, 123456789.0f,
                               3.4e38f, -1e-45f, INFINITY, -INFINITY,    NAN };
    for (size_t i = 0; i < sizeof specials / sizeof *specials; i++)
        same_as_printf(specials[i]);
    for (int n = 0; n < 4096; n++) {
        same_as_printf(1.0f + (float)n / 512.0f);
        same_as_printf(-(1024.0f + (float)n / 4096.0f));
    }
    for (int e = -45; e <= 38; e++) {
        const float p = powf(10.0f, (float)e);
        uint32_t u;
        memcpy(&u, &p, sizeof u);
        for (int d = -4; d <= 4; d++) {
            const uint32_t v = u + (uint32_t)d;
            float f;
            memcpy(&f, &v, sizeof f);
            same_as_printf(f);
        }
    }
    uint64_t seed = 5;
    for (int i = 0; i < 1000000; i++) {
        const uint32_t u = (uint32_t)mix_next(&seed);
        float f;
        memcpy(&f, &u, sizeof f);
        same_as_printf(f);
    }
}

/* A run line of 8,191 bytes fits, one of 8,192 is refused, in both formats, as when snprintf
 * counted them. */
Test(run, run_line_length_limit)
{
    char path[64], qid[8200];
    struct ms_wfile *w;
    struct ms_err err;
    snprintf(path, sizeof path, "/tmp/maxsim-test-rl-%d", (int)getpid());
    for (int tsv = 0; tsv < 2; tsv++) {
        /* "QID Q0 d 1 0.5 t\n": 14 bytes besides the query id; "QID\td\t1\t0.5\n": 9 */
        const size_t fits = 8191 - (tsv ? 9 : 14);
        for (size_t len = fits; len <= fits + 1; len++) {
            memset(qid, 'q', len);
            qid[len] = '\0';
            cr_assert(ms_wfile_open(&w, path, 0, 0, &err) == MS_OK);
            const int rc =
                ms_run_line(w, tsv ? MS_FMT_TSV : MS_FMT_TREC, qid, "d", 1, 0.5f, "t", &err);
            cr_assert_eq(rc == MS_OK, len == fits, "tsv %d, query id of %zu bytes", tsv, len);
            if (rc == MS_OK) {
                cr_assert(ms_wfile_commit(w, &err) == MS_OK);
                size_t got;
                free(test_read_file(path, &got));
                cr_assert_eq(got, 8191);
            } else {
                cr_assert(strstr(err.msg, "id too long for a run line") != NULL);
                ms_wfile_abort(w);
            }
        }
    }
    unlink(path);
}
