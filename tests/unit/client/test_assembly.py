"""The cross-section reader's bookkeeping, against a simulated transactional
topic: whatever order the partitions deliver in, whatever else is on the
topic, and wherever the reader crashes, every committed cross-section is
delivered whole, once, except that one handed to the caller and not yet
committed when the reader crashed comes again (whole); nothing partial and
nothing of an aborted transaction is ever delivered."""

from __future__ import annotations

import collections
from dataclasses import dataclass, field

import msgspec
from hypothesis import HealthCheck, given, settings, strategies as st

from signalml.client.assembly import CrossSectionAssembler
from signalml.client.cross_section import SignalCrossSection
from signalml.client.ledger import CommittedPosition
from signalml.contracts import Signal, encode
from tests.unit.client.simulated_topic import SimulatedConsumer, SimulatedTopic

SYMBOLS = ["AAA", "BBB", "CCC", "DDD", "EEE", "FFF"]
MEMBERS = ("lgbm", "xgb")


def signal(model_set: str, ts: int, symbol: str, size: int, score: float | None = None) -> bytes:
    score = float(len(symbol) * 7 + ts % 13 + SYMBOLS.index(symbol) / 10) if score is None else score
    return encode(Signal(ts=ts, symbol=symbol, score=score, rank=0.5, members={m: score for m in MEMBERS},
                         model_set=model_set, cross_section_size=size, horizon_bars=5))


@dataclass
class Reader:
    """A reader process: the assembler, a consumer from the committed positions,
    the queue of complete cross-sections and the one handed to the caller."""

    topic: SimulatedTopic
    committed: dict[int, CommittedPosition] | None
    assembler: CrossSectionAssembler = field(init=False)
    consumer: SimulatedConsumer = field(init=False)
    queue: collections.deque = field(default_factory=collections.deque)
    handed: SignalCrossSection | None = None

    def __post_init__(self):
        starts = {p: (self.committed[p].offset if self.committed else 0) for p in self.topic.partitions}
        self.assembler = CrossSectionAssembler(starts, resumed=self.committed)
        self.consumer = SimulatedConsumer(self.topic, starts)

    def read(self, partition: int) -> bool:
        event = self.consumer.next(partition)
        if event is None:
            return False
        kind, offset, value = event
        if kind == "eof":
            self.assembler.reached(partition, offset)
        else:
            done = self.assembler.add(partition, offset, value)
            if done is not None:
                self.queue.append(done)
        self.assembler.settle()
        return True

    def probe(self) -> None:
        self.assembler.bound({p: self.topic.high_watermark(p) for p in self.topic.partitions}, self.assembler.seq)
        self.assembler.settle()

    def commit(self) -> dict[int, CommittedPosition]:
        """Acknowledge the handed cross-section and commit, through the metadata codec."""
        if self.handed is not None:
            self.assembler.acknowledge(self.handed)
            self.handed = None
        return {p: CommittedPosition.parse(pos.offset, pos.metadata())
                for p, pos in self.assembler.positions("r", 1).items()}


@dataclass
class World:
    topic: SimulatedTopic
    home: dict[str, int]  # symbol -> partition (key = symbol)
    truth: dict[tuple, dict[str, float]] = field(default_factory=dict)  # committed cross-sections
    written: dict[int, list[tuple[tuple, dict[str, float]]]] = field(default_factory=dict)  # per open transaction
    next_ts: int = 1

    def write_transaction(self, data) -> None:
        txn = self.topic.begin()
        self.written[txn] = []
        for _ in range(data.draw(st.integers(1, 2), label="cross-sections in the transaction")):
            model_set = data.draw(st.sampled_from(["m1", "m2"]), label="model set")
            symbols = sorted(data.draw(st.sets(st.sampled_from(SYMBOLS), min_size=1), label="symbols"))
            ts, self.next_ts = self.next_ts, self.next_ts + 1
            key = (model_set, ts, len(symbols))
            scores = {}
            for symbol in symbols:
                value = signal(model_set, ts, symbol, len(symbols))
                scores[symbol] = msgspec.json.decode(value)["score"]
                self.topic.write(self.home[symbol], value, txn)
            self.written[txn].append((key, scores))

    def end(self, txn: int, commit: bool) -> None:
        """The producer commits or aborts; the markers follow (:meth:`write_marker`)."""
        self.topic.end(txn, commit)
        written = self.written.pop(txn)
        if commit:
            self.truth.update(dict(written))

    def write_marker(self, txn: int, index: int) -> None:
        self.topic.write_marker(txn, index)

    def write_garbage(self, data) -> None:
        kind = data.draw(st.sampled_from(["bytes", "partial", "duplicate", "wrong size"]), label="garbage")
        partition = data.draw(st.sampled_from(list(self.topic.partitions)), label="garbage partition")
        if kind == "bytes":
            self.topic.write(partition, data.draw(st.binary(max_size=20), label="bytes"))
        elif kind == "partial":  # signals of a cross-section that claims more symbols than it has
            ts, self.next_ts = self.next_ts, self.next_ts + 1
            for symbol in SYMBOLS[:2]:
                self.topic.write(self.home[symbol], signal("m1", ts, symbol, 3))
        elif kind == "wrong size":  # a real cross-section's bar time with another size
            if self.truth:
                (model_set, ts, size), scores = sorted(self.truth.items())[-1]
                symbol = sorted(scores)[0]
                self.topic.write(self.home[symbol], signal(model_set, ts, symbol, size + 1))
        else:  # a second copy of one signal (the same one each time) of a committed cross-section of 2 or more
            candidates = [(key, min(scores)) for key, scores in sorted(self.truth.items()) if key[2] >= 2]
            if candidates:
                (model_set, ts, size), symbol = data.draw(st.sampled_from(candidates), label="duplicated")
                self.topic.write(self.home[symbol], signal(model_set, ts, symbol, size))


