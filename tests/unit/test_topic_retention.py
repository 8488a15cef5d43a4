"""The bars topic keeps the history a retrain reads (retrain.topic_retention_days)."""

from __future__ import annotations

from signalml.config import Settings
from signalml.services.topics import creation_config

DAY_MS = 86_400_000


def test_bars_topic_is_created_with_the_retrain_history_as_retention():
    settings = Settings()
    assert creation_config(settings, "bars") == {"retention.ms": str(1830 * DAY_MS)}
    assert settings.retrain.topic_retention_days * DAY_MS > 365 * 5 * DAY_MS, "five years of daily bars"


def test_other_topics_keep_their_configuration():
    settings = Settings()
    assert creation_config(settings, "control") == {"cleanup.policy": "compact"}
    assert creation_config(settings, "signals") == {}


def test_an_explicit_retention_wins_and_null_leaves_the_broker_default():
    explicit = Settings.model_validate({"kafka": {"topics": {"bars": {"name": "bars", "partitions": 4,
                                                                      "config": {"retention.ms": "-1"}}}}})
    assert creation_config(explicit, "bars") == {"retention.ms": "-1"}
    default = Settings.model_validate({"retrain": {"topic_retention_days": None}})
    assert creation_config(default, "bars") == {}
