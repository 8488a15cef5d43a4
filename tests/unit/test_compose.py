"""docker-compose.yml and deploy/ agree with the embedded stack's settings.

No Docker: the compose file, the Dockerfiles, the Prometheus config and alert
rules and the Grafana provisioning are parsed as data and checked against
``signalml.config.Settings()`` defaults (ports, topics, the Triton repository).
Every ``signalml`` command a service runs is parsed with the CLI's own parser
(``signalml.cli.build_parser``), and every file it names, every bind mount and
every image's build context must exist, so a command the CLI would refuse, or a
path that is not there, fails here rather than in a user's ``docker compose up``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import re
import shlex
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from signalml.cli import build_parser
from signalml.config import Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
TRAINER_DOCKERFILE = ROOT / "Dockerfile.trainer"
TRITON_DOCKERFILE = ROOT / "Dockerfile.triton"
ALERTS_FILE = ROOT / "deploy" / "prometheus" / "alerts.yml"

DEFAULTS = Settings()

# Services `docker compose up` starts; the challenger engine has its own profile.
DEFAULT_SERVICES = {"kafka", "topics", "triton", "trainer", "retrain", "engine", "monitor", "prometheus", "grafana"}
REQUIRED_SERVICES = DEFAULT_SERVICES | {"engine-challenger"}
RUNTIME_SERVICES = ("topics", "engine", "engine-challenger", "monitor")
TRAINER_SERVICES = ("trainer", "retrain")
SIGNALML_SERVICES = RUNTIME_SERVICES + TRAINER_SERVICES
# The working directory of the SignalML images (WORKDIR in both Dockerfiles).
APP_DIR = PurePosixPath("/app")
# Shell operators that may join signalml commands in a service's script.
SCRIPT_SEPARATORS = re.compile(r"\s*(?:&&|\|\||;|\n)\s*")

# The values interpolated for ${VAR...} when a test reads the file: none of the
# variables is set, as on a fresh checkout with no .env, except the ones that
# have no default and must be given.
REQUIRED_VARIABLES = {"GRAFANA_ADMIN_PASSWORD"}

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


def interpolate(value: Any, variables: dict[str, str]) -> Any:
    """Compose's ${NAME}, ${NAME:-default} and ${NAME:?message}, applied to
    every string of ``value``; a missing required variable raises KeyError."""
    if isinstance(value, dict):
        return {k: interpolate(v, variables) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, variables) for v in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match) -> str:
        name, op, arg = match.group(1), match.group(2), match.group(3)
        if variables.get(name):
            return variables[name]
        if op == ":?":
            raise KeyError(f"{name}: {arg}")
        return arg if op == ":-" else ""

    return re.sub(r"\$\{(\w+)(?:(:-|:\?)([^}]*))?\}", substitute, value)


@pytest.fixture(scope="module")
def raw_compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def compose(raw_compose) -> dict[str, Any]:
    return interpolate(raw_compose, {name: "set-by-the-test" for name in REQUIRED_VARIABLES})


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def monitor_http_port() -> int:
    return DEFAULTS.monitor.http_port


def port_bindings(service: dict[str, Any]) -> list[tuple[str, int, int]]:
    """(host address, host port, container port), from short
    ("127.0.0.1:8000:8000") or long syntax; "" when no address is named."""
    result = []
    for entry in service.get("ports", []):
        if isinstance(entry, dict):
            result.append((str(entry.get("host_ip", "")), int(entry["published"]), int(entry["target"])))
            continue
        parts = str(entry).split("/")[0].split(":")
        assert len(parts) in (2, 3), f"port {entry!r} must name the host port explicitly"
        result.append((parts[0] if len(parts) == 3 else "", int(parts[-2]), int(parts[-1])))
    return result


def published_ports(service: dict[str, Any]) -> dict[int, int]:
    """Host port -> container port."""
    return {host: container for _, host, container in port_bindings(service)}


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
    for name in DEFAULT_SERVICES:
        assert "profiles" not in services[name], f"{name} must start with `docker compose up`"
    assert services["engine-challenger"]["profiles"] == ["challenger"]


def image_dockerfile(service: dict[str, Any]) -> Path:
    build = service["build"]
    context = build if isinstance(build, str) else build.get("context", ".")
    dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
    return (COMPOSE_FILE.parent / context / dockerfile).resolve()


def test_every_built_image_has_its_context_and_dockerfile(services):
    for name, service in services.items():
        if "build" not in service:
            continue
        build = service["build"]
        context = COMPOSE_FILE.parent / (build if isinstance(build, str) else build.get("context", "."))
        assert context.is_dir(), f"{name}: build context {context} does not exist"
        assert image_dockerfile(service).is_file(), f"{name}: {image_dockerfile(service)} does not exist"
        for source in dockerfile_copy_sources(image_dockerfile(service)):
            assert list(context.glob(source)), f"{name}: {image_dockerfile(service).name} copies {source}, which is not there"


def test_dockerignore_lets_through_exactly_what_the_images_copy(services):
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    assert patterns[0] == "*", ".dockerignore must start by excluding everything (the venvs are several GB)"
    allowed = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    copied = {source for service in services.values() if "build" in service
              for source in dockerfile_copy_sources(image_dockerfile(service))}
    assert copied == allowed, f"copied but ignored: {sorted(copied - allowed)}; let through, never copied: {sorted(allowed - copied)}"


def dockerfile_copy_sources(dockerfile: Path) -> list[str]:
    """The build-context paths a Dockerfile's COPY instructions read."""
    sources = []
    for line in dockerfile.read_text().splitlines():
        args = line.split()
        if not args or args[0] != "COPY" or any(a.startswith("--from") for a in args):
            continue
        sources.extend(a.rstrip("/") for a in args[1:-1] if not a.startswith("--"))
    return sources


