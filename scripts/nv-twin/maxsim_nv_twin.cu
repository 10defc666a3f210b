/*
 * maxsim_nv_twin.cu - kernels/maxsim_nv.cl compiled as CUDA, so that nvcc and ptxas check every
 * inline PTX instruction of the OpenCL kernel (syntax, operand types, target sm_90) on a machine
 * without a GPU: `sh scripts/nv-twin/build.sh`. This file only maps the OpenCL C spellings the
 * kernel uses onto CUDA and then includes the .cl file itself, so nothing is copied by hand;
 * the OpenCL side's own spellings (__local pointers to integers, `asm`) stay unchecked here.
 * It can also be launched on a GPU (the ms_nv_* kernels are extern "C" __global__), which
 * gives a CUDA-side reference run of the very same code.
 */
#include <cuda_fp16.h>
#include <sys/types.h> /* ulong, uint, ushort (glibc) */
#include <stddef.h>

#define MS_NV_CUDA 1
#define MS_NVIDIA 1

typedef __half half;

#define MS_GLOBAL
#define MS_LOCAL_PTR
#define MS_KERNEL extern "C" __global__
#define MS_REQD_WG __launch_bounds__(32 * MS_NV_WARPS)
#define MS_REQD_WG_STREAM __launch_bounds__(32 * MS_NV_SW)
#define MS_SHARED_ADDR(p) ((uint)__cvta_generic_to_shared((const void *)(p)))
#define MS_GLOBAL_ADDR(p) ((ulong)__cvta_generic_to_global((const void *)(p)))
#define MS_BARRIER() __syncthreads()
#define MS_ASM asm volatile
#define restrict __restrict__

__device__ static inline size_t get_global_id(int d)
{
    return d == 0 ? (size_t)blockIdx.x * blockDim.x + threadIdx.x
                  : (size_t)blockIdx.y * blockDim.y + threadIdx.y;
}
#include "ocl_builtins.cuh"
__device__ static inline float vload_half(size_t i, const half *p)
{
    return __half2float(p[i]);
}
__device__ static inline void vstore_half_rte(float v, size_t i, half *p)
{
    p[i] = __float2half_rn(v);
}
struct __align__(16) uint4_cl { uint x, y, z, w; };
#define uint4 uint4_cl

/* OpenCL's `static inline` helpers become device functions. */
#define static static __device__
#include "../../kernels/maxsim_nv.cl"
#undef static
