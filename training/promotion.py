"""The promotion gate of a retrain: is the candidate worth serving?

The candidate is judged on the last ``retrain.evaluation_bars`` labelled
bar times of the history (a year by default: over 63 bars the standard
error of a mean rank IC, ~0.04, exceeds any plausible gain). Its scores
there are the walk-forward's out-of-sample scores (each made by a model fit
only on bars before that test window), so the procedure that produced the
candidate is judged where it had not looked.

The set in service is scored on the same rows (through Triton, as served),
but only where it is out of sample too: rows from the last close its own
training labels read (``training_window.last_label_end`` of its manifest)
on. On those bar times the two daily rank IC series are compared with a
paired test (:func:`training.metrics.paired_test`): the day-to-day noise
both share cancels, which is what gives a year of data its power.

:func:`decide` publishes when

* the candidate's mean rank IC is positive with an overlap-corrected
  t-statistic of at least ``min_candidate_t``, and
* where at least ``min_comparable_bars`` bar times are out of sample for
  both, the paired mean difference is at least ``min_improvement`` with a
  t-statistic of at least ``min_paired_t``;

otherwise it says why not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from training.metrics import daily_metrics, paired_test, summarize


@dataclass
class Evaluation:
    """What the gate reads; every figure also goes into the decision record."""

    evaluation_bars: int
    evaluation_rows: int
    candidate: dict  # summary of the candidate's daily rank IC on the holdout
    current: dict | None = None  # the set in service on its comparable rows
    paired: dict | None = None  # candidate − current on the comparable rows
    comparable_bars: int = 0
    notes: list[str] = field(default_factory=list)

    def as_record(self) -> dict:
        return {
            "evaluation_bars": self.evaluation_bars,
            "evaluation_rows": self.evaluation_rows,
            "candidate_rank_ic": self.candidate.get("rank_ic"),
            "candidate_t_stat": self.candidate.get("rank_ic_t_stat"),
            "current_rank_ic": None if self.current is None else self.current.get("rank_ic"),
            "comparable_bars": self.comparable_bars,
            "paired": self.paired,
            "notes": list(self.notes),
        }


def holdout_bars(bars: np.ndarray, labelled: np.ndarray, evaluation_bars: int) -> np.ndarray:
    """The last ``evaluation_bars`` distinct bar indexes that have a label."""
    return np.unique(np.asarray(bars)[np.asarray(labelled, dtype=bool)])[-int(evaluation_bars):]


def daily_rank_ic(score, forward_return, groups) -> pd.Series:
    return daily_metrics(np.asarray(score), np.asarray(forward_return), np.asarray(groups)).rank_ic


def evaluate(
    candidate_score: np.ndarray,
    forward_return: np.ndarray,
    groups: np.ndarray,
    *,
    horizon_bars: int,
    evaluation_bars: int,
    current_score: np.ndarray | None = None,
    comparable: np.ndarray | None = None,
) -> Evaluation:
    """Figures of the holdout rows (aligned arrays; ``groups`` = bar).
    ``current_score`` is the set in service's score of the same rows and
    ``comparable`` the rows where it is out of sample."""
    candidate = summarize(daily_metrics(candidate_score, forward_return, groups), overlap_bars=horizon_bars)
    evaluation = Evaluation(int(evaluation_bars), int(np.isfinite(forward_return).sum()), candidate)
    if current_score is None:
        return evaluation
    comparable = np.ones(len(groups), dtype=bool) if comparable is None else np.asarray(comparable, dtype=bool)
    rows = comparable & np.isfinite(current_score)
    evaluation.comparable_bars = int(len(np.unique(np.asarray(groups)[rows])))
    if not rows.any():
        evaluation.notes.append("the set in service was trained on every held-out bar time: no comparable rows")
        return evaluation
    evaluation.current = summarize(daily_metrics(current_score[rows], forward_return[rows], groups[rows]),
                                   overlap_bars=horizon_bars)
    evaluation.paired = paired_test(
        daily_rank_ic(candidate_score[rows], forward_return[rows], groups[rows]),
        daily_rank_ic(current_score[rows], forward_return[rows], groups[rows]),
        horizon_bars,
    )
    return evaluation


def decide(evaluation: Evaluation, cfg) -> str | None:
    """None to publish, else the reason not to (``cfg``: ``settings.retrain``)."""
    rank_ic, t = evaluation.candidate.get("rank_ic"), evaluation.candidate.get("rank_ic_t_stat")
    if rank_ic is None or not math.isfinite(rank_ic):
        return "the candidate has no rank IC on the held-out bar times"
    if rank_ic <= 0:
        return f"the candidate's held-out rank IC {rank_ic:.4f} is not positive"
    if t is None or not math.isfinite(t) or t < cfg.min_candidate_t:
        return (f"the candidate's held-out rank IC {rank_ic:.4f} has t {t:.2f}, below "
                f"retrain.min_candidate_t {cfg.min_candidate_t}")
    paired = evaluation.paired
    if paired is None or evaluation.comparable_bars < cfg.min_comparable_bars:
        return None  # nothing in service, or no fair comparison: the candidate stands on its own
    if paired["mean_difference"] < cfg.min_improvement or not paired["t_stat"] >= cfg.min_paired_t:
        return (f"the candidate does not beat the current set on {evaluation.comparable_bars} comparable bar times: "
                f"paired rank IC difference {paired['mean_difference']:+.4f} (t {paired['t_stat']:.2f}); needs "
                f"retrain.min_improvement {cfg.min_improvement} and retrain.min_paired_t {cfg.min_paired_t}")
    return None
