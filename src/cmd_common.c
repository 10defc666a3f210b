/*
 * cmd_common.c - shared parts of the scoring commands (cmd_common.h), and
 * the helpers every command uses for messages, option values and standard
 * output (cmd.h).
 */
#include "cmd_common.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd.h"
#include "cmd_mpi.h"
#include "h5.h"
#include "maxsim.h"
#include "out.h"
#include "par.h"
#include "pool.h"
#include "stream.h"

int ms_inputs_option(const char *cmd, struct ms_inputs_opts *o, int c, const char *arg)
{
    switch (c) {
    case 'q': o->queries = arg; return 1;
    case 'd': o->docs = arg; return 1;
    case OPT_QUERY_LENGTHS: o->qopts.lengths_path = arg; return 1;
    case OPT_DOC_LENGTHS: o->dopts.lengths_path = arg; return 1;
    case OPT_QUERY_IDS: o->qopts.ids_path = arg; return 1;
    case OPT_DOC_IDS: o->dopts.ids_path = arg; return 1;
    case OPT_NORMALIZE: o->normalize = 1; return 1;
    case OPT_PROGRESS: o->progress = 1; return 1;
    case OPT_PRECISION: return ms_parse_precision(cmd, arg, &o->precision) ? 2 : 1;
    case OPT_CHUNK_DOCS: return ms_parse_u64(cmd, "--chunk-docs", arg, 1, &o->chunk_docs) ? 2 : 1;
    case OPT_QUERY_BATCH:
        return ms_parse_u64(cmd, "--query-batch", arg, 1, &o->query_batch) ? 2 : 1;
    case 'o': o->out_path = arg; return 1;
    case OPT_FORMAT: o->format = arg; return 1;
    case 'k': return ms_parse_u64(cmd, "-k", arg, 1, &o->k) ? 2 : 1;
    case OPT_RUN_TAG:
        if (ms_parse_run_tag(cmd, arg))
            return 2;
        o->tag = arg;
        return 1;
    default: return 0;
    }
}

int ms_parse_precision(const char *cmd, const char *arg, int *out)
{
    if (strcmp(arg, "exact") == 0)
        *out = MS_PREC_EXACT;
    else if (strcmp(arg, "f16") == 0)
        *out = MS_PREC_F16;
    else if (strcmp(arg, "f8") == 0)
        *out = MS_PREC_F8;
    else if (strcmp(arg, "tf32") == 0)
        *out = MS_PREC_TF32;
    else if (strcmp(arg, "int8") == 0)
        *out = MS_PREC_I8;
    else
        return ms_usage_error(cmd, "--precision takes exact, tf32, f16, f8 or int8, got '%s'", arg);
    return 0;
}

/* tf32 is a licence to round float32 operands for the tensor cores' speed, and exact float32 is
 * never a worse answer: where no device of the run can take it, the run goes on in exact
 * float32, said once (a script run on a CPU box and on a GPU box stays one script), rather than
 * stopping as f8 and int8 do (which have no exact stand-in of their speed). Every device must take
 * it, so that all of a run's scores come from one arithmetic. */
int ms_precision_settle(const struct ms_cl *cls, int n, int precision, uint32_t dim)
{
    if (precision != MS_PREC_TF32)
        return precision;
    for (int i = 0; i < n; i++)
        if (!ms_scorer_tf32_ok(&cls[i], dim)) {
            ms_warn("--precision tf32: '%s' has no tf32 tensor-core path for dim %u (NVIDIA "
                    "compute capability 8.0+, dim <= 256, MAXSIM_NV_MMA not 0): scoring in exact "
                    "float32",
                    cls[i].info.name, dim);
            return MS_PREC_EXACT;
        }
    return precision;
}

/* A decimal number of 1 to 18 digits, the whole of s[0, len). */
static int parse_digits(const char *s, size_t len, uint64_t *v)
{
    if (len == 0 || len > 18 || strspn(s, "0123456789") < len)
        return -1;
    *v = 0;
    for (size_t i = 0; i < len; i++)
        *v = *v * 10 + (uint64_t)(s[i] - '0');
    return 0;
}

int ms_parse_shard(const char *cmd, const char *arg, struct ms_inputs_opts *o)
{
    const char *slash = strchr(arg, '/');
    uint64_t i, n;

    if (!slash || parse_digits(arg, (size_t)(slash - arg), &i) ||
        parse_digits(slash + 1, strlen(slash + 1), &n))
        return ms_usage_error(cmd,
                              "--shard takes I/N, shard I (from 0) of N (e.g. --shard 0/4), "
                              "got '%s'",
                              arg);
    if (n == 0 || i >= n)
        return ms_usage_error(cmd, "--shard %s: expected a shard index from 0 to N-1 of N >= 1",
                              arg);
    o->shard_index = i;
    o->shard_count = n;
    return 0;
}

