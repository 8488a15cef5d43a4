"""``signalml predict``: score a bars file with a published model set,
through the engine's own code.

The file is read as ``replay`` reads it (:func:`stream.bars_file.read_bars`);
every row is checked by the engine's validator
(:class:`~stream.decode.BarValidator`) on the exact bytes replay would
publish, and each rejected row is counted by reason. The valid bars of each
bar time form one cross-section, as the engine's barrier assembles them from
a replayed file. Each cross-section goes through a
:class:`~stream.pipeline.CrossSectionPipeline` (features, cross-sectional
normalisation, sequences) and, past the engine's warm-up
(``serving.warmup_bars`` bar times), is scored by the model set's members in
Triton through the engine's client and combined by the set's ensemble into
:class:`~signalml.contracts.Signal` rows. The output therefore equals the
signals the engine publishes for the same bars and model set.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import msgspec
import numpy as np
import pandas as pd

from models.publish import ModelSetStore, current_manifest
from signalml.config import Settings
from signalml.contracts import Bar, ModelSetManifest, Signal
from signalml.errors import SignalMLError
from stream.barrier import CrossSection
from stream.bars_file import read_bars
from stream.decode import BarValidator, Rejection
from stream.inference.errors import InferenceError, ModelNotReady
from stream.model_set import ModelSet
from stream.pipeline import CrossSectionPipeline, Scorer
from stream.replay import encode_bars

OUTPUT_FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}

# Given the number of bar times, returns the function that advances the progress by n.
Progress = Callable[[int], Callable[[int], None]]


class PredictError(SignalMLError):
    """``predict`` cannot run: no such model set, not served, bad output path."""


@dataclass
class PredictSummary:
    """What a predict run did."""

    bars_file: str
    out: str
    model_set: str
    rows: int = 0
    accepted: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    bar_times: int = 0
    scored_bar_times: int = 0
    signals: int = 0
    elapsed_s: float = 0.0

    def as_dict(self) -> dict:
        return {
            "bars": self.bars_file,
            "out": self.out,
            "model_set": self.model_set,
            "rows": self.rows,
            "accepted": self.accepted,
            "rejected": sum(self.rejected.values()),
            "rejected_by_reason": dict(sorted(self.rejected.items())),
            "bar_times": self.bar_times,
            "warmup_bar_times": self.bar_times - self.scored_bar_times,
            "scored_bar_times": self.scored_bar_times,
            "signals": self.signals,
            "elapsed_s": round(self.elapsed_s, 3),
        }


# ---------------------------------------------------------------- model set


def resolve_manifest(settings: Settings, model_set: str | None = None) -> ModelSetManifest:
    """The manifest of ``model_set`` from the repository's model-set store,
    or the current one."""
    store = ModelSetStore(settings.triton_repository)
    if model_set is None:
        manifest = current_manifest(settings)
        if manifest is None:
            raise PredictError(f"no model set is published to {settings.triton_repository}: "
                               "run `signalml publish DIR` first, or pass --model-set ID")
        return manifest
    try:
        return store.read(model_set)
    except (FileNotFoundError, ValueError) as exc:
        available = store.ids()
        listed = ", ".join(available) if available else "none"
        raise PredictError(f"--model-set {model_set}: {exc}; stored model sets: {listed}") from None


def require_served(client, manifest: ModelSetManifest, url: str) -> None:
    """Every member's pinned version is loaded in Triton, or a
    :class:`PredictError` that names the missing ones."""
    missing = []
    for member in manifest.members:
        try:
            ready = client.ready(msgspec.structs.replace(manifest, members=[member]))[member.name]
        except ModelNotReady:
            ready = False
        except InferenceError as exc:
            raise PredictError(f"Triton at {url} cannot be asked about model set {manifest.model_set}: {exc} "
                               "(is it running? `signalml up`)") from None
        if not ready:
            missing.append(f"{member.name} version {member.version}")
    if missing:
        raise PredictError(f"model set {manifest.model_set} is not loaded in Triton at {url}: "
                           f"{', '.join(missing)} not ready (publish it, or `signalml publish --rollback` to it)")


# ---------------------------------------------------------------- bars


def validated_cross_sections(frame: pd.DataFrame, summary: PredictSummary) -> list[CrossSection]:
    """The cross-sections of the valid bars of ``frame`` (from
    :func:`read_bars`), in bar-time order; rejects are counted in ``summary``."""
    validator = BarValidator()
    by_ts: dict[int, list[Bar]] = {}
    for payload in encode_bars(frame):
        result = validator.validate(payload)
        if isinstance(result, Rejection):
            summary.rejected[result.reason] += 1
        else:
            by_ts.setdefault(result.ts, []).append(result)
    summary.rows = len(frame)
    summary.accepted = validator.accepted
    # The barrier keeps the bars of a bar time sorted by symbol.
    return [CrossSection(ts, tuple(sorted(by_ts[ts], key=lambda b: b.symbol)), "flush") for ts in sorted(by_ts)]


def score_cross_sections(
    settings: Settings,
    sections: Sequence[CrossSection],
    model_set: ModelSet,
    scorer: Scorer,
    *,
    advance: Callable[[int], None] | None = None,
) -> Iterator[list[Signal]]:
    """The signals of each scored cross-section, exactly as the engine's
    ``_process`` builds them: one pipeline, scoring once more bar times than
    ``serving.warmup_bars`` have been prepared."""
    pipeline = CrossSectionPipeline(settings)
    warmup = settings.serving.warmup_bars
    for xs in sections:
        prepared = pipeline.prepare(xs)
        if pipeline.bar_times > warmup and prepared.symbols:
            try:
                yield pipeline.score(prepared, model_set, scorer)
            except InferenceError as exc:
                raise PredictError(f"scoring bar time {xs.ts} failed: {exc}") from exc
        if advance is not None:
            advance(1)


# ---------------------------------------------------------------- output


def signals_frame(signals: list[Signal], members: Sequence[str]) -> pd.DataFrame:
    """One row per signal: ts, symbol, score, rank, ``member_<name>`` per
    member, model_set, cross_section_size, horizon_bars."""
    columns: dict[str, object] = {
        "ts": np.array([s.ts for s in signals], dtype=np.int64),
        "symbol": [s.symbol for s in signals],
        "score": np.array([s.score for s in signals], dtype=np.float64),
        "rank": np.array([s.rank for s in signals], dtype=np.float64),
    }
    for name in members:
        columns[f"member_{name}"] = np.array([s.members[name] for s in signals], dtype=np.float64)
    columns["model_set"] = [s.model_set for s in signals]
    columns["cross_section_size"] = np.array([s.cross_section_size for s in signals], dtype=np.int64)
    columns["horizon_bars"] = np.array([s.horizon_bars for s in signals], dtype=np.int64)
    return pd.DataFrame(columns)


def output_format(path: Path) -> str:
    fmt = OUTPUT_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise PredictError(f"--out {path}: unknown format {path.suffix!r}; use .parquet or .csv")
    return fmt


def write_frame(frame: pd.DataFrame, path: Path) -> None:
    fmt = output_format(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if fmt == "parquet":
            frame.to_parquet(path, index=False)
        else:
            frame.to_csv(path, index=False)
    except OSError as exc:
        raise PredictError(f"--out {path}: cannot write: {exc}") from None


# ---------------------------------------------------------------- the command


def predict(
    settings: Settings,
    bars_path: str | Path,
    out_path: str | Path,
    *,
    model_set: str | None = None,
    symbols: Sequence[str] | None = None,
    start: str | None = None,
    end: str | None = None,
    progress: Progress | None = None,
    client=None,
) -> PredictSummary:
    """Score ``bars_path`` with ``model_set`` (default: the current one) and
    write the signals to ``out_path`` (.parquet or .csv). ``client`` is a
    :class:`~stream.inference.sync.SyncInferenceClient` (default: one from
    the settings, closed at the end)."""
    from stream.inference.sync import SyncInferenceClient

    started = time.perf_counter()
    out = Path(out_path)
    output_format(out)  # a bad path fails before any work
    manifest = resolve_manifest(settings, model_set)
    pipeline_names = CrossSectionPipeline(settings).names
    try:
        served = ModelSet.of(manifest, pipeline_names)
    except ValueError as exc:
        raise PredictError(f"model set {manifest.model_set} cannot score these features: {exc}") from None
    frame = read_bars(bars_path, symbols=symbols, start=start, end=end)
    summary = PredictSummary(str(bars_path), str(out), manifest.model_set)
    sections = validated_cross_sections(frame, summary)
    summary.bar_times = len(sections)

    own_client = client is None
    if own_client:
        client = SyncInferenceClient.from_settings(settings)
    try:
        require_served(client, manifest, settings.triton.grpc_url)
        signals: list[Signal] = []
        advance = progress(len(sections)) if progress is not None else None
        for scored in score_cross_sections(settings, sections, served,
                                           lambda ms, x, seq: client.score(ms.manifest, x, seq), advance=advance):
            signals.extend(scored)
            summary.scored_bar_times += 1
    finally:
        if own_client:
            client.close()
    summary.signals = len(signals)
    write_frame(signals_frame(signals, [m.name for m in manifest.members]), out)
    summary.elapsed_s = time.perf_counter() - started
    return summary
