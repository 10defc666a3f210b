# maxsim rerank: candidates rescored against the float64 reference, formats,
# duplicates, missing ids, and every error path.

$ maxsim rerank -q $FIXTURES/cli_q.npy --query-lengths $FIXTURES/cli_q_lengths.npy -d $FIXTURES/cli_d.h5:/docs -c $FIXTURES/cli_run.trec > out.trec
$ $PYTHON $TESTS/refcheck.py rerank $FIXTURES/cli_q.npy $FIXTURES/cli_d.npy $FIXTURES/cli_run.trec out.trec --query-lengths $FIXTURES/cli_q_lengths.npy --doc-lengths $FIXTURES/cli_d_lengths.npy --doc-ids $FIXTURES/cli_d_ids.txt
> ok

# TSV candidates with CRLF, from stdin, zstd-compressed; ids from a side file.
$ zstd -q -c $FIXTURES/cli_run.tsv | maxsim rerank --normalize -q $FIXTURES/cli_q.npy -d $FIXTURES/cli_d.npy --doc-lengths $FIXTURES/cli_d_lengths.npy --doc-ids $FIXTURES/cli_d_ids.txt -c - --format tsv > out.tsv
$ $PYTHON $TESTS/refcheck.py rerank $FIXTURES/cli_q.npy $FIXTURES/cli_d.npy $FIXTURES/cli_run.tsv out.tsv --normalize --doc-lengths $FIXTURES/cli_d_lengths.npy --doc-ids $FIXTURES/cli_d_ids.txt
@ needs zstd
> ok

# Same bytes whatever the block size and query batch.
$ for c in 1 5 300; do maxsim rerank -q $FIXTURES/cli_q.npy -d $FIXTURES/cli_d.h5:/docs -c $FIXTURES/cli_run.trec --chunk-docs $c > c$c.trec || exit 1; done
$ maxsim rerank -q $FIXTURES/cli_q.npy -d $FIXTURES/cli_d.h5:/docs -c $FIXTURES/cli_run.trec --chunk-docs 3 --query-batch 2 > qb.trec
$ cmp c1.trec c5.trec && cmp c1.trec c300.trec && cmp c1.trec qb.trec && echo same
> same

# Candidates that repeat across queries (every query names the same 120 documents) and ones
# that do not (each document named by one query): each document is fetched once a batch, the
# pairs are ordered by document through indices, and the scores and ranks match the float64
# reference whatever the block size.
$ for q in 0 1 2 3 4; do for i in $(seq 0 119); do echo "$q Q0 D$(( (i * 7) % 300 )) $i 1 x"; done; done > same.trec
$ for i in $(seq 0 299); do echo "$(( i % 5 )) Q0 D$i 1 1 x"; done > apart.trec
$ for r in same apart; do maxsim rerank -q $FIXTURES/cli_q.npy -d $FIXTURES/cli_d.h5:/docs -c $r.trec > $r.out && $PYTHON $TESTS/refcheck.py rerank $FIXTURES/cli_q.npy $FIXTURES/cli_d.npy $r.trec $r.out --doc-lengths $FIXTURES/cli_d_lengths.npy --doc-ids $FIXTURES/cli_d_ids.txt && for c in 1 7; do maxsim rerank -q $FIXTURES/cli_q.npy -d $FIXTURES/cli_d.h5:/docs -c $r.trec --chunk-docs $c --query-batch 2 | cmp - $r.out || exit 1; done; done; wc -l < same.out; wc -l < apart.out
> ok
> ok
> 600
> 300

# -k keeps the best k; a query with one candidate; an empty run.
$ maxsim rerank -q $FIXTURES/cli_q.npy -d $FIXTURES/cli_d.h5:/docs -c $FIXTURES/cli_run.trec -k 3 --run-tag rr | awk '{print $1, $4, $6}' | sort -u | wc -l
> 15

