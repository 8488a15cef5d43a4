"""Synthetic bars and stand-in members for the training tests.

``synthetic_bars`` makes a market of random walks. With ``signal > 0`` a
symbol's log volume on day t (i.i.d. normal) moves its return ``delay``
days later (2 by default): ``r[t+d] = sigma * (signal * v[t] + e[t+d])``;
the engine's ``volume_ratio`` features see ``v[t]`` at the close of t, so
the 5-bar label from the close of t + 1 (which holds day t + 2's return)
is predictable with a rank IC of about ``signal / sqrt(5 (1 + signal^2))``
(0.2 for signal = 0.5) and not from anything before t. With ``delay = 1``
only the return of day t + 1, which no trade decided at the close of t can
earn, carries the signal. With ``signal = 0`` nothing is predictable.

The stand-in members (a ridge regression on the features, and one on the
last and mean step of the sequence) follow ``models.base.Member`` with
JSON files, are deterministic and fast: tests of the pipeline's plumbing
use them; tests that a signal is *found* use the real LightGBM ranker.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from models.base import Member


def synthetic_bars(
    n_symbols: int = 40, n_days: int = 320, *, signal: float = 0.0, seed: int = 0, sigma: float = 0.01, delay: int = 2
) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2021-01-04", periods=n_days)
    log_volume = rng.standard_normal((n_days, n_symbols))
    noise = rng.standard_normal((n_days, n_symbols))
    returns = sigma * noise
    returns[delay:] += sigma * signal * log_volume[:-delay]
    close = 50.0 * np.exp(np.cumsum(returns, axis=0)) * np.exp(rng.uniform(0, 2, n_symbols))[None, :]
    previous = np.vstack([close[:1], close[:-1]])
    open_ = previous * np.exp(0.002 * rng.standard_normal((n_days, n_symbols)))
    high = np.maximum(open_, close) * (1 + 0.004 * np.abs(rng.standard_normal((n_days, n_symbols))))
    low = np.minimum(open_, close) * (1 - 0.004 * np.abs(rng.standard_normal((n_days, n_symbols))))
    volume = np.round(1e6 * np.exp(log_volume))
    symbols = np.array([f"S{j:03d}" for j in range(n_symbols)])
    frame = pd.DataFrame(
        {
            "date": np.repeat(dates.to_numpy(), n_symbols),
            "symbol": np.tile(symbols, n_days),
            "open": open_.ravel(),
            "high": high.ravel(),
            "low": low.ravel(),
            "close": close.ravel(),
            "volume": volume.ravel(),
        }
    )
    return frame


class RidgeMember(Member):
    """Ridge regression of the target label on the features (NaN → 0)."""

    kind = "lightgbm"
    input = "tabular"
    ridge = 1.0

    def __init__(self, n_features, *, name=None, feature_names=None):
        super().__init__(n_features, name=name, feature_names=feature_names)
        self.coefficients = None
        self.intercept = 0.0
        self.fit_groups: list[np.ndarray] = []
        self.warm_from = None

    def _inputs(self, data) -> np.ndarray:
        return np.nan_to_num(np.asarray(data.X, dtype=np.float64))

    def fit(self, train, valid) -> dict:
        self.fit_groups.append(np.asarray(train.groups).copy())
        X, y = self._inputs(train), np.asarray(train.y[:, train.target])
        known = np.isfinite(y)
        X, y = X[known], y[known]
        mean_x, mean_y = X.mean(axis=0), y.mean()
        Xc = X - mean_x
        self.coefficients = np.linalg.solve(Xc.T @ Xc + self.ridge * np.eye(X.shape[1]), Xc.T @ (y - mean_y))
        self.intercept = float(mean_y - mean_x @ self.coefficients)
        return {"rows": int(known.sum())}

    def predict(self, data) -> np.ndarray:
        return self._inputs(data) @ self.coefficients + self.intercept

    def warm_start_from(self, previous) -> None:
        self.warm_from = previous

    def importance(self, data):
        X = self._inputs(data)
        values = np.abs((X - X.mean(axis=0)) * self.coefficients).mean(axis=0)
        return dict(zip(self.resolved_feature_names(), values.tolist()))

    def save(self, directory: Path) -> dict[str, str]:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "model.json").write_text(
            json.dumps(
                {
                    "name": self.name,
                    "n_features": self.n_features,
                    "coefficients": self.coefficients.tolist(),
                    "intercept": self.intercept,
                }
            )
        )
        return {"model": "model.json"}

    @classmethod
    def load(cls, directory: Path, files: dict[str, str]) -> "RidgeMember":
        data = json.loads((Path(directory) / files["model"]).read_text())
        member = cls(data["n_features"], name=data["name"])
        member.coefficients, member.intercept = np.asarray(data["coefficients"]), data["intercept"]
        return member


class SequenceRidgeMember(RidgeMember):
    """Ridge on [last step, mean over steps] of each sequence."""

    kind = "lstm"
    input = "sequence"
    sequence_length = 4

    def _inputs(self, data) -> np.ndarray:
        windows = data.materialize().astype(np.float64)
        return np.hstack([windows[:, -1, :], windows.mean(axis=1)])

    def save(self, directory: Path) -> dict[str, str]:
        files = super().save(directory)
        return {"weights": files["model"]}

    @classmethod
    def load(cls, directory, files):
        return super().load(directory, {"model": files["weights"]})

    def importance(self, data):
        return None


def standin_factory(settings, n_features, feature_names):
    return [
        RidgeMember(n_features, name="ridge", feature_names=feature_names),
        SequenceRidgeMember(n_features, name="seq", feature_names=feature_names),
    ]


def standin_loader(kind, directory, files):
    return {"lightgbm": RidgeMember, "lstm": SequenceRidgeMember}[kind].load(directory, files)


def lightgbm_factory(settings, n_features, feature_names):
    from models.lightgbm_member import LightGBMMember

    return [LightGBMMember(n_features, feature_names=feature_names, n_estimators=40, min_child_samples=50, num_threads=1)]
