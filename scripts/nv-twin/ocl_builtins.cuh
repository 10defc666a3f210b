/*
 * ocl_builtins.cuh - the OpenCL C built-ins that the NVIDIA kernels of kernels/maxsim_nv.cl and
 * kernels/index.cl call, spelled in CUDA, for their twins (maxsim_nv_twin.cu, index_nv_twin.cu).
 * Included after <sys/types.h> (uint) and the CUDA headers.
 */
__device__ static inline size_t get_local_id(int d)
{
    return d == 0 ? threadIdx.x : threadIdx.y;
}
__device__ static inline size_t get_group_id(int d)
{
    return d == 0 ? blockIdx.x : blockIdx.y;
}
__device__ static inline uint as_uint(float v)
{
    return __float_as_uint(v);
}
__device__ static inline float as_float(uint v)
{
    return __uint_as_float(v);
}
__device__ static inline int as_int(float v)
{
    return __float_as_int(v);
}
__device__ static inline size_t get_global_size(int d)
{
    return d == 0 ? (size_t)gridDim.x * blockDim.x : (size_t)gridDim.y * blockDim.y;
}
__device__ static inline uint atomic_max(uint *p, uint v)
{
    return atomicMax(p, v);
}
