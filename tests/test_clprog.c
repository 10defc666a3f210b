/*
 * test_clprog.c - device listing and picking, OpenCL error names, and the
 * on-disk program cache (cl_prog.c): a miss then a hit, a corrupt entry
 * replaced, the cache turned off, and a kernel with a syntax error reported
 * with its build log. Each test runs in its own process (Criterion), so
 * environment variables set here reach the ICD loader and cl_prog.c fresh.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cl_dev.h"
#include "testutil.h"

static char tmpdir[64];

static const char *make_tmpdir(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/maxsim-clprog-XXXXXX");
    cr_assert(mkdtemp(tmpdir) != NULL);
    return tmpdir;
}

static void open_or_skip(struct ms_cl *cl)
{
    struct ms_err err = { 0 };
    if (ms_cl_open(cl, "auto", &err) != MS_OK)
        cr_skip_test("no OpenCL device: %s", err.msg);
}

/* The one .clbin file in dir, or "" */
static const char *only_entry(const char *dir)
{
    static char path[512];
    char cmd[600];
    FILE *p;

    snprintf(cmd, sizeof cmd, "ls %s/*.clbin 2>/dev/null", dir);
    p = popen(cmd, "r");
    path[0] = '\0';
    if (p && fgets(path, sizeof path, p))
        path[strcspn(path, "\n")] = '\0';
    if (p)
        pclose(p);
    return path;
}

static void rm_rf(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert(system(cmd) == 0);
}

Test(clprog, miss_then_hit, .timeout = 60)
{
    struct ms_cl cl;
    struct ms_err err = { 0 };
    cl_program p;
    struct stat st;

    setenv("MAXSIM_CACHE_DIR", make_tmpdir(), 1);
    open_or_skip(&cl);
    cr_assert(ms_cl_program(&cl, "maxsim.cl", "-DMS_TN=16 -DMS_QB=2", &p, &err) == MS_OK, "%s",
              err.msg);
    clReleaseProgram(p);
    cr_assert(strstr(cl.notes, "cache MISS") && strstr(cl.notes, "cache SAVE"), "%s", cl.notes);
    cr_assert(only_entry(tmpdir)[0], "no cache file written");
    cr_assert(stat(tmpdir, &st) == 0);

    cl.notes[0] = '\0';
    cr_assert(ms_cl_program(&cl, "maxsim.cl", "-DMS_TN=16 -DMS_QB=2", &p, &err) == MS_OK, "%s",
              err.msg);
    clReleaseProgram(p);
    cr_assert(strstr(cl.notes, "cache HIT") && !strstr(cl.notes, "MISS"), "%s", cl.notes);

    /* Other options are another key. */
    cl.notes[0] = '\0';
    cr_assert(ms_cl_program(&cl, "maxsim.cl", "-DMS_TN=16 -DMS_QB=3", &p, &err) == MS_OK);
    clReleaseProgram(p);
    cr_assert(strstr(cl.notes, "cache MISS"), "%s", cl.notes);
    ms_cl_close(&cl);
    rm_rf(tmpdir);
}

Test(clprog, cache_dir_created_0700, .timeout = 60)
{
    struct ms_cl cl;
    struct ms_err err = { 0 };
    cl_program p;
    struct stat st;
    char dir[128];

    snprintf(dir, sizeof dir, "%s/a/b", make_tmpdir());
    setenv("MAXSIM_CACHE_DIR", dir, 1);
    open_or_skip(&cl);
    cr_assert(ms_cl_program(&cl, "maxsim.cl", "-DMS_TN=16 -DMS_QB=2", &p, &err) == MS_OK);
    clReleaseProgram(p);
    cr_assert(stat(dir, &st) == 0 && (st.st_mode & 0777) == 0700);
    cr_assert(only_entry(dir)[0]);
    ms_cl_close(&cl);
    rm_rf(tmpdir);
}

