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
# # Evaluate weakly supervised localization on a WSOL-layout set
#
# The CVPR 2020 WSOL evaluation ("Evaluating Weakly Supervised Object Localization Methods
# Right") ships its splits as metadata folders: `image_ids.txt`, `class_labels.txt`,
# `image_sizes.txt` and `localization.txt` (boxes, or masks for OpenImages). camloc reads that
# layout (and CUB-200-2011, ILSVRC, class folders) and computes every metric in one pass:
# classification error, the paper's top-1/top-5 localization and GT-known accuracy (20 % rule,
# IoU ≥ 0.5), MaxBoxAcc and MaxBoxAccV2 (the best threshold, IoU 0.3/0.5/0.7), PxAP for masks.
#
# To have answers we know, this tutorial writes a small set in that layout
# (`camloc.testing.write_wsol_fixture`: coloured rectangles on dark noise, the rectangles are
# the boxes) and evaluates a hand-built net whose features are the three colours
# (`camloc.testing.nets.colour_net`): its CAM of class *c* is exactly the objects of colour *c*.

# %%
import os
import tempfile

import camloc
from camloc.testing import write_wsol_fixture
from camloc.testing.nets import colour_net

root = tempfile.mkdtemp()
fixture = write_wsol_fixture(root, "test", num_classes=3, per_class=4)
print(sorted(os.listdir(os.path.join(root, "test"))))
print(open(os.path.join(root, "test", "localization.txt")).read().splitlines()[:3])

# %% [markdown]
# `camloc.evaluate(model, data, split, **options)` returns the metrics as a dict (percent),
# the same numbers `camloc evaluate` writes to `metrics.json`:

# %%
metrics = camloc.evaluate(colour_net("avg"), root, "test", progress=False)
{k: round(v, 2) if isinstance(v, float) else v for k, v in metrics.items() if k != "skipped"}

# %% [markdown]
# ## GAP against GMP, CAM against Grad-CAM
#
# The same net with global max pooling classifies as well but its CAM is no longer its score
# (the paper's GAP/GMP comparison); Grad-CAM reads the same features through gradients.
# Options are the fields of `camloc.evaluate.EvalOptions` (`method`, `norm`, `resize`,
# `faithfulness`, ...).

# %%
keys = ["top1_cls_error", "gt_known_loc_acc", "top1_loc_error", "MaxBoxAcc", "MaxBoxAccV2"]
print(f"{'net':<5} {'method':<9}" + "".join(f"{k:>18}" for k in keys))
for pooling in ("avg", "max"):
    for method in ("cam", "gradcam"):
        m = camloc.evaluate(colour_net(pooling), root, "test", method=method, progress=False)
        print(f"{pooling:<5} {method:<9}" + "".join(f"{m[k]:>18.1f}" for k in keys))

# %% [markdown]
# On these clean shapes every combination finds every box: a colour detector's features are the
# objects whatever the pooling. On real photos the paper's GAP/GMP gap appears, and `make
# reproduce` measures it on Fashion-MNIST scenes ([Reproducing the paper](../reproduce.md)).

# %% [markdown]
# ## What a box looks like
#
# The map of the true class over one image, the ground-truth boxes (red) and the paper's box at
# 20 % of the map's maximum (green):

# %%
from camloc.viz import draw_box
from PIL import Image
import numpy as np

sample = fixture.split.samples[1]                     # an image with two boxes
net = colour_net("avg")
image = Image.open(sample.path).convert("RGB")
out = camloc.cam(net, net.preprocess([image]), topk=1)
m = camloc.upsample(out.maps[0, 0].numpy(), (image.height, image.width))
picture = np.asarray(camloc.overlay(image, m, alpha=0.4))
for gt in sample.boxes:
    picture = draw_box(picture, gt, color=(255, 0, 0))
picture = draw_box(picture, camloc.boxes_from_map(m, 0.2)[0], color=(0, 255, 0))
Image.fromarray(picture).resize((image.width * 4, image.height * 4), Image.NEAREST)

# %% [markdown]
# On a real set, point `data` at its root: `camloc.evaluate("runs/cub/best.pt", "/data/CUB",
# "val")` or `camloc evaluate --model runs/cub/best.pt --data /data/CUB --out eval_out` (the
# command also writes the BoxAcc-threshold curves and example figures). The metrics'
# conventions are in [Evaluation](../evaluation.md).
