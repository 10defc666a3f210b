#!/usr/bin/env python3
"""gen-corpus.py - write a large random corpus for benchmarks, in bounded memory.

Writes OUT.npy, a flat [T, dim] float16 (or float32) array of L2-normalized
random token vectors, OUT_lengths.npy (int64 row lengths, uniform in
[min_len, max_len]) and, with --queries N, OUT_queries.npy [N, Lq, dim].
Sized by --docs or by --gb (approximate size of the token data).
Deterministic for a given seed. Needs numpy.

  python3 scripts/gen-corpus.py /tmp/c1g --gb 1
  python3 scripts/gen-corpus.py /tmp/small --docs 20000 --queries 32
"""
import argparse

import numpy as np
from numpy.lib import format as npformat


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--docs", type=int)
    ap.add_argument("--gb", type=float)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--min-len", type=int, default=50)
    ap.add_argument("--max-len", type=int, default=300)
    ap.add_argument("--queries", type=int, default=0)
    ap.add_argument("--query-len", type=int, default=32)
    ap.add_argument("--dtype", default="float16", choices=["float16", "float32"])
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()
    dt = np.dtype(a.dtype)
    rng = np.random.default_rng(a.seed)
    mean_len = (a.min_len + a.max_len) / 2
    n_docs = a.docs or int(a.gb * 1e9 / (mean_len * a.dim * dt.itemsize))
    lengths = rng.integers(a.min_len, a.max_len + 1, size=n_docs).astype(np.int64)
    total = int(lengths.sum())
    np.save(a.out + "_lengths.npy", lengths)
    with open(a.out + ".npy", "wb") as f:
        npformat.write_array_header_1_0(f, {"descr": dt.str, "fortran_order": False, "shape": (total, a.dim)})
        step = 1 << 18
        for start in range(0, total, step):
            n = min(step, total - start)
            x = rng.standard_normal((n, a.dim), dtype=np.float32)
            x /= np.linalg.norm(x, axis=1, keepdims=True)
            f.write(x.astype(dt).tobytes())
    if a.queries:
        q = rng.standard_normal((a.queries, a.query_len, a.dim), dtype=np.float32)
        q /= np.linalg.norm(q, axis=2, keepdims=True)
        np.save(a.out + "_queries.npy", q.astype(dt))
    print(f"{a.out}.npy: {n_docs} documents, {total} tokens, dim {a.dim}, {a.dtype}, "
          f"{total * a.dim * dt.itemsize / 1e9:.2f} GB")


if __name__ == "__main__":
    main()
