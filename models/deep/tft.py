"""A compact Temporal Fusion Transformer (after Lim et al., 2021).

What is kept from the paper, in order:

1. variable selection per time step (:class:`~models.deep.tft_layers.VariableSelection`);
2. an LSTM encoder over the selected inputs, with a gated skip connection;
3. a GRN "enrichment" layer (the paper's static enrichment, here without
   a static context: **this model has no static covariates**, so the
   static encoders and their contexts are left out);
4. interpretable multi-head attention over the T steps, gated skip;
5. a position-wise GRN and a last gated skip back to the LSTM output;
6. point heads, one per horizon, trained with MSE on per-date rank-gauss
   targets (the paper's quantile heads fit a forecast distribution; a
   ranking signal needs only a point score).

Simplifications beyond the missing static covariates: there are no
known-future inputs, so there is no decoder: only the last step is a query
(it attends to all T steps, all in its past, so no mask is needed, and the
position-wise layers after attention run on that step alone); each
feature's embedding is linear rather than a per-feature GRN.
"""

from __future__ import annotations

import torch
from torch import nn

from models.deep.member import SequenceMember
from models.deep.tft_layers import GateAddNorm, GatedResidualNetwork, InterpretableAttention, VariableSelection


class TemporalFusionNetwork(nn.Module):
    """float32 [b, T, F] → float32 [b, H]."""

    def __init__(self, n_features: int, hidden_size: int, attention_heads: int, dropout: float, n_horizons: int):
        super().__init__()
        self.selection = VariableSelection(n_features, hidden_size, dropout)
        self.encoder = nn.LSTM(hidden_size, hidden_size, batch_first=True)
        self.encoder_gate = GateAddNorm(hidden_size, hidden_size, dropout)
        self.enrichment = GatedResidualNetwork(hidden_size, hidden_size, hidden_size, dropout)
        self.attention = InterpretableAttention(hidden_size, attention_heads, dropout)
        self.attention_gate = GateAddNorm(hidden_size, hidden_size, dropout)
        self.position_wise = GatedResidualNetwork(hidden_size, hidden_size, hidden_size, dropout)
        self.output_gate = GateAddNorm(hidden_size, hidden_size, dropout)
        self.head = nn.Linear(hidden_size, n_horizons)

    def forward(self, sequences: torch.Tensor) -> torch.Tensor:
        selected, _ = self.selection(sequences)  # [b, T, d]
        encoded, _ = self.encoder(selected)
        temporal = self.encoder_gate(encoded, selected)  # [b, T, d]
        enriched = self.enrichment(temporal)
        last = enriched[:, -1:]  # [b, 1, d]: the step that is scored
        attended, _ = self.attention(last, enriched)
        fused = self.attention_gate(attended, last)
        fused = self.output_gate(self.position_wise(fused), temporal[:, -1:])
        return self.head(fused[:, 0])


class TemporalFusionTransformer(SequenceMember):
    """The ``tft`` member (settings ``models.tft``; off by default)."""

    kind = "tft"

    def __init__(
        self, n_features: int, *, hidden_size: int = 64, attention_heads: int = 4, dropout: float = 0.1, **settings
    ):
        settings.setdefault("sequence_length", 60)
        super().__init__(n_features, **settings)
        self.hidden_size = int(hidden_size)
        self.attention_heads = int(attention_heads)
        self.dropout = float(dropout)

    def architecture(self) -> dict:
        return {"hidden_size": self.hidden_size, "attention_heads": self.attention_heads, "dropout": self.dropout}

    def build_network(self, n_horizons: int) -> nn.Module:
        return TemporalFusionNetwork(self.n_features, self.hidden_size, self.attention_heads, self.dropout, n_horizons)
