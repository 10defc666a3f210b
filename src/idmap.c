/*
 * idmap.c - open-addressing hash map from id strings to rows (idmap.h).
 *
 * Linear probing over a power-of-two table at most half full; FNV-1a hash.
 * The table stores row + 1 and compares the id text on every probe, so it
 * costs 8 bytes a row beyond the ids themselves.
 */
#include "idmap.h"

#include <stdlib.h>
#include <string.h>

static uint64_t hash(const char *s, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ull;
    }
    return h ^ (h >> 29);
}

int ms_idmap_init(struct ms_idmap *m, const struct ms_ids *ids, uint64_t n_rows, const char *what,
                  struct ms_err *err)
{
    uint64_t cap = 16;

    memset(m, 0, sizeof *m);
    m->ids = ids;
    m->n_rows = n_rows;
    if (ids->n == 0)
        return MS_OK; /* row numbers are the ids */
    while (cap < 2 * ids->n)
        cap *= 2;
    if (!(m->slots = ms_calloc(cap, sizeof *m->slots, err)))
        return err->status;
    m->mask = cap - 1;
    for (uint64_t r = 0; r < ids->n; r++) {
        const char *s = ids->pool + ids->offs[r];
        const size_t len = strlen(s);
        uint64_t i = hash(s, len) & m->mask;
        for (; m->slots[i]; i = (i + 1) & m->mask) {
            const char *t = ids->pool + ids->offs[m->slots[i] - 1];
            if (strcmp(s, t) == 0) {
                const uint64_t first = m->slots[i] - 1;
                ms_idmap_release(m);
                return ms_err_set(err, MS_ERR_INPUT,
                                  "%s: id '%s' appears twice (rows %llu and %llu)", what, s,
                                  (unsigned long long)first, (unsigned long long)r);
            }
        }
        m->slots[i] = r + 1;
    }
    return MS_OK;
}

int64_t ms_idmap_find(const struct ms_idmap *m, const char *s, size_t len)
{
    if (!m->slots) {
        /* a row number: digits only, no sign, no leading zeros (so "007" is not row 7) */
        uint64_t v = 0;
        if (len == 0 || len > 19 || (len > 1 && s[0] == '0'))
            return -1;
        for (size_t i = 0; i < len; i++) {
            if (s[i] < '0' || s[i] > '9')
                return -1;
            v = v * 10 + (uint64_t)(s[i] - '0');
        }
        return v < m->n_rows ? (int64_t)v : -1;
    }
    for (uint64_t i = hash(s, len) & m->mask; m->slots[i]; i = (i + 1) & m->mask) {
        const char *t = m->ids->pool + m->ids->offs[m->slots[i] - 1];
        if (strncmp(s, t, len) == 0 && t[len] == '\0')
            return (int64_t)(m->slots[i] - 1);
    }
    return -1;
}

void ms_idmap_release(struct ms_idmap *m)
{
    free(m->slots);
    memset(m, 0, sizeof *m);
}
