"""Renderers of the evaluation report: holdout figures, tables and the comparison markdown, as pure functions
of arrays and metrics. They return figures and text; the evaluate stage writes them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from components.evaluation import most_confused_pairs, per_genre_error
from components.schema import GENRE_SEPARATOR


def predicted_vs_actual(y: np.ndarray, predicted: np.ndarray, target: str) -> Figure:
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    low, high = float(min(y.min(), predicted.min())), float(max(y.max(), predicted.max()))
    axes[0].hexbin(y, predicted, gridsize=40, mincnt=1, cmap="viridis")
    axes[0].plot([low, high], [low, high], "r--", lw=1)
    axes[0].set(xlabel=f"actual {target}", ylabel="predicted", title="Predicted vs actual (holdout)")
    axes[1].hist(predicted - y, bins=60, color="steelblue")
    axes[1].set(xlabel="prediction - actual", ylabel="tracks", title="Residuals (holdout)")
    return figure


def error_by_first_genre(y: np.ndarray, predicted: np.ndarray, inputs: pd.DataFrame) -> pd.DataFrame:
    genres = [s.split(GENRE_SEPARATOR)[0] for s in inputs["track_genre"].astype(str)]
    return per_genre_error(y, predicted, genres)


def roc_and_precision_recall(y: np.ndarray, scores: np.ndarray) -> Figure:
    from sklearn.metrics import PrecisionRecallDisplay, RocCurveDisplay

    figure, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    RocCurveDisplay.from_predictions(y, scores, ax=axes[0])
    PrecisionRecallDisplay.from_predictions(y, scores, ax=axes[1])
    axes[0].set_title("ROC (holdout)")
    axes[1].set_title("Precision-recall (holdout)")
    return figure


def reliability_figure(y: np.ndarray, scores: np.ndarray, uncalibrated: np.ndarray | None = None) -> Figure:
    """Predicted probability against the observed rate per bin, with the rows per bin below; `uncalibrated`:
    the same model's scores before its calibrator, drawn beside them."""
    from components.evaluation import calibration_bins, expected_calibration_error

    predicted, observed, counts = calibration_bins(y, scores)
    figure, axes = plt.subplots(2, 1, figsize=(6, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    axes[0].plot([0, 1], [0, 1], "k--", lw=1, label="perfectly calibrated")
    error = expected_calibration_error(y, scores)
    label = "holdout" if uncalibrated is None else f"calibrated (error {error:.3f})"
    if uncalibrated is not None:
        before, before_observed, _ = calibration_bins(y, uncalibrated)
        before_error = expected_calibration_error(y, uncalibrated)
        before_label = f"before (error {before_error:.3f})"
        axes[0].plot(before, before_observed, "s--", color="darkorange", label=before_label)
    axes[0].plot(predicted, observed, "o-", color="steelblue", label=label)
    axes[0].set(ylabel="observed hit rate", title=f"Reliability (holdout; calibration error {error:.3f})")
    axes[0].legend(loc="upper left")
    axes[1].bar(predicted, counts, width=0.05, color="grey")
    axes[1].set(xlabel="predicted hit probability", ylabel="tracks", yscale="log")
    return figure


def confused_pairs(label_sets: Sequence[set[str]], top1: Sequence[str], n: int = 20) -> pd.DataFrame:
    return most_confused_pairs(list(label_sets), list(top1), n=n)


def confusion_figure(confused: pd.DataFrame) -> Figure:
    names = sorted(set(confused["true"]) | set(confused["predicted"]))
    matrix = pd.DataFrame(0, index=names, columns=names)
    for row in confused.itertuples():
        matrix.loc[row.true, row.predicted] = row.count
    figure, ax = plt.subplots(figsize=(9, 8))
    image = ax.imshow(matrix.to_numpy(), cmap="Reds")
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.set(xlabel="predicted", ylabel="true", title="Most confused genres (holdout, top-1 wrong)")
    figure.colorbar(image, ax=ax)
    return figure


def importance_figure(importance: pd.Series, title: str, top: int = 20) -> Figure:
    """Global importance per raw input group (components/explain.py), largest at the top."""
    figure, ax = plt.subplots(figsize=(7, 6))
    importance.nlargest(top)[::-1].plot.barh(ax=ax, color="darkorange")
    ax.set(title=title, xlabel="mean |SHAP value| on the model's margin")
    return figure


def against_baseline(
    by_family: Mapping[str, Any], selected: str, gate: str, lower_is_better: bool, baseline: str = "baseline"
) -> str | None:
    """One sentence: whether the selected model beats the untuned baseline on the gate metric."""
    chosen, plain = by_family.get(selected), by_family.get(baseline)
    if not chosen or not plain:
        return None
    ours, theirs = chosen[gate], plain[gate]
    beats = ours < theirs if lower_is_better else ours > theirs
    verdict = "beats it" if beats else "**does not beat it**: tuning and blending buy nothing here"
    return f"The selected {selected}: {gate} {ours:.4f}, the untuned baseline's {theirs:.4f}; it {verdict}."


def comparison_markdown(
    task: str,
    metrics: Mapping[str, Any],
    keys: Sequence[str],
    protocols: Sequence[str],
    condition: str = "",
    gate: tuple[str, bool] | None = None,
) -> str:
    """The families side by side on each holdout (the main protocol first), with their CV scores;
    `condition` names how the inputs were given (the genre given or predicted); `gate` (metric, lower is
    better) adds whether the selected model beats the untuned baseline."""
    main = protocols[0]
    lines = [f"# {task}: model families on the holdout{' ' + condition if condition else ''}", ""]
    for protocol in protocols:
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
        verdict = gate and against_baseline(metrics[protocol], metrics["selected"], *gate)
        if verdict:
            lines += [verdict, ""]
    lines.append(
        "CV score: the selection criterion on training folds (RMSE or log-loss; lower is better): the "
        "tuning study's best for each family, and for the blend and its two members the scores of one "
        "more CV on the same folds. The model is chosen by it, never by the holdout. The baseline: an "
        "untuned LightGBM (params.yaml train.baseline) on the same rows and features, never selected."
    )
    return "\n".join(lines) + "\n"


def album_subsets_markdown(
    task: str, metrics: Mapping[str, Any], keys: Sequence[str], gate: tuple[str, bool] | None = None
) -> str:
    """The families on the two album subsets of the artist holdout, in each genre condition: a held-out
    track whose album name a training track carries is far easier to place, so the whole-holdout number
    mixes two very different problems."""
    subsets = metrics["album_subsets"]
    tracks = subsets["tracks"]
    total = tracks["album_unseen"] + tracks["album_shared"]
    share = tracks["album_shared"] / max(total, 1)
    lines = [
        f"# {task}: the {subsets['protocol']} holdout by album",
        "",
        f"{tracks['album_shared']:,} of {total:,} held-out tracks ({share:.1%}) "
        "share an album name with a training track (album-shared); the other "
        f"{tracks['album_unseen']:,} are album-unseen.",
        "",
    ]
    for condition in (c for c in ("given", "genre_predicted") if c in subsets):
        for subset in ("album_unseen", "album_shared"):
            by_family = subsets[condition][subset]
            label = "genre given" if condition == "given" else "without a given genre (as scored)"
            lines += [f"## {subset.replace('_', '-')}, {label}", ""]
            lines += ["| family | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
            for family, values in by_family.items():
                marker = " (selected)" if family == metrics["selected"] else ""
                cells = " | ".join(f"{values[k]:.4f}" for k in keys) if values else "undefined here"
                lines.append(f"| {family}{marker} | {cells} |")
            lines.append("")
            verdict = gate and against_baseline(by_family, metrics["selected"], *gate)
            if verdict:
                lines += [verdict, ""]
    return "\n".join(lines)
