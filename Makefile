# Prefect 1.x agent image and bootstrap toolkit.  `make help` lists the targets.
#
# Every variable below can be overridden: `make build PREFECT_VERSION=1.2.4 IMAGE=my/agent`.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

# Images ------------------------------------------------------------------------------------
IMAGE ?= prefect-agent
DEV_TAG ?= dev$(ARCH_SUFFIX)
PROD_TAG ?= prod$(ARCH_SUFFIX)
RUN_IMAGE ?= $(IMAGE):$(PROD_TAG)
RUN_NAME ?= $(IMAGE)-agent
# The agent exits 3 or 5 after a long API or engine outage (BOOTSTRAP_AGENT_API_OUTAGE_LIMIT):
# Docker restarts it. Bad settings (exit 2) are retried a few times, then left stopped.
RUN_RESTART ?= on-failure:5
RUN_FOLLOW ?= true
# More `docker run` options for `make run`: RUN_ARGS='-v /srv/flows:/flows:ro --memory 2g'.
RUN_ARGS ?=
# Where `make sbom` writes the image's SBOM.
SBOM_FILE ?= sbom.cdx.json
# make run starts the agent as its runtime user straight away (the image's default, root,
# only adds the socket's group and drops root): the socket's group, no capabilities, no new
# privileges.
DOCKER_SOCKET ?= /var/run/docker.sock

# Build-args ---------------------------------------------------------------------------------
# The pinned default base (a real conda distribution) is the Dockerfile's own ARG default.
# Without a registry (OFFLINE_BASE=auto) the build falls back to a Debian base made locally
# from Debian packages.
BASE_IMAGE ?= $(shell sed -n 's/^ARG BASE_IMAGE=//p' prefect-agent-docker/Dockerfile)
LOCAL_BASE_IMAGE ?= prefect-agent-base:bookworm$(ARCH_SUFFIX)
OFFLINE_BASE ?= auto
PYTHON_VERSION ?= 3.11
PREFECT_VERSION ?= 1.2.4
LUME_SERVICES_REPOSITORY ?= https://github.com/slaclab/lume-services
LUME_SERVICES_VERSION ?=
# CA certificate(s) a TLS-intercepting proxy needs, handed to the build as a BuildKit secret
# (never stored in an image). Defaults to the host's own bundle: the build trusts what the
# host trusts. Set it empty to pass none.
EXTRA_CA_CERT ?= $(wildcard /etc/ssl/certs/ca-certificates.crt)
EXTRA_BUILD_FLAGS ?=

# Tools ---------------------------------------------------------------------------------------
# A Docker client that can run BuildKit builds (see scripts/docker-cli.sh); resolved lazily,
# after `engine` may have installed one.
DOCKER ?= $(shell scripts/docker-cli.sh)
VENV ?= .venv
PYTHON ?= python3
PYTEST_ARGS ?=
# make test spreads the tests over this many pytest-xdist workers (tests/conftest.py says how
# they are grouped): containers spend most of their time waiting, so 3 on 2 cores; 0: one
# process, in order.
TEST_WORKERS ?= 3
XDIST = $(if $(filter-out 0,$(TEST_WORKERS)),-n $(TEST_WORKERS) --dist loadgroup)
ENV_FILE ?= $(wildcard .env)

# Build for another platform through QEMU emulation (`make build PLATFORM=linux/arm64`): the
# tags get the architecture as a suffix, the offline base is built for it, and `emulation`
# registers the binfmt handlers first.
PLATFORM ?=
ARCH_SUFFIX := $(if $(PLATFORM),-$(word 2,$(subst /, ,$(PLATFORM))))

VCS_REF := $(or $(shell git rev-parse --verify --quiet HEAD 2>/dev/null),unknown)
# The commit's time: org.opencontainers.image.created and the SBOM's timestamp, so that
# rebuilding one commit gives the same metadata. Set SOURCE_DATE_EPOCH to override.
SOURCE_DATE_EPOCH ?= $(or $(shell git log -1 --format=%ct 2>/dev/null),0)
CREATED := $(shell date -u -d @$(SOURCE_DATE_EPOCH) +%Y-%m-%dT%H:%M:%SZ)
IMAGE_VERSION := $(or $(shell git describe --tags --always --dirty 2>/dev/null),0.0.0-dev)

