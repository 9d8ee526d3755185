#!/usr/bin/env bash
# A Docker engine for `make images` and the image tests (tests/integration/test_built_images.py), on a
# Debian machine where one may be missing: used by .ci/run.
#
#   bash scripts/start-docker.sh      exit 0: an engine answers `docker info` (started here if
#                                     need be); exit 3: none can run here (a line says why)
#
# As root it installs Debian's docker.io (the engine) and debootstrap (for the local stand-in
# base images, scripts/build-base-image.sh) when they are missing, and starts `dockerd` in the
# background, its log in DOCKERD_LOG (default /var/log/dockerd.log) and its pid in DOCKERD_PID
# (default /run/fairpilot-dockerd.pid), so that whoever started it can stop it.
set -euo pipefail

LOG=${DOCKERD_LOG:-/var/log/dockerd.log}
PID=${DOCKERD_PID:-/run/fairpilot-dockerd.pid}

say() { printf 'start-docker: %s\n' "$*" >&2; }

if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
    command -v debootstrap >/dev/null 2>&1 || [[ $(id -u) != 0 ]] ||
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap >/dev/null
    say "an engine answers already"
    exit 0
fi
if [[ $(id -u) != 0 ]]; then
    say "no engine answers and this is not root: cannot install or start one"
    exit 3
fi
missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
if ((${#missing[@]})); then
    say "installing ${missing[*]}"
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null
fi
say "starting dockerd (log: $LOG)"
nohup dockerd >>"$LOG" 2>&1 </dev/null &
echo $! >"$PID"
for _ in $(seq 60); do
    if docker info >/dev/null 2>&1; then
        say "engine up: $(docker info --format '{{.ServerVersion}}, {{.Driver}}, cgroup v{{.CgroupVersion}}')"
        exit 0
    fi
    kill -0 "$(cat "$PID")" 2>/dev/null || break
    sleep 1
done
say "dockerd did not answer; the end of its log:"
tail -n 20 "$LOG" >&2 || true
exit 3
