"""Model names and artifact paths cannot reach outside the repository."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from models.triton_backend import contained_path, validate_model_name


@given(st.from_regex(r"^[A-Za-z0-9_-]{1,64}$", fullmatch=True))
def test_every_name_of_the_pattern_is_accepted(name):
    assert validate_model_name(name) == name


@given(st.text(min_size=1, max_size=80))
def test_a_valid_name_is_a_single_plain_path_segment(name):
    try:
        validate_model_name(name)
    except ValueError:
        return
    assert "/" not in name and "." not in name and len(name) <= 64 and name.isascii()


@pytest.mark.parametrize("relative", ["../outside.txt", "/etc/passwd", "a/../../x", "", "~/x", "a\0b"])
def test_paths_leaving_the_artifact_are_refused(tmp_path, relative):
    with pytest.raises(ValueError):
        contained_path(tmp_path, relative)


def test_a_symlink_out_of_the_artifact_is_refused(tmp_path):
    (tmp_path / "inside").mkdir()
    (tmp_path / "inside" / "link").symlink_to("/etc")
    with pytest.raises(ValueError, match="leaves"):
        contained_path(tmp_path / "inside", "link/passwd")


def test_a_nested_relative_path_resolves_inside(tmp_path):
    assert contained_path(tmp_path, "lstm/model.onnx") == (tmp_path / "lstm" / "model.onnx").resolve()
