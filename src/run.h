/*
 * run.h - candidate runs: text read line by line as a stream (a file,
 * standard input, or zstd-compressed either way), and the parsing of one run
 * line into its query and document ids.
 *
 * Accepted lines (CONTRACT.md): TREC `QID Q0 DOCID RANK SCORE TAG` (fields
 * separated by spaces or tabs) and `QID<TAB>DOCID[<TAB>...]`. CRLF line ends
 * are tolerated; blank lines are skipped.
 */
#ifndef MS_RUN_H
#define MS_RUN_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

struct ms_lines;

/* Open a text stream: path "-" is standard input; zstd data (by its magic
 * bytes) is decompressed on the fly. */
int ms_lines_open(struct ms_lines **out, const char *path, struct ms_err *err);
/* The next line, without its line end; 1 = a line, 0 = the end, else an
 * error status. The line stays valid until the next call. */
int ms_lines_next(struct ms_lines *l, const char **line, size_t *len, struct ms_err *err);
uint64_t ms_lines_number(const struct ms_lines *l); /* 1-based number of the last line */
const char *ms_lines_name(const struct ms_lines *l); /* for messages */
void ms_lines_close(struct ms_lines *l);

struct ms_run_line {
    const char *qid, *did;
    size_t qlen, dlen;
};

/* Parse one line: 0 = parsed, 1 = blank, -1 = malformed with a reason in
 * `why` (a static string). */
int ms_run_parse(const char *line, size_t len, struct ms_run_line *out, const char **why);

#endif
