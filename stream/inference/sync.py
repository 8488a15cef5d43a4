"""A blocking wrapper of :class:`~stream.inference.client.InferenceClient`
for tools, scripts and tests: one private event loop on a daemon thread,
so it works from any thread, including one inside another event loop."""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Sequence

import numpy as np

from signalml.contracts import ModelSetManifest
from stream.inference.client import InferenceClient, client_options


class SyncInferenceClient:
    """Same arguments as :class:`InferenceClient`; same methods, blocking."""

    def __init__(self, urls: str | Sequence[str], **kwargs: Any):
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="signalml-triton-client", daemon=True)
        self._thread.start()

        async def make() -> InferenceClient:
            return InferenceClient(urls, **kwargs)

        self.client = self._run(make())

    @classmethod
    def from_settings(cls, settings, **overrides: Any) -> "SyncInferenceClient":
        return cls(settings.triton.grpc_urls, **client_options(settings, **overrides))

    def _run(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def score(
        self, manifest: ModelSetManifest, tabular: np.ndarray | None, sequences: np.ndarray | None = None
    ) -> dict[str, np.ndarray]:
        return self._run(self.client.score(manifest, tabular, sequences))

    def infer(self, model: str, version: int, x: np.ndarray) -> np.ndarray:
        return self._run(self.client.infer(model, version, x))

    def ready(self, manifest: ModelSetManifest) -> dict[str, bool]:
        return self._run(self.client.ready(manifest))

    def healthy(self) -> dict[str, bool]:
        return self.client.healthy()

    def close(self) -> None:
        if self._loop.is_closed():
            return
        try:
            self._run(self.client.close())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop.close()

    def __enter__(self) -> "SyncInferenceClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
