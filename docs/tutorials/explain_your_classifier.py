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
# # Explain your own classifier in ten lines
#
# Any PyTorch classifier whose head is global average pooling followed by one linear layer
# (ResNet, DenseNet, EfficientNet, ConvNeXt, your own) classifies **and** localizes in the same
# forward pass: the class activation map of class *c* is `M_c = Σ_k w_k^c f_k`, the last
# features weighted by the classifier's row for *c*. camloc finds the head by itself.
#
# Here the module of the embedded EfficientNet-Lite0 stands in for *your* model: a plain
# `nn.Module` that camloc has never seen. All camloc needs to know is how the model wants its
# input (size, mean, std); EfficientNet-Lite wants `(x - 127) / 128`.

# %%
import camloc
from camloc.photos import demo_photo_paths
from PIL import Image

my_model = camloc.load_model("efficientnet_lite0").module          # any nn.Module with a GAP head
net = camloc.load_model(my_model, preprocessing=camloc.Preprocessing(
    shape=(224, 224), mean=(127 / 255,) * 3, std=(128 / 255,) * 3))
photo = Image.open(demo_photo_paths()[0]).convert("RGB")             # a photo bundled with scikit-image
out = camloc.cam(net, net.preprocess([photo]), topk=3)              # ONE forward pass: scores and maps
print("top-3 classes:", out.classes[0].tolist(), "scores:", out.logits[0, out.classes[0]].tolist())
box = camloc.boxes_from_map(camloc.upsample(out.maps[0, 0].numpy(), (photo.height, photo.width)),
                            threshold=0.2, norm="positive")[0]     # the paper's rule, in image pixels
print("box of the top class:", box)
camloc.overlay(photo, out.maps[0, 0], alpha=0.5, colormap="jet", norm="positive")

# %% [markdown]
# Class 285 is ImageNet's "Egyptian cat". A plain module carries no class names; the embedded
# model (`camloc.load_model()`) and camloc checkpoints do. The map explains the score
# exactly: for a GAP head, its mean plus the bias **is** the class score, which
# `camloc.check_exact` verifies for every class.

# %%
print(camloc.check_exact(net))
scores = out.maps[0].mean((-2, -1)) + out.bias[out.classes[0]]
print("mean of each map + bias:", scores.tolist())

# %% [markdown]
# `camloc.localize` does all of this for files, folders, PIL images or arrays, and returns the
# records `camloc localize` writes (with class names, the calibrated scores and boxes):

# %%
record = camloc.localize(camloc.load_model(), [photo], topk=2)[0]
[(p["label"], round(p["score"], 3), p["box"]) for p in record["predictions"]]
