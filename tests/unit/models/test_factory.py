"""Members from the configuration, members back from files."""

from __future__ import annotations

import pytest

from models.base import ModelError
from models.deep import LSTMPredictor
from models.factory import build_members, load_member
from models.lightgbm_member import LightGBMMember
from models.ridge_member import RidgeMember
from models.xgboost_member import XGBoostMember
from signalml.config import Settings

NAMES = [f"feature_{i}" for i in range(4)]


def test_default_settings_build_lightgbm_xgboost_ridge_and_lstm():
    settings = Settings()
    members = build_members(settings, 4, NAMES)
    assert [type(m) for m in members] == [LightGBMMember, XGBoostMember, RidgeMember, LSTMPredictor]
    assert [m.name for m in members] == ["lightgbm", "xgboost", "ridge", "lstm"]
    assert [m.input for m in members] == ["tabular", "tabular", "tabular", "sequence"]
    lightgbm, xgboost, _, lstm = members
    # regression on the normal-scored label by default; the LSTM makes full passes
    assert lightgbm.lightgbm_params()["objective"] == "regression"
    assert xgboost.xgboost_params()["objective"] == "reg:squarederror"
    assert lstm.training_settings["samples_per_epoch"] is None
    assert lstm.training_settings["max_valid_samples"] is None
    assert all(m.feature_names == NAMES and m.n_features == 4 for m in members)


def test_members_take_their_settings_and_the_training_seed():
    settings = Settings.model_validate(
        {
            "training": {"seed": 123},
            "models": {
                "lightgbm": {"num_leaves": 15, "relevance_grades": 7},
                "xgboost": {"max_depth": 4},
                "ridge": {"alphas": [0.5, 5.0]},
                "lstm": {"hidden_size": 32, "sequence_length": 10, "patience": 2},
            },
        }
    )
    lightgbm, xgboost, ridge, lstm = build_members(settings, 4, NAMES)
    assert ridge.hyperparameters["alphas"] == [0.5, 5.0]
    assert lightgbm.hyperparameters["num_leaves"] == 15 and lightgbm.hyperparameters["relevance_grades"] == 7
    assert lightgbm.lightgbm_params()["seed"] == 123 and lightgbm.lightgbm_params()["deterministic"] is True
    assert xgboost.hyperparameters["max_depth"] == 4 and xgboost.xgboost_params()["seed"] == 123
    assert xgboost.hyperparameters["relevance_grades"] == 7
    assert lstm.hidden_size == 32 and lstm.sequence_length == 10
    assert lstm.training_settings["patience"] == 2 and lstm.training_settings["seed"] == 123


def test_disabled_members_are_left_out_and_tft_can_be_enabled():
    settings = Settings.model_validate(
        {"models": {"lightgbm": {"enabled": False}, "xgboost": {"enabled": False}, "ridge": {"enabled": False},
                    "tft": {"enabled": True}}}
    )
    lstm, tft = build_members(settings, 4, NAMES)
    assert [(m.name, m.kind, m.input) for m in (lstm, tft)] == [("lstm", "lstm", "sequence"), ("tft", "tft", "sequence")]
    assert tft.sequence_length == 60 and tft.attention_heads == 4


def test_feature_names_must_match_the_feature_count():
    with pytest.raises(ModelError, match="3 feature names for 4 features"):
        build_members(Settings(), 4, NAMES[:3])


def test_an_unknown_kind_cannot_be_loaded(tmp_path):
    with pytest.raises(ModelError, match="unknown member kind 'catboost'"):
        load_member("catboost", tmp_path, {"model": "model.cbm"})


def test_a_missing_model_file_is_a_model_error(tmp_path):
    with pytest.raises(ModelError, match="cannot read"):
        load_member("lightgbm", tmp_path, {"model": "model.txt", "config": "config.json"})
