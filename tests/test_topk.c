/*
 * test_topk.c - the top-k merge: against a full sort, independent of how the
 * scores are cut into blocks, ties by row, k larger than the input.
 */
#include <math.h>

#include "testutil.h"
#include "topk.h"

struct entry {
    float s;
    uint64_t r;
};

static int cmp_entry(const void *a, const void *b)
{
    const struct entry *x = a, *y = b;
    if (x->s != y->s)
        return x->s > y->s ? -1 : 1;
    return x->r < y->r ? -1 : x->r > y->r;
}

/* Scores with many ties (few distinct values), pushed in blocks of `block`. */
static void check(uint64_t nq, uint64_t nd, uint64_t k, uint64_t block, uint64_t seed)
{
    struct ms_topk t;
    struct ms_err err;
    uint64_t st = seed;
    float *scores = malloc(nq * nd * sizeof *scores + 1);
    struct entry *e = malloc(nd * sizeof *e + 1);
    const uint64_t kk = k < nd ? k : nd;

    for (uint64_t i = 0; i < nq * nd; i++)
        scores[i] = (float)(test_rand_below(&st, 7)) - 3.0f;
    cr_assert(ms_topk_init(&t, nq, kk, &err) == 0);
    for (uint64_t b = 0; b < nd; b += block) {
        const uint64_t n = nd - b < block ? nd - b : block;
        ms_topk_push(&t, 0, nq, scores + b, nd, n, b);
    }
    ms_topk_finish(&t);
    for (uint64_t q = 0; q < nq; q++) {
        for (uint64_t j = 0; j < nd; j++)
            e[j] = (struct entry){ scores[q * nd + j], j };
        qsort(e, nd, sizeof *e, cmp_entry);
        cr_assert_eq(t.count[q], kk);
        for (uint64_t i = 0; i < kk; i++) {
            cr_assert_eq(t.row[q * t.k + i], e[i].r, "q %llu rank %llu: row %llu, expected %llu",
                         (unsigned long long)q, (unsigned long long)i,
                         (unsigned long long)t.row[q * t.k + i], (unsigned long long)e[i].r);
            cr_assert_eq(t.score[q * t.k + i], e[i].s);
        }
    }
    ms_topk_release(&t);
    free(scores);
    free(e);
}

Test(topk, matches_a_full_sort_whatever_the_block_size)
{
    static const uint64_t blocks[] = { 1, 2, 3, 7, 64, 1000, 5000 };
    for (size_t i = 0; i < sizeof blocks / sizeof blocks[0]; i++) {
        check(3, 1000, 10, blocks[i], 11 + i);
        check(2, 1000, 1, blocks[i], 21 + i);
        check(2, 300, 299, blocks[i], 31 + i);
    }
}

Test(topk, k_larger_than_the_corpus_returns_everything)
{
    check(4, 17, 100, 5, 5);
    check(1, 1, 10, 1, 6);
}

Test(topk, empty_corpus_and_k_zero)
{
    struct ms_topk t;
    struct ms_err err;
    cr_assert(ms_topk_init(&t, 3, 0, &err) == 0);
    float s = 1.0f;
    ms_topk_push(&t, 0, 1, &s, 1, 1, 0);
    ms_topk_finish(&t);
    cr_assert_eq(t.count[0], 0);
    ms_topk_release(&t);
}

Test(topk, nan_ranks_last_and_infinities_order)
{
    struct ms_topk t;
    struct ms_err err;
    const float s[] = { NAN, -INFINITY, 1.0f, INFINITY, NAN, 0.0f };
    cr_assert(ms_topk_init(&t, 1, 6, &err) == 0);
    ms_topk_push(&t, 0, 1, s, 6, 6, 100);
    ms_topk_finish(&t);
    const uint64_t want[] = { 103, 102, 105, 101, 100, 104 };
    for (int i = 0; i < 6; i++)
        cr_assert_eq(t.row[i], want[i], "rank %d: row %llu", i, (unsigned long long)t.row[i]);
    ms_topk_release(&t);
}
