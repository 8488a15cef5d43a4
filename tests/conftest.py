"""Shared fixtures. Integration tests run against the real embedded Kafka and
Triton: the ``stack`` fixture uses the running stack (``signalml up``) or
starts it for the session and stops it afterwards."""

from __future__ import annotations

from pathlib import Path

import pytest

from signalml.config import Settings, load_settings

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data" / "sp500_daily_2015_2019.parquet"


@pytest.fixture(scope="session")
def settings() -> Settings:
    return load_settings(REPO / "signalml.yaml")


@pytest.fixture(scope="session")
def stack(settings: Settings):
    from signalml.services.stack import Stack

    stack = Stack(settings)
    was_running = all(info.get("running") for info in stack.status().values())
    if not was_running:
        stack.up()
    yield stack
    if not was_running:
        stack.down()
