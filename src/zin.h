/*
 * zin.h - one forward-only input stream, plain or zstd-compressed, for every
 * reader that takes its input in order: .npy.zst embeddings, .npy headers and
 * lengths files, and candidate runs. As in zstd's own fileio.c, the format
 * is told by the first bytes read, not by a pread() or the name, so pipes
 * and /dev/stdin work; and there is one check for a stream that ends inside
 * a zstd frame.
 */
#ifndef MS_ZIN_H
#define MS_ZIN_H

#include <stdint.h>

#include "err.h"

enum ms_zin_mode {
    MS_ZIN_AUTO,  /* zstd if the stream starts with a zstd frame, else plain */
    MS_ZIN_ZSTD,  /* must be zstd: other bytes are "not a zstd file" */
    MS_ZIN_PLAIN, /* never decompressed */
};

struct ms_zin;

/* Read from fd (closed by ms_zin_close when own is set). `where` names the
 * input in messages ("'runs/bm25.trec'", "'standard input'"). */
int ms_zin_open_fd(struct ms_zin **z, int fd, int own, const char *where, enum ms_zin_mode mode,
                   struct ms_err *err);
/* Open path for reading ("-" is standard input). */
int ms_zin_open(struct ms_zin **z, const char *path, enum ms_zin_mode mode, struct ms_err *err);

/* Hand out the next n bytes (decompressed if zstd) into dst, or skip them
 * when dst is NULL. *got < n only at the end of the stream; a zstd stream
 * that ends inside a frame, or corrupt data, is an MS_ERR_INPUT error. */
int ms_zin_read(struct ms_zin *z, void *dst, uint64_t n, uint64_t *got, struct ms_err *err);

int ms_zin_is_zstd(const struct ms_zin *z);
/* Bytes handed out (or skipped) so far. */
uint64_t ms_zin_produced(const struct ms_zin *z);
/* The name for messages, as given to open. */
const char *ms_zin_where(const struct ms_zin *z);
void ms_zin_close(struct ms_zin *z);

#endif
