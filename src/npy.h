/*
 * npy.h - the .npy header parser of npy.c, on memory.
 *
 * The file readers (ms_npy_open, ms_npy_zst_open, ms_npy_read_ints in src.h)
 * read the first bytes of a file and hand them to these functions; the fuzz
 * target (tests/fuzz/fuzz_npy.c) and the unit tests call them directly on
 * byte buffers. Messages they set do not name a file: callers prefix
 * "'PATH': " with ms_err_prefix().
 */
#ifndef MS_NPY_H
#define MS_NPY_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define MS_NPY_MAX_RANK   64         /* numpy 2 allows 64 dimensions (numpy 1: 32) */
#define MS_NPY_MAX_HEADER (1u << 20) /* longest header dict we accept, in bytes */
#define MS_NPY_PREAMBLE   12         /* bytes that always suffice for the preamble */

struct ms_npy_header {
    unsigned major, minor; /* format version: 1.0, 2.0 or 3.0 */
    uint32_t header_len;   /* length of the dict (with its padding) */
    uint64_t data_offset;  /* where the array data starts in the file */
    char descr[32];        /* element type as written (printable, cut to fit), for messages */
    char byteorder;        /* '<', '>', '=', '|', or 0 when the descr has none */
    char kind;             /* numpy kind: 'f', 'i', 'u', 'c', 'b', 'O', ...; 0 if not parsed */
    uint32_t itemsize;     /* bytes per element; 0 when the descr gives none */
    int structured;        /* descr is a list of fields, not a plain type string */
    int fortran_order;
    int rank;
    uint64_t shape[MS_NPY_MAX_RANK];
};

/* Check the magic bytes and version in buf[0, len) and read the header length.
 * Needs 10 bytes (version 1.0) or 12 (2.0, 3.0); fills major, minor,
 * header_len and data_offset. Refuses headers longer than MS_NPY_MAX_HEADER. */
int ms_npy_parse_preamble(const uint8_t *buf, size_t len, struct ms_npy_header *h,
                          struct ms_err *err);

/* Parse a whole header: buf[0, len) holds the file from its first byte and at
 * least up to h->data_offset (else the header runs beyond the file). */
int ms_npy_parse_header(const uint8_t *buf, size_t len, struct ms_npy_header *h,
                        struct ms_err *err);

/* Bytes of array data the header describes: product(shape) * itemsize.
 * An MS_ERR_INPUT error when that overflows 64 bits. */
int ms_npy_data_bytes(const struct ms_npy_header *h, uint64_t *bytes, struct ms_err *err);

/* The shape as Python prints a tuple: "()", "(5,)", "(2, 3)". Always
 * NUL-terminates; a shape too long for buf ends in "...)". */
void ms_npy_format_shape(const struct ms_npy_header *h, char *buf, size_t cap);

/* What numpy calls the element type: "float32", "int64", "complex128",
 * "object", ... or "unknown". */
const char *ms_npy_type_name(const struct ms_npy_header *h);

#endif
