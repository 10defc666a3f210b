#!/bin/sh
# run-unit.sh - run each Criterion test binary given; fail if any fails.
# Criterion prints its own "Synthesis: Tested: N | Passing: N | Failing: 0" line.
status=0
for t in "$@"; do
    echo "== $t"
    "$t" --jobs 2 || status=1
done
exit $status
