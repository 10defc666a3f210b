# Where -o writes (issue 12): a regular file or a new name gets a temporary
# beside it and an atomic rename; anything else (a device, a FIFO,
# /dev/stdout) is written through, never replaced; a symlink's target is
# replaced, not the link; an existing file keeps its mode. An unusable -o
# fails before any input is read, naming the option (exit 2).
# Device nodes are made in $TMP (mknod, as root; else a link to /dev/null),
# and standard output is named /dev/fd/1 (handled as /dev/stdout is), so a
# regression cannot replace the machine's own /dev/null or /dev/stdout.

$ { mknod null c 1 3 2>/dev/null || ln -s /dev/null null; }
$ maxsim search -q $DATA/sample.h5:/queries -d $DATA/sample.h5:/docs -k 1 -o null && test -c null && ls
> null

$ mknod full c 1 7 2>/dev/null || ln -s /dev/full full
$ maxsim search -q $DATA/sample.h5:/queries -d $DATA/sample.h5:/docs -k 1 -o full; s=$?; test -c full && ls | grep full; exit $s
? 1
> full
! maxsim: error: cannot write to 'full': No space left on device

# .npy and HDF5 are written by offset: a scratch file, copied through.
$ maxsim score -q $DATA/sample.h5:/queries -d $DATA/sample.h5:/docs -o full --format h5; s=$?; test -c full && ls | grep full; exit $s
? 1
> full
! maxsim: error: cannot write to 'full': No space left on device

$ maxsim score -q $DATA/sample.h5:/queries -d $DATA/sample.h5:/docs -o /dev/fd/1 --format npy | $PYTHON -c "import numpy as n, sys, io; a = n.load(io.BytesIO(sys.stdin.buffer.read())); print(a.shape, a.dtype)"
> (4, 500) float32

# /dev/stdout (/dev/fd/1) is the descriptor itself: appending to what the shell opened.
$ echo first > run.trec
$ maxsim search -q $DATA/sample.h5:/queries -d $DATA/sample.h5:/docs -k 1 -o /dev/fd/1 >> run.trec && head -2 run.trec
@ needs cpu
> first
> q1 Q0 doc-0042 1 16.5641651 maxsim

$ mkfifo fifo && { timeout 20 cat fifo > got & } && maxsim search -q $DATA/sample.h5:/queries -d $DATA/sample.h5:/docs -k 1 --format tsv -o fifo && wait && test -p fifo && cat got
@ needs cpu
> q1	doc-0042	1	16.5641651
> q2	doc-0137	1	16.9055138
> q3	doc-0256	1	16.852972
> q4	doc-0499	1	16.7030907

# A symlink: its target is replaced and keeps its mode; the link stays.
$ echo old > target && chmod 640 target && ln -s target link
$ maxsim search -q $DATA/sample.h5:/queries -d $DATA/sample.h5:/docs -k 1 -o link && test -L link && stat -c '%A %n' target && wc -l < target && ls | grep -E 'link|target'
> -rw-r----- target
> 4
> link
> target

$ mkdir sub && ln -s sub/new.tsv dangling && maxsim search -q $DATA/sample.h5:/queries -d $DATA/sample.h5:/docs -k 1 -o dangling && test -L dangling && wc -l < sub/new.tsv
> 4

# An unusable -o fails at once, before any input is read (the inputs here do not exist).
$ maxsim search -q missing.npy -d missing.npy -o ''
? 2
! maxsim: error: -o: expected a file name, got ''

$ mkdir dir && maxsim search -q missing.npy -d missing.npy -o dir
? 2
! maxsim: error: -o: cannot write 'dir': is a directory, expected a file name

$ maxsim score -q missing.npy -d missing.npy -o nodir/s.npy
? 2
! maxsim: error: -o: cannot create 'nodir/s.npy': No such file or directory

$ maxsim rerank -q missing.npy -d missing.npy -c missing.trec -o nodir/r.trec
? 2
! maxsim: error: -o: cannot create 'nodir/r.trec': No such file or directory

$ maxsim search -q missing.npy -d missing.npy --format npy -o nodir/r
? 2
! maxsim: error: -o: cannot create 'nodir/r.scores.npy': No such file or directory

$ maxsim plaid -q missing.npy -i missing -o nodir/r.trec
? 2
! maxsim: error: -o: cannot create 'nodir/r.trec': No such file or directory

# A full disk says why (it said "File exists" once): a 4 KiB tmpfs has no
# room for the 8 KB matrix, which is allocated whole before any scoring; no
# partial file is left.
$ mkdir mnt && mount -t tmpfs -o size=4k tmpfs mnt && { maxsim score -q $DATA/sample.h5:/queries -d $DATA/sample.h5:/docs -o mnt/s.npy; s=$?; ls mnt; umount mnt; exit $s; }
? 1
! maxsim: error: cannot write to 'mnt/s.npy': no room for its 8128 bytes

# The format (issue 12): the name's suffix picks it, --format overrides a
# name without one, a contradiction is an error; checked before any work.
$ maxsim score -q missing.npy -d missing.npy -o s.trec
? 2
! maxsim: error: -o 's.trec' names trec output, which this command does not write (expected tsv, npy or h5)

$ maxsim search -q missing.npy -d missing.npy --format h5 -o r.trec
? 2
! maxsim: error: --format h5 contradicts the name 'r.trec' (a .trec file); give one or the other

$ maxsim rerank -q missing.npy -d missing.npy -c missing.trec -o r.tsv.zst --format trec
? 2
! maxsim: error: --format trec contradicts the name 'r.tsv.zst' (a .tsv file); give one or the other

$ maxsim search -q $DATA/sample.h5:/queries -d $DATA/sample.h5:/docs -k 1 --format tsv -o r.run && head -1 r.run
@ needs cpu
> q1	doc-0042	1	16.5641651

$ maxsim score -q $DATA/sample.h5:/queries -d $DATA/sample.h5:/docs -o s.txt && head -1 s.txt
@ needs cpu
> q1	doc-0000	4.00032616

$ maxsim search -q $DATA/sample.h5:/queries -d $DATA/sample.h5:/docs -k 1 --format npy -o R.NPY && ls R.*
> R.indices.npy
> R.scores.npy

# search's npy output is two new files named after -o: not after a device.
$ maxsim search -q missing.npy -d missing.npy --format npy -o null
? 2
! maxsim: error: -o 'null': npy output is two files, OUT.scores.npy and OUT.indices.npy; expected a file name, not a device or FIFO
