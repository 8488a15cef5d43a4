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
from typing import Sequence

from signalml.config import Settings, load_settings
from signalml.errors import SignalMLError

EXIT_ERROR = 1



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
    from signalml.status import (
        drift_lines,
        drift_status,
        engine_lines,
        engine_status,
        model_set_lines,
        model_set_status,
    )

    services = Stack(settings).status()
    triton = services["triton"]
    triton_models = triton.get("models") if triton.get("running") and "error" not in triton else None
    model_set = model_set_status(settings, triton_models)
    kafka_error = services["kafka"].get("error") or (None if services["kafka"].get("running") else "not running")
    engine = engine_status(settings, kafka_error=kafka_error)
    drift = drift_status(settings, count=args.drift_events, kafka_error=services["kafka"].get("error"))
    if args.json:
        print(json.dumps({**services, "engine": engine, "model_set": model_set, "drift": drift}, indent=2,
                         default=str))
    else:
        _print_status(services)
        print("\n".join(engine_lines(engine) + model_set_lines(model_set) + drift_lines(drift)))
    return 0


def cmd_topics(args: argparse.Namespace, settings: Settings) -> int:
    from signalml.services.kafka import KafkaBroker

    report = KafkaBroker(settings).ensure_topics(timeout_s=args.timeout)
    print(json.dumps({"topics": report, "bootstrap_servers": settings.kafka.bootstrap_servers}, indent=2))
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

    from signalml.services.topics import require_topics
    from stream.bars_file import read_bars
    from stream.replay import replay

    frame = read_bars(args.bars, symbols=args.symbols, start=args.from_date, end=args.to_date)
    require_topics(settings, ["bars", "bars_dlq"])
    speed = None if args.speed == "max" else float(args.speed)
    with tqdm(total=len(frame), unit="bar", unit_scale=True, desc="replay", disable=args.quiet or None) as bar:
        summary = replay(settings, frame, source_file=args.bars, speed=speed, progress=bar.update)
    print(json.dumps({"replay": summary.as_dict()}, indent=None if args.json else 2))
    return 0


def cmd_predict(args: argparse.Namespace, settings: Settings) -> int:
    from tqdm import tqdm

    from stream.predict import predict

    with tqdm(unit="bar time", desc="predict", disable=args.quiet or None) as bar:
        def start(total: int):
            bar.reset(total=total)
            return bar.update

        summary = predict(settings, args.bars, args.out, model_set=args.model_set, symbols=args.symbols,
                          start=args.from_date, end=args.to_date, progress=start)
    print(json.dumps({"predict": summary.as_dict()}, indent=None if args.json else 2))
    return 0


def cmd_features(args: argparse.Namespace, settings: Settings) -> int:
    from stream.features.batch import write_features

    summary = write_features(args.bars, args.out, settings.features)
    print(json.dumps({"features": summary}))
    return 0


def cmd_bench(args: argparse.Namespace, settings: Settings) -> int:
    if args.target == "replay":
        from bench.replay import run

        result = run(settings, bars_path=args.bars or str(settings.path(settings.paths.data)), rows=args.rows)
    elif args.target == "features":
        from bench.features import run

        result = run(settings.features)
    elif args.target == "train":
        from bench.train import bench_train

        result = bench_train(settings, args.bars or str(settings.path(settings.paths.data)),
                             args.out or str(settings.path("artifacts/bench-train")), progress=not args.json,
                             naive=args.naive)
    elif args.target == "e2e":
        from bench.e2e import run

        result = run(settings)
    elif args.target == "api":
        from bench.api import run

        result = run(settings, quick=args.quick)
    elif args.target == "monitor":
        from bench.monitor import run

        result = run(settings, quick=args.quick)
    elif args.target == "saturation":
        from bench.saturation import run

        result = run(settings, quick=args.quick)
    elif args.target == "scale":
        from bench.scale import run

        result = run(settings, quick=args.quick)
    else:  # inference
        from bench.inference import run

        result = run(settings)
    print(json.dumps({"bench": args.target, **result}, indent=None if args.json else 2))
    return 0


