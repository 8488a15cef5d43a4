"""The training loop shared by the sequence models.

Each epoch draws ``samples_per_epoch`` training samples without
replacement (a fresh draw every epoch; all of them, a full pass, when
``None``) and
gathers only each mini-batch's sequences from the panel, on the training
device. The loss is MSE between every horizon's head and that horizon's
per-date rank-gauss target (:mod:`models.deep.targets`), unknown targets
masked out. After each epoch the target head is scored on the validation
dates (every one when ``max_valid_samples`` is ``None``, else at most that
many rows, whole dates, evenly spread);
the epoch with the best mean per-date rank IC is kept, and training stops
after ``patience`` epochs without improvement. A warm-started network is
scored before its first epoch too, so a window where more training does
not help keeps the previous window's weights.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn

from models.base import ModelError, SequenceData, mean_rank_ic
from models.deep.targets import rank_gauss_by_date
from signalml.jsonio import write_json

CHECKPOINT_WEIGHTS = "best.safetensors"
CHECKPOINT_PROGRESS = "progress.json"


@dataclass(frozen=True)
class LoopSettings:
    epochs: int
    batch_size: int
    learning_rate: float
    patience: int
    seed: int
    samples_per_epoch: int | None = 16384
    max_valid_samples: int | None = 20000
    grad_clip_norm: float = 1.0


@dataclass
class LoopResult:
    best_state: dict[str, torch.Tensor]
    best_epoch: int  # 0 = the warm-started weights, before any epoch
    epochs_run: int
    best_valid_rank_ic: float
    best_valid_loss: float
    n_valid_rows: int
    history: list[dict] = field(default_factory=list)


class PanelSequences:
    """Gathers [b, T, F] batches of sequences on ``device`` from one panel."""

    def __init__(self, data: SequenceData, device: torch.device, panel: torch.Tensor | None = None):
        self.panel = panel if panel is not None else _to_device(data.panel, device)
        self.end_rows = torch.from_numpy(np.ascontiguousarray(data.end_rows, dtype=np.int64)).to(device)
        self.offsets = torch.arange(1 - data.length, 1, dtype=torch.int64, device=device)

    def __len__(self) -> int:
        return len(self.end_rows)

    def batch(self, index: torch.Tensor) -> torch.Tensor:
        """float32 [len(index), T, F]."""
        return self.panel[self.end_rows[index][:, None] + self.offsets[None, :]]


def _to_device(panel: np.ndarray, device: torch.device) -> torch.Tensor:
    # On the CPU this shares the numpy array's memory: no copy of the panel.
    return torch.from_numpy(np.ascontiguousarray(panel, dtype=np.float32)).to(device)


def masked_mse(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the finite entries of ``target`` [b, H]."""
    known = torch.isfinite(target)
    error = torch.where(known, prediction - torch.nan_to_num(target), torch.zeros_like(prediction))
    return error.pow(2).sum() / known.sum().clamp(min=1)


@torch.inference_mode()
def predict_horizons(network: nn.Module, sequences: PanelSequences, chunk_size: int = 8192) -> np.ndarray:
    """float32 [n, H]: every head's output, in eval mode."""
    was_training = network.training
    network.eval()
    device = sequences.end_rows.device
    outputs = [
        network(sequences.batch(torch.arange(start, min(start + chunk_size, len(sequences)), device=device))).float().cpu()
        for start in range(0, len(sequences), chunk_size)
    ]
    network.train(was_training)
    if not outputs:
        return np.zeros((0, 0), dtype=np.float32)
    return torch.cat(outputs).numpy()


def validation_rows(groups: np.ndarray, max_rows: int | None) -> np.ndarray:
    """int64 indices of whole dates, evenly spread, at most ``max_rows`` rows
    (at least one date); every row when ``max_rows`` is None."""
    dates, first, counts = np.unique(groups, return_index=True, return_counts=True)
    if max_rows is None or counts.sum() <= max_rows:
        return np.arange(len(groups), dtype=np.int64)
    keep_dates = max(1, int(len(dates) * max_rows / counts.sum()))
    chosen = set(dates[np.linspace(0, len(dates) - 1, keep_dates).round().astype(np.int64)].tolist())
    return np.flatnonzero(np.isin(groups, list(chosen))).astype(np.int64)


