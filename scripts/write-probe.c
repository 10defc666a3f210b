/*
 * write-probe.c - how fast a [rows x cols] float32 matrix reaches a file's page cache when it
 * arrives as column blocks (as `maxsim score` produces it: 1,000 queries x ~1,900 documents a
 * block), by each way the host can write it (issue 10): pwrite of each block's row pieces,
 * pwrite of 64 MiB panels, memcpy into a shared mapping (faulted on first touch, or populated
 * beforehand with MADV_POPULATE_WRITE on several threads, as could run while the device
 * starts), and the munmap and close after. Not part of the build; for docs/benchmarks.md:
 *   cc -O2 -std=c11 -D_GNU_SOURCE -o build/write-probe scripts/write-probe.c -pthread
 *   build/write-probe DIR [ROWS [COLS [BLOCK_COLS [THREADS]]]]
 * Prints one `key value` line per measure (seconds or GB/s); removes its files.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void die(const char *what)
{
    fprintf(stderr, "write-probe: %s: %s\n", what, strerror(errno));
    exit(1);
}

static uint64_t rows, cols, bcols;
static int threads;
static float *block; /* [rows][bcols], the scores of one block */

/* One thread's share of rows [r0, r1) of a column block [c0, c0 + n). */
struct part {
    int fd;
    char *map; /* mapping of the matrix, or NULL for pwrite */
    const float *src;
    uint64_t ld, r0, r1, c0, n;
    pthread_t th;
};

static void *part_run(void *arg)
{
    struct part *p = arg;
    for (uint64_t r = p->r0; r < p->r1; r++) {
        const off_t off = (off_t)((r * cols + p->c0) * sizeof(float));
        const float *row = p->src + r * p->ld;
        if (p->map) {
            memcpy(p->map + off, row, p->n * sizeof(float));
        } else if (pwrite(p->fd, row, p->n * sizeof(float), off) !=
                   (ssize_t)(p->n * sizeof(float))) {
            die("pwrite");
        }
    }
    return NULL;
}

static void put(int fd, char *map, const float *src, uint64_t ld, uint64_t c0, uint64_t n, int t)
{
    struct part p[64];
    for (int i = 0; i < t; i++) {
        p[i] = (struct part){ fd, map, src, ld, rows * i / t, rows * (i + 1) / t, c0, n, 0 };
        if (t > 1 && pthread_create(&p[i].th, NULL, part_run, &p[i]) != 0)
            die("pthread_create");
    }
    if (t == 1)
        part_run(&p[0]);
    else
        for (int i = 0; i < t; i++)
            pthread_join(p[i].th, NULL);
}

struct pop {
    char *map;
    size_t off, len;
    int unmap; /* munmap the range instead */
    pthread_t th;
};

static void *pop_run(void *arg)
{
    struct pop *p = arg;
    if (p->unmap ? munmap(p->map + p->off, p->len) != 0
                 : madvise(p->map + p->off, p->len, MADV_POPULATE_WRITE) != 0)
        die(p->unmap ? "munmap" : "madvise(MADV_POPULATE_WRITE)");
    return NULL;
}

/* madvise(MADV_POPULATE_WRITE) or munmap of [map, map + size) in `threads` page-aligned
 * ranges, one thread each. */
static void ranges(char *map, size_t size, int unmap)
{
    struct pop p[64];
    const size_t step = ((size / threads) + 4095) & ~(size_t)4095;
    int n = 0;
    for (size_t off = 0; off < size; off += step, n++) {
        p[n] = (struct pop){ map, off, size - off < step ? size - off : step, unmap, 0 };
        if (pthread_create(&p[n].th, NULL, pop_run, &p[n]) != 0)
            die("pthread_create");
    }
    for (int i = 0; i < n; i++)
        pthread_join(p[i].th, NULL);
}

static int open_new(const char *path, size_t size)
{
    unlink(path);
    const int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        die(path);
    if (fallocate(fd, 0, 0, (off_t)size) != 0 && ftruncate(fd, (off_t)size) != 0)
        die("fallocate");
    return fd;
}

/* The whole matrix written block by block; by pwrite (map NULL) with panels of pcols columns
 * (0: each block as it comes), or by memcpy into map. Returns seconds. */
