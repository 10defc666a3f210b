# maxsim index: PLAID indexes built from a clustered corpus
# (tests/fixtures_index.py), checked from first principles by indexcheck.py
# (codes, residual buckets and bits, IVF, metadata against the stored
# centroids and cutoffs), searched by `maxsim plaid`; and every error path.

# An index at nbits 8 finds the exact top 10 of the raw corpus.
$ maxsim index -d $FIXTURES/index_docs.npy --doc-lengths $FIXTURES/index_lens.npy -o ix --nbits 8 --centroids 64
$ maxsim plaid -q $FIXTURES/index_q.npy -i ix > run.trec && $PYTHON $TESTS/plaidcheck.py recall $FIXTURES/index_gt.npy run.trec 0.95
> ok

# Every nbits and both layouts: codes, buckets, bits, IVF and metadata as
# the stored centroids and cutoffs say; centroids unit and better than random.
$ for nb in 1 2 4 8; do maxsim index -d $FIXTURES/index_docs.npy --doc-lengths $FIXTURES/index_lens.npy -o i$nb --nbits $nb --centroids 32 --docs-per-chunk 150 || exit 1; $PYTHON $TESTS/indexcheck.py consistent i$nb $FIXTURES/index_docs.npy $FIXTURES/index_lens.npy; done; $PYTHON $TESTS/indexcheck.py kmeans i4 $FIXTURES/index_docs.npy $FIXTURES/index_lens.npy
> ok
> ok
> ok
> ok
> ok

$ maxsim index -d $FIXTURES/index_docs.npy --doc-lengths $FIXTURES/index_lens.npy -o np --layout next-plaid --nbits 2 --centroids 48 && $PYTHON $TESTS/indexcheck.py consistent np $FIXTURES/index_docs.npy $FIXTURES/index_lens.npy && maxsim info np | tail -1 | awk '{print $2, $3, $4, $5, $6}'
> ok
> next-plaid 400 4884 32 2

# Layout and dtypes of the fast-plaid default (nbits 4, float16 centroids,
# int64 codes, int32 IVF lengths); 400 documents in chunks of 150.
$ maxsim index -d $FIXTURES/index_docs.npy --doc-lengths $FIXTURES/index_lens.npy -o fp --centroids 32 --docs-per-chunk 150 && ls fp | tr '\n' ' ' && $PYTHON -c "import numpy as np, json; print(np.load('fp/centroids.npy').dtype, np.load('fp/0.codes.npy').dtype, np.load('fp/ivf_lengths.npy').dtype, np.load('fp/0.residuals.npy').shape[1], json.load(open('fp/metadata.json'))['num_chunks'])"
> 0.codes.npy 0.metadata.json 0.residuals.npy 1.codes.npy 1.metadata.json 1.residuals.npy 2.codes.npy 2.metadata.json 2.residuals.npy avg_residual.npy bucket_cutoffs.npy bucket_weights.npy centroids.npy cluster_threshold.npy doclens.0.json doclens.1.json doclens.2.json ivf.npy ivf_lengths.npy metadata.json plan.json float16 int64 int32 16 3

# Deterministic: the same bytes whatever the read blocks, from .npy.zst
# too; rebuilding over an existing index replaces it; another seed differs.
$ maxsim index -d $FIXTURES/index_docs.npy --doc-lengths $FIXTURES/index_lens.npy -o a --centroids 40 && maxsim index -d $FIXTURES/index_docs.npy --doc-lengths $FIXTURES/index_lens.npy -o b --centroids 40 --chunk-docs 7 --chunk-tokens 50 && diff -r a b && echo same
> same

$ zstd -q -c $FIXTURES/index_docs.npy > d.npy.zst && maxsim index -d d.npy.zst --doc-lengths $FIXTURES/index_lens.npy -o a --centroids 40 --chunk-docs 33 && maxsim index -d $FIXTURES/index_docs.npy --doc-lengths $FIXTURES/index_lens.npy -o b --centroids 40 && diff -r a b && ls | grep tmp | wc -l
@ needs zstd
> 0

# The held-out documents (the codec's cutoffs and weights) are drawn apart
# from the k-means sample, as fast-plaid's create() draws its own: with a
# sample of 150 of the 400 documents some are outside it, and a stream (one
# read of both sets of rows) gives the bytes of a file (two reads).
$ zstd -q -c $FIXTURES/index_docs.npy > d.npy.zst && maxsim index -d d.npy.zst --doc-lengths $FIXTURES/index_lens.npy -o a --centroids 40 --sample 150 && maxsim index -d $FIXTURES/index_docs.npy --doc-lengths $FIXTURES/index_lens.npy -o b --centroids 40 --sample 150 --chunk-docs 9 && diff -r a b && echo same
@ needs zstd
> same

$ maxsim index -d $FIXTURES/index_docs.npy --doc-lengths $FIXTURES/index_lens.npy -o a --centroids 40 --seed 7 && cmp -s a/centroids.npy b/centroids.npy || echo differs
> differs

# HDF5 input: every sample query finds the document it was built from.
$ maxsim index -d $DATA/sample.h5:/docs -o s --centroids 32 && maxsim plaid -q $DATA/sample.h5:/queries -i s -k 1 --format tsv | cut -f1,2
> q1	42
> q2	137
> q3	256
> q4	499

