"""How the probe's fit scales with classes and photos, on cached (here: generated) features.

    python -m benchmarks probe_fit          # refreshes its section of BENCHMARKS.md
    python benchmarks/bench_probe_fit.py    # prints the section only

Features are generated, 1,280 wide like the embedded backbone's: non-negative, a shared
per-channel profile plus a class direction, noise scaled per channel. Two measurements:

1. **The probe's whole fit** (what ``camloc probe fit`` does after its features are cached: the
   ``C`` path 0.001, 0.01, 0.1, 1 chosen on a stratified 20 % and the refit on all images) at
   100 classes x 3,000 photos, with the solver camloc used before (scikit-learn's ``LinearSVC``,
   one-vs-rest, one class at a time) as the baseline in the same run, under a time cap.
2. **One fit at C = 0.01** from zeros, classes 10-1,000 x photos 1k-50k, with ``LinearSVC`` at
   the same C where it finishes under its cap; held-out accuracy of both on 1,000 photos.

Both solvers run on one thread (``LinearSVC`` has no other mode; PyTorch is set to one), so the
comparison is the same compute: on a shared, oversubscribed machine PyTorch's second thread
mostly spins waiting for the first. Wall and CPU seconds are both given; on a shared machine the
CPU time of this process is the steadier measure of the work. The baseline runs in a child
process that is stopped at its cap.
"""

from __future__ import annotations

import multiprocessing as mp
import sys
import time

import numpy as np

K = 1280
N_TEST = 1000
CS = (0.001, 0.01, 0.1, 1.0)
ONE_C = 0.01
PATH_CELL = (100, 3000)
GRID = [(10, 1000), (100, 1000), (10, 10000), (100, 3000), (1000, 3000), (100, 10000), (10, 50000)]
BASELINE_CAP_S = 60.0  # LinearSVC per cell (four times this for the whole path)


def generated(n_classes: int, n: int, seed: int = 0, k: int = K) -> tuple[np.ndarray, np.ndarray]:
    """``n`` training + :data:`N_TEST` test photos' features, balanced classes (deterministic)."""
    rng = np.random.default_rng(seed)
    shared = rng.gamma(2.0, 0.5, size=k)
    centers = rng.normal(size=(n_classes, k))
    # every class in the training part (and the test part) as evenly as the counts allow
    y = np.concatenate([rng.permutation(np.arange(n) % n_classes), rng.permutation(np.arange(N_TEST) % n_classes)])
    x = np.empty((len(y), k), np.float32)
    for start in range(0, len(y), 5000):  # in blocks: 50k x 1280 float64 temporaries add up
        yy = y[start:start + 5000]
        x[start:start + 5000] = np.maximum(shared + 0.15 * centers[yy] + rng.normal(size=(len(yy), k)) * shared, 0)
    return x, y


def _baseline_path(x: np.ndarray, y: np.ndarray, n_classes: int, Cs, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """camloc's former fit: LinearSVC per C on globally scaled features, best C refit on all."""
    from camloc.probe.fit import _carve_validation

    fit = _one_baseline
    mask = _carve_validation(y, 0.2, seed)
    best, best_acc = Cs[0], -1.0
    for C in Cs:
        w, b = fit(x[~mask], y[~mask], C)
        acc = float(np.mean((x[mask] @ w.T + b).argmax(1) == y[mask]))
        if acc > best_acc:
            best, best_acc = C, acc
    return fit(x, y, best)


def _baseline_child(queue, n_classes: int, n: int, Cs, path: bool) -> None:
    x, y = generated(n_classes, n)
    xtr, ytr, xte, yte = x[:n], y[:n], x[n:], y[n:]
    c0, t0 = time.process_time(), time.perf_counter()
    w, b = _baseline_path(xtr, ytr, n_classes, Cs, 0) if path else _one_baseline(xtr, ytr, Cs[0])
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    queue.put((wall, cpu, float(np.mean((xte @ w.T + b).argmax(1) == yte))))


def _one_baseline(x: np.ndarray, y: np.ndarray, C: float) -> tuple[np.ndarray, np.ndarray]:
    import warnings

    from sklearn.svm import LinearSVC

    mean = x.mean(0)
    s = float(np.sqrt(((x - mean) ** 2).mean()))
    clf = LinearSVC(C=C, dual="auto", max_iter=5000, random_state=0)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*converge.*")
        clf.fit((x - mean) / s, y)
    return clf.coef_ / s, clf.intercept_ - clf.coef_ @ (mean / s)


def baseline(n_classes: int, n: int, Cs, path: bool, cap: float | None = None):
    """``(wall, cpu, accuracy)`` of LinearSVC in a child process, or ``None`` past ``cap`` seconds
    (default :data:`BASELINE_CAP_S`)."""
    cap = BASELINE_CAP_S if cap is None else cap
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_baseline_child, args=(queue, n_classes, n, list(Cs), path))
    proc.start()
    try:
        return queue.get(timeout=cap + 30)  # + generating the data in the child
    except Exception:  # queue.Empty: past the cap
        return None
    finally:
        if proc.is_alive():
            proc.terminate()
        proc.join()


