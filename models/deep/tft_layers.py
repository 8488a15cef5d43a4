"""Building blocks of the Temporal Fusion Transformer (Lim et al., 2021).

Shapes: b = batch, T = steps, F = features, d = hidden size; every block
works on any leading dimensions.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional


class GatedLinearUnit(nn.Module):
    """GLU(γ) = σ(W4 γ + b4) ⊙ (W5 γ + b5), after dropout: lets a block
    switch its own contribution off."""

    def __init__(self, input_size: int, output_size: int, dropout: float):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.gate = nn.Linear(input_size, output_size)
        self.value = nn.Linear(input_size, output_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dropout(x)
        return torch.sigmoid(self.gate(x)) * self.value(x)


class GateAddNorm(nn.Module):
    """LayerNorm(residual + GLU(x)): the paper's gated skip connection."""

    def __init__(self, input_size: int, output_size: int, dropout: float):
        super().__init__()
        self.glu = GatedLinearUnit(input_size, output_size, dropout)
        self.norm = nn.LayerNorm(output_size)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.norm(residual + self.glu(x))


class GatedResidualNetwork(nn.Module):
    """GRN(a) = LayerNorm(skip(a) + GLU(W1 ELU(W2 a + b2) + b1)).

    ``skip`` is a linear map when input and output sizes differ. No
    context input: this model has no static covariates.
    """

    def __init__(self, input_size: int, hidden_size: int, output_size: int, dropout: float):
        super().__init__()
        self.skip = nn.Linear(input_size, output_size) if input_size != output_size else nn.Identity()
        self.hidden = nn.Linear(input_size, hidden_size)
        self.output = nn.Linear(hidden_size, hidden_size)
        self.gate_norm = GateAddNorm(hidden_size, output_size, dropout)

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        eta = self.output(functional.elu(self.hidden(a)))
        return self.gate_norm(eta, self.skip(a))


class VariableSelection(nn.Module):
    """Per step, soft-select features: [.., F] → ([.., d], weights [.., F]).

    Weights v = softmax(GRN(x)) over the F features. Each feature j is
    embedded linearly, ξ_j = x_j w_j + b_j, and the step's input is
    Σ_j v_j ξ_j. (The paper passes each ξ_j through its own GRN; with scalar
    features that multiplies the cost by F for little gain, so it is left
    out.) The sum is computed as (v ⊙ x) W + v B, never materialising the
    [.., F, d] tensor of embeddings.
    """

    def __init__(self, n_features: int, hidden_size: int, dropout: float):
        super().__init__()
        self.selector = GatedResidualNetwork(n_features, hidden_size, n_features, dropout)
        self.embedding_weight = nn.Parameter(torch.empty(n_features, hidden_size))
        self.embedding_bias = nn.Parameter(torch.zeros(n_features, hidden_size))
        nn.init.xavier_uniform_(self.embedding_weight)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        weights = torch.softmax(self.selector(x), dim=-1)
        selected = (weights * x) @ self.embedding_weight + weights @ self.embedding_bias
        return selected, weights


class InterpretableAttention(nn.Module):
    """Interpretable multi-head attention: per-head queries and keys, one
    value projection shared by all heads, heads' attention weights
    averaged, so a single [.., Q, T] weight map explains the output.

    query [b, Q, d], memory [b, T, d] → ([b, Q, d], weights [b, Q, T]).
    """

    def __init__(self, hidden_size: int, heads: int, dropout: float):
        super().__init__()
        self.heads = int(heads)
        self.head_size = max(1, hidden_size // self.heads)
        self.query = nn.Linear(hidden_size, self.heads * self.head_size)
        self.key = nn.Linear(hidden_size, self.heads * self.head_size)
        self.value = nn.Linear(hidden_size, self.head_size)
        self.output = nn.Linear(self.head_size, hidden_size)
        self.dropout = nn.Dropout(dropout)

    def forward(self, query: torch.Tensor, memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        q = self.query(query).unflatten(-1, (self.heads, self.head_size)).transpose(1, 2)  # [b, h, Q, k]
        k = self.key(memory).unflatten(-1, (self.heads, self.head_size)).transpose(1, 2)  # [b, h, T, k]
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.head_size)  # [b, h, Q, T]
        weights = torch.softmax(scores, dim=-1).mean(dim=1)  # [b, Q, T]
        attended = self.dropout(weights) @ self.value(memory)  # [b, Q, k]
        return self.output(attended), weights
