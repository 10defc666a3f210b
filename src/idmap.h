/*
 * idmap.h - from an id string to its row: a hash map over struct ms_ids.
 *
 * Rerank matches the ids of a candidate run to rows of the query and
 * document inputs. When an input has no ids its row numbers are the ids,
 * and a decimal id is mapped to its row with no table at all.
 */
#ifndef MS_IDMAP_H
#define MS_IDMAP_H

#include <stddef.h>
#include <stdint.h>

#include "emb.h"
#include "err.h"

struct ms_idmap {
    const struct ms_ids *ids; /* not owned */
    uint64_t n_rows;          /* rows of the input (ids->n, or the row count without ids) */
    uint64_t *slots;          /* open addressing: row + 1, 0 = empty; owned */
    uint64_t mask;
};

/* Build the map; duplicate ids are an MS_ERR_INPUT error naming both rows
 * (`what` names the input in messages, e.g. "'docs.h5' dataset '/ids'"). */
int ms_idmap_init(struct ms_idmap *m, const struct ms_ids *ids, uint64_t n_rows, const char *what,
                  struct ms_err *err);
/* The row of id s (len bytes), or -1 if there is none. */
int64_t ms_idmap_find(const struct ms_idmap *m, const char *s, size_t len);
void ms_idmap_release(struct ms_idmap *m);

#endif
