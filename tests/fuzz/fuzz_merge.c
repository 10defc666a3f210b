/*
 * fuzz_merge.c - fuzz the shard-run merge (runmerge.c): the input is cut
 * into up to three runs at NUL bytes; every line must parse or be refused
 * with a reason, and a merge must succeed or fail with a one-line message,
 * never crash, hang or leave its output behind.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "runmerge.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Every line of one run through the parser. */
static void parse_lines(const char *p, size_t size)
{
    const char *end = p + size;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        struct ms_scored_line sl;
        const char *why = NULL;
        const int rc = ms_scored_parse(p, len, &sl, &why);
        if (rc == 0 && (sl.qid < p || sl.qid + sl.qlen > p + len || sl.did < p ||
                        sl.did + sl.dlen > p + len || sl.qlen == 0 || sl.dlen == 0 || sl.rank == 0))
            abort();
        if (rc < 0 && (!why || !*why))
            abort();
        p += len + 1;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char dir[] = "/tmp/maxsim-fuzz-merge-XXXXXX", paths[3][64], out[64];
    const char *list[3];
    int n = 0;

    if (!mkdtemp(dir))
        abort();
    for (size_t off = 0; n < 3; n++) {
        const uint8_t *p = data + off, *nul = memchr(p, 0, size - off);
        const size_t len = nul ? (size_t)(nul - p) : size - off;
        snprintf(paths[n], sizeof paths[n], "%s/run%d", dir, n);
        FILE *f = fopen(paths[n], "wb");
        if (!f || fwrite(p, 1, len, f) != len || fclose(f) != 0)
            abort();
        parse_lines((const char *)p, len);
        list[n] = paths[n];
        if (!nul) {
            n++;
            break;
        }
        off += len + 1;
    }
    snprintf(out, sizeof out, "%s/out", dir);

    struct ms_wfile *w;
    struct ms_err err = { 0 };
    const struct ms_merge_opts mo = { .k = 1 + (size ? data[0] % 8 : 0), .fmt = -1, .tag = NULL };
    if (ms_wfile_open(&w, out, 0, 0, &err) != MS_OK)
        abort();
    const int rc = ms_runs_merge(list, n, &mo, w, NULL, &err);
    if (rc != MS_OK && (!err.msg[0] || strchr(err.msg, '\n')))
        abort();
    ms_wfile_abort(w);
    for (int i = 0; i < n; i++)
        unlink(paths[i]);
    if (rmdir(dir) != 0) /* the aborted output must be gone */
        abort();
    return 0;
}
