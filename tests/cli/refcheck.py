#!/usr/bin/env python3
"""refcheck.py - check a maxsim result against a float64 numpy reference.

  refcheck.py run   QUERIES DOCS K RUNFILE [--normalize] [--query-lengths F] [--doc-lengths F]
  refcheck.py score QUERIES DOCS MATRIX.npy [--normalize] [...]
  refcheck.py rerank QUERIES DOCS CANDIDATES OUTRUN [--doc-ids F] [--normalize] [...]

QUERIES / DOCS: PATH.npy or PATH.h5:/group (as maxsim takes them). For a run
(TREC or TSV, ids being row numbers or the file's ids): every query's list
must be the reference top-k (documents whose reference scores tie within
the tolerance may swap) and scores must agree within 1e-4 relative. Prints
'ok' or the first difference and exits 1.
"""
import sys

import numpy as np


def load(spec, lengths_path):
    ids = None
    if ".h5" in spec:
        import h5py
        path, _, group = spec.partition(":")
        with h5py.File(path, "r") as f:
            g = f[group or "/"]
            emb = g["embeddings"][()].astype(np.float64)
            lengths = g["lengths"][()] if "lengths" in g else None
            if "ids" in g:
                ids = [x.decode() if isinstance(x, bytes) else str(x) for x in g["ids"][()]]
    else:
        emb = np.load(spec).astype(np.float64)
        lengths = None
    if lengths_path:
        lengths = np.load(lengths_path)
    rows = []
    if emb.ndim == 3:
        for r in range(emb.shape[0]):
            n = emb.shape[1] if lengths is None else int(lengths[r])
            rows.append(emb[r, :n])
    else:
        lengths = [emb.shape[0]] if lengths is None else lengths
        start = 0
        for n in lengths:
            rows.append(emb[start:start + int(n)])
            start += int(n)
    return rows, ids


def scores(q, d, normalize):
    def norm(x):
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12) if normalize else x
    qn = [norm(x) for x in q]
    dn = [norm(x) for x in d]
    out = np.zeros((len(q), len(d)))
    for j, y in enumerate(dn):
        if len(y) == 0:
            continue
        for i, x in enumerate(qn):
            if len(x):
                out[i, j] = (x @ y.T).max(axis=1).sum()
    return out


def main():
    mode, qspec, dspec = sys.argv[1], sys.argv[2], sys.argv[3]
    rest = sys.argv[4:]
    normalize = "--normalize" in rest
    ql = rest[rest.index("--query-lengths") + 1] if "--query-lengths" in rest else None
    dl = rest[rest.index("--doc-lengths") + 1] if "--doc-lengths" in rest else None
    q, qids = load(qspec, ql)
    d, dids = load(dspec, dl)
    ref = scores(q, d, normalize)
    if mode == "score":
        got = np.load(rest[0])
        if got.shape != ref.shape:
            sys.exit(f"shape {got.shape}, expected {ref.shape}")
        err = np.abs(got - ref) / np.maximum(np.abs(ref), 1.0)
        if err.max() > 1e-4:
            i, j = np.unravel_index(err.argmax(), err.shape)
            sys.exit(f"score[{i},{j}] = {got[i, j]}, expected {ref[i, j]}")
        print("ok")
        return
    if "--doc-ids" in rest:
        dids = [l.rstrip("\r\n") for l in open(rest[rest.index("--doc-ids") + 1])]
    if mode == "rerank":
        qindex = {(qids[i] if qids else str(i)): i for i in range(len(q))}
        dindex = {(dids[j] if dids else str(j)): j for j in range(len(d))}
        want = {}
        for line in open(rest[0]):
            f = line.split()
            if not f:
                continue
            qi, dj = (f[0], f[2]) if len(f) == 6 else (f[0], f[1])
            want.setdefault(qindex[qi], set()).add(dindex[dj])
        got = {}
        for line in open(rest[1]):
            f = line.split()
            qi, dj, rank, s = (f[0], f[2], int(f[3]), float(f[4])) if len(f) == 6 else (f[0], f[1], int(f[2]), float(f[3]))
            got.setdefault(qindex[qi], []).append((rank, dindex[dj], s))
        if set(got) != set(want):
            sys.exit(f"queries {sorted(got)}, expected {sorted(want)}")
        for i, lst in got.items():
            lst.sort()
            if [r for r, _, _ in lst] != list(range(1, len(lst) + 1)):
                sys.exit(f"query {i}: ranks are not 1..{len(lst)}")
            if sorted(j for _, j, _ in lst) != sorted(want[i]):
                sys.exit(f"query {i}: documents differ from the unique candidates")
            for rank, j, s in lst:
                if abs(s - ref[i, j]) > 1e-4 * max(abs(ref[i, j]), 1.0):
                    sys.exit(f"query {i} doc {j}: score {s}, expected {ref[i, j]}")
            for a, b in zip(lst, lst[1:]):
                if a[2] < b[2] or (a[2] == b[2] and a[1] > b[1]):
                    sys.exit(f"query {i}: ranks {a[0]} and {b[0]} out of order")
        print("ok")
        return
    k, path = int(rest[0]), rest[1]
    qindex = {(qids[i] if qids else str(i)): i for i in range(len(q))}
    dindex = {(dids[j] if dids else str(j)): j for j in range(len(d))}
    got = {}
    for line in open(path):
        f = line.split()
        if len(f) == 6:
            qid, did, rank, s = f[0], f[2], int(f[3]), float(f[4])
        else:
            qid, did, rank, s = f[0], f[1], int(f[2]), float(f[3])
        got.setdefault(qindex[qid], []).append((rank, dindex[did], s))
    for i in range(len(q)):
        lst = sorted(got.get(i, []))
        want = min(k, len(d))
        if len(lst) != want:
            sys.exit(f"query {i}: {len(lst)} results, expected {want}")
        order = np.lexsort((np.arange(len(d)), -ref[i]))
        kth = ref[i, order[want - 1]] if want else 0
        for rank, j, s in lst:
            tol = 1e-4 * max(abs(ref[i, j]), 1.0)
            if abs(s - ref[i, j]) > tol:
                sys.exit(f"query {i} doc {j}: score {s}, expected {ref[i, j]}")
            if ref[i, j] < kth - tol:
                sys.exit(f"query {i}: doc {j} (score {ref[i, j]}) is not in the top {k} (k-th {kth})")
        for a, b in zip(lst, lst[1:]):
            if a[2] < b[2]:
                sys.exit(f"query {i}: ranks {a[0]} and {b[0]} out of order")
    print("ok")


if __name__ == "__main__":
    main()
