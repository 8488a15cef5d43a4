"""What ``signalml status`` shows beside the services: the model set in
service (its members at their versions and its training metrics, from the
manifest that ``signalml publish`` stored) and the last drift events on the
drift topic. Both are plain dicts (``--json``) with a text rendering.

Reading the drift topic is bounded by ``timeout_s``: a Kafka that is down
is reported as such, never waited on.
"""

from __future__ import annotations

from datetime import datetime, timezone

import msgspec

from signalml.config import Settings
from signalml.contracts import DriftEvent, decoder
from signalml.errors import ServiceError

DRIFT_EVENTS = 5
DRIFT_READ_TIMEOUT_S = 3.0
# Training metrics shown as columns, in this order (the manifest may hold more).
METRIC_COLUMNS = ("rank_ic", "rank_icir", "ic", "icir", "hit_rate", "top_minus_bottom")

_decode_drift = decoder(DriftEvent)


def model_set_status(settings: Settings, triton_models: list[dict] | None = None) -> dict:
    """``{"current": None}`` before the first publish; otherwise the current
    manifest's id, creation time (epoch ms), ensemble, horizon, previous set,
    members (name, version, kind, weight and, given Triton's repository
    index ``triton_models``, the member version's state there) and
    ``training_metrics`` as stored. An unreadable manifest gives ``error``."""
    from models.publish import current_manifest

    try:
        manifest = current_manifest(settings)
    except (OSError, ValueError) as exc:
        return {"current": None, "error": str(exc)}
    if manifest is None:
        return {"current": None}
    states = {(m.get("name"), str(m.get("version"))): m.get("state") for m in triton_models or []}

    def member(m) -> dict:
        out = {"name": m.name, "version": m.version, "kind": m.kind, "weight": m.weight}
        if triton_models is not None:
            out["triton_state"] = states.get((m.name, str(m.version))) or "not loaded"
        return out

    return {
        "current": manifest.model_set,
        "created_at": manifest.created_at,
        "ensemble_method": manifest.ensemble_method,
        "horizon_bars": manifest.horizon_bars,
        "previous": manifest.previous,
        "members": [member(m) for m in manifest.members],
        "training_metrics": manifest.training_metrics,
    }


def drift_status(
    settings: Settings,
    count: int = DRIFT_EVENTS,
    timeout_s: float = DRIFT_READ_TIMEOUT_S,
    *,
    kafka_error: str | None = None,
) -> dict:
    """The last ``count`` committed drift events, oldest first:
    ``{"topic", "events": [...]}``, or ``{"topic", "error"}`` when Kafka is
    down or the topic is missing. ``kafka_error`` (the broker's status just
    failed) reports Kafka down without waiting on it a second time."""
    from signalml.services.kafka import _RdkafkaLog
    from stream.topic_reader import read_tail

    topic = settings.kafka.topics.drift.name
    bootstrap = settings.kafka.bootstrap_servers
    if kafka_error:
        return {"topic": topic, "error": f"Kafka at {bootstrap} is down or not answering ({kafka_error})"}
    try:
        messages = read_tail(bootstrap, topic, count, timeout_s=timeout_s, logger=_RdkafkaLog())
    except ServiceError as exc:
        return {"topic": topic, "error": str(exc)}
    events = []
    for message in messages:
        try:
            events.append(msgspec.structs.asdict(_decode_drift.decode(message.value() or b"")))
        except msgspec.DecodeError as exc:
            events.append({"undecodable": f"offset {message.offset()}: {exc}"})
    return {"topic": topic, "events": events}


