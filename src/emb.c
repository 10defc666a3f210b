/*
 * emb.c - the internal representation (struct ms_emb), float16 conversion,
 * and row ids (struct ms_ids), including ids read from a text file.
 */
#include "emb.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t ms_dtype_size(enum ms_dtype dtype)
{
    return dtype == MS_DTYPE_F16 ? 2 : 4;
}

const char *ms_dtype_name(enum ms_dtype dtype)
{
    return dtype == MS_DTYPE_F16 ? "float16" : "float32";
}

float ms_half_to_float(uint16_t h)
{
    const uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    const uint32_t exp = (h >> 10) & 0x1f;
    const uint32_t man = h & 0x3ff;
    uint32_t bits;
    float f;

    if (exp == 0) {
        /* zero or subnormal: man * 2^-24, exact in float */
        f = (float)man * 0x1p-24f;
        return sign ? -f : f;
    }
    if (exp == 31)
        bits = sign | 0x7f800000u | (man << 13);
    else
        bits = sign | ((exp + 112) << 23) | (man << 13);
    memcpy(&f, &bits, sizeof f);
    return f;
}

uint16_t ms_float_to_half(float f)
{
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    const uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    const uint32_t ax = x & 0x7fffffffu;

    if (ax >= 0x7f800000u) /* inf or NaN (keep NaN quiet and non-zero) */
        return sign | 0x7c00 | (ax > 0x7f800000u ? 0x200 | ((ax >> 13) & 0x3ff) : 0);
    if (ax >= 0x477ff000u) /* rounds to >= 65520: overflow to inf */
        return sign | 0x7c00;
    if (ax < 0x38800000u) {
        /* result is subnormal or zero: round ax * 2^24 to an integer, ties to even */
        float a;
        memcpy(&a, &ax, sizeof a);
        return sign | (uint16_t)lrintf(a * 0x1p24f);
    }
    /* normal: drop 13 mantissa bits with round to nearest even */
    uint32_t r = ax - 0x38000000u; /* rebias exponent 127 -> 15 */
    r += 0xfff + ((r >> 13) & 1);
    return sign | (uint16_t)(r >> 13);
}

void ms_emb_init(struct ms_emb *emb)
{
    memset(emb, 0, sizeof *emb);
}

void ms_emb_release(struct ms_emb *emb)
{
    free(emb->offsets);
    if (emb->alloc) {
        if (emb->tokens_handle)
            emb->alloc->free(emb->alloc->ctx, emb->tokens_handle);
    } else
        free(emb->tokens);
    ms_emb_init(emb);
}

/* Tokens of `bytes` from the allocator; the old ones are given back first so that a
 * stream never holds more than its blocks (contents are not kept). */
static void *alloc_tokens(struct ms_emb *emb, size_t bytes, struct ms_err *err)
{
    if (!emb->alloc)
        return ms_realloc(emb->tokens, bytes, err);
    if (emb->tokens_handle)
        emb->alloc->free(emb->alloc->ctx, emb->tokens_handle);
    emb->tokens = NULL;
    emb->tokens_handle = NULL;
    emb->tokens_cap = 0;
    void *p = emb->alloc->alloc(emb->alloc->ctx, bytes ? bytes : 1, &emb->tokens_handle);
    if (!p)
        ms_err_set(err, MS_ERR_RUNTIME, "out of memory (%zu bytes of pinned memory)", bytes);
    return p;
}

int ms_emb_reserve(struct ms_emb *emb, enum ms_dtype dtype, uint32_t dim, uint64_t n_rows,
                   uint64_t n_tokens, struct ms_err *err)
{
    unsigned long long bytes, elems;

    if (!emb->offsets || n_rows + 1 > emb->rows_cap) {
        uint64_t *o = ms_realloc(emb->offsets, (n_rows + 1) * sizeof *o, err);
        if (!o)
            return err->status;
        emb->offsets = o;
        emb->rows_cap = n_rows + 1;
    }
    if (ms_mul_u64(n_tokens, dim, &elems) || ms_mul_u64(elems, ms_dtype_size(dtype), &bytes) ||
        bytes > SIZE_MAX)
        return ms_err_set(err, MS_ERR_RUNTIME, "block of %llu tokens of dim %u is too large",
                          (unsigned long long)n_tokens, dim);
    if (emb->dtype != dtype || emb->dim != dim || n_tokens > emb->tokens_cap || !emb->tokens) {
        size_t old = (size_t)emb->tokens_cap * emb->dim * ms_dtype_size(emb->dtype);
        if (!emb->tokens || bytes > old) {
            void *t = alloc_tokens(emb, (size_t)bytes, err);
            if (!t)
                return err->status;
            emb->tokens = t;
            old = (size_t)bytes;
        }
        emb->tokens_cap = old / ((size_t)(dim ? dim : 1) * ms_dtype_size(dtype));
    }
    emb->dtype = dtype;
    emb->dim = dim;
    emb->n_rows = n_rows;
    emb->offsets[0] = 0;
    return MS_OK;
}

