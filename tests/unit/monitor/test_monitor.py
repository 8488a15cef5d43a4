"""The drift monitor in-process, on the engine's cross-section records:
planted signal flips, stable streams, score drift, restarts at any table
write, champion and challenger interleaved, with no broker."""

from __future__ import annotations

import json
import random

import msgspec
import numpy as np
import pytest

from signalml.config import MonitorSettings
from stream.monitor import DriftMonitor
from tests.unit.monitor.synthetic import DAY_MS, START_MS, RecordTopic, manifest, market, records

FLIP = 200
HORIZON = 5
DETECTION_BARS = 15  # stated bound: ic_decay within this many bar times of the flip (signal time)


def new_monitor(store=None, topic: RecordTopic | None = None, with_manifest: bool = True) -> DriftMonitor:
    monitor = DriftMonitor(MonitorSettings(), {} if store is None else store, default_horizon_bars=HORIZON,
                           fetch=topic.fetch if topic is not None else (lambda offsets: {}))
    if with_manifest:
        monitor.on_manifest(manifest())
    return monitor


def topic_of(**market_args) -> RecordTopic:
    return RecordTopic(records(market(**market_args)))


def bar_time(event) -> int:
    return (event.ts - START_MS) // DAY_MS


def keyed(events) -> dict:
    out = {}
    for event in events:
        assert out.get(event.key(), event) == event, "one key, two different events"
        out[event.key()] = event
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_planted_signal_that_flips_sign_yields_ic_decay_within_the_stated_bars(seed):
    events = topic_of(n_bars=320, flip_at=FLIP, seed=seed).feed(new_monitor())
    assert [e for e in events if bar_time(e) < FLIP] == [], "no finding before the flip"
    decay = [e for e in events if e.kind == "ic_decay" and e.subject == "ensemble"]
    assert decay and FLIP <= bar_time(decay[0]) < FLIP + DETECTION_BARS
    assert decay[0].severity == "warning" and decay[0].statistic < decay[0].threshold
    critical = [e for e in decay if e.severity == "critical"]
    assert critical and bar_time(critical[0]) < FLIP + DETECTION_BARS
    assert all(e.model_set == manifest().model_set for e in events)
    # Page-Hinkley on the IC series sees the fall too.
    assert any(e.kind == "page_hinkley" and e.subject == "ic:ensemble" for e in events)


def test_a_stable_stream_raises_no_alarm_over_3000_bar_times():
    monitor = new_monitor()
    events = topic_of(n_bars=3000, seed=7).feed(monitor, batch=64)
    assert events == []
    assert monitor.counts["released"] == 3000 - HORIZON
    report = monitor.report()["roles"]["champion"]
    assert report["rolling_rank_ic"]["ensemble"] > 0.15


def test_the_rank_ic_is_scipys_on_the_bars_and_signals():
    """Independently from the definition: each symbol's return from its close
    at t to its close h bars later, Spearman's rho per bar time (scipy)."""
    import pandas as pd
    from scipy.stats import spearmanr

    messages = market(n_bars=60, seed=3, warmup_bars=4)
    seen = {}
    monitor = DriftMonitor(MonitorSettings(), {}, default_horizon_bars=HORIZON,
                           on_release=lambda xs, analyzer, events: seen.update(
                               {xs.ts: {n: s.last_ic for n, s in analyzer.subjects.items()}}))
    RecordTopic(records(messages)).feed(monitor)
    bars = pd.DataFrame([(m.value.symbol, m.value.ts, m.value.close) for m in messages if m.kind == "bar"],
                        columns=["symbol", "ts", "close"]).sort_values(["symbol", "ts"])
    bars["forward"] = bars.groupby("symbol")["close"].shift(-HORIZON) / bars["close"] - 1.0
    signals = pd.DataFrame([{"symbol": m.value.symbol, "ts": m.value.ts, "ensemble": m.value.score, **m.value.members}
                            for m in messages if m.kind == "signal"])
    joined = signals.merge(bars, on=["symbol", "ts"]).dropna(subset=["forward"])
    assert sorted(seen) == sorted(joined["ts"].unique()) and len(seen) == 60 - 4 - HORIZON
    for ts, group in joined.groupby("ts"):
        for subject in ("ensemble", "lgbm", "xgb"):
            assert seen[ts][subject] == pytest.approx(spearmanr(group[subject], group["forward"]).statistic, abs=1e-12)


