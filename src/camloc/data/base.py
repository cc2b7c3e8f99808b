"""The records every dataset reader returns.

Boxes are ``[x0, y0, x1, y1]`` in original-image pixels with inclusive corners (DESIGN.md);
each reader documents how it converts its format's boxes to this.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Sample:
    """One image of a split.

    Attributes:
        image_id: the id as the format writes it (e.g. ``val/ILSVRC2012_val_00000001.JPEG``).
        path: the file to open.
        label: class index into the split's ``classes``.
        boxes: ground-truth boxes of the labelled class (may be empty when the split has none).
        size: ``(width, height)`` of the original image when the metadata gives it, else ``None``.
        mask: path of a ground-truth mask (PxAP datasets) or ``None``; the first of ``masks``.
        ignore: path of the mask's ignore region (PxAP datasets) or ``None``.
        masks: every ground-truth mask of the image (one per object instance; the
            ground truth is their union), ``[]`` for box datasets.
    """

    image_id: str
    path: str
    label: int
    boxes: list[list[int]] = field(default_factory=list)
    size: tuple[int, int] | None = None
    mask: str | None = None
    ignore: str | None = None
    masks: list[str] = field(default_factory=list)


@dataclass
class Split:
    """A list of samples and the class names their labels index."""

    samples: list[Sample]
    classes: list[str]
    name: str = ""
    skipped: list[str] = field(default_factory=list)  # one-line reasons for lines/images left out

    def __len__(self) -> int:
        return len(self.samples)
