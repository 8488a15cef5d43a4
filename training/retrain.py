"""``signalml retrain``: the retraining loop, with a promotion gate.

On a drift event at or above ``retrain.min_severity`` (of a kind in
``retrain.kinds``, about the model set in service), or on a schedule, or
once on demand, :meth:`RetrainLoop.retrain`:

1. takes the last ``retrain.history_bars`` bar times of history (the bars
   topic, or a bars file) and holds out the last ``evaluation_bars``;
2. runs the walk-forward job (:func:`training.run.run_training`) on the
   bars *before* the held-out window, so no label of the candidate's
   training reaches into it;
3. scores the held-out window with the candidate (its native models, as
   exported) and with the current set (through Triton, as it is served),
   both through their own ensembles, and compares their mean rank IC on
   exactly the same (bar time, symbol) rows;
4. publishes the candidate only if its rank IC is positive and beats the
   current set's by ``min_improvement``; otherwise records why.

Every decision is logged, appended to ``<state_dir>/retrain/decisions.jsonl``
and counted in Prometheus metrics (``signalml_retrain_*``).
"""

from __future__ import annotations

import json
import logging
import math
import time
import uuid
from pathlib import Path

import msgspec
import numpy as np
import pandas as pd
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from signalml.config import Settings
from signalml.contracts import Bar, DriftEvent, decoder
from signalml.errors import DataError, SignalMLError
from training.backtest import default_member_factory
from training.dataset import build_dataset
from training.export import default_member_loader
from training.metrics import evaluate

log = logging.getLogger("signalml.retrain")

SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}
SCORE_CHUNK_ROWS = 4096
_drift_event = decoder(DriftEvent)


class RetrainMetrics:
    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.runs = Counter("signalml_retrain_runs", "Retrains, by outcome (published, refused, failed)", ["outcome"], registry=r)
        self.drift_events = Counter("signalml_retrain_drift_events", "Drift events read, by action taken",
                                    ["action"], registry=r)
        self.rank_ic = Gauge("signalml_retrain_rank_ic", "Held-out rank IC of the last evaluation", ["model_set"], registry=r)
        self.duration = Histogram("signalml_retrain_duration_seconds", "One retrain, history to decision",
                                  buckets=(10, 30, 60, 120, 300, 600, 1200, 3600), registry=r)


def bars_from_topic(settings: Settings) -> pd.DataFrame:
    """Every bar on the bars topic as the frame :func:`stream.bars_file.read_bars` gives."""
    from stream.topic_reader import read_topic

    rows = []
    bar_decoder = decoder(Bar)
    for message in read_topic(settings.kafka.bootstrap_servers, settings.kafka.topics.bars.name):
        try:
            bar = bar_decoder.decode(message.value())
        except (msgspec.DecodeError, msgspec.ValidationError):
            continue  # the engine dead-letters these; they are no history
        rows.append((bar.symbol, bar.ts, bar.open, bar.high, bar.low, bar.close, bar.volume))
    frame = pd.DataFrame(rows, columns=["symbol", "ts", "open", "high", "low", "close", "volume"])
    frame = frame.drop_duplicates(["symbol", "ts"], keep="first")
    frame["date"] = pd.to_datetime(frame["ts"], unit="ms")
    frame = frame.sort_values(["date", "symbol"], kind="stable").reset_index(drop=True)
    frame["row"] = np.arange(len(frame), dtype=np.int64)
    return frame


def recent(bars: pd.DataFrame, bar_times: int) -> pd.DataFrame:
    """The last ``bar_times`` bar times of ``bars``."""
    times = np.unique(bars["ts"].to_numpy())
    return bars[bars["ts"] >= times[-bar_times]].reset_index(drop=True) if len(times) > bar_times else bars


