"""LightGBM LambdaRank over each date's cross-section.

LambdaRank needs integer relevance, so the target forward return is
quantised per date into ``relevance_grades`` quantile grades
(:func:`models.base.relevance_grades`); each date is one query. Early
stopping watches NDCG@``ndcg_at`` on the validation dates.

Saved as LightGBM's text format (``model.txt``) cut at the best iteration,
so the file alone (what Triton serves) scores exactly like
:meth:`LightGBMRanker.predict`. ``config.json`` beside it records the
hyper-parameters, feature names, horizons and target.

Walk-forward reuse: none. Each window refits from scratch: continuing to
boost the previous window's trees would keep trees fitted to data that
has left a sliding window and would grow the served model every window,
and a refit costs ~10 s (see the report in ``fit``).
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
    write_json,
)

MODEL_FILE = "model.txt"
CONFIG_FILE = "config.json"


class LightGBMRanker(Member):
    """LambdaRank GBM; ``predict`` returns float64 [n] scores (higher = better rank)."""

    kind = "lightgbm"
    input = "tabular"

    def __init__(
        self,
        n_features: int,
        *,
        name: str | None = None,
        feature_names: list[str] | None = None,
        n_estimators: int = 300,
        learning_rate: float = 0.05,
        num_leaves: int = 31,
        min_child_samples: int = 200,
        subsample: float = 0.8,
        colsample_bytree: float = 0.8,
        relevance_grades: int = 5,
        early_stopping_rounds: int = 30,
        ndcg_at: int = 50,
        seed: int = 42,
        num_threads: int | None = None,
        shap_max_rows: int = 5000,
    ):
        super().__init__(n_features, name=name, feature_names=feature_names)
        self.hyperparameters = {
            "n_estimators": int(n_estimators),
            "learning_rate": float(learning_rate),
            "num_leaves": int(num_leaves),
            "min_child_samples": int(min_child_samples),
            "subsample": float(subsample),
            "colsample_bytree": float(colsample_bytree),
            "relevance_grades": int(relevance_grades),
            "early_stopping_rounds": int(early_stopping_rounds),
            "ndcg_at": int(ndcg_at),
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

    def lightgbm_params(self) -> dict:
        """The exact parameters given to ``lightgbm.train``."""
        h = self.hyperparameters
        return {
            "objective": "lambdarank",
            "metric": "ndcg",
            "ndcg_eval_at": [h["ndcg_at"]],
            "label_gain": [float(2**g - 1) for g in range(h["relevance_grades"])],
            "learning_rate": h["learning_rate"],
            "num_leaves": h["num_leaves"],
            "min_data_in_leaf": h["min_child_samples"],
            "bagging_fraction": h["subsample"],
            "bagging_freq": 1 if h["subsample"] < 1.0 else 0,
            "feature_fraction": h["colsample_bytree"],
            "seed": h["seed"],
            "deterministic": True,
            "force_col_wise": True,  # no timing-dependent layout choice: reproducible
            "num_threads": self.num_threads,
            "verbose": -1,
        }

    def _dataset(self, data: TabularData, reference: lightgbm.Dataset | None) -> tuple[lightgbm.Dataset, TabularData]:
        self._check_n_features(data.X.shape[1])
        known = finite_target_rows(data.y, data.target)
        if not known.any():
            raise ModelError(f"{self.name}: no row with a known target")
        if not known.all():
            data = TabularData(data.X[known], data.y[known], data.groups[known], data.horizons, data.target)
        grades = relevance_grades(data.target_returns, data.groups, self.hyperparameters["relevance_grades"])
        dataset = lightgbm.Dataset(
            feature_matrix(data),
            label=grades,
            group=group_sizes(data.groups),
            feature_name=[_lightgbm_name(n) for n in self.resolved_feature_names()],
            reference=reference,
            params={"verbose": -1, "seed": self.hyperparameters["seed"], "num_threads": self.num_threads},
            free_raw_data=True,
        )
        return dataset, data

    def fit(self, train: TabularData, valid: TabularData) -> dict:
        started = time.perf_counter()
        train_set, train = self._dataset(train, None)
        valid_set, valid = self._dataset(valid, train_set)
        h = self.hyperparameters
        history: dict = {}
        booster = lightgbm.train(
            self.lightgbm_params(),
            train_set,
            num_boost_round=h["n_estimators"],
            valid_sets=[valid_set],
            valid_names=["valid"],
            callbacks=[
                lightgbm.early_stopping(h["early_stopping_rounds"], first_metric_only=True, verbose=False),
                lightgbm.record_evaluation(history),
            ],
        )
        self.booster = booster
        self.num_iteration = int(booster.best_iteration or booster.current_iteration())
        self.horizons, self.target = tuple(train.horizons), int(train.target)
        metric = f"ndcg@{h['ndcg_at']}"
        curve = history["valid"][metric]
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
        )
        return {"model": MODEL_FILE, "config": CONFIG_FILE}

    @classmethod
    def load(cls, directory: Path, files: dict[str, str]) -> "LightGBMRanker":
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


def _lightgbm_name(name: str) -> str:
    """LightGBM rejects JSON special characters in feature names."""
    return re.sub(r"[^A-Za-z0-9_.\-]", "_", name)
