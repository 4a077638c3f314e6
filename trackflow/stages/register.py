"""The register stage: the selected model as a new MLflow model version behind the champion gate
(trackflow/tracking.py), judged on the main holdout through the pyfunc, as scoring calls it."""

from __future__ import annotations

from typing import Any

import mlflow.pyfunc
import mlflow.sklearn
import numpy as np
import pandas as pd

from components.io import read_json, write_json
from components.params import Params
from components.schema import PROTOCOLS
from components.scoring import conform_to_signature
from components.task_model import TaskModel
from components.tasks import GENRE_PREDICTED, TASK_SPECS, TaskData, TaskName, TaskSpec
from trackflow.paths import ProjectPaths
from trackflow.stages.common import git_commit, params_hash
from trackflow.stages.labels import newest_label_batch
from trackflow.stages.training import load_tables, reads_genre, task_rows, without_genre
from trackflow.tracking import Gate, Tracker, register_behind_gate


def forward_holdout(
    paths: ProjectPaths, params: Params, task: TaskName, tracks: pd.DataFrame, splits: pd.DataFrame
) -> tuple[str, TaskData] | None:
    """The newest labelled batch's tracks on the holdout side of the main protocol (never trained on): the
    forward holdout, with its batch name; None without labels there."""
    newest = newest_label_batch(paths)
    if newest is None:
        return None
    batch, track_ids = newest
    holdout = task_rows(
        tracks[tracks["track_id"].isin(track_ids)], splits, params, task, params.split.protocol, "test"
    )
    return (batch, holdout) if len(holdout.y) else None


def _forward_score(spec: TaskSpec, rows: TaskData, predict: Any) -> float | None:
    """The gate metric on the forward holdout; None where it is undefined (a ROC-AUC on one class)."""
    try:
        return spec.gate_score(rows, predict(rows.inputs))
    except ValueError:
        return None


def _album_subset_values(metrics: dict[str, Any]) -> list[tuple[str, str, str, str, float]]:
    """(condition prefix, subset, family, metric, value) of evaluate's album subsets, defined ones only."""
    subsets = metrics.get("album_subsets", {})
    values = []
    for condition in ("given", GENRE_PREDICTED):
        prefix = "" if condition == "given" else f"{GENRE_PREDICTED}_"
        for subset, by_family in subsets.get(condition, {}).items():
            for family, by_metric in by_family.items():
                for k, v in (by_metric or {}).items():
                    if isinstance(v, int | float) and np.isfinite(v):
                        values.append((prefix, subset, family, k, float(v)))
    return values


def _album_subset_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    return {
        f"holdout_{prefix}{subset}_{family}_{k}": v
        for prefix, subset, family, k, v in _album_subset_values(metrics)
    }


