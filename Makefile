# The two commands a newcomer needs: `make demo` and `make test`. Everything else is a step of those,
# or operates one environment's stack (make help lists those under "Operate an environment").
# Tools come from tests/requirements.txt (pinned, with tests/constraints.txt) into .venv.

SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV      := .venv
PYTHON    ?= python3
VENV_PY   := $(VENV)/bin/python
STAMP     := $(VENV)/.installed
# make bench's Python cold-start baseline (crhelper, awslambdaric, boto3): a venv of its own, so its
# boto3/botocore pins never meet awscli's in .venv.
BENCH_VENV  := .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed
CARGO     ?= cargo
# Reuse a persistent target dir when the caller provides one (CI does); default: ./target.
export CARGO_TARGET_DIR ?= $(CURDIR)/target
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
# clippy lints the workspace's own crates as they compile, in every build and test here: cargo
# runs them through clippy-driver (RUSTC_WORKSPACE_WRAPPER, what `cargo clippy` itself does), with
# warnings denied (CLIPPY_ARGS, cargo-clippy's encoding of `-- -D warnings`). Dependencies are
# compiled by rustc alone, so there is no second, check-only compile of every dependency
# (docs/benchmarks.md: build figures). Without clippy installed, make test runs `make clippy`, which
# then fails naming it.
CLIPPY_DRIVER := $(shell command -v clippy-driver 2>/dev/null)
ifneq ($(CLIPPY_DRIVER),)
export RUSTC_WORKSPACE_WRAPPER := $(CLIPPY_DRIVER)
export CLIPPY_ARGS := -D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__
endif

# One stack per environment: cloudformation/params/$(ENV).json, stack <AppName>-$(ENV). AWS access
# is whatever AWS_* variables are set (AWS_PROFILE, AWS_REGION, AWS_ENDPOINT_URL for a local engine).
ENV       ?= dev
BUCKET    ?= $(CODE_BUCKET)
STACKCTL  := $(VENV_PY) cloudformation/stackctl.py
# Where `package` takes the provider zips from (<dir>/<function>/bootstrap.zip): make build's output.
LAMBDA_DIR ?= $(CARGO_TARGET_DIR)/lambda
# Where package writes the packaged template and code.json (stackctl's default: .build/$(ENV)).
BUILD_DIR_ARG := $(if $(BUILD_DIR),--build-dir '$(BUILD_DIR)')

.PHONY: setup setup-demo bins image image-tag push help test demo demo-release demo-protocol soak bench binaries build zips fmt fmt-check clippy unit integration lint tools clean \
	package deploy weights tasks outputs events destroy

help:
	@echo "make demo   - one environment's life on the local engine: deploy, console-style Spot weight change, tasks per provider, a doomed deploy failing fast, Spot fallback and recovery, destroy"
	@echo "make test   - every check: fmt, clippy, unit tests, scenarios through the real binaries, the environment end to end on the local engine, cfn-lint, checkov"
	@echo "make bench  - figures side by side (zips, cold starts vs Python crhelper+boto3, critical paths vs their bound, waits, fail fast, release vs debug demo): target/bench/report.md"
	@echo "make soak   - every resource's lifecycle for SOAK_ROUNDS rounds (5) with 35% of AWS calls throttled and 5% answered 500; prints the figures"
	@echo
	@echo "Operate an environment (ENV=dev|stg|prd, default dev; uses the AWS_* environment, see README):"
	@echo "make build                              - release Lambda zips (cargo lambda; ARCH=arm64 for Graviton)"
	@echo "make package ENV=dev BUCKET=<bucket>    - upload zips and nested templates (BUCKET defaults to \$$CODE_BUCKET)"
	@echo "make deploy ENV=dev [SET='K=V ...']     - package, then create/update the stack, showing its events"
	@echo "make weights ENV=dev FARGATE=1 SPOT=3 [BASE=0] - change the FARGATE/FARGATE_SPOT mix in place"
	@echo "make tasks ENV=dev                      - the service's tasks per capacity provider"
	@echo "make outputs ENV=dev | make events ENV=dev [FOLLOW=1]"
	@echo "make destroy ENV=dev [YES=1]            - delete the stack, following its events"

$(STAMP): tests/requirements.txt tests/constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV_PY) -m pip install --quiet --disable-pip-version-check -r tests/requirements.txt -c tests/constraints.txt
	@touch $@

# Wheels only: awslambdaric has a C extension, and a source build here would need a C toolchain
# and its autotools; a missing wheel should fail here, plainly.
$(BENCH_STAMP): tests/bench-requirements.txt
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --disable-pip-version-check --only-binary=:all: -r tests/bench-requirements.txt
	@touch $@

