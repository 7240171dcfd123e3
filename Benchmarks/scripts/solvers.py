#!/usr/bin/env python3
"""Time to solution against scikit-learn, on the same file, to the same accuracy (`make bench-solvers`).

The issue-12 bars, measured in one run, in alternating rounds (ours, theirs, ours, …), medians:

* least squares, n × d with unscaled columns (scales 1…30, κ(XᵀX) ≈ 900): `shardwise train --nodes 2
  --solver cg` within 2× of scikit-learn's `LinearRegression`;
* logistic regression on the same X: `shardwise train --nodes 2 --solver lbfgs` no slower than
  `LogisticRegression(solver="lbfgs")` with 2 BLAS threads.

Both sides are timed as whole processes reading the same .npy file; neither computes a reference. The
accuracy of each answer is its distance to w*, computed here independently with numpy (lstsq; Newton
with Cholesky for logistic), and both must be within 1e-6 relative.

Then a rounds-to-ε table (ε = 1e-6 relative distance to w*) of every solver and strategy, on a smaller
problem with the same conditioning, from the reports' traces.

numpy and scikit-learn are pip-installed here when missing (never in `make test`).
"""
import argparse, json, os, statistics, subprocess, sys, tempfile, time


def ensure(module, package):
    try:
        __import__(module)
    except ImportError:
        subprocess.check_call([sys.executable, "-m", "pip", "install", "--quiet", "--break-system-packages", package])


ensure("numpy", "numpy")
ensure("sklearn", "scikit-learn")
import numpy as np  # noqa: E402


def make_problem(n, d, seed, logistic):
    rng = np.random.default_rng(seed)
    scales = np.linspace(1.0, 30.0, d)
    x = rng.standard_normal((n, d)) * scales
    w = rng.standard_normal(d) / scales
    z = x @ w
    if logistic:
        y = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(np.float64)
    else:
        y = z + 0.1 * rng.standard_normal(n)
    return x, y


def logistic_reference(x, y, lam):
    """Newton's method with Cholesky on XᵀDX + nλI: the exact minimiser of mean log-loss + λ/2|w|²."""
    n, d = x.shape
    w = np.zeros(d)
    for _ in range(100):
        p = 1 / (1 + np.exp(-(x @ w)))
        g = x.T @ (p - y) + n * lam * w
        h = (x * (p * (1 - p))[:, None]).T @ x + n * lam * np.eye(d)
        step = np.linalg.solve(h, -g)
        w += step
        if np.linalg.norm(step) <= 1e-13 * max(1.0, np.linalg.norm(w)):
            break
    return w


def rel(a, b):
    return float(np.linalg.norm(np.asarray(a) - b) / np.linalg.norm(b))


SKLEARN = r"""
import sys, json, numpy as np
from sklearn.linear_model import LinearRegression, LogisticRegression
a = np.load(sys.argv[1]); x, y = a[:, :-1], a[:, -1]
if sys.argv[2] == "ls":
    m = LinearRegression(fit_intercept=False).fit(x, y)
else:
    lam = float(sys.argv[3])
    m = LogisticRegression(C=1 / (len(y) * lam), fit_intercept=False, solver="lbfgs", tol=float(sys.argv[4]), max_iter=100000).fit(x, y)
json.dump(list(np.ravel(m.coef_)), open(sys.argv[5], "w"))
"""