def train_network(
    network: nn.Module,
    train: SequenceData,
    valid: SequenceData,
    settings: LoopSettings,
    device: torch.device,
    *,
    warm: bool = False,
    checkpoint_dir: Path | None = None,
) -> LoopResult:
    """Train ``network`` (already on ``device``) in place; returns the best
    epoch's weights (on the CPU) and the history. Call inside
    :func:`models.deep.runtime.reproducible`."""
    train_targets = rank_gauss_by_date(train.y, train.groups)
    learnable = np.flatnonzero(np.isfinite(train_targets).any(axis=1))
    if len(learnable) == 0:
        raise ModelError("no training sample has a known target")
    panel = _to_device(train.panel, device)
    train_sequences = PanelSequences(_subset(train, learnable), device, panel)
    train_targets_t = torch.from_numpy(train_targets[learnable]).to(device)

    valid_index = validation_rows(valid.groups, settings.max_valid_samples)
    valid_subset = _subset(valid, valid_index)
    valid_panel = panel if valid.panel is train.panel else None
    valid_sequences = PanelSequences(valid_subset, device, valid_panel)
    valid_targets = torch.from_numpy(rank_gauss_by_date(valid_subset.y, valid_subset.groups))

    optimizer = torch.optim.Adam(network.parameters(), lr=settings.learning_rate)
    sampler = np.random.default_rng(settings.seed)
    per_epoch = len(learnable) if settings.samples_per_epoch is None else min(settings.samples_per_epoch, len(learnable))

    def evaluate(epoch: int, train_loss: float) -> dict:
        horizons = predict_horizons(network, valid_sequences)
        loss = float(masked_mse(torch.from_numpy(horizons), valid_targets))
        ic = mean_rank_ic(horizons[:, valid.target], valid_subset.target_returns, valid_subset.groups)
        return {"epoch": epoch, "train_loss": train_loss, "valid_loss": loss, "valid_rank_ic": ic}

    history: list[dict] = []
    best = {"ic": -math.inf, "loss": math.nan, "epoch": 0, "state": _cpu_state(network)}

    def consider(record: dict) -> bool:
        history.append(record)
        if record["valid_rank_ic"] > best["ic"]:
            best.update(ic=record["valid_rank_ic"], loss=record["valid_loss"], epoch=record["epoch"], state=_cpu_state(network))
            if checkpoint_dir is not None:
                _write_checkpoint(checkpoint_dir, best["state"], record)
            return True
        return False

    if warm:
        consider(evaluate(0, math.nan))
    stale = 0
    epochs_run = 0
    for epoch in range(1, settings.epochs + 1):
        network.train()
        order = torch.from_numpy(sampler.permutation(len(learnable))[:per_epoch]).to(device)
        total, batches = 0.0, 0
        for start in range(0, per_epoch, settings.batch_size):
            index = order[start : start + settings.batch_size]
            loss = masked_mse(network(train_sequences.batch(index)), train_targets_t[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if settings.grad_clip_norm > 0:
                nn.utils.clip_grad_norm_(network.parameters(), settings.grad_clip_norm)
            optimizer.step()
            total += float(loss.detach())
            batches += 1
        epochs_run = epoch
        if consider(evaluate(epoch, total / max(batches, 1))):
            stale = 0
        else:
            stale += 1
            if stale >= settings.patience:
                break
    return LoopResult(
        best_state=best["state"],
        best_epoch=int(best["epoch"]),
        epochs_run=epochs_run,
        best_valid_rank_ic=float(best["ic"]),
        best_valid_loss=float(best["loss"]),
        n_valid_rows=len(valid_index),
        history=history,
    )


def _subset(data: SequenceData, index: np.ndarray) -> SequenceData:
    return SequenceData(data.panel, data.end_rows[index], data.length, data.y[index], data.groups[index], data.horizons, data.target)


def _cpu_state(network: nn.Module) -> dict[str, torch.Tensor]:
    return {key: value.detach().to("cpu", copy=True).contiguous() for key, value in network.state_dict().items()}


def _write_checkpoint(directory: Path, state: dict[str, torch.Tensor], record: dict) -> None:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_file(state, str(directory / CHECKPOINT_WEIGHTS))
    write_json(directory / CHECKPOINT_PROGRESS, record)
