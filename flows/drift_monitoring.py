"""Drift monitoring: the latest scored batch (or the one named) and its predictions against the champions'
training data (Evidently), report under reports/drift/ and in MLflow; when the drifted share of input
columns reaches `drift.retrain_share` and labels came back since the models were trained (or the labels
show the champions worse than their holdout promised), retraining runs: the training deployment when a
Prefect server has one, else the training flow in this process. The reason is recorded on the new training
run; drift without new labels is recorded as "drift, no new labels" and retrains nothing.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from components.params import Params
from flows.artifacts import DRIFT_KEY, drift_markdown, publish
from flows.schedules import deployment_exists, retrain_deployment
from flows.training import training
from trackflow.lock import project_lock
from trackflow.paths import ProjectPaths, checked_name
from trackflow.stages import drift as drift_stage
from trackflow.stages.common import params_for


@task(name="drift_check", cache_policy=NO_CACHE)
def drift_check_task(root: str, params: Params, batch: str | None) -> dict[str, Any]:
    return drift_stage.drift_check(ProjectPaths.at(root), params, batch)


def trigger_retraining(root: str, reason: str) -> dict[str, Any]:
    """Run the training deployment on its workers when a server has it; else train in this process."""
    logger = get_run_logger()
    name = retrain_deployment(root)
    if deployment_exists(name):
        from prefect.deployments import run_deployment

        run = run_deployment(name, parameters={"reason": reason}, timeout=0)
        logger.warning("retraining: started deployment %s, flow run %s", name, run.id)
        return {"mode": "deployment", "deployment": name, "flow_run_id": str(run.id)}
    logger.warning("retraining in this process (no %s deployment on a Prefect server)", name)
    result = training(root=root, reason=reason)
    return {
        "mode": "in-process",
        "mlflow_parent_run_id": result["mlflow_parent_run_id"],
        "dvc": result["dvc"],
    }


@flow(name="drift_monitoring", log_prints=True)
def drift_monitoring(
    root: str = ".", batch: str | None = None, retrain: bool | None = None
) -> dict[str, Any]:
    """`retrain` overrides params.yaml drift.retrain (None: use params)."""
    logger = get_run_logger()
    paths = ProjectPaths.project(root)  # a root from the Prefect UI must be a trackflow project
    if batch is not None:
        checked_name("batch", batch)  # before any file is touched
    params = params_for(paths)  # once: every task gets this frozen object
    # Held through an in-process retrain too (the lock is reentrant): nothing else writes in between.
    with project_lock(paths, "drift_monitoring flow", params.runs.lock_wait_s, logger):
        return _check_and_decide(root, params, batch, retrain, logger)


def _check_and_decide(
    root: str, params: Params, batch: str | None, retrain: bool | None, logger: Any
) -> dict[str, Any]:
    summary = drift_check_task(root, params, batch)
    drifted = ", ".join(summary["drifted_columns"]) or "none"
    print(
        f"{summary['batch']}: {len(summary['drifted_columns'])} of {len(summary['columns'])} input columns "
        f"drifted ({drifted}), prediction drift: {', '.join(summary['drifted_predictions']) or 'none'}; "
        f"report {summary['report_path']}"
    )
    allowed = params.drift.retrain if retrain is None else retrain
    if summary["retrain"] and allowed:
        logger.warning("%s", summary["retrain_reason"])
        summary["retraining"] = trigger_retraining(root, summary["retrain_reason"])
    elif summary["retrain"]:
        logger.warning("retraining is due but disabled: %s", summary["retrain_reason"])
    else:
        # "drift, no new labels": drift alone would refit the rows the champions already learned.
        logger.info("%s", summary["decision"])
    publish(DRIFT_KEY, drift_markdown(summary), f"drift of {summary['batch']} and the retraining decision")
    return summary


if __name__ == "__main__":
    drift_monitoring()
