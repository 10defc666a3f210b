/*
 * test_tempfile.c - output files (tempfile.c): a temporary beside the target
 * that commit renames and abort removes, an existing file's mode kept, a
 * symlink's target replaced and not the link, devices written through, a
 * scratch file for seekable output to a device, short writes that say why;
 * and the input stream (zin.c) on plain, zstd and piped bytes.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <zstd.h>

#include "tempfile.h"
#include "testutil.h"
#include "zin.h"

/* A fresh directory for one test; removed (with what is in it) at the end. */
static char dir[256];

static void make_dir(void)
{
    snprintf(dir, sizeof dir, "/tmp/maxsim-tempfile-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void remove_dir(void)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char p[600];

    while (d && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
        }
    if (d)
        closedir(d);
    rmdir(dir);
}

/* How many entries the directory holds. */
static int entries(void)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;

    while (d && (e = readdir(d)))
        n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    if (d)
        closedir(d);
    return n;
}

static const char *in_dir(const char *name)
{
    static char p[4][600];
    static int slot;
    char *b = p[slot++ % 4];
    snprintf(b, 600, "%s/%s", dir, name);
    return b;
}

static void write_through_api(const char *path, const char *text)
{
    struct ms_tempfile t;
    struct ms_err err = { 0 };

    cr_assert_eq(ms_tempfile_create(&t, "-o", path, 0, &err), MS_OK, "%s", err.msg);
    cr_assert_eq(ms_write_all(t.fd, text, strlen(text)), 0);
    cr_assert_eq(ms_tempfile_commit(&t, &err), MS_OK, "%s", err.msg);
}

static void expect_contents(const char *path, const char *text)
{
    char buf[256] = { 0 };
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s", path);
    cr_assert(fread(buf, 1, sizeof buf - 1, f) == strlen(text));
    fclose(f);
    cr_assert_str_eq(buf, text);
}

Test(tempfile, commit_and_abort, .init = make_dir, .fini = remove_dir)
{
    struct ms_tempfile t;
    struct ms_err err = { 0 };

    cr_assert_eq(ms_tempfile_create(&t, "-o", in_dir("a.txt"), 0, &err), MS_OK);
    cr_assert_eq(entries(), 1); /* the temporary only */
    cr_assert(access(in_dir("a.txt"), F_OK) != 0);
    cr_assert_eq(ms_write_all(t.fd, "one\n", 4), 0);
    cr_assert_eq(ms_tempfile_commit(&t, &err), MS_OK);
    expect_contents(in_dir("a.txt"), "one\n");
    cr_assert_eq(entries(), 1);

    cr_assert_eq(ms_tempfile_create(&t, "-o", in_dir("a.txt"), 0, &err), MS_OK);
    cr_assert_eq(ms_write_all(t.fd, "two\n", 4), 0);
    ms_tempfile_abort(&t);
    expect_contents(in_dir("a.txt"), "one\n"); /* untouched */
    cr_assert_eq(entries(), 1);
    ms_tempfile_abort(&t); /* twice is fine */
}

Test(tempfile, keeps_mode_and_follows_symlinks, .init = make_dir, .fini = remove_dir)
{
    struct stat st;

    write_through_api(in_dir("target"), "old\n");
    cr_assert_eq(chmod(in_dir("target"), 0640), 0);
    cr_assert_eq(symlink("target", in_dir("link")), 0);
    write_through_api(in_dir("link"), "new\n");
    cr_assert_eq(lstat(in_dir("link"), &st), 0);
    cr_assert(S_ISLNK(st.st_mode), "the link was replaced");
    expect_contents(in_dir("target"), "new\n");
    cr_assert_eq(stat(in_dir("target"), &st), 0);
    cr_assert_eq(st.st_mode & 07777, 0640);
    /* a dangling link: its target is created */
    cr_assert_eq(symlink("made", in_dir("dangling")), 0);
    write_through_api(in_dir("dangling"), "x\n");
    expect_contents(in_dir("made"), "x\n");
}

/* Device nodes of our own (as root; else links to the real ones, which a
 * regression would replace instead of the devices). */
