/*
 * start-probe.c - where a short `maxsim search` spends its time outside the kernels (issue 10):
 * the OpenCL platform and context start, how much of a page-cached file a few threads read
 * into pageable memory while the start runs, and the rates of the ways those bytes can then
 * reach the device (pageable clEnqueueWriteBuffer; threads copying into pinned slots that the
 * device copies from; reading straight into pinned slots, as maxsim does now). Not part of the
 * build; for docs/benchmarks.md:
 *   cc -O2 -std=c11 -D_GNU_SOURCE -o build/start-probe scripts/start-probe.c -lOpenCL -pthread
 *   build/start-probe FILE [THREADS [PREFETCH_MIB [exit|_exit|fork]]]
 * Prints one `key value` line per measure (seconds or GB/s) on stdout, flushed, then leaves by
 * `exit` (the driver's exit handlers run), `_exit` (they do not) or `fork` (a child keeps the
 * device files open and leaves later, so the driver's teardown is not the parent's):
 * scripts/start-probe.py times each from outside.
 */
#define CL_TARGET_OPENCL_VERSION 120
#define CL_USE_DEPRECATED_OPENCL_1_2_APIS
#include <CL/cl.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define BLOCK (48u << 20) /* about maxsim's block for dim 128 float16: 190,650 tokens */
#define PIECE (4u << 20)

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void die(const char *what, int rc)
{
    fprintf(stderr, "start-probe: %s failed (%d)\n", what, rc);
    exit(1);
}

/* The device start, on its own thread as in maxsim. */
struct start {
    cl_platform_id plat;
    cl_device_id dev;
    cl_context ctx;
    cl_command_queue q;
    double t_plat, t_ctx, t_end;
};

static void *start_run(void *arg)
{
    struct start *s = arg;
    cl_uint n = 0;
    cl_int rc;
    const double t0 = now();
    if ((rc = clGetPlatformIDs(1, &s->plat, &n)) != CL_SUCCESS || n == 0)
        die("clGetPlatformIDs", rc);
    if ((rc = clGetDeviceIDs(s->plat, CL_DEVICE_TYPE_ALL, 1, &s->dev, &n)) != CL_SUCCESS)
        die("clGetDeviceIDs", rc);
    s->t_plat = now() - t0;
    s->ctx = clCreateContext(NULL, 1, &s->dev, NULL, NULL, &rc);
    if (rc != CL_SUCCESS)
        die("clCreateContext", rc);
    s->q = clCreateCommandQueue(s->ctx, s->dev, 0, &rc);
    if (rc != CL_SUCCESS)
        die("clCreateCommandQueue", rc);
    s->t_ctx = now() - t0 - s->t_plat;
    s->t_end = now();
    return NULL;
}

/* Threads reading (or copying) PIECE-sized pieces of a range, interleaved. */
struct reader {
    int fd;
    char *dst;
    const char *src; /* copy from here instead of reading */
    size_t lo, hi;
    int id, n;
    volatile int *stop;
    size_t done;
};

static void *reader_run(void *arg)
{
    struct reader *r = arg;
    for (size_t off = r->lo + (size_t)r->id * PIECE; off < r->hi; off += (size_t)r->n * PIECE) {
        if (r->stop && *r->stop)
            break;
        const size_t m = r->hi - off < PIECE ? r->hi - off : PIECE;
        if (r->src)
            memcpy(r->dst + off - r->lo, r->src + off - r->lo, m);
        else if (pread(r->fd, r->dst + off - r->lo, m, (off_t)off) != (ssize_t)m)
            die("pread", -1);
        r->done += m;
    }
    return NULL;
}

/* [lo, hi) of the file (or of src) into dst with n threads; the bytes done. */
static size_t parallel(int fd, const char *src, char *dst, size_t lo, size_t hi, int n,
                       volatile int *stop)
{
    pthread_t th[256];
    struct reader r[256];
    size_t done = 0;
    for (int i = 0; i < n; i++) {
        r[i] = (struct reader){ fd, dst, src, lo, hi, i, n, stop, 0 };
        pthread_create(&th[i], NULL, reader_run, &r[i]);
    }
    for (int i = 0; i < n; i++) {
        pthread_join(th[i], NULL);
        done += r[i].done;
    }
    return done;
}

struct pin {
    cl_mem buf;
    char *p;
    cl_event ev;
};

static void pin_make(struct start *s, struct pin *p)
{
    cl_int rc;
    p->buf = clCreateBuffer(s->ctx, CL_MEM_READ_ONLY | CL_MEM_ALLOC_HOST_PTR, BLOCK, NULL, &rc);
    if (rc != CL_SUCCESS)
        die("clCreateBuffer (pinned)", rc);
    p->p = clEnqueueMapBuffer(s->q, p->buf, CL_TRUE, CL_MAP_WRITE, 0, BLOCK, 0, NULL, NULL, &rc);
    if (rc != CL_SUCCESS)
        die("clEnqueueMapBuffer", rc);
    p->ev = NULL;
}

