"""SignalML: streaming inference engine for trading signals."""

import os

# OpenMP threads (torch, LightGBM, XGBoost) spin while they wait by default;
# beside Kafka and Triton on a small machine that costs up to 10x. This
# package is imported before any of them; a value in the environment wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
