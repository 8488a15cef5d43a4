"""The features of one bar time's symbols, as an update returns them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from stream.features.bars import ACCEPTED, REASONS


@dataclass(frozen=True, eq=False)
class FeatureFrame:
    """``values[i, j]`` is feature ``names[j]`` of ``symbols[i]`` at ``ts_ms``.

    Rows of bars that were not applied (see ``reasons``) are all NaN.
    """

    ts_ms: int
    symbols: np.ndarray  # [n] str
    values: np.ndarray  # [n, F] float64
    names: tuple[str, ...]
    reason_codes: np.ndarray  # [n] int8, 0 = applied; see bars.REASONS

    def __len__(self) -> int:
        return len(self.symbols)

    @property
    def accepted(self) -> np.ndarray:
        return self.reason_codes == ACCEPTED

    @property
    def reasons(self) -> list[str | None]:
        """Why each bar was not applied, or None where it was."""
        return [REASONS[code] for code in self.reason_codes.tolist()]

    def column(self, name: str) -> np.ndarray:
        return self.values[:, self.names.index(name)]

    def to_pandas(self) -> pd.DataFrame:
        frame = pd.DataFrame(np.ascontiguousarray(self.values), columns=list(self.names))
        frame.insert(0, "symbol", self.symbols)
        frame.insert(0, "ts", self.ts_ms)
        return frame
