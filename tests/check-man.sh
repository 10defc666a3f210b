#!/bin/sh
# check-man.sh - the man page and --help must agree: every command listed by
# `maxsim --help` and every long option of `maxsim CMD --help` must appear in
# man/maxsim.1 (git's t0450 idea).
# Usage: sh tests/check-man.sh ./maxsim man/maxsim.1
set -u
bin=$1 man=$2
text=$(mandoc -Tutf8 "$man" | col -b)
status=0
cmds=$("$bin" --help | awk '/^commands:/{f=1;next} /^$/{f=0} f{print $1}')
for c in $cmds; do
    echo "$text" | grep -q "maxsim $c\b\|^ *$c\b\| $c \[" || { echo "check-man: command '$c' is not in $man"; status=1; }
    for o in $("$bin" "$c" --help | grep -o -- '--[a-z][a-z0-9-]*' | sort -u); do
        echo "$text" | grep -q -- "$o" || { echo "check-man: option '$o' of '$c' is not in $man"; status=1; }
    done
done
for o in $("$bin" --help | grep -o -- '--[a-z][a-z0-9-]*' | sort -u); do
    echo "$text" | grep -q -- "$o" || { echo "check-man: global option '$o' is not in $man"; status=1; }
done
exit $status
