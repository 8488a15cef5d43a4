"""The broker goes away under the engine: a 15 s stop in the middle of a
backlog is waited out, processing resumes within 30 s of the broker's
return with no manual step, and the committed signals equal ``signalml
predict``'s; SIGTERM stops an engine that is waiting for the broker.

The broker here is a private one on its own ports, so stopping it disturbs
no other test."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time

import pytest

from models.publish.control import send_manifest
from signalml.config import Settings
from signalml.services.kafka import KafkaBroker
from signalml.services.process import free_port, port_answers
from stream.bars_file import read_bars
from stream.engine import Engine
from stream.replay import replay
from tests.integration.engine_world import (
    DATA,
    REPO,
    assert_signals_equal_predict,
    committed_signals,
    env_of,
    new_tag,
    predicted,
    published_world,
    with_output,
)
from tests.integration.test_engine_determinism import served_bar_time

pytestmark = pytest.mark.integration

OUTAGE_S = 15.0


@pytest.fixture(scope="module")
def world(stack, tmp_path_factory):
    with published_world(tmp_path_factory.mktemp("broker-faults")) as world:
        yield world


@pytest.fixture(scope="module")
def private(world, tmp_path_factory):
    """The world's topics, bars and model set on a broker of their own."""
    data = world["settings"].model_dump(exclude={"root"})
    data["paths"]["state_dir"] = str(tmp_path_factory.mktemp("private-broker"))
    data["kafka"].update(port=free_port(), controller_port=free_port())
    settings = Settings.model_validate({**data, "root": world["settings"].root})
    broker = KafkaBroker(settings)
    broker.start()
    try:
        replay(settings, world["bars"], source_file=DATA)
        send_manifest(settings.kafka.bootstrap_servers, settings.kafka.topics.control.name, world["manifest"])
        yield {"settings": settings, "broker": broker,
               "expected": predicted(world["settings"], world["tmp"], symbols=sorted(set(world["bars"]["symbol"])),
                                     start="2018-01-01")}
    finally:
        broker.stop()


def test_a_broker_stopped_mid_backlog_for_15_s_is_waited_out_and_the_signals_equal_predict(private):
    settings, broker = with_output(private["settings"], f"outage-{new_tag()}"), private["broker"]
    expected = private["expected"]
    engine = Engine(settings)
    thread = threading.Thread(target=engine.run, kwargs={"idle_exit_s": 5.0, "serve_http": False})
    thread.start()
    try:
        outage_and_return(engine, thread, broker, settings, len(expected))
    finally:
        engine.stop_event.set()
        thread.join(timeout=60)
    assert engine.metrics.rewinds.labels("kafka")._value.get() >= 1
    assert_signals_equal_predict(committed_signals(settings), expected)


def outage_and_return(engine, thread, broker, settings, expected_signals: int) -> None:
    """Stop the broker a third of the way through, keep it down for 15 s,
    start it again; return once the engine has gone idle after it."""
    def committed() -> int:
        return int(engine.metrics.signals_out._value.get())

    deadline = time.monotonic() + 120
    while committed() < expected_signals // 3:
        assert thread.is_alive() and time.monotonic() < deadline
        time.sleep(0.01)
    broker.stop()
    assert not port_answers(settings.kafka.host, settings.kafka.port), "the broker is still up"
    during = committed()
    assert 0 < during < expected_signals, "the outage did not fall in the middle of the backlog"
    time.sleep(OUTAGE_S)  # the outage itself
    assert committed() == during, "signals were committed while the broker was down"
    assert engine.status()["kafka_available"] is False and thread.is_alive()

    broker.start()
    back = time.monotonic()
    while committed() == during:
        assert thread.is_alive(), "the engine stopped instead of waiting for the broker"
        assert time.monotonic() - back < 30.0, (
            f"no commit within 30 s of the broker's return (role {engine.role}, lease held "
            f"{engine.lease.held}, kafka_available {engine.status()['kafka_available']})")
        time.sleep(0.05)
    thread.join(timeout=300)
    assert not thread.is_alive(), "the engine did not go idle after the outage"


@pytest.mark.parametrize("state", ["starting", "mid-backlog", "idle"])
def test_sigterm_stops_an_engine_that_waits_for_the_broker_within_seconds(world, private, tmp_path, state):
    """The broker goes away while the engine starts (it waits for the broker
    to answer), while it reads a backlog (a transaction fails; it waits to
    rewind) or while it is idle (its consumer sees the brokers down)."""
    settings, broker = with_output(private["settings"], f"sigterm-{new_tag()}", own_bars=True), private["broker"]
    bars = read_bars(DATA, symbols=sorted(set(read_bars(DATA)["symbol"]))[::5][:80])
    if state == "idle":
        bars = world["bars"]
    replay(settings, bars, source_file=DATA)
    log = tmp_path / "engine.log"
    if state == "starting":
        broker.stop()
    process = subprocess.Popen([sys.executable, "-m", "signalml.cli", "serve"], cwd=REPO, env=env_of(settings),
                               stdout=open(log, "ab"), stderr=subprocess.STDOUT)
    try:
        if state == "mid-backlog":
            wait_for_line(process, log, "resumed at")
            wait_for(lambda: served_bar_time(position_url(settings)) > 0, process, log)
            broker.stop()
        elif state == "idle":
            last = int(bars["ts"].max())
            wait_for(lambda: served_bar_time(position_url(settings)) == last, process, log)
            broker.stop()
        # mid-backlog: the transaction open when the broker went fails, and the
        # engine waits to rewind; otherwise it waits for the broker to answer.
        wait_for_line(process, log, "rewinding to the last commit" if state == "mid-backlog" else "waiting for Kafka")
        asked = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0, log.read_text()[-3000:]
        assert time.monotonic() - asked < 5.0, log.read_text()[-3000:]
    finally:
        if process.poll() is None:
            process.kill()
        broker.start()


def position_url(settings) -> str:
    return f"http://{settings.serving.http_host}:{settings.serving.http_port}/v1/position"


def wait_for(condition, process, log, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert process.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.02)


def wait_for_line(process, log, text: str) -> None:
    wait_for(lambda: text in log.read_text(), process, log)
