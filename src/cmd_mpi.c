/*
 * cmd_mpi.c - running a command under mpirun (cmd_mpi.h).
 *
 * The ranks' top-k are combined by MPI_Reduce with an operation that merges
 * two sorted top-k lists into one: a tree of merges (log2 N rounds) whose
 * result does not depend on its shape, because the order (score desc, row
 * asc; topk.c) is total and the rows are global. Every buffer holds exactly
 * k entries per query; empty slots hold a sentinel that ranks below every
 * real entry (NaN, row UINT64_MAX).
 *
 * Built only with MS_MPI (make MPI=1); otherwise every function is a no-op.
 */
#include "cmd_mpi.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"

#ifndef MS_MPI

int ms_mpi_run(const char *name, int (*run)(int, char **), int argc, char **argv)
{
    return run(argc, argv);
}
int ms_mpi_rank(void)
{
    return 0;
}
int ms_mpi_size(void)
{
    return 1;
}
int ms_mpi_local_rank(void)
{
    return -1;
}
int ms_mpi_checkpoint(const char *model, struct ms_err *err)
{
    return MS_OK;
}
int ms_mpi_gather_topk(struct ms_topk *t, uint64_t k, uint64_t n_docs, struct ms_err *err)
{
    return MS_OK;
}

#else

#include <fcntl.h>
#include <math.h>
#include <mpi.h>
#include <unistd.h>

static struct {
    int active; /* started by mpirun with more than one rank */
    int rank, size, local_rank;
    int concluded;    /* the ranks have agreed on the job's end (a failure, or the gather) */
    int saved_stderr; /* the real stderr of a rank > 0, or -1 */
    FILE *captured;   /* what a rank > 0 wrote to stderr */
} g = { 0, 0, 1, -1, 0, -1, NULL };

int ms_mpi_rank(void)
{
    return g.rank;
}
int ms_mpi_size(void)
{
    return g.size;
}
int ms_mpi_local_rank(void)
{
    return g.local_rank;
}

/* Started by a process manager? (Open MPI's mpirun, PMI, PMIx: srun too.) */
static int under_mpirun(void)
{
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMI_SIZE") || getenv("PMIX_RANK");
}

/* Copy what this rank wrote to stderr to the real stderr. */
static void show_captured(void)
{
    char buf[4096];
    ssize_t n;

    if (!g.captured || g.saved_stderr < 0)
        return;
    fflush(stderr);
    if (fseek(g.captured, 0, SEEK_SET) != 0)
        return;
    while ((n = read(fileno(g.captured), buf, sizeof buf)) > 0)
        if (write(g.saved_stderr, buf, (size_t)n) != n)
            break;
}

/* Agree on the job's status: the first failing rank's (its message shown,
 * once), or MS_OK. Collective. */
static int exchange(int rc)
{
    int first = rc != MS_OK ? g.rank : g.size, who;

    MPI_Allreduce(&first, &who, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (who == g.size)
        return MS_OK;
    g.concluded = 1;
    if (who == g.rank && g.rank > 0)
        show_captured();
    MPI_Bcast(&rc, 1, MPI_INT, who, MPI_COMM_WORLD);
    return rc;
}

int ms_mpi_run(const char *name, int (*run)(int, char **), int argc, char **argv)
{
    MPI_Comm node;
    int rc;

    if (!under_mpirun())
        return run(argc, argv);
    MPI_Init(NULL, NULL);
    MPI_Comm_rank(MPI_COMM_WORLD, &g.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g.size);
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, g.rank, MPI_INFO_NULL, &node);
    MPI_Comm_rank(node, &g.local_rank);
    MPI_Comm_free(&node);
    g.active = g.size > 1;
    if (g.active && g.rank > 0) {
        const int null = open("/dev/null", O_WRONLY);
        fflush(stdout);
        fflush(stderr);
        g.saved_stderr = dup(STDERR_FILENO);
        g.captured = tmpfile();
        if (null < 0 || g.saved_stderr < 0 || !g.captured || dup2(null, STDOUT_FILENO) < 0 ||
            dup2(fileno(g.captured), STDERR_FILENO) < 0) {
            fprintf(stderr, "maxsim: error: rank %d cannot redirect its output\n", g.rank);
            MPI_Abort(MPI_COMM_WORLD, MS_ERR_RUNTIME);
        }
        close(null);
    }
    if (g.active && strcmp(name, "search") != 0)
        rc = g.rank == 0 ? ms_fail(MS_ERR_INPUT,
                                   "under mpirun only 'search' shares its work over the ranks; "
                                   "run '%s' as one process",
                                   name)
                         : MS_ERR_INPUT;
    else
        rc = run(argc, argv);
    if (g.active && !g.concluded) /* failed: the others learn it at their next point */
        rc = exchange(rc);
    if (g.active && g.rank > 0 && rc == MS_OK && ms_global.verbose)
        show_captured();
    if (g.captured)
        fclose(g.captured);
    MPI_Finalize();
    return rc;
}

struct entry {
    float score;
    uint32_t pad;
    uint64_t row;
};

/* The order of topk.c: 1 if a ranks strictly before b. */
static int better(const struct entry *a, const struct entry *b)
{
    if (isnan(a->score) || isnan(b->score)) {
        if (isnan(a->score) != isnan(b->score))
            return isnan(b->score);
        return a->row < b->row;
    }
    return a->score > b->score || (a->score == b->score && a->row < b->row);
}

