"""XGBoost over each date's cross-section: regression (default) or pairwise ranking.

* ``objective="regression"``: squared error on the target label (the
  per-date normal score of the market-neutral return: see
  :func:`training.labels.fit_target`).
* ``objective="rank_pairwise"``: ``rank:pairwise`` with ``qid`` = date on
  per-date quantile grades (:func:`models.base.relevance_grades`). Pairs
  are drawn uniformly over the whole cross-section
  (``lambdarank_pair_method="mean"``), not from its top k (XGBoost's
  ``topk`` default learns only the head of the list); pairwise losses
  weigh every pair alike, so gains are linear in rank by construction.

Early stopping watches ``early_stopping_metric`` on the validation dates
(``rank_ic``: mean daily rank IC; ``loss``: RMSE, or NDCG for ranking);
the best round at or past ``min_trees`` is kept (see
:mod:`models.lightgbm_member`).

Saved as XGBoost's UBJSON (``model.ubj``, the file the Triton backend
reads by default; ``model_format="json"`` writes ``model.json``), cut at the
best iteration so the file alone scores exactly like
:meth:`XGBoostMember.predict`. Trains on CUDA when torch sees a GPU and
this XGBoost build has CUDA (``xgboost``, not ``xgboost-cpu``:
``device="cuda"``), otherwise on the CPU with ``nthread`` threads.

Walk-forward reuse: none, each window refits (see ``models.lightgbm_member``).
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import numpy as np
import xgboost

from models.base import (
    Member,
    ModelError,
    TabularData,
    cuda_available,
    feature_matrix,
    finite_target_rows,
    mean_rank_ic,
    read_json,
    relevance_grades,
    spread_rows,
)
from models.lightgbm_member import STOPPING_METRICS, best_round
from models.rank_ic import RankIC
from signalml.jsonio import write_json

CONFIG_FILE = "config.json"
MODEL_FILES = {"ubj": "model.ubj", "json": "model.json"}
OBJECTIVES = ("regression", "rank_pairwise")
PAIRS_PER_SAMPLE = 8


class XGBoostMember(Member):
    """A GBM on the tabular cross-section; ``predict`` returns float64 [n] scores."""

    kind = "xgboost"
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
        max_depth: int = 4,
        min_child_weight: float = 2000.0,
        subsample: float = 0.7,
        colsample_bytree: float = 0.5,
        reg_lambda: float = 10.0,
        max_bin: int = 63,
        min_trees: int = 20,
        early_stopping_metric: str = "rank_ic",
        early_stopping_rounds: int = 100,
        relevance_grades: int = 5,
        seed: int = 42,
        num_threads: int | None = None,
        device: str | None = None,
        model_format: str = "ubj",
        shap_max_rows: int = 5000,
    ):
        super().__init__(n_features, name=name, feature_names=feature_names)
        if model_format not in MODEL_FILES:
            raise ModelError(f"{self.name}: model_format must be one of {sorted(MODEL_FILES)}, got {model_format!r}")
        if objective not in OBJECTIVES:
            raise ModelError(f"{self.name}: objective must be one of {list(OBJECTIVES)}, got {objective!r}")
        if early_stopping_metric not in STOPPING_METRICS:
            raise ModelError(f"{self.name}: early_stopping_metric must be one of {list(STOPPING_METRICS)}")
        self.hyperparameters = {
            "objective": objective,
            "n_estimators": int(n_estimators),
            "learning_rate": float(learning_rate),
            "max_depth": int(max_depth),
            "min_child_weight": float(min_child_weight),
            "subsample": float(subsample),
            "colsample_bytree": float(colsample_bytree),
            "reg_lambda": float(reg_lambda),
            "max_bin": int(max_bin),
            "min_trees": int(min_trees),
            "early_stopping_metric": early_stopping_metric,
            "early_stopping_rounds": int(early_stopping_rounds),
            "relevance_grades": int(relevance_grades),
            "seed": int(seed),
        }
        self.num_threads = int(num_threads or os.cpu_count() or 1)
        self.device = device or ("cuda" if cuda_available() and xgboost.build_info().get("USE_CUDA") else "cpu")
        self.model_format = model_format
        self.shap_max_rows = int(shap_max_rows)
        self.booster: xgboost.Booster | None = None
        # Trees used by predict: the best round after fit; 0 (all trees of
        # the file, already cut at the best) after load.
        self.n_trees = 0
        self.horizons: tuple[int, ...] = ()
        self.target = 0

    # ------------------------------------------------------------ training

    @property
    def ranking(self) -> bool:
        return self.hyperparameters["objective"] == "rank_pairwise"

    def xgboost_params(self) -> dict:
        """The exact parameters given to ``xgboost.train``."""
        h = self.hyperparameters
        params = {
            "tree_method": "hist",
            "device": self.device,
            "eta": h["learning_rate"],
            "max_depth": h["max_depth"],
            "min_child_weight": h["min_child_weight"],
            "subsample": h["subsample"],
            "colsample_bytree": h["colsample_bytree"],
            "lambda": h["reg_lambda"],
            "max_bin": h["max_bin"],
            "seed": h["seed"],
            "nthread": self.num_threads,
            "verbosity": 0,
        }
        if self.ranking:
            params.update(
                objective="rank:pairwise",
                lambdarank_pair_method="mean",
                lambdarank_num_pair_per_sample=PAIRS_PER_SAMPLE,
                eval_metric="ndcg",
            )
        else:
            params.update(objective="reg:squarederror", eval_metric="rmse")
        if h["early_stopping_metric"] == "rank_ic":
            params["disable_default_eval_metric"] = 1
            del params["eval_metric"]
        return params

    def _matrix(self, data: TabularData, reference: xgboost.QuantileDMatrix | None):
        self._check_n_features(data.X.shape[1])
        known = finite_target_rows(data.y, data.target)
        if not known.any():
            raise ModelError(f"{self.name}: no row with a known target")
        if not known.all():
            data = TabularData(data.X[known], data.y[known], data.groups[known], data.horizons, data.target)
        label = (
            relevance_grades(data.target_returns, data.groups, self.hyperparameters["relevance_grades"])
            if self.ranking
            else data.target_returns
        )
        matrix = xgboost.QuantileDMatrix(
            feature_matrix(data),
            label=label,
            qid=data.groups if self.ranking else None,
            feature_names=[_xgboost_name(n) for n in self.resolved_feature_names()],
            ref=reference,
            nthread=self.num_threads,
            max_bin=self.hyperparameters["max_bin"],
        )
        return matrix, data

    def fit(self, train: TabularData, valid: TabularData) -> dict:
        started = time.perf_counter()
        train_matrix, train = self._matrix(train, None)
        valid_matrix, valid = self._matrix(valid, train_matrix)
        h = self.hyperparameters
        history: dict = {}
        custom_metric, maximize = None, self.ranking
        if h["early_stopping_metric"] == "rank_ic":
            rank_ic = RankIC(valid.target_returns, valid.groups)
            custom_metric, maximize = (lambda predt, _: ("rank_ic", rank_ic(predt))), True
        booster = xgboost.train(
            self.xgboost_params(),
            train_matrix,
            num_boost_round=h["n_estimators"],
            evals=[(valid_matrix, "valid")],
            early_stopping_rounds=max(h["early_stopping_rounds"], h["min_trees"]),  # the floor is always grown
            custom_metric=custom_metric,
            maximize=maximize,
            evals_result=history,
            verbose_eval=False,
        )
        if self.device != "cpu":
            booster.set_param({"device": "cpu"})  # predictions take host numpy arrays
        (metric, curve), = history["valid"].items()
        self.booster = booster
        self.n_trees = best_round(np.asarray(curve), maximize, h["min_trees"])
        self.horizons, self.target = tuple(train.horizons), int(train.target)
        return {
            "best_iteration": self.n_trees,
            "iterations_run": len(curve),
            "metric": metric,
            "valid_metric": float(curve[self.n_trees - 1]),
            "valid_rank_ic": mean_rank_ic(self.predict(valid), valid.target_returns, valid.groups),
            "n_train_rows": len(train),
            "seconds": time.perf_counter() - started,
            "device": self.device,
            "warm": False,
        }

    # ------------------------------------------------------------ scoring

    def _require_booster(self) -> xgboost.Booster:
        if self.booster is None:
            raise ModelError(f"{self.name}: not fitted")
        return self.booster

    def predict(self, data: TabularData | np.ndarray) -> np.ndarray:
        X = feature_matrix(data)
        self._check_n_features(X.shape[1])
        scores = self._require_booster().inplace_predict(X, iteration_range=(0, self.n_trees), validate_features=False)
        return np.asarray(scores, dtype=np.float64)

    def importance(self, data: TabularData | np.ndarray) -> dict[str, float]:
        """Mean |SHAP| (XGBoost ``pred_contribs``) per feature over at most
        ``shap_max_rows`` evenly spaced rows of ``data``."""
        X = feature_matrix(data)
        X = X[spread_rows(len(X), self.shap_max_rows)]
        booster = self._require_booster()
        matrix = xgboost.DMatrix(X, feature_names=booster.feature_names, nthread=self.num_threads)
        contributions = booster.predict(matrix, pred_contribs=True, iteration_range=(0, self.n_trees))
        mean_abs = np.abs(contributions[:, : self.n_features]).mean(axis=0)
        return {name: float(v) for name, v in zip(self.resolved_feature_names(), mean_abs)}

    # ------------------------------------------------------------ files

    def save(self, directory: Path) -> dict[str, str]:
        booster = self._require_booster()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        model_file = MODEL_FILES[self.model_format]
        best = booster[: self.n_trees] if self.n_trees else booster
        best.save_model(str(directory / model_file))
        write_json(
            directory / CONFIG_FILE,
            {
                "kind": self.kind,
                "name": self.name,
                "n_features": self.n_features,
                "feature_names": self.resolved_feature_names(),
                "hyperparameters": self.hyperparameters,
                "model_format": self.model_format,
                "best_iteration": self.n_trees,
                "horizons": list(self.horizons),
                "target": self.target,
            },
            sort_keys=True,
        )
        return {"model": model_file, "config": CONFIG_FILE}

    @classmethod
    def load(cls, directory: Path, files: dict[str, str]) -> "XGBoostMember":
        directory = Path(directory)
        config = read_json(directory / files.get("config", CONFIG_FILE))
        member = cls(
            config["n_features"],
            name=config["name"],
            feature_names=config["feature_names"],
            model_format=config.get("model_format", "ubj"),
            device="cpu",
            **config["hyperparameters"],
        )
        path = directory / files.get("model", MODEL_FILES[member.model_format])
        try:
            member.booster = xgboost.Booster(params={"nthread": member.num_threads}, model_file=str(path))
        except xgboost.core.XGBoostError as exc:
            raise ModelError(f"cannot load XGBoost model from {path}: {exc}") from None
        member.n_trees = 0  # the file holds exactly the best trees
        member.horizons, member.target = tuple(config["horizons"]), int(config["target"])
        return member


def _xgboost_name(name: str) -> str:
    """XGBoost rejects '[', ']' and '<' in feature names."""
    return re.sub(r"[\[\]<,]", "_", name)
