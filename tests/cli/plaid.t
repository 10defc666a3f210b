# maxsim plaid: search and rerank over PLAID indexes written by
# tests/fixtures_plaid.py (fast-plaid and NextPlaid layouts), info on index
# directories, and every error path.
# MAXSIM_PLAID_NV=0: on NVIDIA GPUs the float32 centroid scores, so that the
# exact comparisons with plaidcheck.py's float64 pipeline hold there too (the
# tensor-core path rounds queries to float16; tests/test_plaid.c covers it).
# The first search (recall) runs on the default path.

# Search at the defaults finds the exact top 10 of the clustered corpus.
$ maxsim plaid -q $FIXTURES/plaid_corpus_q.npy -i $FIXTURES/plaid_corpus > run.trec
$ wc -l < run.trec && $PYTHON $TESTS/plaidcheck.py recall $FIXTURES/plaid_corpus_gt.npy run.trec 0.95
> 400
> ok

# Every layout, nbits and dtype: search scores against the float64 reference.
$ for i in fp1 fp2 fp4 np8 np2 short long; do MAXSIM_PLAID_NV=0 maxsim plaid -q $FIXTURES/plaid_q.npy -i $FIXTURES/plaid_$i -k 60 > $i.trec || exit 1; $PYTHON $TESTS/plaidcheck.py exact $FIXTURES/plaid_$i $FIXTURES/plaid_q.npy $i.trec; done
> ok
> ok
> ok
> ok
> ok
> ok
> ok

# Narrow settings, so every stage matters: the documents and their order are
# exactly those of fast-plaid's pipeline redone in float64 (plaidcheck.py).
$ for i in fp1 fp2 fp4 np8 np2 short long; do MAXSIM_PLAID_NV=0 maxsim plaid -q $FIXTURES/plaid_q.npy -i $FIXTURES/plaid_$i -k 5 --nprobe 2 --ncandidates 20 --nrerank 8 > $i.trec || exit 1; $PYTHON $TESTS/plaidcheck.py pipeline $FIXTURES/plaid_$i $FIXTURES/plaid_q.npy $i.trec 5 2 20 8; done | sort | uniq -c | awk '{print $1, $2}'
> 7 ok

$ MAXSIM_PLAID_NV=0 maxsim plaid -q $FIXTURES/plaid_q.npy -i $FIXTURES/plaid_fp4 -k 10 --nprobe 3 --ncandidates 30 --centroid-threshold 0.3 > t.trec && $PYTHON $TESTS/plaidcheck.py pipeline $FIXTURES/plaid_fp4 $FIXTURES/plaid_q.npy t.trec 10 3 30 10 0.3
> ok

$ MAXSIM_PLAID_NV=0 maxsim plaid -q $FIXTURES/plaid_q.npy -i $FIXTURES/plaid_np2 -k 60 --nprobe 1 --ncandidates 12 --nrerank 100 > t.trec && $PYTHON $TESTS/plaidcheck.py pipeline $FIXTURES/plaid_np2 $FIXTURES/plaid_q.npy t.trec 60 1 12 100
> ok

# float16 queries longer than a work-group.
$ MAXSIM_PLAID_NV=0 maxsim plaid -q $FIXTURES/plaid_q_long.npy -i $FIXTURES/plaid_fp1 -k 6 --nprobe 2 --ncandidates 16 > t.trec && $PYTHON $TESTS/plaidcheck.py pipeline $FIXTURES/plaid_fp1 $FIXTURES/plaid_q_long.npy t.trec 6 2 16 6
> ok

# Document ids from --doc-ids, and the run tag.
$ MAXSIM_PLAID_NV=0 maxsim plaid -q $FIXTURES/plaid_q.npy -i $FIXTURES/plaid_fp2 -k 1 --doc-ids $FIXTURES/plaid_doc_ids.txt --run-tag t1 | awk '{print $2, $4, $6, ($3 ~ /^doc[0-9]+$/)}'
> Q0 1 t1 1
> Q0 1 t1 1
> Q0 1 t1 1
> Q0 1 t1 1
> Q0 1 t1 1

