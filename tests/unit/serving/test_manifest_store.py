"""The manifest of a published set, and where published sets are kept."""

from __future__ import annotations

import re

import pytest

from models.publish import ModelSetStore, build_manifest
from signalml.contracts import ReferenceBins, schema_hash


def test_the_manifest_carries_the_artifact_and_the_pinned_versions(artifact):
    manifest = build_manifest(artifact, {"lightgbm": 3, "xgboost": 2, "lstm": 7}, previous="ms-20260101000000-0123abcd", now_s=1_800_000_000)
    assert re.fullmatch(r"ms-20270115080000-[0-9a-f]{8}", manifest.model_set)
    assert manifest.created_at == 1_800_000_000_000
    assert [(m.name, m.version, m.kind, m.input) for m in manifest.members] == [
        ("lightgbm", 3, "lightgbm", "tabular"), ("xgboost", 2, "xgboost", "tabular"), ("lstm", 7, "lstm", "sequence"),
    ]
    assert [m.weight for m in manifest.members] == pytest.approx([1 / 3] * 3)
    assert manifest.ensemble_method == "ic_weighted"
    assert manifest.feature_schema_hash == schema_hash(manifest.feature_names)
    assert manifest.sequence_length == 5 and manifest.horizon_bars == 5
    assert manifest.stacking_coefficients == {"lightgbm": 0.5, "xgboost": 0.5, "lstm": 0.5}
    assert manifest.stacking_intercept == 0.01
    assert manifest.drift_reference["feat_0"] == ReferenceBins(edges=[-1.0, 0.0, 1.0], fractions=[0.5, 0.5])
    assert manifest.training_metrics["lstm"] == {"valid_rank_ic": pytest.approx(0.07)}
    assert manifest.previous == "ms-20260101000000-0123abcd"


def test_the_id_changes_with_the_versions(artifact):
    a = build_manifest(artifact, {"lightgbm": 1, "xgboost": 1, "lstm": 1}, previous=None, now_s=0)
    b = build_manifest(artifact, {"lightgbm": 2, "xgboost": 1, "lstm": 1}, previous=None, now_s=0)
    assert a.model_set != b.model_set and a.model_set[:17] == b.model_set[:17] == "ms-19700101000000"


def test_the_store_round_trips_manifests_and_moves_current(artifact, tmp_path):
    store = ModelSetStore(tmp_path)
    assert store.current() is None and store.history() == []
    first = build_manifest(artifact, {"lightgbm": 1, "xgboost": 1, "lstm": 1}, previous=None)
    second = build_manifest(artifact, {"lightgbm": 2, "xgboost": 2, "lstm": 2}, previous=first.model_set)
    for manifest in (first, second):
        store.write(manifest, artifact.golden_path)
        store.set_current(manifest.model_set, "publish")
    assert store.read(first.model_set) == first
    assert store.current() == second
    assert store.golden(first.model_set).read_bytes() == artifact.golden_path.read_bytes()
    assert [(h["model_set"], h["action"]) for h in store.history()] == [
        (first.model_set, "publish"), (second.model_set, "publish"),
    ]
    assert not [p for p in store.folder.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("bad", ["../current", "ms-1-2", "", "ms-20260101000000-0123abcZ"])
def test_the_store_refuses_ids_that_are_not_model_set_ids(tmp_path, bad):
    with pytest.raises(ValueError, match="invalid model-set id"):
        ModelSetStore(tmp_path).read(bad)


def test_a_missing_manifest_says_which(tmp_path):
    with pytest.raises(FileNotFoundError, match="ms-20260101000000-0123abcd is not stored"):
        ModelSetStore(tmp_path).read("ms-20260101000000-0123abcd")


def test_manifests_validate_as_the_contract(artifact, tmp_path):
    store = ModelSetStore(tmp_path)
    manifest = build_manifest(artifact, {"lightgbm": 1, "xgboost": 1, "lstm": 1}, previous=None)
    path = store.write(manifest)
    assert store.read(manifest.model_set) == manifest
    path.write_bytes(path.read_bytes().replace(b'"ic_weighted"', b'"median"'))
    with pytest.raises(ValueError, match="not a valid model-set manifest"):
        store.read(manifest.model_set)


def test_a_ridge_member_and_its_training_window_round_trip_through_the_store(tmp_path_factory, tmp_path):
    from models.export import read_artifact
    from tests.unit.serving.artifacts import cached_artifact, edit_spec

    source = cached_artifact(tmp_path_factory, 0, members=("lightgbm", "ridge"))
    edited = tmp_path / "artifact"
    import shutil

    shutil.copytree(source, edited)
    window = {"first_date": "2015-01-12", "last_date": "2019-12-30", "last_label_end": "2020-01-08T00:00:00"}
    edit_spec(edited, training_window=window, ensemble={"method": "rank_average", "weights": {"lightgbm": 0.0, "ridge": 1.0}})
    manifest = build_manifest(read_artifact(edited), {"lightgbm": 1, "ridge": 1}, previous=None)
    store = ModelSetStore(tmp_path / "repo")
    store.write(manifest)
    again = store.read(manifest.model_set)
    assert [(m.name, m.kind, m.input) for m in again.members] == [("lightgbm", "lightgbm", "tabular"), ("ridge", "ridge", "tabular")]
    assert again.training_window == window and again.ensemble_method == "rank_average"
    assert again.ensemble_weights == {"lightgbm": 0.0, "ridge": 1.0}