static uint64_t merge_k; /* entries per query in the reduction's buffers */

/* MPI_Op: inout[q] = the best k of in[q] and inout[q], both sorted best first. */
static void merge_op(void *in, void *inout, int *len, MPI_Datatype *type)
{
    const uint64_t k = merge_k;
    struct entry *tmp = malloc(k * sizeof *tmp);

    if (!tmp)
        MPI_Abort(MPI_COMM_WORLD, MS_ERR_RUNTIME);
    for (int q = 0; q < *len; q++) {
        const struct entry *a = (const struct entry *)in + (uint64_t)q * k;
        struct entry *b = (struct entry *)inout + (uint64_t)q * k;
        uint64_t i = 0, j = 0;
        for (uint64_t o = 0; o < k; o++)
            tmp[o] = better(&a[i], &b[j]) ? a[i++] : b[j++];
        memcpy(b, tmp, k * sizeof *tmp);
    }
    free(tmp);
}

/* Every rank's device model; MS_OK when they are all rank 0's. Collective. */
static int same_models(const char *model, struct ms_err *err)
{
    enum { LEN = 400 };
    char mine[LEN] = { 0 }, *all = malloc((size_t)g.size * LEN);
    int rc = MS_OK;

    if (!all)
        MPI_Abort(MPI_COMM_WORLD, MS_ERR_RUNTIME);
    snprintf(mine, sizeof mine, "%s", model);
    MPI_Allgather(mine, LEN, MPI_CHAR, all, LEN, MPI_CHAR, MPI_COMM_WORLD);
    for (int r = 1; r < g.size && rc == MS_OK; r++)
        if (strcmp(all, all + (size_t)r * LEN) != 0) {
            rc = MS_ERR_INPUT;
            if (g.rank == 0)
                ms_err_set(err, rc,
                           "ranks 0 and %d ran on different devices ('%.150s' and '%.150s'): "
                           "scores could differ in the last bit from one to the other; run the "
                           "job on devices of one model",
                           r, all, all + (size_t)r * LEN);
            else
                err->status = rc, err->msg[0] = '\0';
        }
    free(all);
    return rc;
}

/* A point where every rank succeeded so far, or MS_OK. */
static int agree(struct ms_err *err)
{
    const int rc = exchange(MS_OK);
    if (rc != MS_OK) {
        err->status = rc;
        err->msg[0] = '\0';
    }
    return rc;
}

int ms_mpi_checkpoint(const char *model, struct ms_err *err)
{
    int rc;

    if (!g.active)
        return MS_OK;
    if ((rc = agree(err)) != MS_OK)
        return rc;
    if ((rc = same_models(model, err)) != MS_OK)
        g.concluded = 1; /* every rank saw the same list: all stop here */
    return rc;
}

int ms_mpi_gather_topk(struct ms_topk *t, uint64_t k, uint64_t n_docs, struct ms_err *err)
{
    const uint64_t kk = k < n_docs ? k : n_docs, nq = t->n_queries;
    struct entry *mine = NULL, *all = NULL;
    struct ms_topk merged;
    MPI_Datatype one_query;
    MPI_Op op;
    unsigned long long cells;
    int rc;

    if (!g.active)
        return MS_OK;
    rc = agree(err);
    g.concluded = 1;
    if (rc != MS_OK)
        return rc;
    if (kk == 0 || nq == 0)
        return MS_OK;
    if (nq > INT32_MAX || ms_mul_u64(nq, kk, &cells) || kk * sizeof(struct entry) > INT32_MAX)
        MPI_Abort(MPI_COMM_WORLD, MS_ERR_RUNTIME); /* ms_topk_init refused larger ones */
    mine = malloc(cells * sizeof *mine);
    if (g.rank == 0)
        all = malloc(cells * sizeof *all);
    if (!mine || (g.rank == 0 && !all))
        MPI_Abort(MPI_COMM_WORLD, MS_ERR_RUNTIME);
    for (uint64_t q = 0; q < nq; q++)
        for (uint64_t i = 0; i < kk; i++) {
            struct entry *e = &mine[q * kk + i];
            const int held = i < t->count[q];
            e->score = held ? t->score[q * t->k + i] : NAN;
            e->pad = 0;
            e->row = held ? t->row[q * t->k + i] : UINT64_MAX;
        }
    merge_k = kk;
    MPI_Type_contiguous((int)(kk * sizeof(struct entry)), MPI_BYTE, &one_query);
    MPI_Type_commit(&one_query);
    MPI_Op_create(merge_op, 1, &op);
    MPI_Reduce(mine, all, (int)nq, one_query, op, 0, MPI_COMM_WORLD);
    MPI_Op_free(&op);
    MPI_Type_free(&one_query);
    free(mine);
    if (g.rank != 0)
        return MS_OK;

    if ((rc = ms_topk_init(&merged, nq, kk, err)) != MS_OK) {
        free(all);
        return rc;
    }
    for (uint64_t q = 0; q < nq; q++) {
        uint64_t n = 0;
        for (uint64_t i = 0; i < kk && all[q * kk + i].row != UINT64_MAX; i++, n++) {
            merged.score[q * kk + i] = all[q * kk + i].score;
            merged.row[q * kk + i] = all[q * kk + i].row;
        }
        merged.count[q] = n;
    }
    free(all);
    ms_topk_release(t);
    *t = merged;
    return MS_OK;
}

#endif
