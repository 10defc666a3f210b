/*
 * test_par.c - ms_par_run (par.c): every item of a batch runs exactly once, whatever the batch
 * size (one item, fewer items than workers, more than the pool takes), batch after batch on
 * the kept workers, from inside an item (the inner batch finds the workers held and starts
 * its own threads), and from two threads at once (one of them without the workers).
 */
#include <pthread.h>

#include "par.h"
#include "testutil.h"

struct item {
    int runs;
    size_t inner; /* > 0: the item runs a batch of its own of this many items */
    struct item *inner_items;
};

static void *run_item(void *arg)
{
    struct item *it = arg;
    __atomic_add_fetch(&it->runs, 1, __ATOMIC_RELAXED);
    if (it->inner)
        ms_par_run(run_item, it->inner_items, sizeof *it->inner_items, it->inner);
    return NULL;
}

static void check_once(const struct item *items, size_t n, const char *what)
{
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(items[i].runs, 1, "%s: item %zu of %zu ran %d times", what, i, n,
                     items[i].runs);
}

Test(par, every_item_once_at_every_size)
{
    static const size_t sizes[] = { 0, 1, 2, 3, 16, 17, 255, 256, 257, 300 };
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        struct item *items = calloc(sizes[s] + 1, sizeof *items);
        ms_par_run(run_item, items, sizeof *items, sizes[s]);
        check_once(items, sizes[s], "one batch");
        cr_assert_eq(items[sizes[s]].runs, 0, "an item past the batch ran");
        free(items);
    }
}

Test(par, batch_after_batch)
{
    struct item items[24];
    for (int b = 0; b < 2000; b++) {
        const size_t n = 1 + (size_t)b % 24;
        memset(items, 0, sizeof items);
        ms_par_run(run_item, items, sizeof *items, n);
        check_once(items, n, "batch after batch");
    }
}

Test(par, a_batch_inside_an_item)
{
    struct item outer[8], inner[8][5];
    memset(inner, 0, sizeof inner);
    memset(outer, 0, sizeof outer);
    for (int i = 0; i < 8; i++) {
        outer[i].inner = 5;
        outer[i].inner_items = inner[i];
    }
    ms_par_run(run_item, outer, sizeof *outer, 8);
    check_once(outer, 8, "outer");
    for (int i = 0; i < 8; i++)
        check_once(inner[i], 5, "inner");
}

struct runner {
    struct item items[300][12];
};

static void *many_batches(void *arg)
{
    struct runner *r = arg;
    for (int b = 0; b < 300; b++)
        ms_par_run(run_item, r->items[b], sizeof r->items[b][0], 12);
    return NULL;
}

Test(par, two_threads_at_once)
{
    struct runner *r = calloc(2, sizeof *r);
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, many_batches, &r[0]), 0);
    many_batches(&r[1]);
    pthread_join(th, NULL);
    for (int k = 0; k < 2; k++)
        for (int b = 0; b < 300; b++)
            check_once(r[k].items[b], 12, "two threads");
    free(r);
}
