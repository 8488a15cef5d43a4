"""A synthetic market with a planted signal, the signals of a model that
learned it, and the engine's cross-section records of both.

Each bar time ``t`` every symbol has a predictor ``z[t]`` (i.i.d. normal);
its next one-bar log return is ``sigma * (beta[t] * z[t] + e[t+1])``. The
model's score at ``t`` is ``z[t]`` (its members see ``z`` plus noise), so
the ``h``-bar forward return from ``t`` has a rank IC of about
``beta / sqrt(h * (1 + beta^2))`` with the score: 0.32 for beta = 1,
h = 5. ``flip_at`` makes ``beta`` change sign from that bar time on: the
model's IC turns negative there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from signalml.contracts import Bar, CrossSectionRecord, ModelSetManifest, Signal, encode, schema_hash
from stream.signals import build_record

DAY_MS = 86_400_000
START_MS = 1_600_000_000_000
MODEL_SET = "ms-20260101000000-0000beef"


@dataclass(frozen=True)
class Message:
    kind: str  # "bar" | "signal" | "record"
    value: object
    partition: int = 0
    role: str = "champion"


def market(n_symbols: int = 40, n_bars: int = 400, *, beta: float = 1.0, flip_at: int | None = None,
           seed: int = 0, sigma: float = 0.01, horizon_bars: int = 5, warmup_bars: int = 0,
           model_set: str = MODEL_SET, partitions: int = 4, shift_member_at: int | None = None) -> list[Message]:
    """Bars, signals and records, bar time by bar time: the bars of ``t``
    (each symbol on its partition), the signals of ``t`` after warm-up, then
    the cross-section record of ``t`` (closes, and the scores after warm-up)."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n_bars, n_symbols))
    noise = rng.standard_normal((n_bars, n_symbols))
    member_noise = rng.standard_normal((n_bars, n_symbols, 2))
    betas = np.full(n_bars, beta)
    if flip_at is not None:
        betas[flip_at:] = -beta
    log_returns = np.zeros((n_bars, n_symbols))
    log_returns[1:] = sigma * (betas[:-1, None] * z[:-1] + noise[1:])
    close = 50.0 * np.exp(np.cumsum(log_returns, axis=0))
    symbols = [f"S{j:03d}" for j in range(n_symbols)]
    messages = []
    for t in range(n_bars):
        ts = START_MS + t * DAY_MS
        for j, symbol in enumerate(symbols):
            c = float(close[t, j])
            bar = Bar(symbol=symbol, ts=ts, open=c, high=c * 1.001, low=c * 0.999, close=c, volume=1e6)
            messages.append(Message("bar", bar, partition=j % partitions))
        if t < warmup_bars:
            messages.append(Message("record", build_record(ts, "champion", symbols, close[t].tolist(), [])))
            continue
        lgbm = z[t] + 0.5 * member_noise[t, :, 0]
        xgb = z[t] + 0.5 * member_noise[t, :, 1]
        if shift_member_at is not None and t >= shift_member_at:
            xgb = xgb + 3.0
        score = (lgbm + xgb) / 2
        ranks = (np.argsort(np.argsort(score)) + 1) / n_symbols
        for j, symbol in enumerate(symbols):
            messages.append(Message("signal", Signal(
                ts=ts, symbol=symbol, score=float(score[j]), rank=float(ranks[j]),
                members={"lgbm": float(lgbm[j]), "xgb": float(xgb[j])}, model_set=model_set,
                cross_section_size=n_symbols, horizon_bars=horizon_bars)))
        signals = [m.value for m in messages[-n_symbols:]]
        messages.append(Message("record", build_record(ts, "champion", symbols, close[t].tolist(), signals,
                                                       model_set, horizon_bars)))
    return messages


def records(messages, role: str = "champion") -> list[CrossSectionRecord]:
    """The cross-section records of ``messages``, as the engine of ``role`` publishes them."""
    import msgspec

    return [msgspec.structs.replace(m.value, role=role) for m in messages if m.kind == "record"]


class RecordTopic:
    """The cross-sections topic: records at offsets 0, 1, …; ``fetch``
    reads them back by offset as the app does after a restart."""

    def __init__(self, values: list[CrossSectionRecord]):
        self.raw = [encode(value) for value in values]

    def __len__(self) -> int:
        return len(self.raw)

    def fetch(self, offsets: list[int]) -> dict[int, CrossSectionRecord]:
        import msgspec

        return {offset: msgspec.json.decode(self.raw[offset], type=CrossSectionRecord) for offset in offsets}

    def feed(self, monitor, start: int = 0, stop: int | None = None, batch: int = 7) -> list:
        """Records ``start`` to ``stop`` in batches, committing after each."""
        import msgspec

        events = []
        stop = len(self.raw) if stop is None else stop
        for first in range(start, stop, batch):
            for offset in range(first, min(first + batch, stop)):
                record = msgspec.json.decode(self.raw[offset], type=CrossSectionRecord)
                events += monitor.on_cross_section(record, offset)
            monitor.commit()
        return events


def manifest(training_ic: float = 0.3, model_set: str = MODEL_SET, score_bins: bool = True) -> ModelSetManifest:
    """The manifest of the planted model: its training ICs and the score
    reference of members whose scores are N(0, 1.25)."""
    from signalml.contracts import ManifestMember, ReferenceBins

    reference = {}
    if score_bins:
        rng = np.random.default_rng(99)
        values = rng.normal(scale=np.sqrt(1.25), size=100_000)
        edges = np.quantile(values, np.linspace(0, 1, 11)).tolist()
        for member in ("lgbm", "xgb"):
            reference[f"score:{member}"] = ReferenceBins(edges=edges, fractions=[0.1] * 10)
    return ModelSetManifest(
        model_set=model_set, created_at=0,
        members=[ManifestMember("lgbm", 1, "lightgbm", "tabular"), ManifestMember("xgb", 1, "xgboost", "tabular")],
        ensemble_method="average", feature_names=["f"], feature_schema_hash=schema_hash(["f"]), horizon_bars=5,
        drift_reference=reference,
        training_metrics={"ensemble:average": {"rank_ic": training_ic}, "lgbm": {"rank_ic": training_ic * 0.85},
                          "xgb": {"rank_ic": training_ic * 0.85}},
    )
