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