def ours_one(n_classes: int, n: int, C: float = ONE_C) -> tuple[float, float, float, int]:
    """``(wall, cpu, accuracy, iterations)`` of one all-class L-BFGS fit from zeros."""
    from camloc.probe.fit import fit_linear

    x, y = generated(n_classes, n)
    c0, t0 = time.process_time(), time.perf_counter()
    w, b, fit = fit_linear(x[:n], y[:n], n_classes, "svm", C, device="cpu")
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return wall, cpu, float(np.mean((x[n:] @ w.T + b).argmax(1) == y[n:])), fit.iterations


def ours_path(net, n_classes: int, n: int):
    """``(wall, cpu, accuracy, probe)`` of :func:`fit_probe_on_features` (the whole C path)."""
    from camloc.probe import fit_probe_on_features

    x, y = generated(n_classes, n)
    c0, t0 = time.process_time(), time.perf_counter()
    probe = fit_probe_on_features(net, x[:n], y[:n], [str(i) for i in range(n_classes)], Cs=CS, progress=False,
                                  device="cpu")
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return wall, cpu, float(np.mean(probe.predict(x[n:]) == y[n:])), probe


def _ratio(base, ours: float, cap: float) -> str:
    return f"> {cap / ours:.1f}x" if base is None else f"{base[0] / ours:.1f}x"


def main(grid=GRID, path_cell=PATH_CELL) -> str:
    import camloc
    import torch

    from benchmarks.timing import machine_line, quick

    global BASELINE_CAP_S
    if quick():  # a smoke run of the code paths, seconds
        grid, path_cell, BASELINE_CAP_S = [(3, 300)], (3, 300), 5.0

    torch.set_num_threads(1)
    machine = machine_line()
    net = camloc.load_model("efficientnet_lite0")
    lines = ["## Probe fit: all classes at once (L-BFGS) against one-vs-rest LinearSVC", "",
             f"Generated features (see `benchmarks/bench_probe_fit.py`); machine: {machine}.", ""]

    c, n = path_cell
    print(f"probe_fit: whole C path at {c} classes x {n} photos", file=sys.stderr, flush=True)
    wall, cpu, acc, probe = ours_path(net, c, n)
    print(f"ours {wall:.1f} s wall {cpu:.1f} s CPU accuracy {acc:.4f} C {probe.C}", file=sys.stderr, flush=True)
    base = baseline(c, n, CS, path=True, cap=4 * BASELINE_CAP_S)
    print(f"LinearSVC {base}", file=sys.stderr, flush=True)
    its = ", ".join(f"{k}: {v}" for k, v in probe.info["iterations_by_C"].items())
    lines += [
        f"**The probe's whole fit on cached features**, {c} classes x {n:,} photos x {K} features (C path "
        f"{', '.join(map(str, CS))} on a stratified 20 %, refit on all at the chosen C = {probe.C:g}):",
        "",
        "| solver | wall s | CPU s | held-out accuracy |",
        "|---|---:|---:|---:|",
        f"| all classes at once, L-BFGS (camloc) | {wall:.1f} | {cpu:.1f} | {100 * acc:.1f} % |",
        ("| LinearSVC one-vs-rest (before) | > {:.0f} (stopped) | | |".format(4 * BASELINE_CAP_S) if base is None else
         f"| LinearSVC one-vs-rest (before) | {base[0]:.1f} | {base[1]:.1f} | {100 * base[2]:.1f} % |"),
        "",
        f"L-BFGS iterations per C: {its}; refit {probe.info['iterations']}. Speed-up (wall): "
        f"{_ratio(base, wall, 4 * BASELINE_CAP_S)}.",
        "",
        f"**One fit at C = {ONE_C}** from zeros (LinearSVC stopped after {BASELINE_CAP_S:.0f} s):",
        "",
        "| classes | photos | L-BFGS wall s | CPU s | iterations | accuracy | LinearSVC wall s | accuracy | ratio |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c, n in grid:
        print(f"probe_fit: one fit at {c} classes x {n} photos", file=sys.stderr, flush=True)
        wall, cpu, acc, its = ours_one(c, n)
        base = baseline(c, n, [ONE_C], path=False)
        b_wall = f"> {BASELINE_CAP_S:.0f}" if base is None else f"{base[0]:.1f}"
        b_acc = "" if base is None else f"{100 * base[2]:.1f} %"
        lines.append(f"| {c:,} | {n:,} | {wall:.1f} | {cpu:.1f} | {its} | {100 * acc:.1f} % | {b_wall} | {b_acc} | "
                     f"{_ratio(base, wall, BASELINE_CAP_S)} |")
        print(lines[-1], file=sys.stderr, flush=True)
    lines += ["", "Reproduce: `.venv/bin/python -m benchmarks probe_fit`."]
    return "\n".join(lines)


if __name__ == "__main__":
    import os

    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if sys.argv[1:] == ["--quick"]:
        os.environ["CAMLOC_BENCH_QUICK"] = "1"
    print(main())
