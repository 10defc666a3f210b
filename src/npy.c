/*
 * npy.c - the .npy and .npy.zst backends (src.h) and the .npy header parser (npy.h).
 *
 * A .npy file is the magic "\x93NUMPY", a version (1.0, 2.0 or 3.0), the
 * length of a header dict (uint16 LE in 1.0, uint32 LE after), the dict as a
 * Python literal ({'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), })
 * padded with spaces to an aligned data offset, then the array data in C order.
 *
 * The header is read into a bounded heap buffer and parsed by a small
 * tokenizer (never a regex, never a VLA sized from the file); every byte of
 * it is input to distrust, so this parser is fuzzed (tests/fuzz/fuzz_npy.c).
 * Plain .npy data is never slurped: the backend keeps the descriptor and
 * reads the spans asked for with pread(). A .npy.zst file is decompressed as
 * a stream (zin.c, the input stream the run reader uses too), so it can only
 * be read forward; its size cannot be checked up front, so a short stream is
 * reported when the reader reaches its end. A regular .npy.zst file of several
 * frames that declare their sizes (pzstd, concatenated pieces) is instead read
 * through an index of its frames (zframes.c): at any position, and with the
 * frames of a span decompressed in parallel.
 */
#include "npy.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "src.h"
#include "zframes.h"
#include "zin.h"

/* ---------------------------------------------------------------------- */
/* The header parser, on memory                                            */
/* ---------------------------------------------------------------------- */

static const uint8_t npy_magic[6] = { 0x93, 'N', 'U', 'M', 'P', 'Y' };

int ms_npy_parse_preamble(const uint8_t *buf, size_t len, struct ms_npy_header *h,
                          struct ms_err *err)
{
    size_t need;

    memset(h, 0, sizeof *h);
    if (len && memcmp(buf, npy_magic, len < 6 ? len : 6) != 0)
        return ms_err_set(err, MS_ERR_INPUT, "not a .npy file (bad magic bytes)");
    if (len < 8)
        return ms_err_set(err, MS_ERR_INPUT, "not a .npy file (too short: %zu bytes)", len);
    h->major = buf[6];
    h->minor = buf[7];
    if (h->minor != 0 || h->major < 1 || h->major > 3)
        return ms_err_set(err, MS_ERR_INPUT,
                          "unsupported .npy format version %u.%u (expected 1.0, 2.0 or 3.0)",
                          h->major, h->minor);
    need = h->major == 1 ? 10 : 12;
    if (len < need)
        return ms_err_set(err, MS_ERR_INPUT, "not a .npy file (too short: %zu bytes)", len);
    /* Explicit little-endian loads: the field is unaligned and the host may be big-endian. */
    if (h->major == 1)
        h->header_len = (uint32_t)buf[8] | (uint32_t)buf[9] << 8;
    else
        h->header_len = (uint32_t)buf[8] | (uint32_t)buf[9] << 8 | (uint32_t)buf[10] << 16 |
                        (uint32_t)buf[11] << 24;
    if (h->header_len > MS_NPY_MAX_HEADER)
        return ms_err_set(err, MS_ERR_INPUT,
                          "header length %" PRIu32 " is beyond the limit of %u bytes",
                          h->header_len, MS_NPY_MAX_HEADER);
    h->data_offset = need + h->header_len;
    return MS_OK;
}

/* A cursor over the header dict; base is the start of the file, so that
 * messages give byte offsets a user can find with a hex dump. */
struct cur {
    const uint8_t *p, *end, *base;
};

