"""No Docker engine runs here: check that everything the image and compose files name exists in the project."""

import re
import shlex
import tomllib

import yaml

from tests.conftest import REPO
from w2vdist.cli import build_parser
from w2vdist.config import load_config

DOCKERFILE = REPO / "docker" / "Dockerfile"
COMPOSE = REPO / "docker" / "compose.yaml"


def test_dockerfile_copies_only_what_exists_and_installs_real_extras():
    text = DOCKERFILE.read_text()
    copies = re.findall(r"^COPY\s+(.+)$", text, flags=re.M)
    assert copies
    for line in copies:
        *sources, _target = shlex.split(line)
        for source in sources:
            assert (REPO / source).exists(), f"Dockerfile copies {source}, which is not in the project"
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for group in re.findall(r'"\.\[([a-z,]+)\]"', text):
        for extra in group.split(","):
            assert extra in extras, f"Dockerfile installs extra [{extra}], which pyproject.toml does not define"
    assert re.search(r"ARG TORCH_VARIANT=cpu", text) and "cuda" in text


def test_compose_services_point_at_project_files_and_real_commands():
    compose = yaml.safe_load(COMPOSE.read_text())
    anchor = compose["x-w2vdist"]["build"]
    assert (COMPOSE.parent / anchor["context"] / anchor["dockerfile"]).resolve() == DOCKERFILE.resolve()
    services = compose["services"]
    assert {"spark-master", "spark-worker", "ray-head", "ray-worker", "job"} <= set(services)
    subcommands = build_parser()._subparsers._group_actions[0].choices
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    for name, service in services.items():
        command = service["command"]
        if command[0] == "w2vdist":
            assert "w2vdist" in scripts and command[1] in subcommands, name
            for word in command[2:]:
                if word.endswith((".yaml", ".py")):
                    assert (REPO / word).exists(), f"service {name} names {word}, which is not in the project"
        for dependency in service.get("depends_on", []):
            assert dependency in services


def test_the_job_service_environment_makes_a_valid_cluster_profile(monkeypatch):
    job = yaml.safe_load(COMPOSE.read_text())["services"]["job"]
    for key, value in job["environment"].items():
        default = re.fullmatch(r"\$\{[A-Za-z0-9_]+:-(.*)\}", str(value))
        monkeypatch.setenv(key, default.group(1) if default else str(value))
    config = load_config([REPO / job["command"][2]])
    assert config.spark_master == "spark://spark-master:7077"
    assert config.ray_address == "ray-head:6379" and config.num_workers == 2
    assert config.spark_conf["spark.driver.host"] == "job"


def test_scheduler_examples_name_real_commands_and_profiles():
    import ast

    for path in (REPO / "jobs" / "airflow_dag.py", REPO / "jobs" / "crontab.example"):
        text = path.read_text()
        if path.suffix == ".py":
            ast.parse(text)
        for profile in re.findall(r"w2vdist pipeline (conf/\S+\.yaml)", text):
            assert (REPO / profile).exists(), f"{path.name} names {profile}"
        assert "w2vdist pipeline" in text
