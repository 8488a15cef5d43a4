"""What every sequence model shares: fit, predict, files, warm start.

A subclass names its ``kind``, lists its architecture's settings
(:meth:`SequenceMember.architecture`) and builds its ``nn.Module``
(:meth:`SequenceMember.build_network`), which maps float32 [b, T, F] to
one output per horizon [b, H].

Files written by :meth:`SequenceMember.save`:

* ``model.onnx``: the served graph (see :mod:`models.deep.export`);
* ``model.safetensors``: the weights;
* ``config.json``: kind, architecture, training settings, horizons,
  target, feature names, best epoch; enough to rebuild the module.

Walk-forward reuse: :meth:`SequenceMember.warm_start_from` takes the
previous window's weights when the architecture matches; the next fit
then starts from them and runs at most ``warm_epochs`` epochs (default a
quarter of ``epochs``), keeping the previous weights if no epoch beats
them on the new validation dates.
"""

from __future__ import annotations

import time
from abc import abstractmethod
from pathlib import Path

import numpy as np
import torch
from torch import nn

from models.base import Member, ModelError, SequenceData, read_json
from models.deep import export
from models.deep.runtime import default_threads, reproducible, select_device, torch_threads
from models.deep.training import LoopSettings, PanelSequences, predict_horizons, train_network
from signalml.jsonio import write_json

ONNX_FILE = "model.onnx"
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
FORMAT_VERSION = 1


