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


def test_pending_bars_encode_as_the_plain_maps_snapshots_have_always_held():
    barrier = CrossSectionBarrier(10.0, [0, 1], clock=Clock())
    feed(barrier, [("A", 1, 0), ("A", 2, 0), ("B", 2, 1), ("A", 3, 0)])
    pending = msgspec.msgpack.decode(msgspec.msgpack.encode(barrier.state()))["pending"]
    assert pending == [{"symbol": b.symbol, "ts": b.ts, "open": b.open, "high": b.high, "low": b.low,
                        "close": b.close, "volume": b.volume, "interval": None} for b in (bar("A", 2), bar("B", 2), bar("A", 3))]


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


# ---------------------------------------------------------------- backlogs read in any order, at any speed


class Backlog:
    """Partitions that already hold every bar, read the way a consumer may
    read them: partitions delivered in any interleaving, some stalled for
    longer than the timeout, an end-of-partition event only once a partition
    is read to its end, paused partitions delivering nothing, and restarts
    from the barrier's snapshot (a restarted consumer reports the ends again)."""

    def __init__(self, queues: dict[int, list[tuple[str, int]]], timeout_s: float, max_pending: int):
        self.queues = {p: list(q) for p, q in queues.items()}
        self.timeout_s = timeout_s
        self.max_pending = max_pending
        self.clock = Clock()
        self.barrier = CrossSectionBarrier(timeout_s, sorted(queues), clock=self.clock)
        self.eof_due = set(queues)  # partitions whose end event the consumer has still to report
        self.closed = []
        self.late = []
        self.most_pending = 0

    def paused(self) -> set[int]:
        return self.barrier.ahead_partitions(self.max_pending)

    def step(self, rng: random.Random) -> None:
        choice = rng.random()
        if choice < 0.15:
            self.clock.now += rng.choice([0.01, 0.5, 3 * self.timeout_s])  # a stall, longer than the timeout
            self.closed += self.barrier.due()
        elif choice < 0.2:
            state = msgspec.json.decode(msgspec.json.encode(self.barrier.state()))
            self.barrier = CrossSectionBarrier(self.timeout_s, sorted(self.queues), clock=self.clock)
            self.barrier.restore(state)
            self.eof_due = set(self.queues)
        else:
            ready = [p for p, q in self.queues.items() if (q or p in self.eof_due) and p not in self.paused()]
            if not ready:
                self.clock.now += self.timeout_s
                self.closed += self.barrier.due()
                return
            p = rng.choice(ready)
            if self.queues[p]:
                symbol, ts = self.queues[p].pop(0)
                self.eof_due.add(p)
                sections, late = self.barrier.add(bar(symbol, ts), p)
                self.closed += sections
                if late:
                    self.late.append((symbol, ts))
            else:
                self.eof_due.discard(p)
                self.closed += self.barrier.mark_drained(p)
        self.most_pending = max(self.most_pending, self.barrier.pending_bars())

    def run(self, rng: random.Random) -> list[tuple[int, list[str]]]:
        for _ in range(100_000):
            if not any(self.queues.values()) and not self.eof_due and not self.barrier.pending:
                break
            self.step(rng)
        else:
            raise AssertionError("the backlog was never fully closed")
        return [(c.ts, c.symbols) for c in self.closed]


def random_market(seed: int, n_symbols: int, n_times: int, n_partitions: int):
    rng = random.Random(seed)
    symbols = [f"S{i}" for i in range(n_symbols)]
    partition_of = {s: rng.randrange(n_partitions) for s in symbols}
    present = {(s, t) for s in symbols for t in range(1, n_times + 1) if rng.random() < 0.75}
    queues = {p: [(s, t) for t in range(1, n_times + 1) for s in symbols if partition_of[s] == p and (s, t) in present]
              for p in range(n_partitions)}
    expected = [(t, sorted(s for s in symbols if (s, t) in present)) for t in range(1, n_times + 1)]
    return queues, [e for e in expected if e[1]]


@settings(max_examples=300, deadline=None)
@given(
    n_symbols=st.integers(1, 8),
    n_times=st.integers(1, 12),
    n_partitions=st.integers(1, 4),
    market_seed=st.integers(0, 10_000),
    read_seed=st.integers(0, 10_000),
    max_pending=st.integers(1, 12),
)
def test_a_backlog_gives_every_bar_time_all_its_bars_whatever_the_order_and_speed_of_delivery(
        n_symbols, n_times, n_partitions, market_seed, read_seed, max_pending):
    """The cross-sections of a backlog are the bars grouped by bar time, the
    same as reading the file: stalls longer than the timeout, restarts and
    paused partitions change nothing, no bar is late, and the pending bar
    times stay bounded."""
    queues, expected = random_market(market_seed, n_symbols, n_times, n_partitions)
    backlog = Backlog(queues, timeout_s=2.0, max_pending=max_pending)
    assert backlog.run(random.Random(read_seed)) == expected
    assert backlog.late == []
    assert backlog.most_pending <= max_pending + n_symbols + n_partitions


