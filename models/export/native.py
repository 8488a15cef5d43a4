"""In-process checks of a member's model file before it is served.

Each file is opened by its native library (LightGBM text, XGBoost JSON,
ONNX Runtime; never pickle), its input signature is compared with the
model set's (feature count, float32, sequence length), and it scores the
golden rows: the result must match the trainer's ``score.<member>`` within
:func:`models.export.tolerance.tolerance`. A corrupted, truncated or
mismatched file fails here, before Triton or the running set is touched.
"""

from __future__ import annotations

import numpy as np

from models.export.artifact import ArtifactError, MemberArtifact, ModelSetArtifact
from models.export.tolerance import compare


def load_native(member: MemberArtifact):
    """A callable ``float32 rows -> float64 [N]`` for the member's served
    file, after checking its signature; ArtifactError when it cannot."""
    path = member.model_file
    try:
        if member.kind == "lightgbm":
            import lightgbm

            booster = lightgbm.Booster(model_file=str(path))
            _check_features(member, booster.num_feature())
            return lambda x: np.asarray(booster.predict(x), dtype=np.float64)
        if member.kind == "xgboost":
            import xgboost

            booster = xgboost.Booster(model_file=str(path))
            _check_features(member, booster.num_features())
            return lambda x: np.asarray(booster.inplace_predict(x), dtype=np.float64).reshape(-1)
        return _onnx(member)
    except ArtifactError:
        raise
    except Exception as exc:  # noqa: BLE001 - every library has its own error types
        raise ArtifactError(f"member {member.name}: {path.name} cannot be loaded: {type(exc).__name__}: {exc}") from None


def _check_features(member: MemberArtifact, n_features: int) -> None:
    if n_features != member.n_features:
        raise ArtifactError(
            f"member {member.name}: {member.model_file.name} expects {n_features} features, "
            f"the model set has {member.n_features}"
        )


def _onnx(member: MemberArtifact):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    session = onnxruntime.InferenceSession(str(member.model_file), options, providers=["CPUExecutionProvider"])
    inputs, outputs = session.get_inputs(), session.get_outputs()
    name = member.model_file.name
    tabular = member.input == "tabular"
    if len(inputs) != 1:
        expected = "FEATURES" if tabular else "SEQUENCES"
        raise ArtifactError(f"member {member.name}: {name} has {len(inputs)} inputs, expected one ({expected})")
    spec = inputs[0]
    if spec.type != "tensor(float)":
        raise ArtifactError(f"member {member.name}: {name} input {spec.name} is {spec.type}, expected tensor(float) (float32)")
    shape = list(spec.shape)
    if len(shape) != (2 if tabular else 3):
        expected = "[batch, F]" if tabular else "[batch, T, F]"
        raise ArtifactError(f"member {member.name}: {name} input {spec.name} has shape {shape}, expected {expected}")
    if shape[-1] != member.n_features:
        raise ArtifactError(
            f"member {member.name}: {name} input {spec.name} has {shape[-1]} features, the model set has {member.n_features}"
        )
    if not tabular and isinstance(shape[1], int) and shape[1] != member.sequence_length:
        raise ArtifactError(
            f"member {member.name}: {name} reads {shape[1]} steps, the manifest says sequence_length {member.sequence_length}"
        )
    names = [o.name for o in outputs]
    score = "SCORE" if "SCORE" in names else None
    if score is None:
        raise ArtifactError(f"member {member.name}: {name} has no SCORE output (outputs: {names})")
    if outputs[names.index(score)].type != "tensor(float)":
        raise ArtifactError(f"member {member.name}: {name} output SCORE is not float32")
    return lambda x: np.asarray(session.run([score], {spec.name: x})[0], dtype=np.float64).reshape(len(x), -1)[:, 0]


def check_member(artifact: ModelSetArtifact, member: MemberArtifact, target: str = "cpu") -> float:
    """Score the golden rows with the member's file in-process; returns the
    largest absolute difference from the trainer's scores, or raises
    ArtifactError when it is outside the tolerance."""
    predict = load_native(member)
    x = artifact.golden_input(member)
    try:
        scores = predict(x)
    except Exception as exc:  # noqa: BLE001
        raise ArtifactError(f"member {member.name}: scoring the golden rows failed: {type(exc).__name__}: {exc}") from None
    problem, worst = compare(member.kind, "native", scores, artifact.golden_scores(member))
    if problem:
        raise ArtifactError(f"member {member.name}: {member.model_file.name} does not reproduce the trainer's golden scores: {problem}")
    return worst
