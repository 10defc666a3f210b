/*
 * cl_prog.c - compiled OpenCL programs, and their on-disk binary cache.
 *
 * Sources come from the table embedded at build time (build/gen/kernels.c),
 * or from $MAXSIM_KERNEL_DIR/<file> when that is set, so kernels can be
 * edited without relinking. Building from source takes seconds on PoCL (and
 * on NVIDIA for big kernels), so device binaries are cached on disk
 * (research/aesthetics.md 2.3):
 *
 *   key  = "maxsim-clcache-v1" NUL source NUL options NUL platform name NUL
 *          platform version NUL device name NUL device version NUL driver version
 *   file = <dir>/<fnv1a64(key) in hex>.clbin:
 *          "MSCLBIN1", u32 format version, u64 key length, key, u64 binary length, binary
 *
 * The stored key is compared byte for byte on load, so a hash collision can
 * never load a wrong binary and a weak hash is enough. Writes go to
 * <name>.tmp.<pid> and are renamed into place: no locks, the last writer
 * wins, a reader never sees half a file. Any failure with a cached entry
 * removes it and builds from source; failing to save is not an error.
 * The directory: $MAXSIM_CACHE_DIR ("off" disables the cache), else
 * $XDG_CACHE_HOME/maxsim, else $HOME/.cache/maxsim, created with mode 0700.
 */
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cl_dev.h"
#include "tempfile.h"

#define CACHE_MAGIC  "MSCLBIN1"
#define CACHE_FORMAT 1u
#define KEY_TAG      "maxsim-clcache-v1"

void ms_cl_note(struct ms_cl *cl, const char *fmt, ...)
{
    size_t used = strlen(cl->notes);
    va_list ap;

    if (used + 2 >= sizeof cl->notes)
        return;
    va_start(ap, fmt);
    vsnprintf(cl->notes + used, sizeof cl->notes - used - 1, fmt, ap);
    va_end(ap);
    used = strlen(cl->notes);
    cl->notes[used] = '\n';
    cl->notes[used + 1] = '\0';
}

static uint64_t fnv1a64(const char *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

/* Read a whole file; NULL with errno set on failure. */
static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long size;

    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0)
        goto fail;
    buf = malloc((size_t)size + 1);
    if (!buf)
        goto fail;
    if (fread(buf, 1, (size_t)size, f) != (size_t)size)
        goto fail;
    buf[size] = '\0';
    fclose(f);
    *len = (size_t)size;
    return buf;
fail:
    free(buf);
    fclose(f);
    if (!errno)
        errno = EIO;
    return NULL;
}

/* The source of `file`: a malloc'd copy, from $MAXSIM_KERNEL_DIR or embedded. */
static char *kernel_source(struct ms_cl *cl, const char *file, size_t *len, struct ms_err *err)
{
    const char *dir = getenv("MAXSIM_KERNEL_DIR");
    char *text;

    if (dir && *dir) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, file);
        text = read_file(path, len);
        if (!text)
            ms_err_set(err, MS_ERR_RUNTIME, "cannot read kernel '%s' (from MAXSIM_KERNEL_DIR): %s",
                       path, strerror(errno));
        else
            ms_cl_note(cl, "kernel '%s' read from MAXSIM_KERNEL_DIR", path);
        return text;
    }
    for (int i = 0; i < ms_kernel_sources_n; i++) {
        if (strcmp(ms_kernel_sources[i].name, file) == 0) {
            *len = ms_kernel_sources[i].len;
            text = ms_malloc(*len + 1, err);
            if (text) {
                memcpy(text, ms_kernel_sources[i].text, *len);
                text[*len] = '\0';
            }
            return text;
        }
    }
    ms_err_set(err, MS_ERR_RUNTIME, "no embedded kernel '%s'", file);
    return NULL;
}

