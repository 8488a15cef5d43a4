"""Publish a trained model set to Triton and the control topic; roll back.

:func:`publish` runs these steps and stops at the first failure:

1. read the artifact and score its golden rows with each member's file,
   in a child process (a native library may abort on a corrupt file):
   corrupt, mismatched or pickled files stop here;
2. write each member as a new version folder (temp then rename);
3. ``load_model`` in explicit mode (the running versions keep serving:
   every config has ``version_policy all``), then check that each new
   pinned version is ready;
4. warm each new version and check its served scores of the golden rows
   against the trainer's (:mod:`models.export.tolerance`);
5. store the manifest beside the models, send it on the control topic
   (idempotent producer, acknowledged), then move the ``current`` pointer
   (a set is current only once the control topic has acknowledged it);
6. only after that switch, keep the ``keep_versions`` newest versions of
   each member (plus those of the current and the previous set) and unload
   the rest.

Up to step 5, a failure removes the new version folders, reloads those
models so Triton drops them, and raises :class:`PublishError` saying what
failed: the running set is untouched. (Triton's repository index keeps
listing a version whose load failed as UNAVAILABLE, and with
``--strict-readiness`` the server reports not-ready until that version
number loads; per-model readiness is unaffected.)
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import msgspec
import numpy as np

from models.export.artifact import ArtifactError, ModelSetArtifact, read_artifact
from models.export.check import MemberCheck, check_artifact_isolated
from models.export.tolerance import compare
from models.export.writer import ExportedMember, check_compatible, export_member, render_member_config
from models.publish.control import send_manifest
from models.publish.manifest import build_manifest
from models.publish.store import ModelSetStore
from models.triton_backend import ServingOptions, model_dir, remove_version, versions
from signalml.contracts import ModelSetManifest
from signalml.errors import ServiceError, SignalMLError
from stream.inference.errors import InferenceError, PublishError
from stream.inference.sync import SyncInferenceClient
from stream.roles import Role, control_key

POINTER_OF = {"champion": "current", "challenger": "challenger"}

log = logging.getLogger(__name__)

KEEP_VERSIONS = 3
WARM_ROWS = 512


@dataclass(frozen=True)
class PublishContext:
    """What publish talks to; :meth:`from_settings` is the normal source."""

    settings: object
    repository: Path
    target: str
    options: ServingOptions
    bootstrap: str
    control_topic: str

    @classmethod
    def from_settings(cls, settings, *, target: str | None = None, control_topic: str | None = None) -> "PublishContext":
        return cls(
            settings=settings,
            repository=settings.triton_repository,
            target=target or settings.serving.target,
            options=ServingOptions.from_settings(settings),
            bootstrap=settings.kafka.bootstrap_servers,
            control_topic=control_topic or settings.kafka.topics.control.name,
        )

    def server(self):
        from signalml.services.triton import TritonServer

        return TritonServer(self.settings)

    def client(self) -> SyncInferenceClient:
        # The first requests after a load import libraries and size arenas:
        # give them longer than the engine's per-request timeout.
        timeout_s = max(30.0, self.settings.serving.request_timeout_s)
        return SyncInferenceClient.from_settings(self.settings, timeout_s=timeout_s, retries=2)


def publish(
    settings,
    artifact_dir,
    *,
    keep_versions: int = KEEP_VERSIONS,
    target: str | None = None,
    control_topic: str | None = None,
    control_timeout_s: float = 30.0,
    role: Role = "champion",
) -> ModelSetManifest:
    """Publish the model set in ``artifact_dir`` (the training output folder
    or its ``model_set/``); returns the manifest now current. Raises
    :class:`PublishError`; the running set is then untouched.

    ``role="challenger"`` publishes a shadow set: the same checks, its
    manifest under the challenger's control key (:mod:`stream.roles`) and
    the store's ``challenger`` pointer; the champion keeps serving."""
    if keep_versions < 2:
        raise ValueError("keep_versions must be >= 2 (the running set and the new one)")
    pointer = POINTER_OF[role]
    ctx = PublishContext.from_settings(settings, target=target, control_topic=control_topic)
    store = ModelSetStore(ctx.repository)
    with store.lock():
        artifact, checks = _checked_artifact(artifact_dir, ctx)
        previous = store.current(pointer)
        exported: list[ExportedMember] = []
        manifest = None
        try:
            for member in artifact.members:
                torch_runtime = checks[member.name].torch_runtime
                exported.append(
                    export_member(member, ctx.repository, ctx.target, ctx.options, torch_runtime=torch_runtime)
                )
            _load(ctx, [e.name for e in exported])
            manifest = build_manifest(
                artifact, {e.name: e.version for e in exported}, previous=previous.model_set if previous else None
            )
            with ctx.client() as client:
                _require_ready(client, manifest)
                _verify_served(client, manifest, artifact, ctx.target)
            store.write(manifest, artifact.golden_path)
            send_manifest(ctx.bootstrap, ctx.control_topic, manifest, timeout_s=control_timeout_s, key=control_key(role))
        except BaseException as exc:
            _withdraw(ctx, exported)
            if manifest is not None:
                store.discard(manifest.model_set)
            if isinstance(exc, PublishError):
                raise
            if isinstance(exc, (SignalMLError, OSError)):
                raise PublishError(f"publish of {artifact.directory} failed: {exc}") from exc
            raise
        # Engines may already be switching: from here on nothing is withdrawn.
        store.set_current(manifest.model_set, "publish", pointer)
        log.info("published %s (%s): %s", manifest.model_set, role, {m.name: m.version for m in manifest.members})
        _prune(ctx, store, keep_versions)
        return manifest


