# maxsim - late-interaction (ColBERT / ColPali) scoring on OpenCL devices.
#
# One non-recursive Makefile. `make` builds ./maxsim; `make test` runs every
# test (Criterion unit tests, CLI tests, fuzz corpus replay, man page lint,
# kernel syntax check); `make help` lists the targets.

PREFIX  ?= /usr/local
BINDIR  ?= $(PREFIX)/bin
MAN1DIR ?= $(PREFIX)/share/man/man1
PYTHON  ?= /usr/bin/python3
CLANG   ?= clang

# MPI=1: build with Open MPI's mpicc, so that `mpirun -n N maxsim search ...`
# shares the corpus over the ranks (src/cmd_mpi.c); its objects live apart.
MPI     ?= 0
MPICC   ?= mpicc
ifeq ($(MPI),1)
BUILD   ?= build-mpi
CC      := $(MPICC)
MPI_CFLAGS := -DMS_MPI=1
endif
BUILD   ?= build
BIN     ?= maxsim
CC      ?= cc
OPT     ?= -O2 -g
WARN    := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wvla \
           -Wformat=2 -Wcast-qual -Wwrite-strings -Wundef -Wno-unused-parameter
HDF5_CFLAGS := $(shell pkg-config --cflags hdf5 2>/dev/null || echo -I/usr/include/hdf5/serial)
HDF5_LIBS   := $(shell pkg-config --libs hdf5 2>/dev/null || echo -L/usr/lib/x86_64-linux-gnu/hdf5/serial -lhdf5)
ALL_CFLAGS   = -std=c11 -D_GNU_SOURCE $(OPT) $(WARN) $(HDF5_CFLAGS) -Isrc -I$(BUILD)/gen \
               -MMD -MP -pthread $(MPI_CFLAGS) $(SANFLAGS) $(MOREFLAGS) $(CFLAGS)
ALL_LDFLAGS  = -pthread $(SANFLAGS) $(LDFLAGS)
LIBS         = -lOpenCL $(HDF5_LIBS) -lzstd -ljansson -lm $(LDLIBS)