static double write_all(int fd, char *map, uint64_t pcols, float *panel)
{
    const double t0 = now();
    uint64_t pc0 = 0, pn = 0;
    for (uint64_t c0 = 0; c0 < cols; c0 += bcols) {
        const uint64_t n = cols - c0 < bcols ? cols - c0 : bcols;
        if (!pcols || map) {
            put(fd, map, block, bcols, c0, n, threads);
            continue;
        }
        if (pn + n > pcols) {
            put(fd, NULL, panel, pcols, pc0, pn, threads);
            pn = 0;
        }
        if (!pn)
            pc0 = c0;
        for (uint64_t r = 0; r < rows; r++)
            memcpy(panel + r * pcols + pn, block + r * bcols, n * sizeof(float));
        pn += n;
    }
    if (pn)
        put(fd, NULL, panel, pcols, pc0, pn, threads);
    return now() - t0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: write-probe DIR [ROWS [COLS [BLOCK_COLS [THREADS]]]]\n");
        return 2;
    }
    rows = argc > 2 ? strtoull(argv[2], NULL, 10) : 1000;
    cols = argc > 3 ? strtoull(argv[3], NULL, 10) : 100000;
    bcols = argc > 4 ? strtoull(argv[4], NULL, 10) : 1900;
    threads = argc > 5 ? atoi(argv[5]) : 16;
    if (threads < 1 || threads > 64)
        threads = 16;
    const size_t size = rows * cols * sizeof(float);
    const double gb = (double)size * 1e-9;
    char path[4096];
    snprintf(path, sizeof path, "%s/write-probe.%d.bin", argv[1], (int)getpid());
    struct statfs sf;
    if (statfs(argv[1], &sf) == 0)
        printf("fs_magic 0x%lx\n", (unsigned long)sf.f_type);
    if (!(block = malloc(rows * bcols * sizeof(float))))
        die("malloc");
    for (uint64_t i = 0; i < rows * bcols; i++)
        block[i] = (float)(i % 9973) * 0.5f;
    const uint64_t pcols = (64ull << 20) / (sizeof(float) * rows);
    float *panel = malloc(rows * pcols * sizeof(float));
    if (!panel)
        die("malloc");
    printf("matrix_gb %.3f\nthreads %d\nblock_cols %llu\n", gb, threads, (unsigned long long)bcols);
    fflush(stdout);

    /* pwrite of each block's row pieces, and of 64 MiB panels, into a new allocated file */
    for (int panels = 0; panels < 2; panels++) {
        int fd = open_new(path, size);
        double t = write_all(fd, NULL, panels ? pcols : 0, panel);
        double t0 = now();
        close(fd);
        printf("%s_gbs %.2f\n%s_close_s %.4f\n", panels ? "pwrite_panels" : "pwrite_blocks", gb / t,
               panels ? "pwrite_panels" : "pwrite_blocks", now() - t0);
        /* the same again over the cached pages */
        fd = open(path, O_RDWR);
        t = write_all(fd, NULL, panels ? pcols : 0, panel);
        close(fd);
        printf("%s_overwrite_gbs %.2f\n", panels ? "pwrite_panels" : "pwrite_blocks", gb / t);
        unlink(path);
        fflush(stdout);
    }
    /* memcpy into a shared mapping: faulted on first touch, then populated first */
    for (int populate = 0; populate < 2; populate++) {
        const int fd = open_new(path, size);
        double t0 = now();
        char *map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (map == MAP_FAILED)
            die("mmap");
        if (populate) {
            ranges(map, size, 0);
            printf("populate_%dthreads_s %.4f\n", threads, now() - t0);
        }
        const double t = write_all(fd, map, 0, NULL);
        t0 = now();
        if (populate) /* unmapped by ranges in parallel (the zap runs under the read lock) */
            ranges(map, size, 1);
        else
            munmap(map, size);
        const double t_unmap = now() - t0;
        t0 = now();
        close(fd);
        printf("%s_gbs %.2f\n%s_munmap_s %.4f\n%s_close_s %.4f\n",
               populate ? "mmap_populated" : "mmap_faulted", gb / t,
               populate ? "mmap_populated" : "mmap_faulted", t_unmap,
               populate ? "mmap_populated" : "mmap_faulted", now() - t0);
        unlink(path);
        fflush(stdout);
    }
    return 0;
}
