# The exit with a device left to it (a GPU's by default; MAXSIM_RELEASE_DEVICES=0 leaves a
# CPU's too, so these cases take that path everywhere): the driver's teardown goes to a child
# process, and the outputs, the messages and the exit status are the command's own.

$ maxsim search -q $FIXTURES/cli_q.npy -d $FIXTURES/cli_d.npy --doc-lengths $FIXTURES/cli_d_lengths.npy -k 2 -o $TMP/released.trec
$ MAXSIM_RELEASE_DEVICES=0 maxsim search -q $FIXTURES/cli_q.npy -d $FIXTURES/cli_d.npy --doc-lengths $FIXTURES/cli_d_lengths.npy -k 2 -o $TMP/left.trec
$ cmp $TMP/released.trec $TMP/left.trec && wc -l < $TMP/left.trec
> 10

# through a pipe: the reader sees the whole output and its end
$ MAXSIM_RELEASE_DEVICES=0 maxsim search -q $FIXTURES/cli_q.npy -d $FIXTURES/cli_d.npy --doc-lengths $FIXTURES/cli_d_lengths.npy -k 2 | cmp - $TMP/released.trec && echo same
> same

$ maxsim score -q $FIXTURES/cli_q.npy -d $FIXTURES/cli_d.npy --doc-lengths $FIXTURES/cli_d_lengths.npy -o $TMP/released.npy
$ MAXSIM_RELEASE_DEVICES=0 maxsim score -q $FIXTURES/cli_q.npy -d $FIXTURES/cli_d.npy --doc-lengths $FIXTURES/cli_d_lengths.npy -o $TMP/left.npy
$ cmp $TMP/released.npy $TMP/left.npy && echo same
> same

$ MAXSIM_RELEASE_DEVICES=0 maxsim -v search -q $FIXTURES/cli_q.npy -d $FIXTURES/cli_d.npy --doc-lengths $FIXTURES/cli_d_lengths.npy -k 2 -o $TMP/v.trec 2>&1 | grep -c '^maxsim: device left to the exit'
> 1

$ MAXSIM_RELEASE_DEVICES=1 maxsim -v search -q $FIXTURES/cli_q.npy -d $FIXTURES/cli_d.npy --doc-lengths $FIXTURES/cli_d_lengths.npy -k 2 -o $TMP/v.trec 2>&1 | grep -c '^maxsim: device released'
> 1

# a failure after the device was left: its message and status
$ MAXSIM_RELEASE_DEVICES=0 maxsim search -q $FIXTURES/cli_q.npy -d $FIXTURES/cli_d.npy --doc-lengths $FIXTURES/cli_d_lengths.npy -k 2 > /dev/full
? 1
! maxsim: error: cannot write to 'standard output': No space left on device

$ MAXSIM_RELEASE_DEVICES=yes maxsim search -q $FIXTURES/cli_q.npy -d $FIXTURES/cli_d.npy --doc-lengths $FIXTURES/cli_d_lengths.npy -k 2 -o $TMP/w.trec
! maxsim: warning: MAXSIM_RELEASE_DEVICES takes 0 or 1, got 'yes': a GPU's context is left to the exit, a CPU's released
