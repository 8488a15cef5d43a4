"""The deep models' training loop: masked loss, validation dates, early
stopping, the on-disk checkpoint, unknown targets."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from models.deep.training import CHECKPOINT_PROGRESS, CHECKPOINT_WEIGHTS, masked_mse, validation_rows

from .conftest import DEEP_KINDS, data_of, fitted, make_member


def test_masked_mse_ignores_unknown_targets_and_their_gradient():
    prediction = torch.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    target = torch.tensor([[0.0, float("nan")], [1.0, 2.0]])
    loss = masked_mse(prediction, target)
    assert loss.item() == pytest.approx((1.0 + 4.0 + 4.0) / 3)
    loss.backward()
    assert prediction.grad[0, 1].item() == 0.0 and torch.isfinite(prediction.grad).all()


def test_validation_rows_are_whole_dates_spread_over_the_period():
    groups = np.repeat(np.arange(100), 10)
    rows = validation_rows(groups, max_rows=205)
    kept = np.unique(groups[rows])
    assert len(rows) <= 205 and len(rows) == 10 * len(kept)
    assert kept[0] == 0 and kept[-1] == 99
    np.testing.assert_array_equal(validation_rows(groups, max_rows=5000), np.arange(1000))


@pytest.mark.parametrize("kind", DEEP_KINDS)
@pytest.mark.parametrize("label", ["signal", "noise"])
def test_training_stops_patience_epochs_after_the_best(kind, label, market, noise_market):
    fit = fitted(kind, market if label == "signal" else noise_market, label)
    settings = fit.member.training_settings
    report = fit.report
    assert 1 <= report["best_epoch"] <= report["epochs_run"] <= settings["epochs"]
    if report["epochs_run"] < settings["epochs"]:
        assert report["epochs_run"] - report["best_epoch"] == settings["patience"]


def test_the_best_epoch_is_checkpointed_to_disk_as_safetensors(market, tmp_path):
    member = make_member("lstm", epochs=3, checkpoint_dir=tmp_path / "checkpoint")
    report = member.fit(data_of(member, market, "train"), data_of(member, market, "valid"))
    progress = json.loads((tmp_path / "checkpoint" / CHECKPOINT_PROGRESS).read_text())
    assert progress["epoch"] == report["best_epoch"]
    assert progress["valid_rank_ic"] == pytest.approx(report["valid_rank_ic"])
    saved = load_file(str(tmp_path / "checkpoint" / CHECKPOINT_WEIGHTS))
    for key, value in member.network.state_dict().items():
        torch.testing.assert_close(saved[key], value.cpu(), rtol=0, atol=0)


@pytest.mark.parametrize("kind", DEEP_KINDS)
def test_predict_takes_sequences_as_an_array_too(kind, market):
    fit = fitted(kind, market, "signal")
    test = market.sequence("test")
    np.testing.assert_array_equal(fit.member.predict(test.materialize()), fit.test_scores)


def test_unknown_targets_are_left_out_of_training(market):
    y = market.y.copy()
    y[::3, 2] = np.nan  # the longest horizon unknown for a third of the rows
    y[::7, :] = np.nan  # and every horizon for some
    patchy = dataclasses.replace(market, y=y)
    member = make_member("lstm", epochs=2)
    report = member.fit(data_of(member, patchy, "train"), data_of(member, patchy, "valid"))
    assert np.isfinite(report["valid_loss"]) and report["valid_rank_ic"] > 0.2
    assert np.isfinite(member.predict(data_of(member, patchy, "test"))).all()


@pytest.mark.parametrize("kind", ["lightgbm", "xgboost"])
def test_gbms_skip_rows_without_a_target_and_accept_missing_features(kind, market):
    X = market.X.copy()
    X[::5, 0] = np.nan
    y = market.y.copy()
    y[::4, 1] = np.nan
    patchy = dataclasses.replace(market, X=X, y=y)
    member = make_member(kind)
    report = member.fit(patchy.tabular("train"), patchy.tabular("valid"))
    assert report["n_train_rows"] == np.isfinite(patchy.tabular("train").target_returns).sum()
    assert np.isfinite(member.predict(patchy.tabular("test"))).all()
