# packaging.mk -- man pages, the CMake package config, Debian packages and the sync chart.
# Included from the top-level Makefile, whose variables and targets it uses: CARGO, CC,
# CWARN, TMP, PREFIX, LIBDIR, INCLUDEDIR, DESTDIR, VERSION, MAJOR, `build`, `bench`.
#
#   make man             target/man/*.{1,3,7}: roff from man/*.scd (scdoc)
#   make check-man       every exported function has a section-3 page, every function a
#                        page names exists, prototypes as in the headers (part of make test)
#   make man-install     $(MANDIR)/man{1,3,7} + one symlink per further NAME (part of
#                        make install; INSTALL_MAN=no skips it: make test's private prefix)
#   make cmake-install   $(LIBDIR)/cmake/daxpmem/daxpmem-config{,-version}.cmake (make install)
#   make deb             target/deb/*.deb with dpkg-buildpackage (debian/) from a copy of
#                        the tree in target/deb/src; lintian's report in target/deb/lintian.txt
#   make test-packages   make deb, then scripts/test-packages.sh: apt-get install the .debs,
#                        man, pkg-config and CMake builds against them, preload, drop-in,
#                        then remove them again (KEEP_PACKAGES=1 keeps them); needs root
#   make bench-plot      bench/bench_sync --csv (and --msync in the fsdax guest with
#                        BENCH_PLOT_GUEST=1): bench/results/sync-vs-k.{csv,svg} (gnuplot);
#                        make bench-plot-draw redraws the SVG from the CSV files

MANDIR      ?= $(PREFIX)/share/man
CMAKEDIR    ?= $(LIBDIR)/cmake/daxpmem
INSTALL_MAN ?= yes
MAN_SRC     := $(wildcard man/*.scd)
MAN_OUT     := $(patsubst man/%.scd,target/man/%,$(MAN_SRC))
DEB_DIR     := $(CURDIR)/target/deb

.PHONY: man check-man man-install man-uninstall cmake-install cmake-uninstall deb test-packages bench-plot \
        bench-plot-draw

target/man/%: man/%.scd Cargo.toml
	@command -v scdoc >/dev/null || { echo "scdoc not found: apt-get install scdoc (or make install INSTALL_MAN=no)"; exit 1; }
	@mkdir -p target/man
	sed 's/@VERSION@/$(VERSION)/g' $< | scdoc > $@.tmp && mv -f $@.tmp $@

man: $(MAN_OUT)

check-man:
	scripts/check-man.pl

man-install:
ifeq ($(INSTALL_MAN),yes)
	$(MAKE) --no-print-directory -f $(firstword $(MAKEFILE_LIST)) man
	install -d $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man3 $(DESTDIR)$(MANDIR)/man7
	for f in $(MAN_OUT); do s=$${f##*.}; install -m 644 $$f $(DESTDIR)$(MANDIR)/man$$s/; done
	scripts/check-man.pl --links | while read l t; do ln -sf $$t $(DESTDIR)$(MANDIR)/man3/$$l; done
endif

man-uninstall:
	for f in $(MAN_OUT); do s=$${f##*.}; rm -f $(DESTDIR)$(MANDIR)/man$$s/$${f##*/}; done
	scripts/check-man.pl --links | while read l t; do rm -f $(DESTDIR)$(MANDIR)/man3/$$l; done

cmake-install:
	install -d $(DESTDIR)$(CMAKEDIR)
	for f in daxpmem-config daxpmem-config-version; do \
	    sed -e 's|@LIBDIR@|$(LIBDIR)|g' -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|g' -e 's|@VERSION@|$(VERSION)|g' \
	        -e 's|@MAJOR@|$(MAJOR)|g' cmake/$$f.cmake.in > $(DESTDIR)$(CMAKEDIR)/$$f.cmake; done

cmake-uninstall:
	rm -f $(DESTDIR)$(CMAKEDIR)/daxpmem-config.cmake $(DESTDIR)$(CMAKEDIR)/daxpmem-config-version.cmake
	-rmdir $(DESTDIR)$(CMAKEDIR) 2>/dev/null || true

