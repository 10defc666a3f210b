/*
 * err.h - how every module reports failure.
 *
 * Modules never print or exit: they fill a caller-owned struct ms_err with a
 * status and a one-line message and return the status. Only main.c and the
 * cmd_*.c files turn that into "maxsim: error: ..." and an exit status.
 * Message grammar (git's rules): lowercase, no final period, the subject in
 * single quotes, the problem first, then expected vs found.
 */
#ifndef MS_ERR_H
#define MS_ERR_H

#include <stddef.h>

/* The status is also the process exit status of the command that failed. */
enum ms_status {
    MS_OK = 0,
    MS_ERR_RUNTIME = 1, /* device, memory, write error: not the user's input */
    MS_ERR_INPUT = 2,   /* usage error or invalid input */
};

struct ms_err {
    int status;     /* enum ms_status */
    char msg[1024]; /* one line, no trailing newline */
};

/* Record an error; returns `status` so callers can write `return ms_err_set(...)`. */
int ms_err_set(struct ms_err *err, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefix the existing message with more context: "CONTEXT: old message". */
int ms_err_prefix(struct ms_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Overflow-checked size arithmetic: return 0 on success, -1 on overflow. */
int ms_mul_u64(unsigned long long a, unsigned long long b, unsigned long long *out);
int ms_add_u64(unsigned long long a, unsigned long long b, unsigned long long *out);

/* malloc/calloc/realloc that set an MS_ERR_RUNTIME "out of memory" error on failure. */
void *ms_malloc(size_t size, struct ms_err *err);
void *ms_calloc(size_t n, size_t size, struct ms_err *err);
void *ms_realloc(void *ptr, size_t size, struct ms_err *err);

#endif
