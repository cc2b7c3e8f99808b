"""The CVPR 2020 WSOL benchmark's fair hyperparameter search (``camloc search``).

Every trial is one training run (:func:`camloc.train.train`) of one WSOL method with the
learning rate and the method's keys sampled by Optuna (random search, or TPE), scored by
MaxBoxAccV2 (the mean over IoU 0.3/0.5/0.7) on a validation split cut to ``val_per_class``
box-labelled images per class; the best configuration is then retrained once and tested once on
the test split, beside the few-shot fully supervised baseline on the same box-labelled images
(:mod:`camloc.train.fewshot`).

The study lives in an Optuna RDB storage (a SQLite file in the output folder by default), so
a killed search continues where it stopped (a trial killed mid-run is marked failed after its
heartbeat lapses, retried with the same parameters, and its training resumes from its
``last.pt``), and several machines pointed at one database (``--storage
postgresql://...``) share the trials. Each trial keeps its run directory
(``trials/NNNN/``: ``config.json``, ``metrics.csv``, checkpoints) and ``val.json``
(the validation metrics and BoxAcc curves); the study's trials also carry them as user
attributes. A study that holds another method's (or another config's) trials refuses to mix.
"""

from __future__ import annotations

import json
import math
import os
import sys
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from camloc.data.base import Split
from camloc.errors import ConfigError
from camloc.io import atomic_write_json, finite_json
from camloc.train.config import TrainConfig, apply_overrides, load_config
from camloc.train.data import open_split
from camloc.train.wsol.spec import METHODS, suggest

VAL_PER_CLASS = 5  # the benchmark's full-supervision validation size for CUB (ImageNet: 10, OpenImages: 25)
SCORE = "MaxBoxAccV2"
REPORTED = ("MaxBoxAccV2", "MaxBoxAccV2@30", "MaxBoxAccV2@50", "MaxBoxAccV2@70", "top1_loc_error", "gt_known_loc_acc",
            "top1_cls_error", "PxAP", "num_images")  # PxAP: only on a split with masks


class Diverged(RuntimeError):
    """A trial's training loss was not finite."""


@dataclass
class SearchOptions:
    """What ``camloc search`` does.

    Attributes:
        method: the WSOL method searched (its keys and the learning rate).
        trials: trials to complete in the study (diverged trials count; killed ones are retried).
        out: the search folder (``study.db``, ``trials/``, ``final/``, ``result.json``).
        storage: an Optuna RDB URL (default ``sqlite:///OUT/study.db``).
        study: the study's name (default ``wsol-<method>``).
        sampler: ``"random"`` (the benchmark's) or ``"tpe"``.
        val_per_class: K, the box-labelled validation images per class.
        test_split: the split the best configuration is tested on once (``""``: no test).
        lr_range: the learning rate is sampled log-uniformly in ``[lr / lr_range, lr * lr_range]``.
        seed: seeds the sampler (offset by the trials already in the study) and the final run.
        heartbeat: seconds between a running trial's heartbeats; one silent for ``3 x heartbeat``
            is taken as killed, marked failed and retried.
        final: retrain the best configuration and test it once (and fit the few-shot baseline).
    """

    method: str = "cam"
    trials: int = 10
    out: str = "runs/search"
    storage: str = ""
    study: str = ""
    sampler: str = "random"
    val_per_class: int = VAL_PER_CLASS
    test_split: str = "test"
    lr_range: float = 10.0
    seed: int = 0
    heartbeat: int = 30
    final: bool = True


def box_subset(split: Split, k: int, where: str) -> Split:
    """The first ``k`` images of every class (in the split's order), all box-labelled; one-line
    ``ValueError`` when the split has images without boxes or a class with fewer than ``k``."""
    if k < 1:
        raise ValueError(f"{where}: val_per_class must be at least 1, got {k}")
    if len(split) == 0:
        raise ValueError(f"{where}: validation split '{split.name}' holds no images")
    unboxed = [s for s in split.samples if not s.boxes]
    if unboxed:
        raise ValueError(f"{where}: validation split '{split.name}' has {len(unboxed)} of {len(split)} images without "
                         f"boxes (first: {unboxed[0].image_id}); the search scores MaxBoxAccV2 on box-labelled images")
    chosen: dict[int, list[Any]] = {c: [] for c in range(len(split.classes))}
    for s in split.samples:
        if len(chosen[s.label]) < k:
            chosen[s.label].append(s)
    short = [(c, len(v)) for c, v in chosen.items() if len(v) < k]
    if short:
        c, n = short[0]
        raise ValueError(f"{where}: validation split '{split.name}' has {n} box-labelled images of class "
                         f"'{split.classes[c]}', fewer than val_per_class={k} ({len(short)} classes short)")
    return Split([s for c in sorted(chosen) for s in chosen[c]], list(split.classes), split.name)


