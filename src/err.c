/*
 * err.c - error records and checked allocation, shared by every module.
 */
#include "err.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int ms_err_set(struct ms_err *err, int status, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->status = status;
    }
    return status;
}

int ms_err_prefix(struct ms_err *err, const char *fmt, ...)
{
    char prefix[512];
    const size_t cap = sizeof err->msg;
    size_t plen;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    plen = strlen(prefix) + 2; /* "PREFIX: " */
    /* shift the old message right (truncating its end), then write the prefix */
    memmove(err->msg + plen, err->msg, cap - plen - 1);
    err->msg[cap - 1] = '\0';
    memcpy(err->msg, prefix, plen - 2);
    err->msg[plen - 2] = ':';
    err->msg[plen - 1] = ' ';
    return err->status;
}

int ms_mul_u64(unsigned long long a, unsigned long long b, unsigned long long *out)
{
    return __builtin_mul_overflow(a, b, out) ? -1 : 0;
}

int ms_add_u64(unsigned long long a, unsigned long long b, unsigned long long *out)
{
    return __builtin_add_overflow(a, b, out) ? -1 : 0;
}

void *ms_malloc(size_t size, struct ms_err *err)
{
    void *p = malloc(size ? size : 1);
    if (!p)
        ms_err_set(err, MS_ERR_RUNTIME, "out of memory allocating %zu bytes", size);
    return p;
}

void *ms_calloc(size_t n, size_t size, struct ms_err *err)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        ms_err_set(err, MS_ERR_RUNTIME, "out of memory allocating %zu x %zu bytes", n, size);
    return p;
}

void *ms_realloc(void *ptr, size_t size, struct ms_err *err)
{
    void *p = realloc(ptr, size ? size : 1);
    if (!p)
        ms_err_set(err, MS_ERR_RUNTIME, "out of memory allocating %zu bytes", size);
    return p;
}
