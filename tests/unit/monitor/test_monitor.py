"""The drift monitor in-process: planted signal flips, stable streams,
score drift, restarts and partition interleavings, with no broker."""

from __future__ import annotations

import json
import random

import pytest

from signalml.config import MonitorSettings
from stream.monitor import DriftMonitor
from tests.unit.monitor.synthetic import DAY_MS, START_MS, feed, manifest, market

FLIP = 200
HORIZON = 5
DETECTION_BARS = 15  # stated bound: ic_decay within this many bar times of the flip (signal time)


def new_monitor(store=None, **settings) -> DriftMonitor:
    monitor = DriftMonitor(MonitorSettings(**settings), {} if store is None else store, default_horizon_bars=HORIZON, bars_partitions=4)
    monitor.on_manifest(manifest())
    return monitor


def bar_time(event) -> int:
    return (event.ts - START_MS) // DAY_MS


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_planted_signal_that_flips_sign_yields_ic_decay_within_the_stated_bars(seed):
    events = feed(new_monitor(), market(n_bars=320, flip_at=FLIP, seed=seed))
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
    events = feed(monitor, market(n_bars=3000, seed=7))
    assert events == []
    assert monitor.counts["released"] == 3000 - HORIZON
    report = monitor.report()["roles"]["champion"]
    assert report["rolling_rank_ic"]["ensemble"] > 0.15


def test_a_shifted_member_score_yields_score_psi_naming_that_member_only():
    events = feed(new_monitor(), market(n_bars=120, shift_member_at=60, seed=3))
    psi = [e for e in events if e.kind == "score_psi"]
    assert psi and {e.subject for e in psi} == {"xgb"}
    assert all(bar_time(e) >= 60 for e in psi) and psi[0].severity == "critical"


def test_without_a_manifest_decay_is_measured_against_the_first_window():
    monitor = DriftMonitor(MonitorSettings(), {}, default_horizon_bars=HORIZON, bars_partitions=4)
    events = feed(monitor, market(n_bars=320, flip_at=FLIP, seed=0))
    decay = [e for e in events if e.kind == "ic_decay" and e.subject == "ensemble"]
    assert decay and FLIP <= bar_time(decay[0]) < FLIP + DETECTION_BARS
    assert not any(e.kind == "score_psi" for e in events)


def keyed(events) -> dict:
    out = {}
    for event in events:
        assert out.get(event.key(), event) == event, "one key, two different events"
        out[event.key()] = event
    return out


@pytest.mark.parametrize("cut", [1500, 4321, 9000])
def test_a_restart_mid_stream_replaying_uncommitted_input_gives_the_uninterrupted_runs_events(cut):
    messages = market(n_bars=320, flip_at=FLIP, seed=1)
    reference = keyed(feed(new_monitor(), messages))
    assert reference
    first = new_monitor()
    events = feed(first, messages[:cut])
    # The crash: the table holds what was committed; Kafka redelivers the
    # messages after the last committed offset (here, the last 700).
    second = DriftMonitor(MonitorSettings(), dict(first.store), default_horizon_bars=HORIZON, bars_partitions=4)
    events += feed(second, messages[cut - 700:])
    assert keyed(events) == reference


def test_events_sent_but_not_committed_are_sent_again_with_the_same_keys():
    messages = market(n_bars=320, flip_at=FLIP, seed=1)
    reference = keyed(feed(new_monitor(), messages))
    crashed = DriftMonitor(MonitorSettings(), {}, default_horizon_bars=HORIZON, bars_partitions=4, auto_commit=False)
    crashed.on_manifest(manifest())
    sent = []
    for i, message in enumerate(messages):
        sent += feed(crashed, [message])
        if sent and sent[-1].kind == "ic_decay":
            break  # delivered, then the process died before commit()
        crashed.commit()
    resumed = DriftMonitor(MonitorSettings(), dict(crashed.store), default_horizon_bars=HORIZON, bars_partitions=4)
    sent += feed(resumed, messages[i - 50:])
    assert keyed(sent) == reference


def test_how_partitions_and_the_signals_interleave_does_not_change_the_events():
    messages = market(n_bars=200, flip_at=120, seed=4)
    reference = keyed(feed(new_monitor(), messages))
    rng = random.Random(0)
    streams: dict[object, list] = {}
    for message in messages:
        streams.setdefault(message.partition if message.kind == "bar" else "signals", []).append(message)
    shuffled = []
    while streams:
        source = rng.choice(sorted(streams, key=str))
        n = rng.randint(1, 300)
        shuffled += streams[source][:n]
        streams[source] = streams[source][n:]
        streams = {k: v for k, v in streams.items() if v}
    assert sorted(map(id, shuffled)) == sorted(map(id, messages)) and shuffled != messages
    assert keyed(feed(new_monitor(), shuffled)) == reference


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
    """The app's order per message: inputs written, events delivered, the
    release record written; the kill leaves a prefix of the changelog and an
    offset committed at or before the message in progress (never after)."""
    messages = market(n_bars=240, flip_at=150, seed=2)
    # End on a bar: the last release is then the last bar's doing alone.
    messages = messages[:max(i for i, m in enumerate(messages) if m.kind == "bar") + 1]
    uninterrupted = new_monitor()
    reference = keyed(feed(uninterrupted, messages))
    store = ChangelogStore()
    first = DriftMonitor(MonitorSettings(), store, default_horizon_bars=HORIZON, bars_partitions=4, auto_commit=False)
    first.on_manifest(manifest())
    sent_by, inputs_written, events_of = [], [], []
    for message in messages:
        events_of.append(feed(first, [message]))
        inputs_written.append(len(store.log))
        first.commit()
        sent_by.append(len(store.log))
    total = len(store.log)
    rng = random.Random(3)
    kills = sorted(rng.sample(range(1, total), 8) + [total - 1, total - 2, total - 5, inputs_written[-1]])
    for kill in kills:
        in_progress = next(i for i, n in enumerate(sent_by) if n >= kill)
        delivered = [e for i in range(in_progress) for e in events_of[i]]
        if kill > inputs_written[in_progress]:
            delivered += events_of[in_progress]  # its release record was being written: its events were out
        for lag in (0, 400):
            second = DriftMonitor(MonitorSettings(), recovered(store.log[:kill]), default_horizon_bars=HORIZON,
                                  bars_partitions=4)
            replayed = feed(second, messages[max(0, in_progress - lag):])
            assert keyed(delivered + replayed) == reference, (kill, lag)
            assert second.released == uninterrupted.released, (kill, lag)
            assert second.analyzers["champion"].state() == uninterrupted.analyzers["champion"].state(), (kill, lag)


def test_a_status_read_before_the_table_is_recovered_does_not_load_the_monitor_from_a_partial_store():
    messages = market(n_bars=240, flip_at=150, seed=2)
    reference = keyed(feed(new_monitor(), messages))
    first = new_monitor()
    delivered = feed(first, messages[:6000])
    table = {}  # Faust serves the status page while the table is still being recovered
    second = DriftMonitor(MonitorSettings(), table, default_horizon_bars=HORIZON, bars_partitions=4)
    assert second.report()["ready"] is False
    table.update(json.loads(json.dumps(first.store)))
    second.load()  # the end of recovery
    assert second.report()["ready"] is True
    assert keyed(delivered + feed(second, messages[5000:])) == reference
