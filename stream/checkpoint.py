"""Exactly-once output: signals, dead letters and a state snapshot committed
in one Kafka transaction; the snapshot holds the consumed positions.

The engine opens a transaction, produces what a batch of bars yields, then
:meth:`Checkpoint.commit` adds the snapshot (topic ``engine.state``, key =
the engine's id), which carries the consumer's positions, and commits. A
crash before the commit aborts everything of the batch (``read_committed``
readers never see it); on restart the engine restores the last committed
snapshot and seeks to the positions in it, so the batch is processed again,
once.

The positions travel in the snapshot rather than through
``send_offsets_to_transaction``: that call needs the consumer group's
coordinator and, in librdkafka, can block past its timeout while a broker
restarts. Keeping them in the snapshot leaves one coordinator (the
transaction's) in the commit, and every call here is bounded.

Every call is bounded by ``timeout_s`` and is made in slices of at most a
second, so a stop request (``should_stop``) is honoured within about a
second whatever the broker does. A failure raises :class:`TransactionFailed`
(the open transaction is lost: the engine rewinds to its last commit) or its
subclass :class:`ProducerFenced`. :meth:`Checkpoint.reset` replaces the
producer: the new one's ``init_transactions`` (same ``transactional.id``)
fences the old one and aborts whatever it left open.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Callable

import msgspec
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from signalml.config import Settings
from signalml.errors import Interrupted, ServiceError

log = logging.getLogger("signalml.engine")

# librdkafka backs reconnection off exponentially up to 10 s by default: after
# an outage of that length the engine's clients would find the returned
# broker up to 10 s late, and the lease group's rejoin and the rewind wait
# for them. One second bounds it, at the cost of a connection attempt per
# second per client while the broker is away.
RECONNECT_BACKOFF_MAX_MS = 1000
SLICE_S = 1.0  # longest single blocking call: a stop request waits at most this long

# librdkafka's verdict that another producer with our transactional.id took over.
_FENCED = {KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH}


class TransactionFailed(ServiceError):
    """The open transaction is lost (the broker is unreachable, the call timed
    out, the transaction must be aborted, or the producer failed fatally)."""


class ProducerFenced(TransactionFailed):
    """Another producer with this engine's ``transactional.id`` took over."""


Stopped = Interrupted  # a stop was requested while a Kafka call was waiting


