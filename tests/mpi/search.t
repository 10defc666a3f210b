# mpirun (a build with make MPI=1): each rank searches its shard, rank 0
# merges and writes; the bytes equal those of one process. Ranks run on
# PoCL here, oversubscribing the cores. As root (CI containers) mpirun needs
# OMPI_ALLOW_RUN_AS_ROOT=1 and OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 in the
# environment (make test-mpi sets them); -q keeps mpirun's own banner away.
$ maxsim search -q $FIXTURES/cli_q.npy --query-lengths $FIXTURES/cli_q_lengths.npy -d $FIXTURES/cli_dup.npy --doc-lengths $FIXTURES/cli_dup_lengths.npy -k 12 > dup1.trec
$ mpirun -q --oversubscribe -n 3 maxsim search -q $FIXTURES/cli_q.npy --query-lengths $FIXTURES/cli_q_lengths.npy -d $FIXTURES/cli_dup.npy --doc-lengths $FIXTURES/cli_dup_lengths.npy -k 12 --chunk-docs 2 | cmp - dup1.trec && echo same
> same

# More ranks than a shard has documents, -o, TSV and arrays.
$ maxsim search -q $FIXTURES/cli_q.npy --query-lengths $FIXTURES/cli_q_lengths.npy -d $FIXTURES/cli_d.npy --doc-lengths $FIXTURES/cli_d_lengths.npy -k 30 --format tsv > d1.tsv
$ maxsim search -q $FIXTURES/cli_q.npy --query-lengths $FIXTURES/cli_q_lengths.npy -d $FIXTURES/cli_d.npy --doc-lengths $FIXTURES/cli_d_lengths.npy -k 30 -o d1.npy
$ mpirun -q --oversubscribe -n 4 maxsim search -q $FIXTURES/cli_q.npy --query-lengths $FIXTURES/cli_q_lengths.npy -d $FIXTURES/cli_d.npy --doc-lengths $FIXTURES/cli_d_lengths.npy -k 30 -o d4.tsv
$ mpirun -q --oversubscribe -n 2 maxsim search -q $FIXTURES/cli_q.npy --query-lengths $FIXTURES/cli_q_lengths.npy -d $FIXTURES/cli_d.npy --doc-lengths $FIXTURES/cli_d_lengths.npy -k 30 -o d2.npy
$ cmp d1.tsv d4.tsv && cmp d1.scores.npy d2.scores.npy && cmp d1.indices.npy d2.indices.npy && ls | sort | paste -sd' '
> d1.indices.npy d1.scores.npy d1.tsv d2.indices.npy d2.scores.npy d4.tsv dup1.trec
$ mpirun -q --oversubscribe -n 3 maxsim search -q $FIXTURES/cli_q.npy --query-lengths $FIXTURES/cli_q_lengths.npy -d $FIXTURES/cli_dup.npy --doc-lengths $FIXTURES/cli_dup_lengths.npy -k 100 | wc -l
> 75

# Outside mpirun the MPI build is the plain tool.
$ maxsim search -q $FIXTURES/cli_q.npy --query-lengths $FIXTURES/cli_q_lengths.npy -d $FIXTURES/cli_dup.npy --doc-lengths $FIXTURES/cli_dup_lengths.npy -k 12 --shard 0/1 | cmp - dup1.trec && echo same
> same

# An error on one rank only (the NaN of cli_nan is in row 3: rank 2's shard)
# ends the job: one message, that rank's, and no output.
$ mpirun -q --oversubscribe -n 3 maxsim search -q $FIXTURES/cli_q.npy --query-lengths $FIXTURES/cli_q_lengths.npy -d $FIXTURES/cli_nan.npy --doc-lengths $FIXTURES/cli_nan_lengths.npy -o nan.trec; s=$?; ls nan.trec* 2>/dev/null | wc -l; exit $s
? 2
> 0
~ ^maxsim: error: .*cli_nan.npy.*row 3

$ mpirun -q --oversubscribe -n 3 maxsim search -q $FIXTURES/cli_q.npy --query-lengths $FIXTURES/cli_q_lengths.npy -d $FIXTURES/cli_nan.npy --doc-lengths $FIXTURES/cli_nan_lengths.npy 2>&1 | grep -c 'maxsim: error'
> 1

# An error on every rank: still one message.
$ mpirun -q --oversubscribe -n 3 maxsim search -q $FIXTURES/cli_q.npy -d missing.npy
? 2
! maxsim: error: cannot open 'missing.npy': No such file or directory

$ mpirun -q --oversubscribe -n 2 maxsim search -q $FIXTURES/cli_q.npy -d $FIXTURES/cli_d.npy --shard 0/2
? 2
! maxsim search: --shard is not for mpirun: each rank takes its shard
! Try 'maxsim search --help'.

$ mpirun -q --oversubscribe -n 2 maxsim score -q $FIXTURES/cli_q.npy -d $FIXTURES/cli_d.npy
? 2
! maxsim: error: under mpirun only 'search' shares its work over the ranks; run 'score' as one process

# Ranks on different device models (PoCL's pthread and basic devices) could
# round differently: refused before the scoring, with one message.
$ mpirun -q -n 1 maxsim search -q $FIXTURES/cli_q.npy -d $FIXTURES/cli_d.npy --doc-lengths $FIXTURES/cli_d_lengths.npy : -n 1 -x POCL_DEVICES=basic maxsim search -q $FIXTURES/cli_q.npy -d $FIXTURES/cli_d.npy --doc-lengths $FIXTURES/cli_d_lengths.npy
? 2
~ ^maxsim: error: ranks 0 and 1 ran on different devices \('pthread-.*' and 'basic-.*'\): scores could differ in the last bit

# An error on rank 0 only, before the work (its output cannot be created):
# the other ranks stop at the checkpoint, one message.
$ mpirun -q --oversubscribe -n 3 maxsim search -q $FIXTURES/cli_q.npy --query-lengths $FIXTURES/cli_q_lengths.npy -d $FIXTURES/cli_d.npy --doc-lengths $FIXTURES/cli_d_lengths.npy -o no/such/dir/run.trec
? 2
! maxsim: error: -o: cannot create 'no/such/dir/run.trec': No such file or directory
$ mpirun -q --oversubscribe -n 3 maxsim search -q $FIXTURES/cli_q.npy --query-lengths $FIXTURES/cli_q_lengths.npy -d $FIXTURES/cli_d.npy --doc-lengths $FIXTURES/cli_d_lengths.npy -o no/such/dir/run.trec 2>&1 | grep -c error
> 1
