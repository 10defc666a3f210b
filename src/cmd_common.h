/*
 * cmd_common.h - what search, score and rerank share: the query/document
 * input options, opening both inputs with their checks, the device, block
 * sizing, and the progress line.
 */
#ifndef MS_CMD_COMMON_H
#define MS_CMD_COMMON_H

#include <getopt.h>
#include <stdint.h>

#include "cl_dev.h"
#include "devset.h"
#include "idmap.h"
#include "run.h"
#include "src.h"

/* Long options shared by the scoring commands (their values are the enum). */
enum {
    OPT_QUERY_LENGTHS = 1000,
    OPT_DOC_LENGTHS,
    OPT_QUERY_IDS,
    OPT_DOC_IDS,
    OPT_NORMALIZE,
    OPT_FORMAT,
    OPT_CHUNK_DOCS,
    OPT_QUERY_BATCH,
    OPT_RUN_TAG,
    OPT_PROGRESS,
    OPT_PRECISION,
};

/* The entries for -o, --format and --run-tag in a `struct option` table. */
#define MS_OUTPUT_LONGOPTS                                                                         \
    { "output", required_argument, NULL, 'o' }, { "format", required_argument, NULL, OPT_FORMAT }, \
    {                                                                                              \
        "run-tag", required_argument, NULL, OPT_RUN_TAG                                            \
    }

/* The entries of those options for a command's `struct option` table. */
#define MS_INPUTS_LONGOPTS                                                                         \
    { "queries", required_argument, NULL, 'q' }, { "docs", required_argument, NULL, 'd' },         \
        { "normalize", no_argument, NULL, OPT_NORMALIZE },                                         \
        { "query-lengths", required_argument, NULL, OPT_QUERY_LENGTHS },                           \
        { "doc-lengths", required_argument, NULL, OPT_DOC_LENGTHS },                               \
        { "query-ids", required_argument, NULL, OPT_QUERY_IDS },                                   \
        { "doc-ids", required_argument, NULL, OPT_DOC_IDS },                                       \
        { "chunk-docs", required_argument, NULL, OPT_CHUNK_DOCS },                                 \
        { "query-batch", required_argument, NULL, OPT_QUERY_BATCH },                               \
        { "precision", required_argument, NULL, OPT_PRECISION },                                   \
    {                                                                                              \
        "progress", no_argument, NULL, OPT_PROGRESS                                                \
    }

struct ms_inputs_opts {
    /* the output: -o, --format, --run-tag, -k (set their defaults first) */
    const char *out_path, *format, *tag;
    uint64_t k;
    const char *queries, *docs;
    struct ms_src_opts qopts, dopts;
    int normalize;
    uint64_t chunk_docs;  /* 0: from device memory */
    uint64_t query_batch; /* 0: automatic */
    int progress;         /* --progress: even when stderr is not a terminal */
    int precision;        /* --precision: enum ms_precision */
    /* --shard I/N (search; also set by mpirun): score only shard I of N
     * contiguous, near-equal ranges of document rows. shard_count 0: all. */
    uint64_t shard_index, shard_count;
};

/* Parse a --precision value into *out (enum ms_precision): 0, or 2 after printing a usage
 * error. */
int ms_parse_precision(const char *cmd, const char *arg, int *out);

/* The precision a run of n devices uses for inputs of this dim: `precision`, except tf32 where
 * some device cannot give it (ms_scorer_tf32_ok): then exact, after one warning. */
int ms_precision_settle(const struct ms_cl *cls, int n, int precision, uint32_t dim);

/* Parse --shard I/N (0 <= I < N) into o; 0, or 2 after a usage error. */
int ms_parse_shard(const char *cmd, const char *arg, struct ms_inputs_opts *o);

/* The document rows [*first, *first + *n) of the shard of o over n_rows rows
 * (all of them without --shard). Shard I holds rows from I*n_rows/N on. */
void ms_shard_rows(const struct ms_inputs_opts *o, uint64_t n_rows, uint64_t *first, uint64_t *n);

/* Handle one of the shared options (those above, and -o, --format,
 * --run-tag, -k); returns 1 if it was one, 0 if not, or 2 (after printing a
 * usage error) for a bad value. */
int ms_inputs_option(const char *cmd, struct ms_inputs_opts *o, int c, const char *arg);

/* MAXSIM_READ_THREADS into *threads (0 when unset: the default); 0, or 2 after a usage
 * error for a value that is not 1 to 256. */
int ms_read_threads_env(const char *cmd, int *threads);

/* Open queries and documents and check they can be scored together (both
 * given, same dim); their reads use MAXSIM_READ_THREADS threads. Prints the error and
 * returns the exit status on failure. */
int ms_inputs_open(const char *cmd, const struct ms_inputs_opts *o, struct ms_src *q,
                   struct ms_src *d);

/* Refuse duplicate ids (they name the rows of outputs): 0, or the exit
 * status after printing an error naming the file (ids_path, else input). */
int ms_check_unique_ids(const struct ms_ids *ids, const char *ids_path, const char *input);

/* Check a --run-tag value (one word): 0, or 2 after printing a usage error. */
int ms_parse_run_tag(const char *cmd, const char *arg);

/* Read a candidate run through the id maps (ms_cands_read); with
 * --skip-missing, one warning counts the candidates dropped. Prints the error
 * and returns the exit status on failure. */
int ms_read_candidates(const char *path, const struct ms_idmap *qmap, const struct ms_idmap *dmap,
                       int skip_missing, struct ms_cand **out, uint64_t *n);

struct ms_wfile;

/* The end of a command's output: when rc is MS_OK, commit *w (if any), else
 * remove it; *w is then NULL. Prints the error if there is one; returns the
 * status. */
