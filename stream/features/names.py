"""Feature names and their order: the schema of every feature vector."""

from __future__ import annotations

from signalml.config import FeatureSettings

MACD_NAMES = ("macd", "macd_signal", "macd_hist")


def feature_names(settings: FeatureSettings) -> tuple[str, ...]:
    """``{indicator}_{lookback}`` for each configured indicator, then each
    lookback (both in configuration order), then MACD's three, then the
    alphas. Stable for a given configuration."""
    names = [f"{indicator}_{p}" for indicator in settings.indicators for p in settings.lookbacks]
    names += MACD_NAMES
    names += settings.alphas
    return tuple(names)
