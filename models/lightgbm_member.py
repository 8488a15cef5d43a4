"""LightGBM over each date's cross-section: regression (default) or LambdaRank.

* ``objective="regression"``: L2 on the target label, which the training
  pipeline has already made a per-date normal score of the market-neutral
  return (:func:`training.labels.fit_target`). Every name of every date
  counts the same, so the model learns the whole ordering, not its top.
* ``objective="lambdarank"``: each date is one query; the label is
  quantised per date into ``relevance_grades`` quantile grades
  (:func:`models.base.relevance_grades`) with *linear* gains, and the
  truncation covers the whole cross-section (LightGBM's default of 30
  with exponential gains learns only the top 30 names of ~400, and under
  a null of no alpha the top of a ranked list is its most volatile names).

Early stopping watches ``early_stopping_metric`` on the validation dates:
``rank_ic`` (mean daily rank IC of the score with the label) or ``loss``
(L2, or NDCG over the whole list for LambdaRank). Among the rounds run,
the best one at or past ``min_trees`` is kept: a model of one or two trees
gives a handful of distinct scores, which would tie most names.

Saved as LightGBM's text format (``model.txt``) cut at the best iteration,
so the file alone (what Triton serves) scores exactly like
:meth:`LightGBMMember.predict`. ``config.json`` beside it records the
hyper-parameters, feature names, horizons and target.

Walk-forward reuse: none. Each window refits from scratch: continuing to
boost the previous window's trees would keep trees fitted to data that has
left a sliding window and would grow the served model every window.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import lightgbm
import numpy as np

from models.base import (
    Member,
    ModelError,
    TabularData,
    feature_matrix,
    finite_target_rows,
    group_sizes,
    mean_rank_ic,
    read_json,
    relevance_grades,
    spread_rows,
)
from models.rank_ic import RankIC
from signalml.jsonio import write_json

MODEL_FILE = "model.txt"
CONFIG_FILE = "config.json"
OBJECTIVES = ("regression", "lambdarank")
STOPPING_METRICS = ("rank_ic", "loss")


class LightGBMMember(Member):
    """A GBM on the tabular cross-section; ``predict`` returns float64 [n]
    scores (higher = better expected rank)."""

    kind = "lightgbm"
    input = "tabular"

    def __init__(
        self,
        n_features: int,
        *,
        name: str | None = None,
        feature_names: list[str] | None = None,
        objective: str = "regression",
        n_estimators: int = 500,
        learning_rate: float = 0.05,
        num_leaves: int = 15,
        min_child_samples: int = 2000,
        subsample: float = 0.7,
        colsample_bytree: float = 0.5,
        reg_lambda: float = 10.0,
        max_bin: int = 63,
        min_trees: int = 20,
        relevance_grades: int = 5,
        early_stopping_metric: str = "rank_ic",
        early_stopping_rounds: int = 100,
        seed: int = 42,
        num_threads: int | None = None,
        shap_max_rows: int = 5000,
    ):
        super().__init__(n_features, name=name, feature_names=feature_names)
        if objective not in OBJECTIVES:
            raise ModelError(f"{self.name}: objective must be one of {list(OBJECTIVES)}, got {objective!r}")
        if early_stopping_metric not in STOPPING_METRICS:
            raise ModelError(f"{self.name}: early_stopping_metric must be one of {list(STOPPING_METRICS)}")
        self.hyperparameters = {
            "objective": objective,
            "n_estimators": int(n_estimators),
            "learning_rate": float(learning_rate),
            "num_leaves": int(num_leaves),
            "min_child_samples": int(min_child_samples),
            "subsample": float(subsample),
            "colsample_bytree": float(colsample_bytree),
            "reg_lambda": float(reg_lambda),
            "max_bin": int(max_bin),
            "min_trees": int(min_trees),
            "relevance_grades": int(relevance_grades),
            "early_stopping_metric": early_stopping_metric,
            "early_stopping_rounds": int(early_stopping_rounds),
            "seed": int(seed),
        }
        self.num_threads = int(num_threads or os.cpu_count() or 1)
        self.shap_max_rows = int(shap_max_rows)
        self.booster: lightgbm.Booster | None = None
        # Trees used by predict: the best iteration after fit, 0 (= all
        # trees of the file, already cut at the best) after load.
        self.num_iteration = 0
        self.horizons: tuple[int, ...] = ()
        self.target = 0

    # ------------------------------------------------------------ training

    def lightgbm_params(self, largest_date: int = 1) -> dict:
        """The exact parameters given to ``lightgbm.train`` (``largest_date``:
        the most rows of one date, the LambdaRank truncation)."""
        h = self.hyperparameters
        params = {
            "learning_rate": h["learning_rate"],
            "num_leaves": h["num_leaves"],
            "min_data_in_leaf": h["min_child_samples"],
            "lambda_l2": h["reg_lambda"],
            "max_bin": h["max_bin"],
            "bagging_fraction": h["subsample"],
            "bagging_freq": 1 if h["subsample"] < 1.0 else 0,
            "feature_fraction": h["colsample_bytree"],
            "seed": h["seed"],
            "deterministic": True,
            "force_col_wise": True,  # no timing-dependent layout choice: reproducible
            "num_threads": self.num_threads,
            "verbose": -1,
        }
        if h["objective"] == "regression":
            params.update(objective="regression", metric="l2")
        else:
            params.update(
                objective="lambdarank",
                metric="ndcg",
                ndcg_eval_at=[int(largest_date)],
                lambdarank_truncation_level=int(largest_date),
                label_gain=[float(g) for g in range(h["relevance_grades"])],
            )
        if h["early_stopping_metric"] == "rank_ic":
            params["metric"] = "None"  # only the rank IC below is evaluated
        return params

    def _dataset(self, data: TabularData, reference: lightgbm.Dataset | None) -> tuple[lightgbm.Dataset, TabularData]:
        self._check_n_features(data.X.shape[1])
        known = finite_target_rows(data.y, data.target)
        if not known.any():
            raise ModelError(f"{self.name}: no row with a known target")
        if not known.all():
            data = TabularData(data.X[known], data.y[known], data.groups[known], data.horizons, data.target)
        ranking = self.hyperparameters["objective"] == "lambdarank"
        label = (
            relevance_grades(data.target_returns, data.groups, self.hyperparameters["relevance_grades"])
            if ranking
            else data.target_returns
        )
        dataset = lightgbm.Dataset(
            feature_matrix(data),
            label=label,
            group=group_sizes(data.groups) if ranking else None,
            feature_name=[_lightgbm_name(n) for n in self.resolved_feature_names()],
            reference=reference,
            params={"verbose": -1, "seed": self.hyperparameters["seed"], "num_threads": self.num_threads,
                    "max_bin": self.hyperparameters["max_bin"]},
            free_raw_data=True,
        )
        return dataset, data

    def fit(self, train: TabularData, valid: TabularData) -> dict:
        started = time.perf_counter()
        train_set, train = self._dataset(train, None)
        valid_set, valid = self._dataset(valid, train_set)
        h = self.hyperparameters
        largest = int(max(group_sizes(train.groups).max(), group_sizes(valid.groups).max()))
        history: dict = {}
        feval, metric = None, _metric_name(self.lightgbm_params(largest))
        if h["early_stopping_metric"] == "rank_ic":
            rank_ic = RankIC(valid.target_returns, valid.groups)
            feval, metric = (lambda preds, _: ("rank_ic", rank_ic(preds), True)), "rank_ic"
        booster = lightgbm.train(
            self.lightgbm_params(largest),
            train_set,
            num_boost_round=h["n_estimators"],
            valid_sets=[valid_set],
            valid_names=["valid"],
            feval=feval,
            # LightGBM would otherwise cut the returned booster at early
            # stopping's own best round, before the floor of min_trees.
            keep_training_booster=True,
            callbacks=[
                # patience of at least min_trees: the floor of trees is always grown
                lightgbm.early_stopping(
                    max(h["early_stopping_rounds"], h["min_trees"]), first_metric_only=True, verbose=False
                ),
                lightgbm.record_evaluation(history),
            ],
        )
        booster.free_dataset()  # kept for training only; the trees stay
        curve = np.asarray(history["valid"][metric], dtype=np.float64)
        higher_is_better = metric in ("rank_ic",) or metric.startswith("ndcg")
        self.booster = booster
        self.num_iteration = best_round(curve, higher_is_better, h["min_trees"])
        self.horizons, self.target = tuple(train.horizons), int(train.target)
        return {
            "best_iteration": self.num_iteration,
            "iterations_run": len(curve),
            "metric": metric,
            "valid_metric": float(curve[self.num_iteration - 1]),
            "valid_rank_ic": mean_rank_ic(self.predict(valid), valid.target_returns, valid.groups),
            "n_train_rows": len(train),
            "seconds": time.perf_counter() - started,
            "warm": False,
        }

    # ------------------------------------------------------------ scoring

    def _require_booster(self) -> lightgbm.Booster:
        if self.booster is None:
            raise ModelError(f"{self.name}: not fitted")
        return self.booster

    def predict(self, data: TabularData | np.ndarray) -> np.ndarray:
        X = feature_matrix(data)
        self._check_n_features(X.shape[1])
        scores = self._require_booster().predict(X, num_iteration=self.num_iteration, num_threads=self.num_threads)
        return np.asarray(scores, dtype=np.float64)

    def importance(self, data: TabularData | np.ndarray) -> dict[str, float]:
        """Mean |SHAP| (LightGBM ``pred_contrib``) per feature over at most
        ``shap_max_rows`` evenly spaced rows of ``data``."""
        X = feature_matrix(data)
        X = X[spread_rows(len(X), self.shap_max_rows)]
        contributions = self._require_booster().predict(
            X, num_iteration=self.num_iteration, pred_contrib=True, num_threads=self.num_threads
        )
        mean_abs = np.abs(np.asarray(contributions)[:, : self.n_features]).mean(axis=0)
        return {name: float(v) for name, v in zip(self.resolved_feature_names(), mean_abs)}

    # ------------------------------------------------------------ files

    def save(self, directory: Path) -> dict[str, str]:
        booster = self._require_booster()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        booster.save_model(str(directory / MODEL_FILE), num_iteration=self.num_iteration)
        write_json(
            directory / CONFIG_FILE,
            {
                "kind": self.kind,
                "name": self.name,
                "n_features": self.n_features,
                "feature_names": self.resolved_feature_names(),
                "hyperparameters": self.hyperparameters,
                "best_iteration": self.num_iteration,
                "horizons": list(self.horizons),
                "target": self.target,
            },
            sort_keys=True,
        )
        return {"model": MODEL_FILE, "config": CONFIG_FILE}

    @classmethod
    def load(cls, directory: Path, files: dict[str, str]) -> "LightGBMMember":
        directory = Path(directory)
        config = read_json(directory / files.get("config", CONFIG_FILE))
        member = cls(
            config["n_features"], name=config["name"], feature_names=config["feature_names"], **config["hyperparameters"]
        )
        try:
            member.booster = lightgbm.Booster(model_file=str(directory / files.get("model", MODEL_FILE)))
        except lightgbm.basic.LightGBMError as exc:
            raise ModelError(f"cannot load LightGBM model from {directory}: {exc}") from None
        member.num_iteration = 0  # the file holds exactly the best trees
        member.horizons, member.target = tuple(config["horizons"]), int(config["target"])
        return member


def best_round(curve: np.ndarray, higher_is_better: bool, min_trees: int) -> int:
    """1-based round of the best validation value among rounds
    ``min_trees`` .. ``len(curve)`` (the first of equals; all rounds when
    fewer were run)."""
    curve = np.asarray(curve, dtype=np.float64)
    first = min(max(int(min_trees), 1), len(curve))
    tail = curve[first - 1 :] if higher_is_better else -curve[first - 1 :]
    tail = np.where(np.isfinite(tail), tail, -np.inf)
    return first + int(np.argmax(tail))


def _metric_name(params: dict) -> str:
    if params["objective"] == "regression":
        return "l2"
    return f"ndcg@{params['ndcg_eval_at'][0]}"


def _lightgbm_name(name: str) -> str:
    """LightGBM rejects JSON special characters in feature names."""
    return re.sub(r"[^A-Za-z0-9_.\-]", "_", name)
