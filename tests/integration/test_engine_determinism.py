"""The engine's output depends only on what the topic holds: a backlog read with
partitions held back for longer than the barrier's timeout, or with SIGKILLs
that land mid-stream, commits exactly the signals ``signalml predict``
writes for the same bars (every field, cross-section sizes included)."""

from __future__ import annotations

import bisect
import threading
import time
from dataclasses import dataclass, field

import msgspec
import pytest
from confluent_kafka import TopicPartition

from signalml.contracts import CrossSectionRecord, DeadLetter, DriftEvent
from stream.bars_file import read_bars
from stream.engine import Engine
from stream.replay import replay
from stream.topic_reader import read_topic
from tests.integration.engine_world import (
    DATA,
    assert_signals_equal_predict,
    committed_progress,
    committed_signals,
    end_offsets,
    engine_process,
    new_tag,
    predicted,
    published_world,
    small_bars,
    with_output,
)

pytestmark = pytest.mark.integration

BARRIER_TIMEOUT_S = 0.3  # short, so every hold below outlasts it several times


@pytest.fixture(scope="module")
def world(stack, tmp_path_factory):
    with published_world(tmp_path_factory.mktemp("determinism")) as world:
        yield world


@pytest.fixture(scope="module")
def universes(world):
    """Two universe sizes on their own bars topics: the world's 30 symbols, and
    7 symbols spread over the alphabet (some partitions hold one or none)."""
    settings = world["settings"]
    symbols = sorted(set(world["bars"]["symbol"]))
    wide = sorted(set(small_bars(400)["symbol"]))
    narrow = [wide[i] for i in range(0, len(wide), len(wide) // 7)][:7]
    out = {}
    for name, chosen in (("30 symbols", symbols), ("7 symbols", narrow)):
        topic_settings = with_output(settings, f"u{len(chosen)}", own_bars=True)
        bars = small_bars(400)
        bars = bars[bars["symbol"].isin(chosen)].reset_index(drop=True)
        published = replay(topic_settings, bars, source_file=DATA).published
        out[name] = {"settings": topic_settings, "symbols": chosen, "bars": published,
                     "expected": predicted(settings, world["tmp"], symbols=chosen, start="2018-01-01")}
    return out


# ---------------------------------------------------------------- partitions held back


@dataclass
class Hold:
    """Pause ``partitions`` once ``after`` (a fraction of the backlog) has been
    consumed, until an open bar time has waited ``wait_s`` for them (or
    ``max_s`` passed)."""

    after: float
    partitions: frozenset[int]
    wait_s: float = 5 * BARRIER_TIMEOUT_S
    max_s: float = 30.0


@dataclass
class HoldRecord:
    partitions: frozenset[int]
    leaked: int = 0  # bars of a held partition delivered while it was held
    longest_wait_s: float = 0.0  # longest a pending bar time waited while the partitions were held
    pending_at_end: int = 0


class HoldingBack(Engine):
    """An engine whose consumer delivers some partitions late: they are
    paused for a while, so everything else of the backlog is read first."""

    def __init__(self, settings, holds: list[Hold], total_bars: int):
        super().__init__(settings)
        self.holds, self.total_bars = list(holds), total_bars
        self.taken = 0
        self.active: tuple[HoldRecord, float] | None = None
        self.records: list[HoldRecord] = []

    def _consume(self) -> list:
        now = time.monotonic()
        if self.active is not None:
            record, hold, until = self.active
            if self.barrier.pending:
                record.longest_wait_s = max(record.longest_wait_s, now - min(self.barrier.opened_at.values()))
            if record.longest_wait_s >= hold.wait_s or now >= until:
                record.pending_at_end = len(self.barrier.pending)
                self.consumer.resume([TopicPartition(self.bars_topic, p) for p in sorted(record.partitions)])
                self.active = None
        if self.active is None and self.holds and self.taken >= self.holds[0].after * self.total_bars:
            hold = self.holds.pop(0)
            self.consumer.pause([TopicPartition(self.bars_topic, p) for p in sorted(hold.partitions)])
            record = HoldRecord(hold.partitions)
            self.records.append(record)
            self.active = (record, hold, now + hold.max_s)
        messages = super()._consume()
        for message in messages:
            if message.error() is None:
                self.taken += 1
                if self.active is not None and message.partition() in self.active[0].partitions:
                    self.active[0].leaked += 1
        return messages


# Hold-back patterns over the partitions that hold bars (p[0] < p[1] < ...).
PATTERNS = {
    "one partition delivers all it holds first": lambda p: [Hold(0.0, frozenset(p[1:]))],
    "one partition delivers last": lambda p: [Hold(0.0, frozenset(p[:1]))],
    "two holds mid-stream": lambda p: [Hold(0.2, frozenset(p[-1:])), Hold(0.6, frozenset(p[:2]))],
}


@pytest.mark.parametrize("universe", ["30 symbols", "7 symbols"])
@pytest.mark.parametrize("pattern", sorted(PATTERNS))
def test_a_backlog_read_with_partitions_held_back_commits_exactly_what_predict_writes(
        world, universes, universe, pattern):
    chosen = universes[universe]
    settings = with_output(chosen["settings"], f"hold-{new_tag()}", barrier_timeout_s=BARRIER_TIMEOUT_S)
    holding = [p for p, end in sorted(end_offsets(settings).items()) if end > 0]
    assert len(holding) >= 2
    holds = PATTERNS[pattern](holding)
    engine = HoldingBack(settings, holds, chosen["bars"])
    thread = threading.Thread(target=engine.run, kwargs={"idle_exit_s": 3.0, "serve_http": False})
    thread.start()
    thread.join(timeout=400)
    assert not thread.is_alive(), "the engine did not go idle"

    # The fault happened: the held partitions delivered nothing while held,
    # and open bar times waited for them several timeouts long.
    assert len(engine.records) == len(holds)
    for record in engine.records:
        assert record.leaked == 0, record
        assert record.longest_wait_s >= 5 * BARRIER_TIMEOUT_S, record
        assert record.pending_at_end > 0, record
    assert engine.barrier.counts.late == 0
    assert_signals_equal_predict(committed_signals(settings), chosen["expected"])


# ---------------------------------------------------------------- SIGKILL mid-stream


@dataclass(frozen=True)
class Kill:
    """What the engine had committed when it was killed: bars read (the sum of
    its positions) and bar times closed, from its snapshot."""

    read: int
    closed: int


def run_with_kills(settings, log, kill_at: list[float], bar_times: list[int]) -> list[Kill]:
    """Run ``signalml serve`` as a process, SIGKILL it once its committed
    cross-sections pass each fraction of ``kill_at`` of ``bar_times`` (as its
    query API reports them, a cheap poll), then let one run to the end.
    What was committed around each kill is read from its snapshot."""
    def committed() -> tuple[int, int]:
        positions, last_closed = committed_progress(settings)
        return sum(positions.values()), 0 if last_closed is None else bisect.bisect_right(bar_times, last_closed)

    url = f"http://{settings.serving.http_host}:{settings.serving.http_port}/v1/position"
    kills = []
    for fraction in kill_at:
        process = engine_process(settings, log)
        deadline = time.monotonic() + 300
        while bisect.bisect_right(bar_times, served_bar_time(url)) < fraction * len(bar_times):
            assert process.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "the engine made no progress"
            time.sleep(0.01)
        process.kill()
        process.wait()
        before = committed()
        kills.append(Kill(*before))
    final = engine_process(settings, log)
    assert final.wait(timeout=600) == 0, log.read_text()[-3000:]
    return kills


def served_bar_time(url: str) -> int:
    """The last committed bar time the engine's query API reports (-1 while
    it does not answer or has committed none)."""
    import json
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=1.0) as response:
            value = json.load(response).get("last_bar_time_ms")
    except (urllib.error.URLError, OSError, ValueError):
        return -1
    return -1 if value is None else int(value)


@pytest.fixture(scope="module")
def subset_80(world):
    """80 symbols of the bundled data over all its bar times, on their own bars
    topic, with predict's signals for them."""
    settings = world["settings"]
    symbols = sorted(set(read_bars(DATA)["symbol"]))[::5][:80]
    topic_settings = with_output(settings, "u80", own_bars=True)
    published = replay(topic_settings, read_bars(DATA, symbols=symbols), source_file=DATA).published
    return {"settings": topic_settings, "bars": published,
            "expected": predicted(settings, world["tmp"], symbols=symbols)}


def test_80_symbols_read_as_a_backlog_give_predicts_signals_with_and_without_sigkills_mid_stream(world, subset_80):
    total = sum(end_offsets(subset_80["settings"]).values())
    assert total == subset_80["bars"]
    uninterrupted = with_output(subset_80["settings"], f"whole-{new_tag()}")
    Engine(uninterrupted).run(idle_exit_s=3.0, serve_http=False)
    # The killed engine also pauses partitions that run ahead (a small
    # max_pending_bars), which must change nothing either.
    killed = with_output(subset_80["settings"], f"killed-{new_tag()}", max_pending_bars=2000)
    expected = subset_80["expected"]
    bar_times = sorted(set(read_bars(DATA)["ts"].tolist()))
    kills = run_with_kills(killed, world["tmp"] / "killed.log", [0.2, 0.5, 0.8], bar_times)

    # Each kill landed mid-stream: cross-sections were committed before it,
    # and after it most bar times were still to be closed and scored.
    for kill, fraction in zip(kills, (0.2, 0.5, 0.8)):
        assert fraction * len(bar_times) <= kill.closed < min(fraction + 0.15, 0.99) * len(bar_times), kills
        assert 0 < kill.read <= total, kills
    assert_signals_equal_predict(committed_signals(uninterrupted), expected)
    assert_signals_equal_predict(committed_signals(killed), expected)
    for topic in ("drift", "bars_dlq"):
        assert records_of(killed, topic) == records_of(uninterrupted, topic)
    # The monitor's input: one record per closed bar time, in bar-time order,
    # the same with and without kills, carrying the committed signals' scores.
    cross_sections = records_of(killed, "cross_sections", in_topic_order=True)
    assert cross_sections == records_of(uninterrupted, "cross_sections", in_topic_order=True)
    times = [r["ts"] for _, r in cross_sections]
    assert times == sorted(set(times)) and len(times) >= len(bar_times) - 5, (len(times), len(bar_times))
    signals = committed_signals(killed)
    scored = {(r["ts"], symbol): (score, {m: v[i] for m, v in r["members"].items()})
              for _, r in cross_sections for i, (symbol, score) in enumerate(zip(r["symbols"], r["score"]))
              if r["model_set"] and (r["ts"], symbol) in signals}
    assert len(scored) == len(signals)
    assert all(scored[key] == (s.score, s.members) for key, s in signals.items())


def records_of(settings, key: str, in_topic_order: bool = False) -> list:
    """Every record of an output topic, decoded, wall-clock fields left out."""
    topic = getattr(settings.kafka.topics, key).name
    kind = {"drift": DriftEvent, "cross_sections": CrossSectionRecord}.get(key, DeadLetter)
    out = []
    for message in read_topic(settings.kafka.bootstrap_servers, topic):
        record = msgspec.to_builtins(msgspec.json.decode(message.value(), type=kind))
        record.pop("rejected_at", None)
        out.append((message.key(), record))
    return out if in_topic_order else sorted(out, key=repr)


def test_the_whole_bundled_file_read_as_a_backlog_gives_predicts_signals_with_and_without_sigkills(world):
    """All 402 symbols and 1,259 bar times of the bundled file (its defective
    rows dead-lettered by replay, counted by predict)."""
    settings = with_output(world["settings"], f"bundled-{new_tag()}", own_bars=True)
    summary = replay(settings, read_bars(DATA), source_file=DATA)
    assert sum(end_offsets(settings).values()) == summary.published
    expected = predicted(world["settings"], world["tmp"])
    uninterrupted = with_output(settings, f"whole-{new_tag()}")
    Engine(uninterrupted).run(idle_exit_s=3.0, serve_http=False)
    assert_signals_equal_predict(committed_signals(uninterrupted), expected)

    killed = with_output(settings, f"killed-{new_tag()}")
    bar_times = sorted(set(expected["ts"].tolist()))
    kills = run_with_kills(killed, world["tmp"] / "bundled-killed.log", [0.2, 0.5, 0.8], bar_times)
    for kill, fraction in zip(kills, (0.2, 0.5, 0.8)):
        assert fraction * len(bar_times) <= kill.closed < min(fraction + 0.15, 0.99) * len(bar_times), kills
    assert_signals_equal_predict(committed_signals(killed), expected)
    assert records_of(killed, "drift") == records_of(uninterrupted, "drift")


def test_an_engine_restored_from_a_base_written_in_many_parts_continues_exactly(world, universes, monkeypatch):
    """Bases come in parts of at most BASE_PART_BYTES (a full base at 5,000
    symbols is larger than a record may be); here parts of 64 kB. The first
    engine stops after its second base; the second restores from it."""
    import stream.checkpoint as checkpoint

    monkeypatch.setattr(checkpoint, "BASE_PART_BYTES", 64 * 1024)
    chosen = universes["30 symbols"]
    settings = with_output(chosen["settings"], f"parts-{new_tag()}", snapshot_every_bar_times=5)
    first = Engine(settings)
    commit = first._commit_at

    def commit_then_stop_after_the_second_base(cut) -> None:
        commit(cut)
        if cut.base_parts and first.base_seq >= 2:
            first.stop_event.set()

    first._commit_at = commit_then_stop_after_the_second_base
    first.run(idle_exit_s=5.0, serve_http=False)  # the idle exit only if it never rebased twice
    assert first.base_seq >= 2 and first.base_count > 1, (first.base_seq, first.base_count)
    positions, _ = committed_progress(settings)
    assert 0 < sum(positions.values()) < chosen["bars"], "the first engine read the whole backlog"
    second = Engine(settings)
    second.run(idle_exit_s=3.0, serve_http=False)
    assert second.base_seq > first.base_seq
    assert_signals_equal_predict(committed_signals(settings), chosen["expected"])