# The base to build FROM: BASE_IMAGE, or the offline one when the default cannot be pulled
# (an explicitly given BASE_IMAGE never falls back). A shell assignment, so that a failure
# stops the recipe.
RESOLVE_BASE = base=$$(DOCKER=$(DOCKER) BASE_IMAGE=$(BASE_IMAGE) \
	BASE_IMAGE_EXPLICIT=$(if $(filter file,$(origin BASE_IMAGE)),0,1) PLATFORM=$(PLATFORM) \
	LOCAL_BASE_IMAGE=$(LOCAL_BASE_IMAGE) OFFLINE_BASE=$(OFFLINE_BASE) scripts/base-image.sh); \
	digest=$$(DOCKER=$(DOCKER) scripts/base-digest.sh "$$base")
# After a build on a stand-in base: say so last, where it is seen.
REPORT_BASE = if [ "$$base" != "$(BASE_IMAGE)" ]; then \
	echo "note: built on the offline base $$base, not $(BASE_IMAGE) (which cannot be pulled here); label io.prefect-agent.base.requested says so" >&2; fi

BUILD = DOCKER_BUILDKIT=1 $(DOCKER) build --network host --progress plain \
	--file prefect-agent-docker/Dockerfile \
	--build-arg BASE_IMAGE="$$base" \
	--build-arg BASE_REQUESTED="$(BASE_IMAGE)" \
	--build-arg PYTHON_VERSION=$(PYTHON_VERSION) \
	--build-arg PREFECT_VERSION=$(PREFECT_VERSION) \
	--build-arg LUME_SERVICES_REPOSITORY="$(LUME_SERVICES_REPOSITORY)" \
	--build-arg LUME_SERVICES_VERSION="$(LUME_SERVICES_VERSION)" \
	--build-arg IMAGE_VERSION=$(IMAGE_VERSION) \
	--build-arg VCS_REF=$(VCS_REF) \
	--build-arg BASE_DIGEST="$$digest" \
	--build-arg SOURCE_DATE_EPOCH=$(SOURCE_DATE_EPOCH) \
	--build-arg CREATED=$(CREATED) \
	$(if $(PLATFORM),--platform $(PLATFORM)) \
	$(if $(EXTRA_CA_CERT),--secret id=extra_ca$(comma)src=$(EXTRA_CA_CERT)) \
	$(EXTRA_BUILD_FLAGS)
comma := ,

# What `make run` hands the agent from your environment (and .env): BOOTSTRAP_*, PREFECT__*,
# EXTRA_* and the proxy variables, nothing else. EXTRA_CA_CERT naming a file here becomes a
# read-only mount (which flow runs get too); as PEM text it is passed as it is.
PASS_ENV := $(shell env | cut -d= -f1 \
	| grep -E '^(BOOTSTRAP_|PREFECT__|EXTRA_)[A-Za-z0-9_]+$$|^(HTTP|HTTPS|NO)_PROXY$$|^(http|https|no)_proxy$$' \
	| grep -vx EXTRA_CA_CERT | sort -u)
RUN_CA := $(if $(filter environment command line,$(origin EXTRA_CA_CERT)),$(EXTRA_CA_CERT))
RUN_CA_IN_CONTAINER := /etc/prefect-agent/extra-ca.pem
RUN_CA_ARGS = $(if $(RUN_CA),$(if $(wildcard $(RUN_CA)),\
	--volume $(abspath $(RUN_CA)):$(RUN_CA_IN_CONTAINER):ro --env EXTRA_CA_CERT=$(RUN_CA_IN_CONTAINER),\
	--env EXTRA_CA_CERT))

