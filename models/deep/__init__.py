"""Sequence models: an LSTM and a compact Temporal Fusion Transformer.

Both read per-symbol sequences [b, T, F] (:class:`models.base.SequenceData`),
learn every horizon at once, train on CUDA when available, and are saved as
safetensors weights + config.json + an ONNX graph for Triton.
"""

from models.deep.lstm import LSTMPredictor
from models.deep.member import SequenceMember
from models.deep.tft import TemporalFusionTransformer

__all__ = ["LSTMPredictor", "SequenceMember", "TemporalFusionTransformer"]
