#!/usr/bin/env python3
"""peer_rerank.py - the Python pipeline `maxsim rerank` is measured against (issue 10).

What a user would write with h5py and late-interaction-kernels: parse the candidate run,
read the documents' embeddings from the HDF5 corpus (the whole dataset in one read: the
candidates cover most of it), send them to the GPU, score each batch of queries
against every document with maxsim_varlen, pick out the candidate pairs, rank them and write
a TREC run. Prints the wall time of each repetition after one untimed warm-up.

  python3 scripts/peer_rerank.py --h5 corpus.h5 -c run.trec -o out.trec [--reps 3] [--whl DIR]

The corpus has groups /docs (embeddings [tokens, dim] float16, lengths, ids) and /queries
(embeddings [nq, lq, dim] float16; query ids are row numbers), as scripts/bench-e2e writes
it. Exits 3 with a message when torch, triton or a CUDA device is missing.
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peer_search import ROOT, load_lik  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--h5", required=True)
    ap.add_argument("-c", "--candidates", required=True)
    ap.add_argument("-o", "--output", required=True)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--query-batch", type=int, default=128)
    ap.add_argument("--whl", default=os.path.join(ROOT, ".whl"))
    a = ap.parse_args()
    try:
        import h5py
        import numpy as np
        import torch

        if not torch.cuda.is_available():
            raise ImportError("no CUDA device")
        lik = load_lik(a.whl)
    except Exception as e:
        print(f"peer_rerank: skipped: {e}", file=sys.stderr)
        sys.exit(3)
    dev = torch.device("cuda")

    def rerank():
        with h5py.File(a.h5, "r") as f:
            ids = [x.decode() if isinstance(x, bytes) else str(x) for x in f["docs/ids"][:]]
            row_of = {d: i for i, d in enumerate(ids)}
            qs, ds = [], []
            with open(a.candidates) as run:
                for line in run:
                    w = line.split()
                    qs.append(int(w[0]))
                    ds.append(row_of[w[2]])
            qs, ds = np.array(qs), np.array(ds)
            lengths = f["docs/lengths"][:].astype(np.int64)
            D = torch.from_numpy(f["docs/embeddings"][:]).to(dev)
            Q = torch.from_numpy(f["queries/embeddings"][:]).to(dev)
        nq, lq, dim = Q.shape
        cu_d = torch.zeros(len(lengths) + 1, dtype=torch.int32)
        cu_d[1:] = torch.from_numpy(np.cumsum(lengths)).to(torch.int32)
        cu_d = cu_d.to(dev)
        maxd = int(lengths.max())
        pair_q, pair_d = torch.from_numpy(qs).to(dev), torch.from_numpy(ds).to(dev)
        out = torch.empty(len(qs), dtype=torch.float32, device=dev)
        for q0 in range(0, nq, a.query_batch):
            nb = min(a.query_batch, nq - q0)
            cu_q = torch.arange(0, nb * lq + 1, lq, dtype=torch.int32, device=dev)
            s = lik.maxsim_varlen(Q[q0 : q0 + nb].reshape(nb * lq, dim), D, cu_q, cu_d, lq, maxd)
            m = (pair_q >= q0) & (pair_q < q0 + nb)
            out[m] = s[pair_q[m] - q0, pair_d[m]]
        scores = out.cpu().numpy()
        # rank each query's candidates by score, then document row (as maxsim does)
        order = np.lexsort((ds, -scores, qs))
        lines, prev, rank = [], -1, 0
        for i in order:
            rank = rank + 1 if qs[i] == prev else 1
            prev = qs[i]
            lines.append(f"{qs[i]} Q0 {ids[ds[i]]} {rank} {scores[i]:.6f} peer\n")
        with open(a.output, "w") as f:
            f.writelines(lines)

    times = []
    for rep in range(a.reps + 1):
        t = time.perf_counter()
        rerank()
        if rep > 0:
            times.append(time.perf_counter() - t)
    print("peer_rerank: wall " + " ".join(f"{x:.4f}" for x in times))


if __name__ == "__main__":
    main()
