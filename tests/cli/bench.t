# maxsim bench and the kernel choice: --precision, --tune, and their errors.

# bench names the path that scored (the portable kernels on the CPU; MAXSIM_KERNEL pins them,
# since make test runs this file a second time with MAXSIM_KERNEL=gpu)
$ MAXSIM_KERNEL=portable maxsim bench --shape 1,20,8,9,16 --reps 2 | grep '^path'
@ needs cpu
> path        portable kernels (tile 16 tokens, query block 8)

$ MAXSIM_KERNEL=portable maxsim bench --shape 1,20,8,9,16 --reps 2 --precision f16 --json | grep -c '"path": "portable kernels'
@ needs cpu
> 1

# MAXSIM_KERNEL=gpu: the portable GPU kernel on any device, named with its tiling (few query
# rows: double-buffered slices and 16-byte loads by default, the H200's fastest)
$ MAXSIM_KERNEL=gpu maxsim bench --shape 1,20,8,9,16 --reps 2 | grep '^path'
@ needs cpu
> path        portable GPU kernel (8x4 per work-item, 4x16 work-items, 16 dims a slice, query tile resident, split 1, double-buffered, 16-byte loads)

# fields left out take the default's values, so these name all twelve
$ MAXSIM_KERNEL=gpu MAXSIM_GPU_VARIANT=4,4,2,4,8,0,0,1,1,0,0,0 maxsim bench --shape 1,20,8,9,16 --reps 2 | grep '^path'
@ needs cpu
> path        portable GPU kernel (4x4 per work-item, 2x4 work-items, 8 dims a slice, query tile streamed, split 1)

# double-buffered slices (10th field) are named; a register cap (11th) only where the device's
# compiler takes one (NVIDIA's cl_nv_compiler_options), so PoCL drops it
$ MAXSIM_KERNEL=gpu MAXSIM_GPU_VARIANT=4,4,2,4,8,0,0,1,1,1,128,0 maxsim bench --shape 1,20,8,9,16 --reps 2 | grep '^path'
@ needs cpu
> path        portable GPU kernel (4x4 per work-item, 2x4 work-items, 8 dims a slice, query tile streamed, split 1, double-buffered)

$ MAXSIM_KERNEL=gpu MAXSIM_GPU_VARIANT=4,4,2,4,8,0,0,1,1,2 maxsim bench --shape 1,20,8,9,16 --reps 2
@ needs cpu
? 2
~ db 0 or 1

$ MAXSIM_KERNEL=gpu MAXSIM_GPU_VARIANT=4,4,2 maxsim bench --shape 1,20,8,9,16 --reps 2
@ needs cpu
? 2
~ MAXSIM_GPU_VARIANT='4,4,2': expected tm,tn,rx,cx,bk,qres,wgmul

$ maxsim bench --shape 1,20,8,9,16 --precision f4
? 2
~ --precision takes exact, tf32, f16, f8 or int8, got 'f4'

# f8 needs e4m3 tensor cores: an error elsewhere, before any output
$ maxsim bench --shape 1,20,8,9,16 --precision f8
@ needs cpu
? 2
~ --precision f8 needs the tensor cores of an NVIDIA GPU of compute capability 8.9 or more

$ maxsim score -q $FIXTURES/cli_q.npy -d $FIXTURES/cli_d.npy --doc-lengths $FIXTURES/cli_d_lengths.npy --precision f8 -o $TMP/f8.npy
@ needs cpu
? 2
~ --precision f8 needs

$ test -e $TMP/f8.npy && echo written || echo none
@ needs cpu
> none

# int8 needs s8 tensor cores: the same kind of error elsewhere, before any output
$ maxsim bench --shape 1,20,8,9,16 --precision int8
@ needs cpu
? 2
~ --precision int8 needs the tensor cores of an NVIDIA GPU of compute capability 8.0 or more

$ maxsim search -q $FIXTURES/cli_q.npy -d $FIXTURES/cli_d.npy --doc-lengths $FIXTURES/cli_d_lengths.npy --precision int8 -o $TMP/i8.trec
@ needs cpu
? 2
~ --precision int8 needs

$ test -e $TMP/i8.trec && echo written || echo none
@ needs cpu
> none

# --tune needs a path with variants: on PoCL there is none (unless MAXSIM_KERNEL=gpu puts the
# portable GPU kernel there), and nothing is written
$ MAXSIM_KERNEL=portable maxsim bench --tune --shape 1,20,8,9,16 --reps 2
@ needs cpu
? 2
~ nothing to tune on .*: only the GPU kernels have variants

$ test -e "$MAXSIM_CACHE_DIR/tune.tsv" && echo written || echo none
@ needs cpu
> none

