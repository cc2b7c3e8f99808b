"""The probe's all-class L-BFGS solver fits scikit-learn's models: same objective, same predictions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from camloc.probe import ProbeError, fit_linear
from camloc.probe.solver import objective


def blobs(n_classes: int, n: int, k: int, seed: int, spread: float = 1.5):
    """Overlapping Gaussian classes with unequal channel scales and an offset (not separable)."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(n_classes, k))
    y = np.arange(n) % n_classes
    x = (centers[y] + spread * rng.normal(size=(n, k))) * rng.uniform(0.5, 3, size=k) + 4
    return x, y


def reference(classifier: str, C: float, xs: np.ndarray, y: np.ndarray):
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import LinearSVC

    if classifier == "svm":
        est = LinearSVC(C=C, dual=True, max_iter=100_000, tol=1e-8)
    else:
        est = LogisticRegression(C=C, max_iter=10_000, tol=1e-10)
    return est.fit(xs, y)


def objective_at(classifier, C, xs, y, n_classes, coef, intercept) -> float:
    return float(objective(torch.from_numpy(xs), torch.from_numpy(y), n_classes, classifier, C,
                           torch.from_numpy(np.atleast_2d(coef)), torch.from_numpy(np.atleast_1d(intercept))))


@pytest.mark.parametrize("classifier", ["svm", "logreg"])
@pytest.mark.parametrize("n_classes", [2, 3, 7])
@pytest.mark.parametrize("C", [0.01, 1.0])
def test_same_model_as_scikit_learn(classifier, n_classes, C):
    """On the same scaled features the solver reaches scikit-learn's optimum (its objective at
    most scikit-learn's, to float32 precision) and predicts the same classes on held-out data."""
    x, y = blobs(n_classes, 40 * n_classes + 200, 12, seed=n_classes)
    xtr, ytr, xte, yte = x[:-200], y[:-200], x[-200:], y[-200:]
    w, b, fit = fit_linear(xtr, ytr, n_classes, classifier, C, tol=1e-7, device="cpu")
    assert fit.converged
    xs = (xtr - fit.mean) / fit.scale
    est = reference(classifier, C, xs, ytr)
    ours = objective_at(classifier, C, xs, ytr, n_classes, fit.coef, fit.intercept)
    theirs = objective_at(classifier, C, xs, ytr, n_classes, est.coef_, est.intercept_)
    assert ours == pytest.approx(fit.objective, rel=1e-5)
    assert ours <= theirs * (1 + 1e-5), (ours, theirs)
    assert ours >= theirs * (1 - 1e-3), (ours, theirs)  # the same objective, not an easier one
    pred = (xte @ w.T + b).argmax(1)
    sk = est.predict((xte - fit.mean) / fit.scale)
    assert np.mean(pred == sk) >= 0.98
    assert abs(np.mean(pred == yte) - np.mean(sk == yte)) <= 0.01
    assert 0.3 < np.mean(pred == yte) < 1.0  # a set where the choice of model matters


@pytest.mark.parametrize("classifier", ["svm", "logreg"])
def test_warm_start_reaches_the_cold_start_solution(classifier):
    x, y = blobs(5, 300, 10, seed=1)
    w_small, b_small, _ = fit_linear(x, y, 5, classifier, 0.01, tol=1e-7, device="cpu")
    cold = fit_linear(x, y, 5, classifier, 1.0, tol=1e-7, device="cpu")
    warm = fit_linear(x, y, 5, classifier, 1.0, tol=1e-7, device="cpu", init=(w_small, b_small))
    assert warm[2].objective == pytest.approx(cold[2].objective, rel=1e-5)
    np.testing.assert_array_equal((x @ warm[0].T + warm[1]).argmax(1), (x @ cold[0].T + cold[1]).argmax(1))
    # starting at the optimum: no iteration needed
    again = fit_linear(x, y, 5, classifier, 1.0, tol=1e-5, device="cpu", init=(cold[0], cold[1]))
    assert again[2].iterations <= 2


def test_binary_warm_start_reads_the_stored_rows():
    x, y = blobs(2, 200, 6, seed=4)
    for classifier in ("svm", "logreg"):
        w, b, fit = fit_linear(x, y, 2, classifier, 0.1, tol=1e-7, device="cpu")
        again = fit_linear(x, y, 2, classifier, 0.1, tol=1e-5, device="cpu", init=(w, b))
        assert again[2].iterations <= 2
        np.testing.assert_allclose(again[0], w, rtol=1e-4, atol=1e-6)


def test_non_finite_features_and_bad_labels_are_one_line_errors():
    x, y = blobs(3, 30, 4, seed=0)
    x[5, 2] = np.nan
    with pytest.raises(ProbeError, match=r"^1 feature rows are not finite \(NaN or infinite; first: row 5\)$"):
        fit_linear(x, y, 3)
    x[5, 2] = 0
    with pytest.raises(ProbeError, match=r"classes \[3\] have no training images"):
        fit_linear(x, y, 4)
    with pytest.raises(ProbeError, match=r"labels must lie in 0..1, got 0..2"):
        fit_linear(x, y, 2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_fit_equals_cpu_fit():
    x, y = blobs(6, 400, 16, seed=2)
    cpu = fit_linear(x, y, 6, "svm", 0.1, tol=1e-7, device="cpu")
    gpu = fit_linear(x, y, 6, "svm", 0.1, tol=1e-7, device="cuda")
    assert gpu[2].objective == pytest.approx(cpu[2].objective, rel=1e-4)
    assert np.mean((x @ gpu[0].T + gpu[1]).argmax(1) == (x @ cpu[0].T + cpu[1]).argmax(1)) >= 0.99
