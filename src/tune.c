/*
 * tune.c - the tuning table beside the kernel cache (tune.h says what it holds and why).
 *
 * Fields may not contain tabs or newlines (the callers' device names, classes and variants do
 * not); a line that does not split into four fields is skipped, so a damaged file costs at most
 * the tuned choice, never a failure: the scorer falls back to its measured defaults.
 */
#include "tune.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cl_dev.h"
#include "tempfile.h"

int ms_tune_path(char *buf, size_t cap)
{
    uint64_t entries, bytes;
    char dir[3072];
    if (!ms_cl_cache_info(dir, sizeof dir, &entries, &bytes))
        return 0;
    return snprintf(buf, cap, "%s/tune.tsv", dir) < (int)cap;
}

/* Split a line into its four tab-separated fields in place; 0 if it has not four. */
static int split_line(char *line, char **f)
{
    line[strcspn(line, "\r\n")] = 0;
    for (int i = 0; i < 4; i++) {
        f[i] = line;
        line = strchr(line, '\t');
        if (i < 3) {
            if (!line)
                return 0;
            *line++ = 0;
        } else if (line) {
            return 0;
        }
    }
    return 1;
}

int ms_tune_lookup(const char *device, const char *klass, char *variant, size_t cap)
{
    char path[4096], line[1024], *f[4];
    FILE *fp;
    int found = 0;
    if (!ms_tune_path(path, sizeof path) || !(fp = fopen(path, "r")))
        return 0;
    while (fgets(line, sizeof line, fp))
        if (split_line(line, f) && strcmp(f[0], device) == 0 && strcmp(f[1], klass) == 0) {
            snprintf(variant, cap, "%s", f[2]);
            found = 1; /* the last line wins, as the writer keeps one */
        }
    fclose(fp);
    return found;
}

static int mkdirs(char *dir)
{
    for (char *p = dir + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir(dir, 0755) != 0 && errno != EEXIST)
                return -1;
            *p = '/';
        }
    return mkdir(dir, 0755) != 0 && errno != EEXIST ? -1 : 0;
}

int ms_tune_store(const char *device, const char *klass, const char *variant, double ms,
                  struct ms_err *err)
{
    char path[4096], tmp[4200], line[1024], copy[1024], *f[4];
    struct ms_tempfile t;
    FILE *in, *out;
    int rc;
    if (!ms_tune_path(path, sizeof path))
        return ms_err_set(err, MS_ERR_INPUT,
                          "the kernel cache is off (MAXSIM_CACHE_DIR=off or no home directory): "
                          "nowhere to keep the tuning table");
    snprintf(tmp, sizeof tmp, "%s", path);
    *strrchr(tmp, '/') = 0;
    if (mkdirs(tmp) != 0)
        return ms_err_set(err, MS_ERR_RUNTIME, "cannot create '%s': %s", tmp, strerror(errno));
    /* a temporary beside the table, renamed into place (tempfile.h) */
    if ((rc = ms_tempfile_create(&t, NULL, path, 0, err)) != MS_OK)
        return rc;
    const int fd = dup(t.fd);
    if (fd < 0 || !(out = fdopen(fd, "w"))) {
        if (fd >= 0)
            close(fd);
        ms_tempfile_abort(&t);
        return ms_err_set(err, MS_ERR_RUNTIME, "cannot write beside '%s': %s", path,
                          strerror(errno));
    }
    if ((in = fopen(path, "r"))) {
        while (fgets(line, sizeof line, in)) {
            snprintf(copy, sizeof copy, "%s", line);
            if (split_line(copy, f) && !(strcmp(f[0], device) == 0 && strcmp(f[1], klass) == 0))
                fputs(line, out);
        }
        fclose(in);
    }
    fprintf(out, "%s\t%s\t%s\t%.4f\n", device, klass, variant, ms);
    if (fflush(out) != 0 || ferror(out) || fsync(fileno(out)) != 0) {
        const int e = errno;
        fclose(out);
        ms_tempfile_abort(&t);
        return ms_err_set(err, MS_ERR_RUNTIME, "cannot write '%s': %s", path, strerror(e));
    }
    fclose(out);
    return ms_tempfile_commit(&t, err);
}
