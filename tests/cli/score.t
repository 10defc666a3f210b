# maxsim score: the full matrix against the float64 reference, every format.

$ maxsim score -q $FIXTURES/cli_q.npy --query-lengths $FIXTURES/cli_q_lengths.npy -d $FIXTURES/cli_d.npy --doc-lengths $FIXTURES/cli_d_lengths.npy -o m.npy
$ $PYTHON $TESTS/refcheck.py score $FIXTURES/cli_q.npy $FIXTURES/cli_d.npy m.npy --query-lengths $FIXTURES/cli_q_lengths.npy --doc-lengths $FIXTURES/cli_d_lengths.npy
> ok

$ maxsim score --normalize -q $FIXTURES/cli_q.npy -d $FIXTURES/cli_d.npy --doc-lengths $FIXTURES/cli_d_lengths.npy --chunk-docs 17 --query-batch 2 -o n.npy
$ $PYTHON $TESTS/refcheck.py score $FIXTURES/cli_q.npy $FIXTURES/cli_d.npy n.npy --normalize --doc-lengths $FIXTURES/cli_d_lengths.npy
> ok

# Block size and query batch do not change a single bit.
$ maxsim score -q $FIXTURES/cli_q.npy -d $FIXTURES/cli_d.npy --doc-lengths $FIXTURES/cli_d_lengths.npy -o a.npy
$ maxsim score -q $FIXTURES/cli_q.npy -d $FIXTURES/cli_d.npy --doc-lengths $FIXTURES/cli_d_lengths.npy --chunk-docs 3 --query-batch 4 -o b.npy
$ cmp a.npy b.npy && echo same
> same

# The .npy matrix written through a mapping (the default where the file's blocks can be
# allocated), by pwrite, through a device path (a scratch file copied at the end), and with
# -v saying which: the same bytes.
$ MAXSIM_OUTPUT_MAP=0 maxsim score -q $FIXTURES/cli_q.npy -d $FIXTURES/cli_d.npy --doc-lengths $FIXTURES/cli_d_lengths.npy --chunk-docs 3 --query-batch 4 -o c.npy
$ cmp a.npy c.npy && echo same
> same

$ maxsim score -q $FIXTURES/cli_q.npy -d $FIXTURES/cli_d.npy --doc-lengths $FIXTURES/cli_d_lengths.npy --format npy -o /dev/stdout | cmp - a.npy && echo same
> same

$ maxsim score -v -q $FIXTURES/cli_q.npy -d $FIXTURES/cli_d.npy --doc-lengths $FIXTURES/cli_d_lengths.npy -o d.npy 2>&1 | grep -c 'copies into the mapped file'; MAXSIM_OUTPUT_MAP=0 maxsim score -v -q $FIXTURES/cli_q.npy -d $FIXTURES/cli_d.npy --doc-lengths $FIXTURES/cli_d_lengths.npy -o d.npy 2>&1 | grep -c 'threads, pwrite'
> 1
> 1

$ maxsim score -q $FIXTURES/cli_d.h5:/queries -d $FIXTURES/cli_d.h5:/docs -o m.h5 && $PYTHON -c "
$ import h5py, numpy as n
$ s = h5py.File('m.h5')['scores'][()]
$ print(s.shape, s.dtype, bool((s == n.load('m.npy')).all()))"
> (5, 300) float32 True

# TSV: on stdout by default, query by query, documents in order.
$ maxsim score -q $FIXTURES/cli_d.h5:/queries -d $FIXTURES/cli_d.h5:/docs | head -2 | cut -f1,2
> 0	D0
> 0	D1

$ maxsim score -q $FIXTURES/cli_d.h5:/queries -d $FIXTURES/cli_d.h5:/docs | wc -l
> 1500

$ maxsim score -q $FIXTURES/cli_d.h5:/queries -d $FIXTURES/cli_d.h5:/docs > s.tsv && maxsim score -q $FIXTURES/cli_d.h5:/queries -d $FIXTURES/cli_d.h5:/docs -o s.tsv.zst && zstd -dc s.tsv.zst | cmp - s.tsv && echo same
@ needs zstd
> same

$ maxsim score -q $FIXTURES/cli_d.h5:/queries -d $FIXTURES/cli_d.h5:/docs | awk -F'\t' 'NR==4{print $3}'
> 0

# Errors.
$ maxsim score -q $FIXTURES/cli_q.npy -d $FIXTURES/cli_d.npy --format trec -o x.trec
? 2
! maxsim: error: --format takes tsv, npy or h5 here, got 'trec'

$ maxsim score -q $FIXTURES/cli_q.npy -d $FIXTURES/cli_d64.npy -o x.npy; s=$?; test -e x.npy || echo none; exit $s
? 2
> none
! maxsim: error: dim mismatch: queries '$FIXTURES/cli_q.npy' have dim 48 but documents '$FIXTURES/cli_d64.npy' have dim 64

$ maxsim score -q $FIXTURES/cli_q.npy -d $FIXTURES/cli_d.npy --doc-lengths $FIXTURES/cli_d_lengths.npy -o /nonexistent/m.h5
? 2
~ ^maxsim: error: -o: cannot create '/nonexistent/m.h5

$ maxsim score -q $FIXTURES/cli_q.npy -d $FIXTURES/cli_nan.npy --doc-lengths $FIXTURES/cli_nan_lengths.npy -o nan.npy; s=$?; ls | grep -q nan || echo clean; exit $s
? 2
> clean
! maxsim: error: '$FIXTURES/cli_nan.npy': row 3 token 3 holds a NaN or Inf (embeddings must be finite)

# --chunk-docs larger than the corpus: buffers for the corpus, not the option.
$ maxsim score -q $DATA/sample.h5:/queries -d $DATA/sample.h5:/docs --chunk-docs 100000000000 | head -1
@ needs cpu
> q1	doc-0000	4.00032616
