"""A private world for engine tests: its own topics on the real broker, its own
Triton server on free ports, a small model set trained on a slice of the
bundled data and published to that server."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pandas as pd

from signalml.config import Settings, load_settings
from signalml.services.kafka import KafkaBroker
from signalml.services.process import free_port
from stream.bars_file import read_bars

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "data" / "sp500_daily_2015_2019.parquet"

SMALL_MODELS = {
    "lightgbm": {"n_estimators": 40, "early_stopping_rounds": 10, "min_child_samples": 20},
    "xgboost": {"n_estimators": 40, "early_stopping_rounds": 10, "min_child_weight": 20.0},
    "lstm": {"hidden_size": 16, "num_layers": 1, "epochs": 2, "patience": 1, "batch_size": 256},
}


def world_overrides(tmp: Path, tag: str) -> dict:
    topics = {
        key: {"name": f"{base}.{tag}"}
        for key, base in (("bars", "bars"), ("bars_dlq", "bars.dlq"), ("signals", "signals"),
                          ("signals_challenger", "signals.challenger"), ("cross_sections", "cross.sections"),
                          ("drift", "drift"), ("control", "control"), ("engine_state", "engine.state"),
                          ("engine_lease", "engine.lease"))
    }
    return {
        "paths": {"state_dir": str(tmp / "state")},
        "triton": {"repository": str(tmp / "repo"), "http_port": free_port(), "grpc_port": free_port(),
                   "metrics_port": free_port(), "venv": str(REPO / ".venv-triton")},
        "kafka": {"topics": topics},
        "models": SMALL_MODELS,
        "training": {"train_period": 150, "test_period": 60, "retrain_frequency": 120, "validation_bars": 40},
        "serving": {"warmup_bars": 30, "engine_id": f"e-{tag}", "consumer_group": f"g-{tag}",
                    "http_port": free_port(), "barrier_timeout_s": 30.0},
    }


# Every topic a test world creates, deleted when the world ends: a broker
# that collects test topics commits transactions more slowly. A world's
# topics, and those derived from them, all carry the world's tag.
_created_topics: set[tuple[str, str]] = set()  # (bootstrap, topic)


def provision(settings: Settings) -> None:
    """Create the topics of ``settings`` and remember them for :func:`delete_created_topics`."""
    KafkaBroker(settings).ensure_topics()
    _created_topics.update((settings.kafka.bootstrap_servers, t.name) for t in settings.kafka.topics.all().values())


def delete_created_topics(tag: str) -> None:
    """Delete the topics created for the world ``tag`` (names containing ``.tag``)."""
    from confluent_kafka.admin import AdminClient

    mine = {(b, t) for b, t in _created_topics if f".{tag}" in t}
    for bootstrap in {b for b, _ in mine}:
        admin = AdminClient({"bootstrap.servers": bootstrap})
        names = sorted(t for b, t in mine if b == bootstrap)
        for future in admin.delete_topics(names, operation_timeout=30).values():
            try:
                future.result(60)
            except Exception:  # noqa: BLE001 - already gone, or a broker since stopped
                pass
    _created_topics.difference_update(mine)


def delete_tagged(bootstrap: str, tag: str) -> None:
    """Delete every topic and consumer group whose name holds ``tag``: what
    a world's processes created besides its own topics (the monitor's Faust
    changelog and assignor topics, the groups of engines and monitors)."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    topics = [name for name in admin.list_topics(timeout=30).topics if tag in name]
    groups = [group.group_id for group in admin.list_consumer_groups().result(30).valid if tag in group.group_id]
    futures = list(admin.delete_topics(topics, operation_timeout=30).values()) if topics else []
    futures += list(admin.delete_consumer_groups(groups).values()) if groups else []
    for future in futures:
        try:
            future.result(60)
        except Exception:  # noqa: BLE001 - already gone, or a group still in use
            pass


