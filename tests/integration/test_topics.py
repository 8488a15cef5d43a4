"""Topics are provisioned and checked: `signalml up` creates configured topics
that are missing (also while the stack runs), the broker never creates one
on first use, and the commands that use Kafka refuse to start against a
missing topic or one with another partition count, in one line that names
the topic, the setting and what to do."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest
from confluent_kafka import KafkaError, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from tests.integration.engine_world import REPO

pytestmark = pytest.mark.integration


def signalml(env: dict, *args: str, timeout_s: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "signalml.cli", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout_s)


@pytest.fixture()
def fresh_names(stack, settings):
    """Topic names no test has used; whatever gets created is deleted."""
    tag = uuid.uuid4().hex[:8]
    names = {"bars": f"bars.new-{tag}", "bars_dlq": f"bars.dlq.new-{tag}",
             "cross_sections": f"cross.sections.new-{tag}"}
    admin = AdminClient({"bootstrap.servers": settings.kafka.bootstrap_servers})
    yield names, admin
    existing = set(admin.list_topics(timeout=10).topics)
    doomed = [n for n in names.values() if n in existing]
    for future in (admin.delete_topics(doomed, operation_timeout=30).values() if doomed else []):
        future.result(60)


def env_with(**topics: str) -> dict:
    env = dict(os.environ)
    for key, name in topics.items():
        env[f"SIGNALML__KAFKA__TOPICS__{key.upper()}__NAME"] = name
    return env


def test_up_creates_a_newly_configured_topic_while_the_stack_runs(fresh_names):
    names, admin = fresh_names
    assert names["bars"] not in admin.list_topics(timeout=10).topics
    done = signalml(env_with(**names), "up")
    assert done.returncode == 0, done.stderr
    topics = admin.list_topics(timeout=10).topics
    assert len(topics[names["bars"]].partitions) == 4 and len(topics[names["bars_dlq"]].partitions) == 1


def test_the_broker_does_not_create_a_topic_on_first_use(fresh_names, settings):
    names, admin = fresh_names
    producer = Producer({"bootstrap.servers": settings.kafka.bootstrap_servers, "message.timeout.ms": 5000})
    errors = []
    producer.produce(names["bars"], b"x", on_delivery=lambda error, _msg: errors.append(error))
    producer.flush(15)
    assert errors and errors[0] is not None and errors[0].code() in (
        KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC, KafkaError._MSG_TIMED_OUT)
    assert names["bars"] not in admin.list_topics(timeout=10).topics


@pytest.mark.parametrize(("command", "key"), [(["serve"], "bars"), (["serve"], "cross_sections"),
                                              (["replay", "--bars", "data/sp500_daily_2015_2019.parquet"], "bars"),
                                              (["monitor"], "cross_sections"), (["retrain", "--once"], "bars")])
def test_a_command_refuses_to_start_against_a_missing_topic(fresh_names, settings, command, key):
    names, admin = fresh_names
    done = signalml(env_with(**{key: names[key]}), *command)
    assert done.returncode == 1
    message = done.stderr.strip().splitlines()[-1]
    assert message == (f"signalml: error: kafka topic {names[key]!r} (kafka.topics.{key}.name) does not exist "
                       f"on {settings.kafka.bootstrap_servers}: `signalml up` creates the configured topics")
    assert names[key] not in admin.list_topics(timeout=10).topics


def test_a_command_refuses_a_topic_with_another_partition_count(fresh_names):
    names, admin = fresh_names
    for future in admin.create_topics([NewTopic(names["bars"], 1, 1)]).values():
        future.result(30)
    done = signalml(env_with(bars=names["bars"]), "serve")
    assert done.returncode == 1
    message = done.stderr.strip().splitlines()[-1]
    assert message == (f"signalml: error: kafka topic {names['bars']!r} has 1 partition(s) but "
                       "kafka.topics.bars.partitions is 4: set kafka.topics.bars.partitions to 1, or delete the "
                       "topic and run `signalml up` to create it as configured")