/* A value is NaN or Inf when its exponent bits are all set: then adding one unit of the
 * exponent carries into the sign bit. Blocks of a fixed number of elements are first
 * OR-reduced that way, a loop of known length with no early exit that compilers vectorize
 * at -O2 with plain SSE2; only a block that says "bad" is searched element by element. */
#define SCAN_BLOCK 4096

static int any_bad16(const uint16_t *h)
{
    uint16_t acc = 0;
    for (int i = 0; i < SCAN_BLOCK; i++)
        acc |= (uint16_t)((h[i] & 0x7c00) + 0x0400);
    return acc >> 15;
}

static int any_bad32(const uint32_t *w)
{
    uint32_t acc = 0;
    for (int i = 0; i < SCAN_BLOCK; i++)
        acc |= (w[i] & 0x7f800000u) + 0x00800000u;
    return (int)(acc >> 31);
}

uint64_t ms_nonfinite_first(const void *p, enum ms_dtype dtype, uint64_t from, uint64_t n)
{
    for (uint64_t b = from; b < from + n; b += SCAN_BLOCK) {
        const uint64_t m = from + n - b < SCAN_BLOCK ? from + n - b : SCAN_BLOCK;
        if (dtype == MS_DTYPE_F16) {
            const uint16_t *h = (const uint16_t *)p + b;
            if (m == SCAN_BLOCK && !any_bad16(h))
                continue;
            for (uint64_t i = 0; i < m; i++)
                if ((h[i] & 0x7c00) == 0x7c00)
                    return b + i;
        } else {
            const uint32_t *w = (const uint32_t *)p + b;
            if (m == SCAN_BLOCK && !any_bad32(w))
                continue;
            for (uint64_t i = 0; i < m; i++)
                if ((w[i] & 0x7f800000u) == 0x7f800000u)
                    return b + i;
        }
    }
    return UINT64_MAX;
}

void ms_emb_locate(const struct ms_emb *emb, uint64_t t, uint64_t *row, uint64_t *token)
{
    uint64_t lo = 0, hi = emb->n_rows; /* find r with offsets[r] <= t < offsets[r+1] */
    while (hi - lo > 1) {
        const uint64_t mid = lo + (hi - lo) / 2;
        if (emb->offsets[mid] <= t)
            lo = mid;
        else
            hi = mid;
    }
    while (lo + 1 < emb->n_rows && emb->offsets[lo + 1] <= t) /* skip empty rows */
        lo++;
    *row = lo;
    *token = t - emb->offsets[lo];
}

int ms_emb_find_nonfinite(const struct ms_emb *emb, uint64_t *row, uint64_t *token)
{
    const uint64_t bad =
        ms_nonfinite_first(emb->tokens, emb->dtype, 0, ms_emb_n_tokens(emb) * emb->dim);

    if (bad == UINT64_MAX)
        return 0;
    ms_emb_locate(emb, bad / emb->dim, row, token);
    return 1;
}

void ms_ids_init(struct ms_ids *ids)
{
    memset(ids, 0, sizeof *ids);
}

void ms_ids_release(struct ms_ids *ids)
{
    free(ids->pool);
    free(ids->offs);
    ms_ids_init(ids);
}

int ms_ids_push(struct ms_ids *ids, const char *s, size_t len, struct ms_err *err)
{
    if ((ids->n & (ids->n - 1)) == 0) { /* grow offs at powers of two */
        uint64_t *o = ms_realloc(ids->offs, (ids->n ? ids->n * 2 : 1) * sizeof *o, err);
        if (!o)
            return err->status;
        ids->offs = o;
    }
    if (ids->pool_len + len + 1 > ids->pool_cap) {
        uint64_t cap = ids->pool_cap ? ids->pool_cap : 256;
        while (cap < ids->pool_len + len + 1)
            cap *= 2;
        char *p = ms_realloc(ids->pool, cap, err);
        if (!p)
            return err->status;
        ids->pool = p;
        ids->pool_cap = cap;
    }
    ids->offs[ids->n++] = ids->pool_len;
    memcpy(ids->pool + ids->pool_len, s, len);
    ids->pool[ids->pool_len + len] = '\0';
    ids->pool_len += len + 1;
    return MS_OK;
}

