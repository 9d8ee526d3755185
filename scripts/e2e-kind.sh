#!/usr/bin/env bash
# `make e2e`: FairPilot end to end on a throwaway kind cluster.
#
# Builds the images, creates a kind cluster, installs the dev services (manifests/dev/services:
# MinIO, Kafka, MongoDB), installs the operator (the Helm chart with manifests/dev/values-kind.yaml,
# or with E2E_INSTALL=kustomize the overlay manifests/overlays/dev), uploads the Adult data to
# MinIO, applies manifests/examples/adult/pipeline.yaml with its data in S3, waits until every
# FairPilot resource succeeded, then checks the Kafka events, the artifacts and reports in MinIO
# and the warehouse in MongoDB. The cluster is deleted on exit.
#
# Without Docker (a reachable engine) or kind it prints what is missing and exits 0: nothing ran.
#
# Environment:
#   E2E_CLUSTER=fairpilot-e2e  kind cluster name (must not exist yet)
#   E2E_KEEP=0                 1: keep the cluster (and the work directory) after the run
#   E2E_INSTALL=helm           helm | kustomize
#   E2E_TIMEOUT=2400           seconds for the pipeline to succeed
#   E2E_SKIP_BUILD=0           1: use images already built (ghcr.io/fairpilot/*:0.1.0)
#   E2E_SKIP_CUDA=1            0: build and load the CUDA jobs image too (kind has no GPU)
#   E2E_KIND_IMAGE=            kind node image (kind's default if empty)
#   E2E_REQUIRE=0              1: missing Docker or kind is an error (exit 1), not a skip
#   E2E_PYTHON=.venv/bin/python  the project's virtual environment (fairpilot next to it)
set -euo pipefail

# ---- Preconditions. Shell builtins only until the skip decision, so that nothing runs. ----
missing=()
if ! command -v docker >/dev/null 2>&1; then
    missing+=("docker (no docker command on PATH)")
elif ! docker info >/dev/null 2>&1; then
    missing+=("a Docker engine (docker info failed: is the daemon running and reachable?)")
fi
if ! command -v kind >/dev/null 2>&1; then
    missing+=("kind (no kind command on PATH; https://kind.sigs.k8s.io)")
