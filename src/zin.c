/*
 * zin.c - a forward-only input stream, plain or zstd (zin.h).
 *
 * Input is read with read(2) into ZSTD_DStreamInSize() buffers. The first
 * bytes decide the format (a zstd frame or a skippable frame); in plain mode
 * those bytes are handed out first, then read() goes straight into the
 * caller's buffer. Decompressed data goes straight into the caller's buffer
 * too when the request is large, else through a ZSTD_DStreamOutSize() buffer.
 */
#include "zin.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

struct ms_zin {
    int fd, own_fd;
    int zst;
    ZSTD_DCtx *dctx;
    uint8_t *in, *out;
    size_t in_cap, out_cap;
    ZSTD_inBuffer inb;       /* read but not yet consumed: in[pos, size) */
    size_t out_pos, out_len; /* decompressed bytes not yet handed out: out[out_pos, out_len) */
    int in_eof;
    int at_boundary;   /* the last frame seen is complete (none seen: 0) */
    uint64_t produced; /* bytes handed out so far */
    char where[300];
};

/* A zstd frame (28 b5 2f fd) or a skippable frame (5? 2a 4d 18). */
static int is_zstd_magic(const uint8_t *m)
{
    return (m[0] == 0x28 && m[1] == 0xb5 && m[2] == 0x2f && m[3] == 0xfd) ||
           ((m[0] & 0xf0) == 0x50 && m[1] == 0x2a && m[2] == 0x4d && m[3] == 0x18);
}

/* read() into dst until n bytes or the end of the input. */
static int read_fd(struct ms_zin *z, void *dst, size_t n, size_t *got, struct ms_err *err)
{
    size_t done = 0;

    while (done < n) {
        const ssize_t r = read(z->fd, (char *)dst + done, n - done);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return ms_err_set(err, MS_ERR_RUNTIME, "cannot read %s: %s", z->where, strerror(errno));
        if (r == 0) {
            z->in_eof = 1;
            break;
        }
        done += (size_t)r;
    }
    *got = done;
    return MS_OK;
}

/* Refill the input buffer once it is consumed (one read(): a pipe gives
 * what it has). */
static int fill_input(struct ms_zin *z, struct ms_err *err)
{
    for (;;) {
        const ssize_t r = read(z->fd, z->in, z->in_cap);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return ms_err_set(err, MS_ERR_RUNTIME, "cannot read %s: %s", z->where, strerror(errno));
        z->inb.src = z->in;
        z->inb.size = (size_t)r;
        z->inb.pos = 0;
        z->in_eof = r == 0;
        return MS_OK;
    }
}

int ms_zin_open_fd(struct ms_zin **out, int fd, int own, const char *where, enum ms_zin_mode mode,
                   struct ms_err *err)
{
    struct ms_zin *z = ms_calloc(1, sizeof *z, err);
    size_t got = 0;
    int rc;

    *out = NULL;
    if (!z) {
        if (own)
            close(fd);
        return err->status;
    }
    z->fd = fd;
    z->own_fd = own;
    snprintf(z->where, sizeof z->where, "%s", where);
    z->in_cap = ZSTD_DStreamInSize();
    if (!(z->in = ms_malloc(z->in_cap, err))) {
        ms_zin_close(z);
        return err->status;
    }
    z->inb.src = z->in;
    /* the first four bytes, however a pipe delivers them, tell the format */
    if (mode != MS_ZIN_PLAIN && (rc = read_fd(z, z->in, 4, &got, err)) != MS_OK) {
        ms_zin_close(z);
        return rc;
    }
    z->inb.size = got;
    z->zst = mode != MS_ZIN_PLAIN && got == 4 && is_zstd_magic(z->in);
    if (mode == MS_ZIN_ZSTD && !z->zst) {
        ms_zin_close(z);
        return ms_err_set(err, MS_ERR_INPUT, "%s: not a zstd file (bad magic bytes)", where);
    }
    if (z->zst) {
        z->out_cap = ZSTD_DStreamOutSize();
        if (!(z->out = ms_malloc(z->out_cap, err))) {
            ms_zin_close(z);
            return err->status;
        }
        if (!(z->dctx = ZSTD_createDCtx())) {
            ms_zin_close(z);
            return ms_err_set(err, MS_ERR_RUNTIME, "out of memory creating a zstd context");
        }
    }
    *out = z;
    return MS_OK;
}

