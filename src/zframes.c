/*
 * zframes.c - index the frames of a zstd file and decompress ranges on threads (zframes.h).
 *
 * The index is built by walking the file's frame and block headers with pread (RFC 8878:
 * a frame header, then blocks of a 3-byte header each, then an optional checksum), so no
 * data is decompressed and nothing but the headers is read. Any doubt (a reserved bit, a
 * dictionary, a missing size, a frame that runs past the end) gives up the index: the stream
 * reader then reads the file and reports the trouble in its words.
 *
 * A read takes the frames that overlap its range; each thread decompresses whole frames in
 * turn with its own context, straight into the destination in one call when the frame lies
 * inside the range, else through a small buffer from which only the overlap is copied
 * (stopping at the end of the range). A frame's compressed bytes are mapped while it is
 * decompressed and unmapped after, so memory stays small whatever the file size.
 */
#include "zframes.h"
#include "src.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#define OUT_CHUNK   (1u << 20)
#define MAX_THREADS 256

struct frame {
    uint64_t comp_off, comp_size; /* in the file */
    uint64_t dec_off, dec_size;   /* in the decompressed content */
};

struct ms_zframes {
    int fd;
    struct frame *frames;
    size_t n;
    uint64_t size;
    char where[256];
};

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* The frame starting at off: its compressed size and decompressed size; 0 when it cannot be
 * indexed (or is not a frame). *skippable for a skippable frame (no content). */
static int walk_frame(int fd, uint64_t off, uint64_t file_size, uint64_t *comp, uint64_t *dec,
                      int *skippable)
{
    uint8_t h[18];
    size_t got;

    if (ms_pread_full(fd, h, sizeof h, off, &got) != 0 || got < 8)
        return 0;
    const uint32_t magic = le32(h);
    *skippable = (magic & 0xFFFFFFF0u) == 0x184D2A50u;
    if (*skippable) {
        *comp = 8 + (uint64_t)le32(h + 4);
        *dec = 0;
        return off + *comp <= file_size;
    }
    if (magic != 0xFD2FB528u)
        return 0;
    const uint8_t fhd = h[4];
    const int fcs_flag = fhd >> 6, single = (fhd >> 5) & 1, checksum = (fhd >> 2) & 1;
    const int did_flag = fhd & 3;
    static const int did_size[4] = { 0, 1, 2, 4 };
    static const int fcs_size[4] = { 0, 2, 4, 8 };
    if (fhd & 0x08) /* reserved bit */
        return 0;
    if (did_flag) /* needs a dictionary: the stream reader says so */
        return 0;
    const int fcs = fcs_flag == 0 ? single : fcs_size[fcs_flag];
    if (fcs == 0) /* no content size */
        return 0;
    const uint64_t hsize =
        4 + 1 + (uint64_t)(single ? 0 : 1) + (uint64_t)did_size[did_flag] + (uint64_t)fcs;
    if (got < hsize)
        return 0;
    const unsigned long long cs = ZSTD_getFrameContentSize(h, (size_t)got);
    if (cs == ZSTD_CONTENTSIZE_UNKNOWN || cs == ZSTD_CONTENTSIZE_ERROR || cs > MS_ZFRAME_MAX)
        return 0;
    uint64_t pos = off + hsize;
    for (;;) {
        uint8_t b[3];
        if (ms_pread_full(fd, b, 3, pos, &got) != 0 || got < 3)
            return 0;
        const uint32_t bh = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16;
        const int last = bh & 1, type = (bh >> 1) & 3;
        const uint64_t bsize = bh >> 3;
        if (type == 3)
            return 0;
        pos += 3 + (type == 1 ? 1 : bsize);
        if (pos > file_size)
            return 0;
        if (last)
            break;
    }
    pos += checksum ? 4 : 0;
    if (pos > file_size)
        return 0;
    *comp = pos - off;
    *dec = cs;
    return 1;
}

