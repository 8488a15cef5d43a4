"""PSI and the inline feature-drift window."""

import math

import numpy as np

from signalml.contracts import ReferenceBins
from stream.drift import FeatureDriftWindow, bin_counts, psi


def test_bins_are_open_ended_and_the_last_edge_is_inclusive():
    assert bin_counts(np.array([-9.0, 0.0, 0.5, 1.0, 2.0, 9.0, np.nan]), [0.0, 1.0, 2.0]).tolist() == [3.0, 3.0]


def test_psi_matches_the_formula_and_is_zero_on_the_reference():
    reference = [0.25, 0.25, 0.5]
    assert psi(reference, np.array([25.0, 25.0, 50.0])) == 0.0
    expected = (0.5 - 0.25) * math.log(0.5 / 0.25) + (0.25 - 0.25) * 0 + (0.25 - 0.5) * math.log(0.25 / 0.5)
    assert math.isclose(psi(reference, np.array([2.0, 1.0, 1.0])), expected)
    assert math.isnan(psi(reference, np.zeros(3)))


def test_a_shifted_feature_is_reported_by_name_and_a_stable_one_is_not():
    rng = np.random.default_rng(0)
    edges = list(np.quantile(rng.normal(size=100_000), np.linspace(0, 1, 11)))
    reference = {"stable": ReferenceBins(edges, [0.1] * 10), "shifted": ReferenceBins(edges, [0.1] * 10)}
    window = FeatureDriftWindow(reference, ["stable", "shifted"], window_bars=5, model_set="ms-1")
    events = []
    for ts in range(5):
        x = np.column_stack([rng.normal(size=400), rng.normal(loc=1.0, size=400)])
        events += window.update(ts, x)
    assert [(e.kind, e.subject, e.severity, e.ts) for e in events] == [("feature_psi", "shifted", "critical", 4)]
    assert events[0].statistic > 0.25
