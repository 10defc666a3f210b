/*
 * index_cl.h - the device side of `maxsim index` (host side of
 * kernels/index.cl): nearest-centroid assignment of a block of points and
 * ColBERTv2 residual compression of the same block.
 *
 * Usage: set the centroids (and the per-centroid bias that turns the
 * largest dot product into the nearest centroid, or none), load a block of
 * points, assign, and optionally compress the block against the centroids
 * with the codes just computed. Buffers grow to the largest block seen.
 */
#ifndef MS_INDEX_CL_H
#define MS_INDEX_CL_H

#include <stdint.h>

#include "cl_dev.h"
#include "emb.h"
#include "err.h"

struct ms_index_dev;

int ms_index_dev_create(struct ms_index_dev **out, struct ms_cl *cl, uint32_t dim,
                        struct ms_err *err);
void ms_index_dev_free(struct ms_index_dev *d);

/* Centroids [k, dim] float32 and bias [k] (NULL: all 0). Copied. */
int ms_index_dev_set_centroids(struct ms_index_dev *d, const float *cents, const float *bias,
                               uint32_t k, struct ms_err *err);
/* Points [n, dim] (float32 or float16), row-major, as a reader delivers
 * them; they stay loaded until the next call. */
int ms_index_dev_load(struct ms_index_dev *d, const void *x, enum ms_dtype dtype, uint64_t n,
                      struct ms_err *err);
/* codes[i] = argmax_c <x_i, c> + bias[c] (ties: lower c) for the loaded points. */
int ms_index_dev_assign(struct ms_index_dev *d, uint32_t *codes, struct ms_err *err);
/* The assignment kernels, all giving the same codes (the same fma chains):
 * one point a work-item (GPUs without room for the tiled one), 16 points a
 * work-item in vectors (the default on CPUs), 128 x 128 tiles in local
 * memory (the default on GPUs other than NVIDIA's). Tests compare them.
 * The last two give the same codes too, from float16 scores and an exact
 * re-check (kernels/index.cl, "Approximate assignment"): the points whose
 * best centroid the float16 scores cannot settle are assigned again by the
 * last exact kind set (the device's default at first). APPROX is the
 * portable reference of that scheme (slow: for tests, or forced with
 * MAXSIM_INDEX_APPROX=1); NV runs it on the tensor cores, the default on
 * NVIDIA when dim is a multiple of 32 up to 256, unless MAXSIM_INDEX_NV=0.
 * Centroids with a value beyond float16's range are assigned exactly. */
enum ms_index_assign {
    MS_INDEX_ASSIGN_SIMPLE,
    MS_INDEX_ASSIGN_V16,
    MS_INDEX_ASSIGN_TILED,
    MS_INDEX_ASSIGN_APPROX,
    MS_INDEX_ASSIGN_NV,
};
/* MS_INDEX_ASSIGN_NV where the device has no tensor-core kernel (not
 * NVIDIA, or dim not a multiple of 32 up to 256) is MS_INDEX_ASSIGN_APPROX. */
void ms_index_dev_set_assign(struct ms_index_dev *d, enum ms_index_assign kind);
enum ms_index_assign ms_index_dev_get_assign(const struct ms_index_dev *d);
/* The assignment in words, for -v: "float32", or the float16 pass (on
 * NVIDIA naming its kernel and shape, see MAXSIM_INDEX_NV_KERNEL in
 * src/index_cl.c) and its exact re-check. */
const char *ms_index_dev_assign_name(const struct ms_index_dev *d);
/* Tests only: scale the error bound of the approximate kinds (1, the
 * default, is the proven bound; 0 settles every point without a margin, so
 * near ties keep their float16 codes and the codes may differ). */
void ms_index_dev_set_margin(struct ms_index_dev *d, double scale);
/* What the approximate kinds did so far: points assigned, points that went
 * to the exact re-check, and kernel seconds of the two passes. */
struct ms_index_recheck {
    uint64_t points, rechecked;
    double approx_s, recheck_s;
};
void ms_index_dev_recheck_stats(const struct ms_index_dev *d, struct ms_index_recheck *out);
/* Packed residual rows [n, dim * nbits / 8] of the loaded points against
 * the codes of the last assign, bucketed by the 2^nbits - 1 cutoffs. */
int ms_index_dev_compress(struct ms_index_dev *d, const float *cutoffs, uint32_t nbits,
                          uint8_t *packed, struct ms_err *err);
/* Kernel time so far (OpenCL events), seconds; and the most device memory
 * the buffers held, bytes. */
double ms_index_dev_kernel_s(const struct ms_index_dev *d);
uint64_t ms_index_dev_peak_bytes(const struct ms_index_dev *d);

#endif