static void corrupt_and_rebuild(const char *garbage, size_t len)
{
    struct ms_cl cl;
    struct ms_err err = { 0 };
    cl_program p;
    char entry[512];
    FILE *f;

    setenv("MAXSIM_CACHE_DIR", make_tmpdir(), 1);
    open_or_skip(&cl);
    cr_assert(ms_cl_program(&cl, "maxsim.cl", "-DMS_TN=16 -DMS_QB=2", &p, &err) == MS_OK);
    clReleaseProgram(p);
    snprintf(entry, sizeof entry, "%s", only_entry(tmpdir));
    f = fopen(entry, "r+b");
    cr_assert(f != NULL);
    if (len == 0) {
        /* Keep the header and key, ruin the start of the binary: the driver
         * must reject it (PoCL ignores damage near the end). */
        uint64_t klen;
        cr_assert(fseek(f, 12, SEEK_SET) == 0 && fread(&klen, 8, 1, f) == 1);
        cr_assert(fseek(f, (long)(20 + klen + 8), SEEK_SET) == 0);
        for (int i = 0; i < 64; i++)
            fputc(0xA5, f);
    } else {
        cr_assert(fwrite(garbage, 1, len, f) == len);
    }
    fclose(f);

    cl.notes[0] = '\0';
    cr_assert(ms_cl_program(&cl, "maxsim.cl", "-DMS_TN=16 -DMS_QB=2", &p, &err) == MS_OK, "%s",
              err.msg);
    clReleaseProgram(p);
    cr_assert(strstr(cl.notes, "cache MISS") && strstr(cl.notes, "cache SAVE"), "%s", cl.notes);
    cl.notes[0] = '\0';
    cr_assert(ms_cl_program(&cl, "maxsim.cl", "-DMS_TN=16 -DMS_QB=2", &p, &err) == MS_OK);
    clReleaseProgram(p);
    cr_assert(strstr(cl.notes, "cache HIT"), "the entry was not replaced: %s", cl.notes);
    ms_cl_close(&cl);
    rm_rf(tmpdir);
}

Test(clprog, corrupt_header_rebuilt, .timeout = 60)
{
    corrupt_and_rebuild("NOTMAGIC", 8);
}

Test(clprog, corrupt_binary_rebuilt, .timeout = 60)
{
    corrupt_and_rebuild(NULL, 0);
}

Test(clprog, cache_off, .timeout = 60)
{
    struct ms_cl cl;
    struct ms_err err = { 0 };
    cl_program p;

    setenv("MAXSIM_CACHE_DIR", "off", 1);
    open_or_skip(&cl);
    cr_assert(ms_cl_program(&cl, "maxsim.cl", "-DMS_TN=16 -DMS_QB=2", &p, &err) == MS_OK, "%s",
              err.msg);
    clReleaseProgram(p);
    /* maxsim's own cache notes; a build log may name the driver's cache (PoCL's kcache) */
    cr_assert(!strstr(cl.notes, "cache HIT") && !strstr(cl.notes, "cache SAVE") &&
                  !strstr(cl.notes, "cache:"),
              "%s", cl.notes);
    ms_cl_close(&cl);
}

Test(clprog, syntax_error_has_build_log, .timeout = 60)
{
    static const char broken[] = "__kernel void ms_score(__global float *x)\n"
                                 "{\n    x[0] = undefined_fn(1.0f)\n}\n";
    struct ms_cl cl;
    struct ms_err err = { 0 };
    cl_program p;
    char path[128];
    FILE *f;

    snprintf(path, sizeof path, "%s/maxsim.cl", make_tmpdir());
    f = fopen(path, "w");
    cr_assert(f && fwrite(broken, 1, sizeof broken - 1, f) == sizeof broken - 1);
    fclose(f);
    setenv("MAXSIM_KERNEL_DIR", tmpdir, 1);
    setenv("MAXSIM_CACHE_DIR", tmpdir, 1);
    open_or_skip(&cl);
    cr_assert_eq(ms_cl_program(&cl, "maxsim.cl", "-DMS_TN=16", &p, &err), MS_ERR_RUNTIME);
    cr_assert(p == NULL);
    cr_assert(strstr(err.msg, "cannot build kernel 'maxsim.cl'"), "%s", err.msg);
    cr_assert(strstr(err.msg, cl.info.name), "%s", err.msg);
    cr_assert(strstr(err.msg, "-DMS_TN=16"), "%s", err.msg);
    cr_assert(strstr(err.msg, "CL_BUILD_PROGRAM_FAILURE (-11)"), "%s", err.msg);
    cr_assert(strstr(err.msg, "build log:\n"), "%s", err.msg);
    cr_assert(strstr(err.msg, "undefined_fn"), "the log does not name the error: %s", err.msg);
    cr_assert(strstr(cl.notes, "MAXSIM_KERNEL_DIR"), "%s", cl.notes);
    ms_cl_close(&cl);
    rm_rf(tmpdir);
}

Test(clprog, missing_kernel_dir_file)
{
    struct ms_cl cl;
    struct ms_err err = { 0 };
    cl_program p;

    setenv("MAXSIM_KERNEL_DIR", "/nonexistent-maxsim-dir", 1);
    open_or_skip(&cl);
    cr_assert_eq(ms_cl_program(&cl, "maxsim.cl", "", &p, &err), MS_ERR_RUNTIME);
    cr_assert(strstr(err.msg, "/nonexistent-maxsim-dir/maxsim.cl"), "%s", err.msg);
    ms_cl_close(&cl);
}

