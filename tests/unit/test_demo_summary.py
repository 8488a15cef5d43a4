"""The demo's closing summary says plainly how many matured cross-sections
the monitor did not evaluate, and why."""

from __future__ import annotations

from signalml.demo.view import summary_lines


def summary(evaluated: int, matured: int, why: str | None) -> dict:
    return {
        "elapsed_s": 100.0, "report": "r.html", "training_dates": ("2015-01-02", "2019-06-28"),
        "training_summary": "ok", "model_set": "ms-1", "members": {"lightgbm": 1},
        "tail": {"first": "2019-07-01", "last": "2019-12-31", "bar_times": 120, "bars": 60_000, "speed": 20.0},
        "tail_bars_per_s": 1500.0, "signals": 60_000, "complete_cross_sections": 120,
        "latency_s": {"p50_at_most": 0.05, "p99_at_most": 0.1},
        "monitor": {"evaluated": evaluated, "matured": matured, "not_evaluated": matured - evaluated,
                    "why_not": why, "rolling_rank_ic": {"ensemble": 0.01}, "training_rank_ic": {"ensemble": 0.02}},
        "drift_events": {}, "logs": [], "out": "out", "stack_stopped": [],
    }


def test_a_monitor_that_evaluated_every_matured_cross_section_gets_one_line():
    lines = [line for line in summary_lines(summary(115, 115, None)) if "cross-sections evaluated" in line
             or "NOT evaluated" in line]
    assert lines == ["  monitor      115 of 115 matured cross-sections evaluated; rolling rank IC of the ensemble "
                     "+0.010 (training +0.020)"]


def test_a_lagging_monitor_is_named_with_how_many_were_not_evaluated_and_why():
    text = "\n".join(summary_lines(summary(28, 115, "the monitor evaluated nothing for 30 s; see monitor.log")))
    assert "28 of 115 matured cross-sections evaluated" in text
    assert "87 NOT evaluated: the monitor evaluated nothing for 30 s; see monitor.log" in text
