"""Arrays, PIL images and options of odd kinds through the Python API (``camloc.localize``):
an image that cannot be used gives an error record naming it and the others go on; an option
out of range is a one-line ``ValueError``; nothing else raises."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

import camloc
from _harness import fuzz_settings, record_problem, run_case, tiny_net

pytestmark = pytest.mark.fuzz

DTYPES = [np.uint8, np.int8, np.int16, np.int32, np.int64, np.uint16, np.uint32, np.float16, np.float32,
          np.float64, np.bool_, np.complex64]
SHAPES = st.one_of(
    hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=6),
    st.tuples(st.integers(1, 12), st.integers(1, 12), st.sampled_from([1, 2, 3, 4, 5])),
    st.tuples(st.sampled_from([1, 3, 4]), st.integers(5, 12), st.integers(5, 12)),
)


@pytest.fixture(scope="module")
def net():
    return tiny_net()


@st.composite
def arrays(draw):
    kind = draw(st.sampled_from(["numeric", "numeric", "numeric", "object", "strings", "pil"]))
    if kind == "object":
        return np.array([[None, 1], [2.5, "x"]], dtype=object)
    if kind == "strings":
        return np.full((4, 4, 3), "a")
    if kind == "pil":
        mode = draw(st.sampled_from(["1", "L", "P", "RGB", "RGBA", "LA", "CMYK", "I", "F", "I;16", "HSV", "YCbCr"]))
        w, h = draw(st.integers(0, 9)), draw(st.integers(0, 9))
        return Image.new(mode, (w, h))
    dtype = draw(st.sampled_from(DTYPES))
    shape = draw(SHAPES)
    if np.prod(shape, dtype=np.int64) > 4096:
        shape = (4, 4, 3)
    elements = None
    if np.dtype(dtype).kind == "f":
        elements = st.floats(allow_nan=True, allow_infinity=True, width=np.dtype(dtype).itemsize * 8)
    return draw(hnp.arrays(dtype, shape, elements=elements))


OPTIONS = st.fixed_dictionaries({}, optional={
    "topk": st.one_of(st.integers(-2, 6), st.just(1.5), st.just("2"), st.none()),
    "threshold": st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.just("0.2"), st.none()),
    "batch_size": st.one_of(st.integers(-1, 3), st.just(2.0), st.none()),
    "norm": st.sampled_from(["minmax", "positive", "other", ""]),
})


@fuzz_settings(scale=4)
@given(items=st.lists(arrays(), min_size=1, max_size=3), options=OPTIONS)
def test_odd_arrays_and_options_through_localize(net, items, options):
    good = np.zeros((8, 8, 3), np.uint8)

    def call():
        return camloc.localize(net, [good, *items], backend="torch", **options)

    def check(recs):
        if len(recs) != len(items) + 1:
            return f"{len(recs)} records for {len(items) + 1} inputs"
        if recs[0]["error"] is not None:
            return f"a plain 8x8 image failed beside the odd ones: {recs[0]['error']}"
        for i, rec in enumerate(recs):
            problem = record_problem(rec, f"<image {i}>")
            if problem:
                return problem
        return None

    run_case("API arrays and options", call, check, failed=lambda recs: any(r["error"] for r in recs))