def cmd_train(args: argparse.Namespace, settings: Settings) -> int:
    from training import run_training

    cpcv = None
    if args.validation == "cpcv":
        if not 1 <= args.cpcv_test_groups < args.cpcv_groups:
            raise SignalMLError(f"signalml train: --cpcv-test-groups ({args.cpcv_test_groups}) must be at least 1 and "
                                f"below --cpcv-groups ({args.cpcv_groups})")
        cpcv = (args.cpcv_groups, args.cpcv_test_groups)
    metrics = run_training(settings, args.bars, args.out, progress=not args.quiet, cpcv=cpcv)
    summary = {group: {name: {k: round(v, 4) for k, v in values.items() if k in ("rank_ic", "rank_icir")}
                       for name, values in metrics.get(group, {}).items()}
               for group in ("models", "ensembles", "baseline")}
    if cpcv is not None:
        report = metrics["cpcv"]
        summary["cpcv"] = {
            **{k: report[k] for k in ("n_groups", "n_test_groups", "embargo_bars", "n_splits", "n_paths")},
            "members": {name: {k: round(v, 4) for k, v in values.items() if k.startswith("path_rank_ic_")}
                        for name, values in report["members"].items()},
        }
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


# Libraries the ONNX export runs log every rewrite pass at INFO.
QUIET_LOGGERS = ("onnxscript", "onnx_ir")


def log_progress() -> None:
    """Long-running commands log their progress at INFO on stderr; the
    libraries' own INFO chatter stays out."""
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from stream.engine import serve

    log_progress()
    serve(settings, idle_exit_s=args.idle_exit)
    return 0


def cmd_monitor(args: argparse.Namespace, settings: Settings) -> int:
    from stream.monitor.app import run

    run(settings, loglevel=args.loglevel)
    return 0


def cmd_retrain(args: argparse.Namespace, settings: Settings) -> int:
    from signalml.services.topics import require_topics
    from training.retrain import RetrainLoop

    require_topics(settings, ["drift", "control"] + ([] if args.bars else ["bars"]))
    log_progress()
    loop = RetrainLoop(settings, bars_path=args.bars)
    if args.once:
        decision = loop.retrain(reason="signalml retrain --once")
        print(json.dumps({"retrain": decision}, indent=2, default=str))
        return 0
    every = settings.retrain.schedule_s if args.every is None else args.every
    decisions = loop.watch(every_s=every or None, idle_exit_s=args.idle_exit, max_retrains=args.max_retrains)
    print(json.dumps({"retrains": decisions}, indent=2, default=str))
    return 0


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from signalml.demo import DemoOptions, run_demo
    from signalml.demo.view import summary_lines

    options = DemoOptions(speed=args.speed, tail_days=args.tail_days, out=args.out, quick=args.quick,
                          live=args.live and sys.stdout.isatty(), stop=args.stop, config=args.config)
    print("\n".join(summary_lines(run_demo(settings, options))))
    return 0


def cmd_tail(args: argparse.Namespace, settings: Settings) -> int:
    import msgspec

    from signalml.client import CrossSectionReader, DriftAlertReader
    from signalml.client.lines import cross_section_line, drift_line

    follow = args.follow or not args.from_beginning
    if args.stream == "signals":
        topic = settings.kafka.topics.signals_challenger.name if args.challenger else None
        reader = CrossSectionReader(settings, args.group, topic=topic, from_beginning=args.from_beginning,
                                    model_sets=args.model_set)
        show = (lambda xs: json.dumps(xs.as_dict())) if args.json else (lambda xs: cross_section_line(xs, args.names))
    else:
        reader = DriftAlertReader(settings, args.group, from_beginning=args.from_beginning,
                                  min_severity=args.min_severity, kinds=args.kind, model_sets=args.model_set)
        show = (lambda event: msgspec.json.encode(event).decode()) if args.json else drift_line
    with reader:
        for item in (iter(reader) if follow else reader.until_caught_up()):
            print(show(item), flush=True)
    return 0


