"""Export writes each member as a new version folder for the cpu or the gpu
target, with a config that parses, and never re-declares the signature of
versions already in the repository."""

from __future__ import annotations

import os

import pytest

from models.export import ArtifactError, export_model_set
from models.export.writer import export_member
from models.triton_backend import ServingOptions, parse_config, versions

OPTIONS = ServingOptions(max_batch_size=1024)


def files_of(folder):
    return sorted(p.name for p in folder.iterdir())


def test_cpu_export_writes_python_backend_versions(artifact, tmp_path):
    exported = export_model_set(artifact, tmp_path, "cpu", OPTIONS, torch_runtime={"lstm": True})
    assert [(e.name, e.version) for e in exported] == [("lightgbm", 1), ("xgboost", 1), ("lstm", 1)]
    assert files_of(tmp_path / "lightgbm" / "1") == ["model.py", "model.txt", "scoring.py"]
    assert files_of(tmp_path / "xgboost" / "1") == ["model.json", "model.py", "scoring.py"]
    assert files_of(tmp_path / "lstm" / "1") == [
        "architecture.py", "config.json", "model.onnx", "model.py", "model.safetensors", "scoring.py",
    ]
    for name in ("lightgbm", "xgboost", "lstm"):
        assert parse_config((tmp_path / name / "config.pbtxt").read_text()).backend == "python"
    again = export_model_set(artifact, tmp_path, "cpu", OPTIONS)
    assert [e.version for e in again] == [2, 2, 2]
    assert not any(e.config_changed for e in again)  # same text: not rewritten, Triton reloads nothing
    assert files_of(tmp_path / "lstm" / "2") == ["model.onnx", "model.py", "scoring.py"]  # no torch files asked


def test_gpu_export_writes_fil_and_onnx_tensorrt_versions(artifact, tmp_path):
    export_model_set(artifact, tmp_path, "gpu", OPTIONS)
    assert files_of(tmp_path / "lightgbm" / "1") == ["model.txt"]
    assert files_of(tmp_path / "xgboost" / "1") == ["xgboost.json"]
    assert files_of(tmp_path / "lstm" / "1") == ["model.onnx"]
    fil = parse_config((tmp_path / "xgboost" / "config.pbtxt").read_text())
    assert fil.backend == "fil" and fil.parameters["model_type"].string_value == "xgboost_json"
    assert list(fil.input[0].dims) == [artifact.members[1].n_features]
    onnx = parse_config((tmp_path / "lstm" / "config.pbtxt").read_text())
    assert onnx.platform == "onnxruntime_onnx"
    assert list(onnx.input[0].dims) == [5, artifact.members[1].n_features]
    assert [(o.name, list(o.dims)) for o in onnx.output] == [("SCORE", [1]), ("HORIZONS", [3])]


def test_gpu_export_refuses_to_redeclare_the_feature_count_of_served_versions(artifact, tmp_path):
    export_model_set(artifact, tmp_path, "gpu", OPTIONS)
    member = artifact.members[0]
    wider = type(member)(member.name, member.kind, member.input, member.n_features + 1, 0, member.files)
    with pytest.raises(ArtifactError, match="model lightgbm: its versions \\[1\\] are served with another signature"):
        export_member(wider, tmp_path, "gpu", OPTIONS)
    assert versions(tmp_path / "lightgbm") == [1]


def test_switching_target_under_served_versions_is_refused(artifact, tmp_path):
    export_model_set(artifact, tmp_path, "cpu", OPTIONS)
    with pytest.raises(ArtifactError, match="another signature"):
        export_model_set(artifact, tmp_path, "gpu", OPTIONS)
    assert all(versions(tmp_path / m.name) == [1] for m in artifact.members)  # nothing written


def test_batching_changes_are_allowed_and_rewrite_the_config(artifact, tmp_path):
    export_model_set(artifact, tmp_path, "cpu", OPTIONS)
    exported = export_model_set(artifact, tmp_path, "cpu", ServingOptions(max_batch_size=2048, instance_count=2))
    assert all(e.config_changed for e in exported)
    assert parse_config((tmp_path / "lightgbm" / "config.pbtxt").read_text()).max_batch_size == 2048


def test_version_folders_appear_whole(artifact, tmp_path):
    export_model_set(artifact, tmp_path, "cpu", OPTIONS)
    leftovers = [p for p in (tmp_path / "lstm").iterdir() if p.name.startswith(".")]
    assert leftovers == []
    assert oct(os.stat(tmp_path / "lstm" / "1").st_mode & 0o777) == "0o755"


def test_export_checks_the_artifact_then_writes_the_configured_target(artifact_dir, tmp_path):
    from models.export import export
    from signalml.config import load_settings

    settings = load_settings(overrides={"triton": {"repository": str(tmp_path / "repo")}, "serving": {"target": "gpu"}})
    exported = export(settings, artifact_dir)
    assert [(e.name, e.version) for e in exported] == [("lightgbm", 1), ("xgboost", 1), ("lstm", 1)]
    assert parse_config((tmp_path / "repo" / "lightgbm" / "config.pbtxt").read_text()).backend == "fil"
    with pytest.raises(ArtifactError, match="another signature"):  # the gpu versions are there now
        export(settings, artifact_dir, target="cpu")


def test_the_ridge_member_is_an_onnx_graph_on_both_targets(tmp_path_factory, tmp_path):
    from models.export import read_artifact
    from tests.unit.serving.artifacts import N_FEATURES, cached_artifact

    artifact = read_artifact(cached_artifact(tmp_path_factory, 0, members=("lightgbm", "ridge")))
    export_model_set(artifact, tmp_path / "cpu", "cpu", OPTIONS)
    assert files_of(tmp_path / "cpu" / "ridge" / "1") == ["model.onnx", "model.py", "scoring.py"]
    cpu = parse_config((tmp_path / "cpu" / "ridge" / "config.pbtxt").read_text())
    assert cpu.backend == "python" and cpu.parameters["format"].string_value == "onnx"
    assert cpu.input[0].name == "FEATURES" and list(cpu.input[0].dims) == [-1]

    export_model_set(artifact, tmp_path / "gpu", "gpu", OPTIONS)
    assert files_of(tmp_path / "gpu" / "ridge" / "1") == ["model.onnx"]
    gpu = parse_config((tmp_path / "gpu" / "ridge" / "config.pbtxt").read_text())
    assert gpu.platform == "onnxruntime_onnx"
    assert gpu.input[0].name == "FEATURES" and list(gpu.input[0].dims) == [N_FEATURES]
    assert [(o.name, list(o.dims)) for o in gpu.output] == [("SCORE", [1])]
    accelerator = gpu.optimization.execution_accelerators.gpu_execution_accelerator[0]
    assert accelerator.name == "tensorrt"
