"""A model-set artifact is read and checked in-process before anything is
served: every refusal names the member or file and the reason."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from models.export import ArtifactError, check_artifact_isolated, check_member, compare, read_artifact, tolerance
from tests.unit.serving.artifacts import N_FEATURES, build_lstm, edit_spec, export_lstm


def spec_of(directory):
    return json.loads((directory / "model_set" / "model_set.json").read_text())


def edit_member(directory, member, **changes):
    spec = spec_of(directory)
    for entry in spec["members"]:
        if entry["name"] == member:
            entry.update(changes)
    edit_spec(directory, members=spec["members"])


def test_a_good_artifact_reads_with_its_members_and_golden_rows(artifact, artifact_dir):
    assert read_artifact(artifact_dir / "model_set").directory == artifact.directory  # either folder works
    assert [(m.name, m.kind, m.input) for m in artifact.members] == [
        ("lightgbm", "lightgbm", "tabular"), ("xgboost", "xgboost", "tabular"), ("lstm", "lstm", "sequence"),
    ]
    assert artifact.golden["tabular"].shape == (64, N_FEATURES)
    assert artifact.golden_input(artifact.members[2]).shape == (64, 5, N_FEATURES)
    for member in artifact.members:
        assert check_member(artifact, member) <= 1e-6


def test_no_manifest_is_refused(tmp_path):
    with pytest.raises(ArtifactError, match="no model_set.json"):
        read_artifact(tmp_path)


def test_a_wrong_feature_count_is_refused(editable_artifact):
    edit_member(editable_artifact, "xgboost", n_features=N_FEATURES + 1)
    with pytest.raises(ArtifactError, match=f"member xgboost: n_features is {N_FEATURES + 1} but the model set has {N_FEATURES}"):
        read_artifact(editable_artifact)


def test_a_model_file_trained_on_other_features_is_refused(editable_artifact):
    from tests.unit.serving.artifacts import train_lightgbm

    train_lightgbm(n_features=N_FEATURES + 2).save_model(str(editable_artifact / "model_set" / "lightgbm" / "model.txt"))
    artifact = read_artifact(editable_artifact)
    with pytest.raises(ArtifactError, match=f"model.txt expects {N_FEATURES + 2} features, the model set has {N_FEATURES}"):
        check_member(artifact, artifact.members[0])


def test_a_feature_list_that_does_not_match_its_hash_is_refused(editable_artifact):
    edit_spec(editable_artifact, feature_names=[f"other_{i}" for i in range(N_FEATURES)])
    with pytest.raises(ArtifactError, match="feature_schema_hash .* does not match"):
        read_artifact(editable_artifact)


@pytest.mark.parametrize("path", ["../../etc/passwd", "/etc/passwd", "lightgbm/../../outside.txt"])
def test_a_file_outside_the_artifact_is_refused(editable_artifact, path):
    edit_member(editable_artifact, "lightgbm", files={"model": path})
    with pytest.raises(ArtifactError, match="member lightgbm: files.model"):
        read_artifact(editable_artifact)


def test_a_missing_file_is_refused(editable_artifact):
    (editable_artifact / "model_set" / "xgboost" / "model.json").unlink()
    with pytest.raises(ArtifactError, match="member xgboost: files.model: xgboost/model.json does not exist"):
        read_artifact(editable_artifact)


@pytest.mark.parametrize("suffix", [".pkl", ".txt"])
def test_a_pickle_is_refused_whatever_its_name(editable_artifact, suffix):
    target = editable_artifact / "model_set" / "lightgbm" / f"model{suffix}"
    target.write_bytes(pickle.dumps({"trees": [1, 2, 3]}, protocol=4))
    edit_member(editable_artifact, "lightgbm", files={"model": f"lightgbm/model{suffix}"})
    with pytest.raises(ArtifactError, match="looks like a pickle"):
        read_artifact(editable_artifact)


def test_a_truncated_model_file_that_aborts_its_library_is_refused_not_fatal(editable_artifact):
    # LightGBM crashes the process on this file (SIGSEGV or SIGABRT): the check runs in a child.
    path = editable_artifact / "model_set" / "lightgbm" / "model.txt"
    path.write_text(path.read_text()[: len(path.read_text()) // 2])
    with pytest.raises(ArtifactError, match="member lightgbm: its model file crashed the native library .*\\((SIGABRT|SIGSEGV)\\)"):
        check_artifact_isolated(editable_artifact)


def test_a_garbled_model_file_is_refused(editable_artifact):
    path = editable_artifact / "model_set" / "xgboost" / "model.json"
    path.write_text(path.read_text().replace('"', "'", 5))
    with pytest.raises(ArtifactError, match="member xgboost: model.json cannot be loaded: XGBoostError"):
        check_artifact_isolated(editable_artifact)


def test_the_isolated_check_reports_each_member(artifact_dir):
    checks = check_artifact_isolated(artifact_dir)
    assert set(checks) == {"lightgbm", "xgboost", "lstm"}
    assert all(c.max_abs_diff <= 1e-6 for c in checks.values())
    assert checks["lstm"].torch_runtime and not checks["lightgbm"].torch_runtime


def test_a_model_that_does_not_reproduce_its_golden_scores_is_refused(editable_artifact):
    golden_path = editable_artifact / "model_set" / "golden.safetensors"
    golden = load_file(str(golden_path))
    golden["score.xgboost"] = golden["score.xgboost"] + np.float32(0.01)
    save_file(golden, str(golden_path))
    artifact = read_artifact(editable_artifact)
    with pytest.raises(ArtifactError, match="member xgboost: model.json does not reproduce the trainer's golden scores: 64 of 64 rows"):
        check_member(artifact, artifact.members[1])


def test_golden_arrays_of_the_wrong_dtype_are_refused(editable_artifact):
    golden_path = editable_artifact / "model_set" / "golden.safetensors"
    golden = load_file(str(golden_path))
    golden["tabular"] = golden["tabular"].astype(np.float64)
    save_file(golden, str(golden_path))
    with pytest.raises(ArtifactError, match="tabular is float64, expected float32"):
        read_artifact(editable_artifact)


def test_an_onnx_graph_reading_float64_is_refused(editable_artifact):
    network, config = build_lstm()
    export_lstm(network, config, editable_artifact / "model_set" / "lstm", dtype="float64")
    artifact = read_artifact(editable_artifact)
    with pytest.raises(ArtifactError, match="member lstm: model.onnx input SEQUENCES is tensor\\(double\\), expected tensor\\(float\\)"):
        check_member(artifact, artifact.members[2])


def test_an_onnx_graph_of_another_sequence_length_is_refused(editable_artifact):
    edit_member(editable_artifact, "lstm", sequence_length=3)
    artifact = read_artifact(editable_artifact)
    with pytest.raises(ArtifactError, match="reads 5 steps, the manifest says sequence_length 3"):
        check_member(artifact, artifact.members[2])


@pytest.mark.parametrize("changes, message", [
    ({"format_version": 2}, "format_version 2 is not supported"),
    ({"ensemble": {"method": "median"}}, "ensemble.method 'median'"),
    ({"ensemble": {"method": "average", "weights": {"ghost": 1.0}}}, "unknown members \\['ghost'\\]"),
    ({"golden": "../golden.safetensors"}, "golden"),
])
def test_bad_model_set_fields_are_refused(editable_artifact, changes, message):
    edit_spec(editable_artifact, **changes)
    with pytest.raises(ArtifactError, match=message):
        read_artifact(editable_artifact)


@pytest.mark.parametrize("changes, message", [
    ({"name": "../lightgbm"}, "invalid model name"),
    ({"kind": "catboost"}, "unknown kind 'catboost'"),
    ({"input": "sequence"}, "reads tabular input"),
])
def test_bad_member_fields_are_refused(editable_artifact, changes, message):
    edit_member(editable_artifact, "lightgbm", **changes)
    with pytest.raises(ArtifactError, match=message):
        read_artifact(editable_artifact)


def test_duplicate_member_names_are_refused(editable_artifact):
    spec = spec_of(editable_artifact)
    edit_spec(editable_artifact, members=spec["members"] + [spec["members"][0]])
    with pytest.raises(ArtifactError, match="duplicate member names"):
        read_artifact(editable_artifact)


def test_the_content_hash_changes_with_any_member_file(editable_artifact, artifact):
    before = artifact.content_hash()
    assert read_artifact(editable_artifact).content_hash() == before
    with open(editable_artifact / "model_set" / "lstm" / "config.json", "a") as f:
        f.write(" ")
    assert read_artifact(editable_artifact).content_hash() != before


@pytest.mark.parametrize("kind, target, rtol, atol", [
    ("lightgbm", "cpu", 1e-6, 1e-6), ("xgboost", "gpu", 1e-4, 1e-5), ("lstm", "cpu", 1e-4, 1e-5), ("tft", "gpu", 5e-3, 5e-4),
    ("ridge", "cpu", 1e-4, 1e-5), ("ridge", "gpu", 5e-3, 5e-4),
])
def test_tolerances_are_stated_per_model_type_and_target(kind, target, rtol, atol):
    assert tolerance(kind, target) == (rtol, atol)


def test_compare_reports_the_first_row_beyond_tolerance_and_accepts_matching_nans():
    native = np.array([1.0, np.nan, 3.0])
    assert compare("lstm", "cpu", native.copy(), native) == (None, 0.0)
    problem, worst = compare("lightgbm", "cpu", np.array([1.0, np.nan, 3.1]), native)
    assert problem.startswith("1 of 3 rows differ") and "row 2" in problem and worst == pytest.approx(0.1)
    assert compare("lightgbm", "cpu", np.array([1.0, 2.0]), native)[0] == "2 scores for 3 golden rows"


def test_a_ridge_member_is_checked_against_its_golden_scores(tmp_path_factory, tmp_path):
    import shutil

    from models.export.check import check_artifact
    from tests.unit.serving.artifacts import cached_artifact

    source = cached_artifact(tmp_path_factory, 0, members=("lightgbm", "ridge"))
    assert check_artifact(read_artifact(source))["ridge"].max_abs_diff < 1e-6
    damaged = shutil.copytree(source, tmp_path / "damaged")
    config = json.loads((damaged / "model_set" / "ridge" / "config.json").read_text())
    from models.ridge_member import write_onnx

    write_onnx(damaged / "model_set" / "ridge" / "model.onnx", np.asarray(config["coefficients"]) * 1.01, config["intercept"])
    with pytest.raises(ArtifactError, match="ridge: model.onnx does not reproduce the trainer's golden scores"):
        check_artifact(read_artifact(damaged))
    write_onnx(damaged / "model_set" / "ridge" / "model.onnx", np.zeros(5), 0.0)
    with pytest.raises(ArtifactError, match="has 5 features, the model set has 6"):
        check_artifact(read_artifact(damaged))