fi
if ((${#missing[@]} > 0)); then
    echo "e2e-kind: SKIPPED, nothing ran (no cluster, no image build)."
    for what in "${missing[@]}"; do
        echo "e2e-kind:   missing: ${what}"
    done
    if [[ ${E2E_REQUIRE:-0} == 1 ]]; then
        echo "e2e-kind: E2E_REQUIRE=1, so this is a failure." >&2
        exit 1
    fi
    exit 0
fi

ROOT=$(cd "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

CLUSTER=${E2E_CLUSTER:-fairpilot-e2e}
KEEP=${E2E_KEEP:-0}
INSTALL=${E2E_INSTALL:-helm}
TIMEOUT=${E2E_TIMEOUT:-2400}
SKIP_BUILD=${E2E_SKIP_BUILD:-0}
SKIP_CUDA=${E2E_SKIP_CUDA:-1}
KIND_IMAGE=${E2E_KIND_IMAGE:-}
NS=fairpilot
TAG=0.1.0
RELEASE=fairpilot
OPERATOR=deployment/fairpilot
PYTHON=${E2E_PYTHON:-$ROOT/.venv/bin/python}
FAIRPILOT=$(dirname -- "$PYTHON")/fairpilot
FP_KINDS=datasets.fairpilot.io,biasanalyses.fairpilot.io,trainingruns.fairpilot.io,explanations.fairpilot.io,modelmonitors.fairpilot.io
STARTED=$SECONDS

log() { printf '\n==> [%4ds] %s\n' "$((SECONDS - STARTED))" "$*"; }
die() {
    echo "e2e-kind: FAILED: $*" >&2
    exit 1
}

case $INSTALL in
    helm | kustomize) ;;
    *) die "E2E_INSTALL must be helm or kustomize, not '$INSTALL'" ;;
esac
[[ $TIMEOUT =~ ^[0-9]+$ ]] || die "E2E_TIMEOUT must be a number of seconds, not '$TIMEOUT'"
[[ -x $PYTHON && -x $FAIRPILOT ]] || die "no $PYTHON or $FAIRPILOT: run 'make venv' first"

# kubectl and helm: from PATH, else the ones scripts/k8s_tools.py unpacks.
KUBECTL=$(command -v kubectl || true)
HELM=$(command -v helm || true)
if [[ -z $KUBECTL || -z $HELM ]]; then
    tools=$("$PYTHON" scripts/k8s_tools.py)
    KUBECTL=${KUBECTL:-$tools/kubectl}
    HELM=${HELM:-$tools/helm}
fi

images=(operator jobs)
[[ $SKIP_CUDA == 1 ]] || images+=(jobs-cuda)

# Everything this run needs, checked before anything is built or created.
for name in "${images[@]}"; do
    [[ $SKIP_BUILD == 1 || -f images/$name/Dockerfile ]] || die "images/$name/Dockerfile is missing"
done
if [[ $INSTALL == helm ]]; then
    [[ -f charts/fairpilot/Chart.yaml ]] || die "charts/fairpilot is missing"
else
    [[ -f manifests/base/kustomization.yaml ]] || die "manifests/base is missing"
fi
existing=$(kind get clusters 2>/dev/null || true)
if grep -qx -- "$CLUSTER" <<<"$existing"; then
    die "a kind cluster named $CLUSTER exists; delete it (kind delete cluster --name $CLUSTER) or set E2E_CLUSTER"
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/fairpilot-e2e.XXXXXX")
# A kubeconfig of this run's own: the user's current context is never touched.
export KUBECONFIG=$WORK/kubeconfig
created=0
dumped=0

k() { "$KUBECTL" -n "$NS" "$@"; }

dump() {
    ((dumped == 0)) || return 0
    dumped=1
    set +e
    echo
    echo "================ diagnostics ================"
    k get all,jobs,configmaps,secrets -o wide
    echo "---- FairPilot resources"
    k get "$FP_KINDS" -o yaml
    k describe "$FP_KINDS"
    echo "---- pods"
    k describe pods
    echo "---- events"
    k get events --sort-by=.lastTimestamp | tail -n 80
    echo "---- operator logs"
    k logs "$OPERATOR" --all-containers --tail=400
    local job
    for job in $(k get jobs -o name); do
        echo "---- logs of $job"
        k logs "$job" --all-containers --tail=200
    done
    for svc in kafka minio mongodb; do
        echo "---- logs of $svc"
        k logs "deployment/$svc" --tail=40
    done
    echo "============================================="
}

cleanup() {
    local rc=$?
    set +e
    if ((rc != 0 && created == 1)); then
        dump
    fi
    if ((created == 1)); then
        if [[ $KEEP == 1 ]]; then
            echo "e2e-kind: kept cluster $CLUSTER: export KUBECONFIG=$KUBECONFIG"
        else
            kind delete cluster --name "$CLUSTER" --kubeconfig "$KUBECONFIG" >/dev/null 2>&1
        fi
    fi
    if [[ $KEEP == 1 ]]; then
        echo "e2e-kind: work directory kept: $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Polls a Job until it completes (0) or fails (1).
wait_job() {
    local job=$1 limit=$2 start=$SECONDS state
    while ((SECONDS - start < limit)); do
        state=$(k get "job/$job" -o jsonpath='{range .status.conditions[?(@.status=="True")]}{.type}{" "}{end}')
        case " $state " in
            *" Complete "*) return 0 ;;
            *" Failed "*)
                k logs "job/$job" --all-containers --tail=50 || true
                return 1
                ;;
        esac
        sleep 3
    done
    return 1
}

# ---- Images ----
if [[ $SKIP_BUILD == 1 ]]; then
    log "using images already built (E2E_SKIP_BUILD=1)"
else
    for name in "${images[@]}"; do
        log "building ghcr.io/fairpilot/$name:$TAG"
        docker build -t "ghcr.io/fairpilot/$name:$TAG" -f "images/$name/Dockerfile" .
    done
fi

# ---- Cluster ----
log "creating kind cluster $CLUSTER"
kind_args=(create cluster --name "$CLUSTER" --kubeconfig "$KUBECONFIG" --wait 180s)
[[ -z $KIND_IMAGE ]] || kind_args+=(--image "$KIND_IMAGE")
created=1
kind "${kind_args[@]}"
for name in "${images[@]}"; do
    log "loading ghcr.io/fairpilot/$name:$TAG into the cluster"
    kind load docker-image --name "$CLUSTER" "ghcr.io/fairpilot/$name:$TAG"
done

# ---- Dev services ----
log "installing MinIO, Kafka and MongoDB (manifests/dev/services)"
# manifests/dev/services has no Namespace object (manifests/base and the chart own it).
"$KUBECTL" create namespace "$NS"
"$KUBECTL" apply -k manifests/dev/services
for svc in minio kafka mongodb; do
    k rollout status "deployment/$svc" --timeout=10m
done
wait_job minio-buckets 600 || die "the bucket Job minio-buckets did not complete"

# ---- Operator ----
if [[ $INSTALL == helm ]]; then
    log "installing the chart (helm, manifests/dev/values-kind.yaml)"
    "$HELM" install "$RELEASE" charts/fairpilot -n "$NS" --create-namespace \
        -f manifests/dev/values-kind.yaml --wait --timeout 10m
else
    log "installing the operator (kubectl apply -k manifests/overlays/dev)"
    "$KUBECTL" apply -k manifests/overlays/dev
fi
"$KUBECTL" wait --for condition=established --timeout=120s \
    crd/datasets.fairpilot.io crd/biasanalyses.fairpilot.io \
    crd/trainingruns.fairpilot.io crd/explanations.fairpilot.io crd/modelmonitors.fairpilot.io
k rollout status "$OPERATOR" --timeout=10m

# ---- A MinIO client in the cluster, for the upload and the checks ----
MC_IMAGE=$(k get job/minio-buckets -o jsonpath='{.spec.template.spec.containers[0].image}')
k apply -f - <<EOF
apiVersion: v1
kind: Pod
metadata:
  name: e2e-mc
  labels: {app.kubernetes.io/name: e2e-mc}
spec:
  automountServiceAccountToken: false
  enableServiceLinks: false
  securityContext:
    runAsNonRoot: true
    runAsUser: 1000
    runAsGroup: 1000
    seccompProfile: {type: RuntimeDefault}
  containers:
    - name: mc
      image: $MC_IMAGE
      command: ["sleep", "86400"]
      env:
        - name: AWS_ACCESS_KEY_ID
          valueFrom: {secretKeyRef: {name: fairpilot-s3, key: AWS_ACCESS_KEY_ID}}
        - name: AWS_SECRET_ACCESS_KEY
          valueFrom: {secretKeyRef: {name: fairpilot-s3, key: AWS_SECRET_ACCESS_KEY}}
        - name: MC_HOST_local
          value: http://\$(AWS_ACCESS_KEY_ID):\$(AWS_SECRET_ACCESS_KEY)@minio:9000
        - name: HOME
          value: /tmp
      resources:
        requests: {cpu: 50m, memory: 64Mi}
        limits: {memory: 256Mi}
      securityContext:
        allowPrivilegeEscalation: false
        capabilities: {drop: ["ALL"]}
EOF
k wait --for=condition=Ready pod/e2e-mc --timeout=5m
# mc in that pod; mc_in passes stdin on (the others must not read it: they run in read loops).
mc() { k exec e2e-mc -c mc -- mc --config-dir /tmp/mc "$@" </dev/null; }
mc_in() { k exec -i e2e-mc -c mc -- mc --config-dir /tmp/mc "$@"; }

# ---- Data ----
log "uploading the Adult data to s3://datasets/"
"$FAIRPILOT" datasets adult --output "$WORK/data"
for file in adult.csv adult_test.csv; do
    mc_in pipe "local/datasets/$file" <"$WORK/data/$file" >/dev/null
done
mc ls local/datasets/

# ---- The pipeline ----
log "applying manifests/examples/adult/pipeline.yaml with its data in s3://datasets/"
"$PYTHON" - manifests/examples/adult/pipeline.yaml "$WORK/pipeline.yaml" <<'PY'
import sys

import yaml

source, target = sys.argv[1:3]
with open(source) as f:
    docs = [doc for doc in yaml.safe_load_all(f) if doc]
for doc in docs:
    spec = doc.get("spec") or {}
    uri = spec.get("uri")
    if isinstance(uri, str) and uri.startswith("file://"):
        spec["uri"] = "s3://datasets/" + uri.rsplit("/", 1)[-1]
        print(f"  {doc['kind']}/{doc['metadata']['name']}: {spec['uri']}")
with open(target, "w") as f:
    yaml.safe_dump_all(docs, f, sort_keys=False)
PY
k apply -f "$WORK/pipeline.yaml"

# Exit status: 0 every resource and pipeline succeeded, 1 one failed (or stopped), 2 not yet.
evaluate() {
    "$PYTHON" - "$1" <<'PY'
import json
import sys

with open(sys.argv[1]) as f:
    items = json.load(f).get("items", [])
seen = dict.fromkeys(("Dataset", "BiasAnalysis", "TrainingRun", "Explanation"), 0)
failed = waiting = False
rows = []
for obj in items:
    kind, name = obj["kind"], obj["metadata"]["name"]
    status = obj.get("status") or {}
    phase = status.get("phase") or "Pending"
    seen[kind] = seen.get(kind, 0) + 1
    extra = ""
    if (obj.get("spec") or {}).get("pipeline"):
        pipeline = status.get("pipeline") or "-"
        extra = f"pipeline={pipeline}"
        failed |= pipeline in ("Failed", "Stopped")
        waiting |= pipeline != "Succeeded"
    failed |= phase == "Failed"
    waiting |= phase != "Succeeded"
    message = (status.get("message") or "").replace("\n", " ")[:90]
    rows.append(f"  {kind:<13} {name:<32} {phase:<10} {extra:<20} {message}")
print("\n".join(sorted(rows)) or "  (no resources yet)")
absent = [kind for kind, count in seen.items() if count == 0]
if absent:
    print("  not created yet: " + ", ".join(absent))
sys.exit(1 if failed else 2 if absent or waiting else 0)
PY
}

log "waiting up to ${TIMEOUT}s for every FairPilot resource to succeed"
deadline=$((SECONDS + TIMEOUT))
previous=""
while :; do
    k get "$FP_KINDS" -o json >"$WORK/resources.json"
    rc=0
    table=$(evaluate "$WORK/resources.json") || rc=$?
    if [[ $table != "$previous" ]]; then
        printf '[%4ds]\n%s\n' "$((SECONDS - STARTED))" "$table"
        previous=$table
    fi
    case $rc in
        0) break ;;
        1) die "a FairPilot resource failed (diagnostics follow)" ;;
    esac
    ((SECONDS < deadline)) || die "the pipeline did not succeed within ${TIMEOUT}s"
    sleep 10
