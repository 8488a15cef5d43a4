"""Inference: the engine's Triton client (members of a model set in
parallel, pinned versions, timeouts, retries, failover between several
Triton endpoints, our own errors, Prometheus latency per model)."""

from stream.inference.client import InferenceClient, Signature
from stream.inference.errors import (
    InferenceError,
    InferenceTimeout,
    InvalidInput,
    ModelNotReady,
    PublishError,
    ServerUnavailable,
)
from stream.inference.sync import SyncInferenceClient

__all__ = [
    "InferenceClient",
    "InferenceError",
    "InferenceTimeout",
    "InvalidInput",
    "ModelNotReady",
    "PublishError",
    "ServerUnavailable",
    "Signature",
    "SyncInferenceClient",
]