def test_a_symbol_without_a_bar_h_bar_times_later_has_no_return_and_is_counted_as_given_up():
    values = records(market(n_bars=20, seed=5))
    gap = values[2 + HORIZON]
    values[2 + HORIZON] = msgspec.structs.replace(gap, symbols=gap.symbols[1:], closes=gap.closes[1:],
                                                  score=gap.score[1:], members={k: v[1:] for k, v in gap.members.items()})
    released = {}
    monitor = DriftMonitor(MonitorSettings(), {}, default_horizon_bars=HORIZON,
                           on_release=lambda xs, analyzer, events: released.update({xs.ts: xs}))
    RecordTopic(values).feed(monitor)
    assert monitor.counts["returns_given_up"] == 1
    missing = released[values[2].ts]
    assert np.isnan(missing.returns[0]) and np.isfinite(missing.returns[1:]).all()
    expected = values[2 + HORIZON].closes[0] / values[2].closes[1] - 1.0
    assert missing.returns[1] == pytest.approx(expected)


def test_a_shifted_member_score_yields_score_psi_naming_that_member_only():
    events = topic_of(n_bars=120, shift_member_at=60, seed=3).feed(new_monitor())
    psi = [e for e in events if e.kind == "score_psi"]
    assert psi and {e.subject for e in psi} == {"xgb"}
    assert all(bar_time(e) >= 60 for e in psi) and psi[0].severity == "critical"


def test_without_a_manifest_decay_is_measured_against_the_first_window():
    events = topic_of(n_bars=320, flip_at=FLIP, seed=0).feed(new_monitor(with_manifest=False))
    decay = [e for e in events if e.kind == "ic_decay" and e.subject == "ensemble"]
    assert decay and FLIP <= bar_time(decay[0]) < FLIP + DETECTION_BARS
    assert not any(e.kind == "score_psi" for e in events)


@pytest.mark.parametrize("cut", [15, 143, 250])
def test_a_restart_mid_stream_replaying_uncommitted_input_gives_the_uninterrupted_runs_events(cut):
    topic = topic_of(n_bars=320, flip_at=FLIP, seed=1)
    reference = keyed(topic.feed(new_monitor()))
    assert reference
    first = new_monitor(topic=topic)
    events = topic.feed(first, stop=cut)
    # The crash: the table holds what was committed; Kafka redelivers the
    # records after the last committed offset (here, the last 40), and the
    # window's records are read back from the topic.
    second = new_monitor(dict(first.store), topic)
    events += topic.feed(second, start=max(0, cut - 40))
    assert keyed(events) == reference
    assert second.counts["replayed_records"] == min(cut, 40)


def test_events_sent_but_not_committed_are_sent_again_with_the_same_keys():
    topic = topic_of(n_bars=320, flip_at=FLIP, seed=1)
    reference = keyed(topic.feed(new_monitor()))
    crashed = new_monitor(topic=topic)
    sent = []
    for offset in range(len(topic)):
        sent += crashed.on_cross_section(topic.fetch([offset])[offset], offset)
        if sent and sent[-1].kind == "ic_decay":
            break  # delivered, then the process died before commit()
        crashed.commit()
    resumed = new_monitor(dict(crashed.store), topic)
    sent += topic.feed(resumed, start=offset - 10)
    assert keyed(sent) == reference


