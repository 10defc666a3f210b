#!/usr/bin/env python3
"""plaidcheck.py - check `maxsim plaid` runs against the fixture generator's
float64 decompressed tokens (NAME.decomp.npy) and ground truth.

  plaidcheck.py exact INDEX QUERIES RUN   every line's score equals the exact
                                          MaxSim over decompressed tokens (1e-4)
  plaidcheck.py recall GT RUN MIN         recall@10 of RUN against GT >= MIN
  plaidcheck.py pipeline INDEX QUERIES RUN K NPROBE NCAND NRERANK [THRESHOLD]
                                          RUN is exactly fast-plaid's pipeline (research
                                          plaid.md 3.3) redone here in float64
Prints "ok" or the first problem. Documents are 0-based index positions, or
'docN' ids.
"""
import json
import os
import sys

import numpy as np


def read_run(path):
    rows = []
    for line in open(path):
        f = line.split()
        if len(f) == 6:
            rows.append((f[0], f[2], int(f[3]), float(f[4])))
        else:
            rows.append((f[0], f[1], int(f[2]), float(f[3])))
    return rows


def doc_index(d):
    return int(d[3:]) if d.startswith("doc") else int(d)


def doclens_of(index):
    lens = []
    i = 0
    while os.path.exists(os.path.join(index, "doclens.%d.json" % i)):
        lens += json.load(open(os.path.join(index, "doclens.%d.json" % i)))
        i += 1
    return lens


def pipeline(index, queries, run, k, nprobe, ncand, nrerank, threshold=None):
    cents = np.load(os.path.join(index, "centroids.npy")).astype(np.float64)
    codes = np.load(index + ".codes.npy")
    decomp = np.load(index + ".decomp.npy")
    lens = doclens_of(index)
    offs = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    ivl = np.load(os.path.join(index, "ivf_lengths.npy")).astype(np.int64)[:len(cents)]
    ivf = np.load(os.path.join(index, "ivf.npy")).astype(np.int64)
    ivo = np.concatenate([[0], np.cumsum(ivl)])
    got = {}
    for qid, did, rank, score in read_run(run):
        got.setdefault(int(qid), []).append((doc_index(did), rank, score))
    for qi, q in enumerate(np.load(queries).astype(np.float64)):
        s = q @ cents.T  # [tokens, K]
        probed = set()
        for j in range(s.shape[0]):
            order = np.lexsort((np.arange(s.shape[1]), -s[j]))
            probed.update(int(c) for c in order[:nprobe])
        if threshold is not None:
            probed = {c for c in probed if s[:, c].max() >= threshold}
        cands = sorted({int(d) for c in probed if c < len(ivl)
                        for d in ivf[ivo[c]:ivo[c + 1]]})
        approx = [s[:, codes[offs[d]:offs[d + 1]]].max(axis=1).sum() for d in cands]
        keep = [cands[i] for i in np.lexsort((cands, -np.array(approx)))][:min(nrerank, ncand)]
        exact = [(q @ decomp[offs[d]:offs[d + 1]].T).max(axis=1).sum() for d in keep]
        best = [keep[i] for i in np.lexsort((keep, -np.array(exact)))][:k]
        mine = [d for d, _, _ in sorted(got.get(qi, []), key=lambda x: x[1])]
        if mine != best:
            return "query %d: got %s, expected %s" % (qi, mine, best)
    return "ok"


def main():
    mode = sys.argv[1]
    if mode == "pipeline":
        a = sys.argv[2:]
        print(pipeline(a[0], a[1], a[2], int(a[3]), int(a[4]), int(a[5]), int(a[6]),
                       float(a[7]) if len(a) > 7 else None))
    elif mode == "exact":
        index, queries, run = sys.argv[2:5]
        decomp = np.load(index + ".decomp.npy")
        q = np.load(queries).astype(np.float64)
        lens = []
        i = 0
        while os.path.exists(os.path.join(index, "doclens.%d.json" % i)):
            lens += json.load(open(os.path.join(index, "doclens.%d.json" % i)))
            i += 1
        offs = np.concatenate([[0], np.cumsum(lens)])
        for qid, did, _, score in read_run(run):
            d = doc_index(did)
            x = decomp[offs[d]:offs[d + 1]]
            want = (q[int(qid)] @ x.T).max(axis=1).sum() if len(x) else 0.0
            if abs(want - score) > 1e-4 * max(1.0, abs(want)):
                print("query %s doc %s: %r, expected %r" % (qid, did, score, want))
                return
        print("ok")
    else:
        gt = np.load(sys.argv[2])
        run = read_run(sys.argv[3])
        hits = sum(1 for qid, did, rank, _ in run if rank <= 10 and doc_index(did) in gt[int(qid)])
        recall = hits / gt.size
        print("ok" if recall >= float(sys.argv[4]) else "recall %.4f" % recall)


if __name__ == "__main__":
    main()