Test(cldev, no_platform)
{
    struct ms_cl_devinfo *list = (void *)1;
    struct ms_err err = { 0 };
    int n = -1;

    setenv("OCL_ICD_VENDORS", make_tmpdir(), 1);
    cr_assert_eq(ms_cl_list(&list, &n, &err), MS_OK, "%s", err.msg);
    cr_assert_eq(n, 0);
    cr_assert(list == NULL);
    cr_assert_eq(ms_cl_pick(list, n, "auto", &err), -1);
    cr_assert(strstr(err.msg, "no OpenCL platform found"), "%s", err.msg);
    rm_rf(tmpdir);
}

Test(cldev, pick)
{
    struct ms_cl_devinfo list[3];
    struct ms_err err = { 0 };

    memset(list, 0, sizeof list);
    for (int i = 0; i < 3; i++)
        list[i].index = i;
    list[0].type = CL_DEVICE_TYPE_CPU;
    snprintf(list[0].name, sizeof list[0].name, "pthread-x");
    list[1].type = CL_DEVICE_TYPE_ACCELERATOR;
    snprintf(list[1].name, sizeof list[1].name, "acc");
    list[2].type = CL_DEVICE_TYPE_GPU;
    snprintf(list[2].name, sizeof list[2].name, "H100");
    cr_assert_eq(ms_cl_pick(list, 3, "auto", &err), 2);
    cr_assert_eq(ms_cl_pick(list, 3, NULL, &err), 2);
    cr_assert_eq(ms_cl_pick(list, 2, "auto", &err), 0);
    cr_assert_eq(ms_cl_pick(list + 1, 1, "auto", &err), 0); /* first device of any kind */
    cr_assert_eq(ms_cl_pick(list, 3, "cpu", &err), 0);
    cr_assert_eq(ms_cl_pick(list, 3, "gpu", &err), 2);
    cr_assert_eq(ms_cl_pick(list, 3, "1", &err), 1);

    cr_assert_eq(ms_cl_pick(list, 1, "gpu", &err), -1);
    cr_assert_eq(err.status, MS_ERR_INPUT);
    cr_assert_str_eq(err.msg, "no GPU device found (devices: 0 CPU 'pthread-x')");
    cr_assert_eq(ms_cl_pick(list, 3, "3", &err), -1);
    cr_assert_eq(err.status, MS_ERR_INPUT);
    for (size_t i = 0; i < 4; i++) {
        static const char *bad[] = { "x", "-1", "1x", "GPU" };
        cr_assert_eq(ms_cl_pick(list, 3, bad[i], &err), -1);
        cr_assert_eq(err.status, MS_ERR_INPUT);
    }
    cr_assert_eq(ms_cl_pick(list, 3, "x", &err), -1);
    cr_assert_str_eq(
        err.msg, "unknown device 'x' (expected auto, cpu, gpu or an index from 'maxsim devices')");
}

Test(cldev, strerror)
{
    cr_assert_str_eq(ms_cl_strerror(-11), "CL_BUILD_PROGRAM_FAILURE (-11)");
    cr_assert_str_eq(ms_cl_strerror(0), "CL_SUCCESS (0)");
    cr_assert_str_eq(ms_cl_strerror(-5), "CL_OUT_OF_RESOURCES (-5)");
    cr_assert_str_eq(ms_cl_strerror(-1001), "CL_PLATFORM_NOT_FOUND_KHR (-1001)");
    cr_assert_str_eq(ms_cl_strerror(-9999), "unknown OpenCL error (-9999)");
    for (int c = 0; c >= -72; c--)
        cr_assert(ms_cl_strerror(c)[0]);
}

Test(cldev, list_real)
{
    struct ms_cl_devinfo *list;
    struct ms_err err = { 0 };
    int n;

    cr_assert_eq(ms_cl_list(&list, &n, &err), MS_OK, "%s", err.msg);
    if (n == 0)
        cr_skip_test("no OpenCL platform");
    for (int i = 0; i < n; i++) {
        cr_assert_eq(list[i].index, i);
        cr_assert(list[i].name[0] && list[i].platform_name[0] && list[i].compute_units > 0);
        cr_assert(list[i].max_alloc > 0 && list[i].global_mem >= list[i].max_alloc);
    }
    free(list);
}
