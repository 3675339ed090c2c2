# c-tests/daxvm/daxvm.mk -- targets that run in the daxvm QEMU guest (c-tests/daxvm/README.md).
# Included from the top-level Makefile, whose variables and targets it uses: CC, CWARN,
# TMP, TPREFIX, TBIN, PKGENV, `tmp-install` (core into $(TPREFIX)) and the pattern rule
# $(TBIN)/%_c (builds c-tests/%.c against the installed core).
#
#   make bench-dax     bench/bench_dax.c in the memmap guest on /mnt/dax (ext4 -o dax,
#                      MAP_SYNC): dax_sync vs the kernel's msync(MS_SYNC), 2 MiB and 4 KiB
#                      entries, DAX_TRACK_MPROTECT; BENCH_DAX_ARGS= passes options
#                      (--size MiB, --rounds R, --quick); DAXVM_TIMEOUT (default 300)
#   make test-devdax   c-tests/test_devdax.c in the devdax guest (/dev/daxN.0), once with the
#                      default write-back and once with CLFLUSH; ends "N passed, M failed";
#                      DAXVM_TIMEOUT (default 600)
#
# Each builds a suite directory under $(TMP) (program, lib/libdaxpmem.so*, suite.sh) and
# boots the guest once with c-tests/daxvm/run-suite.sh; the exit status is the suite's
# (121: a kernel WARNING in the guest, 124: timeout, 125: the guest failed to boot).

DAXVM_RUN_SUITE := c-tests/daxvm/run-suite.sh
BENCH_DAX_ARGS  ?=

.PHONY: bench-dax test-devdax

$(TBIN)/bench_dax: bench/bench_dax.c bench/bench_util.h tmp-install
	@mkdir -p $(TBIN)
	$(CC) -std=c11 $(CWARN) -D_GNU_SOURCE -O2 -o $@ $< $$($(PKGENV) pkg-config --cflags --libs daxpmem) \
	    -Wl,-rpath,$$($(PKGENV) pkg-config --variable=libdir daxpmem)

# The guest's suite scripts (written into the suite directories by the recipes below).
define DAXVM_BENCH_SUITE_SH
#!/bin/sh
# make bench-dax, in the daxvm guest (cwd /mnt/dax, ext4 -o dax)
cd /mnt/dax || exit 2
DAXPMEM_ALLOW_MPROTECT_ON_DAX=1 exec /test/bench_dax $(BENCH_DAX_ARGS) /mnt/dax
endef

define DAXVM_DEVDAX_SUITE_SH
#!/bin/sh
# make test-devdax, in the daxvm guest started with --mode devdax ($$DAXVM_DEVDAX)
cd /test || exit 2
pass=0; fail=0
run() {
    name=$$1; shift
    "$$@" > /tmp/out.txt 2>&1; rc=$$?
    if [ $$rc = 0 ]; then pass=$$((pass+1)); echo "ok   $$name"; sed 's/^/     /' /tmp/out.txt | head -40
    else fail=$$((fail+1)); echo "FAIL $$name (exit $$rc)"; sed 's/^/     /' /tmp/out.txt | tail -60; fi
}
echo "device DAX: $${DAXVM_DEVDAX:-none}; /sys/bus/dax/devices: $$(ls /sys/bus/dax/devices 2>/dev/null | tr '\n' ' ')"
run "devdax: map, sync without msync, lengths, punch, remap" ./test_devdax_c $$DAXVM_DEVDAX
run "devdax: the same with CLFLUSH" env DAXPMEM_NO_CLWB=1 DAXPMEM_NO_CLFLUSHOPT=1 ./test_devdax_c $$DAXVM_DEVDAX
echo "test-devdax: $$pass passed, $$fail failed"
[ "$$fail" = 0 ]
endef

bench-dax: private export DAXVM_SUITE_SH = $(DAXVM_BENCH_SUITE_SH)
bench-dax: $(TBIN)/bench_dax
	rm -rf $(TMP)/bench-dax && mkdir -p $(TMP)/bench-dax/lib
	cp $(TBIN)/bench_dax $(TMP)/bench-dax/
	cp -P $(TPREFIX)/lib/libdaxpmem.so* $(TMP)/bench-dax/lib/
	printf '%s\n' "$$DAXVM_SUITE_SH" > $(TMP)/bench-dax/suite.sh && chmod 755 $(TMP)/bench-dax/suite.sh
	$(DAXVM_RUN_SUITE) --timeout $${DAXVM_TIMEOUT:-300} $(TMP)/bench-dax

test-devdax: private export DAXVM_SUITE_SH = $(DAXVM_DEVDAX_SUITE_SH)
test-devdax: $(TBIN)/test_devdax_c
	rm -rf $(TMP)/devdax-suite && mkdir -p $(TMP)/devdax-suite/lib
	cp $(TBIN)/test_devdax_c $(TMP)/devdax-suite/
	cp -P $(TPREFIX)/lib/libdaxpmem.so* $(TMP)/devdax-suite/lib/
	printf '%s\n' "$$DAXVM_SUITE_SH" > $(TMP)/devdax-suite/suite.sh && chmod 755 $(TMP)/devdax-suite/suite.sh
	$(DAXVM_RUN_SUITE) --mode devdax --timeout $${DAXVM_TIMEOUT:-600} $(TMP)/devdax-suite
