# compat/compat.mk -- the libpmem 1.x compatibility library (libpmem.so.1 over
# libdaxpmem.so.0). Included from the top-level Makefile, whose variables it uses:
# CC, CWARN, TMP, TPREFIX, PREFIX, LIBDIR, INCLUDEDIR, DESTDIR, VERSION, and its
# targets `build` (cargo) and `tmp-install` (core into $(TPREFIX)).
#
#   make compat-build      target/compat/libpmem.so.1
#   make compat-install    $(DESTDIR)$(LIBDIR)/daxpmem-libpmem/libpmem.so.1 (+ .so link),
#                          $(DESTDIR)$(INCLUDEDIR)/daxpmem-libpmem/libpmem.h,
#                          $(DESTDIR)$(LIBDIR)/pkgconfig/daxpmem-libpmem.pc
#   make compat-uninstall  removes exactly those
#   make compat-test       symbols, header, differential and binary tests against
#                          Debian's libpmem (installs core + compat into $(TPREFIX))
#   make compat-bench      libpmem vs daxpmem-libpmem, same calls, as ratios
#
# The library lives in its own directory, never over a system libpmem, and finds
# the core through RUNPATH $ORIGIN/.. (i.e. $(LIBDIR)), which survives DESTDIR staging.

COMPAT_SRC   := compat
COMPAT_OUT   := $(CURDIR)/target/compat
COMPAT_LIB   := $(COMPAT_OUT)/libpmem.so.1
COMPAT_CORE  := target/release
COMPAT_LIBD   = $(DESTDIR)$(LIBDIR)/daxpmem-libpmem
COMPAT_INCD   = $(DESTDIR)$(INCLUDEDIR)/daxpmem-libpmem
COMPAT_PCD    = $(DESTDIR)$(LIBDIR)/pkgconfig
COMPAT_SYSLIB ?= /usr/lib/x86_64-linux-gnu/libpmem.so.1

.PHONY: compat-build compat-install compat-uninstall compat-test compat-bench

compat-build: build
	@mkdir -p $(COMPAT_OUT)
	$(CC) -std=c11 $(CWARN) -O2 -fPIC -shared -fvisibility=hidden -Iinclude \
	    -Wl,-soname,libpmem.so.1 -Wl,--version-script=$(COMPAT_SRC)/libpmem.map \
	    -Wl,-z,defs -Wl,-z,now -Wl,-z,relro -Wl,--enable-new-dtags '-Wl,-rpath,$$ORIGIN/..' \
	    -o $(COMPAT_LIB).$$$$.tmp $(COMPAT_SRC)/libpmem.c -L$(COMPAT_CORE) -ldaxpmem && \
	    mv -f $(COMPAT_LIB).$$$$.tmp $(COMPAT_LIB)

compat-install: compat-build
	install -d $(COMPAT_LIBD) $(COMPAT_INCD) $(COMPAT_PCD)
	install -m 755 $(COMPAT_LIB) $(COMPAT_LIBD)/libpmem.so.1
	ln -sf libpmem.so.1 $(COMPAT_LIBD)/libpmem.so
	install -m 644 $(COMPAT_SRC)/include/libpmem.h $(COMPAT_INCD)/libpmem.h
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' \
	    -e 's|@VERSION@|$(VERSION)|' $(COMPAT_SRC)/daxpmem-libpmem.pc.in > $(COMPAT_PCD)/daxpmem-libpmem.pc

compat-uninstall:
	rm -f $(COMPAT_LIBD)/libpmem.so.1 $(COMPAT_LIBD)/libpmem.so $(COMPAT_INCD)/libpmem.h \
	      $(COMPAT_PCD)/daxpmem-libpmem.pc
	-rmdir $(COMPAT_LIBD) $(COMPAT_INCD) 2>/dev/null || true

# The core comes from `tmp-install` (a prerequisite, so it runs once per make run
# even when `test` also needs it); the compat pieces go into the same prefix
# (compat-install builds them). The link is atomic, so make -j is safe.
compat-test: tmp-install
	$(MAKE) --no-print-directory -f $(firstword $(MAKEFILE_LIST)) compat-install PREFIX=$(TPREFIX) LIBDIR=$(TPREFIX)/lib \
	    INCLUDEDIR=$(TPREFIX)/include DESTDIR=
	CC="$(CC)" $(COMPAT_SRC)/tests/run_compat_tests.sh $(TPREFIX) $(TMP)/compat-disk $(TMP)/compat-test

compat-bench: tmp-install
	$(MAKE) --no-print-directory -f $(firstword $(MAKEFILE_LIST)) compat-install PREFIX=$(TPREFIX) LIBDIR=$(TPREFIX)/lib \
	    INCLUDEDIR=$(TPREFIX)/include DESTDIR=
	@mkdir -p $(TMP)
	$(CC) -std=c11 $(CWARN) -O2 -o $(TMP)/compat_bench $(COMPAT_SRC)/bench/compat_bench.c -ldl
	$(TMP)/compat_bench $(COMPAT_SYSLIB) $(TPREFIX)/lib/daxpmem-libpmem/libpmem.so.1 \
	    $${COMPAT_BENCH_DIR:-/dev/shm} $(COMPAT_BENCH_ARGS)

# PMDK 1.12.1's own libpmem unit tests against our libpmem.so.1 and, in the same run,
# Debian's (compat/pmdk/README.md). PMDK_SRC: a PMDK 1.12.1 tree to build and use
# (default: unpacked from the committed tarball into $(TMP)/pmdk, built once).
PMDK_TARBALL ?= third_party/pmdk-1.12.1.tar.xz
PMDK_SRC     ?= $(TMP)/pmdk/pmdk-1.12.1
PMDK_PREFIX  := $(TMP)/pmdk-prefix
.PHONY: test-pmdk
# Its own prefix (not $(TPREFIX), which tmp-install removes), so it can run beside `test`.
test-pmdk: build
	rm -rf $(PMDK_PREFIX)
	$(MAKE) --no-print-directory -f $(firstword $(MAKEFILE_LIST)) install PREFIX=$(PMDK_PREFIX) DESTDIR=
	$(COMPAT_SRC)/pmdk/build-pmdk-tests.sh $(PMDK_SRC) $(CURDIR)/$(PMDK_TARBALL)
	$(COMPAT_SRC)/pmdk/run-pmdk-tests.sh $(PMDK_SRC) $(TMP)/pmdk-run \
	    daxpmem=$(PMDK_PREFIX)/lib/daxpmem-libpmem debian=$(dir $(COMPAT_SYSLIB))
