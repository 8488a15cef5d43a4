"""Cross-sectional normalisation per bar time."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.features import CrossSectionNormalizer, normalize_cross_section


def test_zscore_is_nan_aware_and_clipped():
    values = np.array([[1.0, 5.0], [2.0, np.nan], [3.0, 5.0], [100.0, 5.0]])
    z = normalize_cross_section(values, "zscore", clip_z=1.5)
    finite = values[:, 0]
    expected = (finite - finite.mean()) / finite.std()
    np.testing.assert_allclose(z[:, 0], np.clip(expected, -1.5, 1.5))
    assert np.isnan(z[1, 1])
    assert (z[[0, 2, 3], 1] == 0.0).all()  # zero variance: 0, not NaN/inf


def test_single_symbol_cross_section_gives_zero():
    assert normalize_cross_section(np.array([[3.0, -1.0, np.nan]]), "zscore").tolist()[0][:2] == [0.0, 0.0]
    assert normalize_cross_section(np.array([[3.0, -1.0]]), "rank").tolist() == [[0.0, 0.0]]


def test_nearly_constant_column_is_not_amplified_into_noise():
    column = np.full((5, 1), 0.1 + 0.2)
    assert (normalize_cross_section(column, "zscore") == 0).all()


def test_rank_spans_minus_half_to_half_with_ties_averaged():
    values = np.array([[3.0], [1.0], [2.0], [2.0], [np.nan]])
    ranks = normalize_cross_section(values, "rank")
    assert ranks[:, 0][:4].tolist() == [0.5, -0.5, 0.0, 0.0]
    assert np.isnan(ranks[4, 0])


def test_none_returns_an_unchanged_copy():
    values = np.array([[1.0], [2.0]])
    result = CrossSectionNormalizer("none")(values)
    assert result is not values and np.array_equal(result, values)


def test_empty_cross_section_and_unknown_method():
    assert normalize_cross_section(np.empty((0, 3)), "zscore").shape == (0, 3)
    with pytest.raises(ValueError, match="unknown normalization"):
        normalize_cross_section(np.ones((2, 2)), "minmax")


def test_from_settings(feature_settings):
    normalizer = CrossSectionNormalizer.from_settings(feature_settings)
    assert (normalizer.method, normalizer.clip_z) == (feature_settings.normalization, feature_settings.clip_z)


def _sum_rows_in_order(array: np.ndarray) -> np.ndarray:
    """Column sums that start at 0.0 and add the rows in order, whatever the
    memory layout (numpy's ``sum(axis=0)`` adds pairwise when the column is
    contiguous, as in a one-column or Fortran-ordered array)."""
    total = np.zeros(array.shape[1])
    for row in array:
        total = total + row
    return total


def _zscore_from_the_definition(values: np.ndarray, clip_z: float, column_sum=_sum_rows_in_order) -> np.ndarray:
    """Numpy, whole arrays, as written from the module's definition: the
    reference the compiled z-score must equal bit for bit."""
    result = np.full(values.shape, np.nan)
    if values.size == 0:
        return result
    valid = ~np.isnan(values)
    count = valid.sum(axis=0)
    with np.errstate(all="ignore"):
        mean = column_sum(np.where(valid, values, 0.0)) / count
        deviation = np.where(valid, values - mean, 0.0)
        std = np.sqrt(column_sum(deviation * deviation) / count)
        z = np.clip(deviation / std, -clip_z, clip_z)
        constant = np.max(np.where(valid, values, -np.inf), axis=0) == np.min(np.where(valid, values, np.inf), axis=0)
    flat = constant | (count <= 1) | ~np.isfinite(std) | (std == 0)
    z[:, flat] = 0.0
    result[valid] = z[valid]
    return result


_special = st.sampled_from([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e300, -1e300, 5e-324, 0.1, 3.0])


@settings(max_examples=300, deadline=None)
@given(
    shape=st.tuples(st.integers(0, 40), st.integers(0, 12)),
    scale=st.sampled_from([1e-12, 1.0, 1e8]),
    seed=st.integers(0, 2**32 - 1),
    specials=st.lists(st.tuples(st.integers(0, 10**6), _special), max_size=30),
    constant_columns=st.lists(st.integers(0, 11), max_size=3),
    clip_z=st.sampled_from([0.5, 3.0, 5.0]),
)
def test_zscore_equals_the_definition_bit_for_bit(shape, scale, seed, specials, constant_columns, clip_z):
    rng = np.random.default_rng(seed)
    values = rng.standard_normal(shape) * scale
    if values.size:
        for position, value in specials:
            values.flat[position % values.size] = value
        for column in constant_columns:
            if column < shape[1]:
                values[:, column] = values[0, column]
    got = normalize_cross_section(values, "zscore", clip_z)
    expected = _zscore_from_the_definition(values, clip_z)
    assert got.shape == expected.shape
    assert got.tobytes() == expected.tobytes()


def test_zscore_of_a_large_cross_section_equals_the_definition_bit_for_bit():
    """5,000 symbols, in every layout: a sum added pairwise would differ
    here. For the engine's and training's C-ordered [symbols, features]
    arrays, also the bits of numpy's own column sums, which the
    normalisation used before it was compiled: models trained then see
    the same inputs."""
    rng = np.random.default_rng(3)
    values = rng.lognormal(0.0, 2.0, (5_000, 195))
    values[rng.random(values.shape) < 0.03] = np.nan
    for layout in (values, np.asfortranarray(values), values[::2], values[:, ::3]):
        assert normalize_cross_section(layout, "zscore").tobytes() == _zscore_from_the_definition(layout, 5.0).tobytes()
    numpy_sums = _zscore_from_the_definition(values, 5.0, column_sum=lambda a: a.sum(axis=0))
    assert normalize_cross_section(values, "zscore").tobytes() == numpy_sums.tobytes()
