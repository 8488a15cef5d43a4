"""``signalml monitor``: the drift monitor as a Faust app.

One agent reads the cross-sections topic (one record per closed
cross-section and engine role, published by the engines in the
transactions of their signals) and the control topic, in batches
(``Stream.take_events``), and feeds
:class:`~stream.monitor.monitor.DriftMonitor`, whose state is the Faust
table ``state`` (changelog-backed: a restarted worker recovers it before it
processes anything; the monitor loads its state from the table, and reads
the records still waiting for their returns back from the topic, only when
that recovery has finished). Per batch: the drift events go to the drift
topic keyed by :meth:`DriftEvent.key` and are delivered, then the table is
written (one commit record per role that changed, then the input
positions), and the batch is acknowledged only once the broker has
confirmed those writes (:mod:`.changelog`), so a committed offset never
runs ahead of the changelog: at-least-once processing loses no input and no
event, and a replay re-sends the same keys.

Cross-sectional IC needs a whole cross-section in one place, which each
record is; the monitor runs as one worker. Undecodable messages are counted
(``signalml_monitor_rejected_total``) and logged, never fatal.

Workarounds of faust-streaming 0.15.3 that remain: the worker's consumer
reads ``read_committed`` (Faust does so only in its exactly-once mode, and
an aborted engine transaction must not reach the monitor); the positions
table and gap reader (:mod:`.positions`: after a restart the consumer can
skip records), with a catch-up that, once the consumer is quiet, reads
what the partitions hold past the positions (records set aside while a
rebalance reloaded the state and acknowledged, by this process or by one
killed before it read them again; records skipped at the end of a stream,
where no later record reveals them); the confirmed table (:mod:`.changelog`: Faust can commit an
offset ahead of the changelog writes it caused). Each now costs once per
batch, not once per message.
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
from signalml.contracts import CrossSectionRecord, ModelSetManifest, decoder, encode
from signalml.errors import ServiceError
from stream.monitor.changelog import ConfirmedTable
from stream.monitor.metrics import MonitorMetrics
from stream.monitor.monitor import DriftMonitor
from stream.monitor.positions import GapReader, Positions, read_offsets
from stream.roles import CHALLENGER_KEY, CHAMPION_KEY

log = logging.getLogger("signalml.monitor")

_record, _manifest = decoder(CrossSectionRecord), decoder(ModelSetManifest)

CATCH_UP_EVERY_S = 1.0  # also how long the consumer must have been idle


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
    xs_topic = kafka.topics.cross_sections.name
    sources = {xs_topic: "cross_sections", kafka.topics.control.name: "control"}
    source = app.topic(*sources, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw")
    drift_topic = app.topic(kafka.topics.drift.name, key_serializer="raw", value_serializer="raw")
    # One changelog partition, chosen by key: a key's writes stay in order
    # whatever partition of the source the event came from.
    state = app.tables.add(ConfirmedTable(app, name="state", beacon=app.tables.beacon, partitions=1,
                                          use_partitioner=True))  # JSON values
    gaps = GapReader(kafka.bootstrap_servers, group_id=cfg.app_id)

    def fetch(offsets: list[int]) -> dict[int, CrossSectionRecord]:
        """The records at ``offsets`` of the cross-sections topic (after a restart)."""
        if not offsets:
            return {}
        wanted = set(offsets)
        found = {offset: _record.decode(value)
                 for offset, value in read_offsets(kafka.bootstrap_servers, xs_topic, 0, offsets).items()}
        missing = wanted - set(found)
        if missing:
            raise ServiceError(f"{xs_topic}: records at offsets {sorted(missing)} are gone (retention?); the monitor "
                               "cannot evaluate the cross-sections it was waiting on")
        return found

    monitor = DriftMonitor(cfg, state, default_horizon_bars=settings.training.label_horizon_bars, fetch=fetch,
                           on_release=metrics.observe)
    started = time.monotonic()
    progress = {"last_message_at": None, "loaded_at": None, "busy_s": 0.0, "batches": 0, "first_batch_at": None,
                "last_batch_done_at": None}
    positions = Positions(state)

    def handle(source_name: str, key: bytes | None, value: bytes, offset: int) -> list:
        try:
            if source_name == "control":
                role = {CHAMPION_KEY: "champion", CHALLENGER_KEY: "challenger"}.get(key)
                if role is not None:
                    monitor.on_manifest(_manifest.decode(value))
                return []
            record = _record.decode(value)
            if record.role not in monitor.roles:
                metrics.rejected.labels(source_name, "role").inc()
                log.warning("%s offset %d: a record of unknown role %r", source_name, offset, record.role)
                return []
            events = monitor.on_cross_section(record, offset)
            metrics.input_ts.labels(record.role).set(record.ts)
            return events
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            metrics.rejected.labels(source_name, type(exc).__name__).inc()
            log.warning("%s offset %d: not a valid message: %s", source_name, offset, exc)
            return []

    async def deliver(events: list) -> None:
        pending = [await drift_topic.send(key=e.key().encode(), value=encode(e)) for e in events]
        for drift_event, sent in zip(events, pending):
            await sent  # delivered before the batch's commit records are written
            metrics.drift_events.labels(drift_event.kind, drift_event.severity).inc()
            log.info("drift %s %s %s %.4f (threshold %.4f) at %d: %s", drift_event.severity, drift_event.kind,
                     drift_event.subject, drift_event.statistic, drift_event.threshold, drift_event.ts,
                     drift_event.detail)

    def process_record(topic: str, partition: int, offset: int, key: bytes | None, value: bytes) -> list:
        source_name = sources[topic]
        metrics.messages.labels(source_name).inc()
        events = handle(source_name, key, value, offset)
        positions.advance(topic, partition, offset)
        return events

    # Per source partition: the first offset the consumer delivered in this
    # process (where a partition without a position starts, even when Faust
    # has committed past records the monitor set aside), the group's start
    # (gaps.first_offset, asked once per process), and the last range
    # (start, end) in which the catch-up found nothing to read.
    first_seen: dict[tuple[str, int], int] = {}
    first_offsets: dict[tuple[str, int], int] = {}
    read_to_end: dict[tuple[str, int], tuple[int, int]] = {}
    batch_lock = asyncio.Lock()  # one batch at a time: the agent's or the catch-up's

    async def expected_offset(topic: str, partition: int, loop) -> int:
        """The next offset the monitor processes on a source partition."""
        expected = positions.expected(topic, partition)
        if expected is None:
            if (topic, partition) not in first_offsets:
                first_offsets[(topic, partition)] = await loop.run_in_executor(None, gaps.first_offset, topic,
                                                                               partition)
            expected = first_offsets[(topic, partition)]
            expected = min(expected, first_seen.get((topic, partition), expected))
        return expected

    async def in_order(topic: str, partition: int, offset: int, key, value, loop) -> list:
        """The record, after any the consumer skipped before it (see .positions)."""
        expected = await expected_offset(topic, partition, loop)
        if offset < expected:
            metrics.replayed.labels(sources[topic]).inc()
            return []  # processed before a restart
        events = []
        if offset > expected:
            missed = await loop.run_in_executor(None, gaps.read, topic, partition, expected, offset)
            if missed:
                metrics.recovered.labels(sources[topic]).inc(len(missed))
                log.warning("%s[%d]: the consumer skipped %d records in offsets %d..%d; read them from the broker",
                            topic, partition, len(missed), expected, offset - 1)
            for missed_offset, missed_key, missed_value in missed:
                events += process_record(topic, partition, missed_offset, missed_key, missed_value)
        return events + process_record(topic, partition, offset, key, value)

    async def changelog_known() -> None:
        """Wait until the producer knows the table's changelog topic. Faust
        picks a table write's partition from the producer's cached metadata,
        which lacks a changelog topic created after the producer's last
        metadata update: the write then raises TypeError inside Faust and the
        worker crashes. Immediate once the topic is known."""
        await app.producer._ensure_producer().partitions_for(state.changelog_topic.get_topic_name())

    async def process_batch(records: list[tuple], loop) -> bool:
        """Records ``(topic, partition, offset, key, value)`` in order: their
        events delivered, then the table written and confirmed. False when a
        rebalance reloaded the state meanwhile (nothing is written then)."""
        await changelog_known()
        started_at = time.monotonic()
        generation = monitor.generation
        events = []
        for topic, partition, offset, key, value in records:
            if not monitor.loaded or monitor.generation != generation:
                break  # a rebalance reloads the state: the rest waits for it
            events += await in_order(topic, partition, offset, key, value, loop)
        await deliver(events)
        if not monitor.loaded or monitor.generation != generation:
            # The batch's changes are gone from memory, so its positions are
            # not written either; the catch-up reads its records again once
            # the consumer is idle (their events, re-sent, keep their keys).
            positions.forget()
            return False
        monitor.commit()
        positions.flush()  # the batch's last writes (see .positions)
        try:
            await state.confirmed()  # only then may Faust acknowledge the batch (see .changelog)
        except Exception as exc:  # noqa: BLE001 - whatever the Kafka client raised
            # The table now lacks a write that its offsets may not: stop
            # before this batch is acknowledged; a restart recovers the
            # table and replays from the last committed offset.
            log.critical("a changelog write failed (%r); exiting without acknowledging the batch", exc)
            os._exit(70)
        for role in monitor.roles:
            metrics.pending.labels(role).set(len(monitor.windows[role]))
        metrics.batch_records.observe(len(records))
        progress["busy_s"] += time.monotonic() - started_at
        progress["batches"] += 1
        progress["first_batch_at"] = progress["first_batch_at"] or started_at
        progress["last_batch_done_at"] = time.monotonic()
        return True

    @app.agent(source)
    async def process(stream):
        loop = asyncio.get_running_loop()
        async for batch in stream.take_events(cfg.batch_max_records, within=cfg.batch_wait_s):
            records = [(e.message.topic, e.message.partition, e.message.offset, e.message.key, e.value)
                       for e in batch]
            for topic, partition, offset, _, _ in records:
                first_seen.setdefault((topic, partition), offset)
            progress["last_message_at"] = time.monotonic()
            if not monitor.loaded:
                # Delivered while the table is still being recovered: its
                # positions are not known yet. Set aside (and acknowledged):
                # a later record reveals them, or the catch-up reads them.
                metrics.deferred.inc(len(batch))
                continue
            async with batch_lock:
                await process_batch(records, loop)

    @app.timer(CATCH_UP_EVERY_S)
    async def catch_up():
        """Process what the partitions hold past the monitor's positions once
        the consumer has delivered nothing for a while. Records can be on the
        broker and yet never reach the agent: set aside during a recovery or
        a rebalance and acknowledged, acknowledged so by an earlier process
        that was killed before it read them again, or skipped by the
        consumer. In a stream that goes on, the next record reveals them;
        at the end of a stream, or when the consumer starts past them, only
        the partition's end does."""
        quiet_since = max(progress["last_message_at"] or 0.0, progress["loaded_at"] or 0.0)
        if not monitor.loaded or time.monotonic() - quiet_since < CATCH_UP_EVERY_S:
            return
        loop = asyncio.get_running_loop()
        await changelog_known()
        async with batch_lock:
            for tp in sorted(app.consumer.assignment()):
                if tp.topic not in sources or not monitor.loaded:
                    continue
                expected = await expected_offset(tp.topic, tp.partition, loop)
                end = await loop.run_in_executor(None, gaps.end_offset, tp.topic, tp.partition)
                if expected >= end or read_to_end.get((tp.topic, tp.partition)) == (expected, end):
                    continue
                missed = await loop.run_in_executor(None, gaps.read, tp.topic, tp.partition, expected, end)
                if not missed:
                    # Transaction markers, aborted or still open records: the
                    # same range reads the same until the partition grows.
                    read_to_end[(tp.topic, tp.partition)] = (expected, end)
                    continue
                metrics.recovered.labels(sources[tp.topic]).inc(len(missed))
                log.warning("%s[%d]: the consumer delivered nothing for %.0f s while %d records in offsets %d..%d "
                            "awaited; read them from the broker", tp.topic, tp.partition, CATCH_UP_EVERY_S,
                            len(missed), expected, end - 1)
                for start in range(0, len(missed), cfg.batch_max_records):
                    chunk = missed[start:start + cfg.batch_max_records]
                    if not await process_batch([(tp.topic, tp.partition, *record) for record in chunk], loop):
                        return  # a rebalance: the next quiet tick starts again from the positions

    @app.on_partitions_revoked.connect
    async def on_revoked(sender, revoked, **kwargs):
        monitor.invalidate()  # the table may be recovered anew
        positions.forget()

    @app.on_rebalance_complete.connect
    async def on_rebalanced(sender, **kwargs):
        # Sent once the table's recovery has finished: load it afresh, even
        # if something loaded it meanwhile from a table still recovering.
        positions.forget()
        monitor.invalidate()
        monitor.load()
        progress["loaded_at"] = time.monotonic()

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
        # span_s: first batch started -> last batch done (waits for input
        # included), the denominator of `signalml bench monitor`; busy_s: the
        # time inside batches (processing, delivering, writing and confirming
        # the table).
        first, last = progress["first_batch_at"], progress["last_batch_done_at"]
        return web.json({**monitor.report(), "batches": progress["batches"], "busy_s": round(progress["busy_s"], 4),
                         "span_s": None if first is None else round(last - first, 4)})

    app.signalml_monitor = monitor  # for in-process checks
    return app


def run(settings: Settings, *, loglevel: str = "info") -> None:
    """Run the worker until SIGINT/SIGTERM."""
    from signalml.services.topics import require_topics

    require_topics(settings, ["cross_sections", "control", "drift"])
    if settings.kafka.topics.cross_sections.partitions != 1:
        # Each role's records must be read in the order the engine wrote them.
        raise ServiceError(f"kafka.topics.cross_sections.partitions is {settings.kafka.topics.cross_sections.partitions}:"
                           " the monitor reads one partition")
    app = build_app(settings)
    worker = faust.Worker(app, loglevel=loglevel)
    worker.execute_from_commandline()
