# maxsim search: results against a float64 numpy reference, determinism,
# output formats, and every error path.

# The sample data: each query's best document is the one it was built from.
$ maxsim search -q $DATA/sample.h5:/queries -d $DATA/sample.h5:/docs -k 1 | cut -d' ' -f1-4,6
> q1 Q0 doc-0042 1 maxsim
> q2 Q0 doc-0137 1 maxsim
> q3 Q0 doc-0256 1 maxsim
> q4 Q0 doc-0499 1 maxsim

$ maxsim search -q $DATA/queries.npy -d $DATA/docs.npy --doc-lengths $DATA/docs_lengths.npy --doc-ids $DATA/docs_ids.txt --query-ids $DATA/queries_ids.txt -k 1 --format tsv | cut -f1-3
> q1	doc-0042	1
> q2	doc-0137	1
> q3	doc-0256	1
> q4	doc-0499	1

# Against the reference, float32 queries x float16 documents, with empty documents.
$ maxsim search -q $FIXTURES/cli_q.npy --query-lengths $FIXTURES/cli_q_lengths.npy -d $FIXTURES/cli_d.npy --doc-lengths $FIXTURES/cli_d_lengths.npy -k 25 > run.trec
$ $PYTHON $TESTS/refcheck.py run $FIXTURES/cli_q.npy $FIXTURES/cli_d.npy 25 run.trec --query-lengths $FIXTURES/cli_q_lengths.npy --doc-lengths $FIXTURES/cli_d_lengths.npy
> ok

$ maxsim search --normalize -q $FIXTURES/cli_q.npy --query-lengths $FIXTURES/cli_q_lengths.npy -d $FIXTURES/cli_d.npy --doc-lengths $FIXTURES/cli_d_lengths.npy -k 300 --format tsv > run.tsv
$ $PYTHON $TESTS/refcheck.py run $FIXTURES/cli_q.npy $FIXTURES/cli_d.npy 300 run.tsv --normalize --query-lengths $FIXTURES/cli_q_lengths.npy --doc-lengths $FIXTURES/cli_d_lengths.npy
> ok

# The padded HDF5 copy gives the same bytes (ids from the file).
$ maxsim search -q $FIXTURES/cli_d.h5:/queries -d $FIXTURES/cli_d.h5:/docs -k 7 > a.trec
$ maxsim search -q $FIXTURES/cli_q.npy --query-lengths $FIXTURES/cli_q_lengths.npy -d $FIXTURES/cli_d.npy --doc-lengths $FIXTURES/cli_d_lengths.npy --doc-ids $FIXTURES/cli_d_ids.txt -k 7 > b.trec
$ cmp a.trec b.trec && wc -l < a.trec
> 35

# Same bytes whatever the block size or query batch.
$ for c in 1 7 64 299 300 5000; do maxsim search -q $FIXTURES/cli_q.npy --query-lengths $FIXTURES/cli_q_lengths.npy -d $FIXTURES/cli_d.npy --doc-lengths $FIXTURES/cli_d_lengths.npy -k 9 --chunk-docs $c > c$c.trec || exit 1; done
$ maxsim search -q $FIXTURES/cli_q.npy --query-lengths $FIXTURES/cli_q_lengths.npy -d $FIXTURES/cli_d.npy --doc-lengths $FIXTURES/cli_d_lengths.npy -k 9 --query-batch 2 --chunk-docs 13 > qb.trec
$ for c in 7 64 299 300 5000 qb; do cmp c1.trec c$c.trec 2>/dev/null || cmp c1.trec $c.trec || exit 1; done; echo same
> same

# Same bytes whatever the number of reader threads (MAXSIM_READ_THREADS), from .npy and HDF5.
$ for t in 1 2 5 16; do MAXSIM_READ_THREADS=$t maxsim search -q $FIXTURES/cli_q.npy --query-lengths $FIXTURES/cli_q_lengths.npy -d $FIXTURES/cli_d.npy --doc-lengths $FIXTURES/cli_d_lengths.npy -k 9 --chunk-docs 7 > t$t.trec || exit 1; cmp c1.trec t$t.trec || exit 1; done; echo same
> same

