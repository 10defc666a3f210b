# Every bad input of the spine gets exit status 2 and one line naming the
# file (and dataset, row or line), what was expected and what was found.
# Good inputs of every layout first: `info` reports their figures.

$ cd $FIXTURES && maxsim info npy_f32_3d.npy npy_f32_2d.npy npy_f16_3d.npy.zst h5_f16_3d.h5 h5_group.h5:/colbert h5_chunked.h5 | awk '{print $1, $2, $3, $4, $5, $6, $7, $11, $12}'
> FILE FORMAT LAYOUT DTYPE DIM ROWS TOKENS EMPTY IDS
> npy_f32_3d.npy npy padded(5) float32 6 4 20 0 no
> npy_f32_2d.npy npy flat float32 6 1 12 0 no
> npy_f16_3d.npy.zst npy.zst padded(5) float16 6 4 20 0 no
> h5_f16_3d.h5 hdf5 padded(6) float16 8 5 17 1 yes
> h5_group.h5:/colbert hdf5 padded(5) float32 8 4 20 0 no
> h5_chunked.h5 hdf5 padded(10) float16 16 6 60 0 no

$ cd $FIXTURES && maxsim info --check npy_f32_2d.npy.zst --lengths npy_lengths_i4.npy | tail -1 | awk '{print $3, $6, $7}'
~ ^flat [0-9]+ 12$

$ maxsim info $TMP/missing.npy
? 2
! maxsim: error: cannot open '$TMP/missing.npy': No such file or directory

$ maxsim info $FIXTURES/npy_badmagic.npy
? 2
! maxsim: error: '$FIXTURES/npy_badmagic.npy': not a .npy file (bad magic bytes)

$ maxsim info $FIXTURES/npy_truncated.npy
? 2
! maxsim: error: '$FIXTURES/npy_truncated.npy': truncated: shape (4, 5, 6) float32 needs 480 bytes of data, the file has 472

$ maxsim info $FIXTURES/npy_hdrlen.npy
? 2
! maxsim: error: '$FIXTURES/npy_hdrlen.npy': header length 5000 goes beyond the end of the file (the header ends at byte 5010, the file has 200 bytes)

$ maxsim info $FIXTURES/npy_f64.npy
? 2
! maxsim: error: '$FIXTURES/npy_f64.npy': unsupported element type '<f8' (float64); expected float32 '<f4' or float16 '<f2'

$ maxsim info $FIXTURES/npy_i4_emb.npy
? 2
! maxsim: error: '$FIXTURES/npy_i4_emb.npy': unsupported element type '<i4' (int32); expected float32 '<f4' or float16 '<f2'

$ maxsim info $FIXTURES/npy_c16.npy
? 2
! maxsim: error: '$FIXTURES/npy_c16.npy': unsupported element type '<c16' (complex128); expected float32 '<f4' or float16 '<f2'

$ maxsim info $FIXTURES/npy_object.npy
? 2
! maxsim: error: '$FIXTURES/npy_object.npy': unsupported element type '|O' (object); expected float32 '<f4' or float16 '<f2'

$ maxsim info $FIXTURES/npy_fortran.npy
? 2
! maxsim: error: '$FIXTURES/npy_fortran.npy': fortran_order is True; only C-order arrays are supported (numpy.ascontiguousarray)

$ maxsim info $FIXTURES/npy_bigendian.npy
? 2
! maxsim: error: '$FIXTURES/npy_bigendian.npy': unsupported element type '>f4' (big-endian float32); expected little-endian float32 '<f4' or float16 '<f2' (numpy: a.astype('<f4'))

$ maxsim info $FIXTURES/npy_1d.npy
? 2
! maxsim: error: '$FIXTURES/npy_1d.npy': expected a 2-D [tokens, dim] or 3-D [rows, tokens, dim] array, got 1-D shape (5,)

$ maxsim info $FIXTURES/npy_4d.npy
? 2
! maxsim: error: '$FIXTURES/npy_4d.npy': expected a 2-D [tokens, dim] or 3-D [rows, tokens, dim] array, got 4-D shape (2, 2, 2, 2)

$ maxsim info --check $FIXTURES/npy_f32_3d_corrupt.npy.zst
? 2
! maxsim: error: '$FIXTURES/npy_f32_3d_corrupt.npy.zst': corrupt zstd data: Data corruption detected

$ maxsim info --check $FIXTURES/npy_nan.npy
? 2
! maxsim: error: '$FIXTURES/npy_nan.npy': row 2 token 1 holds a NaN or Inf (embeddings must be finite)

$ maxsim info --check $FIXTURES/h5_nan.h5
? 2
! maxsim: error: '$FIXTURES/h5_nan.h5' dataset '/embeddings': row 1 token 2 holds a NaN or Inf (embeddings must be finite)

# Lengths and ids that disagree with the data.
$ $PYTHON -c "import numpy as n; n.save('l3.npy', n.array([5, 5, 5])); n.save('neg.npy', n.array([5, -1, 5, 5])); n.save('wide.npy', n.array([5, 6, 5, 5], dtype=n.int32)); n.save('sum.npy', n.array([5, 6]))"
$ maxsim info $FIXTURES/npy_f32_3d.npy --lengths l3.npy
? 2
! maxsim: error: 'l3.npy' has 3 lengths but '$FIXTURES/npy_f32_3d.npy' has 4 rows

$ maxsim info $FIXTURES/npy_f32_3d.npy --lengths neg.npy
? 2
! maxsim: error: 'neg.npy': negative length -1 at row 1

$ maxsim info $FIXTURES/npy_f32_3d.npy --lengths wide.npy
? 2
! maxsim: error: 'wide.npy': length 6 at row 1 exceeds the padded width 5 of '$FIXTURES/npy_f32_3d.npy'

$ maxsim info $FIXTURES/npy_f32_2d.npy --lengths sum.npy
? 2
! maxsim: error: 'sum.npy': lengths sum to 11 tokens but '$FIXTURES/npy_f32_2d.npy' has 12 tokens

$ printf 'a\nb\n' > ids.txt && maxsim info $FIXTURES/npy_f32_3d.npy --ids ids.txt
? 2
! maxsim: error: 'ids.txt' has 2 ids but '$FIXTURES/npy_f32_3d.npy' has 4 rows

$ maxsim info $FIXTURES/npy_f32_3d.npy --lengths $FIXTURES/npy_f64.npy
? 2
~ ^maxsim: error: '.*npy_f64.npy': .*float64

# HDF5: file, group and dataset missing; not HDF5.
$ maxsim info $TMP/missing.h5
? 2
! maxsim: error: cannot open '$TMP/missing.h5': No such file or directory

$ maxsim info $FIXTURES/h5_f32_2d.h5:/nope
? 2
! maxsim: error: '$FIXTURES/h5_f32_2d.h5': no group '/nope' (the root holds no groups)

$ maxsim info $FIXTURES/h5_ids.h5
? 2
! maxsim: error: '$FIXTURES/h5_ids.h5': no dataset 'embeddings' in group '/' (it holds: bytes, fixutf8, i8, u16, u64, vascii)

$ maxsim info $FIXTURES/h5_not.h5
? 2
! maxsim: error: '$FIXTURES/h5_not.h5': not an HDF5 file
