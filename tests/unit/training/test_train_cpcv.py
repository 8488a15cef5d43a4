"""``signalml train --validation cpcv``: the combinatorial purged
cross-validation of every member, run through the CLI and reported in its
output and in metrics.json."""

from __future__ import annotations

import json

import numpy as np
import pytest

from signalml.cli import EXIT_ERROR, main

from .conftest import SMALL_TRAINING
from .synthetic import synthetic_bars


@pytest.fixture()
def small_real_members(monkeypatch):
    """The configured LightGBM and ridge members, small; short windows."""
    for key, value in SMALL_TRAINING.items():
        monkeypatch.setenv(f"SIGNALML__TRAINING__{key.upper()}", str(value))
    monkeypatch.setenv("SIGNALML__TRAINING__HYPEROPT_BUDGET_S", "0")
    monkeypatch.setenv("SIGNALML__MODELS__LIGHTGBM__N_ESTIMATORS", "40")
    monkeypatch.setenv("SIGNALML__MODELS__LIGHTGBM__MIN_CHILD_SAMPLES", "50")  # the configured 2,000 fits no tree here
    for kind in ("xgboost", "lstm", "tft"):
        monkeypatch.setenv(f"SIGNALML__MODELS__{kind.upper()}__ENABLED", "false")


def test_cpcv_reports_every_path_of_every_member_and_finds_a_planted_signal(small_real_members, tmp_path, capsys):
    bars = tmp_path / "bars.parquet"
    synthetic_bars(n_symbols=30, n_days=260, signal=0.5).to_parquet(bars)
    out = tmp_path / "run"
    code = main(["train", "--bars", str(bars), "--out", str(out), "--quiet", "--validation", "cpcv",
                 "--cpcv-groups", "5", "--cpcv-test-groups", "2"])
    assert code == 0
    printed = json.loads(capsys.readouterr().out)["train"]["cpcv"]
    assert (printed["n_groups"], printed["n_test_groups"], printed["n_splits"], printed["n_paths"]) == (5, 2, 10, 4)
    assert set(printed["members"]) == {"lightgbm", "ridge"}
    report = json.loads((out / "metrics.json").read_text())["cpcv"]
    for name, member in report["members"].items():
        assert len(member["split_rank_ic"]) == 10 and len(member["path_rank_ic"]) == 4
        assert member["path_rank_ic_mean"] == pytest.approx(sum(member["path_rank_ic"]) / 4)
        assert member["path_rank_ic_min"] == min(member["path_rank_ic"])
        assert printed["members"][name]["path_rank_ic_mean"] == round(member["path_rank_ic_mean"], 4)
        # the planted signal has a rank IC of about 0.2 (pure noise: about 0 ± 0.012
        # over 30 symbols and ~250 dates); every history finds it
        assert member["path_rank_ic_min"] > 0.05, (name, member["path_rank_ic"])


def test_walk_forward_alone_reports_no_cpcv(small_real_members, tmp_path, capsys):
    bars = tmp_path / "bars.parquet"
    synthetic_bars(n_symbols=20, n_days=220).to_parquet(bars)
    assert main(["train", "--bars", str(bars), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    assert "cpcv" not in json.loads(capsys.readouterr().out)["train"]
    assert "cpcv" not in json.loads((tmp_path / "run" / "metrics.json").read_text())


def test_cpcv_test_groups_must_leave_a_training_group(capsys):
    assert main(["train", "--bars", "x.parquet", "--out", "x", "--validation", "cpcv", "--cpcv-groups", "3",
                 "--cpcv-test-groups", "3"]) == EXIT_ERROR
    assert "--cpcv-test-groups (3) must be at least 1 and below --cpcv-groups (3)" in capsys.readouterr().err


def test_each_path_is_every_group_scored_by_the_split_the_path_takes_it_from(tmp_path):
    """An independent assembly of the paths: for each group of a path, a
    fresh stand-in fit on the purged training rows of the split that path
    takes the group from (CombinatorialPurgedCV.paths), scoring that group."""
    from models.base import mean_rank_ic
    from training.cpcv_validation import cpcv_validation
    from training.dataset import build_dataset
    from training.run import longest_sequence
    from training.splits.cpcv import CombinatorialPurgedCV
    from training.window import member_input

    from .conftest import small_settings
    from .synthetic import RidgeMember

    settings = small_settings()
    dataset = build_dataset(synthetic_bars(n_symbols=20, n_days=200, signal=0.3), settings,
                            sequence_length=longest_sequence(settings))

    def ridge_only(settings, n_features, names):
        return [RidgeMember(n_features, name="ridge", feature_names=names)]

    report = cpcv_validation(dataset, settings, ridge_only, n_groups=4, n_test_groups=2)

    rows = np.flatnonzero(dataset.labelled)
    t, e = dataset.date_index[rows], dataset.label_end_index_of(max(dataset.horizons))[rows]
    cv = CombinatorialPurgedCV(4, 2, settings.training.embargo)
    splits = list(cv.split(t, e))
    groups = np.array_split(np.unique(t), 4)
    returns = dataset.returns[:, dataset.target]
    expected = []
    for path in cv.paths():
        scores = np.full(len(rows), np.nan)
        for g, split_index in enumerate(path):
            member = RidgeMember(len(dataset.feature_names), name="ridge", feature_names=list(dataset.feature_names))
            split = splits[split_index]
            member.fit(member_input(dataset, member, rows[split.train]), member_input(dataset, member, rows[split.test]))
            in_group = np.isin(t, groups[g])
            scores[in_group] = member.predict(member_input(dataset, member, rows[in_group]))
        assert np.isfinite(scores).all()
        expected.append(mean_rank_ic(scores, returns[rows], t))
    assert report["members"]["ridge"]["path_rank_ic"] == pytest.approx(expected, abs=1e-12)
