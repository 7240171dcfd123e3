#!/usr/bin/env python3
"""The CSV reader against pandas on the same file (`make bench-csv`; issue 13).

Writes a 500 000 × 21 CSV of numbers printed with `%.10g` under a header (about 138 MB), then times,
in alternating rounds (ours, pandas, numpy, ours, …), medians:

* ours: `shardwise load-bench --data FILE`, the load alone as the binary reports it (parse, X and y);
* `pandas.read_csv(path, engine="c")`, one core;
* `numpy.loadtxt(path, delimiter=",", skiprows=1)`, for context.

All read the file from the page cache (a first untimed pass warms it). The bar: ours ≥ pandas in MB/s
(median wall seconds); the CPU seconds beside them tell a busy machine's waiting apart.
pandas (and numpy) are pip-installed here when missing (never in `make test`).
"""
import argparse, os, re, resource, statistics, subprocess, sys, tempfile, time

# This file is named csv.py, which would shadow the standard library's csv (pandas imports it):
# its own directory leaves the module path.
sys.path = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]


def ensure(module, package):
    try:
        __import__(module)
    except ImportError:
        subprocess.check_call([sys.executable, "-m", "pip", "install", "--quiet", "--break-system-packages", package])


ensure("numpy", "numpy")
ensure("pandas", "pandas")
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def write_file(path, rows, columns, seed):
    """Standard normal features and a noisy linear target, every number `%.10g` (about 276 bytes a row)."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(columns - 1)
    header = ",".join([f"x{j}" for j in range(columns - 1)] + ["y"])
    with open(path, "w") as f:
        f.write(header + "\n")
        for start in range(0, rows, 50_000):
            n = min(50_000, rows - start)
            x = rng.standard_normal((n, columns - 1))
            y = x @ w + rng.standard_normal(n)
            np.savetxt(f, np.column_stack([x, y]), fmt="%.10g", delimiter=",")


OURS, PANDAS, NUMPY = "shardwise load-bench", 'pandas.read_csv(engine="c")', "numpy.loadtxt"


def cpu_seconds(who):
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


def ours(binary, path):
    """(load seconds as the binary reports them, CPU seconds of the whole process), shape."""
    before = cpu_seconds(resource.RUSAGE_CHILDREN)
    out = subprocess.run([binary, "load-bench", "--data", path], check=True, capture_output=True, text=True).stdout
    cpu = cpu_seconds(resource.RUSAGE_CHILDREN) - before
    m = re.search(r"seconds (\S+) MB/s \S+ rows (\d+) features (\d+)", out)
    if not m:
        sys.exit(f"unexpected output from load-bench: {out!r}")
    return (float(m.group(1)), cpu), (int(m.group(2)), int(m.group(3)) + 1)


def timed(f):
    """(wall seconds, CPU seconds) of f() in this process."""
    cpu, start = cpu_seconds(resource.RUSAGE_SELF), time.perf_counter()
    f()
    return time.perf_counter() - start, cpu_seconds(resource.RUSAGE_SELF) - cpu


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--binary", default=".build/release/shardwise")
    ap.add_argument("--rows", type=int, default=500_000)
    ap.add_argument("--columns", type=int, default=21)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--file", help="where to write the CSV (default: a temporary directory); kept when given")
    ap.add_argument("--no-numpy", action="store_true", help="skip numpy.loadtxt (the slowest of the three)")
    args = ap.parse_args()

    tmp = None
    path = args.file
    if path is None:
        tmp = tempfile.TemporaryDirectory()
        path = os.path.join(tmp.name, "big.csv")
    if not os.path.exists(path):
        print(f"writing {args.rows} × {args.columns} to {path} …", flush=True)
        write_file(path, args.rows, args.columns, seed=1)
    megabytes = os.path.getsize(path) / 1e6
    print(f"{path}: {megabytes:.1f} MB, {args.rows} × {args.columns}, one core each, {args.rounds} alternating rounds"
          f" (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")

    # Warm the page cache, and check both read the same shape.
    _, shape = ours(args.binary, path)
    frame = pd.read_csv(path, engine="c")
    if shape != frame.shape:
        sys.exit(f"shapes differ: ours {shape}, pandas {frame.shape}")
    del frame

    times = {OURS: [], PANDAS: [], NUMPY: []}
    for r in range(args.rounds):
        times[OURS].append(ours(args.binary, path)[0])
        times[PANDAS].append(timed(lambda: pd.read_csv(path, engine="c")))
        if not args.no_numpy:
            times[NUMPY].append(timed(lambda: np.loadtxt(path, delimiter=",", skiprows=1)))
        print(f"  round {r + 1}: " + ", ".join(f"{k.split('(')[0]} {v[-1][0]:.3f} s" for k, v in times.items() if v), flush=True)

    # CPU seconds beside wall seconds: on a shared machine the wall clock also counts waiting for a
    # core. Ours is the whole process's (start-up included), so it overstates the load's.
    print(f"\n{'reader':<30} {'median s':>9} {'MB/s':>8} {'cpu s':>7}   (all rounds, s)")
    medians = {}
    for name, ts in times.items():
        if not ts:
            continue
        medians[name] = statistics.median(t for t, _ in ts)
        cpu = statistics.median(c for _, c in ts)
        print(f"{name:<30} {medians[name]:>9.3f} {megabytes / medians[name]:>8.0f} {cpu:>7.3f}   "
              + " ".join(f"{t:.3f}" for t, _ in ts))
    ratio = medians[PANDAS] / medians[OURS]
    print(f"\nbar: ours ≥ pandas (MB/s): ours {megabytes / medians[OURS]:.0f}, pandas {megabytes / medians[PANDAS]:.0f}"
          f" ({ratio:.2f}×) — {'MET' if ratio >= 1 else 'NOT MET'}")
    if tmp:
        tmp.cleanup()


if __name__ == "__main__":
    main()
