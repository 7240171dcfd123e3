# Shardwise — the two commands are `make demo` and `make test`.
SWIFT ?= swift
RELEASE_FLAGS := -c release
BIN := .build/release/shardwise

.PHONY: setup setup-mpi build release demo test test-core bench plots clean

setup:
	@scripts/setup.sh

setup-mpi:
	@scripts/setup.sh --mpi

build: setup
	$(SWIFT) build

release: setup
	$(SWIFT) build $(RELEASE_FLAGS) --product shardwise

## The main job on the embedded default problem: every strategy, side by side, checked against LAPACK.
demo: release
	$(BIN) demo

## Unit and integration tests (installs OpenBLAS, LAPACKE and OpenMPI when missing).
test: setup-mpi
	$(SWIFT) build --traits MPI
	$(SWIFT) test --traits MPI

## Without MPI.
test-core: setup
	$(SWIFT) test

## Benchmarks (package-benchmark, nested package in Benchmarks/), then the bandwidth summary table
## (GB/s, ratios to the memory-read probe, the issues' bars). BENCH_ARGS passes options, e.g. --filter.
bench: setup
	cd Benchmarks && $(SWIFT) package --allow-writing-to-package-directory benchmark --no-progress $(BENCH_ARGS)
	cd Benchmarks && $(SWIFT) run -c release BenchSummary

clean:
	rm -rf .build .build-* Benchmarks/.build
