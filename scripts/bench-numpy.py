"""bench-numpy.py - exact float32 MaxSim with numpy (OpenBLAS sgemm), the
baseline for docs/kernel-notes.md: all query tokens [Nq*Lq, d] @ a chunk of
document tokens .T, then np.maximum.reduceat over the documents' segments,
then the sum over each query's tokens.
Usage: python3 scripts/bench-numpy.py NQ LQ ND LD_MIN LD_MAX DIM [CHUNK_DOCS]"""
import sys, time
import numpy as np

nq, lq, nd, lo, hi, dim = (int(x) for x in sys.argv[1:7])
chunk = int(sys.argv[7]) if len(sys.argv) > 7 else 1000
rng = np.random.default_rng(0)
lens = rng.integers(lo, hi + 1, nd)
offs = np.concatenate([[0], np.cumsum(lens)])
D = rng.uniform(-1, 1, (offs[-1], dim)).astype(np.float32)
Q = rng.uniform(-1, 1, (nq * lq, dim)).astype(np.float32)

def run():
    out = np.empty((nq, nd), np.float32)
    for a in range(0, nd, chunk):
        b = min(a + chunk, nd)
        S = Q @ D[offs[a]:offs[b]].T                      # [nq*lq, tokens of the chunk]
        M = np.maximum.reduceat(S, offs[a:b] - offs[a], axis=1)  # [nq*lq, docs]
        out[:, a:b] = M.reshape(nq, lq, b - a).sum(axis=1)
    return out

run()
best = min((lambda t0: (run(), time.perf_counter() - t0)[1])(time.perf_counter()) for _ in range(3))
flops = 2.0 * nq * lq * offs[-1] * dim
print(f"numpy {np.__version__} nq={nq} lq={lq} nd={nd} ld={lo}..{hi} dim={dim} chunk={chunk}: "
      f"{best:.3f} s {flops / best * 1e-9:.1f} GFLOP/s")
