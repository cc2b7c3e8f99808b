"""What the generated experiments (scenes, concepts, VQA) share: one driver that generates, runs,
writes ``NAME.json``, ``NAME.png`` and ``NAME.md`` under the output folder and returns the report."""

from __future__ import annotations

import os
import tempfile
from types import ModuleType

EXPERIMENTS = ("scenes", "concepts", "vqa")


def module(name: str) -> ModuleType:
    """The experiment's module: its ``run``, ``numbers``, ``markdown``, ``figure`` and constants."""
    import importlib

    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r} (known: {', '.join(EXPERIMENTS)})")
    return importlib.import_module(f"camloc.experiments.{'vqa_scenes' if name == 'vqa' else name}")


def command_line(name: str, seed: int, quick: bool, photos: str | None = None) -> str:
    """The command that reproduces an experiment's numbers."""
    mod = module(name)
    parts = ["camloc experiment", name] + ([f"--seed {seed}"] if seed != mod.SEED else []) + \
        (["--quick"] if quick else []) + ([f"--photos {photos}"] if photos else [])
    return " ".join(parts)


def machine_line() -> str:
    """The machine, read before a run: cores, torch, threads and the load average."""
    import platform

    import torch

    return (f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
            f"{torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f} at start")


def drive(name: str, out: str, seed: int | None = None, quick: bool = False, photos: str | None = None,
          progress: bool = False, figure: str | None = None, sizes: dict[str, int] | None = None) -> str:
    """Run experiment ``name`` -> its report (markdown); writes ``out/NAME.json`` (the numbers),
    ``out/NAME.md`` (the report) and the figure (``figure``, default ``out/NAME.png``). ``sizes``
    (e.g. ``{"n_train": 8, "n_test": 4}``) overrides the run's sizes (``quick``: the module's
    ``QUICK``)."""
    from camloc.experiments.scenes import PHOTOS, check_photos
    from camloc.io import atomic_write_json, atomic_write_text

    mod = module(name)
    seed = mod.SEED if seed is None else seed
    check_photos(photos or PHOTOS)
    machine = machine_line()
    os.makedirs(out, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"camloc-{name}-") as root:
        res = mod.run(root, seed=seed, photos=photos or PHOTOS, progress=progress,
                      **{**(mod.QUICK if quick else {}), **(sizes or {})})
        mod.figure(res, figure or os.path.join(out, f"{name}.png"))
    report = mod.markdown(res, command_line(name, seed, quick, photos), machine)
    atomic_write_json(os.path.join(out, f"{name}.json"), mod.numbers(res))
    atomic_write_text(os.path.join(out, f"{name}.md"), report)
    return report
