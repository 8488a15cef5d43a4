"""Reading bars files: adjustment, bar-close timestamps, filters, errors."""

import numpy as np
import pandas as pd
import pytest

from signalml.errors import DataError
from stream.bars_file import read_bars


def write(tmp_path, frame, name="bars.parquet"):
    path = tmp_path / name
    if name.endswith(".csv"):
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path)
    return path


def sample():
    return pd.DataFrame(
        {
            "date": pd.to_datetime(["2019-01-02", "2019-01-02", "2019-07-01", "2019-07-01"]),
            "symbol": ["B", "A", "A", "B"],
            "open": [10.0, 20.0, 21.0, 0.0],
            "high": [11.0, 22.0, 22.0, 0.0],
            "low": [9.0, 19.0, 20.0, 0.0],
            "close": [10.0, 20.0, 21.0, 0.0],
            "volume": [100.0, 200.0, 300.0, 0.0],
            "adj_close": [5.0, 20.0, 10.5, 0.0],
        }
    )


def test_daily_bars_close_at_4pm_new_york_in_either_season(tmp_path):
    frame = read_bars(write(tmp_path, sample()))
    winter, summer = pd.Timestamp("2019-01-02 21:00", tz="UTC"), pd.Timestamp("2019-07-01 20:00", tz="UTC")
    expected = [winter.value // 10**6] * 2 + [summer.value // 10**6] * 2
    assert frame["ts"].tolist() == expected


def test_rows_are_ordered_by_date_then_symbol_and_keep_their_file_row(tmp_path):
    frame = read_bars(write(tmp_path, sample()))
    assert frame["symbol"].tolist() == ["A", "B", "A", "B"]
    assert frame["row"].tolist() == [1, 0, 2, 3]


def test_ohlc_are_scaled_by_adj_close_over_close_and_the_volume_by_its_inverse(tmp_path):
    frame = read_bars(write(tmp_path, sample()))
    b = frame[(frame.symbol == "B") & (frame.row == 0)].iloc[0]
    assert (b.open, b.high, b.low, b.close) == (5.0, 5.5, 4.5, 5.0)
    assert b.volume == 200.0  # a 2-for-1 split later: in today's shares, twice as many


def test_a_split_leaves_volume_continuous_and_traded_value_unchanged(tmp_path):
    """A 2-for-1 split between two days: raw prices halve and raw volume
    doubles; adjusted, neither jumps, and close * volume stays each day's own."""
    raw = pd.DataFrame(
        {
            "date": pd.to_datetime(["2019-01-02", "2019-01-03"]),
            "symbol": ["A", "A"],
            "open": [100.0, 50.0], "high": [100.0, 50.0], "low": [100.0, 50.0], "close": [100.0, 50.0],
            "volume": [1000.0, 2000.0],
            "adj_close": [50.0, 50.0],
        }
    )
    frame = read_bars(write(tmp_path, raw))
    assert frame["close"].tolist() == [50.0, 50.0]
    assert frame["volume"].tolist() == [2000.0, 2000.0]
    assert (frame["close"] * frame["volume"]).tolist() == (raw["close"] * raw["volume"]).tolist()


def test_an_unusable_factor_leaves_the_row_raw_for_the_validator(tmp_path):
    frame = read_bars(write(tmp_path, sample()))
    zero = frame[frame.row == 3].iloc[0]
    assert (zero.open, zero.close) == (0.0, 0.0)


def test_without_adjustment_the_prices_are_as_given(tmp_path):
    frame = read_bars(write(tmp_path, sample()), adjust=False)
    assert frame[frame.row == 0].iloc[0].close == 10.0


def test_csv_with_epoch_ms_ts_is_taken_as_the_close(tmp_path):
    csv = sample().drop(columns=["date", "adj_close"]).assign(ts=[1_000, 1_000, 2_000, 2_000])
    frame = read_bars(write(tmp_path, csv, "bars.csv"))
    assert frame["ts"].tolist() == [1_000, 1_000, 2_000, 2_000]


def test_symbol_and_date_filters_are_inclusive(tmp_path):
    path = write(tmp_path, sample())
    assert read_bars(path, symbols=["A"])["row"].tolist() == [1, 2]
    assert read_bars(path, start="2019-07-01")["row"].tolist() == [2, 3]
    assert read_bars(path, end="2019-01-02")["row"].tolist() == [1, 0]


def test_a_file_without_the_needed_columns_is_a_clear_error(tmp_path):
    path = write(tmp_path, sample().drop(columns=["volume"]))
    with pytest.raises(DataError, match=r"missing columns \['volume'\]"):
        read_bars(path)


def test_unknown_formats_and_missing_files_are_clear_errors(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_bars(tmp_path / "none.parquet")
    (tmp_path / "bars.xlsx").write_bytes(b"x")
    with pytest.raises(DataError, match="unknown format"):
        read_bars(tmp_path / "bars.xlsx")