def test_champion_and_challenger_are_monitored_apart_however_their_records_interleave():
    champion = records(market(n_bars=200, flip_at=120, seed=4))
    challenger = records(market(n_bars=200, seed=8, model_set="ms-20260102000000-0000cafe"), role="challenger")
    alone = {role: keyed(RecordTopic(values).feed(new_monitor()))
             for role, values in (("champion", champion), ("challenger", challenger))}
    for seed in range(3):
        rng = random.Random(seed)
        a, b, mixed = list(champion), list(challenger), []
        while a or b:
            source = a if (a and (not b or rng.random() < 0.5)) else b
            n = rng.randint(1, 30)
            mixed += source[:n]
            del source[:n]
        monitor = new_monitor()
        both = keyed(RecordTopic(mixed).feed(monitor))
        assert both == {**alone["champion"], **alone["challenger"]}
        report = monitor.report()["roles"]
        assert report["champion"]["bar_times"] == report["challenger"]["bar_times"] == 200 - HORIZON
        assert report["challenger"]["model_set"] == "ms-20260102000000-0000cafe"


class ChangelogStore(dict):
    """A dict that logs every write in order, as a table's changelog does."""

    def __init__(self):
        super().__init__()
        self.log: list[tuple[str, str | None]] = []  # (key, JSON value or None for a delete)

    def __setitem__(self, key, value):
        super().__setitem__(key, value)
        self.log.append((key, json.dumps(value)))

    def pop(self, key, *default):
        self.log.append((key, None))
        return super().pop(key, *default)


def recovered(log) -> dict:
    """What a worker recovers from the first writes of a changelog (JSON, as Faust stores them)."""
    store = {}
    for key, value in log:
        if value is None:
            store.pop(key, None)
        else:
            store[key] = json.loads(value)
    return store


def test_a_kill_between_any_two_table_writes_then_a_replay_gives_the_uninterrupted_runs_events():
    """The app's order per batch: events delivered, then the commit records
    written; the kill leaves a prefix of the changelog and a committed
    offset at or before the batch in progress (never after)."""
    values = records(market(n_bars=240, flip_at=150, seed=2)) + records(
        market(n_bars=240, seed=9, model_set="ms-20260102000000-0000cafe"), role="challenger")
    rng = random.Random(1)
    order = list(range(len(values)))
    rng.shuffle(order)
    # Interleave the roles but keep each role's own order.
    champion = [v for v in values if v.role == "champion"]
    challenger = [v for v in values if v.role == "challenger"]
    n_champion = len(champion)
    values = [(champion if i < n_champion else challenger).pop(0) for i in order]
    topic = RecordTopic(values)
    uninterrupted = new_monitor()
    reference = keyed(topic.feed(uninterrupted))
    store = ChangelogStore()
    first = new_monitor(store, topic)
    batch, writes_at, events_of = 5, [], []
    for start in range(0, len(topic), batch):
        events_of.append(topic.feed(first, start, min(start + batch, len(topic)), batch=batch))
        writes_at.append(len(store.log))  # the batch's writes end here
    kills = sorted(rng.sample(range(1, len(store.log)), 12) + [len(store.log) - 1])
    for kill in kills:
        in_progress = next(i for i, n in enumerate(writes_at) if n >= kill)
        delivered = [e for i in range(in_progress + 1) for e in events_of[i]]  # its events were out
        for lag in (0, 3):
            second = new_monitor(recovered(store.log[:kill]), topic)
            replayed = topic.feed(second, start=max(0, in_progress - lag) * batch)
            assert keyed(delivered + replayed) == reference, (kill, lag)
            assert second.released == uninterrupted.released, (kill, lag)
            for role in ("champion", "challenger"):
                assert second.analyzers[role].state() == uninterrupted.analyzers[role].state(), (kill, lag)


def test_a_status_read_before_the_table_is_recovered_does_not_load_the_monitor_from_a_partial_store():
    topic = topic_of(n_bars=240, flip_at=150, seed=2)
    reference = keyed(topic.feed(new_monitor()))
    first = new_monitor(topic=topic)
    delivered = topic.feed(first, stop=150)
    table = {}  # Faust serves the status page while the table is still being recovered
    second = new_monitor(table, topic, with_manifest=False)
    assert second.report()["ready"] is False
    table.update(json.loads(json.dumps(first.store)))
    second.load()  # the end of recovery
    assert second.report()["ready"] is True
    assert keyed(delivered + topic.feed(second, start=140)) == reference
