/*
 * emb.h - the one internal representation of token embeddings.
 *
 * Every reader produces it and every kernel consumes it: the valid tokens of
 * a block of rows (queries or documents) back to back, [n_tokens, dim], plus
 * row offsets [n_rows + 1]. Row r owns tokens offsets[r] .. offsets[r+1]-1;
 * an empty row has offsets[r] == offsets[r+1]. Elements keep the type they
 * had on disk (float32 or IEEE float16 as raw 16-bit words), in host order.
 *
 * Ids travel separately (struct ms_ids): one string per row of a source.
 */
#ifndef MS_EMB_H
#define MS_EMB_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

enum ms_dtype {
    MS_DTYPE_F32,
    MS_DTYPE_F16,
};

size_t ms_dtype_size(enum ms_dtype dtype);
const char *ms_dtype_name(enum ms_dtype dtype); /* "float32" / "float16" */

/* IEEE binary16 <-> binary32, exact for every finite half and for inf/NaN;
 * float -> half rounds to nearest even. */
float ms_half_to_float(uint16_t h);
uint16_t ms_float_to_half(float f);
/* float8 e4m3 (1 sign, 4 exponent bits of bias 7, 3 mantissa bits; no infinities, 448 the
 * largest finite): f rounded to nearest even and saturated at +-448, as the device's
 * cvt.rn.satfinite.e4m3x2.f32 rounds (--precision f8); and back (0x7F/0xFF, NaN, never made). */
uint8_t ms_float_to_e4m3(float f);
float ms_e4m3_to_float(uint8_t b);

/* Where a block's token storage may come from instead of malloc: the command layer
 * passes one in to have blocks read straight into memory the device copies from fastest
 * (pinned, cmd_common.c) while readers stay free of OpenCL. alloc returns bytes of storage
 * and a handle for free, or NULL when it cannot (the error is then "out of memory"). */
struct ms_alloc {
    void *(*alloc)(void *ctx, size_t bytes, void **handle);
    void (*free)(void *ctx, void *handle);
    void *ctx;
};

struct ms_emb {
    enum ms_dtype dtype;
    uint32_t dim;
    uint64_t first_row; /* row number, in its source, of row 0 of this block */
    uint64_t n_rows;
    uint64_t *offsets;   /* [n_rows + 1], offsets[0] == 0; owned */
    void *tokens;        /* [offsets[n_rows] * dim] elements; owned */
    uint64_t rows_cap;   /* capacity of offsets, in rows */
    uint64_t tokens_cap; /* capacity of tokens, in tokens */
    /* Set (after ms_emb_init) to take tokens from an allocator; tokens_handle is its handle. */
    const struct ms_alloc *alloc;
    void *tokens_handle;
};

void ms_emb_init(struct ms_emb *emb);
/* Release the buffers and reinitialize (git's _release). */
void ms_emb_release(struct ms_emb *emb);
/* Make room for n_rows rows and n_tokens tokens of `dim` elements of `dtype`,
 * keeping the buffers when they are big enough (blocks are reused while streaming).
 * With an allocator, tokens that must grow are allocated anew: their contents are not kept. */
int ms_emb_reserve(struct ms_emb *emb, enum ms_dtype dtype, uint32_t dim, uint64_t n_rows,
                   uint64_t n_tokens, struct ms_err *err);
static inline uint64_t ms_emb_n_tokens(const struct ms_emb *emb)
{
    return emb->offsets ? emb->offsets[emb->n_rows] : 0;
}
static inline uint64_t ms_emb_row_len(const struct ms_emb *emb, uint64_t r)
{
    return emb->offsets[r + 1] - emb->offsets[r];
}
/* Value of element k of token t (block-relative), whatever the dtype. */
static inline float ms_emb_value(const struct ms_emb *emb, uint64_t t, uint32_t k)
{
    const uint64_t i = t * emb->dim + k;
    if (emb->dtype == MS_DTYPE_F16)
        return ms_half_to_float(((const uint16_t *)emb->tokens)[i]);
    return ((const float *)emb->tokens)[i];
}

/* 1 / max(|token t|_2, 1e-12) in double: the factor --normalize applies (CONTRACT.md). */
double ms_emb_inv_norm(const struct ms_emb *emb, uint64_t t);

/* Find the first NaN or Inf among the block's valid tokens. Returns 0 when all
 * are finite, else 1 with *row (block-relative) and *token (within the row). */
int ms_emb_find_nonfinite(const struct ms_emb *emb, uint64_t *row, uint64_t *token);
/* The first NaN or Inf among elements [from, from + n) of elements of dtype at p, as an
 * element index, or UINT64_MAX: the piece of that search one reader thread does. */
uint64_t ms_nonfinite_first(const void *p, enum ms_dtype dtype, uint64_t from, uint64_t n);
/* The row (block-relative, skipping empty rows) and token within it of block token t. */
void ms_emb_locate(const struct ms_emb *emb, uint64_t t, uint64_t *row, uint64_t *token);

/*
 * Row ids: one string per row. Integer ids are kept as their decimal text so
 * that matching (rerank) and printing (run files) need one code path.
 * n == 0 means the source has no ids: the 0-based row number is the id.
 */
struct ms_ids {
    uint64_t n;
    char *pool;        /* the ids, each NUL-terminated, back to back; owned */
    uint64_t *offs;    /* [n] offset of each id in pool; owned */
    uint64_t pool_len; /* bytes used in pool */
    uint64_t pool_cap; /* bytes allocated for pool */
};

void ms_ids_init(struct ms_ids *ids);
void ms_ids_release(struct ms_ids *ids);
/* Append one id (len bytes, need not be NUL-terminated). */
int ms_ids_push(struct ms_ids *ids, const char *s, size_t len, struct ms_err *err);
/* The id of row `row`: the stored string, or the row number written into buf. */
const char *ms_ids_get(const struct ms_ids *ids, uint64_t row, char buf[24]);
/* What makes an id unusable in a run line (TREC and TSV split on
 * whitespace): "a space", "a tab", "a newline", ... or NULL if it is fine. */
const char *ms_id_flaw(const char *s, size_t len);
/* Read ids from a text file, one per line (LF or CRLF); empty lines and ids
 * with whitespace or NUL (ms_id_flaw) are errors. */
int ms_ids_read_text(struct ms_ids *ids, const char *path, struct ms_err *err);

#endif