int ms_output_finish(struct ms_wfile **w, int rc, struct ms_err *err);

/* Open the device of --device (ms_global.device); prints the error. A spec
 * of several devices is refused: this is for the commands that use one. */
int ms_device_open(struct ms_cl *cl);

/* Open every device of --device ("all", "0,2", or one), for the commands
 * that spread their work over several; prints the error. Under mpirun a
 * single-device spec picks the rank's device of its node. */
int ms_devices_open(struct ms_devset *devs);
void ms_devices_close(struct ms_devset *devs);

/* ms_devices_open in two halves, so that the OpenCL platform starts while the command reads its
 * inputs: ms_devices_start begins opening the devices of --device on a thread (single: the one
 * device of a command that runs on one, refusing a spec of several at once: 2 after printing
 * the error, else 0); ms_devices_finish waits for them and prints what ms_devices_open prints
 * (the error, or with -v the devices, and how long the start took and how much of it
 * overlapped the reading). A command that fails in between calls ms_devset_cancel. */
int ms_devices_start(struct ms_devset_start *st, int single);
int ms_devices_finish(struct ms_devset_start *st, struct ms_devset *devs);

/* Print what the device layer noted (kernel cache, kernel source) with -v,
 * then close the device. */
void ms_device_close(struct ms_cl *cl);

/* Block limits from device memory (and --chunk-docs / --query-batch). */
void ms_plan_blocks(const struct ms_cl *cl, const struct ms_inputs_opts *o, const struct ms_src *q,
                    const struct ms_src *d, uint64_t *query_batch, uint64_t *max_docs,
                    uint64_t *max_tokens);

struct ms_progress;

/* Called for every block of scores: scores[i * ld + j] is query q0 + i
 * against document block->first_row + j. Only block's first_row and n_rows
 * are set: the call may run on another thread while the next block is
 * scored (its tokens are being replaced then). Calls come one at a time, in
 * block order. */
typedef int (*ms_block_fn)(void *ctx, uint64_t q0, uint64_t nq, const float *scores, uint64_t ld,
                           const struct ms_emb *block, struct ms_err *err);

/* search's block callback when the device selects (ms_scorer_run_topk): top_s[i * k + r] and
 * top_i[i * k + r] (a row of block), r < min(k, block->n_rows), are query q0 + i's best
 * documents of the block, best first (topk.h's order). */
typedef int (*ms_topk_block_fn)(void *ctx, uint64_t q0, uint64_t nq, uint32_t k, const float *top_s,
                                const uint32_t *top_i, const struct ms_emb *block,
                                struct ms_err *err);

struct ms_run_stats {
    double kernel_s, read_s, wait_s; /* OpenCL event time, reader thread, waiting on it */
    double upload_s;                 /* document copies to the device: event time */
    uint64_t read_bytes, upload_bytes;
    uint64_t blocks;
    uint64_t topk_blocks; /* blocks whose top k the device selected */
    double setup_s;       /* host wall time making scorers (programs, queries on the device) */
    /* the scoring loop's wall time (one device): waiting for the reader, in the scorer's calls
     * (copies, kernels, read-back), waiting for the previous block's callback */
    double loop_next_s, loop_run_s, loop_hand_s;
    /* around the loop (one device): reading the queries and starting the reader before it,
     * stopping the reader and freeing the scorer and buffers after it */
    double before_s, after_s;
};

/* With -v: one line of read, host-to-device and kernel rates and which of them bounds the
 * run (the stage that was busy longest), from what this run measured; total is the wall
 * time of the scoring. A second line gives the time spent making scorers. */
void ms_run_stats_print(const char *cmd, const struct ms_run_stats *st, double total);

/* The allocator of pinned host memory for the blocks a stream reads for devs (a, filled), or
 * NULL when blocks are spread over several devices (each copies from malloc'd memory). What it
 * frees is kept for the next allocation of the run (another query batch pins nothing anew)
 * and released by ms_devices_close, or left to the exit with the device. */
const struct ms_alloc *ms_pinned_alloc(const struct ms_devset *devs, struct ms_alloc *a);

/* Score every query against every document (of the shard, with --shard):
 * queries in batches of query_batch, each batch against the whole corpus
 * streamed in blocks (a stream is reopened for each further batch). With
 * several devices the blocks are spread over them (pool.c) and fn is called
 * in the order they finish, one call at a time. With device_k > 0 and devices
 * that can select (ms_scorer_topk_max), every block's top device_k of each query is
 * selected on the device and handed to tfn instead: only those come back. */
int ms_score_all(struct ms_devset *devs, const struct ms_inputs_opts *o, struct ms_src *q,
                 struct ms_src *d, uint64_t query_batch, uint64_t max_docs, uint64_t max_tokens,
                 ms_block_fn fn, uint32_t device_k, ms_topk_block_fn tfn, void *ctx,
                 struct ms_progress *prog, struct ms_run_stats *stats, struct ms_err *err);

/* MAXSIM_DEVICE_TOPK: *on = 1 (search selects on the device), 0 (it reads back every score) or
 * -1 when unset or empty (on the device unless it is a CPU); another value is a usage error
 * (returns 2, else 0). */
int ms_device_topk_env(const char *cmd, int *on);

/* The progress line on stderr: shown when stderr is a terminal (or with
 * --progress), never with -q; at most five updates a second. */
struct ms_progress {
    int on;
    const char *what;
    const char *unit; /* "documents" unless set after ms_progress_init */
    uint64_t total, done;
    double start, last;
};
void ms_progress_init(struct ms_progress *p, int force, const char *what, uint64_t total);
void ms_progress_add(struct ms_progress *p, uint64_t n);
void ms_progress_end(struct ms_progress *p);

#endif
