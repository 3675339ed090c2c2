# gnuplot script of make bench-plot: the cost of making k dirty 64-byte records durable
# in a 1 GiB mapping, against k, log-log. Variables (gnuplot -e): HOST and GUEST (CSV
# files of bench_sync --csv; GUEST may be ""), OUT (the SVG), HOSTINFO, GUESTINFO
# (the machine lines printed under the title).
set terminal svg size 1040,680 dynamic font 'sans,12' background '#ffffff'
set termoption noenhanced
set output OUT
set datafile separator ','
set datafile missing 'NaN'
set logscale xy
set xrange [0.7:*]
set xlabel 'k = dirty 64-byte records (random lines of the 1 GiB mapping)'
set ylabel 'time until durable (median)'
set ytics ('10 ns' 1e1, '100 ns' 1e2, '1 us' 1e3, '10 us' 1e4, '100 us' 1e5, '1 ms' 1e6, '10 ms' 1e7, '100 ms' 1e8, '1 s' 1e9)
set xtics ('1' 1, '4' 4, '16' 16, '64' 64, '256' 256, '1024' 1024, '4096' 4096, '16384' 16384, '65536' 65536)
set grid xtics ytics mxtics mytics lc rgb '#dddddd'
set key below left Left reverse nobox maxrows 3
set bmargin 9
GUESTNOTE = strstrt(GUESTINFO, 'tcg') ? "\n(the guest's CPU is emulated: compare the guest's lines with each other, not with the host's)" : ''
set title "Making k dirty 64-byte records durable in a 1 GiB mapping\n".HOSTINFO.(GUEST ne '' ? "\n".GUESTINFO.GUESTNOTE : '') font 'sans,11'
set tmargin 7
HOSTPLOT = "HOST u 1:3 w lp lw 2 pt 7 lc rgb '#1f77b4' t 'dax_sync (host, write-back path on DRAM)', \
  HOST u 1:4 w lp lw 2 pt 5 lc rgb '#2ca02c' t 'flush per record + one drain (host; the caller knows every record)', \
  HOST u 1:6 w lp lw 2 pt 9 lc rgb '#d62728' t 'pmem_persist of the whole mapping (PMDK libpmem, host)'"
GUESTPLOT = ", GUEST u 1:7 w lp lw 2 pt 11 lc rgb '#9467bd' t 'msync(MS_SYNC) of the whole mapping (kernel, fsdax guest)', \
  GUEST u 1:3 w lp lw 1 dt 2 pt 7 lc rgb '#1f77b4' t 'dax_sync (fsdax guest, MAP_SYNC)'"
if (GUEST ne '') { eval('plot '.HOSTPLOT.GUESTPLOT) } else { eval('plot '.HOSTPLOT) }
