"""The command line a new user meets: paths that hold `=`, --version, help texts to act on, log levels."""

import logging

import pytest

from w2vdist import __version__
from w2vdist.cli import build_parser, is_setting, main, parse_args
from w2vdist.logs import configure_logging


def test_a_path_with_equals_signs_is_a_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = parse_args(["preprocess", "data/lang=en", "s3a://bucket/year=2024/", "--out", "run", "min_count=3"])
    assert args.inputs == ["data/lang=en", "s3a://bucket/year=2024/", "min_count=3"]
    assert [word for word in args.inputs if is_setting(word)] == ["min_count=3"]
    assert is_setting("windw=3") and not is_setting("/data/x=1")  # a misspelt setting stays one
    (tmp_path / "lang=en").mkdir()
    assert not is_setting("lang=en")  # an existing folder named like a setting is the folder


def test_preprocess_reads_a_partition_folder_as_input(tmp_path, monkeypatch, capsys):
    partition = tmp_path / "data" / "lang=en"
    partition.mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert main(["preprocess", "data/lang=en", "--out", "run"]) == 2
    err = capsys.readouterr().err
    assert "input folder 'data/lang=en' holds no non-empty files" in err and "unknown setting" not in err
    assert main(["preprocess", "data/lang=en", "--out", "run", "windw=3"]) == 2
    assert "unknown setting 'windw'. Did you mean window?" in capsys.readouterr().err


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"w2vdist {__version__}"


def test_help_texts_a_user_can_act_on():
    parser = build_parser()
    assert "w2vdist pipeline --sample" in parser.description and "default.yaml" in parser.description
    assert "internal" not in parser.description.lower()
    commands = parser._subparsers._group_actions[0].choices
    assert "corpus/" in commands["train"].description and "pairs/ " not in commands["train"].format_help()
    for name in ("export", "similar", "analogy", "evaluate", "plot"):
        assert "VECTORS" in commands[name].format_usage(), name
    analogy = {a.metavar: a.help for a in commands["analogy"]._actions if a.metavar in ("A", "B", "C")}
    assert all(analogy[k] for k in "ABC") and "(king)" in analogy["B"]
    assert "--sample" in commands["pipeline"].format_help() and "--stage" in commands["pipeline"].format_help()


def test_log_levels():
    configure_logging("warning")
    assert logging.getLogger("w2vdist.pipeline").getEffectiveLevel() == logging.WARNING
    assert logging.getLogger("ray.train").getEffectiveLevel() == logging.WARNING
    configure_logging("debug")
    assert logging.getLogger("ray.train").getEffectiveLevel() == logging.DEBUG
    configure_logging("info")
    assert logging.getLogger("w2vdist.train").getEffectiveLevel() == logging.INFO
    assert logging.getLogger("some.library").getEffectiveLevel() == logging.WARNING
    args = parse_args(["--log-level", "warning", "train", "runs/x"])
    assert args.log_level == "warning" and parse_args(["-v", "train", "runs/x"]).log_level == "debug"
