/*
 * runmerge.c - merging shard runs (runmerge.h).
 *
 * Each run is read one query at a time: its lines for the current query are
 * kept (copied, since a line lives only until the next read), and the first
 * line of the next query waits in `pending`. Memory is the runs' lines of
 * one query, whatever the run sizes.
 */
#include "runmerge.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "run.h"

static int is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

/* A decimal rank >= 1. */
static int parse_rank(const char *s, size_t len, uint64_t *v)
{
    if (len == 0 || len > 18 || strspn(s, "0123456789") < len)
        return -1;
    *v = 0;
    for (size_t i = 0; i < len; i++)
        *v = *v * 10 + (uint64_t)(s[i] - '0');
    return *v >= 1 ? 0 : -1;
}

/* A float32 in the whole field (as %.9g prints it, or any strtof text). */
static int parse_score(const char *s, size_t len, float *v)
{
    char buf[64], *end;

    if (len == 0 || len >= sizeof buf)
        return -1;
    memcpy(buf, s, len);
    buf[len] = '\0';
    if (is_blank(buf[0]))
        return -1;
    *v = strtof(buf, &end);
    return *end ? -1 : 0;
}

int ms_scored_parse(const char *line, size_t len, struct ms_scored_line *out, const char **why)
{
    const char *f[7];
    size_t flen[7];
    int n = 0;

    while (len > 0 && line[len - 1] == '\r')
        len--;
    memset(out, 0, sizeof *out);
    if (memchr(line, '\t', len) && !memchr(line, ' ', len)) {
        n = ms_split_tabs(line, len, f, flen, 7);
        if (n == 4) {
            if (flen[0] == 0 || flen[1] == 0) {
                *why = "expected 'QID<TAB>DOCID<TAB>RANK<TAB>SCORE' with non-empty ids";
                return -1;
            }
            out->fmt = MS_FMT_TSV;
            out->qid = f[0], out->qlen = flen[0];
            out->did = f[1], out->dlen = flen[1];
            if (parse_rank(f[2], flen[2], &out->rank)) {
                *why = "expected a rank (an integer >= 1) in field 3";
                return -1;
            }
            if (parse_score(f[3], flen[3], &out->score)) {
                *why = "expected a score (a number) in field 4";
                return -1;
            }
            return 0;
        }
        n = 0; /* not TSV: a TREC line written with tabs */
    }
    n = ms_split_words(line, len, " \t\r", f, flen, 7);
    if (n == 0)
        return 1;
    if (n != 6) {
        *why = "expected 'QID Q0 DOCID RANK SCORE TAG' (6 fields) or "
               "'QID<TAB>DOCID<TAB>RANK<TAB>SCORE' (4 fields)";
        return -1;
    }
    out->fmt = MS_FMT_TREC;
    out->qid = f[0], out->qlen = flen[0];
    out->did = f[2], out->dlen = flen[2];
    out->tag = f[5], out->taglen = flen[5];
    if (parse_rank(f[3], flen[3], &out->rank)) {
        *why = "expected a rank (an integer >= 1) in field 4";
        return -1;
    }
    if (parse_score(f[4], flen[4], &out->score)) {
        *why = "expected a score (a number) in field 5";
        return -1;
    }
    return 0;
}

/* One line of the current query of a run; strings are offsets into pool. */
struct item {
    size_t did, tag;
    float score;
    uint64_t line;
};

struct input {
    struct ms_lines *lines;
    int fmt;     /* of its first line, -1 before */
    int started; /* has had a line */
    char *pool;  /* the current query's id, then its lines' ids and tags */
    size_t pool_len, pool_cap;
    struct item *items;
    uint64_t n, cap, next; /* n items of the current query; next to merge */
    size_t qlen;           /* of the current query's id */
    uint64_t first_line;   /* of the current query */
    char *pending;         /* the first line of the next query, if has_pending */
    size_t pending_len, pending_cap;
    uint64_t pending_line;
    int has_pending;
};

static int pool_add(struct input *in, const char *s, size_t len, size_t *off, struct ms_err *err)
{
    if (in->pool_len + len + 1 > in->pool_cap) {
        size_t cap = in->pool_cap ? in->pool_cap : 4096;
        while (cap < in->pool_len + len + 1)
            cap *= 2;
        char *p = ms_realloc(in->pool, cap, err);
        if (!p)
            return err->status;
        in->pool = p;
        in->pool_cap = cap;
    }
    *off = in->pool_len;
    memcpy(in->pool + in->pool_len, s, len);
    in->pool[in->pool_len + len] = '\0';
    in->pool_len += len + 1;
    return MS_OK;
}

static int bad_line(struct ms_err *err, const struct input *in, uint64_t line, const char *why)
{
    return ms_err_set(err, MS_ERR_INPUT, "'%s' line %llu: %s", ms_lines_name(in->lines),
                      (unsigned long long)line, why);
}

