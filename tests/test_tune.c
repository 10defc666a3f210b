/*
 * test_tune.c - the tuning table (src/tune.c): stored lines are found again by device and class,
 * a store replaces only its own line, damaged lines are skipped, and with the cache off nothing
 * is written and nothing is found.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"
#include "tune.h"

static char dir[64];

static void in_fresh_dir(void)
{
    snprintf(dir, sizeof dir, "/tmp/maxsim-tune-XXXXXX");
    cr_assert(mkdtemp(dir) != NULL);
    setenv("MAXSIM_CACHE_DIR", dir, 1);
}

static void remove_dir(void)
{
    char path[128];
    snprintf(path, sizeof path, "%s/tune.tsv", dir);
    unlink(path);
    rmdir(dir);
}

TestSuite(tune, .init = in_fresh_dir, .fini = remove_dir);

Test(tune, store_lookup_replace)
{
    struct ms_err err = { 0 };
    char v[128];
    cr_assert(!ms_tune_lookup("devA", "nv kp=128", v, sizeof v), "empty table finds nothing");
    cr_assert_eq(ms_tune_store("devA", "nv kp=128", "staged,4,1,64", 3.5, &err), MS_OK, "%s",
                 err.msg);
    cr_assert_eq(ms_tune_store("devA", "nv kp=48", "stream,2,4,4,16,16,0", 0.04, &err), MS_OK);
    cr_assert_eq(ms_tune_store("devB", "nv kp=128", "staged,2,1,64", 4.0, &err), MS_OK);
    cr_assert(ms_tune_lookup("devA", "nv kp=128", v, sizeof v));
    cr_assert_str_eq(v, "staged,4,1,64");
    cr_assert(ms_tune_lookup("devB", "nv kp=128", v, sizeof v));
    cr_assert_str_eq(v, "staged,2,1,64");
    cr_assert(!ms_tune_lookup("devC", "nv kp=128", v, sizeof v), "another device is not trusted");
    /* a new measurement replaces the line of its (device, class) and only that one */
    cr_assert_eq(ms_tune_store("devA", "nv kp=128", "staged,2,2,64", 3.1, &err), MS_OK);
    cr_assert(ms_tune_lookup("devA", "nv kp=128", v, sizeof v));
    cr_assert_str_eq(v, "staged,2,2,64");
    cr_assert(ms_tune_lookup("devA", "nv kp=48", v, sizeof v));
    cr_assert_str_eq(v, "stream,2,4,4,16,16,0");
    char path[128], line[256];
    int lines = 0;
    snprintf(path, sizeof path, "%s/tune.tsv", dir);
    FILE *f = fopen(path, "r");
    cr_assert(f);
    while (fgets(line, sizeof line, f))
        lines++;
    fclose(f);
    cr_assert_eq(lines, 3, "one line per (device, class), got %d", lines);
}

Test(tune, damaged_lines_are_skipped)
{
    struct ms_err err = { 0 };
    char path[128], v[128];
    snprintf(path, sizeof path, "%s/tune.tsv", dir);
    FILE *f = fopen(path, "w");
    cr_assert(f);
    fputs("devA\tnv kp=128\n", f);                          /* too few fields */
    fputs("devA\tnv kp=128\tstaged,4,1,64\t1\textra\n", f); /* too many */
    fputs("garbage without tabs\n", f);
    fputs("devA\tnv kp=64\tstaged,2,1,64\t2.0\n", f);
    fclose(f);
    cr_assert(!ms_tune_lookup("devA", "nv kp=128", v, sizeof v));
    cr_assert(ms_tune_lookup("devA", "nv kp=64", v, sizeof v));
    cr_assert_str_eq(v, "staged,2,1,64");
    /* a store keeps the good lines and drops the damaged ones */
    cr_assert_eq(ms_tune_store("devA", "nv kp=128", "staged,4,1,32", 1.0, &err), MS_OK);
    cr_assert(ms_tune_lookup("devA", "nv kp=64", v, sizeof v));
    cr_assert(ms_tune_lookup("devA", "nv kp=128", v, sizeof v));
    cr_assert_str_eq(v, "staged,4,1,32");
}

Test(tune, cache_off)
{
    struct ms_err err = { 0 };
    char v[128];
    setenv("MAXSIM_CACHE_DIR", "off", 1);
    cr_assert_eq(ms_tune_store("devA", "nv", "staged,4,1,64", 1.0, &err), MS_ERR_INPUT);
    cr_assert(strstr(err.msg, "cache is off"), "%s", err.msg);
    cr_assert(!ms_tune_lookup("devA", "nv", v, sizeof v));
}
