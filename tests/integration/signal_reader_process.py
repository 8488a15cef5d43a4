"""A subscriber as a real process, for the client's tests: it reads complete
cross-sections with :class:`CrossSectionReader` from a consumer group,
"handles" each (a short random pause), records it (one JSON line, fsynced),
acknowledges it, and records the acknowledgement. A test kills it anywhere.

    python -m tests.integration.signal_reader_process --group G --out FILE [--until-caught-up]

Settings come from the environment (``engine_world.env_of``)."""

from __future__ import annotations

import argparse
import json
import os
import random
import time

from signalml.client import CrossSectionReader
from signalml.config import load_settings
from tests.integration.engine_world import REPO


def record(out, entry: dict) -> None:
    out.write(json.dumps(entry) + "\n")
    out.flush()
    os.fsync(out.fileno())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--group", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--run", type=int, required=True, help="which start of the reader this is")
    parser.add_argument("--handle-ms", type=float, default=10.0, help="longest pause to handle one cross-section")
    parser.add_argument("--until-caught-up", action="store_true", help="stop once the topic is read to its end")
    args = parser.parse_args()
    settings = load_settings(REPO / "signalml.yaml")
    handling = random.Random(args.run)
    with open(args.out, "a") as out, CrossSectionReader(settings, args.group, from_beginning=True) as reader:
        record(out, {"event": "started", "run": args.run})
        stream = reader.until_caught_up(timeout_s=300) if args.until_caught_up else iter(reader)
        for cross_section in stream:
            time.sleep(handling.uniform(0, args.handle_ms) / 1000)
            record(out, {"event": "delivered", "run": args.run, **cross_section.as_dict()})
            reader.acknowledge(cross_section)
            record(out, {"event": "acknowledged", "run": args.run, "model_set": cross_section.model_set,
                         "ts": cross_section.ts})
        record(out, {"event": "caught up", "run": args.run, "counts": reader.counts.as_dict()})


if __name__ == "__main__":
    main()