static void make_devices(void)
{
    make_dir();
    if (mknod(in_dir("null"), S_IFCHR | 0666, makedev(1, 3)) != 0)
        cr_assert_eq(symlink("/dev/null", in_dir("null")), 0);
    if (mknod(in_dir("full"), S_IFCHR | 0666, makedev(1, 7)) != 0)
        cr_assert_eq(symlink("/dev/full", in_dir("full")), 0);
}

Test(tempfile, devices_written_through, .init = make_devices, .fini = remove_dir)
{
    struct ms_tempfile t;
    struct ms_err err = { 0 };
    struct stat st;

    cr_assert_eq(ms_tempfile_create(&t, "-o", in_dir("null"), 0, &err), MS_OK);
    cr_assert_eq(ms_write_all(t.fd, "x", 1), 0);
    cr_assert_eq(ms_tempfile_commit(&t, &err), MS_OK);
    cr_assert_eq(stat(in_dir("null"), &st), 0);
    cr_assert(S_ISCHR(st.st_mode));
    cr_assert_eq(entries(), 2);

    /* full: the write fails with its own reason */
    cr_assert_eq(ms_tempfile_create(&t, "-o", in_dir("full"), 0, &err), MS_OK);
    cr_assert_eq(ms_write_all(t.fd, "x", 1), -1);
    cr_assert_eq(errno, ENOSPC);
    ms_tempfile_abort(&t);
    cr_assert_eq(stat(in_dir("full"), &st), 0);
    cr_assert(S_ISCHR(st.st_mode));

    /* seekable output to a device: a scratch file, copied at commit */
    cr_assert_eq(ms_tempfile_create(&t, "-o", "/dev/stdout", 0, &err), MS_OK);
    cr_assert_str_eq(t.path, "/dev/stdout");
    ms_tempfile_abort(&t);
    cr_assert_eq(ms_tempfile_create(&t, "-o", in_dir("full"), MS_TEMPFILE_SEEKABLE, &err), MS_OK);
    cr_assert_str_neq(t.path, in_dir("full"));
    cr_assert_eq(ms_pwrite_all(t.fd, "abc", 3, 10), 0);
    char *scratch = strdup(t.path);
    cr_assert_eq(ms_tempfile_commit(&t, &err), MS_ERR_RUNTIME);
    cr_assert(strstr(err.msg, "No space left on device"), "%s", err.msg);
    cr_assert(access(scratch, F_OK) != 0, "the scratch file is removed");
    free(scratch);
}

Test(tempfile, unusable_paths, .init = make_dir, .fini = remove_dir)
{
    struct ms_tempfile t;
    struct ms_err err = { 0 };

    cr_assert_eq(ms_tempfile_create(&t, "-o", "", 0, &err), MS_ERR_INPUT);
    cr_assert_str_eq(err.msg, "-o: expected a file name, got ''");
    cr_assert_eq(ms_tempfile_create(&t, "-o", dir, 0, &err), MS_ERR_INPUT);
    cr_assert(strstr(err.msg, "is a directory"), "%s", err.msg);
    cr_assert_eq(ms_tempfile_create(&t, NULL, in_dir("no/x"), 0, &err), MS_ERR_INPUT);
    cr_assert(strncmp(err.msg, "cannot create '", 15) == 0, "%s", err.msg);
    cr_assert_eq(entries(), 0);
}

/* zin: the same bytes read plain, as zstd, and skipped, in odd-sized steps. */
Test(zin, plain_and_zstd)
{
    char text[5000], comp[6000], out[5000];
    for (size_t i = 0; i < sizeof text; i++)
        text[i] = (char)('a' + i % 23);
    const size_t clen = ZSTD_compress(comp, sizeof comp, text, sizeof text, 3);
    cr_assert(!ZSTD_isError(clen));
    const char *files[2] = { tmpfile_with(text, sizeof text, ".txt"),
                             tmpfile_with(comp, clen, ".zst") };

    for (int k = 0; k < 2; k++) {
        struct ms_zin *z;
        struct ms_err err = { 0 };
        uint64_t got, done = 0;
        cr_assert_eq(ms_zin_open(&z, files[k], MS_ZIN_AUTO, &err), MS_OK, "%s", err.msg);
        cr_assert_eq(ms_zin_is_zstd(z), k);
        cr_assert_eq(ms_zin_read(z, NULL, 7, &got, &err), MS_OK); /* skip */
        cr_assert_eq(got, 7);
        done = 7;
        while (done < sizeof text) {
            cr_assert_eq(ms_zin_read(z, out + done, 333, &got, &err), MS_OK, "%s", err.msg);
            if (got == 0)
                break;
            done += got;
        }
        cr_assert_eq(done, sizeof text);
        cr_assert(memcmp(out + 7, text + 7, sizeof text - 7) == 0);
        cr_assert_eq(ms_zin_produced(z), sizeof text);
        ms_zin_close(z);
    }
}

