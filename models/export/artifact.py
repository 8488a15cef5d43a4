"""A trained model set on disk, read and checked before anything is served.

Layout (written by ``training/export.py``), paths relative to the
``model_set/`` folder::

    model_set.json        format_version 1: feature_names, feature_schema_hash,
                          sequence_length, horizon_bars, horizons, ensemble,
                          members [{name, kind, input, n_features,
                          [sequence_length], files {role: path}}],
                          drift_reference, training_metrics, golden
    <member>/...          native files: LightGBM text, XGBoost JSON, ONNX
                          (ridge: + config.json; deep models: + safetensors
                          weights, config.json)
    golden.safetensors    tabular f32 [G, F], sequence f32 [G, T, F],
                          score.<member> f32 [G] (native predictions)

:func:`read_artifact` refuses, with a message naming the member and the
file, anything publish could not serve correctly: unknown format version,
bad or duplicate names, paths leaving the folder, missing or pickled files,
a feature count other than the feature list's, golden arrays of the wrong
dtype or shape.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from models.triton_backend.names import contained_path, validate_model_name
from signalml.contracts import schema_hash
from signalml.errors import SignalMLError
from signalml.jsonio import read_json

FORMAT_VERSION = 1
MANIFEST = "model_set.json"
KINDS = {"lightgbm": "tabular", "xgboost": "tabular", "ridge": "tabular", "lstm": "sequence", "tft": "sequence"}
MODEL_ROLE = {"lightgbm": "model", "xgboost": "model", "ridge": "onnx", "lstm": "onnx", "tft": "onnx"}
ENSEMBLE_METHODS = ("average", "ic_weighted", "stacking", "rank_vote", "rank_average")
PICKLE_SUFFIXES = (".pkl", ".pickle", ".pt", ".pth", ".joblib", ".npy", ".npz")


class ArtifactError(SignalMLError):
    """A model-set artifact cannot be served; the message says which file
    or field and why."""


@dataclass(frozen=True)
class MemberArtifact:
    """One member of a model set: ``files`` maps each role to its resolved
    path inside the artifact; ``model_file`` is the file Triton serves."""

    name: str
    kind: str
    input: str
    n_features: int
    sequence_length: int
    files: dict[str, Path]

    @property
    def model_file(self) -> Path:
        return self.files[MODEL_ROLE[self.kind]]


@dataclass(frozen=True)
class ModelSetArtifact:
    directory: Path
    spec: dict[str, Any]
    members: tuple[MemberArtifact, ...]
    golden: dict[str, np.ndarray] = field(repr=False)

    @property
    def feature_names(self) -> list[str]:
        return list(self.spec["feature_names"])

    @property
    def sequence_length(self) -> int:
        return int(self.spec.get("sequence_length") or 0)

    @property
    def golden_path(self) -> Path:
        return contained_path(self.directory, self.spec["golden"])

    def golden_input(self, member: MemberArtifact) -> np.ndarray:
        """The golden rows ``member`` reads: tabular [G, F] or its last
        ``sequence_length`` steps of the sequences [G, T, F]."""
        if member.input == "tabular":
            return self.golden["tabular"]
        return np.ascontiguousarray(self.golden["sequence"][:, -member.sequence_length :, :])

    def golden_scores(self, member: MemberArtifact) -> np.ndarray:
        return self.golden[f"score.{member.name}"]

    def content_hash(self) -> str:
        """sha256 of ``model_set.json`` and every member file (hex)."""
        digest = hashlib.sha256((self.directory / MANIFEST).read_bytes())
        for member in self.members:
            for role in sorted(member.files):
                digest.update(f"{member.name}/{role}".encode())
                digest.update(_file_digest(member.files[role]))
        return digest.hexdigest()


def find_manifest(path: str | os.PathLike[str]) -> Path:
    """The ``model_set/`` folder of an artifact: ``path`` itself when it
    holds ``model_set.json``, else ``path/model_set``."""
    path = Path(path)
    for candidate in (path, path / "model_set"):
        if (candidate / MANIFEST).is_file():
            return candidate
    raise ArtifactError(f"{path}: no {MANIFEST} here or in {path / 'model_set'}")


def read_artifact(path: str | os.PathLike[str]) -> ModelSetArtifact:
    """Read and check a model-set artifact (see the module docstring)."""
    directory = find_manifest(path).resolve()
    try:
        spec = read_json(directory / MANIFEST)
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{directory / MANIFEST}: not readable JSON ({exc})") from None
    if not isinstance(spec, dict):
        raise ArtifactError(f"{directory / MANIFEST}: the top level must be an object")
    _check_header(spec, directory)
    members = tuple(_member(entry, spec, directory) for entry in _list(spec, "members"))
    names = [m.name for m in members]
    if not members:
        raise ArtifactError("model_set.json: members is empty")
    if len(set(names)) != len(names):
        raise ArtifactError(f"model_set.json: duplicate member names {names}")
    _check_ensemble(spec.get("ensemble"), names)
    golden = _golden(spec, directory, members)
    return ModelSetArtifact(directory, spec, members, golden)


# ---------------------------------------------------------------- checks


def _list(spec: dict, key: str) -> list:
    value = spec.get(key)
    if not isinstance(value, list):
        raise ArtifactError(f"model_set.json: {key} must be a list, got {type(value).__name__}")
    return value


def _check_header(spec: dict, directory: Path) -> None:
    if spec.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(
            f"model_set.json: format_version {spec.get('format_version')!r} is not supported (expected {FORMAT_VERSION})"
        )
    names = _list(spec, "feature_names")
    if not names or not all(isinstance(n, str) and n for n in names) or len(set(names)) != len(names):
        raise ArtifactError("model_set.json: feature_names must be distinct non-empty strings")
    if spec.get("feature_schema_hash") != schema_hash(names):
        raise ArtifactError(
            f"model_set.json: feature_schema_hash {spec.get('feature_schema_hash')!r} does not match its "
            f"feature_names (expected {schema_hash(names)})"
        )
    for key in ("horizon_bars", "sequence_length"):
        if not isinstance(spec.get(key, 0), int) or spec.get(key, 0) < 0:
            raise ArtifactError(f"model_set.json: {key} must be a non-negative integer")
    if not isinstance(spec.get("golden"), str):
        raise ArtifactError("model_set.json: golden (the golden-set file) is missing")


def _member(entry: Any, spec: dict, directory: Path) -> MemberArtifact:
    if not isinstance(entry, dict):
        raise ArtifactError("model_set.json: every member must be an object")
    try:
        name = validate_model_name(entry.get("name"))
    except ValueError as exc:
        raise ArtifactError(f"model_set.json: member {exc}") from None
    kind = entry.get("kind")
    if kind not in KINDS:
        raise ArtifactError(f"member {name}: unknown kind {kind!r}; known: {sorted(KINDS)}")
    if entry.get("input", KINDS[kind]) != KINDS[kind]:
        raise ArtifactError(f"member {name}: a {kind} model reads {KINDS[kind]} input, not {entry.get('input')!r}")
    n_features = entry.get("n_features")
    if n_features != len(spec["feature_names"]):
        raise ArtifactError(
            f"member {name}: n_features is {n_features} but the model set has {len(spec['feature_names'])} features"
        )
    length = 0
    if KINDS[kind] == "sequence":
        length = entry.get("sequence_length", spec.get("sequence_length"))
        if not isinstance(length, int) or length < 1 or length > int(spec.get("sequence_length") or 0):
            raise ArtifactError(
                f"member {name}: sequence_length {length!r} must be in [1, the set's sequence_length "
                f"{spec.get('sequence_length')}]"
            )
    raw_files = entry.get("files")
    if not isinstance(raw_files, dict) or MODEL_ROLE[kind] not in raw_files:
        raise ArtifactError(f"member {name}: files must name its {MODEL_ROLE[kind]!r} file")
    files: dict[str, Path] = {}
    for role, relative in raw_files.items():
        try:
            path = contained_path(directory, relative)
        except ValueError as exc:
            raise ArtifactError(f"member {name}: files.{role}: {exc}") from None
        if not path.is_file():
            raise ArtifactError(f"member {name}: files.{role}: {relative} does not exist")
        _refuse_pickle(name, role, path)
        files[str(role)] = path
    return MemberArtifact(name, kind, KINDS[kind], int(n_features), int(length), files)


def _refuse_pickle(name: str, role: str, path: Path) -> None:
    """Model files are native formats and only native loaders read them; a
    pickle (by suffix, or by the protocol 2+ opening ``\\x80 <protocol>``;
    safetensors files begin with a length, so they are not sniffed) is
    refused outright."""
    with open(path, "rb") as f:
        head = f.read(2)
    sniffed = path.suffix != ".safetensors" and len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5
    if path.suffix.lower() in PICKLE_SUFFIXES or sniffed:
        raise ArtifactError(f"member {name}: files.{role}: {path.name} looks like a pickle; only native formats are served")


def _check_ensemble(ensemble: Any, names: list[str]) -> None:
    if not isinstance(ensemble, dict) or ensemble.get("method") not in ENSEMBLE_METHODS:
        method = ensemble.get("method") if isinstance(ensemble, dict) else None
        raise ArtifactError(f"model_set.json: ensemble.method {method!r} is not one of {list(ENSEMBLE_METHODS)}")
    weights = ensemble.get("weights") or {}
    stacking = ensemble.get("stacking") or {}
    for what, mapping in (("weights", weights), ("stacking.coefficients", stacking.get("coefficients") or {})):
        unknown = sorted(set(mapping) - set(names))
        if unknown:
            raise ArtifactError(f"model_set.json: ensemble.{what} names unknown members {unknown}")
        if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in mapping.values()):
            raise ArtifactError(f"model_set.json: ensemble.{what} must be finite numbers")


def _golden(spec: dict, directory: Path, members: tuple[MemberArtifact, ...]) -> dict[str, np.ndarray]:
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    try:
        path = contained_path(directory, spec["golden"])
    except ValueError as exc:
        raise ArtifactError(f"model_set.json: golden: {exc}") from None
    try:
        golden = load_file(str(path))
    except (OSError, SafetensorError, ValueError) as exc:
        raise ArtifactError(f"{spec['golden']}: not a readable safetensors file ({exc})") from None
    n_features = len(spec["feature_names"])
    expected = {"tabular": 2}
    if any(m.input == "sequence" for m in members):
        expected["sequence"] = 3
    for member in members:
        expected[f"score.{member.name}"] = 1
    rows = None
    for key, ndim in expected.items():
        if key not in golden:
            raise ArtifactError(f"{spec['golden']}: no {key!r} array")
        array = golden[key]
        if array.dtype != np.float32:
            raise ArtifactError(f"{spec['golden']}: {key} is {array.dtype}, expected float32")
        if array.ndim != ndim or (ndim > 1 and array.shape[-1] != n_features):
            raise ArtifactError(f"{spec['golden']}: {key} has shape {list(array.shape)}, expected rank {ndim}"
                                + (f" with {n_features} features" if ndim > 1 else ""))
        if rows is not None and len(array) != rows:
            raise ArtifactError(f"{spec['golden']}: {key} has {len(array)} rows, the others {rows}")
        rows = len(array)
    if rows == 0:
        raise ArtifactError(f"{spec['golden']}: the golden set is empty")
    if "sequence" in expected and golden["sequence"].shape[1] < max(m.sequence_length for m in members):
        raise ArtifactError(f"{spec['golden']}: sequence has {golden['sequence'].shape[1]} steps, fewer than a member needs")
    return golden


def _file_digest(path: Path) -> bytes:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.digest()
