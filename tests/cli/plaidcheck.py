#!/usr/bin/env python3
"""plaidcheck.py - check `maxsim plaid` runs against the fixture generator's
float64 decompressed tokens (NAME.decomp.npy) and ground truth.

  plaidcheck.py exact INDEX QUERIES RUN   every line's score equals the exact
                                          MaxSim over decompressed tokens (1e-4)
  plaidcheck.py recall GT RUN MIN         recall@10 of RUN against GT >= MIN
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


def main():
    mode = sys.argv[1]
    if mode == "exact":
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
