"""The tune stage: one Optuna study per model family on grouped CV folds of the main protocol's training
rows, the families side by side; each study and trial is an MLflow run."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

import numpy as np

from components.families import FAMILIES, resolve_device
from components.io import atomic_path, read_json, write_json
from components.params import Params
from components.tasks import TASK_SPECS, TaskName
from components.tuning import tune
from trackflow.config import load_search_spaces
from trackflow.parts import SERIAL, Parts
from trackflow.paths import ProjectPaths
from trackflow.processes import ProcessIdentity, recorded_process_gone
from trackflow.stages.training import (
    TrainingError,
    featurizer_factory,
    load_tables,
    log,
    rows_fingerprint,
    task_n_classes,
    task_rows,
)
from trackflow.tracking import Tracker


def _study_fingerprint(params: Params, task: TaskName, family: str, space: Any, data_hash: str) -> str:
    """Studies resume only when what they tune is the same: data, space, features, folds, seed, pruner."""
    profile = params.train.tuning
    blob = json.dumps(
        {
            "data": data_hash,
            "space": repr(space),
            "groups": params.train.feature_groups,
            "cv": profile.cv_folds,
            "rows": profile.max_tune_rows,
            "seed": params.train.seed,
            "protocol": params.split.protocol,
            "hit": params.train.hit_threshold,
            # Trials pruned by another rule are not comparable: a new pruning rule starts a new study.
            "pruner": "stall-median",
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:10]


def tune_family(
    paths: ProjectPaths, params: Params, task: TaskName, family_name: str, parent_run_id: str | None = None
) -> dict[str, Any]:
    """One Optuna study for (task, family) on CV folds of the main protocol's training rows."""

    if family_name not in FAMILIES:
        raise KeyError(f"unknown model family {family_name!r}; known: {sorted(FAMILIES)}")
    family = FAMILIES[family_name]
    space = load_search_spaces(
        paths.families_config,
        TASK_SPECS[task].kind,
        profile=params.train.profile,
        known_profiles=params.train.profiles,
    )[family_name]
    tracks, splits = load_tables(paths)
    profile = params.train.tuning
    data = task_rows(tracks, splits, params, task, params.split.protocol, "train").sample(
        profile.max_tune_rows, params.train.seed
    )
    data_hash = read_json(paths.ingest_meta)["content_hash"]
    study_name = f"{task}.{family_name}.{_study_fingerprint(params, task, family_name, space, data_hash)}"
    storage_dir = paths.optuna
    storage_dir.mkdir(parents=True, exist_ok=True)
    # One database per study: parallel families never contend for one sqlite lock.
    storage = f"sqlite:///{storage_dir / f'{task}-{family_name}.db'}"
    device = resolve_device(params.train.device)

    tracker = Tracker.for_project(paths, params)
    tags = {"stage": "tune", "task": task, "family": family_name, "study": study_name, "device": device}
    with tracker.run(f"tune-{task}-{family_name}", parent_run_id, tags) as study_run:
        tracker.log(
            study_run.id,
            params={
                "n_trials": profile.n_trials,
                "timeout_s": profile.timeout_s,
                "cv_folds": profile.cv_folds,
                "tune_rows": len(data.y),
            },
        )

        def on_trial(record: Any) -> None:
            # Each trial is a nested run under its study's run, logged by explicit run id (thread-safe).
            trial_tags = {**tags, "stage": "tune-trial", "trial_state": record.state}
            with tracker.run(f"trial-{record.number}", study_run.id, trial_tags) as trial_run:
                tracker.log(trial_run.id, params=record.params)
                if record.value is not None:
                    tracker.log(
                        trial_run.id, metrics={"cv_score": record.value, "duration_s": record.duration_s}
                    )
                trial_run.status = "FINISHED" if record.state == "COMPLETE" else "KILLED"

        started = time.perf_counter()
        result = tune(
            family,
            space,
            TASK_SPECS[task].kind,
            data.inputs,
            data.y,
            data.groups,
            featurizer_factory(params, task, family.extra_feature_groups),
            n_trials=profile.n_trials,
            timeout_s=profile.timeout_s,
            cv_folds=profile.cv_folds,
            seed=params.train.seed,
            device=device,
            storage=storage,
            study_name=study_name,
            n_classes=task_n_classes(task, tracks),
            on_trial=on_trial,
            # A trial a killed process left RUNNING is failed, so the study resumes from a clean state.
            trial_owner=ProcessIdentity.current().tags(),
            owner_gone=recorded_process_gone,
        )
        if result.abandoned_trials:
            log.warning(
                "%s/%s: trial(s) %s were left RUNNING by a process that no longer exists: marked FAIL",
                task,
                family_name,
                result.abandoned_trials,
            )
        if result.n_complete == 0:
            counts = f"{result.n_failed} failed, {result.n_pruned} pruned"
            raise TrainingError(f"{task}/{family_name}: no trial completed ({counts})")
        oof_path = paths.tuning(task) / f"{family_name}.oof.npy"
        if result.best_oof is not None:
            with atomic_path(oof_path, ".npy") as tmp:
                np.save(tmp, result.best_oof)
        else:  # the best trial ran in an earlier process: the blend CV refits instead
            oof_path.unlink(missing_ok=True)
        summary = {
            "task": task,
            "family": family_name,
            "study_name": study_name,
            "storage": storage,
            "best_params": result.best_params,
            "cv_score": result.best_value,
            "cv_kept_iterations": result.best_kept_iterations,
            "direction": result.direction,
            "n_trials": result.n_trials,
            "n_complete": result.n_complete,
            "n_pruned": result.n_pruned,
            "n_failed": result.n_failed,
            "abandoned_trials": result.abandoned_trials,
            # "trials" when the study ran its n_trials; "timeout" when its wall-clock safety net cut it short.
            "stopped_by": "timeout" if result.stopped_by_timeout else "trials",
            "timeout_s": profile.timeout_s,
            "tune_rows": len(data.y),
            # The best trial's out-of-fold outputs and which rows they are for (see _oof_outputs).
            "oof_file": oof_path.name if result.best_oof is not None else None,
            "oof_rows_sha256": rows_fingerprint(data),
            "device": device,
            "seconds": round(time.perf_counter() - started, 2),
            "mlflow_run_id": study_run.id,
        }
        tracker.log(
            study_run.id,
            params={
                **{f"best_{k}": v for k, v in result.best_params.items()},
                "stopped_by": summary["stopped_by"],
            },
            metrics={
                "best_cv_score": result.best_value,
                "n_pruned": result.n_pruned,
                "n_failed": result.n_failed,
            },
        )
    write_json(summary, paths.tuning(task) / f"{family_name}.json")
    return summary