def with_output(settings: Settings, tag: str, *, own_bars: bool = False, **serving: object) -> Settings:
    """Same bars topic (unless ``own_bars``) and model sets; its own engine,
    group and outputs. ``serving``: settings of that section to change."""
    data = settings.model_dump(exclude={"root"})
    keys = ("signals", "signals_challenger", "cross_sections", "drift", "engine_state", "bars_dlq")
    keys += ("bars",) if own_bars else ()
    for key in keys:
        data["kafka"]["topics"][key]["name"] += f".{tag}"
    section = data["serving"]
    section.update(engine_id=f"{section['engine_id']}-{tag}", consumer_group=f"{section['consumer_group']}-{tag}",
                   http_port=free_port(), **serving)
    out = Settings.model_validate({**data, "root": settings.root})
    provision(out)
    return out


def env_of(settings: Settings) -> dict[str, str]:
    """Environment variables that make a ``signalml`` subprocess use ``settings``."""
    env = dict(os.environ)
    flat = {
        "SIGNALML__PATHS__STATE_DIR": settings.paths.state_dir,
        "SIGNALML__TRITON__REPOSITORY": str(settings.triton_repository),
        "SIGNALML__TRITON__GRPC_PORT": settings.triton.grpc_port,
        "SIGNALML__TRITON__HTTP_PORT": settings.triton.http_port,
        "SIGNALML__TRITON__METRICS_PORT": settings.triton.metrics_port,
        "SIGNALML__KAFKA__PORT": settings.kafka.port,
        "SIGNALML__KAFKA__CONTROLLER_PORT": settings.kafka.controller_port,
    }
    for key, value in settings.serving.model_dump().items():
        if value is not None and not isinstance(value, (dict, list, tuple)):
            flat[f"SIGNALML__SERVING__{key.upper()}"] = value
    for key, topic in settings.kafka.topics.all().items():
        flat[f"SIGNALML__KAFKA__TOPICS__{key.upper()}__NAME"] = topic.name
    for model, values in SMALL_MODELS.items():
        for key, value in values.items():
            flat[f"SIGNALML__MODELS__{model.upper()}__{key.upper()}"] = value
    env.update({k: str(v) for k, v in flat.items()})
    return env


def engine_process(settings: Settings, log: Path, idle_exit_s: float = 4.0) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "signalml.cli", "serve", "--idle-exit", str(idle_exit_s)],
        cwd=REPO, env=env_of(settings), stdout=open(log, "ab"), stderr=subprocess.STDOUT,
    )


def small_bars(n_symbols: int = 30, start: str = "2018-01-01") -> pd.DataFrame:
    symbols = sorted(pd.read_parquet(DATA, columns=["symbol"])["symbol"].unique())[:n_symbols]
    return read_bars(DATA, symbols=symbols, start=start)


def new_tag() -> str:
    return uuid.uuid4().hex[:8]


def signals_by_key(messages) -> dict[tuple[int, str], object]:
    import msgspec

    from signalml.contracts import Signal

    out = {}
    for message in messages:
        signal = msgspec.json.decode(message.value(), type=Signal)
        key = (signal.ts, signal.symbol)
        assert key not in out, f"duplicate signal {key}"
        out[key] = signal
    return out


def base_settings(tmp: Path, tag: str) -> Settings:
    settings = load_settings(REPO / "signalml.yaml", overrides=world_overrides(tmp, tag))
    provision(settings)
    return settings


def run_engines(*settings: Settings, idle_exit_s: float = 4.0, timeout_s: float = 400.0) -> None:
    """Run one in-process engine per settings, side by side, until each is idle."""
    import threading

    from stream.engine import Engine

    threads = [threading.Thread(target=Engine(s).run, kwargs={"idle_exit_s": idle_exit_s, "serve_http": False})
               for s in settings]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout_s)
        assert not thread.is_alive(), "an engine did not go idle"


