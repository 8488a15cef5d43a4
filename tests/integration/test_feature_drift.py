"""The engine's inline feature drift against the real broker and a private
Triton: shifting the distribution of one bar input (volume) yields
``feature_psi`` events naming the features built on it, and changes no
other feature's findings.

Two engines score the same planted bars (:mod:`tests.integration.planted_world`),
one copy untouched and one whose volumes get a heavy-tailed random factor
from bar time ``SHIFT`` on. Which features are built on volume is read off
the batch features of the two copies (the columns that differ); every other
feature is equal bit for bit in both runs and so are its PSI findings; the
volume features' findings after the shift are the shift's.
"""

from __future__ import annotations

import msgspec
import numpy as np
import pytest

from models.publish import publish
from signalml.contracts import DriftEvent
from signalml.services.triton import TritonServer
from stream.features.batch import compute_features
from stream.replay import replay
from stream.topic_reader import read_topic
from tests.integration.engine_world import delete_created_topics, new_tag, run_engines, with_output
from tests.integration.planted_world import DAY_MS, FLIP, START_MS, bar_times, planted_bars, planted_settings
from training import run_training

pytestmark = pytest.mark.integration

N_BARS, SHIFT = 160, 100
SHIFTED = ("volume_ratio_5", "volume_ratio_10", "volume_ratio_20")


@pytest.fixture(scope="module")
def findings(stack, tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("feature-drift")
    tag = new_tag()
    settings = planted_settings(tmp, tag)
    run_training(settings, "<planted bars>", tmp / "train", progress=False, bars=bar_times(planted_bars(), 0, FLIP))
    triton = TritonServer(settings)
    triton.start()
    try:
        publish(settings, tmp / "train")
        bars = planted_bars(n_bars=N_BARS, seed=12)
        shifted = bars.copy()
        late = shifted["ts"] >= START_MS + SHIFT * DAY_MS
        shifted.loc[late, "volume"] *= np.exp(np.random.default_rng(5).normal(0.0, 2.0, int(late.sum())))
        runs = {"untouched": with_output(settings, "untouched", own_bars=True),
                "shifted": with_output(settings, "shifted", own_bars=True)}
        replay(runs["untouched"], bars, source_file="<planted bars>")
        replay(runs["shifted"], shifted, source_file="<planted bars, volume shifted>")
        run_engines(*runs.values())
    finally:
        triton.stop()
    try:
        events = {name: [msgspec.json.decode(m.value(), type=DriftEvent)
                         for m in read_topic(s.kafka.bootstrap_servers, s.kafka.topics.drift.name)]
                  for name, s in runs.items()}
    finally:
        delete_created_topics(tag)
    before, after = compute_features(bars, settings.features), compute_features(shifted, settings.features)
    names = [c for c in before.columns if c not in ("date", "symbol")]
    on_volume = {c for c in names if not np.array_equal(before[c].to_numpy(), after[c].to_numpy(), equal_nan=True)}
    return {**events, "on_volume": on_volume, "names": names}


def test_shifting_volume_yields_feature_psi_naming_the_volume_features_and_changes_no_other(findings):
    def by_feature(events, keep):
        return sorted((e.ts, e.subject, e.statistic, e.severity) for e in events
                      if e.kind == "feature_psi" and keep(e.subject))

    untouched, shifted, on_volume = findings["untouched"], findings["shifted"], findings["on_volume"]
    assert set(SHIFTED) <= on_volume and len(on_volume) < len(findings["names"])
    shift_ts = START_MS + SHIFT * DAY_MS
    # Every feature not built on volume: the same findings with and without the shift.
    others = lambda subject: subject not in on_volume  # noqa: E731
    assert by_feature(shifted, others) == by_feature(untouched, others)
    # The volume features: the same findings before the shift in both runs;
    # the volume ratios have none when untouched and turn critical once shifted.
    early = lambda e: e.ts < shift_ts  # noqa: E731
    assert by_feature(filter(early, shifted), on_volume.__contains__) == by_feature(filter(early, untouched), on_volume.__contains__)
    assert by_feature(untouched, lambda s: s in SHIFTED) == []
    volume = [e for e in shifted if e.kind == "feature_psi" and e.subject in SHIFTED]
    assert volume and all(e.ts >= shift_ts for e in volume)
    # Each volume ratio is reported once its 20-bar window holds shifted bars, and most turn critical.
    assert {e.subject for e in volume if e.ts >= shift_ts + 20 * DAY_MS} == set(SHIFTED)
    critical = {e.subject for e in volume if e.severity == "critical" and e.ts >= shift_ts + 20 * DAY_MS}
    assert len(critical) >= 2, critical
    assert all(e.statistic >= e.threshold for e in volume)
    # Findings after the shift that the untouched run lacks are all on volume features.
    new = set(by_feature(shifted, lambda s: True)) - set(by_feature(untouched, lambda s: True))
    assert new and {subject for _, subject, _, _ in new} <= on_volume
