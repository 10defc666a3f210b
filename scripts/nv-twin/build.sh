#!/bin/sh
# build.sh - compile kernels/maxsim_nv.cl and the NVIDIA kernels of kernels/index.cl through their
# CUDA twins for sm_90 with every variant the host can pick, so that ptxas checks the inline PTX;
# print each variant's registers, spills and shared memory (ptxas -v). Runs without a GPU (needs
# nvcc). Usage: sh scripts/nv-twin/build.sh
set -eu
here=$(cd "$(dirname "$0")" && pwd)
NVCC=${NVCC:-/usr/local/cuda/bin/nvcc}
out=${TMPDIR:-/tmp}/maxsim-nv-twin
mkdir -p "$out"
fail=0
# KP MR WC NCH LDSM CPASYNC [RING WARPS NT RTFAST SUMB]: the host's choices (src/maxsim_nv.c
# nv_pick, the staged variants of MAXSIM_NV_VARIANT and bench --tune, MAXSIM_NV_SUM_BATCH) plus
# the fallbacks; the last five default to the double buffer, 4 warps, one tile a step, row tiles
# in dimension 1, ms_nv_sum one load at a time.
while read -r kp mr wc nch ldsm cpa ring warps nt rtfast sumb; do
    ring=${ring:-0} warps=${warps:-4} nt=${nt:-1} rtfast=${rtfast:-0} sumb=${sumb:-1}
    # the stream kernel in the same file: one warp of two 16-token slots above KP 128, as the
    # host's stream_ring shrinks it to fit 40 KiB of __local
    stream="-DMS_NV_SW=1 -DMS_NV_SS=2"
    [ "$kp" -le 128 ] && stream=""
    tag="kp$kp-mr$mr-wc$wc-nch$nch-ldsm$ldsm-cp$cpa-ring$ring-w$warps-nt$nt-rt$rtfast-sb$sumb"
    if "$NVCC" -arch=sm_90 -O3 -c -Xptxas -v,-warn-spills,-warn-lmem-usage \
        -DMS_NV_KP="$kp" -DMS_NV_MR="$mr" -DMS_NV_WC="$wc" -DMS_NV_NCH="$nch" \
        -DMS_NV_LDSM="$ldsm" -DMS_NV_CPASYNC="$cpa" -DMS_NV_RING="$ring" \
        -DMS_NV_WARPS="$warps" -DMS_NV_NT="$nt" -DMS_NV_RTFAST="$rtfast" -DMS_NV_SUMB="$sumb" $stream \
        -o "$out/$tag.o" "$here/maxsim_nv_twin.cu" >"$out/$tag.log" 2>&1; then
        info=$(grep -A2 "ms_nv_score" "$out/$tag.log" | grep -o 'Used [0-9]* registers.*' | head -1)
        spill=$(grep -A2 "ms_nv_score" "$out/$tag.log" | grep -o '[0-9]* bytes spill stores' | head -1)
        echo "ok   $tag: $info; $spill"
    else
        echo "FAIL $tag:"; head -40 "$out/$tag.log"; fail=1
    fi
done <<'VARIANTS'
128 2 1 64 1 1
128 2 2 64 1 1
128 2 4 64 1 1
128 1 4 64 1 1
128 2 1 64 0 0
128 2 1 64 1 0
128 2 1 64 0 1
48 2 1 128 1 1
64 2 4 128 1 1
96 2 1 64 1 1
256 2 1 32 1 1
256 1 2 32 1 1
512 1 1 16 1 1
128 4 1 64 1 1
128 4 1 64 1 1 2
128 4 1 48 1 1 3
128 4 1 32 1 1 4
128 4 1 64 1 1 2 4 2
128 4 1 48 1 1 3 4 2
128 4 1 64 1 1 2 8
128 4 1 48 1 1 3 8
128 4 1 48 1 1 3 8 2
128 2 1 64 1 1 2 8
128 3 1 64 1 1 2
128 3 1 48 1 1 3
128 4 1 64 1 1 2 4 1 1 8
128 4 1 64 1 1 0 4 1 1 16
128 4 1 64 1 1 0 4 2
128 4 2 64 1 1 2 8 2
128 4 1 48 0 0 3 4 2
128 2 1 32 1 1 4 4 2
VARIANTS
# index_assign_nv_tiled: KS (dim / 16) W MT NT CT ST CP, as src/index_cl.c's nv_variant takes them
# (MAXSIM_INDEX_NV_KERNEL=tiled:W:MT:NT:CT:ST:CP); the first line per dim is its default.
while read -r ks w mt nt ct st cp; do
    tag="ix-ks$ks-w$w-mt$mt-nt$nt-ct$ct-st$st-cp$cp"
    if "$NVCC" -arch=sm_90 -O3 -c -Xptxas -v,-warn-spills,-warn-lmem-usage \
        -DIX_NV_KS="$ks" -DIX_NV_W="$w" -DIX_NV_MT="$mt" -DIX_NV_NT="$nt" -DIX_NV_CT="$ct" \
        -DIX_NV_ST="$st" -DIX_NV_CP="$cp" \
        -o "$out/$tag.o" "$here/index_nv_twin.cu" >"$out/$tag.log" 2>&1; then
        for f in index_assign_nv_tiled index_assign_nv; do
            info=$(grep -A2 "Function properties for $f\$" "$out/$tag.log" | grep -o 'Used [0-9]* registers.*' | head -1)
            spill=$(grep -A2 "Function properties for $f\$" "$out/$tag.log" | grep -o '[0-9]* bytes spill stores' | head -1)
            echo "ok   $tag $f: $info; $spill"
        done
    else
        echo "FAIL $tag:"; head -40 "$out/$tag.log"; fail=1
    fi
