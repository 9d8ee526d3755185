#!/usr/bin/env bash
# The whole suite, RUNS times in a row, on a fresh clone of HEAD, while a CPU hog runs beside it.
#
#   bash scripts/test-under-load.sh [RUNS] [HOGS]     # defaults: 2 runs, 1 hog
#
# Why: CI runs on a machine that may be busy, and a test that passes only on an idle machine
# is a broken test. Each hog is a process that spins on one core at normal priority for as
# long as the runs last (on the project's 2-core machine one hog takes half the machine from
# the suite; `HOGS=2` takes as much again). The clone is made from the committed HEAD, so
# uncommitted changes are not tested. Its first run installs the virtual environment
# (`make test` as `.ci/run` does); the second reuses it. Logs and a summary (each run's exit
# status, duration and pytest's last line) go to a folder beside the clone (`<clone>.logs`); the exit status is
# that of the first failing run, else 0.
set -uo pipefail
RUNS=${1:-2}
HOGS=${2:-1}
HERE=$(cd "$(dirname "$0")/.." && pwd)
CLONE=$(mktemp -d "${TMPDIR:-/tmp}/fairpilot-load-XXXXXX")
git clone -q "$HERE" "$CLONE"
LOGS="$CLONE.logs"  # outside the clone: nothing is added to the tree under test
mkdir -p "$LOGS"
SUMMARY="$LOGS/summary.txt"

hogs=()
for _ in $(seq "$HOGS"); do
    python3 -c 'while True: pass' &
    hogs+=("$!")
done
trap 'kill "${hogs[@]}" 2>/dev/null' EXIT

{
    echo "commit $(git -C "$CLONE" rev-parse --short HEAD), $RUNS runs, $HOGS CPU hog(s)"
    echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 2^20}' /proc/meminfo)"
} | tee "$SUMMARY"
status=0
for run in $(seq "$RUNS"); do
    began=$(date +%s)
    (cd "$CLONE" && CI=true bash .ci/run) > "$LOGS/run-$run.log" 2>&1
    code=$?
    last=$(grep -E '(passed|failed|error)' "$LOGS/run-$run.log" | tail -1)
    echo "run $run: exit $code in $(( $(date +%s) - began )) s: $last" | tee -a "$SUMMARY"
    if [ "$code" -ne 0 ] && [ "$status" -eq 0 ]; then
        status=$code
    fi
done
echo "logs: $LOGS" | tee -a "$SUMMARY"
exit "$status"