Test(zin, errors)
{
    char comp[200], text[100] = "hello";
    const size_t clen = ZSTD_compress(comp, sizeof comp, text, sizeof text, 3);
    const char *cut = tmpfile_with(comp, clen - 3, ".zst");
    const char *plain = tmpfile_with(text, 5, ".txt");
    struct ms_zin *z;
    struct ms_err err = { 0 };
    uint64_t got;
    char out[200];

    cr_assert_eq(ms_zin_open(&z, plain, MS_ZIN_ZSTD, &err), MS_ERR_INPUT);
    cr_assert(strstr(err.msg, "not a zstd file (bad magic bytes)"), "%s", err.msg);
    cr_assert_eq(ms_zin_open(&z, cut, MS_ZIN_AUTO, &err), MS_OK);
    cr_assert_eq(ms_zin_read(z, out, sizeof out, &got, &err), MS_ERR_INPUT);
    cr_assert(strstr(err.msg, "truncated zstd data"), "%s", err.msg);
    ms_zin_close(z);
}

/* Bytes that come through a pipe a few at a time still tell their format. */
Test(zin, pipe_in_small_pieces)
{
    char text[64] = "piped text", comp[200], out[64];
    const size_t clen = ZSTD_compress(comp, sizeof comp, text, sizeof text, 3);
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    const pid_t pid = fork();
    if (pid == 0) {
        for (size_t i = 0; i < clen; i++) {
            if (write(fds[1], comp + i, 1) != 1)
                _exit(1);
            usleep(100);
        }
        _exit(0);
    }
    close(fds[1]);
    struct ms_zin *z;
    struct ms_err err = { 0 };
    uint64_t got;
    cr_assert_eq(ms_zin_open_fd(&z, fds[0], 1, "'pipe'", MS_ZIN_AUTO, &err), MS_OK);
    cr_assert(ms_zin_is_zstd(z));
    cr_assert_eq(ms_zin_read(z, out, sizeof out, &got, &err), MS_OK, "%s", err.msg);
    cr_assert_eq(got, sizeof text);
    cr_assert_str_eq(out, "piped text");
    ms_zin_close(z);
    waitpid(pid, NULL, 0);
}

/* ms_pwrite_rows: rows of a block (ld apart in memory) land stride apart in the file, whatever
 * the thread count; a failed write reports its errno. */
Test(tempfile, pwrite_rows_threads)
{
    const uint64_t n = 3001, row = 8192, ld = 8200, stride = 9000; /* 24 MB: 6 threads */
    char *buf = malloc(n * ld), *want = calloc(1, n * stride + 64);
    for (uint64_t i = 0; i < n * ld; i++)
        buf[i] = (char)(i * 2654435761u >> 13);
    for (uint64_t i = 0; i < n; i++)
        memcpy(want + 64 + i * stride, buf + i * ld, row);
    const int counts[] = { 1, 2, 5, 16, 40 };
    for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++) {
        char path[] = "/tmp/maxsim-test-rows-XXXXXX";
        const int fd = mkstemp(path);
        cr_assert(fd >= 0);
        cr_assert(ftruncate(fd, (off_t)(n * stride + 64)) == 0);
        cr_assert(ms_pwrite_rows(fd, buf, row, ld, n, 64, (off_t)stride, counts[c]) == 0);
        char *got = malloc(n * stride + 64);
        cr_assert(pread(fd, got, n * stride + 64, 0) == (ssize_t)(n * stride + 64));
        cr_assert(memcmp(got, want, n * stride + 64) == 0, "%d threads", counts[c]);
        free(got);
        close(fd);
        unlink(path);
    }
    errno = 0;
    cr_assert(ms_pwrite_rows(-1, buf, row, ld, n, 0, (off_t)stride, 4) == -1);
    cr_assert_eq(errno, EBADF);
    free(buf);
    free(want);
}
