"""``signalml bench e2e``: the whole engine, bars topic → signals topic, in a private world.

A private world like the integration tests build: its own topics on the
configured broker, its own Triton server on free ports, a small model set
(LightGBM + XGBoost + LSTM) trained on a slice of the bundled data and
published to it. Synthetic bars (a geometric random walk with consistent
OHLCV, symbols ``S0000``..., daily bar times) then go through:

* **throughput**: all bars replayed as fast as possible into a fresh bars
  topic, then :class:`~stream.engine.Engine` run over the backlog until idle.
  bars/s = bars / (last commit − first consumed bar), both taken inside the
  engine (its start-up, the Triton warm-up and the idle wait are excluded);
* **latency**: a fresh topic set, the engine started first in its own
  process (as ``signalml serve`` runs it: the benchmark's producer and
  reader do not share its interpreter), warmed up with the warm-up bar
  times replayed fast, then one cross-section every
  ``interval_s``. Per scored bar time: t0 = its last bar produced and
  flushed, t1 = a ``read_committed`` consumer of the signals topic has all
  ``cross_section_size`` signals of that ts; p50/p99 of t1 − t0. The
  engine's own ``signalml_bar_to_signal_seconds`` histogram (consumed →
  committed, per poll batch that closed a cross-section) is reported next
  to it, with the engine's mean time per stage; and the broker's own
  floor for such a commit, measured in the same run: the engine's own
  committed transactions (signals, cross-section record, snapshot)
  committed again through its :class:`~stream.checkpoint.Checkpoint`,
  begin to visible (see :func:`_kafka_floor`). ``latency_vs_floor`` is the
  latency at the largest cross-section over that floor, at p50 and at p99;
* **naive baseline**: the same 500-symbol bars processed one bar at a time:
  ``FeatureEngine.update_bar``, one Triton request per member with batch 1
  (sequences from a per-symbol buffer of raw features: a cost baseline, not
  a correct model input), one signal message through a plain idempotent
  (non-transactional) producer. bars/s over ``naive_bars`` bars after the
  warm-up bar times, flush included.
"""

from __future__ import annotations

import json
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import msgspec
import numpy as np
import pandas as pd
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from prometheus_client import CollectorRegistry

from signalml.config import Settings
from signalml.contracts import Signal, encode
from signalml.services.kafka import KafkaBroker
from signalml.services.process import free_port
from stream.bars_file import bar_close_ms, read_bars
from stream.observability import bucket_quantile, histogram_buckets, histogram_totals, scraped_samples
from stream.replay import encode_bars, producer_config, replay

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data" / "sp500_daily_2015_2019.parquet"

SMALL_MODELS = {
    "lightgbm": {"n_estimators": 40, "early_stopping_rounds": 10, "min_child_samples": 20},
    "xgboost": {"n_estimators": 40, "early_stopping_rounds": 10, "min_child_weight": 20.0},
    "lstm": {"hidden_size": 16, "num_layers": 1, "epochs": 2, "patience": 1, "batch_size": 256},
}
TOPIC_BASES = (("bars", "bars"), ("bars_dlq", "bars.dlq"), ("signals", "signals"),
               ("signals_challenger", "signals.challenger"), ("cross_sections", "cross.sections"),
               ("drift", "drift"), ("control", "control"), ("engine_state", "engine.state"))


# ------------------------------------------------------------------ settings


def _merged(base: dict, over: dict) -> dict:
    out = dict(base)
    for key, value in over.items():
        out[key] = _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _with(settings: Settings, overrides: dict) -> Settings:
    data = _merged(settings.model_dump(exclude={"root"}), overrides)
    return Settings.model_validate({**data, "root": settings.root})


def _world_settings(settings: Settings, tmp: Path, tag: str, warmup_bars: int) -> Settings:
    topics = {key: {"name": f"bench.{base}.{tag}"} for key, base in TOPIC_BASES}
    return _with(settings, {
        "paths": {"state_dir": str(tmp / "state")},
        "triton": {"repository": str(tmp / "repo"), "http_port": free_port(), "grpc_port": free_port(),
                   "metrics_port": free_port()},
        "kafka": {"topics": topics},
        "models": SMALL_MODELS,
        "training": {"train_period": 150, "test_period": 60, "retrain_frequency": 120, "validation_bars": 40},
        "serving": {"warmup_bars": warmup_bars, "engine_id": f"bench-{tag}", "consumer_group": f"bench-{tag}",
                    "http_port": free_port(), "barrier_timeout_s": 30.0},
    })


