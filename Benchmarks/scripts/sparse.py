#!/usr/bin/env python3
"""The sparse layer against scipy and scikit-learn, on the same LIBSVM file, in one run (issue 13).

A 100 000 × 50 000 matrix with 40 nonzeros per row on average (4 M nonzeros), columns drawn from a
power law (Zipf, s = 1.1, ranks scattered over the column range), values rounded to 4 decimals as
in rcv1, labels −1/+1 from a planted model, written once with sklearn's `dump_svmlight_file`. Then:

* parse: `shardwise sparse-bench` (LIBSVMReader.readSparse, into CSR) against sklearn's
  `load_svmlight_file`, in MB/s of file — bar: ours ≥ 150 MB/s;
* gradient: our fused sparse kernel Xᵀ(Xw − y) against scipy's `X.T @ (X @ w - y)` on the same
  matrix (float64), in CSR bytes per second — bar: ours ≥ 2× scipy; and our kernel's ratio to the
  read ceiling (a pass that only sums the same CSR bytes) measured in the same process.

Medians of the timed repeats (the read ceiling: the fastest of its runs). One core: the binary runs
single-threaded; scipy's sparse products are single-threaded, and BLAS threads are set to 1.

numpy, scipy and scikit-learn are pip-installed here when missing (never in `make test`).
"""
import argparse, json, os, statistics, subprocess, sys, tempfile, time

for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = "1"


def ensure(module, package):
    try:
        __import__(module)
    except ImportError:
        subprocess.check_call([sys.executable, "-m", "pip", "install", "--quiet", "--break-system-packages", package])


ensure("numpy", "numpy")
ensure("scipy", "scipy")
ensure("sklearn", "scikit-learn")
import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402
from sklearn.datasets import dump_svmlight_file, load_svmlight_file  # noqa: E402


def make_file(path, n, d, nnz, zipf, seed):
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, 2 * nnz, size=n)          # uniform in 1 … 2·nnz − 1, mean nnz
    p = 1.0 / np.arange(1, d + 1) ** zipf
    p /= p.sum()
    column_of_rank = rng.permutation(d)
    cols = column_of_rank[rng.choice(d, size=int(counts.sum()), p=p)]
    rows = np.repeat(np.arange(n), counts)
    vals = np.round(rng.random(cols.size), 4) + 1e-4
    x = sp.coo_matrix((vals, (rows, cols)), shape=(n, d)).tocsr()
    x.sum_duplicates()   # a column drawn twice in a row becomes one nonzero
    w_true = rng.standard_normal(d)
    z = x @ w_true
    y = np.where(rng.random(n) < 1 / (1 + np.exp(-z / np.std(z))), 1.0, -1.0)
    dump_svmlight_file(x, y, path, zero_based=False)
    return x.nnz


def bench_w(d):
    return ((7919 * np.arange(d)) % 1000) / 1000 - 0.5


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=".build/release/shardwise")
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--features", type=int, default=50_000)
    ap.add_argument("--nnz", type=int, default=40)
    ap.add_argument("--zipf", type=float, default=1.1)
    ap.add_argument("--parse-repeats", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=30)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="shardwise-sparse-")
    path = os.path.join(tmp, "bench.svm")
    nnz = make_file(path, args.rows, args.features, args.nnz, args.zipf, 13)
    size = os.path.getsize(path)
    print(f"{args.rows} × {args.features}, {nnz} nonzeros (Zipf s = {args.zipf}), LIBSVM file {size / 1e6:.1f} MB")

    # Ours, in one process (parse, kernel, read ceiling).
    out = subprocess.run([args.binary, "sparse-bench", "--libsvm", path, "--parse-repeats", str(args.parse_repeats),
                          "--repeats", str(args.repeats)], check=True, capture_output=True, text=True).stdout
    ours = json.loads(out)

    # sklearn's parser, then scipy's two products on what it read.
    times = []
    for _ in range(args.parse_repeats):
        t0 = time.perf_counter()
        x, y = load_svmlight_file(path, n_features=args.features)
        times.append(time.perf_counter() - t0)
    sk_parse = statistics.median(times)
    x = sp.csr_matrix(x, dtype=np.float64)
    w = bench_w(x.shape[1])
    g = x.T @ (x @ w - y)
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        g = x.T @ (x @ w - y)
        times.append(time.perf_counter() - t0)
    scipy_grad = statistics.median(times)
    csr_bytes = x.data.nbytes + x.indices.nbytes + x.indptr.nbytes

    our_parse = statistics.median(ours["parse_seconds"])
    print(f"\n{'':38} {'seconds':>9} {'rate':>14}  bar")
    rows = []
    parse_ok = size / our_parse / 1e6 >= 150
    rows.append(("LIBSVM parse, ours (readSparse)", our_parse, f"{size / our_parse / 1e6:8.1f} MB/s", "≥ 150 MB/s", parse_ok))
    rows.append(("LIBSVM parse, sklearn load_svmlight_file", sk_parse, f"{size / sk_parse / 1e6:8.1f} MB/s",
                 f"ours {sk_parse / our_parse:.1f}×", None))
    for label in ("f64", "f32"):
        t = statistics.median(ours[f"gradient_seconds_{label}"])
        b = ours[f"csr_bytes_{label}"]
        ceiling = b / min(ours[f"probe_seconds_{label}"])
        rows.append((f"gradient Xᵀ(Xw − y), ours {label}", t, f"{b / t / 1e9:8.2f} GB/s",
                     f"{b / t / ceiling:.0%} of read {ceiling / 1e9:.1f} GB/s", None))
    t64 = statistics.median(ours["gradient_seconds_f64"])
    grad_ok = scipy_grad / t64 >= 2
    rows.append(("gradient, scipy X.T @ (X @ w - y) f64", scipy_grad, f"{csr_bytes / scipy_grad / 1e9:8.2f} GB/s",
                 f"ours {scipy_grad / t64:.2f}× (≥ 2×)", grad_ok))
    for r in rows:
        met = "" if r[4] is None else ("  MET" if r[4] else "  NOT MET")
        print(f"{r[0]:38} {r[1]:9.4f} {r[2]:>14}  {r[3]}{met}")
    ref = float(np.linalg.norm(g))
    agree = abs(ours["gradient_norm_f64"] - ref) / ref
    print(f"\n|g| ours {ours['gradient_norm_f64']:.10g}, scipy {ref:.10g} (relative difference {agree:.1e}); "
          f"CSR bytes ours {ours['csr_bytes_f64']}, scipy {csr_bytes}")
    if agree > 1e-9:
        print("the two gradients differ: the comparison is void")
        sys.exit(1)


if __name__ == "__main__":
    main()
