"""run_training end to end on a small synthetic market with stand-in members:
every output exists and the model-set manifest keeps its contract."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from safetensors.numpy import load_file

from signalml.contracts import schema_hash
from bench.train import bench_train
from training.run import run_training

from .conftest import small_settings
from .synthetic import standin_factory, standin_loader, synthetic_bars

SCORE_KEYS = {"ic", "rank_ic", "icir", "rank_icir"}


@pytest.fixture(scope="module")
def bars_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("bars") / "bars.parquet"
    synthetic_bars(n_symbols=20, n_days=260, signal=0.5, seed=4).to_parquet(path)
    return path


@pytest.fixture(scope="module")
def trained(bars_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("train")
    metrics = run_training(
        small_settings(), bars_file, out, progress=False, member_factory=standin_factory, member_loader=standin_loader
    )
    return out, metrics


def test_metrics_json_has_every_model_ensemble_and_the_baseline(trained):
    out, metrics = trained
    written = json.loads((out / "metrics.json").read_text())
    assert set(written["models"]) == {"ridge", "seq"}
    assert set(written["ensembles"]) == {"rank_average", "average", "ic_weighted", "stacking", "rank_vote"}
    assert set(written["baseline"]) == {"reversal_5"}
    for section in ("models", "ensembles", "baseline"):
        for values in written[section].values():
            assert SCORE_KEYS <= set(values) and all(isinstance(values[k], float) for k in SCORE_KEYS)
    assert written["models"]["ridge"]["rank_ic"] > 0.05  # the planted signal
    assert written["default_ensemble"] == "rank_average"
    assert written["label"]["entry_lag_bars"] == 1 and written["label"]["transform"] == "normal_score"
    assert len(written["folds"]) == len(written["windows"]) >= 2
    # every fold's ensembles were fit on out-of-sample scores: validation first, earlier tests later
    samples = [f["ensemble_sample"] for f in written["folds"]]
    assert samples[0]["rows_from_test_windows"] == 0 and samples[-1]["rows_from_test_windows"] > 0


def test_every_horizon_paired_tests_quantiles_and_costs_are_reported(trained):
    _, metrics = trained
    written = json.loads(json.dumps(metrics, default=float))
    assert set(written["by_horizon"]) == {"1", "5", "20"}
    assert written["by_horizon"]["5"]["models"] == written["models"]  # the target horizon is the headline
    assert set(written["ic_decay"]["ensemble:rank_average"]) == {"1", "5", "20"}
    assert set(written["paired"]["5"]) == {"ensemble:rank_average vs ridge", "ensemble:rank_average vs seq",
                                           "ensemble:rank_average vs baseline:reversal_5"}
    assert len(written["quantile_returns"]["5"]["ridge"]["excess"]) == 5
    spreads = written["long_short"]
    assert spreads["rebalance_every_bars"] == 5 and spreads["cost_bps_one_way"] == 5.0
    ridge = spreads["scores"]["ridge"]
    assert ridge["net_per_rebalance"] == pytest.approx(ridge["gross_per_rebalance"] - ridge["cost_per_rebalance"])


def test_per_fold_predictions_and_report_are_written(trained):
    out, metrics = trained
    files = sorted((out / "predictions").glob("fold_*.parquet"))
    assert len(files) == len(metrics["folds"])
    frame = pd.read_parquet(files[0])
    assert {"date", "symbol", "label_end", "fwd_ret_5", "model.ridge", "ensemble.stacking", "baseline.reversal_5"} <= set(frame.columns)
    assert (frame["label_end"].dropna() > frame.loc[frame["label_end"].notna(), "date"]).all()
    html = (out / "report.html").read_text()
    for image in ("ic_per_period.png", "cumulative_spread.png", "quantile_returns.png", "ic_decay.png",
                  "feature_importance.png"):
        assert (out / image).stat().st_size > 1000 and f"<h2>{image}</h2>" in html
    # self-contained: the plots are in the page, not beside it
    assert html.count("src='data:image/png;base64,") == 5 and "src='ic_per_period.png'" not in html


def test_model_set_manifest_keeps_the_contract(trained):
    out, _ = trained
    directory = out / "model_set"
    manifest = json.loads((directory / "model_set.json").read_text())
    names = manifest["feature_names"]
    assert manifest["format_version"] == 1 and isinstance(manifest["created_at"], int)
    assert manifest["feature_schema_hash"] == schema_hash(names)
    assert manifest["normalization"] == "zscore" and manifest["clip_z"] == 5.0
    assert manifest["horizon_bars"] == 5 and manifest["horizons"] == [1, 5, 20]
    assert manifest["label_entry_lag_bars"] == 1
    assert manifest["sequence_length"] == 4
    assert manifest["ensemble"]["method"] == "rank_average"
    assert set(manifest["ensemble"]["weights"]) == {"ridge", "seq"}
    assert manifest["ensemble"]["weights"]["ridge"] > 0  # the planted signal: a positive out-of-sample IC
    assert manifest["ensemble_sample"]["rows_from_test_windows"] > 0
    assert set(manifest["ensemble"]["stacking"]) == {"intercept", "coefficients"}
    ridge, seq = manifest["members"]
    assert ridge == {"name": "ridge", "kind": "lightgbm", "input": "tabular", "n_features": len(names), "files": {"model": "ridge/model.json"}}
    assert seq["input"] == "sequence" and seq["sequence_length"] == 4 and seq["files"] == {"weights": "seq/model.json"}
    for entry in manifest["members"]:
        for path in entry["files"].values():
            assert (directory / path).is_file()
    reference = manifest["drift_reference"]
    assert set(names) | {"score:ridge", "score:seq"} == set(reference)
    assert len(reference[names[0]]["edges"]) == 11 and sum(reference[names[0]]["fractions"]) == pytest.approx(1.0)
    assert {"ridge", "seq", "ensemble:rank_average", "baseline:reversal_5"} <= set(manifest["training_metrics"])

    golden = load_file(str(directory / manifest["golden"]))
    assert golden["tabular"].shape == (256, len(names)) and golden["tabular"].dtype == np.float32
    assert golden["sequence"].shape == (256, manifest["sequence_length"], len(names))
    assert golden["score.ridge"].shape == (256,) and golden["score.seq"].dtype == np.float32


def test_golden_scores_are_the_predictions_of_the_saved_files(trained):
    """The stand-ins' saved coefficients applied by hand to the golden rows."""
    out, _ = trained
    directory = out / "model_set"
    manifest = json.loads((directory / "model_set.json").read_text())
    golden = load_file(str(directory / manifest["golden"]))
    ridge = json.loads((directory / "ridge/model.json").read_text())
    seq = json.loads((directory / "seq/model.json").read_text())
    tabular = np.nan_to_num(golden["tabular"].astype(np.float64))
    windows = np.nan_to_num(golden["sequence"].astype(np.float64))[:, -manifest["sequence_length"]:, :]
    expected = {
        "ridge": tabular @ np.asarray(ridge["coefficients"]) + ridge["intercept"],
        "seq": np.hstack([windows[:, -1, :], windows.mean(axis=1)]) @ np.asarray(seq["coefficients"]) + seq["intercept"],
    }
    for name, scores in expected.items():
        assert np.unique(golden[f"score.{name}"]).size > 100, name
        np.testing.assert_allclose(golden[f"score.{name}"], scores, rtol=1e-5, atol=1e-5, err_msg=name)


