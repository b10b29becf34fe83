# Preftune: `make demo` runs the main job (SFT then DPO on the project's synthetic data) through the operator on a
# local single-node cluster it starts (root); `make test` runs every test, building what it needs (envtest's
# binaries from source, PyTorch from Debian); `make test-e2e` runs the end-to-end tests on the local cluster.
SHELL := /usr/bin/env bash -o pipefail
GO ?= go
ENVTEST_DIR ?= $(CURDIR)/bin/envtest
BIN ?= $(CURDIR)/bin
GOTEST_FLAGS ?= -timeout 45m
CONTROLLER_GEN = $(GO) tool controller-gen

.PHONY: all
all: build

##@ Build
.PHONY: build manager trainer trainer-openblas
build: manager trainer ## Build the manager and the (pure Go) trainer into bin/.

manager: ## Build the operator's manager.
	$(GO) build -o $(BIN)/manager ./cmd/manager

trainer: ## Build the trainer (pure Go, runs anywhere).
	$(GO) build -o $(BIN)/preftune-trainer ./cmd/trainer

trainer-openblas: ## Build the trainer with OpenBLAS (cgo; needs libopenblas-dev).
	hack/install-openblas.sh
	CGO_ENABLED=1 $(GO) build -tags openblas -o $(BIN)/preftune-trainer-openblas ./cmd/trainer

IMG ?= ghcr.io/preftune/preftune:dev
PUSH ?=
.PHONY: image
image: ## Build the manager+trainer image without docker into bin/image (OCI layout, tarball); PUSH=1 pushes IMG.
	IMG=$(IMG) PUSH=$(PUSH) hack/build-image.sh

##@ Generated files
.PHONY: manifests generate verify chart
chart: ## Regenerate charts/preftune from config/ (never edit the chart by hand).
	hack/gen-chart.sh

manifests: ## Generate CRDs and RBAC from the API types and markers.
	$(CONTROLLER_GEN) rbac:roleName=manager-role crd paths="./api/..." paths="./controllers/..." \
		output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac

generate: ## Generate deepcopy functions.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./api/..."

verify: manifests generate ## Fail when generated files are stale or Go files are not gofmt'ed.
	@$(MAKE) --no-print-directory chart >/dev/null && git diff --exit-code -- api config charts && test -z "$$(git status --porcelain --untracked-files=all -- charts)" || { git status --short -- charts; echo "generated files are stale: run 'make manifests generate chart' and commit"; exit 1; }
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "run gofmt"; exit 1; }

##@ Test
.PHONY: test envtest torch vet
envtest: ## Build envtest's kube-apiserver and etcd from source (cached in bin/envtest).
	hack/envtest/build.sh

torch: ## Install Debian's PyTorch for the cross-framework check (the check skips, saying so, without apt).
	@hack/install-torch.sh >/dev/null || echo "PyTorch could not be installed: test/crossframework will skip"

vet:
	$(GO) vet ./...

test: envtest torch vet ## Run all tests: unit, trainer, envtest suite, cross-framework.
	KUBEBUILDER_ASSETS=$(ENVTEST_DIR) $(GO) test $(GOTEST_FLAGS) ./...

##@ Benchmarks
.PHONY: bench
bench: envtest ## Print benchmark figures (operator on envtest, trainer throughput).
	hack/bench.sh

##@ Demo and the local cluster
.PHONY: demo demo-local cluster-up cluster-down deploy
demo: ## On the local cluster (started, root): install, then SFT and DPO on the synthetic dataset, live; USE_KUBECONFIG=1 IMG=... for another cluster; MODEL=<dir|uri> from a pretrained model.
	hack/demo.sh

demo-local: ## The same job without Kubernetes: the bundled trainer on this machine (MODEL=<dir|uri> as for demo).
	hack/demo-local.sh

cluster-up: ## Start the local single-node cluster (root; builds Kubernetes v1.37.2 from source once).
	hack/cluster/up.sh

cluster-down: ## Stop the local cluster and restore the host's settings.
	hack/cluster/down.sh

deploy: ## Build and push the image, then helm upgrade --install the operator (KUBECONFIG, IMG).
	hack/cluster/deploy.sh

##@ End-to-end
.PHONY: test-e2e
test-e2e: ## End-to-end tests on the local cluster (root; started if needed and left up).
	hack/e2e.sh

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_-]+:.*##/ { printf "  %-18s %s\n", $$1, $$2 } /^##@/ { printf "\n%s\n", substr($$0, 5) }' $(MAKEFILE_LIST)