$ for t in 1 3; do MAXSIM_READ_THREADS=$t maxsim search -q $FIXTURES/cli_d.h5:/queries -d $FIXTURES/cli_d.h5:/docs -k 7 > h$t.trec || exit 1; cmp a.trec h$t.trec || exit 1; done; echo same
> same

$ MAXSIM_READ_THREADS=0 maxsim search -q $FIXTURES/cli_q.npy -d $FIXTURES/cli_q.npy
? 2
! maxsim search: MAXSIM_READ_THREADS takes 1 to 256, got '0'
! Try 'maxsim search --help'.

# -v: read and host-to-device rates, kernel time and what bounds the run.
$ maxsim -v search -q $FIXTURES/cli_q.npy --query-lengths $FIXTURES/cli_q_lengths.npy -d $FIXTURES/cli_d.npy --doc-lengths $FIXTURES/cli_d_lengths.npy -k 9 -o v.trec 2>&1 | grep -c -E '^maxsim: search: read [0-9.]+ GB in [0-9.]+ s \([0-9.]+ GB/s\), host-to-device [0-9.]+ GB in [0-9.]+ s \([0-9.]+ GB/s\), kernels [0-9.]+ s, total [0-9.]+ s: bound by (read|host-to-device|kernels|host)'
> 1

# Device top-k (MAXSIM_DEVICE_TOPK=1, the default on GPUs: only k scores a query and block come
# back) gives the bytes of the host's heaps over every score: fixtures, k, block sizes, batches.
$ for f in cli_d cli_dup; do for k in 1 3 9 300 1024; do for c in 1 7 300 5000; do for v in 0 1; do MAXSIM_DEVICE_TOPK=$v maxsim search -q $FIXTURES/cli_q.npy --query-lengths $FIXTURES/cli_q_lengths.npy -d $FIXTURES/$f.npy --doc-lengths $FIXTURES/${f}_lengths.npy -k $k --chunk-docs $c --format tsv > d$v.tsv || exit 1; done; cmp d0.tsv d1.tsv || exit 1; done; done; done; echo same
> same

$ for v in 0 1; do MAXSIM_DEVICE_TOPK=$v maxsim search --normalize -q $FIXTURES/cli_q.npy --query-lengths $FIXTURES/cli_q_lengths.npy -d $FIXTURES/cli_d.npy --doc-lengths $FIXTURES/cli_d_lengths.npy -k 25 --query-batch 2 --chunk-docs 13 > n$v.trec || exit 1; done; cmp n0.trec n1.trec && MAXSIM_DEVICE_TOPK=1 maxsim search -q $DATA/sample.h5:/queries -d $DATA/sample.h5:/docs -k 50 --chunk-docs 77 | cmp - <(MAXSIM_DEVICE_TOPK=0 maxsim search -q $DATA/sample.h5:/queries -d $DATA/sample.h5:/docs -k 50 --chunk-docs 77) && echo same
> same

# Heavy ties: 3000 documents of 0-3 tokens of values in {-1, 0, 1} (many equal scores, empty
# documents scoring 0), k up to 1024 on the device and above it on the host.
$ $PYTHON -c 'import numpy as np; r = np.random.default_rng(5); np.save("tq.npy", r.integers(-1, 2, (12, 4)).astype(np.float16)); np.save("tql.npy", np.array([3, 0, 4, 2, 3], np.int64)); n = r.integers(0, 4, 3000); np.save("tdl.npy", n.astype(np.int64)); np.save("td.npy", r.integers(-1, 2, (int(n.sum()), 4)).astype(np.float32))'
$ for k in 1 7 100 1000 1024 1025 3000; do for c in 500 3000; do for v in 0 1; do MAXSIM_DEVICE_TOPK=$v maxsim search -q tq.npy --query-lengths tql.npy -d td.npy --doc-lengths tdl.npy -k $k --chunk-docs $c > t$v.trec || exit 1; done; cmp t0.trec t1.trec || exit 1; done; done; wc -l < t1.trec
> 15000

