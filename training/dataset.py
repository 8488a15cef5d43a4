"""The training dataset: bars → features (the engine's code) → labels.

Built once per run; every walk-forward window is a slice of it by row index
(rows are sorted by bar time, so a window of bar times is one contiguous
range of rows). Rows are indexed by (date, symbol) and each carries the
bar index of its label's end, which the splitters purge on.

Nothing from after the close of bar t enters the features of bar t: the
features come from the streaming feature engine (causal state machines),
the cross-sectional normalisation uses only bar t's cross-section, and the
sequence of bar t is built from the symbol's rows up to t.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from signalml.config import Settings
from signalml.errors import DataError
from stream.bars_file import adjust_prices
from stream.features import bar_defect_codes, compute_features, feature_names
from training.baseline import reversal_score
from training.labels import close_grid, fit_target, forward_returns
from training.sequences import gather_sequences, sequence_panel


@dataclass(frozen=True, eq=False)
class Dataset:
    """Rows sorted by (``date_index``, ``symbol``); arrays aligned by row.

    ``returns`` [n, H] are raw forward returns from the close of
    t + ``entry_lag_bars`` over each horizon (what every score is evaluated
    against); ``labels`` [n, H] their per-date market-neutral normal scores
    or ranks (what members fit: :func:`training.labels.fit_target`);
    ``reversal`` [n] is the baseline score −ret over ``label_horizon_bars``
    bars ending at t.
    """

    dates: np.ndarray  # datetime64[ns] [D]: the bar clock
    symbols: np.ndarray  # str [S]
    date_index: np.ndarray  # int64 [n]
    symbol_index: np.ndarray  # int64 [n]
    features: np.ndarray  # float32 [n, F], normalised, NaN allowed
    feature_names: tuple[str, ...]
    horizons: tuple[int, ...]
    target: int  # column of horizons / returns / labels that models learn
    entry_lag_bars: int  # a label starts at the close of t + entry_lag_bars
    returns: np.ndarray  # float64 [n, H]
    labels: np.ndarray  # float64 [n, H]
    reversal: np.ndarray  # float64 [n]
    panel: np.ndarray  # float32 [R, F]: see training.sequences
    panel_end_rows: np.ndarray  # int64 [n]
    sequence_padding: int  # zero rows before each symbol in the panel
    counts: dict = field(default_factory=dict)

    # ------------------------------------------------------------ shape

    def __len__(self) -> int:
        return len(self.date_index)

    @property
    def n_dates(self) -> int:
        return len(self.dates)

    @property
    def horizon_bars(self) -> int:
        return self.horizons[self.target]

    @property
    def label_span_bars(self) -> int:
        """Bars from a row's bar to the close its target label reads last."""
        return self.entry_lag_bars + self.horizon_bars

    @property
    def label_end_index(self) -> np.ndarray:
        """int64 [n]: bar index of each row's (target) label end, t + lag + h."""
        return self.date_index + self.label_span_bars

    def label_end_index_of(self, horizon_bars: int) -> np.ndarray:
        return self.date_index + self.entry_lag_bars + int(horizon_bars)

    @property
    def labelled(self) -> np.ndarray:
        """bool [n]: the target label exists."""
        return np.isfinite(self.labels[:, self.target])

    # ------------------------------------------------------------ slicing

    def rows_of_dates(self, first_date_index: int, stop_date_index: int) -> slice:
        """Rows whose bar index is in [first, stop): one contiguous range."""
        lo = int(np.searchsorted(self.date_index, first_date_index, side="left"))
        hi = int(np.searchsorted(self.date_index, stop_date_index, side="left"))
        return slice(lo, hi)

    def labelled_rows(self, rows: slice | np.ndarray) -> np.ndarray:
        index = np.arange(len(self))[rows] if isinstance(rows, slice) else np.asarray(rows)
        return index[self.labelled[index]]

    def tabular(self, rows: slice | np.ndarray):
        """``models.base.TabularData`` of ``rows`` (sorted by date)."""
        from models.base import TabularData

        return TabularData(
            X=self.features[rows],
            y=self.labels[rows],
            groups=self.date_index[rows],
            horizons=self.horizons,
            target=self.target,
        )

    def sequence(self, rows: slice | np.ndarray, length: int):
        """``models.base.SequenceData`` of ``rows``: the shared panel, no copy."""
        from models.base import SequenceData

        if length > self.sequence_padding + 1:
            raise ValueError(f"sequence length {length} exceeds the panel's padding + 1 ({self.sequence_padding + 1})")
        return SequenceData(
            panel=self.panel,
            end_rows=self.panel_end_rows[rows],
            length=int(length),
            y=self.labels[rows],
            groups=self.date_index[rows],
            horizons=self.horizons,
            target=self.target,
        )

    def sequences(self, rows: slice | np.ndarray, length: int) -> np.ndarray:
        """[len(rows), T, F] float32 sequences of ``rows``."""
        return gather_sequences(self.panel, self.panel_end_rows[rows], length)

    def frame(self, rows: slice | np.ndarray | None = None) -> pd.DataFrame:
        """(date, symbol)-indexed view: label end date and forward returns."""
        rows = slice(None) if rows is None else rows
        date_index = self.date_index[rows]
        end_index = date_index + self.label_span_bars
        end_dates = np.full(len(end_index), np.datetime64("NaT"), dtype="datetime64[ns]")
        inside = end_index < self.n_dates
        end_dates[inside] = self.dates[end_index[inside]]
        frame = pd.DataFrame(
            {
                "date": self.dates[date_index],
                "symbol": self.symbols[self.symbol_index[rows]],
                "label_end": end_dates,
                **{f"fwd_ret_{h}": self.returns[rows, j] for j, h in enumerate(self.horizons)},
            }
        )
        return frame.set_index(["date", "symbol"])


