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
                          ("signals_challenger", "signals.challenger"), ("drift", "drift"), ("control", "control"),
                          ("engine_state", "engine.state"))
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


def with_output(settings: Settings, tag: str, *, own_bars: bool = False) -> Settings:
    """Same bars topic (unless ``own_bars``) and model sets; its own engine,
    group and outputs."""
    data = settings.model_dump(exclude={"root"})
    keys = ("signals", "signals_challenger", "drift", "engine_state", "bars_dlq") + (("bars",) if own_bars else ())
    for key in keys:
        data["kafka"]["topics"][key]["name"] += f".{tag}"
    serving = data["serving"]
    serving.update(engine_id=f"{serving['engine_id']}-{tag}", consumer_group=f"{serving['consumer_group']}-{tag}",
                   http_port=free_port())
    out = Settings.model_validate({**data, "root": settings.root})
    KafkaBroker(out).ensure_topics()
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
        "SIGNALML__SERVING__WARMUP_BARS": settings.serving.warmup_bars,
        "SIGNALML__SERVING__ENGINE_ID": settings.serving.engine_id,
        "SIGNALML__SERVING__CONSUMER_GROUP": settings.serving.consumer_group,
        "SIGNALML__SERVING__HTTP_PORT": settings.serving.http_port,
        "SIGNALML__SERVING__BARRIER_TIMEOUT_S": settings.serving.barrier_timeout_s,
    }
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
    KafkaBroker(settings).ensure_topics()
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

    settings = base_settings(tmp, new_tag())
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