class Checkpoint:
    """A transactional producer for one engine id."""

    def __init__(self, settings: Settings, engine_id: str, *, timeout_s: float = 10.0,
                 should_stop: Callable[[], bool] = lambda: False):
        self.settings = settings
        self.engine_id = engine_id
        self.state_topic = settings.kafka.topics.engine_state.name
        self.timeout_s = timeout_s
        self.should_stop = should_stop
        self.producer: Producer | None = None
        self.open = False

    def start(self) -> None:
        """A new producer, registered with the transaction coordinator (which
        fences any earlier producer of this engine id)."""
        self.producer = Producer(
            {
                "bootstrap.servers": self.settings.kafka.bootstrap_servers,
                "transactional.id": f"signalml-engine-{self.engine_id}",
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 1,
                "compression.type": "lz4",
                "message.max.bytes": 67_108_864,
                "transaction.timeout.ms": 60_000,
                "reconnect.backoff.max.ms": RECONNECT_BACKOFF_MAX_MS,
                "logger": rdkafka_logger(),
            }
        )
        self.open = False
        try:
            self._call("init_transactions", self.producer.init_transactions)
        except BaseException:
            # An unfinished init_transactions would go on in the background
            # and, once the coordinator answers, fence the next producer.
            self.drop()
            raise

    def reset(self) -> None:
        """Drop the producer and whatever it holds, and start a new one."""
        self.drop()
        self.start()

    def drop(self) -> None:
        """Forget the producer and whatever it holds, without a word to the broker."""
        if self.producer is not None:
            try:
                self.producer.purge(in_queue=True, in_flight=True, blocking=False)
            except KafkaException:  # a failed producer may refuse even this
                pass
        self.producer = None
        self.open = False

    def begin(self) -> None:
        if not self.open:
            try:
                self.producer.begin_transaction()
            except KafkaException as exc:
                raise self._failure("begin_transaction", exc.args[0]) from None
            self.open = True

    def produce(self, topic: str, key: bytes, value: bytes) -> None:
        """Produce inside the open transaction. While the broker is away the
        local queue fills up; waiting for room is bounded like every call."""
        self.begin()
        deadline = time.monotonic() + self.timeout_s
        while True:
            try:
                self.producer.produce(topic, value, key)
                return
            except BufferError:
                self._check_time("produce", deadline)
                self.producer.poll(0.05)
            except KafkaException as exc:
                raise self._failure("produce", exc.args[0]) from None

    def produce_many(self, topic: str, messages: list[tuple[bytes, bytes]]) -> None:
        """:meth:`produce` of each ``(key, value)``, in order, with one
        check of the transaction for all of them."""
        self.begin()
        produce = self.producer.produce
        for i, (key, value) in enumerate(messages):
            try:
                produce(topic, value, key)
            except BufferError:
                for later_key, later_value in messages[i:]:  # the bounded wait for room
                    self.produce(topic, later_key, later_value)
                return
            except KafkaException as exc:
                raise self._failure("produce", exc.args[0]) from None

    def commit(self, snapshot: bytes, *, base_parts: list[bytes] | None = None) -> None:
        """Snapshot (and, when given, the parts of a new base state, see
        :func:`base_parts`) + everything produced since :meth:`begin`,
        atomically."""
        self.begin()
        for index, part in enumerate(base_parts or []):
            self.produce(self.state_topic, base_part_key(self.engine_id, index), part)
        self.produce(self.state_topic, self.engine_id.encode(), snapshot)
        self._call("commit_transaction", self.producer.commit_transaction)
        self.open = False

    def abort(self, timeout_s: float | None = None) -> None:
        if self.open:
            self._call("abort_transaction", self.producer.abort_transaction, timeout_s)
            self.open = False

    # ---------------------------------------------------------------- calls

    def _call(self, name: str, method, timeout_s: float | None = None) -> None:
        """``method(timeout)`` in slices until it succeeds, fails for good, or
        ``timeout_s`` (default :attr:`timeout_s`) has passed. librdkafka's
        transactional calls may be called again after a retriable timeout and
        then resume where they were."""
        deadline = time.monotonic() + (self.timeout_s if timeout_s is None else timeout_s)
        while True:
            try:
                method(max(0.01, min(SLICE_S, deadline - time.monotonic())))
                return
            except KafkaException as exc:
                error: KafkaError = exc.args[0]
                if not error.retriable() or error.txn_requires_abort() or error.fatal():
                    raise self._failure(name, error) from None
                self._check_time(name, deadline, error.str())

    def _check_time(self, name: str, deadline: float, detail: str = "local queue full") -> None:
        if self.should_stop():
            raise Stopped(f"kafka transaction: {name} interrupted by a stop request")
        if time.monotonic() >= deadline:
            raise TransactionFailed(f"kafka transaction: {name} did not complete within {self.timeout_s:.0f} s "
                                    f"({detail})")

    def _failure(self, name: str, error: KafkaError) -> TransactionFailed:
        kind = ProducerFenced if error.code() in _FENCED else TransactionFailed
        return kind(f"kafka transaction: {name} failed: {error.str()}")


def rdkafka_logger() -> logging.Logger:
    """librdkafka's own log lines (a refused connection every half second
    while a broker is away) at debug level; the engine says what it waits for."""
    return _RdkafkaDebugLog()


class _RdkafkaDebugLog(logging.LoggerAdapter):
    def __init__(self) -> None:
        super().__init__(logging.getLogger("signalml.rdkafka"), {})

    def log(self, level: int, msg: object, *args: object, **kwargs) -> None:
        self.logger.debug(msg, *args)


# A base state grows with symbols x features (220 MB at 5,000 symbols and
# every feature set), past what one record may hold: it is written in parts.
BASE_PART_BYTES = 8 * 1024 * 1024


def base_key(engine_id: str) -> bytes:
    """Key of an engine's base state as one record, as engines wrote it
    before bases came in parts ('/' cannot occur in an engine id, so no
    engine's snapshot key collides with it)."""
    return f"{engine_id}/base".encode()


