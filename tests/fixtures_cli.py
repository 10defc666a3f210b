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


def generate_runs(out):
    """Candidate runs over cli_d (ids D0..D299) for queries cli_q (ids 0..4)."""
    rng = np.random.default_rng(5)
    lines = []
    for q in range(5):
        cands = rng.integers(0, 300, size=60)          # repeats on purpose
        for r, d in enumerate(cands):
            lines.append(f"{q} Q0 D{d} {r + 1} {100 - r}.5 bm25\n")
    shared = [f"{q} Q0 D{d} 1 1 bm25\n" for q in (0, 3) for d in (3, 77, 150)]  # shared + empty docs
    with open(os.path.join(out, "cli_run.trec"), "w") as f:
        f.write("".join(lines[:150] + shared + lines[150:]))
    with open(os.path.join(out, "cli_run.tsv"), "w") as f:
        f.write("".join(f"{l.split()[0]}\t{l.split()[2]}\t{l.split()[4]}\r\n" for l in lines))
    with open(os.path.join(out, "cli_run_missing.trec"), "w") as f:
        f.write(lines[0] + "0 Q0 D999 2 1 t\n" + lines[1] + "77 Q0 D5 1 1 t\n" + "1 Q0 nope 3 1 t\n")
    with open(os.path.join(out, "cli_run_bad.trec"), "w") as f:
        f.write(lines[0] + lines[1] + "0 Q0 D5 1\n")
    with open(os.path.join(out, "cli_run_one.tsv"), "w") as f:
        f.write("2\tD10\n")
    open(os.path.join(out, "cli_run_empty.trec"), "w").close()


_generate_inputs = generate


def generate(out):  # noqa: F811 - inputs, then the runs over them
    _generate_inputs(out)
    generate_runs(out)
