"""ROAD, Remove And Debias ("A Consistent and Efficient Evaluation Strategy for Attribution
Methods", Rong et al., ICML 2022): a faithfulness metric whose removed pixels carry no trace of
the mask's shape.

The pixels of the network input are ranked by the map (ties by raster order). At each fraction
``p`` the top ``int(p H W)`` of them (**MoRF**, most relevant first) or the bottom ones (**LeRF**,
least relevant first) are *removed*: replaced by the **noisy linear imputation** of the paper,
the solution of the sparse linear system that sets every removed pixel (each colour channel) to
the weighted mean of its 8 neighbours (weight 1/6 for the 4 edge neighbours, 1/12 for the 4
corners; neighbours outside the image left out), known neighbours as constants, plus Gaussian
noise of standard deviation ``noise`` (0.01 in the paper). The system is solved with SciPy's
sparse LU (:func:`scipy.sparse.linalg.spsolve`), all colour channels as one right-hand side.

The class's softmax probability and whether the class is still the top-1 are read for every
perturbed image (all of a batch's images in a few forward passes). A faithful map makes the
MoRF curve fall fast (low) and the LeRF curve stay high; :func:`road_scores` averages each curve
over the fractions and gives ``LeRF - MoRF`` (higher is better).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

ScoreFn = Callable[[torch.Tensor], torch.Tensor]  # (N, c, H, W) input -> (N, C) logits
FRACTIONS = (0.1, 0.3, 0.5, 0.7, 0.9)
ORDERS = ("morf", "lerf")
# (dy, dx) -> weight: the paper's neighbourhood
NEIGHBOURS = (((1, 1), 1 / 12), ((0, 1), 1 / 6), ((-1, 1), 1 / 12), ((1, -1), 1 / 12), ((0, -1), 1 / 6),
              ((-1, -1), 1 / 12), ((1, 0), 1 / 6), ((-1, 0), 1 / 6))


def impute(image: np.ndarray, removed: np.ndarray, noise: float = 0.01,
           rng: np.random.Generator | None = None) -> np.ndarray:
    """``image (c, H, W)`` with the pixels where ``removed (H, W)`` is true replaced by the noisy
    linear imputation (a copy, float64)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.linalg import spsolve

    img = np.asarray(image, np.float64)
    removed = np.asarray(removed, bool)
    if img.ndim != 3 or removed.shape != img.shape[1:]:
        raise ValueError(f"road: removed mask {removed.shape} must be (H, W) of the image {img.shape}")
    c, h, w = img.shape
    out = img.reshape(c, -1).copy()
    ids = np.flatnonzero(removed)
    n = len(ids)
    if n == 0:
        return out.reshape(img.shape)
    var = np.full(h * w, -1)
    var[ids] = np.arange(n)
    yy, xx = np.divmod(ids, w)
    rows, cols, vals = [], [], []
    diag = np.zeros(n)
    rhs = np.zeros((n, c))
    for (dy, dx), weight in NEIGHBOURS:
        ny, nx = yy + dy, xx + dx
        ok = (ny >= 0) & (ny < h) & (nx >= 0) & (nx < w)
        diag[ok] += weight
        nb = ny[ok] * w + nx[ok]
        unknown = var[nb] >= 0
        rows.append(np.flatnonzero(ok)[unknown])
        cols.append(var[nb[unknown]])
        vals.append(np.full(int(unknown.sum()), weight))
        known = np.flatnonzero(ok)[~unknown]
        np.add.at(rhs, known, -weight * out[:, nb[~unknown]].T)
    rows.append(np.arange(n))
    cols.append(np.arange(n))
    vals.append(-diag)
    a = coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n)).tocsc()
    sol = np.asarray(spsolve(a, rhs)).reshape(n, c)
    if noise:
        rng = rng if rng is not None else np.random.default_rng(0)
        sol = sol + noise * rng.standard_normal(sol.shape)
    out[:, ids] = sol.T
    return out.reshape(img.shape)


