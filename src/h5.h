/*
 * h5.h - HDF5 beyond the reader: error-stack verbosity, and the writer of
 * command outputs.
 *
 * The reader itself is ms_h5_open() in src.h, one backend among the others.
 * This header holds what only the HDF5 module offers: turning HDF5's own
 * error stack on for -v, and writing 2-D result datasets (search: `scores`
 * [Nq, k] float32 and `indices` [Nq, k] int64; score: a full [Nq, Nd] float32
 * matrix produced block by block) plus id lists, readable by h5py.
 *
 * Every function here (and the reader's operations) takes one lock around
 * its HDF5 calls, so the reader thread and the main thread may use HDF5 at
 * once even with a library built without thread safety.
 */
#ifndef MS_H5_H
#define MS_H5_H

#include <stdint.h>

#include "err.h"

/* With on != 0, HDF5 prints its error stack to stderr as errors happen (-v);
 * by default it prints nothing and our one-line messages stand alone. */
void ms_h5_set_verbose(int on);

/* An HDF5 output file being written. Opaque. */
struct ms_h5_out;

/* Create (or truncate) path. On failure *out is NULL and nothing is left open;
 * a file that was created may be left behind for the caller to delete. */
int ms_h5_out_create(struct ms_h5_out **out, const char *path, struct ms_err *err);

/* Create the 2-D dataset `name` [rows, cols] of float32 (is_int64 == 0) or
 * int64 (is_int64 != 0), little-endian on disk. Returns its index (>= 0) for
 * ms_h5_out_write(), or -1 with err set. The storage is contiguous and
 * allocated on first write: outputs are dense, written once, in blocks whose
 * shape the writer does not know in advance, and scores do not compress, so
 * chunking would only add a read-modify-write through the chunk cache. */
int ms_h5_out_dataset(struct ms_h5_out *o, const char *name, int is_int64, uint64_t rows,
                      uint64_t cols, struct ms_err *err);

/* Write the block [row0, row0 + rows) x [col0, col0 + cols) of dataset
 * `dataset` from a row-major host buffer whose rows are ld elements apart
 * (ld >= cols): float for float32 datasets, int64_t for int64 ones. */
int ms_h5_out_write(struct ms_h5_out *o, int dataset, uint64_t row0, uint64_t col0, uint64_t rows,
                    uint64_t cols, const void *data, uint64_t ld, struct ms_err *err);

/* Write the 1-D dataset `name` of n variable-length UTF-8 strings, the type
 * h5py.string_dtype() gives (query or document ids). */
int ms_h5_out_string_dataset(struct ms_h5_out *o, const char *name, const char *const *strings,
                             uint64_t n, struct ms_err *err);

/* Flush and close; o is freed whatever happens. An error here (or an earlier
 * failed write) means the file is incomplete and the caller should delete it. */
int ms_h5_out_close(struct ms_h5_out *o, struct ms_err *err);

/* Close and free without reporting anything (after another error); the caller
 * deletes the file. Accepts NULL. */
void ms_h5_out_abort(struct ms_h5_out *o);

#endif
