# mesolite — every entry point a developer or CI uses. `make help` lists the targets.
# The recipes live in scripts/ so that they can be read and run on their own.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

VENV := $(CURDIR)/.venv
# Molecule and ansible-lint call ansible-config, ansible-playbook, ... from PATH: the venv's first.
export PATH := $(VENV)/bin:$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg

# The lab: a user-defined Docker network; node names and addresses come from inventories/lab.
LAB_NETWORK ?= mesolite-lab
LAB_SUBNET ?= 192.168.56.0/24
export MESOLITE_LAB_NETWORK := $(LAB_NETWORK)
export MESOLITE_LAB_SUBNET := $(LAB_SUBNET)

NODE ?= node1
# How many Molecule scenarios molecule-all runs at a time (each is a few containers; 2 suits 2 cores).
MOLECULE_JOBS ?= 2
export MOLECULE_JOBS
SCENARIO ?= common
# Every Molecule scenario under molecule/, discovered so that new ones are tested without edits here.
SCENARIOS := $(sort $(patsubst molecule/%/molecule.yml,%,$(wildcard molecule/*/molecule.yml)))
# Images other than the base build on its rootfs, so the base goes first.
IMAGE_BUILDS := $(filter-out images/base/build.sh,$(sort $(wildcard images/*/build.sh)))

# The venv is rebuilt only when one of these changes.
VENV_STAMP := $(VENV)/.mesolite-installed
VENV_INPUTS := requirements/controller.txt runtime/pyproject.toml scripts/venv.sh scripts/install-pymesos.sh

.PHONY: help deps docker images venv lab lab-down shell molecule lint pytest molecule-all vagrant-check test bench bench-reliability bench-lb fuzz

help: ## Show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{ printf "  make %-12s %s\n", $$1, $$2 }'

deps: ## Install the Debian packages the controller needs and start the apt cache
	@scripts/deps.sh

docker: deps ## Start dockerd if none is running
	@scripts/docker-up.sh

images: docker ## Build the local images (only what changed): base first, then every images/*/build.sh
	@images/base/build.sh
	@for build in $(IMAGE_BUILDS); do $$build; done

venv: $(VENV_STAMP) ## Create/update .venv (pinned tools, runtime package, test clients)

$(VENV_STAMP): $(VENV_INPUTS) | deps
	@echo "Installing the controller venv in $(VENV)"
	@scripts/venv.sh $(VENV)
	@touch $@

lab: images venv ## Bring up node1/node2 and converge site.yml against them
	@scripts/lab-up.sh

lab-down: ## Remove the lab containers, their volumes and network
	@scripts/lab-down.sh

shell: ## Open a shell on a lab node: make shell NODE=node2
	@docker exec -it $(NODE) bash -l

molecule: images venv ## Run one Molecule scenario: make molecule SCENARIO=common
	molecule test -s $(SCENARIO)

lint: venv ## ansible-lint (production profile), yamllint, role READMEs against argument_specs, ruff
	ansible-lint
	yamllint --strict .
	python3 scripts/check-role-docs.py
	ruff check runtime
	ruff format --check runtime
	ruff check --config runtime/pyproject.toml molecule bench scripts
	ruff format --check --config runtime/pyproject.toml molecule bench scripts

pytest: images venv ## The runtime's Python tests (integration tests use dockerd and ZooKeeper)
	cd runtime && pytest

molecule-all: images venv ## Every Molecule scenario, MOLECULE_JOBS at a time (logs in .molecule-logs/)
	@scripts/molecule-all.sh $(SCENARIOS)

vagrant-check: images venv ## `vagrant up --provider=docker` of the two-node lab, the runbook checks, then destroy
	@scripts/vagrant-check.sh

test: lint pytest molecule-all vagrant-check ## Everything CI runs: lint, Python tests, every Molecule scenario, Vagrant

bench: venv ## Benchmarks (writes docs/benchmarks.md)
	@if [ -x bench/run.sh ]; then bench/run.sh; else echo "There are no benchmarks yet (bench/run.sh)"; fi

bench-reliability: venv ## Faults under load: failover times, failed requests (writes docs/reliability.md, ~5 min)
	@bench/reliability.sh

bench-lb: venv ## Requests through marathon-lb while an app scales, rolls, fails (writes docs/benchmarks.md, ~4 min)
	@bench/lb-load.sh

fuzz: venv ## The property-based fuzz suite, long profile (random, many examples; findings in /tmp/fuzz-findings.md)
	cd runtime && MESOLITE_FUZZ_PROFILE=fuzz-long pytest -p no:cacheprovider tests/fuzz
