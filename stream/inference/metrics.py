"""Prometheus metrics of the Triton client.

``signalml_triton_latency_seconds{model}``: seconds for one member's
scores, retries included, successful calls only;
``signalml_triton_fanout_seconds``: seconds for a whole model set;
``signalml_triton_errors_total{model,error}``: failed attempts by error class;
``signalml_triton_endpoint_up{endpoint}``: 1 while the client sends requests
to that Triton endpoint, 0 while it is marked unhealthy.
"""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

BUCKETS_S = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)


class InferenceMetrics:
    """The client's metrics in one registry (one instance per registry:
    Prometheus refuses to register a name twice)."""

    _by_registry: dict[int, "InferenceMetrics"] = {}

    def __init__(self, registry: CollectorRegistry):
        self.latency = Histogram(
            "signalml_triton_latency_seconds",
            "Seconds to get one model's scores from Triton (retries included)",
            ["model"],
            buckets=BUCKETS_S,
            registry=registry,
        )
        self.fanout = Histogram(
            "signalml_triton_fanout_seconds",
            "Seconds to score a cross-section with every member of a model set",
            buckets=BUCKETS_S,
            registry=registry,
        )
        self.errors = Counter(
            "signalml_triton_errors",
            "Failed Triton requests (each attempt), by model and error class",
            ["model", "error"],
            registry=registry,
        )
        self.endpoint_up = Gauge(
            "signalml_triton_endpoint_up",
            "1 while the client sends requests to this Triton endpoint, 0 while it is unhealthy",
            ["endpoint"],
            registry=registry,
        )

    @classmethod
    def of(cls, registry: CollectorRegistry | None = None) -> "InferenceMetrics":
        registry = REGISTRY if registry is None else registry
        key = id(registry)
        if key not in cls._by_registry:
            cls._by_registry[key] = cls(registry)
        return cls._by_registry[key]
