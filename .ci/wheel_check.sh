#!/usr/bin/env bash
# The wheel as a user gets it: built from a clean export of the repository (git archive HEAD, so
# only committed files), installed into a fresh venv beside another PyTorch than the repository's
# (torch 2.13 + torchvision 0.28 + ONNX Runtime 1.30, the oldest the ranges in pyproject.toml
# allow), then used from outside the repository: `camloc localize` on a photo, the Python API,
# `python -m camloc --version`, and the one-line message of a missing extra.
#   PY=/path/to/python .ci/wheel_check.sh    (default: the repository's .venv, which has `build`)
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
PY=${PY:-$REPO/.venv/bin/python}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/camloc-wheel.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
start=$SECONDS
step() { echo "wheel_check [$((SECONDS - start)) s]: $*"; }

step "export and build"
mkdir "$WORK/src"
git -C "$REPO" archive --format=tar HEAD | tar -x -C "$WORK/src"
"$PY" -m build --wheel --outdir "$WORK/dist" "$WORK/src" >"$WORK/build.log" 2>&1 || { cat "$WORK/build.log"; exit 1; }
WHEEL=$(ls "$WORK"/dist/camloc-*.whl)
"$PY" -c 'import sys, zipfile; names = zipfile.ZipFile(sys.argv[1]).namelist()
assert "camloc/py.typed" in names and "camloc/serve/static/index.html" in names, "py.typed or the page missing"' "$WHEEL"

step "install $(basename "$WHEEL") beside torch 2.13 into a clean venv"
"$("$PY" -c 'import sys; print(sys._base_executable)')" -m venv "$WORK/venv"
V="$WORK/venv/bin"
"$V/python" -m pip install -q --disable-pip-version-check \
    "torch==2.13.*" "torchvision==0.28.*" "onnxruntime==1.30.*" "$WHEEL" 2>&1 | grep -v "is ignored" || true
"$V/python" -c "import camloc" || { echo "wheel_check: camloc did not install"; exit 1; }

# a photo (bundled with scikit-image in the repository's environment; the clean venv has none)
PHOTO="$WORK/cat.png"
cp "$("$PY" -c 'import os, skimage; print(os.path.join(os.path.dirname(skimage.__file__), "data", "chelsea.png"))')" "$PHOTO"

cd "$WORK"   # outside the repository: nothing may come from it
export CAMLOC_CACHE="$WORK/cache"
step "camloc localize"
"$V/camloc" localize "$PHOTO" --topk 1 --out "$WORK/out" --no-figures
grep -q '"label": "Egyptian cat"' "$WORK/out/results.jsonl" || { echo "wheel_check: wrong class"; cat "$WORK/out/results.jsonl"; exit 1; }

step "the Python API"
"$V/python" - "$PHOTO" <<'PYEOF'
import os, sys
import camloc, torch, torchvision
assert torch.__version__.startswith("2.13") and torchvision.__version__.startswith("0.28"), torch.__version__
assert "site-packages" in camloc.__file__, camloc.__file__
net = camloc.load_model()
out = camloc.cam(net, net.preprocess([sys.argv[1]]), topk=1)
label = net.class_names[int(out.classes[0, 0])]
assert label == "Egyptian cat", label
assert camloc.check_exact(net).exact
image = camloc.overlay(sys.argv[1], out.maps[0, 0], alpha=0.5)
assert image.size == (451, 300), image.size
print(f"camloc {camloc.__version__} on torch {torch.__version__}: {label}, CAM exact, overlay {image.size}")
PYEOF
"$V/python" -m camloc --version
[ "$("$V/camloc" --version)" = "$("$V/python" -m camloc --version)" ]

step "a missing extra is one line"
if "$V/camloc" discover "$PHOTO" --out "$WORK/discover" 2>"$WORK/err"; then
  echo "wheel_check: discover ran without scikit-learn"; exit 1
fi
grep -q "pip install 'camloc\[discover\]'" "$WORK/err" && [ "$(wc -l <"$WORK/err")" -eq 1 ] || { cat "$WORK/err"; exit 1; }
step "ok"
