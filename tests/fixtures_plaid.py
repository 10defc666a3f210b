#!/usr/bin/env python3
"""fixtures_plaid.py - PLAID index directories in the FastPlaid and NextPlaid layouts.

The indexes are written here from first principles, the way ColBERT /
fast-plaid write them (docs research/plaid.md 1.3-1.6), NOT as the inverse
of maxsim's decoder: codes are the argmax of the dot product with the
centroids, bucket cutoffs and weights are linear-interpolation quantiles of
the flattened residuals, and the residual buckets are expanded into bits
least significant first and packed with np.packbits (most significant bit
first). Next to each index the generator leaves what it knows, for the unit
tests: NAME.buckets.npy (uint8 [T, dim], the bucket of every dimension) and
NAME.decomp.npy (float64 [T, dim], the decompressed, normalized tokens,
computed from the stored, dtype-rounded centroids and weights).

write_index() is shared with scripts/bench-plaid (imported by path).
Every directory name starts with "plaid_". Deterministic: fixed seeds.
"""
import json
import os
import shutil

import numpy as np


def pack_buckets(buckets, nbits):
    """ColBERT's binarize: LSB-first bit expansion, then MSB-first packbits."""
    t, dim = buckets.shape
    bits = (buckets[:, :, None].astype(np.uint16) >> np.arange(nbits)) & 1
    return np.packbits(bits.reshape(t, dim * nbits).astype(np.uint8), axis=1, bitorder="big")


def save(path, arr, descr=None):
    """np.save; descr forces the header's type string ('|u1' vs '<u1')."""
    with open(path, "wb") as f:
        if descr is None:
            np.save(f, arr)
            return
        header = {"descr": descr, "fortran_order": False, "shape": arr.shape}
        np.lib.format.write_array_header_1_0(f, header)
        f.write(np.ascontiguousarray(arr).tobytes())


