# Interrupted runs leave no output and no temporary file, and die of the signal.

$ $PYTHON $DATA/../scripts/gen-corpus.py big --docs 3000 --min-len 50 --max-len 60 --queries 64 > /dev/null
$ maxsim search -q big_queries.npy -d big.npy --doc-lengths big_lengths.npy --chunk-docs 1 -o out.trec & pid=$!
$ for i in $(seq 100); do ls out.trec.tmp.* >/dev/null 2>&1 && break; sleep 0.1; done
$ kill -INT $pid; wait $pid; echo "status $?"; ls out.trec* 2>/dev/null | wc -l
> status 130
> 0
