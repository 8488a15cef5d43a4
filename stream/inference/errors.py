"""Errors of the Triton client and of publishing, one class per kind of
failure, all under :class:`signalml.errors.SignalMLError`.

tritonclient raises one ``InferenceServerException`` for everything; the
client translates it to the most specific class here (:func:`translate`),
so a caller can tell a timeout from a server that is not there, and both
from a model that is not loaded.
"""

from __future__ import annotations

from signalml.errors import SignalMLError


class InferenceError(SignalMLError):
    """A request to Triton failed. ``model`` and ``version`` name the
    target when there was one; ``status`` is the gRPC status text."""

    retryable = False

    def __init__(self, message: str, *, model: str | None = None, version: int | None = None, status: str = ""):
        self.model, self.version, self.status = model, version, status
        super().__init__(message)


class InferenceTimeout(InferenceError):
    """No answer within the request timeout (gRPC DEADLINE_EXCEEDED)."""

    retryable = True


class ServerUnavailable(InferenceError):
    """Triton cannot be reached: connection refused, not listening, or
    going away (gRPC UNAVAILABLE)."""

    retryable = True


class ModelNotReady(InferenceError):
    """Triton answers, but the model or the pinned version is not loaded."""

    retryable = True


class InvalidInput(InferenceError):
    """The request itself is wrong (shape, dtype, missing input); retrying
    cannot help."""


class PublishError(SignalMLError):
    """Publishing (or rolling back) a model set failed; the message says
    what failed, and the running model set was left untouched."""


def translate(exc: Exception, *, model: str | None = None, version: int | None = None) -> InferenceError:
    """The most specific :class:`InferenceError` for a tritonclient error."""
    status = ""
    message = str(exc)
    if hasattr(exc, "status") and callable(exc.status):
        status = exc.status() or ""
        message = exc.message() or message
    where = f"model {model}" + (f" version {version}" if version is not None else "") if model else "triton"
    text = f"{where}: {message}"
    lowered = message.lower()
    kwargs = {"model": model, "version": version, "status": status}
    if "DEADLINE_EXCEEDED" in status or "deadline exceeded" in lowered:
        return InferenceTimeout(f"{where}: no answer within the timeout ({message})", **kwargs)
    if (
        "unknown model" in lowered
        or "no available versions" in lowered
        or "is not ready" in lowered
        or "is not found" in lowered
        or "NOT_FOUND" in status
    ):
        return ModelNotReady(text, **kwargs)
    if "UNAVAILABLE" in status or "failed to connect" in lowered or "connection refused" in lowered:
        return ServerUnavailable(f"{where}: triton is unreachable ({message})", **kwargs)
    if "INVALID_ARGUMENT" in status or "must have shape" in lowered or "unexpected shape" in lowered:
        return InvalidInput(text, **kwargs)
    return InferenceError(text, **kwargs)
