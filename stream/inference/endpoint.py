"""Score a cross-section with every member of a model set, on one Triton.

:class:`TritonEndpoint` is one gRPC asyncio client (``tritonclient.grpc.aio``)
per server (:class:`~stream.inference.client.InferenceClient` spreads
requests over several and retries): members are asked in parallel, each
pinned to the version its manifest names, with a timeout per request, and
failures raised as our own exceptions (:mod:`stream.inference.errors`).
Latency goes to Prometheus per model.

The tensor names come from the model's metadata, fetched once per pinned
version: ``FEATURES``/``SEQUENCES`` -> ``SCORE`` on the cpu target, and
FIL's ``input__0`` -> ``output__0`` on the gpu target. A sequence model
whose input declares fewer steps than the cross-section has gets the last
steps.

With ``shared_memory=True`` (the default when Triton is on this host) the
inputs of :meth:`TritonEndpoint.score` go through one POSIX shared-memory
region registered with Triton instead of the gRPC message: the sequence
tensor of a 500-symbol cross-section is 1.2 MB, and copying it into a
region costs a fraction of serialising and sending it. The region grows
when a larger cross-section needs it and is registered again after a
Triton restart.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import tritonclient.grpc.aio as grpcaio
from tritonclient.grpc import InferInput, InferRequestedOutput
import tritonclient.utils.shared_memory as triton_shm
from tritonclient.utils import InferenceServerException

from signalml.contracts import ManifestMember, ModelSetManifest
from stream.inference.errors import InferenceError, InvalidInput, translate
from stream.inference.metrics import InferenceMetrics

SCORE_OUTPUTS = ("SCORE", "output__0")

log = logging.getLogger("signalml.inference")


@dataclass(frozen=True)
class Signature:
    """A served model version's input and output, from its metadata.
    ``dims`` excludes the batch axis; -1 = any."""

    input_name: str
    datatype: str
    dims: tuple[int, ...]
    output_name: str


class TritonEndpoint:
    """One Triton server: the requests of :class:`InferenceClient` to it.

    ``timeout_s`` bounds each request; a failure is raised at once as our
    own error (retrying, here or on another endpoint, is
    :class:`InferenceClient`'s). ``max_batch_size`` splits larger
    cross-sections into parallel requests.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 5.0,
        max_batch_size: int = 8192,
        shared_memory: bool | None = None,
        registry: Any = None,
    ):
        if timeout_s <= 0 or max_batch_size < 1:
            raise ValueError("timeout_s > 0 and max_batch_size >= 1 are required")
        self.url = url
        self.timeout_s = timeout_s
        self.max_batch_size = max_batch_size
        self.metrics = InferenceMetrics.of(registry)
        self._client = grpcaio.InferenceServerClient(url)
        self._signatures: dict[tuple[str, int], Signature] = {}
        if shared_memory is None:
            shared_memory = is_local(url)
        self._inputs = _InputRegion(self._client, self.timeout_s) if shared_memory else None

    async def close(self) -> None:
        if self._inputs is not None:
            await self._inputs.close()
        await self._client.close()

    # ------------------------------------------------------------ model sets
    async def score(
        self,
        manifest: ModelSetManifest,
        tabular: np.ndarray | None,
        sequences: np.ndarray | None = None,
    ) -> dict[str, np.ndarray]:
        """Scores of every member: ``{member name: float64 [N]}``.

        ``tabular`` is float32 ``[N, F]`` with F = ``len(manifest.feature_names)``;
        ``sequences`` float32 ``[N, T, F]``, required when a member reads
        sequences. Members run in parallel; the first failure is raised
        (after all have finished) with the other failures noted on it."""
        started = time.perf_counter()
        n_features = len(manifest.feature_names)
        needs = {m.input for m in manifest.members}
        rows = None
        if "tabular" in needs:
            tabular = _float32(tabular, 2, "tabular", n_features)
            rows = len(tabular)
        if "sequence" in needs:
            sequences = _float32(sequences, 3, "sequences", n_features)
            if rows is not None and len(sequences) != rows:
                raise InvalidInput(f"tabular has {rows} rows but sequences has {len(sequences)}")
        inputs = {"tabular": tabular, "sequence": sequences}
        results = None
        if self._inputs is not None and not self._inputs.busy:
            async with self._inputs:
                results = await self._score_staged(manifest, inputs)
            if any(isinstance(r, NoSharedMemory) for r in results):
                log.warning("triton inputs go in the request from now on: %s",
                            next(r for r in results if isinstance(r, NoSharedMemory)))
                await self._inputs.close()
                self._inputs, results = None, None
        if results is None:
            results = await asyncio.gather(
                *(self.score_member(m, inputs[m.input]) for m in manifest.members), return_exceptions=True
            )
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            first = failures[0]
            for other in failures[1:]:
                first.add_note(f"also failed: {type(other).__name__}: {other}")
            raise first
        self.metrics.fanout.observe(time.perf_counter() - started)
        return {m.name: r for m, r in zip(manifest.members, results)}

    async def score_member(self, member: ManifestMember, x: np.ndarray) -> np.ndarray:
        """One member's float64 ``[N]`` scores for ``x``, at its pinned version."""
        return await self.infer(member.name, member.version, x)

    async def infer(self, model: str, version: int, x: np.ndarray) -> np.ndarray:
        """float64 ``[N]`` scores of ``model`` at ``version`` for float32
        rows ``x`` (``[N, F]`` or ``[N, T, F]``)."""
        started = time.perf_counter()
        signature = await self._translated(model, version, lambda: self._signature(model, version))
        x = self._fit(signature, model, version, x)
        return await self._send(model, version, signature, self._chunks(x), started)

    def _chunks(self, x: np.ndarray) -> list[np.ndarray]:
        """``x`` cut into requests of at most ``max_batch_size`` rows."""
        return [x[i : i + self.max_batch_size] for i in range(0, len(x), self.max_batch_size)]

    async def _send(self, model: str, version: int, signature: Signature, parts: list, started: float) -> np.ndarray:
        """Scores of ``parts`` (row arrays, or rows already in the shared
        region), one request each in parallel, concatenated in order."""
        if not parts:
            return np.zeros(0, dtype=np.float64)
        scores = await asyncio.gather(
            *(self._translated(model, version, lambda p=p: self._infer_once(model, version, signature, p)) for p in parts)
        )
        out = np.concatenate(scores) if len(scores) > 1 else scores[0]
        self.metrics.latency.labels(model).observe(time.perf_counter() - started)
        return out

    async def _score_staged(self, manifest: ModelSetManifest, inputs: dict) -> list:
        """:meth:`score`'s members with their inputs in the shared region:
        the region is sized for all of them, then each member writes its
        chunks there and sends them."""
        region = self._inputs
        plans = []
        for member in manifest.members:
            try:
                signature = await self._translated(member.name, member.version,
                                                 lambda m=member: self._signature(m.name, m.version))
                x = self._fit(signature, member.name, member.version, inputs[member.input])
            except InferenceError as exc:
                plans.append(exc)
                continue
            plans.append((member, signature, self._chunks(x)))
        try:
            await region.reserve(sum(c.nbytes for p in plans if not isinstance(p, Exception) for c in p[2]))
        except NoSharedMemory as exc:
            return [exc] * len(plans)

        async def run(plan):
            if isinstance(plan, Exception):
                raise plan
            member, signature, chunks = plan
            placed = [region.put(c) for c in chunks]
            return await self._send(member.name, member.version, signature, placed, time.perf_counter())

        return await asyncio.gather(*(run(p) for p in plans), return_exceptions=True)

    async def ready(self, manifest: ModelSetManifest) -> dict[str, bool]:
        """Whether each member's pinned version is loaded and ready."""

        async def one(member: ManifestMember) -> bool:
            try:
                return bool(
                    await self._client.is_model_ready(
                        member.name, str(member.version), client_timeout=self.timeout_s
                    )
                )
            except InferenceServerException as exc:
                raise translate(exc, model=member.name, version=member.version) from None

        flags = await asyncio.gather(*(one(m) for m in manifest.members))
        return {m.name: f for m, f in zip(manifest.members, flags)}

    async def serves(self, pinned: set[tuple[str, int]]) -> bool:
        """Whether the server is ready and has every ``(model, version)`` of
        ``pinned`` loaded; False when it does not answer."""
        try:
            if not await self._client.is_server_ready(client_timeout=self.timeout_s):
                return False
            for model, version in sorted(pinned):
                if not await self._client.is_model_ready(model, str(version), client_timeout=self.timeout_s):
                    return False
        except (InferenceServerException, asyncio.TimeoutError):
            return False
        return True

    # ------------------------------------------------------------ internals
    async def _translated(self, model: str, version: int, attempt):
        """``attempt()``, with tritonclient's errors raised as ours and counted."""
        try:
            return await attempt()
        except InferenceServerException as exc:
            error = translate(exc, model=model, version=version)
        except asyncio.TimeoutError:
            error = translate(TimeoutError("deadline exceeded"), model=model, version=version)
        self.metrics.errors.labels(model, type(error).__name__).inc()
        raise error from None

    async def _signature(self, model: str, version: int) -> Signature:
        key = (model, version)
        if key not in self._signatures:
            meta = await self._client.get_model_metadata(model, str(version), client_timeout=self.timeout_s)
            if len(meta.inputs) != 1:
                raise InferenceError(f"model {model} version {version} has {len(meta.inputs)} inputs; expected one")
            names = [o.name for o in meta.outputs]
            output = next((n for n in SCORE_OUTPUTS if n in names), None)
            if output is None:
                raise InferenceError(f"model {model} version {version} has no SCORE output (outputs: {names})")
            spec = meta.inputs[0]
            self._signatures[key] = Signature(spec.name, spec.datatype, tuple(int(d) for d in spec.shape[1:]), output)
        return self._signatures[key]

    @staticmethod
    def _fit(signature: Signature, model: str, version: int, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        if signature.datatype == "FP32" and x.dtype != np.float32:
            if not np.issubdtype(x.dtype, np.floating):
                raise InvalidInput(f"model {model} version {version} takes float32, got {x.dtype}", model=model, version=version)
            x = x.astype(np.float32)
        dims = signature.dims
        if x.ndim != len(dims) + 1:
            raise InvalidInput(f"model {model} version {version} takes rank-{len(dims) + 1} input, got {list(x.shape)}",
                               model=model, version=version)
        if len(dims) == 2 and dims[0] > 0 and x.shape[1] > dims[0]:
            x = np.ascontiguousarray(x[:, -dims[0] :, :])  # the model looks at the last T steps
        for want, got in zip(dims, x.shape[1:]):
            if want > 0 and want != got:
                raise InvalidInput(
                    f"model {model} version {version} takes {signature.input_name} [N, {', '.join(map(str, dims))}], "
                    f"got {list(x.shape)}",
                    model=model,
                    version=version,
                )
        return np.ascontiguousarray(x)

    async def _infer_once(self, model: str, version: int, signature: Signature,
                          rows: "np.ndarray | _Placed") -> np.ndarray:
        """One request: ``rows`` in the message, or already in the shared region."""
        placed = isinstance(rows, _Placed)
        tensor = InferInput(signature.input_name, list(rows.shape), signature.datatype)
        if placed:
            await self._inputs.registered()
            tensor.set_shared_memory(self._inputs.name, rows.nbytes, offset=rows.offset)
        else:
            tensor.set_data_from_numpy(rows)
        try:
            result = await asyncio.wait_for(
                self._client.infer(
                    model,
                    [tensor],
                    model_version=str(version),
                    outputs=[InferRequestedOutput(signature.output_name)],
                    client_timeout=self.timeout_s,
                ),
                timeout=self.timeout_s + 1.0,  # a backstop if gRPC's own deadline is not honoured
            )
        except asyncio.TimeoutError:
            raise InferenceServerException("deadline exceeded", status="StatusCode.DEADLINE_EXCEEDED") from None
        except InferenceServerException as exc:
            if placed and "shared memory region" in (exc.message() or str(exc)):
                self._inputs.forget()  # Triton restarted: the next attempt registers the region again
            raise
        scores = result.as_numpy(signature.output_name)
        n = rows.shape[0]
        if scores is None or scores.size != n:
            got = None if scores is None else list(scores.shape)
            raise InferenceError(f"model {model} version {version} answered {got} for {n} rows",
                                 model=model, version=version)
        return scores.reshape(-1).astype(np.float64)


class NoSharedMemory(InferenceError):
    """Shared memory cannot carry inputs to this Triton; requests carry them."""


@dataclass(frozen=True)
class _Placed:
    offset: int
    nbytes: int
    shape: tuple[int, ...]


class _InputRegion:
    """One POSIX shared-memory region for request inputs, registered with
    Triton. Used by one :meth:`TritonEndpoint.score` at a time (``async
    with``); ``reserve`` then ``put`` lay the inputs out from offset 0."""

    _ids = itertools.count()
    ALIGN = 64

    def __init__(self, client, timeout_s: float):
        self.client = client
        self.timeout_s = timeout_s
        self.name = f"signalml-inputs-{os.getpid()}-{next(self._ids)}"
        self.key = "/" + self.name.replace("-", "_")
        self.handle = None
        self.capacity = 0
        self.is_registered = False
        self.cursor = 0
        self.lock = asyncio.Lock()
        self.register_lock = asyncio.Lock()

    @property
    def busy(self) -> bool:
        return self.lock.locked()

    async def __aenter__(self) -> "_InputRegion":
        await self.lock.acquire()
        self.cursor = 0
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.lock.release()

    async def reserve(self, nbytes: int) -> None:
        """Room for ``nbytes`` of inputs (plus alignment), growing the region if needed."""
        need = nbytes + 8 * self.ALIGN
        if need <= self.capacity:
            return
        await self._drop()
        capacity = max(need, 2 * self.capacity, 4 << 20)
        try:
            self.handle = triton_shm.create_shared_memory_region(self.name, self.key, capacity)
        except triton_shm.SharedMemoryException as exc:
            raise NoSharedMemory(f"cannot create a shared memory region: {exc}") from None
        self.capacity = capacity

    def put(self, x: np.ndarray) -> _Placed:
        x = np.ascontiguousarray(x)
        offset = -(-self.cursor // self.ALIGN) * self.ALIGN
        if offset + x.nbytes > self.capacity:
            raise InferenceError(f"shared input region of {self.capacity} bytes is full")
        triton_shm.set_shared_memory_region(self.handle, [x], offset=offset)
        self.cursor = offset + x.nbytes
        return _Placed(offset, x.nbytes, tuple(x.shape))

    async def registered(self) -> None:
        """Register the region with Triton unless it is. Raises
        :class:`NoSharedMemory` when Triton answers but cannot map it (it
        runs on another host or in another IPC namespace)."""
        async with self.register_lock:
            if self.is_registered:
                return
            try:
                await self.client.unregister_system_shared_memory(self.name, client_timeout=self.timeout_s)
                await self.client.register_system_shared_memory(self.name, self.key, self.capacity,
                                                                client_timeout=self.timeout_s)
            except InferenceServerException as exc:
                status = exc.status() or ""
                if "UNAVAILABLE" in status or "DEADLINE_EXCEEDED" in status:
                    raise  # Triton is down or slow: retried like any request
                raise NoSharedMemory(f"triton cannot map the input region: {exc.message() or exc}") from None
            self.is_registered = True

    def forget(self) -> None:
        self.is_registered = False

    async def _drop(self) -> None:
        if self.is_registered:
            await self._unregister()
            self.is_registered = False
        if self.handle is not None:
            triton_shm.destroy_shared_memory_region(self.handle)
            self.handle, self.capacity = None, 0

    async def _unregister(self, attempts: int = 3) -> None:
        """Unregister the region, trying again on a failed or slow answer:
        a region left registered stays mapped by Triton until it restarts.
        A region Triton no longer knows (it restarted) is not a failure."""
        for attempt in range(1, attempts + 1):
            try:
                await self.client.unregister_system_shared_memory(self.name, client_timeout=self.timeout_s)
                return
            except InferenceServerException as exc:
                if attempt == attempts:
                    log.warning("could not unregister shared memory region %s from Triton (%s); it stays "
                                "mapped there until Triton restarts", self.name, exc.message() or exc)
                    return
                await asyncio.sleep(0.1 * attempt)

    async def close(self) -> None:
        async with self.lock:
            await self._drop()


def is_local(url: str) -> bool:
    """Whether a ``host:port`` names this machine (shared memory reaches it)."""
    host = url.rsplit(":", 1)[0].strip("[]").lower()
    return host in ("127.0.0.1", "localhost", "::1") or host.startswith("127.")


def _float32(x: Any, ndim: int, what: str, n_features: int) -> np.ndarray:
    if x is None:
        raise InvalidInput(f"{what} is required by this model set")
    x = np.asarray(x)
    if x.dtype != np.float32:
        if not np.issubdtype(x.dtype, np.floating):
            raise InvalidInput(f"{what} must be float32, got {x.dtype}")
        x = x.astype(np.float32)
    if x.ndim != ndim or x.shape[-1] != n_features:
        shape = "[N, F]" if ndim == 2 else "[N, T, F]"
        raise InvalidInput(f"{what} must be {shape} with F = {n_features} features, got {list(x.shape)}")
    return np.ascontiguousarray(x)
