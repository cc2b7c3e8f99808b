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
# # Compare the map methods on your photos
#
# camloc computes four kinds of maps in the same harness (`camloc.methods`):
#
# | name | what | cost |
# |---|---|---|
# | `cam` | the class activation map: last features weighted by the classifier's row (GAP heads) | one forward pass |
# | `backprop` | the gradient of the class score with respect to the pixels (the paper's baseline) | forward + backward |
# | `gradcam` | features weighted by their spatially averaged gradients, ReLU | forward + backward |
# | `gradcampp` | Grad-CAM++: positive gradients weighted by higher-order terms | forward + backward |
#
# Put your own photos in `photos`; here three photos bundled with scikit-image.

# %%
import time

import camloc
import matplotlib.pyplot as plt
import torch
from camloc.photos import demo_photo_paths
from PIL import Image

photos = [Image.open(p).convert("RGB") for p in demo_photo_paths()[:3]]
net = camloc.load_model()                                  # EfficientNet-Lite1 (the default), ImageNet
x = net.preprocess(photos)
top1 = camloc.cam(net, x, topk=1).classes                 # the class each method explains
names = ["cam", "backprop", "gradcam", "gradcampp"]

rows, maps = [], {}
for name in names:
    method = camloc.get_method(name)
    start = time.perf_counter()
    maps[name] = method(net, x, top1).detach()             # (images, 1, h, w)
    ms = (time.perf_counter() - start) * 1000 / len(photos)
    for i, photo in enumerate(photos):
        m = camloc.upsample(maps[name][i, 0].numpy(), (photo.height, photo.width))
        boxes = camloc.boxes_from_map(m, threshold=0.2, norm="positive")
        rows.append({"photo": i, "method": name, "ms/image": ms, "box": boxes[0] if boxes else None})

# %% [markdown]
# ## The table
#
# Each method's box (the paper's rule: 20 % of the map's maximum, largest component) and how
# far it agrees with CAM's box (IoU). Time per image includes the backward pass of the
# gradient methods; on this shared CPU the absolute times vary, the ratios less.

# %%
cam_box = {r["photo"]: r["box"] for r in rows if r["method"] == "cam"}
print(f"{'photo':>5}  {'class':<22} {'method':<10} {'ms/image':>9}  {'IoU with CAM':>12}  box")
for r in rows:
    iou = camloc.box_iou(r["box"], cam_box[r["photo"]]) if r["box"] and cam_box[r["photo"]] else float("nan")
    label = net.class_names[int(top1[r["photo"], 0])]
    print(f"{r['photo']:>5}  {label:<22} {r['method']:<10} {r['ms/image']:>9.1f}  {iou:>12.2f}  {r['box']}")

# %% [markdown]
# ## The maps
#
# CAM is smooth at the feature grid's resolution (7x7 here); Backprop is pixel-level and
# noisy; Grad-CAM and Grad-CAM++ read the same last features as CAM and, for a GAP head, give
# maps close to it (for a GAP net Grad-CAM's weights are the classifier's row divided by the
# number of positions, so it is CAM with its negative part cut off).

# %%
fig, axes = plt.subplots(len(photos), len(names), figsize=(3 * len(names), 2.4 * len(photos)))
for i, photo in enumerate(photos):
    for j, name in enumerate(names):
        ax = axes[i, j]
        ax.imshow(camloc.overlay(photo, maps[name][i, 0], alpha=0.5, norm="positive"))
        box = next(r["box"] for r in rows if r["photo"] == i and r["method"] == name)
        if box:
            ax.add_patch(plt.Rectangle((box[0], box[1]), box[2] - box[0], box[3] - box[1],
                                       fill=False, color="lime", lw=2))
        ax.set_axis_off()
        if i == 0:
            ax.set_title(name)
fig.tight_layout()
plt.show()

# %% [markdown]
# The same comparison on a dataset with boxes, with every metric, is one option away:
# `camloc evaluate --method gradcam ...` or `camloc.evaluate(net, data, method="gradcam")`
# (see the [evaluation tutorial](evaluate_wsol.ipynb)). How to choose between the methods:
# [Map methods](../methods.md).
