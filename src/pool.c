/*
 * pool.c - blocks of documents scored on several devices at once (pool.h).
 *
 * One mutex guards the pool's state and one condition variable carries
 * every change (a job handed over, a job done, an error, the end): with a
 * handful of devices and blocks that take milliseconds, simplicity wins over
 * finer locking. The caller's function runs under a second lock so that it
 * needs no locking of its own.
 */
#include "pool.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct worker {
    struct ms_pool *pool;
    struct ms_scorer *scorer;
    struct ms_emb block; /* the block being scored, a copy */
    float *scores;       /* [n_queries * max_docs], or with the device top-k: */
    float *top_s;        /* [n_queries * topk_k] */
    uint32_t *top_i;     /* [n_queries * topk_k] */
    pthread_t thread;
    int started;
    int busy; /* a block was handed over and is not done yet */
    /* a job of pairs: pq, pd [n_pairs] (owned copies), scores to out */
    int pairs_job;
    uint32_t *pq, *pd;
    uint64_t n_pairs, pairs_cap;
    float *out;
    double kernel_s;
};

struct ms_pool {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    pthread_mutex_t fn_lock;
    ms_pool_fn fn;
    ms_pool_topk_fn tfn; /* set when every device selects the top topk_k */
    uint32_t topk_k;
    void *ctx;
    uint64_t q0, nq, max_docs;
    int quit;
    int failed; /* err holds the first error */
    struct ms_err err;
    int n;
    struct worker *w;
};

