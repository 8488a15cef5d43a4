"""A long-running child process owned by the project: spawn, record, find, stop.

Each service writes ``<state_dir>/<name>.json`` with its pid, process-group
id, ports and start time. A later ``signalml`` invocation (``status``,
``down``, a second ``up``) finds the process through that record and checks
that the pid still belongs to it (the recorded marker must appear in its
command line, as psutil reads it), so a recycled pid is never mistaken for
ours.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import psutil

from signalml.errors import PortInUseError, ServiceError
from signalml.jsonio import read_json, write_json


def port_in_use(host: str, port: int) -> bool:
    """True when something is listening on (or holding) ``host:port``."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def port_answers(host: str, port: int, timeout_s: float = 0.5) -> bool:
    """True when a TCP connection to ``host:port`` succeeds."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def free_port(host: str = "127.0.0.1") -> int:
    """A port the kernel considers free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def require_free_ports(service: str, host: str, ports: dict[str, int]) -> None:
    """Raise :class:`PortInUseError` naming the first taken port and its setting."""
    for setting, port in ports.items():
        if port_in_use(host, port):
            raise PortInUseError(service, setting, host, port)


def wait_until(
    condition: Callable[[], bool],
    *,
    timeout_s: float,
    what: str,
    alive: Callable[[], bool] | None = None,
    log_path: Path | None = None,
    interval_s: float = 0.1,
) -> None:
    """Poll ``condition`` until it holds; fail early if ``alive`` says the
    process died, and quote the end of its log in the error."""
    deadline = time.monotonic() + timeout_s
    while True:
        if condition():
            return
        if alive is not None and not alive():
            raise ServiceError(f"{what}: the process exited during start-up{_log_tail(log_path)}")
        if time.monotonic() > deadline:
            raise ServiceError(f"{what}: not ready after {timeout_s:.0f} s{_log_tail(log_path)}")
        time.sleep(interval_s)


def _log_tail(log_path: Path | None, lines: int = 15) -> str:
    if log_path is None or not log_path.exists():
        return ""
    tail = log_path.read_text(errors="replace").splitlines()[-lines:]
    return f"\n--- last lines of {log_path} ---\n" + "\n".join(tail)


@dataclass
class ProcessRecord:
    """What ``<state_dir>/<name>.json`` holds."""

    name: str
    pid: int
    marker: str
    started_at: float
    ports: dict[str, int] = field(default_factory=dict)
    version: str = ""
    log: str = ""

    def alive(self) -> bool:
        return pid_matches(self.pid, self.marker)


def pid_matches(pid: int, marker: str) -> bool:
    """True when ``pid`` runs (a zombie is gone) and its command line
    contains ``marker``."""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        return marker in "\0".join(process.cmdline())
    except psutil.Error:
        return False


class ManagedProcess:
    """One named child process with its record file and log."""

    def __init__(self, name: str, state_dir: Path):
        self.name = name
        self.state_dir = state_dir
        self.record_path = state_dir / f"{name}.json"
        self.log_path = state_dir / "logs" / f"{name}.log"

    def record(self) -> ProcessRecord | None:
        """The recorded process if it is still alive, else ``None`` (and the
        stale record is removed)."""
        if not self.record_path.exists():
            return None
        try:
            rec = ProcessRecord(**read_json(self.record_path))
        except (ValueError, TypeError):
            self.record_path.unlink(missing_ok=True)
            return None
        if not rec.alive():
            self.record_path.unlink(missing_ok=True)
            return None
        return rec

    def spawn(
        self,
        argv: list[str],
        *,
        marker: str,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        ports: dict[str, int] | None = None,
        version: str = "",
    ) -> ProcessRecord:
        """Start ``argv`` in its own session (so it outlives this CLI call
        and can be stopped as a group) with output appended to the log."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=cwd,
                start_new_session=True,
            )
        rec = ProcessRecord(
            name=self.name,
            pid=proc.pid,
            marker=marker,
            started_at=time.time(),
            ports=dict(ports or {}),
            version=version,
            log=str(self.log_path),
        )
        self._child = proc  # keep the handle so the child is reaped if we wait
        write_json(self.record_path, asdict(rec))
        return rec

    def alive_check(self, rec: ProcessRecord) -> Callable[[], bool]:
        def alive() -> bool:
            child = getattr(self, "_child", None)
            if child is not None and child.pid == rec.pid:
                # Our own child: poll() is authoritative. Its command line
                # can read empty for a moment after Popen returns (the kernel
                # sets up the new argv late in execve), so the marker check
                # would report a just-started process as dead.
                return child.poll() is None
            return rec.alive()

        return alive

    def stop(self, timeout_s: float = 30.0) -> bool:
        """SIGTERM the process group, wait, then SIGKILL. Returns whether a
        process was running."""
        rec = self.record()
        if rec is None:
            self.record_path.unlink(missing_ok=True)
            return False
        _signal_group(rec.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and _group_alive(rec.pid, rec.marker):
            _reap(rec.pid)
            time.sleep(0.1)
        if _group_alive(rec.pid, rec.marker):
            _signal_group(rec.pid, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and _group_alive(rec.pid, rec.marker):
                _reap(rec.pid)
                time.sleep(0.1)
        self.record_path.unlink(missing_ok=True)
        return True


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)  # the child leads its own session, so pgid == pid
    except ProcessLookupError:
        pass
    except PermissionError as exc:
        raise ServiceError(f"cannot signal process group {pid}: {exc}") from None


def _group_alive(pgid: int, marker: str) -> bool:
    """True while any process of the group still runs (not a zombie)."""
    for process in psutil.process_iter(["status"]):
        try:
            if process.info["status"] != psutil.STATUS_ZOMBIE and os.getpgid(process.pid) == pgid:
                return True
        except (OSError, psutil.Error):  # gone meanwhile
            continue
    return False


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
