"""``signalml bench replay``: bars/s through the real broker, against a plain loop.

Both sides publish the same encoded messages to their own fresh topic with
the same partitions, then read them back:

* ``signalml``: :func:`stream.replay.replay` (validation with the engine's
  validator, dead-lettering, idempotent producer, delivery reports), then
  :func:`stream.topic_reader.read_topic`.
* ``baseline``: a bare confluent-kafka ``produce`` loop of the pre-encoded
  valid messages with the library's default settings plus ``linger.ms``
  equal to ours, then a bare ``consume`` loop.

The two run alternately ``repeats`` times; the medians are reported, and
``ratio`` is signalml / baseline (1.0 = no overhead).
"""

from __future__ import annotations

import statistics
import time
import uuid

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from signalml.config import Settings
from stream.bars_file import read_bars
from stream.replay import encode_bars, replay
from stream.topic_reader import read_topic


def run(settings: Settings, *, bars_path: str, rows: int | None = None, repeats: int = 3) -> dict:
    frame = read_bars(bars_path)
    if rows is not None:
        frame = frame.head(rows)
    messages = encode_bars(frame)
    keys = [s.encode() for s in frame["symbol"]]
    bootstrap = settings.kafka.bootstrap_servers
    partitions = settings.kafka.topics.bars.partitions
    admin = AdminClient({"bootstrap.servers": bootstrap})

    ours = {"produce": [], "consume": []}
    plain = {"produce": [], "consume": []}
    topics: list[str] = []
    try:
        for _ in range(repeats):
            bars_topic, dlq_topic, base_topic = _create(admin, partitions, "bars", "dlq", "plain")
            topics += [bars_topic, dlq_topic, base_topic]

            summary = replay(settings, frame, source_file=bars_path, bars_topic=bars_topic, dlq_topic=dlq_topic)
            ours["produce"].append(summary.rows / summary.elapsed_s)
            started = time.perf_counter()
            count = len(read_topic(bootstrap, bars_topic))
            ours["consume"].append(count / (time.perf_counter() - started))

            plain["produce"].append(_plain_produce(bootstrap, base_topic, keys, messages))
            plain["consume"].append(_plain_consume(bootstrap, base_topic, len(messages)))
    finally:
        if topics:
            for future in admin.delete_topics(topics).values():
                try:
                    future.result(30)
                except Exception:  # noqa: BLE001 - cleanup is best effort
                    pass

    def med(values: list[float]) -> float:
        return round(statistics.median(values), 1)

    return {
        "rows": len(messages),
        "partitions": partitions,
        "repeats": repeats,
        "bars_per_s": {
            "signalml": {"produce": med(ours["produce"]), "consume": med(ours["consume"])},
            "baseline": {"produce": med(plain["produce"]), "consume": med(plain["consume"])},
        },
        "ratio": {
            "produce": round(statistics.median(ours["produce"]) / statistics.median(plain["produce"]), 3),
            "consume": round(statistics.median(ours["consume"]) / statistics.median(plain["consume"]), 3),
        },
    }


def _create(admin: AdminClient, partitions: int, *names: str) -> list[str]:
    suffix = uuid.uuid4().hex[:8]
    topics = [f"bench.replay.{name}.{suffix}" for name in names]
    for future in admin.create_topics([NewTopic(t, partitions, 1) for t in topics]).values():
        future.result(30)
    return topics


def _plain_produce(bootstrap: str, topic: str, keys: list[bytes], messages: list[bytes]) -> float:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    started = time.perf_counter()
    for key, value in zip(keys, messages):
        while True:
            try:
                producer.produce(topic, value, key)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    producer.flush(60)
    return len(messages) / (time.perf_counter() - started)


def _plain_consume(bootstrap: str, topic: str, expected: int) -> float:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{uuid.uuid4().hex}", "enable.auto.commit": False})
    partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
    started = time.perf_counter()
    consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
    count = 0
    deadline = time.monotonic() + 120
    while count < expected and time.monotonic() < deadline:
        count += sum(1 for m in consumer.consume(num_messages=10_000, timeout=1.0) if not m.error())
    elapsed = time.perf_counter() - started
    consumer.close()
    return count / elapsed
