"""The Triton client's own errors, without a Triton: nothing listening is
ServerUnavailable, a listener that never answers is InferenceTimeout, and
bad input is refused before anything is sent."""

from __future__ import annotations

import asyncio
import socket
import time

import numpy as np
import pytest
from prometheus_client import CollectorRegistry
from tritonclient.utils import InferenceServerException

from signalml.contracts import ManifestMember, ModelSetManifest, schema_hash
from signalml.errors import SignalMLError
from stream.inference import (
    InferenceClient,
    InferenceError,
    InferenceTimeout,
    InvalidInput,
    ModelNotReady,
    ServerUnavailable,
    SyncInferenceClient,
)
from stream.inference.errors import translate

NAMES = [f"f{i}" for i in range(4)]
MANIFEST = ModelSetManifest(
    model_set="ms-20260101000000-0123abcd",
    created_at=0,
    members=[ManifestMember("gbm", 1, "lightgbm", "tabular"), ManifestMember("deep", 2, "lstm", "sequence")],
    ensemble_method="average",
    feature_names=NAMES,
    feature_schema_hash=schema_hash(NAMES),
    horizon_bars=5,
    sequence_length=3,
)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("status, message, kind", [
    ("StatusCode.DEADLINE_EXCEEDED", "Deadline Exceeded", InferenceTimeout),
    ("StatusCode.UNAVAILABLE", "failed to connect to all addresses; Connection refused", ServerUnavailable),
    ("StatusCode.UNAVAILABLE", "Request for unknown model: 'gbm' has no available versions", ModelNotReady),
    ("StatusCode.NOT_FOUND", "Request for unknown model: 'gbm' version 9 is not found", ModelNotReady),
    ("StatusCode.INVALID_ARGUMENT", "unexpected shape for input 'FEATURES'", InvalidInput),
    ("StatusCode.INTERNAL", "model gbm:1: FEATURES must have shape [N, 4], got [2, 5]", InvalidInput),
    ("StatusCode.INTERNAL", "model gbm:1: scoring failed: ValueError", InferenceError),
])
def test_tritonclient_errors_become_the_most_specific_class(status, message, kind):
    error = translate(InferenceServerException(message, status=status), model="gbm", version=1)
    assert type(error) is kind
    assert isinstance(error, SignalMLError)
    assert error.model == "gbm" and error.version == 1 and error.status == status
    assert "model gbm version 1" in str(error)
    assert error.retryable == (kind in (InferenceTimeout, ServerUnavailable, ModelNotReady))


def test_nothing_listening_is_server_unavailable_after_the_retries():
    registry = CollectorRegistry()
    with SyncInferenceClient(f"127.0.0.1:{closed_port()}", timeout_s=2, retries=2, retry_backoff_s=0.01, registry=registry) as client:
        started = time.monotonic()
        with pytest.raises(ServerUnavailable, match="triton is unreachable") as caught:
            client.infer("gbm", 1, np.zeros((2, 4), np.float32))
        assert time.monotonic() - started < 2  # refused at once, not timed out
    assert "after 3 attempts" in "".join(caught.value.__notes__)
    assert registry.get_sample_value("signalml_triton_errors_total", {"model": "gbm", "error": "ServerUnavailable"}) == 3


def test_a_server_that_never_answers_is_a_timeout_not_a_connection_error():
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"127.0.0.1:{silent.getsockname()[1]}"
        with SyncInferenceClient(url, timeout_s=0.3, retries=1, retry_backoff_s=0.01, registry=CollectorRegistry()) as client:
            started = time.monotonic()
            with pytest.raises(InferenceTimeout, match="no answer within the timeout"):
                client.infer("gbm", 1, np.zeros((2, 4), np.float32))
            assert 0.6 <= time.monotonic() - started < 5


@pytest.mark.parametrize("tabular, sequences, message", [
    (np.zeros((3, 5), np.float32), np.zeros((3, 3, 4), np.float32), "tabular must be \\[N, F\\] with F = 4"),
    (np.zeros((3, 4), np.int64), np.zeros((3, 3, 4), np.float32), "tabular must be float32, got int64"),
    (np.zeros((3, 4), np.float32), None, "sequences is required"),
    (np.zeros((3, 4), np.float32), np.zeros((2, 3, 4), np.float32), "tabular has 3 rows but sequences has 2"),
])
def test_bad_cross_sections_are_refused_before_sending(tabular, sequences, message):
    async def run():
        async with InferenceClient(f"127.0.0.1:{closed_port()}", registry=CollectorRegistry()) as client:
            await client.score(MANIFEST, tabular, sequences)

    with pytest.raises(InvalidInput, match=message):
        asyncio.run(run())


def test_client_settings_are_validated():
    with pytest.raises(ValueError):
        InferenceClient("127.0.0.1:1", timeout_s=0)