# Same bytes whatever the knobs that do not change the candidate set.
$ MAXSIM_PLAID_NV=0 maxsim plaid -q $FIXTURES/plaid_q.npy -i $FIXTURES/plaid_np2 -k 7 > a.trec
$ MAXSIM_PLAID_NV=0 maxsim plaid -q $FIXTURES/plaid_q.npy -i $FIXTURES/plaid_np2 -k 7 --nprobe 8 --ncandidates 4096 --nrerank 1024 > b.trec
$ cmp a.trec b.trec && echo same
> same

# Batches of any size give the same bytes (the device pipeline per batch).
$ MAXSIM_PLAID_NV=0 maxsim plaid -q $FIXTURES/plaid_corpus_q.npy -i $FIXTURES/plaid_corpus > a.trec
$ MAXSIM_PLAID_NV=0 maxsim plaid -q $FIXTURES/plaid_corpus_q.npy -i $FIXTURES/plaid_corpus --query-batch 1 > b.trec && cmp a.trec b.trec && echo same
> same
$ MAXSIM_PLAID_NV=0 maxsim plaid -q $FIXTURES/plaid_corpus_q.npy -i $FIXTURES/plaid_corpus --query-batch 7 > b.trec && cmp a.trec b.trec && echo same
> same

# Trailing all-zero query rows (an encoder's padding) are dropped, as
# fast-plaid 1.7 does: the padded queries give the unpadded results.
$ MAXSIM_PLAID_NV=0 maxsim plaid -q $FIXTURES/plaid_corpus_q_pad.npy -i $FIXTURES/plaid_corpus > p.trec && cmp a.trec p.trec && echo same
> same

# --query-lengths wins: the padding rows are then query tokens and probe
# centroids too (more candidates, same exact scores for what is found).
$ MAXSIM_PLAID_NV=0 maxsim -v plaid -q $FIXTURES/plaid_corpus_q_pad.npy -i $FIXTURES/plaid_corpus 2>&1 >/dev/null | grep -o '[0-9]* candidates'
> 1958 candidates
$ MAXSIM_PLAID_NV=0 maxsim -v plaid -q $FIXTURES/plaid_corpus_q_pad.npy --query-lengths $FIXTURES/plaid_corpus_q_pad_len.npy -i $FIXTURES/plaid_corpus 2>&1 >/dev/null | grep -o '[0-9]* candidates'
> 1969 candidates

# A query of zero rows only has no tokens left: no results for it.
$ MAXSIM_PLAID_NV=0 maxsim plaid -q $FIXTURES/plaid_corpus_q_ties.npy -i $FIXTURES/plaid_corpus --format tsv | cut -f1 | uniq -c | awk '{print $2, $1}'
> 0 10
> 1 10
> 3 10
> 4 10
> 5 10

# Rerank mode (-c): TREC and TSV runs, ids through --doc-ids, stdin, the empty document scores 0.
$ printf '0 Q0 doc3 1 1 x\n0 Q0 doc7 2 1 x\n0 Q0 doc3 9 1 x\n1\tdoc5\n' | MAXSIM_PLAID_NV=0 maxsim plaid -q $FIXTURES/plaid_q.npy -i $FIXTURES/plaid_fp4 --doc-ids $FIXTURES/plaid_doc_ids.txt -c - > rr.trec
$ awk '{print $1, $3, $4, $6}' rr.trec && $PYTHON $TESTS/plaidcheck.py exact $FIXTURES/plaid_fp4 $FIXTURES/plaid_q.npy rr.trec
> 0 doc3 1 maxsim
> 0 doc7 2 maxsim
> 1 doc5 1 maxsim
> ok

