"""The command line: subcommands, exit codes, one-line errors."""

import pytest

from signalml.cli import EXIT_ERROR, build_parser, main


def test_every_subcommand_of_the_design_exists():
    choices = build_parser()._subparsers._group_actions[0].choices
    assert set(choices) >= {"up", "down", "status", "replay", "serve", "monitor", "features", "train", "publish", "demo", "bench", "retrain"}


def test_demo_rejects_a_bad_speed(capsys):
    with pytest.raises(SystemExit):
        main(["demo", "--speed", "0"])
    assert "--speed" in capsys.readouterr().err


def test_a_bad_configuration_fails_before_anything_starts(monkeypatch, capsys):
    monkeypatch.setenv("SIGNALML__ENSEMBLE__METHOD", "median")
    assert main(["status"]) == EXIT_ERROR
    err = capsys.readouterr().err
    assert "ensemble.method" in err and "rank_vote" in err


def test_replay_rejects_a_bad_speed(capsys):
    with pytest.raises(SystemExit):
        main(["replay", "--bars", "x.parquet", "--speed", "fast"])
    assert "--speed" in capsys.readouterr().err


def test_replay_of_a_missing_file_is_a_one_line_error(capsys):
    assert main(["replay", "--bars", "/nonexistent.parquet"]) == EXIT_ERROR
    assert "bars file not found" in capsys.readouterr().err


def test_long_running_commands_keep_the_onnx_exporters_info_chatter_out_of_their_log():
    import logging

    from signalml.cli import QUIET_LOGGERS, log_progress

    root = logging.getLogger()
    before = {name: logging.getLogger(name).level for name in QUIET_LOGGERS}
    before_root = root.level
    try:
        root.setLevel(logging.INFO)  # what log_progress asks for, also where pytest already holds the root
        log_progress()
        assert logging.getLogger("signalml.retrain").isEnabledFor(logging.INFO)
        assert not logging.getLogger("onnxscript.optimizer._constant_folding").isEnabledFor(logging.INFO)
        assert not logging.getLogger("onnx_ir.passes.common.unused_removal").isEnabledFor(logging.INFO)
        assert logging.getLogger("onnxscript.optimizer").isEnabledFor(logging.WARNING)
    finally:
        root.setLevel(before_root)
        for name, level in before.items():
            logging.getLogger(name).setLevel(level)
