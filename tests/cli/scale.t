# Scale-out without MPI: several devices (PoCL lists its CPU device once per
# entry of POCL_DEVICES), search --shard and merge. Every case compares bytes
# with the one-device, unsharded run.

# One device, the reference runs: cli_dup holds every document three times
# (rows r, r+5, r+10), so ties cross block, device and shard boundaries.
$ maxsim search -q $FIXTURES/cli_q.npy --query-lengths $FIXTURES/cli_q_lengths.npy -d $FIXTURES/cli_dup.npy --doc-lengths $FIXTURES/cli_dup_lengths.npy -k 12 --chunk-docs 2 > dup1.trec
$ maxsim search -q $FIXTURES/cli_q.npy --query-lengths $FIXTURES/cli_q_lengths.npy -d $FIXTURES/cli_d.npy --doc-lengths $FIXTURES/cli_d_lengths.npy -k 20 --chunk-docs 7 > d1.trec
$ wc -l < dup1.trec; wc -l < d1.trec
> 60
> 100

# --device all and lists give the same bytes, whatever the device count and block size.
$ export POCL_DEVICES="pthread pthread pthread"
$ maxsim devices | grep -c '^[* ] [0-9] '
$ for c in 1 2 5; do maxsim --device all search -q $FIXTURES/cli_q.npy --query-lengths $FIXTURES/cli_q_lengths.npy -d $FIXTURES/cli_dup.npy --doc-lengths $FIXTURES/cli_dup_lengths.npy -k 12 --chunk-docs $c | cmp - dup1.trec || exit 1; done
$ MAXSIM_DEVICE=2,0 maxsim search -q $FIXTURES/cli_q.npy --query-lengths $FIXTURES/cli_q_lengths.npy -d $FIXTURES/cli_d.npy --doc-lengths $FIXTURES/cli_d_lengths.npy -k 20 --chunk-docs 3 | cmp - d1.trec && echo same
@ needs cpu
> 3
> same

# The same with each block's top k selected on the devices (MAXSIM_DEVICE_TOPK=1; -v says so).
$ export POCL_DEVICES="pthread pthread pthread"
$ for c in 1 2 5; do MAXSIM_DEVICE_TOPK=1 maxsim --device all search -q $FIXTURES/cli_q.npy --query-lengths $FIXTURES/cli_q_lengths.npy -d $FIXTURES/cli_dup.npy --doc-lengths $FIXTURES/cli_dup_lengths.npy -k 12 --chunk-docs $c | cmp - dup1.trec || exit 1; done
$ MAXSIM_DEVICE_TOPK=1 maxsim -v --device all search -q $FIXTURES/cli_q.npy --query-lengths $FIXTURES/cli_q_lengths.npy -d $FIXTURES/cli_d.npy --doc-lengths $FIXTURES/cli_d_lengths.npy -k 20 --chunk-docs 3 2>v.err | cmp - d1.trec && grep -c 'top-k on the device' v.err
> 1

# maxsim devices marks every device of the set.
$ export POCL_DEVICES="pthread pthread pthread"
$ maxsim --device all devices | grep -c '^\* '
$ maxsim --device 2,0 devices --json | $PYTHON -c "import json,sys; d=json.load(sys.stdin); print(d['picked'], d['picked_all'])"
@ needs cpu
> 3
> 2 [2, 0]

# score: each device fills the columns of its blocks (.npy, TSV and HDF5 alike).
$ maxsim score -q $FIXTURES/cli_q.npy --query-lengths $FIXTURES/cli_q_lengths.npy -d $FIXTURES/cli_d.npy --doc-lengths $FIXTURES/cli_d_lengths.npy -o one.npy
$ maxsim score -q $FIXTURES/cli_q.npy --query-lengths $FIXTURES/cli_q_lengths.npy -d $FIXTURES/cli_d.npy --doc-lengths $FIXTURES/cli_d_lengths.npy > one.tsv
$ export POCL_DEVICES="pthread pthread"
$ maxsim --device all score -q $FIXTURES/cli_q.npy --query-lengths $FIXTURES/cli_q_lengths.npy -d $FIXTURES/cli_d.npy --doc-lengths $FIXTURES/cli_d_lengths.npy --chunk-docs 11 -o all.npy
$ maxsim --device 0,1 score -q $FIXTURES/cli_q.npy --query-lengths $FIXTURES/cli_q_lengths.npy -d $FIXTURES/cli_d.npy --doc-lengths $FIXTURES/cli_d_lengths.npy --chunk-docs 11 | cmp - one.tsv
$ cmp one.npy all.npy && echo same
@ needs cpu
> same

