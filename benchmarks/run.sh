#!/usr/bin/env bash
# Runs every benchmark of multopt_bench on 1 thread and on all cores, and saves for each the
# console output (with the ratio summary) and the JSON results:
#   OUT_DIR/threads-1.txt, threads-1.json, threads-all.txt, threads-all.json, machine.txt
#
#   benchmarks/run.sh OUT_DIR [extra multopt_bench flags...]
#
# Environment: BENCH (the multopt_bench binary; default build-bench/benchmarks/multopt_bench,
# else build/benchmarks/multopt_bench). Extra flags go to every run, e.g.
#   benchmarks/run.sh results --benchmark_filter=16777216 --benchmark_min_time=0.2
set -euo pipefail

if (($# < 1)); then
  echo "usage: benchmarks/run.sh OUT_DIR [multopt_bench flags...]" >&2
  exit 2
fi
out=$1
shift

root=$(cd "$(dirname "$0")/.." && pwd)
bench=${BENCH:-}
if [[ -z $bench ]]; then
  for candidate in "$root/build-bench/benchmarks/multopt_bench" "$root/build/benchmarks/multopt_bench"; do
    if [[ -x $candidate ]]; then bench=$candidate; break; fi
  done
fi
if [[ -z $bench || ! -x $bench ]]; then
  echo "run.sh: no multopt_bench binary; build it (docs/performance.md) or set BENCH" >&2
  exit 1
fi

mkdir -p "$out"
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "binary: $bench"
  echo "uptime: $(uptime)"
  lscpu 2>/dev/null || true
  getconf -a 2>/dev/null | grep -i 'CACHE_SIZE' || true
  free -g 2>/dev/null || true
} > "$out/machine.txt"

for threads in 1 all; do
  echo "=== threads: $threads ===" >&2
  "$bench" --threads="$threads" \
    --benchmark_out="$out/threads-$threads.json" --benchmark_out_format=json \
    --benchmark_color=false "$@" 2>&1 | tee "$out/threads-$threads.txt"
done
echo "saved in $out" >&2