/* The next non-blank line of a run, raw and parsed: 1, 0 at the end, else
 * an error status. */
static int next_line(struct input *in, const char **line, size_t *len, struct ms_scored_line *sl,
                     uint64_t *lineno, struct ms_err *err)
{
    const char *why = NULL;
    int rc;

    for (;;) {
        if ((rc = ms_lines_next(in->lines, line, len, err)) != 1)
            return rc;
        *lineno = ms_lines_number(in->lines);
        if ((rc = ms_scored_parse(*line, *len, sl, &why)) == 1)
            continue;
        if (rc < 0)
            return bad_line(err, in, *lineno, why);
        if (in->fmt >= 0 && (int)sl->fmt != in->fmt)
            return bad_line(
                err, in, *lineno,
                sl->fmt == MS_FMT_TSV
                    ? "expected a TREC line like the run's first line, found a TSV line"
                    : "expected a TSV line like the run's first line, found a TREC line");
        in->fmt = (int)sl->fmt;
        in->started = 1;
        return 1;
    }
}

static int keep_pending(struct input *in, const char *line, size_t len, uint64_t lineno,
                        struct ms_err *err)
{
    if (len + 1 > in->pending_cap) {
        char *p = ms_realloc(in->pending, len + 1, err);
        if (!p)
            return err->status;
        in->pending = p;
        in->pending_cap = len + 1;
    }
    memcpy(in->pending, line, len);
    in->pending[len] = '\0';
    in->pending_len = len;
    in->pending_line = lineno;
    in->has_pending = 1;
    return MS_OK;
}

/* Add one line to the current query's items, checking its order. */
static int add_item(struct input *in, const struct ms_scored_line *sl, uint64_t lineno,
                    struct ms_err *err)
{
    struct item it = { 0 };
    int rc;

    if (sl->rank != in->n + 1) {
        char why[256];
        snprintf(why, sizeof why,
                 "expected rank %llu of query '%.80s', found %llu (a query listed twice, or "
                 "lines out of order?)",
                 (unsigned long long)(in->n + 1), in->pool, (unsigned long long)sl->rank);
        return bad_line(err, in, lineno, why);
    }
    if (in->n > 0) {
        const float prev = in->items[in->n - 1].score;
        if (!isnan(sl->score) && (isnan(prev) || sl->score > prev))
            return bad_line(err, in, lineno,
                            "expected scores in descending order within a query, as 'maxsim "
                            "search' writes them");
    }
    if (in->n == in->cap) {
        const uint64_t cap = in->cap ? 2 * in->cap : 64;
        struct item *p = ms_realloc(in->items, cap * sizeof *p, err);
        if (!p)
            return err->status;
        in->items = p;
        in->cap = cap;
    }
    if ((rc = pool_add(in, sl->did, sl->dlen, &it.did, err)) != MS_OK ||
        (rc = pool_add(in, sl->tag ? sl->tag : "", sl->taglen, &it.tag, err)) != MS_OK)
        return rc;
    it.score = sl->score;
    it.line = lineno;
    in->items[in->n++] = it;
    return MS_OK;
}

/* Start a query with the line sl: its id first in the pool, then the item. */
static int start_query(struct input *in, const struct ms_scored_line *sl, uint64_t lineno,
                       struct ms_err *err)
{
    size_t off;
    const int rc = pool_add(in, sl->qid, sl->qlen, &off, err);
    in->qlen = sl->qlen;
    in->first_line = lineno;
    return rc != MS_OK ? rc : add_item(in, sl, lineno, err);
}

/* Read the lines of the run's next query; n == 0 afterwards at its end. */
static int load_query(struct input *in, struct ms_err *err)
{
    struct ms_scored_line sl;
    const char *line, *why = NULL;
    size_t len;
    uint64_t lineno = 0;
    int rc;

    in->n = in->next = 0;
    in->pool_len = 0;
    if (in->has_pending) {
        in->has_pending = 0;
        if (ms_scored_parse(in->pending, in->pending_len, &sl, &why) != 0) /* parsed before */
            return bad_line(err, in, in->pending_line, why ? why : "unreadable line");
        if ((rc = start_query(in, &sl, in->pending_line, err)) != MS_OK)
            return rc;
    }
    while ((rc = next_line(in, &line, &len, &sl, &lineno, err)) == 1) {
        if (in->n == 0) {
            if ((rc = start_query(in, &sl, lineno, err)) != MS_OK)
                return rc;
        } else if (sl.qlen != in->qlen || memcmp(sl.qid, in->pool, sl.qlen) != 0) {
            return keep_pending(in, line, len, lineno, err); /* the next query's first line */
        } else if ((rc = add_item(in, &sl, lineno, err)) != MS_OK) {
            return rc;
        }
    }
    return rc;
}

