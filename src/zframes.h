/*
 * zframes.h - a zstd file of several frames, read at any position, frames in parallel.
 *
 * A .npy.zst written by pzstd, by concatenating compressed pieces, or by any tool that cuts
 * its input into frames holds independent frames, each of which can be decompressed on its
 * own. When every frame declares its decompressed size, an index of the frames (compressed
 * and decompressed offsets) lets a read of any byte range decompress just the frames that
 * cover it, on several threads at once. A file with one frame, or with a frame that does not
 * declare its size, or one too large to decompress twice cheaply, is left to the stream
 * reader (zin.c), which reads it forward only.
 */
#ifndef MS_ZFRAMES_H
#define MS_ZFRAMES_H

#include <stdint.h>

#include "err.h"

/* Frames larger than this (decompressed) are not indexed: a read that needs only part of a
 * frame still decompresses it from its start, so large frames would be decompressed many times. */
#define MS_ZFRAME_MAX (32u << 20)

struct ms_zframes;

/* Index the zstd file open on fd (not taken: the index keeps its own descriptor). Returns 1
 * with *out when the file is two or more frames (skippable frames aside) that each declare
 * a decompressed size of at most MS_ZFRAME_MAX and that end exactly at the end of the file,
 * else 0: the caller then reads the file as a stream, which reports whatever is wrong with
 * it. `where` names the file in messages ("'c.npy.zst'"). */
int ms_zframes_index(struct ms_zframes **out, int fd, const char *where);
/* Decompressed bytes of the whole file. */
uint64_t ms_zframes_size(const struct ms_zframes *z);
/* Decompress bytes [off, off + n) of the content into dst on up to `threads` threads (one
 * frame at a time each). Corrupt data is an MS_ERR_INPUT error worded as the stream
 * reader's, for the first bad frame in file order. */
int ms_zframes_read(struct ms_zframes *z, uint64_t off, uint64_t n, void *dst, int threads,
                    struct ms_err *err);
void ms_zframes_free(struct ms_zframes *z);

#endif
