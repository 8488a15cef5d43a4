"""Qlib's Alpha158 features as streaming state machines.

Names, windows and expressions are those of Qlib's
``Alpha158DL.get_feature_config`` with the operators of ``qlib/data/ops.py``
(see :mod:`signalml.feature_sets` for the list). Where this implementation
departs from Qlib, on purpose:

* A rolling feature has a value once its whole window exists (``d`` bars,
  ``d + 1`` for those built on the previous close or volume); Qlib fills
  the first bars from partial windows (``min_periods=1``).
* Bars carry no traded value, so ``VWAP0`` uses the proxy
  ``(high + low + close) / 3``.
* ``RANK{d}`` is the percentile of the close in its window, in (0, 1];
  Qlib divides scipy's percentage by the window length once more, a
  constant factor ``100 / d`` away.
* ``RSQR``, ``CORR`` and ``CORD`` are NaN when an input is constant over
  the window (an exact test, so scale-free); Qlib tests the rolling standard
  deviation against an absolute 2e-5, which depends on the price level.

Every feature is homogeneous of degree zero in prices (a ratio of prices or
of price changes; the 1e-12 of Qlib's denominators aside), so back-adjusted
history and raw live prices give the same values between two corporate
actions.
"""
