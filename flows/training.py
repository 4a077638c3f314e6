"""The training DAG: ingest -> validate -> featurize -> split -> train -> evaluate -> register.

Run with `python -m flows.training` (Prefect's ephemeral mode, no server needed) or `make run`.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from components import registry
from trackflow import stages
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


@task(name="train", **_TASK)
def train_task(root: str) -> dict[str, Any]:
    paths = ProjectPaths.at(root)
    return stages.train(paths, stages.params_for(paths))


@task(name="evaluate", **_TASK)
def evaluate_task(root: str) -> dict[str, Any]:
    paths = ProjectPaths.at(root)
    return stages.evaluate(paths, stages.params_for(paths))


@task(name="register", **_TASK)
def register_task(root: str, parent_run_id: str) -> dict[str, Any]:
    paths = ProjectPaths.at(root)
    return stages.register(paths, stages.params_for(paths), parent_run_id)


def format_summary(result: dict[str, Any]) -> str:
    main = result["evaluate"]["main_protocol"]
    ingested, validated = result["ingest"], result["validate"]
    lines = [
        "training flow finished",
        f"  rows in:          {ingested['rows']:,} listing rows (data hash {ingested['content_hash'][:12]})",
        f"  rows validated:   {validated['rows_valid']:,} (quarantined {validated['rows_quarantined']:,})",
        f"  tracks used:      {result['featurize']['tracks_out']:,} one row per track_id",
    ]
    for protocol in ("artist", "track"):
        m = result["evaluate"][protocol]
        label = "main" if protocol == main else "comparison"
        lines.append(
            f"  holdout by {protocol:<6} ({label}): RMSE {m['rmse']:.3f}  MAE {m['mae']:.3f}  "
            f"R2 {m['r2']:.3f}  (n={m['n']:,})"
        )
    reg = result["register"]
    lines.append(f"  registered:       {reg['model_name']} v{reg['version']} aliases {reg['aliases']}")
    lines.append(f"  promotion:        {reg['promotion']}")
    return "\n".join(lines)


@flow(name="training", log_prints=True)
def training(root: str = ".", fetch: bool = False) -> dict[str, Any]:
    logger = get_run_logger()
    paths = ProjectPaths.at(root)
    params = stages.params_for(paths)
    client, experiment_id = stages.mlflow_client(paths, params)
    parent = registry.start_run(client, experiment_id, "training-flow", tags={"runner": "prefect"})
    result: dict[str, Any] = {"mlflow_parent_run_id": parent}
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
        result["train"] = train_task(root)
        result["evaluate"] = evaluate_task(root)
        result["register"] = register_task(root, parent)
    except BaseException:
        client.set_terminated(parent, "FAILED")
        raise
    client.set_terminated(parent, "FINISHED")
    print(format_summary(result))
    return result


if __name__ == "__main__":
    training()
