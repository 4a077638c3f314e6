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


def feature_importance(estimator: Any) -> pd.Series | None:
    """Importance per feature of a fitted pipeline (the first member of a blend), when its model has one."""
    members = getattr(estimator, "members", None)
    if members:
        estimator = members[0]
    final = getattr(estimator, "named_steps", {}).get("model")
    values = getattr(final, "feature_importances_", None)
    if values is None:
        return None
    names = estimator.named_steps["features"].get_feature_names_out()
    return pd.Series(np.asarray(values, dtype="float64"), index=names) if len(names) == len(values) else None


def importance_figure(importance: pd.Series, family: str, top: int = 25) -> Figure:
    figure, ax = plt.subplots(figsize=(7, 7))
    importance.nlargest(top)[::-1].plot.barh(ax=ax, color="darkorange")
    ax.set(title=f"Feature importance ({family}), top {top}")
    return figure


def comparison_markdown(
    task: str,
    metrics: Mapping[str, Any],
    keys: Sequence[str],
    protocols: Sequence[str],
    condition: str = "",
) -> str:
    """The families side by side on each holdout (the main protocol first), with their CV scores;
    `condition` names how the inputs were given (the genre given or predicted)."""
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
    lines.append(
        "CV score: the selection criterion on training folds (RMSE or log-loss; lower is better): the "
        "tuning study's best for each family, and for the blend and its two members the scores of one "
        "more CV on the same folds. The model is chosen by it, never by the holdout."
    )
    return "\n".join(lines) + "\n"
