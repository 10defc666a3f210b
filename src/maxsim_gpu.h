/*
 * maxsim_gpu.h - private to the scorer (src/maxsim_cl.c): the portable GPU path, the host side
 * of kernels/maxsim_gpu.cl (plain OpenCL C 1.2, register-blocked tiles in __local; for any GPU
 * without a vendor path, and NVIDIA where the tensor-core path is off or does not take the input).
 *
 * The path owns its program, its prepared queries and its document buffers; the scorer only asks
 * gpu_wanted at creation and hands every ms_scorer_run / ms_scorer_run_pairs to it when it is on.
 * Environment: MAXSIM_KERNEL=gpu forces it on any device (PoCL included: that is how `make test`
 * runs the suite through it), MAXSIM_KERNEL=portable forbids it; MAXSIM_GPU_VARIANT=
 * "tm,tn,rx,cx,bk,qres,wgmul[,pf[,split[,db[,regs[,ld]]]]]" replaces the tiling chosen from the
 * device limits (see gpu_pick).
 */
#ifndef MS_MAXSIM_GPU_H
#define MS_MAXSIM_GPU_H

#include <stdint.h>

#include "cl_dev.h"
#include "emb.h"
#include "err.h"
#include "maxsim.h"
#include "topk_cl.h"

struct ms_gpu;

/* Whether the scorer should take the portable GPU path on this device. */
int gpu_wanted(const struct ms_cl *cl);
/* Build the program (variant from the device and the query rows), prepare and upload the
 * queries, size the document buffers from opts (max_docs, max_tokens, max_buffer). */
int gpu_create(struct ms_gpu **out, struct ms_cl *cl, const struct ms_emb *queries,
               const struct ms_scorer_opts *opts, struct ms_err *err);
/* As ms_scorer_run (arguments already checked by the caller); adds kernel seconds to *kernel_s.
 * With a sink (ms_scorer_run_topk), every group's scores go to it instead of `scores`. */
int gpu_run(struct ms_gpu *g, const struct ms_emb *docs, float *scores, uint64_t ld,
            struct ms_topk_sink *sink, double *kernel_s, struct ms_err *err);
/* Seconds (from events) and bytes of every document upload so far. */
void gpu_uploads(const struct ms_gpu *g, double *seconds, uint64_t *bytes);
/* As ms_scorer_run_pairs (indices already checked): the same kernels as gpu_run on the rows the
 * pairs name, so the same bits. */
int gpu_run_pairs(struct ms_gpu *g, const struct ms_emb *docs, const uint32_t *pair_q,
                  const uint32_t *pair_d, uint64_t n_pairs, float *out, double *kernel_s,
                  struct ms_err *err);
/* The tuning table's keys for these queries, and the variants `bench --tune` times (as the
 * tensor-core path's ms_scorer_tune_keys / ms_scorer_tune_candidates, which hand over to these
 * when that path is not wanted). */
int gpu_tune_keys(const struct ms_cl *cl, const struct ms_emb *q, const struct ms_scorer_opts *o,
                  char *device, size_t dcap, char *klass, size_t kcap);
int gpu_tune_candidates(const struct ms_cl *cl, const struct ms_emb *q,
                        const struct ms_scorer_opts *o, char (*out)[64], int max);
/* What `-v` and `bench` name as the scorer's path: the kernel and its tiling. */
const char *gpu_describe(const struct ms_gpu *g);
void gpu_release(struct ms_gpu *g);

#endif