# The portable GPU kernel's variants: the fastest is kept for the class and taken next time
$ MAXSIM_KERNEL=gpu maxsim bench --tune --shape 1,20,8,9,16 --reps 1 | grep -c '^tuned  *[0-9,]*: '
@ needs cpu
> 1

$ grep -c 'gpu dim=16 rows=<=32 docs=few' "$MAXSIM_CACHE_DIR/tune.tsv"
@ needs cpu
> 1

$ MAXSIM_KERNEL=gpu maxsim bench --shape 2,20,8,9,16 --reps 1 | grep -c '^path .*portable GPU kernel.*, tuned$'
@ needs cpu
> 1

$ rm "$MAXSIM_CACHE_DIR/tune.tsv"
@ needs cpu

$ maxsim bench --tune --op search --shape 1,20,8,9,16
? 2
~ --tune times scoring \(--op score\), got --op search

# --precision on the scoring commands: f16 rounds float32 inputs, exact is the default
$ maxsim search -q $FIXTURES/cli_q.npy -d $FIXTURES/cli_d.npy --doc-lengths $FIXTURES/cli_d_lengths.npy --precision exact -k 1 > $TMP/a
$ maxsim search -q $FIXTURES/cli_q.npy -d $FIXTURES/cli_d.npy --doc-lengths $FIXTURES/cli_d_lengths.npy -k 1 > $TMP/b
$ cmp $TMP/a $TMP/b && echo same
> same

$ maxsim score -q $FIXTURES/cli_q.npy -d $FIXTURES/cli_d.npy --precision tf64 -o $TMP/s.npy
? 2
~ --precision takes exact, tf32, f16, f8 or int8, got 'tf64'

# tf32 needs the tensor cores of an NVIDIA GPU (compute capability 8.0+): elsewhere, and on any
# device under MAXSIM_NV_MMA=0, the run goes on in exact float32 after one warning, and writes
# the exact run's bytes
$ MAXSIM_NV_MMA=0 maxsim search -q $FIXTURES/cli_q.npy -d $FIXTURES/cli_d.npy --doc-lengths $FIXTURES/cli_d_lengths.npy -k 3 > $TMP/e3
$ MAXSIM_NV_MMA=0 maxsim search -q $FIXTURES/cli_q.npy -d $FIXTURES/cli_d.npy --doc-lengths $FIXTURES/cli_d_lengths.npy -k 3 --precision tf32 > $TMP/t3 2> $TMP/t3.err
$ cmp $TMP/e3 $TMP/t3 && echo same
> same

$ cat $TMP/t3.err
~ ^maxsim: warning: --precision tf32: '.*' has no tf32 tensor-core path for dim [0-9]+ .*: scoring in exact float32$

$ wc -l < $TMP/t3.err
> 1

$ maxsim score -q $FIXTURES/cli_q.npy -d $FIXTURES/cli_d.npy --doc-lengths $FIXTURES/cli_d_lengths.npy --precision tf32 -o $TMP/t.npy 2>&1
@ needs cpu
~ warning: --precision tf32: .*scoring in exact float32

$ maxsim score -q $FIXTURES/cli_q.npy -d $FIXTURES/cli_d.npy --doc-lengths $FIXTURES/cli_d_lengths.npy -o $TMP/e.npy && cmp $TMP/e.npy $TMP/t.npy && echo same
@ needs cpu
> same

# -q: no warning
$ MAXSIM_NV_MMA=0 maxsim -q score -q $FIXTURES/cli_q.npy -d $FIXTURES/cli_d.npy --doc-lengths $FIXTURES/cli_d_lengths.npy --precision tf32 -o $TMP/t.npy 2>&1 | wc -c
> 0

$ MAXSIM_NV_MMA=0 maxsim search -q $FIXTURES/cli_q.npy -d $FIXTURES/cli_d.npy --doc-lengths $FIXTURES/cli_d_lengths.npy -k 3 > $TMP/run3
$ MAXSIM_NV_MMA=0 maxsim rerank -q $FIXTURES/cli_q.npy -d $FIXTURES/cli_d.npy --doc-lengths $FIXTURES/cli_d_lengths.npy -c $TMP/run3 --precision tf32 2>&1 >/dev/null
~ warning: --precision tf32: .*scoring in exact float32

# bench: the warning, the exact path, and no agreement line (exact against itself)
$ MAXSIM_NV_MMA=0 MAXSIM_KERNEL=portable maxsim bench --shape 1,20,8,9,16 --reps 2 --precision tf32 2>&1 | grep -c -e '^agreement' -e 'warning: --precision tf32'
> 1

$ MAXSIM_NV_MMA=0 MAXSIM_KERNEL=portable maxsim bench --shape 1,20,8,9,16 --reps 2 --precision tf32 --json 2>/dev/null | grep -c '"precision": "exact"'
> 1