@contextlib.contextmanager
def published_world(tmp: Path):
    """A private world with a small model set trained on :func:`small_bars`,
    published to its own running Triton, and those bars replayed onto its
    bars topic. Yields ``settings``, ``bars``, ``manifest``, ``triton``, ``tmp``."""
    from models.publish import publish
    from signalml.services.triton import TritonServer
    from stream.replay import replay
    from training import run_training

    tag = new_tag()
    settings = base_settings(tmp, tag)
    bars = small_bars()
    run_training(settings, DATA, tmp / "train", progress=False, bars=bars)
    triton = TritonServer(settings)
    triton.start()
    try:
        manifest = publish(settings, tmp / "train")
        replay(settings, bars, source_file=DATA)
        yield {"settings": settings, "bars": bars, "tmp": tmp, "triton": triton, "manifest": manifest}
    finally:
        triton.stop()
        delete_created_topics(tag)


# ---------------------------------------------------------------- the oracle: signalml predict


SIGNAL_FIELDS = ("score", "rank", "model_set", "cross_section_size", "horizon_bars")


def predicted(settings: Settings, tmp: Path, *, symbols=None, start=None, end=None, model_set=None,
              bars_path=DATA) -> pd.DataFrame:
    """``signalml predict`` on the same bars file and selection: what the
    engine must publish for these bars, cross-section by cross-section."""
    from stream.predict import predict

    out = tmp / f"predict-{uuid.uuid4().hex[:8]}.parquet"
    predict(settings, bars_path, out, symbols=symbols, start=start, end=end, model_set=model_set)
    return pd.read_parquet(out)


def assert_signals_equal_predict(got: dict, expected: pd.DataFrame, *, tolerance: float = 1e-9) -> None:
    """Same keys, every field of every signal equal (scores within
    ``tolerance``), cross-section sizes included."""
    keys = list(zip(expected["ts"].tolist(), expected["symbol"].tolist()))
    missing = sorted(set(keys) - set(got))
    extra = sorted(set(got) - set(keys))
    assert not missing and not extra, f"{len(missing)} missing (e.g. {missing[:3]}), {len(extra)} extra (e.g. {extra[:3]})"
    members = [c[len("member_"):] for c in expected.columns if c.startswith("member_")]
    columns = {c: expected[c].tolist() for c in expected.columns}
    for i, key in enumerate(keys):
        signal = got[key]
        assert abs(signal.score - columns["score"][i]) <= tolerance, (key, signal.score, columns["score"][i])
        assert abs(signal.rank - columns["rank"][i]) <= tolerance, (key, signal.rank, columns["rank"][i])
        assert signal.model_set == columns["model_set"][i], key
        assert signal.cross_section_size == columns["cross_section_size"][i], (key, signal.cross_section_size)
        assert signal.horizon_bars == columns["horizon_bars"][i], key
        assert set(signal.members) == set(members), key
        for name in members:
            assert abs(signal.members[name] - columns[f"member_{name}"][i]) <= tolerance, (key, name)


def committed_signals(settings: Settings) -> dict:
    from stream.topic_reader import read_topic

    return signals_by_key(read_topic(settings.kafka.bootstrap_servers, settings.kafka.topics.signals.name))


def committed_progress(settings: Settings) -> tuple[dict[int, int], int | None]:
    """The engine's last committed snapshot: its bars positions (partition ->
    next offset) and the last bar time it closed; ({}, None) before its
    first commit."""
    import msgspec

    from stream.checkpoint import latest_snapshot

    raw = latest_snapshot(settings, settings.serving.engine_id)
    if raw is None:
        return {}, None
    state = msgspec.msgpack.decode(raw)
    positions = {int(p): int(o) for p, o in state.get("positions", {}).items()}
    return positions, state["barrier"]["last_closed_ts"]


def end_offsets(settings: Settings) -> dict[int, int]:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": settings.kafka.bootstrap_servers, "group.id": f"ends-{new_tag()}"})
    try:
        topic = settings.kafka.topics.bars.name
        return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1]
                for p in range(settings.kafka.topics.bars.partitions)}
    finally:
        consumer.close()
