"""The train stage: every tuned family refitted on both protocols' training rows with the iteration count
early stopping found, the selection by cross-validation (or the blend of the best two), the study plots.
The holdout plays no part here.

Over 450 lines (513): the seam is the post-fit adjustments fitted on out-of-fold outputs (`out_of_fold`,
`cv_blend`, `_calibrators` and the names-prior weights inside `fit_task`), which belong in a module of their
own (trackflow/stages/adjust.py); it was found at the end of a session with no time left to verify a move
in CI, so it is the next session's first split."""

from __future__ import annotations

import functools
import time
import warnings
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import optuna
from optuna.visualization import matplotlib as optuna_plots

from components.calibration import ProbabilityCalibrator
from components.families import FAMILIES, resolve_device
from components.io import atomic_dir, atomic_path, read_json, write_json
from components.name_genres import (
    NameGenreClassifier,
    NamePrior,
    fit_pool_weight,
    out_of_fold_names,
    texts_of,
)
from components.params import Params
from components.selection import BLEND, keeps_blend, rank_by_cv
from components.task_model import BlendModel, TaskModel
from components.tasks import TASK_SPECS, TaskData, TaskName
from components.tuning import (
    RefitPlan,
    fit_final,
    grouped_folds,
    plan_refit,
    predict_output,
    score_output,
    stopped_early,
)
from trackflow.paths import ProjectPaths
from trackflow.stages.training import (
    TrainingError,
    capped,
    featurizer_factory,
    labelled_tracks,
    load_tables,
    log,
    protocols,
    reads_genre,
    rows_fingerprint,
    task_rows,
    without_genre,
)
from trackflow.tracking import Tracker, save_sklearn_model

# The fit-seconds key of a family's genre-free fallback.
GENRE_FREE_SUFFIX = "_genre_free"
# The folder and name of the untuned baseline beside the tuned families (never a selection candidate).
BASELINE = "baseline"


def _oof_outputs(
    paths: ProjectPaths, task: TaskName, entry: dict[str, Any], data: TaskData
) -> np.ndarray | None:
    """A finalist's out-of-fold outputs from its best tuning trial, when they are for exactly these rows."""
    name = entry.get("oof_file")
    if not name or entry.get("oof_rows_sha256") != rows_fingerprint(data):
        return None
    path = paths.tuning(task) / name
    if not path.is_file():
        return None
    output = np.load(path)
    return output if len(output) == len(data.y) and not np.isnan(output).any() else None


def out_of_fold(
    params: Params,
    task: TaskName,
    data: TaskData,
    entries: list[dict[str, Any]],
    n_classes: int | None,
    saved: list[np.ndarray | None] | None = None,
) -> list[np.ndarray]:
    """Each tuned family's out-of-fold outputs on the tuning folds of `data`: the saved ones as they are, the
    others refitted on each fold with the iteration count early stopping kept on that fold in its best trial
    (which gives the same outputs the tuning trial had)."""
    kind = TASK_SPECS[task].kind
    outputs = list(saved) if saved is not None else [None] * len(entries)
    missing = [i for i, output in enumerate(outputs) if output is None]
    if not missing:
        return outputs  # type: ignore[return-value]
    folds = grouped_folds(data.groups, params.train.tuning.cv_folds, params.train.seed)
    device = resolve_device(params.train.device)
    for k, (fold_train, fold_valid) in enumerate(folds):
        fold_inputs = data.inputs.iloc[fold_train].reset_index(drop=True)
        valid_inputs = data.inputs.iloc[fold_valid]
        for i in missing:
            family = FAMILIES[entries[i]["family"]]
            member = fit_final(
                family,
                kind,
                _fold_params(entries[i], family.iterations_param, k, len(folds)),
                fold_inputs,
                data.y[fold_train],
                featurizer_factory(params, task, family.extra_feature_groups),
                params.train.seed,
                device,
                n_classes=n_classes,
            )
            output = predict_output(kind, member, valid_inputs)
            if outputs[i] is None:
                outputs[i] = np.full((len(data.y), *output.shape[1:]), np.nan)
            outputs[i][fold_valid] = output  # type: ignore[index]
    return outputs  # type: ignore[return-value]


