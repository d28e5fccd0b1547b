"""`w2vdist pipeline` as a scheduler sees it: exit codes, one summary line, stages skipped when up to date."""

import json
import os
import subprocess
import sys

import pytest
from gensim.models import KeyedVectors

from tests.conftest import REPO, ListenerWatch, is_loopback, spark_test_conf

ANALOGIES = """: capitals
paris france rome italy
berlin germany madrid spain
: family
king queen man woman
"""


def pipeline(config, *overrides, watch_listeners=False):
    process = subprocess.Popen([sys.executable, "-m", "w2vdist.cli", "pipeline", str(config), *overrides],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    watch = ListenerWatch(process.pid) if watch_listeners else None
    out, err = process.communicate(timeout=600)
    result = process.returncode, out.strip().splitlines(), err
    return (*result, watch.stop()) if watch else result


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline")
    (root / "analogies.txt").write_text(ANALOGIES)
    config = root / "small.yaml"
    config.write_text(json.dumps({
        "input": [str(REPO / "w2vdist" / "data" / "sample_corpus.txt.gz")], "out": str(root / "run"),
        "spark_master": "local[2]", "spark_conf": spark_test_conf(), "dim": 16, "epochs": 1, "phrase_passes": 1,
        "export_formats": ["word2vec", "word2vec-binary"], "eval_analogies": str(root / "analogies.txt"),
        "num_workers": 1, "use_gpu": False, "tracking": True}))
    *result, listeners = pipeline(config, watch_listeners=True)
    return root, config, tuple(result), listeners


def test_pipeline_runs_every_stage_then_skips_what_is_up_to_date(setup):
    root, config, (code, out, err), _ = setup
    assert code == 0, err
    assert len(out) == 1 and out[0].startswith("w2vdist pipeline OK")
    for stage in ("preprocess done", "train done", "export done", "evaluate done"):
        assert stage in out[0]
    assert "analogy_accuracy" in out[0]
    manifest = json.loads((root / "run" / "manifest.json").read_text())
    assert all(manifest["stages"][s]["completed"] for s in ("preprocess", "train", "export", "evaluate"))
    vectors = KeyedVectors.load_word2vec_format(str(root / "run" / "export" / "vectors.bin"), binary=True)
    assert vectors.vector_size == 16 and "paris" in vectors
    results = json.loads((root / "run" / "eval" / "evaluation.json").read_text())
    assert results["analogy"]["total"] + results["analogy"]["oov"] == 3
    assert_tracked(root / "run", epochs=1)

    code, out, err = pipeline(config)
    assert code == 0, err
    assert out[0].count("skipped") == 4, out[0]

    code, out, err = pipeline(config, "export_formats=[npy]")
    assert code == 0, err
    assert "train skipped" in out[0] and "export done" in out[0] and "evaluate skipped" in out[0]
    assert (root / "run" / "export" / "vectors.npy").exists() and not (root / "run" / "export" / "vectors.bin").exists()


def assert_tracked(run_dir, epochs):
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=(run_dir / "mlruns").resolve().as_uri())
    experiment = client.get_experiment_by_name("w2vdist")
    run = client.search_runs([experiment.experiment_id])[0]
    assert run.data.params["dim"] == "16" and run.data.params["window"] == "5"
    losses = client.get_metric_history(run.info.run_id, "loss")
    assert [m.step for m in losses] == list(range(1, epochs + 1))
    assert run.data.metrics["preprocess_vocab_size"] > 0 and "analogy_accuracy" in run.data.metrics
    artifacts = {a.path for folder in ("export", "eval") for a in client.list_artifacts(run.info.run_id, folder)}
    assert {"export/vectors.bin", "export/vectors.txt", "eval/evaluation.json"} <= artifacts


def test_a_local_run_listens_on_loopback_only(setup):
    *_, (code, _, err), listeners = setup
    assert code == 0, err
    names = {name for _, _, name, _ in listeners}
    assert {"gcs_server", "raylet", "java"} <= names, names  # Ray's and Spark's servers were seen
    beyond = sorted((ip, port, name) for ip, port, name, _ in listeners if not is_loopback(ip))
    assert not beyond, f"listening beyond 127.0.0.0/8: {beyond}"


def test_a_failing_stage_is_reported_and_earlier_stages_stay_complete(setup):
    root, config, (code, _, err), _ = setup
    assert code == 0, err
    code, out, err = pipeline(config, "eval_analogies=" + str(root / "missing.txt"))
    assert code == 2
    assert out[-1].startswith("w2vdist pipeline FAILED at evaluate") and "missing.txt" in out[-1]
    assert "train skipped" in out[-1]
    manifest = json.loads((root / "run" / "manifest.json").read_text())
    assert all(manifest["stages"][s]["completed"] for s in ("preprocess", "train", "export"))