int ms_zin_open(struct ms_zin **z, const char *path, enum ms_zin_mode mode, struct ms_err *err)
{
    const int is_stdin = strcmp(path, "-") == 0;
    char where[300];
    struct stat st;
    int fd;

    *z = NULL;
    if (is_stdin) {
        snprintf(where, sizeof where, "'standard input'");
        return ms_zin_open_fd(z, STDIN_FILENO, 0, where, mode, err);
    }
    snprintf(where, sizeof where, "'%s'", path);
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return ms_err_set(err, MS_ERR_INPUT, "cannot open '%s': %s", path, strerror(errno));
    if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
        close(fd);
        return ms_err_set(err, MS_ERR_INPUT, "cannot read '%s': %s", path, strerror(EISDIR));
    }
    return ms_zin_open_fd(z, fd, 1, where, mode, err);
}

/* Decompress at least one byte into dst[0, cap), or report the clean end of
 * the stream with *got = 0. A stream that stops inside a frame is an error. */
static int decode(struct ms_zin *z, void *dst, size_t cap, size_t *got, struct ms_err *err)
{
    ZSTD_outBuffer ob = { dst, cap, 0 };
    int rc;

    for (;;) {
        if (z->inb.pos == z->inb.size && !z->in_eof && (rc = fill_input(z, err)) != MS_OK)
            return rc;
        const size_t in_before = z->inb.pos;
        const size_t ret = ZSTD_decompressStream(z->dctx, &ob, &z->inb);
        if (ZSTD_isError(ret))
            return ms_err_set(err, MS_ERR_INPUT, "%s: corrupt zstd data: %s", z->where,
                              ZSTD_getErrorName(ret));
        /* ret is 0 once a frame is fully decoded and flushed; a call that did
         * nothing (no input left) only hints at the next frame's header size */
        if (ob.pos > 0 || z->inb.pos != in_before)
            z->at_boundary = ret == 0;
        if (ob.pos > 0)
            break;
        if (z->in_eof && z->inb.pos == z->inb.size) {
            if (!z->at_boundary)
                return ms_err_set(err, MS_ERR_INPUT,
                                  "%s: truncated zstd data (the file ends inside a frame)",
                                  z->where);
            break;
        }
    }
    *got = ob.pos;
    return MS_OK;
}

/* Plain bytes: what the format check read first, then read() itself. */
static int read_plain(struct ms_zin *z, void *dst, uint64_t n, uint64_t *got, struct ms_err *err)
{
    uint64_t done = 0;
    size_t g;
    int rc;

    while (done < n) {
        size_t want = n - done > (1u << 30) ? (1u << 30) : (size_t)(n - done);
        if (z->inb.pos < z->inb.size) {
            const size_t avail = z->inb.size - z->inb.pos;
            g = want < avail ? want : avail;
            if (dst)
                memcpy((char *)dst + done, z->in + z->inb.pos, g);
            z->inb.pos += g;
        } else if (z->in_eof) {
            break;
        } else if (dst) {
            if ((rc = read_fd(z, (char *)dst + done, want, &g, err)) != MS_OK)
                return rc;
        } else { /* skipping: through the input buffer */
            if ((rc = fill_input(z, err)) != MS_OK)
                return rc;
            continue;
        }
        done += g;
    }
    *got = done;
    return MS_OK;
}

int ms_zin_read(struct ms_zin *z, void *dst, uint64_t n, uint64_t *got, struct ms_err *err)
{
    uint64_t done = 0;
    size_t g;
    int rc;

    if (!z->zst) {
        rc = read_plain(z, dst, n, &done, err);
        z->produced += done;
        *got = done;
        return rc;
    }
    while (done < n) {
        if (z->out_pos < z->out_len) {
            const size_t avail = z->out_len - z->out_pos;
            const size_t take = n - done < avail ? (size_t)(n - done) : avail;
            if (dst)
                memcpy((char *)dst + done, z->out + z->out_pos, take);
            z->out_pos += take;
            done += take;
            continue;
        }
        if (dst && n - done >= z->out_cap) { /* large reads decompress straight into dst */
            const uint64_t left = n - done;
            const size_t cap = left > SIZE_MAX ? SIZE_MAX : (size_t)left;
            if ((rc = decode(z, (char *)dst + done, cap, &g, err)) != MS_OK)
                return rc;
            done += g;
        } else {
            if ((rc = decode(z, z->out, z->out_cap, &g, err)) != MS_OK)
                return rc;
            z->out_pos = 0;
            z->out_len = g;
        }
        if (g == 0)
            break;
    }
    z->produced += done;
    *got = done;
    return MS_OK;
}

int ms_zin_is_zstd(const struct ms_zin *z)
{
    return z->zst;
}

uint64_t ms_zin_produced(const struct ms_zin *z)
{
    return z->produced;
}

const char *ms_zin_where(const struct ms_zin *z)
{
    return z->where;
}

void ms_zin_close(struct ms_zin *z)
{
    if (!z)
        return;
    ZSTD_freeDCtx(z->dctx);
    free(z->in);
    free(z->out);
    if (z->own_fd && z->fd >= 0)
        close(z->fd);
    free(z);
}
