"""The performance monitor: the champions' realised error on the newest labelled batch (what they predicted
when it was scored, against the labels that came back), with Evidently's regression and classification
reports under reports/performance/ and in MLflow, beside the error their holdout promised."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from components.io import write_json, write_text
from components.labels import LABEL_BATCH, LABELLED_AT
from components.params import Params
from components.performance import degraded, realised_performance
from components.schema import GENRE, TARGET
from components.tasks import GENRE_PREDICTED, TASKS
from trackflow.paths import ProjectPaths
from trackflow.stages.common import git_commit, log, params_hash
from trackflow.stages.labels import label_files, label_stamps, read_table
from trackflow.tracking import Tracker

# The version tag that says up to when a model's training rows knew the labels (register sets it).
LABELS_THROUGH_TAG = "labels_through"
# The holdout metric a task's realised error is held against, by the condition its rows were scored in.
EXPECTED_METRIC = {"popularity": "rmse", "hit": "roc_auc"}


def _labelled_at(path: Path) -> pd.Timestamp:
    """When a label file was labelled: its newest `labelled_at`."""
    return pd.Timestamp(label_stamps(path)[LABELLED_AT].max())


def models_know_labels_through(tracker: Tracker, tasks: Sequence[str]) -> pd.Timestamp | None:
    """The newest label that the latest registered version of each of `tasks` (those the project trains)
    learned from; None when one learned from none. The latest version, champion or not: a retrain whose
    challenger lost has still seen the labels, and a second one on the same rows would only reproduce it."""
    known = []
    for task in tasks:
        version = tracker.latest(task)
        if version is None:
            continue
        through = (version.tags or {}).get(LABELS_THROUGH_TAG)
        if not through or through == "none":
            return None
        known.append(pd.Timestamp(through))
    return min(known) if known else None


def new_label_files(paths: ProjectPaths, params: Params, tracker: Tracker) -> list[tuple[Path, pd.Timestamp]]:
    """The label files labelled after the latest models' training rows were put together, oldest first."""
    through = models_know_labels_through(tracker, params.train.tasks)
    stamped = [(path, _labelled_at(path)) for path in label_files(paths)]
    fresh = [(path, at) for path, at in stamped if through is None or at > through]
    return sorted(fresh, key=lambda item: item[1])


def _expected(tracker: Tracker, versions: dict[str, str], condition: str) -> dict[str, float]:
    """The holdout metric of the versions that scored the batch, in the batch's genre condition."""
    prefix = "holdout_" if condition == "given" else f"holdout_{GENRE_PREDICTED}_"
    expected = {}
    for task, metric in EXPECTED_METRIC.items():
        if task not in versions:
            continue
        tags = tracker.client.get_model_version(task, versions[task]).tags or {}
        if f"{prefix}{metric}" in tags:
            expected[task] = float(tags[f"{prefix}{metric}"])
    return expected


def performance_check(
    paths: ProjectPaths, params: Params, label_file: Path, parent_run_id: str | None = None
) -> dict[str, Any]:
    """Realised error of the models that scored `label_file`'s batch, against their holdout error."""
    labelled = read_table(label_file)
    batch = str(label_stamps(label_file)[LABEL_BATCH].iloc[0])
    predictions_path = paths.predictions(batch)
    if not predictions_path.exists():
        log.info("labels %s: batch %s was never scored here, no realised error", label_file.name, batch)
        return {"batch": batch, "label_file": str(label_file), "rows": 0, "degraded": []}
    predictions = pd.read_parquet(predictions_path)
    outcomes = labelled[["track_id", *(c for c in (TARGET, GENRE) if c in labelled)]].drop_duplicates(
        "track_id"
    )
    joined = outcomes.merge(predictions.drop_duplicates("track_id"), on="track_id", how="inner")
    result = realised_performance(joined, params.train.hit_threshold)
    versions = {
        task: Counter(joined[f"{task}_model_version"].astype(str)).most_common(1)[0][0]
        for task in TASKS
        if f"{task}_model_version" in joined and len(joined)
    }
    given = int((joined.get("genre_input", pd.Series(dtype=str)) == "given").sum())
    condition = "given" if given * 2 > len(joined) else "predicted"
    tracker = Tracker.for_project(paths, params)
    expected = _expected(tracker, versions, condition)
    reasons = degraded(result.metrics, expected, params.drift.realised_error_margin)
    report = paths.reports / "performance" / f"{label_file.stem}.html"
    summary = {
        "batch": batch,
        "label_file": str(label_file),
        "rows": result.rows,
        "genre_condition": condition,
        "model_versions": versions,
        "realised": result.metrics,
        "holdout": expected,
        "margin": params.drift.realised_error_margin,
        "degraded": reasons,
        "report_path": str(report) if result.html else None,
    }
    if result.html:
        write_text(result.html, report)
    write_json(summary, report.with_suffix(".json"))
    tags = {"stage": "performance", "batch": batch, "params_hash": params_hash(params)}
    with tracker.run(
        f"performance-{batch}", parent_run_id, {**tags, "git_commit": git_commit(paths.root)}
    ) as run:
        metrics = {
            f"realised_{task}_{name}": value
            for task, values in result.metrics.items()
            for name, value in values.items()
        }
        metrics |= {f"holdout_{task}_{EXPECTED_METRIC[task]}": value for task, value in expected.items()}
        tracker.log(run.id, params={"label_file": label_file.name, "rows": result.rows}, metrics=metrics)
        tracker.client.set_tag(run.id, "degraded", "; ".join(reasons) or "no")
        for artifact in (report, report.with_suffix(".json")):
            if artifact.exists():
                tracker.client.log_artifact(run.id, str(artifact), "performance")
    summary["mlflow_run_id"] = run.id
    log.info(
        "%s: realised %s on %d labelled tracks; holdout %s; degraded: %s",
        batch,
        {
            t: {k: round(v, 4) for k, v in m.items() if k in ("rmse", "roc_auc", "top1_set_accuracy")}
            for t, m in result.metrics.items()
        },
        result.rows,
        expected,
        "; ".join(reasons) or "no",
    )
    return summary