static void *work(void *arg)
{
    struct worker *w = arg;
    struct ms_pool *p = w->pool;
    struct ms_err err;

    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (!w->busy && !p->quit)
            pthread_cond_wait(&p->changed, &p->lock);
        if (!w->busy)
            break;
        pthread_mutex_unlock(&p->lock);

        int rc;
        if (w->pairs_job) {
            rc = ms_scorer_run_pairs(w->scorer, &w->block, w->pq, w->pd, w->n_pairs, w->out, &err);
            if (rc == MS_OK)
                w->kernel_s += ms_scorer_last_kernel_s(w->scorer);
        } else if (p->tfn) {
            rc = ms_scorer_run_topk(w->scorer, &w->block, p->topk_k, w->top_s, w->top_i, &err);
            if (rc == MS_OK) {
                w->kernel_s += ms_scorer_last_kernel_s(w->scorer);
                pthread_mutex_lock(&p->fn_lock);
                rc = p->tfn(p->ctx, p->q0, p->nq, p->topk_k, w->top_s, w->top_i, &w->block, &err);
                pthread_mutex_unlock(&p->fn_lock);
            }
        } else if ((rc = ms_scorer_run(w->scorer, &w->block, w->scores, w->block.n_rows, &err)) ==
                   MS_OK) {
            w->kernel_s += ms_scorer_last_kernel_s(w->scorer);
            pthread_mutex_lock(&p->fn_lock);
            rc = p->fn(p->ctx, p->q0, p->nq, w->scores, w->block.n_rows, &w->block, &err);
            pthread_mutex_unlock(&p->fn_lock);
        }

        pthread_mutex_lock(&p->lock);
        if (rc != MS_OK && !p->failed) {
            p->failed = 1;
            p->err = err;
        }
        w->busy = 0;
        pthread_cond_broadcast(&p->changed);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

/* Stop and join the threads, free everything. */
static void pool_free(struct ms_pool *p)
{
    pthread_mutex_lock(&p->lock);
    p->quit = 1;
    pthread_cond_broadcast(&p->changed);
    pthread_mutex_unlock(&p->lock);
    for (int i = 0; i < p->n; i++) {
        struct worker *w = &p->w[i];
        if (w->started)
            pthread_join(w->thread, NULL);
        ms_scorer_free(w->scorer);
        ms_emb_release(&w->block);
        free(w->scores);
        free(w->top_s);
        free(w->top_i);
        free(w->pq);
        free(w->pd);
    }
    free(p->w);
    pthread_cond_destroy(&p->changed);
    pthread_mutex_destroy(&p->lock);
    pthread_mutex_destroy(&p->fn_lock);
    free(p);
}

int ms_pool_start(struct ms_pool **out, struct ms_cl *cls, int n, const struct ms_emb *queries,
                  uint64_t q0, const struct ms_scorer_opts *so, ms_pool_fn fn, uint32_t topk_k,
                  ms_pool_topk_fn tfn, void *ctx, struct ms_err *err)
{
    struct ms_pool *p;
    int rc = MS_OK;

    *out = NULL;
    if (!(p = ms_calloc(1, sizeof *p, err)))
        return err->status;
    pthread_mutex_init(&p->lock, NULL);
    pthread_mutex_init(&p->fn_lock, NULL);
    pthread_cond_init(&p->changed, NULL);
    p->fn = fn;
    p->ctx = ctx;
    p->q0 = q0;
    p->nq = queries->n_rows;
    p->max_docs = so->max_docs;
    if (!(p->w = ms_calloc((size_t)n, sizeof *p->w, err))) {
        pool_free(p);
        return err->status;
    }
    p->n = n;
    /* Scorers are created one after the other: the first builds the program
     * and stores it in the on-disk cache, the others (the same model) then
     * load it instead of compiling it again at the same time. */
    int topk = topk_k > 0 && tfn != NULL;
    for (int i = 0; i < n; i++) {
        p->w[i].pool = p;
        ms_emb_init(&p->w[i].block);
    }
    for (int i = 0; i < n && rc == MS_OK; i++) {
        rc = ms_scorer_create(&p->w[i].scorer, &cls[i], queries, so, err);
        topk = topk && rc == MS_OK && topk_k <= ms_scorer_topk_max(p->w[i].scorer);
    }
    for (int i = 0; i < n && rc == MS_OK && topk; i++) /* one after the other, as above */
        rc = ms_scorer_topk_prepare(p->w[i].scorer, err);
    if (topk) {
        p->tfn = tfn;
        p->topk_k = topk_k;
    }
    /* Host room for what comes back: k scores a query, or the whole block. */
    for (int i = 0; i < n && rc == MS_OK; i++) {
        struct worker *w = &p->w[i];
        if (topk ? !(w->top_s = ms_malloc(p->nq * topk_k * sizeof *w->top_s + 1, err)) ||
                       !(w->top_i = ms_malloc(p->nq * topk_k * sizeof *w->top_i + 1, err))
                 : !(w->scores = ms_malloc(p->nq * so->max_docs * sizeof *w->scores + 1, err)))
            rc = err->status;
    }
    for (int i = 0; i < n && rc == MS_OK; i++) {
        if (pthread_create(&p->w[i].thread, NULL, work, &p->w[i]) != 0)
            rc = ms_err_set(err, MS_ERR_RUNTIME, "cannot start a thread for device %d",
                            cls[i].info.index);
        else
            p->w[i].started = 1;
    }
    if (rc != MS_OK) {
        pool_free(p);
        return rc;
    }
    *out = p;
    return MS_OK;
}

int ms_pool_topk(const struct ms_pool *p)
{
    return p->tfn != NULL;
}

/* Copy a block (the stream reuses its buffers). */
static int copy_block(struct ms_emb *dst, const struct ms_emb *src, struct ms_err *err)
{
    const uint64_t nt = ms_emb_n_tokens(src);
    int rc = ms_emb_reserve(dst, src->dtype, src->dim, src->n_rows, nt, err);
    if (rc != MS_OK)
        return rc;
    memcpy(dst->offsets, src->offsets, (src->n_rows + 1) * sizeof *dst->offsets);
    memcpy(dst->tokens, src->tokens, nt * src->dim * ms_dtype_size(src->dtype));
    dst->first_row = src->first_row;
    return MS_OK;
}

/* Wait for an idle device: NULL with the pool's first error if there was one. */
static struct worker *idle_worker(struct ms_pool *p, struct ms_err *err)
{
    struct worker *w = NULL;

    pthread_mutex_lock(&p->lock);
    while (!p->failed && !w) {
        for (int i = 0; i < p->n && !w; i++)
            if (!p->w[i].busy)
                w = &p->w[i];
        if (!w)
            pthread_cond_wait(&p->changed, &p->lock);
    }
    if (p->failed) {
        *err = p->err;
        w = NULL;
    }
    pthread_mutex_unlock(&p->lock);
    return w; /* idle: its buffers are the caller's to fill until it is handed over */
}

static void hand_over(struct ms_pool *p, struct worker *w)
{
    pthread_mutex_lock(&p->lock);
    w->busy = 1;
    pthread_cond_broadcast(&p->changed);
    pthread_mutex_unlock(&p->lock);
}

int ms_pool_submit(struct ms_pool *p, const struct ms_emb *block, struct ms_err *err)
{
    struct worker *w = idle_worker(p, err);
    int rc;

    if (!w)
        return err->status;
    if ((rc = copy_block(&w->block, block, err)) != MS_OK)
        return rc;
    w->pairs_job = 0;
    hand_over(p, w);
    return MS_OK;
}

int ms_pool_submit_pairs(struct ms_pool *p, const struct ms_emb *block, const uint32_t *pq,
                         const uint32_t *pd, uint64_t n_pairs, float *out, struct ms_err *err)
{
    struct worker *w = idle_worker(p, err);
    int rc;

    if (!w)
        return err->status;
    if ((rc = copy_block(&w->block, block, err)) != MS_OK)
        return rc;
    if (n_pairs > w->pairs_cap) {
        uint32_t *a = ms_realloc(w->pq, n_pairs * sizeof *a, err), *b;
        if (!a)
            return err->status;
        w->pq = a;
        if (!(b = ms_realloc(w->pd, n_pairs * sizeof *b, err)))
            return err->status;
        w->pd = b;
        w->pairs_cap = n_pairs;
    }
    memcpy(w->pq, pq, n_pairs * sizeof *pq);
    memcpy(w->pd, pd, n_pairs * sizeof *pd);
    w->n_pairs = n_pairs;
    w->out = out;
    w->pairs_job = 1;
    hand_over(p, w);
    return MS_OK;
}

int ms_pool_finish(struct ms_pool *p, double *kernel_s, struct ms_err *err)
{
    int rc = MS_OK;

    if (!p)
        return MS_OK;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        int busy = 0;
        for (int i = 0; i < p->n; i++)
            busy |= p->w[i].busy;
        if (!busy)
            break;
        pthread_cond_wait(&p->changed, &p->lock);
    }
    if (p->failed) {
        *err = p->err;
        rc = err->status;
    }
    pthread_mutex_unlock(&p->lock);
    for (int i = 0; i < p->n && kernel_s; i++)
        *kernel_s += p->w[i].kernel_s;
    pool_free(p);
    return rc;
}