/* Key material: the NUL-separated fields of the header comment. */
static char *cache_key(const struct ms_cl *cl, const char *src, size_t src_len, const char *options,
                       size_t *len, struct ms_err *err)
{
    const char *fields[] = { options,       cl->info.platform_name, cl->info.platform_version,
                             cl->info.name, cl->info.version,       cl->info.driver_version };
    size_t total = sizeof KEY_TAG + src_len + 1, off = 0;
    char *key;

    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        total += strlen(fields[i]) + 1;
    key = ms_malloc(total, err);
    if (!key)
        return NULL;
    memcpy(key, KEY_TAG, sizeof KEY_TAG); /* with its NUL */
    off = sizeof KEY_TAG;
    memcpy(key + off, src, src_len);
    off += src_len;
    key[off++] = '\0';
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        size_t n = strlen(fields[i]);
        memcpy(key + off, fields[i], n);
        off += n;
        /* The last field ends the key: no trailing NUL after the driver version. */
        if (i + 1 < sizeof fields / sizeof fields[0])
            key[off++] = '\0';
    }
    *len = off;
    return key;
}

static int mkdir_p(const char *path)
{
    char tmp[4096];
    size_t n = strlen(path);

    if (n == 0 || n >= sizeof tmp)
        return -1;
    memcpy(tmp, path, n + 1);
    for (char *p = tmp + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
                return -1;
            *p = '/';
        }
    }
    if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
        return -1;
    return 0;
}

/* The cache directory, or 0 when caching is off or no directory can be made. */
static int cache_dir(char *buf, size_t cap)
{
    const char *d = getenv("MAXSIM_CACHE_DIR");
    const char *x = getenv("XDG_CACHE_HOME");
    const char *h = getenv("HOME");

    if (d && strcmp(d, "off") == 0)
        return 0;
    if (d && *d)
        snprintf(buf, cap, "%s", d);
    else if (x && *x)
        snprintf(buf, cap, "%s/maxsim", x);
    else if (h && *h)
        snprintf(buf, cap, "%s/.cache/maxsim", h);
    else
        return 0;
    return mkdir_p(buf) == 0;
}

int ms_cl_cache_info(char *dir, size_t cap, uint64_t *entries, uint64_t *bytes)
{
    const char *d = getenv("MAXSIM_CACHE_DIR");
    const char *x = getenv("XDG_CACHE_HOME");
    const char *h = getenv("HOME");
    DIR *dh;
    struct dirent *e;

    *entries = *bytes = 0;
    if (d && strcmp(d, "off") == 0)
        return 0;
    if (d && *d)
        snprintf(dir, cap, "%s", d);
    else if (x && *x)
        snprintf(dir, cap, "%s/maxsim", x);
    else if (h && *h)
        snprintf(dir, cap, "%s/.cache/maxsim", h);
    else
        return 0;
    if (!(dh = opendir(dir)))
        return 1; /* not created yet: empty */
    while ((e = readdir(dh))) {
        const size_t n = strlen(e->d_name);
        char path[4096];
        struct stat st;
        if (n < 7 || strcmp(e->d_name + n - 6, ".clbin") != 0)
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
            (*entries)++;
            *bytes += (uint64_t)st.st_size;
        }
    }
    closedir(dh);
    return 1;
}

static int get_u32(const char **p, const char *end, uint32_t *v)
{
    if ((size_t)(end - *p) < sizeof *v)
        return -1;
    memcpy(v, *p, sizeof *v);
    *p += sizeof *v;
    return 0;
}

static int get_u64(const char **p, const char *end, uint64_t *v)
{
    if ((size_t)(end - *p) < sizeof *v)
        return -1;
    memcpy(v, *p, sizeof *v);
    *p += sizeof *v;
    return 0;
}

/* Load and build a cached binary; NULL on any mismatch or failure. */
static cl_program cache_load(struct ms_cl *cl, const char *path, const char *key, size_t key_len,
                             const char *options)
{
    size_t len = 0;
    char *buf = read_file(path, &len);
    const char *p = buf, *end = buf + len;
    uint32_t version;
    uint64_t klen, blen;
    cl_program prog = NULL;
    cl_int rc, status = CL_SUCCESS;
    const unsigned char *bin;
    size_t bin_len;

    if (!buf)
        return NULL;
    if (len < 8 || memcmp(p, CACHE_MAGIC, 8) != 0)
        goto done;
    p += 8;
    if (get_u32(&p, end, &version) || version != CACHE_FORMAT)
        goto done;
    if (get_u64(&p, end, &klen) || klen != key_len || (uint64_t)(end - p) < klen ||
        memcmp(p, key, key_len) != 0)
        goto done;
    p += klen;
    if (get_u64(&p, end, &blen) || blen == 0 || blen != (uint64_t)(end - p))
        goto done;
    bin = (const unsigned char *)p;
    bin_len = (size_t)blen;
    prog = clCreateProgramWithBinary(cl->ctx, 1, &cl->info.device, &bin_len, &bin, &status, &rc);
    if (!prog || rc != CL_SUCCESS || status != CL_SUCCESS) {
        if (prog)
            clReleaseProgram(prog);
        prog = NULL;
        goto done;
    }
    if (clBuildProgram(prog, 1, &cl->info.device, options, NULL, NULL) != CL_SUCCESS) {
        clReleaseProgram(prog);
        prog = NULL;
    }
done:
    free(buf);
    return prog;
}

