"""docker-compose.yml and deploy/ agree with the embedded stack's settings.

No Docker: the compose file, the Prometheus config and the Grafana provisioning
are parsed as data and checked against ``signalml.config.Settings()`` defaults
(ports, topics, the Triton repository), so a change to a default that is not
carried into the deployment files fails here.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from signalml.config import Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"

DEFAULTS = Settings()

REQUIRED_SERVICES = {"kafka", "kafka-init", "triton", "engine", "monitor", "trainer", "prometheus", "grafana"}
SIGNALML_SERVICES = ("engine", "monitor", "trainer")

# The monitor's HTTP port has no setting yet; once Settings grows a ``monitor``
# section with ``http_port``, its default is used instead of this constant.

# Metrics the engine and monitor export, and Triton's own, that the dashboard must show.
DASHBOARD_METRICS = {
    "signalml_bars_in_total",
    "signalml_bars_rejected_total",
    "signalml_bars_late_total",
    "signalml_cross_sections_total",
    "signalml_stage_latency_seconds_bucket",
    "signalml_triton_latency_seconds_bucket",
    "signalml_signals_out_total",
    "signalml_consumer_lag",
    "signalml_model_set_info",
    "signalml_drift_events_total",
    "signalml_bar_to_signal_seconds_bucket",
    "signalml_staleness_seconds",
    "signalml_triton_available",
    "signalml_monitor_rank_ic",
    "signalml_monitor_drift_events_total",
    "nv_inference_compute_infer_duration_us",
    "nv_inference_request_success",
    "nv_inference_request_duration_us",
    "nv_inference_queue_duration_us",
    "nv_cpu_utilization",
}


# ---------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def monitor_http_port() -> int:
    return DEFAULTS.monitor.http_port


def published_ports(service: dict[str, Any]) -> dict[int, int]:
    """Host port -> container port, from short ("8000:8000") or long syntax."""
    result: dict[int, int] = {}
    for entry in service.get("ports", []):
        if isinstance(entry, dict):
            result[int(entry["published"])] = int(entry["target"])
            continue
        parts = str(entry).split("/")[0].split(":")
        assert len(parts) in (2, 3), f"port {entry!r} must name the host port explicitly"
        result[int(parts[-2])] = int(parts[-1])
    return result


def volume_mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(source, container target) pairs, from short or long syntax."""
    mounts = []
    for entry in service.get("volumes", []):
        if isinstance(entry, dict):
            mounts.append((str(entry["source"]), str(entry["target"])))
        else:
            source, target = str(entry).split(":")[:2]
            mounts.append((source, target))
    return mounts


def bind_source(source: str) -> Path | None:
    """The host path of a bind mount (relative to the compose file), None for a named volume."""
    if source.startswith((".", "/")):
        return (COMPOSE_FILE.parent / source).resolve()
    return None


def mount_for(service: dict[str, Any], target: str) -> str:
    sources = [s for s, t in volume_mounts(service) if t == target]
    assert sources, f"nothing is mounted at {target}"
    return sources[0]


def command_args(service: dict[str, Any]) -> list[str]:
    command = service.get("command", [])
    return shlex.split(command) if isinstance(command, str) else [str(c) for c in command]


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def load_with_env(env: dict[str, str], tmp_path: Path) -> Settings:
    """Settings as a container loads them: the repository's signalml.yaml (the
    Dockerfile copies it into the working directory) and the service's
    SIGNALML__ variables, nothing from the environment running the test."""
    config = ROOT / "signalml.yaml"
    if not config.is_file():
        config = tmp_path / "signalml.yaml"
        config.write_text("")
    return load_settings(config, environ={k: v for k, v in env.items() if k.startswith("SIGNALML__")})


# ---------------------------------------------------------------- services


def test_required_services_present(services):
    assert REQUIRED_SERVICES <= set(services), f"missing: {sorted(REQUIRED_SERVICES - set(services))}"


def test_trainer_is_behind_a_profile_and_trains_then_publishes(services):
    trainer = services["trainer"]
    assert trainer.get("profiles") == ["train"]
    script = " ".join(command_args(trainer))
    assert re.search(r"signalml train\b.*&&.*signalml publish\b", script), script
    for name in REQUIRED_SERVICES - {"trainer"}:
        assert "profiles" not in services[name], f"{name} must start by default"


