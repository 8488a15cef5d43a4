"""The cross-section barrier: when a bar time closes, and with which bars."""

import random

import msgspec
from hypothesis import given, settings, strategies as st

from signalml.contracts import Bar
from stream.barrier import CrossSectionBarrier


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def bar(symbol: str, ts: int) -> Bar:
    return Bar(symbol, ts, 10.0, 11.0, 9.0, 10.0, 100.0)


def feed(barrier, items):
    closed = []
    for symbol, ts, partition in items:
        sections, _ = barrier.add(bar(symbol, ts), partition)
        closed += sections
    return closed


def test_the_first_cross_section_closes_when_every_partition_has_moved_past_it():
    barrier = CrossSectionBarrier(10.0, [0, 1], clock=Clock())
    assert feed(barrier, [("A", 1, 0), ("B", 1, 1), ("A", 2, 0)]) == []
    closed = feed(barrier, [("B", 2, 1)])
    assert [(c.ts, c.symbols, c.reason) for c in closed] == [(1, ["A", "B"], "watermark")]


def test_on_a_live_feed_a_cross_section_closes_as_soon_as_the_expected_symbols_are_in():
    barrier = CrossSectionBarrier(10.0, [0, 1], clock=Clock())
    feed(barrier, [("A", 1, 0), ("B", 1, 1), ("A", 2, 0), ("B", 2, 1)])  # closes 1
    barrier.mark_drained(0)
    closed = barrier.mark_drained(1)
    assert [(c.ts, c.reason) for c in closed] == [(2, "complete")]
    assert feed(barrier, [("B", 3, 1)]) == []
    closed = feed(barrier, [("A", 3, 0)])
    assert closed == []  # both partitions delivered since their drain: not settled yet
    assert barrier.mark_drained(1) == []
    assert [(c.ts, c.reason) for c in barrier.mark_drained(0)] == [(3, "complete")]


def test_while_a_backlog_is_read_completeness_waits_for_the_watermark():
    barrier = CrossSectionBarrier(10.0, [0, 1], clock=Clock())
    feed(barrier, [("A", 1, 0), ("A", 2, 0), ("B", 2, 1)])  # closes 1 = {A}
    closed = feed(barrier, [("A", 3, 0)])
    assert closed == []  # A expected and present for 2, but partition 1 may still hold a joiner of 2
    closed = feed(barrier, [("C", 2, 1), ("B", 3, 1)])
    assert [(c.ts, c.symbols, c.reason) for c in closed] == [(2, ["A", "B", "C"], "watermark")]


def test_a_symbol_that_leaves_blocks_until_the_watermark_passes():
    barrier = CrossSectionBarrier(10.0, [0, 1], clock=Clock())
    feed(barrier, [("A", 1, 0), ("B", 1, 1), ("A", 2, 0), ("B", 2, 1)])  # closes 1
    closed = feed(barrier, [("A", 3, 0), ("C", 3, 1)])  # closes 2; B has left, C joins
    assert [(c.ts, c.symbols, c.reason) for c in closed] == [(2, ["A", "B"], "watermark")]
    assert feed(barrier, [("A", 4, 0)]) == []
    closed = feed(barrier, [("C", 4, 1)])
    assert [(c.ts, c.symbols, c.reason) for c in closed] == [(3, ["A", "C"], "watermark")]


def test_a_missing_symbol_times_out_on_a_live_feed():
    clock = Clock()
    barrier = CrossSectionBarrier(2.0, [0, 1], clock=clock)
    feed(barrier, [("A", 1, 0), ("B", 1, 1), ("A", 2, 0), ("B", 2, 1)])
    barrier.mark_drained(0), barrier.mark_drained(1)  # closes 2
    feed(barrier, [("A", 3, 0)])
    barrier.mark_drained(0)
    clock.now = 1.9
    assert barrier.due() == []
    assert 0.0 < barrier.next_deadline_s() <= 0.1 + 1e-9
    clock.now = 2.0
    assert [(c.ts, c.symbols, c.reason) for c in barrier.due()] == [(3, ["A"], "timeout")]


def test_a_bar_of_a_closed_bar_time_is_late_and_counted():
    barrier = CrossSectionBarrier(10.0, [0, 1], clock=Clock())
    feed(barrier, [("A", 1, 0), ("A", 2, 0), ("B", 2, 1)])  # closes 1 with A only
    sections, late = barrier.add(bar("B", 1), 1)
    assert late and sections == [] and barrier.counts.late == 1


def test_flush_closes_everything_pending_in_order():
    barrier = CrossSectionBarrier(10.0, [0, 1], clock=Clock())
    feed(barrier, [("A", 1, 0), ("A", 2, 0)])
    assert [(c.ts, c.reason) for c in barrier.flush()] == [(1, "flush"), (2, "flush")]


def test_state_round_trips_through_json_with_pending_bars():
    clock = Clock()
    barrier = CrossSectionBarrier(10.0, [0, 1], clock=clock)
    feed(barrier, [("A", 1, 0), ("B", 1, 1), ("A", 2, 0), ("B", 2, 1), ("A", 3, 0)])
    restored = CrossSectionBarrier(10.0, [0, 1], clock=clock)
    restored.restore(msgspec.json.decode(msgspec.json.encode(barrier.state())))
    assert restored.state() == barrier.state()
    rest = [("B", 3, 1), ("A", 4, 0), ("B", 4, 1)]
    assert feed(restored, rest) == feed(barrier, rest)


@settings(max_examples=150, deadline=None)
@given(
    n_symbols=st.integers(1, 6),
    n_times=st.integers(1, 8),
    n_partitions=st.integers(1, 3),
    seed=st.integers(0, 10_000),
    cut=st.floats(0, 1),
)
def test_any_interleaving_of_partitions_gives_the_same_cross_sections(n_symbols, n_times, n_partitions, seed, cut):
    """Per-partition order is all Kafka promises; the result must not depend
    on how the consumer interleaves partitions, nor on a restart."""
    rng = random.Random(seed)
    symbols = [f"S{i}" for i in range(n_symbols)]
    partition_of = {s: i % n_partitions for i, s in enumerate(symbols)}
    present = {(s, t) for s in symbols for t in range(1, n_times + 1) if rng.random() < 0.8}
    queues = {p: [(s, t, p) for t in range(1, n_times + 1) for s in symbols if partition_of[s] == p and (s, t) in present]
              for p in range(n_partitions)}

    def interleave(r):
        qs = {p: list(q) for p, q in queues.items()}
        out = []
        while any(qs.values()):
            p = r.choice([p for p, q in qs.items() if q])
            out.append(qs[p].pop(0))
        return out

    def run(items, restart_at=None):
        barrier = CrossSectionBarrier(1e9, list(range(n_partitions)), clock=Clock())
        closed = []
        for i, item in enumerate(items):
            if i == restart_at:
                state = msgspec.json.decode(msgspec.json.encode(barrier.state()))
                barrier = CrossSectionBarrier(1e9, list(range(n_partitions)), clock=Clock())
                barrier.restore(state)
            sections, late = barrier.add(bar(item[0], item[1]), item[2])
            assert not late
            closed += sections
        closed += barrier.flush()
        return [(c.ts, c.symbols) for c in closed]

    reference = run(interleave(random.Random(0)))
    expected = [(t, sorted(s for s in symbols if (s, t) in present)) for t in range(1, n_times + 1)]
    assert reference == [e for e in expected if e[1]]
    other = interleave(random.Random(seed + 1))
    assert run(other, restart_at=int(cut * len(other))) == reference
