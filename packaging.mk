# packaging.mk -- man pages, the CMake package config, Debian packages.
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

MANDIR      ?= $(PREFIX)/share/man
CMAKEDIR    ?= $(LIBDIR)/cmake/daxpmem
INSTALL_MAN ?= yes
MAN_SRC     := $(wildcard man/*.scd)
MAN_OUT     := $(patsubst man/%.scd,target/man/%,$(MAN_SRC))
DEB_DIR     := $(CURDIR)/target/deb

.PHONY: man check-man man-install man-uninstall cmake-install cmake-uninstall deb test-packages

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
	tar --exclude=./target --exclude=./.git --exclude=./bench/lib -cf - . | tar -C $(DEB_DIR)/src -xf -
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

