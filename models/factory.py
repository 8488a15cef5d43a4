"""Members from the configuration, and members back from their files.

The one place that maps ``settings.models`` onto the member classes.
Every member is seeded with ``settings.training.seed``.
"""

from __future__ import annotations

from pathlib import Path

from models.base import Member, ModelError
from models.deep import LSTMPredictor, TemporalFusionTransformer
from models.lightgbm_member import LightGBMMember
from models.ridge_member import RidgeMember
from models.xgboost_member import XGBoostMember
from signalml.config import Settings

MEMBER_CLASSES: dict[str, type[Member]] = {
    cls.kind: cls for cls in (LightGBMMember, XGBoostMember, RidgeMember, LSTMPredictor, TemporalFusionTransformer)
}


def build_members(settings: Settings, n_features: int, feature_names: list[str]) -> list[Member]:
    """The enabled members, unfitted, in the order lightgbm, xgboost, ridge, lstm, tft."""
    if len(feature_names) != n_features:
        raise ModelError(f"{len(feature_names)} feature names for {n_features} features")
    models, seed = settings.models, settings.training.seed
    names = list(feature_names)
    members: list[Member] = []
    if models.lightgbm.enabled:
        s = models.lightgbm
        members.append(
            LightGBMMember(
                n_features,
                feature_names=names,
                objective=s.objective,
                n_estimators=s.n_estimators,
                learning_rate=s.learning_rate,
                num_leaves=s.num_leaves,
                min_child_samples=s.min_child_samples,
                subsample=s.subsample,
                colsample_bytree=s.colsample_bytree,
                reg_lambda=s.reg_lambda,
                max_bin=s.max_bin,
                min_trees=s.min_trees,
                relevance_grades=s.relevance_grades,
                early_stopping_metric=s.early_stopping_metric,
                early_stopping_rounds=s.early_stopping_rounds,
                seed=seed,
            )
        )
    if models.xgboost.enabled:
        s = models.xgboost
        members.append(
            XGBoostMember(
                n_features,
                feature_names=names,
                objective=s.objective,
                n_estimators=s.n_estimators,
                learning_rate=s.learning_rate,
                max_depth=s.max_depth,
                min_child_weight=s.min_child_weight,
                subsample=s.subsample,
                colsample_bytree=s.colsample_bytree,
                reg_lambda=s.reg_lambda,
                max_bin=s.max_bin,
                min_trees=s.min_trees,
                early_stopping_metric=s.early_stopping_metric,
                early_stopping_rounds=s.early_stopping_rounds,
                relevance_grades=models.lightgbm.relevance_grades,  # one grading for both rankers
                seed=seed,
            )
        )
    if models.ridge.enabled:
        members.append(RidgeMember(n_features, feature_names=names, alphas=models.ridge.alphas, seed=seed))
    if models.lstm.enabled:
        s = models.lstm
        members.append(
            LSTMPredictor(
                n_features,
                feature_names=names,
                hidden_size=s.hidden_size,
                num_layers=s.num_layers,
                dropout=s.dropout,
                **_deep_training(s, seed),
            )
        )
    if models.tft.enabled:
        s = models.tft
        members.append(
            TemporalFusionTransformer(
                n_features,
                feature_names=names,
                hidden_size=s.hidden_size,
                attention_heads=s.attention_heads,
                dropout=s.dropout,
                **_deep_training(s, seed),
            )
        )
    return members


def _deep_training(s, seed: int) -> dict:
    return {
        "sequence_length": s.sequence_length,
        "epochs": s.epochs,
        "batch_size": s.batch_size,
        "learning_rate": s.learning_rate,
        "patience": s.patience,
        "samples_per_epoch": getattr(s, "samples_per_epoch", None),
        # early stopping reads every validation date: a year of them by default
        "max_valid_samples": None,
        "seed": seed,
    }


def load_member(kind: str, directory: Path, files: dict[str, str]) -> Member:
    """The member of ``kind`` saved in ``directory`` (``files``: what save returned)."""
    try:
        cls = MEMBER_CLASSES[kind]
    except KeyError:
        raise ModelError(f"unknown member kind {kind!r}; known: {sorted(MEMBER_CLASSES)}") from None
    return cls.load(Path(directory), files)