def test_signalml_services_use_the_project_image(services):
    for name in SIGNALML_SERVICES:
        build = services[name].get("build")
        assert build is not None, f"{name} must build the SignalML image"
        context = build if isinstance(build, str) else build.get("context", ".")
        dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
        assert (COMPOSE_FILE.parent / context / dockerfile).resolve() == DOCKERFILE
    assert services["engine"]["command"] == ["serve"]
    assert services["monitor"]["command"] == ["monitor"]


def test_dockerfile_installs_the_project_with_signalml_entrypoint():
    text = DOCKERFILE.read_text()
    assert re.search(r"^FROM python:3\.11-slim\b", text, re.M)
    assert re.search(r"^RUN pip install \"?\.", text, re.M)
    assert re.search(r'^ENTRYPOINT \["signalml"\]', text, re.M)


# ---------------------------------------------------------------- ports


def test_kafka_ports_match_settings(services):
    kafka = services["kafka"]
    env = environment(kafka)
    port, controller = DEFAULTS.kafka.port, DEFAULTS.kafka.controller_port
    assert port in published_ports(kafka), "Kafka's client port must be published on the host"
    assert controller not in published_ports(kafka)
    assert f"INTERNAL://kafka:{port}" in env["KAFKA_ADVERTISED_LISTENERS"]
    assert re.search(rf"HOST://[^,]+:{port}(,|$)", env["KAFKA_ADVERTISED_LISTENERS"])
    host_listener = re.search(r"HOST://[^,:]+:(\d+)", env["KAFKA_LISTENERS"])
    assert host_listener and published_ports(kafka)[port] == int(host_listener.group(1))
    assert f"CONTROLLER://0.0.0.0:{controller}" in env["KAFKA_LISTENERS"]
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{env['KAFKA_NODE_ID']}@kafka:{controller}"


def test_triton_ports_match_settings(services):
    triton = services["triton"]
    expected = {
        "http": DEFAULTS.triton.http_port,
        "grpc": DEFAULTS.triton.grpc_port,
        "metrics": DEFAULTS.triton.metrics_port,
    }
    ports = published_ports(triton)
    args = command_args(triton)
    for kind, port in expected.items():
        assert ports.get(port) == port, f"triton {kind} port {port} must be published as {port}:{port}"
        assert f"--{kind}-port={port}" in args


def test_engine_and_monitor_ports_match_settings(services):
    engine_port, monitor_port = DEFAULTS.serving.http_port, monitor_http_port()
    assert published_ports(services["engine"]) == {engine_port: engine_port}
    assert published_ports(services["monitor"]) == {monitor_port: monitor_port}
    assert environment(services["engine"])["SIGNALML__SERVING__HTTP_PORT"] == str(engine_port)
    assert environment(services["monitor"])["SIGNALML__MONITOR__HTTP_PORT"] == str(monitor_port)
    # Bound on all interfaces, or Prometheus could not scrape them.
    assert environment(services["engine"])["SIGNALML__SERVING__HTTP_HOST"] == "0.0.0.0"
    assert environment(services["monitor"])["SIGNALML__MONITOR__HTTP_HOST"] == "0.0.0.0"


# ---------------------------------------------------------------- configuration of the containers


@pytest.mark.parametrize("name", ["engine", "trainer"])
def test_container_environment_is_valid_configuration(services, name, tmp_path):
    settings = load_with_env(environment(services[name]), tmp_path)
    assert settings.kafka.bootstrap_servers == f"kafka:{DEFAULTS.kafka.port}"
    assert settings.triton.grpc_url == f"triton:{DEFAULTS.triton.grpc_port}"
    assert settings.triton.http_url == f"triton:{DEFAULTS.triton.http_port}"
    # The trainer writes the repository that Triton serves from.
    assert mount_for(services[name], settings.triton.repository) == mount_for(services["triton"], "/models")
    # The topics the container uses are the ones kafka-init creates.
    created = parse_topic_creation("\n".join(command_args(services["kafka-init"])))
    assert {t.name: (t.partitions, dict(t.config)) for t in settings.kafka.topics.all().values()} == created


