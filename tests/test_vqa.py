"""The VQA answer layer: exact answer maps on a hand-built model, and a fit with known answers."""

import numpy as np
import pytest

from camloc.experiments.vqa import VQAModel, build_vocab, fit_vqa, tokenize


def hand_model() -> VQAModel:
    # answers no/yes, words cat/dog, two features: "yes" reads feature 0 always and feature 1
    # (twice) when the question says "dog"; "no" has a bias that grows with "cat".
    return VQAModel(
        answers=["no", "yes"], vocab=["cat", "dog"],
        image_weight=np.array([[0.0, 0.0], [1.0, 0.0]]),
        bilinear=np.array([[[0.0, 0.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 2.0]]]),
        question_weight=np.array([[1.0, 0.0], [0.0, 0.0]]),
        bias=np.array([0.5, -1.0]),
    )


FEATURES = np.array([[[1.0, 3.0], [0.0, 0.0]],    # feature 0, mean 1
                     [[0.0, 0.0], [4.0, 0.0]]])   # feature 1, mean 1


def test_tokenize_and_vocab():
    assert tokenize("Is there a Dog?") == ["is", "there", "a", "dog"]
    assert build_vocab(["is there a dog?", "is there a cat", "what is it"], min_count=2) == ["a", "is", "there"]


def test_hand_built_dog_question_written_out():
    m, q = hand_model(), "is there a dog?"
    np.testing.assert_array_equal(m.encode(q), [0, 1])
    np.testing.assert_array_equal(m.image_weights(q), [[0, 0], [1, 2]])
    np.testing.assert_array_equal(m.question_bias(q), [0.5, -1.0])
    maps = m.answer_maps(FEATURES, q)
    np.testing.assert_array_equal(maps[1], [[1, 3], [8, 0]])  # 1 * f0 + 2 * f1
    np.testing.assert_array_equal(maps[0], np.zeros((2, 2)))
    pooled = FEATURES.mean(axis=(1, 2))
    np.testing.assert_array_equal(m.scores(pooled, q), [0.5, 2.0])  # yes: 1 + 2 - 1
    np.testing.assert_array_equal(maps.mean(axis=(1, 2)) + m.question_bias(q), m.scores(pooled, q))
    assert m.answer(pooled, q) == "yes"
    assert np.unravel_index(np.argmax(maps[1]), (2, 2)) == (1, 0)  # where feature 1 is


def test_hand_built_cat_question_written_out():
    m, q = hand_model(), "is there a cat"
    maps = m.answer_maps(FEATURES, q, answers=["yes"])
    np.testing.assert_array_equal(maps[0], [[1, 3], [0, 0]])  # feature 0 alone
    pooled = FEATURES.mean(axis=(1, 2))
    np.testing.assert_array_equal(m.scores(pooled, q), [1.5, 0.0])
    assert m.answer(pooled, q) == "no"
    assert np.unravel_index(np.argmax(maps[0]), (2, 2)) == (0, 1)


def test_bad_shapes_are_named():
    m = hand_model()
    with pytest.raises(ValueError, match="features: shape"):
        m.answer_maps(np.zeros((3, 2, 2)), "dog")
    with pytest.raises(ValueError, match="pooled features"):
        m.scores(np.zeros(3), "dog")
    with pytest.raises(ValueError, match="VQAModel.bias"):
        VQAModel(["a"], ["w"], np.zeros((1, 2)), np.zeros((1, 2, 1)), np.zeros((1, 1)), np.zeros(2))


def _toy(rng, n):
    # feature grids (3, 2, 2) around 5 (the fit must fold the centring back): a dog is where
    # feature 0 is high, a cat where feature 1 is high; "what is there?" names the stronger one.
    f = 5 + rng.normal(size=(n, 3, 2, 2))
    p = f.mean(axis=(2, 3))
    qs, ans = [], []
    for i in range(n):
        kind = i % 3
        if kind == 0:
            qs.append("is there a dog?"), ans.append("yes" if p[i, 0] > 5 else "no")
        elif kind == 1:
            qs.append("is there a cat?"), ans.append("yes" if p[i, 1] > 5 else "no")
        else:
            qs.append("what is there?"), ans.append("dog" if p[i, 0] > p[i, 1] else "cat")
    return f, p, qs, ans


def test_fit_learns_question_dependent_answers_and_maps_stay_exact():
    rng = np.random.default_rng(0)
    _, p, qs, ans = _toy(rng, 900)
    model = fit_vqa(p, qs, ans, steps=300, weight_decay=1e-4)
    assert model.answers == ["cat", "dog", "no", "yes"]
    f, p, qs, ans = _toy(rng, 300)
    acc = np.mean([model.answer(p[i], qs[i]) == ans[i] for i in range(300)])
    assert acc > 0.9, acc
    for i in range(5):
        maps = model.answer_maps(f[i], qs[i])
        np.testing.assert_allclose(maps.mean(axis=(1, 2)) + model.question_bias(qs[i]), model.scores(p[i], qs[i]),
                                   rtol=1e-9, atol=1e-9)
    # a dog question's "yes" weight leans on feature 0, a cat question's on feature 1
    yes = model.answers.index("yes")
    assert np.argmax(model.image_weights("is there a dog?")[yes]) == 0
    assert np.argmax(model.image_weights("is there a cat?")[yes]) == 1


