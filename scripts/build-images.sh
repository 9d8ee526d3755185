#!/usr/bin/env bash
# Builds images/<name>/Dockerfile as $IMAGE_REGISTRY/<name>:$IMAGE_TAG for each name given
# (operator, jobs, jobs-cuda); `make images` and `make image-<name>` call it.
#
#   BASE=auto     (default) the public base images where they are present or can be pulled,
#                 else the local stand-ins of scripts/build-base-image.sh (built on first use)
#   BASE=public   the public base images only (docker build's defaults)
#   BASE=local    the local stand-ins, without trying a registry
#   IMAGE_REGISTRY, IMAGE_TAG   default ghcr.io/fairpilot and 0.1.0, the operator's defaults
#   TORCH_WHEELS  a folder holding torch-<version>+cpu-cp311-*.whl, used when the PyTorch CPU
#                 index is unreachable (default: the find-links folder of the host's pip config)
#
# With the local stand-ins the build differs from the public one only in its sources:
#   - jobs: where download.pytorch.org is unreachable, torch's CPU wheel comes from
#     TORCH_WHEELS, served on the loopback for the build (and PyPI for torch's dependencies);
#   - jobs-cuda: the Debian stand-in instead of nvidia/cuda, torch from PyPI, whose Linux wheel
#     brings CUDA (13.0 for torch 2.13.0, so drivers R580 or newer, not 12.8) and cuDNN as
#     nvidia-* wheels; its own CPython 3.11 instead of python-build-standalone (from GitHub).
# Builds use the host's network (`--network host`): the loopback wheel server, and the host's
# route to the registries. The host's proxy variables, if any, are passed as Docker's predefined
# build arguments, which stay out of the image history.
set -euo pipefail
cd "$(dirname "$0")/.."

