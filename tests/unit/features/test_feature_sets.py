"""Selecting features by group and by name: the schema, its order, its hash,
and a misconfiguration named at start-up."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from signalml.config import FeatureSettings, load_settings
from signalml.contracts import schema_hash
from signalml.errors import ConfigError
from signalml.feature_sets import KBAR, PRICE, US_EQUITY, alpha158_names
from stream.features import FeatureEngine, feature_names

REPO = Path(__file__).resolve().parents[3]


def test_the_default_selection_is_the_classic_thirty():
    names = feature_names(FeatureSettings())
    assert len(names) == 30
    assert names[:4] == ("rsi_5", "rsi_10", "rsi_20", "rsi_60")
    assert names[-3:] == ("alpha_1", "alpha_42", "alpha_101")
    assert feature_names(FeatureSettings(feature_sets=("classic",))) == names


def test_alpha158_is_qlibs_158_in_qlibs_order():
    names = feature_names(FeatureSettings(feature_sets=("alpha158",)))
    assert len(names) == 158 == len(set(names))
    assert names[:13] == KBAR + PRICE
    assert names[13:18] == ("ROC5", "ROC10", "ROC20", "ROC30", "ROC60")
    assert names[-5:] == ("VSUMD5", "VSUMD10", "VSUMD20", "VSUMD30", "VSUMD60")


def test_groups_and_names_expand_in_the_order_given_without_repeats():
    settings = FeatureSettings(feature_sets=("us_equity", "CORD", "KMID", "classic", "CORD5", "mom_12_1"))
    names = feature_names(settings)
    assert names[: len(US_EQUITY)] == US_EQUITY
    assert names[len(US_EQUITY) : len(US_EQUITY) + 6] == ("CORD5", "CORD10", "CORD20", "CORD30", "CORD60", "KMID")
    assert len(names) == len(US_EQUITY) + 6 + 30


def test_exclude_removes_names_and_groups():
    settings = FeatureSettings(feature_sets=("alpha158",), exclude=("RANK", "KMID"))
    names = feature_names(settings)
    assert len(names) == 158 - 5 - 1
    assert "RANK5" not in names and "KMID" not in names and "KLEN" in names


def test_the_windows_of_the_rolling_operators_are_configurable():
    names = feature_names(FeatureSettings(feature_sets=("MA", "CORR"), alpha158_windows=(3, 15)))
    assert names == ("MA3", "MA15", "CORR3", "CORR15")


def test_the_schema_hash_follows_the_selection():
    hashes = {
        selection: schema_hash(list(feature_names(FeatureSettings(feature_sets=selection))))
        for selection in [("classic",), ("alpha158",), ("alpha158", "classic"), ("classic", "alpha158")]
    }
    assert len(set(hashes.values())) == 4


def test_the_engine_computes_exactly_the_selection_in_its_order():
    settings = FeatureSettings(feature_sets=("IMXD20", "alpha_101", "mkt_beta_20", "ROC5"))
    engine = FeatureEngine(settings)
    assert engine.feature_names == ("IMXD20", "alpha_101", "mkt_beta_20", "ROC5")
    assert engine.warmup_bars == 21  # the longest of the selected: mkt_beta_20
    frame = engine.update(1, ["A", "B"], [10, 20], [11, 21], [9, 19], [10.5, 20.5], [100, 200])
    assert frame.values.shape == (2, 4)
    assert frame.column("alpha_101").tolist() == [0.5 / 2.001, 0.5 / 2.001]


@pytest.mark.parametrize(
    "override, named",
    [
        ({"feature_sets": ["alpha158", "ROC7"]}, ["features.feature_sets", "'ROC7'"]),
        ({"feature_sets": ["nonsense"]}, ["features.feature_sets", "classic", "alpha158", "us_equity"]),
        ({"feature_sets": []}, ["features.feature_sets", "at least one"]),
        ({"exclude": ["nope"]}, ["features.exclude", "'nope'"]),
        ({"feature_sets": ["KMID"], "exclude": ["KMID"]}, ["features.exclude", "empty"]),
        ({"alpha158_windows": [5, 1]}, ["features.alpha158_windows", ">= 2"]),
    ],
)
def test_a_bad_selection_fails_at_start_up_naming_the_setting(override, named):
    with pytest.raises(ConfigError) as error:
        load_settings(REPO / "signalml.yaml", environ={}, overrides={"features": override})
    for text in named:
        assert text in str(error.value)


def test_a_selection_can_come_from_the_environment():
    settings = load_settings(REPO / "signalml.yaml", environ={"SIGNALML__FEATURES__FEATURE_SETS": "[alpha158, us_equity]"})
    assert len(feature_names(settings.features)) == 158 + len(US_EQUITY)


def test_every_known_feature_can_be_selected_alone():
    for name in (*alpha158_names(), *US_EQUITY):
        engine = FeatureEngine(FeatureSettings(feature_sets=(name,)))
        values = engine.update(1, ["A"], [10.0], [11.0], [9.0], [10.5], [100.0]).values
        assert values.shape == (1, 1)
        assert np.isnan(values[0, 0]) == (engine.warmup_bars > 1), name
