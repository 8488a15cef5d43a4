"""One closed cross-section → features → normalisation → sequences → member
scores → ensemble → signals. The stateful parts (feature engine, sequence
buffer) are owned here; scoring is a callable so the same pipeline serves the
engine (Triton) and offline checks.

The features a model sees are built exactly as training builds them: the
feature engine's values of every symbol of the bar time, normalised across
those symbols (:func:`stream.features.normalize.normalize_cross_section`),
as float32; sequences are each symbol's last ``T`` such rows
(:class:`~stream.sequence_buffer.SequenceBuffer`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from signalml.config import Settings
from signalml.contracts import Bar, Signal
from stream.barrier import CrossSection
from stream.features import FeatureEngine, feature_names
from stream.features.codec import array_bytes
from stream.features.normalize import normalize_cross_section
from stream.model_set import ModelSet
from stream.sequence_buffer import SequenceBuffer
from stream.signals import build_signals

# (model set, tabular [N, F] float32, sequences [N, T, F] float32 | None) → {member: [N]}
Scorer = Callable[[ModelSet, np.ndarray, "np.ndarray | None"], dict[str, np.ndarray]]

SNAPSHOT_VERSION = 1


def sequence_capacity(settings: Settings) -> int:
    """Rows kept per symbol: the longest sequence an enabled model reads."""
    lengths = [settings.features.sequence_length]
    if settings.models.lstm.enabled:
        lengths.append(settings.models.lstm.sequence_length)
    if settings.models.tft.enabled:
        lengths.append(settings.models.tft.sequence_length)
    return max(lengths)


def compile_ahead(settings: Settings) -> float:
    """Run every compiled feature loop of ``settings``' features once, on a
    throwaway pipeline and made-up bars, so that the engine's first bar does
    not wait for numba. A loop is compiled once per layout of its arguments,
    and the layouts depend on the bars: a cross-section's columns are a
    strided view, a replayed journal's are read-only; the rows a
    cross-section updates are a view of the state when its symbols are
    contiguous rows and a copy when one is missing; a single bar (a late
    one) takes its own path. All of these are run. With numba's cache on
    disk (``__pycache__``) this loads the machine code; on a fresh install
    it compiles it (seconds). Returns the seconds it took."""
    started = time.perf_counter()
    pipeline = CrossSectionPipeline(settings, journaled=True)
    symbols = ("COMPILE_A", "COMPILE_B", "COMPILE_C")
    for t in range(1, 5):
        close = 100.0 + t
        bars = tuple(Bar(s, 60_000 * t, close, close + 1.0, close - 1.0, close + 0.5, 1000.0 + j)
                     for j, s in enumerate(symbols) if not (t == 2 and j == 1))  # B missing: rows not contiguous
        pipeline.prepare(CrossSection(60_000 * t, bars, "complete"))
        if t == 2:  # B's bar of t=2 comes late
            pipeline.apply_late(Bar(symbols[1], 120_000, 100.0, 101.0, 99.0, 100.5, 1000.0))
    CrossSectionPipeline(settings, journaled=True).restore(None, pipeline.journal)
    return time.perf_counter() - started


@dataclass
class Prepared:
    """A cross-section's model inputs."""

    ts: int
    symbols: list[str]
    features: np.ndarray  # float32 [N, F], normalised
    stage_s: dict[str, float] = field(default_factory=dict)
    raw: np.ndarray | None = None  # float64 [N, F]: the feature engine's values, before normalisation