OPS = ["write", "end", "marker", "garbage", "read", "read", "read", "read", "probe", "hand", "commit", "crash"]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_every_committed_cross_section_is_delivered_whole_once_whatever_the_interleaving_and_crashes(data):
    partitions = data.draw(st.integers(1, 4), label="partitions")
    home = {s: data.draw(st.integers(0, partitions - 1), label=f"partition of {s}") for s in SYMBOLS}
    world = World(SimulatedTopic(partitions), home)
    reader = Reader(world.topic, None)
    committed: dict[int, CommittedPosition] | None = None
    delivered: collections.Counter = collections.Counter()
    handed_at_crash: collections.Counter = collections.Counter()

    def hand() -> None:
        if reader.handed is None and reader.queue:
            reader.handed = reader.queue.popleft()
            xs = reader.handed
            key = (xs.model_set, xs.ts, xs.size)
            assert key in world.truth, f"delivered {key}, which no committed transaction holds"
            assert dict(zip(xs.symbols, xs.scores.tolist())) == world.truth[key], f"{key} is not whole"
            delivered[key] += 1

    for _ in range(data.draw(st.integers(0, 80), label="steps")):
        op = data.draw(st.sampled_from(OPS), label="op")
        open_txns = world.topic.open_transactions()
        if op == "write" and len([t for t in open_txns if world.topic.transactions[t].state == "open"]) < 2:
            world.write_transaction(data)
        elif op == "end" and open_txns:
            txn = data.draw(st.sampled_from(open_txns), label="transaction")
            if world.topic.transactions[txn].state == "open":
                world.end(txn, commit=data.draw(st.integers(0, 3), label="commit?") > 0)
        elif op == "marker":
            ending = [t for t in open_txns if world.topic.transactions[t].state != "open"]
            if ending:
                txn = data.draw(st.sampled_from(ending), label="transaction")
                left = len(world.topic.transactions[txn].markers_left)
                world.write_marker(txn, data.draw(st.integers(0, left - 1), label="marker partition"))
        elif op == "garbage":
            world.write_garbage(data)
        elif op == "read":
            reader.read(data.draw(st.sampled_from(list(world.topic.partitions)), label="partition"))
        elif op == "probe":
            reader.probe()
        elif op == "hand":
            hand()
        elif op == "commit":
            committed = reader.commit()
        elif op == "crash":
            if reader.handed is not None:
                xs = reader.handed
                handed_at_crash[(xs.model_set, xs.ts, xs.size)] += 1
            reader = Reader(world.topic, committed)

    # The producers finish; the reader reads everything, hands and commits all.
    for txn in world.topic.open_transactions():
        if world.topic.transactions[txn].state == "open":
            world.end(txn, commit=True)
        while txn in world.topic.transactions:
            world.write_marker(txn, 0)
    for _ in range(3):
        while any(reader.read(p) for p in world.topic.partitions):
            pass
        reader.probe()
        while reader.queue or reader.handed is not None:
            hand()
            committed = reader.commit()
    committed = reader.commit()

    assert set(delivered) == set(world.truth), "a committed cross-section was never delivered"
    for key in world.truth:
        assert delivered[key] == 1 + handed_at_crash[key], (key, delivered[key], handed_at_crash[key])
    assert not reader.assembler.open, "an incomplete cross-section was kept after everything was read"
    assert not reader.assembler.waiting
    ends = {p: world.topic.high_watermark(p) for p in world.topic.partitions}
    assert {p: (pos.offset, pos.needed) for p, pos in committed.items()} == {p: (end, ()) for p, end in ends.items()}
