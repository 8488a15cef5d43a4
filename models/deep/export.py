"""Native files of the deep models: safetensors weights and an ONNX graph.

The ONNX contract, the same for every sequence model:

* input ``SEQUENCES``: float32 [batch, T, F], batch dynamic;
* output ``SCORE``: float32 [batch, 1], the target horizon's head;
* output ``HORIZONS``: float32 [batch, H], every horizon's head.

Export uses torch's ``torch.export``-based exporter (the default since
torch 2.9; the TorchScript exporter is deprecated) at opset 18, which
keeps ``nn.LSTM`` as one ONNX ``LSTM`` node. Weights are read back with
safetensors only: nothing here unpickles.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import warnings
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from models.base import ModelError

INPUT = "SEQUENCES"
SCORE = "SCORE"
HORIZONS = "HORIZONS"
OPSET = 18


class ServingModule(nn.Module):
    """The network as served: sequences → (target head [b, 1], all heads [b, H])."""

    def __init__(self, network: nn.Module, target: int):
        super().__init__()
        self.network = network
        self.target = int(target)

    def forward(self, sequences: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        horizons = self.network(sequences)
        return horizons[:, self.target : self.target + 1], horizons


def export_onnx(network: nn.Module, path: Path, *, length: int, n_features: int, target: int) -> None:
    """Write ``network`` (a CPU copy in eval mode) as ONNX to ``path``."""
    module = ServingModule(copy.deepcopy(network).to("cpu").eval(), target).eval()
    example = torch.zeros(2, length, n_features, dtype=torch.float32)
    batch = torch.export.Dim("batch", min=1, max=1 << 20)
    # The exporter reports progress on stdout, warns about torch internals
    # and logs about optional packages (torchvision); none of it is about
    # this model.
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), _quiet("torch.onnx"):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            module,
            (example,),
            input_names=[INPUT],
            output_names=[SCORE, HORIZONS],
            opset_version=OPSET,
            dynamo=True,
            dynamic_shapes={"sequences": {0: batch}},
            verbose=False,
        )
    if program is None:  # pragma: no cover - the dynamo exporter always returns a program
        raise ModelError("ONNX export returned nothing")
    program.save(str(path), external_data=False)


@contextlib.contextmanager
def _quiet(logger_name: str):
    logger = logging.getLogger(logger_name)
    previous = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(previous)


def save_weights(network: nn.Module, path: Path, metadata: dict[str, str] | None = None) -> None:
    state = {key: value.detach().to("cpu").contiguous() for key, value in network.state_dict().items()}
    save_file(state, str(path), metadata=metadata)


def load_weights(network: nn.Module, path: Path) -> None:
    """Load safetensors ``path`` into ``network``; every tensor must match."""
    try:
        state = load_file(str(path), device="cpu")
    except (OSError, SafetensorError) as exc:
        raise ModelError(f"cannot read weights {path}: {exc}") from None
    try:
        network.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelError(f"weights {path} do not fit the architecture in config.json: {exc}") from None
