#!/usr/bin/env bash
# run.sh - run CLI test files (tests/cli/*.t): tests as data, in jq's spirit.
#
# A .t file is a list of cases separated by blank lines; '#' lines are comments.
#   $ COMMAND      run with bash; `maxsim` is the binary under test; $FIXTURES,
#                  $DATA (the repo's data/) and $TMP (a fresh directory per
#                  file) are set; more '$' lines continue the same command
#   ? STATUS       expected exit status (default 0)
#   > LINE         expected stdout, line by line, exactly (if any '>' line)
#   ! LINE         expected stderr, exactly (if any '!' line); with no '!'
#                  line, a case expecting status 0 must print nothing on stderr
#   ~ REGEX        stdout+stderr must contain a line matching REGEX (grep -E)
#   = FILE         stdout must equal the contents of FILE (after expansion)
#   @ needs TAG..  run only where each TAG holds, else count the case skipped:
#                  zstd (the zstd command is installed), cpu (maxsim's default
#                  device is a CPU, PoCL, as in CI: cases that print its score
#                  digits, pick --device cpu or several PoCL devices, or name
#                  the portable kernels; a GPU machine skips them)
# In expected lines $FIXTURES, $DATA and $TMP stand for their values.
# Usage: MAXSIM=./maxsim FIXTURES=build/fixtures bash tests/cli/run.sh tests/cli/*.t
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
: "${MAXSIM:=$root/maxsim}"
: "${FIXTURES:=$root/build/fixtures}"
export FIXTURES DATA="$root/data" TESTS="$root/tests/cli" PYTHON="${PYTHON:-/usr/bin/python3}"
bindir=$(mktemp -d)
ln -s "$MAXSIM" "$bindir/maxsim"
export PATH="$bindir:$PATH"
export MAXSIM_CACHE_DIR="${MAXSIM_CACHE_DIR:-$bindir/cache}"
export LC_ALL=C # `ls`, `sort` and friends in the cases order bytes, not a locale's collation
pass=0
fail=0
skip=0
skipped=""
have_zstd=0 have_cpu=0
command -v zstd >/dev/null 2>&1 && have_zstd=1
maxsim devices 2>/dev/null | grep -Eq '^\* [0-9]+ +CPU ' && have_cpu=1
unmet() { # the first tag of "$1" that does not hold here, if any
    local t
    for t in $1; do
        case $t in
        zstd) [ $have_zstd = 1 ] || { echo zstd; return; } ;;
        cpu) [ $have_cpu = 1 ] || { echo cpu; return; } ;;
        *) echo "unknown tag $t"; return ;;
        esac
    done
}

run_case() {
    local file=$1 line=$2 cmd=$3 want_status=$4 want_out=$5 want_err=$6 regexes=$7 have_out=$8 have_err=$9 eqfile=${10}
    local out err status ok=1 why=""
    # expected text may name $FIXTURES, $DATA, $TESTS and $TMP
    want_out=${want_out//\$FIXTURES/$FIXTURES}; want_out=${want_out//\$DATA/$DATA}; want_out=${want_out//\$TMP/$TMP}
    want_err=${want_err//\$FIXTURES/$FIXTURES}; want_err=${want_err//\$DATA/$DATA}; want_err=${want_err//\$TMP/$TMP}
    out=$(mktemp) err=$(mktemp)
    (cd "$TMP" && bash -c "$cmd") >"$out" 2>"$err" </dev/null
    status=$?
    if [ "$status" != "$want_status" ]; then ok=0; why="exit status $status, expected $want_status"; fi
    if [ $ok = 1 ] && [ "$have_out" = 1 ] && [ "$(cat "$out")" != "$want_out" ]; then
        ok=0; why="stdout differs:\n--- expected\n$want_out\n--- got\n$(head -c 4000 "$out")"; fi
    if [ $ok = 1 ] && [ -n "$eqfile" ]; then
        eqfile=$(eval echo "$eqfile")
        if ! cmp -s "$out" "$eqfile"; then ok=0; why="stdout differs from $eqfile"; fi
    fi
    if [ $ok = 1 ] && [ "$have_err" = 1 ] && [ "$(cat "$err")" != "$want_err" ]; then
        ok=0; why="stderr differs:\n--- expected\n$want_err\n--- got\n$(head -c 4000 "$err")"; fi
    if [ $ok = 1 ] && [ "$have_err" = 0 ] && [ "$want_status" = 0 ] && [ -s "$err" ]; then
        ok=0; why="unexpected stderr:\n$(head -c 2000 "$err")"; fi
    if [ $ok = 1 ] && [ -n "$regexes" ]; then
        while IFS= read -r re; do
            [ -z "$re" ] && continue
            if ! cat "$out" "$err" | grep -Eq -- "$re"; then ok=0; why="no line matches /$re/"; break; fi
        done <<<"$regexes"
    fi
    if [ $ok = 1 ]; then
        pass=$((pass + 1))
    else
        fail=$((fail + 1))
        printf 'FAIL %s:%s: %s\n' "$file" "$line" "$cmd"
        printf "  %b\n" "$why"
    fi
    rm -f "$out" "$err"
}

for file in "$@"; do
    TMP=$(mktemp -d)
    export TMP
    cmd="" start=0 status=0 out="" err="" res="" hout=0 herr=0 eqf="" needs="" n=0
    flush() {
        if [ -n "$cmd" ]; then
            local why
            why=$(unmet "$needs")
            case $why in
            '') run_case "$file" "$start" "$cmd" "$status" "$out" "$err" "$res" "$hout" "$herr" "$eqf" ;;
            unknown*) fail=$((fail + 1)); echo "FAIL $file:$start: @ needs: $why" ;;
            *) skip=$((skip + 1)); skipped="$skipped $why" ;;
            esac
        fi
        cmd="" status=0 out="" err="" res="" hout=0 herr=0 eqf="" needs=""
    }
    while IFS= read -r l || [ -n "$l" ]; do
        n=$((n + 1))
        case "$l" in
        '$ '*) if [ -n "$cmd" ] && [ "$prev" = cmd ]; then cmd="$cmd"$'\n'"${l#\$ }"; else flush; cmd=${l#\$ }; start=$n; fi; prev=cmd; continue ;;
        '? '*) status=${l#? } ;;
        '> '*|'>') if [ $hout = 1 ]; then out="$out"$'\n'"${l#> }"; else out=${l#> }; fi; [ "$l" = '>' ] && out="${out%>}"; hout=1 ;;
        '! '*) if [ $herr = 1 ]; then err="$err"$'\n'"${l#! }"; else err=${l#! }; fi; herr=1 ;;
        '~ '*) res="$res"$'\n'"${l#\~ }" ;;
        '= '*) eqf=${l#= } ;;
        '@ needs '*) needs="$needs ${l#@ needs }" ;;
        ''|'#'*) ;;
        *) echo "$file:$n: cannot parse line: $l" >&2; fail=$((fail + 1)) ;;
        esac
        prev=other
    done <"$file"
    flush
    rm -rf "$TMP"
done
rm -rf "$bindir"
if [ $skip = 0 ]; then
    echo "cli: $pass passed, $fail failed"
else
    echo "cli: $pass passed, $fail failed, $skip skipped (needing:$(printf '%s\n' $skipped | sort | uniq -c | awk '{printf " %s %s", $2, $1}'))"
fi
[ "$fail" = 0 ]