# The float16 assignment with its exact re-check (the default on NVIDIA,
# forced here by MAXSIM_INDEX_APPROX=1) gives the same index byte for byte:
# data/sample.h5's reference fingerprint (scripts/bench-index) both ways;
# -v says how many points the float16 pass could not settle.
$ for a in 0 1; do MAXSIM_INDEX_APPROX=$a maxsim index -d $DATA/sample.h5:/docs -o fp$a --nbits 2 --centroids 64 && (cd fp$a && cat $(LC_ALL=C ls) | sha256sum | cut -c1-16) || exit 1; done
> adc1b0da74ba8fdd
> adc1b0da74ba8fdd

$ MAXSIM_INDEX_APPROX=1 maxsim -v index -d $DATA/sample.h5:/docs -o fpv --nbits 2 --centroids 64 2>&1 | awk '/^index: assignment/ { print $3, $4, ($7 > 0 && $7 < $9) ? "some of" : $7 " of", $9 }'
> float16 (portable), some of 12584

# --append: the new documents get the next positions, coded with the
# index's centroids and cutoffs; the old chunks are kept as they were.
$ maxsim index -d $FIXTURES/index_a.npy --doc-lengths $FIXTURES/index_a_lens.npy -o ap --nbits 8 --centroids 64 --docs-per-chunk 120 && cp ap/1.codes.npy old1 && maxsim index --append -d $FIXTURES/index_b.npy --doc-lengths $FIXTURES/index_b_lens.npy -o ap --docs-per-chunk 120 && cmp old1 ap/1.codes.npy && $PYTHON $TESTS/indexcheck.py consistent ap $FIXTURES/index_b.npy $FIXTURES/index_b_lens.npy 300 && $PYTHON $TESTS/indexcheck.py consistent ap $FIXTURES/index_docs.npy $FIXTURES/index_lens.npy && maxsim info ap | tail -1 | awk '{print $3, $4}'
> ok
> ok
> 400 4884

$ maxsim plaid -q $FIXTURES/index_q.npy -i ap > run.trec && $PYTHON $TESTS/plaidcheck.py recall $FIXTURES/index_gt.npy run.trec 0.9
> ok

# Bad input: exit 2, one line, no index and no temporary directory left.
$ mkdir t && cd t && maxsim index -d $FIXTURES/index_empty.npy -o e 2>&1; echo $?; ls
> maxsim: error: $FIXTURES/index_empty.npy: empty corpus (3 documents, 0 tokens); expected at least one token to index
> 2

$ maxsim index -d $FIXTURES/index_docs.npy --doc-lengths $FIXTURES/index_lens.npy -o e --centroids 5000
? 2
! maxsim: error: $FIXTURES/index_docs.npy: 4884 tokens, fewer than the 5000 centroids asked for (--centroids)

$ maxsim index -d $FIXTURES/index_docs.npy --doc-lengths $FIXTURES/index_lens.npy -o e --centroids 100 --sample 3
? 2
~ ^maxsim: error: .*index_docs.npy: the sample of 3 documents has [0-9]+ tokens, fewer than the 100 centroids asked for; sample more documents \(--sample\)$

$ maxsim index -d $FIXTURES/index_dim12.npy -o e
? 2
! maxsim: error: $FIXTURES/index_dim12.npy: dimension 12 is not a multiple of 8; expected 8 dimensions a byte for the residual codec

$ maxsim index -d $FIXTURES/index_a.npy --doc-lengths $FIXTURES/index_a_lens.npy -o ap --centroids 16 && maxsim index --append -d $FIXTURES/index_dim40.npy --doc-lengths $FIXTURES/index_dim40_lens.npy -o ap
? 2
! maxsim: error: $FIXTURES/index_dim40.npy: dimension 40 does not match the index 'ap' (dimension 32)

$ mkdir notidx && touch notidx/keep && maxsim index -d $FIXTURES/index_docs.npy --doc-lengths $FIXTURES/index_lens.npy -o notidx
? 2
! maxsim: error: 'notidx' is a directory that is neither empty nor an index (no metadata.json); expected a new directory, an empty one or an index

$ touch afile && maxsim index -d $FIXTURES/index_docs.npy --doc-lengths $FIXTURES/index_lens.npy -o afile
? 2
! maxsim: error: 'afile' exists and is not a directory; expected a new directory, an empty one or an index to replace

$ mkdir -p emptydir && maxsim index --append -d $FIXTURES/index_b.npy --doc-lengths $FIXTURES/index_b_lens.npy -o emptydir
? 2
~ ^maxsim: error: .*emptydir.*metadata.json

$ maxsim index -d $FIXTURES/index_docs.npy -o x --nbits 3
? 2
~ --nbits takes 1, 2, 4 or 8, got '3'

$ maxsim index -d $FIXTURES/index_docs.npy -o x --layout colbert
? 2
~ --layout takes fast-plaid or next-plaid, got 'colbert'

$ maxsim index -o x
? 2
~ no documents \(-d DOCS\)

$ maxsim index -d $FIXTURES/index_docs.npy
? 2
~ no index directory \(-o INDEX_DIR\)

$ maxsim index --append -d $FIXTURES/index_b.npy --doc-lengths $FIXTURES/index_b_lens.npy -o ap --nbits 2
? 2
~ ^maxsim index: '--nbits' does not go with --append: the index keeps its own centroids, nbits and layout$

$ maxsim index -d $FIXTURES/index_docs.npy --doc-lengths $FIXTURES/index_lens.npy -o nodir/sub/ix
? 2
! maxsim: error: cannot create the index directory 'nodir/sub/ix': its parent 'nodir/sub/' is not a directory
