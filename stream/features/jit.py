"""Compiled loops for the feature state machines.

The Alpha158 and US-equity kernels update one symbol's row with branches
(monotonic deques, sorted windows, rebuilds) that numpy cannot express per
element, so each is one numba-compiled loop over the rows of an update.
The same compiled loop serves a cross-section and a single bar, so the two
paths give the same bits by construction.

The options matter for exactness: no ``fastmath`` (no reassociation, no
fused multiply-add, NaN and inf kept), and numpy's error model (a division
by zero gives inf or NaN as numpy does instead of raising). ``cache`` keeps
the machine code in ``__pycache__`` so a process compiles each loop once per
machine, not once per start.
"""

from __future__ import annotations

import numba

COLLAPSE = 5e-3  # see stream.features.window.COLLAPSE: the same rebuild rule


def jit(function):
    """Compile ``function`` with the options above."""
    return numba.njit(cache=True, nogil=True, error_model="numpy", fastmath=False)(function)


def jit_inline(function):
    """:func:`jit` for a helper of the loops, inlined into its callers: a
    call that passes arrays costs more than a helper's few operations."""
    return numba.njit(cache=True, nogil=True, error_model="numpy", fastmath=False, inline="always")(function)
