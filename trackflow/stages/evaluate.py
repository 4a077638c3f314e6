"""The evaluate stage: every fitted family (and the blend) on the untouched holdout of each protocol;
metrics/<task>.json, the comparison table and the selected model's figures.

A task whose models take the genre as an input (popularity, hit) is judged in both conditions it is used
in: with the holdout's own genre (`genre given`, the keys under each protocol) and without it
(`genre_predicted`: a scoring batch without a genre, whose genre the genre champion predicts for the
output), where the model's genre-free fallback answers (components/task_model.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import mlflow.pyfunc
import mlflow.sklearn
import numpy as np

from components import task_report
from components.evaluation import ALBUM_SUBSETS, album_shared
from components.explain import explain
from components.io import atomic_path, read_json, write_json, write_text
from components.params import Params
from components.split import split_frames
from components.task_model import TaskModel
from components.tasks import GENRE_PREDICTED, TASK_SPECS, TaskData, TaskName, TaskSpec
from trackflow.paths import ProjectPaths
from trackflow.stages.training import (
    load_tables,
    protocols,
    reads_genre,
    rounded,
    task_rows,
    without_genre,
)


def _write_figures(figures: list[tuple[str, Any]], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, figure in figures:
        figure.tight_layout()
        with atomic_path(folder / name, ".png") as tmp:
            figure.savefig(tmp, dpi=100, format="png")
        plt.close(figure)


def _report_selected(
    task: TaskName,
    data: TaskData,
    output: np.ndarray,
    model: TaskModel,
    classes: Any,
    folder: Path,
    params: Params,
    uncalibrated: np.ndarray | None = None,
) -> None:
    """The selected model's holdout figures and table, as the task's spec draws them, and its global SHAP
    importance per raw input column on a seeded sample of the holdout."""
    spec = TASK_SPECS[task]
    figures = spec.figures(data, output, classes, uncalibrated)
    sample = data.sample(params.evaluate.explain_rows, params.train.seed)
    explanation = explain(model.estimator, sample.inputs, spec.kind, params.train.seed)
    importance = explanation.importance()
    methods = ", ".join(sorted(set(explanation.methods)))
    title = f"{task}: {model.family} ({methods}), {len(sample.y):,} holdout rows"
    figures.append(("importance.png", task_report.importance_figure(importance, title)))
    write_json(
        {
            "rows": len(sample.y),
            "family": model.family,
            "methods": list(explanation.methods),
            "importance": {k: round(float(v), 6) for k, v in importance.items()},
        },
        folder / "importance.json",
    )
    _write_figures(figures, folder)
    table = spec.table(data, output, classes)
    if table is not None:
        name, frame = table
        write_text(frame.to_markdown(index=False), folder / name)


# What `metrics.unadjusted` holds: the selected model's holdout metrics without its fitted adjustments.
_ADJUSTED = {
    "binary": "before calibration (train.calibration, on the out-of-fold outputs of the tuning folds)",
    "multiclass": "without the names prior (the names' naive Bayes pooled in, components/name_genres.py)",
    "regression": "",
}

# The holdout whose subsets by album the report shows: artists apart, albums not always.
ALBUM_PROTOCOL = "artist"


def _album_subsets_header(shared: np.ndarray, as_scored: bool) -> dict[str, Any]:
    conditions = ["given", GENRE_PREDICTED] if as_scored else ["given"]
    return {
        "protocol": ALBUM_PROTOCOL,
        "definition": "album_shared: a training track carries the held-out track's album name (case-folded)",
        "tracks": {"album_unseen": int((~shared).sum()), "album_shared": int(shared.sum())},
        **{condition: {subset: {} for subset in ALBUM_SUBSETS} for condition in conditions},
    }


def _subset_metrics(
    spec: TaskSpec,
    rows: TaskData,
    output: np.ndarray,
    mask: np.ndarray,
    classes: Any,
    params: Params,
) -> dict[str, float] | None:
    """The task's holdout metrics on the rows where `mask` holds; None where they are undefined there (no
    rows, or one class only)."""
    if mask.sum() < 2 or (spec.kind == "binary" and len(np.unique(rows.y[mask])) < 2):
        return None
    return spec.metrics(rows.take(mask), output[mask], classes, params.evaluate)


def evaluate_task(paths: ProjectPaths, params: Params, task: TaskName) -> dict[str, Any]:
    """Every fitted family (and the blend) on the untouched holdout of each protocol."""
    tracks, splits = load_tables(paths)
    classes = TASK_SPECS[task].classes(tracks)
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
    spec = TASK_SPECS[task]
    as_scored = reads_genre(spec)
    if as_scored:
        metrics["genre_input"] = {
            "given": "the holdout track's own genre",
            GENRE_PREDICTED: "no genre, as a scoring batch without one: the genre-free fallback answers "
            "(the genre champion's prediction goes to the output, not into this model)",
        }
        metrics[GENRE_PREDICTED] = {}
    for protocol in protocols(params):
        data = task_rows(tracks, splits, params, task, protocol, "test")
        guessed = without_genre(data) if as_scored else None
        shared = None
        if protocol == ALBUM_PROTOCOL:
            train, _ = split_frames(tracks, splits, protocol)
            shared = album_shared(data.inputs["album_name"], train["album_name"])
            metrics["album_subsets"] = _album_subsets_header(shared, as_scored)
        metrics[protocol] = {}
        if guessed is not None:
            metrics[GENRE_PREDICTED][protocol] = {}
        for folder in sorted((paths.task_models(task) / protocol).iterdir()):
            model: TaskModel = mlflow.sklearn.load_model(str(folder))
            output = spec.output(model, data.inputs)
            metrics[protocol][folder.name] = spec.metrics(data, output, classes, params.evaluate)
            conditions = {"given": (data, output)}
            if guessed is not None:
                guessed_output = spec.output(model, guessed.inputs)
                metrics[GENRE_PREDICTED][protocol][folder.name] = spec.metrics(
                    guessed, guessed_output, classes, params.evaluate
                )
                conditions[GENRE_PREDICTED] = (guessed, guessed_output)
            if shared is not None:
                for condition, (rows, answered) in conditions.items():
                    for subset, mask in (("album_unseen", ~shared), ("album_shared", shared)):
                        metrics["album_subsets"][condition][subset][folder.name] = _subset_metrics(
                            spec, rows, answered, mask, classes, params
                        )
            if protocol == main and folder.name == selection["selected"]:
                raw = None
                if model.calibrator is not None or model.names_prior is not None:
                    # What the fitted adjustments (calibrators, the names prior) change, on the same rows.
                    raw = model.outputs(data.inputs, calibrated=False)
                    metrics["unadjusted"] = {
                        "what": _ADJUSTED[spec.kind],
                        "family": folder.name,
                        "given": spec.metrics(data, raw, classes, params.evaluate),
                    }
                    if guessed is not None:
                        metrics["unadjusted"][GENRE_PREDICTED] = spec.metrics(
                            guessed, model.outputs(guessed.inputs, calibrated=False), classes, params.evaluate
                        )
                before = raw if model.calibrator is not None else None
                _report_selected(task, data, output, model, classes, paths.reports / task, params, before)
    # Rounded: parallel ensembles sum in thread order; noise in the 15th digit would make DVC see a change.
    write_json(rounded(metrics), paths.task_metrics(task))
    first_family = next(iter(metrics[main].values()))
    keys = TASK_SPECS[task].report_metrics(first_family)
    gate = (spec.gate_metric, spec.lower_is_better)
    comparison = task_report.comparison_markdown(task, metrics, keys, protocols(params), gate=gate)
    if as_scored:
        guessed_metrics = {**metrics, **metrics[GENRE_PREDICTED]}
        comparison += "\n" + task_report.comparison_markdown(
            task,
            guessed_metrics,
            keys,
            protocols(params),
            condition="without a given genre (as scored)",
            gate=gate,
        )
    if "album_subsets" in metrics:
        comparison += "\n" + task_report.album_subsets_markdown(task, metrics, keys, gate)
    if "unadjusted" in metrics:
        unadjusted = metrics["unadjusted"]
        selected = metrics[main][unadjusted["family"]]
        cells = ", ".join(f"{k} {unadjusted['given'][k]:.4f} (with: {selected[k]:.4f})" for k in keys)
        comparison += f"\nThe selected model on the {main} holdout {unadjusted['what']}: {cells}.\n"
    write_text(comparison, paths.reports / task / "comparison.md")
    return rounded(metrics)