void ms_shard_rows(const struct ms_inputs_opts *o, uint64_t n_rows, uint64_t *first, uint64_t *n)
{
    if (!o->shard_count) {
        *first = 0;
        *n = n_rows;
        return;
    }
    /* 128-bit products: n_rows * I overflows 64 bits only for absurd inputs,
     * but a wrong shard would silently lose documents */
    const uint64_t lo = (uint64_t)((unsigned __int128)n_rows * o->shard_index / o->shard_count);
    const uint64_t hi =
        (uint64_t)((unsigned __int128)n_rows * (o->shard_index + 1) / o->shard_count);
    *first = lo;
    *n = hi - lo;
}

int ms_parse_run_tag(const char *cmd, const char *arg)
{
    if (!*arg || strpbrk(arg, " \t\n"))
        return ms_usage_error(cmd, "--run-tag takes one word, got '%s'", arg);
    return 0;
}

int ms_read_candidates(const char *path, const struct ms_idmap *qmap, const struct ms_idmap *dmap,
                       int skip_missing, struct ms_cand **out, uint64_t *n)
{
    struct ms_cand_skips skips;
    struct ms_err err;

    if (ms_cands_read(path, qmap, dmap, skip_missing, out, n, &skips, &err) != MS_OK)
        return ms_report(&err);
    if (skips.count)
        ms_warn("skipped %llu candidates with unknown ids (the first: line %llu, %s)",
                (unsigned long long)skips.count, (unsigned long long)skips.first_line,
                skips.first_id);
    return MS_OK;
}

int ms_check_unique_ids(const struct ms_ids *ids, const char *ids_path, const char *input)
{
    struct ms_idmap map = { 0 };
    struct ms_err err;
    char what[512];

    if (ids->n == 0) /* row numbers: unique */
        return MS_OK;
    snprintf(what, sizeof what, "'%s'", ids_path ? ids_path : input);
    const int rc = ms_idmap_init(&map, ids, ids->n, what, &err);
    ms_idmap_release(&map);
    return rc == MS_OK ? MS_OK : ms_report(&err);
}

int ms_read_threads_env(const char *cmd, int *threads)
{
    const char *env = getenv("MAXSIM_READ_THREADS");
    char *end;

    *threads = 0;
    if (!env || !*env)
        return 0;
    errno = 0;
    const unsigned long n = env[0] >= '0' && env[0] <= '9' ? strtoul(env, &end, 10) : 0;
    if (errno || n < 1 || n > 256 || *end)
        return ms_usage_error(cmd, "MAXSIM_READ_THREADS takes 1 to 256, got '%s'", env);
    *threads = (int)n;
    return 0;
}

int ms_device_topk_env(const char *cmd, int *on)
{
    const char *env = getenv("MAXSIM_DEVICE_TOPK");

    *on = -1;
    if (!env || !*env)
        return 0;
    if (strcmp(env, "0") == 0 || strcmp(env, "1") == 0) {
        *on = env[0] == '1';
        return 0;
    }
    return ms_usage_error(cmd, "MAXSIM_DEVICE_TOPK takes 0 or 1, got '%s'", env);
}

int ms_inputs_open(const char *cmd, const struct ms_inputs_opts *o, struct ms_src *q,
                   struct ms_src *d)
{
    struct ms_err err;
    struct ms_src_opts qo = o->qopts, dopt = o->dopts;

    int threads = 0, st;
    if ((st = ms_read_threads_env(cmd, &threads)) != 0)
        return st;
    if (!o->queries)
        return ms_usage_error(cmd, "no queries (-q QUERIES)");
    if (!o->docs)
        return ms_usage_error(cmd, "no documents (-d DOCS)");
    qo.role = "queries";
    dopt.role = "documents";
    if (ms_src_open(q, o->queries, &qo, &err) != MS_OK)
        return ms_report(&err);
    if (ms_src_open(d, o->docs, &dopt, &err) != MS_OK) {
        ms_src_close(q);
        return ms_report(&err);
    }
    q->threads = d->threads = threads; /* 0: ms_read_threads_default() */
    if (q->dim != d->dim) {
        ms_fail(MS_ERR_INPUT,
                "dim mismatch: queries '%s' have dim %u but documents '%s' have dim %u", o->queries,
                q->dim, o->docs, d->dim);
        ms_src_close(q);
        ms_src_close(d);
        return MS_ERR_INPUT;
    }
    /* A 2-D corpus needs its lengths to be more than one document; silence
     * would let a forgotten --doc-lengths pass for a result. */
    if (d->layout == MS_LAYOUT_FLAT && !o->dopts.lengths_path && !d->raw.lengths)
        ms_warn("'%s' is a 2-D [tokens, dim] array without lengths (--doc-lengths): it is read "
                "as one document of all %llu tokens",
                o->docs, (unsigned long long)d->n_tokens);
    if (d->n_rows == 0)
        ms_warn("'%s' has no documents: the output is empty", o->docs);
    else if (q->n_rows == 0)
        ms_warn("'%s' has no queries: the output is empty", o->queries);
    /* ids name the rows of every output: two rows with one id would be confused */
    int rc;
    if ((rc = ms_check_unique_ids(&q->ids, o->qopts.ids_path, o->queries)) != MS_OK ||
        (rc = ms_check_unique_ids(&d->ids, o->dopts.ids_path, o->docs)) != MS_OK) {
        ms_src_close(q);
        ms_src_close(d);
        return rc;
    }
    return MS_OK;
}

