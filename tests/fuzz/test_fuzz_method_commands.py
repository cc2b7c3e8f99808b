"""Generated ``--method`` / ``--method-option`` for ``camloc ablate`` and ``--road-fractions`` /
``--road-images`` / ``--backend`` for ``camloc compare``: the command's option check passes or stops in one line,
never a crash."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from camloc.method_names import NAMES
from _harness import fuzz_settings, run_case

pytestmark = pytest.mark.fuzz

TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=16)


def checked(argv: list[str]):
    from camloc.cli import build_parser

    parser, modules = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as err:  # argparse's own refusal (its usage line): a clean stop
        from camloc.errors import CamlocError

        raise CamlocError(f"argparse exit {err.code}") from None
    modules[args.command].check(args)
    return args


@fuzz_settings(scale=2)
@given(name=st.one_of(st.sampled_from(NAMES + ("all",)), TEXT),
       options=st.lists(st.one_of(st.sampled_from(["n=2", "layer=conv", "sigma=0.1", "x", "=", "n=", "layers=a,b"]), TEXT),
                        max_size=3),
       backend=st.sampled_from(["auto", "torch", "onnxruntime"]))
def test_ablate_method_options(tmp_path_factory, name, options, backend):
    out = str(tmp_path_factory.mktemp("abl") / "out")
    argv = ["ablate", "--data", "d", f"--method={name}", "--backend", backend, "--out", out]
    argv += [f"--method-option={item}" for item in options]

    def check(args):
        if name != args.method:
            return f"--method {name!r} read as {args.method!r}"
        if backend == "onnxruntime" and name != "cam":
            return "a non-CAM method passed the check with --backend onnxruntime"
        return None

    run_case("ablate --method", lambda: checked(argv), check)


@fuzz_settings(scale=2)
@given(fractions=st.one_of(st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=4).map(
    lambda v: ",".join(str(f) for f in v)), TEXT), images=st.integers(-3, 10**6),
       backend=st.one_of(st.sampled_from(["auto", "torch", "onnxruntime"]), TEXT))
def test_compare_road_options(fractions, images, backend):
    argv = ["compare", "--data", "d", "--methods", "cam", f"--road-fractions={fractions}", f"--road-images={images}",
            f"--backend={backend}"]

    def check(args):
        if args.backend not in ("auto", "torch", "onnxruntime"):
            return f"--backend {args.backend!r} accepted"
        if not isinstance(args.road_fractions, tuple):
            return f"--road-fractions left unparsed: {args.road_fractions!r}"
        ok = all(0 < p < 1 for p in args.road_fractions) and len(set(args.road_fractions)) == len(args.road_fractions)
        return None if ok and args.road_images >= 0 else f"accepted {args.road_fractions!r}, {args.road_images}"

    run_case("compare --road-fractions", lambda: checked(argv), check)
