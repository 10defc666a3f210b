#!/bin/sh
# run-unit.sh - run each Criterion test binary given; fail if any fails.
# Criterion prints its own "Synthesis: Tested: N | Passing: N | Failing: 0" line.
# Criterion ignores the exit status LeakSanitizer gives a test process, so
# under `make asan` the output is also searched for sanitizer reports.
status=0
log=$(mktemp)
for t in "$@"; do
    echo "== $t"
    "$t" --jobs 2 >"$log" 2>&1 || status=1
    cat "$log"
    if grep -q -e 'ERROR: LeakSanitizer' -e 'ERROR: AddressSanitizer' -e 'runtime error:' "$log"; then
        echo "$t: sanitizer report above"
        status=1
    fi
done
rm -f "$log"
exit $status