# -v says where the top k were selected, and why not on the device (by default not on a CPU
# device such as PoCL's, where reading back is a copy within memory).
$ MAXSIM_DEVICE_TOPK=1 maxsim -v search -q tq.npy --query-lengths tql.npy -d td.npy --doc-lengths tdl.npy -k 10 --chunk-docs 1000 2>&1 >/dev/null | grep 'top-k'
> maxsim: search: top-k on the device: 3 of 3 blocks, 10 scores a query and block read back

$ maxsim -v --device cpu search -q tq.npy --query-lengths tql.npy -d td.npy --doc-lengths tdl.npy -k 10 2>&1 >/dev/null | grep 'top-k'
@ needs cpu
> maxsim: search: top-k on the host: every score read back (a CPU device; MAXSIM_DEVICE_TOPK=1 selects on it)

$ MAXSIM_DEVICE_TOPK=0 maxsim -v search -q tq.npy --query-lengths tql.npy -d td.npy --doc-lengths tdl.npy -k 10 2>&1 >/dev/null | grep 'top-k'
> maxsim: search: top-k on the host: every score read back (MAXSIM_DEVICE_TOPK=0)

$ MAXSIM_DEVICE_TOPK=1 maxsim -v search -q tq.npy --query-lengths tql.npy -d td.npy --doc-lengths tdl.npy -k 1025 2>&1 >/dev/null | grep 'top-k'
> maxsim: search: top-k on the host: every score read back (k above 1024)

$ MAXSIM_DEVICE_TOPK=yes maxsim search -q tq.npy --query-lengths tql.npy -d td.npy --doc-lengths tdl.npy
? 2
! maxsim search: MAXSIM_DEVICE_TOPK takes 0 or 1, got 'yes'
! Try 'maxsim search --help'.

# Ties (documents repeated three times) are broken by row number.
$ maxsim search -q $FIXTURES/cli_q.npy --query-lengths $FIXTURES/cli_q_lengths.npy -d $FIXTURES/cli_dup.npy --doc-lengths $FIXTURES/cli_dup_lengths.npy -k 3 --format tsv > dup.tsv
$ awk -F'\t' 'NR==1{a=$2} NR==2{b=$2} NR==3{c=$2} END{print (a<5 && b==a+5 && c==a+10) ? "tied rows in order" : "wrong: " a " " b " " c}' dup.tsv
> tied rows in order

# k larger than the corpus returns every document.
$ maxsim search -q $FIXTURES/cli_q.npy -d $FIXTURES/cli_d.npy --doc-lengths $FIXTURES/cli_d_lengths.npy -k 100000 | wc -l
> 1500

# An empty corpus gives an empty run, and says so; empty documents score 0.
$ maxsim search -q $FIXTURES/cli_q.npy -d $FIXTURES/cli_empty_corpus.npy --doc-lengths $FIXTURES/cli_empty_corpus_lengths.npy | wc -c
> 0
! maxsim: warning: '$FIXTURES/cli_empty_corpus.npy' has no documents: the output is empty

$ maxsim -q search -q $FIXTURES/cli_q.npy -d $FIXTURES/cli_empty_corpus.npy --doc-lengths $FIXTURES/cli_empty_corpus_lengths.npy | wc -c
> 0

# A 2-D corpus without lengths is one document of all its tokens: a warning,
# since a forgotten --doc-lengths would otherwise pass for a result.
$ maxsim search -q $DATA/queries.npy -d $DATA/docs.npy -k 1 --format tsv | head -1
@ needs cpu
> 0	0	1	20.1906166
! maxsim: warning: '$DATA/docs.npy' is a 2-D [tokens, dim] array without lengths (--doc-lengths): it is read as one document of all 2492 tokens

$ maxsim search -q $FIXTURES/cli_q.npy -d $FIXTURES/cli_empty_corpus.npy --doc-lengths $FIXTURES/cli_empty_rows_lengths.npy -k 2 --format tsv | head -2
> 0	0	1	0
> 0	1	2	0

