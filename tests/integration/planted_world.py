"""A private world on a synthetic market with a planted signal that flips:
the bars, and settings (own topics, own Triton on free ports, one small
GBM) to train, publish, serve, monitor and retrain on it.

Volume today says where the close goes the day after tomorrow (a signal
seen at the close of t is traded at t + 1, the label's entry): the one-bar
log return of t + 2 is ``sigma * (beta * z + noise)`` with ``z`` the
standardised log volume of t, and ``beta`` changes sign at bar time
``flip_at``. A set trained before the flip ranks the bars after it
backwards (rank IC about -0.2 on 5-bar returns); one trained after the flip
ranks them right.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from signalml.config import Settings, load_settings
from tests.integration.engine_world import REPO, provision, world_overrides

DAY_MS = 86_400_000
START_MS = 1_546_300_800_000  # 2019-01-01
N_SYMBOLS, N_BARS, FLIP = 40, 500, 250

GBM_ONLY = {"lightgbm": {"n_estimators": 40, "early_stopping_rounds": 10, "min_child_samples": 20},
            "xgboost": {"enabled": False}, "lstm": {"enabled": False}, "tft": {"enabled": False}}
WITH_XGBOOST = {**GBM_ONLY, "xgboost": {"enabled": True, "n_estimators": 40, "early_stopping_rounds": 10,
                                        "min_child_weight": 20.0}}


def planted_bars(n_symbols: int = N_SYMBOLS, n_bars: int = N_BARS, flip_at: int = FLIP, beta: float = 1.0,
                 sigma: float = 0.01, seed: int = 11) -> pd.DataFrame:
    """Bars as ``read_bars`` returns them, ordered by (bar time, symbol)."""
    rng = np.random.default_rng(seed)
    log_volume = rng.normal(13.0, 0.5, (n_bars, n_symbols))
    z = (log_volume - 13.0) / 0.5
    betas = np.where(np.arange(n_bars) < flip_at, beta, -beta)
    log_returns = np.zeros((n_bars, n_symbols))
    log_returns[1:] = sigma * rng.standard_normal((n_bars - 1, n_symbols))
    log_returns[2:] += sigma * betas[:-2, None] * z[:-2]
    close = 50.0 * np.exp(np.cumsum(log_returns, axis=0))
    open_ = np.vstack([close[:1], close[:-1]])
    frame = pd.DataFrame({
        "symbol": np.tile([f"S{j:03d}" for j in range(n_symbols)], n_bars),
        "ts": np.repeat(START_MS + np.arange(n_bars, dtype=np.int64) * DAY_MS, n_symbols),
        "open": open_.ravel(), "high": (np.maximum(open_, close) * 1.002).ravel(),
        "low": (np.minimum(open_, close) * 0.998).ravel(), "close": close.ravel(),
        "volume": np.exp(log_volume).ravel(),
    })
    frame["date"] = pd.to_datetime(frame["ts"], unit="ms")
    frame["row"] = np.arange(len(frame), dtype=np.int64)
    return frame


def bar_times(bars: pd.DataFrame, start: int, stop: int | None = None) -> pd.DataFrame:
    """The bars of bar times [start, stop) (indexes from the first bar time)."""
    keep = bars["ts"] >= START_MS + start * DAY_MS
    if stop is not None:
        keep &= bars["ts"] < START_MS + stop * DAY_MS
    return bars[keep].reset_index(drop=True)


def planted_overrides(tmp: Path, tag: str) -> dict:
    overrides = world_overrides(tmp, tag)
    overrides.update({
        "models": GBM_ONLY,  # trainings within seconds
        "features": {"lookbacks": [5, 10, 20]},
        "ensemble": {"method": "average"},
        "training": {"train_period": 100, "test_period": 30, "retrain_frequency": 30, "validation_bars": 30},
    })
    return overrides


def planted_settings(tmp: Path, tag: str, **sections: dict) -> Settings:
    """Settings of the private world; ``sections`` update (not replace) its sections."""
    overrides = planted_overrides(tmp, tag)
    for name, values in sections.items():
        overrides[name] = {**overrides.get(name, {}), **values}
    settings = load_settings(REPO / "signalml.yaml", overrides=overrides)
    provision(settings)
    return settings
