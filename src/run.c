/*
 * run.c - streamed text lines (plain or zstd) and run line parsing (run.h).
 *
 * Runs can be gigabytes: the text is read in 1 MiB pieces and never held
 * whole. A line longer than 1 MiB is refused rather than grown without
 * bound.
 */
#include "run.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "emb.h"
#include "sort.h"
#include "zin.h"

enum { LINE_MAX_BYTES = 1 << 20, PIECE = 1 << 20 };

struct ms_lines {
    struct ms_zin *in; /* plain or zstd, told by the first bytes (zin.h) */
    char *name;
    char *buf; /* text: [start, end) not yet returned */
    size_t start, end, cap;
    int eof;
    uint64_t lineno;
};

int ms_lines_open(struct ms_lines **out, const char *path, struct ms_err *err)
{
    struct ms_lines *l = ms_calloc(1, sizeof *l, err);
    int rc;

    *out = NULL;
    if (!l)
        return err->status;
    l->name = strdup(strcmp(path, "-") == 0 ? "standard input" : path);
    l->cap = 2 * PIECE + LINE_MAX_BYTES;
    l->buf = malloc(l->cap);
    if (!l->name || !l->buf) {
        ms_lines_close(l);
        return ms_err_set(err, MS_ERR_RUNTIME, "out of memory");
    }
    if ((rc = ms_zin_open(&l->in, path, MS_ZIN_AUTO, err)) != MS_OK) {
        ms_lines_close(l);
        return rc;
    }
    *out = l;
    return MS_OK;
}

/* Append more text after l->end; sets eof when the input is exhausted. */
static int fill(struct ms_lines *l, struct ms_err *err)
{
    uint64_t got;
    const int rc = ms_zin_read(l->in, l->buf + l->end, PIECE, &got, err);

    if (rc != MS_OK)
        return rc;
    l->end += (size_t)got;
    l->eof = got < PIECE;
    return MS_OK;
}

int ms_lines_next(struct ms_lines *l, const char **line, size_t *len, struct ms_err *err)
{
    for (;;) {
        char *nl = l->end > l->start ? memchr(l->buf + l->start, '\n', l->end - l->start) : NULL;
        if (nl || (l->eof && l->end > l->start)) {
            char *s = l->buf + l->start;
            size_t n = nl ? (size_t)(nl - s) : l->end - l->start;
            if (n > LINE_MAX_BYTES) /* the same limit however the pieces fell */
                return ms_err_set(err, MS_ERR_INPUT, "'%s' line %llu: longer than %d bytes",
                                  l->name, (unsigned long long)l->lineno + 1, LINE_MAX_BYTES);
            l->start += n + (nl ? 1 : 0);
            if (n > 0 && s[n - 1] == '\r')
                n--;
            s[n] = '\0'; /* the '\n' (or spare room at the end) becomes the terminator */
            l->lineno++;
            *line = s;
            *len = n;
            return 1;
        }
        if (l->eof)
            return 0;
        if (l->end - l->start > LINE_MAX_BYTES)
            return ms_err_set(err, MS_ERR_INPUT, "'%s' line %llu: longer than %d bytes", l->name,
                              (unsigned long long)l->lineno + 1, LINE_MAX_BYTES);
        /* move the partial line to the front, then read more after it */
        memmove(l->buf, l->buf + l->start, l->end - l->start);
        l->end -= l->start;
        l->start = 0;
        int rc = fill(l, err);
        if (rc != MS_OK)
            return rc;
    }
}

uint64_t ms_lines_number(const struct ms_lines *l)
{
    return l->lineno;
}

const char *ms_lines_name(const struct ms_lines *l)
{
    return l->name;
}

void ms_lines_close(struct ms_lines *l)
{
    if (!l)
        return;
    ms_zin_close(l->in);
    free(l->buf);
    free(l->name);
    free(l);
}

