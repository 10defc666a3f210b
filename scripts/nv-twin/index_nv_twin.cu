/*
 * index_nv_twin.cu - the NVIDIA kernels of kernels/index.cl (index_assign_nv and
 * index_assign_nv_tiled) compiled as CUDA, so that nvcc and ptxas check their inline PTX
 * (cp.async, mma.sync, shfl.sync) for sm_90 and report registers, spills and shared memory
 * on a machine without a GPU: `sh scripts/nv-twin/build.sh`. As maxsim_nv_twin.cu does, this
 * file only maps the OpenCL C spellings onto CUDA (IX_NV_CUDA: the portable kernels are left
 * out) and includes the .cl file itself.
 */
#include <cuda_runtime.h>
#include <math.h>
#include <stddef.h>
#include <sys/types.h> /* ulong, uint (glibc) */

#define IX_NV_CUDA 1
#define MS_NVIDIA  1

#define IX_GLOBAL
#define IX_LOCAL_PTR
#define IX_KERNEL(wg)              extern "C" __global__ __launch_bounds__(wg) void
#define IX_BARRIER()               __syncthreads()
#define IX_SHARED_ADDR(p)          ((uint)__cvta_generic_to_shared((const void *)(p)))
#define IX_GLOBAL_ADDR(p)          ((ulong)__cvta_generic_to_global((const void *)(p)))
#define IX_ZERO4                   make_uint4(0u, 0u, 0u, 0u)
#define IX_ATOMIC_INC(p)           atomicAdd((p), 1u)
#define IX_LOCAL_ARRAY(T, name, n) __shared__ __align__(16) T name[n]
#define IX_ASM                     asm volatile
#define restrict                   __restrict__

#include "ocl_builtins.cuh"

/* OpenCL's `static inline` helpers become device functions. */
#define static static __device__
#include "../../kernels/index.cl"
#undef static
