#!/usr/bin/env bash
# The wheel as a user gets it: built from a clean export of the repository (git archive HEAD, so
# only committed files), installed into a fresh venv, then used from outside the repository:
# `camloc localize` on a photo, the Python API, `python -m camloc --version`, and the one-line
# message of a missing extra.
#   PY=/path/to/python .ci/wheel_check.sh    (default: the repository's .venv, which has `build`)
#   TORCH_SPECS="torch==2.13.* torchvision==0.28.*" .ci/wheel_check.sh   (beside another PyTorch,
#     installed fresh; needs a torchvision build that matches the torch build, see below)
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

"$("$PY" -c 'import sys; print(sys._base_executable)')" -m venv "$WORK/venv"
V="$WORK/venv/bin"
if [ -n "${TORCH_SPECS:-}" ]; then
  # another PyTorch, installed fresh, e.g. TORCH_SPECS="torch==2.13.* torchvision==0.28.*"
  step "install $(basename "$WHEEL") beside $TORCH_SPECS into a clean venv"
  # shellcheck disable=SC2086
  "$V/python" -m pip install -q --disable-pip-version-check $TORCH_SPECS "$WHEEL" 2>&1 | grep -v "is ignored" || true
else
  # The local wheels hold torch 2.13.0+cpu but torchvision 0.28.0 only as a CUDA build, which
  # cannot import beside it, and a fresh CUDA stack takes many minutes to install here. So by
  # default the clean venv sees only PyTorch, torchvision and their CUDA libraries of the
  # repository's environment (read-only, through a .pth after its own site-packages); pip
  # resolves and installs every other dependency of the wheel into the clean venv.
  step "install $(basename "$WHEEL") into a clean venv beside the environment's PyTorch only"
  "$PY" - "$WORK/torch-site" <<'PYEOF'
import os, sys
from importlib.metadata import distributions
site = sys.argv[1]
os.makedirs(site)
keep = ("torch", "torchvision", "triton")
for dist in distributions():
    name = (dist.metadata["Name"] or "").lower()
    if name in keep or name.startswith(("nvidia-", "cuda-")):
        root = str(dist.locate_file(""))
        for top in {f.parts[0] for f in dist.files or [] if not f.parts[0].startswith("..")}:
            source, target = os.path.join(root, top), os.path.join(site, top)
            if os.path.exists(source) and not os.path.exists(target) and top != "bin":
                os.symlink(source, target)
PYEOF
  echo "$WORK/torch-site" > "$("$V/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/zz_torch_site.pth"
  # ONNX Runtime at the lowest version pyproject.toml allows
  "$V/python" -m pip install -q --disable-pip-version-check "onnxruntime==1.30.*" "$WHEEL" 2>&1 | grep -v "is ignored" || true
fi
"$V/python" -c "import camloc, torchvision" || { echo "wheel_check: camloc or torchvision does not import in the clean venv"; exit 1; }

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
assert "site-packages" in camloc.__file__ and "/venv/" in camloc.__file__, camloc.__file__
net = camloc.load_model()
out = camloc.cam(net, net.preprocess([sys.argv[1]]), topk=1)
label = net.class_names[int(out.classes[0, 0])]
assert label == "Egyptian cat", label
assert camloc.check_exact(net).exact
image = camloc.overlay(sys.argv[1], out.maps[0, 0], alpha=0.5)
assert image.size == (451, 300), image.size
import onnxruntime
print(f"camloc {camloc.__version__} on torch {torch.__version__}, torchvision {torchvision.__version__}, "
      f"onnxruntime {onnxruntime.__version__}: "
      f"{label}, CAM exact, overlay {image.size}")
PYEOF
"$V/python" -m camloc --version
[ "$("$V/camloc" --version)" = "$("$V/python" -m camloc --version)" ]

step "a missing extra is one line"
if "$V/camloc" discover "$PHOTO" --out "$WORK/discover" 2>"$WORK/err"; then
  echo "wheel_check: discover ran without scikit-learn"; exit 1
fi
grep -q "pip install 'camloc\[discover\]'" "$WORK/err" && [ "$(wc -l <"$WORK/err")" -eq 1 ] || { cat "$WORK/err"; exit 1; }
step "ok"