def test_monitor_environment_is_valid_configuration(services, tmp_path):
    settings = load_with_env(environment(services["monitor"]), tmp_path)
    assert settings.kafka.bootstrap_servers == f"kafka:{DEFAULTS.kafka.port}"
    assert settings.monitor.http_port == monitor_http_port()


# ---------------------------------------------------------------- Triton


def test_triton_serves_the_repository_in_explicit_mode(services):
    triton = services["triton"]
    assert triton["image"] == "nvcr.io/nvidia/tritonserver:24.10-py3"
    args = command_args(triton)
    assert args[0] == "tritonserver"
    assert "--model-repository=/models" in args
    assert "--model-control-mode=explicit" in args
    assert not any(a.startswith("--load-model") for a in args), "publish loads the models, not start-up"
    assert bind_source(mount_for(triton, "/models")) == (ROOT / DEFAULTS.triton.repository).resolve()
    health = " ".join(triton["healthcheck"]["test"])
    assert f"localhost:{DEFAULTS.triton.http_port}/v2/health/ready" in health


# ---------------------------------------------------------------- Kafka


def test_kafka_is_a_single_kraft_node(compose, services):
    kafka = services["kafka"]
    image, _, tag = kafka["image"].partition(":")
    assert image == "apache/kafka"
    assert re.fullmatch(r"4\.1\.\d+", tag)
    assert tag == DEFAULTS.kafka.version, "the compose broker and the embedded broker must be the same release"
    env = environment(kafka)
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    for key in (
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
    ):
        assert env[key] == "1", key
    assert env["CLUSTER_ID"]
    assert "healthcheck" in kafka
    data_volumes = [s for s, t in volume_mounts(kafka) if t == env["KAFKA_LOG_DIRS"]]
    assert data_volumes and data_volumes[0] in compose["volumes"], "Kafka's log dirs must be a named volume"


def parse_topic_creation(script: str) -> dict[str, tuple[int, dict[str, str]]]:
    topics: dict[str, tuple[int, dict[str, str]]] = {}
    for line in script.splitlines():
        args = shlex.split(line)
        if "--create" not in args:
            continue
        name = args[args.index("--topic") + 1]
        partitions = int(args[args.index("--partitions") + 1])
        assert args[args.index("--replication-factor") + 1] == "1", name
        configs = dict(args[i + 1].split("=", 1) for i, a in enumerate(args) if a == "--config")
        assert name not in topics, f"topic {name} created twice"
        topics[name] = (partitions, configs)
    return topics


