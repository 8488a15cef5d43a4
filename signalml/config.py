"""Configuration: ``signalml.yaml``, overridable by environment variables.

The file has one section per part of the system (features, models, training,
ensemble, serving, kafka, triton, paths). Every setting has a default here,
so a partial file is valid; ``signalml.yaml`` at the repository root spells
the defaults out with comments.

Environment overrides use ``SIGNALML__<SECTION>__<KEY>[__<KEY>...]``; the
value is parsed as a YAML scalar or flow collection, so
``SIGNALML__KAFKA__PORT=19092`` and ``SIGNALML__FEATURES__LOOKBACKS=[5,20]``
both work. ``SIGNALML_CONFIG`` names the file to read.

Validation happens once, at start-up: a bad value raises
:class:`~signalml.errors.ConfigError` whose message names the setting (as a
dotted path) and, for choices, the allowed values.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from signalml import feature_sets
from signalml.errors import ConfigError

ENV_PREFIX = "SIGNALML__"
CONFIG_ENV = "SIGNALML_CONFIG"
DEFAULT_FILE = "signalml.yaml"
HOST_PATTERN = r"^[A-Za-z0-9.:_-]+$"


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------- features


class _SelectionProbe:
    """The fields a feature selection depends on, before the section exists."""

    def __init__(self, fields: dict[str, Any]):
        self.__dict__.update(fields)


class MacdSettings(Section):
    fast: int = Field(12, ge=2)
    slow: int = Field(26, ge=2)
    signal: int = Field(9, ge=1)

    @model_validator(mode="after")
    def _fast_below_slow(self) -> "MacdSettings":
        if self.fast >= self.slow:
            raise ValueError(f"macd.fast ({self.fast}) must be below macd.slow ({self.slow})")
        return self


class FeatureSettings(Section):
    lookbacks: tuple[int, ...] = (5, 10, 20, 60)
    indicators: tuple[
        Literal["rsi", "atr", "bb_position", "volume_ratio", "ret", "vol"], ...
    ] = ("rsi", "atr", "bb_position", "volume_ratio", "ret", "vol")
    macd: MacdSettings = MacdSettings()
    bollinger_nbdev: float = Field(2.0, gt=0)
    alphas: tuple[Literal["alpha_1", "alpha_42", "alpha_101"], ...] = (
        "alpha_1",
        "alpha_42",
        "alpha_101",
    )
    # Windows (bars) of the Alpha158 rolling operators; Qlib's are 5, 10, 20, 30, 60.
    alpha158_windows: tuple[int, ...] = feature_sets.ALPHA158_WINDOWS
    normalization: Literal["zscore", "rank", "none"] = "zscore"
    clip_z: float = Field(5.0, gt=0)
    sequence_length: int = Field(20, ge=1)
    # The feature schema: groups (classic, alpha158, us_equity, alpha158_kbar,
    # alpha158_price, alpha158_rolling, an Alpha158 operator such as CORD) and
    # single feature names, in order; see signalml.feature_sets.
    feature_sets: tuple[str, ...] = ("classic",)
    exclude: tuple[str, ...] = ()

    @field_validator("lookbacks", "alpha158_windows")
    @classmethod
    def _windows_valid(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if not v:
            raise ValueError("at least one window is required")
        if any(p < 2 for p in v):
            raise ValueError(f"every window must be >= 2 bars, got {list(v)}")
        if len(set(v)) != len(v):
            raise ValueError(f"windows must be distinct, got {list(v)}")
        return tuple(sorted(v))

    @field_validator("feature_sets", "exclude")
    @classmethod
    def _selection_valid(cls, v: tuple[str, ...], info) -> tuple[str, ...]:
        fields = ("lookbacks", "indicators", "alphas", "alpha158_windows", "feature_sets")
        if info.field_name == "feature_sets" and not v:
            raise ValueError("select at least one feature or group")
        if any(name not in info.data for name in fields[:4]):
            return v  # an earlier field failed and is reported by itself
        probe = _SelectionProbe({**{k: info.data[k] for k in fields[:4]}, "feature_sets": v, "exclude": ()})
        if info.field_name == "exclude":
            if "feature_sets" not in info.data:
                return v
            probe = _SelectionProbe({**probe.__dict__, "feature_sets": info.data["feature_sets"], "exclude": v})
        feature_sets.selected_names(probe)
        return v


# ---------------------------------------------------------------- models


class LightGBMSettings(Section):
    enabled: bool = True
    # regression: L2 on the per-date normal-scored label (every name counts);
    # lambdarank: LambdaRank over the whole cross-section with linear gains.
    objective: Literal["regression", "lambdarank"] = "regression"
    n_estimators: int = Field(500, ge=1)
    learning_rate: float = Field(0.05, gt=0, le=1)
    num_leaves: int = Field(15, ge=2)
    min_child_samples: int = Field(2000, ge=1)
    subsample: float = Field(0.7, gt=0, le=1)
    colsample_bytree: float = Field(0.5, gt=0, le=1)
    reg_lambda: float = Field(10.0, ge=0, description="L2 penalty on leaf values")
    max_bin: int = Field(63, ge=2, description="histogram bins per feature")
    min_trees: int = Field(20, ge=1, description="fewest trees kept, even if validation prefers fewer")
    relevance_grades: int = Field(5, ge=2, le=31)
    early_stopping_metric: Literal["rank_ic", "loss"] = "rank_ic"
    early_stopping_rounds: int = Field(100, ge=1)


class XGBoostSettings(Section):
    enabled: bool = True
    # regression: squared error on the per-date normal-scored label;
    # rank_pairwise: pairwise ranking, pairs drawn over the whole cross-section.
    objective: Literal["regression", "rank_pairwise"] = "regression"
    n_estimators: int = Field(500, ge=1)
    learning_rate: float = Field(0.05, gt=0, le=1)
    max_depth: int = Field(4, ge=1)
    min_child_weight: float = Field(2000.0, ge=0, description="least hessian (rows, for squared error) per leaf")
    subsample: float = Field(0.7, gt=0, le=1)
    colsample_bytree: float = Field(0.5, gt=0, le=1)
    reg_lambda: float = Field(10.0, ge=0)
    max_bin: int = Field(63, ge=2, description="histogram bins per feature")
    min_trees: int = Field(20, ge=1)
    early_stopping_metric: Literal["rank_ic", "loss"] = "rank_ic"
    early_stopping_rounds: int = Field(100, ge=1)


class RidgeSettings(Section):
    enabled: bool = True
    # Penalties tried, per row of the fit set; the one with the best
    # validation rank IC is kept (every window picks its own).
    alphas: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0, 100.0)

    @field_validator("alphas")
    @classmethod
    def _alphas_positive(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        if not v or any(a <= 0 for a in v):
            raise ValueError(f"alphas must be a non-empty list of positive penalties, got {list(v)}")
        return tuple(v)


class LSTMSettings(Section):
    enabled: bool = True
    hidden_size: int = Field(32, ge=1)
    num_layers: int = Field(1, ge=1)
    dropout: float = Field(0.1, ge=0, lt=1)
    sequence_length: int = Field(20, ge=1)
    epochs: int = Field(20, ge=1)
    batch_size: int = Field(512, ge=1)
    learning_rate: float = Field(1e-3, gt=0)
    patience: int = Field(3, ge=1)
    # null: every epoch is a full pass over the training rows
    samples_per_epoch: int | None = Field(None, ge=1)


class TFTSettings(Section):
    enabled: bool = False
    hidden_size: int = Field(64, ge=1)
    attention_heads: int = Field(4, ge=1)
    dropout: float = Field(0.1, ge=0, lt=1)
    sequence_length: int = Field(60, ge=1)
    epochs: int = Field(20, ge=1)
    batch_size: int = Field(512, ge=1)
    learning_rate: float = Field(1e-3, gt=0)
    patience: int = Field(3, ge=1)


class ModelSettings(Section):
    lightgbm: LightGBMSettings = LightGBMSettings()
    xgboost: XGBoostSettings = XGBoostSettings()
    ridge: RidgeSettings = RidgeSettings()
    lstm: LSTMSettings = LSTMSettings()
    tft: TFTSettings = TFTSettings()


# ---------------------------------------------------------------- training


class TrainingSettings(Section):
    label_horizon_bars: int = Field(5, ge=1)
    # The label is the return from the close of bar t + lag to the close of
    # t + lag + h: a signal computed at the close of t can trade at t + 1.
    label_entry_lag_bars: int = Field(1, ge=0)
    # What a member fits, per date: the return less the cross-sectional mean
    # (market), normal-scored ("normal_score") or ranked onto [-0.5, 0.5].
    label_transform: Literal["normal_score", "rank"] = "normal_score"
    horizons: tuple[int, ...] = (1, 5, 20)
    window: Literal["sliding", "expanding"] = "expanding"
    train_period: int = Field(504, ge=20, description="bars in the first (expanding) or every (sliding) training window")
    test_period: int = Field(63, ge=1, description="bars in each test window")
    retrain_frequency: int = Field(63, ge=1, description="bars between two retrains")
    gap_period: int | None = Field(
        None, ge=0, description="bars between train end and test start; null: the label's span (lag + horizon)"
    )
    embargo_bars: int | None = Field(None, ge=0, description="purged k-fold embargo; null: the label's span")
    validation_bars: int = Field(252, ge=5, description="tail of each training window, for early stopping")
    cv_folds: int = Field(5, ge=2)
    seed: int = 42
    hyperopt_budget_s: float = Field(0.0, ge=0)
    trading_cost_bps: float = Field(
        5.0, ge=0, description="one-way cost per unit traded, for the report's cost-adjusted spread"
    )

    @property
    def label_span_bars(self) -> int:
        """Bars from a sample's bar to its label's end (the close it reads last)."""
        return self.label_entry_lag_bars + max(self.horizons)

    @property
    def target_label_span_bars(self) -> int:
        return self.label_entry_lag_bars + self.label_horizon_bars

    @property
    def gap_bars(self) -> int:
        return self.target_label_span_bars if self.gap_period is None else self.gap_period

    @property
    def embargo(self) -> int:
        return self.target_label_span_bars if self.embargo_bars is None else self.embargo_bars

    @model_validator(mode="after")
    def _horizon_listed(self) -> "TrainingSettings":
        if self.label_horizon_bars not in self.horizons:
            raise ValueError(
                f"label_horizon_bars ({self.label_horizon_bars}) must be one of horizons {list(self.horizons)}"
            )
        if self.gap_period is not None and self.gap_period < self.target_label_span_bars:
            raise ValueError(
                f"gap_period ({self.gap_period}) is shorter than the label's span, label_entry_lag_bars + "
                f"label_horizon_bars ({self.target_label_span_bars}): training labels would reach into the test window"
            )
        if self.validation_bars >= self.train_period:
            raise ValueError(
                f"validation_bars ({self.validation_bars}) must be below train_period ({self.train_period}): "
                "the fit part before it would be empty"
            )
        return self


# ---------------------------------------------------------------- ensemble


class EnsembleSettings(Section):
    # rank_average: equal-weight mean of the per-date ranks of the members
    # whose accumulated out-of-sample rank IC is positive.
    method: Literal["rank_average", "average", "ic_weighted", "stacking", "rank_vote"] = "rank_average"
    min_weight: float = Field(0.0, ge=0)


# ---------------------------------------------------------------- serving


class DynamicBatching(Section):
    enabled: bool = True
    max_queue_delay_us: int = Field(200, ge=0)
    preferred_batch_sizes: tuple[int, ...] = ()


class ServingSettings(Section):
    target: Literal["cpu", "gpu"] = "cpu"
    max_batch_size: int = Field(8192, ge=1)
    instance_count: int = Field(1, ge=1)
    dynamic_batching: DynamicBatching = DynamicBatching()
    request_timeout_s: float = Field(5.0, gt=0)
    retries: int = Field(3, ge=0)
    retry_backoff_s: float = Field(0.1, gt=0)
    shared_memory_inputs: bool | None = Field(
        None, description="send Triton inputs through shared memory (None: when Triton is on this host)"
    )
    barrier_timeout_s: float = Field(
        2.0, gt=0, description="live feed: wait this long for missing symbols once every partition is caught up"
    )
    max_ts_ahead_s: float = Field(
        345_600.0, gt=0,
        description="a bar this far beyond its partition's bar time waits for the partition's next bar to confirm it",
    )
    max_pending_bars: int = Field(
        50_000, ge=1, description="pause partitions that run ahead once this many bars wait in open bar times"
    )
    shutdown_timeout_s: float = Field(10.0, gt=0, description="exit this long after SIGTERM even if a call hangs")
    http_host: str = "127.0.0.1"
    http_port: int = Field(8090, ge=1, le=65535)
    warmup_bars: int = Field(80, ge=0, description="bar times processed before signals are emitted")
    engine_id: str = Field("default", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    consumer_group: str = Field("signalml-engine", min_length=1)
    # At least the broker's group.min.session.timeout.ms (6 s by default).
    lease_session_timeout_s: float = Field(
        8.0, ge=6.0, le=300.0,
        description="engines with one engine_id: a killed active engine's lease passes to a standby after this long",
    )
    consume_batch: int = Field(500, ge=1)
    max_in_flight: int = Field(
        1, ge=1, le=64,
        description="cross-sections scored concurrently; a step consumes up to max_in_flight x consume_batch bars",
    )
    commit_interval_s: float = Field(1.0, gt=0, description="longest time consumed bars stay uncommitted")
    snapshot_every_bar_times: int = Field(
        20, ge=1, description="bar times between full state snapshots (at the latest)"
    )
    idle_snapshot_after_bar_times: int = Field(
        10, ge=1, description="when idle, write a full state snapshot once this many bar times were journaled since the last"
    )
    psi_window_bars: int = Field(20, ge=1)
    # champion: the control topic's model_set key, signals to topics.signals;
    # challenger: the model_set.challenger key, signals to topics.signals_challenger.
    role: Literal["champion", "challenger"] = "champion"


# ---------------------------------------------------------------- monitor


class MonitorSettings(Section):
    http_host: str = Field("127.0.0.1", min_length=1, pattern=HOST_PATTERN)
    http_port: int = Field(8091, ge=1, le=65535)
    app_id: str = Field("signalml-monitor", pattern=r"^[A-Za-z0-9_.-]{1,64}$",
                        description="Faust app id: consumer group and table changelog prefix")
    session_timeout_s: float = Field(30.0, ge=6.0, le=300.0,
                                     description="Kafka group session: how long a dead worker holds its partitions")
    ic_window_bars: int = Field(20, ge=2, description="bar times in the rolling rank IC")
    min_names: int = Field(5, ge=3, description="fewest symbols with a matured return for a rank IC")
    batch_max_records: int = Field(64, ge=1, description="cross-section records per Faust batch (take_events)")
    batch_wait_s: float = Field(0.05, gt=0, le=10.0, description="longest wait for a batch to fill")
    ic_decay_warning_z: float = Field(2.0, gt=0)
    ic_decay_critical_z: float = Field(3.0, gt=0)
    adwin_delta: float = Field(0.002, gt=0, lt=1)
    page_hinkley_delta: float = Field(0.05, ge=0)
    page_hinkley_threshold: float = Field(3.0, gt=0)
    page_hinkley_min_bars: int = Field(30, ge=1)
    detector_memory_bars: int = Field(500, ge=20, description="inputs a detector keeps for a restart")
    score_psi_window_bars: int = Field(20, ge=1, description="bar times per score-PSI window")

    @model_validator(mode="after")
    def _critical_above_warning(self) -> "MonitorSettings":
        if self.ic_decay_critical_z < self.ic_decay_warning_z:
            raise ValueError(f"ic_decay_critical_z ({self.ic_decay_critical_z}) must be >= "
                             f"ic_decay_warning_z ({self.ic_decay_warning_z})")
        return self


# ---------------------------------------------------------------- retrain


class RetrainSettings(Section):
    min_severity: Literal["info", "warning", "critical"] = "critical"
    kinds: tuple[str, ...] = ("ic_decay", "score_psi", "feature_psi")
    # Bars before the bars topic's first one (the topic holds days, a
    # walk-forward needs years); null: the topic alone.
    history_store: str | None = "data/sp500_daily_2015_2019.parquet"
    history_bars: int = Field(1260, ge=60, description="most recent bar times to retrain and evaluate on")
    # The bars topic's retention.ms: the topic must still hold every bar since
    # the store's last one, and history_bars daily bar times span five years.
    topic_retention_days: float | None = Field(
        1830.0, gt=0, description="days the bars topic keeps its bars (retention.ms); null: the broker's default"
    )
    evaluation_bars: int = Field(
        252, ge=5, description="the most recent labelled bar times, out of sample for the candidate: the gate reads them"
    )
    min_candidate_t: float = Field(1.0, description="overlap-corrected t of the candidate's held-out rank IC, at least")
    min_improvement: float = Field(0.0, description="paired rank IC difference, candidate − current, at least")
    min_paired_t: float = Field(0.0, description="t-statistic of that paired difference, at least")
    min_comparable_bars: int = Field(
        20, ge=1, description="fewer held-out bar times out of sample for the current set: the candidate is judged alone"
    )
    cooldown_s: float = Field(3600.0, ge=0, description="drift events this soon after a retrain are skipped")
    schedule_s: float = Field(0.0, ge=0, description="retrain every this many seconds (0: on drift only)")
    consumer_group: str = Field("signalml-retrain", min_length=1)
    out_dir: str = "artifacts/retrain"
    http_host: str = Field("127.0.0.1", min_length=1, pattern=HOST_PATTERN)
    http_port: int = Field(8092, ge=0, le=65535, description="metrics; 0 = none")

    @model_validator(mode="after")
    def _evaluation_inside_history(self) -> "RetrainSettings":
        if self.evaluation_bars >= self.history_bars:
            raise ValueError(f"evaluation_bars ({self.evaluation_bars}) must be below history_bars ({self.history_bars})")
        return self


# ---------------------------------------------------------------- kafka


class TopicSettings(Section):
    name: str = Field(min_length=1, max_length=249, pattern=r"^[A-Za-z0-9._-]+$")
    partitions: int = Field(1, ge=1)
    config: dict[str, str] = {}


def _topic(name: str, partitions: int = 1, **config: str) -> TopicSettings:
    return TopicSettings(name=name, partitions=partitions, config=config)


class TopicsSettings(Section):
    bars: TopicSettings = _topic("bars", 4)
    bars_dlq: TopicSettings = _topic("bars.dlq", 1)
    signals: TopicSettings = _topic("signals", 4)
    signals_challenger: TopicSettings = _topic("signals.challenger", 4)
    drift: TopicSettings = _topic("drift", 1)
    # One record per closed cross-section and engine role, for the monitor;
    # at 5,000 symbols a record is about half a megabyte.
    cross_sections: TopicSettings = _topic("cross.sections", 1, **{"max.message.bytes": "67108864"})
    control: TopicSettings = _topic("control", 1, **{"cleanup.policy": "compact"})
    engine_state: TopicSettings = _topic(
        "engine.state", 1, **{"cleanup.policy": "compact", "max.message.bytes": "67108864"}
    )
    engine_lease: TopicSettings = _topic("engine.lease", 1)

    def all(self) -> dict[str, TopicSettings]:
        return {field: getattr(self, field) for field in type(self).model_fields}

    @model_validator(mode="after")
    def _one_lease(self) -> "TopicsSettings":
        # Each partition would be a lease of its own: as many active engines.
        if self.engine_lease.partitions != 1:
            raise ValueError(f"engine_lease.partitions must be 1 (one active engine per engine id), "
                             f"got {self.engine_lease.partitions}")
        return self


class KafkaSettings(Section):
    version: str = "4.1.1"
    # The embedded broker binds here; containers point it at "kafka".
    host: str = Field("127.0.0.1", min_length=1, pattern=HOST_PATTERN)
    port: int = Field(9092, ge=1, le=65535)
    controller_port: int = Field(9093, ge=1, le=65535)
    heap_mb: int = Field(512, ge=256)
    startup_timeout_s: float = Field(90.0, gt=0)
    topics: TopicsSettings = TopicsSettings()

    @property
    def bootstrap_servers(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @model_validator(mode="after")
    def _distinct_ports(self) -> "KafkaSettings":
        if self.port == self.controller_port:
            raise ValueError(f"port and controller_port must differ (both {self.port})")
        return self


# ---------------------------------------------------------------- triton


class TritonSettings(Section):
    host: str = Field("127.0.0.1", min_length=1, pattern=HOST_PATTERN)
    http_port: int = Field(8000, ge=1, le=65535)
    grpc_port: int = Field(8001, ge=1, le=65535)
    metrics_port: int = Field(8002, ge=1, le=65535)
    repository: str = "triton_repo"
    venv: str = ".venv-triton"
    startup_timeout_s: float = Field(120.0, gt=0)
    log_verbose: int = Field(0, ge=0)
    endpoints: tuple[str, ...] = Field(
        (), description="gRPC host:port of every Triton the engine scores on (empty: the one at host:grpc_port)"
    )

    @property
    def grpc_url(self) -> str:
        return f"{self.host}:{self.grpc_port}"

    @property
    def grpc_urls(self) -> list[str]:
        """The endpoints the inference client spreads requests over."""
        return list(self.endpoints) or [self.grpc_url]

    @field_validator("endpoints")
    @classmethod
    def _endpoints(cls, endpoints: tuple[str, ...]) -> tuple[str, ...]:
        for endpoint in endpoints:
            host, _, port = endpoint.rpartition(":")
            if not host or not re.fullmatch(HOST_PATTERN, host) or not port.isdigit() or not 1 <= int(port) <= 65535:
                raise ValueError(f"triton endpoint {endpoint!r} is not host:port")
        if len(set(endpoints)) != len(endpoints):
            raise ValueError(f"triton endpoints are listed twice: {list(endpoints)}")
        return endpoints

    @property
    def http_url(self) -> str:
        return f"{self.host}:{self.http_port}"

    @model_validator(mode="after")
    def _distinct_ports(self) -> "TritonSettings":
        ports = [self.http_port, self.grpc_port, self.metrics_port]
        if len(set(ports)) != 3:
            raise ValueError(f"http_port, grpc_port and metrics_port must differ, got {ports}")
        return self


# ---------------------------------------------------------------- paths


class PathSettings(Section):
    state_dir: str = ".signalml"
    data: str = "data/sp500_daily_2015_2019.parquet"


class Settings(Section):
    features: FeatureSettings = FeatureSettings()
    models: ModelSettings = ModelSettings()
    training: TrainingSettings = TrainingSettings()
    ensemble: EnsembleSettings = EnsembleSettings()
    serving: ServingSettings = ServingSettings()
    monitor: MonitorSettings = MonitorSettings()
    retrain: RetrainSettings = RetrainSettings()
    kafka: KafkaSettings = KafkaSettings()
    triton: TritonSettings = TritonSettings()
    paths: PathSettings = PathSettings()

    # Directory that relative paths are resolved against (the config file's
    # folder, or the working directory when no file was read).
    root: Path = Field(default_factory=Path.cwd, exclude=True)

    def path(self, relative: str) -> Path:
        """Resolve a configured path against the configuration's root."""
        p = Path(relative)
        return p if p.is_absolute() else (self.root / p)

    @property
    def state_dir(self) -> Path:
        return self.path(self.paths.state_dir)

    @property
    def triton_repository(self) -> Path:
        return self.path(self.triton.repository)


