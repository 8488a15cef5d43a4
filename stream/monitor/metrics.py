"""The monitor's Prometheus metrics (names prefixed ``signalml_monitor_``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from stream.observability import register_process_collectors


class MonitorMetrics:
    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        r = self.registry
        register_process_collectors(r)
        self.messages = Counter("signalml_monitor_messages", "Messages consumed, by topic role", ["source"], registry=r)
        self.rejected = Counter("signalml_monitor_rejected", "Messages that could not be decoded, by source and reason",
                                ["source", "reason"], registry=r)
        self.released = Counter("signalml_monitor_cross_sections", "Cross-sections evaluated, by role", ["role"], registry=r)
        self.drift_events = Counter("signalml_monitor_drift_events", "Drift events published",
                                    ["kind", "severity"], registry=r)
        self.rank_ic = Gauge("signalml_monitor_rank_ic", "Rolling rank IC over monitor.ic_window_bars bar times",
                             ["role", "model_set", "member"], registry=r)
        self.last_rank_ic = Gauge("signalml_monitor_last_rank_ic", "Rank IC of the last evaluated cross-section",
                                  ["role", "model_set", "member"], registry=r)
        self.training_rank_ic = Gauge("signalml_monitor_training_rank_ic", "The IC that decay is measured against",
                                      ["role", "model_set", "member"], registry=r)
        self.last_ts = Gauge("signalml_monitor_last_bar_time_ms", "Bar time of the last evaluated cross-section",
                             ["role"], registry=r)
        self.deferred = Counter("signalml_monitor_deferred_messages",
                                "Messages handed over before the state table was recovered (read again later)",
                                registry=r)
        self.replayed = Counter("signalml_monitor_replayed_messages",
                                "Messages already processed before a restart, skipped by their offset", ["source"],
                                registry=r)
        self.recovered = Counter("signalml_monitor_recovered_messages",
                                 "Messages the consumer skipped, read from the broker and processed", ["source"],
                                 registry=r)
        self.pending = Gauge("signalml_monitor_pending_cross_sections", "Cross-sections waiting for returns",
                             ["role"], registry=r)
        self.input_ts = Gauge("signalml_monitor_input_bar_time_ms",
                              "Bar time of the last cross-section record taken, by role (lag: the engine's "
                              "signalml_last_bar_time_ms minus this)", ["role"], registry=r)
        self.batch_records = Histogram("signalml_monitor_batch_records", "Records per processed batch",
                                       buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512), registry=r)

    def observe(self, xs, analyzer, events) -> None:
        """Called for every released cross-section."""
        self.released.labels(xs.role).inc()
        self.last_ts.labels(xs.role).set(xs.ts)
        for name, subject in analyzer.subjects.items():
            labels = (xs.role, xs.model_set, name)
            if subject.rolling.mean is not None:
                self.rank_ic.labels(*labels).set(subject.rolling.mean)
            if subject.last_ic is not None:
                self.last_rank_ic.labels(*labels).set(subject.last_ic)
            if subject.decay.reference is not None:
                self.training_rank_ic.labels(*labels).set(subject.decay.reference)
