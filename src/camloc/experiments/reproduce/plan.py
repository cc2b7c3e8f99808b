"""What a reproduction run does: the map methods compared (:data:`METHODS`) and the
:class:`Plan` (regimes, seeds, data sizes, training recipe), with the full and quick plans."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

NETS = ("gap", "gmp", "fc")


@dataclass(frozen=True)
class Method:
    """A map method applied to one of the trained nets."""

    key: str
    label: str
    net: str  # "gap", "gmp" or "fc"
    kind: str  # "cam", "cam_relu", "backprop" or "gradcam"


METHODS: tuple[Method, ...] = (
    Method("cam_gap", "CAM, GAP net (signed map, min-max)", "gap", "cam"),
    Method("cam_gap_relu", "CAM, GAP net (positive part, of the max)", "gap", "cam_relu"),
    Method("cam_gmp", "CAM, GMP net (signed map, min-max)", "gmp", "cam"),
    Method("cam_gmp_relu", "CAM, GMP net (positive part, of the max)", "gmp", "cam_relu"),
    Method("backprop_gap", "Backprop, GAP net", "gap", "backprop"),
    Method("backprop_fc", "Backprop, FC net", "fc", "backprop"),
    Method("gradcam_gap", "Grad-CAM, GAP net", "gap", "gradcam"),
    Method("gradcam_fc", "Grad-CAM, FC net", "fc", "gradcam"),
)


@dataclass(frozen=True)
class Plan:
    """What a reproduction run does (the full run's defaults fit 30 minutes on 2 CPU cores)."""

    regimes: tuple[str, ...] = ("clean", "cluttered")
    seeds: tuple[int, ...] = (0, 1, 2)
    data_seed: int = 0
    train: int = 10000
    val: int = 1000
    test: int = 1500
    epochs: int = 4
    batch_size: int = 128
    optimizer: str = "adamw"
    lr: float = 3e-3
    momentum: float = 0.9
    weight_decay: float = 0.05
    warmup: float = 0.15
    clip: float = 0.0
    widths: tuple[int, ...] = (16, 32, 64)
    stride: int = 2
    head_channels: int = 64
    dropout: float = 0.5
    fc_hidden: int = 256
    fc_dropout: float = 0.2
    bf16: bool = True
    box_threshold: float = 0.2
    threshold_step: float = 0.01
    figure_rows: int = 6
    workers: int = 0  # scoring processes; 0: one per CPU

    def model_args(self, net: str) -> dict[str, Any]:
        args: dict[str, Any] = {"widths": list(self.widths), "stride": self.stride, "bf16": self.bf16}
        if net == "fc":
            args.update(fc_hidden=self.fc_hidden, dropout=self.fc_dropout)
        else:
            args.update(head_channels=self.head_channels, dropout=self.dropout)
        return args

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    def training_key(self) -> dict[str, Any]:
        """The fields a trained net depends on (a rerun reuses a checkpoint with the same key)."""
        keep = ("data_seed", "train", "val", "epochs", "batch_size", "optimizer", "lr", "momentum", "weight_decay",
                "warmup", "clip", "widths", "stride", "head_channels", "dropout", "fc_hidden", "fc_dropout", "bf16")
        return {k: v for k, v in self.to_dict().items() if k in keep}


FULL = Plan()
QUICK = Plan(regimes=("cluttered",), seeds=(0,), train=3000, val=200, test=300, epochs=4, figure_rows=3)


def plan_from_dict(d: dict[str, Any]) -> Plan:
    """The :class:`Plan` recorded in a ``results.json``."""
    names = {f.name for f in dataclasses.fields(Plan)}
    return Plan(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in names})
