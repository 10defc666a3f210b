"""fixtures_cli.py - fixtures for the CLI tests of search and score (tests/cli/*.t).

Small random inputs (never zeros) in the layouts the commands take, plus edge
cases: an empty corpus, a corpus of empty rows, a dim mismatch, a NaN.
"""
import os

import h5py
import numpy as np


def generate(out):
    rng = np.random.default_rng(3)

    def save(name, a):
        np.save(os.path.join(out, name), a)

    # 5 queries of 1-9 tokens padded to 9, d=48, float32 with lengths
    q = rng.standard_normal((5, 9, 48)).astype(np.float32)
    save("cli_q.npy", q)
    save("cli_q_lengths.npy", np.array([9, 1, 4, 7, 3], dtype=np.int64))
    # 300 documents of 1-40 tokens, flat, float16, with lengths; rows 3, 77 and 200 empty
    lengths = rng.integers(1, 41, size=300).astype(np.int64)
    lengths[[3, 77, 200]] = 0
    d = rng.standard_normal((int(lengths.sum()), 48)).astype(np.float16)
    save("cli_d.npy", d)
    save("cli_d_lengths.npy", lengths)
    with open(os.path.join(out, "cli_d_ids.txt"), "w") as f:
        f.write("".join(f"D{i}\n" for i in range(300)))
    # the same documents padded, in HDF5 with string ids
    pad = np.zeros((300, 40, 48), dtype=np.float16)
    starts = np.concatenate([[0], np.cumsum(lengths)])
    for r in range(300):
        pad[r, :lengths[r]] = d[starts[r]:starts[r + 1]]
    with h5py.File(os.path.join(out, "cli_d.h5"), "w") as f:
        g = f.create_group("docs")
        g["embeddings"] = pad
        g["lengths"] = lengths
        g["ids"] = np.array([f"D{i}" for i in range(300)], dtype=h5py.string_dtype())
        g = f.create_group("queries")
        g["embeddings"] = q
        g["lengths"] = np.array([9, 1, 4, 7, 3], dtype=np.int64)
    # duplicated documents: ties broken by row number
    dup = np.concatenate([d[:100]] * 3)
    save("cli_dup.npy", dup)
    save("cli_dup_lengths.npy", np.array([20] * 15, dtype=np.int64))
    # edge cases
    save("cli_empty_corpus.npy", np.zeros((0, 48), dtype=np.float32))
    save("cli_empty_corpus_lengths.npy", np.zeros(0, dtype=np.int64))
    save("cli_empty_rows_lengths.npy", np.zeros(7, dtype=np.int64))
    save("cli_d64.npy", rng.standard_normal((10, 64)).astype(np.float32))
    nan = rng.standard_normal((50, 48)).astype(np.float32)
    nan[33, 5] = np.nan
    save("cli_nan.npy", nan)
    save("cli_nan_lengths.npy", np.array([10] * 5, dtype=np.int64))
