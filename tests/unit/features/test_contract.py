"""The contract every feature state machine keeps (as River's shared checks):
NaN until ready, reset equals fresh, snapshot round-trip, inputs not mutated,
growth keeps state, rows independent of each other, and the one-row path
equal to the cross-section path bit for bit."""

from __future__ import annotations

import msgspec
import numpy as np
import pytest

from stream.features.alpha158.candle import CandleShape
from stream.features.alpha158.correlation import Correlations
from stream.features.alpha158.extremes import Extremes
from stream.features.alpha158.order_stats import OrderStats
from stream.features.alpha158.trend import CloseTrend
from stream.features.alpha158.up_down import UpDown
from stream.features.alpha158.volume import VolumeStats
from stream.features.alphas import AlphaInputs
from stream.features.atr import ATR
from stream.features.bars import Bars
from stream.features.bollinger import BollingerPosition
from stream.features.kernel import KernelStateError
from stream.features.macd import MACD
from stream.features.returns import Return
from stream.features.rsi import RSI
from stream.features.us_equity.liquidity import DollarVolume
from stream.features.us_equity.market import MarketInputs
from stream.features.us_equity.momentum import Momentum
from stream.features.volatility import Volatility
from stream.features.volume import VolumeRatio

KERNELS = {
    "rsi": lambda: RSI((2, 5, 14)),
    "atr": lambda: ATR((2, 5, 14)),
    "bb_position": lambda: BollingerPosition((2, 5, 20), nbdev=2.0),
    "volume_ratio": lambda: VolumeRatio((2, 5, 20)),
    "ret": lambda: Return((1, 5, 20)),
    "vol": lambda: Volatility((2, 5, 20)),
    "macd": lambda: MACD(3, 7, 4),
    "alpha_inputs": lambda: AlphaInputs(),
    "alpha158_candle": lambda: CandleShape(),
    "alpha158_trend": lambda: CloseTrend((2, 3, 7)),
    "alpha158_extremes": lambda: Extremes((2, 3, 7)),
    "alpha158_order_stats": lambda: OrderStats((2, 3, 7)),
    "alpha158_correlation": lambda: Correlations((2, 3, 7)),
    "alpha158_up_down": lambda: UpDown((2, 3, 7)),
    "alpha158_volume": lambda: VolumeStats((2, 3, 7)),
    "us_equity_momentum": lambda: Momentum(),
    "us_equity_dollar_volume": lambda: DollarVolume(),
    "us_equity_market_inputs": lambda: MarketInputs((3, 7)),
}
N_ROWS = 6
N_BARS = 300


def random_bars(seed: int, n_bars: int = N_BARS, n_rows: int = N_ROWS) -> list[Bars]:
    rng = np.random.default_rng(seed)
    close = 50 * np.exp(np.cumsum(rng.normal(0, 0.02, (n_bars, n_rows)), axis=0))
    close[40:80, 0] = close[40, 0]  # a flat stretch: zero ranges, zero variance
    spread = rng.uniform(0, 0.02, (n_bars, n_rows)) * close
    volume = rng.integers(0, 3, (n_bars, n_rows)) * rng.uniform(1e3, 1e6, (n_bars, n_rows))
    return [Bars(close[t] - 0.3 * spread[t], close[t] + spread[t], close[t] - spread[t], close[t].copy(), volume[t]) for t in range(n_bars)]


def run(kernel, bars: list[Bars], rows=None) -> np.ndarray:
    rows = np.arange(N_ROWS) if rows is None else rows
    return np.stack([kernel.update(rows, b.take(rows)) for b in bars])  # [T, outputs, rows]


@pytest.fixture(params=sorted(KERNELS))
def make(request):
    return KERNELS[request.param]


def test_values_are_nan_exactly_until_ready(make):
    kernel = make()
    kernel.grow(N_ROWS)
    outputs = run(kernel, random_bars(1))
    for j, warmup in enumerate(kernel.warmup_bars):
        assert np.isnan(outputs[: warmup - 1, j]).all(), kernel.output_names[j]
        assert not np.isnan(outputs[warmup - 1 :, j]).all(axis=0).any(), kernel.output_names[j]
    assert kernel.ready.shape == (kernel.n_outputs, kernel.capacity)
    assert kernel.ready[:, :N_ROWS].all()


def test_ready_flag_turns_on_at_the_warmup_bar(make):
    kernel = make()
    bars = random_bars(2, n_rows=1)
    for t, bar in enumerate(bars[: max(kernel.warmup_bars) + 1]):
        kernel.update([0], bar.take([0]))
        assert list(kernel.ready[:, 0]) == [t + 1 >= w for w in kernel.warmup_bars]


def test_reset_equals_fresh(make):
    bars = random_bars(3)
    used = make()
    used.grow(N_ROWS)
    run(used, bars[:50])
    used.reset()
    fresh = make()
    fresh.grow(N_ROWS)
    assert np.array_equal(run(used, bars), run(fresh, bars), equal_nan=True)