/* 1 if item a (of run ra) ranks before item b (of run rb): score desc (NaN
 * last), then run order. */
static int before(const struct item *a, int ra, const struct item *b, int rb)
{
    if (isnan(a->score) || isnan(b->score)) {
        if (isnan(a->score) != isnan(b->score))
            return isnan(b->score);
        return ra < rb;
    }
    return a->score > b->score || (a->score == b->score && ra < rb);
}

static int merge_query(struct input *in, int n, int lead, enum ms_fmt fmt,
                       const struct ms_merge_opts *o, struct ms_wfile *w, struct ms_err *err)
{
    const char *qid = in[lead].pool;

    for (uint64_t rank = 1; rank <= o->k; rank++) {
        int best = -1;
        for (int i = lead; i < n; i++)
            if (in[i].next < in[i].n && (best < 0 || before(&in[i].items[in[i].next], i,
                                                            &in[best].items[in[best].next], best)))
                best = i;
        if (best < 0)
            break;
        const struct item *it = &in[best].items[in[best].next++];
        const char *tag = o->tag                   ? o->tag
                          : in[best].pool[it->tag] ? in[best].pool + it->tag
                                                   : "maxsim";
        const int rc = ms_run_line(w, fmt, qid, in[best].pool + it->did, rank, it->score, tag, err);
        if (rc != MS_OK)
            return rc;
    }
    return MS_OK;
}

int ms_runs_merge(const char *const *paths, int n, const struct ms_merge_opts *o,
                  struct ms_wfile *w, struct ms_merge_stats *stats, struct ms_err *err)
{
    struct ms_merge_stats none;
    struct input *in = ms_calloc((size_t)(n > 0 ? n : 1), sizeof *in, err);
    int rc = in ? MS_OK : err->status;

    if (!stats)
        stats = &none;
    memset(stats, 0, sizeof *stats);

    for (int i = 0; i < n && rc == MS_OK; i++) {
        in[i].fmt = -1;
        rc = ms_lines_open(&in[i].lines, paths[i], err);
    }
    while (rc == MS_OK) {
        int lead = -1;
        for (int i = 0; i < n && rc == MS_OK; i++)
            rc = load_query(&in[i], err);
        if (rc != MS_OK)
            break;
        for (int i = 0; i < n && lead < 0; i++)
            if (in[i].n)
                lead = i;
        /* A run that has ended while another goes on was cut short, unless
         * it never had a line (a shard without documents). */
        for (int i = 0; i < n && rc == MS_OK; i++) {
            const int ended = in[i].n == 0 && in[i].started;
            if (lead >= 0 && ended)
                rc = ms_err_set(err, MS_ERR_INPUT,
                                "'%s' ends before query '%.80s' ('%s' line %llu): expected "
                                "every shard run to list the same queries",
                                ms_lines_name(in[i].lines), in[lead].pool,
                                ms_lines_name(in[lead].lines),
                                (unsigned long long)in[lead].first_line);
            else if (in[i].n && (in[i].qlen != in[lead].qlen ||
                                 memcmp(in[i].pool, in[lead].pool, in[i].qlen) != 0))
                rc = ms_err_set(err, MS_ERR_INPUT,
                                "'%s' line %llu: expected query '%.80s' (as in '%s' line %llu), "
                                "found '%.80s': shard runs must list the same queries in the "
                                "same order",
                                ms_lines_name(in[i].lines), (unsigned long long)in[i].first_line,
                                in[lead].pool, ms_lines_name(in[lead].lines),
                                (unsigned long long)in[lead].first_line, in[i].pool);
            else if (in[i].n && in[i].fmt != in[lead].fmt)
                rc = ms_err_set(err, MS_ERR_INPUT,
                                "'%s' line %llu: expected a %s run like '%s', found a %s line",
                                ms_lines_name(in[i].lines), (unsigned long long)in[i].first_line,
                                ms_fmt_name((enum ms_fmt)in[lead].fmt),
                                ms_lines_name(in[lead].lines), ms_fmt_name((enum ms_fmt)in[i].fmt));
        }
        if (rc != MS_OK || lead < 0)
            break;
        stats->queries++;
        for (int i = lead; i < n; i++)
            if (in[i].n > stats->most_per_query)
                stats->most_per_query = in[i].n;
        rc = merge_query(in, n, lead, o->fmt >= 0 ? (enum ms_fmt)o->fmt : (enum ms_fmt)in[lead].fmt,
                         o, w, err);
    }
    for (int i = 0; in && i < n; i++) {
        ms_lines_close(in[i].lines);
        free(in[i].pool);
        free(in[i].items);
        free(in[i].pending);
    }
    free(in);
    return rc;
}
