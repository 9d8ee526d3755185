#!/usr/bin/env bash
# Runs the four stages by hand on Adult income, as README shows, into a new directory: a stage
# never writes over earlier results, so every run of this script gets its own folder.
set -euo pipefail
base="$(realpath -m "${1:-${TMPDIR:-/tmp}/fairpilot-$(id -un)/stages}")"
out="$base/$(date -u +%Y%m%dT%H%M%SZ)-$$"
bin="$(dirname "$0")/../.venv/bin"
mkdir -p "$out"
"$bin/fairpilot" datasets adult --output "$out/data"
spec() { sed "s#/tmp/fairpilot#$out#g" "$(dirname "$0")/../jobs/examples/adult/$1.yaml" > "$out/$1.yaml"; }
for stage in profile bias train explain; do
  spec "$stage"
  echo "== $stage"
  "$bin/fairpilot-job" "$stage" --spec "$out/$stage.yaml" --output "file://$out/$stage"
done
echo
echo "Reports:"
find "$out" -name '*.html' | sort
