# Every target installs what it needs into .venv/ when it is missing.
PY := .venv/bin/python
STAMP := .venv/.camloc-installed
DOCS_STAMP := .venv/.camloc-docs-installed
# The exact versions of the repository's environment (pyproject.toml states ranges): pip resolves
# against the same local wheels and indexes, pinned here. `make lock` rewrites it from .venv.
CONSTRAINTS := constraints.txt
PIP := $(PY) -m pip install --disable-pip-version-check -q -c $(CONSTRAINTS)
FMNIST := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz
CHROMEDRIVER := /usr/bin/chromedriver

.PHONY: install demo test docs lock fuzz bench reproduce reproduce-wsol clean

install: $(STAMP)

$(STAMP): pyproject.toml $(CONSTRAINTS)
	test -x $(PY) || python3 -m venv .venv
	$(PIP) -e '.[test,peers]'
	@# One OpenCV: grad-cam and quantus require opencv-python, camloc the headless build of the same
	@# cv2 package (both install cv2/). Drop the GUI build and reinstall the headless one's files.
	@if $(PY) -m pip show -q opencv-python >/dev/null 2>&1; then \
	  $(PY) -m pip uninstall --disable-pip-version-check -y -q opencv-python && \
	  $(PY) -m pip install --disable-pip-version-check -q --force-reinstall --no-deps \
	    "opencv-python-headless==$$($(PY) -c 'import importlib.metadata as m; print(m.version("opencv-python-headless"))')"; \
	fi
	touch $(STAMP)

$(DOCS_STAMP): $(STAMP)
	$(PIP) -e '.[test,docs]'
	touch $(DOCS_STAMP)

# Debian's Fashion-MNIST (real images for the CPU localization benchmark).
$(FMNIST):
	@if [ "$$(id -u)" = 0 ]; then \
	  (apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 || \
	   (apt-get update -qq >/dev/null && apt-get install -y -qq dataset-fashion-mnist >/dev/null)); \
	else \
	  (sudo apt-get install -y -qq dataset-fashion-mnist >/dev/null 2>&1 || \
	   (sudo apt-get update -qq >/dev/null && sudo apt-get install -y -qq dataset-fashion-mnist >/dev/null)); \
	fi

# Debian's chromium and its driver, for the browser test of camloc serve. Non-fatal: without them
# (no root, no network) that test is skipped and says why.
$(CHROMEDRIVER):
	@if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO="sudo -n"; fi; \
	($$SUDO apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1 || \
	 ($$SUDO apt-get update -qq >/dev/null 2>&1 && $$SUDO apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1)) || \
	echo "make: chromium not installed; the browser test of camloc serve will be skipped"

data: $(FMNIST)

demo: $(STAMP)
	$(PY) -m tools.demo

test: $(STAMP) $(FMNIST) $(CHROMEDRIVER)
	$(PY) -m pytest -q

# The fuzz group (tests/fuzz) at full size: about 2,000 generated bad and odd inputs, a few
# minutes; `make test` runs the same tests with a few examples each.
fuzz: $(STAMP)
	FUZZ_CASES=$${FUZZ_CASES:-100} $(PY) -m pytest -q -m fuzz tests/fuzz

bench: $(STAMP) $(FMNIST)
	$(PY) -m benchmarks

reproduce: $(STAMP) $(FMNIST)
	$(PY) -m camloc.cli reproduce --out reproduce_out

# The site (MkDocs + Material + mkdocstrings) into site/, --strict: a broken link or a missing
# reference fails. The tutorials are executed first when their notebook is missing or older
# than the source (make test executes and writes them too).
docs: $(DOCS_STAMP)
	$(PY) docs/execute_tutorials.py
	NO_MKDOCS_2_WARNING=1 $(PY) -m mkdocs build --strict --site-dir site

# Rewrite constraints.txt from the working .venv (after adding or upgrading a dependency).
lock: $(STAMP)
	{ sed -n '/^#/p' $(CONSTRAINTS); $(PY) -m pip freeze --exclude-editable --disable-pip-version-check | grep -v '^camloc'; } > $(CONSTRAINTS).new
	mv $(CONSTRAINTS).new $(CONSTRAINTS)

# The CVPR 2020 WSOL benchmark's verdict on CPU (six methods, same search budget, three seeds);
# hours on 2 cores, resumes after a stop. QUICK=1: about two minutes (what make test runs).
reproduce-wsol: $(STAMP) $(FMNIST)
	$(PY) -m camloc.experiments.reproduce.wsol --out reproduce_wsol_out $(if $(QUICK),--quick)

clean:
	rm -rf out reproduce_out reproduce_wsol_out .pytest_cache site docs/tutorials/*.ipynb
