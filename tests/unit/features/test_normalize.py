"""Cross-sectional normalisation per bar time."""

from __future__ import annotations

import numpy as np
import pytest

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
