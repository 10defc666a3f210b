#!/usr/bin/env python3
"""peer_score.py - the Python pipeline `maxsim score` is measured against (issue 10).

What a user would write with late-interaction-kernels for a full score matrix: np.load the
flat float16 corpus with mmap, copy blocks into two pinned tensors, send them to the GPU,
score every query against each block with maxsim_varlen into a [queries, documents] float32
matrix on the device, copy it back once and np.save it. Prints the wall time of each repetition after one untimed
warm-up.

  python3 scripts/peer_score.py -q Q.npy -d D.npy --doc-lengths L.npy -o scores.npy
                                 [--reps 3] [--block-tokens 262144] [--whl DIR]

Exits 3 with a message when torch, triton or a CUDA device is missing.
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peer_search import ROOT, load_lik  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-q", "--queries", required=True)
    ap.add_argument("-d", "--docs", required=True)
    ap.add_argument("--doc-lengths", required=True)
    ap.add_argument("-o", "--output", required=True)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--block-tokens", type=int, default=1 << 18)
    ap.add_argument("--whl", default=os.path.join(ROOT, ".whl"))
    a = ap.parse_args()
    try:
        import numpy as np
        import torch

        if not torch.cuda.is_available():
            raise ImportError("no CUDA device")
        lik = load_lik(a.whl)
    except Exception as e:
        print(f"peer_score: skipped: {e}", file=sys.stderr)
        sys.exit(3)
    dev = torch.device("cuda")
    qnp = np.load(a.queries)
    nq, lq, dim = qnp.shape
    Qp = torch.from_numpy(np.ascontiguousarray(qnp.reshape(nq * lq, dim))).to(dev)
    cu_q = torch.arange(0, nq * lq + 1, lq, dtype=torch.int32, device=dev)
    pinned = [torch.empty((a.block_tokens, dim), dtype=torch.float16).pin_memory() for _ in range(2)]
    copied = [torch.cuda.Event(), torch.cuda.Event()]

    def score():
        D = np.load(a.docs, mmap_mode="r")
        lengths = np.load(a.doc_lengths).astype(np.int64)
        starts = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=starts[1:])
        out_g = torch.empty((nq, len(lengths)), dtype=torch.float32, device=dev)
        r, slot = 0, 0
        while r < len(lengths):
            e = max(int(np.searchsorted(starts, starts[r] + a.block_tokens, side="right")) - 1, r + 1)
            t0, t1 = int(starts[r]), int(starts[e])
            if t1 - t0 > pinned[slot].shape[0]:
                pinned[slot] = torch.empty((t1 - t0, dim), dtype=torch.float16).pin_memory()
            copied[slot].synchronize()
            buf = pinned[slot][: t1 - t0]
            buf.numpy()[:] = D[t0:t1]
            Dg = buf.to(dev, non_blocking=True)
            copied[slot].record()
            cu_d = torch.from_numpy(starts[r : e + 1] - t0).to(torch.int32).to(dev, non_blocking=True)
            s = lik.maxsim_varlen(Qp, Dg, cu_q, cu_d, lq, int(lengths[r:e].max()))
            out_g[:, r:e] = s
            r, slot = e, slot ^ 1
        np.save(a.output, out_g.cpu().numpy())

    times = []
    for rep in range(a.reps + 1):
        t = time.perf_counter()
        score()
        if rep > 0:
            times.append(time.perf_counter() - t)
    print("peer_score: wall " + " ".join(f"{x:.4f}" for x in times))


if __name__ == "__main__":
    main()
