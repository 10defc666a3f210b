# Global options and the command table.

$ maxsim
? 2
~ ^usage: maxsim

$ maxsim --help
~ ^usage: maxsim \[--device <spec>\]
~ ^  search

$ maxsim --version
~ ^maxsim [0-9]+\.[0-9]+\.[0-9]+$

$ maxsim frobnicate
? 2
! maxsim: unknown command 'frobnicate'
! Try 'maxsim --help'.

$ maxsim --bogus search
? 2
! maxsim: unknown option '--bogus'
! Try 'maxsim --help'.

$ maxsim --device
? 2
! maxsim: --device takes a device spec (e.g. --device cpu)
! Try 'maxsim --help'.

$ maxsim --help > /dev/full
? 1
~ cannot write to standard output

# Global options after the command too (issue 12): -v, --quiet, --device;
# there -q stays --queries.
$ maxsim search -q $DATA/sample.h5:/queries -d $DATA/sample.h5:/docs -k 1 -v --device cpu 2>&1 >/dev/null | head -1
@ needs cpu
~ ^maxsim: device [0-9]+: .* \(.*\)$

$ maxsim search -q $DATA/sample.h5:/queries -d $DATA/sample.h5:/docs -k 1 --quiet --progress > /dev/null

$ maxsim score -q $DATA/sample.h5:/queries -d $DATA/sample.h5:/docs --device 99
? 2
~ ^maxsim: error: no device with index 99

$ maxsim devices --json --verbose | $PYTHON -c "import json,sys; print(type(json.load(sys.stdin)).__name__)"
> dict

$ maxsim info $DATA/sample.h5:/docs --quiet | head -1 | cut -c1-4
> FILE

# Standard output is closed once, by the dispatcher, for every command.
$ maxsim search --help > /dev/full
? 1
! maxsim: error: cannot write to standard output: No space left on device

$ maxsim devices > /dev/full
? 1
! maxsim: error: cannot write to standard output: No space left on device
