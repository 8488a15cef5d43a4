"""The embedded NVIDIA Triton Inference Server (``tritonserver`` 2.51 from the
``nvidia-pytriton`` wheel), run from its own venv (``triton.venv``, made by
``scripts/setup-triton.sh``) on loopback.

The server runs in explicit model-control mode: it starts with no model
loaded, and :meth:`TritonServer.load_model` / :meth:`unload_model` (or any
Triton client) load and unload models of ``triton.repository``. Control and
status calls go through ``tritonclient``'s HTTP client; the engine's hot
path uses ``tritonclient`` over gRPC (``settings.triton.grpc_url``).
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from pathlib import Path
from typing import Any

from signalml.config import Settings
from signalml.errors import PortInUseError, ServiceError, SetupError
from signalml.jsonio import read_json
from signalml.services.process import ManagedProcess, ProcessRecord, require_free_ports, wait_until

SETUP_SCRIPT = "scripts/setup-triton.sh"
STAMP_FILE = "signalml-triton.json"  # written by the setup script inside the venv
_SOCKET_IN_USE = re.compile(r"Socket '([^']*):(\d+)' already in use")


class TritonServer:
    """Start, stop and inspect the project's Triton server.

    One server per state directory: its pid and ports are recorded in
    ``<state_dir>/triton.json`` and its output goes to
    ``<state_dir>/logs/triton.log``.
    """

    name = "triton"

    def __init__(self, settings: Settings):
        self.settings = settings
        self.cfg = settings.triton
        self.process = ManagedProcess(self.name, settings.state_dir)
        # Our server's ``--id`` (shown as the name in server metadata): it also
        # marks the process so a recycled pid is never taken for ours.
        digest = hashlib.sha1(str(settings.state_dir.resolve()).encode()).hexdigest()[:12]
        self.marker = f"signalml-triton-{digest}"

    # ------------------------------------------------------------ set-up
    @property
    def venv(self) -> Path:
        return self.settings.path(self.cfg.venv)

    def _install(self) -> dict[str, Any]:
        """What the setup script recorded, after checking the files exist."""
        hint = f"run `bash {SETUP_SCRIPT} {self.venv}` (setting triton.venv)"
        stamp = self.venv / STAMP_FILE
        if not (self.venv / "bin" / "python").exists():
            raise SetupError(f"triton: no server venv at {self.venv}; {hint}")
        try:
            info = read_json(stamp)
        except (OSError, ValueError):
            raise SetupError(
                f"triton: the server venv {self.venv} is not set up (no valid {STAMP_FILE}); {hint}"
            ) from None
        for key, what in (("tritonserver", "tritonserver binary"), ("stub", "Python backend stub")):
            if not Path(info.get(key, "")).is_file():
                raise SetupError(f"triton: the {what} is missing ({info.get(key)}); {hint}")
        return info

    def _ports(self) -> dict[str, int]:
        return {"http": self.cfg.http_port, "grpc": self.cfg.grpc_port, "metrics": self.cfg.metrics_port}

    # ------------------------------------------------------------ lifecycle
    def start(self) -> dict[str, Any]:
        """Start the server and wait until ``/v2/health/ready`` answers 200
        (at most ``triton.startup_timeout_s`` seconds). Returns :meth:`status`.

        Idempotent: when our server is already running, waits until it
        answers (``/v2/health/live``) and returns. (With strict readiness, a
        model version whose load failed keeps ``ready`` false until that
        version loads; :meth:`status` reports it, it is not treated as down.)

        Raises :class:`SetupError` when the server venv is missing,
        :class:`PortInUseError` when a configured port is taken, and
        :class:`ServiceError` when the server exits or is not ready in time.
        """
        rec = self.process.record()
        if rec is not None:
            if rec.ports != self._ports():
                raise ServiceError(
                    f"triton: already running (pid {rec.pid}) on ports {rec.ports}, not the configured "
                    f"{self._ports()}; stop it first (signalml down)"
                )
            self._wait_ready(rec, ready=False)
            return self.status()

        info = self._install()
        host = self.cfg.host
        require_free_ports(
            self.name,
            host,
            {f"triton.{kind}_port": port for kind, port in self._ports().items()},
        )
        repository = self.settings.triton_repository
        repository.mkdir(parents=True, exist_ok=True)

        argv = [
            info["tritonserver"],
            f"--id={self.marker}",
            f"--model-repository={repository.resolve()}",
            "--model-control-mode=explicit",
            f"--backend-directory={info['backend_directory']}",
            f"--http-address={host}",
            f"--http-port={self.cfg.http_port}",
            f"--grpc-address={host}",
            f"--grpc-port={self.cfg.grpc_port}",
            f"--metrics-address={host}",
            f"--metrics-port={self.cfg.metrics_port}",
            "--strict-readiness=true",
            "--exit-timeout-secs=20",
            f"--log-verbose={self.cfg.log_verbose}",
        ]
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
        # The stub's embedded Python finds the server venv's packages through
        # the first python3 on PATH; LIBDIR gives it the matching libpython.
        env["PATH"] = os.pathsep.join([str(self.venv / "bin"), env.get("PATH", "/usr/bin:/bin")])
        env["VIRTUAL_ENV"] = str(self.venv)
        libdirs = [info["libdir"]] if info.get("libdir") else []
        env["LD_LIBRARY_PATH"] = os.pathsep.join(libdirs + [p for p in [env.get("LD_LIBRARY_PATH")] if p])

        self.process.log_path.parent.mkdir(parents=True, exist_ok=True)
        log_start = self.process.log_path.stat().st_size if self.process.log_path.exists() else 0
        rec = self.process.spawn(argv, marker=self.marker, env=env, cwd=self.settings.state_dir, ports=self._ports())
        try:
            self._wait_ready(rec)
        except ServiceError:
            self._port_clash(log_start)
            self.process.stop(timeout_s=10)
            raise
        return self.status()

    def _wait_ready(self, rec: ProcessRecord, *, ready: bool = True) -> None:
        """Wait until the server answers ready (or only live: ``ready`` False)."""
        wait_until(
            lambda: self._probe(ready, timeout_s=1.0),
            timeout_s=self.cfg.startup_timeout_s,
            what=f"triton (pid {rec.pid})",
            alive=self.process.alive_check(rec),
            log_path=self.process.log_path,
        )
        # Make sure the answer came from our server, not an older one.
        meta = self._server_metadata()
        if meta.get("name") != self.marker:
            raise ServiceError(
                f"triton: the server answering on {self.cfg.http_url} is not ours "
                f"(id {meta.get('name')!r}, expected {self.marker!r})"
            )

    def _port_clash(self, log_start: int) -> None:
        """Raise PortInUseError if the log says a port was taken after our check."""
        try:
            with open(self.process.log_path, "rb") as log:
                log.seek(log_start)
                text = log.read().decode(errors="replace")
        except OSError:
            return
        match = _SOCKET_IN_USE.search(text)
        if match:
            port = int(match.group(2))
            kind = next((k for k, p in self._ports().items() if p == port), "http")
            self.process.stop(timeout_s=10)
            raise PortInUseError(self.name, f"triton.{kind}_port", self.cfg.host, port)

    def stop(self, timeout_s: float = 30.0) -> bool:
        """SIGTERM the server (and its backend stubs), SIGKILL after
        ``timeout_s`` seconds. Returns whether a server was running."""
        return self.process.stop(timeout_s=timeout_s)

    def running(self) -> bool:
        return self.process.record() is not None

    # ------------------------------------------------------------ status
    def status(self) -> dict[str, Any]:
        """``running``, ``live``, ``ready`` (strict: every model version
        asked to load is ready), ``pid``, ``ports``, ``urls``, ``version``,
        ``models`` (the repository index: name, version, state, reason),
        ``repository``, ``log`` and ``uptime_s`` (seconds). Never raises for
        a server that does not answer: ``error`` says why."""
        rec = self.process.record()
        out: dict[str, Any] = {
            "service": self.name,
            "running": rec is not None,
            "live": False,
            "ready": False,
            "pid": rec.pid if rec else None,
            "ports": rec.ports if rec else self._ports(),
            "urls": {
                "http": f"http://{self.cfg.http_url}",
                "grpc": self.cfg.grpc_url,
                "metrics": f"http://{self.cfg.host}:{self.cfg.metrics_port}/metrics",
            },
            "version": None,
            "models": [],
            "repository": str(self.settings.triton_repository),
            "log": str(self.process.log_path),
            "uptime_s": round(time.time() - rec.started_at, 1) if rec else None,
        }
        if rec is None:
            return out
        try:
            out["live"] = self._probe(ready=False)
            out["ready"] = self._probe(ready=True)
            out["version"] = self._server_metadata().get("version")
            out["models"] = self.models()
        except ServiceError as exc:
            out["error"] = str(exc)
        return out

    def version(self) -> str:
        """The running server's Triton version (e.g. ``2.51.0``)."""
        version = self._server_metadata().get("version")
        if not version:
            raise ServiceError("triton: server metadata has no version")
        return version

    def models(self) -> list[dict[str, Any]]:
        """The repository index: every model folder with its state
        (``READY``, ``UNAVAILABLE``, or no state when never loaded)."""
        return self._call("repository index", lambda c: c.get_model_repository_index())

    def load_model(self, name: str) -> None:
        """Load (or reload, when its files changed) model ``name``; blocks
        until it is ready (a no-op when loaded and unchanged) or raises
        :class:`ServiceError` with Triton's reason."""
        self._call(f"load of model {name!r}", lambda c: c.load_model(name), timeout_s=300)

    def unload_model(self, name: str, timeout_s: float = 60.0) -> None:
        """Unload model ``name`` and wait (at most ``timeout_s`` seconds)
        until it is gone; Triton itself answers before the unload finishes."""
        self._call(f"unload of model {name!r}", lambda c: c.unload_model(name), timeout_s=timeout_s)

        def unloaded() -> bool:
            return all(m.get("state") not in ("READY", "UNLOADING") for m in self.models() if m["name"] == name)

        wait_until(unloaded, timeout_s=timeout_s, what=f"triton: unload of model {name!r}", interval_s=0.05)

    # ------------------------------------------------------------ control API
    def _call(self, what: str, call, *, timeout_s: float = 10.0) -> Any:
        """``call(client)`` with a ``tritonclient`` HTTP client; raises
        :class:`ServiceError` when the server refuses (with its reason) or
        does not answer."""
        import tritonclient.http as triton_http
        from tritonclient.utils import InferenceServerException

        client = triton_http.InferenceServerClient(self.cfg.http_url, connection_timeout=timeout_s,
                                                   network_timeout=timeout_s)
        try:
            return call(client)
        except InferenceServerException as exc:
            raise ServiceError(f"triton: {what} failed (HTTP {exc.status()}): {exc.message()}") from None
        except OSError:
            raise ServiceError(f"triton: {what}: no answer from {self.cfg.http_url} (is it running? signalml up)") from None
        finally:
            client.close()

    def _probe(self, ready: bool, timeout_s: float = 5.0) -> bool:
        """Whether the server answers ready (or live); False when it does not answer."""
        try:
            return self._call("readiness probe", lambda c: c.is_server_ready() if ready else c.is_server_live(),
                              timeout_s=timeout_s)
        except ServiceError:
            return False

    def _server_metadata(self) -> dict[str, Any]:
        return self._call("server metadata", lambda c: c.get_server_metadata())
