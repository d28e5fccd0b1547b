"""An Airflow DAG that runs the w2vdist pipeline nightly (Airflow is not a w2vdist dependency).

The pipeline skips every stage whose output is complete for the same inputs and settings, so Airflow's retries
resume at the stage that failed. Its exit code fails the task; its last stdout line is the summary Airflow shows.
Copy this file into the DAG folder of an Airflow installation with w2vdist installed and the environment of
conf/cluster.yaml set (W2VDIST_INPUT, W2VDIST_OUT, SPARK_MASTER_URL, RAY_ADDRESS).
"""

from datetime import datetime, timedelta

from airflow import DAG
from airflow.operators.bash import BashOperator

with DAG(
    dag_id="w2vdist_nightly",
    schedule="30 2 * * *",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=10)},
    tags=["w2vdist", "embeddings"],
) as dag:
    BashOperator(
        task_id="pipeline",
        bash_command="cd /opt/w2vdist && w2vdist pipeline conf/cluster.yaml",
        execution_timeout=timedelta(hours=12),
    )
