"""The data containers: shapes are checked, sequences are panel slices."""

from __future__ import annotations

import numpy as np
import pytest

from models.base import ModelError, SequenceData, TabularData

from .conftest import HORIZONS, TARGET


def test_materialize_returns_the_last_T_panel_rows_of_each_sample(market):
    data = market.sequence("valid", length=5)
    idx = np.array([0, 7, len(data) - 1])
    batch = data.materialize(idx)
    assert batch.shape == (3, 5, market.panel.shape[1]) and batch.dtype == np.float32
    for row, i in enumerate(idx):
        end = data.end_rows[i]
        np.testing.assert_array_equal(batch[row], market.panel[end - 4 : end + 1])


def test_materialize_without_index_returns_every_sample(market):
    data = market.sequence("test", length=3)
    assert data.materialize().shape == (len(data), 3, market.panel.shape[1])
    np.testing.assert_array_equal(data.materialize(slice(2, 4)), data.materialize(np.array([2, 3])))


def test_a_symbols_first_sequence_is_zero_padded(market):
    data = market.sequence("train", length=4)
    first = data.materialize(np.array([0]))[0]  # date 0: no history before it
    np.testing.assert_array_equal(first[:3], 0.0)
    np.testing.assert_array_equal(first[3], market.X[0])


def test_the_last_sequence_step_is_the_tabular_row(market):
    sequences = market.sequence("test").materialize()
    np.testing.assert_array_equal(sequences[:, -1], market.tabular("test").X)


@pytest.mark.parametrize(
    "make",
    [
        lambda: TabularData(np.zeros((4, 2), np.float32), np.zeros((4, 2)), np.zeros(4, np.int64), HORIZONS, TARGET),
        lambda: TabularData(np.zeros((4, 2), np.float32), np.zeros((4, 3)), np.zeros(3, np.int64), HORIZONS, TARGET),
        lambda: TabularData(np.zeros((4, 2), np.float32), np.zeros((4, 3)), np.zeros(4, np.int64), HORIZONS, 3),
        lambda: SequenceData(np.zeros((10, 2), np.float32), np.array([1, 9]), 3, np.zeros((2, 3)), np.zeros(2, np.int64), HORIZONS, TARGET),
        lambda: SequenceData(np.zeros((10, 2), np.float32), np.array([2, 10]), 3, np.zeros((2, 3)), np.zeros(2, np.int64), HORIZONS, TARGET),
    ],
    ids=["y-columns", "groups-length", "target-column", "end-row-in-padding", "end-row-past-panel"],
)
def test_inconsistent_data_is_refused_with_a_model_error(make):
    with pytest.raises(ModelError):
        make()
