"""The engine's Prometheus metrics and its HTTP endpoints (``/metrics``,
``/health``, ``/ready``, plus the routes a caller adds, e.g. the query API
of :mod:`stream.query`), served on ``serving.http_host:http_port``."""

from __future__ import annotations

import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, GCCollector, Histogram, ProcessCollector, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families

from signalml.jsonio import encode_json

STAGE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


def scraped_samples(text: str) -> list:
    """Every sample of a Prometheus text exposition (a ``/metrics`` page)."""
    return [sample for family in text_string_to_metric_families(text) for sample in family.samples]


def histogram_buckets(samples: list, name: str) -> dict[float, float]:
    """Bucket bound (``le``) -> cumulative count of the unlabelled histogram ``name``."""
    return {float(s.labels["le"]): s.value for s in samples if s.name == f"{name}_bucket"}


def histogram_totals(samples: list, name: str, label: str) -> dict[str, tuple[float, float]]:
    """Value of ``label`` -> (sum, count) of the histogram ``name``."""
    sums = {s.labels[label]: s.value for s in samples if s.name == f"{name}_sum"}
    counts = {s.labels[label]: s.value for s in samples if s.name == f"{name}_count"}
    return {key: (sums.get(key, 0.0), counts[key]) for key in counts}


def bucket_quantile(cumulative: dict[float, float], q: float) -> float | None:
    """Quantile ``q`` of a Prometheus histogram as the upper bound of the
    bucket it falls in. ``cumulative``: bucket bound (``le``, +Inf included)
    -> cumulative count, e.g. the difference of two scrapes; None when it
    holds no observation."""
    bounds = sorted(cumulative)
    total = cumulative[bounds[-1]] if bounds else 0.0  # the +Inf bucket
    if total <= 0:
        return None
    return next(bound for bound in bounds if cumulative[bound] >= q * total)


def register_process_collectors(registry: CollectorRegistry) -> None:
    """CPU, memory, file descriptors and the garbage collector, as
    Prometheus' default registry has them (ours are private registries);
    a registry that has them already is left as it is."""
    for collector in (ProcessCollector, GCCollector):
        try:
            collector(registry=registry)
        except ValueError:  # its metric names are registered already
            pass


class EngineMetrics:
    """Every engine metric, on one registry (names prefixed ``signalml_``)."""

    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        r = self.registry
        register_process_collectors(r)
        self.bars_in = Counter("signalml_bars_in", "Bars consumed from the bars topic", registry=r)
        self.bars_rejected = Counter("signalml_bars_rejected", "Bars dead-lettered, by reason", ["reason"], registry=r)
        self.bars_late = Counter("signalml_bars_late", "Bars of an already closed bar time", registry=r)
        self.cross_sections = Counter("signalml_cross_sections", "Cross-sections closed, by rule", ["reason"], registry=r)
        self.signals_out = Counter("signalml_signals_out", "Signals committed", registry=r)
        self.drift_events = Counter("signalml_drift_events", "Drift events published", ["kind", "severity"], registry=r)
        self.stage_latency = Histogram("signalml_stage_latency_seconds", "Per-stage latency of one cross-section",
                                       ["stage"], buckets=STAGE_BUCKETS, registry=r)
        self.bar_to_signal = Histogram("signalml_bar_to_signal_seconds",
                                       "From the consumption of a cross-section's last bar to its committed signals",
                                       buckets=STAGE_BUCKETS, registry=r)
        self.consumer_lag = Gauge("signalml_consumer_lag", "Messages not yet consumed, by partition", ["partition"], registry=r)
        self.model_set = Gauge("signalml_model_set_info", "The model set in service (value 1)", ["model_set"], registry=r)
        self.staleness = Gauge("signalml_staleness_seconds", "Seconds since the last committed signals", registry=r)
        self.triton_up = Gauge("signalml_triton_available", "1 when the last scoring call succeeded", registry=r)
        self.kafka_up = Gauge("signalml_kafka_available", "1 unless the engine is waiting for Kafka", registry=r)
        self.rewinds = Counter("signalml_rewinds", "Rewinds to the last commit, by cause (triton, kafka)", ["cause"],
                               registry=r)
        self.paused_partitions = Gauge("signalml_paused_partitions",
                                       "Bars partitions paused because they run ahead of the oldest open bar time",
                                       registry=r)
        self.active = Gauge("signalml_engine_active",
                            "1 while this engine holds its engine id's lease (active), 0 while it stands by",
                            registry=r)
        self.last_bar_ts = Gauge("signalml_last_bar_time_ms", "Bar time of the last closed cross-section", registry=r)

    def time_stage(self, stage: str):
        return self.stage_latency.labels(stage).time()


