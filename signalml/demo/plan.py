"""What the demo runs on: the bundled bars cut into the history the model set
is trained on and the held-back tail that is then replayed through Kafka.

Pure data handling, no services: the cut is what keeps the demo honest. The
model set never sees a bar of the tail (its training frame ends the bar time
before the tail starts, so even its last labels end inside the history), and
the engine is warmed up on the last ``warmup_bars`` bar times of that history,
so it scores exactly the tail's bar times.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from signalml.config import Settings
from signalml.errors import ConfigError


@dataclass(frozen=True)
class DemoSize:
    """How much the demo trains on, and with what. ``symbols``: the first N
    symbols (alphabetically) with a bar at every bar time from ``start``
    (None: every symbol); ``models`` / ``training``: settings replaced for
    the demo's training run only (the engine and monitor keep the configured
    ones)."""

    tail_days: int
    symbols: int | None = None
    start: str | None = None
    models: dict = field(default_factory=dict)
    training: dict = field(default_factory=dict)


# About a minute of training on two cores: smaller members, five half-year
# test windows instead of twelve quarters (the configured run takes ~8 min).
FULL = DemoSize(
    tail_days=120,
    models={
        "lightgbm": {"n_estimators": 100, "early_stopping_rounds": 10},
        "xgboost": {"n_estimators": 100, "max_depth": 4, "early_stopping_rounds": 10},
        # a sample of each epoch, not full passes: the configured LSTM's full
        # passes over 195 features would take most of the demo's minutes
        "lstm": {"hidden_size": 32, "num_layers": 1, "epochs": 3, "patience": 1, "batch_size": 1024,
                 "samples_per_epoch": 16384},
    },
    training={"train_period": 504, "test_period": 126, "retrain_frequency": 126, "hyperopt_budget_s": 0.0},
)

# For tests: 40 symbols over two years, tiny members, three test windows (~15 s).
QUICK = DemoSize(
    tail_days=30,
    symbols=40,
    start="2018-01-01",
    models={
        "lightgbm": {"n_estimators": 40, "early_stopping_rounds": 10, "min_child_samples": 20},
        "xgboost": {"n_estimators": 40, "early_stopping_rounds": 10, "min_child_weight": 20.0},
        "lstm": {"hidden_size": 16, "num_layers": 1, "epochs": 2, "patience": 1, "batch_size": 256,
                 "samples_per_epoch": 16384},
    },
    training={"train_period": 150, "test_period": 60, "retrain_frequency": 120, "validation_bars": 40,
              "hyperopt_budget_s": 0.0},
)


@dataclass(frozen=True)
class DemoData:
    """Bars as :func:`stream.bars_file.read_bars` returns them, in three cuts."""

    history: pd.DataFrame  # every bar before the tail: what the model set is trained on
    warmup: pd.DataFrame  # the last ``warmup_bars`` bar times of the history: replayed first, as fast as possible
    tail: pd.DataFrame  # the last ``tail_days`` bar times: replayed at the visible speed, scored by the engine

    @property
    def tail_times(self) -> list[int]:
        return sorted(set(self.tail["ts"].tolist()))


def select_bars(bars: pd.DataFrame, size: DemoSize) -> pd.DataFrame:
    """The bars of ``size``'s period and symbols."""
    if size.start is not None:
        bars = bars[bars["date"] >= pd.Timestamp(size.start)]
    if size.symbols is not None:
        n_times = bars["ts"].nunique()
        counts = bars.groupby("symbol")["ts"].nunique()
        complete = sorted(counts.index[counts == n_times])[: size.symbols]
        bars = bars[bars["symbol"].isin(complete)]
    return bars.reset_index(drop=True)


def split_tail(bars: pd.DataFrame, tail_days: int, warmup_bars: int) -> DemoData:
    """Cut ``bars`` (ordered by bar time) at the first of its last ``tail_days`` bar times."""
    times = np.unique(bars["ts"].to_numpy())
    if tail_days < 1:
        raise ConfigError(f"demo: --tail-days must be >= 1 (got {tail_days})")
    if len(times) < tail_days + warmup_bars + 1:
        raise ConfigError(
            f"demo: {len(times)} bar times cannot hold a tail of {tail_days} after serving.warmup_bars "
            f"({warmup_bars}) bar times of warm-up and some history to train on; choose a shorter --tail-days"
        )
    tail_start, warmup_start = times[-tail_days], times[-tail_days - warmup_bars]
    ts = bars["ts"]
    history = bars[ts < tail_start].reset_index(drop=True)
    warmup = bars[(ts >= warmup_start) & (ts < tail_start)].reset_index(drop=True)
    tail = bars[ts >= tail_start].reset_index(drop=True)
    return DemoData(history, warmup, tail)


def training_settings(settings: Settings, size: DemoSize) -> Settings:
    """``settings`` with the demo's members and walk-forward plan."""
    models = settings.models.model_copy(
        update={name: getattr(settings.models, name).model_copy(update=values) for name, values in size.models.items()}
    )
    training = settings.training.model_copy(update=size.training)
    return settings.model_copy(update={"models": models, "training": training})
