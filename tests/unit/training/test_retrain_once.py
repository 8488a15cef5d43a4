"""One retrain, in-process, from a bars file (no broker, no Triton, nothing
in service yet): the walk-forward runs on the history, the candidate is
judged on its out-of-sample scores of the last held-out bar times, and the
decision is recorded. Publishing is the publisher's (tested against a real
Triton in the integration tests); here it is only observed."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from signalml.config import load_settings
from training.retrain import RetrainLoop

from .conftest import SMALL_TRAINING
from .synthetic import standin_factory, standin_loader, synthetic_bars

EVALUATION_BARS = 60


def loop_settings(tmp_path, **retrain):
    return load_settings(environ={}, overrides={
        "training": SMALL_TRAINING,
        "paths": {"state_dir": str(tmp_path / "state")},
        "triton": {"repository": str(tmp_path / "repo")},
        "retrain": {"history_store": None, "history_bars": 400, "evaluation_bars": EVALUATION_BARS, "http_port": 0,
                    "out_dir": str(tmp_path / "retrain"), **retrain},
    })


def run_once(tmp_path, signal: float, monkeypatch, **retrain) -> tuple[dict, list]:
    bars_file = tmp_path / "bars.parquet"
    synthetic_bars(n_symbols=20, n_days=320, signal=signal, seed=6).to_parquet(bars_file)
    published = []
    monkeypatch.setattr("models.publish.publish", lambda settings, directory: published.append(directory) or
                        type("Manifest", (), {"model_set": "ms-test"})())
    loop = RetrainLoop(loop_settings(tmp_path, **retrain), bars_path=str(bars_file),
                       member_factory=standin_factory, member_loader=standin_loader)
    return loop.retrain(reason="test"), published


def held_out_rank_ic(candidate_dir: str) -> tuple[float, int]:
    """Independently: the default ensemble's mean Spearman IC over the last
    EVALUATION_BARS labelled bars of the walk-forward's test predictions."""
    frame = pd.concat([pd.read_parquet(p) for p in sorted((__import__("pathlib").Path(candidate_dir) / "predictions")
                                                          .glob("*.parquet"))])
    frame = frame.dropna(subset=["fwd_ret_5"])
    bars = np.sort(frame["bar"].unique())[-EVALUATION_BARS:]
    values = [spearmanr(g["ensemble.rank_average"], g["fwd_ret_5"]).statistic
              for _, g in frame[frame["bar"].isin(bars)].groupby("bar")]
    return float(np.mean(values)), len(values)


def test_a_candidate_with_a_real_signal_is_published_and_the_decision_recorded(tmp_path, monkeypatch):
    decision, published = run_once(tmp_path, signal=0.5, monkeypatch=monkeypatch)
    assert decision["outcome"] == "published", decision
    assert published and str(published[0]) == decision["candidate_dir"]
    assert decision["current"] is None and decision["evaluation_bars"] == EVALUATION_BARS
    expected, n_bars = held_out_rank_ic(decision["candidate_dir"])
    assert n_bars == EVALUATION_BARS
    assert decision["candidate_rank_ic"] == pytest.approx(expected, abs=1e-12)
    assert decision["candidate_t_stat"] > 1.0
    recorded = [json.loads(line) for line in (tmp_path / "state" / "retrain" / "decisions.jsonl").read_text().splitlines()]
    assert recorded == [json.loads(json.dumps(decision, default=str))]


def test_a_candidate_without_a_signal_is_refused_with_the_reason(tmp_path, monkeypatch):
    decision, published = run_once(tmp_path, signal=0.0, monkeypatch=monkeypatch, min_candidate_t=2.0)
    assert decision["outcome"] == "refused" and not published
    assert "retrain.min_candidate_t 2.0" in decision["refusal"] or "is not positive" in decision["refusal"]
    expected, _ = held_out_rank_ic(decision["candidate_dir"])
    assert decision["candidate_rank_ic"] == pytest.approx(expected, abs=1e-12)
