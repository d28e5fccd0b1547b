import dataclasses
import subprocess
import sys
import time

import pytest
import yaml

from tests.conftest import REPO
from w2vdist.cli import main
from w2vdist.config import DEFAULT_CONFIG_PATH, Config, load_config, phrase_thresholds
from w2vdist.errors import ConfigError

SAMPLE = REPO / "w2vdist" / "data" / "sample" / "corpus.txt.gz"


def test_default_yaml_documents_every_setting_with_its_default():
    data = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text(encoding="utf-8"))
    defaults = Config().to_dict()
    assert set(data) == set(defaults), "conf/default.yaml and Config disagree on which settings exist"
    loaded = load_config([DEFAULT_CONFIG_PATH])
    assert dataclasses.asdict(loaded) == defaults


def test_overrides_are_typed_and_win_over_files(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("min_count: 3\nsample: 1e-4\nwindow: 8\n")
    config = load_config([path], ["window=2", "input=a.txt,b.txt", "use_gpu=false", "phrase_threshold=[50, 20]",
                                  "phrase_passes=2"])
    assert config.min_count == 3 and config.window == 2
    assert config.sample == pytest.approx(1e-4)
    assert config.input == ["a.txt", "b.txt"]
    assert config.use_gpu is False
    assert phrase_thresholds(config) == [50.0, 20.0]


@pytest.mark.parametrize("override, words", [
    ("min_cont=3", ["unknown setting 'min_cont'", "min_count"]),
    ("min_count=0", ["'min_count'", ">= 1", "0"]),
    ("min_count=abc", ["'min_count'", "an integer"]),
    ("numbers=spell", ["'numbers'", "keep, replace, drop"]),
    ("use_gpu=maybe", ["'use_gpu'", "true, false, auto"]),
    ("phrase_threshold=[1, 2, 3]", ["'phrase_threshold'", "one per pass"]),
    ("alpha=0", ["'alpha'", "> 0"]),
    ("alpha=nan", ["'alpha'", "finite number > 0", "nan"]),
    ("checkpoint_interval_s=.inf", ["'checkpoint_interval_s'", "finite number", "inf"]),
    ("phrase_threshold=[100, -.inf]", ["'phrase_threshold'", "a list of finite numbers"]),
    ("token_pattern=(", ["'token_pattern'", "not a valid regular expression", "'('"]),
    ("token_pattern=[a-z]*", ["'token_pattern'", "matches the empty string"]),
    ("column_shards=many", ["'column_shards'", "an integer >= 1 or auto", "'many'"]),
    ("column_shards=0", ["'column_shards'", "an integer >= 1 or auto"]),
    ("column_shards=2", ["'num_workers' (1) must be a multiple of 'column_shards' (2)"]),
    ("column_shards=200", ["'column_shards' (200) must not exceed 'dim' (100)"]),
])
def test_bad_settings_name_the_key_and_what_is_allowed(override, words):
    with pytest.raises(ConfigError) as info:
        load_config([], [override])
    for word in words:
        assert word in str(info.value)


def test_column_shards_is_a_number_or_auto():
    assert load_config([], ["num_workers=4", "column_shards=2"]).column_shards == 2
    assert load_config([], ["num_workers=3", "column_shards=auto"]).column_shards == "auto"


def test_a_nan_setting_stops_the_command_at_once_naming_it(tmp_path):
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "w2vdist.cli", "preprocess", str(SAMPLE), "--out",
                           str(tmp_path / "run"), "sample=nan"], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert done.returncode == 2 and time.monotonic() - started < 20
    assert "setting 'sample' must be a finite number >= 0, got 'nan'" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and not (tmp_path / "run").exists()


def test_npmi_needs_a_threshold_inside_its_range():
    with pytest.raises(ConfigError, match="npmi"):
        load_config([], ["phrase_scoring=npmi"])
    assert load_config([], ["phrase_scoring=npmi", "phrase_threshold=0.5"]).phrase_threshold == 0.5


def test_cli_reports_a_bad_setting_without_a_traceback(tmp_path, capsys):
    code = main(["preprocess", str(tmp_path), "--out", str(tmp_path / "run"), "windw=3"])
    err = capsys.readouterr().err
    assert code == 2
    assert "unknown setting 'windw'" in err and "window" in err
    assert "Traceback" not in err


def test_missing_config_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml"):
        load_config([tmp_path / "nope.yaml"])


def test_profiles_take_addresses_from_the_environment(tmp_path, monkeypatch):
    path = tmp_path / "cluster.yaml"
    path.write_text("spark_master: ${SPARK_MASTER_URL}\nray_address: ${RAY_ADDRESS:-auto}\n"
                    "num_workers: ${WORKERS:-2}\n")
    monkeypatch.setenv("SPARK_MASTER_URL", "spark://10.0.0.5:7077")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    config = load_config([path])
    assert (config.spark_master, config.ray_address, config.num_workers) == ("spark://10.0.0.5:7077", "auto", 2)
    monkeypatch.delenv("SPARK_MASTER_URL")
    with pytest.raises(ConfigError, match="'spark_master' needs the environment variable SPARK_MASTER_URL"):
        load_config([path])