int ms_zframes_index(struct ms_zframes **out, int fd, const char *where)
{
    struct ms_zframes *z = NULL;
    struct stat st;
    uint64_t off = 0, dec = 0;
    size_t cap = 0, data_frames = 0;

    *out = NULL;
    /* fstat, not lseek: the stream reader reads this descriptor from its position */
    if (fstat(fd, &st) != 0 || st.st_size <= 0 || !(z = calloc(1, sizeof *z)))
        return 0;
    const uint64_t end = (uint64_t)st.st_size;
    z->fd = -1;
    snprintf(z->where, sizeof z->where, "%s", where);
    while (off < end) {
        uint64_t comp, size;
        int skippable;
        if (!walk_frame(fd, off, end, &comp, &size, &skippable))
            goto no;
        if (!skippable) {
            if (z->n == cap) {
                cap = cap ? 2 * cap : 64;
                struct frame *f = realloc(z->frames, cap * sizeof *f);
                if (!f)
                    goto no;
                z->frames = f;
            }
            z->frames[z->n++] = (struct frame){ off, comp, dec, size };
            dec += size;
            data_frames++;
        }
        off += comp;
    }
    if (data_frames < 2 || (z->fd = dup(fd)) < 0)
        goto no;
    z->size = dec;
    *out = z;
    return 1;
no:
    ms_zframes_free(z);
    return 0;
}

uint64_t ms_zframes_size(const struct ms_zframes *z)
{
    return z->size;
}

void ms_zframes_free(struct ms_zframes *z)
{
    if (!z)
        return;
    if (z->fd >= 0)
        close(z->fd);
    free(z->frames);
    free(z);
}

struct job {
    struct ms_zframes *z;
    uint64_t a, b; /* the content range [a, b) */
    char *dst;     /* byte a of the content */
    size_t next;   /* the next frame to take (atomically) */
    size_t last;   /* one past the last frame */
};

struct worker {
    struct job *job;
    size_t bad_frame; /* the first frame that failed, or SIZE_MAX */
    int rc;
    struct ms_err err;
    pthread_t thread;
};

/* Decompress frame fi, keeping the part inside [a, b). The frame's compressed bytes are
 * mapped (page cache, no copy) for as long as it takes; a frame inside the range is
 * decompressed in one call straight into place, a frame at an edge through tmp. */
static int do_frame(struct job *j, size_t fi, ZSTD_DCtx *dctx, uint8_t *tmp, struct ms_err *err)
{
    const struct frame *fr = &j->z->frames[fi];
    const int whole = fr->dec_off >= j->a && fr->dec_off + fr->dec_size <= j->b;
    const uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
    const uint64_t map_off = fr->comp_off / page * page;
    const size_t map_len = (size_t)(fr->comp_off + fr->comp_size - map_off);
    void *map = mmap(NULL, map_len, PROT_READ, MAP_SHARED, j->z->fd, (off_t)map_off);
    int rc = MS_OK;

    if (map == MAP_FAILED)
        return ms_err_set(err, MS_ERR_RUNTIME, "cannot read %s: %s", j->z->where, strerror(errno));
    const uint8_t *in = (const uint8_t *)map + (fr->comp_off - map_off);
    if (whole) {
        const size_t got = ZSTD_decompressDCtx(dctx, j->dst + (fr->dec_off - j->a),
                                               (size_t)fr->dec_size, in, (size_t)fr->comp_size);
        if (ZSTD_isError(got))
            rc = ms_err_set(err, MS_ERR_INPUT, "%s: corrupt zstd data: %s", j->z->where,
                            ZSTD_getErrorName(got));
        else if (got != fr->dec_size)
            rc = ms_err_set(err, MS_ERR_INPUT,
                            "%s: corrupt zstd data: a frame holds %zu bytes, its header says %llu",
                            j->z->where, got, (unsigned long long)fr->dec_size);
    } else {
        ZSTD_inBuffer ib = { in, (size_t)fr->comp_size, 0 };
        uint64_t pos = fr->dec_off; /* content offset of the next byte out */
        ZSTD_DCtx_reset(dctx, ZSTD_reset_session_only);
        for (;;) {
            ZSTD_outBuffer ob = { tmp, OUT_CHUNK, 0 };
            const size_t before_in = ib.pos;
            const size_t ret = ZSTD_decompressStream(dctx, &ob, &ib);
            if (ZSTD_isError(ret)) {
                rc = ms_err_set(err, MS_ERR_INPUT, "%s: corrupt zstd data: %s", j->z->where,
                                ZSTD_getErrorName(ret));
                break;
            }
            /* copy the overlap of [pos, pos + ob.pos) with [a, b) */
            const uint64_t s = pos > j->a ? pos : j->a;
            const uint64_t e = pos + ob.pos < j->b ? pos + ob.pos : j->b;
            if (s < e)
                memcpy(j->dst + (s - j->a), tmp + (s - pos), (size_t)(e - s));
            pos += ob.pos;
            if (pos >= j->b || ret == 0) /* the rest is not wanted, or the frame is done */
                break;
            if (ob.pos == 0 && ib.pos == before_in) { /* no input left inside the frame */
                rc = ms_err_set(err, MS_ERR_INPUT,
                                "%s: truncated zstd data (the file ends inside a frame)",
                                j->z->where);
                break;
            }
        }
        if (rc == MS_OK && pos < j->b && pos != fr->dec_off + fr->dec_size)
            rc = ms_err_set(err, MS_ERR_INPUT,
                            "%s: corrupt zstd data: a frame holds %llu bytes, its header says "
                            "%llu",
                            j->z->where, (unsigned long long)(pos - fr->dec_off),
                            (unsigned long long)fr->dec_size);
    }
    munmap(map, map_len);
    return rc;
}