int ms_split_tabs(const char *line, size_t len, const char **f, size_t *flen, int max)
{
    const char *p = line, *end = line + len;
    int n = 0;
    while (n < max) {
        const char *t = memchr(p, '\t', (size_t)(end - p));
        f[n] = p;
        flen[n] = t ? (size_t)(t - p) : (size_t)(end - p);
        n++;
        if (!t)
            break;
        p = t + 1;
    }
    return n;
}

int ms_split_words(const char *line, size_t len, const char *seps, const char **f, size_t *flen,
                   int max)
{
    unsigned char sep[256] = { 0 }; /* a table: strchr per character was a third of reading a run */
    int n = 0;
    for (const char *p = seps; *p; p++)
        sep[(unsigned char)*p] = 1;
    for (size_t i = 0; i < len;) {
        while (i < len && sep[(unsigned char)line[i]])
            i++;
        if (i == len)
            break;
        if (n == max)
            return max + 1;
        f[n] = line + i;
        while (i < len && !sep[(unsigned char)line[i]])
            i++;
        flen[n] = (size_t)(line + i - f[n]);
        n++;
    }
    return n;
}

int ms_run_parse(const char *line, size_t len, struct ms_run_line *out, const char **why)
{
    const char *f[7];
    size_t flen[7];
    int n = 0;

    if (memchr(line, '\t', len) && !memchr(line, ' ', len)) {
        /* tab-separated: QID<TAB>DOCID[<TAB>...], or a TREC line written with tabs
         * (6 fields, the second "Q0") */
        n = ms_split_tabs(line, len, f, flen, 7);
        const int trec = n == 6 && flen[1] == 2 && memcmp(f[1], "Q0", 2) == 0;
        const int d = trec ? 2 : 1;
        if (n < 2 || flen[0] == 0 || flen[d] == 0) {
            *why = "expected 'QID<TAB>DOCID[<TAB>...]' with non-empty ids";
            return -1;
        }
        out->qid = f[0], out->qlen = flen[0];
        out->did = f[d], out->dlen = flen[d];
        return 0;
    }
    n = ms_split_words(line, len, " \t", f, flen, 7);
    if (n == 0)
        return 1;
    if (n != 6) {
        *why = "expected 'QID Q0 DOCID RANK SCORE TAG' (6 fields) or 'QID<TAB>DOCID'";
        return -1;
    }
    out->qid = f[0], out->qlen = flen[0];
    out->did = f[2], out->dlen = flen[2];
    return 0;
}

static int by_query_doc(const void *a, const void *b)
{
    const struct ms_cand *x = a, *y = b;
    if (x->q != y->q)
        return x->q < y->q ? -1 : 1;
    return x->d < y->d ? -1 : x->d > y->d;
}

static int by_query_score(const void *a, const void *b)
{
    const struct ms_cand *x = a, *y = b;
    if (x->q != y->q)
        return x->q < y->q ? -1 : 1;
    if (x->u.score != y->u.score)
        return x->u.score > y->u.score ? -1 : 1;
    return x->d < y->d ? -1 : x->d > y->d;
}

/* Sort c stably by (query, document) or, ranked, by (query, score highest first), through
 * ms_kv_sort; -1 (c untouched) when a key does not fit 64 bits or there is no memory. */
static int radix_sort(struct ms_cand *c, uint64_t n, int ranked)
{
    for (uint64_t i = 0; !ranked && i < n; i++)
        if (c[i].d > UINT32_MAX)
            return -1;
    struct ms_kv *kv = malloc(2 * n * sizeof *kv);
    struct ms_cand *out = malloc(n * sizeof *out);
    if (!kv || !out) {
        free(kv);
        free(out);
        return -1;
    }
    for (uint64_t i = 0; i < n; i++) {
        kv[i].key =
            (uint64_t)c[i].q << 32 | (ranked ? ms_float_key_desc(c[i].u.score) : (uint32_t)c[i].d);
        kv[i].val = i;
    }
    const struct ms_kv *sorted = ms_kv_sort(kv, kv + n, n);
    for (uint64_t i = 0; i < n; i++)
        out[i] = c[sorted[i].val];
    memcpy(c, out, n * sizeof *c);
    free(kv);
    free(out);
    return 0;
}

