"""Write the members of a model-set artifact into a Triton repository as
new versions, for the ``cpu`` or the ``gpu`` target (see
:mod:`models.triton_backend.configs`).

Writing never disturbs what is served: each version folder appears by one
rename, an unchanged config is not rewritten, and a config change that
would alter the signature of versions already there (another backend,
tensor names or fixed dims; on the gpu target a new feature count or
sequence length) is refused, because Triton applies a model's one config
to all its versions.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from models.export.artifact import ArtifactError, MemberArtifact, ModelSetArtifact
from models.export.torch_source import torch_files
from models.triton_backend import (
    BACKEND_FILES,
    FEATURES,
    HORIZONS,
    SCORE,
    SEQUENCES,
    ServingOptions,
    Tensor,
    model_dir,
    next_version,
    parse_config,
    render_cpu_config,
    render_fil_config,
    render_onnx_config,
    versions,
    write_config,
    write_version,
)
from models.triton_backend.configs import FIL_FILE_NAMES

TARGETS = ("cpu", "gpu")
TUNABLE_PARAMETERS = ("num_threads",)


@dataclass(frozen=True)
class ExportedMember:
    """Where one member went: model ``name`` version ``version`` in ``folder``."""

    name: str
    kind: str
    input: str
    version: int
    folder: Path
    config_changed: bool


def version_files(member: MemberArtifact, target: str, *, torch_runtime: bool = False) -> dict[str, object]:
    """File name in the version folder -> source file (or bytes), per target.
    On the cpu target a deep member also gets the torch runtime's files
    when ``torch_runtime`` (the check found that they reproduce its golden
    scores: :mod:`models.export.torch_source`)."""
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}; known: {list(TARGETS)}")
    source = member.model_file
    if member.kind == "lightgbm":
        return {"model.txt": source}
    if member.kind == "xgboost":
        if target == "gpu":
            return {FIL_FILE_NAMES["xgboost"]: source}
        return {"model.ubj" if source.suffix == ".ubj" else "model.json": source}
    files: dict[str, object] = {"model.onnx": source}
    if member.input == "tabular":  # ridge: the ONNX graph is all it needs
        return files
    if target == "cpu" and torch_runtime:
        files.update(torch_files(member))
    return files


def render_member_config(member: MemberArtifact, target: str, options: ServingOptions) -> str:
    if target == "cpu":
        return render_cpu_config(member.name, member.kind, options)
    if member.kind == "ridge":  # a linear ONNX graph: ONNX Runtime (TensorRT), not FIL
        return render_onnx_config(member.name, [Tensor(FEATURES, (member.n_features,))], [Tensor(SCORE, (1,))], options)
    if member.input == "tabular":
        return render_fil_config(member.name, member.n_features, member.kind, options)
    outputs = [Tensor(SCORE, (1,))]
    horizons = _onnx_horizons(member.model_file)
    if horizons:
        outputs.append(Tensor(HORIZONS, (horizons,)))
    inputs = [Tensor(SEQUENCES, (member.sequence_length, member.n_features))]
    return render_onnx_config(member.name, inputs, outputs, options)


def _onnx_horizons(path: Path) -> int | None:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    for output in session.get_outputs():
        if output.name == HORIZONS and len(output.shape) == 2 and isinstance(output.shape[1], int):
            return output.shape[1]
    return None


def _signature(text: str):
    """A config with the settings that may change between versions
    (batching, instances, thread counts) cleared."""
    config = parse_config(text)
    config.ClearField("max_batch_size")
    config.ClearField("dynamic_batching")
    config.ClearField("instance_group")
    config.ClearField("optimization")
    for key in TUNABLE_PARAMETERS:
        if key in config.parameters:
            del config.parameters[key]
    return config


def check_compatible(folder: Path, new_text: str) -> None:
    """Refuse a config whose signature differs from the one the model's
    existing versions are served with."""
    path = folder / "config.pbtxt"
    if not versions(folder) or not path.is_file():
        return
    old, new = _signature(path.read_text()), _signature(new_text)
    if old != new:
        raise ArtifactError(
            f"model {folder.name}: its versions {versions(folder)} are served with another signature "
            f"(backend, tensors or dims) than this artifact needs; Triton applies one config to every version, "
            f"so publishing would break them. Publish under another member name, or retire the model first.\n"
            f"served: {' '.join(str(old).split())}\nneeded: {' '.join(str(new).split())}"
        )


def export_member(
    member: MemberArtifact,
    repository: str | os.PathLike[str],
    target: str,
    options: ServingOptions,
    *,
    version: int | None = None,
    torch_runtime: bool = False,
) -> ExportedMember:
    """Write ``member`` as a new version (default: the next number) and the
    model's config."""
    folder = model_dir(repository, member.name)
    text = render_member_config(member, target, options)
    check_compatible(folder, text)
    files = version_files(member, target, torch_runtime=torch_runtime)
    if target == "cpu":
        files = {**BACKEND_FILES, **files}
    version = next_version(folder) if version is None else int(version)
    target_folder = write_version(folder, version, files)
    changed = write_config(folder, text)
    return ExportedMember(member.name, member.kind, member.input, version, target_folder, changed)


def export_model_set(
    artifact: ModelSetArtifact,
    repository: str | os.PathLike[str],
    target: str,
    options: ServingOptions,
    *,
    torch_runtime: dict[str, bool] | None = None,
) -> list[ExportedMember]:
    """Every member as a new version. Signatures are checked for all
    members before the first file is written. ``torch_runtime`` says which
    deep members ship the torch runtime's files (see :mod:`models.export.check`)."""
    texts = {}
    for member in artifact.members:
        texts[member.name] = render_member_config(member, target, options)
        check_compatible(model_dir(repository, member.name), texts[member.name])
    torch_runtime = torch_runtime or {}
    return [
        export_member(m, repository, target, options, torch_runtime=torch_runtime.get(m.name, False))
        for m in artifact.members
    ]
