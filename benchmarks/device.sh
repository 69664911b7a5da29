#!/usr/bin/env bash
# The scaling table of docs/performance.md on a many-core machine, in one go of under about five
# minutes: builds multopt_bench (Release, -march=native), then runs the bandwidth yardstick and
# Adam's additive, multiplicative and hybrid steps, float and double, at 2^24 and 2^26 elements,
# on 1, 2, 4, 8 and 16 threads, and prints one Markdown table of median ns per element (and the
# cv of each median) with each step's ratio to the yardstick of the same scalar, size and threads.
#
#   benchmarks/device.sh [OUT_DIR]     (default: $OUT if set, else BUILD_DIR/results)
#
# Environment: THREADS (default "1 2 4 8 16"), BUILD_DIR (default build-device), REPS (3; at
# least 2, for the medians).
# Saves machine.txt, threads-N.csv (every aggregate, as Google Benchmark writes it) and table.md.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build-device}
out=${1:-${OUT:-$build/results}}
threads_list=${THREADS:-1 2 4 8 16}
reps=${REPS:-3}
mkdir -p "$out"

{ date -u +%Y-%m-%dT%H:%M:%SZ; uptime; lscpu 2>/dev/null || true; free -g 2>/dev/null || true; } > "$out/machine.txt"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DMULTOPT_BUILD_TESTS=OFF -DMULTOPT_BUILD_EXAMPLES=OFF \
      -DMULTOPT_BUILD_TOOLS=OFF -DMULTOPT_TORCH=OFF > "$out/cmake.log"
cmake --build "$build" -j"$(nproc)" --target multopt_bench > "$out/build.log"

# Without random interleaving each benchmark's arrays (up to 3.5 GiB) are made once, not once
# per repetition: the fills would take most of the five minutes.
filter='^BM_(Traffic|Step/adam/(additive|multiplicative|hybrid))/(float|double)/(16777216|67108864)/'
for t in $threads_list; do
  echo "threads $t" >&2
  "$build/benchmarks/multopt_bench" --threads="$t" --benchmark_filter="$filter" \
    --benchmark_repetitions="$reps" --benchmark_enable_random_interleaving=false \
    --benchmark_min_time=0.1 --benchmark_format=csv > "$out/threads-$t.csv" 2> "$out/threads-$t.log"
done

# One row per benchmark and thread count: median ns_per_elem, its cv, and the ratio to the
# yardstick BM_Traffic/<scalar>/<n> of the same run.
for t in $threads_list; do
  awk -F, -v threads="$t" '
    NR == 1 { for (i = 1; i <= NF; ++i) if ($i == "\"ns_per_elem\"" || $i == "ns_per_elem") col = i; next }
    { name = $1; gsub(/"/, "", name) }
    name ~ /_median$/ { sub(/\/real_time_median$/, "", name); median[name] = $col; order[++n] = name }
    name ~ /_cv$/ { sub(/\/real_time_cv$/, "", name); cv[name] = $col }
    END {
      for (k = 1; k <= n; ++k) {
        name = order[k]; parts = split(name, part, "/"); size = part[parts]; scalar = part[parts - 1]
        yard = median["BM_Traffic/" scalar "/" size]
        printf "| %s | %s | %.3f | %.0f%% | %s |\n", name, threads, median[name], 100 * cv[name],
               (yard > 0 ? sprintf("%.2f", median[name] / yard) : "-")
      }
    }' "$out/threads-$t.csv"
done | sort -t'|' -k2,2 -k3,3n > "$out/rows.md"
{
  echo "| benchmark | threads | ns per element (median) | cv | ÷ BM_Traffic |"
  echo "|---|---|---|---|---|"
  cat "$out/rows.md"
} > "$out/table.md"
rm "$out/rows.md"
cat "$out/table.md"
