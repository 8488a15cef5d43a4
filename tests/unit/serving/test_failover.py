"""The client's choice among several Triton endpoints: requests spread over
the healthy ones, a retryable failure sends the request to another endpoint
and marks its own unhealthy until a re-check finds it serving again, and the
unavailable error comes only when no endpoint can serve. Unreachable
endpoints are real (closed ports, tritonclient's own errors); endpoints
that answer are stand-ins with the endpoint's interface."""

from __future__ import annotations

import asyncio
import socket

import numpy as np
import pytest
from prometheus_client import CollectorRegistry
from tritonclient.utils import InferenceServerException

from signalml.contracts import ManifestMember, ModelSetManifest, schema_hash
from stream.inference import InferenceClient, InvalidInput, ModelNotReady, ServerUnavailable
from stream.inference.errors import translate

NAMES = [f"f{i}" for i in range(4)]
MANIFEST = ModelSetManifest(
    model_set="ms-20260101000000-0123abcd",
    created_at=0,
    members=[ManifestMember("gbm", 1, "lightgbm", "tabular")],
    ensemble_method="average",
    feature_names=NAMES,
    feature_schema_hash=schema_hash(NAMES),
    horizon_bars=5,
)
ROWS = np.zeros((3, 4), np.float32)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Answering:
    """An endpoint that answers (after ``delay_s``), or fails with ``error``
    while it is set; ``serving`` is what a re-check finds."""

    def __init__(self, url: str, value: float, delay_s: float = 0.0):
        self.url, self.value, self.delay_s = url, value, delay_s
        self.error: Exception | None = None
        self.serving = True
        self.calls = 0
        self.outstanding = 0
        self.most = 0

    async def score(self, manifest, tabular, sequences=None):
        self.calls += 1
        self.outstanding += 1
        self.most = max(self.most, self.outstanding)
        try:
            await asyncio.sleep(self.delay_s)
            if self.error is not None:
                raise self.error
            return {m.name: np.full(len(tabular), self.value) for m in manifest.members}
        finally:
            self.outstanding -= 1

    async def serves(self, pinned) -> bool:
        return self.serving

    async def close(self) -> None:
        pass


def unavailable(model: str = "gbm") -> Exception:
    """What the client makes of tritonclient's error for a server going away."""
    return translate(InferenceServerException("failed to connect to all addresses; Connection refused",
                                              status="StatusCode.UNAVAILABLE"), model=model, version=1)


def client_with(*endpoints, **kwargs) -> InferenceClient:
    client = InferenceClient([e.url for e in endpoints], retries=1, retry_backoff_s=0.01,
                             registry=kwargs.pop("registry", CollectorRegistry()), **kwargs)
    for route, endpoint in zip(client.routes, endpoints):
        route.endpoint = endpoint
    return client


def test_no_endpoint_reachable_is_server_unavailable_after_trying_each_in_every_round():
    async def main():
        registry = CollectorRegistry()
        urls = [f"127.0.0.1:{closed_port()}", f"127.0.0.1:{closed_port()}"]
        async with InferenceClient(urls, timeout_s=2, retries=2, retry_backoff_s=0.01, registry=registry) as client:
            with pytest.raises(ServerUnavailable, match="triton is unreachable") as caught:
                await client.score(MANIFEST, ROWS)
            return client.healthy(), caught.value, registry

    healthy, error, registry = asyncio.run(main())
    assert healthy == dict.fromkeys(healthy, False) and len(healthy) == 2
    assert "after 3 attempts on each of 2 endpoints" in "".join(error.__notes__)
    assert registry.get_sample_value("signalml_triton_errors_total",
                                     {"model": "gbm", "error": "ServerUnavailable"}) == 6
    for url in healthy:
        assert registry.get_sample_value("signalml_triton_endpoint_up", {"endpoint": url}) == 0