# Rerank a search run: same scores, same order.
$ MAXSIM_PLAID_NV=0 maxsim plaid -q $FIXTURES/plaid_corpus_q.npy -i $FIXTURES/plaid_corpus > s.trec
$ MAXSIM_PLAID_NV=0 maxsim plaid -q $FIXTURES/plaid_corpus_q.npy -i $FIXTURES/plaid_corpus -c s.trec > r.trec
$ cmp s.trec r.trec && echo same
> same

# -k with -c keeps the best k per query; -o writes the file whole.
$ MAXSIM_PLAID_NV=0 maxsim plaid -q $FIXTURES/plaid_corpus_q.npy -i $FIXTURES/plaid_corpus -k 20 > s20.trec
$ MAXSIM_PLAID_NV=0 maxsim plaid -q $FIXTURES/plaid_corpus_q.npy -i $FIXTURES/plaid_corpus -c s20.trec -k 10 -o out.trec && cmp out.trec s.trec && echo same
> same

# --skip-missing warns once with a count.
$ printf '0\tdoc1\n0\tnope\n9\tdoc2\n' | MAXSIM_PLAID_NV=0 maxsim plaid -q $FIXTURES/plaid_q.npy -i $FIXTURES/plaid_fp2 --doc-ids $FIXTURES/plaid_doc_ids.txt -c - --skip-missing --format tsv | cut -f1-3
> 0	doc1	1
! maxsim: warning: skipped 2 candidates with unknown ids (the first: line 2, document 'nope')

# info on index directories: table and JSON.
$ cd $FIXTURES && maxsim info plaid_fp2 plaid_np8
> INDEX      LAYOUT           DOCS      TOKENS   DIM  NBITS  CENTROIDS  BYTES/TOKEN  DISK
> plaid_fp2  fast-plaid         60         398    32      2         16           16  12321
> plaid_np8  next-plaid         60         398    32      8         16           40  24528

$ maxsim info --json $FIXTURES/plaid_fp4 | $PYTHON -c "import json,sys; d=json.load(sys.stdin)[0]; print(d['layout'], d['documents'], d['tokens'], d['dim'], d['nbits'], d['centroids'], d['bytes_per_token'], d['centroid_dtype'])"
> fast-plaid 60 398 32 4 16 20 float16

# Help.
$ MAXSIM_PLAID_NV=0 maxsim plaid --help | head -1
> usage: maxsim plaid -q <queries> -i <index-dir> [-c <run>] [-k <n>]

# Errors: bad indexes, each named by its file; exit status 2; no output file.
$ MAXSIM_PLAID_NV=0 maxsim plaid -q $FIXTURES/plaid_q.npy -i $FIXTURES/plaid_bad_missing -o o.trec; s=$?; ls o.trec 2>/dev/null; exit $s
? 2
! maxsim: error: cannot open '$FIXTURES/plaid_bad_missing/centroids.npy': No such file or directory

$ MAXSIM_PLAID_NV=0 maxsim plaid -q $FIXTURES/plaid_q.npy -i $FIXTURES/plaid_bad_width
? 2
! maxsim: error: '$FIXTURES/plaid_bad_width/0.residuals.npy': expected rows of 8 bytes (dim 32 x nbits 2 / 8), found 7

$ MAXSIM_PLAID_NV=0 maxsim plaid -q $FIXTURES/plaid_q.npy -i $FIXTURES/plaid_bad_codes
? 2
! maxsim: error: '$FIXTURES/plaid_bad_codes/1.codes.npy': code 16 at row 3 is out of range (expected 0..15)

$ MAXSIM_PLAID_NV=0 maxsim plaid -q $FIXTURES/plaid_q.npy -i $FIXTURES/plaid_bad_doclens
? 2
! maxsim: error: '$FIXTURES/plaid_bad_doclens/0.codes.npy': 141 codes, but 'doclens.0.json' sums to 142 tokens

$ MAXSIM_PLAID_NV=0 maxsim plaid -q $FIXTURES/plaid_q.npy -i $FIXTURES/plaid_bad_nbits
? 2
! maxsim: error: '$FIXTURES/plaid_bad_nbits/metadata.json': unsupported nbits 3 (expected 1, 2, 4 or 8)

