"""``signalml predict`` without services: bars to cross-sections through the
engine's validator, the warm-up rule, the output table, and the errors for a
model set that is not there."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.publish import ModelSetStore
from signalml.config import load_settings
from signalml.contracts import ManifestMember, ModelSetManifest, schema_hash
from bench.e2e import synthetic_bars
from stream.model_set import ModelSet
from stream.pipeline import CrossSectionPipeline
from stream.predict import (
    PredictError,
    PredictSummary,
    output_format,
    resolve_manifest,
    score_cross_sections,
    signals_frame,
    validated_cross_sections,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture()
def config(tmp_path):
    return load_settings(REPO / "signalml.yaml", overrides={
        "triton": {"repository": str(tmp_path / "repo")}, "serving": {"warmup_bars": 3}})


def manifest_of(config, model_set: str = "ms-20260101000000-0123abcd") -> ModelSetManifest:
    names = CrossSectionPipeline(config).names
    return ModelSetManifest(model_set=model_set, created_at=0,
                            members=[ManifestMember("lightgbm", 1, "lightgbm", "tabular"),
                                     ManifestMember("xgboost", 2, "xgboost", "tabular")],
                            ensemble_method="average", feature_names=names,
                            feature_schema_hash=schema_hash(names), horizon_bars=5)


def test_valid_bars_form_one_cross_section_per_bar_time_sorted_by_symbol_and_rejects_are_counted():
    frame = synthetic_bars(4, 3).sort_values(["ts", "symbol"], ascending=[True, False]).reset_index(drop=True)
    frame.loc[1, "close"] = -1.0  # non_positive_price
    frame = pd.concat([frame, frame.iloc[[5]]], ignore_index=True)  # a bar of an earlier bar time, again
    summary = PredictSummary("f", "o", "m")
    sections = validated_cross_sections(frame, summary)
    assert [xs.ts for xs in sections] == sorted(set(frame["ts"]))
    assert [len(xs.bars) for xs in sections] == [3, 4, 4]
    assert all(xs.symbols == sorted(xs.symbols) for xs in sections)
    assert dict(summary.rejected) == {"non_positive_price": 1, "out_of_order_ts": 1}
    assert summary.rows == 13 and summary.accepted == 11


def test_cross_sections_are_scored_once_more_bar_times_than_the_warm_up_have_been_prepared(config):
    frame = synthetic_bars(5, 6)
    sections = validated_cross_sections(frame, PredictSummary("f", "o", "m"))
    manifest = manifest_of(config)
    calls = []

    def scorer(model_set, x, sequences):
        calls.append(x.shape)
        return {"lightgbm": x[:, 0].astype(np.float64), "xgboost": -x[:, 1].astype(np.float64)}

    scored = list(score_cross_sections(config, sections, ModelSet.of(manifest, CrossSectionPipeline(config).names),
                                       scorer))
    assert len(scored) == 6 - 3 and calls == [(5, len(manifest.feature_names))] * 3
    assert [signals[0].ts for signals in scored] == sorted(set(frame["ts"]))[3:]
    table = signals_frame([s for signals in scored for s in signals], ["lightgbm", "xgboost"])
    assert list(table.columns) == ["ts", "symbol", "score", "rank", "member_lightgbm", "member_xgboost",
                                   "model_set", "cross_section_size", "horizon_bars"]
    assert len(table) == 15 and (table["cross_section_size"] == 5).all()
    np.testing.assert_array_equal(table["member_lightgbm"], [s.members["lightgbm"] for signals in scored for s in signals])


def test_without_a_published_model_set_the_error_says_to_publish(config):
    with pytest.raises(PredictError, match="no model set is published"):
        resolve_manifest(config)


def test_an_unknown_model_set_lists_the_stored_ones(config):
    store = ModelSetStore(config.triton_repository)
    for model_set in ("ms-20260101000000-0123abcd", "ms-20260102000000-0123abcd"):
        store.write(manifest_of(config, model_set))
    store.set_current("ms-20260102000000-0123abcd", "publish")
    assert resolve_manifest(config).model_set == "ms-20260102000000-0123abcd"
    assert resolve_manifest(config, "ms-20260101000000-0123abcd").model_set == "ms-20260101000000-0123abcd"
    with pytest.raises(PredictError, match="stored model sets: ms-20260101000000-0123abcd, ms-20260102000000-0123abcd"):
        resolve_manifest(config, "ms-20990101000000-0123abcd")


@pytest.mark.parametrize("name, fmt", [("a.parquet", "parquet"), ("a.PQ", "parquet"), ("a.csv", "csv")])
def test_the_output_format_follows_the_extension(name, fmt):
    assert output_format(Path(name)) == fmt


def test_another_extension_is_refused():
    with pytest.raises(PredictError, match="use .parquet or .csv"):
        output_format(Path("signals.json"))
