"""The input of the sequence models, defined once.

The sequence of a symbol at bar t is the last ``T`` of *its own* bars'
normalised feature rows, oldest first, ending with bar t, NaN replaced by 0,
zero-padded at the start of its history. :func:`sequence_window` is the
definition (the live engine rebuilds exactly this from a ring buffer of the
symbol's last ``T`` rows); :func:`sequence_panel` lays out a whole history
so that every sample is a contiguous slice of one array, and a test checks
the two agree on every sample.
"""

from __future__ import annotations

import numpy as np


def sequence_window(history: np.ndarray, length: int) -> np.ndarray:
    """[T, F] float32 sequence from ``history`` [k, F]: one symbol's
    normalised feature rows up to and including bar t, oldest first."""
    history = np.asarray(history, dtype=np.float32)
    if history.ndim != 2:
        raise ValueError(f"history must be [k, F], got shape {history.shape}")
    if length < 1:
        raise ValueError(f"sequence length must be >= 1, got {length}")
    out = np.zeros((length, history.shape[1]), dtype=np.float32)
    tail = history[-length:] if len(history) else history
    if len(tail):
        out[length - len(tail):] = np.nan_to_num(tail, nan=0.0, posinf=0.0, neginf=0.0)
    return out


def sequence_panel(
    symbol_index: np.ndarray, time_order: np.ndarray, features: np.ndarray, padding_rows: int
) -> tuple[np.ndarray, np.ndarray]:
    """Lay out the rows of ``features`` [n, F] as a panel [R, F] float32:
    each symbol's rows contiguous in time order, preceded by
    ``padding_rows`` zero rows, NaN replaced by 0.

    ``time_order`` [n] sorts rows within a symbol (the bar index). Returns
    the panel and ``end_rows`` [n]: row i's position in the panel, so that
    ``panel[end_rows[i] - T + 1 : end_rows[i] + 1]`` is
    :func:`sequence_window` of row i for any ``T <= padding_rows + 1``.
    """
    symbol_index = np.asarray(symbol_index, dtype=np.int64)
    n, n_features = features.shape
    order = np.lexsort((np.asarray(time_order), symbol_index))
    sorted_symbols = symbol_index[order]
    starts = np.flatnonzero(np.r_[True, sorted_symbols[1:] != sorted_symbols[:-1]]) if n else np.empty(0, np.int64)
    # Symbol block b (0-based) is shifted by the padding of itself and of
    # the b blocks before it.
    block_of = np.zeros(n, dtype=np.int64)
    if n:
        block_of[starts[1:]] = 1
        block_of = np.cumsum(block_of)
    panel_position = np.arange(n, dtype=np.int64) + (block_of + 1) * padding_rows
    panel = np.zeros((n + len(starts) * padding_rows, n_features), dtype=np.float32)
    panel[panel_position] = np.nan_to_num(features[order].astype(np.float32, copy=False), nan=0.0, posinf=0.0, neginf=0.0)
    end_rows = np.empty(n, dtype=np.int64)
    end_rows[order] = panel_position
    return panel, end_rows


def gather_sequences(panel: np.ndarray, end_rows: np.ndarray, length: int) -> np.ndarray:
    """[len(end_rows), T, F] float32: the windows ending at ``end_rows``."""
    offsets = np.arange(-length + 1, 1, dtype=np.int64)
    return panel[np.asarray(end_rows, dtype=np.int64)[:, None] + offsets[None, :]]
