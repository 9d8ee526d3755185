#!/usr/bin/env bash
# Local stand-ins for the public base images, for a machine that reaches Debian's archive and
# PyPI but no image registry (Docker Hub and ghcr.io unreachable), so `make images` can build:
#
#   fairpilot-local/python:3.11-slim-bookworm   for python:3.11.13-slim-bookworm (all three
#                                               images; jobs-cuda too when nvidia/cuda is missing)
#   fairpilot-local/uv:<version>                for ghcr.io/astral-sh/uv:<version> (jobs-cuda)
#
# Usage (as root, with a running Docker engine):  bash scripts/build-base-image.sh [python|uv|all]
# An image that already exists is kept; FORCE=1 builds it again.
#   DEBIAN_MIRROR   default http://deb.debian.org/debian (the security suite: DEBIAN_SECURITY)
#
# The Python base: `debootstrap --variant=minbase` of bookworm plus Debian's own python3.11,
# python3.11-venv and python3-pip, linked into /usr/local/bin where the python:*-slim images
# have their interpreter and pip. Debian's CPython rather than a python-build-standalone build:
# it comes signed from the archive this machine reaches (python-build-standalone downloads from
# GitHub, which is not reachable, and no registry package ships it), it is built against the
# same bookworm libraries the runtime stages install from, and `python -m venv` works once
# python3.11-venv is in. The price: Python 3.11.2 (bookworm's) rather than 3.11.13, the same
# minor version, so the same cp311 wheels install.
#
# The host's extra CA certificates (/usr/local/share/ca-certificates, e.g. a TLS-intercepting
# egress proxy's) are added to the image's trust store, and /etc/pip.conf points pip at that
# store (pip in a venv otherwise trusts only its vendored certifi bundle): pip inside the builds
# then reaches PyPI as the host's pip does. Certificates are public; no key, token or proxy
# password goes into the image (proxy variables are passed to builds by scripts/build-images.sh,
# as Docker's predefined build arguments, which stay out of the image's history).
set -euo pipefail
cd "$(dirname "$0")/.."

what=${1:-all}
PYTHON_TAG=fairpilot-local/python:3.11-slim-bookworm
# uv's version is the one images/jobs-cuda/Dockerfile names, so the two cannot drift apart.
UV_VERSION=$(sed -n 's|^ARG UV_IMAGE=ghcr.io/astral-sh/uv:\([0-9.]*\)$|\1|p' images/jobs-cuda/Dockerfile)
UV_TAG=fairpilot-local/uv:$UV_VERSION
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY=${DEBIAN_SECURITY:-http://deb.debian.org/debian-security}

log() { printf 'build-base-image: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }
have_image() { [[ ${FORCE:-0} != 1 ]] && docker image inspect "$1" >/dev/null 2>&1; }

docker info >/dev/null 2>&1 || die "no Docker engine answers (docker info failed)"

build_python() {
    if have_image "$PYTHON_TAG"; then log "$PYTHON_TAG exists"; return; fi
    [[ $(id -u) == 0 ]] || die "debootstrap needs root"
    command -v debootstrap >/dev/null || die "debootstrap is missing: apt-get install -y debootstrap"
    local rootfs
    rootfs=$(mktemp -d)
    # shellcheck disable=SC2064  # expand now: the variable is local to this function
    trap "rm -rf '$rootfs'" EXIT
    log "debootstrap bookworm (minbase) from $MIRROR"
    debootstrap --variant=minbase --include=python3.11,python3.11-venv,python3-pip,ca-certificates \
        bookworm "$rootfs" "$MIRROR" >&2

    # The suites debian:bookworm-slim lists, so the Dockerfiles' apt-get gets security updates.
    rm -f "$rootfs/etc/apt/sources.list"
    cat >"$rootfs/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $MIRROR
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $SECURITY
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF

    # The python:*-slim paths. Its pip installs outside a venv, so Debian's PEP 668 marker goes.
    for name in python python3 python3.11; do
        ln -sf /usr/bin/python3.11 "$rootfs/usr/local/bin/$name"
    done
    for name in pip pip3 pip3.11; do ln -sf /usr/bin/pip3 "$rootfs/usr/local/bin/$name"; done
    rm -f "$rootfs/usr/lib/python3.11/EXTERNALLY-MANAGED"

    if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
        log "adding the host's CA certificates: $(cd /usr/local/share/ca-certificates && echo *.crt)"
        cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/"
        chroot "$rootfs" update-ca-certificates >&2
    fi
    printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' >"$rootfs/etc/pip.conf"

    # What the slim images leave out too: package caches and lists, documentation.
    rm -rf "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb \
        "$rootfs"/var/lib/apt/lists/* "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* \
        "$rootfs"/usr/share/info/* "$rootfs"/var/log/*.log

    log "importing $PYTHON_TAG"
    tar -C "$rootfs" --numeric-owner -c . | docker import \
        --change 'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change 'CMD ["python3"]' \
        - "$PYTHON_TAG" >/dev/null
    rm -rf "$rootfs"
    trap - EXIT
    # The promises the Dockerfiles rely on, checked in the image itself.
    docker run --rm --network none "$PYTHON_TAG" sh -c \
        'python --version && pip --version && python -m venv /tmp/v && /tmp/v/bin/pip --version' >&2
}

build_uv() {
    if have_image "$UV_TAG"; then log "$UV_TAG exists"; return; fi
    [[ -n $UV_VERSION ]] || die "no ARG UV_IMAGE=ghcr.io/astral-sh/uv:<version> in images/jobs-cuda/Dockerfile"
    local work
    work=$(mktemp -d)
    # shellcheck disable=SC2064
    trap "rm -rf '$work'" EXIT
    # The PyPI wheel carries the same static binaries as uv's image (/uv, /uvx on an empty root).
    log "uv $UV_VERSION from PyPI"
    python3 -m pip download --quiet --no-deps --only-binary=:all: \
        --platform manylinux_2_17_x86_64 --python-version 3.11 -d "$work/wheel" "uv==$UV_VERSION"
    python3 - "$work" <<'EOF'
import stat, sys, zipfile
from pathlib import Path

work = Path(sys.argv[1])
(wheel,) = (work / "wheel").glob("uv-*.whl")
root = work / "root"
root.mkdir()
with zipfile.ZipFile(wheel) as archive:
    for name in archive.namelist():
        if "/scripts/" in name and Path(name).name in ("uv", "uvx"):
            target = root / Path(name).name
            target.write_bytes(archive.read(name))
            target.chmod(stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
if not (root / "uv").exists():
    sys.exit(f"no uv binary in {wheel.name}")
EOF
    tar -C "$work/root" --numeric-owner --owner=0 --group=0 -c . | docker import - "$UV_TAG" >/dev/null
    rm -rf "$work"
    trap - EXIT
    log "imported $UV_TAG"
}

case $what in
    python) build_python ;;
    uv) build_uv ;;
    all) build_python; build_uv ;;
    *) die "usage: $0 [python|uv|all]" ;;
esac