done <<'VARIANTS'
8 4 4 2 64 2 1
8 4 4 2 64 2 0
8 4 4 1 64 2 1
8 4 2 2 64 2 1
8 8 4 2 64 2 1
8 4 4 2 32 3 1
8 4 4 2 32 4 1
8 4 4 4 64 2 1
8 4 2 4 64 2 1
2 4 4 2 64 2 1
6 4 4 2 64 2 1
16 4 2 2 32 2 1
VARIANTS
# --precision tf32 (-DMS_NV_TF32=1): KP counts halves of float32 rows (2 x dim), the host's
# choices for dims 128 and 256 (stream ring of 1 warp), with the kernel's own rounding (CVT=1:
# arithmetic, 2: cvt.rna) and without. KP MR WC NCH SMR SW SS CVT
while read -r kp mr wc nch smr sw ss cvt; do
    tag="tf32-kp$kp-mr$mr-wc$wc-nch$nch-smr$smr-sw$sw-ss$ss-cvt$cvt"
    if "$NVCC" -arch=sm_90 -O3 -c -Xptxas -v,-warn-spills,-warn-lmem-usage \
        -DMS_NV_TF32=1 -DMS_NV_TF32_CVT="$cvt" -DMS_NV_KP="$kp" -DMS_NV_MR="$mr" \
        -DMS_NV_WC="$wc" -DMS_NV_NCH="$nch" -DMS_NV_SMR="$smr" -DMS_NV_SW="$sw" -DMS_NV_SS="$ss" \
        -o "$out/$tag.o" "$here/maxsim_nv_twin.cu" >"$out/$tag.log" 2>&1; then
        info=$(grep -A2 "ms_nv_score" "$out/$tag.log" | grep -o 'Used [0-9]* registers.*' | head -1)
        sinfo=$(grep -A2 "ms_nv_stream" "$out/$tag.log" | grep -o 'Used [0-9]* registers.*' | head -1)
        spill=$(grep -o "'ms_nv_[a-z]*', [0-9]* bytes spill stores" "$out/$tag.log" | tr '\n' ' ')
        echo "ok   $tag: score $info; stream $sinfo${spill:+; spills: $spill}"
    else
        echo "FAIL $tag:"; grep -E "error|spill" "$out/$tag.log" | head -20; fail=1
    fi
done <<'TF32'
256 2 1 32 2 1 4 0
256 2 1 32 2 1 4 1
256 2 1 32 2 1 4 2
256 1 2 32 2 1 4 1
256 2 2 32 1 1 4 1
512 1 1 16 1 1 2 0
512 1 1 16 1 1 2 1
512 1 1 16 1 1 2 2
16 2 1 64 2 4 4 1
TF32
# --precision int8 (-DMS_NV_I8=1): KP counts halves of two int8 codes (dim / 2 rounded up to 16),
# the host's choices for dims 128, 256 and 512 (staged: MR 4 / 2 / 1 and the column splits of
# small batches; the stream kernel beside it), rings and 8 warps, plain loads. KP MR WC NCH SMR SW
# SS [RING WARPS NT LDSM CPASYNC]
while read -r kp mr wc nch smr sw ss ring warps nt ldsm cpa; do
    ring=${ring:-0} warps=${warps:-4} nt=${nt:-1} ldsm=${ldsm:-1} cpa=${cpa:-1}
    tag="i8-kp$kp-mr$mr-wc$wc-nch$nch-smr$smr-sw$sw-ss$ss-ring$ring-w$warps-nt$nt-ldsm$ldsm-cp$cpa"
    if "$NVCC" -arch=sm_90 -O3 -c -Xptxas -v,-warn-spills,-warn-lmem-usage \
        -DMS_NV_I8=1 -DMS_NV_KP="$kp" -DMS_NV_MR="$mr" -DMS_NV_WC="$wc" -DMS_NV_NCH="$nch" \
        -DMS_NV_SMR="$smr" -DMS_NV_SW="$sw" -DMS_NV_SS="$ss" -DMS_NV_RING="$ring" \
        -DMS_NV_WARPS="$warps" -DMS_NV_NT="$nt" -DMS_NV_LDSM="$ldsm" -DMS_NV_CPASYNC="$cpa" \
        -o "$out/$tag.o" "$here/maxsim_nv_twin.cu" >"$out/$tag.log" 2>&1; then
        info=$(grep -A2 "ms_nv_score" "$out/$tag.log" | grep -o 'Used [0-9]* registers.*' | head -1)
        sinfo=$(grep -A2 "ms_nv_stream" "$out/$tag.log" | grep -o 'Used [0-9]* registers.*' | head -1)
        spill=$(grep -o "'ms_nv_[a-z0-9_]*', [0-9]* bytes spill stores" "$out/$tag.log" | grep -v ' 0 bytes' | tr '\n' ' ')
        echo "ok   $tag: score $info; stream $sinfo${spill:+; spills: $spill}"
    else
        echo "FAIL $tag:"; grep -E "error|spill" "$out/$tag.log" | head -20; fail=1
    fi
done <<'I8'
64 4 1 64 2 4 4
64 2 1 64 2 2 3
64 2 2 64 1 4 4
64 1 4 64 1 4 4
64 4 1 64 2 4 4 2
64 4 1 48 2 4 4 3
64 4 1 64 2 4 4 2 4 2
64 4 1 64 2 4 4 2 8
64 4 1 64 2 4 4 0 4 1 0 0
128 4 1 64 2 2 4
128 2 4 64 2 2 3
256 2 1 32 2 1 4
256 1 2 32 1 1 4
I8
exit $fail
