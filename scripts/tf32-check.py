#!/usr/bin/env python3
"""tf32-check.py - `maxsim score --precision tf32` against float64 on random float32 data.

  tf32-check.py [--maxsim ./maxsim] [--nq 16] [--nd 1000] [--lq 32] [--ld 200] [--dim 128]
                [--seed 1] [--modes prep,fused,cvt,raw]

Writes random float32 queries (nq x lq tokens) and documents (nd of 1..ld tokens, a 2-D file
with lengths) to a scratch directory, scores them with `maxsim score` in exact float32 and under
--precision tf32 with each MAXSIM_NV_TF32 mode, and prints one line per run: the path maxsim
names (-v), the largest error against float64 relative to |score| and to the bound
B = sum_i max_j sum_k |q_ik d_jk| (each tf32 product is within about 2^-10 B of its exact value
when both operands are rounded to nearest, 2^-9 when truncated), the largest distance to two
models of the tensor cores' operands (rounded to nearest with ties away, as cvt.rna.tf32.f32;
truncated) in units of B, and recall@10 of the float64 top-10. A mode whose scores follow the
rounded model to ~1e-6 B rounds as designed; raw mode shows what the hardware does with the
low 13 bits.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile

import numpy as np


def tf32(x, rna):
    """float32 array -> float32 with 13 low mantissa bits cleared, rounded to nearest (ties
    away from zero) or truncated; infinities and NaN are not produced by the data here."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    if rna:
        u = u + np.uint32(0x1000)
    return (u & np.uint32(0xFFFFE000)).view(np.float32)


def maxsim(q, d, starts, absolute=False):
    """[nq, lq, dim] against flat documents [T, dim] (starts: nd + 1 offsets), in float64."""
    dd = np.abs(d) if absolute else d
    out = np.zeros((q.shape[0], len(starts) - 1))
    for i in range(q.shape[0]):
        qq = np.abs(q[i]) if absolute else q[i]
        sims = dd @ qq.T  # [T, lq]
        out[i] = np.maximum.reduceat(sims, starts[:-1], axis=0).sum(axis=1)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--maxsim", default="./maxsim")
    ap.add_argument("--nq", type=int, default=16)
    ap.add_argument("--nd", type=int, default=1000)
    ap.add_argument("--lq", type=int, default=32)
    ap.add_argument("--ld", type=int, default=200)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--modes", default="prep,fused,cvt,raw")
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    q = rng.standard_normal((a.nq, a.lq, a.dim)).astype(np.float32)
    lengths = rng.integers(1, a.ld + 1, a.nd).astype(np.int64)
    d = rng.standard_normal((int(lengths.sum()), a.dim)).astype(np.float32)
    starts = np.concatenate([[0], np.cumsum(lengths)])
    q64, d64 = q.astype(np.float64), d.astype(np.float64)
    ref = maxsim(q64, d64, starts)
    bound = maxsim(q64, d64, starts, absolute=True)
    models = {
        "rna": maxsim(tf32(q, True).astype(np.float64), tf32(d, True).astype(np.float64), starts),
        "trunc": maxsim(tf32(q, False).astype(np.float64), tf32(d, False).astype(np.float64),
                        starts),
    }
    top_ref = np.argsort(-ref, axis=1, kind="stable")[:, :10]
    with tempfile.TemporaryDirectory() as tmp:
        paths = {n: os.path.join(tmp, n + ".npy") for n in ("q", "d", "dl", "out")}
        np.save(paths["q"], q)
        np.save(paths["d"], d)
        np.save(paths["dl"], lengths)
        runs = [("exact", None)] + [("tf32", m) for m in a.modes.split(",") if m]
        for prec, mode in runs:
            env = dict(os.environ)
            env.pop("MAXSIM_NV_TF32", None)
            if mode:
                env["MAXSIM_NV_TF32"] = mode
            cmd = [a.maxsim, "-v", "score", "-q", paths["q"], "-d", paths["d"], "--doc-lengths",
                   paths["dl"], "--precision", prec, "-o", paths["out"]]
            r = subprocess.run(cmd, env=env, capture_output=True, text=True)
            name = prec + ("/" + mode if mode else "")
            if r.returncode != 0:
                print(f"{name:11s} FAILED rc={r.returncode}: {r.stderr.strip()[-300:]}")
                continue
            m = re.search(r"scorer: (.*)", r.stderr)
            warn = [ln for ln in r.stderr.splitlines() if "warning" in ln]
            s = np.load(paths["out"]).astype(np.float64)
            err = np.abs(s - ref)
            top = np.argsort(-s, axis=1, kind="stable")[:, :10]
            recall = np.mean([len(set(top[i]) & set(top_ref[i])) / 10 for i in range(a.nq)])
            print(f"{name:11s} rel.err max {np.max(err / np.abs(ref)):.3g}  err/B max "
                  f"{np.max(err / bound):.3g}  to rna model {np.max(np.abs(s - models['rna']) / bound):.3g}"
                  f"  to trunc model {np.max(np.abs(s - models['trunc']) / bound):.3g}  "
                  f"recall@10 {recall:.3f}  path: {m.group(1) if m else '?'}"
                  + (f"  [{warn[0]}]" if warn else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
