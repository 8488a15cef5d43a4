"""Two ``signalml serve`` processes with one engine id: one is active, the
other stands by. Killed (SIGKILL) mid-stream, the active one's lease passes
to the standby within the lease session timeout (+5 s), the standby restores
the committed snapshot and goes on; stopped (SIGTERM), it hands over at once.
Either way the signals topic holds exactly what ``signalml predict`` writes
for the same bars, and a restarted engine waits as the standby."""

from __future__ import annotations

import bisect
import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient

from signalml.services.process import free_port
from signalml.status import engine_status
from stream.observability import scraped_samples
from stream.lease import lease_group
from tests.integration.engine_world import (
    REPO,
    assert_signals_equal_predict,
    committed_progress,
    committed_signals,
    env_of,
    new_tag,
    predicted,
    published_world,
    with_output,
)
from tests.integration.test_engine_determinism import served_bar_time

pytestmark = pytest.mark.integration

SESSION_TIMEOUT_S = 10.0
HEARTBEAT_S = 1.0  # the lease consumer's heartbeat at this session timeout


@pytest.fixture(scope="module")
def world(stack, tmp_path_factory):
    with published_world(tmp_path_factory.mktemp("failover")) as world:
        world["expected"] = predicted(world["settings"], world["tmp"], symbols=sorted(set(world["bars"]["symbol"])),
                                      start="2018-01-01")
        world["bar_times"] = sorted(set(world["expected"]["ts"].tolist()))
        yield world


@pytest.fixture
def pair(world, tmp_path, k):
    """Settings for two engines with one id (their own outputs, the world's
    bars, ``k`` cross-sections in flight), and the processes started on
    them, killed at the end; their consumer groups are deleted."""
    settings = with_output(world["settings"], f"failover-{new_tag()}", lease_session_timeout_s=SESSION_TIMEOUT_S,
                           max_in_flight=k)
    engines = Engines(settings, tmp_path)
    try:
        yield engines
    finally:
        engines.kill_all()
        for group in (lease_group(settings.serving.engine_id), settings.serving.consumer_group):
            delete_group(settings.kafka.bootstrap_servers, group)