def test_a_partition_stalled_past_the_timeout_keeps_its_bar_times_open():
    clock = Clock()
    barrier = CrossSectionBarrier(2.0, [0, 1], clock=clock)
    feed(barrier, [("A", 1, 0), ("A", 2, 0), ("A", 3, 0)])
    barrier.mark_drained(0)
    clock.now = 100.0  # partition 1 has delivered nothing yet: its backlog is unread
    assert barrier.due() == [] and barrier.next_deadline_s() is None
    closed = feed(barrier, [("B", 1, 1), ("B", 2, 1)])
    assert [(c.ts, c.symbols, c.reason) for c in closed] == [(1, ["A", "B"], "watermark")]


@settings(max_examples=200, deadline=None)
@given(market_seed=st.integers(0, 10_000), read_seeds=st.lists(st.integers(0, 10_000), min_size=2, max_size=3),
       n_partitions=st.integers(1, 3), swaps=st.integers(1, 4))
def test_bars_out_of_order_within_a_partition_are_late_whatever_the_interleaving(
        market_seed, read_seeds, n_partitions, swaps):
    """Kafka orders only a partition: a bar behind one its partition already
    delivered is late in every reading, so the cross-sections never depend on
    how the partitions interleave."""
    queues, _ = random_market(market_seed, 6, 8, n_partitions)
    rng = random.Random(market_seed)
    for _ in range(swaps):
        p = rng.randrange(n_partitions)
        if len(queues[p]) > 1:
            i = rng.randrange(len(queues[p]) - 1)
            queues[p][i], queues[p][i + 1] = queues[p][i + 1], queues[p][i]
    behind = sorted((s, t) for q in queues.values() for i, (s, t) in enumerate(q) if any(t < u for _, u in q[:i]))
    results = []
    for seed in read_seeds:
        backlog = Backlog(queues, timeout_s=2.0, max_pending=3)
        results.append((backlog.run(random.Random(seed)), sorted(backlog.late)))
    assert all(result == results[0] for result in results)
    assert results[0][1] == behind


def test_only_partitions_past_the_oldest_pending_bar_times_are_paused():
    barrier = CrossSectionBarrier(2.0, [0, 1, 2], clock=Clock())
    feed(barrier, [("A", t, 0) for t in range(1, 6)] + [("B", 1, 1), ("B", 2, 1), ("C", 4, 2)])
    # 1 closed by the watermark; pending: 2 (A, B), 3 (A), 4 (A, C), 5 (A);
    # partition 0 is at 5, 1 at 2, 2 at 4
    assert sorted(barrier.pending) == [2, 3, 4, 5] and barrier.pending_bars() == 6
    assert barrier.ahead_partitions(6) == set()
    assert barrier.ahead_partitions(3) == {0, 2}  # the oldest 3 bars are those of 2 and 3: both are past them
    assert barrier.ahead_partitions(5) == {0}  # the oldest 5 reach 4: only partition 0 is past it


# ---------------------------------------------------------------- the full rules after every bar


class EveryBarBarrier(CrossSectionBarrier):
    """The rules run in full after every bar, as :meth:`CrossSectionBarrier.due`
    defines them: the reference for the skipped runs of ``add``."""

    def _due_after(self, advanced, joined_ts):
        return self.due()


@settings(max_examples=400, deadline=None)
@given(seed=st.integers(0, 100_000), n_symbols=st.integers(1, 6), n_partitions=st.integers(1, 4),
       timeout_s=st.sampled_from([0.5, 2.0, 1e9]))
def test_adding_a_bar_closes_exactly_what_the_full_rules_after_every_bar_close(seed, n_symbols, n_partitions, timeout_s):
    """Live feeds and backlogs, in any order: bars of any bar time (late,
    behind their partition, repeated, from a partition not assigned),
    end-of-partition events, time passing
    with and without a check, reassignment and restarts. After every event
    both barriers have closed the same cross-sections, judged the same bars
    late, and hold the same state."""
    rng = random.Random(seed)
    clock = Clock()
    partitions = list(range(n_partitions))
    fast = CrossSectionBarrier(timeout_s, partitions, clock=clock)
    full = EveryBarBarrier(timeout_s, partitions, clock=clock)
    symbols = [f"S{i}" for i in range(n_symbols)]
    ts = 1
    for _ in range(300):
        choice = rng.random()
        if choice < 0.6:
            symbol = rng.choice(symbols)
            bar_ts = max(1, ts + rng.choice([-2, -1, 0, 0, 0, 0, 1]))
            partition = rng.choice(partitions) if rng.random() < 0.9 else rng.randrange(4)  # or one not assigned
            got, want = fast.add(bar(symbol, bar_ts), partition), full.add(bar(symbol, bar_ts), partition)
        elif choice < 0.7:
            ts += 1
            continue
        elif choice < 0.8:
            partition = rng.choice(partitions)
            got, want = fast.mark_drained(partition), full.mark_drained(partition)
        elif choice < 0.9:
            clock.now += rng.choice([0.1, 0.6, 3.0])
            if rng.random() < 0.5:
                continue  # time passes unchecked: the next bar sees it
            got, want = fast.due(), full.due()
        elif choice < 0.95:
            state = msgspec.json.decode(msgspec.json.encode(fast.state()))
            fast = CrossSectionBarrier(timeout_s, partitions, clock=clock)
            fast.restore(state)
            full = EveryBarBarrier(timeout_s, partitions, clock=clock)
            full.restore(state)
            continue
        else:
            partitions = sorted(rng.sample(range(4), rng.randint(1, 4)))
            fast.assign(partitions)
            full.assign(partitions)
            continue
        assert got == want
        assert fast.state() == full.state()
