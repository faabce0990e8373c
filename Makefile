# taskgrant — every developer and CI entry point. `make test` and `make run` are the two that matter.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

# Every recipe runs with the pinned toolchain first on PATH (Node 24 when the system one is too
# old) and KUBEBUILDER_ASSETS pointing at the control-plane binaries.
WITH_TOOLS := eval "$$(bash hack/toolchain.sh env)" &&
JEST := node --expose-gc --experimental-vm-modules node_modules/jest/bin/jest.js

.PHONY: help toolchain deps build typecheck lint test test-unit test-integration test-chaos chart-test cluster-up cluster-down image plugin run bench clean

help:
	@echo "make test        install what is needed, typecheck, lint, unit + integration tests (the CI command)"
	@echo "make run         local control plane (unless KUBECONFIG is set), CRDs, webhooks, policies; operator in the foreground"
	@echo "make cluster-up  start the local cluster (control plane + a real node) in the background (.local/kubeconfig); make cluster-down stops it and cleans the host"
	@echo "make image       build localhost/taskgrant:dev and localhost/taskgrant-demo-agent:dev and load them into the local node"
	@echo "make plugin      dist/kubectl-taskgrant: the kubectl plugin as one executable with Node inside, its krew archive and manifest"
	@echo "make chart-test  helm lint, helm template and helm install of charts/taskgrant into a local control plane"
	@echo "make test-chaos  a longer crash + API-fault run (1000 + 300 task lifecycles)"
	@echo "make bench       benchmarks beside their baselines; bench/results/latest.json"

toolchain:
	bash hack/toolchain.sh all

# `npm install`, not `npm ci`: npm 11 refuses its own lockfile in `ci` over jest's optional
# @unrs/resolver-binding-* platform packages ("Missing: ... from lock file"); install honours
# the lockfile's versions all the same.
node_modules/.installed: package.json package-lock.json | toolchain
	$(WITH_TOOLS) npm install --no-audit --no-fund --loglevel=error
	touch $@

deps: toolchain node_modules/.installed

build: deps
	$(WITH_TOOLS) npx tsc -p tsconfig.build.json

typecheck: deps
	$(WITH_TOOLS) npx tsc -p tsconfig.json --noEmit

lint: deps
	$(WITH_TOOLS) npx eslint .

test-unit: build
	$(WITH_TOOLS) $(JEST) --selectProjects unit

# The e2e suites run the images built here on the local node.
test-integration: image
	$(WITH_TOOLS) $(JEST) --selectProjects integration --runInBand

test: typecheck lint test-unit test-integration chart-test

# A longer, still bounded run of the crash and API-fault suites (test/chaos.test.ts).
test-chaos: build
	$(WITH_TOOLS) TASKGRANT_CHAOS_LIFECYCLES=1000 TASKGRANT_CHAOS_FAULT_LIFECYCLES=300 $(JEST) --selectProjects integration --runInBand test/chaos

# The Helm chart: lint, render (default and non-default values, each checked by the API server),
# schema refusals, then helm install into a local control plane and the operator run under the
# chart's own RBAC (test/chart/).
chart-test: image
	$(WITH_TOOLS) $(JEST) --selectProjects chart --runInBand

cluster-up: build
	$(WITH_TOOLS) node dist/test/harness/cluster-cli.js up

# Works without a build too: the node's host state is cleaned by a script of its own.
cluster-down:
	@if [ -f dist/test/harness/cluster-cli.js ]; then $(WITH_TOOLS) node dist/test/harness/cluster-cli.js down; else bash hack/node-clean.sh; fi

# Built from ./Dockerfile and examples/demo-agent/Dockerfile without a Docker engine
# (test/harness/images.ts), as OCI archives under .local/images/, loaded into the node if it runs.
image: build
	$(WITH_TOOLS) node dist/test/harness/cluster-cli.js image

# The kubectl plugin as a single executable with Node inside (no Node needed where it runs), the
# krew archive holding it and dist/taskgrant.yaml, the krew manifest with that archive's sha256
# (src/packaging/plugin.ts).
plugin: build
	$(WITH_TOOLS) node dist/src/packaging/plugin.js

run: build
	$(WITH_TOOLS) bash hack/run.sh

# Benchmarks against their baselines, on loopback; results in bench/results/latest.{json,md}.
bench: build
	bash hack/toolchain.sh kyverno
	$(WITH_TOOLS) node dist/bench/run.js

clean:
	rm -rf dist coverage node_modules/.installed