class CrossSectionPipeline:
    def __init__(self, settings: Settings, *, journaled: bool = False):
        """``journaled``: keep :attr:`journal` (the engine's snapshots need
        it; a batch run such as ``predict`` does not)."""
        self.settings = settings
        self.names = list(feature_names(settings.features))
        self.features = FeatureEngine(settings.features)
        self.sequences = SequenceBuffer(sequence_capacity(settings), len(self.names))
        self.bar_times = 0
        self.journaled = journaled
        self.journal: list = []  # inputs applied since the last base, see state()

    # ---------------------------------------------------------------- steps

    def prepare(self, xs: CrossSection) -> Prepared:
        """Update the state with the bars of ``xs`` and build the inputs."""
        symbols = [b.symbol for b in xs.bars]
        columns = np.array([(b.open, b.high, b.low, b.close, b.volume) for b in xs.bars], dtype=np.float64).T
        if self.journaled:
            self.journal.append(["xs", xs.ts, symbols, columns.tobytes()])
        return self._apply(xs.ts, symbols, columns)

    def _apply(self, ts: int, symbols: list[str], columns: np.ndarray) -> Prepared:
        started = time.perf_counter()
        frame = self.features.update(ts, np.array(symbols, dtype=str), *columns)
        after_features = time.perf_counter()
        accepted = frame.accepted
        if not accepted.all():  # the validator upstream makes this rare (e.g. a bar replayed twice)
            symbols = [s for s, ok in zip(symbols, accepted) if ok]
        values = frame.values[accepted]
        f = self.settings.features
        normalised = normalize_cross_section(values, f.normalization, f.clip_z).astype(np.float32)
        self.sequences.update(symbols, normalised)
        self.bar_times += 1
        done = time.perf_counter()
        return Prepared(ts, symbols, normalised,
                        {"features": after_features - started, "normalize": done - after_features}, raw=values)

    def apply_late(self, bar) -> None:
        """A late bar updates its symbol's features (not scored, not sequenced)."""
        values = [bar.open, bar.high, bar.low, bar.close, bar.volume]
        if self.journaled:
            self.journal.append(["late", bar.ts, bar.symbol, values])
        self._apply_late(bar.symbol, bar.ts, values)

    def _apply_late(self, symbol: str, ts: int, values: list[float]) -> None:
        self.features.update_bar(symbol, ts, *values)

    def score(self, prepared: Prepared, model_set: ModelSet, scorer: Scorer) -> list[Signal]:
        """Member scores through ``scorer``, the ensemble, the signals."""
        sequences = self.sequence_inputs(prepared, model_set)
        started = time.perf_counter()
        member_scores = scorer(model_set, prepared.features, sequences)
        prepared.stage_s["inference"] = time.perf_counter() - started
        return self.signals(prepared, model_set, member_scores)

    def sequence_inputs(self, prepared: Prepared, model_set: ModelSet) -> np.ndarray | None:
        """The sequences ``model_set`` reads for ``prepared`` (None if it reads
        none). Take them before the next :meth:`prepare` moves the buffer on."""
        if not model_set.needs_sequences:
            return None
        length = model_set.manifest.sequence_length
        return self.sequences.windows(prepared.symbols)[:, -length:, :]

    @staticmethod
    def signals(prepared: Prepared, model_set: ModelSet, member_scores: dict[str, np.ndarray]) -> list[Signal]:
        """The ensemble of ``member_scores`` and the signals of ``prepared``."""
        started = time.perf_counter()
        combined = model_set.combine(member_scores)
        signals = build_signals(prepared.ts, prepared.symbols, combined, member_scores,
                                model_set.id, model_set.manifest.horizon_bars)
        prepared.stage_s["ensemble"] = time.perf_counter() - started
        return signals

    # ---------------------------------------------------------------- snapshot
    #
    # The full state is a few MB at 500 symbols (feature windows, sequence
    # buffers), too much to write with every transaction. So the engine
    # writes it now and then as a *base*, and each transaction carries the
    # *journal*: the inputs applied since that base, a few tens of kB per bar
    # time. Restoring is the base plus the journal replayed, which rebuilds
    # the state bit for bit since every step is deterministic.

    def state(self) -> dict:
        """The full state (a base); :attr:`journal` holds what came after it."""
        return {
            "version": SNAPSHOT_VERSION,
            "features": self.features.state(),
            "sequences": self.sequences.state(),
            "bar_times": self.bar_times,
        }

    def rebase(self) -> dict:
        """The full state, which the journal from now on continues."""
        state = self.state()
        self.journal = []
        return state

    def restore(self, state: dict | None, journal: list | None = None) -> None:
        """Back to ``state`` (None: the initial state), then replay ``journal``."""
        if state is not None:
            if state.get("version") != SNAPSHOT_VERSION:
                raise ValueError(f"unknown pipeline snapshot version {state.get('version')!r}")
            self.features = FeatureEngine.from_state(state["features"])
            sequences = SequenceBuffer.from_state(state["sequences"])
            if (sequences.length, sequences.n_features) != (self.sequences.length, self.sequences.n_features):
                raise ValueError("the snapshot's sequence buffer does not match the configuration")
            self.sequences = sequences
            self.bar_times = int(state["bar_times"])
        for event in journal or []:
            if event[0] == "xs":
                _, ts, symbols, raw = event
                columns = np.frombuffer(array_bytes(raw), dtype=np.float64).reshape(5, len(symbols))
                self._apply(int(ts), list(symbols), columns)
            elif event[0] == "late":
                _, ts, symbol, values = event
                self._apply_late(symbol, int(ts), [float(v) for v in values])
            else:
                raise ValueError(f"unknown pipeline journal event {event[0]!r}")
        self.journal = list(journal or [])