def removal_masks(heatmap: np.ndarray, fractions: Sequence[float], order: str = "morf") -> np.ndarray:
    """``(F, H, W)`` booleans: the ``int(p H W)`` most (``"morf"``) or least (``"lerf"``) relevant
    pixels of ``heatmap`` for each fraction ``p`` (NaN counts as least relevant; ties by raster order)."""
    if order not in ORDERS:
        raise ValueError(f"road: unknown order {order!r}; expected one of {', '.join(ORDERS)}")
    a = np.asarray(heatmap, np.float64)
    flat = np.nan_to_num(a.ravel(), nan=-np.inf)
    n = flat.size
    rank = np.empty(n, np.int64)
    idx = np.argsort(-flat if order == "morf" else flat, kind="stable")
    rank[idx] = np.arange(n)
    counts = np.array([int(n * p + 1e-9) for p in fractions])
    return (rank[None, :] < counts[:, None]).reshape(len(fractions), *a.shape)


def check_fractions(fractions: Sequence[float]) -> tuple[float, ...]:
    """The fractions as a tuple of distinct floats in ``(0, 1)``; one-line error otherwise."""
    try:
        out = tuple(float(p) for p in fractions)
    except (TypeError, ValueError):
        raise ValueError(f"road: fractions must be numbers in (0, 1), got {fractions!r}") from None
    if not out or any(not 0 < p < 1 for p in out) or len(set(out)) != len(out):
        raise ValueError(f"road: fractions must be distinct numbers in (0, 1), got {list(fractions)[:10]}")
    return out


def road_curves(score_fn: ScoreFn, x: torch.Tensor, maps: torch.Tensor, classes: torch.Tensor,
                fractions: Sequence[float] = FRACTIONS, noise: float = 0.01, seed: int = 0,
                chunk: int = 64) -> dict[str, np.ndarray]:
    """``{"morf_prob", "lerf_prob", "morf_acc", "lerf_acc"}``, each ``(B, F)``: the class's softmax
    probability and top-1 hit after removing each fraction of ``x (B, c, H, W)``'s pixels in
    the order of ``maps (B, H, W)``. The noise is drawn from ``seed`` (the same per image)."""
    fractions = check_fractions(fractions)
    if not np.isfinite(noise) or noise < 0:
        raise ValueError(f"road: noise must be a finite number >= 0, got {noise!r}")
    classes = torch.as_tensor(classes, dtype=torch.long, device=x.device)
    maps = torch.as_tensor(maps)
    if x.dim() != 4 or maps.dim() != 3 or maps.shape[0] != x.shape[0] or tuple(maps.shape[1:]) != tuple(x.shape[2:]):
        raise ValueError(f"road: maps {tuple(maps.shape)} must be (B, H, W) of inputs {tuple(x.shape)}")
    if classes.shape != (x.shape[0],):
        raise ValueError(f"road: one class per image expected, got {tuple(classes.shape)} for {x.shape[0]} images")
    images = x.detach().cpu().double().numpy()
    heat = maps.detach().cpu().double().numpy()
    perturbed = []
    for b in range(len(images)):
        rng = np.random.default_rng(seed)
        for order in ORDERS:
            for m in removal_masks(heat[b], fractions, order):
                perturbed.append(impute(images[b], m, noise, rng))
    xs = torch.from_numpy(np.stack(perturbed)).to(device=x.device, dtype=x.dtype)
    cls = classes.repeat_interleave(2 * len(fractions))
    probs, hits = [], []
    with torch.inference_mode():
        for s in range(0, len(xs), chunk):
            logits = score_fn(xs[s : s + chunk]).float()
            c = cls[s : s + chunk, None]
            probs.append(logits.softmax(dim=1).gather(1, c).squeeze(1))
            hits.append((logits.argmax(dim=1, keepdim=True) == c).squeeze(1))
    p = torch.cat(probs).cpu().double().numpy().reshape(len(images), 2, len(fractions))
    h = torch.cat(hits).cpu().numpy().astype(np.float64).reshape(len(images), 2, len(fractions))
    return {"morf_prob": p[:, 0], "lerf_prob": p[:, 1], "morf_acc": h[:, 0], "lerf_acc": h[:, 1]}


def road_scores(curves: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per image ``(B,)``: the mean over fractions of the MoRF and LeRF probability curves and
    ``road_gap = LeRF - MoRF`` (higher: a more faithful map)."""
    morf = np.asarray(curves["morf_prob"], np.float64).mean(axis=-1)
    lerf = np.asarray(curves["lerf_prob"], np.float64).mean(axis=-1)
    return {"road_morf": morf, "road_lerf": lerf, "road_gap": lerf - morf}
