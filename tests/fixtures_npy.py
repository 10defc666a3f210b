"""fixtures_npy.py - .npy and .npy.zst fixtures for tests/test_npy.c.

Written by numpy itself (np.save, np.lib.format.write_array) and compressed by
the zstd CLI, so the reader is tested on the bytes those tools produce. Every
file name starts with "npy_". Embedding values follow a formula that
test_npy.c recomputes, exact in float16 and float32:

    value(r, t, k) = ((r * 31 + t * 7 + k) % 17) / 8 - 1

(3-D files: row r, token t, element k; 2-D files: r = 0, t = the token).
"""
import os
import subprocess

import numpy as np

ROWS, LEN, DIM = 4, 5, 6
FLAT_LENGTHS = [3, 5, 0, 4]


def value_grid(rows, length, dim):
    r, t, k = np.meshgrid(np.arange(rows), np.arange(length), np.arange(dim), indexing="ij")
    return ((r * 31 + t * 7 + k) % 17) / 8.0 - 1.0


def save(outdir, name, arr, version=None, allow_pickle=False):
    path = os.path.join(outdir, name)
    with open(path, "wb") as f:
        if version is None:
            np.save(f, arr, allow_pickle=allow_pickle)
        else:
            np.lib.format.write_array(f, arr, version=version, allow_pickle=allow_pickle)
    return path


def write_bytes(outdir, name, data):
    with open(os.path.join(outdir, name), "wb") as f:
        f.write(data)


def zstd_bytes(data, level=3):
    return subprocess.run(["zstd", "-q", "-c", "-%d" % level], input=data, check=True,
                          stdout=subprocess.PIPE).stdout


def read(path):
    with open(path, "rb") as f:
        return f.read()


