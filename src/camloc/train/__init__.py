"""Weakly supervised training: a classifier learns from image-level labels only (boxes, when the
dataset has them, are never read), and its GAP head then localizes by CAM.

    >>> from camloc.train import train
    >>> result = train("configs/train_fixture.toml", overrides=["epochs=2"])
    >>> result.run_dir, result.metrics[-1]["val_top1_error"]

One process on CPU, or N processes under ``torchrun --nproc_per_node=N`` with
DistributedDataParallel (NCCL on GPUs, gloo on CPU); ``batch_size`` is the global batch, so N
processes take the same optimization steps as one. Mixed precision on CUDA.

A run directory holds ``config.json``, ``metrics.csv`` (one row per epoch), ``last.pt`` and
``best.pt`` (camloc checkpoints that ``camloc.load_model(FILE)`` and ``camloc localize --model
FILE`` load directly), all written atomically after every epoch. ``last.pt`` also carries the
optimizer, scheduler, gradient scaler, random states and epoch, so :func:`train` with
``resume=RUN_DIR`` continues a killed run and ends with the same weights as an uninterrupted
one (on CPU). Sampling order and augmentation depend only on ``(seed, epoch, index)``.

The modules follow what flows through a run: ``config`` (the TOML keys), ``data`` (splits and
loaders), ``nets`` (the net to train), ``distributed`` (the process group), ``loop`` (one
epoch), ``random_state`` (what resuming restores) and ``run`` (:func:`train` and its files);
``wsol`` holds the WSOL methods the training step applies (``wsol_method``), ``search`` the
fair hyperparameter search (``camloc search``, Optuna) and ``fewshot`` its few-shot baseline.
"""

from camloc.train.config import TrainConfig, apply_overrides, config_from_dict, load_config, model_arg_line
from camloc.train.data import check_split, make_loaders, open_split
from camloc.train.distributed import Dist, all_sum, setup_distributed
from camloc.train.loop import Tally, evaluate, param_groups, scheduler, train_epoch
from camloc.train.nets import build_net, check_model, init_weights
from camloc.train.random_state import rng_state, seed_everything, set_rng_state
from camloc.train.run import METRIC_COLUMNS, TrainResult, train

__all__ = ["METRIC_COLUMNS", "Dist", "Tally", "TrainConfig", "TrainResult", "all_sum", "apply_overrides",
           "build_net", "check_model", "check_split", "config_from_dict", "evaluate", "init_weights",
           "load_config", "make_loaders", "model_arg_line", "open_split", "param_groups", "rng_state",
           "scheduler", "seed_everything", "set_rng_state", "setup_distributed", "train", "train_epoch"]
