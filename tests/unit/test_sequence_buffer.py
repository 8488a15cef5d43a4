"""The live sequence buffer rebuilds exactly the training definition of a sequence."""

import msgspec
import numpy as np
from hypothesis import given, settings, strategies as st

from stream.sequence_buffer import SequenceBuffer
from training.sequences import sequence_window


@settings(max_examples=60, deadline=None)
@given(length=st.integers(1, 6), n_symbols=st.integers(1, 5), steps=st.integers(1, 15), seed=st.integers(0, 999))
def test_windows_equal_the_training_definition_with_gaps_joins_and_nans(length, n_symbols, steps, seed):
    rng = np.random.default_rng(seed)
    n_features = 3
    buffer = SequenceBuffer(length, n_features, capacity=1)
    history = {f"S{i}": [] for i in range(n_symbols)}
    for step in range(steps):
        present = [s for s in history if rng.random() < 0.7]
        if not present:
            continue
        rows = rng.normal(size=(len(present), n_features)).astype(np.float32)
        rows[rng.random(rows.shape) < 0.2] = np.nan
        buffer.update(present, rows)
        for symbol, row in zip(present, rows):
            history[symbol].append(row)
        if step == steps // 2:  # restart from a snapshot halfway
            buffer = SequenceBuffer.from_state(msgspec.json.decode(msgspec.json.encode(buffer.state())))
        windows = buffer.windows(present)
        for symbol, window in zip(present, windows):
            expected = sequence_window(np.array(history[symbol]), length)
            assert np.array_equal(window, expected)


def test_a_symbol_with_fewer_rows_than_the_length_is_zero_padded_at_the_start():
    buffer = SequenceBuffer(3, 2)
    buffer.update(["A"], np.array([[1.0, np.nan]]))
    assert buffer.windows(["A"]).tolist() == [[[0, 0], [0, 0], [1, 0]]]
