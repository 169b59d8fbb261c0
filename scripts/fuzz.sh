#!/usr/bin/env bash
# A fuzzing campaign over every target in fuzz/ (cargo-fuzz on the nightly
# toolchain): SECONDS per target (default 3600, one CPU-hour), one after the
# other, each from its corpus (fuzz/corpus/TARGET, seeded from fuzz/seeds).
# Prints one line per target: executions, coverage (libFuzzer's cov and ft
# counters), corpus size, crashes and the CPU seconds it had (user + system:
# under `nice` beside a build, less than SECONDS); crashing inputs land in
# fuzz/artifacts/TARGET/ — fix the bug, then keep the input in
# fuzz/regressions/TARGET/ (tests/fuzz_regressions.rs replays it on stable).
#   scripts/fuzz.sh [SECONDS] [TARGET[:SECONDS]...]
# With FUZZ_BUDGET=cpu the seconds are CPU seconds, not wall seconds: the
# target runs until its fuzzer process has had that much CPU time (user +
# system), however busy the machine is, and is then interrupted (libFuzzer
# prints its final figures on SIGINT). The issue counts CPU-hours, and a
# campaign beside a build gets only part of a core.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
# Yield to whatever else runs (a build, the tests): with autogroup
# scheduling `nice` alone only ranks processes within this session's group,
# so the group itself is lowered.
echo 19 > /proc/self/autogroup 2>/dev/null || true
secs="${1:-3600}"
shift || true
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
targets=("$@")
if ((${#targets[@]} == 0)); then
  mapfile -t targets < <(ls fuzz_targets | sed 's/\.rs$//')
fi
cargo +nightly fuzz build -O >/dev/null
printf '%-14s %12s %8s %8s %8s %8s %8s\n' target executions cov ft corpus crashes cpu_s
budget="${FUZZ_BUDGET:-wall}"
# The fuzzer's own CPU seconds (utime + stime from /proc/PID/stat, in ticks).
cpu_of() { awk -v hz="$(getconf CLK_TCK)" '{print int(($14 + $15) / hz)}' "/proc/$1/stat" 2>/dev/null || echo 0; }
for spec in "${targets[@]}"; do
  t="${spec%%:*}"
  s="$secs"
  [[ "$spec" == *:* ]] && s="${spec#*:}"
  wall="$s"
  # A CPU budget may take several times its wall time beside a build.
  [[ "$budget" == cpu ]] && wall=$((s * 20))
  mkdir -p "corpus/$t"
  cp -n seeds/"$t"/* "corpus/$t/" 2>/dev/null || true
  log="$(mktemp)"
  cpu="$(mktemp)"
  /usr/bin/time -f '%U %S' -o "$cpu" cargo +nightly fuzz run -O "$t" "corpus/$t" -- \
    -max_total_time="$wall" -print_final_stats=1 -rss_limit_mb=2048 -timeout=10 >"$log" 2>&1 &
  runner=$!
  if [[ "$budget" == cpu ]]; then
    while kill -0 "$runner" 2>/dev/null; do
      sleep 5
      pid="$(pgrep -f "target/.*/release/$t( |$)" | head -1 || true)"
      [[ -n "$pid" ]] && (($(cpu_of "$pid") >= s)) && kill -INT "$pid" 2>/dev/null || true
    done
  fi
  wait "$runner" || true
  execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | awk '{print $2}' | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | awk '{print $2}')
  ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1 | awk '{print $2}')
  crashes=$(ls "artifacts/$t" 2>/dev/null | grep -c -E '^(crash|timeout|oom|leak)-' || true)
  cpu_s=$(awk '/^[0-9.]+ [0-9.]+$/ {printf "%d", $1 + $2}' "$cpu")
  printf '%-14s %12s %8s %8s %8s %8s %8s\n' "$t" "${execs:-?}" "${cov:-?}" "${ft:-?}" \
    "$(ls "corpus/$t" | wc -l)" "$crashes" "${cpu_s:-?}"
  rm -f "$log" "$cpu"
done