def _fresh(settings: Settings, tag: str, created: list[str]) -> Settings:
    """Own bars, signals, cross-sections, dead letters, drift, state; own engine id and group.
    The control topic (the published model set) is shared."""
    topics = {key: {"name": f"{getattr(settings.kafka.topics, key).name}.{tag}"}
              for key in ("bars", "bars_dlq", "signals", "cross_sections", "drift", "engine_state")}
    out = _with(settings, {"kafka": {"topics": topics},
                           "serving": {"engine_id": f"{settings.serving.engine_id}-{tag}",
                                       "consumer_group": f"{settings.serving.consumer_group}-{tag}"}})
    KafkaBroker(out).ensure_topics()
    created += [t["name"] for t in topics.values()]
    return out


# ------------------------------------------------------------------ bars


def synthetic_bars(n_symbols: int, n_times: int, seed: int = 0) -> pd.DataFrame:
    """Geometric random walk OHLCV, rows ordered by (ts, symbol)."""
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2021-01-04", periods=n_times)
    ts = bar_close_ms(pd.Series(dates))
    start = rng.uniform(20, 200, n_symbols)
    log_ret = rng.normal(0.0003, 0.02, (n_times, n_symbols))
    close = start * np.exp(np.cumsum(log_ret, axis=0))
    prev = np.vstack([start, close[:-1]])
    open_ = prev * np.exp(rng.normal(0, 0.003, close.shape))
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 0.005, close.shape)))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 0.005, close.shape)))
    volume = rng.lognormal(13, 0.5, close.shape).round()
    symbols = np.array([f"S{i:04d}" for i in range(n_symbols)])
    frame = pd.DataFrame({
        "symbol": np.tile(symbols, n_times),
        "ts": np.repeat(ts, n_symbols),
        "open": open_.ravel(), "high": high.ravel(), "low": low.ravel(), "close": close.ravel(),
        "volume": volume.ravel(),
    })
    frame["row"] = np.arange(len(frame))
    return frame


# ------------------------------------------------------------------ signals watcher


class _SignalTs(msgspec.Struct):
    ts: int
    cross_section_size: int