$ maxsim rerank -q $FIXTURES/cli_q.npy -d $FIXTURES/cli_d.h5:/docs -c $FIXTURES/cli_run_one.tsv | cut -d' ' -f1-4
> 2 Q0 D10 1

$ maxsim rerank -q $FIXTURES/cli_q.npy -d $FIXTURES/cli_d.h5:/docs -c $FIXTURES/cli_run_empty.trec -o empty.trec && wc -c < empty.trec
> 0

# Empty documents score 0.
$ maxsim rerank -q $FIXTURES/cli_q.npy -d $FIXTURES/cli_d.h5:/docs -c $FIXTURES/cli_run.trec | awk '$3=="D77" {print $5}' | sort -u
> 0

# Unknown ids: an error naming the line, or one warning with --skip-missing.
$ maxsim rerank -q $FIXTURES/cli_q.npy -d $FIXTURES/cli_d.h5:/docs -c $FIXTURES/cli_run_missing.trec
? 2
! maxsim: error: '$FIXTURES/cli_run_missing.trec' line 2: unknown document id 'D999'

$ maxsim rerank -q $FIXTURES/cli_q.npy -d $FIXTURES/cli_d.h5:/docs -c $FIXTURES/cli_run_missing.trec --skip-missing | wc -l
! maxsim: warning: skipped 3 candidates with unknown ids (the first: line 2, document 'D999')
> 2

$ maxsim -q rerank -q $FIXTURES/cli_q.npy -d $FIXTURES/cli_d.h5:/docs -c $FIXTURES/cli_run_missing.trec --skip-missing | wc -l
> 2

$ maxsim rerank -q $FIXTURES/cli_q.npy -d $FIXTURES/cli_d.h5:/docs -c $FIXTURES/cli_run_bad.trec -o bad.trec; s=$?; test -e bad.trec || echo none; exit $s
? 2
> none
! maxsim: error: '$FIXTURES/cli_run_bad.trec' line 3: expected 'QID Q0 DOCID RANK SCORE TAG' (6 fields) or 'QID<TAB>DOCID'

$ maxsim rerank -q $FIXTURES/cli_q.npy -d $FIXTURES/cli_d.h5:/docs
? 2
! maxsim rerank: no candidate run (-c RUN, or -c - for stdin)
! Try 'maxsim rerank --help'.

$ maxsim rerank -q $FIXTURES/cli_q.npy -d $FIXTURES/cli_d.h5:/docs -c $TMP/none.trec
? 2
! maxsim: error: cannot open '$TMP/none.trec': No such file or directory

$ maxsim rerank -q $FIXTURES/cli_q.npy -d $FIXTURES/cli_d.h5:/docs -c $FIXTURES/cli_run.trec -o x.npy
? 2
! maxsim: error: -o 'x.npy' names npy output, which this command does not write (expected trec or tsv)

$ maxsim rerank -q $FIXTURES/cli_q.npy -d $FIXTURES/cli_d.h5:/docs -c $FIXTURES/cli_run.trec -k 0
? 2
! maxsim rerank: -k takes an integer >= 1 (e.g. -k 10), got '0'
! Try 'maxsim rerank --help'.

$ printf 'a\nb\nc\na\ne\n' > ids.txt && maxsim rerank -q $FIXTURES/cli_q.npy --query-ids ids.txt -d $FIXTURES/cli_d.h5:/docs -c $FIXTURES/cli_run.trec
? 2
! maxsim: error: 'ids.txt': id 'a' appears twice (rows 0 and 3)

# A candidate line longer than 1 MiB is refused (documented in the man page).
$ $PYTHON -c "print('q1 Q0 ' + 'd' * (1 << 20) + ' 1 1 x')" > long.trec && maxsim rerank -q $FIXTURES/cli_q.npy -d $FIXTURES/cli_d.npy --doc-lengths $FIXTURES/cli_d_lengths.npy -c long.trec
? 2
! maxsim: error: 'long.trec' line 1: longer than 1048576 bytes
