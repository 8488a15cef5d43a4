"""Message contracts between the parts of SignalML (see DESIGN.md, Contracts).

Every message on a topic is JSON encoded by msgspec from one of the typed
structs below. Field names are the contract: fields may be added, never
renamed. Timestamps are epoch milliseconds, UTC.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Literal

import msgspec
from msgspec import Meta, Struct

# A ticker: letters, digits and the punctuation exchanges use (BRK.B, BF-B,
# ^GSPC, EUR/USD). Bounded so a hostile payload cannot make a huge key. The
# one definition: the decoder, the query API's parameter check and its
# OpenAPI description all derive theirs from these two.
SYMBOL_CHARACTER = r"[A-Za-z0-9._\-/^=]"
SYMBOL_MAX_LENGTH = 32
SYMBOL_PATTERN = f"{SYMBOL_CHARACTER}{{1,{SYMBOL_MAX_LENGTH}}}"  # one whole symbol (use with fullmatch)
# msgspec matches with Python's re.search, where "$" also matches before a
# final newline: the lookahead refuses "AAPL\n" (in JSON Schema's regex
# dialect it is a no-op).
Symbol = Annotated[str, Meta(min_length=1, max_length=SYMBOL_MAX_LENGTH, pattern=rf"^{SYMBOL_CHARACTER}+$(?!\n)")]
EpochMs = Annotated[int, Meta(ge=0, le=32503680000000)]  # up to year 3000
Interval = Annotated[str, Meta(max_length=16)]

# What a bar's numbers may be. Beyond these no real instrument trades (the
# dearest share is under 1e6, the cheapest token above 1e-10), and inside them
# every feature stays finite: the largest product the features form (a
# squared return or a squared dollar volume, summed over a window) is far
# below float64's 1.8e308, where a price of 1e308 overflows at once.
MIN_PRICE = 1e-12
MAX_PRICE = 1e12
MAX_VOLUME = 1e18


class Bar(Struct, frozen=True):
    """One OHLCV bar; topic ``bars``, key = symbol. ``ts`` is the bar close."""

    symbol: Symbol
    ts: EpochMs
    open: float
    high: float
    low: float
    close: float
    volume: float
    interval: Interval | None = None


class DeadLetter(Struct, frozen=True):
    """A rejected input; topic ``bars.dlq``, key = the original key.

    ``original_b64`` holds the original message bytes exactly (base64).
    The source is a Kafka position (topic, partition, offset) for bars the
    engine consumed, or a file and row for bars rejected by ``replay``.
    """

    reason: str
    detail: str
    original_b64: str
    rejected_at: EpochMs
    source_topic: str | None = None
    source_partition: int | None = None
    source_offset: int | None = None
    source_file: str | None = None
    source_row: int | None = None
    symbol: str | None = None
    ts: int | None = None


class Signal(Struct, frozen=True):
    """One symbol's signal at bar time ``ts``; topic ``signals``, key = symbol.

    ``rank`` is the percentile of ``score`` within the cross-section, in
    (0, 1]. A subscriber knows the cross-section of ``ts`` is complete when it
    has seen ``cross_section_size`` signals with that ``ts``.
    """

    ts: EpochMs
    symbol: Symbol
    score: float
    rank: float
    members: dict[str, float]
    model_set: str
    cross_section_size: int
    horizon_bars: int = 0


class CrossSectionRecord(Struct, frozen=True):
    """One closed cross-section as the engine scored it; topic
    ``cross_sections``, key = the engine's role (``champion`` or
    ``challenger``), published in the same transaction as its signals.

    ``symbols`` and ``closes``: every bar of bar time ``ts`` (sorted by
    symbol); ``score`` and ``members``: aligned with ``symbols``, None where
    a symbol was not scored (warming up, rejected by the features).
    ``model_set`` is empty and the scores are all None while no model set
    was serving: the record still carries the closes that the returns of
    earlier cross-sections mature on.
    """

    ts: EpochMs
    role: str
    model_set: str
    horizon_bars: int
    symbols: list[str]
    closes: list[float]
    score: list[float | None]
    members: dict[str, list[float | None]]


Severity = Literal["info", "warning", "critical"]


class DriftEvent(Struct, frozen=True):
    """A drift finding; topic ``drift``, key = :meth:`key` (idempotent)."""

    ts: EpochMs
    kind: str  # feature_psi, score_psi, ic_decay, adwin, page_hinkley, ...
    subject: str  # a feature name or a model name
    statistic: float
    threshold: float
    severity: Severity
    model_set: str
    detail: str = ""

    def key(self) -> str:
        return f"{self.model_set}|{self.kind}|{self.subject}|{self.ts}"


class ManifestMember(Struct, frozen=True):
    """One served model of a model set, pinned to a Triton version."""

    name: str
    version: int
    kind: Literal["lightgbm", "xgboost", "ridge", "lstm", "tft"]
    input: Literal["tabular", "sequence"]
    weight: float = 1.0


class ReferenceBins(Struct, frozen=True):
    """Training-time distribution of one feature or score, for PSI.

    ``warning_psi`` / ``critical_psi``: where training measured that this
    column's PSI over a monitoring window already varies more than the
    conventional 0.1 / 0.25 (a feature with few distinct values, a
    regime-sensitive one), the levels calibrated on its training windows;
    None means the conventional ones."""

    edges: list[float]
    fractions: list[float]
    warning_psi: float | None = None
    critical_psi: float | None = None


class ModelSetManifest(Struct, frozen=True):
    """Everything that defines one model set; control topic and a file.

    ``feature_schema_hash`` is :func:`schema_hash` of ``feature_names`` so an
    engine refuses a set trained on other features.
    """

    model_set: str
    created_at: EpochMs
    members: list[ManifestMember]
    ensemble_method: Literal["average", "ic_weighted", "stacking", "rank_vote", "rank_average"]
    feature_names: list[str]
    feature_schema_hash: str
    horizon_bars: int
    sequence_length: int = 0
    ensemble_weights: dict[str, float] = {}
    stacking_coefficients: dict[str, float] = {}
    stacking_intercept: float = 0.0
    drift_reference: dict[str, ReferenceBins] = {}
    training_metrics: dict[str, dict[str, float]] = {}
    previous: str | None = None
    # first_date, last_date (of the rows fit) and last_label_end (the last
    # close those rows' labels read): where the set is out of sample
    training_window: dict[str, str] = {}


def schema_hash(feature_names: list[str]) -> str:
    """Stable hash of an ordered feature list (sha256 of the names, one per line)."""
    return hashlib.sha256("\n".join(feature_names).encode()).hexdigest()[:16]


_encoder = msgspec.json.Encoder()
encode = _encoder.encode


def decoder(kind: type[Struct]) -> msgspec.json.Decoder:
    """A reusable JSON decoder for one contract type."""
    return msgspec.json.Decoder(kind)
