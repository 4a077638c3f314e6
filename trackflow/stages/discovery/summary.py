"""The discovery summary: metrics/discovery.json (no wall times), summary.md and one MLflow run."""

from __future__ import annotations

from typing import Any

import numpy as np

from components.discovery import PARTS
from components.discovery.report import summary_markdown
from components.io import read_json, write_json, write_text
from components.params import Params
from trackflow.paths import ProjectPaths
from trackflow.stages.common import git_commit, params_hash
from trackflow.stages.discovery.common import TIMING_KEYS
from trackflow.tracking import Tracker


def flatten_metrics(prefix: str, value: Any, out: dict[str, float]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            flatten_metrics(f"{prefix}_{k}" if prefix else str(k), v, out)
    elif isinstance(value, int | float) and not isinstance(value, bool) and np.isfinite(value):
        out[prefix] = float(value)


def discover_summary(paths: ProjectPaths, params: Params, parent_run_id: str | None = None) -> dict[str, Any]:
    parts = {}
    for part in PARTS:
        source = paths.discovery_part(part) / "metrics.json"
        if not source.is_file():
            raise FileNotFoundError(f"{source}: missing; run `trackflow discover --part {part}` first")
        parts[part] = read_json(source)
    scan = read_json(paths.discovery_part("clusters") / "k_scan.json")
    # Wall times are facts about the machine, not the models: they stay out of the metrics file, which two
    # runs on the same data, params and code write identically (they are in each part's own metrics.json).
    quality = {
        part: {k: v for k, v in values.items() if k not in TIMING_KEYS} for part, values in parts.items()
    }
    write_json({**quality, "k_scan": scan}, paths.discovery_metrics)
    summary_md = summary_markdown(parts, scan)
    write_text(summary_md, paths.discovery_reports / "summary.md")
    tracker = Tracker.for_project(paths, params)
    tags = {"stage": "discovery", "params_hash": params_hash(params), "git_commit": git_commit(paths.root)}
    with tracker.run("discovery", parent_run_id, tags) as run:
        flat: dict[str, float] = {}
        for part, values in parts.items():
            flatten_metrics(part, {k: v for k, v in values.items() if k not in ("by_target",)}, flat)
        for i, target in enumerate(parts["playlists"].get("by_target", [])):
            flatten_metrics(f"playlists_target{i}", {k: v for k, v in target.items() if k != "targets"}, flat)
        tracker.log(
            run.id,
            params={
                "features": ",".join(params.discovery.features),
                "k": params.discovery.clusters.k,
                "k_range": ",".join(map(str, params.discovery.clusters.k_range)),
                "contamination": params.discovery.outliers.contamination,
                "genre_weight": params.discovery.similar.genre_weight,
                "seed": params.discovery.seed,
            },
            metrics=flat,
        )
        for row in scan:  # one series per measure, stepped by k: the MLflow UI plots the choice of k
            for name in ("silhouette_sample", "davies_bouldin", "inertia"):
                tracker.client.log_metric(run.id, f"kscan_{name}", float(row[name]), step=int(row["k"]))
        tracker.client.log_artifact(run.id, str(paths.discovery_metrics), "pipeline")
        if paths.discovery_reports.is_dir():
            tracker.client.log_artifacts(run.id, str(paths.discovery_reports), "reports")
    run_id = run.id
    return {"mlflow_run_id": run_id, "metrics_path": str(paths.discovery_metrics.relative_to(paths.root))}
