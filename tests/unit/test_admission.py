"""The bar-time gate: stray bars far ahead of their partition are refused;
a stream that really moves on is followed."""

import random

import msgspec
from hypothesis import given, settings, strategies as st

from signalml.contracts import Bar
from stream.admission import REASON, Admitted, BarTimeGate, Refused, Source

DAY = 86_400_000


def bar(symbol: str, day: int) -> Bar:
    return Bar(symbol, day * DAY, 10.0, 11.0, 9.0, 10.0, 100.0)


def offer_all(gate: BarTimeGate, items, floor_ts=None):
    decisions = []
    for offset, (partition, symbol, day) in enumerate(items):
        decisions += gate.offer(partition, bar(symbol, day), Source(b"raw", symbol.encode(), partition, offset), floor_ts=floor_ts)
    return decisions


def summary(decisions):
    return [(type(d).__name__, d.bar.symbol if isinstance(d, Admitted) else d.rejection.symbol,
             (d.bar.ts if isinstance(d, Admitted) else d.rejection.ts) // DAY) for d in decisions]


def test_a_bar_years_ahead_between_normal_bars_is_refused_and_its_neighbours_pass_in_order():
    gate = BarTimeGate(max_ahead_ms=4 * DAY)
    decisions = offer_all(gate, [(0, "A", 100), (0, "B", 100), (0, "EVIL", 1600), (0, "A", 101), (0, "B", 101)])
    assert summary(decisions) == [("Admitted", "A", 100), ("Admitted", "B", 100), ("Refused", "EVIL", 1600),
                                  ("Admitted", "A", 101), ("Admitted", "B", 101)]
    refused = decisions[2]
    assert refused.rejection.reason == REASON and refused.source.offset == 2 and refused.source.value == b"raw"
    assert gate.latest == {0: 101 * DAY} and gate.held == {}


def test_a_stream_that_moves_on_after_an_outage_is_followed():
    gate = BarTimeGate(max_ahead_ms=4 * DAY)
    decisions = offer_all(gate, [(0, "A", 100), (0, "A", 120), (0, "B", 120), (0, "A", 121)])
    assert summary(decisions) == [("Admitted", "A", 100), ("Admitted", "A", 120), ("Admitted", "B", 120),
                                  ("Admitted", "A", 121)]


def test_bars_within_the_limit_pass_at_once_and_a_held_bar_waits_for_its_own_partition():
    gate = BarTimeGate(max_ahead_ms=4 * DAY)
    assert summary(offer_all(gate, [(0, "A", 100), (0, "A", 104)])) == [("Admitted", "A", 100), ("Admitted", "A", 104)]
    assert offer_all(gate, [(0, "A", 110)]) == []  # held
    assert summary(offer_all(gate, [(1, "B", 100), (1, "B", 101)])) == [("Admitted", "B", 100), ("Admitted", "B", 101)]
    assert summary(offer_all(gate, [(0, "A", 111)])) == [("Admitted", "A", 110), ("Admitted", "A", 111)]


def test_a_partitions_first_bar_is_judged_against_the_last_closed_bar_time():
    gate = BarTimeGate(max_ahead_ms=4 * DAY)
    assert offer_all(gate, [(3, "EVIL", 1600)], floor_ts=100 * DAY) == []
    assert summary(offer_all(gate, [(3, "A", 101)], floor_ts=100 * DAY)) == [("Refused", "EVIL", 1600),
                                                                             ("Admitted", "A", 101)]
    fresh = BarTimeGate(max_ahead_ms=4 * DAY)
    assert summary(offer_all(fresh, [(3, "A", 1600)])) == [("Admitted", "A", 1600)]  # nothing to judge it by


def test_at_the_end_of_a_finite_replay_a_held_bar_is_refused():
    gate = BarTimeGate(max_ahead_ms=4 * DAY)
    offer_all(gate, [(0, "A", 100), (0, "EVIL", 1600)])
    assert summary(gate.release_held()) == [("Refused", "EVIL", 1600)]
    assert gate.held == {} and gate.release_held() == []


def test_state_with_a_held_bar_round_trips_through_msgpack():
    gate = BarTimeGate(max_ahead_ms=4 * DAY)
    offer_all(gate, [(0, "A", 100), (1, "B", 100), (0, "EVIL", 1600)])
    restored = BarTimeGate(max_ahead_ms=4 * DAY)
    restored.restore(msgspec.msgpack.decode(msgspec.msgpack.encode(gate.state())))
    assert restored.state() == gate.state()
    rest = [(0, "A", 101), (1, "B", 101)]
    assert summary(offer_all(restored, rest)) == summary(offer_all(gate, rest))
    assert summary(offer_all(restored, [])) == []


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 10_000), n_partitions=st.integers(1, 4), strays=st.integers(0, 3))
def test_decisions_depend_only_on_each_partitions_own_sequence(seed, n_partitions, strays):
    rng = random.Random(seed)
    queues = {p: [(p, f"S{p}{k}", day) for day in range(100, 130) for k in range(rng.randint(1, 3))]
              for p in range(n_partitions)}
    for day in rng.sample(range(200, 5000, 10), strays):  # strays far apart: none vouches for another
        p = rng.randrange(n_partitions)
        queues[p].insert(rng.randrange(1, len(queues[p])), (p, "STRAY", day))

    def read(r):
        qs = {p: list(q) for p, q in queues.items()}
        items = []
        while any(qs.values()):
            items.append(qs[r.choice([p for p, q in qs.items() if q])].pop(0))
        gate = BarTimeGate(max_ahead_ms=4 * DAY)
        decisions = summary(offer_all(gate, items) + gate.release_held())
        return sorted(decisions)

    first = read(random.Random(1))
    assert read(random.Random(seed + 2)) == first
    assert sorted(d for d in first if d[0] == "Refused") == sorted(
        ("Refused", "STRAY", day) for q in queues.values() for _, s, day in q if s == "STRAY")


def test_two_strays_in_a_row_do_not_vouch_for_each_other_unless_they_agree():
    gate = BarTimeGate(max_ahead_ms=4 * DAY)
    decisions = offer_all(gate, [(0, "A", 100), (0, "X", 900), (0, "Y", 3000), (0, "A", 101)])
    assert summary(decisions) == [("Admitted", "A", 100), ("Refused", "X", 900), ("Refused", "Y", 3000),
                                  ("Admitted", "A", 101)]
