"""The engine's Triton client: model sets scored on one or several Triton
servers, with health-based failover.

:class:`InferenceClient` holds one :class:`~stream.inference.endpoint.TritonEndpoint`
per gRPC address (``triton.endpoints``, or the one at ``host:grpc_port``).
Each call (a model set's scores, one model's scores, a readiness check)
goes to the healthy endpoint with the fewest calls outstanding. A call
that fails with a retryable error (unreachable, timed out, the pinned
version not served) marks its endpoint unhealthy and is sent to the next
one at once; an unhealthy endpoint is asked again, in the background,
every ``recheck_s`` (server ready, and the model versions that failed on
it ready) and takes requests again once it answers. When every endpoint
failed, the round is repeated ``retries`` times with exponential backoff
from ``retry_backoff_s`` (unhealthy endpoints included: one of them may be
back), then the error of the last attempt is raised: the existing
:class:`~stream.inference.errors.ServerUnavailable`,
:class:`~stream.inference.errors.InferenceTimeout` or
:class:`~stream.inference.errors.ModelNotReady`. Errors that retrying
cannot fix (bad input) are raised at once.

Each endpoint on this host has its own shared-memory input region (see
:mod:`stream.inference.endpoint`): a region is registered with one server
and carries one model set's inputs at a time, so one per server keeps
endpoints from waiting on each other's regions.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from typing import Any, Awaitable, Callable, Sequence

import numpy as np

from signalml.contracts import ManifestMember, ModelSetManifest
from stream.inference.endpoint import Signature, TritonEndpoint, is_local
from stream.inference.errors import InferenceError
from stream.inference.metrics import InferenceMetrics

__all__ = ["InferenceClient", "Signature", "client_options", "is_local"]

log = logging.getLogger("signalml.inference")


class _Route:
    """An endpoint and what the client knows of its health."""

    def __init__(self, endpoint: TritonEndpoint):
        self.endpoint = endpoint
        self.healthy = True
        self.in_flight = 0
        self.pinned: set[tuple[str, int]] = set()  # the model versions that failed on it
        self.check_at = 0.0
        self.check: asyncio.Task | None = None

    @property
    def url(self) -> str:
        return self.endpoint.url


class InferenceClient:
    """Async Triton client for model sets. Use in one event loop::

        async with InferenceClient.from_settings(settings) as client:
            scores = await client.score(manifest, x, sequences)

    ``urls``: one ``host:port`` or a list. ``timeout_s`` bounds each
    attempt; after a round in which every endpoint failed, ``retries``
    more rounds follow after ``retry_backoff_s``, doubling each time.
    ``max_batch_size`` splits larger cross-sections into parallel requests.
    ``recheck_s``: how often an unhealthy endpoint is asked whether it is
    back.
    """

    def __init__(
        self,
        urls: str | Sequence[str],
        *,
        timeout_s: float = 5.0,
        retries: int = 3,
        retry_backoff_s: float = 0.1,
        max_batch_size: int = 8192,
        shared_memory: bool | None = None,
        registry: Any = None,
        recheck_s: float = 1.0,
    ):
        urls = [urls] if isinstance(urls, str) else list(urls)
        if not urls or len(set(urls)) != len(urls):
            raise ValueError(f"one or more distinct Triton endpoints are required, got {urls}")
        if retries < 0 or retry_backoff_s < 0 or recheck_s <= 0:
            raise ValueError("retries >= 0, retry_backoff_s >= 0 and recheck_s > 0 are required")
        self.retries = retries
        self.retry_backoff_s = retry_backoff_s
        self.recheck_s = recheck_s
        self.metrics = InferenceMetrics.of(registry)
        self.routes = [
            _Route(TritonEndpoint(url, timeout_s=timeout_s, max_batch_size=max_batch_size,
                                  shared_memory=shared_memory, registry=registry))
            for url in urls
        ]
        self._turn = itertools.count()
        for route in self.routes:
            self.metrics.endpoint_up.labels(route.url).set(1)

    @classmethod
    def from_settings(cls, settings, **overrides: Any) -> "InferenceClient":
        return cls(settings.triton.grpc_urls, **client_options(settings, **overrides))

    @property
    def endpoints(self) -> list[TritonEndpoint]:
        return [route.endpoint for route in self.routes]

    def healthy(self) -> dict[str, bool]:
        """``{url: healthy}`` of every endpoint."""
        return {route.url: route.healthy for route in self.routes}

    async def __aenter__(self) -> "InferenceClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        for route in self.routes:
            if route.check is not None:
                route.check.cancel()
            await route.endpoint.close()

    # ------------------------------------------------------------ calls

    async def score(
        self,
        manifest: ModelSetManifest,
        tabular: np.ndarray | None,
        sequences: np.ndarray | None = None,
    ) -> dict[str, np.ndarray]:
        """Scores of every member, ``{member name: float64 [N]}``, all from
        one endpoint (see :meth:`TritonEndpoint.score`)."""
        pinned = {(m.name, m.version) for m in manifest.members}
        return await self._routed(lambda e: e.score(manifest, tabular, sequences), pinned)

    async def score_member(self, member: ManifestMember, x: np.ndarray) -> np.ndarray:
        """One member's float64 ``[N]`` scores for ``x``, at its pinned version."""
        return await self._routed(lambda e: e.score_member(member, x), {(member.name, member.version)})

    async def infer(self, model: str, version: int, x: np.ndarray) -> np.ndarray:
        """float64 ``[N]`` scores of ``model`` at ``version`` for float32 rows ``x``."""
        return await self._routed(lambda e: e.infer(model, version, x), {(model, version)})

    async def ready(self, manifest: ModelSetManifest) -> dict[str, bool]:
        """Whether each member's pinned version is loaded and ready on some
        endpoint that answers."""
        pinned = {(m.name, m.version) for m in manifest.members}
        results = await asyncio.gather(*(r.endpoint.ready(manifest) for r in self.routes), return_exceptions=True)
        answered = [r for r in results if not isinstance(r, BaseException)]
        if not answered:
            return await self._routed(lambda e: e.ready(manifest), pinned)  # raises the last error after retrying
        return {m.name: any(flags[m.name] for flags in answered) for m in manifest.members}

    # ------------------------------------------------------------ routing

    async def _routed(self, call: Callable[[TritonEndpoint], Awaitable[Any]], pinned: set[tuple[str, int]]):
        delay = self.retry_backoff_s
        error: InferenceError | None = None
        for left in range(self.retries, -1, -1):
            for route in self._order():
                route.in_flight += 1
                try:
                    result = await call(route.endpoint)
                except InferenceError as exc:
                    if not exc.retryable:
                        raise
                    self._mark_down(route, exc, pinned)
                    error = exc
                    continue
                finally:
                    route.in_flight -= 1
                self._mark_up(route)
                return result
            if left:
                await asyncio.sleep(delay)
                delay *= 2
        rounds = self.retries + 1
        error.add_note(f"after {rounds} attempts" if len(self.routes) == 1
                       else f"after {rounds} attempts on each of {len(self.routes)} endpoints")
        raise error

    def _order(self) -> list[_Route]:
        """Healthy endpoints, fewest calls outstanding first (ties in turn),
        then the unhealthy ones, longest known down first."""
        now = time.monotonic()
        for route in self.routes:
            if not route.healthy and now >= route.check_at and route.check is None:
                route.check = asyncio.get_running_loop().create_task(self._recheck(route))
        turn = next(self._turn)
        n = len(self.routes)
        healthy = sorted((r for r in self.routes if r.healthy),
                         key=lambda r: (r.in_flight, (self.routes.index(r) - turn) % n))
        return healthy + sorted((r for r in self.routes if not r.healthy), key=lambda r: r.check_at)

    def _mark_down(self, route: _Route, error: InferenceError, pinned: set[tuple[str, int]]) -> None:
        if route.healthy:
            log.warning("triton endpoint %s is unhealthy (%s); requests go to the others", route.url, error)
            route.check_at = time.monotonic() + self.recheck_s
        route.healthy = False
        route.pinned |= pinned
        self.metrics.endpoint_up.labels(route.url).set(0)

    def _mark_up(self, route: _Route) -> None:
        if not route.healthy:
            log.info("triton endpoint %s answers again", route.url)
        route.healthy = True
        route.pinned = set()
        self.metrics.endpoint_up.labels(route.url).set(1)

    async def _recheck(self, route: _Route) -> None:
        """Ask an unhealthy endpoint whether it serves again: server ready
        and the model versions that failed on it ready."""
        try:
            if await route.endpoint.serves(route.pinned):
                self._mark_up(route)
            else:
                route.check_at = time.monotonic() + self.recheck_s
        finally:
            route.check = None


def client_options(settings, **overrides: Any) -> dict[str, Any]:
    """The client's keyword arguments from ``settings.serving``, then ``overrides``."""
    serving = settings.serving
    return {
        "timeout_s": serving.request_timeout_s,
        "retries": serving.retries,
        "retry_backoff_s": serving.retry_backoff_s,
        "max_batch_size": serving.max_batch_size,
        "shared_memory": serving.shared_memory_inputs,
        **overrides,
    }
