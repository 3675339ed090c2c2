# daxpmem — build, install, test, demo, bench.
#   make            build the library and tools (cargo, release)
#   make demo       build and run the demo C program against the installed library,
#                   and the Rust one (examples/wal.rs)
#   make test       every test: cargo tests, header and symbol checks, C and C++ tests
#                   against the library installed into a temporary prefix
#   make install    PREFIX=/usr/local DESTDIR=   (make uninstall removes it again)
#   make bench      benchmarks against PMDK's libpmem, as ratios
#   make torture    the torture suite of issue 13 (c-tests/torture), also run by make test
#   make test-pmdk  PMDK 1.12.1's own libpmem tests against our libpmem.so.1 and Debian's
#   make test-dax   the C tests inside a QEMU guest with a real fsdax filesystem
#   make bench-dax  the sync benchmark in that guest; make test-devdax: device DAX
#   make header     regenerate include/daxpmem.h from src/ffi/ (cbindgen)
#   make deb        Debian packages in target/deb; make test-packages installs and tests them
#   make man        man pages (scdoc); make bench-plot: the sync chart (packaging.mk)

PREFIX     ?= /usr/local
LIBDIR     ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
BINDIR     ?= $(PREFIX)/bin
DESTDIR    ?=
CARGO      ?= cargo
CC         ?= cc
CXX        ?= c++

VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
MAJOR   := $(firstword $(subst ., ,$(VERSION)))
LIB     := target/release/libdaxpmem.so
TMP     := $(CURDIR)/target/tmp
TPREFIX := $(TMP)/prefix
TBIN    := $(TMP)/c-tests
PKGENV   = PKG_CONFIG_PATH=$(TPREFIX)/lib/pkgconfig
CWARN   := -Wall -Wextra -Werror -pedantic
CTESTS  := test_flush test_map test_dax test_track test_uffd test_track_proc test_signals test_fds

.PHONY: all build install uninstall test test-rust check-symbols check-header c-tests \
        demo bench test-dax header clean tmp-install c-tests-build test-unprivileged \
        preload-bench-dax torture torture-build

all: build

build:
	$(CARGO) build --release --bins --lib

$(LIB): build

install: build
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(BINDIR)
	install -m 755 $(LIB) $(DESTDIR)$(LIBDIR)/libdaxpmem.so.$(VERSION)
	ln -sf libdaxpmem.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libdaxpmem.so.$(MAJOR)
	ln -sf libdaxpmem.so.$(MAJOR) $(DESTDIR)$(LIBDIR)/libdaxpmem.so
	install -m 644 include/daxpmem.h $(DESTDIR)$(INCLUDEDIR)/daxpmem.h
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' \
	    -e 's|@VERSION@|$(VERSION)|' pkgconfig/daxpmem.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/daxpmem.pc
	install -m 755 target/release/daxpmem-info $(DESTDIR)$(BINDIR)/daxpmem-info

uninstall:
	rm -f $(DESTDIR)$(LIBDIR)/libdaxpmem.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libdaxpmem.so.$(MAJOR) \
	      $(DESTDIR)$(LIBDIR)/libdaxpmem.so $(DESTDIR)$(INCLUDEDIR)/daxpmem.h \
	      $(DESTDIR)$(LIBDIR)/pkgconfig/daxpmem.pc $(DESTDIR)$(BINDIR)/daxpmem-info

# Install into a private prefix: the C tests, the demo and the benchmarks build against it.
tmp-install:
	rm -rf $(TPREFIX)
	$(MAKE) --no-print-directory install PREFIX=$(TPREFIX) DESTDIR= INSTALL_MAN=no

test: test-rust check-header check-symbols c-tests test-unprivileged

test-rust:
	$(CARGO) test --release --features seam
	$(CARGO) test --release --features memmap2 --test api
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --no-deps --features memmap2

check-header:
	$(CARGO) test --release --test header

header:
	DAXPMEM_BLESS=1 $(CARGO) test --release --test header

# The exported dynamic symbols are exactly the documented C API (symbols/daxpmem.syms).
check-symbols: build
	nm -D --defined-only $(LIB) | awk '{print $$3}' | sort > $(TMP).syms
	diff -u symbols/daxpmem.syms $(TMP).syms && echo "exported symbols: exact"

$(TBIN)/%_c: c-tests/%.c c-tests/check.h tmp-install
	@mkdir -p $(TBIN)
	$(CC) -std=c11 $(CWARN) -D_GNU_SOURCE -O1 -o $@ $< $$($(PKGENV) pkg-config --cflags --libs daxpmem) \
	    -Wl,-rpath,$$($(PKGENV) pkg-config --variable=libdir daxpmem)

$(TBIN)/%_cxx: c-tests/%.c c-tests/check.h tmp-install
	@mkdir -p $(TBIN)
	$(CXX) -x c++ -std=c++17 $(CWARN) -D_GNU_SOURCE -O1 -o $@ $< $$($(PKGENV) pkg-config --cflags --libs daxpmem) \
	    -Wl,-rpath,$$($(PKGENV) pkg-config --variable=libdir daxpmem)