def test_kafka_init_creates_exactly_the_configured_topics(services):
    init = services["kafka-init"]
    assert init["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert str(init.get("restart", "no")) == "no"
    created = parse_topic_creation("\n".join(command_args(init)))
    expected = {t.name: (t.partitions, dict(t.config)) for t in DEFAULTS.kafka.topics.all().values()}
    assert created == expected
    for line in "\n".join(command_args(init)).splitlines():
        if "--create" in line:
            assert f"--bootstrap-server kafka:{DEFAULTS.kafka.port}" in line
            assert "--if-not-exists" in line


# ---------------------------------------------------------------- start order


def test_depends_on_waits_for_healthy_services(services):
    for name, service in services.items():
        depends = service.get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: depends_on must state conditions"
        for dep, spec in depends.items():
            condition = spec["condition"]
            assert condition in {"service_healthy", "service_completed_successfully"}, (name, dep, condition)
            if condition == "service_healthy":
                assert "healthcheck" in services[dep], f"{name} waits for {dep} to be healthy, but it has no healthcheck"
    for name in ("engine", "trainer"):
        depends = services[name]["depends_on"]
        assert depends["kafka"]["condition"] == "service_healthy"
        assert depends["kafka-init"]["condition"] == "service_completed_successfully"
        assert depends["triton"]["condition"] == "service_healthy"
    assert services["monitor"]["depends_on"]["kafka-init"]["condition"] == "service_completed_successfully"


# ---------------------------------------------------------------- Prometheus


def test_prometheus_scrapes_engine_monitor_and_triton(services):
    source = mount_for(services["prometheus"], "/etc/prometheus/prometheus.yml")
    path = bind_source(source)
    assert path is not None and path.is_file(), source
    config = yaml.safe_load(path.read_text())
    targets = {
        target
        for job in config["scrape_configs"]
        for static in job.get("static_configs", [])
        for target in static["targets"]
    }
    assert {
        f"engine:{DEFAULTS.serving.http_port}",
        f"monitor:{monitor_http_port()}",
        f"triton:{DEFAULTS.triton.metrics_port}",
    } <= targets


# ---------------------------------------------------------------- Grafana


def grafana_bind_mounts(services) -> dict[str, Path]:
    """Container target -> host path of Grafana's bind mounts."""
    mounts = {}
    for source, target in volume_mounts(services["grafana"]):
        path = bind_source(source)
        if path is not None:
            mounts[target] = path
    return mounts


def host_path(mounts: dict[str, Path], container_path: str) -> Path:
    """Map a path inside the Grafana container back to the repository."""
    wanted = PurePosixPath(container_path)
    for target, source in mounts.items():
        try:
            rest = wanted.relative_to(target)
        except ValueError:
            continue
        return source / rest
    raise AssertionError(f"{container_path} is not inside any bind mount of grafana")


def dashboard_files(services) -> list[Path]:
    mounts = grafana_bind_mounts(services)
    providers_dir = host_path(mounts, "/etc/grafana/provisioning/dashboards")
    files = []
    for provider_file in sorted(providers_dir.glob("*.y*ml")):
        for provider in yaml.safe_load(provider_file.read_text())["providers"]:
            folder = host_path(mounts, provider["options"]["path"])
            files.extend(sorted(folder.glob("*.json")))
    return files


def test_grafana_provisioning_files_exist(services):
    grafana = services["grafana"]
    assert published_ports(grafana) == {3000: 3000}
    mounts = grafana_bind_mounts(services)
    assert mounts, "grafana mounts nothing from deploy/"
    for target, source in mounts.items():
        assert source.exists(), f"{source} (mounted at {target}) does not exist"
    datasources_dir = host_path(mounts, "/etc/grafana/provisioning/datasources")
    datasources = [
        ds for f in sorted(datasources_dir.glob("*.y*ml")) for ds in yaml.safe_load(f.read_text())["datasources"]
    ]
    prometheus = [ds for ds in datasources if ds["type"] == "prometheus"]
    assert prometheus and prometheus[0]["url"] == "http://prometheus:9090"
    assert dashboard_files(services), "no dashboard JSON is provisioned"
    home = environment(grafana).get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
    if home:
        assert host_path(mounts, home).is_file()


def iter_panels(panels: list[dict[str, Any]]):
    for panel in panels:
        yield panel
        yield from iter_panels(panel.get("panels", []))


def test_dashboards_parse_and_every_panel_has_a_query(services):
    mounts = grafana_bind_mounts(services)
    datasources_dir = host_path(mounts, "/etc/grafana/provisioning/datasources")
    uids = {ds["uid"] for f in datasources_dir.glob("*.y*ml") for ds in yaml.safe_load(f.read_text())["datasources"]}
    expressions: list[str] = []
    for path in dashboard_files(services):
        dashboard = json.loads(path.read_text())
        assert dashboard["uid"] and dashboard["title"]
        panels = list(iter_panels(dashboard["panels"]))
        assert panels, f"{path.name}: no panels"
        ids = [p["id"] for p in panels]
        assert len(ids) == len(set(ids)), f"{path.name}: duplicate panel ids"
        for panel in panels:
            if panel["type"] == "row":  # a heading over the panels below it, no query of its own
                continue
            exprs = [t.get("expr", "").strip() for t in panel.get("targets", [])]
            assert exprs and all(exprs), f"{path.name}: panel {panel['title']!r} has no query"
            for ref in [panel.get("datasource")] + [t.get("datasource") for t in panel["targets"]]:
                if isinstance(ref, dict):
                    assert ref["uid"] in uids, f"panel {panel['title']!r} uses unknown datasource {ref['uid']}"
            expressions.extend(exprs)
    used = set(re.findall(r"\b(?:signalml|nv)_[a-z_]+\b", " ".join(expressions)))
    assert DASHBOARD_METRICS <= used, f"not on any panel: {sorted(DASHBOARD_METRICS - used)}"
