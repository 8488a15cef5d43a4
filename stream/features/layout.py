"""Which state machines compute the selected features, and where each output goes.

The schema (:func:`~stream.features.names.feature_names`) may take any
subset of the known features in any order; :func:`plan` builds the kernels
that compute them and maps each kernel output to its column of the feature
matrix (-1 for an output nobody selected). Alpha158 kernels are built with
only the windows some selected feature needs; the classic ones with their
configured lookbacks.

Two kinds of features need the whole cross-section of a bar time: the
alphas (cross-sectional ranks) and the market regressions (the market
return is the cross-section's mean). Their kernels produce per-symbol inputs
that the engine keeps and combines over the symbols of a bar time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from signalml.config import FeatureSettings
from signalml.feature_sets import MARKET_WINDOWS
from stream.features.alpha158.candle import CandleShape
from stream.features.alpha158.correlation import Correlations
from stream.features.alpha158.extremes import Extremes
from stream.features.alpha158.order_stats import OrderStats
from stream.features.alpha158.trend import CloseTrend
from stream.features.alpha158.up_down import UpDown
from stream.features.alpha158.volume import VolumeStats
from stream.features.alphas import INPUTS, AlphaInputs
from stream.features.atr import ATR
from stream.features.bars import Bars
from stream.features.bollinger import BollingerPosition
from stream.features.jit_kernel import JitKernel
from stream.features.kernel import Kernel, Step
from stream.features.macd import MACD
from stream.features.returns import Return
from stream.features.rsi import RSI
from stream.features.us_equity.liquidity import DollarVolume
from stream.features.us_equity.market import MarketInputs
from stream.features.us_equity.momentum import Momentum
from stream.features.volatility import Volatility
from stream.features.volume import VolumeRatio

INDICATOR_KERNELS = {
    "rsi": lambda s: RSI(s.lookbacks),
    "atr": lambda s: ATR(s.lookbacks),
    "bb_position": lambda s: BollingerPosition(s.lookbacks, s.bollinger_nbdev),
    "volume_ratio": lambda s: VolumeRatio(s.lookbacks),
    "ret": lambda s: Return(s.lookbacks),
    "vol": lambda s: Volatility(s.lookbacks),
}

# Alpha158 kernels by the operators they compute (each over a set of windows).
WINDOWED_KERNELS = (CloseTrend, Extremes, OrderStats, Correlations, UpDown, VolumeStats)


@dataclass
class SymbolPart:
    """A kernel whose outputs are features of the symbol alone."""

    kernel: Kernel
    columns: np.ndarray  # int64 [n_outputs]: column of each output, -1 if not selected
    block: slice | None = field(init=False)  # the columns, when one ascending range of all outputs
    picked: np.ndarray = field(init=False)  # outputs that are selected

    def __post_init__(self):
        columns = self.columns
        whole = len(columns) and columns[0] >= 0 and np.array_equal(columns, np.arange(columns[0], columns[0] + len(columns)))
        self.block = slice(int(columns[0]), int(columns[0]) + len(columns)) if whole else None
        self.picked = np.flatnonzero(columns >= 0)

    @property
    def jit(self) -> bool:
        return isinstance(self.kernel, JitKernel)

    def apply(self, step: Step, bars: Bars, values: np.ndarray) -> None:
        """Update the kernel and write its selected outputs into ``values`` [F, k]."""
        kernel = self.kernel
        if self.jit:
            kernel.advance(step.rows.index, step.seen, bars, values, self.columns)
        elif self.block is not None:
            kernel._update(step, bars, values[self.block])
        else:
            out = np.empty((kernel.n_outputs, step.rows.size))
            kernel._update(step, bars, out)
            values[self.columns[self.picked]] = out[self.picked]

    def apply_one(self, row: int, seen: int, bar: tuple, values: np.ndarray) -> None:
        """:meth:`apply` of one bar; ``values`` is [F, 1]."""
        kernel = self.kernel
        if self.jit:
            kernel.advance_one(row, seen, bar, values, self.columns)
            return
        out = kernel._update_one(row, seen, bar)
        for j in self.picked.tolist():
            values[self.columns[j], 0] = out[j]

    def warmup(self) -> int:
        return max((self.kernel.warmup_bars[j] for j in self.picked.tolist()), default=1)


@dataclass
class Plan:
    parts: list[SymbolPart]
    alphas: tuple[str, ...]  # selected, in the classic order
    alpha_columns: np.ndarray  # column of each selected alpha
    alpha_inputs: AlphaInputs | None
    market_windows: tuple[int, ...]
    market_columns: np.ndarray  # mkt_beta_{d} per window, then idio_vol_{d}
    market_inputs: MarketInputs | None
    warmup_bars: int

    @property
    def n_alpha_inputs(self) -> int:
        return sum(len(INPUTS[a]) for a in self.alphas)

    @property
    def n_inputs(self) -> int:
        return self.n_alpha_inputs + (self.market_inputs.n_outputs if self.market_inputs is not None else 0)

    def kernels(self) -> list[Kernel]:
        """Every kernel, in a fixed order (the snapshot's)."""
        kernels = [part.kernel for part in self.parts]
        kernels += [k for k in (self.alpha_inputs, self.market_inputs) if k is not None]
        return kernels


def plan(settings: FeatureSettings, names: tuple[str, ...]) -> Plan:
    column = {name: i for i, name in enumerate(names)}

    def part(kernel: Kernel) -> SymbolPart:
        return SymbolPart(kernel, np.array([column.get(name, -1) for name in kernel.output_names], dtype=np.int64))

    def wanted(output_names) -> bool:
        return any(name in column for name in output_names)

    parts = []
    for indicator in settings.indicators:
        if wanted(f"{indicator}_{p}" for p in settings.lookbacks):
            parts.append(part(INDICATOR_KERNELS[indicator](settings)))
    macd = MACD(settings.macd.fast, settings.macd.slow, settings.macd.signal)
    if wanted(macd.output_names):
        parts.append(part(macd))
    if wanted(CandleShape.output_names):
        parts.append(part(CandleShape()))
    for kind in WINDOWED_KERNELS:
        windows = [d for d in sorted(settings.alpha158_windows) if any(f"{op}{d}" in column for op in kind.operators)]
        if windows:
            parts.append(part(kind(windows)))
    for kind in (Momentum, DollarVolume):
        if wanted(kind.output_names):
            parts.append(part(kind()))

    alphas = tuple(a for a in settings.alphas if a in column)
    market_windows = tuple(d for d in MARKET_WINDOWS if f"mkt_beta_{d}" in column or f"idio_vol_{d}" in column)
    market_names = [f"mkt_beta_{d}" for d in market_windows] + [f"idio_vol_{d}" for d in market_windows]
    alpha_inputs = AlphaInputs(alphas) if alphas else None
    market_inputs = MarketInputs(market_windows) if market_windows else None

    warmups = [p.warmup() for p in parts]
    if alpha_inputs is not None:
        warmups.append(max(alpha_inputs.warmup_bars))
    warmups += [d + 1 for d in market_windows]
    return Plan(
        parts=parts,
        alphas=alphas,
        alpha_columns=np.array([column[a] for a in alphas], dtype=np.int64),
        alpha_inputs=alpha_inputs,
        market_windows=market_windows,
        market_columns=np.array([column.get(name, -1) for name in market_names], dtype=np.int64),
        market_inputs=market_inputs,
        warmup_bars=max(warmups, default=1),
    )

