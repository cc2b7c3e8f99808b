"""Temperature scaling and its figures (camloc.scores): closed forms and a known temperature recovered."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from camloc import scores


def test_softmax_at_a_temperature_is_the_closed_form():
    p = scores.softmax(np.array([0.0, 2.0]), 2.0)
    assert p == pytest.approx([1 / (1 + math.e), math.e / (1 + math.e)])
    assert scores.softmax(np.array([[1.0, 1.0, 1.0]]), 0.01) == pytest.approx(np.full((1, 3), 1 / 3))


def test_log_loss_is_the_mean_negative_log_likelihood():
    logits = np.array([[0.0, math.log(3.0)], [0.0, 0.0]])  # p = (1/4, 3/4) and (1/2, 1/2)
    assert scores.log_loss(logits, np.array([1, 0])) == pytest.approx((-math.log(0.75) - math.log(0.5)) / 2)
    assert scores.log_loss(logits, np.array([0, 0]), 2.0) == pytest.approx(
        (-math.log(1 / (1 + math.sqrt(3))) - math.log(0.5)) / 2)


def test_ece_by_hand():
    # bin of 0.9 holds one right photo (|1 - 0.9|), bin of 0.6 one wrong (|0 - 0.6|): (0.1 + 0.6) / 2
    assert scores.ece(np.array([[0.9, 0.1], [0.6, 0.4]]), np.array([0, 1]), bins=10) == pytest.approx(0.35)
    # one bin, two photos of confidence 0.75, one right: |0.5 - 0.75|
    assert scores.ece(np.array([[0.75, 0.25], [0.25, 0.75]]), np.array([0, 0]), bins=15) == pytest.approx(0.25)
    # perfectly calibrated: 4 photos at 0.5 confidence, 2 right
    assert scores.ece(np.full((4, 2), 0.5), np.array([0, 1, 0, 1])) == pytest.approx(0.0)


def test_fit_recovers_the_temperature_that_made_the_labels():
    """Labels drawn from softmax(z / 2.5): the fit finds T = 2.5 (within sampling noise), and
    brings the ECE of the sharpened scores down to that noise."""
    rng = np.random.default_rng(0)
    z = rng.normal(0, 4, size=(6000, 10))
    p = scores.softmax(z, 2.5)
    labels = np.array([rng.choice(10, p=row) for row in p])
    t = scores.fit_temperature(z, labels)
    assert t == pytest.approx(2.5, rel=0.06)
    rep = scores.report(z, labels, t)
    assert rep["ece_before"] > 0.15 and rep["ece_after"] < 0.03
    assert rep["log_loss_after"] < rep["log_loss_before"]


def test_fit_refuses_separable_or_bad_input():
    z = np.array([[5.0, 0.0], [0.0, 5.0]])
    with pytest.raises(ValueError, match="end of the searched range"):
        scores.fit_temperature(z, np.array([0, 1]))  # always right: the loss falls as T -> 0
    with pytest.raises(ValueError, match="out of range"):
        scores.fit_temperature(z, np.array([0, 2]))
    with pytest.raises(ValueError, match="expected"):
        scores.fit_temperature(np.zeros((0, 2)), np.zeros(0))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(-30, 30), min_size=2, max_size=12), st.floats(0.01, 50))
def test_a_temperature_keeps_the_ranking(logits, t):
    z = np.array(logits)
    p = scores.softmax(z, t)
    assert p.sum() == pytest.approx(1.0)
    # a strictly larger logit never gets a smaller probability
    for i in range(len(z)):
        for j in range(len(z)):
            if z[i] > z[j]:
                assert p[i] >= p[j]
