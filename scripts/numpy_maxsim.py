#!/usr/bin/env python3
"""numpy_maxsim.py - exact MaxSim top-k with numpy (OpenBLAS float32): the CPU peer.

  numpy_maxsim.py QUERIES.npy DOCS.npy LENGTHS.npy K OUT.tsv

Loads the corpus as float32 (not timed), then times the search: for blocks of
documents, one sgemm of all query tokens against the block's tokens, the
maximum over each document's tokens (np.maximum.reduceat), the sum over each
query's tokens, and a top-k merge. Prints the seconds on stdout and writes
QID<TAB>DOCID<TAB>RANK<TAB>SCORE lines.
"""
import sys
import time

import numpy as np


def main():
    qpath, dpath, lpath, k, out = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
    q = np.load(qpath).astype(np.float32)          # [Nq, Lq, d]
    docs = np.load(dpath, mmap_mode="r")
    lengths = np.load(lpath)
    docs = np.ascontiguousarray(docs, dtype=np.float32)
    nq, lq, dim = q.shape
    qf = q.reshape(nq * lq, dim)
    starts = np.concatenate([[0], np.cumsum(lengths)])
    n = len(lengths)
    best_s = np.full((nq, 0), -np.inf, dtype=np.float32)
    best_i = np.zeros((nq, 0), dtype=np.int64)
    t0 = time.perf_counter()
    block = 2048
    for b in range(0, n, block):
        e = min(n, b + block)
        sim = qf @ docs[starts[b]:starts[e]].T                       # [Nq*Lq, tokens]
        mx = np.maximum.reduceat(sim, (starts[b:e] - starts[b]), axis=1)  # [Nq*Lq, docs]
        sc = mx.reshape(nq, lq, e - b).sum(axis=1)                   # [Nq, docs]
        s = np.concatenate([best_s, sc], axis=1)
        i = np.concatenate([best_i, np.broadcast_to(np.arange(b, e), (nq, e - b))], axis=1)
        order = np.argsort(-s, axis=1, kind="stable")[:, :k]  # ties: lower row first
        best_s = np.take_along_axis(s, order, axis=1)
        best_i = np.take_along_axis(i, order, axis=1)
    t = time.perf_counter() - t0
    with open(out, "w") as f:
        for qi in range(nq):
            for r in range(best_s.shape[1]):
                f.write(f"{qi}\t{best_i[qi, r]}\t{r + 1}\t{best_s[qi, r]:.9g}\n")
    print(f"{t:.6f}")


if __name__ == "__main__":
    main()