class SignalWatcher:
    """A read_committed consumer of the signals topic on a thread: the time
    each bar time's cross-section became complete."""

    def __init__(self, settings: Settings):
        topic = settings.kafka.topics.signals.name
        self.consumer = Consumer({
            "bootstrap.servers": settings.kafka.bootstrap_servers,
            "group.id": f"bench-watch-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "fetch.wait.max.ms": 5,
        })
        partitions = self.consumer.list_topics(topic, timeout=30).topics[topic].partitions
        self.consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        self.counts: dict[int, int] = {}
        self.complete_at: dict[int, float] = {}
        self.stop = threading.Event()
        self.decoder = msgspec.json.Decoder(_SignalTs)
        self.thread = threading.Thread(target=self._loop, name="bench-signal-watcher", daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        try:
            while not self.stop.is_set():
                # poll waits for the first message only; consume(n, t) alone
                # would wait for n messages or the whole timeout.
                first = self.consumer.poll(0.05)
                if first is None:
                    continue
                for msg in (first, *self.consumer.consume(10_000, timeout=0)):
                    if msg.error() is not None:
                        continue
                    now = time.perf_counter()
                    s = self.decoder.decode(msg.value())
                    n = self.counts[s.ts] = self.counts.get(s.ts, 0) + 1
                    if n == s.cross_section_size:
                        self.complete_at[s.ts] = now
        finally:
            self.consumer.close()

    def wait_for(self, ts: int, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while ts not in self.complete_at and time.monotonic() < deadline:
            time.sleep(0.002)
        return ts in self.complete_at

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=10)


# ------------------------------------------------------------------ phases


def _instrumented(engine) -> dict:
    """First consumed bar and last commit, timed inside the engine; and
    ``commits``: ``(time, signals committed so far)`` after each commit that
    carried bars."""
    marks: dict = {"commits": []}
    take, commit = engine._take, engine._commit_at

    def timed_take(msg):
        marks.setdefault("first_bar", time.perf_counter())
        return take(msg)

    def timed_commit(cut):
        commit(cut)
        if cut.bars:  # not an idle-time base alone
            marks["last_commit"] = time.perf_counter()
            marks["commits"].append((marks["last_commit"], int(engine.metrics.signals_out._value.get())))

    engine._take, engine._commit_at = timed_take, timed_commit
    return marks


def _throughput(world: Settings, frame: pd.DataFrame, tag: str, created: list[str]) -> dict:
    from stream.engine import Engine

    settings = _fresh(world, tag, created)
    summary = replay(settings, frame, source_file="synthetic")
    engine = Engine(settings)
    marks = _instrumented(engine)
    started = time.perf_counter()
    engine.run(idle_exit_s=2.0, serve_http=False)
    wall = time.perf_counter() - started
    busy = marks["last_commit"] - marks["first_bar"]
    bars = len(frame)
    return {
        "bars": bars,
        "bars_per_s": round(bars / busy, 1),
        "engine_busy_s": round(busy, 3),
        "engine_wall_s": round(wall, 3),
        "replay_bars_per_s": round(summary.rate_bars_per_s, 1),
        "signals": int(engine.metrics.signals_out._value.get()),
    }


def _latency(world: Settings, frame: pd.DataFrame, tag: str, created: list[str],
             interval_s: float) -> tuple[dict, list["Transaction"]]:
    """The engine runs as its own process (``signalml serve`` would), so its
    latency does not include sharing an interpreter with this benchmark.
    Returns the figures and what the engine committed for each scored bar
    time (see :func:`committed_transactions`)."""
    settings = _fresh(world, tag, created)
    warmup = settings.serving.warmup_bars
    times = np.unique(frame["ts"].to_numpy())
    warm = frame[frame["ts"].isin(times[:warmup])]
    live = frame[~frame["ts"].isin(times[:warmup])]
    watcher = SignalWatcher(settings)
    engine = EngineProcess(settings)
    producer = Producer(producer_config(settings))
    topic = settings.kafka.topics.bars.name
    latencies: list[float] = []
    missing: list[int] = []
    try:
        engine.wait(lambda h: h["ready"], "a ready model set", 120)
        replay(settings, warm, source_file="synthetic")
        last_warm = int(times[warmup - 1])
        engine.wait(lambda h: h["last_bar_time_ms"] == last_warm, "the warm-up bar times", 120)
        time.sleep(0.5)  # the engine writes its idle base snapshot
        before, stages_before = engine.histograms()
        groups = [(int(ts), g) for ts, g in live.groupby("ts", sort=True)]
        next_due = time.perf_counter()
        for ts, group in groups:
            delay = next_due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            next_due += interval_s
            for key, payload in zip(group["symbol"].tolist(), encode_bars(group)):
                while True:
                    try:
                        producer.produce(topic, payload, key.encode())
                        break
                    except BufferError:
                        producer.poll(0.01)
            producer.flush(30)
            t0 = time.perf_counter()
            if watcher.wait_for(ts, timeout_s=max(30.0, 10 * interval_s)):
                latencies.append((watcher.complete_at[ts] - t0) * 1000)
            else:
                missing.append(ts)
        after, stages_after = engine.histograms()
    finally:
        engine.stop()
        watcher.close()
    committed = committed_transactions(settings)
    result = {
        "n": len(latencies),
        "p50": round(float(np.percentile(latencies, 50)), 1) if latencies else None,
        "p99": round(float(np.percentile(latencies, 99)), 1) if latencies else None,
        "max": round(max(latencies), 1) if latencies else None,
        "mean": round(statistics.fmean(latencies), 1) if latencies else None,
        "missing_bar_times": len(missing),
        "interval_s": interval_s,
    }
    between = {bound: count - before.get(bound, 0.0) for bound, count in after.items()}
    q50, q99 = bucket_quantile(between, 0.5), bucket_quantile(between, 0.99)
    result["engine_bar_to_signal_ms_bucket_le"] = {
        "p50": None if q50 is None else round(q50 * 1000, 1),
        "p99": None if q99 is None else round(q99 * 1000, 1),
    }
    means = {}
    for stage, (seconds, count) in stages_after.items():
        s0, c0 = stages_before.get(stage, (0.0, 0.0))
        if count > c0:
            means[stage] = round((seconds - s0) / (count - c0) * 1000, 2)
    result["engine_stage_mean_ms"] = means
    return result, committed


class _RecordTs(msgspec.Struct):
    ts: int


@dataclass
class Transaction:
    """What the engine committed for one scored bar time: its signals
    (key, value), its cross-section record and the engine snapshot."""

    ts: int
    signals: list[tuple[bytes, bytes]]
    record: bytes
    snapshot: bytes


def committed_transactions(settings: Settings) -> list[Transaction]:
    """The engine's committed output on ``settings``' topics, one
    :class:`Transaction` per scored bar time, in order. The snapshots are
    those of the cross-section commits, in commit order (an idle base
    commit's snapshot has an empty journal and is left out)."""
    topics = settings.kafka.topics
    names = {"signals": topics.signals, "records": topics.cross_sections, "state": topics.engine_state}
    consumer = Consumer({"bootstrap.servers": settings.kafka.bootstrap_servers,
                         "group.id": f"bench-read-{uuid.uuid4().hex}", "enable.auto.commit": False,
                         "isolation.level": "read_committed", "enable.partition.eof": True,
                         "fetch.max.bytes": 134_217_728, "max.partition.fetch.bytes": 67_108_864})
    assignment = [TopicPartition(t.name, p, 0) for t in names.values() for p in range(t.partitions)]
    consumer.assign(assignment)
    pending = {(tp.topic, tp.partition) for tp in assignment}
    signals: dict[int, list[tuple[bytes, bytes]]] = {}
    records: dict[int, bytes] = {}
    snapshots: list[bytes] = []
    decode_ts = msgspec.json.Decoder(_RecordTs).decode
    engine_key = settings.serving.engine_id.encode()
    deadline = time.monotonic() + 60
    try:
        while pending and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error() is not None:
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    pending.discard((msg.topic(), msg.partition()))
                continue
            if msg.topic() == names["signals"].name:
                signals.setdefault(decode_ts(msg.value()).ts, []).append((msg.key(), msg.value()))
            elif msg.topic() == names["records"].name:
                records[decode_ts(msg.value()).ts] = msg.value()
            elif msg.key() == engine_key and msgspec.msgpack.decode(msg.value()).get("journal"):
                snapshots.append(msg.value())
    finally:
        consumer.close()
    scored = sorted(signals)
    snapshots = snapshots[-len(scored):] if scored else []
    return [Transaction(ts, signals[ts], records.get(ts, b""), snapshot) for ts, snapshot in zip(scored, snapshots)]


def _kafka_floor(world: Settings, tag: str, created: list[str], engine: list[Transaction], interval_s: float,
                 n_messages: int) -> tuple[dict, dict]:
    """What the broker alone takes to commit a cross-section, two ways, in
    alternating rounds ``interval_s`` apart (half an interval between the two):

    * **like for like** (the floor ``latency_vs_floor`` divides by): the
      engine's own committed transactions replayed, record for record, one
      per round: the same signals (keys, values, so the same partitions),
      its cross-section record and its snapshot, on topics configured as
      the engine's, through the engine's own :class:`Checkpoint`. What is
      not in it is the engine's work: consuming the bars, features,
      inference, building the records;
    * **signals and offsets** (the floor reported before): a bare
      transactional producer commits ``n_messages`` 250-byte messages plus
      consumer offsets (``send_offsets_to_transaction``, which the engine
      does not call: its positions travel in the snapshot).

    t0 = the transaction begins; t1 = a ``read_committed`` reader has all
    its signals. Returns both: p50/p99 of t1 - t0."""
    from stream.checkpoint import Checkpoint

    bootstrap = world.kafka.bootstrap_servers
    topics = world.kafka.topics
    names = {"signals": f"bench.txnfloor.{tag}", "records": f"bench.txnfloor.xs.{tag}",
             "state": f"bench.txnfloor.state.{tag}", "bare": f"bench.txnfloor.bare.{tag}",
             "source": f"bench.txnfloor.src.{tag}"}
    shapes = {"signals": topics.signals, "records": topics.cross_sections, "state": topics.engine_state,
              "bare": topics.signals}
    admin = AdminClient({"bootstrap.servers": bootstrap})
    new = [NewTopic(names[k], t.partitions, 1, config=dict(t.config)) for k, t in shapes.items()]
    for future in admin.create_topics([*new, NewTopic(names["source"], 1, 1)]).values():
        future.result(30)
    created += list(names.values())
    floor_settings = _with(world, {"kafka": {"topics": {"signals": {"name": names["signals"]},
                                                        "cross_sections": {"name": names["records"]},
                                                        "engine_state": {"name": names["state"]}}}})
    rounds = len(engine)
    bare_count = n_messages
    seen: dict[tuple[str, int], int] = {}
    visible: dict[tuple[str, int], float] = {}
    expected = {("like", t.ts): len(t.signals) for t in engine}
    stop = threading.Event()
    reader = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-floor-{tag}", "enable.auto.commit": False,
                       "isolation.level": "read_committed", "fetch.wait.max.ms": 5})
    reader.assign([TopicPartition(names[k], p, 0) for k in ("signals", "bare") for p in range(topics.signals.partitions)])
    decode_ts = msgspec.json.Decoder(_RecordTs).decode

    def read() -> None:
        while not stop.is_set():
            first = reader.poll(0.05)
            if first is None:
                continue
            for msg in (first, *reader.consume(10_000, timeout=0)):
                if msg.error() is not None:
                    continue
                now = time.perf_counter()
                if msg.topic() == names["bare"]:
                    which = ("bare", int(msg.key()))
                    wanted = bare_count
                else:
                    which = ("like", decode_ts(msg.value()).ts)
                    wanted = expected.get(which, -1)
                seen[which] = seen.get(which, 0) + 1
                if seen[which] == wanted:
                    visible[which] = now

    thread = threading.Thread(target=read, name="bench-floor-reader", daemon=True)
    thread.start()
    checkpoint = Checkpoint(floor_settings, f"bench-floor-{tag}")
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"bench-floor-bare-{tag}",
                         "enable.idempotence": True, "acks": "all", "linger.ms": 1, "compression.type": "lz4"})
    group = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-floor-src-{tag}"})
    payload = b"x" * 250  # about one signal's JSON
    begun: dict[tuple[str, int], float] = {}
    commits: dict[str, list[float]] = {"like": [], "bare": []}
    try:
        checkpoint.start()
        producer.init_transactions(30)
        for r, txn in enumerate(engine):
            time.sleep(interval_s / 2)
            begun[("like", txn.ts)] = time.perf_counter()
            checkpoint.produce_many(names["signals"], txn.signals)
            checkpoint.produce(names["records"], b"champion", txn.record)
            started = time.perf_counter()
            checkpoint.commit(txn.snapshot)
            commits["like"].append((time.perf_counter() - started) * 1000)

            time.sleep(interval_s / 2)
            begun[("bare", r)] = time.perf_counter()
            producer.begin_transaction()
            for i in range(bare_count):
                producer.produce(names["bare"], payload, str(r).encode(), partition=i % topics.signals.partitions)
            producer.send_offsets_to_transaction([TopicPartition(names["source"], 0, r + 1)],
                                                 group.consumer_group_metadata(), 30)
            started = time.perf_counter()
            producer.commit_transaction(30)
            commits["bare"].append((time.perf_counter() - started) * 1000)
        deadline = time.monotonic() + 30
        while len(visible) < 2 * rounds and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        stop.set()
        thread.join(timeout=10)
        reader.close()
        group.close()
        checkpoint.drop()

    def figures(kind: str) -> dict:
        floor = [(visible[k] - begun[k]) * 1000 for k in sorted(begun) if k[0] == kind and k in visible]
        return {"n": len(floor), "p50": _pct(floor, 50), "p99": _pct(floor, 99),
                "commit_transaction_p50": _pct(commits[kind], 50)}

    like = figures("like")
    like.update({
        "messages": round(statistics.fmean(len(t.signals) for t in engine), 1) if engine else 0,
        "signal_bytes_mean": round(statistics.fmean(len(v) for t in engine for _, v in t.signals), 1) if engine else 0,
        "record_bytes_mean": round(statistics.fmean(len(t.record) for t in engine)) if engine else 0,
        "snapshot_bytes_p50": _pct([len(t.snapshot) for t in engine], 50),
        "includes": "the engine's committed transactions replayed: its signals, cross-section record and "
                    "snapshot, through its Checkpoint; no consumer offsets (the engine keeps positions "
                    "in the snapshot)",
    })
    bare = figures("bare")
    bare.update({"messages": bare_count, "includes": f"{bare_count} x 250-byte messages + consumer offsets"})
    return like, bare


