#!/bin/sh
# check_header.sh -- compat/include/libpmem.h against the installed PMDK
# /usr/include/libpmem.h (Debian libpmem-dev): identical prototypes
# (gcc -aux-info), identical macro expansions, and it compiles as C and C++.
set -eu
inc=$(cd "$(dirname "$0")/../include" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
echo '#include <libpmem.h>' > h.c
gcc -aux-info ref.aux -c h.c -o /dev/null
gcc -I"$inc" -aux-info ours.aux -c h.c -o /dev/null
grep -h 'pmem_' ref.aux | sed 's|/\*.*\*/||' | LC_ALL=C sort > p.ref
grep -h 'pmem_' ours.aux | sed 's|/\*.*\*/||' | LC_ALL=C sort > p.ours
diff -u p.ref p.ours
cat > m.c <<'EOC'
#include <libpmem.h>
M PMEM_MIN_PART PMEM_FILE_CREATE PMEM_FILE_EXCL PMEM_FILE_SPARSE PMEM_FILE_TMPFILE
M PMEM_F_MEM_NODRAIN PMEM_F_MEM_NONTEMPORAL PMEM_F_MEM_TEMPORAL PMEM_F_MEM_WC
M PMEM_F_MEM_WB PMEM_F_MEM_NOFLUSH PMEM_F_MEM_VALID_FLAGS
M PMEM_MAJOR_VERSION PMEM_MINOR_VERSION LIBPMEM_H
EOC
gcc -E -P m.c | grep '^M' > m.ref
gcc -E -P -I"$inc" m.c | grep '^M' > m.ours
diff -u m.ref m.ours
gcc -std=c99 -Wall -Wextra -Werror -pedantic -I"$inc" -c h.c -o /dev/null
g++ -x c++ -std=c++11 -Wall -Wextra -Werror -pedantic -I"$inc" -c h.c -o /dev/null
echo "OK: $(wc -l < p.ours) prototypes and all macros match /usr/include/libpmem.h; C and C++ compile"