def test_bench_reports_each_horizon_with_its_acceptance_checks_and_compares_reuse_with_the_naive_loop(bars_file, tmp_path):
    result = bench_train(
        small_settings(), bars_file, tmp_path, progress=False, member_factory=standin_factory,
        member_loader=standin_loader, naive=True,
    )
    assert set(result["horizons"]) == {"5", "1"}
    for horizon, table in result["horizons"].items():
        assert set(table["models"]) == {"ridge", "seq"} and table["default_ensemble"] == "rank_average"
        assert table["test_windows"] >= 2 and table["test_first_date"] < table["test_last_date"]
        checks = table["acceptance"]
        ensemble = table["ensembles"]["rank_average"]
        assert checks["rank_ic"] == ensemble["rank_ic"] and checks["horizon_bars"] == int(horizon)
        assert checks["rank_ic_met"] == (ensemble["rank_ic"] >= 0.015)
        assert checks["above_every_member"] == all(ensemble["rank_ic"] > m["rank_ic"] for m in table["models"].values())
        assert checks["above_the_baseline"] == (ensemble["rank_ic"] > table["baseline"][f"reversal_{horizon}"]["rank_ic"])
        assert set(table["paired"]) == {"ensemble:rank_average vs ridge", "ensemble:rank_average vs seq",
                                        f"ensemble:rank_average vs baseline:reversal_{horizon}"}
    # the planted signal moves returns two days after the shock: the 1-bar label holds it too
    assert result["horizons"]["1"]["models"]["ridge"]["rank_ic"] > 0.05
    naive = result["naive"]
    assert naive["reuse"]["total_s"] > 0 and naive["naive"]["total_s"] > 0 and naive["speedup"] > 0
    # The stand-ins do not warm-start, so slicing one dataset must give exactly
    # what rebuilding it per window gives.
    for section, values in naive["reuse_metrics"].items():
        for name, summary in values.items():
            assert summary["rank_ic"] == pytest.approx(naive["naive_metrics"][section][name]["rank_ic"], abs=1e-12)
    assert (tmp_path / "bench.json").is_file()
