# maxsim info: figures for each layout, JSON, and errors.

$ cd $DATA && maxsim info queries.npy
> FILE         FORMAT  LAYOUT      DTYPE    DIM  ROWS  TOKENS  MIN  MEAN   MAX  EMPTY  IDS  BYTES
> queries.npy  npy     padded(32)  float16  128  4     128     32   32.00  32   0      no   32896

$ cd $DATA && maxsim info sample.h5:/docs sample.h5:/queries
> FILE                FORMAT  LAYOUT      DTYPE    DIM  ROWS  TOKENS  MIN  MEAN   MAX  EMPTY  IDS  BYTES
> sample.h5:/docs     hdf5    flat        float16  128  500   2492    2    4.98   8    0      yes  701304
> sample.h5:/queries  hdf5    padded(32)  float16  128  4     128     32   32.00  32   0      yes  701304

$ cd $DATA && maxsim info docs.npy --lengths docs_lengths.npy --ids docs_ids.txt
> FILE      FORMAT  LAYOUT  DTYPE    DIM  ROWS  TOKENS  MIN  MEAN  MAX  EMPTY  IDS   BYTES
> docs.npy  npy     flat    float16  128  500   2492    2    4.98  8    0      file  638080

$ cd $DATA && maxsim info --json sample.h5:/docs | $PYTHON -c "import json,sys; d=json.load(sys.stdin)[0]; print(d['layout'], d['dtype'], d['dim'], d['rows'], d['tokens'], d['min_length'], d['max_length'], d['empty_rows'], d['ids'])"
> flat float16 128 500 2492 2 8 0 True

$ maxsim info --check $DATA/sample.h5:/docs | tail -1 | awk '{print $6}'
> 500

$ maxsim info --check $FIXTURES/cli_nan.npy --lengths $FIXTURES/cli_nan_lengths.npy
? 2
! maxsim: error: '$FIXTURES/cli_nan.npy': row 3 token 3 holds a NaN or Inf (embeddings must be finite)

$ maxsim info $FIXTURES/cli_d.npy --lengths $FIXTURES/cli_d_lengths.npy | tail -1 | awk '{print $3, $6, $11}'
> flat 300 3

$ maxsim info
? 2
! maxsim info: no input file (e.g. maxsim info docs.npy)
! Try 'maxsim info --help'.

$ maxsim info $TMP/missing.npy
? 2
! maxsim: error: cannot open '$TMP/missing.npy': No such file or directory

$ maxsim info $DATA/sample.h5:/docs $TMP/missing.npy
? 2
! maxsim: error: cannot open '$TMP/missing.npy': No such file or directory

$ echo hello > $TMP/x.bin && maxsim info $TMP/x.bin
? 2
! maxsim: error: '$TMP/x.bin': unknown format (expected a .npy, .npy.zst or .h5 file)

$ maxsim info $DATA/queries.npy:/g
? 2
! maxsim: error: cannot open '$DATA/queries.npy:/g': No such file or directory

$ maxsim info $DATA/docs.npy --lengths $DATA/docs_lengths.npy --ids $DATA/queries_ids.txt
? 2
! maxsim: error: '$DATA/queries_ids.txt' has 4 ids but '$DATA/docs.npy' has 500 rows

$ maxsim info $DATA/queries.npy --lengths $DATA/docs_lengths.npy
? 2
! maxsim: error: '$DATA/docs_lengths.npy' has 500 lengths but '$DATA/queries.npy' has 4 rows

$ printf 'a\n\nb\n' > $TMP/ids.txt && maxsim info $DATA/queries.npy --ids $TMP/ids.txt
? 2
! maxsim: error: '$TMP/ids.txt' line 2: empty id (expected one id per line)

# The kernel cache: where, how many entries, how many bytes.
$ export MAXSIM_CACHE_DIR=$TMP/kc && maxsim info --cache && maxsim search -q $DATA/queries.npy -d $DATA/sample.h5:/docs > /dev/null && maxsim info --cache | sed 1d | awk '{print $1, ($2 > 0)}'
> cache    $TMP/kc
> entries  0
> bytes    0
> entries 1
> bytes 1

$ MAXSIM_CACHE_DIR=off maxsim info --cache
> cache    off

$ maxsim info --cache data.npy
? 2
! maxsim info: --cache takes no files, got 'data.npy'
! Try 'maxsim info --help'.