done

# ---- Kafka events ----
# Prints how many messages of the topic have that event_type.
count_events() {
    local topic=$1 event_type=$2
    k exec deploy/kafka -c kafka -- env KAFKA_HEAP_OPTS="-Xms32m -Xmx256m" \
        /opt/kafka/bin/kafka-console-consumer.sh --bootstrap-server 127.0.0.1:9094 \
        --topic "$topic" --from-beginning --timeout-ms 15000 2>/dev/null \
        >"$WORK/events-$topic.jsonl" || true
    "$PYTHON" - "$WORK/events-$topic.jsonl" "$event_type" <<'PY'
import json
import sys

count = 0
with open(sys.argv[1]) as f:
    for line in f:
        try:
            event = json.loads(line)
        except ValueError:
            continue
        count += isinstance(event, dict) and event.get("event_type") == sys.argv[2]
print(count)
PY
}

log "checking the Kafka events"
event_summary=""
for pair in bias-events:bias.reported automl-events:model.uploaded xai-events:xai.reported; do
    topic=${pair%%:*}
    event_type=${pair#*:}
    deadline=$((SECONDS + 180))
    while :; do
        count=$(count_events "$topic" "$event_type")
        ((count == 0)) || break
        ((SECONDS < deadline)) || die "no $event_type event on $topic"
        sleep 10
    done
    event_summary+="  kafka:     $count $event_type on $topic"$'\n'
    echo "  $topic: $count $event_type"
done

# ---- Artifacts in MinIO ----
log "checking the artifacts in MinIO"
"$PYTHON" - "$WORK/resources.json" >"$WORK/uris.tsv" <<'PY'
import json
import sys

with open(sys.argv[1]) as f:
    items = json.load(f)["items"]
for obj in items:
    what = f"{obj['kind']}/{obj['metadata']['name']}"
    status = obj.get("status") or {}
    for field in ("outputUri", "modelUri"):
        if status.get(field):
            print(f"{what}\tprefix\t{field}\t{status[field]}")
    for name, uri in sorted((status.get("reports") or {}).items()):
        print(f"{what}\treport\t{name}\t{uri}")
PY
grep -q $'^BiasAnalysis/[^\t]*\treport\t' "$WORK/uris.tsv" || die "no BiasAnalysis reports a report URI"
grep -q $'^Explanation/[^\t]*\treport\t' "$WORK/uris.tsv" || die "no Explanation reports a report URI"
mkdir -p "$WORK/reports"
objects=0
reports=0
while IFS=$'\t' read -r what type field uri; do
    [[ $uri == s3://* ]] || die "$what: $field is not in S3: $uri"
    path=local/${uri#s3://}
    if [[ $type == prefix ]]; then
        n=$(mc ls --recursive "${path%/}/" | grep -c . || true)
        ((n > 0)) || die "$what: nothing under $field $uri"
        objects=$((objects + n))
        echo "  $what $field: $n objects under $uri"
    else
        [[ $uri == *.html ]] || die "$what: report $field is not HTML: $uri"
        file=$WORK/reports/$reports.html
        mc cat "$path" >"$file" || die "$what: report $field not found: $uri"
        grep -qi '<html' "$file" || die "$what: report $field is not an HTML page: $uri"
        reports=$((reports + 1))
        echo "  $what report $field: $(wc -c <"$file") bytes, $uri"
    fi
done <"$WORK/uris.tsv"

# ---- The warehouse in MongoDB ----
log "checking the warehouse (MongoDB)"
deadline=$((SECONDS + 120))
while :; do
    counts=$(k exec deploy/mongodb -c mongodb -- mongosh --quiet --norc \
        "mongodb://127.0.0.1:27017/fairpilot" --eval \
        'print(JSON.stringify(Object.fromEntries(["datasets", "bias_reports", "ai_models", "xai_reports"].map((c) => [c, db.getCollection(c).countDocuments()]))))' \
        2>/dev/null || true)
    counts=$(printf '%s\n' "$counts" | tail -n 1)
    if "$PYTHON" -c 'import json,sys; c=json.loads(sys.argv[1]); sys.exit(0 if c and all(c.values()) else 1)' \
        "${counts:-null}" 2>/dev/null; then
        break
    fi
    ((SECONDS < deadline)) || die "the warehouse is missing documents: ${counts:-no answer}"
    sleep 10
done
echo "  $counts"

# ---- Summary ----
log "summary"
evaluate "$WORK/resources.json" || true
echo "  install:   $INSTALL (cluster $CLUSTER, namespace $NS)"
printf '%s' "$event_summary"
echo "  minio:     $objects objects under the statuses' URIs, $reports HTML reports"
echo "  warehouse: $counts"
echo "e2e-kind: PASSED in $((SECONDS - STARTED))s"