tools: $(STAMP)
	@$(VENV_PY) -c "import moto; print('moto', moto.__version__)"
	@cfn-lint --version
	@aws --version
	@cargo-lambda lambda --version

# The venv's install (mostly downloads) beside the cargo build (all CPU): one wait instead of two.
# make demo needs the binaries only; make test adds the test targets on top of the same build.
setup:
	@$(MAKE) --no-print-directory -j2 $(STAMP) binaries
setup-demo:
	@$(MAKE) --no-print-directory -j2 $(STAMP) bins

# Debug build of the binaries alone (make demo): the same features and units as `binaries`.
bins:
	$(CARGO) build --workspace --bins --locked

# Debug build of every target: the binaries the local harness runs and the tests (make test).
binaries:
	$(CARGO) build --workspace --all-targets --locked

# Release zips for Lambda, built the way they are deployed (cargo lambda, zig linker, provided.al2023):
# $(CARGO_TARGET_DIR)/lambda/{preflight,network,service,scaling,spot-fallback}/bootstrap.zip (cargo lambda takes the target dir
# from cargo metadata, which honours CARGO_TARGET_DIR); ARCH=arm64 for Graviton. Not part of
# `make test`: the release build took 16-21 minutes here (the dependencies compiled).
# Non-PIE executables: no load-time relocation table (.rela.dyn was 0.9 MB of the service binary);
# Lambda runs the binary as a process, where address randomisation of the executable buys nothing
# a bootstrap needs. Only for the release target triples, so debug builds keep their cache.
RELEASE_RUSTFLAGS := CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS="-C relocation-model=static" \
	CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUSTFLAGS="-C relocation-model=static"
build: $(STAMP)
	$(RELEASE_RUSTFLAGS) cargo-lambda lambda build --release --output-format zip --workspace --exclude app $(if $(filter arm64,$(ARCH)),--arm64,)

zips: build

fmt:
	$(CARGO) fmt --all

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

unit:
	@if $(CARGO) nextest --version >/dev/null 2>&1; then \
		$(CARGO) nextest run --workspace --locked --no-fail-fast; \
	else \
		$(CARGO) test --workspace --locked --no-fail-fast; \
	fi

# The scenarios on PYTEST_WORKERS pytest-xdist workers, a test module per worker at a time (its
# module fixtures, e.g. one engine, stay on one worker). They mostly wait on loopback servers, so
# more workers than cores pays; each worker runs its own servers and logs (.tmp/test-logs/<worker>).
# Modules start in collection order, the longest first (conftest.LONGEST_FIRST), not xdist's
# most-tests-first order, which left test_soak.py (few tests, minutes long) running alone at the end.
PYTEST_WORKERS ?= 4
integration: $(STAMP) binaries
	$(VENV_PY) -m pytest tests -v -p no:cacheprovider -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=15

# cfn-lint every template with informational rules on; cfn-lint cannot see inside Custom::
# resources, so tests/test_templates.py checks those against the functions' own property types.
# checkov's security checks must all pass: a finding is fixed in the template or skipped on its
# resource with the reason (Metadata: checkov: skip). --skip-download: it fetches nothing.
lint: $(STAMP)
	cfn-lint -c I -- 'cloudformation/**/*.yaml'
	checkov -d cloudformation --framework cloudformation --quiet --compact --skip-download

test: setup tools fmt-check $(if $(CLIPPY_DRIVER),,clippy) unit integration lint
	@echo "make test: all checks passed"

# The product end to end on the local engine: deploy -> tasks -> console-style weights update ->
# tasks -> a doomed deploy -> Spot fallback and recovery -> destroy, checking nothing is left
# (tests/demo.py), the load balancer answering from the sample app's tasks. It deploys the debug
# binaries `make test` builds (`bins`: the same units and features as `binaries`, without the test
# targets, which make test adds), zipped as Lambda zips: one build serves both commands (a cold
# release build alone takes 20 minutes here). `make demo-release`
# deploys the release zips of `make build` instead, as a real account gets them.
demo: setup-demo
	DEMO_ZIPS=debug $(VENV_PY) tests/demo.py

demo-release: $(STAMP) build
	LAMBDA_DIR=$(LAMBDA_DIR) $(VENV_PY) tests/demo.py

# Where we stand, measured side by side in one run (tests/bench.py; docs/benchmarks.md): zip sizes
# and HTTP stacks, each operation's critical path against its dependency-depth bound with a fixed
# latency per AWS call, wait responsiveness, fail-fast times, the demo flow on release vs debug
# zips, cold starts beside a Python crhelper + boto3 handler (tests/bench_coldstart.py, in
# $(BENCH_VENV)). Writes target/bench/report.json and report.md. Not part of make test (it needs make build).
bench: $(STAMP) $(BENCH_STAMP) binaries build
	BENCH_PYTHON=$(CURDIR)/$(BENCH_VENV)/bin/python $(VENV_PY) tests/bench.py

