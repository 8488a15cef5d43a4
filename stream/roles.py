"""Champion and challenger: which model set an engine serves and where its
signals go.

The champion's manifest is the control topic's ``model_set`` key and its
signals go to ``topics.signals``; a challenger (shadow) model set's
manifest is the ``model_set.challenger`` key and its signals go to
``topics.signals_challenger``. Promotion is publishing the challenger's
manifest under the champion's key.
"""

from __future__ import annotations

from typing import Literal

Role = Literal["champion", "challenger"]
ROLES: tuple[Role, ...] = ("champion", "challenger")

CHAMPION_KEY = b"model_set"
CHALLENGER_KEY = b"model_set.challenger"


def control_key(role: Role) -> bytes:
    """The control-topic key of ``role``'s manifest."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; expected one of {list(ROLES)}")
    return CHAMPION_KEY if role == "champion" else CHALLENGER_KEY


def signals_topic(settings, role: Role | None = None) -> str:
    """The signals topic of ``role`` (default: ``serving.role``)."""
    role = role or settings.serving.role
    topics = settings.kafka.topics
    return topics.signals.name if role == "champion" else topics.signals_challenger.name
