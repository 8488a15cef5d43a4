"""Feature engine: incremental, vectorised feature state machines.

One implementation serves live streaming and batch replay (training, the
``signalml features`` command), equal bit for bit. See :class:`FeatureEngine`
for the streaming API and :func:`compute_features` for batch.
"""

from stream.features.bars import REASONS, Bars, bar_defect, bar_defect_codes
from stream.features.batch import compute_features, write_features
from stream.features.engine import FeatureEngine
from stream.features.frame import FeatureFrame
from stream.features.names import feature_names
from stream.features.normalize import CrossSectionNormalizer, normalize_cross_section
from stream.features.snapshot import SnapshotError, SnapshotVersionError, dumps, loads

__all__ = [
    "REASONS",
    "Bars",
    "CrossSectionNormalizer",
    "FeatureEngine",
    "FeatureFrame",
    "SnapshotError",
    "SnapshotVersionError",
    "bar_defect",
    "bar_defect_codes",
    "compute_features",
    "dumps",
    "feature_names",
    "loads",
    "normalize_cross_section",
]