def _pct(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 1) if values else None


class EngineProcess:
    """The engine in a child process on ``settings`` (see :func:`serve_main`),
    watched through its health and metrics endpoints."""

    def __init__(self, settings: Settings):
        self.settings = settings
        folder = settings.state_dir / "bench-engine"
        folder.mkdir(parents=True, exist_ok=True)
        config = folder / f"{settings.serving.engine_id}.json"
        config.write_text(json.dumps({"root": str(settings.root), "settings": settings.model_dump(mode="json")}))
        self.log = folder / f"{settings.serving.engine_id}.log"
        self.process = subprocess.Popen([sys.executable, "-m", "bench.e2e", "serve", str(config)], cwd=REPO,
                                        stdout=open(self.log, "wb"), stderr=subprocess.STDOUT)
        self.base = f"http://{settings.serving.http_host}:{settings.serving.http_port}"

    def _get(self, path: str) -> bytes:
        with urllib.request.urlopen(self.base + path, timeout=5) as answer:
            return answer.read()

    def wait(self, done, what: str, timeout_s: float) -> dict:
        deadline = time.monotonic() + timeout_s
        health = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the engine exited ({self.process.returncode}): {self.log.read_text()[-2000:]}")
            try:
                health = json.loads(self._get("/health"))
                if done(health):
                    return health
            except OSError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"engine: no {what} in {timeout_s:.0f} s (health {health}): {self.log.read_text()[-2000:]}")

    def histograms(self) -> tuple[dict[float, float], dict[str, tuple[float, float]]]:
        """One scrape of ``/metrics``: the cumulative buckets of
        ``signalml_bar_to_signal_seconds`` and ``stage -> (seconds, count)``
        of ``signalml_stage_latency_seconds``."""
        samples = scraped_samples(self._get("/metrics").decode())
        return (histogram_buckets(samples, "signalml_bar_to_signal_seconds"),
                histogram_totals(samples, "signalml_stage_latency_seconds", "stage"))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def serve_main(config: Path) -> None:
    """``python -m bench.e2e serve CONFIG.json``: the engine on the
    settings an :class:`EngineProcess` wrote."""
    import logging

    from stream.engine import serve

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    data = json.loads(config.read_text())
    serve(Settings.model_validate({**data["settings"], "root": data["root"]}))


