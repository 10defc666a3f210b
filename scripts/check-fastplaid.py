#!/usr/bin/env python3
"""check-fastplaid.py - does the real fast-plaid agree with `maxsim plaid` on an index?

Searches a fast-plaid-layout index with fast-plaid itself (GPU if torch sees
one, else CPU) and with `maxsim plaid`, at the same settings, and prints the
mean top-k overlap and the largest relative score difference on common
documents. On the test fixture index (written by tests/fixtures_plaid.py with
its own ColBERT packing) this checks our codec and layout against fast-plaid.

  python check-fastplaid.py [INDEX_DIR QUERIES.npy] [--maxsim ./maxsim] [-k 10]
  (default: build/fixtures/plaid_corpus and build/fixtures/plaid_corpus_q.npy;
   needs torch and fast-plaid, e.g. pip install torch==2.11.0 fast-plaid==1.7.0.2110)
"""
import argparse
import os
import subprocess

import numpy as np
import torch
from fast_plaid import search

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("index", nargs="?", default=os.path.join(HERE, "..", "build/fixtures/plaid_corpus"))
    ap.add_argument("queries", nargs="?",
                    default=os.path.join(HERE, "..", "build/fixtures/plaid_corpus_q.npy"))
    ap.add_argument("--maxsim", default=os.path.join(HERE, "..", "maxsim"))
    ap.add_argument("-k", type=int, default=10)
    a = ap.parse_args()
    q = np.load(a.queries).astype(np.float32)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    fp = search.FastPlaid(index=a.index, device=device)
    res = fp.search(queries_embeddings=torch.from_numpy(q), top_k=a.k, n_ivf_probe=8,
                    n_full_scores=4096, show_progress=False)
    out = subprocess.run([a.maxsim, "-q", "plaid", "-q", a.queries, "-i", a.index, "-k", str(a.k),
                          "--format", "tsv"], capture_output=True, text=True, check=True).stdout
    ours = {}
    for line in out.splitlines():
        f = line.split("\t")
        ours.setdefault(int(f[0]), {})[int(f[1])] = float(f[3])
    overlap, worst = [], 0.0
    for i, r in enumerate(res):
        mine = ours.get(i, {})
        overlap.append(len(set(mine) & {d for d, _ in r}) / a.k)
        for d, s in r:
            if d in mine:
                worst = max(worst, abs(s - mine[d]) / max(abs(mine[d]), 1.0))
    print("fast-plaid (%s, torch %s) vs maxsim plaid on %s: %d queries, mean top-%d overlap %.4f, "
          "largest relative score difference %.2e" % (device, torch.__version__, a.index, len(res),
                                                       a.k, float(np.mean(overlap)), worst))


if __name__ == "__main__":
    main()
