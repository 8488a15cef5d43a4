"""PSI and the inline feature-drift window."""

import math

import numpy as np
import pytest

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


def discrete_panel(rng, n_windows: int, window_bars: int, names: int = 500):
    """A feature with five values whose shares move with the market's regime
    (as a cross-sectional rank of a 5-bar argmax does: here one regime per
    window), and a continuous one that does not move."""
    rows, dates = [], []
    for t in range(n_windows * window_bars):
        if t % window_bars == 0:
            shares = rng.dirichlet(np.full(5, 3.0))
        rows.append(np.column_stack([rng.choice(np.linspace(-0.4, 0.4, 5), size=names, p=shares),
                                     rng.normal(size=names)]))
        dates.append(np.full(names, t))
    return np.concatenate(rows), np.concatenate(dates)


def test_training_windows_calibrate_the_levels_of_a_column_that_moves_and_leave_a_steady_one_alone():
    from training.drift_reference import calibrate, full_windows, reference_bins, window_psis

    rng = np.random.default_rng(3)
    x, dates = discrete_panel(rng, n_windows=25, window_bars=20)
    windows = full_windows(dates, 20)
    reference = {"discrete": reference_bins(x[:, 0]), "continuous": reference_bins(x[:, 1])}
    calibrated = calibrate(reference, {"discrete": (x[:, 0], windows), "continuous": (x[:, 1], windows)})

    moving = window_psis(x[:, 0], windows, reference["discrete"])
    assert len(moving) == 25 and np.mean(moving >= 0.1) > 0.5  # the training data itself would raise warnings
    assert calibrated["discrete"]["warning_psi"] == pytest.approx(1.1 * moving.max())
    assert calibrated["discrete"]["critical_psi"] == pytest.approx(max(0.25, 2.5 * 1.1 * moving.max()))
    assert "warning_psi" not in calibrated["continuous"]  # well below 0.1: the conventional levels
    assert calibrated["continuous"]["edges"] == reference["continuous"]["edges"]

    # A live stream of 20 windows from the same process: alarms on the
    # discrete column in most windows with the conventional levels, in at most
    # one with the calibrated ones; none ever on the continuous column.
    live, _ = discrete_panel(np.random.default_rng(4), n_windows=20, window_bars=20)
    alarms = {}
    for label, bins in (("calibrated", {k: ReferenceBins(**v) for k, v in calibrated.items()}),
                        ("conventional", {k: ReferenceBins(v["edges"], v["fractions"]) for k, v in calibrated.items()})):
        window = FeatureDriftWindow(bins, ["discrete", "continuous"], window_bars=20, model_set="ms-1")
        events = [e for t in range(400) for e in window.update(t, live[t * 500:(t + 1) * 500])]
        assert {e.subject for e in events} <= {"discrete"}
        alarms[label] = len(events)
    assert alarms["conventional"] >= 10 and alarms["calibrated"] <= 1, alarms

    # A real shift of the discrete column is still reported, against its own level.
    calibrated_bins = {k: ReferenceBins(**v) for k, v in calibrated.items()}
    window = FeatureDriftWindow(calibrated_bins, ["discrete", "continuous"], window_bars=20, model_set="ms-1")
    shifted = live[: 500 * 20].copy()
    shifted[:, 0] = np.where(rng.random(len(shifted)) < 0.9, 0.4, shifted[:, 0])
    found = [e for t in range(20) for e in window.update(t, shifted[t * 500:(t + 1) * 500])]
    assert [(e.subject, e.severity) for e in found] == [("discrete", "critical")], found
    assert found[0].threshold == pytest.approx(calibrated_bins["discrete"].critical_psi)


def test_full_windows_count_distinct_bar_times_and_leave_out_the_incomplete_last_one():
    from training.drift_reference import full_windows

    dates = np.array([5, 5, 7, 9, 9, 11, 12, 12])
    assert full_windows(dates, 2).tolist() == [0, 0, 0, 1, 1, 1, -1, -1]


def test_rows_of_no_full_window_are_left_out_of_the_window_psis():
    from training.drift_reference import full_windows, reference_bins, window_psis

    values = np.concatenate([np.zeros(10), np.ones(3)])  # the last bar time alone is no full window
    dates = np.concatenate([np.repeat([0, 1], 5), np.full(3, 2)])
    windows = full_windows(dates, 2)
    assert windows.tolist() == [0] * 10 + [-1] * 3
    assert window_psis(values, windows, reference_bins(values[:10])).tolist() == [0.0]


def test_the_window_bins_all_columns_at_once_as_bin_counts_bins_each():
    rng = np.random.default_rng(7)
    names = [f"f{j}" for j in range(12)]
    reference = {}
    for j, name in enumerate(names[:-1]):  # the last feature has no reference bins
        k = int(rng.integers(1, 12))  # bins; one bin has no inner edge
        edges = list(np.unique(np.round(rng.normal(size=k + 1), 1)))
        if len(edges) >= 2:
            reference[name] = ReferenceBins(edges, [1.0 / (len(edges) - 1)] * (len(edges) - 1))
    window = FeatureDriftWindow(reference, names, window_bars=100, model_set="ms-1")
    expected = {name: np.zeros(len(bins.edges) - 1) for name, bins in reference.items()}
    for _ in range(3):
        x = np.round(rng.normal(size=(300, len(names))), 1).astype(np.float32)  # many values on an edge
        x[rng.random(x.shape) < 0.05] = np.nan
        x[0, :] = np.inf
        x[1, :] = -np.inf
        window.update(0, x)
        for j, name in enumerate(names):
            if name in reference:
                expected[name] += bin_counts(x[:, j], reference[name].edges)
    assert {name: c.tolist() for name, c in window.counts.items()} == {n: c.tolist() for n, c in expected.items()}
    assert window.state()["counts"] == {n: c.tolist() for n, c in expected.items()}