int ms_output_finish(struct ms_wfile **w, int rc, struct ms_err *err)
{
    if (rc == MS_OK && *w)
        rc = ms_wfile_commit(*w, err);
    else
        ms_wfile_abort(*w);
    *w = NULL;
    return rc == MS_OK ? MS_OK : ms_report(err);
}

int ms_device_open(struct ms_cl *cl)
{
    struct ms_err err;

    if (ms_devspec_is_multi(ms_global.device))
        return ms_fail(MS_ERR_INPUT,
                       "--device %s: this command runs on one device (search, score and "
                       "rerank spread over several)",
                       ms_global.device);

    if (ms_cl_open(cl, ms_global.device, &err) != MS_OK)
        return ms_report(&err);
    ms_global.used_device = 1;
    cl->verbose = ms_global.verbose;
    if (ms_global.verbose)
        fprintf(stderr, "maxsim: device %d: %s (%s)\n", cl->info.index, cl->info.name,
                cl->info.platform_name);
    return MS_OK;
}

/* With -v, a line for each device of the set. */
static void devices_opened(struct ms_devset *devs)
{
    ms_global.used_device = 1;
    for (int i = 0; i < devs->n; i++) {
        devs->cl[i].verbose = ms_global.verbose;
        if (ms_global.verbose)
            fprintf(stderr, "maxsim: device %d: %s (%s)\n", devs->cl[i].info.index,
                    devs->cl[i].info.name, devs->cl[i].info.platform_name);
    }
}

int ms_devices_open(struct ms_devset *devs)
{
    struct ms_err err;

    if (ms_devset_open(devs, ms_global.device, ms_mpi_local_rank(), &err) != MS_OK)
        return ms_report(&err);
    devices_opened(devs);
    return MS_OK;
}

int ms_devices_start(struct ms_devset_start *st, int single)
{
    memset(st, 0, sizeof *st);
    if (single && ms_devspec_is_multi(ms_global.device))
        return ms_fail(MS_ERR_INPUT,
                       "--device %s: this command runs on one device (search, score and "
                       "rerank spread over several)",
                       ms_global.device);
    /* the rank is asked here: MPI is called from the main thread only */
    ms_devset_start(st, ms_global.device, single ? -1 : ms_mpi_local_rank(), single);
    return 0;
}

int ms_devices_finish(struct ms_devset_start *st, struct ms_devset *devs)
{
    struct ms_err err;
    const double asked = ms_now();

    if (ms_devset_finish(st, devs, &err) != MS_OK)
        return ms_report(&err);
    devices_opened(devs);
    if (ms_global.verbose) {
        /* the part of the start before `asked` ran while the inputs were read */
        const double took = st->end_s - st->begin_s;
        double hidden = (asked < st->end_s ? asked : st->end_s) - st->begin_s;
        hidden = hidden < 0 ? 0 : hidden;
        fprintf(stderr,
                "maxsim: device start %.3f s, %.3f s of it while the inputs were read (waited "
                "%.3f s)\n",
                took, hidden, took - hidden);
    }
    return MS_OK;
}

/* With -v, what the device layer noted, a line each. */
static void print_notes(const struct ms_cl *cl)
{
    for (const char *p = cl->notes; ms_global.verbose && *p;) {
        const size_t n = strcspn(p, "\n");
        fprintf(stderr, "maxsim: %.*s\n", (int)n, p);
        p += n + (p[n] == '\n');
    }
}

/*
 * Pinned buffers kept for the run: what a pass frees (the reader's slots, the score buffers)
 * comes back here and a later pass takes it without pinning again (0.4 ms a MB on the H200,
 * and the driver holds other calls meanwhile). ms_devices_close releases them, or leaves them
 * to the exit with the device (unpinning was 0.01-0.02 s of a score run's end). Allocations
 * come from reader threads too: one lock.
 */
#define PINNED_KEPT 16
static struct kept_buffer {
    const struct ms_cl *cl; /* NULL: an empty entry */
    void *host, *handle;
    size_t bytes;
    int busy;
} kept[PINNED_KEPT];
static pthread_mutex_t kept_lock = PTHREAD_MUTEX_INITIALIZER;

static void *kept_alloc(void *ctx, size_t bytes, void **handle)
{
    int best = -1;
    pthread_mutex_lock(&kept_lock);
    for (int i = 0; i < PINNED_KEPT; i++) /* the smallest free one that is large enough */
        if (kept[i].cl == ctx && !kept[i].busy && kept[i].bytes >= bytes &&
            (best < 0 || kept[i].bytes < kept[best].bytes))
            best = i;
    if (best >= 0) {
        kept[best].busy = 1;
        *handle = kept[best].handle;
        pthread_mutex_unlock(&kept_lock);
        return kept[best].host;
    }
    pthread_mutex_unlock(&kept_lock);
    void *host = ms_cl_pinned_alloc(ctx, bytes, handle);
    if (!host)
        return NULL;
    pthread_mutex_lock(&kept_lock);
    for (int i = 0; i < PINNED_KEPT; i++) /* none free: freed for good later */
        if (!kept[i].cl) {
            kept[i] = (struct kept_buffer){ ctx, host, *handle, bytes, 1 };
            break;
        }
    pthread_mutex_unlock(&kept_lock);
    return host;
}

