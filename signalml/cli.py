"""The ``signalml`` command: one entry point, one subcommand per job.

Each subcommand loads and validates the configuration first, so a bad
setting fails before anything starts. Errors of our own print one clear line
(exit status 1); a subcommand that a later release delivers says so and
exits with status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Callable, Sequence

from signalml.config import Settings, load_settings
from signalml.errors import NotImplementedYet, SignalMLError

EXIT_ERROR = 1
EXIT_NOT_IMPLEMENTED = 2

Handler = Callable[[argparse.Namespace, Settings], int]


# ---------------------------------------------------------------- services


def cmd_up(args: argparse.Namespace, settings: Settings) -> int:
    from signalml.services.stack import Stack

    stack = Stack(settings)
    stack.up(only=args.only)
    _print_status(stack.status())
    return 0


def cmd_down(args: argparse.Namespace, settings: Settings) -> int:
    from signalml.services.stack import Stack

    stopped = Stack(settings).down(only=args.only)
    print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
    return 0


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    from signalml.services.stack import Stack

    status = Stack(settings).status()
    if args.json:
        print(json.dumps(status, indent=2, default=str))
    else:
        _print_status(status)
    return 0


def _print_status(status: dict) -> None:
    for name, info in status.items():
        if not info.get("running"):
            print(f"{name:<7} stopped")
            continue
        ports = ", ".join(f"{k}={v}" for k, v in info.get("ports", {}).items())
        print(f"{name:<7} running  pid {info.get('pid')}  version {info.get('version', '?')}  {ports}")
        for key in ("topics", "models"):
            if info.get(key):
                items = info[key]
                shown = ", ".join(f"{k}({v})" for k, v in items.items()) if isinstance(items, dict) else ", ".join(map(str, items))
                print(f"        {key}: {shown}")


# ---------------------------------------------------------------- data


def cmd_replay(args: argparse.Namespace, settings: Settings) -> int:
    from tqdm import tqdm

    from stream.bars_file import read_bars
    from stream.replay import replay

    frame = read_bars(args.bars, symbols=args.symbols, start=args.from_date, end=args.to_date)
    speed = None if args.speed == "max" else float(args.speed)
    with tqdm(total=len(frame), unit="bar", unit_scale=True, desc="replay", disable=args.quiet or None) as bar:
        summary = replay(settings, frame, source_file=args.bars, speed=speed, progress=bar.update)
    print(json.dumps({"replay": summary.as_dict()}, indent=None if args.json else 2))
    return 0


def cmd_features(args: argparse.Namespace, settings: Settings) -> int:
    from stream.features.batch import write_features

    summary = write_features(args.bars, args.out, settings.features)
    print(json.dumps({"features": summary}))
    return 0


def cmd_bench(args: argparse.Namespace, settings: Settings) -> int:
    if args.target == "replay":
        from stream.bench_replay import run

        result = run(settings, bars_path=args.bars or str(settings.path(settings.paths.data)), rows=args.rows)
    elif args.target == "features":
        from stream.bench_features import run

        result = run(settings.features)
    elif args.target == "train":
        from training import bench_train

        result = bench_train(settings, args.bars or str(settings.path(settings.paths.data)),
                             args.out or str(settings.path("artifacts/bench-train")), progress=not args.json)
    elif args.target == "e2e":
        from stream.bench_e2e import run

        result = run(settings)
    elif args.target == "inference":
        from models.bench_inference import run

        result = run(settings)
    else:
        raise NotImplementedYet(f"signalml bench {args.target}: not implemented yet")
    print(json.dumps({"bench": args.target, **result}, indent=None if args.json else 2))
    return 0


def cmd_train(args: argparse.Namespace, settings: Settings) -> int:
    from training import run_training

    metrics = run_training(settings, args.bars, args.out, progress=not args.quiet)
    summary = {group: {name: {k: round(v, 4) for k, v in values.items() if k in ("rank_ic", "rank_icir")}
                       for name, values in metrics.get(group, {}).items()}
               for group in ("models", "ensembles", "baseline")}
    print(json.dumps({"train": {"out": args.out, "report": f"{args.out}/report.html", **summary}}, indent=2))
    return 0


def cmd_publish(args: argparse.Namespace, settings: Settings) -> int:
    from models.publish import publish, rollback

    if args.rollback:
        manifest = rollback(settings)
    elif args.artifact:
        manifest = publish(settings, args.artifact)
    else:
        raise SignalMLError("signalml publish: give a training output folder, or --rollback")
    members = ", ".join(f"{m.name} v{m.version}" for m in manifest.members)
    print(json.dumps({"published": manifest.model_set, "members": members, "previous": manifest.previous}))
    return 0


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import logging
    import signal

    from stream.engine import Engine

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    engine = Engine(settings)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: engine.stop_event.set())
    engine.run(idle_exit_s=args.idle_exit)
    return 0


def not_implemented(name: str) -> Handler:
    def handler(args: argparse.Namespace, settings: Settings) -> int:
        raise NotImplementedYet(f"signalml {name}: not implemented yet")

    return handler


# ---------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="signalml", description="Streaming inference engine for trading signals.")
    parser.add_argument("--config", help="configuration file (default: $SIGNALML_CONFIG or ./signalml.yaml)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    services = ("kafka", "triton")
    p = sub.add_parser("up", help="start the embedded Kafka and Triton (idempotent)")
    p.add_argument("--only", choices=services, help="start just one service")
    p.set_defaults(handler=cmd_up)
    p = sub.add_parser("down", help="stop the embedded services")
    p.add_argument("--only", choices=services, help="stop just one service")
    p.set_defaults(handler=cmd_down)
    p = sub.add_parser("status", help="what runs: pids, ports, versions, topics, models")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_status)

    p = sub.add_parser("replay", help="publish a bars file (parquet or CSV) to Kafka")
    p.add_argument("--bars", required=True, help="parquet or CSV file of bars")
    p.add_argument("--speed", default="max", type=_speed, help="bar times per second, or 'max' (default)")
    p.add_argument("--symbols", nargs="+", help="only these symbols")
    p.add_argument("--from", dest="from_date", help="first date, inclusive (YYYY-MM-DD)")
    p.add_argument("--to", dest="to_date", help="last date, inclusive (YYYY-MM-DD)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="summary on one line")
    p.set_defaults(handler=cmd_replay)

    p = sub.add_parser("features", help="batch features of a bars file, through the streaming code")
    p.add_argument("--bars", required=True)
    p.add_argument("--out", required=True, help="output parquet file")
    p.set_defaults(handler=cmd_features)

    p = sub.add_parser("bench", help="benchmarks; print figures and ratios as JSON")
    p.add_argument("target", choices=("replay", "features", "train", "inference", "e2e", "api"))
    p.add_argument("--json", action="store_true", help="one JSON line")
    p.add_argument("--bars", help="bars file (default: the bundled data)")
    p.add_argument("--rows", type=int, default=None, help="limit the rows used (replay)")
    p.add_argument("--out", help="output folder (train; default artifacts/bench-train)")
    p.set_defaults(handler=cmd_bench)

    p = sub.add_parser("serve", help="run the engine: bars in, signals out")
    p.add_argument("--idle-exit", type=float, default=None, metavar="S",
                   help="stop once no bar arrived for S seconds (finite replays)")
    p.set_defaults(handler=cmd_serve)

    p = sub.add_parser("train", help="walk-forward training, evaluation report and model-set export")
    p.add_argument("--bars", required=True, help="parquet or CSV file of bars")
    p.add_argument("--out", required=True, help="output folder (model_set/, report.html, metrics.json)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(handler=cmd_train)

    p = sub.add_parser("publish", help="publish a model set to Triton and the control topic")
    p.add_argument("artifact", nargs="?", help="the output folder of signalml train (holds model_set/)")
    p.add_argument("--rollback", action="store_true", help="republish the previous model set")
    p.set_defaults(handler=cmd_publish)

    for name, text in (
        ("monitor", "run the drift monitor"),
        ("demo", "everything on the bundled data, one command"),
    ):
        p = sub.add_parser(name, help=text + " (not implemented yet)")
        p.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
        p.set_defaults(handler=not_implemented(name))
    return parser


def _speed(value: str) -> str:
    if value == "max":
        return value
    try:
        if float(value) > 0:
            return value
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"--speed must be a positive number of bar times per second or 'max', got {value!r}")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(args.config)
        return args.handler(args, settings)
    except NotImplementedYet as exc:
        print(f"signalml: {exc}", file=sys.stderr)
        return EXIT_NOT_IMPLEMENTED
    except SignalMLError as exc:
        print(f"signalml: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("signalml: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
