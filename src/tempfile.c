/*
 * tempfile.c - create, commit and abort of output files (tempfile.h), the
 * signal-cleanup list of temporaries, writes that finish or say why, and outputs
 * written in place through a mapping.
 */
#include "tempfile.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "par.h"

/* A few slots are enough: a command has at most three temporaries at once
 * (two .npy outputs and the kernel cache). */
static const char *volatile tmp_paths[8];

static void list_add(const char *path)
{
    for (int i = 0; i < 8; i++)
        if (!tmp_paths[i]) {
            tmp_paths[i] = path;
            return;
        }
}

/* Signals that remove the temporaries (main.c) are held while one is being
 * created and listed, so that none is ever created and not yet listed. */
static void hold_signals(sigset_t *old)
{
    sigset_t set;

    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, old);
}

static void list_remove(const char *path)
{
    for (int i = 0; i < 8; i++)
        if (tmp_paths[i] == path)
            tmp_paths[i] = NULL;
}

void ms_tempfile_remove_all(void)
{
    for (int i = 0; i < 8; i++)
        if (tmp_paths[i])
            unlink(tmp_paths[i]);
}

int ms_write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;

    while (len > 0) {
        const ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0) { /* nothing taken and no reason given: the device is full */
            errno = ENOSPC;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

struct rows_part {
    int fd;
    const char *buf;
    size_t bytes, ld;
    uint64_t first, end;
    off_t off, stride;
    uint64_t bad; /* the first row that failed (end when none), and its errno */
    int err;
};

static void *write_rows(void *arg)
{
    struct rows_part *p = arg;

    p->bad = p->end;
    for (uint64_t i = p->first; i < p->end; i++)
        if (ms_pwrite_all(p->fd, p->buf + i * p->ld, p->bytes, p->off + (off_t)i * p->stride) !=
            0) {
            p->bad = i;
            p->err = errno;
            break;
        }
    return NULL;
}

/* Threads for n rows of `bytes` (1 to 16, at most `threads` and n): a thread for every 4 MB at
 * least, since below that starting one costs more than it saves. */
static int rows_threads(size_t bytes, uint64_t n, int threads)
{
    const uint64_t most = (uint64_t)bytes * n / (4u << 20) + 1;
    if (threads > 16)
        threads = 16;
    if ((uint64_t)threads > most)
        threads = (int)most;
    if ((uint64_t)threads > n)
        threads = n ? (int)n : 1;
    if (threads < 1)
        threads = 1;
    return threads;
}

int ms_pwrite_rows(int fd, const void *buf, size_t bytes, size_t ld, uint64_t n, off_t off,
                   off_t stride, int threads)
{
    struct rows_part parts[16];

    threads = rows_threads(bytes, n, threads);
    for (int t = 0; t < threads; t++) {
        parts[t] = (struct rows_part){ .fd = fd,
                                       .buf = buf,
                                       .bytes = bytes,
                                       .ld = ld,
                                       .first = n * (uint64_t)t / (uint64_t)threads,
                                       .end = n * (uint64_t)(t + 1) / (uint64_t)threads,
                                       .off = off,
                                       .stride = stride };
    }
    ms_par_run(write_rows, parts, sizeof *parts, (size_t)threads);
    for (int t = 0; t < threads; t++)
        if (parts[t].bad < parts[t].end) {
            errno = parts[t].err;
            return -1;
        }
    return 0;
}

int ms_pwrite_all(int fd, const void *buf, size_t len, off_t off)
{
    const char *p = buf;

    while (len > 0) {
        const ssize_t n = pwrite(fd, p, len, off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0) {
            errno = ENOSPC;
            return -1;
        }
        p += n;
        off += n;
        len -= (size_t)n;
    }
    return 0;
}

/* The descriptor a name like /dev/stdout or /proc/self/fd/3 stands for, or
 * -1. Such an output is written to that descriptor: reopening the name would
 * start at offset 0 of a file the shell opened for appending, and following
 * the links would replace the shell's file. */
static int fd_name(const char *path)
{
    static const char *const prefixes[] = { "/dev/fd/", "/proc/self/fd/" };
    char *end;

    if (strcmp(path, "/dev/stdout") == 0)
        return 1;
    if (strcmp(path, "/dev/stderr") == 0)
        return 2;
    for (size_t i = 0; i < 2; i++) {
        const size_t n = strlen(prefixes[i]);
        if (strncmp(path, prefixes[i], n) == 0 && path[n] >= '0' && path[n] <= '9') {
            const long fd = strtol(path + n, &end, 10);
            if (*end == '\0' && fd <= INT_MAX)
                return (int)fd;
        }
    }
    return -1;
}

/* Follow symlinks from path to the file that is to be replaced (which may
 * not exist yet), as git's lockfile does. *fd is set when the chain reaches
 * a descriptor name. Returns a malloc'ed path or NULL (out of memory). */
static char *resolve_target(const char *path, int *fd)
{
    char *cur = strdup(path), link[PATH_MAX];

    *fd = -1;
    for (int depth = 0; cur && depth < 40; depth++) { /* 40: the kernel's own limit */
        struct stat st;
        if ((*fd = fd_name(cur)) >= 0 || lstat(cur, &st) != 0 || !S_ISLNK(st.st_mode))
            return cur;
        const ssize_t n = readlink(cur, link, sizeof link - 1);
        if (n < 0)
            return cur;
        link[n] = '\0';
        char *next;
        const char *slash = strrchr(cur, '/');
        if (link[0] == '/' || !slash) {
            next = strdup(link);
        } else { /* relative to the directory of the link */
            const int dir_len = (int)(slash - cur) + 1;
            next = malloc((size_t)dir_len + (size_t)n + 1);
            if (next)
                sprintf(next, "%.*s%s", dir_len, cur, link);
        }
        free(cur);
        cur = next;
    }
    return cur; /* a loop: creating the temporary will say so */
}

/* An unusable output path: the user's input, so MS_ERR_INPUT, prefixed with
 * the option that named it. */
static int create_error(struct ms_err *err, const char *opt, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int create_error(struct ms_err *err, const char *opt, const char *fmt, ...)
{
    char msg[sizeof err->msg];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return ms_err_set(err, MS_ERR_INPUT, "%s%s%s", opt ? opt : "", opt ? ": " : "", msg);
}

/* Open a scratch file for an output that must be seekable but whose target is
 * not a regular file. */
static int open_scratch(struct ms_tempfile *t, struct ms_err *err)
{
    const char *dir = getenv("TMPDIR");

    if (!dir || !*dir)
        dir = "/tmp";
    free(t->path);
    if (!(t->path = malloc(strlen(dir) + 32)))
        return ms_err_set(err, MS_ERR_RUNTIME, "out of memory");
    sprintf(t->path, "%s/maxsim-XXXXXX", dir);
    t->out_fd = t->fd;
    sigset_t old;
    hold_signals(&old);
    t->fd = mkostemp(t->path, O_CLOEXEC);
    const int e = errno;
    if (t->fd >= 0)
        list_add(t->path);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (t->fd < 0) {
        t->fd = t->out_fd;
        t->out_fd = -1;
        return ms_err_set(err, MS_ERR_RUNTIME, "cannot create a scratch file in '%s': %s", dir,
                          strerror(e));
    }
    t->through = 0;
    t->scratch = 1;
    return MS_OK;
}

int ms_tempfile_create(struct ms_tempfile *t, const char *opt, const char *path, int flags,
                       struct ms_err *err)
{
    struct stat st;
    int fd_of_name, rc;

    memset(t, 0, sizeof *t);
    t->fd = t->out_fd = -1;
    if (!*path)
        return create_error(err, opt, "expected a file name, got ''");
    if (!(t->target = resolve_target(path, &fd_of_name)))
        return ms_err_set(err, MS_ERR_RUNTIME, "out of memory");

    if (fd_of_name >= 0 || (stat(t->target, &st) == 0 && !S_ISREG(st.st_mode))) {
        if (fd_of_name < 0 && S_ISDIR(st.st_mode)) {
            rc = create_error(err, opt, "cannot write '%s': is a directory, expected a file name",
                              path);
            ms_tempfile_abort(t);
            return rc;
        }
        /* not a regular file: write through (O_NONBLOCK is not used, so a
         * FIFO waits for its reader, as with `> fifo` in a shell) */
        t->fd = fd_of_name >= 0 ? fcntl(fd_of_name, F_DUPFD_CLOEXEC, 3)
                                : open(t->target, O_WRONLY | O_NOCTTY | O_CLOEXEC);
        if (t->fd < 0) {
            rc = create_error(err, opt, "cannot write '%s': %s", path, strerror(errno));
            ms_tempfile_abort(t);
            return rc;
        }
        t->through = 1;
        if (!(t->path = strdup(t->target))) {
            ms_tempfile_abort(t);
            return ms_err_set(err, MS_ERR_RUNTIME, "out of memory");
        }
        /* /dev/null seeks, a FIFO does not, neither keeps what HDF5 rereads */
        if ((flags & MS_TEMPFILE_SEEKABLE) && (rc = open_scratch(t, err)) != MS_OK) {
            ms_tempfile_abort(t);
            return rc;
        }
        if (t->out_fd >= 0) { /* the scratch file replaces path; the target is out_fd */
            free(t->target);
            t->target = strdup(path);
        }
        return MS_OK;
    }

    /* A regular file or a new one: a temporary beside it, O_EXCL so that
     * two runs (or a stale leftover) never share one. */
    t->keep_mode = stat(t->target, &st) == 0;
    t->mode = st.st_mode & 07777;
    if (!(t->path = malloc(strlen(t->target) + 40))) {
        ms_tempfile_abort(t);
        return ms_err_set(err, MS_ERR_RUNTIME, "out of memory");
    }
    sigset_t old;
    hold_signals(&old);
    for (unsigned attempt = 0; t->fd < 0 && attempt < 100; attempt++) {
        if (attempt == 0)
            sprintf(t->path, "%s.tmp.%ld", t->target, (long)getpid());
        else /* a leftover of a killed process that had our pid */
            sprintf(t->path, "%s.tmp.%ld.%u", t->target, (long)getpid(), attempt);
        /* seekable outputs may be mapped for writing (ms_wmap), which needs read access */
        t->fd = open(t->path,
                     ((flags & MS_TEMPFILE_SEEKABLE) ? O_RDWR : O_WRONLY) | O_CREAT | O_EXCL |
                         O_CLOEXEC,
                     0666);
        if (t->fd < 0 && errno != EEXIST)
            break;
    }
    const int e = errno;
    if (t->fd >= 0)
        list_add(t->path);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (t->fd < 0) {
        errno = e;
        rc = create_error(err, opt, "cannot create '%s': %s", path, strerror(errno));
        free(t->path);
        t->path = NULL;
        ms_tempfile_abort(t);
        return rc;
    }
    return MS_OK;
}

/* Copy the scratch file to the real destination. */
static int copy_scratch(struct ms_tempfile *t, struct ms_err *err)
{
    char buf[1 << 16];
    ssize_t n;

    if (lseek(t->fd, 0, SEEK_SET) != 0)
        return ms_err_set(err, MS_ERR_RUNTIME, "cannot read the scratch file '%s': %s", t->path,
                          strerror(errno));
    while ((n = read(t->fd, buf, sizeof buf)) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return ms_err_set(err, MS_ERR_RUNTIME, "cannot read the scratch file '%s': %s", t->path,
                              strerror(errno));
        if (ms_write_all(t->out_fd, buf, (size_t)n) != 0)
            return ms_err_set(err, MS_ERR_RUNTIME, "cannot write to '%s': %s", t->target,
                              strerror(errno));
    }
    return MS_OK;
}

int ms_tempfile_commit(struct ms_tempfile *t, struct ms_err *err)
{
    int rc = MS_OK;

    if (t->out_fd >= 0) { /* a scratch file: copy it through, then remove it */
        rc = copy_scratch(t, err);
        if (close(t->out_fd) != 0 && rc == MS_OK)
            rc = ms_err_set(err, MS_ERR_RUNTIME, "cannot write to '%s': %s", t->target,
                            strerror(errno));
        t->out_fd = -1;
    } else if (!t->through && t->keep_mode && fchmod(t->fd, t->mode) != 0) {
        rc = ms_err_set(err, MS_ERR_RUNTIME, "cannot set the mode of '%s': %s", t->path,
                        strerror(errno));
    }
    /* close(2) is where NFS and full disks may report a failed write */
    if (close(t->fd) != 0 && rc == MS_OK)
        rc =
            ms_err_set(err, MS_ERR_RUNTIME, "cannot write to '%s': %s", t->target, strerror(errno));
    t->fd = -1;
    if (rc == MS_OK && !t->through && t->out_fd < 0 && !t->scratch) {
        if (rename(t->path, t->target) != 0)
            rc = ms_err_set(err, MS_ERR_RUNTIME, "cannot rename '%s' to '%s': %s", t->path,
                            t->target, strerror(errno));
        else
            t->through = 1; /* in place now: nothing left to remove */
        list_remove(t->path);
    }
    ms_tempfile_abort(t);
    return rc;
}

void ms_tempfile_abort(struct ms_tempfile *t)
{
    if (t->out_fd >= 0)
        close(t->out_fd);
    if (t->fd >= 0)
        close(t->fd);
    if (t->path && !t->through) {
        unlink(t->path);
        list_remove(t->path);
    }
    free(t->path);
    free(t->target);
    memset(t, 0, sizeof *t);
    t->fd = t->out_fd = -1;
}

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14; older kernels answer EINVAL: pages fault later */
#endif

struct wmap_range {
    char *base;
    size_t len;
    int unmap; /* munmap instead of faulting in */
};

static void *wmap_range_run(void *arg)
{
    const struct wmap_range *r = arg;
    if (r->unmap)
        munmap(r->base, r->len);
    else
        madvise(r->base, r->len, MADV_POPULATE_WRITE); /* a failure only leaves faults for later */
    return NULL;
}

/* [base, base + size) cut into n page-aligned ranges (n >= 1; fewer when small). */
static int wmap_cut(struct wmap_range *r, char *base, size_t size, int n, int unmap)
{
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    const size_t step = (size / (size_t)n + page - 1) / page * page;
    int k = 0;
    for (size_t off = 0; off < size && k < n; off += step, k++)
        r[k] = (struct wmap_range){ base + off, size - off < step ? size - off : step, unmap };
    return k;
}

int ms_wmap_open(struct ms_wmap *m, int fd, size_t size, int threads)
{
    memset(m, 0, sizeof *m);
    if (threads < 1)
        threads = 1;
    if (threads > 16)
        threads = 16;
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED)
        return -1;
    m->base = p;
    m->size = size;
    /* Faulting in ahead takes the whole file's pages at once: only for outputs that memory
     * holds easily (a larger one faults page by page as the copies reach it) */
    const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if (size > (2ull << 30) || (pages > 0 && page > 0 && size > (uint64_t)pages * page / 8))
        return 0;
    m->ranges = calloc((size_t)threads, sizeof *m->ranges);
    m->tasks = calloc((size_t)threads, sizeof *m->tasks);
    if (!m->ranges || !m->tasks) { /* no faulting ahead: the copies fault the pages */
        free(m->ranges);
        free(m->tasks);
        m->ranges = NULL;
        m->tasks = NULL;
        return 0;
    }
    m->n_tasks = wmap_cut(m->ranges, m->base, size, threads, 0);
    for (int i = 0; i < m->n_tasks; i++)
        ms_par_start(&m->tasks[i], wmap_range_run, &m->ranges[i]);
    return 0;
}

struct copy_part {
    char *dst;
    const char *buf;
    size_t bytes, ld;
    uint64_t first, end, stride;
};

static void *copy_rows(void *arg)
{
    const struct copy_part *p = arg;
    for (uint64_t i = p->first; i < p->end; i++)
        memcpy(p->dst + i * p->stride, p->buf + i * p->ld, p->bytes);
    return NULL;
}

void ms_wmap_copy_rows(struct ms_wmap *m, const void *buf, size_t bytes, size_t ld, uint64_t n,
                       uint64_t off, uint64_t stride, int threads)
{
    struct copy_part parts[16];
    threads = rows_threads(bytes, n, threads);
    for (int t = 0; t < threads; t++)
        parts[t] = (struct copy_part){ .dst = m->base + off,
                                       .buf = buf,
                                       .bytes = bytes,
                                       .ld = ld,
                                       .first = n * (uint64_t)t / (uint64_t)threads,
                                       .end = n * (uint64_t)(t + 1) / (uint64_t)threads,
                                       .stride = stride };
    ms_par_run(copy_rows, parts, sizeof *parts, (size_t)threads);
}

void ms_wmap_close(struct ms_wmap *m)
{
    if (!m->base)
        return;
    for (int i = 0; i < m->n_tasks; i++)
        ms_par_wait(&m->tasks[i]);
    if (m->ranges && m->n_tasks > 1) {
        const int n = wmap_cut(m->ranges, m->base, m->size, m->n_tasks, 1);
        ms_par_run(wmap_range_run, m->ranges, sizeof *m->ranges, (size_t)n);
    } else {
        munmap(m->base, m->size);
    }
    free(m->ranges);
    free(m->tasks);
    memset(m, 0, sizeof *m);
}
