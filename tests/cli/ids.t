# Ids name the rows of every output (issue 12): an id with whitespace would
# break a TREC or TSV line, and two rows with one id could not be told apart.
# Both are refused when the ids are read, naming the line or row, by every
# command (search took them before; rerank already refused duplicates).

$ sed '3s/.*/doc two/' $FIXTURES/cli_d_ids.txt > space.txt && maxsim search -q $FIXTURES/cli_q.npy -d $FIXTURES/cli_d.npy --doc-lengths $FIXTURES/cli_d_lengths.npy --doc-ids space.txt
? 2
! maxsim: error: 'space.txt' line 3: id contains a space (expected no whitespace in an id)

$ printf 'q1\nq\t2\nq3\nq4\nq5\n' > tab.txt && maxsim score -q $FIXTURES/cli_q.npy -d $FIXTURES/cli_d.npy --doc-lengths $FIXTURES/cli_d_lengths.npy --query-ids tab.txt
? 2
! maxsim: error: 'tab.txt' line 2: id contains a tab (expected no whitespace in an id)

$ printf 'q1\nq2\rx\nq3\nq4\nq5\n' > cr.txt && maxsim search -q $FIXTURES/cli_q.npy -d $FIXTURES/cli_d.npy --doc-lengths $FIXTURES/cli_d_lengths.npy --query-ids cr.txt
? 2
! maxsim: error: 'cr.txt' line 2: id contains a carriage return (expected no whitespace in an id)

# HDF5 string ids (variable-length as h5py writes them, and fixed-length).
$ $PYTHON -c "import h5py, numpy as n; f = h5py.File('s.h5', 'w'); f['embeddings'] = n.ones((3, 2, 4), 'f4'); f['ids'] = n.array(['a', 'b\nc', 'd'], dtype=object).astype(h5py.string_dtype()); g = h5py.File('f.h5', 'w'); g['embeddings'] = n.ones((3, 2, 4), 'f4'); g['ids'] = n.array([b'a', b'b c', b'd'])"
$ maxsim search -q s.h5 -d s.h5
? 2
! maxsim: error: 's.h5' dataset '/ids': id at row 1 contains a newline (expected no whitespace in an id)

$ maxsim search -q f.h5 -d $FIXTURES/cli_d.npy --doc-lengths $FIXTURES/cli_d_lengths.npy
? 2
! maxsim: error: 'f.h5' dataset '/ids': id at row 1 contains a space (expected no whitespace in an id)

# Duplicates: refused by search, score and plaid as by rerank.
$ sed '4s/.*/D1/' $FIXTURES/cli_d_ids.txt > dup.txt && maxsim search -q $FIXTURES/cli_q.npy -d $FIXTURES/cli_d.npy --doc-lengths $FIXTURES/cli_d_lengths.npy --doc-ids dup.txt
? 2
! maxsim: error: 'dup.txt': id 'D1' appears twice (rows 1 and 3)

$ maxsim score -q $FIXTURES/cli_q.npy -d $FIXTURES/cli_d.npy --doc-lengths $FIXTURES/cli_d_lengths.npy --doc-ids dup.txt
? 2
! maxsim: error: 'dup.txt': id 'D1' appears twice (rows 1 and 3)

$ $PYTHON -c "import h5py, numpy as n; f = h5py.File('d.h5', 'w'); f['embeddings'] = n.ones((3, 2, 48), 'f4'); f['ids'] = n.array([7, 8, 7])"
$ maxsim search -q d.h5 -d $FIXTURES/cli_d.npy --doc-lengths $FIXTURES/cli_d_lengths.npy
? 2
! maxsim: error: 'd.h5': id '7' appears twice (rows 0 and 2)
