# goscaler — `make help` lists the targets.
GO       ?= go
BIN      ?= bin/goscaler
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -X github.com/goscaler/goscaler/internal/cli.Version=$(VERSION)
GOLANGCI ?= $(shell command -v golangci-lint 2>/dev/null || echo $(shell $(GO) env GOPATH)/bin/golangci-lint)

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*## "}{printf "  %-12s %s\n", $$1, $$2}'

.PHONY: build
build: ## Build bin/goscaler
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/goscaler

.PHONY: demo
demo: ## Run the demo (the README's first command)
	$(GO) run ./cmd/goscaler demo

.PHONY: test
test: ## Run every test, PostgreSQL included (the README's second command)
	./scripts/test.sh

.PHONY: test-short
test-short: ## Unit tests only (no e2e, no demo), with the race detector
	$(GO) test -race -short ./internal/...

.PHONY: bench
bench: ## Run the benchmarks (not the 10k-node collection: make bench-collect)
	$(GO) test -run '^$$' -bench . -skip 'Collect10kNodes' -benchtime 20x ./internal/...

.PHONY: bench-collect
bench-collect: ## 10,000 nodes x 3 http counters every 10 s (about 2 minutes)
	$(GO) test -run '^$$' -bench Collect10kNodes -benchtime 6x -timeout 30m ./internal/controller/

.PHONY: lint
lint: ## gofmt, go vet and golangci-lint
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1)
	$(GO) vet ./...
	$(GOLANGCI) run ./...

.PHONY: tidy
tidy: ## go mod tidy and fail if it changed anything
	$(GO) mod tidy
	git diff --exit-code go.mod go.sum

.PHONY: clean
clean: ## Remove build outputs
	rm -rf bin