def _naive(world: Settings, frame: pd.DataFrame, manifest, tag: str, created: list[str], n_bars: int) -> dict:
    """One bar at a time: features, one batch-1 Triton request per member, one message."""
    from stream.features import FeatureEngine
    from stream.inference.sync import SyncInferenceClient

    settings = _fresh(world, tag, created)
    topic = settings.kafka.topics.signals.name
    warmup = settings.serving.warmup_bars
    times = np.unique(frame["ts"].to_numpy())
    features = FeatureEngine(settings.features)
    length = max(1, manifest.sequence_length)
    n_features = len(manifest.feature_names)
    buffers: dict[str, deque] = {}
    cols = ["symbol", "ts", "open", "high", "low", "close", "volume"]

    def step(row) -> np.ndarray:
        symbol, ts, o, h, lo, c, v = row
        x = np.nan_to_num(np.asarray(features.update_bar(symbol, int(ts), o, h, lo, c, v), np.float32))
        buffer = buffers.get(symbol)
        if buffer is None:
            buffer = buffers[symbol] = deque([np.zeros(n_features, np.float32)] * length, maxlen=length)
        buffer.append(x)
        return x

    warm = frame[frame["ts"].isin(times[:warmup])]
    for row in warm[cols].itertuples(index=False, name=None):
        step(row)
    timed = frame[~frame["ts"].isin(times[:warmup])].head(n_bars)
    client = SyncInferenceClient.from_settings(settings, registry=CollectorRegistry())
    producer = Producer(producer_config(settings))
    try:
        for member in manifest.members:  # signatures fetched and models warm before timing
            shape = (1, length, n_features) if member.input == "sequence" else (1, n_features)
            client.infer(member.name, member.version, np.zeros(shape, np.float32))
        started = time.perf_counter()
        for row in timed[cols].itertuples(index=False, name=None):
            x = step(row)
            scores = {}
            for member in manifest.members:
                if member.input == "sequence":
                    batch = np.stack(buffers[row[0]])[None]
                else:
                    batch = x[None]
                scores[member.name] = float(client.infer(member.name, member.version, batch)[0])
            score = float(np.mean(list(scores.values())))
            signal = Signal(int(row[1]), row[0], score, 1.0, scores, manifest.model_set, 1,
                            manifest.horizon_bars)
            while True:
                try:
                    producer.produce(topic, encode(signal), row[0].encode())
                    producer.poll(0)
                    break
                except BufferError:
                    producer.poll(0.01)
        remaining = producer.flush(30)
        elapsed = time.perf_counter() - started
    finally:
        client.close()
    return {"bars": len(timed), "elapsed_s": round(elapsed, 3), "bars_per_s": round(len(timed) / elapsed, 1),
            "undelivered": remaining}


