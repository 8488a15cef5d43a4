"""The demo's cut of the data: the model set trains on bars before the tail
only, the engine warms up on the bar times just before it, and the tail is
exactly the last ``tail_days`` bar times."""

import numpy as np
import pandas as pd
import pytest

from signalml.config import Settings
from signalml.demo.feed import histogram_quantiles
from signalml.demo.plan import FULL, QUICK, DemoSize, select_bars, split_tail, training_settings
from signalml.errors import ConfigError


def bars(n_times: int = 50, symbols: tuple[str, ...] = ("A", "B", "C"), missing: dict | None = None) -> pd.DataFrame:
    dates = pd.bdate_range("2020-01-01", periods=n_times)
    rows = [(d, s) for d in dates for s in symbols if d not in (missing or {}).get(s, ())]
    frame = pd.DataFrame(rows, columns=["date", "symbol"])
    frame["ts"] = frame["date"].astype("int64") // 1_000_000
    return frame


def test_the_tail_is_the_last_bar_times_and_training_sees_nothing_of_it():
    frame = bars(50)
    data = split_tail(frame, tail_days=12, warmup_bars=10)
    times = np.unique(frame["ts"])
    assert data.tail_times == times[-12:].tolist()
    assert data.history["ts"].max() < data.tail["ts"].min()
    assert len(data.history) + len(data.tail) == len(frame)


def test_the_warm_up_is_the_last_warmup_bars_of_the_history():
    frame = bars(50)
    data = split_tail(frame, tail_days=12, warmup_bars=10)
    times = np.unique(frame["ts"])
    assert sorted(data.warmup["ts"].unique()) == times[-22:-12].tolist()
    assert len(data.warmup) == 10 * 3


def test_a_tail_that_leaves_no_history_is_refused_with_the_setting_named():
    with pytest.raises(ConfigError, match="warmup_bars"):
        split_tail(bars(20), tail_days=12, warmup_bars=10)


def test_the_quick_size_keeps_symbols_with_a_bar_at_every_bar_time():
    frame = bars(30, symbols=("A", "B", "C", "D"), missing={"B": [pd.Timestamp("2020-01-07")]})
    chosen = select_bars(frame, DemoSize(tail_days=5, symbols=2))
    assert sorted(chosen["symbol"].unique()) == ["A", "C"]


def test_the_demo_sizes_change_the_training_run_only():
    settings = Settings()
    for size in (FULL, QUICK):
        trained = training_settings(settings, size)
        assert trained.models.lightgbm.n_estimators == size.models["lightgbm"]["n_estimators"]
        assert trained.training.train_period == size.training["train_period"]
        assert trained.features == settings.features and trained.serving == settings.serving
        # The engine's sequence buffer is sized from the LSTM's sequence length: the demo keeps it.
        assert trained.models.lstm.sequence_length == settings.models.lstm.sequence_length


def test_latency_quantiles_are_the_bounds_of_the_buckets_they_fall_in():
    cumulative = {0.01: 10.0, 0.05: 90.0, 0.1: 99.0, 0.25: 100.0, float("inf"): 100.0}
    latency = histogram_quantiles(cumulative)
    assert (latency.count, latency.p50_s, latency.p99_s) == (100, 0.05, 0.1)
