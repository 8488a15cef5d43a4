"""``signalml serve``: bars in, signals out, exactly once.

The loop: consume a batch of bars → validate (rejects to ``bars.dlq``) →
barrier → for each closed cross-section: features, model inputs, Triton
scores, ensemble, signals → commit signals, dead letters, drift events, the
state snapshot and the consumed offsets in one transaction.

The snapshot in each transaction is small: the validator, barrier and drift
state whole, and the feature pipeline as a journal of the inputs applied
since its last full *base* state. A base (a few MB at 500 symbols) is written
when the engine is idle, or every ``snapshot_every_bar_times`` bar times while
it catches up, in the same transaction as the journal that restarts from it.

Recovery is one mechanism for every failure: abort the open transaction,
restore the last committed snapshot, seek the consumer back to the offsets
committed with it. A crash does this at start-up; Triton becoming
unavailable does it in place, after waiting (with backoff) until the model
set answers again. Either way every bar is processed into committed output
exactly once.
"""

from __future__ import annotations

import logging
import threading
import time

import msgspec
import numpy as np
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from signalml.config import Settings
from signalml.contracts import encode
from stream.barrier import CrossSectionBarrier
from stream.checkpoint import Checkpoint, base_key, latest_records
from stream.decode import BarValidator, Rejection, dead_letter
from stream.drift import FeatureDriftWindow
from stream.inference.errors import InferenceError
from stream.model_set import ControlListener, ModelSet
from stream.observability import EngineMetrics, HealthServer
from stream.pipeline import CrossSectionPipeline
from stream.query import CommittedState, query_routes
from stream.roles import signals_topic

log = logging.getLogger("signalml.engine")

ENGINE_SNAPSHOT_VERSION = 2  # 2: msgpack, a journal over a base (1: JSON, the full state each time)


def _decode_snapshot(raw: bytes) -> dict:
    try:
        state = msgspec.msgpack.decode(raw)
    except msgspec.DecodeError as exc:
        raise ValueError(f"engine snapshot is not msgpack (an older engine's?): {exc}") from None
    if not isinstance(state, dict) or state.get("version") != ENGINE_SNAPSHOT_VERSION:
        found = state.get("version") if isinstance(state, dict) else type(state).__name__
        raise ValueError(f"engine snapshot version {found!r} is not {ENGINE_SNAPSHOT_VERSION}")
    return state


class TritonUnavailable(Exception):
    """Scoring failed; the engine rewinds to its last commit and waits."""


