"""All classes at once: the probe's linear classifiers fit by full-batch L-BFGS in PyTorch.

The objectives are scikit-learn's, so that the solutions are the same models (tested against
its estimators on small sets); only the solver differs. On scaled features ``x`` (N, K) with
``m`` score columns (``m = 1`` for two classes: the score of the second class), weights ``W``
(m, K) and biases ``b`` (m,), ``z = x W^T + b``:

* ``"svm"`` (``LinearSVC``: one-vs-rest squared hinge; liblinear penalizes the bias as a weight
  on a constant feature 1, and so does this)::

      0.5 (|W|^2 + |b|^2) + C sum_ij max(0, 1 - t_ij z_ij)^2,   t_ij = +1 if y_i = j else -1

* ``"logreg"`` (``LogisticRegression``: multinomial, the bias not penalized)::

      0.5 |W|^2 + C sum_i (logsumexp_j z_ij - z_{i, y_i})        (m = 1: C sum_i log(1 + exp(-t_i z_i)))

One-vs-rest problems are independent, so solving them jointly gives each its own optimum;
one matrix product per evaluation serves every class, which is what makes hundreds of classes
cost about what one does. The objective is divided by ``C N`` before it is minimized (same
minimizer, a loss of order 1 whatever the data size). Runs on the device the features are on.
"""

from __future__ import annotations

import math
import sys
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from tqdm import tqdm

# L-BFGS iterations between progress updates (one ``LBFGS.step`` call; its history carries over)
_CHUNK = 25
# CPU threads a solve uses. One: each evaluation is a few small kernels, and on a shared,
# oversubscribed CPU PyTorch's other threads mostly spin waiting (measured on this project's
# 2-core machine under load: a 10-class fit took 18x the CPU time and 8x the wall time on two
# threads than on one).
CPU_THREADS = 1


@contextmanager
def cpu_threads(device: torch.device):
    if device.type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(min(before, CPU_THREADS))
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass
class Solution:
    """Weights ``(m, K)`` and biases ``(m,)`` on the scaled features, and how the solve went."""

    coef: torch.Tensor
    intercept: torch.Tensor
    objective: float  # the objective above divided by C N
    iterations: int
    converged: bool


def columns(n_classes: int) -> int:
    """Score columns solved for: one for two classes (the second class's), else one per class."""
    return 1 if n_classes == 2 else n_classes


def objective(x: torch.Tensor, y: torch.Tensor, n_classes: int, classifier: str, C: float,
              coef: torch.Tensor, intercept: torch.Tensor) -> torch.Tensor:
    """The module's objective divided by ``C N`` (a 0-d tensor, differentiable)."""
    n = x.shape[0]
    z = torch.addmm(intercept, x, coef.T)
    if n_classes == 2:
        t = (y == 1).to(z.dtype).mul(2).sub(1).unsqueeze(1)
    else:
        t = torch.full_like(z, -1.0).scatter_(1, y.unsqueeze(1), 1.0)
    if classifier == "svm":
        loss = torch.relu(1 - t * z).square().sum()
        reg = coef.square().sum() + intercept.square().sum()
    else:
        if n_classes == 2:
            loss = torch.nn.functional.softplus(-t * z).sum()
        else:
            loss = torch.nn.functional.cross_entropy(z, y, reduction="sum")
        reg = coef.square().sum()
    return loss / n + 0.5 * reg / (C * n)


def solve(
    x: torch.Tensor,
    y: torch.Tensor,
    n_classes: int,
    classifier: str = "svm",
    C: float = 1.0,
    *,
    init: tuple[torch.Tensor, torch.Tensor] | None = None,
    max_iter: int = 2000,
    tol: float = 1e-6,
    progress: tqdm | None = None,
) -> Solution:
    """Minimize the objective for ``(x, y)`` from ``init`` (zeros if None) with L-BFGS.

    ``tol`` bounds the largest gradient entry of the objective divided by ``C N`` at the
    solution (and the smallest change of it between iterations, relative to ``tol``); a solve
    that reaches ``max_iter`` first reports ``converged=False``. ``progress`` is a bar whose
    postfix follows the solve.
    """
    m, k = columns(n_classes), x.shape[1]
    if init is None:
        coef = torch.zeros(m, k, dtype=x.dtype, device=x.device)
        intercept = torch.zeros(m, dtype=x.dtype, device=x.device)
    else:
        coef, intercept = (t.to(device=x.device, dtype=x.dtype).clone() for t in init)
    coef.requires_grad_(True)
    intercept.requires_grad_(True)
    opt = torch.optim.LBFGS([coef, intercept], lr=1.0, max_iter=_CHUNK, max_eval=_CHUNK * 10, history_size=20,
                            tolerance_grad=tol, tolerance_change=tol * 1e-3, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        value = objective(x, y, n_classes, classifier, C, coef, intercept)
        value.backward()
        return value

    with cpu_threads(x.device):
        done, converged = _run(opt, closure, C, max_iter, progress)
    with torch.no_grad():
        value = float(objective(x, y, n_classes, classifier, C, coef, intercept))
    return Solution(coef.detach(), intercept.detach(), value, done, converged)


def _run(opt: torch.optim.LBFGS, closure, C: float, max_iter: int, progress: tqdm | None) -> tuple[int, bool]:
    """Step ``opt`` in chunks until it stops early (converged) or ``max_iter`` -> (iterations, converged)."""
    param = opt.param_groups[0]["params"][0]
    done, converged, value = 0, False, math.nan
    while done < max_iter:
        opt.param_groups[0]["max_iter"] = min(_CHUNK, max_iter - done)
        before = opt.state[param].get("n_iter", 0)
        value = float(opt.step(closure).detach())
        ran = opt.state[param].get("n_iter", 0) - before
        done += ran
        if progress is not None:
            progress.set_postfix_str(f"C={C:g} iteration {done} objective {value:.4g}", refresh=True)
        if ran < opt.param_groups[0]["max_iter"] or not math.isfinite(value):
            converged = math.isfinite(value)
            break
    return done, converged


def progress_bar(total: int, enabled: bool, desc: str = "probe fit") -> tqdm:
    """The bar a C path shows (one step per fit; hidden when not a terminal or not ``enabled``)."""
    return tqdm(total=total, desc=desc, unit="fit", disable=None if enabled else True, file=sys.stderr)
