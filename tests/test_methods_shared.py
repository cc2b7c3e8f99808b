"""Passes shared between methods (camloc.methods.shared): inside ``shared_passes(x)`` every method
gives the map it gives alone (to 1e-5), with one forward pass for the closed-form family at a GAP +
linear head and one forward + one backward for the gradient methods at an earlier layer."""

from __future__ import annotations

import pytest
import torch
import torchvision

from camloc.methods import get_method
from camloc.methods.shared import shared_passes
from camloc.models.net import CamNet, Preprocessing

CLOSED = ("cam", "gradcam", "xgradcam", "hirescam", "gradcam_elementwise", "layercam", "gradcampp", "eigengradcam",
          "eigencam", "kpcacam")
OTHERS = ("finercam", "center")  # not shared: each gives its own map inside the block too


@pytest.fixture(scope="module")
def resnet():
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=5).eval()
    return CamNet(model, "resnet18-random", [f"c{i}" for i in range(5)], Preprocessing(shape=(64, 64)))


def forwards(model):
    count = {"n": 0}
    return count, model.register_forward_hook(lambda *a: count.__setitem__("n", count["n"] + 1))


@pytest.mark.parametrize("layer", [None, "layer3"])
def test_shared_maps_equal_each_method_alone(resnet, layer):
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    classes = torch.tensor([[1, 3], [0, 2]])
    names = CLOSED + OTHERS if layer is None else tuple(n for n in CLOSED + OTHERS if n not in ("cam", "center"))
    opts = {} if layer is None else {"layer": layer}
    methods = {n: get_method(n, **(opts if n not in ("cam", "center") else {})) for n in names}
    alone = {n: m(resnet, x, classes) for n, m in methods.items()}
    count, hook = forwards(resnet.module)
    try:
        with shared_passes(x) as store:
            together = {n: m(resnet, x, classes) for n, m in methods.items() if n in CLOSED}
        shared_forwards = count["n"]
    finally:
        hook.remove()
    with shared_passes(x):
        together.update({n: m(resnet, x, classes) for n, m in methods.items() if n not in CLOSED})
    for n in names:
        assert torch.allclose(together[n], alone[n], atol=1e-5, rtol=1e-5), n
    # the closed form: one forward without a graph for CAM and the nine others; at layer3 one forward with a graph
    # for the seven gradient methods (their backward passes ride on it) and one without for the two
    # decomposition methods
    assert shared_forwards == (1 if layer is None else 2)
    closed = [n for n in CLOSED if n in methods]  # cam takes no layer
    assert store["misses"] == 2 and store["hits"] == len(closed) - 2 + (layer is None)


def test_nothing_is_shared_for_another_input_or_outside_the_block(resnet):
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    y = x.clone()
    m = get_method("gradcam", layer="layer3")
    count, hook = forwards(resnet.module)
    try:
        with shared_passes(x) as store:
            m(resnet, y, [0])
            m(resnet, y, [0])
            m(resnet, x, [0])
            x.add_(0.5)  # an in-place change: a new version, a new pass
            changed = m(resnet, x, [0])
        m(resnet, x, [0])
    finally:
        hook.remove()
    assert count["n"] == 5 and store["misses"] == 2 and store["hits"] == 0
    assert torch.allclose(changed, m(resnet, x, [0]), atol=1e-6)


def test_the_shared_passes_benchmark_runs_quick():
    from benchmarks import compare_shared

    threads = torch.get_num_threads()
    text = compare_shared.main(quick_run=True)
    assert torch.get_num_threads() == threads
    assert text.count("x** wall") == 2 and "methods cam, gradcam:" in text and "_blocks.15" in text


def test_an_inference_mode_input_is_shared_too():
    from camloc.methods.shared import memo

    with torch.inference_mode():
        x = torch.ones(2)
    with shared_passes(x) as store:
        assert memo(x, ("k",), lambda: 1) == 1 and memo(x, ("k",), lambda: 2) == 1
    assert store["hits"] == 1 and memo(x, ("k",), lambda: 3) == 3  # outside the block: computed


@pytest.mark.parametrize("name", ["gradcam", "gradcampp", "eigencam", "cam"])
def test_the_pipeline_gives_its_forward_to_the_method(resnet, name, monkeypatch):
    """``localize --method``: the pipeline's own forward (scores for the top-k) is the one the
    closed forms read, so the net runs once per batch, not twice, and the maps are the same."""
    import numpy as np

    import camloc.methods.base as base
    from camloc.localize import LocalizeOptions, iter_localize

    images = [np.random.default_rng(i).integers(0, 256, (64, 64, 3), dtype=np.uint8) for i in range(3)]
    method = get_method(name)

    def run():
        count, hook = forwards(resnet.module)
        try:
            items = list(iter_localize(resnet, images, LocalizeOptions(topk=2, method=method), backend="torch",
                                       batch_size=4))
        finally:
            hook.remove()
        return count["n"], np.stack([item.maps for item in items])

    shared_count, shared_maps = run()
    monkeypatch.setattr(base, "share_forward", lambda *a, **k: False)
    own_count, own_maps = run()
    assert (shared_count, own_count) == (1, 2)  # one batch of three images
    np.testing.assert_array_equal(shared_maps, own_maps)


def test_the_compare_backend_benchmark_runs_small():
    from benchmarks import compare_shared

    if not (compare_shared.DATA / "metadata").is_dir():
        pytest.skip("the shared ilsvrc-val-227 photos are not here")
    text = compare_shared.backends(2, ("cam", "center"), steps=2)
    rows = [line for line in text.splitlines() if line.startswith("| first half") or line.startswith("| second half")]
    assert len(rows) == 2 and all("| 1 |" in r for r in rows)
    for r in rows:  # the same AUCs on both backends, to the graphs' tolerance
        assert float(r.rstrip(" |").rsplit("|", 1)[1]) < 5e-3