static int sorted_by_query_doc(const struct ms_cand *c, uint64_t n)
{
    for (uint64_t i = 1; i < n; i++)
        if (by_query_doc(&c[i - 1], &c[i]) > 0)
            return 0;
    return 1;
}

void ms_cands_sort_ranked(struct ms_cand *c, uint64_t n)
{
    /* ties of score stay in document order: the radix sort is stable, so from (query,
     * document) order on */
    if (n && (sorted_by_query_doc(c, n) || radix_sort(c, n, 0) == 0) && radix_sort(c, n, 1) == 0)
        return;
    if (n)
        qsort(c, n, sizeof *c, by_query_score);
}

int ms_cands_read(const char *path, const struct ms_idmap *qmap, const struct ms_idmap *dmap,
                  int skip_missing, struct ms_cand **out, uint64_t *n_out,
                  struct ms_cand_skips *skips, struct ms_err *err)
{
    struct ms_lines *lines;
    struct ms_cand *c = NULL;
    uint64_t n = 0, cap = 0;
    const char *line;
    size_t len;
    int rc, got;

    memset(skips, 0, sizeof *skips);
    if ((rc = ms_lines_open(&lines, path, err)) != MS_OK)
        return rc;
    while ((got = ms_lines_next(lines, &line, &len, err)) == 1) {
        struct ms_run_line rl;
        const char *why;
        const int p = ms_run_parse(line, len, &rl, &why);
        if (p == 1)
            continue;
        if (p < 0) {
            rc = ms_err_set(err, MS_ERR_INPUT, "'%s' line %llu: %s", ms_lines_name(lines),
                            (unsigned long long)ms_lines_number(lines), why);
            goto fail;
        }
        const int64_t q = ms_idmap_find(qmap, rl.qid, rl.qlen);
        const int64_t d = ms_idmap_find(dmap, rl.did, rl.dlen);
        if (q < 0 || d < 0) {
            const int bad_q = q < 0;
            const char *kind = bad_q ? "query" : "document", *id = bad_q ? rl.qid : rl.did;
            const int idlen = (int)(bad_q ? rl.qlen : rl.dlen);
            if (!skip_missing) {
                rc = ms_err_set(err, MS_ERR_INPUT, "'%s' line %llu: unknown %s id '%.*s'",
                                ms_lines_name(lines), (unsigned long long)ms_lines_number(lines),
                                kind, idlen, id);
                goto fail;
            }
            if (skips->count++ == 0) {
                skips->first_line = ms_lines_number(lines);
                snprintf(skips->first_id, sizeof skips->first_id, "%s '%.*s'", kind,
                         idlen > 120 ? 120 : idlen, id);
            }
            continue;
        }
        if (q > UINT32_MAX) {
            rc = ms_err_set(err, MS_ERR_INPUT, "'%s' line %llu: query row %lld is beyond 2^32",
                            ms_lines_name(lines), (unsigned long long)ms_lines_number(lines),
                            (long long)q);
            goto fail;
        }
        if (n == cap) {
            cap = cap ? 2 * cap : 4096;
            struct ms_cand *grown = ms_realloc(c, cap * sizeof *c, err);
            if (!grown) {
                rc = err->status;
                goto fail;
            }
            c = grown;
        }
        c[n].q = (uint32_t)q;
        c[n].d = (uint64_t)d;
        c[n].u.score = 0;
        n++;
    }
    if (got != 0) {
        rc = got;
        goto fail;
    }
    ms_lines_close(lines);
    /* each pair once, however often the run lists it */
    if (n && radix_sort(c, n, 0) != 0)
        qsort(c, n, sizeof *c, by_query_doc);
    uint64_t u = 0;
    for (uint64_t i = 0; i < n; i++)
        if (u == 0 || c[i].q != c[u - 1].q || c[i].d != c[u - 1].d)
            c[u++] = c[i];
    *out = c;
    *n_out = u;
    return MS_OK;
fail:
    ms_lines_close(lines);
    free(c);
    return rc;
}