static void kept_free(void *ctx, void *handle)
{
    pthread_mutex_lock(&kept_lock);
    for (int i = 0; i < PINNED_KEPT; i++)
        if (kept[i].cl && kept[i].handle == handle) {
            kept[i].busy = 0;
            pthread_mutex_unlock(&kept_lock);
            return;
        }
    pthread_mutex_unlock(&kept_lock);
    ms_cl_pinned_free(ctx, handle);
}

/* The kept buffers of cl: released, or with leave left as they are (the entries stay, so
 * that they remain reachable for leak checkers; the device is never used again). */
static void kept_release(const struct ms_cl *cl, int leave)
{
    pthread_mutex_lock(&kept_lock);
    for (int i = 0; i < PINNED_KEPT; i++)
        if (kept[i].cl == cl && !leave) {
            ms_cl_pinned_free(NULL, kept[i].handle); /* it takes no context */
            kept[i] = (struct kept_buffer){ 0 };
        }
    pthread_mutex_unlock(&kept_lock);
}

/* Whether a command's devices may be left to the process's exit rather than released. On
 * the H200, NVIDIA's driver took 0.05-0.07 s to release a context and 0.04-0.06 s more at
 * the exit; left to the exit, the kernel driver's teardown took 0.11-0.14 s there, which
 * main's leave_now hands to a child so that the process ends without it. The kernel driver
 * reclaims a process's contexts when it exits (as when it is killed) and the command's
 * outputs are complete by then. CPU devices (PoCL: tests, sanitizer runs that check
 * everything is released) are released unless MAXSIM_RELEASE_DEVICES=0 leaves every device;
 * MAXSIM_RELEASE_DEVICES=1 releases every device. */
static int leave_to_exit(const struct ms_cl *cl, int n)
{
    const char *env = getenv("MAXSIM_RELEASE_DEVICES");
    if (env && *env) {
        if (strcmp(env, "1") == 0)
            return 0;
        if (strcmp(env, "0") == 0) /* every device left, CPUs too (what tests the exit's path) */
            return n > 0;
        ms_warn("MAXSIM_RELEASE_DEVICES takes 0 or 1, got '%s': a GPU's context is left to the "
                "exit, a CPU's released",
                env);
    }
    for (int i = 0; i < n; i++)
        if (cl[i].info.type & CL_DEVICE_TYPE_CPU)
            return 0;
    return n > 0;
}

void ms_devices_close(struct ms_devset *devs)
{
    const int n = devs->n;
    for (int i = 0; i < n; i++)
        print_notes(&devs->cl[i]);
    const double t0 = ms_now();
    const int leave = leave_to_exit(devs->cl, n);
    for (int i = 0; i < n; i++)
        kept_release(&devs->cl[i], leave);
    if (leave) {
        for (int i = 0; i < n; i++)
            ms_cl_leave(&devs->cl[i]);
        ms_global.exit_now = 1;
    }
    ms_devset_close(devs);
    if (ms_global.verbose && n)
        fprintf(stderr, "maxsim: device%s %s in %.3f s\n", n > 1 ? "s" : "",
                ms_global.exit_now ? "left to the exit" : "released", ms_now() - t0);
}

void ms_device_close(struct ms_cl *cl)
{
    print_notes(cl);
    if (leave_to_exit(cl, 1)) {
        ms_cl_leave(cl);
        ms_global.exit_now = 1;
    }
    ms_cl_close(cl);
}

