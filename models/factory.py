"""Members from the configuration, and members back from their files.

The one place that maps ``settings.models`` onto the member classes.
Every member is seeded with ``settings.training.seed``.
"""

from __future__ import annotations

from pathlib import Path

from models.base import Member, ModelError
from models.deep import LSTMPredictor, TemporalFusionTransformer
from models.lightgbm_ranker import LightGBMRanker
from models.xgboost_ranker import XGBoostRanker
from signalml.config import Settings

MEMBER_CLASSES: dict[str, type[Member]] = {
    cls.kind: cls for cls in (LightGBMRanker, XGBoostRanker, LSTMPredictor, TemporalFusionTransformer)
}


def build_members(settings: Settings, n_features: int, feature_names: list[str]) -> list[Member]:
    """The enabled members, unfitted, in the order lightgbm, xgboost, lstm, tft."""
    if len(feature_names) != n_features:
        raise ModelError(f"{len(feature_names)} feature names for {n_features} features")
    models, seed = settings.models, settings.training.seed
    names = list(feature_names)
    members: list[Member] = []
    if models.lightgbm.enabled:
        s = models.lightgbm
        members.append(
            LightGBMRanker(
                n_features,
                feature_names=names,
                n_estimators=s.n_estimators,
                learning_rate=s.learning_rate,
                num_leaves=s.num_leaves,
                min_child_samples=s.min_child_samples,
                subsample=s.subsample,
                colsample_bytree=s.colsample_bytree,
                relevance_grades=s.relevance_grades,
                early_stopping_rounds=s.early_stopping_rounds,
                seed=seed,
            )
        )
    if models.xgboost.enabled:
        s = models.xgboost
        members.append(
            XGBoostRanker(
                n_features,
                feature_names=names,
                n_estimators=s.n_estimators,
                learning_rate=s.learning_rate,
                max_depth=s.max_depth,
                subsample=s.subsample,
                colsample_bytree=s.colsample_bytree,
                early_stopping_rounds=s.early_stopping_rounds,
                relevance_grades=models.lightgbm.relevance_grades,  # one grading for both rankers
                seed=seed,
            )
        )
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
        "seed": seed,
    }


def load_member(kind: str, directory: Path, files: dict[str, str]) -> Member:
    """The member of ``kind`` saved in ``directory`` (``files``: what save returned)."""
    try:
        cls = MEMBER_CLASSES[kind]
    except KeyError:
        raise ModelError(f"unknown member kind {kind!r}; known: {sorted(MEMBER_CLASSES)}") from None
    return cls.load(Path(directory), files)
