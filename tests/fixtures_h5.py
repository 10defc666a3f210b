"""fixtures_h5.py - HDF5 fixtures for tests/test_h5.c, written by h5py itself.

Every embedding value comes from value(r, t, k) below, which test_h5.c
recomputes: the values are multiples of 1/8 in [-1, 1], exact in float16, so
reads are checked for equality. Flat ([T, dim]) datasets use r = 0 and t the
token's position in the dataset. Deterministic: no randomness, no timestamps
(track_times=False), so the bytes are the same on every run.
"""
import os

import h5py
import numpy as np


def value(r, t, k):
    return ((r * 31 + t * 7 + k) % 17) / 8.0 - 1.0


def padded(n, length, dim, dtype):
    r, t, k = np.meshgrid(np.arange(n), np.arange(length), np.arange(dim), indexing="ij")
    return value(r, t, k).astype(dtype)


def flat(tokens, dim, dtype):
    t, k = np.meshgrid(np.arange(tokens), np.arange(dim), indexing="ij")
    return value(0, t, k).astype(dtype)


def dset(g, name, data, **kw):
    return g.create_dataset(name, data=data, track_times=False, **kw)


def generate(outdir):
    def path(name):
        return os.path.join(outdir, name)

    # 3-D float16 with lengths and variable-length utf-8 string ids.
    with h5py.File(path("h5_f16_3d.h5"), "w") as f:
        dset(f, "embeddings", padded(5, 6, 8, "<f2"))
        dset(f, "lengths", np.array([6, 3, 0, 6, 2], dtype=np.int64))
        dset(f, "ids", np.array(["q0", "q1", "q2", "d\u00e9j\u00e0", "q4"], dtype=object),
             dtype=h5py.string_dtype())

    # 2-D float32 with int32 lengths and int64 ids.
    with h5py.File(path("h5_f32_2d.h5"), "w") as f:
        dset(f, "embeddings", flat(10, 4, "<f4"))
        dset(f, "lengths", np.array([3, 0, 7], dtype=np.int32))
        dset(f, "ids", np.array([100, -5, 7], dtype=np.int64))

    # The datasets in a group, beside another group.
    with h5py.File(path("h5_group.h5"), "w") as f:
        g = f.create_group("colbert")
        dset(g, "embeddings", padded(4, 5, 8, "<f4"))
        f.create_group("other")

    # Chunked and compressed, chunks smaller than a row so that spans cross chunks.
    with h5py.File(path("h5_chunked.h5"), "w") as f:
        dset(f, "embeddings", padded(6, 10, 16, "<f2"), chunks=(1, 3, 8), compression="gzip")
        g = f.create_group("flat")
        dset(g, "embeddings", flat(40, 12, "<f4"), chunks=(7, 5), compression="gzip",
             shuffle=True)

    # Chunked without filters: chunks of whole tokens are read with pread at the chunks'
    # addresses (the last chunk reaches past the end); chunks that cut a token, or chunks
    # never written (read as the fill value), go through HDF5.
    with h5py.File(path("h5_chunked_raw.h5"), "w") as f:
        dset(f, "embeddings", padded(7, 10, 16, "<f2"), chunks=(2, 10, 16))
        dset(f.create_group("flat"), "embeddings", flat(45, 12, "<f4"), chunks=(8, 12))
        dset(f.create_group("cut"), "embeddings", flat(40, 12, "<f4"), chunks=(8, 6))
        holes = f.create_group("holes").create_dataset("embeddings", shape=(32, 4), dtype="<f4",
                                                       chunks=(8, 4), track_times=False)
        holes[0:8] = flat(8, 4, "<f4")

    # String ids of every kind h5py writes, and unsigned integer ids.
    with h5py.File(path("h5_ids.h5"), "w") as f:
        def group(name, ids, **kw):
            g = f.create_group(name)
            dset(g, "embeddings", padded(len(ids), 2, 4, "<f4"))
            dset(g, "ids", ids, **kw)
        group("bytes", np.array([b"doc-1", b"d2", b"abcdefgh"], dtype="S8"))
        group("fixutf8", np.array(["\u00e9t\u00e9".encode(), b"x"],
                                  dtype=h5py.string_dtype("utf-8", 10)))
        group("vascii", np.array([b"a1", b"b22"], dtype=object), dtype=h5py.string_dtype("ascii"))
        group("u16", np.array([0, 65535], dtype=np.uint16))
        group("u64", np.array([2**63 + 5, 1], dtype=np.uint64))
        group("i8", np.array([-128, 127], dtype=np.int8))

    # Big-endian data: '>f4' flat, '>f2' padded.
    with h5py.File(path("h5_be.h5"), "w") as f:
        dset(f, "embeddings", flat(6, 5, ">f4"))
        g = f.create_group("f2")
        dset(g, "embeddings", padded(3, 4, 8, ">f2"))

    # A NaN at row 1, token 2, element 3.
    with h5py.File(path("h5_nan.h5"), "w") as f:
        data = padded(3, 4, 4, "<f4")
        data[1, 2, 3] = np.nan
        dset(f, "embeddings", data)

    # Inputs to refuse, one group each.
    with h5py.File(path("h5_bad.h5"), "w") as f:
        def group(name):
            return f.create_group(name)
        dset(group("f64"), "embeddings", padded(2, 3, 4, "<f8"))
        dset(group("i32"), "embeddings", np.zeros((2, 3, 4), dtype=np.int32))
        g = group("noemb")
        dset(g, "lengths", np.array([1], dtype=np.int64))
        dset(g, "ids", np.array([1], dtype=np.int64))
        dset(group("rank1"), "embeddings", np.zeros(5, dtype=np.float32))
        dset(group("rank4"), "embeddings", np.zeros((2, 3, 4, 5), dtype=np.float32))
        dset(group("scalar"), "embeddings", np.float32(1.0))
        g = group("len2d")
        dset(g, "embeddings", padded(2, 3, 4, "<f4"))
        dset(g, "lengths", np.ones((2, 1), dtype=np.int64))
        g = group("lenfloat")
        dset(g, "embeddings", padded(2, 3, 4, "<f4"))
        dset(g, "lengths", np.ones(2, dtype=np.float32))
        g = group("idsfloat")
        dset(g, "embeddings", padded(2, 3, 4, "<f4"))
        dset(g, "ids", np.array([1.5, 2.5]))
        g = group("ids2d")
        dset(g, "embeddings", padded(2, 3, 4, "<f4"))
        dset(g, "ids", np.ones((2, 2), dtype=np.int64))
        g = group("emptyid")
        dset(g, "embeddings", padded(2, 3, 4, "<f4"))
        dset(g, "ids", np.array(["a", ""], dtype=object), dtype=h5py.string_dtype())
        group("embgroup").create_group("embeddings")
        group("empty")
        # h5py's own LZF filter: libhdf5 alone cannot decode it.
        dset(group("lzf"), "embeddings", padded(2, 3, 4, "<f4"), chunks=(1, 3, 4),
             compression="lzf")

    # A copy cut short.
    with open(path("h5_f32_2d.h5"), "rb") as f:
        head = f.read(1000)
    with open(path("h5_trunc.h5"), "wb") as f:
        f.write(head)

    with open(path("h5_not.h5"), "w") as f:
        f.write("this is not an HDF5 file\n")
