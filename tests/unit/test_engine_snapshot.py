"""The engine's snapshot is a journal over a base: restoring the base and
replaying the journal gives the state of an uninterrupted run, bit for bit."""

from __future__ import annotations

import msgspec
import numpy as np
import pytest

from signalml.config import load_settings
from signalml.contracts import Bar, ManifestMember, ModelSetManifest, ReferenceBins, schema_hash
from stream.barrier import CrossSection
from bench.e2e import synthetic_bars
from stream.engine import Engine
from stream.model_set import ModelSet
from tests.conftest import REPO


def cross_sections(n_symbols: int, n_times: int, seed: int) -> list[CrossSection]:
    frame = synthetic_bars(n_symbols, n_times, seed=seed)
    out = []
    for ts, group in frame.groupby("ts", sort=True):
        bars = tuple(Bar(symbol=r.symbol, ts=int(ts), open=r.open, high=r.high, low=r.low, close=r.close,
                         volume=r.volume) for r in group.itertuples())
        out.append(CrossSection(ts=int(ts), bars=bars, reason="complete"))
    return out


@pytest.fixture(scope="module")
def settings():
    return load_settings(REPO / "signalml.yaml")


def feed(engine: Engine, sections: list[CrossSection]) -> list[np.ndarray]:
    return [engine.pipeline.prepare(xs).features for xs in sections]


def late_bar(xs: CrossSection) -> Bar:
    bar = xs.bars[0]
    return Bar(symbol=bar.symbol, ts=xs.ts + 1, open=bar.open, high=bar.high * 1.01, low=bar.low,
               close=bar.close, volume=bar.volume)


@pytest.mark.parametrize("base_after", [0, 7, 25])
def test_base_plus_journal_restores_the_uninterrupted_state_bit_for_bit(settings, base_after):
    sections = cross_sections(60, 40, seed=base_after)
    live = Engine(settings)
    feed(live, sections[:base_after])
    base = live.base_snapshot() if base_after else None
    feed(live, sections[base_after:30])
    live.pipeline.apply_late(late_bar(sections[29]))
    tip = live.snapshot()

    restored = Engine(settings)
    restored.restore(tip, base)

    assert msgspec.msgpack.encode(restored.pipeline.state()) == msgspec.msgpack.encode(live.pipeline.state())
    assert restored.pipeline.bar_times == live.pipeline.bar_times == 30
    for a, b in zip(feed(live, sections[30:]), feed(restored, sections[30:])):
        np.testing.assert_array_equal(a, b)


def test_the_journal_restarts_at_each_base_and_is_empty_after_one(settings):
    sections = cross_sections(20, 12, seed=1)
    engine = Engine(settings)
    feed(engine, sections[:5])
    assert len(engine.pipeline.journal) == 5
    engine.base_snapshot()
    assert engine.pipeline.journal == [] and engine.base_seq == 1
    feed(engine, sections[5:7])
    assert [event[1] for event in engine.pipeline.journal] == [sections[5].ts, sections[6].ts]


def test_a_snapshot_whose_base_is_missing_or_another_is_refused(settings):
    sections = cross_sections(20, 12, seed=2)
    engine = Engine(settings)
    feed(engine, sections[:3])
    first = engine.base_snapshot()
    feed(engine, sections[3:6])
    engine.base_snapshot()
    tip = engine.snapshot()
    with pytest.raises(ValueError, match="base 2, which is missing"):
        Engine(settings).restore(tip, None)
    with pytest.raises(ValueError, match="base 2, found 1"):
        Engine(settings).restore(tip, first)


def test_a_snapshot_of_another_format_is_refused_with_its_version(settings):
    with pytest.raises(ValueError, match="version 1 is not 2"):
        Engine(settings).restore(msgspec.msgpack.encode({"version": 1}))
    with pytest.raises(ValueError, match="not msgpack"):
        Engine(settings).restore(b"\xc1not msgpack")


def test_only_a_journaled_pipeline_keeps_its_inputs(settings):
    from stream.pipeline import CrossSectionPipeline

    sections = cross_sections(20, 6, seed=3)
    batch, engine = CrossSectionPipeline(settings), Engine(settings)
    for xs in sections:
        batch.prepare(xs)
    feed(engine, sections)
    assert batch.journal == [] and len(engine.pipeline.journal) == len(sections)


def test_a_base_larger_than_a_record_is_written_in_parts_that_join_back_to_it(monkeypatch):
    import stream.checkpoint as checkpoint

    monkeypatch.setattr(checkpoint, "BASE_PART_BYTES", 1000)
    blob = bytes(range(256)) * 20  # 5,120 bytes: six parts
    parts = checkpoint.base_parts(7, blob)
    assert len(parts) == 6 and all(len(msgspec.msgpack.decode(p)["data"]) <= 1000 for p in parts)
    records = {checkpoint.base_part_key("e", i): p for i, p in enumerate(parts)}
    monkeypatch.setattr(checkpoint, "latest_records", lambda _s, keys, **_k: {k: records[k] for k in keys if k in records})
    assert checkpoint.read_base(None, "e", 7, 6) == blob
    assert checkpoint.read_base(None, "e", 8, 6) is None  # parts of another base
    del records[checkpoint.base_part_key("e", 3)]
    assert checkpoint.read_base(None, "e", 7, 6) is None  # a part missing


def drifting_model_set(names: list[str]) -> ModelSet:
    """A one-member (``lightgbm``, tabular) model set whose drift reference
    puts 99 % of every feature below 0: normalised live features are about
    half above, so its feature-drift window raises events."""
    reference = {name: ReferenceBins([-1.0, 0.0, 1.0], [0.99, 0.01]) for name in names}
    manifest = ModelSetManifest(model_set="ms-20260101000000-0123abcd", created_at=0,
                                members=[ManifestMember("lightgbm", 1, "lightgbm", "tabular")],
                                ensemble_method="average", feature_names=names,
                                feature_schema_hash=schema_hash(names), horizon_bars=5,
                                drift_reference=reference)
    return ModelSet.of(manifest, names)


def test_a_rewind_in_place_goes_on_with_the_inline_drift_window_of_the_set_in_service(settings):
    """A rewind (Triton or Kafka away) keeps the model set in service; its
    feature-drift window must continue from the snapshot as it would have
    continued without the rewind, and keep raising events."""
    engine = Engine(settings)
    engine.next_set = drifting_model_set(engine.pipeline.names)
    engine._switch_if_ready()
    manifest = engine.model_set.manifest
    sections = cross_sections(40, 30, seed=5)
    for xs in sections[:12]:
        engine.drift.update(xs.ts, engine.pipeline.prepare(xs).features)
    tip, window = engine.snapshot(), engine.drift.state()
    assert window["bars"] == 12

    engine.restore(tip)

    assert engine.drift is not None and engine.drift.state() == window
    events = [e for xs in sections[12:] for e in engine.drift.update(xs.ts, engine.pipeline.prepare(xs).features)]
    assert events and {e.model_set for e in events} == {manifest.model_set}
