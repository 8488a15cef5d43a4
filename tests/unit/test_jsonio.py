"""One JSON encoder for HTTP bodies, metrics files and member files: strict
JSON (the standard library's parser, which rejects nothing msgspec writes,
is the reference reader), numpy values as numbers, non-finite floats as
null, files replaced atomically."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from models.base import ModelError
from models.base import read_json as read_member_json
from signalml.jsonio import encode_json, jsonable, read_json, write_json

VALUE = {
    "float32": np.float32(1.5),
    "int64": np.int64(-7),
    "bool": np.bool_(True),
    "array": np.array([[1.0, np.nan], [np.inf, -2.5]]),
    "floats": [0.1, float("nan"), -float("inf"), 1e300],
    3: "an int key",
    np.int64(4): "a numpy int key",
    "nested": {"tuple": (1, 2), "none": None},
}
EXPECTED = {
    "float32": 1.5,
    "int64": -7,
    "bool": True,
    "array": [[1.0, None], [None, -2.5]],
    "floats": [0.1, None, None, 1e300],
    "3": "an int key",
    "4": "a numpy int key",
    "nested": {"tuple": [1, 2], "none": None},
}


def strict_loads(data: bytes | str):
    def refuse(token: str):
        raise ValueError(f"not strict JSON: {token}")

    return json.loads(data, parse_constant=refuse)


def test_numpy_values_become_numbers_and_non_finite_floats_null():
    assert strict_loads(encode_json(VALUE)) == EXPECTED
    assert jsonable(VALUE) == EXPECTED


def test_sorted_keys_are_sorted_at_every_level():
    text = encode_json({"b": 1, "a": {"d": 2, "c": 3}}, sort_keys=True)
    assert text == b'{"a":{"c":3,"d":2},"b":1}'


def test_a_written_file_is_indented_strict_json_ending_in_a_newline_with_nothing_left_beside_it(tmp_path):
    path = tmp_path / "metrics.json"
    path.write_text("old")
    write_json(path, VALUE, sort_keys=True)
    text = path.read_text()
    assert text.endswith("}\n") and '\n  "3": "an int key",\n' in text
    assert strict_loads(text) == EXPECTED == read_json(path)
    assert list(strict_loads(text)) == sorted(EXPECTED)
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_floats_read_back_exactly():
    values = [math.pi, 1 / 3, 5e-324, 1.7976931348623157e308, -0.0, 0.1 + 0.2]
    assert strict_loads(encode_json(values)) == values


def test_a_member_file_that_does_not_parse_is_a_model_error(tmp_path):
    path = tmp_path / "config.json"
    path.write_text('{"alpha": NaN}')
    with pytest.raises(ModelError, match="cannot read"):
        read_member_json(path)
    with pytest.raises(ModelError, match="cannot read"):
        read_member_json(tmp_path / "missing.json")
