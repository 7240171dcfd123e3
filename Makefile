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

## Benchmarks (package-benchmark, nested package in Benchmarks/).
bench: setup
	cd Benchmarks && $(SWIFT) package --allow-writing-to-package-directory benchmark

clean:
	rm -rf .build .build-* Benchmarks/.build
