# The two commands a newcomer needs: `make demo` and `make test`. Everything else is a step of those.
# Tools come from tests/requirements.txt (pinned, with tests/constraints.txt) into .venv.

SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV      := .venv
PYTHON    ?= python3
VENV_PY   := $(VENV)/bin/python
STAMP     := $(VENV)/.installed
CARGO     ?= cargo
# Reuse a persistent target dir when the caller provides one (CI does); default: ./target.
export CARGO_TARGET_DIR ?= $(CURDIR)/target
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: help test demo build zips fmt fmt-check clippy unit integration lint tools clean

help:
	@echo "make demo   - the example resource's lifecycle on the local emulator (moto), as CloudFormation shows it"
	@echo "make test   - every check: fmt, clippy, unit tests, protocol scenarios through the real binary, template lint"

$(STAMP): tests/requirements.txt tests/constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV_PY) -m pip install --quiet --disable-pip-version-check -r tests/requirements.txt -c tests/constraints.txt
	@touch $@

tools: $(STAMP)
	@$(VENV_PY) -c "import moto; print('moto', moto.__version__)"
	@cfn-lint --version
	@aws --version
	@cargo-lambda lambda --version

build:
	$(CARGO) build --workspace --all-targets --locked

# Release zips for Lambda, built the way they are deployed (cargo lambda, zig linker, provided.al2023):
# target/lambda/<function>/bootstrap.zip; ARCH=arm64 for Graviton. Not part of `make test`: a cold
# build took 12m20s and 11.7 GB of memory here.
zips: $(STAMP)
	cargo-lambda lambda build --release --output-format zip $(if $(filter arm64,$(ARCH)),--arm64,)

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

integration: $(STAMP) build
	$(VENV_PY) -m pytest tests -v -p no:cacheprovider

# cfn-lint every template with informational rules on; cfn-lint cannot see inside Custom::
# resources, so tests/test_templates.py checks those against the functions' own property types.
lint: $(STAMP)
	cfn-lint -c I -- cloudformation/*.yaml cloudformation/examples/*.yaml

test: tools fmt-check build clippy unit integration lint
	@echo "make test: all checks passed"

demo: $(STAMP) build
	$(VENV_PY) tests/demo.py

clean:
	rm -rf $(VENV) .tmp