static void skip_ws(struct cur *c)
{
    while (c->p < c->end &&
           (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r' || *c->p == '\f'))
        c->p++;
}

/* Copy s[0, n) into dst for a message: non-printable bytes become '?' so the
 * message stays one line, and a long string is cut with "...". */
static void printable(char *dst, size_t cap, const uint8_t *s, size_t n)
{
    size_t i, keep = n < cap ? n : cap - 4;

    for (i = 0; i < keep; i++)
        dst[i] = s[i] >= 0x20 && s[i] < 0x7f ? (char)s[i] : '?';
    if (keep < n)
        memcpy(dst + i, "...", 4);
    else
        dst[i] = '\0';
}

static int expected(const struct cur *c, const char *what, struct ms_err *err)
{
    char found[32];

    if (c->p >= c->end)
        snprintf(found, sizeof found, "the end of the header");
    else if (*c->p >= 0x20 && *c->p < 0x7f)
        snprintf(found, sizeof found, "'%c'", *c->p);
    else
        snprintf(found, sizeof found, "byte 0x%02x", *c->p);
    return ms_err_set(err, MS_ERR_INPUT, "malformed header: expected %s at byte %zu, found %s",
                      what, (size_t)(c->p - c->base), found);
}

/* A quoted string without escapes (numpy never writes any); *s, *n point into the buffer. */
static int parse_str(struct cur *c, const uint8_t **s, size_t *n, const char *what,
                     struct ms_err *err)
{
    uint8_t quote;

    if (c->p >= c->end || (*c->p != '\'' && *c->p != '"'))
        return expected(c, what, err);
    quote = *c->p++;
    *s = c->p;
    while (c->p < c->end && *c->p != quote) {
        if (*c->p == '\\')
            return ms_err_set(err, MS_ERR_INPUT,
                              "malformed header: escape sequences are not supported (byte %zu)",
                              (size_t)(c->p - c->base));
        if (*c->p == '\n' || *c->p == '\r')
            return expected(c, "a closing quote", err);
        c->p++;
    }
    if (c->p >= c->end)
        return expected(c, "a closing quote", err);
    *n = (size_t)(c->p - *s);
    c->p++;
    return MS_OK;
}

static int is_ident(uint8_t ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '_';
}

/* Skip one Python literal (a structured descr such as [('a', '<f4'), ('b', '<i4', (2,))]):
 * brackets are matched on a small stack, so nesting depth is bounded. */
static int skip_value(struct cur *c, struct ms_err *err)
{
    char stack[32];
    int depth = 0;
    const uint8_t *s;
    size_t n;
    int rc;

    do {
        skip_ws(c);
        if (c->p >= c->end)
            return expected(c, "a value", err);
        const uint8_t ch = *c->p;
        if (ch == '[' || ch == '(') {
            if (depth == (int)sizeof stack)
                return ms_err_set(err, MS_ERR_INPUT, "malformed header: nesting deeper than %d",
                                  (int)sizeof stack);
            stack[depth++] = ch == '[' ? ']' : ')';
            c->p++;
        } else if (ch == ']' || ch == ')') {
            if (depth == 0 || stack[depth - 1] != (char)ch)
                return expected(c, "a value", err);
            depth--;
            c->p++;
        } else if (ch == '\'' || ch == '"') {
            if ((rc = parse_str(c, &s, &n, "a value", err)) != MS_OK)
                return rc;
        } else if (is_ident(ch) || ch == '-' || ch == '+' || ch == '.') {
            while (c->p < c->end &&
                   (is_ident(*c->p) || *c->p == '-' || *c->p == '+' || *c->p == '.'))
                c->p++;
        } else if (ch == ',' && depth > 0) {
            c->p++;
        } else {
            return expected(c, "a value", err);
        }
    } while (depth > 0);
    return MS_OK;
}

/* Split a type string like '<f4', '|u1', '<M8[ns]' into byte order, kind and size. */
static void classify_descr(struct ms_npy_header *h, const uint8_t *s, size_t n)
{
    size_t i = 0;
    uint32_t size = 0;

    printable(h->descr, sizeof h->descr, s, n);
    if (i < n && (s[i] == '<' || s[i] == '>' || s[i] == '=' || s[i] == '|'))
        h->byteorder = (char)s[i++];
    if (i >= n || !strchr("fiucbOSUVMm?", s[i]) || s[i] == '\0')
        return; /* kind stays 0: unknown */
    h->kind = s[i] == '?' ? 'b' : (char)s[i];
    i++;
    while (i < n && s[i] >= '0' && s[i] <= '9' && size < 100000000)
        size = size * 10 + (uint32_t)(s[i++] - '0');
    /* datetimes carry a unit ('<M8[ns]'); anything else after the size is not a type we know */
    if (i < n && !((h->kind == 'M' || h->kind == 'm') && s[i] == '[')) {
        h->kind = 0;
        return;
    }
    if (size == 0 && (h->kind == 'b' || h->kind == 'O'))
        size = h->kind == 'b' ? 1 : 8;
    h->itemsize = size;
}

static int parse_descr(struct cur *c, struct ms_npy_header *h, struct ms_err *err)
{
    const uint8_t *s, *start = c->p;
    size_t n;
    int rc;

    if (c->p < c->end && *c->p == '[') {
        if ((rc = skip_value(c, err)) != MS_OK)
            return rc;
        h->structured = 1;
        printable(h->descr, sizeof h->descr, start, (size_t)(c->p - start));
        return MS_OK;
    }
    if ((rc = parse_str(c, &s, &n, "a type string like '<f4' for 'descr'", err)) != MS_OK)
        return rc;
    classify_descr(h, s, n);
    return MS_OK;
}

static int parse_bool(struct cur *c, int *out, struct ms_err *err)
{
    const size_t left = (size_t)(c->end - c->p);

    if (left >= 4 && memcmp(c->p, "True", 4) == 0 && (left == 4 || !is_ident(c->p[4]))) {
        *out = 1;
        c->p += 4;
    } else if (left >= 5 && memcmp(c->p, "False", 5) == 0 && (left == 5 || !is_ident(c->p[5]))) {
        *out = 0;
        c->p += 5;
    } else {
        return expected(c, "True or False for 'fortran_order'", err);
    }
    return MS_OK;
}

static int parse_shape(struct cur *c, struct ms_npy_header *h, struct ms_err *err)
{
    int trailing_comma = 0;

    if (c->p >= c->end || *c->p != '(')
        return expected(c, "a tuple like (2, 3) for 'shape'", err);
    c->p++;
    h->rank = 0;
    for (;;) {
        uint64_t v = 0;
        skip_ws(c);
        if (c->p < c->end && *c->p == ')')
            break;
        if (c->p >= c->end || *c->p < '0' || *c->p > '9')
            return expected(c, "a dimension or ')' in 'shape'", err);
        const uint8_t *digits = c->p;
        while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
            if (ms_mul_u64(v, 10, (unsigned long long *)&v) ||
                ms_add_u64(v, (uint64_t)(*c->p - '0'), (unsigned long long *)&v))
                return ms_err_set(
                    err, MS_ERR_INPUT,
                    "malformed header: shape dimension at byte %zu does not fit in 64 bits",
                    (size_t)(digits - c->base));
            c->p++;
        }
        /* Python 2 wrote longs as 3L; numpy still reads such files */
        if (c->p < c->end && (*c->p == 'L' || *c->p == 'l'))
            c->p++;
        if (h->rank == MS_NPY_MAX_RANK)
            return ms_err_set(err, MS_ERR_INPUT,
                              "malformed header: shape has more than %d dimensions",
                              MS_NPY_MAX_RANK);
        h->shape[h->rank++] = v;
        trailing_comma = 0;
        skip_ws(c);
        if (c->p < c->end && *c->p == ',') {
            c->p++;
            trailing_comma = 1;
        } else if (c->p >= c->end || *c->p != ')') {
            return expected(c, "',' or ')' in 'shape'", err);
        }
    }
    c->p++; /* the ')' */
    if (h->rank == 1 && !trailing_comma)
        return ms_err_set(err, MS_ERR_INPUT,
                          "malformed header: 'shape' is (%" PRIu64 "), not a tuple (a 1-element "
                          "tuple is written (%" PRIu64 ",))",
                          h->shape[0], h->shape[0]);
    return MS_OK;
}

int ms_npy_parse_header(const uint8_t *buf, size_t len, struct ms_npy_header *h, struct ms_err *err)
{
    enum { SEEN_DESCR = 1, SEEN_FORTRAN = 2, SEEN_SHAPE = 4 };
    struct cur c;
    int seen = 0, rc;

    if ((rc = ms_npy_parse_preamble(buf, len, h, err)) != MS_OK)
        return rc;
    if (h->data_offset > len)
        return ms_err_set(err, MS_ERR_INPUT,
                          "header length %" PRIu32 " goes beyond the end of the file (the header "
                          "ends at byte %" PRIu64 ", the file has %zu bytes)",
                          h->header_len, h->data_offset, len);
    c.base = buf;
    c.p = buf + (h->major == 1 ? 10 : 12);
    c.end = buf + h->data_offset;

    skip_ws(&c);
    if (c.p >= c.end || *c.p != '{')
        return expected(&c, "'{' opening the header dict", err);
    c.p++;
    for (;;) {
        const uint8_t *key;
        size_t klen;
        int bit;

        skip_ws(&c);
        if (c.p < c.end && *c.p == '}')
            break;
        if ((rc = parse_str(&c, &key, &klen, "a quoted key or '}'", err)) != MS_OK)
            return rc;
        if (klen == 5 && memcmp(key, "descr", 5) == 0)
            bit = SEEN_DESCR;
        else if (klen == 13 && memcmp(key, "fortran_order", 13) == 0)
            bit = SEEN_FORTRAN;
        else if (klen == 5 && memcmp(key, "shape", 5) == 0)
            bit = SEEN_SHAPE;
        else {
            char k[48];
            printable(k, sizeof k, key, klen);
            return ms_err_set(err, MS_ERR_INPUT,
                              "malformed header: unexpected key '%s' (expected 'descr', "
                              "'fortran_order' and 'shape')",
                              k);
        }
        if (seen & bit)
            return ms_err_set(err, MS_ERR_INPUT, "malformed header: duplicate key '%.*s'",
                              (int)klen, (const char *)key);
        seen |= bit;
        skip_ws(&c);
        if (c.p >= c.end || *c.p != ':')
            return expected(&c, "':' after a key", err);
        c.p++;
        skip_ws(&c);
        if (bit == SEEN_DESCR)
            rc = parse_descr(&c, h, err);
        else if (bit == SEEN_FORTRAN)
            rc = parse_bool(&c, &h->fortran_order, err);
        else
            rc = parse_shape(&c, h, err);
        if (rc != MS_OK)
            return rc;
        skip_ws(&c);
        if (c.p < c.end && *c.p == ',')
            c.p++;
        else if (c.p >= c.end || *c.p != '}')
            return expected(&c, "',' or '}' in the header dict", err);
    }
    c.p++; /* the '}' */
    skip_ws(&c);
    if (c.p < c.end)
        return expected(&c, "only spaces after the header dict", err);
    if (seen != (SEEN_DESCR | SEEN_FORTRAN | SEEN_SHAPE))
        return ms_err_set(err, MS_ERR_INPUT,
                          "malformed header: no '%s' key (a .npy header has 'descr', "
                          "'fortran_order' and 'shape')",
                          !(seen & SEEN_DESCR)     ? "descr"
                          : !(seen & SEEN_FORTRAN) ? "fortran_order"
                                                   : "shape");
    return MS_OK;
}

int ms_npy_data_bytes(const struct ms_npy_header *h, uint64_t *bytes, struct ms_err *err)
{
    unsigned long long total = h->itemsize;
    int overflow = 0;

    /* A zero dimension makes the array empty whatever the others say. */
    for (int i = 0; i < h->rank; i++)
        if (h->shape[i] == 0)
            total = 0;
    for (int i = 0; i < h->rank && total; i++)
        overflow |= ms_mul_u64(total, h->shape[i], &total);
    if (overflow) {
        char shape[128];
        ms_npy_format_shape(h, shape, sizeof shape);
        return ms_err_set(err, MS_ERR_INPUT, "shape %s of %s is too large (over 2^64 bytes)", shape,
                          ms_npy_type_name(h));
    }
    *bytes = total;
    return MS_OK;
}

void ms_npy_format_shape(const struct ms_npy_header *h, char *buf, size_t cap)
{
    size_t len = 0;

    if (cap < 8) {
        if (cap)
            buf[0] = '\0';
        return;
    }
    buf[len++] = '(';
    for (int i = 0; i < h->rank; i++) {
        char dim[32];
        const int n = snprintf(dim, sizeof dim, "%s%" PRIu64, i ? ", " : "", h->shape[i]);
        if (len + (size_t)n + 5 > cap) {
            memcpy(buf + len, "...)", 5);
            return;
        }
        memcpy(buf + len, dim, (size_t)n);
        len += (size_t)n;
    }
    if (h->rank == 1)
        buf[len++] = ',';
    buf[len++] = ')';
    buf[len] = '\0';
}

const char *ms_npy_type_name(const struct ms_npy_header *h)
{
    if (h->structured)
        return "structured";
    switch (h->kind) {
    case 'f':
        switch (h->itemsize) {
        case 2: return "float16";
        case 4: return "float32";
        case 8: return "float64";
        case 12: return "float96";
        case 16: return "float128";
        }
        break;
    case 'i':
        switch (h->itemsize) {
        case 1: return "int8";
        case 2: return "int16";
        case 4: return "int32";
        case 8: return "int64";
        }
        break;
    case 'u':
        switch (h->itemsize) {
        case 1: return "uint8";
        case 2: return "uint16";
        case 4: return "uint32";
        case 8: return "uint64";
        }
        break;
    case 'c':
        switch (h->itemsize) {
        case 8: return "complex64";
        case 16: return "complex128";
        case 32: return "complex256";
        }
        break;
    case 'b': return "bool";
    case 'O': return "object";
    case 'S': return "bytes";
    case 'U': return "str";
    case 'V': return "void";
    case 'M': return "datetime64";
    case 'm': return "timedelta64";
    }
    return "unknown";
}

/* ---------------------------------------------------------------------- */
/* Byte sources: a plain file read with pread(), a zstd stream             */
/* ---------------------------------------------------------------------- */

/* Data on disk is little-endian; emb.h wants host order. */
static void to_host_order(void *p, uint64_t n_elems, size_t itemsize)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    uint8_t *b = p;
    for (uint64_t i = 0; i < n_elems; i++, b += itemsize)
        for (size_t j = 0; j < itemsize / 2; j++) {
            const uint8_t t = b[j];
            b[j] = b[itemsize - 1 - j];
            b[itemsize - 1 - j] = t;
        }
#else
    (void)p;
    (void)n_elems;
    (void)itemsize;
#endif
}

