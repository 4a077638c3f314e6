"""Per-task model stages: tune every family (Optuna, CV on training folds), fit the finalists, evaluate them
on the untouched holdouts, and register the selected one behind the champion/challenger gate.

Selection uses cross-validation on training rows only; the holdout is read once, in `evaluate_task`, and the
promotion gate compares challenger and champion on that same holdout.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import mlflow.pyfunc
import mlflow.sklearn
import numpy as np
import pandas as pd

from components import registry
from components.evaluation import (
    binary_metrics,
    genre_metrics,
    most_confused_pairs,
    per_genre_error,
    regression_metrics,
)
from components.features import TrackFeaturizer, popularity_balanced_weights
from components.io import atomic_dir, atomic_path, read_json, write_json, write_text
from components.params import Params
from components.split import split_frames
from components.task_model import BlendModel, TaskModel
from components.tasks import TASK_SPECS, TaskData, TaskName, genre_classes, task_data
from trackflow.parts import SERIAL, Parts
from trackflow.paths import ProjectPaths
from trackflow.stages import PROTOCOLS, git_commit, mlflow_client, params_hash

if TYPE_CHECKING:
    from components.tuning import RefitPlan

log = logging.getLogger("trackflow")
BLEND = "blend"


class TrainingError(RuntimeError):
    """No family could be trained for a task."""


# --- shared helpers ---
def protocols(params: Params) -> list[str]:
    return [params.split.protocol, *[p for p in PROTOCOLS if p != params.split.protocol]]


def _load(paths: ProjectPaths) -> tuple[pd.DataFrame, pd.DataFrame]:
    return pd.read_parquet(paths.features), pd.read_parquet(paths.splits)


def _classes(task: TaskName, tracks: pd.DataFrame) -> list[str] | None:
    return genre_classes(tracks) if task == "genre" else None


def _rows(
    tracks: pd.DataFrame, splits: pd.DataFrame, params: Params, task: TaskName, protocol: str, side: str
) -> TaskData:
    train, test = split_frames(tracks, splits, protocol)
    return task_data(
        train if side == "train" else test,
        task,
        hit_threshold=params.train.hit_threshold,
        classes=_classes(task, tracks),
        for_training=side == "train",
    )


def _sample(data: TaskData, limit: int | None, seed: int) -> TaskData:
    """A seeded sample of whole rows (keeps groups consistent with their rows)."""
    if limit is None or len(data.y) <= limit:
        return data
    keep = np.sort(np.random.default_rng(seed).choice(len(data.y), size=limit, replace=False))
    return TaskData(
        data.inputs.iloc[keep].reset_index(drop=True),
        data.y[keep],
        data.groups[keep],
        data.track_ids[keep],
        None if data.label_sets is None else [data.label_sets[i] for i in keep],
    )


def featurizer_factory(params: Params, task: TaskName, extra_groups: tuple[str, ...] = ()):
    groups = TASK_SPECS[task].feature_groups(params.train.feature_groups) + tuple(extra_groups)

    def make(needs_scaling: bool) -> TrackFeaturizer:
        return TrackFeaturizer(
            groups=tuple(dict.fromkeys(groups)), seed=params.train.seed, scale=needs_scaling
        )

    return make


def _n_classes(task: TaskName, tracks: pd.DataFrame) -> int | None:
    classes = _classes(task, tracks)
    return len(classes) if classes else (2 if task == "hit" else None)


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


# --- tune ---
def tune_family(
    paths: ProjectPaths, params: Params, task: TaskName, family_name: str, parent_run_id: str | None = None
) -> dict[str, Any]:
    """One Optuna study for (task, family) on CV folds of the main protocol's training rows."""
    from components.families import FAMILIES, load_search_spaces, resolve_device
    from components.tuning import tune

    if family_name not in FAMILIES:
        raise KeyError(f"unknown model family {family_name!r}; known: {sorted(FAMILIES)}")
    family = FAMILIES[family_name]
    space = load_search_spaces(
        paths.families_config,
        TASK_SPECS[task].kind,
        profile=params.train.profile,
        known_profiles=params.train.profiles,
    )[family_name]
    tracks, splits = _load(paths)
    profile = params.train.tuning
    data = _sample(
        _rows(tracks, splits, params, task, params.split.protocol, "train"),
        profile.max_tune_rows,
        params.train.seed,
    )
    data_hash = read_json(paths.ingest_meta)["content_hash"]
    study_name = f"{task}.{family_name}.{_study_fingerprint(params, task, family_name, space, data_hash)}"
    storage_dir = paths.optuna
    storage_dir.mkdir(parents=True, exist_ok=True)
    # One database per study: parallel families never contend for one sqlite lock.
    storage = f"sqlite:///{storage_dir / f'{task}-{family_name}.db'}"
    device = resolve_device(params.train.device)

    client, experiment_id = mlflow_client(paths, params)
    tags = {"stage": "tune", "task": task, "family": family_name, "study": study_name, "device": device}
    study_run = registry.start_run(client, experiment_id, f"tune-{task}-{family_name}", parent_run_id, tags)
    registry.log_flat(
        client,
        study_run,
        params={
            "n_trials": profile.n_trials,
            "timeout_s": profile.timeout_s,
            "cv_folds": profile.cv_folds,
            "tune_rows": len(data.y),
        },
    )

    def on_trial(record: Any) -> None:
        # Each trial is a nested run under its study's run, logged by explicit run id (thread-safe).
        trial_run = registry.start_run(
            client,
            experiment_id,
            f"trial-{record.number}",
            study_run,
            {**tags, "stage": "tune-trial", "trial_state": record.state},
        )
        registry.log_flat(client, trial_run, params=record.params)
        if record.value is not None:
            registry.log_flat(
                client, trial_run, metrics={"cv_score": record.value, "duration_s": record.duration_s}
            )
        client.set_terminated(trial_run, "FINISHED" if record.state == "COMPLETE" else "KILLED")

    started = time.perf_counter()
    try:
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
            n_classes=_n_classes(task, tracks),
            on_trial=on_trial,
        )
    except BaseException:
        client.set_terminated(study_run, "FAILED")
        raise
    if result.n_complete == 0:
        client.set_terminated(study_run, "FAILED")
        raise TrainingError(
            f"{task}/{family_name}: no trial completed ({result.n_failed} failed, {result.n_pruned} pruned)"
        )
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
        # "trials" when the study ran its n_trials; "timeout" when its wall-clock safety net cut it short.
        "stopped_by": "timeout" if result.stopped_by_timeout else "trials",
        "timeout_s": profile.timeout_s,
        "tune_rows": len(data.y),
        # The best trial's out-of-fold outputs and which rows they are for (see _oof_outputs).
        "oof_file": oof_path.name if result.best_oof is not None else None,
        "oof_rows_sha256": _rows_fingerprint(data),
        "device": device,
        "seconds": round(time.perf_counter() - started, 2),
        "mlflow_run_id": study_run,
    }
    registry.log_flat(
        client,
        study_run,
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
    client.set_terminated(study_run, "FINISHED")
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


# --- fit ---
def _rows_fingerprint(data: TaskData) -> str:
    """Which tuning rows, in which order: out-of-fold outputs are only reused for the very same rows."""
    return hashlib.sha256("\n".join(map(str, data.track_ids)).encode()).hexdigest()


def _oof_outputs(
    paths: ProjectPaths, task: TaskName, entry: dict[str, Any], data: TaskData
) -> np.ndarray | None:
    """A finalist's out-of-fold outputs from its best tuning trial, when they are for exactly these rows."""
    name = entry.get("oof_file")
    if not name or entry.get("oof_rows_sha256") != _rows_fingerprint(data):
        return None
    path = paths.tuning(task) / name
    if not path.is_file():
        return None
    output = np.load(path)
    return output if len(output) == len(data.y) and not np.isnan(output).any() else None


def _cv_blend(
    paths: ProjectPaths,
    params: Params,
    task: TaskName,
    data: TaskData,
    finalists: list[dict[str, Any]],
    n_classes: int | None,
) -> tuple[dict[str, float], str]:
    """CV scores of the finalists and of their mean on the tuning folds (training rows only), by the same
    criterion as tuning (RMSE or log-loss; lower is better), and where the members' outputs came from.

    The tuning stage saved each family's out-of-fold outputs of its best trial: the blend is scored on those,
    with no fit. When one is missing (a study resumed from an earlier process), the finalists are refitted on
    each fold with the iteration count early stopping kept on that fold in their best trial, which gives the
    same outputs."""
    from components.families import FAMILIES, resolve_device
    from components.tuning import fit_final, grouped_folds, predict_output, score_output

    kind = TASK_SPECS[task].kind
    folds = grouped_folds(data.groups, params.train.tuning.cv_folds, params.train.seed)
    totals: dict[str, list[float]] = {}
    saved = [_oof_outputs(paths, task, finalist, data) for finalist in finalists]
    reuse = all(output is not None for output in saved)
    device = None if reuse else resolve_device(params.train.device)
    for k, (fold_train, fold_valid) in enumerate(folds):
        if reuse:
            outputs = [output[fold_valid] for output in saved]
        else:
            fold_inputs = data.inputs.iloc[fold_train].reset_index(drop=True)
            valid_inputs = data.inputs.iloc[fold_valid]
            outputs = []
            for finalist in finalists:
                family = FAMILIES[finalist["family"]]
                member = fit_final(
                    family,
                    kind,
                    _fold_params(finalist, family.iterations_param, k, len(folds)),
                    fold_inputs,
                    data.y[fold_train],
                    featurizer_factory(params, task, family.extra_feature_groups),
                    params.train.seed,
                    device,
                    n_classes=n_classes,
                )
                outputs.append(predict_output(kind, member, valid_inputs))
        valid_y = data.y[fold_valid]
        for finalist, output in zip(finalists, outputs, strict=True):
            totals.setdefault(finalist["family"], []).append(score_output(kind, output, valid_y, n_classes))
        blended = BlendModel.combine(outputs)
        totals.setdefault(BLEND, []).append(score_output(kind, blended, valid_y, n_classes))
    source = "tuning out-of-fold outputs" if reuse else "refit on the tuning folds"
    return {name: float(np.mean(values)) for name, values in totals.items()}, source


def _study_plots(summary: dict[str, Any], folder: Path) -> list[Path]:
    """Optimisation history and parameter importances of one study, as PNG files."""
    import optuna
    from optuna.visualization import matplotlib as optuna_plots

    study = optuna.load_study(study_name=summary["study_name"], storage=summary["storage"])
    written = []
    for name, plot in (
        ("history", optuna_plots.plot_optimization_history),
        ("importance", optuna_plots.plot_param_importances),
    ):
        try:
            # Optuna marks its matplotlib plots experimental and warns on every call: one line per plot
            # in the flow's log, saying nothing about this run.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                axes = plot(study)
        except Exception as exc:  # importances need >= 2 completed trials with varying params
            log.info("no %s plot for %s: %s", name, summary["study_name"], exc)
            continue
        figure = axes.figure if hasattr(axes, "figure") else axes.flat[0].figure
        target = folder / f"{summary['family']}_{name}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(target, ".png") as tmp:
            figure.savefig(tmp, dpi=100, bbox_inches="tight", format="png")
        plt.close(figure)
        written.append(target)
    return written


def fit_task(paths: ProjectPaths, params: Params, task: TaskName) -> dict[str, Any]:
    """Fit each tuned family on the training rows of both protocols; pick the CV winner (or the blend)."""
    from components.families import FAMILIES, resolve_device
    from components.tuning import fit_final

    tuned = [
        read_json(p)
        for p in sorted(paths.tuning(task).glob("*.json"))
        if not p.name.endswith(".failed.json") and read_json(p)["family"] in params.train.families
    ]
    if not tuned:
        raise TrainingError(f"no tuned family for task {task}: run `trackflow tune --task {task}` first")
    kind = TASK_SPECS[task].kind
    tracks, splits = _load(paths)
    n_classes = _n_classes(task, tracks)
    classes = _classes(task, tracks)
    device = resolve_device(params.train.device)
    profile = params.train.tuning
    # Lower is better for every CV criterion we use (RMSE, log-loss): direction is read from the study.
    ranked = sorted(tuned, key=lambda t: t["cv_score"] if t["direction"] == "minimize" else -t["cv_score"])
    selection: dict[str, Any] = {
        "task": task,
        "cv_scores": {t["family"]: t["cv_score"] for t in ranked},
        "cv_direction": ranked[0]["direction"],
        "selected": ranked[0]["family"],
        # How each study ended: the metrics carry it, so a result cut short by the safety net says so.
        "studies": {
            t["family"]: {
                key: t.get(key)
                for key in ("n_trials", "n_complete", "n_pruned", "n_failed", "stopped_by", "timeout_s")
            }
            for t in ranked
        },
    }
    main_rows = _sample(
        _rows(tracks, splits, params, task, params.split.protocol, "train"),
        profile.max_train_rows,
        params.train.seed,
    )
    weights = _weights(params, task, main_rows)
    plans = {
        entry["family"]: _refit_plan(params, task, entry, main_rows, weights, n_classes, device)
        for entry in ranked
    }
    selection["refit_iterations"] = {
        name: {
            "param": plan.iterations_param,
            "tuned_ceiling": next(e for e in ranked if e["family"] == name)["best_params"].get(
                plan.iterations_param
            ),
            "kept_on_inner_split": plan.kept_on_inner,
            "inner_rows": plan.inner_rows,
            "validation_rows": plan.validation_rows,
        }
        for name, plan in plans.items()
        if plan.kept_on_inner is not None
    }
    if params.train.blend and len(ranked) >= 2:
        tune_rows = _sample(
            _rows(tracks, splits, params, task, params.split.protocol, "train"),
            profile.max_tune_rows,
            params.train.seed,
        )
        blend_scores, blend_source = _cv_blend(paths, params, task, tune_rows, ranked[:2], n_classes)
        best_single = min(blend_scores[t["family"]] for t in ranked[:2])
        selection["blend"] = {
            "members": [t["family"] for t in ranked[:2]],
            "cv_scores": blend_scores,
            "scored_on": blend_source,
        }
        if blend_scores[BLEND] < best_single:
            selection["selected"] = BLEND
    fit_seconds: dict[str, dict[str, float]] = {}
    final_iterations: dict[str, dict[str, int]] = {}
    train_rows: dict[str, int] = {}
    with atomic_dir(paths.task_models(task)) as staging:
        for protocol in protocols(params):
            data = (
                main_rows
                if protocol == params.split.protocol
                else _sample(
                    _rows(tracks, splits, params, task, protocol, "train"),
                    profile.max_train_rows,
                    params.train.seed,
                )
            )
            train_rows[protocol] = len(data.y)
            weights = _weights(params, task, data)
            fitted = {}
            for entry in ranked:
                family = FAMILIES[entry["family"]]
                fit_params = plans[entry["family"]].for_rows(len(data.y))
                if family.iterations_param is not None:
                    final_iterations.setdefault(protocol, {})[entry["family"]] = fit_params.get(
                        family.iterations_param
                    )
                started = time.perf_counter()
                pipeline = fit_final(
                    family,
                    kind,
                    fit_params,
                    data.inputs,
                    data.y,
                    featurizer_factory(params, task, family.extra_feature_groups),
                    params.train.seed,
                    device,
                    n_classes=n_classes,
                    sample_weight=weights,
                )
                fit_seconds.setdefault(protocol, {})[entry["family"]] = round(
                    time.perf_counter() - started, 2
                )
                fitted[entry["family"]] = pipeline
                _save(
                    TaskModel(task, pipeline, classes, entry["family"]),
                    staging / protocol / entry["family"],
                    data,
                )
            if "blend" in selection:
                members = [fitted[name] for name in selection["blend"]["members"]]
                blend = TaskModel(task, BlendModel(members, kind), classes, BLEND)
                _save(blend, staging / protocol / BLEND, data)
        selection["fit_seconds"] = fit_seconds
        selection["final_iterations"] = final_iterations
        selection["train_rows"] = train_rows
        write_json(selection, staging / "selection.json")
    plots = paths.reports / task / "tuning"
    plots.mkdir(parents=True, exist_ok=True)  # a DVC output, even when a study is too small to plot
    client, _ = mlflow_client(paths, params)
    for entry in tuned:
        # The study's plots belong to the study's MLflow run, beside its best params.
        for plot in _study_plots(entry, plots):
            client.log_artifact(entry["mlflow_run_id"], str(plot), "study")
    return selection


def _fold_params(finalist: dict[str, Any], key: str | None, fold: int, n_folds: int) -> dict[str, Any]:
    """A finalist's params on CV fold `fold`: its tuned params with the count early stopping kept on that
    fold (the blend CV uses the tuning folds). A count scaled from the final fit's would not do: a fold has
    a fifth of its rows, and an MLP on fewer rows needs more epochs, not fewer."""
    kept = finalist.get("cv_kept_iterations")
    if key is None or not kept or len(kept) != n_folds:
        return dict(finalist["best_params"])
    return {**finalist["best_params"], key: int(kept[fold])}


def _weights(params: Params, task: TaskName, data: TaskData) -> np.ndarray | None:
    if task == "popularity" and params.train.balanced_weights:
        return popularity_balanced_weights(data.y)
    return None


def _refit_plan(
    params: Params,
    task: TaskName,
    entry: dict[str, Any],
    data: TaskData,
    weights: np.ndarray | None,
    n_classes: int | None,
    device: str,
) -> RefitPlan:
    """The iteration count of one family's final fits, found once on the main protocol's training rows.
    Skipped (the tuned count stands) when early stopping cut no CV fold of the best trial short: an
    early-stopping fit would only run to the ceiling again."""
    from components.families import FAMILIES
    from components.tuning import RefitPlan, plan_refit, stopped_early

    family = FAMILIES[entry["family"]]
    ceiling = entry["best_params"].get(family.iterations_param) if family.iterations_param else None
    if not stopped_early(entry.get("cv_kept_iterations"), ceiling):
        return RefitPlan(params=dict(entry["best_params"]))
    started = time.perf_counter()
    plan = plan_refit(
        family,
        TASK_SPECS[task].kind,
        entry["best_params"],
        data.inputs,
        data.y,
        data.groups,
        featurizer_factory(params, task, family.extra_feature_groups),
        params.train.seed,
        device,
        params.train.refit_validation_share,
        n_classes=n_classes,
        sample_weight=weights,
    )
    log.info(
        "%s/%s: early stopping kept %s of %s %s on %s rows (%.1f s)",
        task,
        family.name,
        plan.kept_on_inner,
        ceiling,
        family.iterations_param,
        f"{plan.inner_rows:,}",
        time.perf_counter() - started,
    )
    return plan


def _save(model: TaskModel, target: Path, data: TaskData) -> None:
    registry.save_sklearn_model(model, target, data.inputs.head(5))


# --- evaluate ---
def _predict(model: TaskModel, inputs: pd.DataFrame) -> np.ndarray:
    if model.task == "popularity":
        return model.predict(inputs)
    return model.predict_proba(inputs)


def holdout_metrics(
    params: Params, task: TaskName, data: TaskData, output: np.ndarray, classes: list[str] | None
) -> dict[str, float]:
    if task == "popularity":
        return regression_metrics(data.y, output)
    if task == "hit":
        return binary_metrics(data.y, output[:, 1], params.evaluate.hit_min_precision)
    return genre_metrics(data.label_sets or [], output, classes or [])


def _comparison_markdown(task: TaskName, metrics: dict[str, Any], main: str) -> str:
    keys = {
        "popularity": ["rmse", "mae", "r2", "top_decile_recall"],
        "hit": [
            "roc_auc",
            "pr_auc",
            "log_loss",
            next(
                (k for k in metrics[main][next(iter(metrics[main]))] if k.startswith("recall_at")), "roc_auc"
            ),
        ],
        "genre": ["top1_set_accuracy", "top3_set_accuracy", "macro_f1"],
    }[task]
    lines = [f"# {task}: model families on the holdout", ""]
    for protocol in (main, *[p for p in PROTOCOLS if p != main]):
        label = "main" if protocol == main else "comparison"
        lines += [
            f"## holdout grouped by {protocol} ({label})",
            "",
            "| family | " + " | ".join(keys) + " | CV score |",
            "|---" * (len(keys) + 2) + "|",
        ]
        for family, values in metrics[protocol].items():
            cv = metrics["cv_scores"].get(family)
            marker = " (selected)" if family == metrics["selected"] else ""
            cells = " | ".join(f"{values[k]:.4f}" for k in keys)
            lines.append(f"| {family}{marker} | {cells} | {'' if cv is None else f'{cv:.4f}'} |")
        lines.append("")
    lines.append(
        "CV score: the selection criterion on training folds (RMSE or log-loss; lower is better): the "
        "tuning study's best for each family, and for the blend and its two members the scores of one "
        "more CV on the same folds. The model is chosen by it, never by the holdout."
    )
    return "\n".join(lines) + "\n"


def _task_plots(
    task: TaskName,
    data: TaskData,
    output: np.ndarray,
    model: TaskModel,
    classes: list[str] | None,
    folder: Path,
    params: Params,
) -> pd.DataFrame | None:
    folder.mkdir(parents=True, exist_ok=True)
    table = None
    figures: list[tuple[str, Any]] = []
    if task == "popularity":
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
        axes[0].hexbin(data.y, output, gridsize=40, mincnt=1, cmap="viridis")
        axes[0].plot([0, 100], [0, 100], "r--", lw=1)
        axes[0].set(xlabel="actual popularity", ylabel="predicted", title="Predicted vs actual (holdout)")
        axes[1].hist(output - data.y, bins=60, color="steelblue")
        axes[1].set(xlabel="prediction - actual", ylabel="tracks", title="Residuals (holdout)")
        figures.append(("predicted_vs_actual.png", fig))
        genres = [s.split("|")[0] for s in data.inputs["track_genre"].astype(str)]
        table = per_genre_error(data.y, output, genres)
    elif task == "hit":
        from sklearn.metrics import PrecisionRecallDisplay, RocCurveDisplay

        fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
        RocCurveDisplay.from_predictions(data.y, output[:, 1], ax=axes[0])
        PrecisionRecallDisplay.from_predictions(data.y, output[:, 1], ax=axes[1])
        axes[0].set_title("ROC (holdout)")
        axes[1].set_title("Precision-recall (holdout)")
        figures.append(("roc_pr.png", fig))
    else:
        top1 = [classes[k] for k in np.argmax(output, axis=1)]
        table = most_confused_pairs(data.label_sets or [], top1, n=20)
        if len(table):
            names = sorted(set(table["true"]) | set(table["predicted"]))
            matrix = pd.DataFrame(0, index=names, columns=names)
            for row in table.itertuples():
                matrix.loc[row.true, row.predicted] = row.count
            fig, ax = plt.subplots(figsize=(9, 8))
            image = ax.imshow(matrix.to_numpy(), cmap="Reds")
            ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
            ax.set_yticks(range(len(names)), names, fontsize=7)
            ax.set(xlabel="predicted", ylabel="true", title="Most confused genres (holdout, top-1 wrong)")
            fig.colorbar(image, ax=ax)
            figures.append(("confused_genres.png", fig))
    importance = _feature_importance(model)
    if importance is not None:
        fig, ax = plt.subplots(figsize=(7, 7))
        importance.nlargest(25)[::-1].plot.barh(ax=ax, color="darkorange")
        ax.set(title=f"Feature importance ({model.family}), top 25")
        figures.append(("feature_importance.png", fig))
    for name, fig in figures:
        fig.tight_layout()
        with atomic_path(folder / name, ".png") as tmp:
            fig.savefig(tmp, dpi=100, format="png")
        plt.close(fig)
    return table


def _feature_importance(model: TaskModel) -> pd.Series | None:
    estimator = model.estimator
    if isinstance(estimator, BlendModel):
        estimator = estimator.members[0]
    final = getattr(estimator, "named_steps", {}).get("model")
    values = getattr(final, "feature_importances_", None)
    if values is None:
        return None
    names = estimator.named_steps["features"].get_feature_names_out()
    return pd.Series(np.asarray(values, dtype="float64"), index=names) if len(names) == len(values) else None


def _rounded(value: Any, digits: int = 6) -> Any:
    if isinstance(value, float):
        return round(value, digits)
    if isinstance(value, dict):
        return {k: _rounded(v, digits) for k, v in value.items()}
    return value


def evaluate_task(paths: ProjectPaths, params: Params, task: TaskName) -> dict[str, Any]:
    """Every fitted family (and the blend) on the untouched holdout of each protocol."""
    tracks, splits = _load(paths)
    classes = _classes(task, tracks)
    selection = read_json(paths.task_models(task) / "selection.json")
    main = params.split.protocol
    metrics: dict[str, Any] = {
        "main_protocol": main,
        "selected": selection["selected"],
        "cv_scores": selection["cv_scores"],
        "tuning": selection.get("studies", {}),
    }
    if "blend" in selection:
        # The blend and its members were compared on the same folds without early stopping: show those scores.
        metrics["cv_scores"] = {**metrics["cv_scores"], **selection["blend"]["cv_scores"]}
    for protocol in protocols(params):
        data = _rows(tracks, splits, params, task, protocol, "test")
        metrics[protocol] = {}
        for folder in sorted((paths.task_models(task) / protocol).iterdir()):
            model: TaskModel = mlflow.sklearn.load_model(str(folder))
            output = _predict(model, data.inputs)
            metrics[protocol][folder.name] = holdout_metrics(params, task, data, output, classes)
            if protocol == main and folder.name == selection["selected"]:
                table = _task_plots(task, data, output, model, classes, paths.reports / task, params)
                if table is not None:
                    write_text(
                        table.to_markdown(index=False)
                        if hasattr(table, "to_markdown")
                        else table.to_string(),
                        paths.reports
                        / task
                        / ("per_genre_error.md" if task == "popularity" else "most_confused.md"),
                    )
    # Rounded: parallel ensembles sum in thread order; noise in the 15th digit would make DVC see a change.
    write_json(_rounded(metrics), paths.task_metrics(task))
    write_text(_comparison_markdown(task, metrics, main), paths.reports / task / "comparison.md")
    return _rounded(metrics)


# --- register ---
def gate_score(task: TaskName, holdout: TaskData, predictions: np.ndarray) -> float:
    """The promotion metric from pyfunc answers: popularity values, hit probabilities, genre names."""
    predictions = np.asarray(predictions)
    if task == "popularity":
        return regression_metrics(holdout.y, np.clip(predictions.astype("float64"), 0, 100))["rmse"]
    if task == "hit":
        from sklearn.metrics import roc_auc_score

        return float(roc_auc_score(holdout.y, predictions.astype("float64")))
    sets = holdout.label_sets or []
    return float(np.mean([name in labels for name, labels in zip(predictions, sets, strict=True)]))


def register_task(
    paths: ProjectPaths, params: Params, task: TaskName, parent_run_id: str | None = None
) -> dict[str, Any]:
    """Register the selected model as `task`: challenger always; champion only when it beats the champion."""
    spec = TASK_SPECS[task]
    main = params.split.protocol
    metrics = read_json(paths.task_metrics(task))
    selected = metrics["selected"]
    challenger_metrics = metrics[main][selected]
    model: TaskModel = mlflow.sklearn.load_model(str(paths.task_models(task) / main / selected))
    tracks, splits = _load(paths)
    holdout = _rows(tracks, splits, params, task, main, "test")

    client, experiment_id = mlflow_client(paths, params)
    data_hash = read_json(paths.ingest_meta)["content_hash"]
    tags = {
        "task": task,
        "family": selected,
        "data_hash": data_hash,
        "params_hash": params_hash(params),
        "git_commit": git_commit(paths.root),
        "protocol": main,
        **{f"holdout_{k}": f"{v:.4f}" for k, v in challenger_metrics.items() if isinstance(v, float)},
    }
    run_id = registry.start_run(
        client, experiment_id, f"train-{task}", parent_run_id, {"stage": "register", **tags}
    )
    flat = {
        f"holdout_{p}_{fam}_{k}": v
        for p in PROTOCOLS
        for fam, m in metrics[p].items()
        for k, v in m.items()
        if isinstance(v, int | float) and np.isfinite(v)
    }
    registry.log_flat(
        client,
        run_id,
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
    client.log_table(run_id, data=comparison, artifact_file="comparison_table.json")
    for artifact in (paths.task_metrics(task), paths.task_models(task) / "selection.json"):
        client.log_artifact(run_id, str(artifact), "pipeline")
    if (paths.reports / task).is_dir():
        client.log_artifacts(run_id, str(paths.reports / task), "reports")

    # Challenger and champion are judged on today's holdout rows through the same pyfunc contract (what
    # scoring calls), so a champion logged by an older version of this code is still comparable.
    gate = spec.gate_metric
    challenger_score = gate_score(task, holdout, model.predict(holdout.inputs))
    champion = registry.champion_version(client, task)
    champion_score = None
    unscorable = None
    if champion is not None:
        try:
            champion_model = mlflow.pyfunc.load_model(f"models:/{task}@{registry.CHAMPION}")
            champion_inputs = registry.conform_to_signature(holdout.inputs, champion_model)
            champion_score = gate_score(task, holdout, champion_model.predict(champion_inputs))
            registry.log_flat(client, run_id, metrics={f"champion_holdout_{gate}": champion_score})
        except Exception as exc:  # the champion cannot score today's rows: a person must decide
            unscorable = f"{type(exc).__name__}: {exc}"[:300]
            log.error("champion %s v%s could not be evaluated: %s", task, champion.version, unscorable)
    if unscorable is not None:
        decision = registry.PromotionDecision(
            False,
            f"champion kept: it could not be evaluated on today's holdout ({unscorable}); promote by hand",
            challenger_score,
            None,
        )
    else:
        decision = registry.decide_promotion(
            challenger_score,
            champion_score,
            params.registry.promotion_margin.get(task, 0.0),
            gate,
            spec.lower_is_better,
        )
    version, model_uri = registry.log_and_register(client, run_id, model, holdout.inputs.head(5), task, tags)
    aliases = registry.apply_aliases(client, task, version, decision)
    client.set_tag(run_id, "promotion_decision", decision.reason)
    client.set_terminated(run_id, "FINISHED")
    summary = {
        "model_name": task,
        "family": selected,
        "version": version,
        "model_uri": model_uri,
        "run_id": run_id,
        "aliases": aliases,
        "promotion": decision.reason,
        "gate_metric": gate,
        "challenger_score": challenger_score,
        "champion_score": champion_score,
        "champion_version": version if decision.promote else (str(champion.version) if champion else None),
    }
    write_json(summary, paths.task_registration(task))
    return summary
