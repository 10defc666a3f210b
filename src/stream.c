/*
 * stream.c - double-buffered block reading on a thread (stream.h).
 *
 * Two slots: the reader fills one while the consumer holds the other. The
 * consumer hands a slot back when it asks for the next block, so the reader
 * is at most one block ahead and memory is two blocks.
 */
#include "stream.h"

#include "par.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct slot {
    struct ms_emb emb;
    const struct ms_stream *owner;
    int full; /* holds a block the consumer has not taken */
    int last; /* the end of the stream: no block in this slot */
    int rc;   /* a read error for the consumer */
    struct ms_err err;
};

struct ms_stream {
    struct ms_src *src;
    const uint64_t *rows; /* the rows to read, ascending; NULL: rows next .. end - 1 */
    uint64_t next, end, max_docs, max_tokens;
    struct slot slots[2];
    int fill; /* slot the reader fills next */
    int take; /* slot the consumer takes next */
    int held; /* slot the consumer holds, or -1 */
    int stop;
    pthread_t thread;
    int started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    double read_s, wait_s;
    uint64_t bytes;
    uint64_t cap_rows, cap_tokens; /* what a slot is first reserved for, with an allocator */
    struct ms_par_task second;     /* slot 1 reserved while slot 0 is reserved and read */
    int second_busy;
};

double ms_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

uint64_t ms_block_end(const struct ms_src *src, uint64_t first, uint64_t last, uint64_t max_docs,
                      uint64_t max_tokens)
{
    uint64_t end = first + max_docs < last ? first + max_docs : last;
    /* largest end with starts[end] - starts[first] <= max_tokens, at least first + 1 */
    if (src->starts[end] - src->starts[first] > max_tokens) {
        uint64_t lo = first + 1, hi = end;
        while (lo < hi) {
            const uint64_t mid = lo + (hi - lo + 1) / 2;
            if (src->starts[mid] - src->starts[first] <= max_tokens)
                lo = mid;
            else
                hi = mid - 1;
        }
        end = lo;
    }
    return end;
}

uint64_t ms_rows_block_end(const struct ms_src *src, const uint64_t *rows, uint64_t first,
                           uint64_t last, uint64_t max_docs, uint64_t max_tokens)
{
    uint64_t end = first, tokens = 0;
    while (end < last && end - first < max_docs) {
        const uint64_t len = ms_src_row_len(src, rows[end]);
        if (end > first && tokens + len > max_tokens)
            break;
        tokens += len;
        end++;
    }
    return end;
}

/* The end of the next block (a row number, or an index into rows). */
static uint64_t next_end(const struct ms_stream *s)
{
    return s->rows ? ms_rows_block_end(s->src, s->rows, s->next, s->end, s->max_docs, s->max_tokens)
                   : ms_block_end(s->src, s->next, s->end, s->max_docs, s->max_tokens);
}

/* Reserve a slot's storage for the largest block (the reader's, or ms_par_start's). */
static void *reserve_slot(void *arg)
{
    struct slot *sl = arg;
    const struct ms_stream *s = sl->owner;
    sl->rc =
        ms_emb_reserve(&sl->emb, s->src->dtype, s->src->dim, s->cap_rows, s->cap_tokens, &sl->err);
    return NULL;
}

/* Pinned storage is costly to make (on the H200 about 0.4 ms a MB: 19 ms for a 48 MB slot),
 * so slot 1's is made on a thread of its own while slot 0's is made and filled, when the
 * stream has a second block; else the consumer would wait for it after the first block. */
static void reserve_second(struct ms_stream *s)
{
    if (!s->slots[1].emb.alloc || s->next >= s->end || next_end(s) >= s->end)
        return;
    s->second_busy = 1;
    ms_par_start(&s->second, reserve_slot, &s->slots[1]);
}

static void wait_second(struct ms_stream *s)
{
    if (s->second_busy) {
        ms_par_wait(&s->second);
        s->second_busy = 0;
    }
}

static void *reader(void *arg)
{
    struct ms_stream *s = arg;

    reserve_second(s);
    for (;;) {
        pthread_mutex_lock(&s->mu);
        while (!s->stop && (s->slots[s->fill].full || s->held == s->fill))
            pthread_cond_wait(&s->cv, &s->mu);
        if (s->stop) {
            pthread_mutex_unlock(&s->mu);
            wait_second(s);
            return NULL;
        }
        struct slot *sl = &s->slots[s->fill];
        pthread_mutex_unlock(&s->mu);

        if (s->next >= s->end) {
            sl->last = 1;
        } else {
            const double t0 = ms_now();
            uint64_t end;
            if (sl == &s->slots[1])
                wait_second(s); /* its storage, or why there is none, in sl->rc */
            if (sl->rc == MS_OK && sl->emb.alloc && !sl->emb.tokens)
                reserve_slot(sl);
            if (sl->rc != MS_OK) {
                sl->last = 1;
                goto hand_over;
            }
            end = next_end(s);
            sl->rc = s->rows ? ms_src_read_rows(s->src, s->rows + s->next, end - s->next, &sl->emb,
                                                &sl->err)
                             : ms_src_read(s->src, s->next, end - s->next, &sl->emb, &sl->err);
            s->read_s += ms_now() - t0;
            s->next = end;
            if (sl->rc != MS_OK)
                sl->last = 1;
            else
                s->bytes += ms_emb_n_tokens(&sl->emb) * sl->emb.dim * ms_dtype_size(sl->emb.dtype);
        }
    hand_over:
        pthread_mutex_lock(&s->mu);
        sl->full = 1;
        const int done = sl->last;
        s->fill ^= 1;
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
        if (done) {
            wait_second(s);
            return NULL;
        }
    }
}