int main(int argc, char **argv)
{
    const double t_main = now();
    if (argc < 2) {
        fprintf(stderr, "usage: start-probe FILE [THREADS [PREFETCH_MIB [exit|_exit|fork]]]\n");
        return 2;
    }
    const int threads = argc > 2 ? atoi(argv[2]) : 16;
    const size_t prefetch_mib = argc > 3 ? strtoull(argv[3], NULL, 10) : 1024;
    const char *how = argc > 4 ? argv[4] : "_exit";
    const int fd = open(argv[1], O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0)
        die("open", -1);
    const size_t size = (size_t)st.st_size / BLOCK * BLOCK;
    size_t pre = prefetch_mib << 20 < size ? prefetch_mib << 20 : size;
    pre = pre / BLOCK * BLOCK;

    /* 1. the start, and reading into pageable memory while it runs */
    struct start s = { 0 };
    pthread_t st_th;
    pthread_create(&st_th, NULL, start_run, &s);
    char *page = NULL;
    double t_read = 0, t_fault = 0, t_read_end = 0;
    size_t got = 0;
    if (pre) {
        const double t0 = now();
        page = mmap(NULL, pre, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (page == MAP_FAILED)
            die("mmap", -1);
        madvise(page, pre, MADV_HUGEPAGE);
        t_fault = now() - t0;
        got = parallel(fd, NULL, page, 0, pre, threads, NULL);
        t_read_end = now();
        t_read = t_read_end - t0;
    }
    pthread_join(st_th, NULL);
    printf("platform_s %.4f\ncontext_s %.4f\nstart_done_at_s %.4f\n", s.t_plat, s.t_ctx,
           s.t_end - t_main);
    printf("prefetch_mib %zu\nprefetch_s %.4f (mapping %.4f)\nprefetch_gbs %.2f\n"
           "prefetch_done_at_s %.4f\n",
           got >> 20, t_read, t_fault, t_read > 0 ? (double)got / t_read * 1e-9 : 0.0,
           pre ? t_read_end - t_main : 0.0);

    /* 2. pinned slots, device buffers */
    double t0 = now();
    struct pin pins[4];
    for (int i = 0; i < 4; i++)
        pin_make(&s, &pins[i]);
    cl_int rc;
    cl_mem dbuf[4];
    for (int i = 0; i < 4; i++) {
        dbuf[i] = clCreateBuffer(s.ctx, CL_MEM_READ_ONLY, BLOCK, NULL, &rc);
        if (rc != CL_SUCCESS)
            die("clCreateBuffer", rc);
    }
    printf("pinned_4x48mib_s %.4f\n", now() - t0);

    /* 3. pinned upload only: the link's rate */
    clEnqueueWriteBuffer(s.q, dbuf[0], CL_TRUE, 0, BLOCK, pins[0].p, 0, NULL, NULL);
    t0 = now();
    for (int i = 0; i < 20; i++)
        clEnqueueWriteBuffer(s.q, dbuf[i % 4], CL_FALSE, 0, BLOCK, pins[i % 4].p, 0, NULL, NULL);
    clFinish(s.q);
    printf("upload_pinned_gbs %.2f\n", 20.0 * BLOCK / (now() - t0) * 1e-9);

    if (pre) {
        /* 4. the prefetched bytes from pageable memory, as they are */
        t0 = now();
        for (size_t off = 0, i = 0; off < pre; off += BLOCK, i++)
            clEnqueueWriteBuffer(s.q, dbuf[i % 4], CL_FALSE, 0, BLOCK, page + off, 0, NULL, NULL);
        clFinish(s.q);
        printf("upload_pageable_gbs %.2f\n", (double)pre / (now() - t0) * 1e-9);

        /* 5. threads copy each block into a pinned slot, the device copies from there */
        t0 = now();
        for (size_t off = 0, i = 0; off < pre; off += BLOCK, i++) {
            struct pin *p = &pins[i % 4];
            if (p->ev) {
                clWaitForEvents(1, &p->ev);
                clReleaseEvent(p->ev);
            }
            parallel(-1, page + off, p->p, 0, BLOCK, threads, NULL);
            clEnqueueWriteBuffer(s.q, dbuf[i % 4], CL_FALSE, 0, BLOCK, p->p, 0, NULL, &p->ev);
            clFlush(s.q);
        }
        clFinish(s.q);
        printf("copy_to_pinned_and_upload_gbs %.2f\n", (double)pre / (now() - t0) * 1e-9);
        for (int i = 0; i < 4; i++)
            if (pins[i].ev) {
                clReleaseEvent(pins[i].ev);
                pins[i].ev = NULL;
            }
    }

    /* 6. reading the file straight into pinned slots, two or four of them */
    for (int slots = 2; slots <= 4; slots += 2) {
        t0 = now();
        for (size_t off = 0, i = 0; off < size; off += BLOCK, i++) {
            struct pin *p = &pins[i % slots];
            if (p->ev) {
                clWaitForEvents(1, &p->ev);
                clReleaseEvent(p->ev);
            }
            parallel(fd, NULL, p->p, off, off + BLOCK, threads, NULL);
            clEnqueueWriteBuffer(s.q, dbuf[i % 4], CL_FALSE, 0, BLOCK, p->p, 0, NULL, &p->ev);
            clFlush(s.q);
        }
        clFinish(s.q);
        printf("read_to_pinned_%dslots_gbs %.2f (%zu MiB)\n", slots,
               (double)size / (now() - t0) * 1e-9, size >> 20);
        for (int i = 0; i < 4; i++)
            if (pins[i].ev) {
                clReleaseEvent(pins[i].ev);
                pins[i].ev = NULL;
            }
    }
    /* 7. the same file read into pageable memory again, now warm (no page faults) */
    if (pre) {
        t0 = now();
        got = parallel(fd, NULL, page, 0, pre, threads, NULL);
        printf("read_to_warm_pageable_gbs %.2f\n", (double)got / (now() - t0) * 1e-9);
    }
    printf("done_at_s %.4f\n", now() - t_main);
    fflush(stdout);
    fflush(stderr);
    if (strcmp(how, "exit") == 0)
        exit(0);
    if (strcmp(how, "fork") == 0) {
        const pid_t pid = fork();
        if (pid == 0) { /* the child: no terminal files, the device files until it leaves */
            close(0);
            close(1);
            close(2);
            _exit(0);
        }
    }
    _exit(0);
}
