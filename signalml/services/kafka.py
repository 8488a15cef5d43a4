"""The embedded Apache Kafka broker: one KRaft node (broker + controller) on loopback.

The broker's jars come from Maven Central at the version pinned in
``kafka/pom.xml``; Maven resolves them once into ``~/.m2`` and the classpath
is cached in ``<state_dir>/kafka/classpath.txt``. Everything the broker
writes lives under ``<state_dir>/kafka/``: ``server.properties``, ``data/``
(the log directory, formatted once) and ``logs/server.log``. Its stdout
(warnings and errors only) goes to ``<state_dir>/logs/kafka.log``.

Run ``python -m signalml.services.kafka resolve`` to fetch the jars ahead of
time (the setup script does); ``start``, ``stop`` and ``status`` work too.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from signalml.config import Settings
from signalml.errors import ServiceError, SetupError
from signalml.services.process import ManagedProcess, port_answers, require_free_ports, wait_until

log = logging.getLogger(__name__)

KAFKA_DIR = Path(__file__).resolve().parents[2] / "kafka"
POM = KAFKA_DIR / "pom.xml"
LOG4J_CONFIG = KAFKA_DIR / "log4j2.yaml"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # Maven colours its output even with -B
_POM_NS = {"m": "http://maven.apache.org/POM/4.0.0"}

# The kafka-server-start.sh defaults, minus the 1 GB heap.
_JVM_OPTS = [
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-Djava.awt.headless=true",
]


def pinned_version(pom: Path | None = None) -> str:
    """The ``kafka.version`` property of ``kafka/pom.xml``."""
    pom = pom or POM
    if not pom.is_file():
        raise SetupError(f"kafka: {pom} not found: the embedded broker (`signalml up`) runs from a source "
                         "checkout (pip install -e .); an installed package uses a running broker at "
                         "kafka.host:kafka.port")
    try:
        node = ET.parse(pom).getroot().find("m:properties/m:kafka.version", _POM_NS)
    except (OSError, ET.ParseError) as exc:
        raise SetupError(f"kafka: cannot read {pom}: {exc}") from None
    if node is None or not (node.text or "").strip():
        raise SetupError(f"kafka: {pom} has no <kafka.version> property")
    return node.text.strip()


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class KafkaBroker:
    """Start, stop and inspect the project's Kafka broker for one ``Settings``.

    Two ``Settings`` with different state directories describe two
    independent brokers; the process marker is derived from the state
    directory, so neither ever mistakes the other's process for its own.
    """

    def __init__(self, settings: Settings):
        self.settings = settings
        self.cfg = settings.kafka
        self.state_dir = settings.state_dir.resolve()
        self.home = self.state_dir / "kafka"
        self.data_dir = self.home / "data"
        self.logs_dir = self.home / "logs"
        self.properties_path = self.home / "server.properties"
        self.classpath_path = self.home / "classpath.txt"
        self.pom_hash_path = self.home / "classpath.pom-sha256"
        self.process = ManagedProcess("kafka", self.state_dir)
        digest = hashlib.sha256(str(self.state_dir).encode()).hexdigest()[:16]
        self.marker = f"-Dsignalml.kafka.stack={digest}"
        self.bootstrap = self.cfg.bootstrap_servers

    # ------------------------------------------------------------ classpath

    def check_version(self) -> None:
        """Raise :class:`SetupError` unless ``kafka.version`` matches the pom."""
        pinned = pinned_version()
        if pinned != self.cfg.version:
            raise SetupError(
                f"kafka: setting kafka.version is {self.cfg.version!r} but {POM} pins "
                f"kafka.version {pinned!r}; make them equal (edit the pom to change versions)"
            )

    def resolve(self) -> list[Path]:
        """The broker's runtime classpath (jar paths), running Maven only when
        the cached list is missing, stale (pom changed) or names a missing jar."""
        self.check_version()
        pom_hash = hashlib.sha256(POM.read_bytes()).hexdigest()
        cached = self._cached_classpath(pom_hash)
        if cached is not None:
            return cached
        mvn = shutil.which("mvn")
        if mvn is None:
            raise SetupError("kafka: Maven (mvn) is not on PATH; it is needed once to fetch the broker's jars")
        self.home.mkdir(parents=True, exist_ok=True)
        tmp = self.classpath_path.with_suffix(".tmp")
        argv = [mvn, "-q", "-B", "-f", str(POM), "dependency:build-classpath", f"-Dmdep.outputFile={tmp}"]
        log.info("kafka: resolving the broker's jars with Maven (the first run downloads about 45 MB)")
        started = time.monotonic()
        done = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if done.returncode != 0 or not tmp.exists():
            output = _ANSI.sub("", done.stdout + done.stderr).strip().splitlines()[-30:]
            raise SetupError(
                f"kafka: Maven failed to resolve the broker's jars (exit {done.returncode}): "
                f"{' '.join(argv)}\n" + "\n".join(output)
            )
        jars = [Path(p) for p in tmp.read_text().strip().split(os.pathsep) if p]
        if not any(j.name.startswith("kafka_2.13-") for j in jars):
            raise SetupError(f"kafka: Maven's classpath has no kafka_2.13 jar: {tmp}")
        tmp.replace(self.classpath_path)
        self.pom_hash_path.write_text(pom_hash)
        log.info("kafka: %d jars resolved in %.1f s", len(jars), time.monotonic() - started)
        return jars

    def _cached_classpath(self, pom_hash: str) -> list[Path] | None:
        try:
            if self.pom_hash_path.read_text().strip() != pom_hash:
                return None
            jars = [Path(p) for p in self.classpath_path.read_text().strip().split(os.pathsep) if p]
        except OSError:
            return None
        return jars if jars and all(j.is_file() for j in jars) else None

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start the broker (idempotent) and create the configured topics.

        Waits up to ``kafka.startup_timeout_s`` seconds for the broker to
        answer a metadata request. Raises :class:`PortInUseError` when a port
        is taken by another process, :class:`ServiceError` when the broker
        dies or does not answer in time (with the end of its log).
        """
        rec = self.process.record()
        if rec is not None:
            wanted = self._ports()
            if rec.ports != wanted or rec.version != self.cfg.version:
                raise ServiceError(
                    f"kafka: already running (pid {rec.pid}) with ports {rec.ports}, version {rec.version}; "
                    f"the configuration asks for {wanted}, version {self.cfg.version}: stop it first (signalml down)"
                )
            if port_answers(self.cfg.host, self.cfg.port):
                log.info("kafka: already running (pid %d, %s)", rec.pid, self.bootstrap)
            else:  # ours but not answering yet: another call is starting it
                self._wait_ready(self.process.alive_check(rec))
            self.ensure_topics()  # the configuration may name topics this broker has not seen
            return
        require_free_ports(
            "kafka", self.cfg.host, {"kafka.port": self.cfg.port, "kafka.controller_port": self.cfg.controller_port}
        )
        classpath = os.pathsep.join(str(j) for j in self.resolve())
        java = self._java()
        self.home.mkdir(parents=True, exist_ok=True)
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        self.properties_path.write_text(self._server_properties())
        if not (self.data_dir / "meta.properties").exists():
            self._format(java, classpath)
        argv = [
            java,
            f"-Xmx{self.cfg.heap_mb}m",
            *_JVM_OPTS,
            self.marker,
            "-cp",
            classpath,
            f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
            f"-Dkafka.logs.dir={self.logs_dir}",
            "kafka.Kafka",
            str(self.properties_path),
        ]
        started = time.monotonic()
        rec = self.process.spawn(
            argv,
            marker=self.marker,
            cwd=self.home,
            ports=self._ports(),
            version=self.cfg.version,
        )
        try:
            self._wait_ready(self.process.alive_check(rec))
        except ServiceError as exc:
            self.process.stop(timeout_s=10)
            raise ServiceError(f"{exc}\n(full broker log: {self.logs_dir / 'server.log'})") from None
        log.info("kafka: %s ready on %s in %.1f s (pid %d)", self.cfg.version, self.bootstrap,
                 time.monotonic() - started, rec.pid)
        self.ensure_topics()

    def stop(self, timeout_s: float = 30.0) -> bool:
        """SIGTERM the broker (Kafka shuts down cleanly), SIGKILL after
        ``timeout_s`` seconds. Returns whether a broker of ours was running."""
        return self.process.stop(timeout_s=timeout_s)

    def status(self) -> dict[str, Any]:
        """``running``, ``pid``, ``ports``, ``version``, ``bootstrap`` and, when
        the broker answers, ``topics`` (name -> partition count)."""
        rec = self.process.record()
        out: dict[str, Any] = {
            "running": rec is not None,
            "pid": rec.pid if rec else None,
            "ports": rec.ports if rec else self._ports(),
            "version": rec.version if rec else self.cfg.version,
            "bootstrap": self.bootstrap,
        }
        if rec is not None:
            try:
                out["topics"] = self.topics(timeout_s=5)
            except ServiceError as exc:
                out["error"] = str(exc)
        return out

    # ------------------------------------------------------------ topics

    def admin(self) -> Any:
        """A ``confluent_kafka.admin.AdminClient`` for this broker (its
        connection-refused chatter goes to our logger at debug level)."""
        from confluent_kafka.admin import AdminClient

        return AdminClient({"bootstrap.servers": self.bootstrap, "logger": _RdkafkaLog()})

    def topics(self, timeout_s: float = 10.0) -> dict[str, int]:
        """Topic name -> partition count, internal topics (``__*``) left out."""
        md = self._metadata(self.admin(), timeout_s)
        return {name: len(t.partitions) for name, t in md.topics.items() if not name.startswith("__")}

    def ensure_topics(self, timeout_s: float = 30.0) -> dict[str, str]:
        """Create the configured topics that are missing (idempotent).

        Existing topics are left as they are; a partition count that differs
        from the configuration is logged as a warning. Returns topic name ->
        ``"created"``, ``"exists"`` or a description of the difference.
        """
        from confluent_kafka import KafkaError, KafkaException
        from confluent_kafka.admin import NewTopic

        from signalml.services.topics import creation_config

        admin = self.admin()
        existing = self._metadata(admin, timeout_s).topics
        report: dict[str, str] = {}
        missing: list[NewTopic] = []
        for key, topic in self.cfg.topics.all().items():
            if topic.name in existing:
                have = len(existing[topic.name].partitions)
                report[topic.name] = "exists"
                if have != topic.partitions:
                    report[topic.name] = f"exists with {have} partitions (configured {topic.partitions})"
                    log.warning("kafka: topic %s has %d partitions, configured %d; left unchanged",
                                topic.name, have, topic.partitions)
            else:
                missing.append(NewTopic(topic.name, topic.partitions, 1, config=creation_config(self.settings, key)))
        if missing:
            futures = admin.create_topics(missing, operation_timeout=timeout_s, request_timeout=timeout_s)
            for name, future in futures.items():
                try:
                    future.result()
                    report[name] = "created"
                except KafkaException as exc:
                    if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                        raise ServiceError(f"kafka: cannot create topic {name!r}: {exc.args[0].str()}") from None
                    report[name] = "exists"
            # Created means committed by the controller; wait until the broker
            # serves every partition so a producer can use them right away.
            names = {t.topic for t in missing}
            wait_until(lambda: self._have_leaders(admin, names), timeout_s=timeout_s,
                       what=f"kafka: topics {sorted(names)} getting partition leaders")
            log.info("kafka: created topics %s", sorted(names))
        return report

    # ------------------------------------------------------------ internals

    def _ports(self) -> dict[str, int]:
        return {"port": self.cfg.port, "controller_port": self.cfg.controller_port}

    def _java(self) -> str:
        java_home = os.environ.get("JAVA_HOME")
        java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
        if not java or not Path(java).exists():
            raise SetupError("kafka: no Java found (JAVA_HOME or java on PATH); the broker needs Java 17+")
        return java

    def _server_properties(self) -> str:
        host = self.cfg.host
        listener = f"PLAINTEXT://{_hostport(host, self.cfg.port)}"
        controller = f"CONTROLLER://{_hostport(host, self.cfg.controller_port)}"
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "listeners": f"{listener},{controller}",
            "advertised.listeners": f"{listener},{controller}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.data_dir),
            "num.partitions": "1",
            # A topic exists because `signalml up` created it as configured,
            # never because a client named it (it would get 1 partition).
            "auto.create.topics.enable": "false",
            # One broker: the defaults (3 replicas, min ISR 2) make groups and
            # transactions hang.
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            # 50 partitions each (the defaults) buy nothing on one broker and
            # slow the first transaction (init_transactions 1.1 s -> 0.5 s).
            "offsets.topic.num.partitions": "1",
            "transaction.state.log.num.partitions": "1",
            # The cleaner allocates this at start (default 128 MiB) - too much
            # for a small heap.
            "log.cleaner.dedupe.buffer.size": str(16 * 1024 * 1024),
        }
        if self._static_quorum():
            props["controller.quorum.voters"] = f"1@{_hostport(host, self.cfg.controller_port)}"
        else:
            props["controller.quorum.bootstrap.servers"] = _hostport(host, self.cfg.controller_port)
        lines = ["# Written by signalml on every start; edits are overwritten."]
        lines += [f"{k}={v.replace(chr(92), chr(92) * 2)}" for k, v in props.items()]
        return "\n".join(lines) + "\n"

    def _static_quorum(self) -> bool:
        # StorageTool --standalone cannot parse an IPv6 controller endpoint
        # (Kafka 4.1: "Failed to parse port in dynamic voter string"); a static
        # voter list handles [::1] fine.
        return ":" in self.cfg.host

    def _format(self, java: str, classpath: str) -> None:
        # A cluster id is 16 random bytes, base64url without padding; Kafka
        # never hands out one starting with "-" (it would read as an option).
        cluster_id = "-"
        while cluster_id.startswith("-"):
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        argv = [java, "-Xmx256m", self.marker, "-cp", classpath,
                f"-Dlog4j2.configurationFile={LOG4J_CONFIG}", f"-Dkafka.logs.dir={self.logs_dir}",
                "kafka.tools.StorageTool", "format", "-t", cluster_id,
                "-c", str(self.properties_path)]
        if not self._static_quorum():
            argv.append("--standalone")
        done = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120)
        if done.returncode != 0:
            raise ServiceError(
                f"kafka: formatting {self.data_dir} failed (exit {done.returncode}):\n"
                + (done.stdout + done.stderr).strip()[-3000:]
            )
        log.info("kafka: formatted %s (cluster id %s)", self.data_dir, cluster_id)

    def _wait_ready(self, alive: Any) -> None:
        from confluent_kafka import KafkaException

        admin = None

        def ready() -> bool:
            nonlocal admin
            if not port_answers(self.cfg.host, self.cfg.port):
                return False
            admin = admin or self.admin()
            try:
                return bool(admin.list_topics(timeout=2).brokers)
            except KafkaException:  # not ready yet; the deadline decides
                return False

        wait_until(ready, timeout_s=self.cfg.startup_timeout_s, what=f"kafka on {self.bootstrap}",
                   alive=alive, log_path=self.process.log_path, interval_s=0.2)

    def _metadata(self, admin: Any, timeout_s: float) -> Any:
        from confluent_kafka import KafkaException

        try:
            return admin.list_topics(timeout=timeout_s)
        except KafkaException as exc:
            raise ServiceError(
                f"kafka: no metadata from {self.bootstrap} within {timeout_s:.0f} s "
                f"({exc.args[0].str()}); is the broker running? (signalml status)"
            ) from None

    def _have_leaders(self, admin: Any, names: set[str]) -> bool:
        topics = self._metadata(admin, 5).topics
        return all(
            n in topics and topics[n].error is None and topics[n].partitions
            and all(p.leader >= 0 and p.error is None for p in topics[n].partitions.values())
            for n in names
        )


class _RdkafkaLog(logging.LoggerAdapter):
    """librdkafka's log lines (e.g. "Connection refused" while the broker
    starts) at debug level instead of on stderr."""

    def __init__(self) -> None:
        super().__init__(logging.getLogger("signalml.rdkafka"), {})

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        self.logger.debug(msg, *args)


def main(argv: list[str] | None = None) -> int:
    import argparse
    import json

    from signalml.config import load_settings
    from signalml.errors import SignalMLError

    parser = argparse.ArgumentParser(prog="python -m signalml.services.kafka")
    parser.add_argument("command", choices=["resolve", "start", "stop", "status"])
    parser.add_argument("--config", help="signalml.yaml to read")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        broker = KafkaBroker(load_settings(args.config))
        if args.command == "resolve":
            jars = broker.resolve()
            print(f"kafka {broker.cfg.version}: {len(jars)} jars, classpath in {broker.classpath_path}")
        elif args.command == "start":
            broker.start()
        elif args.command == "stop":
            print("stopped" if broker.stop() else "not running")
        else:
            print(json.dumps(broker.status(), indent=2))
    except SignalMLError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
