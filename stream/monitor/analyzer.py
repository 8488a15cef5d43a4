"""Every finding about one model set, from its released cross-sections.

Per subject (``ensemble`` and each member): the cross-section's rank IC,
the rolling IC, :class:`~stream.monitor.decay.IcDecay`, ADWIN and
Page-Hinkley on the IC series; per member: ADWIN on the cross-sectional
mean score and the score PSI. What it takes from the manifest (training
ICs, score reference bins) is copied into its state, so a restored
analyzer does not depend on which manifests are known at restore time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import msgspec
import numpy as np

from signalml.config import MonitorSettings
from signalml.contracts import DriftEvent, ModelSetManifest, ReferenceBins
from stream.monitor.decay import IcDecay
from stream.monitor.detectors import ReplayedDetector, adwin, page_hinkley_down
from stream.monitor.ic import rank_ic
from stream.monitor.score_psi import ScorePsi
from stream.monitor.window import RollingWindow

ENSEMBLE = "ensemble"


@dataclass(frozen=True)
class CrossSection:
    """One bar time's signals of one model set, with the returns that matured
    (NaN where a return was given up)."""

    role: str
    ts: int
    model_set: str
    horizon_bars: int
    symbols: list[str]
    score: np.ndarray
    members: dict[str, np.ndarray] = field(default_factory=dict)
    returns: np.ndarray = field(default_factory=lambda: np.zeros(0))


def training_ics(manifest: ModelSetManifest | None) -> dict[str, float]:
    """Out-of-sample rank IC per subject from the manifest's training metrics."""
    if manifest is None:
        return {}
    out = {}
    for name, metrics in manifest.training_metrics.items():
        value = metrics.get("rank_ic")
        if value is None or not math.isfinite(value):
            continue
        if name == f"ensemble:{manifest.ensemble_method}":
            out[ENSEMBLE] = float(value)
        elif ":" not in name:
            out[name] = float(value)
    return out


class _Subject:
    def __init__(self, cfg: MonitorSettings, horizon_bars: int, reference: float | None):
        self.rolling = RollingWindow(cfg.ic_window_bars)
        self.decay = IcDecay(cfg.ic_window_bars, horizon_bars, cfg.ic_decay_warning_z, cfg.ic_decay_critical_z,
                             reference)
        self.adwin = adwin(cfg.adwin_delta, cfg.detector_memory_bars)
        self.page_hinkley = page_hinkley_down(cfg.page_hinkley_delta, cfg.page_hinkley_threshold,
                                              cfg.page_hinkley_min_bars, cfg.detector_memory_bars)
        self.last_ic: float | None = None

    def state(self) -> dict:
        return {"rolling": self.rolling.state(), "decay": self.decay.state(), "adwin": self.adwin.state(),
                "page_hinkley": self.page_hinkley.state(), "last_ic": self.last_ic}

    def restore(self, state: dict) -> None:
        self.rolling.restore(state["rolling"])
        self.decay.restore(state["decay"])
        self.adwin.restore(state["adwin"])
        self.page_hinkley.restore(state["page_hinkley"])
        self.last_ic = state["last_ic"]


