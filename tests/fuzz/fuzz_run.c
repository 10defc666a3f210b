/*
 * fuzz_run.c - fuzz the run line parser: any bytes, split at newlines, must
 * parse or be refused with a reason, and parsed ids must lie in the line.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "run.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data, *end = p + size;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        struct ms_run_line rl;
        const char *why = NULL;
        const int rc = ms_run_parse(p, len, &rl, &why);
        if (rc == 0 && (rl.qid < p || rl.qid + rl.qlen > p + len || rl.did < p ||
                        rl.did + rl.dlen > p + len || rl.qlen == 0 || rl.dlen == 0))
            abort();
        if (rc < 0 && (!why || !*why))
            abort();
        p += len + 1;
    }
    return 0;
}