static int start(struct ms_stream **out, struct ms_src *src, const uint64_t *rows, uint64_t first,
                 uint64_t n, uint64_t max_docs, uint64_t max_tokens, const struct ms_alloc *alloc,
                 struct ms_err *err)
{
    struct ms_stream *s = ms_calloc(1, sizeof *s, err);

    *out = NULL;
    if (!s)
        return err->status;
    s->src = src;
    s->rows = rows;
    s->next = first;
    s->end = first + n;
    s->max_docs = max_docs ? max_docs : n ? n : 1; /* 0: no limit but the tokens */
    s->max_tokens = max_tokens;
    s->held = -1;
    ms_emb_init(&s->slots[0].emb);
    ms_emb_init(&s->slots[1].emb);
    if (alloc) {
        /* A block holds at most max_tokens tokens, or one longer row, as read: a dense padded
         * block is read whole, padding included (at most 4/3 of its tokens, src.c), and a
         * block never holds more than the rows asked for. */
        uint64_t most = src->n_tokens, longest = 0;
        if (src->layout == MS_LAYOUT_PADDED)
            most = src->n_rows * src->padded_len;
        for (uint64_t i = 0; i < n && src->layout == MS_LAYOUT_FLAT; i++) {
            const uint64_t len = ms_src_row_len(src, rows ? rows[i] : first + i);
            longest = len > longest ? len : longest;
        }
        s->cap_tokens =
            max_tokens + (src->layout == MS_LAYOUT_PADDED ? max_tokens / 3 + src->padded_len : 0);
        s->cap_tokens = longest > s->cap_tokens ? longest : s->cap_tokens;
        s->cap_tokens = s->cap_tokens < most ? s->cap_tokens : most;
        s->cap_rows = s->max_docs < n ? s->max_docs : n;
        s->slots[0].emb.alloc = s->slots[1].emb.alloc = alloc;
        s->slots[0].owner = s->slots[1].owner = s;
    }
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    if (pthread_create(&s->thread, NULL, reader, s) != 0) {
        ms_stream_stop(s);
        return ms_err_set(err, MS_ERR_RUNTIME, "cannot start the reader thread");
    }
    s->started = 1;
    *out = s;
    return MS_OK;
}

int ms_stream_start(struct ms_stream **out, struct ms_src *src, uint64_t first, uint64_t n,
                    uint64_t max_docs, uint64_t max_tokens, const struct ms_alloc *alloc,
                    struct ms_err *err)
{
    return start(out, src, NULL, first, n, max_docs, max_tokens, alloc, err);
}

int ms_stream_start_rows(struct ms_stream **out, struct ms_src *src, const uint64_t *rows,
                         uint64_t n, uint64_t max_docs, uint64_t max_tokens,
                         const struct ms_alloc *alloc, struct ms_err *err)
{
    return start(out, src, rows, 0, n, max_docs, max_tokens, alloc, err);
}

int ms_stream_next(struct ms_stream *s, const struct ms_emb **block, struct ms_err *err)
{
    const double t0 = ms_now();

    *block = NULL;
    pthread_mutex_lock(&s->mu);
    if (s->held >= 0) { /* hand the previous block back to the reader */
        s->slots[s->held].full = 0;
        s->held = -1;
        pthread_cond_broadcast(&s->cv);
    }
    while (!s->slots[s->take].full)
        pthread_cond_wait(&s->cv, &s->mu);
    struct slot *sl = &s->slots[s->take];
    pthread_mutex_unlock(&s->mu);
    s->wait_s += ms_now() - t0;

    if (sl->rc != MS_OK) {
        *err = sl->err;
        return sl->rc;
    }
    if (sl->last)
        return MS_OK;
    s->held = s->take;
    s->take ^= 1;
    *block = &sl->emb;
    return MS_OK;
}

double ms_stream_read_s(const struct ms_stream *s)
{
    return s->read_s;
}

uint64_t ms_stream_bytes(const struct ms_stream *s)
{
    return s->bytes;
}

double ms_stream_wait_s(const struct ms_stream *s)
{
    return s->wait_s;
}

void ms_stream_stop(struct ms_stream *s)
{
    if (!s)
        return;
    if (s->started) {
        pthread_mutex_lock(&s->mu);
        s->stop = 1;
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->thread, NULL);
    }
    ms_emb_release(&s->slots[0].emb);
    ms_emb_release(&s->slots[1].emb);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
}
