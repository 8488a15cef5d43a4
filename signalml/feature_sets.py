"""Which features a configuration selects, by name and by group.

The feature schema is the ordered tuple of names :func:`selected_names`
returns; the model-set manifest hashes it. ``features.feature_sets`` lists
groups and single names; the schema is each entry expanded in turn, a name
kept at its first occurrence, minus ``features.exclude``.

Groups:

* ``classic``: the indicators and alphas the other ``features`` settings
  configure (``{indicator}_{lookback}``, MACD, the alphas);
* ``alpha158``: Qlib's Alpha158 set, in Qlib's order: the nine candle
  shapes (group ``alpha158_kbar``), four prices over the close
  (``alpha158_price``) and 29 rolling operators at each of
  ``alpha158_windows`` (``alpha158_rolling``; one operator's windows
  together are the group named by the operator, e.g. ``CORD``);
* ``us_equity``: market beta and idiosyncratic volatility against the
  cross-sectional mean return, dollar volume, 12-1 momentum and the distance
  to the 52-week high.

Pure Python (no numpy) so the configuration can validate a selection
without loading the feature engine.
"""

from __future__ import annotations

from typing import Any

KBAR = ("KMID", "KLEN", "KMID2", "KUP", "KUP2", "KLOW", "KLOW2", "KSFT", "KSFT2")
PRICE = ("OPEN0", "HIGH0", "LOW0", "VWAP0")
# Qlib's rolling operators in its order (Qlib's config calls MIN "LOW").
ROLLING = (
    "ROC", "MA", "STD", "BETA", "RSQR", "RESI", "MAX", "MIN", "QTLU", "QTLD", "RANK", "RSV",
    "IMAX", "IMIN", "IMXD", "CORR", "CORD", "CNTP", "CNTN", "CNTD", "SUMP", "SUMN", "SUMD",
    "VMA", "VSTD", "WVMA", "VSUMP", "VSUMN", "VSUMD",
)
ALPHA158_WINDOWS = (5, 10, 20, 30, 60)

# US-equity extras: windows in bars of the market regressions, the dollar
# volume average, and 12-1 momentum (a year back to a month back).
MARKET_WINDOWS = (20, 60)
DOLLAR_VOLUME_BARS = 20
MOMENTUM_FROM_BARS, MOMENTUM_TO_BARS = 252, 21
HIGH_52W_BARS = 252
US_EQUITY = (
    *(f"mkt_beta_{d}" for d in MARKET_WINDOWS),
    *(f"idio_vol_{d}" for d in MARKET_WINDOWS),
    f"log_dollar_volume_{DOLLAR_VOLUME_BARS}",
    "mom_12_1",
    "dist_52w_high",
)

MACD_NAMES = ("macd", "macd_signal", "macd_hist")
TOP_GROUPS = ("classic", "alpha158", "us_equity")


def classic_names(settings: Any) -> tuple[str, ...]:
    """``{indicator}_{lookback}`` for each configured indicator, then each
    lookback (both in configuration order), then MACD's three, then the
    alphas."""
    names = [f"{indicator}_{p}" for indicator in settings.indicators for p in settings.lookbacks]
    return (*names, *MACD_NAMES, *settings.alphas)


def rolling_names(operator: str, windows: tuple[int, ...]) -> tuple[str, ...]:
    return tuple(f"{operator}{d}" for d in windows)


def alpha158_names(windows: tuple[int, ...] = ALPHA158_WINDOWS) -> tuple[str, ...]:
    return (*KBAR, *PRICE, *(name for op in ROLLING for name in rolling_names(op, windows)))


def groups(settings: Any) -> dict[str, tuple[str, ...]]:
    """Every group name and the names it stands for, in schema order."""
    windows = tuple(settings.alpha158_windows)
    table = {
        "classic": classic_names(settings),
        "alpha158": alpha158_names(windows),
        "alpha158_kbar": KBAR,
        "alpha158_price": PRICE,
        "alpha158_rolling": tuple(name for op in ROLLING for name in rolling_names(op, windows)),
        "us_equity": US_EQUITY,
    }
    table.update({op: rolling_names(op, windows) for op in ROLLING})
    return table


def known_names(settings: Any) -> tuple[str, ...]:
    """Every feature name the configuration can select (once each)."""
    table = groups(settings)
    return tuple(dict.fromkeys(table["classic"] + table["alpha158"] + table["us_equity"]))


def selected_names(settings: Any) -> tuple[str, ...]:
    """The feature schema: ``feature_sets`` expanded, first occurrence kept,
    ``exclude`` removed. Raises ValueError naming an unknown entry."""
    table = groups(settings)
    known = set(known_names(settings))
    chosen: dict[str, None] = {}
    for entry in settings.feature_sets:
        if entry in table:
            chosen.update(dict.fromkeys(table[entry]))
        elif entry in known:
            chosen[entry] = None
        else:
            raise ValueError(
                f"unknown feature or group {entry!r}; groups: {sorted(table, key=str.lower)}, "
                "or a feature name of one of them"
            )
    for entry in settings.exclude:
        names = table.get(entry, (entry,))
        if entry not in table and entry not in known:
            raise ValueError(f"cannot exclude {entry!r}: no such feature or group")
        for name in names:
            chosen.pop(name, None)
    if not chosen:
        raise ValueError("the selection is empty")
    return tuple(chosen)
