# ideapool: `make help` lists what can be done.
SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
GO      ?= go
GOTEST_FLAGS ?= -count=1 -timeout 25m

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make <target>\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Development

.PHONY: run
run: ## Start `ideapool serve` with the embedded defaults (SQLite and a key file under ./data/).
	$(GO) run -ldflags "$(LDFLAGS)" . serve

.PHONY: build
build: ## Build bin/ideapool with the version stamped in.
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/ideapool .

.PHONY: fmt
fmt: ## Format the code.
	gofmt -w $$(git ls-files '*.go')

##@ Testing

.PHONY: test
test: verify-generated ## Run every test (envtest, a throwaway PostgreSQL); fails if generated files drift.
	KUBEBUILDER_ASSETS=$$(hack/envtest-assets.sh) IDEAPOOL_TEST_CRDS=$$(hack/test-crds.sh) IDEAPOOL_PROMTOOL=$$(hack/tools.sh promtool) IDEAPOOL_HELM3=$$(hack/helm.sh 3) IDEAPOOL_HELM4=$$(hack/helm.sh 4) hack/with-postgres.sh $(GO) test $(GOTEST_FLAGS) ./...

.PHONY: lint
lint: ## Run go vet and golangci-lint (pinned, built into ~/.cache/ideapool).
	$(GO) vet ./...
	$$(hack/tools.sh golangci-lint) run ./...

##@ Kubernetes operator

# Generated from the markers in api/ and controllers/; never edited by hand.
GENERATED := api/v1alpha1/zz_generated.deepcopy.go config/crd/bases config/rbac/role.yaml

.PHONY: generate
generate: ## Generate the deepcopy methods of api/v1alpha1 (controller-gen, pinned).
	$$(hack/tools.sh controller-gen) object paths=./api/...

.PHONY: manifests
manifests: ## Generate the CRD (config/crd/bases) and the operator's ClusterRole (config/rbac/role.yaml).
	$$(hack/tools.sh controller-gen) rbac:roleName=ideapool-operator crd paths=./api/... paths=./controllers/... \
		output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac

.PHONY: verify-generated
verify-generated: ## Regenerate deepcopy, CRD and RBAC and fail if that changed anything.
	tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	cp -r --parents $(GENERATED) "$$tmp/"; \
	$(MAKE) --no-print-directory generate manifests; \
	for f in $(GENERATED); do \
		if ! diff -ru "$$tmp/$$f" "$$f"; then \
			echo "generated files are stale: run 'make generate manifests' and commit the result" >&2; exit 1; \
		fi; \
	done

##@ A real node

.PHONY: cluster-up
cluster-up: image ## Start a one-node Kubernetes here (root; pinned parts, hack/cluster.sh) with `make image` imported; kubeconfig ~/.cache/ideapool/cluster/kubeconfig.
	hack/cluster.sh up $(IMAGE_TAR)

.PHONY: cluster-down
cluster-down: ## Stop the node and undo what cluster-up did (processes, mounts, interfaces, iptables rules, sysctls); harmless when none runs.
	hack/cluster.sh down

.PHONY: test-cluster
test-cluster: image ## Run a platform team's journey on the node (helm, kubectl, the API; starts the node when none runs): e2e/cluster_test.go.
	IDEAPOOL_IMAGE_TAR=$(IMAGE_TAR) IDEAPOOL_HELM3=$$(hack/helm.sh 3) IDEAPOOL_HELM4=$$(hack/helm.sh 4) \
		$(GO) test -tags cluster -count=1 -timeout 30m -v -run '^TestCluster$$' ./e2e/

##@ Performance

.PHONY: bench
bench: ## Load-test a fresh server (SQLite, then a throwaway PostgreSQL) against the machine's floors (BENCH_FLAGS=-help).
	hack/with-postgres.sh $(GO) run ./hack/bench $(BENCH_FLAGS)