static void cache_save(struct ms_cl *cl, cl_program prog, const char *path, const char *key,
                       size_t key_len)
{
    struct ms_tempfile t;
    struct ms_err err;
    size_t bin_len = 0;
    unsigned char *bin = NULL;
    uint32_t version = CACHE_FORMAT;
    uint64_t klen = key_len, blen;
    int ok;

    if (clGetProgramInfo(prog, CL_PROGRAM_BINARY_SIZES, sizeof bin_len, &bin_len, NULL) !=
            CL_SUCCESS ||
        bin_len == 0)
        return;
    bin = malloc(bin_len);
    if (!bin)
        return;
    if (clGetProgramInfo(prog, CL_PROGRAM_BINARIES, sizeof bin, &bin, NULL) != CL_SUCCESS) {
        free(bin);
        return;
    }
    blen = bin_len;
    /* a temporary beside the entry, renamed into place: a concurrent reader
     * sees the whole entry or none (tempfile.h) */
    if (ms_tempfile_create(&t, NULL, path, 0, &err) != MS_OK) {
        free(bin);
        ms_cl_note(cl, "cache: %s", err.msg);
        return;
    }
    ok = ms_write_all(t.fd, CACHE_MAGIC, 8) == 0 &&
         ms_write_all(t.fd, &version, sizeof version) == 0 &&
         ms_write_all(t.fd, &klen, sizeof klen) == 0 && ms_write_all(t.fd, key, key_len) == 0 &&
         ms_write_all(t.fd, &blen, sizeof blen) == 0 && ms_write_all(t.fd, bin, bin_len) == 0;
    free(bin);
    if (!ok) {
        ms_cl_note(cl, "cache: cannot write '%s': %s", path, strerror(errno));
        ms_tempfile_abort(&t);
        return;
    }
    if (ms_tempfile_commit(&t, &err) != MS_OK) {
        ms_cl_note(cl, "cache: %s", err.msg);
        return;
    }
    ms_cl_note(cl, "cache SAVE %s", path);
}

/* A build failure: file, device, options, then the build log on the
 * following lines (the one multi-line message), cut to fit. */
static int build_error(struct ms_cl *cl, cl_program prog, const char *file, const char *options,
                       cl_int rc, struct ms_err *err)
{
    size_t log_len = 0;
    char *log = NULL;
    int n;

    if (clGetProgramBuildInfo(prog, cl->info.device, CL_PROGRAM_BUILD_LOG, 0, NULL, &log_len) ==
            CL_SUCCESS &&
        log_len > 0 && (log = malloc(log_len + 1)) != NULL) {
        if (clGetProgramBuildInfo(prog, cl->info.device, CL_PROGRAM_BUILD_LOG, log_len, log,
                                  NULL) != CL_SUCCESS)
            log[0] = '\0';
        log[log_len] = '\0';
    }
    n = snprintf(err->msg, sizeof err->msg,
                 "cannot build kernel '%s' for '%s' with options '%s': %s\nbuild log:\n%s", file,
                 cl->info.name, options, ms_cl_strerror(rc), log && *log ? log : "(empty)");
    if (n >= (int)sizeof err->msg)
        memcpy(err->msg + sizeof err->msg - 5, "\n...", 5);
    /* Drop trailing newlines: the caller adds one. */
    for (size_t l = strlen(err->msg); l > 0 && err->msg[l - 1] == '\n'; l--)
        err->msg[l - 1] = '\0';
    err->status = MS_ERR_RUNTIME;
    free(log);
    return MS_ERR_RUNTIME;
}

