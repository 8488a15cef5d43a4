"""`signalml status` as a user runs it against the running stack: beside the
services, the current model set and the last committed drift events, read
from a private drift topic (SIGNALML__KAFKA__TOPICS__DRIFT__NAME) and a
private model-set store (SIGNALML__TRITON__REPOSITORY)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Producer

from models.publish import ModelSetStore
from signalml.contracts import DriftEvent, encode
from tests.integration.kafka_helpers import scratch_topics
from tests.unit.test_status import MODEL_SET, manifest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def signalml_status(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "signalml.cli", "status", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )


def event(n: int) -> DriftEvent:
    return DriftEvent(ts=1735787045000 + n * 86_400_000, kind="feature_psi", subject=f"feature_{n}",
                      statistic=0.3 + n / 100, threshold=0.25, severity="warning", model_set=MODEL_SET)


def produce_drift(bootstrap: str, topic: str) -> None:
    """Events 1 and 2 in a committed transaction (as the engine writes them),
    3 in an aborted one, 4 without a transaction (as the monitor writes
    them), 5 in another committed transaction."""
    transactional = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"test-status-{uuid.uuid4().hex}"})
    transactional.init_transactions(30)
    plain = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})

    def in_transaction(numbers, commit):
        transactional.begin_transaction()
        for n in numbers:
            transactional.produce(topic, encode(event(n)), key=event(n).key())
        (transactional.commit_transaction if commit else transactional.abort_transaction)(30)

    in_transaction([1, 2], commit=True)
    in_transaction([3], commit=False)
    plain.produce(topic, encode(event(4)), key=event(4).key())
    assert plain.flush(30) == 0
    in_transaction([5], commit=True)


@pytest.fixture
def private_env(stack, tmp_path):
    """The running stack, with this test's own drift topic and model-set store."""
    bootstrap = stack.settings.kafka.bootstrap_servers
    with scratch_topics(bootstrap, "drift") as (topic,):
        env = dict(os.environ)
        env["SIGNALML__KAFKA__TOPICS__DRIFT__NAME"] = topic
        env["SIGNALML__TRITON__REPOSITORY"] = str(tmp_path / "repo")
        yield env, bootstrap, topic, tmp_path / "repo"


def test_status_shows_none_before_any_publish_or_drift_event(private_env):
    env, _, topic, _ = private_env
    result = signalml_status(env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("kafka   running") and any(line.startswith("triton  running") for line in lines)
    assert "model set  none published (signalml train, then signalml publish)" in lines
    assert lines[-1] == f"drift      last events on topic {topic}: none"


def test_status_lists_the_model_set_and_the_last_committed_drift_events(private_env):
    env, bootstrap, topic, repository = private_env
    store = ModelSetStore(repository)
    store.write(manifest())
    store.set_current(MODEL_SET, "publish")
    produce_drift(bootstrap, topic)

    result = signalml_status(env, "--json", "--drift-events", "3")
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)

    assert status["kafka"]["running"] and status["triton"]["running"]
    assert status["model_set"]["current"] == MODEL_SET
    assert [(m["name"], m["version"], m["triton_state"]) for m in status["model_set"]["members"]] == [
        ("lightgbm", 3, "not loaded"),
        ("lstm", 2, "not loaded"),
    ]
    assert status["model_set"]["training_metrics"]["lightgbm"]["rank_ic"] == 0.0312
    # The aborted event 3 is not read; the last three committed are, oldest first.
    assert status["drift"]["topic"] == topic
    assert [e["subject"] for e in status["drift"]["events"]] == ["feature_2", "feature_4", "feature_5"]
    assert status["drift"]["events"][-1] == {**json.loads(encode(event(5))), "detail": ""}

    text = signalml_status(env, "--drift-events", "10").stdout.splitlines()
    drift_at = text.index(f"drift      last events on topic {topic}:")
    assert [line.split()[5] for line in text[drift_at + 1:]] == ["feature_1:", "feature_2:", "feature_4:", "feature_5:"]
    assert text[drift_at + 1].strip().startswith("2025-01-03 03:04:05 UTC  warning  feature_psi feature_1: 0.31 (threshold 0.25)")
    assert f"model set  {MODEL_SET}  ensemble ic_weighted" in "\n".join(text)


def test_status_with_kafka_down_answers_promptly_and_says_so(stack, tmp_path):
    env = dict(os.environ)
    env["SIGNALML__KAFKA__HOST"] = "127.0.0.1"
    env["SIGNALML__KAFKA__PORT"] = "1"  # nothing listens on port 1
    env["SIGNALML__PATHS__STATE_DIR"] = str(tmp_path / "state")
    started = time.monotonic()
    result = signalml_status(env)
    elapsed_s = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert "drift      unavailable: Kafka at 127.0.0.1:1 is down or not answering" in result.stdout
    assert elapsed_s < 15


def test_an_open_transaction_on_the_drift_topic_neither_shows_nor_holds_up_the_tail(stack):
    from stream.topic_reader import read_tail

    bootstrap = stack.settings.kafka.bootstrap_servers
    with scratch_topics(bootstrap, "drift") as (topic,):
        producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"test-status-{uuid.uuid4().hex}"})
        producer.init_transactions(30)
        producer.begin_transaction()
        producer.produce(topic, encode(event(1)))
        producer.commit_transaction(30)
        producer.begin_transaction()
        producer.produce(topic, encode(event(2)))
        assert producer.flush(30) == 0
        try:
            tail = read_tail(bootstrap, topic, 5, timeout_s=10)
        finally:
            producer.abort_transaction(30)
    assert [m.value() for m in tail] == [encode(event(1))]