# Output formats.
$ maxsim search -q $FIXTURES/cli_q.npy -d $FIXTURES/cli_d.npy --doc-lengths $FIXTURES/cli_d_lengths.npy -k 4 --run-tag exp1 -o out.trec && tail -1 out.trec | cut -d' ' -f1,2,4,6
> 4 Q0 4 exp1

$ maxsim search -q $FIXTURES/cli_q.npy -d $FIXTURES/cli_d.npy --doc-lengths $FIXTURES/cli_d_lengths.npy -k 4 -o out.tsv.zst && zstd -dc out.tsv.zst | awk -F'\t' 'NR==1{print NF}'
@ needs zstd
> 4

$ maxsim search -q $FIXTURES/cli_q.npy -d $FIXTURES/cli_d.npy --doc-lengths $FIXTURES/cli_d_lengths.npy -k 4 -o out.trec.zst && maxsim search -q $FIXTURES/cli_q.npy -d $FIXTURES/cli_d.npy --doc-lengths $FIXTURES/cli_d_lengths.npy -k 4 -o plain.trec && zstd -dc out.trec.zst | cmp - plain.trec && echo same
@ needs zstd
> same

$ maxsim search -q $FIXTURES/cli_q.npy -d $FIXTURES/cli_d.npy --doc-lengths $FIXTURES/cli_d_lengths.npy -k 4 -o res.npy && $PYTHON -c "import numpy as n; s=n.load('res.scores.npy'); i=n.load('res.indices.npy'); print(s.shape, s.dtype, i.shape, i.dtype)"
> (5, 4) float32 (5, 4) int64

$ maxsim search -q $FIXTURES/cli_q.npy -d $FIXTURES/cli_d.npy --doc-lengths $FIXTURES/cli_d_lengths.npy -k 4 --format tsv > t.tsv && $PYTHON -c "
$ import numpy as n
$ s=n.load('res.scores.npy'); i=n.load('res.indices.npy')
$ rows=[l.split('\t') for l in open('t.tsv')]
$ print(all(int(r[1])==i[int(r[0]), int(r[2])-1] and n.float32(r[3])==s[int(r[0]), int(r[2])-1] for r in rows))"
> True

$ maxsim search -q $FIXTURES/cli_q.npy -d $FIXTURES/cli_d.npy --doc-lengths $FIXTURES/cli_d_lengths.npy -k 4 -o res.h5 && $PYTHON -c "import h5py; f=h5py.File('res.h5'); print(f['scores'].shape, f['scores'].dtype, f['indices'].shape, f['indices'].dtype)"
> (5, 4) float32 (5, 4) int64

# Errors: one line, exit 2, no output file.
$ maxsim search -d $FIXTURES/cli_d.npy
? 2
! maxsim search: no queries (-q QUERIES)
! Try 'maxsim search --help'.

$ maxsim search -q $FIXTURES/cli_q.npy
? 2
! maxsim search: no documents (-d DOCS)
! Try 'maxsim search --help'.

$ maxsim search -q $FIXTURES/cli_q.npy -d $FIXTURES/cli_d.npy -k 0
? 2
! maxsim search: -k takes an integer >= 1 (e.g. -k 10), got '0'
! Try 'maxsim search --help'.

$ maxsim search -q $FIXTURES/cli_q.npy -d $FIXTURES/cli_d.npy -k -3
? 2
! maxsim search: -k takes an integer >= 1 (e.g. -k 10), got '-3'
! Try 'maxsim search --help'.

$ maxsim search -q $FIXTURES/cli_q.npy -d $FIXTURES/cli_d.npy -k
? 2
! maxsim search: option '-k' needs a value
! Try 'maxsim search --help'.

$ maxsim search -q $FIXTURES/cli_q.npy -d $FIXTURES/cli_d.npy --chunk-docs 0
? 2
! maxsim search: --chunk-docs takes an integer >= 1 (e.g. --chunk-docs 10), got '0'
! Try 'maxsim search --help'.

$ maxsim search -q $FIXTURES/cli_q.npy -d $FIXTURES/cli_d.npy --frob
? 2
! maxsim search: unknown option '--frob'
! Try 'maxsim search --help'.

