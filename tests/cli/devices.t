# maxsim devices: the listing, the mark on the default, JSON, and no platform.

$ maxsim devices | grep -c '^\* 0 '
> 1

$ maxsim devices --json | $PYTHON -c "import json,sys; d=json.load(sys.stdin); print(d['picked'], len(d['devices']) >= 1, d['devices'][0]['type'] in ('CPU', 'GPU'))"
> 0 True True

$ maxsim --device cpu devices | grep -c '^\* '
@ needs cpu
> 1

$ mkdir empty && OCL_ICD_VENDORS=$TMP/empty maxsim devices
? 1
! maxsim: error: no OpenCL platform found (install an OpenCL driver, e.g. pocl-opencl-icd for the CPU)

$ mkdir -p empty && OCL_ICD_VENDORS=$TMP/empty maxsim search -q $DATA/queries.npy -d $DATA/sample.h5:/docs
? 1
! maxsim: error: no OpenCL platform found (install an OpenCL driver, e.g. pocl-opencl-icd for the CPU)

$ maxsim --device 7 search -q $DATA/queries.npy -d $DATA/sample.h5:/docs
? 2
~ ^maxsim: error: no device with index 7 \(devices: 0 

$ maxsim --device tpu devices
? 2
~ ^maxsim: error: unknown device 'tpu' \(expected auto, cpu, gpu or an index from 'maxsim devices'\)

$ MAXSIM_DEVICE=tpu maxsim search -q $DATA/queries.npy -d $DATA/sample.h5:/docs
? 2
~ ^maxsim: error: unknown device 'tpu'

$ maxsim devices extra
? 2
~ ^maxsim devices: 

# PoCL lists no platform when it cannot create its cache directory (HOME
# unwritable): say that, not "install a driver" (issue 12).
$ env -u POCL_CACHE_DIR -u XDG_CACHE_HOME HOME=/dev/null maxsim devices
@ needs cpu
? 1
! maxsim: error: no OpenCL platform found; PoCL lists none when it cannot create its cache directory '/dev/null/.cache/pocl': '/dev/null' is not a writable directory (set POCL_CACHE_DIR to a writable directory)

$ env -u POCL_CACHE_DIR -u XDG_CACHE_HOME HOME=/dev/null maxsim search -q $DATA/sample.h5:/queries -d $DATA/sample.h5:/docs
@ needs cpu
? 1
~ ^maxsim: error: no OpenCL platform found; PoCL lists none when it cannot create its cache directory

# --json prints one object: the picked index and the devices.
$ maxsim devices --json | $PYTHON -c "import json,sys; d=json.load(sys.stdin); print(sorted(d))"
> ['devices', 'picked', 'picked_all']

# The device starts on a thread while the inputs are read (issue 10): an unknown device is
# still one line and exit 2, with no output file left behind, in every command that does so.
$ MAXSIM_DEVICE=nonexistent maxsim search -q $DATA/queries.npy -d $DATA/sample.h5:/docs -o s.trec; s=$?; ls; exit $s
? 2
! maxsim: error: unknown device 'nonexistent' (expected auto, cpu, gpu or an index from 'maxsim devices')

$ MAXSIM_DEVICE=nonexistent maxsim score -q $DATA/queries.npy -d $DATA/sample.h5:/docs -o s.npy; s=$?; ls; exit $s
? 2
! maxsim: error: unknown device 'nonexistent' (expected auto, cpu, gpu or an index from 'maxsim devices')

$ MAXSIM_DEVICE=nonexistent maxsim rerank -q $FIXTURES/cli_q.npy -d $FIXTURES/cli_d.h5:/docs -c $FIXTURES/cli_run.trec -o r.trec; s=$?; ls; exit $s
? 2
! maxsim: error: unknown device 'nonexistent' (expected auto, cpu, gpu or an index from 'maxsim devices')

$ MAXSIM_DEVICE=nonexistent maxsim plaid -q $FIXTURES/plaid_corpus_q.npy -i $FIXTURES/plaid_corpus -o p.trec; s=$?; ls; exit $s
? 2
! maxsim: error: unknown device 'nonexistent' (expected auto, cpu, gpu or an index from 'maxsim devices')

$ maxsim --device 0,0 plaid -q $FIXTURES/plaid_corpus_q.npy -i $FIXTURES/plaid_corpus -o p.trec; s=$?; ls; exit $s
? 2
! maxsim: error: --device 0,0: this command runs on one device (search, score and rerank spread over several)

# A bad input is reported as before, not the device's error, and the device thread is waited for.
$ MAXSIM_DEVICE=nonexistent maxsim rerank -q $FIXTURES/cli_q.npy -d $FIXTURES/cli_d.h5:/docs -c missing.trec -o r.trec; s=$?; ls; exit $s
? 2
! maxsim: error: cannot open 'missing.trec': No such file or directory

# -v: how long the device took to start and how much of that overlapped the reading.
$ maxsim -v rerank -q $FIXTURES/cli_q.npy -d $FIXTURES/cli_d.h5:/docs -c $FIXTURES/cli_run.trec 2>&1 >/dev/null | grep -c '^maxsim: device start [0-9.]* s, [0-9.]* s of it while the inputs were read (waited [0-9.]* s)$'
> 1