# A route answers the query string of a GET with (status, body); the body is
# a JSON-encodable object (dicts, lists, msgspec Structs, numpy values) or
# bytes already encoded as JSON.
Route = Callable[[str], "tuple[int, Any]"]

log = logging.getLogger("signalml.http")




class HealthServer:
    """``/metrics`` for Prometheus; ``/health`` (200 while the engine loop
    runs, 503 when it is stuck or Triton is unavailable) and ``/ready`` (200
    once it serves a model set). ``status`` returns the JSON body.

    ``extra_routes`` maps more paths to :data:`Route` functions. Every path
    answers GET and HEAD; other methods get 405. A route that raises answers
    500 with the error (and logs it) instead of dropping the connection.
    Connections are kept alive (HTTP/1.1) and closed after ``idle_timeout_s``
    without a request."""

    def __init__(self, host: str, port: int, metrics: EngineMetrics, status: Callable[[], dict],
                 extra_routes: dict[str, Route] | None = None, *, idle_timeout_s: float = 30.0):
        self.metrics = metrics
        self.status = status
        self.extra_routes = extra_routes or {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out as two writes; with Nagle on, a kept-alive
            # connection waits for the client's delayed ACK (~40 ms) in between.
            disable_nagle_algorithm = True
            timeout = idle_timeout_s
            _head_only = False

            def do_GET(self):  # noqa: N802 - http.server's name
                path, _, query = self.path.partition("?")
                if path == "/metrics":
                    return self._send(200, generate_latest(server.metrics.registry), CONTENT_TYPE_LATEST)
                if path in ("/health", "/ready"):
                    body = server.status()
                    ok = body["healthy"] if path == "/health" else body["ready"]
                    return self._json(200 if ok else 503, body)
                route = server.extra_routes.get(path)
                if route is not None:
                    try:
                        code, body = route(query)
                    except Exception as exc:  # noqa: BLE001 - a bug answers 500, it does not kill the connection
                        log.exception("GET %s failed", self.path)
                        code, body = 500, {"error": f"internal error: {type(exc).__name__}: {exc}"}
                    return self._json(code, body)
                return self._json(404, {"error": f"no such path: {path}"})

            def do_HEAD(self):  # noqa: N802
                self._head_only = True
                self.do_GET()

            def _not_allowed(self):
                self.close_connection = True  # a request body may follow, unread
                self._json(405, {"error": f"{self.command} is not allowed: this server is read-only (GET, HEAD)"},
                           {"Allow": "GET, HEAD"})

            def __getattr__(self, name: str):
                # http.server answers a method without a do_<METHOD> with 501,
                # a server error; for this read-only server any method but GET
                # and HEAD is the client's mistake.
                if name.startswith("do_"):
                    return self._not_allowed
                raise AttributeError(name)

            def _json(self, code: int, body: Any, headers: dict[str, str] | None = None):
                data = body if isinstance(body, (bytes, bytearray)) else encode_json(body)
                self._send(code, data, "application/json", headers)

            def _send(self, code: int, body: bytes, content_type: str, headers: dict[str, str] | None = None):
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                if not self._head_only:
                    self.wfile.write(body)
                self._head_only = False

            def log_message(self, *args):  # requests are not worth a log line each
                pass

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="signalml-http", daemon=True)

    def start(self) -> "HealthServer":
        self.thread.start()
        return self

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
