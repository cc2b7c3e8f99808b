"""A small VQA model in the paper's style (section 4, "interpreting visual question answering"),
whose answer maps are exact class activation maps.

The image is its frozen globally average pooled features ``p = mean_xy f(x, y)`` (``K`` values,
from :class:`camloc.pipeline.run.Pipeline` with ``keep="pooled"``), the question a bag of words
``q`` (``V`` values). The score of answer ``a`` is

    s_a = (W_a + M_a q) . p + U_a . q + b_a

an image-only linear term, a bilinear image-question term, and a question term. For a fixed
question it is linear in ``p``, so with the per-question image weight ``w_a(q) = W_a + M_a q`` the
answer's map ``A_a(x, y) = w_a(q) . f(x, y)`` has ``mean(A_a) + c_a(q) = s_a`` exactly, where
``c_a(q) = U_a . q + b_a`` is the question's bias: the map is the answer's CAM for that question.

With ``regions = R > 1`` the image is ``R`` such averages side by side, one per vertical strip
(left and right halves for ``R = 2``; a column on a strip's edge counts for both strips by the
share of it each covers), so the model can tell where an object is. The map then weighs each
column by its strips: ``A_a(x, y) = sum_r R c_r(x) w_a,r(q) . f(x, y)``, with ``c_r(x)`` the share of
column ``x`` in strip ``r``, and ``mean(A_a) + c_a(q) = s_a`` stays exact.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def tokenize(text: str) -> list[str]:
    """Lower-case words of ``text`` (letters and digits; punctuation dropped)."""
    return re.findall(r"[a-z0-9]+", text.lower())


def column_shares(width: int, regions: int) -> np.ndarray:
    """``(regions, width)``: the share of each column ``[x, x + 1)`` inside each of ``regions``
    equal vertical strips of ``[0, width)``; each column's shares sum to 1."""
    edges = np.arange(regions + 1) * width / regions
    x = np.arange(width)
    return np.clip(np.minimum(x + 1, edges[1:, None]) - np.maximum(x, edges[:-1, None]), 0, None)


def region_pool(features: np.ndarray, regions: int = 1) -> np.ndarray:
    """``(regions * K,)``: the average of ``(K, h, w)`` features over each vertical strip, strip by strip."""
    f = np.asarray(features, np.float64)
    shares = column_shares(f.shape[2], regions)
    return (np.einsum("khw,rw->rk", f, shares) * regions / (f.shape[1] * f.shape[2])).reshape(-1)


def build_vocab(questions: Sequence[str], min_count: int = 1) -> list[str]:
    """The words seen in at least ``min_count`` questions, sorted."""
    counts: Counter[str] = Counter()
    for q in questions:
        counts.update(set(tokenize(q)))
    return sorted(w for w, n in counts.items() if n >= min_count)


@dataclass
class VQAModel:
    """``s_a = (W_a + M_a q) . p + U_a . q + b_a`` (module docstring).

    Attributes:
        answers: the ``A`` answers; vocab: the ``V`` question words (others are ignored).
        image_weight: ``(A, K)`` ``W``; bilinear: ``(A, K, V)`` ``M``;
        question_weight: ``(A, V)`` ``U``; bias: ``(A,)`` ``b``;
        regions: ``R``, the vertical strips pooled side by side (``W`` has ``R K`` columns).
    """

    answers: list[str]
    vocab: list[str]
    image_weight: np.ndarray
    bilinear: np.ndarray
    question_weight: np.ndarray
    bias: np.ndarray
    regions: int = 1

    def __post_init__(self) -> None:
        a, k = np.shape(self.image_weight)
        v = len(self.vocab)
        want = {"bilinear": (a, k, v), "question_weight": (a, v), "bias": (a,)}
        for name, shape in want.items():
            if np.shape(getattr(self, name)) != shape:
                raise ValueError(f"VQAModel.{name}: shape {np.shape(getattr(self, name))}, expected {shape} "
                                 f"({a} answers, {k} features, {v} words)")
        if self.regions < 1 or k % self.regions:
            raise ValueError(f"VQAModel.regions: {self.regions} strips do not divide {k} feature columns")
        if len(self.answers) != a:
            raise ValueError(f"VQAModel.answers: {len(self.answers)} answers for {a} weight rows")

    def encode(self, question: str) -> np.ndarray:
        """The question's bag of words ``q``: ``(V,)`` counts of the vocabulary's words."""
        index = {w: i for i, w in enumerate(self.vocab)}
        q = np.zeros(len(self.vocab), np.float64)
        for t in tokenize(question):
            if t in index:
                q[index[t]] += 1
        return q

    def image_weights(self, question: str) -> np.ndarray:
        """``(A, K)``: each answer's weight on the pooled features for this question, ``W + M q``."""
        return self.image_weight + self.bilinear @ self.encode(question)

    def question_bias(self, question: str) -> np.ndarray:
        """``(A,)``: each answer's score that does not depend on the image, ``U q + b``."""
        return self.question_weight @ self.encode(question) + self.bias

    def pool(self, features: np.ndarray) -> np.ndarray:
        """The image the model reads: ``(K, h, w)`` features pooled per strip (:func:`region_pool`)."""
        return region_pool(features, self.regions)

    def scores(self, pooled: np.ndarray, question: str) -> np.ndarray:
        """``(A,)`` answer scores for pooled features ``(R K,)`` (:meth:`pool`)."""
        pooled = np.asarray(pooled, np.float64)
        if pooled.shape != (self.image_weight.shape[1],):
            raise ValueError(f"pooled features: shape {pooled.shape}, expected ({self.image_weight.shape[1]},)")
        return self.image_weights(question) @ pooled + self.question_bias(question)

    def answer(self, pooled: np.ndarray, question: str) -> str:
        return self.answers[int(np.argmax(self.scores(pooled, question)))]

    def answer_maps(self, features: np.ndarray, question: str, answers: Sequence[int | str] | None = None
                    ) -> np.ndarray:
        """``(n, h, w)`` maps of the given answers (indices or names; default all) over the feature
        grid ``(K, h, w)``; ``map.mean() + question_bias[a] == scores[a]`` with ``pooled = pool(features)``."""
        f = np.asarray(features, np.float64)
        k = self.image_weight.shape[1] // self.regions
        if f.ndim != 3 or f.shape[0] != k:
            raise ValueError(f"features: shape {f.shape}, expected ({k}, h, w)")
        idx = range(len(self.answers)) if answers is None else [
            self.answers.index(a) if isinstance(a, str) else int(a) for a in answers]
        w = self.image_weights(question)[list(idx)].reshape(len(idx), self.regions, k)
        shares = column_shares(f.shape[2], self.regions) * self.regions
        return np.einsum("ark,khw,rw->ahw", w, f, shares)