def test_signalml_services_use_the_runtime_or_the_trainer_image(services):
    for name in RUNTIME_SERVICES:
        assert image_dockerfile(services[name]) == DOCKERFILE, name
    for name in TRAINER_SERVICES:
        assert image_dockerfile(services[name]) == TRAINER_DOCKERFILE, name
    assert image_dockerfile(services["triton"]) == TRITON_DOCKERFILE


# ---------------------------------------------------------------- the commands


def signalml_commands(service: dict[str, Any]) -> list[list[str]]:
    """The argument lists of the signalml commands ``service`` runs: its
    command under the image's ``signalml`` entrypoint, or each command of a
    shell script (``entrypoint: [/bin/sh, -ec]``), every one of which must
    be a signalml command."""
    entrypoint = service.get("entrypoint")
    if entrypoint is None:
        return [command_args(service)]
    entrypoint = shlex.split(entrypoint) if isinstance(entrypoint, str) else list(entrypoint)
    assert entrypoint[0] in ("/bin/sh", "/bin/bash") and entrypoint[-1].endswith("c"), entrypoint
    script = " ".join(command_args(service)) if isinstance(service["command"], str) else "\n".join(service["command"])
    commands = []
    for part in SCRIPT_SEPARATORS.split(script.strip()):
        argv = shlex.split(part)
        assert argv and argv[0] == "signalml", f"the script runs {part!r}, not a signalml command"
        commands.append(argv[1:])
    return commands


def parse_cli(argv: list[str]) -> argparse.Namespace:
    """``argv`` as `signalml` parses it; a refusal fails the test with
    argparse's own message."""
    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors):
            return build_parser().parse_args(argv)
    except SystemExit:
        pytest.fail(f"`signalml {shlex.join(argv)}` is refused by the CLI: {errors.getvalue().strip()}", pytrace=False)


def host_path_of(service: dict[str, Any], container_path: str) -> Path | None:
    """The repository path behind a path inside a SignalML container (relative
    paths start at the image's working directory), or None when no bind mount
    holds it."""
    path = APP_DIR / container_path
    for source, target in volume_mounts(service):
        host = bind_source(source)
        if host is None:
            continue
        try:
            return host / path.relative_to(target)
        except ValueError:
            continue
    return None


@pytest.mark.parametrize("name", SIGNALML_SERVICES)
def test_every_signalml_command_is_accepted_by_the_cli(services, name):
    for argv in signalml_commands(services[name]):
        args = parse_cli(argv)
        assert callable(args.handler), argv


@pytest.mark.parametrize("name", SIGNALML_SERVICES)
def test_every_file_a_command_reads_is_mounted(services, name):
    for argv in signalml_commands(services[name]):
        args = parse_cli(argv)
        bars = getattr(args, "bars", None)
        if bars:
            host = host_path_of(services[name], bars)
            assert host is not None and host.is_file(), f"{name}: --bars {bars} is not a mounted file"


def test_the_loop_trains_publishes_serves_monitors_and_retrains(services):
    commands = {name: [parse_cli(argv) for argv in signalml_commands(services[name])] for name in SIGNALML_SERVICES}
    assert [a.command for a in commands["topics"]] == ["topics"]
    assert [a.command for a in commands["trainer"]] == ["train", "publish"]
    train, publish = commands["trainer"]
    assert publish.artifact == train.out, "the trainer publishes what it trained"
    for name in ("engine", "engine-challenger"):
        assert [a.command for a in commands[name]] == ["serve"]
        assert commands[name][0].idle_exit is None, f"{name} must not stop when idle"
    assert [a.command for a in commands["monitor"]] == ["monitor"]
    assert [(a.command, a.watch, a.bars) for a in commands["retrain"]] == [("retrain", True, None)]
    assert str(services["trainer"].get("restart", "no")) == "no"
    assert str(services["topics"].get("restart", "no")) == "no"