c-tests-build: tmp-install $(foreach t,$(CTESTS),$(TBIN)/$(t)_c $(TBIN)/$(t)_cxx)

# The tmpfs directory is per tree: trees of one repository test side by side.
SHMTEST := /dev/shm/daxpmem-c-tests.$(notdir $(CURDIR))
c-tests: c-tests-build
	mkdir -p $(TMP)/disk && rm -rf $(TMP)/disk/* $(SHMTEST) && mkdir -p $(SHMTEST)
	c-tests/run.sh $(TBIN) $(SHMTEST) $(TMP)/disk
	rm -rf $(SHMTEST)

# The C tests again as an unprivileged user (daxpmem-test, created when missing): the
# permission checks and every path that behaves differently without root. Needs root to
# create the user; as another user it says so and runs nothing.
UNPRIV := /tmp/daxpmem-unpriv.$(notdir $(CURDIR))
test-unprivileged: c-tests-build
	@if [ "$$(id -u)" != 0 ]; then echo "test-unprivileged: skipped (needs root to create the test user)"; exit 0; fi; \
	set -e; \
	id daxpmem-test >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin daxpmem-test; \
	rm -rf $(UNPRIV) /dev/shm/daxpmem-unpriv.$(notdir $(CURDIR)); mkdir -p $(UNPRIV)/bin $(UNPRIV)/lib $(UNPRIV)/disk; \
	cp $(TBIN)/* $(UNPRIV)/bin/; cp -P $(TPREFIX)/lib/libdaxpmem.so* $(UNPRIV)/lib/; cp c-tests/run.sh $(UNPRIV)/; \
	chmod -R a+rX $(UNPRIV); chown daxpmem-test $(UNPRIV)/disk; install -d -o daxpmem-test /dev/shm/daxpmem-unpriv.$(notdir $(CURDIR)); \
	runuser -u daxpmem-test -- env LD_LIBRARY_PATH=$(UNPRIV)/lib $(UNPRIV)/run.sh $(UNPRIV)/bin /dev/shm/daxpmem-unpriv.$(notdir $(CURDIR)) $(UNPRIV)/disk; \
	rm -rf $(UNPRIV) /dev/shm/daxpmem-unpriv.$(notdir $(CURDIR))

# The torture suite of issue 13 (c-tests/torture/run.sh): every case is its own run of a
# program built against the installed library, under `timeout` (a hang fails); one line
# per case, then "torture: N passed, M failed". As root it runs a second time as the
# unprivileged test user (daxpmem-test, as test-unprivileged), where the root-only case
# (a failed msync on a loop device) skips. TORTURE_ONLY=REGEX runs a subset.
TBIN_T     := $(TMP)/torture
TSHM       := /dev/shm/daxpmem-torture
TUNPRIV    := /tmp/daxpmem-torture-unpriv
$(TBIN_T)/torture: c-tests/torture/torture.c c-tests/torture/torture.h tmp-install
	@mkdir -p $(TBIN_T)
	$(CC) -std=c11 $(CWARN) -D_GNU_SOURCE -O1 -pthread -o $@ $< $$($(PKGENV) pkg-config --cflags --libs daxpmem) \
	    -Wl,-rpath,$$($(PKGENV) pkg-config --variable=libdir daxpmem)

$(TBIN_T)/plfork: c-tests/torture/plfork.c c-tests/torture/torture.h
	@mkdir -p $(TBIN_T)
	$(CC) -std=c11 $(CWARN) -D_GNU_SOURCE -O1 -pthread -o $@ $<

torture-build: tmp-install $(TBIN_T)/torture $(TBIN_T)/plfork

torture: torture-build
	@rm -rf $(TSHM) && mkdir -p $(TSHM); \
	TORTURE_PRELOAD=$(TPREFIX)/lib/libdaxpmem-preload.so c-tests/torture/run.sh $(TBIN_T) $(TSHM); rc=$$?; \
	rm -rf $(TSHM); \
	if [ "$$(id -u)" != 0 ]; then echo "torture (unprivileged pass): skipped (needs root to create the test user)"; exit $$rc; fi; \
	id daxpmem-test >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin daxpmem-test || exit 1; \
	rm -rf $(TUNPRIV) $(TSHM)-unpriv; mkdir -p $(TUNPRIV)/bin $(TUNPRIV)/lib || exit 1; \
	cp $(TBIN_T)/torture $(TBIN_T)/plfork $(TUNPRIV)/bin/ && cp c-tests/torture/run.sh $(TUNPRIV)/ && \
	cp -P $(TPREFIX)/lib/libdaxpmem.so* $(TPREFIX)/lib/libdaxpmem-preload.so* $(TUNPRIV)/lib/ && \
	chmod -R a+rX $(TUNPRIV) && install -d -o daxpmem-test $(TSHM)-unpriv || exit 1; \
	echo "torture, again as the unprivileged user daxpmem-test:"; \
	runuser -u daxpmem-test -- env LD_LIBRARY_PATH=$(TUNPRIV)/lib TMPDIR=$(TSHM)-unpriv \
	    TORTURE_PRELOAD=$(TUNPRIV)/lib/libdaxpmem-preload.so $(if $(TORTURE_ONLY),TORTURE_ONLY='$(TORTURE_ONLY)') \
	    $(TUNPRIV)/run.sh $(TUNPRIV)/bin $(TSHM)-unpriv/d; rc2=$$?; \
	rm -rf $(TUNPRIV) $(TSHM)-unpriv; \
	[ $$rc = 0 ] && [ $$rc2 = 0 ]

demo: tmp-install
	@mkdir -p $(TMP)
	$(CC) -std=c11 $(CWARN) -O2 -o $(TMP)/demo examples/demo.c $$($(PKGENV) pkg-config --cflags --libs daxpmem) \
	    -Wl,-rpath,$$($(PKGENV) pkg-config --variable=libdir daxpmem)
	$(TMP)/demo $${DEMO_DIR:-/dev/shm}
	$(CARGO) run --release --example wal -- $${DEMO_DIR:-/dev/shm}

# The C tests inside a QEMU guest with a real fsdax filesystem (c-tests/daxvm/README.md):
# the C tests, the shadow test of every tracking mode on DAX, the preload on DAX.
test-dax: c-tests-build preload-test
	rm -rf $(TMP)/dax-suite && mkdir -p $(TMP)/dax-suite/lib
	cp $(foreach t,$(CTESTS),$(TBIN)/$(t)_c) $(TPREFIX)/bin/daxpmem-info $(TMP)/dax-suite/
	cp -P $(TPREFIX)/lib/libdaxpmem.so* $(TPREFIX)/lib/libdaxpmem-preload.so* $(TMP)/dax-suite/lib/
	cp $(PRELOAD_TBIN)/pl_writer $(PRELOAD_TBIN)/pl_reader $(PRELOAD_TBIN)/pl_daxmap preload/tests/dax-part.sh $(TMP)/dax-suite/
	$(CARGO) test --release --features seam --test seam --no-run
	cp $$(ls -t target/release/deps/seam-* | grep -v '\.d$$' | head -1) $(TMP)/dax-suite/seam
	$(MAKE) --no-print-directory compat-install PREFIX=$(TPREFIX) LIBDIR=$(TPREFIX)/lib INCLUDEDIR=$(TPREFIX)/include DESTDIR=
	$(CC) -std=c11 $(CWARN) -O1 -o $(TMP)/dax-suite/pmem_dax compat/tests/pmem_dax.c \
	    $$($(PKGENV) pkg-config --cflags --libs daxpmem-libpmem)
	cp c-tests/dax-suite.sh $(TMP)/dax-suite/suite.sh
	c-tests/daxvm/run-suite.sh --timeout $${DAXVM_TIMEOUT:-900} $(TMP)/dax-suite

# The preload's msync benchmark on fsdax in the guest (preload/bench/dax-bench.sh).
preload-bench-dax: preload-test
	rm -rf $(TMP)/plbench-dax && mkdir -p $(TMP)/plbench-dax/lib
	$(CC) -std=c11 $(CWARN) -O2 -o $(TMP)/plbench-dax/pl_bench preload/bench/pl_bench.c
	cp -P $(TPREFIX)/lib/libdaxpmem.so* $(TPREFIX)/lib/libdaxpmem-preload.so* $(TMP)/plbench-dax/lib/
	cp preload/bench/dax-bench.sh $(TMP)/plbench-dax/suite.sh
	c-tests/daxvm/run-suite.sh --timeout $${DAXVM_TIMEOUT:-900} $(TMP)/plbench-dax

# Benchmarks against PMDK's libpmem (Debian libpmem-dev), printed as ratios.
BENCH_ARGS ?= --quick
bench: build
	$(MAKE) -C bench bench_pmem bench_sync bench_track bench_patterns bench_sparse
	bench/bench_pmem $(BENCH_ARGS)
	DAXPMEM_FORCE_PMEM=1 bench/bench_sync $(BENCH_ARGS)
	DAXPMEM_FORCE_PMEM=1 bench/bench_patterns $(BENCH_ARGS)
	DAXPMEM_FORCE_PMEM=1 bench/bench_sparse $(BENCH_ARGS)
	bench/bench_track $(BENCH_ARGS)

clean:
	$(CARGO) clean

# The libpmem compatibility library (libpmem.so.1 over libdaxpmem.so.0): compat/README.md.
include compat/compat.mk
install: compat-install
uninstall: compat-uninstall
test: compat-test
bench: compat-bench

# The LD_PRELOAD msync interposer (libdaxpmem-preload.so over libdaxpmem.so.0): preload/README.md.
include preload/preload.mk
install: preload-install
uninstall: preload-uninstall
test: preload-test
bench: preload-bench

# bench-dax and test-devdax in the fsdax guest: c-tests/daxvm/README.md.
include c-tests/daxvm/daxvm.mk

# Man pages, the CMake package config, Debian packages, the sync chart: packaging.mk.
include packaging.mk
install: man-install cmake-install
uninstall: man-uninstall cmake-uninstall
test: check-man

# The torture suite last: on a library that still fails it, every other test has run.
test: torture