def base_part_key(engine_id: str, index: int) -> bytes:
    return f"{engine_id}/base/{index}".encode()


def base_parts(seq: int, blob: bytes) -> list[bytes]:
    """``blob`` (the base ``seq``) as records of at most BASE_PART_BYTES of
    data, each saying which base and which part it is."""
    view = memoryview(blob)  # slices without copying: a base is tens of MB
    chunks = [view[i:i + BASE_PART_BYTES] for i in range(0, len(blob), BASE_PART_BYTES)] or [b""]
    return [msgspec.msgpack.encode({"seq": seq, "index": i, "count": len(chunks), "data": chunk})
            for i, chunk in enumerate(chunks)]


def read_base(settings: Settings, engine_id: str, seq: int, count: int | None, *,
              should_stop: Callable[[], bool] = lambda: False) -> bytes | None:
    """The base ``seq`` of ``engine_id`` joined from its ``count`` parts (None:
    the older single record), or None when a part is missing or belongs to
    another base."""
    if count is None:
        return latest_records(settings, [base_key(engine_id)], should_stop=should_stop).get(base_key(engine_id))
    keys = [base_part_key(engine_id, i) for i in range(count)]
    records = latest_records(settings, keys, should_stop=should_stop)
    chunks = []
    for index, key in enumerate(keys):
        if key not in records:
            return None
        part = msgspec.msgpack.decode(records[key])
        if part.get("seq") != seq or part.get("index") != index or part.get("count") != count:
            return None
        chunks.append(part["data"])
    return b"".join(chunks)


def latest_snapshot(settings: Settings, engine_id: str, *, timeout_s: float = 30.0) -> bytes | None:
    """The last committed snapshot of ``engine_id`` on the state topic, or None."""
    return latest_records(settings, [engine_id.encode()], timeout_s=timeout_s).get(engine_id.encode())


def latest_records(settings: Settings, keys: list[bytes], *, timeout_s: float = 30.0,
                   should_stop: Callable[[], bool] = lambda: False) -> dict[bytes, bytes]:
    """The last committed value of each of ``keys`` on the state topic (keys
    never written are absent).

    Reads backwards in growing steps from the end of the (single-partition,
    compacted) topic, so start-up does not read the whole history. Raises
    :class:`ServiceError` when the broker does not answer within
    ``timeout_s``, :class:`Stopped` when ``should_stop`` turns true.
    """
    topic = settings.kafka.topics.engine_state.name
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka.bootstrap_servers,
            "group.id": f"signalml-restore-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
            "fetch.max.bytes": 134_217_728,
            "max.partition.fetch.bytes": 67_108_864,
            "logger": rdkafka_logger(),
        }
    )
    wanted = set(keys)
    deadline = time.monotonic() + timeout_s

    def waiting(what: str) -> None:
        if should_stop():
            raise Stopped(f"reading {topic}: interrupted by a stop request")
        if time.monotonic() > deadline:
            raise ServiceError(f"reading {topic}: {what} within {timeout_s:.0f} s")

    try:
        while True:
            try:
                low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=SLICE_S)
                break
            except KafkaException as exc:
                waiting(f"no offsets ({exc.args[0].str()})")
        step = 16
        while True:
            start = max(low, high - step)
            consumer.assign([TopicPartition(topic, 0, start)])
            found: dict[bytes, bytes] = {}
            while True:
                msg = consumer.poll(SLICE_S)
                if msg is None:
                    waiting("no end of partition")
                    continue
                if msg.error():
                    if msg.error().code() == KafkaError._PARTITION_EOF:
                        break
                    if msg.error().retriable() or msg.error().code() in (KafkaError._TRANSPORT,
                                                                          KafkaError._ALL_BROKERS_DOWN):
                        waiting(str(msg.error()))
                        continue
                    raise ServiceError(f"reading {topic}: {msg.error()}")
                if msg.key() in wanted:
                    found[msg.key()] = msg.value()
            if len(found) == len(wanted) or start == low:
                return found
            step *= 4
    finally:
        consumer.close()