def test_challenger_engine_is_a_shadow_with_its_own_identity(services, tmp_path):
    champion = load_with_env(environment(services["engine"]), tmp_path)
    challenger = load_with_env(environment(services["engine-challenger"]), tmp_path)
    assert (champion.serving.role, challenger.serving.role) == ("champion", "challenger")
    assert champion.serving.engine_id != challenger.serving.engine_id
    assert champion.serving.consumer_group != challenger.serving.consumer_group


def test_bind_mounts_exist(services):
    for name, service in services.items():
        for source, target in volume_mounts(service):
            path = bind_source(source)
            if path is None or path.name == "artifacts":  # the trainer's output folder, made before the first run
                continue
            assert path.exists(), f"{name}: {source} (mounted at {target}) does not exist"


def test_dockerfiles_install_from_the_lock():
    runtime, trainer, triton = DOCKERFILE.read_text(), TRAINER_DOCKERFILE.read_text(), TRITON_DOCKERFILE.read_text()
    assert re.search(r"^FROM python:3\.11-slim\b", runtime, re.M)
    assert re.search(r"^RUN .*pip install .*-c requirements-lock\.txt .*\.(\s|$)", runtime, re.M)
    assert "[train" not in runtime, "the runtime image installs no training extra"
    assert re.search(r'^ENTRYPOINT \["signalml"\]', runtime, re.M)
    assert re.search(r"^RUN .*pip install .*-c requirements-lock\.txt .*\.\[train\]", trainer, re.M)
    assert re.search(r'^ENTRYPOINT \["signalml"\]', trainer, re.M)
    assert re.search(r"^FROM nvcr\.io/nvidia/tritonserver:24\.10-py3\b", triton, re.M)
    assert "requirements-lock.txt" in triton and "triton-requirements.txt" in triton


# ---------------------------------------------------------------- ports


def test_every_port_is_bound_to_loopback_by_default(services):
    for name, service in services.items():
        for address, host, _ in port_bindings(service):
            assert address == "127.0.0.1", f"{name}: host port {host} is published on {address or 'every interface'}"


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


def test_engine_monitor_and_retrain_ports_match_settings(services):
    engine_port, monitor_port, retrain_port = DEFAULTS.serving.http_port, monitor_http_port(), DEFAULTS.retrain.http_port
    assert published_ports(services["engine"]) == {engine_port: engine_port}
    assert published_ports(services["monitor"]) == {monitor_port: monitor_port}
    assert published_ports(services["retrain"]) == {retrain_port: retrain_port}
    assert environment(services["engine"])["SIGNALML__SERVING__HTTP_PORT"] == str(engine_port)
    assert environment(services["monitor"])["SIGNALML__MONITOR__HTTP_PORT"] == str(monitor_port)
    assert environment(services["retrain"])["SIGNALML__RETRAIN__HTTP_PORT"] == str(retrain_port)
    # Bound on all interfaces inside the container, or Prometheus could not scrape them.
    assert environment(services["engine"])["SIGNALML__SERVING__HTTP_HOST"] == "0.0.0.0"
    assert environment(services["engine-challenger"])["SIGNALML__SERVING__HTTP_HOST"] == "0.0.0.0"
    assert environment(services["monitor"])["SIGNALML__MONITOR__HTTP_HOST"] == "0.0.0.0"
    assert environment(services["retrain"])["SIGNALML__RETRAIN__HTTP_HOST"] == "0.0.0.0"


# ---------------------------------------------------------------- configuration of the containers


@pytest.mark.parametrize("name", ["engine", "engine-challenger", "trainer", "retrain"])
def test_container_environment_is_valid_configuration(services, name, tmp_path):
    settings = load_with_env(environment(services[name]), tmp_path)
    assert settings.kafka.bootstrap_servers == f"kafka:{DEFAULTS.kafka.port}"
    assert settings.triton.grpc_url == f"triton:{DEFAULTS.triton.grpc_port}"
    assert settings.triton.http_url == f"triton:{DEFAULTS.triton.http_port}"
    # The trainer writes the repository that Triton serves from.
    assert mount_for(services[name], settings.triton.repository) == mount_for(services["triton"], "/models")
    # The topics the container uses are the ones the topics service creates.
    creator = load_with_env(environment(services["topics"]), tmp_path)
    assert settings.kafka.topics == creator.kafka.topics
    assert settings.retrain.topic_retention_days == creator.retrain.topic_retention_days