class ModelSetAnalyzer:
    def __init__(self, cfg: MonitorSettings, role: str, model_set: str, horizon_bars: int,
                 manifest: ModelSetManifest | None = None):
        self.cfg = cfg
        self.role, self.model_set, self.horizon_bars = role, model_set, horizon_bars
        self.references = training_ics(manifest)
        self.score_bins = {k: v for k, v in (manifest.drift_reference if manifest else {}).items() if k.startswith("score:")}
        self.subjects: dict[str, _Subject] = {}
        self.score_means: dict[str, ReplayedDetector] = {}
        self.score_psi = ScorePsi(self.score_bins, cfg.score_psi_window_bars)
        self.bars = 0
        self.last_ts: int | None = None

    # ---------------------------------------------------------------- update

    def update(self, xs: CrossSection) -> list[DriftEvent]:
        """Findings of one released cross-section (bar time order)."""
        events: list[DriftEvent] = []
        self.bars += 1
        self.last_ts = xs.ts
        series = {ENSEMBLE: xs.score, **xs.members}
        for name, scores in series.items():
            subject = self.subjects.get(name)
            if subject is None:
                subject = self.subjects[name] = _Subject(self.cfg, self.horizon_bars, self.references.get(name))
            ic = rank_ic(scores, xs.returns, self.cfg.min_names)
            if not math.isfinite(ic):
                continue
            subject.last_ic = ic
            subject.rolling.update(ic)
            decay = subject.decay.update(ic)
            if decay is not None:
                events.append(self._event(xs.ts, "ic_decay", name, decay.rolling_ic, decay.threshold, decay.severity,
                                          f"rolling rank IC {decay.rolling_ic:.4f} over {self.cfg.ic_window_bars} bar times "
                                          f"vs training {decay.reference:.4f} (z = {decay.z:.2f})"))
            events += self._detector(xs.ts, subject.adwin, "adwin", f"ic:{name}", ic, falling_is_worse=True)
            events += self._detector(xs.ts, subject.page_hinkley, "page_hinkley", f"ic:{name}", ic, falling_is_worse=True)
        for member, scores in xs.members.items():
            values = np.asarray(scores, dtype=np.float64)
            values = values[np.isfinite(values)]
            if not len(values):
                continue
            detector = self.score_means.get(member)
            if detector is None:
                detector = self.score_means[member] = adwin(self.cfg.adwin_delta, self.cfg.detector_memory_bars)
            events += self._detector(xs.ts, detector, "adwin", f"score_mean:{member}", float(values.mean()),
                                     falling_is_worse=False)
        for member, statistic, level, threshold in self.score_psi.update(xs.members):
            events.append(self._event(xs.ts, "score_psi", member, statistic, threshold, level,
                                      f"PSI of the scores over the last {self.cfg.score_psi_window_bars} bar times"))
        return events

    def _detector(self, ts: int, detector: ReplayedDetector, kind: str, subject: str, x: float,
                  falling_is_worse: bool) -> list[DriftEvent]:
        history = list(detector.values) + [x]
        if not detector.update(x):
            return []
        recent_n = min(self.cfg.ic_window_bars, max(1, len(history) // 2))
        recent, earlier = float(np.mean(history[-recent_n:])), float(np.mean(history[:-recent_n] or history))
        worse = recent < earlier if falling_is_worse else True
        level = "warning" if worse else "info"
        return [self._event(ts, kind, subject, recent, earlier, level,
                            f"mean {earlier:.4f} before, {recent:.4f} over the last {recent_n} bar times")]

    def _event(self, ts, kind, subject, statistic, threshold, severity, detail) -> DriftEvent:
        return DriftEvent(ts=ts, kind=kind, subject=subject, statistic=float(statistic), threshold=float(threshold),
                          severity=severity, model_set=self.model_set, detail=detail)

    # ---------------------------------------------------------------- reading

    def rolling_ic(self) -> dict[str, float]:
        return {name: s.rolling.mean for name, s in self.subjects.items() if s.rolling.mean is not None}

    def report(self) -> dict:
        return {
            "model_set": self.model_set,
            "bar_times": self.bars,
            "last_ts": self.last_ts,
            "rank_ic": {name: s.last_ic for name, s in self.subjects.items()},
            "rolling_rank_ic": self.rolling_ic(),
            "training_rank_ic": {name: s.decay.reference for name, s in self.subjects.items()},
            "ic_decay_level": {name: s.decay.level for name, s in self.subjects.items()},
        }

    # ---------------------------------------------------------------- state

    def state(self) -> dict:
        return {
            "version": 1,
            "role": self.role,
            "model_set": self.model_set,
            "horizon_bars": self.horizon_bars,
            "references": self.references,
            "score_bins": {k: msgspec.to_builtins(v) for k, v in self.score_bins.items()},
            "bars": self.bars,
            "last_ts": self.last_ts,
            "subjects": {name: s.state() for name, s in self.subjects.items()},
            "score_means": {name: d.state() for name, d in self.score_means.items()},
            "score_psi": self.score_psi.state(),
        }

    @classmethod
    def from_state(cls, cfg: MonitorSettings, state: dict) -> "ModelSetAnalyzer":
        if state.get("version") != 1:
            raise ValueError(f"monitor analyzer state version {state.get('version')!r} is not 1")
        analyzer = cls(cfg, state["role"], state["model_set"], state["horizon_bars"])
        analyzer.references = dict(state["references"])
        analyzer.score_bins = {k: msgspec.convert(v, ReferenceBins) for k, v in state["score_bins"].items()}
        analyzer.score_psi = ScorePsi(analyzer.score_bins, cfg.score_psi_window_bars)
        analyzer.score_psi.restore(state["score_psi"])
        analyzer.bars, analyzer.last_ts = state["bars"], state["last_ts"]
        for name, sub in state["subjects"].items():
            subject = analyzer.subjects[name] = _Subject(cfg, analyzer.horizon_bars, analyzer.references.get(name))
            subject.restore(sub)
        for name, det in state["score_means"].items():
            detector = analyzer.score_means[name] = adwin(cfg.adwin_delta, cfg.detector_memory_bars)
            detector.restore(det)
        return analyzer
