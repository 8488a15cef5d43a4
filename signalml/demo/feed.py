"""What the demo's view shows, gathered from where the product exposes it:

* signals and drift events from their topics (``read_committed``: only what
  the engine committed), from the end the topics had when the feed was made,
  kept only for the demo's model set;
* bars/s and bar-to-signal latency from the engine's ``/metrics``;
* rolling rank IC and what the monitor has evaluated from its ``/status``.

:meth:`DemoFeed.poll` takes in what arrived since the last call and never
waits: an endpoint that does not answer (yet) leaves its figures as they were.
"""

from __future__ import annotations

import collections
import json
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass

import msgspec
from confluent_kafka import Consumer, TopicPartition

from signalml.config import Settings
from signalml.contracts import DriftEvent, Signal
from stream.observability import bucket_quantile, histogram_buckets, scraped_samples

_signal, _drift = msgspec.json.Decoder(Signal), msgspec.json.Decoder(DriftEvent)


def get_json(url: str, timeout_s: float = 1.0) -> dict | None:
    """The JSON body of ``url`` (also of an error status, which the engine's
    ``/ready`` answers with its status), or None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return json.load(response)
    except urllib.error.HTTPError as exc:
        try:
            return json.load(exc)
        except ValueError:
            return None
    except (OSError, ValueError):
        return None


def get_text(url: str, timeout_s: float = 1.0) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return response.read().decode()
    except (OSError, ValueError):
        return None


@dataclass
class CrossSectionView:
    """The latest complete cross-section: its bar time and signals by score."""

    ts: int
    signals: list[Signal]

    def top(self, n: int = 5) -> list[Signal]:
        return self.signals[:n]

    def bottom(self, n: int = 5) -> list[Signal]:
        return self.signals[::-1][:n]


@dataclass
class Latency:
    """Bucket bounds of a Prometheus histogram's quantiles (the engine's
    buckets: a value is "≤ bound")."""

    count: int = 0
    p50_s: float | None = None
    p99_s: float | None = None


class DemoFeed:
    """What the view shows of one demo run, whose model set is ``model_set``."""

    def __init__(self, settings: Settings, model_set: str):
        self.settings, self.model_set = settings, model_set
        self.signals = 0
        self.complete_times: set[int] = set()  # bar times whose every signal has arrived
        self.latest: CrossSectionView | None = None
        self.drift_events: list[DriftEvent] = []
        self.engine_bars = 0  # bars the engine has consumed
        self.bars_per_s: float | None = None  # over the last 3 s
        self.latency = Latency()
        self.monitor: dict | None = None  # the champion's report from the monitor's /status
        self.monitor_released = 0  # cross-sections the monitor has evaluated
        self.monitor_matured = 0  # tail cross-sections whose returns have matured
        self.monitor_behind_why: str | None = None  # why the demo stopped waiting for the monitor
        kafka, serving, monitor = settings.kafka, settings.serving, settings.monitor
        self.engine_url = f"http://{serving.http_host}:{serving.http_port}"
        self.monitor_url = f"http://{monitor.http_host}:{monitor.http_port}"
        self._signals = _consumer_at_end(kafka.bootstrap_servers, kafka.topics.signals.name)
        self._drift = _consumer_at_end(kafka.bootstrap_servers, kafka.topics.drift.name)
        self._pending: dict[int, list[Signal]] = collections.defaultdict(list)  # incomplete cross-sections
        self._rates: collections.deque = collections.deque(maxlen=12)  # (monotonic s, bars consumed)
        self._buckets: dict[float, float] = {}  # the latency histogram at the last scrape
        self._latency_base: dict[float, float] = {}  # ... when the tail began
        self._tail_start: tuple[float, int] | None = None  # (monotonic s, bars consumed) when the tail began
        self._tail_last: tuple[float, int] = (0.0, 0)  # ... when the last of them was consumed

    # ---------------------------------------------------------------- polling

    def poll(self) -> None:
        self._take_signals()
        self._take_drift()
        self._scrape_engine()
        report = get_json(f"{self.monitor_url}/status")
        if report is not None:
            self.monitor = (report.get("roles") or {}).get("champion")
            self.monitor_released = int((report.get("counts") or {}).get("released", 0))

    def _take_signals(self) -> None:
        for msg in self._signals.consume(10_000, timeout=0):
            if msg.error() is not None:
                continue
            signal = _signal.decode(msg.value())
            if signal.model_set != self.model_set:
                continue
            self.signals += 1
            pending = self._pending[signal.ts]
            pending.append(signal)
            if len(pending) == signal.cross_section_size:
                self.complete_times.add(signal.ts)
                if self.latest is None or signal.ts > self.latest.ts:
                    self.latest = CrossSectionView(signal.ts, sorted(pending, key=lambda s: -s.score))
                del self._pending[signal.ts]

    def _take_drift(self) -> None:
        for msg in self._drift.consume(1000, timeout=0):
            if msg.error() is None:
                event = _drift.decode(msg.value())
                if event.model_set == self.model_set:
                    self.drift_events.append(event)

    def _scrape_engine(self) -> None:
        text = get_text(f"{self.engine_url}/metrics")
        if text is None:
            return
        samples = scraped_samples(text)
        for sample in samples:
            if sample.name == "signalml_bars_in_total":
                self.engine_bars = int(sample.value)
        buckets = histogram_buckets(samples, "signalml_bar_to_signal_seconds")
        now = time.monotonic()
        if self._tail_start is not None and self.engine_bars > self._tail_last[1]:
            self._tail_last = (now, self.engine_bars)
        self._rates.append((now, self.engine_bars))
        first = next((r for r in self._rates if now - r[0] <= 3.0), None)
        if first is not None and now - first[0] > 0.5:
            self.bars_per_s = (self.engine_bars - first[1]) / (now - first[0])
        self.latency = histogram_quantiles({le: n - self._latency_base.get(le, 0.0) for le, n in buckets.items()})
        self._buckets = buckets

    def start_tail(self) -> None:
        """From now on, latency and the average rate count only what follows
        (the tail, not the warm-up the engine read as a backlog)."""
        self._scrape_engine()
        self._latency_base = dict(self._buckets)
        self.latency = Latency()
        self._tail_start = self._tail_last = (time.monotonic(), self.engine_bars)

    @property
    def tail_bars_per_s(self) -> float | None:
        """Bars consumed since :meth:`start_tail` over the time until the last one."""
        if self._tail_start is None or self._tail_last[0] <= self._tail_start[0]:
            return None
        return (self._tail_last[1] - self._tail_start[1]) / (self._tail_last[0] - self._tail_start[0])

    # ---------------------------------------------------------------- reading

    def rolling_ic(self) -> dict[str, float]:
        return {k: v for k, v in ((self.monitor or {}).get("rolling_rank_ic") or {}).items() if v is not None}

    def training_ic(self) -> dict[str, float]:
        return {k: v for k, v in ((self.monitor or {}).get("training_rank_ic") or {}).items() if v is not None}

    def drift_counts(self) -> dict[str, int]:
        counts = collections.Counter(f"{e.kind}/{e.severity}" for e in self.drift_events)
        return dict(counts.most_common())

    def close(self) -> None:
        self._signals.close()
        self._drift.close()


def _consumer_at_end(bootstrap: str, topic: str) -> Consumer:
    """A consumer of ``topic`` from its current end (committed records only)."""
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": f"signalml-demo-view-{uuid.uuid4().hex}",
        "enable.auto.commit": False,
        "isolation.level": "read_committed",
    })
    partitions = sorted(consumer.list_topics(topic, timeout=30).topics[topic].partitions)
    positions = []
    for p in partitions:
        _low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)
        positions.append(TopicPartition(topic, p, high))
    consumer.assign(positions)
    return consumer


def histogram_quantiles(cumulative: dict[float, float]) -> Latency:
    """p50 and p99 as the bounds of the buckets they fall in."""
    p50 = bucket_quantile(cumulative, 0.5)
    if p50 is None:
        return Latency()
    return Latency(int(cumulative[max(cumulative)]), p50, bucket_quantile(cumulative, 0.99))  # max: the +Inf bucket
