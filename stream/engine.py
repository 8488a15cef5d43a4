"""``signalml serve``: bars in, signals out, exactly once.

The loop: consume a batch of bars → validate (rejects to ``bars.dlq``) →
barrier → for each closed cross-section: features, model inputs, Triton
scores, ensemble, signals → commit signals, dead letters, drift events, the
state snapshot and the consumed offsets in one transaction.

With ``serving.max_in_flight`` = K > 1, up to K closed cross-sections wait
for their scores at once (Triton slower than the engine: a remote GPU,
several endpoints), and the engine goes on taking bars meanwhile; features
still advance one bar time after the other, in the order the cross-sections
close, and the results go into each step's one transaction in bar-time
order, so what is committed does not depend on K. While a backlog lasts,
requests stay in flight across commits: a step ends at a *cut* (the state
snapshot taken right after its last bar), the next step's bars are taken
and scored while the step's last scores come back, and its transaction,
committed with the snapshot of the cut, holds exactly what the bars before
the cut yield; what later bars yield waits behind the cut, in order.

The snapshot in each transaction is small: the validator, barrier and drift
state whole, and the feature pipeline as a journal of the inputs applied
since its last full *base* state. A base (a few MB at 500 symbols) is written
when the engine is idle, or every ``snapshot_every_bar_times`` bar times while
it catches up, in the same transaction as the journal that restarts from it.

Recovery is one mechanism for every failure: abort the open transaction,
restore the last committed snapshot, seek the consumer back to the positions
committed in it. A crash does this at start-up; Triton becoming unavailable
does it in place, after waiting (with backoff) until the model set answers
again; a Kafka call that fails or times out (a broker restarting, a lost
coordinator, a fenced or failed producer) does it with a new producer, whose
``init_transactions`` fences the old one and aborts what it left open, once
the broker answers again. Either way every bar is processed into committed
output exactly once. Every blocking call is bounded, and a stop request is
honoured within about a second in every state.

Several engines may run with one engine id: the one that holds the lease
(:mod:`stream.lease`) is active, the others stand by. An engine that gains
the lease starts as a restarted one does: a new producer (fencing whatever
the previous holder left open), the last committed snapshot, its positions.
One that loses it (revoked, its session lost, or its producer fenced) aborts
its open transaction, drops its producer and state, and stands by.

Each bar passes, in order: the decoder (a malformed or implausible bar is
dead-lettered), the bar-time gate (:mod:`stream.admission`: a bar far ahead
of its partition is held, then dead-lettered unless its partition follows
it), the per-symbol order, and the barrier (:mod:`stream.barrier`), whose
cross-sections depend only on what the partitions hold. Partitions that run
far ahead of the oldest open bar time are paused, so the bars held between
commits stay bounded.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import msgspec
import numpy as np
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from signalml.config import Settings
from signalml.contracts import encode
from signalml.errors import Interrupted, ServiceError
from signalml.services.topics import engine_topic_keys, require_topics
from stream.admission import Admitted, BarTimeGate, Source
from stream.barrier import CrossSectionBarrier
from stream.checkpoint import (RECONNECT_BACKOFF_MAX_MS, Checkpoint, ProducerFenced, Stopped, base_parts,
                              latest_records, rdkafka_logger, read_base)
from stream.decode import BarValidator, Rejection, dead_letter
from stream.drift import FeatureDriftWindow
from stream.inference.errors import InferenceError
from stream.lease import Lease
from stream.model_set import ControlListener, ModelSet
from stream.observability import EngineMetrics, HealthServer
from stream.pipeline import CrossSectionPipeline, compile_ahead
from stream.query import CommittedState, query_routes
from stream.roles import signals_topic
from stream.signals import build_record, signal_messages

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


@dataclass
class _Scoring:
    """A prepared cross-section whose scores are on their way (``future``
    None: it is not scored), and the model set active at it."""

    xs: object  # CrossSection
    prepared: object  # Prepared
    model_set: ModelSet | None
    future: Future | None = None
    started: float = 0.0
    drift_events: list = field(default_factory=list)


@dataclass
class _Cut:
    """The end of a step's transaction: the engine's state right after the
    step's last bar, captured while later bars may already be taken (what
    they yield waits behind this in the window). Committed once everything
    before it in the window is published."""

    snapshot: bytes
    base_parts: list[bytes] | None
    positions: dict[int, int]
    model_set: ModelSet | None
    last_bar_ts: int | None
    consumed_at: float  # when the step's bars were consumed
    bars: int  # bars taken in the step (0: a commit of state alone, e.g. a new base while idle)
    closed: int  # cross-sections closed in the step
    encode_s: float  # capturing the state took this long (counted in the commit's stage time)


@dataclass
class _Letter:
    """A dead letter of a bar taken while the window held something."""

    topic: str
    key: bytes
    value: bytes


class TritonUnavailable(Exception):
    """Scoring failed; the engine rewinds to its last commit and waits."""


class EngineFenced(ServiceError):
    """Other engines with this engine id keep taking over: this one gives way."""


class LeaseLost(Exception):
    """This engine no longer holds the lease: it stops acting and stands by."""

    def __init__(self, reason: str, *, fenced: bool = False):
        super().__init__(reason)
        self.fenced = fenced


# Fenced this many times within FENCING_WINDOW_S: another live engine has our
# id and does not follow the lease (e.g. its lease topic is configured
# differently), so stop instead of fencing it back. An engine that lost its
# lease while slow is fenced once.
MAX_FENCINGS = 3
FENCING_WINDOW_S = 600.0
MAX_BACKOFF_S = 5.0


class Engine:
    def __init__(self, settings: Settings, *, scorer=None, registry=None):
        self.settings = settings
        self.serving = settings.serving
        self.engine_id = self.serving.engine_id
        self.metrics = EngineMetrics(registry)
        self.scorer = scorer  # (model_set, tabular, sequences) -> {member: scores}; Triton by default
        # max_in_flight > 1: scoring requests run on these threads (the
        # scorer blocks), the cross-sections are still published in order.
        k = self.serving.max_in_flight
        self.scoring_pool = ThreadPoolExecutor(k, thread_name_prefix="signalml-scoring") if k > 1 else None
        self.stop_event = threading.Event()
        self.model_set: ModelSet | None = None
        self.next_set: ModelSet | None = None
        self.triton_ok = True
        self.last_commit = time.monotonic()
        self.last_cut = time.monotonic()  # commit_interval_s runs from here: a cut ends a transaction
        self.last_signal_at: float | None = None
        self.last_loop_at = time.monotonic()
        self.pending_signals: list = []  # the signals of each cross-section since the last commit
        self.query = CommittedState(self.engine_id)  # the committed view the query API answers from
        self.uncommitted = 0  # bars taken since the last cut
        # In the order taken: cross-sections being scored (_Scoring), the ends
        # of transactions still to commit (_Cut), dead letters (_Letter).
        self.window: deque = deque()
        self.in_flight = 0  # the _Scoring entries in the window
        self.unwarmed: tuple | None = None  # (manifest, retry at) while Triton cannot warm it
        self.kafka_ok = True
        self.recovering = False  # in _recover: only its success says Kafka is back
        self.positions: dict[int, int] = {}  # partition -> next offset to process, as of the last bar taken
        self.paused: set[int] = set()
        self.fencings: list[float] = []
        self.lease: Lease | None = None
        self.role = "standby"  # "active" while it holds the lease
        self._reset_state()

    # ---------------------------------------------------------------- state

    def _reset_state(self) -> None:
        self.pipeline = CrossSectionPipeline(self.settings, journaled=True)
        self.validator = BarValidator()
        self.gate = BarTimeGate(int(self.serving.max_ts_ahead_s * 1000))
        self.barrier = CrossSectionBarrier(self.serving.barrier_timeout_s)
        self.drift: FeatureDriftWindow | None = None
        self.drift_state: dict | None = None
        self.base_seq = 0  # the pipeline base the journal continues; 0: the initial state
        self.base_count: int | None = None  # the records that base was written in

    def snapshot(self) -> bytes:
        """The engine state committed with every transaction, as msgpack
        (plain data, arrays as raw bytes; no pickle): the pipeline's journal
        since its base (see :meth:`base_snapshot`) and the small parts whole."""
        return msgspec.msgpack.encode(
            {
                "version": ENGINE_SNAPSHOT_VERSION,
                "engine_id": self.engine_id,
                "base_seq": self.base_seq,
                "base_parts": self.base_count,
                "journal": self.pipeline.journal,
                "validator": self.validator.state(),
                "gate": self.gate.state(),
                "barrier": self.barrier.state(),
                "positions": {str(p): offset for p, offset in sorted(self.positions.items())},
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

    def base_records(self) -> list[bytes]:
        """:meth:`base_snapshot` as the records it is written in."""
        blob = self.base_snapshot()
        parts = base_parts(self.base_seq, blob)
        self.base_count = len(parts)
        return parts

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
        self.base_seq, self.base_count = state["base_seq"], state.get("base_parts")
        self.pipeline.restore(pipeline_base, state["journal"])
        self.validator.restore(state["validator"])
        if state.get("gate") is not None:
            self.gate.restore(state["gate"])
        self.barrier.restore(state["barrier"])
        self.drift_state = state.get("drift")
        if self.model_set is not None:
            # A rewind in place keeps the set in service: its window goes on
            # from the snapshot (a fresh one if the snapshot was of another set).
            self.drift = self._drift_window(self.model_set)

    # ---------------------------------------------------------------- wiring

    def _connect(self) -> None:
        kafka = self.settings.kafka
        self.bars_topic = kafka.topics.bars.name
        require_topics(self.settings, engine_topic_keys(self.settings), should_stop=self.stop_event.is_set)
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
                "error_cb": self._on_error,
                "reconnect.backoff.max.ms": RECONNECT_BACKOFF_MAX_MS,
                "logger": rdkafka_logger(),
            }
        )
        self.partitions = list(range(kafka.topics.bars.partitions))  # require_topics checked the count
        self.checkpoint = Checkpoint(self.settings, self.engine_id, should_stop=self.stop_event.is_set)
        self.control = ControlListener(self.settings)  # the manifest key of serving.role
        self.signals_topic = signals_topic(self.settings)
        if self.scorer is None:
            from stream.inference.sync import SyncInferenceClient

            self.client = SyncInferenceClient.from_settings(self.settings, registry=self.metrics.registry)
            self.scorer = lambda ms, x, seq: self.client.score(ms.manifest, x, seq)
        else:
            self.client = None

    def _rewind(self) -> None:
        """Back to the last committed snapshot and the positions in it."""
        self._cancel_in_flight()
        self.query.discard()
        key = self.engine_id.encode()
        snapshot = latest_records(self.settings, [key], should_stop=self.stop_event.is_set).get(key)
        base = None
        if snapshot is not None:
            state = _decode_snapshot(snapshot)
            if state["base_seq"]:
                base = read_base(self.settings, self.engine_id, state["base_seq"], state.get("base_parts"),
                                 should_stop=self.stop_event.is_set)
        self.restore(snapshot, base)
        self.positions = self._committed_positions(snapshot)
        self.consumer.assign([TopicPartition(self.bars_topic, p, self.positions.get(p, OFFSET_BEGINNING))
                              for p in self.partitions])
        self.paused = set()
        self.barrier.assign(self.partitions)
        self.uncommitted = 0
        self.pending_signals = []
        log.info("engine %s: resumed at %s", self.engine_id,
                 {p: self.positions.get(p, "beginning") for p in self.partitions})

    def _committed_positions(self, snapshot: bytes | None) -> dict[int, int]:
        """The positions committed with ``snapshot``. An engine id without a
        snapshot starts where its consumer group stands (a deployment may set
        it, e.g. to skip history), else at the beginning."""
        if snapshot is not None:
            positions = _decode_snapshot(snapshot).get("positions")
            if positions is not None:
                return {int(p): int(offset) for p, offset in positions.items()}
        wanted = [TopicPartition(self.bars_topic, p) for p in self.partitions]
        committed = self.consumer.committed(wanted, timeout=10)
        return {tp.partition: tp.offset for tp in committed if tp.offset >= 0}

    def _recover(self, cause: str, exc: BaseException | None) -> None:
        """Rewind to the last commit with a new producer, waiting (with
        backoff, logging what for) until Kafka answers; ``exc`` None: the
        start. Raises :class:`LeaseLost` when another engine with our id
        fenced this one, or the lease is revoked meanwhile."""
        if isinstance(exc, ProducerFenced):
            raise LeaseLost(f"fenced by another engine with this id ({exc})", fenced=True) from None
        if exc is not None:
            log.warning("engine %s: %s; rewinding to the last commit", self.engine_id, exc)
            self.metrics.rewinds.labels(cause).inc()
            if cause == "kafka":
                self._set_kafka(False)
        self.recovering = True
        try:
            self._rewind_until_kafka_answers(exc, self.serving.retry_backoff_s)
        finally:
            self.recovering = False
        if cause == "kafka" and not self.stop_event.is_set():
            log.info("engine %s: Kafka answers again; processing resumes", self.engine_id)

    def _rewind_until_kafka_answers(self, exc: BaseException | None, backoff: float) -> None:
        first = True
        while not self.stop_event.is_set():
            self._check_lease()
            try:
                if exc is not None or not first or self.checkpoint.producer is None:
                    self.checkpoint.reset()
                self._rewind()
                break
            except Stopped:
                return
            except (ServiceError, KafkaException) as error:
                self._set_kafka(False)
                log.warning("engine %s: waiting for Kafka at %s: %s (next try in %.1f s)", self.engine_id,
                            self.settings.kafka.bootstrap_servers, _kafka_error(error), backoff)
                self.stop_event.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
                first = False
        if not self.stop_event.is_set():
            self._set_kafka(True)

    def _set_kafka(self, ok: bool) -> None:
        self.kafka_ok = ok
        self.metrics.kafka_up.set(1 if ok else 0)

    # ---------------------------------------------------------------- the lease

    def _await_lease(self) -> bool:
        """Stand by until this engine holds the lease; False: stopped first."""
        self._set_role("standby")
        since, said = time.monotonic(), False
        while not self.stop_event.is_set():
            self.last_loop_at = time.monotonic()
            # acquire() before looking: a revocation from now on waits for our release().
            self.lease.acquire()
            if self.lease.held:
                self._set_role("active")
                return True
            self.lease.release()
            if not said and time.monotonic() - since > 2.0:
                log.info("engine %s: standing by; another engine with this id holds the lease", self.engine_id)
                said = True
            self.consumer.poll(0.1)  # serves the consumer's broker state and statistics meanwhile
        return False

    def _check_lease(self) -> None:
        if self.lease is not None and not self.lease.held:
            raise LeaseLost("the lease was revoked")

    def _stand_by(self, lost: LeaseLost) -> None:
        """Stop acting on a lease this engine no longer holds: abort the open
        transaction, drop the producer, the state and the positions. What was
        not committed is for the next holder, which restores the last commit."""
        log.warning("engine %s: %s; standing by", self.engine_id, lost)
        if lost.fenced:
            now = time.monotonic()
            self.fencings = [t for t in self.fencings if now - t < FENCING_WINDOW_S] + [now]
            if len(self.fencings) >= MAX_FENCINGS:
                raise EngineFenced(f"engine {self.engine_id}: fenced {len(self.fencings)} times within "
                                   f"{FENCING_WINDOW_S:.0f} s: another engine with this id is running") from None
        try:
            self.checkpoint.abort(timeout_s=2.0)
        except (ServiceError, KafkaException):  # fenced or the broker away: the next holder aborts it
            pass
        self.checkpoint.drop()
        self.consumer.unassign()
        self._cancel_in_flight()
        self.query.discard()
        self._reset_state()
        self.positions, self.paused, self.uncommitted, self.pending_signals = {}, set(), 0, []
        if self.model_set is not None:
            self.metrics.model_set.remove(self.model_set.id)
        self.model_set = self.next_set = self.unwarmed = None  # the next holder reads the control topic again
        self.control.rewind()
        self._set_role("standby")
        if lost.fenced:
            self.lease.relinquish()
        self.lease.release()

    def _set_role(self, role: str) -> None:
        self.role = role
        self.metrics.active.set(1 if role == "active" else 0)

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
        self.drift = self._drift_window(self.model_set)

    def _drift_window(self, model_set: ModelSet) -> FeatureDriftWindow:
        """The inline feature-drift window of ``model_set``, from the restored state where it is that set's."""
        window = FeatureDriftWindow(model_set.manifest.drift_reference, self.pipeline.names,
                                    self.serving.psi_window_bars, model_set.id)
        if self.drift_state:
            window.restore(self.drift_state)
        return window

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
        # Before the lease: a standby that takes over, like the first bar
        # after a start on a fresh install, must not wait seconds for numba.
        log.info("feature loops ready in %.2f s", compile_ahead(self.settings))
        address = f"{self.serving.http_host}:{http.port}" if http is not None else "-"
        self.lease = Lease(self.settings, self.engine_id, http_address=address).start()
        try:
            while self._await_lease():
                try:
                    self._serve(idle_exit_s)
                    break
                except LeaseLost as lost:
                    self._stand_by(lost)
        finally:
            self._close(http)

    def _serve(self, idle_exit_s: float | None) -> None:
        """Active: from the last commit on, until stopped or (``idle_exit_s``) idle.
        Raises :class:`LeaseLost` once the lease is gone."""
        self._recover("start", None)
        if not self.stop_event.is_set():
            self._poll_control(self.control.read_to_end())
            self._switch_if_ready()
        last_bar_at = time.monotonic()
        while not self.stop_event.is_set():
            self.last_loop_at = time.monotonic()
            try:
                got_bars = self._step()
                if got_bars:
                    last_bar_at = time.monotonic()
                elif (len(self.pipeline.journal) >= self.serving.idle_snapshot_after_bar_times
                      and not self.uncommitted and not self.window):
                    # Idle: write the full state now, off the path of the
                    # next cross-section, so its transaction stays small.
                    # Not after every bar time: at a live rate that is a
                    # multi-MB write to the broker per bar time, which
                    # slows the next cross-section's commit.
                    self._commit(rebase=True)
                elif idle_exit_s is not None and self._drained() and time.monotonic() - last_bar_at > idle_exit_s:
                    if not self.gate.held:
                        break
                    # The end of a finite replay: nothing can confirm a held bar any more.
                    self._refuse_held()
                    self._commit()
            except TritonUnavailable as exc:
                self._wait_for_triton(exc)
                self._recover("triton", exc)
                last_bar_at = time.monotonic()  # the rewound bars are still to read
            except Stopped:
                break
            except (ServiceError, KafkaException) as exc:
                self._recover("kafka", exc)
                last_bar_at = time.monotonic()
        self._finish_in_flight()

    def _finish_in_flight(self) -> None:
        """Stopping: commit what the steps taken so far yield, if that can
        be done now; else it is left to be redone after a restart."""
        if not self.window:
            return
        try:
            self._drain()
        except (TritonUnavailable, LeaseLost, Stopped, ServiceError, KafkaException) as exc:
            log.warning("engine %s: stopping with uncommitted cross-sections (%s); they are redone on restart",
                        self.engine_id, exc)
            self._cancel_in_flight()

    def _step(self) -> bool:
        """Take what the consumer has, score each cross-section as soon as it
        closes (up to ``max_in_flight`` at once, so the bars still to take
        are read while Triton scores the ones before) and end the step's
        transaction at a cut. Cross-sections are published in bar-time order
        and each cut is committed once all before it are; while a backlog
        lasts the last ones stay in flight into the next step (see
        :meth:`_consume`). Any failure leaves the open transaction to be
        aborted: everything in flight is cancelled and redone after the
        rewind."""
        try:
            self._check_lease()
            self._poll_control()
            messages = self._consume()
            consumed_at = time.monotonic()
            closed = 0
            got_bars = False
            for msg in messages:
                error = msg.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        closed += self._advance(self.barrier.mark_drained(msg.partition()))
                    else:
                        log.warning("bars topic: %s", error)
                    continue
                got_bars = True
                self.uncommitted += 1
                self.positions[msg.partition()] = msg.offset() + 1
                closed += self._advance(self._take(msg))
            closed += self._advance(self.barrier.due())
            # From the last cut, not the last commit: while cross-sections are in
            # flight the commit of a cut waits for them, and every step of a
            # backlog would otherwise end a transaction of its own.
            overdue = self.uncommitted and time.monotonic() - self.last_cut > self.serving.commit_interval_s
            if closed or overdue:
                self._cut(consumed_at, closed)
            if not self._backlogged(len(messages)):
                self._drain()
        except BaseException:
            self._cancel_in_flight()
            raise
        self._pace()
        self._update_gauges()
        return got_bars

    def _backlogged(self, taken: int) -> bool:
        """Whether to leave the cross-sections in flight into the next step:
        K > 1 and a full batch was taken (more is likely waiting)."""
        return (self.scoring_pool is not None and taken >= self._batch_size()
                and not self.stop_event.is_set())

    def _pace(self) -> None:
        """Pause the partitions that run so far ahead that their bars would
        only pile up in the barrier (and in every snapshot), resume them when
        the oldest bar times have caught up. Which bars form a cross-section
        does not depend on this: only on what the partitions hold."""
        wanted = self.barrier.ahead_partitions(self.serving.max_pending_bars)
        if wanted == self.paused:
            return
        pause, resume = wanted - self.paused, self.paused - wanted
        if pause:
            self.consumer.pause([TopicPartition(self.bars_topic, p) for p in sorted(pause)])
        if resume:
            self.consumer.resume([TopicPartition(self.bars_topic, p) for p in sorted(resume)])
        self.paused = wanted
        self.metrics.paused_partitions.set(len(wanted))

    def _drained(self) -> bool:
        """Every partition read to its end, every bar time closed and
        everything read committed."""
        return (not self.uncommitted and not self.window and not self.barrier.pending
                and set(self.partitions) <= self.barrier.drained)

    def _consume(self) -> list:
        """What is ready, up to ``consume_batch`` messages. ``consume(n, t)``
        alone waits until it has ``n`` messages or ``t`` has passed, which
        would hold a complete cross-section back for the whole timeout: wait
        for the first message only, then take what has arrived. With
        cross-sections in flight from the step before, nothing is waited
        for: if nothing has arrived they are published and committed now."""
        first = self.consumer.poll(0 if self.window else self._poll_timeout())
        if first is None:
            self._drain()
            return []
        more = self._batch_size() - 1
        return [first, *self.consumer.consume(more, timeout=0)] if more else [first]

    def _batch_size(self) -> int:
        # A backlog closes about max_in_flight cross-sections per step, so
        # that many can be scored at once.
        return self.serving.consume_batch * self.serving.max_in_flight

    def _poll_timeout(self) -> float:
        deadline = self.barrier.next_deadline_s()
        return 0.1 if deadline is None else min(0.1, deadline)

    def _take(self, msg) -> list:
        self.metrics.bars_in.inc()
        source = Source(msg.value() or b"", msg.key() or b"", msg.partition(), msg.offset())
        result = self.validator.decode(source.value)
        if isinstance(result, Rejection):
            self._dead_letter(result, source)
            return []
        closed = []
        for decision in self.gate.offer(source.partition, result, source, floor_ts=self.barrier.last_closed_ts):
            if not isinstance(decision, Admitted):
                self.validator.count(decision.rejection)
                self._dead_letter(decision.rejection, decision.source)
                continue
            bar = self.validator.admit(decision.bar)
            if isinstance(bar, Rejection):
                self._dead_letter(bar, decision.source)
                continue
            sections, late = self.barrier.add(bar, source.partition)
            closed += sections
            if late:
                self.metrics.bars_late.inc()
                self.pipeline.apply_late(bar)
        return closed

    def _refuse_held(self) -> None:
        for decision in self.gate.release_held():
            self.validator.count(decision.rejection)
            self._dead_letter(decision.rejection, decision.source)

    def _dead_letter(self, rejection: Rejection, source: Source) -> None:
        self.metrics.bars_rejected.labels(rejection.reason).inc()
        letter = dead_letter(rejection, source.value, source_topic=self.bars_topic,
                             source_partition=source.partition, source_offset=source.offset)
        topic = self.settings.kafka.topics.bars_dlq.name
        if self.window:  # behind what is in flight: after a cut there, in the next transaction
            self.window.append(_Letter(topic, source.key, letter))
        else:
            self.checkpoint.produce(topic, source.key, letter)

    def _advance(self, closed: list) -> int:
        """Start the closed cross-sections, in bar-time order: each prepared
        after the one before (the features advance one bar time at a time)
        and its scores requested at once, publishing the oldest in the
        window whenever ``max_in_flight`` are outstanding. A new model set
        waits until the cross-sections of the outgoing one are published, so
        each is scored, recorded and drift-checked by the set active at it.
        Returns how many closed."""
        for xs in closed:
            if self.next_set is not None:
                self._drain()
            self._switch_if_ready()
            while self.in_flight >= self.serving.max_in_flight:
                self._pop()
            self.window.append(self._start(xs))
            self.in_flight += 1
        return len(closed)

    def _pop(self) -> None:
        """Publish, commit or produce the oldest entry of the window."""
        item = self.window.popleft()
        if isinstance(item, _Scoring):
            self.in_flight -= 1
            self._publish(item)
        elif isinstance(item, _Cut):
            self._commit_at(item)
        else:
            self.checkpoint.produce(item.topic, item.key, item.value)

    def _drain(self) -> None:
        while self.window:
            self._pop()

    def _cancel_in_flight(self) -> None:
        """Forget the window (its transaction is aborted): cancel the
        requests not yet sent."""
        for item in self.window:
            if isinstance(item, _Scoring) and item.future is not None:
                item.future.cancel()
        self.window.clear()
        self.in_flight = 0

    def _start(self, xs) -> _Scoring:
        """Prepare ``xs`` and request its scores."""
        self.metrics.cross_sections.labels(xs.reason).inc()
        prepared = self.pipeline.prepare(xs)
        self.query.stage(prepared, self.pipeline.features)
        self.metrics.last_bar_ts.set(xs.ts)
        past_warmup = self.pipeline.bar_times > self.serving.warmup_bars
        if self.model_set is None and self.unwarmed is not None and past_warmup:
            # A model set is announced but Triton cannot serve it yet: wait
            # rather than let these cross-sections go unscored.
            raise TritonUnavailable(f"model set {self.unwarmed[0].model_set} is not answering")
        pending = _Scoring(xs, prepared, self.model_set)
        if self.model_set is None or not past_warmup or not prepared.symbols:
            return pending
        sequences = self.pipeline.sequence_inputs(prepared, self.model_set)
        pending.started = time.perf_counter()
        pending.future = self._submit(self.model_set, prepared.features, sequences)
        if self.drift is not None:  # now, so that a cut's snapshot holds the window as of the cut
            pending.drift_events = self.drift.update(xs.ts, prepared.features)
        return pending

    def _submit(self, model_set: ModelSet, tabular: np.ndarray, sequences) -> Future:
        if self.scoring_pool is not None:
            return self.scoring_pool.submit(self.scorer, model_set, tabular, sequences)
        future: Future = Future()  # one at a time: scored here and now
        try:
            future.set_result(self.scorer(model_set, tabular, sequences))
        except Exception as exc:  # noqa: BLE001 - raised again by _publish, in order
            future.set_exception(exc)
        return future

    def _publish(self, pending: _Scoring) -> None:
        """``pending``'s signals, cross-section record and drift events into
        the open transaction, once its scores are in."""
        xs, prepared, model_set = pending.xs, pending.prepared, pending.model_set
        if pending.future is None:
            self._publish_record(xs, [], model_set)
            self._observe(prepared.stage_s)
            return
        try:
            member_scores = pending.future.result()
        except InferenceError as exc:
            raise TritonUnavailable(str(exc)) from exc
        prepared.stage_s["inference"] = time.perf_counter() - pending.started
        signals = self.pipeline.signals(prepared, model_set, member_scores)
        self.triton_ok = True
        self.metrics.triton_up.set(1)
        started = time.perf_counter()
        self.checkpoint.produce_many(self.signals_topic, signal_messages(signals))
        self._publish_record(xs, signals, model_set)
        for event in pending.drift_events:
            self.checkpoint.produce(self.settings.kafka.topics.drift.name, event.key().encode(), encode(event))
            self.metrics.drift_events.labels(event.kind, event.severity).inc()
        self.pending_signals.append(signals)  # the query API publishes them after the commit
        prepared.stage_s["publish"] = time.perf_counter() - started
        self._observe(prepared.stage_s)

    def _publish_record(self, xs, signals: list, model_set: ModelSet | None) -> None:
        """The cross-section's record for the monitor, in the transaction of
        its signals, from the closed cross-section alone (so it replays as
        the signals do). Every closed cross-section has one: the closes of a
        cross-section without signals still mature earlier ones' returns."""
        record = build_record(xs.ts, self.settings.serving.role, xs.symbols, [bar.close for bar in xs.bars], signals,
                              model_set.id if model_set is not None else "",
                              model_set.manifest.horizon_bars if model_set is not None else 0)
        self.checkpoint.produce(self.settings.kafka.topics.cross_sections.name,
                                self.settings.serving.role.encode(), encode(record))

    def _observe(self, stages: dict[str, float]) -> None:
        for stage, seconds in stages.items():
            self.metrics.stage_latency.labels(stage).observe(seconds)

    def _commit(self, *, rebase: bool = False) -> None:
        """Commit everything taken so far."""
        self._cut(time.monotonic(), 0, rebase=rebase)
        self._drain()

    def _cut(self, consumed_at: float, closed: int, *, rebase: bool = False) -> None:
        """End the open step's transaction here: capture the state now (a
        new base as well when due), commit it once everything before it is
        published."""
        started = time.perf_counter()
        rebase = rebase or len(self.pipeline.journal) >= self.serving.snapshot_every_bar_times
        parts = self.base_records() if rebase else None
        snapshot = self.snapshot()
        self.window.append(_Cut(snapshot, parts, dict(self.positions), self.model_set, self.barrier.last_closed_ts,
                                consumed_at, self.uncommitted, closed, time.perf_counter() - started))
        self.query.cut()
        self.uncommitted = 0
        self.last_cut = time.monotonic()

    def _commit_at(self, cut: _Cut) -> None:
        self._check_lease()  # a revoked lease aborts instead: the next holder redoes these bars
        started = time.perf_counter()
        self.checkpoint.commit(cut.snapshot, base_parts=cut.base_parts)
        self.metrics.stage_latency.labels("commit").observe(cut.encode_s + time.perf_counter() - started)
        self._report_positions(cut.positions)
        self.query.publish(self.pending_signals, cut.model_set, cut.last_bar_ts)
        self.last_commit = time.monotonic()
        published = sum(len(batch) for batch in self.pending_signals)
        if published:
            self.metrics.signals_out.inc(published)
            self.last_signal_at = time.monotonic()
        self.pending_signals = []
        if cut.closed:
            self.metrics.bar_to_signal.observe(self.last_commit - cut.consumed_at)

    def _report_positions(self, positions: dict[int, int]) -> None:
        """The committed positions, also as the consumer group's offsets, for
        the tools that show a group's lag. Recovery never reads these back
        while a snapshot exists (the snapshot's positions are the truth), so
        this is asynchronous and a failure of it changes nothing."""
        offsets = [TopicPartition(self.bars_topic, p, offset) for p, offset in sorted(positions.items())]
        if offsets:
            try:
                self.consumer.commit(offsets=offsets, asynchronous=True)
            except KafkaException:
                pass

    def _wait_for_triton(self, exc: Exception) -> None:
        self.triton_ok = False
        self.metrics.triton_up.set(0)
        log.warning("triton unavailable (%s): rewinding to the last commit and waiting", exc)
        self.pending_signals = []
        backoff = self.serving.retry_backoff_s
        target = self.model_set or ModelSet.of(self.unwarmed[0], self.pipeline.names)
        while not self.stop_event.is_set():
            self._check_lease()
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

    def _broker_state(self, up: bool, detail: str) -> None:
        """What the consumer sees of the brokers, also while the engine is
        idle (a failed commit says the same through :meth:`_recover`)."""
        if up == self.kafka_ok:
            return
        if up:
            log.info("engine %s: Kafka at %s answers again", self.engine_id, self.settings.kafka.bootstrap_servers)
        else:
            log.warning("engine %s: waiting for Kafka at %s: %s", self.engine_id,
                        self.settings.kafka.bootstrap_servers, detail)
        self._set_kafka(up)

    def _on_error(self, error: KafkaError) -> None:
        """librdkafka's errors that concern no partition (served by poll)."""
        if error.code() == KafkaError._ALL_BROKERS_DOWN and not self.recovering:
            self._broker_state(False, error.str())
        elif error.code() not in (KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN):
            log.warning("engine %s: kafka consumer: %s", self.engine_id, error.str())

    def _on_stats(self, raw: str) -> None:
        """librdkafka's statistics (every second): whether a broker is up, and
        the lag of each partition, from its last stable offset
        (read_committed) and our position. (Its own ``consumer_lag`` needs a
        committed offset, which a fresh group has not.)"""
        stats = msgspec.json.decode(raw)
        brokers = [b for name, b in stats.get("brokers", {}).items() if not name.endswith("/bootstrap")]
        states = sorted({b.get("state", "?") for b in brokers})
        # INIT: not connected yet because nothing was asked of it (a standby's
        # consumer, which reads nothing), which says nothing about the broker.
        if brokers and not self.recovering and states != ["INIT"]:
            self._broker_state("UP" in states, f"no broker up (broker states: {', '.join(states)})")
        for partition, info in stats.get("topics", {}).get(self.bars_topic, {}).get("partitions", {}).items():
            end, position = info.get("ls_offset", -1), info.get("app_offset", -1)
            if partition != "-1" and end >= 0 and position >= 0:
                self.metrics.consumer_lag.labels(partition).set(max(0, end - position))

    def status(self) -> dict:
        stuck = time.monotonic() - self.last_loop_at > max(30.0, 10 * self.serving.request_timeout_s)
        return {
            "healthy": self.triton_ok and self.kafka_ok and not stuck,
            "ready": self.role == "active" and self.model_set is not None and self.triton_ok and self.kafka_ok,
            "engine_id": self.engine_id,
            "role": self.role,
            "model_set": self.model_set.id if self.model_set else None,
            "triton_available": self.triton_ok,
            "kafka_available": self.kafka_ok,
            "paused_partitions": sorted(self.paused),
            "last_bar_time_ms": self.barrier.last_closed_ts,
            "last_signal_ts": self.query.view.last_signal_ts,
            "staleness_s": None if self.last_signal_at is None else round(time.monotonic() - self.last_signal_at, 3),
            "bars_rejected": dict(self.validator.counts),
        }

    def _close(self, http) -> None:
        if http is not None:
            http.stop()
        try:
            self.checkpoint.abort(timeout_s=2.0)  # best effort: a successor's init_transactions aborts it anyway
        except Exception:  # noqa: BLE001 - closing after a failure
            pass
        self.checkpoint.drop()
        if self.lease is not None:
            self.lease.close()  # leaves the group: a standby takes over now
        self._set_role("standby")
        self.consumer.close()
        self.control.close()
        if self.scoring_pool is not None:
            self.scoring_pool.shutdown(wait=True, cancel_futures=True)
        if self.client is not None:
            self.client.close()