.PHONY: help
help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  \033[1m%-12s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: engine
engine: ## Make sure a Docker engine answers (installs/starts one on a bare Debian host as root)
	@scripts/docker-engine.sh

.PHONY: base
base: engine $(if $(PLATFORM),emulation) ## (Re)build the offline Debian base image from Debian packages
	DOCKER=$(DOCKER) PLATFORM=$(PLATFORM) scripts/local-base-image.sh $(LOCAL_BASE_IMAGE)

.PHONY: build
build: engine $(if $(PLATFORM),emulation) ## Build the dev image ($(IMAGE):$(DEV_TAG)); PLATFORM=linux/arm64 for arm64
	$(RESOLVE_BASE); $(BUILD) --target dev --tag $(IMAGE):$(DEV_TAG) .; $(REPORT_BASE)

.PHONY: build-prod
build-prod: engine $(if $(PLATFORM),emulation) ## Build the prod image ($(IMAGE):$(PROD_TAG)); PLATFORM=linux/arm64 for arm64
	$(RESOLVE_BASE); $(BUILD) --target prod --tag $(IMAGE):$(PROD_TAG) .; $(REPORT_BASE)

.PHONY: emulation
emulation: ## Register QEMU's binfmt handlers so that other platforms' images build and run (Debian, root)
	scripts/emulation.sh $(PLATFORM)

.PHONY: sbom
sbom: ## Copy the SBOM (CycloneDX JSON) of $(RUN_IMAGE) into $(SBOM_FILE)
	container=$$($(DOCKER) create $(RUN_IMAGE)); \
	trap '$(DOCKER) rm $$container >/dev/null' EXIT; \
	$(DOCKER) cp "$$container:/usr/share/doc/prefect-agent/sbom.cdx.json" - | tar -xO >$(SBOM_FILE)
	@echo "$(SBOM_FILE): the SBOM of $(RUN_IMAGE)"

.PHONY: run
run: engine ## Run the agent (replacing an earlier one) with a restart policy, then follow its log
	-@$(DOCKER) rm --force $(RUN_NAME) >/dev/null 2>&1
	$(DOCKER) run --detach --restart $(RUN_RESTART) \
		--name $(RUN_NAME) --network host \
		--volume $(DOCKER_SOCKET):/var/run/docker.sock \
		--user prefect --group-add "$$(stat -c %g $(DOCKER_SOCKET))" \
		--cap-drop ALL --security-opt no-new-privileges \
		--volume $(IMAGE)-cache:/var/cache/prefect-agent \
		$(if $(ENV_FILE),--env-file $(ENV_FILE)) \
		$(foreach name,$(PASS_ENV),--env $(name)) \
		$(RUN_CA_ARGS) \
		$(RUN_ARGS) \
		$(RUN_IMAGE) >/dev/null
	@echo "make run: $(RUN_NAME) runs (restart policy $(RUN_RESTART)); 'make stop' stops it" >&2
	$(if $(filter true,$(RUN_FOLLOW)),$(DOCKER) logs --follow $(RUN_NAME))

.PHONY: stop
stop: ## Stop and remove the agent that make run started
	$(DOCKER) rm --force $(RUN_NAME)

$(VENV)/bin/uv:
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check \
		"$$(grep -E '^uv==' prefect-agent-docker/requirements-dev.lock)"

$(VENV)/.installed: $(VENV)/bin/uv pyproject.toml prefect-agent-docker/requirements-dev.lock
	$(VENV)/bin/uv pip install --quiet --python $(VENV)/bin/python \
		--requirement prefect-agent-docker/requirements-dev.lock --editable .
	touch $@

.PHONY: tools
tools: ## Make sure docker-compose and kubectl are installed (installs them on a Debian host as root)
	scripts/test-tools.sh

.PHONY: venv
venv: $(VENV)/.installed ## Create the host virtualenv with the test and lint tools

.PHONY: lint
lint: venv ## Lint Python (ruff), the Dockerfile (hadolint) and shell scripts (shellcheck)
	$(VENV)/bin/ruff check bootstrap prefect_api_double testbed tests $(wildcard bench)
	$(VENV)/bin/ruff format --check bootstrap prefect_api_double testbed tests $(wildcard bench)
	$(VENV)/bin/hadolint prefect-agent-docker/Dockerfile
	$(VENV)/bin/shellcheck scripts/*.sh prefect-agent-docker/*.sh .ci/run

.PHONY: test
test: ## Run every test: unit, image, end-to-end (builds what they need), then test-prefect-1.4 and test-arm64
	@# Everything the tests need, side by side: lint, the host tools (downloads), the images
	@# (dev then prod, then prefect 1.4.1's) and the arm64 image (QEMU), one log each.
	$(MAKE) --no-print-directory -j 4 --output-sync=target lint tools images image-1.4 image-arm64
	IMAGE=$(IMAGE) DEV_TAG=$(DEV_TAG) PROD_TAG=$(PROD_TAG) DOCKER=$(DOCKER) \
		$(VENV)/bin/pytest $(XDIST) $(PYTEST_ARGS)
	$(MAKE) test-prefect-1.4
	$(MAKE) test-arm64

.PHONY: images
images: engine ## Build the dev image, then the prod image
	$(MAKE) --no-print-directory build
	$(MAKE) --no-print-directory build-prod

# The images of make test's last part, built while the others are (their targets below then
# find them in the build cache).
.PHONY: image-1.4 image-arm64
image-1.4: images
	$(MAKE) --no-print-directory build-prod PREFECT_VERSION=$(PREFECT_1_4) PROD_TAG=$(PREFECT_1_4_TAG)
image-arm64: engine
	$(MAKE) --no-print-directory build-prod PLATFORM=linux/arm64 PROD_TAG=$(PROD_TAG)-arm64 \
		LOCAL_BASE_IMAGE=$(LOCAL_BASE_IMAGE)-arm64

# The last Prefect 1.x release (what lume-services' main branch pins): a second prod image,
# with the prod image tests and the first-flow walkthrough (registration, agent, flow run).
PREFECT_1_4 ?= 1.4.1
PREFECT_1_4_TAG ?= $(PROD_TAG)-prefect-$(PREFECT_1_4)

.PHONY: test-prefect-1.4
test-prefect-1.4: venv ## Build prod with PREFECT_VERSION=1.4.1; run its image and first-flow tests
	$(MAKE) build-prod PREFECT_VERSION=$(PREFECT_1_4) PROD_TAG=$(PREFECT_1_4_TAG)
	IMAGE=$(IMAGE) PROD_TAG=$(PREFECT_1_4_TAG) PREFECT_VERSION=$(PREFECT_1_4) DOCKER=$(DOCKER) \
		$(VENV)/bin/pytest -k "prod or first_flow" tests/image/test_image.py \
		tests/image/test_agent_container.py tests/e2e/test_first_flow.py $(PYTEST_ARGS)

# arm64 through QEMU: the prod image built for linux/arm64 and run emulated (the last part of
# `make test`: about 4 minutes, most of it the arm64 base).
.PHONY: test-arm64
test-arm64: venv ## Build prod for linux/arm64 (QEMU) and run it: prefect, the bootstrap, an agent registering
	$(MAKE) build-prod PLATFORM=linux/arm64 PROD_TAG=$(PROD_TAG)-arm64 \
		LOCAL_BASE_IMAGE=$(LOCAL_BASE_IMAGE)-arm64
	IMAGE=$(IMAGE) ARM64_IMAGE=$(IMAGE):$(PROD_TAG)-arm64 DOCKER=$(DOCKER) \
		$(VENV)/bin/pytest -m arm64 tests/image/test_arm64.py $(PYTEST_ARGS)

.PHONY: e2e
e2e: venv build ## Run only the end-to-end scenario (agent image, API double, flow-run container)
	IMAGE=$(IMAGE) DEV_TAG=$(DEV_TAG) PROD_TAG=$(PROD_TAG) DOCKER=$(DOCKER) \
		$(VENV)/bin/pytest -m e2e $(PYTEST_ARGS)

.PHONY: reliability
reliability: venv build build-prod ## Run only the reliability and security suite (faults, signals, bad input, load)
	IMAGE=$(IMAGE) DEV_TAG=$(DEV_TAG) PROD_TAG=$(PROD_TAG) DOCKER=$(DOCKER) \
		$(VENV)/bin/pytest -m reliability $(PYTEST_ARGS)

.PHONY: bench
bench: venv build build-prod ## Run the benchmarks; print ratios, write bench/results.json
	IMAGE=$(IMAGE) DEV_TAG=$(DEV_TAG) PROD_TAG=$(PROD_TAG) DOCKER=$(DOCKER) \
		$(VENV)/bin/python -m bench

.PHONY: lock
lock: $(VENV)/bin/uv ## Re-resolve the pinned dependency locks from pyproject.toml
	$(VENV)/bin/uv pip compile --quiet pyproject.toml --extra image --universal \
		--python-version 3.9 --custom-compile-command "make lock" \
		--output-file prefect-agent-docker/requirements.lock
	$(VENV)/bin/uv pip compile --quiet pyproject.toml --extra image --extra test --extra lint \
		--universal --python-version 3.9 --custom-compile-command "make lock" \
		--output-file prefect-agent-docker/requirements-dev.lock
	$(VENV)/bin/uv pip compile --quiet pyproject.toml --extra image --extra lume --universal \
		--python-version 3.9 --custom-compile-command "make lock" \
		--constraint prefect-agent-docker/requirements.lock \
		--output-file prefect-agent-docker/requirements-lume.lock

.PHONY: clean
clean: ## Remove the images, the cache volume and the virtualenv
	-$(DOCKER) image rm --force $(IMAGE):$(DEV_TAG) $(IMAGE):$(PROD_TAG) 2>/dev/null
	-$(DOCKER) volume rm $(IMAGE)-cache 2>/dev/null
	rm -rf $(VENV) .pytest_cache .ruff_cache