KERNELS   := $(sort $(wildcard kernels/*.cl))
SRCS      := $(sort $(wildcard src/*.c))
LIB_SRCS  := $(filter-out src/main.c,$(SRCS))
LIB_OBJS  := $(LIB_SRCS:src/%.c=$(BUILD)/obj/%.o) $(BUILD)/obj/kernels.o
TEST_SRCS := $(sort $(wildcard tests/test_*.c))
TESTS     := $(TEST_SRCS:tests/%.c=$(BUILD)/tests/%)
FUZZ_SRCS := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_REPLAY := $(FUZZ_SRCS:tests/fuzz/%.c=$(BUILD)/fuzz/%-replay)

ifeq ($(V),1)
Q :=
else
Q := @
endif

## all: build ./maxsim (the default)
all: $(BIN)

# Which build directory ./maxsim was last linked from: switching between
# `make` and `make MPI=1` relinks it even when its objects are older.
FLAVOR := build/.flavor-$(subst /,_,$(BIN))
$(shell mkdir -p build; [ "$$(cat $(FLAVOR) 2>/dev/null)" = "$(BUILD)" ] || echo "$(BUILD)" > $(FLAVOR))

$(BIN): $(BUILD)/obj/main.o $(BUILD)/libmaxsim.a $(FLAVOR)
	@echo "  LD      $@"
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $(BUILD)/obj/main.o $(BUILD)/libmaxsim.a $(LIBS)

$(BUILD)/libmaxsim.a: $(LIB_OBJS)
	@echo "  AR      $@"
	$(Q)rm -f $@ && ar rcs $@ $^

$(BUILD)/obj/%.o: src/%.c | $(BUILD)/gen/kernels.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(ALL_CFLAGS) -c -o $@ $<

# Kernels are embedded as NUL-terminated char arrays; the .cl files stay the
# editable, standalone source (MAXSIM_KERNEL_DIR loads them from disk).
$(BUILD)/gen/kernels.c: $(KERNELS) scripts/embed-cl.sh
	@mkdir -p $(dir $@)
	@echo "  EMBED   $@"
	$(Q)sh scripts/embed-cl.sh $(KERNELS) > $@.tmp && mv $@.tmp $@

$(BUILD)/obj/kernels.o: $(BUILD)/gen/kernels.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/tests/%: tests/%.c tests/testutil.h $(BUILD)/libmaxsim.a
	@mkdir -p $(dir $@)
	@echo "  CC      $@"
	$(Q)$(CC) $(ALL_CFLAGS) -Itests -o $@ $< $(BUILD)/libmaxsim.a $(ALL_LDFLAGS) -lcriterion $(LIBS)

# Fuzz targets linked with a plain main() that replays their corpus (zstd's
# regression driver): they run in `make test` with any compiler.
$(BUILD)/fuzz/%-replay: tests/fuzz/%.c tests/fuzz/replay.c $(BUILD)/libmaxsim.a
	@mkdir -p $(dir $@)
	@echo "  CC      $@"
	$(Q)$(CC) $(ALL_CFLAGS) -o $@ $< tests/fuzz/replay.c $(BUILD)/libmaxsim.a $(ALL_LDFLAGS) $(LIBS)

# Fixtures written by numpy and h5py themselves, so the readers are tested on
# the bytes those libraries really produce.
$(BUILD)/fixtures/.stamp: tests/gen_fixtures.py $(wildcard tests/fixtures_*.py)
	@mkdir -p $(dir $@)
	@echo "  GEN     $(BUILD)/fixtures"
	$(Q)$(PYTHON) tests/gen_fixtures.py $(BUILD)/fixtures && touch $@

## test: run every test (unit, CLI, fuzz corpus replay, man page, kernels)
test: MOREFLAGS += -Werror
test: $(BIN) $(TESTS) $(FUZZ_REPLAY) $(BUILD)/fixtures/.stamp
	$(Q)MAXSIM_FIXTURES=$(BUILD)/fixtures sh tests/run-unit.sh $(TESTS)
	@echo "== the same OpenCL scorer tests through the portable GPU kernel (MAXSIM_KERNEL=gpu)"
	$(Q)MAXSIM_KERNEL=gpu sh tests/run-unit.sh $(BUILD)/tests/test_maxsim
	$(Q)for f in $(FUZZ_REPLAY); do n=$$(basename $$f -replay); \
	    $$f tests/fuzz/corpus/$${n#fuzz_} || exit 1; done
	$(Q)MAXSIM=$(CURDIR)/$(BIN) FIXTURES=$(CURDIR)/$(BUILD)/fixtures bash tests/cli/run.sh tests/cli/*.t
	@echo "== the CLI tests through the portable GPU kernel (MAXSIM_KERNEL=gpu)"
	$(Q)MAXSIM_KERNEL=gpu MAXSIM=$(CURDIR)/$(BIN) FIXTURES=$(CURDIR)/$(BUILD)/fixtures bash tests/cli/run.sh tests/cli/*.t
	$(Q)if command -v $(MPICC) >/dev/null && command -v mpirun >/dev/null; then \
	    $(MAKE) --no-print-directory test-mpi FIXTURES=$(CURDIR)/$(BUILD)/fixtures; \
	else echo "  mpirun tests skipped: no Open MPI (scripts/install-deps installs it)"; fi
	$(Q)$(MAKE) --no-print-directory check-man check-kernels check-format BIN=$(BIN)
	@echo "all tests passed"

## test-mpi: build $(BUILD)-mpi/maxsim (MPI=1) and run the mpirun tests (tests/mpi/*.t)
test-mpi: $(BUILD)/fixtures/.stamp
	$(Q)$(MAKE) --no-print-directory MPI=1 BUILD=$(BUILD)-mpi BIN=$(BUILD)-mpi/maxsim \
	    MOREFLAGS=-Werror $(BUILD)-mpi/maxsim
	$(Q)# Open MPI's own allocations outlive MPI_Finalize: no leak check under make asan here.
	$(Q)# Root and containers (CI): allow root, and no cross-memory attach (needs ptrace).
	$(Q)ASAN_OPTIONS="$$ASAN_OPTIONS:detect_leaks=0" \
	    OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
	    OMPI_MCA_btl_vader_single_copy_mechanism=none \
	    MAXSIM=$(CURDIR)/$(BUILD)-mpi/maxsim FIXTURES=$(or $(FIXTURES),$(CURDIR)/$(BUILD)/fixtures) \
	    bash tests/cli/run.sh tests/mpi/*.t

## asan: run the tests under AddressSanitizer and UBSan (PoCL), in build-asan/
# use_tls=0: with a cold program cache PoCL dlopens LLVM, and LeakSanitizer's walk of that
# thread-local storage crashed ("Tracer caught signal 11", a bogus DTLS range); maxsim keeps no
# heap pointers in thread-local storage, and HDF5's per-thread data is suppressed in lsan.supp
asan:
	ASAN_OPTIONS=detect_leaks=1 LSAN_OPTIONS=use_tls=0:suppressions=$(CURDIR)/tests/lsan.supp:print_suppressions=0 \
	    $(MAKE) test BUILD=build-asan BIN=build-asan/maxsim OPT="-O1 -g" \
	    SANFLAGS="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"

## fuzz: build libFuzzer targets (clang) into build-fuzz/
fuzz:
	$(Q)$(MAKE) --no-print-directory build-fuzz/libmaxsim.a BUILD=build-fuzz CC=$(CLANG) OPT="-O1 -g" \
	    SANFLAGS="-fsanitize=fuzzer-no-link,address,undefined"
	$(Q)for f in $(FUZZ_SRCS); do n=$$(basename $$f .c); \
	    $(CLANG) -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined -Isrc \
	      -o build-fuzz/$$n $$f build-fuzz/libmaxsim.a -pthread $(LIBS) || exit 1; \
	    echo "  built build-fuzz/$$n (run: build-fuzz/$$n tests/fuzz/corpus/$${n#fuzz_})"; done

## check-kernels: clang syntax check of kernels/*.cl as OpenCL C 1.2
check-kernels:
	$(Q)for k in $(KERNELS); do \
	    $(CLANG) -x cl -cl-std=CL1.2 -Xclang -finclude-default-header -fsyntax-only -Werror $$k || exit 1; \
	    $(CLANG) -x cl -cl-std=CL1.2 -Xclang -finclude-default-header -fsyntax-only -Werror -DMS_NVIDIA=1 -DIX_NV_KS=8 $$k || exit 1; done
	@echo "  kernels ok"

## check-man: lint man/maxsim.1 with mandoc and check it names every command and option of --help
check-man: $(BIN)
	$(Q)mandoc -Tlint -W warning man/maxsim.1
	$(Q)sh tests/check-man.sh ./$(BIN) man/maxsim.1
	@echo "  man page ok"

FORMAT_SRCS = src/*.c src/*.h tests/*.c tests/*.h tests/fuzz/*.c scripts/*.c

## format: clang-format the C sources in place
format:
	clang-format -i $(FORMAT_SRCS)

## check-format: fail if a C source differs from what clang-format (.clang-format) writes
check-format:
	$(Q)clang-format --dry-run -Werror $(FORMAT_SRCS)
	@echo "  format ok"

## install: install the binary and man page under $(DESTDIR)$(PREFIX)
install: maxsim
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MAN1DIR)
	install -m 755 maxsim $(DESTDIR)$(BINDIR)/maxsim
	install -m 644 man/maxsim.1 $(DESTDIR)$(MAN1DIR)/maxsim.1

## uninstall: remove what install put there
uninstall:
	rm -f $(DESTDIR)$(BINDIR)/maxsim $(DESTDIR)$(MAN1DIR)/maxsim.1

## clean: remove build outputs
clean:
	rm -rf build build-asan build-fuzz build-mpi build-asan-mpi maxsim

## help: list the targets
help:
	@sed -n 's/^## //p' Makefile

## show: print the effective flags
show:
	@echo "CC=$(CC)"; echo "CFLAGS=$(ALL_CFLAGS)"; echo "LDFLAGS=$(ALL_LDFLAGS)"; echo "LIBS=$(LIBS)"

.PHONY: all test test-mpi asan fuzz check-kernels check-man check-format format install uninstall clean help show
.DELETE_ON_ERROR:

-include $(wildcard $(BUILD)/obj/*.d $(BUILD)/tests/*.d)
