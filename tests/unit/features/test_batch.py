"""compute_features on tables: adjustment, rejected rows, column order, inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from signalml.errors import DataError
from stream.bars_file import adjust_prices
from stream.features import compute_features, feature_names


def table(rows):
    return pd.DataFrame(rows, columns=["date", "symbol", "open", "high", "low", "close", "volume", "adj_close"])


def test_output_columns_and_rows(real_bars, real_features, feature_settings):
    assert list(real_features.columns) == ["date", "symbol", *feature_names(feature_settings)]
    assert len(real_features) == len(real_bars) - 6  # 1 all-zero, 1 close<low, 2 open outside, 2 duplicates
    assert not real_features.duplicated(["date", "symbol"]).any()
    assert real_features["date"].is_monotonic_increasing
    cbs = real_features[(real_features.symbol == "CBS") & (real_features.date == "2019-12-04")]
    dxc = real_features[(real_features.symbol == "DXC") & (real_features.date == "2018-06-01")]
    assert len(cbs) == 1 and len(dxc) == 0
    counts = real_features.attrs["counts"]
    assert counts["rejected"]["duplicate_ts"] == 2 and counts["rejected"]["non_positive_price"] == 1


def test_adjustment_scales_ohlc_only_where_close_is_usable():
    bars = table([
        ["2020-01-01", "A", 10.0, 12.0, 8.0, 10.0, 5.0, 5.0],
        ["2020-01-01", "B", 10.0, 12.0, 8.0, 0.0, 5.0, 5.0],
        ["2020-01-01", "C", 10.0, 12.0, 8.0, 10.0, 5.0, np.nan],
    ])
    adjusted = adjust_prices(bars)
    assert adjusted["open"].tolist()[0] == 5.0 and adjusted["high"].tolist()[0] == 6.0
    assert adjusted["close"].tolist()[1:] == [0.0, 10.0]
    assert bars["open"].tolist() == [10.0, 10.0, 10.0]  # input untouched


def test_adjust_false_uses_raw_prices():
    bars = table([["2020-01-0%d" % d, "A", 10.0 + d, 12.0 + d, 8.0 + d, 10.0 + d, 5.0, 1.0] for d in range(1, 9)])
    raw = compute_features(bars, __import__("signalml.config").config.FeatureSettings(lookbacks=(2,)), adjust=False)
    assert raw["ret_2"].iloc[-1] == pytest.approx(18.0 / 16.0 - 1)


def test_out_of_order_rows_in_the_table_are_rejected_like_on_the_stream(feature_settings):
    bars = table([
        ["2020-01-02", "A", 10.0, 11.0, 9.0, 10.0, 1.0, 10.0],
        ["2020-01-03", "A", 10.0, 11.0, 9.0, 10.0, 1.0, 10.0],
        ["2020-01-01", "A", 10.0, 11.0, 9.0, 10.0, 1.0, 10.0],
    ])
    out = compute_features(bars, feature_settings)
    assert out["date"].dt.day.tolist() == [2, 3]
    assert out.attrs["counts"]["rejected"]["out_of_order_ts"] == 1


def test_ts_column_is_accepted(feature_settings):
    bars = table([["2020-01-01", "A", 10.0, 11.0, 9.0, 10.0, 1.0, 10.0]]).drop(columns="date")
    bars["ts"] = 1_577_836_800_000
    out = compute_features(bars, feature_settings)
    assert out["date"].iloc[0] == pd.Timestamp("2020-01-01")


def test_missing_columns_raise_a_data_error(feature_settings):
    with pytest.raises(DataError, match="volume"):
        compute_features(pd.DataFrame({"date": [], "symbol": [], "open": [], "high": [], "low": [], "close": []}), feature_settings)


def test_normalized_output_is_per_date(real_bars, feature_settings):
    few = real_bars[real_bars.date < "2015-06-01"]
    out = compute_features(few, feature_settings, normalize=True)
    raw = compute_features(few, feature_settings)
    for column in ("rsi_5", "ret_20", "volume_ratio_10"):
        by_date = raw.groupby("date")[column]
        # The definition, in pandas: population z-score per date, clipped.
        expected = ((raw[column] - by_date.transform("mean")) / by_date.transform(lambda x: x.std(ddof=0)))
        expected = expected.clip(-feature_settings.clip_z, feature_settings.clip_z)
        np.testing.assert_allclose(out[column].to_numpy(), expected.to_numpy(), rtol=1e-9, atol=1e-12, err_msg=column)
    z = out.groupby("date")["rsi_5"].agg(["mean", "std"]).dropna()
    assert np.allclose(z["mean"], 0, atol=1e-9) and np.allclose(z["std"], 1.0, rtol=0.05)
    assert np.nanmax(np.abs(out.drop(columns=["date", "symbol"]).to_numpy())) <= feature_settings.clip_z