# dpkg-buildpackage writes its results next to the source directory, so it runs on a
# copy of the tree (without target/ and .git) in target/deb/src and they land in
# target/deb. The package version is Cargo.toml's (written into the copy's changelog).
deb:
	@command -v dpkg-buildpackage >/dev/null && command -v dh >/dev/null && command -v scdoc >/dev/null || \
	    { echo "make deb needs: apt-get install dpkg-dev debhelper scdoc lintian"; exit 1; }
	rm -rf $(DEB_DIR) && mkdir -p $(DEB_DIR)/src
	tar --exclude=./target --exclude=./.git --exclude=./.cache --exclude=./bench/lib -cf - . | tar -C $(DEB_DIR)/src -xf -
	sed -i '1s/^daxpmem ([^)]*)/daxpmem ($(VERSION))/' $(DEB_DIR)/src/debian/changelog
	cd $(DEB_DIR)/src && dpkg-buildpackage -b -us -uc
	@if command -v lintian >/dev/null; then \
	    lintian --info --display-info $(DEB_DIR)/*.changes > $(DEB_DIR)/lintian.txt 2>&1; rc=$$?; \
	    cat $(DEB_DIR)/lintian.txt; \
	    echo "lintian: $$(grep -c '^E:' $(DEB_DIR)/lintian.txt) errors, $$(grep -c '^W:' $(DEB_DIR)/lintian.txt) warnings, $$(grep -c '^[IP]:' $(DEB_DIR)/lintian.txt) info"; \
	    if grep -q '^E:' $(DEB_DIR)/lintian.txt; then exit 1; fi; \
	else echo "lintian not installed: packages not checked"; fi
	ls -l $(DEB_DIR)/*.deb

test-packages: deb
	scripts/test-packages.sh $(DEB_DIR)

# The sync chart: bench_sync --csv on this machine (DRAM, write-back path forced) and,
# with BENCH_PLOT_GUEST=1, in the daxvm fsdax guest with --msync (the kernel's msync of
# the whole mapping, which the host's tmpfs cannot measure); gnuplot draws them.
PLOT_K      ?= 1,4,16,64,256,1024,4096,16384,65536
PLOT_DIR    := bench/results
PLOT_GUEST  := $(TMP)/bench-plot-guest
BENCH_PLOT_GUEST ?= 0

bench-plot: build
	@command -v gnuplot >/dev/null || { echo "bench-plot needs gnuplot: apt-get install gnuplot-nox"; exit 1; }
	$(MAKE) -C bench bench_sync
	DAXPMEM_FORCE_PMEM=1 bench/bench_sync --k $(PLOT_K) --csv $(PLOT_DIR)/sync-vs-k-host.csv
ifeq ($(BENCH_PLOT_GUEST),1)
	rm -rf $(PLOT_GUEST) && mkdir -p $(PLOT_GUEST)/lib
	cp bench/bench_sync $(PLOT_GUEST)/ && cp -P bench/lib/libdaxpmem.so* $(PLOT_GUEST)/lib/
	printf '#!/bin/sh\ncd /mnt/dax || exit 2\n/test/bench_sync --k $(PLOT_K) --msync --csv /tmp/g.csv /mnt/dax || exit 1\necho BEGIN-CSV; cat /tmp/g.csv; echo END-CSV\n' \
	    > $(PLOT_GUEST)/suite.sh && chmod 755 $(PLOT_GUEST)/suite.sh
	c-tests/daxvm/run-suite.sh --pmem 2G --timeout $${DAXVM_TIMEOUT:-900} $(PLOT_GUEST) > $(PLOT_GUEST).log 2>&1; \
	    rc=$$?; cat $(PLOT_GUEST).log; exit $$rc
	{ sed -n 's/^daxvm: booting \(.*\)/# guest: \1/p' $(PLOT_GUEST).log; \
	  sed -n '/^BEGIN-CSV/,/^END-CSV/p' $(PLOT_GUEST).log | sed '1d;$$d'; } | tr -d '\r' > $(PLOT_DIR)/sync-vs-k-guest.csv
	grep -q '^k,' $(PLOT_DIR)/sync-vs-k-guest.csv
endif
	$(MAKE) --no-print-directory -f $(firstword $(MAKEFILE_LIST)) bench-plot-draw

# Draws the chart from the CSV files in bench/results (no measurement).
bench-plot-draw:
	@command -v gnuplot >/dev/null || { echo "bench-plot needs gnuplot: apt-get install gnuplot-nox"; exit 1; }
	g=$(PLOT_DIR)/sync-vs-k-guest.csv; [ -s $$g ] || g=; \
	info() { sed -n 's/^# machine=\(.*\), \([0-9]*\) CPUs; kernel \([^;]*\); date \([^;]*\);.*/\1 (\2 CPUs), kernel \3, \4/p' $$1 | sed 's/(R)//g'; }; \
	where() { sed -n 's/^# dir=\([^ ]*\) pmem=[01] (\(.*\)) flush=\(.*\)/\1 (\2), \3/p' $$1; }; \
	hi="host: $$(info $(PLOT_DIR)/sync-vs-k-host.csv); $$(where $(PLOT_DIR)/sync-vs-k-host.csv)"; \
	ginfo() { sed -n 's/^# machine=.*, \([0-9]*\) CPUs; kernel \([^;]*\); date \([^;]*\);.*/\1 CPUs, kernel \2, \3/p' $$1; }; \
	gi="guest: QEMU $$( [ -n "$$g" ] && sed -n 's/^# guest: [^(]*(\([a-z]*\),.*/\1/p' $$g), $$( [ -n "$$g" ] && ginfo $$g); /mnt/dax: ext4 -o dax on emulated pmem (MAP_SYNC)"; \
	gnuplot -e "HOST='$(PLOT_DIR)/sync-vs-k-host.csv'; GUEST='$$g'; OUT='$(PLOT_DIR)/sync-vs-k.svg'; HOSTINFO='$$hi'; GUESTINFO='$$gi'" bench/plot_sync.gp && \
	echo "wrote $(PLOT_DIR)/sync-vs-k.svg from $(PLOT_DIR)/sync-vs-k-host.csv $${g:+and $$g}"
