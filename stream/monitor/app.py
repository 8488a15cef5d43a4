"""``signalml monitor``: the drift monitor as a Faust app.

One agent reads the bars, both signals topics (champion and challenger)
and the control topic, in arrival order, and feeds
:class:`~stream.monitor.monitor.DriftMonitor`, whose state is the Faust
table ``state`` (changelog-backed: a restarted worker recovers it before it
processes anything; the monitor builds its indexes from the table only
when that recovery has finished). Drift events go to the drift topic keyed
by :meth:`DriftEvent.key`; each message's events are delivered before the
release it caused is committed to the table, and the message is
acknowledged only once the broker has confirmed its table writes
(:mod:`.changelog`), so a committed offset never runs ahead of the
changelog: at-least-once processing loses no input and no event, and a
replay re-sends the same keys.

Cross-sectional IC needs every symbol of a bar time in one place: the
monitor runs as one worker (its volume is one message per bar and signal).
Undecodable messages are counted (``signalml_monitor_rejected_total``) and
logged, never fatal; invalid bars were already dead-lettered by the engine.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import time

import faust
import msgspec
from faust.transport.drivers import aiokafka as faust_aiokafka
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from signalml.config import Settings
from signalml.contracts import Bar, ModelSetManifest, Signal, decoder, encode
from stream.monitor.changelog import ConfirmedTable
from stream.monitor.metrics import MonitorMetrics
from stream.monitor.monitor import DriftMonitor
from stream.monitor.positions import GapReader, Positions
from stream.roles import CHALLENGER_KEY, CHAMPION_KEY, signals_topic

log = logging.getLogger("signalml.monitor")

_bar, _signal, _manifest = decoder(Bar), decoder(Signal), decoder(ModelSetManifest)


def bars_partitions(settings: Settings) -> int:
    """The bars topic's partition count, from the broker (the configured one if it cannot say)."""
    from confluent_kafka.admin import AdminClient

    topic = settings.kafka.topics.bars.name
    try:
        metadata = AdminClient({"bootstrap.servers": settings.kafka.bootstrap_servers}).list_topics(topic, timeout=30)
        found = metadata.topics.get(topic)
        if found is not None and found.error is None and found.partitions:
            return len(found.partitions)
    except Exception as exc:  # noqa: BLE001 - confluent-kafka raises several types
        log.warning("bars topic %s: partition count unknown (%s); using the configured one", topic, exc)
    return settings.kafka.topics.bars.partitions


class _ReadCommittedThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport):
        consumer = super()._create_worker_consumer(transport)
        # Faust reads read_committed only in its exactly_once mode; the
        # engine publishes signals in transactions, and an aborted one (a
        # crash, a Triton outage) must not reach the monitor.
        consumer._isolation_level = "read_committed"
        return consumer


class _ReadCommittedConsumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self):
        return _ReadCommittedThread(self, loop=self.loop, beacon=self.beacon)


class _ReadCommittedTransport(faust_aiokafka.Transport):
    Consumer = _ReadCommittedConsumer


class MonitorApp(faust.App):
    """A Faust app whose worker consumer reads committed records only."""

    def _new_transport(self):
        return _ReadCommittedTransport(self.conf.broker_consumer, self)


