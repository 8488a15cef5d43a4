"""The engine's inline feature drift against the real broker and a private
Triton: shifting the distribution of one bar input (volume) yields
``feature_psi`` events naming the features built on it, and changes no
other feature's findings.

Two engines score the same planted bars (:mod:`tests.integration.planted_world`),
one copy untouched and one whose volumes get a heavy-tailed random factor
from bar time ``SHIFT`` on. Volume feeds only the ``volume_ratio_*``
features, so every other feature is equal bit for bit in both runs and so
are its PSI findings; the findings about ``volume_ratio_*`` are the shift's.
"""

from __future__ import annotations

import msgspec
import numpy as np
import pytest

from models.publish import publish
from signalml.contracts import DriftEvent
from signalml.services.triton import TritonServer
from stream.replay import replay
from stream.topic_reader import read_topic
from tests.integration.engine_world import new_tag, run_engines, with_output
from tests.integration.planted_world import DAY_MS, FLIP, START_MS, bar_times, planted_bars, planted_settings
from training import run_training

pytestmark = pytest.mark.integration

N_BARS, SHIFT = 160, 100
SHIFTED = ("volume_ratio_5", "volume_ratio_10", "volume_ratio_20")


@pytest.fixture(scope="module")
def findings(stack, tmp_path_factory) -> dict[str, list[DriftEvent]]:
    tmp = tmp_path_factory.mktemp("feature-drift")
    settings = planted_settings(tmp, new_tag())
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
    return {name: [msgspec.json.decode(m.value(), type=DriftEvent)
                   for m in read_topic(s.kafka.bootstrap_servers, s.kafka.topics.drift.name)]
            for name, s in runs.items()}


def test_shifting_volume_yields_feature_psi_naming_the_volume_features_and_changes_no_other(findings):
    def by_feature(events, keep):
        return sorted((e.ts, e.subject, e.statistic, e.severity) for e in events
                      if e.kind == "feature_psi" and keep(e.subject))

    untouched, shifted = findings["untouched"], findings["shifted"]
    shift_ts = START_MS + SHIFT * DAY_MS
    # Every other feature: the same findings with and without the shift.
    others = lambda subject: subject not in SHIFTED  # noqa: E731
    assert by_feature(shifted, others) == by_feature(untouched, others)
    # The volume features: nothing before the shift in either run, nothing
    # after it when untouched, critical once shifted.
    assert by_feature(untouched, lambda s: s in SHIFTED) == []
    volume = [e for e in shifted if e.kind == "feature_psi" and e.subject in SHIFTED]
    assert volume and all(e.ts >= shift_ts for e in volume)
    critical = {e.subject for e in volume if e.severity == "critical" and e.ts >= shift_ts + 20 * DAY_MS}
    assert critical == set(SHIFTED)
    assert all(e.statistic >= e.threshold for e in volume)