# ------------------------------------------------------------------ run


def run(
    settings: Settings,
    *,
    symbols: tuple[int, ...] = (500, 5000),
    warmup_bars: int = 25,
    scored_bar_times: int = 30,
    scored_bar_times_large: int = 10,
    latency_symbols: tuple[int, ...] = (500,),
    latency_bar_times: int = 30,
    interval_s: float = 1.0,
    naive_bars: int = 1500,
    quick: bool = False,
    train_symbols: int = 30,
) -> dict:
    """Run the benchmark in a private world; returns the figures (see the module docstring)."""
    if quick:
        symbols, latency_symbols = (40,), (40,)
        warmup_bars, scored_bar_times, scored_bar_times_large = 25, 4, 4
        latency_bar_times, interval_s, naive_bars = 4, 0.5, 200
    result: dict = {"throughput_bars_per_s": {}, "throughput": {}, "latency_ms": {}}
    with private_world(settings, warmup_bars=warmup_bars, train_symbols=train_symbols,
                       prefix="signalml-bench-e2e-") as pw:
        world, manifest, created, tag = pw.settings, pw.manifest, pw.created, pw.tag
        result["setup_s"] = pw.setup_s
        result["members"] = [f"{m.name} v{m.version} ({m.input})" for m in manifest.members]
        result["model_set"] = manifest.model_set

        for n in symbols:
            scored = scored_bar_times if n <= 1000 else scored_bar_times_large
            frame = synthetic_bars(n, warmup_bars + scored, seed=n)
            got = _throughput(world, frame, f"tp{n}", created)
            got["scored_bar_times"] = scored
            got["all_scored_signals"] = got["signals"] == n * scored
            result["throughput"][f"xs_{n}"] = got
            result["throughput_bars_per_s"][f"xs_{n}"] = got["bars_per_s"]

        floor_n = max(latency_symbols)
        for n in latency_symbols:
            frame = synthetic_bars(n, warmup_bars + latency_bar_times, seed=10_000 + n)
            result["latency_ms"][f"xs_{n}"], committed = _latency(world, frame, f"lat{n}", created, interval_s)
            if n == floor_n:
                engine_transactions = committed
        floor, bare = _kafka_floor(world, tag, created, engine_transactions, interval_s, floor_n)
        result["latency_ms"]["kafka_transaction_floor"] = floor
        result["latency_ms"]["kafka_transaction_floor_signals_offsets"] = bare
        latency = result["latency_ms"][f"xs_{floor_n}"]
        result["latency_vs_floor"] = {q: (round(latency[q] / floor[q], 2) if latency[q] and floor[q] else None)
                                      for q in ("p50", "p99")}

        base_n = 500 if 500 in symbols else symbols[0]
        frame = synthetic_bars(base_n, warmup_bars + scored_bar_times, seed=base_n)
        naive = _naive(world, frame, manifest, "naive", created, naive_bars)
        result["naive"] = naive
        result["naive_bars_per_s"] = naive["bars_per_s"]
        engine_rate = result["throughput_bars_per_s"][f"xs_{base_n}"]
        result["ratio_vs_naive"] = round(engine_rate / naive["bars_per_s"], 1)
        result["notes"] = (
            f"private world (topics *.{tag}, own Triton); warmup_bars={warmup_bars}. "
            "Throughput: bars / (last commit - first consumed bar) timed inside the engine "
            "(start-up, model warm-up and the idle wait excluded; engine_wall_s includes them); the "
            "bars include the warm-up bar times. Latency: t0 = last bar of the bar time produced and "
            "flushed, t1 = read_committed consumer has all cross_section_size signals of that ts; "
            "The engine runs in its own process; engine_bar_to_signal_ms_bucket_le are histogram bucket upper "
            "bounds (consumed -> committed) and engine_stage_mean_ms its per-stage means over the same bar times. "
            "kafka_transaction_floor: the broker alone committing the engine's own transactions again "
            "(its signals, cross-section record and snapshot, through its Checkpoint), begin -> all signals "
            "visible to read_committed; kafka_transaction_floor_signals_offsets: as many 250-byte messages "
            "plus consumer offsets (the floor reported before). "
            f"latency_vs_floor: xs_{floor_n} latency p50 / floor p50 and p99 / floor p99. "
            f"Naive: per bar update_bar + {len(manifest.members)} batch-1 Triton requests + one produced "
            f"message, over {naive['bars']} bars after warm-up on the {base_n}-symbol bars, flush included; "
            f"ratio_vs_naive = engine xs_{base_n} throughput / naive. 2 shared cores: Kafka, Triton, the "
            "engine and the bench share them."
        )
        return result