def build_dataset(bars: pd.DataFrame, settings: Settings, *, sequence_length: int = 1, adjust: bool = False) -> Dataset:
    """Features, labels and the sequence panel of ``bars``: a bars table as
    :func:`stream.bars_file.read_bars` returns it (prices already adjusted,
    exactly as replay sends them to the live engine); ``adjust`` scales a
    raw table's OHLC by ``adj_close / close`` first.

    Bars the validator rejects (defects, duplicates) are dropped by the
    feature engine and never used as label prices either. ``sequence_length``
    is the longest sequence any member reads.
    """
    training = settings.training
    horizons = tuple(int(h) for h in training.horizons)
    target = horizons.index(training.label_horizon_bars)
    names = tuple(feature_names(settings.features))

    if adjust and "adj_close" in bars.columns:
        bars = adjust_prices(bars)
    features = compute_features(bars, settings.features, adjust=False, normalize=True)
    if features.empty:
        raise DataError("no usable bars: every bar was rejected or the table is empty")
    counts = dict(features.attrs.get("counts", {}))
    # Windows are row ranges: rows must be in (date, symbol) order.
    features = features.sort_values(["date", "symbol"], kind="stable").reset_index(drop=True)

    closes = _accepted_closes(bars)
    keyed = features[["date", "symbol"]].merge(closes, on=["date", "symbol"], how="left", validate="one_to_one")
    close = keyed["close"].to_numpy(dtype=np.float64)

    dates, date_index = np.unique(features["date"].to_numpy(dtype="datetime64[ns]"), return_inverse=True)
    symbols, symbol_index = np.unique(features["symbol"].astype(str).to_numpy(), return_inverse=True)
    date_index = date_index.astype(np.int64)
    symbol_index = symbol_index.astype(np.int64)

    grid = close_grid(date_index, symbol_index, close, len(dates), len(symbols))
    lag = int(training.label_entry_lag_bars)
    returns = np.column_stack([forward_returns(grid, h, lag)[date_index, symbol_index] for h in horizons])
    labels = np.column_stack(
        [fit_target(returns[:, j], date_index, training.label_transform) for j in range(len(horizons))]
    )
    reversal = reversal_score(grid, training.label_horizon_bars)[date_index, symbol_index]

    matrix = np.array(features[list(names)].to_numpy(dtype=np.float32), copy=True)
    non_finite = ~np.isfinite(matrix) & ~np.isnan(matrix)
    counts["non_finite_feature_values"] = int(non_finite.sum())
    matrix[non_finite] = np.nan  # the engine should not emit inf; never let one reach a model

    padding = max(int(sequence_length) - 1, 0)
    panel, end_rows = sequence_panel(symbol_index, date_index, matrix, padding)
    counts["labelled_rows"] = {str(h): int(np.isfinite(returns[:, j]).sum()) for j, h in enumerate(horizons)}
    return Dataset(
        dates=dates,
        symbols=symbols,
        date_index=date_index,
        symbol_index=symbol_index,
        features=matrix,
        feature_names=names,
        horizons=horizons,
        target=target,
        entry_lag_bars=lag,
        returns=returns,
        labels=labels,
        reversal=reversal,
        panel=panel,
        panel_end_rows=end_rows,
        sequence_padding=padding,
        counts=counts,
    )


def _accepted_closes(bars: pd.DataFrame) -> pd.DataFrame:
    """(date, symbol, close) of the bars the feature engine applies: the
    consistent ones, the first of a duplicated (date, symbol)."""
    prices = {name: bars[name].to_numpy(dtype=np.float64) for name in ("open", "high", "low", "close")}
    volume = bars["volume"].to_numpy(dtype=np.float64)
    codes = bar_defect_codes(prices["open"], prices["high"], prices["low"], prices["close"], volume)
    dates = pd.to_datetime(bars["date"]) if "date" in bars.columns else pd.to_datetime(bars["ts"], unit="ms")
    table = pd.DataFrame({"date": dates.to_numpy(), "symbol": bars["symbol"].astype(str).to_numpy(), "close": prices["close"]})
    table = table[codes == 0]
    return table.drop_duplicates(["date", "symbol"], keep="first")
