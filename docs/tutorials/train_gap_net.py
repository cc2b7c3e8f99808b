# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Train a GAP net on your folder and localize with it
#
# A folder of images sorted into one sub-folder per class is all the supervision a GAP net
# needs: it learns to classify from image labels only, and its class activation maps then
# localize the objects. Here a generated folder of coloured shapes stands in for yours
# (`camloc.testing.write_folder_fixture`: three classes, one colour each, on dark noise), and
# `fashion_gap`, camloc's small CPU net (a few 3x3 conv stages, a 3x3 conv, GAP, linear),
# trains on it in well under a minute.
#
# ```
# shapes/train/cat/cat_000.jpg ...   shapes/val/cat/cat_000.jpg ...
#              dog/...                         dog/...
#              fox/...                         fox/...
# ```

# %%
import os
import tempfile

import camloc
import matplotlib.pyplot as plt
import torch
from camloc.testing import write_folder_fixture
from camloc.train import train

torch.set_num_threads(2)
work = tempfile.mkdtemp()
data = os.path.join(work, "shapes")
write_folder_fixture(data, "train", per_class=16)
val = write_folder_fixture(data, "val", per_class=4)

# %% [markdown]
# `camloc.train.train` takes the same keys as a `camloc train --config` TOML file
# (see [Training](../training.md)): here a smaller `fashion_gap`, 64x64 crops, six epochs.

# %%
result = train({
    "data": data, "model": "fashion_gap", "out": os.path.join(work, "run"),
    "model_args": {"widths": [16, 32], "head_channels": 32, "in_size": 64},
    "epochs": 6, "batch_size": 12, "lr": 0.05, "lr_schedule": "cosine",
    "resize": 72, "crop": 64, "workers": 0, "progress": False, "seed": 0,
})
[(m["epoch"], round(m["train_loss"], 3), m["val_top1_error"]) for m in result.metrics]

# %% [markdown]
# The run directory holds `best.pt`, a camloc checkpoint (architecture, weights, class names,
# preprocessing): `camloc.load_model` reads it, and so does `camloc localize --model
# run/best.pt`.

# %%
net = camloc.load_model(result.best)
print(net.name, net.class_names, camloc.check_exact(net))
records = camloc.localize(net, val.files, topk=1)

hits = 0
for path, record in zip(val.files, records):
    pred = record["predictions"][0]
    painted = val.extra["boxes"][os.path.relpath(path, os.path.join(data, "val"))][0]
    hits += pred["label"] == os.path.basename(os.path.dirname(path)) and camloc.box_iou(pred["box"], painted) >= 0.5
print(f"right class and box IoU >= 0.5 with the painted shape: {hits} of {len(records)}")

# %% [markdown]
# The maps over the validation images, the CAM box (green) and the painted shape (red):

# %%
from PIL import Image

fig, axes = plt.subplots(2, 6, figsize=(12, 4.4))
for ax, path, record in zip(axes.flat, val.files, records):
    image = Image.open(path).convert("RGB")
    out = camloc.cam(net, net.preprocess([image]), topk=1)
    ax.imshow(camloc.overlay(image, out.maps[0, 0], alpha=0.5, norm="positive"))
    painted = val.extra["boxes"][os.path.relpath(path, os.path.join(data, "val"))][0]
    for (x0, y0, x1, y1), colour in ((painted, "red"), (record["predictions"][0]["box"], "lime")):
        ax.add_patch(plt.Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0 + 1, y1 - y0 + 1, fill=False, color=colour, lw=1.5))
    ax.set_title(record["predictions"][0]["label"])
    ax.set_axis_off()
fig.tight_layout()
plt.show()

# %% [markdown]
# For a real data set, start from an ImageNet backbone (the paper's `vgg16_gap`, `googlenet_gap`
# or `camloc.gapify` of any torchvision CNN, with local weights) and the paper's fine-tuning
# recipe; `torchrun --nproc_per_node=N -m camloc.cli train ...` trains on N processes or GPUs
# ([Training](../training.md), [Scaling out](../guides/scaling.md)).
