# Vigil — real-time fraud detection. `make help` lists the targets.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

INFRA := deploy/local/infra.sh
VAR ?= $(CURDIR)/var
BIN ?= $(VAR)/bin
SERVICES := ingest feature-window scoring alerting
PROTOC_GEN_GO_VERSION := v1.36.12
# Run a command with the local infrastructure's addresses in the environment.
WITH_INFRA = set -a && eval "$$($(INFRA) env)" && set +a &&
GO_TEST_FLAGS ?=

.PHONY: help
help: ## list targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-18s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

## ---------------------------------------------------------------- build

.PHONY: build
build: ## build every service and vigilctl into var/bin
	@mkdir -p $(BIN)
	@for s in $(SERVICES); do go build -o $(BIN)/$$s ./services/$$s; done
	@go build -o $(BIN)/vigilctl ./cmd/vigilctl
	@go build -o $(BIN)/vigil-send ./loadtest/cmd/vigil-send
	@go build -o $(BIN)/vigil-load ./loadtest/cmd/vigil-load
	@echo "built into $(BIN): $(SERVICES) vigilctl vigil-send vigil-load"

.PHONY: proto
proto: ## regenerate proto/gen from proto/fraud/v1
	@mkdir -p $(BIN)
	@GOBIN=$(BIN) go install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	@rm -rf proto/gen/fraud && mkdir -p proto/gen
	@PATH=$(BIN):$$PATH protoc -I proto -I /usr/include --go_out=proto/gen \
		--go_opt=module=github.com/vigil-fraud/vigil/proto/gen proto/fraud/v1/*.proto
	@echo "regenerated proto/gen"

.PHONY: proto-check
proto-check: ## fail when proto/gen is stale
	@mkdir -p $(BIN) && tmp=$$(mktemp -d) && trap 'rm -rf $$tmp' EXIT && \
	GOBIN=$(BIN) go install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION) && \
	PATH=$(BIN):$$PATH protoc -I proto -I /usr/include --go_out=$$tmp \
		--go_opt=module=github.com/vigil-fraud/vigil/proto/gen proto/fraud/v1/*.proto && \
	if ! diff -r $$tmp/fraud proto/gen/fraud >/dev/null; then \
		diff -r $$tmp/fraud proto/gen/fraud | head -20; \
		echo "proto/gen is stale: run 'make proto' and commit" >&2; exit 1; fi
	@echo "proto/gen is fresh"

.PHONY: lint
lint: ## gofmt and go vet
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [[ -n "$$out" ]]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	@go vet work
	@echo "lint ok"

## ---------------------------------------------------------------- infrastructure

.PHONY: infra-up infra-down infra-reset infra-status topics migrate
infra-up: ## start Kafka (KRaft), Redis and Postgres on loopback (idempotent)
	@$(INFRA) up
infra-down: ## stop them
	@$(INFRA) down
infra-reset: ## stop them and delete their data (keeps the jar cache)
	@$(INFRA) reset
infra-status: ## show what runs
	@$(INFRA) status
topics: infra-up ## create the pipeline topics
	@$(WITH_INFRA) $(BIN)/vigilctl topics
migrate: infra-up ## apply Postgres migrations
	@$(WITH_INFRA) $(BIN)/vigilctl migrate

## ---------------------------------------------------------------- run

.PHONY: demo down
demo: ## start everything, send sample traffic, print the URLs; Ctrl-C stops it all
	@deploy/local/demo.sh

down: ## stop the demo services and the infrastructure
	@deploy/local/demo.sh stop
	@$(INFRA) down

## ---------------------------------------------------------------- test

.PHONY: test test-unit test-integration fuzz bench bench-full bench-micro bench-ingest bench-feature-window bench-commit-curve bench-scoring bench-alerting models-eval
# Integration tests write screenshots and other artifacts here.
export VIGIL_TEST_ARTIFACTS ?= $(CURDIR)/.artifacts
test: ## everything: proto freshness, lint, unit, integration and end-to-end on the real infrastructure, short fuzzing
	@$(MAKE) --no-print-directory proto-check lint check-observability
	@$(MAKE) --no-print-directory infra-up
	@$(WITH_INFRA) go test -count=1 -timeout 20m $(GO_TEST_FLAGS) work
	@$(MAKE) --no-print-directory fuzz

.PHONY: check-observability
check-observability: ## parse the Prometheus config and alert rules (PromQL included) with promtool
	@promtool check config deploy/observability/prometheus/prometheus.yml >/dev/null
	@promtool check rules deploy/observability/prometheus/rules/*.yml >/dev/null
	@echo "prometheus config and rules ok"

FUZZTIME ?= 10s
# FuzzIngestAPI's inputs are ten values and whole batch bodies: shrinking each new one for the
# default 60 s left the workers minimizing for most of a run, so it is bounded by a count.
FUZZMINIMIZE ?= 2000x
fuzz: ## run each fuzz target for FUZZTIME (default 10s): ingest's decoders, the ingest and analyst APIs (every OpenAPI operation), account state decoding, model artifacts, the decision sink's JSON
	@go test -run '^$$' -fuzz '^FuzzDecodeValidate$$' -fuzztime $(FUZZTIME) ./services/ingest/internal/httpapi
	@go test -run '^$$' -fuzz '^FuzzFastDecodeMatchesEncodingJSON$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZE) ./services/ingest/internal/httpapi
	@go test -run '^$$' -fuzz '^FuzzIngestAPI$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZE) ./services/ingest/internal/httpapi
	@go test -run '^$$' -fuzz '^FuzzAnalystAPI$$' -fuzztime $(FUZZTIME) ./services/alerting/internal/httpapi
	@go test -run '^$$' -fuzz '^FuzzAccountCodec$$' -fuzztime $(FUZZTIME) ./models/features
	@go test -run '^$$' -fuzz '^FuzzDecodeArtifact$$' -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZE) ./models/model
	@go test -run '^$$' -fuzz '^FuzzAppendFloat$$' -fuzztime $(FUZZTIME) ./services/scoring/internal/jsonenc
	@go test -run '^$$' -fuzz '^FuzzAppendString$$' -fuzztime $(FUZZTIME) ./services/scoring/internal/jsonenc

test-unit: ## fast tests only (no broker, Redis or Postgres)
	@go test -short -count=1 $(GO_TEST_FLAGS) work

test-integration: infra-up ## all tests against the real infrastructure, without lint and fuzzing
	@$(WITH_INFRA) go test -count=1 -timeout 20m $(GO_TEST_FLAGS) work

# The benchmarks score with a trained model, so their detection numbers mean something: the
# shipped reference model (models/artifacts, `make default-model`: the models-eval LR recipe on
# the Handbook simulator's seed 0, other customers than the load's seed 1).
BENCH_MODEL ?= $(CURDIR)/models/artifacts/handbook-lr.json
bench: infra-up build $(BENCH_MODEL) ## smoke load test (≤ 5 min): 4 services, scoring with the trained LR, open-loop 200 tx/s for 30 s, checker, raw baselines; fails only on errors or lost transactions
	@$(WITH_INFRA) $(BIN)/vigil-load run --bin $(BIN) --rate 200 --duration 30s --warmup 5s --timeout 5m --results loadtest/results \
		--service-env VIGIL_SCORING_MODEL_PATH=$(BENCH_MODEL)

# Payment systems micro-batch (20 per request, ≤ 5 ms wait) and every phase is profiled (pprof/).
BENCH_FULL_FLAGS ?= --batch 20 --batch-wait 5ms --profile 10s
bench-full: infra-up build $(BENCH_MODEL) ## full benchmark: find-max ladder, SLO 100 ms, scoring with the trained LR, baselines, plots, profiles; rewrites docs/benchmarks.md
	@$(WITH_INFRA) $(BIN)/vigil-load run --bin $(BIN) --find-max --find-past-slo --find-start 125 --find-factor 2 --find-step 20s \
		--warmup 10s --slo 100ms --timeout 15m --results loadtest/results --docs docs/benchmarks.md $(BENCH_FULL_FLAGS) \
		--service-env VIGIL_SCORING_MODEL_PATH=$(BENCH_MODEL)

bench-micro: infra-up ## go test benchmarks against the real infrastructure, with raw baselines
	@$(WITH_INFRA) go test -run '^$$' -bench . -benchtime 2000x -count 1 \
		./libs/... ./services/feature-window/... ./services/scoring/...

bench-ingest: infra-up ## ingest ack latency and throughput vs a raw franz-go produce loop (≤ 60 s; INGESTBENCH_FLAGS=--profile-dir=DIR for CPU profiles)
	@mkdir -p $(BIN)
	@go build -o $(BIN)/ingest ./services/ingest
	@$(WITH_INFRA) go run ./loadtest/ingestbench --ingest-bin $(BIN)/ingest $(INGESTBENCH_FLAGS)

FWBENCH_FLAGS ?= -n 120000
bench-feature-window: infra-up ## feature-window vs a raw franz-go EOS relay: tx/s, Redis round trips/tx, p99 added latency (3 rounds, median ratio)
	@$(WITH_INFRA) cd loadtest && go run ./fwbench $(FWBENCH_FLAGS)
# 400,000 transactions: at long intervals the relay's output comes in a few commits, and fewer
# than 8 reads of it are not timed.
bench-commit-curve: infra-up ## feature-window throughput and latency at several Kafka commit intervals, next to the raw relay at the same intervals
	@$(WITH_INFRA) cd loadtest && go run ./fwbench -n 400000 -rate 500 -commit-intervals $${INTERVALS:-0,20ms,50ms,100ms}

bench-scoring: infra-up ## scoring vs raw EOS relay, decision sink vs row-by-row, model µs/tx
	@$(WITH_INFRA) go run ./loadtest/scoringbench -n 5000 -timeout 60s
	@go test -run '^$$' -bench . -benchmem -benchtime 2000x -count 1 ./services/scoring/internal/modelset/ ./services/scoring/internal/decide/

bench-alerting: infra-up ## alerts/s from decisions.v1 and queue p99 at 1M alerts, with raw baselines (each ≤ 60 s)
	@$(WITH_INFRA) go test -run '^$$' -bench 'AlertsFromKafka|QueueP99' -benchtime 1x ./services/alerting/internal/store/

## ---------------------------------------------------------------- chaos

# The chaos run kills its broker, Redis and Postgres: it starts private ones on these ports
# (never the shared infra-up ones) with their state under CHAOS_VAR.
CHAOS_VAR ?= $(VAR)/chaos
CHAOS_PORTS ?= --kafka-port 29092 --kafka-controller-port 29093 --redis-port 56390 --pg-port 55440
CHAOS_FLAGS ?= --duration 13m --rate 40 --seed 1
.PHONY: chaos chaos-short
chaos-short: ## the CI-sized chaos run alone (≈ 3 min, one fault of each kind, private infrastructure; also part of make test)
	@cd loadtest && go test -count=1 -run TestChaosShort -v -timeout 15m ./chaos
chaos: ## full fault-injection run (≤ ~20 min): ≥20 SIGKILLs per service, broker/Redis/Postgres restarts, rebalances, fenced zombies; invariant checker and card-number scan
	@cd loadtest && go run ./chaos $(CHAOS_FLAGS) --var-dir $(CHAOS_VAR) $(CHAOS_PORTS) --out $(CURDIR)/loadtest/results/chaos-$$(date -u +%Y%m%dT%H%M%SZ)

HANDBOOK_DATA ?= $(VAR)/handbook/data.csv
# The reference model shipped in models/artifacts: the images, `make demo` and the benchmarks
# score with it. Fixed seed: the same data and code give the same artifact but for trained_at.
# TestShippedModel (scoring) fails once a feature-schema change makes it stale: run this, commit.
.PHONY: default-model
default-model: ## retrain the shipped reference model models/artifacts/handbook-lr.json (about a minute the first time: simulation and feature cache in var/handbook)
	@mkdir -p $(BIN) $(dir $(HANDBOOK_DATA)) models/artifacts
	@go build -o $(BIN)/vigil-model ./models/cmd/vigil-model
	@test -f $(HANDBOOK_DATA) || $(BIN)/vigil-model simulate --out $(HANDBOOK_DATA)
	@$(BIN)/vigil-model train --data $(HANDBOOK_DATA) --train-start 2018-07-25 --kind lr --out models/artifacts/handbook-lr.json

models-eval: ## Handbook protocol on simulated data: train and evaluate lr, ffnn and gbt on 4 rolling folds
	@mkdir -p $(BIN) $(dir $(HANDBOOK_DATA))
	@go build -o $(BIN)/vigil-model ./models/cmd/vigil-model
	@test -f $(HANDBOOK_DATA) || $(BIN)/vigil-model simulate --out $(HANDBOOK_DATA)
	@for k in lr ffnn gbt; do \
		$(BIN)/vigil-model train --data $(HANDBOOK_DATA) --train-start 2018-07-25 --kind $$k --out $(VAR)/handbook/$$k.json && \
		$(BIN)/vigil-model evaluate --data $(HANDBOOK_DATA) --artifact $(VAR)/handbook/$$k.json --test-start 2018-08-29 --folds 4 \
			--out $(VAR)/handbook/$$k-eval.json || exit 1; done