def timed(cmd, env=None):
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=".build/release/shardwise")
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--features", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--lambda", dest="lam", type=float, default=1e-4)
    ap.add_argument("--table-rows", type=int, default=20_000)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="shardwise-solvers-")
    env2 = dict(os.environ, OPENBLAS_NUM_THREADS="2", OMP_NUM_THREADS="2", MKL_NUM_THREADS="2")
    n, d = args.rows, args.features
    print(f"time to solution, {n} × {d}, columns scaled 1…30 (κ(XᵀX) ≈ 900), whole processes, "
          f"{args.rounds} alternating rounds, medians")
    rows = []
    for task in ["ls", "logistic"]:
        x, y = make_problem(n, d, 1, task == "logistic")
        path = os.path.join(tmp, f"{task}.npy")
        np.save(path, np.column_stack([x, y]))
        ref = np.linalg.lstsq(x, y, rcond=None)[0] if task == "ls" else logistic_reference(x, y, args.lam)
        del x, y
        ours_report = os.path.join(tmp, f"{task}-ours.json")
        theirs_out = os.path.join(tmp, f"{task}-theirs.json")
        if task == "ls":
            ours = [args.binary, "train", "--data", path, "--nodes", "2", "--strategy", "allreduce", "--solver", "cg",
                    "--tolerance", "1e-10", "--iterations", "5000", "--no-reference", "--quiet", "--report", ours_report]
            theirs = [sys.executable, "-c", SKLEARN, path, "ls", "0", "0", theirs_out]
            label, bar = "least squares: cg vs LinearRegression", 2.0
        else:
            ours = [args.binary, "train", "--data", path, "--objective", "logistic", "--lambda", str(args.lam), "--nodes", "2",
                    "--strategy", "allreduce", "--solver", "lbfgs", "--tolerance", "1e-9", "--iterations", "5000",
                    "--no-reference", "--quiet", "--report", ours_report]
            theirs = [sys.executable, "-c", SKLEARN, path, "logistic", str(args.lam), "1e-10", theirs_out]
            label, bar = "logistic: lbfgs vs LogisticRegression(lbfgs)", 1.0
        t_ours, t_theirs = [], []
        for _ in range(args.rounds):
            t_ours.append(timed(ours))
            t_theirs.append(timed(theirs, env2))
        if task == "logistic":
            # The exact reference every logistic run is measured against (Newton on XᵀDX by syrk and
            # Cholesky), timed as a whole `shardwise solve` process: it must cost no more than the
            # training run it measures.
            solve = [args.binary, "solve", "--data", path, "--objective", "logistic", "--lambda", str(args.lam)]
            t_solve = statistics.median([timed(solve) for _ in range(args.rounds)])
        report = json.load(open(ours_report))
        d_ours = rel(report["model"], ref)
        d_theirs = rel(json.load(open(theirs_out)), ref)
        mo, mt = statistics.median(t_ours), statistics.median(t_theirs)
        # Met: no slower than the bar, and at least as accurate as 1e-6 or as scikit-learn, whichever
        # is looser. scikit-learn's lbfgs can stop short of 1e-6 (its relative-reduction test,
        # ftol = 64·eps, ends it on ill-conditioned problems whatever tol is): its accuracy is
        # printed beside ours so that the comparison says which answer was better.
        ok = mo / mt <= bar and d_ours <= max(1e-6, d_theirs)
        rows.append((label, mo, mt, mo / mt, bar, d_ours, d_theirs, report.get("iterations"), report.get("rounds"), ok))
    print(f"{'comparison':46} {'ours s':>8} {'sklearn s':>9} {'ratio':>6} {'bar':>5} {'|w−w*|/|w*| ours':>17} {'sklearn':>9} "
          f"{'iters':>6} {'rounds':>6}  met")
    for r in rows:
        print(f"{r[0]:46} {r[1]:8.2f} {r[2]:9.2f} {r[3]:6.2f} {'≤' + str(r[4]):>5} {r[5]:17.1e} {r[6]:9.1e} {r[7]:>6} {r[8]:>6}  "
              f"{'MET' if r[9] else 'NOT MET'}")

    mo_logistic = rows[1][1]
    print(f"logistic reference (shardwise solve, Newton + Cholesky): {t_solve:.2f} s, against {mo_logistic:.2f} s for the "
          f"lbfgs training run: {'MET' if t_solve <= mo_logistic else 'NOT MET'} (bar: no more than the training run)")

    # Rounds to ε on a smaller problem of the same conditioning.
    n = args.table_rows
    print(f"\nrounds to ε = 1e-6 (relative distance to w*), {n} × {d}, same scaling, 2 nodes on threads")
    runs = []
    for task in ["ls", "logistic"]:
        x, y = make_problem(n, d, 2, task == "logistic")
        path = os.path.join(tmp, f"table-{task}.npy")
        np.save(path, np.column_stack([x, y]))
        del x, y
        objective = ["--objective", "logistic", "--lambda", str(args.lam)] if task == "logistic" else []
        solvers = ["gd", "nesterov", "lbfgs", "newton-cg"] + (["cg"] if task == "ls" else [])
        for strategy in ["mapreduce", "allreduce"]:
            for solver in solvers:
                runs.append((task, f"{strategy} {solver}", path, objective + ["--strategy", strategy, "--solver", solver]))
        for extra in [["--strategy", "ps", "--staleness", "0"], ["--strategy", "gossip", "--topology", "complete"]]:
            runs.append((task, " ".join(extra[1:2] + extra[2:]), path, objective + extra))
        for strategy in os.environ.get("SHARDWISE_EXTRA_STRATEGIES", "gram one-shot local-sgd cocoa").split():
            if strategy == "gram" and task == "logistic":
                continue   # the normal equations are least squares' and ridge's only
            if strategy == "cocoa" and task == "ls":
                # CoCoA+ works on the dual, which needs an ℓ2 term: ridge with the same λ (its own w*).
                runs.append((task, f"cocoa (ridge λ={args.lam:g})", path, ["--objective", "ridge", "--lambda", str(args.lam),
                                                                           "--strategy", "cocoa"]))
                continue
            runs.append((task, strategy, path, objective + ["--strategy", strategy]))
    print(f"{'objective':10} {'run':32} {'rounds to ε':>11} {'iterations':>10} {'final |w−w*|/|w*|':>18}  stop")
    for task, name, path, flags in runs:
        out = os.path.join(tmp, "table.json")
        cmd = [args.binary, "train", "--data", path, "--nodes", "2", "--iterations", "20000", "--tolerance", "1e-10",
               "--trace-every", "1", "--quiet", "--report", out] + flags
        proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if proc.returncode != 0:
            lines = [l for l in proc.stderr.strip().splitlines() if l.strip()]
            reason = next((l for l in lines if "rror" in l), lines[0] if lines else f"exit {proc.returncode}")
            print(f"{task:10} {name:32} {'—':>11} {'—':>10} {'—':>18}  {reason[:90]}")
            continue
        r = json.load(open(out))
        hit = next((t for t in r["trace"] if t.get("relativeDistance") is not None and t["relativeDistance"] <= 1e-6), None)
        to_eps = "—" if hit is None else str(hit.get("rounds") or f"{hit['iteration']} it")
        print(f"{task:10} {name:32} {to_eps:>11} {r['iterations']:>10} {r.get('relativeDistance') or float('nan'):18.1e}  {r['stopReason']}")


if __name__ == "__main__":
    main()