# ---------------------------------------------------------------- loading


def find_config_file(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """The file to read: ``explicit``, else ``$SIGNALML_CONFIG``, else the
    first ``signalml.yaml`` in the working directory or one of its parents."""
    if explicit is not None:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        return path.resolve()
    env = os.environ.get(CONFIG_ENV)
    if env:
        path = Path(env)
        if not path.is_file():
            raise ConfigError(f"{CONFIG_ENV} names a file that does not exist: {path}")
        return path.resolve()
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        candidate = folder / DEFAULT_FILE
        if candidate.is_file():
            return candidate
    return None


def env_overrides(environ: dict[str, str] | os._Environ[str] | None = None) -> dict[str, Any]:
    """Nested dict from ``SIGNALML__SECTION__KEY=value`` variables."""
    environ = os.environ if environ is None else environ
    tree: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        keys = [k.lower() for k in name[len(ENV_PREFIX):].split("__") if k]
        if not keys:
            continue
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError as exc:
            raise ConfigError(f"environment variable {name}: not a valid value ({exc.problem})") from None
        node = tree
        for key in keys[:-1]:
            child = node.setdefault(key, {})
            if not isinstance(child, dict):
                raise ConfigError(f"environment variable {name}: conflicts with another override")
            node = child
        node[keys[-1]] = value
    return tree


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _describe(error: dict[str, Any]) -> str:
    setting = ".".join(str(part) for part in error["loc"]) or "(top level)"
    ctx = error.get("ctx") or {}
    if error["type"] == "literal_error":
        return f"{setting}: {error['input']!r} is not allowed; allowed values: {ctx.get('expected')}"
    if error["type"] == "extra_forbidden":
        return f"{setting}: unknown setting"
    message = error["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, "):]
    return f"{setting}: {message} (got {error.get('input')!r})"


def load_settings(
    path: str | os.PathLike[str] | None = None,
    *,
    environ: dict[str, str] | None = None,
    overrides: dict[str, Any] | None = None,
) -> Settings:
    """Read, merge and validate the configuration.

    Order of precedence, lowest first: defaults, the file, environment
    variables, ``overrides`` (used by tests and the CLI).
    """
    file = find_config_file(path)
    data: dict[str, Any] = {}
    if file is not None:
        try:
            loaded = yaml.safe_load(file.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{file}: not valid YAML: {exc}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{file}: the top level must be a mapping of sections")
        data = loaded
    # Merge over the full defaults so an override of one field of a nested
    # section (one topic's partitions) keeps that section's other fields.
    data = _merge(Settings().model_dump(exclude={"root"}), data)
    data = _merge(data, env_overrides(environ))
    if overrides:
        data = _merge(data, overrides)
    root = file.parent if file is not None else Path.cwd()
    try:
        return Settings.model_validate({**data, "root": root})
    except ValidationError as exc:
        problems = "; ".join(_describe(e) for e in exc.errors())
        source = str(file) if file else "defaults"
        raise ConfigError(f"invalid configuration ({source}): {problems}") from None
