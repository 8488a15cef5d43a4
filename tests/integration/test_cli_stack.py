"""`signalml up / status / down` as a user runs them, on a second, private stack."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from signalml.services.process import free_port

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def signalml(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "signalml.cli", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=240
    )


def our_processes(state_dir: Path) -> list[int]:
    """Pids whose command line mentions the private stack's state dir or its markers."""
    markers = [str(state_dir).encode()]
    for record in state_dir.glob("*.json"):
        markers.append(json.loads(record.read_text())["marker"].encode())
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if any(m in cmdline for m in markers):
                found.append(int(entry.name))
    return found


@pytest.fixture
def private_env(tmp_path):
    env = dict(os.environ)
    ports = {
        "SIGNALML__KAFKA__PORT": free_port(),
        "SIGNALML__KAFKA__CONTROLLER_PORT": free_port(),
        "SIGNALML__TRITON__HTTP_PORT": free_port(),
        "SIGNALML__TRITON__GRPC_PORT": free_port(),
        "SIGNALML__TRITON__METRICS_PORT": free_port(),
    }
    env.update({k: str(v) for k, v in ports.items()})
    env["SIGNALML__PATHS__STATE_DIR"] = str(tmp_path / "state")
    env["SIGNALML__TRITON__REPOSITORY"] = str(tmp_path / "repo")
    yield env, tmp_path / "state", ports
    signalml(env, "down")


def test_up_twice_is_harmless_status_reports_and_down_leaves_nothing(private_env):
    env, state_dir, ports = private_env
    first = signalml(env, "up")
    assert first.returncode == 0, first.stderr
    before = json.loads(signalml(env, "status", "--json").stdout)

    second = signalml(env, "up")
    assert second.returncode == 0, second.stderr
    after = json.loads(signalml(env, "status", "--json").stdout)

    assert before["kafka"]["pid"] == after["kafka"]["pid"]
    assert before["triton"]["pid"] == after["triton"]["pid"]
    assert after["kafka"]["version"] == "4.1.1"
    assert after["triton"]["version"] == "2.51.0"
    assert after["kafka"]["topics"] == {"bars": 4, "bars.dlq": 1, "signals": 4, "signals.challenger": 4,
                                        "cross.sections": 1, "drift": 1, "control": 1, "engine.state": 1,
                                        "engine.lease": 1}
    assert after["kafka"]["ports"]["port"] == ports["SIGNALML__KAFKA__PORT"]
    assert our_processes(state_dir)

    down = signalml(env, "down")
    assert down.returncode == 0 and "kafka" in down.stdout and "triton" in down.stdout
    assert our_processes(state_dir) == []
    stopped = json.loads(signalml(env, "status", "--json").stdout)
    assert not stopped["kafka"]["running"] and not stopped["triton"]["running"]


def test_a_port_in_use_is_a_clear_error_naming_the_port(private_env):
    env, state_dir, ports = private_env
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", ports["SIGNALML__TRITON__GRPC_PORT"]))
        squatter.listen()
        result = signalml(env, "up")
    assert result.returncode == 1
    assert f"port {ports['SIGNALML__TRITON__GRPC_PORT']}" in result.stderr
    assert "triton.grpc_port" in result.stderr
    # The Kafka this call had started is stopped again: nothing half-up is left.
    assert our_processes(state_dir) == []