static int open_input(const char *path, struct stat *st, struct ms_err *err)
{
    const int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        return ms_err_set(err, MS_ERR_INPUT, "cannot open '%s': %s", path, strerror(errno)), -1;
    if (fstat(fd, st) != 0) {
        ms_err_set(err, MS_ERR_RUNTIME, "cannot stat '%s': %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    if (S_ISDIR(st->st_mode)) {
        ms_err_set(err, MS_ERR_INPUT, "cannot read '%s': %s", path, strerror(EISDIR));
        close(fd);
        return -1;
    }
    return fd;
}

/* Read and parse the header: the preamble in two steps (10 bytes, then 2
 * more for version 2 and 3) so that a stream never reads past the data
 * offset, then the dict into a buffer of exactly the announced length. */
static int read_header(struct ms_zin *s, const char *path, struct ms_npy_header *h,
                       struct ms_err *err)
{
    uint8_t pre[MS_NPY_PREAMBLE];
    uint8_t *buf = NULL;
    uint64_t got, more = 0;
    int rc;

    if ((rc = ms_zin_read(s, pre, 10, &got, err)) != MS_OK)
        return rc;
    if (got == 10 && pre[6] >= 2 && (rc = ms_zin_read(s, pre + 10, 2, &more, err)) != MS_OK)
        return rc;
    got += more;
    if ((rc = ms_npy_parse_preamble(pre, (size_t)got, h, err)) != MS_OK)
        return ms_err_prefix(err, "'%s'", path);
    if (!(buf = ms_malloc((size_t)h->data_offset, err)))
        return err->status;
    memcpy(buf, pre, (size_t)got);
    if ((rc = ms_zin_read(s, buf + got, h->data_offset - got, &more, err)) != MS_OK)
        goto done;
    if (got + more < h->data_offset) {
        rc = ms_err_set(err, MS_ERR_INPUT,
                        "'%s': header length %" PRIu32 " goes beyond the end of the %s (the "
                        "header ends at byte %" PRIu64 ", the %s has %" PRIu64 " bytes)",
                        path, h->header_len, ms_zin_is_zstd(s) ? "decompressed data" : "file",
                        h->data_offset, ms_zin_is_zstd(s) ? "decompressed data" : "file",
                        got + more);
        goto done;
    }
    if ((rc = ms_npy_parse_header(buf, (size_t)h->data_offset, h, err)) != MS_OK)
        ms_err_prefix(err, "'%s'", path);
done:
    free(buf);
    return rc;
}

static const char *byteorder_word(const struct ms_npy_header *h)
{
    return h->byteorder == '>' && h->itemsize > 1 ? "big-endian " : "";
}

static int is_little_endian(const struct ms_npy_header *h)
{
    return h->byteorder == '<' || h->byteorder == '=' || h->byteorder == 0 ||
           (h->byteorder == '|' && h->itemsize == 1);
}

/* Message for the bytes the header promises against the bytes there are. */
static int size_mismatch(const char *where, const struct ms_npy_header *h, uint64_t need,
                         uint64_t have, const char *have_what, struct ms_err *err)
{
    char shape[128];

    ms_npy_format_shape(h, shape, sizeof shape);
    if (have < need)
        return ms_err_set(err, MS_ERR_INPUT,
                          "%s: truncated: shape %s %s needs %" PRIu64 " bytes of data, %s %" PRIu64,
                          where, shape, ms_npy_type_name(h), need, have_what, have);
    return ms_err_set(err, MS_ERR_INPUT,
                      "%s: trailing data: shape %s %s needs %" PRIu64 " bytes of data, %s %" PRIu64,
                      where, shape, ms_npy_type_name(h), need, have_what, have);
}

/* After the last array byte of a stream, the stream must end (this also
 * makes zstd check the frame's checksum). Counts at most 1 MiB of excess. */
static int expect_end(struct ms_zin *s, const struct ms_npy_header *h, uint64_t need,
                      struct ms_err *err)
{
    uint8_t extra[64];
    uint64_t got, total = 0;
    int rc;

    do {
        if ((rc = ms_zin_read(s, extra, sizeof extra, &got, err)) != MS_OK)
            return rc;
        total += got;
    } while (got == sizeof extra && total < (1u << 20));
    if (total)
        return size_mismatch(ms_zin_where(s), h, need, need + total,
                             total < (1u << 20) ? "the stream has" : "the stream has at least",
                             err);
    return MS_OK;
}

/* ---------------------------------------------------------------------- */
/* Embedding backends                                                      */
/* ---------------------------------------------------------------------- */

static int check_embedding_header(const char *path, const struct ms_npy_header *h,
                                  enum ms_dtype *dtype, struct ms_err *err)
{
    char shape[128];

    if (h->kind == 'f' && (h->itemsize == 4 || h->itemsize == 2) && is_little_endian(h)) {
        *dtype = h->itemsize == 4 ? MS_DTYPE_F32 : MS_DTYPE_F16;
    } else if (h->kind == 'f' && (h->itemsize == 4 || h->itemsize == 2) && h->byteorder == '>') {
        return ms_err_set(err, MS_ERR_INPUT,
                          "'%s': unsupported element type '%s' (big-endian %s); expected "
                          "little-endian float32 '<f4' or float16 '<f2' (numpy: a.astype('<f%u'))",
                          path, h->descr, ms_npy_type_name(h), h->itemsize);
    } else if (h->structured) {
        return ms_err_set(err, MS_ERR_INPUT,
                          "'%s': unsupported element type %s (a structured dtype); expected "
                          "float32 '<f4' or float16 '<f2'",
                          path, h->descr);
    } else {
        return ms_err_set(err, MS_ERR_INPUT,
                          "'%s': unsupported element type '%s' (%s%s); expected float32 '<f4' "
                          "or float16 '<f2'",
                          path, h->descr, byteorder_word(h), ms_npy_type_name(h));
    }
    if (h->rank != 2 && h->rank != 3) {
        ms_npy_format_shape(h, shape, sizeof shape);
        return ms_err_set(err, MS_ERR_INPUT,
                          "'%s': expected a 2-D [tokens, dim] or 3-D [rows, tokens, dim] array, "
                          "got %d-D shape %s",
                          path, h->rank, shape);
    }
    if (h->fortran_order)
        return ms_err_set(err, MS_ERR_INPUT,
                          "'%s': fortran_order is True; only C-order arrays are supported "
                          "(numpy.ascontiguousarray)",
                          path);
    return MS_OK;
}

/* Fill what both backends report alike. */
static void fill_raw(struct ms_raw *raw, const char *path, const struct ms_npy_header *h,
                     enum ms_dtype dtype)
{
    raw->dtype = dtype;
    raw->rank = h->rank;
    for (int i = 0; i < 3; i++)
        raw->shape[i] = i < h->rank ? h->shape[i] : 0;
    snprintf(raw->where, sizeof raw->where, "'%s'", path);
    raw->lengths = NULL;
    raw->n_lengths = 0;
    raw->lengths_where[0] = '\0';
}

/* Storage tokens: [T, dim] holds T, [N, L, dim] holds N * L (no overflow:
 * the data size was computed without one). */
static uint64_t storage_tokens(const struct ms_npy_header *h)
{
    return h->rank == 3 ? h->shape[0] * h->shape[1] : h->shape[0];
}

struct npy_file {
    int fd;
    uint64_t data_offset;
    uint64_t tok_bytes; /* dim * itemsize */
    uint64_t n_tokens;  /* storage tokens */
    size_t itemsize;
    char where[256];
};

static int check_span(const char *where, uint64_t first, uint64_t n, uint64_t n_tokens,
                      struct ms_err *err)
{
    if (first > n_tokens || n > n_tokens - first)
        return ms_err_set(err, MS_ERR_RUNTIME,
                          "%s: tokens %" PRIu64 "..%" PRIu64 " requested of %" PRIu64, where, first,
                          first + n, n_tokens);
    return MS_OK;
}

static int npy_read_span(void *impl, uint64_t first, uint64_t n, void *dst, struct ms_err *err)
{
    struct npy_file *f = impl;
    const uint64_t bytes = n * f->tok_bytes, off = f->data_offset + first * f->tok_bytes;
    size_t got = 0;
    int rc;

    if ((rc = check_span(f->where, first, n, f->n_tokens, err)) != MS_OK)
        return rc;
    if (bytes > SIZE_MAX)
        return ms_err_set(err, MS_ERR_RUNTIME, "%s: read of %" PRIu64 " bytes is too large",
                          f->where, bytes);
    if (ms_pread_full(f->fd, dst, (size_t)bytes, off, &got) != 0)
        return ms_err_set(err, MS_ERR_RUNTIME, "cannot read %s: %s", f->where, strerror(errno));
    if (got < bytes)
        return ms_err_set(err, MS_ERR_RUNTIME,
                          "%s: unexpected end of file at byte %" PRIu64
                          " (was it changed while being read?)",
                          f->where, off + got);
    to_host_order(dst, bytes / f->itemsize, f->itemsize);
    return MS_OK;
}

static void npy_close(void *impl)
{
    struct npy_file *f = impl;

    if (f) {
        close(f->fd);
        free(f);
    }
}

static const struct ms_backend_ops npy_ops = { .read_span = npy_read_span, .close = npy_close };

int ms_npy_open(const char *path, struct ms_raw *raw, struct ms_err *err)
{
    struct ms_npy_header h;
    struct npy_file *f = NULL;
    struct ms_zin *s = NULL;
    struct stat st;
    enum ms_dtype dtype;
    uint64_t need, have;
    int fd, rc;

    if ((fd = open_input(path, &st, err)) < 0)
        return err->status;
    snprintf(raw->where, sizeof raw->where, "'%s'", path);
    if (!S_ISREG(st.st_mode)) {
        /* data is read at random offsets; a pipe can only be read as .npy.zst */
        rc =
            ms_err_set(err, MS_ERR_INPUT,
                       "'%s': not a regular file (a .npy input is read at random positions)", path);
        goto fail;
    }
    /* the header in order from the start; the data later by pread() */
    if ((rc = ms_zin_open_fd(&s, fd, 0, raw->where, MS_ZIN_PLAIN, err)) != MS_OK ||
        (rc = read_header(s, path, &h, err)) != MS_OK ||
        (rc = check_embedding_header(path, &h, &dtype, err)) != MS_OK)
        goto fail;
    ms_zin_close(s);
    s = NULL;
    if ((rc = ms_npy_data_bytes(&h, &need, err)) != MS_OK) {
        ms_err_prefix(err, "'%s'", path);
        goto fail;
    }
    have = (uint64_t)st.st_size - h.data_offset;
    if (have != need) {
        rc = size_mismatch(raw->where, &h, need, have, "the file has", err);
        goto fail;
    }
    if (!(f = ms_calloc(1, sizeof *f, err))) {
        rc = err->status;
        goto fail;
    }
    f->fd = fd;
    f->data_offset = h.data_offset;
    f->itemsize = ms_dtype_size(dtype);
    f->tok_bytes = h.shape[h.rank - 1] * f->itemsize;
    f->n_tokens = storage_tokens(&h);
    fill_raw(raw, path, &h, dtype);
    snprintf(f->where, sizeof f->where, "%s", raw->where);
    raw->data_bytes = need;
    raw->sequential_only = 0;
    raw->concurrent = 1; /* pread at an offset: no shared file position */
    raw->ops = &npy_ops;
    raw->impl = f;
    return MS_OK;
fail:
    ms_zin_close(s);
    close(fd);
    return rc;
}

struct zst_file {
    struct ms_zin *z;         /* the stream; NULL when the frames are indexed */
    struct ms_zframes *index; /* several frames of known sizes: read at any position */
    int threads;
    struct ms_npy_header h;
    uint64_t data_bytes; /* decompressed array bytes the header promises */
    uint64_t tok_bytes;
    uint64_t n_tokens;
    uint64_t next; /* first storage token not yet consumed */
    size_t itemsize;
    char where[256];
};

static int zst_truncated(struct zst_file *f, struct ms_err *err)
{
    return size_mismatch(f->where, &f->h, f->data_bytes, ms_zin_produced(f->z) - f->h.data_offset,
                         "the stream ends after", err);
}

static int zst_read_span(void *impl, uint64_t first, uint64_t n, void *dst, struct ms_err *err)
{
    struct zst_file *f = impl;
    uint64_t got;
    int rc;

    if ((rc = check_span(f->where, first, n, f->n_tokens, err)) != MS_OK)
        return rc;
    if (f->index) {
        if ((rc = ms_zframes_read(f->index, f->h.data_offset + first * f->tok_bytes,
                                  n * f->tok_bytes, dst, f->threads, err)) != MS_OK)
            return rc;
        to_host_order(dst, n * f->tok_bytes / f->itemsize, f->itemsize);
        return MS_OK;
    }
    if (first < f->next)
        return ms_err_set(err, MS_ERR_RUNTIME,
                          "%s is a stream: token %" PRIu64 " requested after token %" PRIu64
                          " was read",
                          f->where, first, f->next);
    const uint64_t skip = (first - f->next) * f->tok_bytes, bytes = n * f->tok_bytes;
    if ((rc = ms_zin_read(f->z, NULL, skip, &got, err)) != MS_OK)
        return rc;
    if (got < skip)
        return zst_truncated(f, err);
    f->next = first;
    if ((rc = ms_zin_read(f->z, dst, bytes, &got, err)) != MS_OK)
        return rc;
    if (got < bytes)
        return zst_truncated(f, err);
    f->next = first + n;
    if (f->next == f->n_tokens && (rc = expect_end(f->z, &f->h, f->data_bytes, err)) != MS_OK)
        return rc;
    to_host_order(dst, bytes / f->itemsize, f->itemsize);
    return MS_OK;
}

static void zst_close(void *impl)
{
    struct zst_file *f = impl;

    if (f) {
        ms_zin_close(f->z);
        ms_zframes_free(f->index);
        free(f);
    }
}

static void zst_set_threads(void *impl, int threads)
{
    ((struct zst_file *)impl)->threads = threads;
}

static const struct ms_backend_ops zst_ops = { .read_span = zst_read_span,
                                               .close = zst_close,
                                               .set_threads = zst_set_threads };

int ms_npy_zst_open(const char *path, struct ms_raw *raw, struct ms_err *err)
{
    struct zst_file *f;
    struct stat st;
    enum ms_dtype dtype;
    int fd, rc;

    if ((fd = open_input(path, &st, err)) < 0)
        return err->status;
    if (!(f = ms_calloc(1, sizeof *f, err))) {
        close(fd);
        return err->status;
    }
    snprintf(f->where, sizeof f->where, "'%s'", path);
    if ((rc = ms_zin_open_fd(&f->z, fd, 1, f->where, MS_ZIN_AUTO, err)) != MS_OK)
        goto fail;
    if (!ms_zin_is_zstd(f->z)) { /* say what came instead, if it is a plain .npy */
        uint8_t magic[6];
        uint64_t got;
        if ((rc = ms_zin_read(f->z, magic, sizeof magic, &got, err)) != MS_OK)
            goto fail;
        if (got == 6 && memcmp(magic, npy_magic, 6) == 0 && !S_ISREG(st.st_mode))
            rc = ms_err_set(err, MS_ERR_INPUT,
                            "'%s': a plain .npy through a pipe (it is read at random positions: "
                            "give a file, or compress it with zstd)",
                            path);
        else
            rc = ms_err_set(err, MS_ERR_INPUT, "'%s': not a zstd file (bad magic bytes)", path);
        goto fail;
    }
    if ((rc = read_header(f->z, path, &f->h, err)) != MS_OK ||
        (rc = check_embedding_header(path, &f->h, &dtype, err)) != MS_OK)
        goto fail;
    if ((rc = ms_npy_data_bytes(&f->h, &f->data_bytes, err)) != MS_OK) {
        ms_err_prefix(err, "'%s'", path);
        goto fail;
    }
    f->itemsize = ms_dtype_size(dtype);
    f->tok_bytes = f->h.shape[f->h.rank - 1] * f->itemsize;
    f->n_tokens = storage_tokens(&f->h);
    if (f->data_bytes == 0 && (rc = expect_end(f->z, &f->h, 0, err)) != MS_OK)
        goto fail;
    /* Several frames of declared sizes that add up to exactly the array: read through the
     * index. Anything else (one frame, short, trailing data) stays a stream, whose messages
     * say what is wrong. */
    f->threads = 1;
    if (S_ISREG(st.st_mode) && f->data_bytes > 0 && ms_zframes_index(&f->index, fd, f->where)) {
        if (ms_zframes_size(f->index) == f->h.data_offset + f->data_bytes) {
            ms_zin_close(f->z); /* closes fd; the index has its own */
            f->z = NULL;
        } else {
            ms_zframes_free(f->index);
            f->index = NULL;
        }
    }
    fill_raw(raw, path, &f->h, dtype);
    raw->data_bytes = S_ISREG(st.st_mode) ? (uint64_t)st.st_size : 0;
    raw->sequential_only = f->index == NULL;
    raw->ops = &zst_ops;
    raw->impl = f;
    return MS_OK;
fail:
    zst_close(f);
    return rc;
}

/* ---------------------------------------------------------------------- */
/* 1-D integer arrays (lengths)                                            */
/* ---------------------------------------------------------------------- */

static int check_int_header(const char *path, const struct ms_npy_header *h, struct ms_err *err)
{
    char shape[128];
    const int known = (h->kind == 'i' || h->kind == 'u') && (h->itemsize == 1 || h->itemsize == 2 ||
                                                             h->itemsize == 4 || h->itemsize == 8);

    if (!known || !is_little_endian(h)) {
        if (h->structured)
            return ms_err_set(err, MS_ERR_INPUT,
                              "'%s': unsupported element type %s (a structured dtype); expected "
                              "an integer type such as '<i8'",
                              path, h->descr);
        return ms_err_set(err, MS_ERR_INPUT,
                          "'%s': unsupported element type '%s' (%s%s); expected %san integer "
                          "type such as '<i8'",
                          path, h->descr, byteorder_word(h), ms_npy_type_name(h),
                          known ? "little-endian " : "");
    }
    if (h->rank != 1) {
        ms_npy_format_shape(h, shape, sizeof shape);
        return ms_err_set(err, MS_ERR_INPUT,
                          "'%s': expected a 1-D integer array, got %d-D shape %s", path, h->rank,
                          shape);
    }
    return MS_OK;
}

/* Little-endian integer of `size` bytes at b to int64 (sign-extended for 'i'). */
static int load_int(const uint8_t *b, size_t size, char kind, int64_t *out)
{
    uint64_t v = 0;

    for (size_t i = size; i-- > 0;)
        v = v << 8 | b[i];
    if (kind == 'i' && size < 8 && (v >> (8 * size - 1)) & 1)
        v |= ~(uint64_t)0 << (8 * size);
    else if (kind == 'u' && v > (uint64_t)INT64_MAX)
        return -1;
    memcpy(out, &v, sizeof v); /* two's complement reinterpretation, well defined */
    return 0;
}

int ms_npy_read_ints(const char *path, int64_t **values, uint64_t *n, struct ms_err *err)
{
    struct ms_npy_header h;
    struct ms_zin *s = NULL;
    struct stat st;
    uint8_t chunk[65536];
    char where[256];
    int64_t *vals = NULL;
    uint64_t need, count, cap = 0, done = 0, got;
    int fd, rc;

    *values = NULL;
    *n = 0;
    if ((fd = open_input(path, &st, err)) < 0)
        return err->status;
    snprintf(where, sizeof where, "'%s'", path);
    /* The format from the content, read in order (a pipe works): lengths
     * files are often named by hand. */
    if ((rc = ms_zin_open_fd(&s, fd, 1, where, MS_ZIN_AUTO, err)) != MS_OK)
        return rc;
    const int stream = ms_zin_is_zstd(s) || !S_ISREG(st.st_mode);
    if ((rc = read_header(s, path, &h, err)) != MS_OK ||
        (rc = check_int_header(path, &h, err)) != MS_OK)
        goto done;
    if ((rc = ms_npy_data_bytes(&h, &need, err)) != MS_OK) {
        ms_err_prefix(err, "'%s'", path);
        goto done;
    }
    if (!stream && (uint64_t)st.st_size - h.data_offset != need) {
        rc = size_mismatch(where, &h, need, (uint64_t)st.st_size - h.data_offset, "the file has",
                           err);
        goto done;
    }
    count = h.shape[0];
    /* Grow the array as data arrives, so a header that lies about its size
     * in a small compressed file cannot make us allocate its claim. */
    while (done < count) {
        const uint64_t want =
            count - done < sizeof chunk / h.itemsize ? count - done : sizeof chunk / h.itemsize;
        if ((rc = ms_zin_read(s, chunk, want * h.itemsize, &got, err)) != MS_OK)
            goto done;
        if (got < want * h.itemsize) {
            rc = size_mismatch(where, &h, need, done * h.itemsize + got,
                               stream ? "the stream ends after" : "the file has", err);
            goto done;
        }
        if (done + want > cap) {
            uint64_t ncap = cap ? cap * 2 : want;
            if (ncap < done + want)
                ncap = done + want;
            if (ncap > count)
                ncap = count;
            int64_t *nv = ms_realloc(vals, (size_t)ncap * sizeof *vals, err);
            if (!nv) {
                rc = err->status;
                goto done;
            }
            vals = nv;
            cap = ncap;
        }
        for (uint64_t i = 0; i < want; i++)
            if (load_int(chunk + i * h.itemsize, h.itemsize, h.kind, &vals[done + i])) {
                rc = ms_err_set(err, MS_ERR_INPUT,
                                "'%s': value at index %" PRIu64 " does not fit in int64", path,
                                done + i);
                goto done;
            }
        done += want;
    }
    if (stream && (rc = expect_end(s, &h, need, err)) != MS_OK)
        goto done;
    /* never NULL on success: src.c reads NULL as "no lengths" */
    if (!vals && !(vals = ms_malloc(sizeof *vals, err))) {
        rc = err->status;
        goto done;
    }
    *values = vals;
    *n = count;
    vals = NULL;
    rc = MS_OK;
done:
    free(vals);
    ms_zin_close(s);
    return rc;
}