# One device listed twice: two queues and threads on it, the same bytes.
$ POCL_DEVICES=pthread maxsim --device 0,0 search -q $FIXTURES/cli_q.npy --query-lengths $FIXTURES/cli_q_lengths.npy -d $FIXTURES/cli_d.npy --doc-lengths $FIXTURES/cli_d_lengths.npy -k 20 --chunk-docs 7 | cmp - d1.trec && echo same
> same

# The query batches are spread too.
$ POCL_DEVICES="pthread pthread" maxsim --device all search -q $FIXTURES/cli_q.npy --query-lengths $FIXTURES/cli_q_lengths.npy -d $FIXTURES/cli_d.npy --doc-lengths $FIXTURES/cli_d_lengths.npy -k 20 --chunk-docs 13 --query-batch 2 | cmp - d1.trec && echo same
> same

# Shards and merge: 1 to 16 shards (16 > 15 documents: some shards are empty).
$ for n in 1 2 3 4 7 16; do rm -f s*.trec; i=0; while [ $i -lt $n ]; do maxsim search -q $FIXTURES/cli_q.npy --query-lengths $FIXTURES/cli_q_lengths.npy -d $FIXTURES/cli_dup.npy --doc-lengths $FIXTURES/cli_dup_lengths.npy -k 12 --shard $i/$n -o s$(printf %02d $i).trec || exit 1; i=$((i + 1)); done; maxsim merge -k 12 s*.trec | cmp - dup1.trec || exit 1; done; echo same
> same

# Shards and several devices together.
$ maxsim search -q $FIXTURES/cli_q.npy --query-lengths $FIXTURES/cli_q_lengths.npy -d $FIXTURES/cli_dup.npy --doc-lengths $FIXTURES/cli_dup_lengths.npy -k 12 --shard 1/3 > one1.trec
$ POCL_DEVICES="pthread pthread" maxsim --device all search -q $FIXTURES/cli_q.npy --query-lengths $FIXTURES/cli_q_lengths.npy -d $FIXTURES/cli_dup.npy --doc-lengths $FIXTURES/cli_dup_lengths.npy -k 12 --chunk-docs 2 --shard 1/3 | cmp - one1.trec && wc -l < one1.trec
> 25

# A merge tree: contiguous groups of shards merged first, then the groups in order.
$ for i in 0 1 2 3 4 5 6; do maxsim search -q $FIXTURES/cli_q.npy --query-lengths $FIXTURES/cli_q_lengths.npy -d $FIXTURES/cli_dup.npy --doc-lengths $FIXTURES/cli_dup_lengths.npy -k 12 --shard $i/7 -o t$i.trec || exit 1; done
$ maxsim merge -k 12 t0.trec t1.trec t2.trec > g0.trec && maxsim merge -k 12 t3.trec t4.trec t5.trec t6.trec > g1.trec
$ maxsim merge -k 12 g0.trec g1.trec | cmp - dup1.trec && echo same
> same

# Shards of a zstd-compressed corpus (read forward only), several query batches.
$ zstd -q $FIXTURES/cli_d.npy -o d.npy.zst
$ for i in 0 1 2; do maxsim search -q $FIXTURES/cli_q.npy --query-lengths $FIXTURES/cli_q_lengths.npy -d d.npy.zst --doc-lengths $FIXTURES/cli_d_lengths.npy -k 20 --query-batch 2 --shard $i/3 -o z$i.trec || exit 1; done
$ maxsim merge -k 20 z0.trec z1.trec z2.trec | cmp - d1.trec && echo same
@ needs zstd
> same

# A shard's run holds its own top-k with global document ids.
$ maxsim search -q $FIXTURES/cli_q.npy --query-lengths $FIXTURES/cli_q_lengths.npy -d $FIXTURES/cli_dup.npy --doc-lengths $FIXTURES/cli_dup_lengths.npy -k 2 --shard 2/3 --format tsv | head -2
> 0	13	1	124.808739
> 0	10	2	117.088516