def cv_blend(
    params: Params,
    task: TaskName,
    data: TaskData,
    finalists: list[dict[str, Any]],
    outputs: list[np.ndarray],
    n_classes: int | None,
) -> dict[str, float]:
    """CV scores of the finalists and of their mean on the tuning folds (training rows only), by the same
    criterion as tuning (RMSE or log-loss; lower is better), from their out-of-fold `outputs` (out_of_fold):
    the blend is scored with no fit of its own."""
    kind = TASK_SPECS[task].kind
    folds = grouped_folds(data.groups, params.train.tuning.cv_folds, params.train.seed)
    totals: dict[str, list[float]] = {}
    for _, fold_valid in folds:
        members = [output[fold_valid] for output in outputs]
        valid_y = data.y[fold_valid]
        for finalist, output in zip(finalists, members, strict=True):
            totals.setdefault(finalist["family"], []).append(score_output(kind, output, valid_y, n_classes))
        blended = BlendModel.combine(members)
        totals.setdefault(BLEND, []).append(score_output(kind, blended, valid_y, n_classes))
    return {name: float(np.mean(values)) for name, values in totals.items()}


def _calibrators(
    method: str, y: np.ndarray, given: dict[str, np.ndarray], genre_free: dict[str, np.ndarray]
) -> dict[str, tuple[ProbabilityCalibrator | None, ProbabilityCalibrator | None]]:
    """Per family (and the blend, from its members' mean): the calibrator of its estimator and of its
    genre-free fallback, fitted on their out-of-fold probabilities of the positive class."""

    def fitted(outputs: dict[str, np.ndarray], name: str) -> ProbabilityCalibrator | None:
        output = outputs.get(name)
        return None if output is None else ProbabilityCalibrator.fit(output[:, 1], y, method)  # type: ignore[arg-type]

    return {name: (fitted(given, name), fitted(genre_free, name)) for name in given}