.PHONY: bench-scale
bench-scale: ## How cost grows with data: 100,000 users, 1,000,000 ideas and sessions, SQLite and PostgreSQL, against the empty database; table, JSON and the SVG plots of the README in hack/bench/scale (about 15 minutes).
	hack/with-postgres.sh $(GO) run ./hack/bench -scale $(BENCH_FLAGS)

.PHONY: bench-operator
bench-operator: ## The operator at scale: 200 IdeasApps in a real API server, time to Ready, peak memory, one rotation (IDEAPOOL_BENCH_APPS, _ALGORITHM, _ROTATION).
	KUBEBUILDER_ASSETS=$$(hack/envtest-assets.sh) $(GO) test -count=1 -timeout 30m -run '^$$' -bench '^BenchmarkOperatorScale$$' -benchtime 1x ./e2e/

##@ Robustness

# Every fuzz target as PACKAGE:NAME; `go test -fuzz` takes one at a time.
FUZZ_TARGETS := ./server:FuzzJSONRPC ./server:FuzzRequestBodies ./internal/token:FuzzVerifyAccess ./internal/keyset:FuzzParse ./internal/password/argon2id:FuzzKey
FUZZTIME ?= 30s

.PHONY: test-faults
test-faults: ## Run the fault tests, slow ones included: crash, database outage, rotation under load, replicas (tag faults).
	hack/with-postgres.sh $(GO) test -tags faults -count=1 -timeout 20m ./e2e/ -run Fault

.PHONY: fuzz
fuzz: ## Fuzz each target for FUZZTIME (default 30s); failing inputs are saved under the package's testdata/fuzz/.
	failed=""; \
	for t in $(FUZZ_TARGETS); do \
		echo "fuzz: $${t#*:} in $${t%%:*} for $(FUZZTIME)"; \
		$(GO) test -run XXX -fuzz "^$${t#*:}\$$" -fuzztime $(FUZZTIME) "$${t%%:*}" || failed="$$failed $${t#*:}"; \
	done; \
	if [[ -n $$failed ]]; then echo "fuzz: failed:$$failed" >&2; exit 1; fi

##@ Packaging

IMG ?= ghcr.io/ideapool/ideapool:$(VERSION)
CONTAINER_TOOL ?= docker
BINDIR ?= $(HOME)/.local/bin
CHART := charts/ideapool

.PHONY: docker-build
docker-build: ## Build the image IMG (default ghcr.io/ideapool/ideapool:VERSION) from the Dockerfile.
	$(CONTAINER_TOOL) build --build-arg VERSION=$(VERSION) --build-arg IMAGE=$(IMG) -t $(IMG) .

IMAGE_TAR ?= bin/ideapool-image.tar

.PHONY: image
image: build ## Build the image as an OCI archive IMAGE_TAR without docker (hack/image): the Dockerfile's image, tagged IMG and the chart's default.
	$(GO) run ./hack/image app -binary bin/ideapool -version $(VERSION) -app-image $(IMG) -tag $(IMG) -chart $(CHART) -o $(IMAGE_TAR)

.PHONY: docker-push
docker-push: ## Push the image IMG.
	$(CONTAINER_TOOL) push $(IMG)

.PHONY: install-plugin
install-plugin: build ## Install bin/ideapool as kubectl-ideapool into BINDIR (default ~/.local/bin): `kubectl ideapool login|credential|setup-cluster|keys|rotate|revoke`.
	mkdir -p "$(BINDIR)"
	install -m 0755 bin/ideapool "$(BINDIR)/kubectl-ideapool"

.PHONY: chart-crd
chart-crd: ## Copy the generated CRD (config/crd/bases) into the Helm chart; run after `make manifests`.
	cp config/crd/bases/ideapool.dev_ideasapps.yaml $(CHART)/files/crds/

.PHONY: helm-lint
helm-lint: ## helm lint the chart with Helm 3 and 4, with its defaults and every ci/*-values.yaml.
	for h in $$(hack/helm.sh 3) $$(hack/helm.sh 4); do \
		$$h lint --strict $(CHART); \
		for f in $(CHART)/ci/*-values.yaml; do $$h lint --strict $(CHART) -f "$$f"; done; \
	done
