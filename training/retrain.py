"""``signalml retrain``: the retraining loop, with a promotion gate.

On a drift event at or above ``retrain.min_severity`` (of a kind in
``retrain.kinds``, about the model set in service), or on a schedule, or
once on demand, :meth:`RetrainLoop.retrain`:

1. takes the last ``retrain.history_bars`` bar times of history: the bars
   store (``retrain.history_store``) followed by the bars topic
   (:mod:`training.history`), or a bars file given on the command line;
2. runs the walk-forward job (:func:`training.run.run_training`) on all of
   it: its test windows are exactly the last ``retrain.evaluation_bars``
   labelled bar times (earlier windows, which the gate does not read, are
   not fitted), each out of sample, and its final window (every bar) is the
   candidate model set;
3. scores those held-out bar times with the set in service (through
   Triton, as it is served) and compares the two (:mod:`training.promotion`:
   the candidate's own t-statistic, then a paired test where both are out
   of sample);
4. publishes the candidate only if the gate passes; otherwise records why.

Every decision is logged, appended to ``<state_dir>/retrain/decisions.jsonl``
and counted in Prometheus metrics (``signalml_retrain_*``).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from pathlib import Path

import msgspec
import numpy as np
import pandas as pd
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from signalml.config import Settings
from signalml.contracts import DriftEvent, decoder
from signalml.errors import DataError, SignalMLError
from training.backtest import default_member_factory
from training.dataset import build_dataset
from training.export import default_member_loader
from training.history import load_history, recent
from training.promotion import decide, evaluate, holdout_bars

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
        """The last ``retrain.history_bars`` bar times; DataError when they
        cannot hold the walk-forward's first window and the held-out bars."""
        bars = recent(load_history(self.settings, self.bars_path), self.cfg.history_bars)
        training = self.settings.training
        needed = training.train_period + training.gap_bars + self.cfg.evaluation_bars + training.target_label_span_bars
        n_times = int(bars["ts"].nunique()) if len(bars) else 0
        if n_times < needed:
            raise DataError(
                f"retrain: {n_times} bar times of history; the walk-forward needs training.train_period "
                f"({training.train_period}) + the gap ({training.gap_bars}) before retrain.evaluation_bars "
                f"({self.cfg.evaluation_bars}) held-out bar times and their labels ({training.target_label_span_bars}): "
                f"{needed}. Point retrain.history_store at older bars or lower those settings"
            )
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
            decision["history"] = {"bar_times": int(bars["ts"].nunique()), "rows": int(len(bars)),
                                   "first": str(bars["date"].iloc[0]), "last": str(bars["date"].iloc[-1])}
            out_dir = self.settings.path(self.cfg.out_dir) / f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"
            log.info("retrain (%s): walk-forward on %d bar times, judged on the last %d", reason,
                     decision["history"]["bar_times"], self.cfg.evaluation_bars)
            run_training(self.settings, self.bars_path or "<bars store and topic>", out_dir, progress=False, bars=bars,
                         member_factory=self.member_factory, member_loader=self.member_loader,
                         tested_bars=self.cfg.evaluation_bars)
            decision["candidate_dir"] = str(out_dir)
            current = current_manifest(self.settings)
            decision["current"] = current.model_set if current else None
            evaluation = self.evaluate(bars, out_dir, current)
            decision.update(evaluation.as_record())
            refusal = decide(evaluation, self.cfg)
            if refusal is None:
                manifest = publish(self.settings, out_dir)
                decision.update(outcome="published", published=manifest.model_set)
                self.metrics.rank_ic.labels(manifest.model_set).set(evaluation.candidate["rank_ic"])
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

    def evaluate(self, bars: pd.DataFrame, candidate_dir: Path, current):
        """The candidate's out-of-sample scores of the held-out bar times
        (its walk-forward's test predictions) and, on the same rows, the set
        in service's as Triton serves them (:mod:`training.promotion`)."""
        from training.run import longest_sequence

        predictions = pd.concat([pd.read_parquet(p) for p in sorted((Path(candidate_dir) / "predictions").glob("*.parquet"))],
                                ignore_index=True)
        predictions = predictions.sort_values(["bar", "fold"]).drop_duplicates(["bar", "symbol"], keep="last")
        h = self.settings.training.label_horizon_bars
        forward_column = f"fwd_ret_{h}"
        held_out = holdout_bars(predictions["bar"].to_numpy(), np.isfinite(predictions[forward_column].to_numpy()),
                                self.cfg.evaluation_bars)
        rows = predictions[predictions["bar"].isin(held_out) & predictions[forward_column].notna()]
        rows = rows.sort_values(["bar", "symbol"]).reset_index(drop=True)
        groups = rows["bar"].to_numpy()
        forward = rows[forward_column].to_numpy()
        candidate = rows[f"ensemble.{self.settings.ensemble.method}"].to_numpy()
        if len(np.unique(groups)) < self.cfg.evaluation_bars:
            raise DataError(f"retrain: the walk-forward's test windows cover {len(np.unique(groups))} of the "
                            f"{self.cfg.evaluation_bars} held-out bar times; lengthen retrain.history_bars")
        current_score = comparable = None
        if current is not None:
            length = max(longest_sequence(self.settings), current.sequence_length)
            dataset = build_dataset(bars, self.settings, sequence_length=length)
            lookup = pd.MultiIndex.from_arrays([dataset.date_index, dataset.symbols[dataset.symbol_index]])
            dataset_rows = lookup.get_indexer(pd.MultiIndex.from_arrays([groups, rows["symbol"].to_numpy()]))
            if (dataset_rows < 0).any():
                raise DataError("retrain: held-out rows missing from the rebuilt dataset")
            current_score = self._served_scores(dataset, dataset_rows, groups, current)
            last_seen = (current.training_window or {}).get("last_label_end")
            comparable = rows["date"].to_numpy() >= np.datetime64(pd.Timestamp(last_seen)) if last_seen \
                else np.ones(len(rows), dtype=bool)
        evaluation = evaluate(candidate, forward, groups, horizon_bars=h, evaluation_bars=self.cfg.evaluation_bars,
                              current_score=current_score, comparable=comparable)
        log.info("held-out rank IC over %d bar times: candidate %.4f (t %.2f); current %s", len(held_out),
                 evaluation.candidate["rank_ic"], evaluation.candidate["rank_ic_t_stat"],
                 "none" if evaluation.current is None else
                 f"{evaluation.current['rank_ic']:.4f} on {evaluation.comparable_bars} comparable bar times")
        return evaluation

    def _served_scores(self, dataset, rows: np.ndarray, groups: np.ndarray, current) -> np.ndarray:
        """The set in service's ensemble score of ``rows``, through Triton."""
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
        return model_set.ensemble.combine(matrix, groups=groups)

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
                    decisions.append(self.retrain(reason=f"schedule (every {every_s:g} s)"))
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