# TSV, zstd-compressed shard runs, one of them on stdin; the output in the runs' format.
$ for i in 0 1 2; do maxsim search -q $FIXTURES/cli_q.npy --query-lengths $FIXTURES/cli_q_lengths.npy -d $FIXTURES/cli_d.npy --doc-lengths $FIXTURES/cli_d_lengths.npy -k 20 --shard $i/3 -o t$i.tsv.zst || exit 1; done
$ maxsim search -q $FIXTURES/cli_q.npy --query-lengths $FIXTURES/cli_q_lengths.npy -d $FIXTURES/cli_d.npy --doc-lengths $FIXTURES/cli_d_lengths.npy -k 20 --format tsv > d1.tsv
$ maxsim merge -k 20 t0.tsv.zst - t2.tsv.zst < t1.tsv.zst | cmp - d1.tsv
$ maxsim merge -k 20 -o m.trec t0.tsv.zst t1.tsv.zst t2.tsv.zst && cmp m.trec d1.trec 2>/dev/null; cut -d' ' -f6 m.trec | sort -u
$ maxsim merge -k 20 --format trec t0.tsv.zst t1.tsv.zst t2.tsv.zst | cmp - m.trec && echo same
> maxsim
> same

# k: the default 10 (the runs hold 20 a query: a warning), larger than what
# the runs hold (all of it), --run-tag; -q silences the warning.
$ maxsim merge t0.tsv.zst t1.tsv.zst t2.tsv.zst | wc -l
> 50
! maxsim: warning: the runs hold up to 20 results a query; merged the best 10 (-k 10): give merge the -k of the search to get the unsharded run
$ maxsim merge -k 1000 t0.tsv.zst t1.tsv.zst t2.tsv.zst | wc -l
> 300
$ maxsim -q merge -k 1 --run-tag exp2 --format trec t0.tsv.zst t1.tsv.zst t2.tsv.zst | head -1 | cut -d' ' -f1,2,4,6
> 0 Q0 1 exp2

# The output appears whole or not at all, on stdout too.
$ printf '0 Q0 D1 1 5 maxsim\n1 Q0 D2 1 5 maxsim\n' > a.trec
$ printf '0 Q0 D7 1 4 maxsim\n2 Q0 D2 1 5 maxsim\n' > b.trec
$ maxsim merge a.trec b.trec
? 2
! maxsim: error: 'b.trec' line 2: expected query '1' (as in 'a.trec' line 2), found '2': shard runs must list the same queries in the same order
$ maxsim merge -o out.trec a.trec b.trec; s=$?; ls out.trec* 2>/dev/null | wc -l; exit $s
? 2
> 0
~ line 2: expected query '1'

# Every error path of merge.
$ printf '0 Q0 D7 1 4 maxsim\n' > short.trec
$ maxsim merge a.trec short.trec
? 2
! maxsim: error: 'short.trec' ends before query '1' ('a.trec' line 2): expected every shard run to list the same queries

$ printf '0 Q0 D1 1 5 maxsim\n0 Q0 D2 3 4 maxsim\n' > gap.trec
$ maxsim merge gap.trec
? 2
! maxsim: error: 'gap.trec' line 2: expected rank 2 of query '0', found 3 (a query listed twice, or lines out of order?)

$ printf '0 Q0 D1 1 5 maxsim\n0 Q0 D2 2 6 maxsim\n' > up.trec
$ maxsim merge up.trec
? 2
! maxsim: error: 'up.trec' line 2: expected scores in descending order within a query, as 'maxsim search' writes them

$ printf '0 Q0 D1 1 5 maxsim\n0\tD2\t2\t4\n' > mixed.trec
$ maxsim merge mixed.trec
? 2
! maxsim: error: 'mixed.trec' line 2: expected a TREC line like the run's first line, found a TSV line

$ printf '0\tD1\t1\t5\n' > one.tsv
$ maxsim merge a.trec one.tsv
? 2
! maxsim: error: 'one.tsv' line 1: expected a trec run like 'a.trec', found a tsv line

$ printf '0 Q0 D1 1 high maxsim\n' > nan.trec
$ maxsim merge nan.trec
? 2
! maxsim: error: 'nan.trec' line 1: expected a score (a number) in field 5

$ printf '0\tD1\t0\t5\n' > r0.tsv
$ maxsim merge r0.tsv
? 2
! maxsim: error: 'r0.tsv' line 1: expected a rank (an integer >= 1) in field 3

$ printf '0 D1 1 5\n' > four.trec
$ maxsim merge four.trec
? 2
! maxsim: error: 'four.trec' line 1: expected 'QID Q0 DOCID RANK SCORE TAG' (6 fields) or 'QID<TAB>DOCID<TAB>RANK<TAB>SCORE' (4 fields)

$ maxsim merge missing.trec
? 2
! maxsim: error: cannot open 'missing.trec': No such file or directory

$ maxsim merge
? 2
! maxsim merge: no runs to merge (give the shard runs in shard order)
! Try 'maxsim merge --help'.