# ---------------------------------------------------------------- parser


def _bars_selection(p: argparse.ArgumentParser, from_help: str) -> None:
    """The options of a command that reads a bars file: which symbols and
    dates, and how it reports."""
    p.add_argument("--symbols", nargs="+", help="only these symbols")
    p.add_argument("--from", dest="from_date", help=from_help)
    p.add_argument("--to", dest="to_date", help="last date, inclusive (YYYY-MM-DD)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="summary on one line")


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
    p = sub.add_parser("status", help="what runs: pids, ports, versions, topics, models; the model set; drift events")
    p.add_argument("--json", action="store_true")
    p.add_argument("--drift-events", type=int, default=5, metavar="N", help="how many of the last drift events (default 5)")
    p.set_defaults(handler=cmd_status)

    p = sub.add_parser("topics", help="create the configured topics that are missing on kafka.host:kafka.port (idempotent)")
    p.add_argument("--timeout", type=_positive, default=30.0, metavar="S",
                   help="seconds to wait for the broker's answer and the new topics' leaders (default 30)")
    p.set_defaults(handler=cmd_topics)

    p = sub.add_parser("replay", help="publish a bars file (parquet or CSV) to Kafka")
    p.add_argument("--bars", required=True, help="parquet or CSV file of bars")
    p.add_argument("--speed", default="max", type=_speed, help="bar times per second, or 'max' (default)")
    _bars_selection(p, "first date, inclusive (YYYY-MM-DD)")
    p.set_defaults(handler=cmd_replay)

    p = sub.add_parser("predict", help="score a bars file with a published model set, as the engine would")
    p.add_argument("--bars", required=True, help="parquet or CSV file of bars")
    p.add_argument("--out", required=True, help="output file of signals: .parquet or .csv")
    p.add_argument("--model-set", metavar="ID", help="a stored model set (default: the current one)")
    _bars_selection(p, "first date, inclusive (YYYY-MM-DD); warm-up starts there")
    p.set_defaults(handler=cmd_predict)

    p = sub.add_parser("features", help="batch features of a bars file, through the streaming code")
    p.add_argument("--bars", required=True)
    p.add_argument("--out", required=True, help="output parquet file")
    p.set_defaults(handler=cmd_features)

    p = sub.add_parser("bench", help="benchmarks; print figures and ratios as JSON")
    p.add_argument("target", choices=("replay", "features", "train", "inference", "e2e", "api", "monitor",
                                      "saturation", "scale"))
    p.add_argument("--json", action="store_true", help="one JSON line")
    p.add_argument("--bars", help="bars file (default: the bundled data)")
    p.add_argument("--rows", type=int, default=None, help="limit the rows used (replay)")
    p.add_argument("--out", help="output folder (train; default artifacts/bench-train)")
    p.add_argument("--quick", action="store_true", help="a short run (api, monitor, saturation, scale)")
    p.add_argument("--naive", action="store_true",
                   help="train: also time the naive loop (datasets rebuilt, members fresh per window)")
    p.set_defaults(handler=cmd_bench)

    p = sub.add_parser("serve", help="run the engine: bars in, signals out")
    p.add_argument("--idle-exit", type=float, default=None, metavar="S",
                   help="stop once no bar arrived for S seconds (finite replays)")
    p.set_defaults(handler=cmd_serve)

    p = sub.add_parser("train", help="walk-forward training, evaluation report and model-set export")
    p.add_argument("--bars", required=True, help="parquet or CSV file of bars")
    p.add_argument("--out", required=True, help="output folder (model_set/, report.html, metrics.json)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--validation", choices=("walk-forward", "cpcv"), default="walk-forward",
                   help="cpcv: also cross-validate every member with combinatorial purged CV over the whole history "
                        "(the walk-forward still runs: it gives the model set and the out-of-sample report)")
    p.add_argument("--cpcv-groups", type=int, default=6, help="cpcv: groups the labelled bars are cut into")
    p.add_argument("--cpcv-test-groups", type=int, default=2, help="cpcv: groups of each split's test set")
    p.set_defaults(handler=cmd_train)

    p = sub.add_parser("publish", help="publish a model set to Triton and the control topic")
    p.add_argument("artifact", nargs="?", help="the output folder of signalml train (holds model_set/)")
    p.add_argument("--rollback", action="store_true", help="republish the previous model set")
    p.set_defaults(handler=cmd_publish)

    p = sub.add_parser("monitor", help="run the drift monitor (Faust worker): realised IC, detectors, drift events")
    p.add_argument("--loglevel", default="info", choices=("crit", "error", "warn", "info", "debug"))
    p.set_defaults(handler=cmd_monitor)

    p = sub.add_parser("retrain", help="retrain on drift (--watch), on a schedule, or once; publish only if better")
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--watch", action="store_true", help="consume drift events and retrain on those that qualify")
    mode.add_argument("--once", action="store_true", help="retrain now, once")
    p.add_argument("--every", type=float, default=None, metavar="S",
                   help="also retrain every S seconds (default retrain.schedule_s; with --watch)")
    p.add_argument("--bars", help="history from this bars file alone, instead of the bars store and the bars topic")
    p.add_argument("--idle-exit", type=float, default=None, metavar="S",
                   help="--watch: stop once no drift event arrived for S seconds")
    p.add_argument("--max-retrains", type=int, default=None, metavar="N", help="--watch: stop after N retrains")
    p.set_defaults(handler=cmd_retrain)

    p = sub.add_parser("tail", help="complete cross-sections of signals, or drift events, one line each")
    p.add_argument("stream", choices=("signals", "drift"))
    p.add_argument("--from-beginning", action="store_true",
                   help="start at the topic's start (default: its end); stops once caught up unless --follow")
    p.add_argument("--follow", action="store_true",
                   help="keep reading as the engine publishes (implied without --from-beginning)")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("--group", metavar="ID", help="resume from, and commit to, this consumer group (default: none)")
    p.add_argument("--model-set", action="append", metavar="ID", help="only this model set (repeatable)")
    p.add_argument("--challenger", action="store_true", help="signals: the challenger's topic")
    p.add_argument("--names", type=int, default=3, metavar="N", help="signals: top and bottom names shown (default 3)")
    p.add_argument("--min-severity", default="info", choices=("info", "warning", "critical"),
                   help="drift: events at or above this severity (default info)")
    p.add_argument("--kind", action="append", metavar="KIND", help="drift: only this kind (repeatable)")
    p.set_defaults(handler=cmd_tail)

    p = sub.add_parser("demo", help="everything on the bundled data, one command: train, publish, serve, replay, watch")
    p.add_argument("--speed", type=_positive, default=4.0, help="tail bar times per second (default 4)")
    p.add_argument("--tail-days", type=int, default=None, metavar="N",
                   help="bar times held back from training and replayed (default 120; 30 with --quick)")
    p.add_argument("--out", default="artifacts/demo", help="artifacts folder (default artifacts/demo)")
    p.add_argument("--quick", action="store_true", help="40 symbols, tiny models: a run of about a minute (tests)")
    p.add_argument("--no-live", dest="live", action="store_false",
                   help="plain log lines instead of the live view (automatic when stdout is not a terminal)")
    p.add_argument("--stop", action="store_true", help="at the end, stop the services this run started")
    p.set_defaults(handler=cmd_demo)
    return parser


def _positive(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = 0.0
    if number > 0:
        return number
    raise argparse.ArgumentTypeError(f"must be a positive number, got {value!r}")


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
    except SignalMLError as exc:
        print(f"signalml: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("signalml: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
