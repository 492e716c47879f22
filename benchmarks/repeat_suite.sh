#!/usr/bin/env bash
# Run the README's test command again and again and print one line per run, to show the suite
# never hangs: IDLE runs on a quiet machine, then BUSY runs with every core kept busy by spinning
# processes. Usage (from a venv made by README command 2):
#   bash benchmarks/repeat_suite.sh [IDLE=20] [BUSY=5] > repeat.log
# Each run is cut off after 40 minutes (exit 124: a hang), on top of pytest-timeout's per-test limit.
set -u
idle="${1:-20}" busy="${2:-5}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
cores="$(nproc)"
for i in $(seq 1 $((idle + busy))); do
  spin=()
  mode=idle
  if [ "$i" -gt "$idle" ]; then
    mode=busy
    for _ in $(seq 1 "$cores"); do python -c "while True: pass" & spin+=($!); done
  fi
  start=$SECONDS
  log="$(mktemp)"
  timeout --kill-after=30 40m python -m pytest -q -p no:cacheprovider > "$log" 2>&1
  rc=$?
  [ "${#spin[@]}" -gt 0 ] && kill "${spin[@]}"
  echo "run $i $mode rc=$rc $((SECONDS - start))s $(tail -1 "$log")"
  rm -f "$log"
done
