"""One line per cross-section or drift event, for a person at a terminal."""

from __future__ import annotations

import math
from datetime import datetime, timezone

from signalml.client.cross_section import SignalCrossSection
from signalml.contracts import DriftEvent


def utc(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


def cross_section_line(cross_section: SignalCrossSection, names: int = 3) -> str:
    """Bar time, model set, size, the ``names`` highest and lowest scores."""
    order = cross_section.by_score()
    scored = [i for i in order if not math.isnan(cross_section.scores[i])]
    names = min(names, len(scored) // 2) if len(scored) > 1 else len(scored)

    def shown(indices) -> str:
        return " ".join(f"{cross_section.symbols[i]}({cross_section.scores[i]:+.4f})" for i in indices) or "-"

    return (f"{utc(cross_section.ts)}  {cross_section.model_set}  {cross_section.size:>4} symbols  "
            f"top {shown(scored[:names])}  bottom {shown(scored[len(scored) - names:][::-1])}")


def drift_line(event: DriftEvent) -> str:
    return (f"{utc(event.ts)}  {event.severity:<8} {event.kind} {event.subject}: {event.statistic:.4g} "
            f"(threshold {event.threshold:.4g})  {event.model_set}")
