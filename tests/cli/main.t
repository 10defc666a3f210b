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
