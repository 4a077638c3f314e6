"""The discovery DAG of trackflow/pipeline.py as a Prefect flow: [clusters | outliers | similar] ->
[map | playlists] -> summary -> register.

Needs the per-track table and the splits; when they are missing it runs ingest -> validate -> featurize ->
split first. Run with `trackflow run-discovery` or `make discovery`.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.task_runners import ThreadPoolTaskRunner

from flows.runtime import PrefectBackend
from trackflow.parts import PARALLEL_PARTS
from trackflow.paths import ProjectPaths
from trackflow.runner import format_dvc_state, load_run_params, run_discovery


def format_summary(result: dict[str, Any]) -> str:
    found = result["discover"]
    c, o, s, p = (found[k] for k in ("clusters", "outliers", "similar", "playlists"))
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
    for name, registered in result["register-discovery"].items():
        lines.append(
            f"  {name:<15} v{registered['version']} {registered['aliases']}: {registered['promotion']}"
        )
    lines.append("  " + format_dvc_state(result["dvc"]))
    return "\n".join(lines)


@flow(name="discovery", log_prints=True, task_runner=ThreadPoolTaskRunner(max_workers=PARALLEL_PARTS))
def discovery(root: str = ".") -> dict[str, Any]:
    paths = ProjectPaths.project(root)  # a root from the Prefect UI must be a trackflow project
    result = run_discovery(
        paths, load_run_params(paths), PrefectBackend(), runner="prefect", logger=get_run_logger()
    )
    print(format_summary(result))
    return result


if __name__ == "__main__":
    discovery()