def generate(outdir):
    grid = value_grid(ROWS, LEN, DIM)
    flat = value_grid(1, sum(FLAT_LENGTHS), DIM)[0]

    # Good embeddings, every format version and both element types.
    f32 = save(outdir, "npy_f32_3d.npy", grid.astype("<f4"))
    f16 = save(outdir, "npy_f16_3d.npy", grid.astype("<f2"))
    save(outdir, "npy_f32_3d_v2.npy", grid.astype("<f4"), version=(2, 0))
    save(outdir, "npy_f32_3d_v3.npy", grid.astype("<f4"), version=(3, 0))
    save(outdir, "npy_f16_3d_v2.npy", grid.astype("<f2"), version=(2, 0))
    flat32 = save(outdir, "npy_f32_2d.npy", flat.astype("<f4"))
    save(outdir, "npy_f16_2d.npy", flat.astype("<f2"))
    save(outdir, "npy_lengths_i8.npy", np.array(FLAT_LENGTHS, dtype="<i8"))
    save(outdir, "npy_lengths_i4.npy", np.array(FLAT_LENGTHS, dtype="<i4"))
    save(outdir, "npy_empty_2d.npy", np.zeros((0, DIM), dtype="<f4"))

    # NaN and Inf at known places (row 2 token 1 element 3; row 3 token 0 element 0).
    bad = grid.astype("<f4")
    bad[2, 1, 3] = np.nan
    bad[3, 0, 0] = np.inf
    save(outdir, "npy_nan.npy", bad)

    # Integer arrays of every type read_ints accepts: [0, 1, 7, min or 2, max].
    for code in ["<i8", "<i4", "<i2", "|i1", "<u8", "<u4", "<u2", "|u1"]:
        info = np.iinfo(np.dtype(code))
        vals = [0, 1, 7, info.min if info.min < 0 else 2, info.max]
        if code == "<u8":
            vals[-1] = 2**63 - 1  # the largest uint64 that fits in int64
        name = "npy_ints_%s%s.npy" % (np.dtype(code).kind, np.dtype(code).itemsize)
        save(outdir, name, np.array(vals, dtype=code))
    save(outdir, "npy_ints_u8_huge.npy", np.array([1, 2**64 - 1], dtype="<u8"))
    save(outdir, "npy_ints_2d.npy", np.zeros((2, 3), dtype="<i8"))
    save(outdir, "npy_ints_f4.npy", np.zeros(3, dtype="<f4"))
    save(outdir, "npy_ints_be.npy", np.array([1, 2], dtype=">i4"))
    save(outdir, "npy_ints_empty.npy", np.zeros(0, dtype="<i8"))
    ints_trunc = read(os.path.join(outdir, "npy_ints_i8.npy"))
    write_bytes(outdir, "npy_ints_trunc.npy", ints_trunc[:-4])
    ints_i8 = read(os.path.join(outdir, "npy_ints_i8.npy"))
    write_bytes(outdir, "npy_ints_i8.npy.zst", zstd_bytes(ints_i8))
    write_bytes(outdir, "npy_ints_trunc.npy.zst", zstd_bytes(ints_trunc[:-4]))

    # zstd-compressed copies, including one of two concatenated frames.
    for src in [f32, f16, flat32]:
        write_bytes(outdir, os.path.basename(src) + ".zst", zstd_bytes(read(src)))
    raw = read(f32)
    write_bytes(outdir, "npy_f32_3d_multi.npy.zst",
                zstd_bytes(raw[:100], 1) + zstd_bytes(raw[100:], 19))
    # a clean stream whose data is short
    write_bytes(outdir, "npy_f32_3d_short.npy.zst", zstd_bytes(raw[:-40]))
    comp = zstd_bytes(raw)
    write_bytes(outdir, "npy_f32_3d_cut.npy.zst", comp[: len(comp) // 2])  # ends inside a frame
    corrupt = bytearray(comp)
    for i in range(len(corrupt) // 3, len(corrupt) // 3 + 16):
        corrupt[i] ^= 0x5A
    write_bytes(outdir, "npy_f32_3d_corrupt.npy.zst", bytes(corrupt))
    write_bytes(outdir, "npy_f32_3d_trailing.npy.zst", zstd_bytes(raw + b"\0" * 8))
    write_bytes(outdir, "npy_notzstd.npy.zst", raw)
    # Two frames, the second damaged: the header decodes from the first, so
    # the damage is only met when the data is read.
    second = bytearray(zstd_bytes(raw[200:]))
    write_bytes(outdir, "npy_late_cut.npy.zst",
                zstd_bytes(raw[:200]) + bytes(second[: len(second) // 2]))
    for i in range(len(second) // 2, len(second) // 2 + 8):
        second[i] ^= 0xA5
    write_bytes(outdir, "npy_late_corrupt.npy.zst", zstd_bytes(raw[:200]) + bytes(second))
    write_bytes(outdir, "npy_f64.npy.zst", zstd_bytes(read(save(outdir, "npy_f64.npy",
                                                                    grid.astype("<f8")))))

    # Inputs to refuse.
    save(outdir, "npy_fortran.npy", np.asfortranarray(flat.astype("<f4")))
    save(outdir, "npy_bigendian.npy", grid.astype(">f4"))
    save(outdir, "npy_i4_emb.npy", grid.astype("<i4"))
    save(outdir, "npy_c16.npy", grid.astype("<c16"))
    obj = np.empty((2, 3), dtype=object)
    obj[:] = 1.5
    save(outdir, "npy_object.npy", obj, allow_pickle=True)
    save(outdir, "npy_structured.npy", np.zeros((2, 3), dtype=[("a", "<f4"), ("b", "<i4")]))
    save(outdir, "npy_1d.npy", np.zeros(5, dtype="<f4"))
    save(outdir, "npy_4d.npy", np.zeros((2, 2, 2, 2), dtype="<f4"))
    write_bytes(outdir, "npy_truncated.npy", raw[:-8])
    write_bytes(outdir, "npy_trailing.npy", raw + b"\0" * 4)
    hdr = bytearray(raw[:200])
    hdr[8:10] = (5000).to_bytes(2, "little")
    write_bytes(outdir, "npy_hdrlen.npy", bytes(hdr))
    write_bytes(outdir, "npy_badmagic.npy", b"this is not an array\n")
    write_bytes(outdir, "npy_version.npy", b"\x93NUMPY\x04\x00" + raw[8:])
    write_bytes(outdir, "npy_tiny.npy", b"\x93NUM")
