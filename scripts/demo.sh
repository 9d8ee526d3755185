#!/usr/bin/env bash
# `make demo`: the Adult pipeline through the sandbox, in a folder of this user's own.
#
# The examples name their data under /tmp/fairpilot/; two people on one machine must not share
# (or fight over) that folder, so the data, the artifacts and the manifests that point at them
# go under FAIRPILOT_DEMO_ROOT (default: /tmp/fairpilot-<user>), and the manifests are rendered
# there with that root instead. Artifacts never collide anyway: every run writes under its
# resource's uid and run id. Arguments go to `fairpilot sandbox run` (`make demo
# DEMO_ARGS="--runtime docker"`: the stages in the jobs image, see images/README.md).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
bin="$here/.venv/bin"
root="$(realpath -m "${FAIRPILOT_DEMO_ROOT:-${TMPDIR:-/tmp}/fairpilot-$(id -un)}")"
mkdir -p "$root/manifests"
# Only this user may look inside; with `--runtime docker` the pods run as the Jobs' own user
# (runAsUser), who must open the folder to reach the data and artifacts.
case " $* " in
  *" --runtime docker "* | *" --runtime=docker "*) chmod 755 "$root" ;;
  *) chmod 700 "$root" ;;
esac
"$bin/fairpilot" datasets adult --output "$root/data"
for file in "$here"/manifests/examples/adult/*.yaml; do
  sed "s#/tmp/fairpilot/#$root/#g" "$file" > "$root/manifests/$(basename "$file")"
done
echo "demo folder: $root"
exec "$bin/fairpilot" sandbox run "$root/manifests/" \
  --artifacts "$root/artifacts" --file-root "$root" \
  --output-json "$root/demo-status.json" "$@"