void ms_plan_blocks(const struct ms_cl *cl, const struct ms_inputs_opts *o, const struct ms_src *q,
                    const struct ms_src *d, uint64_t *query_batch, uint64_t *max_docs,
                    uint64_t *max_tokens)
{
    /* Device memory holds a block twice (as read, and converted to float32
     * in tiles); host memory holds it twice more (the reader's two slots).
     * 256 MiB keeps a CPU run's resident memory well under 1 GiB. */
    uint64_t budget = cl->info.global_mem / 4;
    if (cl->info.max_alloc && budget > cl->info.max_alloc)
        budget = cl->info.max_alloc;
    if (budget > (256ull << 20))
        budget = 256ull << 20;
    const uint64_t per_token = (uint64_t)d->dim * (3 * ms_dtype_size(d->dtype) + 5);
    uint64_t tokens = budget / per_token;
    if (tokens < 4096)
        tokens = 4096;

    /* Queries: all at once unless that would take more than a quarter of the budget. */
    uint64_t nqb = o->query_batch;
    if (!nqb) {
        uint64_t longest = 1;
        for (uint64_t r = 0; r < q->n_rows; r++)
            longest = ms_src_row_len(q, r) > longest ? ms_src_row_len(q, r) : longest;
        nqb = (budget / 4) / ((uint64_t)q->dim * 4 * longest + 1);
        if (nqb < 1)
            nqb = 1;
        if (nqb > 8192)
            nqb = 8192;
    }
    if (nqb > q->n_rows)
        nqb = q->n_rows ? q->n_rows : 1;

    /* Documents a block: the score block [queries, docs] stays under 64 MiB. */
    uint64_t docs = o->chunk_docs;
    if (!docs) {
        docs = (64ull << 20) / (4 * nqb);
        if (docs > 65536)
            docs = 65536;
        if (docs < 16)
            docs = 16;
    }
    /* never more than the corpus: buffers are sized for a block */
    if (docs > d->n_rows)
        docs = d->n_rows ? d->n_rows : 1;
    /* a block always holds at least one whole document */
    for (uint64_t r = 0; r < d->n_rows; r++)
        if (ms_src_row_len(d, r) > tokens)
            tokens = ms_src_row_len(d, r);
    *query_batch = nqb;
    *max_docs = docs;
    *max_tokens = tokens;
}

void ms_progress_init(struct ms_progress *p, int force, const char *what, uint64_t total)
{
    memset(p, 0, sizeof *p);
    p->on = !ms_global.quiet && (force || isatty(STDERR_FILENO));
    p->what = what;
    p->unit = "documents";
    p->total = total;
    p->start = p->last = ms_now();
}

static void show(struct ms_progress *p, int final)
{
    const double el = ms_now() - p->start;
    const double rate = el > 0 ? (double)p->done / el : 0;
    const double eta = rate > 0 ? (double)(p->total - p->done) / rate : 0;
    fprintf(stderr, "\r%s: %llu/%llu %s (%.1f%%), %.0f %s/s, %s %d:%02d   ", p->what,
            (unsigned long long)p->done, (unsigned long long)p->total, p->unit,
            p->total ? 100.0 * (double)p->done / (double)p->total : 100.0, rate, p->unit,
            final ? "elapsed" : "ETA", (int)((final ? el : eta) / 60),
            (int)(final ? el : eta) % 60);
    if (final)
        fputc('\n', stderr);
    fflush(stderr);
}

void ms_progress_add(struct ms_progress *p, uint64_t n)
{
    p->done += n;
    if (!p->on)
        return;
    const double now = ms_now();
    if (now - p->last >= 0.2) {
        p->last = now;
        show(p, 0);
    }
}

void ms_progress_end(struct ms_progress *p)
{
    if (p->on)
        show(p, 1);
}

const struct ms_alloc *ms_pinned_alloc(const struct ms_devset *devs, struct ms_alloc *a)
{
    if (devs->n != 1)
        return NULL;
    a->alloc = kept_alloc;
    a->free = kept_free;
    a->ctx = &devs->cl[0];
    return a;
}

void ms_run_stats_print(const char *cmd, const struct ms_run_stats *st, double total)
{
    const double gb = 1e-9;
    const char *bound = "kernels";
    double most = st->kernel_s;

    if (st->read_s > most) {
        most = st->read_s;
        bound = "read";
    }
    if (st->upload_s > most) {
        most = st->upload_s;
        bound = "host-to-device";
    }
    /* the stages overlap (reader thread, device); what none of them covers is host work */
    if (total - most > most)
        bound = "host (merging, waiting, setup)";
    fprintf(stderr,
            "maxsim: %s: read %.3f GB in %.3f s (%.2f GB/s), host-to-device %.3f GB in %.3f s "
            "(%.2f GB/s), kernels %.3f s, total %.3f s: bound by %s\n",
            cmd, (double)st->read_bytes * gb, st->read_s,
            st->read_s > 0 ? (double)st->read_bytes * gb / st->read_s : 0.0,
            (double)st->upload_bytes * gb, st->upload_s,
            st->upload_s > 0 ? (double)st->upload_bytes * gb / st->upload_s : 0.0, st->kernel_s,
            total, bound);
    /* making a scorer loads its programs (from the kernel cache) and uploads the queries: on
     * the critical path before the first block */
    fprintf(stderr, "maxsim: %s: host: scorers made in %.3f s (programs, queries to the device)\n",
            cmd, st->setup_s);
    if (st->loop_run_s > 0)
        fprintf(stderr,
                "maxsim: %s: host: scoring loop: %.3f s waiting for blocks, %.3f s in device "
                "calls (copies, kernels, read-back), %.3f s handing scores on; before it %.3f s "
                "(queries read, reader started), after it %.3f s (reader stopped, scorer and "
                "buffers freed)\n",
                cmd, st->loop_next_s, st->loop_run_s, st->loop_hand_s, st->before_s, st->after_s);
}

/* The host matrix a block's scores are read back into: pinned like the blocks when there is one
 * device (NVIDIA copies to pageable memory through a staging buffer, at a fraction of the
 * speed), else plain memory (*handle NULL). */
