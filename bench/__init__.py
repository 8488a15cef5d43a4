"""Benchmarks: each measures a part of the product and a baseline in the
same run and returns figures and ratios as plain data; ``signalml bench
TARGET`` prints them as JSON and BENCHMARKS.md records the results.

| target | module | measures |
| --- | --- | --- |
| replay | :mod:`bench.replay` | bars/s through the broker, against a plain producer loop |
| features | :mod:`bench.features` | feature updates/s, against peer libraries (:mod:`bench.feature_peers`) |
| train | :mod:`bench.train` | the walk-forward's out-of-sample figures and their cost |
| inference | :mod:`bench.inference` | scoring through Triton, against each member's library in-process |
| e2e | :mod:`bench.e2e` | bars topic → signals topic throughput and latency, against a bar-at-a-time loop |
| api | :mod:`bench.api` | the query API under load (:mod:`bench.http_load`), against a bare HTTP server |
| monitor | :mod:`bench.monitor` | the drift monitor's bars/s and live lag, against the engine on the same bars |

The product's packages (``signalml``, ``stream``, ``models``, ``training``)
do not import this one; the ``signalml bench`` command loads it when it runs.
"""
