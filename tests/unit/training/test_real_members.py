"""run_training with the real members (LightGBM, XGBoost, ridge, LSTM through
``models.factory``) on a slice of the bundled data, at toy sizes: the
artifacts the publisher reads are complete and reload to the same scores."""

from __future__ import annotations

import json
from pathlib import Path

import lightgbm
import numpy as np
import onnxruntime
import pytest
import xgboost
from safetensors.numpy import load_file

from signalml.config import load_settings
from stream.bars_file import read_bars
from training.run import run_training

DATA = Path(__file__).resolve().parents[3] / "data" / "sp500_daily_2015_2019.parquet"
SYMBOLS = ["AAPL", "AMD", "CBS", "DXC", "F", "GE", "IBM", "INTC", "JPM", "KO", "MSFT", "NVDA", "PCG", "T", "UA", "XOM", "PFE", "WMT", "BA", "CAT"]

TOY = {
    "models": {
        "lightgbm": {"n_estimators": 15, "min_child_samples": 20, "early_stopping_rounds": 5, "min_trees": 5},
        "xgboost": {"n_estimators": 15, "max_depth": 3, "min_child_weight": 20.0, "early_stopping_rounds": 5, "min_trees": 5},
        "lstm": {"hidden_size": 8, "num_layers": 1, "epochs": 1, "sequence_length": 10, "batch_size": 256},
        "tft": {"enabled": False},
    },
    "training": {"train_period": 150, "test_period": 100, "retrain_frequency": 100, "validation_bars": 40},
}


@pytest.mark.skipif(not DATA.is_file(), reason="bundled data not present")
def test_real_members_produce_a_complete_model_set(tmp_path):
    settings = load_settings(environ={}, overrides=TOY)
    bars = read_bars(DATA, symbols=SYMBOLS, end="2015-12-31")  # one test window
    metrics = run_training(settings, DATA, tmp_path, progress=False, bars=bars)

    assert set(metrics["models"]) == {"lightgbm", "xgboost", "ridge", "lstm"}
    manifest = json.loads((tmp_path / "model_set" / "model_set.json").read_text())
    by_name = {m["name"]: m for m in manifest["members"]}
    assert by_name["lightgbm"]["files"]["model"] == "lightgbm/model.txt"
    assert by_name["ridge"]["files"] == {"onnx": "ridge/model.onnx", "config": "ridge/config.json"}
    assert by_name["lstm"]["files"] == {"onnx": "lstm/model.onnx", "weights": "lstm/model.safetensors", "config": "lstm/config.json"}
    assert by_name["lstm"]["sequence_length"] == 10 == manifest["sequence_length"]
    for entry in manifest["members"]:
        for path in entry["files"].values():
            assert (tmp_path / "model_set" / path).is_file()
    # The golden scores are what each saved file gives, read by its native library here.
    directory = tmp_path / "model_set"
    golden = load_file(str(directory / manifest["golden"]))
    for name, scores in native_scores(directory, by_name, golden).items():
        expected = golden[f"score.{name}"].astype(np.float64)
        assert np.abs(expected).max() > 0 and np.unique(expected).size > 1, name
        np.testing.assert_allclose(scores, expected, rtol=0, atol=1e-4 * max(1.0, np.abs(expected).max()), err_msg=name)
    assert set(metrics["importance"]) == {"lightgbm", "xgboost", "ridge"}  # SHAP for the tabular members only
    assert len(metrics["folds"]) == 1 and metrics["dataset"]["symbols"] == bars["symbol"].nunique()


def native_scores(directory: Path, members: dict[str, dict], golden: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Each member's golden-row scores from its files, through LightGBM,
    XGBoost and ONNX Runtime directly (not the project's loaders)."""
    tabular, sequence = golden["tabular"], golden["sequence"]
    booster = lightgbm.Booster(model_file=str(directory / members["lightgbm"]["files"]["model"]))
    trees = xgboost.Booster()
    trees.load_model(str(directory / members["xgboost"]["files"]["model"]))
    out = {"lightgbm": booster.predict(tabular), "xgboost": trees.inplace_predict(tabular, validate_features=False)}
    for name, rows in (("ridge", tabular), ("lstm", sequence[:, -members["lstm"]["sequence_length"]:, :])):
        session = onnxruntime.InferenceSession(str(directory / members[name]["files"]["onnx"]))
        (output,) = session.run(["SCORE"], {session.get_inputs()[0].name: np.ascontiguousarray(rows, dtype=np.float32)})
        out[name] = np.asarray(output, dtype=np.float64).reshape(len(rows), -1)[:, 0]
    return {name: np.asarray(scores, dtype=np.float64) for name, scores in out.items()}
