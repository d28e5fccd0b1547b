"""An Airflow DAG that runs the w2vdist pipeline nightly, one task per stage (Airflow is not a w2vdist dependency).

Each task runs `w2vdist pipeline conf/cluster.yaml --stage NAME` into a run directory named by the run's logical
date (W2VDIST_RUNS/YYYY-MM-DD), so every night keeps its own vectors and a retry of one task redoes that stage
only: the stages before it are complete in the run directory, and a stage skips itself when its output is already
there for the same inputs and settings. Every task first checks the settings of all stages, so a bad setting fails
the first task within seconds. The exit code fails a task; its last stdout line is the summary Airflow shows.

Copy this file into the DAG folder of an Airflow installation (2.7+ or 3) with w2vdist installed, a checkout (or
conf/ from the package) at W2VDIST_HOME, and the environment of conf/cluster.yaml set: W2VDIST_INPUT,
SPARK_MASTER_URL, RAY_ADDRESS, W2VDIST_WORKERS; W2VDIST_RUNS is the shared folder that holds the run directories.
"""

from datetime import datetime, timedelta

try:  # Airflow 3: the task SDK and the standard provider
    from airflow.providers.standard.operators.bash import BashOperator
    from airflow.sdk import DAG
except ImportError:  # Airflow 2
    from airflow import DAG
    from airflow.operators.bash import BashOperator

STAGES = ["preprocess", "train", "export", "evaluate", "plot"]
HOURS = {"preprocess": 6, "train": 12, "export": 1, "evaluate": 1, "plot": 1}


def command(stage: str) -> str:
    # Airflow fills in the logical date ({{ ds }}); the shell takes the rest from the environment.
    return ("cd ${W2VDIST_HOME:-/opt/w2vdist} && w2vdist pipeline conf/cluster.yaml --stage " + stage
            + " out=${W2VDIST_RUNS:-/shared/runs}/{{ ds }}")


with DAG(
    dag_id="w2vdist_nightly",
    schedule="30 2 * * *",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=10)},
    tags=["w2vdist", "embeddings"],
) as dag:
    tasks = [BashOperator(task_id=stage, bash_command=command(stage),
                          execution_timeout=timedelta(hours=HOURS[stage])) for stage in STAGES]
    for before, after in zip(tasks, tasks[1:]):
        before >> after
