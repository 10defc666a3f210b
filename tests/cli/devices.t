# maxsim devices: the listing, the mark on the default, JSON, and no platform.

$ maxsim devices | grep -c '^\* 0 '
> 1

$ maxsim devices --json | $PYTHON -c "import json,sys; d=json.load(sys.stdin); print(d['picked'], len(d['devices']) >= 1, d['devices'][0]['type'] in ('CPU', 'GPU'))"
> 0 True True

$ maxsim --device cpu devices | grep -c '^\* '
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