REGISTRY=${IMAGE_REGISTRY:-ghcr.io/fairpilot}
TAG=${IMAGE_TAG:-0.1.0}
BASE=${BASE:-auto}
LOCAL_PYTHON=fairpilot-local/python:3.11-slim-bookworm
PYPI=${PYPI_INDEX_URL:-https://pypi.org/simple}
PULL_TIMEOUT=${PULL_TIMEOUT:-60}

log() { printf 'build-images: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

(($#)) || die "usage: $0 operator|jobs|jobs-cuda ..."
[[ $BASE == auto || $BASE == public || $BASE == local ]] || die "BASE=$BASE: auto, public or local"
docker info >/dev/null 2>&1 || die "no Docker engine answers (docker info failed)"

# An ARG's default in a Dockerfile (the public image it names).
arg_default() { sed -n "s|^ARG $2=\(.*\)$|\1|p" "images/$1/Dockerfile" | head -n 1; }

# Whether the public image is here or can be pulled; a registry that cannot be reached fails
# fast, one that hangs is cut off after PULL_TIMEOUT seconds.
have_public() {
    docker image inspect "$1" >/dev/null 2>&1 && return 0
    log "pulling $1"
    timeout "$PULL_TIMEOUT" docker pull -q "$1" >/dev/null 2>&1
}

# Where a public base is used: "public", or "local" after building the stand-in.
choose() {
    local image=$1 stand_in=$2
    if [[ $BASE == public ]] || { [[ $BASE == auto ]] && have_public "$image"; }; then
        echo public
        return
    fi
    [[ $BASE == local ]] || log "$image cannot be had: using the local stand-in"
    bash scripts/build-base-image.sh "$stand_in" >&2
    echo local
}

reachable() { curl -fsS -o /dev/null -m 20 "$1" 2>/dev/null; }

# Prints the port if it is free on the loopback (0: any free one), else fails.
port_free() {
    python3 -c 'import socket, sys
with socket.socket() as s:
    s.bind(("127.0.0.1", int(sys.argv[1])))
    print(s.getsockname()[1])' "$1" 2>/dev/null
}

server_pid='' server_url=''
cleanup() { [[ -z $server_pid ]] || kill "$server_pid" 2>/dev/null || true; }
trap cleanup EXIT

# Serves a folder on the loopback for the build's pip (--find-links), in this shell (not in a
# command substitution) so that server_pid is known to cleanup; sets server_url. On a fixed
# port where it is free: the URL is a build argument of the torch layer, so a new port each
# time would download torch again in every build instead of taking that layer from the cache.
serve() {
    local port=${WHEELS_PORT:-38629}
    port_free "$port" >/dev/null || port=0
    port=$(port_free "$port")
    python3 -m http.server --bind 127.0.0.1 --directory "$1" "$port" >/dev/null 2>&1 &
    server_pid=$!
    for _ in $(seq 50); do
        reachable "http://127.0.0.1:$port/" && { server_url=http://127.0.0.1:$port/; return; }
        sleep 0.2
    done
    die "the wheel server on port $port did not start"
}

# Extra build arguments for one image, one per line.
build_args() {
    local name=$1 base torch cpu_index wheels
    case $name in
        operator)
            [[ $(choose "$(arg_default operator BASE_IMAGE)" python) == public ]] ||
                echo "BASE_IMAGE=$LOCAL_PYTHON"
            ;;
        jobs)
            [[ $(choose "$(arg_default jobs BASE_IMAGE)" python) == public ]] ||
                echo "BASE_IMAGE=$LOCAL_PYTHON"
            cpu_index=$(arg_default jobs TORCH_INDEX_URL)
            [[ $BASE == public ]] && return
            if reachable "${cpu_index%/}/torch/"; then return; fi
            torch=$(arg_default jobs TORCH_VERSION)
            wheels=${TORCH_WHEELS:-$(python3 -m pip config get global.find-links 2>/dev/null || true)}
            compgen -G "$wheels/torch-$torch+cpu-cp311-*x86_64.whl" >/dev/null ||
                die "$cpu_index is unreachable and TORCH_WHEELS='$wheels' holds no torch-$torch+cpu wheel"
            log "$cpu_index is unreachable: torch $torch+cpu from $wheels"
            echo "TORCH_INDEX_URL=$PYPI"
            serve "$wheels"
            echo "TORCH_FIND_LINKS=$server_url"
            ;;
        jobs-cuda)
            [[ $(choose "$(arg_default jobs-cuda UV_IMAGE)" uv) == public ]] ||
                echo "UV_IMAGE=fairpilot-local/uv:${UV_IMAGE_VERSION:-$(arg_default jobs-cuda UV_IMAGE | sed 's/.*://')}"
            base=$(choose "$(arg_default jobs-cuda CUDA_BASE_IMAGE)" python)
            if [[ $base == local ]]; then
                echo "CUDA_BASE_IMAGE=$LOCAL_PYTHON"
                echo "PYTHON_PREFERENCE=system"
                echo "PYTHON_VERSION=3.11"
                echo "TORCH_INDEX_URL=$PYPI"
                echo "CUDA_LABEL=CUDA of PyPI's torch wheel (nvidia-* wheels, no CUDA base)"
            fi
            ;;
        *) die "no image named $name (operator, jobs, jobs-cuda)" ;;
    esac
}

for name in "$@"; do
    [[ -f images/$name/Dockerfile ]] || die "images/$name/Dockerfile is missing"
    # Through a file, not `mapfile < <(build_args)`: build_args must run in this shell so that
    # the wheel server it may start is stopped after the build.
    build_args "$name" >"${TMPDIR:-/tmp}/build-images.$$"
    mapfile -t extra <"${TMPDIR:-/tmp}/build-images.$$"
    rm -f "${TMPDIR:-/tmp}/build-images.$$"
    args=(--network host -f "images/$name/Dockerfile")
    for value in "${extra[@]}"; do args+=(--build-arg "$value"); done
    for var in HTTP_PROXY HTTPS_PROXY NO_PROXY http_proxy https_proxy no_proxy; do
        [[ -z ${!var:-} ]] || args+=(--build-arg "$var")
    done
    # The local stand-ins go through the classic builder: BuildKit would fetch the Dockerfiles'
    # `# syntax=docker/dockerfile:1` frontend from Docker Hub, which is what cannot be reached.
    if ((${#extra[@]})); then export DOCKER_BUILDKIT=0; else unset DOCKER_BUILDKIT; fi
    log "docker build ${args[*]} -t $REGISTRY/$name:$TAG ."
    start=$SECONDS
    docker build "${args[@]}" -t "$REGISTRY/$name:$TAG" .
    # The builder stage tagged too (from the cache: seconds), so that it is not a dangling image
    # that `docker image prune` removes: it is the next build's cache (the classic builder keeps
    # its cache as images), which saves downloading torch and the rest again.
    docker build -q "${args[@]}" --target builder -t "fairpilot-build-cache/$name:$TAG" . >/dev/null
    log "$REGISTRY/$name:$TAG built in $((SECONDS - start)) s," \
        "$(docker image inspect -f '{{.Size}}' "$REGISTRY/$name:$TAG" | awk '{printf "%.0f MB", $1 / 1e6}')"
    cleanup
    server_pid=
done