$ maxsim merge - - < a.trec
? 2
! maxsim merge: standard input ('-') can be only one of the runs
! Try 'maxsim merge --help'.

$ maxsim merge -k 0 a.trec
? 2
~ ^maxsim merge: -k takes an integer >= 1

$ maxsim merge -o m.npy a.trec
? 2
! maxsim: error: -o 'm.npy' names npy output, which this command does not write (expected trec or tsv)

$ maxsim merge --run-tag 'a b' a.trec
? 2
~ --run-tag takes one word

$ maxsim merge --bogus a.trec
? 2
~ unknown option '--bogus'

# Blank lines and CRLF line ends are fine; an empty run is a shard without documents.
$ printf '0 Q0 D1 1 5 maxsim\r\n\r\n1 Q0 D2 1 5 maxsim\r\n' > crlf.trec
$ : > empty.trec
$ maxsim merge empty.trec crlf.trec b.trec 2>&1 | head -1
> maxsim: error: 'b.trec' line 2: expected query '1' (as in 'crlf.trec' line 3), found '2': shard runs must list the same queries in the same order
$ maxsim merge empty.trec crlf.trec
> 0 Q0 D1 1 5 maxsim
> 1 Q0 D2 1 5 maxsim

# Errors of --shard and of device lists.
$ maxsim search -q $FIXTURES/cli_q.npy -d $FIXTURES/cli_d.npy --shard 3/3
? 2
! maxsim search: --shard 3/3: expected a shard index from 0 to N-1 of N >= 1
! Try 'maxsim search --help'.

$ maxsim search -q $FIXTURES/cli_q.npy -d $FIXTURES/cli_d.npy --shard 1
? 2
! maxsim search: --shard takes I/N, shard I (from 0) of N (e.g. --shard 0/4), got '1'
! Try 'maxsim search --help'.

$ maxsim search -q $FIXTURES/cli_q.npy -d $FIXTURES/cli_d.npy --shard -1/2
? 2
~ --shard takes I/N

$ maxsim --device 0, search -q $FIXTURES/cli_q.npy --query-lengths $FIXTURES/cli_q_lengths.npy -d $FIXTURES/cli_d.npy --doc-lengths $FIXTURES/cli_d_lengths.npy
? 2
! maxsim: error: bad device list '0,': expected device indices from 'maxsim devices' separated by commas (e.g. 0,2), found ''

$ maxsim --device 0,9 search -q $FIXTURES/cli_q.npy --query-lengths $FIXTURES/cli_q_lengths.npy -d $FIXTURES/cli_d.npy --doc-lengths $FIXTURES/cli_d_lengths.npy
@ needs cpu
? 2
~ ^maxsim: error: no device with index 9 \(devices: 0 CPU

$ maxsim --device 0,1 plaid -q $FIXTURES/plaid_corpus_q.npy -i $FIXTURES/plaid_corpus
? 2
! maxsim: error: --device 0,1: this command runs on one device (search, score and rerank spread over several)

$ maxsim --device all bench --shape 2,10,4,4,16
? 2
! maxsim: error: --device all names several devices; this command runs on one (search, score and rerank spread over several)

# rerank: the candidates' blocks spread over the devices, the same bytes.
$ maxsim rerank -q $FIXTURES/cli_q.npy --query-lengths $FIXTURES/cli_q_lengths.npy -d $FIXTURES/cli_d.npy --doc-lengths $FIXTURES/cli_d_lengths.npy --doc-ids $FIXTURES/cli_d_ids.txt -c $FIXTURES/cli_run.trec > rr1.trec
$ POCL_DEVICES="pthread pthread pthread" maxsim --device all rerank -q $FIXTURES/cli_q.npy --query-lengths $FIXTURES/cli_q_lengths.npy -d $FIXTURES/cli_d.npy --doc-lengths $FIXTURES/cli_d_lengths.npy --doc-ids $FIXTURES/cli_d_ids.txt -c $FIXTURES/cli_run.trec --chunk-docs 3 --query-batch 2 | cmp - rr1.trec && wc -l < rr1.trec
> 276

$ maxsim --device "$(printf '0,%.0s' $(seq 64))0" search -q $FIXTURES/cli_q.npy --query-lengths $FIXTURES/cli_q_lengths.npy -d $FIXTURES/cli_d.npy --doc-lengths $FIXTURES/cli_d_lengths.npy
? 2
~ ^maxsim: error: bad device list '0,0,0,.*': more than 64 devices$
