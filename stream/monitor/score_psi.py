"""PSI of each member's scores against its training-time distribution
(the manifest's ``drift_reference["score:<member>"]``), over windows of
``window_bars`` bar times; severities as for features (:mod:`stream.drift`)."""

from __future__ import annotations

import numpy as np

from signalml.contracts import ReferenceBins
from stream.drift import bin_counts, psi, severity, thresholds


class ScorePsi:
    def __init__(self, reference: dict[str, ReferenceBins], window_bars: int):
        self.window_bars = window_bars
        self.reference = {name[len("score:"):]: bins for name, bins in reference.items()
                          if name.startswith("score:") and len(bins.edges) >= 2}
        self.counts = {member: np.zeros(len(bins.edges) - 1) for member, bins in self.reference.items()}
        self.bars = 0

    def update(self, member_scores: dict[str, np.ndarray]) -> list[tuple[str, float, str, float]]:
        """Add one cross-section; at the end of a window, (member, PSI,
        severity, threshold) of each member at or above the warning level."""
        for member, counts in self.counts.items():
            if member in member_scores:
                counts += bin_counts(member_scores[member], self.reference[member].edges)
        self.bars += 1
        if self.bars < self.window_bars:
            return []
        findings = []
        for member, counts in self.counts.items():
            statistic = psi(self.reference[member].fractions, counts)
            warning, critical = thresholds(self.reference[member])
            level = severity(statistic, warning, critical)
            if level is not None:
                findings.append((member, statistic, level, critical if level == "critical" else warning))
            counts[:] = 0
        self.bars = 0
        return findings

    def state(self) -> dict:
        return {"bars": self.bars, "counts": {m: c.tolist() for m, c in self.counts.items()}}

    def restore(self, state: dict) -> None:
        self.bars = int(state["bars"])
        for member, counts in state["counts"].items():
            if member in self.counts and len(counts) == len(self.counts[member]):
                self.counts[member][:] = counts
