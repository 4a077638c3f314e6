"""The discovery DAG: [clusters | outliers | similar] -> [map | playlists] -> summary -> register.

Needs the per-track table and the splits; when they are missing it runs ingest -> validate -> featurize ->
split first (the training flow's tasks). Run with `trackflow run-discovery` or `make discovery`.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import ThreadPoolTaskRunner

from components import registry
from flows.training import featurize_task, ingest_task, split_task, validate_task
from trackflow import discovery_stages, stages
from trackflow.paths import ProjectPaths

_TASK = {"cache_policy": NO_CACHE, "retries": 0}


@task(name="discover", **_TASK)
def discover_task(root: str, part: str) -> dict[str, Any]:
    paths = ProjectPaths.at(root)
    return discovery_stages.discover(paths, stages.params_for(paths), part)


@task(name="discovery_summary", **_TASK)
def summary_task(root: str, parent_run_id: str) -> dict[str, Any]:
    paths = ProjectPaths.at(root)
    return discovery_stages.discover_summary(paths, stages.params_for(paths), parent_run_id)


@task(name="register_discovery", **_TASK)
def register_task(root: str, parent_run_id: str) -> dict[str, Any]:
    paths = ProjectPaths.at(root)
    return discovery_stages.register_discovery(paths, stages.params_for(paths), parent_run_id)


def format_summary(result: dict[str, Any]) -> str:
    c, o, s, p = (result[k] for k in ("clusters", "outliers", "similar", "playlists"))
    lines = [
        "discovery flow finished",
        f"  clusters:  k={c['k']} purity {c['purity']:.3f} (random {c['random_purity']:.3f}), silhouette "
        f"{c['silhouette_holdout']:.3f} held-out; niche {c['niche_share']:.1%}",
        f"  outliers:  {o['outlier_share_holdout']:.2%} of held-out tracks flagged; synthetic-anomaly AUC "
        f"{o['synthetic_anomaly_auc']:.3f}",
        f"  similar:   genre agreement@{s['k']} {s['genre_agreement_at_k']:.3f} (random "
        f"{s['random_genre_agreement_at_k']:.3f}), {s['query_ms']:.1f} ms a query",
        f"  playlists: {p['target_share_within_all']:.0%} of tracks meet the targets; |tempo step| "
        f"{p['target_mean_abs_tempo_step']:.1f} BPM vs {p['target_random_order_mean_abs_tempo_step']:.1f} "
        "random",
    ]
    for name, registered in result["register"].items():
        lines.append(
            f"  {name:<15} v{registered['version']} {registered['aliases']}: {registered['promotion']}"
        )
    return "\n".join(lines)


@flow(name="discovery", log_prints=True, task_runner=ThreadPoolTaskRunner(max_workers=2))
def discovery(root: str = ".") -> dict[str, Any]:
    logger = get_run_logger()
    paths = ProjectPaths.at(root)
    params = stages.params_for(paths)
    client, experiment_id = stages.mlflow_client(paths, params)
    parent = registry.start_run(client, experiment_id, "discovery-flow", tags={"runner": "prefect"})
    result: dict[str, Any] = {"mlflow_parent_run_id": parent}
    try:
        if not (paths.features.is_file() and paths.splits.is_file()):
            logger.info("no per-track table or splits yet: running ingest -> validate -> featurize -> split")
            ingest_task(root)
            validate_task(root, parent)
            featurize_task(root)
            split_task(root)
        # Independent fits in parallel; the map needs the clusters, the playlists the similarity index.
        first = {part: discover_task.submit(root, part) for part in ("clusters", "outliers", "similar")}
        result["clusters"] = first["clusters"].result()
        second = {
            "map": discover_task.submit(root, "map"),
            "playlists": discover_task.submit(root, "playlists", wait_for=[first["similar"]]),
        }
        for part in ("outliers", "similar"):
            result[part] = first[part].result()
        for part, future in second.items():
            result[part] = future.result()
        result["summary"] = summary_task(root, parent)
        result["register"] = register_task(root, parent)
    except BaseException:
        client.set_terminated(parent, "FAILED")
        raise
    client.set_terminated(parent, "FINISHED")
    print(format_summary(result))
    return result


if __name__ == "__main__":
    discovery()
