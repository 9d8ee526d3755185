#!/usr/bin/env bash
# Runs the four stages by hand on Adult income, as README shows, into one directory.
set -euo pipefail
out="$(realpath -m "${1:-/tmp/fairpilot-demo}")"
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