$ maxsim search -q $FIXTURES/cli_q.npy -d $FIXTURES/cli_d64.npy
? 2
! maxsim: error: dim mismatch: queries '$FIXTURES/cli_q.npy' have dim 48 but documents '$FIXTURES/cli_d64.npy' have dim 64

$ maxsim search -q $FIXTURES/cli_q.npy -d $FIXTURES/cli_d.npy --format xml
? 2
! maxsim: error: unknown format 'xml' (expected trec, tsv, npy or h5)

$ maxsim search -q $FIXTURES/cli_q.npy -d $FIXTURES/cli_d.npy --format npy
? 2
! maxsim: error: npy output needs a file name (-o OUT.npy)

$ maxsim search -q $FIXTURES/cli_q.npy -d $FIXTURES/cli_d.npy -o /nonexistent/dir/run.trec
? 2
! maxsim: error: -o: cannot create '/nonexistent/dir/run.trec': No such file or directory

$ maxsim search -q $FIXTURES/cli_q.npy -d $FIXTURES/cli_nan.npy --doc-lengths $FIXTURES/cli_nan_lengths.npy -o nan.trec; s=$?; test -e nan.trec || ls | grep -q 'tmp' || echo clean; exit $s
? 2
> clean
! maxsim: error: '$FIXTURES/cli_nan.npy': row 3 token 3 holds a NaN or Inf (embeddings must be finite)

$ maxsim search -q $FIXTURES/cli_q.npy -d $FIXTURES/cli_d.npy --doc-lengths $FIXTURES/cli_d_lengths.npy > /dev/full
? 1
~ cannot write to 'standard output': No space left on device

# The progress line, forced on; and nothing with -q.
$ maxsim search -q $FIXTURES/cli_q.npy -d $FIXTURES/cli_d.npy --doc-lengths $FIXTURES/cli_d_lengths.npy --progress 2>&1 >/dev/null | tr '\r' '\n' | tail -1
~ ^search: 300/300 documents \(100.0%\), [0-9]+ documents/s, elapsed 0:00

$ maxsim -q search -q $FIXTURES/cli_q.npy -d $FIXTURES/cli_d.npy --doc-lengths $FIXTURES/cli_d_lengths.npy --progress | wc -l
> 50

# --chunk-docs larger than the corpus sizes buffers for the corpus, not the
# option (10^11 ran out of memory on 500 documents).
$ maxsim search -q $DATA/sample.h5:/queries -d $DATA/sample.h5:/docs -k 1 --chunk-docs 100000000000 | head -1
@ needs cpu
> q1 Q0 doc-0042 1 16.5641651 maxsim

# zstd through a pipe (/dev/stdin), told by its first bytes (it said "bad
# magic bytes": the format probe had consumed them); lengths too.
$ zstd -q -c $DATA/queries.npy | maxsim search -q /dev/stdin -d $DATA/docs.npy --doc-lengths $DATA/docs_lengths.npy -k 1 --format tsv
@ needs zstd
> 0	42	1	16.5641651
> 1	137	1	16.9055138
> 2	256	1	16.852972
> 3	499	1	16.7030907

$ zstd -q -c $DATA/docs_lengths.npy | maxsim search -q $DATA/queries.npy -d $DATA/docs.npy --doc-lengths /dev/stdin -k 1 --format tsv | head -1
@ needs zstd cpu
> 0	42	1	16.5641651

$ cat $DATA/queries.npy | maxsim search -q /dev/stdin -d $DATA/docs.npy --doc-lengths $DATA/docs_lengths.npy
? 2
! maxsim: error: '/dev/stdin': a plain .npy through a pipe (it is read at random positions: give a file, or compress it with zstd)

$ zstd -q -c $DATA/queries.npy | head -c 3000 | maxsim search -q /dev/stdin -d $DATA/docs.npy --doc-lengths $DATA/docs_lengths.npy
@ needs zstd
? 2
! maxsim: error: '/dev/stdin': truncated zstd data (the file ends inside a frame)