def test_monitor_environment_is_valid_configuration(services, tmp_path):
    settings = load_with_env(environment(services["monitor"]), tmp_path)
    assert settings.kafka.bootstrap_servers == f"kafka:{DEFAULTS.kafka.port}"
    assert settings.monitor.http_port == monitor_http_port()


# ---------------------------------------------------------------- Triton


def test_triton_serves_the_repository_in_explicit_mode(services):
    triton = services["triton"]
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


def test_topics_service_creates_the_configured_topics_on_the_compose_broker(services, tmp_path):
    topics = services["topics"]
    assert topics["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert [parse_cli(argv).command for argv in signalml_commands(topics)] == ["topics"]
    settings = load_with_env(environment(topics), tmp_path)
    assert settings.kafka.bootstrap_servers == f"kafka:{DEFAULTS.kafka.port}"
    assert settings.kafka.topics == DEFAULTS.kafka.topics


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
    for name in ("engine", "engine-challenger", "trainer", "retrain"):
        depends = services[name]["depends_on"]
        assert depends["kafka"]["condition"] == "service_healthy"
        assert depends["topics"]["condition"] == "service_completed_successfully"
        assert depends["triton"]["condition"] == "service_healthy"
    assert services["monitor"]["depends_on"]["topics"]["condition"] == "service_completed_successfully"
    assert services["retrain"]["depends_on"]["trainer"]["condition"] == "service_completed_successfully"


def test_long_running_services_have_health_checks(services):
    for name, service in services.items():
        if str(service.get("restart", "no")) == "no":
            continue  # one-shot
        test = service.get("healthcheck", {}).get("test")
        assert test and test[0] in ("CMD", "CMD-SHELL"), f"{name} has no health check"


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
    challenger_port = int(environment(services["engine-challenger"])["SIGNALML__SERVING__HTTP_PORT"])
    assert {
        f"engine:{DEFAULTS.serving.http_port}",
        f"engine-challenger:{challenger_port}",
        f"monitor:{monitor_http_port()}",
        f"retrain:{DEFAULTS.retrain.http_port}",
        f"triton:{DEFAULTS.triton.metrics_port}",
    } <= targets
    mounted_rules = {bind_source(s) for s, t in volume_mounts(services["prometheus"])} & {ALERTS_FILE.resolve()}
    assert mounted_rules, "the alert rules are not mounted"
    assert [host_rule_path for host_rule_path in config["rule_files"]] == ["/etc/prometheus/alerts.yml"]
    assert mount_for(services["prometheus"], "/etc/prometheus/alerts.yml") == "./deploy/prometheus/alerts.yml"


def alert_rules() -> dict[str, dict[str, Any]]:
    groups = yaml.safe_load(ALERTS_FILE.read_text())["groups"]
    return {rule["alert"]: rule for group in groups for rule in group["rules"]}


def test_alert_rules_cover_lag_triton_silence_and_critical_drift():
    rules = alert_rules()
    wanted = {
        "SignalMLEngineLag": "signalml_consumer_lag",
        "SignalMLTritonDown": 'up{job="triton"}',
        "SignalMLNoSignals": "signalml_signals_out_total",
        "SignalMLDriftCritical": 'signalml_monitor_drift_events_total{severity="critical"}',
    }
    for alert, expr_part in wanted.items():
        assert alert in rules, f"no {alert} rule"
        assert expr_part in rules[alert]["expr"], (alert, rules[alert]["expr"])
        assert rules[alert]["labels"]["severity"] in {"warning", "critical"}
        assert rules[alert]["annotations"]["summary"]
    # More bar times than the engine's warm-up, or every fresh engine would fire it.
    threshold = int(re.search(r"signalml_cross_sections_total\[\w+\]\)\)\s*>=\s*(\d+)", rules["SignalMLNoSignals"]["expr"]).group(1))
    assert threshold > DEFAULTS.serving.warmup_bars


def test_alert_rules_query_only_metrics_that_exist():
    from tests.unit.test_dashboard import TRITON_METRICS, engine_registry, exposed_names, promql_metric_names
    from stream.monitor.metrics import MonitorMetrics

    known = set(exposed_names(engine_registry())) | set(exposed_names(MonitorMetrics().registry)) | TRITON_METRICS | {"up"}
    for alert, rule in alert_rules().items():
        assert promql_metric_names(rule["expr"]) <= known, (alert, sorted(promql_metric_names(rule["expr"]) - known))


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


def test_grafana_has_no_anonymous_access_and_no_default_password(raw_compose, services):
    env = environment(services["grafana"])
    assert env.get("GF_AUTH_ANONYMOUS_ENABLED", "false") == "false"
    with pytest.raises(KeyError, match="GRAFANA_ADMIN_PASSWORD"):
        interpolate(raw_compose["services"]["grafana"]["environment"], {})


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