static float *alloc_scores(const struct ms_alloc *pin, size_t bytes, void **handle,
                           struct ms_err *err)
{
    float *p;

    *handle = NULL;
    if (!pin)
        return ms_malloc(bytes, err);
    if (!(p = pin->alloc(pin->ctx, bytes, handle)))
        ms_err_set(err, MS_ERR_RUNTIME, "out of memory allocating %zu bytes", bytes);
    return p;
}

/* A block's scores handed to the command's callback on a thread of their own, while the
 * device scores the next block into the other buffer (score writes 400 MB matrices: the
 * writes and the kernels take turns otherwise). */
struct hand_off {
    ms_block_fn fn;
    void *ctx;
    uint64_t q0, nq, ld;
    const float *scores;
    struct ms_emb rows; /* first_row and n_rows only: ms_block_fn's contract */
    struct ms_err err;
    int rc;
    struct ms_par_task task;
    int busy;
};

static void *hand_off_run(void *arg)
{
    struct hand_off *h = arg;
    h->rc = h->fn(h->ctx, h->q0, h->nq, h->scores, h->ld, &h->rows, &h->err);
    return NULL;
}

/* Wait for the block in flight; its error, if any, into err. */
static int hand_off_wait(struct hand_off *h, struct ms_err *err)
{
    if (!h->busy)
        return MS_OK;
    ms_par_wait(&h->task);
    h->busy = 0;
    if (h->rc != MS_OK)
        *err = h->err;
    return h->rc;
}

/* The last block's kernel and upload times into the run's. */
static void add_device_stats(const struct ms_scorer *scorer, struct ms_run_stats *stats)
{
    double up_s;
    uint64_t up_bytes;
    stats->kernel_s += ms_scorer_last_kernel_s(scorer);
    ms_scorer_last_upload(scorer, &up_s, &up_bytes);
    stats->upload_s += up_s;
    stats->upload_bytes += up_bytes;
}

/* Finish the block in flight (rows, read back into buf) and hand it on: the hand-off owns buf
 * until hand_off_wait. The caller has waited for the hand-off before. */
static int finish_and_hand(struct ms_scorer *scorer, struct hand_off *hand,
                           const struct ms_emb *rows, float *buf, struct ms_run_stats *stats,
                           struct ms_err *err)
{
    const int rc = ms_scorer_finish(scorer, err);
    add_device_stats(scorer, stats);
    if (rc != MS_OK)
        return rc;
    hand->scores = buf;
    hand->ld = rows->n_rows;
    hand->rows.first_row = rows->first_row;
    hand->rows.n_rows = rows->n_rows;
    hand->busy = 1;
    ms_par_start(&hand->task, hand_off_run, hand);
    return MS_OK;
}

/* The most documents a block of rows [first, first + n) holds under these limits (as the
 * stream cuts them): score buffers are sized for it rather than for max_docs, since blocks
 * are mostly cut by their tokens (1,000 queries allow 16,777 documents a block; 190,650
 * tokens of 100-token documents hold 1,900). */
static uint64_t widest_block(const struct ms_src *d, uint64_t first, uint64_t n, uint64_t max_docs,
                             uint64_t max_tokens)
{
    uint64_t widest = 1;
    for (uint64_t r = first; r < first + n;) {
        const uint64_t end = ms_block_end(d, r, first + n, max_docs, max_tokens);
        widest = end - r > widest ? end - r : widest;
        r = end;
    }
    return widest;
}

/* Score rows [q0, q0 + nq) of the queries against the documents of the shard. */
static int score_pass(struct ms_devset *devs, const struct ms_inputs_opts *o, struct ms_src *q,
                      struct ms_src *d, uint64_t q0, uint64_t nq, uint64_t max_docs,
                      uint64_t max_tokens, ms_block_fn fn, uint32_t device_k, ms_topk_block_fn tfn,
                      void *ctx, struct ms_progress *prog, struct ms_run_stats *stats,
                      struct ms_err *err)
{
    float *top_s = NULL;
    uint32_t *top_i = NULL;
    int dev_topk = 0;
    struct ms_emb queries;
    struct ms_scorer *scorer = NULL;
    struct ms_pool *pool = NULL;
    struct ms_stream *stream = NULL;
    const struct ms_emb *block;
    float *scores = NULL, *spare = NULL;
    void *scores_handle = NULL, *spare_handle = NULL;
    struct hand_off hand = { .fn = fn, .ctx = ctx, .q0 = q0, .nq = nq };
    struct ms_alloc pinned;
    const struct ms_alloc *const pin = ms_pinned_alloc(devs, &pinned);
    uint64_t first, n_docs;
    ms_shard_rows(o, d->n_rows, &first, &n_docs);
    max_docs = widest_block(d, first, n_docs, max_docs, max_tokens);
    const struct ms_scorer_opts so = { .normalize = o->normalize,
                                       .max_docs = max_docs,
                                       .max_tokens = max_tokens,
                                       .precision = o->precision };
    int rc;
    const double before_t0 = ms_now();
    double after_t0 = 0;

