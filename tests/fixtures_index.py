#!/usr/bin/env python3
"""fixtures_index.py - corpora for `maxsim index` (tests/cli/index.t).

index_docs.npy: a clustered corpus of 400 documents (4..20 tokens, dim 32,
float16, flat) with index_lens.npy; index_a / index_b: its first 300 and
last 100 documents (for --append); index_q.npy: 24 queries, each a noisy
copy of tokens of one document; index_gt.npy: their exact top 10 over the
raw corpus (float64), the target of the recall test. Also error cases:
index_empty (no tokens), index_dim40 (a different dimension), index_dim12
(not a multiple of 8). Deterministic: fixed seeds.
"""
import os

import numpy as np

from fixtures_plaid import clustered_corpus


def exact_top10(queries, docs):
    out = []
    for q in queries.astype(np.float64):
        sc = np.array([(q @ d.astype(np.float64).T).max(axis=1).sum() for d in docs])
        out.append(np.lexsort((np.arange(len(sc)), -sc))[:10])
    return np.array(out, np.int64)


def generate(outdir):
    p = lambda name: os.path.join(outdir, name)
    rng = np.random.default_rng(1414)
    docs, _, queries = clustered_corpus(rng, 400, 32, 24, 4, 20, 24, 8)
    docs = [d.astype(np.float16) for d in docs]
    lens = np.array([d.shape[0] for d in docs], np.int64)
    np.save(p("index_docs.npy"), np.concatenate(docs))
    np.save(p("index_lens.npy"), lens)
    np.save(p("index_a.npy"), np.concatenate(docs[:300]))
    np.save(p("index_a_lens.npy"), lens[:300])
    np.save(p("index_b.npy"), np.concatenate(docs[300:]))
    np.save(p("index_b_lens.npy"), lens[300:])
    np.save(p("index_q.npy"), queries)
    np.save(p("index_gt.npy"), exact_top10(queries, [d.astype(np.float32) for d in docs]))
    np.save(p("index_empty.npy"), np.zeros((3, 0, 32), np.float32))
    np.save(p("index_dim40.npy"), rng.standard_normal((50, 40)).astype(np.float32))
    np.save(p("index_dim40_lens.npy"), np.full(10, 5, np.int64))
    np.save(p("index_dim12.npy"), rng.standard_normal((4, 3, 12)).astype(np.float32))