def evaluate_run(checkpoint: str | os.PathLike, split: Split) -> tuple[dict[str, Any], dict[str, list[float]]]:
    """The CAM metrics of a run's checkpoint on ``split`` (the evaluator every figure uses); PxAP
    among them when the split's samples carry masks."""
    from camloc.evaluate import EvalOptions, evaluate
    from camloc.models import load_model

    net = load_model(os.fspath(checkpoint))
    result = evaluate(net, split, EvalOptions(topk=1, progress=False, examples=0, batch_size=64))
    return {k: result.metrics[k] for k in REPORTED if k in result.metrics}, result.curves


def _log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


class _Search:
    def __init__(self, cfg: TrainConfig, opt: SearchOptions, source: str) -> None:
        self.cfg, self.opt, self.source = cfg, opt, source
        self.out = Path(opt.out)

    # ------------------------------------------------------------------------ the study
    def open_study(self) -> Any:
        import optuna

        opt = self.opt
        self.out.mkdir(parents=True, exist_ok=True)
        url = opt.storage or f"sqlite:///{(self.out / 'study.db').resolve()}"
        with warnings.catch_warnings():  # heartbeats and retries are marked experimental in Optuna
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            storage = optuna.storages.RDBStorage(
                url, heartbeat_interval=opt.heartbeat, grace_period=3 * opt.heartbeat,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=3))
        name = opt.study or f"wsol-{opt.method}"
        study = optuna.create_study(study_name=name, storage=storage, direction="maximize", load_if_exists=True,
                                    sampler=self._sampler(0))
        fingerprint = {"method": opt.method, "config": self._fingerprint()}
        held = study.user_attrs.get("fingerprint")
        if held is None:
            if study.trials:
                raise ConfigError(f"{url}: study '{name}' holds trials of no camloc search; name another study")
            study.set_user_attr("fingerprint", fingerprint)
        elif held["method"] != opt.method:
            raise ConfigError(f"{url}: study '{name}' holds trials of wsol_method '{held['method']}', not "
                              f"'{opt.method}'; name another study (--study) or output folder")
        elif held["config"] != fingerprint["config"]:
            diff = sorted(k for k in set(held["config"]) | set(fingerprint["config"])
                          if held["config"].get(k) != fingerprint["config"].get(k))
            raise ConfigError(f"{url}: study '{name}' was run with another config (differs in "
                              f"{', '.join(diff[:5])}); name another study (--study) or output folder")
        study.sampler = self._sampler(len(study.trials))
        return study

    def _fingerprint(self) -> dict[str, Any]:
        """The config keys every trial shares (what the search does not sample)."""
        d = self.cfg.to_dict()
        for k in ("lr", "wsol_args", "out", "progress", "workers", "device", "wsol_method"):
            d.pop(k, None)
        return json.loads(json.dumps(d))

    def _sampler(self, offset: int) -> Any:
        import optuna

        seed = self.opt.seed + offset
        if self.opt.sampler == "tpe":
            return optuna.samplers.TPESampler(seed=seed)
        return optuna.samplers.RandomSampler(seed=seed)

    def spent(self, study: Any) -> int:
        import optuna

        return sum(1 for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE
                   or (t.state == optuna.trial.TrialState.FAIL and t.user_attrs.get("diverged")))

    # ------------------------------------------------------------------------ one trial
    def objective(self, trial: Any) -> float:
        import optuna

        lr = trial.suggest_float("lr", self.cfg.lr / self.opt.lr_range, self.cfg.lr * self.opt.lr_range, log=True)
        args = suggest(trial, self.opt.method)
        frozen = next(t for t in trial.study.get_trials(deepcopy=False) if t.number == trial.number)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            retried = optuna.storages.RetryHeartbeatStaleTrialCallback.retried_trial_number(frozen)
        number = trial.number if retried is None else retried
        run_dir = self.out / "trials" / f"{number:04d}"
        trial.set_user_attr("run_dir", str(run_dir))
        trial.set_user_attr("wsol_args", args)
        _log(f"trial {trial.number}: lr {lr:.3g}, {self.opt.method} {args}"
             + (f" (retrying trial {retried})" if retried is not None else ""))
        rows = self._train(run_dir, lr, args, self.cfg.seed)
        trial.set_user_attr("curves", rows)
        losses = [r["train_loss"] for r in rows]
        if not all(math.isfinite(v) for v in losses):
            trial.set_user_attr("diverged", True)
            raise Diverged(f"trial {trial.number}: training loss {losses[-1]} (diverged); recorded as failed")
        metrics, curves = evaluate_run(run_dir / "last.pt", self.val)
        atomic_write_json(run_dir / "val.json", {"metrics": metrics, "curves": curves, "lr": lr, "wsol_args": args})
        trial.set_user_attr("metrics", metrics)
        _log(f"trial {trial.number}: validation MaxBoxAccV2 {metrics[SCORE]:.2f}")
        return float(metrics[SCORE])

    def _train(self, run_dir: Path, lr: float, args: dict[str, Any], seed: int) -> list[dict[str, Any]]:
        return train_run(self.cfg, self.opt.method, lr, args, seed, run_dir)

    # ------------------------------------------------------------------------ the search
    def run(self) -> dict[str, Any]:
        import optuna

        opt = self.opt
        val_name = self.cfg.val_split or "val"
        self.val = box_subset(open_split(self.cfg, val_name), opt.val_per_class, self.cfg.data)
        test = open_split(self.cfg, opt.test_split) if opt.final and opt.test_split else None
        if test is not None and not any(s.boxes for s in test.samples):
            raise ValueError(f"{self.cfg.data}: test split '{opt.test_split}' has no boxes to test localization on")
        study = self.open_study()
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        while self.spent(study) < opt.trials:
            study.optimize(self.objective, n_trials=1, catch=(Diverged,))
        done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        summary = {"method": opt.method, "study": study.study_name, "trials": len(done),
                   "failed": sum(1 for t in study.trials if t.user_attrs.get("diverged")),
                   "val_per_class": opt.val_per_class, "val_images": len(self.val)}
        if not done:
            raise RuntimeError(f"{self.out}: no trial of {opt.method} completed (all {summary['failed']} diverged)")
        best = study.best_trial
        summary.update({"best_trial": best.number, "best_val": best.user_attrs.get("metrics"),
                        "best_lr": best.params["lr"], "best_wsol_args": best.user_attrs.get("wsol_args")})
        atomic_write_json(self.out / "trials.json", finite_json([
            {"number": t.number, "state": t.state.name, "value": t.value, "params": t.params,
             "user_attrs": t.user_attrs} for t in study.trials]))
        if test is not None:
            summary["test"] = self.final(best, test)
        atomic_write_json(self.out / "result.json", summary)
        return summary

    def final(self, best: Any, test: Split) -> dict[str, Any]:
        _log(f"retraining the best configuration (trial {best.number}) once, seed {self.opt.seed}")
        return train_and_test(self.cfg, self.opt.method, best.params["lr"], best.user_attrs.get("wsol_args") or {},
                              self.opt.seed, self.out / "final", self.val, test)


