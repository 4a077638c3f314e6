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
from components.tasks import GENRE_PREDICTED, GENRE_TASK, TASK_SPECS, TaskName
from trackflow.paths import ProjectPaths
from trackflow.stages.common import git_commit, params_hash
from trackflow.stages.training import (
    load_tables,
    predicted_genre,
    takes_predicted_genre,
    task_rows,
    with_genre,
)
from trackflow.tracking import Gate, Tracker, register_behind_gate


def _genre_gated_with(paths: ProjectPaths, condition: str) -> dict[str, str]:
    """Which genre model filled the gate's genre input: this run's selected family, and the genre version
    it was registered as when this run registered it (the flow registers genre first)."""
    if condition != GENRE_PREDICTED:
        return {}
    selection = read_json(paths.task_models(GENRE_TASK) / "selection.json")
    tags = {"gated_with_genre_family": str(selection["selected"])}
    registration = paths.task_registration(GENRE_TASK)
    # Only a registration of this very model counts: one written after the genre model was fitted.
    if (
        registration.is_file()
        and registration.stat().st_mtime >= paths.task_models(GENRE_TASK).stat().st_mtime
    ):
        tags["gated_with_genre_version"] = str(read_json(registration)["version"])
    return tags


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
    # The gate's condition: with the genre this run's genre model predicts (as a batch without a genre is
    # scored), or the track's own; champion and challenger are judged on the very same inputs.
    condition = "given"
    if params.registry.gate_condition == "predicted" and takes_predicted_genre(spec, params):
        condition = GENRE_PREDICTED
        genre_classes = TASK_SPECS[GENRE_TASK].classes(tracks)
        holdout = with_genre(holdout, predicted_genre(paths, holdout, main, genre_classes))

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
        **_genre_gated_with(paths, condition),
        # The same holdout with the genre this run's genre model predicts: the quality a batch without a
        # genre gets.
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
        def score_champion(champion: Any) -> float:
            return spec.gate_score(holdout, champion.predict(conform_to_signature(holdout.inputs, champion)))

        summary = register_behind_gate(
            tracker,
            run.id,
            name=task,
            description=spec.description,
            model=model,
            input_example=holdout.inputs.head(5),
            tags=tags,
            gate=Gate(spec.gate_metric, spec.lower_is_better, params.registry.promotion_margin[task]),
            challenger_score=spec.gate_score(holdout, model.predict(holdout.inputs)),
            score_champion=score_champion,
        )
    summary = {**summary, "family": selected, "gate_condition": condition}
    write_json(summary, paths.task_registration(task))
    return summary
