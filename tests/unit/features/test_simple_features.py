"""volume_ratio, ret and vol against direct numpy/pandas definitions on the
real data (every symbol, every lookback). Tolerance 1e-12 relative to
max(1, |value|): the engine keeps running window sums, the references
recompute each window."""

from __future__ import annotations

import numpy as np
import pytest

TOLERANCE = 1e-12


@pytest.fixture(scope="module")
def aligned(applied_bars, real_features):
    features = real_features.sort_values(["symbol", "date"], kind="stable").reset_index(drop=True)
    bars = applied_bars.sort_values(["symbol", "date"], kind="stable").reset_index(drop=True)
    assert (features["date"].to_numpy() == bars["date"].to_numpy()).all()
    return bars, features


def _check(value, reference):
    assert np.array_equal(np.isnan(value), np.isnan(reference))
    has = ~np.isnan(reference)
    error = np.abs(value[has] - reference[has]) / np.maximum(1.0, np.abs(reference[has]))
    assert error.max() <= TOLERANCE, error.max()


def test_ret_is_close_over_close_p_bars_ago(aligned, feature_settings):
    bars, features = aligned
    close = bars.groupby("symbol")["close"]
    for p in feature_settings.lookbacks:
        _check(features[f"ret_{p}"].to_numpy(), (bars["close"] / close.shift(p) - 1).to_numpy())


def test_vol_is_sample_std_of_the_last_p_returns(aligned, feature_settings):
    bars, features = aligned
    returns = bars["close"] / bars.groupby("symbol")["close"].shift(1) - 1
    for p in feature_settings.lookbacks:
        reference = np.full(len(bars), np.nan)
        for _, index in bars.groupby("symbol").indices.items():
            r = returns.to_numpy()[index]
            if len(r) > p:
                windows = np.lib.stride_tricks.sliding_window_view(r[1:], p)
                reference[index[p:]] = windows.std(axis=1, ddof=1)
        _check(features[f"vol_{p}"].to_numpy(), reference)


def test_volume_ratio_is_volume_over_its_sma(aligned, feature_settings):
    bars, features = aligned
    for p in feature_settings.lookbacks:
        reference = np.full(len(bars), np.nan)
        for _, index in bars.groupby("symbol").indices.items():
            v = bars["volume"].to_numpy()[index]
            if len(v) >= p:
                sma = np.lib.stride_tricks.sliding_window_view(v, p).mean(axis=1)
                with np.errstate(all="ignore"):
                    reference[index[p - 1 :]] = np.where(sma == 0, np.nan, v[p - 1 :] / sma)
        _check(features[f"volume_ratio_{p}"].to_numpy(), reference)


def test_zero_volume_window_gives_nan_not_zero_or_inf():
    from stream.features.bars import Bars
    from stream.features.volume import VolumeRatio

    kernel = VolumeRatio((3,))
    volumes = [5.0, 0.0, 0.0, 0.0, 0.0, 7.0]
    ratios = [kernel.update([0], Bars.of([1], [1], [1], [1], [v]))[0, 0] for v in volumes]
    assert np.isnan(ratios[:2]).all()
    assert ratios[2] == pytest.approx(0.0)  # window 5, 0, 0: SMA 5/3
    assert np.isnan(ratios[3]) and np.isnan(ratios[4])  # all-zero window
    assert ratios[5] == pytest.approx(3.0)  # 7 / (7/3)


def test_real_data_zero_volume_bars_are_handled(real_bars, real_features):
    assert (real_bars["volume"] == 0).sum() == 287
    assert not np.isinf(real_features.filter(like="volume_ratio").to_numpy()).any()
