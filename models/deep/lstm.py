"""LSTM over each symbol's last T feature rows, one linear head per horizon.

The network reads float32 [b, T, F] (oldest step first), runs a stacked
LSTM (``hidden_size`` units, ``num_layers`` layers, ``dropout`` between
layers) and maps the last step's hidden state, through dropout, to one
output per horizon [b, H]. All heads learn at once (per-date rank-gauss
targets, see :mod:`models.deep.targets`): the other horizons regularise
the shared encoder; :meth:`LSTMPredictor.predict` returns the target
horizon's head.
"""

from __future__ import annotations

import torch
from torch import nn

from models.deep.member import SequenceMember


class LSTMNetwork(nn.Module):
    """float32 [b, T, F] → float32 [b, H]."""

    def __init__(self, n_features: int, hidden_size: int, num_layers: int, dropout: float, n_horizons: int):
        super().__init__()
        self.lstm = nn.LSTM(
            n_features,
            hidden_size,
            num_layers=num_layers,
            batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,  # torch applies it between layers only
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size, n_horizons)

    def forward(self, sequences: torch.Tensor) -> torch.Tensor:
        encoded, _ = self.lstm(sequences)
        return self.head(self.dropout(encoded[:, -1]))


class LSTMPredictor(SequenceMember):
    """The ``lstm`` member (settings ``models.lstm``)."""

    kind = "lstm"

    def __init__(self, n_features: int, *, hidden_size: int = 64, num_layers: int = 2, dropout: float = 0.1, **settings):
        super().__init__(n_features, **settings)
        self.hidden_size = int(hidden_size)
        self.num_layers = int(num_layers)
        self.dropout = float(dropout)

    def architecture(self) -> dict:
        return {"hidden_size": self.hidden_size, "num_layers": self.num_layers, "dropout": self.dropout}

    def build_network(self, n_horizons: int) -> nn.Module:
        return LSTMNetwork(self.n_features, self.hidden_size, self.num_layers, self.dropout, n_horizons)