class SequenceMember(Member):
    """Base of the deep members: ``input = "sequence"``."""

    input = "sequence"

    def __init__(
        self,
        n_features: int,
        *,
        name: str | None = None,
        feature_names: list[str] | None = None,
        sequence_length: int = 20,
        epochs: int = 20,
        batch_size: int = 512,
        learning_rate: float = 1e-3,
        patience: int = 3,
        seed: int = 42,
        samples_per_epoch: int | None = 16384,
        max_valid_samples: int | None = 20000,
        warm_epochs: int | None = None,
        num_threads: int | None = None,
        device: str | None = None,
        checkpoint_dir: Path | None = None,
    ):
        super().__init__(n_features, name=name, feature_names=feature_names)
        if sequence_length < 1:
            raise ModelError(f"{self.name}: sequence_length must be >= 1, got {sequence_length}")
        self.sequence_length = int(sequence_length)
        self.training_settings = {
            "epochs": int(epochs),
            "batch_size": int(batch_size),
            "learning_rate": float(learning_rate),
            "patience": int(patience),
            "seed": int(seed),
            "samples_per_epoch": None if samples_per_epoch is None else int(samples_per_epoch),
            "max_valid_samples": None if max_valid_samples is None else int(max_valid_samples),
            "warm_epochs": int(warm_epochs) if warm_epochs is not None else max(1, int(epochs) // 4),
        }
        self.num_threads = int(num_threads or default_threads())
        self.device = select_device(device)
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.network: nn.Module | None = None
        self.horizons: tuple[int, ...] = ()
        self.target = 0
        self.best_epoch = 0
        self._warm_state: dict[str, torch.Tensor] | None = None
        self._warm_horizons: tuple[int, ...] = ()

    # ------------------------------------------------------------ subclass hooks

    @abstractmethod
    def architecture(self) -> dict:
        """JSON-able settings that, with n_features and the horizon count,
        fix the network's shape (written to config.json)."""

    @abstractmethod
    def build_network(self, n_horizons: int) -> nn.Module:
        """A fresh module: float32 [b, T, F] → float32 [b, n_horizons]."""

    # ------------------------------------------------------------ training

    def warm_start_from(self, previous: Member) -> None:
        """Start the next fit from ``previous``'s weights when it is the same
        kind with the same architecture, features and sequence length;
        otherwise the next fit starts cold."""
        same = (
            isinstance(previous, type(self))
            and previous.network is not None
            and previous.architecture() == self.architecture()
            and previous.n_features == self.n_features
            and previous.sequence_length == self.sequence_length
        )
        if not same:
            self._warm_state, self._warm_horizons = None, ()
            return
        self._warm_state = {k: v.detach().to("cpu", copy=True) for k, v in previous.network.state_dict().items()}
        self._warm_horizons = previous.horizons

    def _check_data(self, data: SequenceData) -> None:
        self._check_n_features(data.n_features)
        if data.length != self.sequence_length:
            raise ModelError(f"{self.name}: sequences of length {data.length}, the member expects {self.sequence_length}")

    def fit(self, train: SequenceData, valid: SequenceData) -> dict:
        started = time.perf_counter()
        self._check_data(train)
        self._check_data(valid)
        s = self.training_settings
        warm = self._warm_state is not None and self._warm_horizons == tuple(train.horizons)
        loop = LoopSettings(
            epochs=s["warm_epochs"] if warm else s["epochs"],
            batch_size=s["batch_size"],
            learning_rate=s["learning_rate"],
            patience=s["patience"],
            seed=s["seed"],
            samples_per_epoch=s["samples_per_epoch"],
            max_valid_samples=s["max_valid_samples"],
        )
        with reproducible(s["seed"], self.num_threads, self.device):
            network = self.build_network(len(train.horizons))
            if warm:
                network.load_state_dict(self._warm_state)
            network.to(self.device)
            result = train_network(network, train, valid, loop, self.device, warm=warm, checkpoint_dir=self.checkpoint_dir)
            network.load_state_dict(result.best_state)
        network.eval()
        self.network = network
        self.horizons, self.target = tuple(train.horizons), int(train.target)
        self.best_epoch = result.best_epoch
        self._warm_state, self._warm_horizons = None, ()
        report = {
            "best_epoch": result.best_epoch,
            "epochs_run": result.epochs_run,
            "metric": "rank_ic",
            "valid_metric": result.best_valid_rank_ic,
            "valid_rank_ic": result.best_valid_rank_ic,
            "valid_loss": result.best_valid_loss,
            "n_train_rows": len(train),
            "n_valid_rows": result.n_valid_rows,
            "seconds": time.perf_counter() - started,
            "device": self.device.type,
            "warm": warm,
        }
        if warm:
            report["initial_valid_rank_ic"] = result.history[0]["valid_rank_ic"]
        return report

    # ------------------------------------------------------------ scoring

    def _require_network(self) -> nn.Module:
        if self.network is None:
            raise ModelError(f"{self.name}: not fitted")
        return self.network

    def predict_horizons(self, data: SequenceData | np.ndarray) -> np.ndarray:
        """float32 [n, H]: every horizon's head for ``data`` (sequences, or
        an array [n, T, F])."""
        network = self._require_network()
        if isinstance(data, SequenceData):
            self._check_data(data)
            with torch_threads(self.num_threads):
                return predict_horizons(network, PanelSequences(data, self.device))
        sequences = np.asarray(data, dtype=np.float32)
        if sequences.ndim != 3 or sequences.shape[1:] != (self.sequence_length, self.n_features):
            raise ModelError(
                f"{self.name}: sequences must be [n, {self.sequence_length}, {self.n_features}], got {sequences.shape}"
            )
        n = len(sequences)
        as_panel = SequenceData(
            panel=sequences.reshape(n * self.sequence_length, self.n_features),
            end_rows=np.arange(1, n + 1, dtype=np.int64) * self.sequence_length - 1,
            length=self.sequence_length,
            y=np.zeros((n, len(self.horizons))),
            groups=np.zeros(n, dtype=np.int64),
            horizons=self.horizons,
            target=self.target,
        )
        return self.predict_horizons(as_panel)

    def predict(self, data: SequenceData | np.ndarray) -> np.ndarray:
        return self.predict_horizons(data)[:, self.target].astype(np.float64)

    # ------------------------------------------------------------ files

    def config(self) -> dict:
        return {
            "format_version": FORMAT_VERSION,
            "kind": self.kind,
            "name": self.name,
            "n_features": self.n_features,
            "feature_names": self.resolved_feature_names(),
            "sequence_length": self.sequence_length,
            "horizons": list(self.horizons),
            "target": self.target,
            "architecture": self.architecture(),
            "training": self.training_settings,
            "best_epoch": self.best_epoch,
            "onnx": {
                "input": {"name": export.INPUT, "dtype": "float32", "shape": [-1, self.sequence_length, self.n_features]},
                "outputs": {
                    export.SCORE: {"dtype": "float32", "shape": [-1, 1]},
                    export.HORIZONS: {"dtype": "float32", "shape": [-1, len(self.horizons)]},
                },
                "opset": export.OPSET,
            },
        }

    def save(self, directory: Path) -> dict[str, str]:
        network = self._require_network()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        export.save_weights(network, directory / WEIGHTS_FILE, metadata={"kind": self.kind, "name": self.name})
        export.export_onnx(
            network, directory / ONNX_FILE, length=self.sequence_length, n_features=self.n_features, target=self.target
        )
        write_json(directory / CONFIG_FILE, self.config(), sort_keys=True)
        return {"onnx": ONNX_FILE, "weights": WEIGHTS_FILE, "config": CONFIG_FILE}

    @classmethod
    def load(cls, directory: Path, files: dict[str, str], *, device: str | None = None) -> "SequenceMember":
        directory = Path(directory)
        config = read_json(directory / files.get("config", CONFIG_FILE))
        if config.get("kind") != cls.kind:
            raise ModelError(f"{directory}: config.json describes a {config.get('kind')!r} model, not {cls.kind!r}")
        if config.get("format_version") != FORMAT_VERSION:
            raise ModelError(f"{directory}: config.json format_version {config.get('format_version')} is not {FORMAT_VERSION}")
        member = cls(
            config["n_features"],
            name=config["name"],
            feature_names=config["feature_names"],
            sequence_length=config["sequence_length"],
            device=device,
            **config["architecture"],
            **config["training"],
        )
        member.horizons, member.target = tuple(config["horizons"]), int(config["target"])
        member.best_epoch = int(config.get("best_epoch", 0))
        network = member.build_network(len(member.horizons))
        export.load_weights(network, directory / files.get("weights", WEIGHTS_FILE))
        member.network = network.to(member.device).eval()
        return member
