/*
 * run.h - candidate runs: text read line by line as a stream (a file,
 * standard input, or zstd-compressed either way), and the parsing of one run
 * line into its query and document ids.
 *
 * Accepted lines (man/maxsim.1, rerank): TREC `QID Q0 DOCID RANK SCORE TAG` (fields
 * separated by spaces or tabs) and `QID<TAB>DOCID[<TAB>...]`. CRLF line ends
 * are tolerated; blank lines are skipped.
 */
#ifndef MS_RUN_H
#define MS_RUN_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "idmap.h"

struct ms_lines;

/* Open a text stream: path "-" is standard input; zstd data (by its magic
 * bytes) is decompressed on the fly. */
int ms_lines_open(struct ms_lines **out, const char *path, struct ms_err *err);
/* The next line, without its line end; 1 = a line, 0 = the end, else an
 * error status. The line stays valid until the next call. */
int ms_lines_next(struct ms_lines *l, const char **line, size_t *len, struct ms_err *err);
uint64_t ms_lines_number(const struct ms_lines *l);  /* 1-based number of the last line */
const char *ms_lines_name(const struct ms_lines *l); /* for messages */
void ms_lines_close(struct ms_lines *l);

struct ms_run_line {
    const char *qid, *did;
    size_t qlen, dlen;
};

/* The fields of a line split at every tab (empty fields count), at most max of them: their
 * count. */
int ms_split_tabs(const char *line, size_t len, const char **f, size_t *flen, int max);
/* The fields of a line separated by runs of the characters of seps (runs at the ends ignored):
 * their count, max + 1 when there are more than max. */
int ms_split_words(const char *line, size_t len, const char *seps, const char **f, size_t *flen,
                   int max);
/* Parse one line: 0 = parsed, 1 = blank, -1 = malformed with a reason in
 * `why` (a static string). */
int ms_run_parse(const char *line, size_t len, struct ms_run_line *out, const char **why);

/* One candidate of a run: a (query row, document row) pair, and its score
 * once scored. */
struct ms_cand {
    uint64_t d; /* document row */
    uint32_t q; /* query row */
    union {
        float score; /* the MaxSim score, once scored */
        uint32_t qi; /* while scoring: a command's own index for the query */
    } u;
};

/* Candidates dropped by --skip-missing: how many, and the first of them. */
struct ms_cand_skips {
    uint64_t count;
    uint64_t first_line;
    char first_id[160]; /* "document 'D9'" */
};

/* Read a candidate run (a path, or "-" for standard input) into pairs of
 * rows matched through the id maps, each pair once, sorted by query row then
 * document row. An unknown id is an MS_ERR_INPUT error naming the line and
 * the id, or with skip_missing it is counted in *skips. */
int ms_cands_read(const char *path, const struct ms_idmap *qmap, const struct ms_idmap *dmap,
                  int skip_missing, struct ms_cand **out, uint64_t *n_out,
                  struct ms_cand_skips *skips, struct ms_err *err);
/* Sort by query row, then score (highest first), then document row. */
void ms_cands_sort_ranked(struct ms_cand *c, uint64_t n);

#endif
