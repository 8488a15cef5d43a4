"""The service manager's process bookkeeping, on real processes: a record
names its process only while that process runs with the recorded marker,
and stopping a service stops every process of its group."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import psutil

from signalml.jsonio import write_json
from signalml.services.process import ManagedProcess, pid_matches

SLEEPER = "import time; time.sleep(120)"


def _wait(condition, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def test_a_pid_matches_only_its_own_marker_and_only_while_it_runs():
    child = subprocess.Popen([sys.executable, "-c", SLEEPER, "signalml-marker-1"])
    try:
        assert _wait(lambda: pid_matches(child.pid, "signalml-marker-1"))
        assert not pid_matches(child.pid, "signalml-marker-2")
    finally:
        child.kill()
    # Killed but not yet reaped: a zombie, which no longer counts as running.
    assert _wait(lambda: not pid_matches(child.pid, "signalml-marker-1"))
    child.wait()
    assert not pid_matches(child.pid, "signalml-marker-1")


def test_stop_ends_the_whole_group_also_a_member_that_ignores_sigterm_and_forgets_the_record(tmp_path):
    service = ManagedProcess("sleeper", tmp_path)
    # The service starts a process of its own (as the Kafka and Triton
    # launchers do), one that ignores SIGTERM: stop must not return before
    # it is gone.
    ready = tmp_path / "ignoring-sigterm"
    stubborn = (f"import pathlib, signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                f"pathlib.Path({str(ready)!r}).touch(); time.sleep(120)")
    script = f"import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', {stubborn!r}]); time.sleep(120)"
    record = service.spawn([sys.executable, "-c", script, "signalml-sleeper"], marker="signalml-sleeper")
    assert _wait(lambda: service.record() is not None)
    assert _wait(ready.exists), "the service's own process never started"
    members = _group(record.pid)
    assert service.stop(timeout_s=2) is True
    assert not [pid for pid in members if _running(pid)]
    assert service.record() is None and not service.record_path.exists()
    assert service.stop() is False


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _group(pgid: int) -> list[int]:
    pids = []
    for process in psutil.process_iter():
        try:
            if os.getpgid(process.pid) == pgid:
                pids.append(process.pid)
        except (OSError, psutil.Error):
            continue
    return pids


def test_a_record_of_a_recycled_pid_is_stale(tmp_path):
    service = ManagedProcess("recycled", tmp_path)
    other = subprocess.Popen([sys.executable, "-c", SLEEPER, "someone-else"])
    try:
        write_json(service.record_path, {"name": "recycled", "pid": other.pid, "marker": "signalml-recycled",
                                         "started_at": time.time()})
        assert service.record() is None  # the pid runs, but not our command
        assert not service.record_path.exists()
    finally:
        other.kill()
        other.wait()
