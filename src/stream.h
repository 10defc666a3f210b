/*
 * stream.h - a corpus read block by block on a reader thread.
 *
 * The corpus is cut into blocks of at most max_docs rows and max_tokens
 * tokens (a row longer than max_tokens gets a block of its own). While the
 * caller scores one block, the reader thread reads the next into the other
 * of two buffers, so reading overlaps scoring and memory stays at two blocks
 * whatever the corpus size.
 */
#ifndef MS_STREAM_H
#define MS_STREAM_H

#include <stdint.h>

#include "emb.h"
#include "err.h"
#include "src.h"

struct ms_stream;

/* Start reading rows [first, first + n) of src (the whole corpus: 0, n_rows), in blocks of at
 * most max_docs rows (0: no limit) and max_tokens tokens. With alloc
 * (else NULL), the blocks' tokens come from it (pinned memory, from the command layer),
 * allocated once per slot for the largest block these limits allow. */
int ms_stream_start(struct ms_stream **out, struct ms_src *src, uint64_t first, uint64_t n,
                    uint64_t max_docs, uint64_t max_tokens, const struct ms_alloc *alloc,
                    struct ms_err *err);
/* Read only the given rows (strictly ascending; not copied, must outlive
 * the stream), in blocks of consecutive entries of rows. */
int ms_stream_start_rows(struct ms_stream **out, struct ms_src *src, const uint64_t *rows,
                         uint64_t n, uint64_t max_docs, uint64_t max_tokens,
                         const struct ms_alloc *alloc, struct ms_err *err);
/* The next block, or *block = NULL at the end. The block stays valid until
 * the next call. A read error (e.g. NaN in the data) is returned here. */
int ms_stream_next(struct ms_stream *s, const struct ms_emb **block, struct ms_err *err);
/* Seconds the reader thread spent reading, and the caller spent waiting for it; bytes of
 * embeddings it delivered. */
double ms_stream_read_s(const struct ms_stream *s);
uint64_t ms_stream_bytes(const struct ms_stream *s);
double ms_stream_wait_s(const struct ms_stream *s);
/* Stop the thread (also mid-stream) and free everything. NULL is fine. */
void ms_stream_stop(struct ms_stream *s);

/* The end of the block that starts at row `first` under these limits. */
uint64_t ms_block_end(const struct ms_src *src, uint64_t first, uint64_t last, uint64_t max_docs,
                      uint64_t max_tokens);

/* The end (index into rows) of the block of rows that starts at rows[first]. */
uint64_t ms_rows_block_end(const struct ms_src *src, const uint64_t *rows, uint64_t first,
                           uint64_t last, uint64_t max_docs, uint64_t max_tokens);

/* Monotonic clock in seconds. */
double ms_now(void);

#endif
