/*
 * fuzz_npy.c - the .npy header parser and readers on arbitrary bytes.
 *
 * The bytes are parsed as the start of a .npy file on memory; then, through
 * a memfd named /proc/self/fd/N, opened as a whole .npy file, as a .npy.zst
 * stream and as a lengths file, reading up to 1 MiB of data forward in
 * chunks. Any input must end in MS_OK or an error record, never a crash.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memfd_create */
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "npy.h"
#include "src.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Read the data forward in spans of up to 4096 tokens, at most 1 MiB. */
static void read_some(struct ms_raw *raw)
{
    struct ms_err err;
    const uint64_t dim = raw->shape[raw->rank - 1];
    const uint64_t tok = dim * ms_dtype_size(raw->dtype);
    const uint64_t total = raw->rank == 3 ? raw->shape[0] * raw->shape[1] : raw->shape[0];
    uint64_t chunk = tok ? (1u << 16) / tok : 0, done = 0;
    void *buf;

    if (!tok || !total)
        return;
    if (chunk == 0)
        chunk = 1;
    if (tok > (1u << 20) || !(buf = malloc(chunk * tok)))
        return;
    while (done < total && done * tok < (1u << 20)) {
        const uint64_t n = total - done < chunk ? total - done : chunk;
        if (raw->ops->read_span(raw->impl, done, n, buf, &err) != MS_OK)
            break;
        done += n;
    }
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ms_npy_header h;
    struct ms_err err;
    struct ms_raw raw;
    char shape[64], path[64];
    uint64_t bytes;
    int64_t *vals;
    uint64_t n;

    if (ms_npy_parse_header(data, size, &h, &err) == MS_OK) {
        ms_npy_format_shape(&h, shape, sizeof shape);
        (void)ms_npy_type_name(&h);
        (void)ms_npy_data_bytes(&h, &bytes, &err);
    }

    const int fd = memfd_create("fuzz_npy", 0);
    if (fd < 0)
        return 0;
    if (write(fd, data, size) != (ssize_t)size) {
        close(fd);
        return 0;
    }
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    for (int zst = 0; zst < 2; zst++) {
        memset(&raw, 0, sizeof raw);
        if ((zst ? ms_npy_zst_open(path, &raw, &err) : ms_npy_open(path, &raw, &err)) == MS_OK) {
            read_some(&raw);
            raw.ops->close(raw.impl);
        }
    }
    if (ms_npy_read_ints(path, &vals, &n, &err) == MS_OK)
        free(vals);
    close(fd);
    return 0;
}
