"""``signalml monitor`` as a real worker process: start it on a world's
settings, read its /status, stop it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

from tests.integration.engine_world import REPO


def monitor_env(settings) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "SIGNALML__PATHS__STATE_DIR": str(settings.paths.state_dir),
        "SIGNALML__MONITOR__APP_ID": settings.monitor.app_id,
        "SIGNALML__MONITOR__HTTP_PORT": str(settings.monitor.http_port),
        "SIGNALML__MONITOR__SESSION_TIMEOUT_S": str(settings.monitor.session_timeout_s),
        "SIGNALML__TRAINING__LABEL_HORIZON_BARS": str(settings.training.label_horizon_bars),
    })
    for key, topic in settings.kafka.topics.all().items():
        env[f"SIGNALML__KAFKA__TOPICS__{key.upper()}__NAME"] = topic.name
    return env


def start_monitor(settings, log) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "signalml.cli", "monitor"], cwd=REPO, env=monitor_env(settings),
                            stdout=open(log, "ab"), stderr=subprocess.STDOUT)


def status(settings) -> dict | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{settings.monitor.http_port}/status", timeout=2) as r:
            return json.load(r)
    except OSError:
        return None


def wait_for(settings, process, done, log, what: str, timeout_s: float = 240.0) -> dict:
    """Poll the worker's /status until ``done(report)``; the worker must stay up."""
    deadline = time.monotonic() + timeout_s
    report = None
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()[-3000:]
        report = status(settings)
        if report and report["ready"] and done(report):
            return report
        time.sleep(0.5)
    raise AssertionError(f"monitor: {what} did not happen in {timeout_s:.0f} s: {report}")


def wait_for_line(process, log, text: str, timeout_s: float = 120.0) -> None:
    """Until a line of this process (Faust writes its pid on each) in the log holds ``text``."""
    pid = f"[{process.pid}]"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()[-3000:]
        if any(pid in line and text in line for line in log.read_text(errors="replace").splitlines()):
            return
        time.sleep(0.05)
    raise AssertionError(f"monitor: no {text!r} in its log in {timeout_s:.0f} s")


def stop(process) -> None:
    """SIGTERM: Faust lets the agent finish its message (its events delivered) and exits."""
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0