def test_resetting_some_rows_leaves_the_others(make):
    bars = random_bars(4)
    kernel, reference = make(), make()
    kernel.grow(N_ROWS)
    reference.grow(N_ROWS)
    run(kernel, bars[:30])
    run(reference, bars[:30])
    kernel.reset([1, 3])
    after, expected = run(kernel, bars[30:]), run(reference, bars[30:])
    keep = [0, 2, 4, 5]
    assert np.array_equal(after[:, :, keep], expected[:, :, keep], equal_nan=True)
    fresh = make()
    fresh.grow(N_ROWS)
    assert np.array_equal(after[:, :, [1, 3]], run(fresh, bars[30:])[:, :, [1, 3]], equal_nan=True)


def test_state_round_trips_through_json_bit_for_bit(make):
    bars = random_bars(5)
    original = make()
    original.grow(N_ROWS)
    run(original, bars[:123])
    copy = make()
    copy.restore(msgspec.json.decode(msgspec.json.encode(original.state())))
    assert np.array_equal(run(original, bars[123:]), run(copy, bars[123:]), equal_nan=True)


def test_state_of_another_kernel_is_refused(make):
    kernel = make()
    state = kernel.state()
    state["params"] = {"periods": [999]}
    with pytest.raises(KernelStateError):
        make().restore(state)


def test_inputs_are_not_mutated(make):
    kernel = make()
    kernel.grow(N_ROWS)
    rows = np.arange(N_ROWS)
    for bar in random_bars(6)[:80]:
        before = [field.copy() for field in bar]
        rows_before = rows.copy()
        kernel.update(rows, bar)
        assert all(np.array_equal(a, b) for a, b in zip(before, bar))
        assert np.array_equal(rows, rows_before)


def test_rows_are_independent_and_order_free(make):
    """A row's values do not depend on which other rows share the call, nor
    on their order: one-row updates equal whole-cross-section updates."""
    bars = random_bars(7)
    together = make()
    together.grow(N_ROWS)
    permuted = np.array([4, 0, 5, 2, 1, 3])
    joint = run(together, bars, rows=permuted)
    alone = make()
    alone.grow(N_ROWS)
    for t, bar in enumerate(bars):
        for position, row in enumerate(permuted):
            single = alone.update([row], bar.take([row]))
            assert np.array_equal(single[:, 0], joint[t, :, position], equal_nan=True)


def test_rows_at_different_bar_counts_equal_rows_alone(make):
    """Calls that mix rows which missed bars (each at its own bar count, so
    ring slots and warm-up differ per row), contiguous or not, give what each
    row gives alone through the one-row path."""
    bars = random_bars(10)
    rng = np.random.default_rng(10)
    mixed, alone = make(), make()
    mixed.grow(N_ROWS)
    alone.grow(N_ROWS)
    for t, bar in enumerate(bars):
        present = np.flatnonzero(rng.uniform(size=N_ROWS) < 0.7)
        if len(present) < 2:
            continue
        rows = rng.permutation(present) if t % 2 else present  # an index array, or a slice when contiguous
        joint = mixed.update(rows, bar.take(rows))
        for position, row in enumerate(rows):
            single = alone.update([row], bar.take([row]))
            assert np.array_equal(single[:, 0], joint[:, position], equal_nan=True), (t, row)


def test_bad_input_gives_the_same_values_on_both_paths(make):
    """The engine never applies a bad bar, but a kernel alone may get one: a
    zero, NaN, inf or negative field then spoils the same outputs whether the
    row came alone or in a cross-section (no exception on the one-row path)."""
    rng = np.random.default_rng(12)
    bars = []
    for t, bar in enumerate(random_bars(12)):
        fields = [field.copy() for field in bar]
        if t % 7 == 3:
            fields[rng.integers(0, 5)][rng.integers(0, N_ROWS)] = rng.choice([0.0, np.nan, np.inf, -1.0])
        bars.append(Bars(*fields))
    together, alone = make(), make()
    together.grow(N_ROWS)
    alone.grow(N_ROWS)
    rows = np.array([4, 0, 5, 2, 1, 3])
    for bar in bars:
        joint = together.update(rows, bar.take(rows))
        for position, row in enumerate(rows):
            assert np.array_equal(alone.update([row], bar.take([row]))[:, 0], joint[:, position], equal_nan=True)


def test_growing_keeps_state(make):
    bars = random_bars(8)
    small, large = make(), make()
    small.grow(N_ROWS)
    large.grow(N_ROWS)
    run(small, bars[:60])
    run(large, bars[:60])
    large.grow(1000)
    assert large.capacity == 1000
    assert np.array_equal(run(small, bars[60:]), run(large, bars[60:]), equal_nan=True)


def test_memory_is_bounded(make):
    kernel = make()
    kernel.grow(N_ROWS)
    sizes = sum(getattr(kernel, name).nbytes for name in kernel._specs)
    run(kernel, random_bars(9))
    assert sum(getattr(kernel, name).nbytes for name in kernel._specs) == sizes
