/*
 * tempfile.h - output files that appear whole or not at all, after git's
 * lockfile/tempfile: create, write, then commit (rename into place) or abort
 * (remove). Every output of maxsim and the kernel cache go through it.
 *
 * What ms_tempfile_create() does depends on what the path names:
 *  - a regular file, or nothing yet: a temporary is created with O_EXCL
 *    beside it, and commit renames it over the file (an existing file keeps
 *    its mode). A symlink is followed: its target is replaced, not the link.
 *  - anything else (a device such as /dev/null, a FIFO, /dev/stdout, a
 *    terminal): there is nothing to replace, and replacing it would destroy
 *    it, so the output is written through to it.
 * With MS_TEMPFILE_SEEKABLE (outputs written by offset: .npy by pwrite,
 * HDF5) a target that is not a regular file gets a scratch file in $TMPDIR
 * instead, copied through to it at commit.
 *
 * Temporaries stay on a list that ms_tempfile_remove_all() clears when the
 * process is interrupted (main.c's signal handler), until committed or
 * aborted.
 */
#ifndef MS_TEMPFILE_H
#define MS_TEMPFILE_H

#include <stdint.h>
#include <sys/types.h>

#include "err.h"
#include "par.h"

enum { MS_TEMPFILE_SEEKABLE = 1 };

struct ms_tempfile {
    char *target; /* the file the output becomes (symlinks followed) */
    char *path;   /* where to write: the temporary, or target when written through */
    int fd;       /* open for writing on path; -1 once closed */
    int out_fd;   /* a scratch file's destination, open for writing; else -1 */
    int through;  /* 1: path is the target itself, written in place */
    int scratch;  /* 1: path is a scratch file, copied to out_fd at commit */
    int keep_mode;
    mode_t mode; /* an existing target's mode, given to the temporary */
};

/* Prepare an output at `path`. `opt` names the option that gave the path in
 * messages ("-o"; NULL for none). An unusable path (empty, a directory, a
 * missing directory, no permission) is MS_ERR_INPUT: it is the user's. */
int ms_tempfile_create(struct ms_tempfile *t, const char *opt, const char *path, int flags,
                       struct ms_err *err);

/* Close the file and put it in place: rename, or copy a scratch file through.
 * On failure the temporary is removed. */
int ms_tempfile_commit(struct ms_tempfile *t, struct ms_err *err);

/* Give up: close and remove the temporary (a written-through target is left
 * as it is). Safe on a zeroed or already finished struct. */
void ms_tempfile_abort(struct ms_tempfile *t);

/* write(2) all of buf, retrying short writes; on failure errno says why
 * (ENOSPC when the device took nothing). Returns 0 or -1. */
int ms_write_all(int fd, const void *buf, size_t len);
/* The same with pwrite(2) at offset off. */
int ms_pwrite_all(int fd, const void *buf, size_t len, off_t off);
/* ms_pwrite_all of n rows of `bytes` each, row i from buf + i * ld to off + i * stride, by up
 * to `threads` threads at once (a copy into fresh page-cache pages runs at a few GB/s a core:
 * the 400 MB score matrix of 1,000 x 100,000 took a quarter of a second on one). Returns 0, or
 * -1 with errno from the first row (in row order) that failed. */
int ms_pwrite_rows(int fd, const void *buf, size_t bytes, size_t ld, uint64_t n, off_t off,
                   off_t stride, int threads);

/*
 * A seekable output written in place through a shared mapping of its first `size` bytes, for
 * score's .npy matrix: each column block is a memcpy into the page cache, where pwrite of the
 * same row pieces takes the file's lock and allocates pages one call at a time (on ext4, 16
 * threads of pwrite ran no faster than one). Only for a file whose blocks are allocated
 * (fallocate), so that no store can fault for want of space. ms_wmap_open starts `threads`
 * threads that fault every page in (MADV_POPULATE_WRITE, which never changes the contents:
 * copies may run beside it), so that this runs while the device starts; without that call, or
 * for a file over 2 GiB or an eighth of memory, the pages fault on first store. Returns 0, or
 * -1 with errno (nothing to undo).
 */
struct ms_wmap {
    char *base;
    size_t size;
    int n_tasks;
    struct ms_par_task *tasks;
    struct wmap_range *ranges;
};
int ms_wmap_open(struct ms_wmap *m, int fd, size_t size, int threads);
/* ms_pwrite_rows into the mapping: row i of buf to base + off + i * stride. */
void ms_wmap_copy_rows(struct ms_wmap *m, const void *buf, size_t bytes, size_t ld, uint64_t n,
                       uint64_t off, uint64_t stride, int threads);
/* Wait for the faulting threads and unmap (by ranges on several threads: the unmap of a range
 * runs beside the others'). Safe on a zeroed or closed struct. */
void ms_wmap_close(struct ms_wmap *m);

/* Remove every temporary still listed: async-signal-safe (only unlink). */
void ms_tempfile_remove_all(void);

#endif
