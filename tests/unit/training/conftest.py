from __future__ import annotations

import pytest

from signalml.config import Settings, load_settings

SMALL_TRAINING = {
    "train_period": 120,
    "test_period": 40,
    "retrain_frequency": 40,
    "validation_bars": 30,
    "cv_folds": 3,
}


def small_settings(**training) -> Settings:
    """Defaults with short walk-forward windows (synthetic data is short)."""
    return load_settings(environ={}, overrides={"training": {**SMALL_TRAINING, **training}})


@pytest.fixture()
def settings_small() -> Settings:
    return small_settings()
