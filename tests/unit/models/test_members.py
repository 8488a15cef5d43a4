"""The contract every member keeps, checked on each kind (LightGBM, XGBoost,
ridge, LSTM, TFT): it learns a planted signal, finds none in noise, is
reproducible, and comes back from its native files scoring the same."""

from __future__ import annotations

import dataclasses
import json
import pickle

import numpy as np
import pytest
import torch

from models.base import ModelError, rank_ic_by_date
from models.factory import load_member

from .conftest import FEATURE_NAMES, data_of, fitted, make_member

PLANTED_IC_THRESHOLD = 0.3  # the planted signal's rank IC is about 0.45 for x0 alone


def test_member_learns_a_planted_signal_out_of_sample(signal_fit, market):
    test = data_of(signal_fit.member, market, "test")
    ic = rank_ic_by_date(signal_fit.test_scores, test.target_returns, test.groups)
    assert len(ic) == 50
    assert ic.mean() > PLANTED_IC_THRESHOLD, f"mean rank IC {ic.mean():.3f}"


def test_member_finds_nothing_in_pure_noise(kind, noise_market):
    fit = fitted(kind, noise_market, "noise")
    test = data_of(fit.member, noise_market, "test")
    ic = rank_ic_by_date(fit.test_scores, test.target_returns, test.groups)
    standard_error = ic.std(ddof=1) / np.sqrt(len(ic))
    assert abs(ic.mean()) < 3 * standard_error, f"mean {ic.mean():.4f}, s.e. {standard_error:.4f}"


def test_predict_returns_one_float64_score_per_row(signal_fit, market):
    test = data_of(signal_fit.member, market, "test")
    assert signal_fit.test_scores.shape == (len(test),)
    assert signal_fit.test_scores.dtype == np.float64
    assert np.isfinite(signal_fit.test_scores).all()


def test_fit_reports_its_best_point_validation_ic_and_time(signal_fit):
    report = signal_fit.report
    assert sum(key in report for key in ("best_iteration", "best_epoch", "alpha")) == 1
    assert report["valid_rank_ic"] > PLANTED_IC_THRESHOLD
    assert report["seconds"] > 0 and report["warm"] is False
    json.dumps(report)  # plain data only


def test_two_fits_with_one_seed_predict_the_same(kind, signal_fit, market):
    again = make_member(kind)
    again.fit(data_of(again, market, "train"), data_of(again, market, "valid"))
    scores = again.predict(data_of(again, market, "test"))
    if kind in ("lightgbm", "xgboost", "ridge"):
        np.testing.assert_array_equal(scores, signal_fit.test_scores)
    else:
        np.testing.assert_allclose(scores, signal_fit.test_scores, rtol=0, atol=1e-6)


def test_loaded_member_predicts_the_same_scores(kind, saved, signal_fit, market):
    directory, files = saved
    loaded = load_member(kind, directory, files)
    scores = loaded.predict(data_of(loaded, market, "test"))
    if kind in ("lightgbm", "xgboost", "ridge"):
        np.testing.assert_array_equal(scores, signal_fit.test_scores)
    else:
        np.testing.assert_allclose(scores, signal_fit.test_scores, rtol=0, atol=1e-6)
    assert loaded.feature_names == FEATURE_NAMES and loaded.n_features == len(FEATURE_NAMES)


def test_saved_files_are_native_formats_without_pickle(kind, saved):
    directory, files = saved
    written = sorted(p.name for p in directory.iterdir())
    assert written == sorted(files.values()), "save() names every file it writes"
    for path in directory.iterdir():
        head = path.read_bytes()[:4]
        assert not (head[:1] == b"\x80" and 2 <= head[1] <= 5), f"{path.name} starts like a pickle"
        assert head[:2] != b"PK", f"{path.name} is a zip archive (torch.save)"
    assert json.loads((directory / files["config"]).read_text())["kind"] == kind
    if kind == "lightgbm":
        assert (directory / files["model"]).read_text().startswith("tree\n")
    elif kind == "xgboost":
        assert files["model"] == "model.ubj" and (directory / files["model"]).read_bytes()[:1] == b"{"
    elif kind == "ridge":
        import onnx

        assert files == {"onnx": "model.onnx", "config": "config.json"}
        onnx.checker.check_model(str(directory / files["onnx"]))
    else:
        import onnx
        from safetensors import safe_open

        onnx.checker.check_model(str(directory / files["onnx"]))
        with safe_open(str(directory / files["weights"]), framework="pt") as weights:
            assert len(list(weights.keys())) > 0


def test_loading_never_unpickles(kind, saved, market, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("unpickling is not allowed")

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    directory, files = saved
    loaded = load_member(kind, directory, files)
    assert loaded.predict(data_of(loaded, market, "test")).shape == (2500,)


def test_gbm_importance_ranks_the_signal_feature_first(kind, signal_fit, market):
    importance = signal_fit.member.importance(data_of(signal_fit.member, market, "test"))
    if kind in ("lstm", "tft"):
        assert importance is None
        return
    assert list(importance) == FEATURE_NAMES
    assert max(importance, key=importance.get) == "x0"
    assert all(v >= 0 for v in importance.values())


def test_unfitted_member_refuses_to_predict_or_save(kind, market, tmp_path):
    member = make_member(kind)
    with pytest.raises(ModelError, match="not fitted"):
        member.predict(data_of(member, market, "test"))
    with pytest.raises(ModelError, match="not fitted"):
        member.save(tmp_path)


def test_data_with_the_wrong_feature_count_is_refused(kind, market):
    member = make_member(kind)
    narrow = dataclasses.replace(market, X=market.X[:, :5], panel=market.panel[:, :5])
    with pytest.raises(ModelError, match="5 features"):
        member.fit(data_of(member, narrow, "train"), data_of(member, narrow, "valid"))
