#!/bin/sh
# index-h200.sh - on an NVIDIA GPU (the H200), check and time each shape of maxsim index's
# tensor-core assignment kernel without recompiling: MAXSIM_INDEX_NV_KERNEL=old (the older
# index_assign_nv), tiled (index_assign_nv_tiled, the default) and tiled:W:MT:NT:CT:ST:CP
# (src/index_cl.c). Per variant: test_index (every comparison with the float32 kernels),
# data/sample.h5's index (its SHA-256 must be the reference) and the float16 pass's kernel
# time on a random corpus of ~2.1 M tokens, dim 128, 65,536 centroids, 2 k-means iterations,
# as TFLOP/s (points x centroids x dim x 2 / seconds). test_nv_layout (CPU only) runs once.
# Run from the repository root after `. .gpu/env.sh`: sh scripts/nv-twin/index-h200.sh
set -u
export MAXSIM_FIXTURES=${MAXSIM_FIXTURES:-build/fixtures}
REF=adc1b0da74ba8fdd94a0ec39fe32e9f36970c8e20176578a04d9b1d23902f40b
TMP=${TMPDIR:-/tmp}/ixh200
DOCS=${DOCS:-12000} # the timing corpus: DOCS documents of 100..250 tokens, K centroids
K=${K:-65536}
VARIANTS=${VARIANTS:-"old tiled tiled:4:4:1:64:2:1 tiled:8:4:2:64:2:1 tiled:4:4:2:32:3:1 tiled:4:2:4:64:2:1 tiled:4:2:2:64:2:1 tiled:4:4:2:64:2:0"}
mkdir -p "$TMP"
echo "test_nv_layout: $(build/tests/test_nv_layout 2>&1 | grep -o 'Tested.*')"
"${PYTHON:-python3}" scripts/gen-corpus.py "$TMP/c" --docs "$DOCS" --min-len 100 --max-len 250 >/dev/null
for v in $VARIANTS; do
    export MAXSIM_INDEX_NV_KERNEL=$v
    ti=$(build/tests/test_index 2>&1 | grep -o 'Tested.*')
    rm -rf "$TMP/s"
    ./maxsim -v index -d data/sample.h5:/docs -o "$TMP/s" --nbits 2 --centroids 64 \
        2>"$TMP/s.log" >/dev/null
    sha=$(cd "$TMP/s" && cat $(LC_ALL=C ls) | sha256sum | cut -d' ' -f1)
    [ "$sha" = "$REF" ] && ok=yes || ok="NO ($sha)"
    rm -rf "$TMP/big"
    t0=$(date +%s.%N)
    ./maxsim -v index -d "$TMP/c.npy" --doc-lengths "$TMP/c_lengths.npy" -o "$TMP/big" \
        --centroids "$K" --kmeans-iters 2 --nbits 2 2>"$TMP/big.log" >/dev/null
    t1=$(date +%s.%N)
    echo "== $v"
    echo "   test_index: $ti"
    echo "   sample.h5 sha256 ok: $ok; $(grep -o 'assignment.*' "$TMP/s.log")"
    grep -o 'assignment.*' "$TMP/big.log" | sed 's/^/   big: /'
    "${PYTHON:-python3}" - "$TMP/big.log" "$t0" "$t1" "$K" <<'PY'
import re, sys
log = open(sys.argv[1]).read()
m = re.search(r"of (\d+) points re-checked.*?kernels ([\d.]+) s float16, ([\d.]+) s re-check", log)
if not m:
    print("   big: no assignment line; log tail:", log[-400:])
else:
    pts, f16, rc = int(m.group(1)), float(m.group(2)), float(m.group(3))
    tf = pts * int(sys.argv[4]) * 128 * 2 / f16 / 1e12 if f16 > 0 else 0
    print(f"   big: {pts} points, float16 pass {f16:.3f} s = {tf:.1f} TFLOP/s, re-check {rc:.3f} s,"
          f" whole build {float(sys.argv[3]) - float(sys.argv[2]):.2f} s")
PY
done
# a malformed variant: exit 2 and one line
MAXSIM_INDEX_NV_KERNEL=tiled:3 ./maxsim index -d data/sample.h5:/docs -o "$TMP/bad" --nbits 2 \
    --centroids 64 2>"$TMP/bad.log"
echo "bad variant: exit $? ($(wc -l <"$TMP/bad.log") line: $(cat "$TMP/bad.log"))"
