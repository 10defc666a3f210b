# maxsim bench and the kernel choice: --precision, --tune, and their errors.

# bench names the path that scored (the portable kernels on the CPU; MAXSIM_KERNEL pins them,
# since make test runs this file a second time with MAXSIM_KERNEL=gpu)
$ MAXSIM_KERNEL=portable maxsim bench --shape 1,20,8,9,16 --reps 2 | grep '^path'
@ needs cpu
> path        portable kernels (tile 16 tokens, query block 8)

$ MAXSIM_KERNEL=portable maxsim bench --shape 1,20,8,9,16 --reps 2 --precision f16 --json | grep -c '"path": "portable kernels'
@ needs cpu
> 1

# MAXSIM_KERNEL=gpu: the portable GPU kernel on any device, named with its tiling
$ MAXSIM_KERNEL=gpu maxsim bench --shape 1,20,8,9,16 --reps 2 | grep '^path'
@ needs cpu
> path        portable GPU kernel (8x4 per work-item, 4x16 work-items, 16 dims a slice, query tile resident, split 1)

$ MAXSIM_KERNEL=gpu MAXSIM_GPU_VARIANT=4,4,2,4,8,0,0 maxsim bench --shape 1,20,8,9,16 --reps 2 | grep '^path'
@ needs cpu
> path        portable GPU kernel (4x4 per work-item, 2x4 work-items, 8 dims a slice, query tile streamed, split 1)

# double-buffered slices (10th field) are named; a register cap (11th) only where the device's
# compiler takes one (NVIDIA's cl_nv_compiler_options), so PoCL drops it
$ MAXSIM_KERNEL=gpu MAXSIM_GPU_VARIANT=4,4,2,4,8,0,0,1,1,1,128 maxsim bench --shape 1,20,8,9,16 --reps 2 | grep '^path'
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
~ --precision takes exact, f16 or f8, got 'f4'

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

$ maxsim bench --tune --op search --shape 1,20,8,9,16
? 2
~ --tune times scoring \(--op score\), got --op search

# --precision on the scoring commands: f16 rounds float32 inputs, exact is the default
$ maxsim search -q $FIXTURES/cli_q.npy -d $FIXTURES/cli_d.npy --doc-lengths $FIXTURES/cli_d_lengths.npy --precision exact -k 1 > $TMP/a
$ maxsim search -q $FIXTURES/cli_q.npy -d $FIXTURES/cli_d.npy --doc-lengths $FIXTURES/cli_d_lengths.npy -k 1 > $TMP/b
$ cmp $TMP/a $TMP/b && echo same
> same

$ maxsim score -q $FIXTURES/cli_q.npy -d $FIXTURES/cli_d.npy --precision tf32 -o $TMP/s.npy
? 2
~ --precision takes exact, f16 or f8, got 'tf32'