def tune_task(
    paths: ProjectPaths,
    params: Params,
    task: TaskName,
    *,
    parts: Parts = SERIAL,
    parent_run_id: str | None = None,
) -> dict[str, Any]:
    """Every enabled family of one task, side by side as `parts` runs them; a failing family is recorded in
    data/tuning/<task>/<family>.failed.json and the others go on. Fails only when every family failed."""
    target = paths.tuning(task)
    # Only this run's studies may reach the fit: a family that failed now must not leave last run's result.
    for stale in [*target.glob("*.json"), *target.glob("*.npy")] if target.is_dir() else []:
        stale.unlink()
    outcomes = parts.map(
        f"tune@{task}",
        lambda family: tune_family(paths, params, task, family, parent_run_id),
        params.train.families,
    )
    failed = {family: outcome.error for family, outcome in outcomes.items() if not outcome.ok}
    for family, error in failed.items():
        log.error("tuning %s/%s failed, the other families go on: %s", task, family, error)
        write_json({"family": family, "failed": error}, target / f"{family}.failed.json")
    if len(failed) == len(outcomes):
        raise TrainingError(f"every family failed for task {task}: {failed}")
    studies = {family: outcome.result for family, outcome in outcomes.items() if outcome.ok}
    return {
        "task": task,
        "tuned": list(studies),
        "failed": failed,
        # A study that stopped on its wall-clock safety net, not on its trial count, depends on machine speed.
        "stopped_by_timeout": [
            f for f, study in studies.items() if study and study.get("stopped_by") == "timeout"
        ],
        "studies": studies,
    }
