"""The training DAG: ingest -> validate -> featurize -> split -> per task: tune (families in parallel) -> fit
-> evaluate -> register.

Run with `python -m flows.training` (Prefect's ephemeral mode, no server needed) or `make run`.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import ThreadPoolTaskRunner

from components import registry
from components.params import Params
from trackflow import model_stages, stages
from trackflow.paths import ProjectPaths

# Stages exchange files, and DVC decides what is up to date; Prefect runs every task it is asked to run,
# so no task caching (DataFrame-keyed caching is also a known source of misses in Prefect 3).
_TASK = {"cache_policy": NO_CACHE, "retries": 0}


@task(name="fetch_data", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5)
def fetch_data_task(root: str) -> dict[str, Any]:
    paths = ProjectPaths.at(root)
    return stages.fetch_data(paths, stages.params_for(paths))


@task(name="ingest", **_TASK)
def ingest_task(root: str) -> dict[str, Any]:
    paths = ProjectPaths.at(root)
    return stages.ingest(paths, stages.params_for(paths))


@task(name="validate", **_TASK)
def validate_task(root: str, parent_run_id: str) -> dict[str, Any]:
    paths = ProjectPaths.at(root)
    return stages.validate(paths, stages.params_for(paths), parent_run_id)


@task(name="featurize", **_TASK)
def featurize_task(root: str) -> dict[str, Any]:
    paths = ProjectPaths.at(root)
    return stages.featurize(paths, stages.params_for(paths))


@task(name="split", **_TASK)
def split_task(root: str) -> dict[str, Any]:
    paths = ProjectPaths.at(root)
    return stages.split(paths, stages.params_for(paths))


@task(name="tune", **_TASK)
def tune_task(
    root: str, task_name: str, family: str, parent_run_id: str, profile: str | None
) -> dict[str, Any]:
    paths = ProjectPaths.at(root)
    return model_stages.tune_family(paths, _params(paths, profile), task_name, family, parent_run_id)


@task(name="fit", **_TASK)
def fit_task(root: str, task_name: str, families: list[str], profile: str | None) -> dict[str, Any]:
    paths = ProjectPaths.at(root)
    params = _params(paths, profile)
    # Only the families whose tuning succeeded go on.
    params = params.model_copy(
        update={"train": params.train.model_copy(update={"families": tuple(families)})}
    )
    return model_stages.fit_task(paths, params, task_name)


@task(name="evaluate", **_TASK)
def evaluate_task(root: str, task_name: str, profile: str | None) -> dict[str, Any]:
    paths = ProjectPaths.at(root)
    return model_stages.evaluate_task(paths, _params(paths, profile), task_name)


@task(name="register", **_TASK)
def register_task(root: str, task_name: str, parent_run_id: str, profile: str | None) -> dict[str, Any]:
    paths = ProjectPaths.at(root)
    return model_stages.register_task(paths, _params(paths, profile), task_name, parent_run_id)


def _params(paths: ProjectPaths, profile: str | None) -> Params:
    params = stages.params_for(paths)
    if profile is None:
        return params
    return params.model_copy(update={"train": params.train.model_copy(update={"profile": profile})})


def format_summary(result: dict[str, Any]) -> str:
    ingested, validated = result["ingest"], result["validate"]
    lines = [
        "training flow finished",
        f"  rows in:        {ingested['rows']:,} listing rows (data hash {ingested['content_hash'][:12]})",
        f"  rows validated: {validated['rows_valid']:,} (quarantined {validated['rows_quarantined']:,})",
        f"  tracks used:    {result['featurize']['tracks_out']:,} one row per track_id",
    ]
    for task_name, outcome in result["tasks"].items():
        metrics, registered = outcome["evaluate"], outcome["register"]
        gate = registered["gate_metric"]
        main = metrics["main_protocol"]
        other = next(p for p in ("artist", "track") if p != main)
        selected = metrics["selected"]
        main_score, other_score = metrics[main][selected][gate], metrics[other][selected][gate]
        failed = ", ".join(outcome["failed"]) or "none"
        lines.append(
            f"  {task_name:<10} {selected:<13} {gate} {main_score:.4f} ({main} holdout)"
            f" / {other_score:.4f} ({other}); failed families: {failed}"
        )
        version, aliases = registered["version"], registered["aliases"]
        lines.append(f"  {'':<10} registered v{version} {aliases}: {registered['promotion']}")
    return "\n".join(lines)


@flow(name="training", log_prints=True, task_runner=ThreadPoolTaskRunner(max_workers=2))
def training(
    root: str = ".", fetch: bool = False, profile: str | None = None, reason: str | None = None
) -> dict[str, Any]:
    """The training DAG; the families of one task are tuned as parallel tasks. `reason` says why it runs
    (drift monitoring passes the drifted columns and their scores); it is recorded on the MLflow run."""
    logger = get_run_logger()
    paths = ProjectPaths.at(root)
    params = _params(paths, profile)
    client, experiment_id = stages.mlflow_client(paths, params)
    tags = {"runner": "prefect", "profile": params.train.profile, "trigger": "drift" if reason else "request"}
    if reason:
        tags["retrain_reason"] = reason[:5000]  # MLflow tag values are bounded
        logger.warning("retraining: %s", reason)
    parent = registry.start_run(client, experiment_id, "training-flow", tags=tags)
    result: dict[str, Any] = {"mlflow_parent_run_id": parent, "tasks": {}}
    try:
        if fetch:
            result["fetch"] = fetch_data_task(root)
        result["ingest"] = ingest_task(root)
        logger.info("ingested %s rows", result["ingest"]["rows"])
        result["validate"] = validate_task(root, parent)
        logger.info(
            "validation: %s valid, %s quarantined",
            result["validate"]["rows_valid"],
            result["validate"]["rows_quarantined"],
        )
        result["featurize"] = featurize_task(root)
        result["split"] = split_task(root)
        for task_name in params.train.tasks:
            futures = {
                family: tune_task.submit(root, task_name, family, parent, profile)
                for family in params.train.families
            }
            tuned, failed = [], {}
            for family, future in futures.items():
                state = future.wait() or future.state
                if state.is_completed():
                    tuned.append(family)
                else:
                    failed[family] = str(state.message)
                    logger.error(
                        "%s/%s failed, the other families go on: %s", task_name, family, state.message
                    )
            if not tuned:
                raise model_stages.TrainingError(f"every family failed for task {task_name}: {failed}")
            fit_task(root, task_name, tuned, profile)
            evaluated = evaluate_task(root, task_name, profile)
            registered = register_task(root, task_name, parent, profile)
            result["tasks"][task_name] = {"evaluate": evaluated, "register": registered, "failed": failed}
            logger.info("%s: registered v%s %s", task_name, registered["version"], registered["aliases"])
    except BaseException:
        client.set_terminated(parent, "FAILED")
        raise
    client.set_terminated(parent, "FINISHED")
    print(format_summary(result))
    return result


if __name__ == "__main__":
    training()