def test_a_request_to_an_unreachable_endpoint_is_answered_by_the_other():
    async def main():
        registry = CollectorRegistry()
        down = f"127.0.0.1:{closed_port()}"
        async with InferenceClient([down, "127.0.0.1:1"], retries=0, registry=registry) as client:
            up = Answering("127.0.0.1:1", 7.0)
            client.routes[1].endpoint = up
            first = [await client.score(MANIFEST, ROWS) for _ in range(4)]
            return client.healthy(), first, up.calls, registry, down

    healthy, scores, calls, registry, down = asyncio.run(main())
    assert all(s["gbm"].tolist() == [7.0] * 3 for s in scores)
    assert healthy == {down: False, "127.0.0.1:1": True}
    assert calls == 4  # the down endpoint was tried once, then left out
    assert registry.get_sample_value("signalml_triton_errors_total",
                                     {"model": "gbm", "error": "ServerUnavailable"}) == 1
    assert registry.get_sample_value("signalml_triton_endpoint_up", {"endpoint": down}) == 0


def test_concurrent_requests_spread_over_the_healthy_endpoints():
    async def main():
        a, b = Answering("a:1", 1.0, delay_s=0.05), Answering("b:1", 2.0, delay_s=0.05)
        client = client_with(a, b)
        results = await asyncio.gather(*(client.score(MANIFEST, ROWS) for _ in range(8)))
        return a, b, results

    a, b, results = asyncio.run(main())
    assert a.calls == b.calls == 4 and a.most == b.most == 4
    assert sorted(r["gbm"][0] for r in results) == [1.0] * 4 + [2.0] * 4


def test_an_endpoint_that_does_not_serve_the_pinned_version_is_left_out_until_a_recheck_finds_it_serving():
    async def main():
        a, b = Answering("a:1", 1.0), Answering("b:1", 2.0)
        client = client_with(a, b, recheck_s=0.05)
        a.error = ModelNotReady("model gbm version 1: is not ready", model="gbm", version=1)
        a.serving = False
        before = [(await client.score(MANIFEST, ROWS))["gbm"][0] for _ in range(6)]
        pinned = set(client.routes[0].pinned)
        a.error, a.serving = None, True
        await asyncio.sleep(0.1)
        await client.score(MANIFEST, ROWS)  # the re-check is due: it runs in the background
        await asyncio.sleep(0.02)
        after = [(await client.score(MANIFEST, ROWS))["gbm"][0] for _ in range(4)]
        return before, pinned, after, client.healthy()

    before, pinned, after, healthy = asyncio.run(main())
    assert before == [2.0] * 6
    assert pinned == {("gbm", 1)}
    assert healthy == {"a:1": True, "b:1": True} and 1.0 in after and 2.0 in after


def test_a_bad_request_is_not_sent_to_another_endpoint():
    async def main():
        a, b = Answering("a:1", 1.0), Answering("b:1", 2.0)
        a.error = b.error = InvalidInput("tabular must be [N, F]")
        client = client_with(a, b)
        with pytest.raises(InvalidInput):
            await client.score(MANIFEST, ROWS)
        return a.calls + b.calls, client.healthy()

    calls, healthy = asyncio.run(main())
    assert calls == 1 and all(healthy.values())


def test_the_error_of_the_last_endpoint_is_raised_when_none_serves():
    async def main():
        a, b = Answering("a:1", 1.0), Answering("b:1", 2.0)
        a.error, b.error = unavailable(), ModelNotReady("model gbm version 1: is not ready", model="gbm", version=1)
        client = client_with(a, b)
        with pytest.raises((ServerUnavailable, ModelNotReady)) as caught:
            await client.score(MANIFEST, ROWS)
        return caught.value, a.calls, b.calls

    error, a_calls, b_calls = asyncio.run(main())
    assert a_calls == b_calls == 2  # retries=1: two rounds over both
    assert "after 2 attempts on each of 2 endpoints" in "".join(error.__notes__)