$ MAXSIM_PLAID_NV=0 maxsim plaid -q $FIXTURES/plaid_q.npy -i $FIXTURES/plaid_bad_dtype
? 2
! maxsim: error: '$FIXTURES/plaid_bad_dtype/0.codes.npy': unsupported dtype float32 (expected int32 or int64)

$ maxsim info $FIXTURES/plaid_bad_nbits
? 2
! maxsim: error: '$FIXTURES/plaid_bad_nbits/metadata.json': unsupported nbits 3 (expected 1, 2, 4 or 8)

$ MAXSIM_PLAID_NV=0 maxsim plaid -q $FIXTURES/plaid_q.npy -i $FIXTURES/plaid_q.npy
? 2
! maxsim: error: '$FIXTURES/plaid_q.npy': expected a PLAID index directory, found a file

$ MAXSIM_PLAID_NV=0 maxsim plaid -q $FIXTURES/plaid_corpus_q.npy -i $FIXTURES/plaid_fp2
? 2
! maxsim: error: dim mismatch: queries '$FIXTURES/plaid_corpus_q.npy' have dim 64 but the index '$FIXTURES/plaid_fp2' has dim 32

$ head -5 $FIXTURES/plaid_doc_ids.txt > ids.txt; MAXSIM_PLAID_NV=0 maxsim plaid -q $FIXTURES/plaid_q.npy -i $FIXTURES/plaid_fp2 --doc-ids ids.txt
? 2
! maxsim: error: 'ids.txt': 5 ids, but the index '$FIXTURES/plaid_fp2' has 60 documents

$ printf '0\t60\n' | MAXSIM_PLAID_NV=0 maxsim plaid -q $FIXTURES/plaid_q.npy -i $FIXTURES/plaid_fp2 -c -
? 2
! maxsim: error: 'standard input' line 1: unknown document id '60'

$ MAXSIM_PLAID_NV=0 maxsim plaid -q $FIXTURES/plaid_q.npy
? 2
! maxsim plaid: no index (-i INDEX_DIR)
! Try 'maxsim plaid --help'.

$ MAXSIM_PLAID_NV=0 maxsim plaid -q $FIXTURES/plaid_q.npy -i $FIXTURES/plaid_fp2 -o out.npy
? 2
! maxsim: error: -o 'out.npy' names npy output, which this command does not write (expected trec or tsv)

$ MAXSIM_PLAID_NV=0 maxsim plaid -q $FIXTURES/plaid_q.npy -i $FIXTURES/plaid_fp2 --nprobe 0
? 2
~ --nprobe

$ MAXSIM_PLAID_NV=0 maxsim plaid -q $FIXTURES/plaid_q.npy -i $FIXTURES/plaid_fp2 --centroid-threshold abc
? 2
! maxsim plaid: --centroid-threshold takes a number, got 'abc'
! Try 'maxsim plaid --help'.

# info takes index directories and embedding files together (a table each).
$ maxsim info $FIXTURES/plaid_fp2 $DATA/queries.npy | awk '{print $1}' | sed "s|$FIXTURES/||; s|$DATA/||"
> INDEX
> plaid_fp2
>
> FILE
> queries.npy

$ maxsim info --json $FIXTURES/plaid_fp2 $DATA/queries.npy
? 2
! maxsim info: --json describes either embedding files or index directories; name them in two calls
! Try 'maxsim info --help'.

# -v shows what the device layer noted (kernel cache), as for the other commands.
$ MAXSIM_CACHE_DIR=$TMP/vcache MAXSIM_PLAID_NV=0 maxsim -v plaid -q $FIXTURES/plaid_corpus_q.npy -i $FIXTURES/plaid_corpus -k 1 2>&1 >/dev/null | grep -c '^maxsim: cache SAVE'
> 1