def train_run(cfg: TrainConfig, method: str, lr: float, args: dict[str, Any], seed: int, run_dir: Path
              ) -> list[dict[str, Any]]:
    """Train ``cfg`` with ``method``'s ``args``, ``lr`` and ``seed`` in ``run_dir`` (continuing its
    ``last.pt`` when there is one; no validation pass); the per-epoch curves."""
    from camloc.train import train

    if (run_dir / "last.pt").is_file():
        result = train(resume=run_dir)
    else:
        values = {**cfg.to_dict(), "lr": lr, "seed": seed, "wsol_method": method, "wsol_args": args,
                  "val_split": "", "out": str(run_dir)}
        result = train(TrainConfig(**values).check("search"))
    return [{k: r[k] for k in ("epoch", "lr", "train_loss", "train_top1_error")} for r in result.metrics]


def train_and_test(cfg: TrainConfig, method: str, lr: float, args: dict[str, Any], seed: int, run_dir: Path,
                   val: Split, test: Split) -> dict[str, Any]:
    """One training run tested once on ``test`` (``test.json`` in ``run_dir``), with the few-shot
    baseline fitted on ``val``'s box-labelled images over the run's frozen features."""
    from camloc.train.fewshot import fewshot_baseline

    run_dir = Path(run_dir)
    rows = train_run(cfg, method, lr, args, seed, run_dir)
    if not all(math.isfinite(r["train_loss"]) for r in rows):
        raise Diverged(f"{run_dir}: training loss {rows[-1]['train_loss']} (diverged)")
    metrics, curves = evaluate_run(run_dir / "last.pt", test)
    metrics["fewshot"] = fewshot_baseline(run_dir / "last.pt", val, test)
    metrics["seed"] = seed
    atomic_write_json(run_dir / "test.json", {"metrics": metrics, "curves": curves})
    return metrics


def search(config: str | os.PathLike | TrainConfig, options: SearchOptions, overrides: list[str] | tuple[str, ...] = ()
           ) -> dict[str, Any]:
    """Run (or continue) the search ``options`` describes on the training config ``config``."""
    if options.method not in METHODS:
        import difflib

        close = difflib.get_close_matches(options.method, METHODS, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        raise ConfigError(f"--method: unknown wsol_method '{options.method}' ({hint}methods: {', '.join(METHODS)})")
    if options.sampler not in ("random", "tpe"):
        raise ConfigError(f"--sampler must be 'random' or 'tpe', got '{options.sampler}'")
    if options.trials < 1:
        raise ConfigError(f"--trials must be at least 1, got {options.trials}")
    if isinstance(config, TrainConfig):
        cfg, source = apply_overrides(config, overrides), "config"
    else:
        cfg, source = load_config(config, overrides), os.fspath(config)
    if cfg.wsol_args and cfg.wsol_method != options.method:
        raise ConfigError(f"{source}: sets wsol_args for '{cfg.wsol_method}' but the search is of '{options.method}'")
    try:
        import optuna  # noqa: F401
    except ImportError:
        raise ConfigError("camloc search needs Optuna: pip install 'camloc[search]'") from None
    Path(options.out).mkdir(parents=True, exist_ok=True)
    atomic_write_json(Path(options.out) / "search.json", {"options": asdict(options), "config": cfg.to_dict()})
    return _Search(cfg, options, source).run()
