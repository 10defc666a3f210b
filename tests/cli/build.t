# The kernel build (issue 12): the driver's compiler output never reaches
# stderr by itself (PoCL's clang printed "N warnings generated." even with
# -q); with -v the build log is shown, indented, as the man page says.
# A kernel from MAXSIM_KERNEL_DIR with a #warning; caches off so it compiles.

$ mkdir k && cp $TESTS/../../kernels/*.cl k/ && sed -i '1i #warning a test warning' k/maxsim.cl
$ MAXSIM_KERNEL_DIR=k MAXSIM_CACHE_DIR=off POCL_KERNEL_CACHE=0 maxsim -q search -q $DATA/sample.h5:/queries -d $DATA/sample.h5:/docs -k 1 > /dev/null

$ MAXSIM_KERNEL_DIR=k MAXSIM_CACHE_DIR=off POCL_KERNEL_CACHE=0 maxsim search -q $DATA/sample.h5:/queries -d $DATA/sample.h5:/docs -k 1 > /dev/null

$ MAXSIM_KERNEL_DIR=k MAXSIM_CACHE_DIR=off POCL_KERNEL_CACHE=0 maxsim -v search -q $DATA/sample.h5:/queries -d $DATA/sample.h5:/docs -k 1 2>&1 > /dev/null
@ needs cpu
~ ^maxsim: build log of 'maxsim.cl':$
~ ^maxsim:   .*a test warning
