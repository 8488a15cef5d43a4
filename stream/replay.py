"""Replay a bars file into Kafka: valid bars to ``bars``, defective ones to ``bars.dlq``.

Bars go out in bar-time order, key = symbol, through an idempotent producer
(``enable.idempotence``: broker-side de-duplication of producer retries, so
a retry never doubles a bar). Each bar is checked by the same
:class:`~stream.decode.BarValidator` the engine runs, on the exact bytes
that would be published, so what reaches ``bars`` is what the engine would
accept and every reject is dead-lettered with its reason and file row.

``speed`` is the number of bar times (cross-sections) published per second,
or ``None`` for as fast as possible.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
from confluent_kafka import KafkaError, Producer

from signalml.config import Settings
from signalml.contracts import Bar, encode
from signalml.errors import ServiceError
from stream.decode import BarValidator, Rejection, dead_letter


@dataclass
class ReplaySummary:
    """What a replay did. ``rate_bars_per_s`` counts bars and rejects."""

    rows: int = 0
    published: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    bar_times: int = 0
    elapsed_s: float = 0.0
    delivery_errors: int = 0

    @property
    def rate_bars_per_s(self) -> float:
        return self.rows / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def as_dict(self) -> dict:
        return {
            "rows": self.rows,
            "published": self.published,
            "rejected": sum(self.rejected.values()),
            "rejected_by_reason": dict(sorted(self.rejected.items())),
            "bar_times": self.bar_times,
            "elapsed_s": round(self.elapsed_s, 3),
            "rate_bars_per_s": round(self.rate_bars_per_s, 1),
            "delivery_errors": self.delivery_errors,
        }


def producer_config(settings: Settings, **extra: str | int | bool) -> dict:
    """Idempotent producer settings for the configured broker."""
    return {
        "bootstrap.servers": settings.kafka.bootstrap_servers,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "batch.size": 1_000_000,
        "compression.type": "lz4",
        "queue.buffering.max.messages": 1_000_000,
        # Report failed deliveries only: a Python callback per delivered
        # message would cost more than producing it.
        "delivery.report.only.error": True,
        **extra,
    }


def encode_bars(frame: pd.DataFrame, interval: str | None = "1d") -> list[bytes]:
    """One JSON message per row of a frame from :func:`stream.bars_file.read_bars`."""
    symbols = frame["symbol"].tolist()
    ts = frame["ts"].to_numpy(np.int64).tolist()
    columns = [frame[c].to_numpy(np.float64).tolist() for c in ("open", "high", "low", "close", "volume")]
    return [
        encode(Bar(s, t, o, h, lo, c, v, interval))
        for s, t, o, h, lo, c, v in zip(symbols, ts, *columns)
    ]


def replay(
    settings: Settings,
    frame: pd.DataFrame,
    *,
    source_file: str | Path,
    speed: float | None = None,
    bars_topic: str | None = None,
    dlq_topic: str | None = None,
    progress: Callable[[int], None] | None = None,
    flush_timeout_s: float = 60.0,
) -> ReplaySummary:
    """Publish the rows of ``frame`` (ordered by bar time) and wait for delivery."""
    bars_topic = bars_topic or settings.kafka.topics.bars.name
    dlq_topic = dlq_topic or settings.kafka.topics.bars_dlq.name
    summary = ReplaySummary()
    failures: list[str] = []

    def on_delivery(err: KafkaError | None, _msg) -> None:
        if err is not None:
            summary.delivery_errors += 1
            if len(failures) < 5:
                failures.append(str(err))

    producer = Producer(producer_config(settings))
    validator = BarValidator()
    messages = encode_bars(frame)
    rows = frame["row"].to_numpy(np.int64).tolist()
    keys = frame["symbol"].tolist()
    ts = frame["ts"].to_numpy(np.int64)
    # Index where each bar time starts: throttling happens between bar times.
    boundaries = set(np.flatnonzero(np.r_[True, ts[1:] != ts[:-1]]).tolist())
    summary.bar_times = len(boundaries)
    source = str(source_file)

    started = time.perf_counter()
    next_due = started
    for i, payload in enumerate(messages):
        if speed is not None and i in boundaries:
            delay = next_due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            next_due = max(next_due, time.perf_counter() - 1.0) + 1.0 / speed
        result = validator.validate(payload)
        key = keys[i].encode()
        if isinstance(result, Rejection):
            summary.rejected[result.reason] += 1
            _produce(producer, dlq_topic, key, dead_letter(result, payload, source_file=source, source_row=rows[i]), on_delivery)
        else:
            summary.published += 1
            _produce(producer, bars_topic, key, payload, on_delivery)
        if progress is not None and (i & 1023) == 1023:
            progress(1024)
    remaining = producer.flush(flush_timeout_s)
    summary.rows = len(messages)
    summary.elapsed_s = time.perf_counter() - started
    if progress is not None:
        progress(len(messages) & 1023)
    if remaining:
        raise ServiceError(f"replay: {remaining} messages not delivered after {flush_timeout_s:.0f} s")
    if summary.delivery_errors:
        raise ServiceError(f"replay: {summary.delivery_errors} delivery errors, e.g. {failures}")
    return summary


def _produce(producer: Producer, topic: str, key: bytes, value: bytes, on_delivery) -> None:
    while True:
        try:
            producer.produce(topic, value, key, on_delivery=on_delivery)
            producer.poll(0)
            return
        except BufferError:  # local queue full: let librdkafka drain it
            producer.poll(0.05)