class Engine:
    def __init__(self, settings: Settings, *, scorer=None, registry=None):
        self.settings = settings
        self.serving = settings.serving
        self.engine_id = self.serving.engine_id
        self.metrics = EngineMetrics(registry)
        self.scorer = scorer  # (model_set, tabular, sequences) -> {member: scores}; Triton by default
        self.stop_event = threading.Event()
        self.model_set: ModelSet | None = None
        self.next_set: ModelSet | None = None
        self.triton_ok = True
        self.last_commit = time.monotonic()
        self.last_signal_at: float | None = None
        self.last_loop_at = time.monotonic()
        self.pending_signals: list = []
        self.query = CommittedState(self.engine_id)  # the committed view the query API answers from
        self.uncommitted = 0
        self.unwarmed: tuple | None = None  # (manifest, retry at) while Triton cannot warm it
        self._reset_state()

    # ---------------------------------------------------------------- state

    def _reset_state(self) -> None:
        self.pipeline = CrossSectionPipeline(self.settings, journaled=True)
        self.validator = BarValidator()
        self.barrier = CrossSectionBarrier(self.serving.barrier_timeout_s)
        self.drift: FeatureDriftWindow | None = None
        self.drift_state: dict | None = None
        self.base_seq = 0  # the pipeline base the journal continues; 0: the initial state

    def snapshot(self) -> bytes:
        """The engine state committed with every transaction, as msgpack
        (plain data, arrays as raw bytes; no pickle): the pipeline's journal
        since its base (see :meth:`base_snapshot`) and the small parts whole."""
        return msgspec.msgpack.encode(
            {
                "version": ENGINE_SNAPSHOT_VERSION,
                "engine_id": self.engine_id,
                "base_seq": self.base_seq,
                "journal": self.pipeline.journal,
                "validator": self.validator.state(),
                "barrier": self.barrier.state(),
                "model_set": self.model_set.id if self.model_set else None,
                "drift": self.drift.state() if self.drift else None,
            }
        )

    def base_snapshot(self) -> bytes:
        """The pipeline's full state, which from now on the journal continues."""
        self.base_seq += 1
        return msgspec.msgpack.encode(
            {
                "version": ENGINE_SNAPSHOT_VERSION,
                "engine_id": self.engine_id,
                "seq": self.base_seq,
                "pipeline": self.pipeline.rebase(),
            }
        )

    def restore(self, snapshot: bytes | None, base: bytes | None = None) -> None:
        self._reset_state()
        if snapshot is None:
            return
        state = _decode_snapshot(snapshot)
        pipeline_base = None
        if state["base_seq"]:
            if base is None:
                raise ValueError(f"engine snapshot refers to base {state['base_seq']}, which is missing")
            base_state = _decode_snapshot(base)
            if base_state.get("seq") != state["base_seq"]:
                raise ValueError(f"engine snapshot refers to base {state['base_seq']}, found {base_state.get('seq')}")
            pipeline_base = base_state["pipeline"]
        self.base_seq = state["base_seq"]
        self.pipeline.restore(pipeline_base, state["journal"])
        self.validator.restore(state["validator"])
        self.barrier.restore(state["barrier"])
        self.drift_state = state.get("drift")
        if self.drift is not None and self.drift_state:
            self.drift.restore(self.drift_state)

    # ---------------------------------------------------------------- wiring

    def _connect(self) -> None:
        kafka = self.settings.kafka
        self.bars_topic = kafka.topics.bars.name
        self.consumer = Consumer(
            {
                "bootstrap.servers": kafka.bootstrap_servers,
                "group.id": self.serving.consumer_group,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
                "enable.partition.eof": True,
                "fetch.wait.max.ms": 5,
                "statistics.interval.ms": 1000,
                "stats_cb": self._on_stats,
            }
        )
        metadata = self.consumer.list_topics(self.bars_topic, timeout=30).topics[self.bars_topic]
        self.partitions = sorted(metadata.partitions)
        self.checkpoint = Checkpoint(self.settings, self.consumer, self.engine_id)
        self.control = ControlListener(self.settings)  # the manifest key of serving.role
        self.signals_topic = signals_topic(self.settings)
        if self.scorer is None:
            from stream.inference.sync import SyncInferenceClient

            self.client = SyncInferenceClient.from_settings(self.settings, registry=self.metrics.registry)
            self.scorer = lambda ms, x, seq: self.client.score(ms.manifest, x, seq)
        else:
            self.client = None

    def _rewind(self) -> None:
        """Back to the last committed snapshot and offsets."""
        self.checkpoint.abort()
        self.query.discard()
        records = latest_records(self.settings, [self.engine_id.encode(), base_key(self.engine_id)])
        self.restore(records.get(self.engine_id.encode()), records.get(base_key(self.engine_id)))
        committed = self.consumer.committed([TopicPartition(self.bars_topic, p) for p in self.partitions], timeout=30)
        positions = [TopicPartition(tp.topic, tp.partition, tp.offset if tp.offset >= 0 else OFFSET_BEGINNING)
                     for tp in committed]
        self.consumer.assign(positions)
        self.barrier.assign(self.partitions)
        self.uncommitted = 0
        self.pending_signals = []
        log.info("engine %s: resumed at %s", self.engine_id, {tp.partition: tp.offset for tp in positions})

    # ---------------------------------------------------------------- model sets

    def _poll_control(self, manifest=None) -> None:
        manifest = manifest or self.control.poll(0)
        if manifest is None and self.unwarmed is not None and time.monotonic() >= self.unwarmed[1]:
            manifest = self.unwarmed[0]  # Triton could not warm it before: try again
        if manifest is None or (self.model_set and manifest.model_set == self.model_set.id):
            return
        self.unwarmed = None
        try:
            candidate = ModelSet.of(manifest, self.pipeline.names)
        except ValueError as exc:
            log.error("model set %s refused: %s", manifest.model_set, exc)
            return
        try:
            self._warm(candidate)
        except InferenceError as exc:
            log.warning("model set %s not answering yet (%s); retrying", manifest.model_set, exc)
            self.unwarmed = (manifest, time.monotonic() + 1.0)
            return
        self.next_set = candidate
        log.info("model set %s ready; it takes over at the next bar boundary", manifest.model_set)

    def _warm(self, model_set: ModelSet) -> None:
        n = len(self.pipeline.names)
        sequences = np.zeros((1, model_set.manifest.sequence_length, n), np.float32) if model_set.needs_sequences else None
        self.scorer(model_set, np.zeros((1, n), np.float32), sequences)

    def _switch_if_ready(self) -> None:
        if self.next_set is None:
            return
        if self.model_set is not None:
            self.metrics.model_set.remove(self.model_set.id)
        self.model_set, self.next_set = self.next_set, None
        self.metrics.model_set.labels(self.model_set.id).set(1)
        self.drift = FeatureDriftWindow(self.model_set.manifest.drift_reference, self.pipeline.names,
                                        self.serving.psi_window_bars, self.model_set.id)
        if self.drift_state:
            self.drift.restore(self.drift_state)

    # ---------------------------------------------------------------- the loop

    def run(self, *, idle_exit_s: float | None = None, serve_http: bool = True) -> None:
        """Process until :attr:`stop_event` is set (or, with ``idle_exit_s``,
        once every partition is read to its end, everything is committed and
        no bar arrived for that long)."""
        self._connect()
        http = None
        if serve_http:
            http = HealthServer(self.serving.http_host, self.serving.http_port, self.metrics, self.status,
                                query_routes(self.query, self.metrics)).start()
        try:
            self._rewind()
            self._poll_control(self.control.read_to_end())
            self._switch_if_ready()
            last_bar_at = time.monotonic()
            while not self.stop_event.is_set():
                self.last_loop_at = time.monotonic()
                try:
                    got_bars = self._step()
                except TritonUnavailable as exc:
                    self._wait_for_triton(exc)
                    self._rewind()
                    last_bar_at = time.monotonic()  # the rewound bars are still to read
                    continue
                if got_bars:
                    last_bar_at = time.monotonic()
                elif len(self.pipeline.journal) >= self.serving.idle_snapshot_after_bar_times and not self.uncommitted:
                    # Idle: write the full state now, off the path of the
                    # next cross-section, so its transaction stays small.
                    # Not after every bar time: at a live rate that is a
                    # multi-MB write to the broker per bar time, which
                    # slows the next cross-section's commit.
                    self._commit(rebase=True)
                elif idle_exit_s is not None and self._drained() and time.monotonic() - last_bar_at > idle_exit_s:
                    break
        finally:
            self._close(http)

    def _step(self) -> bool:
        self._poll_control()
        messages = self._consume()
        consumed_at = time.monotonic()
        closed = []
        got_bars = False
        for msg in messages:
            error = msg.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    closed += self.barrier.mark_drained(msg.partition())
                else:
                    log.warning("bars topic: %s", error)
                continue
            got_bars = True
            self.uncommitted += 1
            closed += self._take(msg)
        closed += self.barrier.due()
        for xs in closed:
            self._switch_if_ready()
            self._process(xs)
        overdue = self.uncommitted and time.monotonic() - self.last_commit > self.serving.commit_interval_s
        if closed or overdue:
            self._commit()
            if closed:
                self.metrics.bar_to_signal.observe(time.monotonic() - consumed_at)
        self._update_gauges()
        return got_bars

    def _drained(self) -> bool:
        """Every partition read to its end and everything read committed."""
        return not self.uncommitted and set(self.partitions) <= self.barrier.drained

    def _consume(self) -> list:
        """What is ready, up to ``consume_batch`` messages. ``consume(n, t)``
        alone waits until it has ``n`` messages or ``t`` has passed, which
        would hold a complete cross-section back for the whole timeout: wait
        for the first message only, then take what has arrived."""
        first = self.consumer.poll(self._poll_timeout())
        if first is None:
            return []
        more = self.serving.consume_batch - 1
        return [first, *self.consumer.consume(more, timeout=0)] if more else [first]

    def _poll_timeout(self) -> float:
        deadline = self.barrier.next_deadline_s()
        return 0.1 if deadline is None else min(0.1, deadline)

    def _take(self, msg) -> list:
        self.metrics.bars_in.inc()
        result = self.validator.validate(msg.value())
        if isinstance(result, Rejection):
            self.metrics.bars_rejected.labels(result.reason).inc()
            self._dead_letter(msg, result)
            return []
        closed, late = self.barrier.add(result, msg.partition())
        if late:
            self.metrics.bars_late.inc()
            self.pipeline.apply_late(result)
        return closed

    def _dead_letter(self, msg, rejection: Rejection) -> None:
        letter = dead_letter(rejection, msg.value() or b"", source_topic=msg.topic(),
                             source_partition=msg.partition(), source_offset=msg.offset())
        self.checkpoint.produce(self.settings.kafka.topics.bars_dlq.name, msg.key() or b"", letter)

    def _process(self, xs) -> None:
        self.metrics.cross_sections.labels(xs.reason).inc()
        prepared = self.pipeline.prepare(xs)
        self.query.stage(prepared, self.pipeline.features)
        self.metrics.last_bar_ts.set(xs.ts)
        past_warmup = self.pipeline.bar_times > self.serving.warmup_bars
        if self.model_set is None and self.unwarmed is not None and past_warmup:
            # A model set is announced but Triton cannot serve it yet: wait
            # rather than let these cross-sections go unscored.
            raise TritonUnavailable(f"model set {self.unwarmed[0].model_set} is not answering")
        if self.model_set is None or not past_warmup or not prepared.symbols:
            self._observe(prepared.stage_s)
            return
        try:
            signals = self.pipeline.score(prepared, self.model_set, self.scorer)
        except InferenceError as exc:
            raise TritonUnavailable(str(exc)) from exc
        self.triton_ok = True
        self.metrics.triton_up.set(1)
        started = time.perf_counter()
        topic = self.signals_topic
        for signal in signals:
            self.checkpoint.produce(topic, signal.symbol.encode(), encode(signal))
        if self.drift is not None:
            for event in self.drift.update(xs.ts, prepared.features):
                self.checkpoint.produce(self.settings.kafka.topics.drift.name, event.key().encode(), encode(event))
                self.metrics.drift_events.labels(event.kind, event.severity).inc()
        self.pending_signals.extend(signals)
        prepared.stage_s["publish"] = time.perf_counter() - started
        self._observe(prepared.stage_s)

    def _observe(self, stages: dict[str, float]) -> None:
        for stage, seconds in stages.items():
            self.metrics.stage_latency.labels(stage).observe(seconds)

    def _commit(self, *, rebase: bool = False) -> None:
        started = time.perf_counter()
        rebase = rebase or len(self.pipeline.journal) >= self.serving.snapshot_every_bar_times
        base = self.base_snapshot() if rebase else None
        self.checkpoint.commit(self.snapshot(), base=base)
        self.metrics.stage_latency.labels("commit").observe(time.perf_counter() - started)
        self.query.publish(self.pending_signals, self.model_set, self.barrier.last_closed_ts)
        self.last_commit = time.monotonic()
        self.uncommitted = 0
        signals = self.pending_signals
        if signals:
            self.metrics.signals_out.inc(len(signals))
            self.last_signal_at = time.monotonic()
        self.pending_signals = []

    def _wait_for_triton(self, exc: Exception) -> None:
        self.triton_ok = False
        self.metrics.triton_up.set(0)
        log.warning("triton unavailable (%s): rewinding to the last commit and waiting", exc)
        self.checkpoint.abort()
        self.pending_signals = []
        backoff = self.serving.retry_backoff_s
        target = self.model_set or ModelSet.of(self.unwarmed[0], self.pipeline.names)
        while not self.stop_event.is_set():
            self.consumer.pause(self.consumer.assignment())
            self.consumer.poll(0)  # keep the consumer alive while paused
            try:
                self._warm(target)
                if self.model_set is None:
                    self.next_set, self.unwarmed = target, None
                break
            except InferenceError:
                self._update_gauges()
                self.stop_event.wait(backoff)
                backoff = min(backoff * 2, 5.0)
        self.consumer.resume(self.consumer.assignment())
        self.triton_ok = True
        self.metrics.triton_up.set(1)

    def _update_gauges(self) -> None:
        if self.last_signal_at is not None:
            self.metrics.staleness.set(time.monotonic() - self.last_signal_at)

    def _on_stats(self, raw: str) -> None:
        """librdkafka's statistics (every second): the lag of each partition,
        from its last stable offset (read_committed) and our position. (Its
        own ``consumer_lag`` needs a committed offset, which a fresh group
        has not.)"""
        stats = msgspec.json.decode(raw)
        for partition, info in stats.get("topics", {}).get(self.bars_topic, {}).get("partitions", {}).items():
            end, position = info.get("ls_offset", -1), info.get("app_offset", -1)
            if partition != "-1" and end >= 0 and position >= 0:
                self.metrics.consumer_lag.labels(partition).set(max(0, end - position))

    def status(self) -> dict:
        stuck = time.monotonic() - self.last_loop_at > max(30.0, 10 * self.serving.request_timeout_s)
        return {
            "healthy": self.triton_ok and not stuck,
            "ready": self.model_set is not None and self.triton_ok,
            "engine_id": self.engine_id,
            "model_set": self.model_set.id if self.model_set else None,
            "triton_available": self.triton_ok,
            "last_bar_time_ms": self.barrier.last_closed_ts,
            "last_signal_ts": self.query.view.last_signal_ts,
            "staleness_s": None if self.last_signal_at is None else round(time.monotonic() - self.last_signal_at, 3),
            "bars_rejected": dict(self.validator.counts),
        }

    def _close(self, http) -> None:
        if http is not None:
            http.stop()
        try:
            self.checkpoint.abort()
        except Exception:  # noqa: BLE001 - closing after a failure
            pass
        self.consumer.close()
        self.control.close()
        if self.client is not None:
            self.client.close()


def serve(settings: Settings, *, idle_exit_s: float | None = None) -> None:
    """Run an engine on ``settings`` until SIGINT or SIGTERM (or, with
    ``idle_exit_s``, until idle), as ``signalml serve`` does."""
    import signal

    engine = Engine(settings)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: engine.stop_event.set())
    engine.run(idle_exit_s=idle_exit_s)
