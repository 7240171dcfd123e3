# Shardwise — the two commands are `make demo` and `make test`.
SWIFT ?= swift
RELEASE_FLAGS := -c release
BIN := .build/release/shardwise

.PHONY: setup setup-mpi build release demo test test-core bench bench-mpi bench-solvers bench-csv plots fuzz clean

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
	@if command -v mpirun >/dev/null 2>&1 && pkg-config --exists ompi-c 2>/dev/null; then $(MAKE) --no-print-directory bench-mpi; \
	else echo "bench: no mpirun/OpenMPI here, so no MPI all-reduce benchmark (make setup-mpi installs it)"; fi
	$(MAKE) --no-print-directory bench-solvers
	$(MAKE) --no-print-directory bench-csv

## Time to solution against scikit-learn on the same 200000 × 200 file (cg vs LinearRegression, lbfgs vs
## LogisticRegression), then rounds to ε of every solver and strategy. Installs numpy/scikit-learn with pip.
bench-solvers: release
	python3 Benchmarks/scripts/solvers.py --binary $(BIN) $(SOLVER_BENCH_ARGS)

## The CSV reader against pandas.read_csv (C engine) and numpy.loadtxt on a 500000 × 21 file of %.10g
## numbers (138 MB), alternating rounds, medians, MB/s; the bar is ours ≥ pandas. Installs pandas with pip.
bench-csv: release
	python3 Benchmarks/scripts/csv.py --binary $(BIN) $(CSV_BENCH_ARGS)

## All-reduce of 1e3…1e7 doubles on 2 MPI ranks: MPI_Allreduce vs our ring over MPI vs our ring over
## sockets. A hidden mode of the binary started by mpirun: package-benchmark cannot start its suites
## as MPI ranks. As root, OpenMPI needs its two "allow root" variables (CI containers run as root).
MPIRUN_ENV := $(if $(filter 0,$(shell id -u)),OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1,)
bench-mpi: setup-mpi
	$(SWIFT) build $(RELEASE_FLAGS) --scratch-path .build-mpi --traits MPI --product shardwise
	$(MPIRUN_ENV) mpirun -np 2 .build-mpi/release/shardwise mpi bench $(MPI_BENCH_ARGS)

## Scaling plots from the simulator: speedup curves, time breakdowns, loss vs time (PNG in plots/).
plots: release
	@python3 -c "import matplotlib" 2>/dev/null || python3 -m pip install --quiet matplotlib
	@mkdir -p plots
	$(BIN) simulate --quiet --nodes 1..128 --strategy allreduce --allreduce ring --latency 2us --bandwidth 10Gbit/s \
		--synthetic n=65536,d=100,cond=3,seed=1 --lr 0.5 --tolerance 1e-6 --iterations 400 --json plots/ring-2us.json --csv plots/ring-2us.csv
	$(BIN) simulate --quiet --nodes 1..128 --strategy allreduce --allreduce ring --latency 50us --bandwidth 10Gbit/s \
		--synthetic n=65536,d=100,cond=3,seed=1 --lr 0.5 --tolerance 1e-6 --iterations 400 --json plots/ring-50us.json --csv plots/ring-50us.csv
	$(BIN) simulate --quiet --nodes 1..64 --strategy mapreduce --latency 50us --bandwidth 10Gbit/s \
		--synthetic n=65536,d=100,cond=3,seed=1 --lr 0.5 --tolerance 1e-6 --iterations 400 --json plots/mapreduce-50us.json --csv plots/mapreduce-50us.csv
	python3 scripts/plot.py --out plots plots/ring-2us.json plots/ring-50us.json plots/mapreduce-50us.json

## libFuzzer harnesses (nested package Fuzz/, built with -sanitize=fuzzer,address into .build-fuzz): each
## runs FUZZ_RUNS inputs or FUZZ_SECONDS seconds, whichever ends first, from the seeds in Fuzz/Corpus/<name>;
## new corpus entries and crash artifacts go to .build-fuzz/, never into the tree. Not part of `make test`.
## E.g. `make fuzz FUZZ_SECONDS=0` runs the full million each; FUZZ_TARGETS=FuzzCSV picks one.
## Linked with the toolchain's lld: gold stops on these links with an internal error in its DWARF reader.
## -fork=1: each harness runs in child processes that libFuzzer restarts, so the resident memory that
## grows by a few KB per input in every harness (cause not pinned down) never reaches libFuzzer's 2 GB
## limit; an input that really allocates too much still stops the run (oom-* artifact).
FUZZ_RUNS ?= 1000000
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= FuzzFrame FuzzHandshake FuzzCSV FuzzLIBSVM FuzzNPY
FUZZ_FLAGS := -c release --scratch-path ../.build-fuzz -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library -Xswiftc -enable-testing -Xswiftc -use-ld=lld
fuzz: setup
	cd Fuzz && $(SWIFT) build $(FUZZ_FLAGS)
	@mkdir -p .build-fuzz/artifacts
	@for t in $(FUZZ_TARGETS); do \
		mkdir -p .build-fuzz/corpus/$$t; \
		echo "fuzz: $$t ($(FUZZ_RUNS) runs, at most $(FUZZ_SECONDS) s)"; \
		SWIFT_BACKTRACE=enable=no ASAN_OPTIONS=detect_leaks=0 .build-fuzz/release/$$t -fork=1 -runs=$(FUZZ_RUNS) \
			-max_total_time=$(FUZZ_SECONDS) -max_len=4096 -artifact_prefix=.build-fuzz/artifacts/$$t- \
			.build-fuzz/corpus/$$t Fuzz/Corpus/$$t 2>.build-fuzz/$$t.log || { tail -40 .build-fuzz/$$t.log; exit 1; }; \
		grep -E "^#[0-9]+:" .build-fuzz/$$t.log | tail -1; \
	done

clean:
	rm -rf .build .build-* Benchmarks/.build
