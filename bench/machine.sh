# Machine helpers shared by the benchmarks that run whole pulls and copies (sourced, not run).

drop_caches() { sync && echo 3 >/proc/sys/vm/drop_caches; }

# Busy CPU ticks of the whole machine (user nice system irq softirq steal), from /proc/stat.
machine_busy_ticks() { awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat; }

# tick_seconds FROM TO [DECIMALS]: CPU seconds between two tick counts (CLK_TCK per second).
tick_seconds() {
  awk -v a="$1" -v b="$2" -v hz="$(getconf CLK_TCK)" -v d="${3:-1}" 'BEGIN { printf "%.*f", d, (b - a) / hz }'
}

# wait_quiet [SECONDS]: others share this machine (builds, tests). Wait up to BENCH_IDLE_WAIT
# seconds (default SECONDS, else 30) for a second in which less than a quarter of the CPU is busy,
# so rounds start on a quiet machine where possible; the callers report the busy CPU time of
# other processes during each round either way.
wait_quiet() {
  local deadline=$((SECONDS + ${BENCH_IDLE_WAIT:-${1:-30}})) a b
  while :; do
    a=$(machine_busy_ticks)
    sleep 1
    b=$(machine_busy_ticks)
    # ticks per second per core is CLK_TCK (100): 2 cores -> 200 busy ticks per second at most
    if [ $((b - a)) -lt $(($(getconf CLK_TCK) * $(nproc) / 4)) ] || [ "$SECONDS" -ge "$deadline" ]; then
      return 0
    fi
  done
}
