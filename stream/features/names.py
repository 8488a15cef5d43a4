"""Feature names and their order: the schema of every feature vector."""

from __future__ import annotations

from signalml.config import FeatureSettings
from signalml.feature_sets import MACD_NAMES, classic_names, selected_names

__all__ = ["MACD_NAMES", "classic_names", "feature_names"]


def feature_names(settings: FeatureSettings) -> tuple[str, ...]:
    """The selected features in schema order (see :mod:`signalml.feature_sets`);
    stable for a given configuration. The default selection, ``classic``, is
    ``{indicator}_{lookback}`` for each configured indicator then lookback,
    MACD's three, then the alphas."""
    return selected_names(settings)
