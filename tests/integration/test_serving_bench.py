"""The inference benchmark runs end to end (small models, few rounds) and
reports every figure it promises."""

from __future__ import annotations

import pytest

from bench.inference import run
from signalml.config import load_settings
from stream.features.names import feature_names
from tests.unit.serving.servers import REPO_ROOT

pytestmark = pytest.mark.integration


def test_the_benchmark_reports_served_and_native_latencies_per_member_and_fanout(tmp_path):
    settings = load_settings(
        REPO_ROOT / "signalml.yaml",
        overrides={
            "paths": {"state_dir": str(tmp_path / "state")},
            "models": {
                "lightgbm": {"n_estimators": 10},
                "xgboost": {"n_estimators": 10},
                "lstm": {"hidden_size": 8, "num_layers": 1, "sequence_length": 5},
            },
        },
    )
    report = run(settings, rounds=3, rows=(10, 40))
    assert report["model_set"]["sequence_length"] == 5 and report["model_set"]["n_features"] == len(feature_names(settings.features)) == 195
    assert set(report["rows"]) == {"10", "40"}
    for entry in report["rows"].values():
        assert set(entry["triton"]) == {"lightgbm", "xgboost", "lstm", "fanout"}
        assert set(entry["native"]) == {"lightgbm", "xgboost", "lstm", "lstm_onnxruntime", "all_members_sequential"}
        assert set(entry["ratio_p50"]) == {"lightgbm", "xgboost", "lstm", "fanout"}
        for figures in (*entry["triton"].values(), *entry["native"].values()):
            assert 0 < figures["p50_ms"] <= figures["p99_ms"]