static void *work(void *arg)
{
    struct worker *w = arg;
    struct job *j = w->job;
    ZSTD_DCtx *dctx = ZSTD_createDCtx();
    uint8_t *tmp = malloc(OUT_CHUNK);

    w->bad_frame = SIZE_MAX;
    w->rc = MS_OK;
    if (!dctx || !tmp) {
        w->rc = ms_err_set(&w->err, MS_ERR_RUNTIME, "out of memory creating a zstd context");
        w->bad_frame = 0;
    }
    while (w->rc == MS_OK) {
        const size_t fi = __atomic_fetch_add(&j->next, 1, __ATOMIC_RELAXED);
        if (fi >= j->last)
            break;
        if ((w->rc = do_frame(j, fi, dctx, tmp, &w->err)) != MS_OK)
            w->bad_frame = fi;
    }
    ZSTD_freeDCtx(dctx);
    free(tmp);
    return NULL;
}

int ms_zframes_read(struct ms_zframes *z, uint64_t off, uint64_t n, void *dst, int threads,
                    struct ms_err *err)
{
    struct job j = { .z = z, .a = off, .b = off + n, .dst = dst };
    struct worker ws[MAX_THREADS];
    int started[MAX_THREADS] = { 0 };
    size_t lo = 0, hi = z->n;

    if (n == 0)
        return MS_OK;
    if (off > z->size || n > z->size - off)
        return ms_err_set(err, MS_ERR_RUNTIME, "%s: bytes %llu..%llu requested of %llu", z->where,
                          (unsigned long long)off, (unsigned long long)(off + n),
                          (unsigned long long)z->size);
    while (lo < hi) { /* the first frame that ends after off */
        const size_t mid = lo + (hi - lo) / 2;
        if (z->frames[mid].dec_off + z->frames[mid].dec_size <= off)
            lo = mid + 1;
        else
            hi = mid;
    }
    j.next = lo;
    j.last = lo;
    while (j.last < z->n && z->frames[j.last].dec_off < off + n)
        j.last++;
    size_t nw = threads < 1 ? 1 : (size_t)threads;
    nw = nw > MAX_THREADS ? MAX_THREADS : nw;
    nw = nw > j.last - lo ? j.last - lo : nw;
    for (size_t w = 0; w < nw; w++)
        ws[w].job = &j;
    for (size_t w = 1; w < nw; w++)
        started[w] = pthread_create(&ws[w].thread, NULL, work, &ws[w]) == 0;
    work(&ws[0]);
    for (size_t w = 1; w < nw; w++) {
        if (started[w])
            pthread_join(ws[w].thread, NULL);
        else
            ws[w].rc = MS_OK, ws[w].bad_frame = SIZE_MAX;
    }
    /* the first bad frame in file order, as a forward read would meet it */
    size_t first = SIZE_MAX, at = 0;
    for (size_t w = 0; w < nw; w++)
        if (ws[w].rc != MS_OK && ws[w].bad_frame < first) {
            first = ws[w].bad_frame;
            at = w;
        }
    if (first != SIZE_MAX) {
        *err = ws[at].err;
        return ws[at].rc;
    }
    return MS_OK;
}