    ms_emb_init(&queries);
    if ((rc = ms_src_read(q, q0, nq, &queries, err)) != MS_OK)
        goto done;
    /* The reader starts first: it makes its pinned slots and reads the first block while the
     * scorer loads its programs and uploads the queries. */
    if ((rc = ms_stream_start(&stream, d, first, n_docs, max_docs, max_tokens, pin, err)) != MS_OK)
        goto done;
    const double setup_t0 = ms_now();
    stats->before_s += setup_t0 - before_t0;
    if (devs->n > 1) {
        if ((rc = ms_pool_start(&pool, devs->cl, devs->n, &queries, q0, &so, fn, device_k, tfn, ctx,
                                err)) != MS_OK)
            goto done;
        dev_topk = ms_pool_topk(pool);
    } else {
        if ((rc = ms_scorer_create(&scorer, &devs->cl[0], &queries, &so, err)) != MS_OK)
            goto done;
        /* Only k scores a query come back when the device selects; else the whole block. */
        dev_topk = device_k > 0 && tfn && device_k <= ms_scorer_topk_max(scorer);
        if (dev_topk ? !(top_s = ms_malloc(nq * device_k * sizeof *top_s, err)) ||
                           !(top_i = ms_malloc(nq * device_k * sizeof *top_i, err))
                     : !(scores = alloc_scores(pin, nq * max_docs * sizeof *scores, &scores_handle,
                                               err)) ||
                           !(spare = alloc_scores(pin, nq * max_docs * sizeof *spare, &spare_handle,
                                                  err))) {
            rc = err->status;
            goto done;
        }
    }
    stats->setup_s += ms_now() - setup_t0;
    double t_next = ms_now();
    /* Score matrices on one device overlap blocks (ms_scorer_start): block k is started, its
     * tokens then on the device, before block k - 1 is finished and handed on, so the device
     * copies block k while it scores block k - 1. pend: block k - 1's rows, in flight. */
    struct ms_emb pend = { 0 };
    int pending = 0;
    while ((rc = ms_stream_next(stream, &block, err)) == MS_OK && block) {
        if (pool) {
            if ((rc = ms_pool_submit(pool, block, err)) != MS_OK)
                break;
            stats->topk_blocks += dev_topk;
        } else if (dev_topk) {
            const double t_run = ms_now();
            stats->loop_next_s += t_run - t_next;
            if ((rc = ms_scorer_run_topk(scorer, block, device_k, top_s, top_i, err)) != MS_OK)
                break;
            const double t_hand = ms_now();
            stats->loop_run_s += t_hand - t_run;
            add_device_stats(scorer, stats);
            rc = tfn(ctx, q0, nq, device_k, top_s, top_i, block, err);
            stats->loop_hand_s += ms_now() - t_hand;
            if (rc != MS_OK)
                break;
            stats->topk_blocks++;
        } else {
            const double t_hand = ms_now();
            stats->loop_next_s += t_hand - t_next;
            /* `scores` was handed on two blocks ago: wait until that is done with it */
            if ((rc = hand_off_wait(&hand, err)) != MS_OK)
                break;
            const double t_run = ms_now();
            stats->loop_hand_s += t_run - t_hand;
            if ((rc = ms_scorer_start(scorer, block, scores, block->n_rows, err)) != MS_OK)
                break;
            /* block k - 1 went into `spare` (the buffers swap at every block) */
            if (pending && (rc = finish_and_hand(scorer, &hand, &pend, spare, stats, err)) != MS_OK)
                break;
            /* this block is now in flight in `scores`; the next block takes `spare` */
            float *const swap = scores;
            void *const swap_handle = scores_handle;
            scores = spare;
            scores_handle = spare_handle;
            spare = swap;
            spare_handle = swap_handle;
            pend.first_row = block->first_row;
            pend.n_rows = block->n_rows;
            pending = 1;
            stats->loop_run_s += ms_now() - t_run;
        }
        ms_progress_add(prog, block->n_rows);
        stats->blocks++;
        t_next = ms_now();
    }
    if (pending && rc == MS_OK) { /* the last block */
        const double t_hand = ms_now();
        if ((rc = hand_off_wait(&hand, err)) == MS_OK) {
            const double t_run = ms_now();
            stats->loop_hand_s += t_run - t_hand;
            rc = finish_and_hand(scorer, &hand, &pend, spare, stats, err);
            stats->loop_run_s += ms_now() - t_run;
        }
    }
    if (!pool) {
        const double t_hand = ms_now();
        const int hrc = hand_off_wait(&hand, rc == MS_OK ? err : &(struct ms_err){ 0 });
        rc = rc == MS_OK ? hrc : rc;
        stats->loop_hand_s += ms_now() - t_hand;
    }
    stats->read_s += ms_stream_read_s(stream);
    stats->wait_s += ms_stream_wait_s(stream);
    stats->read_bytes += ms_stream_bytes(stream);
    after_t0 = ms_now();
done:
    if (pool) { /* every block handed over is scored (or the first error kept) */
        struct ms_err perr;
        const int prc = ms_pool_finish(pool, &stats->kernel_s, &perr);
        if (rc == MS_OK && prc != MS_OK) {
            rc = prc;
            *err = perr;
        }
    }
    hand_off_wait(&hand, &(struct ms_err){ 0 }); /* an error path: its result is not needed */
    ms_stream_stop(stream);
    ms_scorer_free(scorer);
    if (scores_handle)
        pin->free(pin->ctx, scores_handle);
    else
        free(scores);
    if (spare_handle)
        pin->free(pin->ctx, spare_handle);
    else
        free(spare);
    free(top_s);
    free(top_i);
    ms_emb_release(&queries);
    if (after_t0 > 0)
        stats->after_s += ms_now() - after_t0;
    return rc;
}