const char *ms_ids_get(const struct ms_ids *ids, uint64_t row, char buf[24])
{
    if (ids->n == 0) { /* the row number; by hand, as snprintf was a tenth of writing a run */
        char *p = buf + 23;
        *p = '\0';
        do {
            *--p = (char)('0' + row % 10);
            row /= 10;
        } while (row);
        return p;
    }
    return ids->pool + ids->offs[row];
}

const char *ms_id_flaw(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        switch (s[i]) {
        case ' ': return "a space";
        case '\t': return "a tab";
        case '\n': return "a newline";
        case '\r': return "a carriage return";
        case '\v':
        case '\f': return "a vertical whitespace character";
        case '\0': return "a NUL character";
        default: break;
        }
    return NULL;
}

int ms_ids_read_text(struct ms_ids *ids, const char *path, struct ms_err *err)
{
    FILE *f = fopen(path, "rb");
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    uint64_t lineno = 0;
    int rc = MS_OK;

    if (!f)
        return ms_err_set(err, MS_ERR_INPUT, "cannot open '%s': %s", path, strerror(errno));
    ms_ids_init(ids);
    while ((len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        if (len > 0 && line[len - 1] == '\n')
            line[--len] = '\0';
        if (len > 0 && line[len - 1] == '\r')
            line[--len] = '\0';
        if (len == 0) {
            rc =
                ms_err_set(err, MS_ERR_INPUT, "'%s' line %llu: empty id (expected one id per line)",
                           path, (unsigned long long)lineno);
            break;
        }
        const char *flaw = ms_id_flaw(line, (size_t)len);
        if (flaw) { /* run lines are split on whitespace: such an id would break them */
            rc = ms_err_set(err, MS_ERR_INPUT,
                            "'%s' line %llu: id contains %s (expected no whitespace in an id)",
                            path, (unsigned long long)lineno, flaw);
            break;
        }
        if ((rc = ms_ids_push(ids, line, (size_t)len, err)) != MS_OK)
            break;
    }
    if (rc == MS_OK && ferror(f))
        rc = ms_err_set(err, MS_ERR_INPUT, "cannot read '%s': %s", path, strerror(errno));
    free(line);
    fclose(f);
    if (rc != MS_OK)
        ms_ids_release(ids);
    return rc;
}

uint8_t ms_float_to_e4m3(float f)
{
    const uint8_t sign = signbit(f) ? 0x80 : 0;
    const float a = fabsf(f);
    int e;
    if (!(a < 448.0f)) /* saturate; NaN cannot reach here (inputs are checked) */
        return sign | 0x7E;
    if (a < 0x1p-6f) /* subnormal: steps of 2^-9; 8 steps round up into the first normal */
        return sign | (uint8_t)nearbyintf(a * 512.0f);
    const float fr = frexpf(a, &e);      /* a = fr * 2^e, fr in [0.5, 1) */
    int q = (int)nearbyintf(fr * 16.0f); /* 1.mmm as 8..16, nearest even */
    if (q == 16) {
        q = 8;
        e++;
    }
    const int biased = e + 6; /* a = 1.mmm * 2^(e - 1), bias 7 */
    if (biased > 15 || (biased == 15 && (q & 7) == 7))
        return sign | 0x7E;
    return sign | (uint8_t)(biased << 3) | (uint8_t)(q & 7);
}

float ms_e4m3_to_float(uint8_t b)
{
    const int e = (b >> 3) & 15, m = b & 7;
    const float v = e ? ldexpf(1.0f + (float)m / 8.0f, e - 7) : ldexpf((float)m, -9);
    return (b & 0x80) ? -v : v;
}

double ms_emb_inv_norm(const struct ms_emb *emb, uint64_t t)
{
    double ss = 0.0;
    for (uint32_t k = 0; k < emb->dim; k++) {
        const double x = ms_emb_value(emb, t, k);
        ss += x * x;
    }
    return 1.0 / fmax(sqrt(ss), 1e-12);
}
