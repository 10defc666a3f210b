/*
 * testutil.h - helpers shared by the Criterion unit tests: fixture paths,
 * temporary files, deterministic random data, and building struct ms_emb
 * blocks by hand.
 */
#ifndef MS_TESTUTIL_H
#define MS_TESTUTIL_H

#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cl_dev.h"
#include "emb.h"

/* Path of a fixture written by tests/gen_fixtures.py ($MAXSIM_FIXTURES). */
static inline const char *fixture(const char *name)
{
    static char buf[8][1024];
    static int slot;
    const char *dir = getenv("MAXSIM_FIXTURES");
    char *b = buf[slot++ % 8];
    snprintf(b, 1024, "%s/%s", dir ? dir : "build/fixtures", name);
    return b;
}

/* A whole file in a malloc'd buffer (one spare byte at the end); *len gets its size. */
static inline char *test_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    cr_assert(f, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc(*len + 1);
    cr_assert(buf && fread(buf, 1, *len, f) == *len, "cannot read %s", path);
    fclose(f);
    return buf;
}

/* Temporary files of this test process, removed when it exits. */
static char test_tmp_paths[64][256];
static int test_tmp_count;

static inline void test_tmp_cleanup(void)
{
    for (int i = 0; i < test_tmp_count && i < 64; i++)
        unlink(test_tmp_paths[i]);
}

/* Write bytes to a fresh temporary file whose name ends in `suffix`; returns
 * its path (static storage, 8 slots). The file is removed at exit. */
static inline const char *tmpfile_with(const void *data, size_t len, const char *suffix)
{
    static char buf[8][256];
    static int slot;
    char *b = buf[slot++ % 8];
    snprintf(b, 256, "/tmp/maxsim-test-XXXXXX%s", suffix);
    int fd = mkstemps(b, (int)strlen(suffix));
    cr_assert(fd >= 0, "mkstemps failed");
    cr_assert(write(fd, data, len) == (ssize_t)len);
    close(fd);
    if (test_tmp_count == 0)
        atexit(test_tmp_cleanup);
    if (test_tmp_count < 64)
        memcpy(test_tmp_paths[test_tmp_count++], b, 256);
    return b;
}

/* splitmix64: deterministic, seedable, good enough for test data. */
/* Program builds are cached on disk across Criterion's per-test processes: one cache per
 * user unless MAXSIM_CACHE_DIR says otherwise. */
static inline void test_cache_dir(void)
{
    char dir[128];

    if (!getenv("MAXSIM_CACHE_DIR")) {
        snprintf(dir, sizeof dir, "/tmp/maxsim-test-cache-%ld", (long)getuid());
        setenv("MAXSIM_CACHE_DIR", dir, 1);
    }
}

/* A suite's .init: the first device of "auto" into *cl, program builds cached on disk across
 * Criterion's per-test processes (test_cache_dir); the test is skipped without a device. */
static inline void test_cl_open(struct ms_cl *cl)
{
    struct ms_err err = { 0 };

    test_cache_dir();
    if (ms_cl_open(cl, "auto", &err) != MS_OK)
        cr_skip_test("no OpenCL device: %s", err.msg);
}

static inline uint64_t test_rand_u64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
/* Uniform in [-1, 1). */
static inline float test_rand_f(uint64_t *state)
{
    return (float)((double)(test_rand_u64(state) >> 11) * 0x1p-53 * 2.0 - 1.0);
}
static inline uint64_t test_rand_below(uint64_t *state, uint64_t n)
{
    return n ? test_rand_u64(state) % n : 0;
}

/* A random block: n_rows rows with lengths drawn in [min_len, max_len],
 * values uniform in [-1, 1) (never zeros), stored as dtype. */
static inline void test_random_emb(struct ms_emb *e, enum ms_dtype dtype, uint32_t dim,
                                   uint64_t n_rows, uint64_t min_len, uint64_t max_len,
                                   uint64_t *state)
{
    struct ms_err err;
    uint64_t *lens = malloc((n_rows + 1) * sizeof *lens), total = 0;
    for (uint64_t r = 0; r < n_rows; r++) {
        lens[r] = min_len + test_rand_below(state, max_len - min_len + 1);
        total += lens[r];
    }
    ms_emb_init(e);
    cr_assert(ms_emb_reserve(e, dtype, dim, n_rows, total, &err) == 0, "%s", err.msg);
    e->first_row = 0;
    for (uint64_t r = 0; r < n_rows; r++)
        e->offsets[r + 1] = e->offsets[r] + lens[r];
    for (uint64_t i = 0; i < total * dim; i++) {
        const float v = test_rand_f(state);
        if (dtype == MS_DTYPE_F16)
            ((uint16_t *)e->tokens)[i] = ms_float_to_half(v);
        else
            ((float *)e->tokens)[i] = v;
    }
    free(lens);
}

#endif
