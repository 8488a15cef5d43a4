"""Export: a trained model-set artifact, read and checked in-process
(:func:`read_artifact`, :func:`check_member`), written into a Triton
repository as new model versions for the ``cpu`` or ``gpu`` target
(:func:`export_model_set`). Publishing (load, verify, announce) is
:mod:`models.publish`.

``export(settings, artifact_dir)`` is the one-call form: it checks the
artifact and writes every member for ``settings.serving.target`` into
``settings.triton_repository`` without loading anything (for the gpu
target, whose server runs elsewhere).
"""

from __future__ import annotations

import os

from models.export.artifact import ArtifactError, MemberArtifact, ModelSetArtifact, read_artifact
from models.export.check import MemberCheck, check_artifact, check_artifact_isolated
from models.export.native import check_member, load_native
from models.export.tolerance import TOLERANCES, compare, tolerance
from models.export.writer import ExportedMember, export_member, export_model_set
from models.triton_backend import ServingOptions

__all__ = [
    "ArtifactError",
    "ExportedMember",
    "MemberArtifact",
    "ModelSetArtifact",
    "TOLERANCES",
    "MemberCheck",
    "check_artifact",
    "check_artifact_isolated",
    "check_member",
    "compare",
    "export",
    "export_member",
    "export_model_set",
    "load_native",
    "read_artifact",
    "tolerance",
]


def export(settings, artifact_dir: str | os.PathLike[str], *, target: str | None = None) -> list[ExportedMember]:
    """Check the artifact, then write its members for ``target`` (default
    ``settings.serving.target``) into the configured repository."""
    artifact = read_artifact(artifact_dir)
    checks = check_artifact_isolated(artifact.directory)
    target = target or settings.serving.target
    torch_runtime = {name: c.torch_runtime for name, c in checks.items()}
    options = ServingOptions.from_settings(settings)
    return export_model_set(artifact, settings.triton_repository, target, options, torch_runtime=torch_runtime)