/* Build from source with the driver's own stderr output held back: PoCL's
 * compiler prints "N warnings generated." straight to file descriptor 2,
 * past -q. What it says is in the build log, which becomes a note (shown
 * with -v) after a successful build and the error text after a failed one. */
static cl_int build_from_source(struct ms_cl *cl, cl_program prog, const char *file,
                                const char *options)
{
    FILE *held = tmpfile();
    const int saved = held ? dup(STDERR_FILENO) : -1;
    size_t log_len = 0;
    char *log;
    cl_int rc;

    fflush(stderr);
    if (saved >= 0)
        dup2(fileno(held), STDERR_FILENO);
    rc = clBuildProgram(prog, 1, &cl->info.device, options, NULL, NULL);
    if (saved >= 0) {
        fflush(stderr);
        dup2(saved, STDERR_FILENO);
        close(saved);
    }
    if (held)
        fclose(held);
    if (rc == CL_SUCCESS &&
        clGetProgramBuildInfo(prog, cl->info.device, CL_PROGRAM_BUILD_LOG, 0, NULL, &log_len) ==
            CL_SUCCESS &&
        log_len > 1 && (log = malloc(log_len + 1)) != NULL) {
        if (clGetProgramBuildInfo(prog, cl->info.device, CL_PROGRAM_BUILD_LOG, log_len, log,
                                  NULL) == CL_SUCCESS) {
            log[log_len] = '\0';
            for (size_t l = strlen(log); l > 0 && (log[l - 1] == '\n' || log[l - 1] == ' '); l--)
                log[l - 1] = '\0';
            if (*log) /* indented: the driver's lines are not maxsim's messages */
                ms_cl_note(cl, "build log of '%s':", file);
            for (const char *p = log; *p;) {
                const size_t n = strcspn(p, "\n");
                ms_cl_note(cl, "  %.*s", (int)n, p);
                p += n + (p[n] == '\n');
            }
        }
        free(log);
    }
    return rc;
}

int ms_cl_program(struct ms_cl *cl, const char *file, const char *options, cl_program *out,
                  struct ms_err *err)
{
    size_t src_len = 0, key_len = 0;
    char *src = NULL, *key = NULL;
    char dir[4096], path[4200];
    int use_cache;
    cl_program prog = NULL;
    cl_int rc;
    const char *srcp;

    *out = NULL;
    if (!options)
        options = "";
    src = kernel_source(cl, file, &src_len, err);
    if (!src)
        return err->status;
    key = cache_key(cl, src, src_len, options, &key_len, err);
    if (!key) {
        free(src);
        return err->status;
    }
    use_cache = cache_dir(dir, sizeof dir);
    if (use_cache) {
        snprintf(path, sizeof path, "%s/%016llx.clbin", dir,
                 (unsigned long long)fnv1a64(key, key_len));
        prog = cache_load(cl, path, key, key_len, options);
        if (prog) {
            ms_cl_note(cl, "cache HIT %s (%s)", path, file);
            goto done;
        }
        /* Missing, stale, corrupt or rejected by the driver: rebuild and replace. */
        if (unlink(path) == 0)
            ms_cl_note(cl, "cache: removed unusable entry %s", path);
        ms_cl_note(cl, "cache MISS %s (%s)", path, file);
    }
    srcp = src;
    prog = clCreateProgramWithSource(cl->ctx, 1, &srcp, &src_len, &rc);
    if (!prog) {
        ms_err_set(err, MS_ERR_RUNTIME, "clCreateProgramWithSource failed for kernel '%s': %s",
                   file, ms_cl_strerror(rc));
        goto done;
    }
    rc = build_from_source(cl, prog, file, options);
    if (rc != CL_SUCCESS) {
        build_error(cl, prog, file, options, rc, err);
        clReleaseProgram(prog);
        prog = NULL;
        goto done;
    }
    if (use_cache)
        cache_save(cl, prog, path, key, key_len);
done:
    free(src);
    free(key);
    *out = prog;
    return prog ? MS_OK : err->status;
}
