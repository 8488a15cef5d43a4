"""Synthetic markets with a planted signal, shared by the model tests.

Every symbol's features are i.i.d. standard normal per date. With a signal,
each horizon's forward return is ``0.6 * x0[t] + 0.3 * x1[t-1] + noise``
(unit noise): a tabular model sees ``x0[t]`` (rank IC about 0.45), a
sequence model can also use the previous step's ``x1``. Without a signal
the returns are pure noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from models.base import SequenceData, TabularData

HORIZONS = (1, 5, 20)
TARGET = 1
SPLITS = {"train": (0, 120), "valid": (120, 150), "test": (150, 200)}


@dataclass(frozen=True)
class Market:
    """Rows sorted by (date, symbol); ``panel`` laid out as SequenceData wants."""

    X: np.ndarray  # float32 [n, F]
    y: np.ndarray  # float64 [n, H]
    groups: np.ndarray  # int64 [n]
    panel: np.ndarray  # float32 [R, F]
    end_rows: np.ndarray  # int64 [n]
    length: int

    def rows(self, split: str) -> np.ndarray:
        first, stop = SPLITS[split]
        return np.flatnonzero((self.groups >= first) & (self.groups < stop))

    def tabular(self, split: str) -> TabularData:
        rows = self.rows(split)
        return TabularData(self.X[rows], self.y[rows], self.groups[rows], HORIZONS, TARGET)

    def sequence(self, split: str, length: int | None = None) -> SequenceData:
        rows = self.rows(split)
        return SequenceData(
            self.panel, self.end_rows[rows], length or self.length, self.y[rows], self.groups[rows], HORIZONS, TARGET
        )


def synthetic_market(
    *, signal: bool, n_dates: int = 200, n_symbols: int = 50, n_features: int = 6, length: int = 8, seed: int = 0
) -> Market:
    rng = np.random.default_rng(seed)
    series = rng.standard_normal((n_symbols, n_dates, n_features)).astype(np.float32)  # [S, D, F]
    lagged_x1 = np.concatenate([np.zeros((n_symbols, 1)), series[:, :-1, 1]], axis=1)
    planted = 0.6 * series[:, :, 0] + 0.3 * lagged_x1 if signal else np.zeros((n_symbols, n_dates))
    returns = planted[:, :, None] + rng.standard_normal((n_symbols, n_dates, len(HORIZONS)))  # [S, D, H]

    date, symbol = np.meshgrid(np.arange(n_dates), np.arange(n_symbols), indexing="ij")  # rows (date, symbol)
    date, symbol = date.ravel(), symbol.ravel()
    block = n_dates + length - 1
    panel = np.zeros((n_symbols * block, n_features), dtype=np.float32)
    for s in range(n_symbols):
        panel[s * block + length - 1 : (s + 1) * block] = series[s]
    return Market(
        X=series[symbol, date],
        y=returns[symbol, date].astype(np.float64),
        groups=date.astype(np.int64),
        panel=panel,
        end_rows=(symbol * block + length - 1 + date).astype(np.int64),
        length=length,
    )


@pytest.fixture(scope="session")
def market() -> Market:
    return synthetic_market(signal=True)


@pytest.fixture(scope="session")
def noise_market() -> Market:
    return synthetic_market(signal=False, seed=1)


# ---------------------------------------------------------------- members

N_FEATURES = 6
FEATURE_NAMES = [f"x{i}" for i in range(N_FEATURES)]
KINDS = ("lightgbm", "xgboost", "ridge", "lstm", "tft")
DEEP_KINDS = ("lstm", "tft")


def make_member(kind: str, seed: int = 7, **overrides):
    """A member sized for these small markets (fits in seconds)."""
    from models.deep import LSTMPredictor, TemporalFusionTransformer
    from models.lightgbm_member import LightGBMMember
    from models.ridge_member import RidgeMember
    from models.xgboost_member import XGBoostMember

    common = {"feature_names": FEATURE_NAMES, "seed": seed, "num_threads": 1}
    deep = {"sequence_length": 8, "epochs": 8, "batch_size": 256, "learning_rate": 3e-3, "patience": 3}
    if kind == "lightgbm":
        return LightGBMMember(N_FEATURES, **{**common, "min_child_samples": 50, "n_estimators": 200, **overrides})
    if kind == "xgboost":
        return XGBoostMember(N_FEATURES, **{**common, "min_child_weight": 50.0, "n_estimators": 200, **overrides})
    if kind == "ridge":
        return RidgeMember(N_FEATURES, **{"feature_names": FEATURE_NAMES, "seed": seed, **overrides})
    if kind == "lstm":
        return LSTMPredictor(N_FEATURES, **{**common, **deep, "hidden_size": 16, "num_layers": 2, **overrides})
    if kind == "tft":
        return TemporalFusionTransformer(N_FEATURES, **{**common, **deep, "hidden_size": 16, "attention_heads": 2, **overrides})
    raise ValueError(kind)


def data_of(member, market: Market, split: str):
    return market.sequence(split) if member.input == "sequence" else market.tabular(split)


@dataclass
class Fitted:
    member: object
    report: dict
    test_scores: np.ndarray


_FITTED: dict[tuple[str, str], Fitted] = {}


def fitted(kind: str, market: Market, label: str) -> Fitted:
    """One fit per (kind, market) for the whole session."""
    key = (kind, label)
    if key not in _FITTED:
        member = make_member(kind)
        report = member.fit(data_of(member, market, "train"), data_of(member, market, "valid"))
        _FITTED[key] = Fitted(member, report, member.predict(data_of(member, market, "test")))
    return _FITTED[key]


@pytest.fixture(scope="session", params=KINDS)
def kind(request) -> str:
    return request.param


@pytest.fixture(scope="session")
def signal_fit(kind, market) -> Fitted:
    return fitted(kind, market, "signal")


_SAVED: dict[str, tuple] = {}


def saved_fit(kind: str, market: Market, tmp_path_factory) -> tuple:
    """(directory, files) of the signal fit, saved once per kind for the session."""
    if kind not in _SAVED:
        directory = tmp_path_factory.mktemp(f"saved-{kind}")
        _SAVED[kind] = directory, fitted(kind, market, "signal").member.save(directory)
    return _SAVED[kind]


@pytest.fixture(scope="session")
def saved(kind, market, tmp_path_factory):
    return saved_fit(kind, market, tmp_path_factory)
