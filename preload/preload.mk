# preload/preload.mk -- libdaxpmem-preload.so.0, the LD_PRELOAD msync interposer over
# libdaxpmem.so.0. Included from the top-level Makefile, whose variables it uses:
# CC, CWARN, TMP, TPREFIX, PREFIX, LIBDIR, DESTDIR, VERSION, and its targets `build`
# (cargo: target/release/libdaxpmem.so) and `tmp-install` (core into $(TPREFIX)).
#
#   make preload-build      target/preload/libdaxpmem-preload.so
#   make preload-install    $(DESTDIR)$(LIBDIR)/libdaxpmem-preload.so.$(VERSION)
#                           + .so.0 and .so links, next to libdaxpmem.so.0
#   make preload-uninstall  removes exactly those
#   make preload-test       the tests in preload/tests (installs core + preload into
#                           $(TPREFIX)); last line "preload-tests: N passed, M failed"
#   make preload-bench      msync-heavy program with and without the preload, as ratios
#
# The library finds the core through RUNPATH $ORIGIN (it is installed in the same
# directory), which survives DESTDIR staging.

PRELOAD_SRC  := preload
PRELOAD_OUT  := $(CURDIR)/target/preload
PRELOAD_LIB  := $(PRELOAD_OUT)/libdaxpmem-preload.so
PRELOAD_CORE := target/release
PRELOAD_TBIN := $(TMP)/preload-tests
PRELOAD_EXPORTS = madvise mmap mmap64 mremap msync munmap sigaction signal

.PHONY: preload-build preload-install preload-uninstall preload-test preload-bench

preload-build: build
	@mkdir -p $(PRELOAD_OUT)
	$(CC) -std=c11 $(CWARN) -O2 -fPIC -shared -fvisibility=hidden -Iinclude \
	    -Wl,-soname,libdaxpmem-preload.so.0 -Wl,--version-script=$(PRELOAD_SRC)/preload.map \
	    -Wl,-z,defs -Wl,-z,now -Wl,-z,relro -Wl,--enable-new-dtags '-Wl,-rpath,$$ORIGIN' \
	    -o $(PRELOAD_LIB).$$$$.tmp $(PRELOAD_SRC)/preload.c -L$(PRELOAD_CORE) -ldaxpmem && \
	    mv -f $(PRELOAD_LIB).$$$$.tmp $(PRELOAD_LIB)

preload-install: preload-build
	install -d $(DESTDIR)$(LIBDIR)
	install -m 755 $(PRELOAD_LIB) $(DESTDIR)$(LIBDIR)/libdaxpmem-preload.so.$(VERSION)
	ln -sf libdaxpmem-preload.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libdaxpmem-preload.so.0
	ln -sf libdaxpmem-preload.so.0 $(DESTDIR)$(LIBDIR)/libdaxpmem-preload.so

preload-uninstall:
	rm -f $(DESTDIR)$(LIBDIR)/libdaxpmem-preload.so.$(VERSION) \
	      $(DESTDIR)$(LIBDIR)/libdaxpmem-preload.so.0 $(DESTDIR)$(LIBDIR)/libdaxpmem-preload.so

# The core comes from `tmp-install` (a prerequisite, so it runs once per make run even
# when `test` also needs it); the preload goes into the same prefix.
preload-test: tmp-install
	$(MAKE) --no-print-directory -f $(firstword $(MAKEFILE_LIST)) preload-install \
	    PREFIX=$(TPREFIX) LIBDIR=$(TPREFIX)/lib DESTDIR=
	CC="$(CC)" CWARN="$(CWARN)" PRELOAD_EXPORTS="$(PRELOAD_EXPORTS)" \
	    $(PRELOAD_SRC)/tests/run.sh $(TPREFIX) $(PRELOAD_TBIN) $(TMP)/preload-disk

preload-bench: tmp-install
	$(MAKE) --no-print-directory -f $(firstword $(MAKEFILE_LIST)) preload-install \
	    PREFIX=$(TPREFIX) LIBDIR=$(TPREFIX)/lib DESTDIR=
	CC="$(CC)" CWARN="$(CWARN)" $(PRELOAD_SRC)/bench/run_bench.sh $(TPREFIX) $(TMP)/preload-bench \
	    $(TMP)/preload-bench-disk $${PRELOAD_BENCH_TMPFS:-/dev/shm}/daxpmem-preload-bench $${PRELOAD_BENCH_ARGS:-}
