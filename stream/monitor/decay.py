"""IC decay: the rolling rank IC has fallen significantly below the IC the
model set showed in training.

Over the last ``W = window_bars`` ICs, ``z = (mean - reference) / se``.
The ICs of consecutive bar times share ``h``-bar forward returns, and
overlap of that kind makes the variance of a mean of ``W`` of them about
``sigma^2 * h / W`` (``h`` lags of linearly falling autocorrelation), so
``se = sigma * sqrt(h / W)`` with ``sigma`` the standard deviation of every
IC seen since the model set started (a stable estimate; one from the 20
values in the window is too noisy and alarms falsely). ``z <= -warning_z`` is a
warning, ``z <= -critical_z`` critical. A finding is reported when the
level rises (none → warning → critical); the rule re-arms once ``z`` is
back above ``-warning_z / 2``, so a lasting decay is one event, not one
per bar.

Without a training IC (a manifest without metrics) the reference is the
mean of the first full window: decay is then measured against the
model's own start.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from stream.monitor.window import RollingWindow

LEVELS = {None: 0, "warning": 1, "critical": 2}


@dataclass(frozen=True)
class Decay:
    severity: str
    rolling_ic: float
    threshold: float  # the rolling IC at which this severity starts
    z: float
    reference: float


class IcDecay:
    def __init__(self, window_bars: int, horizon_bars: int, warning_z: float, critical_z: float,
                 reference: float | None = None):
        self.window = RollingWindow(window_bars)
        self.horizon_bars = horizon_bars
        self.warning_z, self.critical_z = warning_z, critical_z
        self.reference = reference
        self.level: str | None = None
        self.z: float | None = None
        self.n, self.mean, self.m2 = 0, 0.0, 0.0  # Welford's running variance of every IC

    @property
    def sigma(self) -> float:
        return math.sqrt(self.m2 / (self.n - 1)) if self.n > 1 else float("nan")

    def update(self, ic: float) -> Decay | None:
        """Add one bar time's IC (NaN is skipped); the finding, if the level rose."""
        if not math.isfinite(ic):
            return None
        self.window.update(ic)
        self.n += 1
        delta = ic - self.mean
        self.mean += delta / self.n
        self.m2 += delta * (ic - self.mean)
        if not self.window.full:
            return None
        mean = self.window.mean
        if self.reference is None:
            self.reference = mean
            return None
        se = self.sigma * math.sqrt(self.horizon_bars / self.window.size)
        if not (math.isfinite(se) and se > 0):
            return None
        self.z = z = (mean - self.reference) / se
        if z <= -self.critical_z:
            level = "critical"
        elif z <= -self.warning_z:
            level = "warning"
        elif z > -self.warning_z / 2:
            level = None
        else:
            level = self.level  # between re-arm and warning: unchanged
        risen = LEVELS[level] > LEVELS[self.level]
        self.level = level
        if not risen:
            return None
        z_level = self.critical_z if level == "critical" else self.warning_z
        return Decay(level, mean, self.reference - z_level * se, z, self.reference)

    def state(self) -> dict:
        return {"window": self.window.state(), "reference": self.reference, "level": self.level, "z": self.z,
                "n": self.n, "mean": self.mean, "m2": self.m2}

    def restore(self, state: dict) -> None:
        self.window.restore(state["window"])
        self.reference, self.level, self.z = state["reference"], state["level"], state["z"]
        self.n, self.mean, self.m2 = state["n"], state["mean"], state["m2"]
