"""Splitters over time-indexed samples, all purging by label end time.

Every sample has a bar index ``t`` and a label end ``e >= t`` (the bar
whose close its label reads). A training sample is only kept when its label
window ``[t, e]`` does not touch a test window (nor its embargo), whatever
the row counts.
"""

from training.splits.cpcv import CombinatorialPurgedCV
from training.splits.purge import Split, TimeSpan, purge_mask
from training.splits.purged_kfold import PurgedKFold
from training.splits.walk_forward import WalkForward, WalkForwardFold

__all__ = [
    "CombinatorialPurgedCV",
    "PurgedKFold",
    "Split",
    "TimeSpan",
    "WalkForward",
    "WalkForwardFold",
    "purge_mask",
]