def serve(settings: Settings, *, idle_exit_s: float | None = None) -> None:
    """Run an engine on ``settings`` until SIGINT or SIGTERM (or, with
    ``idle_exit_s``, until idle), as ``signalml serve`` does.

    A stop request is honoured within about a second; should a call into a
    library hang regardless, the process exits ``serving.shutdown_timeout_s``
    after the request (status 3). Nothing is lost either way: what was not
    committed is processed again by the next engine."""
    import os
    import signal

    engine = Engine(settings)

    def stop(signum, _frame) -> None:
        if engine.stop_event.is_set():
            return
        log.info("engine %s: stopping (%s)", engine.engine_id, signal.Signals(signum).name)
        engine.stop_event.set()

        def force_exit() -> None:
            log.error("engine %s: not stopped %.0f s after the stop request; exiting now", engine.engine_id,
                      settings.serving.shutdown_timeout_s)
            logging.shutdown()
            os._exit(3)

        timer = threading.Timer(settings.serving.shutdown_timeout_s, force_exit)
        timer.daemon = True
        timer.start()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, stop)
    try:
        engine.run(idle_exit_s=idle_exit_s)
    except Interrupted:
        pass  # stopped while waiting for Kafka at start-up


def _kafka_error(error: BaseException) -> str:
    if isinstance(error, KafkaException):
        return error.args[0].str()
    return str(error)