@dataclass
class PrivateWorld:
    """What :func:`private_world` set up. ``created`` lists the topics to
    delete at the end; :func:`_fresh` adds to it."""

    settings: Settings
    manifest: object  # ModelSetManifest
    tmp: Path
    tag: str
    created: list[str]
    setup_s: float


@contextmanager
def private_world(settings: Settings, *, warmup_bars: int, train_symbols: int = 30,
                  prefix: str = "signalml-bench-") -> Iterator[PrivateWorld]:
    """Own topics (``bench.*.<tag>``) on the configured broker, an own Triton
    on free ports, and a small model set trained on ``train_symbols`` symbols
    of the bundled data since 2018, published to it. Everything is removed
    on exit."""
    from models.publish import publish
    from signalml.services.triton import TritonServer
    from training import run_training

    tag = uuid.uuid4().hex[:8]
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    world = _world_settings(settings, tmp, tag, warmup_bars)
    created = [t.name for t in world.kafka.topics.all().values()]
    triton = None
    try:
        KafkaBroker(world).ensure_topics()
        started = time.perf_counter()
        all_symbols = sorted(pd.read_parquet(DATA, columns=["symbol"])["symbol"].unique())[:train_symbols]
        run_training(world, DATA, tmp / "train", progress=False, bars=read_bars(DATA, symbols=all_symbols, start="2018-01-01"))
        triton = TritonServer(world)
        triton.start()
        manifest = publish(world, tmp / "train")
        yield PrivateWorld(world, manifest, tmp, tag, created, round(time.perf_counter() - started, 1))
    finally:
        if triton is not None:
            try:
                triton.stop()
            except Exception:  # noqa: BLE001 - cleanup is best effort
                pass
        _delete_topics(world.kafka.bootstrap_servers, created)
        shutil.rmtree(tmp, ignore_errors=True)


def _delete_topics(bootstrap: str, topics: list[str]) -> None:
    if not topics:
        return
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.delete_topics(sorted(set(topics))).values():
        try:
            future.result(30)
        except Exception:  # noqa: BLE001 - cleanup is best effort
            pass


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "serve":
        raise SystemExit("usage: python -m bench.e2e serve CONFIG.json")
    serve_main(Path(sys.argv[2]))