int ms_score_all(struct ms_devset *devs, const struct ms_inputs_opts *o, struct ms_src *q,
                 struct ms_src *d, uint64_t query_batch, uint64_t max_docs, uint64_t max_tokens,
                 ms_block_fn fn, uint32_t device_k, ms_topk_block_fn tfn, void *ctx,
                 struct ms_progress *prog, struct ms_run_stats *stats, struct ms_err *err)
{
    int rc = MS_OK;
    struct ms_inputs_opts eff = *o; /* the precision the devices can give */

    eff.precision = ms_precision_settle(devs->cl, devs->n, o->precision, q->dim);
    o = &eff;
    for (uint64_t q0 = 0; q0 < q->n_rows && rc == MS_OK; q0 += query_batch) {
        const uint64_t nq = q->n_rows - q0 < query_batch ? q->n_rows - q0 : query_batch;
        if (q0 > 0 && d->sequential_only) { /* a stream is read again from its start */
            struct ms_src again;
            struct ms_src_opts dopt = o->dopts;
            dopt.role = "documents";
            if ((rc = ms_src_open(&again, o->docs, &dopt, err)) != MS_OK)
                break;
            again.threads = d->threads;
            ms_src_close(d);
            *d = again;
        }
        rc = score_pass(devs, o, q, d, q0, nq, max_docs, max_tokens, fn, device_k, tfn, ctx, prog,
                        stats, err);
    }
    return rc;
}

int ms_report(const struct ms_err *err)
{
    fprintf(stderr, "maxsim: error: %s\n", err->msg);
    return err->status ? err->status : MS_ERR_RUNTIME;
}

int ms_fail(int status, const char *fmt, ...)
{
    va_list ap;
    fputs("maxsim: error: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return status;
}

void ms_warn(const char *fmt, ...)
{
    va_list ap;
    if (ms_global.quiet)
        return;
    fputs("maxsim: warning: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

int ms_getopt(const struct ms_optspec *spec, int argc, char **argv, int *status)
{
    int c;

    *status = -1;
    while ((c = getopt_long(argc, argv, spec->optstring, spec->longopts, NULL)) != -1) {
        switch (c) {
        case 'v':
            ms_global.verbose++;
            ms_h5_set_verbose(1);
            break;
        case OPT_GLOBAL_QUIET: ms_global.quiet = 1; break;
        case OPT_GLOBAL_DEVICE: ms_global.device = optarg; break;
        case 'h': fputs(spec->help_text, stdout); return *status = 0;
        case ':':
            *status = ms_usage_error(spec->cmd, "option '%s' needs a value", argv[optind - 1]);
            return 0;
        case '?':
            *status = ms_usage_error(spec->cmd, "unknown option '%s'", argv[optind - 1]);
            return 0;
        default: return c;
        }
    }
    if (!spec->operands && optind < argc)
        *status = ms_usage_error(spec->cmd, "unexpected argument '%s'", argv[optind]);
    return 0;
}

int ms_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "maxsim%s%s: ", cmd ? " " : "", cmd ? cmd : "");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'maxsim%s%s --help'.\n", cmd ? " " : "", cmd ? cmd : "");
    return MS_ERR_INPUT;
}

int ms_parse_u64(const char *cmd, const char *opt, const char *arg, uint64_t min, uint64_t *out)
{
    char *end;
    unsigned long long v;

    if (!arg || !*arg || *arg == '-' || *arg == '+')
        goto bad;
    errno = 0;
    v = strtoull(arg, &end, 10);
    if (errno || *end || v < min)
        goto bad;
    *out = v;
    return 0;
bad:
    return ms_usage_error(cmd, "%s takes an integer >= %llu (e.g. %s %llu), got '%s'", opt,
                          (unsigned long long)min, opt, (unsigned long long)(min > 10 ? min : 10),
                          arg ? arg : "");
}

int ms_close_stdout(void)
{
    static int closed;

    if (closed)
        return 0;
    closed = 1;
    if (fflush(stdout) != 0 || ferror(stdout) || fclose(stdout) != 0) {
        ms_fail(MS_ERR_RUNTIME, "cannot write to standard output: %s", strerror(errno));
        return MS_ERR_RUNTIME;
    }
    return 0;
}