def delete_group(bootstrap: str, group: str) -> None:
    """Delete ``group`` once it is empty: a member of a killed engine stays
    until its session expires."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    deadline = time.monotonic() + SESSION_TIMEOUT_S + 10.0
    while True:
        try:
            admin.delete_consumer_groups([group], request_timeout=30)[group].result(30)
            return
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.NON_EMPTY_GROUP or time.monotonic() > deadline:
                return  # already gone, or left to the broker's clean-up of empty groups
        time.sleep(0.5)


class Engines:
    """``signalml serve`` processes of one engine id, each on its own HTTP port."""

    def __init__(self, settings, tmp_path):
        self.settings, self.tmp_path = settings, tmp_path
        self.processes: list[subprocess.Popen] = []

    def start(self, name: str) -> "Engine":
        port = free_port()
        env = env_of(self.settings) | {"SIGNALML__SERVING__HTTP_PORT": str(port)}
        log = self.tmp_path / f"{name}.log"
        process = subprocess.Popen([sys.executable, "-m", "signalml.cli", "serve"], cwd=REPO, env=env,
                                   stdout=open(log, "ab"), stderr=subprocess.STDOUT)
        self.processes.append(process)
        return Engine(process, port, log)

    def kill_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
                process.wait()


class Engine:
    def __init__(self, process: subprocess.Popen, port: int, log):
        self.process, self.port, self.log = process, port, log

    def role(self) -> str | None:
        """What its ``/health`` says (None while it does not answer)."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=1.0) as response:
                return json.load(response).get("role")
        except urllib.error.HTTPError as exc:  # 503: unhealthy, still a body
            return json.load(exc).get("role")
        except (urllib.error.URLError, OSError, ValueError):
            return None

    def active_gauge(self) -> float:
        """``signalml_engine_active`` on its ``/metrics``."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5.0) as response:
            samples = scraped_samples(response.read().decode())
        return next(s.value for s in samples if s.name == "signalml_engine_active")

    def bar_time(self) -> int:
        return served_bar_time(f"http://127.0.0.1:{self.port}/v1/position")

    def alive(self) -> None:
        assert self.process.poll() is None, self.log.read_text()[-3000:]


def wait_for(condition, *engines: Engine, timeout_s: float = 180.0, what: str = "") -> float:
    """Poll ``condition`` until it holds; the time it took. Each of ``engines`` must stay alive."""
    started = time.monotonic()
    while not condition():
        for engine in engines:
            engine.alive()
        assert time.monotonic() - started < timeout_s, f"not within {timeout_s:.0f} s: {what}"
        time.sleep(0.02)
    return time.monotonic() - started


def active_and_standby(engines: Engines) -> tuple[Engine, Engine]:
    """Start two engines; the first one to hold the lease is returned first."""
    first = engines.start("first")
    wait_for(lambda: first.role() == "active", first, what="the first engine active")
    second = engines.start("second")
    wait_for(lambda: len(engine_status(engines.settings).get("engines", [])) == 2, first, second,
             what="the second engine in the lease group")
    return first, second


def committed_closed(settings, bar_times: list[int]) -> int:
    """Bar times closed in the last committed snapshot."""
    _, last_closed = committed_progress(settings)
    return 0 if last_closed is None else bisect.bisect_right(bar_times, last_closed)


# k=4: the active engine dies (or stops) with requests in flight across its commits.
@pytest.mark.parametrize("stop, k", [("SIGKILL", 1), ("SIGTERM", 1), ("SIGKILL", 4), ("SIGTERM", 4)])
def test_the_standby_takes_over_mid_stream_and_the_signals_equal_predict(world, pair, stop, k):
    settings, bar_times = pair.settings, world["bar_times"]
    active, standby = active_and_standby(pair)

    # While the active one commits the first third, the other one stands by.
    while active.bar_time() < bar_times[len(bar_times) // 3]:
        active.alive()
        assert standby.role() == "standby", standby.log.read_text()[-3000:]
        time.sleep(0.05)
    members = engine_status(settings)["engines"]
    assert [(m["role"], m["pid"]) for m in members] == [("active", active.process.pid),
                                                         ("standby", standby.process.pid)], members
    assert (active.active_gauge(), standby.active_gauge()) == (1, 0)

    if stop == "SIGKILL":
        active.process.kill()
    else:
        active.process.send_signal(signal.SIGTERM)
    asked = time.monotonic()
    wait_for(lambda: standby.role() == "active", standby, timeout_s=60, what="the standby active")
    took_s = time.monotonic() - asked
    at_stop = committed_closed(settings, bar_times)
    assert active.process.wait(timeout=30) == (-signal.SIGKILL if stop == "SIGKILL" else 0)
    wait_for(lambda: committed_closed(settings, bar_times) > at_stop, standby, timeout_s=60,
             what="a commit of the new active engine")
    first_commit_s = time.monotonic() - asked
    print(f"\n{stop}: the standby was active {took_s:.2f} s after the signal, committed {first_commit_s:.2f} s after it")
    if stop == "SIGKILL":  # the group waits out the dead engine's session (from its last heartbeat)
        assert SESSION_TIMEOUT_S - 2 * HEARTBEAT_S <= took_s <= SESSION_TIMEOUT_S + 5.0, took_s
    else:  # the stopped engine left the group: no session to wait out
        assert took_s < SESSION_TIMEOUT_S / 2, took_s
    assert first_commit_s - took_s < 30.0, (took_s, first_commit_s)

    # The stop landed mid-stream: cross-sections were committed before it,
    # and most were still to come.
    assert len(bar_times) // 3 <= at_stop < 0.9 * len(bar_times), (at_stop, len(bar_times))
    assert standby.active_gauge() == 1
    wait_for(lambda: committed_closed(settings, bar_times) == len(bar_times), standby, timeout_s=300,
             what="the new active engine through the backlog")

    # The engine that was stopped comes back as the standby.
    again = pair.start("again")
    wait_for(lambda: len(engine_status(settings).get("engines", [])) == 2, again, standby,
             what="the restarted engine in the lease group")
    assert again.role() == "standby" and standby.role() == "active"
    assert (standby.active_gauge(), again.active_gauge()) == (1, 0)
    members = engine_status(settings)["engines"]
    assert [(m["role"], m["pid"]) for m in members] == [("active", standby.process.pid),
                                                         ("standby", again.process.pid)], members

    for engine in (again, standby):
        engine.process.send_signal(signal.SIGTERM)
        assert engine.process.wait(timeout=30) == 0, engine.log.read_text()[-3000:]
    assert_signals_equal_predict(committed_signals(settings), world["expected"])
