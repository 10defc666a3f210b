/*
 * runmerge.h - merging the runs of shards (`search --shard I/N`) into the
 * exact global top-k, as a stream.
 *
 * Why it is exact: every shard run lists, for each query, its best
 * documents by score descending, ties by global row ascending (topk.c), and
 * shard I holds rows before those of shard I+1. Given in shard order, the
 * runs are merged by (score desc, run index asc, position in its run asc),
 * which is the order (score desc, row asc) of the unsharded run. Scores are
 * printed with 9 significant digits, which read back as the same float32,
 * so the merged lines are printed again exactly as the unsharded run prints
 * them.
 *
 * Input lines: TREC `QID Q0 DOCID RANK SCORE TAG` (fields separated by
 * spaces or tabs) or TSV `QID<TAB>DOCID<TAB>RANK<TAB>SCORE`, plain or zstd,
 * each run in one format. The queries must come in the same order in every
 * run (as `search` writes them); a run with no line at all is a shard
 * without documents.
 */
#ifndef MS_RUNMERGE_H
#define MS_RUNMERGE_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "out.h"

/* One parsed run line with a score. The strings point into the line. */
struct ms_scored_line {
    enum ms_fmt fmt; /* MS_FMT_TREC or MS_FMT_TSV */
    const char *qid, *did, *tag;
    size_t qlen, dlen, taglen; /* taglen 0 for TSV */
    uint64_t rank;
    float score;
};

/* Parse one line: 0 = parsed, 1 = blank, -1 = malformed with a reason in
 * `why` (a static string). */
int ms_scored_parse(const char *line, size_t len, struct ms_scored_line *out, const char **why);

struct ms_merge_opts {
    uint64_t k;      /* results per query */
    int fmt;         /* MS_FMT_TREC / MS_FMT_TSV, or -1: the inputs' format */
    const char *tag; /* TREC run tag; NULL: each line keeps its own */
};

/* What a merge saw: the most lines one run held for one query (more than k
 * means the runs were searched with a larger -k than the merge's). */
struct ms_merge_stats {
    uint64_t queries;
    uint64_t most_per_query;
};

/* Merge the runs (paths; "-" is standard input, at most once) in shard order
 * into w; stats may be NULL. Bad input is an MS_ERR_INPUT error naming the
 * run and line. */
int ms_runs_merge(const char *const *paths, int n, const struct ms_merge_opts *o,
                  struct ms_wfile *w, struct ms_merge_stats *stats, struct ms_err *err);

#endif