# The sample app's image (app/Dockerfile): docker, podman or buildah, whichever is installed
# (IMAGE_TOOL=... to choose), for the task's CPU architecture (ARCH=arm64 for TaskCpuArchitecture
# ARM64), tagged with the git revision (a dirty tree gets -dirty: tags are immutable in ECR).
# `make push ENV=...` tags it for the environment's repository (the stack's RepositoryUri output),
# logs in to ECR and pushes; then `make deploy ENV=... SET=ImageTag=$$(make -s image-tag)`.
IMAGE_TOOL ?= $(firstword $(foreach tool,docker podman buildah,$(shell command -v $(tool) 2>/dev/null)))
IMAGE_NAME ?= ecs-fargate-sample-app
IMAGE_TAG  ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null)$(shell git diff --quiet HEAD 2>/dev/null || echo -dirty)
IMAGE_PLATFORM := linux/$(if $(filter arm64,$(ARCH)),arm64,amd64)
image-tag:
	@echo $(IMAGE_TAG)

image:
	@test -n "$(IMAGE_TOOL)" || { echo "make image: no docker, podman or buildah found; install one (or set IMAGE_TOOL)"; exit 1; }
	$(IMAGE_TOOL) build --platform $(IMAGE_PLATFORM) -f app/Dockerfile -t $(IMAGE_NAME):$(IMAGE_TAG) .

push: $(STAMP) image
	@repo=$$($(STACKCTL) outputs $(ENV) --get RepositoryUri) && test -n "$$repo" \
	  || { echo "make push: no RepositoryUri output for ENV=$(ENV); deploy the environment first"; exit 1; }; \
	set -e; aws ecr get-login-password | $(IMAGE_TOOL) login --username AWS --password-stdin "$${repo%%/*}"; \
	$(IMAGE_TOOL) tag $(IMAGE_NAME):$(IMAGE_TAG) "$$repo:$(IMAGE_TAG)"; \
	$(IMAGE_TOOL) push "$$repo:$(IMAGE_TAG)"; \
	echo "pushed $$repo:$(IMAGE_TAG); next: make deploy ENV=$(ENV) SET=ImageTag=$(IMAGE_TAG)"

# The protocol library's lifecycle rules through the example resource (tests/demo_protocol.py).
demo-protocol: $(STAMP) binaries
	$(VENV_PY) tests/demo_protocol.py

# Reliability under AWS's faults (docs/reliability.md): tests/test_soak.py's lifecycles, more
# rounds than make test runs, through the fault-injecting proxy; figures in target/soak/report.json.
soak: $(STAMP) binaries
	SOAK_ROUNDS=$(or $(SOAK_ROUNDS),5) $(VENV_PY) tests/soak.py

# --- one environment's stack (cloudformation/stackctl.py does the work; see its docstring) ---

# Provider zips to s3://$(BUCKET)/<AppName>/provider/<content hash>/ (new code, new keys, so
# CloudFormation updates the functions), nested templates via `aws cloudformation package`;
# writes .build/$(ENV)/environment.packaged.yaml and .build/$(ENV)/code.json. Needs `make build` first.
package: $(STAMP)
	$(STACKCTL) package $(ENV) --bucket '$(BUCKET)' --lambda-dir '$(LAMBDA_DIR)' $(BUILD_DIR_ARG)

# `aws cloudformation deploy` with params/$(ENV).json + code.json (+ SET='Key=Value ...'), the
# stack's events (nested stacks included) while it runs, then the outputs.
deploy: package
	$(STACKCTL) deploy $(ENV) $(foreach kv,$(SET),--set '$(kv)') $(BUILD_DIR_ARG)

# Console-style update: previous template, previous values for every other parameter.
weights: $(STAMP)
	$(STACKCTL) weights $(ENV) --fargate '$(FARGATE)' --spot '$(SPOT)' $(if $(BASE),--base '$(BASE)')

tasks: $(STAMP)
	$(STACKCTL) tasks $(ENV)

outputs: $(STAMP)
	$(STACKCTL) outputs $(ENV)

events: $(STAMP)
	$(STACKCTL) events $(ENV) --tail 40 $(if $(FOLLOW),--follow)

destroy: $(STAMP)
	$(STACKCTL) destroy $(ENV) $(if $(YES),--yes)

clean:
	rm -rf $(VENV) $(BENCH_VENV) .tmp .build