def study_plots(summary: dict[str, Any], folder: Path) -> list[Path]:
    """Optimisation history and parameter importances of one study, as PNG files."""

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

    tuned = [
        read_json(p)
        for p in sorted(paths.tuning(task).glob("*.json"))
        if not p.name.endswith(".failed.json") and read_json(p)["family"] in params.train.families
    ]
    if not tuned:
        raise TrainingError(f"no tuned family for task {task}: run `trackflow tune --task {task}` first")
    kind = TASK_SPECS[task].kind
    tracks, splits = load_tables(paths)
    spec = TASK_SPECS[task]
    classes = spec.classes(tracks)
    n_classes = spec.n_classes(classes)
    device = resolve_device(params.train.device)
    profile = params.train.tuning
    ranked = rank_by_cv(tuned)
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
    main_rows = capped(
        task_rows(tracks, splits, params, task, params.split.protocol, "train"),
        tracks,
        profile.max_train_rows,
        params.train.seed,
    )
    weights = spec.sample_weights(main_rows.y, params.train.balanced_weights)
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
    all_train_rows = task_rows(tracks, splits, params, task, params.split.protocol, "train")
    tune_positions = all_train_rows.sample_positions(profile.max_tune_rows, params.train.seed)
    tune_rows = all_train_rows if tune_positions is None else all_train_rows.take(tune_positions)
    blends = params.train.blend and len(ranked) >= 2
    calibrates = kind == "binary" and params.train.calibration != "none"
    # The genre task reads the names group as a naive Bayes opinion pooled with each model's (name_genres.py).
    pools = kind == "multiclass" and "names" in params.train.feature_groups
    oof: dict[str, np.ndarray] = {}
    source = ""
    if blends or calibrates or pools:
        # Calibration and pooling need every family's outputs, the blend its two finalists'.
        entries = ranked if calibrates or pools else ranked[:2]
        saved = [_oof_outputs(paths, task, entry, tune_rows) for entry in entries]
        outputs = out_of_fold(params, task, tune_rows, entries, n_classes, saved)
        oof = {entry["family"]: output for entry, output in zip(entries, outputs, strict=True)}
        reused = all(output is not None for output in saved)
        source = "tuning out-of-fold outputs" if reused else "refit on the tuning folds"
    if blends:
        members = [t["family"] for t in ranked[:2]]
        blend_scores = cv_blend(params, task, tune_rows, ranked[:2], [oof[m] for m in members], n_classes)
        selection["blend"] = {"members": members, "cv_scores": blend_scores, "scored_on": source}
        if keeps_blend(blend_scores, members):
            selection["selected"] = BLEND
    calibrators: dict[str, tuple[ProbabilityCalibrator | None, ProbabilityCalibrator | None]] = {}
    if calibrates:
        started = time.perf_counter()
        oof_free: dict[str, np.ndarray] = {}
        if reads_genre(spec):
            free_outputs = out_of_fold(params, task, without_genre(tune_rows), ranked, n_classes)
            oof_free = {entry["family"]: output for entry, output in zip(ranked, free_outputs, strict=True)}
        if "blend" in selection:
            members = selection["blend"]["members"]
            for outputs in (oof, oof_free):
                if outputs:
                    outputs[BLEND] = BlendModel.combine([outputs[m] for m in members])
        calibrators = _calibrators(params.train.calibration, tune_rows.y, oof, oof_free)
        selection["calibration"] = {
            "method": params.train.calibration,
            "fitted_on": f"out-of-fold outputs of {len(tune_rows.y):,} tuning rows ({source})",
            "seconds": round(time.perf_counter() - started, 2),
            "by_family": {
                name: {"given": c.as_dict() if c else None, "genre_free": f.as_dict() if f else None}
                for name, (c, f) in calibrators.items()
            },
        }
    pool_weights: dict[str, float] = {}
    if pools:
        started = time.perf_counter()
        # The names classifier costs seconds: it learns from every training row, not the capped sample, and
        # its out-of-fold outputs come from folds over all of them, so that the weight is fitted on a
        # classifier about as strong as the final one (folds of the tuning rows alone would underrate it).
        names_oof, has_text = out_of_fold_names(
            texts_of(all_train_rows.inputs),
            all_train_rows.y,
            all_train_rows.groups,
            n_classes or 0,
            params.train.names.genre_settings(),
            profile.cv_folds,
            params.train.seed,
        )
        if tune_positions is not None:
            names_oof, has_text = names_oof[tune_positions], has_text[tune_positions]
        pooled = dict(oof)
        if "blend" in selection:
            pooled[BLEND] = BlendModel.combine([oof[m] for m in selection["blend"]["members"]])
        pool_weights = {
            name: fit_pool_weight(output, names_oof, has_text, tune_rows.y) for name, output in pooled.items()
        }
        selection["names_prior"] = {
            "weights": pool_weights,
            BASELINE: 1.0,
            "fitted_on": f"out-of-fold outputs of {len(tune_rows.y):,} tuning rows ({source}); the names "
            f"classifier's from {profile.cv_folds} folds over all {len(all_train_rows.y):,} training rows",
            "seconds": round(time.perf_counter() - started, 2),
        }
    fit_seconds: dict[str, dict[str, float]] = {}
    final_iterations: dict[str, dict[str, int]] = {}
    train_rows: dict[str, int] = {}
    labelled_rows: dict[str, int] = {}
    with atomic_dir(paths.task_models(task)) as staging:
        for protocol in protocols(params):
            data = (
                main_rows
                if protocol == params.split.protocol
                else capped(
                    task_rows(tracks, splits, params, task, protocol, "train"),
                    tracks,
                    profile.max_train_rows,
                    params.train.seed,
                )
            )
            train_rows[protocol] = len(data.y)
            labelled_rows[protocol] = int(np.isin(data.track_ids, labelled_tracks(tracks)).sum())
            weights = spec.sample_weights(data.y, params.train.balanced_weights)
            # The training rows per-prediction explanations compare a row against (components/explain.py).
            background = data.sample(params.train.explain_background_rows, params.train.seed).inputs
            classifier = None
            if pools:
                every_row = task_rows(tracks, splits, params, task, protocol, "train")
                classifier = NameGenreClassifier(params.train.names.genre_settings())
                classifier.fit(texts_of(every_row.inputs), every_row.y, n_classes or 0)

            def names_prior(name: str, fitted: NameGenreClassifier | None = classifier) -> NamePrior | None:
                # The untuned baseline has no out-of-fold outputs: it pools by the plain product.
                return None if fitted is None else NamePrior(fitted, pool_weights.get(name, 1.0))

            fitted: dict[str, TaskModel] = {}
            for entry in ranked:
                family = FAMILIES[entry["family"]]
                fit_params = plans[entry["family"]].for_rows(len(data.y))
                if family.iterations_param is not None:
                    final_iterations.setdefault(protocol, {})[entry["family"]] = fit_params.get(
                        family.iterations_param
                    )

                fit = functools.partial(
                    fit_final,
                    family,
                    kind,
                    fit_params,
                    make_featurizer=featurizer_factory(params, task, family.extra_feature_groups),
                    seed=params.train.seed,
                    device=device,
                    n_classes=n_classes,
                    sample_weight=weights,
                )
                started = time.perf_counter()
                pipeline = fit(data.inputs, data.y)
                seconds = fit_seconds.setdefault(protocol, {})
                seconds[entry["family"]] = round(time.perf_counter() - started, 2)
                fallback = None
                if reads_genre(spec):
                    # The same family and params on the same rows, the genre withheld: what answers a row
                    # that comes without a genre (components/task_model.py).
                    started = time.perf_counter()
                    genre_free = without_genre(data)
                    fallback = fit(genre_free.inputs, genre_free.y)
                    seconds[f"{entry['family']}{GENRE_FREE_SUFFIX}"] = round(time.perf_counter() - started, 2)
                model = TaskModel(
                    task,
                    pipeline,
                    classes,
                    entry["family"],
                    fallback,
                    background,
                    *calibrators.get(entry["family"], (None, None)),
                    names_prior=names_prior(entry["family"]),
                )
                fitted[entry["family"]] = model
                _save(model, staging / protocol / entry["family"], data)
            if "blend" in selection:
                members = [fitted[name] for name in selection["blend"]["members"]]
                blend = TaskModel(
                    task,
                    BlendModel([m.estimator for m in members], kind),
                    classes,
                    BLEND,
                    None if members[0].fallback is None else BlendModel([m.fallback for m in members], kind),
                    background,
                    *calibrators.get(BLEND, (None, None)),
                    names_prior=names_prior(BLEND),
                )
                _save(blend, staging / protocol / BLEND, data)
            started = time.perf_counter()
            baseline = _fit_baseline(params, task, data, classes, n_classes, weights, device)
            baseline.background = background
            baseline.names_prior = names_prior(BASELINE)
            fit_seconds.setdefault(protocol, {})[BASELINE] = round(time.perf_counter() - started, 2)
            _save(baseline, staging / protocol / BASELINE, data)
        selection["baseline"] = {
            "family": "lightgbm",
            "params": params.train.baseline.model_dump(),
            "note": "untuned (train.baseline); a row of every comparison, never selected",
        }
        selection["fit_seconds"] = fit_seconds
        selection["final_iterations"] = final_iterations
        selection["train_rows"] = train_rows
        selection["labelled_train_rows"] = labelled_rows  # rows from data/labels/ among them
        write_json(selection, staging / "selection.json")
    plots = paths.reports / task / "tuning"
    plots.mkdir(parents=True, exist_ok=True)  # a DVC output, even when a study is too small to plot
    client = Tracker.for_project(paths, params).client
    for entry in tuned:
        # The study's plots belong to the study's MLflow run, beside its best params.
        for plot in study_plots(entry, plots):
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


def _fit_baseline(
    params: Params,
    task: TaskName,
    data: TaskData,
    classes: Any,
    n_classes: int | None,
    weights: np.ndarray | None,
    device: str,
) -> TaskModel:
    """The untuned LightGBM of `train.baseline` on the same rows and feature groups as the tuned families,
    with its genre-free fallback where the task reads the genre: what tuning and blending must beat."""
    fit = functools.partial(
        fit_final,
        FAMILIES["lightgbm"],
        TASK_SPECS[task].kind,
        params.train.baseline.model_dump(),
        make_featurizer=featurizer_factory(params, task),
        seed=params.train.seed,
        device=device,
        n_classes=n_classes,
        sample_weight=weights,
    )
    fallback = None
    if reads_genre(TASK_SPECS[task]):
        genre_free = without_genre(data)
        fallback = fit(genre_free.inputs, genre_free.y)
    return TaskModel(task, fit(data.inputs, data.y), classes, BASELINE, fallback)


def _save(model: TaskModel, target: Path, data: TaskData) -> None:
    save_sklearn_model(model, target, data.inputs.head(5))