def rollback(settings, *, control_topic: str | None = None, control_timeout_s: float = 30.0) -> ModelSetManifest:
    """Make the set that was current before the current one current again:
    its versions are loaded if they are not (they must still be in the
    repository), re-checked against its golden rows, and its manifest is
    sent on the control topic again. Returns that manifest."""
    ctx = PublishContext.from_settings(settings, control_topic=control_topic)
    store = ModelSetStore(ctx.repository)
    with store.lock():
        current = store.current()
        if current is None:
            raise PublishError(f"rollback: no model set was published to {ctx.repository}")
        if not current.previous:
            raise PublishError(f"rollback: model set {current.model_set} has no previous set to roll back to")
        try:
            target = store.read(current.previous)
        except (FileNotFoundError, ValueError) as exc:
            raise PublishError(f"rollback: {exc}") from None
        gone = [
            f"{m.name} version {m.version}"
            for m in target.members
            if not (model_dir(ctx.repository, m.name) / str(m.version)).is_dir()
        ]
        if gone:
            raise PublishError(f"rollback to {target.model_set}: no longer in the repository: {', '.join(gone)}")
        try:
            _load(ctx, [m.name for m in target.members])
            with ctx.client() as client:
                _require_ready(client, target)
                golden = store.golden(target.model_set)
                if golden is not None:
                    _verify_stored_golden(client, target, golden, ctx.target)
            send_manifest(ctx.bootstrap, ctx.control_topic, target, timeout_s=control_timeout_s)
        except PublishError:
            raise
        except SignalMLError as exc:
            raise PublishError(f"rollback to {target.model_set} failed: {exc}") from exc
        store.set_current(target.model_set, "rollback")
        log.info("rolled back from %s to %s", current.model_set, target.model_set)
        return target


def promote(settings, *, control_topic: str | None = None, control_timeout_s: float = 30.0) -> ModelSetManifest:
    """Make the challenger (shadow) set the champion: its manifest, with
    ``previous`` set to the champion it replaces (so rollback returns to
    it), is sent under the champion's key and becomes ``current``; the
    challenger pointer is cleared. Its versions are already loaded and
    were checked when it was published as the challenger."""
    ctx = PublishContext.from_settings(settings, control_topic=control_topic)
    store = ModelSetStore(ctx.repository)
    with store.lock():
        challenger = store.current("challenger")
        if challenger is None:
            raise PublishError(f"promote: no challenger model set was published to {ctx.repository}")
        champion = store.current_id()
        promoted = msgspec.structs.replace(challenger, previous=champion)
        with ctx.client() as client:
            _require_ready(client, promoted)
        store.write(promoted, store.golden(promoted.model_set))
        send_manifest(ctx.bootstrap, ctx.control_topic, promoted, timeout_s=control_timeout_s)
        store.set_current(promoted.model_set, "promote")
        store.set_current(None, "promote", "challenger")
        log.info("promoted %s to champion (previous %s)", promoted.model_set, champion)
        return promoted


def current_manifest(settings) -> ModelSetManifest | None:
    """The manifest engines should run (None before the first publish)."""
    return ModelSetStore(settings.triton_repository).current()


def load_current(settings) -> ModelSetManifest | None:
    """Load the current, previous and challenger sets' models (after a
    server restart: explicit mode starts with nothing loaded); returns the
    current manifest."""
    ctx = PublishContext.from_settings(settings)
    store = ModelSetStore(ctx.repository)
    current = store.current()
    if current is None:
        return None
    names = {m.name for m in current.members}
    if current.previous:
        try:
            names |= {m.name for m in store.read(current.previous).members}
        except (FileNotFoundError, ValueError):
            pass
    try:
        challenger = store.current("challenger")
    except (FileNotFoundError, ValueError):
        challenger = None  # a pointer to a manifest that is gone: nothing shadows
    if challenger is not None:
        names |= {m.name for m in challenger.members}
    _load(ctx, sorted(names))
    return current


# ---------------------------------------------------------------- steps


def _checked_artifact(artifact_dir, ctx: PublishContext) -> tuple[ModelSetArtifact, dict[str, MemberCheck]]:
    try:
        artifact = read_artifact(artifact_dir)
        for member in artifact.members:
            check_compatible(
                model_dir(ctx.repository, member.name), render_member_config(member, ctx.target, ctx.options)
            )
        checks = check_artifact_isolated(artifact.directory)
    except ArtifactError as exc:
        raise PublishError(f"publish refused {artifact_dir}: {exc}") from None
    return artifact, checks