def build_app(settings: Settings, *, metrics: MonitorMetrics | None = None) -> faust.App:
    cfg, kafka = settings.monitor, settings.kafka
    metrics = metrics or MonitorMetrics()
    datadir = settings.state_dir / "monitor" / cfg.app_id
    datadir.parent.mkdir(parents=True, exist_ok=True)  # Faust creates only the last level
    app = MonitorApp(
        cfg.app_id,
        broker=f"kafka://{kafka.bootstrap_servers}",
        store="memory://",
        processing_guarantee="at_least_once",
        topic_partitions=1,
        web_enabled=True,
        web_bind=cfg.http_host,
        web_host=cfg.http_host,
        web_port=cfg.http_port,
        datadir=str(datadir),
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=cfg.session_timeout_s,
    )
    sources = {
        kafka.topics.bars.name: "bars",
        signals_topic(settings, "champion"): "champion",
        signals_topic(settings, "challenger"): "challenger",
        kafka.topics.control.name: "control",
    }
    source = app.topic(*sources, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
    drift_topic = app.topic(kafka.topics.drift.name, key_serializer="raw", value_serializer="raw")
    # One changelog partition, chosen by key: a key's writes stay in order
    # whatever partition of the source the event came from.
    state = app.tables.add(ConfirmedTable(app, name="state", beacon=app.tables.beacon, partitions=1,
                                          use_partitioner=True))  # JSON values
    monitor = DriftMonitor(cfg, state, default_horizon_bars=settings.training.label_horizon_bars,
                           bars_partitions=bars_partitions(settings),
                           auto_commit=False, on_release=metrics.observe)
    started = time.monotonic()
    progress = {"last_message_at": None}

    def handle(source_name: str, key: bytes | None, value: bytes, partition: int) -> list:
        try:
            if source_name == "bars":
                bar = _bar.decode(value)
                if not (math.isfinite(bar.close) and bar.close > 0):
                    metrics.rejected.labels(source_name, "close").inc()
                    return []
                return monitor.on_bar(bar, partition)
            if source_name == "control":
                role = {CHAMPION_KEY: "champion", CHALLENGER_KEY: "challenger"}.get(key)
                if role is not None:
                    monitor.on_manifest(_manifest.decode(value))
                return []
            return monitor.on_signal(_signal.decode(value), source_name)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            metrics.rejected.labels(source_name, type(exc).__name__).inc()
            log.warning("%s partition %d: not a valid message: %s", source_name, partition, exc)
            return []

    positions = Positions(state)
    gaps = GapReader(kafka.bootstrap_servers, group_id=cfg.app_id)

    async def deliver(events: list) -> None:
        for drift_event in events:
            pending = await drift_topic.send(key=drift_event.key().encode(), value=encode(drift_event))
            await pending  # delivered before the release is committed
            metrics.drift_events.labels(drift_event.kind, drift_event.severity).inc()
            log.info("drift %s %s %s %.4f (threshold %.4f) at %d: %s", drift_event.severity, drift_event.kind,
                     drift_event.subject, drift_event.statistic, drift_event.threshold, drift_event.ts,
                     drift_event.detail)

    async def process_record(topic: str, partition: int, offset: int, key: bytes | None, value: bytes) -> None:
        source_name = sources[topic]
        metrics.messages.labels(source_name).inc()
        progress["last_message_at"] = time.monotonic()
        await deliver(handle(source_name, key, value, partition))
        monitor.commit()
        positions.advance(topic, partition, offset)  # the record's last write (see .positions)
        try:
            await state.confirmed()  # only then may Faust acknowledge the message (see .changelog)
        except Exception as exc:  # noqa: BLE001 - whatever the Kafka client raised
            # The table now lacks a write that its offsets may not: stop
            # before this message is acknowledged; a restart recovers the
            # table and replays from the last committed offset.
            log.critical("a changelog write failed (%r); exiting without acknowledging the message", exc)
            os._exit(70)

    @app.agent(source)
    async def process(stream):
        loop = asyncio.get_running_loop()
        async for event in stream.events():
            message = event.message
            if not monitor.loaded:
                # Delivered while the table is still being recovered: its
                # positions are not known yet. Left alone, it comes back
                # through the gap check of the partition's next record.
                metrics.deferred.inc()
                continue
            topic, partition, offset = message.topic, message.partition, message.offset
            expected = positions.expected(topic, partition)
            if expected is None:
                expected = await loop.run_in_executor(None, gaps.first_offset, topic, partition)
            if offset < expected:
                metrics.replayed.labels(sources[topic]).inc()
                continue  # processed before a restart
            if offset > expected:
                missed = await loop.run_in_executor(None, gaps.read, topic, partition, expected, offset)
                if missed:
                    metrics.recovered.labels(sources[topic]).inc(len(missed))
                    log.warning("%s[%d]: the consumer skipped %d records in offsets %d..%d; read them from the broker",
                                topic, partition, len(missed), expected, offset - 1)
                for missed_offset, missed_key, missed_value in missed:
                    await process_record(topic, partition, missed_offset, missed_key, missed_value)
            await process_record(topic, partition, offset, message.key, event.value)
            for role, book in monitor.books.items():
                metrics.pending.labels(role).set(len(book.pending))

    @app.on_partitions_revoked.connect
    async def on_revoked(sender, revoked, **kwargs):
        monitor.invalidate()  # the table may be recovered anew

    @app.on_rebalance_complete.connect
    async def on_rebalanced(sender, **kwargs):
        monitor.load()  # sent once the table's recovery has finished

    @app.page("/metrics")
    async def metrics_page(web, request):
        # aiohttp refuses a charset inside content_type, so the exposition
        # format's full type goes in as a header.
        return web.bytes(generate_latest(metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    @app.page("/health")
    async def health_page(web, request):
        last = progress["last_message_at"]
        return web.json({"healthy": True, "ready": monitor.loaded, "uptime_s": round(time.monotonic() - started, 1),
                         "idle_s": None if last is None else round(time.monotonic() - last, 1)})

    @app.page("/status")
    async def status_page(web, request):
        return web.json(monitor.report())

    app.signalml_monitor = monitor  # for in-process checks
    return app


def run(settings: Settings, *, loglevel: str = "info") -> None:
    """Run the worker until SIGINT/SIGTERM."""
    from signalml.services.topics import require_topics

    require_topics(settings, ["bars", "signals", "signals_challenger", "control", "drift"])
    app = build_app(settings)
    worker = faust.Worker(app, loglevel=loglevel)
    worker.execute_from_commandline()
