/*
 * mma_peak.cu - the ceiling of the instruction the tensor-core path uses: how many TFLOP/s
 * mma.sync.m16n8k16 (f16 x f16 -> f32) sustains on this GPU when nothing else limits it, and the
 * same with one ldmatrix.x4 from shared memory per 4 mma (the staged kernel's ratio at MR = 2)
 * and per 8 mma (MR = 4). The count of the floor for kernels/maxsim_nv.cl: cuBLAS and wgmma set
 * the GEMM ceiling, but an OpenCL kernel can only reach what mma.sync reaches.
 * Build (no GPU needed): nvcc -arch=sm_90 -O3 -o mma_peak scripts/nv-twin/mma_peak.cu
 */
#include <cstdio>
#include <cuda_runtime.h>

template <int CHAINS, int MMA_PER_LDSM>
__global__ void __launch_bounds__(128) peak(float *out, int iters)
{
    __shared__ __align__(16) unsigned short sm[64 * 136];
    for (int i = threadIdx.x; i < 64 * 136; i += blockDim.x)
        sm[i] = (unsigned short)(0x3c00 + (i & 7)); /* small finite halves */
    __syncthreads();
    unsigned a[4], b[4];
    float c[CHAINS][4];
    for (int r = 0; r < 4; r++) {
        a[r] = 0x3c003c00u ^ (threadIdx.x * 131u + r);
        b[r] = 0x3c003c00u ^ (threadIdx.x * 17u + r);
    }
    for (int k = 0; k < CHAINS; k++)
        for (int r = 0; r < 4; r++)
            c[k][r] = 0.f;
    const unsigned lane = threadIdx.x & 31;
    unsigned saddr = (unsigned)__cvta_generic_to_shared(sm + (lane & 15) * 136 + (lane >> 4) * 8);
    for (int it = 0; it < iters; it++) {
#pragma unroll
        for (int k = 0; k < CHAINS; k++) {
            if (MMA_PER_LDSM && k % MMA_PER_LDSM == 0)
                asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
                             : "=r"(b[0]), "=r"(b[1]), "=r"(b[2]), "=r"(b[3])
                             : "r"(saddr + (unsigned)((k / (MMA_PER_LDSM ? MMA_PER_LDSM : 1)) % 4) * 32));
            asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, "
                         "{%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
                         : "+f"(c[k][0]), "+f"(c[k][1]), "+f"(c[k][2]), "+f"(c[k][3])
                         : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[k & 1 ? 2 : 0]),
                           "r"(b[k & 1 ? 3 : 1]));
        }
    }
    float s = 0.f;
    for (int k = 0; k < CHAINS; k++)
        for (int r = 0; r < 4; r++)
            s += c[k][r];
    out[blockIdx.x * blockDim.x + threadIdx.x] = s;
}

template <int CHAINS, int M>
static void run(const char *name, int sms, float *out)
{
    const int iters = 4096, blocks = sms * 8;
    cudaEvent_t e0, e1;
    cudaEventCreate(&e0);
    cudaEventCreate(&e1);
    peak<CHAINS, M><<<blocks, 128>>>(out, 16); /* warm-up */
    float best = 1e30f;
    for (int rep = 0; rep < 5; rep++) {
        cudaEventRecord(e0);
        peak<CHAINS, M><<<blocks, 128>>>(out, iters);
        cudaEventRecord(e1);
        cudaEventSynchronize(e1);
        float ms;
        cudaEventElapsedTime(&ms, e0, e1);
        best = ms < best ? ms : best;
    }
    const double flop = 2.0 * 16 * 8 * 16 * (double)CHAINS * iters * blocks * 4;
    printf("%-34s %8.1f TFLOP/s (%s)\n", name, flop / best * 1e-9,
           cudaGetErrorString(cudaGetLastError()));
}

int main()
{
    int sms = 0;
    cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0);
    float *out;
    cudaMalloc(&out, (size_t)sms * 8 * 128 * sizeof(float));
    run<8, 0>("mma.sync m16n8k16, 8 chains", sms, out);
    run<16, 0>("mma.sync m16n8k16, 16 chains", sms, out);
    run<8, 4>("+ ldmatrix.x4 per 4 mma", sms, out);
    run<16, 8>("+ ldmatrix.x4 per 8 mma", sms, out);
    return 0;
}