def register_task(
    paths: ProjectPaths, params: Params, task: TaskName, parent_run_id: str | None = None
) -> dict[str, Any]:
    """Register the selected model as `task`: challenger always; champion only when it beats the champion."""
    spec = TASK_SPECS[task]
    main = params.split.protocol
    metrics = read_json(paths.task_metrics(task))
    selected = metrics["selected"]
    model: TaskModel = mlflow.sklearn.load_model(str(paths.task_models(task) / main / selected))
    tracks, splits = load_tables(paths)
    holdout = task_rows(tracks, splits, params, task, main, "test")
    example = holdout.inputs.head(5)
    # The gate's condition: without the genre (as a batch without one is scored), or with the track's own;
    # champion and challenger are judged on the very same inputs.
    condition = "given"
    forward = forward_holdout(paths, params, task, tracks, splits)
    if params.registry.gate_condition == "predicted" and reads_genre(spec):
        condition = GENRE_PREDICTED
        holdout = without_genre(holdout)
        forward = None if forward is None else (forward[0], without_genre(forward[1]))
    labels = read_json(paths.featurize_meta).get("labels", {})

    tracker = Tracker.for_project(paths, params)
    data_hash = read_json(paths.ingest_meta)["content_hash"]
    tags = {
        "task": task,
        "family": selected,
        "data_hash": data_hash,
        "params_hash": params_hash(params),
        "git_commit": git_commit(paths.root),
        "protocol": main,
        **{f"holdout_{k}": f"{v:.4f}" for k, v in metrics[main][selected].items() if isinstance(v, float)},
        "gate_condition": "genre " + condition.removeprefix("genre_"),
        # Which model answers a row without a genre: no genre model's guess is involved in that condition.
        **({"genre_absent_answered_by": "genre-free fallback"} if reads_genre(spec) else {}),
        # Up to when this model's training rows knew the labels: later labels are new to it.
        "labels_through": str(labels.get("newest_labelled_at") or "none"),
        # The selected model on the artist holdout's album subsets (components/evaluation.py).
        **{
            f"holdout_{prefix}{subset}_{k}": f"{v:.4f}"
            for prefix, subset, family, k, v in _album_subset_values(metrics)
            if family == selected
        },
        # The same holdout without the genre: the quality a batch without a genre gets.
        **{
            f"holdout_{GENRE_PREDICTED}_{k}": f"{v:.4f}"
            for k, v in metrics.get(GENRE_PREDICTED, {}).get(main, {}).get(selected, {}).items()
            if isinstance(v, float)
        },
    }
    with tracker.run(f"train-{task}", parent_run_id, {"stage": "register", **tags}) as run:
        conditions = {"": metrics, f"{GENRE_PREDICTED}_": metrics.get(GENRE_PREDICTED, {})}
        flat = {
            f"holdout_{prefix}{p}_{fam}_{k}": v
            for prefix, by_protocol in conditions.items()
            for p in PROTOCOLS
            for fam, m in by_protocol.get(p, {}).items()
            for k, v in m.items()
            if isinstance(v, int | float) and np.isfinite(v)
        }
        flat.update(_album_subset_metrics(metrics))
        tracker.log(
            run.id,
            params={
                "selected_family": selected,
                "feature_groups": ",".join(params.train.feature_groups),
                "profile": params.train.profile,
                "seed": params.train.seed,
            },
            metrics=flat,
        )
        comparison = pd.DataFrame(
            [{"protocol": p, "family": fam, **m} for p in PROTOCOLS for fam, m in metrics[p].items()]
        )
        tracker.client.log_table(run.id, data=comparison, artifact_file="comparison_table.json")
        for artifact in (paths.task_metrics(task), paths.task_models(task) / "selection.json"):
            tracker.client.log_artifact(run.id, str(artifact), "pipeline")
        if (paths.reports / task).is_dir():
            tracker.client.log_artifacts(run.id, str(paths.reports / task), "reports")

        # Challenger and champion are judged on today's holdout rows through the same pyfunc contract (what
        # scoring calls), so a champion logged by an older version of this code is still comparable.
        forward_scores: dict[str, float | None] = {}
        if forward is not None:
            forward_scores["challenger"] = _forward_score(spec, forward[1], model.predict)
            tags = {**tags, "forward_holdout_batch": forward[0]}
            if forward_scores["challenger"] is not None:
                tags[f"forward_holdout_{spec.gate_metric}"] = f"{forward_scores['challenger']:.4f}"

        def score_champion(champion: Any) -> float:
            def predict(inputs: pd.DataFrame) -> Any:
                return champion.predict(conform_to_signature(inputs, champion))

            if forward is not None:
                forward_scores["champion"] = _forward_score(spec, forward[1], predict)
            return spec.gate_score(holdout, predict(holdout.inputs))

        summary = register_behind_gate(
            tracker,
            run.id,
            name=task,
            description=spec.description,
            model=model,
            input_example=example,
            tags=tags,
            gate=Gate(spec.gate_metric, spec.lower_is_better, params.registry.promotion_margin[task]),
            challenger_score=spec.gate_score(holdout, model.predict(holdout.inputs)),
            score_champion=score_champion,
        )
        if forward is not None:
            # Reported beside the grouped holdout, not gated on: a batch is a few hundred tracks.
            tracker.log(
                run.id,
                metrics={
                    f"forward_holdout_{who}_{spec.gate_metric}": v
                    for who, v in forward_scores.items()
                    if v is not None
                },
            )
    summary = {**summary, "family": selected, "gate_condition": condition}
    if forward is not None:
        summary["forward_holdout"] = {
            "batch": forward[0],
            "rows": len(forward[1].y),
            "metric": spec.gate_metric,
            **forward_scores,
        }
    write_json(summary, paths.task_registration(task))
    return summary
