#!/usr/bin/env python3
"""indexcheck.py - check an index `maxsim index` wrote, from first principles.

  indexcheck.py consistent INDEX DOCS.npy LENGTHS.npy [FIRST_DOC]
      Every code is the centroid of largest dot product (float64, against
      the stored centroids; near-ties allowed), every residual bucket is the
      number of stored cutoffs below the float32 residual (values within
      1e-6 of a cutoff may go either way), bits packed as ColBERT does; the
      IVF lists the documents of each centroid, ascending; doclens, chunk
      metadata and metadata.json agree. DOCS/LENGTHS are the documents of
      the index from FIRST_DOC on (default 0: all of them).
  indexcheck.py kmeans INDEX DOCS.npy LENGTHS.npy
      The centroids are unit vectors and better than random ones: the mean
      best dot product of the corpus tokens with them beats that with as
      many random corpus tokens.
Prints "ok" or the first failure (exit 1).
"""
import glob
import json
import os
import sys

import numpy as np


def load_index(d):
    meta = json.load(open(os.path.join(d, "metadata.json")))
    cents = np.load(os.path.join(d, "centroids.npy")).astype(np.float64)
    cut = np.load(os.path.join(d, "bucket_cutoffs.npy")).astype(np.float32)
    n = meta["num_chunks"]
    doclens, codes, res = [], [], []
    for i in range(n):
        doclens += json.load(open(os.path.join(d, "doclens.%d.json" % i)))
        codes.append(np.load(os.path.join(d, "%d.codes.npy" % i)))
        res.append(np.load(os.path.join(d, "%d.residuals.npy" % i)))
        m = json.load(open(os.path.join(d, "%d.metadata.json" % i)))
        if m["num_embeddings"] != codes[-1].shape[0] or m["num_documents"] != len(
                json.load(open(os.path.join(d, "doclens.%d.json" % i)))):
            fail("chunk %d metadata disagrees with its files" % i)
    return meta, cents, cut, np.array(doclens, np.int64), np.concatenate(codes), np.concatenate(res)


def fail(msg):
    print(msg)
    sys.exit(1)


def consistent(d, docs_path, lens_path, first_doc=0):
    meta, cents, cut, doclens, codes, res = load_index(d)
    x = np.load(docs_path).astype(np.float32)
    lens = np.load(lens_path).astype(np.int64)
    if meta["num_documents"] != len(doclens) or meta["num_embeddings"] != codes.shape[0]:
        fail("metadata.json counts disagree with the chunks")
    if doclens.sum() != codes.shape[0] or res.shape[0] != codes.shape[0]:
        fail("doclens, codes and residuals disagree")
    if not np.array_equal(doclens[first_doc:first_doc + len(lens)], lens):
        fail("doclens differ from the input lengths")
    t0 = int(doclens[:first_doc].sum())
    c = codes[t0:t0 + x.shape[0]]
    sims = x.astype(np.float64) @ cents.T
    best = sims.max(axis=1)
    got = sims[np.arange(len(c)), c]
    if np.any(got < best - 1e-5):
        fail("a code is not the centroid of largest dot product: %s" % np.argmax(best - got))
    nbits = meta["nbits"]
    r = x - cents.astype(np.float32)[c]
    buckets = (r[:, :, None] > cut[None, None, :]).sum(axis=2)
    near = (np.abs(r[:, :, None] - cut[None, None, :]) < 1e-6).any(axis=2)
    bits = (buckets[:, :, None] >> np.arange(nbits)) & 1
    packed = np.packbits(bits.reshape(len(c), -1).astype(np.uint8), axis=1, bitorder="big")
    stored = res[t0:t0 + x.shape[0]]
    if stored.shape != packed.shape:
        fail("residual rows are %s, expected %s" % (stored.shape, packed.shape))
    diff = np.unpackbits(stored, axis=1) != np.unpackbits(packed, axis=1)
    if diff.any():
        dims = diff.reshape(len(c), -1, nbits).any(axis=2)
        if (dims & ~near).any():
            fail("residual buckets differ from the stored cutoffs' buckets")
    # IVF over the whole index
    ivf = np.load(os.path.join(d, "ivf.npy"))
    il = np.load(os.path.join(d, "ivf_lengths.npy"))
    if il.dtype != np.int32 or ivf.dtype != np.int64 or il.shape[0] != cents.shape[0]:
        fail("ivf dtypes or shape")
    doc_of = np.repeat(np.arange(len(doclens)), doclens)
    off = np.concatenate([[0], np.cumsum(il)])
    for k in range(cents.shape[0]):
        want = np.unique(doc_of[codes == k])
        if not np.array_equal(ivf[off[k]:off[k + 1]], want):
            fail("ivf list of centroid %d differs" % k)
    print("ok")


def kmeans(d, docs_path, lens_path):
    cents = np.load(os.path.join(d, "centroids.npy")).astype(np.float64)
    x = np.load(docs_path).astype(np.float64)
    if np.abs(np.linalg.norm(cents, axis=1) - 1).max() > 2e-3:
        fail("centroids are not unit vectors")
    rng = np.random.default_rng(0)
    rand = x[rng.choice(x.shape[0], cents.shape[0], replace=False)]
    rand /= np.linalg.norm(rand, axis=1, keepdims=True)
    ours, base = (x @ cents.T).max(axis=1).mean(), (x @ rand.T).max(axis=1).mean()
    if ours <= base:
        fail("k-means centroids (%.4f) no better than random tokens (%.4f)" % (ours, base))
    print("ok")


if __name__ == "__main__":
    if sys.argv[1] == "consistent":
        consistent(sys.argv[2], sys.argv[3], sys.argv[4],
                   int(sys.argv[5]) if len(sys.argv) > 5 else 0)
    elif sys.argv[1] == "kmeans":
        kmeans(sys.argv[2], sys.argv[3], sys.argv[4])
