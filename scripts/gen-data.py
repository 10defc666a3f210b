#!/usr/bin/env python3
"""gen-data.py - write the sample data in data/ (deterministic: fixed seed).

4 queries x 32 tokens and 500 documents of 2 to 8 tokens, float16, d=128,
every token L2-normalized, in two layouts:
  data/sample.h5         groups /queries and /docs, each with `embeddings`,
                         `lengths` and string `ids` (as h5py writes them)
  data/queries.npy       [4, 32, 128] padded float16
  data/docs.npy          [T, 128] flat float16, with data/docs_lengths.npy
                         (int64) and data/docs_ids.txt (one id a line)
  data/queries_ids.txt
Each query is built from the tokens of one document plus noise and random
tokens, so its best document is known: query q1 -> doc-0042, q2 -> doc-0137,
q3 -> doc-0256, q4 -> doc-0499.
Usage: /usr/bin/python3 scripts/gen-data.py [OUTDIR]   (needs numpy, h5py)
"""
import os
import sys

import h5py
import numpy as np

DIM = 128
N_DOCS = 500
N_QUERIES = 4
Q_LEN = 32
TARGETS = [42, 137, 256, 499]


def normalize(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "data")
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(20261123)
    lengths = rng.integers(2, 9, size=N_DOCS).astype(np.int64)
    docs = normalize(rng.standard_normal((int(lengths.sum()), DIM))).astype(np.float16)
    starts = np.concatenate([[0], np.cumsum(lengths)])
    queries = np.empty((N_QUERIES, Q_LEN, DIM), dtype=np.float32)
    for q, target in enumerate(TARGETS):
        own = docs[starts[target]:starts[target + 1]].astype(np.float32)
        picks = own[rng.integers(0, len(own), size=Q_LEN // 2)]
        noisy = picks + 0.3 * rng.standard_normal(picks.shape) / np.sqrt(DIM)
        other = rng.standard_normal((Q_LEN - Q_LEN // 2, DIM))
        queries[q] = normalize(np.concatenate([noisy, other]))
    queries = queries.astype(np.float16)
    doc_ids = [f"doc-{i:04d}" for i in range(N_DOCS)]
    query_ids = [f"q{i + 1}" for i in range(N_QUERIES)]

    with h5py.File(os.path.join(out, "sample.h5"), "w") as f:
        g = f.create_group("queries")
        g["embeddings"] = queries
        g["lengths"] = np.full(N_QUERIES, Q_LEN, dtype=np.int64)
        g["ids"] = np.array(query_ids, dtype=h5py.string_dtype())
        g = f.create_group("docs")
        g["embeddings"] = docs
        g["lengths"] = lengths
        g["ids"] = np.array(doc_ids, dtype=h5py.string_dtype())
    np.save(os.path.join(out, "queries.npy"), queries)
    np.save(os.path.join(out, "docs.npy"), docs)
    np.save(os.path.join(out, "docs_lengths.npy"), lengths)
    with open(os.path.join(out, "docs_ids.txt"), "w") as f:
        f.write("".join(i + "\n" for i in doc_ids))
    with open(os.path.join(out, "queries_ids.txt"), "w") as f:
        f.write("".join(i + "\n" for i in query_ids))


if __name__ == "__main__":
    main()
