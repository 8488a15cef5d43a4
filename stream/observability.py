"""The engine's Prometheus metrics and its HTTP endpoints (``/metrics``,
``/health``, ``/ready``), served on ``serving.http_host:http_port``."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

STAGE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class EngineMetrics:
    """Every engine metric, on one registry (names prefixed ``signalml_``)."""

    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        r = self.registry
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
        self.last_bar_ts = Gauge("signalml_last_bar_time_ms", "Bar time of the last closed cross-section", registry=r)

    def time_stage(self, stage: str):
        return self.stage_latency.labels(stage).time()


class HealthServer:
    """``/metrics`` for Prometheus; ``/health`` (200 while the engine loop
    runs, 503 when it is stuck or Triton is unavailable) and ``/ready`` (200
    once it serves a model set). ``status`` returns the JSON body."""

    def __init__(self, host: str, port: int, metrics: EngineMetrics, status: Callable[[], dict],
                 extra_routes: dict[str, Callable[[str], tuple[int, dict]]] | None = None):
        self.metrics = metrics
        self.status = status
        self.extra_routes = extra_routes or {}
        server = self

        class Handler(BaseHTTPRequestHandler):
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
                    return self._json(*route(query))
                return self._json(404, {"error": f"no such path: {path}"})

            def _json(self, code: int, body: dict):
                self._send(code, json.dumps(body, default=str).encode(), "application/json")

            def _send(self, code: int, body: bytes, content_type: str):
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

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
