"""The training DAG of trackflow/pipeline.py as a Prefect flow: ingest -> validate -> featurize -> split ->
per task: tune (families as parallel tasks) -> train -> evaluate -> register.

Run with `trackflow run` (ephemeral Prefect, no server needed), `make run` or `python -m flows.training`.
The order, the failure rules and dvc.lock are trackflow.runner's, shared with the direct runner.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.task_runners import ThreadPoolTaskRunner

from flows.artifacts import TRAINING_KEY, publish, training_markdown
from flows.runtime import PrefectBackend
from trackflow.parts import PARALLEL_PARTS
from trackflow.paths import ProjectPaths
from trackflow.runner import format_training_summary, load_run_params, run_training


@flow(name="training", log_prints=True, task_runner=ThreadPoolTaskRunner(max_workers=PARALLEL_PARTS))
def training(
    root: str = ".", fetch: bool = False, profile: str | None = None, reason: str | None = None
) -> dict[str, Any]:
    """The training DAG; the families of one task are tuned as parallel tasks. `reason` says why it runs
    (drift monitoring passes the drifted columns and their scores); it is recorded on the MLflow run."""
    paths = ProjectPaths.project(root)  # a root from the Prefect UI must be a trackflow project
    run_params = load_run_params(paths, profile)  # once: every task gets this frozen object
    result = run_training(
        paths,
        run_params,
        PrefectBackend(),
        runner="prefect",
        fetch=fetch,
        reason=reason,
        logger=get_run_logger(),
    )
    print(format_training_summary(result))
    publish(TRAINING_KEY, training_markdown(result), "holdout metrics, registered versions and promotions")
    return result


if __name__ == "__main__":
    training()
