# bench/plot.gp: bar chart of messages per server CPU-second, per pattern and
# server, from the summary bench/run writes (tab-separated: a header line
# "pattern raw lariat lws beast", then one row per pattern; NaN = not run).
#   gnuplot -e "datafile='plot.tsv'; outfile='chart.png'" bench/plot.gp
# Log scale: the patterns span five orders of magnitude (1 MiB messages to
# 32-byte ones).
if (!exists("datafile")) datafile = 'plot.tsv'
if (!exists("outfile")) outfile = 'msgs_per_cpu.png'
set terminal pngcairo size 1200,650 font "sans,10"
set output outfile
set datafile separator "\t"
set datafile missing "NaN"
set title "Messages per server CPU-second (higher is better; handshakes: per handshake)"
set style data histogram
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set logscale y
set yrange [10:*]
set format y "10^{%L}"
set grid ytics
set ylabel "messages per server CPU-second"
set key outside right top
set xtics nomirror
plot for [i=2:*] datafile using i:xtic(1) title columnheader(i)