def engine_status(settings: Settings, timeout_s: float = DRIFT_READ_TIMEOUT_S, *,
                  kafka_error: str | None = None) -> dict:
    """The engine processes of ``serving.engine_id``, from its lease group:
    ``{"engine_id", "group", "engines": [{"role", "pid", "host", "http", "member"}]}``
    (the active one first; a group in the middle of a handover may have none
    active), or ``{"engine_id", "group", "error"}`` when Kafka does not answer."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    from signalml.services.kafka import _RdkafkaLog
    from stream.lease import lease_group, parse_member_name

    engine_id = settings.serving.engine_id
    group = lease_group(engine_id)
    out = {"engine_id": engine_id, "group": group}
    bootstrap = settings.kafka.bootstrap_servers
    if kafka_error:
        return {**out, "error": f"Kafka at {bootstrap} is down or not answering ({kafka_error})"}
    admin = AdminClient({"bootstrap.servers": bootstrap, "logger": _RdkafkaLog()})
    try:
        description = admin.describe_consumer_groups([group], request_timeout=timeout_s)[group].result(timeout_s)
    except (KafkaException, TimeoutError) as exc:
        detail = exc.args[0].str() if isinstance(exc, KafkaException) else "no answer"
        return {**out, "error": f"Kafka at {bootstrap}: {detail}"}
    topic = settings.kafka.topics.engine_lease.name
    engines = []
    for member in description.members:
        partitions = member.assignment.topic_partitions if member.assignment else []
        holds = any(tp.topic == topic and tp.partition == 0 for tp in partitions)
        engines.append({"role": "active" if holds else "standby", **parse_member_name(member.client_id),
                        "member": member.member_id})
    engines.sort(key=lambda e: (e["role"] != "active", str(e.get("pid"))))
    return {**out, "engines": engines}


# ---------------------------------------------------------------- text


def engine_lines(status: dict) -> list[str]:
    head = f"engine     {status['engine_id']}:"
    if "error" in status:
        return [f"{head} unknown: {status['error']}"]
    if not status["engines"]:
        return [f"{head} no engine running"]
    described = [f"{e['role']} pid {e.get('pid', '?')} on {e.get('host', '?')} (http {e.get('http', '?')})"
                 for e in status["engines"]]
    if all(e["role"] != "active" for e in status["engines"]):
        described.insert(0, "none active (a handover is under way)")
    return [f"{head} " + "; ".join(described)]


def _utc(ms: int | None) -> str:
    if ms is None:
        return "?"
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _number(value) -> str:
    return "–" if value is None else f"{value:.4f}"


def model_set_lines(status: dict) -> list[str]:
    if status.get("error"):
        return [f"model set  unreadable: {status['error']}"]
    if status.get("current") is None:
        return ["model set  none published (signalml train, then signalml publish)"]
    lines = [
        f"model set  {status['current']}  ensemble {status['ensemble_method']}, horizon {status['horizon_bars']} bars, "
        f"published {_utc(status['created_at'])}, previous {status.get('previous') or 'none'}"
    ]
    members = ", ".join(
        f"{m['name']} v{m['version']}" + (f" ({m['triton_state']})" if "triton_state" in m else "")
        for m in status["members"]
    )
    lines.append(f"        members: {members}")
    metrics = status.get("training_metrics") or {}
    if metrics:
        width = max(len(name) for name in metrics)
        lines.append("        training metrics (out of sample, all test windows):")
        lines.append("          " + "name".ljust(width) + "".join(f"{c:>{max(len(c), 7) + 2}}" for c in METRIC_COLUMNS))
        for name, values in metrics.items():
            cells = "".join(f"{_number(values.get(c)):>{max(len(c), 7) + 2}}" for c in METRIC_COLUMNS)
            lines.append("          " + name.ljust(width) + cells)
    return lines


def drift_lines(status: dict) -> list[str]:
    head = f"drift      last events on topic {status['topic']}:"
    if "error" in status:
        return [f"drift      unavailable: {status['error']}"]
    if not status["events"]:
        return [f"{head} none"]
    lines = [head]
    for event in status["events"]:
        if "undecodable" in event:
            lines.append(f"        undecodable record at {event['undecodable']}")
            continue
        lines.append(
            f"        {_utc(event['ts'])}  {event['severity']:<8} {event['kind']} {event['subject']}: "
            f"{event['statistic']:.4g} (threshold {event['threshold']:.4g})  {event['model_set']}"
        )
    return lines