class RetrainLoop:
    def __init__(self, settings: Settings, *, bars_path: str | None = None, registry: CollectorRegistry | None = None,
                 member_factory=default_member_factory, member_loader=default_member_loader):
        self.settings = settings
        self.cfg = settings.retrain
        self.bars_path = bars_path
        self.metrics = RetrainMetrics(registry)
        self.member_factory, self.member_loader = member_factory, member_loader
        self.last_retrain_at: float | None = None
        self.decisions_path = settings.state_dir / "retrain" / "decisions.jsonl"

    # ---------------------------------------------------------------- one retrain

    def history(self) -> pd.DataFrame:
        if self.bars_path:
            from stream.bars_file import read_bars

            bars = read_bars(self.bars_path)
        else:
            bars = bars_from_topic(self.settings)
        bars = recent(bars, self.cfg.history_bars)
        n_times = bars["ts"].nunique()
        if n_times <= self.cfg.evaluation_bars:
            raise DataError(f"retrain: {n_times} bar times of history; retrain.evaluation_bars "
                            f"({self.cfg.evaluation_bars}) leaves none to train on")
        return bars

    def retrain(self, reason: str, trigger: DriftEvent | None = None) -> dict:
        """Train, evaluate, gate, publish or refuse; returns the decision record."""
        from models.publish import current_manifest, publish
        from training.run import run_training

        started = time.perf_counter()
        self.last_retrain_at = time.monotonic()
        decision: dict = {"at": int(time.time() * 1000), "reason": reason,
                          "trigger": msgspec.to_builtins(trigger) if trigger else None}
        try:
            bars = self.history()
            times = np.unique(bars["ts"].to_numpy())
            holdout_start = int(times[-self.cfg.evaluation_bars])
            train_bars = bars[bars["ts"] < holdout_start].reset_index(drop=True)
            out_dir = self.settings.path(self.cfg.out_dir) / f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"
            log.info("retrain (%s): training on %d bar times before %d, holding out %d", reason,
                     len(times) - self.cfg.evaluation_bars, holdout_start, self.cfg.evaluation_bars)
            run_training(self.settings, self.bars_path or "<bars topic>", out_dir, progress=False, bars=train_bars,
                         member_factory=self.member_factory, member_loader=self.member_loader)
            decision["candidate_dir"] = str(out_dir)
            current = current_manifest(self.settings)
            decision["current"] = current.model_set if current else None
            candidate_ic, current_ic, rows = self.evaluate(bars, holdout_start, out_dir, current)
            decision.update(candidate_rank_ic=candidate_ic, current_rank_ic=current_ic, evaluation_rows=rows,
                            evaluation_bars=self.cfg.evaluation_bars)
            refusal = self.gate(candidate_ic, current_ic)
            if refusal is None:
                manifest = publish(self.settings, out_dir)
                decision.update(outcome="published", published=manifest.model_set)
                self.metrics.rank_ic.labels(manifest.model_set).set(candidate_ic)
            else:
                decision.update(outcome="refused", refusal=refusal)
        except SignalMLError as exc:
            decision.update(outcome="failed", error=str(exc))
            log.error("retrain failed: %s", exc)
        decision["duration_s"] = round(time.perf_counter() - started, 2)
        self.metrics.runs.labels(decision["outcome"]).inc()
        self.metrics.duration.observe(decision["duration_s"])
        self._record(decision)
        return decision

    def gate(self, candidate_ic: float, current_ic: float | None) -> str | None:
        """None to publish, else the reason not to."""
        if not math.isfinite(candidate_ic):
            return "the candidate has no rank IC on the held-out window"
        if candidate_ic <= 0:
            return f"the candidate's held-out rank IC {candidate_ic:.4f} is not positive"
        if current_ic is not None and math.isfinite(current_ic) and candidate_ic < current_ic + self.cfg.min_improvement:
            return (f"the candidate's held-out rank IC {candidate_ic:.4f} does not beat the current set's "
                    f"{current_ic:.4f} by retrain.min_improvement {self.cfg.min_improvement}")
        return None

    def evaluate(self, bars: pd.DataFrame, holdout_start: int, candidate_dir: Path, current) -> tuple[float, float | None, int]:
        """Mean held-out rank IC of the candidate and of the current set, on
        the same rows (features warmed up on the history before them)."""
        from models.ensemble import from_manifest
        from training.run import longest_sequence

        spec_dir = Path(candidate_dir) / "model_set"
        spec = json.loads((spec_dir / "model_set.json").read_text())
        length = max([longest_sequence(self.settings), int(spec.get("sequence_length") or 0),
                      current.sequence_length if current else 0])
        dataset = build_dataset(bars, self.settings, sequence_length=length)
        ts_of_date = dict(zip(bars["date"], bars["ts"]))
        row_ts = np.array([ts_of_date[d] for d in dataset.dates[dataset.date_index]], dtype=np.int64)
        forward = dataset.returns[:, dataset.target]
        rows = np.flatnonzero((row_ts >= holdout_start) & np.isfinite(forward))
        groups = row_ts[rows]

        members = spec["members"]
        native = {}
        for member in members:
            prefix = member["name"] + "/"
            files = {role: path[len(prefix):] if path.startswith(prefix) else path
                     for role, path in member["files"].items()}
            model = self.member_loader(member["kind"], spec_dir / member["name"], files)
            x = dataset.sequences(rows, int(member.get("sequence_length", length))) if member["input"] == "sequence" \
                else dataset.features[rows]
            native[member["name"]] = np.asarray(model.predict(x), dtype=np.float64)
        ensemble = from_manifest(spec["ensemble"], [m["name"] for m in members])
        candidate_score = ensemble.combine(np.column_stack([native[m] for m in ensemble.members]), groups=groups)
        candidate_ic = evaluate(candidate_score, forward[rows], groups, overlap_bars=dataset.horizon_bars)["rank_ic"]

        current_ic = None
        if current is not None:
            from stream.inference.sync import SyncInferenceClient
            from stream.model_set import ModelSet

            model_set = ModelSet.of(current, list(dataset.feature_names))
            served: dict[str, list[np.ndarray]] = {}
            with SyncInferenceClient.from_settings(self.settings, timeout_s=60.0) as client:
                for start in range(0, len(rows), SCORE_CHUNK_ROWS):
                    chunk = rows[start:start + SCORE_CHUNK_ROWS]
                    sequences = dataset.sequences(chunk, current.sequence_length).astype(np.float32) \
                        if model_set.needs_sequences else None
                    for name, values in client.score(current, dataset.features[chunk].astype(np.float32), sequences).items():
                        served.setdefault(name, []).append(np.asarray(values, dtype=np.float64))
            matrix = np.column_stack([np.concatenate(served[m]) for m in model_set.ensemble.members])
            current_score = model_set.ensemble.combine(matrix, groups=groups)
            current_ic = evaluate(current_score, forward[rows], groups, overlap_bars=dataset.horizon_bars)["rank_ic"]
        log.info("held-out rank IC over %d rows: candidate %.4f, current %s", len(rows), candidate_ic,
                 "none" if current_ic is None else f"{current_ic:.4f}")
        return float(candidate_ic), (None if current_ic is None else float(current_ic)), int(len(rows))

    def _record(self, decision: dict) -> None:
        self.decisions_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.decisions_path, "a") as f:
            f.write(json.dumps(decision, default=str) + "\n")
        log.info("retrain decision: %s%s", decision["outcome"],
                 f" ({decision.get('refusal') or decision.get('error') or decision.get('published')})")

    # ---------------------------------------------------------------- triggers

    def qualifies(self, event: DriftEvent, current_id: str | None) -> str | None:
        """None when the event should trigger a retrain, else why not."""
        if SEVERITY_RANK[event.severity] < SEVERITY_RANK[self.cfg.min_severity]:
            return f"severity {event.severity} below retrain.min_severity {self.cfg.min_severity}"
        if event.kind not in self.cfg.kinds:
            return f"kind {event.kind} not in retrain.kinds"
        if current_id is not None and event.model_set != current_id:
            return f"about model set {event.model_set}, not the one in service ({current_id})"
        if self.last_retrain_at is not None and time.monotonic() - self.last_retrain_at < self.cfg.cooldown_s:
            return f"within retrain.cooldown_s ({self.cfg.cooldown_s:.0f} s) of the last retrain"
        return None

    def watch(self, *, every_s: float | None = None, idle_exit_s: float | None = None,
              stop=None, max_retrains: int | None = None) -> list[dict]:
        """Consume drift events (and retrain every ``every_s`` seconds) until
        ``stop`` is set, ``max_retrains`` were done, or (``idle_exit_s``) no
        event came for that long. Returns the decisions."""
        from confluent_kafka import Consumer, KafkaError

        from models.publish import current_manifest

        if self.cfg.http_port:
            from prometheus_client import start_http_server

            start_http_server(self.cfg.http_port, addr=self.cfg.http_host, registry=self.metrics.registry)
        consumer = Consumer({
            "bootstrap.servers": self.settings.kafka.bootstrap_servers,
            "group.id": self.cfg.consumer_group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        })
        consumer.subscribe([self.settings.kafka.topics.drift.name])
        decisions: list[dict] = []
        last_event_at = last_scheduled = time.monotonic()
        try:
            while not (stop is not None and stop.is_set()):
                if max_retrains is not None and len(decisions) >= max_retrains:
                    break
                if every_s and time.monotonic() - last_scheduled >= every_s:
                    last_scheduled = time.monotonic()
                    decisions.append(self.retrain(reason=f"schedule (every {every_s:.0f} s)"))
                message = consumer.poll(0.5)
                if message is None:
                    if idle_exit_s is not None and time.monotonic() - last_event_at > idle_exit_s:
                        break
                    continue
                if message.error():
                    if message.error().code() != KafkaError._PARTITION_EOF:
                        log.warning("drift topic: %s", message.error())
                    continue
                last_event_at = time.monotonic()
                try:
                    event = _drift_event.decode(message.value())
                except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                    self.metrics.drift_events.labels("rejected").inc()
                    log.warning("drift topic offset %d: not a drift event: %s", message.offset(), exc)
                    consumer.commit(message, asynchronous=False)
                    continue
                current = current_manifest(self.settings)
                why_not = self.qualifies(event, current.model_set if current else None)
                if why_not is not None:
                    self.metrics.drift_events.labels("skipped").inc()
                    log.info("drift %s %s %s: no retrain: %s", event.severity, event.kind, event.subject, why_not)
                else:
                    self.metrics.drift_events.labels("retrain").inc()
                    decisions.append(self.retrain(
                        reason=f"drift {event.severity} {event.kind} of {event.subject} at {event.ts}", trigger=event))
                consumer.commit(message, asynchronous=False)
        finally:
            consumer.close()
        return decisions