def strip_blocks(k: int, regions: int) -> list[np.ndarray]:
    """Linear views of ``(R K,)`` strip features, each ``(K, R K)``: the average over the strips,
    then strip ``r``'s difference from it for ``r < R - 1``."""
    mean = np.tile(np.eye(k), regions) / regions
    return [mean] + [np.kron(np.eye(regions)[r], np.eye(k)) - mean for r in range(regions - 1)]


def _principal(x: np.ndarray, dims: int) -> np.ndarray:
    """``(d, K)``: the first ``dims`` principal axes of ``x`` standardized, divided by the standard
    deviations (``(x - mean) @ out.T`` are the standardized scores)."""
    sd = x.std(0) + 1e-6
    return np.linalg.svd((x - x.mean(0)) / sd, full_matrices=False)[2][:dims] / sd


def fit_vqa(pooled: np.ndarray, questions: Sequence[str], answers: Sequence[str], steps: int = 300,
            lr: float = 0.05, weight_decay: float = 1e-3, dims: int = 128, seed: int = 0, regions: int = 1,
            contrast_dims: int | None = None) -> VQAModel:
    """Fit the answer layer on ``(N, R K)`` pooled features (:func:`region_pool` with ``regions = R``)
    and their question-answer pairs: softmax cross-entropy, full batch, Adam, on the features
    standardized and projected on their first ``dims`` principal axes (the bilinear term costs
    ``dims x V`` weights per answer). With strips, the average over the strips and each strip's
    difference from it are projected apart (``dims`` and ``contrast_dims`` axes), so what is
    anywhere and where it is are separate inputs. The projections are linear, so they are folded
    back into the weights: the model reads raw pooled features and its maps stay exact."""
    import torch

    from camloc.probe.solver import cpu_threads

    p = np.asarray(pooled, np.float64)
    if p.ndim != 2 or len(p) != len(questions) or len(p) != len(answers):
        raise ValueError(f"fit_vqa: pooled {p.shape}, {len(questions)} questions and {len(answers)} answers "
                         "do not match (N, K), N, N")
    vocab = build_vocab(questions)
    names = sorted(set(answers))
    blank = VQAModel(names, vocab, np.zeros((len(names), p.shape[1])), np.zeros((len(names), p.shape[1], len(vocab))),
                     np.zeros((len(names), len(vocab))), np.zeros(len(names)), regions)
    q = np.stack([blank.encode(t) for t in questions])
    mu = p.mean(0)
    proj = np.concatenate([_principal(p @ block.T, d) @ block  # z = (p - mu) @ proj.T
                           for block, d in zip(strip_blocks(p.shape[1] // regions, regions),
                                               [dims] + [contrast_dims or dims] * (regions - 1))])
    torch.manual_seed(seed)
    z, qt = torch.tensor((p - mu) @ proj.T, dtype=torch.float32), torch.tensor(q, dtype=torch.float32)
    y = torch.tensor([names.index(a) for a in answers])
    a, k, v = len(names), len(proj), len(vocab)
    W = torch.zeros(a, k, requires_grad=True)
    M = (0.01 * torch.randn(a, k, v)).requires_grad_()
    U = torch.zeros(a, v, requires_grad=True)
    b = torch.zeros(a, requires_grad=True)
    opt = torch.optim.Adam([W, M, U, b], lr=lr)
    with cpu_threads(torch.device("cpu")):  # small kernels: one thread, as the probe solver
        for _ in range(steps):
            opt.zero_grad()
            bil = ((z @ M.permute(1, 0, 2).reshape(k, a * v)).reshape(-1, a, v) * qt[:, None, :]).sum(-1)
            s = z @ W.T + bil + qt @ U.T + b
            loss = torch.nn.functional.cross_entropy(s, y) + weight_decay * (W.square().sum() + M.square().sum())
            loss.backward()
            opt.step()
    Wn, Mn, Un, bn = (t.detach().double().numpy() for t in (W, M, U, b))
    Wn, Mn = Wn @ proj, np.einsum("adv,dk->akv", Mn, proj)  # z = (p - mu) @ proj.T, folded in
    return VQAModel(names, vocab, Wn, Mn, Un - np.einsum("akv,k->av", Mn, mu), bn - Wn @ mu, regions)
