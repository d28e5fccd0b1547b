"""jobs/airflow_dag.py without Airflow installed: stand-in modules record the DAG, whose tasks must be the pipeline's
stages in order, each a `w2vdist pipeline` command this CLI accepts, into a run directory named by the date."""

import runpy
import shlex
import sys
import types

import pytest

from tests.conftest import REPO
from w2vdist.cli import is_setting, parse_args
from w2vdist.pipeline import STAGES

DAG_FILE = REPO / "jobs" / "airflow_dag.py"


class FakeDAG:
    def __init__(self, **kwargs):
        self.kwargs = kwargs
        self.tasks = []

    def __enter__(self):
        FakeDAG.current = self
        return self

    def __exit__(self, *exc):
        FakeDAG.current = None


class FakeBashOperator:
    def __init__(self, task_id, bash_command, **kwargs):
        self.task_id, self.bash_command, self.kwargs = task_id, bash_command, kwargs
        self.downstream = []
        FakeDAG.current.tasks.append(self)

    def __rshift__(self, other):
        self.downstream.append(other)
        return other


def _modules(airflow3: bool) -> dict[str, types.ModuleType]:
    """Airflow 3's module layout (airflow.sdk, the standard provider), or Airflow 2's."""
    names = (["airflow", "airflow.sdk", "airflow.providers", "airflow.providers.standard",
              "airflow.providers.standard.operators", "airflow.providers.standard.operators.bash"] if airflow3
             else ["airflow", "airflow.operators", "airflow.operators.bash"])
    modules = {name: types.ModuleType(name) for name in names}
    if airflow3:
        modules["airflow.sdk"].DAG = FakeDAG
        modules["airflow.providers.standard.operators.bash"].BashOperator = FakeBashOperator
    else:
        modules["airflow"].DAG = FakeDAG  # Airflow 3 has no DAG here: the file must not rely on it
        modules["airflow.operators.bash"].BashOperator = FakeBashOperator
    return modules


@pytest.mark.parametrize("airflow3", [True, False])
def test_the_dag_runs_one_task_per_stage_into_a_dated_run_directory(monkeypatch, airflow3):
    for name in list(sys.modules):
        if name == "airflow" or name.startswith("airflow."):
            monkeypatch.delitem(sys.modules, name)
    for name, module in _modules(airflow3).items():
        monkeypatch.setitem(sys.modules, name, module)
    captured = {}
    monkeypatch.setattr(FakeDAG, "__exit__", lambda self, *exc: captured.setdefault("dag", self))
    runpy.run_path(str(DAG_FILE))
    dag = captured["dag"]
    assert dag.kwargs["dag_id"] == "w2vdist_nightly" and dag.kwargs["schedule"]
    assert [task.task_id for task in dag.tasks] == list(STAGES)
    for before, after in zip(dag.tasks, dag.tasks[1:]):
        assert before.downstream == [after]
    assert dag.tasks[-1].downstream == []
    for stage, task in zip(STAGES, dag.tasks):
        assert "/{{ ds }}" in task.bash_command  # Airflow's logical date, rendered before the shell runs it
        words = shlex.split(task.bash_command.replace("{{ ds }}", "2026-01-02").split("&&")[-1])
        assert words[:2] == ["w2vdist", "pipeline"]
        args = parse_args(words[1:])
        assert args.stages == [stage] and (REPO / args.config_file).is_file()
        outs = [word for word in args.overrides if word.startswith("out=")]
        assert len(outs) == 1 and outs[0].endswith("/2026-01-02") and all(map(is_setting, args.overrides))