def test_fit_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="fit_vqa"):
        fit_vqa(np.zeros((3, 2)), ["a", "b"], ["x", "y", "z"])


def test_benchmark_questions_have_the_scene_answers():
    from camloc.experiments.vqa_scenes import questions

    objs = [{"category": "food", "kind": "thing", "box": [0, 0, 9, 9]},
            {"category": "dog", "kind": "animal", "box": [20, 0, 29, 9]}]
    for seed in range(5):
        qs = {k: (q, a, about) for k, q, a, about in questions(np.random.default_rng(seed), objs)}
        assert qs["what animal"][1:] == ("dog", 1)
        assert qs["what thing"][1:] == ("food", 0)
        assert qs["what is on the left"][1:] == ("food", 0)
        q, a, about = qs["is there (yes)"]
        assert a == "yes" and q == f"is there a {objs[about]['category']}?"
        q, a, about = qs["is there (no)"]
        assert a == "no" and about is None and tokenize(q)[-1] not in ("dog", "food")


def test_left_and_right_strips_written_out():
    from camloc.experiments.vqa import column_shares, region_pool

    np.testing.assert_array_equal(column_shares(3, 2), [[1, 0.5, 0], [0, 0.5, 1]])  # the middle column is shared
    f = np.array([[[1.0, 2.0, 4.0]]])  # K = 1, h = 1, w = 3
    np.testing.assert_allclose(region_pool(f, 2), [2 / 1.5, 5 / 1.5])
    np.testing.assert_allclose(region_pool(f, 1), [7 / 3])
    # "right" reads the right strip only: its map is 2 * share * f, and its mean is the score
    m = VQAModel(["right"], ["w"], np.array([[0.0, 1.0]]), np.zeros((1, 2, 1)), np.zeros((1, 1)), np.array([0.5]),
                 regions=2)
    np.testing.assert_allclose(m.answer_maps(f, "w")[0], [[0.0, 2.0, 8.0]])
    np.testing.assert_allclose(m.scores(m.pool(f), "w"), [5 / 1.5 + 0.5])
    with pytest.raises(ValueError, match="VQAModel.regions"):
        VQAModel(["a"], ["w"], np.zeros((1, 3)), np.zeros((1, 3, 1)), np.zeros((1, 1)), np.zeros(1), regions=2)


def test_fit_with_strips_answers_what_is_on_the_left_and_maps_stay_exact():
    # feature 0 marks a dog, feature 1 a cat; one of each, the dog left or right at random.
    from camloc.experiments.vqa import region_pool

    rng = np.random.default_rng(0)

    def grids(n):
        f = rng.normal(0, 0.1, size=(n, 2, 2, 4))
        left_dog = rng.random(n) < 0.5
        for i in range(n):
            f[i, 0 if left_dog[i] else 1, :, :2] += 1
            f[i, 1 if left_dog[i] else 0, :, 2:] += 1
        return f, np.where(left_dog, "dog", "cat")

    f, ans = grids(200)
    qs = ["what is on the left?"] * 200
    flat = fit_vqa(np.stack([g.mean(axis=(1, 2)) for g in f]), qs, list(ans), steps=200)
    strips = fit_vqa(np.stack([region_pool(g, 2) for g in f]), qs, list(ans), steps=200, regions=2)
    f, ans = grids(100)
    assert np.mean([flat.answer(g.mean(axis=(1, 2)), qs[0]) == a for g, a in zip(f, ans)]) < 0.7
    assert np.mean([strips.answer(strips.pool(g), qs[0]) == a for g, a in zip(f, ans)]) == 1.0
    maps = strips.answer_maps(f[0], qs[0])
    np.testing.assert_allclose(maps.mean(axis=(1, 2)) + strips.question_bias(qs[0]),
                               strips.scores(strips.pool(f[0]), qs[0]), rtol=1e-9, atol=1e-9)


def test_strip_blocks_are_the_average_and_the_difference():
    from camloc.experiments.vqa import strip_blocks

    mean, diff = strip_blocks(1, 2)
    np.testing.assert_array_equal(mean, [[0.5, 0.5]])
    np.testing.assert_array_equal(diff, [[0.5, -0.5]])  # left minus the average
    assert len(strip_blocks(3, 1)) == 1 and np.array_equal(strip_blocks(3, 1)[0], np.eye(3))
