#!/usr/bin/env python3
"""Peak memory of sparse training from a LIBSVM file, against the CSR's bytes.

Writes a seeded 100 000 × 50 000 LIBSVM file with 40 distinct columns a row (4 M nonzeros; values
in [0.5, 1.5), labels −1/+1 from a planted logistic model), then runs

    /usr/bin/time -f %M shardwise train --data FILE --objective logistic --lambda 1e-4 --nodes 3 …

and prints the peak RSS beside the CSR's bytes (values 8 B + column indices 4 B per nonzero, one
8-byte offset per row). Usage: sparse_memory.py [--binary .build/release/shardwise] [--file PATH]
[--rows N] [--columns D] [--per-row K] [-- extra train flags].
"""
import argparse, math, os, random, subprocess, sys, tempfile

def write(path, rows, columns, per_row, seed=1):
    rng = random.Random(seed)
    planted = [rng.uniform(-2, 2) for _ in range(columns)]
    with open(path, "w") as f:
        for _ in range(rows):
            cols = sorted(rng.sample(range(columns), per_row))
            vals = [round(0.5 + rng.random(), 4) for _ in cols]
            z = sum(v * planted[j] for j, v in zip(cols, vals)) / math.sqrt(per_row)
            label = "+1" if rng.random() < 1 / (1 + math.exp(-z)) else "-1"
            f.write(label + "".join(f" {j + 1}:{v}" for j, v in zip(cols, vals)) + "\n")

def main():
    p = argparse.ArgumentParser()
    p.add_argument("--binary", default=".build/release/shardwise")
    p.add_argument("--file")
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--columns", type=int, default=50_000)
    p.add_argument("--per-row", type=int, default=40)
    p.add_argument("extra", nargs="*")
    a = p.parse_args()
    path = a.file or os.path.join(tempfile.gettempdir(), f"sparse-{a.rows}x{a.columns}x{a.per_row}.svm")
    if not os.path.exists(path):
        write(path, a.rows, a.columns, a.per_row)
    nnz = a.rows * a.per_row
    csr = nnz * (8 + 4) + (a.rows + 1) * 8
    cmd = ["/usr/bin/time", "-f", "%M", a.binary, "train", "--data", path, "--objective", "logistic", "--lambda", "1e-4",
           "--nodes", "3", "--quiet"] + a.extra
    run = subprocess.run(cmd, capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit(f"train failed ({run.returncode}):\n{run.stderr}")
    peak = int(run.stderr.strip().splitlines()[-1]) * 1024
    print(run.stdout)
    print(f"file {path}: {a.rows} × {a.columns}, {nnz} nonzeros, {os.path.getsize(path) / 2**20:.1f} MiB of text")
    print(f"CSR {csr / 2**20:.1f} MiB; peak RSS {peak / 2**20:.1f} MiB = {peak / csr:.2f}× the CSR")

if __name__ == "__main__":
    main()
