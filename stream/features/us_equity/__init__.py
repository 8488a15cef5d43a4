"""US-equity features beside Alpha158: market beta and idiosyncratic
volatility against the cross-sectional mean return, dollar volume, 12-1
momentum and the distance to the 52-week high (see
:mod:`signalml.feature_sets` for names and windows)."""