def write_index(outdir, docs, centroids, nbits, layout="fastplaid", cent_dtype=np.float16,
                weight_dtype=np.float32, code_dtype=np.int64, chunk_docs=None, merged=False,
                chunks=True, lengths_dtype=np.int32, ivf_dtype=np.int64, ivf_extra=0,
                assign_k=None, known=None, want_decomp=False):
    """Write one index; returns (codes, buckets, decomp) for the tests.

    docs: list of float32 [L, dim] arrays (L may be 0). centroids: [K, dim]
    unit rows. assign_k: assign codes with only the first assign_k centroids,
    and write ivf_lengths with assign_k entries (shorter than K). ivf_extra:
    write that many more (zero) entries after K (longer than K).
    """
    if os.path.exists(outdir):
        shutil.rmtree(outdir)
    os.makedirs(outdir)
    dim = centroids.shape[1]
    k_all = centroids.shape[0]
    c_store = centroids.astype(cent_dtype)
    cf = c_store.astype(np.float64)
    ka = assign_k or k_all
    doclens = [int(d.shape[0]) for d in docs]
    emb = np.concatenate([d for d in docs if d.shape[0]], axis=0).astype(np.float32)
    t = emb.shape[0]
    block = 1 << 17  # tokens at a time: large indexes (scripts/bench-plaid) stay in memory
    codes = np.zeros(t, np.int64)
    for a in range(0, t, block):
        codes[a:a + block] = np.argmax(emb[a:a + block].astype(np.float64) @ cf[:ka].T, axis=1)
    n = 1 << nbits
    # quantiles of the flattened residuals (of an evenly spaced sample of
    # tokens when there are many, as the engines use a held-out sample)
    pick = np.arange(0, t, max(1, t // block))
    flat = (emb[pick].astype(np.float64) - cf[codes[pick]]).reshape(-1)
    cutoffs = np.quantile(flat, [i / n for i in range(1, n)])
    weights = np.quantile(flat, [(i + 0.5) / n for i in range(n)])
    w_store = weights.astype(weight_dtype)
    buckets = np.zeros((t, dim), dtype=np.uint8)
    packed = np.zeros((t, dim * nbits // 8), dtype=np.uint8)
    decomp = np.zeros((t, dim)) if known is not None or want_decomp else None
    for a in range(0, t, block):
        resid = emb[a:a + block].astype(np.float64) - cf[codes[a:a + block]]
        b = np.zeros(resid.shape, dtype=np.uint8)
        for c in cutoffs:
            b += (resid > c).astype(np.uint8)
        buckets[a:a + block] = b
        packed[a:a + block] = pack_buckets(b, nbits)
        if decomp is not None:
            x = cf[codes[a:a + block]] + w_store.astype(np.float64)[b]
            decomp[a:a + block] = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    avg_residual = np.zeros(dim, np.float32)  # unused by search; not worth a pass

    nd = len(docs)
    chunk_docs = chunk_docs or max(nd, 1)
    bounds = list(range(0, nd, chunk_docs)) + [nd]
    offs = np.concatenate([[0], np.cumsum(doclens)]).astype(np.int64)
    res_descr = "|u1" if layout == "nextplaid" else "<u1"
    nchunks = len(bounds) - 1
    for i in range(nchunks):
        a, b = bounds[i], bounds[i + 1]
        ta, tb = int(offs[a]), int(offs[b])
        with open(os.path.join(outdir, "doclens.%d.json" % i), "w") as f:
            json.dump(doclens[a:b], f)
        if chunks:
            save(os.path.join(outdir, "%d.codes.npy" % i), codes[ta:tb].astype(code_dtype))
            save(os.path.join(outdir, "%d.residuals.npy" % i), packed[ta:tb], res_descr)
        with open(os.path.join(outdir, "%d.metadata.json" % i), "w") as f:
            json.dump({"num_documents": b - a, "num_embeddings": tb - ta,
                       "embedding_offset": ta, "passage_offset": a}, f)
    if merged:
        pad = max(doclens) - doclens[-1] if doclens else 0
        mc = np.concatenate([codes, np.zeros(pad, np.int64)]).astype(code_dtype)
        mr = np.concatenate([packed, np.zeros((pad, packed.shape[1]), np.uint8)])
        save(os.path.join(outdir, "merged_codes.npy"), mc)
        save(os.path.join(outdir, "merged_residuals.npy"), mr, res_descr)

    # IVF: sorted unique document ids per centroid, concatenated in centroid order
    doc_of_tok = np.repeat(np.arange(nd), doclens)
    lists = [np.unique(doc_of_tok[codes == c]) for c in range(ka)]
    lens = [len(l) for l in lists] + [0] * ivf_extra
    ivf = np.concatenate(lists + [np.zeros(0, np.int64)]).astype(ivf_dtype)
    save(os.path.join(outdir, "ivf.npy"), ivf)
    save(os.path.join(outdir, "ivf_lengths.npy"), np.array(lens, dtype=lengths_dtype))

    save(os.path.join(outdir, "centroids.npy"), c_store)
    save(os.path.join(outdir, "bucket_cutoffs.npy"), cutoffs.astype(weight_dtype))
    save(os.path.join(outdir, "bucket_weights.npy"), w_store)
    save(os.path.join(outdir, "avg_residual.npy"), avg_residual)
    meta = {"num_chunks": nchunks, "nbits": nbits, "num_partitions": k_all,
            "num_embeddings": t, "avg_doclen": t / max(nd, 1), "num_documents": nd}
    if layout == "nextplaid":
        meta["embedding_dim"] = dim
        meta["next_plaid_compatible"] = True
    else:
        meta["compress_only"] = False
    with open(os.path.join(outdir, "metadata.json"), "w") as f:
        json.dump(meta, f)
    with open(os.path.join(outdir, "plan.json"), "w") as f:
        json.dump({"nbits": nbits, "num_chunks": nchunks}, f)
    if known is not None:
        np.save(known + ".buckets.npy", buckets)
        np.save(known + ".decomp.npy", decomp)
        np.save(known + ".codes.npy", codes)
    return codes, buckets, decomp


def unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def random_docs(rng, nd, dim, lo, hi):
    return [unit(rng.standard_normal((int(rng.integers(lo, hi + 1)), dim))).astype(np.float32)
            for _ in range(nd)]


def clustered_corpus(rng, nd, dim, k, lo, hi, nq, qlen, spread=0.35):
    """Documents whose tokens lie around 2-4 of k topic centres; each query is
    a noisy copy of a few tokens of one document."""
    centres = unit(rng.standard_normal((k, dim)))
    docs = []
    for _ in range(nd):
        topics = rng.choice(k, size=int(rng.integers(2, 5)), replace=False)
        L = int(rng.integers(lo, hi + 1))
        base = centres[rng.choice(topics, size=L)]
        docs.append(unit(base + spread * rng.standard_normal((L, dim)) / np.sqrt(dim) * 4)
                    .astype(np.float32))
    queries = np.zeros((nq, qlen, dim), np.float32)
    for i in range(nq):
        d = docs[int(rng.integers(nd))]
        pick = d[rng.integers(0, d.shape[0], size=qlen)]
        queries[i] = unit(pick + 0.5 * spread * rng.standard_normal(pick.shape) / np.sqrt(dim) * 4)
    return docs, centres, queries


def exact_topk(queries, decomp, doclens, k):
    """Exhaustive exact MaxSim over the decompressed corpus, float64; ties by row."""
    offs = np.concatenate([[0], np.cumsum(doclens)])
    out = np.zeros((queries.shape[0], k), np.int64)
    for i, q in enumerate(queries.astype(np.float64)):
        sim = q @ decomp.T
        sc = np.array([sim[:, offs[d]:offs[d + 1]].max(axis=1).sum() if doclens[d] else 0.0
                       for d in range(len(doclens))])
        out[i] = np.lexsort((np.arange(len(sc)), -sc))[:k]
    return out


def generate(outdir):
    rng = np.random.default_rng(20260501)
    p = lambda name: os.path.join(outdir, name)
    dim = 32
    docs = random_docs(rng, 60, dim, 1, 12)
    docs[7] = np.zeros((0, dim), np.float32)  # an empty document
    cents = unit(rng.standard_normal((16, dim)))
    # every nbits, both layouts, both centroid and code dtypes, chunked and merged
    write_index(p("plaid_fp1"), docs, cents, 1, "fastplaid", np.float16, np.float32, np.int64,
                chunk_docs=25, known=p("plaid_fp1"))
    write_index(p("plaid_fp2"), docs, cents, 2, "fastplaid", np.float16, np.float32, np.int64,
                chunk_docs=25, known=p("plaid_fp2"))
    write_index(p("plaid_fp4"), docs, cents, 4, "fastplaid", np.float16, np.float16, np.int32,
                chunk_docs=17, known=p("plaid_fp4"), lengths_dtype=np.int64)
    write_index(p("plaid_np8"), docs, cents, 8, "nextplaid", np.float32, np.float32, np.int64,
                merged=True, chunks=False, known=p("plaid_np8"))
    write_index(p("plaid_np2"), docs, cents, 2, "nextplaid", np.float32, np.float32, np.int64,
                chunk_docs=30, merged=True, known=p("plaid_np2"), ivf_dtype=np.int32)
    # ivf_lengths shorter (4 unused centroids at the end) and longer than K
    extra = unit(rng.standard_normal((4, dim)))
    write_index(p("plaid_short"), docs, np.concatenate([cents, extra]), 4, "nextplaid",
                np.float32, known=p("plaid_short"), assign_k=16)
    write_index(p("plaid_long"), docs, cents, 4, "fastplaid", ivf_extra=3, known=p("plaid_long"))
    np.save(p("plaid_q.npy"), unit(rng.standard_normal((5, 8, dim))).astype(np.float32))
    # float16 queries longer than a work-group (32 tokens)
    np.save(p("plaid_q_long.npy"), unit(rng.standard_normal((3, 45, dim))).astype(np.float16))
    with open(p("plaid_doc_ids.txt"), "w") as f:
        f.write("".join("doc%d\n" % i for i in range(60)))

    # bad indexes: copies of plaid_fp2 with one defect each
    def bad(name, fn):
        d = p("plaid_bad_" + name)
        if os.path.exists(d):
            shutil.rmtree(d)
        shutil.copytree(p("plaid_fp2"), d)
        fn(d)
    bad("missing", lambda d: os.remove(os.path.join(d, "centroids.npy")))
    bad("width", lambda d: save(os.path.join(d, "0.residuals.npy"),
                                np.zeros((int(np.load(os.path.join(d, "0.codes.npy")).shape[0]),
                                          7), np.uint8), "<u1"))

    def oob(d):
        c = np.load(os.path.join(d, "1.codes.npy"))
        c[3] = 16
        save(os.path.join(d, "1.codes.npy"), c)
    bad("codes", oob)

    def neg(d):
        c = np.load(os.path.join(d, "0.codes.npy"))
        c[5] = -1
        save(os.path.join(d, "0.codes.npy"), c)
    bad("negcode", neg)

    def ivf_oob(d):
        v = np.load(os.path.join(d, "ivf.npy"))
        v[2] = 60
        save(os.path.join(d, "ivf.npy"), v)
    bad("ivf", ivf_oob)

    def lens(d):
        with open(os.path.join(d, "doclens.0.json")) as f:
            v = json.load(f)
        v[0] += 1
        with open(os.path.join(d, "doclens.0.json"), "w") as f:
            json.dump(v, f)
    bad("doclens", lens)

    def nbits3(d):
        with open(os.path.join(d, "metadata.json")) as f:
            m = json.load(f)
        m["nbits"] = 3
        with open(os.path.join(d, "metadata.json"), "w") as f:
            json.dump(m, f)
    bad("nbits", nbits3)
    bad("dtype", lambda d: save(os.path.join(d, "0.codes.npy"),
                                np.load(os.path.join(d, "0.codes.npy")).astype(np.float32)))

    # the clustered corpus for the recall test: 2000 docs around 64 centres
    rng = np.random.default_rng(7)
    docs, centres, queries = clustered_corpus(rng, 2000, 64, 64, 8, 40, 40, 16)
    _, _, decomp = write_index(p("plaid_corpus"), docs, centres, 4, "fastplaid", np.float16,
                               np.float32, np.int64, chunk_docs=700, want_decomp=True)
    np.save(p("plaid_corpus_q.npy"), queries)
    # the same queries zero-padded to 24 rows (as an encoder's batch pads
    # them), and their true lengths; and queries with zero rows inside and a
    # query of zeros only, whose centroid scores all tie
    pad = np.zeros((queries.shape[0], 24, queries.shape[2]), queries.dtype)
    pad[:, :queries.shape[1]] = queries
    np.save(p("plaid_corpus_q_pad.npy"), pad)
    np.save(p("plaid_corpus_q_pad_len.npy"), np.full(queries.shape[0], 24, np.int64))
    ties = pad[:6].copy()
    ties[1, 3:6] = 0.0
    ties[2] = 0.0
    ties[3, 0] = ties[3, 1]
    np.save(p("plaid_corpus_q_ties.npy"), ties)
    np.save(p("plaid_corpus_gt.npy"),
            exact_topk(queries, decomp, [d.shape[0] for d in docs], 10))