def _load(ctx: PublishContext, names: list[str]) -> None:
    """``load_model`` every model, in parallel; raise naming each failure."""
    server = ctx.server()

    def load(name: str) -> str | None:
        try:
            server.load_model(name)
            return None
        except ServiceError as exc:
            return str(exc)

    with ThreadPoolExecutor(max_workers=max(1, len(names))) as pool:
        failures = [f for f in pool.map(load, names) if f]
    if failures:
        raise PublishError("loading into Triton failed: " + "; ".join(failures))


def _require_ready(client: SyncInferenceClient, manifest: ModelSetManifest) -> None:
    flags = client.ready(manifest)
    missing = [f"{m.name} version {m.version}" for m in manifest.members if not flags[m.name]]
    if missing:
        raise PublishError(f"model set {manifest.model_set}: not ready after loading: {', '.join(missing)}")


def _warm_rows(x: np.ndarray, rows: int) -> np.ndarray:
    reps = -(-rows // len(x))
    return np.ascontiguousarray(np.concatenate([x] * reps)[:rows])


def _verify_served(client, manifest: ModelSetManifest, artifact: ModelSetArtifact, target: str) -> None:
    """Warm every new version, then compare its served golden scores."""
    by_name = {m.name: m for m in artifact.members}
    problems = []
    for member in manifest.members:
        x = artifact.golden_input(by_name[member.name])
        started = time.perf_counter()
        try:
            for _ in range(2):
                client.infer(member.name, member.version, _warm_rows(x, WARM_ROWS))
            served = client.infer(member.name, member.version, x)
        except InferenceError as exc:
            raise PublishError(f"warming {member.name} version {member.version} through Triton failed: {exc}") from exc
        problem, worst = compare(member.kind, target, served, artifact.golden_scores(by_name[member.name]))
        log.info(
            "%s version %d: warmed in %.2f s; golden max |served - native| = %.3g",
            member.name, member.version, time.perf_counter() - started, worst,
        )
        if problem:
            problems.append(f"{member.name} version {member.version} ({member.kind} on {target}): {problem}")
    if problems:
        raise PublishError("served scores differ from the trainer's golden scores: " + "; ".join(problems))


def _verify_stored_golden(client, manifest: ModelSetManifest, golden: Path, target: str) -> None:
    from safetensors.numpy import load_file

    arrays = load_file(str(golden))
    problems = []
    for member in manifest.members:
        key = f"score.{member.name}"
        source = arrays["tabular"] if member.input == "tabular" else arrays.get("sequence")
        if key not in arrays or source is None:
            continue
        served = client.infer(member.name, member.version, source)
        problem, _ = compare(member.kind, target, served, arrays[key])
        if problem:
            problems.append(f"{member.name} version {member.version}: {problem}")
    if problems:
        raise PublishError(f"rollback to {manifest.model_set}: served scores differ from its golden scores: " + "; ".join(problems))


def _withdraw(ctx: PublishContext, exported: list[ExportedMember]) -> None:
    """Remove the versions a failed publish wrote and make Triton drop
    them; the versions that were serving stay loaded."""
    if not exported:
        return
    server = ctx.server()
    for member in exported:
        folder = model_dir(ctx.repository, member.name)
        try:
            remove_version(folder, member.version)
            if versions(folder):
                server.load_model(member.name)
            else:
                server.unload_model(member.name, timeout_s=60)
        except (SignalMLError, OSError) as exc:
            log.warning("cleaning up %s version %d after a failed publish: %s", member.name, member.version, exc)


def _prune(ctx: PublishContext, store: ModelSetStore, keep_versions: int) -> None:
    """Keep the newest ``keep_versions`` versions of each current member and
    every version the current or previous set pins; unload the others."""
    current = store.current()
    if current is None:
        return
    pinned: dict[str, set[int]] = {}
    sets = [current]
    challenger = store.current("challenger")
    if challenger is not None:
        sets.append(challenger)
    if current.previous:
        try:
            sets.append(store.read(current.previous))
        except (FileNotFoundError, ValueError):
            pass
    for manifest in sets:
        for m in manifest.members:
            pinned.setdefault(m.name, set()).add(m.version)
    server = ctx.server()
    for member in current.members:
        folder = model_dir(ctx.repository, member.name)
        present = versions(folder)
        keep = set(present[-keep_versions:]) | pinned.get(member.name, set())
        doomed = [v for v in present if v not in keep]
        if not doomed:
            continue
        try:
            for version in doomed:
                remove_version(folder, version)
            server.load_model(member.name)
            log.info("%s: unloaded versions %s, serving %s", member.name, doomed, sorted(keep))
        except (SignalMLError, OSError) as exc:
            log.warning("%s: could not retire versions %s: %s", member.name, doomed, exc)
